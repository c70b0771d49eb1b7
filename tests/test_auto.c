/*
 * test_auto.c — zb-h2's order and its figure, the `auto` search against
 * every named policy on random non-uniform cost models and memory limits,
 * and the `--compare` table (golden) with its errors.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

typedef struct tspec {
    pp_spec s;
    int placement[64];
    double f[64], b[64], w[64];
} tspec;

static void make(tspec *t, const char *sched, int D, int M, int v, bool vshape)
{
    memset(t, 0, sizeof *t);
    snprintf(t->s.schedule, sizeof t->s.schedule, "%s", sched);
    t->s.devices = D;
    t->s.chunks = v;
    t->s.stages = D * v;
    t->s.microbatches = M;
    t->s.placement = t->placement;
    t->s.placement_kind = vshape ? PP_PLACE_VSHAPE : PP_PLACE_LOOP;
    t->s.act_size = 1;
    for (int s = 0; s < D * v; s++) {
        t->placement[s] = vshape ? (s < D ? s : 2 * D - 1 - s) : s % D;
        t->f[s] = t->b[s] = t->w[s] = 1;
    }
    t->s.cost = (pp_cost){.F = 1, .B = 1, .W = 1, .comm = 0, .stage_F = t->f, .stage_B = t->b, .stage_W = t->w};
}

/* The compilation ppcc runs (pp_compile: policy, lower, verify with the
 * spec's limit, simulate); returns the makespan, INFINITY if any pass
 * refuses. */
static double compile(pp_spec *s, pp_sim *sim_out, pp_plan *plan_out)
{
    tu_diag td;
    tu_diag_open(&td);
    pp_plan p;
    pp_sim sim;
    double ms = INFINITY;
    if (pp_compile(s, &p, &sim, &td.diag) == 0) {
        ms = sim.makespan;
        if (sim_out)
            *sim_out = sim;
        else
            pp_sim_free(&sim, s->devices);
    }
    if (plan_out && isfinite(ms))
        *plan_out = p;
    else
        pp_plan_free(&p);
    tu_diag_close(&td);
    return ms;
}

/* ---- zb-h2 ------------------------------------------------------------ */

START_TEST(zb_h2_verifies_everywhere)
{
    for (int D = 2; D <= 8; D++)
        for (int M = 1; M <= 4 * D; M += (M < D + 1 ? 1 : D)) {
            tspec t;
            make(&t, "zb-h2", D, M, 1, false);
            pp_plan p;
            double ms = compile(&t.s, NULL, &p);
            ck_assert_msg(isfinite(ms), "zb-h2 D=%d M=%d does not compile", D, M);
            ck_assert(p.split_backward);
            /* every F, B, W once per (stage, mb), on the stage's device */
            for (int d = 0; d < D; d++) {
                int count[3] = {0};
                for (int i = 0; i < p.dev[d].n; i++) {
                    const pp_op *op = &p.dev[d].ops[i];
                    if (op->kind <= PP_OP_W) {
                        ck_assert_int_eq(op->stage, d);
                        count[op->kind]++;
                    }
                }
                ck_assert_int_eq(count[0], M);
                ck_assert_int_eq(count[1], M);
                ck_assert_int_eq(count[2], M);
            }
            pp_plan_free(&p);
        }
}
END_TEST

/* The paper's figure 3 (ZB-H2), F = B = W = 1, no comm: device d starts at
 * d (the forwards travelling down) and then never idles until its last op;
 * the makespan is the lower bound 3M + D - 1 and device d holds 2D - d - 1
 * activations: 2D - 1 on device 0, about twice 1F1B's D. */
START_TEST(zb_h2_paper_figure)
{
    int D = 8, M = 32;
    tspec t;
    make(&t, "zb-h2", D, M, 1, false);
    pp_sim sim;
    pp_plan p;
    double ms = compile(&t.s, &sim, &p);
    ck_assert_double_eq_tol(ms, 3 * M + D - 1, 1e-9);
    ck_assert_double_eq_tol(sim.bubble, (double)(D - 1) / (3 * M + D - 1), 1e-9);
    for (int d = 0; d < D; d++) {
        ck_assert_int_eq(sim.peak_act[d], 2 * D - d - 1);
        double first = -1, last = 0, busy = 0;
        for (int i = 0; i < p.dev[d].n; i++) {
            if (p.dev[d].ops[i].kind > PP_OP_W)
                continue;
            if (first < 0)
                first = sim.start[d][i];
            last = sim.end[d][i];
            busy += sim.end[d][i] - sim.start[d][i];
        }
        ck_assert_double_eq_tol(first, d, 1e-9);
        ck_assert_double_eq_tol(busy, 3.0 * M, 1e-9);
        /* the parallelogram: every device ends at the makespan, and the
         * idle inside its run is D - 1 - d (the tail waits for the last B) */
        ck_assert_double_eq_tol(last, ms, 1e-9);
        ck_assert_double_eq_tol(last - first - busy, D - 1 - d, 1e-9);
    }
    pp_sim_free(&sim, D);
    pp_plan_free(&p);

    /* 1F1B on the same shape: (M + D - 1)(F + B + W), D activations on device 0. */
    make(&t, "1f1b", D, M, 1, false);
    ck_assert_double_eq_tol(compile(&t.s, &sim, NULL), (M + D - 1) * 3.0, 1e-9);
    ck_assert_int_eq(sim.peak_act[0], D);
    pp_sim_free(&sim, D);
}
END_TEST

START_TEST(zb_h2_refusals)
{
    tspec t;
    make(&t, "zb-h2", 4, 8, 2, false);
    tu_diag td;
    tu_diag_open(&td);
    pp_plan p;
    ck_assert_int_ne(pp_policy_run(&t.s, &p, &td.diag), 0);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&td), "zb-h2: needs one stage per device"));
    tu_diag_close(&td);
}
END_TEST

/* ---- auto ------------------------------------------------------------- */

static uint64_t rng = 88172645463325252ull;
static double uniform(double lo, double hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (double)(rng >> 11) / (double)(1ull << 53);
}

/* 20 random non-uniform cost models x 3 memory limits x 3 shapes: auto
 * compiles under the limit and its makespan is <= that of every named
 * policy that compiles under the same limit; and the search finds
 * something strictly better than every named policy somewhere. */
START_TEST(auto_never_worse)
{
    static const struct shape_t {
        int D, M, v;
        bool vshape;
    } shapes[] = {{4, 8, 1, false}, {4, 8, 2, true}, {3, 6, 2, false}};
    int strictly_better = 0, cases = 0;
    for (int k = 0; k < 20; k++) {
        const struct shape_t *sh = &shapes[k % 3];
        tspec t;
        make(&t, "auto", sh->D, sh->M, sh->v, sh->vshape);
        for (int s = 0; s < t.s.stages; s++) {
            t.f[s] = uniform(0.5, 2);
            t.b[s] = uniform(0.5, 3);
            t.w[s] = uniform(0, 1.5);
        }
        t.s.cost.comm = uniform(0, 0.5);
        double limits[3] = {0, sh->v * sh->D, sh->v * (sh->D + 1) / 2.0 + 1};
        for (int l = 0; l < 3; l++) {
            t.s.mem_limit = limits[l];
            snprintf(t.s.schedule, sizeof t.s.schedule, "auto");
            double mine = compile(&t.s, NULL, NULL);
            double best_named = INFINITY;
            for (const pp_policy *const *pp = pp_policy_all(); *pp; pp++) {
                if (!strcmp((*pp)->name, "auto"))
                    continue;
                snprintf(t.s.schedule, sizeof t.s.schedule, "%s", (*pp)->name);
                double theirs = compile(&t.s, NULL, NULL);
                if (theirs < best_named)
                    best_named = theirs;
                ck_assert_msg(mine <= theirs + 1e-9, "case %d limit %g: auto %g > %s %g", k, limits[l], mine,
                              (*pp)->name, theirs);
            }
            ck_assert_msg(isfinite(mine) || !isfinite(best_named), "case %d: auto found nothing", k);
            strictly_better += mine < best_named - 1e-9;
            cases++;
        }
    }
    ck_assert_int_eq(cases, 60);
    ck_assert_msg(strictly_better > 0, "the search never beat the named policies");
    fprintf(stderr, "auto beat every named policy in %d of %d cases\n", strictly_better, cases);
}
END_TEST

START_TEST(auto_report_and_errors)
{
    tspec t;
    make(&t, "auto", 8, 32, 1, false);
    pp_plan p;
    ck_assert_int_eq(pp_plan_init(&p, "auto", 8, 8, 32, t.placement), 0);
    pp_auto_report rep;
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_int_eq(pp_auto_search(&t.s, &p, &rep, &td.diag), 0);
    /* unit costs: zb-h1 is optimal (3M + D - 1); auto ties it */
    ck_assert_double_eq_tol(rep.makespan, 103, 1e-9);
    ck_assert_double_eq_tol(rep.best_named, 103, 1e-9);
    ck_assert(rep.evaluations <= 400 + 8);
    bool saw_zbv_refused = false;
    for (int i = 0; i < rep.nnamed; i++)
        if (!strcmp(rep.named[i].name, "zbv"))
            saw_zbv_refused = !rep.named[i].ran;
    ck_assert(saw_zbv_refused);
    pp_plan_free(&p);

    /* less memory than one activation: nothing fits */
    t.s.mem_limit = 0.5;
    ck_assert_int_ne(pp_policy_run(&t.s, &p, &td.diag), 0);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&td), "auto: no schedule of 8 devices x 32 micro-batches fits"));
    tu_diag_close(&td);
}
END_TEST

/* ---- --compare -------------------------------------------------------- */

static char *compare_file(const char *rel, const char *list, const char *microbatches, int *rc, char **err)
{
    pp_arena a = {0};
    pp_ast ast;
    pp_spec spec;
    tu_diag td;
    tu_diag_open(&td);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    /* rel as the header line of the golden shows it */
    ck_assert_int_eq(chdir(tu_src_path("")), 0);
    ck_assert_int_eq(pp_parse_file(rel, &a, &td.diag, &ast), 0);
    pp_define defs[2] = {{"microbatches", microbatches}, {"batch", "48"}};
    int ndefs = microbatches ? 2 : 0;
    ck_assert_int_eq(pp_spec_build(&ast, defs, ndefs, &a, &td.diag, &spec), 0);
    *rc = pp_compare(f, &ast, defs, ndefs, &spec, list, &td.diag);
    fclose(f);
    *err = strdup(tu_diag_text(&td));
    tu_diag_close(&td);
    pp_arena_free(&a);
    return text;
}

START_TEST(compare_golden)
{
    int rc;
    char *err;
    char *text = compare_file("schedules/1f1b.pp", "gpipe,1f1b,zb-h1,zbv,interleaved,auto", NULL, &rc, &err);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(err, "");
    tu_check_golden(text, "tests/golden/compare/1f1b.txt");
    free(text);
    free(err);
}
END_TEST

START_TEST(compare_errors)
{
    int rc;
    char *err;
    char *text = compare_file("schedules/1f1b.pp", "1f1b,nope", NULL, &rc, &err);
    ck_assert_int_eq(rc, 1);
    ck_assert_ptr_nonnull(strstr(err, "--compare: unknown policy 'nope'"));
    ck_assert_str_eq(text, ""); /* nothing printed before the names are checked */
    free(text);
    free(err);
    /* dualpipev refuses M < 2D: the row says why */
    text = compare_file("schedules/1f1b.pp", "dualpipev,1f1b", "6", &rc, &err);
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(strstr(text, "\ndualpipev       2 vshape           -        -  -     -  ") &&
                      strstr(text, "-D schedule=dualpipev -D virtual=2 -D placement=vshape -D cost.F=0.5 -D cost.B=1 "
                                   "-D memory.activation=0.5\n                cannot run: dualpipev: "),
                  "%s", text);
    ck_assert_ptr_nonnull(strstr(text, "\n1f1b            1 loop            27   "));
    free(text);
    free(err);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("auto");
    TCase *tc = tcase_create("auto");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, zb_h2_verifies_everywhere);
    tcase_add_test(tc, zb_h2_paper_figure);
    tcase_add_test(tc, zb_h2_refusals);
    tcase_add_test(tc, auto_never_worse);
    tcase_add_test(tc, auto_report_and_errors);
    tcase_add_test(tc, compare_golden);
    tcase_add_test(tc, compare_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(make_suite());
}
