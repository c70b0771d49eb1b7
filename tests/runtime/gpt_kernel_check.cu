/*
 * gpt_kernel_check.cu — the transformer's CUDA kernels (pr_gpt_kernels_cuda,
 * kernels/gpt_kernels.cu) and the CUDA backend's gemm_batched, adamw and
 * add, on the GPU, through a CUDA backend context as the layers call them,
 * against host references: the row functions of kernels/gpt_math.h in
 * plain loops (what runtime/gpt_kernels_cpu.c computes) and the CPU
 * backend; and a step of them captured as a CUDA graph and replayed at new
 * step numbers.  Part of kernel_check (main in kernel_check.cu).
 *
 * Tolerances (relative to the reference value, plus an absolute floor):
 *   bitwise   tokens, embed, the embedding's gradient (the CPU's order of
 *             adds), bias + residual, the bias add of bias + GELU, add;
 *   1e-6      GELU and its derivative (the GPU may fuse multiply-adds);
 *   1e-5      LayerNorm, the causal softmax, the cross-entropy's gradient,
 *             and their backwards: a row sums in 32 lane partials and a
 *             butterfly (kernels/gpt_launch.h), not in index order;
 *   n 1e-7    LayerNorm's weight gradient: a column sum of n terms in the
 *             column sum's order (as colsum);
 *   1e-6      the loss (rows' float sums in another order, added in double);
 *   AdamW     1e-6 (fused multiply-adds, the GPU's pow in the bias
 *             corrections rounded to float);
 *   GEMM      fp32 1e-5 of sum |a||b|; tf32 2^-8, bf16 2^-6 of it (operands
 *             rounded or truncated to 10 / 7 mantissa bits: at most 2^-9 /
 *             2^-6 relative a product, summed in fp32).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gpt_kernels.h"
#include "gpt_launch.h"
#include "kernel_check.h"
#include "optim_math.h"

static const pr_backend *be;
static const pr_gpt_kernels *K = &pr_gpt_kernels_cuda;

/* A CUDA backend context on GPU 0 with slots loss slots. */
static pr_bctx *open_ctx(int precision, size_t gemm_floats, int max_cols, int slots)
{
    pr_backend_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.devices = 1;
    cfg.microbatches = slots;
    cfg.gemm_floats = gemm_floats;
    cfg.max_cols = max_cols;
    cfg.precision = precision;
    cfg.gpu = 0;
    char err[512];
    pr_bctx *c = be->open(0, &cfg, err, sizeof err);
    if (!c) {
        printf("FAIL: the CUDA backend does not open: %s\n", err);
        exit(1);
    }
    return c;
}

/* The fp32 context the kernel checks share (as a run's device does),
 * opened again after a check left it failed. */
static pr_bctx *shared_ctx;

static pr_bctx *shared(void)
{
    if (shared_ctx && shared_ctx->failed) {
        be->close(shared_ctx);
        shared_ctx = NULL;
    }
    if (!shared_ctx)
        shared_ctx = open_ctx(PR_FP32, (size_t)1 << 22, 4096, 3);
    return shared_ctx;
}

/* A CPU backend context (the reference of the primitives). */
static pr_bctx *open_cpu(void)
{
    pr_backend_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.devices = 1;
    cfg.microbatches = 1;
    char err[512];
    pr_bctx *c = pr_backend_cpu()->open(0, &cfg, err, sizeof err);
    if (!c) {
        printf("FAIL: the CPU backend does not open: %s\n", err);
        exit(1);
    }
    return c;
}

/* The context did not fail (what it says if it did). */
static bool ok(pr_bctx *c, const char *what)
{
    be->sync(c);
    checks++;
    if (c->failed) {
        fail(what, "%s", c->err);
        return false;
    }
    return true;
}

static float *dread(pr_bctx *c, const float *d, size_t n, const char *what)
{
    be->sync(c);
    return device_read(d, n, what);
}

static int32_t *int_copy(const int32_t *h, size_t n)
{
    int32_t *d = NULL;
    CK(cudaMalloc(&d, (n ? n : 1) * sizeof(int32_t)));
    if (h)
        CK(cudaMemcpy(d, h, n * sizeof(int32_t), cudaMemcpyHostToDevice));
    return d;
}

/* values uniform in (-a, a) */
static float *host_scaled(size_t n, uint64_t id, float a)
{
    float *p = host_random(n, id);
    for (size_t i = 0; i < n; i++)
        p[i] *= a;
    return p;
}

/* ---- tokens ---- */

static void check_tokens(int64_t bytes, int seq, int vocab, int row0, int rows, int shift)
{
    char what[128];
    snprintf(what, sizeof what, "gpt tokens %s seq %d vocab %d rows %d+%d shift %d",
             bytes ? "data" : "synthetic", seq, vocab, row0, rows, shift);
    pr_bctx *c = shared();
    int step = 11;
    uint8_t *data = (uint8_t *)malloc(bytes ? bytes : 1), *ddata = NULL;
    for (int64_t i = 0; i < bytes; i++)
        data[i] = (uint8_t)(pp_splitmix64((uint64_t)i) >> 56);
    if (bytes) {
        CK(cudaMalloc(&ddata, bytes));
        CK(cudaMemcpy(ddata, data, bytes, cudaMemcpyHostToDevice));
    }
    size_t n = (size_t)rows * seq;
    float *dout = device_copy(NULL, n); /* int32 in float slots: the guard still works */
    be->set_step(c, step);
    K->tokens(c, ddata, bytes, 77, seq, vocab, row0, rows, shift, (int32_t *)dout);
    if (ok(c, what)) {
        float *got = dread(c, dout, n, what);
        int32_t *want = (int32_t *)malloc(n * sizeof(int32_t));
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < seq; i++)
                want[(size_t)r * seq + i] = pp_gpt_token(bytes ? data : NULL, bytes, 77, step,
                                                         row0 + r, seq, vocab, i + shift);
        checks++;
        if (memcmp(got, want, n * sizeof(int32_t)) != 0)
            fail(what, "differs from pp_gpt_token");
        free(got), free(want);
    }
    free(data);
    CK(cudaFree(ddata)), CK(cudaFree(dout));
}

/* ---- the embedding and its gradient ---- */

static int32_t *host_tokens(int n, int vocab, uint64_t id)
{
    int32_t *t = (int32_t *)malloc(n * sizeof(int32_t));
    for (int i = 0; i < n; i++)
        t[i] = (int32_t)(pp_splitmix64(id * 1000003u + (uint64_t)i) % (uint64_t)vocab);
    return t;
}

static void check_embed(int n, int seq, int h, int vocab)
{
    char what[96];
    snprintf(what, sizeof what, "gpt embed n %d seq %d h %d vocab %d", n, seq, h, vocab);
    pr_bctx *c = shared();
    int32_t *tok = host_tokens(n, vocab, 1);
    float *wte = host_random((size_t)vocab * h, 20), *wpe = host_random((size_t)seq * h, 21);
    int32_t *dtok = int_copy(tok, n);
    float *dwte = device_copy(wte, (size_t)vocab * h), *dwpe = device_copy(wpe, (size_t)seq * h);
    size_t count = (size_t)n * h;
    float *dy = device_copy(NULL, count);
    K->embed(c, dtok, dwte, dwpe, dy, n, seq, h);
    if (ok(c, what)) {
        float *got = dread(c, dy, count, what), *want = (float *)malloc(count * sizeof(float));
        for (int i = 0; i < n; i++)
            for (int j = 0; j < h; j++)
                want[(size_t)i * h + j] =
                    wte[(size_t)tok[i] * h + j] + wpe[(size_t)(i % seq) * h + j];
        compare(what, got, want, count, 0, 0);
        free(got), free(want);
    }
    free(tok), free(wte), free(wpe);
    CK(cudaFree(dtok)), CK(cudaFree(dwte)), CK(cudaFree(dwpe)), CK(cudaFree(dy));
}

/* The CPU loop's order: row by row, gwte and gwpe in the order of i. */
static void check_embed_backward(int n, int seq, int h, int vocab)
{
    char what[112];
    snprintf(what, sizeof what, "gpt embed_backward n %d seq %d h %d vocab %d", n, seq, h, vocab);
    pr_bctx *c = shared();
    int32_t *tok = host_tokens(n, vocab, 2);
    size_t count = (size_t)n * h, nte = (size_t)vocab * h, npe = (size_t)seq * h;
    float *dy = host_random(count, 22), *gwte = host_random(nte, 23), *gwpe = host_random(npe, 24);
    int32_t *dtok = int_copy(tok, n);
    float *d_dy = device_copy(dy, count), *dte = device_copy(gwte, nte),
          *dpe = device_copy(gwpe, npe);
    K->embed_backward(c, dtok, d_dy, dte, dpe, n, seq, h);
    if (ok(c, what)) {
        float *gte = dread(c, dte, nte, what), *gpe = dread(c, dpe, npe, what);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < h; j++) {
                gwte[(size_t)tok[i] * h + j] += dy[(size_t)i * h + j];
                gwpe[(size_t)(i % seq) * h + j] += dy[(size_t)i * h + j];
            }
        compare(what, gte, gwte, nte, 0, 0);
        compare(what, gpe, gwpe, npe, 0, 0);
        free(gte), free(gpe);
    }
    free(tok), free(dy), free(gwte), free(gwpe);
    CK(cudaFree(dtok)), CK(cudaFree(d_dy)), CK(cudaFree(dte)), CK(cudaFree(dpe));
}

/* ---- LayerNorm ---- */

static void check_layernorm(int n, int h)
{
    char what[64];
    snprintf(what, sizeof what, "gpt layernorm %dx%d", n, h);
    pr_bctx *c = shared();
    size_t count = (size_t)n * h;
    float *x = host_scaled(count, 30, 3.0f), *w = host_random(h, 31), *b = host_random(h, 32);
    float *dx = device_copy(x, count), *dw = device_copy(w, h), *db = device_copy(b, h);
    float *dout = device_copy(NULL, count), *dmean = device_copy(NULL, n),
          *drstd = device_copy(NULL, n);
    K->layernorm(c, dx, dw, db, dout, dmean, drstd, n, h);
    if (ok(c, what)) {
        float *y = (float *)malloc(count * sizeof(float)),
              *mean = (float *)malloc(n * sizeof(float)),
              *rstd = (float *)malloc(n * sizeof(float));
        for (int i = 0; i < n; i++)
            pp_layernorm_row(x + (size_t)i * h, w, b, y + (size_t)i * h, &mean[i], &rstd[i], h);
        float *gy = dread(c, dout, count, what), *gm = dread(c, dmean, n, what),
              *gr = dread(c, drstd, n, what);
        compare(what, gy, y, count, 1e-5, 1e-5);
        compare(what, gm, mean, n, 1e-5, 1e-6);
        compare(what, gr, rstd, n, 1e-5, 1e-6);
        free(y), free(mean), free(rstd), free(gy), free(gm), free(gr);
    }
    free(x), free(w), free(b);
    CK(cudaFree(dx)), CK(cudaFree(dw)), CK(cudaFree(db)), CK(cudaFree(dout)), CK(cudaFree(dmean)),
        CK(cudaFree(drstd));
}

/* mode 0: dres NULL; 1: dres separate; 2: dx is dres (in place) */
static void check_layernorm_backward(int n, int h, int mode)
{
    static const char *modes[] = {"", " + dres", " in place"};
    char what[80];
    snprintf(what, sizeof what, "gpt layernorm_backward %dx%d%s", n, h, modes[mode]);
    pr_bctx *c = shared();
    size_t count = (size_t)n * h;
    float *x = host_scaled(count, 33, 3.0f), *w = host_random(h, 34), *dy = host_random(count, 35),
          *dres = host_random(count, 36);
    float *mean = (float *)malloc(n * sizeof(float)), *rstd = (float *)malloc(n * sizeof(float)),
          *y = (float *)malloc(count * sizeof(float)),
          *want = (float *)malloc(count * sizeof(float));
    for (int i = 0; i < n; i++)
        pp_layernorm_row(x + (size_t)i * h, w, w, y + (size_t)i * h, &mean[i], &rstd[i], h);
    for (int i = 0; i < n; i++) {
        size_t o = (size_t)i * h;
        pp_layernorm_backward_row(dy + o, x + o, mean[i], rstd[i], w, mode ? dres + o : NULL,
                                  want + o, h);
    }
    float *d_x = device_copy(x, count), *d_w = device_copy(w, h), *d_dy = device_copy(dy, count),
          *d_res = device_copy(dres, count), *d_m = device_copy(mean, n),
          *d_r = device_copy(rstd, n);
    float *d_dx = mode == 2 ? d_res : device_copy(NULL, count);
    K->layernorm_backward(c, d_dy, d_x, d_m, d_r, d_w, mode ? d_res : NULL, d_dx, n, h);
    if (ok(c, what)) {
        float *got = dread(c, d_dx, count, what);
        compare(what, got, want, count, 1e-5, 2e-5);
        free(got);
    }
    free(x), free(w), free(dy), free(dres), free(mean), free(rstd), free(y), free(want);
    CK(cudaFree(d_x)), CK(cudaFree(d_w)), CK(cudaFree(d_dy)), CK(cudaFree(d_res)),
        CK(cudaFree(d_m)), CK(cudaFree(d_r));
    if (mode != 2)
        CK(cudaFree(d_dx));
}

/* dw and db accumulate: one chunk of rows, several (the scratch and a
 * second pass); the scratch starts as NaN. */
static void check_layernorm_backward_weight(int n, int h)
{
    char what[96];
    snprintf(what, sizeof what, "gpt layernorm_backward_weight %dx%d (%u chunk%s)", n, h,
             pp_colsum_chunks(n), pp_colsum_chunks(n) > 1 ? "s" : "");
    pr_bctx *c = shared();
    size_t count = (size_t)n * h;
    float *x = host_scaled(count, 37, 3.0f), *dy = host_random(count, 38),
          *dw0 = host_random(h, 39), *db0 = host_random(h, 40);
    float *mean = (float *)malloc(n * sizeof(float)), *rstd = (float *)malloc(n * sizeof(float)),
          *y = (float *)malloc(count * sizeof(float)), *ones = (float *)malloc(h * sizeof(float));
    for (int j = 0; j < h; j++)
        ones[j] = 1;
    for (int i = 0; i < n; i++)
        pp_layernorm_row(x + (size_t)i * h, ones, ones, y + (size_t)i * h, &mean[i], &rstd[i], h);
    float *d_x = device_copy(x, count), *d_dy = device_copy(dy, count), *d_m = device_copy(mean, n),
          *d_r = device_copy(rstd, n), *d_dw = device_copy(dw0, h), *d_db = device_copy(db0, h);
    K->layernorm_backward_weight(c, d_dy, d_x, d_m, d_r, d_dw, d_db, n, h);
    if (ok(c, what)) {
        float *gw = dread(c, d_dw, h, what), *gb = dread(c, d_db, h, what);
        checks++;
        for (int j = 0; j < h; j++) {
            double sw = dw0[j], sb = db0[j];
            for (int i = 0; i < n; i++) {
                size_t o = (size_t)i * h + j;
                sw += (double)dy[o] * ((x[o] - mean[i]) * rstd[i]);
                sb += dy[o];
            }
            double tol = 2e-7 * n + 1e-6;
            if (!(fabs(gw[j] - sw) <= tol * (1 + fabs(sw)) &&
                  fabs(gb[j] - sb) <= tol * (1 + fabs(sb)))) {
                fail(what, "column %d: dw %.9g want %.9g, db %.9g want %.9g", j, gw[j], sw, gb[j],
                     sb);
                break;
            }
        }
        free(gw), free(gb);
    }
    /* hidden wider than the column-sum scratch: an error, not a write past it */
    snprintf(what, sizeof what, "gpt layernorm_backward_weight %dx%d, scratch of %d columns", n, h,
             h - 1);
    if (h > 1) {
        pr_bctx *small = open_ctx(PR_FP32, 1, h - 1, 1);
        K->layernorm_backward_weight(small, d_dy, d_x, d_m, d_r, d_dw, d_db, n, h);
        checks++;
        if (!small->failed || !strstr(small->err, "column-sum scratch"))
            fail(what, "not refused (%s)", small->failed ? small->err : "no error");
        be->close(small);
    }
    free(x), free(dy), free(dw0), free(db0), free(mean), free(rstd), free(y), free(ones);
    CK(cudaFree(d_x)), CK(cudaFree(d_dy)), CK(cudaFree(d_m)), CK(cudaFree(d_r)), CK(cudaFree(d_dw)),
        CK(cudaFree(d_db));
}

/* ---- bias + residual, bias + GELU, GELU backward ---- */

static void check_bias_residual(int n, int cols, bool with_res)
{
    char what[80];
    snprintf(what, sizeof what, "gpt bias_residual %dx%d%s", n, cols, with_res ? " + res" : "");
    pr_bctx *c = shared();
    size_t count = (size_t)n * cols;
    float *y = host_random(count, 41), *b = host_random(cols, 42), *res = host_random(count, 43);
    float *d_y = device_copy(y, count), *d_b = device_copy(b, cols),
          *d_res = device_copy(res, count);
    K->bias_residual(c, d_y, d_b, with_res ? d_res : NULL, n, cols);
    if (ok(c, what)) {
        float *got = dread(c, d_y, count, what);
        for (size_t i = 0; i < count; i++) {
            float v = y[i] + b[i % cols];
            y[i] = with_res ? v + res[i] : v;
        }
        compare(what, got, y, count, 0, 0);
        free(got);
    }
    free(y), free(b), free(res);
    CK(cudaFree(d_y)), CK(cudaFree(d_b)), CK(cudaFree(d_res));
}

static void check_bias_gelu(int n, int f)
{
    char what[64];
    snprintf(what, sizeof what, "gpt bias_gelu %dx%d", n, f);
    pr_bctx *c = shared();
    size_t count = (size_t)n * f;
    float *u = host_scaled(count, 44, 4.0f), *b = host_random(f, 45),
          *g = (float *)malloc(count * 4);
    float *d_u = device_copy(u, count), *d_b = device_copy(b, f), *d_g = device_copy(NULL, count);
    K->bias_gelu(c, d_u, d_b, d_g, n, f);
    if (ok(c, what)) {
        float *gu = dread(c, d_u, count, what), *gg = dread(c, d_g, count, what);
        for (size_t i = 0; i < count; i++) {
            u[i] += b[i % f];
            g[i] = pp_gelu(u[i]);
        }
        compare(what, gu, u, count, 0, 0);
        compare(what, gg, g, count, 1e-6, 1e-6);
        free(gu), free(gg);
    }
    free(u), free(b), free(g);
    CK(cudaFree(d_u)), CK(cudaFree(d_b)), CK(cudaFree(d_g));
}

static void check_gelu_backward(size_t count, bool in_place)
{
    char what[64];
    snprintf(what, sizeof what, "gpt gelu_backward %zu%s", count, in_place ? " in place" : "");
    pr_bctx *c = shared();
    float *dg = host_random(count, 46), *u = host_scaled(count, 47, 4.0f);
    float *d_dg = device_copy(dg, count), *d_u = device_copy(u, count);
    float *d_du = in_place ? d_dg : device_copy(NULL, count);
    K->gelu_backward(c, d_dg, d_u, d_du, count);
    if (ok(c, what)) {
        float *got = dread(c, d_du, count, what);
        for (size_t i = 0; i < count; i++)
            dg[i] = dg[i] * pp_gelu_grad(u[i]);
        compare(what, got, dg, count, 1e-6, 1e-6);
        free(got);
    }
    free(dg), free(u);
    CK(cudaFree(d_dg)), CK(cudaFree(d_u));
    if (!in_place)
        CK(cudaFree(d_du));
}

/* ---- the causal softmax ---- */

static void check_causal_softmax(int count, int t)
{
    char what[64];
    snprintf(what, sizeof what, "gpt causal_softmax %d x [%d, %d]", count, t, t);
    pr_bctx *c = shared();
    size_t n = (size_t)count * t * t;
    float scale = 1.0f / sqrtf(64.0f);
    float *s = host_scaled(n, 48, 20.0f), *dp = host_random(n, 49);
    float *d_s = device_copy(s, n), *d_dp = device_copy(dp, n);
    K->causal_softmax(c, d_s, count, t, scale);
    float *p = (float *)malloc(n * sizeof(float));
    for (size_t r = 0; r < (size_t)count * t; r++)
        pp_causal_softmax_row(s + r * t, p + r * t, (int)(r % t), t, scale);
    if (ok(c, what)) {
        float *got = dread(c, d_s, n, what);
        compare(what, got, p, n, 1e-5, 1e-7); /* what is past q: 0 in both, exactly */
        free(got);
    }
    /* the backward from the reference's p, in place in dp */
    snprintf(what, sizeof what, "gpt causal_softmax_backward %d x [%d, %d]", count, t, t);
    float *d_p = device_copy(p, n);
    K->causal_softmax_backward(c, d_p, d_dp, count, t, scale);
    if (ok(c, what)) {
        float *got = dread(c, d_dp, n, what);
        for (size_t r = 0; r < (size_t)count * t; r++)
            pp_causal_softmax_backward_row(p + r * t, dp + r * t, dp + r * t, (int)(r % t), t,
                                           scale);
        compare(what, got, dp, n, 1e-5, 1e-7);
        free(got);
    }
    free(s), free(dp), free(p);
    CK(cudaFree(d_s)), CK(cudaFree(d_dp)), CK(cudaFree(d_p));
}

/* ---- the cross-entropy ---- */

static void check_cross_entropy(int n, int v, bool in_place)
{
    char what[96];
    unsigned nb = pp_gpt_row_blocks((size_t)n, PP_GPT_CE_MAX_BLOCKS);
    snprintf(what, sizeof what, "gpt cross_entropy %dx%d (%u block%s)%s", n, v, nb,
             nb > 1 ? "s" : "", in_place ? " in place" : "");
    pr_bctx *c = shared();
    size_t count = (size_t)n * v;
    float scale = 1.0f / 3000;
    float *z = host_scaled(count, 50, 8.0f), *dz = (float *)malloc((count ? count : 1) * 4);
    int32_t *tg = host_tokens(n, v, 3);
    float *d_z = device_copy(z, count), *d_dz = in_place ? d_z : device_copy(NULL, count);
    int32_t *d_tg = int_copy(tg, n);
    be->sync(c);
    CK(cudaMemset(c->loss, 0xff, 3 * sizeof(double))); /* NaN: slot 1 must be overwritten */
    CK(cudaDeviceSynchronize());
    K->cross_entropy(c, d_z, d_tg, d_dz, n, v, scale, 1);
    if (ok(c, what)) {
        double want = 0, got[3];
        for (int i = 0; i < n; i++)
            want += pp_cross_entropy_row(z + (size_t)i * v, tg[i], v, scale, dz + (size_t)i * v);
        float *gdz = dread(c, d_dz, count, what);
        compare(what, gdz, dz, count, 1e-5, 1e-6 * scale);
        be->read_loss(c, got, 3);
        checks++;
        if (!(fabs(got[1] - want) <= 1e-6 * fabs(want) + 1e-9))
            fail(what, "loss %.17g, want %.17g", got[1], want);
        if (!isnan(got[0]) || !isnan(got[2]))
            fail(what, "wrote into another loss slot");
        free(gdz);
    }
    free(z), free(dz), free(tg);
    CK(cudaFree(d_z)), CK(cudaFree(d_tg));
    if (!in_place)
        CK(cudaFree(d_dz));
}

/* ---- the backend's primitives ---- */

/* count GEMMs on the GPU at `precision` against the CPU backend's
 * (OpenBLAS, fp32), the stored operands padded (ld > width) and strided
 * apart by more than they span; B is registered as weights when
 * b_weights (under bf16: its shadow, not the scratch). */
static void check_gemm_batched(int precision, int ta, int tb, int m, int n, int k, int count,
                               float beta, bool b_weights, bool tight = false)
{
    static const char *prec[] = {"fp32", "tf32", "bf16"};
    char what[128];
    snprintf(what, sizeof what, "gemm_batched %s %c%c m %d n %d k %d x %d beta %g%s%s",
             prec[precision], ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, count, beta,
             b_weights ? " (B weights)" : "", tight ? " (scratch of the packed operands)" : "");
    int ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
    int lda = ac + 3, ldb = bc + 1, ldc = n + 2;
    size_t sa = (size_t)ar * lda + 5, sb = (size_t)br * ldb + 7, sc = (size_t)m * ldc + 1;
    size_t na = sa * count, nb = sb * count, nc = sc * count;
    float *A = host_random(na, 60), *B = host_random(nb, 61), *C = host_random(nc, 62);
    float *want = (float *)malloc(nc * sizeof(float)), *bound = (float *)calloc(nc, sizeof(float));
    memcpy(want, C, nc * sizeof(float));
    /* tight: a scratch of just the elements read (bf16 packs them), less
     * than the strided span the operands lie in */
    size_t pa = (size_t)ar * ac * count, pb = (size_t)br * bc * count;
    size_t scratch = tight ? (pa > pb ? pa : pb) : na > nb ? na : nb;
    pr_bctx *c = open_ctx(precision, scratch, 1, 1);
    pr_bctx *h = open_cpu();
    pr_backend_cpu()->gemm_batched(h, ta, tb, m, n, k, A, lda, sa, B, ldb, sb, beta, want, ldc, sc,
                                   count);
    pr_backend_cpu()->close(h);
    for (int q = 0; q < count; q++) /* sum |a||b| + |beta c|: the scale of each element's error */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = fabs(beta * C[q * sc + (size_t)i * ldc + j]);
                for (int l = 0; l < k; l++) {
                    float a =
                        ta ? A[q * sa + (size_t)l * lda + i] : A[q * sa + (size_t)i * lda + l];
                    float b =
                        tb ? B[q * sb + (size_t)j * ldb + l] : B[q * sb + (size_t)l * ldb + j];
                    s += fabs((double)a * b);
                }
                bound[q * sc + (size_t)i * ldc + j] = (float)s;
            }
    float *dA = device_copy(A, na), *dB = device_copy(B, nb), *dC = device_copy(C, nc);
    if (b_weights)
        be->weights(c, dB, nb), be->upload(c, dB, B, nb);
    be->gemm_batched(c, ta, tb, m, n, k, dA, lda, sa, dB, ldb, sb, beta, dC, ldc, sc, count);
    if (ok(c, what)) {
        float *got = dread(c, dC, nc, what);
        /* operands rounded to 10 (tf32) or 7 (bf16) mantissa bits, perhaps by truncation */
        double rel = precision == PR_FP32 ? 1e-5 : precision == PR_TF32 ? 1.0 / 256 : 1.0 / 64;
        checks++;
        for (size_t i = 0; i < nc; i++)
            if (!(fabs((double)got[i] - want[i]) <= rel * bound[i] + 1e-6)) {
                fail(what, "element %zu of %zu: %.9g, want %.9g (scale %.3g)", i, nc, got[i],
                     want[i], bound[i]);
                break;
            }
        free(got);
    }
    be->close(c);
    free(A), free(B), free(C), free(want), free(bound);
    CK(cudaFree(dA)), CK(cudaFree(dB)), CK(cudaFree(dC));
}

/* Under bf16 an operand larger than the scratch is refused, naming it. */
static void check_gemm_batched_scratch(void)
{
    const char *what = "gemm_batched bf16: an operand past the scratch";
    int m = 16, n = 16, k = 16, count = 4;
    size_t per = (size_t)m * k;
    pr_bctx *c = open_ctx(PR_BF16, per * count - 1, 1, 1);
    float *dA = device_copy(NULL, per * count), *dB = device_copy(NULL, per * count),
          *dC = device_copy(NULL, per * count);
    be->gemm_batched(c, PR_N, PR_N, m, n, k, dA, k, per, dB, n, per, 0, dC, n, per, count);
    be->sync(c);
    checks++;
    if (!c->failed || !strstr(c->err, "gemm_batched") || !strstr(c->err, "gemm_floats"))
        fail(what, "not refused as it should be (%s)", c->failed ? c->err : "no error");
    be->close(c);
    CK(cudaFree(dA)), CK(cudaFree(dB)), CK(cudaFree(dC));
}

/* Three steps of AdamW (set_step on the device, as a captured step
 * replays) against the CPU backend's; under bf16 the shadow must be
 * bf16(p) after the update: a bf16 GEMM of the identity by p reads it. */
static void check_adamw(size_t count, float decay, int precision)
{
    char what[96];
    snprintf(what, sizeof what, "adamw %zu decay %g%s", count, decay,
             precision == PR_BF16 ? " with bf16 shadow" : "");
    int cols = 64;
    size_t rows = (count + cols - 1) / cols, padded = rows * cols;
    pr_bctx *c =
        open_ctx(precision, padded > (size_t)cols * cols ? padded : (size_t)cols * cols, 1, 1);
    pr_bctx *h = open_cpu();
    float *p = host_random(padded, 63), *m = (float *)calloc(padded, 4),
          *v = (float *)calloc(padded, 4);
    float *dp = device_copy(p, padded), *dg = device_copy(NULL, padded),
          *dm = device_copy(m, padded), *dv = device_copy(v, padded);
    be->weights(c, dp, padded);
    be->upload(c, dp, p, padded);
    pr_adamw a = {1e-3f, 0.9f, 0.95f, 1e-8f, decay, 2, 1};
    for (int step = 0; step < 3; step++) {
        float *g = host_random(padded, 64 + step);
        be->upload(c, dg, g, padded);
        be->set_step(c, step);
        pr_backend_cpu()->set_step(h, step);
        be->adamw(c, dp, dg, dm, dv, count, &a);
        pr_backend_cpu()->adamw(h, p, g, m, v, count, &a);
        free(g);
    }
    if (ok(c, what)) {
        float *gp = dread(c, dp, padded, what), *gm = dread(c, dm, padded, what),
              *gv = dread(c, dv, padded, what), *gg = dread(c, dg, padded, what);
        compare(what, gp, p, count, 1e-6, 1e-7);
        compare(what, gm, m, count, 1e-6, 1e-9);
        compare(what, gv, v, count, 1e-6, 1e-12);
        float *zero = (float *)calloc(padded, 4);
        compare(what, gg, zero, count, 0, 0); /* the gradient is cleared */
        if (precision == PR_BF16) {
            float *eye = (float *)calloc((size_t)rows * rows, 4);
            for (size_t i = 0; i < rows; i++)
                eye[i * rows + i] = 1;
            float *deye = device_copy(eye, rows * rows), *dout = device_copy(NULL, padded);
            be->gemm(c, PR_N, PR_N, (int)rows, cols, (int)rows, deye, (int)rows, dp, cols, 0, dout,
                     cols);
            float *got = dread(c, dout, padded, what);
            for (size_t i = 0; i < padded; i++)
                gp[i] = bf16_round_host(gp[i]);
            compare("adamw bf16 shadow", got, gp, padded, 0, 0);
            free(eye), free(got);
            CK(cudaFree(deye)), CK(cudaFree(dout));
        }
        free(gp), free(gm), free(gv), free(gg), free(zero);
    }
    be->close(c);
    pr_backend_cpu()->close(h);
    free(p), free(m), free(v);
    CK(cudaFree(dp)), CK(cudaFree(dg)), CK(cudaFree(dm)), CK(cudaFree(dv));
}

static void check_add(size_t count)
{
    char what[64];
    snprintf(what, sizeof what, "add %zu", count);
    pr_bctx *c = open_ctx(PR_FP32, 1, 1, 1);
    float *a = host_random(count, 70), *b = host_random(count, 71);
    float *da = device_copy(a, count), *db = device_copy(b, count);
    be->add(c, da, db, count);
    if (ok(c, what)) {
        float *got = dread(c, da, count, what);
        for (size_t i = 0; i < count; i++)
            a[i] += b[i];
        compare(what, got, a, count, 0, 0);
        free(got);
    }
    be->close(c);
    free(a), free(b);
    CK(cudaFree(da)), CK(cudaFree(db));
}

/* A step captured as a CUDA graph (the backend's capture_begin / end) and
 * replayed twice with new step numbers: the tokens kernel and AdamW read
 * the step the replay sets, so each replay draws that step's tokens and
 * makes that step's update (as the CPU backend does at those steps). */
static void check_graph_replay(void)
{
    const char *what = "gpt tokens + adamw captured in a CUDA graph, replayed at steps 5 and 6";
    int seq = 40, rows = 3, vocab = 256;
    size_t n = (size_t)rows * seq, count = 1000;
    pr_bctx *c = open_ctx(PR_FP32, 1, 1, 1);
    pr_bctx *h = open_cpu();
    float *dtok = device_copy(NULL, n);
    float *p = host_random(count, 80), *g = host_random(count, 81);
    float *m = (float *)calloc(count, 4), *v = (float *)calloc(count, 4);
    float *dp = device_copy(p, count), *dg = device_copy(NULL, count), *dm = device_copy(m, count),
          *dv = device_copy(v, count), *dgrad = device_copy(g, count);
    pr_adamw a = {1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, 2};
    if (be->capture_begin(&c, 1) != 0) {
        checks++;
        fail(what, "capture_begin: %s", c->err);
        goto out;
    }
    K->tokens(c, NULL, 0, 5, seq, vocab, 0, rows, 1, (int32_t *)dtok);
    be->copy(c, dg, dgrad, count); /* adamw clears g: a replay needs its gradient again */
    be->adamw(c, dp, dg, dm, dv, count, &a);
    if (be->capture_end(&c, 1) != 0) {
        checks++;
        fail(what, "capture_end: %s", c->err);
        goto out;
    }
    for (int step = 5; step <= 6; step++) {
        checks++;
        if (be->graph_step(&c, 1, step) != 0) {
            fail(what, "graph_step %d: %s", step, c->err);
            goto out;
        }
        float *gt = dread(c, dtok, n, what), *gp = dread(c, dp, count, what);
        int32_t *want = (int32_t *)malloc(n * sizeof(int32_t));
        for (int r = 0; r < rows; r++)
            for (int i = 0; i < seq; i++)
                want[(size_t)r * seq + i] = pp_gpt_token(NULL, 0, 5, step, r, seq, vocab, i + 1);
        checks++;
        if (memcmp(gt, want, n * sizeof(int32_t)) != 0)
            fail(what, "step %d: the tokens are not that step's", step);
        float *gc = (float *)malloc(count * 4);
        memcpy(gc, g, count * 4);
        pr_backend_cpu()->set_step(h, step);
        pr_backend_cpu()->adamw(h, p, gc, m, v, count, &a);
        compare(what, gp, p, count, 1e-6, 1e-7); /* a wrong t moves p by ~lr: far outside */
        free(gt), free(gp), free(want), free(gc);
    }
out:
    be->close(c);
    pr_backend_cpu()->close(h);
    free(p), free(g), free(m), free(v);
    CK(cudaFree(dtok)), CK(cudaFree(dp)), CK(cudaFree(dg)), CK(cudaFree(dm)), CK(cudaFree(dv)),
        CK(cudaFree(dgrad));
}

void gpt_kernel_checks(void)
{
    be = pr_backend_cuda();
    check_tokens(0, 1, 1, 0, 1, 0);
    check_tokens(0, 128, 50257, 3, 9, 0);
    check_tokens(0, 128, 50257, 3, 9, 1);  /* the targets */
    check_tokens(5000, 64, 256, 0, 33, 0); /* from data */
    check_tokens(5000, 64, 256, 0, 33, 1);
    check_embed(1, 1, 1, 1);
    check_embed(7 * 33, 33, 65, 256);
    check_embed(2048, 1024, 768, 4096);
    /* many repeats (vocab 5), n not a multiple of a warp, n below seq, a
     * vocabulary larger than the tokens */
    check_embed_backward(1, 1, 1, 1);
    check_embed_backward(3 * 37, 37, 33, 5);
    check_embed_backward(50, 64, 96, 256);
    check_embed_backward(4 * 256, 256, 300, 256);
    check_embed_backward(2048, 1024, 768, 50257);
    const int ln[][2] = {{1, 1}, {7, 33}, {257, 96}, {33, 1000}, {1024, 768}, {3, 2100}};
    for (size_t i = 0; i < sizeof ln / sizeof ln[0]; i++) {
        check_layernorm(ln[i][0], ln[i][1]);
        for (int mode = 0; mode < 3; mode++)
            check_layernorm_backward(ln[i][0], ln[i][1], mode);
    }
    const int lnw[][2] = {{1, 1},
                          {7, 33},
                          {PP_COLSUM_CHUNK_ROWS, 64},
                          {PP_COLSUM_CHUNK_ROWS + 1, 96},
                          {2048, 768},
                          {PP_COLSUM_CHUNK_ROWS * PP_COLSUM_MAX_CHUNKS * 2 + 7, 65}};
    for (size_t i = 0; i < sizeof lnw / sizeof lnw[0]; i++)
        check_layernorm_backward_weight(lnw[i][0], lnw[i][1]);
    check_bias_residual(1, 1, false);
    check_bias_residual(257, 96, false);
    check_bias_residual(257, 96, true);
    check_bias_gelu(1, 1);
    check_bias_gelu(257, 3 * 96);
    check_gelu_backward(1, false);
    check_gelu_backward(257 * 384, false);
    check_gelu_backward(257 * 384, true);
    const int sm[][2] = {{1, 1}, {3, 7}, {2, 33}, {5, 128}, {2, 1024}};
    for (size_t i = 0; i < sizeof sm / sizeof sm[0]; i++)
        check_causal_softmax(sm[i][0], sm[i][1]);
    /* one block, several, past the cap on blocks (grid-stride rows), a vocabulary of GPT-2's */
    check_cross_entropy(1, 1, false);
    check_cross_entropy(5, 7, false);
    check_cross_entropy(100, 256, false);
    check_cross_entropy(100, 256, true);
    check_cross_entropy(PP_GPT_ROWS_PER_BLOCK * PP_GPT_CE_MAX_BLOCKS * 2 + 3, 8, false);
    check_cross_entropy(3, 50257, true);
    for (int prec = PR_FP32; prec <= PR_BF16; prec++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                check_gemm_batched(prec, ta, tb, 17, 33, 65, 3, ta ? 1.0f : 0.0f, false);
    check_gemm_batched(PR_FP32, PR_N, PR_T, 64, 64, 32, 12, 0, false); /* scores Q K^T */
    check_gemm_batched(PR_BF16, PR_N, PR_N, 64, 32, 64, 12, 0, true);
    check_gemm_batched(PR_FP32, PR_N, PR_N, 5, 7, 3, 1, 0, false);
    /* a head of a batched attention GEMM: operands strided through larger
     * buffers, the scratch only as large as what is read */
    check_gemm_batched(PR_BF16, PR_N, PR_T, 64, 64, 32, 12, 0, false, true);
    check_gemm_batched(PR_BF16, PR_T, PR_N, 33, 17, 65, 3, 1.0f, false, true);
    check_gemm_batched_scratch();
    check_adamw(1, 0.1f, PR_FP32);
    check_adamw(64 * 64 + 3, 0.1f, PR_FP32);
    check_adamw(64 * 64 + 3, 0.0f, PR_FP32);
    check_adamw(64 * 64, 0.1f, PR_BF16);
    check_add(1);
    check_add((size_t)1000 * 1000 + 3);
    check_graph_replay();
    be->close(shared());
    shared_ctx = NULL;
}
