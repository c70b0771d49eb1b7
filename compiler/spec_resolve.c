/*
 * spec_resolve.c — from the settings to the pp_spec: each default, what
 * depends on several settings (stages = devices * virtual, the placement,
 * the per-stage costs, recompute, the order; the model is spec_model.c's)
 * and the checks of settings against each other, reported at the key (or
 * its -D) that the user can change.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "spec_internal.h"

static void resolve_placement(ctx *c, pp_spec *spec)
{
    int D = spec->devices, S = spec->stages, V = spec->chunks;
    const setting *ps = &c->set[S_PLACEMENT];
    spec->placement = pp_arena_alloc(c->a, (size_t)S * sizeof *spec->placement);
    for (int s = 0; s < S; s++)
        spec->placement[s] = s % D;
    spec->placement_kind = PP_PLACE_LOOP;
    if (!ps->set)
        return;
    const pp_value *v = ps->v;
    if (v->kind == PP_VAL_WORD && !strcmp(v->text, "vshape")) {
        if (V != 2) {
            spec_report_at(c, &ps->at, v->offset, "placement",
                           "vshape needs virtual = 2 (two stages per device), but virtual = %d", V);
            return;
        }
        spec->placement_kind = PP_PLACE_VSHAPE;
        for (int s = 0; s < S; s++)
            spec->placement[s] = s < D ? s : 2 * D - 1 - s;
        return;
    }
    if (v->kind != PP_VAL_LIST)
        return; /* loop */
    if (v->nitems != S) {
        spec_report_at(c, &ps->at, v->offset, "placement", "expected %d device numbers (one per stage), got %d", S,
                       v->nitems);
        return;
    }
    int *count = pp_arena_alloc(c->a, (size_t)D * sizeof *count);
    bool ok = true;
    for (int s = 0; s < S; s++) {
        const pp_value *item = v->items[s];
        if (!spec_int_item(item, 0, D - 1)) {
            char got[64];
            spec_report_at(c, &ps->at, item->offset, "placement",
                           "entry %d (stage %d): expected a device 0..%d, got %s", s, s, D - 1,
                           spec_describe(item, got, sizeof got));
            ok = false;
            continue;
        }
        count[(int)item->number]++;
    }
    if (!ok)
        return;
    for (int dev = 0; dev < D; dev++)
        if (count[dev] != V) {
            spec_report_at(c, &ps->at, v->offset, "placement",
                           "device %d holds %d stage%s, but every device must hold stages / devices = %d", dev,
                           count[dev], count[dev] == 1 ? "" : "s", V);
            return;
        }
    spec->placement_kind = PP_PLACE_LIST;
    for (int s = 0; s < S; s++)
        spec->placement[s] = (int)v->items[s]->number;
}

static int cmp_override(const void *pa, const void *pb)
{
    const stage_cost *a = pa, *b = pb;
    if (a->stage != b->stage)
        return a->stage < b->stage ? -1 : 1;
    if (a->which != b->which)
        return a->which - b->which;
    return a->seq - b->seq;
}

static void resolve_cost(ctx *c, pp_spec *spec)
{
    int S = spec->stages;
    pp_cost *k = &spec->cost;
    k->F = spec_get(c, S_COST_F, 1);
    k->B = spec_get(c, S_COST_B, 1);
    k->W = spec_get(c, S_COST_W, 0);
    k->comm = spec_get(c, S_COST_COMM, 0);
    k->stage_F = pp_arena_alloc(c->a, (size_t)S * sizeof(double));
    k->stage_B = pp_arena_alloc(c->a, (size_t)S * sizeof(double));
    k->stage_W = pp_arena_alloc(c->a, (size_t)S * sizeof(double));
    k->fixed_F = pp_arena_alloc(c->a, (size_t)S * sizeof(double));
    k->fixed_B = pp_arena_alloc(c->a, (size_t)S * sizeof(double));
    k->fixed_W = pp_arena_alloc(c->a, (size_t)S * sizeof(double));
    for (int s = 0; s < S; s++) {
        k->stage_F[s] = k->F;
        k->stage_B[s] = k->B;
        k->stage_W[s] = k->W;
        k->fixed_F[s] = k->fixed_B[s] = k->fixed_W[s] = NAN;
    }
    /* Sorted by (stage, which, order): duplicates are neighbours and the
     * later of two settings wins. */
    if (c->noverrides)
        qsort(c->overrides, (size_t)c->noverrides, sizeof *c->overrides, cmp_override);
    for (int i = 0; i < c->noverrides; i++) {
        const stage_cost *o = &c->overrides[i];
        char name[64];
        snprintf(name, sizeof name, "cost.stage.%ld.%s", o->stage, spec_stage_costs[o->which]);
        if (o->stage >= S) {
            spec_report_at(c, &o->at, o->at.name_off, name, "stage %ld does not exist (stages are 0..%d)", o->stage,
                           S - 1);
            continue;
        }
        const stage_cost *prev = i > 0 ? &c->overrides[i - 1] : NULL;
        if (prev && prev->stage == o->stage && prev->which == o->which && prev->at.def < 0 && o->at.def < 0) {
            spec_report_at(c, &o->at, o->at.name_off, name, "duplicate setting");
            pp_note_at(c->d, c->src, prev->at.name_off, "'%s' was first set here", name);
            continue;
        }
        double *arr = o->which == 0 ? k->stage_F : o->which == 1 ? k->stage_B : k->stage_W;
        double *fixed = o->which == 0 ? k->fixed_F : o->which == 1 ? k->fixed_B : k->fixed_W;
        arr[o->stage] = fixed[o->stage] = o->value;
    }
}

/* memory.recompute (never | always | except_last) or the explicit list
 * memory.recompute_stages: which stages drop their activations after F and
 * recompute them before B (docs/recompute.md).  The list replaces the mode,
 * so giving both is an error. */
static void resolve_recompute(ctx *c, pp_spec *spec)
{
    int S = spec->stages;
    spec->recompute = pp_arena_alloc(c->a, (size_t)S * sizeof *spec->recompute);
    const setting *mode = &c->set[S_RECOMPUTE], *list = &c->set[S_RECOMPUTE_STAGES];
    if (mode->set && list->set) {
        spec_report_key(c, S_RECOMPUTE_STAGES, "give either memory.recompute or memory.recompute_stages, not both");
        return;
    }
    if (mode->set) {
        bool all = !strcmp(mode->v->text, "always"), but_last = !strcmp(mode->v->text, "except_last");
        for (int s = 0; s < S; s++)
            spec->recompute[s] = all || (but_last && s < S - 1 && !(spec->mirrored && s == S / 2 - 1));
    }
    for (int i = 0; list->set && i < list->v->nitems; i++) {
        const pp_value *item = list->v->items[i];
        if (!spec_int_item(item, 0, S - 1)) {
            char got[64];
            spec_report_at(c, &list->at, item->offset, "memory.recompute_stages",
                           "entry %d: expected a stage number (0..%d), got %s", i, S - 1,
                           spec_describe(item, got, sizeof got));
            continue;
        }
        spec->recompute[(int)item->number] = true;
    }
    /* The kept input is one [rows, hidden] buffer of the stage's 2 per
     * layer: by default 1 / (2 * layers per stage) of its activations. */
    int L = spec->model.layers > 0 ? spec->model.layers : S;
    double dflt = L >= S ? (double)S / (2.0 * L) : 0.5; /* too few layers: reported in resolve_model */
    double act = spec->act_size > 0 ? spec->act_size : 1;
    double input = spec_get(c, S_MEM_INPUT, dflt * act);
    spec->input_set = c->set[S_MEM_INPUT].set ? input : -1;
    if (c->set[S_MEM_INPUT].set && input > act && !spec->layer_ends) /* a gpt's: refused (spec_hardware.c) */
        spec_report_key(c, S_MEM_INPUT, "%g is more than memory.activation = %g (the input is part of the activations)",
                   input, act);
    spec->cost.recompute_input = input / act;
}

/* Layers are the unit of cost and memory once the file says anything
 * about them (docs/costs.md): a layer_costs list, or a balance.  Without a
 * list the reference MLP's L equal layers each take the share of a stage
 * of the even split: cost.F * S / L, memory.activation * S / L, keeping
 * half of that when recomputed, no static memory (the file's unit counts
 * activations).  Then the split: a list's, or its rule's (auto starts
 * even: balance.c searches once the policy can run), and the sums. */
static void resolve_layers(ctx *c, pp_spec *spec, int errors_before)
{
    int S = spec->stages, D = spec->devices, P = pp_spec_pipe_stages(spec);
    pp_model *m = &spec->model;
    if (spec->layer_ends) { /* a gpt's on hardware (spec_model.c): summed again with memory.input known */
        pp_spec_sum_layers(spec);
        return;
    }
    if (pp_model_is_gpt(m) || (!spec->layers && !c->set[S_BALANCE].set))
        return;
    if (c->d->errors > errors_before || m->layers < P) {
        spec->layers = NULL; /* the shape is wrong: reported */
        return;
    }
    if (!spec->layers) {
        int L = m->layers;
        spec->layers = pp_arena_alloc(c->a, (size_t)L * sizeof *spec->layers);
        spec->n_layers = L;
        spec->layers_default = true;
        double share = (double)P / L, act = spec->act_size * share;
        for (int l = 0; l < L; l++)
            spec->layers[l] = (pp_layer){.kind = "layer", .F = spec->cost.F * share, .B = spec->cost.B * share,
                                         .W = spec->cost.W * share, .act = act, .act_input = act / 2,
                                         .out = act / 2};
    }
    spec->stage_act = pp_arena_alloc(c->a, (size_t)S * sizeof *spec->stage_act);
    spec->stage_input = pp_arena_alloc(c->a, (size_t)S * sizeof *spec->stage_input);
    spec->static_mem = pp_arena_alloc(c->a, (size_t)D * sizeof *spec->static_mem);
    if (m->balance != PP_BALANCE_LIST)
        pp_balance_split(m->balance == PP_BALANCE_AUTO ? PP_BALANCE_EVEN : m->balance, spec->layers, spec->n_layers,
                         P, m->layers_per_stage);
    for (int st = P; st < S; st++) /* a mirrored plan's copies */
        m->layers_per_stage[st] = m->layers_per_stage[st - P];
    pp_spec_sum_layers(spec);
}

void spec_resolve(ctx *c, pp_spec *spec)
{
    int errors_before = c->d->errors;
    int D = (int)spec_get(c, S_DEVICES, 4), V = (int)spec_get(c, S_VIRTUAL, 1);
    long S = (long)D * V;
    if (S > PP_MAX_STAGES) {
        spec_report_key(c, c->set[S_VIRTUAL].set ? S_VIRTUAL : S_DEVICES,
                   "devices * virtual = %d * %d = %ld stages, more than the limit of %d", D, V, S, PP_MAX_STAGES);
        return;
    }
    if (c->set[S_STAGES].set && (long)c->set[S_STAGES].num != S) {
        long given = (long)c->set[S_STAGES].num;
        char hint[80] = "";
        if (!c->set[S_VIRTUAL].set && given % D == 0)
            snprintf(hint, sizeof hint, "; for %ld stages per device set virtual = %ld", given / D, given / D);
        spec_report_key(c, S_STAGES, "%ld stages do not match devices * virtual = %d * %d = %ld%s", given, D, V, S, hint);
    }
    spec->devices = D;
    spec->chunks = V;
    spec->stages = (int)S;
    spec->data_parallel = (int)spec_get(c, S_DATA_PARALLEL, 1);
    spec->zero = spec_get(c, S_ZERO, 0) != 0;
    spec->cost.replicas = spec->data_parallel;
    if ((long)D * spec->data_parallel > PP_MAX_RANKS)
        spec_report_key(c, S_DATA_PARALLEL, "devices x data_parallel = %d x %d = %ld ranks, more than the limit of %d",
                        D, spec->data_parallel, (long)D * spec->data_parallel, PP_MAX_RANKS);
    spec->gpus = (int)spec_get(c, S_GPUS, 0);
    /* the search replaces the split; a -D gpus=N overrides the file's */
    static const enum slot chosen[] = {S_DEVICES, S_DATA_PARALLEL};
    bool gpus_by_d = c->set[S_GPUS].at.def >= 0;
    for (size_t i = 0; spec->gpus > 0 && i < sizeof chosen / sizeof chosen[0]; i++)
        if (c->set[chosen[i]].set && (!gpus_by_d || c->set[chosen[i]].at.def >= 0))
            spec_report_key(c, chosen[i], "gpus = %d chooses devices and data_parallel (docs/auto.md): drop this or "
                            "gpus", spec->gpus);
    if (spec->zero && spec->data_parallel == 1 && spec->gpus == 0)
        spec_report_key(c, S_ZERO, "zero = 1 shards the optimizer state over the data-parallel replicas, but "
                        "data_parallel = 1");
    /* auto: the reference stands in until microbatches.c chooses */
    spec->microbatches_auto = c->set[S_MICROBATCHES].set && c->set[S_MICROBATCHES].v->kind == PP_VAL_WORD;
    spec->mb_reference = (int)spec_get(c, S_MB_REFERENCE, spec->microbatches_auto ? 1 : spec_get(c, S_MICROBATCHES, 8));
    spec->microbatches = spec->microbatches_auto ? spec->mb_reference : (int)spec_get(c, S_MICROBATCHES, 8);
    spec->mb_bubble = spec_get(c, S_MB_BUBBLE, 0);
    spec->mb_max = (int)spec_get(c, S_MB_MAX, 64);
    if (spec->mb_bubble >= 1)
        spec_report_key(c, S_MB_BUBBLE, "must be below 1: a bubble is a fraction (0.1 is 10%%), got %g", spec->mb_bubble);
    for (enum slot k = S_MB_BUBBLE; k <= S_MB_MAX; k++)
        if (c->set[k].set && !spec->microbatches_auto && c->set[S_MICROBATCHES].at.def < 0 && c->set[k].at.def < 0)
            spec_report_key(c, k, "only microbatches = auto reads it, but microbatches = %d", spec->microbatches);
    snprintf(spec->schedule, sizeof spec->schedule, "%s",
             c->set[S_SCHEDULE].set ? c->set[S_SCHEDULE].v->text : "1f1b");
    const pp_policy *policy = pp_policy_find(spec->schedule);
    spec->mirrored = policy && policy->mirrored && spec->stages % 2 == 0;
    spec->group = (int)spec_get(c, S_GROUP, 0);
    spec->vertical_sync = spec_get(c, S_VSYNC, 0) != 0;
    if (spec->data_parallel > 1 && strcmp(spec->schedule, "pipedream") == 0)
        spec_report_key(c, S_DATA_PARALLEL, "the replicas' gradients are summed before one update a step, but "
                        "schedule pipedream updates after every B (docs/async.md)");
    spec->overlap = spec_get(c, S_OVERLAP, 1) != 0;
    if (spec->vertical_sync && strcmp(spec->schedule, "pipedream") != 0)
        spec_report_key(c, S_VSYNC, "only schedule pipedream has a vertical sync, but schedule = %s", spec->schedule);
    spec->act_size = spec_get(c, S_MEM_ACT, 1);
    spec->mem_limit = spec_get(c, S_MEM_LIMIT, 0);
    resolve_placement(c, spec);
    resolve_cost(c, spec);
    spec_resolve_hardware(c, spec);
    spec_resolve_layers(c, spec);
    spec_resolve_model(c, spec);
    resolve_recompute(c, spec);
    resolve_layers(c, spec, errors_before);
    /* a gpt's layers are derived for its own micro-batch size: never scaled */
    /* a micro-batch is batch / (data_parallel x microbatches) rows */
    long mb_rows_per = (long)spec->microbatches * spec->data_parallel;
    if (spec->mb_reference != mb_rows_per && c->d->errors == errors_before && !pp_model_is_gpt(&spec->model))
        pp_spec_scale_microbatch(spec, (double)spec->mb_reference / (double)mb_rows_per);
    spec_resolve_zero(c, spec);
    spec_resolve_order(c, spec);
    spec_resolve_units(c, spec);
}
