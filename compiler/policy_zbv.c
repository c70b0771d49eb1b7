/*
 * policy_zbv.c — ZB-V (Qi et al., "Zero Bubble Pipeline Parallelism",
 * ICLR 2024): the zero-bubble schedule for two chunks per device on the
 * V-shape placement (policy_vshape.c: chunk 0 of device d is stage d,
 * chunk 1 is stage 2D-1-d), which puts the first forward and the last
 * backward of the model on device 0, so the pipeline has no ramp at
 * either end.
 *
 * With unit costs and micro-batch 0 leading, device d's phases are:
 *
 *   2(D-d)-1 x F0             chunk-0 forwards until micro-batch 0, gone
 *                             down the V and back up to chunk 1, is ready
 *   d x F1 F0                 until its gradient, from the top of the V
 *                             (device 0), reaches chunk 1
 *   D-d x F1 B1 W1            chunk 1 runs whole: the gradient goes on down
 *                             the V before chunk 0 sees it
 *   N-2D+d+1 x F0 B0 W0 F1 B1 W1   the steady state, both chunks busy
 *   D-d-1 x B0 W0 F1 B1 W1    the forwards of chunk 0 done
 *   d x B0 B1                 the drain: input gradients first, so the
 *   D-d x B0 W0               devices above are not kept waiting; the Ws
 *   d x W1, then d x W0       kept back fill the tail
 *
 * N = max(2D-1, M): the phases need 2D-1 micro-batches in flight, so for
 * fewer the order is built for 2D-1 and the missing micro-batches dropped.
 * With F = B = W the idle time is D-1 per device and the peak 2D chunk
 * activations on every device (D stages' worth, 1F1B's memory).  The order
 * matches PyTorch's ScheduleZBVZeroBubble, checked against the goldens
 * (tests/golden/orders_zb/zbv.txt).
 */
#include <string.h>

#include "pp.h"

static int zbv_check(const pp_spec *s, pp_diag *d)
{
    return pp_policy_need_vshape(s, "zbv", d) + pp_policy_no_group(s, "zbv", d);
}

static int zbv_phases(int D, int d, int N, pp_vphase *out)
{
    const pp_vphase phases[] = {
        {2 * (D - d) - 1, "F0"},
        {d, "F1 F0"},
        {D - d, "F1 B1 W1"},
        {N - 2 * D + d + 1, "F0 B0 W0 F1 B1 W1"},
        {D - d - 1, "B0 W0 F1 B1 W1"},
        {d, "B0 B1"},
        {D - d, "B0 W0"},
        {d, "W1"},
        {d, "W0"},
    };
    _Static_assert(sizeof phases / sizeof phases[0] <= PP_VPHASES_MAX, "room for the phases");
    memcpy(out, phases, sizeof phases);
    return (int)(sizeof phases / sizeof phases[0]);
}

static int zbv_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    p->split_backward = true;
    int D = s->devices, M = s->microbatches;
    if (pp_policy_vshape_order(p, 2 * D - 1 > M ? 2 * D - 1 : M, zbv_phases)) {
        pp_error(d, "zbv: out of memory");
        return 1;
    }
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_zbv = {
    .name = "zbv",
    .summary = "zero bubble V: two stages per device on a V, B/W split (Qi et al. 2024, PyTorch ScheduleZBVZeroBubble)",
    .check = zbv_check,
    .generate = zbv_generate,
    .split_backward = true,
};
