/*
 * mlp_kernels_cpu.c — the reference MLP's element-wise kernels on the CPU
 * (kernels/mlp_kernels.h): the arithmetic of the per-element bodies the
 * CUDA kernels run (kernels/mlp_launch.h, mlp_math.h), in loops without
 * branches so that they vectorise.
 */
#include <string.h>

#include "mlp_kernels.h"
#include "mlp_launch.h"

static void cpu_make_batch(pr_bctx *c, uint64_t seed, int row0, int rows, int h, float *x,
                           float *t)
{
    if (c->failed)
        return;
    size_t first = (size_t)row0 * (size_t)h, n = (size_t)rows * (size_t)h;
    for (size_t i = 0; i < n; i++)
        pp_make_batch_at(i, seed, *c->step, first, x, t);
}

static void cpu_bias_gelu(pr_bctx *c, const float *x, const float *b, float *z, float *y, int n,
                          int h)
{
    if (c->failed)
        return;
    for (size_t r = 0; r < (size_t)n; r++) {
        const float *xr = x + r * (size_t)h;
        float *zr = z + r * (size_t)h, *yr = y + r * (size_t)h;
        for (int j = 0; j < h; j++) { /* pp_bias_gelu_at */
            float zj = zr[j] + b[j];
            zr[j] = zj;
            yr[j] = xr[j] + pp_gelu(zj);
        }
    }
}

static void cpu_gelu_backward(pr_bctx *c, const float *dy, const float *z, float *dz, float *dx,
                              size_t count)
{
    if (c->failed)
        return;
    for (size_t i = 0; i < count; i++) /* pp_gelu_backward_at */
        dz[i] = dy[i] * pp_gelu_grad(z[i]);
    if (dx)
        memcpy(dx, dy, count * sizeof(float));
}

static void cpu_mse(pr_bctx *c, const float *y, const float *t, float inv_n, float *dy,
                    size_t count, int slot)
{
    if (c->failed)
        return;
    if (slot < 0 || slot >= c->slots) {
        pr_bctx_fail(c, "mlp mse:", "loss slot out of range");
        return;
    }
    double sq = 0;
    for (size_t i = 0; i < count; i++)
        sq += pp_mse_at(i, y, t, inv_n, dy);
    c->loss[slot] = sq;
}

const pr_mlp_kernels pr_mlp_kernels_cpu = {
    .make_batch = cpu_make_batch,
    .bias_gelu = cpu_bias_gelu,
    .gelu_backward = cpu_gelu_backward,
    .mse = cpu_mse,
};
