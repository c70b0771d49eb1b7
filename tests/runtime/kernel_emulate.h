/*
 * kernel_emulate.h — what the CPU tests of the CUDA kernels' index
 * arithmetic share (test_kernel_shapes.c: the MLP's kernels,
 * test_gpt_kernel_shapes.c: the transformer's): inputs, NaN-filled
 * outputs, a grid-stride loop walked block by block and thread by thread,
 * and the check that it visited every element once.
 */
#ifndef PP_KERNEL_EMULATE_H
#define PP_KERNEL_EMULATE_H

#include <math.h>
#include <stdlib.h>

#include "mlp_launch.h"
#include "test_util.h"

static inline float *fill(size_t count, uint64_t stream)
{
    float *p = malloc((count ? count : 1) * sizeof(float));
    for (size_t i = 0; i < count; i++)
        p[i] = pp_uniform_pm1(42, stream, i);
    return p;
}

static inline float *nans(size_t count)
{
    float *p = malloc((count ? count : 1) * sizeof(float));
    for (size_t i = 0; i < count; i++)
        p[i] = NAN;
    return p;
}

/* Runs body(i) for every i a grid-stride kernel of pp_blocks_for(count)
 * blocks of PP_THREADS visits, in launch order; counts visits per element. */
#define EMULATE_GRID_STRIDE(count, visits, body)                                           \
    do {                                                                                   \
        unsigned grid_ = pp_blocks_for(count);                                             \
        size_t stride_ = (size_t)grid_ * PP_THREADS;                                       \
        for (unsigned blk_ = 0; blk_ < grid_; blk_++)                                      \
            for (unsigned th_ = 0; th_ < PP_THREADS; th_++)                                \
                for (size_t i = (size_t)blk_ * PP_THREADS + th_; i < (count); i += stride_) { \
                    (visits)[i]++;                                                         \
                    body;                                                                  \
                }                                                                          \
    } while (0)

static inline void assert_once(const unsigned char *visits, size_t count, const char *what)
{
    for (size_t i = 0; i < count; i++)
        ck_assert_msg(visits[i] == 1, "%s: element %zu visited %d times", what, i, visits[i]);
}

#endif
