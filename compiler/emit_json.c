/*
 * emit_json.c — writes the plan JSON, version 2 (docs/plan-format.md).
 *
 * The small sections (pipeline, model, cost, memory, stats) are cJSON
 * trees printed on one line each, so escaping and round-trip number
 * printing come from the library.  The op lists are another matter: a
 * plan can hold over a million ops, and a cJSON tree of that many nodes
 * costs seconds and gigabytes, so they are streamed through a hand-rolled
 * buffer with a small integer formatter, one op per line (diff-friendly),
 * and written with fwrite in large chunks.
 *
 * Layout:
 *   {
 *     "format": "ppcc-plan",
 *     "version": 2,
 *     "generator": "ppcc 0.1.0",
 *     "pipeline": {...one line...},
 *     ...
 *     "devices": [
 *       {"rank": 0, "stages": [0], "ops": [
 *         {"op": "F", "stage": 0, "mb": 0},
 *         ...
 *         {"op": "flush"}
 *       ]},
 *       ...
 *     ],
 *     "stats": {...one line...}
 *   }
 *
 * Any write error (a full disk, a closed pipe) makes it return non-zero.
 */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

#define PLAN_FORMAT_VERSION 2
#define GENERATOR "ppcc 0.1.0"

/* ---- a buffered writer for the op lists ---- */

enum { OUT_CAP = 1 << 20, OUT_SLACK = 256 }; /* one op line is far below OUT_SLACK */

typedef struct out {
    FILE *f;
    char *buf;
    size_t len;
    bool failed;
} out;

static void out_flush(out *o)
{
    if (o->len && !o->failed && fwrite(o->buf, 1, o->len, o->f) != o->len)
        o->failed = true;
    o->len = 0;
}

/* Makes room for n more bytes (n <= OUT_SLACK). */
static inline char *out_room(out *o, size_t n)
{
    if (o->len + n > OUT_CAP)
        out_flush(o);
    return o->buf + o->len;
}

static inline void out_lit(out *o, const char *s, size_t n)
{
    memcpy(out_room(o, n), s, n);
    o->len += n;
}
#define OUT_LIT(o, s) out_lit((o), (s), sizeof(s) - 1)

/* Decimal of a 32-bit int, no locale, no printf. */
static inline void out_int(out *o, int32_t v)
{
    char *p = out_room(o, 12);
    uint32_t u = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *p++ = '-', o->len++;
    for (int i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    o->len += (size_t)n;
}

/* Long strings (a cJSON section) bypass the buffer after flushing it. */
static void out_str(out *o, const char *s)
{
    size_t n = strlen(s);
    if (n <= OUT_SLACK) {
        out_lit(o, s, n);
        return;
    }
    out_flush(o);
    if (!o->failed && fwrite(s, 1, n, o->f) != n)
        o->failed = true;
}

static void out_op(out *o, const pp_plan *p, const pp_op *op)
{
    const pp_coll *c = pp_plan_op_coll(p, op);
    if (c && pp_coll_over_replicas(c)) { /* {"op": "allreduce", "what": "stage", "stage": 3, "device": 3, "ranks": [6, 7], "group": 9} */
        int R = pp_plan_replicas(p), dev = c->nranks > 0 ? c->ranks[0] : -1;
        OUT_LIT(o, "{\"op\": \"allreduce\", \"what\": \"");
        out_str(o, pp_coll_what_name(c->what));
        OUT_LIT(o, "\", \"stage\": ");
        out_int(o, c->stage);
        OUT_LIT(o, ", \"device\": ");
        out_int(o, dev);
        OUT_LIT(o, ", \"ranks\": [");
        for (int r = 0; r < R; r++) {
            if (r)
                OUT_LIT(o, ", ");
            out_int(o, pp_rank_of(dev, r, R));
        }
        OUT_LIT(o, "]");
        if (op->group >= 0) { /* asynchronous on the data-parallel lane: a wait names it */
            OUT_LIT(o, ", \"group\": ");
            out_int(o, op->group);
        }
        OUT_LIT(o, "}");
        return;
    }
    if (c) { /* docs/plan-format.md: {"op": "allreduce", "what": "tied", "ranks": [0, 3]} */
        OUT_LIT(o, "{\"op\": \"allreduce\", \"what\": \"");
        out_str(o, pp_coll_what_name(c->what));
        OUT_LIT(o, "\", \"ranks\": [");
        for (int k = 0; k < c->nranks; k++) {
            if (k)
                OUT_LIT(o, ", ");
            out_int(o, c->ranks[k]);
        }
        OUT_LIT(o, "]");
        if (c->what == PP_COLL_MIRROR) { /* the pipeline stage whose two copies it sums */
            OUT_LIT(o, ", \"stage\": ");
            out_int(o, op->stage);
        }
        OUT_LIT(o, "}");
        return;
    }
    if (op->kind == PP_OP_WAIT) { /* {"op": "wait", "group": 3} */
        OUT_LIT(o, "{\"op\": \"wait\", \"group\": ");
        out_int(o, op->group);
        OUT_LIT(o, "}");
        return;
    }
    OUT_LIT(o, "{\"op\": \"");
    out_str(o, pp_op_name(op->kind));
    OUT_LIT(o, "\"");
    bool comm = pp_op_is_comm(op->kind);
    if (comm) {
        OUT_LIT(o, ", \"kind\": \"");
        out_str(o, pp_comm_name(op->comm));
        OUT_LIT(o, "\"");
    }
    if (comm || pp_op_is_compute(op->kind) || op->stage >= 0) {
        OUT_LIT(o, ", \"stage\": ");
        out_int(o, op->stage);
        OUT_LIT(o, ", \"mb\": ");
        out_int(o, op->mb);
    }
    if (comm) {
        OUT_LIT(o, ", \"peer\": ");
        out_int(o, op->peer);
        OUT_LIT(o, ", \"group\": ");
        out_int(o, op->group);
    }
    OUT_LIT(o, "}");
}

/* ---- the small sections, as cJSON trees ---- */

static cJSON *int_array(const int *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

/* v[i] when given, else the default for every stage. */
static cJSON *double_array(const double *v, double dflt, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v ? v[i] : dflt));
    return a;
}

static cJSON *pipeline_json(const pp_spec *s, const pp_plan *p)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "schedule", p->schedule);
    cJSON_AddNumberToObject(j, "devices", p->devices);
    cJSON_AddNumberToObject(j, "stages", p->stages);
    int chunks = s && s->chunks > 0 ? s->chunks : (p->devices ? p->stages / p->devices : 0);
    cJSON_AddNumberToObject(j, "chunks", chunks);
    cJSON_AddNumberToObject(j, "microbatches", p->microbatches);
    cJSON_AddItemToObject(j, "placement", int_array(p->placement, p->stages));
    cJSON_AddBoolToObject(j, "split_backward", p->split_backward);
    if (p->mirrored) /* docs/dualpipe.md; absent = false */
        cJSON_AddBoolToObject(j, "mirrored", true);
    if (p->async != PP_ASYNC_NONE) { /* docs/async.md; absent = synchronous */
        cJSON_AddStringToObject(j, "async", pp_async_name(p->async));
        cJSON_AddBoolToObject(j, "vertical_sync", p->vertical_sync);
    }
    int R = pp_plan_replicas(p);
    if (R > 1) { /* docs/plan-format.md, "Data parallelism"; absent = one replica */
        cJSON_AddNumberToObject(j, "data_parallel", R);
        cJSON_AddBoolToObject(j, "zero", p->zero);
        cJSON *grid = cJSON_CreateArray(); /* [device, replica] of each rank */
        for (int d = 0; d < p->devices; d++)
            for (int r = 0; r < R; r++) {
                int pair[2] = {d, r};
                cJSON_AddItemToArray(grid, int_array(pair, 2));
            }
        cJSON_AddItemToObject(j, "ranks", grid);
    }
    return j;
}

/* A 64-bit seed does not survive a double: printed as written. */
static void add_seed(cJSON *j, uint64_t seed)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, seed);
    cJSON_AddRawToObject(j, "seed", text);
}

/* model gpt (docs/gpt.md, docs/plan-format.md): every setting, the blocks
 * of each stage and the stages that hold the embedding and the head. */
static cJSON *gpt_json(const pp_model *m, int stages)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", m->kind);
    cJSON_AddNumberToObject(j, "layers", m->layers);
    cJSON_AddNumberToObject(j, "hidden", m->hidden);
    cJSON_AddNumberToObject(j, "heads", m->heads);
    cJSON_AddNumberToObject(j, "ffn", m->ffn);
    cJSON_AddNumberToObject(j, "seq", m->seq);
    cJSON_AddNumberToObject(j, "vocab", m->vocab);
    cJSON_AddBoolToObject(j, "tie", m->tie);
    cJSON_AddNumberToObject(j, "batch", m->batch);
    cJSON_AddItemToObject(j, "blocks_per_stage", int_array(m->layers_per_stage, stages));
    cJSON_AddNumberToObject(j, "embedding_stage", 0);
    cJSON_AddNumberToObject(j, "head_stage", stages - 1);
    cJSON_AddStringToObject(j, "optimizer", m->optimizer);
    cJSON_AddNumberToObject(j, "lr", m->lr);
    if (strcmp(m->optimizer, "adamw") == 0) {
        cJSON_AddNumberToObject(j, "beta1", m->beta1);
        cJSON_AddNumberToObject(j, "beta2", m->beta2);
        cJSON_AddNumberToObject(j, "eps", m->eps);
        cJSON_AddNumberToObject(j, "weight_decay", m->weight_decay);
    }
    add_seed(j, m->seed);
    if (m->data) {
        cJSON_AddStringToObject(j, "data", m->data);
        char bytes[24];
        snprintf(bytes, sizeof bytes, "%" PRId64, m->data_bytes);
        cJSON_AddRawToObject(j, "data_bytes", bytes);
    } else {
        cJSON_AddNullToObject(j, "data"); /* synthetic tokens */
    }
    cJSON_AddStringToObject(j, "precision", m->precision);
    return j;
}

static cJSON *model_json(const pp_spec *s, int stages)
{
    const pp_model *m = &s->model;
    if (pp_model_is_gpt(m))
        return gpt_json(m, stages);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", m->kind);
    cJSON_AddNumberToObject(j, "layers", m->layers);
    cJSON_AddNumberToObject(j, "hidden", m->hidden);
    cJSON_AddNumberToObject(j, "batch", m->batch);
    if (m->layers_per_stage)
        cJSON_AddItemToObject(j, "layers_per_stage", int_array(m->layers_per_stage, stages));
    if (s->layers) /* docs/costs.md: how the split was chosen */
        cJSON_AddStringToObject(j, "balance", pp_balance_name(m->balance));
    cJSON_AddStringToObject(j, "optimizer", m->optimizer);
    cJSON_AddNumberToObject(j, "lr", m->lr);
    add_seed(j, m->seed);
    return j;
}

static cJSON *cost_json(const pp_spec *s, int stages)
{
    const pp_cost *c = &s->cost;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "F", c->F);
    cJSON_AddNumberToObject(j, "B", c->B);
    cJSON_AddNumberToObject(j, "W", c->W);
    cJSON_AddNumberToObject(j, "comm", c->comm);
    cJSON_AddItemToObject(j, "stage_F", double_array(c->stage_F, c->F, stages));
    cJSON_AddItemToObject(j, "stage_B", double_array(c->stage_B, c->B, stages));
    cJSON_AddItemToObject(j, "stage_W", double_array(c->stage_W, c->W, stages));
    if (s->seconds) /* a gpt on hardware (docs/hardware.md): seconds, transfers from bytes */
        cJSON_AddStringToObject(j, "unit", "s");
    if (c->stage_out)
        cJSON_AddItemToObject(j, "stage_out_bytes", double_array(c->stage_out, 0, stages));
    if (c->stage_grad && s->data_parallel > 1) /* what each stage's reduction over its replicas moves */
        cJSON_AddItemToObject(j, "stage_grad_bytes", double_array(c->stage_grad, 0, stages));
    return j;
}

static cJSON *hardware_json(const pp_hardware *hw)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "preset", hw->name);
    cJSON_AddNumberToObject(j, "fp32_flops", hw->flops[PP_FP32]);
    cJSON_AddNumberToObject(j, "tf32_flops", hw->flops[PP_TF32]);
    cJSON_AddNumberToObject(j, "bf16_flops", hw->flops[PP_BF16]);
    cJSON_AddNumberToObject(j, "efficiency", hw->efficiency);
    cJSON_AddNumberToObject(j, "memory", hw->memory);
    cJSON_AddNumberToObject(j, "devices_per_node", hw->devices_per_node);
    cJSON_AddNumberToObject(j, "node_bandwidth", hw->node_bandwidth);
    cJSON_AddNumberToObject(j, "node_latency", hw->node_latency);
    cJSON_AddNumberToObject(j, "network_bandwidth", hw->network_bandwidth);
    cJSON_AddNumberToObject(j, "network_latency", hw->network_latency);
    return j;
}

/* The model's layers (gpt_costs.c): seconds (0 without hardware) and bytes. */
static cJSON *layers_json(const pp_spec *s)
{
    cJSON *j = cJSON_CreateArray();
    for (int i = 0; i < s->n_layers; i++) {
        const pp_layer *l = &s->layers[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "kind", l->kind);
        cJSON_AddNumberToObject(e, "F", l->F);
        cJSON_AddNumberToObject(e, "B", l->B);
        cJSON_AddNumberToObject(e, "W", l->W);
        cJSON_AddNumberToObject(e, "act", l->act);
        cJSON_AddNumberToObject(e, "act_input", l->act_input);
        cJSON_AddNumberToObject(e, "weights", l->weights);
        cJSON_AddNumberToObject(e, "out", l->out);
        cJSON_AddItemToArray(j, e);
    }
    return j;
}

static cJSON *memory_json(const pp_spec *s)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "activation", s->act_size);
    cJSON_AddNumberToObject(j, "limit", s->mem_limit);
    if (s->bytes)
        cJSON_AddStringToObject(j, "unit", "B");
    if (s->stage_act) { /* layers: the per-stage model (docs/costs.md); without, the bytes stay */
        cJSON_AddItemToObject(j, "stage_activation", double_array(s->stage_act, 0, s->stages));
        cJSON_AddItemToObject(j, "stage_input", double_array(s->stage_input, 0, s->stages));
        cJSON_AddItemToObject(j, "static", double_array(s->static_mem, 0, s->devices));
    }
    /* Only with recompute (docs/recompute.md), or overlap, where it also
     * sizes a posted recv's buffer (docs/costs.md, "Posted receives"), so
     * other plans keep their bytes. */
    bool any = false;
    for (int st = 0; s->recompute && st < s->stages; st++)
        any |= s->recompute[st];
    if (any || (s->overlap && !s->stage_act))
        cJSON_AddNumberToObject(j, "input", s->cost.recompute_input);
    if (any) {
        cJSON *list = cJSON_CreateArray();
        for (int st = 0; st < s->stages; st++)
            if (s->recompute[st])
                cJSON_AddItemToArray(list, cJSON_CreateNumber(st));
        cJSON_AddItemToObject(j, "recompute_stages", list);
    }
    return j;
}

static cJSON *stats_json(const pp_plan *p, const pp_sim *sim)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "makespan", sim->makespan);
    cJSON_AddNumberToObject(j, "bubble", sim->bubble);
    if (sim->busy)
        cJSON_AddItemToObject(j, "busy", double_array(sim->busy, 0, p->devices));
    if (sim->peak_act)
        cJSON_AddItemToObject(j, "peak_activations", int_array(sim->peak_act, p->devices));
    if (sim->peak_mem) /* activation_memory.c's peak, the number of every view */
        cJSON_AddItemToObject(j, "peak_memory", double_array(sim->peak_mem, 0, p->devices));
    if (p->ncoll > 0) /* every collective's time, each once (--stats' allreduce=) */
        cJSON_AddNumberToObject(j, "allreduce", sim->coll_time);
    if (pp_plan_replicas(p) > 1) /* of it, the reductions over replicas (--stats' dp_allreduce=) */
        cJSON_AddNumberToObject(j, "dp_allreduce", sim->dp_time);
    if (sim->zero_saved) /* ZeRO-1's saving per device, already out of peak_memory */
        cJSON_AddItemToObject(j, "zero_saved", double_array(sim->zero_saved, 0, p->devices));
    double tps, mfu;
    if (pp_throughput(&sim->units, sim->makespan, p->devices, &tps, &mfu)) {
        cJSON_AddNumberToObject(j, "tokens_per_s_per_device", tps);
        cJSON_AddNumberToObject(j, "mfu", mfu);
    }
    return j;
}

/* `  "key": {...},\n` — takes ownership of the tree. */
static void out_section(out *o, const char *key, cJSON *tree, bool last)
{
    char *text = tree ? cJSON_PrintUnformatted(tree) : NULL;
    cJSON_Delete(tree);
    if (!text) {
        o->failed = true; /* out of memory */
        return;
    }
    OUT_LIT(o, "  \"");
    out_str(o, key);
    OUT_LIT(o, "\": ");
    out_str(o, text);
    out_str(o, last ? "\n" : ",\n");
    free(text);
}

static void out_device(out *o, const pp_plan *p, int r, const int *stage_order,
                       const int *stage_start, bool last)
{
    OUT_LIT(o, "    {\"rank\": ");
    out_int(o, r);
    OUT_LIT(o, ", \"stages\": [");
    for (int i = stage_start[r]; i < stage_start[r + 1]; i++) {
        if (i > stage_start[r])
            OUT_LIT(o, ", ");
        out_int(o, stage_order[i]);
    }
    OUT_LIT(o, "]");
    int R = pp_plan_replicas(p);
    if (R > 1) { /* the ranks that run this list, one per replica */
        OUT_LIT(o, ", \"ranks\": [");
        for (int k = 0; k < R; k++) {
            if (k)
                OUT_LIT(o, ", ");
            out_int(o, pp_rank_of(r, k, R));
        }
        OUT_LIT(o, "]");
    }
    OUT_LIT(o, ", \"ops\": [\n");
    const pp_device *dv = &p->dev[r];
    for (int i = 0; i < dv->n; i++) {
        OUT_LIT(o, "      ");
        out_op(o, p, &dv->ops[i]);
        if (i + 1 < dv->n)
            OUT_LIT(o, ",\n");
        else
            OUT_LIT(o, "\n");
    }
    if (last)
        OUT_LIT(o, "    ]}\n");
    else
        OUT_LIT(o, "    ]},\n");
}

int pp_emit_json(FILE *f, const pp_spec *s, const pp_plan *p, const pp_sim *sim)
{
    if (!f || !p || p->devices < 1 || p->stages < 0 || !p->dev || (p->stages && !p->placement))
        return 1;
    out o = {.f = f, .buf = malloc(OUT_CAP)};
    /* Each rank's stages in model order: a counting sort of the placement. */
    int *stage_start = calloc((size_t)p->devices + 1, sizeof *stage_start);
    int *stage_order = malloc(((size_t)p->stages + 1) * sizeof *stage_order);
    int *fill = calloc((size_t)p->devices, sizeof *fill);
    int rc = 1;
    if (!o.buf || !stage_start || !stage_order || !fill)
        goto done;
    for (int st = 0; st < p->stages; st++) {
        int r = p->placement[st];
        if (r < 0 || r >= p->devices)
            goto done; /* not a plan: refuse rather than write nonsense */
        stage_start[r + 1]++;
    }
    for (int r = 0; r < p->devices; r++)
        stage_start[r + 1] += stage_start[r];
    for (int st = 0; st < p->stages; st++) {
        int r = p->placement[st];
        stage_order[stage_start[r] + fill[r]++] = st;
    }

    OUT_LIT(&o, "{\n  \"format\": \"ppcc-plan\",\n  \"version\": ");
    out_int(&o, PLAN_FORMAT_VERSION);
    OUT_LIT(&o, ",\n  \"generator\": \"" GENERATOR "\",\n");
    out_section(&o, "pipeline", pipeline_json(s, p), false);
    if (s) {
        out_section(&o, "model", model_json(s, p->stages), false);
        out_section(&o, "cost", cost_json(s, p->stages), false);
        out_section(&o, "memory", memory_json(s), false);
        if (s->hardware)
            out_section(&o, "hardware", hardware_json(s->hardware), false);
        if (s->layers)
            out_section(&o, "layers", layers_json(s), false);
    }
    OUT_LIT(&o, "  \"devices\": [\n");
    for (int r = 0; r < p->devices; r++)
        out_device(&o, p, r, stage_order, stage_start, r + 1 == p->devices);
    if (sim) {
        OUT_LIT(&o, "  ],\n");
        out_section(&o, "stats", stats_json(p, sim), true);
    } else {
        OUT_LIT(&o, "  ]\n");
    }
    OUT_LIT(&o, "}\n");
    out_flush(&o);
    rc = o.failed || fflush(f) != 0 || ferror(f) ? 1 : 0;
done:
    free(o.buf);
    free(stage_start);
    free(stage_order);
    free(fill);
    return rc;
}
