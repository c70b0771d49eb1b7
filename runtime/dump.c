/*
 * dump.c — --dump DIR: the run's data, initial and final parameters and
 * losses as float32 C-order .npy files (docs/model.md), so that anyone can
 * recompute it (tests/ref/mlp_reference.py does).  The directory is an
 * output of output.h: the set is written into a fresh directory and
 * swapped in whole, so DIR never holds a mix of two runs.
 *
 * Nothing is held for the whole run: each step's data is generated again
 * (the generator is counter-based, docs/model.md), chunk by chunk, and the
 * initial parameters layer by layer, straight into the files, so what the
 * writer allocates (pr_dump_bytes, counted by the run's memory check)
 * does not grow with the steps or the batch.
 */
#include <stdlib.h>
#include <string.h>

#include "pprun.h"

const char *const pr_dump_files[] = {"x.npy",       "t.npy",       "w_init.npy", "b_init.npy",
                                     "w_final.npy", "b_final.npy", "loss.npy",   NULL};

/* The .npy header (format 1.0) of a C-order array of descr ("<f4", "<i4"). */
int pr_npy_header(FILE *f, const char *descr, const int *shape, int ndim)
{
    char header[256], dims[160] = "";
    for (int i = 0; i < ndim; i++) {
        size_t len = strlen(dims);
        snprintf(dims + len, sizeof dims - len, "%d%s", shape[i],
                 ndim == 1 ? "," : i + 1 < ndim ? ", " : "");
    }
    int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                     descr, dims);
    /* magic (6) + version (2) + length (2) + header + newline: a multiple of 64 */
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;
    memset(header + n, ' ', (size_t)pad);
    header[n + pad] = '\n';
    int hlen = n + pad + 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    return fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)hlen, f) == (size_t)hlen ? 0 : 1;
}

static int write_floats(FILE *f, const float *data, size_t count)
{
    return fwrite(data, sizeof(float), count, f) == count ? 0 : 1;
}

int pr_npy_write(FILE *f, const float *data, const int *shape, int ndim)
{
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= (size_t)shape[i];
    return pr_npy_header(f, "<f4", shape, ndim) || write_floats(f, data, count);
}

/* Floats of x or t generated at a time. */
enum { CHUNK_FLOATS = 1 << 16 };

typedef struct dump {
    const pr_run_record *rec;
    float *buf; /* a chunk of rows, a layer's W and b, or a chunk of losses */
    int rows;   /* rows of x or t in a chunk */
} dump;

static int fill_data(FILE *f, const dump *d, bool targets)
{
    const pr_model *m = d->rec->model;
    int shape[3] = {d->rec->steps, m->batch, m->hidden};
    int rc = pr_npy_header(f, "<f4", shape, 3);
    for (int k = 0; k < d->rec->steps && !rc; k++)
        for (int row = 0; row < m->batch && !rc; row += d->rows) {
            int rows = m->batch - row < d->rows ? m->batch - row : d->rows;
            pr_make_batch(m, k, row, rows, targets ? NULL : d->buf, targets ? d->buf : NULL);
            rc = write_floats(f, d->buf, (size_t)rows * m->hidden);
        }
    return rc;
}

static int fill_x(FILE *f, void *d) { return fill_data(f, d, false); }
static int fill_t(FILE *f, void *d) { return fill_data(f, d, true); }

static int fill_init(FILE *f, const dump *d, bool biases)
{
    const pr_model *m = d->rec->model;
    size_t h = (size_t)m->hidden;
    int shape[3] = {m->layers, m->hidden, m->hidden};
    int rc = pr_npy_header(f, "<f4", shape, biases ? 2 : 3);
    for (int l = 0; l < m->layers && !rc; l++) {
        pr_init_layer(m, l, biases ? NULL : d->buf, d->buf + h * h);
        rc = biases ? write_floats(f, d->buf + h * h, h) : write_floats(f, d->buf, h * h);
    }
    return rc;
}

static int fill_w_init(FILE *f, void *d) { return fill_init(f, d, false); }
static int fill_b_init(FILE *f, void *d) { return fill_init(f, d, true); }

/* W (or b) of every layer, from the trained parameters' blocks. */
static int fill_final(FILE *f, const dump *d, bool biases)
{
    const pr_model *m = d->rec->model;
    size_t h = (size_t)m->hidden;
    int shape[3] = {m->layers, m->hidden, m->hidden};
    int rc = pr_npy_header(f, "<f4", shape, biases ? 2 : 3);
    for (int l = 0; l < m->layers && !rc; l++) {
        const float *P = d->rec->result->params + m->param_off[l];
        rc = biases ? write_floats(f, P + h * h, h) : write_floats(f, P, h * h);
    }
    return rc;
}

static int fill_w_final(FILE *f, void *d) { return fill_final(f, d, false); }
static int fill_b_final(FILE *f, void *d) { return fill_final(f, d, true); }

static int fill_loss(FILE *f, void *arg)
{
    const dump *d = arg;
    int steps = d->rec->steps, rc = pr_npy_header(f, "<f4", &steps, 1);
    for (int k = 0; k < steps && !rc; k += CHUNK_FLOATS) {
        int n = steps - k < CHUNK_FLOATS ? steps - k : CHUNK_FLOATS;
        for (int q = 0; q < n; q++)
            d->buf[q] = (float)d->rec->result->loss[k + q];
        rc = write_floats(f, d->buf, (size_t)n);
    }
    return rc;
}

/* The buffer's floats: the most of a chunk of rows, a layer, a chunk of losses. */
static size_t buffer_floats(const pr_model *m, int rows)
{
    size_t h = (size_t)m->hidden, layer = h * h + h, data = (size_t)rows * h;
    size_t n = layer > data ? layer : data;
    return n > CHUNK_FLOATS ? n : CHUNK_FLOATS;
}

static int chunk_rows(const pr_model *m)
{
    int rows = CHUNK_FLOATS / m->hidden;
    rows = rows < 1 ? 1 : rows;
    return rows < m->batch ? rows : m->batch;
}

double pr_dump_bytes(const pr_model *m)
{
    return (double)buffer_floats(m, chunk_rows(m)) * sizeof(float);
}

int pr_dump_fill(pp_output *dir, void *record)
{
    const pr_run_record *rec = record;
    dump d = {.rec = rec, .rows = chunk_rows(rec->model)};
    size_t n = buffer_floats(rec->model, d.rows);
    if (!(d.buf = pp_calloc(n, sizeof(float), "--dump's buffer"))) {
        char size[32];
        pp_error(pp_output_diag(dir), "--dump: out of memory: cannot allocate %s for its buffer",
                 pr_format_bytes((double)n * sizeof(float), size, sizeof size));
        return 1;
    }
    static const pp_fill_fn fill[] = {fill_x,       fill_t,       fill_w_init, fill_b_init,
                                      fill_w_final, fill_b_final, fill_loss};
    int rc = 0;
    for (int i = 0; pr_dump_files[i] && rc == 0; i++)
        rc = pp_output_member(dir, pr_dump_files[i], fill[i], &d);
    free(d.buf);
    return rc;
}

char **pr_names_copy(const char *const *names)
{
    size_t n = 0;
    while (names[n])
        n++;
    char **v = pp_xcalloc(n + 1, sizeof *v, "a list of file names");
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]) + 1;
        v[i] = memcpy(pp_xcalloc(len, 1, "a list of file names"), names[i], len);
    }
    return v;
}

void pr_names_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

char **pr_dump_file_names(const pr_model *m) { return pr_names_copy(pr_dump_files); }
