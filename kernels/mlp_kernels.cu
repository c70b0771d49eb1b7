/*
 * mlp_kernels.cu — the reference MLP's element-wise work on the GPU: bias +
 * GELU forward, GELU backward, bias gradient, MSE, SGD, BF16 shadows and the
 * counter-based data generator.  Each kernel is a grid-stride loop around a
 * per-element body of kernels/mlp_launch.h (mlp_math.h's formulas), whose
 * launch shapes tests/test_kernel_shapes.c runs on the CPU.  The MLP's
 * kernel table for the CUDA backend (mlp_kernels.h) is at the end; the
 * column sum, SGD, AdamW, add, BF16 conversion and set_int are the
 * backend's own primitives.
 */
#include <stdio.h>

#include "cuda_ctx.cuh"
#include "mlp_kernels.cuh"
#include "mlp_kernels.h"
#include "mlp_launch.h"
#include "optim_math.h"

#define GRID_STRIDE(i, count)                                                              \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (count);            \
         i += (size_t)gridDim.x * blockDim.x)

__global__ void bias_gelu_kernel(const float *__restrict__ x, const float *__restrict__ b,
                                 float *__restrict__ z, float *__restrict__ y, size_t count, int h)
{
    GRID_STRIDE(i, count) pp_bias_gelu_at(i, x, b, z, y, h);
}

cudaError_t pp_launch_bias_gelu(const float *x, const float *b, float *z, float *y, int n, int h,
                                cudaStream_t s)
{
    size_t count = (size_t)n * h;
    bias_gelu_kernel<<<pp_blocks_for(count), PP_THREADS, 0, s>>>(x, b, z, y, count, h);
    return cudaGetLastError();
}

__global__ void gelu_backward_kernel(const float *__restrict__ dy, const float *__restrict__ z,
                                     float *__restrict__ dz, float *__restrict__ dx, size_t count)
{
    GRID_STRIDE(i, count) pp_gelu_backward_at(i, dy, z, dz, dx);
}

cudaError_t pp_launch_gelu_backward(const float *dy, const float *z, float *dz, float *dx,
                                    size_t count, cudaStream_t s)
{
    gelu_backward_kernel<<<pp_blocks_for(count), PP_THREADS, 0, s>>>(dy, z, dz, dx, count);
    return cudaGetLastError();
}

/* PP_COLSUM_X columns per block, PP_COLSUM_Y row groups, one grid row per
 * chunk of rows (mlp_launch.h): enough blocks at hidden 1024 (32 column
 * blocks) and at large batches (up to 32 chunks), in a fixed order. */
__global__ void colsum_kernel(const float *__restrict__ dz, float *__restrict__ out, int n, int h)
{
    __shared__ float part[PP_COLSUM_Y][PP_COLSUM_X + 1];
    int j = (int)blockIdx.x * PP_COLSUM_X + (int)threadIdx.x, r0, r1;
    pp_colsum_rows(n, blockIdx.y, &r0, &r1);
    part[threadIdx.y][threadIdx.x] =
        j < h ? pp_colsum_partial(dz, r0, r1, h, j, (int)threadIdx.y) : 0;
    __syncthreads();
    if (threadIdx.y == 0 && j < h) /* one chunk: out is db; several: the partial sums */
        pp_colsum_store(out, gridDim.y, blockIdx.y, h, j, pp_colsum_block_sum(part, threadIdx.x));
}

/* db[j] += the chunks' sums of column j, in chunk order. */
__global__ void colsum_chunks_kernel(const float *__restrict__ partial, unsigned chunks, int h,
                                     float *__restrict__ db)
{
    GRID_STRIDE(j, (size_t)h) pp_colsum_chunks_at(j, partial, chunks, h, db);
}

cudaError_t pp_launch_colsum(const float *dz, float *db, int n, int h, float *partial,
                             cudaStream_t s)
{
    unsigned chunks = pp_colsum_chunks(n);
    dim3 grid(pp_colsum_blocks(h), chunks), block(PP_COLSUM_X, PP_COLSUM_Y);
    colsum_kernel<<<grid, block, 0, s>>>(dz, chunks == 1 ? db : partial, n, h);
    if (chunks > 1)
        colsum_chunks_kernel<<<pp_blocks_for((size_t)h), PP_THREADS, 0, s>>>(partial, chunks, h,
                                                                              db);
    return cudaGetLastError();
}

/* Tree sum of part[0..PP_MSE_THREADS) into part[0] (blockDim.x == PP_MSE_THREADS). */
static __device__ void block_tree_sum(double *part)
{
    __syncthreads();
    for (int w = PP_MSE_THREADS / 2; w > 0; w /= 2) {
        if ((int)threadIdx.x < w)
            part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
}

/* Pass 1: many blocks (one block took ~ms at hidden 8192); every partial
 * is written, so nothing needs zeroing and the order is fixed. */
__global__ void mse_partial_kernel(const float *__restrict__ y, const float *__restrict__ t,
                                   float inv_n, float *__restrict__ dy, size_t count,
                                   double *__restrict__ partial)
{
    __shared__ double part[PP_MSE_THREADS];
    double sq = 0;
    GRID_STRIDE(i, count) sq += pp_mse_at(i, y, t, inv_n, dy);
    part[threadIdx.x] = sq;
    block_tree_sum(part);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = part[0];
}

/* Pass 2: one block sums the partials. */
__global__ void mse_final_kernel(const double *__restrict__ partial, unsigned nblocks,
                                 double *__restrict__ loss)
{
    __shared__ double part[PP_MSE_THREADS];
    double s = 0;
    for (unsigned b = threadIdx.x; b < nblocks; b += PP_MSE_THREADS)
        s += partial[b];
    part[threadIdx.x] = s;
    block_tree_sum(part);
    if (threadIdx.x == 0)
        *loss = part[0];
}

cudaError_t pp_launch_mse(const float *y, const float *t, float inv_n, float *dy, size_t count,
                          double *partial, double *loss, cudaStream_t s)
{
    unsigned nb = pp_mse_blocks(count);
    mse_partial_kernel<<<nb, PP_MSE_THREADS, 0, s>>>(y, t, inv_n, dy, count, partial);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return e;
    mse_final_kernel<<<1, PP_MSE_THREADS, 0, s>>>(partial, nb, loss);
    return cudaGetLastError();
}

__global__ void sgd_kernel(float *__restrict__ p, float *__restrict__ g, float lr, size_t count,
                           __nv_bfloat16 *__restrict__ shadow)
{
    GRID_STRIDE(i, count)
    {
        float v = pp_sgd_at(i, p, g, lr);
        if (shadow)
            shadow[i] = __float2bfloat16(v);
    }
}

cudaError_t pp_launch_sgd(float *p, float *g, float lr, size_t count, __nv_bfloat16 *shadow,
                          cudaStream_t s)
{
    sgd_kernel<<<pp_blocks_for(count), PP_THREADS, 0, s>>>(p, g, lr, count, shadow);
    return cudaGetLastError();
}

/* AdamW (optim_math.h) on [0, count): the update's count t from the
 * device's step, the bias corrections in double rounded to float (as the
 * CPU backend computes them), g cleared, the BF16 shadow refreshed. */
__global__ void adamw_kernel(float *__restrict__ p, float *__restrict__ g, float *__restrict__ m,
                             float *__restrict__ v, size_t count, pr_adamw a, const int *step,
                             __nv_bfloat16 *__restrict__ shadow)
{
    double t = (double)*step * a.per_step + a.index + 1;
    pp_adamw_step st = {a.lr,
                        a.beta1,
                        a.beta2,
                        a.eps,
                        a.decay,
                        (float)(1.0 - pow((double)a.beta1, t)),
                        (float)(1.0 - pow((double)a.beta2, t))};
    GRID_STRIDE(i, count)
    {
        pp_adamw(&p[i], g[i], &m[i], &v[i], &st);
        g[i] = 0;
        if (shadow)
            shadow[i] = __float2bfloat16(p[i]);
    }
}

cudaError_t pp_launch_adamw(float *p, float *g, float *m, float *v, size_t count,
                            const pr_adamw *a, const int *step, __nv_bfloat16 *shadow,
                            cudaStream_t s)
{
    adamw_kernel<<<pp_blocks_for(count), PP_THREADS, 0, s>>>(p, g, m, v, count, *a, step, shadow);
    return cudaGetLastError();
}

__global__ void add_kernel(float *__restrict__ dst, const float *__restrict__ src, size_t count)
{
    GRID_STRIDE(i, count) dst[i] += src[i];
}

cudaError_t pp_launch_add(float *dst, const float *src, size_t count, cudaStream_t s)
{
    add_kernel<<<pp_blocks_for(count), PP_THREADS, 0, s>>>(dst, src, count);
    return cudaGetLastError();
}

__global__ void to_bf16_kernel(const float *__restrict__ src, __nv_bfloat16 *__restrict__ dst,
                               size_t count)
{
    GRID_STRIDE(i, count) dst[i] = __float2bfloat16(src[i]);
}

cudaError_t pp_launch_to_bf16(const float *src, __nv_bfloat16 *dst, size_t count, cudaStream_t s)
{
    to_bf16_kernel<<<pp_blocks_for(count), PP_THREADS, 0, s>>>(src, dst, count);
    return cudaGetLastError();
}

__global__ void pack_bf16_kernel(const float *__restrict__ src, __nv_bfloat16 *__restrict__ dst,
                                 int cols, int ld, size_t stride, int count, size_t per)
{
    GRID_STRIDE(e, per)
    {
        for (int b = 0; b < count; b++)
            dst[(size_t)b * per + e] =
                __float2bfloat16(src[pp_pack_src(e, (size_t)b, cols, ld, stride)]);
    }
}

cudaError_t pp_launch_pack_bf16(const float *src, __nv_bfloat16 *dst, int rows, int cols, int ld,
                                size_t stride, int count, cudaStream_t s)
{
    size_t per = (size_t)rows * (size_t)cols;
    if (per == 0 || count <= 0)
        return cudaSuccess;
    pack_bf16_kernel<<<pp_blocks_for(per), PP_THREADS, 0, s>>>(src, dst, cols, ld, stride, count,
                                                               per);
    return cudaGetLastError();
}

__global__ void make_batch_kernel(uint64_t seed, const int *step, size_t first, size_t count,
                                  float *x, float *t)
{
    int k = *step;
    GRID_STRIDE(i, count) pp_make_batch_at(i, seed, k, first, x, t);
}

cudaError_t pp_launch_make_batch(uint64_t seed, const int *step, int row0, int rows, int h,
                                 float *x, float *t, cudaStream_t s)
{
    size_t count = (size_t)rows * h;
    make_batch_kernel<<<pp_blocks_for(count), PP_THREADS, 0, s>>>(seed, step, (size_t)row0 * h,
                                                                  count, x, t);
    return cudaGetLastError();
}

__global__ void set_int_kernel(int *dst, int v) { *dst = v; }

cudaError_t pp_launch_set_int(int *dst, int v, cudaStream_t s)
{
    set_int_kernel<<<1, 1, 0, s>>>(dst, v);
    return cudaGetLastError();
}

/* ---- the MLP's kernel table on the CUDA backend (mlp_kernels.h) ---- */

/* The context's stream, with the op recorded as the last to enqueue
 * work; NULL when the context failed already. */
static cuda_ctx *enqueue(pr_bctx *cb)
{
    if (cb->failed)
        return NULL;
    cb->last_op = cb->op;
    return (cuda_ctx *)cb;
}

static void check(pr_bctx *cb, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return;
    char msg[200];
    snprintf(msg, sizeof msg, "failed (%s: %s)", cudaGetErrorName(e), cudaGetErrorString(e));
    pr_bctx_fail(cb, what, msg);
}

static void cuda_make_batch(pr_bctx *cb, uint64_t seed, int row0, int rows, int h, float *x,
                            float *t)
{
    cuda_ctx *c = enqueue(cb);
    if (c)
        check(cb, pp_launch_make_batch(seed, c->step_dev, row0, rows, h, x, t, c->stream),
              "mlp make_batch kernel");
}

static void cuda_bias_gelu(pr_bctx *cb, const float *x, const float *b, float *z, float *y, int n,
                           int h)
{
    cuda_ctx *c = enqueue(cb);
    if (c)
        check(cb, pp_launch_bias_gelu(x, b, z, y, n, h, c->stream), "mlp bias_gelu kernel");
}

static void cuda_gelu_backward(pr_bctx *cb, const float *dy, const float *z, float *dz, float *dx,
                               size_t count)
{
    cuda_ctx *c = enqueue(cb);
    if (c)
        check(cb, pp_launch_gelu_backward(dy, z, dz, dx, count, c->stream),
              "mlp gelu_backward kernel");
}

static void cuda_mse(pr_bctx *cb, const float *y, const float *t, float inv_n, float *dy,
                     size_t count, int slot)
{
    cuda_ctx *c = enqueue(cb);
    if (!c)
        return;
    if (slot < 0 || slot >= cb->slots) {
        pr_bctx_fail(cb, "mlp mse:", "loss slot out of range");
        return;
    }
    check(cb, pp_launch_mse(y, t, inv_n, dy, count, c->mse_partial, cb->loss + slot, c->stream),
          "mlp mse kernel");
}

extern "C" const pr_mlp_kernels pr_mlp_kernels_cuda = {
    cuda_make_batch,
    cuda_bias_gelu,
    cuda_gelu_backward,
    cuda_mse,
};
