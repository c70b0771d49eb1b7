/*
 * policy_looped.c — two loop-placement schedules that PyTorch ships:
 *
 * looped-bfs: breadth-first pipeline parallelism (Lamy-Poirier 2022).
 * Each device runs every micro-batch through its first stage, then its
 * second, ...; then the backwards, last stage first and, within a stage,
 * the last micro-batch first.  A GPipe per chunk: all v*M activations live
 * at once, full (unsplit) backwards.  Matches PyTorch's ScheduleLoopedBFS.
 *
 * interleaved-zb: interleaved 1F1B with the backward split as in zb-h1
 * (policy_zb.c): the chunk sweep of interleaved (pp_policy_interleave)
 * with groups of R = M / max(1, M / D) micro-batches (PyTorch's rounds),
 * a lead of (v-1)*R + D-1-d forwards on device d (1F1B's lead plus the
 * earlier chunks' first round) and each W trailing its B by d backwards.
 * Matches PyTorch's ScheduleInterleavedZeroBubble, checked against the
 * goldens; PyTorch's lists also hold idle slots, which are not ops (the
 * lowering owns the waiting here).
 */
#include "pp.h"

static int looped_bfs_check(const pp_spec *s, pp_diag *d)
{
    return pp_policy_need_loop(s, "looped-bfs", d) + pp_policy_no_group(s, "looped-bfs", d);
}

static int looped_bfs_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    (void)d;
    int D = s->devices, v = s->chunks, M = s->microbatches;
    for (int rank = 0; rank < D; rank++) {
        for (int local = 0; local < v; local++)
            for (int m = 0; m < M; m++)
                pp_policy_emit(p, rank, PP_OP_F, local * D + rank, m);
        for (int local = v - 1; local >= 0; local--)
            for (int m = M - 1; m >= 0; m--)
                pp_policy_emit(p, rank, PP_OP_B, local * D + rank, m);
    }
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_looped_bfs = {
    .name = "looped-bfs",
    .summary = "breadth-first: all micro-batches through each local stage in turn (PyTorch ScheduleLoopedBFS)",
    .check = looped_bfs_check,
    .generate = looped_bfs_generate,
    .split_backward = false,
};

/* PyTorch's rounds: one round of M when M < D, else rounds of about D. */
static int zb_rounds(const pp_spec *s)
{
    int rounds = s->microbatches / s->devices;
    return rounds < 1 ? 1 : rounds;
}

static int interleaved_zb_check(const pp_spec *s, pp_diag *d)
{
    int errors = pp_policy_need_loop(s, "interleaved-zb", d) + pp_policy_no_group(s, "interleaved-zb", d);
    int rounds = zb_rounds(s);
    if (!errors && s->microbatches % rounds != 0) {
        pp_error(d,
                 "interleaved-zb: needs microbatches to be a multiple of the number of rounds "
                 "max(1, microbatches / devices) = %d, got microbatches = %d with devices = %d",
                 rounds, s->microbatches, s->devices);
        errors++;
    }
    return errors;
}

static int interleaved_zb_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    (void)d;
    p->split_backward = true;
    int D = s->devices, v = s->chunks, M = s->microbatches, R = M / zb_rounds(s);
    for (int dev = 0; dev < D; dev++) {
        pp_interleaving o = {.devices = D, .chunks = v, .microbatches = M, .group = R,
                             .lead = (long)(v - 1) * R + (D - 1 - dev), .w_lag = dev};
        pp_policy_interleave(p, dev, &o);
    }
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_interleaved_zb = {
    .name = "interleaved-zb",
    .summary = "interleaved 1F1B with B/W split, W deferred into the bubbles (PyTorch ScheduleInterleavedZeroBubble)",
    .check = interleaved_zb_check,
    .generate = interleaved_zb_generate,
    .split_backward = true,
};
