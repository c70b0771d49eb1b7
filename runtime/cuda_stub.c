/*
 * cuda_stub.c — what a build without CUDA (meson -Dcuda=disabled, or no
 * nvcc) links instead of backend_cuda.cu and transport_cuda.cu: no GPU
 * backend, and transports that say they are not built.
 */
#include <stdio.h>

#include "backend.h"
#include "transport.h"

const pr_backend *pr_backend_cuda(void) { return NULL; }

int pr_cuda_device_count(char *err, size_t errlen) { return 0; }

pr_transport *pr_transport_local_create(int devices, char *err, size_t errlen)
{
    snprintf(err, errlen, "the local GPU transport is not built in this binary");
    return NULL;
}

pr_transport *pr_transport_nccl_create(int rank, int world, int replicas, int gpu, const void *nccl_id,
                                       double timeout, char *err, size_t errlen)
{
    snprintf(err, errlen, "the nccl transport is not built in this binary");
    return NULL;
}

int pr_nccl_unique_id(void *id, char *err, size_t errlen)
{
    snprintf(err, errlen, "the nccl transport is not built in this binary");
    return 1;
}
