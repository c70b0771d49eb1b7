/*
 * test_custom.c — explicit orders (`schedule custom` + `order { ... }`):
 * the ROW token and order rows in the parser, their reading in spec.c, and
 * the custom policy (policy_custom.c).
 *
 * An order that copies a policy's compute order compiles to exactly that
 * policy's lowered plan (plain, interleaved, split backward, V-shape);
 * schedules/custom.pp compiles, verifies and times as its comment says;
 * each bad order in tests/golden/custom/NAME.pp gives exactly the messages
 * in NAME.err, every one pointing at a token; errors of the verifier and of
 * lowering on a plan from an order (a memory limit, with and without
 * recompute; deadlocks on plans built by hand) add a note at a token and
 * are otherwise byte-identical to those without an order; and no prefix or byte
 * mutation of schedules/custom.pp crashes the passes (run under ASan).
 */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* One compilation as ppcc runs it: pp_parse, pp_spec_build, then
 * pp_compile, the driver ppcc's command line calls. */
typedef struct comp {
    pp_arena arena;
    tu_diag diag;
    pp_ast ast;
    pp_spec spec;
    pp_plan plan;
    pp_sim sim;
    int errors;
    bool planned, simulated; /* the policy made a plan; every pass succeeded */
} comp;

static void comp_run(comp *t, const char *path, const char *text, const pp_define *defs, int ndefs)
{
    memset(t, 0, sizeof *t);
    tu_diag_open(&t->diag);
    pp_diag *d = &t->diag.diag;
    t->errors = pp_parse(path, text, strlen(text), &t->arena, d, &t->ast);
    if (!t->errors)
        t->errors = pp_spec_build(&t->ast, defs, ndefs, &t->arena, d, &t->spec);
    if (!t->errors) {
        t->simulated = pp_compile(&t->spec, &t->plan, &t->sim, d) == 0;
        t->planned = t->plan.dev != NULL;
    }
    /* A pass may return 1 for several errors (pp_policy_run does). */
    t->errors = d->errors;
}

static void comp_end(comp *t)
{
    if (t->simulated)
        pp_sim_free(&t->sim, t->plan.devices);
    if (t->planned)
        pp_plan_free(&t->plan);
    tu_diag_close(&t->diag);
    pp_arena_free(&t->arena);
}

static char *read_src(const char *rel)
{
    char *text = tu_read_file(tu_src_path(rel), NULL);
    ck_assert_msg(text != NULL, "missing %s", rel);
    return text;
}

/* ------------------------------------------------------------------ */
/* An order copied from a policy is that policy                         */
/* ------------------------------------------------------------------ */

/* Appends `order { device d: ... }` holding the compute ops of plan (as
 * the policy generated them, before lowering) to buf. */
static size_t print_order(const pp_plan *p, char *buf, size_t size, size_t n)
{
    n += (size_t)snprintf(buf + n, size - n, "order {\n");
    for (int d = 0; d < p->devices; d++) {
        n += (size_t)snprintf(buf + n, size - n, "  device %d:", d);
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_op *op = &p->dev[d].ops[i];
            if (pp_op_is_compute(op->kind))
                n += (size_t)snprintf(buf + n, size - n, " %s%d.%d", pp_op_name(op->kind), op->stage, op->mb);
        }
        n += (size_t)snprintf(buf + n, size - n, "\n");
    }
    n += (size_t)snprintf(buf + n, size - n, "}\n");
    ck_assert(n < size);
    return n;
}

static void expect_same_as(const char *policy, const char *shape)
{
    static char text[1 << 16], custom[1 << 17];
    snprintf(text, sizeof text, "%s\nschedule %s\n", shape, policy);
    /* The policy's own compute order, before lowering. */
    pp_arena a = {0};
    tu_diag td;
    tu_diag_open(&td);
    pp_ast ast;
    pp_spec spec;
    pp_plan gen = {0};
    ck_assert_int_eq(pp_parse("gen.pp", text, strlen(text), &a, &td.diag, &ast), 0);
    ck_assert_int_eq(pp_spec_build(&ast, NULL, 0, &a, &td.diag, &spec), 0);
    ck_assert_msg(pp_policy_run(&spec, &gen, &td.diag) == 0, "%s: %s", policy, tu_diag_text(&td));
    size_t n = (size_t)snprintf(custom, sizeof custom, "%s\nschedule custom\n", shape);
    print_order(&gen, custom, sizeof custom, n);
    bool split = gen.split_backward;
    pp_plan_free(&gen);
    tu_diag_close(&td);
    pp_arena_free(&a);

    comp ref, mine;
    comp_run(&ref, "ref.pp", text, NULL, 0);
    comp_run(&mine, "custom.pp", custom, NULL, 0);
    ck_assert_msg(ref.errors == 0, "%s: %s", policy, tu_diag_text(&ref.diag));
    ck_assert_msg(mine.errors == 0, "%s as custom: %s\n%s", policy, tu_diag_text(&mine.diag), custom);
    ck_assert_str_eq(mine.plan.schedule, "custom");
    ck_assert_int_eq(mine.plan.split_backward, split);
    ck_assert_int_eq(mine.plan.devices, ref.plan.devices);
    for (int d = 0; d < ref.plan.devices; d++) {
        ck_assert_int_eq(mine.plan.dev[d].n, ref.plan.dev[d].n);
        for (int i = 0; i < ref.plan.dev[d].n; i++) {
            char x[96], y[96];
            const pp_op *u = &mine.plan.dev[d].ops[i], *v = &ref.plan.dev[d].ops[i];
            ck_assert_msg(u->kind == v->kind && u->comm == v->comm && u->stage == v->stage && u->mb == v->mb &&
                              u->peer == v->peer && u->group == v->group,
                          "%s: device %d op %d: %s vs %s", policy, d, i,
                          pp_op_format(&mine.plan.dev[d].ops[i], x, sizeof x),
                          pp_op_format(&ref.plan.dev[d].ops[i], y, sizeof y));
        }
    }
    ck_assert_double_eq(mine.sim.makespan, ref.sim.makespan);
    comp_end(&ref);
    comp_end(&mine);
}

START_TEST(copies_of_policies)
{
    expect_same_as("gpipe", "devices = 4 microbatches = 6");
    expect_same_as("1f1b", "devices = 4 microbatches = 8 cost { B = 2 comm = 0.5 }");
    expect_same_as("1f1b", "devices = 5 microbatches = 3");
    expect_same_as("interleaved", "devices = 4 virtual = 2 microbatches = 8");
    expect_same_as("zb-h1", "devices = 4 microbatches = 8 cost { W = 1 }");
    expect_same_as("zbv", "devices = 4 virtual = 2 placement = vshape microbatches = 8 cost { W = 1 }");
    expect_same_as("dualpipev", "devices = 4 virtual = 2 placement = vshape microbatches = 10 cost { W = 1 }");
}
END_TEST

/* ------------------------------------------------------------------ */
/* The shipped example                                                  */
/* ------------------------------------------------------------------ */

START_TEST(shipped_example)
{
    char *text = read_src("schedules/custom.pp");
    comp t;
    comp_run(&t, "schedules/custom.pp", text, NULL, 0);
    ck_assert_msg(t.errors == 0, "%s", tu_diag_text(&t.diag));
    /* 1F1B with one more warm-up forward: device d starts with 4 - d
     * forwards (the last one alternates from its second forward). */
    ck_assert_int_eq(t.spec.order->rows[0].n, 16);
    ck_assert(!t.spec.order->split && !t.plan.split_backward);
    static const int first_b[4] = {5, 4, 3, 2};
    for (int d = 0; d < 4; d++) {
        int k = 0;
        const pp_device *dv = &t.plan.dev[d];
        for (int i = 0; i < dv->n && dv->ops[i].kind != PP_OP_B; i++)
            k += dv->ops[i].kind == PP_OP_F;
        ck_assert_int_eq(k, first_b[d]);
        ck_assert_int_eq(t.sim.peak_act[d], 5 - d);
    }
    /* As the file's comment says: 36.5 (overlapped transfers, the order's
     * dataflow bound), 1F1B's 37. */
    ck_assert_double_eq_tol(t.sim.makespan, 36.5, 1e-9);
    comp_end(&t);

    /* -D schedule=1f1b on it: the order is refused, not ignored. */
    pp_define other = {"schedule", "1f1b"};
    comp_run(&t, "schedules/custom.pp", text, &other, 1);
    ck_assert_int_eq(t.errors, 1);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&t.diag), "error: order { ... } needs schedule custom, but schedule = 1f1b"));
    comp_end(&t);

    /* -D microbatches=16: micro-batches 8..15 are missing everywhere;
     * 8 of the 16 ops of each device are named, then one line sums up. */
    pp_define more = {"microbatches", "16"};
    comp_run(&t, "schedules/custom.pp", text, &more, 1);
    ck_assert_int_eq(t.errors, 4 * (8 + 1));
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&t.diag), "error: order: F1.8 is missing (device 1)"));
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&t.diag), "error: order: B0.11 is missing (device 0)"));
    ck_assert_ptr_null(strstr(tu_diag_text(&t.diag), "error: order: F0.12 is missing"));
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&t.diag), "error: order: 8 more ops are missing (device 0)"));
    comp_end(&t);
    free(text);

    /* -D schedule=custom on a file without an order. */
    text = read_src("schedules/1f1b.pp");
    pp_define custom = {"schedule", "custom"};
    comp_run(&t, "schedules/1f1b.pp", text, &custom, 1);
    ck_assert_int_eq(t.errors, 1);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&t.diag), "ppcc: error: custom: needs an explicit order"));
    comp_end(&t);
    free(text);
}
END_TEST

/* Rows lex as one ROW token however they are spaced; op words stay words. */
START_TEST(row_syntax)
{
    static const char text[] = "devices = 2 microbatches = 1 schedule custom\n"
                               "order { device 1 :F1.0 B1.0   device\t0:F0.0\n B0.0 }\n";
    comp t;
    comp_run(&t, "rows.pp", text, NULL, 0);
    ck_assert_msg(t.errors == 0, "%s", tu_diag_text(&t.diag));
    const pp_order *o = t.spec.order;
    ck_assert_int_eq(o->rows[0].n, 2);
    ck_assert_int_eq(o->rows[1].n, 2);
    ck_assert_int_eq(o->rows[1].ops[0].kind, PP_OP_F);
    ck_assert_int_eq(o->rows[1].ops[1].kind, PP_OP_B);
    ck_assert_int_eq(o->rows[0].ops[1].stage, 0);
    ck_assert_uint_eq(o->rows[1].ops[0].offset, (size_t)(strstr(text, "F1.0") - text));
    ck_assert_uint_eq(o->rows[0].offset, (size_t)(strstr(text, "device\t0") - text));
    ck_assert_uint_eq(o->offset, (size_t)(strstr(text, "order") - text));
    comp_end(&t);

    /* A -D value cannot hold a row; a lone ':' is still a stray character. */
    pp_arena a = {0};
    char err[160];
    ck_assert_ptr_null(pp_parse_value("device 0:", &a, err, sizeof err));
    ck_assert_str_eq(err, "unexpected row 'device 0:', expected a value");
    pp_arena_free(&a);
    comp_run(&t, "colon.pp", "devices : 4\n", NULL, 0);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&t.diag), "colon.pp:1:9: error: unexpected character ':'"));
    comp_end(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Golden error messages                                                */
/* ------------------------------------------------------------------ */

static const char *const golden_cases[] = {
    "unknown_op", "out_of_range", "wrong_device", "twice", "missing", "b_before_f", "w_before_b", "w_missing",
    "deadlock", "deadlock3", "device_rows", "not_custom", "no_order", "misplaced_rows", "many_missing",
};

START_TEST(golden_errors)
{
    const char *name = golden_cases[_i];
    char rel[256], err_rel[256];
    snprintf(rel, sizeof rel, "tests/golden/custom/%s.pp", name);
    snprintf(err_rel, sizeof err_rel, "tests/golden/custom/%s.err", name);
    char *text = read_src(rel);
    comp t;
    comp_run(&t, rel, text, NULL, 0);
    free(text);
    const char *out = tu_diag_text(&t.diag);
    ck_assert_msg(t.errors > 0, "%s: no error reported", name);
    ck_assert_msg(!t.planned, "%s: a plan was made", name);
    int printed = 0;
    for (const char *p = out; (p = strstr(p, ": error: ")) != NULL; p++)
        printed++;
    ck_assert_int_eq(printed, t.errors < 20 ? t.errors : 20);
    tu_check_golden(out, err_rel);
    comp_end(&t);
}
END_TEST

/* Orders that pass policy_custom.c's checks but that a later pass refuses:
 * the error names device and op index as for any plan, and a note points
 * at the token of the op (or, for an op the compiler inserted, at the
 * listed op next to it). */
static const char *const late_cases[] = {"mem_limit", "mem_recompute"};

START_TEST(golden_late_errors)
{
    const char *name = late_cases[_i];
    char rel[256], err_rel[256];
    snprintf(rel, sizeof rel, "tests/golden/custom/%s.pp", name);
    snprintf(err_rel, sizeof err_rel, "tests/golden/custom/%s.err", name);
    char *text = read_src(rel);
    comp t;
    comp_run(&t, rel, text, NULL, 0);
    free(text);
    ck_assert_msg(t.planned, "%s: refused before the plan: %s", name, tu_diag_text(&t.diag));
    ck_assert_ptr_eq(t.plan.order, t.spec.order);
    ck_assert_int_eq(t.errors, 1);
    tu_check_golden(tu_diag_text(&t.diag), err_rel);
    comp_end(&t);
}
END_TEST

/* Strips every note (a "note:" line, its source line and its caret). */
static void strip_notes(const char *in, char *out, size_t size)
{
    size_t n = 0;
    int skip = 0;
    for (const char *l = in; *l;) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l + 1) : strlen(l);
        if (strstr(l, ": note: ") && strstr(l, ": note: ") < l + len)
            skip = 3;
        if (skip > 0)
            skip--;
        else {
            ck_assert(n + len < size);
            memcpy(out + n, l, len);
            n += len;
        }
        l += len;
    }
    out[n] = '\0';
}

/* Runs pass on p with and without p->order: without it the messages are
 * exactly those of any plan (no note), with it the same plus notes. */
static void expect_notes(pp_plan *p, int (*pass)(pp_plan *, pp_diag *), const char *err_rel)
{
    static char bare[1 << 14], stripped[1 << 14];
    pp_plan copy;
    ck_assert_int_eq(pp_plan_init(&copy, p->schedule, p->devices, p->stages, p->microbatches, p->placement), 0);
    copy.split_backward = p->split_backward;
    for (int d = 0; d < p->devices; d++)
        for (int i = 0; i < p->dev[d].n; i++)
            pp_plan_push(&copy, d, p->dev[d].ops[i]);

    tu_diag with, without;
    tu_diag_open(&with);
    tu_diag_open(&without);
    ck_assert_int_gt(pass(p, &with.diag), 0);
    copy.order = NULL;
    ck_assert_int_gt(pass(&copy, &without.diag), 0);
    ck_assert_int_eq(with.diag.errors, without.diag.errors);
    snprintf(bare, sizeof bare, "%s", tu_diag_text(&without));
    ck_assert_ptr_null(strstr(bare, "note:"));
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&with), ": note: "));
    strip_notes(tu_diag_text(&with), stripped, sizeof stripped);
    ck_assert_str_eq(stripped, bare);
    tu_check_golden(tu_diag_text(&with), err_rel);
    tu_diag_close(&with);
    tu_diag_close(&without);
    pp_plan_free(&copy);
}

static int verify_pass(pp_plan *p, pp_diag *d)
{
    return pp_verify(p, &(pp_verify_opts){0}, d);
}

static int lower_pass(pp_plan *p, pp_diag *d) { return pp_lower(p, d); }

/* No order that passes the checks deadlocks later: the compute replay of
 * check 4 is what lowering needs to succeed, and the verifier replays what
 * lowering proved.  So the deadlock notes are shown on plans built here by
 * hand, each carrying the order of a golden file. */
START_TEST(hand_built_deadlocks)
{
    /* 1. deadlock.pp's order, generated without the policy's checks and
     * lowered: lowering finds no communication order, and each device of
     * the cycle gets a note at the listed op it cannot reach. */
    char *text = read_src("tests/golden/custom/deadlock.pp");
    pp_arena a = {0};
    tu_diag td;
    tu_diag_open(&td);
    pp_ast ast;
    pp_spec spec;
    ck_assert_int_eq(pp_parse("tests/golden/custom/deadlock.pp", text, strlen(text), &a, &td.diag, &ast), 0);
    ck_assert_int_eq(pp_spec_build(&ast, NULL, 0, &a, &td.diag, &spec), 0);
    pp_plan p;
    ck_assert_int_eq(pp_plan_init(&p, "custom", spec.devices, spec.stages, spec.microbatches, spec.placement), 0);
    ck_assert_int_eq(pp_policy_custom.generate(&spec, &p, &td.diag), 0);
    ck_assert_ptr_eq(p.order, spec.order);
    expect_notes(&p, lower_pass, "tests/golden/custom/deadlock_lowered.err");
    pp_plan_free(&p);
    pp_arena_free(&a);
    tu_diag_close(&td);
    free(text);

    /* 2. hand_deadlock.pp lowered by hand with device 0 waiting for the
     * gradient before it sends the activation: the verifier's replay. */
    comp t;
    text = read_src("tests/golden/custom/hand_deadlock.pp");
    comp_run(&t, "tests/golden/custom/hand_deadlock.pp", text, NULL, 0);
    ck_assert_msg(t.errors == 0, "%s", tu_diag_text(&t.diag));
    ck_assert_int_eq(pp_plan_init(&p, "custom", 2, 2, 1, t.spec.placement), 0);
    p.order = t.spec.order;
    static const pp_op dev0[] = {
        {.kind = PP_OP_RECV, .comm = PP_COMM_GRAD, .stage = 1, .mb = 0, .peer = 1, .group = 0},
        {.kind = PP_OP_F, .stage = 0, .mb = 0, .peer = -1, .group = -1},
        {.kind = PP_OP_SEND, .comm = PP_COMM_ACT, .stage = 0, .mb = 0, .peer = 1, .group = 1},
        {.kind = PP_OP_B, .stage = 0, .mb = 0, .peer = -1, .group = -1},
        {.kind = PP_OP_UPDATE, .stage = -1, .mb = -1, .peer = -1, .group = -1},
        {.kind = PP_OP_FLUSH, .stage = -1, .mb = -1, .peer = -1, .group = -1},
    };
    static const pp_op dev1[] = {
        {.kind = PP_OP_RECV, .comm = PP_COMM_ACT, .stage = 0, .mb = 0, .peer = 0, .group = 0},
        {.kind = PP_OP_F, .stage = 1, .mb = 0, .peer = -1, .group = -1},
        {.kind = PP_OP_B, .stage = 1, .mb = 0, .peer = -1, .group = -1},
        {.kind = PP_OP_SEND, .comm = PP_COMM_GRAD, .stage = 1, .mb = 0, .peer = 0, .group = 1},
        {.kind = PP_OP_UPDATE, .stage = -1, .mb = -1, .peer = -1, .group = -1},
        {.kind = PP_OP_FLUSH, .stage = -1, .mb = -1, .peer = -1, .group = -1},
    };
    for (size_t i = 0; i < sizeof dev0 / sizeof *dev0; i++)
        pp_plan_push(&p, 0, dev0[i]);
    for (size_t i = 0; i < sizeof dev1 / sizeof *dev1; i++)
        pp_plan_push(&p, 1, dev1[i]);
    expect_notes(&p, verify_pass, "tests/golden/custom/hand_deadlock.err");

    /* 3. The same plan with F0.0 and B0.0 swapped: device 0's list no
     * longer matches its row (its first listed op is B0.0, the row's first
     * token F0.0), so its errors get no note rather than a wrong one;
     * device 1's still does. */
    pp_op f = p.dev[0].ops[1];
    p.dev[0].ops[1] = p.dev[0].ops[3];
    p.dev[0].ops[3] = f;
    expect_notes(&p, verify_pass, "tests/golden/custom/hand_b_before_f.err");
    pp_plan_free(&p);
    comp_end(&t);
    free(text); /* the ast (so the order's source) points into it */
}
END_TEST

/* ------------------------------------------------------------------ */
/* Robustness                                                           */
/* ------------------------------------------------------------------ */

static void survive(const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    comp t;
    comp_run(&t, "fuzz.pp", copy, NULL, 0);
    ck_assert_int_eq(t.errors > 0, t.diag.diag.errors > 0);
    comp_end(&t);
    free(copy);
}

START_TEST(mutations)
{
    size_t len;
    char *text = tu_read_file(tu_src_path("schedules/custom.pp"), &len);
    ck_assert_ptr_nonnull(text);
    const char *order = strstr(text, "order {");
    ck_assert_ptr_nonnull(order);
    size_t from = (size_t)(order - text);
    for (size_t n = from; n <= len; n += 3)
        survive(text, n);
    static const char bytes[] = {'\0', ':', '{', '}', '.', 'W', 'F', 'B', '9', ' ', '\n', '-'};
    char *m = malloc(len + 1);
    for (size_t i = from; i < from + 600 && i < len; i += 5) {
        memcpy(m, text, len + 1);
        m[i] = bytes[i % sizeof bytes];
        survive(m, len);
    }
    free(m);
    free(text);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("custom");
    TCase *tc = tcase_create("custom");
    tcase_add_test(tc, copies_of_policies);
    tcase_add_test(tc, shipped_example);
    tcase_add_test(tc, row_syntax);
    tcase_add_loop_test(tc, golden_errors, 0, (int)(sizeof golden_cases / sizeof golden_cases[0]));
    tcase_add_loop_test(tc, golden_late_errors, 0, (int)(sizeof late_cases / sizeof late_cases[0]));
    tcase_add_test(tc, hand_built_deadlocks);
    tcase_add_test(tc, mutations);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }
