/*
 * walk.c — the rendezvous replay of a plan, shared by lower (to find
 * deadlocks, which lower.c repairs whenever the replay stalls), verify (to
 * prove there are none) and simulate (to time the plan on the cost model).
 *
 * The semantics are NCCL's point-to-point rules as the runtime uses them:
 * the k-th send a->b pairs with the k-th recv on b from a; a device posts a
 * whole group of comm ops at once when it reaches it, each op completes when
 * its partner has been posted, and the device moves past the group only
 * when all of them have.  Compute ops run in list order.  A collective
 * (allreduce) has rendezvous semantics among its group's members: the k-th
 * allreduce of a group on every member is one collective, which completes
 * when every member has posted it; a device waits at it until then (in
 * every mode: a collective is never buffered).  Its members' ops are linked
 * in a ring through partner[], in the group's member order.
 *
 * Plan version 2 (docs/verifier.md, "Two lanes"): a group with a wait is
 * asynchronous.  Each device has a compute lane and a communication lane;
 * reaching a group queues it on the lane, which takes its groups one at a
 * time in list order, and "posted" above means "at the head of its lane".
 * A synchronous group (no wait: every version-1 group) also stops the
 * compute lane until it completes; a wait stops it until its group has.
 * A reduction over a device's replicas is on neither lane: its other
 * members are the other replicas' copies of the device, which post it at
 * the same place, so it completes where it is posted; the eager timing
 * runs it on the device's data-parallel lane (one at a time, in list
 * order), and one with a wait (a group) does not stop the compute lane.
 *
 * Everything is O(ops + devices^2) (the per-channel counters); each device
 * is resumed only when the last pending op of its lane's group is matched,
 * so the replay touches every op a constant number of times.  Timing
 * (run_eager) is a by-product, with sends buffered as the runtimes do and
 * each transfer on its directed link (one at a time, in channel order,
 * which is also the replay's order on that link): the replay order is a
 * topological order of the op graph, so every time it computes is final
 * when computed.
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

static int dev_len(const pp_plan *p, int d)
{
    return p->dev[d].n > 0 && p->dev[d].ops ? p->dev[d].n : 0;
}

void pp_walk_free(pp_walk *w)
{
    free(w->base);
    free(w->partner);
    free(w->pc);
    free(w->gend);
    free(w->done);
    free(w->t_post);
    free(w->t_pair);
    free(w->hops);
    free(w->hops_pair);
    free(w->posted);
    free(w->pending);
    free(w->lane);
    free(w->target);
    free(w->awaited);
    memset(w, 0, sizeof *w);
}

/* target[] and awaited[] (pp_walk): each wait's group is the latest group
 * of that id before it on its device, found through a table of group ids
 * (open addressing, stamped per device).  Nonzero when out of memory. */
static int find_waits(pp_walk *w, const pp_plan *p)
{
    int D = w->devices, nmax = 0;
    for (int d = 0; d < D; d++)
        if (dev_len(p, d) > nmax)
            nmax = dev_len(p, d);
    size_t cap = 16;
    while (cap < 2 * (size_t)nmax)
        cap *= 2;
    int32_t *key = malloc(cap * sizeof *key), *at = malloc(cap * sizeof *at), *stamp = calloc(cap, sizeof *stamp);
    size_t nt = (size_t)(w->total ? w->total : 1);
    w->target = malloc(nt * sizeof *w->target);
    w->awaited = calloc(nt, 1);
    int rc = 1;
    if (!key || !at || !stamp || !w->target || !w->awaited)
        goto out;
    for (int d = 0; d < D; d++) {
        const pp_op *ops = p->dev[d].ops;
        for (int i = 0, n = dev_len(p, d); i < n; i++) {
            long g = w->base[d] + i;
            w->target[g] = -1;
            bool opens = (pp_op_is_comm(ops[i].kind) &&
                          (i == 0 || !pp_op_is_comm(ops[i - 1].kind) || ops[i - 1].group != ops[i].group)) ||
                         (ops[i].kind == PP_OP_ALLREDUCE && ops[i].group >= 0); /* an asynchronous reduction */
            if (!opens && ops[i].kind != PP_OP_WAIT)
                continue;
            size_t h = ((uint32_t)ops[i].group * 2654435761u) & (cap - 1);
            while (stamp[h] == d + 1 && key[h] != ops[i].group)
                h = (h + 1) & (cap - 1);
            if (opens) {
                stamp[h] = d + 1;
                key[h] = ops[i].group;
                at[h] = i;
            } else if (stamp[h] == d + 1 && !w->awaited[w->base[d] + at[h]]) {
                w->target[g] = at[h]; /* a second wait for a group waits for nothing: the verifier refuses it */
                w->awaited[w->base[d] + at[h]] = 1;
                w->any_async = true;
            }
        }
    }
    rc = 0;
out:
    free(key);
    free(at);
    free(stamp);
    return rc;
}

/* Links the k-th allreduce of each collective group on each member into
 * a ring (partner[] of member i's op is member i + 1's, the last's the
 * first's), for k below the fewest any member has.  An allreduce whose
 * group is not the plan's, or whose device is not a member, and those past
 * that fewest, stay unpaired (-1): the verifier names them.  Nonzero when
 * out of memory. */
static int pair_collectives(pp_walk *w, const pp_plan *p)
{
    if (p->ncoll <= 0 || !p->coll)
        return 0;
    int D = w->devices, nc = p->ncoll;
    /* slot (c, m) is member m of group c: off[c] + m */
    long *off = calloc((size_t)nc + 1, sizeof *off);
    if (!off)
        return 1;
    for (int c = 0; c < nc; c++)
        off[c + 1] = off[c] + (p->coll[c].nranks > 0 ? p->coll[c].nranks : 0);
    long nslots = off[nc];
    long *count = calloc((size_t)nslots + 1, sizeof *count), *first = calloc((size_t)nslots + 1, sizeof *first);
    long ncoll_ops = 0;
    int32_t *at = NULL;
    int rc = 1;
    if (!count || !first)
        goto out;
    for (int d = 0; d < D; d++) {
        const pp_op *ops = p->dev[d].ops;
        for (int i = 0, n = dev_len(p, d); i < n; i++) {
            const pp_coll *c = pp_plan_op_coll(p, &ops[i]);
            int m = c ? pp_coll_member(c, d) : -1;
            if (m >= 0) {
                count[off[c - p->coll] + m]++;
                ncoll_ops++;
            }
        }
    }
    for (long k = 0; k < nslots; k++)
        first[k + 1] = first[k] + count[k];
    at = malloc((size_t)(ncoll_ops ? ncoll_ops : 1) * sizeof *at);
    if (!at)
        goto out;
    memset(count, 0, (size_t)nslots * sizeof *count); /* the fill cursors */
    for (int d = 0; d < D; d++) {
        const pp_op *ops = p->dev[d].ops;
        for (int i = 0, n = dev_len(p, d); i < n; i++) {
            const pp_coll *c = pp_plan_op_coll(p, &ops[i]);
            int m = c ? pp_coll_member(c, d) : -1;
            if (m >= 0) {
                long slot = off[c - p->coll] + m;
                at[first[slot] + count[slot]++] = (int32_t)(w->base[d] + i);
            }
        }
    }
    for (int c = 0; c < nc; c++) {
        /* a group over the replicas of one device is a ring of one: every
         * replica runs this list, so all of them post it together */
        int n = p->coll[c].nranks;
        if (n < 1)
            continue;
        long fewest = count[off[c]];
        for (int m = 1; m < n; m++)
            if (count[off[c] + m] < fewest)
                fewest = count[off[c] + m];
        for (long k = 0; k < fewest; k++)
            for (int m = 0; m < n; m++)
                w->partner[at[first[off[c] + m] + k]] = at[first[off[c] + (m + 1) % n] + k];
    }
    rc = 0;
out:
    free(off);
    free(count);
    free(first);
    free(at);
    return rc;
}

int pp_walk_init(pp_walk *w, const pp_plan *p)
{
    memset(w, 0, sizeof *w);
    int D = p->devices;
    if (D <= 0 || D > PP_MAX_DEVICES || !p->dev)
        return 1;
    w->devices = D;
    w->base = malloc((size_t)(D + 1) * sizeof *w->base);
    if (!w->base)
        return 1;
    long total = 0;
    for (int d = 0; d < D; d++) {
        w->base[d] = total;
        total += dev_len(p, d);
    }
    w->base[D] = total;
    w->total = total;
    if (total > PP_MAX_OPS_TOTAL) {
        pp_walk_free(w);
        return 1;
    }

    size_t nch = (size_t)D * (size_t)D;
    int32_t *nsend = calloc(nch, sizeof *nsend);
    int32_t *off = malloc((nch + 1) * sizeof *off);
    int32_t *rcur = calloc(nch, sizeof *rcur);
    w->partner = malloc((size_t)(total ? total : 1) * sizeof *w->partner);
    w->pc = calloc((size_t)D, sizeof *w->pc);
    w->gend = calloc((size_t)D, sizeof *w->gend);
    w->done = calloc((size_t)(total ? total : 1), 1);
    int32_t *sends_at = NULL;
    int rc = 1;
    if (!nsend || !off || !rcur || !w->partner || !w->pc || !w->gend || !w->done)
        goto out;

    /* Channel a->b is a * D + b; count sends, lay them out in list order. */
    long nsends = 0;
    for (int d = 0; d < D; d++) {
        const pp_op *ops = p->dev[d].ops;
        for (int i = 0, n = dev_len(p, d); i < n; i++) {
            w->partner[w->base[d] + i] = -1;
            if (ops[i].kind == PP_OP_SEND && ops[i].peer >= 0 && ops[i].peer < D) {
                nsend[(size_t)d * D + ops[i].peer]++;
                nsends++;
            }
        }
    }
    sends_at = malloc((size_t)(nsends ? nsends : 1) * sizeof *sends_at);
    if (!sends_at)
        goto out;
    off[0] = 0;
    for (size_t c = 0; c < nch; c++) {
        off[c + 1] = off[c] + nsend[c];
        nsend[c] = 0; /* becomes the fill cursor */
    }
    for (int d = 0; d < D; d++) {
        const pp_op *ops = p->dev[d].ops;
        for (int i = 0, n = dev_len(p, d); i < n; i++)
            if (ops[i].kind == PP_OP_SEND && ops[i].peer >= 0 && ops[i].peer < D) {
                size_t c = (size_t)d * D + ops[i].peer;
                sends_at[off[c] + nsend[c]++] = (int32_t)(w->base[d] + i);
            }
    }
    /* The k-th recv on b from a takes the k-th send a->b. */
    for (int d = 0; d < D; d++) {
        const pp_op *ops = p->dev[d].ops;
        for (int i = 0, n = dev_len(p, d); i < n; i++)
            if (ops[i].kind == PP_OP_RECV && ops[i].peer >= 0 && ops[i].peer < D) {
                size_t c = (size_t)ops[i].peer * D + d;
                int32_t k = rcur[c]++;
                if (k < nsend[c]) {
                    int32_t g = (int32_t)(w->base[d] + i), q = sends_at[off[c] + k];
                    w->partner[g] = q;
                    w->partner[q] = g;
                }
            }
    }
    rc = pair_collectives(w, p) || find_waits(w, p);
    w->lane = calloc((size_t)D, sizeof *w->lane);
    if (!w->lane)
        rc = 1;
out:
    free(nsend);
    free(off);
    free(rcur);
    free(sends_at);
    if (rc)
        pp_walk_free(w);
    return rc;
}

/* The replay's working state. */
typedef struct walk_run {
    pp_walk *w;
    const pp_plan *p;
    const double *dur;
    double comm;
    double *start, *end;
    uint8_t *posted; /* w->posted */
    int *pending;    /* w->pending */
    double *clock;
    uint32_t *hclock; /* [devices] hops of the clock (hops runs only) */
    int *stack, nstack;
    bool eager;   /* sends never wait: the ideal timing lower.c places by */
    uint8_t *waiting;  /* [total] eager: the device is stopped until this recv is done */
    uint8_t *async_op; /* [total] eager: posted in an asynchronous group */
    bool links;        /* eager, timed: transfers wait for their link (not in hops runs: lower.c's
                          version-1 placement keeps the timing it always had) */
    double *link_t;    /* [devices^2] eager, timed: when directed link a -> b is free */
    uint32_t *link_h;  /* [devices^2] its hops (hops runs) */
    double *dp_t;      /* [devices] eager, timed: when the device's data-parallel lane is free */
    uint32_t *dp_h;    /* [devices] its hops */
} walk_run;

/* A reduction over the device's replicas: its other members are the same
 * device of the other replicas, which post it at the same place, so in
 * the replay of one replica it completes where it is posted. */
static bool over_replicas(const pp_plan *p, const pp_op *op)
{
    const pp_coll *c = pp_plan_op_coll(p, op);
    return c && pp_coll_over_replicas(c);
}

/* Times in hops runs are compared at 40 bits of precision: the same sum
 * added up in another order (0.1 + 0.2 against 0.3) must not look later.
 * Times are >= 0, whose bit patterns order as the numbers do, so dropping
 * the low 12 of the 52 mantissa bits is monotone, which is all the order
 * needs. */
static uint64_t coarse(double t)
{
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    return bits & ~(uint64_t)0xfff;
}

/* Time (t, h) advanced by dur: h counts the steps since t last grew (at
 * that precision), so every step strictly increases the pair. */
static void advance(double *t, uint32_t *h, double dur)
{
    double next = *t + dur;
    *h = coarse(next) > coarse(*t) ? 0 : *h + 1;
    *t = next;
}

/* (t1, h1) later than (t0, h0): the order of pp_walk_no_later. */
static bool later(double t1, uint32_t h1, double t0, uint32_t h0)
{
    uint64_t c1 = coarse(t1), c0 = coarse(t0);
    return c1 > c0 || (c1 == c0 && h1 > h0);
}

bool pp_walk_no_later(double t0, uint32_t h0, double t1, uint32_t h1)
{
    return !later(t0, h0, t1, h1);
}

/* (t, h) becomes the later of itself and (t2, h2); t stays the exact
 * maximum, so a hops run keeps the times of a plain one. */
static void merge(double *t, uint32_t *h, double t2, uint32_t h2)
{
    if (later(t2, h2, *t, *h))
        *h = h2;
    if (t2 > *t)
        *t = t2;
}

/* A rendezvous pair met (untimed: only the eager mode keeps time). */
static void match(walk_run *r, int32_t g, int32_t q, int dq)
{
    pp_walk *w = r->w;
    w->done[g] = w->done[q] = 1;
    if (--r->pending[dq] == 0 && w->gend[dq] > 0)
        r->stack[r->nstack++] = dq;
}

/* A group whose ops have all met their partners: the device's clock moves
 * to its last transfer's end.  Ops are shown back to back in list order,
 * each ending when its own transfer has (or at once if it already had). */
static void finish_group(walk_run *r, int d, int g0, int g1)
{
    pp_walk *w = r->w;
    if (r->dur) {
        double t = r->clock[d];
        uint32_t h = r->hclock ? r->hclock[d] : 0;
        for (int j = g0; j < g1; j++) {
            long g = w->base[d] + j;
            r->start[g] = t;
            if (r->hclock)
                merge(&t, &h, w->t_pair[g], w->hops_pair[g]);
            else if (w->t_pair[g] > t)
                t = w->t_pair[g];
            r->end[g] = t;
        }
        r->clock[d] = t;
        if (r->hclock)
            r->hclock[d] = h;
    }
    w->gend[d] = 0;
}

/* Device d posts allreduce j.  When it is the last of its members to
 * post, the collective runs: it begins when all have posted, takes comm +
 * dur (its transfer) and ends on every member at once; the others are
 * resumed.  Returns true when d must wait for it. */
static bool post_collective(walk_run *r, int d, int j)
{
    pp_walk *w = r->w;
    const pp_plan *p = r->p;
    int32_t g = (int32_t)(w->base[d] + j);
    r->posted[g] = 1;
    if (r->dur)
        w->t_post[g] = w->t_pair[g] = r->clock[d];
    if (r->hclock)
        w->hops[g] = w->hops_pair[g] = r->hclock[d];
    if (w->partner[g] < 0) {
        r->pending[d]++; /* no matching op on some member: waits forever */
        return true;
    }
    for (int32_t q = w->partner[g]; q != g; q = w->partner[q])
        if (!r->posted[q]) {
            r->pending[d]++;
            return true;
        }
    const pp_coll *c = pp_plan_op_coll(p, &p->dev[d].ops[j]);
    int me = pp_coll_member(c, d);
    if (r->dur) {
        double t = w->t_post[g];
        uint32_t h = r->hclock ? w->hops[g] : 0;
        for (int32_t q = w->partner[g]; q != g; q = w->partner[q]) {
            if (r->hclock)
                merge(&t, &h, w->t_post[q], w->hops[q]);
            else if (w->t_post[q] > t)
                t = w->t_post[q];
        }
        double begin = t, take = r->comm + r->dur[g];
        if (r->hclock)
            advance(&t, &h, take);
        else
            t += take;
        int32_t q = g;
        do {
            r->start[q] = begin;
            w->t_pair[q] = t;
            if (r->hclock)
                w->hops_pair[q] = h;
            q = w->partner[q];
        } while (q != g);
    }
    int32_t q = g;
    for (int k = 0; k < c->nranks; k++, q = w->partner[q]) {
        w->done[q] = 1;
        int dq = c->ranks[(me + k) % c->nranks];
        if (k > 0 && --r->pending[dq] == 0 && w->gend[dq] > 0)
            r->stack[r->nstack++] = dq;
    }
    return false;
}

/* Device d moves past its completed allreduce j: it ends with the
 * collective (its start was set when the collective began). */
static void finish_collective(walk_run *r, int d, int j)
{
    pp_walk *w = r->w;
    if (r->dur) {
        long g = w->base[d] + j;
        if (r->hclock)
            merge(&r->clock[d], &r->hclock[d], w->t_pair[g], w->hops_pair[g]);
        else if (w->t_pair[g] > r->clock[d])
            r->clock[d] = w->t_pair[g];
        r->end[g] = r->clock[d];
    }
    w->gend[d] = 0;
}

/* Eager mode: device d posts replica collective j on its data-parallel
 * lane (docs/plan-format.md, "Data parallelism"), which takes them one at
 * a time in list order: it begins at the later of the post and the lane's
 * previous end, takes comm + dur.  Synchronous (no wait), the compute
 * lane waits for its end; asynchronous, it goes straight on. */
static void replica_collective(walk_run *r, int d, int j, bool async)
{
    pp_walk *w = r->w;
    int32_t g = (int32_t)(w->base[d] + j);
    r->posted[g] = w->done[g] = 1;
    if (!r->dur)
        return;
    double t = r->clock[d];
    uint32_t h = r->hclock ? r->hclock[d] : 0;
    w->t_post[g] = t;
    if (r->hclock) {
        w->hops[g] = h;
        merge(&t, &h, r->dp_t[d], r->dp_h[d]);
    } else if (r->dp_t[d] > t) {
        t = r->dp_t[d];
    }
    r->start[g] = t;
    if (r->hclock)
        advance(&t, &h, r->comm + r->dur[g]);
    else
        t += r->comm + r->dur[g];
    r->end[g] = w->t_pair[g] = r->dp_t[d] = t;
    if (r->hclock)
        w->hops_pair[g] = r->dp_h[d] = h;
    if (!async) {
        r->clock[d] = t;
        if (r->hclock)
            r->hclock[d] = h;
    }
}

/* The end of the group that starts at op j of device d (an allreduce is
 * a group of one). */
static int group_end(const pp_plan *p, int d, int j)
{
    const pp_op *ops = p->dev[d].ops;
    int n = dev_len(p, d), g1 = j + 1;
    if (ops[j].kind == PP_OP_ALLREDUCE)
        return g1;
    while (g1 < n && pp_op_is_comm(ops[g1].kind) && ops[g1].group == ops[j].group)
        g1++;
    return g1;
}

/* Op g of device d is done: if d was blocked on it, one thing less to
 * wait for (the eager mode's recvs). */
static void notify(walk_run *r, int32_t g, int d)
{
    pp_walk *w = r->w;
    if (!r->waiting[g])
        return;
    r->waiting[g] = 0;
    if (--r->pending[d] == 0 && w->gend[d] > 0)
        r->stack[r->nstack++] = d;
}

/* Eager mode: both ends of a transfer are posted (send snd on device ds,
 * recv rcv on device dr).  It takes the directed link ds -> dr once the
 * link is free (transfers on one link run one at a time, in channel
 * order), for comm + dur[rcv]; the recv ends then.  A send is buffered:
 * it ends when posted. */
static void transfer(walk_run *r, int32_t snd, int ds, int32_t rcv, int dr)
{
    pp_walk *w = r->w;
    w->done[snd] = w->done[rcv] = 1;
    if (r->dur) {
        size_t ch = (size_t)ds * (size_t)w->devices + (size_t)dr;
        double t = w->t_post[snd];
        uint32_t h = r->hclock ? w->hops[snd] : 0;
        if (r->hclock) {
            merge(&t, &h, w->t_post[rcv], w->hops[rcv]);
            if (r->links)
                merge(&t, &h, r->link_t[ch], r->link_h[ch]);
            advance(&t, &h, r->comm + r->dur[rcv]);
            w->hops_pair[rcv] = r->link_h[ch] = h;
        } else {
            if (w->t_post[rcv] > t)
                t = w->t_post[rcv];
            if (r->links && r->link_t[ch] > t)
                t = r->link_t[ch];
            t += r->comm + r->dur[rcv];
        }
        w->t_pair[rcv] = r->link_t[ch] = t;
        if (r->async_op[rcv]) /* an asynchronous recv lasts from its post to its data's arrival */
            r->end[rcv] = t;
    }
    notify(r, rcv, dr);
}

/* Eager mode: device d posts group [j, g1) (each op at the device's clock);
 * with wait_recvs, it will wait for the recvs that are not done yet. */
static void post_group_eager(walk_run *r, int d, int j, int g1, bool wait_recvs)
{
    pp_walk *w = r->w;
    const pp_op *ops = r->p->dev[d].ops;
    long base = w->base[d];
    for (int k = j; k < g1; k++) {
        int32_t g = (int32_t)(base + k), q = w->partner[g];
        bool send = ops[k].kind == PP_OP_SEND;
        r->posted[g] = 1;
        r->async_op[g] = !wait_recvs;
        if (r->dur) {
            w->t_post[g] = w->t_pair[g] = r->clock[d];
            if (!wait_recvs) /* asynchronous: the compute lane does not stop here */
                r->start[g] = r->end[g] = r->clock[d];
        }
        if (r->hclock)
            w->hops[g] = w->hops_pair[g] = r->hclock[d];
        if (q >= 0 && r->posted[q]) {
            if (send)
                transfer(r, g, d, q, ops[k].peer);
            else
                transfer(r, q, ops[k].peer, g, d);
        } else if (!send && wait_recvs) {
            r->waiting[g] = 1;
            r->pending[d]++;
        }
    }
}

/* Eager mode: device d reaches the wait at op j; true when it must stop
 * until the recvs of its group are done. */
static bool reach_wait_eager(walk_run *r, int d, int j)
{
    pp_walk *w = r->w;
    const pp_op *ops = r->p->dev[d].ops;
    long base = w->base[d];
    int t = w->target[base + j];
    if (t < 0) {
        r->pending[d]++; /* waits for nothing that exists: forever */
        return true;
    }
    for (int k = t, g1 = group_end(r->p, d, t); k < g1; k++) /* a reduction is done: it ended on its lane */
        if (ops[k].kind == PP_OP_RECV && !w->done[base + k]) {
            r->waiting[base + k] = 1;
            r->pending[d]++;
        }
    return r->pending[d] > 0;
}

/* Eager mode: device d moves past the wait at op j, at its group's last
 * recv's end. */
static void finish_wait(walk_run *r, int d, int j)
{
    pp_walk *w = r->w;
    long base = w->base[d];
    if (r->dur) {
        int t = w->target[base + j];
        r->start[base + j] = r->clock[d];
        for (int k = t, g1 = group_end(r->p, d, t); k < g1; k++) {
            long g = base + k;
            if (r->p->dev[d].ops[k].kind != PP_OP_RECV && r->p->dev[d].ops[k].kind != PP_OP_ALLREDUCE)
                continue;
            if (r->hclock)
                merge(&r->clock[d], &r->hclock[d], w->t_pair[g], w->hops_pair[g]);
            else if (w->t_pair[g] > r->clock[d])
                r->clock[d] = w->t_pair[g];
        }
        r->end[base + j] = r->clock[d];
    }
    w->gend[d] = 0;
}

/* A compute op (or update, flush: anything that only takes its time). */
static void run_compute(walk_run *r, int d, int pc)
{
    pp_walk *w = r->w;
    long base = w->base[d];
    if (!r->dur)
        return;
    r->start[base + pc] = r->clock[d];
    if (r->hclock) {
        advance(&r->clock[d], &r->hclock[d], r->dur[base + pc]);
        w->hops[base + pc] = r->hclock[d];
    } else {
        r->clock[d] += r->dur[base + pc];
    }
    r->end[base + pc] = r->clock[d];
}

/* The eager (timing) replay of device d: sends never wait, a recv ends
 * when its transfer has; the device stops only at a synchronous group's
 * recvs, a wait's recvs and a collective. */
static void run_device_eager(walk_run *r, int d)
{
    pp_walk *w = r->w;
    const pp_plan *p = r->p;
    const pp_op *ops = p->dev[d].ops;
    int n = dev_len(p, d), pc = w->pc[d];
    long base = w->base[d];
    if (w->gend[d] > 0) { /* resumed: what it waited for is done */
        int g1 = w->gend[d];
        if (ops[pc].kind == PP_OP_ALLREDUCE)
            finish_collective(r, d, pc);
        else if (ops[pc].kind == PP_OP_WAIT)
            finish_wait(r, d, pc);
        else
            finish_group(r, d, pc, g1);
        pc = g1;
    }
    while (pc < n) {
        const pp_op *op = &ops[pc];
        if (op->kind == PP_OP_ALLREDUCE && over_replicas(p, op)) {
            replica_collective(r, d, pc, w->awaited[base + pc]);
            pc++;
        } else if (op->kind == PP_OP_ALLREDUCE) {
            if (post_collective(r, d, pc)) {
                w->gend[d] = pc + 1; /* resumed by the last member to post */
                break;
            }
            finish_collective(r, d, pc);
            pc++;
        } else if (op->kind == PP_OP_WAIT) {
            if (reach_wait_eager(r, d, pc)) {
                w->gend[d] = pc + 1;
                break;
            }
            finish_wait(r, d, pc);
            pc++;
        } else if (pp_op_is_comm(op->kind)) {
            int g1 = group_end(p, d, pc);
            bool sync = !w->awaited[base + pc];
            post_group_eager(r, d, pc, g1, sync);
            if (sync && r->pending[d] > 0) {
                w->gend[d] = g1; /* blocked: resumed by the transfer that empties it */
                break;
            }
            if (sync)
                finish_group(r, d, pc, g1);
            pc = g1;
        } else {
            run_compute(r, d, pc);
            pc++;
        }
    }
    w->pc[d] = pc;
}

/* Rendezvous mode: device d's communication lane takes its next group
 * (the first at or after lane[d]) once the compute lane has reached it,
 * and completes groups while it can.  A group completes when each of its
 * ops has met its partner, both at the head of their lanes. */
static void run_lane(walk_run *r, int d)
{
    pp_walk *w = r->w;
    const pp_plan *p = r->p;
    const pp_op *ops = p->dev[d].ops;
    int n = dev_len(p, d);
    long base = w->base[d];
    for (;;) {
        if (w->gend[d] > 0) {
            if (r->pending[d] > 0)
                return; /* resumed by the match that empties it */
            int j = w->lane[d], end = w->gend[d]; /* a repair may have shortened the group */
            if (ops[j].kind == PP_OP_ALLREDUCE)
                finish_collective(r, d, j);
            else
                finish_group(r, d, j, end);
            w->lane[d] = end;
            continue;
        }
        int j = w->lane[d];
        while (j < n && !pp_op_is_comm(ops[j].kind) && (ops[j].kind != PP_OP_ALLREDUCE || over_replicas(p, &ops[j])))
            j++; /* a replica collective is not the communication lane's */
        w->lane[d] = j;
        if (j >= n || j > w->pc[d])
            return; /* nothing queued */
        if (ops[j].kind == PP_OP_ALLREDUCE) {
            w->gend[d] = j + 1;
            post_collective(r, d, j);
            continue;
        }
        int g1 = group_end(p, d, j);
        w->gend[d] = g1;
        for (int k = j; k < g1; k++) {
            int32_t g = (int32_t)(base + k), q = w->partner[g];
            r->posted[g] = 1;
            if (q >= 0 && r->posted[q])
                match(r, g, q, ops[k].peer);
            else
                r->pending[d]++;
        }
    }
}

/* Rendezvous mode: device d's compute lane runs until it must wait for
 * its communication lane: at a synchronous group or a collective until
 * the lane has completed it, at a wait until its group is complete. */
static void run_device_lanes(walk_run *r, int d)
{
    pp_walk *w = r->w;
    const pp_plan *p = r->p;
    const pp_op *ops = p->dev[d].ops;
    int n = dev_len(p, d);
    long base = w->base[d];
    run_lane(r, d);
    while (w->pc[d] < n) {
        int pc = w->pc[d];
        const pp_op *op = &ops[pc];
        if (op->kind == PP_OP_ALLREDUCE && over_replicas(p, op)) {
            w->done[base + pc] = r->posted[base + pc] = 1; /* completes where it is posted */
            w->pc[d] = pc + 1;
        } else if (op->kind == PP_OP_ALLREDUCE || pp_op_is_comm(op->kind)) {
            if (op->kind != PP_OP_ALLREDUCE && w->awaited[base + pc]) {
                w->pc[d] = group_end(p, d, pc); /* posted: the lane takes it in turn */
                run_lane(r, d);
                continue;
            }
            run_lane(r, d); /* the lane takes it now if it is idle */
            if (w->lane[d] <= pc)
                return; /* resumed when the lane has completed it */
            w->pc[d] = group_end(p, d, pc);
        } else if (op->kind == PP_OP_WAIT) {
            int t = w->target[base + pc];
            if (t < 0 || (ops[t].kind == PP_OP_ALLREDUCE ? !w->done[base + t] : w->lane[d] <= t))
                return; /* resumed when the lane moves on */
            w->pc[d] = pc + 1;
        } else {
            w->pc[d] = pc + 1;
        }
    }
}

static void run_device(walk_run *r, int d)
{
    if (r->eager)
        run_device_eager(r, d);
    else
        run_device_lanes(r, d);
}

static int walk(pp_walk *w, const pp_plan *p, pp_plan *repairable, pp_walk_repair repair, bool eager,
                const double *dur, double comm, double *start, double *end, bool hops)
{
    int D = w->devices;
    walk_run r = {.w = w, .p = p, .dur = dur, .comm = comm, .start = start, .end = end, .eager = eager,
                  .links = !hops};
    size_t nt = (size_t)(w->total ? w->total : 1);
    free(w->posted);
    free(w->pending);
    r.posted = w->posted = calloc(nt, 1);
    r.pending = w->pending = calloc((size_t)D, sizeof *r.pending);
    r.clock = calloc((size_t)D, sizeof *r.clock);
    r.stack = malloc((size_t)D * sizeof *r.stack);
    r.waiting = calloc(nt, 1);
    r.async_op = calloc(nt, 1);
    r.link_t = calloc((size_t)D * (size_t)D, sizeof *r.link_t);
    r.link_h = calloc((size_t)D * (size_t)D, sizeof *r.link_h);
    r.dp_t = calloc((size_t)D, sizeof *r.dp_t);
    r.dp_h = calloc((size_t)D, sizeof *r.dp_h);
    if (!r.waiting || !r.async_op || !r.link_t || !r.link_h || !r.dp_t || !r.dp_h)
        pp_out_of_memory((double)nt + (double)D * D * (sizeof *r.link_t + sizeof *r.link_h), "the replay's state");
    int *resume = repair ? malloc((size_t)D * sizeof *resume) : NULL;
    if (dur) {
        free(w->t_post);
        free(w->t_pair);
        w->t_post = calloc(nt, sizeof *w->t_post);
        w->t_pair = calloc(nt, sizeof *w->t_pair);
    }
    if (dur && hops) {
        free(w->hops);
        free(w->hops_pair);
        w->hops = calloc(nt, sizeof *w->hops);
        w->hops_pair = calloc(nt, sizeof *w->hops_pair);
        r.hclock = calloc((size_t)D, sizeof *r.hclock);
        if (!w->hops || !w->hops_pair || !r.hclock)
            pp_out_of_memory((double)nt * (sizeof *w->hops + sizeof *w->hops_pair) +
                                 (double)D * sizeof *r.hclock, "the replay's hop counts");
    }
    if (!r.posted || !r.pending || !r.clock || !r.stack || (repair && !resume) ||
        (dur && (!w->t_post || !w->t_pair)))
        pp_out_of_memory((double)nt * (1 + (dur ? sizeof *w->t_post + sizeof *w->t_pair : 0)) +
                             (double)D * (sizeof *r.pending + sizeof *r.clock + 2 * sizeof(int)),
                         "the replay's state");
    memset(w->done, 0, nt);
    for (int d = 0; d < D; d++) {
        w->pc[d] = 0;
        w->gend[d] = 0;
        w->lane[d] = 0;
        r.stack[r.nstack++] = D - 1 - d; /* device 0 first */
    }
    for (;;) {
        while (r.nstack > 0) {
            int d = r.stack[--r.nstack];
            run_device(&r, d);
        }
        w->blocked = 0;
        for (int d = 0; d < D; d++)
            if (w->pc[d] < dev_len(p, d))
                w->blocked++;
        int nresume = 0;
        if (!w->blocked || !repair || repair(w, repairable, resume, &nresume) == 0)
            break;
        for (int i = 0; i < nresume; i++)
            r.stack[r.nstack++] = resume[i];
    }
    free(resume);
    free(r.waiting);
    free(r.async_op);
    free(r.link_t);
    free(r.link_h);
    free(r.dp_t);
    free(r.dp_h);
    free(r.clock);
    free(r.hclock);
    free(r.stack);
    return w->blocked;
}

int pp_walk_run(pp_walk *w, const pp_plan *p)
{
    return walk(w, p, NULL, NULL, false, NULL, 0, NULL, NULL, false);
}

int pp_walk_run_eager(pp_walk *w, const pp_plan *p, const double *dur, double comm, double *start,
                      double *end)
{
    return walk(w, p, NULL, NULL, true, dur, comm, start, end, false);
}

int pp_walk_run_eager_hops(pp_walk *w, const pp_plan *p, const double *dur, double comm, double *start,
                           double *end)
{
    return walk(w, p, NULL, NULL, true, dur, comm, start, end, true);
}

int pp_walk_run_stalled(pp_walk *w, pp_plan *p, pp_walk_repair repair)
{
    return walk(w, p, p, repair, false, NULL, 0, NULL, NULL, false);
}

/* The member that device d, blocked at allreduce j, waits for: the first
 * after it (in member order) that has not posted the collective, or, for
 * an unpaired one, a member with no k-th allreduce of the group (k: how
 * many d has before j); -1 when there is none (a group that is not the
 * plan's, or d not a member). */
static int collective_waits_for(const pp_walk *w, const pp_plan *p, int d, int j)
{
    const pp_op *ops = p->dev[d].ops;
    const pp_coll *c = pp_plan_op_coll(p, &ops[j]);
    int me = c ? pp_coll_member(c, d) : -1;
    if (me < 0)
        return -1;
    int32_t g = (int32_t)(w->base[d] + j);
    if (w->partner[g] >= 0) {
        int32_t q = w->partner[g];
        for (int k = 1; k < c->nranks; k++, q = w->partner[q])
            if (!w->posted[q])
                return c->ranks[(me + k) % c->nranks];
        return -1;
    }
    long k = 0;
    for (int i = 0; i < j; i++)
        k += ops[i].kind == PP_OP_ALLREDUCE && ops[i].peer == ops[j].peer;
    for (int m = 0; m < c->nranks; m++) {
        int r = c->ranks[m];
        if (r == d || r < 0 || r >= p->devices)
            continue;
        long have = 0;
        for (int i = 0, n = dev_len(p, r); i < n; i++)
            have += p->dev[r].ops[i].kind == PP_OP_ALLREDUCE && p->dev[r].ops[i].peer == ops[j].peer;
        if (have <= k)
            return r;
    }
    return -1;
}

int pp_walk_cycles(const pp_walk *w, const pp_plan *p, int *wait_at, int *wait_for, int *cycle)
{
    int D = w->devices;
    int *next = pp_xcalloc((size_t)D, sizeof *next, "the wait-for graph");
    for (int d = 0; d < D; d++) {
        wait_at[d] = wait_for[d] = cycle[d] = next[d] = -1;
        if (w->pc[d] >= dev_len(p, d))
            continue;
        const pp_op *ops = p->dev[d].ops;
        int j0 = w->lane[d]; /* the group its communication lane is stuck in */
        if (w->gend[d] <= j0)
            continue; /* an idle lane: a wait for no group (the verifier refuses those first) */
        if (ops[j0].kind == PP_OP_ALLREDUCE) {
            wait_at[d] = j0;
            wait_for[d] = collective_waits_for(w, p, d, j0);
            if (w->partner[w->base[d] + j0] >= 0)
                next[d] = wait_for[d];
            continue;
        }
        /* Prefer an unpaired recv (waiting for data no delay can hasten),
         * then an unpaired send, each with a partner: its peer is then
         * blocked before that partner. */
        int pick = -1, send = -1;
        for (int j = j0; j < w->gend[d]; j++) {
            long g = w->base[d] + j;
            if (w->done[g])
                continue;
            if (pick < 0)
                pick = j;
            if (w->partner[g] < 0)
                continue;
            if (ops[j].kind == PP_OP_RECV) {
                send = -1;
                pick = j;
                break;
            }
            if (send < 0)
                send = j;
        }
        if (send >= 0)
            pick = send;
        if (pick >= 0 && w->partner[w->base[d] + pick] >= 0)
            next[d] = ops[pick].peer;
        if (pick < 0) /* cannot happen after a run; stay safe */
            continue;
        wait_at[d] = pick;
        wait_for[d] = ops[pick].peer >= 0 && ops[pick].peer < D ? ops[pick].peer : -1;
    }
    int ncycles = pp_wait_cycles(next, D, cycle, NULL);
    free(next);
    return ncycles;
}

int pp_wait_cycles(const int *next, int n, int *cycle, int *entry)
{
    int *seen = pp_xcalloc((size_t)n, sizeof *seen, "the wait-for graph");
    /* Every device has at most one out-edge: follow each path once; a path
     * that comes back to itself closes a new cycle. */
    int ncycles = 0;
    for (int d = 0; d < n; d++)
        cycle[d] = -1;
    for (int d = 0; d < n; d++) {
        int u = d;
        while (u >= 0 && !seen[u]) {
            seen[u] = d + 1;
            u = next[u];
        }
        if (u < 0 || seen[u] != d + 1)
            continue;
        int v = u;
        do {
            cycle[v] = ncycles;
            v = next[v];
        } while (v != u);
        if (entry)
            entry[ncycles] = u;
        ncycles++;
    }
    free(seen);
    return ncycles;
}

void pp_walk_report(const pp_walk *w, const pp_plan *p, pp_diag *dg, const char *prefix)
{
    int D = w->devices;
    int *wait_at = pp_xcalloc((size_t)D * 3, sizeof(int), "the wait-for graph");
    int *wait_for = wait_at + D, *cycle = wait_at + 2 * D;
    int ncycles = pp_walk_cycles(w, p, wait_at, wait_for, cycle);
    char *msg = NULL;
    size_t len = 0;
    char buf[96];
    for (int c = 0; c < ncycles; c++) {
        int first = 0;
        while (cycle[first] != c)
            first++;
        FILE *f = open_memstream(&msg, &len);
        if (!f)
            pp_out_of_memory(0, "the message of a wait-for cycle");
        int u = first;
        do {
            int pc = w->pc[u];
            fprintf(f, "%s", u == first ? " waits" : ", which waits");
            if (pc < w->lane[u] || pc >= w->gend[u]) /* the compute lane waits elsewhere: the issue order */
                fprintf(f, " at op %d (%s) while its communication lane is stuck", pc,
                        pp_plan_op_format(p, &p->dev[u].ops[pc], buf, sizeof buf));
            fprintf(f, " at op %d (%s) for device %d", wait_at[u],
                    pp_plan_op_format(p, &p->dev[u].ops[wait_at[u]], buf, sizeof buf), wait_for[u]);
            u = wait_for[u];
        } while (u != first);
        fclose(f);
        pp_error(dg, "%s: device %d%s", prefix, first, msg);
        free(msg);
        msg = NULL;
        /* From an order: where each device of the cycle is stuck. */
        u = first;
        do {
            pp_order_note(p, dg, u, wait_at[u]);
            u = wait_for[u];
        } while (u != first);
    }
    for (int d = 0; d < D; d++) {
        if (wait_at[d] < 0 || cycle[d] >= 0)
            continue;
        const pp_op *op = &p->dev[d].ops[wait_at[d]];
        long g = w->base[d] + wait_at[d];
        int v = wait_for[d];
        pp_plan_op_format(p, op, buf, sizeof buf);
        if (v < 0)
            pp_error(dg, "%s: device %d waits at op %d (%s), whose peer is not a device", prefix, d, wait_at[d],
                     buf);
        else if (w->partner[g] < 0)
            pp_error(dg, "%s: device %d waits at op %d (%s) for device %d, which never posts the matching op",
                     prefix, d, wait_at[d], buf, v);
        else
            pp_error(dg, "%s: device %d waits at op %d (%s) for device %d, itself blocked at op %d", prefix, d,
                     wait_at[d], buf, v, w->pc[v]);
        pp_order_note(p, dg, d, wait_at[d]);
    }
    free(wait_at);
}
