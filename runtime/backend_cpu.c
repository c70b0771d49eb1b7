/*
 * backend_cpu.c — the CPU backend: OpenBLAS GEMMs on the device's own
 * thread (one BLAS thread per device thread: OpenBLAS's own threads are
 * switched off, so a GEMM of given shapes always sums in the same order),
 * plain C column sums, SGD and AdamW.  Deterministic: every result depends only
 * on the operands and the shapes.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "mlp_math.h"
#include "optim_math.h"

void pr_cpu_sgemm(int m, int n, int k, const float *A, const float *B, float *C, int accumulate)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A, k, B, n,
                accumulate ? 1.0f : 0.0f, C, n);
}

typedef struct cpu_ctx {
    pr_bctx base;
    int step;
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
    char who[48];
    if (c->name[0])
        snprintf(who, sizeof who, "%s", c->name);
    else
        snprintf(who, sizeof who, "device %d", c->rank);
    snprintf(c->err, sizeof c->err, "[%s] %s %s%s%s", who, where, msg, op, last);
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
    openblas_set_num_threads(1); /* the device threads are the parallelism */
    c->base.rank = rank;
    c->base.step = &c->step;
    c->base.loss = c->loss;
    c->base.slots = slots;
    return &c->base;
}

static void cpu_close(pr_bctx *c) { free(c); }

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

static void cpu_release(pr_bctx *c, float *p) { free(p); }

static void cpu_weights(pr_bctx *c, float *p, size_t count) {}

static void cpu_copy(pr_bctx *c, float *dst, const float *src, size_t count)
{
    if (c->failed)
        return;
    memcpy(dst, src, count * sizeof(float));
}

static void cpu_zero(pr_bctx *c, float *p, size_t count)
{
    if (!c->failed)
        memset(p, 0, count * sizeof(float));
}

static void cpu_set_step(pr_bctx *c, int step) { ((cpu_ctx *)c)->step = step; }

static void cpu_gemm(pr_bctx *c, int ta, int tb, int m, int n, int k, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
    if (c->failed)
        return;
    cblas_sgemm(CblasRowMajor, ta == PR_T ? CblasTrans : CblasNoTrans,
                tb == PR_T ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, A, lda, B, ldb, beta, C,
                ldc);
}

static void cpu_gemm_batched(pr_bctx *c, int ta, int tb, int m, int n, int k, const float *A,
                             int lda, size_t sa, const float *B, int ldb, size_t sb, float beta,
                             float *C, int ldc, size_t sc, int count)
{
    for (int i = 0; i < count && !c->failed; i++)
        cpu_gemm(c, ta, tb, m, n, k, A + (size_t)i * sa, lda, B + (size_t)i * sb, ldb, beta,
                 C + (size_t)i * sc, ldc);
}

/* Row by row, so every column sums in row order. */
static void cpu_colsum(pr_bctx *c, const float *A, int rows, int cols, float *out)
{
    if (c->failed)
        return;
    for (int r = 0; r < rows; r++) {
        const float *a = A + (size_t)r * cols;
        for (int j = 0; j < cols; j++)
            out[j] += a[j];
    }
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

/* The bias corrections in double, rounded once (as torch computes them). */
static void cpu_adamw(pr_bctx *c, float *p, float *g, float *m, float *v, size_t count,
                      const pr_adamw *a)
{
    if (c->failed)
        return;
    double t = (double)*c->step * a->per_step + a->index + 1;
    pp_adamw_step st = {a->lr, a->beta1, a->beta2, a->eps, a->decay,
                        (float)(1.0 - pow(a->beta1, t)), (float)(1.0 - pow(a->beta2, t))};
    for (size_t i = 0; i < count; i++) {
        pp_adamw(&p[i], g[i], &m[i], &v[i], &st);
        g[i] = 0;
    }
}

static void cpu_add(pr_bctx *c, float *dst, const float *src, size_t count)
{
    if (c->failed)
        return;
    for (size_t i = 0; i < count; i++)
        dst[i] += src[i];
}

static void cpu_read_loss(pr_bctx *cb, double *out, int n)
{
    cpu_ctx *c = (cpu_ctx *)cb;
    for (int i = 0; i < n; i++)
        out[i] = i < cb->slots ? c->loss[i] : 0;
}

static void cpu_sync(pr_bctx *c) {}

static const pr_backend cpu_backend = {
    .name = "cpu",
    .device = PR_DEVICE_HOST,
    .open = cpu_open,
    .close = cpu_close,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .weights = cpu_weights,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .set_step = cpu_set_step,
    .gemm = cpu_gemm,
    .gemm_batched = cpu_gemm_batched,
    .colsum = cpu_colsum,
    .sgd = cpu_sgd,
    .adamw = cpu_adamw,
    .add = cpu_add,
    .read_loss = cpu_read_loss,
    .sync = cpu_sync,
};

const pr_backend *pr_backend_cpu(void) { return &cpu_backend; }
