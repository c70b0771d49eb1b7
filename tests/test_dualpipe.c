/*
 * test_dualpipe.c — DualPipe (docs/dualpipe.md): two mirrored pipelines.
 * Each micro-batch flows through its own pipeline only; the DualPipe
 * README's bubble and memory on uniform costs (our B is the input-gradient
 * half: its full backward is B + W); each rank's timing equal to DualPipeV
 * on half the devices and micro-batches (the schedule it is cut from);
 * the mirror allreduce of each stage's two copies; refusals; and the
 * verifier's errors on a broken mirrored plan.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

typedef struct run {
    pp_arena a;
    pp_ast ast;
    pp_spec s;
    pp_plan p;
    pp_sim sim;
    tu_diag td;
    int errors;
} run;

/* The file's text with -D settings, compiled through every pass. */
static int compile(run *r, const char *text, const pp_define *defs, int n)
{
    memset(r, 0, sizeof *r);
    tu_diag_open(&r->td);
    r->errors = pp_parse("t.pp", text, strlen(text), &r->a, &r->td.diag, &r->ast);
    if (!r->errors)
        r->errors = pp_spec_build(&r->ast, defs, n, &r->a, &r->td.diag, &r->s);
    if (!r->errors)
        r->errors = pp_compile(&r->s, &r->p, &r->sim, &r->td.diag);
    return r->errors;
}

static void release(run *r)
{
    if (!r->errors)
        pp_sim_free(&r->sim, r->s.devices);
    pp_plan_free(&r->p);
    tu_diag_close(&r->td);
    pp_arena_free(&r->a);
}

static char *shape_text(const char *schedule, int D, int v, int M, double F, double B, double W, const char *extra)
{
    static char text[1024];
    snprintf(text, sizeof text,
             "devices = %d\nvirtual = %d\nplacement = %s\nmicrobatches = %d\nschedule %s\n"
             "cost { F = %g B = %g W = %g comm = 0 }\n%s\n",
             D, v, v == 2 ? "vshape" : "loop", M, schedule, F, B, W, extra ? extra : "");
    return text;
}

/* The README (github.com/deepseek-ai/DualPipe): bubble (PP/2-1)(F&B+B-3W)
 * with PP = D stages per pipeline, B the full backward and F&B a forward
 * and a full backward overlapped; our executor runs the pair one after
 * the other, so F&B = F + B + W and the full backward is B + W: the
 * bound is (D/2-1)(F + 2B - W).  Activations D+1 per device. */
START_TEST(readme_bubble_and_memory)
{
    static const double costs[][3] = {{1, 1, 1}, {1, 2, 1}, {2, 1, 1}, {1, 1, 0.5}, {1, 1.5, 0.25}, {3, 2, 1}};
    for (int D = 2; D <= 8; D += 2)
        for (int M = 2 * D; M <= 32; M += 2)
            for (size_t k = 0; k < sizeof costs / sizeof costs[0]; k++) {
                double F = costs[k][0], B = costs[k][1], W = costs[k][2];
                run r, v;
                ck_assert_msg(compile(&r, shape_text("dualpipe", D, 2, M, F, B, W, NULL), NULL, 0) == 0, "%s",
                              tu_diag_text(&r.td));
                double bound = (D / 2 - 1) * (F + 2 * B - W), work = M * (F + B + W);
                for (int d = 0; d < D; d++) {
                    ck_assert_double_eq_tol(r.sim.busy[d], work, 1e-9); /* M/2 of each of two stages */
                    ck_assert_msg(r.sim.makespan - work <= bound + 1e-9, "D=%d M=%d F,B,W=%g,%g,%g: idle %g over "
                                  "the README's %g", D, M, F, B, W, r.sim.makespan - work, bound);
                    ck_assert_int_eq(r.sim.peak_act[d], D + 1);
                }
                if (F == B && B == W) /* uniform: half the README's bound */
                    ck_assert_double_eq_tol(r.sim.makespan - work, (D / 2 - 1) * F, 1e-9);
                /* Each rank runs DualPipeV's phases of half the devices:
                 * the same timing as DualPipeV on D/2 with M/2. */
                if (D >= 4) {
                    ck_assert_int_eq(compile(&v, shape_text("dualpipev", D / 2, 2, M / 2, F, B, W, NULL), NULL, 0),
                                     0);
                    ck_assert_double_eq_tol(r.sim.makespan, v.sim.makespan, 1e-9);
                    release(&v);
                }
                release(&r);
            }
}
END_TEST

/* 2x parameters: each device holds a stage of each pipeline, so twice the
 * weights of 1F1B on the same devices and layers. */
START_TEST(parameters_doubled)
{
    const char *layers = "layer_costs { layer 8 { F = 1 B = 1 W = 1 activation = 1 weights = 3 } }";
    run r, o;
    ck_assert_msg(compile(&r, shape_text("dualpipe", 4, 2, 8, 1, 1, 1, layers), NULL, 0) == 0, "%s",
                  tu_diag_text(&r.td));
    ck_assert_msg(compile(&o, shape_text("1f1b", 4, 1, 8, 1, 1, 1, layers), NULL, 0) == 0, "%s", tu_diag_text(&o.td));
    for (int st = 0; st < 4; st++) {
        ck_assert_int_eq(r.s.model.layers_per_stage[st], 2);
        ck_assert_int_eq(r.s.model.layers_per_stage[4 + st], 2);
    }
    for (int d = 0; d < 4; d++)
        ck_assert_double_eq_tol(r.s.static_mem[d], 2 * o.s.static_mem[d], 1e-12);
    release(&r);
    release(&o);
}
END_TEST

/* A gpt on hardware: device d holds pipeline stages d and D-1-d, so its
 * static memory is 1F1B's of devices d and D-1-d; devices 0 and D-1 hold
 * one pipeline's embedding and the other's head, whose tied wte they count
 * once. */
static void spec_of_file(run *r, const char *rel, const pp_define *defs, int n)
{
    memset(r, 0, sizeof *r);
    r->errors = 1; /* no compilation to release */
    tu_diag_open(&r->td);
    ck_assert_int_eq(pp_parse_file(tu_src_path(rel), &r->a, &r->td.diag, &r->ast), 0);
    ck_assert_msg(pp_spec_build(&r->ast, defs, n, &r->a, &r->td.diag, &r->s) == 0, "%s", tu_diag_text(&r->td));
}

START_TEST(gpt_parameters_doubled)
{
    const pp_define dp[] = {{"schedule", "dualpipe"}, {"virtual", "2"}, {"placement", "vshape"}};
    run r, o;
    spec_of_file(&r, "schedules/gpt2-small-4gpu.pp", dp, 3);
    spec_of_file(&o, "schedules/gpt2-small-4gpu.pp", NULL, 0);
    int D = 4;
    double shared = r.s.layers[r.s.n_layers - 1].shared;
    ck_assert(shared > 0);
    for (int d = 0; d < D; d++) {
        double want = o.s.static_mem[d] + o.s.static_mem[D - 1 - d] - (d == 0 || d == D - 1 ? shared : 0);
        ck_assert_msg(fabs(r.s.static_mem[d] - want) <= 1e-9 * want, "device %d: %g, want %g", d, r.s.static_mem[d],
                      want);
    }
    /* each pipeline's first stage holds the embedding, its last the head */
    for (int st = 0; st < 8; st++)
        ck_assert_int_eq(pp_stage_layer_count(&r.s, st), pp_stage_layer_count(&o.s, st % 4));
    release(&r);
    release(&o);
}
END_TEST

/* On hardware each mirror sum costs its stage's gradients on the link
 * between its two devices (0 bytes once, so the timing left it out). */
START_TEST(gpt_mirror_sum_priced)
{
    const pp_define dp[] = {{"schedule", "dualpipe"}, {"virtual", "2"}, {"placement", "vshape"}};
    run r;
    spec_of_file(&r, "schedules/gpt2-small-4gpu.pp", dp, 3);
    r.errors = pp_compile(&r.s, &r.p, &r.sim, &r.td.diag);
    ck_assert_msg(r.errors == 0, "%s", tu_diag_text(&r.td));
    int sums = 0;
    for (int d = 0; d < r.p.devices; d++)
        for (int i = 0; i < r.p.dev[d].n; i++) {
            const pp_op *op = &r.p.dev[d].ops[i];
            const pp_coll *c = pp_plan_op_coll(&r.p, op);
            if (!c || c->what != PP_COLL_MIRROR)
                continue;
            double bytes = r.s.cost.stage_grad[op->stage];
            ck_assert(bytes > 0);
            ck_assert_double_eq_tol(c->bytes, bytes, 1e-9 * bytes);
            double want = r.s.cost.comm + pp_link_time(r.s.cost.hw, c->ranks[0], c->ranks[1], bytes);
            double took = r.sim.end[d][i] - r.sim.start[d][i];
            ck_assert_msg(fabs(took - want) <= 1e-9 * want, "device %d op %d: %g, want %g", d, i, took, want);
            sums++;
        }
    ck_assert_int_eq(sums, 2 * 4); /* each of the 4 pipeline stages on its two devices */
    release(&r);
}
END_TEST

/* The mirror allreduce: each pipeline stage s's copies (stages s, D+s on
 * devices s, D-1-s) summed once on both, before the update, after every
 * compute op; micro-batches only in their own pipeline. */
START_TEST(mirror_allreduce_and_routes)
{
    int D = 6, M = 12;
    run r;
    ck_assert_int_eq(compile(&r, shape_text("dualpipe", D, 2, M, 1, 1, 1, NULL), NULL, 0), 0);
    ck_assert(r.p.mirrored);
    for (int d = 0; d < D; d++) {
        const pp_device *dv = &r.p.dev[d];
        int seen = 0, last_compute = -1, first_mirror = dv->n, last_mirror = -1, update = -1;
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            if (op->kind == PP_OP_UPDATE)
                update = i;
            if (pp_op_is_compute(op->kind)) {
                last_compute = i;
                ck_assert(op->mb < M / 2 ? op->stage < D : op->stage >= D);
            }
            const pp_coll *c = pp_plan_op_coll(&r.p, op);
            if (!c)
                continue;
            ck_assert_int_eq(c->what, PP_COLL_MIRROR);
            int s = op->stage, a = s, b = D - 1 - s;
            ck_assert(d == a || d == b);
            ck_assert_int_eq(c->ranks[0], a < b ? a : b);
            ck_assert_int_eq(c->ranks[1], a < b ? b : a);
            seen |= 1 << s;
            if (i < first_mirror)
                first_mirror = i;
            last_mirror = i;
        }
        ck_assert_int_eq(seen, (1 << d) | (1 << (D - 1 - d)));
        ck_assert_int_lt(last_compute, first_mirror);
        ck_assert_int_gt(update, last_mirror); /* the update takes the summed gradients */
    }
    release(&r);
}
END_TEST

/* Recompute per stage: an R for each micro-batch of the stage's pipeline
 * (the verifier once asked one for every micro-batch); except_last spares
 * each pipeline's last stage. */
START_TEST(recompute_per_pipeline)
{
    run r;
    ck_assert_msg(compile(&r, shape_text("dualpipe", 4, 2, 8, 1, 1, 1, "memory { recompute = always }"), NULL, 0) == 0,
                  "%s", tu_diag_text(&r.td));
    int R = 0;
    for (int d = 0; d < 4; d++)
        for (int i = 0; i < r.p.dev[d].n; i++)
            R += r.p.dev[d].ops[i].kind == PP_OP_R;
    ck_assert_int_eq(R, 8 * 8 / 2); /* 8 stages x 4 micro-batches each */
    release(&r);
    ck_assert_int_eq(compile(&r, shape_text("dualpipe", 4, 2, 8, 1, 1, 1, "memory { recompute = except_last }"), NULL,
                             0), 0);
    for (int st = 0; st < 8; st++)
        ck_assert_int_eq(r.s.recompute[st], st != 3 && st != 7);
    release(&r);
}
END_TEST

START_TEST(refusals)
{
    static const struct {
        int D, M;
        const char *want;
    } cases[] = {
        {3, 12, "dualpipe: needs an even number of devices (ranks r and 2 - r mirror each other), got devices = 3"},
        {4, 7, "dualpipe: needs an even number of microbatches, at least 2 x devices = 8"},
        {4, 6, "dualpipe: needs an even number of microbatches, at least 2 x devices = 8 (half of them enter each "
               "pipeline), got microbatches = 6"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        run r;
        ck_assert_int_ne(compile(&r, shape_text("dualpipe", cases[k].D, 2, cases[k].M, 1, 1, 1, NULL), NULL, 0), 0);
        ck_assert_msg(strstr(tu_diag_text(&r.td), cases[k].want), "%s", tu_diag_text(&r.td));
        release(&r);
    }
    run r;
    ck_assert_int_ne(compile(&r, shape_text("dualpipe", 4, 1, 8, 1, 1, 1, NULL), NULL, 0), 0);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&r.td), "dualpipe: needs exactly two stages per device"));
    release(&r);
    ck_assert_int_ne(compile(&r, shape_text("dualpipe", 4, 2, 8, 1, 1, 1, "model mlp { balance = parameters }"),
                             NULL, 0), 0);
    ck_assert_msg(strstr(tu_diag_text(&r.td), "schedule dualpipe splits the layers even or by a list of 4 counts"),
                  "%s", tu_diag_text(&r.td));
    release(&r);
}
END_TEST

/* The verifier on broken mirrored plans: a micro-batch in the other
 * pipeline, a missing sum, a compute op after the sum. */
static const char *verify_text(run *r)
{
    pp_verify_opts o = {.act_size = 1};
    tu_diag_close(&r->td);
    tu_diag_open(&r->td);
    pp_verify(&r->p, &o, &r->td.diag);
    return tu_diag_text(&r->td);
}

START_TEST(verifier_errors)
{
    run r;
    /* the version-1 lists (no waits), whose tail is allreduce, update, flush */
    ck_assert_int_eq(compile(&r, shape_text("dualpipe", 4, 2, 8, 1, 1, 1, "overlap = false"), NULL, 0), 0);
    pp_device *d0 = &r.p.dev[0];
    /* the first op of device 0 is F0.0: make it pipeline B's micro-batch 4 */
    ck_assert_int_eq(d0->ops[0].kind, PP_OP_F);
    d0->ops[0].mb = 4;
    ck_assert_ptr_nonnull(strstr(verify_text(&r), "micro-batch 4 flows through stages 4..7 of the mirrored plan, "
                                                 "not stage 0"));
    d0->ops[0].mb = 0;
    ck_assert_str_eq(verify_text(&r), "");
    /* the last allreduce (before update) turned into a no-op flush would
     * leave the stage unsummed: drop it by moving update and flush up */
    int n = d0->n;
    ck_assert_int_eq(d0->ops[n - 3].kind, PP_OP_ALLREDUCE);
    pp_op ar = d0->ops[n - 3];
    d0->ops[n - 3] = d0->ops[n - 2];
    d0->ops[n - 2] = d0->ops[n - 1];
    d0->n--;
    const char *text = verify_text(&r);
    ck_assert_msg(strstr(text, "device 0: no mirror allreduce of stage 3 (its copies, stages 3 and 7, are on devices 3 "
                               "and 0)"), "%s", text);
    d0->n++;
    d0->ops[n - 1] = d0->ops[n - 2];
    d0->ops[n - 2] = d0->ops[n - 3];
    d0->ops[n - 3] = ar;
    ck_assert_str_eq(verify_text(&r), "");
    /* a mirror allreduce moved before the device's last W */
    int w = n - 4;
    while (d0->ops[w].kind != PP_OP_W)
        w--;
    pp_op t = d0->ops[w];
    d0->ops[w] = d0->ops[n - 3];
    d0->ops[n - 3] = t;
    ck_assert_ptr_nonnull(strstr(verify_text(&r), "after the mirror allreduce of stage"));
    release(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dualpipe");
    TCase *tc = tcase_create("dualpipe");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, readme_bubble_and_memory);
    tcase_add_test(tc, parameters_doubled);
    tcase_add_test(tc, gpt_parameters_doubled);
    tcase_add_test(tc, gpt_mirror_sum_priced);
    tcase_add_test(tc, mirror_allreduce_and_routes);
    tcase_add_test(tc, recompute_per_pipeline);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, verifier_errors);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
