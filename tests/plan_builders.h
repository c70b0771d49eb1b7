/*
 * plan_builders.h — hand-built plans for the pass tests.
 */
#ifndef PLAN_BUILDERS_H
#define PLAN_BUILDERS_H

#include "test_util.h"

/* A compute/update/flush op with no peer and no group. */
pp_op cop(int kind, int s, int m);
/* Appends update and flush to device d. */
void push_end(pp_plan *p, int d);
/* A plan of D devices, v chunks each, loop placement (stage c*D + d). */
void plan_loop(pp_plan *p, const char *name, int D, int v, int M);
/* GPipe: all forwards, then all backwards, per device (v = 1). */
void gen_gpipe(pp_plan *p);
/* 1F1B: warmup = min(D-d-1, M) forwards, then F/B alternating, then B's;
 * with split, W(i) right after B(i). */
void gen_1f1b(pp_plan *p);
/* Megatron's interleaved 1F1B (loop placement, M a multiple of D). */
void gen_interleaved(pp_plan *p, int v);
/* Appends ops written compactly: F0.1 B1.0 W1.0, U (update), X (flush),
 * sa0.1>1/3 (send act 0.1 to device 1, group 3), rg1.0<1/2 (recv grad 1.0
 * from device 1, group 2), A0 (allreduce of the plan's collective group 0,
 * pp_plan_coll), w2 (wait for group 2: plan version 2). */
void push_ops(pp_plan *p, int d, const char *text);
/* The list of device d in the same notation (groups included); a static
 * buffer, valid until the next call. */
char *format_ops(const pp_plan *p, int d);
/* 2 devices x 3 micro-batches, split backward, lowered by hand so that it
 * deadlocks under rendezvous: device 0 posts send act 0.1 alone while
 * device 1 posts send grad 1.0 alone, each waiting for the other. */
void plan_send_deadlock(pp_plan *p);

#endif
