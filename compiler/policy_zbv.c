/*
 * policy_zbv.c — ZB-V (Qi et al., "Zero Bubble Pipeline Parallelism",
 * ICLR 2024, section 6), as PyTorch's ScheduleZBVZeroBubble computes it.
 *
 * Two stages per device on the V-shape placement: device r holds stage r
 * (chunk 0, going down) and stage 2D-1-r (chunk 1, coming back), so the
 * first forward and the last backward of the model are both on device 0
 * and the pipeline has no ramp at either end.  Device r warms up with
 * 2(D-r)-1 chunk-0 forwards, then r pairs (F1, F0), then D-r rounds of
 * F1 B1 W1; the steady state alternates F0 B0 W0 F1 B1 W1; the cooldown
 * runs r pairs (B0, B1), then D-r pairs (B0, W0), then the deferred W1s
 * and W0s.  With F = B = W the bubble is near zero and the peak is 2D
 * chunk activations on every device: D stages' worth, 1F1B's memory.
 *
 * PyTorch builds the order for max(2D-1, M) micro-batches and drops the
 * ones past M, so any M >= 1 works; emit() does that dropping.
 */
#include "pp.h"

int pp_policy_need_vshape(const pp_spec *s, const char *policy, pp_diag *d)
{
    if (s->chunks != 2) {
        pp_error(d, "%s: needs exactly two stages per device (virtual = 2), got virtual = %d", policy, s->chunks);
        return 1;
    }
    int D = s->devices;
    for (int st = 0; st < s->stages; st++) {
        int want = st < D ? st : 2 * D - 1 - st;
        if (s->placement[st] != want) {
            pp_error(d, "%s: needs placement = vshape (stage s < %d on device s, else on device %d - s), "
                        "but stage %d is on device %d",
                     policy, D, 2 * D - 1, st, s->placement[st]);
            return 1;
        }
    }
    return 0;
}

static int zbv_check(const pp_spec *s, pp_diag *d)
{
    return pp_policy_need_vshape(s, "zbv", d) + pp_policy_no_group(s, "zbv", d);
}

/* Appends op unless it names one of the padding micro-batches. */
static void emit(pp_plan *p, int rank, int kind, int stage, int mb, int M)
{
    if (mb < M)
        pp_policy_emit(p, rank, kind, stage, mb);
}

static int zbv_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    (void)d;
    p->split_backward = true;
    int D = s->devices, M = s->microbatches;
    int n_micro = 2 * D - 1 > M ? 2 * D - 1 : M;
    for (int rank = 0; rank < D; rank++) {
        int c0 = rank, c1 = 2 * D - 1 - rank;
        int f0 = 0, f1 = 0, b0 = 0, b1 = 0;
        for (int i = 0; i < 2 * (D - rank) - 1; i++)
            emit(p, rank, PP_OP_F, c0, f0++, M);
        for (int i = 0; i < rank; i++) {
            emit(p, rank, PP_OP_F, c1, f1++, M);
            emit(p, rank, PP_OP_F, c0, f0++, M);
        }
        for (int i = 0; i < D - rank; i++) {
            emit(p, rank, PP_OP_F, c1, f1++, M);
            emit(p, rank, PP_OP_B, c1, b1, M);
            emit(p, rank, PP_OP_W, c1, b1++, M);
        }
        while (f1 < f0 || f0 < n_micro) {
            if (f0 < n_micro)
                emit(p, rank, PP_OP_F, c0, f0++, M);
            emit(p, rank, PP_OP_B, c0, b0, M);
            emit(p, rank, PP_OP_W, c0, b0++, M);
            emit(p, rank, PP_OP_F, c1, f1++, M);
            emit(p, rank, PP_OP_B, c1, b1, M);
            emit(p, rank, PP_OP_W, c1, b1++, M);
        }
        int w0 = b0, w1 = b1;
        for (int i = 0; i < rank; i++) {
            emit(p, rank, PP_OP_B, c0, b0++, M);
            emit(p, rank, PP_OP_B, c1, b1++, M);
        }
        for (int i = 0; i < D - rank; i++) {
            emit(p, rank, PP_OP_B, c0, b0++, M);
            emit(p, rank, PP_OP_W, c0, w0++, M);
        }
        while (w1 < b1)
            emit(p, rank, PP_OP_W, c1, w1++, M);
        while (w0 < b0)
            emit(p, rank, PP_OP_W, c0, w0++, M);
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
