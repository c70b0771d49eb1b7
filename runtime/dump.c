/*
 * dump.c — --dump DIR: the run's data, initial and final parameters and
 * losses as float32 C-order .npy files (docs/design.md), so that anyone can
 * recompute it (tests/ref/mlp_reference.py does).  The directory is an
 * output of output.h: the set is written into a fresh directory and
 * swapped in whole, so DIR never holds a mix of two runs.
 */
#include <stdlib.h>
#include <string.h>

#include "pprun.h"

const char *const pr_dump_files[] = {"x.npy",       "t.npy",       "w_init.npy", "b_init.npy",
                                     "w_final.npy", "b_final.npy", "loss.npy",   NULL};

int pr_npy_write(FILE *f, const float *data, const int *shape, int ndim)
{
    char header[256], dims[160] = "";
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        size_t len = strlen(dims);
        snprintf(dims + len, sizeof dims - len, "%d%s", shape[i],
                 ndim == 1 ? "," : i + 1 < ndim ? ", " : "");
        count *= (size_t)shape[i];
    }
    int n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }",
                     dims);
    /* magic (6) + version (2) + length (2) + header + newline: a multiple of 64 */
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    memset(header + n, ' ', (size_t)pad);
    header[n + pad] = '\n';
    int hlen = n + pad + 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)hlen, f) == (size_t)hlen &&
             fwrite(data, sizeof(float), count, f) == count;
    return ok ? 0 : 1;
}

typedef struct npy {
    const float *data;
    int shape[3];
    int ndim;
} npy;

static int fill_npy(FILE *f, void *arg)
{
    const npy *a = arg;
    return pr_npy_write(f, a->data, a->shape, a->ndim);
}

int pr_dump_fill(pp_output *dir, void *record)
{
    const pr_run_record *rec = record;
    const pr_model *m = rec->model;
    const pr_run_result *r = rec->result;
    int steps = rec->steps;
    int L = m->layers, H = m->hidden, N = m->batch;
    size_t hh = (size_t)H * H, batch = (size_t)N * H;
    float *x = malloc((size_t)steps * batch * sizeof(float));
    float *t = malloc((size_t)steps * batch * sizeof(float));
    float *W = malloc((size_t)L * hh * sizeof(float)), *b = malloc((size_t)L * H * sizeof(float));
    float *loss = malloc((size_t)steps * sizeof(float));
    int rc = 0;
    if (!x || !t || !W || !b || !loss) {
        pp_error(pp_output_diag(dir), "out of memory for --dump");
        rc = 1;
        goto out;
    }
    for (int k = 0; k < steps; k++) {
        pr_make_batch(m, k, 0, N, x + (size_t)k * batch, t + (size_t)k * batch);
        loss[k] = (float)r->loss[k];
    }
    pr_init_params(m, W, b);
    const npy files[] = {
        {x, {steps, N, H}, 3},  {t, {steps, N, H}, 3},  {W, {L, H, H}, 3}, {b, {L, H}, 2},
        {r->W, {L, H, H}, 3}, {r->b, {L, H}, 2}, {loss, {steps}, 1},
    };
    for (int i = 0; pr_dump_files[i] && rc == 0; i++)
        rc = pp_output_member(dir, pr_dump_files[i], fill_npy, (void *)&files[i]);
out:
    free(x), free(t), free(W), free(b), free(loss);
    return rc;
}
