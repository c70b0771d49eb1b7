/*
 * mlp_launch.h — the launch shapes and per-element bodies of the element-wise
 * CUDA kernels (mlp_kernels.cu), in plain C so that a CPU test
 * (tests/test_kernel_shapes.c) can run the same index arithmetic block by
 * block and thread by thread: coverage, off-by-ones and the reduction order
 * are checked without a GPU.  The math itself is mlp_math.h's.
 */
#ifndef PP_MLP_LAUNCH_H
#define PP_MLP_LAUNCH_H

#include <stddef.h>

#include "mlp_math.h"

/* grid-stride kernels: PP_THREADS per block, at most PP_MAX_BLOCKS blocks */
#define PP_THREADS 256
#define PP_MAX_BLOCKS (65535u * 16u)

static inline PP_HD unsigned pp_blocks_for(size_t count)
{
    size_t b = (count + PP_THREADS - 1) / PP_THREADS;
    return b == 0 ? 1u : b < PP_MAX_BLOCKS ? (unsigned)b : PP_MAX_BLOCKS;
}

/* colsum: a grid of pp_colsum_blocks(h) column blocks x pp_colsum_chunks(n)
 * row chunks, so that large batches get blocks too; a block is PP_COLSUM_X
 * columns x PP_COLSUM_Y row groups.  Thread (tx, ty) of chunk c sums rows
 * ty, ty + Y, ... of the chunk's rows (pp_colsum_rows) in its column, then
 * row 0 of the block adds the Y partial sums in ty order.  One chunk: that
 * sum goes to db.  Several: into partial[c * h + j], and a second pass adds
 * each column's chunk sums to db in chunk order.  The order is fixed for a
 * given shape. */
#define PP_COLSUM_X 32
#define PP_COLSUM_Y 32
#define PP_COLSUM_CHUNK_ROWS 256 /* 8 rows per thread before another chunk pays off */
#define PP_COLSUM_MAX_CHUNKS 32  /* partial: PP_COLSUM_MAX_CHUNKS * h floats */

static inline PP_HD unsigned pp_colsum_blocks(int h)
{
    return (unsigned)((h + PP_COLSUM_X - 1) / PP_COLSUM_X);
}

static inline PP_HD unsigned pp_colsum_chunks(int n)
{
    int c = (n + PP_COLSUM_CHUNK_ROWS - 1) / PP_COLSUM_CHUNK_ROWS;
    return c < 1 ? 1u : c < PP_COLSUM_MAX_CHUNKS ? (unsigned)c : PP_COLSUM_MAX_CHUNKS;
}

/* Rows [*r0, *r1) of chunk c of n rows. */
static inline PP_HD void pp_colsum_rows(int n, unsigned c, int *r0, int *r1)
{
    int chunks = (int)pp_colsum_chunks(n), per = (n + chunks - 1) / chunks;
    *r0 = (int)c * per < n ? (int)c * per : n;
    *r1 = *r0 + per < n ? *r0 + per : n;
}

static inline PP_HD float pp_colsum_partial(const float *dz, int r0, int r1, int h, int j, int ty)
{
    float s = 0;
    for (int r = r0 + ty; r < r1; r += PP_COLSUM_Y)
        s += dz[(size_t)r * (size_t)h + (size_t)j];
    return s;
}

/* Row 0 of a block: the PP_COLSUM_Y partial sums of its column tx, in ty order. */
static inline PP_HD float pp_colsum_block_sum(const float (*part)[PP_COLSUM_X + 1], int tx)
{
    float s = 0;
    for (int q = 0; q < PP_COLSUM_Y; q++)
        s += part[q][tx];
    return s;
}

/* Chunk c's sum s of column j: with one chunk, added to db (out is db);
 * with several, the chunk's partial sum (out is partial). */
static inline PP_HD void pp_colsum_store(float *out, unsigned chunks, unsigned c, int h, int j,
                                         float s)
{
    if (chunks == 1)
        out[j] += s;
    else
        out[(size_t)c * (size_t)h + (size_t)j] = s;
}

/* The second pass, column j: db[j] += the chunks' partial sums, in chunk order. */
static inline PP_HD void pp_colsum_chunks_at(size_t j, const float *partial, unsigned chunks,
                                             int h, float *db)
{
    float s = 0;
    for (unsigned c = 0; c < chunks; c++)
        s += partial[c * (size_t)h + j];
    db[j] += s;
}

/* mse: pass 1 runs pp_mse_blocks(count) blocks of PP_MSE_THREADS, each
 * thread a grid-stride sum, each block a tree sum into partial[block];
 * pass 2, one block, sums the partials (strided, then a tree). */
#define PP_MSE_THREADS 256
#define PP_MSE_MAX_BLOCKS 1024
#define PP_MSE_PER_THREAD 8 /* elements per thread before another block pays off */

static inline PP_HD unsigned pp_mse_blocks(size_t count)
{
    size_t per = (size_t)PP_MSE_THREADS * PP_MSE_PER_THREAD;
    size_t b = (count + per - 1) / per;
    return b == 0 ? 1u : b < PP_MSE_MAX_BLOCKS ? (unsigned)b : PP_MSE_MAX_BLOCKS;
}

/* A BF16 GEMM operand packed into scratch: count matrices of rows x cols,
 * the b-th stored at src + b stride with rows ld floats apart, written
 * densely (matrix b at dst + b rows cols, rows cols apart), so that only
 * the elements the GEMM reads are converted.  A grid-stride loop runs over
 * the rows * cols elements e of one matrix, each thread over the count
 * matrices: the offset in src of element e of matrix b. */
static inline PP_HD size_t pp_pack_src(size_t e, size_t b, int cols, int ld, size_t stride)
{
    return b * stride + (e / (size_t)cols) * (size_t)ld + e % (size_t)cols;
}

/* ---- per-element bodies: element i of a grid-stride loop ---- */

static inline PP_HD void pp_bias_gelu_at(size_t i, const float *x, const float *b, float *z,
                                         float *y, int h)
{
    float zi = z[i] + b[i % (size_t)h];
    z[i] = zi;
    y[i] = x[i] + pp_gelu(zi);
}

static inline PP_HD void pp_gelu_backward_at(size_t i, const float *dy, const float *z, float *dz,
                                             float *dx)
{
    float g = dy[i];
    dz[i] = g * pp_gelu_grad(z[i]);
    if (dx)
        dx[i] = g;
}

/* dy[i] = (y - t) inv_n; returns (y - t)^2 in double */
static inline PP_HD double pp_mse_at(size_t i, const float *y, const float *t, float inv_n,
                                     float *dy)
{
    double e = (double)y[i] - (double)t[i];
    dy[i] = pp_mse_grad(y[i], t[i], inv_n);
    return e * e;
}

static inline PP_HD float pp_sgd_at(size_t i, float *p, float *g, float lr)
{
    float v = pp_sgd(p[i], g[i], lr);
    p[i] = v;
    g[i] = 0;
    return v;
}

static inline PP_HD void pp_make_batch_at(size_t i, uint64_t seed, int step, size_t first,
                                          float *x, float *t)
{
    if (x)
        x[i] = pp_uniform_pm1(seed, PP_STREAM_X(step), first + i);
    if (t)
        t[i] = pp_uniform_pm1(seed, PP_STREAM_T(step), first + i);
}

#endif
