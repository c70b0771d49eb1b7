/*
 * policy_zbh2.c — zero-bubble ZB-H2 (Qi et al., "Zero Bubble Pipeline
 * Parallelism", ICLR 2024, figure 3 / table 1), the handcrafted schedule
 * that trades memory for bubble: (2p-1) activations on the first device
 * instead of ZB-H1's p, idle (p-1)(T_F + T_B - 2 T_W) per device.
 *
 * Order (docs/auto.md, "zb-h2"): device d warms up with
 * w = min(2(D-d)-1, M) forwards, exactly enough to keep it busy until
 * the first backward comes back (unit costs); then each step runs one B,
 * the W of the backward d steps earlier, and the next F; the d Ws still
 * pending close the list.  Device d lagging d Ws lets the later devices
 * run ahead in the tail, so the last backwards travel down to device 0
 * while the others pay their deferred Ws: the paper's parallelogram.
 * With F = B = W and no comm the makespan is 3M + D - 1, the lower bound
 * (the last device cannot start before D - 1 forwards), at 2D - d - 1
 * activations on device d (2D - 1 on device 0, against 1F1B's D).  The sail-sg reference builds its ZB-H2
 * with an automatic scheduler, so this order is derived from the paper's
 * figure, not transcribed.
 */
#include "pp.h"

static int zb_h2_check(const pp_spec *s, pp_diag *d)
{
    return pp_policy_need_one_stage(s, "zb-h2", "; use interleaved-zb or zbv", d);
}

static int zb_h2_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    (void)d;
    int D = s->devices, M = s->microbatches;
    p->split_backward = true;
    for (int dev = 0; dev < D; dev++) {
        int warmup = 2 * (D - dev) - 1 < M ? 2 * (D - dev) - 1 : M;
        /* Device d keeps d Ws pending behind its backwards: the later
         * devices run ahead in the tail, so the last backwards reach
         * device 0 while they pay their deferred Ws (the parallelogram). */
        int lag = dev, weights = 0;
        for (int m = 0; m < warmup; m++)
            pp_policy_emit(p, dev, PP_OP_F, dev, m);
        for (int m = 0; m < M; m++) {
            pp_policy_emit(p, dev, PP_OP_B, dev, m);
            if (m - weights >= lag)
                pp_policy_emit(p, dev, PP_OP_W, dev, weights++);
            if (warmup + m < M)
                pp_policy_emit(p, dev, PP_OP_F, dev, warmup + m);
        }
        while (weights < M)
            pp_policy_emit(p, dev, PP_OP_W, dev, weights++);
    }
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_zb_h2 = {
    .name = "zb-h2",
    .summary = "zero bubble H2: 2D-1 warm-up forwards, B/W/F steady state, W-filled tail (Qi et al. 2024)",
    .check = zb_h2_check,
    .generate = zb_h2_generate,
    .split_backward = true,
};
