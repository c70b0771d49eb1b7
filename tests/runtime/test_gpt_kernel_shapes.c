/*
 * test_gpt_kernel_shapes.c — the transformer's CUDA kernels
 * (kernels/gpt_kernels.cu) walked on the CPU: their launch shapes and the
 * bodies of kernels/gpt_launch.h, run block by block, warp by warp, lane
 * by lane as the kernels run them, against the row functions of
 * kernels/gpt_math.h in plain loops (what the CPU table computes).
 * Element-wise bodies and the embedding's gradient must give the same
 * bits; a row split between lanes sums in another order, so within
 * rounding; every output element is written exactly once (outputs start
 * as NaN, guards past the end stay).
 *
 * What stands for a kernel's own code here (the warp's shuffles are
 * pp_gpt_lane_tree and an exact max, the ballot walk of the token
 * embedding's gradient, the loss's per-warp / per-block order) is written
 * again below, not the kernel's; the kernels themselves run on a GPU in
 * tests/runtime/gpt_kernel_check.cu (kernel_check, tools/gpu-check).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_launch.h"
#include "kernel_emulate.h"
#include "test_util.h"

/* rows n, width h (an odd width, one below a warp, one past it, GPT-2's) */
static const int shapes[][2] = {{1, 1}, {3, 5}, {7, 31}, {5, 33}, {64, 128}, {33, 1000}, {17, 768}};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

/* |got - want| <= rel |want| + abs for all i */
static void near(const char *what, const float *got, const float *want, size_t n, double rel,
                 double abs)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs((double)got[i] - want[i]) <= rel * fabs((double)want[i]) + abs,
                      "%s: element %zu of %zu: %.9g, want %.9g", what, i, n, got[i], want[i]);
}

/* The warp's butterfly sum / max over the lanes' partials. */
static float lanes_sum(const float *part)
{
    float v[PP_GPT_LANES];
    memcpy(v, part, sizeof v);
    return pp_gpt_lane_tree(v);
}

static float lanes_max(const float *part)
{
    float m = -INFINITY;
    for (int l = 0; l < PP_GPT_LANES; l++)
        m = part[l] > m ? part[l] : m;
    return m;
}

/* Rows a row kernel of pp_gpt_row_blocks(rows, cap) blocks gives warp w of
 * block b: b ROWS + w, then strides of the grid's warps (ROW_STRIDE); the
 * body (the rest of the arguments) sees the row as r. */
#define EMULATE_ROWS(rows, cap, visits, ...)                                                       \
    do {                                                                                           \
        unsigned grid_ = pp_gpt_row_blocks(rows, cap);                                             \
        size_t stride_ = (size_t)grid_ * PP_GPT_ROWS_PER_BLOCK;                                    \
        for (unsigned blk_ = 0; blk_ < grid_; blk_++)                                              \
            for (unsigned w_ = 0; w_ < PP_GPT_ROWS_PER_BLOCK; w_++)                                \
                for (size_t r = (size_t)blk_ * PP_GPT_ROWS_PER_BLOCK + w_; r < (rows);             \
                     r += stride_) {                                                               \
                    (visits)[r]++;                                                                 \
                    __VA_ARGS__;                                                                   \
                }                                                                                  \
    } while (0)

START_TEST(launch_shapes)
{
    ck_assert_int_eq(PP_GPT_ROWS_PER_BLOCK * PP_GPT_LANES, PP_THREADS);
    ck_assert_uint_eq(pp_gpt_row_blocks(0, PP_MAX_BLOCKS), 1);
    ck_assert_uint_eq(pp_gpt_row_blocks(1, PP_MAX_BLOCKS), 1);
    ck_assert_uint_eq(pp_gpt_row_blocks(PP_GPT_ROWS_PER_BLOCK, PP_MAX_BLOCKS), 1);
    ck_assert_uint_eq(pp_gpt_row_blocks(PP_GPT_ROWS_PER_BLOCK + 1, PP_MAX_BLOCKS), 2);
    /* attention scores of GPT-2 small: 8 x 12 heads x 1024 rows, no cap */
    ck_assert_uint_eq(pp_gpt_row_blocks((size_t)8 * 12 * 1024, PP_MAX_BLOCKS),
                      8 * 12 * 1024 / PP_GPT_ROWS_PER_BLOCK);
    /* the loss: at most one partial per block of the MSE scratch */
    ck_assert_uint_eq(pp_gpt_row_blocks((size_t)1 << 20, PP_GPT_CE_MAX_BLOCKS),
                      PP_GPT_CE_MAX_BLOCKS);
    ck_assert_uint_le(PP_GPT_CE_MAX_BLOCKS, PP_MSE_MAX_BLOCKS);
}
END_TEST

/* Every lane of the butterfly ends with the same sum, and small integers
 * sum exactly in any order: the tree adds every partial once. */
START_TEST(lane_tree)
{
    float v[PP_GPT_LANES];
    for (int l = 0; l < PP_GPT_LANES; l++)
        v[l] = (float)(l * l + 1);
    float s = pp_gpt_lane_tree(v);
    float want = 0;
    for (int l = 0; l < PP_GPT_LANES; l++)
        want += (float)(l * l + 1);
    ck_assert_float_eq(s, want);
    for (int l = 0; l < PP_GPT_LANES; l++)
        ck_assert_float_eq(v[l], s);
}
END_TEST

START_TEST(layernorm_lanes)
{
    int n = shapes[_i][0], h = shapes[_i][1];
    size_t count = (size_t)n * h;
    float *x = fill(count, 1), *w = fill(h, 2), *b = fill(h, 3), *dy = fill(count, 4),
          *dres = fill(count, 5);
    for (size_t i = 0; i < count; i++)
        x[i] = 3 * x[i] + 0.5f; /* a mean away from 0 */
    float *y = malloc(count * sizeof(float)), *mean = malloc(n * sizeof(float)),
          *rstd = malloc(n * sizeof(float)), *dx = malloc(count * sizeof(float));
    for (int r = 0; r < n; r++) {
        size_t o = (size_t)r * h;
        pp_layernorm_row(x + o, w, b, y + o, &mean[r], &rstd[r], h);
        pp_layernorm_backward_row(dy + o, x + o, mean[r], rstd[r], w, dres + o, dx + o, h);
    }
    float *gy = nans(count), *gm = nans(n), *gr = nans(n), *gdx = malloc(count * sizeof(float));
    memcpy(gdx, dres, count * sizeof(float)); /* in place: dx is dres */
    unsigned char *visits = calloc(n, 1), *back = calloc(n, 1);
    EMULATE_ROWS((size_t)n, PP_MAX_BLOCKS, visits, {
        const float *xr = x + r * h;
        float part[PP_GPT_LANES];
        for (int l = 0; l < PP_GPT_LANES; l++)
            part[l] = pp_ln_lane_sum(xr, h, l);
        float mu = lanes_sum(part) / (float)h;
        for (int l = 0; l < PP_GPT_LANES; l++)
            part[l] = pp_ln_lane_var(xr, mu, h, l);
        float rs = pp_ln_rstd(lanes_sum(part), h);
        for (int l = 0; l < PP_GPT_LANES; l++)
            pp_ln_lane_out(xr, w, b, gy + r * h, mu, rs, h, l);
        gm[r] = mu;
        gr[r] = rs;
    });
    EMULATE_ROWS((size_t)n, PP_MAX_BLOCKS, back, {
        size_t o = r * h;
        float sg[PP_GPT_LANES], sgx[PP_GPT_LANES];
        for (int l = 0; l < PP_GPT_LANES; l++)
            pp_ln_back_lane_sums(dy + o, x + o, mean[r], rstd[r], w, h, l, &sg[l], &sgx[l]);
        float a = lanes_sum(sg) / (float)h, c = lanes_sum(sgx) / (float)h;
        for (int l = 0; l < PP_GPT_LANES; l++)
            pp_ln_back_lane_out(dy + o, x + o, mean[r], rstd[r], w, gdx + o, gdx + o, a, c, h, l);
    });
    assert_once(visits, n, "layernorm rows");
    assert_once(back, n, "layernorm_backward rows");
    near("layernorm y", gy, y, count, 1e-5, 1e-5);
    near("layernorm mean", gm, mean, n, 1e-5, 1e-6);
    near("layernorm rstd", gr, rstd, n, 1e-5, 1e-6);
    near("layernorm_backward dx", gdx, dx, count, 1e-5, 2e-5);
    free(x), free(w), free(b), free(dy), free(dres), free(y), free(mean), free(rstd), free(dx);
    free(gy), free(gm), free(gr), free(gdx), free(visits), free(back);
}
END_TEST

/* LayerNorm's weight gradient on the column sum's shapes, one chunk and several. */
static const int dw_shapes[][2] = {{1, 1}, {7, 33}, {PP_COLSUM_CHUNK_ROWS + 1, 96}, {9000, 40}};
enum { NDW = sizeof dw_shapes / sizeof dw_shapes[0] };

START_TEST(layernorm_weight_columns)
{
    int n = dw_shapes[_i][0], h = dw_shapes[_i][1];
    size_t count = (size_t)n * h;
    float *x = fill(count, 6), *dy = fill(count, 7), *mean = fill(n, 8), *rstd = fill(n, 9);
    float *dw = fill(h, 10), *want = malloc(h * sizeof(float));
    double *ref = malloc(h * sizeof(double));
    for (int j = 0; j < h; j++)
        ref[j] = dw[j];
    for (int r = 0; r < n; r++)
        for (int j = 0; j < h; j++) {
            size_t o = (size_t)r * h + j;
            ref[j] += (double)dy[o] * ((x[o] - mean[r]) * rstd[r]);
        }
    unsigned chunks = pp_colsum_chunks(n), grid = pp_colsum_blocks(h);
    float *partial = nans((size_t)PP_COLSUM_MAX_CHUNKS * h);
    for (unsigned c = 0; c < chunks; c++) {
        int r0, r1;
        pp_colsum_rows(n, c, &r0, &r1);
        for (unsigned blk = 0; blk < grid; blk++) {
            float part[PP_COLSUM_Y][PP_COLSUM_X + 1];
            for (int ty = 0; ty < PP_COLSUM_Y; ty++)
                for (int tx = 0; tx < PP_COLSUM_X; tx++) {
                    int j = (int)blk * PP_COLSUM_X + tx;
                    part[ty][tx] =
                        j < h ? pp_ln_dw_partial(dy, x, mean, rstd, r0, r1, h, j, ty) : 0;
                }
            for (int tx = 0; tx < PP_COLSUM_X; tx++) {
                int j = (int)blk * PP_COLSUM_X + tx;
                if (j < h)
                    pp_colsum_store(
                        chunks == 1 ? dw : partial, chunks, c, h, j,
                        pp_colsum_block_sum((const float(*)[PP_COLSUM_X + 1]) part, tx));
            }
        }
    }
    if (chunks > 1) {
        unsigned char *cols = calloc((size_t)h, 1);
        EMULATE_GRID_STRIDE((size_t)h, cols, pp_colsum_chunks_at(i, partial, chunks, h, dw));
        assert_once(cols, (size_t)h, "layernorm dw chunks");
        free(cols);
    }
    for (int j = 0; j < h; j++)
        ck_assert_msg(fabs(dw[j] - ref[j]) <= 2e-7 * n * (1 + fabs(ref[j])) + 1e-6,
                      "column %d: %.9g, want %.9g", j, dw[j], ref[j]);
    free(x), free(dy), free(mean), free(rstd), free(dw), free(want), free(ref), free(partial);
}
END_TEST

/* The causal softmax and its backward, in place, rows of count [t, t] blocks. */
static const int softmax_shapes[][2] = {{1, 1}, {3, 7}, {2, 33}, {2, 100}};
enum { NSOFTMAX = sizeof softmax_shapes / sizeof softmax_shapes[0] };

START_TEST(softmax_lanes)
{
    int count = softmax_shapes[_i][0], t = softmax_shapes[_i][1];
    size_t rows = (size_t)count * t, n = rows * t;
    float scale = 0.125f;
    float *s = fill(n, 11), *dp = fill(n, 12), *p = malloc(n * sizeof(float)),
          *ds = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        s[i] *= 20;
    for (size_t r = 0; r < rows; r++) {
        pp_causal_softmax_row(s + r * t, p + r * t, (int)(r % t), t, scale);
        pp_causal_softmax_backward_row(p + r * t, dp + r * t, ds + r * t, (int)(r % t), t, scale);
    }
    float *gs = malloc(n * sizeof(float)), *gdp = malloc(n * sizeof(float));
    memcpy(gs, s, n * sizeof(float));
    memcpy(gdp, dp, n * sizeof(float));
    unsigned char *fwd = calloc(rows, 1), *back = calloc(rows, 1);
    EMULATE_ROWS(rows, PP_MAX_BLOCKS, fwd, {
        float *row = gs + r * t, part[PP_GPT_LANES];
        int q = (int)(r % (size_t)t);
        for (int l = 0; l < PP_GPT_LANES; l++)
            part[l] = pp_softmax_lane_max(row, q, scale, l);
        float mx = lanes_max(part);
        for (int l = 0; l < PP_GPT_LANES; l++)
            part[l] = pp_softmax_lane_exp(row, row, q, scale, mx, l);
        float inv = 1.0f / lanes_sum(part);
        for (int l = 0; l < PP_GPT_LANES; l++)
            pp_softmax_lane_scale(row, q, t, inv, l);
    });
    EMULATE_ROWS(rows, PP_MAX_BLOCKS, back, {
        size_t o = r * t;
        float part[PP_GPT_LANES];
        int q = (int)(r % (size_t)t);
        for (int l = 0; l < PP_GPT_LANES; l++)
            part[l] = pp_softmax_back_lane_dot(p + o, gdp + o, q, l);
        float dot = lanes_sum(part);
        for (int l = 0; l < PP_GPT_LANES; l++)
            pp_softmax_back_lane_out(p + o, gdp + o, gdp + o, q, t, scale, dot, l);
    });
    assert_once(fwd, rows, "causal_softmax rows");
    assert_once(back, rows, "causal_softmax_backward rows");
    near("causal_softmax", gs, p, n, 1e-5, 1e-7);
    near("causal_softmax_backward", gdp, ds, n, 1e-5, 1e-7);
    for (size_t r = 0; r < rows; r++) /* past the diagonal: exactly 0 */
        for (int k = (int)(r % t) + 1; k < t; k++)
            ck_assert_msg(gs[r * t + k] == 0 && gdp[r * t + k] == 0, "row %zu column %d", r, k);
    free(s), free(dp), free(p), free(ds), free(gs), free(gdp), free(fwd), free(back);
}
END_TEST

/* The cross-entropy in place: rows past the block cap (grid-stride rows),
 * the loss per warp in row order, per block in warp order, then the
 * blocks in order; the partials start as NaN. */
static const int ce_shapes[][2] = {
    {1, 1}, {5, 7}, {100, 256}, {PP_GPT_ROWS_PER_BLOCK * PP_GPT_CE_MAX_BLOCKS + 9, 5}, {2, 5000}};
enum { NCE = sizeof ce_shapes / sizeof ce_shapes[0] };

START_TEST(cross_entropy_lanes)
{
    int n = ce_shapes[_i][0], v = ce_shapes[_i][1];
    size_t count = (size_t)n * v;
    float scale = 1.0f / 1000;
    float *z = fill(count, 13), *dz = malloc(count * sizeof(float));
    int32_t *tg = malloc(n * sizeof(int32_t));
    for (size_t i = 0; i < count; i++)
        z[i] *= 8;
    for (int r = 0; r < n; r++)
        tg[r] = (int32_t)(pp_splitmix64((uint64_t)r) % (uint64_t)v);
    double want = 0;
    for (int r = 0; r < n; r++)
        want += pp_cross_entropy_row(z + (size_t)r * v, tg[r], v, scale, dz + (size_t)r * v);
    float *gz = malloc(count * sizeof(float));
    memcpy(gz, z, count * sizeof(float));
    unsigned nb = pp_gpt_row_blocks((size_t)n, PP_GPT_CE_MAX_BLOCKS);
    double *partial = malloc(PP_GPT_CE_MAX_BLOCKS * sizeof(double));
    for (int b = 0; b < PP_GPT_CE_MAX_BLOCKS; b++)
        partial[b] = NAN;
    double warp_loss[PP_GPT_CE_MAX_BLOCKS][PP_GPT_ROWS_PER_BLOCK] = {{0}};
    unsigned char *visits = calloc(n, 1);
    size_t stride = (size_t)nb * PP_GPT_ROWS_PER_BLOCK;
    EMULATE_ROWS((size_t)n, PP_GPT_CE_MAX_BLOCKS, visits, {
        const float *zr = gz + r * v;
        float part[PP_GPT_LANES];
        float zt = zr[tg[r]];
        for (int l = 0; l < PP_GPT_LANES; l++)
            part[l] = pp_ce_lane_max(zr, v, l);
        float mx = lanes_max(part);
        for (int l = 0; l < PP_GPT_LANES; l++)
            part[l] = pp_ce_lane_sum(zr, v, mx, l);
        float sum = lanes_sum(part);
        for (int l = 0; l < PP_GPT_LANES; l++)
            pp_ce_lane_grad(zr, tg[r], v, scale, mx, 1.0f / sum, gz + r * v, l);
        size_t warp = r % stride; /* the grid's warp that took row r */
        warp_loss[warp / PP_GPT_ROWS_PER_BLOCK][warp % PP_GPT_ROWS_PER_BLOCK] +=
            pp_ce_row_loss(sum, zt, mx);
    });
    for (unsigned b = 0; b < nb; b++) {
        double s = 0;
        for (int w = 0; w < PP_GPT_ROWS_PER_BLOCK; w++)
            s += warp_loss[b][w];
        partial[b] = s;
    }
    double loss = 0;
    for (unsigned b = 0; b < nb; b++)
        loss += partial[b];
    assert_once(visits, n, "cross_entropy rows");
    near("cross_entropy dz", gz, dz, count, 1e-5, 1e-6 * scale);
    ck_assert_msg(fabs(loss - want) <= 1e-6 * fabs(want) + 1e-9, "loss %.17g, want %.17g", loss,
                  want);
    free(z), free(dz), free(tg), free(gz), free(partial), free(visits);
}
END_TEST

/* ---- element-wise bodies, bitwise against the straightforward loops ---- */

START_TEST(elementwise_bodies)
{
    int n = shapes[_i][0], h = shapes[_i][1], seq = 3, vocab = 11;
    size_t count = (size_t)n * h;
    unsigned char *visits = calloc(count * 4 + 4, 1);
    /* tokens: synthetic and from data, inputs and targets */
    uint8_t data[300];
    for (int i = 0; i < 300; i++)
        data[i] = (uint8_t)(i * 7);
    int tseq = h < 200 ? h : 200; /* seq + 1 bytes must lie in the data */
    for (int shift = 0; shift < 2; shift++)
        for (int from_data = 0; from_data < 2; from_data++) {
            size_t nt = (size_t)n * tseq; /* n sequences of tseq tokens */
            int32_t *got = malloc(nt * sizeof(int32_t));
            memset(visits, 0, nt);
            EMULATE_GRID_STRIDE(nt, visits,
                                pp_gpt_tokens_at(i, from_data ? data : NULL, from_data ? 300 : 0, 9,
                                                 4, tseq, 256, 2, shift, got));
            assert_once(visits, nt, "tokens");
            for (int r = 0; r < n; r++)
                for (int i = 0; i < tseq; i++)
                    ck_assert_int_eq(got[(size_t)r * tseq + i],
                                     pp_gpt_token(from_data ? data : NULL, from_data ? 300 : 0, 9,
                                                  4, 2 + r, tseq, 256, i + shift));
            free(got);
        }
    /* embed and the position embedding's gradient */
    int32_t *tok = malloc(n * sizeof(int32_t));
    for (int i = 0; i < n; i++)
        tok[i] = (int32_t)(pp_splitmix64((uint64_t)i + 5) % (uint64_t)vocab);
    float *wte = fill((size_t)vocab * h, 14), *wpe = fill((size_t)seq * h, 15);
    float *y = nans(count), *dy = fill(count, 16);
    memset(visits, 0, count);
    EMULATE_GRID_STRIDE(count, visits, pp_gpt_embed_at(i, tok, wte, wpe, y, seq, h));
    assert_once(visits, count, "embed");
    for (int i = 0; i < n; i++)
        for (int j = 0; j < h; j++)
            ck_assert_float_eq(y[(size_t)i * h + j],
                               wte[(size_t)tok[i] * h + j] + wpe[(size_t)(i % seq) * h + j]);
    float *gpe = fill((size_t)seq * h, 17), *want = malloc((size_t)seq * h * sizeof(float));
    memcpy(want, gpe, (size_t)seq * h * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < h; j++)
            want[(size_t)(i % seq) * h + j] += dy[(size_t)i * h + j];
    size_t npos = (size_t)(n < seq ? n : seq) * h; /* as the launcher sizes it */
    memset(visits, 0, npos);
    EMULATE_GRID_STRIDE(npos, visits, pp_gpt_wpe_grad_at(i, dy, gpe, n, seq, h));
    assert_once(visits, npos, "wpe gradient");
    ck_assert_mem_eq(gpe, want, (size_t)seq * h * sizeof(float));
    /* bias + residual, bias + GELU, GELU backward */
    float *u = fill(count, 18), *b = fill(h, 19), *res = fill(count, 20);
    float *gu = malloc(count * sizeof(float)), *gg = nans(count),
          *wu = malloc(count * sizeof(float));
    for (int with_res = 0; with_res < 2; with_res++) {
        memcpy(gu, u, count * sizeof(float));
        memset(visits, 0, count);
        EMULATE_GRID_STRIDE(count, visits,
                            pp_gpt_bias_residual_at(i, gu, b, with_res ? res : NULL, h));
        assert_once(visits, count, "bias_residual");
        for (size_t i = 0; i < count; i++) {
            float v = u[i] + b[i % h];
            wu[i] = with_res ? v + res[i] : v;
        }
        ck_assert_mem_eq(gu, wu, count * sizeof(float));
    }
    memcpy(gu, u, count * sizeof(float));
    memset(visits, 0, count);
    EMULATE_GRID_STRIDE(count, visits, pp_gpt_bias_gelu_at(i, gu, b, gg, h));
    assert_once(visits, count, "bias_gelu");
    for (size_t i = 0; i < count; i++) {
        float zz = u[i] + b[i % h];
        ck_assert_float_eq(gu[i], zz);
        ck_assert_float_eq(gg[i], pp_gelu(zz));
    }
    memcpy(gg, dy, count * sizeof(float));
    memset(visits, 0, count);
    EMULATE_GRID_STRIDE(count, visits, pp_gpt_gelu_backward_at(i, gg, u, gg)); /* in place */
    assert_once(visits, count, "gelu_backward");
    for (size_t i = 0; i < count; i++)
        ck_assert_float_eq(gg[i], dy[i] * pp_gelu_grad(u[i]));
    free(visits), free(tok), free(wte), free(wpe), free(y), free(dy), free(gpe), free(want);
    free(u), free(b), free(res), free(gu), free(gg), free(wu);
}
END_TEST

/* The token embedding's gradient as gpt_wte_grad_kernel walks it: block i
 * (grid-stride over the tokens) skips a token seen before i; the first
 * occurrence's block adds, per column, every occurrence's row of dy in
 * token order, found 32 tokens at a time (the ballot's bits in order).
 * Bitwise the CPU loop's (row by row, in token order). */
static const int wte_shapes[][3] = {{1, 1, 1}, {40, 33, 3}, {100, 5, 256}, {257, 65, 7}};
enum { NWTE = sizeof wte_shapes / sizeof wte_shapes[0] };

START_TEST(wte_gradient_walk)
{
    int n = wte_shapes[_i][0], h = wte_shapes[_i][1], vocab = wte_shapes[_i][2];
    int32_t *tok = malloc(n * sizeof(int32_t));
    for (int i = 0; i < n; i++)
        tok[i] = (int32_t)(pp_splitmix64((uint64_t)i * 3) % (uint64_t)vocab);
    size_t nte = (size_t)vocab * h;
    float *dy = fill((size_t)n * h, 21), *g = fill(nte, 22), *want = malloc(nte * sizeof(float));
    memcpy(want, g, nte * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < h; j++)
            want[(size_t)tok[i] * h + j] += dy[(size_t)i * h + j];
    int *rows_added = calloc(n, sizeof(int));
    for (int i = 0; i < n; i++) { /* block i; the grid's stride does not change what a block does */
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen |= tok[k] == tok[i];
        if (seen)
            continue;
        for (int j = 0; j < h; j++) {
            float acc = g[(size_t)tok[i] * h + j];
            for (int base = i; base < n; base += PP_GPT_LANES) {
                unsigned m = 0;
                for (int l = 0; l < PP_GPT_LANES; l++)
                    m |= (base + l < n && tok[base + l] == tok[i]) ? 1u << l : 0;
                while (m) {
                    int bit = __builtin_ctz(m);
                    m &= m - 1;
                    acc += dy[(size_t)(base + bit) * h + j];
                    if (j == 0)
                        rows_added[base + bit]++;
                }
            }
            g[(size_t)tok[i] * h + j] = acc;
        }
    }
    for (int i = 0; i < n; i++)
        ck_assert_msg(rows_added[i] == 1, "token %d added %d times", i, rows_added[i]);
    ck_assert_mem_eq(g, want, nte * sizeof(float));
    free(tok), free(dy), free(g), free(want), free(rows_added);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("gpt_kernel_shapes");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, launch_shapes);
    tcase_add_test(tc, lane_tree);
    tcase_add_loop_test(tc, layernorm_lanes, 0, NSHAPES);
    tcase_add_loop_test(tc, layernorm_weight_columns, 0, NDW);
    tcase_add_loop_test(tc, softmax_lanes, 0, NSOFTMAX);
    tcase_add_loop_test(tc, cross_entropy_lanes, 0, NCE);
    tcase_add_loop_test(tc, elementwise_bodies, 0, NSHAPES);
    tcase_add_loop_test(tc, wte_gradient_walk, 0, NWTE);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }
