/*
 * mlp_kernels.h — the reference MLP's element-wise kernels, as a table the
 * MLP's layers (runtime/mlp_layers.c) call on any device: the CPU's
 * (runtime/mlp_kernels_cpu.c) and CUDA's (kernels/mlp_kernels.cu) run the
 * same per-element bodies (mlp_launch.h, mlp_math.h).  A failure is
 * recorded in the context (pr_bctx_fail).  Plain C: nvcc includes it too.
 */
#ifndef PP_MLP_KERNELS_H
#define PP_MLP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pr_mlp_kernels {
    /* Rows [row0, row0+rows) of the step *c->step's x and t (either NULL). */
    void (*make_batch)(pr_bctx *c, uint64_t seed, int row0, int rows, int h, float *x, float *t);
    /* z += b (broadcast over the rows); y = x + gelu(z).  [n, h]. */
    void (*bias_gelu)(pr_bctx *c, const float *x, const float *b, float *z, float *y, int n, int h);
    /* dz = dy * gelu'(z); dx = dy unless dx is NULL. */
    void (*gelu_backward)(pr_bctx *c, const float *dy, const float *z, float *dz, float *dx,
                          size_t count);
    /* dy = (y - t) inv_n; loss slot `slot` = sum (y - t)^2. */
    void (*mse)(pr_bctx *c, const float *y, const float *t, float inv_n, float *dy, size_t count,
                int slot);
} pr_mlp_kernels;

extern const pr_mlp_kernels pr_mlp_kernels_cpu;
extern const pr_mlp_kernels pr_mlp_kernels_cuda; /* built with CUDA only */

#ifdef __cplusplus
}
#endif

#endif
