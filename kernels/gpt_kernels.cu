/*
 * gpt_kernels.cu — the transformer's kernels on the CUDA backend
 * (gpt_kernels.h's table, pr_gpt_kernels_cuda), all on the device's stream,
 * nothing waiting for the GPU, nothing allocated (a captured step replays
 * them as they are).  Element-wise work is a grid-stride loop around a
 * body of gpt_launch.h; a row kernel (LayerNorm, the causal softmax, the
 * cross-entropy) gives each row to one warp, its lanes splitting the row
 * as gpt_launch.h says (the row functions' formulas; the sums in 32 lane
 * partials and a fixed butterfly).  Reductions over rows run in a fixed
 * order: LayerNorm's weight gradient on the column sum's shapes
 * (mlp_launch.h), the loss in per-block partials summed in block order,
 * the embedding's gradient row by row in token order (no atomics: every
 * run gives the same bits, and those of the CPU's loop).
 */
#include <stdio.h>

#include "cuda_ctx.cuh"
#include "gpt_kernels.h"
#include "gpt_launch.h"
#include "mlp_kernels.cuh" /* pp_launch_colsum */

#define GRID_STRIDE(i, count)                                                                      \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (count);                    \
         i += (size_t)gridDim.x * blockDim.x)

/* Rows of a row kernel: warp w of block b takes rows w + 8 b, then a
 * stride of the grid's warps. */
#define ROW_STRIDE(row, rows)                                                                      \
    for (size_t row = blockIdx.x * (size_t)PP_GPT_ROWS_PER_BLOCK + threadIdx.x / PP_GPT_LANES;     \
         row < (rows); row += (size_t)gridDim.x * PP_GPT_ROWS_PER_BLOCK)

#define LANE ((int)(threadIdx.x % PP_GPT_LANES))
#define FULL 0xffffffffu

/* pp_gpt_lane_tree on the warp's registers. */
static __device__ float warp_sum(float v)
{
    for (int w = PP_GPT_LANES / 2; w > 0; w /= 2)
        v += __shfl_xor_sync(FULL, v, w);
    return v;
}

static __device__ float warp_max(float v)
{
    for (int w = PP_GPT_LANES / 2; w > 0; w /= 2) {
        float o = __shfl_xor_sync(FULL, v, w);
        v = o > v ? o : v;
    }
    return v;
}

/* ---- element-wise kernels ---- */

static __global__ void gpt_tokens_kernel(const uint8_t *data, int64_t bytes, uint64_t seed,
                                         const int *step, int seq, int vocab, int row0, int shift,
                                         int32_t *out, size_t count)
{
    int k = *step;
    GRID_STRIDE(i, count) pp_gpt_tokens_at(i, data, bytes, seed, k, seq, vocab, row0, shift, out);
}

static __global__ void gpt_embed_kernel(const int32_t *__restrict__ tok,
                                        const float *__restrict__ wte,
                                        const float *__restrict__ wpe, float *__restrict__ y,
                                        int seq, int h, size_t count)
{
    GRID_STRIDE(i, count) pp_gpt_embed_at(i, tok, wte, wpe, y, seq, h);
}

static __global__ void gpt_wpe_grad_kernel(const float *__restrict__ dy, float *__restrict__ gwpe,
                                           int n, int seq, int h, size_t count)
{
    GRID_STRIDE(i, count) pp_gpt_wpe_grad_at(i, dy, gwpe, n, seq, h);
}

/* The token embedding's gradient.  Block b takes the tokens i = b, b +
 * grid, ...; the block of the first occurrence of a token v adds, for
 * each column j (one thread), the rows of dy of every occurrence of v in
 * token order onto gwte[v][j] — the CPU loop's order, so the same bits —
 * finding them 32 tokens at a time with a ballot.  Other blocks skip v. */
static __global__ void gpt_wte_grad_kernel(const int32_t *__restrict__ tok,
                                           const float *__restrict__ dy, float *__restrict__ gwte,
                                           int n, int h)
{
    int lane = LANE, warp = (int)(threadIdx.x / PP_GPT_LANES);
    int warps = (int)(blockDim.x / PP_GPT_LANES);
    for (int i = (int)blockIdx.x; i < n; i += (int)gridDim.x) {
        int32_t v = tok[i];
        int seen = 0;
        for (int base = warp * PP_GPT_LANES; base < i; base += warps * PP_GPT_LANES) {
            int k = base + lane;
            seen |= __any_sync(FULL, k < i && tok[k] == v);
        }
        if (__syncthreads_or(seen))
            continue; /* an earlier block's token */
        float *row = gwte + (size_t)v * (size_t)h;
        for (int j0 = 0; j0 < h;
             j0 += (int)blockDim.x) { /* uniform over the block: ballots below */
            int j = j0 + (int)threadIdx.x;
            float acc = j < h ? row[j] : 0.0f;
            for (int base = i; base < n; base += PP_GPT_LANES) {
                int k = base + lane;
                unsigned m = __ballot_sync(FULL, k < n && tok[k] == v);
                while (m) {
                    int b = __ffs(m) - 1;
                    m &= m - 1;
                    if (j < h)
                        acc += dy[(size_t)(base + b) * (size_t)h + (size_t)j];
                }
            }
            if (j < h)
                row[j] = acc;
        }
    }
}

static __global__ void gpt_bias_residual_kernel(float *y, const float *__restrict__ b,
                                                const float *res, int cols, size_t count)
{
    GRID_STRIDE(i, count) pp_gpt_bias_residual_at(i, y, b, res, cols);
}

static __global__ void gpt_bias_gelu_kernel(float *u, const float *__restrict__ b, float *g, int f,
                                            size_t count)
{
    GRID_STRIDE(i, count) pp_gpt_bias_gelu_at(i, u, b, g, f);
}

/* du may be dg: element i reads both before it writes. */
static __global__ void gpt_gelu_backward_kernel(const float *dg, const float *__restrict__ u,
                                                float *du, size_t count)
{
    GRID_STRIDE(i, count) pp_gpt_gelu_backward_at(i, dg, u, du);
}

/* ---- row kernels: one warp per row ---- */

/* y may be x: each lane reads its elements before writing them. */
static __global__ void gpt_layernorm_kernel(const float *x, const float *__restrict__ w,
                                            const float *__restrict__ b, float *y,
                                            float *__restrict__ mean, float *__restrict__ rstd,
                                            int n, int h)
{
    int lane = LANE;
    ROW_STRIDE(r, (size_t)n)
    {
        const float *xr = x + r * (size_t)h;
        float mu = warp_sum(pp_ln_lane_sum(xr, h, lane)) / (float)h;
        float rs = pp_ln_rstd(warp_sum(pp_ln_lane_var(xr, mu, h, lane)), h);
        pp_ln_lane_out(xr, w, b, y + r * (size_t)h, mu, rs, h, lane);
        if (lane == 0) {
            mean[r] = mu;
            rstd[r] = rs;
        }
    }
}

/* dx may be dres (or dy): each lane reads its elements before writing them. */
static __global__ void gpt_layernorm_backward_kernel(const float *dy, const float *x,
                                                     const float *__restrict__ mean,
                                                     const float *__restrict__ rstd,
                                                     const float *__restrict__ w, const float *dres,
                                                     float *dx, int n, int h)
{
    int lane = LANE;
    ROW_STRIDE(r, (size_t)n)
    {
        size_t o = r * (size_t)h;
        float sg, sgx;
        pp_ln_back_lane_sums(dy + o, x + o, mean[r], rstd[r], w, h, lane, &sg, &sgx);
        sg = warp_sum(sg) / (float)h;
        sgx = warp_sum(sgx) / (float)h;
        pp_ln_back_lane_out(dy + o, x + o, mean[r], rstd[r], w, dres ? dres + o : NULL, dx + o, sg,
                            sgx, h, lane);
    }
}

/* The column sum's kernels (mlp_kernels.cu) with dy xhat for dz. */
static __global__ void gpt_ln_dw_kernel(const float *__restrict__ dy, const float *__restrict__ x,
                                        const float *__restrict__ mean,
                                        const float *__restrict__ rstd, float *__restrict__ out,
                                        int n, int h)
{
    __shared__ float part[PP_COLSUM_Y][PP_COLSUM_X + 1];
    int j = (int)blockIdx.x * PP_COLSUM_X + (int)threadIdx.x, r0, r1;
    pp_colsum_rows(n, blockIdx.y, &r0, &r1);
    part[threadIdx.y][threadIdx.x] =
        j < h ? pp_ln_dw_partial(dy, x, mean, rstd, r0, r1, h, j, (int)threadIdx.y) : 0;
    __syncthreads();
    if (threadIdx.y == 0 && j < h)
        pp_colsum_store(out, gridDim.y, blockIdx.y, h, j, pp_colsum_block_sum(part, threadIdx.x));
}

static __global__ void gpt_ln_dw_chunks_kernel(const float *__restrict__ partial, unsigned chunks,
                                               int h, float *__restrict__ dw)
{
    GRID_STRIDE(j, (size_t)h) pp_colsum_chunks_at(j, partial, chunks, h, dw);
}

/* In place: row r of the count * t rows is row q = r mod t of its block. */
static __global__ void gpt_causal_softmax_kernel(float *s, size_t rows, int t, float scale)
{
    int lane = LANE;
    ROW_STRIDE(r, rows)
    {
        float *row = s + r * (size_t)t;
        int q = (int)(r % (size_t)t);
        float mx = warp_max(pp_softmax_lane_max(row, q, scale, lane));
        float sum = warp_sum(pp_softmax_lane_exp(row, row, q, scale, mx, lane));
        pp_softmax_lane_scale(row, q, t, 1.0f / sum, lane);
    }
}

static __global__ void gpt_causal_softmax_backward_kernel(const float *__restrict__ p, float *dp,
                                                          size_t rows, int t, float scale)
{
    int lane = LANE;
    ROW_STRIDE(r, rows)
    {
        size_t o = r * (size_t)t;
        int q = (int)(r % (size_t)t);
        float dot = warp_sum(pp_softmax_back_lane_dot(p + o, dp + o, q, lane));
        pp_softmax_back_lane_out(p + o, dp + o, dp + o, q, t, scale, dot, lane);
    }
}

/* dz may be z.  Lane 0 of each warp adds its rows' losses in row order;
 * thread 0 adds the block's warps in warp order into partial[block]. */
static __global__ void gpt_cross_entropy_kernel(const float *z, const int32_t *__restrict__ target,
                                                float *dz, int n, int v, float scale,
                                                double *__restrict__ partial)
{
    __shared__ double warp_loss[PP_GPT_ROWS_PER_BLOCK];
    int lane = LANE;
    double loss = 0;
    ROW_STRIDE(r, (size_t)n)
    {
        const float *zr = z + r * (size_t)v;
        int tg = target[r];
        float zt = zr[tg];
        float mx = warp_max(pp_ce_lane_max(zr, v, lane));
        float sum = warp_sum(pp_ce_lane_sum(zr, v, mx, lane));
        __syncwarp(); /* every lane has read z[target] before any writes dz */
        pp_ce_lane_grad(zr, tg, v, scale, mx, 1.0f / sum, dz + r * (size_t)v, lane);
        loss += pp_ce_row_loss(sum, zt, mx);
    }
    if (lane == 0)
        warp_loss[threadIdx.x / PP_GPT_LANES] = loss;
    __syncthreads();
    if (threadIdx.x == 0) {
        double s = 0;
        for (int w = 0; w < PP_GPT_ROWS_PER_BLOCK; w++)
            s += warp_loss[w];
        partial[blockIdx.x] = s;
    }
}

/* The loss slot: the blocks' partials in block order (overwritten). */
static __global__ void gpt_loss_final_kernel(const double *__restrict__ partial, unsigned nblocks,
                                             double *__restrict__ loss)
{
    double s = 0;
    for (unsigned b = 0; b < nblocks; b++)
        s += partial[b];
    *loss = s;
}

/* ---- the table ---- */

/* The context, with the op recorded as the last to enqueue work; NULL
 * when the context failed already. */
static cuda_ctx *enqueue(pr_bctx *cb)
{
    if (cb->failed)
        return NULL;
    cb->last_op = cb->op;
    return (cuda_ctx *)cb;
}

static void check_error(pr_bctx *cb, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return;
    char msg[200];
    snprintf(msg, sizeof msg, "failed (%s: %s)", cudaGetErrorName(e), cudaGetErrorString(e));
    pr_bctx_fail(cb, what, msg);
}

/* After a launch: the launch's error, if any. */
static void check(pr_bctx *cb, const char *what) { check_error(cb, cudaGetLastError(), what); }

static unsigned row_blocks(size_t rows) { return pp_gpt_row_blocks(rows, PP_MAX_BLOCKS); }

static void cuda_tokens(pr_bctx *cb, const uint8_t *data, int64_t bytes, uint64_t seed, int seq,
                        int vocab, int row0, int rows, int shift, int32_t *out)
{
    cuda_ctx *c = enqueue(cb);
    size_t count = (size_t)rows * (size_t)seq;
    if (!c || !count)
        return;
    gpt_tokens_kernel<<<pp_blocks_for(count), PP_THREADS, 0, c->stream>>>(
        data, bytes, seed, c->step_dev, seq, vocab, row0, shift, out, count);
    check(cb, "gpt tokens kernel");
}

static void cuda_embed(pr_bctx *cb, const int32_t *tok, const float *wte, const float *wpe,
                       float *y, int n, int seq, int h)
{
    cuda_ctx *c = enqueue(cb);
    size_t count = (size_t)n * (size_t)h;
    if (!c || !count)
        return;
    gpt_embed_kernel<<<pp_blocks_for(count), PP_THREADS, 0, c->stream>>>(tok, wte, wpe, y, seq, h,
                                                                         count);
    check(cb, "gpt embed kernel");
}

static void cuda_embed_backward(pr_bctx *cb, const int32_t *tok, const float *dy, float *gwte,
                                float *gwpe, int n, int seq, int h)
{
    cuda_ctx *c = enqueue(cb);
    if (!c || n <= 0 || h <= 0)
        return;
    size_t pos = (size_t)(n < seq ? n : seq) * (size_t)h;
    gpt_wpe_grad_kernel<<<pp_blocks_for(pos), PP_THREADS, 0, c->stream>>>(dy, gwpe, n, seq, h, pos);
    unsigned blocks = n < (int)PP_MAX_BLOCKS ? (unsigned)n : PP_MAX_BLOCKS;
    gpt_wte_grad_kernel<<<blocks, PP_THREADS, 0, c->stream>>>(tok, dy, gwte, n, h);
    check(cb, "gpt embed_backward kernel");
}

static void cuda_layernorm(pr_bctx *cb, const float *x, const float *w, const float *b, float *y,
                           float *mean, float *rstd, int n, int h)
{
    cuda_ctx *c = enqueue(cb);
    if (!c || n <= 0)
        return;
    gpt_layernorm_kernel<<<row_blocks((size_t)n), PP_THREADS, 0, c->stream>>>(x, w, b, y, mean,
                                                                              rstd, n, h);
    check(cb, "gpt layernorm kernel");
}

static void cuda_layernorm_backward(pr_bctx *cb, const float *dy, const float *x, const float *mean,
                                    const float *rstd, const float *w, const float *dres, float *dx,
                                    int n, int h)
{
    cuda_ctx *c = enqueue(cb);
    if (!c || n <= 0)
        return;
    gpt_layernorm_backward_kernel<<<row_blocks((size_t)n), PP_THREADS, 0, c->stream>>>(
        dy, x, mean, rstd, w, dres, dx, n, h);
    check(cb, "gpt layernorm_backward kernel");
}

/* dw through the column sum's two passes with dy xhat; db = the column sum
 * of dy (the backend's own).  Both use the context's colsum scratch. */
static void cuda_layernorm_backward_weight(pr_bctx *cb, const float *dy, const float *x,
                                           const float *mean, const float *rstd, float *dw,
                                           float *db, int n, int h)
{
    cuda_ctx *c = enqueue(cb);
    if (!c || n <= 0 || h <= 0)
        return;
    if (h > c->max_cols) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "hidden %d is wider than the context's column-sum scratch (%d columns)", h,
                 c->max_cols);
        pr_bctx_fail(cb, "gpt layernorm_backward_weight:", msg);
        return;
    }
    unsigned chunks = pp_colsum_chunks(n);
    dim3 grid(pp_colsum_blocks(h), chunks), block(PP_COLSUM_X, PP_COLSUM_Y);
    gpt_ln_dw_kernel<<<grid, block, 0, c->stream>>>(dy, x, mean, rstd,
                                                    chunks == 1 ? dw : c->colsum_partial, n, h);
    if (chunks > 1)
        gpt_ln_dw_chunks_kernel<<<pp_blocks_for((size_t)h), PP_THREADS, 0, c->stream>>>(
            c->colsum_partial, chunks, h, dw);
    check(cb, "gpt layernorm_backward_weight kernel");
    if (!cb->failed)
        check_error(cb, pp_launch_colsum(dy, db, n, h, c->colsum_partial, c->stream),
                    "gpt layernorm_backward_weight colsum");
}

static void cuda_bias_residual(pr_bctx *cb, float *y, const float *b, const float *res, int n,
                               int cols)
{
    cuda_ctx *c = enqueue(cb);
    size_t count = (size_t)n * (size_t)cols;
    if (!c || !count)
        return;
    gpt_bias_residual_kernel<<<pp_blocks_for(count), PP_THREADS, 0, c->stream>>>(y, b, res, cols,
                                                                                 count);
    check(cb, "gpt bias_residual kernel");
}

static void cuda_bias_gelu(pr_bctx *cb, float *u, const float *b, float *g, int n, int f)
{
    cuda_ctx *c = enqueue(cb);
    size_t count = (size_t)n * (size_t)f;
    if (!c || !count)
        return;
    gpt_bias_gelu_kernel<<<pp_blocks_for(count), PP_THREADS, 0, c->stream>>>(u, b, g, f, count);
    check(cb, "gpt bias_gelu kernel");
}

static void cuda_gelu_backward(pr_bctx *cb, const float *dg, const float *u, float *du,
                               size_t count)
{
    cuda_ctx *c = enqueue(cb);
    if (!c || !count)
        return;
    gpt_gelu_backward_kernel<<<pp_blocks_for(count), PP_THREADS, 0, c->stream>>>(dg, u, du, count);
    check(cb, "gpt gelu_backward kernel");
}

static void cuda_causal_softmax(pr_bctx *cb, float *s, int count, int t, float scale)
{
    cuda_ctx *c = enqueue(cb);
    size_t rows = (size_t)count * (size_t)t;
    if (!c || !rows)
        return;
    gpt_causal_softmax_kernel<<<row_blocks(rows), PP_THREADS, 0, c->stream>>>(s, rows, t, scale);
    check(cb, "gpt causal_softmax kernel");
}

static void cuda_causal_softmax_backward(pr_bctx *cb, const float *p, float *dp, int count, int t,
                                         float scale)
{
    cuda_ctx *c = enqueue(cb);
    size_t rows = (size_t)count * (size_t)t;
    if (!c || !rows)
        return;
    gpt_causal_softmax_backward_kernel<<<row_blocks(rows), PP_THREADS, 0, c->stream>>>(p, dp, rows,
                                                                                       t, scale);
    check(cb, "gpt causal_softmax_backward kernel");
}

static void cuda_cross_entropy(pr_bctx *cb, const float *z, const int32_t *target, float *dz, int n,
                               int v, float scale, int slot)
{
    cuda_ctx *c = enqueue(cb);
    if (!c)
        return;
    if (slot < 0 || slot >= cb->slots) {
        pr_bctx_fail(cb, "gpt cross-entropy:", "loss slot out of range");
        return;
    }
    unsigned nb = pp_gpt_row_blocks((size_t)(n > 0 ? n : 0), PP_GPT_CE_MAX_BLOCKS);
    gpt_cross_entropy_kernel<<<nb, PP_THREADS, 0, c->stream>>>(z, target, dz, n, v, scale,
                                                               c->mse_partial);
    gpt_loss_final_kernel<<<1, 1, 0, c->stream>>>(c->mse_partial, nb, cb->loss + slot);
    check(cb, "gpt cross-entropy kernel");
}

extern "C" const pr_gpt_kernels pr_gpt_kernels_cuda = {
    cuda_tokens,
    cuda_embed,
    cuda_embed_backward,
    cuda_layernorm,
    cuda_layernorm_backward,
    cuda_layernorm_backward_weight,
    cuda_bias_residual,
    cuda_bias_gelu,
    cuda_gelu_backward,
    cuda_causal_softmax,
    cuda_causal_softmax_backward,
    cuda_cross_entropy,
};
