/*
 * spec.c — what a schedule file means.  Walks the AST, then the -D
 * overrides in order, and turns both into one checked pp_spec: the
 * pipeline's shape (devices, virtual stages, micro-batches, placement),
 * the policy and its parameters, the cost model, the memory model and the
 * model to train.  docs/dsl.md lists every key.
 *
 * Every setting has one canonical dotted name (`devices`, `cost.F`,
 * `model.layers`, `cost.stage.3.F`; the table is spec_keys.c's): a block
 * in the file is only a way to write the prefix once, and -D uses the
 * dotted name directly.  So the file walk and -D meet in set_value(),
 * which checks the value's type and range where it was written;
 * spec_resolve.c then derives what depends on several settings and checks
 * them against each other, and spec_order.c reads an order block.
 *
 * Nothing stops at the first error: each one is reported (with its
 * location, or the -D it came from) and counted, and the walk goes on.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spec_internal.h"

/* Costs and memory sizes are summed over every op of a plan: past this
 * bound the sums could overflow to infinity and the timing would be
 * meaningless (lowering then sees a deadlock that is not there). */
#define MAX_NUMBER 1e15

/* Short names for -D only (docs/dsl.md: `-D layers=16`). */
static const struct {
    const char *alias;
    enum slot slot;
} aliases[] = {
    {"layers", S_LAYERS}, {"hidden", S_HIDDEN}, {"batch", S_BATCH}, {"lr", S_LR}, {"seed", S_SEED},
    {"recompute", S_RECOMPUTE}, {"recompute_stages", S_RECOMPUTE_STAGES},
    {"heads", S_HEADS}, {"ffn", S_FFN}, {"seq", S_SEQ}, {"vocab", S_VOCAB}, {"tie", S_TIE}, {"data", S_DATA},
    {"precision", S_PRECISION}, {"layout", S_LAYOUT},
};

/* The blocks that are not settings themselves (`cost { F = 2 }`), with a
 * key of each for the message of a -D that names the block. */
static const struct {
    const char *name;
    const char *example;
} blocks[] = {
    {"cost", "cost.F"}, {"memory", "memory.limit"}, {"pipeline", "devices"}, {"cost.stage", "cost.stage.0.F"},
};

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

/* A bad value: at the value in the file (with what was written), or
 * naming the -D, which already shows it. */
__attribute__((format(printf, 5, 6))) static void bad_value(ctx *c, const origin *o, const char *key,
                                                            const pp_value *v, const char *fmt, ...)
{
    char msg[400], got[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (o->def >= 0)
        spec_report_at(c, o, 0, key, "%s", msg);
    else
        spec_report_at(c, o, v->offset, key, "%s, got %s", msg, spec_describe(v, got, sizeof got));
}

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

enum target_kind {
    T_UNKNOWN,
    T_SETTING,    /* spec_keys[slot] */
    T_BLOCK,      /* cost, memory, pipeline */
    T_STAGE_LIST, /* cost.stage N { ... } */
    T_STAGE,      /* cost.stage.N { ... } */
    T_STAGE_COST, /* cost.stage.N.F|B|W */
};

typedef struct target {
    enum target_kind kind;
    enum slot slot;
    long stage;
    int which;
} target;

/* Maps a dotted name to what it sets; with_aliases for -D. */
static target lookup(const char *path, bool with_aliases)
{
    target t = {T_UNKNOWN, S__COUNT, -1, -1};
    bool in_pipeline = strncmp(path, "pipeline.", 9) == 0;
    if (in_pipeline)
        path += 9;
    for (int s = 0; s < S__COUNT; s++)
        if (strcmp(spec_keys[s].name, path) == 0) {
            t.kind = T_SETTING;
            t.slot = (enum slot)s;
        }
    for (size_t i = 0; with_aliases && i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(aliases[i].alias, path) == 0) {
            t.kind = T_SETTING;
            t.slot = aliases[i].slot;
        }
    if (in_pipeline) {
        if (t.kind != T_SETTING || !spec_keys[t.slot].pipeline)
            t.kind = T_UNKNOWN;
        return t;
    }
    if (t.kind != T_UNKNOWN)
        return t;
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
        if (!strcmp(path, blocks[i].name))
            t.kind = strcmp(path, "cost.stage") ? T_BLOCK : T_STAGE_LIST;
    if (t.kind == T_UNKNOWN && !strncmp(path, "cost.stage.", 11)) {
        const char *p = path + 11;
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 9)
            return t;
        t.stage = strtol(p, NULL, 10);
        p += digits;
        if (*p == '\0') {
            t.kind = T_STAGE;
            return t;
        }
        for (int w = 0; w < 3 && *p == '.'; w++)
            if (!strcmp(p + 1, spec_stage_costs[w])) {
                t.kind = T_STAGE_COST;
                t.which = w;
            }
    }
    return t;
}

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */

static bool to_int(ctx *c, const origin *o, const char *key, const pp_value *v, double min, double max,
                   double *out)
{
    if (v->kind != PP_VAL_NUMBER || v->number != floor(v->number)) {
        bad_value(c, o, key, v, "expected an integer");
        return false;
    }
    if (v->number < min || v->number > max) {
        if (max >= 1e9) /* a range that large reads badly: name the bound crossed */
            bad_value(c, o, key, v, v->number < min ? "must be at least %.0f" : "must be at most %.0f",
                      v->number < min ? min : max);
        else
            bad_value(c, o, key, v, "must be between %.0f and %.0f", min, max);
        return false;
    }
    *out = v->number;
    return true;
}

static bool to_number(ctx *c, const origin *o, const char *key, const pp_value *v, bool positive, double *out)
{
    if (v->kind != PP_VAL_NUMBER) {
        bad_value(c, o, key, v, "expected a number");
        return false;
    }
    if (positive ? !(v->number > 0) : !(v->number >= 0)) {
        bad_value(c, o, key, v, positive ? "must be greater than 0" : "must not be negative");
        return false;
    }
    if (v->number > MAX_NUMBER) {
        bad_value(c, o, key, v, "must be at most %g", MAX_NUMBER);
        return false;
    }
    *out = v->number;
    return true;
}

/* `schedule NAME` that names no policy: at the name, with the closest one. */
static void unknown_policy(ctx *c, const origin *o, const pp_value *v)
{
    const char *guess = pp_policy_guess(v->text);
    char hint[80] = "";
    if (guess)
        snprintf(hint, sizeof hint, "; did you mean %s?", guess);
    spec_report_at(c, o, v->offset, "schedule", "unknown policy '%.40s'%s (ppcc --list-policies lists them)", v->text,
                   hint);
}

/* Checks v for spec_keys[slot] and records it.  A second setting of one key
 * in the file is an error; -D overrides silently (that is its job). */
static void set_value(ctx *c, enum slot slot, const pp_value *v, const origin *o)
{
    const key_def *k = &spec_keys[slot];
    setting *s = &c->set[slot];
    if (s->set && s->at.def < 0 && o->def < 0) {
        spec_report_at(c, o, o->name_off, k->name, "duplicate setting");
        pp_note_at(c->d, c->src, s->at.name_off, "'%s' was first set here", k->name);
        return;
    }
    double num = 0;
    bool bytes = false;
    switch (k->kind) {
    case K_INT:
        if (slot == S_MICROBATCHES && v->kind == PP_VAL_WORD) {
            if (strcmp(v->text, "auto") != 0) {
                bad_value(c, o, k->name, v, "expected an integer, or auto");
                return;
            }
            break; /* num 0: chosen by microbatches.c */
        }
        if (slot == S_OVERLAP && v->kind == PP_VAL_WORD) {
            if (strcmp(v->text, "true") && strcmp(v->text, "false")) {
                bad_value(c, o, k->name, v, "expected true or false");
                return;
            }
            num = strcmp(v->text, "true") == 0;
            break;
        }
        if (!to_int(c, o, k->name, v, k->min, k->max, &num))
            return;
        break;
    case K_NUM:
    case K_POS:
        if (!to_number(c, o, k->name, v, k->kind == K_POS, &num))
            return;
        break;
    case K_WORD:
        if (v->kind != PP_VAL_WORD) {
            bad_value(c, o, k->name, v, "expected a name");
            return;
        }
        if (slot == S_SCHEDULE && strlen(v->text) >= sizeof ((pp_spec *)0)->schedule) {
            bad_value(c, o, k->name, v, "policy name too long (at most %zu characters)",
                      sizeof ((pp_spec *)0)->schedule - 1);
            return;
        }
        if (slot == S_SCHEDULE && !pp_policy_find(v->text)) {
            unknown_policy(c, o, v);
            return;
        }
        if (slot == S_MODEL && strcmp(v->text, "mlp") && strcmp(v->text, "gpt")) {
            bad_value(c, o, k->name, v, "unknown model kind (mlp or gpt)");
            return;
        }
        if (slot == S_RECOMPUTE && strcmp(v->text, "never") && strcmp(v->text, "always") &&
            strcmp(v->text, "except_last")) {
            bad_value(c, o, k->name, v, "expected never, always or except_last");
            return;
        }
        if (slot == S_OPTIMIZER && strcmp(v->text, "sgd") && strcmp(v->text, "adamw")) {
            bad_value(c, o, k->name, v, "unknown optimizer (sgd or adamw)");
            return;
        }
        if (slot == S_PRECISION && strcmp(v->text, "fp32") && strcmp(v->text, "tf32") && strcmp(v->text, "bf16")) {
            bad_value(c, o, k->name, v, "expected fp32, tf32 or bf16");
            return;
        }
        if (slot == S_HARDWARE && !pp_hardware_preset(v->text)) {
            bad_value(c, o, k->name, v, "unknown hardware preset (%s)", pp_hardware_preset_names());
            return;
        }
        break;
    case K_BYTES:
        if (v->kind == PP_VAL_WORD) { /* 80GB: the lexer reads a number with its unit as a word */
            char err[128];
            if (!pp_bytes_parse(v->text, &num, err, sizeof err)) {
                bad_value(c, o, k->name, v, "%s", err);
                return;
            }
            if (num > MAX_NUMBER) {
                bad_value(c, o, k->name, v, "must be at most %g bytes", MAX_NUMBER);
                return;
            }
            bytes = true;
            break;
        }
        if (!to_number(c, o, k->name, v, false, &num))
            return;
        break;
    case K_UNIT:
        if (!to_number(c, o, k->name, v, false, &num))
            return;
        if (!(num < 1)) {
            bad_value(c, o, k->name, v, "must be below 1");
            return;
        }
        break;
    case K_PATH:
        if (v->kind == PP_VAL_WORD && !strcmp(v->text, "none"))
            break; /* no file (model.data: synthetic tokens) */
        if (v->kind != PP_VAL_STRING) {
            bad_value(c, o, k->name, v, "expected a file name in double quotes, as in data = \"corpus.txt\", or none");
            return;
        }
        if (!*v->text) {
            bad_value(c, o, k->name, v, "expected a file name, not an empty one");
            return;
        }
        break;
    case K_LAYOUT:
        if (v->kind != PP_VAL_STRING) {
            bad_value(c, o, k->name, v, "expected Megatron's layout in double quotes, as in layout = \"Ett|tt|tt|ttL\"");
            return;
        }
        break;
    case K_PLACEMENT:
        if (v->kind == PP_VAL_LIST || (v->kind == PP_VAL_WORD && (!strcmp(v->text, "loop") ||
                                                                 !strcmp(v->text, "vshape"))))
            break;
        bad_value(c, o, k->name, v, "expected loop, vshape or a list of devices (one per stage)");
        return;
    case K_LIST:
        if (slot == S_BALANCE && v->kind == PP_VAL_WORD) {
            if (strcmp(v->text, "even") && strcmp(v->text, "auto") && strcmp(v->text, "parameters") &&
                strcmp(v->text, "compute")) {
                bad_value(c, o, k->name, v, "expected a list of layer counts or a rule: even, parameters, compute or auto");
                return;
            }
            break;
        }
        if (v->kind != PP_VAL_LIST) {
            bad_value(c, o, k->name, v, slot == S_RECOMPUTE_STAGES ? "expected a list of stage numbers"
                                                                   : "expected a list of layer counts, one per stage, or a rule: even, parameters, compute or auto");
            return;
        }
        break;
    }
    s->set = true;
    s->at = *o;
    s->v = v;
    s->num = num;
    s->bytes = bytes;
}

static void add_override(ctx *c, long stage, int which, const pp_value *v, const origin *o)
{
    char name[64];
    snprintf(name, sizeof name, "cost.stage.%ld.%s", stage, spec_stage_costs[which]);
    double num;
    if (!to_number(c, o, name, v, false, &num))
        return;
    c->overrides = pp_arena_grow(c->a, c->overrides, c->noverrides, &c->capoverrides, sizeof *c->overrides);
    c->overrides[c->noverrides] = (stage_cost){stage, which, c->noverrides, num, *o};
    c->noverrides++;
}

/* ------------------------------------------------------------------ */
/* The file                                                            */
/* ------------------------------------------------------------------ */

/* What may be written in a block, for "unknown setting" hints: read off the
 * key table and the blocks, in their order. */
typedef struct scope {
    char buf[S__COUNT + 8][24];
    const char *names[S__COUNT + 9]; /* NULL-terminated */
    int n;
} scope;

static void scope_add(scope *sc, const char *name, size_t len)
{
    for (int i = 0; i < sc->n; i++)
        if (strlen(sc->names[i]) == len && !strncmp(sc->names[i], name, len))
            return;
    snprintf(sc->buf[sc->n], sizeof sc->buf[sc->n], "%.*s", (int)len, name);
    sc->names[sc->n] = sc->buf[sc->n];
    sc->names[++sc->n] = NULL;
}

/* The first component of name after prefix ("" for the top), if name is
 * inside prefix's block. */
static void scope_add_inside(scope *sc, const char *name, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (pl && (strncmp(name, prefix, pl) || name[pl] != '.'))
        return;
    const char *rest = name + (pl ? pl + 1 : 0);
    scope_add(sc, rest, strcspn(rest, "."));
}

static void scope_of(scope *sc, const char *prefix, bool in_pipeline)
{
    sc->n = 0;
    sc->names[0] = NULL;
    if (!strncmp(prefix, "cost.stage", 10)) {
        for (int w = 0; w < 3; w++)
            scope_add(sc, spec_stage_costs[w], strlen(spec_stage_costs[w]));
        return;
    }
    for (int s = 0; s < S__COUNT; s++)
        if (!in_pipeline || spec_keys[s].pipeline)
            scope_add_inside(sc, spec_keys[s].name, in_pipeline ? "" : prefix);
    for (size_t i = 0; !in_pipeline && i < sizeof blocks / sizeof blocks[0]; i++)
        scope_add_inside(sc, blocks[i].name, prefix);
}

static void unknown_setting(ctx *c, const pp_item *it, const char *prefix, bool in_pipeline)
{
    scope sc;
    scope_of(&sc, prefix, in_pipeline);
    const char *const *names = sc.names;
    const char *where = in_pipeline ? " in pipeline" : "";
    char block[80] = "";
    if (*prefix)
        snprintf(block, sizeof block, " in %.60s", prefix);
    const char *guess = pp_closest(it->name, names, -1);
    if (guess) {
        pp_error_at(c->d, c->src, it->offset, "unknown setting '%.60s'%s%s; did you mean '%s'?", it->name, where,
                    block, guess);
        return;
    }
    /* A key of another block written here: say where it belongs. */
    for (int s = 0; s < S__COUNT; s++) {
        const char *dot = strrchr(spec_keys[s].name, '.');
        size_t blen = dot ? (size_t)(dot - spec_keys[s].name) : 0;
        bool same_block = strlen(prefix) == blen && !strncmp(prefix, spec_keys[s].name, blen);
        if (dot && !strcmp(dot + 1, it->name) && !same_block && !in_pipeline) {
            pp_error_at(c->d, c->src, it->offset, "unknown setting '%s'%s%s; it belongs in %.*s { ... } (%s)",
                        it->name, where, block, (int)(dot - spec_keys[s].name), spec_keys[s].name, spec_keys[s].name);
            return;
        }
    }
    char list[256] = "";
    size_t n = 0;
    for (int i = 0; names[i] && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", names[i]);
    pp_error_at(c->d, c->src, it->offset, "unknown setting '%.60s'%s%s (valid here: %s)", it->name, where, block,
                list);
}

static void walk(ctx *c, pp_item **items, int n, const char *prefix, bool in_pipeline)
{
    for (int i = 0; i < n; i++) {
        const pp_item *it = items[i];
        if (it->row) {
            pp_error_at(c->d, c->src, it->offset, "a row '%.40s %.20s:' belongs in an order block, as in "
                        "'order { device 0: F0.0 B0.0 }'", it->name, it->value->text);
            continue;
        }
        if (!*prefix && !in_pipeline && !strcmp(it->name, "order")) {
            spec_record_order(c, it);
            continue;
        }
        if (!*prefix && !in_pipeline && !strcmp(it->name, "layer_costs")) {
            spec_record_layers(c, it);
            continue;
        }
        char path[256];
        int len = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", it->name);
        target t = {T_UNKNOWN, S__COUNT, -1, -1};
        if (len > 0 && (size_t)len < sizeof path)
            t = lookup(path, false);
        if (in_pipeline && !(t.kind == T_SETTING && spec_keys[t.slot].pipeline))
            t.kind = T_UNKNOWN;
        origin o = {-1, it->offset, it->value ? it->value->offset : it->offset};

        switch (t.kind) {
        case T_UNKNOWN:
            unknown_setting(c, it, prefix, in_pipeline);
            break;
        case T_SETTING: {
            const key_def *k = &spec_keys[t.slot];
            if (it->has_block && !k->block)
                pp_error_at(c->d, c->src, it->offset, "%s: takes a value, not a block, as in '%s = ...'", k->name,
                            it->name);
            else if (!it->value)
                pp_error_at(c->d, c->src, it->offset, "%s: expected a value, as in '%s %s'", k->name, it->name,
                            t.slot == S_SCHEDULE ? "interleaved { group = 4 }"
                            : t.slot == S_MODEL  ? "mlp { layers = 8 }"
                            : t.slot == S_HARDWARE ? "h100 { efficiency = 0.4 }"
                                                 : "= ...");
            else
                set_value(c, t.slot, it->value, &o);
            if (it->has_block && k->block)
                walk(c, it->children, it->nchildren, k->name, false);
            break;
        }
        case T_BLOCK:
        case T_STAGE:
            if (it->value || !it->has_block)
                pp_error_at(c->d, c->src, it->value ? it->value->offset : it->offset,
                            "%s: is a block and takes no value, as in '%s { ... }'", path, it->name);
            if (!it->has_block)
                break;
            if (!strcmp(path, "pipeline"))
                walk(c, it->children, it->nchildren, "", true);
            else
                walk(c, it->children, it->nchildren, path, false);
            break;
        case T_STAGE_LIST: {
            double stage;
            char sub[64];
            if (!it->value) {
                pp_error_at(c->d, c->src, it->offset, "cost.stage: expected a stage number, as in 'stage 3 { F = 2 }'");
            } else if (!to_int(c, &o, "cost.stage", it->value, 0, PP_MAX_STAGES - 1, &stage)) {
                /* reported */
            } else if (!it->has_block) {
                pp_error_at(c->d, c->src, it->offset, "cost.stage: expected a block, as in 'stage %.0f { F = 2 }'",
                            stage);
            } else {
                snprintf(sub, sizeof sub, "cost.stage.%.0f", stage);
                walk(c, it->children, it->nchildren, sub, false);
            }
            break;
        }
        case T_STAGE_COST:
            if (!it->value)
                pp_error_at(c->d, c->src, it->offset, "%s: expected a value", path);
            else
                add_override(c, t.stage, t.which, it->value, &o);
            if (it->has_block)
                pp_error_at(c->d, c->src, it->offset, "%s: takes a value, not a block", path);
            break;
        }
    }
}

/* ------------------------------------------------------------------ */
/* -D NAME=VALUE                                                       */
/* ------------------------------------------------------------------ */

/* A file name after -D NAME= is the text as given (a shell word needs no
 * quotes in it); one written in double quotes has them removed.  The word
 * none is none, as in the file (a file of that name: "none" or ./none). */
static const pp_value *path_value(ctx *c, const char *text)
{
    pp_value *v = pp_arena_alloc(c->a, sizeof *v);
    size_t n = strlen(text);
    bool quoted = n >= 2 && text[0] == '"' && text[n - 1] == '"';
    v->kind = strcmp(text, "none") ? PP_VAL_STRING : PP_VAL_WORD;
    v->text = quoted ? pp_arena_strndup(c->a, text + 1, n - 2) : text;
    return v;
}

static void apply_define(ctx *c, int i)
{
    const char *name = spec_def_name(c, i);
    origin o = {i, 0, 0};
    target t = lookup(name, true);
    if (!strcmp(name, "layer_costs") || !strncmp(name, "layer_costs.", 12)) {
        pp_error(c->d, "-D %s=%s: the layers are listed in the file (layer_costs { ... }), not by -D", name,
                 spec_def_value(c, i));
        return;
    }
    switch (t.kind) {
    case T_UNKNOWN: {
        const char *all[S__COUNT + sizeof aliases / sizeof aliases[0]];
        int n = 0;
        for (int s = 0; s < S__COUNT; s++)
            all[n++] = spec_keys[s].name;
        for (size_t j = 0; j < sizeof aliases / sizeof aliases[0]; j++)
            all[n++] = aliases[j].alias;
        const char *guess = pp_closest(name, all, n);
        char hint[80] = "";
        if (guess)
            snprintf(hint, sizeof hint, "; did you mean '%s'?", guess);
        pp_error(c->d, "-D %s=%s: unknown setting '%s'%s", name, spec_def_value(c, i), name, hint);
        return;
    }
    case T_BLOCK:
    case T_STAGE:
    case T_STAGE_LIST: {
        const char *example = "cost.stage.0.F"; /* cost.stage.N */
        for (size_t j = 0; j < sizeof blocks / sizeof blocks[0]; j++)
            if (!strcmp(name, blocks[j].name))
                example = blocks[j].example;
        pp_error(c->d, "-D %s=%s: '%s' is a block; set one of its keys, such as %s", name, spec_def_value(c, i), name,
                 example);
        return;
    }
    default:
        break;
    }
    char err[160];
    const pp_value *v = t.kind == T_SETTING && (spec_keys[t.slot].kind == K_PATH || spec_keys[t.slot].kind == K_LAYOUT)
                            ? path_value(c, spec_def_value(c, i))
                            : pp_parse_value(spec_def_value(c, i), c->a, err, sizeof err);
    if (!v) {
        pp_error(c->d, "-D %s=%s: %s", name, spec_def_value(c, i), err);
        return;
    }
    if (t.kind == T_STAGE_COST)
        add_override(c, t.stage, t.which, v, &o);
    else
        set_value(c, t.slot, v, &o);
}

int pp_spec_build(const pp_ast *ast, const pp_define *defs, int ndefs, pp_arena *a, pp_diag *d, pp_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    static const pp_source no_source = {"<none>", "", 0};
    ctx c = {.d = d, .src = ast ? &ast->src : &no_source, .defs = defs, .a = a};
    int before = d->errors;
    if (ast)
        walk(&c, ast->items, ast->nitems, "", false);
    for (int i = 0; i < ndefs; i++)
        apply_define(&c, i);
    spec_resolve(&c, spec);
    return d->errors - before;
}
