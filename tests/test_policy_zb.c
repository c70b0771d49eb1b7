/*
 * test_policy_zb.c — the split-backward schedule families (zb-h1, zbv,
 * dualpipev, looped-bfs, interleaved-zb) against transcriptions of their
 * references, their invariants, their refusals, and what lowering,
 * verification and simulation make of them.
 *
 * tests/golden/orders_zb/<policy>.txt is written by
 * tests/ref/reference_orders_zb.py from PyTorch's schedules.py (never from
 * our C code); every case is replayed through the policy object on a
 * hand-built spec and compared line by line.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static const pp_policy *const zb_policies[] = {
    &pp_policy_zb_h1, &pp_policy_zbv, &pp_policy_dualpipev, &pp_policy_looped_bfs, &pp_policy_interleaved_zb, NULL,
};

static const pp_policy *zb_find(const char *name)
{
    for (const pp_policy *const *p = zb_policies; *p; p++)
        if (strcmp((*p)->name, name) == 0)
            return *p;
    return NULL;
}

typedef struct test_spec {
    pp_spec spec;
    int placement[PP_MAX_STAGES];
} test_spec;

/* A spec as pp_spec_build leaves it for the fields policies read: the
 * V-shape placement for zbv/dualpipev with v = 2, loop otherwise. */
static void make_spec(test_spec *t, const char *schedule, int D, int M, int v)
{
    memset(t, 0, sizeof *t);
    snprintf(t->spec.schedule, sizeof t->spec.schedule, "%s", schedule);
    t->spec.devices = D;
    t->spec.chunks = v;
    t->spec.stages = D * v;
    t->spec.microbatches = M;
    t->spec.placement = t->placement;
    bool vshape = v == 2 && (strcmp(schedule, "zbv") == 0 || strcmp(schedule, "dualpipev") == 0);
    t->spec.placement_kind = vshape ? PP_PLACE_VSHAPE : PP_PLACE_LOOP;
    for (int s = 0; s < D * v; s++)
        t->placement[s] = vshape ? (s < D ? s : 2 * D - 1 - s) : s % D;
    t->spec.cost = (pp_cost){.F = 1, .B = 1, .W = 1, .comm = 0};
}

/* pp_policy_run for a policy the registry may not list yet. */
static int run_policy(const pp_policy *pol, const pp_spec *s, pp_plan *p, pp_diag *d)
{
    memset(p, 0, sizeof *p);
    if (pol->check(s, d))
        return 1;
    ck_assert_int_eq(pp_plan_init(p, pol->name, s->devices, s->stages, s->microbatches, s->placement), 0);
    p->split_backward = pol->split_backward;
    int errors = pol->generate(s, p, d);
    ck_assert_int_eq(p->split_backward, pol->split_backward);
    if (errors)
        pp_plan_free(p);
    return errors;
}

/* Each F, B (and W when split) of every (stage, mb) exactly once, on the
 * stage's device, B after its F and W after its B there; no W unless
 * split; no peer/group; update then flush close each list. */
static const char *check_invariants(const pp_plan *p, char *msg, size_t size)
{
    int S = p->stages, M = p->microbatches, K = p->split_backward ? 3 : 2;
    char *seen = calloc((size_t)S * M * 3, 1);
    const char *bad = NULL;
    for (int d = 0; d < p->devices && !bad; d++) {
        const pp_device *dv = &p->dev[d];
        if (dv->n < 2 || dv->ops[dv->n - 2].kind != PP_OP_UPDATE || dv->ops[dv->n - 1].kind != PP_OP_FLUSH) {
            snprintf(msg, size, "device %d: does not end with update, flush", d);
            bad = msg;
            break;
        }
        for (int i = 0; i < dv->n - 2 && !bad; i++) {
            const pp_op *op = &dv->ops[i];
            int k = op->kind == PP_OP_F ? 0 : op->kind == PP_OP_B ? 1 : op->kind == PP_OP_W ? 2 : -1;
            if (k < 0 || k >= K) {
                snprintf(msg, size, "device %d op %d: %s not allowed here", d, i, pp_op_name(op->kind));
                bad = msg;
            } else if (op->stage < 0 || op->stage >= S || op->mb < 0 || op->mb >= M || op->peer != -1 ||
                       op->group != -1) {
                snprintf(msg, size, "device %d op %d: bad fields (stage %d mb %d)", d, i, op->stage, op->mb);
                bad = msg;
            } else if (p->placement[op->stage] != d) {
                snprintf(msg, size, "device %d op %d: stage %d belongs to device %d", d, i, op->stage,
                         p->placement[op->stage]);
                bad = msg;
            } else {
                char *slot = &seen[((size_t)op->stage * M + op->mb) * 3];
                if (slot[k]) {
                    snprintf(msg, size, "device %d op %d: %s%d.%d twice", d, i, pp_op_name(op->kind), op->stage,
                             op->mb);
                    bad = msg;
                } else if (k > 0 && !slot[k - 1]) {
                    snprintf(msg, size, "device %d op %d: %s%d.%d before its %s", d, i, pp_op_name(op->kind),
                             op->stage, op->mb, k == 1 ? "F" : "B");
                    bad = msg;
                }
                slot[k] = 1;
            }
        }
    }
    for (size_t i = 0; !bad && i < (size_t)S * M; i++)
        for (int k = 0; k < K && !bad; k++)
            if (!seen[i * 3 + k]) {
                snprintf(msg, size, "%c%zu.%zu never appears", "FBW"[k], i / M, i % M);
                bad = msg;
            }
    free(seen);
    return bad;
}

static void format_device(const pp_device *dv, char **buf, size_t *cap, int d)
{
    size_t need = 16 + (size_t)dv->n * 24, n = 0;
    if (*cap < need) {
        *cap = need;
        *buf = realloc(*buf, *cap);
    }
    n += (size_t)sprintf(*buf + n, "%d:", d);
    for (int i = 0; i < dv->n; i++)
        if (pp_op_is_compute(dv->ops[i].kind))
            n += (size_t)sprintf(*buf + n, " %s%d.%d", pp_op_name(dv->ops[i].kind), dv->ops[i].stage, dv->ops[i].mb);
}

/* Replays every case of tests/golden/orders_zb/<policy>.txt; returns the
 * number of cases, failing at the first difference. */
static int replay_golden(const char *policy)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tests/golden/orders_zb/%s.txt", policy);
    char *text = tu_read_file(tu_src_path(rel), NULL);
    ck_assert_msg(text != NULL, "missing %s (python3 tests/ref/reference_orders_zb.py writes it)", rel);
    const pp_policy *pol = zb_find(policy);
    ck_assert_ptr_nonnull(pol);

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

        make_spec(&t, name, D, M, v);
        t.spec.group = G;
        pp_plan plan;
        tu_diag td;
        tu_diag_open(&td);
        int rc = run_policy(pol, &t.spec, &plan, &td.diag);
        if (refused) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "ppcc: error: %s: ", policy);
            ck_assert_msg(rc != 0, "%s: the reference refuses it, we accepted it", header);
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
            pp_plan_free(&plan);
        }
        tu_diag_close(&td);
        cases++;
    }
    free(buf);
    free(text);
    return cases;
}

START_TEST(golden_zb_h1) { ck_assert_int_eq(replay_golden("zb-h1"), 147); }
END_TEST
START_TEST(golden_zbv) { ck_assert_int_eq(replay_golden("zbv"), 154); }
END_TEST
START_TEST(golden_dualpipev) { ck_assert_int_eq(replay_golden("dualpipev"), 147); }
END_TEST
START_TEST(golden_looped_bfs) { ck_assert_int_eq(replay_golden("looped-bfs"), 560); }
END_TEST
START_TEST(golden_interleaved_zb) { ck_assert_int_eq(replay_golden("interleaved-zb"), 560); }
END_TEST

/* Small orders written out by hand from the sources, so that a wrong
 * golden file would not go unnoticed either. */
START_TEST(hand_orders)
{
    static const struct {
        const char *policy;
        int D, M, v;
        const char *want[2];
    } cases[] = {
        /* ZB-H1, D=2 M=3: rank 1 defers one W (num_1f1b_microbatches = rank). */
        {"zb-h1", 2, 3, 1, {"0: F0.0 F0.1 B0.0 W0.0 F0.2 B0.1 W0.1 B0.2 W0.2", "1: F1.0 B1.0 F1.1 B1.1 W1.0 F1.2 B1.2 W1.1 W1.2"}},
        /* Looped BFS: chunk by chunk, backwards last stage and last mb first. */
        {"looped-bfs", 2, 2, 2, {"0: F0.0 F0.1 F2.0 F2.1 B2.1 B2.0 B0.1 B0.0", "1: F1.0 F1.1 F3.0 F3.1 B3.1 B3.0 B1.1 B1.0"}},
        /* ZB-V, D=2 M=1: the padding micro-batches of max(2D-1, M) vanish. */
        {"zbv", 2, 1, 2, {"0: F0.0 F3.0 B3.0 W3.0 B0.0 W0.0", "1: F1.0 F2.0 B2.0 W2.0 B1.0 W1.0"}},
    };
    static test_spec t;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        make_spec(&t, cases[c].policy, cases[c].D, cases[c].M, cases[c].v);
        pp_plan plan;
        tu_diag td;
        tu_diag_open(&td);
        ck_assert_int_eq(run_policy(zb_find(cases[c].policy), &t.spec, &plan, &td.diag), 0);
        char *buf = NULL;
        size_t cap = 0;
        for (int d = 0; d < 2; d++) {
            format_device(&plan.dev[d], &buf, &cap, d);
            ck_assert_str_eq(buf, cases[c].want[d]);
        }
        free(buf);
        pp_plan_free(&plan);
        tu_diag_close(&td);
    }
}
END_TEST

/* Refusals name the constraint and the values. */
static void expect_refusal(const char *policy, int D, int M, int v, int group, bool loop_for_v2, const char *want)
{
    static test_spec t;
    make_spec(&t, policy, D, M, v);
    t.spec.group = group;
    if (loop_for_v2) {
        t.spec.placement_kind = PP_PLACE_LOOP;
        for (int s = 0; s < D * v; s++)
            t.placement[s] = s % D;
    }
    pp_plan plan;
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_int_ne(run_policy(zb_find(policy), &t.spec, &plan, &td.diag), 0);
    ck_assert_msg(strstr(tu_diag_text(&td), want) != NULL, "%s: got %s", want, tu_diag_text(&td));
    tu_diag_close(&td);
}

START_TEST(errors)
{
    expect_refusal("zb-h1", 4, 8, 2, 0, false, "zb-h1: needs one stage per device (virtual = 1), got virtual = 2");
    expect_refusal("zb-h1", 4, 8, 1, 2, false, "zb-h1: has no schedule.group");
    expect_refusal("zbv", 4, 8, 3, 0, false, "zbv: needs exactly two stages per device (virtual = 2), got virtual = 3");
    expect_refusal("zbv", 4, 8, 2, 0, true,
                   "zbv: needs placement = vshape (stage s < 4 on device s, else on device 7 - s), but stage 4 is on device 0");
    expect_refusal("dualpipev", 4, 7, 2, 0, false,
                   "dualpipev: needs at least as many microbatches as stages (2 x devices = 8), got microbatches = 7");
    expect_refusal("dualpipev", 4, 8, 2, 0, true, "dualpipev: needs placement = vshape");
    expect_refusal("interleaved-zb", 4, 9, 2, 0, false,
                   "interleaved-zb: needs microbatches to be a multiple of the number of rounds max(1, microbatches / "
                   "devices) = 2, got microbatches = 9 with devices = 4");
    expect_refusal("looped-bfs", 4, 8, 2, 3, false, "looped-bfs: has no schedule.group");
    static test_spec t;
    make_spec(&t, "looped-bfs", 4, 8, 2);
    t.spec.placement_kind = PP_PLACE_VSHAPE;
    for (int s = 0; s < 8; s++)
        t.placement[s] = s < 4 ? s : 7 - s;
    pp_plan plan;
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_int_ne(run_policy(&pp_policy_looped_bfs, &t.spec, &plan, &td.diag), 0);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&td), "looped-bfs: needs placement = loop"));
    tu_diag_close(&td);
}
END_TEST

/* Lowers, verifies and simulates one accepted shape; returns false if the
 * policy refuses it.  The caller frees plan and sim. */
static bool compile(const char *policy, int D, int M, int v, pp_plan *plan, pp_sim *sim)
{
    static test_spec t;
    make_spec(&t, policy, D, M, v);
    tu_diag td;
    tu_diag_open(&td);
    if (run_policy(zb_find(policy), &t.spec, plan, &td.diag)) {
        tu_diag_close(&td);
        return false;
    }
    pp_verify_opts vo = {.act_size = 1};
    ck_assert_msg(pp_lower(plan, &td.diag) == 0, "%s D=%d M=%d v=%d: lower: %s", policy, D, M, v, tu_diag_text(&td));
    ck_assert_msg(pp_verify(plan, &vo, &td.diag) == 0, "%s D=%d M=%d v=%d: verify: %s", policy, D, M, v,
                  tu_diag_text(&td));
    ck_assert_msg(pp_simulate(plan, &t.spec.cost, sim, &td.diag) == 0, "%s D=%d M=%d v=%d: simulate: %s", policy, D,
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
    static test_spec t;
    make_spec(&t, policy, D, M, v);
    const pp_policy *pol = zb_find(policy);
    pp_plan plan;
    pp_sim sim;
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_int_eq(pol ? run_policy(pol, &t.spec, &plan, &td.diag) : pp_policy_run(&t.spec, &plan, &td.diag), 0);
    double makespan = async_makespan(&plan);
    ck_assert_int_eq(pp_simulate(&plan, &t.spec.cost, &sim, &td.diag), 0);
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
