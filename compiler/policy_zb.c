/*
 * policy_zb.c — zero-bubble ZB-H1 (Qi et al., "Zero Bubble Pipeline
 * Parallelism", ICLR 2024), and the ZB1P order builder it shares with
 * interleaved-zb (policy_looped.c).
 *
 * Splitting the backward into B (input gradient, on the critical path)
 * and W (weight gradient, needed only by the optimizer) lets a device
 * start the previous stage's B one W earlier and fill its idle slots with
 * the W it deferred.  The order is PyTorch's ScheduleInterleavedZeroBubble
 * builder (_get_1f1b_rank_ops with enable_zero_bubble): a 1F1B whose
 * warmup is D-1-rank forwards (interleaved: plus (v-1) rounds), where
 * rank r runs its first r steady backwards without their W and then pays
 * one deferred W after every B, flushing the rest at the end.  With one
 * stage per device this is ZB-H1: 1F1B's peak memory (D activations on the
 * busiest device), bubble (D-1)(F+B-W) against 1F1B's (D-1)(F+B+W).
 */
#include <stdlib.h>

#include "pp.h"

/* One rank's local stage index -> global stage on the loop placement. */
static int loop_stage(int local, int D, int rank)
{
    return local * D + rank;
}

int pp_policy_zb1p(pp_plan *p, int D, int v, int M, int per_round)
{
    int *fwd_mb = calloc((size_t)v * 3, sizeof *fwd_mb);
    if (!fwd_mb)
        return 1;
    int *bwd_mb = fwd_mb + v, *wgt_mb = fwd_mb + 2 * v;
    for (int rank = 0; rank < D; rank++) {
        for (int i = 0; i < 3 * v; i++)
            fwd_mb[i] = 0;
        /* _get_warmup_ops with multiply_factor = 1, capped at all forwards. */
        long microbatch_ops = (long)v * M;
        long warmup = (long)(v - 1) * per_round + (D - 1 - rank);
        if (warmup > microbatch_ops)
            warmup = microbatch_ops;
        long total = microbatch_ops + warmup; /* warmup + 1f1b + cooldown (= warmup) */
        long weights = 0;                         /* W emitted so far */
#define FWD_LOCAL(op) ((int)(((op) / per_round) % v))
#define BWD_LOCAL(op) (v - 1 - (int)((((op) - warmup) / per_round) % v))
        for (long op = 0; op < total; op++) {
            if (op < microbatch_ops) {
                int st = loop_stage(FWD_LOCAL(op), D, rank);
                pp_policy_emit(p, rank, PP_OP_F, st, fwd_mb[FWD_LOCAL(op)]++);
            }
            if (op < warmup)
                continue;
            int bl = BWD_LOCAL(op);
            pp_policy_emit(p, rank, PP_OP_B, loop_stage(bl, D, rank), bwd_mb[bl]++);
            /* The first `rank` steady backwards keep their W for later;
             * the k-th W belongs to the k-th backward (op warmup + k). */
            if (op - warmup >= rank) {
                int wl = BWD_LOCAL(warmup + weights);
                pp_policy_emit(p, rank, PP_OP_W, loop_stage(wl, D, rank), wgt_mb[wl]++);
                weights++;
            }
        }
        for (; weights < microbatch_ops; weights++) {
            int wl = BWD_LOCAL(warmup + weights);
            pp_policy_emit(p, rank, PP_OP_W, loop_stage(wl, D, rank), wgt_mb[wl]++);
        }
#undef FWD_LOCAL
#undef BWD_LOCAL
    }
    free(fwd_mb);
    return 0;
}

static int zb_h1_check(const pp_spec *s, pp_diag *d)
{
    return pp_policy_need_one_stage(s, "zb-h1", "; use interleaved-zb or zbv", d);
}

static int zb_h1_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    p->split_backward = true;
    /* One stage per rank: the round size feeds nothing, so PyTorch's
     * rounds check (M a multiple of M / D) is not ours to keep. */
    if (pp_policy_zb1p(p, s->devices, 1, s->microbatches, s->microbatches)) {
        pp_error(d, "zb-h1: out of memory");
        return 1;
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
