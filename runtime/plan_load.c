/*
 * plan_load.c — reads plan JSON v1 (docs/plan-format.md) strictly into a
 * pp_plan and a pr_model, then runs the verifier, so that a hand-edited
 * plan that would deadlock or break a dependency is refused before any
 * work starts.  The model is an mlp (docs/model.md) or a gpt (docs/gpt.md),
 * its settings checked against pp.h's limits, as ppcc checks them.
 *
 * The text is checked whole first (json.c: the JSON grammar, duplicate
 * keys, NUL bytes, nesting), then read in place, field by field, the ops
 * straight into the plan's lists: loading costs the text and the ops, and
 * time linear in both.  Every refusal names the JSON path of the field.
 * Unknown keys are allowed (fields may be added); unknown values are not.
 * A gpt with tie = true whose first and last stage sit on two ranks holds
 * one "allreduce" "tied" on each of them, once a step between the last
 * compute op and the update (docs/plan-format.md); anything else about an
 * allreduce is refused here, before the verifier's deadlock proof.  A
 * plan of data_parallel = R replicas (its rank grid, each list's ranks)
 * adds each stage's reductions over its device's replicas, whose places
 * the verifier checks.
 */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "json.h"
#include "layer.h"
#include "gpt_layers.h"
#include "pprun.h"

typedef struct loader {
    pp_diag *d;
    const char *file;
    long version; /* the plan's: a version-1 plan has no wait */
} loader;

#define FAIL(L, ...)                       \
    do {                                   \
        load_error((L), __VA_ARGS__);      \
        return 1;                          \
    } while (0)

static void __attribute__((format(printf, 2, 3))) load_error(loader *L, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pp_error(L->d, "%s: %s", L->file, msg);
}

static const char *type_name(pr_json j) { return pr_json_type_name(j.type); }

/* A string value as it may be shown in a message (clipped, control
 * characters escaped). */
typedef struct shown {
    char s[96];
} shown;
static shown show(pr_json j)
{
    shown b;
    pr_json_string(j, b.s, sizeof b.s, true);
    return b;
}

/* A string value to compare with names: false if it is longer than cap
 * allows, so it matches none. */
static bool name_of(pr_json j, char *buf, size_t cap) { return pr_json_string(j, buf, cap, false); }

/* The string value is want (a short name). */
static bool name_is(pr_json j, const char *want)
{
    char name[16];
    return name_of(j, name, sizeof name) && strcmp(name, want) == 0;
}

/* Paths are built only for messages: "path.key", or "key" at the top. */
#define SUBPATH(path, key) (path), *(path) && (key) ? "." : "", (key) ? (key) : ""

/* A required member `key` of the object at path, of type t. */
static bool member(loader *L, pr_json j, const char *path, const char *key, pr_json_type t,
                   const char *what)
{
    if (j.type == PR_JSON_NONE) {
        load_error(L, "%s%smissing field \"%s\"", path, *path ? ": " : "", key);
        return false;
    }
    if (j.type != t) {
        load_error(L, "%s%s%s: expected %s, got %s", SUBPATH(path, key), what, type_name(j));
        return false;
    }
    return true;
}

/* An optional member: absent, or of type t. */
static bool optional(loader *L, pr_json j, const char *path, const char *key, pr_json_type t,
                     const char *what)
{
    return j.type == PR_JSON_NONE || member(L, j, path, key, t, what);
}

/* An integer in [lo, hi] at path(.key) (checked on the double: plans come
 * from other writers too). */
static int int_value(loader *L, pr_json j, const char *path, const char *key, double lo, double hi,
                     const char *range_msg, long *out)
{
    if (j.type != PR_JSON_NUMBER)
        FAIL(L, "%s%s%s: expected an integer, got %s", SUBPATH(path, key), type_name(j));
    double v = pr_json_number(j);
    if (!isfinite(v) || v != floor(v))
        FAIL(L, "%s%s%s: %.17g is not an integer", SUBPATH(path, key), v);
    if (v < lo || v > hi) {
        if (range_msg)
            FAIL(L, "%s%s%s: %.17g %s", SUBPATH(path, key), v, range_msg);
        FAIL(L, "%s%s%s: %.17g is out of range [%.17g, %.17g]", SUBPATH(path, key), v, lo, hi);
    }
    *out = (long)v;
    return 0;
}

/* An integer that must be `want` (an entry of a fixed list): *eq says
 * whether it is; only a non-integer is an error here, so that any other
 * integer, negative or huge, gets the caller's "must be" message. */
static int int_is(loader *L, pr_json j, const char *path, long want, bool *eq)
{
    if (j.type != PR_JSON_NUMBER)
        FAIL(L, "%s: expected an integer, got %s", path, type_name(j));
    double v = pr_json_number(j);
    if (!isfinite(v) || v != floor(v))
        FAIL(L, "%s: %.17g is not an integer", path, v);
    *eq = v == (double)want;
    return 0;
}

/* What a device number out of range is called: with replicas the world
 * has more ranks than devices, and a list's rank, peers and placement name
 * pipeline devices of one replica (docs/plan-format.md, "Data
 * parallelism"), so "not a rank" would be wrong for a world rank. */
static const char *not_a_device(int replicas)
{
    return replicas > 1 ? "is not a device (with data_parallel the lists name the pipeline devices of one replica, "
                          "not world ranks)"
                        : "is not a rank";
}

static int int_member(loader *L, pr_json j, const char *path, const char *key, double lo, double hi,
                      const char *range_msg, long *out)
{
    if (j.type == PR_JSON_NONE)
        FAIL(L, "%s%smissing field \"%s\"", path, *path ? ": " : "", key);
    return int_value(L, j, path, key, lo, hi, range_msg, out);
}

/* pipeline.zero and pipeline.ranks of a plan of `replicas` (docs/plan-
 * format.md, "Data parallelism"): with more than one, zero a boolean and
 * ranks the grid, entry k [k / R, k mod R]; with one, neither (or zero
 * false). */
static int load_replicas(loader *L, pr_json zero, pr_json ranks, int replicas, pp_plan *plan)
{
    plan->replicas = replicas;
    if (!optional(L, zero, "pipeline", "zero", PR_JSON_BOOL, "a boolean"))
        return 1;
    plan->zero = pr_json_true(zero);
    if (replicas == 1) {
        if (plan->zero)
            FAIL(L, "pipeline.zero: true, but pipeline.data_parallel is 1: no replicas to shard over");
        if (ranks.type != PR_JSON_NONE)
            FAIL(L, "pipeline.ranks: a rank grid, but pipeline.data_parallel is 1 (the ranks are the devices)");
        return 0;
    }
    if (zero.type == PR_JSON_NONE)
        FAIL(L, "pipeline: missing field \"zero\" (data_parallel is %d)", replicas);
    if (plan->async == PP_ASYNC_PIPEDREAM)
        FAIL(L, "pipeline.data_parallel: %d replicas, but pipedream updates after every B: the replicas' sum "
                "comes once a step", replicas);
    if (!member(L, ranks, "pipeline", "ranks", PR_JSON_ARRAY, "an array"))
        return 1;
    long world = (long)plan->devices * replicas;
    if (world > PP_MAX_RANKS)
        FAIL(L, "pipeline.data_parallel: %d devices x %d replicas are %ld ranks, more than %d", plan->devices,
             replicas, world, PP_MAX_RANKS);
    if (pr_json_length(ranks) != world)
        FAIL(L, "pipeline.ranks: %d entries, the world is %d devices x %d replicas = %ld ranks",
             pr_json_length(ranks), plan->devices, replicas, world);
    pr_json_iter it = pr_json_elements(ranks);
    pr_json e;
    for (int k = 0; pr_json_next(&it, &e); k++) {
        char path[64];
        snprintf(path, sizeof path, "pipeline.ranks[%d]", k);
        pr_json_iter jt = pr_json_elements(e);
        pr_json x;
        bool same = true;
        int n = 0;
        if (e.type != PR_JSON_ARRAY)
            FAIL(L, "%s: expected an array [device, replica], got %s", path, type_name(e));
        for (; pr_json_next(&jt, &x) && n < 3; n++) {
            bool eq = false;
            if (n < 2 && int_is(L, x, path, n == 0 ? k / replicas : k % replicas, &eq))
                return 1;
            same = same && eq;
        }
        if (n != 2 || !same)
            FAIL(L, "%s: must be [%d, %d]: rank = device x %d + replica", path, k / replicas, k % replicas,
                 replicas);
    }
    return 0;
}

static int load_pipeline(loader *L, pr_json pl, pp_plan *plan)
{
    enum { DEVICES, STAGES, MBS, SCHEDULE, PLACEMENT, SPLIT, ASYNC, VSYNC, DP, ZERO, RANKS, MIRRORED, N };
    static const char *const keys[N] = {"devices",   "stages",         "microbatches", "schedule",
                                        "placement", "split_backward", "async",        "vertical_sync",
                                        "data_parallel", "zero", "ranks", "mirrored"};
    pr_json v[N];
    pr_json_members(pl, keys, N, v);
    long devices, stages, mbs, replicas = 1;
    /* docs/plan-format.md, "Data parallelism": absent = one replica */
    if (v[DP].type != PR_JSON_NONE &&
        int_value(L, v[DP], "pipeline.data_parallel", NULL, 1, PP_MAX_REPLICAS, NULL, &replicas))
        return 1;
    if (int_member(L, v[DEVICES], "pipeline", "devices", 1, PP_MAX_DEVICES, NULL, &devices) ||
        int_member(L, v[STAGES], "pipeline", "stages", 1, PP_MAX_STAGES, NULL, &stages) ||
        int_member(L, v[MBS], "pipeline", "microbatches", 1, PP_MAX_MICROBATCHES, NULL, &mbs))
        return 1;
    if (!member(L, v[SCHEDULE], "pipeline", "schedule", PR_JSON_STRING, "a string") ||
        !member(L, v[PLACEMENT], "pipeline", "placement", PR_JSON_ARRAY, "an array"))
        return 1;
    if (!optional(L, v[MIRRORED], "pipeline", "mirrored", PR_JSON_BOOL, "a boolean"))
        return 1;
    if (pr_json_true(v[MIRRORED]) && (stages % 2 || mbs % 2))
        FAIL(L, "pipeline.mirrored: true, but stages (%ld) and microbatches (%ld) must both be even: each of the two "
                "pipelines takes half (docs/dualpipe.md)", stages, mbs);
    int entries = pr_json_length(v[PLACEMENT]);
    if (entries != stages)
        FAIL(L, "pipeline.placement: %d entries, pipeline.stages is %ld", entries, stages);
    int *pv = malloc((size_t)stages * sizeof *pv);
    if (!pv)
        FAIL(L, "out of memory");
    pr_json_iter it = pr_json_elements(v[PLACEMENT]);
    pr_json e;
    for (int s = 0; pr_json_next(&it, &e); s++) {
        char path[64];
        long r;
        snprintf(path, sizeof path, "pipeline.placement[%d]", s);
        if (int_value(L, e, path, NULL, 0, devices - 1, not_a_device((int)replicas), &r)) {
            free(pv);
            return 1;
        }
        pv[s] = (int)r;
    }
    char schedule[sizeof plan->schedule];
    name_of(v[SCHEDULE], schedule, sizeof schedule);
    int rc = pp_plan_init(plan, schedule, (int)devices, (int)stages, (int)mbs, pv);
    free(pv);
    if (rc)
        FAIL(L, "out of memory");
    plan->mirrored = pr_json_true(v[MIRRORED]);
    if (!optional(L, v[SPLIT], "pipeline", "split_backward", PR_JSON_BOOL, "a boolean"))
        return 1;
    plan->split_backward = pr_json_true(v[SPLIT]);
    /* docs/async.md: absent = synchronous */
    if (!optional(L, v[ASYNC], "pipeline", "async", PR_JSON_STRING, "a string"))
        return 1;
    if (v[ASYNC].type != PR_JSON_NONE) {
        char name[16];
        plan->async = name_of(v[ASYNC], name, sizeof name) ? pp_async_from_name(name) : -1;
        if (plan->async < 0)
            FAIL(L, "pipeline.async: unknown \"%s\" (known: none, pipedream, 2bw)", show(v[ASYNC]).s);
        if (plan->async != PP_ASYNC_NONE && plan->split_backward)
            FAIL(L, "pipeline.async: %s needs an unsplit backward (split_backward is true)", name);
    }
    if (!optional(L, v[VSYNC], "pipeline", "vertical_sync", PR_JSON_BOOL, "a boolean"))
        return 1;
    plan->vertical_sync = pr_json_true(v[VSYNC]);
    if (plan->vertical_sync && plan->async != PP_ASYNC_PIPEDREAM)
        FAIL(L, "pipeline.vertical_sync: true needs \"async\": \"pipedream\" (docs/async.md)");
    return load_replicas(L, v[ZERO], v[RANKS], (int)replicas, plan);
}

/* The global batch splits into the replicas' shares, each into the
 * micro-batches (docs/dsl.md, "Data parallelism"). */
static int batch_split(loader *L, long batch, const pp_plan *plan)
{
    int R = pp_plan_replicas(plan);
    if (R == 1 && batch % plan->microbatches != 0)
        FAIL(L, "model.batch: %ld is not a multiple of pipeline.microbatches (%d)", batch, plan->microbatches);
    if (R > 1 && batch % ((long)plan->microbatches * R) != 0)
        FAIL(L, "model.batch: %ld is not a multiple of pipeline.data_parallel x pipeline.microbatches (%d x %d)",
             batch, R, plan->microbatches);
    return 0;
}

/* memory.KEY, optional: n non-negative numbers into a new *out. */
static int load_sizes(loader *L, pr_json arr, const char *key, int n, double **out)
{
    if (arr.type == PR_JSON_NONE)
        return 0;
    if (arr.type != PR_JSON_ARRAY)
        FAIL(L, "memory.%s: expected an array, got %s", key, type_name(arr));
    int entries = pr_json_length(arr);
    if (entries != n)
        FAIL(L, "memory.%s: %d entries, expected %d", key, entries, n);
    *out = pp_xcalloc((size_t)n, sizeof **out, "the plan's memory sizes");
    pr_json_iter it = pr_json_elements(arr);
    pr_json e;
    for (int i = 0; pr_json_next(&it, &e); i++) {
        double x = pr_json_number(e);
        if (e.type != PR_JSON_NUMBER || !(x >= 0) || !isfinite(x))
            FAIL(L, "memory.%s[%d]: expected a non-negative number", key, i);
        (*out)[i] = x;
    }
    return 0;
}

static int load_memory(loader *L, pr_json mem, const pp_plan *plan, pr_model *m)
{
    m->act_size = 1;
    m->mem_limit = 0;
    if (mem.type == PR_JSON_NONE)
        return 0;
    if (mem.type != PR_JSON_OBJECT)
        FAIL(L, "memory: expected an object, got %s", type_name(mem));
    enum { ACT, LIMIT, INPUT, STAGE_ACT, STAGE_INPUT, STATIC, N };
    static const char *const keys[N] = {"activation", "limit", "input", "stage_activation", "stage_input", "static"};
    pr_json v[N];
    pr_json_members(mem, keys, N, v);
    /* With layers (docs/costs.md): sizes per stage, static memory per device, all three. */
    if (load_sizes(L, v[STAGE_ACT], "stage_activation", plan->stages, &m->stage_act) ||
        load_sizes(L, v[STAGE_INPUT], "stage_input", plan->stages, &m->stage_input) ||
        load_sizes(L, v[STATIC], "static", plan->devices, &m->static_mem))
        return 1;
    if ((m->stage_act != NULL) != (m->stage_input != NULL) || (m->stage_act != NULL) != (m->static_mem != NULL))
        FAIL(L, "memory: stage_activation, stage_input and static come together (docs/plan-format.md)");
    m->devices = plan->devices;
    double a = pr_json_number(v[ACT]), lim = pr_json_number(v[LIMIT]), in = pr_json_number(v[INPUT]);
    if (v[ACT].type != PR_JSON_NONE && (v[ACT].type != PR_JSON_NUMBER || !(a >= 0) || !isfinite(a)))
        FAIL(L, "memory.activation: expected a non-negative number");
    if (v[LIMIT].type != PR_JSON_NONE && (v[LIMIT].type != PR_JSON_NUMBER || !(lim >= 0) || !isfinite(lim)))
        FAIL(L, "memory.limit: expected a non-negative number");
    if (v[INPUT].type != PR_JSON_NONE && (v[INPUT].type != PR_JSON_NUMBER || !(in >= 0 && in <= 1)))
        FAIL(L, "memory.input: expected a number between 0 and 1");
    if (v[ACT].type != PR_JSON_NONE)
        m->act_size = a;
    if (v[LIMIT].type != PR_JSON_NONE)
        m->mem_limit = lim;
    if (v[INPUT].type != PR_JSON_NONE)
        m->input_frac = in;
    return 0;
}

/* model.KEY: the per-stage counts (layers of an mlp, blocks of a gpt): one
 * per stage, summing to model.layers; a gpt's first and last stage, which
 * hold the embedding and the head, may hold none. */
static int load_per_stage(loader *L, pr_json arr, const char *key, const pp_plan *plan, long layers, bool gpt,
                          pr_model *m)
{
    if (!member(L, arr, "model", key, PR_JSON_ARRAY, "an array"))
        return 1;
    int entries = pr_json_length(arr);
    if (entries != plan->stages)
        FAIL(L, "model.%s: %d entries, pipeline.stages is %d", key, entries, plan->stages);
    m->stages = plan->stages;
    m->mirrored = plan->mirrored;
    m->layers_per_stage = calloc((size_t)plan->stages, sizeof(int));
    m->first_layer = calloc((size_t)plan->stages, sizeof(int));
    if (!m->layers_per_stage || !m->first_layer)
        FAIL(L, "out of memory");
    long sum = 0;
    int H = plan->mirrored ? plan->stages / 2 : plan->stages; /* mirrored: stage H + s is a copy of stage s */
    pr_json_iter it = pr_json_elements(arr);
    pr_json e;
    for (int s = 0; pr_json_next(&it, &e); s++) {
        char path[64];
        long k;
        snprintf(path, sizeof path, "model.%s[%d]", key, s);
        if (int_value(L, e, path, NULL, gpt ? 0 : 1, layers, NULL, &k))
            return 1;
        if (gpt && k == 0 && s % H > 0 && s % H < H - 1)
            FAIL(L, "%s: 0, but only the first and the last stage%s may hold no block", path,
                 plan->mirrored ? " of each pipeline" : "");
        if (s >= H) {
            if (k != m->layers_per_stage[s - H])
                FAIL(L, "%s: %ld, but stage %d of a mirrored plan is a copy of stage %d, which holds %d", path, k, s,
                     s - H, m->layers_per_stage[s - H]);
            m->first_layer[s] = m->first_layer[s - H];
            m->layers_per_stage[s] = (int)k;
            continue;
        }
        m->first_layer[s] = (int)sum;
        m->layers_per_stage[s] = (int)k;
        sum += k;
    }
    if (sum != layers)
        FAIL(L, "model.%s: %ssums to %ld, model.layers is %ld", key,
             plan->mirrored ? "the first half (one pipeline's stages) " : "", sum, layers);
    return 0;
}

static int load_mlp(loader *L, pr_json mo, const pp_plan *plan, pr_model *m)
{
    enum { LAYERS, HIDDEN, BATCH, SEED, OPTIMIZER, LR, LPS, N };
    static const char *const keys[N] = {"layers", "hidden", "batch", "seed", "optimizer", "lr", "layers_per_stage"};
    pr_json v[N];
    pr_json_members(mo, keys, N, v);
    long layers, hidden, batch, seed;
    if (int_member(L, v[LAYERS], "model", "layers", 1, PP_MAX_LAYERS, NULL, &layers) ||
        int_member(L, v[HIDDEN], "model", "hidden", 1, PP_MAX_HIDDEN, NULL, &hidden) ||
        int_member(L, v[BATCH], "model", "batch", 1, PP_MAX_BATCH, NULL, &batch) ||
        int_member(L, v[SEED], "model", "seed", 0, PP_MAX_SEED, NULL, &seed))
        return 1;
    if (batch_split(L, batch, plan))
        return 1;
    if (!member(L, v[OPTIMIZER], "model", "optimizer", PR_JSON_STRING, "a string") ||
        !member(L, v[LR], "model", "lr", PR_JSON_NUMBER, "a number"))
        return 1;
    if (!name_is(v[OPTIMIZER], "sgd"))
        FAIL(L, "model.optimizer: unknown optimizer \"%s\" (this pprun knows \"sgd\")",
             show(v[OPTIMIZER]).s);
    double lr = pr_json_number(v[LR]);
    if (!isfinite(lr) || lr < 0)
        FAIL(L, "model.lr: %g is not a finite non-negative number", lr);
    m->kind = PR_MODEL_MLP;
    m->layers = (int)layers;
    m->hidden = (int)hidden;
    m->batch = (int)batch;
    m->lr = lr;
    m->seed = (uint64_t)seed;
    if (load_per_stage(L, v[LPS], "layers_per_stage", plan, layers, false, m))
        return 1;
    if ((double)layers * (double)hidden * (double)hidden > (double)PP_MAX_WEIGHT_FLOATS)
        FAIL(L, "model: %ld layers of %ld x %ld weights are more than this pprun holds (%ld floats)",
             layers, hidden, hidden, PP_MAX_WEIGHT_FLOATS);
    if ((double)batch / plan->microbatches * (double)hidden > (double)PP_MAX_MICROBATCH_FLOATS)
        FAIL(L, "model: a micro-batch of %ld x %ld floats is too large", batch / plan->microbatches,
             hidden);
    if (pr_model_build(m, "mlp"))
        FAIL(L, "model.kind: this pprun has no layers for model \"mlp\"");
    return 0;
}

/* A number at model.key in lo..hi, each end open or closed; range says so. */
static int real_member(loader *L, pr_json j, const char *key, double lo, bool lo_open, double hi, bool hi_open,
                       const char *range, double *out)
{
    if (!member(L, j, "model", key, PR_JSON_NUMBER, "a number"))
        return 1;
    double x = pr_json_number(j);
    if (!isfinite(x) || (lo_open ? !(x > lo) : !(x >= lo)) || (hi_open ? !(x < hi) : !(x <= hi)))
        FAIL(L, "model.%s: %.17g is not %s", key, x, range);
    *out = x;
    return 0;
}

/* model.data and model.data_bytes: the file the plan was compiled for,
 * found again as it was (docs/gpt.md, "Data"), or null for synthetic
 * tokens. */
static int load_data(loader *L, pr_json data, pr_json bytes, int seq, int vocab, pr_gpt *g)
{
    if (data.type == PR_JSON_NULL) {
        if (bytes.type != PR_JSON_NONE)
            FAIL(L, "model.data_bytes: given, but model.data is null (synthetic tokens)");
        return 0;
    }
    if (!member(L, data, "model", "data", PR_JSON_STRING, "a string or null"))
        return 1;
    char path[PATH_MAX];
    if (!pr_json_string(data, path, sizeof path, false))
        FAIL(L, "model.data: longer than a path may be (%d bytes)", PATH_MAX - 1);
    if (path[0] != '/')
        FAIL(L, "model.data: \"%s\" is not an absolute path (ppcc writes one)", show(data).s);
    long want;
    if (int_member(L, bytes, "model", "data_bytes", 1, PP_MAX_SEED, NULL, &want))
        return 1;
    if (vocab < PP_BYTE_VOCAB)
        FAIL(L, "model.vocab: %d is fewer than the %d byte values of a data file (model.data is set)", vocab,
             PP_BYTE_VOCAB);
    char err[256];
    int64_t have = 0;
    if (pp_data_file_check(path, seq, &have, err, sizeof err))
        FAIL(L, "model.data: %s %s", path, err);
    if (have != want)
        FAIL(L, "model.data: %s holds %" PRId64 " bytes, but the plan was compiled for %ld (model.data_bytes): "
             "the file has changed", path, have, want);
    g->data = strdup(path);
    if (!g->data)
        FAIL(L, "out of memory");
    g->data_bytes = have;
    return 0;
}

/* model gpt (docs/gpt.md; fields in docs/plan-format.md). */
static int load_gpt(loader *L, pr_json mo, const pp_plan *plan, pr_model *m)
{
    enum { LAYERS, HIDDEN, HEADS, FFN, SEQ, VOCAB, TIE, BATCH, EMBEDDING, HEAD, OPTIMIZER, LR, BETA1, BETA2, EPS,
           WD, SEED, DATA, DATA_BYTES, PRECISION, BPS, N };
    static const char *const keys[N] = {"layers",   "hidden",          "heads",     "ffn",          "seq",
                                        "vocab",    "tie",             "batch",     "embedding_stage",
                                        "head_stage", "optimizer",     "lr",        "beta1",        "beta2",
                                        "eps",      "weight_decay",    "seed",      "data",         "data_bytes",
                                        "precision", "blocks_per_stage"};
    pr_json v[N];
    pr_json_members(mo, keys, N, v);
    long layers, hidden, heads, ffn, seq, vocab, batch, seed, embedding, head;
    if (int_member(L, v[LAYERS], "model", "layers", 1, PP_MAX_LAYERS, NULL, &layers) ||
        int_member(L, v[HIDDEN], "model", "hidden", 1, PP_MAX_HIDDEN, NULL, &hidden) ||
        int_member(L, v[HEADS], "model", "heads", 1, PP_MAX_HIDDEN, NULL, &heads) ||
        int_member(L, v[FFN], "model", "ffn", 1, PP_MAX_FFN, NULL, &ffn) ||
        int_member(L, v[SEQ], "model", "seq", 1, PP_MAX_SEQ, NULL, &seq) ||
        int_member(L, v[VOCAB], "model", "vocab", PP_MIN_VOCAB, PP_MAX_VOCAB, NULL, &vocab) ||
        int_member(L, v[BATCH], "model", "batch", 1, PP_MAX_BATCH, NULL, &batch) ||
        int_member(L, v[SEED], "model", "seed", 0, PP_MAX_SEED, NULL, &seed))
        return 1;
    if (hidden % heads != 0)
        FAIL(L, "model.heads: %ld does not divide model.hidden (%ld)", heads, hidden);
    if (batch_split(L, batch, plan))
        return 1;
    if (!member(L, v[TIE], "model", "tie", PR_JSON_BOOL, "a boolean"))
        return 1;
    if (int_member(L, v[EMBEDDING], "model", "embedding_stage", 0, plan->stages - 1, "is not a stage", &embedding) ||
        int_member(L, v[HEAD], "model", "head_stage", 0, plan->stages - 1, "is not a stage", &head))
        return 1;
    if (embedding != 0)
        FAIL(L, "model.embedding_stage: %ld, but the embedding belongs to the first stage (0)", embedding);
    if (head != plan->stages - 1)
        FAIL(L, "model.head_stage: %ld, but the head belongs to the last stage (%d)", head, plan->stages - 1);

    pr_gpt *g = &m->gpt;
    if (!member(L, v[OPTIMIZER], "model", "optimizer", PR_JSON_STRING, "a string"))
        return 1;
    if (name_is(v[OPTIMIZER], "adamw"))
        g->optimizer = PR_ADAMW;
    else if (name_is(v[OPTIMIZER], "sgd"))
        g->optimizer = PR_SGD;
    else
        FAIL(L, "model.optimizer: unknown optimizer \"%s\" (this pprun knows \"sgd\" and \"adamw\")",
             show(v[OPTIMIZER]).s);
    double lr;
    if (real_member(L, v[LR], "lr", 0, true, INFINITY, true, "a finite positive number", &lr))
        return 1;
    if (g->optimizer == PR_ADAMW) {
        if (real_member(L, v[BETA1], "beta1", 0, false, 1, true, "in [0, 1)", &g->beta1) ||
            real_member(L, v[BETA2], "beta2", 0, false, 1, true, "in [0, 1)", &g->beta2) ||
            real_member(L, v[EPS], "eps", 0, true, INFINITY, true, "a finite positive number", &g->eps) ||
            real_member(L, v[WD], "weight_decay", 0, false, INFINITY, true, "a finite non-negative number",
                        &g->weight_decay))
            return 1;
    } else {
        for (int k = BETA1; k <= WD; k++)
            if (v[k].type != PR_JSON_NONE)
                FAIL(L, "model.%s: optimizer sgd takes none", keys[k]);
    }
    if (!member(L, v[PRECISION], "model", "precision", PR_JSON_STRING, "a string"))
        return 1;
    if (name_is(v[PRECISION], "fp32"))
        g->precision = PR_FP32;
    else if (name_is(v[PRECISION], "tf32"))
        g->precision = PR_TF32;
    else if (name_is(v[PRECISION], "bf16"))
        g->precision = PR_BF16;
    else
        FAIL(L, "model.precision: unknown precision \"%s\" (fp32, tf32 or bf16)", show(v[PRECISION]).s);
    if (v[DATA].type == PR_JSON_NONE)
        FAIL(L, "model: missing field \"data\" (null for synthetic tokens)");

    m->kind = PR_MODEL_GPT;
    m->layers = (int)layers;
    m->hidden = (int)hidden;
    m->batch = (int)batch;
    m->lr = lr;
    m->seed = (uint64_t)seed;
    g->heads = (int)heads;
    g->ffn = (int)ffn;
    g->seq = (int)seq;
    g->vocab = (int)vocab;
    g->tie = pr_json_true(v[TIE]);
    if (g->tie && plan->async != PP_ASYNC_NONE) /* docs/async.md, "The transformer" */
        FAIL(L, "model.tie: true, but pipeline.async is %s: its weight versions are per stage, and "
             "the head would read the embedding's current wte instead of its own version (untie it: "
             "tie = false)", pp_async_name(plan->async));
    g->embedding_stage = 0;
    g->head_stage = plan->stages - 1;
    if (load_per_stage(L, v[BPS], "blocks_per_stage", plan, layers, true, m))
        return 1;
    pp_gpt_shape shape = {layers, hidden, heads, ffn, seq, vocab, batch, plan->microbatches, g->tie};
    pp_gpt_limit lim;
    if (pp_gpt_limit_crossed(&shape, &lim))
        FAIL(L, "model: %s", lim.msg);
    if (load_data(L, v[DATA], v[DATA_BYTES], g->seq, g->vocab, g))
        return 1;
    pr_gpt_layout(m);
    if (pr_model_build(m, "gpt"))
        FAIL(L, "model.kind: this pprun has no layers for model \"gpt\"");
    return 0;
}

static int load_model(loader *L, pr_json mo, const pp_plan *plan, pr_model *m)
{
    static const char *const keys[] = {"kind"};
    pr_json kind;
    pr_json_members(mo, keys, 1, &kind);
    if (!member(L, kind, "model", "kind", PR_JSON_STRING, "a string"))
        return 1;
    if (name_is(kind, "mlp"))
        return load_mlp(L, mo, plan, m);
    if (name_is(kind, "gpt"))
        return load_gpt(L, mo, plan, m);
    FAIL(L, "model.kind: unknown model \"%s\" (this pprun knows \"mlp\" and \"gpt\")", show(kind).s);
}

static char *put_uint(char *p, unsigned v)
{
    char digits[12];
    int n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    while (n > 0)
        *p++ = digits[--n];
    return p;
}

/* "devices[r].ops[i]": formed for every op, so without printf. */
static const char *op_path(char *buf, int r, int i)
{
    char *p = buf;
    memcpy(p, "devices[", 8);
    p = put_uint(p + 8, (unsigned)r);
    memcpy(p, "].ops[", 6);
    p = put_uint(p + 6, (unsigned)i);
    memcpy(p, "]", 2);
    return buf;
}

/* PATH.ranks: the world ranks of device dev's R replicas, in order
 * (docs/plan-format.md, "Data parallelism"), or its error. */
static int replica_ranks(loader *L, pr_json ranks, const char *path, int R, int dev)
{
    if (!member(L, ranks, path, "ranks", PR_JSON_ARRAY, "an array"))
        return 1;
    bool ok = pr_json_length(ranks) == R;
    pr_json_iter it = pr_json_elements(ranks);
    pr_json e;
    for (int k = 0; ok && pr_json_next(&it, &e); k++) {
        char rp[96];
        snprintf(rp, sizeof rp, "%s.ranks[%d]", path, k);
        if (int_is(L, e, rp, pp_rank_of(dev, k, R), &ok))
            return 1;
    }
    if (!ok)
        FAIL(L, "%s.ranks: must be [%d .. %d], the ranks of device %d's %d replicas", path, pp_rank_of(dev, 0, R),
             pp_rank_of(dev, R - 1, R), dev, R);
    return 0;
}

/* A reduction over the replicas of device `rank` (docs/plan-format.md,
 * "Data parallelism"): "stage" one of the device's stages, "device" the
 * device, "ranks" its replicas' world ranks; op->peer its group, op->stage
 * the stage.  Where it stands in the list is the verifier's to check. */
static int load_stage_reduction(loader *L, int kind, pr_json stage, pr_json device, pr_json ranks,
                                pr_json group, const char *path, pp_plan *plan, int rank, pp_op *op)
{
    int R = pp_plan_replicas(plan);
    const char *name = pp_coll_what_name(kind);
    if (R == 1)
        FAIL(L, "%s: an allreduce %s, but pipeline.data_parallel is 1: no replicas to reduce over", path, name);
    if ((kind == PP_COLL_STAGE) == plan->zero)
        FAIL(L, "%s.what: \"%s\", but pipeline.zero is %s (%s)", path, name, plan->zero ? "true" : "false",
             plan->zero ? "ZeRO-1 reduces by shard and gather" : "only ZeRO-1 shards and gathers");
    long s, dv;
    if (int_member(L, stage, path, "stage", 0, plan->stages - 1, "is not a stage", &s) ||
        int_member(L, device, path, "device", 0, plan->devices - 1, "is not a device", &dv))
        return 1;
    if (dv != rank)
        FAIL(L, "%s.device: %ld, but the op is in device %d's list", path, dv, rank);
    if (plan->placement[s] != rank)
        FAIL(L, "%s.stage: %ld is held by device %d, not device %d", path, s, plan->placement[s], rank);
    if (replica_ranks(L, ranks, path, R, rank))
        return 1;
    int c = pp_plan_coll_stage(plan, kind, (int)s, &rank, 1, 0);
    if (c < 0)
        pp_out_of_memory(0, "a plan's collective groups");
    op->peer = c;
    op->stage = (int)s;
    if (group.type == PR_JSON_NONE)
        return 0;
    /* version 2: asynchronous on the data-parallel lane, a wait names it */
    if (L->version < 2 || kind == PP_COLL_GATHER)
        FAIL(L, "%s.group: %s", path, L->version < 2 ? "an asynchronous reduction is of plan version 2"
                                                     : "a gather is synchronous (right after the update)");
    long g;
    if (int_member(L, group, path, "group", 0, 2147483647.0, NULL, &g))
        return 1;
    op->group = (int)g;
    return 0;
}

/* The sorted ranks of an allreduce: pair[2] or the ranks field's error. */
static int load_pair(loader *L, pr_json ranks, const char *path, const pp_plan *plan, const int pair[2],
                     const char *what, const char *whose)
{
    if (!member(L, ranks, path, "ranks", PR_JSON_ARRAY, "an array"))
        return 1;
    int got[2], n = 0;
    pr_json_iter it = pr_json_elements(ranks);
    pr_json e;
    char rp[96];
    for (; pr_json_next(&it, &e); n++) {
        long r;
        snprintf(rp, sizeof rp, "%s.ranks[%d]", path, n);
        if (n == 2)
            FAIL(L, "%s.ranks: %d entries, a %s allreduce has 2 (ranks %d and %d)", path, pr_json_length(ranks), what,
                 pair[0], pair[1]);
        if (int_value(L, e, rp, NULL, 0, plan->devices - 1, not_a_device(pp_plan_replicas(plan)), &r))
            return 1;
        got[n] = (int)r;
    }
    if (n != 2 || got[0] != pair[0] || got[1] != pair[1])
        FAIL(L, "%s.ranks: must be [%d, %d], the ranks of %s, in that order", path, pair[0], pair[1], whose);
    return 0;
}

/* A mirror allreduce (docs/dualpipe.md): "stage" s, a pipeline stage of a
 * mirrored plan, and "ranks" the sorted ranks of stages s and H + s. */
static int load_mirror(loader *L, pr_json stage, pr_json ranks, const char *path, pp_plan *plan, int rank,
                       pp_op *op)
{
    if (!plan->mirrored)
        FAIL(L, "%s: an allreduce mirror, but pipeline.mirrored is not true: no stage has a copy", path);
    int H = plan->stages / 2;
    long s;
    if (int_member(L, stage, path, "stage", 0, H - 1, "is not a stage of the first pipeline", &s))
        return 1;
    int a = plan->placement[s], b = plan->placement[H + s];
    if (a == b)
        FAIL(L, "%s: stages %ld and %ld are both on rank %d: the sum is local (no op)", path, s, H + s, a);
    int pair[2] = {a < b ? a : b, a < b ? b : a};
    char whose[64];
    snprintf(whose, sizeof whose, "stage %ld and its copy, stage %ld", s, H + s);
    if (load_pair(L, ranks, path, plan, pair, "mirror", whose))
        return 1;
    if (rank != pair[0] && rank != pair[1])
        FAIL(L, "%s: rank %d is not one of the allreduce's ranks [%d, %d]", path, rank, pair[0], pair[1]);
    int c = pp_plan_coll(plan, PP_COLL_MIRROR, pair, 2, 0);
    if (c < 0)
        pp_out_of_memory(0, "a plan's collective groups");
    op->peer = c;
    op->stage = (int)s;
    return 0;
}

/* An allreduce (docs/plan-format.md): "what" "tied" ("ranks" the sorted
 * pair of ranks of the first and the last stage, on one of them, in a gpt
 * with tie = true), "mirror" or a reduction over replicas; op->peer its
 * group in plan->coll. */
static int load_allreduce(loader *L, pr_json what, pr_json ranks, const char *path, pp_plan *plan,
                          const pr_model *m, int rank, pp_op *op, pr_json stage, pr_json device, pr_json group)
{
    if (!member(L, what, path, "what", PR_JSON_STRING, "a string"))
        return 1;
    char name[16];
    int kind = name_of(what, name, sizeof name) ? pp_coll_what_from_name(name) : -1;
    if (kind < 0)
        FAIL(L, "%s.what: unknown collective \"%s\" (this pprun knows \"tied\", \"stage\", \"shard\", "
                "\"gather\" and \"mirror\")", path, show(what).s);
    if (kind != PP_COLL_TIED && kind != PP_COLL_MIRROR)
        return load_stage_reduction(L, kind, stage, device, ranks, group, path, plan, rank, op);
    if (group.type != PR_JSON_NONE)
        FAIL(L, "%s.group: a %s allreduce is synchronous (it has no group)", path, name);
    if (kind == PP_COLL_MIRROR)
        return load_mirror(L, stage, ranks, path, plan, rank, op);
    if (m->kind != PR_MODEL_GPT || !m->gpt.tie)
        FAIL(L, "%s: an allreduce tied, but %s: no weights are tied", path,
             m->kind != PR_MODEL_GPT ? "model.kind is not \"gpt\"" : "model.tie is false");
    int pair[2];
    if (!pp_tied_pair(plan->placement, plan->stages, pair))
        FAIL(L, "%s: an allreduce tied, but the first and the last stage are both on rank %d: the sum is local "
                "(no op)", path, plan->placement[0]);
    char whose[64];
    snprintf(whose, sizeof whose, "stage 0 and stage %d", plan->stages - 1);
    if (load_pair(L, ranks, path, plan, pair, "tied", whose))
        return 1;
    if (rank != pair[0] && rank != pair[1])
        FAIL(L, "%s: rank %d is not one of the allreduce's ranks [%d, %d]", path, rank, pair[0], pair[1]);
    int c = pp_plan_coll(plan, PP_COLL_TIED, pair, 2, 0);
    if (c < 0)
        pp_out_of_memory(0, "a plan's collective groups");
    op->peer = c;
    return 0;
}

/* One op; the checks make every index the replay uses valid. */
static int load_op(loader *L, pr_json_iter *it, pr_json jo, const char *path, pp_plan *plan,
                   const pr_model *m, int rank, pp_op *op)
{
    if (jo.type != PR_JSON_OBJECT)
        FAIL(L, "%s: expected an object, got %s", path, type_name(jo));
    enum { OP, STAGE, MB, KIND, PEER, GROUP, WHAT, RANKS, DEVICE, N };
    static const char *const keys[N] = {"op", "stage", "mb", "kind", "peer", "group", "what", "ranks", "device"};
    pr_json v[N];
    it->cur_end = pr_json_members(jo, keys, N, v);
    if (!member(L, v[OP], path, "op", PR_JSON_STRING, "a string"))
        return 1;
    char name[16];
    int kind = name_of(v[OP], name, sizeof name) ? pp_op_from_name(name) : -1;
    if (kind < 0)
        FAIL(L, "%s.op: unknown op \"%s\"", path, show(v[OP]).s);
    *op = (pp_op){.kind = (uint8_t)kind, .stage = -1, .mb = -1, .peer = -1, .group = -1};
    if (kind == PP_OP_UPDATE || kind == PP_OP_FLUSH)
        return 0;
    if (kind == PP_OP_WAIT) { /* which group it names is load_ops' to check */
        if (L->version < 2)
            FAIL(L, "%s.op: \"wait\" is an op of plan version 2, and this plan's version is %ld", path,
                 L->version);
        long group;
        if (int_member(L, v[GROUP], path, "group", 0, 2147483647.0, NULL, &group))
            return 1;
        op->group = (int)group;
        return 0;
    }
    if (kind == PP_OP_ALLREDUCE)
        return load_allreduce(L, v[WHAT], v[RANKS], path, plan, m, rank, op, v[STAGE], v[DEVICE], v[GROUP]);
    long stage, mb;
    if (int_member(L, v[STAGE], path, "stage", 0, plan->stages - 1, "is not a stage", &stage) ||
        int_member(L, v[MB], path, "mb", 0, plan->microbatches - 1, "is not a micro-batch", &mb))
        return 1;
    op->stage = (int)stage;
    op->mb = (int)mb;
    const int *place = plan->placement;
    if (pp_op_is_compute(kind)) {
        if (kind == PP_OP_W && !plan->split_backward)
            FAIL(L, "%s.op: W in a plan whose pipeline.split_backward is false", path);
        if (place[stage] != rank)
            FAIL(L, "%s.stage: %ld is held by rank %d, not rank %d", path, stage, place[stage], rank);
        return 0;
    }
    if (!member(L, v[KIND], path, "kind", PR_JSON_STRING, "a string"))
        return 1;
    char ck[8];
    int comm = name_of(v[KIND], ck, sizeof ck) ? pp_comm_from_name(ck) : -1;
    if (comm < 0)
        FAIL(L, "%s.kind: unknown kind \"%s\" (act or grad)", path, show(v[KIND]).s);
    op->comm = (uint8_t)comm;
    long peer, group;
    if (int_member(L, v[PEER], path, "peer", 0, plan->devices - 1, not_a_device(pp_plan_replicas(plan)), &peer) ||
        int_member(L, v[GROUP], path, "group", 0, 2147483647.0, NULL, &group))
        return 1;
    if (peer == rank)
        FAIL(L, "%s.peer: %ld is the device itself", path, peer);
    op->peer = (int)peer;
    op->group = (int)group;
    int want_self, want_peer, to = pp_comm_ends(plan, kind, comm, (int)stage, &want_self, &want_peer);
    if (to < 0)
        FAIL(L, "%s.stage: %s of stage %ld has no %s stage", path, ck, stage,
             comm == PP_COMM_ACT ? "next" : "previous");
    if (want_self != rank)
        FAIL(L, "%s: %s %s %ld.%ld does not belong on rank %d", path, name, ck, stage, mb, rank);
    if (want_peer != peer)
        FAIL(L, "%s.peer: %ld, but stage %d is on rank %d", path, peer,
             kind == PP_OP_SEND ? to : (int)stage, want_peer);
    return 0;
}

/* devices[r].stages must be exactly the placement's stages of rank r, in order. */
static int load_stages(loader *L, pr_json st, const char *path, const pp_plan *plan, int r)
{
    if (!member(L, st, path, "stages", PR_JSON_ARRAY, "an array"))
        return 1;
    int want = 0;
    pr_json_iter it = pr_json_elements(st);
    pr_json e;
    for (int k = 0; pr_json_next(&it, &e); k++) {
        char sp[128];
        long s;
        snprintf(sp, sizeof sp, "%s.stages[%d]", path, k);
        if (int_value(L, e, sp, NULL, 0, plan->stages - 1, "is not a stage", &s))
            return 1;
        while (want < plan->stages && plan->placement[want] != r)
            want++;
        if (want != s)
            FAIL(L, "%s: %ld does not match pipeline.placement", sp, s);
        want++;
    }
    while (want < plan->stages && plan->placement[want] != r)
        want++;
    if (want < plan->stages)
        FAIL(L, "%s.stages: stage %d (placed on rank %d) is missing", path, want, r);
    return 0;
}

/* The send/recv groups of one device's list so far, by id (open
 * addressing): where each starts and whether a wait names it, so that
 * checking every wait costs constant time. */
typedef struct group_seen {
    int32_t id, first, waited_at; /* waited_at: its wait's index, or -1 */
} group_seen;
typedef struct group_index {
    group_seen *slot; /* id -1: empty */
    size_t cap, n;
} group_index;

static group_seen *group_find(group_index *g, int32_t id)
{
    if (!g->cap)
        return NULL;
    size_t h = ((uint32_t)id * 2654435761u) & (g->cap - 1);
    while (g->slot[h].id != -1 && g->slot[h].id != id)
        h = (h + 1) & (g->cap - 1);
    return &g->slot[h];
}

/* The entry of group id, added (first op at `first`) when new. */
static group_seen *group_add(group_index *g, int32_t id, int first)
{
    if (2 * (g->n + 1) > g->cap) {
        group_index bigger = {pp_xcalloc(g->cap ? 2 * g->cap : 64, sizeof(group_seen), "the loader's group table"),
                              g->cap ? 2 * g->cap : 64, 0};
        for (size_t k = 0; k < bigger.cap; k++)
            bigger.slot[k].id = -1;
        for (size_t k = 0; k < g->cap; k++)
            if (g->slot[k].id != -1) {
                *group_find(&bigger, g->slot[k].id) = g->slot[k];
                bigger.n++;
            }
        free(g->slot);
        *g = bigger;
    }
    group_seen *e = group_find(g, id);
    if (e->id == -1) {
        *e = (group_seen){id, first, -1};
        g->n++;
    }
    return e;
}

/* A wait (op i of rank r) names a send/recv group that comes earlier in
 * the list and that no other wait names (docs/plan-format.md). */
static int check_wait(loader *L, group_index *g, const pp_op *op, int r, int i)
{
    char at[64], at2[64];
    group_seen *e = group_find(g, op->group);
    if (!e || e->id == -1)
        FAIL(L, "%s.group: %d names no send/recv group before it in devices[%d].ops (a wait comes after "
                "the group it waits for, on the same device)", op_path(at, r, i), op->group, r);
    if (e->waited_at >= 0)
        FAIL(L, "%s: a second wait for group %d (the first is %s): a group has at most one", op_path(at, r, i),
             op->group, op_path(at2, r, e->waited_at));
    e->waited_at = i;
    return 0;
}

/* The ops of rank r, straight into its list; *total counts all devices'.
 * A rank of the tied pair holds its allreduce once, after its last compute
 * op and before its update; no other rank holds one (load_allreduce). */
static int load_list(loader *L, pr_json ops, const char *path, pp_plan *plan, const pr_model *m, int r,
                     long *total, group_index *groups)
{
    if (!member(L, ops, path, "ops", PR_JSON_ARRAY, "an array"))
        return 1;
    pr_json_iter it = pr_json_elements(ops);
    pr_json jo;
    char op_at[64], at2[64];
    int tied_at = -1, update_at = -1;
    for (int i = 0; pr_json_next(&it, &jo); i++) {
        if (++*total > PP_MAX_OPS_TOTAL)
            FAIL(L, "devices: more than %ld ops", (long)PP_MAX_OPS_TOTAL);
        if (i > 0 && plan->dev[r].ops[i - 1].kind == PP_OP_FLUSH)
            FAIL(L, "%s: flush before the end of the list", op_path(op_at, r, i - 1));
        pp_op op;
        if (load_op(L, &it, jo, op_path(op_at, r, i), plan, m, r, &op))
            return 1;
        const pp_coll *coll = pp_plan_op_coll(plan, &op);
        if (coll && coll->what != PP_COLL_TIED) { /* mirror, or over replicas: the verifier checks its place */
            if (op.group >= 0) /* an asynchronous reduction: its wait names it */
                group_add(groups, op.group, i);
        } else if (op.kind == PP_OP_ALLREDUCE) {
            if (tied_at >= 0)
                FAIL(L, "%s: a second allreduce tied (the first is %s): one a step", op_path(op_at, r, i),
                     op_path(at2, r, tied_at));
            if (update_at >= 0)
                FAIL(L, "%s: the allreduce tied comes after the update (%s), which needs the summed gradient",
                     op_path(op_at, r, i), op_path(at2, r, update_at));
            tied_at = i;
        } else if (pp_op_is_compute(op.kind) && tied_at >= 0) {
            FAIL(L, "%s: %s after the allreduce tied (%s), which sums the step's last gradients", op_path(op_at, r, i),
                 pp_op_name(op.kind), op_path(at2, r, tied_at));
        } else if (op.kind == PP_OP_UPDATE && update_at < 0) {
            update_at = i;
        } else if (op.kind == PP_OP_WAIT && check_wait(L, groups, &op, r, i)) {
            return 1;
        } else if (pp_op_is_comm(op.kind)) {
            group_add(groups, op.group, i);
        }
        pp_plan_push(plan, r, op);
    }
    const pp_device *dv = &plan->dev[r];
    if (dv->n == 0 || dv->ops[dv->n - 1].kind != PP_OP_FLUSH)
        FAIL(L, "%s.ops: the list must end with flush", path);
    int pair[2];
    bool tied = m->kind == PR_MODEL_GPT && m->gpt.tie && pp_tied_pair(plan->placement, plan->stages, pair);
    if (tied && tied_at < 0 && (r == pair[0] || r == pair[1]))
        FAIL(L, "%s.ops: no allreduce tied, but model.tie is true and stages 0 and %d are on ranks %d and %d: "
                "{\"op\": \"allreduce\", \"what\": \"tied\", \"ranks\": [%d, %d]} must come before the update",
             path, plan->stages - 1, plan->placement[0], plan->placement[plan->stages - 1], pair[0], pair[1]);
    return 0;
}

static int load_ops(loader *L, pr_json ops, const char *path, pp_plan *plan, const pr_model *m, int r,
                    long *total)
{
    group_index groups = {0};
    int rc = load_list(L, ops, path, plan, m, r, total, &groups);
    free(groups.slot);
    return rc;
}

/* devices[r].ranks: with replicas, the world ranks that run the list,
 * r x R .. r x R + R - 1; without, absent. */
static int load_list_ranks(loader *L, pr_json ranks, const char *path, const pp_plan *plan, int r)
{
    int R = pp_plan_replicas(plan);
    if (R == 1) {
        if (ranks.type != PR_JSON_NONE)
            FAIL(L, "%s.ranks: present, but pipeline.data_parallel is 1 (rank is the device)", path);
        return 0;
    }
    return replica_ranks(L, ranks, path, R, r);
}

static int load_devices(loader *L, pr_json devs, pp_plan *plan, const pr_model *m)
{
    if (!member(L, devs, "", "devices", PR_JSON_ARRAY, "an array"))
        return 1;
    long total = 0;
    int r = 0;
    pr_json_iter it = pr_json_elements(devs);
    pr_json dj;
    for (; pr_json_next(&it, &dj); r++) {
        if (r == plan->devices) /* one too many: say how many there are */
            FAIL(L, "devices: %d entries, pipeline.devices is %d", pr_json_length(devs), plan->devices);
        char path[32];
        snprintf(path, sizeof path, "devices[%d]", r);
        if (dj.type != PR_JSON_OBJECT)
            FAIL(L, "%s: expected an object, got %s", path, type_name(dj));
        enum { RANK, STAGES, OPS, RANKS, N };
        static const char *const keys[N] = {"rank", "stages", "ops", "ranks"};
        pr_json v[N];
        pr_json_members(dj, keys, N, v);
        long rank;
        if (int_member(L, v[RANK], path, "rank", 0, plan->devices - 1, not_a_device(pp_plan_replicas(plan)), &rank))
            return 1;
        if (rank != r)
            FAIL(L, "%s.rank: %ld, expected %d (devices are listed in rank order)", path, rank, r);
        if (load_list_ranks(L, v[RANKS], path, plan, r))
            return 1;
        if (load_stages(L, v[STAGES], path, plan, r) || load_ops(L, v[OPS], path, plan, m, r, &total))
            return 1;
    }
    if (r != plan->devices)
        FAIL(L, "devices: %d entries, pipeline.devices is %d", r, plan->devices);
    return 0;
}

static int load_root(loader *L, pr_json root, pp_plan *plan, pr_model *m)
{
    if (root.type != PR_JSON_OBJECT)
        FAIL(L, "expected a JSON object at the top, got %s", type_name(root));
    enum { FORMAT, VERSION, PIPELINE, MODEL, MEMORY, DEVICES, N };
    static const char *const keys[N] = {"format", "version", "pipeline", "model", "memory", "devices"};
    pr_json v[N];
    pr_json_members(root, keys, N, v);
    if (!member(L, v[FORMAT], "", "format", PR_JSON_STRING, "a string"))
        return 1;
    if (!name_is(v[FORMAT], "ppcc-plan"))
        FAIL(L, "format: \"%s\" is not \"ppcc-plan\"", show(v[FORMAT]).s);
    long version;
    if (int_member(L, v[VERSION], "", "version", 1, 1e9, NULL, &version))
        return 1;
    if (version > PPRUN_PLAN_VERSION)
        FAIL(L, "version: %ld is newer than this pprun reads (%d)", version, PPRUN_PLAN_VERSION);
    L->version = version;
    /* in this order whatever the file's: the ops are checked against the pipeline */
    if (!member(L, v[PIPELINE], "", "pipeline", PR_JSON_OBJECT, "an object") ||
        load_pipeline(L, v[PIPELINE], plan))
        return 1;
    if (!member(L, v[MODEL], "", "model", PR_JSON_OBJECT, "an object") ||
        load_model(L, v[MODEL], plan, m) || load_memory(L, v[MEMORY], plan, m))
        return 1;
    return load_devices(L, v[DEVICES], plan, m);
}

/* The text checked as JSON, then read into plan and model (not verified). */
static int read_plan(const char *name, const char *text, size_t len, pp_diag *d, pp_plan *plan,
                     pr_model *model)
{
    memset(plan, 0, sizeof *plan);
    memset(model, 0, sizeof *model);
    pr_json_error e;
    if (pr_json_check(text, len, false, &e)) {
        pp_source src = {name, text, len};
        pp_error_at(d, &src, e.offset, "%s", e.msg);
        return 1;
    }
    loader L = {d, name, 0};
    if (load_root(&L, pr_json_root(text, len), plan, model)) {
        pp_plan_free(plan);
        pr_model_free(model);
        return 1;
    }
    return 0;
}

static int verify_loaded(pp_diag *d, pp_plan *plan, pr_model *model)
{
    pp_verify_opts vo = pr_model_memory(model);
    vo.mem_limit = model->mem_limit;
    if (pp_verify(plan, &vo, d) == 0)
        return 0;
    pp_plan_free(plan);
    pr_model_free(model);
    return 1;
}

int pr_plan_load_text(const char *name, const char *text, size_t len, pp_diag *d, pp_plan *plan,
                      pr_model *model)
{
    if (read_plan(name, text, len, d, plan, model))
        return 1;
    return verify_loaded(d, plan, model);
}

int pr_plan_load_file(const char *path, pp_diag *d, pp_plan *plan, pr_model *model)
{
    char *text;
    size_t len;
    memset(plan, 0, sizeof *plan);
    memset(model, 0, sizeof *model);
    if (pr_plan_read(path, PR_PLAN_MAX_BYTES, d, &text, &len))
        return 1;
    int rc = read_plan(strcmp(path, "-") == 0 ? "<stdin>" : path, text, len, d, plan, model);
    free(text); /* the verifier needs the ops alone */
    return rc ? 1 : verify_loaded(d, plan, model);
}

void pr_model_free(pr_model *m)
{
    free(m->layers_per_stage);
    free(m->first_layer);
    free(m->gpt.data);
    free(m->gpt.bytes);
    m->gpt.bytes = NULL;
    free(m->param_off);
    m->layers_per_stage = m->first_layer = NULL;
    m->gpt.data = NULL;
    m->param_off = NULL;
    m->ops = NULL;
    free(m->stage_act);
    free(m->stage_input);
    free(m->static_mem);
    m->stage_act = m->stage_input = m->static_mem = NULL;
}

pp_verify_opts pr_model_memory(const pr_model *m)
{
    return (pp_verify_opts){.act_size = m->act_size,
                            .input_frac = m->input_frac,
                            .stage_act = m->stage_act,
                            .stage_input = m->stage_input,
                            .static_mem = m->static_mem,
                            .stages = m->stages,
                            .devices = m->devices};
}
