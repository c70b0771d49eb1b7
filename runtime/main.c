/*
 * main.c — the pprun command line: the options, checked where they are
 * parsed; the plan, loaded strictly and verified before anything else is
 * said or started; this process's part of the run (alone, a launcher of
 * --nproc ranks, or one rank of a multi-process run) and its backend and
 * transport; the outputs, checked before the run; the replay; then what
 * the user asked for: --trace, --dump, --timeline, --check (check.c).
 */
#include <errno.h>
#include <math.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "layer.h"
#include "pprun.h"
#include "rank_grid.h"
#include "transport.h"

static void usage(FILE *f)
{
    fputs("usage: pprun PLAN.json [options]    (PLAN.json '-': standard input)\n"
          "Replays a ppcc plan: one thread per device on the CPU, or on GPUs (every device\n"
          "in this process with the local transport, or one process per GPU with NCCL).\n"
          "\n"
          "  --backend cpu|cuda  where compute runs (default cuda when a GPU is visible, else cpu)\n"
          "  --precision fp32|tf32|bf16  GEMM precision on the GPU (default fp32, or a gpt\n"
          "                      plan's model.precision; bf16 keeps fp32 master weights and\n"
          "                      accumulates in fp32)\n"
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
          "  --width N, --compact  with --timeline: its width (40..1000, default 80), one\n"
          "                      character per op (as ppcc's)\n"
          "  --svg FILE, --html FILE  the measured last step as a picture (SVG, or a page)\n"
          "  --link-latency S, --link-bandwidth SIZE  cpu backend: emulate a link between\n"
          "                      devices; each transfer takes S seconds (default 0) + its bytes /\n"
          "                      SIZE per second (e.g. 100MB; default none), one at a time per\n"
          "                      directed link, and is received only once it has arrived\n"
          "  --timeout S         seconds a wait may last before the run fails (default 60): a\n"
          "                      receive, the barrier at a step's flush, a GPU step's\n"
          "                      communication, the multi-process bootstrap; an op that\n"
          "                      nothing waits for fails after max(S, 100 x the longest op so far)\n"
          "  --help, --version\n"
          "An option with a value is given once; '--' ends the options.\n",
          f);
}

static int __attribute__((format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
    fputs("pprun: error: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
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

/* The backend this process runs on, or NULL after an error.  An option
 * only a GPU run honours (precision_arg: --precision other than fp32;
 * --gpus above 1) is refused when the run would be on the CPU. */
static const pr_backend *choose_backend(const char *backend, bool multi, bool peers, const pr_boot *boot,
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
        if (!gpu_built)
            pp_error(d, "%s needs the cuda backend, which is not built in this binary", what);
        else if (cuda_err[0]) /* as --backend cuda says it: not "no GPU" */
            pp_error(d, "%s needs a GPU, and CUDA cannot start: %s", what, cuda_err);
        else
            pp_error(d, "%s needs a GPU and none is visible (the cpu backend computes in fp32, every "
                        "device in one process)", what);
        return NULL;
    }
    if (multi && cuda && peers) {
        pp_error(d, "rank %d of %d: PPRUN_PEER_FDS joins the ranks of a cpu run (pprun --nproc --backend "
                    "cpu), and this rank would run on the cuda backend", boot->rank, boot->world);
        return NULL;
    }
    if (multi && !cuda && !peers && !backend && cuda_err[0]) {
        pp_error(d, "rank %d of %d: a multi-process run under torchrun or srun needs the cuda backend, and "
                    "CUDA cannot start: %s", boot->rank, boot->world, cuda_err);
        return NULL;
    }
    if (multi && !cuda && !peers) {
        pp_error(d, "rank %d of %d: a multi-process run under torchrun or srun needs the cuda backend (no "
                    "GPU is visible here, or --backend cpu); the cpu backend runs one process a rank only "
                    "under pprun --nproc, which joins its ranks by socket pairs", boot->rank, boot->world);
        return NULL;
    }
    if (!backend && !cuda && cuda_err[0])
        fprintf(stderr, "pprun: CUDA cannot start (%s), running on the CPU\n", cuda_err);
    else if (!backend && !cuda && gpu_built && !multi)
        fputs("pprun: no GPU visible, running on the CPU\n", stderr);
    if (cuda && gpus > *gpu_count) {
        pp_error(d, "--gpus %ld: only %d GPU%s visible", gpus, *gpu_count,
                 *gpu_count == 1 ? " is" : "s are");
        return NULL;
    }
    if (multi && single_outputs) {
        pp_error(d, "--dump, --trace, --timeline, --svg and --html are for single-process runs");
        return NULL;
    }
    return be;
}

/* The command line, checked. */
typedef struct options {
    long steps, gpus, nproc;
    double timeout;
    double link_latency, link_bandwidth; /* 0: not given */
    bool check, timeline, graph, compact;
    long width; /* --timeline's, 0: 80 */
    int precision;
    const char *precision_arg; /* a precision other than fp32: only GPUs have one */
    const char *dump, *trace, *backend, *plan_path, *svg, *html;
    const char *given[20]; /* each value option's text as given, by its code - OPT_FIRST */
} options;

/* Outputs a multi-process run cannot write (each rank holds part of it). */
static bool single_outputs(const options *op) { return op->dump || op->trace || op->timeline || op->svg || op->html; }

/* Reads argv into op.  Returns -1 to go on, else the exit status (after
 * --help or --version, or a usage error). */
static int parse_options(int argc, char **argv, options *op)
{
    enum { OPT_FIRST = 256, OPT_BACKEND = OPT_FIRST, OPT_STEPS, OPT_CHECK, OPT_DUMP, OPT_TRACE, OPT_TIMEOUT,
           OPT_HELP, OPT_VERSION, OPT_TIMELINE, OPT_PRECISION, OPT_GPUS, OPT_NO_GRAPH, OPT_NPROC, OPT_SVG, OPT_HTML,
           OPT_WIDTH, OPT_COMPACT, OPT_LINK_LATENCY, OPT_LINK_BANDWIDTH, OPT_END };
    _Static_assert(OPT_END - OPT_FIRST <= 20, "options.given has a slot per option");
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
        {"svg", required_argument, NULL, OPT_SVG},
        {"width", required_argument, NULL, OPT_WIDTH},
        {"compact", no_argument, NULL, OPT_COMPACT},
        {"html", required_argument, NULL, OPT_HTML},
        {"link-latency", required_argument, NULL, OPT_LINK_LATENCY},
        {"link-bandwidth", required_argument, NULL, OPT_LINK_BANDWIDTH},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c, at;
    while ((c = getopt_long(argc, argv, ":", longopts, &at)) != -1) {
        /* An option with a value is given once: a second would silently win.
         * (A flag given twice says the same thing twice.) */
        if (c >= OPT_FIRST && c < OPT_END && longopts[at].has_arg) {
            const char **was = &op->given[c - OPT_FIRST];
            if (*was)
                return usage_error("--%s given twice ('%s', then '%s')", longopts[at].name, *was, optarg);
            *was = optarg;
        }
        switch (c) {
        case OPT_BACKEND:
            if (strcmp(optarg, "cpu") != 0 && strcmp(optarg, "cuda") != 0)
                return usage_error("--backend: '%s' is not cpu or cuda", optarg);
            op->backend = optarg;
            break;
        case OPT_STEPS:
            if (parse_positive_int(optarg, 1000000, &op->steps))
                return usage_error("--steps: '%s' is not an integer in 1..1000000", optarg);
            break;
        case OPT_TIMEOUT: {
            char *end;
            errno = 0;
            op->timeout = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(op->timeout > 0) || op->timeout > 1e6)
                return usage_error("--timeout: '%s' is not a number of seconds in (0, 1e6]", optarg);
            break;
        }
        case OPT_LINK_LATENCY: {
            char *end;
            errno = 0;
            op->link_latency = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(op->link_latency >= 0) || op->link_latency > 1000)
                return usage_error("--link-latency: '%s' is not a number of seconds in [0, 1000]", optarg);
            break;
        }
        case OPT_LINK_BANDWIDTH: {
            char why[128];
            if (!pp_bytes_parse(optarg, &op->link_bandwidth, why, sizeof why))
                return usage_error("--link-bandwidth: '%s': %s (bytes per second)", optarg, why);
            if (!(op->link_bandwidth > 0))
                return usage_error("--link-bandwidth: '%s': must be more than 0 bytes per second", optarg);
            break;
        }
        case OPT_PRECISION:
            if (strcmp(optarg, "fp32") == 0)
                op->precision = PR_FP32;
            else if (strcmp(optarg, "tf32") == 0)
                op->precision = PR_TF32;
            else if (strcmp(optarg, "bf16") == 0)
                op->precision = PR_BF16;
            else
                return usage_error("--precision: '%s' is not fp32, tf32 or bf16", optarg);
            op->precision_arg = op->precision == PR_FP32 ? NULL : optarg;
            break;
        case OPT_GPUS:
            if (parse_positive_int(optarg, 1024, &op->gpus))
                return usage_error("--gpus: '%s' is not an integer in 1..1024", optarg);
            break;
        case OPT_NPROC:
            if (parse_positive_int(optarg, 1024, &op->nproc))
                return usage_error("--nproc: '%s' is not an integer in 1..1024", optarg);
            break;
        case OPT_NO_GRAPH: op->graph = false; break;
        case OPT_CHECK: op->check = true; break;
        case OPT_TIMELINE: op->timeline = true; break;
        case OPT_COMPACT: op->compact = true; break;
        case OPT_WIDTH:
            if (parse_positive_int(optarg, 1000, &op->width) || op->width < 40)
                return usage_error("--width: '%s' is not an integer in 40..1000", optarg);
            break;
        case OPT_DUMP:
            if (!*optarg)
                return usage_error("%s", "--dump: empty directory name");
            op->dump = optarg;
            break;
        case OPT_TRACE:
            if (!*optarg)
                return usage_error("%s", "--trace: empty file name");
            op->trace = optarg;
            break;
        case OPT_SVG:
        case OPT_HTML:
            if (!*optarg)
                return usage_error("--%s: empty file name", longopts[at].name);
            *(c == OPT_SVG ? &op->svg : &op->html) = optarg;
            break;
        case OPT_HELP: usage(stdout); return 0;
        case OPT_VERSION:
            printf("pprun 0.1.0 (backends: cpu%s)\n", pr_backend_cuda() ? ", cuda" : "");
            return 0;
        case ':': return usage_error("%s needs a value", argv[optind - 1]);
        default: /* a short one may sit inside a word (-x.json): optopt names it */
            if (optopt)
                return usage_error("unknown option '-%c'", optopt);
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return usage_error("expected one plan file, got %s", argc - optind ? "several" : "none");
    op->plan_path = argv[optind];
    /* Options that contradict each other, whatever the machine: usage
     * errors (what the machine or the plan cannot honour is refused later,
     * exit 1).  An option a run satisfies by itself is not one of them:
     * --gpus 1, --precision fp32 and --no-graph on the CPU. */
    bool cpu = op->backend && strcmp(op->backend, "cpu") == 0;
    if (cpu && op->precision_arg)
        return usage_error("--precision %s: the cpu backend computes in fp32 (tf32 and bf16 are "
                           "GPU precisions)", op->precision_arg);
    if (cpu && op->gpus > 1)
        return usage_error("--gpus %ld: the cpu backend runs every device in one process, on no "
                           "GPU", op->gpus);
    if (op->nproc > 0 && op->gpus > 1)
        return usage_error("--gpus %ld: with --nproc each process runs on one GPU of its own", op->gpus);
    if (op->nproc > 0 && single_outputs(op))
        return usage_error("--nproc %ld: %s is for single-process runs (each rank holds only its part)",
                           op->nproc, op->dump ? "--dump" : op->trace ? "--trace" : op->timeline ? "--timeline"
                                      : op->svg ? "--svg" : "--html");
    if (op->nproc > 0 && strcmp(op->plan_path, "-") == 0)
        return usage_error("--nproc %ld: every process reads the plan, and standard input can be read "
                           "once: give a file", op->nproc);
    bool link = op->given[OPT_LINK_LATENCY - OPT_FIRST] || op->given[OPT_LINK_BANDWIDTH - OPT_FIRST];
    const char *link_opt = op->given[OPT_LINK_LATENCY - OPT_FIRST] ? "--link-latency" : "--link-bandwidth";
    if (link && ((op->backend && strcmp(op->backend, "cuda") == 0) || op->nproc > 0))
        return usage_error("%s: the emulated link is the cpu backend's (its threads transport); %s "
                           "runs on real links", link_opt, op->nproc > 0 ? "--nproc" : "--backend cuda");
    if ((op->width || op->compact) && !op->timeline)
        return usage_error("%s shapes the timeline, which only --timeline draws: give --timeline too",
                           op->width ? "--width" : "--compact");
    if (op->trace && strcmp(op->trace, "-") == 0)
        return usage_error("%s", "--trace -: standard output carries the progress lines; name a file");
    if ((op->svg && !strcmp(op->svg, "-")) || (op->html && !strcmp(op->html, "-")))
        return usage_error("--%s -: standard output carries the progress lines; name a file",
                           op->svg && !strcmp(op->svg, "-") ? "svg" : "html");
    return -1;
}

/* A run of a loaded plan by this process, from its setup to its reports. */
typedef struct session {
    const options *op;
    pp_plan *plan;
    pr_model *model;
    pp_diag *diag;
    /* This process's part: alone, or one rank of a multi-process run
     * (launched by pprun --nproc, torchrun or srun). */
    pr_boot boot;
    int local_rank, gpu_count;
    bool multi;
    const pr_backend *be;
    pp_outputs *outs;
    pp_output *trace_out, *dump_out, *svg_out, *html_out;
    pr_run_opts o;
    pr_transport *tr; /* NULL: the replay's in-process queues */
    bool *own;        /* multi: the layers this rank trains (NULL: all) */
    int *peer_fds;    /* multi on the cpu: its socket to each rank (pprun --nproc), else NULL */
    char **dump_names; /* the model's --dump files */
    bool has_loss;    /* this process holds every step's whole loss (multi: the reporting rank) */
    pr_grid grid;     /* the plan's world: devices x replicas (rank_grid.h) */
    int device;       /* multi: the pipeline device this rank runs (its replica's copy) */
    int precision;    /* what the GEMMs compute in: --precision, else a gpt plan's */
} session;

/* This process's part of the run and its backend; false after an error. */
static bool find_part(session *S)
{
    const options *op = S->op;
    int launched = pr_boot_from_env(&S->boot, &S->local_rank, S->diag);
    S->multi = launched > 0 && S->boot.world > 1;
    S->grid = (pr_grid){S->plan->devices, pp_plan_replicas(S->plan)};
    if (S->multi && pr_grid_world(S->grid) != S->boot.world) { /* docs/pprun.md, "Data parallelism" */
        if (S->grid.replicas > 1)
            pp_error(S->diag, "the plan has %d devices x %d replicas (data_parallel) = %d ranks, but the "
                              "run has %d", S->plan->devices, S->grid.replicas, pr_grid_world(S->grid),
                     S->boot.world);
        else
            pp_error(S->diag, "the plan has %d devices but the run has %d ranks", S->plan->devices,
                     S->boot.world);
        return false; /* before the backend: what is wrong with the launch first */
    }
    /* rank q runs on GPU q mod --gpus (docs/pprun.md, "Data parallelism"): every rank, replicas included */
    if (launched >= 0 && !S->multi && op->gpus > pr_grid_world(S->grid)) {
        if (S->grid.replicas > 1)
            pp_error(S->diag, "--gpus %ld: the plan has %d devices x %d replicas (data_parallel) = %d ranks, one GPU "
                              "at most each", op->gpus, S->plan->devices, S->grid.replicas, pr_grid_world(S->grid));
        else
            pp_error(S->diag, "--gpus %ld: the plan has %d device%s, one GPU at most each", op->gpus,
                     S->plan->devices, S->plan->devices == 1 ? "" : "s");
        launched = -1;
    }
    if (S->multi && pr_boot_peer_fds(&S->boot, &S->peer_fds, S->diag) < 0)
        return false;
    S->be = launched < 0 ? NULL
                         : choose_backend(op->backend, S->multi, S->peer_fds != NULL, &S->boot, op->precision_arg,
                                          op->gpus, single_outputs(op), &S->gpu_count, S->diag);
    if (!S->be)
        return false;
    if ((op->link_latency > 0 || op->link_bandwidth > 0) && S->be != pr_backend_cpu()) {
        pp_error(S->diag, "--link-%s: the emulated link is the cpu backend's, and this run is on a GPU "
                          "(give --backend cpu)", op->link_latency > 0 ? "latency" : "bandwidth");
        return false;
    }
    /* a transformer's plan names the precision it was planned for (docs/gpt.md) */
    S->precision = op->precision;
    int planned = S->model->kind == PR_MODEL_GPT ? S->model->gpt.precision : PR_FP32;
    if (!op->precision_arg && planned != PR_FP32) {
        if (S->be == pr_backend_cpu())
            pp_warning(S->diag, "model.precision is %s: the cpu backend computes in fp32",
                       planned == PR_BF16 ? "bf16" : "tf32");
        else
            S->precision = planned;
    }
    return true;
}

/* The files --dump writes: the model's. */
static const char *const *dump_files(session *S)
{
    S->dump_names = S->model->ops->dump_files(S->model);
    return (const char *const *)S->dump_names;
}

/* Outputs are checked, and their temporaries made, before the run
 * (output.h); false after an error. */
static bool open_outputs(session *S)
{
    const options *op = S->op;
    S->outs = pp_outputs_new(S->diag);
    bool ok = pp_outputs_input(S->outs, "the plan", op->plan_path) == 0 &&
              (!op->trace || (S->trace_out = pp_outputs_file(S->outs, "--trace", op->trace))) &&
              (!op->dump || (S->dump_out = pp_outputs_dir(S->outs, "--dump", op->dump, dump_files(S)))) &&
              (!op->svg || (S->svg_out = pp_outputs_file(S->outs, "--svg", op->svg))) &&
              (!op->html || (S->html_out = pp_outputs_file(S->outs, "--html", op->html)));
    if (ok && S->trace_out && pp_output_is_stdout(S->trace_out)) {
        pp_error(S->diag, "--trace %s: standard output carries the progress lines; name a file",
                 op->trace);
        ok = false;
    }
    pp_output *pic = S->svg_out && pp_output_is_stdout(S->svg_out) ? S->svg_out : S->html_out;
    if (ok && pic && pp_output_is_stdout(pic)) {
        pp_error(S->diag, "--%s %s: standard output carries the progress lines; name a file",
                 pic == S->svg_out ? "svg" : "html", pic == S->svg_out ? op->svg : op->html);
        ok = false;
    }
    return ok;
}

/* The run's options, and on a GPU its transport: for a rank of a
 * multi-process run the NCCL one (after the bootstrap hands every rank
 * rank 0's id), with the rank's GPU, layers and loss; else the local one.
 * Nonzero after an error. */
static int connect_ranks(session *S)
{
    const options *op = S->op;
    bool cuda = S->be != pr_backend_cpu();
    S->o = (pr_run_opts){.steps = (int)op->steps, .timeout = op->timeout, .record_all = op->trace != NULL,
                         .progress = stdout, .backend = S->be, .precision = S->precision,
                         .graph = cuda && op->graph && op->gpus == 1, .gpus = (int)op->gpus,
                         .output_bytes = op->dump ? S->model->ops->dump_bytes(S->model) : 0,
                         .link_latency = op->link_latency, .link_bandwidth = op->link_bandwidth};
    S->has_loss = true;
    char err[400] = "";
    int rc = 0;
    if (S->multi) {
        pr_boot *boot = &S->boot;
        boot->timeout = op->timeout;
        unsigned char id[128] = {0};
        int gpu = cuda ? pr_rank_gpu(boot->rank, S->local_rank, S->gpu_count, S->diag) : 0;
        if (gpu < 0) {
            rc = 1;
        } else if (cuda && boot->rank == 0 && pr_nccl_unique_id(id, err, sizeof err)) {
            pp_error(S->diag, "rank 0: %s", err);
            rc = 1;
        } else if (pr_boot_exchange(boot, id, sizeof id, S->diag)) { /* the cpu's: every rank is there */
            rc = 1;
        } else if (cuda && !(S->tr = pr_transport_nccl_create(boot->rank, boot->world, S->grid.replicas, gpu, id,
                                                               op->timeout, err, sizeof err))) {
            pp_error(S->diag, "rank %d: %s", boot->rank, err);
            rc = 1;
        } else if (!cuda) {
            S->tr = pr_transport_sockets_create(boot->rank, boot->world, S->grid.replicas, S->peer_fds, err,
                                                sizeof err);
            if (!S->tr) {
                pp_error(S->diag, "rank %d: %s", boot->rank, err);
                rc = 1;
            }
        }
        S->o.transport = S->tr;
        S->o.one_rank = true;
        S->o.rank = boot->rank;
        S->o.gpu_base = gpu;
        S->o.gpus = 1;
        free(S->peer_fds); /* the sockets are the transport's now (or close with the process) */
        S->peer_fds = NULL;
        S->o.graph = false;
        const pp_plan *plan = S->plan;
        const pr_model *model = S->model;
        S->device = pr_grid_device(S->grid, boot->rank);
        S->own = calloc((size_t)model->layers, sizeof(bool));
        for (int s = 0; s < plan->stages; s++)
            if (plan->placement[s] == S->device)
                for (int l = 0; l < model->layers_per_stage[s]; l++)
                    S->own[model->first_layer[s] + l] = true;
        /* the ranks holding losses send them to this one (step_losses.c) */
        S->has_loss = boot->rank == pr_reporting_rank(plan);
        if (!S->has_loss)
            S->o.progress = NULL; /* the rank with the loss reports the steps */
    } else if (cuda) {
        /* every rank of the world (each replica's devices) in this process */
        if (!(S->tr = pr_transport_local_create(S->plan->devices * pp_plan_replicas(S->plan), err, sizeof err))) {
            pp_error(S->diag, "%s", err);
            rc = 1;
        }
        S->o.transport = S->tr;
    }
    return rc;
}

/* --svg / --html: the measured last step, drawn by the compiler's picture. */
typedef struct pr_picture {
    const pp_plan *plan;
    const pp_sim *sim;
    pp_verify_opts mem;
} pr_picture;

static int pr_picture_svg(FILE *f, void *ctx)
{
    const pr_picture *p = ctx;
    return pp_emit_svg(f, p->plan, p->sim, &p->mem, "measured, microseconds", false);
}

static int pr_picture_html(FILE *f, void *ctx)
{
    const pr_picture *p = ctx;
    return pp_emit_svg(f, p->plan, p->sim, &p->mem, "measured, microseconds", true);
}

/* After a run that succeeded: the throughput and the weight versions, the
 * outputs put in place together (--trace and --dump, or neither), the
 * measured timeline, --check.  Returns the exit status. */
static int report(session *S, pr_run_result *r)
{
    const options *op = S->op;
    const pp_plan *plan = S->plan;
    int steps = (int)op->steps, rc = 0;
    if (S->has_loss)
        printf("%d steps in %.3f s: %.0f samples/s\n", steps, r->seconds,
               r->seconds > 0 ? steps * (double)S->model->batch / r->seconds : 0.0);
    if (plan->async != PP_ASYNC_NONE) { /* docs/async.md: what stashing costs */
        printf("weights (%s%s): peak versions per device", pp_async_name(plan->async),
               plan->vertical_sync ? ", vertical sync" : "");
        for (int d = 0; d < plan->devices; d++)
            if (!S->multi || d == S->device)
                printf(" %d", r->weight_versions[d]);
        printf("; extra weight memory (bytes)");
        for (int d = 0; d < plan->devices; d++)
            if (!S->multi || d == S->device)
                printf(" %.0f", r->extra_weight_bytes[d]);
        printf("\n");
    }
    /* --trace and --dump are in place together, or neither is; before --check, so that a
     * failed check leaves them to look at (docs/outputs.md, "All outputs of a run, or none") */
    pr_run_record rec = {plan, S->model, steps, r};
    if (S->trace_out)
        pp_output_fill(S->trace_out, pr_trace_fill, &rec);
    if (S->dump_out)
        pp_output_fill_dir(S->dump_out, S->model->ops->dump_fill, &rec);
    pp_sim measured = {0};
    pr_picture pic = {plan, &measured, {.act_size = S->model->act_size, .input_frac = S->model->input_frac}};
    if (S->svg_out || S->html_out)
        pr_measured_sim(plan, r, &measured);
    if (S->svg_out)
        pp_output_fill(S->svg_out, pr_picture_svg, &pic);
    if (S->html_out)
        pp_output_fill(S->html_out, pr_picture_html, &pic);
    if (pp_outputs_commit(S->outs))
        rc = 1;
    if (S->svg_out || S->html_out)
        pp_sim_free(&measured, plan->devices);
    if (op->timeline) {
        pp_sim sim;
        pr_measured_sim(plan, r, &sim);
        pp_timeline_opts to = {.width = op->width ? (int)op->width : 80, .compact = op->compact};
        printf("measured timeline of step %d (times in microseconds):\n", steps);
        fflush(stdout);
        if (pp_emit_timeline(stdout, plan, &sim, &to) != 0) {
            pp_error(S->diag, "the timeline renderer failed");
            rc = 1;
        }
        pp_sim_free(&sim, plan->devices);
    }
    if (op->check && rc == 0) {
        if (S->multi)
            printf("rank %d: ", S->boot.rank);
        rc = S->model->ops->check(plan, S->model, steps, r, pr_check_tolerance(S->precision), S->own,
                                  S->has_loss);
    }
    return rc;
}

/* The trained parameters are finite (a step whose loss was finite may
 * still have updated them to inf or NaN); else an error naming the layer. */
static bool params_finite(const session *S, const pr_run_result *r)
{
    const pr_model *m = S->model;
    for (int l = 0; l < m->layers; l++)
        for (size_t i = m->param_off[l]; i < m->param_off[l + 1]; i++)
            if (!isfinite(r->params[i])) {
                pp_error(S->diag, "step %ld of %ld: layer %d's parameters are no longer finite: the "
                         "training diverged (a smaller model.lr may help)", S->op->steps, S->op->steps, l);
                return false;
            }
    return true;
}

/* Runs the loaded plan in this process.  Returns the exit status. */
static int run_session(session *S)
{
    if (!find_part(S))
        return 1;
    int rc = 1;
    if (open_outputs(S) && connect_ranks(S) == 0 &&
        (!S->op->check || S->model->ops->check_fits(S->plan, S->model, (int)S->op->steps, S->diag))) {
        pr_run_result r;
        rc = pr_replay(S->plan, S->model, &S->o, &r, S->diag);
        if (rc == 0 && !params_finite(S, &r)) {
            pr_run_result_free(&r);
            rc = 1;
        } else if (rc == 0) {
            rc = report(S, &r);
            pr_run_result_free(&r);
        }
    }
    pp_outputs_free(S->outs);
    pr_names_free(S->dump_names);
    if (S->tr)
        S->tr->ops->destroy(S->tr);
    free(S->own);
    free(S->peer_fds);
    return rc;
}

int main(int argc, char **argv)
{
    options op = {.steps = 1, .gpus = 1, .timeout = 60, .graph = true, .precision = PR_FP32};
    int rc = parse_options(argc, argv, &op);
    if (rc >= 0)
        return rc;
    pp_diag diag;
    pp_diag_init(&diag, stderr, "pprun");
    /* The plan first: a bad one is refused before anything else is said or started. */
    pp_plan plan;
    pr_model model;
    if (pr_plan_load_file(op.plan_path, &diag, &plan, &model))
        return 1;
    if (pr_gpt_read_data(&model, &diag)) {
        rc = 1;
    } else if (op.nproc > 0) {
        rc = pr_launch_nproc(op.nproc, plan.devices, pp_plan_replicas(&plan), op.backend, argc, argv, &diag);
    } else {
        session S = {.op = &op, .plan = &plan, .model = &model, .diag = &diag};
        rc = run_session(&S);
    }
    pp_plan_free(&plan);
    pr_model_free(&model);
    return rc;
}
