/*
 * policy_gpipe.c — GPipe (Huang et al. 2019): every device first does the
 * forwards of all micro-batches, then their backwards, in micro-batch
 * order 0..M-1 both times.  Simplest schedule, largest memory: all M
 * activations are alive at the turn.  The order matches PyTorch's
 * ScheduleGPipe, checked against the goldens (tests/golden/orders/gpipe.txt).
 */
#include "pp.h"

static int gpipe_check(const pp_spec *s, pp_diag *d)
{
    return pp_policy_need_one_stage(s, "gpipe", "", d);
}

static int gpipe_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    (void)d;
    int M = s->microbatches;
    for (int dev = 0; dev < s->devices; dev++) {
        for (int m = 0; m < M; m++)
            pp_policy_emit(p, dev, PP_OP_F, dev, m);
        for (int m = 0; m < M; m++)
            pp_policy_emit(p, dev, PP_OP_B, dev, m);
    }
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_gpipe = {
    .name = "gpipe",
    .summary = "all forwards, then all backwards (PyTorch ScheduleGPipe)",
    .check = gpipe_check,
    .generate = gpipe_generate,
    .split_backward = false,
};
