/*
 * spec_internal.h — what the seven files that read a schedule file's
 * settings share (only compiler/spec*.c include it), each calling only the
 * ones listed before it:
 *   spec_keys.c     the table of settings, and how a message names one;
 *   spec_order.c    the order block: recorded by the walk, read once the
 *                   shape is known;
 *   spec_hardware.c the hardware block (a preset and its overrides), and
 *                   whether memory is in bytes;
 *   spec_layers.c   the layer_costs block: recorded by the walk, read into
 *                   the model's layers before the settings are resolved;
 *   spec_model.c    the model block: mlp or gpt, its defaults, its split
 *                   over the stages, its data file, pprun's limits, a
 *                   gpt's layers;
 *   spec_resolve.c  the rest: defaults, derived values, cross-checks;
 *   spec.c          names, values, the file walk, -D, pp_spec_build.
 */
#ifndef PP_SPEC_INTERNAL_H
#define PP_SPEC_INTERNAL_H

#include <math.h>
#include <stdarg.h>

#include "pp.h"

enum slot {
    S_DEVICES, S_VIRTUAL, S_STAGES, S_MICROBATCHES, S_PLACEMENT, S_SCHEDULE, S_GROUP, S_VSYNC,
    S_COST_F, S_COST_B, S_COST_W, S_COST_COMM, S_MEM_ACT, S_MEM_LIMIT,
    S_MODEL, S_LAYERS, S_HIDDEN, S_BATCH, S_OPTIMIZER, S_LR, S_SEED, S_BALANCE,
    S_RECOMPUTE, S_RECOMPUTE_STAGES, S_MEM_INPUT,
    /* model gpt only (docs/gpt.md) */
    S_HEADS, S_FFN, S_SEQ, S_VOCAB, S_TIE, S_BETA1, S_BETA2, S_EPS, S_WEIGHT_DECAY, S_DATA, S_PRECISION, S_LAYOUT,
    /* the hardware description (docs/hardware.md) */
    S_HARDWARE, S_HW_FP32, S_HW_TF32, S_HW_BF16, S_HW_EFFICIENCY, S_HW_MEMORY, S_HW_PER_NODE, S_HW_NODE_BW,
    S_HW_NODE_LAT, S_HW_NET_BW, S_HW_NET_LAT,
    S_MB_BUBBLE, S_MB_MAX, S_MB_REFERENCE,
    /* data parallelism (docs/dsl.md, "Data parallelism") */
    S_DATA_PARALLEL, S_ZERO, S_GPUS,
    S_OVERLAP,
    S__COUNT
};

enum kind {
    K_INT,       /* integer in [min, max] */
    K_NUM,       /* finite number >= 0 */
    K_POS,       /* finite number > 0 */
    K_WORD,      /* a name */
    K_PLACEMENT, /* loop | vshape | [devices] */
    K_LIST,      /* [integers], checked in spec_resolve() */
    K_UNIT,      /* number in [0, 1) */
    K_PATH,      /* a file name: a string in the file, the text as given after -D NAME= */
    K_BYTES,     /* a size: a number >= 0 (the file's unit), or with a unit, 80GB (bytes) */
    K_LAYOUT,    /* Megatron's layout: a string in the file, the text as given after -D NAME= */
};

typedef struct key_def {
    const char *name; /* canonical dotted name */
    enum kind kind;
    double min, max;  /* K_INT */
    bool block;       /* may carry a block of sub-settings */
    bool pipeline;    /* may be written in pipeline { } too */
} key_def;

/* Every setting, by slot (spec_keys.c). */
extern const key_def spec_keys[S__COUNT];
/* The costs a stage may override (cost.stage.N.F), by `which`. */
extern const char *const spec_stage_costs[3];

/* Where a setting came from: the file (def < 0) or defs[def]. */
typedef struct origin {
    int def;
    size_t name_off, value_off;
} origin;

typedef struct setting {
    bool set;
    origin at;
    const pp_value *v;
    double num;
    bool bytes; /* K_BYTES written with a unit: num is bytes */
} setting;

/* One `cost.stage.N.X`; which: 0 F, 1 B, 2 W.  seq keeps the order. */
typedef struct stage_cost {
    long stage;
    int which, seq;
    double value;
    origin at;
} stage_cost;

typedef struct ctx {
    pp_diag *d;
    const pp_source *src;
    const pp_define *defs;
    pp_arena *a;
    setting set[S__COUNT];
    stage_cost *overrides;
    int noverrides, capoverrides;
    const pp_item *order; /* the file's order block, if any */
    const pp_item *layer_costs; /* the file's layer_costs block, if any */
} ctx;

/* spec_keys.c: messages.  "KEY: msg" at offset in the file, or
 * "-D NAME=VALUE: msg" for a setting from defs[o->def]. */
void spec_report_v(ctx *c, const origin *o, size_t offset, const char *key, const char *fmt, va_list ap);
void spec_report_at(ctx *c, const origin *o, size_t offset, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The value as the user wrote it, for ", got ..." in file messages. */
const char *spec_describe(const pp_value *v, char *buf, size_t size);
/* Name and value of defs[i] ("" for NULL). */
const char *spec_def_name(const ctx *c, int i);
const char *spec_def_value(const ctx *c, int i);

/* The value of setting s, or dflt when it is not set. */
static inline double spec_get(const ctx *c, enum slot s, double dflt) { return c->set[s].set ? c->set[s].num : dflt; }
/* An entry of an integer list (placement, balance, recompute_stages) in [lo, hi]. */
static inline bool spec_int_item(const pp_value *item, double lo, double hi)
{
    return item->kind == PP_VAL_NUMBER && item->number == floor(item->number) && item->number >= lo &&
           item->number <= hi;
}
/* Reports at setting s's name (file) or its -D. */
void spec_report_key(ctx *c, enum slot s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* spec_order.c.  `order { rows }` at the top of the file: only recorded
 * by the walk (spec_record_order), read by spec_resolve_order once the
 * shape is known: one row per device, each op word checked for its shape
 * and range, into spec->order.  What the ops must satisfy together (each once, on its
 * stage's device, in dependency order) is the custom policy's to check,
 * with the same offsets. */
void spec_record_order(ctx *c, const pp_item *it);
void spec_resolve_order(ctx *c, pp_spec *spec);

/* spec_hardware.c: the hardware block into spec->hardware (NULL without
 * one), and spec->bytes: memory is in bytes when a memory setting has a
 * unit or a gpt meets a hardware description; then every memory setting
 * needs its unit, and memory.limit defaults to hardware.memory. */
void spec_resolve_hardware(ctx *c, pp_spec *spec);
/* Last: spec->units, how the views show its numbers (pp_view_units). */
void spec_resolve_units(ctx *c, pp_spec *spec);

/* spec_model.c: the model's settings into spec->model (the pipeline's
 * shape resolved before): mlp or gpt, defaults, the split of layers or
 * blocks over the stages, the data file, the limits of pp.h. */
void spec_resolve_model(ctx *c, pp_spec *spec);
/* After the layers are summed: zero = 1 needs optimizer state to shard (a
 * gpt on hardware with AdamW or bf16's master weights). */
void spec_resolve_zero(ctx *c, pp_spec *spec);

/* spec_layers.c.  `layer_costs { KIND [COUNT] { F = .. } ... }` at the top
 * of the file: recorded by the walk, read by spec_resolve_layers into
 * spec->layers (spec->n_layers of them; NULL after an error). */
void spec_record_layers(ctx *c, const pp_item *it);
void spec_resolve_layers(ctx *c, pp_spec *spec);

/* spec_resolve.c: the settings (c->set, c->overrides, c->order) into spec,
 * with every default, derived value and cross-check. */
void spec_resolve(ctx *c, pp_spec *spec);

#endif
