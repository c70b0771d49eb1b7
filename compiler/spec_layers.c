/*
 * spec_layers.c — the layer_costs block: the model's layers, first to
 * last, each run of equal layers written once (docs/costs.md):
 *
 *   layer_costs {
 *       embedding { F = 0.5  B = 0.5  weights = 8 }
 *       block 30  { F = 1  B = 1  W = 1  activation = 2 }
 *       head      { F = 2  B = 2  activation = 4  weights = 8 }
 *   }
 *
 * A run is its kind (a name of at most 15 characters), how many layers it
 * holds (1 when not written) and a block of fields, each a number >= 0.
 * Recorded while the file is walked, read into spec->layers once the
 * settings are known; the sums per stage are layers.c's.
 */
#include <math.h>
#include <string.h>

#include "spec_internal.h"

/* The fields of a run, in pp_layer's order. */
static const char *const fields[] = {"F", "B", "W", "activation", "input", "weights", "output", NULL};
enum { FIELD_INPUT = 4, NFIELDS = 7 };

#define EXAMPLE "as in 'layer_costs { block 30 { F = 1 B = 2 } }'"
#define MAX_FIELD 1e15 /* spec.c's bound on every number: sums must stay finite */

void spec_record_layers(ctx *c, const pp_item *it)
{
    if (c->layer_costs) {
        pp_error_at(c->d, c->src, it->offset, "layer_costs: duplicate setting");
        pp_note_at(c->d, c->src, c->layer_costs->offset, "'layer_costs' was first set here");
        return;
    }
    if (it->value || !it->has_block) {
        pp_error_at(c->d, c->src, it->value ? it->value->offset : it->offset,
                    "layer_costs: is a block of layer runs and takes no value, " EXAMPLE);
        return;
    }
    c->layer_costs = it;
}

/* One run's fields into l; false after an error. */
static bool read_fields(ctx *c, const pp_item *run, pp_layer *l)
{
    double v[NFIELDS] = {0};
    const pp_item *seen[NFIELDS] = {0};
    bool ok = true;
    for (int i = 0; i < run->nchildren; i++) {
        const pp_item *f = run->children[i];
        int k = 0;
        while (fields[k] && strcmp(fields[k], f->name))
            k++;
        if (!fields[k]) {
            const char *guess = pp_closest(f->name, fields, -1);
            char hint[64] = "";
            if (guess)
                snprintf(hint, sizeof hint, "; did you mean '%s'?", guess);
            pp_error_at(c->d, c->src, f->offset,
                        "layer_costs.%s: unknown field '%.40s'%s (fields: F, B, W, activation, input, weights, output)",
                        run->name, f->name, hint);
            ok = false;
            continue;
        }
        if (f->row || f->has_block || !f->value) {
            pp_error_at(c->d, c->src, f->offset, "layer_costs.%s.%s: expected a number, as in '%s = 1'", run->name,
                        fields[k], fields[k]);
            ok = false;
            continue;
        }
        if (seen[k]) {
            pp_error_at(c->d, c->src, f->offset, "layer_costs.%s.%s: duplicate setting", run->name, fields[k]);
            pp_note_at(c->d, c->src, seen[k]->offset, "'%s' was first set here", fields[k]);
            ok = false;
            continue;
        }
        seen[k] = f;
        const pp_value *x = f->value;
        if (x->kind != PP_VAL_NUMBER || !(x->number >= 0) || x->number > MAX_FIELD) {
            char got[64];
            pp_error_at(c->d, c->src, x->offset, "layer_costs.%s.%s: expected a number from 0 to %g, got %s",
                        run->name, fields[k], MAX_FIELD, spec_describe(x, got, sizeof got));
            ok = false;
            continue;
        }
        v[k] = x->number;
    }
    *l = (pp_layer){0}; /* a file's layers have no optimizer state, gradient bytes or shared copy */
    snprintf(l->kind, sizeof l->kind, "%s", run->name);
    l->F = v[0];
    l->B = v[1];
    l->W = v[2];
    l->act = v[3];
    /* A recomputed layer keeps its input: half of its activations unless
     * given (the reference MLP's ratio: it keeps x and z, and x is its
     * input). */
    l->act_input = seen[FIELD_INPUT] ? v[FIELD_INPUT] : v[3] / 2;
    l->weights = v[5];
    l->out = v[6];
    if (seen[FIELD_INPUT] && l->act_input > l->act) {
        pp_error_at(c->d, c->src, seen[FIELD_INPUT]->offset,
                    "layer_costs.%s.input: %g is more than its activation = %g (the input is part of the activations)",
                    run->name, l->act_input, l->act);
        ok = false;
    }
    return ok;
}

void spec_resolve_layers(ctx *c, pp_spec *spec)
{
    const pp_item *it = c->layer_costs;
    if (!it)
        return;
    int before = c->d->errors;
    long total = 0;
    for (int i = 0; i < it->nchildren; i++) {
        const pp_item *run = it->children[i];
        double count = 1;
        if (run->row) {
            pp_error_at(c->d, c->src, run->offset, "layer_costs: expected a layer run, " EXAMPLE);
            continue;
        }
        if (strlen(run->name) >= sizeof ((pp_layer *)0)->kind) {
            pp_error_at(c->d, c->src, run->offset, "layer_costs: the kind '%.40s' is longer than %zu characters",
                        run->name, sizeof ((pp_layer *)0)->kind - 1);
            continue;
        }
        if (run->value) {
            const pp_value *n = run->value;
            if (n->kind != PP_VAL_NUMBER || n->number != floor(n->number) || n->number < 1 ||
                n->number > PP_MAX_LAYERS) {
                char got[64];
                pp_error_at(c->d, c->src, n->offset,
                            "layer_costs.%s: expected how many layers the run holds (1 to %d), got %s", run->name,
                            PP_MAX_LAYERS, spec_describe(n, got, sizeof got));
                continue;
            }
            count = n->number;
        }
        if (!run->has_block) {
            pp_error_at(c->d, c->src, run->offset, "layer_costs.%s: expected a block of its costs, " EXAMPLE,
                        run->name);
            continue;
        }
        pp_layer l;
        read_fields(c, run, &l); /* its errors now, with the others' */
        total += (long)count;
    }
    if (it->nchildren == 0)
        pp_error_at(c->d, c->src, it->offset, "layer_costs: lists no layers, " EXAMPLE);
    if (total > PP_MAX_LAYERS) {
        pp_error_at(c->d, c->src, it->offset, "layer_costs: %ld layers, more than the limit of %d", total,
                    PP_MAX_LAYERS);
        return;
    }
    if (c->d->errors > before)
        return;
    spec->layers = pp_arena_alloc(c->a, (size_t)total * sizeof *spec->layers);
    spec->n_layers = (int)total;
    int at = 0;
    for (int i = 0; i < it->nchildren; i++) {
        const pp_item *run = it->children[i];
        int count = run->value ? (int)run->value->number : 1;
        pp_layer l;
        read_fields(c, run, &l); /* checked above */
        for (int k = 0; k < count; k++)
            spec->layers[at++] = l;
    }
}
