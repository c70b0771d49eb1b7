/*
 * verify.c — proves a plan safe to replay, or says why not.  Used on every
 * plan ppcc writes and on every plan pprun loads (possibly hand-edited), so
 * it must survive any garbage: every value is range-checked before it is
 * used as an index, and nothing loops on the input's say-so.
 *
 * In order:
 *   1. shape: devices, stages, micro-batches, placement, list lengths;
 *   2. each op alone: kind, stage/mb/peer in range, on the right device,
 *      the right peer, once; update once after all compute (pipedream:
 *      one right after each B, docs/async.md); flush last; groups
 *      contiguous;
 *   3. exactly once: one F and one B per (stage, mb) (of a mirrored plan:
 *      per stage of mb's pipeline), one W iff split, one R per micro-batch
 *      of a stage iff it has any (recompute); a mirrored plan's sum of
 *      each stage's two copies once, after their compute;
 *   4. dependencies, within each device's list: an op runs after the op or
 *      the recv that feeds it (positions of each (stage, mb) op are kept in
 *      flat arrays indexed stage * M + mb);
 *   5. matching: the k-th send a->b against the k-th recv on b from a,
 *      the k-th allreduce of a collective group on each of its members
 *      against the k-th on every other (the group's table checked first:
 *      members, and for a tied group the first and the last stage's
 *      devices; once per step, before the update); with data_parallel,
 *      each stage's one reduction over its replicas, on its device after
 *      every B and W of it (ZeRO-1: a reduce-scatter, and a gather after
 *      the update), which every replica posts in the same place of the
 *      same list: the replay of one replica proves all of them; one
 *      posted ahead (a group, plan version 2: a stage's or a shard's only)
 *      has one wait, before the update and a tied allreduce that sums it;
 *   6. memory: the activation memory each device holds
 *      (activation_memory.c) under mem_limit;
 *   7. deadlock: the rendezvous replay (walk.c), collectives included
 *      (each waits for all its members), must bring every device to its
 *      last op; otherwise each wait-for cycle is reported.
 * Every message names the device, the op index, the op and the reason; for
 * a plan made from an order (p->order), a note then points at its token.
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

/* Positions of each (stage, mb) op on the device where it belongs. */
enum { AT_F, AT_B, AT_W, AT_SEND_ACT, AT_SEND_GRAD, AT_RECV_ACT, AT_RECV_GRAD, AT_R, AT__COUNT };

typedef struct verifier {
    const pp_plan *p;
    pp_diag *dg;
    int D, S, M;
    long SM;
    int32_t *at[AT__COUNT]; /* [S*M] op index on its device, -1 none */
    bool comm_unsafe;       /* a comm op too broken to pair or replay */
    bool groups_unsafe;     /* broken groups: a replay would mean nothing */
    /* Group ids seen on the current device: open addressing, stamped;
     * gwait[h] is the wait for that group (-1: none yet). */
    int32_t *gkey, *gstamp, *gfirst, *gwait;
    size_t gcap;
} verifier;

#define OPFMT(op) pp_plan_op_format(V->p, (op), buf, sizeof buf)
#define FAIL_OP(V, d, i, op, ...)                                                    \
    do {                                                                             \
        char msg_[256];                                                              \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                                    \
        pp_error((V)->dg, "device %d, op %d (%s): %s", (d), (i), OPFMT(op), msg_);   \
        pp_order_note((V)->p, (V)->dg, (d), (i));                                    \
    } while (0)

/* The slot of group g on this device (stamp): where it is, or the free
 * slot it would take. */
static size_t group_slot(const verifier *V, int stamp, int32_t g)
{
    size_t h = ((uint32_t)g * 2654435761u) & (V->gcap - 1);
    while (V->gstamp[h] == stamp && V->gkey[h] != g)
        h = (h + 1) & (V->gcap - 1);
    return h;
}

/* Returns the op index where group g was first seen on this device (stamp),
 * or -1 after recording it at i. */
static int group_seen(verifier *V, int stamp, int32_t g, int i)
{
    size_t h = group_slot(V, stamp, g);
    if (V->gstamp[h] == stamp)
        return V->gfirst[h];
    V->gstamp[h] = stamp;
    V->gkey[h] = g;
    V->gfirst[h] = i;
    V->gwait[h] = -1;
    return -1;
}

/* The wait of group g of the device check_device last stamped, -1 none. */
static int group_wait(const verifier *V, int stamp, int32_t g)
{
    size_t h = group_slot(V, stamp, g);
    return V->gstamp[h] == stamp ? V->gwait[h] : -1;
}

/* Wait op i (plan version 2): it names a send/recv group or an
 * asynchronous reduction seen earlier on this device, which has no other
 * wait; a reduction's comes before the update, which needs its sum. */
static void check_wait(verifier *V, int d, int i, const pp_op *op, int update_at)
{
    char buf[96];
    size_t h = group_slot(V, d + 1, op->group);
    if (op->group < 0 || V->gstamp[h] != d + 1) {
        FAIL_OP(V, d, i, op, "group %d is not a send/recv group or an asynchronous reduction earlier in this "
                "device's list", op->group);
        V->groups_unsafe = true;
    } else if (V->gwait[h] >= 0) {
        FAIL_OP(V, d, i, op, "second wait for group %d (the first is op %d)", op->group, V->gwait[h]);
        V->groups_unsafe = true;
    } else {
        V->gwait[h] = i;
        const pp_op *g = &V->p->dev[d].ops[V->gfirst[h]];
        if (g->kind == PP_OP_ALLREDUCE && update_at >= 0)
            FAIL_OP(V, d, i, op, "after update (op %d), which needs the gradients op %d (%s) reduces", update_at,
                    V->gfirst[h], pp_plan_op_format(V->p, g, (char[96]){0}, 96));
    }
}

/* An allreduce with a group (plan version 2): only a stage's reduction
 * over its replicas, or its shard, is posted ahead (docs/plan-format.md,
 * "Data parallelism"); its id is unique on the device. */
static void check_async_collective(verifier *V, int d, int i, const pp_op *op)
{
    char buf[96];
    const pp_coll *c = pp_plan_op_coll(V->p, op);
    if (!c)
        return; /* check_collective names it */
    if (c->what != PP_COLL_STAGE && c->what != PP_COLL_SHARD) {
        FAIL_OP(V, d, i, op, "carries group %d, but a %s allreduce is synchronous (only a stage's or a "
                "shard's reduction over its replicas is posted ahead)", op->group, pp_coll_what_name(c->what));
        V->groups_unsafe = true;
        return;
    }
    int first = group_seen(V, d + 1, op->group, i);
    if (first >= 0) {
        FAIL_OP(V, d, i, op, "group %d is already op %d's (a group id is unique on its device)", op->group, first);
        V->groups_unsafe = true;
    }
}

/* Every asynchronous reduction of device d has its wait (check_wait
 * refused a second). */
static void check_reduction_waits(verifier *V, int d)
{
    const pp_device *dv = &V->p->dev[d];
    char buf[96];
    for (int i = 0; i < dv->n; i++) {
        const pp_op *op = &dv->ops[i];
        if (op->kind != PP_OP_ALLREDUCE || op->group < 0)
            continue;
        size_t h = group_slot(V, d + 1, op->group);
        if (V->gstamp[h] == d + 1 && V->gfirst[h] == i && V->gwait[h] < 0) {
            FAIL_OP(V, d, i, op, "asynchronous (group %d) but never waited: the update needs its sum", op->group);
            V->groups_unsafe = true;
        }
    }
}

/* Records op i of device d at slot `which` unless it is there already. */
static void record(verifier *V, int which, int d, int i, const pp_op *op)
{
    char buf[96];
    int32_t *at = &V->at[which][(long)op->stage * V->M + op->mb];
    if (*at >= 0)
        FAIL_OP(V, d, i, op, "duplicate, first at op %d", *at);
    else
        *at = i;
}

/* The op's stage and micro-batch are in range, else an error. */
static bool stage_mb_ok(verifier *V, int d, int i, const pp_op *op)
{
    char buf[96];
    if (op->stage < 0 || op->stage >= V->S) {
        FAIL_OP(V, d, i, op, "stage %d is not a stage (the plan has %d)", op->stage, V->S);
        return false;
    }
    if (op->mb < 0 || op->mb >= V->M) {
        FAIL_OP(V, d, i, op, "micro-batch %d is not a micro-batch (the plan has %d)", op->mb, V->M);
        return false;
    }
    if (!pp_mb_visits(V->p, op->stage, op->mb)) {
        FAIL_OP(V, d, i, op, "micro-batch %d flows through stages %d..%d of the mirrored plan, not stage %d", op->mb,
                pp_mb_first_stage(V->p, op->mb), pp_mb_last_stage(V->p, op->mb), op->stage);
        return false;
    }
    return true;
}

static void check_compute(verifier *V, int d, int i, const pp_op *op)
{
    const pp_plan *p = V->p;
    char buf[96];
    if (!stage_mb_ok(V, d, i, op))
        return;
    if (p->placement[op->stage] != d) {
        FAIL_OP(V, d, i, op, "stage %d is placed on device %d", op->stage, p->placement[op->stage]);
        return;
    }
    if (op->kind == PP_OP_W && !p->split_backward) {
        FAIL_OP(V, d, i, op, "W in a plan whose backward is not split");
        return;
    }
    record(V, op->kind == PP_OP_F ? AT_F : op->kind == PP_OP_B ? AT_B : op->kind == PP_OP_R ? AT_R : AT_W, d, i,
           op);
}

static void check_comm(verifier *V, int d, int i, const pp_op *op)
{
    const pp_plan *p = V->p;
    char buf[96];
    bool send = op->kind == PP_OP_SEND, unsafe_before = V->comm_unsafe;
    V->comm_unsafe = true; /* until it passes every check */
    if (op->peer < 0 || op->peer >= V->D) {
        FAIL_OP(V, d, i, op, "peer %d is not a device", op->peer);
        return;
    }
    if (op->peer == d) {
        FAIL_OP(V, d, i, op, "the peer is the device itself");
        return;
    }
    if (op->comm != PP_COMM_ACT && op->comm != PP_COMM_GRAD) {
        FAIL_OP(V, d, i, op, "kind %d is neither act nor grad", op->comm);
        return;
    }
    if (!stage_mb_ok(V, d, i, op))
        return;
    bool act = op->comm == PP_COMM_ACT;
    int self, peer, to = pp_comm_ends(p, op->kind, op->comm, op->stage, &self, &peer);
    if (to < 0 || !pp_mb_visits(p, to, op->mb)) {
        FAIL_OP(V, d, i, op, "stage %d has no %s stage%s", op->stage, act ? "next" : "previous",
                to < 0 ? "" : " for this micro-batch (its pipeline ends there)");
        return;
    }
    if (self != d) {
        FAIL_OP(V, d, i, op, "stage %d is on device %d, so this %s belongs on device %d", send ? op->stage : to,
                self, send ? "send" : "recv", self);
        return;
    }
    if (peer != op->peer) {
        FAIL_OP(V, d, i, op, "stage %d is on device %d, not on device %d", send ? to : op->stage, peer, op->peer);
        return;
    }
    V->comm_unsafe = unsafe_before;
    record(V, send ? (act ? AT_SEND_ACT : AT_SEND_GRAD) : (act ? AT_RECV_ACT : AT_RECV_GRAD), d, i, op);
}

/* An allreduce alone: its group is the plan's and holds the device; it
 * comes before the update (which needs the summed gradients), at most once
 * per device for a tied group.  *tied_at: this device's tied allreduce so
 * far, -1 none. */
static void check_collective(verifier *V, int d, int i, const pp_op *op, int update_at, int *tied_at)
{
    const pp_plan *p = V->p;
    char buf[96];
    const pp_coll *c = pp_plan_op_coll(p, op);
    if (!c) {
        FAIL_OP(V, d, i, op, "collective group %d is not one of the plan's (it has %d)", op->peer, p->ncoll);
        V->comm_unsafe = true;
        return;
    }
    if (pp_coll_member(c, d) < 0) {
        FAIL_OP(V, d, i, op, "device %d is not a member of the group", d);
        V->comm_unsafe = true;
        return;
    }
    if (pp_coll_over_replicas(c) && op->stage != c->stage)
        FAIL_OP(V, d, i, op, "stage %d, but its group is stage %d's", op->stage, c->stage);
    if (p->async == PP_ASYNC_PIPEDREAM)
        FAIL_OP(V, d, i, op, "pipedream updates after every B: its plans have no gradient collective");
    else if (c->what == PP_COLL_GATHER && update_at < 0)
        FAIL_OP(V, d, i, op, "before the update, whose parameters it gathers");
    else if (c->what != PP_COLL_GATHER && update_at >= 0)
        FAIL_OP(V, d, i, op, "after update (op %d), which needs the summed gradients", update_at);
    if (c->what == PP_COLL_MIRROR) {
        int H = p->stages / 2, s = op->stage;
        if (!p->mirrored) {
            FAIL_OP(V, d, i, op, "a mirror allreduce in a plan that is not mirrored");
            V->comm_unsafe = true;
        } else if (s < 0 || s >= H) {
            FAIL_OP(V, d, i, op, "stage %d is not a pipeline stage (0 to %d) whose copies it could sum", s, H - 1);
            V->comm_unsafe = true;
        } else if (p->placement[s] != d && p->placement[H + s] != d) {
            FAIL_OP(V, d, i, op, "device %d holds neither stage %d nor its copy, stage %d", d, s, H + s);
            V->comm_unsafe = true;
        }
    } else if (c->what == PP_COLL_TIED) {
        if (*tied_at >= 0) {
            FAIL_OP(V, d, i, op, "second tied allreduce (the first is op %d): one a step", *tied_at);
            V->comm_unsafe = true;
        } else {
            *tied_at = i;
        }
    }
}

/* A group over the replicas of one device: the device of its stage alone,
 * in a plan with replicas, of the kind its zero setting reduces with. */
static void check_replica_group(verifier *V, int g, const pp_coll *c)
{
    const pp_plan *p = V->p;
    const char *what = pp_coll_what_name(c->what);
    bool ok = false;
    if (pp_plan_replicas(p) < 2)
        pp_error(V->dg, "plan: collective group %d (%s): data_parallel is 1, no replicas to reduce over", g, what);
    else if (c->stage < 0 || c->stage >= p->stages)
        pp_error(V->dg, "plan: collective group %d (%s): stage %d is not a stage", g, what, c->stage);
    else if (c->nranks != 1 || !c->ranks || c->ranks[0] != p->placement[c->stage])
        pp_error(V->dg, "plan: collective group %d (%s): its members must be {%d}, the device of stage %d (its "
                        "replicas are the members)", g, what, p->placement[c->stage], c->stage);
    else if ((c->what == PP_COLL_STAGE) == p->zero)
        pp_error(V->dg, "plan: collective group %d (%s): %s", g, what,
                 p->zero ? "zero = 1 reduces a stage by shard and gather" : "only zero = 1 shards and gathers");
    else
        ok = true;
    if (!ok)
        V->comm_unsafe = true;
}

/* The tied or mirror allreduce at op i of device d (no zero), summing
 * the two copies of stages a and b, sums copies already summed over the
 * replicas: every asynchronous reduction of a or b on d before it is
 * waited before it (until then its gradients are the reduction's). */
static void check_sum_after_waits(verifier *V, int d, int i, const pp_op *op, int a, int b, const char *what)
{
    const pp_device *dv = &V->p->dev[d];
    char buf[96]; /* FAIL_OP's */
    for (int j = 0; j < i; j++) {
        const pp_op *r = &dv->ops[j];
        if (r->kind != PP_OP_ALLREDUCE || r->group < 0 || (r->stage != a && r->stage != b))
            continue;
        int wt = j + 1;
        while (wt < dv->n && !(dv->ops[wt].kind == PP_OP_WAIT && dv->ops[wt].group == r->group))
            wt++;
        if (wt > i) {
            FAIL_OP(V, d, i, op, "before the wait of op %d (%s): the %s sums copies already summed over the "
                    "replicas", j, pp_plan_op_format(V->p, r, (char[96]){0}, 96), what);
            return;
        }
    }
}

/* Each stage's reductions over its replicas (data_parallel > 1): exactly
 * one STAGE (zero: one SHARD and one GATHER), after every B, W and R of
 * the stage; with zero, a tied allreduce before the device's shards. */
static void check_stage_reductions(verifier *V)
{
    const pp_plan *p = V->p;
    if (V->comm_unsafe)
        return;
    int want = pp_plan_replicas(p) > 1 ? 1 : 0;
    int *count = pp_xcalloc((size_t)V->S * 2, sizeof *count, "the verifier's tables");
    char buf[96];
    for (int d = 0; d < V->D; d++) {
        int shard_at = -1;
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_op *op = &p->dev[d].ops[i];
            const pp_coll *c = pp_plan_op_coll(p, op);
            if (!c)
                continue;
            if (c->what == PP_COLL_TIED) {
                if (p->zero && shard_at >= 0)
                    FAIL_OP(V, d, i, op, "after the shard of op %d: with zero = 1 the tied pair sums whole copies "
                            "before the reduce-scatter", shard_at);
                else if (!p->zero)
                    check_sum_after_waits(V, d, i, op, 0, V->S - 1, "tied pair");
                continue;
            }
            if (c->what == PP_COLL_MIRROR) {
                if (!p->zero)
                    check_sum_after_waits(V, d, i, op, op->stage, V->S / 2 + op->stage, "mirror");
                continue;
            }
            if (!pp_coll_over_replicas(c))
                continue;
            int s = c->stage;
            count[2 * s + (c->what == PP_COLL_GATHER)]++;
            if (c->what == PP_COLL_GATHER)
                continue;
            if (shard_at < 0 && c->what == PP_COLL_SHARD && (s == 0 || s == V->S - 1))
                shard_at = i; /* of a stage the tied pair sums */
            for (int m = 0; m < V->M; m++) {
                long k = (long)s * V->M + m;
                int late = V->at[AT_B][k] > i ? AT_B : V->at[AT_W][k] > i ? AT_W : V->at[AT_R][k] > i ? AT_R : -1;
                if (late >= 0) {
                    FAIL_OP(V, d, i, op, "before %s%d.%d (op %d): it reduces the gradients of the whole step",
                            late == AT_B ? "B" : late == AT_W ? "W" : "R", s, m, V->at[late][k]);
                    break;
                }
            }
        }
    }
    for (int s = 0; s < V->S; s++) {
        const char *kind = p->zero ? "shard" : "stage";
        if (count[2 * s] != want)
            pp_error(V->dg, "device %d: %d allreduce %s of stage %d, but data_parallel = %d needs %d", p->placement[s],
                     count[2 * s], kind, s, pp_plan_replicas(p), want);
        if (count[2 * s + 1] != (p->zero ? want : 0))
            pp_error(V->dg, "device %d: %d allreduce gather of stage %d, but zero = %d needs %d", p->placement[s],
                     count[2 * s + 1], s, p->zero, p->zero ? want : 0);
    }
    free(count);
}

/* The plan's table of collective groups: a known kind, members that are
 * devices, ascending and distinct, at least two; a tied group is the pair
 * of devices of the first and the last stage (pp_tied_pair). */
static void check_collective_groups(verifier *V)
{
    const pp_plan *p = V->p;
    if (p->ncoll < 0 || (p->ncoll > 0 && !p->coll)) {
        pp_error(V->dg, "plan: a broken table of collective groups");
        V->comm_unsafe = true;
        return;
    }
    for (int g = 0; g < p->ncoll; g++) {
        const pp_coll *c = &p->coll[g];
        bool ok = true;
        if (c->what < 0 || c->what >= PP_COLL__COUNT) {
            pp_error(V->dg, "plan: collective group %d: unknown kind %d", g, c->what);
            ok = false;
        } else if (pp_coll_over_replicas(c)) {
            check_replica_group(V, g, c);
            continue;
        } else if (c->nranks < 2 || !c->ranks) {
            pp_error(V->dg, "plan: collective group %d: %d member%s (a collective has two at least; one device "
                            "sums locally)", g, c->nranks, c->nranks == 1 ? "" : "s");
            ok = false;
        }
        /* in range and ascending bounds nranks by the devices */
        for (int k = 0; ok && k < c->nranks; k++)
            if (c->ranks[k] < 0 || c->ranks[k] >= V->D) {
                pp_error(V->dg, "plan: collective group %d: member %d is %d, not a device", g, k, c->ranks[k]);
                ok = false;
            } else if (k > 0 && c->ranks[k] <= c->ranks[k - 1]) {
                pp_error(V->dg, "plan: collective group %d: members must be distinct devices in ascending order, "
                                "got %d after %d", g, c->ranks[k], c->ranks[k - 1]);
                ok = false;
            }
        if (!ok) {
            V->comm_unsafe = true;
            continue;
        }
        int pair[2];
        if (c->what == PP_COLL_MIRROR && c->nranks != 2) {
            pp_error(V->dg, "plan: collective group %d (mirror): %d members, but a stage and its copy are on two "
                            "devices", g, c->nranks);
            V->comm_unsafe = true;
        }
        if (c->what != PP_COLL_TIED)
            continue;
        if (!pp_tied_pair(p->placement, p->stages, pair)) {
            pp_error(V->dg, "plan: collective group %d (tied): the first and the last stage are both on device %d, "
                            "so their wte is one copy (no allreduce)", g, p->placement[0]);
            V->comm_unsafe = true;
        } else if (c->nranks != 2 || c->ranks[0] != pair[0] || c->ranks[1] != pair[1]) {
            pp_error(V->dg, "plan: collective group %d (tied): its members must be {%d,%d}, the devices of the "
                            "first and the last stage", g, pair[0], pair[1]);
            V->comm_unsafe = true;
        }
    }
}

/* PipeDream (docs/async.md): every B is followed by one update before the
 * device's next compute op, and there is no other update.  *b_pending is
 * the index of a B still waiting for its update, or -1. */
static void check_pipedream_op(verifier *V, int d, int i, const pp_op *op, int *b_pending)
{
    char buf[96];
    if (op->kind == PP_OP_UPDATE) {
        if (*b_pending < 0)
            FAIL_OP(V, d, i, op, "not right after a B (pipedream: one update per B)");
        *b_pending = -1;
    } else if (pp_op_is_compute(op->kind)) {
        if (*b_pending >= 0)
            FAIL_OP(V, d, i, op, "before the update of op %d (pipedream: one update per B)", *b_pending);
        if (op->kind == PP_OP_B)
            *b_pending = i;
    }
}

/* PipeDream stashes one stage's weights per micro-batch: a device holding
 * two stages would update both at each B (docs/async.md). */
static void check_async_shape(verifier *V)
{
    const pp_plan *p = V->p;
    if (p->async == PP_ASYNC_NONE)
        return;
    if (p->split_backward)
        pp_error(V->dg, "plan: %s needs an unsplit backward", pp_async_name(p->async));
    if (p->async != PP_ASYNC_PIPEDREAM)
        return;
    for (int s = 1; s < p->stages; s++)
        for (int t = 0; t < s; t++)
            if (p->placement[t] == p->placement[s]) {
                pp_error(V->dg, "plan: pipedream needs one stage per device, but stages %d and %d are on device %d",
                         t, s, p->placement[s]);
                return;
            }
}

static void check_device(verifier *V, int d)
{
    const pp_device *dv = &V->p->dev[d];
    char buf[96];
    if (dv->n == 0) {
        pp_error(V->dg, "device %d: empty op list (it needs at least update and flush)", d);
        return;
    }
    int update_at = -1, b_pending = -1, tied_at = -1;
    for (int i = 0; i < dv->n; i++) {
        const pp_op *op = &dv->ops[i];
        bool comm = pp_op_is_comm(op->kind);
        if (op->kind >= PP_OP__COUNT) {
            pp_error(V->dg, "device %d, op %d: unknown op kind %d", d, i, op->kind);
            continue;
        }
        if (V->p->async == PP_ASYNC_PIPEDREAM) {
            check_pipedream_op(V, d, i, op, &b_pending);
            if (op->kind == PP_OP_UPDATE) {
                update_at = i;
                continue;
            }
        }
        if (pp_op_is_compute(op->kind)) {
            if (update_at >= 0 && V->p->async != PP_ASYNC_PIPEDREAM)
                FAIL_OP(V, d, i, op, "after update (op %d)", update_at);
            check_compute(V, d, i, op);
        } else if (comm) {
            check_comm(V, d, i, op);
            bool opens = i == 0 || !pp_op_is_comm(dv->ops[i - 1].kind) ||
                         dv->ops[i - 1].group != op->group;
            if (op->group < 0) {
                FAIL_OP(V, d, i, op, "group %d is not a group id", op->group);
                V->groups_unsafe = true;
            } else if (opens) {
                int first = group_seen(V, d + 1, op->group, i);
                if (first >= 0) {
                    FAIL_OP(V, d, i, op, "group %d is not contiguous (it also holds op %d)", op->group, first);
                    V->groups_unsafe = true;
                }
            }
        } else if (op->kind == PP_OP_ALLREDUCE) {
            check_collective(V, d, i, op, update_at, &tied_at);
            if (op->group >= 0)
                check_async_collective(V, d, i, op);
        } else if (op->kind == PP_OP_WAIT) {
            check_wait(V, d, i, op, update_at);
        } else if (op->kind == PP_OP_UPDATE) {
            if (update_at >= 0)
                FAIL_OP(V, d, i, op, "second update (the first is op %d)", update_at);
            else
                update_at = i;
        } else if (op->kind == PP_OP_FLUSH && i != dv->n - 1) {
            FAIL_OP(V, d, i, op, "flush before the end of the list");
        }
    }
    check_reduction_waits(V, d);
    if (b_pending >= 0)
        FAIL_OP(V, d, b_pending, &dv->ops[b_pending], "no update after it (pipedream: one update per B)");
    if (update_at < 0)
        pp_error(V->dg, "device %d: no update", d);
    if (dv->ops[dv->n - 1].kind != PP_OP_FLUSH)
        pp_error(V->dg, "device %d: the list does not end with flush", d);
}

static void check_exactly_once(verifier *V)
{
    const pp_plan *p = V->p;
    for (long k = 0; k < V->SM; k++) {
        int s = (int)(k / V->M), m = (int)(k % V->M);
        if (!pp_mb_visits(p, s, m))
            continue; /* the other pipeline's (ops there are refused) */
        if (V->at[AT_F][k] < 0)
            pp_error(V->dg, "F%d.%d is missing (stage %d is on device %d)", s, m, s, p->placement[s]);
        if (V->at[AT_B][k] < 0)
            pp_error(V->dg, "B%d.%d is missing (stage %d is on device %d)", s, m, s, p->placement[s]);
        if (p->split_backward && V->at[AT_W][k] < 0)
            pp_error(V->dg, "W%d.%d is missing (stage %d is on device %d)", s, m, s, p->placement[s]);
    }
    /* Recompute is per stage: an R for one micro-batch means one for all. */
    for (int s = 0; s < V->S; s++) {
        int with = -1, without = -1;
        for (int m = 0; m < V->M; m++)
            if (pp_mb_visits(p, s, m))
                *(V->at[AT_R][(long)s * V->M + m] >= 0 ? &with : &without) = m;
        if (with >= 0 && without >= 0)
            pp_error(V->dg, "R%d.%d is missing (stage %d recomputes: R%d.%d is in the plan)", s, without, s, s,
                     with);
    }
}

/* A mirrored plan sums the two copies of each pipeline stage s (stages s
 * and H + s) on their devices once, after the last compute op of either
 * copy there: a compute op after it would miss the sum. */
static void check_mirror(verifier *V)
{
    const pp_plan *p = V->p;
    if (!p->mirrored || V->comm_unsafe)
        return;
    int H = V->S / 2;
    char buf[96];
    int *at = pp_xcalloc((size_t)H, sizeof *at, "the verifier's tables");
    for (int d = 0; d < V->D; d++) {
        const pp_device *dv = &p->dev[d];
        for (int s = 0; s < H; s++)
            at[s] = -1;
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            const pp_coll *c = pp_plan_op_coll(p, op);
            if (c && c->what == PP_COLL_MIRROR) {
                if (at[op->stage] >= 0)
                    FAIL_OP(V, d, i, op, "second mirror allreduce of stage %d (the first is op %d): one a step",
                            op->stage, at[op->stage]);
                at[op->stage] = i;
            } else if (pp_op_is_compute(op->kind) && op->stage >= 0 && op->stage < V->S &&
                       at[op->stage % H] >= 0) {
                FAIL_OP(V, d, i, op, "after the mirror allreduce of stage %d (op %d), which sums its gradients",
                        op->stage % H, at[op->stage % H]);
            }
        }
        for (int s = 0; s < H; s++) {
            bool holds = p->placement[s] == d || p->placement[H + s] == d;
            if (holds && p->placement[s] != p->placement[H + s] && at[s] < 0)
                pp_error(V->dg, "device %d: no mirror allreduce of stage %d (its copies, stages %d and %d, are on "
                                "devices %d and %d)", d, s, s, H + s, p->placement[s], p->placement[H + s]);
        }
    }
    free(at);
}

/* Op i on device d needs (stage s, mb m) from the neighbour `from`: the op
 * `same` on this device if the stage is here, else the recv `recv`. */
static void need(verifier *V, int d, int i, const pp_op *op, int s, int m, int same_kind, int recv_kind)
{
    const pp_plan *p = V->p;
    char buf[96], what[64];
    long k = (long)s * V->M + m;
    if (p->placement[s] == d) {
        int j = V->at[same_kind][k];
        if (j > i) /* missing ones are reported as missing */
            FAIL_OP(V, d, i, op, "runs before %s%d.%d", same_kind == AT_F ? "F" : "B", s, m);
        return;
    }
    int j = V->at[recv_kind][k];
    snprintf(what, sizeof what, "recv %s %d.%d from %d", recv_kind == AT_RECV_ACT ? "act" : "grad", s, m,
             p->placement[s]);
    if (j >= 0 && j < i) { /* an asynchronous recv's data is there at its wait */
        int wt = group_wait(V, d + 1 + V->D, p->dev[d].ops[j].group);
        if (wt > i)
            FAIL_OP(V, d, i, op, "runs before wait #%d (op %d), so before the data of %s (op %d) is there",
                    p->dev[d].ops[j].group, wt, what, j);
        return;
    }
    if (j < 0)
        FAIL_OP(V, d, i, op, "no %s before it", what);
    else if (j > i)
        FAIL_OP(V, d, i, op, "runs before %s (op %d)", what, j);
}

/* The groups and waits of device d again (check_device's table holds the
 * last device's): what check_dependencies asks group_wait. */
static void rescan_waits(verifier *V, int d)
{
    const pp_device *dv = &V->p->dev[d];
    int stamp = d + 1 + V->D;
    for (int i = 0; i < dv->n; i++) {
        const pp_op *op = &dv->ops[i];
        if (pp_op_is_comm(op->kind))
            group_seen(V, stamp, op->group, i);
        if (op->kind == PP_OP_WAIT) {
            size_t h = group_slot(V, stamp, op->group);
            if (V->gstamp[h] == stamp && V->gwait[h] < 0)
                V->gwait[h] = i;
        }
    }
}

static void check_dependencies(verifier *V, int d)
{
    const pp_device *dv = &V->p->dev[d];
    char buf[96];
    for (int i = 0; i < dv->n; i++) {
        const pp_op *op = &dv->ops[i];
        int s = op->stage, m = op->mb;
        if (s < 0 || s >= V->S || m < 0 || m >= V->M)
            continue; /* reported already */
        long k = (long)s * V->M + m;
        /* Only ops recorded at i are in range and in place. */
        switch (op->kind) {
        case PP_OP_F:
            if (V->at[AT_F][k] == i && s > pp_mb_first_stage(V->p, m))
                need(V, d, i, op, s - 1, m, AT_F, AT_RECV_ACT);
            break;
        case PP_OP_B:
            if (V->at[AT_B][k] != i)
                break;
            if (V->at[AT_F][k] > i)
                FAIL_OP(V, d, i, op, "runs before F%d.%d", s, m);
            if (s < pp_mb_last_stage(V->p, m))
                need(V, d, i, op, s + 1, m, AT_B, AT_RECV_GRAD);
            break;
        case PP_OP_W:
            if (V->at[AT_W][k] == i && V->at[AT_B][k] > i)
                FAIL_OP(V, d, i, op, "runs before B%d.%d", s, m);
            break;
        case PP_OP_R: /* between its F and its B */
            if (V->at[AT_R][k] != i)
                break;
            if (V->at[AT_F][k] > i)
                FAIL_OP(V, d, i, op, "runs before F%d.%d", s, m);
            if (V->at[AT_B][k] >= 0 && V->at[AT_B][k] < i)
                FAIL_OP(V, d, i, op, "runs after B%d.%d (op %d)", s, m, V->at[AT_B][k]);
            break;
        case PP_OP_SEND: {
            bool act = op->comm == PP_COMM_ACT;
            if (V->at[act ? AT_SEND_ACT : AT_SEND_GRAD][k] != i)
                break;
            int j = V->at[act ? AT_F : AT_B][k];
            if (j > i)
                FAIL_OP(V, d, i, op, "runs before %s%d.%d", act ? "F" : "B", s, m);
            /* asynchronous, its source is read until its wait: R(s, m)
             * recomputes (rewrites) the very activations it sends */
            int w = act ? group_wait(V, d + 1 + V->D, op->group) : -1, r = act ? V->at[AT_R][k] : -1;
            if (w >= 0 && r > i && w > r)
                FAIL_OP(V, d, i, op,
                        "its wait (op %d) comes after R%d.%d (op %d), which rewrites the activations it sends: "
                        "wait for it before the recompute", w, s, m, r);
            break;
        }
        default:
            break;
        }
    }
}

/* Allreduce i of device d has no k-th match on some member: names the
 * first member short of it (a count of each is O(list), error path only). */
static void collective_unmatched(verifier *V, int d, int i, const pp_op *op)
{
    const pp_plan *p = V->p;
    const pp_coll *c = pp_plan_op_coll(p, op);
    char buf[96];
    long k = 0;
    for (int j = 0; j < i; j++)
        k += p->dev[d].ops[j].kind == PP_OP_ALLREDUCE && p->dev[d].ops[j].peer == op->peer;
    for (int m = 0; m < c->nranks; m++) {
        int r = c->ranks[m];
        long have = 0;
        for (int j = 0; j < p->dev[r].n; j++)
            have += p->dev[r].ops[j].kind == PP_OP_ALLREDUCE && p->dev[r].ops[j].peer == op->peer;
        if (r != d && have <= k) {
            FAIL_OP(V, d, i, op, "no matching allreduce on device %d (it has %ld of the group, this is number %ld "
                    "here)", r, have, k + 1);
            return;
        }
    }
}

static void check_matching(verifier *V, const pp_walk *w)
{
    const pp_plan *p = V->p;
    char buf[96], other[96];
    for (int d = 0; d < V->D; d++) {
        const pp_device *dv = &p->dev[d];
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            if (op->kind == PP_OP_ALLREDUCE && w->partner[w->base[d] + i] < 0) {
                collective_unmatched(V, d, i, op);
                V->comm_unsafe = true;
                continue;
            }
            const pp_coll *c = op->kind == PP_OP_ALLREDUCE ? pp_plan_op_coll(p, op) : NULL;
            if (c && c->what == PP_COLL_MIRROR && c->nranks == 2) { /* a pair: the partner is the other one */
                int32_t q = w->partner[w->base[d] + i];
                int r = c->ranks[c->ranks[0] == d], j = (int)(q - w->base[r]);
                const pp_op *po = j >= 0 && j < p->dev[r].n ? &p->dev[r].ops[j] : NULL;
                if (po && po->stage != op->stage) {
                    FAIL_OP(V, d, i, op, "paired with device %d, op %d (%s): another stage's", r, j,
                            pp_plan_op_format(p, po, other, sizeof other));
                    V->comm_unsafe = true;
                }
            }
            if (op->kind == PP_OP_ALLREDUCE)
                continue;
            if (!pp_op_is_comm(op->kind))
                continue;
            int32_t q = w->partner[w->base[d] + i];
            bool send = op->kind == PP_OP_SEND;
            if (q < 0) {
                if (send)
                    FAIL_OP(V, d, i, op, "no matching recv on device %d", op->peer);
                else
                    FAIL_OP(V, d, i, op, "no matching send from device %d", op->peer);
                V->comm_unsafe = true;
                continue;
            }
            int j = (int)(q - w->base[op->peer]);
            const pp_op *po = &p->dev[op->peer].ops[j];
            if (send && (po->comm != op->comm || po->stage != op->stage || po->mb != op->mb)) {
                FAIL_OP(V, d, i, op, "paired in channel order with device %d, op %d (%s)", op->peer, j,
                        pp_plan_op_format(p, po, other, sizeof other));
                V->comm_unsafe = true;
            }
        }
    }
}

/* The memory model's one accounting (activation_memory.c): the first op of
 * each device whose activation memory is over the limit, with the device's
 * peak, the number every other view shows. */
static void check_memory(verifier *V, const pp_verify_opts *o)
{
    if (!o || o->mem_limit <= 0)
        return;
    const pp_plan *p = V->p;
    char buf[96];
    bool *recomputing = pp_xcalloc((size_t)V->S, sizeof *recomputing, "the verifier's memory check");
    pp_plan_recomputing(p, recomputing);
    for (int d = 0; d < V->D; d++) {
        pp_mem_peak m = pp_device_memory(p, d, recomputing, o);
        char held[32], limit[32], peak[32], fixed_s[32], act_s[32];
        double fixed = pp_mem_begin(o, d).base;
        if (m.over_at >= 0 && fixed > 0) /* layers with weights: say what is static */
            FAIL_OP(V, d, m.over_at, &p->dev[d].ops[m.over_at],
                    "holds memory %s (static %s + activations %s), over the memory limit %s (peak memory %s)",
                    pp_mem_show(&o->units, m.held_over, held, sizeof held),
                    pp_mem_show(&o->units, fixed, fixed_s, sizeof fixed_s),
                    pp_mem_show(&o->units, m.held_over - fixed, act_s, sizeof act_s),
                    pp_mem_show(&o->units, o->mem_limit, limit, sizeof limit),
                    pp_mem_show(&o->units, m.peak, peak, sizeof peak));
        else if (m.over_at >= 0)
            FAIL_OP(V, d, m.over_at, &p->dev[d].ops[m.over_at],
                    "holds activation memory %s, over the memory limit %s (peak memory %s)",
                    pp_mem_show(&o->units, m.held_over, held, sizeof held),
                    pp_mem_show(&o->units, o->mem_limit, limit, sizeof limit),
                    pp_mem_show(&o->units, m.peak, peak, sizeof peak));
    }
    free(recomputing);
}

static bool check_shape(const pp_plan *p, pp_diag *dg)
{
    if (p->devices <= 0 || p->devices > PP_MAX_DEVICES || !p->dev) {
        pp_error(dg, "plan: %d devices (expected 1 to %d)", p->devices, PP_MAX_DEVICES);
        return false;
    }
    if (p->stages <= 0 || p->stages > PP_MAX_STAGES || !p->placement) {
        pp_error(dg, "plan: %d stages (expected 1 to %d)", p->stages, PP_MAX_STAGES);
        return false;
    }
    if (p->microbatches <= 0 || p->microbatches > PP_MAX_MICROBATCHES) {
        pp_error(dg, "plan: %d micro-batches (expected 1 to %d)", p->microbatches, PP_MAX_MICROBATCHES);
        return false;
    }
    bool ok = true;
    for (int s = 0; s < p->stages; s++)
        if (p->placement[s] < 0 || p->placement[s] >= p->devices) {
            pp_error(dg, "plan: stage %d is placed on %d, not a device", s, p->placement[s]);
            ok = false;
        }
    long total = 0;
    for (int d = 0; d < p->devices; d++) {
        if (p->dev[d].n < 0 || (p->dev[d].n > 0 && !p->dev[d].ops)) {
            pp_error(dg, "plan: device %d has a broken op list", d);
            ok = false;
        } else {
            total += p->dev[d].n;
        }
    }
    if (!ok)
        return false;
    if (p->mirrored && (p->stages % 2 || p->microbatches % 2)) {
        pp_error(dg, "plan: mirrored, but %d stages and %d micro-batches are not both even (each pipeline takes half)",
                 p->stages, p->microbatches);
        return false;
    }
    long need = 2L * p->stages * p->microbatches / (p->mirrored ? 2 : 1);
    if (total > PP_MAX_OPS_TOTAL) {
        pp_error(dg, "plan: %ld ops, more than the limit %ld", total, (long)PP_MAX_OPS_TOTAL);
        return false;
    }
    if (need > total) {
        pp_error(dg, "plan: %d stages x %d micro-batches need %ld compute ops, the lists hold %ld ops",
                 p->stages, p->microbatches, need, total);
        return false;
    }
    return true;
}

int pp_verify(const pp_plan *p, const pp_verify_opts *o, pp_diag *dg)
{
    int errors0 = dg->errors;
    if (!check_shape(p, dg))
        return dg->errors - errors0;
    verifier V = {.p = p, .dg = dg, .D = p->devices, .S = p->stages, .M = p->microbatches};
    V.SM = (long)V.S * V.M;
    for (int k = 0; k < AT__COUNT; k++) {
        V.at[k] = pp_xcalloc((size_t)V.SM, sizeof(int32_t), "the verifier's tables");
        memset(V.at[k], 0xff, (size_t)V.SM * sizeof(int32_t));
    }
    int nmax = 0;
    for (int d = 0; d < V.D; d++)
        if (p->dev[d].n > nmax)
            nmax = p->dev[d].n;
    V.gcap = 16;
    while (V.gcap < 2 * (size_t)nmax)
        V.gcap *= 2;
    V.gkey = pp_xcalloc(V.gcap, sizeof *V.gkey, "the verifier's tables");
    V.gstamp = pp_xcalloc(V.gcap, sizeof *V.gstamp, "the verifier's tables");
    V.gfirst = pp_xcalloc(V.gcap, sizeof *V.gfirst, "the verifier's tables");
    V.gwait = pp_xcalloc(V.gcap, sizeof *V.gwait, "the verifier's tables");

    check_async_shape(&V);
    check_collective_groups(&V);
    for (int d = 0; d < V.D; d++)
        check_device(&V, d);
    check_exactly_once(&V);
    check_mirror(&V);
    for (int d = 0; d < V.D; d++) {
        rescan_waits(&V, d);
        check_dependencies(&V, d);
    }
    check_stage_reductions(&V);
    check_memory(&V, o);

    pp_walk w;
    if (pp_walk_init(&w, p)) {
        pp_error(dg, "plan: too large to check");
    } else {
        if (!V.comm_unsafe)
            check_matching(&V, &w);
        if (!V.comm_unsafe && !V.groups_unsafe && pp_walk_run(&w, p) > 0)
            pp_walk_report(&w, p, dg, "deadlock");
        pp_walk_free(&w);
    }

    for (int k = 0; k < AT__COUNT; k++)
        free(V.at[k]);
    free(V.gkey);
    free(V.gstamp);
    free(V.gfirst);
    free(V.gwait);
    return dg->errors - errors0;
}

pp_verify_opts pp_verify_opts_of(const pp_spec *s, bool with_limit)
{
    return (pp_verify_opts){.act_size = s->act_size,
                            .mem_limit = with_limit ? s->mem_limit : 0,
                            .input_frac = s->cost.recompute_input,
                            .units = s->units,
                            .stage_act = s->stage_act,
                            .stage_input = s->stage_input,
                            .static_mem = s->static_mem,
                            .zero_saved = s->zero_saved,
                            .stages = s->stages,
                            .devices = s->devices};
}
