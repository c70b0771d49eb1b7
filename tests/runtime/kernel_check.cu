/*
 * kernel_check.cu — the element-wise CUDA kernels of kernels/mlp_kernels.cu
 * (and, in gpt_kernel_check.cu, the transformer's kernels/gpt_kernels.cu
 * and the backend's gemm_batched, adamw and add) run on the GPU, every
 * branch of each at shapes that reach it, against references computed on
 * the host.  tests/runtime/test_kernel_shapes.c runs
 * the kernels' shared index helpers and per-element bodies on the CPU; this
 * runs the kernels themselves: their launch, grid-stride loops, shared
 * memory, synchronisation and branches (colsum's one chunk adding straight
 * into db, several chunks through the scratch and a second pass, the cap on
 * chunks; MSE in one block, several, and past the cap on blocks; GELU
 * backward with and without dx; SGD with and without a BF16 shadow; the data
 * generator with x, t or both).  Scratch buffers start as NaN, so a partial
 * sum that is read before it is written shows; every output buffer has a
 * guard past its end that must stay untouched.
 *
 *   kernel_check        prints each failure and "kernel_check: N checks on GPU, M failed";
 *                       exit 0, 1 on a failure, 77 when no GPU is usable
 *
 * Same arithmetic, same bits (the generator, the bias add, dy of the MSE,
 * the BF16 conversions); libm's tanhf and the GPU's may differ in the last
 * bits (GELU), the compiler may fuse SGD's multiply-add, and a reduction sums
 * in another order: those within a stated relative tolerance.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "backend.h"
#include "kernel_check.h"
#include "mlp_kernels.cuh"
#include "mlp_kernels.h"
#include "mlp_launch.h"

int checks, failures;
cudaStream_t stream;

void fail(const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL: %s: ", what);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    failures++;
}

void cuda_or_die(cudaError_t e, const char *call, const char *file, int line)
{
    if (e != cudaSuccess) {
        const char *base = strrchr(file, '/');
        printf("FAIL: %s:%d %s: %s: %s\n", base ? base + 1 : file, line, call, cudaGetErrorName(e),
               cudaGetErrorString(e));
        exit(1);
    }
}
float *host_random(size_t n, uint64_t stream_id)
{
    float *p = (float *)malloc((n ? n : 1) * sizeof(float));
    if (!p)
        exit(1);
    for (size_t i = 0; i < n; i++)
        p[i] = pp_uniform_pm1(99, stream_id, i);
    return p;
}

/* A device copy of host[0..n) followed by GUARD sentinels. */
float *device_copy(const float *host, size_t n)
{
    float *d = NULL;
    CK(cudaMalloc(&d, (n + GUARD) * sizeof(float)));
    if (host)
        CK(cudaMemcpy(d, host, n * sizeof(float), cudaMemcpyHostToDevice));
    float guard[GUARD];
    for (int i = 0; i < GUARD; i++)
        guard[i] = SENTINEL;
    CK(cudaMemcpy(d + n, guard, sizeof guard, cudaMemcpyHostToDevice));
    return d;
}

/* Reads back d[0..n) into a fresh host array and checks the guard. */
float *device_read(const float *d, size_t n, const char *what)
{
    CK(cudaStreamSynchronize(stream));
    float *h = (float *)malloc((n + GUARD) * sizeof(float));
    if (!h)
        exit(1);
    CK(cudaMemcpy(h, d, (n + GUARD) * sizeof(float), cudaMemcpyDeviceToHost));
    checks++;
    for (int i = 0; i < GUARD; i++)
        if (h[n + i] != SENTINEL) {
            fail(what, "wrote past its %zu elements (element %zu is %g)", n, n + i, h[n + i]);
            break;
        }
    return h;
}

/* got == want for every element: bitwise when rel and abs are 0, else
 * |got - want| <= rel |want| + abs. */
void compare(const char *what, const float *got, const float *want, size_t n, double rel,
                    double abs)
{
    checks++;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        bool bad = rel == 0 && abs == 0 ? memcmp(&got[i], &want[i], sizeof(float)) != 0
                                        : !(d <= rel * fabs((double)want[i]) + abs);
        if (bad) {
            fail(what, "element %zu of %zu: %.9g, want %.9g", i, n, got[i], want[i]);
            return;
        }
    }
}

/* Every byte of h[0..n) is still 0xff: a buffer the kernel was not given. */
void untouched(const char *what, const float *h, size_t n)
{
    checks++;
    const unsigned char *b = (const unsigned char *)h;
    for (size_t i = 0; i < n * sizeof(float); i++)
        if (b[i] != 0xff) {
            fail(what, "wrote into a buffer it was not given (byte %zu)", i);
            return;
        }
}

float bf16_round_host(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u)
        u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    else if (u & 0x007fffffu)
        u = (u | 0x00400000u) & 0xffff0000u; /* NaN stays NaN */
    else
        u &= 0xffff0000u;
    memcpy(&v, &u, sizeof v);
    return v;
}

float *bf16_read(const __nv_bfloat16 *d, size_t n)
{
    CK(cudaStreamSynchronize(stream));
    uint16_t *raw = (uint16_t *)malloc((n ? n : 1) * sizeof(uint16_t));
    float *h = (float *)malloc((n ? n : 1) * sizeof(float));
    if (!raw || !h)
        exit(1);
    CK(cudaMemcpy(raw, d, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)raw[i] << 16;
        memcpy(&h[i], &u, sizeof u);
    }
    free(raw);
    return h;
}

/* ---- the data generator and the step number in device memory ---- */

static void check_make_batch(int rows, int h, bool want_x, bool want_t)
{
    char what[96];
    snprintf(what, sizeof what, "make_batch %dx%d%s%s", rows, h, want_x ? " x" : "",
             want_t ? " t" : "");
    int row0 = 5, step = 7;
    size_t n = (size_t)rows * h;
    pr_backend_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.devices = 1;
    cfg.microbatches = 1;
    cfg.gemm_floats = (size_t)rows * h;
    cfg.max_cols = h;
    char err[200];
    pr_bctx *c = pr_backend_cpu()->open(0, &cfg, err, sizeof err);
    if (!c) {
        fail(what, "the CPU backend does not open: %s", err);
        return;
    }
    float *x = (float *)malloc(n * sizeof(float)), *t = (float *)malloc(n * sizeof(float));
    pr_backend_cpu()->set_step(c, step);
    pr_mlp_kernels_cpu.make_batch(c, 1234, row0, rows, h, x, t);
    pr_backend_cpu()->close(c);
    int *step_dev = NULL;
    CK(cudaMalloc(&step_dev, sizeof(int)));
    CK(pp_launch_set_int(step_dev, step, stream));
    float *dx = device_copy(NULL, n), *dt = device_copy(NULL, n);
    CK(cudaMemset(dx, 0xff, n * sizeof(float)));
    CK(cudaMemset(dt, 0xff, n * sizeof(float)));
    CK(pp_launch_make_batch(1234, step_dev, row0, rows, h, want_x ? dx : NULL, want_t ? dt : NULL,
                            stream));
    float *gx = device_read(dx, n, what), *gt = device_read(dt, n, what);
    if (want_x)
        compare(what, gx, x, n, 0, 0);
    else
        untouched(what, gx, n);
    if (want_t)
        compare(what, gt, t, n, 0, 0);
    else
        untouched(what, gt, n);
    free(x), free(t), free(gx), free(gt);
    CK(cudaFree(dx));
    CK(cudaFree(dt));
    CK(cudaFree(step_dev));
}

/* ---- bias + GELU forward, GELU backward ---- */

static void check_bias_gelu(int n, int h)
{
    char what[64];
    snprintf(what, sizeof what, "bias_gelu %dx%d", n, h);
    size_t count = (size_t)n * h;
    float *x = host_random(count, 1), *b = host_random(h, 2), *z = host_random(count, 3);
    float *y = (float *)malloc(count * sizeof(float));
    float *dx = device_copy(x, count), *db = device_copy(b, h), *dz = device_copy(z, count),
          *dy = device_copy(NULL, count);
    CK(pp_launch_bias_gelu(dx, db, dz, dy, n, h, stream));
    float *gz = device_read(dz, count, what), *gy = device_read(dy, count, what);
    for (size_t i = 0; i < count; i++)
        pp_bias_gelu_at(i, x, b, z, y, h);
    compare(what, gz, z, count, 0, 0);       /* z + b: the same addition */
    compare(what, gy, y, count, 1e-6, 1e-6); /* tanhf: the GPU's, not libm's */
    free(x), free(b), free(z), free(y), free(gz), free(gy);
    CK(cudaFree(dx)), CK(cudaFree(db)), CK(cudaFree(dz)), CK(cudaFree(dy));
}

static void check_gelu_backward(size_t count, bool with_dx)
{
    char what[64];
    snprintf(what, sizeof what, "gelu_backward %zu%s", count, with_dx ? " with dx" : "");
    float *dy = host_random(count, 4), *z = host_random(count, 5);
    float *dz = (float *)malloc(count * sizeof(float));
    float *d_dy = device_copy(dy, count), *d_z = device_copy(z, count),
          *d_dz = device_copy(NULL, count), *d_dx = device_copy(NULL, count);
    CK(cudaMemset(d_dx, 0xff, count * sizeof(float)));
    CK(pp_launch_gelu_backward(d_dy, d_z, d_dz, with_dx ? d_dx : NULL, count, stream));
    float *gdz = device_read(d_dz, count, what), *gdx = device_read(d_dx, count, what);
    for (size_t i = 0; i < count; i++)
        pp_gelu_backward_at(i, dy, z, dz, NULL);
    compare(what, gdz, dz, count, 1e-6, 1e-6);
    if (with_dx)
        compare(what, gdx, dy, count, 0, 0); /* dx = dy; the GEMM then adds dz W^T */
    else
        untouched(what, gdx, count);
    free(dy), free(z), free(dz), free(gdz), free(gdx);
    CK(cudaFree(d_dy)), CK(cudaFree(d_z)), CK(cudaFree(d_dz)), CK(cudaFree(d_dx));
}

/* ---- the bias gradient: one chunk, several, the cap ---- */

static void check_colsum(int n, int h)
{
    unsigned chunks = pp_colsum_chunks(n);
    char what[96];
    snprintf(what, sizeof what, "colsum %dx%d (%u chunk%s)", n, h, chunks, chunks > 1 ? "s" : "");
    size_t count = (size_t)n * h;
    float *dz = host_random(count, 6), *db = host_random(h, 7);
    float *d_dz = device_copy(dz, count), *d_db = device_copy(db, h);
    float *partial = device_copy(NULL, (size_t)PP_COLSUM_MAX_CHUNKS * h);
    CK(cudaMemset(partial, 0xff, (size_t)PP_COLSUM_MAX_CHUNKS * h * sizeof(float))); /* NaN */
    CK(pp_launch_colsum(d_dz, d_db, n, h, partial, stream));
    float *got = device_read(d_db, h, what);
    float *want = (float *)malloc(h * sizeof(float));
    for (int j = 0; j < h; j++) {
        double s = db[j]; /* db += the column sums: not overwritten */
        for (int r = 0; r < n; r++)
            s += dz[(size_t)r * h + j];
        want[j] = (float)s;
    }
    /* float sums of n terms of |x| < 1 in any order: within n * 2^-24 of the exact sum */
    checks++;
    for (int j = 0; j < h; j++)
        if (!(fabs((double)got[j] - (double)want[j]) <= 1e-7 * n + 1e-6)) {
            fail(what, "column %d: %.9g, want %.9g", j, got[j], want[j]);
            break;
        }
    free(dz), free(db), free(got), free(want);
    CK(cudaFree(d_dz)), CK(cudaFree(d_db)), CK(cudaFree(partial));
}

/* ---- MSE: one block, several, the cap ---- */

static void check_mse(size_t count)
{
    unsigned nb = pp_mse_blocks(count);
    char what[96];
    snprintf(what, sizeof what, "mse %zu (%u block%s)", count, nb, nb > 1 ? "s" : "");
    float *y = host_random(count, 8), *t = host_random(count, 9);
    float inv_n = 1.0f / 96, *dy = (float *)malloc(count * sizeof(float));
    float *d_y = device_copy(y, count), *d_t = device_copy(t, count), *d_dy = device_copy(NULL, count);
    double *partial = NULL, *loss = NULL;
    CK(cudaMalloc(&partial, PP_MSE_MAX_BLOCKS * sizeof(double)));
    CK(cudaMemset(partial, 0xff, PP_MSE_MAX_BLOCKS * sizeof(double))); /* NaN */
    CK(cudaMalloc(&loss, sizeof(double)));
    CK(cudaMemset(loss, 0xff, sizeof(double)));
    CK(pp_launch_mse(d_y, d_t, inv_n, d_dy, count, partial, loss, stream));
    float *gdy = device_read(d_dy, count, what);
    double got;
    CK(cudaMemcpy(&got, loss, sizeof got, cudaMemcpyDeviceToHost));
    double want = 0;
    for (size_t i = 0; i < count; i++)
        want += pp_mse_at(i, y, t, inv_n, dy);
    compare(what, gdy, dy, count, 0, 0);
    checks++;
    if (!(fabs(got - want) <= 1e-12 * want))
        fail(what, "loss %.17g, want %.17g", got, want);
    free(y), free(t), free(dy), free(gdy);
    CK(cudaFree(d_y)), CK(cudaFree(d_t)), CK(cudaFree(d_dy)), CK(cudaFree(partial)),
        CK(cudaFree(loss));
}

/* ---- SGD with and without the BF16 shadow; the BF16 conversion ---- */

static void check_sgd(size_t count, bool with_shadow)
{
    char what[64];
    snprintf(what, sizeof what, "sgd %zu%s", count, with_shadow ? " with bf16 shadow" : "");
    float *p = host_random(count, 10), *g = host_random(count, 11);
    float *d_p = device_copy(p, count), *d_g = device_copy(g, count);
    __nv_bfloat16 *shadow = NULL;
    CK(cudaMalloc(&shadow, (count ? count : 1) * sizeof(__nv_bfloat16)));
    CK(pp_launch_sgd(d_p, d_g, 0.01f, count, with_shadow ? shadow : NULL, stream));
    float *gp = device_read(d_p, count, what), *gg = device_read(d_g, count, what);
    float *want = (float *)malloc(count * sizeof(float)), *zero = (float *)calloc(count, sizeof(float));
    for (size_t i = 0; i < count; i++)
        want[i] = pp_sgd(p[i], g[i], 0.01f);
    /* p - lr g, perhaps fused into one rounding: an ulp of p's and of lr g's */
    compare(what, gp, want, count, 1.2e-7, 2e-9);
    compare(what, gg, zero, count, 0, 0); /* the gradient is cleared */
    if (with_shadow) {
        float *gs = bf16_read(shadow, count);
        for (size_t i = 0; i < count; i++)
            want[i] = bf16_round_host(gp[i]); /* of the GPU's p: its own rounding aside */
        compare(what, gs, want, count, 0, 0);
        free(gs);
    }
    free(p), free(g), free(gp), free(gg), free(want), free(zero);
    CK(cudaFree(d_p)), CK(cudaFree(d_g)), CK(cudaFree(shadow));
}

static void check_to_bf16(size_t count)
{
    char what[64];
    snprintf(what, sizeof what, "to_bf16 %zu", count);
    float *src = host_random(count, 12);
    /* ties to even, both ways, and values that round up into the next binade */
    const uint32_t edge[] = {0x3f808000u, 0x3f818000u, 0xbf808000u, 0x3f7fffffu, 0x7f7fffffu};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0] && i < count; i++)
        memcpy(&src[i], &edge[i], sizeof(float));
    float *d_src = device_copy(src, count);
    __nv_bfloat16 *dst = NULL;
    CK(cudaMalloc(&dst, (count ? count : 1) * sizeof(__nv_bfloat16)));
    CK(pp_launch_to_bf16(d_src, dst, count, stream));
    float *got = bf16_read(dst, count), *want = (float *)malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++)
        want[i] = bf16_round_host(src[i]);
    compare(what, got, want, count, 0, 0);
    free(src), free(got), free(want);
    CK(cudaFree(d_src)), CK(cudaFree(dst));
}

int main(void)
{
    int ngpu = 0;
    cudaError_t e = cudaGetDeviceCount(&ngpu);
    if (e != cudaSuccess || ngpu == 0) {
        printf("kernel_check: no GPU usable (%s)\n", e != cudaSuccess ? cudaGetErrorString(e)
                                                                     : "none visible");
        return 77;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    CK(cudaSetDevice(0));
    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

    check_make_batch(1, 1, true, true);
    check_make_batch(33, 1000, true, true);
    check_make_batch(64, 128, true, false); /* x only (stage 0 of a run) */
    check_make_batch(64, 128, false, true); /* t only (the last stage) */
    check_bias_gelu(1, 1);
    check_bias_gelu(7, 33);
    check_bias_gelu(257, 96);
    check_gelu_backward(1, true);
    check_gelu_backward(1000 * 33, false); /* the first layer: no dx */
    check_gelu_backward(1000 * 33, true);
    /* one chunk (gridDim.y == 1: straight into db), up to the chunk's rows, then
     * several (the scratch and a second pass), a short last chunk, the cap */
    const int colsum[][2] = {{1, 1},    {7, 33},  {PP_COLSUM_CHUNK_ROWS, 64},
                             {PP_COLSUM_CHUNK_ROWS + 1, 96},   {4096, 40}, {513, 3},
                             {PP_COLSUM_CHUNK_ROWS * PP_COLSUM_MAX_CHUNKS * 2 + 7, 65},
                             {33, 1000}};
    for (size_t i = 0; i < sizeof colsum / sizeof colsum[0]; i++)
        check_colsum(colsum[i][0], colsum[i][1]);
    /* one block, the last count of one block, two, and past the cap (grid stride) */
    const size_t per_block = (size_t)PP_MSE_THREADS * PP_MSE_PER_THREAD;
    const size_t mse[] = {1, 100, per_block, per_block + 1, per_block * PP_MSE_MAX_BLOCKS * 3 + 5};
    for (size_t i = 0; i < sizeof mse / sizeof mse[0]; i++)
        check_mse(mse[i]);
    check_sgd(1, false);
    check_sgd(64 * 64 + 3, false); /* biases */
    check_sgd(64 * 64 + 3, true);  /* a weight matrix under bf16 */
    check_to_bf16(5);
    check_to_bf16(1000 * 33);
    /* more elements than the grid's block cap covers in one pass: the stride loop */
    check_to_bf16((size_t)PP_MAX_BLOCKS * PP_THREADS + 1000);
    CK(cudaGetLastError());
    gpt_kernel_checks();
    CK(cudaGetLastError());
    printf("kernel_check: %d checks on %s, %d failed\n", checks, prop.name, failures);
    return failures ? 1 : 0;
}
