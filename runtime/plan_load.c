/*
 * plan_load.c — reads plan JSON v1 (docs/plan-format.md) strictly into a
 * pp_plan and a pr_model, then runs the verifier, so that a hand-edited
 * plan that would deadlock or break a dependency is refused before any
 * work starts.  Every refusal names the JSON path of the field.
 * Unknown keys are allowed (fields may be added); unknown values are not.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pprun.h"

typedef struct loader {
    pp_diag *d;
    const char *file;
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

static const char *type_name(const cJSON *j)
{
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "invalid";
}

/* A required member of obj (at path) of the given kind. */
static const cJSON *member(loader *L, const cJSON *obj, const char *path, const char *key,
                           int (*is)(const cJSON *), const char *what)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) {
        load_error(L, "%s%smissing field \"%s\"", path, *path ? ": " : "", key);
        return NULL;
    }
    if (!is(j)) {
        load_error(L, "%s%s%s: expected %s, got %s", path, *path ? "." : "", key, what,
                   type_name(j));
        return NULL;
    }
    return j;
}

static int is_number(const cJSON *j) { return cJSON_IsNumber(j); }
static int is_string(const cJSON *j) { return cJSON_IsString(j) && j->valuestring; }
static int is_array(const cJSON *j) { return cJSON_IsArray(j); }
static int is_object(const cJSON *j) { return cJSON_IsObject(j); }
static int is_bool(const cJSON *j) { return cJSON_IsBool(j); }

/* An integer in [lo, hi] from a JSON number (valuedouble: valueint saturates). */
static int int_value(loader *L, const cJSON *j, const char *path, double lo, double hi,
                     const char *range_msg, long *out)
{
    if (!cJSON_IsNumber(j))
        FAIL(L, "%s: expected an integer, got %s", path, type_name(j));
    double v = j->valuedouble;
    if (!isfinite(v) || v != floor(v))
        FAIL(L, "%s: %.17g is not an integer", path, v);
    if (v < lo || v > hi) {
        if (range_msg)
            FAIL(L, "%s: %.17g %s", path, v, range_msg);
        FAIL(L, "%s: %.17g is out of range [%.17g, %.17g]", path, v, lo, hi);
    }
    *out = (long)v;
    return 0;
}

static int int_member(loader *L, const cJSON *obj, const char *path, const char *key, double lo,
                      double hi, const char *range_msg, long *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j)
        FAIL(L, "%s%smissing field \"%s\"", path, *path ? ": " : "", key);
    char sub[256];
    snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", key);
    return int_value(L, j, sub, lo, hi, range_msg, out);
}

static int load_pipeline(loader *L, const cJSON *root, pp_plan *plan)
{
    const cJSON *pl = member(L, root, "", "pipeline", is_object, "an object");
    if (!pl)
        return 1;
    long devices, stages, mbs;
    if (int_member(L, pl, "pipeline", "devices", 1, PP_MAX_DEVICES, NULL, &devices) ||
        int_member(L, pl, "pipeline", "stages", 1, PP_MAX_STAGES, NULL, &stages) ||
        int_member(L, pl, "pipeline", "microbatches", 1, PP_MAX_MICROBATCHES, NULL, &mbs))
        return 1;
    const cJSON *sched = member(L, pl, "pipeline", "schedule", is_string, "a string");
    const cJSON *place = member(L, pl, "pipeline", "placement", is_array, "an array");
    if (!sched || !place)
        return 1;
    if (cJSON_GetArraySize(place) != stages)
        FAIL(L, "pipeline.placement: %d entries, pipeline.stages is %ld", cJSON_GetArraySize(place),
             stages);
    int *pv = malloc((size_t)stages * sizeof *pv);
    int s = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, place) {
        char path[64];
        long r;
        snprintf(path, sizeof path, "pipeline.placement[%d]", s);
        if (int_value(L, it, path, 0, devices - 1, "is not a rank", &r)) {
            free(pv);
            return 1;
        }
        pv[s++] = (int)r;
    }
    int rc = pp_plan_init(plan, sched->valuestring, (int)devices, (int)stages, (int)mbs, pv);
    free(pv);
    if (rc)
        FAIL(L, "out of memory");
    const cJSON *split = cJSON_GetObjectItemCaseSensitive(pl, "split_backward");
    if (split && !is_bool(split))
        FAIL(L, "pipeline.split_backward: expected a boolean, got %s", type_name(split));
    plan->split_backward = split && cJSON_IsTrue(split);
    /* docs/async.md: absent = synchronous */
    const cJSON *async = cJSON_GetObjectItemCaseSensitive(pl, "async");
    if (async) {
        if (!cJSON_IsString(async))
            FAIL(L, "pipeline.async: expected a string, got %s", type_name(async));
        plan->async = pp_async_from_name(async->valuestring);
        if (plan->async < 0)
            FAIL(L, "pipeline.async: unknown \"%s\" (known: none, pipedream, 2bw)", async->valuestring);
        if (plan->async != PP_ASYNC_NONE && plan->split_backward)
            FAIL(L, "pipeline.async: %s needs an unsplit backward (split_backward is true)",
                 async->valuestring);
    }
    const cJSON *vsync = cJSON_GetObjectItemCaseSensitive(pl, "vertical_sync");
    if (vsync && !is_bool(vsync))
        FAIL(L, "pipeline.vertical_sync: expected a boolean, got %s", type_name(vsync));
    plan->vertical_sync = vsync && cJSON_IsTrue(vsync);
    if (plan->vertical_sync && plan->async != PP_ASYNC_PIPEDREAM)
        FAIL(L, "pipeline.vertical_sync: true needs \"async\": \"pipedream\" (docs/async.md)");
    return 0;
}

static int load_model(loader *L, const cJSON *root, const pp_plan *plan, pr_model *m)
{
    const cJSON *mo = member(L, root, "", "model", is_object, "an object");
    if (!mo)
        return 1;
    const cJSON *kind = member(L, mo, "model", "kind", is_string, "a string");
    if (!kind)
        return 1;
    if (strcmp(kind->valuestring, "mlp") != 0)
        FAIL(L, "model.kind: unknown model \"%s\" (this pprun knows \"mlp\")", kind->valuestring);
    long layers, hidden, batch, seed;
    if (int_member(L, mo, "model", "layers", 1, PP_MAX_LAYERS, NULL, &layers) ||
        int_member(L, mo, "model", "hidden", 1, PP_MAX_HIDDEN, NULL, &hidden) ||
        int_member(L, mo, "model", "batch", 1, PP_MAX_BATCH, NULL, &batch) ||
        int_member(L, mo, "model", "seed", 0, PP_MAX_SEED, NULL, &seed))
        return 1;
    if (batch % plan->microbatches != 0)
        FAIL(L, "model.batch: %ld is not a multiple of pipeline.microbatches (%d)", batch,
             plan->microbatches);
    const cJSON *opt = member(L, mo, "model", "optimizer", is_string, "a string");
    const cJSON *lr = member(L, mo, "model", "lr", is_number, "a number");
    if (!opt || !lr)
        return 1;
    if (strcmp(opt->valuestring, "sgd") != 0)
        FAIL(L, "model.optimizer: unknown optimizer \"%s\" (this pprun knows \"sgd\")",
             opt->valuestring);
    if (!isfinite(lr->valuedouble) || lr->valuedouble < 0)
        FAIL(L, "model.lr: %g is not a finite non-negative number", lr->valuedouble);
    const cJSON *lps = member(L, mo, "model", "layers_per_stage", is_array, "an array");
    if (!lps)
        return 1;
    if (cJSON_GetArraySize(lps) != plan->stages)
        FAIL(L, "model.layers_per_stage: %d entries, pipeline.stages is %d", cJSON_GetArraySize(lps),
             plan->stages);
    m->layers = (int)layers;
    m->hidden = (int)hidden;
    m->batch = (int)batch;
    m->lr = lr->valuedouble;
    m->seed = (uint64_t)seed;
    m->stages = plan->stages;
    m->layers_per_stage = calloc((size_t)plan->stages, sizeof(int));
    m->first_layer = calloc((size_t)plan->stages, sizeof(int));
    long sum = 0;
    int s = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, lps) {
        char path[64];
        long k;
        snprintf(path, sizeof path, "model.layers_per_stage[%d]", s);
        if (int_value(L, it, path, 1, layers, NULL, &k))
            return 1;
        m->first_layer[s] = (int)sum;
        m->layers_per_stage[s++] = (int)k;
        sum += k;
    }
    if (sum != layers)
        FAIL(L, "model.layers_per_stage: sums to %ld, model.layers is %ld", sum, layers);
    if ((double)layers * (double)hidden * (double)hidden > (double)PP_MAX_WEIGHT_FLOATS)
        FAIL(L, "model: %ld layers of %ld x %ld weights are more than this pprun holds (%ld floats)",
             layers, hidden, hidden, PP_MAX_WEIGHT_FLOATS);
    if ((double)batch / plan->microbatches * (double)hidden > (double)PP_MAX_MICROBATCH_FLOATS)
        FAIL(L, "model: a micro-batch of %ld x %ld floats is too large", batch / plan->microbatches,
             hidden);

    m->act_size = 1;
    m->mem_limit = 0;
    const cJSON *mem = cJSON_GetObjectItemCaseSensitive(root, "memory");
    if (mem) {
        if (!is_object(mem))
            FAIL(L, "memory: expected an object, got %s", type_name(mem));
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(mem, "activation");
        const cJSON *lim = cJSON_GetObjectItemCaseSensitive(mem, "limit");
        if (a && (!is_number(a) || !(a->valuedouble >= 0) || !isfinite(a->valuedouble)))
            FAIL(L, "memory.activation: expected a non-negative number");
        if (lim && (!is_number(lim) || !(lim->valuedouble >= 0) || !isfinite(lim->valuedouble)))
            FAIL(L, "memory.limit: expected a non-negative number");
        if (a)
            m->act_size = a->valuedouble;
        if (lim)
            m->mem_limit = lim->valuedouble;
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(mem, "input");
        if (in && (!is_number(in) || !(in->valuedouble >= 0 && in->valuedouble <= 1)))
            FAIL(L, "memory.input: expected a number between 0 and 1");
        if (in)
            m->input_frac = in->valuedouble;
    }
    return 0;
}

/* One op; the checks make every index the replay uses valid. */
static int load_op(loader *L, const cJSON *jo, const char *path, const pp_plan *plan, int rank,
                   pp_op *op)
{
    if (!is_object(jo))
        FAIL(L, "%s: expected an object, got %s", path, type_name(jo));
    const cJSON *name = member(L, jo, path, "op", is_string, "a string");
    if (!name)
        return 1;
    int kind = pp_op_from_name(name->valuestring);
    if (kind < 0)
        FAIL(L, "%s.op: unknown op \"%s\"", path, name->valuestring);
    *op = (pp_op){.kind = (uint8_t)kind, .stage = -1, .mb = -1, .peer = -1, .group = -1};
    if (kind == PP_OP_UPDATE || kind == PP_OP_FLUSH)
        return 0;
    long stage, mb;
    if (int_member(L, jo, path, "stage", 0, plan->stages - 1, "is not a stage", &stage) ||
        int_member(L, jo, path, "mb", 0, plan->microbatches - 1, "is not a micro-batch", &mb))
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
    const cJSON *ck = member(L, jo, path, "kind", is_string, "a string");
    if (!ck)
        return 1;
    int comm = pp_comm_from_name(ck->valuestring);
    if (comm < 0)
        FAIL(L, "%s.kind: unknown kind \"%s\" (act or grad)", path, ck->valuestring);
    op->comm = (uint8_t)comm;
    long peer, group;
    if (int_member(L, jo, path, "peer", 0, plan->devices - 1, "is not a rank", &peer) ||
        int_member(L, jo, path, "group", 0, 2147483647.0, NULL, &group))
        return 1;
    if (peer == rank)
        FAIL(L, "%s.peer: %ld is the device itself", path, peer);
    op->peer = (int)peer;
    op->group = (int)group;
    /* act of F(s) goes from rank(s) to rank(s+1); grad of B(s) from rank(s) to rank(s-1). */
    int to = comm == PP_COMM_ACT ? (int)stage + 1 : (int)stage - 1;
    if (to < 0 || to >= plan->stages)
        FAIL(L, "%s.stage: %s of stage %ld has no %s stage", path, ck->valuestring, stage,
             comm == PP_COMM_ACT ? "next" : "previous");
    int src = place[stage], dst = place[to];
    int want_self = kind == PP_OP_SEND ? src : dst, want_peer = kind == PP_OP_SEND ? dst : src;
    if (want_self != rank)
        FAIL(L, "%s: %s %s %ld.%ld does not belong on rank %d", path, name->valuestring,
             ck->valuestring, stage, mb, rank);
    if (want_peer != peer)
        FAIL(L, "%s.peer: %ld, but stage %d is on rank %d", path, peer,
             kind == PP_OP_SEND ? to : (int)stage, want_peer);
    return 0;
}

static int load_devices(loader *L, const cJSON *root, pp_plan *plan)
{
    const cJSON *devs = member(L, root, "", "devices", is_array, "an array");
    if (!devs)
        return 1;
    if (cJSON_GetArraySize(devs) != plan->devices)
        FAIL(L, "devices: %d entries, pipeline.devices is %d", cJSON_GetArraySize(devs),
             plan->devices);
    long total = 0;
    int r = 0;
    const cJSON *dj;
    cJSON_ArrayForEach(dj, devs) {
        char path[96];
        snprintf(path, sizeof path, "devices[%d]", r);
        if (!is_object(dj))
            FAIL(L, "%s: expected an object, got %s", path, type_name(dj));
        long rank;
        if (int_member(L, dj, path, "rank", 0, plan->devices - 1, "is not a rank", &rank))
            return 1;
        if (rank != r)
            FAIL(L, "%s.rank: %ld, expected %d (devices are listed in rank order)", path, rank, r);
        const cJSON *st = member(L, dj, path, "stages", is_array, "an array");
        if (!st)
            return 1;
        /* stages must be exactly the placement's stages of this rank, in order */
        int want = 0, k = 0;
        const cJSON *sj;
        cJSON_ArrayForEach(sj, st) {
            char sp[128];
            long s;
            snprintf(sp, sizeof sp, "%s.stages[%d]", path, k++);
            if (int_value(L, sj, sp, 0, plan->stages - 1, "is not a stage", &s))
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

        const cJSON *ops = member(L, dj, path, "ops", is_array, "an array");
        if (!ops)
            return 1;
        int n = cJSON_GetArraySize(ops);
        total += n;
        if (total > PP_MAX_OPS_TOTAL)
            FAIL(L, "devices: more than %ld ops", (long)PP_MAX_OPS_TOTAL);
        pp_plan_reserve(plan, r, n);
        int i = 0, prev_group = -1, max_group = -1;
        const cJSON *oj;
        cJSON_ArrayForEach(oj, ops) {
            char op_path[160];
            snprintf(op_path, sizeof op_path, "%s.ops[%d]", path, i);
            pp_op op;
            if (load_op(L, oj, op_path, plan, r, &op))
                return 1;
            /* groups usually grow along the list: scan back only when one does not */
            if (op.group >= 0 && op.group != prev_group && op.group <= max_group) {
                for (int j = 0; j < plan->dev[r].n; j++)
                    if (plan->dev[r].ops[j].group == op.group)
                        FAIL(L, "%s.group: %d is used earlier (ops[%d]) but not by the op before",
                             op_path, op.group, j);
            }
            if (op.kind == PP_OP_FLUSH && i != n - 1)
                FAIL(L, "%s: flush before the end of the list", op_path);
            prev_group = op.group;
            if (op.group > max_group)
                max_group = op.group;
            pp_plan_push(plan, r, op);
            i++;
        }
        if (n == 0 || plan->dev[r].ops[n - 1].kind != PP_OP_FLUSH)
            FAIL(L, "%s.ops: the list must end with flush", path);
        r++;
    }
    return 0;
}

static int load_root(loader *L, const cJSON *root, pp_plan *plan, pr_model *m)
{
    if (!is_object(root))
        FAIL(L, "expected a JSON object at the top, got %s", type_name(root));
    const cJSON *fmt = member(L, root, "", "format", is_string, "a string");
    if (!fmt)
        return 1;
    if (strcmp(fmt->valuestring, "ppcc-plan") != 0)
        FAIL(L, "format: \"%s\" is not \"ppcc-plan\"", fmt->valuestring);
    long version;
    if (int_member(L, root, "", "version", 1, 1e9, NULL, &version))
        return 1;
    if (version > PPRUN_PLAN_VERSION)
        FAIL(L, "version: %ld is newer than this pprun reads (%d)", version, PPRUN_PLAN_VERSION);
    if (load_pipeline(L, root, plan) || load_model(L, root, plan, m) || load_devices(L, root, plan))
        return 1;
    return 0;
}

int pr_plan_load_text(const char *name, const char *text, size_t len, pp_diag *d, pp_plan *plan,
                      pr_model *model)
{
    loader L = {d, name};
    memset(plan, 0, sizeof *plan);
    memset(model, 0, sizeof *model);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        pp_source src = {name, text, len};
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        const char *ep = cJSON_GetErrorPtr();
        if (ep && ep >= text && ep <= text + len)
            off = (size_t)(ep - text);
        pp_error_at(d, &src, off, "malformed JSON");
        return 1;
    }
    size_t off = (size_t)(end - text);
    while (off < len && strchr(" \t\r\n", text[off]))
        off++;
    if (off < len) {
        pp_source src = {name, text, len};
        cJSON_Delete(root);
        pp_error_at(d, &src, off, "trailing characters after the plan");
        return 1;
    }
    int rc = load_root(&L, root, plan, model);
    cJSON_Delete(root);
    if (!rc) {
        pp_verify_opts vo = {model->act_size, model->mem_limit, model->input_frac};
        rc = pp_verify(plan, &vo, d) != 0;
    }
    if (rc) {
        pp_plan_free(plan);
        pr_model_free(model);
    }
    return rc;
}

int pr_plan_load_file(const char *path, pp_diag *d, pp_plan *plan, pr_model *model)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        pp_error(d, "cannot open %s: %s", path, strerror(errno));
        return 1;
    }
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap + 1);
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        pp_error(d, "cannot read %s", path);
        return 1;
    }
    buf[n] = '\0';
    int rc = pr_plan_load_text(path, buf, n, d, plan, model);
    free(buf);
    return rc;
}

void pr_model_free(pr_model *m)
{
    free(m->layers_per_stage);
    free(m->first_layer);
    m->layers_per_stage = m->first_layer = NULL;
}
