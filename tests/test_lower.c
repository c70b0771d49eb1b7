/*
 * test_lower.c — communication lowering: exact lists for small plans (send
 * right after its producer, recvs right before their consumer, groups),
 * no comm between stages of one device, channel-order reordering, deadlock
 * repair, and an unrepairable order reported with its cycle.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plan_builders.h"

static void lower_ok(pp_plan *p)
{
    tu_diag t;
    tu_diag_open(&t);
    ck_assert_msg(pp_lower(p, &t.diag) == 0, "lower: %s", tu_diag_text(&t));
    pp_verify_opts o = {0};
    ck_assert_msg(pp_verify(p, &o, &t.diag) == 0, "verify: %s", tu_diag_text(&t));
    tu_diag_close(&t);
}

START_TEST(lower_1f1b_two_devices)
{
    pp_plan p;
    plan_loop(&p, "1f1b", 2, 1, 3);
    gen_1f1b(&p);
    ck_assert_str_eq(format_ops(&p, 0), "F0.0 F0.1 B0.0 F0.2 B0.1 B0.2 U X");
    lower_ok(&p);
    ck_assert_str_eq(format_ops(&p, 0), "F0.0 sa0.0>1/0 F0.1 sa0.1>1/1 rg1.0<1/1 B0.0 F0.2 sa0.2>1/2 rg1.1<1/2 B0.1 "
                                        "rg1.2<1/3 B0.2 U X");
    ck_assert_str_eq(format_ops(&p, 1), "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 ra0.1<0/1 F1.1 B1.1 sg1.1>0/2 ra0.2<0/2 "
                                        "F1.2 B1.2 sg1.2>0/3 U X");
    pp_plan_free(&p);
}
END_TEST

/* Overlap (plan version 2): every transfer a group of its own with a wait.
 * Costs F = 1, B = 2, comm 0: device 0 posts the recv of grad 1.0 after
 * F0.1 (which ends at 2, before B1.0 does at 4) and waits for it, and for
 * its send of act 0.0, right before B0.0; grad 1.1 (B1.1 ends at 7) is
 * posted after B0.0 (ends at 6), before F0.2 (ends at 7, timed later). */
START_TEST(lower_overlap_1f1b_two_devices)
{
    pp_plan p;
    plan_loop(&p, "1f1b", 2, 1, 3);
    gen_1f1b(&p);
    tu_diag t;
    tu_diag_open(&t);
    ck_assert_msg(pp_lower_overlap(&p, NULL, NULL, &t.diag) == 0, "lower: %s", tu_diag_text(&t));
    pp_verify_opts o = {0};
    ck_assert_msg(pp_verify(&p, &o, &t.diag) == 0, "verify: %s", tu_diag_text(&t));
    tu_diag_close(&t);
    ck_assert_str_eq(format_ops(&p, 0), "F0.0 sa0.0>1/0 F0.1 sa0.1>1/1 rg1.0<1/2 w2 w0 B0.0 rg1.1<1/3 F0.2 "
                                        "sa0.2>1/4 w3 w1 B0.1 rg1.2<1/5 w5 w4 B0.2 U X");
    ck_assert_str_eq(format_ops(&p, 1), "ra0.0<0/0 ra0.1<0/1 w0 F1.0 B1.0 sg1.0>0/2 w1 F1.1 B1.1 sg1.1>0/3 "
                                        "ra0.2<0/4 w4 F1.2 B1.2 sg1.2>0/5 U w2 w3 w5 X");
    pp_plan_free(&p);
}
END_TEST

/* Overlap follows each micro-batch's route, not the stage numbers: in a
 * mirrored plan placed on a loop (stages 0, 2 on device 0; 1, 3 on device
 * 1), micro-batch 0 flows through stages 0..1 and micro-batch 1 through
 * 2..3, so F2.1 receives nothing (stage 1 is not on its route), B1.0
 * receives no grad from stage 2 and waits for no act send of F1.0's. */
START_TEST(lower_overlap_mirrored_routes)
{
    int place[] = {0, 1, 0, 1};
    pp_plan p;
    ck_assert_int_eq(pp_plan_init(&p, "custom", 2, 4, 2, place), 0);
    p.mirrored = true; /* each stage's copy is on its own device: no mirror allreduce */
    push_ops(&p, 0, "F0.0 F2.1 B2.1 B0.0 U X");
    push_ops(&p, 1, "F1.0 F3.1 B3.1 B1.0 U X");
    tu_diag t;
    tu_diag_open(&t);
    ck_assert_msg(pp_lower_overlap(&p, NULL, NULL, &t.diag) == 0, "lower: %s", tu_diag_text(&t));
    pp_verify_opts o = {0};
    ck_assert_msg(pp_verify(&p, &o, &t.diag) == 0, "verify: %s", tu_diag_text(&t));
    tu_diag_close(&t);
    int waits[2] = {0, 0};
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < p.dev[d].n; i++)
            waits[d] += p.dev[d].ops[i].kind == PP_OP_WAIT;
    /* four transfers (act 0.0, act 2.1, grad 1.0, grad 3.1), each waited once by each end */
    ck_assert_int_eq(waits[0] + waits[1], 8);
    pp_plan_free(&p);
}
END_TEST

/* Memory with overlap, counted here on its own (not with activation_memory.c):
 * F takes its stage's set, B releases it; a recv posted with a compute op
 * between its post and its wait holds its buffer (the input of the stage the
 * tensor enters) from the post through the wait. */
static double counted_peak(const pp_plan *p, int d, const double *act, const double *in)
{
    const pp_device *dv = &p->dev[d];
    double sets = 0, peak = 0;
    for (int i = 0; i < dv->n; i++) {
        const pp_op *op = &dv->ops[i];
        sets += op->kind == PP_OP_F ? act[op->stage] : op->kind == PP_OP_B ? -act[op->stage] : 0;
        double held = sets;
        for (int r = 0; r <= i; r++) {
            const pp_op *rv = &dv->ops[r];
            if (rv->kind != PP_OP_RECV)
                continue;
            int w = r + 1, computes = 0;
            while (w < dv->n && !(dv->ops[w].kind == PP_OP_WAIT && dv->ops[w].group == rv->group))
                computes += pp_op_is_compute(dv->ops[w++].kind);
            ck_assert_int_lt(w, dv->n); /* every recv of a version-2 plan is waited */
            if (computes > 0 && i <= w)
                held += in[rv->comm == PP_COMM_ACT ? rv->stage + 1 : rv->stage];
        }
        peak = held > peak ? held : peak;
    }
    return peak;
}

/* The position of each recv of device d in its list, by (comm, stage, mb). */
static void recv_positions(const pp_plan *p, int d, int *pos, int M)
{
    for (int i = 0; i < p->dev[d].n; i++) {
        const pp_op *op = &p->dev[d].ops[i];
        if (op->kind == PP_OP_RECV)
            pos[(op->comm == PP_COMM_ACT ? 0 : p->stages * M) + op->stage * M + op->mb] = i;
    }
}

/* memory.limit with overlap: the early posts of 1F1B on 2 devices x 6
 * micro-batches (stage 1's set 2, its input 1) hold more than the limit;
 * lowered with the limit, recvs are posted later and the plan fits, its peak
 * what counted_peak counts, and the verifier agrees.  A limit the sets alone
 * exceed moves nothing (the plan cannot fit: it keeps its numbers). */
START_TEST(lower_overlap_fits_memory_limit)
{
    enum { M = 6 };
    const double act[2] = {1, 2}, in[2] = {0.5, 1};
    pp_verify_opts mem = {.stage_act = act, .stage_input = in, .stages = 2, .devices = 2};
    tu_diag t;
    tu_diag_open(&t);
    pp_plan free_, fit, over;
    plan_loop(&free_, "1f1b", 2, 1, M);
    gen_1f1b(&free_);
    plan_loop(&fit, "1f1b", 2, 1, M);
    gen_1f1b(&fit);
    plan_loop(&over, "1f1b", 2, 1, M);
    gen_1f1b(&over);
    ck_assert_msg(pp_lower_overlap(&free_, NULL, &mem, &t.diag) == 0, "%s", tu_diag_text(&t));
    double sets[2] = {2 * act[0], act[1]}, limit = 0, top = 0; /* 1F1B: device d holds D - d sets at most */
    for (int d = 0; d < 2; d++) {
        double peak = counted_peak(&free_, d, act, in);
        ck_assert_double_eq_tol(pp_device_memory(&free_, d, NULL, &mem).peak, peak, 1e-12);
        limit = sets[d] > limit ? sets[d] : limit;
        top = peak > top ? peak : top;
    }
    ck_assert_msg(top > limit + 0.5, "the early posts hold %g, the sets %g: the test proves nothing", top, limit);
    mem.mem_limit = limit + 0.5; /* less than the early posts take */
    ck_assert_msg(pp_lower_overlap(&fit, NULL, &mem, &t.diag) == 0, "%s", tu_diag_text(&t));
    ck_assert_msg(pp_verify(&fit, &mem, &t.diag) == 0, "verify: %s", tu_diag_text(&t));
    int pf[4 * M], pl[4 * M], later = 0;
    for (int d = 0; d < 2; d++) {
        double peak = counted_peak(&fit, d, act, in);
        ck_assert_double_eq_tol(pp_device_memory(&fit, d, NULL, &mem).peak, peak, 1e-12);
        ck_assert_msg(peak <= mem.mem_limit + 1e-12, "device %d peaks at %g over the limit %g", d, peak, mem.mem_limit);
        memset(pf, 0xff, sizeof pf);
        memset(pl, 0xff, sizeof pl);
        recv_positions(&free_, d, pf, M);
        recv_positions(&fit, d, pl, M);
        for (int k = 0; k < 4 * M; k++) /* a recv's position counts the ops before it: compare the computes */
            if (pf[k] >= 0) {
                int cf = 0, cl = 0;
                for (int i = 0; i < pf[k]; i++)
                    cf += pp_op_is_compute(free_.dev[d].ops[i].kind);
                for (int i = 0; i < pl[k]; i++)
                    cl += pp_op_is_compute(fit.dev[d].ops[i].kind);
                ck_assert_int_ge(cl, cf); /* never earlier */
                later += cl > cf;
            }
    }
    ck_assert_int_gt(later, 0);
    /* the sets alone over the limit: nothing moves */
    mem.mem_limit = limit * 0.9;
    ck_assert_msg(pp_lower_overlap(&over, NULL, &mem, &t.diag) == 0, "%s", tu_diag_text(&t));
    for (int d = 0; d < 2; d++) {
        char *want = strdup(format_ops(&free_, d));
        ck_assert_str_eq(format_ops(&over, d), want);
        free(want);
    }
    tu_diag_close(&t);
    pp_plan_free(&free_);
    pp_plan_free(&fit);
    pp_plan_free(&over);
}
END_TEST

START_TEST(lower_gpipe_two_devices)
{
    pp_plan p;
    plan_loop(&p, "gpipe", 2, 1, 2);
    gen_gpipe(&p);
    lower_ok(&p);
    ck_assert_str_eq(format_ops(&p, 0), "F0.0 sa0.0>1/0 F0.1 sa0.1>1/1 rg1.0<1/1 B0.0 rg1.1<1/2 B0.1 U X");
    ck_assert_str_eq(format_ops(&p, 1), "ra0.0<0/0 F1.0 ra0.1<0/1 F1.1 B1.0 sg1.0>0/2 B1.1 sg1.1>0/3 U X");
    pp_plan_free(&p);
}
END_TEST

/* Stages 0,1 on device 0 and 2,3 on device 1: only 1 <-> 2 communicate. */
START_TEST(lower_same_device_stages)
{
    int place[] = {0, 0, 1, 1};
    pp_plan p;
    ck_assert_int_eq(pp_plan_init(&p, "custom", 2, 4, 2, place), 0);
    push_ops(&p, 0, "F0.0 F1.0 F0.1 F1.1 B1.0 B0.0 B1.1 B0.1 U X");
    push_ops(&p, 1, "F2.0 F3.0 F2.1 F3.1 B3.0 B2.0 B3.1 B2.1 U X");
    lower_ok(&p);
    ck_assert_str_eq(format_ops(&p, 0), "F0.0 F1.0 sa1.0>1/0 F0.1 F1.1 sa1.1>1/1 rg2.0<1/1 B1.0 B0.0 rg2.1<1/2 "
                                        "B1.1 B0.1 U X");
    ck_assert_str_eq(format_ops(&p, 1), "ra1.0<0/0 F2.0 F3.0 ra1.1<0/1 F2.1 F3.1 B3.0 B2.0 sg2.0>0/2 B3.1 B2.1 "
                                        "sg2.1>0/3 U X");
    pp_plan_free(&p);
}
END_TEST

/* Device 1 consumes micro-batch 1 first, but device 0 sends 0 first: both
 * recvs must come before F1.1, in the sender's order. */
START_TEST(lower_channel_order)
{
    pp_plan p;
    plan_loop(&p, "custom", 2, 1, 2);
    push_ops(&p, 0, "F0.0 F0.1 B0.1 B0.0 U X");
    push_ops(&p, 1, "F1.1 B1.1 F1.0 B1.0 U X");
    lower_ok(&p);
    ck_assert_str_eq(format_ops(&p, 0), "F0.0 sa0.0>1/0 F0.1 sa0.1>1/1 rg1.1<1/1 B0.1 rg1.0<1/2 B0.0 U X");
    ck_assert_str_eq(format_ops(&p, 1), "ra0.0<0/0 ra0.1<0/0 F1.1 B1.1 sg1.1>0/1 F1.0 B1.0 sg1.0>0/2 U X");
    pp_plan_free(&p);
}
END_TEST

/* Sends sink to where the receiver posts: with W between B and the next F
 * on device 1, device 1 posts its recv of act 0.1 only after W1.0 (time 4
 * in the ideal timing), so device 0 sends it after B0.0 (reached at 4)
 * instead of waiting in a rendezvous right after F0.1. */
START_TEST(lower_sinks_sends)
{
    pp_plan p;
    plan_loop(&p, "custom", 2, 1, 3);
    p.split_backward = true;
    push_ops(&p, 0, "F0.0 F0.1 F0.2 B0.0 W0.0 B0.1 W0.1 B0.2 W0.2 U X");
    push_ops(&p, 1, "F1.0 B1.0 W1.0 F1.1 B1.1 W1.1 F1.2 B1.2 W1.2 U X");
    lower_ok(&p);
    ck_assert_str_eq(format_ops(&p, 0), "F0.0 sa0.0>1/0 F0.1 F0.2 rg1.0<1/1 B0.0 sa0.1>1/2 W0.0 rg1.1<1/3 B0.1 "
                                        "sa0.2>1/4 W0.1 rg1.2<1/5 B0.2 W0.2 U X");
    ck_assert_str_eq(format_ops(&p, 1), "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 W1.0 ra0.1<0/2 F1.1 B1.1 sg1.1>0/3 W1.1 "
                                        "ra0.2<0/4 F1.2 B1.2 sg1.2>0/5 W1.2 U X");
    pp_plan_free(&p);
}
END_TEST

/* The repairing replay on a list that deadlocks as written (device 0 sends
 * act 0.1 alone, device 1 sends grad 1.0 alone, each waiting for the other):
 * each stall delays the cycle's blocked sends past the next compute op, in
 * place, until every device finishes.  Group ids are left for lower to
 * renumber. */
START_TEST(lower_walk_repairs_deadlock)
{
    pp_plan p;
    plan_send_deadlock(&p);
    pp_walk w;
    ck_assert_int_eq(pp_walk_init(&w, &p), 0);
    ck_assert_int_eq(pp_walk_run(&w, &p), 2);
    ck_assert_int_eq(pp_walk_run_repair(&w, &p), 0);
    pp_walk_free(&w);
    ck_assert_str_eq(format_ops(&p, 0), "F0.0 sa0.0>1/0 F0.1 F0.2 sa0.1>1/2 rg1.0<1/2 B0.0 sa0.2>1/2 W0.0 "
                                        "rg1.1<1/3 B0.1 W0.1 rg1.2<1/4 B0.2 W0.2 U X");
    ck_assert_str_eq(format_ops(&p, 1), "ra0.0<0/0 F1.0 B1.0 W1.0 sg1.0>0/2 ra0.1<0/2 F1.1 B1.1 W1.1 sg1.1>0/4 "
                                        "ra0.2<0/4 F1.2 B1.2 sg1.2>0/5 W1.2 U X");
    /* With groups renumbered, the verifier agrees. */
    static const int g0[] = {0, 1, 1, 2, 3, 4}, g1[] = {0, 1, 1, 2, 2, 3};
    for (int d = 0; d < 2; d++)
        for (int i = 0, k = 0; i < p.dev[d].n; i++)
            if (p.dev[d].ops[i].kind == PP_OP_SEND || p.dev[d].ops[i].kind == PP_OP_RECV)
                p.dev[d].ops[i].group = (d ? g1 : g0)[k++];
    tu_diag t;
    tu_diag_open(&t);
    pp_verify_opts o = {0};
    ck_assert_msg(pp_verify(&p, &o, &t.diag) == 0, "%s", tu_diag_text(&t));
    tu_diag_close(&t);
    pp_plan_free(&p);
}
END_TEST

/* Stage 2 (device 0) runs before stage 0 on the same device: the recv of
 * act 1.0 waits for device 1, which waits for act 0.0.  Only recvs block:
 * nothing to delay, reported with the cycle. */
START_TEST(lower_reports_unrepairable)
{
    int place[] = {0, 1, 0};
    pp_plan p;
    ck_assert_int_eq(pp_plan_init(&p, "custom", 2, 3, 1, place), 0);
    push_ops(&p, 0, "F2.0 F0.0 B2.0 B0.0 U X");
    push_ops(&p, 1, "F1.0 B1.0 U X");
    tu_diag t;
    tu_diag_open(&t);
    ck_assert_int_ne(pp_lower(&p, &t.diag), 0);
    ck_assert_str_eq(tu_diag_text(&t),
                     "ppcc: error: lower: no deadlock-free order of the communication; deadlock: device 0 waits "
                     "at op 0 (recv act 1.0 from 1) for device 1, which waits at op 0 (recv act 0.0 from 0) for "
                     "device 0\n");
    tu_diag_close(&t);
    pp_plan_free(&p);
}
END_TEST

START_TEST(lower_rejects_bad_input)
{
    pp_plan p;
    plan_loop(&p, "custom", 2, 1, 1);
    push_ops(&p, 0, "F0.0 F1.0 B0.0 U X");
    push_ops(&p, 1, "B1.0 U X");
    tu_diag t;
    tu_diag_open(&t);
    ck_assert_int_ne(pp_lower(&p, &t.diag), 0);
    ck_assert_str_eq(tu_diag_text(&t), "ppcc: error: lower: device 0, op 1 (F1.0): not a stage and micro-batch "
                                       "of this device\nppcc: error: lower: F1.0 is missing\n");
    tu_diag_close(&t);
    pp_plan_free(&p);

    plan_loop(&p, "custom", 2, 1, 1);
    push_ops(&p, 0, "F0.0 sa0.0>1/0 B0.0 U X");
    push_ops(&p, 1, "F1.0 B1.0 U X");
    tu_diag_open(&t);
    ck_assert_int_ne(pp_lower(&p, &t.diag), 0);
    ck_assert_str_eq(tu_diag_text(&t), "ppcc: error: lower: device 0, op 1 (send act 0.0 to 1): the plan already "
                                       "has communication\n");
    tu_diag_close(&t);
    pp_plan_free(&p);
}
END_TEST

/* Every GPipe / 1F1B / interleaved shape up to 8 devices lowers to a plan
 * the verifier accepts, with exactly one send and one recv per edge. */
START_TEST(lower_sweep_verifies)
{
    for (int D = 1; D <= 8; D++)
        for (int M = 1; M <= 16; M++)
            for (int g = 0; g < 4; g++) {
                int v = g == 3 ? 2 : 1;
                if (g == 3 && M % D)
                    continue;
                pp_plan p;
                plan_loop(&p, "x", D, v, M);
                p.split_backward = g == 2;
                if (g == 0)
                    gen_gpipe(&p);
                else if (g == 3)
                    gen_interleaved(&p, v);
                else
                    gen_1f1b(&p);
                long before = pp_plan_total_ops(&p);
                lower_ok(&p);
                long edges = 2L * (p.stages - 1) * M * (D > 1);
                ck_assert_int_eq(pp_plan_total_ops(&p) - before, 2 * edges);
                pp_plan_free(&p);
            }
}
END_TEST

/* Moves every send of a lowered plan back to right after its producer
 * (lowering before sinking), one group per gap between compute ops. */
static void unsink_sends(pp_plan *p)
{
    for (int d = 0; d < p->devices; d++) {
        pp_device *dv = &p->dev[d];
        pp_op *old = malloc((size_t)dv->n * sizeof *old);
        memcpy(old, dv->ops, (size_t)dv->n * sizeof *old);
        int n = dv->n, out = 0, group = 0;
        for (int i = 0; i < n; i++) {
            pp_op op = old[i];
            if (op.kind == PP_OP_SEND)
                continue;
            if (op.kind == PP_OP_RECV) {
                op.group = group;
                dv->ops[out++] = op;
                continue;
            }
            dv->ops[out++] = op;
            if (!pp_op_is_compute(op.kind))
                continue;
            group++;
            int s = op.stage, to = op.kind == PP_OP_F ? s + 1 : op.kind == PP_OP_B ? s - 1 : -1;
            if (to >= 0 && to < p->stages && p->placement[to] != d) {
                pp_op snd = {.kind = PP_OP_SEND, .comm = op.kind == PP_OP_F ? PP_COMM_ACT : PP_COMM_GRAD,
                             .stage = s, .mb = op.mb, .peer = p->placement[to], .group = group};
                dv->ops[out++] = snd;
            }
        }
        ck_assert_int_eq(out, n);
        free(old);
    }
}

/* Group ids 0, 1, ... by runs, as lower leaves them. */
static void renumber(pp_plan *p)
{
    for (int d = 0; d < p->devices; d++) {
        int next = -1, prev = 0;
        bool run = false;
        for (int i = 0; i < p->dev[d].n; i++) {
            pp_op *op = &p->dev[d].ops[i];
            if (op->kind != PP_OP_SEND && op->kind != PP_OP_RECV) {
                run = false;
                continue;
            }
            if (!run || op->group != prev)
                next++;
            run = true;
            prev = op->group;
            op->group = next;
        }
    }
}

/* Random compute orders that respect the data dependencies (a random
 * topological order of the F and B chains, split over the devices): lowering
 * must always find a deadlock-free, verified order of the communication,
 * repairing whatever rendezvous cycles the order creates. */
START_TEST(lower_random_orders)
{
    unsigned seed = 777;
    int stalls = 0;
#define RND(n) ((int)((seed = seed * 1103515245u + 12345u) >> 8) % (n))
    for (int round = 0; round < 400; round++) {
        int D = 1 + RND(5), v = 1 + RND(3), M = 1 + RND(6), S = D * v;
        pp_plan p;
        plan_loop(&p, "random", D, v, M);
        if (RND(2)) /* vshape-like: stage s < D on s, else on 2D-1-s (v = 2) */
            for (int s = 0; s < S && v == 2; s++)
                p.placement[s] = s < D ? s : 2 * D - 1 - s;
        int n = 2 * S * M, nready = 0;
        int *ready = malloc((size_t)n * sizeof *ready);
        char *fdone = calloc((size_t)S * M, 1), *bdone = calloc((size_t)S * M, 1);
        for (int m = 0; m < M; m++)
            ready[nready++] = m; /* op id: kind * S*M + s*M + m */
        while (nready > 0) {
            int pick = RND(nready), id = ready[pick];
            ready[pick] = ready[--nready];
            int at = id % (S * M), s = at / M, m = at % M;
            bool fwd = id < S * M;
            pp_plan_push(&p, p.placement[s], cop(fwd ? PP_OP_F : PP_OP_B, s, m));
            if (fwd) {
                fdone[at] = 1;
                if (s + 1 < S)
                    ready[nready++] = at + M;
                else
                    ready[nready++] = S * M + at;
            } else {
                bdone[at] = 1;
                if (s > 0)
                    ready[nready++] = S * M + at - M;
            }
        }
        for (int d = 0; d < D; d++)
            push_end(&p, d);
        lower_ok(&p);
        /* The same without sinking deadlocks often; the repairing replay
         * must fix every case and the verifier agree. */
        unsink_sends(&p);
        pp_walk w;
        ck_assert_int_eq(pp_walk_init(&w, &p), 0);
        stalls += pp_walk_run(&w, &p) > 0;
        if (pp_walk_run_repair(&w, &p)) {
            tu_diag t2;
            tu_diag_open(&t2);
            pp_walk_report(&w, &p, &t2.diag, "deadlock");
            for (int d = 0; d < D; d++)
                fprintf(stderr, "dev %d: %s\n", d, format_ops(&p, d));
            ck_abort_msg("round %d D=%d v=%d M=%d: %s", round, D, v, M, tu_diag_text(&t2));
        }
        pp_walk_free(&w);
        renumber(&p);
        tu_diag t;
        tu_diag_open(&t);
        pp_verify_opts o = {0};
        ck_assert_msg(pp_verify(&p, &o, &t.diag) == 0, "round %d: %s", round, tu_diag_text(&t));
        tu_diag_close(&t);
        free(ready);
        free(fdone);
        free(bdone);
        pp_plan_free(&p);
    }
    ck_assert_int_gt(stalls, 40); /* the repair really was exercised */
#undef RND
}
END_TEST

/* Zero and extreme costs (issue 8, item 10): every shipped schedule (every
 * policy has one), in its own shape and two smaller ones, with F, B, W and
 * comm each 0, 1e-9, 1 or 1e15, compiles as ppcc compiles it (pp_compile:
 * policy, lower, verify with the file's limit, simulate).  Lowering's correctness must not
 * depend on the costs: they only choose where a send goes. */
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

START_TEST(lower_extreme_costs_sweep)
{
    static const char *const values[] = {"0", "1e-9", "1", "1e15"};
    static const char *const keys[] = {"cost.F", "cost.B", "cost.W", "cost.comm"};
    /* The file's own shape, then two smaller ones (custom's order fixes its own). */
    static const char *const shape_D[] = {NULL, "2", "3"}, *const shape_M[] = {NULL, "4", "8"};
    DIR *dir = opendir(tu_src_path("schedules"));
    ck_assert_ptr_nonnull(dir);
    char *files[64];
    int nfiles = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;) {
        size_t n = strlen(e->d_name);
        if (n > 3 && !strcmp(e->d_name + n - 3, ".pp") && nfiles < 64)
            files[nfiles++] = strdup(e->d_name);
    }
    closedir(dir);
    qsort(files, (size_t)nfiles, sizeof *files, cmp_str);
    ck_assert_int_ge(nfiles, 13);
    clock_t t0 = clock();
    int compiled = 0;
    for (int fi = 0; fi < nfiles; fi++) {
        char rel[256];
        snprintf(rel, sizeof rel, "schedules/%s", files[fi]);
        bool is_custom = !strcmp(files[fi], "custom.pp"), is_auto = !strcmp(files[fi], "auto.pp");
        /* a gpt on hardware takes its costs from its layers (docs/hardware.md): no cost.X to sweep */
        bool on_hardware = false;
        {
            pp_arena a = {0};
            pp_ast ast;
            pp_spec spec;
            tu_diag t;
            tu_diag_open(&t);
            ck_assert_int_eq(pp_parse_file(tu_src_path(rel), &a, &t.diag, &ast), 0);
            on_hardware = pp_spec_build(&ast, NULL, 0, &a, &t.diag, &spec) == 0 && spec.seconds;
            tu_diag_close(&t);
            pp_arena_free(&a);
        }
        for (int sh = 0; sh < 3 && !(sh > 0 && is_custom) && !on_hardware; sh++)
            for (int k = 0; k < 256; k++) {
                /* auto searches: every fourth setting keeps the sweep in seconds. */
                if (is_auto && k % 4)
                    continue;
                pp_define defs[6];
                int nd = 0;
                for (int j = 0; j < 4; j++)
                    defs[nd++] = (pp_define){keys[j], values[(k >> (2 * j)) & 3]};
                if (shape_D[sh]) {
                    defs[nd++] = (pp_define){"devices", shape_D[sh]};
                    defs[nd++] = (pp_define){"microbatches", shape_M[sh]};
                }
                pp_arena a = {0};
                pp_ast ast;
                pp_spec spec;
                tu_diag t;
                tu_diag_open(&t);
                ck_assert_int_eq(pp_parse_file(tu_src_path(rel), &a, &t.diag, &ast), 0);
                int spec_rc = pp_spec_build(&ast, defs, nd, &a, &t.diag, &spec);
                /* A smaller shape may be one the file cannot describe (auto.pp
                 * sets a cost of stage 3) or the policy refuses (dualpipev:
                 * M >= 2D); the file's own shape never. */
                ck_assert_msg(spec_rc == 0 || sh > 0, "%s: %s", rel, tu_diag_text(&t));
                pp_plan p = {0};
                pp_sim sim;
                int rc = spec_rc == 0 ? pp_compile(&spec, &p, &sim, &t.diag) : 1;
                if (p.dev) { /* the policy accepted the shape: every later pass must too */
                    ck_assert_msg(rc == 0,
                                  "ppcc %s -D cost.F=%s -D cost.B=%s -D cost.W=%s -D cost.comm=%s%s%s%s%s: %s", rel,
                                  defs[0].value, defs[1].value, defs[2].value, defs[3].value,
                                  shape_D[sh] ? " -D devices=" : "", shape_D[sh] ? shape_D[sh] : "",
                                  shape_D[sh] ? " -D microbatches=" : "", shape_D[sh] ? shape_M[sh] : "",
                                  tu_diag_text(&t));
                    pp_sim_free(&sim, p.devices);
                    compiled++;
                } else {
                    ck_assert_msg(sh > 0, "%s refuses its own shape: %s", rel, tu_diag_text(&t));
                }
                pp_plan_free(&p);
                tu_diag_close(&t);
                pp_arena_free(&a);
            }
    }
    for (int fi = 0; fi < nfiles; fi++)
        free(files[fi]);
    ck_assert_int_ge(compiled, 8000);
    fprintf(stderr, "lower_extreme_costs_sweep: %d compilations in %.2f s of CPU\n", compiled,
            (double)(clock() - t0) / CLOCKS_PER_SEC);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("lower");
    TCase *tc = tcase_create("lower");
    tcase_add_test(tc, lower_1f1b_two_devices);
    tcase_add_test(tc, lower_gpipe_two_devices);
    tcase_add_test(tc, lower_overlap_1f1b_two_devices);
    tcase_add_test(tc, lower_overlap_mirrored_routes);
    tcase_add_test(tc, lower_same_device_stages);
    tcase_add_test(tc, lower_channel_order);
    tcase_add_test(tc, lower_sinks_sends);
    tcase_add_test(tc, lower_walk_repairs_deadlock);
    tcase_add_test(tc, lower_reports_unrepairable);
    tcase_add_test(tc, lower_rejects_bad_input);
    tcase_add_test(tc, lower_overlap_fits_memory_limit);
    tcase_add_test(tc, lower_sweep_verifies);
    tcase_add_test(tc, lower_random_orders);
    tcase_add_test(tc, lower_extreme_costs_sweep);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
