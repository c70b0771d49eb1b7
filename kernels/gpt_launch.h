/*
 * gpt_launch.h — the launch shapes and per-element / per-lane bodies of the
 * transformer's CUDA kernels (kernels/gpt_kernels.cu), in plain C so that
 * a CPU test (tests/runtime/test_gpt_kernel_shapes.c) runs the same index
 * arithmetic and the same lane decomposition without a GPU.  The math is
 * gpt_math.h's (and mlp_math.h's GELU); what differs from its row
 * functions is only where a row is split between lanes:
 *
 * A row kernel gives each row to one warp of PP_GPT_LANES lanes.  Lane l
 * takes the row's elements l, l + LANES, l + 2 LANES, ... in that order,
 * so a row's sum is LANES partial sums (each in index order) combined by
 * the butterfly of pp_gpt_lane_tree (the warp's __shfl_xor_sync steps 16,
 * 8, 4, 2, 1): fixed for a given width, so every run sums alike, but not
 * the row function's one running sum.  Maxima are exact in any order.
 * Every per-element formula is the row function's, term for term.
 */
#ifndef PP_GPT_LAUNCH_H
#define PP_GPT_LAUNCH_H

#include <stddef.h>
#include <stdint.h>

#include "gpt_math.h"
#include "mlp_launch.h" /* PP_THREADS, pp_blocks_for, the column sum's shapes, PP_MSE_MAX_BLOCKS */

#define PP_GPT_LANES 32 /* a warp: the lanes of one row */
#define PP_GPT_ROWS_PER_BLOCK (PP_THREADS / PP_GPT_LANES)
/* The cross-entropy's loss: one partial per block (in the backend's
 * PP_MSE_MAX_BLOCKS doubles of MSE scratch), then one thread sums them. */
#define PP_GPT_CE_MAX_BLOCKS PP_MSE_MAX_BLOCKS

/* Blocks of a row kernel over `rows` rows (grid-stride over rows past the cap). */
static inline PP_HD unsigned pp_gpt_row_blocks(size_t rows, unsigned cap)
{
    size_t b = (rows + PP_GPT_ROWS_PER_BLOCK - 1) / PP_GPT_ROWS_PER_BLOCK;
    return b == 0 ? 1u : b < cap ? (unsigned)b : cap;
}

/* The butterfly over LANES partials: after step w each v[l] is
 * v[l] + v[l ^ w] (a + b == b + a bitwise, so partners agree and every
 * lane ends with the same sum).  What the warp computes with shuffles. */
static inline PP_HD float pp_gpt_lane_tree(float *v)
{
    for (int w = PP_GPT_LANES / 2; w > 0; w /= 2) {
        float nv[PP_GPT_LANES];
        for (int l = 0; l < PP_GPT_LANES; l++)
            nv[l] = v[l] + v[l ^ w];
        for (int l = 0; l < PP_GPT_LANES; l++)
            v[l] = nv[l];
    }
    return v[0];
}

/* ---- LayerNorm (pp_layernorm_row, pp_layernorm_backward_row) ---- */

static inline PP_HD float pp_ln_lane_sum(const float *x, int h, int lane)
{
    float s = 0;
    for (int j = lane; j < h; j += PP_GPT_LANES)
        s += x[j];
    return s;
}

static inline PP_HD float pp_ln_lane_var(const float *x, float mean, int h, int lane)
{
    float v = 0;
    for (int j = lane; j < h; j += PP_GPT_LANES) {
        float d = x[j] - mean;
        v += d * d;
    }
    return v;
}

static inline PP_HD float pp_ln_rstd(float var_sum, int h)
{
    return 1.0f / sqrtf(var_sum / (float)h + PP_LN_EPS);
}

static inline PP_HD void pp_ln_lane_out(const float *x, const float *w, const float *b, float *y,
                                        float mean, float rstd, int h, int lane)
{
    for (int j = lane; j < h; j += PP_GPT_LANES)
        y[j] = (x[j] - mean) * rstd * w[j] + b[j];
}

/* Lane sums of g = dy w and of g xhat. */
static inline PP_HD void pp_ln_back_lane_sums(const float *dy, const float *x, float mean,
                                              float rstd, const float *w, int h, int lane,
                                              float *sg, float *sgx)
{
    float a = 0, b = 0;
    for (int j = lane; j < h; j += PP_GPT_LANES) {
        float g = dy[j] * w[j], xh = (x[j] - mean) * rstd;
        a += g;
        b += g * xh;
    }
    *sg = a;
    *sgx = b;
}

/* sg, sgx: the row's means of g and g xhat.  dx may be dres. */
static inline PP_HD void pp_ln_back_lane_out(const float *dy, const float *x, float mean,
                                             float rstd, const float *w, const float *dres,
                                             float *dx, float sg, float sgx, int h, int lane)
{
    for (int j = lane; j < h; j += PP_GPT_LANES) {
        float g = dy[j] * w[j], xh = (x[j] - mean) * rstd;
        float d = rstd * (g - sg - xh * sgx);
        dx[j] = (dres ? dres[j] : 0.0f) + d;
    }
}

/* The weight gradient dw[j] += sum_i dy[i][j] xhat[i][j]: the column sum's
 * shapes (mlp_launch.h, pp_colsum_*) with this partial in place of
 * pp_colsum_partial; db is the column sum of dy itself. */
static inline PP_HD float pp_ln_dw_partial(const float *dy, const float *x, const float *mean,
                                           const float *rstd, int r0, int r1, int h, int j, int ty)
{
    float s = 0;
    for (int r = r0 + ty; r < r1; r += PP_COLSUM_Y) {
        size_t o = (size_t)r * (size_t)h + (size_t)j;
        s += dy[o] * ((x[o] - mean[r]) * rstd[r]);
    }
    return s;
}

/* ---- the causal softmax (pp_causal_softmax_row and its backward) ---- */

static inline PP_HD float pp_softmax_lane_max(const float *s, int q, float scale, int lane)
{
    float mx = -INFINITY;
    for (int k = lane; k <= q; k += PP_GPT_LANES)
        mx = scale * s[k] > mx ? scale * s[k] : mx;
    return mx;
}

/* p[k] = e^{scale s[k] - mx} for k <= q; returns the lane's sum of them. */
static inline PP_HD float pp_softmax_lane_exp(const float *s, float *p, int q, float scale,
                                              float mx, int lane)
{
    float sum = 0;
    for (int k = lane; k <= q; k += PP_GPT_LANES) {
        float e = pp_expf(scale * s[k] - mx);
        p[k] = e;
        sum += e;
    }
    return sum;
}

static inline PP_HD void pp_softmax_lane_scale(float *p, int q, int t, float inv, int lane)
{
    for (int k = lane; k < t; k += PP_GPT_LANES)
        p[k] = k <= q ? p[k] * inv : 0.0f;
}

static inline PP_HD float pp_softmax_back_lane_dot(const float *p, const float *dp, int q, int lane)
{
    float dot = 0;
    for (int k = lane; k <= q; k += PP_GPT_LANES)
        dot += dp[k] * p[k];
    return dot;
}

/* ds may be dp. */
static inline PP_HD void pp_softmax_back_lane_out(const float *p, const float *dp, float *ds, int q,
                                                  int t, float scale, float dot, int lane)
{
    for (int k = lane; k < t; k += PP_GPT_LANES)
        ds[k] = k <= q ? scale * p[k] * (dp[k] - dot) : 0.0f;
}

/* ---- the cross-entropy (pp_cross_entropy_row) ---- */

static inline PP_HD float pp_ce_lane_max(const float *z, int v, int lane)
{
    float mx = -INFINITY;
    for (int k = lane; k < v; k += PP_GPT_LANES)
        mx = z[k] > mx ? z[k] : mx;
    return mx;
}

static inline PP_HD float pp_ce_lane_sum(const float *z, int v, float mx, int lane)
{
    float sum = 0;
    for (int k = lane; k < v; k += PP_GPT_LANES)
        sum += pp_expf(z[k] - mx);
    return sum;
}

/* dz may be z: the row's z[target] must be read before. */
static inline PP_HD void pp_ce_lane_grad(const float *z, int target, int v, float scale, float mx,
                                         float inv, float *dz, int lane)
{
    for (int k = lane; k < v; k += PP_GPT_LANES)
        dz[k] = (pp_expf(z[k] - mx) * inv - (k == target ? 1.0f : 0.0f)) * scale;
}

/* The row's loss, as pp_cross_entropy_row returns it. */
static inline PP_HD double pp_ce_row_loss(float sum, float zt, float mx)
{
    return (double)logf(sum) - (double)(zt - mx);
}

/* ---- per-element bodies: element i of a grid-stride loop ---- */

/* Element i = r seq + pos of the tokens of sequences row0 .. row0 + rows. */
static inline PP_HD void pp_gpt_tokens_at(size_t i, const uint8_t *data, int64_t bytes,
                                          uint64_t seed, int step, int seq, int vocab, int row0,
                                          int shift, int32_t *out)
{
    int64_t r = (int64_t)(i / (size_t)seq);
    int pos = (int)(i % (size_t)seq);
    out[i] = pp_gpt_token(data, bytes, seed, step, (int64_t)row0 + r, seq, vocab, pos + shift);
}

static inline PP_HD void pp_gpt_embed_at(size_t i, const int32_t *tok, const float *wte,
                                         const float *wpe, float *y, int seq, int h)
{
    size_t row = i / (size_t)h, j = i % (size_t)h;
    y[i] = wte[(size_t)tok[row] * (size_t)h + j] + wpe[(row % (size_t)seq) * (size_t)h + j];
}

/* The position embedding's gradient, element i = p h + j of gwpe: the
 * rows p, p + seq, p + 2 seq, ... of dy added in that order (the order of
 * the rows, as the CPU adds them), for p < min(seq, n). */
static inline PP_HD void pp_gpt_wpe_grad_at(size_t i, const float *dy, float *gwpe, int n, int seq,
                                            int h)
{
    size_t p = i / (size_t)h, j = i % (size_t)h;
    float acc = gwpe[i];
    for (size_t row = p; row < (size_t)n; row += (size_t)seq)
        acc += dy[row * (size_t)h + j];
    gwpe[i] = acc;
}

static inline PP_HD void pp_gpt_bias_residual_at(size_t i, float *y, const float *b,
                                                 const float *res, int cols)
{
    float v = y[i] + b[i % (size_t)cols];
    y[i] = res ? v + res[i] : v;
}

static inline PP_HD void pp_gpt_bias_gelu_at(size_t i, float *u, const float *b, float *g, int f)
{
    float z = u[i] + b[i % (size_t)f];
    u[i] = z;
    g[i] = pp_gelu(z);
}

static inline PP_HD void pp_gpt_gelu_backward_at(size_t i, const float *dg, const float *u,
                                                 float *du)
{
    du[i] = dg[i] * pp_gelu_grad(u[i]);
}

#endif
