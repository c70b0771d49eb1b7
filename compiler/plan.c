/*
 * plan.c — the per-device op lists every pass after the policy works on,
 * and what a plan says beyond its ops, for every pass and pprun's loader:
 * the names of its weight semantics (pipeline.async), its table of
 * collective groups (the allreduce ops' members) with the tied embedding's
 * allreduce, and the notes that point an error about one of its ops at the
 * token of the file's order (the custom policy's plans).
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

int pp_plan_init(pp_plan *p, const char *schedule, int devices, int stages, int microbatches,
                 const int *placement)
{
    memset(p, 0, sizeof *p);
    snprintf(p->schedule, sizeof p->schedule, "%s", schedule);
    p->devices = devices;
    p->stages = stages;
    p->microbatches = microbatches;
    p->dev = calloc((size_t)devices, sizeof *p->dev);
    p->placement = malloc((size_t)stages * sizeof *p->placement);
    if (!p->dev || !p->placement) {
        pp_plan_free(p);
        return 1;
    }
    memcpy(p->placement, placement, (size_t)stages * sizeof *p->placement);
    return 0;
}

void pp_plan_free(pp_plan *p)
{
    if (p->dev)
        for (int d = 0; d < p->devices; d++)
            free(p->dev[d].ops);
    free(p->dev);
    free(p->placement);
    for (int c = 0; c < p->ncoll; c++)
        free(p->coll[c].ranks);
    free(p->coll);
    p->dev = NULL;
    p->placement = NULL;
    p->coll = NULL;
    p->ncoll = 0;
}

int pp_plan_coll(pp_plan *p, int what, const int *ranks, int nranks, double bytes)
{
    return pp_plan_coll_stage(p, what, -1, ranks, nranks, bytes);
}

int pp_plan_coll_stage(pp_plan *p, int what, int stage, const int *ranks, int nranks, double bytes)
{
    for (int c = 0; c < p->ncoll; c++)
        if (p->coll[c].what == what && p->coll[c].stage == stage && p->coll[c].nranks == nranks &&
            memcmp(p->coll[c].ranks, ranks, (size_t)nranks * sizeof *ranks) == 0)
            return c;
    pp_coll *grown = realloc(p->coll, (size_t)(p->ncoll + 1) * sizeof *grown);
    if (!grown)
        return -1;
    p->coll = grown;
    int *copy = malloc((size_t)(nranks > 0 ? nranks : 1) * sizeof *copy);
    if (!copy)
        return -1;
    if (nranks > 0)
        memcpy(copy, ranks, (size_t)nranks * sizeof *copy);
    p->coll[p->ncoll] = (pp_coll){.what = what, .stage = stage, .nranks = nranks, .ranks = copy, .bytes = bytes};
    return p->ncoll++;
}

const pp_coll *pp_plan_op_coll(const pp_plan *p, const pp_op *op)
{
    if (op->kind != PP_OP_ALLREDUCE || op->peer < 0 || op->peer >= p->ncoll || !p->coll ||
        !p->coll[op->peer].ranks)
        return NULL;
    return &p->coll[op->peer];
}

int pp_coll_member(const pp_coll *c, int rank)
{
    for (int k = 0; k < c->nranks; k++)
        if (c->ranks[k] == rank)
            return k;
    return -1;
}

const char *pp_plan_op_format(const pp_plan *p, const pp_op *op, char *buf, size_t size)
{
    const pp_coll *c = pp_plan_op_coll(p, op);
    if (!c)
        return pp_op_format(op, buf, size);
    if (pp_coll_over_replicas(c)) {
        snprintf(buf, size, "allreduce %s %d {device %d x %d replicas}", pp_coll_what_name(c->what), c->stage,
                 c->nranks > 0 ? c->ranks[0] : -1, pp_plan_replicas(p));
        return buf;
    }
    size_t n = c->what == PP_COLL_MIRROR
                   ? (size_t)snprintf(buf, size, "allreduce %s %d {", pp_coll_what_name(c->what), op->stage)
                   : (size_t)snprintf(buf, size, "allreduce %s {", pp_coll_what_name(c->what));
    for (int k = 0; k < c->nranks && n < size; k++)
        n += (size_t)snprintf(buf + n, size - n, "%s%d", k ? "," : "", c->ranks[k]);
    if (n < size)
        snprintf(buf + n, size - n, "}");
    return buf;
}

bool pp_tied_pair(const int *placement, int stages, int pair[2])
{
    if (stages < 2 || placement[0] == placement[stages - 1])
        return false;
    int a = placement[0], b = placement[stages - 1];
    pair[0] = a < b ? a : b;
    pair[1] = a < b ? b : a;
    return true;
}

/* Puts op right before device d's update (before its flush without one). */
static void insert_before_update(pp_plan *p, int d, pp_op op)
{
    pp_device *dv = &p->dev[d];
    int at = dv->n;
    while (at > 0 && dv->ops[at - 1].kind != PP_OP_UPDATE)
        at--;
    if (at > 0)
        at--; /* right before the update */
    else if (dv->n > 0 && dv->ops[dv->n - 1].kind == PP_OP_FLUSH)
        at = dv->n - 1;
    else
        at = dv->n;
    pp_plan_push(p, d, (pp_op){0}); /* room for one more */
    memmove(&dv->ops[at + 1], &dv->ops[at], (size_t)(dv->n - 1 - at) * sizeof *dv->ops);
    dv->ops[at] = op;
}

int pp_plan_add_tied(pp_plan *p, double bytes)
{
    int pair[2];
    if (!pp_tied_pair(p->placement, p->stages, pair))
        return 0;
    int c = pp_plan_coll(p, PP_COLL_TIED, pair, 2, bytes);
    if (c < 0)
        return 1;
    for (int k = 0; k < 2; k++)
        insert_before_update(p, pair[k], (pp_op){.kind = PP_OP_ALLREDUCE, .stage = -1, .mb = -1, .peer = c, .group = -1});
    return 0;
}

int pp_plan_add_mirror(pp_plan *p, const double *stage_grad)
{
    int H = p->stages / 2;
    for (int s = 0; s < H; s++) {
        int a = p->placement[s], b = p->placement[H + s];
        if (a == b)
            continue; /* one device holds both copies: they are summed locally */
        int pair[2] = {a < b ? a : b, a < b ? b : a};
        /* a group a stage, so that each sum costs its stage's gradients */
        int c = pp_plan_coll_stage(p, PP_COLL_MIRROR, s, pair, 2, stage_grad ? stage_grad[s] : 0);
        if (c < 0)
            return 1;
        for (int k = 0; k < 2; k++)
            insert_before_update(p, pair[k], (pp_op){.kind = PP_OP_ALLREDUCE, .stage = s, .mb = -1, .peer = c, .group = -1});
    }
    return 0;
}

/* Inserts op into device dev's list at index at. */
static void insert_op(pp_plan *p, int dev, int at, pp_op op)
{
    pp_device *dv = &p->dev[dev];
    pp_plan_push(p, dev, (pp_op){0}); /* room for one more */
    memmove(&dv->ops[at + 1], &dv->ops[at], (size_t)(dv->n - 1 - at) * sizeof *dv->ops);
    dv->ops[at] = op;
}

int pp_plan_add_stage_reductions(pp_plan *p, const double *stage_grad)
{
    if (pp_plan_replicas(p) < 2)
        return 0;
    int *last = malloc((size_t)p->stages * sizeof *last);
    if (!last)
        return 1;
    for (int d = 0; d < p->devices; d++) {
        pp_device *dv = &p->dev[d];
        int end = -1; /* the device's last compute op */
        for (int s = 0; s < p->stages; s++)
            last[s] = -1;
        for (int i = 0; i < dv->n; i++)
            if (pp_op_is_compute(dv->ops[i].kind) && dv->ops[i].stage >= 0 && dv->ops[i].stage < p->stages) {
                last[dv->ops[i].stage] = i;
                end = i;
            }
        int at = end + 1;
        /* ZeRO-1 shards the gradients: the tied pair sums its whole copies first */
        while (p->zero && at < dv->n && dv->ops[at].kind == PP_OP_ALLREDUCE)
            at++;
        /* its stages in the order their backward ends */
        for (int i = 0; i <= end; i++) {
            const pp_op *op = &dv->ops[i];
            if (!pp_op_is_compute(op->kind) || op->stage < 0 || op->stage >= p->stages || last[op->stage] != i)
                continue;
            int s = op->stage;
            int c = pp_plan_coll_stage(p, p->zero ? PP_COLL_SHARD : PP_COLL_STAGE, s, &d, 1,
                                       stage_grad ? stage_grad[s] : 0);
            if (c < 0)
                goto oom;
            insert_op(p, d, at++, (pp_op){.kind = PP_OP_ALLREDUCE, .stage = s, .mb = -1, .peer = c, .group = -1});
        }
        if (!p->zero)
            continue;
        int update = -1;
        for (int i = 0; i < dv->n; i++)
            if (dv->ops[i].kind == PP_OP_UPDATE)
                update = i;
        at = update + 1; /* the gathers: right after the update */
        for (int k = 0; k < p->ncoll; k++) {
            const pp_coll *sh = &p->coll[k];
            if (sh->what != PP_COLL_SHARD || sh->ranks[0] != d)
                continue;
            int s = sh->stage;
            int c = pp_plan_coll_stage(p, PP_COLL_GATHER, s, &d, 1, stage_grad ? stage_grad[s] : 0);
            if (c < 0)
                goto oom;
            insert_op(p, d, at++, (pp_op){.kind = PP_OP_ALLREDUCE, .stage = s, .mb = -1, .peer = c, .group = -1});
        }
    }
    free(last);
    return 0;
oom:
    free(last);
    return 1;
}

void pp_plan_reserve(pp_plan *p, int device, int n)
{
    pp_device *dv = &p->dev[device];
    if (dv->cap >= n)
        return;
    pp_op *ops = realloc(dv->ops, (size_t)n * sizeof *ops);
    if (!ops)
        pp_out_of_memory((double)n * sizeof *ops, "a device's op list");
    dv->ops = ops;
    dv->cap = n;
}

pp_op *pp_plan_push(pp_plan *p, int device, pp_op op)
{
    pp_device *dv = &p->dev[device];
    if (dv->n == dv->cap)
        pp_plan_reserve(p, device, dv->cap ? dv->cap * 2 : 64);
    dv->ops[dv->n] = op;
    return &dv->ops[dv->n++];
}

int pp_placement_shape(const int *placement, int devices, int stages)
{
    bool loop = true, v = stages == 2 * devices;
    for (int s = 0; s < stages; s++) {
        loop &= placement[s] == s % devices;
        v &= placement[s] == (s < devices ? s : 2 * devices - 1 - s);
    }
    return loop ? PP_PLACE_LOOP : v ? PP_PLACE_VSHAPE : PP_PLACE_LIST;
}

long pp_plan_total_ops(const pp_plan *p)
{
    long n = 0;
    for (int d = 0; d < p->devices; d++)
        n += p->dev[d].n;
    return n;
}

int pp_comm_ends(const pp_plan *p, int kind, int comm, int stage, int *self, int *peer)
{
    int to = comm == PP_COMM_ACT ? stage + 1 : stage - 1;
    if (to < 0 || to >= p->stages)
        return -1;
    int src = p->placement[stage], dst = p->placement[to];
    *self = kind == PP_OP_SEND ? src : dst;
    *peer = kind == PP_OP_SEND ? dst : src;
    return to;
}

const char *pp_async_name(int async)
{
    switch (async) {
    case PP_ASYNC_PIPEDREAM: return "pipedream";
    case PP_ASYNC_2BW: return "2bw";
    default: return "none";
    }
}

int pp_async_from_name(const char *name)
{
    for (int a = PP_ASYNC_NONE; a <= PP_ASYNC_2BW; a++)
        if (strcmp(name, pp_async_name(a)) == 0)
            return a;
    return -1;
}

/* "F3.5": a token as the file wrote it. */
static const char *token_word(const pp_order_op *t, char *buf, size_t size)
{
    pp_op op = {.kind = (uint8_t)t->kind, .stage = t->stage, .mb = t->mb};
    return pp_op_format(&op, buf, size);
}

/* The ops a row lists; the compiler inserts every other kind (R too). */
static bool listed(const pp_op *op)
{
    return op->kind == PP_OP_F || op->kind == PP_OP_B || op->kind == PP_OP_W;
}

/* The token of listed op i of device dev: the k-th token of its row when
 * i is the k-th listed op, provided it names the same op (NULL if not). */
static const pp_order_op *token_of(const pp_plan *p, int dev, int i)
{
    const pp_op *ops = p->dev[dev].ops;
    int k = 0;
    for (int j = 0; j < i; j++)
        k += listed(&ops[j]);
    const pp_order_row *r = &p->order->rows[dev];
    if (k >= r->n || !r->ops)
        return NULL;
    const pp_order_op *t = &r->ops[k];
    if (t->kind != ops[i].kind || t->stage != ops[i].stage || t->mb != ops[i].mb)
        return NULL;
    return t;
}

void pp_order_note(const pp_plan *p, pp_diag *d, int dev, int i)
{
    const pp_order *o = p->order;
    /* A suppressed note is not worth the O(list) scan. */
    if (!o || !o->rows || d->errors > d->max_errors || !p->dev || dev < 0 || dev >= p->devices)
        return;
    const pp_device *dv = &p->dev[dev];
    if (!dv->ops || i < 0 || i >= dv->n)
        return;
    char w[48], op[96];
    if (listed(&dv->ops[i])) {
        const pp_order_op *t = token_of(p, dev, i);
        if (t)
            pp_note_at(d, o->src, t->offset, "%s (device %d, op %d) is listed here",
                       token_word(t, w, sizeof w), dev, i);
        return;
    }
    /* Inserted: the listed op it comes before (R, recv), else after (send,
     * update, flush). */
    const char *where = "before";
    int j = i + 1;
    while (j < dv->n && !listed(&dv->ops[j]))
        j++;
    if (j == dv->n) {
        where = "after";
        for (j = i - 1; j >= 0 && !listed(&dv->ops[j]); j--)
            ;
    }
    const pp_order_op *t = j >= 0 ? token_of(p, dev, j) : NULL;
    if (t)
        pp_note_at(d, o->src, t->offset, "device %d, op %d (%s) was inserted by the compiler %s %s, listed here",
                   dev, i, pp_plan_op_format(p, &dv->ops[i], op, sizeof op), where,
                   token_word(t, w, sizeof w));
}

/* Does allreduce op of device d sum stage s's gradients before the
 * replicas' reduce-scatter must (zero): the tied pair (stages 0 and the
 * last) or a mirror (stages s and H + s)? */
static bool summed_before_shard(const pp_plan *p, const pp_device *dv, int s)
{
    int H = p->stages / 2;
    for (int i = 0; i < dv->n; i++) {
        const pp_coll *c = pp_plan_op_coll(p, &dv->ops[i]);
        if (c && c->what == PP_COLL_TIED && (s == 0 || s == p->stages - 1))
            return true;
        if (c && c->what == PP_COLL_MIRROR && (s == dv->ops[i].stage || s == H + dv->ops[i].stage))
            return true;
    }
    return false;
}

int pp_plan_async_reductions(pp_plan *p)
{
    if (pp_plan_replicas(p) < 2)
        return 0;
    for (int d = 0; d < p->devices; d++) {
        pp_device *dv = &p->dev[d];
        int n = dv->n, nred = 0, end = -1;
        pp_op *ops = malloc((size_t)(n > 0 ? n : 1) * sizeof *ops);
        pp_op *red = malloc((size_t)(n > 0 ? n : 1) * sizeof *red);
        int *map = malloc((size_t)(2 * n + 1) * sizeof *map);
        if (!ops || !red || !map) {
            free(ops);
            free(red);
            free(map);
            return 1;
        }
        /* take the asynchronous ones out: a stage's (a shard's unless a
         * tied or mirror allreduce must sum its whole gradients first) */
        int k = 0;
        for (int i = 0; i < n; i++) {
            const pp_coll *c = pp_plan_op_coll(p, &dv->ops[i]);
            bool async = c && (c->what == PP_COLL_STAGE ||
                               (c->what == PP_COLL_SHARD && !summed_before_shard(p, dv, c->stage)));
            if (async)
                red[nred++] = dv->ops[i];
            else
                ops[k++] = dv->ops[i];
        }
        n = k;
        if (nred == 0) {
            free(ops);
            free(red);
            free(map);
            continue;
        }
        for (int i = 0; i < n; i++)
            if (pp_op_is_compute(ops[i].kind))
                end = i;
        /* the waits: right before the first allreduce (tied, mirror, a
         * synchronous shard) or the update after the last compute op */
        int wait_at = end + 1;
        while (wait_at < n && ops[wait_at].kind != PP_OP_ALLREDUCE && ops[wait_at].kind != PP_OP_UPDATE &&
               ops[wait_at].kind != PP_OP_FLUSH)
            wait_at++;
        /* each post: after its stage's last compute op and the posts of
         * that gap (the pipeline's sends of its last backward go first) */
        int *post_at = malloc((size_t)nred * sizeof *post_at);
        if (!post_at) {
            free(ops);
            free(red);
            free(map);
            return 1;
        }
        for (int r = 0; r < nred; r++) {
            int at = -1;
            for (int i = 0; i < n; i++)
                if (pp_op_is_compute(ops[i].kind) && ops[i].stage == red[r].stage)
                    at = i;
            at++;
            while (at < n && pp_op_is_comm(ops[at].kind))
                at++;
            post_at[r] = at < wait_at ? at : wait_at;
        }
        pp_plan_reserve(p, d, n + 2 * nred);
        /* rebuild the list; groups renumbered in list order (0, 1, ...),
         * the reductions' in the same space as the sends' and recvs' */
        for (int i = 0; i < 2 * dv->n + 1; i++)
            map[i] = -1;
        int out = 0, next = 0, *rgroup = malloc((size_t)nred * sizeof *rgroup);
        if (!rgroup) {
            free(post_at);
            free(ops);
            free(red);
            free(map);
            return 1;
        }
        for (int i = 0; i <= n; i++) {
            for (int r = 0; r < nred; r++)
                if (post_at[r] == i) {
                    rgroup[r] = next++;
                    dv->ops[out] = red[r];
                    dv->ops[out++].group = rgroup[r];
                }
            if (i == wait_at) /* in post order: the lane ends them in that order */
                for (int r = 0; r < nred; r++)
                    dv->ops[out++] = (pp_op){.kind = PP_OP_WAIT, .stage = -1, .mb = -1, .peer = -1, .group = rgroup[r]};
            if (i == n)
                break;
            pp_op op = ops[i];
            if (pp_op_is_comm(op.kind) && op.group >= 0 && op.group <= 2 * dv->n) {
                bool opens = i == 0 || !pp_op_is_comm(ops[i - 1].kind) || ops[i - 1].group != op.group;
                if (opens)
                    map[op.group] = next++;
                op.group = map[op.group];
            } else if (op.kind == PP_OP_WAIT && op.group >= 0 && op.group <= 2 * dv->n) {
                op.group = map[op.group];
            }
            dv->ops[out++] = op;
        }
        dv->n = out;
        free(rgroup);
        free(post_at);
        free(ops);
        free(red);
        free(map);
    }
    return 0;
}
