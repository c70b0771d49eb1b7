/*
 * test_sweep.c — the property sweep: every policy x devices 1..8 x
 * micro-batches 1..32 x chunks 1..4 that the policy accepts compiles,
 * lowers and verifies; and, checked here independently of the verifier,
 * every F/B appears exactly once per (stage, mb) on its device, the
 * simulated times respect every dependency, and uniform costs give the
 * closed-form bubble where one exists.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

typedef struct shape {
    const char *policy;
    int D, M, v;
    double F, B, W, comm;
} shape;

typedef struct compiled {
    pp_spec spec;
    pp_plan plan;
    pp_sim sim;
    int policy_rc;
    double *sF, *sB, *sW;
    int *placement;
} compiled;

static void fill_spec(pp_spec *s, const shape *sh, int *placement, double *sF, double *sB, double *sW)
{
    memset(s, 0, sizeof *s);
    snprintf(s->schedule, sizeof s->schedule, "%s", sh->policy);
    s->devices = sh->D;
    s->chunks = sh->v;
    s->stages = sh->D * sh->v;
    s->microbatches = sh->M;
    const pp_policy *pol = pp_policy_find(sh->policy);
    s->mirrored = pol && pol->mirrored;
    bool vshape = s->mirrored || strcmp(sh->policy, "zbv") == 0 || strcmp(sh->policy, "dualpipev") == 0 ||
                  strcmp(sh->policy, "v-half") == 0 || strcmp(sh->policy, "v-min") == 0;
    s->placement_kind = vshape ? PP_PLACE_VSHAPE : PP_PLACE_LOOP;
    for (int st = 0; st < s->stages; st++) {
        placement[st] = !vshape ? st % sh->D : st < sh->D ? st : 2 * sh->D - 1 - st;
        /* Non-uniform shapes get per-stage costs that differ, deterministically. */
        sF[st] = sh->F * (sh->comm < 0 ? 1.0 + 0.37 * (st % 3) : 1.0);
        sB[st] = sh->B * (sh->comm < 0 ? 1.0 + 0.21 * (st % 4) : 1.0);
        sW[st] = sh->W * (sh->comm < 0 ? 1.0 + 0.13 * (st % 2) : 1.0);
    }
    s->placement = placement;
    s->cost = (pp_cost){.F = sh->F, .B = sh->B, .W = sh->W, .comm = sh->comm < 0 ? 0.25 : sh->comm, .stage_F = sF, .stage_B = sB, .stage_W = sW};
    s->act_size = 1;
    snprintf(s->model.kind, sizeof s->model.kind, "mlp");
    s->model.layers = s->stages;
    s->model.hidden = 4;
    s->model.batch = sh->M;
    s->model.lr = 0.01;
}

/* Runs the passes up to simulation. Returns the policy's rc (non-zero:
 * the policy refused the shape; nothing else ran). */
static int compile(const shape *sh, compiled *c, tu_diag *t)
{
    int S = sh->D * sh->v;
    c->placement = calloc((size_t)S, sizeof *c->placement);
    c->sF = calloc((size_t)S, sizeof(double));
    c->sB = calloc((size_t)S, sizeof(double));
    c->sW = calloc((size_t)S, sizeof(double));
    fill_spec(&c->spec, sh, c->placement, c->sF, c->sB, c->sW);
    memset(&c->plan, 0, sizeof c->plan);
    memset(&c->sim, 0, sizeof c->sim);
    c->policy_rc = pp_policy_run(&c->spec, &c->plan, &t->diag);
    if (c->policy_rc)
        return c->policy_rc;
    ck_assert_msg(pp_lower(&c->plan, &t->diag) == 0, "%s D=%d M=%d v=%d: lower failed: %s", sh->policy,
                  sh->D, sh->M, sh->v, tu_diag_text(t));
    pp_verify_opts o = {.act_size = 1, .mem_limit = 0};
    ck_assert_msg(pp_verify(&c->plan, &o, &t->diag) == 0, "%s D=%d M=%d v=%d: verifier: %s", sh->policy,
                  sh->D, sh->M, sh->v, tu_diag_text(t));
    ck_assert_msg(pp_simulate(&c->plan, &c->spec.cost, &o, &c->sim, &t->diag) == 0, "%s: simulate: %s",
                  sh->policy, tu_diag_text(t));
    return 0;
}

static void release(compiled *c)
{
    if (c->policy_rc == 0)
        pp_sim_free(&c->sim, c->plan.devices);
    pp_plan_free(&c->plan);
    free(c->placement);
    free(c->sF);
    free(c->sB);
    free(c->sW);
}

/* Exactly-once on the right device, and simulated times that respect the
 * data dependencies (checked from times, not from the verifier's logic). */
static void check_properties(const shape *sh, const compiled *c)
{
    const pp_plan *p = &c->plan;
    int S = p->stages, M = p->microbatches;
    size_t n = (size_t)S * M;
    int *count[3];
    double *t_end[3], *t_start[3];
    for (int k = 0; k < 3; k++) {
        count[k] = calloc(n, sizeof(int));
        t_end[k] = calloc(n, sizeof(double));
        t_start[k] = calloc(n, sizeof(double));
    }
    for (int d = 0; d < p->devices; d++) {
        const pp_device *dv = &p->dev[d];
        ck_assert_int_ge(dv->n, 2);
        ck_assert_int_eq(dv->ops[dv->n - 1].kind, PP_OP_FLUSH);
        ck_assert_int_eq(dv->ops[dv->n - 2].kind, PP_OP_UPDATE);
        double prev_end = 0;
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            /* One device runs one op at a time, in list order. */
            ck_assert(c->sim.start[d][i] >= prev_end - 1e-9);
            ck_assert(c->sim.end[d][i] >= c->sim.start[d][i]);
            prev_end = c->sim.end[d][i];
            if (!pp_op_is_compute(op->kind))
                continue;
            ck_assert_int_eq(p->placement[op->stage], d);
            int k = op->kind == PP_OP_F ? 0 : op->kind == PP_OP_B ? 1 : 2;
            size_t at = (size_t)op->stage * M + op->mb;
            count[k][at]++;
            t_start[k][at] = c->sim.start[d][i];
            t_end[k][at] = c->sim.end[d][i];
        }
    }
    for (int s = 0; s < S; s++)
        for (int m = 0; m < M; m++) {
            size_t at = (size_t)s * M + m;
            /* A mirrored plan's micro-batch flows through its pipeline's half:
             * 0 .. M/2-1 through stages 0 .. S/2-1, the others the rest. */
            int first = p->mirrored && m >= M / 2 ? S / 2 : 0, last = p->mirrored && m < M / 2 ? S / 2 - 1 : S - 1;
            if (s < first || s > last) {
                ck_assert_msg(count[0][at] + count[1][at] + count[2][at] == 0, "%s D=%d M=%d: stage %d runs mb %d "
                              "of the other pipeline", sh->policy, sh->D, sh->M, s, m);
                continue;
            }
            ck_assert_msg(count[0][at] == 1 && count[1][at] == 1, "%s D=%d M=%d v=%d: F%d.%d x%d, B x%d",
                          sh->policy, sh->D, sh->M, sh->v, s, m, count[0][at], count[1][at]);
            ck_assert_int_eq(count[2][at], p->split_backward ? 1 : 0);
            ck_assert(t_start[1][at] >= t_end[0][at] - 1e-9); /* B after its F */
            if (p->split_backward)
                ck_assert(t_start[2][at] >= t_end[1][at] - 1e-9); /* W after its B */
            if (s > first)
                ck_assert(t_start[0][at] >= t_end[0][at - M] - 1e-9); /* F after F of s-1 */
            if (s < last)
                ck_assert(t_start[1][at] >= t_end[1][at + M] - 1e-9); /* B after B of s+1 */
        }
    for (int k = 0; k < 3; k++) {
        free(count[k]);
        free(t_end[k]);
        free(t_start[k]);
    }
}

/* Every micro-batch count 1..32, or every mb_step-th (for policies whose
 * own search makes each shape costly). */
static void sweep_step(const char *policy, int vmin, int vmax, bool closed_form, int mb_step)
{
    int accepted = 0;
    for (int v = vmin; v <= vmax; v++)
        for (int D = 1; D <= 8; D++)
            for (int M = 1; M <= 32; M += mb_step) {
                /* Uniform costs with F:B 1:2, and non-uniform per-stage costs with comm. */
                /* Split-backward policies get a W half of the backward. */
                shape shapes[2] = {{policy, D, M, v, 1, 2, 0, 0}, {policy, D, M, v, 1, 1, 1, -1}};
                for (int k = 0; k < 2; k++) {
                    tu_diag t;
                    tu_diag_open(&t);
                    compiled c;
                    if (compile(&shapes[k], &c, &t) == 0) {
                        accepted++;
                        check_properties(&shapes[k], &c);
                        if (closed_form && k == 0) {
                            double want = (double)(D - 1) / (M + D - 1);
                            ck_assert_msg(fabs(c.sim.bubble - want) < 1e-12, "%s D=%d M=%d: bubble %.15g, want %.15g",
                                          policy, D, M, c.sim.bubble, want);
                            ck_assert_msg(fabs(c.sim.makespan - (M + D - 1) * 3.0) < 1e-9, "%s D=%d M=%d: makespan %g",
                                          policy, D, M, c.sim.makespan);
                        }
                        /* Naive model parallelism: one device busy at a time. */
                        if (k == 0 && strcmp(policy, "naive") == 0) {
                            ck_assert_msg(fabs(c.sim.makespan - M * D * 3.0) < 1e-9, "naive D=%d M=%d: makespan %g", D,
                                          M, c.sim.makespan);
                            ck_assert(fabs(c.sim.bubble - (1 - 1.0 / D)) < 1e-12);
                            for (int d = 0; d < D; d++)
                                ck_assert_int_eq(c.sim.peak_act[d], 1);
                        }
                        /* Megatron's interleaved order with B = 2F and M a multiple
                         * of D reaches Narayanan et al.'s (D-1)/(vM+D-1) exactly. */
                        if (k == 0 && strcmp(policy, "interleaved") == 0 && v >= 2 && M % D == 0) {
                            double want = (double)(D - 1) / (v * M + D - 1);
                            ck_assert_msg(fabs(c.sim.bubble - want) < 1e-12, "interleaved D=%d v=%d M=%d: bubble %.15g, want %.15g",
                                          D, v, M, c.sim.bubble, want);
                        }
                    } else {
                        /* A refusal says why, in one error. */
                        ck_assert_int_ge(t.diag.errors, 1);
                        ck_assert_ptr_nonnull(strstr(tu_diag_text(&t), "error: "));
                    }
                    release(&c);
                    tu_diag_close(&t);
                }
            }
    ck_assert_msg(accepted > 0, "%s accepted no shape at all", policy);
}

static void sweep(const char *policy, int vmin, int vmax, bool closed_form)
{
    sweep_step(policy, vmin, vmax, closed_form, 1);
}

START_TEST(sweep_naive) { sweep("naive", 1, 1, false); }
END_TEST
START_TEST(sweep_gpipe) { sweep("gpipe", 1, 1, true); }
END_TEST
START_TEST(sweep_1f1b) { sweep("1f1b", 1, 1, true); }
END_TEST
START_TEST(sweep_interleaved) { sweep("interleaved", 1, 4, false); }
END_TEST
START_TEST(sweep_looped_bfs) { sweep("looped-bfs", 1, 4, false); }
END_TEST
START_TEST(sweep_zb_h1) { sweep("zb-h1", 1, 1, false); }
END_TEST
START_TEST(sweep_interleaved_zb) { sweep("interleaved-zb", 1, 4, false); }
END_TEST
START_TEST(sweep_zb_h2) { sweep("zb-h2", 1, 1, false); }
END_TEST
START_TEST(sweep_auto) { sweep_step("auto", 1, 2, false, 5); }
END_TEST
START_TEST(sweep_pipedream) { sweep("pipedream", 1, 1, true); }
END_TEST
START_TEST(sweep_2bw) { sweep("2bw", 1, 1, true); }
END_TEST
START_TEST(sweep_zbv) { sweep("zbv", 2, 2, false); }
END_TEST
START_TEST(sweep_dualpipev) { sweep("dualpipev", 2, 2, false); }
END_TEST
START_TEST(sweep_dualpipe) { sweep("dualpipe", 2, 2, false); }
END_TEST
START_TEST(sweep_v_half) { sweep("v-half", 2, 2, false); }
END_TEST
START_TEST(sweep_v_min) { sweep("v-min", 2, 2, false); }
END_TEST

/* Policies refuse what they cannot do, rather than producing a wrong plan. */
START_TEST(gpipe_and_1f1b_refuse_chunks)
{
    const char *names[] = {"gpipe", "1f1b"};
    for (int i = 0; i < 2; i++) {
        tu_diag t;
        tu_diag_open(&t);
        compiled c;
        shape sh = {names[i], 4, 8, 2, 1, 2, 0, 0};
        ck_assert_int_ne(compile(&sh, &c, &t), 0);
        ck_assert_ptr_nonnull(strstr(tu_diag_text(&t), "virtual"));
        release(&c);
        tu_diag_close(&t);
    }
}
END_TEST

/* 1F1B holds at most D-d micro-batches' activations on device d; GPipe all M. */
START_TEST(peak_activations)
{
    for (int D = 1; D <= 8; D++)
        for (int M = 1; M <= 32; M += 3) {
            shape g = {"gpipe", D, M, 1, 1, 2, 0, 0}, o = {"1f1b", D, M, 1, 1, 2, 0, 0};
            tu_diag t;
            tu_diag_open(&t);
            compiled cg, co;
            ck_assert_int_eq(compile(&g, &cg, &t), 0);
            ck_assert_int_eq(compile(&o, &co, &t), 0);
            for (int d = 0; d < D; d++) {
                ck_assert_int_eq(cg.sim.peak_act[d], M);
                ck_assert_int_eq(co.sim.peak_act[d], D - d < M ? D - d : M);
            }
            release(&cg);
            release(&co);
            tu_diag_close(&t);
        }
}
END_TEST

/* One case per family of shapes; tests/meson.build runs each case apart
 * (CK_RUN_CASE), so each stays under the time limit with the sanitizers. */
static TCase *make_case(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 600);
    suite_add_tcase(s, tc);
    return tc;
}

int main(void)
{
    Suite *s = suite_create("sweep");
    TCase *one = make_case(s, "one stage per device");
    tcase_add_test(one, sweep_naive);
    tcase_add_test(one, sweep_gpipe);
    tcase_add_test(one, sweep_1f1b);
    tcase_add_test(one, sweep_zb_h1);
    tcase_add_test(one, sweep_zb_h2);
    tcase_add_test(one, sweep_pipedream);
    tcase_add_test(one, sweep_2bw);
    tcase_add_test(one, gpipe_and_1f1b_refuse_chunks);
    tcase_add_test(one, peak_activations);
    TCase *loop = make_case(s, "chunks on the loop");
    tcase_add_test(loop, sweep_interleaved);
    tcase_add_test(loop, sweep_looped_bfs);
    TCase *split = make_case(s, "chunks on the loop, split backward");
    tcase_add_test(split, sweep_interleaved_zb);
    tcase_add_test(split, sweep_auto);
    TCase *v = make_case(s, "v-shape");
    tcase_add_test(v, sweep_zbv);
    tcase_add_test(v, sweep_dualpipev);
    tcase_add_test(v, sweep_dualpipe);
    tcase_add_test(v, sweep_v_half);
    tcase_add_test(v, sweep_v_min);
    return tu_run(s);
}
