/*
 * cuda_count_shim.c — a test harness, preloaded (LD_PRELOAD) into pprun by
 * test_cuda_startup.sh: cudaGetDeviceCount returns the CUDA error code in
 * $PPRUN_SHIM_CUDA_ERROR (35 insufficient driver, 100 no device, ...;
 * default 0, success) and reports $PPRUN_SHIM_CUDA_COUNT devices (default
 * 0), so pprun's handling of each start-up answer is tested on a machine
 * with or without a GPU.  cudaError_t is an int enum.
 */
#include <stdlib.h>

int cudaGetDeviceCount(int *count);

int cudaGetDeviceCount(int *count)
{
    const char *e = getenv("PPRUN_SHIM_CUDA_ERROR"), *n = getenv("PPRUN_SHIM_CUDA_COUNT");
    *count = n ? atoi(n) : 0;
    return e ? atoi(e) : 0;
}
