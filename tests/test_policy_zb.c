/*
 * test_policy_zb.c — the split-backward schedule families (zb-h1, zbv,
 * dualpipev, looped-bfs, interleaved-zb) against their references' orders,
 * their invariants, their refusals, and what lowering, verification and
 * simulation make of them.
 *
 * tests/golden/orders_zb/<policy>.txt is written by
 * tests/ref/generate_orders.py from running PyTorch's schedules (never from
 * our C code; docs/reference-orders.md); every case is replayed through
 * pp_policy_run on a hand-built spec and compared line by line
 * (tests/order_golden.c, shared with test_policy.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "order_golden.h"

/* The families verify_sweep compiles end to end. */
static const pp_policy *const zb_policies[] = {
    &pp_policy_zb_h1, &pp_policy_zbv, &pp_policy_dualpipev, &pp_policy_looped_bfs, &pp_policy_interleaved_zb, NULL,
};

START_TEST(golden_zb_h1) { ck_assert_int_eq(order_replay_golden("orders_zb", "zb-h1"), 147); }
END_TEST
START_TEST(golden_zbv) { ck_assert_int_eq(order_replay_golden("orders_zb", "zbv"), 154); }
END_TEST
START_TEST(golden_dualpipev) { ck_assert_int_eq(order_replay_golden("orders_zb", "dualpipev"), 147); }
END_TEST
START_TEST(golden_looped_bfs) { ck_assert_int_eq(order_replay_golden("orders_zb", "looped-bfs"), 560); }
END_TEST
START_TEST(golden_interleaved_zb) { ck_assert_int_eq(order_replay_golden("orders_zb", "interleaved-zb"), 560); }
END_TEST

/* Small orders written out by hand from the schedules' rules, so that a
 * wrong golden file would not go unnoticed either. */
START_TEST(hand_orders)
{
    static const struct {
        const char *policy;
        int D, M, v;
        const char *want[2];
    } cases[] = {
        /* ZB-H1, D=2 M=3: device 1's Ws trail its Bs by one backward. */
        {"zb-h1", 2, 3, 1, {"0: F0.0 F0.1 B0.0 W0.0 F0.2 B0.1 W0.1 B0.2 W0.2", "1: F1.0 B1.0 F1.1 B1.1 W1.0 F1.2 B1.2 W1.1 W1.2"}},
        /* Looped BFS: chunk by chunk, backwards last stage and last mb first. */
        {"looped-bfs", 2, 2, 2, {"0: F0.0 F0.1 F2.0 F2.1 B2.1 B2.0 B0.1 B0.0", "1: F1.0 F1.1 F3.0 F3.1 B3.1 B3.0 B1.1 B1.0"}},
        /* ZB-V, D=2 M=1: the padding micro-batches of max(2D-1, M) vanish. */
        {"zbv", 2, 1, 2, {"0: F0.0 F3.0 B3.0 W3.0 B0.0 W0.0", "1: F1.0 F2.0 B2.0 W2.0 B1.0 W1.0"}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int d = 0; d < 2; d++)
            order_expect(cases[c].policy, cases[c].D, cases[c].M, cases[c].v, 0, d, cases[c].want[d]);
}
END_TEST

/* Refusals name the constraint and the values.  `place` overrides the
 * placement order_spec_init picks (PP_PLACE_LOOP or PP_PLACE_VSHAPE), or
 * is AS_BUILT to keep it. */
enum { AS_BUILT = -1 };
static void expect_refusal(const char *policy, int D, int M, int v, int group, int place, const char *want)
{
    static order_spec t;
    order_spec_init(&t, policy, D, M, v, group);
    if (place != AS_BUILT)
        order_spec_place(&t, place);
    pp_plan plan;
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_int_ne(pp_policy_run(&t.spec, &plan, &td.diag), 0);
    ck_assert_msg(strstr(tu_diag_text(&td), want) != NULL, "%s: got %s", want, tu_diag_text(&td));
    tu_diag_close(&td);
}

START_TEST(errors)
{
    expect_refusal("zb-h1", 4, 8, 2, 0, AS_BUILT, "zb-h1: needs one stage per device (virtual = 1), got virtual = 2");
    expect_refusal("zb-h1", 4, 8, 1, 2, AS_BUILT, "zb-h1: has no schedule.group");
    expect_refusal("zbv", 4, 8, 3, 0, AS_BUILT,
                   "zbv: needs exactly two stages per device (virtual = 2), got virtual = 3");
    expect_refusal("zbv", 4, 8, 2, 0, PP_PLACE_LOOP,
                   "zbv: needs placement = vshape (stage s < 4 on device s, else on device 7 - s), but stage 4 is on device 0");
    expect_refusal("dualpipev", 4, 7, 2, 0, AS_BUILT,
                   "dualpipev: needs at least as many microbatches as stages (2 x devices = 8), got microbatches = 7");
    expect_refusal("dualpipev", 4, 8, 2, 0, PP_PLACE_LOOP, "dualpipev: needs placement = vshape");
    expect_refusal("interleaved-zb", 4, 9, 2, 0, AS_BUILT,
                   "interleaved-zb: needs microbatches to be a multiple of the number of rounds max(1, microbatches / "
                   "devices) = 2, got microbatches = 9 with devices = 4");
    expect_refusal("looped-bfs", 4, 8, 2, 3, AS_BUILT, "looped-bfs: has no schedule.group");
    expect_refusal("looped-bfs", 4, 8, 2, 0, PP_PLACE_VSHAPE, "looped-bfs: needs placement = loop");
}
END_TEST

/* Lowers, verifies and simulates one accepted shape; returns false if the
 * policy refuses it.  The caller frees plan and sim. */
static bool compile(const char *policy, int D, int M, int v, pp_plan *plan, pp_sim *sim)
{
    static order_spec t;
    order_spec_init(&t, policy, D, M, v, 0);
    tu_diag td;
    tu_diag_open(&td);
    if (pp_policy_run(&t.spec, plan, &td.diag)) {
        tu_diag_close(&td);
        return false;
    }
    pp_verify_opts vo = {.act_size = 1};
    ck_assert_msg(pp_lower(plan, &td.diag) == 0, "%s D=%d M=%d v=%d: lower: %s", policy, D, M, v, tu_diag_text(&td));
    ck_assert_msg(pp_verify(plan, &vo, &td.diag) == 0, "%s D=%d M=%d v=%d: verify: %s", policy, D, M, v,
                  tu_diag_text(&td));
    ck_assert_msg(pp_simulate(plan, &t.spec.cost, &vo, sim, &td.diag) == 0, "%s D=%d M=%d v=%d: simulate: %s", policy, D,
                  M, v, tu_diag_text(&td));
    tu_diag_close(&td);
    return true;
}

/* Verifier clean for every accepted D 2..8 x M 1..32 (x v 1..4 on loops). */
START_TEST(verify_sweep)
{
    int accepted = 0;
    for (const pp_policy *const *p = zb_policies; *p; p++) {
        bool loop = strcmp((*p)->name, "looped-bfs") == 0 || strcmp((*p)->name, "interleaved-zb") == 0;
        int vlo = loop ? 1 : strcmp((*p)->name, "zb-h1") == 0 ? 1 : 2, vhi = loop ? 4 : vlo;
        for (int D = 2; D <= 8; D++)
            for (int M = 1; M <= 32; M++)
                for (int v = vlo; v <= vhi; v++) {
                    pp_plan plan;
                    pp_sim sim;
                    if (!compile((*p)->name, D, M, v, &plan, &sim))
                        continue;
                    accepted++;
                    pp_sim_free(&sim, plan.devices);
                    pp_plan_free(&plan);
                }
    }
    /* zb-h1 224 + zbv 224 + dualpipev (M >= 2D) 140 + looped-bfs 896 +
     * interleaved-zb (rounds check) counted by the golden file already. */
    ck_assert_int_ge(accepted, 224 + 224 + 140 + 896);
}
END_TEST

/* The makespan of a compute order (before lowering) with F = B = W = 1,
 * an unsplit B costing 2, and communication that never blocks compute
 * (asynchronous sends, as PyTorch and the papers assume): each op starts
 * when its device is free and its inputs are done. */
static double async_makespan(const pp_plan *p)
{
    int S = p->stages, M = p->microbatches, D = p->devices;
    double *end = malloc(sizeof(double) * 3 * (size_t)S * M), *t = calloc((size_t)D, sizeof(double));
    int *pos = calloc((size_t)D, sizeof(int));
    for (long i = 0; i < 3L * S * M; i++)
        end[i] = -1;
#define END(k, s, m) end[((size_t)(k) * S + (s)) * M + (m)]
    bool progress = true;
    while (progress) {
        progress = false;
        for (int d = 0; d < D; d++)
            for (; pos[d] < p->dev[d].n; pos[d]++) {
                const pp_op *op = &p->dev[d].ops[pos[d]];
                if (!pp_op_is_compute(op->kind))
                    continue;
                int s = op->stage, m = op->mb;
                double ready = t[d];
                double dep[2] = {0, 0};
                if (op->kind == PP_OP_F) {
                    dep[0] = s > 0 ? END(0, s - 1, m) : 0;
                } else if (op->kind == PP_OP_B) {
                    dep[0] = END(0, s, m);
                    dep[1] = s < S - 1 ? END(1, s + 1, m) : 0;
                } else {
                    dep[0] = END(1, s, m);
                }
                if (dep[0] < 0 || dep[1] < 0)
                    break;
                ready = fmax(ready, fmax(dep[0], dep[1]));
                double cost = op->kind == PP_OP_B && !p->split_backward ? 2 : 1;
                t[d] = ready + cost;
                END(op->kind == PP_OP_F ? 0 : op->kind == PP_OP_B ? 1 : 2, s, m) = t[d];
                progress = true;
            }
    }
#undef END
    double makespan = 0;
    for (int d = 0; d < D; d++) {
        ck_assert_msg(pos[d] == p->dev[d].n, "device %d stuck at op %d", d, pos[d]);
        makespan = fmax(makespan, t[d]);
    }
    free(end);
    free(t);
    free(pos);
    return makespan;
}

/* Generates (no lowering) and returns the async makespan; peak[] gets
 * the simulator's peak activations, which depend on the order only. */
static double order_stats(const char *policy, int D, int M, int v, int *peak)
{
    static order_spec t;
    order_spec_init(&t, policy, D, M, v, 0);
    pp_plan plan;
    pp_sim sim;
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_int_eq(pp_policy_run(&t.spec, &plan, &td.diag), 0);
    double makespan = async_makespan(&plan);
    ck_assert_int_eq(pp_simulate(&plan, &t.spec.cost, NULL, &sim, &td.diag), 0);
    for (int d = 0; d < D; d++)
        peak[d] = sim.peak_act[d];
    pp_sim_free(&sim, D);
    pp_plan_free(&plan);
    tu_diag_close(&td);
    return makespan;
}

/* The papers' figures with F = B = W = 1 (per stage) and async comm. */
START_TEST(unit_cost_stats)
{
    int peak[8];
    for (int D = 2; D <= 8; D++)
        for (int M = 2 * D; M <= 32; M += D) {
            /* 1F1B: idle (D-1)(F+B+W) per device; peak min(D-d, M). */
            double onef1b = order_stats("1f1b", D, M, 1, peak) - 3.0 * M;
            ck_assert_double_eq_tol(onef1b, 3.0 * (D - 1), 1e-9);
            for (int d = 0; d < D; d++)
                ck_assert_int_eq(peak[d], D - d < M ? D - d : M);

            /* ZB-H1 (Qi et al., table 1): idle (D-1)(F+B-W), a third of
             * 1F1B's; peak D on every device (PyTorch's order defers r Ws
             * on rank r): 1F1B's busiest device, the paper's p M_B. */
            double h1 = order_stats("zb-h1", D, M, 1, peak) - 3.0 * M;
            ck_assert_double_eq_tol(h1, (D - 1) * (1.0 + 1 - 1), 1e-9);
            ck_assert_double_eq_tol(h1 / onef1b, 1.0 / 3, 1e-9);
            for (int d = 0; d < D; d++)
                ck_assert_int_eq(peak[d], D);

            /* ZB-V: 6M of work per device (two chunks), idle only D-1:
             * micro-batch 0 reaching the bottom of the V.  Peak 2D chunk
             * activations = D stages' worth, 1F1B's memory. */
            double zbv = order_stats("zbv", D, M, 2, peak) - 6.0 * M;
            ck_assert_double_eq_tol(zbv, D - 1.0, 1e-9);
            for (int d = 0; d < D; d++)
                ck_assert_int_eq(peak[d], 2 * D);

            /* DualPipeV (DualPipe README): activations PP+1 with PP = 2D
             * chunks; bubble (PP/2-1)(F&B+B-3W), B the full backward (2),
             * F&B = 3 without overlap: 2(D-1) at most.  We get D-1. */
            double dpv = order_stats("dualpipev", D, M, 2, peak) - 6.0 * M;
            ck_assert_double_eq_tol(dpv, D - 1.0, 1e-9);
            ck_assert(dpv <= 2.0 * (D - 1));
            for (int d = 0; d < D; d++)
                ck_assert_int_eq(peak[d], 2 * D + 1);

            /* Looped BFS keeps every activation: v*M per device. */
            order_stats("looped-bfs", D, M, 2, peak);
            for (int d = 0; d < D; d++)
                ck_assert_int_eq(peak[d], 2 * M);
        }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("policy_zb");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, golden_zb_h1);
    tcase_add_test(tc, golden_zbv);
    tcase_add_test(tc, golden_dualpipev);
    tcase_add_test(tc, golden_looped_bfs);
    tcase_add_test(tc, golden_interleaved_zb);
    tcase_add_test(tc, hand_orders);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, verify_sweep);
    tcase_add_test(tc, unit_cost_stats);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(make_suite());
}
