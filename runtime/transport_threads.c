/*
 * transport_threads.c — the in-process transport: one FIFO channel per
 * ordered pair of devices (threads).  A send copies into a recycled message
 * and returns at once; a recv spins briefly (yielding, since there may be
 * more device threads than cores), then sleeps on the channel's condition
 * variable until the message, the timeout or an abort.  Spinning first
 * matters: a condvar wake-up costs ~10 us, a spin hand-off well under 1 us.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "pp.h"
#include "transport.h"

typedef struct msg {
    struct msg *next;
    pr_tag tag;
    double arrive; /* emulated link: pp_now() when it has arrived; 0 before its transfer is timed */
    size_t count, cap;
    float data[];
} msg;

typedef struct channel {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    msg *head, *tail, *free_list;
    atomic_long sent; /* messages ever queued; the spin phase reads it without the lock */
    long taken;       /* receiver only */
    /* The emulated link (under mu): recvs ever posted, the first queued
     * message whose recv is not posted yet (its transfer not timed), and
     * when the link's last timed transfer ends. */
    long posts;
    msg *untimed;
    double link_free;
} channel;

typedef struct threads_transport {
    pr_transport base;
    int devices;
    pthread_mutex_t create_mu;
    _Atomic(channel *) *chan; /* [src * devices + dst], made on first use */
    atomic_int aborted;
    pr_link link;
    bool linked; /* link has a latency or a bandwidth */
} threads_transport;

static channel *get_channel(threads_transport *t, int src, int dst)
{
    _Atomic(channel *) *slot = &t->chan[(size_t)src * t->devices + dst];
    channel *c = atomic_load_explicit(slot, memory_order_acquire);
    if (c)
        return c;
    pthread_mutex_lock(&t->create_mu);
    c = atomic_load_explicit(slot, memory_order_relaxed);
    if (!c) {
        c = pp_xcalloc(1, sizeof *c, "a channel of the threads transport");
        pthread_mutex_init(&c->mu, NULL);
        pp_cond_init_monotonic(&c->cv);
        atomic_store_explicit(slot, c, memory_order_release);
    }
    pthread_mutex_unlock(&t->create_mu);
    return c;
}

/* The emulated link takes message m now, or when it is free again (under
 * c->mu): its arrival time. */
static void time_transfer(threads_transport *t, channel *c, msg *m)
{
    double now = pp_now(), begin = now > c->link_free ? now : c->link_free;
    double bytes = (double)m->count * sizeof(float);
    m->arrive = c->link_free = begin + t->link.latency + (t->link.bandwidth > 0 ? bytes / t->link.bandwidth : 0);
}

/* A recv of the channel is posted (under c->mu): the oldest message whose
 * recv was not, if it is there, starts its transfer. */
static void post_recv_locked(threads_transport *t, channel *c)
{
    c->posts++;
    if (c->untimed) {
        time_transfer(t, c, c->untimed);
        c->untimed = c->untimed->next;
        pthread_cond_broadcast(&c->cv); /* its receiver now waits for a time */
    }
}

static void th_recv_post(pr_transport *tp, int dst, int src)
{
    threads_transport *t = (threads_transport *)tp;
    if (!t->linked)
        return;
    channel *c = get_channel(t, src, dst);
    pthread_mutex_lock(&c->mu);
    post_recv_locked(t, c);
    pthread_mutex_unlock(&c->mu);
}

static int th_send(pr_transport *tp, int src, int dst, pr_tag tag, const float *data, size_t count)
{
    threads_transport *t = (threads_transport *)tp;
    channel *c = get_channel(t, src, dst);
    pthread_mutex_lock(&c->mu);
    msg *m = c->free_list;
    if (m && m->cap >= count) {
        c->free_list = m->next;
    } else {
        m = pp_calloc(1, sizeof *m + count * sizeof(float), "a message of the threads transport");
        if (!m) {
            pthread_mutex_unlock(&c->mu);
            return ENOMEM; /* the replay names the send */
        }
        m->cap = count;
    }
    m->next = NULL;
    m->tag = tag;
    m->count = count;
    memcpy(m->data, data, count * sizeof(float));
    m->arrive = 0;
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    if (t->linked) { /* message number `sent`: its recv is posted, or it waits for it */
        if (c->posts > atomic_load_explicit(&c->sent, memory_order_relaxed))
            time_transfer(t, c, m);
        else if (!c->untimed)
            c->untimed = m;
    }
    atomic_fetch_add_explicit(&c->sent, 1, memory_order_release);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int th_recv(pr_transport *tp, int dst, int src, pr_tag want, float *data, size_t count,
                   double timeout, pr_tag *got)
{
    threads_transport *t = (threads_transport *)tp;
    channel *c = get_channel(t, src, dst);
    /* spin: a few hundred rounds, yielding so a sender sharing our core runs */
    for (int i = 0; i < 512 && atomic_load_explicit(&c->sent, memory_order_acquire) == c->taken;
         i++) {
        if (i % 8 == 7)
            sched_yield();
        else
            cpu_relax();
    }
    pthread_mutex_lock(&c->mu);
    if (t->linked && c->posts <= c->taken) /* not posted before: posted now */
        post_recv_locked(t, c);
    if (!c->head) {
        struct timespec ts = pp_deadline_after(timeout);
        while (!c->head && !atomic_load(&t->aborted))
            if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) != 0 && !c->head)
                break; /* timed out */
        if (!c->head) {
            int why = atomic_load(&t->aborted) ? PR_RECV_ABORTED : PR_RECV_TIMEOUT;
            pthread_mutex_unlock(&c->mu);
            return why;
        }
    }
    msg *m = c->head;
    /* on an emulated link, only once it has arrived (its transfer was timed
     * when both ends were posted, which they are now) */
    while (t->linked && !atomic_load(&t->aborted) && pp_now() < m->arrive) {
        struct timespec at = {(time_t)m->arrive, (long)((m->arrive - (double)(time_t)m->arrive) * 1e9)};
        pthread_cond_timedwait(&c->cv, &c->mu, &at);
    }
    if (atomic_load(&t->aborted) && t->linked && pp_now() < m->arrive) {
        pthread_mutex_unlock(&c->mu);
        return PR_RECV_ABORTED;
    }
    c->head = m->next;
    if (!c->head)
        c->tail = NULL;
    c->taken++;
    int rc = PR_RECV_OK;
    if (m->tag.comm != want.comm || m->tag.stage != want.stage || m->tag.mb != want.mb ||
        m->count != count) {
        *got = m->tag;
        rc = PR_RECV_MISMATCH;
    } else {
        memcpy(data, m->data, count * sizeof(float));
    }
    m->next = c->free_list;
    c->free_list = m;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static void th_abort(pr_transport *tp)
{
    threads_transport *t = (threads_transport *)tp;
    atomic_store(&t->aborted, 1);
    size_t n = (size_t)t->devices * t->devices;
    for (size_t i = 0; i < n; i++) {
        channel *c = atomic_load(&t->chan[i]);
        if (!c)
            continue;
        pthread_mutex_lock(&c->mu);
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
}

static void free_list(msg *m)
{
    while (m) {
        msg *next = m->next;
        free(m);
        m = next;
    }
}

static void th_destroy(pr_transport *tp)
{
    threads_transport *t = (threads_transport *)tp;
    size_t n = (size_t)t->devices * t->devices;
    for (size_t i = 0; i < n; i++) {
        channel *c = atomic_load(&t->chan[i]);
        if (!c)
            continue;
        free_list(c->head);
        free_list(c->free_list);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
    }
    pthread_mutex_destroy(&t->create_mu);
    free(t->chan);
    free(t);
}

static const pr_transport_ops threads_ops = {
    .name = "threads",
    .send = th_send,
    .recv = th_recv,
    .abort = th_abort,
    .destroy = th_destroy,
    .recv_post = th_recv_post,
};

pr_transport *pr_transport_threads_create(int devices, const pr_link *link)
{
    threads_transport *t = pp_xcalloc(1, sizeof *t, "the threads transport");
    if (link)
        t->link = *link;
    t->linked = t->link.latency > 0 || t->link.bandwidth > 0;
    t->base.ops = &threads_ops;
    t->devices = devices;
    pthread_mutex_init(&t->create_mu, NULL);
    t->chan = pp_xcalloc((size_t)devices * devices, sizeof *t->chan, "the threads transport's channels");
    return &t->base;
}
