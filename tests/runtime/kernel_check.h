/*
 * kernel_check.h — what the GPU kernel checks share (kernel_check.cu: the
 * MLP's kernels and main; gpt_kernel_check.cu: the transformer's kernels
 * and the backend's gemm_batched, adamw and add): counters, device buffers
 * with a guard past their end, comparisons.
 */
#ifndef PP_KERNEL_CHECK_H
#define PP_KERNEL_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

extern int checks, failures;
extern cudaStream_t stream; /* the MLP checks' stream (device_read waits for it) */

#define GUARD 64 /* floats past the end of every device output, set to a sentinel */
static const float SENTINEL = -12345.0f;

void fail(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cuda_or_die(cudaError_t e, const char *call, const char *file, int line);
#define CK(call) cuda_or_die((call), #call, __FILE__, __LINE__)

/* n values uniform in (-1, 1), of stream stream_id. */
float *host_random(size_t n, uint64_t stream_id);
/* A device copy of host[0..n) (host NULL: uninitialised) followed by GUARD sentinels. */
float *device_copy(const float *host, size_t n);
/* Reads back d[0..n) into a fresh host array and checks the guard. */
float *device_read(const float *d, size_t n, const char *what);
/* got == want for every element: bitwise when rel and abs are 0, else
 * |got - want| <= rel |want| + abs. */
void compare(const char *what, const float *got, const float *want, size_t n, double rel,
             double abs);
/* Every byte of h[0..n) is still 0xff: a buffer the kernel was not given. */
void untouched(const char *what, const float *h, size_t n);
float bf16_round_host(float v);
float *bf16_read(const __nv_bfloat16 *d, size_t n);

/* gpt_kernel_check.cu */
void gpt_kernel_checks(void);

#endif
