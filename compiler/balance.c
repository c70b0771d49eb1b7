/*
 * balance.c — `model.balance = auto` (docs/costs.md): the split of the
 * layers over the stages with the smallest simulated makespan of the
 * file's policy under its memory limit.
 *
 * Each split tried is compiled as ppcc compiles it (the policy, lowering,
 * the verifier, the simulator, on the stage sums of layers.c), so the
 * makespan the search reports is that of the plan ppcc writes.  Splits are
 * ranked by how far their largest device is over memory.limit (0 when they
 * fit), then by makespan; the even split is always tried, so the answer is
 * never worse than it.
 *
 *   1. Starts: the even split, the min-max dynamic programme over prefix
 *      sums of each layer's F + B + W (layers.c), the greedy prefix on
 *      compute and the parameters rule.
 *   2. When every contiguous split fits in the evaluation budget (small
 *      models), all of them are compiled instead: the answer is the best
 *      there is.
 *   3. Otherwise, from the best start, boundary moves: the last layer of a
 *      stage to the next one or the reverse, by steps halving from half a
 *      stage's layers to one, kept when they improve, until none does;
 *      then one layer from any stage to any other (the stages between
 *      keep their sizes, their layers shift), until none improves or the
 *      budget is spent.  The schedule decides which imbalance hurts:
 *      the first stage of 1F1B holds the most activations, a V shape puts
 *      the first and last stage on one device, and so on.
 *
 * The budget counts plan ops compiled (BUDGET_OPS), so the search takes
 * about the same time whatever the shape (a plan too large for it gets the
 * even split and the DP's only).  Under `schedule auto`, whose
 * every compilation is a search itself, the moves are judged on the order
 * auto found for the best start (the order fixed, the costs of each split),
 * and auto compiles the result again; the better of that and the best
 * start is the answer.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

/* About half a second of compilation on the machines of docs/bench.md. */
#define BUDGET_OPS 3e6
/* auto compiles this many candidates per compilation, roughly (docs/auto.md). */
#define AUTO_FACTOR 100

typedef struct score {
    double excess;   /* the largest device's memory over the limit (0: fits; INFINITY: did not compile) */
    double makespan; /* INFINITY: did not compile */
    double peak;     /* the largest device's peak memory */
    int peak_device;
} score;

static bool better(score a, score b)
{
    if (a.excess != b.excess)
        return a.excess < b.excess;
    return a.makespan < b.makespan * (1 - 1e-12);
}

typedef struct search {
    pp_spec *s;
    int S, n;
    const pp_plan *fixed; /* auto: the order the moves are judged on, or NULL */
    long evaluations, budget;
} search;

/* A copy of a compute order (ops as the policy left them). */
static int copy_plan(const pp_plan *from, pp_plan *to)
{
    if (pp_plan_init(to, from->schedule, from->devices, from->stages, from->microbatches, from->placement))
        return 1;
    to->split_backward = from->split_backward;
    to->async = from->async;
    to->vertical_sync = from->vertical_sync;
    to->order = from->order;
    for (int c = 0; c < from->ncoll; c++)
        if (pp_plan_coll(to, from->coll[c].what, from->coll[c].ranks, from->coll[c].nranks, from->coll[c].bytes) != c) {
            pp_plan_free(to);
            return 1;
        }
    for (int d = 0; d < from->devices; d++) {
        pp_plan_reserve(to, d, from->dev[d].n);
        for (int i = 0; i < from->dev[d].n; i++)
            pp_plan_push(to, d, from->dev[d].ops[i]);
    }
    return 0;
}

/* Compiles split (or, with fixed, that order) on the spec's layers. */
static score evaluate(search *q, const int *split, const pp_plan *fixed)
{
    pp_spec *s = q->s;
    pp_spec_set_split(s, split);
    q->evaluations++;
    score r = {INFINITY, INFINITY, 0, -1};
    pp_diag_buffer b;
    pp_diag_buffer_open(&b, "ppcc");
    pp_plan p = {0};
    pp_sim sim;
    int rc = fixed ? copy_plan(fixed, &p) : pp_policy_run(s, &p, &b.diag);
    if (rc == 0 && pp_lower_verify_simulate(&p, s, false, &sim, &b.diag) == 0) {
        r.makespan = sim.makespan;
        r.excess = 0;
        for (int d = 0; d < s->devices; d++) {
            if (sim.peak_mem[d] > r.peak || r.peak_device < 0) {
                r.peak = sim.peak_mem[d];
                r.peak_device = d;
            }
        }
        if (pp_mem_over(r.peak, s->mem_limit))
            r.excess = r.peak - s->mem_limit;
        pp_sim_free(&sim, s->devices);
    }
    pp_plan_free(&p);
    pp_diag_buffer_close(&b);
    return r;
}

/* C(n - 1, S - 1), the number of contiguous splits, capped. */
static double splits_count(int n, int S)
{
    double c = 1;
    for (int i = 1; i < S && c < 1e18; i++)
        c = c * (n - S + i) / i;
    return c;
}

/* Every contiguous split, in order of its cuts. */
static void exhaustive(search *q, int *best, score *best_score)
{
    int S = q->S, n = q->n;
    int *cut = pp_xcalloc((size_t)S + 1, sizeof *cut, "the balance search");
    int *split = pp_xcalloc((size_t)S, sizeof *split, "the balance search");
    for (int k = 0; k <= S - 1; k++)
        cut[k] = k; /* cut[k]: first layer of stage k */
    cut[S] = n;
    for (;;) {
        for (int k = 0; k < S; k++)
            split[k] = cut[k + 1] - cut[k];
        score r = evaluate(q, split, NULL);
        if (better(r, *best_score)) {
            *best_score = r;
            memcpy(best, split, (size_t)S * sizeof *best);
        }
        /* next: the last cut that can move right moves, those after it follow */
        int k = S - 1;
        while (k >= 1 && cut[k] >= n - (S - k))
            k--;
        if (k < 1)
            break;
        cut[k]++;
        for (int j = k + 1; j < S; j++)
            cut[j] = cut[j - 1] + 1;
    }
    free(cut);
    free(split);
}

/* Boundary moves from best, judged as evaluate judges (fixed: on that order). */
static void local_search(search *q, int *best, score *best_score, const pp_plan *fixed)
{
    int S = q->S;
    int *t = pp_xcalloc((size_t)S, sizeof *t, "the balance search");
    int step = q->n / S / 2 > 1 ? q->n / S / 2 : 1;
    for (; step >= 1 && q->evaluations < q->budget; step /= 2) {
        bool improved = true;
        while (improved && q->evaluations < q->budget) {
            improved = false;
            for (int k = 0; k + 1 < S && q->evaluations < q->budget; k++)
                for (int dir = -1; dir <= 1 && q->evaluations < q->budget; dir += 2) {
                    /* dir +1: stage k gives its last `step` layers to stage k + 1 */
                    int from = dir > 0 ? k : k + 1, to = dir > 0 ? k + 1 : k;
                    if (best[from] - step < 1)
                        continue;
                    memcpy(t, best, (size_t)S * sizeof *t);
                    t[from] -= step;
                    t[to] += step;
                    score r = evaluate(q, t, fixed);
                    if (better(r, *best_score)) {
                        *best_score = r;
                        memcpy(best, t, (size_t)S * sizeof *best);
                        improved = true;
                    }
                }
        }
    }
    /* then a layer from any stage to any other: the boundaries between
     * them all shift by one (the stages in between keep their sizes) */
    bool improved = true;
    while (improved && q->evaluations < q->budget) {
        improved = false;
        for (int from = 0; from < S && q->evaluations < q->budget; from++)
            for (int to = 0; to < S && q->evaluations < q->budget; to++) {
                if (to == from || (to - from == 1 || from - to == 1) || best[from] < 2)
                    continue; /* neighbours: the moves above */
                memcpy(t, best, (size_t)S * sizeof *t);
                t[from]--;
                t[to]++;
                score r = evaluate(q, t, fixed);
                if (better(r, *best_score)) {
                    *best_score = r;
                    memcpy(best, t, (size_t)S * sizeof *best);
                    improved = true;
                }
            }
        /* a round of neighbour moves again after any change */
        for (int k = 0; improved && k + 1 < S && q->evaluations < q->budget; k++)
            for (int dir = -1; dir <= 1 && q->evaluations < q->budget; dir += 2) {
                int from = dir > 0 ? k : k + 1, to = dir > 0 ? k + 1 : k;
                if (best[from] < 2)
                    continue;
                memcpy(t, best, (size_t)S * sizeof *t);
                t[from]--;
                t[to]++;
                score r = evaluate(q, t, fixed);
                if (better(r, *best_score)) {
                    *best_score = r;
                    memcpy(best, t, (size_t)S * sizeof *best);
                }
            }
    }
    free(t);
}

/* The stage with the most compute per micro-batch under split. */
static int bottleneck(const pp_spec *s, double *time)
{
    int b = 0;
    *time = -1;
    for (int st = 0; st < s->stages; st++) {
        double t = s->cost.stage_F[st] + s->cost.stage_B[st] + s->cost.stage_W[st];
        if (t > *time) {
            *time = t;
            b = st;
        }
    }
    return b;
}

/* "the 8 layers", or a gpt's "the 14 layers (12 blocks, the embedding and the head)". */
static void describe_layers(const pp_spec *s, char *buf, size_t size)
{
    if (s->layer_ends)
        snprintf(buf, size, "the %d layers (%d blocks, the embedding and the head)", s->n_layers, s->n_layers - 2);
    else
        snprintf(buf, size, "the %d layers", s->n_layers);
}

int pp_balance_auto(pp_spec *s, pp_balance_report *rep, pp_diag *d)
{
    memset(rep, 0, sizeof *rep);
    int S = s->stages, n = s->n_layers;
    if (!s->layers || s->model.balance != PP_BALANCE_AUTO || n < S)
        return 0;
    bool is_auto = !strcmp(s->schedule, "auto");
    long ops = (long)S * s->microbatches * 3 * 2 + 2L * s->devices; /* compute and comm, roughly */
    search q = {s, S, n, NULL, 0, 0};
    /* a plan too large for even the four starts gets two: the even split and the DP's */
    q.budget = (long)(BUDGET_OPS / ((double)ops * (is_auto ? AUTO_FACTOR : 1)));
    if (q.budget < 2)
        q.budget = 2;

    /* A layer whose weights alone are over the limit fits no split. */
    char what[96];
    describe_layers(s, what, sizeof what);
    for (int l = 0; s->mem_limit > 0 && l < n; l++)
        if (pp_mem_over(s->layers[l].weights, s->mem_limit)) {
            char weights[32], limit[32];
            pp_mem_show(&s->units, s->layers[l].weights, weights, sizeof weights);
            pp_mem_show(&s->units, s->mem_limit, limit, sizeof limit);
            pp_error(d, "model.balance = auto: layer %d (%s) alone holds %s of weights, over memory.limit = %s: no "
                        "split of %s over %d stages fits",
                     l, s->layers[l].kind, weights, limit, what, S);
            return 1;
        }

    int *best = pp_xcalloc((size_t)S, sizeof *best, "the balance search");
    int *start = pp_xcalloc((size_t)S, sizeof *start, "the balance search");
    double *w = pp_xcalloc((size_t)n, sizeof *w, "the balance search");
    for (int l = 0; l < n; l++)
        w[l] = pp_layer_time(&s->layers[l]);

    /* the even split first: the reference, and the winner of ties */
    pp_spec_even_split(s, best);
    score best_score = evaluate(&q, best, NULL), even = best_score;
    snprintf(rep->start, sizeof rep->start, "even");
    double total = splits_count(n, S);
    bool all = total <= (double)(q.budget - q.evaluations);
    static const char *const names[] = {"dp", "compute", "parameters"};
    for (int k = 0; k < 3 && !all && q.evaluations < q.budget; k++) {
        if (k == 0)
            pp_split_minmax(w, n, S, start);
        else
            pp_balance_split(k == 1 ? PP_BALANCE_COMPUTE : PP_BALANCE_PARAMETERS, s->layers, n, S, start);
        score r = evaluate(&q, start, NULL);
        if (better(r, best_score)) {
            best_score = r;
            memcpy(best, start, (size_t)S * sizeof *best);
            snprintf(rep->start, sizeof rep->start, "%s", names[k]);
        }
    }
    if (all) {
        rep->exhaustive = true;
        exhaustive(&q, best, &best_score);
    }
    if (!isfinite(best_score.excess)) {
        /* nothing compiles (the policy refuses the shape, or auto finds no
         * order under the limit): the even split, and pp_compile's error */
        pp_spec_even_split(s, best);
        pp_spec_set_split(s, best);
        free(best);
        free(start);
        free(w);
        return 0;
    }
    if (all) {
        /* done */
    } else if (!is_auto) {
        local_search(&q, best, &best_score, NULL);
    } else {
        /* judged on auto's order for the best start, then auto again */
        pp_plan fixed = {0};
        pp_diag_buffer b;
        pp_diag_buffer_open(&b, "ppcc");
        pp_spec_set_split(s, best);
        if (pp_policy_run(s, &fixed, &b.diag) == 0) {
            int *moved = pp_xcalloc((size_t)S, sizeof *moved, "the balance search");
            memcpy(moved, best, (size_t)S * sizeof *best);
            score proxy = evaluate(&q, moved, &fixed);
            q.budget = q.evaluations + (long)(BUDGET_OPS / (double)ops) + 1;
            local_search(&q, moved, &proxy, &fixed);
            score r = evaluate(&q, moved, NULL);
            if (better(r, best_score)) {
                best_score = r;
                memcpy(best, moved, (size_t)S * sizeof *best);
            }
            free(moved);
        }
        pp_plan_free(&fixed);
        pp_diag_buffer_close(&b);
    }

    pp_spec_set_split(s, best);
    rep->makespan = best_score.makespan;
    rep->even_makespan = even.excess == 0 ? even.makespan : INFINITY;
    rep->evaluations = (int)q.evaluations;
    rep->splits = total;
    rep->bottleneck = bottleneck(s, &rep->bottleneck_time);
    int rc = 0;
    s->balance_found = best_score.excess == 0;
    if (best_score.excess > 0) {
        char list[200];
        size_t at = 0;
        for (int st = 0; st < S && at + 16 < sizeof list; st++)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%d", st ? "," : "", s->model.layers_per_stage[st]);
        if (at + 16 >= sizeof list)
            snprintf(list + at, sizeof list - at, ",...");
        char limit[32], peak[32];
        pp_mem_show(&s->units, s->mem_limit, limit, sizeof limit);
        pp_mem_show(&s->units, best_score.peak, peak, sizeof peak);
        pp_error(d, "model.balance = auto: %s of %s over %d stages fits memory.limit = %s under schedule %s "
                    "(%d compiled): the closest, balance [%s], peaks at %s on device %d",
                 rep->exhaustive ? "no split" : "no split tried", what, S, limit, s->schedule, rep->evaluations,
                 list, peak, best_score.peak_device);
        rc = 1;
    }
    free(best);
    free(start);
    free(w);
    return rc;
}

void pp_balance_print(FILE *f, const pp_spec *s, const pp_balance_report *r)
{
    char a[32], b[32];
    fprintf(f, "balance auto: [");
    for (int st = 0; st < s->stages; st++)
        fprintf(f, "%s%d", st ? "," : "", s->model.layers_per_stage[st]);
    fprintf(f, "] makespan %s", pp_time_show(&s->units, r->makespan, a, sizeof a));
    if (isfinite(r->even_makespan))
        fprintf(f, " against %s for the even split (%+.1f%%)", pp_time_show(&s->units, r->even_makespan, b, sizeof b),
                r->even_makespan > 0 ? 100 * (r->makespan - r->even_makespan) / r->even_makespan : 0);
    else
        fprintf(f, " (the even split does not fit)");
    int st = r->bottleneck, l = s->model.layers_per_stage[st];
    const char *unit = s->layer_ends ? "block" : "layer";
    const char *ends = !s->layer_ends                            ? ""
                       : st == 0 && st == s->stages - 1          ? " and the embedding and the head"
                       : st == 0                                 ? " and the embedding"
                       : st == s->stages - 1                     ? " and the head"
                                                                 : "";
    fprintf(f, "\nbalance auto: bottleneck stage %d (%d %s%s%s, F+B+W %s per micro-batch); %d split%s compiled", st,
            l, unit, l == 1 ? "" : "s", ends, pp_time_show(&s->units, r->bottleneck_time, a, sizeof a), r->evaluations,
            r->evaluations == 1 ? "" : "s");
    if (r->exhaustive)
        fprintf(f, ": every contiguous split\n");
    else
        fprintf(f, ", moves from the %s split\n", r->start);
}
