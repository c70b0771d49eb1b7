/*
 * launch.c — pprun --nproc N: one process per local GPU.  The parent opens
 * the bootstrap socket itself (port 0: the kernel picks a free one, and
 * rank 0 inherits the listening socket, so no other program can take the
 * port in between), then starts each rank as a fresh pprun with RANK,
 * WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set — the same
 * environment torchrun would give it.  The parent touches no GPU (it
 * counts them in /proc) and first refuses what every rank would fail on;
 * only when it refuses for too few GPUs does it ask CUDA why.
 * On the cpu backend (docs/multinode.md, "The cpu backend") the parent
 * also joins every pair of ranks by a socket pair before the first fork,
 * and hands each rank its ends (PPRUN_PEER_FDS): the sockets transport's
 * connections, with nothing to address.
 * When a rank fails, the others are stopped: a pipeline cannot go on
 * without it.  A signal that ends the parent (SIGINT, SIGTERM, SIGHUP)
 * goes to the ranks first, and a rank whose parent is gone (killed by
 * SIGKILL) gets SIGTERM: no rank runs on, or waits out its timeout, alone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "clock.h"
#include "pprun.h"

/* The socket pairs joining every two of n ranks: pair[a * n + b] is a's
 * end of its connection to b (close-on-exec: a rank keeps only a dup of
 * its own).  Nonzero, with the error, when the descriptors run out. */
static int make_pairs(int n, int *pair, pp_diag *d)
{
    long need = (long)n * (n - 1) + 16;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < need) {
        if (rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max >= need)
            rl.rlim_cur = (rlim_t)need;
        else
            rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (int k = 0; k < n * n; k++)
        pair[k] = -1;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++) {
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
                pp_error(d, "--nproc %d: cannot join ranks %d and %d: %s (the cpu backend joins every two of "
                            "the %d ranks: %ld descriptors)", n, a, b, strerror(errno), n, need);
                for (int k = 0; k < n * n; k++)
                    if (pair[k] >= 0)
                        close(pair[k]);
                return 1;
            }
            pair[a * n + b] = sv[0];
            pair[b * n + a] = sv[1];
        }
    return 0;
}

/* In rank r's child: its own ends kept across the exec (the others close
 * there), listed in PPRUN_PEER_FDS by peer ("-" for itself).  No new
 * descriptor: the child holds no more than the parent's n (n - 1). */
static void hand_pairs(int n, int r, const int *pair)
{
    size_t cap = (size_t)n * 12 + 1, at = 0;
    char *list = malloc(cap);
    if (!list)
        _exit(127);
    list[0] = '\0';
    for (int q = 0; q < n; q++) {
        const char *sep = q ? "," : "";
        int fd = q == r ? -1 : pair[r * n + q];
        if (fd >= 0 && fcntl(fd, F_SETFD, 0) != 0) {
            fprintf(stderr, "pprun: error: rank %d: keeping its connection to rank %d: %s\n", r, q, strerror(errno));
            _exit(127);
        }
        if (q == r)
            at += (size_t)snprintf(list + at, cap - at, "%s-", sep);
        else
            at += (size_t)snprintf(list + at, cap - at, "%s%d", sep, fd);
    }
    setenv("PPRUN_PEER_FDS", list, 1);
    free(list);
}

/* The ranks started, for the signal handler (0: reaped). */
static pid_t *rank_pid;
static volatile sig_atomic_t ranks_started, stop_signal;
static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};

/* Stopping the ranks: SIGCONT first, so that a stopped one (SIGSTOP, a
 * debugger) takes the signal too; SIGKILL after STOP_GRACE_S. */
#define STOP_GRACE_S 5.0
static void stop_ranks(const pid_t *pid, int n, int sig)
{
    for (int r = 0; r < n; r++)
        if (pid[r] > 0) {
            kill(pid[r], sig);
            if (sig != SIGKILL)
                kill(pid[r], SIGCONT);
        }
}

static void forward(int sig)
{
    stop_signal = sig;
    for (int r = 0; r < ranks_started; r++)
        if (rank_pid[r] > 0)
            kill(rank_pid[r], sig);
}

int pr_launch_local(int nproc, char **argv, bool cpu, pp_diag *d)
{
    int port = 0;
    int *pair = NULL;
    if (cpu) {
        pair = calloc((size_t)nproc * (size_t)nproc, sizeof *pair);
        if (!pair) {
            pp_error(d, "--nproc %d: out of memory for the ranks' connections", nproc);
            return 1;
        }
        if (make_pairs(nproc, pair, d)) {
            free(pair);
            return 1;
        }
    }
    int lfd = pr_boot_listen("127.0.0.1", 0, &port, d);
    if (lfd < 0) {
        for (int k = 0; pair && k < nproc * nproc; k++)
            if (pair[k] >= 0)
                close(pair[k]);
        free(pair);
        return 1;
    }
    pid_t *pid = calloc((size_t)nproc, sizeof *pid);
    if (!pid) {
        pp_error(d, "out of memory");
        close(lfd);
        for (int k = 0; pair && k < nproc * nproc; k++)
            if (pair[k] >= 0)
                close(pair[k]);
        free(pair);
        return 1;
    }
    rank_pid = pid;
    ranks_started = 0;
    struct sigaction sa = {.sa_handler = forward}, old[3];
    sigemptyset(&sa.sa_mask);
    for (int k = 0; k < 3; k++) /* not one the caller ignores (nohup's SIGHUP) */
        if (sigaction(stop_signals[k], NULL, &old[k]) == 0 && !(old[k].sa_flags & SA_SIGINFO) &&
            old[k].sa_handler == SIG_DFL)
            sigaction(stop_signals[k], &sa, NULL);
    pid_t parent = getpid();
    int started = 0, status = 0;
    for (; started < nproc && !stop_signal; started++) {
        pid_t p = fork();
        if (p < 0) {
            pp_error(d, "cannot start rank %d: %s", started, strerror(errno));
            status = 1;
            break;
        }
        if (p == 0) {
            for (int k = 0; k < 3; k++) /* the rank's own: pprun's (its outputs' cleanup) */
                sigaction(stop_signals[k], &old[k], NULL);
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent) /* the parent went before the line above */
                _exit(1);
            char v[32];
            snprintf(v, sizeof v, "%d", started);
            setenv("RANK", v, 1);
            setenv("LOCAL_RANK", v, 1);
            snprintf(v, sizeof v, "%d", nproc);
            setenv("WORLD_SIZE", v, 1);
            setenv("MASTER_ADDR", "127.0.0.1", 1);
            snprintf(v, sizeof v, "%d", port);
            setenv("MASTER_PORT", v, 1);
            unsetenv("NCCL_COMM_ID");
            if (started == 0) {
                int fd = dup(lfd); /* without close-on-exec */
                snprintf(v, sizeof v, "%d", fd);
                setenv("PPRUN_BOOT_FD", v, 1);
            } else {
                unsetenv("PPRUN_BOOT_FD");
            }
            if (pair)
                hand_pairs(nproc, started, pair);
            else
                unsetenv("PPRUN_PEER_FDS");
            execv("/proc/self/exe", argv);
            fprintf(stderr, "pprun: error: rank %d: cannot run /proc/self/exe: %s\n", started,
                    strerror(errno));
            _exit(127);
        }
        pid[started] = p;
        ranks_started = started + 1;
    }
    close(lfd);
    for (int k = 0; pair && k < nproc * nproc; k++) /* the ranks hold them now: a rank's exit is its peers' EOF */
        if (pair[k] >= 0)
            close(pair[k]);
    free(pair);
    int left = started;
    bool stopping = false, killed = false;
    double stop_at = 0;
    while (left > 0) {
        if ((status != 0 || stop_signal) && !stopping) { /* a failed start, or a signal to the parent */
            stopping = true;
            stop_at = pp_now();
            stop_ranks(pid, started, SIGTERM);
        }
        if (stopping && !killed && pp_now() - stop_at > STOP_GRACE_S) {
            /* a rank that is stopped or ignores SIGTERM must not keep the parent waiting */
            fprintf(stderr, "pprun: %d rank%s still running %g s after SIGTERM: killing %s\n", left,
                    left == 1 ? "" : "s", STOP_GRACE_S, left == 1 ? "it" : "them");
            stop_ranks(pid, started, SIGKILL);
            killed = true;
        }
        int st;
        pid_t p = waitpid(-1, &st, stopping ? WNOHANG : 0);
        if (p == 0) {
            usleep(10000);
            continue;
        }
        if (p < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        int r = 0;
        while (r < started && pid[r] != p)
            r++;
        if (r == started)
            continue;
        pid[r] = 0;
        left--;
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (code != 0 && !stopping && !stop_signal) { /* (a signal stopped them all: said below) */
            if (WIFEXITED(st))
                fprintf(stderr, "pprun: rank %d exited with status %d; stopping the others\n", r,
                        code);
            else
                fprintf(stderr, "pprun: rank %d was killed by signal %d; stopping the others\n", r,
                        WTERMSIG(st));
            status = code;
            stopping = true;
            stop_at = pp_now();
            stop_ranks(pid, started, SIGTERM);
        }
    }
    for (int k = 0; k < 3; k++)
        sigaction(stop_signals[k], &old[k], NULL);
    rank_pid = NULL;
    free(pid);
    if (stop_signal) { /* the ranks are gone: end as the signal would have */
        fprintf(stderr, "pprun: stopped by signal %d, and every rank with it\n", (int)stop_signal);
        raise(stop_signal);
        return 128 + stop_signal;
    }
    return status;
}

/* GPUs the driver lists, read without initialising CUDA: the launcher
 * must not touch the GPU before it forks. */
static int driver_gpu_count(void)
{
    DIR *dir = opendir("/proc/driver/nvidia/gpus");
    if (!dir)
        return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(dir));)
        n += e->d_name[0] != '.';
    closedir(dir);
    return n;
}

int pr_launch_nproc(long nproc, int plan_devices, int replicas, const char *backend, int argc, char **argv,
                    pp_diag *d)
{
    long world = (long)plan_devices * (replicas > 1 ? replicas : 1); /* rank_grid.h */
    if (world != nproc) {
        if (replicas > 1)
            pp_error(d, "--nproc %ld: the plan has %d devices x %d replicas (data_parallel) = %ld ranks, "
                        "one process each", nproc, plan_devices, replicas, world);
        else
            pp_error(d, "--nproc %ld: the plan has %d devices, one process each", nproc, plan_devices);
        return 1;
    }
    /* The backend every rank takes: --backend; else a GPU a rank, or
     * with none at all the cpu, with the notice one process gives. */
    bool cpu = backend && strcmp(backend, "cpu") == 0;
    if (!cpu && backend && !pr_backend_cuda()) {
        pp_error(d, "--nproc: the cuda backend is not built in this binary");
        return 1;
    }
    int gpus = cpu || !pr_backend_cuda() ? 0 : driver_gpu_count();
    if (!cpu && gpus < nproc) {
        /* CUDA may now say why it sees too few (nothing is forked yet), as
         * the default backend's notice does (not "no GPU" when the driver
         * is too old, say) */
        char cuda_err[200] = "";
        int seen = pr_backend_cuda() ? pr_cuda_device_count(cuda_err, sizeof cuda_err) : 0;
        seen = seen > gpus ? seen : gpus;
        if (backend || seen > 0) { /* asked for GPUs, or has some: too few is an error */
            if (cuda_err[0])
                pp_error(d, "--nproc %ld: CUDA cannot start: %s", nproc, cuda_err);
            else
                pp_error(d, "--nproc %ld: %d GPU%s visible, one per process is needed", nproc, seen,
                         seen == 1 ? " is" : "s are");
            return 1;
        }
        if (cuda_err[0])
            fprintf(stderr, "pprun: CUDA cannot start (%s), running %ld processes on the CPU\n", cuda_err, nproc);
        else if (pr_backend_cuda())
            fprintf(stderr, "pprun: no GPU visible, running %ld processes on the CPU\n", nproc);
        cpu = true;
    }
    char **child = calloc((size_t)argc + 3, sizeof *child);
    if (!child) {
        pp_error(d, "out of memory");
        return 1;
    }
    int n = 0;
    child[n++] = argv[0];
    if (cpu && !backend) { /* the ranks take what the launcher chose */
        child[n++] = "--backend";
        child[n++] = "cpu";
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--nproc") == 0) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--nproc=", 8) == 0)
            continue;
        child[n++] = argv[i];
    }
    int rc = pr_launch_local((int)nproc, child, cpu, d);
    free(child);
    return rc;
}
