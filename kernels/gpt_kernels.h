/*
 * gpt_kernels.h — the transformer's element-wise and row kernels, as a
 * table its layers (runtime/gpt_layers.c) call on any device: the CPU's
 * (runtime/gpt_kernels_cpu.c) and CUDA's (kernels/gpt_kernels.cu) compute
 * with the same row functions (gpt_math.h).  Matrices are row-major; n is
 * a count of rows (tokens, or rows of attention scores), h, f, v widths.
 * A failure is recorded in the context (pr_bctx_fail).  Plain C: nvcc
 * includes it too.
 */
#ifndef PP_GPT_KERNELS_H
#define PP_GPT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pr_gpt_kernels {
    /* out[r * seq + i] = token shift + i (shift 0: the inputs, 1: the
     * targets) of sequence row0 + r of step *c->step (gpt_math.h
     * pp_gpt_token; data NULL: synthetic), for rows sequences. */
    void (*tokens)(pr_bctx *c, const uint8_t *data, int64_t bytes, uint64_t seed, int seq,
                   int vocab, int row0, int rows, int shift, int32_t *out);
    /* y[i] = wte[tok[i]] + wpe[i mod seq], rows of h; n tokens. */
    void (*embed)(pr_bctx *c, const int32_t *tok, const float *wte, const float *wpe, float *y,
                  int n, int seq, int h);
    /* gwte[tok[i]] += dy[i], gwpe[i mod seq] += dy[i], in the order of i
     * (deterministic). */
    void (*embed_backward)(pr_bctx *c, const int32_t *tok, const float *dy, float *gwte,
                           float *gwpe, int n, int seq, int h);
    /* y = LN(x) (pp_layernorm_row), mean and rstd [n] kept for the backward. */
    void (*layernorm)(pr_bctx *c, const float *x, const float *w, const float *b, float *y,
                      float *mean, float *rstd, int n, int h);
    /* dx = dres (NULL: 0) + the input gradient of LN at x for dy
     * (pp_layernorm_backward_row); dx may be dres. */
    void (*layernorm_backward)(pr_bctx *c, const float *dy, const float *x, const float *mean,
                               const float *rstd, const float *w, const float *dres, float *dx,
                               int n, int h);
    /* dw[j] += sum_i dy[i][j] xhat[i][j], db[j] += sum_i dy[i][j], in row order. */
    void (*layernorm_backward_weight)(pr_bctx *c, const float *dy, const float *x,
                                      const float *mean, const float *rstd, float *dw, float *db,
                                      int n, int h);
    /* y[i][j] += b[j] (+ res[i][j] unless res is NULL). */
    void (*bias_residual)(pr_bctx *c, float *y, const float *b, const float *res, int n, int cols);
    /* u[i][j] += b[j]; g = gelu(u).  [n, f]. */
    void (*bias_gelu)(pr_bctx *c, float *u, const float *b, float *g, int n, int f);
    /* du = dg gelu'(u) (du may be dg). */
    void (*gelu_backward)(pr_bctx *c, const float *dg, const float *u, float *du, size_t count);
    /* In place, each of count [t, t] blocks: row q becomes the causal
     * softmax of scale s (pp_causal_softmax_row). */
    void (*causal_softmax)(pr_bctx *c, float *s, int count, int t, float scale);
    /* In place, dp becomes ds (pp_causal_softmax_backward_row) given p. */
    void (*causal_softmax_backward)(pr_bctx *c, const float *p, float *dp, int count, int t,
                                    float scale);
    /* dz = (softmax(z) - onehot(target)) scale per row; loss slot `slot` =
     * the sum over the n rows of -log softmax(z)[target]. */
    void (*cross_entropy)(pr_bctx *c, const float *z, const int32_t *target, float *dz, int n,
                          int v, float scale, int slot);
} pr_gpt_kernels;

extern const pr_gpt_kernels pr_gpt_kernels_cpu;
extern const pr_gpt_kernels pr_gpt_kernels_cuda; /* built with CUDA only */

#ifdef __cplusplus
}
#endif

#endif
