/*
 * test_policy.c — the compute orders of gpipe, 1f1b and interleaved against
 * the reference implementations, their invariants and their refusals.
 *
 * tests/golden/orders/<policy>.txt is written by tests/ref/reference_orders.py
 * from transcriptions of PyTorch's and Megatron's schedules (never from our
 * C code); every case in it is replayed here through pp_policy_run on a
 * hand-built spec and compared line by line.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test_util.h"

/* A spec as pp_spec_build would leave it, for the fields policies read. */
typedef struct test_spec {
    pp_spec spec;
    int placement[PP_MAX_STAGES];
} test_spec;

static void make_spec(test_spec *t, const char *schedule, int D, int M, int v, int group)
{
    memset(t, 0, sizeof *t);
    snprintf(t->spec.schedule, sizeof t->spec.schedule, "%s", schedule);
    t->spec.devices = D;
    t->spec.chunks = v;
    t->spec.stages = D * v;
    t->spec.microbatches = M;
    t->spec.group = group;
    t->spec.placement_kind = PP_PLACE_LOOP;
    t->spec.placement = t->placement;
    for (int s = 0; s < D * v; s++)
        t->placement[s] = s % D;
}

/* The invariants every compute order keeps: each F and B of a (stage, mb)
 * exactly once, on the stage's device, B after F there; compute ops carry
 * no peer or group; update then flush close each list.  Returns a message
 * or NULL. */
static const char *check_invariants(const pp_plan *p, char *msg, size_t size)
{
    int S = p->stages, M = p->microbatches;
    char *seen = calloc((size_t)S * M * 2, 1);
    const char *bad = NULL;
    for (int d = 0; d < p->devices && !bad; d++) {
        const pp_device *dv = &p->dev[d];
        if (dv->n < 2 || dv->ops[dv->n - 2].kind != PP_OP_UPDATE || dv->ops[dv->n - 1].kind != PP_OP_FLUSH) {
            snprintf(msg, size, "device %d: does not end with update, flush", d);
            bad = msg;
            break;
        }
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            if (i >= dv->n - 2) {
                if (op->stage != -1 || op->mb != -1 || op->peer != -1) {
                    snprintf(msg, size, "device %d op %d: update/flush with stage/mb/peer set", d, i);
                    bad = msg;
                }
                continue;
            }
            if (op->kind != PP_OP_F && op->kind != PP_OP_B) {
                snprintf(msg, size, "device %d op %d: %s before the end", d, i, pp_op_name(op->kind));
                bad = msg;
                break;
            }
            if (op->stage < 0 || op->stage >= S || op->mb < 0 || op->mb >= M || op->peer != -1 || op->group != -1) {
                snprintf(msg, size, "device %d op %d: bad fields (stage %d mb %d peer %d group %d)", d, i, op->stage,
                         op->mb, op->peer, op->group);
                bad = msg;
                break;
            }
            if (p->placement[op->stage] != d) {
                snprintf(msg, size, "device %d op %d: stage %d belongs to device %d", d, i, op->stage,
                         p->placement[op->stage]);
                bad = msg;
                break;
            }
            char *slot = &seen[((size_t)op->stage * M + op->mb) * 2 + (op->kind == PP_OP_B)];
            if (*slot) {
                snprintf(msg, size, "device %d op %d: %s%d.%d twice", d, i, pp_op_name(op->kind), op->stage, op->mb);
                bad = msg;
                break;
            }
            if (op->kind == PP_OP_B && !seen[((size_t)op->stage * M + op->mb) * 2]) {
                snprintf(msg, size, "device %d op %d: B%d.%d before its F", d, i, op->stage, op->mb);
                bad = msg;
                break;
            }
            *slot = 1;
        }
    }
    for (size_t i = 0; !bad && i < (size_t)S * M * 2; i++)
        if (!seen[i]) {
            snprintf(msg, size, "%s%zu.%zu never appears", i % 2 ? "B" : "F", i / 2 / M, i / 2 % M);
            bad = msg;
        }
    free(seen);
    return bad;
}

/* One device's compute ops as the golden files write them. */
static void format_device(const pp_device *dv, char **buf, size_t *cap, int d)
{
    size_t need = 16 + (size_t)dv->n * 24, n = 0;
    if (*cap < need) {
        *cap = need;
        *buf = realloc(*buf, *cap);
    }
    n += (size_t)sprintf(*buf + n, "%d:", d);
    for (int i = 0; i < dv->n; i++)
        if (dv->ops[i].kind == PP_OP_F || dv->ops[i].kind == PP_OP_B)
            n += (size_t)sprintf(*buf + n, " %s%d.%d", pp_op_name(dv->ops[i].kind), dv->ops[i].stage, dv->ops[i].mb);
}

/* Replays every case of tests/golden/orders/<policy>.txt.  Returns the
 * number of cases, failing at the first difference. */
static int replay_golden(const char *policy)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tests/golden/orders/%s.txt", policy);
    char *text = tu_read_file(tu_src_path(rel), NULL);
    ck_assert_msg(text != NULL, "missing %s (python3 tests/ref/reference_orders.py writes it)", rel);

    int cases = 0, lineno = 0;
    char *line = text, *buf = NULL;
    size_t cap = 0;
    static test_spec t;
    while (*line) {
        char *eol = strchr(line, '\n');
        ck_assert_msg(eol != NULL, "%s: last line unterminated", rel);
        *eol = '\0';
        lineno++;
        char name[32];
        int D, M, v, G, used = 0;
        ck_assert_msg(sscanf(line, "case %31s D=%d M=%d v=%d group=%d%n", name, &D, &M, &v, &G, &used) == 5,
                      "%s:%d: expected a case line, got: %.80s", rel, lineno, line);
        bool refused = strcmp(line + used, " refused") == 0;
        ck_assert_msg(refused || line[used] == '\0', "%s:%d: trailing text: %s", rel, lineno, line + used);
        ck_assert_str_eq(name, policy);
        char header[128];
        snprintf(header, sizeof header, "%s", line);
        line = eol + 1;

        make_spec(&t, name, D, M, v, G);
        pp_plan plan = {0};
        tu_diag td;
        tu_diag_open(&td);
        int rc = pp_policy_run(&t.spec, &plan, &td.diag);
        if (refused) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "ppcc: error: %s: ", policy);
            ck_assert_msg(rc != 0, "%s: the references refuse it, we accepted it", header);
            ck_assert_msg(strncmp(tu_diag_text(&td), prefix, strlen(prefix)) == 0, "%s: refused with: %s", header,
                          tu_diag_text(&td));
        } else {
            ck_assert_msg(rc == 0, "%s: refused: %s", header, tu_diag_text(&td));
            char msg[256];
            const char *bad = check_invariants(&plan, msg, sizeof msg);
            ck_assert_msg(bad == NULL, "%s: %s", header, bad);
            for (int d = 0; d < D; d++) {
                eol = strchr(line, '\n');
                ck_assert_msg(eol != NULL, "%s: device %d missing", header, d);
                *eol = '\0';
                lineno++;
                format_device(&plan.dev[d], &buf, &cap, d);
                if (strcmp(buf, line) != 0) {
                    int i = 0;
                    while (buf[i] && buf[i] == line[i])
                        i++;
                    int from = i > 40 ? i - 40 : 0;
                    ck_abort_msg("%s:%d: %s: device %d differs at column %d\n  want: ...%.100s\n  got:  ...%.100s",
                                 rel, lineno, header, d, i + 1, line + from, buf + from);
                }
                line = eol + 1;
            }
        }
        tu_diag_close(&td);
        pp_plan_free(&plan);
        cases++;
    }
    free(buf);
    free(text);
    return cases;
}

START_TEST(golden_gpipe)
{
    ck_assert_int_eq(replay_golden("gpipe"), 147);
}
END_TEST

START_TEST(golden_1f1b)
{
    ck_assert_int_eq(replay_golden("1f1b"), 147);
}
END_TEST

START_TEST(golden_interleaved)
{
    ck_assert_int_ge(replay_golden("interleaved"), 1000);
}
END_TEST

/* A few orders written out by hand, so that the reader (and the golden
 * files) can be checked against the paper's figures. */
static void expect_order(const char *policy, int D, int M, int v, int group, int dev, const char *want)
{
    static test_spec t;
    make_spec(&t, policy, D, M, v, group);
    pp_plan plan = {0};
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_msg(pp_policy_run(&t.spec, &plan, &td.diag) == 0, "%s", tu_diag_text(&td));
    char *buf = NULL;
    size_t cap = 0;
    format_device(&plan.dev[dev], &buf, &cap, dev);
    ck_assert_str_eq(buf, want);
    free(buf);
    tu_diag_close(&td);
    pp_plan_free(&plan);
}

START_TEST(hand_orders)
{
    expect_order("gpipe", 4, 3, 1, 0, 2, "2: F2.0 F2.1 F2.2 B2.0 B2.1 B2.2");
    /* 1f1b, D=4 M=6: device 0 warms up with 3 forwards, device 3 with none. */
    expect_order("1f1b", 4, 6, 1, 0, 0, "0: F0.0 F0.1 F0.2 F0.3 B0.0 F0.4 B0.1 F0.5 B0.2 B0.3 B0.4 B0.5");
    expect_order("1f1b", 4, 6, 1, 0, 3, "3: F3.0 B3.0 F3.1 B3.1 F3.2 B3.2 F3.3 B3.3 F3.4 B3.4 F3.5 B3.5");
    /* M < D: warmup capped at M (Megatron). */
    expect_order("1f1b", 4, 2, 1, 0, 0, "0: F0.0 F0.1 B0.0 B0.1");
    /* interleaved D=2 M=4 v=2 (stages 0,2 on device 0): warmup 2*1 + 1*2 = 4. */
    expect_order("interleaved", 2, 4, 2, 0, 0,
                 "0: F0.0 F0.1 F2.0 F2.1 F0.2 B2.0 F0.3 B2.1 F2.2 B0.0 F2.3 B0.1 B2.2 B2.3 B0.2 B0.3");
    /* The last device: warmup (v-1)*G = 2. */
    expect_order("interleaved", 2, 4, 2, 0, 1,
                 "1: F1.0 F1.1 F3.0 B3.0 F3.1 B3.1 F1.2 B1.0 F1.3 B1.1 F3.2 B3.2 F3.3 B3.3 B1.2 B1.3");
    /* M < D: one group of all M (PyTorch's round); all in warmup on device 0. */
    expect_order("interleaved", 4, 2, 2, 0, 0, "0: F0.0 F0.1 F4.0 F4.1 B4.0 B4.1 B0.0 B0.1");
}
END_TEST

START_TEST(invariants_sweep)
{
    /* Every accepted shape, D = 1 included (the golden files start at 2). */
    static const char *const names[] = {"gpipe", "1f1b", "interleaved"};
    static test_spec t;
    char msg[256];
    int accepted = 0;
    for (int k = 0; k < 3; k++)
        for (int D = 1; D <= 8; D++)
            for (int M = 1; M <= 32; M++)
                for (int v = 1; v <= 4; v++)
                    for (int G = 0; G <= (k == 2 ? M : 0); G++) {
                        make_spec(&t, names[k], D, M, v, G);
                        pp_plan plan = {0};
                        tu_diag td;
                        tu_diag_open(&td);
                        if (pp_policy_run(&t.spec, &plan, &td.diag) == 0) {
                            accepted++;
                            ck_assert_msg(plan.devices == D && plan.stages == D * v && plan.microbatches == M &&
                                              !plan.split_backward && strcmp(plan.schedule, names[k]) == 0,
                                          "%s D=%d M=%d v=%d: plan header", names[k], D, M, v);
                            for (int d = 0; d < D; d++)
                                ck_assert_msg(plan.dev[d].n == 2 * M * v + 2 && plan.dev[d].cap == plan.dev[d].n,
                                              "%s D=%d M=%d v=%d: device %d has %d ops in %d slots", names[k], D, M, v,
                                              d, plan.dev[d].n, plan.dev[d].cap);
                            const char *bad = check_invariants(&plan, msg, sizeof msg);
                            ck_assert_msg(bad == NULL, "%s D=%d M=%d v=%d group=%d: %s", names[k], D, M, v, G, bad);
                        } else {
                            ck_assert_msg(plan.dev == NULL && plan.placement == NULL, "refused but plan allocated");
                            ck_assert_msg(td.diag.errors == 1, "refused with %d errors", td.diag.errors);
                        }
                        tu_diag_close(&td);
                        pp_plan_free(&plan);
                    }
    ck_assert_int_gt(accepted, 5000);
}
END_TEST

/* The refusal of `spec`, exactly. */
static void expect_error(const test_spec *t, const char *want)
{
    pp_plan plan = {0};
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_int_ne(pp_policy_run(&t->spec, &plan, &td.diag), 0);
    ck_assert_str_eq(tu_diag_text(&td), want);
    ck_assert_int_eq(td.diag.errors, 1);
    tu_diag_close(&td);
    pp_plan_free(&plan);
}

START_TEST(errors)
{
    static test_spec t;
    make_spec(&t, "zerobubble9", 4, 8, 1, 0);
    expect_error(&t, "ppcc: error: unknown schedule 'zerobubble9' (known: gpipe, 1f1b, interleaved, looped-bfs, zb-h1, interleaved-zb, zbv, dualpipev)\n");

    make_spec(&t, "gpipe", 4, 8, 2, 0);
    expect_error(&t, "ppcc: error: gpipe: needs one stage per device (virtual = 1), got virtual = 2\n");
    make_spec(&t, "1f1b", 4, 8, 2, 0);
    expect_error(&t, "ppcc: error: 1f1b: needs one stage per device (virtual = 1), got virtual = 2; use "
                     "interleaved\n");

    make_spec(&t, "interleaved", 4, 8, 2, 0);
    t.spec.placement_kind = PP_PLACE_VSHAPE;
    for (int s = 0; s < 8; s++)
        t.placement[s] = s < 4 ? s : 7 - s;
    expect_error(&t, "ppcc: error: interleaved: needs placement = loop (stage s on device s mod 4), got vshape\n");

    make_spec(&t, "1f1b", 4, 8, 1, 0);
    t.spec.placement_kind = PP_PLACE_LIST;
    t.placement[1] = 2;
    t.placement[2] = 1;
    expect_error(&t, "ppcc: error: 1f1b: needs placement = loop (stage s on device s mod 4), but stage 1 is on "
                     "device 2\n");

    make_spec(&t, "gpipe", 4, 8, 1, 4);
    expect_error(&t, "ppcc: error: gpipe: has no schedule.group (the micro-batch group size of interleaved), got "
                     "group = 4\n");

    make_spec(&t, "interleaved", 4, 3, 2, 5);
    expect_error(&t, "ppcc: error: interleaved: group = 5 is larger than microbatches = 3 (a group holds at most "
                     "all of them)\n");
    make_spec(&t, "interleaved", 4, 8, 2, 2);
    expect_error(&t, "ppcc: error: interleaved: group = 2 is smaller than devices = 4, which can deadlock; use 8 "
                     "(all micro-batches) or a size in [4, 8] (4 gives PyTorch's order)\n");
    make_spec(&t, "interleaved", 4, 10, 2, 0);
    expect_error(&t, "ppcc: error: interleaved: microbatches = 10 is not a multiple of devices = 4, so the default "
                     "group (= devices, as Megatron) leaves a last group of 2 < 4 micro-batches, which can deadlock; "
                     "set schedule.group to 10 or a size in [4, 10] that divides 10 or leaves at least 4 (5 gives "
                     "PyTorch's order)\n");
    make_spec(&t, "interleaved", 4, 11, 2, 0); /* PyTorch refuses 11 too: no hint */
    expect_error(&t, "ppcc: error: interleaved: microbatches = 11 is not a multiple of devices = 4, so the default "
                     "group (= devices, as Megatron) leaves a last group of 3 < 4 micro-batches, which can deadlock; "
                     "set schedule.group to 11 or a size in [4, 11] that divides 11 or leaves at least 4\n");
    make_spec(&t, "interleaved", 4, 11, 2, 5);
    expect_error(&t, "ppcc: error: interleaved: group = 5 leaves a last group of 1 < devices = 4 micro-batches, "
                     "which can deadlock; use a size in [4, 11] that divides 11 or leaves at least 4\n");

    /* A placement list equal to loop is loop. */
    make_spec(&t, "interleaved", 4, 8, 2, 0);
    t.spec.placement_kind = PP_PLACE_LIST;
    pp_plan plan = {0};
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_int_eq(pp_policy_run(&t.spec, &plan, &td.diag), 0);
    tu_diag_close(&td);
    pp_plan_free(&plan);
}
END_TEST

START_TEST(registry)
{
    const pp_policy *const *all = pp_policy_all();
    int n = 0;
    for (; all[n]; n++) {
        ck_assert_ptr_eq(pp_policy_find(all[n]->name), all[n]);
        ck_assert_msg(all[n]->summary && *all[n]->summary, "%s has no summary", all[n]->name);
    }
    ck_assert_int_ge(n, 3);
    ck_assert_ptr_nonnull(pp_policy_find("gpipe"));
    ck_assert_ptr_nonnull(pp_policy_find("1f1b"));
    ck_assert_ptr_nonnull(pp_policy_find("interleaved"));
    ck_assert_ptr_null(pp_policy_find("GPipe"));
    ck_assert_ptr_null(pp_policy_find(""));
}
END_TEST

START_TEST(large_is_fast)
{
    /* 64 devices x 4 chunks x 1024 micro-batches: ~0.5M compute ops. */
    static test_spec t;
    make_spec(&t, "interleaved", 64, 1024, 4, 0);
    pp_plan plan = {0};
    tu_diag td;
    tu_diag_open(&td);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    ck_assert_int_eq(pp_policy_run(&t.spec, &plan, &td.diag), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    ck_assert_int_eq(pp_plan_total_ops(&plan), 64L * (2 * 1024 * 4 + 2));
    char msg[256];
    const char *bad = check_invariants(&plan, msg, sizeof msg);
    ck_assert_msg(bad == NULL, "%s", bad);
    fprintf(stderr, "interleaved 64x4x1024: %ld ops in %.2f ms\n", pp_plan_total_ops(&plan), ms);
    /* Generous for sanitizer builds; a release build takes a few ms. */
    ck_assert_msg(ms < 500, "took %.1f ms", ms);
    tu_diag_close(&td);
    pp_plan_free(&plan);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("policy");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, golden_gpipe);
    tcase_add_test(tc, golden_1f1b);
    tcase_add_test(tc, golden_interleaved);
    tcase_add_test(tc, hand_orders);
    tcase_add_test(tc, invariants_sweep);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, registry);
    tcase_add_test(tc, large_is_fast);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(make_suite());
}
