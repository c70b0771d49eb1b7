/*
 * transport_sockets.c — the cpu backend's transport between processes:
 * one process a rank under `pprun --nproc` (docs/multinode.md, "The cpu
 * backend").  The launcher joins every pair of ranks by a socket pair
 * before it starts them, so a rank needs no address and no port, and a
 * rank that dies closes its ends: its peers read the end of file at once
 * and name it instead of waiting out the timeout.
 *
 * A message is a header (tag, float count) and its floats.  One reader
 * thread a peer reads its messages as they come into the peer's FIFO, so a
 * send — written whole on the sender's thread — never waits for the
 * receiving rank's replay to get there (sends are buffered, as the threads
 * transport's are); a recv takes the oldest message of its peer's FIFO.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "clock.h"
#include "pp.h"
#include "rank_grid.h"
#include "transport.h"

/* What one message may carry: more is a damaged stream, not a message. */
#define SOCKETS_MAX_FLOATS ((uint64_t)1 << 34)

typedef struct frame {
    int32_t comm, stage, mb, pad;
    uint64_t count;
} frame;

typedef struct sock_msg {
    struct sock_msg *next;
    pr_tag tag;
    size_t count;
    float data[];
} sock_msg;

typedef struct sock_peer {
    int fd;
    pthread_t reader;
    bool reading;          /* its reader thread was started */
    sock_msg *head, *tail; /* under the transport's mu */
    bool closed;           /* no more messages will come (under mu) */
    char why[160];         /* why, for the error that names it */
    pthread_mutex_t write_mu;
} sock_peer;

typedef struct sock_transport {
    pr_transport base;
    int rank, world;
    pr_grid grid;
    sock_peer *peer; /* [world]; peer[rank] unused */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool aborted;
    pr_bctx *c; /* this rank's context (attach): where errors go */
} sock_transport;

typedef struct reader_arg {
    sock_transport *t;
    int src;
} reader_arg;

static void fail(sock_transport *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(sock_transport *t, const char *fmt, ...)
{
    if (!t->c)
        return;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pr_bctx_fail(t->c, "sockets transport:", msg);
}

/* Reads n bytes: 0, or 1 at the end of file, -1 on an error (errno). */
static int read_full(int fd, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r == 0)
            return 1;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void close_peer(sock_transport *t, int src, const char *why)
{
    pthread_mutex_lock(&t->mu);
    sock_peer *q = &t->peer[src];
    if (!q->closed) {
        q->closed = true;
        snprintf(q->why, sizeof q->why, "%s", why);
    }
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void *reader_main(void *arg)
{
    reader_arg a = *(reader_arg *)arg;
    free(arg);
    sock_transport *t = a.t;
    sock_peer *q = &t->peer[a.src];
    for (;;) {
        frame h;
        int rc = read_full(q->fd, &h, sizeof h);
        if (rc) {
            char why[160];
            if (rc > 0)
                snprintf(why, sizeof why, "closed its connection (it ended or failed)");
            else
                snprintf(why, sizeof why, "broke its connection (%s: it ended or failed)", strerror(errno));
            close_peer(t, a.src, why);
            return NULL;
        }
        if (h.count > SOCKETS_MAX_FLOATS) {
            close_peer(t, a.src, "sent a message header that is not one of pprun's");
            return NULL;
        }
        sock_msg *m = malloc(sizeof *m + (size_t)h.count * sizeof(float));
        if (!m) {
            close_peer(t, a.src, "sent a message this rank has no memory to receive");
            return NULL;
        }
        m->next = NULL;
        m->tag = (pr_tag){h.comm, h.stage, h.mb};
        m->count = (size_t)h.count;
        if ((rc = read_full(q->fd, m->data, m->count * sizeof(float))) != 0) {
            free(m);
            close_peer(t, a.src, rc > 0 ? "closed its connection in the middle of a message"
                                        : "broke its connection in the middle of a message");
            return NULL;
        }
        pthread_mutex_lock(&t->mu);
        if (q->tail)
            q->tail->next = m;
        else
            q->head = m;
        q->tail = m;
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
    }
}

static int sock_send(pr_transport *tp, int src, int dst, pr_tag tag, const float *data, size_t count)
{
    sock_transport *t = (sock_transport *)tp;
    char who[64];
    if (src != t->rank || dst < 0 || dst >= t->world || dst == t->rank) {
        fail(t, "a send from rank %d to rank %d, in the process of rank %d", src, dst, t->rank);
        return 1;
    }
    sock_peer *q = &t->peer[dst];
    frame h = {tag.comm, tag.stage, tag.mb, 0, (uint64_t)count};
    pthread_mutex_lock(&q->write_mu);
    int rc = write_full(q->fd, &h, sizeof h) || write_full(q->fd, data, count * sizeof(float));
    int err = errno;
    pthread_mutex_unlock(&q->write_mu);
    if (!rc)
        return 0;
    pr_grid_name(t->grid, dst, who, sizeof who);
    if (err == EPIPE || err == ECONNRESET)
        fail(t, "sending to %s: it closed its connection (it ended or failed)", who);
    else
        fail(t, "sending to %s: %s", who, strerror(err));
    return 1;
}

static int sock_recv(pr_transport *tp, int dst, int src, pr_tag want, float *data, size_t count, double timeout,
                     pr_tag *got)
{
    sock_transport *t = (sock_transport *)tp;
    if (dst != t->rank || src < 0 || src >= t->world || src == t->rank) {
        fail(t, "a receive on rank %d from rank %d, in the process of rank %d", dst, src, t->rank);
        return PR_RECV_ERROR;
    }
    sock_peer *q = &t->peer[src];
    struct timespec until = pp_deadline_after(timeout);
    pthread_mutex_lock(&t->mu);
    int rc = PR_RECV_OK;
    while (!q->head && !q->closed && !t->aborted)
        if (pthread_cond_timedwait(&t->cv, &t->mu, &until) == ETIMEDOUT && !q->head && !q->closed && !t->aborted) {
            rc = PR_RECV_TIMEOUT;
            break;
        }
    sock_msg *m = NULL;
    char why[160] = "";
    if (rc == PR_RECV_OK) {
        if (q->head) { /* what came before a close is still its message */
            m = q->head;
            q->head = m->next;
            if (!q->head)
                q->tail = NULL;
        } else if (t->aborted) {
            rc = PR_RECV_ABORTED;
        } else {
            rc = PR_RECV_ERROR;
            snprintf(why, sizeof why, "%s", q->why);
        }
    }
    pthread_mutex_unlock(&t->mu);
    if (rc == PR_RECV_ERROR) {
        char who[64];
        pr_grid_name(t->grid, src, who, sizeof who);
        fail(t, "waiting for %s: it %s", who, why);
        return rc;
    }
    if (!m)
        return rc;
    *got = m->tag;
    if (m->tag.comm != want.comm || m->tag.stage != want.stage || m->tag.mb != want.mb) {
        free(m);
        return PR_RECV_MISMATCH;
    }
    if (m->count != count) {
        char who[64];
        pr_grid_name(t->grid, src, who, sizeof who);
        fail(t, "%s sent %zu floats where %zu were expected", who, m->count, count);
        free(m);
        return PR_RECV_ERROR;
    }
    memcpy(data, m->data, count * sizeof(float));
    free(m);
    return PR_RECV_OK;
}

/* This rank failed: its waits end.  Its peers read the end of its
 * connections when it exits, after it has said why (not before: the
 * launcher stops every rank once the first has ended). */
static void sock_abort(pr_transport *tp)
{
    sock_transport *t = (sock_transport *)tp;
    pthread_mutex_lock(&t->mu);
    t->aborted = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void sock_attach(pr_transport *tp, int rank, struct pr_bctx *c)
{
    sock_transport *t = (sock_transport *)tp;
    if (rank == t->rank)
        t->c = c;
}

static void sock_destroy(pr_transport *tp)
{
    sock_transport *t = (sock_transport *)tp;
    for (int q = 0; q < t->world; q++)
        if (q != t->rank && t->peer[q].fd >= 0)
            shutdown(t->peer[q].fd, SHUT_RDWR); /* the reader sees its end and stops */
    for (int q = 0; q < t->world; q++) {
        sock_peer *p = &t->peer[q];
        if (p->reading)
            pthread_join(p->reader, NULL);
        if (p->fd >= 0)
            close(p->fd);
        for (sock_msg *m = p->head, *n; m; m = n) {
            n = m->next;
            free(m);
        }
        pthread_mutex_destroy(&p->write_mu);
    }
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t->peer);
    free(t);
}

static const pr_transport_ops sock_ops = {
    .name = "sockets",
    .send = sock_send,
    .recv = sock_recv,
    .abort = sock_abort,
    .destroy = sock_destroy,
    .attach = sock_attach,
};

pr_transport *pr_transport_sockets_create(int rank, int world, int replicas, const int *fds, char *err,
                                          size_t errlen)
{
    sock_transport *t = calloc(1, sizeof *t);
    sock_peer *peer = calloc((size_t)world, sizeof *peer);
    if (!t || !peer) {
        free(t);
        free(peer);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->base.ops = &sock_ops;
    t->rank = rank;
    t->world = world;
    t->grid = (pr_grid){world / (replicas > 0 ? replicas : 1), replicas > 0 ? replicas : 1};
    t->peer = peer;
    pthread_mutex_init(&t->mu, NULL);
    pp_cond_init_monotonic(&t->cv);
    for (int q = 0; q < world; q++) {
        peer[q].fd = q == rank ? -1 : fds[q];
        pthread_mutex_init(&peer[q].write_mu, NULL);
    }
    for (int q = 0; q < world; q++) {
        if (q == rank)
            continue;
        reader_arg *a = malloc(sizeof *a);
        if (a)
            *a = (reader_arg){t, q};
        int rc = a ? pthread_create(&peer[q].reader, NULL, reader_main, a) : ENOMEM;
        peer[q].reading = rc == 0;
        if (rc) {
            free(a);
            snprintf(err, errlen, "cannot start the reader of rank %d's connection: %s", q, strerror(rc));
            sock_destroy(&t->base);
            return NULL;
        }
    }
    return &t->base;
}
