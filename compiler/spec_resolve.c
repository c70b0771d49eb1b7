/*
 * spec_resolve.c — from the settings to the pp_spec: each default, what
 * depends on several settings (stages = devices * virtual, the placement,
 * the per-stage costs, the layer split, recompute, the order) and the checks
 * of settings against each other, reported at the key (or its -D) that
 * the user can change.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "spec_internal.h"

static double get(const ctx *c, enum slot s, double dflt) { return c->set[s].set ? c->set[s].num : dflt; }

/* Reports at the key's name (file) or its -D. */
__attribute__((format(printf, 3, 4))) static void report_key(ctx *c, enum slot s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    spec_report_v(c, &c->set[s].at, c->set[s].at.name_off, spec_keys[s].name, fmt, ap);
    va_end(ap);
}

/* An entry of an integer list (placement, balance, recompute_stages). */
static bool int_item(const pp_value *item, double lo, double hi)
{
    return item->kind == PP_VAL_NUMBER && item->number == floor(item->number) && item->number >= lo &&
           item->number <= hi;
}

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
        if (!int_item(item, 0, D - 1)) {
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
    k->F = get(c, S_COST_F, 1);
    k->B = get(c, S_COST_B, 1);
    k->W = get(c, S_COST_W, 0);
    k->comm = get(c, S_COST_COMM, 0);
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

static void resolve_model(ctx *c, pp_spec *spec)
{
    int S = spec->stages, M = spec->microbatches;
    pp_model *m = &spec->model;
    snprintf(m->kind, sizeof m->kind, "%s", c->set[S_MODEL].set ? c->set[S_MODEL].v->text : "mlp");
    snprintf(m->optimizer, sizeof m->optimizer, "%s", c->set[S_OPTIMIZER].set ? c->set[S_OPTIMIZER].v->text : "sgd");
    m->hidden = (int)get(c, S_HIDDEN, 64);
    m->lr = get(c, S_LR, 0.01);
    m->seed = (uint64_t)get(c, S_SEED, 1);
    m->layers_per_stage = pp_arena_alloc(c->a, (size_t)S * sizeof *m->layers_per_stage);

    /* balance: S positive integers, or a rule (layers.c, balance.c);
     * without layers a list defines them. */
    const setting *bs = &c->set[S_BALANCE];
    bool balanced = false;
    long sum = 0;
    m->balance = PP_BALANCE_EVEN;
    if (bs->set && bs->v->kind == PP_VAL_WORD) {
        const char *w = bs->v->text;
        m->balance = !strcmp(w, "auto")         ? PP_BALANCE_AUTO
                     : !strcmp(w, "parameters") ? PP_BALANCE_PARAMETERS
                     : !strcmp(w, "compute")    ? PP_BALANCE_COMPUTE
                                                : PP_BALANCE_EVEN;
    } else if (bs->set) {
        m->balance = PP_BALANCE_LIST;
        const pp_value *v = bs->v;
        balanced = true;
        if (v->nitems != S) {
            spec_report_at(c, &bs->at, v->offset, "model.balance",
                           "expected %d layer counts (one per stage), got %d", S, v->nitems);
            balanced = false;
        }
        for (int i = 0; balanced && i < S; i++) {
            const pp_value *item = v->items[i];
            if (!int_item(item, 1, PP_MAX_LAYERS)) {
                char got[64];
                spec_report_at(c, &bs->at, item->offset, "model.balance",
                               "entry %d: expected a positive number of layers, got %s", i,
                               spec_describe(item, got, sizeof got));
                balanced = false;
                break;
            }
            m->layers_per_stage[i] = (int)item->number;
            sum += (long)item->number;
        }
    }
    /* A layer list defines the layers too, and must agree with them. */
    double dflt_layers = spec->layers ? spec->n_layers : balanced && sum <= PP_MAX_LAYERS ? (double)sum : S;
    m->layers = (int)get(c, S_LAYERS, dflt_layers);
    if (spec->layers && m->layers != spec->n_layers) {
        report_key(c, S_LAYERS, "%d layers, but layer_costs lists %d", m->layers, spec->n_layers);
    } else if (c->layer_costs && !spec->layers) {
        /* the list's errors are reported */
    } else if (m->layers < S) {
        if (spec->layers && !c->set[S_LAYERS].set)
            pp_error_at(c->d, c->src, c->layer_costs->offset,
                        "layer_costs: %d layers cannot fill %d stages (each stage needs at least one layer)",
                        m->layers, S);
        else
            report_key(c, S_LAYERS, "%d layers cannot fill %d stages (each stage needs at least one layer)",
                       m->layers, S);
    } else if (balanced && sum != m->layers) {
        spec_report_at(c, &bs->at, bs->v->offset, "model.balance", "entries sum to %ld, but model.layers = %d", sum,
                       m->layers);
    } else if (!balanced) {
        /* As even as possible; the earlier stages take the extra layers. */
        for (int s = 0; s < S; s++)
            m->layers_per_stage[s] = m->layers / S + (s < m->layers % S);
    }

    /* auto: a batch that the M it may choose can split (up to microbatches.max) */
    m->batch = (int)get(c, S_BATCH, (double)(spec->microbatches_auto ? spec->mb_max : M) * 4);
    if (m->batch % M != 0)
        report_key(c, S_BATCH, "%d is not a multiple of microbatches = %d (each micro-batch takes batch / microbatches rows)",
                   m->batch, M);

    /* What pprun's loader holds (pp.h).  Only a hidden size that was set
     * can cross these (the defaults stay far below), so they are reported
     * at it, or at the batch that makes a micro-batch too large. */
    double weights = (double)m->layers * m->hidden * m->hidden;
    if (weights > (double)PP_MAX_WEIGHT_FLOATS)
        report_key(c, c->set[S_HIDDEN].set ? S_HIDDEN : S_LAYERS,
                   "%d layer%s of %d x %d weights are %.0f floats, more than pprun holds (%ld)", m->layers,
                   m->layers == 1 ? "" : "s", m->hidden, m->hidden, weights, PP_MAX_WEIGHT_FLOATS);
    double rows = (double)(m->batch / M), floats = rows * m->hidden;
    if (m->batch % M == 0 && floats > (double)PP_MAX_MICROBATCH_FLOATS)
        report_key(c, c->set[S_BATCH].set ? S_BATCH : S_HIDDEN,
                   "a micro-batch of %.0f rows x %d is %.0f floats, more than pprun holds (%ld)", rows, m->hidden,
                   floats, PP_MAX_MICROBATCH_FLOATS);
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
        report_key(c, S_RECOMPUTE_STAGES, "give either memory.recompute or memory.recompute_stages, not both");
        return;
    }
    if (mode->set) {
        bool all = !strcmp(mode->v->text, "always"), but_last = !strcmp(mode->v->text, "except_last");
        for (int s = 0; s < S; s++)
            spec->recompute[s] = all || (but_last && s < S - 1);
    }
    for (int i = 0; list->set && i < list->v->nitems; i++) {
        const pp_value *item = list->v->items[i];
        if (!int_item(item, 0, S - 1)) {
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
    double input = get(c, S_MEM_INPUT, dflt * act);
    spec->input_set = c->set[S_MEM_INPUT].set ? input : -1;
    if (c->set[S_MEM_INPUT].set && input > act)
        report_key(c, S_MEM_INPUT, "%g is more than memory.activation = %g (the input is part of the activations)",
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
    int S = spec->stages, D = spec->devices;
    pp_model *m = &spec->model;
    if (!spec->layers && !c->set[S_BALANCE].set)
        return;
    if (c->d->errors > errors_before || m->layers < S) {
        spec->layers = NULL; /* the shape is wrong: reported */
        return;
    }
    if (!spec->layers) {
        int L = m->layers;
        spec->layers = pp_arena_alloc(c->a, (size_t)L * sizeof *spec->layers);
        spec->n_layers = L;
        spec->layers_default = true;
        double share = (double)S / L, act = spec->act_size * share;
        for (int l = 0; l < L; l++)
            spec->layers[l] = (pp_layer){"layer", spec->cost.F * share, spec->cost.B * share, spec->cost.W * share,
                                         act, act / 2, 0, act / 2};
    }
    spec->stage_act = pp_arena_alloc(c->a, (size_t)S * sizeof *spec->stage_act);
    spec->stage_input = pp_arena_alloc(c->a, (size_t)S * sizeof *spec->stage_input);
    spec->static_mem = pp_arena_alloc(c->a, (size_t)D * sizeof *spec->static_mem);
    if (m->balance != PP_BALANCE_LIST)
        pp_balance_split(m->balance == PP_BALANCE_AUTO ? PP_BALANCE_EVEN : m->balance, spec->layers, spec->n_layers,
                         S, m->layers_per_stage);
    pp_spec_sum_layers(spec);
}

void spec_resolve(ctx *c, pp_spec *spec)
{
    int errors_before = c->d->errors;
    int D = (int)get(c, S_DEVICES, 4), V = (int)get(c, S_VIRTUAL, 1);
    long S = (long)D * V;
    if (S > PP_MAX_STAGES) {
        report_key(c, c->set[S_VIRTUAL].set ? S_VIRTUAL : S_DEVICES,
                   "devices * virtual = %d * %d = %ld stages, more than the limit of %d", D, V, S, PP_MAX_STAGES);
        return;
    }
    if (c->set[S_STAGES].set && (long)c->set[S_STAGES].num != S) {
        long given = (long)c->set[S_STAGES].num;
        char hint[80] = "";
        if (!c->set[S_VIRTUAL].set && given % D == 0)
            snprintf(hint, sizeof hint, "; for %ld stages per device set virtual = %ld", given / D, given / D);
        report_key(c, S_STAGES, "%ld stages do not match devices * virtual = %d * %d = %ld%s", given, D, V, S, hint);
    }
    spec->devices = D;
    spec->chunks = V;
    spec->stages = (int)S;
    /* auto: the reference stands in until microbatches.c chooses */
    spec->microbatches_auto = c->set[S_MICROBATCHES].set && c->set[S_MICROBATCHES].v->kind == PP_VAL_WORD;
    spec->mb_reference = (int)get(c, S_MB_REFERENCE, spec->microbatches_auto ? 1 : get(c, S_MICROBATCHES, 8));
    spec->microbatches = spec->microbatches_auto ? spec->mb_reference : (int)get(c, S_MICROBATCHES, 8);
    spec->mb_bubble = get(c, S_MB_BUBBLE, 0);
    spec->mb_max = (int)get(c, S_MB_MAX, 64);
    if (spec->mb_bubble >= 1)
        report_key(c, S_MB_BUBBLE, "must be below 1: a bubble is a fraction (0.1 is 10%%), got %g", spec->mb_bubble);
    for (enum slot k = S_MB_BUBBLE; k <= S_MB_MAX; k++)
        if (c->set[k].set && !spec->microbatches_auto && c->set[S_MICROBATCHES].at.def < 0 && c->set[k].at.def < 0)
            report_key(c, k, "only microbatches = auto reads it, but microbatches = %d", spec->microbatches);
    snprintf(spec->schedule, sizeof spec->schedule, "%s",
             c->set[S_SCHEDULE].set ? c->set[S_SCHEDULE].v->text : "1f1b");
    spec->group = (int)get(c, S_GROUP, 0);
    spec->vertical_sync = get(c, S_VSYNC, 0) != 0;
    if (spec->vertical_sync && strcmp(spec->schedule, "pipedream") != 0)
        report_key(c, S_VSYNC, "only schedule pipedream has a vertical sync, but schedule = %s", spec->schedule);
    spec->act_size = get(c, S_MEM_ACT, 1);
    spec->mem_limit = get(c, S_MEM_LIMIT, 0);
    resolve_placement(c, spec);
    resolve_cost(c, spec);
    spec_resolve_layers(c, spec);
    resolve_model(c, spec);
    resolve_recompute(c, spec);
    resolve_layers(c, spec, errors_before);
    if (spec->mb_reference != spec->microbatches && c->d->errors == errors_before)
        pp_spec_scale_microbatch(spec, (double)spec->mb_reference / spec->microbatches);
    spec_resolve_order(c, spec);
}
