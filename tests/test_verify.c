/*
 * test_verify.c — the verifier: one case per rejection, each asserting its
 * exact message; a deadlock reported with its wait-for cycle; garbage
 * plans (random fields, broken shapes) that must not crash.
 */
#include <stdlib.h>
#include <string.h>

#include "plan_builders.h"

/* Verifies p (memory limit optional) and compares all messages. */
static void expect(const pp_plan *p, double mem_limit, const char *want)
{
    tu_diag t;
    tu_diag_open(&t);
    pp_verify_opts o = {.act_size = 1, .mem_limit = mem_limit};
    int n = pp_verify(p, &o, &t.diag);
    ck_assert_str_eq(tu_diag_text(&t), want);
    ck_assert_int_eq(n, t.diag.errors);
    ck_assert_int_eq(n > 0, want[0] != '\0');
    tu_diag_close(&t);
}

/* A 2-device plan written out op by op. */
static void two(pp_plan *p, int M, const char *d0, const char *d1)
{
    plan_loop(p, "custom", 2, 1, M);
    push_ops(p, 0, d0);
    push_ops(p, 1, d1);
}

/* The valid 2-device, 2-micro-batch 1F1B plan (as lowered). */
#define OK0 "F0.0 sa0.0>1/0 F0.1 sa0.1>1/1 rg1.0<1/1 B0.0 rg1.1<1/2 B0.1 U X"
#define OK1 "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 ra0.1<0/1 F1.1 B1.1 sg1.1>0/2 U X"

START_TEST(verify_accepts)
{
    pp_plan p;
    two(&p, 2, OK0, OK1);
    expect(&p, 0, "");
    pp_plan_free(&p);
}
END_TEST

START_TEST(verify_deadlock_cycle)
{
    pp_plan p;
    plan_send_deadlock(&p); /* device 0 sends act 0.1 alone, device 1 grad 1.0 */
    expect(&p, 0,
           "ppcc: error: deadlock: device 0 waits at op 3 (send act 0.1 to 1) for device 1, which waits at op 3 "
           "(send grad 1.0 to 0) for device 0\n");
    pp_plan_free(&p);
}
END_TEST

/* A device stuck behind a cycle is named too, with what it waits for. */
START_TEST(verify_deadlock_off_cycle)
{
    pp_plan p;
    plan_loop(&p, "custom", 3, 1, 1);
    /* Device 1 waits for 2's grad before forwarding, 2 waits for 1's act;
     * device 0, off the cycle, waits for 1's grad. */
    push_ops(&p, 0, "F0.0 sa0.0>1/0 rg1.0<1/1 B0.0 U X");
    push_ops(&p, 1, "ra0.0<0/0 rg2.0<2/1 F1.0 sa1.0>2/2 B1.0 sg1.0>0/3 U X");
    push_ops(&p, 2, "ra1.0<1/0 F2.0 B2.0 sg2.0>1/1 U X");
    expect(&p, 0,
           "ppcc: error: deadlock: device 1 waits at op 1 (recv grad 2.0 from 2) for device 2, which waits at op 0 "
           "(recv act 1.0 from 1) for device 1\n"
           "ppcc: error: deadlock: device 0 waits at op 2 (recv grad 1.0 from 1) for device 1, itself blocked at "
           "op 1\n");
    pp_plan_free(&p);
}
END_TEST

/* Plan version 2's wait: after its group, once, for a send/recv group;
 * the consumer of an asynchronous recv after the recv's wait. */
START_TEST(verify_wait_rules)
{
    pp_plan p;
    /* OK, with device 1's act recvs asynchronous and waited right before F */
    two(&p, 2, OK0, "ra0.0<0/0 ra0.1<0/1 w0 F1.0 B1.0 sg1.0>0/2 w1 F1.1 B1.1 sg1.1>0/3 U X");
    expect(&p, 0, "");
    pp_plan_free(&p);
    two(&p, 2, OK0, "ra0.0<0/0 ra0.1<0/1 w0 F1.0 B1.0 sg1.0>0/2 F1.1 w1 B1.1 sg1.1>0/3 U X");
    expect(&p, 0,
           "ppcc: error: device 1, op 6 (F1.1): runs before wait #1 (op 7), so before the data of recv act 0.1 "
           "from 0 (op 1) is there\n");
    pp_plan_free(&p);
    two(&p, 2, OK0, "w0 ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 ra0.1<0/2 w9 F1.1 B1.1 sg1.1>0/3 w3 w3 U X");
    expect(&p, 0,
           "ppcc: error: device 1, op 0 (wait #0): group 0 is not a send/recv group or an asynchronous "
           "reduction earlier in this device's list\n"
           "ppcc: error: device 1, op 6 (wait #9): group 9 is not a send/recv group or an asynchronous "
           "reduction earlier in this device's list\n"
           "ppcc: error: device 1, op 11 (wait #3): second wait for group 3 (the first is op 10)\n");
    pp_plan_free(&p);
}
END_TEST

/* Two lanes (docs/verifier.md): device 0 posts its recv of grad 1.0
 * asynchronously before it sends act 0.0.  Its compute lane would go on,
 * but its communication lane takes groups in list order, so the send is
 * queued behind a recv that needs that very send: refused, the cycle
 * naming both the compute op and where the lane is stuck. */
START_TEST(verify_lane_order_deadlock)
{
    pp_plan p;
    two(&p, 1, "F0.0 rg1.0<1/0 sa0.0>1/1 w0 B0.0 U X", "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 U X");
    expect(&p, 0,
           "ppcc: error: deadlock: device 0 waits at op 2 (send act 0.0 to 1) while its communication lane is "
           "stuck at op 1 (recv grad 1.0 from 1) for device 1, which waits at op 0 (recv act 0.0 from 0) for "
           "device 0\n");
    pp_plan_free(&p);
    /* The same ops in one group complete together: safe only thanks to it. */
    two(&p, 1, "F0.0 rg1.0<1/0 sa0.0>1/0 w0 B0.0 U X", "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 U X");
    expect(&p, 0, "");
    pp_plan_free(&p);
    /* An asynchronous send waited at the end of the step is fine too. */
    two(&p, 1, "F0.0 sa0.0>1/0 rg1.0<1/1 w1 B0.0 w0 U X", "ra0.0<0/0 w0 F1.0 B1.0 sg1.0>0/1 w1 U X");
    expect(&p, 0, "");
    pp_plan_free(&p);
}
END_TEST

/* Under recompute an asynchronous act send reads its source until its wait,
 * and R0.0 rewrites those activations: the wait must come first. */
START_TEST(verify_send_outlives_recompute)
{
    pp_plan p;
    const char *d1 = "ra0.0<0/0 w0 F1.0 B1.0 sg1.0>0/1 U X";
    two(&p, 1, "F0.0 sa0.0>1/0 rg1.0<1/1 w0 R0.0 w1 B0.0 U X", d1);
    expect(&p, 0, "");
    pp_plan_free(&p);
    two(&p, 1, "F0.0 sa0.0>1/0 rg1.0<1/1 R0.0 w0 w1 B0.0 U X", d1);
    expect(&p, 0,
           "ppcc: error: device 0, op 1 (send act 0.0 to 1): its wait (op 4) comes after R0.0 (op 3), which "
           "rewrites the activations it sends: wait for it before the recompute\n");
    pp_plan_free(&p);
    /* a synchronous send (no wait) has completed before R runs */
    two(&p, 1, "F0.0 sa0.0>1/0 rg1.0<1/1 R0.0 w1 B0.0 U X", d1);
    expect(&p, 0, "");
    pp_plan_free(&p);
}
END_TEST

START_TEST(verify_matching)
{
    pp_plan p;
    /* Device 1 never receives act 0.1. */
    two(&p, 2, OK0, "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 F1.1 B1.1 sg1.1>0/2 U X");
    expect(&p, 0,
           "ppcc: error: device 1, op 4 (F1.1): no recv act 0.1 from 0 before it\n"
           "ppcc: error: device 0, op 3 (send act 0.1 to 1): no matching recv on device 1\n");
    pp_plan_free(&p);

    /* Device 1 receives an extra grad that nobody sends. */
    two(&p, 2, OK0, "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 ra0.1<0/1 F1.1 B1.1 sg1.1>0/2 U X");
    pp_plan_push(&p, 0, p.dev[0].ops[p.dev[0].n - 1]);
    p.dev[0].ops[p.dev[0].n - 2] = (pp_op){.kind = PP_OP_RECV, .comm = PP_COMM_GRAD, .stage = 1, .mb = 1,
                                           .peer = 1, .group = 3};
    expect(&p, 0,
           "ppcc: error: device 0, op 9 (recv grad 1.1 from 1): duplicate, first at op 6\n"
           "ppcc: error: device 0, op 9 (recv grad 1.1 from 1): no matching send from device 1\n");
    pp_plan_free(&p);

    /* Recvs in the other order than the sends: each pair mismatches. */
    two(&p, 2, "F0.0 F0.1 sa0.0>1/0 sa0.1>1/0 rg1.0<1/0 rg1.1<1/0 B0.0 B0.1 U X",
        "ra0.1<0/0 ra0.0<0/0 F1.0 F1.1 B1.0 B1.1 sg1.0>0/1 sg1.1>0/1 U X");
    expect(&p, 0,
           "ppcc: error: device 0, op 2 (send act 0.0 to 1): paired in channel order with device 1, op 0 (recv "
           "act 0.1 from 0)\n"
           "ppcc: error: device 0, op 3 (send act 0.1 to 1): paired in channel order with device 1, op 1 (recv "
           "act 0.0 from 0)\n");
    pp_plan_free(&p);
}
END_TEST

START_TEST(verify_peers)
{
    pp_plan p;
    plan_loop(&p, "custom", 3, 1, 1);
    push_ops(&p, 0, "F0.0 sa0.0>2/0 rg1.0<1/1 B0.0 U X");
    push_ops(&p, 1, "ra0.0<0/0 F1.0 sa1.0>2/1 rg2.0<2/2 B1.0 sg1.0>1/3 U X");
    push_ops(&p, 2, "ra1.0<1/0 F2.0 B2.0 sg2.0>7/1 U X");
    expect(&p, 0,
           "ppcc: error: device 0, op 1 (send act 0.0 to 2): stage 1 is on device 1, not on device 2\n"
           "ppcc: error: device 1, op 5 (send grad 1.0 to 1): the peer is the device itself\n"
           "ppcc: error: device 2, op 3 (send grad 2.0 to 7): peer 7 is not a device\n");
    pp_plan_free(&p);

    /* A recv on the device that sends. */
    two(&p, 1, "F0.0 sa0.0>1/0 rg1.0<1/1 B0.0 U X", "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 ra0.0<0/2 U X");
    expect(&p, 0,
           "ppcc: error: device 1, op 4 (recv act 0.0 from 0): duplicate, first at op 0\n"
           "ppcc: error: device 1, op 4 (recv act 0.0 from 0): no matching send from device 0\n");
    pp_plan_free(&p);
    two(&p, 1, "F0.0 sa0.0>1/0 rg1.0<1/1 B0.0 rg0.0<1/2 U X", "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 U X");
    expect(&p, 0, "ppcc: error: device 0, op 4 (recv grad 0.0 from 1): stage 0 has no previous stage\n");
    pp_plan_free(&p);
    two(&p, 1, "F0.0 sa0.0>1/0 rg1.0<1/1 B0.0 U X", "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 sa1.0>0/2 U X");
    expect(&p, 0, "ppcc: error: device 1, op 4 (send act 1.0 to 0): stage 1 has no next stage\n");
    pp_plan_free(&p);
    two(&p, 1, "F0.0 sa0.0>1/0 rg1.0<1/1 B0.0 ra0.0<1/2 U X", "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 U X");
    expect(&p, 0, "ppcc: error: device 0, op 4 (recv act 0.0 from 1): stage 1 is on device 1, so this recv "
                  "belongs on device 1\n");
    pp_plan_free(&p);
}
END_TEST

START_TEST(verify_dependencies)
{
    int place1[] = {0, 0};
    pp_plan p;
    /* Same device: F1 before F0, B0 before B1, B1 before F1. */
    ck_assert_int_eq(pp_plan_init(&p, "custom", 1, 2, 1, place1), 0);
    push_ops(&p, 0, "F1.0 F0.0 B0.0 B1.0 U X");
    expect(&p, 0,
           "ppcc: error: device 0, op 0 (F1.0): runs before F0.0\n"
           "ppcc: error: device 0, op 2 (B0.0): runs before B1.0\n");
    pp_plan_free(&p);
    ck_assert_int_eq(pp_plan_init(&p, "custom", 1, 2, 1, place1), 0);
    push_ops(&p, 0, "F0.0 B1.0 F1.0 B0.0 U X");
    expect(&p, 0, "ppcc: error: device 0, op 1 (B1.0): runs before F1.0\n");
    pp_plan_free(&p);

    /* Across devices: B0.0 before its recv; send before its producer. */
    two(&p, 1, "F0.0 sa0.0>1/0 B0.0 rg1.0<1/1 U X", "ra0.0<0/0 F1.0 sg1.0>0/1 B1.0 U X");
    expect(&p, 0,
           "ppcc: error: device 0, op 2 (B0.0): runs before recv grad 1.0 from 1 (op 3)\n"
           "ppcc: error: device 1, op 2 (send grad 1.0 to 0): runs before B1.0\n");
    pp_plan_free(&p);

    /* W before its B in a split plan. */
    two(&p, 1, "F0.0 sa0.0>1/0 rg1.0<1/1 W0.0 B0.0 U X", "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 W1.0 U X");
    p.split_backward = true;
    expect(&p, 0, "ppcc: error: device 0, op 3 (W0.0): runs before B0.0\n");
    pp_plan_free(&p);
}
END_TEST

START_TEST(verify_exactly_once)
{
    pp_plan p;
    two(&p, 1, "F0.0 sa0.0>1/0 F0.0 rg1.0<1/1 U X", "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 W1.0 U X");
    expect(&p, 0,
           "ppcc: error: device 0, op 2 (F0.0): duplicate, first at op 0\n"
           "ppcc: error: device 1, op 4 (W1.0): W in a plan whose backward is not split\n"
           "ppcc: error: B0.0 is missing (stage 0 is on device 0)\n");
    pp_plan_free(&p);

    two(&p, 1, "F0.0 sa0.0>1/0 rg1.0<1/1 B0.0 W0.0 U X", "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 F0.0 U X");
    p.split_backward = true;
    expect(&p, 0,
           "ppcc: error: device 1, op 4 (F0.0): stage 0 is placed on device 0\n"
           "ppcc: error: W1.0 is missing (stage 1 is on device 1)\n");
    pp_plan_free(&p);
}
END_TEST

START_TEST(verify_update_flush_groups)
{
    pp_plan p;
    two(&p, 1, "F0.0 sa0.0>1/0 U rg1.0<1/1 B0.0 X", "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 U U X");
    expect(&p, 0,
           "ppcc: error: device 0, op 4 (B0.0): after update (op 2)\n"
           "ppcc: error: device 1, op 5 (update): second update (the first is op 4)\n");
    pp_plan_free(&p);

    two(&p, 1, "F0.0 sa0.0>1/0 rg1.0<1/1 B0.0 X U", "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1");
    expect(&p, 0,
           "ppcc: error: device 0, op 4 (flush): flush before the end of the list\n"
           "ppcc: error: device 0: the list does not end with flush\n"
           "ppcc: error: device 1: no update\n"
           "ppcc: error: device 1: the list does not end with flush\n");
    pp_plan_free(&p);

    /* Group 0 reused after group 1 on device 0; a negative group id. */
    two(&p, 2, "F0.0 sa0.0>1/0 F0.1 sa0.1>1/1 rg1.0<1/0 B0.0 rg1.1<1/2 B0.1 U X",
        "ra0.0<0/0 F1.0 B1.0 sg1.0>0/-1 ra0.1<0/1 F1.1 B1.1 sg1.1>0/2 U X");
    expect(&p, 0,
           "ppcc: error: device 0, op 4 (recv grad 1.0 from 1): group 0 is not contiguous (it also holds op 1)\n"
           "ppcc: error: device 1, op 3 (send grad 1.0 to 0): group -1 is not a group id\n");
    pp_plan_free(&p);

    /* An empty list. */
    plan_loop(&p, "custom", 2, 1, 1);
    push_ops(&p, 0, "F0.0 F1.0 B1.0 B0.0 U X");
    expect(&p, 0,
           "ppcc: error: device 0, op 1 (F1.0): stage 1 is placed on device 1\n"
           "ppcc: error: device 0, op 2 (B1.0): stage 1 is placed on device 1\n"
           "ppcc: error: device 1: empty op list (it needs at least update and flush)\n"
           "ppcc: error: F1.0 is missing (stage 1 is on device 1)\n"
           "ppcc: error: B1.0 is missing (stage 1 is on device 1)\n"
           "ppcc: error: device 0, op 3 (B0.0): no recv grad 1.0 from 1 before it\n");
    pp_plan_free(&p);
}
END_TEST

START_TEST(verify_ranges)
{
    pp_plan p;
    two(&p, 1, "F0.0 F0.7 sa0.0>1/0 sa5.0>1/0 rg0.0<1/1 rg1.0<1/1 B0.0 U X",
        "ra0.0<0/0 F1.0 F-1.0 B1.0 sg1.0>0/1 U X");
    expect(&p, 0,
           "ppcc: error: device 0, op 1 (F0.7): micro-batch 7 is not a micro-batch (the plan has 1)\n"
           "ppcc: error: device 0, op 3 (send act 5.0 to 1): stage 5 is not a stage (the plan has 2)\n"
           "ppcc: error: device 0, op 4 (recv grad 0.0 from 1): stage 0 has no previous stage\n"
           "ppcc: error: device 1, op 2 (F-1.0): stage -1 is not a stage (the plan has 2)\n");
    pp_plan_free(&p);
}
END_TEST

START_TEST(verify_memory_limit)
{
    pp_plan p;
    two(&p, 2, OK0, OK1);
    expect(&p, 2, "");
    expect(&p, 1.5,
           "ppcc: error: device 0, op 2 (F0.1): holds activation memory 2, over the memory limit 1.5 (peak memory 2)\n");
    pp_plan_free(&p);

    /* Split backward: an activation lives until its W. */
    two(&p, 1, "F0.0 sa0.0>1/0 rg1.0<1/1 B0.0 W0.0 U X", "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 W1.0 U X");
    p.split_backward = true;
    expect(&p, 1, "");
    expect(&p, 0.5, "ppcc: error: device 0, op 0 (F0.0): holds activation memory 1, over the memory limit 0.5 "
                    "(peak memory 1)\nppcc: error: device 1, op 1 (F1.0): holds activation memory 1, over the "
                    "memory limit 0.5 (peak memory 1)\n");
    pp_plan_free(&p);
}
END_TEST

START_TEST(verify_bad_shapes)
{
    int place[] = {0, 5};
    pp_plan p;
    ck_assert_int_eq(pp_plan_init(&p, "custom", 2, 2, 1, place), 0);
    expect(&p, 0, "ppcc: error: plan: stage 1 is placed on 5, not a device\n");
    p.placement[1] = 1;
    expect(&p, 0, "ppcc: error: plan: 2 stages x 1 micro-batches need 4 compute ops, the lists hold 0 ops\n");
    p.dev[1].n = -3;
    expect(&p, 0, "ppcc: error: plan: device 1 has a broken op list\n");
    p.dev[1].n = 0;
    p.microbatches = 0;
    expect(&p, 0, "ppcc: error: plan: 0 micro-batches (expected 1 to 1048576)\n");
    p.microbatches = 1 << 20;
    p.stages = PP_MAX_STAGES + 1;
    expect(&p, 0, "ppcc: error: plan: 8193 stages (expected 1 to 8192)\n");
    p.stages = 2;
    p.devices = 0;
    expect(&p, 0, "ppcc: error: plan: 0 devices (expected 1 to 1024)\n");
    p.devices = 2;
    pp_plan_free(&p);
}
END_TEST

/* Random garbage, and valid plans with one field changed at random: the
 * verifier must return (ASan/UBSan watch the rest). */
START_TEST(verify_garbage)
{
    unsigned seed = 12345;
#define RND(n) ((int)((seed = seed * 1103515245u + 12345u) >> 8) % (n))
    tu_diag t;
    for (int round = 0; round < 3000; round++) {
        int D = 1 + RND(4), v = 1 + RND(2), M = 1 + RND(4);
        pp_plan p;
        plan_loop(&p, "x", D, v, M);
        if (round % 2 == 0) {
            for (int d = 0; d < D; d++) {
                int n = RND(12);
                for (int i = 0; i < n; i++) {
                    pp_op op = {.kind = (uint8_t)RND(9), .comm = (uint8_t)RND(3), .stage = RND(D * v + 3) - 1,
                                .mb = RND(M + 3) - 1, .peer = RND(D + 3) - 1, .group = RND(6) - 1};
                    pp_plan_push(&p, d, op);
                }
            }
        } else {
            p.split_backward = RND(2);
            if (v == 1)
                gen_1f1b(&p);
            else
                gen_gpipe(&p);
            tu_diag_open(&t);
            pp_lower(&p, &t.diag);
            tu_diag_close(&t);
            for (int k = 0; k < 1 + RND(3); k++) {
                int d = RND(D);
                if (!p.dev[d].n)
                    continue;
                pp_op *op = &p.dev[d].ops[RND(p.dev[d].n)];
                switch (RND(7)) {
                case 0: op->kind = (uint8_t)RND(10); break;
                case 1: op->stage += RND(5) - 2; break;
                case 2: op->mb += RND(5) - 2; break;
                case 3: op->peer = RND(D + 2) - 1; break;
                case 4: op->group = RND(8) - 1; break;
                case 5: op->comm = (uint8_t)RND(3); break;
                default: p.dev[d].n = RND(p.dev[d].n + 1); break;
                }
            }
        }
        tu_diag_open(&t);
        pp_verify_opts o = {.act_size = RND(3), .mem_limit = RND(4)};
        int n = pp_verify(&p, &o, &t.diag);
        ck_assert_int_eq(n, t.diag.errors);
        tu_diag_close(&t);
        pp_plan_free(&p);
    }
#undef RND
}
END_TEST

/* A gpt's tied allreduce (docs/plan-format.md): 3 devices, one
 * micro-batch; the first and the last stage on devices 0 and 2 sum their
 * copies of wte before the update (collective group 0, {0,2}). */
static void tied3(pp_plan *p, const char *d0, const char *d1, const char *d2)
{
    plan_loop(p, "custom", 3, 1, 1);
    ck_assert_int_eq(pp_plan_coll(p, PP_COLL_TIED, (const int[]){0, 2}, 2, 0), 0);
    push_ops(p, 0, d0);
    push_ops(p, 1, d1);
    push_ops(p, 2, d2);
}
#define TIED0 "F0.0 sa0.0>1/0 rg1.0<1/1 B0.0 A0 U X"
#define TIED1 "ra0.0<0/0 F1.0 sa1.0>2/1 rg2.0<2/2 B1.0 sg1.0>0/3 U X"
#define TIED2 "ra1.0<1/0 F2.0 B2.0 sg2.0>1/1 A0 U X"

START_TEST(verify_tied_accepts)
{
    pp_plan p;
    tied3(&p, TIED0, TIED1, TIED2);
    expect(&p, 0, "");
    /* and it is timed: device 2 posts first and waits; both end together, cost.comm after device 0 posts */
    pp_cost c = {.F = 1, .B = 2, .comm = 0.5};
    pp_sim sim;
    tu_diag t;
    tu_diag_open(&t);
    ck_assert_int_eq(pp_simulate(&p, &c, NULL, &sim, &t.diag), 0);
    tu_diag_close(&t);
    int a0 = 4, a2 = 4;
    ck_assert_double_eq(sim.start[0][a0], sim.start[2][a2]);
    ck_assert_double_eq(sim.end[0][a0], sim.end[2][a2]);
    ck_assert_double_eq(sim.start[0][a0], sim.end[0][a0 - 1]); /* device 0's B0.0 is the last to post */
    ck_assert_double_eq(sim.end[0][a0] - sim.start[0][a0], 0.5);
    ck_assert_double_eq(sim.coll_time, 0.5);
    ck_assert_double_eq(sim.makespan, sim.end[0][a0]);
    pp_sim_free(&sim, p.devices);
    pp_plan_free(&p);
}
END_TEST

/* Device 2 posts the allreduce before sending its gradient back: it waits
 * for device 0, which waits for 1's gradient, which waits for 2's. */
START_TEST(verify_tied_deadlock)
{
    pp_plan p;
    tied3(&p, TIED0, TIED1, "ra1.0<1/0 F2.0 B2.0 A0 sg2.0>1/1 U X");
    expect(&p, 0,
           "ppcc: error: deadlock: device 0 waits at op 2 (recv grad 1.0 from 1) for device 1, which waits at op 3 "
           "(recv grad 2.0 from 2) for device 2, which waits at op 3 (allreduce tied {0,2}) for device 0\n");
    pp_plan_free(&p);
}
END_TEST

START_TEST(verify_tied_missing)
{
    pp_plan p;
    /* device 2 never posts it: the k-th on each member cannot match */
    tied3(&p, TIED0, TIED1, "ra1.0<1/0 F2.0 B2.0 sg2.0>1/1 U X");
    expect(&p, 0,
           "ppcc: error: device 0, op 4 (allreduce tied {0,2}): no matching allreduce on device 2 (it has 0 of the "
           "group, this is number 1 here)\n");
    pp_plan_free(&p);

    /* two on device 0, one on device 2; one after the update */
    tied3(&p, "F0.0 sa0.0>1/0 rg1.0<1/1 B0.0 A0 A0 U X", TIED1, "ra1.0<1/0 F2.0 B2.0 sg2.0>1/1 U A0 X");
    expect(&p, 0,
           "ppcc: error: device 0, op 5 (allreduce tied {0,2}): second tied allreduce (the first is op 4): one a "
           "step\n"
           "ppcc: error: device 2, op 5 (allreduce tied {0,2}): after update (op 4), which needs the summed "
           "gradients\n");
    pp_plan_free(&p);
}
END_TEST

/* The group table and the op's reference to it. */
START_TEST(verify_tied_groups)
{
    pp_plan p;
    plan_loop(&p, "custom", 3, 1, 1);
    ck_assert_int_eq(pp_plan_coll(&p, PP_COLL_TIED, (const int[]){0, 1}, 2, 0), 0);
    ck_assert_int_eq(pp_plan_coll(&p, PP_COLL_TIED, (const int[]){2, 0}, 2, 0), 1);
    ck_assert_int_eq(pp_plan_coll(&p, PP_COLL_TIED, (const int[]){0, 1}, 2, 0), 0); /* found again */
    push_ops(&p, 0, "F0.0 sa0.0>1/0 rg1.0<1/1 B0.0 A0 U X");
    push_ops(&p, 1, TIED1);
    push_ops(&p, 2, "ra1.0<1/0 F2.0 B2.0 sg2.0>1/1 A0 A7 U X");
    expect(&p, 0,
           "ppcc: error: plan: collective group 0 (tied): its members must be {0,2}, the devices of the first and "
           "the last stage\n"
           "ppcc: error: plan: collective group 1: members must be distinct devices in ascending order, got 0 "
           "after 2\n"
           "ppcc: error: device 2, op 4 (allreduce tied {0,1}): device 2 is not a member of the group\n"
           "ppcc: error: device 2, op 5 (allreduce #7): collective group 7 is not one of the plan's (it has 2)\n");
    pp_plan_free(&p);

    /* a V placement holds both ends on device 0: the sum is local, no group */
    int place[4] = {0, 1, 1, 0};
    ck_assert_int_eq(pp_plan_init(&p, "custom", 2, 4, 1, place), 0);
    ck_assert_int_eq(pp_plan_coll(&p, PP_COLL_TIED, (const int[]){0, 1}, 2, 0), 0);
    ck_assert_int_eq(pp_plan_coll(&p, PP_COLL_TIED, (const int[]){1}, 1, 0), 1);
    ck_assert_int_eq(pp_plan_coll(&p, PP_COLL_TIED, (const int[]){0, 5}, 2, 0), 2);
    push_ops(&p, 0, "F0.0 sa0.0>1/0 ra2.0<1/1 F3.0 B3.0 sg3.0>1/2 rg1.0<1/3 B0.0 U X");
    push_ops(&p, 1, "ra0.0<0/0 F1.0 F2.0 sa2.0>0/1 rg3.0<0/2 B2.0 B1.0 sg1.0>0/3 U X");
    expect(&p, 0,
           "ppcc: error: plan: collective group 0 (tied): the first and the last stage are both on device 0, so "
           "their wte is one copy (no allreduce)\n"
           "ppcc: error: plan: collective group 1: 1 member (a collective has two at least; one device sums "
           "locally)\n"
           "ppcc: error: plan: collective group 2: member 1 is 5, not a device\n");
    pp_plan_free(&p);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("verify");
    TCase *tc = tcase_create("verify");
    tcase_add_test(tc, verify_accepts);
    tcase_add_test(tc, verify_deadlock_cycle);
    tcase_add_test(tc, verify_deadlock_off_cycle);
    tcase_add_test(tc, verify_matching);
    tcase_add_test(tc, verify_wait_rules);
    tcase_add_test(tc, verify_lane_order_deadlock);
    tcase_add_test(tc, verify_send_outlives_recompute);
    tcase_add_test(tc, verify_peers);
    tcase_add_test(tc, verify_dependencies);
    tcase_add_test(tc, verify_exactly_once);
    tcase_add_test(tc, verify_update_flush_groups);
    tcase_add_test(tc, verify_ranges);
    tcase_add_test(tc, verify_memory_limit);
    tcase_add_test(tc, verify_bad_shapes);
    tcase_add_test(tc, verify_garbage);
    tcase_add_test(tc, verify_tied_accepts);
    tcase_add_test(tc, verify_tied_deadlock);
    tcase_add_test(tc, verify_tied_missing);
    tcase_add_test(tc, verify_tied_groups);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
