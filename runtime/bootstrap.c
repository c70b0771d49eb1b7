/*
 * bootstrap.c — how the processes of a multi-process run find each other:
 * rank 0 listens, every other rank connects (retrying until a deadline,
 * since rank 0 may start last), says hello (magic, version, world size,
 * rank), and receives a blob from rank 0 (the NCCL unique id).  Rank 0
 * serves every connection at once (poll), each with its own deadline for
 * its hello, so a stray client — silent, closed, speaking something else,
 * claiming a rank that is taken — is dropped with a warning and cannot
 * hold up the real ranks.  Every read and write loops over partial
 * transfers under the deadline; a rank that never connects is an error
 * that names it, never a hang.  Plain POSIX sockets: testable on the CPU.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "pprun.h"

#define BOOT_MAGIC 0x50505242u /* "PPRB" */
#define BOOT_VERSION 1u
#define BOOT_MAX_BLOB 4096u
/* In place of the blob's length: rank 0 gave up, and a length-prefixed
 * reason follows (which ranks it waited for), so every rank's error names
 * the rank that did not come. */
#define BOOT_FAILED 0xffffffffu
#define BOOT_MAX_REASON 512u

static int ms_left(double deadline)
{
    double left = deadline - pp_now();
    return left <= 0 ? 0 : left > 1e6 ? 1000000000 : (int)(left * 1000) + 1;
}

/* Waits until fd is readable (POLLIN) or writable (POLLOUT); 0 ok, 1 timeout. */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int ms = ms_left(deadline);
        if (ms == 0)
            return 1;
        int n = poll(&p, 1, ms);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return 0; /* let the read or write report it */
    }
}

/* 0 ok; 1 timeout; 2 closed by the peer; 3 error (errno). */
static int read_full(int fd, void *buf, size_t n, double deadline)
{
    char *p = buf;
    while (n > 0) {
        if (wait_fd(fd, POLLIN, deadline))
            return 1;
        ssize_t k = recv(fd, p, n, 0);
        if (k == 0)
            return 2;
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return errno == ECONNRESET ? 2 : 3;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n, double deadline)
{
    const char *p = buf;
    while (n > 0) {
        if (wait_fd(fd, POLLOUT, deadline))
            return 1;
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return errno == EPIPE || errno == ECONNRESET ? 2 : 3;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void make_hello(unsigned char h[16], int world, int rank)
{
    put32(h, BOOT_MAGIC);
    put32(h + 4, BOOT_VERSION);
    put32(h + 8, (uint32_t)world);
    put32(h + 12, (uint32_t)rank);
}

/* Checks a hello against this run; 0 ok, else a message in why. */
static int check_hello(const unsigned char h[16], int world, char *why, size_t n)
{
    uint32_t magic = get32(h), version = get32(h + 4), w = get32(h + 8), r = get32(h + 12);
    if (magic != BOOT_MAGIC)
        snprintf(why, n, "bad hello (magic 0x%08x, want 0x%08x): not a pprun rank", magic,
                 BOOT_MAGIC);
    else if (version != BOOT_VERSION)
        snprintf(why, n, "bad hello: protocol version %u, this pprun speaks %u", version,
                 BOOT_VERSION);
    else if (w != (uint32_t)world)
        snprintf(why, n, "bad hello: rank %u says the world has %u ranks, this one has %d", r, w,
                 world);
    else if (r >= (uint32_t)world)
        snprintf(why, n, "bad hello: rank %u is not below the world size %d", r, world);
    else
        return 0;
    return 1;
}

static const char *io_what(int rc)
{
    return rc == 1 ? "timed out" : rc == 2 ? "connection closed by the peer" : strerror(errno);
}

int pr_boot_listen(const char *host, int port, int *port_out, pp_diag *d)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        pp_error(d, "bootstrap: socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (host && *host && strcmp(host, "0.0.0.0") != 0 && inet_pton(AF_INET, host, &a.sin_addr) != 1)
        a.sin_addr.s_addr = htonl(INADDR_ANY); /* a host name: listen everywhere */
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0) {
        pp_error(d, "bootstrap: cannot listen on port %d: %s", port, strerror(errno));
        close(fd);
        return -1;
    }
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    if (port_out)
        *port_out = ntohs(a.sin_port);
    return fd;
}

/* fd is a socket listening for connections; 0, else a reason in why. */
static int check_listening(int fd, char *why, size_t n)
{
    int on = 0;
    socklen_t len = sizeof on;
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0) {
        snprintf(why, n, "%s", strerror(errno));
        return 1;
    }
    if (!on) {
        snprintf(why, n, "a socket that is not listening");
        return 1;
    }
    return 0;
}

/* A connection rank 0 accepted, until its hello is in (then it holds the
 * slot of the rank it named). */
typedef struct peer {
    int fd;
    char addr[64];  /* "10.0.0.2:40112", for messages */
    unsigned char hello[16];
    size_t got;      /* bytes of the hello read so far */
    double deadline; /* its hello must be in by then */
} peer;

/* Bounds a stray client's cost: connections that have not said hello yet. */
#define BOOT_MAX_PENDING 128
/* Seconds a connection has to send its hello (a real rank sends it at
 * once): this, or a quarter of the bootstrap's timeout if less. */
#define BOOT_HELLO_TIMEOUT 5.0
/* Warnings about dropped connections printed before going quiet. */
#define BOOT_MAX_WARNINGS 20

typedef struct server {
    const pr_boot *b;
    pp_diag *d;
    peer *rank;    /* [world]: rank r's connection (fd -1: not yet) */
    peer pending[BOOT_MAX_PENDING];
    int npending, joined, warnings;
} server;

static double hello_timeout(const pr_boot *b)
{
    return b->timeout / 4 < BOOT_HELLO_TIMEOUT ? b->timeout / 4 : BOOT_HELLO_TIMEOUT;
}

static void __attribute__((format(printf, 3, 4))) drop(server *S, peer *c, const char *fmt, ...)
{
    if (S->warnings++ < BOOT_MAX_WARNINGS) {
        char why[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        pp_warning(S->d, "bootstrap: dropping the connection from %s: %s", c->addr, why);
        if (S->warnings == BOOT_MAX_WARNINGS)
            pp_warning(S->d, "bootstrap: further dropped connections are not reported");
    }
    close(c->fd);
    c->fd = -1;
}

/* The peer's connection has been closed (EOF or an error waiting), without
 * consuming anything it may have sent. */
static bool peer_gone(int fd)
{
    char c;
    ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* The hello of c is complete: c takes its rank's slot, or is dropped. */
static void admit(server *S, peer *c)
{
    char why[200];
    if (check_hello(c->hello, S->b->world, why, sizeof why)) {
        drop(S, c, "it sent a %s", why);
        return;
    }
    int r = (int)get32(c->hello + 12);
    if (r == 0) {
        drop(S, c, "it claims to be rank 0, which this process is");
        return;
    }
    peer *slot = &S->rank[r];
    if (slot->fd >= 0 && !peer_gone(slot->fd)) {
        drop(S, c, "it claims to be rank %d, which is already connected from %s", r, slot->addr);
        return;
    }
    if (slot->fd >= 0) { /* the earlier one died: this is its successor */
        drop(S, slot, "rank %d closed its connection before the id was sent; rank %d is now %s",
             r, r, c->addr);
        S->joined--;
    }
    *slot = *c;
    c->fd = -1;
    S->joined++;
}

/* Reads what c has sent of its hello; admits it once whole. */
static void read_hello(server *S, peer *c)
{
    ssize_t k = recv(c->fd, c->hello + c->got, sizeof c->hello - c->got, MSG_DONTWAIT);
    if (k == 0)
        drop(S, c, "it closed the connection before its hello");
    else if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        drop(S, c, "%s before its hello", strerror(errno));
    else if (k > 0 && (c->got += (size_t)k) == sizeof c->hello)
        admit(S, c);
}

/* Accepts every connection waiting; 0, or 1 (error reported) when the
 * listening socket itself fails. */
static int accept_all(server *S, int lfd, double deadline)
{
    for (;;) {
        struct sockaddr_in a;
        socklen_t alen = sizeof a;
        int fd = accept4(lfd, (struct sockaddr *)&a, &alen, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return 0;
            if (errno == ECONNABORTED || errno == EPROTO || errno == ENETDOWN ||
                errno == ENOPROTOOPT || errno == EHOSTDOWN || errno == ENONET ||
                errno == EHOSTUNREACH || errno == EOPNOTSUPP || errno == ENETUNREACH)
                continue; /* that connection is gone; others may wait */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                usleep(10000); /* out of descriptors: pending ones time out, then retry */
                return 0;
            }
            pp_error(S->d, "bootstrap: accepting connections: %s", strerror(errno));
            return 1;
        }
        if (S->npending == BOOT_MAX_PENDING) { /* the oldest has waited longest */
            drop(S, &S->pending[0], "%d connections are waiting for their hello",
                 BOOT_MAX_PENDING);
            memmove(S->pending, S->pending + 1, (BOOT_MAX_PENDING - 1) * sizeof *S->pending);
            S->npending--;
        }
        peer *c = &S->pending[S->npending++];
        memset(c, 0, sizeof *c);
        c->fd = fd;
        char ip[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
        snprintf(c->addr, sizeof c->addr, "%s:%d", ip, ntohs(a.sin_port));
        double own = pp_now() + hello_timeout(S->b);
        c->deadline = own < deadline ? own : deadline;
    }
}

/* "1-3, 5, 9-63": the ranks without a connection, at most 12 runs, then
 * how many more. */
static void missing_ranks(const server *S, char *out, size_t n)
{
    size_t o = 0;
    int runs = 0, more = 0;
    out[0] = '\0';
    for (int r = 1; r < S->b->world; r++) {
        if (S->rank[r].fd >= 0)
            continue;
        int e = r;
        while (e + 1 < S->b->world && S->rank[e + 1].fd < 0)
            e++;
        if (runs++ < 12) {
            if (e > r)
                o += (size_t)snprintf(out + o, n - o, "%s%d-%d", o ? ", " : "", r, e);
            else
                o += (size_t)snprintf(out + o, n - o, "%s%d", o ? ", " : "", r);
            if (o >= n)
                o = n - 1;
        } else {
            more += e - r + 1;
        }
        r = e;
    }
    if (more)
        snprintf(out + o, n - o, " and %d more", more);
}

/* Rank 0: hellos are served concurrently (poll over the listening socket,
 * every connection still owing its hello, and the ranks already in), each
 * connection with its own deadline; a connection that is not a rank of
 * this run — silent, closed, a bad or duplicate hello — is dropped with a
 * warning naming its address, and rank 0 keeps waiting for the real ranks
 * until the global deadline.  Then every rank gets the blob. */
static int serve(const pr_boot *b, const void *blob, size_t len, pp_diag *d)
{
    double deadline = pp_now() + b->timeout;
    int lfd = b->listen_fd >= 0 ? b->listen_fd : pr_boot_listen(b->host, b->port, NULL, d);
    if (lfd < 0)
        return 1;
    char why[200];
    if (check_listening(lfd, why, sizeof why)) {
        pp_error(d, "bootstrap: descriptor %d is not a listening socket (%s)", lfd, why);
        close(lfd);
        return 1;
    }
    int fl = fcntl(lfd, F_GETFL);
    if (fl < 0 || fcntl(lfd, F_SETFL, fl | O_NONBLOCK) < 0) { /* accept_all drains it */
        pp_error(d, "bootstrap: the listening socket: %s", strerror(errno));
        close(lfd);
        return 1;
    }
    server S = {.b = b, .d = d};
    S.rank = pp_xcalloc((size_t)b->world, sizeof *S.rank, "the bootstrap's rank table");
    for (int r = 0; r < b->world; r++)
        S.rank[r].fd = -1;
    S.joined = 1;
    struct pollfd *pf =
        pp_xcalloc((size_t)b->world + BOOT_MAX_PENDING + 1, sizeof *pf, "the bootstrap's poll set");
    int rc = 0;
    char reason[BOOT_MAX_REASON] = "";
    while (S.joined < b->world && rc == 0) {
        double now = pp_now();
        if (now >= deadline) {
            char missing[200];
            missing_ranks(&S, missing, sizeof missing);
            snprintf(reason, sizeof reason, "only %d of %d ranks connected within %g s (missing: %s)",
                     S.joined, b->world, b->timeout, missing);
            pp_error(d, "bootstrap: %s", reason);
            rc = 1;
            break;
        }
        /* pending connections past their deadline go; the rest are polled */
        double wake = deadline;
        int k = 0;
        for (int q = 0; q < S.npending; q++) {
            peer *c = &S.pending[q];
            if (c->deadline <= now)
                drop(&S, c, "no hello within %g s", hello_timeout(b));
            else
                S.pending[k++] = *c;
            if (c->fd >= 0 && c->deadline < wake)
                wake = c->deadline;
        }
        S.npending = k;
        int n = 0;
        pf[n++] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int q = 0; q < S.npending; q++)
            pf[n++] = (struct pollfd){.fd = S.pending[q].fd, .events = POLLIN};
        for (int r = 1; r < b->world; r++) /* a rank that dies while the others come */
            if (S.rank[r].fd >= 0)
                pf[n++] = (struct pollfd){.fd = S.rank[r].fd, .events = POLLIN};
        int ready = poll(pf, (nfds_t)n, ms_left(wake));
        if (ready < 0 && errno != EINTR) {
            pp_error(d, "bootstrap: poll: %s", strerror(errno));
            rc = 1;
            break;
        }
        if (ready <= 0)
            continue;
        /* the ranks in first (their slots free up), then hellos, then new connections */
        for (int q = 1 + S.npending; q < n; q++)
            if (pf[q].revents)
                for (int r = 1; r < b->world; r++)
                    if (S.rank[r].fd == pf[q].fd) {
                        /* a rank sends nothing after its hello: closed, or not a rank */
                        drop(&S, &S.rank[r], "rank %d %s before the id was sent; waiting for "
                             "rank %d to connect again", r, peer_gone(pf[q].fd) ?
                             "closed its connection" : "sent more than its hello", r);
                        S.joined--;
                        break;
                    }
        for (int q = 0; q < S.npending; q++)
            if (pf[1 + q].revents)
                read_hello(&S, &S.pending[q]);
        k = 0;
        for (int q = 0; q < S.npending; q++)
            if (S.pending[q].fd >= 0)
                S.pending[k++] = S.pending[q];
        S.npending = k;
        if (pf[0].revents & (POLLERR | POLLNVAL)) {
            pp_error(d, "bootstrap: the listening socket failed");
            rc = 1;
        } else if (pf[0].revents & POLLIN) {
            rc = accept_all(&S, lfd, deadline);
        }
    }
    /* everyone is here: the answer is hello + length + blob */
    for (int r = 1; r < b->world && rc == 0; r++) {
        unsigned char h[20];
        make_hello(h, b->world, 0);
        put32(h + 16, (uint32_t)len);
        int io = write_full(S.rank[r].fd, h, sizeof h, deadline);
        if (!io)
            io = write_full(S.rank[r].fd, blob, len, deadline);
        if (io) {
            pp_error(d, "bootstrap: sending the id to rank %d (%s): %s", r, S.rank[r].addr,
                     io_what(io));
            rc = 1;
        }
    }
    /* rank 0 gave up: the ranks that came hear why (best effort, briefly) */
    for (int r = 1; r < b->world && reason[0]; r++)
        if (S.rank[r].fd >= 0) {
            unsigned char h[24];
            uint32_t n = (uint32_t)strlen(reason);
            make_hello(h, b->world, 0);
            put32(h + 16, BOOT_FAILED);
            put32(h + 20, n);
            double soon = pp_now() + 0.5;
            if (!write_full(S.rank[r].fd, h, sizeof h, soon))
                write_full(S.rank[r].fd, reason, n, soon);
        }
    for (int q = 0; q < S.npending; q++)
        close(S.pending[q].fd);
    for (int r = 1; r < b->world; r++)
        if (S.rank[r].fd >= 0)
            close(S.rank[r].fd); /* after a failure, the others read EOF and stop */
    free(S.rank);
    free(pf);
    close(lfd);
    return rc;
}

static int connect_once(const pr_boot *b, int *fd_out, double deadline)
{
    char port[16];
    snprintf(port, sizeof port, "%d", b->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(b->host, port, &hints, &res) != 0)
        return -1;
    int ok = 1;
    for (struct addrinfo *a = res; a && ok; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0)
            continue;
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS && !wait_fd(fd, POLLOUT, deadline)) {
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
            r = err ? -1 : 0;
        }
        if (r == 0) {
            *fd_out = fd;
            ok = 0;
        } else {
            close(fd);
        }
    }
    freeaddrinfo(res);
    return ok;
}

/* Rank 0's answer said it gave up: its reason, in this rank's error. */
static void gave_up(const pr_boot *b, int fd, double deadline, pp_diag *d)
{
    unsigned char nb[4];
    char reason[BOOT_MAX_REASON + 1] = "";
    uint32_t n = 0;
    if (read_full(fd, nb, 4, deadline) == 0 && (n = get32(nb)) <= BOOT_MAX_REASON &&
        read_full(fd, reason, n, deadline) == 0)
        reason[n] = '\0';
    else
        snprintf(reason, sizeof reason, "no reason given");
    for (char *c = reason; *c; c++) /* one line, printable */
        if ((unsigned char)*c < ' ' || (unsigned char)*c > '~')
            *c = '?';
    pp_error(d, "bootstrap: rank %d: rank 0 at %s:%d gave up: %s", b->rank, b->host, b->port, reason);
}

static int join(const pr_boot *b, void *blob, size_t len, pp_diag *d)
{
    double deadline = pp_now() + b->timeout;
    int fd = -1;
    for (int tries = 0;; tries++) {
        int rc = connect_once(b, &fd, deadline);
        if (rc < 0) {
            pp_error(d, "bootstrap: cannot resolve the master address '%s'", b->host);
            return 1;
        }
        if (rc == 0)
            break;
        if (pp_now() >= deadline) {
            pp_error(d, "bootstrap: rank %d could not reach rank 0 at %s:%d within %g s",
                     b->rank, b->host, b->port, b->timeout);
            return 1;
        }
        usleep(tries < 20 ? 20000 : 100000); /* rank 0 may not be listening yet */
    }
    unsigned char h[20];
    make_hello(h, b->world, b->rank);
    int io = write_full(fd, h, 16, deadline);
    if (!io)
        io = read_full(fd, h, sizeof h, deadline);
    char why[200];
    int rc = 1;
    if (io == 2)
        pp_error(d, "bootstrap: rank 0 at %s:%d closed the connection (it failed or gave up)",
                 b->host, b->port);
    else if (io)
        pp_error(d, "bootstrap: rank %d waiting for rank 0 at %s:%d: %s", b->rank, b->host, b->port,
                 io_what(io));
    else if (check_hello(h, b->world, why, sizeof why))
        pp_error(d, "bootstrap: rank 0 at %s:%d answered with a %s", b->host, b->port, why);
    else if (get32(h + 16) == BOOT_FAILED)
        gave_up(b, fd, deadline, d);
    else if (get32(h + 16) != len)
        pp_error(d, "bootstrap: rank 0 sent %u bytes of id, want %zu", get32(h + 16), len);
    else if ((io = read_full(fd, blob, len, deadline)) != 0)
        pp_error(d, "bootstrap: reading the id from rank 0: %s", io_what(io));
    else
        rc = 0;
    close(fd);
    return rc;
}

int pr_boot_exchange(const pr_boot *b, void *blob, size_t len, pp_diag *d)
{
    if (b->world < 1 || b->rank < 0 || b->rank >= b->world || len > BOOT_MAX_BLOB) {
        pp_error(d, "bootstrap: rank %d of %d is not a valid place", b->rank, b->world);
        return 1;
    }
    if (b->world == 1)
        return 0;
    return b->rank == 0 ? serve(b, blob, len, d) : join(b, blob, len, d);
}

/* ---- the launcher's environment ---- */

static int env_int(const char *name, int *out, pp_diag *d)
{
    const char *s = getenv(name);
    if (!s)
        return 1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 1000000) {
        pp_error(d, "%s='%s' is not a non-negative integer", name, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int pr_boot_from_env(pr_boot *b, int *local_rank, pp_diag *d)
{
    memset(b, 0, sizeof *b);
    b->listen_fd = -1;
    int rank = 0, world = 0, local = -1, port = -1;
    int rc = env_int("RANK", &rank, d);
    const char *scheme = "RANK/WORLD_SIZE";
    if (rc == 0) {
        if ((rc = env_int("WORLD_SIZE", &world, d)) != 0) {
            if (rc > 0)
                pp_error(d, "RANK is set but WORLD_SIZE is not");
            return -1;
        }
        if (env_int("LOCAL_RANK", &local, d) < 0)
            return -1;
    } else if (rc < 0) {
        return -1;
    } else if ((rc = env_int("SLURM_PROCID", &rank, d)) == 0) {
        scheme = "SLURM_PROCID/SLURM_NTASKS";
        if ((rc = env_int("SLURM_NTASKS", &world, d)) != 0) {
            if (rc > 0)
                pp_error(d, "SLURM_PROCID is set but SLURM_NTASKS is not");
            return -1;
        }
        if (env_int("SLURM_LOCALID", &local, d) < 0)
            return -1;
    } else if (rc < 0) {
        return -1;
    } else if (getenv("WORLD_SIZE")) { /* half a torchrun environment: not a one-process run in disguise */
        pp_error(d, "WORLD_SIZE is set but RANK is not");
        return -1;
    } else {
        return 0; /* not launched */
    }
    if (world < 1 || rank >= world) {
        pp_error(d, "%s: rank %d is not below the world size %d", scheme, rank, world);
        return -1;
    }
    b->rank = rank;
    b->world = world;
    *local_rank = local >= 0 ? local : rank;
    const char *comm_id = getenv("NCCL_COMM_ID");
    const char *host = getenv("MASTER_ADDR");
    if (comm_id && *comm_id) {
        const char *colon = strrchr(comm_id, ':');
        char *end;
        long v = colon ? strtol(colon + 1, &end, 10) : -1;
        if (!colon || colon == comm_id || *end || v < 1 || v > 65535 ||
            (size_t)(colon - comm_id) >= sizeof b->host) {
            pp_error(d, "NCCL_COMM_ID='%s' is not HOST:PORT", comm_id);
            return -1;
        }
        memcpy(b->host, comm_id, (size_t)(colon - comm_id));
        port = (int)v;
    } else {
        if (world > 1 && !host) {
            pp_error(d, "%s is set but MASTER_ADDR (the address of rank 0) is not; set it, or "
                        "NCCL_COMM_ID=HOST:PORT", scheme);
            return -1;
        }
        snprintf(b->host, sizeof b->host, "%s", host ? host : "127.0.0.1");
        int rcp = env_int("MASTER_PORT", &port, d);
        if (rcp < 0)
            return -1;
        if (world > 1 && (rcp > 0 || port < 1 || port > 65535)) {
            pp_error(d, "MASTER_PORT must be a port number (1..65535) with MASTER_ADDR");
            return -1;
        }
    }
    b->port = port;
    int fd = -1;
    if (env_int("PPRUN_BOOT_FD", &fd, d) < 0)
        return -1;
    char why[200];
    if (rank == 0 && fd >= 0 && check_listening(fd, why, sizeof why)) {
        pp_error(d, "PPRUN_BOOT_FD=%d is not a listening socket (%s)", fd, why);
        return -1;
    }
    b->listen_fd = rank == 0 ? fd : -1;
    return 1;
}

int pr_boot_peer_fds(const pr_boot *b, int **out, pp_diag *d)
{
    *out = NULL;
    const char *s = getenv("PPRUN_PEER_FDS");
    if (!s)
        return 0;
    int *fd = pp_xcalloc((size_t)b->world, sizeof *fd, "the ranks' connections");
    const char *at = s;
    int n = 0;
    bool ok = true;
    for (; ok && n < b->world; n++) {
        if (n == b->rank) {
            ok = *at == '-';
            at += ok;
            fd[n] = -1;
        } else {
            char *end;
            errno = 0;
            long v = strtol(at, &end, 10);
            struct stat st;
            ok = !errno && end != at && v >= 0 && v <= INT32_MAX && fstat((int)v, &st) == 0 && S_ISSOCK(st.st_mode);
            fd[n] = (int)v;
            at = end;
        }
        if (ok && n + 1 < b->world)
            ok = *at++ == ',';
        for (int q = 0; ok && fd[n] >= 0 && q < n; q++) /* one connection a peer */
            ok = fd[q] != fd[n];
    }
    if (!ok || *at) {
        pp_error(d, "rank %d of %d: PPRUN_PEER_FDS='%s' is not what pprun --nproc hands a rank: a socket for each "
                    "other rank, '-' at its own place, %d entries", b->rank, b->world, s, b->world);
        free(fd);
        return -1;
    }
    for (int q = 0; q < b->world; q++) /* a rank's own; not for what it may start */
        if (fd[q] >= 0)
            fcntl(fd[q], F_SETFD, FD_CLOEXEC);
    *out = fd;
    return 1;
}

int pr_rank_gpu(int rank, int local_rank, int visible, pp_diag *d)
{
    if (visible == 1)
        return 0; /* srun --gpus-per-task 1, CUDA_VISIBLE_DEVICES per rank: its own GPU */
    if (local_rank < visible)
        return local_rank;
    pp_error(d, "rank %d: local rank %d but %d GPUs are visible (a rank uses GPU 0 when it "
                "sees one, else the GPU of its local rank)", rank, local_rank, visible);
    return -1;
}
