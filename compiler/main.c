/*
 * main.c — the ppcc command line: parse, build the spec, run the policy,
 * lower communication, verify, simulate, then emit what was asked for.
 *
 * Exit status: 0 success, 1 an error in the input (file, -D, verifier) or
 * an output that cannot be written, 2 a usage error.  The outputs are
 * checked before any work and put in place together at the end, only when
 * everything succeeded (output.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "output.h"
#include "pp.h"

#define PPCC_VERSION "0.1.0"

enum { EXIT_INPUT = 1, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
    fputs("usage: ppcc FILE.pp [options]    (FILE.pp '-': standard input)\n"
          "\n"
          "Compiles a pipeline schedule into per-device op lists, verifies them\n"
          "(deadlock-free, matched, dependency-correct) and simulates them.\n"
          "\n"
          "options:\n"
          "  -D NAME=VALUE     override a setting of the file (devices, virtual, stages,\n"
          "                    microbatches, schedule, placement, layers, hidden, batch,\n"
          "                    lr, seed, cost.F, cost.B, cost.W, cost.comm,\n"
          "                    cost.stage.N.F, memory.limit, schedule.group, ...)\n"
          "  -o OUT            write the plan JSON to OUT ('-' for stdout)\n"
          "  --timeline        print the predicted timeline (no plan unless -o)\n"
          "  --stats           print a one-line summary (no plan unless -o)\n"
          "  --trace FILE      write the predicted timeline as a Chrome/Perfetto trace\n"
          "  --svg FILE        write the predicted timeline as a picture (SVG)\n"
          "  --html FILE       the same picture in a page that opens from disk\n"
          "  --measured TRACE  with --svg / --html: draw under the prediction the last\n"
          "                    step of a pprun --trace TRACE of this plan; with --stats:\n"
          "                    its makespan's and compute ops' error against the prediction\n"
          "  --emit torch-csv[=compute_only|compute_comms]\n"
          "                    -o writes PyTorch's schedule CSV instead of the plan\n"
          "                    (docs/torch.md).  FILE may be such a CSV (FILE.csv): its\n"
          "                    order is compiled as a custom one; --ranks N and\n"
          "                    --microbatches M check its shape\n"
          "  --emit megatron-layout\n"
          "                    -o writes a gpt's split of blocks over the stages as\n"
          "                    Megatron's --pipeline-model-parallel-layout string\n"
          "                    (docs/megatron.md)\n"
          "  --width N         with --timeline: its width in columns (default 80)\n"
          "  --compact         with --timeline: one character per op\n"
          "  --all-replicas    with --timeline and data_parallel: a lane per rank, every\n"
          "                    replica (default: one replica's devices)\n"
          "  --compare A,B,... compare policies on this file: one row each with makespan,\n"
          "                    bubble, peak memory per device, fit under memory.limit\n"
          "                    ('auto' allowed; writes no plan)\n"
          "  --shapes          the file's policy in its best shape (virtual 1 or 2, loop\n"
          "                    or vshape, recompute, balance; with schedule auto: every\n"
          "                    synchronous policy), reported on stderr, then compiled;\n"
          "                    with --compare: each policy of the list so\n"
          "  --sweep microbatches=A..B   (or =A,B,C) one row per value: makespan, bubble,\n"
          "                    throughput, peak memory, fit under memory.limit, the\n"
          "                    global batch kept (writes no plan)\n"
          "  --list-policies   list the scheduling policies and exit\n"
          "  -h, --help        show this help\n"
          "  --version         show the version\n"
          "\n"
          "Without -o, --timeline, --stats or --trace the plan goes to NAME.json,\n"
          "NAME being the schedule file's name without its directory and '.pp'\n"
          "(reading standard input, give -o).  An option with a value is given\n"
          "once (-D as often as needed: a later one wins); '--' ends the options.\n",
          f);
}

static int __attribute__((format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
    fputs("ppcc: error: ", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'ppcc --help' for more information.\n", stderr);
    return EXIT_USAGE;
}

/* An option that takes a value (-D aside) is given once: a second would
 * silently win.  Records it in *slot; a usage error if it was there. */
static int once(const char *name, const char **slot, const char *value)
{
    if (*slot)
        return usage_error("%s given twice ('%s', then '%s')", name, *slot, value);
    *slot = value;
    return -1;
}

/* A path option's value; "" names no file. */
static int path_once(const char *name, const char **slot, const char *value)
{
    if (!*value)
        return usage_error("%s: empty file name", name);
    return once(name, slot, value);
}

/* FILE.pp -> FILE.json in the current directory. */
static char *default_plan_path(const char *src)
{
    const char *base = strrchr(src, '/');
    base = base ? base + 1 : src;
    size_t n = strlen(base);
    if (n > 3 && strcmp(base + n - 3, ".pp") == 0)
        n -= 3;
    char *out = malloc(n + 6);
    if (out)
        snprintf(out, n + 6, "%.*s.json", (int)n, base);
    return out;
}

typedef struct emit_ctx {
    const pp_spec *spec;
    const pp_plan *plan;
    const pp_sim *sim;
    const pp_verify_opts *mem;
    int csv_format;
    const pp_sim *measured; /* --measured's step, NULL without */
} emit_ctx;

static int write_plan(FILE *f, void *ctx)
{
    const emit_ctx *e = ctx;
    return pp_emit_json(f, e->spec, e->plan, e->sim);
}

static int write_trace(FILE *f, void *ctx)
{
    const emit_ctx *e = ctx;
    /* one cost unit shows as 1 ms; seconds (a gpt on hardware) as themselves */
    return pp_emit_trace(f, e->plan, e->sim, e->sim->units.seconds ? 1e6 : 1000.0);
}

static int write_megatron_layout(FILE *f, void *ctx)
{
    const emit_ctx *e = ctx;
    return pp_megatron_layout_write(f, e->spec->model.layers_per_stage, e->spec->stages);
}

static int write_torch_csv(FILE *f, void *ctx)
{
    const emit_ctx *e = ctx;
    return pp_emit_torch_csv(f, e->plan, e->csv_format);
}

/* The prediction, and under it pprun's measured step when --measured gave one. */
static int write_picture(FILE *f, const emit_ctx *e, bool html)
{
    pp_svg_panel panels[2] = {{e->sim, "predicted"}, {e->measured, "measured by pprun, microseconds"}};
    return pp_emit_svg_panels(f, e->plan, panels, e->measured ? 2 : 1, e->mem, html);
}

static int write_svg(FILE *f, void *ctx) { return write_picture(f, ctx, false); }
static int write_html(FILE *f, void *ctx) { return write_picture(f, ctx, true); }

static void list_policies(void)
{
    for (const pp_policy *const *p = pp_policy_all(); *p; p++)
        printf("%-14s %s\n", (*p)->name, (*p)->summary);
}

/* Strict positive integer for a flag value. */
static bool parse_int_flag(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

enum {
    OPT_TIMELINE = 256, OPT_STATS, OPT_TRACE, OPT_WIDTH, OPT_COMPACT, OPT_ALL_REPLICAS, OPT_LIST, OPT_VERSION, OPT_COMPARE,
    OPT_SVG, OPT_HTML, OPT_EMIT, OPT_RANKS, OPT_MICROBATCHES, OPT_SWEEP, OPT_SHAPES, OPT_MEASURED
};

/* A --sweep has at most this many rows. */
#define MAX_SWEEP 4096

/* The command line, checked. */
typedef struct options {
    pp_define *defs; /* [argc]: room for every -D */
    int ndefs;
    const char *src_path, *out_path, *trace_path, *compare, *width, *sweep;
    const char *svg_path, *html_path, *emit, *ranks, *microbatches;
    const char *measured; /* --measured TRACE: pprun's trace, drawn under the prediction or held against it */
    int csv_format; /* --emit torch-csv: -o writes that format; -1: the plan */
    bool emit_layout; /* --emit megatron-layout: -o writes Megatron's layout string */
    int csv_ranks, csv_microbatches; /* a CSV input's declared shape, 0: as it is */
    int *sweep_values, nsweep; /* --sweep microbatches=...: the values, in order */
    bool timeline, stats, shapes;
    pp_timeline_opts topts;
    char *default_out; /* out_path when derived from the schedule's name */
} options;

/* --sweep microbatches=A..B or =A,B,C (the command line alone decides:
 * a usage error otherwise).  Returns -1 to go on, else the exit status. */
static int parse_sweep(const char *arg, options *o)
{
    const char *eq = strchr(arg, '=');
    if (!eq || (size_t)(eq - arg) != strlen("microbatches") || strncmp(arg, "microbatches", 12))
        return usage_error("--sweep expects microbatches=A..B or microbatches=A,B,...; got '%s' (only microbatches "
                           "can be swept)",
                           arg);
    const char *v = eq + 1, *dots = strstr(v, "..");
    o->sweep_values = malloc(MAX_SWEEP * sizeof *o->sweep_values);
    if (!o->sweep_values)
        pp_out_of_memory(MAX_SWEEP * sizeof *o->sweep_values, "the sweep's values");
    char buf[32];
    if (dots) {
        int a, b;
        snprintf(buf, sizeof buf, "%.*s", (int)(dots - v) < 31 ? (int)(dots - v) : 31, v);
        if (!parse_int_flag(buf, 1, PP_MAX_MICROBATCHES, &a) || !parse_int_flag(dots + 2, 1, PP_MAX_MICROBATCHES, &b))
            return usage_error("--sweep microbatches=A..B: A and B must be integers from 1 to %d, got '%s'",
                               PP_MAX_MICROBATCHES, v);
        if (a > b)
            return usage_error("--sweep microbatches=%d..%d: the range is empty (A must not be above B)", a, b);
        if (b - a + 1 > MAX_SWEEP)
            return usage_error("--sweep microbatches=%d..%d: %d rows, more than %d", a, b, b - a + 1, MAX_SWEEP);
        for (int m = a; m <= b; m++)
            o->sweep_values[o->nsweep++] = m;
        return -1;
    }
    for (const char *p = v;;) {
        size_t len = strcspn(p, ",");
        snprintf(buf, sizeof buf, "%.*s", len < 31 ? (int)len : 31, p);
        int m;
        if (len == 0 || len > 30 || !parse_int_flag(buf, 1, PP_MAX_MICROBATCHES, &m))
            return usage_error("--sweep microbatches=%s: each value must be an integer from 1 to %d, got '%.*s'", v,
                               PP_MAX_MICROBATCHES, (int)len, p);
        if (o->nsweep == MAX_SWEEP)
            return usage_error("--sweep microbatches=%s: more than %d values", v, MAX_SWEEP);
        o->sweep_values[o->nsweep++] = m;
        if (!p[len])
            break;
        p += len + 1;
    }
    return -1;
}

/* Reads argv into o.  Returns -1 to go on, else the exit status (after
 * --help and the like, or a usage error). */
static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"timeline", no_argument, NULL, OPT_TIMELINE},
        {"stats", no_argument, NULL, OPT_STATS},
        {"trace", required_argument, NULL, OPT_TRACE},
        {"width", required_argument, NULL, OPT_WIDTH},
        {"compact", no_argument, NULL, OPT_COMPACT},
        {"all-replicas", no_argument, NULL, OPT_ALL_REPLICAS},
        {"shapes", no_argument, NULL, OPT_SHAPES},
        {"list-policies", no_argument, NULL, OPT_LIST},
        {"compare", required_argument, NULL, OPT_COMPARE},
        {"svg", required_argument, NULL, OPT_SVG},
        {"html", required_argument, NULL, OPT_HTML},
        {"emit", required_argument, NULL, OPT_EMIT},
        {"ranks", required_argument, NULL, OPT_RANKS},
        {"microbatches", required_argument, NULL, OPT_MICROBATCHES},
        {"sweep", required_argument, NULL, OPT_SWEEP},
        {"measured", required_argument, NULL, OPT_MEASURED},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c, rc;
    while ((c = getopt_long(argc, argv, ":D:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'D': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return usage_error("-D expects NAME=VALUE, got '%s'", optarg);
            *eq = '\0';
            o->defs[o->ndefs].name = optarg;
            o->defs[o->ndefs].value = eq + 1;
            o->ndefs++;
            break;
        }
        case 'o':
            if ((rc = path_once("-o", &o->out_path, optarg)) >= 0)
                return rc;
            break;
        case OPT_TIMELINE:
            o->timeline = true;
            break;
        case OPT_STATS:
            o->stats = true;
            break;
        case OPT_TRACE:
            if ((rc = path_once("--trace", &o->trace_path, optarg)) >= 0)
                return rc;
            break;
        case OPT_WIDTH:
            if (!parse_int_flag(optarg, 40, 1000, &o->topts.width))
                return usage_error("--width expects an integer from 40 to 1000, got '%s'", optarg);
            if ((rc = once("--width", &o->width, optarg)) >= 0)
                return rc;
            break;
        case OPT_COMPACT:
            o->topts.compact = true;
            break;
        case OPT_ALL_REPLICAS:
            o->topts.all_replicas = true;
            break;
        case OPT_SHAPES:
            o->shapes = true;
            break;
        case OPT_SVG:
            if ((rc = path_once("--svg", &o->svg_path, optarg)) >= 0)
                return rc;
            break;
        case OPT_HTML:
            if ((rc = path_once("--html", &o->html_path, optarg)) >= 0)
                return rc;
            break;
        case OPT_MEASURED:
            if ((rc = path_once("--measured", &o->measured, optarg)) >= 0)
                return rc;
            break;
        case OPT_EMIT: {
            const char *fmt = !strcmp(optarg, "torch-csv") ? "compute_only"
                              : !strncmp(optarg, "torch-csv=", 10) ? optarg + 10
                                                                   : NULL;
            o->emit_layout = !strcmp(optarg, "megatron-layout");
            if (!o->emit_layout && (!fmt || (o->csv_format = pp_torch_csv_format_from_name(fmt)) < 0))
                return usage_error("--emit expects torch-csv, torch-csv=compute_only, torch-csv=compute_comms or "
                                   "megatron-layout, got '%s'", optarg);
            if ((rc = once("--emit", &o->emit, optarg)) >= 0)
                return rc;
            break;
        }
        case OPT_RANKS:
            if (!parse_int_flag(optarg, 1, PP_MAX_DEVICES, &o->csv_ranks))
                return usage_error("--ranks expects an integer from 1 to %d, got '%s'", PP_MAX_DEVICES, optarg);
            if ((rc = once("--ranks", &o->ranks, optarg)) >= 0)
                return rc;
            break;
        case OPT_MICROBATCHES:
            if (!parse_int_flag(optarg, 1, PP_MAX_MICROBATCHES, &o->csv_microbatches))
                return usage_error("--microbatches expects an integer from 1 to %d, got '%s'", PP_MAX_MICROBATCHES,
                                   optarg);
            if ((rc = once("--microbatches", &o->microbatches, optarg)) >= 0)
                return rc;
            break;
        case OPT_COMPARE:
            /* The list's shape is usage; whether each name is a policy is
             * the input's (pp_compare). */
            if (!*optarg || optarg[0] == ',' || optarg[strlen(optarg) - 1] == ',' || strstr(optarg, ",,"))
                return usage_error("--compare expects policy names separated by commas, got '%s'", optarg);
            if ((rc = once("--compare", &o->compare, optarg)) >= 0)
                return rc;
            break;
        case OPT_SWEEP:
            if ((rc = once("--sweep", &o->sweep, optarg)) >= 0 || (rc = parse_sweep(optarg, o)) >= 0)
                return rc;
            break;
        case OPT_LIST:
            list_policies();
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            puts("ppcc " PPCC_VERSION);
            return 0;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: /* a short one may sit inside a word (-x.pp): optopt names it */
            if (optopt)
                return usage_error("unknown option '-%c'", optopt);
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return usage_error("%s", optind >= argc ? "expected one schedule file (FILE.pp)"
                                                : "expected exactly one schedule file");
    o->src_path = argv[optind];
    if ((o->ranks || o->microbatches) && !pp_torch_csv_is_path(o->src_path))
        return usage_error("%s gives the shape of a PyTorch CSV (FILE.csv); a schedule file sets it with -D",
                           o->ranks ? "--ranks" : "--microbatches");
    if (o->emit && !o->out_path)
        return usage_error("--emit %s writes what -o OUT names: give -o", o->emit_layout ? "megatron-layout" : "torch-csv");
    if (o->compare && (o->svg_path || o->html_path || o->emit || o->measured))
        return usage_error("%s", "--compare prints its table alone: drop --svg, --html, --measured and --emit");
    if (o->compare && (o->out_path || o->timeline || o->stats || o->trace_path))
        /* --compare compiles each policy in its own shape: no one plan to emit. */
        return usage_error("%s", "--compare prints its table alone: drop -o, --timeline, --stats and --trace");
    if (o->sweep && (o->out_path || o->timeline || o->stats || o->trace_path || o->compare || o->shapes))
        return usage_error("%s", "--sweep prints its table alone: drop -o, --timeline, --stats, --trace, --compare and "
                                 "--shapes");
    if (o->measured && !o->svg_path && !o->html_path && !o->stats)
        return usage_error("%s", "--measured compares pprun's run with the prediction, drawn in a picture or "
                                 "reported by --stats: give --svg, --html or --stats");
    /* what shapes the timeline needs one */
    if ((o->width || o->topts.compact || o->topts.all_replicas) && !o->timeline)
        return usage_error("%s shapes the timeline, which only --timeline prints: give --timeline too",
                           o->width ? "--width" : o->topts.compact ? "--compact" : "--all-replicas");
    if (o->out_path && o->trace_path && !strcmp(o->out_path, "-") && !strcmp(o->trace_path, "-"))
        return usage_error("%s", "-o - and --trace - would both write to standard output");
    if (!o->out_path && !o->timeline && !o->stats && !o->trace_path && !o->compare && !o->svg_path && !o->html_path &&
        !o->sweep) {
        /* A schedule from standard input has no name to derive one from. */
        if (strcmp(o->src_path, "-") == 0)
            return usage_error("%s", "a schedule read from standard input ('-') needs -o OUT (or -o - for stdout)");
        o->default_out = default_plan_path(o->src_path);
        o->out_path = o->default_out;
    }
    return -1;
}

/* Compiles the schedule and writes what o asks for.  Returns the exit
 * status. */
static int compile(const options *o)
{
    pp_diag diag;
    pp_diag_init(&diag, stderr, "ppcc");
    pp_outputs *outs = pp_outputs_new(&diag);
    pp_output *plan_out = NULL, *trace_out = NULL, *svg_out = NULL, *html_out = NULL;
    pp_arena arena = {0};
    pp_ast ast;
    pp_spec spec;
    pp_plan plan = {0};
    pp_sim sim = {0}, measured = {0};
    bool have_sim = false, have_measured = false;
    int rc = EXIT_INPUT;
    pp_define *mb_defs = NULL; /* microbatches = auto: the command line's defs and the chosen row's */
    pp_define *shape_defs = NULL; /* --shapes: the defs and the winner's settings */
    pp_define *gpus_defs = NULL;  /* gpus = N: the defs and the chosen split's settings */

    /* Outputs are checked, and their temporaries made, before any work. */
    if (pp_outputs_input(outs, "the schedule", o->src_path) ||
        (o->measured && pp_outputs_input(outs, "--measured", o->measured)) ||
        (o->trace_path && !(trace_out = pp_outputs_file(outs, "--trace", o->trace_path))) ||
        (o->svg_path && !(svg_out = pp_outputs_file(outs, "--svg", o->svg_path))) ||
        (o->html_path && !(html_out = pp_outputs_file(outs, "--html", o->html_path))) ||
        (o->out_path && !(plan_out = pp_outputs_file(outs, o->out_path == o->default_out ? "the plan" : "-o",
                                                     o->out_path))))
        goto done;
    /* standard output carries a plan or a trace alone: the reports go to stderr */
    FILE *text = (plan_out && pp_output_is_stdout(plan_out)) ||
                         (trace_out && pp_output_is_stdout(trace_out)) ||
                         (svg_out && pp_output_is_stdout(svg_out)) || (html_out && pp_output_is_stdout(html_out))
                     ? stderr
                     : stdout;

    if (pp_torch_csv_is_path(o->src_path)) {
        /* A PyTorch CSV: its order, as the custom policy's, on a shape it implies. */
        if (pp_torch_csv_spec(o->src_path, o->csv_ranks, o->csv_microbatches, o->defs, o->ndefs, &arena, &diag,
                              &ast, &spec))
            goto done;
    } else {
        if (pp_parse_file(o->src_path, &arena, &diag, &ast))
            goto done;
        if (pp_spec_build(&ast, o->defs, o->ndefs, &arena, &diag, &spec))
            goto done;
    }
    const pp_define *defs = o->defs;
    int ndefs = o->ndefs;
    if (spec.gpus > 0) {
        /* the split of the GPUs is what everything else compiles (docs/auto.md) */
        int n;
        if (!(gpus_defs = pp_gpus_choose(stderr, &ast, defs, ndefs, &spec, &n, &diag)))
            goto done;
        defs = gpus_defs;
        ndefs = n;
        if (pp_spec_build(&ast, defs, ndefs, &arena, &diag, &spec))
            goto done;
    }
    if (o->sweep) {
        /* The table replaces the compilation, as --compare's */
        if (pp_sweep(stdout, &ast, defs, ndefs, &spec, o->sweep_values, o->nsweep, &diag) == 0 && fflush(stdout) == 0)
            rc = 0;
        goto done;
    }
    if (spec.microbatches_auto) {
        /* the chosen M's row is what the rest compiles (docs/costs.md) */
        int M, n;
        if (pp_microbatch_choose(&ast, defs, ndefs, &spec, &M, &diag))
            goto done;
        mb_defs = pp_microbatch_defs(defs, ndefs, &spec, M, &n);
        defs = mb_defs;
        ndefs = n;
        if (pp_spec_build(&ast, defs, ndefs, &arena, &diag, &spec))
            goto done;
    }
    if (o->compare) {
        /* The table replaces the compilation: no plan, no timeline. */
        if ((o->shapes ? pp_compare_shapes : pp_compare)(stdout, &ast, defs, ndefs, &spec, o->compare, &diag) == 0 &&
            fflush(stdout) == 0)
            rc = 0;
        goto done;
    }
    if (o->shapes) {
        /* the file's policy (auto: every one) in its best shape, then compiled as any file */
        int n;
        if (!(shape_defs = pp_shapes_choose(stderr, &ast, defs, ndefs, &spec, &n, &diag)))
            goto done;
        defs = shape_defs;
        ndefs = n;
        if (pp_spec_build(&ast, defs, ndefs, &arena, &diag, &spec))
            goto done;
    }
    if (pp_compile(&spec, &plan, &sim, &diag)) /* balance = auto's report, if any, on stderr */
        goto done;
    have_sim = true;
    if (o->measured) {
        if (pp_measured_read(o->measured, &plan, &sim, &measured, &diag))
            goto done;
        have_measured = true;
    }
    if (o->emit && (o->emit_layout ? pp_megatron_layout_check(&spec, &plan, &diag) : pp_torch_csv_check(&plan, &diag)))
        goto done;

    /* The outputs are committed last, so no error can come after they are in place. */
    pp_verify_opts mem = pp_verify_opts_of(&spec, true);
    emit_ctx ectx = {&spec, &plan, &sim, &mem, o->csv_format, have_measured ? &measured : NULL};
    if (o->timeline && pp_emit_timeline(text, &plan, &sim, &o->topts)) {
        pp_error(&diag, "cannot write the timeline");
        goto done;
    }
    if (o->stats && (pp_emit_stats(text, &plan, &sim) || (have_measured && pp_measured_report(text, &plan, &sim, &measured)))) {
        pp_error(&diag, "cannot write the stats");
        goto done;
    }
    if (fflush(text) != 0) {
        pp_error(&diag, "cannot write to standard %s", text == stdout ? "output" : "error");
        goto done;
    }
    if (trace_out)
        pp_output_fill(trace_out, write_trace, &ectx);
    if (svg_out)
        pp_output_fill(svg_out, write_svg, &ectx);
    if (html_out)
        pp_output_fill(html_out, write_html, &ectx);
    if (plan_out)
        pp_output_fill(plan_out, o->emit_layout ? write_megatron_layout : o->emit ? write_torch_csv : write_plan, &ectx);
    if (pp_outputs_commit(outs))
        goto done;
    rc = 0;
done:
    free(mb_defs);
    free(shape_defs);
    free(gpus_defs);
    pp_outputs_free(outs);
    if (have_sim)
        pp_sim_free(&sim, plan.devices);
    if (have_measured)
        pp_sim_free(&measured, plan.devices);
    pp_plan_free(&plan);
    pp_arena_free(&arena);
    return rc;
}

int main(int argc, char **argv)
{
    options o = {.topts = {.width = 80, .compact = false}, .csv_format = -1};
    o.defs = calloc((size_t)argc, sizeof *o.defs);
    if (!o.defs)
        return EXIT_INPUT;
    int rc = parse_options(argc, argv, &o);
    if (rc < 0)
        rc = compile(&o);
    free(o.default_out);
    free(o.sweep_values);
    free(o.defs);
    return rc;
}
