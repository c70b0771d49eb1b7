/*
 * order_golden.h — what test_policy.c and test_policy_zb.c share: a
 * hand-built spec, the invariants of a compute order, the golden-file
 * notation of a device's order and the replay of tests/golden/orders*.
 */
#ifndef ORDER_GOLDEN_H
#define ORDER_GOLDEN_H

#include "test_util.h"

/* A spec as pp_spec_build would leave it, for the fields policies read,
 * with room for its placement. */
typedef struct order_spec {
    pp_spec spec;
    int placement[PP_MAX_STAGES];
} order_spec;

/* D devices, M micro-batches, v chunks, schedule.group, unit costs; the
 * V-shape placement for zbv and dualpipev with v = 2, loop otherwise. */
void order_spec_init(order_spec *t, const char *schedule, int D, int M, int v, int group);
/* Places the stages by PP_PLACE_LOOP (s on s mod D) or PP_PLACE_VSHAPE
 * (s < D on s, else on 2D - 1 - s). */
void order_spec_place(order_spec *t, int kind);

/* Each F, B (and W when split) of every (stage, mb) exactly once, on the
 * stage's device, B after its F and W after its B there; no peer or
 * group; update then flush, with no stage, mb or peer, close each list.
 * Returns a message (in msg) or NULL. */
const char *order_check_invariants(const pp_plan *p, char *msg, size_t size);

/* Whether every device's compute order runs to its end when sends never
 * block, each op waiting only for its inputs (F(s-1, m) for F(s, m);
 * F(s, m) and B(s+1, m) for B(s, m); B(s, m) for W(s, m)).  False when the
 * orders and the dependencies form a cycle: a deadlock that no placement
 * of the communication can avoid. */
bool order_runs_buffered(const pp_plan *p);

/* Device d's compute ops as the golden files write them ("1: F1.0 B1.0"),
 * into *buf (grown as needed; the caller frees it). */
void order_format_device(const pp_device *dv, char **buf, size_t *cap, int d);

/* Replays every case of tests/golden/<dir>/<policy>.txt (written by
 * tests/ref/generate_orders.py from the reference packages; its header
 * names them) through pp_policy_run; returns the number of cases, failing
 * at the first difference. */
int order_replay_golden(const char *dir, const char *policy);

/* Device dev's order for one accepted shape is exactly `want`. */
void order_expect(const char *policy, int D, int M, int v, int group, int dev, const char *want);

#endif
