/*
 * pprun_bench.c — measures the CPU runtime.
 *
 *   pprun_bench overhead PLAN.json [STEPS]   replay cost per op: best step
 *       time / the longest device list (run it on a plan with hidden 1, so
 *       compute is nearly free and what is left is hand-off and bookkeeping)
 *   pprun_bench gemm M N K [REPS]            GFLOP/s of the CPU backend's GEMM
 *   pprun_bench model PLAN.json [STEPS]      GFLOP/s a whole replay achieves
 *       (6 N H^2 L flops a step: x W forward, dz W^T and x^T dz backward)
 *   pprun_bench load PLAN.json [REPS]        best CPU time to load (read,
 *       check, verify) a plan (CPU time: the loader is one thread, and a
 *       shared machine inflates wall time), its op count, and the process's
 *       peak RSS (nothing else runs, so the peak is the loader's)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "backend.h"
#include "clock.h"
#include "pprun.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best step time over `steps` (the first step warms the pools). */
static int best_step(const char *path, int steps, pp_plan *p, pr_model *m, double *best)
{
    pp_diag d;
    pp_diag_init(&d, stderr, "pprun_bench");
    if (pr_plan_load_file(path, &d, p, m))
        return 1;
    pr_run_opts o = {.steps = steps, .timeout = 60};
    pr_run_result r;
    if (pr_replay(p, m, &o, &r, &d))
        return 1;
    *best = 1e300;
    for (int k = 1; k < steps; k++) {
        double end = k + 1 < steps ? r.step_start[k + 1] : r.seconds;
        double dt = end - r.step_start[k];
        if (dt < *best)
            *best = dt;
    }
    pr_run_result_free(&r);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && (strcmp(argv[1], "overhead") == 0 || strcmp(argv[1], "model") == 0)) {
        int steps = argc > 3 ? atoi(argv[3]) : 10;
        if (steps < 2)
            steps = 2;
        pp_plan p;
        pr_model m;
        double best;
        if (best_step(argv[2], steps, &p, &m, &best))
            return 1;
        int longest = 0;
        long total = 0;
        for (int dv = 0; dv < p.devices; dv++) {
            if (p.dev[dv].n > longest)
                longest = p.dev[dv].n;
            total += p.dev[dv].n;
        }
        if (strcmp(argv[1], "overhead") == 0) {
            printf("overhead: %d devices, %d micro-batches, hidden %d: best step %.3f ms, %d ops on "
                   "the longest device (%ld in all): %.3f us per op\n",
                   p.devices, p.microbatches, m.hidden, best * 1e3, longest, total,
                   best * 1e6 / longest);
        } else {
            double flops = 6.0 * m.batch * (double)m.hidden * m.hidden * m.layers;
            printf("model: %s, %d devices, %d micro-batches, %d layers x hidden %d, batch %d: best "
                   "step %.1f ms, %.2f GFLOP/s\n",
                   p.schedule, p.devices, p.microbatches, m.layers, m.hidden, m.batch, best * 1e3,
                   flops / best * 1e-9);
        }
        pp_plan_free(&p);
        pr_model_free(&m);
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "load") == 0) {
        int reps = argc > 3 ? atoi(argv[3]) : 3;
        if (reps < 1)
            return 2;
        double best = 1e300;
        long total = 0;
        for (int k = 0; k < reps; k++) {
            pp_diag d;
            pp_diag_init(&d, stderr, "pprun_bench");
            pp_plan p;
            pr_model m;
            double t0 = cpu_s();
            if (pr_plan_load_file(argv[2], &d, &p, &m))
                return 1;
            double dt = cpu_s() - t0;
            total = 0;
            for (int dv = 0; dv < p.devices; dv++)
                total += p.dev[dv].n;
            pp_plan_free(&p);
            pr_model_free(&m);
            if (dt < best)
                best = dt;
        }
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("load: %ld ops, best %.3f s CPU (%.3f us per op), peak RSS %.1f MB\n", total, best,
               best * 1e6 / total, ru.ru_maxrss / 1024.0);
        return 0;
    }
    if (argc >= 5 && strcmp(argv[1], "gemm") == 0) {
        int M = atoi(argv[2]), N = atoi(argv[3]), K = atoi(argv[4]);
        int reps = argc > 5 ? atoi(argv[5]) : 5;
        if (M < 1 || N < 1 || K < 1 || reps < 1)
            return 2;
        float *A = malloc((size_t)M * K * sizeof(float)), *B = malloc((size_t)K * N * sizeof(float));
        float *C = malloc((size_t)M * N * sizeof(float));
        for (size_t i = 0; i < (size_t)M * K; i++)
            A[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < (size_t)K * N; i++)
            B[i] = (float)(i % 5) * 0.1f;
        double best = 1e300;
        for (int r = 0; r < reps; r++) {
            double t0 = pp_now();
            pr_cpu_sgemm(M, N, K, A, B, C, 0);
            double dt = pp_now() - t0;
            if (dt < best)
                best = dt;
        }
        printf("gemm %dx%dx%d: best %.2f ms, %.2f GFLOP/s (C[0] = %g)\n", M, N, K, best * 1e3,
               2.0 * M * N * K / best * 1e-9, C[0]);
        free(A), free(B), free(C);
        return 0;
    }
    fprintf(stderr, "usage: pprun_bench overhead|model PLAN.json [STEPS] | load PLAN.json [REPS] | gemm M N K [REPS]\n");
    return 2;
}
