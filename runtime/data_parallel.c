/*
 * data_parallel.c — a stage's reduction over the R replicas of its device
 * (docs/plan-format.md, "Data parallelism"), on the replay's transport.
 *
 * A stage's gradients (its layers' blocks, and on the last stage's device
 * the tied copy of wte) are cut into R equal parts in that order; replica
 * r owns part r.  The reduce-scatter: every replica sends part q of its
 * gradients to replica q, and replica r adds the parts it receives into
 * its own part r, from replica 0 up, skipping itself.  The all-gather:
 * replica r sends its part r to every other, which copy it in place.  Each
 * phase's messages are posted as one group on a transport with groups
 * (NCCL's run concurrently): the parts received are added only after it
 * ends, from their own buffers (R - 1 parts).  An
 * allreduce "stage" is both (each replica ends with the whole sum); ZeRO-1
 * is a "shard" (the reduce-scatter: each replica updates only its part,
 * with optimizer state for that part alone) and after the update a
 * "gather" of the parameters.  Each part is summed by one replica in one
 * fixed order, and the others receive its result: every replica holds the
 * same floats, bit for bit, whatever the threads' timing, and the moves
 * are a ring's 2 (R - 1) / R of the bytes per replica.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "replay_internal.h"

/* The pieces of a stage's reduced vector: its layers' blocks (without the
 * alignment padding), then the tied copy on the last stage's device. */
typedef struct segment {
    int layer;
    float *P, *G;
    size_t n;
} segment;

static int segments(const device_ctx *D, const stage_state *st, segment *seg, int cap)
{
    const pr_model *m = D->R->m;
    int n = 0;
    for (int l = 0; l < st->k && n < cap; l++)
        seg[n++] = (segment){st->first_layer + l, st->P ? st->P + st->off[l] : NULL,
                             st->G ? st->G + st->off[l] : NULL,
                             pr_layer_param_count(m, st->first_layer + l)};
    if (D->tied_n && st->stage == D->R->p->stages - 1 && n < cap)
        seg[n++] = (segment){0, D->tied_P, D->tied_G, D->tied_n};
    return n;
}

/* A stage's segments: its layers and a tied copy. */
static int nsegments(const device_ctx *D, const stage_state *st)
{
    return st->k + (D->tied_n && st->stage == D->R->p->stages - 1);
}

size_t dp_stage_floats(const device_ctx *D, const stage_state *st)
{
    size_t n = 0;
    for (int l = 0; l < st->k; l++)
        n += pr_layer_param_count(D->R->m, st->first_layer + l);
    if (D->tied_n && st->stage == D->R->p->stages - 1)
        n += D->tied_n;
    return n;
}

void dp_shard(const device_ctx *D, const stage_state *st, int r, size_t *lo, size_t *hi)
{
    size_t n = dp_stage_floats(D, st), R = (size_t)D->R->replicas;
    *lo = n / R * (size_t)r + (n % R < (size_t)r ? n % R : (size_t)r);
    *hi = *lo + n / R + ((size_t)r < n % R);
}

size_t dp_state_floats(const device_ctx *D, const stage_state *st)
{
    size_t lo, hi;
    dp_shard(D, st, D->replica, &lo, &hi);
    return (size_t)D->R->m->ops->opt_state(D->R->m) * (hi - lo);
}

size_t dp_recv_floats(const device_ctx *D)
{
    size_t most = 0; /* the largest part; R - 1 of them arrive in one group */
    if (D->R->replicas < 2)
        return 0;
    for (int s = 0; s < D->nst; s++)
        for (int r = 0; r < D->R->replicas; r++) {
            size_t lo, hi;
            dp_shard(D, &D->st[s], r, &lo, &hi);
            most = hi - lo > most ? hi - lo : most;
        }
    return most * (size_t)(D->R->replicas - 1);
}

/* Calls fn on each piece of [lo, hi) of the stage's vector: segment k,
 * floats [a, a + n) of it.  Stops at (and returns) fn's first nonzero. */
typedef int (*piece_fn)(device_ctx *D, const segment *s, size_t a, size_t n, void *arg);
static int each_piece(device_ctx *D, const stage_state *st, size_t lo, size_t hi, piece_fn fn,
                      void *arg)
{
    segment seg[64];
    int ns = nsegments(D, st);
    segment *sv = ns <= 64 ? seg : pp_xcalloc((size_t)ns, sizeof *sv, "a stage's segments");
    segments(D, st, sv, ns);
    int rc = 0;
    size_t at = 0;
    for (int k = 0; k < ns && !rc && at < hi; k++) {
        size_t b = at, e = at + sv[k].n; /* the segment is [b, e) of the vector */
        size_t x = lo > b ? lo : b, y = hi < e ? hi : e;
        if (x < y)
            rc = fn(D, &sv[k], x - b, y - x, arg);
        at = e;
    }
    if (sv != seg)
        free(sv);
    return rc;
}

/* One reduction's messages: op i, its group's tag, the peer replica and
 * which tensor (gradients, or parameters for a gather). */
typedef struct xfer {
    int i;
    pr_tag tag;
    int peer; /* world rank */
    bool params;
    size_t at; /* where the next received piece goes in D->dp_recv */
} xfer;

static int fail_transport(device_ctx *D, const xfer *x, int err, size_t n)
{
    run *R = D->R;
    char where[128], size[32];
    op_place(R, D->rank, x->i, where, sizeof where);
    if (err == ENOMEM)
        run_fail(R, "%s: out of memory: the %s transport cannot buffer the message (%s)", where,
                 R->tr->ops->name, pr_format_bytes((double)n * sizeof(float), size, sizeof size));
    else if (!D->bc->failed)
        run_fail(R, "%s: the %s transport failed", where, R->tr->ops->name);
    else
        run_fail(R, "%s", D->bc->err);
    return 1;
}

static int send_piece(device_ctx *D, const segment *s, size_t a, size_t n, void *arg)
{
    const xfer *x = arg;
    const float *src = (x->params ? s->P : s->G) + a;
    int err = D->R->tr->ops->send(D->R->tr, D->rank, x->peer, x->tag, src, n);
    return err ? fail_transport(D, x, err, n) : 0;
}

/* A receive of op i from x->peer into buf: 0, or 1 with the run failed,
 * naming the member that did not post (and the op it is inside). */
static int recv_from(device_ctx *D, const xfer *x, float *buf, size_t n)
{
    run *R = D->R;
    pr_tag got = {0, 0, 0};
    atomic_store_explicit(&D->waiting, 1, memory_order_relaxed);
    double since = pp_now();
    int rc = R->tr->ops->recv(R->tr, D->rank, x->peer, x->tag, buf, n, R->o->timeout, &got);
    D->waited += pp_now() - since;
    atomic_store_explicit(&D->waiting, 0, memory_order_relaxed);
    if (rc == PR_RECV_OK)
        return 0;
    if (rc == PR_RECV_ABORTED)
        return 1; /* another rank failed and said why */
    char where[128], who[64], its[128] = "";
    op_place(R, D->rank, x->i, where, sizeof where);
    rank_name(R, x->peer, who, sizeof who);
    if (rc == PR_RECV_ERROR) {
        run_fail(R, "%s", D->bc->err);
    } else if (rc == PR_RECV_TIMEOUT) {
        if (x->peer >= R->first && x->peer <= R->last) {
            int j = atomic_load(&R->dev[x->peer].cur_op);
            if (j >= 0 && j != x->i) /* inside another op: the one that is stuck */
                snprintf(its, sizeof its, " (it has been inside op %d (%s) for %.2f s)", j,
                         pp_plan_op_format(R->p, &R->p->dev[R->dev[x->peer].dev].ops[j], (char[64]){0}, 64),
                         pp_now() - R->t0 - atomic_load(&R->dev[x->peer].op_since));
        }
        run_fail(R, "%s: %s did not post its part of the reduction within %g s (timeout)%s", where,
                 who, R->o->timeout, its);
    } else {
        run_fail(R, "%s: %s sent %s instead of its part of the reduction", where, who,
                 tag_name(got, (char[64]){0}, 64));
    }
    return 1;
}

static int recv_part_piece(device_ctx *D, const segment *s, size_t a, size_t n, void *arg)
{
    xfer *x = arg;
    if (recv_from(D, x, D->dp_recv + x->at, n))
        return 1;
    x->at += n;
    return 0;
}

static int add_part_piece(device_ctx *D, const segment *s, size_t a, size_t n, void *arg)
{
    xfer *x = arg;
    D->R->be->add(D->bc, s->G + a, D->dp_recv + x->at, n);
    x->at += n;
    return 0;
}

/* A phase's start or end: the transport's group (a wait, as the replay's). */
static int phase(device_ctx *D, int (*call)(pr_transport *, int))
{
    if (!call)
        return 0;
    atomic_store_explicit(&D->waiting, 1, memory_order_relaxed);
    double since = pp_now();
    int rc = call(D->R->tr, D->rank);
    D->waited += pp_now() - since;
    atomic_store_explicit(&D->waiting, 0, memory_order_relaxed);
    if (rc)
        run_fail(D->R, "%s", D->bc->err);
    return rc;
}

static int recv_copy_piece(device_ctx *D, const segment *s, size_t a, size_t n, void *arg)
{
    const xfer *x = arg;
    return recv_from(D, x, (x->params ? s->P : s->G) + a, n);
}

static int zero_piece(device_ctx *D, const segment *s, size_t a, size_t n, void *arg)
{
    D->R->be->zero(D->bc, s->G + a, n);
    return 0;
}

/* Every replica's part q of the tensor goes to replica q, which adds
 * those it receives into its own, replica 0's first. */
static int reduce_scatter(device_ctx *D, const stage_state *st, xfer *x)
{
    int Rn = D->R->replicas, me = D->replica;
    size_t lo, hi;
    if (phase(D, D->R->tr->ops->group_begin))
        return 1;
    for (int q = 0; q < Rn; q++) {
        if (q == me)
            continue;
        dp_shard(D, st, q, &lo, &hi);
        x->peer = pp_rank_of(D->dev, q, Rn);
        if (each_piece(D, st, lo, hi, send_piece, x))
            return 1;
    }
    dp_shard(D, st, me, &lo, &hi);
    x->at = 0;
    for (int q = 0; q < Rn; q++) {
        if (q == me)
            continue;
        x->peer = pp_rank_of(D->dev, q, Rn);
        if (each_piece(D, st, lo, hi, recv_part_piece, x))
            return 1;
    }
    if (phase(D, D->R->tr->ops->group_end))
        return 1;
    x->at = 0; /* ascending replicas, the same order on every run */
    for (int q = 0; q < Rn; q++)
        if (q != me)
            each_piece(D, st, lo, hi, add_part_piece, x);
    return 0;
}

/* Replica r's part r of the tensor goes to every other replica. */
static int all_gather(device_ctx *D, const stage_state *st, xfer *x)
{
    int Rn = D->R->replicas, me = D->replica;
    size_t lo, hi;
    if (phase(D, D->R->tr->ops->group_begin))
        return 1;
    dp_shard(D, st, me, &lo, &hi);
    for (int q = 0; q < Rn; q++) {
        if (q == me)
            continue;
        x->peer = pp_rank_of(D->dev, q, Rn);
        if (each_piece(D, st, lo, hi, send_piece, x))
            return 1;
    }
    for (int q = 0; q < Rn; q++) {
        if (q == me)
            continue;
        dp_shard(D, st, q, &lo, &hi);
        x->peer = pp_rank_of(D->dev, q, Rn);
        if (each_piece(D, st, lo, hi, recv_copy_piece, x))
            return 1;
    }
    return phase(D, D->R->tr->ops->group_end);
}

int dp_reduce(device_ctx *D, int i, const pp_op *op, const pp_coll *g)
{
    run *R = D->R;
    char where[128];
    if (g->nranks != 1 || g->ranks[0] != D->dev || g->stage < 0 || g->stage >= R->p->stages ||
        D->local[g->stage] < 0 || R->replicas < 2) {
        run_fail(R, "%s: not a reduction of one of the device's stages over its replicas",
                 op_place(R, D->rank, i, where, sizeof where));
        return 1;
    }
    if (R->dry)
        return 0;
    const stage_state *st = &D->st[D->local[g->stage]];
    xfer x = {.i = i, .tag = {PR_TAG_COLLECTIVE, op->peer, 0}, .params = g->what == PP_COLL_GATHER};
    if (g->what == PP_COLL_GATHER)
        return all_gather(D, st, &x);
    if (reduce_scatter(D, st, &x))
        return 1;
    size_t lo, hi;
    if (g->what == PP_COLL_SHARD) { /* the other parts were sent: only ours is updated */
        dp_shard(D, st, D->replica, &lo, &hi);
        return each_piece(D, st, 0, lo, zero_piece, NULL) ||
               each_piece(D, st, hi, dp_stage_floats(D, st), zero_piece, NULL);
    }
    x.tag.mb = 1;
    return all_gather(D, st, &x);
}

typedef struct update_arg {
    float *S;  /* the shard's optimizer state, at the next piece */
    size_t lo; /* the shard's start in the stage's vector */
    size_t hi;
} update_arg;

static int update_piece(device_ctx *D, const segment *s, size_t a, size_t n, void *arg)
{
    update_arg *u = arg;
    const pr_model *m = D->R->m;
    int opt = m->ops->opt_state(m);
    m->ops->update(&D->env, s->layer, s->P, s->G, u->S, a, a + n);
    if (u->S)
        u->S += (size_t)opt * n;
    return 0;
}

void dp_update_shard(device_ctx *D, stage_state *st)
{
    update_arg u = {.S = st->S};
    dp_shard(D, st, D->replica, &u.lo, &u.hi);
    each_piece(D, st, u.lo, u.hi, update_piece, &u);
}

bool dp_differs(device_ctx *D, const stage_state *st, int l)
{
    run *R = D->R;
    const pr_model *m = R->m;
    int L = st->first_layer + l;
    size_t n = pr_layer_param_count(m, L);
    float *host = pp_xcalloc(n ? n : 1, sizeof(float), "a replica's trained parameters");
    R->be->download(D->bc, host, st->P + st->off[l], n);
    bool differs = memcmp(host, R->res->params + m->param_off[L], n * sizeof(float)) != 0;
    free(host);
    if (differs) {
        char who[64];
        run_fail(R, "%s ended with parameters of layer %d that differ from replica 0's: the replicas "
                    "diverged", rank_name(R, D->rank, who, sizeof who), L);
    }
    return differs;
}
