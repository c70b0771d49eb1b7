/*
 * launch.c — pprun --nproc N: one process per local GPU.  The parent opens
 * the bootstrap socket itself (port 0: the kernel picks a free one, and
 * rank 0 inherits the listening socket, so no other program can take the
 * port in between), then starts each rank as a fresh pprun with RANK,
 * WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set — the same
 * environment torchrun would give it.  The parent touches no GPU (it
 * counts them in /proc) and first refuses what every rank would fail on;
 * only when it refuses for too few GPUs does it ask CUDA why.
 * When a rank fails, the others are stopped: a pipeline cannot go on
 * without it.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "pprun.h"

int pr_launch_local(int nproc, char **argv, pp_diag *d)
{
    int port = 0;
    int lfd = pr_boot_listen("127.0.0.1", 0, &port, d);
    if (lfd < 0)
        return 1;
    pid_t *pid = calloc((size_t)nproc, sizeof *pid);
    int started = 0, status = 0;
    for (; started < nproc; started++) {
        pid_t p = fork();
        if (p < 0) {
            pp_error(d, "cannot start rank %d: %s", started, strerror(errno));
            status = 1;
            break;
        }
        if (p == 0) {
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
            execv("/proc/self/exe", argv);
            fprintf(stderr, "pprun: error: rank %d: cannot run /proc/self/exe: %s\n", started,
                    strerror(errno));
            _exit(127);
        }
        pid[started] = p;
    }
    close(lfd);
    int left = started;
    bool stopping = status != 0;
    if (stopping)
        for (int r = 0; r < started; r++)
            kill(pid[r], SIGTERM);
    while (left > 0) {
        int st;
        pid_t p = waitpid(-1, &st, 0);
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
        if (code != 0 && !stopping) {
            if (WIFEXITED(st))
                fprintf(stderr, "pprun: rank %d exited with status %d; stopping the others\n", r,
                        code);
            else
                fprintf(stderr, "pprun: rank %d was killed by signal %d; stopping the others\n", r,
                        WTERMSIG(st));
            stopping = true;
            status = code;
            for (int q = 0; q < started; q++)
                if (pid[q] > 0)
                    kill(pid[q], SIGTERM);
        }
    }
    free(pid);
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

int pr_launch_nproc(long nproc, int plan_devices, int replicas, int argc, char **argv, pp_diag *d)
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
    if (!pr_backend_cuda()) {
        pp_error(d, "--nproc: the cuda backend is not built in this binary");
        return 1;
    }
    int gpus = driver_gpu_count();
    if (gpus < nproc) {
        /* Refused, so nothing is forked: CUDA may now say why it sees too
         * few, as the default backend's notice does (not "no GPU" when the
         * driver is too old, say). */
        char cuda_err[200] = "";
        pr_cuda_device_count(cuda_err, sizeof cuda_err);
        if (cuda_err[0])
            pp_error(d, "--nproc %ld: CUDA cannot start: %s", nproc, cuda_err);
        else
            pp_error(d, "--nproc %ld: %d GPU%s visible, one per process is needed", nproc, gpus,
                     gpus == 1 ? " is" : "s are");
        return 1;
    }
    char **child = calloc((size_t)argc + 1, sizeof *child);
    if (!child) {
        pp_error(d, "out of memory");
        return 1;
    }
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--nproc") == 0) {
            i++;
            continue;
        }
        if (strncmp(argv[i], "--nproc=", 8) == 0)
            continue;
        child[n++] = argv[i];
    }
    int rc = pr_launch_local((int)nproc, child, d);
    free(child);
    return rc;
}
