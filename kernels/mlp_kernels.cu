/*
 * mlp_kernels.cu — the reference MLP's element-wise work on the GPU: bias +
 * GELU forward, GELU backward, bias gradient, MSE, SGD, BF16 shadows and the
 * counter-based data generator.  Each kernel is a grid-stride loop around a
 * kernels/mlp_math.h function, so the CPU tests exercise the same formulas.
 */
#include "mlp_kernels.cuh"
#include "mlp_math.h"

enum { THREADS = 256 };

static unsigned blocks_for(size_t count)
{
    size_t b = (count + THREADS - 1) / THREADS;
    return (unsigned)(b < 65535 * 16 ? (b ? b : 1) : 65535 * 16);
}

#define GRID_STRIDE(i, count)                                                              \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (count);            \
         i += (size_t)gridDim.x * blockDim.x)

__global__ void bias_gelu_kernel(const float *__restrict__ x, const float *__restrict__ b,
                                 float *__restrict__ z, float *__restrict__ y, size_t count, int h)
{
    GRID_STRIDE(i, count)
    {
        float zi = z[i] + b[i % h];
        z[i] = zi;
        y[i] = x[i] + pp_gelu(zi);
    }
}

cudaError_t pp_launch_bias_gelu(const float *x, const float *b, float *z, float *y, int n, int h,
                                cudaStream_t s)
{
    size_t count = (size_t)n * h;
    bias_gelu_kernel<<<blocks_for(count), THREADS, 0, s>>>(x, b, z, y, count, h);
    return cudaGetLastError();
}

__global__ void gelu_backward_kernel(const float *__restrict__ dy, const float *__restrict__ z,
                                     float *__restrict__ dz, float *__restrict__ dx, size_t count)
{
    GRID_STRIDE(i, count)
    {
        float g = dy[i];
        dz[i] = g * pp_gelu_grad(z[i]);
        if (dx)
            dx[i] = g;
    }
}

cudaError_t pp_launch_gelu_backward(const float *dy, const float *z, float *dz, float *dx,
                                    size_t count, cudaStream_t s)
{
    gelu_backward_kernel<<<blocks_for(count), THREADS, 0, s>>>(dy, z, dz, dx, count);
    return cudaGetLastError();
}

/* One thread per column; rows summed in order (n is one micro-batch). */
__global__ void colsum_kernel(const float *__restrict__ dz, float *__restrict__ db, int n, int h)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= h)
        return;
    float s = 0;
    for (int r = 0; r < n; r++)
        s += dz[(size_t)r * h + j];
    db[j] += s;
}

cudaError_t pp_launch_colsum(const float *dz, float *db, int n, int h, cudaStream_t s)
{
    colsum_kernel<<<(h + THREADS - 1) / THREADS, THREADS, 0, s>>>(dz, db, n, h);
    return cudaGetLastError();
}

/* One block: deterministic sum order for a given launch shape. */
__global__ void mse_kernel(const float *__restrict__ y, const float *__restrict__ t, float inv_n,
                           float *__restrict__ dy, size_t count, double *loss)
{
    __shared__ double part[1024];
    double sq = 0;
    for (size_t i = threadIdx.x; i < count; i += blockDim.x) {
        double e = (double)y[i] - (double)t[i];
        sq += e * e;
        dy[i] = pp_mse_grad(y[i], t[i], inv_n);
    }
    part[threadIdx.x] = sq;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) {
        if ((int)threadIdx.x < w)
            part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        *loss = part[0];
}

cudaError_t pp_launch_mse(const float *y, const float *t, float inv_n, float *dy, size_t count,
                          double *loss, cudaStream_t s)
{
    mse_kernel<<<1, 1024, 0, s>>>(y, t, inv_n, dy, count, loss);
    return cudaGetLastError();
}

__global__ void sgd_kernel(float *__restrict__ p, float *__restrict__ g, float lr, size_t count,
                           __nv_bfloat16 *__restrict__ shadow)
{
    GRID_STRIDE(i, count)
    {
        float v = pp_sgd(p[i], g[i], lr);
        p[i] = v;
        g[i] = 0;
        if (shadow)
            shadow[i] = __float2bfloat16(v);
    }
}

cudaError_t pp_launch_sgd(float *p, float *g, float lr, size_t count, __nv_bfloat16 *shadow,
                          cudaStream_t s)
{
    sgd_kernel<<<blocks_for(count), THREADS, 0, s>>>(p, g, lr, count, shadow);
    return cudaGetLastError();
}

__global__ void to_bf16_kernel(const float *__restrict__ src, __nv_bfloat16 *__restrict__ dst,
                               size_t count)
{
    GRID_STRIDE(i, count) dst[i] = __float2bfloat16(src[i]);
}

cudaError_t pp_launch_to_bf16(const float *src, __nv_bfloat16 *dst, size_t count, cudaStream_t s)
{
    to_bf16_kernel<<<blocks_for(count), THREADS, 0, s>>>(src, dst, count);
    return cudaGetLastError();
}

__global__ void make_batch_kernel(uint64_t seed, const int *step, size_t first, size_t count,
                                  float *x, float *t)
{
    int k = *step;
    GRID_STRIDE(i, count)
    {
        if (x)
            x[i] = pp_uniform_pm1(seed, PP_STREAM_X(k), first + i);
        if (t)
            t[i] = pp_uniform_pm1(seed, PP_STREAM_T(k), first + i);
    }
}

cudaError_t pp_launch_make_batch(uint64_t seed, const int *step, int row0, int rows, int h,
                                 float *x, float *t, cudaStream_t s)
{
    size_t count = (size_t)rows * h;
    make_batch_kernel<<<blocks_for(count), THREADS, 0, s>>>(seed, step, (size_t)row0 * h, count,
                                                            x, t);
    return cudaGetLastError();
}

__global__ void set_int_kernel(int *dst, int v) { *dst = v; }

cudaError_t pp_launch_set_int(int *dst, int v, cudaStream_t s)
{
    set_int_kernel<<<1, 1, 0, s>>>(dst, v);
    return cudaGetLastError();
}
