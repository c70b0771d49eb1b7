/*
 * policy_naive.c — naive model parallelism, the picture tutorials start
 * from: the layers split over the devices, one batch at a time, so one
 * device works while the others wait.  Each micro-batch runs its whole
 * forward down the devices and its whole backward back up before the next
 * one starts (device d's order: F(m) B(m) for m = 0..M-1), so with
 * M = 1 it is the textbook's figure and with M > 1 gradient accumulation
 * over M micro-batches with no overlap: makespan M D (F + B), bubble
 * 1 - 1/D, one activation set per device (docs/schedules.md).
 */
#include "pp.h"

static int naive_check(const pp_spec *s, pp_diag *d)
{
    return pp_policy_need_one_stage(s, "naive", "", d);
}

static int naive_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    (void)d;
    for (int dev = 0; dev < s->devices; dev++)
        for (int m = 0; m < s->microbatches; m++) {
            pp_policy_emit(p, dev, PP_OP_F, dev, m);
            pp_policy_emit(p, dev, PP_OP_B, dev, m);
        }
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_naive = {
    .name = "naive",
    .summary = "naive model parallelism: one micro-batch at a time, one device busy at a time",
    .check = naive_check,
    .generate = naive_generate,
    .split_backward = false,
};
