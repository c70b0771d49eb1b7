/*
 * test_custom.c — explicit orders (`schedule custom` + `order { ... }`):
 * the ROW token and order rows in the parser, their reading in spec.c, and
 * the custom policy (policy_custom.c).
 *
 * An order that copies a policy's compute order compiles to exactly that
 * policy's lowered plan (plain, interleaved, split backward, V-shape);
 * schedules/custom.pp compiles, verifies and times as its comment says;
 * each bad order in tests/golden/custom/NAME.pp gives exactly the messages
 * in NAME.err, every one pointing at a token; and no prefix or byte
 * mutation of schedules/custom.pp crashes the passes (run under ASan).
 */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* One compilation as ppcc runs it, up to verify (and simulate if ok). */
typedef struct comp {
    pp_arena arena;
    tu_diag diag;
    pp_ast ast;
    pp_spec spec;
    pp_plan plan;
    pp_sim sim;
    int errors;
    bool planned, simulated;
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
        t->errors = pp_policy_run(&t->spec, &t->plan, d);
        t->planned = t->errors == 0;
    }
    if (!t->errors)
        t->errors = pp_lower(&t->plan, d);
    if (!t->errors) {
        pp_verify_opts vo = {.act_size = t->spec.act_size, .mem_limit = t->spec.mem_limit};
        t->errors = pp_verify(&t->plan, &vo, d);
    }
    if (!t->errors) {
        t->errors = pp_simulate(&t->plan, &t->spec.cost, &t->sim, d);
        t->simulated = t->errors == 0;
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
    /* As the file's comment says: 1F1B's makespan at this cost. */
    ck_assert_double_eq_tol(t.sim.makespan, 37.75, 1e-9);
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
    tcase_add_test(tc, mutations);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }
