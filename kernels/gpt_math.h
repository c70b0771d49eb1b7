/*
 * gpt_math.h — the arithmetic of the transformer (docs/gpt.md, "The math
 * pprun computes"), shared by the CPU kernels (runtime/gpt_kernels_cpu.c),
 * the CUDA kernels (kernels/gpt_kernels.cu) and the --check reference
 * (runtime/gpt_reference.c): the tokens a step reads, LayerNorm, the
 * causal softmax, the cross-entropy, each over one row, and their
 * derivatives.  A row function is what one CPU loop iteration (or one GPU
 * thread, or one block with the same order of sums) computes.
 */
#ifndef PP_GPT_MATH_H
#define PP_GPT_MATH_H

#include <stddef.h>
#include <stdint.h>

#include "mlp_math.h" /* PP_HD, pp_expf, pp_gelu, pp_gelu_grad, pp_splitmix64 */

#define PP_LN_EPS 1e-5f

/* The streams of the data sampler (docs/gpt.md, "Data"): offsets of step
 * k's sequences, and synthetic tokens. */
#define PP_STREAM_GPT_OFFSET(k) (((uint64_t)3 << 32) + (uint64_t)(k))
#define PP_STREAM_GPT_SYNTH(k) (((uint64_t)4 << 32) + (uint64_t)(k))

/* Where sequence j of step k starts in a data file of `bytes` bytes:
 * splitmix64(splitmix64(seed ^ stream) + j) mod (bytes - seq), so that its
 * seq + 1 bytes lie in the file. */
static inline PP_HD int64_t pp_gpt_offset(uint64_t seed, int step, int64_t j, int64_t bytes,
                                          int seq)
{
    uint64_t r = pp_splitmix64(pp_splitmix64(seed ^ PP_STREAM_GPT_OFFSET(step)) + (uint64_t)j);
    return (int64_t)(r % (uint64_t)(bytes - seq));
}

/* Token `pos` (0..seq) of sequence j of step k: the byte at its offset,
 * or without data ((bytes 0) the synthetic token
 * (splitmix64(splitmix64(seed ^ stream) + j (seq + 1) + pos) >> 32) mod vocab. */
static inline PP_HD int32_t pp_gpt_token(const uint8_t *data, int64_t bytes, uint64_t seed,
                                         int step, int64_t j, int seq, int vocab, int pos)
{
    if (data)
        return data[pp_gpt_offset(seed, step, j, bytes, seq) + pos];
    uint64_t r = pp_splitmix64(pp_splitmix64(seed ^ PP_STREAM_GPT_SYNTH(step)) +
                               (uint64_t)j * (uint64_t)(seq + 1) + (uint64_t)pos);
    return (int32_t)((r >> 32) % (uint64_t)vocab);
}

/* LayerNorm of one row x[h]: y = (x - mean) rstd w + b, rstd =
 * 1 / sqrt(var + eps), var the biased variance; sums in index order. */
static inline PP_HD void pp_layernorm_row(const float *x, const float *w, const float *b, float *y,
                                          float *mean_out, float *rstd_out, int h)
{
    float s = 0;
    for (int j = 0; j < h; j++)
        s += x[j];
    float mean = s / (float)h, v = 0;
    for (int j = 0; j < h; j++) {
        float d = x[j] - mean;
        v += d * d;
    }
    float rstd = 1.0f / sqrtf(v / (float)h + PP_LN_EPS);
    for (int j = 0; j < h; j++)
        y[j] = (x[j] - mean) * rstd * w[j] + b[j];
    *mean_out = mean;
    *rstd_out = rstd;
}

/* The input gradient of one LayerNorm row, added to dres (NULL: 0) into
 * dx: with g = dy w and xhat = (x - mean) rstd,
 * dx = dres + rstd (g - mean(g) - xhat mean(g xhat)).  dx may be dres. */
static inline PP_HD void pp_layernorm_backward_row(const float *dy, const float *x, float mean,
                                                   float rstd, const float *w, const float *dres,
                                                   float *dx, int h)
{
    float sg = 0, sgx = 0;
    for (int j = 0; j < h; j++) {
        float g = dy[j] * w[j], xh = (x[j] - mean) * rstd;
        sg += g;
        sgx += g * xh;
    }
    sg /= (float)h;
    sgx /= (float)h;
    for (int j = 0; j < h; j++) {
        float g = dy[j] * w[j], xh = (x[j] - mean) * rstd;
        float d = rstd * (g - sg - xh * sgx);
        dx[j] = (dres ? dres[j] : 0.0f) + d;
    }
}

/* Row q of a causal softmax over s[0..t): p[k] = e^{scale s[k] - max} /
 * sum for k <= q, 0 after; p may be s. */
static inline PP_HD void pp_causal_softmax_row(const float *s, float *p, int q, int t, float scale)
{
    float mx = -INFINITY;
    for (int k = 0; k <= q; k++)
        mx = scale * s[k] > mx ? scale * s[k] : mx;
    for (int k = 0; k <= q; k++) /* apart from the sum, so that it vectorises */
        p[k] = pp_expf(scale * s[k] - mx);
    float sum = 0;
    for (int k = 0; k <= q; k++)
        sum += p[k];
    float inv = 1.0f / sum;
    for (int k = 0; k <= q; k++)
        p[k] *= inv;
    for (int k = q + 1; k < t; k++)
        p[k] = 0;
}

/* Its backward: ds[k] = scale p[k] (dp[k] - sum_k' dp[k'] p[k']) for k <= q,
 * 0 after; ds may be dp. */
static inline PP_HD void pp_causal_softmax_backward_row(const float *p, const float *dp, float *ds,
                                                        int q, int t, float scale)
{
    float dot = 0;
    for (int k = 0; k <= q; k++)
        dot += dp[k] * p[k];
    for (int k = 0; k <= q; k++)
        ds[k] = scale * p[k] * (dp[k] - dot);
    for (int k = q + 1; k < t; k++)
        ds[k] = 0;
}

/* Cross-entropy of one row of logits z[v] against `target`: returns
 * -log softmax(z)[target] (= log sum e^{z - max} - (z[target] - max)) and
 * writes dz = (softmax(z) - onehot(target)) scale; dz may be z. */
static inline PP_HD double pp_cross_entropy_row(const float *z, int target, int v, float scale,
                                                float *dz)
{
    float mx = -INFINITY;
    for (int k = 0; k < v; k++)
        mx = z[k] > mx ? z[k] : mx;
    float zt = z[target];
    for (int k = 0; k < v; k++) /* the exponentials apart from the sum: it vectorises */
        dz[k] = pp_expf(z[k] - mx);
    float sum = 0;
    for (int k = 0; k < v; k++)
        sum += dz[k];
    float inv = 1.0f / sum;
    for (int k = 0; k < v; k++)
        dz[k] = (dz[k] * inv - (k == target ? 1.0f : 0.0f)) * scale;
    return (double)logf(sum) - (double)(zt - mx);
}

#endif
