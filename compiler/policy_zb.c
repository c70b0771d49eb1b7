/*
 * policy_zb.c — zero-bubble ZB-H1 (Qi et al., "Zero Bubble Pipeline
 * Parallelism", ICLR 2024), the first of its handcrafted schedules.
 *
 * Splitting the backward into B (the input gradient, which the device
 * before waits for) and W (the weight gradient, which only the optimizer
 * needs) lets a device send its gradient upstream one W earlier and do the
 * W later, in a slot where it would otherwise wait.  ZB-H1 keeps 1F1B's
 * warm-up and its memory bound and moves Ws into the tail: device d runs
 * 1F1B (a lead of D-1-d forwards, then a forward and a backward in turn)
 * with each W trailing its B by d backwards, so its first d Bs go without
 * their W and the d Ws left close the list, where 1F1B would wait for the
 * last gradients to come back.  That is the v = 1 case of interleaved 1F1B
 * with a split backward (pp_policy_interleave, policy_interleaved.c).
 *
 * Unit costs: idle (D-1)(F+B-W) per device against 1F1B's (D-1)(F+B+W), at
 * D activations on every device (the paper's p M_B, 1F1B's busiest
 * device).  The order matches PyTorch's ScheduleInterleavedZeroBubble with
 * one stage per rank, checked against the goldens
 * (tests/golden/orders_zb/zb-h1.txt).
 */
#include "pp.h"

static int zb_h1_check(const pp_spec *s, pp_diag *d)
{
    return pp_policy_need_one_stage(s, "zb-h1", "; use interleaved-zb or zbv", d);
}

static int zb_h1_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    (void)d;
    p->split_backward = true;
    int D = s->devices, M = s->microbatches;
    for (int dev = 0; dev < D; dev++) {
        pp_interleaving o = {.devices = D, .chunks = 1, .microbatches = M, .group = M,
                             .lead = D - 1 - dev, .w_lag = dev};
        pp_policy_interleave(p, dev, &o);
    }
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_zb_h1 = {
    .name = "zb-h1",
    .summary = "zero bubble H1: 1F1B with B/W split, W deferred into the bubbles (Qi et al. 2024, PyTorch ZB1P)",
    .check = zb_h1_check,
    .generate = zb_h1_generate,
    .split_backward = true,
};
