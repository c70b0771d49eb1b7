/*
 * transport_local.c — the host side of the `local` GPU transport
 * (transport_local.h): per ordered device pair a queue of filled slots and
 * a free list, a mutex and a condition variable on CLOCK_MONOTONIC
 * (clock.h).  Nothing here touches a GPU: the device operations do.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "pp.h"
#include "transport_local.h"

typedef struct slot {
    struct slot *next;
    pr_tag tag;
    size_t count, cap;
    void *dev;          /* the device operations' part */
    bool drain_pending; /* its drained event was recorded and must be waited for */
} slot;

typedef struct pair {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot *head, *tail, *free_list;
} pair;

typedef struct local_tr {
    pr_transport base;
    int devices;
    pr_local_dev dev;
    pair *pairs; /* [src * devices + dst] */
    int aborted; /* read and written with __atomic builtins */
} local_tr;

static pair *pair_of(local_tr *t, int src, int dst)
{
    return &t->pairs[(size_t)src * (size_t)t->devices + (size_t)dst];
}

static void push_free(pair *p, slot *s)
{
    pthread_mutex_lock(&p->mu);
    s->next = p->free_list;
    p->free_list = s;
    pthread_mutex_unlock(&p->mu);
}

static int local_send(pr_transport *tp, int src, int dst, pr_tag tag, const float *data,
                      size_t count)
{
    local_tr *t = (local_tr *)tp;
    pair *p = pair_of(t, src, dst);
    pthread_mutex_lock(&p->mu);
    slot *s = p->free_list;
    if (s && s->cap >= count)
        p->free_list = s->next;
    else
        s = NULL;
    pthread_mutex_unlock(&p->mu);
    if (!s) {
        s = pp_calloc(1, sizeof *s, "a message slot of the local transport");
        if (!s)
            return ENOMEM;
        s->cap = count;
        if (!(s->dev = t->dev.slot_new(t->dev.arg, src, dst, count))) {
            free(s);
            return 1;
        }
    }
    if (!t->dev.fill(t->dev.arg, src, dst, s->dev, s->drain_pending, data, count)) {
        push_free(p, s); /* kept for teardown */
        return 1;
    }
    s->drain_pending = false;
    s->tag = tag;
    s->count = count;
    s->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = s;
    else
        p->head = s;
    p->tail = s;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static int local_recv(pr_transport *tp, int dst, int src, pr_tag want, float *data, size_t count,
                      double timeout, pr_tag *got)
{
    local_tr *t = (local_tr *)tp;
    pair *p = pair_of(t, src, dst);
    struct timespec deadline = pp_deadline_after(timeout);
    pthread_mutex_lock(&p->mu);
    while (!p->head && !__atomic_load_n(&t->aborted, __ATOMIC_SEQ_CST))
        if (pthread_cond_timedwait(&p->cv, &p->mu, &deadline) != 0 && !p->head)
            break; /* timed out */
    slot *s = p->head;
    if (!s) {
        pthread_mutex_unlock(&p->mu);
        return __atomic_load_n(&t->aborted, __ATOMIC_SEQ_CST) ? PR_RECV_ABORTED : PR_RECV_TIMEOUT;
    }
    p->head = s->next;
    if (!p->head)
        p->tail = NULL;
    pthread_mutex_unlock(&p->mu);
    int rc = PR_RECV_OK;
    if (s->tag.comm != want.comm || s->tag.stage != want.stage || s->tag.mb != want.mb ||
        s->count != count) {
        *got = s->tag;
        rc = PR_RECV_MISMATCH;
    } else if (!t->dev.drain(t->dev.arg, dst, s->dev, data, count)) {
        rc = PR_RECV_ERROR;
    } else {
        s->drain_pending = true;
    }
    push_free(p, s);
    return rc;
}

static void local_abort(pr_transport *tp)
{
    local_tr *t = (local_tr *)tp;
    __atomic_store_n(&t->aborted, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < t->devices * t->devices; i++) {
        pthread_mutex_lock(&t->pairs[i].mu);
        pthread_cond_broadcast(&t->pairs[i].cv);
        pthread_mutex_unlock(&t->pairs[i].mu);
    }
}

void pr_transport_local_streams_idle(pr_transport *tp)
{
    local_tr *t = (local_tr *)tp;
    for (int i = 0; i < t->devices * t->devices; i++) {
        pthread_mutex_lock(&t->pairs[i].mu);
        for (slot *s = t->pairs[i].free_list; s; s = s->next)
            s->drain_pending = false;
        pthread_mutex_unlock(&t->pairs[i].mu);
    }
}

static void local_attach(pr_transport *tp, int rank, struct pr_bctx *c)
{
    local_tr *t = (local_tr *)tp;
    if (t->dev.attach && rank >= 0 && rank < t->devices)
        t->dev.attach(t->dev.arg, tp, rank, c);
}

/* Asynchronous groups: the device operations' (recvs are the replay's to
 * issue at the wait: a recv here waits on the host for its send). */
static int local_lane_begin(pr_transport *tp, int rank)
{
    local_tr *t = (local_tr *)tp;
    return t->dev.lane_begin && !t->dev.lane_begin(t->dev.arg, rank);
}

static int local_lane_end(pr_transport *tp, int rank, int token)
{
    local_tr *t = (local_tr *)tp;
    return t->dev.lane_end && !t->dev.lane_end(t->dev.arg, rank, token);
}

static int local_lane_wait(pr_transport *tp, int rank, int token)
{
    local_tr *t = (local_tr *)tp;
    return t->dev.lane_wait && !t->dev.lane_wait(t->dev.arg, rank, token);
}

static void free_slots(local_tr *t, slot *s)
{
    while (s) {
        slot *next = s->next;
        t->dev.slot_free(t->dev.arg, s->dev);
        free(s);
        s = next;
    }
}

static void local_destroy(pr_transport *tp)
{
    local_tr *t = (local_tr *)tp;
    for (int r = 0; r < t->devices && t->dev.wait_idle; r++)
        t->dev.wait_idle(t->dev.arg, r);
    for (int i = 0; i < t->devices * t->devices; i++) {
        free_slots(t, t->pairs[i].head);
        free_slots(t, t->pairs[i].free_list);
        pthread_mutex_destroy(&t->pairs[i].mu);
        pthread_cond_destroy(&t->pairs[i].cv);
    }
    if (t->dev.destroy)
        t->dev.destroy(t->dev.arg);
    free(t->pairs);
    free(t);
}

static const pr_transport_ops local_ops = {
    .name = "local",
    .send = local_send,
    .recv = local_recv,
    .abort = local_abort,
    .destroy = local_destroy,
    .attach = local_attach,
    .lane_begin = local_lane_begin,
    .lane_end = local_lane_end,
    .lane_wait = local_lane_wait,
};

pr_transport *pr_transport_local_new(int devices, const pr_local_dev *dev, char *err,
                                     size_t errlen)
{
    local_tr *t = calloc(1, sizeof *t);
    if (t)
        t->pairs = calloc((size_t)devices * (size_t)devices, sizeof *t->pairs);
    if (!t || !t->pairs) {
        free(t);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->base.ops = &local_ops;
    t->devices = devices;
    t->dev = *dev;
    for (int i = 0; i < devices * devices; i++) {
        pthread_mutex_init(&t->pairs[i].mu, NULL);
        pp_cond_init_monotonic(&t->pairs[i].cv);
    }
    return &t->base;
}
