/*
 * compare.c — `ppcc FILE --compare a,b,...`: one table, one row per
 * policy, every policy on the same devices, micro-batches, model and total
 * work (docs/auto.md).
 *
 * Policies differ in their natural chunking: v = 1 on the loop placement
 * (gpipe, 1f1b, zb-h1, zb-h2), the file's virtual if > 1 else 2 on the
 * loop (interleaved, looped-bfs, interleaved-zb), v = 2 on the V shape
 * (zbv, dualpipev).  The file's per-stage costs are summed per device into
 * the device's share of the model; a policy with v chunks per device runs
 * each chunk at share / v, and one chunk's activation is the share's / v.
 * So every row does the same work and holds comparable memory.  `auto`
 * searches each of the three shapes and keeps the best; a named policy
 * runs without the limit (the row says whether it fits), auto under it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

typedef struct shape {
    int v;
    bool vshape;
} shape;

/* The spec of shape sh over the file's devices, micro-batches and work. */
static void reshape(const pp_spec *s, shape sh, pp_spec *t, int *placement, double *costs)
{
    int D = s->devices, S = D * sh.v;
    *t = *s;
    t->chunks = sh.v;
    t->stages = S;
    t->group = 0;
    t->placement = placement;
    t->placement_kind = sh.vshape ? PP_PLACE_VSHAPE : PP_PLACE_LOOP;
    double *share = costs + 3 * S; /* [3 * D] */
    memset(share, 0, 3 * (size_t)D * sizeof *share);
    for (int st = 0; st < s->stages; st++) {
        int d = s->placement[st];
        share[d] += pp_op_cost(&s->cost, PP_OP_F, st, true);
        share[D + d] += pp_op_cost(&s->cost, PP_OP_B, st, true);
        share[2 * D + d] += pp_op_cost(&s->cost, PP_OP_W, st, true);
    }
    t->cost.stage_F = costs;
    t->cost.stage_B = costs + S;
    t->cost.stage_W = costs + 2 * S;
    for (int st = 0; st < S; st++) {
        int d = sh.vshape ? (st < D ? st : 2 * D - 1 - st) : st % D;
        placement[st] = d;
        t->cost.stage_F[st] = share[d] / sh.v;
        t->cost.stage_B[st] = share[D + d] / sh.v;
        t->cost.stage_W[st] = share[2 * D + d] / sh.v;
    }
    t->act_size = (s->act_size > 0 ? s->act_size : 1) * s->chunks / sh.v;
}

static shape natural_shape(const pp_spec *s, const char *name)
{
    if (!strcmp(name, "zbv") || !strcmp(name, "dualpipev"))
        return (shape){2, true};
    if (!strcmp(name, "interleaved") || !strcmp(name, "looped-bfs") || !strcmp(name, "interleaved-zb"))
        return (shape){s->chunks > 1 ? s->chunks : 2, false};
    return (shape){1, false};
}

typedef struct row {
    bool ok;
    shape sh;
    double makespan, bubble, act;
    double *peak;      /* [devices] peak memory (memory.c) */
    char reason[200];
} row;

/* The first error line of a captured diag, without its "ppcc: error: ". */
static void first_error(const char *text, char *out, size_t size)
{
    const char *p = text ? strstr(text, "error: ") : NULL;
    p = p ? p + 7 : (text && *text ? text : "failed");
    size_t n = strcspn(p, "\n");
    snprintf(out, size, "%.*s", (int)n, p);
}

static void run_row(const pp_spec *s, const char *name, shape sh, row *r)
{
    int D = s->devices, S = D * sh.v;
    int *placement = calloc((size_t)S, sizeof *placement);
    double *costs = calloc(3 * (size_t)S + 3 * (size_t)D, sizeof *costs);
    if (!placement || !costs)
        pp_out_of_memory();
    pp_diag_buffer q;
    pp_diag_buffer_open(&q, "ppcc");
    pp_spec t;
    reshape(s, sh, &t, placement, costs);
    snprintf(t.schedule, sizeof t.schedule, "%s", name);
    r->sh = sh;
    r->act = t.act_size;
    pp_plan p = {0};
    pp_sim sim;
    bool is_auto = !strcmp(name, "auto");
    if (pp_policy_run(&t, &p, &q.diag) == 0 && pp_lower_verify_simulate(&p, &t, is_auto, &sim, &q.diag) == 0) {
        r->ok = true;
        r->makespan = sim.makespan;
        r->bubble = sim.bubble;
        memcpy(r->peak, sim.peak_mem, (size_t)D * sizeof *r->peak);
        pp_sim_free(&sim, D);
    } else {
        fflush(q.diag.out);
        first_error(q.text, r->reason, sizeof r->reason);
    }
    pp_plan_free(&p);
    pp_diag_buffer_close(&q);
    free(placement);
    free(costs);
}

static bool fits(const pp_spec *s, const row *r)
{
    if (s->mem_limit <= 0)
        return true;
    for (int d = 0; d < s->devices; d++)
        if (pp_mem_over(r->peak[d], s->mem_limit))
            return false;
    return true;
}

static void print_row(FILE *out, const pp_spec *s, const char *name, const row *r)
{
    fprintf(out, "%-15s", name);
    if (!r->ok) {
        fprintf(out, " %-9s  cannot run: %s\n", "-", r->reason);
        return;
    }
    char shp[16];
    snprintf(shp, sizeof shp, "%d %s", r->sh.v, r->sh.vshape ? "vshape" : "loop");
    fprintf(out, " %-9s %9.2f %7.2f%%  %-4s ", shp, r->makespan, 100 * r->bubble, fits(s, r) ? "yes" : "no");
    for (int d = 0; d < s->devices; d++)
        fprintf(out, "%s%g", d ? " " : "", r->peak[d]);
    fputc('\n', out);
}

int pp_compare(FILE *out, const pp_spec *s, const char *list, pp_diag *d)
{
    /* Names first: an unknown one is an error before any work. */
    int errors = 0, n = 0;
    char *names = strdup(list);
    if (!names)
        return 1;
    char *items[64];
    for (char *save = NULL, *tok = strtok_r(names, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!pp_policy_find(tok)) {
            pp_error(d, "--compare: unknown policy '%s' (see --list-policies)", tok);
            errors++;
        } else if (n < 64) {
            items[n++] = tok;
        }
    }
    if (!errors && n == 0) {
        pp_error(d, "--compare: expected a comma-separated list of policies, got '%s'", list);
        errors++;
    }
    if (errors) {
        free(names);
        return errors;
    }
    fprintf(out, "compare: %d devices, %d micro-batches, memory limit ", s->devices, s->microbatches);
    if (s->mem_limit > 0)
        fprintf(out, "%g\n", s->mem_limit);
    else
        fputs("none\n", out);
    fputs("work per device as in the file; v chunks per device run each at cost / v and hold act / v\n", out);
    fprintf(out, "%-15s %-9s %9s %8s  %-4s %s\n", "policy", "v place", "makespan", "bubble", "fits",
            "peak memory per device");
    row r = {0}, best = {0};
    r.peak = calloc((size_t)s->devices, sizeof *r.peak);
    best.peak = calloc((size_t)s->devices, sizeof *best.peak);
    if (!r.peak || !best.peak)
        pp_out_of_memory();
    for (int i = 0; i < n; i++) {
        if (strcmp(items[i], "auto") != 0) {
            run_row(s, items[i], natural_shape(s, items[i]), &r);
            print_row(out, s, items[i], &r);
            continue;
        }
        /* auto: the best of its searches over the three natural shapes. */
        shape shapes[3] = {{1, false}, {s->chunks > 1 ? s->chunks : 2, false}, {2, true}};
        best.ok = false;
        for (int k = 0; k < 3; k++) {
            run_row(s, "auto", shapes[k], &r);
            if (r.ok && (!best.ok || r.makespan < best.makespan - 1e-9)) {
                double *keep = best.peak;
                best = r;
                best.peak = keep;
                memcpy(best.peak, r.peak, (size_t)s->devices * sizeof *r.peak);
            } else if (!best.ok && k == 0) {
                snprintf(best.reason, sizeof best.reason, "%s", r.reason);
            }
        }
        print_row(out, s, "auto", &best);
    }
    free(r.peak);
    free(best.peak);
    free(names);
    return 0;
}
