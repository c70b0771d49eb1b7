/*
 * backend_cpu.c — the CPU backend: plain C kernels, deterministic (every
 * sum runs in a fixed order that depends only on the shapes), a blocked
 * GEMM the compiler can vectorise, no BLAS.
 */
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

static float *cpu_alloc(size_t count)
{
    size_t bytes = (count * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (!p)
        abort();
    return p;
}

static void cpu_release(float *p) { free(p); }

static void cpu_copy(float *dst, const float *src, size_t count)
{
    memcpy(dst, src, count * sizeof(float));
}

static void cpu_layer_forward(const float *x, const float *W, const float *b, float *z, float *y,
                              int n, int h)
{
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

static void cpu_layer_backward_input(const float *dy, const float *z, const float *W, float *dz,
                                     float *dx, int n, int h)
{
    size_t nh = (size_t)n * h;
    for (size_t i = 0; i < nh; i++)
        dz[i] = dy[i] * pp_gelu_grad(z[i]);
    if (!dx)
        return;
    float *Wt = cpu_alloc((size_t)h * h);
    transpose(W, Wt, h, h);
    memcpy(dx, dy, nh * sizeof(float));
    pr_cpu_sgemm(n, h, h, dz, Wt, dx, 1);
    free(Wt);
}

static void cpu_layer_backward_weight(const float *x, const float *dz, float *dW, float *db, int n,
                                      int h)
{
    float *xt = cpu_alloc((size_t)n * h);
    transpose(x, xt, n, h);
    pr_cpu_sgemm(h, h, n, xt, dz, dW, 1);
    free(xt);
    for (int r = 0; r < n; r++)
        for (int j = 0; j < h; j++)
            db[j] += dz[(size_t)r * h + j];
}

static double cpu_mse(const float *y, const float *t, float inv_n, float *dy, int n, int h)
{
    double sq = 0;
    size_t nh = (size_t)n * h;
    for (size_t i = 0; i < nh; i++) {
        double e = (double)y[i] - (double)t[i];
        sq += e * e;
        dy[i] = pp_mse_grad(y[i], t[i], inv_n);
    }
    return sq;
}

static void cpu_sgd(float *p, float *g, float lr, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        p[i] = pp_sgd(p[i], g[i], lr);
        g[i] = 0;
    }
}

static void cpu_zero(float *p, size_t count) { memset(p, 0, count * sizeof(float)); }

static const pr_backend cpu_backend = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_copy,
    .download = cpu_copy,
    .layer_forward = cpu_layer_forward,
    .layer_backward_input = cpu_layer_backward_input,
    .layer_backward_weight = cpu_layer_backward_weight,
    .mse = cpu_mse,
    .sgd = cpu_sgd,
    .zero = cpu_zero,
};

const pr_backend *pr_backend_cpu(void) { return &cpu_backend; }
