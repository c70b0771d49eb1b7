/*
 * test_bootstrap.c — the multi-process bootstrap on loopback, with real
 * processes: the id reaches every rank, of D x R worlds too; a rank that
 * never connects or dies during the bootstrap, and an unreachable rank 0,
 * end in errors that say so (every rank naming the missing one) within
 * the timeout; a
 * client that writes its hello a byte at a time still gets the id
 * (partial reads); stray connections (silent, closed, a bad hello, a
 * rank that is taken or claims rank 0, a rank that died) are dropped
 * with a warning while the real ranks get through; the launcher
 * environment (torchrun, Slurm, NCCL_COMM_ID, PPRUN_BOOT_FD) is read or
 * refused.  Also: the replay's activation pool is
 * sized from the plan, so a run allocates nothing beyond it.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "clock.h"
#include "plan_gen.h"
#include "pprun.h"
#include "rank_grid.h"
#include "test_util.h"

static const unsigned char *test_blob(void)
{
    static unsigned char blob[128];
    for (int i = 0; i < 128; i++)
        blob[i] = (unsigned char)(i * 7 + 3);
    return blob;
}

/* Child: joins as `rank`; exit 0 if the blob arrived intact, 1 if the
 * exchange failed, 2 if the blob is wrong.  The error text goes to errfile. */
static pid_t spawn_rank_after(int rank, int world, int port, double timeout, const char *errfile,
                              useconds_t delay)
{
    pid_t p = fork();
    ck_assert(p >= 0);
    if (p > 0)
        return p;
    usleep(delay);
    FILE *f = fopen(errfile, "w");
    pp_diag d;
    pp_diag_init(&d, f ? f : stderr, "pprun");
    pr_boot b = {.rank = rank, .world = world, .port = port, .listen_fd = -1, .timeout = timeout};
    strcpy(b.host, "127.0.0.1");
    unsigned char got[128] = {0};
    int rc = pr_boot_exchange(&b, got, sizeof got, &d);
    if (f)
        fclose(f);
    _exit(rc ? 1 : memcmp(got, test_blob(), 128) ? 2 : 0);
}

static pid_t spawn_rank(int rank, int world, int port, double timeout, const char *errfile)
{
    return spawn_rank_after(rank, world, port, timeout, errfile, 0);
}

static int wait_status(pid_t p)
{
    int st;
    ck_assert(waitpid(p, &st, 0) == p);
    ck_assert(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static char *slurp(const char *path)
{
    size_t n;
    char *t = tu_read_file(path, &n);
    return t ? t : strdup("");
}

/* Rank 0 in this process: returns its status, its message in *msg. */
static int serve(int lfd, int world, double timeout, char **msg)
{
    tu_diag td;
    tu_diag_open(&td);
    pr_boot b = {.rank = 0, .world = world, .listen_fd = lfd, .timeout = timeout};
    unsigned char blob[128];
    memcpy(blob, test_blob(), 128);
    int rc = pr_boot_exchange(&b, blob, sizeof blob, &td.diag);
    *msg = strdup(tu_diag_text(&td));
    tu_diag_close(&td);
    return rc;
}

static int listen_any(int *port)
{
    tu_diag td;
    tu_diag_open(&td);
    int fd = pr_boot_listen("127.0.0.1", 0, port, &td.diag);
    tu_diag_close(&td);
    ck_assert(fd >= 0 && *port > 0);
    return fd;
}

START_TEST(test_id_reaches_every_rank)
{
    int port;
    int lfd = listen_any(&port);
    enum { WORLD = 5 };
    pid_t kids[WORLD];
    char files[WORLD][64];
    for (int r = 1; r < WORLD; r++) {
        snprintf(files[r], sizeof files[r], "/tmp/pp_boot_%d_%d.txt", (int)getpid(), r);
        kids[r] = spawn_rank(r, WORLD, port, 10, files[r]);
    }
    char *msg;
    int rc = serve(lfd, WORLD, 10, &msg);
    ck_assert_msg(rc == 0, "rank 0 failed: %s", msg);
    for (int r = 1; r < WORLD; r++) {
        int st = wait_status(kids[r]);
        char *e = slurp(files[r]);
        ck_assert_msg(st == 0, "rank %d exited %d: %s", r, st, e);
        free(e);
        unlink(files[r]);
    }
    free(msg);
}
END_TEST

/* The world of a data-parallel pipeline, D x R ranks (rank_grid.h), one
 * process each: every one gets rank 0's id. */
static const pr_grid grids[] = {{2, 2}, {3, 2}, {2, 3}, {4, 2}, {1, 7}};

START_TEST(test_id_reaches_a_dp_world)
{
    pr_grid g = grids[_i];
    int world = pr_grid_world(g), port;
    ck_assert(world <= 8);
    int lfd = listen_any(&port);
    pid_t kids[8];
    char files[8][64];
    for (int r = 1; r < world; r++) {
        snprintf(files[r], sizeof files[r], "/tmp/pp_boot_dp_%d_%d.txt", (int)getpid(), r);
        kids[r] = spawn_rank(r, world, port, 10, files[r]);
    }
    char *msg;
    int rc = serve(lfd, world, 10, &msg);
    ck_assert_msg(rc == 0, "%d x %d: rank 0 failed: %s", g.devices, g.replicas, msg);
    for (int r = 1; r < world; r++) {
        int st = wait_status(kids[r]);
        char *e = slurp(files[r]);
        char who[64];
        ck_assert_msg(st == 0, "%s exited %d: %s", pr_grid_name(g, r, who, sizeof who), st, e);
        free(e);
        unlink(files[r]);
    }
    free(msg);
}
END_TEST

/* A rank of a 3 x 2 world that dies during the bootstrap (rank 3,
 * device 1's replica 1, killed 0.3 s in, after it connected; rank 5 comes
 * at 0.6 s, so the id was not sent yet): rank 0 and every other rank fail
 * within the timeout, each naming rank 3. */
START_TEST(test_rank_dying_in_bootstrap_is_named_everywhere)
{
    pr_grid g = {3, 2};
    int world = pr_grid_world(g), port, dead = pr_grid_rank(g, 1, 1);
    int lfd = listen_any(&port);
    pid_t kids[6];
    char files[6][64];
    double t0 = pp_now();
    for (int r = 1; r < world; r++) {
        snprintf(files[r], sizeof files[r], "/tmp/pp_boot_die_%d_%d.txt", (int)getpid(), r);
        if (r != dead) {
            kids[r] = spawn_rank_after(r, world, port, 10, files[r], r == world - 1 ? 600000 : 0);
            continue;
        }
        kids[r] = fork();
        ck_assert(kids[r] >= 0);
        if (kids[r] == 0) {
            signal(SIGALRM, SIG_DFL); /* not Check's handler (it ends the whole test) */
            struct itimerval it = {.it_value = {0, 300000}};
            setitimer(ITIMER_REAL, &it, NULL); /* SIGALRM's default: the process dies */
            pr_boot b = {.rank = r, .world = world, .port = port, .listen_fd = -1, .timeout = 10};
            strcpy(b.host, "127.0.0.1");
            unsigned char got[128];
            pp_diag d;
            pp_diag_init(&d, stderr, "pprun");
            pr_boot_exchange(&b, got, sizeof got, &d);
            _exit(9); /* not reached: rank 0 cannot finish without it */
        }
    }
    char *msg;
    ck_assert_int_eq(serve(lfd, world, 1.5, &msg), 1);
    ck_assert_msg(strstr(msg, "bootstrap: only 5 of 6 ranks connected within 1.5 s (missing: 3)"), "%s", msg);
    int st;
    ck_assert(waitpid(kids[dead], &st, 0) == kids[dead]);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM, "rank 3 was to die by its alarm");
    for (int r = 1; r < world; r++) {
        if (r == dead)
            continue;
        ck_assert_int_eq(wait_status(kids[r]), 1);
        char *e = slurp(files[r]), want[160];
        snprintf(want, sizeof want, "pprun: error: bootstrap: rank %d: rank 0 at 127.0.0.1:%d gave up: only 5 "
                 "of 6 ranks connected within 1.5 s (missing: 3)\n", r, port);
        ck_assert_msg(strstr(e, want), "rank %d: %s", r, e);
        free(e);
        unlink(files[r]);
    }
    ck_assert_msg(pp_now() - t0 < 5, "took %g s: the ranks waited for their own timeouts", pp_now() - t0);
    free(msg);
}
END_TEST

/* Ranks start before rank 0 listens: they retry until it does. */
START_TEST(test_ranks_retry_until_rank0_listens)
{
    int port;
    int lfd = listen_any(&port);
    close(lfd); /* nobody listens on port for now */
    char file[64];
    snprintf(file, sizeof file, "/tmp/pp_boot_retry_%d.txt", (int)getpid());
    pid_t kid = spawn_rank(1, 2, port, 10, file);
    usleep(300000);
    tu_diag td;
    tu_diag_open(&td);
    int fd = pr_boot_listen("127.0.0.1", port, NULL, &td.diag);
    tu_diag_close(&td);
    ck_assert(fd >= 0);
    char *msg;
    ck_assert_msg(serve(fd, 2, 10, &msg) == 0, "%s", msg);
    char *e = slurp(file);
    ck_assert_msg(wait_status(kid) == 0, "%s", e);
    free(e);
    free(msg);
    unlink(file);
}
END_TEST

START_TEST(test_missing_rank_times_out_everywhere)
{
    int port;
    int lfd = listen_any(&port);
    char file[64];
    snprintf(file, sizeof file, "/tmp/pp_boot_missing_%d.txt", (int)getpid());
    pid_t kid = spawn_rank(1, 3, port, 10, file); /* rank 2 never comes */
    double t0 = pp_now();
    char *msg;
    int rc = serve(lfd, 3, 0.5, &msg);
    double took = pp_now() - t0;
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(msg, "bootstrap: only 2 of 3 ranks connected within 0.5 s (missing: 2)"),
                  "%s", msg);
    ck_assert_msg(took >= 0.45 && took < 5, "took %g s", took);
    /* rank 1 hears that rank 0 gave up, long before its own 10 s */
    ck_assert_int_eq(wait_status(kid), 1);
    ck_assert_msg(pp_now() - t0 < 5, "rank 1 waited for its own timeout");
    char *e = slurp(file);
    ck_assert_msg(strstr(e, "bootstrap: rank 1: rank 0 at 127.0.0.1:") &&
                  strstr(e, " gave up: only 2 of 3 ranks connected within 0.5 s (missing: 2)"), "%s", e);
    free(e);
    free(msg);
    unlink(file);
}
END_TEST

START_TEST(test_unreachable_rank0_times_out)
{
    int port;
    close(listen_any(&port));
    tu_diag td;
    tu_diag_open(&td);
    pr_boot b = {.rank = 2, .world = 3, .port = port, .listen_fd = -1, .timeout = 0.3};
    strcpy(b.host, "127.0.0.1");
    unsigned char blob[128];
    double t0 = pp_now();
    ck_assert_int_eq(pr_boot_exchange(&b, blob, sizeof blob, &td.diag), 1);
    ck_assert(pp_now() - t0 < 3);
    char want[120];
    snprintf(want, sizeof want, "rank 2 could not reach rank 0 at 127.0.0.1:%d within 0.3 s", port);
    ck_assert_msg(strstr(tu_diag_text(&td), want), "%s", tu_diag_text(&td));
    tu_diag_close(&td);
}
END_TEST

/* A raw client: writes `hello` (16 bytes) one byte at a time, then reads
 * everything rank 0 answers into reply; exits with the byte count read. */
static pid_t raw_client(int port, const unsigned char *hello, unsigned char *reply_out_unused,
                        int byte_at_a_time)
{
    pid_t p = fork();
    ck_assert(p >= 0);
    if (p > 0)
        return p;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        _exit(255);
    for (int i = 0; i < 16; i++) {
        if (send(fd, hello + i, byte_at_a_time ? 1 : 16, 0) < 0)
            _exit(254);
        if (!byte_at_a_time)
            break;
        usleep(5000);
    }
    unsigned char buf[512];
    size_t got = 0;
    ssize_t k;
    while ((k = recv(fd, buf + got, sizeof buf - got, 0)) > 0)
        got += (size_t)k;
    /* a good reply: 20-byte header + the 128-byte blob */
    int ok = got == 148 && memcmp(buf + 20, test_blob(), 128) == 0;
    _exit(ok ? 0 : got == 0 ? 3 : 4);
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static void hello(unsigned char h[16], uint32_t magic, uint32_t version, uint32_t world,
                  uint32_t rank)
{
    put32(h, magic), put32(h + 4, version), put32(h + 8, world), put32(h + 12, rank);
}

START_TEST(test_partial_reads_still_deliver)
{
    int port;
    int lfd = listen_any(&port);
    unsigned char h[16];
    hello(h, 0x50505242u, 1, 2, 1);
    pid_t kid = raw_client(port, h, NULL, 1);
    char *msg;
    ck_assert_msg(serve(lfd, 2, 10, &msg) == 0, "%s", msg);
    ck_assert_int_eq(wait_status(kid), 0);
    free(msg);
}
END_TEST

/* A connection made from this process before rank 0 serves (it waits in
 * the backlog, in order): sends `n` bytes of h (NULL: nothing), closes at
 * once when `close_it`.  Returns the socket (-1 when closed). */
static int raw_connect(int port, const unsigned char *h, size_t n, bool close_it)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ck_assert(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    if (h)
        ck_assert(send(fd, h, n, 0) == (ssize_t)n);
    if (close_it) {
        close(fd);
        return -1;
    }
    return fd;
}

/* What rank 0 answered on fd: 148 = the id, 0 = closed without an answer. */
static size_t answer(int fd)
{
    unsigned char buf[512];
    size_t got = 0;
    ssize_t k;
    while ((k = recv(fd, buf + got, sizeof buf - got, 0)) > 0)
        got += (size_t)k;
    close(fd);
    if (got == 148)
        ck_assert(memcmp(buf + 20, test_blob(), 128) == 0);
    return got;
}

/* Rank 0 serving `world` ranks with real ranks 1.. spawned (those listed in
 * `real`, -1 ended); returns its status, its messages in *msg. */
static int serve_with_ranks(int lfd, int port, int world, const int *real, double timeout,
                            char **msg)
{
    pid_t kids[8];
    char files[8][64];
    int n = 0;
    for (; real[n] >= 0; n++) {
        snprintf(files[n], sizeof files[n], "/tmp/pp_boot_real_%d_%d.txt", (int)getpid(), n);
        kids[n] = spawn_rank(real[n], world, port, 10, files[n]);
    }
    int rc = serve(lfd, world, timeout, msg);
    for (int q = 0; q < n; q++) {
        char *e = slurp(files[q]);
        int st = wait_status(kids[q]);
        ck_assert_msg(rc != 0 || st == 0, "rank %d exited %d: %s", real[q], st, e);
        free(e);
        unlink(files[q]);
    }
    return rc;
}

static const struct {
    uint32_t magic, version, world, rank;
    const char *warning;
} bad_hellos[] = {
    {0x47455420u, 1, 2, 1, "it sent a bad hello (magic 0x47455420, want 0x50505242): not a pprun rank"},
    {0x50505242u, 9, 2, 1, "it sent a bad hello: protocol version 9, this pprun speaks 1"},
    {0x50505242u, 1, 4, 1, "it sent a bad hello: rank 1 says the world has 4 ranks, this one has 2"},
    {0x50505242u, 1, 2, 7, "it sent a bad hello: rank 7 is not below the world size 2"},
    {0x50505242u, 1, 2, 0, "it claims to be rank 0, which this process is"},
};

/* A connection with a bad hello is dropped with a warning naming its
 * address, and rank 0 goes on to serve the real rank. */
START_TEST(test_bad_hello_is_dropped)
{
    int port;
    int lfd = listen_any(&port);
    unsigned char h[16];
    hello(h, bad_hellos[_i].magic, bad_hellos[_i].version, bad_hellos[_i].world,
          bad_hellos[_i].rank);
    int bad = raw_connect(port, h, 16, false);
    char *msg;
    int rc = serve_with_ranks(lfd, port, 2, (int[]){1, -1}, 10, &msg);
    ck_assert_msg(rc == 0, "%s", msg);
    ck_assert_msg(strstr(msg, ": warning: bootstrap: dropping the connection from 127.0.0.1:") &&
                      strstr(msg, bad_hellos[_i].warning),
                  "%s", msg);
    ck_assert_int_eq(answer(bad), 0); /* closed without the id */
    free(msg);
}
END_TEST

/* A client that connects and says nothing does not hold up the real ranks:
 * hellos are served concurrently. */
START_TEST(test_silent_client_does_not_block)
{
    int port;
    int lfd = listen_any(&port);
    int silent = raw_connect(port, NULL, 0, false);
    double t0 = pp_now();
    char *msg;
    int rc = serve_with_ranks(lfd, port, 3, (int[]){1, 2, -1}, 10, &msg);
    ck_assert_msg(rc == 0, "%s", msg);
    ck_assert_msg(pp_now() - t0 < 3, "took %g s", pp_now() - t0);
    ck_assert_int_eq(answer(silent), 0);
    free(msg);
}
END_TEST

/* A silent client is dropped at its own deadline, named, while rank 0
 * keeps waiting for the rank that never comes. */
START_TEST(test_silent_client_is_dropped)
{
    int port;
    int lfd = listen_any(&port);
    int silent = raw_connect(port, NULL, 0, false);
    unsigned char h[16];
    hello(h, 0x50505242u, 1, 2, 1);
    int partial = raw_connect(port, h, 7, false); /* half a hello, then nothing */
    char *msg;
    double t0 = pp_now();
    ck_assert_int_eq(serve(lfd, 2, 2, &msg), 1);
    ck_assert(pp_now() - t0 > 1.9);
    /* each dropped at its own deadline (a quarter of the timeout), named */
    ck_assert_msg(strstr(msg, ": warning: bootstrap: dropping the connection from 127.0.0.1:") &&
                      strstr(msg, ": no hello within 0.5 s\n"),
                  "%s", msg);
    ck_assert_msg(strstr(strstr(msg, "no hello within") + 1, "no hello within"), "%s", msg);
    ck_assert_msg(strstr(msg, "bootstrap: only 1 of 2 ranks connected within 2 s (missing: 1)"),
                  "%s", msg);
    ck_assert_int_eq(answer(silent), 0);
    ck_assert_int_eq(answer(partial), 0);
    free(msg);
}
END_TEST

/* One that connects and closes at once is dropped; the run goes on. */
START_TEST(test_closed_client_is_dropped)
{
    int port;
    int lfd = listen_any(&port);
    raw_connect(port, NULL, 0, true);
    char *msg;
    int rc = serve_with_ranks(lfd, port, 2, (int[]){1, -1}, 10, &msg);
    ck_assert_msg(rc == 0, "%s", msg);
    ck_assert_msg(strstr(msg, "dropping the connection from 127.0.0.1:") &&
                      strstr(msg, "it closed the connection before its hello"),
                  "%s", msg);
    free(msg);
}
END_TEST

/* A second connection claiming a rank that is connected is dropped; the
 * first keeps its place and gets the id. */
START_TEST(test_duplicate_rank_is_dropped)
{
    int port;
    int lfd = listen_any(&port);
    unsigned char h[16];
    hello(h, 0x50505242u, 1, 3, 1);
    int first = raw_connect(port, h, 16, false), second = raw_connect(port, h, 16, false);
    char *msg;
    int rc = serve_with_ranks(lfd, port, 3, (int[]){2, -1}, 10, &msg);
    ck_assert_msg(rc == 0, "%s", msg);
    ck_assert_msg(strstr(msg, "it claims to be rank 1, which is already connected from 127.0.0.1:"),
                  "%s", msg);
    ck_assert_int_eq(answer(first), 148);
    ck_assert_int_eq(answer(second), 0);
    free(msg);
}
END_TEST

/* A rank that said hello and then died frees its place for the real one. */
START_TEST(test_rank_that_died_is_replaced)
{
    int port;
    int lfd = listen_any(&port);
    unsigned char h[16];
    hello(h, 0x50505242u, 1, 3, 1);
    raw_connect(port, h, 16, true);
    char *msg;
    int rc = serve_with_ranks(lfd, port, 3, (int[]){1, 2, -1}, 10, &msg);
    ck_assert_msg(rc == 0, "%s", msg);
    ck_assert_msg(strstr(msg, "rank 1 closed its connection before the id was sent"), "%s", msg);
    free(msg);
}
END_TEST

/* A listening descriptor that is not a socket: an error at once, not a
 * busy loop until the deadline. */
START_TEST(test_listen_fd_not_a_socket)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/pp_boot_file_%d", (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert(fd >= 0);
    unlink(path);
    double t0 = pp_now();
    char *msg;
    ck_assert_int_eq(serve(fd, 2, 2, &msg), 1);
    ck_assert_msg(pp_now() - t0 < 1, "took %g s", pp_now() - t0);
    char want[96];
    snprintf(want, sizeof want, "bootstrap: descriptor %d is not a listening socket (", fd);
    ck_assert_msg(strstr(msg, want), "%s", msg);
    free(msg);
}
END_TEST

/* The missing ranks are all named (as ranges), or say how many more. */
START_TEST(test_missing_list_is_complete)
{
    int port;
    int lfd = listen_any(&port);
    char *msg;
    ck_assert_int_eq(serve(lfd, 64, 0.3, &msg), 1);
    ck_assert_msg(strstr(msg, "only 1 of 64 ranks connected within 0.3 s (missing: 1-63)\n"), "%s",
                  msg);
    free(msg);

    lfd = listen_any(&port);
    int fds[20], n = 0;
    for (int r = 2; r < 40; r += 2) { /* the even ranks come, the odd ones do not */
        unsigned char h[16];
        hello(h, 0x50505242u, 1, 40, (uint32_t)r);
        fds[n++] = raw_connect(port, h, 16, false);
    }
    ck_assert_int_eq(serve(lfd, 40, 0.5, &msg), 1);
    ck_assert_msg(strstr(msg, "only 20 of 40 ranks connected within 0.5 s (missing: 1, 3, 5, 7, 9, "
                              "11, 13, 15, 17, 19, 21, 23 and 8 more)\n"),
                  "%s", msg);
    for (int q = 0; q < n; q++) /* rank 0's reason, not the id */
        ck_assert_int_eq(answer(fds[q]), 24 + strlen("only 20 of 40 ranks connected within 0.5 s (missing: 1, 3, "
                                                     "5, 7, 9, 11, 13, 15, 17, 19, 21, 23 and 8 more)"));
    free(msg);
}
END_TEST

static const char *launch_vars[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                    "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
                                    "SLURM_LOCALID", "NCCL_COMM_ID", "PPRUN_BOOT_FD"};

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof launch_vars / sizeof *launch_vars; i++)
        unsetenv(launch_vars[i]);
}

static int from_env(pr_boot *b, int *local, char **msg)
{
    tu_diag td;
    tu_diag_open(&td);
    int rc = pr_boot_from_env(b, local, &td.diag);
    *msg = strdup(tu_diag_text(&td));
    tu_diag_close(&td);
    return rc;
}

START_TEST(test_launch_environment)
{
    pr_boot b;
    int local = -1;
    char *msg;
    clear_env();
    ck_assert_int_eq(from_env(&b, &local, &msg), 0); /* not launched */
    free(msg);
    /* half of torchrun's pair is an error, either half: not a one-process run of the whole plan */
    setenv("WORLD_SIZE", "4", 1);
    ck_assert_int_eq(from_env(&b, &local, &msg), -1);
    ck_assert_str_eq(msg, "ppcc: error: WORLD_SIZE is set but RANK is not\n"); /* the test diag's program name */
    free(msg);
    unsetenv("WORLD_SIZE");

    setenv("RANK", "3", 1), setenv("WORLD_SIZE", "8", 1), setenv("LOCAL_RANK", "1", 1);
    setenv("MASTER_ADDR", "node7", 1), setenv("MASTER_PORT", "29500", 1);
    ck_assert_int_eq(from_env(&b, &local, &msg), 1);
    ck_assert(b.rank == 3 && b.world == 8 && local == 1 && b.port == 29500 && b.listen_fd == -1);
    ck_assert_str_eq(b.host, "node7");
    free(msg);

    setenv("NCCL_COMM_ID", "10.0.0.2:4242", 1);
    ck_assert_int_eq(from_env(&b, &local, &msg), 1);
    ck_assert(b.port == 4242);
    ck_assert_str_eq(b.host, "10.0.0.2");
    free(msg);

    clear_env();
    setenv("SLURM_PROCID", "0", 1), setenv("SLURM_NTASKS", "2", 1), setenv("SLURM_LOCALID", "0", 1);
    ck_assert_int_eq(from_env(&b, &local, &msg), -1);
    ck_assert_msg(strstr(msg, "SLURM_PROCID/SLURM_NTASKS is set but MASTER_ADDR"), "%s", msg);
    free(msg);
    setenv("MASTER_ADDR", "10.1.1.1", 1), setenv("MASTER_PORT", "6000", 1);
    int port, lfd = listen_any(&port);
    char fd[16];
    snprintf(fd, sizeof fd, "%d", lfd);
    setenv("PPRUN_BOOT_FD", fd, 1);
    ck_assert_int_eq(from_env(&b, &local, &msg), 1);
    ck_assert(b.rank == 0 && b.world == 2 && local == 0 && b.listen_fd == lfd);
    free(msg);
    close(lfd);
    /* a descriptor that is not a listening socket (a file, a closed one) */
    setenv("PPRUN_BOOT_FD", "0", 1);
    ck_assert_int_eq(from_env(&b, &local, &msg), -1);
    ck_assert_msg(strstr(msg, "PPRUN_BOOT_FD=0 is not a listening socket ("), "%s", msg);
    free(msg);
    setenv("PPRUN_BOOT_FD", fd, 1);
    ck_assert_int_eq(from_env(&b, &local, &msg), -1);
    ck_assert_msg(strstr(msg, "is not a listening socket (Bad file descriptor)"), "%s", msg);
    free(msg);
    unsetenv("PPRUN_BOOT_FD");

    setenv("MASTER_PORT", "99999", 1);
    ck_assert_int_eq(from_env(&b, &local, &msg), -1);
    ck_assert_msg(strstr(msg, "MASTER_PORT must be a port number"), "%s", msg);
    free(msg);
    clear_env();
}
END_TEST

/* The documented srun line (--gpus-per-task 1) gives each task one GPU,
 * device 0 to it, while SLURM_LOCALID still counts 0..7: every rank uses
 * GPU 0.  A process that sees every GPU of the node uses its local rank's. */
START_TEST(test_rank_gpu_mapping)
{
    tu_diag td;
    tu_diag_open(&td);
    for (int local = 0; local < 8; local++) {
        ck_assert_int_eq(pr_rank_gpu(8 + local, local, 1, &td.diag), 0);
        ck_assert_int_eq(pr_rank_gpu(8 + local, local, 8, &td.diag), local);
    }
    ck_assert_str_eq(tu_diag_text(&td), "");
    ck_assert_int_eq(pr_rank_gpu(5, 3, 2, &td.diag), -1);
    ck_assert_msg(strstr(tu_diag_text(&td), "rank 5: local rank 3 but 2 GPUs are visible"), "%s",
                  tu_diag_text(&td));
    tu_diag_close(&td);
}
END_TEST

/* The pool is sized from the plan: the run allocates nothing beyond it,
 * and the sizes are what the op lists need (not zero). */
START_TEST(test_pool_sized_from_plan)
{
    static const char *plans[] = {"1f1b-2x4", "gpipe-4x8", "interleaved-2x2x4", "zb-2x4",
                                  "same-device-2x4"};
    for (size_t q = 0; q < sizeof plans / sizeof *plans; q++) {
        tg_spec s;
        ck_assert(tg_named(plans[q], &s));
        char *text = tg_plan_json(&s);
        pp_plan p;
        pr_model m;
        tu_diag td;
        tu_diag_open(&td);
        ck_assert(pr_plan_load_text("p.json", text, strlen(text), &td.diag, &p, &m) == 0);
        pr_run_opts o = {.steps = 3, .timeout = 10};
        pr_run_result r;
        ck_assert_msg(pr_replay(&p, &m, &o, &r, &td.diag) == 0, "%s", tu_diag_text(&td));
        for (int dv = 0; dv < p.devices; dv++) {
            ck_assert_msg(r.pool_misses[dv] == 0, "%s device %d allocated %d beyond the pool",
                          plans[q], dv, r.pool_misses[dv]);
            ck_assert_msg(r.pool_slots[dv] > 0, "%s device %d: empty pool", plans[q], dv);
        }
        pr_run_result_free(&r);
        tu_diag_close(&td);
        pp_plan_free(&p);
        pr_model_free(&m);
        free(text);
    }
}
END_TEST

/* A backend failure names the device, the call and the op being replayed. */
START_TEST(test_backend_error_names_op)
{
    pr_bctx c = {.rank = 2};
    pp_op op = {.kind = PP_OP_B, .stage = 3, .mb = 5, .peer = -1, .group = -1};
    c.op = &op;
    c.format_op = (const char *(*)(const void *, char *, size_t))pp_op_format;
    pr_bctx_fail(&c, "runtime/backend_cuda.cu:123 cublasSgemm", "failed (CUBLAS_STATUS_EXECUTION_FAILED)");
    pr_bctx_fail(&c, "later", "ignored");
    ck_assert_str_eq(c.err, "[device 2] runtime/backend_cuda.cu:123 cublasSgemm failed "
                            "(CUBLAS_STATUS_EXECUTION_FAILED) during B3.5");
}
END_TEST

/* A kernel fault surfaces at the flush's synchronisation: the message
 * names the op whose work the stream ran last, not only the flush. */
START_TEST(test_async_error_names_last_enqueued_op)
{
    pr_bctx c = {.rank = 1};
    pp_op flush = {.kind = PP_OP_FLUSH, .stage = -1, .mb = -1, .peer = -1, .group = -1};
    pp_op w = {.kind = PP_OP_W, .stage = 2, .mb = 7, .peer = -1, .group = -1};
    c.op = &flush;
    c.last_op = &w;
    c.format_op = (const char *(*)(const void *, char *, size_t))pp_op_format;
    pr_bctx_fail(&c, "runtime/backend_cuda.cu:400 cudaStreamSynchronize",
                 "failed (cudaErrorIllegalAddress: an illegal memory access was encountered)");
    ck_assert_str_eq(c.err, "[device 1] runtime/backend_cuda.cu:400 cudaStreamSynchronize failed "
                            "(cudaErrorIllegalAddress: an illegal memory access was encountered) "
                            "during flush (last work enqueued: W2.7)");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("bootstrap");
    TCase *tc = tcase_create("bootstrap");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_id_reaches_every_rank);
    tcase_add_loop_test(tc, test_id_reaches_a_dp_world, 0, (int)(sizeof grids / sizeof *grids));
    tcase_add_test(tc, test_rank_dying_in_bootstrap_is_named_everywhere);
    tcase_add_test(tc, test_ranks_retry_until_rank0_listens);
    tcase_add_test(tc, test_missing_rank_times_out_everywhere);
    tcase_add_test(tc, test_unreachable_rank0_times_out);
    tcase_add_test(tc, test_partial_reads_still_deliver);
    tcase_add_loop_test(tc, test_bad_hello_is_dropped, 0,
                        (int)(sizeof bad_hellos / sizeof *bad_hellos));
    tcase_add_test(tc, test_silent_client_does_not_block);
    tcase_add_test(tc, test_silent_client_is_dropped);
    tcase_add_test(tc, test_closed_client_is_dropped);
    tcase_add_test(tc, test_duplicate_rank_is_dropped);
    tcase_add_test(tc, test_rank_that_died_is_replaced);
    tcase_add_test(tc, test_listen_fd_not_a_socket);
    tcase_add_test(tc, test_missing_list_is_complete);
    tcase_add_test(tc, test_launch_environment);
    tcase_add_test(tc, test_rank_gpu_mapping);
    tcase_add_test(tc, test_pool_sized_from_plan);
    tcase_add_test(tc, test_backend_error_names_op);
    tcase_add_test(tc, test_async_error_names_last_enqueued_op);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(make_suite());
}
