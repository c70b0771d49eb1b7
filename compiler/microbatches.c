/*
 * microbatches.c — how many micro-batches (docs/costs.md): `ppcc FILE
 * --sweep microbatches=A..B`, one row per value, and `microbatches =
 * auto`, which picks the row the sweep shows best.
 *
 * A row holds the file's global batch (model.batch) and splits it into M
 * micro-batches: each is reference / M of the micro-batch the file's
 * costs and activations describe (microbatches.reference: the file's own
 * microbatches, or 1 with microbatches = auto), so compute and activation
 * memory per micro-batch scale by reference / M while a transfer's
 * cost.comm (a latency) and the static memory stay.  The row is the
 * compilation of the file with three settings it prints, `-D
 * microbatches=M -D microbatches.reference=R -D model.batch=N`, through
 * the policy and every pass (the limit judged as --compare judges it;
 * with balance = auto, the row's own split searched first), so `ppcc FILE
 * SETTINGS --stats` gives its numbers.
 *
 * microbatches = auto takes, over M = 1 .. microbatches.max (64) whose
 * rows compile and fit memory.limit: with microbatches.bubble = t, the
 * smallest M whose bubble is at most t (for 1F1B or GPipe on uniform
 * costs, M >= (S - 1)(1/t - 1), the tutorials' rule); without, the M of
 * the highest throughput (batch / makespan), the smaller M on a tie.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

/* defs, then -D microbatches=M -D microbatches.reference=R -D model.batch=N:
 * one heap block (the values after the defines), freed by the caller. */
pp_define *pp_microbatch_defs(const pp_define *defs, int ndefs, const pp_spec *s, int M, int *n)
{
    enum { VALUE = 24 };
    pp_define *out = pp_xcalloc(1, ((size_t)ndefs + 3) * sizeof *out + 3 * VALUE, "the micro-batch settings");
    char *values = (char *)(out + ndefs + 3);
    if (ndefs > 0) /* defs may be NULL then */
        memcpy(out, defs, (size_t)ndefs * sizeof *defs);
    snprintf(values, VALUE, "%d", M);
    snprintf(values + VALUE, VALUE, "%d", s->mb_reference);
    snprintf(values + 2 * VALUE, VALUE, "%d", s->model.batch);
    out[ndefs] = (pp_define){"microbatches", values};
    out[ndefs + 1] = (pp_define){"microbatches.reference", values + VALUE};
    out[ndefs + 2] = (pp_define){"model.batch", values + 2 * VALUE};
    *n = ndefs + 3;
    return out;
}

long pp_sweep_budget(void)
{
    long test = pp_test_sweep_ops ? pp_test_sweep_ops() : 0;
    return test > 0 ? test : PP_MAX_SWEEP_OPS;
}

/* The first error line of a captured diag, without its "...error: ". */
static void first_error(const char *text, char *out, size_t size)
{
    const char *p = text ? strstr(text, "error: ") : NULL;
    p = p ? p + 7 : (text && *text ? text : "failed");
    size_t n = strcspn(p, "\n");
    snprintf(out, size, "%.*s", (int)n, p);
}

void pp_microbatch_row(const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s, int M, pp_mb_row *r)
{
    memset(r, 0, sizeof *r);
    r->microbatches = M;
    int nall;
    pp_define *all = pp_microbatch_defs(defs, ndefs, s, M, &nall);
    pp_diag_buffer q;
    pp_diag_buffer_open(&q, "ppcc");
    pp_arena a = {0};
    pp_spec t;
    pp_plan p = {0};
    pp_sim sim;
    int built = pp_spec_build(ast, all, nall, &a, &q.diag, &t);
    if (built == 0 && t.layers && t.model.balance == PP_BALANCE_AUTO) {
        /* the row's own split, as ppcc compiles it (the closest when none fits) */
        pp_balance_report rep;
        pp_balance_auto(&t, &rep, &q.diag);
        size_t at = (size_t)snprintf(r->balance, sizeof r->balance, "-D model.balance=[");
        for (int st = 0; st < t.stages && at + 16 < sizeof r->balance; st++)
            at += (size_t)snprintf(r->balance + at, sizeof r->balance - at, "%s%d", st ? "," : "",
                                   t.model.layers_per_stage[st]);
        if (at + 16 < sizeof r->balance)
            snprintf(r->balance + at, sizeof r->balance - at, "]");
        else
            r->balance[0] = '\0'; /* too many stages to print: no column */
    }
    int ran = built == 0 ? pp_policy_run(&t, &p, &q.diag) : 1;
    if (ran == 0 && pp_lower_verify_simulate(&p, &t, false, &sim, &q.diag) == 0) {
        r->ok = true;
        r->fits = true;
        r->makespan = sim.makespan;
        r->bubble = sim.bubble;
        r->throughput = sim.makespan > 0 ? t.model.batch / sim.makespan : INFINITY;
        for (int d = 0; d < t.devices; d++) {
            r->peak = sim.peak_mem[d] > r->peak ? sim.peak_mem[d] : r->peak;
            r->fits = r->fits && !pp_mem_over(sim.peak_mem[d], t.mem_limit);
        }
        pp_sim_free(&sim, t.devices);
    }
    if (ran == 0)
        r->ops = pp_plan_total_ops(&p); /* with its transfers once lowered */
    pp_plan_free(&p);
    if (!r->ok) {
        fflush(q.diag.out);
        first_error(q.text, r->reason, sizeof r->reason);
    }
    pp_arena_free(&a);
    pp_diag_buffer_close(&q);
    free(all);
}

/* The pick among rows[n]: see the opening comment; -1 when none qualifies. */
static int pick(const pp_mb_row *rows, int n, double bubble)
{
    int best = -1;
    for (int i = 0; i < n; i++) {
        const pp_mb_row *r = &rows[i];
        if (!r->ok || !r->fits)
            continue;
        if (bubble > 0) {
            if (r->bubble <= bubble * (1 + 1e-12) && (best < 0 || r->microbatches < rows[best].microbatches))
                best = i;
        } else if (best < 0 || r->throughput > rows[best].throughput * (1 + 1e-12) ||
                   (r->throughput >= rows[best].throughput * (1 - 1e-12) &&
                    r->microbatches < rows[best].microbatches)) {
            best = i;
        }
    }
    return best;
}

static void print_row(FILE *out, const pp_view_units *u, const pp_mb_row *r, bool best)
{
    if (!r->ok) {
        fprintf(out, "%12d  cannot run: %s\n", r->microbatches, r->reason);
        return;
    }
    char line[800], makespan[32], peak[32];
    int n = snprintf(line, sizeof line, "%12d %10s %7.2f%% %11.6g %11s  %-3s  %-6s  %s", r->microbatches,
                     pp_time_show(u, r->makespan, makespan, sizeof makespan), 100 * r->bubble, r->throughput,
                     pp_mem_show(u, r->peak, peak, sizeof peak), r->fits ? "yes" : "no", best ? "<-best" : "",
                     r->balance);
    if (n >= (int)sizeof line)
        n = (int)sizeof line - 1;
    while (n > 0 && line[n - 1] == ' ') /* no trailing blanks */
        line[--n] = '\0';
    fprintf(out, "%s\n", line);
}

static void print_header(FILE *out, const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s)
{
    fprintf(out, "sweep: %s, %d devices, %d stages, global batch %d, memory limit ", s->schedule, s->devices,
            s->stages, s->model.batch);
    char limit[32];
    fprintf(out, "%s\n", s->mem_limit > 0 ? pp_mem_show(&s->units, s->mem_limit, limit, sizeof limit) : "none");
    fprintf(out, "each row is what `ppcc %s", ast->src.path);
    for (int i = 0; i < ndefs; i++)
        fprintf(out, " -D %s=%s", defs[i].name, defs[i].value);
    fprintf(out, " -D microbatches=M -D microbatches.reference=%d -D model.batch=%d` compiles:\n",
            s->mb_reference, s->model.batch);
    if (s->seconds) /* a gpt on hardware: its layers are derived for each M's micro-batch (docs/gpt.md) */
        fprintf(out, "a micro-batch is %d/M sequences, its costs and activations derived for that size; throughput\n"
                     "is sequences per second; peak memory is the largest device's\n",
                s->model.batch);
    else
        fprintf(out, "a micro-batch is %d/M of the one the file's costs and activations are for; throughput is\n"
                     "samples (batch rows) per unit of time; peak memory is the largest device's\n",
                s->mb_reference);
    if (s->layers && s->model.balance == PP_BALANCE_AUTO)
        fprintf(out, "%12s %10s %8s %11s %11s  %-3s  %-6s  %s\n", "microbatches", "makespan", "bubble", "throughput",
                "peak memory", "fits", "", "the row's split (balance = auto)");
    else
        fprintf(out, "%12s %10s %8s %11s %11s  %s\n", "microbatches", "makespan", "bubble", "throughput",
                "peak memory", "fits");
}

int pp_sweep(FILE *out, const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s, const int *values,
             int n, pp_diag *d)
{
    pp_mb_row *rows = pp_xcalloc((size_t)n, sizeof *rows, "the sweep");
    long ops = 0;
    for (int i = 0; i < n; i++) {
        pp_microbatch_row(ast, defs, ndefs, s, values[i], &rows[i]);
        ops += rows[i].ops;
        if (ops > pp_sweep_budget() && i + 1 < n) {
            pp_error(d, "--sweep: the rows up to microbatches=%d compiled %ld ops, past the %ld one sweep may "
                        "(the most ppcc compiles in one plan); sweep fewer or smaller values",
                     values[i], ops, pp_sweep_budget());
            free(rows);
            return 1;
        }
    }
    int best = pick(rows, n, s->mb_bubble);
    print_header(out, ast, defs, ndefs, s);
    for (int i = 0; i < n; i++)
        print_row(out, &s->units, &rows[i], i == best);
    if (best < 0)
        fprintf(out, "no row %s\n", s->mb_bubble > 0 ? "fits with a bubble within microbatches.bubble" : "fits");
    else if (s->mb_bubble > 0)
        fprintf(out, "best: the fewest micro-batches with a bubble of at most %.4g%%: %d\n", 100 * s->mb_bubble,
                rows[best].microbatches);
    else
        fprintf(out, "best: the highest throughput that fits: %d micro-batches\n", rows[best].microbatches);
    free(rows);
    return 0;
}

int pp_microbatch_choose(const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s, int *chosen,
                         pp_diag *d)
{
    int n = s->mb_max;
    long ops = 0;
    pp_mb_row *rows = pp_xcalloc((size_t)n, sizeof *rows, "microbatches = auto");
    for (int i = 0; i < n; i++) {
        if (s->model.batch % ((long)(i + 1) * s->data_parallel) != 0) { /* no row: the batch does not split */
            rows[i] = (pp_mb_row){.microbatches = i + 1};
            continue;
        }
        pp_microbatch_row(ast, defs, ndefs, s, i + 1, &rows[i]);
        ops += rows[i].ops;
        if (ops > pp_sweep_budget() && i + 1 < n) {
            pp_error(d, "microbatches = auto: M = 1 to %d compiled %ld ops, past the %ld one search may (the "
                        "most ppcc compiles in one plan); lower microbatches.max",
                     i + 1, ops, pp_sweep_budget());
            free(rows);
            return 1;
        }
        /* a bubble target is met by the first M that reaches it */
        if (s->mb_bubble > 0 && rows[i].ok && rows[i].fits && rows[i].bubble <= s->mb_bubble * (1 + 1e-12))
            n = i + 1;
    }
    int best = pick(rows, n, s->mb_bubble);
    int rc = 0;
    if (best < 0) {
        /* the closest: the smallest bubble that fits, or the first reason */
        int near = -1, reason = -1;
        for (int i = 0; i < n; i++) {
            if (rows[i].ok && rows[i].fits && (near < 0 || rows[i].bubble < rows[near].bubble))
                near = i;
            if (reason < 0 && (!rows[i].ok || !rows[i].fits) && (rows[i].ok || rows[i].reason[0]))
                reason = i;
        }
        if (s->mb_bubble > 0 && near >= 0)
            pp_error(d, "microbatches = auto: no M from 1 to %d (microbatches.max) has a bubble of at most %.4g%%: "
                        "the smallest is %.2f%% at M = %d",
                     s->mb_max, 100 * s->mb_bubble, 100 * rows[near].bubble, rows[near].microbatches);
        else if (reason >= 0 && rows[reason].ok) {
            char limit[32], peak[32];
            pp_error(d, "microbatches = auto: no M from 1 to %d (microbatches.max) fits memory.limit = %s (M = %d "
                        "peaks at %s)",
                     s->mb_max, pp_mem_show(&s->units, s->mem_limit, limit, sizeof limit), rows[reason].microbatches,
                     pp_mem_show(&s->units, rows[reason].peak, peak, sizeof peak));
        } else
            pp_error(d, "microbatches = auto: no M from 1 to %d (microbatches.max) compiles (M = %d: %s)", s->mb_max,
                     reason >= 0 ? rows[reason].microbatches : 1, reason >= 0 ? rows[reason].reason : "");
        rc = 1;
    } else {
        const pp_mb_row *r = &rows[best];
        *chosen = r->microbatches;
        char makespan[32], peak[32];
        fprintf(d->out, "microbatches auto: %d (%s): makespan %s, bubble %.2f%%, throughput %.6g, peak memory %s\n",
                r->microbatches, s->mb_bubble > 0 ? "the fewest within microbatches.bubble" : "the highest throughput",
                pp_time_show(&s->units, r->makespan, makespan, sizeof makespan), 100 * r->bubble, r->throughput,
                pp_mem_show(&s->units, r->peak, peak, sizeof peak));
    }
    free(rows);
    return rc;
}
