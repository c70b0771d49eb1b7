/*
 * gpt_kernels_cpu.c — the transformer's kernels on the CPU
 * (kernels/gpt_kernels.h): loops over the row functions of
 * kernels/gpt_math.h, which the CUDA kernels and the --check reference
 * compute with too.  Deterministic: sums in index order.
 */
#include <string.h>

#include "gpt_kernels.h"
#include "gpt_math.h"

/* The GELU loops (the most time outside the GEMMs) and the row kernels
 * are also compiled for AVX-512 and AVX2, and the CPU's best is picked when
 * pprun loads (an ifunc).  Each vector lane computes the scalar formula
 * exactly (IEEE operations, no FMA contraction: -ffp-contract=off,
 * runtime/meson.build) and the sums stay in index order (not vectorised),
 * so the results do not depend on the machine. */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef CPU_CLONES
#define CPU_CLONES
#endif

static void cpu_tokens(pr_bctx *c, const uint8_t *data, int64_t bytes, uint64_t seed, int seq,
                       int vocab, int row0, int rows, int shift, int32_t *out)
{
    if (c->failed)
        return;
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < seq; i++)
            out[(size_t)r * seq + i] =
                pp_gpt_token(data, bytes, seed, *c->step, (int64_t)row0 + r, seq, vocab, i + shift);
}

static void cpu_embed(pr_bctx *c, const int32_t *tok, const float *wte, const float *wpe,
                      float *y, int n, int seq, int h)
{
    if (c->failed)
        return;
    for (int i = 0; i < n; i++) {
        const float *e = wte + (size_t)tok[i] * h, *p = wpe + (size_t)(i % seq) * h;
        float *yi = y + (size_t)i * h;
        for (int j = 0; j < h; j++)
            yi[j] = e[j] + p[j];
    }
}

static void cpu_embed_backward(pr_bctx *c, const int32_t *tok, const float *dy, float *gwte,
                               float *gwpe, int n, int seq, int h)
{
    if (c->failed)
        return;
    for (int i = 0; i < n; i++) {
        const float *d = dy + (size_t)i * h;
        float *e = gwte + (size_t)tok[i] * h, *p = gwpe + (size_t)(i % seq) * h;
        for (int j = 0; j < h; j++) {
            e[j] += d[j];
            p[j] += d[j];
        }
    }
}

CPU_CLONES static void cpu_layernorm(pr_bctx *c, const float *x, const float *w, const float *b, float *y,
                          float *mean, float *rstd, int n, int h)
{
    if (c->failed)
        return;
    for (int i = 0; i < n; i++)
        pp_layernorm_row(x + (size_t)i * h, w, b, y + (size_t)i * h, &mean[i], &rstd[i], h);
}

CPU_CLONES static void cpu_layernorm_backward(pr_bctx *c, const float *dy, const float *x, const float *mean,
                                   const float *rstd, const float *w, const float *dres, float *dx,
                                   int n, int h)
{
    if (c->failed)
        return;
    for (int i = 0; i < n; i++) {
        size_t o = (size_t)i * h;
        pp_layernorm_backward_row(dy + o, x + o, mean[i], rstd[i], w, dres ? dres + o : NULL,
                                  dx + o, h);
    }
}

static void cpu_layernorm_backward_weight(pr_bctx *c, const float *dy, const float *x,
                                          const float *mean, const float *rstd, float *dw,
                                          float *db, int n, int h)
{
    if (c->failed)
        return;
    for (int i = 0; i < n; i++) {
        const float *d = dy + (size_t)i * h, *xi = x + (size_t)i * h;
        for (int j = 0; j < h; j++) {
            dw[j] += d[j] * ((xi[j] - mean[i]) * rstd[i]);
            db[j] += d[j];
        }
    }
}

static void cpu_bias_residual(pr_bctx *c, float *y, const float *b, const float *res, int n,
                              int cols)
{
    if (c->failed)
        return;
    for (int i = 0; i < n; i++) {
        float *yi = y + (size_t)i * cols;
        const float *ri = res ? res + (size_t)i * cols : NULL;
        if (ri)
            for (int j = 0; j < cols; j++)
                yi[j] = (yi[j] + b[j]) + ri[j];
        else
            for (int j = 0; j < cols; j++)
                yi[j] += b[j];
    }
}

CPU_CLONES static void cpu_bias_gelu(pr_bctx *c, float *u, const float *b, float *g, int n, int f)
{
    if (c->failed)
        return;
    for (int i = 0; i < n; i++) {
        /* restrict: u, b and g do not overlap, so the loop vectorises */
        float *restrict ui = u + (size_t)i * f, *restrict gi = g + (size_t)i * f;
        const float *restrict bi = b;
        for (int j = 0; j < f; j++) {
            float z = ui[j] + bi[j];
            ui[j] = z;
            gi[j] = pp_gelu(z);
        }
    }
}

CPU_CLONES static void cpu_gelu_backward(pr_bctx *c, const float *dg, const float *u, float *du, size_t count)
{
    if (c->failed)
        return;
    for (size_t i = 0; i < count; i++)
        du[i] = dg[i] * pp_gelu_grad(u[i]);
}

CPU_CLONES static void cpu_causal_softmax(pr_bctx *c, float *s, int count, int t, float scale)
{
    if (c->failed)
        return;
    for (size_t r = 0; r < (size_t)count * t; r++)
        pp_causal_softmax_row(s + r * t, s + r * t, (int)(r % t), t, scale);
}

CPU_CLONES static void cpu_causal_softmax_backward(pr_bctx *c, const float *p, float *dp, int count, int t,
                                        float scale)
{
    if (c->failed)
        return;
    for (size_t r = 0; r < (size_t)count * t; r++)
        pp_causal_softmax_backward_row(p + r * t, dp + r * t, dp + r * t, (int)(r % t), t, scale);
}

CPU_CLONES static void cpu_cross_entropy(pr_bctx *c, const float *z, const int32_t *target, float *dz, int n,
                              int v, float scale, int slot)
{
    if (c->failed)
        return;
    if (slot < 0 || slot >= c->slots) {
        pr_bctx_fail(c, "gpt cross-entropy:", "loss slot out of range");
        return;
    }
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += pp_cross_entropy_row(z + (size_t)i * v, target[i], v, scale, dz + (size_t)i * v);
    c->loss[slot] = sum;
}

const pr_gpt_kernels pr_gpt_kernels_cpu = {
    .tokens = cpu_tokens,
    .embed = cpu_embed,
    .embed_backward = cpu_embed_backward,
    .layernorm = cpu_layernorm,
    .layernorm_backward = cpu_layernorm_backward,
    .layernorm_backward_weight = cpu_layernorm_backward_weight,
    .bias_residual = cpu_bias_residual,
    .bias_gelu = cpu_bias_gelu,
    .gelu_backward = cpu_gelu_backward,
    .causal_softmax = cpu_causal_softmax,
    .causal_softmax_backward = cpu_causal_softmax_backward,
    .cross_entropy = cpu_cross_entropy,
};
