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
#include <string.h>

#ifdef __CUDACC__
#define PP_HD __host__ __device__
#else
#define PP_HD
#endif

#define PP_GELU_C 0.7978845608028654f /* sqrt(2/pi) */
#define PP_GELU_A 0.044715f

static inline PP_HD float pp_float_of_bits(int32_t b)
{
#ifdef __CUDA_ARCH__
    return __int_as_float(b);
#else
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
#endif
}

/* e^x in float arithmetic alone (no libm call, no branch), so that a loop
 * of it vectorises on the CPU and the GPU runs the same formula:
 * x = k ln 2 + r with k = round(x / ln 2) (by the 1.5 * 2^23 trick),
 * |r| <= ln 2 / 2, e^r by its Taylor series to r^7 (error < 1e-8 of the
 * value), 2^k from the exponent bits.  x is clamped to [-87, 88], where
 * the result stays a normal float; NaN stays NaN. */
static inline PP_HD float pp_expf(float x)
{
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x; /* not fminf: a call, unvectorised */
    float k = (x * 1.44269504089f + 12582912.0f) - 12582912.0f;
    float r = x - k * 0.693145752f; /* ln 2 in two parts: k * hi is exact */
    r = r - k * 1.42860677e-6f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
              r * (1.0f / 720 + r * (1.0f / 5040)))))));
    k = k == k ? k : 0.0f; /* NaN: p is NaN already; converting NaN to an int is undefined */
    return p * pp_float_of_bits(((int32_t)k + 127) << 23);
}

/* gelu(z) = 0.5 z (1 + tanh(u)), u = sqrt(2/pi) (z + 0.044715 z^3),
 * evaluated as z e / (e + 1) with e = e^{2u} (0.5 (1 + tanh u), without
 * the cancellation of 1 + tanh u for negative u). */
static inline PP_HD float pp_gelu(float z)
{
    float u = PP_GELU_C * (z + PP_GELU_A * z * z * z);
    float e = pp_expf(2.0f * u);
    return z * (e / (e + 1.0f));
}

/* d gelu / dz = 0.5 (1 + tanh u) + 0.5 z (1 - tanh^2 u) du/dz, with
 * 0.5 (1 + tanh u) = e d and 1 - tanh^2 u = 4 e d^2, d = 1 / (e + 1). */
static inline PP_HD float pp_gelu_grad(float z)
{
    float u = PP_GELU_C * (z + PP_GELU_A * z * z * z);
    float e = pp_expf(2.0f * u), d = 1.0f / (e + 1.0f);
    float du = PP_GELU_C * (1.0f + 3.0f * PP_GELU_A * z * z);
    return e * d + 2.0f * z * (e * d * d) * du;
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
