/*
 * mlp_math.h — the element-wise math of the reference MLP (docs/model.md,
 * "The reference model"), shared by the CPU backend, the --check path and,
 * later, the CUDA kernels: tanh-GELU and its derivative, the MSE gradient,
 * SGD, and the counter-based generator that makes weights and data.
 */
#ifndef PP_MLP_MATH_H
#define PP_MLP_MATH_H

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define PP_HD __host__ __device__
#else
#define PP_HD
#endif

#define PP_GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define PP_GELU_A 0.044715f

/* gelu(z) = 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))) */
static inline PP_HD float pp_gelu(float z)
{
    float u = PP_GELU_C * (z + PP_GELU_A * z * z * z);
    return 0.5f * z * (1.0f + tanhf(u));
}

/* d gelu / dz */
static inline PP_HD float pp_gelu_grad(float z)
{
    float u = PP_GELU_C * (z + PP_GELU_A * z * z * z);
    float t = tanhf(u);
    float du = PP_GELU_C * (1.0f + 3.0f * PP_GELU_A * z * z);
    return 0.5f * (1.0f + t) + 0.5f * z * (1.0f - t * t) * du;
}

/* d/dy of (1/(2N)) (y - t)^2, with inv_n = 1/N. */
static inline PP_HD float pp_mse_grad(float y, float t, float inv_n)
{
    return (y - t) * inv_n;
}

/* p <- p - lr * g */
static inline PP_HD float pp_sgd(float p, float g, float lr)
{
    return p - lr * g;
}

/* splitmix64's output function applied to x + golden gamma: one step of
 * the splitmix64 generator whose state was x. */
static inline PP_HD uint64_t pp_splitmix64(uint64_t x)
{
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Element i of stream `stream` under `seed`, uniform in (-1, 1): counter
 * based, so any device can make any slice without making what precedes it.
 * u = ((splitmix64(splitmix64(seed ^ stream) + i) >> 40) + 0.5) / 2^24. */
static inline PP_HD float pp_uniform_pm1(uint64_t seed, uint64_t stream, uint64_t i)
{
    uint64_t r = pp_splitmix64(pp_splitmix64(seed ^ stream) + i);
    float u = ((float)(r >> 40) + 0.5f) * (1.0f / 16777216.0f);
    return 2.0f * u - 1.0f;
}

/* The streams (docs/model.md). */
#define PP_STREAM_WEIGHT(l) ((uint64_t)1 + (uint64_t)(l))
#define PP_STREAM_X(k) (((uint64_t)1 << 32) + 2 * (uint64_t)(k))
#define PP_STREAM_T(k) (((uint64_t)1 << 32) + 2 * (uint64_t)(k) + 1)

#endif
