/*
 * policy_async.c — PipeDream's asynchronous pipelines (docs/async.md), on
 * 1F1B's compute order (warm-up of D-d-1 forwards, then F/B alternating,
 * loop placement, one stage per device):
 *
 *   pipedream  weight stashing (Narayanan et al., SOSP 2019): an update
 *              after every B, with that micro-batch's gradient alone; each
 *              micro-batch's B uses the weights its F saw (the runtime
 *              stashes them).  With schedule.vertical_sync every stage
 *              uses for micro-batch m the version stage 0 used (the plan
 *              says so; the order is the same).
 *   2bw        PipeDream-2BW (Narayanan et al., ICML 2021): gradients of
 *              the step's M micro-batches accumulate into one update, and
 *              F and B of step t use the weights of step t-1 (two versions).
 *
 * The plan says which through pipeline.async (its names are plan.c's); the
 * order is all this file decides.  The weight rules live in the runtime and
 * its --check.
 */
#include "pp.h"

static int pipedream_check(const pp_spec *s, pp_diag *d) { return pp_policy_need_one_stage(s, "pipedream", "", d); }
static int twobw_check(const pp_spec *s, pp_diag *d) { return pp_policy_need_one_stage(s, "2bw", "", d); }

static int pipedream_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    (void)d;
    p->vertical_sync = s->vertical_sync;
    for (int dev = 0; dev < s->devices; dev++) {
        pp_policy_1f1b_order(p, s->devices, s->microbatches, dev, true);
        pp_policy_emit(p, dev, PP_OP_FLUSH, -1, -1); /* the updates are in place */
    }
    return 0;
}

const pp_policy pp_policy_pipedream = {
    .name = "pipedream",
    .summary = "1F1B order, an update after every backward, weight stashing (PipeDream)",
    .check = pipedream_check,
    .generate = pipedream_generate,
    .split_backward = false,
    .async = PP_ASYNC_PIPEDREAM,
};

const pp_policy pp_policy_2bw = {
    .name = "2bw",
    .summary = "1F1B order, one update per step, forwards on the previous step's weights (PipeDream-2BW)",
    .check = twobw_check,
    .generate = pp_policy_1f1b_generate, /* 1F1B's order; the weight rule is the runtime's */
    .split_backward = false,
    .async = PP_ASYNC_2BW,
};
