/*
 * backend.h — where compute runs.  A table of functions over "device"
 * float buffers, each called with the per-device context the backend
 * opened for that device (the CPU's holds loss slots; the CUDA backend's a
 * stream, a cuBLAS handle and scratch).  Calls may be asynchronous: only
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

typedef struct pr_backend_cfg {
    int devices;      /* pipeline devices in this process */
    int microbatches; /* loss slots per device */
    int rows, hidden; /* every activation buffer is [rows, hidden] */
    uint64_t seed;
    int precision; /* enum pr_precision */
    int gpu;       /* CUDA: GPU this device runs on */
} pr_backend_cfg;

/* The part of every backend's per-device context the replay reads and
 * writes.  A backend's own context begins with this struct. */
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
    char err[512];
} pr_bctx;

typedef struct pr_backend {
    const char *name;
    /* NULL and a message in err (errlen bytes) on failure. */
    pr_bctx *(*open)(int rank, const pr_backend_cfg *cfg, char *err, size_t errlen);
    void (*close)(pr_bctx *c);
    float *(*alloc)(pr_bctx *c, size_t count);
    void (*release)(pr_bctx *c, float *p);
    /* A weight matrix: the CUDA backend keeps a BF16 shadow next to it
     * under --precision bf16, refreshed by upload_weight and sgd_weight. */
    float *(*alloc_weight)(pr_bctx *c, size_t count);
    void (*upload)(pr_bctx *c, float *dst, const float *src, size_t count);        /* host -> device */
    void (*upload_weight)(pr_bctx *c, float *dst, const float *src, size_t count);
    void (*download)(pr_bctx *c, float *dst, const float *src, size_t count);      /* device -> host, waits */
    /* dst = src, both on the device, without waiting (weight versions;
     * copy_weight also refreshes dst's BF16 shadow, as upload_weight does). */
    void (*copy)(pr_bctx *c, float *dst, const float *src, size_t count);
    void (*copy_weight)(pr_bctx *c, float *dst, const float *src, size_t count);
    /* The step the next ops belong to (the CUDA backend keeps it in device
     * memory so that a captured step replays with a new step number). */
    void (*set_step)(pr_bctx *c, int step);
    /* Rows [row0, row0+rows) of the current step's x and t (either NULL). */
    void (*make_batch)(pr_bctx *c, int row0, int rows, float *x, float *t);
    /* z = x W + b; y = x + gelu(z).  x, z, y: [n, h]; W: [h, h] [in, out]. */
    void (*layer_forward)(pr_bctx *c, const float *x, const float *W, const float *b, float *z,
                          float *y, int n, int h);
    /* dz = dy * gelu'(z); dx = dy + dz W^T (skipped when dx is NULL). */
    void (*layer_backward_input)(pr_bctx *c, const float *dy, const float *z, const float *W,
                                 float *dz, float *dx, int n, int h);
    /* dW += x^T dz; db += column sums of dz. */
    void (*layer_backward_weight)(pr_bctx *c, const float *x, const float *dz, float *dW,
                                  float *db, int n, int h);
    /* dy = (y - t) * inv_n; loss slot `slot` = sum (y - t)^2. */
    void (*mse)(pr_bctx *c, const float *y, const float *t, float inv_n, float *dy, int n, int h,
                int slot);
    /* Waits for the device, copies loss slots [0, n). */
    void (*read_loss)(pr_bctx *c, double *out, int n);
    /* p -= lr * g; g = 0. */
    void (*sgd)(pr_bctx *c, float *p, float *g, float lr, size_t count);
    void (*sgd_weight)(pr_bctx *c, float *p, float *g, float lr, size_t count);
    void (*zero)(pr_bctx *c, float *p, size_t count);
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

/* The CPU backend's GEMM, exposed for the benchmark: C (+)= A B, row-major,
 * A [m, k], B [k, n]; fixed summation order (k ascending) per element. */
void pr_cpu_sgemm(int m, int n, int k, const float *A, const float *B, float *C, int accumulate);

/* Records the first failure of a context: "[device R] WHERE MSG during OP",
 * and "(last work enqueued: OP2)" when another op's work was last
 * enqueued on the device's stream. */
void pr_bctx_fail(pr_bctx *c, const char *where, const char *msg);

#ifdef __cplusplus
}
#endif

#endif
