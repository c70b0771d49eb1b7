/*
 * test_recompute.c — activation recompute in the compiler (docs/recompute.md):
 * memory.recompute / recompute_stages in the spec, the R insertion of
 * pp_policy_run for every policy, the verifier's rules for R, the
 * simulator's time and memory, and the plan JSON / timeline with R.
 * (Execution is tests/runtime/test_pprun_recompute.sh.)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* One compilation from DSL text through simulate. */
typedef struct comp {
    pp_arena a;
    pp_ast ast;
    pp_spec spec;
    pp_plan plan;
    pp_sim sim;
    tu_diag td;
    bool have_plan, have_sim;
} comp;

/* Stops after the stage `upto` ("spec", "policy", "lower", "sim"). */
static int compile_text(comp *c, const char *text, const char *upto)
{
    memset(c, 0, sizeof *c);
    tu_diag_open(&c->td);
    if (pp_parse("t.pp", text, strlen(text), &c->a, &c->td.diag, &c->ast) ||
        pp_spec_build(&c->ast, NULL, 0, &c->a, &c->td.diag, &c->spec))
        return 1;
    if (!strcmp(upto, "spec"))
        return 0;
    if (pp_policy_run(&c->spec, &c->plan, &c->td.diag))
        return 1;
    c->have_plan = true;
    if (!strcmp(upto, "policy"))
        return 0;
    if (pp_lower(&c->plan, &c->td.diag))
        return 1;
    if (!strcmp(upto, "lower"))
        return 0;
    pp_verify_opts vo = {.act_size = c->spec.act_size, .mem_limit = c->spec.mem_limit, .input_frac = c->spec.cost.recompute_input};
    if (pp_verify(&c->plan, &vo, &c->td.diag) || pp_simulate(&c->plan, &c->spec.cost, &vo, &c->sim, &c->td.diag))
        return 1;
    c->have_sim = true;
    return 0;
}

static void comp_free(comp *c)
{
    if (c->have_sim)
        pp_sim_free(&c->sim, c->plan.devices);
    if (c->have_plan)
        pp_plan_free(&c->plan);
    tu_diag_close(&c->td);
    pp_arena_free(&c->a);
}

static int count_kind(const pp_plan *p, int kind, int stage)
{
    int n = 0;
    for (int d = 0; d < p->devices; d++)
        for (int i = 0; i < p->dev[d].n; i++)
            n += p->dev[d].ops[i].kind == kind && (stage < 0 || p->dev[d].ops[i].stage == stage);
    return n;
}

/* Every B of a recomputed stage right after its R; no R elsewhere. */
static void assert_r_before_b(const pp_plan *p, const bool *rec)
{
    for (int d = 0; d < p->devices; d++)
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_op *op = &p->dev[d].ops[i];
            if (op->kind == PP_OP_B && rec[op->stage]) {
                ck_assert_int_gt(i, 0);
                const pp_op *r = &p->dev[d].ops[i - 1];
                ck_assert_int_eq(r->kind, PP_OP_R);
                ck_assert_int_eq(r->stage, op->stage);
                ck_assert_int_eq(r->mb, op->mb);
            }
            if (op->kind == PP_OP_R)
                ck_assert(rec[op->stage]);
        }
    for (int s = 0; s < p->stages; s++)
        ck_assert_int_eq(count_kind(p, PP_OP_R, s), rec[s] ? p->microbatches : 0);
}

START_TEST(test_modes)
{
    static const char *const policies[] = {"gpipe", "1f1b", "zb-h1", "interleaved", "zbv", "dualpipev", "auto"};
    for (size_t k = 0; k < sizeof policies / sizeof *policies; k++) {
        bool vshape = !strcmp(policies[k], "zbv") || !strcmp(policies[k], "dualpipev");
        bool two = vshape || !strcmp(policies[k], "interleaved");
        const char *modes[] = {"never", "always", "except_last", NULL};
        for (int m = 0; modes[m]; m++) {
            char text[512];
            snprintf(text, sizeof text,
                     "devices = 4\nvirtual = %d\n%smicrobatches = 8\nschedule = %s\nmemory { recompute = %s }\n",
                     two ? 2 : 1, vshape ? "placement = vshape\n" : "", policies[k], modes[m]);
            comp c;
            int rc = compile_text(&c, text, "policy");
            ck_assert_msg(rc == 0, "%s %s: %s", policies[k], modes[m], tu_diag_text(&c.td));
            int S = c.spec.stages;
            for (int s = 0; s < S; s++)
                ck_assert_int_eq(c.spec.recompute[s], m == 1 || (m == 2 && s < S - 1));
            assert_r_before_b(&c.plan, c.spec.recompute);
            /* idempotent: a second insertion changes nothing */
            long before = pp_plan_total_ops(&c.plan);
            ck_assert_int_eq(pp_insert_recompute(&c.plan, c.spec.recompute), 0);
            ck_assert_int_eq(pp_plan_total_ops(&c.plan), before);
            assert_r_before_b(&c.plan, c.spec.recompute);
            comp_free(&c);
        }
    }
}
END_TEST

START_TEST(test_per_stage_and_define)
{
    comp c;
    ck_assert_int_eq(compile_text(&c, "devices = 4\nschedule = 1f1b\nmemory { recompute_stages = [1, 3] }\n", "policy"),
                     0);
    bool want[4] = {false, true, false, true};
    for (int s = 0; s < 4; s++)
        ck_assert_int_eq(c.spec.recompute[s], want[s]);
    assert_r_before_b(&c.plan, want);
    comp_free(&c);

    /* -D recompute=always (the alias) */
    pp_arena a = {0};
    tu_diag td;
    tu_diag_open(&td);
    pp_define defs[] = {{"recompute", "always"}};
    pp_spec spec;
    ck_assert_int_eq(pp_spec_build(NULL, defs, 1, &a, &td.diag, &spec), 0);
    for (int s = 0; s < spec.stages; s++)
        ck_assert(spec.recompute[s]);
    /* the default input share: one buffer of 2 per layer, 1 layer per stage */
    ck_assert_double_eq_tol(spec.cost.recompute_input, 0.5, 1e-12);
    pp_define defs2[] = {{"memory.recompute", "except_last"}, {"layers", "16"}};
    ck_assert_int_eq(pp_spec_build(NULL, defs2, 2, &a, &td.diag, &spec), 0);
    ck_assert(spec.recompute[0] && !spec.recompute[spec.stages - 1]);
    ck_assert_double_eq_tol(spec.cost.recompute_input, 4.0 / 32, 1e-12);
    tu_diag_close(&td);
    pp_arena_free(&a);
}
END_TEST

START_TEST(test_spec_errors)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"memory { recompute = sometimes }\n", "expected never, always or except_last"},
        {"memory { recompute = always\nrecompute_stages = [1] }\n", "not both"},
        {"memory { recompute_stages = [4] }\n", "entry 0: expected a stage number (0..3), got '4'"},
        {"memory { recompute_stages = 2 }\n", "expected a list of stage numbers"},
        {"memory { input = 2 }\nmemory { recompute = always }\n", "more than memory.activation"},
        {"memory { recompte = always }\n", "did you mean 'recompute'?"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        comp c;
        ck_assert_int_ne(compile_text(&c, cases[k].text, "spec"), 0);
        ck_assert_msg(strstr(tu_diag_text(&c.td), cases[k].want), "%s: got %s", cases[k].text,
                      tu_diag_text(&c.td));
        comp_free(&c);
    }
}
END_TEST

/* Index of op kind(stage, mb) on device d, or -1. */
static int find_op(const pp_plan *p, int d, int kind, int s, int m)
{
    for (int i = 0; i < p->dev[d].n; i++)
        if (p->dev[d].ops[i].kind == kind && p->dev[d].ops[i].stage == s && p->dev[d].ops[i].mb == m)
            return i;
    return -1;
}

static void move_op(pp_plan *p, int d, int from, int to)
{
    pp_op op = p->dev[d].ops[from];
    if (from < to)
        memmove(&p->dev[d].ops[from], &p->dev[d].ops[from + 1], (size_t)(to - from) * sizeof op);
    else
        memmove(&p->dev[d].ops[to + 1], &p->dev[d].ops[to], (size_t)(from - to) * sizeof op);
    p->dev[d].ops[to] = op;
}

static const char *verify_text(pp_plan *p, tu_diag *td)
{
    pp_verify(p, NULL, &td->diag);
    return tu_diag_text(td);
}

START_TEST(test_verifier)
{
    const char *text = "devices = 2\nmicrobatches = 2\nschedule = gpipe\nmemory { recompute = always }\n";
    comp c;
    ck_assert_int_eq(compile_text(&c, text, "lower"), 0);
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_int_eq(pp_verify(&c.plan, NULL, &td.diag), 0);
    /* R after its B */
    int r = find_op(&c.plan, 0, PP_OP_R, 0, 1), b = find_op(&c.plan, 0, PP_OP_B, 0, 1);
    move_op(&c.plan, 0, r, b);
    ck_assert_ptr_nonnull(strstr(verify_text(&c.plan, &td), "(R0.1): runs after B0.1"));
    move_op(&c.plan, 0, b, r);
    tu_diag_close(&td);
    /* R before its F */
    tu_diag_open(&td);
    r = find_op(&c.plan, 0, PP_OP_R, 0, 1);
    move_op(&c.plan, 0, r, 0);
    ck_assert_ptr_nonnull(strstr(verify_text(&c.plan, &td), "(R0.1): runs before F0.1"));
    move_op(&c.plan, 0, 0, r);
    tu_diag_close(&td);
    /* one R missing: recompute is all micro-batches of a stage or none */
    tu_diag_open(&td);
    r = find_op(&c.plan, 1, PP_OP_R, 1, 0);
    pp_op saved = c.plan.dev[1].ops[r];
    c.plan.dev[1].ops[r] = (pp_op){.kind = PP_OP_F, .stage = 1, .mb = 0, .peer = -1, .group = -1};
    ck_assert_ptr_nonnull(strstr(verify_text(&c.plan, &td), "R1.0 is missing (stage 1 recomputes: R1.1"));
    tu_diag_close(&td);
    /* twice */
    tu_diag_open(&td);
    c.plan.dev[1].ops[r] = saved;
    int r2 = find_op(&c.plan, 1, PP_OP_R, 1, 1);
    c.plan.dev[1].ops[r2] = saved;
    ck_assert_ptr_nonnull(strstr(verify_text(&c.plan, &td), "(R1.0): duplicate, first at op"));
    tu_diag_close(&td);
    /* on the wrong device */
    tu_diag_open(&td);
    c.plan.dev[1].ops[r2] = (pp_op){.kind = PP_OP_R, .stage = 0, .mb = 1, .peer = -1, .group = -1};
    ck_assert_ptr_nonnull(strstr(verify_text(&c.plan, &td), "(R0.1): stage 0 is placed on device 0"));
    tu_diag_close(&td);
    comp_free(&c);
}
END_TEST

/* gpipe, 4 devices, 8 micro-batches, 16 layers: recompute adds F to every
 * recomputed (stage, mb)'s device time, cuts the peak of full activation
 * sets to 1, and counts the kept inputs at 4/32 of a set each. */
START_TEST(test_simulate)
{
    const char *base = "devices = 4\nmicrobatches = 8\nschedule = gpipe\nmodel mlp { layers = 16 }\n"
                       "cost { F = 1.5\nB = 2 }\n";
    char text[512];
    comp n, a, e;
    ck_assert_int_eq(compile_text(&n, base, "sim"), 0);
    snprintf(text, sizeof text, "%smemory { recompute = always }\n", base);
    ck_assert_int_eq(compile_text(&a, text, "sim"), 0);
    snprintf(text, sizeof text, "%smemory { recompute = except_last }\n", base);
    ck_assert_int_eq(compile_text(&e, text, "sim"), 0);
    for (int d = 0; d < 4; d++) {
        ck_assert_double_eq_tol(a.sim.busy[d], n.sim.busy[d] + 8 * 1.5, 1e-9);
        ck_assert_double_eq_tol(e.sim.busy[d], n.sim.busy[d] + (d < 3 ? 8 * 1.5 : 0), 1e-9);
        ck_assert_int_eq(n.sim.peak_act[d], 8);
        ck_assert_double_eq_tol(n.sim.peak_mem[d], 8, 1e-12);
        ck_assert_int_eq(a.sim.peak_act[d], 1);
        /* all 8 inputs after the last F; at the first R, 7 inputs + 1 set */
        ck_assert_double_eq_tol(a.sim.peak_mem[d], 1 + 7 * 0.125, 1e-12);
        ck_assert_int_eq(e.sim.peak_act[d], d < 3 ? 1 : 8);
    }
    /* always: the last device's 8 R sit on the critical path.  except_last:
     * device 2 now takes R + B = 3.5 per micro-batch against the last
     * device's B = 2, so its R are on the critical path too, all but the
     * first, which runs while B3.0's gradient is still on its way. */
    ck_assert_double_eq_tol(a.sim.makespan, n.sim.makespan + 8 * 1.5, 1e-9);
    ck_assert_double_eq_tol(e.sim.makespan, n.sim.makespan + 7 * 1.5, 1e-9);
    comp_free(&n);
    comp_free(&a);
    comp_free(&e);

    /* the verifier's memory check counts the same: limit 3 rejects plain gpipe, passes with recompute */
    snprintf(text, sizeof text, "%smemory { limit = 3 }\n", base);
    ck_assert_int_ne(compile_text(&n, text, "sim"), 0);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&n.td), "holds activation memory 4, over the memory limit 3 (peak memory 8)"));
    comp_free(&n);
    snprintf(text, sizeof text, "%smemory { limit = 3\nrecompute = always }\n", base);
    ck_assert_msg(compile_text(&a, text, "sim") == 0, "%s", tu_diag_text(&a.td));
    comp_free(&a);
    snprintf(text, sizeof text, "%smemory { limit = 1.8\nrecompute = always }\n", base);
    ck_assert_int_ne(compile_text(&a, text, "sim"), 0);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&a.td), "holds activation memory 1.875, over the memory limit 1.8 (peak memory 1.875)"));
    comp_free(&a);
}
END_TEST

START_TEST(test_golden)
{
    const char *text = "devices = 2\nmicrobatches = 2\nschedule = 1f1b\nmemory { recompute = except_last }\n";
    comp c;
    ck_assert_int_eq(compile_text(&c, text, "sim"), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(pp_emit_json(f, &c.spec, &c.plan, &c.sim), 0);
    pp_timeline_opts o = {.width = 80};
    ck_assert_int_eq(pp_emit_timeline(f, &c.plan, &c.sim, &o), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "{\"op\": \"R\", \"stage\": 0, \"mb\": 0}"));
    ck_assert_ptr_nonnull(strstr(buf, "R recomputed forward"));
    tu_check_golden(buf, "tests/golden/recompute/1f1b_except_last.txt");
    free(buf);
    comp_free(&c);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("recompute");
    TCase *tc = tcase_create("recompute");
    tcase_add_test(tc, test_modes);
    tcase_add_test(tc, test_per_stage_and_define);
    tcase_add_test(tc, test_spec_errors);
    tcase_add_test(tc, test_verifier);
    tcase_add_test(tc, test_simulate);
    tcase_add_test(tc, test_golden);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(make_suite());
}
