/*
 * cuda_ctx.cuh — the CUDA backend's per-device context, shared by
 * backend_cuda.cu and transport_cuda.cu (private to the CUDA build), and the
 * checking macros that turn a failed CUDA / cuBLAS / NCCL call into
 * "[device 2] runtime/backend_cuda.cu:123 cublasSgemm failed (...) during B3.5".
 */
#ifndef PP_CUDA_CTX_CUH
#define PP_CUDA_CTX_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "backend.h"

/* A range of weights (backend.h, weights) and, under BF16, its shadow. */
typedef struct pp_weight_range {
    float *p;
    size_t count;
    __nv_bfloat16 *shadow;
} pp_weight_range;

typedef struct cuda_ctx {
    pr_bctx base;
    int gpu, precision, slots;
    size_t gemm_floats; /* bf_a, bf_b */
    int max_cols;       /* colsum_partial */
    cudaStream_t stream;
    cublasHandle_t blas;
    void *workspace;
    int *step_dev;         /* the step the models' kernels read (base.step) */
    double *loss_dev;      /* [slots] */
    double *loss_host;     /* [slots], pinned */
    double *mse_partial;   /* [PP_MSE_MAX_BLOCKS]: the multi-block MSE's scratch */
    float *colsum_partial; /* [PP_COLSUM_MAX_CHUNKS * max_cols]: colsum's */
    __nv_bfloat16 *bf_a, *bf_b; /* [gemm_floats] each: BF16 copies of GEMM operands */
    pp_weight_range *ranges;
    int nranges;
    cudaEvent_t ev_fork, ev_join;
    cudaGraph_t graph;     /* device 0 of a captured run */
    cudaGraphExec_t exec;
    /* Set by a transport that must hear of a capture starting (local). */
    void (*on_capture)(void *arg);
    void *capture_arg;
} cuda_ctx;

/* Makes this host thread's current GPU c->gpu (cached per thread). */
bool pp_cuda_enter(cuda_ctx *c);

/* Each returns true on success; on failure records the first error in c. */
bool pp_cuda_check(cuda_ctx *c, cudaError_t e, const char *call, const char *file, int line);
bool pp_cublas_check(cuda_ctx *c, cublasStatus_t s, const char *call, const char *file, int line);

#define CU(c, call) pp_cuda_check((c), (call), #call, __FILE__, __LINE__)
#define CUBLAS(c, call) pp_cublas_check((c), (call), #call, __FILE__, __LINE__)

/* "cublasSgemm" from "cublasSgemm(c->blas, ...)"; "runtime/x.cu" from "../runtime/x.cu". */
void pp_call_where(char *buf, size_t size, const char *call, const char *file, int line);

#endif
