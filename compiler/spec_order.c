/*
 * spec_order.c — an order block (`order { device 0: F0.0 B0.0 ... }`, the
 * custom policy's explicit compute order): recorded while the file is
 * walked, read token by token once the shape is known.  Each op word
 * becomes (kind, stage, mb) with its offset, so the policy can point at the
 * token that breaks a rule.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spec_internal.h"

void spec_record_order(ctx *c, const pp_item *it)
{
    static const char example[] = "as in 'order { device 0: F0.0 B0.0 }'";
    if (c->order) {
        pp_error_at(c->d, c->src, it->offset, "order: duplicate setting");
        pp_note_at(c->d, c->src, c->order->offset, "'order' was first set here");
        return;
    }
    if (it->value || !it->has_block) {
        pp_error_at(c->d, c->src, it->value ? it->value->offset : it->offset,
                    "order: is a block of rows and takes no value, %s", example);
        return;
    }
    c->order = it;
    for (int i = 0; i < it->nchildren; i++)
        if (!it->children[i]->row)
            pp_error_at(c->d, c->src, it->children[i]->offset,
                        "order: expected rows 'device N: op op ...', %s", example);
}

/* "F3.12" -> kind, stage, mb; false if it is not that shape. */
static bool parse_op_word(const pp_value *v, pp_order_op *op)
{
    const char *t = v->text;
    if (v->kind != PP_VAL_WORD || !t[0] || !strchr("FBW", t[0]))
        return false;
    size_t ds = strspn(t + 1, "0123456789");
    if (ds == 0 || ds > 9 || t[1 + ds] != '.')
        return false;
    const char *m = t + 2 + ds;
    size_t dm = strspn(m, "0123456789");
    if (dm == 0 || dm > 9 || m[dm] != '\0')
        return false;
    op->kind = t[0] == 'F' ? PP_OP_F : t[0] == 'B' ? PP_OP_B : PP_OP_W;
    op->stage = (int)strtol(t + 1, NULL, 10);
    op->mb = (int)strtol(m, NULL, 10);
    op->offset = v->offset;
    return true;
}

void spec_resolve_order(ctx *c, pp_spec *spec)
{
    const pp_item *ob = c->order;
    if (!ob)
        return;
    int D = spec->devices, S = spec->stages, M = spec->microbatches;
    if (strcmp(spec->schedule, "custom") != 0) {
        pp_error_at(c->d, c->src, ob->offset, "order { ... } needs schedule custom, but schedule = %s",
                    spec->schedule);
        return;
    }
    pp_order *o = pp_arena_alloc(c->a, sizeof *o);
    o->src = c->src;
    o->offset = ob->offset;
    o->rows = pp_arena_alloc(c->a, (size_t)D * sizeof *o->rows);
    bool *seen = pp_arena_alloc(c->a, (size_t)D * sizeof *seen);
    int before = c->d->errors;
    for (int i = 0; i < ob->nchildren; i++) {
        const pp_item *row = ob->children[i];
        if (!row->row)
            continue; /* reported by walk_order */
        const pp_value *dv = row->value;
        if (strcmp(row->name, "device") != 0) {
            pp_error_at(c->d, c->src, row->offset, "order: expected 'device N:', got '%.40s %.20s:'", row->name,
                        dv->text);
            continue;
        }
        if (dv->number != floor(dv->number) || dv->number < 0 || dv->number >= D) {
            pp_error_at(c->d, c->src, dv->offset, "order: device %.20s does not exist (devices are 0..%d)", dv->text,
                        D - 1);
            continue;
        }
        int d = (int)dv->number;
        if (seen[d]) {
            pp_error_at(c->d, c->src, row->offset, "order: device %d is listed twice", d);
            pp_note_at(c->d, c->src, o->rows[d].offset, "device %d was first listed here", d);
            continue;
        }
        seen[d] = true;
        pp_order_row *r = &o->rows[d];
        r->offset = row->offset;
        r->ops = pp_arena_alloc(c->a, (size_t)(row->row->nitems ? row->row->nitems : 1) * sizeof *r->ops);
        for (int k = 0; k < row->row->nitems; k++) {
            const pp_value *w = row->row->items[k];
            pp_order_op op;
            char got[64];
            if (!parse_op_word(w, &op)) {
                pp_error_at(c->d, c->src, w->offset,
                            "order: unknown op %s (expected F<stage>.<mb>, B<stage>.<mb> or W<stage>.<mb>)",
                            spec_describe(w, got, sizeof got));
                continue;
            }
            if (op.stage >= S) {
                pp_error_at(c->d, c->src, w->offset, "order: %s: stage %d does not exist (stages are 0..%d)", w->text,
                            op.stage, S - 1);
                continue;
            }
            if (op.mb >= M) {
                pp_error_at(c->d, c->src, w->offset,
                            "order: %s: micro-batch %d does not exist (micro-batches are 0..%d)", w->text, op.mb,
                            M - 1);
                continue;
            }
            o->split |= op.kind == PP_OP_W;
            r->ops[r->n++] = op;
        }
    }
    for (int d = 0; d < D; d++)
        if (!seen[d]) {
            pp_error_at(c->d, c->src, ob->offset, "order: device %d has no row (every device 0..%d needs one)", d,
                        D - 1);
            o->rows[d].offset = ob->offset;
        }
    if (c->d->errors == before)
        spec->order = o;
}
