/*
 * test_microbatches.c — the micro-batch choice (docs/costs.md): the scaling
 * of per-micro-batch numbers by microbatches.reference / M, the rows of
 * --sweep against the compilation of their printed settings, microbatches
 * = auto against the tutorials' rule M = (S - 1)(1/t - 1) on uniform costs
 * and against the sweep's best, under a memory limit, and its errors.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

typedef struct file {
    pp_arena a;
    pp_ast ast;
    pp_spec s;
    tu_diag td;
} file;

static void open_file(file *f, const char *text, const pp_define *defs, int n)
{
    memset(f, 0, sizeof *f);
    tu_diag_open(&f->td);
    ck_assert_int_eq(pp_parse("t.pp", text, strlen(text), &f->a, &f->td.diag, &f->ast), 0);
    ck_assert_msg(pp_spec_build(&f->ast, defs, n, &f->a, &f->td.diag, &f->s) == 0, "%s", tu_diag_text(&f->td));
}

static void close_file(file *f)
{
    tu_diag_close(&f->td);
    pp_arena_free(&f->a);
}

static const char *const uniform = "devices = 4\nmicrobatches = 8\nschedule 1f1b\ncost { F = 1 B = 2 comm = 0.25 }\n"
                                   "model mlp { layers = 8 batch = 96 }\n";

START_TEST(reference_scales_per_microbatch_numbers)
{
    file f;
    pp_define defs[] = {{"microbatches", "16"}, {"microbatches.reference", "8"}, {"memory.activation", "3"},
                        {"cost.stage.2.B", "5"}};
    open_file(&f, uniform, defs, 4);
    ck_assert_int_eq(f.s.microbatches, 16);
    ck_assert_double_eq(f.s.cost.stage_F[0], 0.5);
    ck_assert_double_eq(f.s.cost.stage_B[0], 1);
    ck_assert_double_eq(f.s.cost.stage_B[2], 2.5); /* an override is per micro-batch too */
    ck_assert_double_eq(f.s.cost.comm, 0.25);      /* a latency: not scaled */
    ck_assert_double_eq(f.s.act_size, 1.5);
    close_file(&f);
    /* without a reference, -D microbatches changes nothing else (as before) */
    open_file(&f, uniform, defs, 1);
    ck_assert_double_eq(f.s.cost.stage_F[0], 1);
    ck_assert_double_eq(f.s.act_size, 1);
    close_file(&f);
    /* layers: their times and activations, not their weights */
    static const char *const layered = "devices = 2\nmicrobatches = 4\n"
                                       "layer_costs { block 4 { F = 2 B = 2 activation = 4 weights = 3 } }\n";
    pp_define half[] = {{"microbatches", "8"}, {"microbatches.reference", "4"}, {"model.batch", "16"}};
    open_file(&f, layered, half, 3);
    ck_assert_double_eq(f.s.cost.stage_F[1], 2);
    ck_assert_double_eq(f.s.stage_act[1], 4);
    ck_assert_double_eq(f.s.stage_input[1], 1);
    ck_assert_double_eq(f.s.static_mem[1], 6);
    close_file(&f);
}
END_TEST

/* A row is the compilation of its printed settings. */
START_TEST(row_is_its_settings_compiled)
{
    file f;
    open_file(&f, uniform, NULL, 0);
    const int values[] = {1, 2, 3, 4, 6, 8, 12, 24, 5};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        pp_mb_row r;
        pp_microbatch_row(&f.ast, NULL, 0, &f.s, values[i], &r);
        int n;
        pp_define *defs = pp_microbatch_defs(NULL, 0, &f.s, values[i], &n);
        file g;
        memset(&g, 0, sizeof g);
        tu_diag_open(&g.td);
        int errors = pp_spec_build(&f.ast, defs, n, &g.a, &g.td.diag, &g.s);
        if (values[i] == 5) { /* 96 rows do not split in 5 */
            ck_assert(!r.ok);
            ck_assert_int_gt(errors, 0);
            ck_assert_str_eq(r.reason, "-D model.batch=96: 96 is not a multiple of microbatches = 5 (each "
                                       "micro-batch takes batch / microbatches rows)");
        } else {
            ck_assert_int_eq(errors, 0);
            pp_plan p;
            pp_sim sim;
            ck_assert_int_eq(pp_compile(&g.s, &p, &sim, &g.td.diag), 0);
            ck_assert(r.ok && r.fits);
            ck_assert_double_eq(r.makespan, sim.makespan);
            ck_assert_double_eq(r.bubble, sim.bubble);
            ck_assert_double_eq(r.throughput, 96 / sim.makespan);
            /* uniform 1F1B, comm aside: (M + D - 1) micro-batch slots of 3 * 8 / M */
            ck_assert(r.makespan >= (values[i] + 3) * 24.0 / values[i]);
            pp_sim_free(&sim, g.s.devices);
            pp_plan_free(&p);
        }
        free(defs);
        close_file(&g);
    }
    close_file(&f);
}
END_TEST

/* The tutorials' rule on uniform costs: M = (S - 1)(1/t - 1), rounded up. */
START_TEST(bubble_target_reproduces_the_rule)
{
    static const char *const policies[] = {"1f1b", "gpipe"};
    static const double targets[] = {0.5, 0.25, 0.2, 0.1, 0.3};
    for (int pol = 0; pol < 2; pol++)
        for (int D = 2; D <= 8; D++)
            for (size_t k = 0; k < sizeof targets / sizeof *targets; k++) {
                double t = targets[k];
                int want = (int)ceil((D - 1) * (1 / t - 1) - 1e-9);
                char text[512];
                /* a batch that the rule's M splits (the smaller M that do not are skipped) */
                snprintf(text, sizeof text,
                         "devices = %d\nschedule %s\nmicrobatches auto { bubble = %g }\ncost { F = 1 B = 2 }\n"
                         "model mlp { batch = %d hidden = 8 }\n",
                         D, policies[pol], t, 27720 * want);
                file f;
                open_file(&f, text, NULL, 0);
                ck_assert(f.s.microbatches_auto);
                int M = -1;
                ck_assert_int_eq(pp_microbatch_choose(&f.ast, NULL, 0, &f.s, &M, &f.td.diag), 0);
                ck_assert_msg(M == want, "%s, D %d, bubble %g: M %d, the rule says %d", policies[pol], D, t, M,
                              want);
                /* and the bubble there is the closed form */
                pp_mb_row r;
                pp_microbatch_row(&f.ast, NULL, 0, &f.s, M, &r);
                ck_assert_double_eq_tol(r.bubble, (D - 1.0) / (M + D - 1), 1e-12);
                close_file(&f);
            }
}
END_TEST

/* microbatches = auto without a target: the sweep's best throughput. */
START_TEST(auto_picks_the_sweeps_best)
{
    static const char *const cases[][2] = {
        {"1f1b", "0.5"}, {"zb-h1", "0.2"}, {"gpipe", "1"}, {"interleaved", "0.3"}, {"1f1b", "0"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char text[512];
        snprintf(text, sizeof text,
                 "devices = 4\n%sschedule %s\nmicrobatches = auto\ncost { F = 4 B = 6 W = 2 comm = %s }\n"
                 "model mlp { batch = 64 layers = 8 hidden = 8 }\nmemory { limit = 12 activation = 8 }\n",
                 !strcmp(cases[c][0], "interleaved") ? "virtual = 2\n" : "", cases[c][0], cases[c][1]);
        file f;
        open_file(&f, text, NULL, 0);
        int M = -1;
        ck_assert_msg(pp_microbatch_choose(&f.ast, NULL, 0, &f.s, &M, &f.td.diag) == 0, "%s", tu_diag_text(&f.td));
        double best = -1;
        int best_m = -1;
        for (int m = 1; m <= 64; m++) {
            pp_mb_row r;
            pp_microbatch_row(&f.ast, NULL, 0, &f.s, m, &r);
            if (r.ok && r.fits && r.throughput > best * (1 + 1e-12)) {
                best = r.throughput;
                best_m = m;
            }
            if (m == M)
                ck_assert(r.ok && r.fits);
        }
        ck_assert_msg(M == best_m, "%s comm %s: auto %d, the sweep's best %d", cases[c][0], cases[c][1], M, best_m);
        close_file(&f);
    }
}
END_TEST

START_TEST(auto_errors)
{
    file f;
    /* 1% is out of reach within 8 micro-batches */
    open_file(&f, "devices = 4\nmicrobatches auto { bubble = 0.01 max = 8 }\nmodel mlp { batch = 64 }\n", NULL, 0);
    int M;
    ck_assert_int_eq(pp_microbatch_choose(&f.ast, NULL, 0, &f.s, &M, &f.td.diag), 1);
    ck_assert_str_eq(tu_diag_text(&f.td), "ppcc: error: microbatches = auto: no M from 1 to 8 (microbatches.max) has a "
                                          "bubble of at most 1%: the smallest is 27.27% at M = 8\n");
    close_file(&f);
    /* gpipe holds every micro-batch: 4 sets of 1/M each... always 4, over 3 */
    open_file(&f, "devices = 4\nschedule gpipe\nmicrobatches auto { max = 4 }\nmemory { activation = 4 limit = 3 }\n"
                  "model mlp { batch = 16 }\n",
              NULL, 0);
    ck_assert_int_eq(pp_microbatch_choose(&f.ast, NULL, 0, &f.s, &M, &f.td.diag), 1);
    ck_assert_str_eq(tu_diag_text(&f.td), "ppcc: error: microbatches = auto: no M from 1 to 4 (microbatches.max) fits "
                                          "memory.limit = 3 (M = 1 peaks at 4)\n");
    close_file(&f);
    /* the batch is checked against what auto may choose, not microbatches.reference (which only
     * scales the costs): reference 3 on 32 rows builds and picks an M that splits them ... */
    open_file(&f, "devices = 2\nmicrobatches auto { max = 8 reference = 3 }\nmodel mlp { batch = 32 }\n", NULL, 0);
    ck_assert_int_eq(pp_microbatch_choose(&f.ast, NULL, 0, &f.s, &M, &f.td.diag), 0);
    ck_assert_int_eq(32 % M, 0);
    close_file(&f);
    /* ... and with replicas only the replica's share must split: not "3 x 1 = 3", a stand-in M */
    const char *dp = "devices = 2\ndata_parallel = 3\nmicrobatches = auto\nmodel mlp { batch = 32 }\n";
    pp_arena a = {0};
    tu_diag td;
    tu_diag_open(&td);
    pp_ast ast;
    pp_spec s;
    ck_assert_int_eq(pp_parse("t.pp", dp, strlen(dp), &a, &td.diag, &ast), 0);
    ck_assert_int_ne(pp_spec_build(&ast, NULL, 0, &a, &td.diag, &s), 0);
    ck_assert_msg(strstr(tu_diag_text(&td), "error: model.batch: 32 is not a multiple of data_parallel = 3 (each replica "
                                            "takes batch / data_parallel rows, which microbatches = auto then splits)\n"),
                  "%s", tu_diag_text(&td));
    tu_diag_close(&td);
    pp_arena_free(&a);
}
END_TEST

/* The budget of all the rows' ops, small here (pp.h: pp_test_sweep_ops). */
static long test_budget;
long pp_test_sweep_ops(void) { return test_budget; }

START_TEST(sweeps_stop_at_their_budget)
{
    file f;
    open_file(&f, uniform, NULL, 0);
    pp_mb_row r1, r2, r3;
    pp_microbatch_row(&f.ast, NULL, 0, &f.s, 1, &r1);
    pp_microbatch_row(&f.ast, NULL, 0, &f.s, 2, &r2);
    pp_microbatch_row(&f.ast, NULL, 0, &f.s, 3, &r3);
    ck_assert(r1.ok && r2.ok && r3.ok && r1.ops > 0 && r2.ops > r1.ops);
    test_budget = r1.ops + r2.ops; /* two rows reach it, the third passes it */
    static const int values[] = {1, 2, 3, 4};
    FILE *out = fopen("/dev/null", "w");
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(pp_sweep(out, &f.ast, NULL, 0, &f.s, values, 3, &f.td.diag), 0); /* the last row may pass it */
    ck_assert_int_eq(pp_sweep(out, &f.ast, NULL, 0, &f.s, values, 4, &f.td.diag), 1);
    char want[300];
    snprintf(want, sizeof want, "ppcc: error: --sweep: the rows up to microbatches=3 compiled %ld ops, past the %ld "
             "one sweep may (the most ppcc compiles in one plan); sweep fewer or smaller values\n",
             r1.ops + r2.ops + r3.ops, test_budget);
    ck_assert_str_eq(tu_diag_text(&f.td), want);
    fclose(out);
    close_file(&f);
    /* microbatches = auto: the same budget over M = 1, 2, ... (batch 96 splits 1, 2, 3, 4) */
    open_file(&f, "devices = 4\nmicrobatches auto { max = 8 }\nschedule 1f1b\ncost { F = 1 B = 2 comm = 0.25 }\n"
                  "model mlp { layers = 8 batch = 96 }\n", NULL, 0);
    int M;
    test_budget = 1; /* the first row passes it */
    ck_assert_int_eq(pp_microbatch_choose(&f.ast, NULL, 0, &f.s, &M, &f.td.diag), 1);
    ck_assert_msg(strstr(tu_diag_text(&f.td), "ppcc: error: microbatches = auto: M = 1 to 1 compiled ") != NULL, "%s",
                  tu_diag_text(&f.td));
    close_file(&f);
    test_budget = 0;
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("microbatches");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, reference_scales_per_microbatch_numbers);
    tcase_add_test(tc, row_is_its_settings_compiled);
    tcase_add_test(tc, bubble_target_reproduces_the_rule);
    tcase_add_test(tc, auto_picks_the_sweeps_best);
    tcase_add_test(tc, auto_errors);
    tcase_add_test(tc, sweeps_stop_at_their_budget);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(make_suite());
}
