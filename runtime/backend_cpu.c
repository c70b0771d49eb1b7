/*
 * backend_cpu.c — the CPU backend: plain C kernels, deterministic (every
 * sum runs in a fixed order that depends only on the shapes), a blocked
 * GEMM the compiler can vectorise, no BLAS.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "mlp_math.h"

/* C (+)= A B; A [m, k], B [k, n], row-major.  Four rows of C share each
 * row of B as it streams by; k and n are blocked to stay in cache.  For a
 * given element, the k-sum always runs in ascending order. */
void pr_cpu_sgemm(int m, int n, int k, const float *restrict A, const float *restrict B,
                  float *restrict C, int accumulate)
{
    enum { KB = 128, NB = 512 };
    if (!accumulate)
        memset(C, 0, (size_t)m * (size_t)n * sizeof(float));
    for (int k0 = 0; k0 < k; k0 += KB) {
        int k1 = k0 + KB < k ? k0 + KB : k;
        for (int j0 = 0; j0 < n; j0 += NB) {
            int j1 = j0 + NB < n ? j0 + NB : n;
            int i = 0;
            for (; i + 4 <= m; i += 4) {
                float *restrict c0 = C + (size_t)i * n, *restrict c1 = c0 + n;
                float *restrict c2 = c1 + n, *restrict c3 = c2 + n;
                const float *a = A + (size_t)i * k;
                for (int kk = k0; kk < k1; kk++) {
                    float a0 = a[kk], a1 = a[k + kk], a2 = a[2 * (size_t)k + kk],
                          a3 = a[3 * (size_t)k + kk];
                    const float *restrict b = B + (size_t)kk * n;
                    for (int j = j0; j < j1; j++) {
                        float bj = b[j];
                        c0[j] += a0 * bj;
                        c1[j] += a1 * bj;
                        c2[j] += a2 * bj;
                        c3[j] += a3 * bj;
                    }
                }
            }
            for (; i < m; i++) {
                float *restrict c = C + (size_t)i * n;
                for (int kk = k0; kk < k1; kk++) {
                    float a0 = A[(size_t)i * k + kk];
                    const float *restrict b = B + (size_t)kk * n;
                    for (int j = j0; j < j1; j++)
                        c[j] += a0 * b[j];
                }
            }
        }
    }
}

static void transpose(const float *src, float *dst, int rows, int cols)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

typedef struct cpu_ctx {
    pr_bctx base;
    uint64_t seed;
    int hidden, step, slots;
    float *scratch; /* the backward's transposes, kept between calls */
    size_t scratch_count;
    double loss[]; /* [slots] */
} cpu_ctx;

void pr_bctx_fail(pr_bctx *c, const char *where, const char *msg)
{
    if (c->failed)
        return;
    char op[64] = "", last[80] = "";
    if (c->op && c->format_op) {
        char name[48];
        snprintf(op, sizeof op, " during %s", c->format_op(c->op, name, sizeof name));
    }
    if (c->last_op && c->last_op != c->op && c->format_op) {
        char name[48];
        snprintf(last, sizeof last, " (last work enqueued: %s)",
                 c->format_op(c->last_op, name, sizeof name));
    }
    snprintf(c->err, sizeof c->err, "[device %d] %s %s%s%s", c->rank, where, msg, op, last);
    c->failed = 1;
}

static pr_bctx *cpu_open(int rank, const pr_backend_cfg *cfg, char *err, size_t errlen)
{
    int slots = cfg->microbatches > 0 ? cfg->microbatches : 1;
    cpu_ctx *c = calloc(1, sizeof *c + (size_t)slots * sizeof(double));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->base.rank = rank;
    c->seed = cfg->seed;
    c->hidden = cfg->hidden;
    c->slots = slots;
    return &c->base;
}

static void cpu_close(pr_bctx *c)
{
    if (c)
        free(((cpu_ctx *)c)->scratch);
    free(c);
}

/* NULL when the host has no room: the context records it, and every later
 * call on it does nothing (the replay ends the run with the message). */
static float *cpu_alloc(pr_bctx *c, size_t count)
{
    if (c->failed)
        return NULL;
    size_t bytes = count > (SIZE_MAX - 63) / sizeof(float) ? 0
                                                           : (count * sizeof(float) + 63) & ~(size_t)63;
    float *p = bytes || !count ? aligned_alloc(64, bytes ? bytes : 64) : NULL;
    if (!p) {
        char msg[96];
        snprintf(msg, sizeof msg, "out of host memory (%zu floats)", count);
        pr_bctx_fail(c, "cpu backend:", msg);
    }
    return p;
}

/* count floats of the context's scratch (grown, never shrunk): a
 * transpose per backward call must not cost an allocation and fresh pages. */
static float *scratch(pr_bctx *cb, size_t count)
{
    cpu_ctx *c = (cpu_ctx *)cb;
    if (count > c->scratch_count) {
        free(c->scratch);
        c->scratch = cpu_alloc(cb, count);
        c->scratch_count = c->scratch ? count : 0;
    }
    return c->scratch;
}

static void cpu_release(pr_bctx *c, float *p) { free(p); }

static void cpu_copy(pr_bctx *c, float *dst, const float *src, size_t count)
{
    if (c->failed)
        return;
    memcpy(dst, src, count * sizeof(float));
}

static void cpu_set_step(pr_bctx *c, int step) { ((cpu_ctx *)c)->step = step; }

static void cpu_make_batch(pr_bctx *cb, int row0, int rows, float *x, float *t)
{
    cpu_ctx *c = (cpu_ctx *)cb;
    if (cb->failed)
        return;
    size_t h = (size_t)c->hidden, first = (size_t)row0 * h, n = (size_t)rows * h;
    for (size_t i = 0; i < n; i++) {
        if (x)
            x[i] = pp_uniform_pm1(c->seed, PP_STREAM_X(c->step), first + i);
        if (t)
            t[i] = pp_uniform_pm1(c->seed, PP_STREAM_T(c->step), first + i);
    }
}

static void cpu_layer_forward(pr_bctx *c, const float *x, const float *W, const float *b, float *z,
                              float *y, int n, int h)
{
    if (c->failed)
        return;
    pr_cpu_sgemm(n, h, h, x, W, z, 0);
    for (int r = 0; r < n; r++) {
        float *zr = z + (size_t)r * h, *yr = y + (size_t)r * h;
        const float *xr = x + (size_t)r * h;
        for (int j = 0; j < h; j++) {
            zr[j] += b[j];
            yr[j] = xr[j] + pp_gelu(zr[j]);
        }
    }
}

static void cpu_layer_backward_input(pr_bctx *c, const float *dy, const float *z, const float *W,
                                     float *dz, float *dx, int n, int h)
{
    if (c->failed)
        return;
    size_t nh = (size_t)n * h;
    for (size_t i = 0; i < nh; i++)
        dz[i] = dy[i] * pp_gelu_grad(z[i]);
    if (!dx)
        return;
    float *Wt = scratch(c, (size_t)h * h);
    if (!Wt)
        return;
    transpose(W, Wt, h, h);
    memcpy(dx, dy, nh * sizeof(float));
    pr_cpu_sgemm(n, h, h, dz, Wt, dx, 1);
}

static void cpu_layer_backward_weight(pr_bctx *c, const float *x, const float *dz, float *dW,
                                      float *db, int n, int h)
{
    float *xt = c->failed ? NULL : scratch(c, (size_t)n * h);
    if (!xt)
        return;
    transpose(x, xt, n, h);
    pr_cpu_sgemm(h, h, n, xt, dz, dW, 1);
    for (int r = 0; r < n; r++)
        for (int j = 0; j < h; j++)
            db[j] += dz[(size_t)r * h + j];
}

static void cpu_mse(pr_bctx *cb, const float *y, const float *t, float inv_n, float *dy, int n,
                    int h, int slot)
{
    cpu_ctx *c = (cpu_ctx *)cb;
    if (cb->failed)
        return;
    double sq = 0;
    size_t nh = (size_t)n * h;
    for (size_t i = 0; i < nh; i++) {
        double e = (double)y[i] - (double)t[i];
        sq += e * e;
        dy[i] = pp_mse_grad(y[i], t[i], inv_n);
    }
    if (slot < 0 || slot >= c->slots) {
        pr_bctx_fail(cb, "cpu mse:", "loss slot out of range");
        return;
    }
    c->loss[slot] = sq;
}

static void cpu_read_loss(pr_bctx *cb, double *out, int n)
{
    cpu_ctx *c = (cpu_ctx *)cb;
    for (int i = 0; i < n; i++)
        out[i] = i < c->slots ? c->loss[i] : 0;
}

static void cpu_sgd(pr_bctx *c, float *p, float *g, float lr, size_t count)
{
    if (c->failed)
        return;
    for (size_t i = 0; i < count; i++) {
        p[i] = pp_sgd(p[i], g[i], lr);
        g[i] = 0;
    }
}

static void cpu_zero(pr_bctx *c, float *p, size_t count)
{
    if (!c->failed)
        memset(p, 0, count * sizeof(float));
}

static void cpu_sync(pr_bctx *c) {}

static const pr_backend cpu_backend = {
    .name = "cpu",
    .open = cpu_open,
    .close = cpu_close,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .alloc_weight = cpu_alloc,
    .upload = cpu_copy,
    .upload_weight = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .copy_weight = cpu_copy,
    .set_step = cpu_set_step,
    .make_batch = cpu_make_batch,
    .layer_forward = cpu_layer_forward,
    .layer_backward_input = cpu_layer_backward_input,
    .layer_backward_weight = cpu_layer_backward_weight,
    .mse = cpu_mse,
    .read_loss = cpu_read_loss,
    .sgd = cpu_sgd,
    .sgd_weight = cpu_sgd,
    .zero = cpu_zero,
    .sync = cpu_sync,
};

const pr_backend *pr_backend_cpu(void) { return &cpu_backend; }
