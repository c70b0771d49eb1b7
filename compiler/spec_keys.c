/*
 * spec_keys.c — the settings a schedule file may give: one table of every
 * key with its canonical dotted name, its type and range and whether it
 * opens a block (the blocks' contents, the -D names and the hints of
 * "unknown setting" are all read off it, spec.c), and how a message about a
 * setting names it: at the key or the value in the file, or by the -D it
 * came from.
 */
#include <stdio.h>
#include <string.h>

#include "spec_internal.h"

const key_def spec_keys[S__COUNT] = {
    [S_DEVICES] = {"devices", K_INT, 1, PP_MAX_DEVICES, false, true},
    [S_VIRTUAL] = {"virtual", K_INT, 1, 64, false, true},
    [S_STAGES] = {"stages", K_INT, 1, PP_MAX_STAGES, false, true},
    /* a number, or auto (microbatches.c): microbatches auto { bubble = 0.1 } */
    [S_MICROBATCHES] = {"microbatches", K_INT, 1, PP_MAX_MICROBATCHES, true, true},
    [S_PLACEMENT] = {"placement", K_PLACEMENT, 0, 0, false, true},
    [S_SCHEDULE] = {"schedule", K_WORD, 0, 0, true, true},
    [S_GROUP] = {"schedule.group", K_INT, 1, PP_MAX_MICROBATCHES, false},
    [S_VSYNC] = {"schedule.vertical_sync", K_INT, 0, 1, false}, /* pipedream, docs/async.md */
    [S_COST_F] = {"cost.F", K_NUM, 0, 0, false},
    [S_COST_B] = {"cost.B", K_NUM, 0, 0, false},
    [S_COST_W] = {"cost.W", K_NUM, 0, 0, false},
    [S_COST_COMM] = {"cost.comm", K_NUM, 0, 0, false},
    [S_MEM_ACT] = {"memory.activation", K_BYTES, 0, 0, false},
    [S_MEM_LIMIT] = {"memory.limit", K_BYTES, 0, 0, false},
    [S_MODEL] = {"model", K_WORD, 0, 0, true},
    /* The model's limits are pprun's (pp.h), so that every plan runs. */
    [S_LAYERS] = {"model.layers", K_INT, 1, PP_MAX_LAYERS, false},
    [S_HIDDEN] = {"model.hidden", K_INT, 1, PP_MAX_HIDDEN, false},
    [S_BATCH] = {"model.batch", K_INT, 1, PP_MAX_BATCH, false},
    [S_OPTIMIZER] = {"model.optimizer", K_WORD, 0, 0, false},
    [S_LR] = {"model.lr", K_POS, 0, 0, false},
    [S_SEED] = {"model.seed", K_INT, 0, PP_MAX_SEED, false},
    [S_BALANCE] = {"model.balance", K_LIST, 0, 0, false},
    [S_RECOMPUTE] = {"memory.recompute", K_WORD, 0, 0, false},
    [S_RECOMPUTE_STAGES] = {"memory.recompute_stages", K_LIST, 0, 0, false},
    [S_MEM_INPUT] = {"memory.input", K_BYTES, 0, 0, false},
    /* model gpt's (docs/gpt.md); heads must divide hidden (spec_model.c) */
    [S_HEADS] = {"model.heads", K_INT, 1, PP_MAX_HIDDEN, false},
    [S_FFN] = {"model.ffn", K_INT, 1, PP_MAX_FFN, false},
    [S_SEQ] = {"model.seq", K_INT, 1, PP_MAX_SEQ, false},
    [S_VOCAB] = {"model.vocab", K_INT, PP_MIN_VOCAB, PP_MAX_VOCAB, false},
    [S_TIE] = {"model.tie", K_INT, 0, 1, false},
    [S_BETA1] = {"model.beta1", K_UNIT, 0, 0, false},
    [S_BETA2] = {"model.beta2", K_UNIT, 0, 0, false},
    [S_EPS] = {"model.eps", K_POS, 0, 0, false},
    [S_WEIGHT_DECAY] = {"model.weight_decay", K_NUM, 0, 0, false},
    [S_DATA] = {"model.data", K_PATH, 0, 0, false},
    [S_PRECISION] = {"model.precision", K_WORD, 0, 0, false},
    [S_LAYOUT] = {"model.layout", K_LAYOUT, 0, 0, false}, /* Megatron's, docs/megatron.md */
    /* docs/hardware.md: a preset, `hardware h100 { ... }`, and its fields */
    [S_HARDWARE] = {"hardware", K_WORD, 0, 0, true},
    [S_HW_FP32] = {"hardware.fp32_tflops", K_POS, 0, 0, false},
    [S_HW_TF32] = {"hardware.tf32_tflops", K_POS, 0, 0, false},
    [S_HW_BF16] = {"hardware.bf16_tflops", K_POS, 0, 0, false},
    [S_HW_EFFICIENCY] = {"hardware.efficiency", K_POS, 0, 0, false},
    [S_HW_MEMORY] = {"hardware.memory", K_BYTES, 0, 0, false},
    [S_HW_PER_NODE] = {"hardware.devices_per_node", K_INT, 1, PP_MAX_DEVICES, false},
    [S_HW_NODE_BW] = {"hardware.node_bandwidth", K_BYTES, 0, 0, false},
    [S_HW_NODE_LAT] = {"hardware.node_latency", K_NUM, 0, 0, false},
    [S_HW_NET_BW] = {"hardware.network_bandwidth", K_BYTES, 0, 0, false},
    [S_HW_NET_LAT] = {"hardware.network_latency", K_NUM, 0, 0, false},
    /* microbatches = auto's target and range, and the micro-batch the file's
     * per-micro-batch numbers are for (docs/costs.md) */
    [S_MB_BUBBLE] = {"microbatches.bubble", K_POS, 0, 0, false},
    [S_MB_MAX] = {"microbatches.max", K_INT, 1, 4096, false},
    [S_MB_REFERENCE] = {"microbatches.reference", K_INT, 1, PP_MAX_MICROBATCHES, false},
    /* replicas of the pipeline, and ZeRO-1's sharded optimizer state */
    [S_DATA_PARALLEL] = {"data_parallel", K_INT, 1, PP_MAX_REPLICAS, false, true},
    [S_ZERO] = {"zero", K_INT, 0, 1, false, true},
    /* ppcc chooses devices x data_parallel (gpus.c); 0: the file's split */
    [S_GPUS] = {"gpus", K_INT, 0, PP_MAX_RANKS, false, true},
    /* true (the default) or false: asynchronous communication (docs/plan-format.md, "wait") */
    [S_OVERLAP] = {"overlap", K_INT, 0, 1, false},
};

const char *const spec_stage_costs[3] = {"F", "B", "W"};

const char *spec_def_name(const ctx *c, int i) { return c->defs[i].name ? c->defs[i].name : ""; }
const char *spec_def_value(const ctx *c, int i) { return c->defs[i].value ? c->defs[i].value : ""; }

void spec_report_v(ctx *c, const origin *o, size_t offset, const char *key, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (o->def >= 0)
        pp_error(c->d, "-D %s=%s: %s", spec_def_name(c, o->def), spec_def_value(c, o->def), msg);
    else
        pp_error_at(c->d, c->src, offset, "%s: %s", key, msg);
}

void spec_report_key(ctx *c, enum slot s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    spec_report_v(c, &c->set[s].at, c->set[s].at.name_off, spec_keys[s].name, fmt, ap);
    va_end(ap);
}

void spec_report_at(ctx *c, const origin *o, size_t offset, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    spec_report_v(c, o, offset, key, fmt, ap);
    va_end(ap);
}

const char *spec_describe(const pp_value *v, char *buf, size_t size)
{
    const char *more = strlen(v->text) > 40 ? "..." : "";
    switch (v->kind) {
    case PP_VAL_LIST: return "a list";
    case PP_VAL_STRING: snprintf(buf, size, "\"%.40s%s\"", v->text, more); break;
    default: snprintf(buf, size, "'%.40s%s'", v->text, more); break;
    }
    return buf;
}
