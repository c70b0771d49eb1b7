/*
 * test_async.c — the asynchronous policies (docs/async.md): pipedream's
 * and 2bw's compute orders against a transcription, the verifier's rule for
 * per-B updates (accepted for pipedream plans only, with each of its
 * refusals), a sweep of D 1..8 x M 1..16 through lower + verify with the
 * counts checked here, the simulated stats equal to 1F1B's, the plan
 * JSON's pipeline.async, and schedule.vertical_sync from the DSL to the plan.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

typedef struct compiled {
    pp_spec spec;
    pp_plan plan;
    pp_sim sim;
    int placement[64];
    double sF[64], sB[64], sW[64];
} compiled;

/* Policy (+ lower + verify + simulate when full) on D devices, M mbs. */
static void compile(compiled *c, const char *policy, int D, int M, bool full)
{
    memset(c, 0, sizeof *c);
    pp_spec *s = &c->spec;
    snprintf(s->schedule, sizeof s->schedule, "%s", policy);
    s->devices = s->stages = D;
    s->chunks = 1;
    s->microbatches = M;
    s->placement_kind = PP_PLACE_LOOP;
    for (int st = 0; st < D; st++) {
        c->placement[st] = st;
        c->sF[st] = 1;
        c->sB[st] = 2;
    }
    s->placement = c->placement;
    s->cost = (pp_cost){.F = 1, .B = 2, .stage_F = c->sF, .stage_B = c->sB, .stage_W = c->sW};
    s->act_size = 1;
    snprintf(s->model.kind, sizeof s->model.kind, "mlp");
    s->model.layers = D;
    s->model.hidden = 4;
    s->model.batch = M;
    s->model.lr = 0.01;
    tu_diag t;
    tu_diag_open(&t);
    ck_assert_msg(pp_policy_run(s, &c->plan, &t.diag) == 0, "%s D=%d M=%d: %s", policy, D, M, tu_diag_text(&t));
    if (full) {
        ck_assert_msg(pp_lower(&c->plan, &t.diag) == 0, "%s D=%d M=%d: lower: %s", policy, D, M,
                      tu_diag_text(&t));
        pp_verify_opts o = {.act_size = 1};
        ck_assert_msg(pp_verify(&c->plan, &o, &t.diag) == 0, "%s D=%d M=%d: verify: %s", policy, D, M,
                      tu_diag_text(&t));
        ck_assert_msg(pp_simulate(&c->plan, &s->cost, &o, &c->sim, &t.diag) == 0, "%s: simulate: %s", policy,
                      tu_diag_text(&t));
    }
    tu_diag_close(&t);
}

static void release(compiled *c, bool full)
{
    if (full)
        pp_sim_free(&c->sim, c->plan.devices);
    pp_plan_free(&c->plan);
}

/* Device d's ops, space-separated ("F0.1 B0.0 update ... flush"). */
static char *ops_text(const pp_plan *p, int d)
{
    size_t cap = 64 + (size_t)p->dev[d].n * 32, n = 0;
    char *out = malloc(cap), buf[96];
    out[0] = '\0';
    for (int i = 0; i < p->dev[d].n; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? " " : "", pp_op_format(&p->dev[d].ops[i], buf, sizeof buf));
    return out;
}

START_TEST(order_golden)
{
    /* Transcribed from the rule: warm-up D-d-1 forwards, F/B alternating,
     * pipedream an update after every B. */
    static const char *const pipedream[] = {
        "F0.0 F0.1 F0.2 B0.0 update F0.3 B0.1 update B0.2 update B0.3 update flush",
        "F1.0 F1.1 B1.0 update F1.2 B1.1 update F1.3 B1.2 update B1.3 update flush",
        "F2.0 B2.0 update F2.1 B2.1 update F2.2 B2.2 update F2.3 B2.3 update flush",
    };
    static const char *const twobw[] = {
        "F0.0 F0.1 F0.2 B0.0 F0.3 B0.1 B0.2 B0.3 update flush",
        "F1.0 F1.1 B1.0 F1.2 B1.1 F1.3 B1.2 B1.3 update flush",
        "F2.0 B2.0 F2.1 B2.1 F2.2 B2.2 F2.3 B2.3 update flush",
    };
    compiled c;
    compile(&c, "pipedream", 3, 4, false);
    ck_assert_int_eq(c.plan.async, PP_ASYNC_PIPEDREAM);
    for (int d = 0; d < 3; d++) {
        char *t = ops_text(&c.plan, d);
        ck_assert_str_eq(t, pipedream[d]);
        free(t);
    }
    release(&c, false);
    compile(&c, "2bw", 3, 4, false);
    ck_assert_int_eq(c.plan.async, PP_ASYNC_2BW);
    for (int d = 0; d < 3; d++) {
        char *t = ops_text(&c.plan, d);
        ck_assert_str_eq(t, twobw[d]);
        free(t);
    }
    release(&c, false);
}
END_TEST

/* Every shape: verified; F and B once per (stage, mb); pipedream one
 * update right after each B (comm ops aside), 2bw one update before flush,
 * the lowered plan of 2bw op for op 1F1B's; stats equal 1F1B's, which is
 * the closed form (D-1)/(M+D-1) on uniform costs. */
START_TEST(sweep)
{
    for (int D = 1; D <= 8; D++)
        for (int M = 1; M <= 16; M++) {
            compiled pd, bw, ref;
            compile(&pd, "pipedream", D, M, true);
            compile(&bw, "2bw", D, M, true);
            compile(&ref, "1f1b", D, M, true);
            for (int d = 0; d < D; d++) {
                const pp_device *dv = &pd.plan.dev[d];
                int nF = 0, nB = 0, nU = 0, last = -1; /* kind of the last non-comm op */
                for (int i = 0; i < dv->n; i++) {
                    int k = dv->ops[i].kind;
                    if (k == PP_OP_SEND || k == PP_OP_RECV)
                        continue;
                    if (k == PP_OP_UPDATE) {
                        ck_assert_msg(last == PP_OP_B, "pipedream D=%d M=%d d=%d op %d: update not after B", D, M, d, i);
                        nU++;
                    }
                    if (k == PP_OP_F || k == PP_OP_B) {
                        ck_assert_msg(last != PP_OP_B, "pipedream D=%d M=%d d=%d op %d: B without update", D, M, d, i);
                        ck_assert_int_eq(dv->ops[i].stage, d);
                        if (k == PP_OP_F)
                            nF++;
                        else
                            nB++;
                    }
                    last = k;
                }
                ck_assert_int_eq(nF, M);
                ck_assert_int_eq(nB, M);
                ck_assert_int_eq(nU, M);
                ck_assert_int_eq(dv->ops[dv->n - 1].kind, PP_OP_FLUSH);
                /* 2bw: the same lowered list as 1F1B */
                ck_assert_int_eq(bw.plan.dev[d].n, ref.plan.dev[d].n);
                for (int i = 0; i < ref.plan.dev[d].n; i++) {
                    const pp_op *a = &bw.plan.dev[d].ops[i], *b = &ref.plan.dev[d].ops[i];
                    ck_assert(a->kind == b->kind && a->comm == b->comm && a->stage == b->stage && a->mb == b->mb &&
                              a->peer == b->peer && a->group == b->group);
                }
            }
            double closed = (double)(D - 1) / (M + D - 1);
            ck_assert_msg(fabs(pd.sim.makespan - ref.sim.makespan) < 1e-9, "D=%d M=%d: makespan %g vs 1f1b %g", D, M,
                          pd.sim.makespan, ref.sim.makespan);
            ck_assert_msg(fabs(pd.sim.bubble - closed) < 1e-9, "D=%d M=%d: bubble %g, closed form %g", D, M,
                          pd.sim.bubble, closed);
            ck_assert(fabs(bw.sim.bubble - closed) < 1e-9);
            for (int d = 0; d < D; d++) {
                ck_assert_int_eq(pd.sim.peak_act[d], ref.sim.peak_act[d]);
                ck_assert_int_eq(pd.sim.peak_act[d], D - d < M ? D - d : M);
            }
            release(&pd, true);
            release(&bw, true);
            release(&ref, true);
        }
}
END_TEST

/* Index of the n-th op of `kind` on device d. */
static int nth(const pp_plan *p, int d, int kind, int n)
{
    for (int i = 0; i < p->dev[d].n; i++)
        if (p->dev[d].ops[i].kind == kind && n-- == 0)
            return i;
    return -1;
}

static void remove_op(pp_plan *p, int d, int i)
{
    pp_device *dv = &p->dev[d];
    memmove(dv->ops + i, dv->ops + i + 1, (size_t)(dv->n - i - 1) * sizeof *dv->ops);
    dv->n--;
}

static void insert_op(pp_plan *p, int d, int i, pp_op op)
{
    pp_device *dv = &p->dev[d];
    pp_plan_reserve(p, d, dv->n + 1);
    memmove(dv->ops + i + 1, dv->ops + i, (size_t)(dv->n - i) * sizeof *dv->ops);
    dv->ops[i] = op;
    dv->n++;
}

/* Verifies p; the errors must contain want. */
static void expect_refused(const pp_plan *p, const char *want)
{
    tu_diag t;
    tu_diag_open(&t);
    pp_verify_opts o = {.act_size = 1};
    ck_assert_int_gt(pp_verify(p, &o, &t.diag), 0);
    ck_assert_msg(strstr(tu_diag_text(&t), want) != NULL, "want '%s' in:\n%s", want, tu_diag_text(&t));
    tu_diag_close(&t);
}

START_TEST(verifier_rules)
{
    static const pp_op update = {.kind = PP_OP_UPDATE, .stage = -1, .mb = -1, .peer = -1, .group = -1};
    compiled c;
    /* d0 of D=2, M=2: F0.0 send F0.1 recv B0.0 update recv B0.1 update flush */
    compile(&c, "pipedream", 2, 2, true);
    int u0 = nth(&c.plan, 0, PP_OP_UPDATE, 0), b1 = nth(&c.plan, 0, PP_OP_B, 1);
    ck_assert_int_eq(u0, nth(&c.plan, 0, PP_OP_B, 0) + 1);

    remove_op(&c.plan, 0, u0); /* B0.0's update is gone */
    char want[128];
    snprintf(want, sizeof want, "device 0, op %d (B0.1): before the update of op %d (pipedream: one update per B)",
             b1 - 1, u0 - 1);
    expect_refused(&c.plan, want);
    insert_op(&c.plan, 0, u0, update);

    insert_op(&c.plan, 0, u0 + 1, update); /* a second update after B0.0 */
    snprintf(want, sizeof want, "device 0, op %d (update): not right after a B (pipedream: one update per B)", u0 + 1);
    expect_refused(&c.plan, want);
    remove_op(&c.plan, 0, u0 + 1);

    int ul = nth(&c.plan, 0, PP_OP_UPDATE, 1); /* the last B loses its update */
    remove_op(&c.plan, 0, ul);
    snprintf(want, sizeof want, "device 0, op %d (B0.1): no update after it (pipedream: one update per B)", ul - 1);
    expect_refused(&c.plan, want);
    insert_op(&c.plan, 0, ul, update);

    { /* back in shape: accepted */
        tu_diag t;
        tu_diag_open(&t);
        pp_verify_opts o = {.act_size = 1};
        ck_assert_msg(pp_verify(&c.plan, &o, &t.diag) == 0, "%s", tu_diag_text(&t));
        tu_diag_close(&t);
    }
    /* the same list in a synchronous plan: per-B updates are refused */
    c.plan.async = PP_ASYNC_NONE;
    expect_refused(&c.plan, "second update (the first is op");
    c.plan.async = PP_ASYNC_2BW;
    expect_refused(&c.plan, "second update (the first is op");
    c.plan.async = PP_ASYNC_PIPEDREAM;
    c.plan.split_backward = true;
    expect_refused(&c.plan, "plan: pipedream needs an unsplit backward");
    release(&c, true);

    /* two stages on one device: each update would move both */
    pp_plan p;
    int place[2] = {0, 0};
    ck_assert_int_eq(pp_plan_init(&p, "pipedream", 1, 2, 1, place), 0);
    p.async = PP_ASYNC_PIPEDREAM;
    int seq[][2] = {{PP_OP_F, 0}, {PP_OP_F, 1}, {PP_OP_B, 1}, {PP_OP_UPDATE, -1}, {PP_OP_B, 0}, {PP_OP_UPDATE, -1},
                    {PP_OP_FLUSH, -1}};
    for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++)
        pp_plan_push(&p, 0, (pp_op){.kind = (uint8_t)seq[i][0], .stage = seq[i][1], .mb = seq[i][1] < 0 ? -1 : 0,
                                    .peer = -1, .group = -1});
    expect_refused(&p, "plan: pipedream needs one stage per device, but stages 0 and 1 are on device 0");
    pp_plan_free(&p);
}
END_TEST

START_TEST(plan_json)
{
    const char *names[] = {"pipedream", "2bw", "1f1b"};
    const char *want[] = {"\"async\":\"pipedream\",\"vertical_sync\":false", "\"async\":\"2bw\",\"vertical_sync\":false",
                          NULL};
    for (int k = 0; k < 3; k++) {
        compiled c;
        compile(&c, names[k], 2, 4, true);
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        ck_assert_int_eq(pp_emit_json(f, &c.spec, &c.plan, &c.sim), 0);
        fclose(f);
        /* compact the pipeline line's spaces to match either layout */
        char *w = buf;
        for (char *r = buf; *r; r++)
            if (*r != ' ')
                *w++ = *r;
        *w = '\0';
        if (want[k])
            ck_assert_msg(strstr(buf, want[k]) != NULL, "%s: no %s in\n%.400s", names[k], want[k], buf);
        else
            ck_assert_ptr_null(strstr(buf, "\"async\""));
        free(buf);
        release(&c, true);
    }
}
END_TEST

/* Parses text with defs into a spec; returns the errors, diag in t. */
static int spec_of(const char *text, const pp_define *defs, int ndefs, pp_arena *a, tu_diag *t, pp_spec *s)
{
    pp_ast ast;
    int errors = pp_parse("t.pp", text, strlen(text), a, &t->diag, &ast);
    return errors ? errors : pp_spec_build(&ast, defs, ndefs, a, &t->diag, s);
}

/* schedule.vertical_sync (docs/async.md): the block and -D set it, the
 * pipedream policy copies it into the plan, the JSON says it; any other
 * schedule, or a value but 0/1, is an error naming the key. */
START_TEST(vertical_sync_key)
{
    struct {
        const char *text;
        pp_define def;
        bool want;
        const char *err; /* NULL: accepted */
    } cases[] = {
        {"devices = 3\nschedule pipedream { vertical_sync = 1 }\n", {NULL, NULL}, true, NULL},
        {"devices = 3\nschedule pipedream\n", {NULL, NULL}, false, NULL},
        {"devices = 3\nschedule pipedream\n", {"schedule.vertical_sync", "1"}, true, NULL},
        {"devices = 3\nschedule pipedream { vertical_sync = 1 }\n", {"schedule.vertical_sync", "0"}, false, NULL},
        {"devices = 3\nschedule pipedream { vertical_sync = 1 }\n", {"schedule", "2bw"}, false,
         "t.pp:2:22: error: schedule.vertical_sync: only schedule pipedream has a vertical sync, but schedule = 2bw"},
        {"schedule 1f1b\n", {"schedule.vertical_sync", "1"}, false,
         "-D schedule.vertical_sync=1: only schedule pipedream has a vertical sync, but schedule = 1f1b"},
        {"schedule pipedream { vertical_sync = 2 }\n", {NULL, NULL}, false, "vertical_sync: must be between 0 and 1"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        pp_arena a = {0};
        tu_diag t;
        tu_diag_open(&t);
        pp_spec s;
        int errors = spec_of(cases[k].text, &cases[k].def, cases[k].def.name ? 1 : 0, &a, &t, &s);
        if (cases[k].err) {
            ck_assert_msg(errors > 0 && strstr(tu_diag_text(&t), cases[k].err), "case %zu: want '%s', got '%s'", k,
                          cases[k].err, tu_diag_text(&t));
        } else {
            ck_assert_msg(errors == 0, "case %zu: %s", k, tu_diag_text(&t));
            ck_assert_int_eq(s.vertical_sync, cases[k].want);
            pp_plan p;
            memset(&p, 0, sizeof p);
            ck_assert_msg(pp_policy_run(&s, &p, &t.diag) == 0, "case %zu: %s", k, tu_diag_text(&t));
            ck_assert_int_eq(p.vertical_sync, cases[k].want);
            char *buf = NULL;
            size_t len = 0;
            FILE *f = open_memstream(&buf, &len);
            ck_assert_int_eq(pp_emit_json(f, &s, &p, NULL), 0);
            fclose(f);
            const char *want = cases[k].want ? "\"vertical_sync\":true" : "\"vertical_sync\":false";
            char *w = buf;
            for (char *r = buf; *r; r++)
                if (*r != ' ')
                    *w++ = *r;
            *w = '\0';
            ck_assert_msg(strstr(buf, want) != NULL, "case %zu: no %s in\n%.400s", k, want, buf);
            free(buf);
            pp_plan_free(&p);
        }
        tu_diag_close(&t);
        pp_arena_free(&a);
    }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("async");
    TCase *tc = tcase_create("async");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, order_golden);
    tcase_add_test(tc, sweep);
    tcase_add_test(tc, verifier_rules);
    tcase_add_test(tc, plan_json);
    tcase_add_test(tc, vertical_sync_key);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(make_suite()); }
