/*
 * test_policy.c — the compute orders of gpipe, 1f1b and interleaved against
 * the reference implementations, their invariants and their refusals.
 *
 * tests/golden/orders/<policy>.txt is written by tests/ref/generate_orders.py
 * from running Megatron-core's and PyTorch's schedules (never from our C
 * code; docs/reference-orders.md); every case in it is replayed through
 * pp_policy_run on a hand-built spec and compared line by line
 * (tests/order_golden.c, shared with test_policy_zb.c).
 */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "order_golden.h"

START_TEST(golden_gpipe)
{
    ck_assert_int_eq(order_replay_golden("orders", "gpipe"), 147);
}
END_TEST

START_TEST(golden_1f1b)
{
    ck_assert_int_eq(order_replay_golden("orders", "1f1b"), 147);
}
END_TEST

START_TEST(golden_interleaved)
{
    ck_assert_int_ge(order_replay_golden("orders", "interleaved"), 1000);
}
END_TEST

/* A few orders written out by hand, so that the reader (and the golden
 * files) can be checked against the paper's figures. */
START_TEST(hand_orders)
{
    order_expect("gpipe", 4, 3, 1, 0, 2, "2: F2.0 F2.1 F2.2 B2.0 B2.1 B2.2");
    /* 1f1b, D=4 M=6: device 0 warms up with 3 forwards, device 3 with none. */
    order_expect("1f1b", 4, 6, 1, 0, 0, "0: F0.0 F0.1 F0.2 F0.3 B0.0 F0.4 B0.1 F0.5 B0.2 B0.3 B0.4 B0.5");
    order_expect("1f1b", 4, 6, 1, 0, 3, "3: F3.0 B3.0 F3.1 B3.1 F3.2 B3.2 F3.3 B3.3 F3.4 B3.4 F3.5 B3.5");
    /* M < D: warmup capped at M (Megatron). */
    order_expect("1f1b", 4, 2, 1, 0, 0, "0: F0.0 F0.1 B0.0 B0.1");
    /* interleaved D=2 M=4 v=2 (stages 0,2 on device 0): warmup 2*1 + 1*2 = 4. */
    order_expect("interleaved", 2, 4, 2, 0, 0,
                 "0: F0.0 F0.1 F2.0 F2.1 F0.2 B2.0 F0.3 B2.1 F2.2 B0.0 F2.3 B0.1 B2.2 B2.3 B0.2 B0.3");
    /* The last device: warmup (v-1)*G = 2. */
    order_expect("interleaved", 2, 4, 2, 0, 1,
                 "1: F1.0 F1.1 F3.0 B3.0 F3.1 B3.1 F1.2 B1.0 F1.3 B1.1 F3.2 B3.2 F3.3 B3.3 B1.2 B1.3");
    /* M < D: one group of all M (PyTorch's round); all in warmup on device 0. */
    order_expect("interleaved", 4, 2, 2, 0, 0, "0: F0.0 F0.1 F4.0 F4.1 B4.0 B4.1 B0.0 B0.1");
}
END_TEST

START_TEST(invariants_sweep)
{
    /* Every accepted shape, D = 1 included (the golden files start at 2). */
    static const char *const names[] = {"gpipe", "1f1b", "interleaved"};
    static order_spec t;
    char msg[256];
    int accepted = 0;
    for (int k = 0; k < 3; k++)
        for (int D = 1; D <= 8; D++)
            for (int M = 1; M <= 32; M++)
                for (int v = 1; v <= 4; v++)
                    for (int G = 0; G <= (k == 2 ? M : 0); G++) {
                        order_spec_init(&t, names[k], D, M, v, G);
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
                            const char *bad = order_check_invariants(&plan, msg, sizeof msg);
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
static void expect_error(const order_spec *t, const char *want)
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
    static order_spec t;
    order_spec_init(&t, "zerobubble9", 4, 8, 1, 0);
    expect_error(&t, "ppcc: error: unknown schedule 'zerobubble9' (known: naive, gpipe, 1f1b, interleaved, looped-bfs, zb-h1, zb-h2, interleaved-zb, zbv, dualpipev, dualpipe, v-half, v-min, custom, auto, pipedream, 2bw)\n");

    order_spec_init(&t, "gpipe", 4, 8, 2, 0);
    expect_error(&t, "ppcc: error: gpipe: needs one stage per device (virtual = 1), got virtual = 2\n");
    order_spec_init(&t, "1f1b", 4, 8, 2, 0);
    expect_error(&t, "ppcc: error: 1f1b: needs one stage per device (virtual = 1), got virtual = 2; use "
                     "interleaved\n");

    order_spec_init(&t, "interleaved", 4, 8, 2, 0);
    order_spec_place(&t, PP_PLACE_VSHAPE);
    expect_error(&t, "ppcc: error: interleaved: needs placement = loop (stage s on device s mod 4), got vshape\n");

    order_spec_init(&t, "1f1b", 4, 8, 1, 0);
    t.spec.placement_kind = PP_PLACE_LIST;
    t.placement[1] = 2;
    t.placement[2] = 1;
    expect_error(&t, "ppcc: error: 1f1b: needs placement = loop (stage s on device s mod 4), but stage 1 is on "
                     "device 2\n");

    order_spec_init(&t, "gpipe", 4, 8, 1, 4);
    expect_error(&t, "ppcc: error: gpipe: has no schedule.group (the micro-batch group size of interleaved), got "
                     "group = 4\n");

    order_spec_init(&t, "interleaved", 4, 3, 2, 5);
    expect_error(&t, "ppcc: error: interleaved: group = 5 is larger than microbatches = 3 (a group holds at most "
                     "all of them)\n");
    order_spec_init(&t, "interleaved", 4, 8, 2, 2);
    expect_error(&t, "ppcc: error: interleaved: group = 2 is smaller than devices = 4, which can deadlock; use 8 "
                     "(all micro-batches) or a size in [4, 8] (4 gives PyTorch's order)\n");
    order_spec_init(&t, "interleaved", 4, 10, 2, 0);
    expect_error(&t, "ppcc: error: interleaved: microbatches = 10 is not a multiple of devices = 4, so the default "
                     "group (= devices, as Megatron) leaves a last group of 2 < 4 micro-batches, which can deadlock; "
                     "set schedule.group to 10 or a size in [4, 10] that divides 10 or leaves at least 4 (5 gives "
                     "PyTorch's order)\n");
    order_spec_init(&t, "interleaved", 4, 11, 2, 0); /* PyTorch refuses 11 too: no hint */
    expect_error(&t, "ppcc: error: interleaved: microbatches = 11 is not a multiple of devices = 4, so the default "
                     "group (= devices, as Megatron) leaves a last group of 3 < 4 micro-batches, which can deadlock; "
                     "set schedule.group to 11 or a size in [4, 11] that divides 11 or leaves at least 4\n");
    order_spec_init(&t, "interleaved", 4, 11, 2, 5);
    expect_error(&t, "ppcc: error: interleaved: group = 5 leaves a last group of 1 < devices = 4 micro-batches, "
                     "which can deadlock; use a size in [4, 11] that divides 11 or leaves at least 4\n");

    /* One chunk: no group deadlocks (refused_groups), Megatron's rule alone refuses. */
    order_spec_init(&t, "interleaved", 4, 10, 1, 0);
    expect_error(&t, "ppcc: error: interleaved: microbatches = 10 is not a multiple of devices = 4, so the default "
                     "group (= devices, as Megatron) leaves a last group of 2 < 4 micro-batches, which Megatron "
                     "refuses (with one chunk the group does not change the order); set schedule.group to 10 or a "
                     "size in [4, 10] that divides 10 or leaves at least 4 (5 gives PyTorch's order)\n");
    order_spec_init(&t, "interleaved", 4, 8, 1, 2);
    expect_error(&t, "ppcc: error: interleaved: group = 2 is smaller than devices = 4, which Megatron refuses (with "
                     "one chunk the group does not change the order); use 8 (all micro-batches) or a size in [4, 8] "
                     "(4 gives PyTorch's order)\n");

    /* A placement list equal to loop is loop. */
    order_spec_init(&t, "interleaved", 4, 8, 2, 0);
    t.spec.placement_kind = PP_PLACE_LIST;
    pp_plan plan = {0};
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_int_eq(pp_policy_run(&t.spec, &plan, &td.diag), 0);
    tu_diag_close(&td);
    pp_plan_free(&plan);
}
END_TEST

/* The interleaved order for any group, refused ones included: the
 * policy's generate without its check (the test's way in). */
static void interleaved_unchecked(int D, int M, int v, int G, pp_plan *plan)
{
    static order_spec t;
    order_spec_init(&t, "interleaved", D, M, v, G);
    const pp_policy *pol = pp_policy_find("interleaved");
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_int_eq(pp_plan_init(plan, pol->name, D, D * v, M, t.placement), 0);
    ck_assert_int_eq(pol->generate(&t.spec, plan, &td.diag), 0);
    tu_diag_close(&td);
    char msg[256];
    const char *bad = order_check_invariants(plan, msg, sizeof msg);
    ck_assert_msg(bad == NULL, "D=%d M=%d v=%d group=%d: %s", D, M, v, G, bad);
}

/* Whether the accepted groups compile and what the refused ones would do:
 * each order is lowered and verified.  The counts are the evidence behind
 * the refusals' wording and docs/schedules.md ("Group size"), which quotes
 * them.  Every lowering that fails must be a deadlock of the order itself
 * (no execution, whatever the communication), and every one that succeeds
 * must verify. */
START_TEST(refused_groups)
{
    enum { SMALL, SHORT_LAST, ACCEPTED };        /* G < D; last group 1..D-1; accepted */
    int orders[4][3] = {{0}}, deadlocks[4][3] = {{0}}; /* [v][kind] */
    char *one = NULL, *other = NULL;
    size_t one_cap = 0, other_cap = 0;
    for (int D = 2; D <= 8; D++)
        for (int v = 1; v <= 3; v++)
            for (int M = 1; M <= 4 * D; M++)
                for (int G = 1; G <= M; G++) {
                    static order_spec t;
                    order_spec_init(&t, "interleaved", D, M, v, G);
                    pp_plan plan;
                    tu_diag td;
                    tu_diag_open(&td);
                    bool accepted = pp_policy_run(&t.spec, &plan, &td.diag) == 0;
                    tu_diag_close(&td);
                    if (accepted)
                        pp_plan_free(&plan);
                    int kind = accepted ? ACCEPTED : G < D ? SMALL : SHORT_LAST;
                    interleaved_unchecked(D, M, v, G, &plan);
                    bool runs = order_runs_buffered(&plan);
                    if (v == 1) { /* one chunk: the group changes nothing */
                        pp_plan whole;
                        interleaved_unchecked(D, M, v, M, &whole);
                        for (int d = 0; d < D; d++) {
                            order_format_device(&plan.dev[d], &one, &one_cap, d);
                            order_format_device(&whole.dev[d], &other, &other_cap, d);
                            ck_assert_msg(strcmp(one, other) == 0, "D=%d M=%d v=1: group %d differs from group %d",
                                          D, M, G, M);
                        }
                        pp_plan_free(&whole);
                    }
                    tu_diag_open(&td);
                    pp_verify_opts vo = {.act_size = 1};
                    bool lowered = pp_lower(&plan, &td.diag) == 0;
                    ck_assert_msg(lowered == runs, "D=%d M=%d v=%d group=%d: lowered %d, runs buffered %d: %s", D, M,
                                  v, G, lowered, runs, tu_diag_text(&td));
                    if (lowered)
                        ck_assert_msg(pp_verify(&plan, &vo, &td.diag) == 0, "D=%d M=%d v=%d group=%d: %s", D, M, v,
                                      G, tu_diag_text(&td));
                    else
                        ck_assert_msg(strstr(tu_diag_text(&td), "deadlock") != NULL, "%s", tu_diag_text(&td));
                    tu_diag_close(&td);
                    pp_plan_free(&plan);
                    orders[v][kind]++;
                    deadlocks[v][kind] += !lowered;
                }
    free(one);
    free(other);
    for (int v = 1; v <= 3; v++)
        fprintf(stderr, "interleaved v=%d: group < D %d of %d deadlock, last group < D %d of %d, accepted %d of %d\n",
                v, deadlocks[v][SMALL], orders[v][SMALL], deadlocks[v][SHORT_LAST], orders[v][SHORT_LAST],
                deadlocks[v][ACCEPTED], orders[v][ACCEPTED]);
    for (int v = 1; v <= 3; v++)
        ck_assert_int_eq(deadlocks[v][ACCEPTED], 0);
    ck_assert_int_eq(deadlocks[1][SMALL] + deadlocks[1][SHORT_LAST], 0);
    /* D 2..8, M 1..4D, v = 2 and 3, as docs/schedules.md states them. */
    ck_assert_int_eq(orders[2][SMALL] + orders[3][SMALL], 1176);
    ck_assert_int_eq(deadlocks[2][SMALL] + deadlocks[3][SMALL], 1071);
    ck_assert_int_eq(orders[2][SHORT_LAST] + orders[3][SHORT_LAST], 1280);
    ck_assert_int_eq(deadlocks[2][SHORT_LAST] + deadlocks[3][SHORT_LAST], 155);
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
    static order_spec t;
    order_spec_init(&t, "interleaved", 64, 1024, 4, 0);
    pp_plan plan = {0};
    tu_diag td;
    tu_diag_open(&td);
    double t0 = pp_now();
    ck_assert_int_eq(pp_policy_run(&t.spec, &plan, &td.diag), 0);
    double ms = (pp_now() - t0) * 1e3;
    ck_assert_int_eq(pp_plan_total_ops(&plan), 64L * (2 * 1024 * 4 + 2));
    char msg[256];
    const char *bad = order_check_invariants(&plan, msg, sizeof msg);
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
    tcase_add_test(tc, refused_groups);
    tcase_add_test(tc, registry);
    tcase_add_test(tc, large_is_fast);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(make_suite());
}
