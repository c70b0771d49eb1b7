/*
 * main.c — the pprun command line: load (strictly, verified), replay on
 * the chosen backend, then what the user asked for: --check against
 * single-device training, --dump, --trace, --timeline.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pprun.h"

#define CHECK_TOLERANCE 1e-5

static void usage(FILE *f)
{
    fputs("usage: pprun PLAN.json [options]\n"
          "Replays a ppcc plan: one thread per device on the CPU.\n"
          "\n"
          "  --backend cpu|cuda  where compute runs (default cpu; cuda is not built in yet)\n"
          "  --steps N           training steps (default 1)\n"
          "  --check             compare with single-device full-batch training; exit 1 if the\n"
          "                      largest relative error of weights or biases exceeds 1e-5\n"
          "  --dump DIR          write x, t, w_init, b_init, w_final, b_final, loss as .npy\n"
          "  --trace FILE        write every op's measured start and end (Chrome trace JSON)\n"
          "  --timeline          draw the measured last step as a text timeline\n"
          "  --timeout S         seconds a receive may wait before the run fails (default 60)\n"
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

static int run_check(const pr_model *m, int steps, const pr_run_result *r)
{
    size_t h = (size_t)m->hidden, L = (size_t)m->layers;
    float *W = malloc(L * h * h * sizeof(float)), *b = malloc(L * h * sizeof(float));
    double *loss = malloc((size_t)steps * sizeof(double));
    pr_init_params(m, W, b);
    pr_reference_train(m, steps, W, b, loss);
    double ew = pr_max_rel_err(r->W, W, L * h * h), eb = pr_max_rel_err(r->b, b, L * h);
    double el = 0;
    for (int k = 0; k < steps; k++) {
        double e = fabs(r->loss[k] - loss[k]) / (fabs(loss[k]) > 0 ? fabs(loss[k]) : 1);
        if (e > el || isnan(e))
            el = isnan(e) ? INFINITY : e;
    }
    double worst = fmax(ew, eb);
    bool ok = worst <= CHECK_TOLERANCE && !isnan(worst);
    printf("check: largest relative error %.3g (weights %.3g, biases %.3g; loss %.3g) vs "
           "single-device training: %s (tolerance %g)\n",
           worst, ew, eb, el, ok ? "ok" : "FAILED", CHECK_TOLERANCE);
    free(W);
    free(b);
    free(loss);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    enum { OPT_BACKEND = 256, OPT_STEPS, OPT_CHECK, OPT_DUMP, OPT_TRACE, OPT_TIMEOUT, OPT_HELP,
           OPT_VERSION, OPT_TIMELINE };
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
        {NULL, 0, NULL, 0},
    };
    long steps = 1;
    double timeout = 60;
    bool check = false, timeline = false;
    const char *dump = NULL, *trace = NULL, *backend = "cpu";
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
        case OPT_VERSION: puts("pprun 0.1.0"); return 0;
        case ':': return usage_error("%s needs a value%s", argv[optind - 1], "");
        default: return usage_error("unknown option '%s'%s", argv[optind - 1], "");
        }
    }
    if (argc - optind != 1)
        return usage_error("expected one plan file, got %s%s", argc - optind ? "several" : "none",
                           "");
    const char *plan_path = argv[optind];

    pp_diag diag;
    pp_diag_init(&diag, stderr, "pprun");
    if (strcmp(backend, "cuda") == 0) {
        pp_error(&diag, "the cuda backend is not built in this binary");
        return 1;
    }
    pp_plan plan;
    pr_model model;
    if (pr_plan_load_file(plan_path, &diag, &plan, &model))
        return 1;

    pr_run_opts o = {.steps = (int)steps, .timeout = timeout, .record_all = trace != NULL,
                     .progress = stdout};
    pr_run_result r;
    int rc = pr_replay(&plan, &model, &o, &r, &diag);
    if (rc == 0) {
        printf("%d steps in %.3f s: %.0f samples/s\n", (int)steps, r.seconds,
               r.seconds > 0 ? steps * (double)model.batch / r.seconds : 0.0);
        if (trace && pr_write_trace(trace, &plan, &r, &diag))
            rc = 1;
        if (dump && pr_dump(dump, &model, (int)steps, &r, &diag))
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
            pr_measured_sim_free(&sim, plan.devices);
        }
        if (check && rc == 0)
            rc = run_check(&model, (int)steps, &r);
        pr_run_result_free(&r);
    }
    pp_plan_free(&plan);
    pr_model_free(&model);
    return rc;
}
