/*
 * backend.h — where compute runs.  A table of functions over "device"
 * float buffers; the CPU backend's are host memory.  The CUDA backend will
 * fill the same table with cuBLAS and the kernels/ .cu files.
 */
#ifndef PPRUN_BACKEND_H
#define PPRUN_BACKEND_H

#include <stddef.h>

typedef struct pr_backend {
    const char *name;
    float *(*alloc)(size_t count);
    void (*release)(float *p);
    void (*upload)(float *dst, const float *src, size_t count);   /* host -> device */
    void (*download)(float *dst, const float *src, size_t count); /* device -> host */
    /* z = x W + b; y = x + gelu(z).  x, z, y: [n, h]; W: [h, h] [in, out]. */
    void (*layer_forward)(const float *x, const float *W, const float *b, float *z, float *y,
                          int n, int h);
    /* dz = dy * gelu'(z); dx = dy + dz W^T (skipped when dx is NULL). */
    void (*layer_backward_input)(const float *dy, const float *z, const float *W, float *dz,
                                 float *dx, int n, int h);
    /* dW += x^T dz; db += column sums of dz. */
    void (*layer_backward_weight)(const float *x, const float *dz, float *dW, float *db, int n,
                                  int h);
    /* dy = (y - t) * inv_n; returns sum (y - t)^2. */
    double (*mse)(const float *y, const float *t, float inv_n, float *dy, int n, int h);
    /* p -= lr * g; g = 0. */
    void (*sgd)(float *p, float *g, float lr, size_t count);
    void (*zero)(float *p, size_t count);
} pr_backend;

const pr_backend *pr_backend_cpu(void);

/* The CPU backend's GEMM, exposed for the benchmark: C (+)= A B, row-major,
 * A [m, k], B [k, n]; fixed summation order (k ascending) per element. */
void pr_cpu_sgemm(int m, int n, int k, const float *A, const float *B, float *C, int accumulate);

#endif
