/*
 * mlp_kernels.cuh — launchers of the reference MLP's element-wise CUDA
 * kernels (mlp_kernels.cu).  The arithmetic is kernels/mlp_math.h's, the
 * same functions the CPU backend and the --check reference call.  Every
 * launcher enqueues on `s` and returns cudaGetLastError().
 */
#ifndef PP_MLP_KERNELS_CUH
#define PP_MLP_KERNELS_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "backend.h" /* pr_adamw */

/* z += b (broadcast over rows); y = x + gelu(z). */
cudaError_t pp_launch_bias_gelu(const float *x, const float *b, float *z, float *y, int n, int h,
                                cudaStream_t s);
/* dz = dy * gelu'(z); dx = dy when dx is not NULL (the GEMM then adds dz W^T). */
cudaError_t pp_launch_gelu_backward(const float *dy, const float *z, float *dz, float *dx,
                                    size_t count, cudaStream_t s);
/* db += column sums of dz [n, h].  partial: PP_COLSUM_MAX_CHUNKS * h floats
 * of scratch (mlp_launch.h), stream-ordered. */
cudaError_t pp_launch_colsum(const float *dz, float *db, int n, int h, float *partial,
                             cudaStream_t s);
/* dy = (y - t) * inv_n; *loss = sum (y - t)^2 (overwritten).  partial:
 * PP_MSE_MAX_BLOCKS doubles of scratch (mlp_launch.h), stream-ordered. */
cudaError_t pp_launch_mse(const float *y, const float *t, float inv_n, float *dy, size_t count,
                          double *partial, double *loss, cudaStream_t s);
/* p -= lr g; g = 0; shadow (if not NULL) = bf16(p). */
cudaError_t pp_launch_sgd(float *p, float *g, float lr, size_t count, __nv_bfloat16 *shadow,
                          cudaStream_t s);
/* AdamW (optim_math.h pp_adamw) on [0, count), t = *step * per_step +
 * index + 1 read on the device; g = 0; shadow (if not NULL) = bf16(p). */
cudaError_t pp_launch_adamw(float *p, float *g, float *m, float *v, size_t count,
                            const pr_adamw *a, const int *step, __nv_bfloat16 *shadow,
                            cudaStream_t s);
/* dst += src. */
cudaError_t pp_launch_add(float *dst, const float *src, size_t count, cudaStream_t s);
/* dst = bf16(src). */
cudaError_t pp_launch_to_bf16(const float *src, __nv_bfloat16 *dst, size_t count, cudaStream_t s);
/* dst = bf16 of count matrices [rows, cols], the b-th at src + b stride
 * with rows ld apart, packed densely (mlp_launch.h, pp_pack_src). */
cudaError_t pp_launch_pack_bf16(const float *src, __nv_bfloat16 *dst, int rows, int cols, int ld,
                                size_t stride, int count, cudaStream_t s);
/* Rows [row0, row0+rows) of step *step's x and t (either NULL), hidden h. */
cudaError_t pp_launch_make_batch(uint64_t seed, const int *step, int row0, int rows, int h,
                                 float *x, float *t, cudaStream_t s);
/* *dst = v (so a captured graph can read a step number set before launch). */
cudaError_t pp_launch_set_int(int *dst, int v, cudaStream_t s);

#endif
