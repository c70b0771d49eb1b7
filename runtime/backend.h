/*
 * backend.h — where compute runs: primitives over "device" float buffers
 * (memory, GEMM, column sums, the optimizer step, loss slots), each called
 * with the per-device context the backend opened for that device (the
 * CPU's holds loss slots; the CUDA backend's a stream, a cuBLAS handle and
 * scratch).  What a model computes with them is the model's (layer.h).  Calls may be asynchronous: only
 * download, read_loss and sync wait for the device.  A backend that fails
 * records the first error in its context (ctx->failed, ctx->err); the
 * replay checks after every op and ends the run with that message.
 *
 * C and CUDA both include this header: keep it plain C.
 */
#ifndef PPRUN_BACKEND_H
#define PPRUN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum pr_precision { PR_FP32 = 0, PR_TF32 = 1, PR_BF16 = 2 };

/* Which kernels a backend runs: a model offers its element-wise kernels
 * per device (layer.h). */
enum pr_device { PR_DEVICE_NONE = 0, PR_DEVICE_HOST = 1, PR_DEVICE_CUDA = 2 };

typedef struct pr_backend_cfg {
    int devices;      /* pipeline devices in this process */
    int microbatches; /* loss slots per device */
    /* The largest activation operand of a GEMM (floats) and the widest
     * column sum: the backend's scratch (BF16 copies, partial sums). */
    size_t gemm_floats;
    int max_cols;
    int precision; /* enum pr_precision */
    int gpu;       /* CUDA: GPU this device runs on */
} pr_backend_cfg;

/* The part of every backend's per-device context the replay and the
 * models' kernels read and write.  A backend's own context begins with
 * this struct. */
typedef struct pr_bctx {
    int rank;
    const void *op; /* the op being replayed (a pp_op), for error messages */
    /* Asynchronous backends: the op whose work was last enqueued on the
     * device's stream, named by an error found later (a kernel fault
     * surfaces at the next synchronisation, e.g. the flush). */
    const void *last_op;
    const char *(*format_op)(const void *op, char *buf, size_t size);
    int failed;
    int capturing; /* set by capture_begin: nothing may wait for the device */
    /* In the backend's memory: the step the next ops belong to (set_step;
     * a captured step replays with a new one) and the loss slots [slots]
     * a model's loss kernel sums into (read_loss reads them). */
    const int *step;
    double *loss;
    int slots;
    char err[512];
    /* Whom the errors name ("rank 5 (device 2, replica 1)"); empty: "device RANK". */
    char name[48];
} pr_bctx;

enum pr_trans { PR_N = 0, PR_T = 1 };

/* One AdamW update's settings (backend adamw). */
typedef struct pr_adamw {
    float lr, beta1, beta2, eps, decay; /* decay 0: no weight decay on this range */
    int per_step, index;                /* the updates of a step, and which one this is */
} pr_adamw;

typedef struct pr_backend {
    const char *name;
    int device; /* enum pr_device */
    /* NULL and a message in err (errlen bytes) on failure. */
    pr_bctx *(*open)(int rank, const pr_backend_cfg *cfg, char *err, size_t errlen);
    void (*close)(pr_bctx *c);
    float *(*alloc)(pr_bctx *c, size_t count);
    void (*release)(pr_bctx *c, float *p);
    /* [p, p + count) holds weights that GEMMs read: under --precision bf16
     * the CUDA backend keeps a BF16 shadow of it, refreshed by every
     * upload, copy and sgd into it (others ignore this). */
    void (*weights)(pr_bctx *c, float *p, size_t count);
    void (*upload)(pr_bctx *c, float *dst, const float *src, size_t count);   /* host -> device */
    void (*download)(pr_bctx *c, float *dst, const float *src, size_t count); /* device -> host, waits */
    void (*copy)(pr_bctx *c, float *dst, const float *src, size_t count);     /* on the device, no wait */
    void (*zero)(pr_bctx *c, float *p, size_t count);
    /* The step the next ops belong to (c->step). */
    void (*set_step)(pr_bctx *c, int step);
    /* Row-major C = op(A) op(B) + beta C; op(A) [m, k], op(B) [k, n];
     * lda, ldb, ldc: the row strides of A, B, C as stored.  FP32 operands
     * rounded as the precision says, FP32 accumulation. */
    void (*gemm)(pr_bctx *c, int ta, int tb, int m, int n, int k, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);
    /* count GEMMs as gemm's, the i-th on A + i sa, B + i sb, C + i sc. */
    void (*gemm_batched)(pr_bctx *c, int ta, int tb, int m, int n, int k, const float *A, int lda,
                         size_t sa, const float *B, int ldb, size_t sb, float beta, float *C,
                         int ldc, size_t sc, int count);
    /* out[j] += sum over the rows of A[r][j]; A [rows, cols] row-major. */
    void (*colsum)(pr_bctx *c, const float *A, int rows, int cols, float *out);
    /* p -= lr * g; g = 0. */
    void (*sgd)(pr_bctx *c, float *p, float *g, float lr, size_t count);
    /* AdamW (optim_math.h pp_adamw) on p with moments m, v; g = 0.  The
     * update's count t = *step * per_step + index + 1 is taken from the
     * device's step, so that a captured step replays right. */
    void (*adamw)(pr_bctx *c, float *p, float *g, float *m, float *v, size_t count,
                  const struct pr_adamw *a);
    /* dst += src. */
    void (*add)(pr_bctx *c, float *dst, const float *src, size_t count);
    /* Waits for the device, copies loss slots [0, n). */
    void (*read_loss)(pr_bctx *c, double *out, int n);
    void (*sync)(pr_bctx *c); /* waits for everything issued */
    /* Optional (NULL = no graphs): capture one step as issued on the n
     * contexts (all on one GPU), then replay it.  capture_begin is called
     * before the step's ops are issued, capture_end after; graph_step sets
     * the step number, launches the graph and waits.  Nonzero = failed,
     * reason in cs[0]->err. */
    int (*capture_begin)(pr_bctx **cs, int n);
    int (*capture_end)(pr_bctx **cs, int n);
    int (*graph_step)(pr_bctx **cs, int n, int step);
} pr_backend;

const pr_backend *pr_backend_cpu(void);
/* NULL when this binary was built without CUDA. */
const pr_backend *pr_backend_cuda(void);
/* GPUs visible.  0 when CUDA reports no device, or when CUDA cannot start
 * at all (no driver, too old a driver, ...): then err holds the CUDA
 * error's name and description, else it is left alone. */
int pr_cuda_device_count(char *err, size_t errlen);

/* Address space OpenBLAS maps for every thread that calls it (its GEMM
 * buffer: BUFFER_SIZE of Debian's build, 32 << 22 bytes, measured with
 * strace), which pprun's memory check counts per CPU device: OpenBLAS
 * retries a map that fails forever, so a run must not start without it. */
#define PR_CPU_BLAS_BUFFER_BYTES ((double)(32u << 22))

/* The CPU backend's GEMM (OpenBLAS, on the calling thread), for the
 * benchmark and the tests: C (+)= A B, row-major, A [m, k], B [k, n]. */
void pr_cpu_sgemm(int m, int n, int k, const float *A, const float *B, float *C, int accumulate);

/* Records the first failure of a context: "[device R] WHERE MSG during OP"
 * (its name instead of "device R" when it has one),
 * and "(last work enqueued: OP2)" when another op's work was last
 * enqueued on the device's stream. */
void pr_bctx_fail(pr_bctx *c, const char *where, const char *msg);

#ifdef __cplusplus
}
#endif

#endif
