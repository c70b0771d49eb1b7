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
#include <time.h>
#include "clock.h"
#include "pp.h"
#include "transport.h"

typedef struct msg {
    struct msg *next;
    pr_tag tag;
    double arrive; /* pp_now() when the emulated link delivers it (0: no link) */
    size_t count, cap;
    float data[];
} msg;

typedef struct channel {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    msg *head, *tail, *free_list;
    atomic_long sent; /* messages ever queued; the spin phase reads it without the lock */
    long taken;       /* receiver only */
    double link_free; /* the emulated link: pp_now() when its last transfer ends */
} channel;

/* A device's asynchronous groups on the emulated link: the latest
 * arrival of the open group's sends, and each closed group's (done[token]). */
typedef struct lane_state {
    bool open;
    double last;
    double *done;
    int cap;
} lane_state;

typedef struct threads_transport {
    pr_transport base;
    int devices;
    lane_state *lane; /* [devices], each used by its device's thread alone */
    pthread_mutex_t create_mu;
    _Atomic(channel *) *chan; /* [src * devices + dst], made on first use */
    atomic_int aborted;
    pr_link link;
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

/* Sleeps until pp_now() reaches when, or the run is aborted. */
static void sleep_until(threads_transport *t, double when)
{
    for (double now = pp_now(); now < when && !atomic_load(&t->aborted); now = pp_now()) {
        double left = when - now < 0.005 ? when - now : 0.005; /* an abort is seen within 5 ms */
        struct timespec ts = {0, (long)(left * 1e9)};
        nanosleep(&ts, NULL);
    }
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
    m->arrive = 0;
    if (t->link.latency > 0 || t->link.bandwidth > 0) {
        double now = pp_now(), begin = now > c->link_free ? now : c->link_free;
        double bytes = (double)count * sizeof(float);
        m->arrive = c->link_free =
            begin + t->link.latency + (t->link.bandwidth > 0 ? bytes / t->link.bandwidth : 0);
    }
    memcpy(m->data, data, count * sizeof(float));
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    atomic_fetch_add_explicit(&c->sent, 1, memory_order_release);
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    lane_state *l = &t->lane[src];
    if (l->open && m->arrive > l->last)
        l->last = m->arrive;
    else if (!l->open && m->arrive > 0)
        sleep_until(t, m->arrive); /* a synchronous send completes when it has arrived */
    return 0;
}

static int th_lane_begin(pr_transport *tp, int rank)
{
    threads_transport *t = (threads_transport *)tp;
    t->lane[rank].open = true;
    t->lane[rank].last = 0;
    return 0;
}

static int th_lane_end(pr_transport *tp, int rank, int token)
{
    threads_transport *t = (threads_transport *)tp;
    lane_state *l = &t->lane[rank];
    if (token >= l->cap) {
        int cap = token + 1 > 2 * l->cap ? token + 1 : 2 * l->cap;
        double *grown = realloc(l->done, (size_t)cap * sizeof *grown);
        if (!grown)
            pp_out_of_memory((double)cap * sizeof *grown, "the threads transport's wait table");
        l->done = grown;
        l->cap = cap;
    }
    l->done[token] = l->last;
    l->open = false;
    return 0;
}

/* An abort only ends the sleep: the run has failed, and the replay stops. */
static int th_lane_wait(pr_transport *tp, int rank, int token)
{
    threads_transport *t = (threads_transport *)tp;
    if (token < t->lane[rank].cap)
        sleep_until(t, t->lane[rank].done[token]);
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
    /* on an emulated link, not before it has arrived (FIFO: the head first) */
    if (m->arrive > 0 && pp_now() < m->arrive) {
        struct timespec at = {(time_t)m->arrive, (long)((m->arrive - (double)(time_t)m->arrive) * 1e9)};
        while (!atomic_load(&t->aborted) && pthread_cond_timedwait(&c->cv, &c->mu, &at) == 0)
            ;
        if (atomic_load(&t->aborted)) {
            pthread_mutex_unlock(&c->mu);
            return PR_RECV_ABORTED;
        }
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
    for (int r = 0; r < t->devices; r++)
        free(t->lane[r].done);
    free(t->lane);
    free(t->chan);
    free(t);
}

static const pr_transport_ops threads_ops = {
    .name = "threads",
    .send = th_send,
    .recv = th_recv,
    .abort = th_abort,
    .destroy = th_destroy,
    .lane_begin = th_lane_begin,
    .lane_end = th_lane_end,
    .lane_wait = th_lane_wait,
};

pr_transport *pr_transport_threads_create(int devices, const pr_link *link)
{
    threads_transport *t = pp_xcalloc(1, sizeof *t, "the threads transport");
    if (link)
        t->link = *link;
    t->base.ops = &threads_ops;
    t->devices = devices;
    pthread_mutex_init(&t->create_mu, NULL);
    t->chan = pp_xcalloc((size_t)devices * devices, sizeof *t->chan, "the threads transport's channels");
    t->lane = pp_xcalloc((size_t)devices, sizeof *t->lane, "the threads transport's lanes");
    return &t->base;
}
