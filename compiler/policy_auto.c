/*
 * policy_auto.c — `auto`: searches for the compute order with the smallest
 * simulated makespan on the file's cost model, under its memory limit.
 *
 * Candidates (docs/auto.md):
 *   1. every named policy that accepts the shape;
 *   2. list schedules: a greedy event-driven scheduler on the cost model
 *      where each idle device starts the ready op its priority rule likes
 *      best (B before F or F before B, W deferred up to k pending, F capped
 *      by an in-flight limit and by the memory limit); the variants are
 *      timed by the scheduler itself and the best few go on;
 *   3. local search from the best of 1 and 2: move one op a few places on
 *      its device, keep the move if the makespan drops; a bounded number of
 *      evaluations, fewer for big shapes.
 * Every candidate is judged the same way: pp_lower, pp_verify with the
 * limit, pp_simulate.  So auto is never worse than a named policy that fits
 * the limit: that policy is one of its candidates.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

/* A candidate: each device's compute order, without update/flush. */
typedef struct order {
    pp_op **ops;
    int *n;
    int D;
    bool split;
} order;

static void order_free(order *o)
{
    if (o->ops)
        for (int d = 0; d < o->D; d++)
            free(o->ops[d]);
    free(o->ops);
    free(o->n);
    memset(o, 0, sizeof *o);
}

static void order_alloc(order *o, int D, int per_device)
{
    o->D = D;
    o->ops = pp_xcalloc((size_t)D, sizeof *o->ops);
    o->n = pp_xcalloc((size_t)D, sizeof *o->n);
    for (int d = 0; d < D; d++)
        o->ops[d] = pp_xcalloc((size_t)per_device, sizeof **o->ops);
}

static void order_copy(order *dst, const order *src, int per_device)
{
    order_free(dst);
    order_alloc(dst, src->D, per_device);
    dst->split = src->split;
    for (int d = 0; d < src->D; d++) {
        memcpy(dst->ops[d], src->ops[d], (size_t)src->n[d] * sizeof **src->ops);
        dst->n[d] = src->n[d];
    }
}

/* The F/B/W of a generated plan (its R ops are recompute's, added back
 * by evaluate as pp_policy_run adds them to the winner). */
static void order_from_plan(order *o, const pp_plan *p, int per_device)
{
    order_free(o);
    order_alloc(o, p->devices, per_device);
    o->split = p->split_backward;
    for (int d = 0; d < p->devices; d++)
        for (int i = 0; i < p->dev[d].n; i++) {
            int k = p->dev[d].ops[i].kind;
            if (pp_op_is_compute(k) && k != PP_OP_R && o->n[d] < per_device)
                o->ops[d][o->n[d]++] = p->dev[d].ops[i];
        }
}

/* Writes the order into p (initialised, no ops) and closes every list. */
static void order_to_plan(const order *o, pp_plan *p)
{
    p->split_backward = o->split;
    for (int d = 0; d < o->D; d++) {
        p->dev[d].n = 0;
        for (int i = 0; i < o->n[d]; i++)
            pp_policy_emit(p, d, o->ops[d][i].kind, o->ops[d][i].stage, o->ops[d][i].mb);
    }
    pp_policy_finish(p);
}

/* The judge of every candidate: what ppcc would compile from it — the
 * recomputed forwards pp_policy_run inserts, then lower, verify (with the
 * limit), simulate. */
static double evaluate(const pp_spec *s, const order *o, bool with_limit, double *peak_out)
{
    pp_plan p;
    if (pp_plan_init(&p, "auto", s->devices, s->stages, s->microbatches, s->placement))
        return INFINITY;
    order_to_plan(o, &p);
    if (pp_insert_recompute(&p, s->recompute)) {
        pp_plan_free(&p);
        return INFINITY;
    }
    pp_diag_buffer q; /* rejected candidates' messages */
    pp_diag_buffer_open(&q, "ppcc");
    double makespan = INFINITY;
    pp_sim sim;
    if (pp_lower_verify_simulate(&p, s, with_limit, &sim, &q.diag) == 0) {
        makespan = sim.makespan;
        if (peak_out) { /* the largest peak memory of a device */
            double peak = 0;
            for (int d = 0; d < s->devices; d++)
                peak = sim.peak_mem[d] > peak ? sim.peak_mem[d] : peak;
            *peak_out = peak;
        }
        pp_sim_free(&sim, s->devices);
    }
    pp_diag_buffer_close(&q);
    pp_plan_free(&p);
    return makespan;
}

/* ---- list scheduling ---------------------------------------------- */

typedef struct variant {
    bool f_first;   /* F before B when both are ready */
    int defer;      /* a W goes first once this many are pending */
    int cap_kind;   /* in-flight cap: 0 none, 1 v(D-d), 2 v(2(D-d)-1), 3 vD */
    bool depth;     /* among ready Fs, the later stage first (else the lower mb) */
} variant;

/* Would device memory m go over the limit after op kind(st)?
 * activation_memory.c's accounting, as the verifier will judge the
 * candidate. */
static bool over_after(const pp_mem_state *m, int kind, int st, bool rec, bool split, const pp_verify_opts *mem)
{
    pp_mem_state t = *m;
    pp_mem_step(&t, &(pp_op){.kind = (uint8_t)kind, .stage = st}, rec, split);
    return pp_mem_over(pp_mem_held(&t, mem), mem->mem_limit);
}

/* Greedy list schedule of variant v into o; returns its makespan on the
 * scheduler's own model (comm added to every cross-device dependency; a
 * recomputing stage's B preceded by its R, as pp_policy_run will insert
 * it), or INFINITY if it stalls (the memory limit leaves no legal op). */
static double list_schedule(const pp_spec *s, bool split, variant v, order *o)
{
    int D = s->devices, S = s->stages, M = s->microbatches, V = s->chunks;
    const pp_cost *c = &s->cost;
    long SM = (long)S * M;
    double *endF = pp_xcalloc((size_t)SM, sizeof *endF), *endB = pp_xcalloc((size_t)SM, sizeof *endB);
    int *next = pp_xcalloc((size_t)S * 3, sizeof *next); /* next mb of F, B, W per stage */
    double *tdev = pp_xcalloc((size_t)D, sizeof *tdev);
    int *live = pp_xcalloc((size_t)D, sizeof *live), *pending = pp_xcalloc((size_t)D, sizeof *pending);
    int *cap = pp_xcalloc((size_t)D, sizeof *cap);
    pp_mem_state *held = pp_xcalloc((size_t)D, sizeof *held);
    pp_verify_opts mem = pp_verify_opts_of(s, true);
    for (long i = 0; i < SM; i++)
        endF[i] = endB[i] = -1;
    for (int d = 0; d < D; d++) {
        cap[d] = v.cap_kind == 1 ? V * (D - d) : v.cap_kind == 2 ? V * (2 * (D - d) - 1) : v.cap_kind == 3 ? V * D : M * V;
        o->n[d] = 0;
    }
    o->split = split;
    long left = SM * (split ? 3 : 2);
    double makespan = 0;
    while (left > 0) {
        int best_d = -1, best_s = -1, best_k = -1;
        double best_t = INFINITY;
        for (int d = 0; d < D; d++) {
            /* Among this device's next ops, the one its rule picks at the
             * earliest time it could start something. */
            int pick_s = -1, pick_k = -1;
            double pick_t = INFINITY, pick_rank = INFINITY;
            for (int st = 0; st < S; st++) {
                if (s->placement[st] != d)
                    continue;
                for (int k = 0; k < (split ? 3 : 2); k++) {
                    int m = next[st * 3 + k];
                    if (m >= M)
                        continue;
                    double r;
                    long i = (long)st * M + m;
                    bool rec = s->recompute && s->recompute[st];
                    if (k == 0) {
                        if (live[d] >= cap[d] || over_after(&held[d], PP_OP_F, st, rec, split, &mem))
                            continue;
                        if (st == 0)
                            r = 0;
                        else if (endF[i - M] < 0)
                            continue;
                        else
                            r = endF[i - M] + (s->placement[st - 1] != d ? c->comm : 0);
                    } else if (k == 1) {
                        if (endF[i] < 0 || (rec && over_after(&held[d], PP_OP_R, st, rec, split, &mem)))
                            continue;
                        r = endF[i];
                        if (st + 1 < S) {
                            if (endB[i + M] < 0)
                                continue;
                            double g = endB[i + M] + (s->placement[st + 1] != d ? c->comm : 0);
                            r = g > r ? g : r;
                        }
                    } else {
                        if (next[st * 3 + 1] <= m)
                            continue;
                        r = endB[i];
                    }
                    double t = r > tdev[d] ? r : tdev[d];
                    /* Rank: kind by the rule, then the stage preference. */
                    int kr;
                    if (k == 2)
                        kr = pending[d] >= v.defer ? 0 : 3;
                    else if (k == 0)
                        kr = v.f_first ? 1 : 2;
                    else
                        kr = v.f_first ? 2 : 1;
                    double rank = kr * 1e9 + (k == 0 && v.depth ? -st : 0) * 1e5 + m;
                    if (t < pick_t - 1e-12 || (t < pick_t + 1e-12 && rank < pick_rank)) {
                        pick_t = t;
                        pick_rank = rank;
                        pick_s = st;
                        pick_k = k;
                    }
                }
            }
            if (pick_s >= 0 && pick_t < best_t) {
                best_t = pick_t;
                best_d = d;
                best_s = pick_s;
                best_k = pick_k;
            }
        }
        if (best_d < 0) {
            makespan = INFINITY;
            break;
        }
        int m = next[best_s * 3 + best_k]++;
        long i = (long)best_s * M + m;
        int kind = best_k == 0 ? PP_OP_F : best_k == 1 ? PP_OP_B : PP_OP_W;
        bool rec = s->recompute && s->recompute[best_s];
        double dur = pp_op_cost(c, kind, best_s, split);
        if (kind == PP_OP_B && rec) { /* its R runs right before it */
            dur += pp_op_cost(c, PP_OP_R, best_s, split);
            pp_mem_step(&held[best_d], &(pp_op){.kind = PP_OP_R, .stage = best_s}, rec, split);
        }
        pp_mem_step(&held[best_d], &(pp_op){.kind = (uint8_t)kind, .stage = best_s}, rec, split);
        if (best_k == 0) {
            live[best_d]++;
        } else if (best_k == 1) {
            if (split)
                pending[best_d]++;
            else
                live[best_d]--;
        } else {
            pending[best_d]--;
            live[best_d]--;
        }
        double end = best_t + dur;
        if (best_k == 0)
            endF[i] = end;
        else if (best_k == 1)
            endB[i] = end;
        tdev[best_d] = end;
        makespan = end > makespan ? end : makespan;
        o->ops[best_d][o->n[best_d]++] =
            (pp_op){.kind = (uint8_t)kind, .stage = best_s, .mb = m, .peer = -1, .group = -1};
        left--;
    }
    free(endF);
    free(endB);
    free(next);
    free(tdev);
    free(live);
    free(pending);
    free(cap);
    free(held);
    return makespan;
}

/* ---- local search -------------------------------------------------- */

/* Must a come before b on one device (a dependency, or the per-stage
 * micro-batch order every policy keeps)? */
static bool must_precede(const pp_op *a, const pp_op *b)
{
    if (a->kind == b->kind && a->stage == b->stage)
        return true;
    if (a->mb != b->mb)
        return false;
    if (a->kind == PP_OP_F && b->kind == PP_OP_F)
        return a->stage < b->stage;
    if (a->kind == PP_OP_F)
        return true; /* every B and W of the micro-batch waits for all its Fs */
    if (a->kind == PP_OP_B && b->kind == PP_OP_B)
        return a->stage > b->stage;
    if (a->kind == PP_OP_B && b->kind == PP_OP_W)
        return a->stage >= b->stage;
    return false;
}

/* Moves op i of device d to position j if no dependency is crossed. */
static bool try_move(order *o, int d, int i, int j)
{
    pp_op *ops = o->ops[d];
    if (j < 0 || j >= o->n[d] || j == i)
        return false;
    pp_op x = ops[i];
    if (j > i) {
        for (int k = i + 1; k <= j; k++)
            if (must_precede(&x, &ops[k]))
                return false;
        memmove(&ops[i], &ops[i + 1], (size_t)(j - i) * sizeof *ops);
    } else {
        for (int k = j; k < i; k++)
            if (must_precede(&ops[k], &x))
                return false;
        memmove(&ops[j + 1], &ops[j], (size_t)(i - j) * sizeof *ops);
    }
    ops[j] = x;
    return true;
}

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* ---- the search ---------------------------------------------------- */

int pp_auto_search(const pp_spec *s, pp_plan *out, pp_auto_report *rep, pp_diag *dg)
{
    memset(rep, 0, sizeof *rep);
    int D = s->devices, M = s->microbatches;
    int per_device = 0;
    for (int d = 0; d < D; d++) {
        int owned = 0;
        for (int st = 0; st < s->stages; st++)
            owned += s->placement[st] == d;
        per_device = owned > per_device ? owned : per_device;
    }
    per_device = per_device * M * 3 + 4;
    order best = {0}, cand = {0};
    double best_ms = INFINITY;
    double best_peak = INFINITY, peak = 0;
    rep->best_named = INFINITY;

    /* 1. Named policies on this very spec. */
    for (const pp_policy *const *pp = pp_policy_all(); *pp; pp++) {
        const pp_policy *pol = *pp;
        /* custom replays the file's own order: not a candidate to search over;
         * nor are the asynchronous ones, which train differently (docs/async.md). */
        if (strcmp(pol->name, "auto") == 0 || strcmp(pol->name, "custom") == 0 || pol->async != PP_ASYNC_NONE ||
            rep->nnamed >= PP_AUTO_MAX_NAMED)
            continue;
        pp_auto_named *row = &rep->named[rep->nnamed++];
        snprintf(row->name, sizeof row->name, "%s", pol->name);
        row->makespan = INFINITY;
        pp_diag_buffer q;
        pp_diag_buffer_open(&q, "ppcc");
        pp_spec t = *s;
        snprintf(t.schedule, sizeof t.schedule, "%s", pol->name);
        pp_plan p;
        if (pp_policy_run(&t, &p, &q.diag) == 0) {
            order_from_plan(&cand, &p, per_device);
            pp_plan_free(&p);
            row->makespan = evaluate(s, &cand, true, &peak);
            row->ran = true;
            if (row->makespan < rep->best_named) {
                rep->best_named = row->makespan;
                snprintf(rep->best_named_name, sizeof rep->best_named_name, "%s", pol->name);
            }
            /* Ties go to the smaller peak memory. */
            if (row->makespan < best_ms - 1e-9 || (row->makespan < best_ms + 1e-9 && peak < best_peak)) {
                best_ms = row->makespan;
                best_peak = peak;
                order_copy(&best, &cand, per_device);
                snprintf(rep->source, sizeof rep->source, "%s", pol->name);
            }
        }
        pp_diag_buffer_close(&q);
    }

    /* 2. List schedules: time every variant with the scheduler's model,
     * judge the best few properly. */
    bool any_w = false;
    for (int st = 0; st < s->stages; st++)
        any_w |= pp_op_cost(&s->cost, PP_OP_W, st, true) > 0;
    enum { TOP = 4 };
    order top[TOP] = {{0}};
    double top_ms[TOP];
    variant top_v[TOP];
    for (int i = 0; i < TOP; i++)
        top_ms[i] = INFINITY;
    int defers[] = {0, 1, 2, D / 2, D, 1 << 30};
    for (int split = any_w ? 1 : 0; split >= 0; split--)
        for (int f_first = 0; f_first < 2; f_first++)
            for (int di = 0; di < 6; di++)
                for (int cap_kind = 0; cap_kind < 4; cap_kind++)
                    for (int depth = 0; depth < (s->chunks > 1 ? 2 : 1); depth++) {
                        if (!split && di > 0)
                            continue;
                        variant v = {f_first, defers[di], cap_kind, depth};
                        order_free(&cand);
                        order_alloc(&cand, D, per_device);
                        double ms = list_schedule(s, split, v, &cand);
                        rep->list_tried++;
                        int worst = 0;
                        for (int i = 1; i < TOP; i++)
                            if (top_ms[i] > top_ms[worst])
                                worst = i;
                        if (ms < top_ms[worst]) {
                            order_copy(&top[worst], &cand, per_device);
                            top_ms[worst] = ms;
                            top_v[worst] = v;
                        }
                    }
    rep->best_list = INFINITY;
    for (int i = 0; i < TOP; i++) {
        if (!isfinite(top_ms[i]))
            continue;
        double ms = evaluate(s, &top[i], true, &peak);
        rep->evaluations++;
        if (ms < rep->best_list)
            rep->best_list = ms;
        if (ms < best_ms - 1e-9 || (ms < best_ms + 1e-9 && peak < best_peak)) {
            best_ms = ms;
            best_peak = peak;
            order_copy(&best, &top[i], per_device);
            snprintf(rep->source, sizeof rep->source, "list(%s, defer %d, cap %d, %s)",
                     top_v[i].f_first ? "F>B" : "B>F", top_v[i].defer > M * s->chunks ? -1 : top_v[i].defer,
                     top_v[i].cap_kind, top_v[i].depth ? "depth" : "breadth");
        }
    }
    for (int i = 0; i < TOP; i++)
        order_free(&top[i]);

    if (!isfinite(best_ms)) {
        order_free(&cand);
        order_free(&best);
        pp_error(dg, "auto: no schedule of %d devices x %d micro-batches fits the memory limit %g", D, M,
                 s->mem_limit);
        return 1;
    }
    rep->start = best_ms;

    /* 3. Local search: bounded by ops, so big shapes stay fast. */
    long total = 0;
    for (int d = 0; d < D; d++)
        total += best.n[d];
    long budget = total > 0 ? 300000 / total : 0;
    budget = budget > 400 ? 400 : budget < 8 ? 8 : budget;
    if (total > 20000)
        budget = 0;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (long e = 0; e < budget; e++) {
        int d = (int)(rng_next(&seed) % (uint64_t)D);
        if (best.n[d] < 2)
            continue;
        int i = (int)(rng_next(&seed) % (uint64_t)best.n[d]);
        int delta = (int)(rng_next(&seed) % 8) - 4;
        delta += delta >= 0;
        order_copy(&cand, &best, per_device);
        if (!try_move(&cand, d, i, i + delta))
            continue;
        double ms = evaluate(s, &cand, true, NULL);
        rep->evaluations++;
        if (ms < best_ms - 1e-9) {
            best_ms = ms;
            order_copy(&best, &cand, per_device);
            rep->moves++;
        }
    }
    rep->makespan = best_ms;
    order_to_plan(&best, out);
    order_free(&cand);
    order_free(&best);
    return 0;
}

void pp_auto_print(FILE *f, const pp_auto_report *r)
{
    fprintf(f, "auto: makespan %g from %s", r->makespan, r->source);
    if (r->moves)
        fprintf(f, " + %d local moves", r->moves);
    fprintf(f, " (%d list schedules, %d evaluations)\n", r->list_tried, r->evaluations);
    for (int i = 0; i < r->nnamed; i++) {
        const pp_auto_named *n = &r->named[i];
        if (!n->ran)
            fprintf(f, "auto:   %-16s cannot run this shape\n", n->name);
        else if (!isfinite(n->makespan))
            fprintf(f, "auto:   %-16s does not fit (verifier: memory limit)\n", n->name);
        else
            fprintf(f, "auto:   %-16s makespan %g\n", n->name, n->makespan);
    }
}

static int auto_check(const pp_spec *s, pp_diag *d)
{
    return pp_policy_no_group(s, "auto", d);
}

static int auto_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    pp_auto_report rep;
    if (pp_auto_search(s, p, &rep, d))
        return 1;
    pp_auto_print(d->out, &rep);
    return 0;
}

const pp_policy pp_policy_auto = {
    .name = "auto",
    .summary = "searches list schedules, local moves and every named policy for the smallest makespan under the memory limit",
    .check = auto_check,
    .generate = auto_generate,
    .split_backward = true,
};
