/*
 * backend_cuda.cu — the CUDA backend: cuBLAS GEMMs (FP32, TF32, or BF16
 * operands with FP32 accumulation and FP32 master weights) and the
 * element-wise kernels of kernels/mlp_kernels.cu, all enqueued on the
 * device's own stream.  Nothing waits for the GPU except download,
 * read_loss and sync, which the replay calls at the plan's flush.  A step
 * can be captured as one CUDA graph (capture_begin/end) and relaunched.
 *
 * Row-major [rows, hidden] buffers are column-major [hidden, rows] to
 * cuBLAS, so C = A B (row-major) is gemm(B, A) (column-major).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_ctx.cuh"
#include "mlp_kernels.cuh"
#include "mlp_launch.h"

enum { WORKSPACE_BYTES = 32 << 20 }; /* cuBLAS workspace: graphs need one set up front */

void pp_call_where(char *buf, size_t size, const char *call, const char *file, int line)
{
    while (strncmp(file, "../", 3) == 0)
        file += 3;
    size_t n = strcspn(call, "( ");
    snprintf(buf, size, "%s:%d %.*s", file, line, (int)n, call);
}

bool pp_cuda_check(cuda_ctx *c, cudaError_t e, const char *call, const char *file, int line)
{
    if (e == cudaSuccess)
        return true;
    char where[200], msg[200];
    pp_call_where(where, sizeof where, call, file, line);
    snprintf(msg, sizeof msg, "failed (%s: %s)", cudaGetErrorName(e), cudaGetErrorString(e));
    pr_bctx_fail(&c->base, where, msg);
    return false;
}

bool pp_cublas_check(cuda_ctx *c, cublasStatus_t s, const char *call, const char *file, int line)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return true;
    char where[200], msg[200];
    pp_call_where(where, sizeof where, call, file, line);
    snprintf(msg, sizeof msg, "failed (%s)", cublasGetStatusName(s));
    pr_bctx_fail(&c->base, where, msg);
    return false;
}

static __thread int current_gpu = -1;

bool pp_cuda_enter(cuda_ctx *c)
{
    c->bf_a_of = NULL;
    if (c->base.failed)
        return false;
    if (current_gpu == c->gpu)
        return true;
    if (!CU(c, cudaSetDevice(c->gpu)))
        return false;
    current_gpu = c->gpu;
    return true;
}

#define ENTER(cb)                                                                          \
    cuda_ctx *c = (cuda_ctx *)(cb);                                                        \
    if (!pp_cuda_enter(c))                                                                 \
        return

/* ENTER for a call that enqueues work: the op it belongs to is the one a
 * later synchronisation error names (pr_bctx.last_op). */
#define ENQUEUE(cb)                                                                        \
    ENTER(cb);                                                                             \
    c->base.last_op = c->base.op

extern "C" int pr_cuda_device_count(char *err, size_t errlen)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess)
        return n;
    (void)cudaGetLastError();
    /* No device is "none"; anything else (no or too old a driver, a broken
     * installation) is said, not read as "no GPU". */
    if (e != cudaErrorNoDevice)
        snprintf(err, errlen, "%s: %s", cudaGetErrorName(e), cudaGetErrorString(e));
    return 0;
}

static void cuda_close(pr_bctx *cb)
{
    cuda_ctx *c = (cuda_ctx *)cb;
    if (!c)
        return;
    current_gpu = -1; /* the device may have been lost; set it again */
    cudaSetDevice(c->gpu);
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    if (c->exec)
        cudaGraphExecDestroy(c->exec);
    if (c->graph)
        cudaGraphDestroy(c->graph);
    if (c->blas)
        cublasDestroy(c->blas);
    cudaFree(c->workspace);
    cudaFree(c->step_dev);
    cudaFree(c->loss_dev);
    cudaFree(c->mse_partial);
    cudaFree(c->colsum_partial);
    cudaFreeHost(c->loss_host);
    cudaFree(c->bf_a);
    cudaFree(c->bf_b);
    if (c->ev_fork)
        cudaEventDestroy(c->ev_fork);
    if (c->ev_join)
        cudaEventDestroy(c->ev_join);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    free(c);
}

static pr_bctx *cuda_open(int rank, const pr_backend_cfg *cfg, char *err, size_t errlen)
{
    cuda_ctx *c = (cuda_ctx *)calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->base.rank = rank;
    c->gpu = cfg->gpu;
    c->precision = cfg->precision;
    c->rows = cfg->rows;
    c->hidden = cfg->hidden;
    c->slots = cfg->microbatches > 0 ? cfg->microbatches : 1;
    c->seed = cfg->seed;
    size_t slot = (size_t)cfg->rows * cfg->hidden;
    current_gpu = -1;
    bool ok = pp_cuda_enter(c) &&
              CU(c, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) &&
              CUBLAS(c, cublasCreate(&c->blas)) && CUBLAS(c, cublasSetStream(c->blas, c->stream)) &&
              CU(c, cudaMalloc(&c->workspace, WORKSPACE_BYTES)) &&
              CUBLAS(c, cublasSetWorkspace(c->blas, c->workspace, WORKSPACE_BYTES)) &&
              CUBLAS(c, cublasSetMathMode(c->blas, c->precision == PR_TF32
                                                       ? CUBLAS_TF32_TENSOR_OP_MATH
                                                       : CUBLAS_DEFAULT_MATH)) &&
              CU(c, cudaMalloc(&c->step_dev, sizeof(int))) &&
              CU(c, cudaMemsetAsync(c->step_dev, 0, sizeof(int), c->stream)) &&
              CU(c, cudaMalloc(&c->loss_dev, (size_t)c->slots * sizeof(double))) &&
              CU(c, cudaMemsetAsync(c->loss_dev, 0, (size_t)c->slots * sizeof(double), c->stream)) &&
              CU(c, cudaMallocHost(&c->loss_host, (size_t)c->slots * sizeof(double))) &&
              CU(c, cudaMalloc(&c->mse_partial, PP_MSE_MAX_BLOCKS * sizeof(double))) &&
              CU(c, cudaMalloc(&c->colsum_partial,
                               (size_t)PP_COLSUM_MAX_CHUNKS * (size_t)c->hidden * sizeof(float))) &&
              CU(c, cudaEventCreateWithFlags(&c->ev_fork, cudaEventDisableTiming)) &&
              CU(c, cudaEventCreateWithFlags(&c->ev_join, cudaEventDisableTiming));
    if (ok && c->precision == PR_BF16)
        ok = CU(c, cudaMalloc(&c->bf_a, slot * sizeof(__nv_bfloat16))) &&
             CU(c, cudaMalloc(&c->bf_b, slot * sizeof(__nv_bfloat16)));
    if (!ok) {
        snprintf(err, errlen, "%s", c->base.err);
        cuda_close(&c->base);
        return NULL;
    }
    return &c->base;
}

static float *cuda_alloc(pr_bctx *cb, size_t count)
{
    cuda_ctx *c = (cuda_ctx *)cb;
    void *p = NULL;
    if (!pp_cuda_enter(c) || !CU(c, cudaMalloc(&p, (count ? count : 1) * sizeof(float))))
        return NULL;
    return (float *)p;
}

/* Under BF16 a weight matrix carries its BF16 shadow after it, at the next
 * 256-byte boundary (cuBLAS wants aligned operands; h * h * 4 bytes is not
 * a multiple of 256 for every h). */
static size_t shadow_offset(size_t count) { return (count + 63) & ~(size_t)63; }

static __nv_bfloat16 *shadow_of(const cuda_ctx *c, const float *W, size_t count)
{
    return c->precision == PR_BF16 ? (__nv_bfloat16 *)(W + shadow_offset(count)) : NULL;
}

static float *cuda_alloc_weight(pr_bctx *cb, size_t count)
{
    cuda_ctx *c = (cuda_ctx *)cb;
    size_t bytes = count * sizeof(float);
    if (c->precision == PR_BF16)
        bytes = shadow_offset(count) * sizeof(float) + count * sizeof(__nv_bfloat16);
    void *p = NULL;
    if (!pp_cuda_enter(c) || !CU(c, cudaMalloc(&p, bytes ? bytes : 4)))
        return NULL;
    return (float *)p;
}

static void cuda_release(pr_bctx *cb, float *p)
{
    cuda_ctx *c = (cuda_ctx *)cb;
    current_gpu = -1;
    if (cudaSetDevice(c->gpu) == cudaSuccess)
        cudaFree(p); /* teardown: a failure here has nothing left to stop */
}

static void cuda_upload(pr_bctx *cb, float *dst, const float *src, size_t count)
{
    ENQUEUE(cb);
    /* pageable source: the copy has read it when the call returns */
    CU(c, cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyHostToDevice, c->stream));
}

/* Under BF16: dst's shadow = BF16(dst), after dst was written. */
static void refresh_shadow(pr_bctx *cb, float *dst, size_t count)
{
    ENQUEUE(cb);
    if (c->precision == PR_BF16)
        CU(c, pp_launch_to_bf16(dst, shadow_of(c, dst, count), count, c->stream));
}

static void cuda_upload_weight(pr_bctx *cb, float *dst, const float *src, size_t count)
{
    cuda_upload(cb, dst, src, count);
    refresh_shadow(cb, dst, count);
}

static void cuda_copy(pr_bctx *cb, float *dst, const float *src, size_t count)
{
    ENQUEUE(cb);
    CU(c, cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyDeviceToDevice, c->stream));
}

static void cuda_copy_weight(pr_bctx *cb, float *dst, const float *src, size_t count)
{
    cuda_copy(cb, dst, src, count);
    refresh_shadow(cb, dst, count);
}

static void cuda_download(pr_bctx *cb, float *dst, const float *src, size_t count)
{
    ENTER(cb);
    if (CU(c, cudaStreamSynchronize(c->stream)))
        CU(c, cudaMemcpy(dst, src, count * sizeof(float), cudaMemcpyDeviceToHost));
}

static void cuda_set_step(pr_bctx *cb, int step)
{
    ENQUEUE(cb);
    CU(c, pp_launch_set_int(c->step_dev, step, c->stream));
}

static void cuda_make_batch(pr_bctx *cb, int row0, int rows, float *x, float *t)
{
    ENQUEUE(cb);
    CU(c, pp_launch_make_batch(c->seed, c->step_dev, row0, rows, c->hidden, x, t, c->stream));
}

/* Column-major C = op(A) op(B), FP32 operands (FP32 or TF32 math). */
static bool sgemm(cuda_ctx *c, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                  const float *A, const float *B, float beta, float *C)
{
    const float one = 1.0f;
    int h = c->hidden;
    return CUBLAS(c, cublasSgemm(c->blas, ta, tb, m, n, k, &one, A, ta == CUBLAS_OP_N ? m : k, B,
                                 tb == CUBLAS_OP_N ? k : n, &beta, C, h));
}

/* The same with BF16 operands, FP32 accumulation and output. */
static bool bgemm(cuda_ctx *c, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                  const __nv_bfloat16 *A, const __nv_bfloat16 *B, float beta, float *C)
{
    const float one = 1.0f;
    int h = c->hidden;
    return CUBLAS(c, cublasGemmEx(c->blas, ta, tb, m, n, k, &one, A, CUDA_R_16BF,
                                  ta == CUBLAS_OP_N ? m : k, B, CUDA_R_16BF,
                                  tb == CUBLAS_OP_N ? k : n, &beta, C, CUDA_R_32F, h,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

static void cuda_layer_forward(pr_bctx *cb, const float *x, const float *W, const float *b,
                               float *z, float *y, int n, int h)
{
    ENQUEUE(cb);
    bool ok;
    if (c->precision == PR_BF16)
        ok = CU(c, pp_launch_to_bf16(x, c->bf_a, (size_t)n * h, c->stream)) &&
             bgemm(c, CUBLAS_OP_N, CUBLAS_OP_N, h, n, h, shadow_of(c, W, (size_t)h * h), c->bf_a,
                   0.0f, z);
    else
        ok = sgemm(c, CUBLAS_OP_N, CUBLAS_OP_N, h, n, h, W, x, 0.0f, z);
    if (ok)
        CU(c, pp_launch_bias_gelu(x, b, z, y, n, h, c->stream));
}

static void cuda_layer_backward_input(pr_bctx *cb, const float *dy, const float *z, const float *W,
                                      float *dz, float *dx, int n, int h)
{
    ENQUEUE(cb);
    if (!CU(c, pp_launch_gelu_backward(dy, z, dz, dx, (size_t)n * h, c->stream)) || !dx)
        return;
    /* dx (= dy) += dz W^T */
    if (c->precision == PR_BF16) {
        if (CU(c, pp_launch_to_bf16(dz, c->bf_a, (size_t)n * h, c->stream)) &&
            bgemm(c, CUBLAS_OP_T, CUBLAS_OP_N, h, n, h, shadow_of(c, W, (size_t)h * h), c->bf_a,
                  1.0f, dx))
            c->bf_a_of = dz;
    } else {
        sgemm(c, CUBLAS_OP_T, CUBLAS_OP_N, h, n, h, W, dz, 1.0f, dx);
    }
}

static void cuda_layer_backward_weight(pr_bctx *cb, const float *x, const float *dz, float *dW,
                                       float *db, int n, int h)
{
    /* B then W of one layer (an unsplit backward): B left BF16(dz) in bf_a */
    bool have_dz = ((cuda_ctx *)cb)->bf_a_of == dz;
    ENQUEUE(cb);
    bool ok;
    /* dW += x^T dz */
    if (c->precision == PR_BF16)
        ok = (have_dz || CU(c, pp_launch_to_bf16(dz, c->bf_a, (size_t)n * h, c->stream))) &&
             CU(c, pp_launch_to_bf16(x, c->bf_b, (size_t)n * h, c->stream)) &&
             bgemm(c, CUBLAS_OP_N, CUBLAS_OP_T, h, h, n, c->bf_a, c->bf_b, 1.0f, dW);
    else
        ok = sgemm(c, CUBLAS_OP_N, CUBLAS_OP_T, h, h, n, dz, x, 1.0f, dW);
    if (ok)
        CU(c, pp_launch_colsum(dz, db, n, h, c->colsum_partial, c->stream));
}

static void cuda_mse(pr_bctx *cb, const float *y, const float *t, float inv_n, float *dy, int n,
                     int h, int slot)
{
    ENQUEUE(cb);
    if (slot < 0 || slot >= c->slots) {
        pr_bctx_fail(cb, "cuda mse:", "loss slot out of range");
        return;
    }
    CU(c, pp_launch_mse(y, t, inv_n, dy, (size_t)n * h, c->mse_partial, c->loss_dev + slot,
                        c->stream));
}

static void cuda_read_loss(pr_bctx *cb, double *out, int n)
{
    ENTER(cb);
    int k = n < c->slots ? n : c->slots;
    if (CU(c, cudaMemcpyAsync(c->loss_host, c->loss_dev, (size_t)k * sizeof(double),
                              cudaMemcpyDeviceToHost, c->stream)) &&
        CU(c, cudaStreamSynchronize(c->stream)))
        for (int i = 0; i < n; i++)
            out[i] = i < k ? c->loss_host[i] : 0;
}

static void cuda_sgd(pr_bctx *cb, float *p, float *g, float lr, size_t count)
{
    ENQUEUE(cb);
    CU(c, pp_launch_sgd(p, g, lr, count, NULL, c->stream));
}

static void cuda_sgd_weight(pr_bctx *cb, float *p, float *g, float lr, size_t count)
{
    ENQUEUE(cb);
    CU(c, pp_launch_sgd(p, g, lr, count, shadow_of(c, p, count), c->stream));
}

static void cuda_zero(pr_bctx *cb, float *p, size_t count)
{
    ENQUEUE(cb);
    CU(c, cudaMemsetAsync(p, 0, count * sizeof(float), c->stream));
}

static void cuda_sync(pr_bctx *cb)
{
    ENTER(cb);
    CU(c, cudaStreamSynchronize(c->stream));
}

/* Device 0's stream is the origin of the capture; every other device's
 * stream joins it through an event, issues its part of the step from its
 * own thread (relaxed mode), and is joined back at the end. */
static int cuda_capture_begin(pr_bctx **cs, int n)
{
    cuda_ctx *c0 = (cuda_ctx *)cs[0];
    for (int i = 0; i < n; i++) {
        cuda_ctx *c = (cuda_ctx *)cs[i];
        if (c->gpu != c0->gpu) {
            pr_bctx_fail(cs[0], "capture:", "a graph needs every device on one GPU");
            return 1;
        }
        /* nothing recorded before the capture may be waited on inside it */
        if (!pp_cuda_enter(c) || !CU(c, cudaStreamSynchronize(c->stream))) {
            if (c != c0)
                pr_bctx_fail(cs[0], "capture:", c->base.err);
            return 1;
        }
        if (c->on_capture)
            c->on_capture(c->capture_arg);
    }
    if (!pp_cuda_enter(c0) ||
        !CU(c0, cudaStreamBeginCapture(c0->stream, cudaStreamCaptureModeRelaxed)))
        return 1;
    bool ok = CU(c0, cudaEventRecord(c0->ev_fork, c0->stream));
    for (int i = 1; i < n && ok; i++)
        ok = CU(c0, cudaStreamWaitEvent(((cuda_ctx *)cs[i])->stream, c0->ev_fork, 0));
    if (!ok) { /* end the capture, or the streams stay capturing (and unusable) */
        cudaGraph_t g = NULL;
        if (cudaStreamEndCapture(c0->stream, &g) == cudaSuccess && g)
            cudaGraphDestroy(g);
        (void)cudaGetLastError();
        return 1;
    }
    for (int i = 0; i < n; i++)
        cs[i]->capturing = 1;
    return 0;
}

static int cuda_capture_end(pr_bctx **cs, int n)
{
    cuda_ctx *c0 = (cuda_ctx *)cs[0];
    for (int i = 0; i < n; i++)
        cs[i]->capturing = 0;
    current_gpu = -1;
    bool ok = CU(c0, cudaSetDevice(c0->gpu));
    for (int i = 1; i < n && ok; i++) {
        cuda_ctx *c = (cuda_ctx *)cs[i];
        ok = CU(c0, cudaEventRecord(c->ev_join, c->stream)) &&
             CU(c0, cudaStreamWaitEvent(c0->stream, c->ev_join, 0));
    }
    cudaGraph_t g = NULL;
    /* end the capture even after a failure, or the stream stays unusable */
    cudaError_t e = cudaStreamEndCapture(c0->stream, &g);
    if (ok)
        ok = CU(c0, e);
    if (ok) {
        c0->graph = g;
        ok = CU(c0, cudaGraphInstantiate(&c0->exec, g, 0)) && CU(c0, cudaGraphUpload(c0->exec, c0->stream));
    } else if (g) {
        cudaGraphDestroy(g);
    }
    for (int i = 1; i < n; i++)
        if (cs[i]->failed && !c0->base.failed)
            pr_bctx_fail(cs[0], "capture:", cs[i]->err);
    return ok && !c0->base.failed ? 0 : 1;
}

static int cuda_graph_step(pr_bctx **cs, int n, int step)
{
    cuda_ctx *c0 = (cuda_ctx *)cs[0];
    if (!pp_cuda_enter(c0))
        return 1;
    c0->base.op = c0->base.last_op = NULL; /* the whole step is one launch */
    for (int i = 0; i < n; i++)
        if (!CU(c0, pp_launch_set_int(((cuda_ctx *)cs[i])->step_dev, step, c0->stream)))
            return 1;
    return CU(c0, cudaGraphLaunch(c0->exec, c0->stream)) &&
                   CU(c0, cudaStreamSynchronize(c0->stream))
               ? 0
               : 1;
}

static const pr_backend cuda_backend = {
    .name = "cuda",
    .open = cuda_open,
    .close = cuda_close,
    .alloc = cuda_alloc,
    .release = cuda_release,
    .alloc_weight = cuda_alloc_weight,
    .upload = cuda_upload,
    .upload_weight = cuda_upload_weight,
    .download = cuda_download,
    .copy = cuda_copy,
    .copy_weight = cuda_copy_weight,
    .set_step = cuda_set_step,
    .make_batch = cuda_make_batch,
    .layer_forward = cuda_layer_forward,
    .layer_backward_input = cuda_layer_backward_input,
    .layer_backward_weight = cuda_layer_backward_weight,
    .mse = cuda_mse,
    .read_loss = cuda_read_loss,
    .sgd = cuda_sgd,
    .sgd_weight = cuda_sgd_weight,
    .zero = cuda_zero,
    .sync = cuda_sync,
    .capture_begin = cuda_capture_begin,
    .capture_end = cuda_capture_end,
    .graph_step = cuda_graph_step,
};

extern "C" const pr_backend *pr_backend_cuda(void) { return &cuda_backend; }
