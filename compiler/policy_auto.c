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
    o->ops = pp_xcalloc((size_t)D, sizeof *o->ops, "auto's candidate orders");
    o->n = pp_xcalloc((size_t)D, sizeof *o->n, "auto's candidate orders");
    for (int d = 0; d < D; d++)
        o->ops[d] = pp_xcalloc((size_t)per_device, sizeof **o->ops, "auto's candidate orders");
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
 * recomputed forwards and the tied allreduce pp_policy_run inserts, then
 * lower, verify (with the limit), simulate. */
static double evaluate(const pp_spec *s, const order *o, bool with_limit, double *peak_out)
{
    pp_plan p;
    if (pp_plan_init(&p, "auto", s->devices, s->stages, s->microbatches, s->placement))
        return INFINITY;
    order_to_plan(o, &p);
    if (pp_policy_complete(s, &p)) {
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
    pp_mem_step(&t, &(pp_op){.kind = (uint8_t)kind, .stage = st}, rec, split, mem);
    return pp_mem_over(pp_mem_held(&t, mem), mem->mem_limit);
}

/* The state of one list schedule: per (stage, mb) when its F and B end,
 * per stage the next micro-batch of each kind, per device its clock, the
 * sets it holds (live), the W it owes (pending), its in-flight cap and the
 * memory it holds. */
typedef struct lsched {
    const pp_spec *s;
    bool split;
    variant v;
    pp_verify_opts mem;
    double *endF, *endB; /* [S*M], -1: not yet */
    int *next;           /* [S*3] next mb of F, B, W per stage */
    double *tdev;        /* [D] */
    int *live, *pending, *cap; /* [D] */
    pp_mem_state *held;  /* [D] */
} lsched;

/* Device d's pick: among its stages' next ops, the one its rule ranks first
 * at the earliest time it could start something.  False if none is
 * legal now (its inputs not done, its cap or the memory limit reached). */
static bool pick_op(const lsched *L, int d, int *pick_s, int *pick_k, double *pick_t)
{
    const pp_spec *s = L->s;
    int S = s->stages, M = s->microbatches;
    const pp_cost *c = &s->cost;
    double best_rank = INFINITY;
    *pick_s = *pick_k = -1;
    *pick_t = INFINITY;
    for (int st = 0; st < S; st++) {
        if (s->placement[st] != d)
            continue;
        for (int k = 0; k < (L->split ? 3 : 2); k++) {
            int m = L->next[st * 3 + k];
            if (m >= M)
                continue;
            double r;
            long i = (long)st * M + m;
            bool rec = s->recompute && s->recompute[st];
            if (k == 0) {
                if (L->live[d] >= L->cap[d] || over_after(&L->held[d], PP_OP_F, st, rec, L->split, &L->mem))
                    continue;
                if (st == 0)
                    r = 0;
                else if (L->endF[i - M] < 0)
                    continue;
                else
                    r = L->endF[i - M] + (s->placement[st - 1] != d ? c->comm : 0);
            } else if (k == 1) {
                if (L->endF[i] < 0 || (rec && over_after(&L->held[d], PP_OP_R, st, rec, L->split, &L->mem)))
                    continue;
                r = L->endF[i];
                if (st + 1 < S) {
                    if (L->endB[i + M] < 0)
                        continue;
                    double g = L->endB[i + M] + (s->placement[st + 1] != d ? c->comm : 0);
                    r = g > r ? g : r;
                }
            } else {
                if (L->next[st * 3 + 1] <= m)
                    continue;
                r = L->endB[i];
            }
            double t = r > L->tdev[d] ? r : L->tdev[d];
            /* Rank: kind by the rule, then the stage preference. */
            int kr;
            if (k == 2)
                kr = L->pending[d] >= L->v.defer ? 0 : 3;
            else if (k == 0)
                kr = L->v.f_first ? 1 : 2;
            else
                kr = L->v.f_first ? 2 : 1;
            double rank = kr * 1e9 + (k == 0 && L->v.depth ? -st : 0) * 1e5 + m;
            if (t < *pick_t - 1e-12 || (t < *pick_t + 1e-12 && rank < best_rank)) {
                *pick_t = t;
                best_rank = rank;
                *pick_s = st;
                *pick_k = k;
            }
        }
    }
    return *pick_s >= 0;
}

/* Runs op kind k (0 F, 1 B with its R, 2 W) of stage st on device d from
 * time t: its end, and what the device holds and owes after it. */
static double run_op(lsched *L, int d, int st, int k, double t, order *o)
{
    const pp_spec *s = L->s;
    int m = L->next[st * 3 + k]++;
    long i = (long)st * s->microbatches + m;
    int kind = k == 0 ? PP_OP_F : k == 1 ? PP_OP_B : PP_OP_W;
    bool rec = s->recompute && s->recompute[st];
    double dur = pp_op_cost(&s->cost, kind, st, L->split);
    if (kind == PP_OP_B && rec) { /* its R runs right before it */
        dur += pp_op_cost(&s->cost, PP_OP_R, st, L->split);
        pp_mem_step(&L->held[d], &(pp_op){.kind = PP_OP_R, .stage = st}, rec, L->split, &L->mem);
    }
    pp_mem_step(&L->held[d], &(pp_op){.kind = (uint8_t)kind, .stage = st}, rec, L->split, &L->mem);
    if (k == 0) {
        L->live[d]++;
    } else if (k == 1) {
        if (L->split)
            L->pending[d]++;
        else
            L->live[d]--;
    } else {
        L->pending[d]--;
        L->live[d]--;
    }
    double end = t + dur;
    if (k == 0)
        L->endF[i] = end;
    else if (k == 1)
        L->endB[i] = end;
    L->tdev[d] = end;
    o->ops[d][o->n[d]++] = (pp_op){.kind = (uint8_t)kind, .stage = st, .mb = m, .peer = -1, .group = -1};
    return end;
}

/* Greedy list schedule of variant v into o; returns its makespan on the
 * scheduler's own model (comm added to every cross-device dependency; a
 * recomputing stage's B preceded by its R, as pp_policy_run will insert
 * it), or INFINITY if it stalls (the memory limit leaves no legal op). */
static double list_schedule(const pp_spec *s, bool split, variant v, order *o)
{
    int D = s->devices, S = s->stages, M = s->microbatches, V = s->chunks;
    long SM = (long)S * M;
    lsched L = {.s = s, .split = split, .v = v, .mem = pp_verify_opts_of(s, true)};
    L.endF = pp_xcalloc((size_t)SM, sizeof *L.endF, "auto's list schedule");
    L.endB = pp_xcalloc((size_t)SM, sizeof *L.endB, "auto's list schedule");
    L.next = pp_xcalloc((size_t)S * 3, sizeof *L.next, "auto's list schedule");
    L.tdev = pp_xcalloc((size_t)D, sizeof *L.tdev, "auto's list schedule");
    L.live = pp_xcalloc((size_t)D, sizeof *L.live, "auto's list schedule");
    L.pending = pp_xcalloc((size_t)D, sizeof *L.pending, "auto's list schedule");
    L.cap = pp_xcalloc((size_t)D, sizeof *L.cap, "auto's list schedule");
    L.held = pp_xcalloc((size_t)D, sizeof *L.held, "auto's list schedule");
    for (long i = 0; i < SM; i++)
        L.endF[i] = L.endB[i] = -1;
    for (int d = 0; d < D; d++) {
        L.held[d] = pp_mem_begin(&L.mem, d);
        L.cap[d] = v.cap_kind == 1 ? V * (D - d) : v.cap_kind == 2 ? V * (2 * (D - d) - 1) : v.cap_kind == 3 ? V * D : M * V;
        o->n[d] = 0;
    }
    o->split = split;
    long left = SM * (split ? 3 : 2);
    double makespan = 0;
    while (left > 0) {
        /* The device that can start its pick first goes. */
        int best_d = -1, best_s = -1, best_k = -1;
        double best_t = INFINITY;
        for (int d = 0; d < D; d++) {
            int pick_s, pick_k;
            double pick_t;
            if (pick_op(&L, d, &pick_s, &pick_k, &pick_t) && pick_t < best_t) {
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
        double end = run_op(&L, best_d, best_s, best_k, best_t, o);
        makespan = end > makespan ? end : makespan;
        left--;
    }
    free(L.endF);
    free(L.endB);
    free(L.next);
    free(L.tdev);
    free(L.live);
    free(L.pending);
    free(L.cap);
    free(L.held);
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

/* The search's state: the best order so far, its makespan and (for ties)
 * its peak memory, and a candidate's room. */
typedef struct search {
    const pp_spec *s;
    pp_auto_report *rep;
    int per_device; /* room of a device's list in an order */
    order best, cand;
    double best_ms, best_peak;
} search;

/* o, judged at ms with peak memory peak, becomes the best if it is faster
 * (ties go to the smaller peak memory). */
static bool keep_if_best(search *x, const order *o, double ms, double peak)
{
    if (!(ms < x->best_ms - 1e-9 || (ms < x->best_ms + 1e-9 && peak < x->best_peak)))
        return false;
    x->best_ms = ms;
    x->best_peak = peak;
    order_copy(&x->best, o, x->per_device);
    return true;
}

/* 1. Named policies on this very spec. */
static void try_named(search *x)
{
    const pp_spec *s = x->s;
    pp_auto_report *rep = x->rep;
    double peak = 0;
    for (const pp_policy *const *pp = pp_policy_all(); *pp; pp++) {
        const pp_policy *pol = *pp;
        /* custom replays the file's own order: not a candidate to search over;
         * nor are the asynchronous ones, which train differently (docs/async.md),
         * nor a mirrored one, whose stages are another split of the model. */
        if (strcmp(pol->name, "auto") == 0 || strcmp(pol->name, "custom") == 0 || pol->async != PP_ASYNC_NONE ||
            pol->mirrored ||
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
            order_from_plan(&x->cand, &p, x->per_device);
            pp_plan_free(&p);
            row->makespan = evaluate(s, &x->cand, true, &peak);
            row->ran = true;
            if (row->makespan < rep->best_named) {
                rep->best_named = row->makespan;
                snprintf(rep->best_named_name, sizeof rep->best_named_name, "%s", pol->name);
            }
            if (keep_if_best(x, &x->cand, row->makespan, peak))
                snprintf(rep->source, sizeof rep->source, "%s", pol->name);
        }
        pp_diag_buffer_close(&q);
    }
}

/* 2. List schedules: time every variant with the scheduler's model,
 * judge the best few properly. */
static void try_lists(search *x)
{
    const pp_spec *s = x->s;
    pp_auto_report *rep = x->rep;
    int D = s->devices, M = s->microbatches;
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
                        order_free(&x->cand);
                        order_alloc(&x->cand, D, x->per_device);
                        double ms = list_schedule(s, split, v, &x->cand);
                        rep->list_tried++;
                        int worst = 0;
                        for (int i = 1; i < TOP; i++)
                            if (top_ms[i] > top_ms[worst])
                                worst = i;
                        if (ms < top_ms[worst]) {
                            order_copy(&top[worst], &x->cand, x->per_device);
                            top_ms[worst] = ms;
                            top_v[worst] = v;
                        }
                    }
    rep->best_list = INFINITY;
    double peak = 0;
    for (int i = 0; i < TOP; i++) {
        if (!isfinite(top_ms[i]))
            continue;
        double ms = evaluate(s, &top[i], true, &peak);
        rep->evaluations++;
        if (ms < rep->best_list)
            rep->best_list = ms;
        if (keep_if_best(x, &top[i], ms, peak))
            snprintf(rep->source, sizeof rep->source, "list(%s, defer %d, cap %d, %s)",
                     top_v[i].f_first ? "F>B" : "B>F", top_v[i].defer > M * s->chunks ? -1 : top_v[i].defer,
                     top_v[i].cap_kind, top_v[i].depth ? "depth" : "breadth");
    }
    for (int i = 0; i < TOP; i++)
        order_free(&top[i]);
}

/* 3. Local search: bounded by ops, so big shapes stay fast. */
static void local_search(search *x)
{
    int D = x->s->devices;
    long total = 0;
    for (int d = 0; d < D; d++)
        total += x->best.n[d];
    long budget = total > 0 ? 300000 / total : 0;
    budget = budget > 400 ? 400 : budget < 8 ? 8 : budget;
    if (total > 20000)
        budget = 0;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (long e = 0; e < budget; e++) {
        int d = (int)(rng_next(&seed) % (uint64_t)D);
        if (x->best.n[d] < 2)
            continue;
        int i = (int)(rng_next(&seed) % (uint64_t)x->best.n[d]);
        int delta = (int)(rng_next(&seed) % 8) - 4;
        delta += delta >= 0;
        order_copy(&x->cand, &x->best, x->per_device);
        if (!try_move(&x->cand, d, i, i + delta))
            continue;
        double ms = evaluate(x->s, &x->cand, true, NULL);
        x->rep->evaluations++;
        if (ms < x->best_ms - 1e-9) {
            x->best_ms = ms;
            order_copy(&x->best, &x->cand, x->per_device);
            x->rep->moves++;
        }
    }
}

int pp_auto_search(const pp_spec *s, pp_plan *out, pp_auto_report *rep, pp_diag *dg)
{
    memset(rep, 0, sizeof *rep);
    int D = s->devices, M = s->microbatches;
    search x = {.s = s, .rep = rep, .best_ms = INFINITY, .best_peak = INFINITY};
    for (int d = 0; d < D; d++) {
        int owned = 0;
        for (int st = 0; st < s->stages; st++)
            owned += s->placement[st] == d;
        x.per_device = owned > x.per_device ? owned : x.per_device;
    }
    x.per_device = x.per_device * M * 3 + 4;
    rep->best_named = INFINITY;
    try_named(&x);
    try_lists(&x);
    if (!isfinite(x.best_ms)) {
        order_free(&x.cand);
        order_free(&x.best);
        pp_error(dg, "auto: no schedule of %d devices x %d micro-batches fits the memory limit %g", D, M,
                 s->mem_limit);
        return 1;
    }
    rep->start = x.best_ms;
    local_search(&x);
    rep->makespan = x.best_ms;
    order_to_plan(&x.best, out);
    order_free(&x.cand);
    order_free(&x.best);
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
