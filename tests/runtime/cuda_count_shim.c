/*
 * cuda_count_shim.c — a test harness, preloaded (LD_PRELOAD) into pprun by
 * test_cuda_startup.sh: cudaGetDeviceCount reports no device and returns
 * the CUDA error code in $PPRUN_SHIM_CUDA_ERROR (35 insufficient driver,
 * 100 no device, ...), so pprun's handling of each start-up error is
 * tested on a machine with or without a GPU.  cudaError_t is an int enum.
 */
#include <stdlib.h>

int cudaGetDeviceCount(int *count);

int cudaGetDeviceCount(int *count)
{
    const char *e = getenv("PPRUN_SHIM_CUDA_ERROR");
    *count = 0;
    return e ? atoi(e) : 100;
}
