/*
 * test_kernel_shapes.c — the CUDA element-wise kernels' index arithmetic,
 * run on the CPU.  Each kernel of kernels/mlp_kernels.cu is a grid-stride
 * loop (or a 2-D block, or a two-pass reduction) around per-element and
 * per-block helpers of kernels/mlp_launch.h; here the same helpers run
 * block by block and thread by thread with the same launch shapes, and the
 * results are compared with the CPU backend's: bitwise where the kernel
 * does the same arithmetic, within rounding where a reduction sums in
 * another order.  Odd shapes (h not a multiple of the block, a single row,
 * more elements than the MSE's block cap) catch off-by-ones and missed
 * elements without a GPU.
 *
 * What this covers is the helpers and the launch shapes, walked the way
 * the kernels walk them; the loops below that stand for a kernel's own
 * code (its grid-stride loop, colsum's shared-memory staging and barrier,
 * the MSE's tree sums, which buffer a launcher passes) are re-written
 * here, not the kernel's.  The kernels themselves, every branch, run on a
 * GPU in tests/runtime/kernel_check.cu (test_gpu_kernels, tools/gpu-check).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "kernel_emulate.h"
#include "mlp_kernels.h"
#include "mlp_launch.h"
#include "test_util.h"

/* The shapes: rows n, hidden h. */
static const int shapes[][2] = {{1, 1}, {3, 5}, {7, 33}, {64, 128}, {33, 1000}, {257, 96},
                                {1024, 2100}};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

static pr_bctx *cpu_open(int n, int h)
{
    pr_backend_cfg cfg = {.devices = 1, .microbatches = 2, .gemm_floats = (size_t)n * h, .max_cols = h};
    char err[200];
    pr_bctx *c = pr_backend_cpu()->open(0, &cfg, err, sizeof err);
    ck_assert_ptr_nonnull(c);
    return c;
}

START_TEST(launch_shapes)
{
    ck_assert_uint_eq(pp_blocks_for(0), 1);
    ck_assert_uint_eq(pp_blocks_for(1), 1);
    ck_assert_uint_eq(pp_blocks_for(PP_THREADS), 1);
    ck_assert_uint_eq(pp_blocks_for(PP_THREADS + 1), 2);
    /* hidden 8192 x 4096 rows: no cap, one element per thread */
    ck_assert_uint_eq(pp_blocks_for((size_t)8192 * 4096), 8192u * 4096u / PP_THREADS);
    /* past 2^32 elements the count is not truncated: the cap, then a stride loop */
    ck_assert_uint_eq(pp_blocks_for((size_t)1 << 33), PP_MAX_BLOCKS);
    ck_assert_uint_eq(pp_colsum_blocks(8192), 8192 / PP_COLSUM_X);
    ck_assert_uint_eq(pp_colsum_blocks(33), 2);
    /* the bias gradient's grid grows with the rows too: 4096 rows, 16 chunks */
    ck_assert_uint_eq(pp_colsum_chunks(1), 1);
    ck_assert_uint_eq(pp_colsum_chunks(PP_COLSUM_CHUNK_ROWS), 1);
    ck_assert_uint_eq(pp_colsum_chunks(PP_COLSUM_CHUNK_ROWS + 1), 2);
    ck_assert_uint_eq(pp_colsum_chunks(4096), 16);
    ck_assert_uint_eq(pp_colsum_chunks(1 << 20), PP_COLSUM_MAX_CHUNKS);
    ck_assert_uint_eq(pp_mse_blocks(0), 1);
    ck_assert_uint_eq(pp_mse_blocks((size_t)8192 * 1024), PP_MSE_MAX_BLOCKS);
    ck_assert_uint_eq(pp_mse_blocks(PP_MSE_THREADS * PP_MSE_PER_THREAD + 1), 2);
}
END_TEST

START_TEST(make_batch_matches_cpu)
{
    int n = shapes[_i][0], h = shapes[_i][1], row0 = 3 * n, step = 5;
    size_t count = (size_t)n * h;
    pr_bctx *c = cpu_open(n, h);
    float *x = malloc(count * sizeof(float)), *t = malloc(count * sizeof(float));
    pr_backend_cpu()->set_step(c, step);
    pr_mlp_kernels_cpu.make_batch(c, 7, row0, n, h, x, t);
    float *gx = nans(count), *gt = nans(count);
    unsigned char *visits = calloc(count, 1);
    EMULATE_GRID_STRIDE(count, visits, pp_make_batch_at(i, 7, step, (size_t)row0 * h, gx, gt));
    assert_once(visits, count, "make_batch");
    ck_assert_mem_eq(gx, x, count * sizeof(float));
    ck_assert_mem_eq(gt, t, count * sizeof(float));
    pr_backend_cpu()->close(c);
    free(x), free(t), free(gx), free(gt), free(visits);
}
END_TEST

/* The MLP's forward = GEMM then bias + GELU: the GEMM is the CPU's own
 * here, so z and y must be bitwise the CPU's bias_gelu kernel's. */
START_TEST(bias_gelu_matches_cpu)
{
    int n = shapes[_i][0], h = shapes[_i][1];
    size_t count = (size_t)n * h;
    pr_bctx *c = cpu_open(n, h);
    float *x = fill(count, 1), *W = fill((size_t)h * h, 2), *b = fill(h, 3);
    float *z = malloc(count * sizeof(float)), *y = malloc(count * sizeof(float));
    pr_cpu_sgemm(n, h, h, x, W, z, 0);
    float *gz = malloc(count * sizeof(float)), *gy = nans(count);
    memcpy(gz, z, count * sizeof(float));
    pr_mlp_kernels_cpu.bias_gelu(c, x, b, z, y, n, h);
    unsigned char *visits = calloc(count, 1);
    EMULATE_GRID_STRIDE(count, visits, pp_bias_gelu_at(i, x, b, gz, gy, h));
    assert_once(visits, count, "bias_gelu");
    ck_assert_mem_eq(gz, z, count * sizeof(float));
    ck_assert_mem_eq(gy, y, count * sizeof(float));
    pr_backend_cpu()->close(c);
    free(x), free(W), free(b), free(z), free(y), free(gz), free(gy), free(visits);
}
END_TEST

START_TEST(gelu_backward_matches_cpu)
{
    int n = shapes[_i][0], h = shapes[_i][1];
    size_t count = (size_t)n * h;
    pr_bctx *c = cpu_open(n, h);
    float *dy = fill(count, 4), *z = fill(count, 5);
    float *dz = malloc(count * sizeof(float));
    pr_mlp_kernels_cpu.gelu_backward(c, dy, z, dz, NULL, count);
    float *gdz = nans(count), *gdx = nans(count);
    unsigned char *visits = calloc(count, 1);
    EMULATE_GRID_STRIDE(count, visits, pp_gelu_backward_at(i, dy, z, gdz, gdx));
    assert_once(visits, count, "gelu_backward");
    ck_assert_mem_eq(gdz, dz, count * sizeof(float));
    ck_assert_mem_eq(gdx, dy, count * sizeof(float)); /* the GEMM then adds dz W^T */
    pr_backend_cpu()->close(c);
    free(dy), free(z), free(dz), free(gdz), free(gdx), free(visits);
}
END_TEST

START_TEST(sgd_matches_cpu)
{
    int n = shapes[_i][0], h = shapes[_i][1];
    size_t count = (size_t)n * h;
    pr_bctx *c = cpu_open(n, h);
    float *p = fill(count, 6), *g = fill(count, 7), *gp = fill(count, 6), *gg = fill(count, 7);
    pr_backend_cpu()->sgd(c, p, g, 0.01f, count);
    unsigned char *visits = calloc(count, 1);
    EMULATE_GRID_STRIDE(count, visits, (void)pp_sgd_at(i, gp, gg, 0.01f));
    assert_once(visits, count, "sgd");
    ck_assert_mem_eq(gp, p, count * sizeof(float));
    ck_assert_mem_eq(gg, g, count * sizeof(float));
    pr_backend_cpu()->close(c);
    free(p), free(g), free(gp), free(gg), free(visits);
}
END_TEST

/* colsum: a grid of column blocks x row chunks, blocks of X columns x Y
 * row groups; one chunk adds to db, several write partial sums that a
 * second pass adds to db in chunk order.  The shared shapes plus batches
 * past the chunk cap, with a short last chunk. */
static const int colsum_shapes[][2] = {{1, 1},    {3, 5},     {7, 33},   {64, 128}, {33, 1000},
                                       {257, 96}, {1024, 2100}, {9000, 40}, {513, 3}};
enum { NCOLSUM = sizeof colsum_shapes / sizeof colsum_shapes[0] };

START_TEST(colsum_matches_cpu)
{
    int n = colsum_shapes[_i][0], h = colsum_shapes[_i][1];
    size_t count = (size_t)n * h;
    float *dz = fill(count, 8), *base = fill(h, 9);
    float *db = malloc((h + PP_COLSUM_X) * sizeof(float));
    memcpy(db, base, h * sizeof(float));
    for (int j = h; j < h + PP_COLSUM_X; j++)
        db[j] = -7.0f; /* past the end: must stay untouched */
    unsigned chunks = pp_colsum_chunks(n), grid = pp_colsum_blocks(h);
    float *partial = nans((size_t)PP_COLSUM_MAX_CHUNKS * h);
    unsigned char *visits = calloc(count, 1);
    ck_assert_uint_ge((size_t)grid * PP_COLSUM_X, (size_t)h);
    ck_assert_uint_le(chunks, PP_COLSUM_MAX_CHUNKS);
    for (unsigned c = 0; c < chunks; c++) {
        int r0, r1;
        pp_colsum_rows(n, c, &r0, &r1);
        for (unsigned blk = 0; blk < grid; blk++) {
            float part[PP_COLSUM_Y][PP_COLSUM_X + 1];
            for (int ty = 0; ty < PP_COLSUM_Y; ty++)
                for (int tx = 0; tx < PP_COLSUM_X; tx++) {
                    int j = (int)blk * PP_COLSUM_X + tx;
                    part[ty][tx] = j < h ? pp_colsum_partial(dz, r0, r1, h, j, ty) : 0;
                    for (int r = r0 + ty; j < h && r < r1; r += PP_COLSUM_Y)
                        visits[(size_t)r * h + j]++;
                }
            for (int tx = 0; tx < PP_COLSUM_X; tx++) {
                int j = (int)blk * PP_COLSUM_X + tx;
                if (j < h) /* the launcher passes db as out for one chunk */
                    pp_colsum_store(chunks == 1 ? db : partial, chunks, c, h, j,
                                    pp_colsum_block_sum((const float(*)[PP_COLSUM_X + 1])part, tx));
            }
        }
    }
    if (chunks > 1) { /* the second pass: a grid-stride loop over columns */
        unsigned char *cols = calloc((size_t)h, 1);
        EMULATE_GRID_STRIDE((size_t)h, cols, pp_colsum_chunks_at(i, partial, chunks, h, db));
        assert_once(cols, (size_t)h, "colsum chunks");
        free(cols);
    }
    assert_once(visits, count, "colsum");
    for (int j = 0; j < h; j++) {
        double ref = base[j];
        for (int r = 0; r < n; r++)
            ref += dz[(size_t)r * h + j];
        ck_assert_msg(fabs(db[j] - ref) <= 1e-5 * (1 + fabs(ref)) + 1e-6 * sqrt((double)n),
                      "column %d: %g vs %g", j, db[j], ref);
    }
    for (int j = h; j < h + PP_COLSUM_X; j++)
        ck_assert_float_eq(db[j], -7.0f);
    free(dz), free(base), free(db), free(visits), free(partial);
}
END_TEST

/* The two-pass MSE: grid-stride partial sums, a tree per block, then one
 * block over the partials — the loss within double rounding of the CPU's,
 * dy bitwise. */
static void tree_sum(double *part)
{
    for (int w = PP_MSE_THREADS / 2; w > 0; w /= 2)
        for (int t = 0; t < w; t++)
            part[t] += part[t + w];
}

START_TEST(mse_matches_cpu)
{
    int n = shapes[_i][0], h = shapes[_i][1];
    size_t count = (size_t)n * h;
    pr_bctx *c = cpu_open(n, h);
    float *y = fill(count, 10), *t = fill(count, 11), *dy = malloc(count * sizeof(float));
    float inv_n = 1.0f / 96;
    pr_mlp_kernels_cpu.mse(c, y, t, inv_n, dy, count, 1);
    double cpu_loss[2];
    pr_backend_cpu()->read_loss(c, cpu_loss, 2);

    unsigned nb = pp_mse_blocks(count);
    ck_assert_uint_le(nb, PP_MSE_MAX_BLOCKS);
    double *partial = malloc(PP_MSE_MAX_BLOCKS * sizeof(double));
    for (int q = 0; q < PP_MSE_MAX_BLOCKS; q++)
        partial[q] = NAN; /* scratch is never zeroed: every read partial must be written */
    float *gdy = nans(count);
    unsigned char *visits = calloc(count, 1);
    size_t stride = (size_t)nb * PP_MSE_THREADS;
    for (unsigned blk = 0; blk < nb; blk++) {
        double part[PP_MSE_THREADS];
        for (unsigned th = 0; th < PP_MSE_THREADS; th++) {
            double sq = 0;
            for (size_t i = (size_t)blk * PP_MSE_THREADS + th; i < count; i += stride) {
                visits[i]++;
                sq += pp_mse_at(i, y, t, inv_n, gdy);
            }
            part[th] = sq;
        }
        tree_sum(part);
        partial[blk] = part[0];
    }
    double part[PP_MSE_THREADS];
    for (unsigned th = 0; th < PP_MSE_THREADS; th++) {
        double s = 0;
        for (unsigned b = th; b < nb; b += PP_MSE_THREADS)
            s += partial[b];
        part[th] = s;
    }
    tree_sum(part);
    assert_once(visits, count, "mse");
    ck_assert_mem_eq(gdy, dy, count * sizeof(float));
    ck_assert_msg(fabs(part[0] - cpu_loss[1]) <= 1e-12 * cpu_loss[1] + 1e-300, "loss %.17g vs %.17g",
                  part[0], cpu_loss[1]);
    pr_backend_cpu()->close(c);
    free(y), free(t), free(dy), free(partial), free(gdy), free(visits);
}
END_TEST

/* The BF16 operand packing (pp_pack_src): a grid-stride loop over one
 * matrix's elements, each thread over the matrices; every element the GEMM
 * reads (rows x cols of each matrix, rows ld apart, matrices stride apart)
 * lands once, densely, and nothing between them is read. */
static const int pack_shapes[][5] = {/* rows, cols, ld, stride, count */
                                     {1, 1, 1, 1, 1},     {7, 33, 33, 231, 1}, {5, 16, 48, 5000, 12},
                                     {64, 64, 64, 4096, 3}, {3, 1, 9, 40, 4}};
enum { NPACK = sizeof pack_shapes / sizeof pack_shapes[0] };

START_TEST(pack_bf16_index)
{
    int rows = pack_shapes[_i][0], cols = pack_shapes[_i][1], ld = pack_shapes[_i][2];
    size_t stride = (size_t)pack_shapes[_i][3];
    int count = pack_shapes[_i][4];
    size_t span = (size_t)(count - 1) * stride + (size_t)(rows - 1) * ld + cols;
    size_t per = (size_t)rows * cols;
    unsigned char *read = calloc(span, 1), *visits = calloc(per, 1);
    size_t *from = malloc(per * count * sizeof(size_t));
    EMULATE_GRID_STRIDE(per, visits, {
        for (int b = 0; b < count; b++) {
            size_t o = pp_pack_src(i, (size_t)b, cols, ld, stride);
            ck_assert_uint_lt(o, span);
            read[o]++;
            from[(size_t)b * per + i] = o;
        }
    });
    assert_once(visits, per, "pack");
    for (int b = 0; b < count; b++)
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                size_t o = (size_t)b * stride + (size_t)r * ld + c;
                ck_assert_uint_eq(read[o], 1);
                ck_assert_uint_eq(from[(size_t)b * per + (size_t)r * cols + c], o);
                read[o] = 0;
            }
    for (size_t o = 0; o < span; o++) /* nothing outside the matrices */
        ck_assert_uint_eq(read[o], 0);
    free(read), free(visits), free(from);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("kernel_shapes");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, launch_shapes);
    tcase_add_loop_test(tc, make_batch_matches_cpu, 0, NSHAPES);
    tcase_add_loop_test(tc, bias_gelu_matches_cpu, 0, NSHAPES);
    tcase_add_loop_test(tc, gelu_backward_matches_cpu, 0, NSHAPES);
    tcase_add_loop_test(tc, sgd_matches_cpu, 0, NSHAPES);
    tcase_add_loop_test(tc, colsum_matches_cpu, 0, NCOLSUM);
    tcase_add_loop_test(tc, mse_matches_cpu, 0, NSHAPES);
    tcase_add_loop_test(tc, pack_bf16_index, 0, NPACK);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }
