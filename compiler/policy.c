/*
 * policy.c — the registry of scheduling policies and the pass that runs one.
 *
 * A policy turns the checked spec into each device's *compute order*: the
 * sequence of F / B (/ W) ops the device issues, closed by update and
 * flush.  It says nothing about communication: lowering (lower.c) inserts
 * the sends and receives afterwards, so a policy file is only a compute
 * order, built from its schedule's rule (docs/schedules.md), and
 * tests/test_policy.c proves it equal to the orders the reference
 * implementations give when run (tests/ref/generate_orders.py,
 * docs/reference-orders.md).
 *
 * pp_policy_run does the work common to all policies: find the policy by
 * name, let it refuse shapes it cannot do, size each device's list
 * exactly (one allocation per device, no growth while generating: 64
 * devices x 4 chunks x 1024 micro-batches is half a million ops), then
 * let it generate, and complete the order (pp_policy_complete): the
 * recomputed forwards, a mirrored plan's gradient sums and a tied gpt's
 * allreduce, which no policy file writes itself.
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

extern const pp_policy pp_policy_naive;
extern const pp_policy pp_policy_gpipe;
extern const pp_policy pp_policy_1f1b;
extern const pp_policy pp_policy_interleaved;

static const pp_policy *const policies[] = {
    &pp_policy_naive,
    &pp_policy_gpipe,
    &pp_policy_1f1b,
    &pp_policy_interleaved,
    &pp_policy_looped_bfs,
    &pp_policy_zb_h1,
    &pp_policy_zb_h2,
    &pp_policy_interleaved_zb,
    &pp_policy_zbv,
    &pp_policy_dualpipev,
    &pp_policy_dualpipe,
    &pp_policy_v_half,
    &pp_policy_v_min,
    &pp_policy_custom,
    &pp_policy_auto,
    &pp_policy_pipedream,
    &pp_policy_2bw,
    NULL,
};

const pp_policy *const *pp_policy_all(void)
{
    return policies;
}

const pp_policy *pp_policy_find(const char *name)
{
    for (const pp_policy *const *p = policies; *p; p++)
        if (strcmp((*p)->name, name) == 0)
            return *p;
    return NULL;
}

const char *pp_policy_guess(const char *name)
{
    const char *names[sizeof policies / sizeof *policies];
    int n = 0;
    for (const pp_policy *const *p = policies; *p; p++)
        names[n++] = (*p)->name;
    return pp_closest(name, names, n);
}

int pp_policy_need_loop(const pp_spec *s, const char *policy, pp_diag *d)
{
    if (s->placement_kind == PP_PLACE_VSHAPE) {
        pp_error(d, "%s: needs placement = loop (stage s on device s mod %d), got vshape", policy, s->devices);
        return 1;
    }
    for (int st = 0; st < s->stages; st++)
        if (s->placement[st] != st % s->devices) {
            pp_error(d,
                     "%s: needs placement = loop (stage s on device s mod %d), but stage %d is on device %d",
                     policy, s->devices, st, s->placement[st]);
            return 1;
        }
    return 0;
}

int pp_policy_no_group(const pp_spec *s, const char *policy, pp_diag *d)
{
    if (s->group == 0)
        return 0;
    pp_error(d, "%s: has no schedule.group (the micro-batch group size of interleaved), got group = %d", policy,
             s->group);
    return 1;
}

int pp_policy_need_one_stage(const pp_spec *s, const char *policy, const char *hint, pp_diag *d)
{
    if (s->chunks != 1) {
        pp_error(d, "%s: needs one stage per device (virtual = 1), got virtual = %d%s", policy, s->chunks, hint);
        return 1;
    }
    return pp_policy_need_loop(s, policy, d) + pp_policy_no_group(s, policy, d);
}

void pp_policy_finish(pp_plan *p)
{
    for (int d = 0; d < p->devices; d++) {
        pp_policy_emit(p, d, PP_OP_UPDATE, -1, -1);
        pp_policy_emit(p, d, PP_OP_FLUSH, -1, -1);
    }
}

static void unknown_policy(const char *name, pp_diag *d)
{
    char known[512];
    size_t n = 0;
    known[0] = '\0';
    for (const pp_policy *const *p = policies; *p; p++) {
        int w = snprintf(known + n, sizeof known - n, "%s%s", n ? ", " : "", (*p)->name);
        if (w < 0 || (size_t)w >= sizeof known - n)
            break;
        n += (size_t)w;
    }
    pp_error(d, "unknown schedule '%s' (known: %s)", name, known);
}

/* A gpt whose LM head is wte's transpose: its two copies are summed. */
static bool tied(const pp_spec *s)
{
    return pp_model_is_gpt(&s->model) && s->model.tie;
}

int pp_policy_complete(const pp_spec *s, pp_plan *p)
{
    if (pp_insert_recompute(p, s->recompute))
        return 1;
    p->replicas = s->data_parallel;
    p->zero = s->zero;
    /* the mirrored copies are summed within each replica first, so the
     * replicas' reduction (sharded or not) sums one total per stage copy */
    if (p->mirrored && pp_plan_add_mirror(p, s->cost.stage_grad))
        return 1;
    /* the tied pair sums copies already summed over the replicas; with
     * ZeRO-1, whose reduce-scatter leaves each replica a shard, before it */
    if (s->zero && tied(s) && pp_plan_add_tied(p, s->cost.tied_bytes))
        return 1;
    if (pp_plan_add_stage_reductions(p, s->cost.stage_grad))
        return 1;
    return !s->zero && tied(s) ? pp_plan_add_tied(p, s->cost.tied_bytes) : 0;
}

int pp_policy_run(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    memset(p, 0, sizeof *p);
    const pp_policy *pol = pp_policy_find(s->schedule);
    if (!pol) {
        unknown_policy(s->schedule, d);
        return 1;
    }
    if (pol->check(s, d))
        return 1;
    if (pp_plan_init(p, pol->name, s->devices, s->stages, s->microbatches, s->placement)) {
        pp_error(d, "out of memory for %d devices and %d stages", s->devices, s->stages);
        return 1;
    }
    p->split_backward = pol->split_backward;
    p->async = pol->async;
    p->mirrored = pol->mirrored;

    /* Exact capacity: every (stage, mb) of the device's stages once per
     * compute kind, then update and flush (and a gpt's tied allreduce on
     * the two devices that sum it). */
    long per_stage = (long)s->microbatches * (pol->split_backward ? 3 : 2);
    int pair[2] = {-1, -1};
    bool summed = tied(s) && pp_tied_pair(s->placement, s->stages, pair);
    long total = per_stage * s->stages + 2L * s->devices + (summed ? 2 : 0);
    if (total > PP_MAX_OPS_TOTAL) {
        pp_error(d, "%s: the plan would hold %ld ops, more than the limit of %ld", pol->name, total,
                 (long)PP_MAX_OPS_TOTAL);
        pp_plan_free(p);
        return 1;
    }
    for (int dv = 0; dv < s->devices; dv++) {
        int owned = 0;
        for (int st = 0; st < s->stages; st++)
            owned += s->placement[st] == dv;
        pp_plan_reserve(p, dv, (int)(per_stage * owned + 2 + (dv == pair[0] || dv == pair[1])));
    }
    int errors = pol->generate(s, p, d);
    if (!errors && pp_policy_complete(s, p)) {
        pp_error(d, "%s: out of memory inserting the recomputed forwards and the tied allreduce", pol->name);
        errors = 1;
    }
    if (errors)
        pp_plan_free(p);
    return errors;
}

/* Generic for every policy (docs/recompute.md): the recomputed forward
 * runs right before the backward that needs it, so the activations it
 * rebuilds live only from R to B (W when split).  Any R already there
 * (auto builds from plans that went through here) is dropped first, which
 * makes the insertion idempotent. */
static bool needs_r(const pp_plan *p, const bool *recompute, const pp_op *op)
{
    return recompute && op->kind == PP_OP_B && op->stage >= 0 && op->stage < p->stages && recompute[op->stage];
}

int pp_insert_recompute(pp_plan *p, const bool *recompute)
{
    for (int d = 0; d < p->devices; d++) {
        pp_device *dv = &p->dev[d];
        int n = 0, extra = 0;
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            if (op->kind == PP_OP_R)
                continue;
            dv->ops[n++] = *op;
            extra += needs_r(p, recompute, op);
        }
        dv->n = n;
        if (extra == 0)
            continue;
        if (dv->cap < n + extra) {
            pp_op *bigger = realloc(dv->ops, (size_t)(n + extra) * sizeof *bigger);
            if (!bigger)
                return 1;
            dv->ops = bigger;
            dv->cap = n + extra;
        }
        /* Back to front, so each op moves once. */
        for (int i = n - 1, j = n + extra - 1; i >= 0; i--) {
            pp_op op = dv->ops[i];
            dv->ops[j--] = op;
            if (needs_r(p, recompute, &op))
                dv->ops[j--] = (pp_op){.kind = PP_OP_R, .stage = op.stage, .mb = op.mb, .peer = -1, .group = -1};
        }
        dv->n = n + extra;
    }
    return 0;
}
