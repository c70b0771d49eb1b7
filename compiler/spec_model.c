/*
 * spec_model.c — the model block (`model mlp { ... }`, `model gpt { ... }`)
 * into spec->model, once the pipeline's shape is known: each default (some
 * depend on the kind, the optimizer or the width), the split of layers
 * (mlp) or blocks (gpt) over the stages, the checks of the transformer's
 * settings against each other (heads dividing hidden, settings of the
 * other model or optimizer, the data file and the vocabulary its bytes
 * need), and pprun's limits (pp.h), each reported at the key the user can
 * change; then a gpt's layers (gpt_costs.c) and, on hardware, its stages'
 * times in seconds and the bytes of their transfers.  docs/dsl.md lists the keys, docs/gpt.md the transformer.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "spec_internal.h"

/* Settings only model gpt takes, and of those, only its optimizer adamw. */
static const enum slot gpt_only[] = {S_HEADS, S_FFN,          S_SEQ,  S_VOCAB,        S_TIE,      S_BETA1,
                                     S_BETA2, S_EPS,          S_DATA, S_WEIGHT_DECAY, S_PRECISION,
                                     S_LAYOUT};
static const enum slot adamw_only[] = {S_BETA1, S_BETA2, S_EPS, S_WEIGHT_DECAY};

static const char *word_or(const ctx *c, enum slot s, const char *dflt)
{
    return c->set[s].set ? c->set[s].v->text : dflt;
}

/* Layers (mlp) or blocks (gpt) per stage: a balance of S counts, a rule
 * (even, parameters, compute, auto: layers.c and balance.c split once the
 * layers are known) or, without one, as even a split as possible, the
 * earlier stages taking the extra ones.  Every mlp stage holds a layer; a
 * gpt's first and last stage hold the embedding and the head, and may hold
 * no block.  A layer_costs list defines the layers too, and must agree; a
 * gpt's model.layout (Megatron's string, megatron_layout.c) is a list. */
static void resolve_split(ctx *c, pp_spec *spec, bool gpt)
{
    int S = pp_spec_pipe_stages(spec); /* mirrored: one pipeline's, copied below */
    pp_model *m = &spec->model;
    const char *unit = gpt ? "block" : "layer";
    m->layers_per_stage = pp_arena_alloc(c->a, (size_t)spec->stages * sizeof *m->layers_per_stage);
    const setting *bs = &c->set[S_BALANCE];
    bool balanced = false;
    long sum = 0;
    m->balance = PP_BALANCE_EVEN;
    if (gpt && c->layer_costs) {
        pp_error_at(c->d, c->src, c->layer_costs->offset,
                    "layer_costs: model gpt derives its layers from its dimensions (docs/gpt.md); drop this block");
        spec->layers = NULL;
    }
    const setting *ls = &c->set[S_LAYOUT]; /* Megatron's layout string: a list of blocks by another name */
    bool layout_refused = false;
    if (gpt && ls->set && bs->set) {
        spec_report_key(c, S_LAYOUT, "give model.layout or model.balance, not both (each splits the blocks over "
                        "the stages)");
    } else if (gpt && ls->set) {
        char msg[400];
        size_t at = 0;
        if (pp_megatron_layout_read(ls->v->text, S, m->layers_per_stage, msg, sizeof msg, &at)) {
            spec_report_at(c, &ls->at, ls->v->offset + 1 + at, "model.layout", "%s", msg);
            layout_refused = true;
        } else {
            m->balance = PP_BALANCE_LIST;
            balanced = true;
            for (int i = 0; i < S; i++)
                sum += m->layers_per_stage[i];
        }
    } else if (bs->set && bs->v->kind == PP_VAL_WORD) {
        const char *w = bs->v->text;
        m->balance = !strcmp(w, "auto")         ? PP_BALANCE_AUTO
                     : !strcmp(w, "parameters") ? PP_BALANCE_PARAMETERS
                     : !strcmp(w, "compute")    ? PP_BALANCE_COMPUTE
                                                : PP_BALANCE_EVEN;
        if (gpt && m->balance != PP_BALANCE_EVEN && !spec->hardware) {
            spec_report_at(c, &bs->at, bs->v->offset, "model.balance",
                           "balance = %s weighs a gpt's layers in seconds and bytes, which need a hardware "
                           "description (docs/hardware.md); without one give the blocks of each stage as a list, "
                           "as in [0,4,4,4]", w);
            m->balance = PP_BALANCE_EVEN;
        }
    } else if (bs->set) {
        m->balance = PP_BALANCE_LIST;
        const pp_value *v = bs->v;
        balanced = true;
        if (v->nitems != S) {
            spec_report_at(c, &bs->at, v->offset, "model.balance", "expected %d %s counts (one per stage), got %d", S,
                           unit, v->nitems);
            balanced = false;
        }
        for (int i = 0; balanced && i < S; i++) {
            const pp_value *item = v->items[i];
            bool ends = gpt && (i == 0 || i == S - 1);
            char got[64];
            if (!spec_int_item(item, ends ? 0 : 1, PP_MAX_LAYERS)) {
                if (gpt && spec_int_item(item, 0, 0))
                    spec_report_at(c, &bs->at, item->offset, "model.balance",
                                   "entry %d: stage %d needs at least one block (only the first and the last stage, "
                                   "which hold the embedding and the head, may hold none)", i, i);
                else
                    spec_report_at(c, &bs->at, item->offset, "model.balance", "entry %d: expected a %s number of %ss, "
                                   "got %s", i, ends ? "non-negative" : "positive", unit,
                                   spec_describe(item, got, sizeof got));
                balanced = false;
                break;
            }
            m->layers_per_stage[i] = (int)item->number;
            sum += (long)item->number;
        }
    }
    bool listed = !gpt && spec->layers; /* layer_costs */
    bool ruled = gpt && m->balance != PP_BALANCE_EVEN && m->balance != PP_BALANCE_LIST; /* split over its layers */
    double dflt = listed ? spec->n_layers : balanced && sum <= PP_MAX_LAYERS ? (double)sum : S;
    m->layers = (int)spec_get(c, S_LAYERS, dflt);
    if (listed && m->layers != spec->n_layers) {
        spec_report_key(c, S_LAYERS, "%d layers, but layer_costs lists %d", m->layers, spec->n_layers);
    } else if ((!gpt && c->layer_costs && !spec->layers) || layout_refused) {
        /* the list's or the layout's errors are reported */
    } else if (balanced && m->layers == 0) {
        if (ls->set)
            spec_report_at(c, &ls->at, ls->v->offset, "model.layout", "no t: a model needs a block");
        else
            spec_report_at(c, &bs->at, bs->v->offset, "model.balance", "entries sum to 0, but a model needs a block");
    } else if (!gpt && m->layers < S) {
        if (listed && !c->set[S_LAYERS].set)
            pp_error_at(c->d, c->src, c->layer_costs->offset,
                        "layer_costs: %d layers cannot fill %d stages (each stage needs at least one layer)",
                        m->layers, S);
        else
            spec_report_key(c, S_LAYERS, "%d layers cannot fill %d stages (each stage needs at least one layer)",
                            m->layers, S);
    } else if (balanced && sum != m->layers) {
        if (ls->set)
            spec_report_at(c, &ls->at, ls->v->offset, "model.layout", "%ld blocks (t), but model.layers = %d", sum,
                           m->layers);
        else
            spec_report_at(c, &bs->at, bs->v->offset, "model.balance", "entries sum to %ld, but model.layers = %d",
                           sum, m->layers);
    } else if (!balanced && ruled && m->layers + 2 < S) {
        spec_report_key(c, S_LAYERS, "%d blocks cannot fill %d stages (with the embedding and the head, %d layers: "
                        "every stage needs one, every middle stage a block)", m->layers, S, m->layers + 2);
    } else if (!balanced && !ruled && m->layers < S) {
        spec_report_key(c, S_LAYERS, "%d blocks cannot fill %d stages by an even split (a balance may leave the "
                        "first and the last stage without a block)", m->layers, S);
    } else if (!balanced && m->layers < S) {
        /* a rule's, on fewer blocks than stages: resolve_gpt_costs splits */
    } else if (!balanced) {
        for (int s = 0; s < S; s++)
            m->layers_per_stage[s] = m->layers / S + (s < m->layers % S);
    }
    for (int s = S; s < spec->stages; s++) /* a mirrored plan's copies */
        m->layers_per_stage[s] = m->layers_per_stage[s - S];
}

/* What pprun's loader holds of an mlp (pp.h).  Only a hidden size that
 * was set can cross these (the defaults stay far below), so they are
 * reported at it, or at the batch that makes a micro-batch too large. */
static void check_mlp_limits(ctx *c, const pp_model *m, int M)
{
    double weights = (double)m->layers * m->hidden * m->hidden;
    if (weights > (double)PP_MAX_WEIGHT_FLOATS)
        spec_report_key(c, c->set[S_HIDDEN].set ? S_HIDDEN : S_LAYERS,
                        "%d layer%s of %d x %d weights are %.0f floats, more than pprun holds (%ld)", m->layers,
                        m->layers == 1 ? "" : "s", m->hidden, m->hidden, weights, PP_MAX_WEIGHT_FLOATS);
    double rows = (double)(m->batch / M), floats = rows * m->hidden;
    if (m->batch % M == 0 && floats > (double)PP_MAX_MICROBATCH_FLOATS)
        spec_report_key(c, c->set[S_BATCH].set ? S_BATCH : S_HIDDEN,
                        "a micro-batch of %.0f rows x %d is %.0f floats, more than pprun holds (%ld)", rows, m->hidden,
                        floats, PP_MAX_MICROBATCH_FLOATS);
}

/* The gpt's shape as pp.h's functions take it. */
static pp_gpt_shape shape_of(const pp_model *m, int M)
{
    return (pp_gpt_shape){m->layers, m->hidden, m->heads, m->ffn, m->seq, m->vocab, m->batch, M, m->tie};
}

/* The gpt's limits (model_limits.c), at the first setting of the product
 * that the user set. */
static void check_gpt_limits(ctx *c, const pp_model *m, int M)
{
    static const enum slot slot_of[] = {
        [PP_GPT_LAYERS] = S_LAYERS, [PP_GPT_HIDDEN] = S_HIDDEN, [PP_GPT_HEADS] = S_HEADS, [PP_GPT_FFN] = S_FFN,
        [PP_GPT_SEQ] = S_SEQ,       [PP_GPT_VOCAB] = S_VOCAB,   [PP_GPT_BATCH] = S_BATCH,
    };
    pp_gpt_shape g = shape_of(m, M);
    pp_gpt_limit lim;
    if (!pp_gpt_limit_crossed(&g, &lim))
        return;
    for (int i = 0; i < lim.ndims; i++)
        if (c->set[slot_of[lim.dims[i]]].set) {
            spec_report_key(c, slot_of[lim.dims[i]], "%s", lim.msg);
            return;
        }
    pp_error(c->d, "model: %s", lim.msg); /* defaults alone: not reached with pp.h's limits */
}

/* model.data: none (synthetic tokens), or a file.  A relative name is read
 * from the schedule file's directory (from the current one when given by
 * -D, or for a file read from standard input, whose name has no
 * directory), written into the plan as an absolute path without links;
 * the file is checked (data_file.c) now. */
static void resolve_data(ctx *c, pp_model *m)
{
    const setting *ds = &c->set[S_DATA];
    if (!ds->set || ds->v->kind == PP_VAL_WORD) /* none: synthetic tokens */
        return;
    const char *name = ds->v->text, *file = c->src->path, *slash = strrchr(file, '/');
    char path[PATH_MAX];
    if (name[0] != '/' && ds->at.def < 0 && slash)
        snprintf(path, sizeof path, "%.*s/%s", (int)(slash - file), file, name);
    else
        snprintf(path, sizeof path, "%s", name);
    if (strlen(path) + 1 >= sizeof path) {
        spec_report_at(c, &ds->at, ds->at.value_off, "model.data", "the file name is too long (at most %d bytes)",
                       PATH_MAX - 1);
        return;
    }
    char where[PATH_MAX + 64] = "";
    if (strcmp(path, name) != 0)
        snprintf(where, sizeof where, " (read from the schedule file's directory: %s)", path);
    char err[256];
    int64_t bytes = 0;
    if (pp_data_file_check(path, m->seq, &bytes, err, sizeof err)) {
        spec_report_at(c, &ds->at, ds->at.value_off, "model.data", "\"%s\"%s %s", name, where, err);
        return;
    }
    char *absolute = realpath(path, NULL);
    if (!absolute) {
        spec_report_at(c, &ds->at, ds->at.value_off, "model.data", "\"%s\"%s cannot be resolved: %s", name, where,
                       strerror(errno));
        return;
    }
    m->data = pp_arena_strdup(c->a, absolute);
    m->data_bytes = bytes;
    free(absolute);
}

static void resolve_gpt(ctx *c, pp_spec *spec)
{
    pp_model *m = &spec->model;
    bool adamw = strcmp(m->optimizer, "adamw") == 0;
    for (size_t i = 0; !adamw && i < sizeof adamw_only / sizeof adamw_only[0]; i++)
        if (c->set[adamw_only[i]].set)
            spec_report_key(c, adamw_only[i], "only optimizer adamw takes it, but optimizer = %s", m->optimizer);
    /* GPT-2's head size, 64, where the width allows it. */
    m->heads = (int)spec_get(c, S_HEADS, m->hidden % 64 == 0 ? m->hidden / 64 : 1);
    if (m->hidden % m->heads != 0)
        spec_report_key(c, S_HEADS, "%d heads do not divide hidden = %d (each head takes hidden / heads features)",
                        m->heads, m->hidden);
    m->ffn = (int)spec_get(c, S_FFN, 4.0 * m->hidden);
    m->seq = (int)spec_get(c, S_SEQ, 64);
    m->vocab = (int)spec_get(c, S_VOCAB, PP_BYTE_VOCAB);
    m->tie = spec_get(c, S_TIE, 1) != 0;
    /* The asynchronous policies compute with stored versions of each
     * stage's weights (pipedream's stash, 2bw's previous step; docs/async.md),
     * and the head shares wte with the embedding's stage, whose versions it
     * does not follow: on one device it would read the current wte, across
     * two the copies would need a sum at every update of either. */
    bool async = strcmp(spec->schedule, "pipedream") == 0 || strcmp(spec->schedule, "2bw") == 0;
    if (m->tie && async)
        spec_report_key(c, c->set[S_TIE].set ? S_TIE : S_SCHEDULE,
                        "schedule %s cannot train a tied embedding (tie = true%s): it computes with stored "
                        "versions of each stage's weights, and the head shares wte with the embedding's stage, "
                        "whose versions it does not follow; set model.tie = false",
                        spec->schedule, c->set[S_TIE].set ? "" : ", the default");
    m->beta1 = adamw ? spec_get(c, S_BETA1, 0.9) : 0;
    m->beta2 = adamw ? spec_get(c, S_BETA2, 0.95) : 0;
    m->eps = adamw ? spec_get(c, S_EPS, 1e-8) : 0;
    m->weight_decay = adamw ? spec_get(c, S_WEIGHT_DECAY, 0.1) : 0;
    snprintf(m->precision, sizeof m->precision, "%s", word_or(c, S_PRECISION, "fp32"));
    int precision = pp_precision_from_name(m->precision);
    if (m->tie) /* what the tied allreduce sums: wte's gradient */
        spec->cost.tied_bytes =
            (double)m->vocab * m->hidden * pp_gpt_grad_element_bytes(precision < 0 ? PP_FP32 : precision);
    if (c->set[S_DATA].set && c->set[S_DATA].v->kind == PP_VAL_STRING && m->vocab < PP_BYTE_VOCAB)
        spec_report_key(c, S_VOCAB, "%d is fewer than the %d byte values of a data file (each byte is a token; "
                        "model.data is set)", m->vocab, PP_BYTE_VOCAB);
    resolve_data(c, m);
    /* -D microbatches.reference comes with every --sweep row (microbatches.c)
     * and changes nothing here; written in the file it would be ignored */
    if (c->set[S_MB_REFERENCE].set && c->set[S_MB_REFERENCE].at.def < 0)
        spec_report_key(c, S_MB_REFERENCE, "model gpt derives each micro-batch's costs from batch / microbatches; "
                        "microbatches.reference is for files whose costs are given (docs/costs.md): drop it");
}

/* On hardware, a gpt's layers (gpt_costs.c) into spec->layers, and each
 * stage's F, B, W (seconds), activations and weights (bytes) the sums of
 * its layers (the embedding on the first stage, the head on the last), a
 * cost.stage.N.X still replacing its stage's, and each stage's activation
 * send carries its last layer's output (cost.stage_out, what the simulator
 * prices on the link). */
static void resolve_gpt_costs(ctx *c, pp_spec *spec)
{
    pp_model *m = &spec->model;
    if (!spec->hardware) /* the file's relative costs and memory stay: no layers */
        return;
    int S = spec->stages, precision = pp_precision_from_name(m->precision);
    /* each replica's micro-batch: batch / (data_parallel x microbatches) */
    pp_gpt_shape g = shape_of(m, spec->microbatches * spec->data_parallel);
    spec->n_layers = m->layers + 2;
    spec->layers = pp_arena_alloc(c->a, (size_t)spec->n_layers * sizeof *spec->layers);
    pp_gpt_layers(&g, precision, strcmp(m->optimizer, "adamw") == 0, spec->hardware, spec->layers, spec->n_layers);
    static const enum slot fixed[] = {S_COST_F, S_COST_B, S_COST_W, S_COST_COMM};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (c->set[fixed[i]].set)
            spec_report_key(c, fixed[i], "the hardware description gives a gpt's times (hardware %s): drop this "
                            "or the hardware (cost.stage.N.F and the like still override a stage, in seconds)",
                            spec->hardware->name);
    spec->seconds = true;
    pp_cost *k = &spec->cost;
    /* layers.c sums them: times (a cost.stage.N.X still replacing its
     * stage's, as resolve_cost recorded it), activations and weights in
     * bytes, the embedding and the head beyond the blocks' counts */
    spec->layer_ends = true;
    spec->stage_act = pp_arena_alloc(c->a, (size_t)S * sizeof *spec->stage_act);
    spec->stage_input = pp_arena_alloc(c->a, (size_t)S * sizeof *spec->stage_input);
    spec->static_mem = pp_arena_alloc(c->a, (size_t)spec->devices * sizeof *spec->static_mem);
    k->stage_out = pp_arena_alloc(c->a, (size_t)S * sizeof *k->stage_out);
    k->stage_grad = pp_arena_alloc(c->a, (size_t)S * sizeof *k->stage_grad);
    if (spec->zero)
        spec->zero_saved = pp_arena_alloc(c->a, (size_t)spec->devices * sizeof *spec->zero_saved);
    k->comm = 0;
    k->hw = spec->hardware;
    /* a rule's split, in items of the layers (auto starts from the even
     * one: balance.c searches once the policy can run); a list's or the
     * even split resolve_split wrote */
    if (m->balance == PP_BALANCE_PARAMETERS || m->balance == PP_BALANCE_COMPUTE || m->balance == PP_BALANCE_AUTO) {
        int *items = pp_arena_alloc(c->a, (size_t)S * sizeof *items);
        if (m->balance == PP_BALANCE_AUTO)
            pp_spec_even_split(spec, items);
        else
            pp_balance_split(m->balance, spec->layers, spec->n_layers, S, items);
        pp_spec_set_split(spec, items);
    } else {
        pp_spec_sum_layers(spec);
    }
    k->F = k->stage_F[S / 2];
    k->B = k->stage_B[S / 2];
    k->W = k->stage_W[S / 2];
}

void spec_resolve_zero(ctx *c, pp_spec *spec)
{
    const pp_model *m = &spec->model;
    if (!spec->zero || spec->data_parallel == 1)
        return;
    if (!pp_model_is_gpt(m))
        spec_report_key(c, S_ZERO, "zero = 1 shards the optimizer state, but model mlp trains with sgd, which has none");
    else if (!spec->hardware)
        spec_report_key(c, S_ZERO, "zero = 1 shards the optimizer state, whose size in bytes needs a hardware "
                        "description (docs/hardware.md)");
    else if (pp_gpt_state_bytes_per_param(pp_precision_from_name(m->precision), strcmp(m->optimizer, "adamw") == 0) == 0)
        spec_report_key(c, S_ZERO, "zero = 1 shards the optimizer state, but sgd in %s keeps none (AdamW's moments "
                        "or bf16's fp32 master weights are what it shards)", m->precision);
}

void spec_resolve_model(ctx *c, pp_spec *spec)
{
    int M = spec->microbatches, R = spec->data_parallel, RM = M * R;
    pp_model *m = &spec->model;
    snprintf(m->kind, sizeof m->kind, "%s", word_or(c, S_MODEL, "mlp"));
    bool gpt = pp_model_is_gpt(m);
    snprintf(m->optimizer, sizeof m->optimizer, "%s", word_or(c, S_OPTIMIZER, gpt ? "adamw" : "sgd"));
    m->hidden = (int)spec_get(c, S_HIDDEN, 64);
    m->lr = spec_get(c, S_LR, strcmp(m->optimizer, "adamw") == 0 ? 3e-4 : 0.01);
    m->seed = (uint64_t)spec_get(c, S_SEED, 1);
    if (spec->mirrored && c->set[S_BALANCE].set && c->set[S_BALANCE].v->kind == PP_VAL_WORD &&
             strcmp(c->set[S_BALANCE].v->text, "even") != 0)
        spec_report_at(c, &c->set[S_BALANCE].at, c->set[S_BALANCE].v->offset, "model.balance",
                       "schedule %s splits the layers even or by a list of %d counts (one pipeline's stages), "
                       "not by %s", spec->schedule, spec->stages / 2, c->set[S_BALANCE].v->text);
    resolve_split(c, spec, gpt);
    /* auto: a batch that every M it may choose can split (up to microbatches.max) */
    m->batch = (int)spec_get(c, S_BATCH, (double)(spec->microbatches_auto ? spec->mb_max : M) * 4 * R);
    /* gpus = N: this split is a stand-in, each row is checked at its own (gpus.c) */
    bool stand_in = spec->gpus > 0;
    if (stand_in)
        ;
    else if (spec->microbatches_auto) { /* M is a stand-in too: each row checks its own (microbatches.c) */
        if (m->batch % R != 0)
            spec_report_key(c, S_BATCH, "%d is not a multiple of data_parallel = %d (each replica takes batch / "
                            "data_parallel %s, which microbatches = auto then splits)", m->batch, R,
                            gpt ? "sequences" : "rows");
    } else if (R == 1 && m->batch % M != 0)
        spec_report_key(c, S_BATCH, "%d is not a multiple of microbatches = %d (each micro-batch takes batch / "
                        "microbatches %s)", m->batch, M, gpt ? "sequences" : "rows");
    else if (m->batch % RM != 0)
        spec_report_key(c, S_BATCH, "%d is not a multiple of data_parallel x microbatches = %d x %d = %d (each "
                        "replica takes batch / data_parallel %s, each micro-batch a microbatches-th of those)",
                        m->batch, R, M, RM, gpt ? "sequences" : "rows");
    if (!gpt) {
        for (size_t i = 0; i < sizeof gpt_only / sizeof gpt_only[0]; i++)
            if (c->set[gpt_only[i]].set)
                spec_report_key(c, gpt_only[i], "only model gpt takes it, but model = mlp");
        if (strcmp(m->optimizer, "sgd") != 0)
            spec_report_key(c, S_OPTIMIZER, "model mlp trains with sgd only (adamw is model gpt's)");
        if (!stand_in)
            check_mlp_limits(c, m, RM);
        return;
    }
    resolve_gpt(c, spec);
    /* microbatches = auto: M is a stand-in; each row is checked at its own M */
    if (m->batch % RM == 0 && m->layers >= 1 && !spec->microbatches_auto && !stand_in)
        check_gpt_limits(c, m, RM);
    if (c->d->errors == 0)
        resolve_gpt_costs(c, spec);
}
