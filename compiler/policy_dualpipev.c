/*
 * policy_dualpipev.c — DualPipeV, the V-shape form of DeepSeek's DualPipe
 * (DeepSeek-V3 technical report, arXiv 2412.19437, section 3.2.1).
 *
 * DualPipe feeds micro-batches into the pipeline from both ends; folded
 * onto the V-shape placement (policy_vshape.c: chunk 0 of device d is
 * stage d, chunk 1 is stage 2D-1-d) the two directions become the two
 * chunks of each device.  Its steady state is made of pairs: the forward
 * of one chunk next to the whole backward of the other, which a runtime
 * can overlap to hide communication behind compute (our executor runs
 * them one after the other: the order is what a plan fixes).  The phases
 * of device d:
 *
 *   2(D-d-1) x F0                  warm-up down the V
 *   d+1 x F0 F1
 *   D-d-1 x B1 W1 F1               chunk 1's first backwards, whole
 *   M-2D+d+1 x F0 B1 W1 F1 B0 W0   steady state: pairs (F0, B1), (F1, B0)
 *   D-d-1 x B1 W1 F1 B0 W0         chunk 0's forwards done
 *   d+1 x B1 B0                    drain, whole backwards for the first
 *                                  half (d+1 of these 2(d+1)), input
 *                                  gradients only for the second
 *   D-d-1 x W* B0                  each input gradient pays an old W
 *   d+1 x W*                       the last d+1 Ws close the list
 *
 * where W* is the oldest W still pending on the device.  It needs
 * M >= 2D micro-batches.  With unit costs the idle time is D-1 per device
 * at 2D+1 chunk activations.  The order matches PyTorch's
 * ScheduleDualPipeV (and DeepSpeed's DualPipeVSchedule, which keeps the
 * weight gradient inside its backward), checked against the goldens
 * (tests/golden/orders_zb/dualpipev.txt).
 */
#include <string.h>

#include "pp.h"

static int dualpipev_check(const pp_spec *s, pp_diag *d)
{
    int errors = pp_policy_need_vshape(s, "dualpipev", d) + pp_policy_no_group(s, "dualpipev", d);
    if (!errors && s->microbatches < s->stages) {
        pp_error(d, "dualpipev: needs at least as many microbatches as stages (2 x devices = %d), got microbatches = %d",
                 s->stages, s->microbatches);
        errors++;
    }
    return errors;
}

int pp_policy_dualpipev_phases(int D, int d, int M, pp_vphase *out)
{
    /* The drain's 2(d+1) backwards, B1 B0 B1 B0 ...: whole pairs, the
     * middle pair when d+1 is odd (its B1 whole, its B0 split), then
     * split pairs. */
    int half_pairs = (d + 1) / 2;
    const pp_vphase phases[] = {
        {2 * (D - d - 1), "F0"},
        {d + 1, "F0 F1"},
        {D - d - 1, "B1 W1 F1"},
        {M - 2 * D + d + 1, "F0 B1 W1 F1 B0 W0"},
        {D - d - 1, "B1 W1 F1 B0 W0"},
        {half_pairs, "B1 W1 B0 W0"},
        {(d + 1) % 2, "B1 W1 B0"},
        {half_pairs, "B1 B0"},
        {D - d - 1, "W* B0"},
        {d + 1, "W*"},
    };
    _Static_assert(sizeof phases / sizeof phases[0] <= PP_VPHASES_MAX, "room for the phases");
    memcpy(out, phases, sizeof phases);
    return (int)(sizeof phases / sizeof phases[0]);
}

static int dualpipev_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    p->split_backward = true;
    if (pp_policy_vshape_order(p, s->microbatches, pp_policy_dualpipev_phases)) {
        pp_error(d, "dualpipev: out of memory");
        return 1;
    }
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_dualpipev = {
    .name = "dualpipev",
    .summary = "DualPipeV: V-shape, overlapped forward/backward pairs (DeepSeek DualPipe, PyTorch ScheduleDualPipeV)",
    .check = dualpipev_check,
    .generate = dualpipev_generate,
    .split_backward = true,
};
