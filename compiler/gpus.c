/*
 * gpus.c — `gpus = N` (docs/auto.md, "How many stages?"): the split of N
 * GPUs into D pipeline devices x R data-parallel replicas with the best
 * predicted throughput that fits memory.
 *
 * Every D that divides N is a row: the file compiled with `-D devices=D
 * -D data_parallel=R -D gpus=0` (R = N / D), its global batch split over
 * the R replicas and then into micro-batches, through everything the file
 * asks for: its policy (auto searches), microbatches = auto (the row's own
 * M, microbatches.c), balance = auto (the row's own split).  A row is one
 * micro-batch row of microbatches.c, so it is judged as a sweep judges one
 * (the limit after the compilation) and `ppcc FILE SETTINGS --stats` gives
 * its numbers.  The global batch is the same in every row: the best
 * throughput is the shortest step; a tie goes to the fewer stages.  The
 * frontier is the rows that fit and that no other row beats in both step
 * time and peak memory.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

typedef struct gpus_row {
    int devices, replicas;
    pp_mb_row r;       /* ok, fits, makespan, peak, reason, balance */
    bool chosen_m;     /* microbatches = auto chose r.microbatches */
    bool frontier;
    double tokens, mfu; /* per GPU, 0: no throughput */
} gpus_row;

/* defs, then the row's -D devices=D -D data_parallel=R -D gpus=0: one heap
 * block (values after the defines), freed by the caller. */
static pp_define *split_defs(const pp_define *defs, int ndefs, int D, int R, int *n)
{
    enum { VALUE = 16 };
    pp_define *out = pp_xcalloc(1, ((size_t)ndefs + 3) * sizeof *out + 2 * VALUE, "gpus' settings");
    char *values = (char *)(out + ndefs + 3);
    if (ndefs > 0)
        memcpy(out, defs, (size_t)ndefs * sizeof *defs);
    snprintf(values, VALUE, "%d", D);
    snprintf(values + VALUE, VALUE, "%d", R);
    out[ndefs] = (pp_define){"devices", values};
    out[ndefs + 1] = (pp_define){"data_parallel", values + VALUE};
    out[ndefs + 2] = (pp_define){"gpus", "0"};
    *n = ndefs + 3;
    return out;
}

/* Row (D, R): its spec, its M, its compilation. */
static void compile_row(const pp_ast *ast, const pp_define *defs, int ndefs, gpus_row *g)
{
    int n;
    pp_define *all = split_defs(defs, ndefs, g->devices, g->replicas, &n);
    pp_diag_buffer q;
    pp_diag_buffer_open(&q, "ppcc");
    pp_arena a = {0};
    pp_spec t;
    g->r = (pp_mb_row){0};
    if (pp_spec_build(ast, all, n, &a, &q.diag, &t) == 0) {
        int M = t.microbatches;
        g->chosen_m = t.microbatches_auto;
        if (!t.microbatches_auto || pp_microbatch_choose(ast, all, n, &t, &M, &q.diag) == 0) {
            pp_microbatch_row(ast, all, n, &t, M, &g->r);
            double tps, mfu;
            if (g->r.ok && pp_throughput(&t.units, g->r.makespan, t.devices, &tps, &mfu)) {
                g->tokens = tps;
                g->mfu = mfu;
            }
        }
    }
    if (!g->r.ok && !g->r.reason[0]) { /* the spec or the choice of M failed: its first error */
        fflush(q.diag.out);
        const char *e = q.text ? strstr(q.text, "error: ") : NULL;
        e = e ? e + 7 : "failed";
        snprintf(g->r.reason, sizeof g->r.reason, "%.*s", (int)strcspn(e, "\n"), e);
    }
    pp_arena_free(&a);
    pp_diag_buffer_close(&q);
    free(all);
}

static void print_rows(FILE *f, const pp_spec *s, const gpus_row *rows, int n, int best)
{
    bool rate = false;
    for (int i = 0; i < n; i++)
        rate |= rows[i].tokens > 0;
    fprintf(f, "gpus %d: %-7s %-13s %-12s %12s %12s%s  %-4s  %s\n", s->gpus, "devices", "data_parallel",
            "microbatches", "makespan", "peak memory", rate ? "  tokens/s/gpu    MFU" : "", "fits", "frontier");
    for (int i = 0; i < n; i++) {
        const gpus_row *g = &rows[i];
        char M[16] = "-", ms[32] = "-", peak[32] = "-", tok[48] = "";
        if (g->r.ok) {
            snprintf(M, sizeof M, "%d%s", g->r.microbatches, g->chosen_m ? " (auto)" : "");
            pp_time_show(&s->units, g->r.makespan, ms, sizeof ms);
            pp_mem_show(&s->units, g->r.peak, peak, sizeof peak);
        }
        if (rate && g->tokens > 0)
            snprintf(tok, sizeof tok, "  %12.6g %5.1f%%", g->tokens, 100 * g->mfu);
        else if (rate)
            snprintf(tok, sizeof tok, "  %12s %6s", "-", "-");
        const char *front = i == best ? "  yes (best)" : g->frontier ? "  yes" : "";
        fprintf(f, "gpus %d: %-7d %-13d %-12s %12s %12s%s  %s%s\n", s->gpus, g->devices, g->replicas, M, ms, peak, tok,
                front[0] ? (!g->r.ok ? "-   " : g->r.fits ? "yes " : "no  ") : (!g->r.ok ? "-" : g->r.fits ? "yes" : "no"),
                front);
        if (!g->r.ok)
            fprintf(f, "gpus %d:   cannot run: %s\n", s->gpus, g->r.reason);
    }
}

pp_define *pp_gpus_choose(FILE *report, const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s,
                          int *n, pp_diag *d)
{
    int N = s->gpus, nrows = 0;
    long ops = 0;
    gpus_row *rows = pp_xcalloc(PP_MAX_DEVICES, sizeof *rows, "gpus' rows"); /* one per D <= PP_MAX_DEVICES */
    for (int D = 1; D <= N && D <= PP_MAX_DEVICES; D++)
        if (N % D == 0 && N / D <= PP_MAX_REPLICAS) {
            rows[nrows] = (gpus_row){.devices = D, .replicas = N / D};
            compile_row(ast, defs, ndefs, &rows[nrows]);
            ops += rows[nrows++].r.ops;
            if (ops > pp_sweep_budget() && D < N) {
                pp_error(d, "gpus = %d: devices = 1 to %d compiled %ld ops, past the %ld one search may (the most ppcc "
                            "compiles in one plan)", N, D, ops, pp_sweep_budget());
                free(rows);
                return NULL;
            }
        }
    int best = -1;
    for (int i = 0; i < nrows; i++) {
        const pp_mb_row *r = &rows[i].r;
        if (r->ok && r->fits && (best < 0 || r->makespan < rows[best].r.makespan * (1 - 1e-12)))
            best = i;
    }
    for (int i = 0; i < nrows; i++) {
        const pp_mb_row *r = &rows[i].r;
        if (!r->ok || !r->fits)
            continue;
        bool beaten = false;
        for (int j = 0; j < nrows && !beaten; j++) {
            const pp_mb_row *o = &rows[j].r;
            beaten = j != i && o->ok && o->fits && o->makespan <= r->makespan && o->peak <= r->peak &&
                     (o->makespan < r->makespan || o->peak < r->peak);
        }
        rows[i].frontier = !beaten;
    }
    print_rows(report, s, rows, nrows, best);
    pp_define *out = NULL;
    if (best < 0) {
        int fit = -1;
        for (int i = 0; i < nrows && fit < 0; i++)
            fit = rows[i].r.ok ? i : -1;
        if (fit >= 0)
            pp_error(d, "gpus = %d: no split of devices x data_parallel fits memory.limit (the closest, devices = %d, "
                        "peaks at %s)", N, rows[fit].devices,
                     pp_mem_show(&s->units, rows[fit].r.peak, (char[32]){0}, 32));
        else if (nrows)
            pp_error(d, "gpus = %d: no split of devices x data_parallel compiles (devices = %d: %s)", N,
                     rows[0].devices, rows[0].r.reason);
        else /* a prime past both limits, or its multiple: no row to compile */
            pp_error(d, "gpus = %d: no split devices x data_parallel within their limits (no divisor D of %d has "
                        "D <= %d devices and %d / D <= %d replicas)", N, N, PP_MAX_DEVICES, N, PP_MAX_REPLICAS);
    } else {
        const gpus_row *g = &rows[best];
        char ms[32];
        fprintf(report, "gpus %d: best devices = %d x data_parallel = %d, makespan %s\n", N, g->devices, g->replicas,
                pp_time_show(&s->units, g->r.makespan, ms, sizeof ms));
        int ns;
        pp_define *split = split_defs(defs, ndefs, g->devices, g->replicas, &ns);
        if (g->chosen_m) { /* the row's M, as microbatches.c's row set it */
            pp_arena a = {0};
            pp_diag_buffer q;
            pp_diag_buffer_open(&q, "ppcc");
            pp_spec t;
            if (pp_spec_build(ast, split, ns, &a, &q.diag, &t) == 0) {
                int nm;
                pp_define *m = pp_microbatch_defs(split, ns, &t, g->r.microbatches, &nm);
                /* one block the caller frees: the defines, then every value copied after them */
                size_t bytes = (size_t)nm * sizeof *out;
                for (int i = ndefs; i < nm; i++)
                    bytes += strlen(m[i].value) + 1;
                out = pp_xcalloc(1, bytes, "gpus' settings");
                char *at = (char *)(out + nm);
                memcpy(out, m, (size_t)nm * sizeof *out);
                for (int i = ndefs; i < nm; i++) {
                    size_t len = strlen(m[i].value) + 1;
                    memcpy(at, m[i].value, len);
                    out[i].value = at;
                    at += len;
                }
                *n = nm;
                free(m);
            }
            if (!out)
                pp_error(d, "gpus = %d: devices = %d x data_parallel = %d no longer compiles", N, g->devices,
                         g->replicas);
            pp_arena_free(&a);
            pp_diag_buffer_close(&q);
            free(split);
        } else {
            out = split;
            *n = ns;
        }
    }
    free(rows);
    return out;
}
