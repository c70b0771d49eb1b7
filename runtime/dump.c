/*
 * dump.c — --dump DIR: the run's data, initial and final parameters and
 * losses as float32 C-order .npy files (DESIGN.md), so that anyone can
 * recompute it (tests/ref/mlp_reference.py does).  Each file (and
 * --trace's) is written to a temporary name and renamed: a reader never
 * sees half a file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pprun.h"

int pr_write_file(const char *path, int (*fill)(FILE *f, void *arg), void *arg, pp_diag *d)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        pp_error(d, "cannot write %s: %s", tmp, strerror(errno));
        return 1;
    }
    int ok = fill(f, arg) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        pp_error(d, "cannot write %s: %s", path, strerror(errno));
        remove(tmp);
        return 1;
    }
    return 0;
}

typedef struct npy {
    const float *data;
    const int *shape;
    int ndim;
} npy;

static int write_npy(FILE *f, void *arg)
{
    const npy *a = arg;
    char header[256], dims[160] = "";
    size_t count = 1;
    for (int i = 0; i < a->ndim; i++) {
        size_t len = strlen(dims);
        snprintf(dims + len, sizeof dims - len, "%d%s", a->shape[i],
                 a->ndim == 1 ? "," : i + 1 < a->ndim ? ", " : "");
        count *= (size_t)a->shape[i];
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
             fwrite(a->data, sizeof(float), count, f) == count;
    return ok ? 0 : 1;
}

int pr_write_npy(const char *path, const float *data, const int *shape, int ndim, pp_diag *d)
{
    npy a = {data, shape, ndim};
    return pr_write_file(path, write_npy, &a, d);
}

int pr_dump(const char *dir, const pr_model *m, int steps, const pr_run_result *r, pp_diag *d)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        pp_error(d, "cannot create %s: %s", dir, strerror(errno));
        return 1;
    }
    int L = m->layers, H = m->hidden, N = m->batch;
    size_t hh = (size_t)H * H, batch = (size_t)N * H;
    float *x = malloc((size_t)steps * batch * sizeof(float));
    float *t = malloc((size_t)steps * batch * sizeof(float));
    float *W = malloc((size_t)L * hh * sizeof(float)), *b = malloc((size_t)L * H * sizeof(float));
    float *loss = malloc((size_t)steps * sizeof(float));
    if (!x || !t || !W || !b || !loss) {
        pp_error(d, "out of memory for --dump");
        free(x), free(t), free(W), free(b), free(loss);
        return 1;
    }
    for (int k = 0; k < steps; k++) {
        pr_make_batch(m, k, 0, N, x + (size_t)k * batch, t + (size_t)k * batch);
        loss[k] = (float)r->loss[k];
    }
    pr_init_params(m, W, b);
    char path[4096];
    int rc = 0;
#define DUMP(name, data, ...)                                              \
    do {                                                                   \
        int shape_[] = {__VA_ARGS__};                                      \
        snprintf(path, sizeof path, "%s/%s", dir, name);                   \
        rc = rc || pr_write_npy(path, data, shape_, (int)(sizeof shape_ / sizeof *shape_), d); \
    } while (0)
    DUMP("x.npy", x, steps, N, H);
    DUMP("t.npy", t, steps, N, H);
    DUMP("w_init.npy", W, L, H, H);
    DUMP("b_init.npy", b, L, H);
    DUMP("w_final.npy", r->W, L, H, H);
    DUMP("b_final.npy", r->b, L, H);
    DUMP("loss.npy", loss, steps);
#undef DUMP
    free(x), free(t), free(W), free(b), free(loss);
    return rc;
}
