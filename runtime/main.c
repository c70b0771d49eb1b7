/*
 * main.c — the pprun command line: load (strictly, verified), replay on
 * the chosen backend, then what the user asked for: --check against
 * single-device training, --dump, --trace, --timeline.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "pprun.h"
#include "transport.h"

static void usage(FILE *f)
{
    fputs("usage: pprun PLAN.json [options]\n"
          "Replays a ppcc plan: one thread per device on the CPU, or on GPUs (every device\n"
          "in this process with the local transport, or one process per GPU with NCCL).\n"
          "\n"
          "  --backend cpu|cuda  where compute runs (default cuda when a GPU is visible, else cpu)\n"
          "  --precision fp32|tf32|bf16  GEMM precision on the GPU (default fp32; bf16 keeps\n"
          "                      fp32 master weights and accumulates in fp32)\n"
          "  --gpus N            local transport: spread the devices over N GPUs (default 1)\n"
          "  --no-graph          do not capture the step as a CUDA graph\n"
          "  --nproc N           run N processes, one per local GPU, joined by NCCL (also\n"
          "                      under torchrun/srun: RANK, WORLD_SIZE, MASTER_ADDR, ...)\n"
          "  --steps N           training steps (default 1)\n"
          "  --check             compare with single-device full-batch training; exit 1 if the\n"
          "                      largest relative error of weights or biases exceeds 1e-5\n"
          "                      (--precision bf16: 1e-2, tf32: 2e-2)\n"
          "  --dump DIR          write x, t, w_init, b_init, w_final, b_final, loss as .npy\n"
          "  --trace FILE        write every op's measured start and end (Chrome trace JSON)\n"
          "  --timeline          draw the measured last step as a text timeline\n"
          "  --timeout S         seconds a receive (or a GPU step's communication, or the\n"
          "                      multi-process bootstrap) may wait before the run fails (default 60)\n"
          "  --help, --version\n",
          f);
}

static int usage_error(const char *fmt, const char *a, const char *b)
{
    fputs("pprun: error: ", stderr);
    fprintf(stderr, fmt, a, b);
    fputs("\nTry 'pprun --help'.\n", stderr);
    return 2;
}

static int parse_positive_int(const char *s, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max)
        return 1;
    *out = v;
    return 0;
}

/* Keeps only the layers in `own` (all when NULL): the reference's and the
 * run's, packed to the front of both arrays.  Returns how many. */
static size_t keep_layers(const bool *own, size_t L, size_t per, float *ref, float *run)
{
    size_t n = 0;
    for (size_t l = 0; l < L; l++)
        if (!own || own[l]) {
            memmove(ref + n * per, ref + l * per, per * sizeof(float));
            memmove(run + n * per, run + l * per, per * sizeof(float));
            n++;
        }
    return n;
}

/* --check: own (NULL = all layers) says which layers this process trained;
 * with_loss whether it computed the loss. */
static int run_check(const pp_plan *p, const pr_model *m, int steps, pr_run_result *r,
                     double tolerance, const bool *own, bool with_loss)
{
    size_t h = (size_t)m->hidden, L = (size_t)m->layers;
    float *W = pr_calloc_or_exit(L * h * h, sizeof(float), "the reference's weights");
    float *b = pr_calloc_or_exit(L * h, sizeof(float), "the reference's biases");
    double *loss = pr_calloc_or_exit((size_t)steps, sizeof(double), "the reference's losses");
    pr_init_params(m, W, b);
    pp_diag dg;
    pp_diag_init(&dg, stderr, "pprun");
    if (pr_reference_train_async(p, m, steps, W, b, loss, &dg)) { /* docs/async.md */
        free(W);
        free(b);
        free(loss);
        return 1;
    }
    size_t n = keep_layers(own, L, h * h, W, r->W);
    keep_layers(own, L, h, b, r->b);
    double ew = pr_max_rel_err(r->W, W, n * h * h), eb = pr_max_rel_err(r->b, b, n * h);
    double el = 0;
    for (int k = 0; k < steps && with_loss; k++) {
        double e = fabs(r->loss[k] - loss[k]) / (fabs(loss[k]) > 0 ? fabs(loss[k]) : 1);
        if (e > el || isnan(e))
            el = isnan(e) ? INFINITY : e;
    }
    double worst = fmax(ew, eb);
    bool ok = worst <= tolerance && !isnan(worst);
    printf("check: largest relative error %.3g (weights %.3g, biases %.3g; loss %.3g) vs "
           "%s: %s (tolerance %g)\n",
           worst, ew, eb, el,
           p->async == PP_ASYNC_NONE ? "single-device training"
           : p->async == PP_ASYNC_2BW ? "the 2bw rule (docs/async.md)"
           : p->vertical_sync         ? "the pipedream vertical-sync rule (docs/async.md)"
                                      : "the pipedream rule (docs/async.md)",
           ok ? "ok" : "FAILED", tolerance);
    free(W);
    free(b);
    free(loss);
    return ok ? 0 : 1;
}

/* --check trains a single-device reference after the run, next to the
 * run's trained weights: refused before the run when that cannot fit. */
static bool check_fits(const pp_plan *p, const pr_model *m, int steps, pp_diag *d)
{
    double params = (double)m->layers * ((double)m->hidden * m->hidden + m->hidden) * sizeof(float);
    double need = pr_reference_bytes(p, m) + 2 * params + steps * 2.0 * sizeof(double);
    const char *limit;
    double left = pr_host_memory_left(&limit);
    if (need <= left)
        return true;
    char nb[32], lb[32];
    pp_error(d, "--check needs %s of memory for the single-device reference (the whole batch "
                "of %d rows through %d layers, and copies of the weights), more than the %s "
                "left under %s",
             pr_format_bytes(need, nb, sizeof nb), m->batch, m->layers,
             pr_format_bytes(left, lb, sizeof lb), limit);
    return false;
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

/* --nproc N: refuse what the children would all fail on, then start them. */
static int launch(long nproc, int plan_devices, const char *backend, bool single_outputs, int argc,
                  char **argv, pp_diag *d)
{
    if (single_outputs) {
        pp_error(d, "--dump, --trace and --timeline are for single-process runs");
        return 1;
    }
    if (backend && strcmp(backend, "cpu") == 0) {
        pp_error(d, "--nproc: a multi-process run needs the cuda backend; the cpu backend runs "
                    "every device in one process (drop --nproc)");
        return 1;
    }
    if (!pr_backend_cuda()) {
        pp_error(d, "--nproc: the cuda backend is not built in this binary");
        return 1;
    }
    if (plan_devices != nproc) {
        pp_error(d, "--nproc %ld: the plan has %d devices, one process each", nproc, plan_devices);
        return 1;
    }
    int gpus = driver_gpu_count();
    if (gpus < nproc) {
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

/* The backend this process runs on, or NULL after an error.  An option
 * only a GPU run honours (precision_arg: --precision other than fp32;
 * --gpus above 1) is refused when the run would be on the CPU. */
static const pr_backend *choose_backend(const char *backend, bool multi, const pr_boot *boot,
                                        const char *precision_arg, long gpus, bool single_outputs,
                                        int *gpu_count, pp_diag *d)
{
    if (multi && gpus > 1) {
        pp_error(d, "rank %d of %d: --gpus %ld: each rank of a multi-process run uses one GPU "
                    "(its LOCAL_RANK)", boot->rank, boot->world, gpus);
        return NULL;
    }
    const pr_backend *be = pr_backend_cpu();
    bool gpu_built = pr_backend_cuda() != NULL;
    char cuda_err[200] = ""; /* CUDA failed to start, for another reason than no device */
    *gpu_count = gpu_built ? pr_cuda_device_count(cuda_err, sizeof cuda_err) : 0;
    if (!backend) {
        if (*gpu_count > 0)
            be = pr_backend_cuda();
    } else if (strcmp(backend, "cuda") == 0) {
        if (!gpu_built) {
            pp_error(d, "the cuda backend is not built in this binary");
            return NULL;
        }
        if (cuda_err[0]) {
            pp_error(d, "--backend cuda: CUDA cannot start: %s", cuda_err);
            return NULL;
        }
        if (*gpu_count == 0) {
            pp_error(d, "--backend cuda: no GPU is visible");
            return NULL;
        }
        be = pr_backend_cuda();
    }
    bool cuda = be != pr_backend_cpu();
    if (!cuda && (precision_arg || gpus > 1)) {
        char what[64];
        if (precision_arg)
            snprintf(what, sizeof what, "--precision %s", precision_arg);
        else
            snprintf(what, sizeof what, "--gpus %ld", gpus);
        pp_error(d, gpu_built ? "%s needs a GPU and none is visible (the cpu backend computes "
                                "in fp32, every device in one process)"
                              : "%s needs the cuda backend, which is not built in this binary",
                 what);
        return NULL;
    }
    if (!backend && !cuda && cuda_err[0])
        fprintf(stderr, "pprun: CUDA cannot start (%s), running on the CPU\n", cuda_err);
    else if (!backend && !cuda && gpu_built)
        fputs("pprun: no GPU visible, running on the CPU\n", stderr);
    if (multi && !cuda) {
        pp_error(d, "rank %d of %d: a multi-process run needs the cuda backend (no GPU is "
                    "visible here, or --backend cpu); the cpu backend runs every device in "
                    "one process", boot->rank, boot->world);
        return NULL;
    }
    if (cuda && gpus > *gpu_count) {
        pp_error(d, "--gpus %ld: only %d GPU%s visible", gpus, *gpu_count,
                 *gpu_count == 1 ? " is" : "s are");
        return NULL;
    }
    if (multi && single_outputs) {
        pp_error(d, "--dump, --trace and --timeline are for single-process runs");
        return NULL;
    }
    return be;
}

int main(int argc, char **argv)
{
    enum { OPT_BACKEND = 256, OPT_STEPS, OPT_CHECK, OPT_DUMP, OPT_TRACE, OPT_TIMEOUT, OPT_HELP,
           OPT_VERSION, OPT_TIMELINE, OPT_PRECISION, OPT_GPUS, OPT_NO_GRAPH, OPT_NPROC };
    static const struct option longopts[] = {
        {"backend", required_argument, NULL, OPT_BACKEND},
        {"steps", required_argument, NULL, OPT_STEPS},
        {"check", no_argument, NULL, OPT_CHECK},
        {"dump", required_argument, NULL, OPT_DUMP},
        {"trace", required_argument, NULL, OPT_TRACE},
        {"timeline", no_argument, NULL, OPT_TIMELINE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {"precision", required_argument, NULL, OPT_PRECISION},
        {"gpus", required_argument, NULL, OPT_GPUS},
        {"no-graph", no_argument, NULL, OPT_NO_GRAPH},
        {"nproc", required_argument, NULL, OPT_NPROC},
        {NULL, 0, NULL, 0},
    };
    long steps = 1, gpus = 1, nproc = 0;
    double timeout = 60;
    bool check = false, timeline = false, graph = true;
    int precision = PR_FP32;
    const char *precision_arg = NULL; /* a precision other than fp32: only GPUs have one */
    const char *dump = NULL, *trace = NULL, *backend = NULL;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_BACKEND:
            if (strcmp(optarg, "cpu") != 0 && strcmp(optarg, "cuda") != 0)
                return usage_error("--backend: '%s' is not cpu or cuda%s", optarg, "");
            backend = optarg;
            break;
        case OPT_STEPS:
            if (parse_positive_int(optarg, 1000000, &steps))
                return usage_error("--steps: '%s' is not an integer in 1..1000000%s", optarg, "");
            break;
        case OPT_TIMEOUT: {
            char *end;
            errno = 0;
            timeout = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(timeout > 0) || timeout > 1e6)
                return usage_error("--timeout: '%s' is not a number of seconds in (0, 1e6]%s",
                                   optarg, "");
            break;
        }
        case OPT_PRECISION:
            if (strcmp(optarg, "fp32") == 0)
                precision = PR_FP32;
            else if (strcmp(optarg, "tf32") == 0)
                precision = PR_TF32;
            else if (strcmp(optarg, "bf16") == 0)
                precision = PR_BF16;
            else
                return usage_error("--precision: '%s' is not fp32, tf32 or bf16%s", optarg, "");
            precision_arg = precision == PR_FP32 ? NULL : optarg;
            break;
        case OPT_GPUS:
            if (parse_positive_int(optarg, 1024, &gpus))
                return usage_error("--gpus: '%s' is not an integer in 1..1024%s", optarg, "");
            break;
        case OPT_NPROC:
            if (parse_positive_int(optarg, 1024, &nproc))
                return usage_error("--nproc: '%s' is not an integer in 1..1024%s", optarg, "");
            break;
        case OPT_NO_GRAPH: graph = false; break;
        case OPT_CHECK: check = true; break;
        case OPT_TIMELINE: timeline = true; break;
        case OPT_DUMP:
            if (!*optarg)
                return usage_error("--dump: empty directory name%s%s", "", "");
            dump = optarg;
            break;
        case OPT_TRACE:
            if (!*optarg)
                return usage_error("--trace: empty file name%s%s", "", "");
            trace = optarg;
            break;
        case OPT_HELP: usage(stdout); return 0;
        case OPT_VERSION:
            printf("pprun 0.1.0 (backends: cpu%s)\n", pr_backend_cuda() ? ", cuda" : "");
            return 0;
        case ':': return usage_error("%s needs a value%s", argv[optind - 1], "");
        default: return usage_error("unknown option '%s'%s", argv[optind - 1], "");
        }
    }
    if (argc - optind != 1)
        return usage_error("expected one plan file, got %s%s", argc - optind ? "several" : "none",
                           "");
    const char *plan_path = argv[optind];
    /* options that would be silently ignored in the run asked for */
    bool cpu = backend && strcmp(backend, "cpu") == 0;
    char gpus_arg[24];
    snprintf(gpus_arg, sizeof gpus_arg, "%ld", gpus);
    if (cpu && precision_arg)
        return usage_error("--precision %s: the cpu backend computes in fp32 (tf32 and bf16 are "
                           "GPU precisions)%s", precision_arg, "");
    if (cpu && gpus > 1)
        return usage_error("--gpus %s: the cpu backend runs every device in one process, on no "
                           "GPU%s", gpus_arg, "");
    if (nproc > 0 && gpus > 1)
        return usage_error("--gpus %s: with --nproc each process runs on one GPU of its own%s",
                           gpus_arg, "");

    pp_diag diag;
    pp_diag_init(&diag, stderr, "pprun");
    /* The plan first: a bad one is refused before anything else is said or started. */
    pp_plan plan;
    pr_model model;
    if (pr_plan_load_file(plan_path, &diag, &plan, &model))
        return 1;
    if (nproc > 0) {
        int rc = launch(nproc, plan.devices, backend, dump || trace || timeline, argc, argv, &diag);
        pp_plan_free(&plan);
        pr_model_free(&model);
        return rc;
    }

    pr_boot boot;
    int local_rank = 0, gpu_count = 0;
    int launched = pr_boot_from_env(&boot, &local_rank, &diag);
    bool multi = launched > 0 && boot.world > 1;
    if (launched >= 0 && !multi && gpus > plan.devices) {
        pp_error(&diag, "--gpus %ld: the plan has %d device%s, one GPU at most each", gpus,
                 plan.devices, plan.devices == 1 ? "" : "s");
        launched = -1;
    }
    const pr_backend *be = launched < 0 ? NULL
                                        : choose_backend(backend, multi, &boot, precision_arg, gpus,
                                                         dump || trace || timeline, &gpu_count,
                                                         &diag);
    if (!be) {
        pp_plan_free(&plan);
        pr_model_free(&model);
        return 1;
    }
    bool cuda = be != pr_backend_cpu();

    if (multi && plan.devices != boot.world) {
        pp_error(&diag, "the plan has %d devices but the run has %d ranks", plan.devices,
                 boot.world);
        pp_plan_free(&plan);
        pr_model_free(&model);
        return 1;
    }

    /* Outputs are checked, and their temporaries made, before the run (output.h). */
    pp_outputs *outs = pp_outputs_new(&diag);
    pp_output *trace_out = NULL, *dump_out = NULL;
    bool outputs_ok = pp_outputs_input(outs, "the plan", plan_path) == 0 &&
                      (!trace || (trace_out = pp_outputs_file(outs, "--trace", trace))) &&
                      (!dump || (dump_out = pp_outputs_dir(outs, "--dump", dump, pr_dump_files)));
    if (outputs_ok && trace_out && pp_output_is_stdout(trace_out)) {
        pp_error(&diag, "--trace %s: standard output carries the progress lines; name a file",
                 trace);
        outputs_ok = false;
    }
    if (!outputs_ok) {
        pp_outputs_free(outs);
        pp_plan_free(&plan);
        pr_model_free(&model);
        return 1;
    }

    pr_run_opts o = {.steps = (int)steps, .timeout = timeout, .record_all = trace != NULL,
                     .progress = stdout, .backend = be, .precision = precision,
                     .graph = cuda && graph && gpus == 1, .gpus = (int)gpus};
    pr_transport *tr = NULL;
    char err[400] = "";
    int rc = 0;
    bool *own = NULL;
    bool has_loss = true;
    if (multi) {
        boot.timeout = timeout;
        unsigned char id[128] = {0};
        int gpu = pr_rank_gpu(boot.rank, local_rank, gpu_count, &diag);
        if (gpu < 0) {
            rc = 1;
        } else if (boot.rank == 0 && pr_nccl_unique_id(id, err, sizeof err)) {
            pp_error(&diag, "rank 0: %s", err);
            rc = 1;
        } else if (pr_boot_exchange(&boot, id, sizeof id, &diag)) {
            rc = 1;
        } else if (!(tr = pr_transport_nccl_create(boot.rank, boot.world, gpu, id, timeout, err,
                                                    sizeof err))) {
            pp_error(&diag, "rank %d: %s", boot.rank, err);
            rc = 1;
        }
        o.transport = tr;
        o.one_rank = true;
        o.rank = boot.rank;
        o.gpu_base = gpu;
        o.gpus = 1;
        o.graph = false;
        own = calloc((size_t)model.layers, sizeof(bool));
        for (int s = 0; s < plan.stages; s++)
            if (plan.placement[s] == boot.rank)
                for (int l = 0; l < model.layers_per_stage[s]; l++)
                    own[model.first_layer[s] + l] = true;
        has_loss = plan.placement[plan.stages - 1] == boot.rank;
        if (!has_loss)
            o.progress = NULL; /* the rank with the loss reports the steps */
    } else if (cuda) {
        if (!(tr = pr_transport_local_create(plan.devices, err, sizeof err))) {
            pp_error(&diag, "%s", err);
            rc = 1;
        }
        o.transport = tr;
    }

    pr_run_result r;
    if (rc == 0 && check && !check_fits(&plan, &model, (int)steps, &diag))
        rc = 1;
    if (rc == 0)
        rc = pr_replay(&plan, &model, &o, &r, &diag);
    if (rc == 0) {
        if (has_loss)
            printf("%d steps in %.3f s: %.0f samples/s\n", (int)steps, r.seconds,
                   r.seconds > 0 ? steps * (double)model.batch / r.seconds : 0.0);
        if (plan.async != PP_ASYNC_NONE) { /* docs/async.md: what stashing costs */
            printf("weights (%s%s): peak versions per device", pp_async_name(plan.async),
                   plan.vertical_sync ? ", vertical sync" : "");
            for (int d = 0; d < plan.devices; d++)
                if (!multi || d == boot.rank)
                    printf(" %d", r.weight_versions[d]);
            printf("; extra weight memory (bytes)");
            for (int d = 0; d < plan.devices; d++)
                if (!multi || d == boot.rank)
                    printf(" %.0f", r.extra_weight_bytes[d]);
            printf("\n");
        }
        /* --trace and --dump are in place together, or neither is */
        pr_run_record rec = {&plan, &model, (int)steps, &r};
        if (trace_out)
            pp_output_fill(trace_out, pr_trace_fill, &rec);
        if (dump_out)
            pp_output_fill_dir(dump_out, pr_dump_fill, &rec);
        if (pp_outputs_commit(outs))
            rc = 1;
        if (timeline) {
            pp_sim sim;
            pr_measured_sim(&plan, &r, &sim);
            pp_timeline_opts to = {.width = 80, .compact = false};
            printf("measured timeline of step %d (times in microseconds):\n", (int)steps);
            fflush(stdout);
            if (pp_emit_timeline(stdout, &plan, &sim, &to) != 0) {
                pp_error(&diag, "the timeline renderer failed");
                rc = 1;
            }
            pp_sim_free(&sim, plan.devices);
        }
        if (check && rc == 0) {
            if (multi)
                printf("rank %d: ", boot.rank);
            rc = run_check(&plan, &model, (int)steps, &r, pr_check_tolerance(precision), own,
                           has_loss);
        }
        pr_run_result_free(&r);
    }
    pp_outputs_free(outs);
    if (tr)
        tr->ops->destroy(tr);
    free(own);
    pp_plan_free(&plan);
    pr_model_free(&model);
    return rc;
}
