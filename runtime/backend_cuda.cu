/*
 * backend_cuda.cu — the CUDA backend: cuBLAS GEMMs, single and strided
 * batched (FP32, TF32, or BF16 operands with FP32 accumulation and FP32
 * master weights), column sums, SGD, AdamW, add and BF16 shadows (kernels
 * of kernels/mlp_kernels.cu), all enqueued
 * on the device's own stream; the models' element-wise kernels enqueue on
 * it too (layer.h).  Nothing waits for the GPU except download,
 * read_loss and sync, which the replay calls at the plan's flush.  A step
 * can be captured as one CUDA graph (capture_begin/end) and relaunched.
 *
 * A row-major [rows, cols] buffer is column-major [cols, rows] to cuBLAS,
 * so C = op(A) op(B) (row-major) is C^T = op(B)^T op(A)^T (column-major).
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
    for (int i = 0; i < c->nranges; i++)
        cudaFree(c->ranges[i].shadow);
    free(c->ranges);
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
    c->slots = cfg->microbatches > 0 ? cfg->microbatches : 1;
    c->gemm_floats = cfg->gemm_floats > 0 ? cfg->gemm_floats : 1;
    c->max_cols = cfg->max_cols > 0 ? cfg->max_cols : 1;
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
                               (size_t)PP_COLSUM_MAX_CHUNKS * (size_t)c->max_cols * sizeof(float))) &&
              CU(c, cudaEventCreateWithFlags(&c->ev_fork, cudaEventDisableTiming)) &&
              CU(c, cudaEventCreateWithFlags(&c->ev_join, cudaEventDisableTiming));
    if (ok && c->precision == PR_BF16)
        ok = CU(c, cudaMalloc(&c->bf_a, c->gemm_floats * sizeof(__nv_bfloat16))) &&
             CU(c, cudaMalloc(&c->bf_b, c->gemm_floats * sizeof(__nv_bfloat16)));
    if (!ok) {
        snprintf(err, errlen, "%s", c->base.err);
        cuda_close(&c->base);
        return NULL;
    }
    c->base.step = c->step_dev;
    c->base.loss = c->loss_dev;
    c->base.slots = c->slots;
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

/* The weight range p lies in, or NULL. */
static pp_weight_range *range_of(const cuda_ctx *c, const float *p)
{
    for (int i = 0; i < c->nranges; i++)
        if (p >= c->ranges[i].p && p < c->ranges[i].p + c->ranges[i].count)
            return &c->ranges[i];
    return NULL;
}

/* Under BF16: the shadow of the weights at p, or NULL (not weights). */
static __nv_bfloat16 *shadow_of(const cuda_ctx *c, const float *p)
{
    pp_weight_range *r = c->precision == PR_BF16 ? range_of(c, p) : NULL;
    return r ? r->shadow + (p - r->p) : NULL;
}

static void cuda_weights(pr_bctx *cb, float *p, size_t count)
{
    ENTER(cb);
    void *grown = realloc(c->ranges, (size_t)(c->nranges + 1) * sizeof *c->ranges);
    if (!grown) {
        pr_bctx_fail(cb, "cuda weights:", "out of host memory");
        return;
    }
    c->ranges = (pp_weight_range *)grown;
    pp_weight_range *r = &c->ranges[c->nranges];
    r->p = p;
    r->count = count;
    r->shadow = NULL;
    if (c->precision == PR_BF16 &&
        !CU(c, cudaMalloc(&r->shadow, (count ? count : 1) * sizeof(__nv_bfloat16))))
        return;
    c->nranges++;
}

static void cuda_release(pr_bctx *cb, float *p)
{
    cuda_ctx *c = (cuda_ctx *)cb;
    current_gpu = -1;
    if (cudaSetDevice(c->gpu) == cudaSuccess)
        cudaFree(p); /* teardown: a failure here has nothing left to stop */
}

/* Under BF16: the shadow of [dst, dst + count) = BF16(dst), after dst was
 * written, when it holds weights. */
static void refresh_shadow(pr_bctx *cb, float *dst, size_t count)
{
    ENQUEUE(cb);
    __nv_bfloat16 *sh = shadow_of(c, dst);
    if (sh)
        CU(c, pp_launch_to_bf16(dst, sh, count, c->stream));
}

static void cuda_upload(pr_bctx *cb, float *dst, const float *src, size_t count)
{
    {
        ENQUEUE(cb);
        /* pageable source: the copy has read it when the call returns */
        CU(c, cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyHostToDevice, c->stream));
    }
    refresh_shadow(cb, dst, count);
}

static void cuda_copy(pr_bctx *cb, float *dst, const float *src, size_t count)
{
    {
        ENQUEUE(cb);
        CU(c, cudaMemcpyAsync(dst, src, count * sizeof(float), cudaMemcpyDeviceToDevice, c->stream));
    }
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

/* A GEMM operand in BF16: where it is, its row stride and matrix stride. */
typedef struct bf16_op {
    const __nv_bfloat16 *p;
    int ld;
    long long stride;
} bf16_op;

/* The shadow of weights (their own strides), else the count matrices
 * [rows, cols] at src (rows ld apart, matrices stride apart) packed into
 * scratch (pp_launch_pack_bf16: only what the GEMM reads).  False, the
 * context failed, when they do not fit the scratch (the model's scratch,
 * pr_backend_cfg.gemm_floats, must count every operand of a GEMM that is
 * not weights: rows * cols * count). */
static bool bf16_operand(cuda_ctx *c, const float *src, int rows, int cols, int ld, size_t stride,
                         int count, __nv_bfloat16 *scratch, const char *where, bf16_op *out)
{
    const __nv_bfloat16 *sh = shadow_of(c, src);
    if (sh) {
        *out = bf16_op{sh, ld, (long long)stride};
        return true;
    }
    size_t need = (size_t)(rows > 0 ? rows : 0) * (size_t)(cols > 0 ? cols : 0) *
                  (size_t)(count > 0 ? count : 0);
    if (need > c->gemm_floats) {
        char msg[192];
        snprintf(msg, sizeof msg,
                 "an operand of %zu floats is larger than the BF16 scratch (%zu floats: the "
                 "model's gemm_floats)",
                 need, c->gemm_floats);
        pr_bctx_fail(&c->base, where, msg);
        return false;
    }
    if (!CU(c, pp_launch_pack_bf16(src, scratch, rows, cols, ld, stride, count, c->stream)))
        return false;
    *out = bf16_op{scratch, cols > 0 ? cols : 1, (long long)rows * (long long)cols};
    return true;
}

/* Both BF16 operands of count GEMMs (the i-th at A + i sa, B + i sb). */
static bool bf16_operands(cuda_ctx *c, int ta, int tb, int m, int n, int k, const float *A, int lda,
                          size_t sa, const float *B, int ldb, size_t sb, int count,
                          const char *where, bf16_op *a, bf16_op *b)
{
    /* stored: A [ta ? k : m, ta ? m : k], B [tb ? n : k, tb ? k : n] */
    return bf16_operand(c, A, ta == PR_T ? k : m, ta == PR_T ? m : k, lda, sa, count, c->bf_a, where,
                        a) &&
           bf16_operand(c, B, tb == PR_T ? n : k, tb == PR_T ? k : n, ldb, sb, count, c->bf_b, where,
                        b);
}

static void cuda_gemm(pr_bctx *cb, int ta, int tb, int m, int n, int k, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc)
{
    ENQUEUE(cb);
    const float one = 1.0f;
    cublasOperation_t opa = ta == PR_T ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = tb == PR_T ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (c->precision != PR_BF16) {
        CUBLAS(c, cublasSgemm(c->blas, opb, opa, n, m, k, &one, B, ldb, A, lda, &beta, C, ldc));
        return;
    }
    bf16_op a, b;
    if (bf16_operands(c, ta, tb, m, n, k, A, lda, 0, B, ldb, 0, 1, "cuda gemm:", &a, &b))
        CUBLAS(c, cublasGemmEx(c->blas, opb, opa, n, m, k, &one, b.p, CUDA_R_16BF, b.ld, a.p,
                               CUDA_R_16BF, a.ld, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT));
}

/* gemm's conventions, count times; under BF16 each operand that is not
 * weights is packed, every matrix of the batch, into its scratch. */
static void cuda_gemm_batched(pr_bctx *cb, int ta, int tb, int m, int n, int k, const float *A,
                              int lda, size_t sa, const float *B, int ldb, size_t sb, float beta,
                              float *C, int ldc, size_t sc, int count)
{
    ENQUEUE(cb);
    if (count <= 0)
        return;
    const float one = 1.0f;
    cublasOperation_t opa = ta == PR_T ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = tb == PR_T ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (c->precision != PR_BF16) {
        CUBLAS(c, cublasSgemmStridedBatched(c->blas, opb, opa, n, m, k, &one, B, ldb,
                                            (long long)sb, A, lda, (long long)sa, &beta, C, ldc,
                                            (long long)sc, count));
        return;
    }
    bf16_op a, b;
    if (bf16_operands(c, ta, tb, m, n, k, A, lda, sa, B, ldb, sb, count, "cuda gemm_batched:", &a,
                      &b))
        CUBLAS(c, cublasGemmStridedBatchedEx(c->blas, opb, opa, n, m, k, &one, b.p, CUDA_R_16BF,
                                             b.ld, b.stride, a.p, CUDA_R_16BF, a.ld, a.stride,
                                             &beta, C, CUDA_R_32F, ldc, (long long)sc, count,
                                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

static void cuda_colsum(pr_bctx *cb, const float *A, int rows, int cols, float *out)
{
    ENQUEUE(cb);
    if (cols > c->max_cols) {
        pr_bctx_fail(cb, "cuda colsum:", "wider than the context's scratch");
        return;
    }
    CU(c, pp_launch_colsum(A, out, rows, cols, c->colsum_partial, c->stream));
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
    CU(c, pp_launch_sgd(p, g, lr, count, shadow_of(c, p), c->stream));
}

static void cuda_adamw(pr_bctx *cb, float *p, float *g, float *m, float *v, size_t count,
                       const pr_adamw *a)
{
    ENQUEUE(cb);
    CU(c, pp_launch_adamw(p, g, m, v, count, a, c->step_dev, shadow_of(c, p), c->stream));
}

static void cuda_add(pr_bctx *cb, float *dst, const float *src, size_t count)
{
    {
        ENQUEUE(cb);
        CU(c, pp_launch_add(dst, src, count, c->stream));
    }
    refresh_shadow(cb, dst, count);
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
    .device = PR_DEVICE_CUDA,
    .open = cuda_open,
    .close = cuda_close,
    .alloc = cuda_alloc,
    .release = cuda_release,
    .weights = cuda_weights,
    .upload = cuda_upload,
    .download = cuda_download,
    .copy = cuda_copy,
    .zero = cuda_zero,
    .set_step = cuda_set_step,
    .gemm = cuda_gemm,
    .gemm_batched = cuda_gemm_batched,
    .colsum = cuda_colsum,
    .sgd = cuda_sgd,
    .adamw = cuda_adamw,
    .add = cuda_add,
    .read_loss = cuda_read_loss,
    .sync = cuda_sync,
    .capture_begin = cuda_capture_begin,
    .capture_end = cuda_capture_end,
    .graph_step = cuda_graph_step,
};

extern "C" const pr_backend *pr_backend_cuda(void) { return &cuda_backend; }
