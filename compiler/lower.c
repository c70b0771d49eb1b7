/*
 * lower.c — communication lowering: turns each device's compute order into
 * the list the runtime replays, with a send/recv pair for every dependency
 * that crosses devices (act: F(s,m) -> F(s+1,m); grad: B(s+1,m) -> B(s,m);
 * within micro-batch m's stages, pp_mb_first_stage .. pp_mb_last_stage)
 * and group ids saying which of them are posted together.
 *
 * Where each op goes:
 *   - a send right after its producer;
 *   - a recv right before its consumer, except that NCCL pairs the k-th
 *     send a->b with the k-th recv on b from a, so recvs on one channel must
 *     follow the sender's order: recv k goes before the earliest consumer of
 *     recvs k, k+1, ... (a suffix minimum along the channel);
 *   - all comm ops between two consecutive compute ops of a device form one
 *     group (Megatron's send_forward_recv_backward and friends).
 * "Slot" i of a device is the gap right before its i-th compute op; slot C
 * (C compute ops) follows the last one.  Then the rendezvous walk (walk.c)
 * checks the result; whenever the replay stalls, the blocked sends of each
 * wait-for cycle are delayed past the next compute op of their device
 * (repair_stall) and the replay goes on from there, so repairs cost what
 * they move.
 *
 * With overlap (pp_lower_overlap, the default of ppcc) every send and recv
 * is instead an asynchronous group of its own, posted and waited as
 * emit_overlap says, in the order of a dataflow timing (dataflow_keys):
 * docs/verifier.md, "Overlap", says why such lists always complete.  With
 * replicas, each stage's reduction is then posted after its last backward
 * (pp_plan_async_reductions, plan.c).
 *
 * Everything is flat arrays indexed by edge (act edge s*M+m, grad edge
 * S*M + s*M+m) or by (device, slot), sized exactly once: O(ops).
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

typedef struct lowering {
    pp_plan *p;
    int D, S, M;
    long SM;
    int32_t *cF, *cB;       /* [S*M] compute index of F/B(s,m) on its device, -1 none */
    int *ncompute;          /* [D] */
    long *slot_base;        /* [D + 1] first slot of each device */
    int32_t *send_slot;     /* [2*S*M] slot of the edge's send on the producer's device */
    int32_t *recv_slot;     /* [2*S*M] slot of its recv on the consumer's device */
    int32_t *send_order;    /* [nedges] edges by (producer device, producer order) */
    int32_t *chan_order;    /* [nedges] edges by (channel, send order) */
    long nedges;
    int32_t *slot_count;    /* [slots + 1] */
    int32_t *slot_items;    /* [2*nedges] edge*2 + is_recv, bucketed by slot */
    const pp_cost *cost;    /* times the send placement uses; NULL: F=1, B=2 */
    pp_op **orig;           /* [D] the compute order as given */
    int *orig_n;            /* [D] */
} lowering;

/* The device that consumes edge e (its recv side) and the one producing it. */
static int edge_dst(const lowering *L, long e)
{
    int s = (int)((e % L->SM) / L->M);
    return e < L->SM ? L->p->placement[s + 1] : L->p->placement[s - 1];
}

static int edge_src(const lowering *L, long e)
{
    return L->p->placement[(e % L->SM) / L->M];
}

/* Compute index of the op that consumes edge e. */
static int edge_consumer(const lowering *L, long e)
{
    long at = e % L->SM;
    return e < L->SM ? L->cF[at + L->M] : L->cB[at - L->M];
}

/* The act edge of F(s,m) / grad edge of B(s,m), or -1 when the next (previous)
 * stage is on the same device or does not exist. */
static long edge_of(const lowering *L, const pp_op *op)
{
    int s = op->stage;
    if (op->kind == PP_OP_F && s < pp_mb_last_stage(L->p, op->mb) && L->p->placement[s + 1] != L->p->placement[s])
        return (long)s * L->M + op->mb;
    if (op->kind == PP_OP_B && s > pp_mb_first_stage(L->p, op->mb) && L->p->placement[s - 1] != L->p->placement[s])
        return L->SM + (long)s * L->M + op->mb;
    return -1;
}

/* Checks what lowering relies on: every compute op in range, on its stage's
 * device, once; every F and B present; no comm yet. */
static int check_input(lowering *L, pp_diag *dg)
{
    pp_plan *p = L->p;
    int errors = 0;
    char buf[96];
    for (int d = 0; d < L->D; d++) {
        const pp_device *dv = &p->dev[d];
        int ci = 0;
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            if (pp_op_is_comm(op->kind)) {
                pp_error(dg, "lower: device %d, op %d (%s): the plan already has communication", d, i,
                         pp_op_format(op, buf, sizeof buf));
                return errors + 1;
            }
            if (!pp_op_is_compute(op->kind))
                continue;
            if (op->stage < 0 || op->stage >= L->S || op->mb < 0 || op->mb >= L->M ||
                p->placement[op->stage] != d || !pp_mb_visits(p, op->stage, op->mb)) {
                pp_error(dg, "lower: device %d, op %d (%s): not a stage and micro-batch of this device", d, i,
                         pp_op_format(op, buf, sizeof buf));
                errors++;
                continue;
            }
            int32_t *at = op->kind == PP_OP_F ? L->cF : op->kind == PP_OP_B ? L->cB : NULL;
            long k = (long)op->stage * L->M + op->mb;
            if (at && at[k] >= 0) {
                pp_error(dg, "lower: device %d, op %d (%s): appears twice", d, i, pp_op_format(op, buf, sizeof buf));
                errors++;
            } else if (at) {
                at[k] = ci;
            }
            ci++;
        }
        L->ncompute[d] = ci;
    }
    for (long k = 0; k < L->SM && errors < 20; k++)
        if ((L->cF[k] < 0 || L->cB[k] < 0) && pp_mb_visits(p, (int)(k / L->M), (int)(k % L->M))) {
            pp_error(dg, "lower: %s%ld.%ld is missing", L->cF[k] < 0 ? "F" : "B", k / L->M, k % L->M);
            errors++;
        }
    return errors;
}

/* Orders the edges by producer (send order) and by channel, and places the
 * recvs: the suffix minimum of consumer positions along each channel. */
static void place_edges(lowering *L)
{
    pp_plan *p = L->p;
    int D = L->D;
    size_t nch = (size_t)D * D;
    int32_t *choff = pp_xcalloc(nch + 1, sizeof *choff, "the lowering's tables");
    L->nedges = 0;
    for (int d = 0; d < D; d++)
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_op *op = &p->dev[d].ops[i];
            if (!pp_op_is_compute(op->kind))
                continue;
            long e = edge_of(L, op);
            if (e < 0)
                continue;
            L->send_order[L->nedges++] = (int32_t)e;
            choff[(size_t)d * D + edge_dst(L, e) + 1]++;
        }
    for (size_t c = 0; c < nch; c++)
        choff[c + 1] += choff[c];
    for (long k = 0; k < L->nedges; k++) { /* stable: keeps send order per channel */
        long e = L->send_order[k];
        size_t c = (size_t)edge_src(L, e) * D + edge_dst(L, e);
        L->chan_order[choff[c]++] = (int32_t)e;
    }
    /* choff[c] now ends channel c; walk each channel backwards. */
    long lo = 0;
    for (size_t c = 0; c < nch; c++) {
        int32_t min = INT32_MAX;
        for (long k = choff[c] - 1; k >= lo; k--) {
            long e = L->chan_order[k];
            int32_t want = edge_consumer(L, e);
            if (want < min)
                min = want;
            L->recv_slot[e] = min;
        }
        lo = choff[c];
    }
    for (long k = 0; k < L->nedges; k++) {
        long e = L->send_order[k];
        L->send_slot[e] = (e < L->SM ? L->cF[e] : L->cB[e - L->SM]) + 1;
    }
    free(choff);
}

static pp_op comm_op(const lowering *L, long e, bool recv)
{
    long at = e % L->SM;
    pp_op op = {.kind = recv ? PP_OP_RECV : PP_OP_SEND,
                .comm = e < L->SM ? PP_COMM_ACT : PP_COMM_GRAD,
                .stage = (int32_t)(at / L->M),
                .mb = (int32_t)(at % L->M),
                .peer = recv ? edge_src(L, e) : edge_dst(L, e),
                .group = -1};
    return op;
}

/* Writes every device's list from the compute order and the slots: sends
 * (in send order) then recvs (in channel order) in each slot. */
static void emit(lowering *L)
{
    pp_plan *p = L->p;
    long nslots = L->slot_base[L->D];
    memset(L->slot_count, 0, (size_t)(nslots + 1) * sizeof *L->slot_count);
    for (long k = 0; k < L->nedges; k++) {
        long e = L->send_order[k];
        L->slot_count[L->slot_base[edge_src(L, e)] + L->send_slot[e] + 1]++;
        L->slot_count[L->slot_base[edge_dst(L, e)] + L->recv_slot[e] + 1]++;
    }
    for (long s = 0; s < nslots; s++)
        L->slot_count[s + 1] += L->slot_count[s];
    /* slot_count[s] is now where slot s starts; fill moves it to its end. */
    for (long k = 0; k < L->nedges; k++) {
        long e = L->send_order[k];
        L->slot_items[L->slot_count[L->slot_base[edge_src(L, e)] + L->send_slot[e]]++] = (int32_t)(e * 2);
    }
    for (long k = 0; k < L->nedges; k++) {
        long e = L->chan_order[k];
        L->slot_items[L->slot_count[L->slot_base[edge_dst(L, e)] + L->recv_slot[e]]++] = (int32_t)(e * 2 + 1);
    }
    for (int d = 0; d < L->D; d++) {
        long s0 = L->slot_base[d], s1 = L->slot_base[d + 1];
        long first = s0 == 0 ? 0 : L->slot_count[s0 - 1], last = L->slot_count[s1 - 1];
        int n = L->orig_n[d] + (int)(last - first);
        pp_device *dv = &p->dev[d];
        if (dv->cap < n)
            pp_plan_reserve(p, d, n);
        int out = 0, group = 0, ci = 0, C = L->ncompute[d];
        long item = first;
#define EMIT_SLOT(slot)                                                                      \
    do {                                                                                     \
        long end_ = L->slot_count[s0 + (slot)];                                              \
        if (item < end_) {                                                                   \
            for (; item < end_; item++) {                                                    \
                pp_op op_ = comm_op(L, L->slot_items[item] / 2, L->slot_items[item] & 1);    \
                op_.group = group;                                                           \
                dv->ops[out++] = op_;                                                        \
            }                                                                                \
            group++;                                                                         \
        }                                                                                    \
    } while (0)
        if (C == 0)
            EMIT_SLOT(0);
        for (int i = 0; i < L->orig_n[d]; i++) {
            const pp_op *op = &L->orig[d][i];
            if (pp_op_is_compute(op->kind)) {
                EMIT_SLOT(ci);
                dv->ops[out++] = *op;
                if (++ci == C)
                    EMIT_SLOT(C);
            } else {
                dv->ops[out++] = *op;
            }
        }
#undef EMIT_SLOT
        dv->n = out;
    }
}

/* Sinks each send to the latest slot of its device that the ideal timing
 * (sends never wait; the costs, or F=1, B=2, or B=W=1 when split) reaches
 * no later than the receiver posts the matching recv, never before its
 * producer.  Sender and receiver then post together, as Megatron's
 * combined calls do, instead of the sender waiting in a rendezvous for a
 * recv posted later.
 *
 * "No later" compares (time, hops) pairs (pp_walk_run_eager_hops), not
 * times: every dependency strictly increases the pair, whatever the costs
 * (0, or 1e15 next to 1, where a small cost does not change the time), so a
 * slot no later than the recv's post never depends on that recv.  Each send
 * then posts no later than its recv did, so every recv ends when it did and
 * the timing stays a valid one for the new lists, in which every
 * dependency still increases the pair: they have no cycle, whatever the
 * costs.  The timing chooses where a send goes, never whether the result
 * deadlocks.  Along a channel both bounds only grow, so channel order is
 * kept. */
static void sink_sends(lowering *L)
{
    pp_plan *p = L->p;
    pp_walk w;
    if (pp_walk_init(&w, p))
        return;
    size_t nt = (size_t)w.total;
    double *dur = pp_xcalloc(nt, sizeof *dur, "the lowering's timing"),
           *start = pp_xcalloc(nt, sizeof *start, "the lowering's timing"),
           *end = pp_xcalloc(nt, sizeof *end, "the lowering's timing");
    size_t nslots = (size_t)L->slot_base[L->D];
    double *cend = pp_xcalloc(nslots, sizeof *cend, "the lowering's timing");
    uint32_t *chops = pp_xcalloc(nslots, sizeof *chops, "the lowering's timing");
    int32_t *chan_last = pp_xcalloc((size_t)L->D * L->D, sizeof *chan_last, "the lowering's timing");
    for (int d = 0; d < L->D; d++)
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_op *op = &p->dev[d].ops[i];
            int k = op->kind;
            if (L->cost && k == PP_OP_RECV && op->stage >= 0 && op->stage < p->stages)
                dur[w.base[d] + i] = pp_transfer_time(L->cost, op, d);
            if (L->cost && k == PP_OP_ALLREDUCE)
                dur[w.base[d] + i] = pp_collective_time(L->cost, p, op);
            if (!pp_op_is_compute(k))
                continue;
            if (L->cost)
                dur[w.base[d] + i] = pp_op_cost(L->cost, k, op->stage, p->split_backward);
            else
                dur[w.base[d] + i] = k == PP_OP_F || k == PP_OP_R ? 1 : k == PP_OP_B ? (p->split_backward ? 1 : 2) : 1;
        }
    if (pp_walk_run_eager_hops(&w, p, dur, L->cost ? L->cost->comm : 0, start, end) == 0) {
        for (int d = 0; d < L->D; d++)
            for (int i = 0, ci = 0; i < p->dev[d].n; i++)
                if (pp_op_is_compute(p->dev[d].ops[i].kind)) {
                    cend[L->slot_base[d] + ci] = end[w.base[d] + i];
                    chops[L->slot_base[d] + ci++] = w.hops[w.base[d] + i];
                }
        for (int d = 0; d < L->D; d++)
            for (int i = 0; i < p->dev[d].n; i++) {
                const pp_op *op = &p->dev[d].ops[i];
                if (op->kind != PP_OP_RECV)
                    continue;
                long e = (op->comm == PP_COMM_ACT ? 0 : L->SM) + (long)op->stage * L->M + op->mb;
                double t = w.t_post[w.base[d] + i];
                uint32_t h = w.hops[w.base[d] + i];
                int src = edge_src(L, e);
                /* reach[s], reach_h[s]: when slot s is reached (s >= 1). */
                const double *reach = cend + L->slot_base[src] - 1;
                const uint32_t *reach_h = chops + L->slot_base[src] - 1;
#define IN_TIME(s) pp_walk_no_later(reach[s], reach_h[s], t, h)
                /* Gallop from the channel's last answer (answers only grow
                 * along a channel), then bisect: largest slot reached in time. */
                int32_t *last = &chan_last[(size_t)src * L->D + d];
                int lo = L->send_slot[e] > *last ? L->send_slot[e] : *last, hi = L->ncompute[src], step = 1;
                while (lo + step <= hi && IN_TIME(lo + step)) {
                    lo += step;
                    step *= 2;
                }
                if (lo + step < hi)
                    hi = lo + step;
                while (lo < hi) {
                    int mid = lo + (hi - lo + 1) / 2;
                    if (IN_TIME(mid))
                        lo = mid;
                    else
                        hi = mid - 1;
                }
#undef IN_TIME
                L->send_slot[e] = *last = lo;
            }
    }
    free(dur);
    free(start);
    free(end);
    free(cend);
    free(chops);
    free(chan_last);
    pp_walk_free(&w);
}

/* The repair of a stalled replay (pp_walk_run_stalled): delays the
 * unmatched sends of every device on a wait-for cycle past its next compute
 * op (or to the front of an adjacent next group), moving ops, pairs and
 * replay state together; a device whose group has nothing left to wait for
 * is resumed.  Returns how many devices changed. */
static int repair_stall(pp_walk *w, pp_plan *p, int *resume, int *nresume)
{
    int D = w->devices, changed = 0;
    int *wait_at = pp_xcalloc((size_t)D * 3, sizeof(int), "the wait-for graph");
    int *wait_for = wait_at + D, *cycle = wait_at + 2 * D;
    pp_walk_cycles(w, p, wait_at, wait_for, cycle);
    int cap = 0;
    pp_op *tmp_op = NULL;
    int32_t *tmp_id = NULL;
    for (int d = 0; d < D; d++) {
        /* Only a device held by a send can be freed by delaying it. */
        if (cycle[d] < 0 || p->dev[d].ops[wait_at[d]].kind != PP_OP_SEND)
            continue;
        pp_op *ops = p->dev[d].ops;
        int n = p->dev[d].n, g0 = w->pc[d], g1 = w->gend[d];
        long base = w->base[d];
        int dest;
        if (g1 < n && pp_op_is_comm(ops[g1].kind))
            dest = g1;
        else if (g1 < n && pp_op_is_compute(ops[g1].kind))
            dest = g1 + 1;
        else
            continue; /* nothing after this group to delay into */
        int len = dest - g0;
        if (len > cap) {
            cap = 2 * len;
            tmp_op = realloc(tmp_op, (size_t)cap * sizeof *tmp_op);
            tmp_id = realloc(tmp_id, (size_t)cap * sizeof *tmp_id);
            if (!tmp_op || !tmp_id)
                pp_out_of_memory((double)cap * (sizeof *tmp_op + sizeof *tmp_id), "the repair of a stalled order");
        }
        /* New order of [g0, dest): the rest of the group, then what lay
         * between it and dest, then the delayed sends. tmp_id[k] is the old
         * position of the op that lands at g0 + k. */
        int k = 0, moved = 0;
        for (int j = g0; j < g1; j++)
            if (!(ops[j].kind == PP_OP_SEND && !w->done[base + j]))
                tmp_id[k++] = j;
        int kept = k;
        for (int j = g1; j < dest; j++)
            tmp_id[k++] = j;
        int32_t next_group = dest < n && pp_op_is_comm(ops[dest].kind) ? ops[dest].group : ops[g0].group;
        for (int j = g0; j < g1; j++)
            if (ops[j].kind == PP_OP_SEND && !w->done[base + j]) {
                tmp_id[k++] = j;
                moved++;
            }
        if (!moved)
            continue;
        for (int q = 0; q < len; q++) {
            tmp_op[q] = ops[tmp_id[q]];
            if (q >= len - moved)
                tmp_op[q].group = next_group;
        }
        /* Per-op state travels along; pairs are re-pointed. */
        int32_t *part = (int32_t *)malloc((size_t)len * sizeof *part);
        uint8_t *dn = malloc((size_t)len), *po = malloc((size_t)len);
        if (!part || !dn || !po)
            pp_out_of_memory((double)len * (sizeof *part + 2), "the repair of a stalled order");
        for (int q = 0; q < len; q++) {
            long from = base + tmp_id[q];
            part[q] = w->partner[from];
            dn[q] = w->done[from];
            po[q] = q >= len - moved ? 0 : w->posted[from];
        }
        for (int q = 0; q < len; q++) {
            long at = base + g0 + q;
            ops[g0 + q] = tmp_op[q];
            w->partner[at] = part[q];
            w->done[at] = dn[q];
            w->posted[at] = po[q];
            if (part[q] >= 0)
                w->partner[part[q]] = (int32_t)at;
        }
        free(part);
        free(dn);
        free(po);
        w->pending[d] -= moved;
        w->gend[d] = g0 + kept;
        if (w->pending[d] == 0)
            resume[(*nresume)++] = d;
        changed++;
    }
    free(tmp_op);
    free(tmp_id);
    free(wait_at);
    return changed;
}

int pp_walk_run_repair(pp_walk *w, pp_plan *p)
{
    return pp_walk_run_stalled(w, p, repair_stall);
}

/* Group ids 0, 1, ... per device, one per run of comm ops (repairs may have
 * split or merged groups). */
static void renumber_groups(pp_plan *p)
{
    for (int d = 0; d < p->devices; d++) {
        pp_op *ops = p->dev[d].ops;
        int next = -1;
        int32_t prev = 0;
        bool in_run = false;
        for (int i = 0; i < p->dev[d].n; i++) {
            if (!pp_op_is_comm(ops[i].kind)) {
                in_run = false;
                continue;
            }
            if (!in_run || ops[i].group != prev)
                next++;
            in_run = true;
            prev = ops[i].group;
            ops[i].group = next;
        }
    }
}

/* ---- overlap (plan version 2): every transfer asynchronous ---- */

/* The dataflow timing of the compute order, the key overlap orders the
 * communication lanes by: each compute op starts when its device is free
 * and its input has arrived (its producer's end + comm + its transfer
 * time), on the costs (NULL: F = 1, B = 2, B = W = 1 when split).  end[]
 * and topo[] (the order the ops were timed in, a topological order) are
 * indexed by slot (slot_base[d] + compute index).  false when the order
 * waits in a cycle (the verifier then names it on the synchronous form). */
static bool dataflow_keys(const lowering *L, double *end, int32_t *topo)
{
    const pp_plan *p = L->p;
    int D = L->D;
    double *arrive_at = pp_xcalloc((size_t)(2 * L->SM), sizeof *arrive_at, "the lowering's timing");
    double *link = pp_xcalloc((size_t)D * (size_t)D, sizeof *link, "the lowering's timing");
    int *ci = pp_xcalloc((size_t)D, sizeof *ci, "the lowering's timing"), *oi = pp_xcalloc((size_t)D, sizeof *oi, "the lowering's timing");
    double *clock = pp_xcalloc((size_t)D, sizeof *clock, "the lowering's timing");
    int *stack = pp_xcalloc((size_t)D, sizeof *stack, "the lowering's timing");
    uint8_t *queued = pp_xcalloc((size_t)D, 1, "the lowering's timing");
    int nstack = 0;
    int32_t next = 0;
    for (int d = D - 1; d >= 0; d--) {
        stack[nstack++] = d;
        queued[d] = 1;
    }
    while (nstack > 0) {
        int d = stack[--nstack];
        queued[d] = 0;
        for (; oi[d] < L->orig_n[d]; oi[d]++) {
            const pp_op *op = &L->orig[d][oi[d]];
            if (!pp_op_is_compute(op->kind))
                continue;
            int s = op->stage, m = op->mb;
            double ready = clock[d];
            /* the input from another device: act of F(s-1, m), grad of B(s+1, m) */
            long e = -1;
            int32_t prod = -1;
            if (op->kind == PP_OP_F && s > 0) {
                prod = L->cF[(long)(s - 1) * L->M + m];
                e = p->placement[s - 1] != d ? (long)(s - 1) * L->M + m : -1;
            } else if (op->kind == PP_OP_B && s + 1 < L->S) {
                prod = L->cB[(long)(s + 1) * L->M + m];
                e = p->placement[s + 1] != d ? L->SM + (long)(s + 1) * L->M + m : -1;
            }
            if (prod >= 0) {
                int src = e >= 0 ? edge_src(L, e) : d;
                long at = L->slot_base[src] + prod;
                if (topo[at] < 0)
                    break; /* not timed yet: resumed when it is */
                double arrive = e >= 0 ? arrive_at[e] : end[at];
                if (arrive > ready)
                    ready = arrive;
            }
            double dur = L->cost ? pp_op_cost(L->cost, op->kind, s, p->split_backward)
                         : op->kind == PP_OP_B ? (p->split_backward ? 1 : 2) : 1;
            long at = L->slot_base[d] + ci[d]++;
            end[at] = clock[d] = ready + dur;
            topo[at] = next++;
            long out = edge_of(L, op);
            if (out >= 0) { /* its transfer takes the link once it is free, as simulate.c's do */
                pp_op rv = comm_op(L, out, true);
                double *l = &link[(size_t)d * D + edge_dst(L, out)];
                *l = (*l > end[at] ? *l : end[at]) +
                     (L->cost ? L->cost->comm + pp_transfer_time(L->cost, &rv, edge_dst(L, out)) : 0);
                arrive_at[out] = *l;
            }
            if (out >= 0 && !queued[edge_dst(L, out)]) {
                stack[nstack++] = edge_dst(L, out);
                queued[edge_dst(L, out)] = 1;
            }
        }
    }
    bool all = true;
    for (int d = 0; d < D; d++)
        all = all && ci[d] == L->ncompute[d];
    free(ci);
    free(oi);
    free(clock);
    free(stack);
    free(queued);
    free(arrive_at);
    free(link);
    return all;
}

/* (end, topo) of slot a before that of slot b. */
static bool key_before(const double *end, const int32_t *topo, long a, long b)
{
    return end[a] < end[b] || (end[a] == end[b] && topo[a] < topo[b]);
}

/* The slot of edge e's producer (the key its transfer is ordered by). */
static long producer_slot(const lowering *L, long e)
{
    return L->slot_base[edge_src(L, e)] + (e < L->SM ? L->cF[e] : L->cB[e - L->SM]);
}

/* Device d's first compute slot whose key is not before slot ps's (a
 * binary search: a device's slots are in key order). */
static int first_slot_after(const lowering *L, const double *end, const int32_t *topo, int d, long ps)
{
    int lo = 0, hi = L->ncompute[d];
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (key_before(end, topo, L->slot_base[d] + mid, ps))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

typedef struct keyed_edge {
    double end;
    int32_t topo, edge;
} keyed_edge;

static int cmp_keyed(const void *a, const void *b)
{
    const keyed_edge *x = a, *y = b;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return (x->topo > y->topo) - (x->topo < y->topo);
}

/* Writes every device's list with overlap: each send and each recv alone
 * in an asynchronous group (docs/plan-format.md, "wait").  A send is posted
 * right after its producer; a recv right after the last compute op of its
 * device whose key is before its producer's (it is posted before its data
 * can leave, and no earlier), or in gap min_slot[e] when that is later
 * (fit_memory: a memory limit binds; past the consumer's gap: in that
 * gap, the version-1 place, out of the lane's key order); within a gap,
 * posts in key order.
 * Every communication lane takes its transfers in key order, the order of
 * one timing of the plan: that is what makes the lanes complete
 * (docs/verifier.md, "Why lowered plans complete"), so a post moved later
 * moves the later posts of its lane with it (a running maximum).  A recv
 * is waited right before its consumer; an act send right before the R or
 * B of its (stage, mb), the ops that use and release its activations;
 * every other send right before the flush.  False (lists untouched) when
 * min_slot pushes a post past its wait. */
static bool emit_overlap(lowering *L, const int32_t *by_key, const double *end, const int32_t *topo,
                         const int32_t *min_slot)
{
    pp_plan *p = L->p;
    long nslots = L->slot_base[L->D];
    int32_t *send_group = pp_xcalloc((size_t)(2 * L->SM), sizeof *send_group, "the lowering's tables");
    int32_t *recv_group = pp_xcalloc((size_t)(2 * L->SM), sizeof *recv_group, "the lowering's tables");
    uint8_t *send_waited = pp_xcalloc((size_t)(2 * L->SM), 1, "the lowering's tables");
    int32_t *release = pp_xcalloc((size_t)L->SM, sizeof *release, "the lowering's tables");
    int32_t *lane_at = pp_xcalloc((size_t)L->D, sizeof *lane_at, "the lowering's tables");
    /* release[s*M+m]: compute index of the first R or B of (s, m), where its act send is waited */
    for (long k = 0; k < L->SM; k++)
        release[k] = INT32_MAX;
    for (int d = 0; d < L->D; d++)
        for (int i = 0, ci = 0; i < L->orig_n[d]; i++) {
            const pp_op *op = &L->orig[d][i];
            if (!pp_op_is_compute(op->kind))
                continue;
            long k = (long)op->stage * L->M + op->mb;
            if ((op->kind == PP_OP_R || op->kind == PP_OP_B) && k >= 0 && k < L->SM && release[k] > ci)
                release[k] = ci;
            ci++;
        }
    bool ok = true;
    for (long k = 0; k < L->nedges && ok; k++) {
        long e = by_key[k], ps = producer_slot(L, e);
        int d = edge_dst(L, e), src = edge_src(L, e);
        int lo = first_slot_after(L, end, topo, d, ps);
        if (min_slot && min_slot[e] > lo)
            lo = min_slot[e];
        int ss = (e < L->SM ? L->cF[e] : L->cB[e - L->SM]) + 1;
        ss = ss > lane_at[src] ? ss : lane_at[src];
        lane_at[src] = ss;
        if (min_slot && (min_slot[e] > edge_consumer(L, e) || lane_at[d] > edge_consumer(L, e)))
            lo = edge_consumer(L, e); /* the version-1 place: waited at once, out of the lane's key order */
        else {
            lo = lo > lane_at[d] ? lo : lane_at[d];
            lane_at[d] = lo;
        }
        int sdl = e < L->SM && release[e] < INT32_MAX ? release[e] : L->ncompute[src];
        ok = lo <= edge_consumer(L, e) && ss <= sdl;
        L->recv_slot[e] = lo;
        L->send_slot[e] = ss;
    }
    free(release);
    free(lane_at);
    if (!ok) {
        free(send_group);
        free(recv_group);
        free(send_waited);
        return false;
    }
    /* posts bucketed by slot in key order: edge*2 + is_recv */
    memset(L->slot_count, 0, (size_t)(nslots + 1) * sizeof *L->slot_count);
    for (long k = 0; k < L->nedges; k++) {
        long e = by_key[k];
        L->slot_count[L->slot_base[edge_src(L, e)] + L->send_slot[e] + 1]++;
        L->slot_count[L->slot_base[edge_dst(L, e)] + L->recv_slot[e] + 1]++;
    }
    for (long q = 0; q < nslots; q++)
        L->slot_count[q + 1] += L->slot_count[q];
    for (long k = 0; k < L->nedges; k++) {
        long e = by_key[k];
        L->slot_items[L->slot_count[L->slot_base[edge_src(L, e)] + L->send_slot[e]]++] = (int32_t)(2 * e);
        L->slot_items[L->slot_count[L->slot_base[edge_dst(L, e)] + L->recv_slot[e]]++] = (int32_t)(2 * e + 1);
    }
    /* slot_count[q] is now where slot q ends */
    for (int d = 0; d < L->D; d++) {
        pp_device *dv = &p->dev[d];
        long s0 = L->slot_base[d];
        int C = L->ncompute[d];
        long first = s0 == 0 ? 0 : L->slot_count[s0 - 1], last = L->slot_count[L->slot_base[d + 1] - 1];
        int n = L->orig_n[d] + 2 * (int)(last - first);
        if (dv->cap < n)
            pp_plan_reserve(p, d, n);
        int out = 0, group = 0, ci = 0;
        long item = first;
#define POST(e_, recv_)                                         \
    do {                                                        \
        pp_op op_ = comm_op(L, (e_), (recv_));                  \
        op_.group = group;                                      \
        ((recv_) ? recv_group : send_group)[(e_)] = group++;    \
        dv->ops[out++] = op_;                                   \
    } while (0)
#define WAIT(g_) (dv->ops[out++] = (pp_op){.kind = PP_OP_WAIT, .stage = -1, .mb = -1, .peer = -1, .group = (g_)})
#define GAP(slot_)                                                                      \
    do {                                                                                \
        for (long end_ = L->slot_count[s0 + (slot_)]; item < end_; item++)              \
            POST(L->slot_items[item] / 2, L->slot_items[item] & 1);                     \
    } while (0)
        for (int i = 0; i < L->orig_n[d]; i++) {
            const pp_op *op = &L->orig[d][i];
            if (!pp_op_is_compute(op->kind)) {
                if (op->kind == PP_OP_FLUSH) {
                    GAP(C);
                    for (int j = 0; j < L->orig_n[d]; j++) { /* the sends not waited yet */
                        long e = pp_op_is_compute(L->orig[d][j].kind) ? edge_of(L, &L->orig[d][j]) : -1;
                        if (e >= 0 && !send_waited[e]) {
                            WAIT(send_group[e]);
                            send_waited[e] = 1;
                        }
                    }
                }
                dv->ops[out++] = *op;
                continue;
            }
            GAP(ci);
            /* the micro-batch's route, as edge_of: a mirrored plan's second pipeline
             * starts at stage S/2, its first ends at S/2 - 1 */
            int first_st = pp_mb_first_stage(p, op->mb), last_st = pp_mb_last_stage(p, op->mb);
            long in = -1; /* the recv it consumes */
            if (op->kind == PP_OP_F && op->stage > first_st && p->placement[op->stage - 1] != d)
                in = (long)(op->stage - 1) * L->M + op->mb;
            else if (op->kind == PP_OP_B && op->stage < last_st && p->placement[op->stage + 1] != d)
                in = L->SM + (long)(op->stage + 1) * L->M + op->mb;
            if (in >= 0)
                WAIT(recv_group[in]);
            if (op->kind == PP_OP_R || op->kind == PP_OP_B) { /* the act its F sent */
                long k = (long)op->stage * L->M + op->mb;
                if (op->stage < last_st && p->placement[op->stage + 1] != d && !send_waited[k]) {
                    WAIT(send_group[k]);
                    send_waited[k] = 1;
                }
            }
            dv->ops[out++] = *op;
            if (++ci == C)
                GAP(C);
        }
#undef GAP
#undef WAIT
#undef POST
        dv->n = out;
    }
    free(send_group);
    free(recv_group);
    free(send_waited);
    return true;
}

/* by_key[nedges]: the edges in the order of their producers' keys. */
static void key_order(const lowering *L, const double *end, const int32_t *topo, int32_t *by_key)
{
    keyed_edge *keyed = pp_xcalloc((size_t)(L->nedges ? L->nedges : 1), sizeof *keyed, "the lowering's tables");
    for (long k = 0; k < L->nedges; k++) {
        long ps = producer_slot(L, L->send_order[k]);
        keyed[k] = (keyed_edge){end[ps], topo[ps], L->send_order[k]};
    }
    qsort(keyed, (size_t)L->nedges, sizeof *keyed, cmp_keyed);
    for (long k = 0; k < L->nedges; k++)
        by_key[k] = keyed[k].edge;
    free(keyed);
}

/* memory.limit with overlap: a posted recv holds its buffer from its post
 * to its wait (activation_memory.c).  Per device, its lane in key order
 * (the running maximum emit_overlap keeps), each recv gets the earliest
 * gap from its natural one on at which its buffer, on top of the sets and
 * the buffers of the recvs before it, stays within the limit until its
 * wait; where none does, its consumer's gap (the version-1 place, whose
 * buffer goes straight to the consumer): out of the lane's order (the
 * later posts keep their gaps), or with in_order the lane's later posts
 * pushed to that gap too (the running maximum: key order kept, the way
 * lowered plans complete).  Where some device's sets alone
 * are over the limit nothing moves: no place of the posts makes the plan
 * fit, and the verifier reports it with the peaks it has without a limit
 * (the numbers --compare and the views show for it).  O(ops + the gaps
 * the buffers span).  min_slot[] gets the gaps; false where nothing moved. */
static bool fit_memory(lowering *L, const int32_t *by_key, const double *end, const int32_t *topo,
                       const pp_verify_opts *mem, bool in_order, int32_t *min_slot)
{
    pp_plan *p = L->p;
    bool changed = false;
    double limit = mem->mem_limit * (1 + 1e-12);
    bool *recomputing = pp_xcalloc((size_t)L->S, sizeof *recomputing, "the lowering's tables");
    pp_plan_recomputing(p, recomputing);
    int32_t *lane_at = pp_xcalloc((size_t)L->D, sizeof *lane_at, "the lowering's tables");
    long nslots = L->slot_base[L->D];
    /* before[q]: sets held in gap q (before compute q); after[q]: after compute q;
     * at_post[q], at_compute[q]: the buffers held there */
    double *before = pp_xcalloc((size_t)nslots, sizeof *before, "the lowering's tables");
    double *after = pp_xcalloc((size_t)nslots, sizeof *after, "the lowering's tables");
    double *at_post = pp_xcalloc((size_t)nslots, sizeof *at_post, "the lowering's tables");
    double *at_compute = pp_xcalloc((size_t)nslots, sizeof *at_compute, "the lowering's tables");
    bool over = false; /* some device's sets alone are over: the plan cannot fit, nothing moves */
    for (int d = 0; d < L->D; d++) {
        pp_mem_state m = pp_mem_begin(mem, d);
        long q = L->slot_base[d];
        for (int i = 0; i < L->orig_n[d]; i++) {
            const pp_op *op = &L->orig[d][i];
            if (!pp_op_is_compute(op->kind))
                continue;
            before[q] = pp_mem_held(&m, mem);
            pp_mem_step(&m, op, op->stage >= 0 && op->stage < L->S && recomputing[op->stage], p->split_backward, mem);
            after[q++] = pp_mem_held(&m, mem);
        }
        before[q] = after[q] = pp_mem_held(&m, mem); /* slot C */
        for (long r = L->slot_base[d]; r <= q; r++)
            over = over || before[r] > limit || after[r] > limit;
    }
    for (long k = 0; k < L->nedges && !over; k++) {
        long e = by_key[k], ps = producer_slot(L, e);
        int d = edge_dst(L, e), src = edge_src(L, e);
        int ss = (e < L->SM ? L->cF[e] : L->cB[e - L->SM]) + 1;
        lane_at[src] = ss > lane_at[src] ? ss : lane_at[src];
        int lo = first_slot_after(L, end, topo, d, ps);
        lo = lo > lane_at[d] ? lo : lane_at[d];
        int c = edge_consumer(L, e);
        long s0 = L->slot_base[d];
        pp_op rop = comm_op(L, e, true);
        double b = pp_mem_recv_size(&rop, mem);
        /* the earliest gap s >= lo whose samples s .. c all take b */
        int s = c;
        if (lo < c && before[s0 + c] + at_post[s0 + c] + b <= limit)
            for (int g = c - 1; g >= lo; g--) {
                if (after[s0 + g] + at_compute[s0 + g] + b > limit || before[s0 + g] + at_post[s0 + g] + b > limit)
                    break;
                s = g;
            }
        if (s < c || s == lo || in_order) { /* in the lane's order (in the consumer's gap: held by nothing) */
            for (int g = s; g < c; g++) {
                at_post[s0 + g] += b;
                at_compute[s0 + g] += b;
            }
            if (s < c)
                at_post[s0 + c] += b; /* until its wait */
            lane_at[d] = s;
            min_slot[e] = s;
        } else
            min_slot[e] = c + 1; /* past the consumer: its gap, the version-1 place, out of the lane's order */
        changed = changed || s != lo;
    }
    free(recomputing);
    free(lane_at);
    free(before);
    free(after);
    free(at_post);
    free(at_compute);
    return changed;
}

int pp_lower(pp_plan *p, pp_diag *dg)
{
    return pp_lower_costed(p, NULL, dg);
}

static int lower(pp_plan *p, const pp_cost *cost, bool overlap, const pp_verify_opts *mem, pp_diag *dg);

int pp_lower_costed(pp_plan *p, const pp_cost *cost, pp_diag *dg)
{
    return lower(p, cost, false, NULL, dg);
}

int pp_lower_overlap(pp_plan *p, const pp_cost *cost, const struct pp_verify_opts *mem, pp_diag *dg)
{
    return lower(p, cost, true, mem, dg);
}

static int lower(pp_plan *p, const pp_cost *cost, bool overlap, const pp_verify_opts *mem, pp_diag *dg)
{
    if (p->devices <= 0 || p->devices > PP_MAX_DEVICES || p->stages <= 0 || p->stages > PP_MAX_STAGES ||
        p->microbatches <= 0 || p->microbatches > PP_MAX_MICROBATCHES || !p->dev || !p->placement) {
        pp_error(dg, "lower: the plan has no valid shape");
        return 1;
    }
    for (int s = 0; s < p->stages; s++)
        if (p->placement[s] < 0 || p->placement[s] >= p->devices) {
            pp_error(dg, "lower: stage %d is placed on %d, not a device", s, p->placement[s]);
            return 1;
        }
    lowering L = {.p = p, .D = p->devices, .S = p->stages, .M = p->microbatches, .cost = cost};
    L.SM = (long)L.S * L.M;
    long need = 2 * L.SM / (p->mirrored ? 2 : 1); /* mirrored: each micro-batch visits half the stages */
    if (4 * L.SM >= INT32_MAX || need > pp_plan_total_ops(p)) {
        pp_error(dg, "lower: %d stages x %d micro-batches need %ld compute ops, the plan has %ld ops", L.S, L.M,
                 need, pp_plan_total_ops(p));
        return 1;
    }
    int errors = 0;
    L.cF = pp_xcalloc((size_t)L.SM, sizeof *L.cF, "the lowering's tables");
    L.cB = pp_xcalloc((size_t)L.SM, sizeof *L.cB, "the lowering's tables");
    memset(L.cF, 0xff, (size_t)L.SM * sizeof *L.cF);
    memset(L.cB, 0xff, (size_t)L.SM * sizeof *L.cB);
    L.ncompute = pp_xcalloc((size_t)L.D, sizeof *L.ncompute, "the lowering's tables");
    L.slot_base = pp_xcalloc((size_t)L.D + 1, sizeof *L.slot_base, "the lowering's tables");
    L.orig = pp_xcalloc((size_t)L.D, sizeof *L.orig, "the lowering's tables");
    L.orig_n = pp_xcalloc((size_t)L.D, sizeof *L.orig_n, "the lowering's tables");
    pp_walk w = {0};
    errors = check_input(&L, dg);
    if (errors)
        goto out;

    L.send_slot = pp_xcalloc((size_t)(2 * L.SM), sizeof *L.send_slot, "the lowering's tables");
    L.recv_slot = pp_xcalloc((size_t)(2 * L.SM), sizeof *L.recv_slot, "the lowering's tables");
    L.send_order = pp_xcalloc((size_t)(2 * L.SM), sizeof *L.send_order, "the lowering's tables");
    L.chan_order = pp_xcalloc((size_t)(2 * L.SM), sizeof *L.chan_order, "the lowering's tables");
    place_edges(&L);
    for (int d = 0; d < L.D; d++)
        L.slot_base[d + 1] = L.slot_base[d] + L.ncompute[d] + 1;
    L.slot_count = pp_xcalloc((size_t)L.slot_base[L.D] + 1, sizeof *L.slot_count, "the lowering's tables");
    L.slot_items = pp_xcalloc((size_t)(2 * L.nedges), sizeof *L.slot_items, "the lowering's tables");
    /* Keep the compute orders: emit rewrites the lists in place. */
    for (int d = 0; d < L.D; d++) {
        L.orig_n[d] = p->dev[d].n;
        L.orig[d] = pp_xcalloc((size_t)p->dev[d].n, sizeof(pp_op), "the lowering's tables");
        if (p->dev[d].n)
            memcpy(L.orig[d], p->dev[d].ops, (size_t)p->dev[d].n * sizeof(pp_op));
    }

    if (overlap) {
        size_t ns = (size_t)L.slot_base[L.D] + 1;
        double *kend = pp_xcalloc(ns, sizeof *kend, "the lowering's timing");
        int32_t *ktopo = pp_xcalloc(ns, sizeof *ktopo, "the lowering's timing");
        memset(ktopo, 0xff, ns * sizeof *ktopo);
        bool keyed = dataflow_keys(&L, kend, ktopo);
        if (keyed) {
            int32_t *by_key = pp_xcalloc((size_t)(L.nedges ? L.nedges : 1), sizeof *by_key, "the lowering's tables");
            key_order(&L, kend, ktopo, by_key);
            keyed = emit_overlap(&L, by_key, kend, ktopo, NULL); /* the natural posts always fit their waits */
            int32_t *min_slot = pp_xcalloc((size_t)(2 * L.SM), sizeof *min_slot, "the lowering's tables");
            /* Under memory.limit: the posts that fit it, a recv that fits
             * nowhere earlier in its consumer's gap, out of its lane's key
             * order (the lane's later posts stay early) or else in it (they
             * move with it).  If the lanes stall both ways (or a send would
             * pass its wait), the synchronous form, which holds no posted
             * buffer: never over the limit where the natural posts would be. */
            bool moved = false, capped = false;
            for (int in_order = 0; keyed && mem && mem->mem_limit > 0 && in_order < 2 && !capped; in_order++) {
                memset(min_slot, 0, (size_t)(2 * L.SM) * sizeof *min_slot);
                if (!fit_memory(&L, by_key, kend, ktopo, mem, in_order, min_slot))
                    break; /* the natural posts fit, or the sets alone do not */
                moved = true;
                if (emit_overlap(&L, by_key, kend, ktopo, min_slot) && !pp_walk_init(&w, p)) {
                    capped = pp_walk_run(&w, p) == 0;
                    pp_walk_free(&w);
                    w = (pp_walk){0};
                }
            }
            if (moved && !capped)
                keyed = false;
            free(min_slot);
            free(by_key);
        }
        free(kend);
        free(ktopo);
        if (keyed) { /* complete by construction; the replay says so or names why not */
            if (pp_plan_async_reductions(p))
                pp_out_of_memory(0, "the asynchronous reductions");
            if (pp_walk_init(&w, p)) {
                pp_error(dg, "lower: the plan is too large to check");
                errors = 1;
            } else if (pp_walk_run(&w, p) > 0) {
                pp_walk_report(&w, p, dg, "lower: the overlapped communication does not complete; deadlock");
                errors = 1;
            }
            goto out;
        }
        /* an order that waits in a cycle: the synchronous form, whose replay
         * names it; or posts a memory limit holds back that do not complete */
        place_edges(&L); /* the synchronous slots (emit_overlap set its own) */
    }
    emit(&L);
    sink_sends(&L);
    emit(&L);
    if (pp_walk_init(&w, p)) {
        pp_error(dg, "lower: the plan is too large to check");
        errors = 1;
    } else if (pp_walk_run_repair(&w, p) > 0) {
        pp_walk_report(&w, p, dg, "lower: no deadlock-free order of the communication; deadlock");
        errors = 1;
    } else {
        renumber_groups(p);
    }
out:
    pp_walk_free(&w);
    for (int d = 0; d < L.D; d++)
        free(L.orig[d]);
    free(L.orig);
    free(L.orig_n);
    free(L.cF);
    free(L.cB);
    free(L.ncompute);
    free(L.slot_base);
    free(L.send_slot);
    free(L.recv_slot);
    free(L.send_order);
    free(L.chan_order);
    free(L.slot_count);
    free(L.slot_items);
    return errors;
}
