/*
 * replay.c — one device's replay of its list, and the harness every run is
 * made on: its thread walks the op list in order, computing through a
 * backend (backend.h) and exchanging activations and gradients through a
 * transport (transport.h).  It never reorders: the compiler owns deadlock
 * freedom, the verifier proved it.
 *
 * Per device, each (stage, micro-batch) has an act_set: per layer its
 * kept input and the buffers its kind declares (act_b until B, act_w and
 * grad_w until W: layer.h), plus the mailboxes through which F/B hand
 * data to the next op (in_act, in_grad) or to a send (out_act,
 * out_grad).  What a layer computes, and the sizes of the buffers it
 * keeps, are its model's; the replay only moves buffers.  They come from a per-device pool preallocated from the plan
 * (pool_plan.c sizes it by a dry run on this same harness) in the one
 * allocation that also holds the device's parameters, gradients and
 * optimizer state, so a step allocates nothing.  Which
 * weights F, R and B use, and the old versions the asynchronous policies
 * keep, is weight_versions.c's business; how a run fails and what it
 * returns, run_state.c's; starting the device threads and watching them,
 * run.c's.  The state they share is in replay_internal.h.
 *
 * Backends may be asynchronous (CUDA): ops only enqueue work, and the
 * device waits at the plan's flush.  With opts.graph and a backend that
 * can, step 1 is captured once as a graph and later steps replay it
 * (run.c).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "replay_internal.h"

/* The pool's class of buffers of `floats` (NULL, and the run failed,
 * when the layer kinds declare more sizes than the pool holds). */
static pool_class *class_of(device_ctx *D, size_t floats)
{
    for (int q = 0; q < D->npool; q++)
        if (D->pool[q].floats == floats)
            return &D->pool[q];
    if (D->npool == POOL_CLASSES) {
        run_fail(D->R, "device %d: more than %d sizes of activation buffers", D->rank,
                 POOL_CLASSES);
        return NULL;
    }
    pool_class *c = &D->pool[D->npool++];
    c->floats = floats;
    return c;
}

/* Appends p to the list (*v)[*n] of capacity *cap; out of memory fails the
 * run and releases p. */
static void list_push(device_ctx *D, float ***v, int *n, int *cap, float *p)
{
    if (*n == *cap) {
        int cap2 = *cap ? 2 * *cap : 16;
        float **grown = realloc(*v, (size_t)cap2 * sizeof **v);
        if (!grown) {
            run_fail(D->R, "device %d: out of memory for a list of activation buffers", D->rank);
            return;
        }
        *v = grown;
        *cap = cap2;
    }
    (*v)[(*n)++] = p;
}

/* An activation buffer of `floats` (NULL, and the run failed, when the
 * pool is empty and the backend has no room: a verified plan never
 * empties it).  One beyond the pool is the device's to release at the
 * end. */
static float *pool_get(device_ctx *D, size_t floats)
{
    pool_class *c = class_of(D, floats);
    if (!c)
        return NULL;
    if (c->n > 0)
        return c->free[--c->n];
    D->allocated++;
    c->taken++;
    float *p = replay_buffer(D, false, floats, "an activation buffer (%zu floats) beyond the pool's %d",
                             floats, D->R->res->pool_slots ? D->R->res->pool_slots[D->dev] : 0);
    if (p) {
        int n = D->nextra;
        list_push(D, &D->extra, &D->nextra, &D->cap_extra, p);
        if (D->nextra == n) { /* no room to remember it */
            D->R->be->release(D->bc, p);
            return NULL;
        }
    }
    return p;
}

static void pool_put(device_ctx *D, size_t floats, float *p)
{
    pool_class *c = p ? class_of(D, floats) : NULL;
    if (c)
        list_push(D, &c->free, &c->n, &c->cap, p);
}

/* Stage s ends a pipeline: the last, or a mirrored plan's first half's last. */
static bool stage_is_last(const pp_plan *p, int s)
{
    return s == p->stages - 1 || (p->mirrored && s == p->stages / 2 - 1);
}

/* The floats of layer l's input, output and activations on stage st. */
static size_t in_floats(const run *R, const stage_state *st, int l);
static size_t out_floats(const run *R, const stage_state *st, int l)
{
    const pr_layer_kind *k = st->kind[l];
    return k->out && l + 1 < st->k ? k->out(R->m, R->rows)
           : k->out && stage_is_last(R->p, st->stage) ? k->out(R->m, R->rows)
                                                     : R->slot;
}
static size_t in_floats(const run *R, const stage_state *st, int l)
{
    return l == 0 ? R->slot : out_floats(R, st, l - 1);
}
#define ACT_B(R, st, l) ((st)->kind[l]->act_b((R)->m, (R)->rows))
#define ACT_W(R, st, l) ((st)->kind[l]->act_w((R)->m, (R)->rows))
#define GRAD_W(R, st, l) ((st)->kind[l]->grad_w((R)->m, (R)->rows))

/* A buffer of 0 floats is none: NULL, never taken from the pool. */
static bool get_opt(device_ctx *D, size_t floats, float **p)
{
    *p = NULL;
    return floats == 0 || (*p = pool_get(D, floats)) != NULL;
}
static void put_opt(device_ctx *D, size_t floats, float **p)
{
    if (floats && *p)
        pool_put(D, floats, *p);
    *p = NULL;
}

/* The ops of a group run concurrently (ncclGroupStart/End): a buffer a
 * send of the group reads goes back to the pool only when the group has
 * completed, or a recv of the same group could land in it. */
static void release_held(device_ctx *D)
{
    for (int q = 0; q < D->nheld; q++)
        pool_put(D, D->R->slot, D->held[q]);
    D->nheld = 0;
}

/* The act_set of (stage, mb) on this device, or NULL. */
static act_set *set_of(device_ctx *D, int stage, int mb)
{
    if (stage < 0 || stage >= D->R->p->stages || D->local[stage] < 0)
        return NULL;
    return &D->st[D->local[stage]].mb[mb];
}

#define OP_FAIL(D, i, ...)                                                                      \
    do {                                                                                        \
        char place_[128], msg_[400];                                                            \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                                               \
        run_fail((D)->R, "%s: %s", op_place((D)->R, (D)->rank, (i), place_, sizeof place_), msg_); \
        return 1;                                                                               \
    } while (0)

/* The activations op took or released, counted by the compiler's one
 * accounting (activation_memory.c) in the plan's memory unit: the measured
 * peak. */
static void hold(device_ctx *D, const pp_op *op, bool recomputes)
{
    const pr_model *m = D->R->m;
    pp_verify_opts mem = pr_model_memory(m);
    pp_mem_step(&D->mem, op, recomputes, D->R->p->split_backward, &mem);
    double held = pp_mem_held(&D->mem, &mem);
    if (held > D->peak_mem)
        D->peak_mem = held;
    if (D->mem.full > D->peak_full)
        D->peak_full = D->mem.full;
}

/* Op i posted or waited a group: the buffers of its posted recvs, held from
 * the post until the wait (activation_memory.c), counted the same way. */
static void hold_posted(device_ctx *D, int i)
{
    if (!D->mem_posted[i])
        return;
    pp_verify_opts mem = pr_model_memory(D->R->m);
    D->mem.posted += D->mem_posted[i];
    double held = pp_mem_held(&D->mem, &mem);
    if (held > D->peak_mem)
        D->peak_mem = held;
}

/* The rank a wait on rank `peer` is held up by: following receives from
 * rank to rank (within this process, each within its replica), the first
 * one inside another op.  -1 when the chain leaves the process, loops, or
 * reaches a rank between ops (it is moving). */
static int held_up_by(const run *R, int peer)
{
    for (int hops = 0; hops <= R->last - R->first; hops++) {
        if (peer < R->first || peer > R->last)
            return -1;
        const device_ctx *P = &R->dev[peer];
        int i = atomic_load(&P->cur_op);
        if (i < 0)
            return -1;
        const pp_op *op = &R->p->dev[P->dev].ops[i];
        if (op->kind != PP_OP_RECV)
            return peer;
        peer = peer_rank(P, op->peer);
    }
    return -1;
}

/* Around a wait that ends by itself (its own timeout) and that a failed
 * run's abort wakes: the watchdog (run.c) neither takes it for a stuck
 * op nor counts it in the time an op computes. */
static double wait_begin(device_ctx *D)
{
    atomic_store_explicit(&D->waiting, 1, memory_order_relaxed);
    return pp_now();
}

static void wait_end(device_ctx *D, double since)
{
    D->waited += pp_now() - since;
    atomic_store_explicit(&D->waiting, 0, memory_order_relaxed);
}

/* A wait of D's op i (`what`) ran past the timeout because the devices
 * late[0..nlate) have not finished their current op: the error names them
 * and their ops first, since they are the ones that are stuck (or slow). */
static int fail_held_up(device_ctx *D, int i, const int *late, int nlate, const char *what)
{
    run *R = D->R;
    char stuck[400] = "", waiter[128];
    size_t len = 0;
    for (int k = 0; k < nlate && len < sizeof stuck; k++) {
        int q = late[k], j = atomic_load(&R->dev[q].cur_op);
        double age = pp_now() - R->t0 - atomic_load(&R->dev[q].op_since);
        char place[128];
        if (j >= 0) /* "X has not returned after 1.00 s, Y after 0.98 s" */
            len += (size_t)snprintf(stuck + len, sizeof stuck - len, "%s%s%s after %.2f s",
                                    k ? ", " : "", op_place(R, q, j, place, sizeof place),
                                    k ? "" : " has not returned", age);
        else /* it moved on meanwhile */
            len += (size_t)snprintf(stuck + len, sizeof stuck - len, "%s%s %s %.2f s",
                                    k ? ", " : "", rank_name(R, q, place, sizeof place),
                                    k ? "between two ops for" : "has not begun its next op after", age);
    }
    run_fail(R, "%s: %s waited %g s for %s%s (timeout)", stuck,
             op_place(R, D->rank, i, waiter, sizeof waiter), R->o->timeout,
             nlate > 1 ? "them" : "it", what);
    return 1;
}

static int do_forward(device_ctx *D, int i, const pp_op *op, int step)
{
    run *R = D->R;
    stage_state *st = &D->st[D->local[op->stage]];
    act_set *a = &st->mb[op->mb];
    if (a->live)
        OP_FAIL(D, i, "its activations are still held (F twice without B)");
    float *x = a->in_act;
    a->in_act = NULL;
    if (op->stage == pp_mb_first_stage(R->p, op->mb)) {
        pool_put(D, R->slot, x);
        if (!(x = pool_get(D, R->slot)))
            return 1; /* the run failed, naming the buffer */
        if (!R->dry)
            R->m->ops->input(&D->env, D->row0 + op->mb * R->rows, R->rows, x);
    } else if (!x) {
        OP_FAIL(D, i, "no input activation (missing recv or F of stage %d)", op->stage - 1);
    }
    if (R->p->async == PP_ASYNC_PIPEDREAM) {
        a->ver = R->vsync_ver ? step * R->p->microbatches + R->vsync_ver[op->mb] : st->cur_ver;
        if (a->ver > st->cur_ver) {
            pool_put(D, R->slot, x); /* cannot happen in a verified plan (docs/async.md) */
            OP_FAIL(D, i, "vertical sync: weight version %d of stage %d does not exist yet (%d updates applied)",
                    a->ver, op->stage, st->cur_ver);
        }
        if (!R->vsync_ver)
            st->cur_refs++;
    }
    float *P;
    if (!weights_for(D, st, a, false, &P)) {
        pool_put(D, R->slot, x);
        OP_FAIL(D, i, "weight version %d of stage %d was not kept", a->ver, op->stage);
    }
    for (int l = 0; l < st->k; l++) {
        size_t nx = in_floats(R, st, l), ny = out_floats(R, st, l);
        size_t nb = ACT_B(R, st, l), nw = ACT_W(R, st, l);
        float *y, *ab = NULL, *aw = NULL;
        if (!(y = pool_get(D, ny)) || !get_opt(D, nb, &ab) || !get_opt(D, nw, &aw)) {
            if (y)
                pool_put(D, ny, y);
            put_opt(D, nb, &ab);
            pool_put(D, nx, x); /* what the layers before kept stays in a, for the teardown */
            return 1;
        }
        if (!R->dry)
            st->kind[l]->forward(&D->env, P + st->off[l], x, ab, aw, y);
        if (st->recompute) { /* R rebuilds them from x[0] */
            if (l == 0)
                a->x[0] = x;
            else
                pool_put(D, nx, x);
            put_opt(D, nb, &ab);
            put_opt(D, nw, &aw);
        } else {
            a->x[l] = x;
            a->act_b[l] = ab;
            a->act_w[l] = aw;
        }
        x = y;
    }
    a->live = true;
    a->acts = !st->recompute;
    hold(D, op, st->recompute);
    size_t nout = out_floats(R, st, st->k - 1);
    if (op->stage == pp_mb_last_stage(R->p, op->mb)) {
        float *dy = pool_get(D, nout);
        if (!dy) {
            pool_put(D, nout, x);
            return 1;
        }
        if (!R->dry)
            R->m->ops->loss(&D->env, D->row0 + op->mb * R->rows, R->rows, x, D->loss_scratch, dy, op->mb);
        pool_put(D, nout, x);
        pool_put(D, nout, a->in_grad);
        a->in_grad = dy;
    } else {
        act_set *next = set_of(D, op->stage + 1, op->mb);
        float **box = next ? &next->in_act : &a->out_act;
        pool_put(D, R->slot, *box);
        *box = x;
    }
    return 0;
}

/* R: the same forward calls as F, from the kept stage input and with the
 * weights B will use (those F used), so the rebuilt activations are
 * bitwise F's; the stage output (sent, or turned into the loss, at F) is
 * dropped. */
static int do_recompute(device_ctx *D, int i, const pp_op *op)
{
    run *R = D->R;
    stage_state *st = &D->st[D->local[op->stage]];
    act_set *a = &st->mb[op->mb];
    if (!st->recompute)
        OP_FAIL(D, i, "stage %d does not recompute (F kept its activations)", op->stage);
    if (!a->live || !a->x[0])
        OP_FAIL(D, i, "no stage input held (R before F, or after B)");
    if (a->acts)
        OP_FAIL(D, i, "activations already held (R twice)");
    float *P;
    if (!weights_for(D, st, a, true, &P))
        OP_FAIL(D, i, "weight version %d of stage %d was not kept", a->ver, op->stage);
    float *x = a->x[0];
    for (int l = 0; l < st->k; l++) {
        size_t ny = out_floats(R, st, l), nb = ACT_B(R, st, l), nw = ACT_W(R, st, l);
        float *y;
        if (!(y = pool_get(D, ny)) || !get_opt(D, nb, &a->act_b[l]) || !get_opt(D, nw, &a->act_w[l])) {
            if (y)
                pool_put(D, ny, y);
            return 1; /* what it rebuilt so far is in a, for the teardown */
        }
        if (!R->dry) {
            const pr_layer_kind *k = st->kind[l];
            (k->recompute ? k->recompute : k->forward)(&D->env, P + st->off[l], x, a->act_b[l],
                                                        a->act_w[l], y);
        }
        if (l + 1 < st->k)
            a->x[l + 1] = y;
        else
            pool_put(D, ny, y);
        x = y;
    }
    a->acts = true;
    hold(D, op, true);
    return 0;
}

static void weight_grad(device_ctx *D, stage_state *st, act_set *a, int l)
{
    run *R = D->R;
    if (!R->dry)
        st->kind[l]->backward_weight(&D->env, a->x[l], a->act_w[l], a->grad_w[l], st->G + st->off[l]);
    pool_put(D, in_floats(R, st, l), a->x[l]);
    a->x[l] = NULL;
    put_opt(D, ACT_W(R, st, l), &a->act_w[l]);
    put_opt(D, GRAD_W(R, st, l), &a->grad_w[l]);
}

static int do_backward(device_ctx *D, int i, const pp_op *op, int step)
{
    run *R = D->R;
    bool split = R->p->split_backward;
    stage_state *st = &D->st[D->local[op->stage]];
    act_set *a = &st->mb[op->mb];
    if (!a->live || !a->acts)
        OP_FAIL(D, i, st->recompute && a->live ? "no activations held (B before its R)"
                                               : "no activations held (B before F, or B twice)");
    float *dy = a->in_grad;
    a->in_grad = NULL;
    if (!dy)
        OP_FAIL(D, i, "no output gradient (missing recv or B of stage %d)", op->stage + 1);
    float *P;
    if (!weights_for(D, st, a, true, &P)) {
        pool_put(D, out_floats(R, st, st->k - 1), dy);
        OP_FAIL(D, i, "weight version %d of stage %d was not kept", a->ver, op->stage);
    }
    for (int l = st->k - 1; l >= 0; l--) {
        size_t nx = in_floats(R, st, l), ny = out_floats(R, st, l), ng = GRAD_W(R, st, l);
        float *g = NULL, *dx = NULL;
        bool need_dx = l > 0 || op->stage > pp_mb_first_stage(R->p, op->mb);
        if (!get_opt(D, ng, &g) || (need_dx && !(dx = pool_get(D, nx)))) {
            put_opt(D, ng, &g);
            pool_put(D, ny, dy);
            return 1;
        }
        if (!R->dry)
            st->kind[l]->backward_input(&D->env, P + st->off[l], a->x[l], a->act_b[l], a->act_w[l],
                                        dy, g, dx);
        pool_put(D, ny, dy);
        put_opt(D, ACT_B(R, st, l), &a->act_b[l]);
        a->grad_w[l] = g;
        if (!split)
            weight_grad(D, st, a, l);
        dy = dx;
    }
    a->acts = false;
    a->grads = split;
    if (!split)
        a->live = false;
    hold(D, op, st->recompute);
    a->bstep = step + 1;
    if (R->p->async == PP_ASYNC_PIPEDREAM)
        stash_release(D, st, a->ver);
    if (op->stage > pp_mb_first_stage(R->p, op->mb)) {
        act_set *prev = set_of(D, op->stage - 1, op->mb);
        float **box = prev ? &prev->in_grad : &a->out_grad;
        pool_put(D, R->slot, *box);
        *box = dy;
    }
    return 0;
}

static int do_weight(device_ctx *D, int i, const pp_op *op)
{
    stage_state *st = &D->st[D->local[op->stage]];
    act_set *a = &st->mb[op->mb];
    if (!a->live || !a->grads)
        OP_FAIL(D, i, "no input-gradient state (W before B, or W twice)");
    for (int l = st->k - 1; l >= 0; l--)
        weight_grad(D, st, a, l);
    a->grads = false;
    a->live = false;
    hold(D, op, st->recompute);
    return 0;
}

static int do_send(device_ctx *D, int i, const pp_op *op)
{
    act_set *a = set_of(D, op->stage, op->mb);
    float **box = op->comm == PP_COMM_ACT ? &a->out_act : &a->out_grad;
    if (!*box)
        OP_FAIL(D, i, "nothing to send (its %s has not run)", op->comm == PP_COMM_ACT ? "F" : "B");
    pr_tag tag = {op->comm, op->stage, op->mb};
    int err = D->R->dry ? 0 : D->R->tr->ops->send(D->R->tr, D->rank, peer_rank(D, op->peer), tag, *box, D->R->slot);
    if (err == ENOMEM) {
        char size[32];
        OP_FAIL(D, i, "out of memory: the %s transport cannot buffer the message (%s)",
                D->R->tr->ops->name, pr_format_bytes((double)D->R->slot * sizeof(float), size, sizeof size));
    }
    if (err) {
        if (!D->bc->failed)
            OP_FAIL(D, i, "the %s transport failed", D->R->tr->ops->name);
        return 0; /* the caller reports the context's error */
    }
    if (D->in_group)
        list_push(D, &D->held, &D->nheld, &D->cap_held, *box);
    else
        pool_put(D, D->R->slot, *box);
    *box = NULL;
    return 0;
}

/* The mailbox a recv's data goes to: the next op's input. */
static float **recv_box(device_ctx *D, const pp_op *op)
{
    act_set *a = op->comm == PP_COMM_ACT ? set_of(D, op->stage + 1, op->mb) : set_of(D, op->stage - 1, op->mb);
    return op->comm == PP_COMM_ACT ? &a->in_act : &a->in_grad;
}

/* Op i's receive into buf (the caller's, kept on failure): 0, or the run
 * failed (1: said why; 0 with the context failed: the caller says it). */
static int recv_into(device_ctx *D, int i, const pp_op *op, float *buf, int *failed)
{
    run *R = D->R;
    pr_tag want = {op->comm, op->stage, op->mb}, got = {0, 0, 0};
    int rc = PR_RECV_OK;
    *failed = 1;
    if (!R->dry) {
        double w = wait_begin(D);
        rc = R->tr->ops->recv(R->tr, D->rank, peer_rank(D, op->peer), want, buf, R->slot, R->o->timeout, &got);
        wait_end(D, w);
    }
    if (rc == PR_RECV_OK) {
        *failed = 0;
        return 0;
    }
    if (rc == PR_RECV_ABORTED)
        return 1; /* another device failed and said why */
    if (rc == PR_RECV_ERROR)
        return 0; /* the caller reports the context's error */
    if (rc == PR_RECV_TIMEOUT) {
        int late = held_up_by(R, peer_rank(D, op->peer));
        if (late >= 0)
            return fail_held_up(D, i, &late, 1, "");
        OP_FAIL(D, i, "nothing arrived from %s within %g s (timeout)",
                rank_name(R, peer_rank(D, op->peer), (char[64]){0}, 64), R->o->timeout);
    }
    OP_FAIL(D, i, "%s sent %s instead", rank_name(R, peer_rank(D, op->peer), (char[64]){0}, 64),
            tag_name(got, (char[64]){0}, 64));
}

static int do_recv(device_ctx *D, int i, const pp_op *op)
{
    run *R = D->R;
    float **box = recv_box(D, op);
    float *buf = pool_get(D, R->slot);
    if (!buf)
        return 1; /* the run failed, naming the buffer */
    int failed, rc = recv_into(D, i, op, buf, &failed);
    if (failed) {
        pool_put(D, R->slot, buf);
        return rc;
    }
    pool_put(D, R->slot, *box);
    *box = buf;
    return 0;
}

/* The receives of the posted groups up to lane position `upto`, in post
 * order, for a transport that issues them at the wait (no recv_posts):
 * each recorded as an op of its own, ending when its data is in. */
static int receive_through(device_ctx *D, int upto, int step)
{
    run *R = D->R;
    if (R->tr->ops->recv_posts)
        return 0;
    const pp_device *dv = &R->p->dev[D->dev];
    int outer = atomic_load(&D->cur_op);
    for (; D->lane_recvd <= upto && D->lane_recvd < D->lane_n; D->lane_recvd++) {
        int g = D->lane[D->lane_recvd];
        for (int q = g; q < dv->n && dv->ops[q].group == dv->ops[g].group && pp_op_is_comm(dv->ops[q].kind); q++) {
            if (dv->ops[q].kind != PP_OP_RECV)
                continue;
            size_t rec = (size_t)(R->o->record_all ? step : 0) * (size_t)dv->n + q;
            atomic_store_explicit(&D->cur_op, q, memory_order_release); /* the watchdog names it */
            int failed, rc = recv_into(D, q, &dv->ops[q], D->posted[q], &failed);
            D->end[rec] = pp_now() - R->t0;
            atomic_store_explicit(&D->cur_op, outer, memory_order_release);
            if (failed)
                return rc ? 1 : (run_fail(R, "%s", D->bc->err), 1);
        }
    }
    return 0;
}

/* Posts the asynchronous group ops [i, j) (docs/pprun.md, "Overlap"): the
 * sends go (their sources held until the wait), each recv gets its buffer
 * now, and is issued now where the transport only enqueues; the device
 * goes straight on. */
static int exec_op(device_ctx *D, int i, int step);
static int post_group(device_ctx *D, int i, int j, int step)
{
    run *R = D->R;
    const pp_device *dv = &R->p->dev[D->dev];
    const pr_transport_ops *t = R->tr->ops;
    D->bc->op = &dv->ops[i];
    if (!R->dry && t->lane_begin && t->lane_begin(R->tr, D->rank)) {
        run_fail(R, "%s", D->bc->err);
        return 1;
    }
    D->lane_at[i] = D->lane_n;
    D->lane[D->lane_n++] = i;
    for (int q = i; q < j; q++) {
        const pp_op *op = &dv->ops[q];
        if (op->kind == PP_OP_SEND) {
            act_set *a = set_of(D, op->stage, op->mb);
            float **box = op->comm == PP_COMM_ACT ? &a->out_act : &a->out_grad;
            float *src = *box;
            D->in_group = true; /* do_send holds the source instead of releasing it */
            int rc = exec_op(D, q, step);
            D->in_group = false;
            if (rc)
                return 1;
            D->nheld--; /* held here, in posted[], until the wait */
            D->posted[q] = src;
            continue;
        }
        size_t rec = (size_t)(R->o->record_all ? step : 0) * (size_t)dv->n + q;
        D->start[rec] = D->end[rec] = pp_now() - R->t0;
        if (!(D->posted[q] = pool_get(D, R->slot)))
            return 1; /* the run failed, naming the buffer */
        hold_posted(D, q);
        if (!R->dry && !t->recv_posts && t->recv_post)
            t->recv_post(R->tr, D->rank, peer_rank(D, op->peer));
        if (t->recv_posts && !R->dry) {
            int failed, rc = recv_into(D, q, op, D->posted[q], &failed);
            if (failed)
                return rc ? 1 : (run_fail(R, "%s", D->bc->err), 1);
        }
    }
    if (t->recv_posts)
        D->lane_recvd = D->lane_n;
    D->bc->op = &dv->ops[i];
    if (!R->dry && t->lane_end && t->lane_end(R->tr, D->rank, i)) {
        run_fail(R, "%s", D->bc->err);
        return 1;
    }
    return 0;
}

/* wait #G (op i): the device waits until its group (ops from first) has
 * completed; then the received data goes to its mailboxes and the sent
 * buffers back to the pool. */
static int do_wait(device_ctx *D, int i, int step)
{
    run *R = D->R;
    const pp_device *dv = &R->p->dev[D->dev];
    int first = D->pair[i];
    if (first >= 0 && dv->ops[first].kind == PP_OP_ALLREDUCE) { /* device_loop ran it right before */
        hold_posted(D, i);
        return 0;
    }
    if (first < 0 || D->lane_at[first] < 0)
        OP_FAIL(D, i, "its group was not posted before it");
    if (receive_through(D, D->lane_at[first], step))
        return 1;
    const pr_transport_ops *t = R->tr->ops;
    if (!R->dry && t->lane_wait && t->lane_wait(R->tr, D->rank, first))
        return 0; /* the caller reports the context's error */
    for (int q = first; q < dv->n && dv->ops[q].group == dv->ops[first].group && pp_op_is_comm(dv->ops[q].kind); q++) {
        if (dv->ops[q].kind == PP_OP_RECV) {
            float **box = recv_box(D, &dv->ops[q]);
            pool_put(D, R->slot, *box);
            *box = D->posted[q];
        } else {
            pool_put(D, R->slot, D->posted[q]);
        }
        D->posted[q] = NULL;
    }
    D->lane_at[first] = -1;
    hold_posted(D, i);
    return 0;
}

/* allreduce (docs/plan-format.md): the group's members sum a gradient.
 * The tied embedding's is a pair: each sends its gradient and receives the
 * other's, posted together, then adds it; a + b = b + a in floating point,
 * so both hold the same sum, bit for bit. */
/* The stage of a mirror allreduce's pipeline stage s this device holds:
 * s, or its copy H + s. */
static stage_state *mirror_stage(device_ctx *D, int s)
{
    int H = D->R->p->stages / 2;
    int local = D->local[s] >= 0 ? D->local[s] : D->local[H + s];
    return local >= 0 ? &D->st[local] : NULL;
}

static int do_allreduce(device_ctx *D, int i, const pp_op *op)
{
    run *R = D->R;
    const pp_coll *g = &R->p->coll[op->peer];
    if (pp_coll_over_replicas(g)) /* a stage's, over the device's replicas */
        return dp_reduce(D, i, op, g);
    float *G, *recv;
    size_t n;
    if (g->what == PP_COLL_MIRROR && g->nranks == 2 && R->p->mirrored && mirror_stage(D, op->stage) &&
        D->mirror_recv) {
        stage_state *st = mirror_stage(D, op->stage); /* both copies have one layout */
        G = st->G;
        n = st->off[st->k];
        recv = D->mirror_recv;
    } else if (g->what == PP_COLL_TIED && g->nranks == 2 && D->env.tied_G && D->tied_recv) {
        G = D->env.tied_G;
        n = R->m->ops->tied_floats(R->m);
        recv = D->tied_recv;
    } else {
        OP_FAIL(D, i, "this pprun sums only a tied parameter, or a mirrored stage's two copies, between two devices");
    }
    if (R->dry)
        return 0;
    int peer = peer_rank(D, g->ranks[0] == D->dev ? g->ranks[1] : g->ranks[0]);
    /* a group's k-th collectives on its two members are one: the stage
     * tells a mirrored group's (two a step) apart */
    pr_tag tag = {PR_TAG_COLLECTIVE, op->peer, op->stage}, got = {0, 0, 0};
    bool grouped = R->tr->ops->group_begin != NULL;
    if (grouped && R->tr->ops->group_begin(R->tr, D->rank))
        return 0; /* the caller reports the context's error */
    int err = R->tr->ops->send(R->tr, D->rank, peer, tag, G, n);
    if (err == ENOMEM) {
        char size[32];
        OP_FAIL(D, i, "out of memory: the %s transport cannot buffer the message (%s)",
                R->tr->ops->name, pr_format_bytes((double)n * sizeof(float), size, sizeof size));
    }
    if (err) {
        if (!D->bc->failed)
            OP_FAIL(D, i, "the %s transport failed", R->tr->ops->name);
        return 0; /* the caller reports the context's error */
    }
    double w = wait_begin(D);
    int rc = R->tr->ops->recv(R->tr, D->rank, peer, tag, recv, n, R->o->timeout, &got);
    if (rc == PR_RECV_OK && grouped && R->tr->ops->group_end(R->tr, D->rank))
        rc = PR_RECV_ERROR;
    wait_end(D, w);
    if (rc == PR_RECV_ABORTED)
        return 1;
    if (rc == PR_RECV_ERROR)
        return 0;
    if (rc == PR_RECV_TIMEOUT) {
        int late = held_up_by(R, peer);
        if (late >= 0)
            return fail_held_up(D, i, &late, 1, "");
        OP_FAIL(D, i, "%s did not post its allreduce within %g s (timeout)",
                rank_name(R, peer, (char[64]){0}, 64), R->o->timeout);
    }
    if (rc != PR_RECV_OK)
        OP_FAIL(D, i, "%s sent %s instead of its allreduce", rank_name(R, peer, (char[64]){0}, 64),
                tag_name(got, (char[64]){0}, 64));
    R->be->add(D->bc, G, recv, n);
    return 0;
}

/* Every layer's parameters, one call per block, and a tied copy's. */
static void do_update(device_ctx *D, int step)
{
    run *R = D->R;
    const pr_model *m = R->m;
    for (int s = 0; s < D->nst; s++)
        keep_version(D, &D->st[s], step);
    if (R->dry)
        return;
    int opt = m->ops->opt_state(m);
    for (int s = 0; s < D->nst; s++) {
        stage_state *st = &D->st[s];
        if (R->p->zero) { /* ZeRO-1: its replica's part, the tied copy's included */
            dp_update_shard(D, st);
            continue;
        }
        for (int l = 0; l < st->k; l++)
            m->ops->update(&D->env, st->first_layer + l, st->P + st->off[l], st->G + st->off[l],
                           st->S ? st->S + (size_t)opt * st->off[l] : NULL, 0,
                           pr_layer_param_count(m, st->first_layer + l));
    }
    if (D->tied_P && !R->p->zero)
        m->ops->update(&D->env, 0, D->tied_P, D->tied_G, D->tied_S, 0, D->tied_n);
    D->env.update_index = (D->env.update_index + 1) % D->updates_per_step;
}

/* The step's books: loss, time, progress line.  A loss that is not finite
 * (the training diverged) is written into why: the caller ends the run
 * (it may hold R->mu, which fail takes). */
bool close_step(run *R, int step, char *why, size_t len)
{
    double t = pp_now() - R->t0;
    double sq = 0;
    size_t per_step = (size_t)R->replicas * R->p->microbatches; /* every replica's micro-batches */
    for (size_t m = 0; m < per_step; m++)
        sq += R->loss_sq[(size_t)step * per_step + m];
    double loss = R->m->ops->loss_of(R->m, sq);
    R->res->loss[step] = loss;
    if (!isfinite(loss)) {
        snprintf(why, len, "step %d of %d: the loss is %g: the training diverged (a smaller "
                 "model.lr may help)", step + 1, R->o->steps, loss);
        return false;
    }
    double dt = t - R->res->step_start[step];
    if (step + 1 < R->o->steps)
        R->res->step_start[step + 1] = t;
    R->res->seconds = t;
    if (R->o->progress) {
        fprintf(R->o->progress, "step %d/%d  loss %.6f  time %.3f ms  samples/s %.0f\n",
                step + 1, R->o->steps, loss, dt * 1e3, dt > 0 ? R->m->batch / dt : 0.0);
        fflush(R->o->progress);
    }
    return true;
}

bool has_loss(const device_ctx *D)
{
    const pp_plan *p = D->R->p;
    return D->local[p->stages - 1] >= 0 || (p->mirrored && D->local[p->stages / 2 - 1] >= 0);
}

enum { MAX_NAMED = 4 }; /* late devices a message names */

/* The devices a flush barrier waits for (under R->mu): each device of this
 * process not at it yet, or what holds it up if it waits itself
 * (held_up_by), without repeats, at most MAX_NAMED; their count. */
static int barrier_late(const run *R, int me, int *late)
{
    int n = 0;
    for (int q = R->first; q <= R->last && n < MAX_NAMED; q++) {
        if (q == me || R->dev[q].barrier_seen == R->generation + 1)
            continue;
        int who = held_up_by(R, q); /* q itself when it is inside another op */
        who = who >= 0 ? who : q;
        bool named = false;
        for (int k = 0; k < n; k++)
            named = named || late[k] == who;
        if (!named)
            late[n++] = who;
    }
    return n;
}

/* flush: the device waits for its work (and its communication), then every
 * device of this process meets; the last to arrive closes the step's books.
 * While a graph is being captured nothing waits and no books are closed:
 * the step runs when the graph is launched. */
static int do_flush(device_ctx *D, int i, int step)
{
    run *R = D->R;
    if (R->dry)
        return 0;
    if (!D->bc->capturing) {
        if (R->tr->ops->flush) {
            double w = wait_begin(D);
            int failed = R->tr->ops->flush(R->tr, D->rank, R->o->timeout);
            wait_end(D, w);
            if (failed)
                return 0; /* the caller reports the context's error */
        }
        if (has_loss(D) && R->p->mirrored) { /* two devices take losses: each its own micro-batches' */
            int M = R->p->microbatches;
            double *mine = pp_xcalloc((size_t)M, sizeof *mine, "a mirrored plan's losses");
            R->be->read_loss(D->bc, mine, M);
            for (int mb = 0; mb < M; mb++)
                if (D->local[pp_mb_last_stage(R->p, mb)] >= 0)
                    R->loss_sq[((size_t)step * R->replicas + D->replica) * M + mb] = mine[mb];
            free(mine);
        } else if (has_loss(D))
            R->be->read_loss(D->bc, R->loss_sq + ((size_t)step * R->replicas + D->replica) *
                                                    R->p->microbatches,
                             R->p->microbatches);
        else
            R->be->sync(D->bc);
        if (D->bc->failed)
            return 0;
        if (share_step_losses(D, step))
            return 1;
    }
    pthread_mutex_lock(&R->mu);
    if (atomic_load(&R->failed)) {
        pthread_mutex_unlock(&R->mu);
        return 1;
    }
    long gen = R->generation;
    char diverged[160] = "";
    int late[MAX_NAMED], nlate = -1;
    if (++R->arrived == R->last - R->first + 1) {
        if (!D->bc->capturing)
            close_step(R, step, diverged, sizeof diverged);
        R->arrived = 0;
        R->generation++;
        pthread_cond_broadcast(&R->cv);
    } else {
        D->barrier_seen = gen + 1;
        double w = wait_begin(D);
        struct timespec until = pp_deadline_after(R->o->timeout);
        while (R->generation == gen && !atomic_load(&R->failed))
            if (pthread_cond_timedwait(&R->cv, &R->mu, &until) == ETIMEDOUT &&
                R->generation == gen && !atomic_load(&R->failed)) {
                nlate = barrier_late(R, D->rank, late);
                break;
            }
        wait_end(D, w);
    }
    int failed = atomic_load(&R->failed) && R->generation == gen;
    pthread_mutex_unlock(&R->mu);
    if (*diverged) {
        run_fail(R, "%s", diverged);
        return 1;
    }
    if (nlate > 0)
        return fail_held_up(D, i, late, nlate, " at the step's barrier");
    if (nlate == 0) /* every device arrived as it timed out: cannot be named */
        OP_FAIL(D, i, "the other devices did not reach the step's flush within %g s (timeout)",
                R->o->timeout);
    return failed;
}

static int exec_op(device_ctx *D, int i, int step)
{
    const pp_op *op = &D->R->p->dev[D->dev].ops[i];
    size_t rec = (size_t)(D->R->o->record_all ? step : 0) * (size_t)D->R->p->dev[D->dev].n + i;
    D->start[rec] = pp_now() - D->R->t0;
    double waited = D->waited;
    atomic_store_explicit(&D->op_since, D->start[rec], memory_order_relaxed);
    atomic_store_explicit(&D->cur_op, i, memory_order_release); /* publishes op_since */
    D->bc->op = op;
    int rc = 0;
    if (pr_test_fault_hook && !D->R->dry && pr_test_fault_hook(D->rank, op, step))
        pr_bctx_fail(D->bc, "test fault:", "the op failed (PPRUN_TEST_FAULT)");
    else switch (op->kind) {
    case PP_OP_F: rc = do_forward(D, i, op, step); break;
    case PP_OP_B: rc = do_backward(D, i, op, step); break;
    case PP_OP_W: rc = do_weight(D, i, op); break;
    case PP_OP_R: rc = do_recompute(D, i, op); break;
    case PP_OP_SEND: rc = do_send(D, i, op); break;
    case PP_OP_RECV: rc = do_recv(D, i, op); break;
    case PP_OP_ALLREDUCE: rc = do_allreduce(D, i, op); break;
    case PP_OP_UPDATE: do_update(D, step); break;
    case PP_OP_FLUSH: rc = do_flush(D, i, step); break;
    case PP_OP_WAIT: rc = do_wait(D, i, step); break;
    default: OP_FAIL(D, i, "unknown op kind %d", op->kind);
    }
    D->end[rec] = pp_now() - D->R->t0;
    double computed = D->end[rec] - D->start[rec] - (D->waited - waited);
    if (computed > atomic_load_explicit(&D->longest, memory_order_relaxed))
        atomic_store_explicit(&D->longest, computed, memory_order_relaxed);
    atomic_store_explicit(&D->op_since, D->end[rec], memory_order_relaxed);
    atomic_store_explicit(&D->cur_op, -1, memory_order_release);
    if (D->bc->failed && !rc) {
        run_fail(D->R, "%s", D->bc->err);
        return 1;
    }
    return rc;
}

/* A group's start or end, a wait of the transport's. */
static int group_call(device_ctx *D, int (*call)(pr_transport *, int))
{
    double w = wait_begin(D);
    int rc = call(D->R->tr, D->rank);
    wait_end(D, w);
    return rc;
}

static void device_loop(device_ctx *D)
{
    run *R = D->R;
    const pp_device *dv = &R->p->dev[D->dev];
    for (int step = R->step_lo; step < R->step_hi; step++) {
        if (!R->dry && !D->bc->capturing) /* a graph gets its step at launch */
            R->be->set_step(D->bc, step);
        D->lane_n = D->lane_recvd = 0;
        for (int i = 0; i < dv->n;) {
            if (atomic_load_explicit(&D->R->failed, memory_order_relaxed))
                return;
            const pp_op *op = &dv->ops[i];
            bool comm = op->kind == PP_OP_SEND || op->kind == PP_OP_RECV;
            if (op->kind == PP_OP_ALLREDUCE && D->pair[i] >= 0) {
                /* an asynchronous reduction (docs/pprun.md, "Overlap"): the
                 * transports progress a collective only in the rank's own
                 * thread, so it runs at its wait, as a posted recv is issued */
                size_t rec = (size_t)(R->o->record_all ? step : 0) * (size_t)dv->n + i;
                D->start[rec] = D->end[rec] = pp_now() - R->t0;
                i++;
                continue;
            }
            if (op->kind == PP_OP_WAIT && D->pair[i] >= 0 && dv->ops[D->pair[i]].kind == PP_OP_ALLREDUCE &&
                ((!R->dry && receive_through(D, D->lane_n - 1, step)) || exec_op(D, D->pair[i], step)))
                return; /* the reduction, at its wait: the posted receives first (the same channels) */
            if (!comm || op->group < 0) {
                /* an allreduce travels the same channels: the posted receives first */
                if (op->kind == PP_OP_ALLREDUCE && !R->dry && receive_through(D, D->lane_n - 1, step))
                    return;
                if (exec_op(D, i, step))
                    return;
                i++;
                continue;
            }
            /* a group is posted together: sends first (buffered, or
             * concurrent with the recvs under NCCL: their buffers are held
             * until the group completes), then the receives in list order */
            int j = i;
            while (j < dv->n && dv->ops[j].group == op->group &&
                   (dv->ops[j].kind == PP_OP_SEND || dv->ops[j].kind == PP_OP_RECV))
                j++;
            if (D->pair[i] >= 0) { /* asynchronous: completed at its wait */
                if (post_group(D, i, j, step))
                    return;
                i = j;
                continue;
            }
            /* the lane takes groups in post order: the posted ones first */
            if (!R->dry && receive_through(D, D->lane_n - 1, step))
                return;
            bool grouped = !R->dry && R->tr->ops->group_begin;
            D->bc->op = op;
            if (grouped && group_call(D, R->tr->ops->group_begin)) {
                run_fail(R, "%s", D->bc->err);
                return;
            }
            D->in_group = true;
            for (int q = i; q < j; q++)
                if (dv->ops[q].kind == PP_OP_SEND && exec_op(D, q, step))
                    return;
            for (int q = i; q < j; q++)
                if (dv->ops[q].kind == PP_OP_RECV && exec_op(D, q, step))
                    return;
            D->bc->op = op;
            if (grouped && group_call(D, R->tr->ops->group_end)) {
                run_fail(R, "%s", D->bc->err);
                return;
            }
            D->in_group = false;
            release_held(D);
            i = j;
        }
    }
}

void *device_main(void *arg)
{
    device_ctx *D = arg;
    device_loop(D);
    atomic_store(&D->cur_op, -1);
    pthread_mutex_lock(&D->R->mu);
    D->returned = true;
    D->R->finished++;
    pthread_cond_broadcast(&D->R->cv);
    pthread_mutex_unlock(&D->R->mu);
    return NULL;
}

static const char *format_op(const void *op, char *buf, size_t size)
{
    return pp_op_format(op, buf, size);
}

/* Floats rounded up to 64 (256 bytes): every block carved from the arena
 * starts aligned, as GEMM operands like. */
static size_t aligned(size_t floats) { return (floats + 63) & ~(size_t)63; }

/* The next `floats` of the arena at *cursor; the dry run, which has no
 * arena, gets a token of the backend's (counted there, released at the
 * end).  NULL, and the run failed, when there is no room. */
static float *carve(device_ctx *D, size_t *cursor, size_t floats, const char *what)
{
    if (!D->R->dry) {
        float *p = D->arena + *cursor;
        *cursor += aligned(floats);
        return p;
    }
    float *p = replay_buffer(D, false, floats, "%s", what);
    if (p) {
        int n = D->nextra;
        list_push(D, &D->extra, &D->nextra, &D->cap_extra, p);
        if (D->nextra == n) {
            D->R->be->release(D->bc, p);
            return NULL;
        }
    }
    return p;
}

/* The stage's layer kinds and its parameter layout (each layer's block
 * aligned). */
static void stage_layout(run *R, device_ctx *D, stage_state *st, int s)
{
    const pr_model *m = R->m;
    const pp_plan *p = R->p;
    st->stage = s;
    st->k = m->layers_per_stage[s];
    st->first_layer = m->first_layer[s];
    for (int i = 0; i < p->dev[D->dev].n && !st->recompute; i++)
        st->recompute = p->dev[D->dev].ops[i].kind == PP_OP_R && p->dev[D->dev].ops[i].stage == s;
    st->kind = pp_xcalloc((size_t)st->k, sizeof *st->kind, "the replay's layer table");
    st->off = pp_xcalloc((size_t)st->k + 1, sizeof *st->off, "the replay's layer table");
    for (int l = 0; l < st->k; l++) {
        st->kind[l] = m->ops->kind(m, st->first_layer + l);
        st->off[l + 1] = st->off[l] + aligned(pr_layer_param_count(m, st->first_layer + l));
    }
    int M = p->microbatches;
    st->mb = pp_xcalloc((size_t)M, sizeof *st->mb, "the replay's micro-batch table");
    st->ptrs = pp_xcalloc((size_t)M * 4 * st->k, sizeof(float *), "the replay's activation table");
    for (int mb = 0; mb < M; mb++) {
        float **base = st->ptrs + (size_t)mb * 4 * st->k;
        st->mb[mb].x = base;
        st->mb[mb].act_b = base + st->k;
        st->mb[mb].act_w = base + 2 * st->k;
        st->mb[mb].grad_w = base + 3 * st->k;
    }
}

/* The layers' scratch: the most any of the device's layers asks for. */
static size_t work_floats(const run *R, const device_ctx *D)
{
    size_t most = 0;
    for (int s = 0; s < D->nst; s++)
        for (int l = 0; l < D->st[s].k; l++) {
            const pr_layer_kind *k = D->st[s].kind[l];
            size_t w = k->work ? k->work(R->m, R->rows) : 0;
            most = w > most ? w : most;
        }
    return most;
}

/* The device's stage that holds the embedding (layer 0): stage 0, or a
 * mirrored plan's copy of it; -1 none (its local index otherwise). */
static int embedding_local(const device_ctx *D)
{
    const pp_plan *p = D->R->p;
    return D->local[0] >= 0 ? D->local[0] : p->mirrored ? D->local[p->stages / 2] : -1;
}

/* The model's data, on the devices of the first and the last stage (a
 * mirrored plan: of either pipeline). */
static size_t data_floats(const run *R, const device_ctx *D)
{
    size_t bytes = 0;
    if (!R->m->ops->data || (embedding_local(D) < 0 && !has_loss(D)))
        return 0;
    R->m->ops->data(R->m, &bytes);
    return (bytes + sizeof(float) - 1) / sizeof(float);
}

/* The floats of a tied parameter's copy the device keeps: it holds the
 * last stage, another device the first. */
static size_t tied_copy_floats(const run *R, const device_ctx *D)
{
    const pr_model *m = R->m;
    if (!m->ops->tied_floats || embedding_local(D) >= 0 || !has_loss(D))
        return 0;
    return m->ops->tied_floats(m);
}

/* The floats of the other device's tied gradient an allreduce receives:
 * the device holds the first or the last stage and its list sums it. */
static size_t tied_recv_floats(const run *R, const device_ctx *D)
{
    const pr_model *m = R->m;
    if (!m->ops->tied_floats || (D->local[0] < 0 && !has_loss(D)))
        return 0;
    for (int i = 0; i < R->p->dev[D->dev].n; i++) {
        const pp_coll *g = pp_plan_op_coll(R->p, &R->p->dev[D->dev].ops[i]);
        if (g && g->what == PP_COLL_TIED)
            return m->ops->tied_floats(m);
    }
    return 0;
}

/* The floats of the other copy's gradients a mirrored plan's allreduce
 * receives: the device's largest stage. */
static size_t mirror_recv_floats(const run *R, const device_ctx *D)
{
    size_t n = 0;
    for (int s = 0; R->p->mirrored && s < D->nst; s++)
        if (D->st[s].off[D->st[s].k] > n)
            n = D->st[s].off[D->st[s].k];
    return n;
}

/* The device's memory: its stages' parameters, gradients, optimizer state
 * (and 2bw's previous weights), a tied copy's, the layers' scratch, the
 * model's data, the loss's scratch and the pool, one allocation, in that
 * order; their floats. */
static size_t arena_floats(const run *R, const device_ctx *D, const pool_shape *pool)
{
    const pr_model *m = R->m;
    bool zero = R->p->zero; /* ZeRO-1: each stage's state is its replica's part's */
    size_t opt = (size_t)m->ops->opt_state(m);
    size_t n = 0, copies = 2 + (zero ? 0 : opt) + (R->p->async == PP_ASYNC_2BW);
    for (int s = 0; s < D->nst; s++)
        n += copies * D->st[s].off[D->st[s].k] + (zero && opt ? aligned(dp_state_floats(D, &D->st[s])) : 0);
    n += (2 + (zero ? 0 : opt)) * aligned(D->tied_n);
    n += aligned(tied_recv_floats(R, D)) + aligned(mirror_recv_floats(R, D)) + aligned(dp_recv_floats(D));
    n += aligned(step_losses_floats(R, D));
    n += aligned(work_floats(R, D)) + aligned(data_floats(R, D));
    if (has_loss(D))
        n += aligned(m->ops->loss_floats(m, R->rows));
    for (int q = 0; pool && q < pool->n; q++)
        n += (size_t)pool->count[q] * aligned(pool->floats[q]);
    return n;
}

/* What the device's layers share: a tied parameter (layer 0's first
 * floats, here or in a copy initialised as layer 0 is), the layers' scratch
 * and the model's data.  host has room for layer 0's block when a copy is
 * made (the dry run: NULL).  Nonzero (R failed) without room. */
static int setup_shared(run *R, device_ctx *D, size_t *cursor, float *host)
{
    const pr_model *m = R->m;
    const pr_backend *be = R->be;
    int opt = m->ops->opt_state(m);
    if (embedding_local(D) >= 0 && m->ops->tied_floats && m->ops->tied_floats(m)) {
        stage_state *st0 = &D->st[embedding_local(D)];
        D->env.tied_P = st0->P;
        D->env.tied_G = st0->G;
    }
    if (D->tied_n) {
        if (!(D->tied_P = carve(D, cursor, D->tied_n, "the tied parameter's copy")) ||
            !(D->tied_G = carve(D, cursor, D->tied_n, "the tied parameter's gradient")) ||
            (opt && !R->p->zero && !(D->tied_S = carve(D, cursor, D->tied_n * (size_t)opt, "the tied parameter's optimizer state"))))
            return 1;
        D->env.tied_P = D->tied_P;
        D->env.tied_G = D->tied_G;
        if (!R->dry) {
            m->ops->kind(m, 0)->init(m, 0, host);
            be->weights(D->bc, D->tied_P, D->tied_n);
            be->upload(D->bc, D->tied_P, host, D->tied_n);
            be->zero(D->bc, D->tied_G, D->tied_n);
            if (D->tied_S)
                be->zero(D->bc, D->tied_S, D->tied_n * (size_t)opt);
        }
    }
    size_t nr = tied_recv_floats(R, D);
    if (nr && !(D->tied_recv = carve(D, cursor, nr, "the tied parameter's received gradient")))
        return 1;
    size_t nm = mirror_recv_floats(R, D);
    if (nm && !(D->mirror_recv = carve(D, cursor, nm, "the other copy's gradients of a mirrored stage")))
        return 1;
    size_t nl = step_losses_floats(R, D);
    if (nl && !(D->loss_row = carve(D, cursor, nl, "a step's losses on their way to the reporting rank")))
        return 1;
    D->dp_recv_n = dp_recv_floats(D);
    if (D->dp_recv_n && !(D->dp_recv = carve(D, cursor, D->dp_recv_n, "a replica's received gradients")))
        return 1;
    for (int s = 0; s < D->nst && R->p->zero && opt; s++) { /* each stage's part's state */
        stage_state *st = &D->st[s];
        size_t ns = dp_state_floats(D, st);
        if (!(st->S = carve(D, cursor, ns ? ns : 1, "the optimizer state of a stage's part")))
            return 1;
        if (!R->dry)
            be->zero(D->bc, st->S, ns ? ns : 1);
    }
    size_t w = work_floats(R, D), nd = data_floats(R, D);
    if (w && !(D->env.work = carve(D, cursor, w, "the layers' scratch")))
        return 1;
    if (nd) {
        float *dev = carve(D, cursor, nd, "the model's data");
        if (!dev)
            return 1;
        if (!R->dry) {
            size_t bytes;
            const unsigned char *src = m->ops->data(m, &bytes);
            float *pad = pp_xcalloc(nd, sizeof(float), "a copy of the model's data");
            memcpy(pad, src, bytes);
            be->upload(D->bc, dev, pad, nd);
            free(pad);
        }
        D->env.data = (const unsigned char *)dev;
    }
    return 0;
}

/* Which groups of the device's list are asynchronous: pair links each
 * wait with the first op of its group (plan_load.c checked that it names
 * one, earlier, and alone). */
static void link_waits(device_ctx *D)
{
    const pp_device *dv = &D->R->p->dev[D->dev];
    size_t n = dv->n > 0 ? (size_t)dv->n : 1;
    D->pair = pp_xcalloc(n, sizeof *D->pair, "the replay's wait table");
    D->lane = pp_xcalloc(n, sizeof *D->lane, "the replay's wait table");
    D->lane_at = pp_xcalloc(n, sizeof *D->lane_at, "the replay's wait table");
    D->posted = pp_xcalloc(n, sizeof *D->posted, "the replay's wait table");
    D->mem_posted = pp_xcalloc(n, sizeof *D->mem_posted, "the replay's wait table");
    pp_verify_opts mem = pr_model_memory(D->R->m);
    pp_mem_posted_deltas(dv, &mem, D->mem_posted);
    for (int i = 0; i < dv->n; i++)
        D->pair[i] = D->lane_at[i] = -1;
    for (int w = 0; w < dv->n; w++) {
        if (dv->ops[w].kind != PP_OP_WAIT)
            continue;
        int g = w - 1; /* back to the group's last op, then to its first (a reduction is a group of one) */
        while (g >= 0 && !((pp_op_is_comm(dv->ops[g].kind) || dv->ops[g].kind == PP_OP_ALLREDUCE) &&
                           dv->ops[g].group == dv->ops[w].group))
            g--;
        while (g > 0 && pp_op_is_comm(dv->ops[g - 1].kind) && dv->ops[g - 1].group == dv->ops[w].group)
            g--;
        if (g >= 0) {
            D->pair[w] = g;
            D->pair[g] = w;
        }
    }
}

/* Opens the device's backend context, its arena: parameters (initialised),
 * gradients and optimizer state (zero), and the pool's buffers (pool;
 * NULL in the dry run).  Nonzero (and R failed) if the backend cannot. */
int device_setup(run *R, device_ctx *D, int rank, const pool_shape *pool)
{
    const pp_plan *p = R->p;
    const pr_model *m = R->m;
    const pr_backend *be = R->be;
    D->R = R;
    D->rank = rank;
    D->dev = rank / R->replicas;
    D->replica = rank % R->replicas;
    D->row0 = D->replica * (m->batch / R->replicas);
    pp_verify_opts mem = pr_model_memory(m);
    D->mem = pp_mem_begin(&mem, D->dev); /* its static memory, held from the start */
    D->peak_mem = pp_mem_held(&D->mem, &mem);
    pr_backend_cfg cfg = {.devices = p->devices, .microbatches = p->microbatches,
                          .precision = R->o->precision,
                          .gpu = R->o->gpu_base + rank % (R->o->gpus > 0 ? R->o->gpus : 1)};
    m->ops->scratch(m, R->rows, &cfg.gemm_floats, &cfg.max_cols);
    char err[400] = "";
    D->bc = be->open(rank, &cfg, err, sizeof err);
    if (!D->bc) {
        run_fail(R, "%s: the %s backend cannot start: %s", rank_name(R, rank, (char[64]){0}, 64), be->name, err);
        return 1;
    }
    D->bc->format_op = format_op;
    rank_name(R, rank, D->bc->name, sizeof D->bc->name); /* its errors name its replica too */
    D->local = pp_xcalloc((size_t)p->stages, sizeof(int), "the replay's stage table");
    for (int s = 0; s < p->stages; s++)
        D->local[s] = p->placement[s] == D->dev ? D->nst++ : -1;
    D->st = pp_xcalloc((size_t)D->nst, sizeof *D->st, "the replay's stage states");
    for (int s = 0; s < p->stages; s++)
        if (D->local[s] >= 0)
            stage_layout(R, D, &D->st[D->local[s]], s);
    D->env = (pr_layer_env){.be = be, .c = D->bc, .m = m, .rows = R->rows,
                            .kernels = m->ops->kernels(be->device)};
    D->tied_n = tied_copy_floats(R, D);
    link_waits(D);
    D->updates_per_step = 0;
    for (int i = 0; i < p->dev[D->dev].n; i++)
        D->updates_per_step += p->dev[D->dev].ops[i].kind == PP_OP_UPDATE;
    D->updates_per_step = D->updates_per_step ? D->updates_per_step : 1;
    D->env.updates_per_step = D->updates_per_step;
    if (!R->dry && !D->env.kernels) {
        run_fail(R, "%s: the %s backend has no kernels for model %s", rank_name(R, rank, (char[64]){0}, 64), be->name,
                 m->ops->name);
        return 1;
    }
    /* the device's buffers: the first the backend has no room for ends the run, named */
    size_t cursor = 0;
    if (!R->dry)
        D->arena = replay_buffer(D, false, arena_floats(R, D, pool),
                                 "its memory (parameters, gradients, optimizer state, activations)");
    int opt = m->ops->opt_state(m);
    size_t most = 0; /* the largest layer, initialised on the host */
    for (int s = 0; s < D->nst; s++)
        for (int l = 0; l < D->st[s].k; l++)
            if (D->st[s].off[l + 1] - D->st[s].off[l] > most)
                most = D->st[s].off[l + 1] - D->st[s].off[l];
    if (D->tied_n && pr_layer_param_count(m, 0) > most) /* its copy starts as layer 0 */
        most = pr_layer_param_count(m, 0);
    float *host = R->dry ? NULL : pp_xcalloc(most ? most : 1, sizeof(float), "a layer's initial parameters");
    for (int s = 0; s < D->nst && !atomic_load(&R->failed); s++) {
        stage_state *st = &D->st[s];
        size_t n = st->off[st->k];
        char what[96];
        snprintf(what, sizeof what, "the parameters of stage %d", st->stage);
        if (!(st->P = carve(D, &cursor, n, what)))
            break;
        snprintf(what, sizeof what, "the gradients of stage %d", st->stage);
        if (!(st->G = carve(D, &cursor, n, what)))
            break;
        snprintf(what, sizeof what, "the optimizer state of stage %d", st->stage);
        if (opt && !p->zero && !(st->S = carve(D, &cursor, n * (size_t)opt, what)))
            break;
        snprintf(what, sizeof what, "the previous step's weights of stage %d", st->stage);
        if (p->async == PP_ASYNC_2BW && !(st->oldP = carve(D, &cursor, n, what)))
            break;
        if (R->dry)
            continue;
        be->weights(D->bc, st->P, n);
        be->zero(D->bc, st->P, n); /* the blocks' alignment padding too */
        for (int l = 0; l < st->k; l++) {
            int L = st->first_layer + l;
            st->kind[l]->init(m, L, host);
            /* from pageable memory: read when the call returns */
            be->upload(D->bc, st->P + st->off[l], host, pr_layer_param_count(m, L));
        }
        be->zero(D->bc, st->G, n);
        if (st->S) /* ZeRO-1's (its part's) is set up with the shared buffers */
            be->zero(D->bc, st->S, n * (size_t)opt);
        versions_setup(D, st);
    }
    if (!atomic_load(&R->failed))
        setup_shared(R, D, &cursor, host); /* a failure is R's */
    free(host);
    if (!atomic_load(&R->failed) && has_loss(D))
        D->loss_scratch = carve(D, &cursor, m->ops->loss_floats(m, R->rows), "the loss's scratch");
    for (int q = 0; pool && q < pool->n && !atomic_load(&R->failed); q++) {
        pool_class *c = class_of(D, pool->floats[q]);
        for (int i = 0; c && i < pool->count[q]; i++)
            list_push(D, &c->free, &c->n, &c->cap, carve(D, &cursor, pool->floats[q], "the pool"));
    }
    int n = p->dev[D->dev].n;
    size_t rec = (size_t)R->res->recorded_steps * (size_t)(n > 0 ? n : 1);
    char what[96], who[64];
    snprintf(what, sizeof what, "the op times of %s", rank_name(R, rank, who, sizeof who));
    D->start = pp_xcalloc(rec, sizeof(double), what);
    D->end = pp_xcalloc(rec, sizeof(double), what);
    /* the result holds replica 0's (docs/pprun.md); one process a rank: its own */
    D->own_times = D->replica > 0 && !R->o->one_rank;
    if (!D->own_times) {
        R->res->start[D->dev] = D->start;
        R->res->end[D->dev] = D->end;
    }
    if (atomic_load(&R->failed))
        return 1;
    if (D->bc->failed) {
        run_fail(R, "%s", D->bc->err);
        return 1;
    }
    return 0;
}

/* Downloads the device's parameters into the result (unless the run
 * failed), frees everything. */
void device_teardown(run *R, device_ctx *D)
{
    if (!D->bc)
        return;
    const pr_backend *be = R->be;
    const pr_model *m = R->m;
    D->bc->op = NULL;
    for (int s = 0; s < D->nst; s++) {
        stage_state *st = &D->st[s];
        for (int l = 0; l < st->k && st->P && !R->dry && !atomic_load(&R->failed); l++) {
            int L = st->first_layer + l;
            if (!D->own_times) /* replica 0, or this process's one rank */
                be->download(D->bc, R->res->params + m->param_off[L], st->P + st->off[l],
                             pr_layer_param_count(m, L));
            else if (dp_differs(D, st, l))
                break;
        }
        versions_teardown(D, st);
        free(st->kind);
        free(st->off);
        free(st->mb);
        free(st->ptrs);
    }
    for (int q = 0; q < D->nextra; q++)
        be->release(D->bc, D->extra[q]);
    be->release(D->bc, D->arena);
    if (D->own_times) {
        free(D->start);
        free(D->end);
    } else { /* replica 0's stand for the device's (the replicas run one list) */
        R->res->peak_act[D->dev] = (int)D->peak_full;
        R->res->peak_mem[D->dev] = D->peak_mem;
        R->res->pool_misses[D->dev] = D->allocated;
    }
    if (D->bc->failed && !atomic_load(&R->failed))
        run_fail(R, "%s", D->bc->err);
    be->close(D->bc);
    D->bc = NULL;
    for (int q = 0; q < D->npool; q++)
        free(D->pool[q].free);
    free(D->extra);
    free(D->held);
    free(D->pair);
    free(D->mem_posted);
    free(D->lane);
    free(D->lane_at);
    free(D->posted);
    free(D->st);
    free(D->local);
}

/* The harness every run is made on, pr_replay's and the dry run's
 * (replay_internal.h). */
void run_open(run *R, const pp_plan *p, const pr_model *m, const pr_run_opts *o, const pr_backend *be,
              pr_transport *tr, pr_run_result *res)
{
    memset(R, 0, sizeof *R);
    R->p = p;
    R->m = m;
    R->o = o;
    R->be = be;
    R->tr = tr;
    R->replicas = pp_plan_replicas(p);
    R->rows = m->batch / (p->microbatches * R->replicas); /* docs/dsl.md, "Data parallelism" */
    R->slot = m->ops->slot_floats(m, R->rows);
    R->res = res;
    R->first = 0;
    R->last = p->devices * R->replicas - 1;
    R->vsync_ver = vsync_versions(p);
    pthread_mutex_init(&R->mu, NULL);
    pp_cond_init_monotonic(&R->cv);
}

void run_close(run *R)
{
    pthread_mutex_destroy(&R->mu);
    pthread_cond_destroy(&R->cv);
    free(R->loss_sq);
    free(R->dev);
    free(R->vsync_ver);
}
