/*
 * spec_hardware.c — the hardware block (`hardware h100 { efficiency = 0.4
 * }`, docs/hardware.md) into spec->hardware: the preset, each field the
 * file overrides, checked; and whether memory is counted in bytes (a
 * memory setting written with a unit, docs/dsl.md "Units"), in which case
 * every memory setting needs one, so that no number is read in the wrong
 * unit, and a hardware description's memory is the limit unless the file
 * gives one.
 */
#include <string.h>

#include "spec_internal.h"

static const enum slot fields[] = {S_HW_FP32,   S_HW_TF32,    S_HW_BF16,   S_HW_EFFICIENCY,
                                   S_HW_MEMORY, S_HW_PER_NODE, S_HW_NODE_BW, S_HW_NODE_LAT,
                                   S_HW_NET_BW, S_HW_NET_LAT};
static const enum slot memory_keys[] = {S_MEM_ACT, S_MEM_LIMIT, S_MEM_INPUT};

static void resolve_fields(ctx *c, pp_spec *spec)
{
    pp_hardware *hw = pp_arena_alloc(c->a, sizeof *hw);
    *hw = *pp_hardware_preset(c->set[S_HARDWARE].v->text);
    static const enum slot flops[PP_PRECISIONS] = {S_HW_FP32, S_HW_TF32, S_HW_BF16};
    for (int p = 0; p < PP_PRECISIONS; p++)
        hw->flops[p] = spec_get(c, flops[p], hw->flops[p] / 1e12) * 1e12;
    hw->efficiency = spec_get(c, S_HW_EFFICIENCY, hw->efficiency);
    if (hw->efficiency > 1)
        spec_report_key(c, S_HW_EFFICIENCY, "%g is more than 1 (the share of the peak throughput a layer reaches)",
                        hw->efficiency);
    hw->memory = spec_get(c, S_HW_MEMORY, hw->memory);
    hw->devices_per_node = (int)spec_get(c, S_HW_PER_NODE, hw->devices_per_node);
    hw->node_bandwidth = spec_get(c, S_HW_NODE_BW, hw->node_bandwidth);
    hw->node_latency = spec_get(c, S_HW_NODE_LAT, hw->node_latency);
    hw->network_bandwidth = spec_get(c, S_HW_NET_BW, hw->network_bandwidth);
    hw->network_latency = spec_get(c, S_HW_NET_LAT, hw->network_latency);
    static const enum slot sizes[] = {S_HW_MEMORY, S_HW_NODE_BW, S_HW_NET_BW};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (c->set[sizes[i]].set && !(c->set[sizes[i]].num > 0))
            spec_report_key(c, sizes[i], "must be greater than 0");
    spec->hardware = hw;
}

void spec_resolve_hardware(ctx *c, pp_spec *spec)
{
    const setting *hs = &c->set[S_HARDWARE];
    if (hs->set) {
        resolve_fields(c, spec);
    } else {
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
            if (c->set[fields[i]].set)
                spec_report_key(c, fields[i], "overrides a field of a hardware preset, but none is given (as in "
                                "hardware h100 { ... }: %s)", pp_hardware_preset_names());
    }
    const char *model = c->set[S_MODEL].set ? c->set[S_MODEL].v->text : "mlp";
    if (hs->set && strcmp(model, "gpt") != 0)
        spec_report_key(c, S_HARDWARE, "needs model gpt, whose dimensions give each layer's FLOPs and bytes "
                        "(model %s's costs are the file's cost.F, cost.B, cost.W)", model);
    /* Memory in bytes: every memory setting with a unit, or none; a gpt on
     * hardware counts its layers' bytes (gpt_costs.c), so its settings take
     * units too. */
    bool gpt_bytes = hs->set && strcmp(model, "gpt") == 0;
    int with_unit = -1;
    for (size_t i = 0; i < sizeof memory_keys / sizeof memory_keys[0]; i++)
        if (c->set[memory_keys[i]].set && c->set[memory_keys[i]].bytes)
            with_unit = (int)memory_keys[i];
    spec->bytes = with_unit >= 0 || gpt_bytes;
    for (size_t i = 0; spec->bytes && i < sizeof memory_keys / sizeof memory_keys[0]; i++) {
        const setting *m = &c->set[memory_keys[i]];
        if (m->set && !m->bytes && m->num != 0) { /* 0 needs no unit (memory.limit = 0: none) */
            if (with_unit >= 0)
                spec_report_key(c, memory_keys[i], "memory is in bytes here (%s has a unit): give this one a unit "
                                "too, as in 2GB", spec_keys[with_unit].name);
            else
                spec_report_key(c, memory_keys[i], "memory is in bytes here (model gpt on hardware %s): give this "
                                "one a unit, as in 2GB", spec->hardware ? spec->hardware->name : "");
        }
    }
    for (int i = 0; gpt_bytes && i < 2; i++)
        if (c->set[i ? S_MEM_INPUT : S_MEM_ACT].set)
            spec_report_key(c, i ? S_MEM_INPUT : S_MEM_ACT, "model gpt on hardware %s counts each stage's "
                            "activations%s from its layers (docs/gpt.md, \"Costs\"): drop this",
                            spec->hardware ? spec->hardware->name : "", i ? " and the input it keeps to recompute" : "");
    if (spec->bytes && spec->hardware && !c->set[S_MEM_LIMIT].set)
        spec->mem_limit = spec->hardware->memory; /* what one device has, unless the file says less */
    if (spec->bytes && !gpt_bytes && !c->set[S_MEM_ACT].set)
        spec_report_key(c, (enum slot)with_unit, "memory in bytes needs memory.activation in bytes too (one "
                        "stage's activations for one micro-batch, as in memory.activation = 2GB)");
}

void spec_resolve_units(ctx *c, pp_spec *spec)
{
    (void)c;
    pp_view_units *u = &spec->units;
    const pp_model *m = &spec->model;
    u->seconds = spec->seconds;
    u->bytes = spec->bytes;
    u->mem = (pp_byte_unit){"GB", 1e9}; /* one unit whatever the sizes, so that every view and every
                                          * compilation of a file shows a size the same way */
    if (pp_model_is_gpt(m) && spec->seconds) {
        pp_gpt_shape g = {m->layers, m->hidden, m->heads, m->ffn, m->seq, m->vocab, m->batch, spec->microbatches,
                          m->tie};
        /* one replica's share of the step, so that per device means per
         * rank of the D x R */
        u->step_tokens = (double)m->batch * m->seq / spec->data_parallel;
        u->step_flops = pp_gpt_step_flops(&g) / spec->data_parallel;
        u->peak_flops = spec->hardware->flops[pp_precision_from_name(m->precision)];
    }
}
