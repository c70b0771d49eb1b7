/*
 * spec.c — what a schedule file means.  Walks the AST, then the -D
 * overrides in order, and turns both into one checked pp_spec: the
 * pipeline's shape (devices, virtual stages, micro-batches, placement),
 * the policy and its parameters, the cost model, the memory model and the
 * model to train.  docs/dsl.md lists every key.
 *
 * Every setting has one canonical dotted name (`devices`, `cost.F`,
 * `model.layers`, `cost.stage.3.F`): a block in the file is only a way to
 * write the prefix once, and -D uses the dotted name directly.  So the
 * file walk and -D meet in set_value(), which checks the value's type and
 * range where it was written; resolve() then derives what depends on
 * several settings (stages = devices * virtual, placement, the layer
 * split) and checks them against each other.
 *
 * An order block (`order { device 0: F0.0 B0.0 ... }`, the custom policy's
 * explicit compute order) is read token by token in resolve_order(): each
 * op word becomes (kind, stage, mb) with its offset, so the policy can
 * point at the token that breaks a rule.
 *
 * Nothing stops at the first error: each one is reported (with its
 * location, or the -D it came from) and counted, and the walk goes on.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pp.h"

enum slot {
    S_DEVICES, S_VIRTUAL, S_STAGES, S_MICROBATCHES, S_PLACEMENT, S_SCHEDULE, S_GROUP, S_VSYNC,
    S_COST_F, S_COST_B, S_COST_W, S_COST_COMM, S_MEM_ACT, S_MEM_LIMIT,
    S_MODEL, S_LAYERS, S_HIDDEN, S_BATCH, S_OPTIMIZER, S_LR, S_SEED, S_BALANCE,
    S_RECOMPUTE, S_RECOMPUTE_STAGES, S_MEM_INPUT,
    S__COUNT
};

enum kind {
    K_INT,       /* integer in [min, max] */
    K_NUM,       /* finite number >= 0 */
    K_POS,       /* finite number > 0 */
    K_WORD,      /* a name */
    K_PLACEMENT, /* loop | vshape | [devices] */
    K_LIST,      /* [integers], checked in resolve() */
};

typedef struct key_def {
    const char *name; /* canonical dotted name */
    enum kind kind;
    double min, max;  /* K_INT */
    bool block;       /* may carry a block of sub-settings */
    bool pipeline;    /* may be written in pipeline { } too */
} key_def;

/* Costs and memory sizes are summed over every op of a plan: past this
 * bound the sums could overflow to infinity and the timing would be
 * meaningless (lowering then sees a deadlock that is not there). */
#define MAX_NUMBER 1e15

static const key_def keys[S__COUNT] = {
    [S_DEVICES] = {"devices", K_INT, 1, PP_MAX_DEVICES, false, true},
    [S_VIRTUAL] = {"virtual", K_INT, 1, 64, false, true},
    [S_STAGES] = {"stages", K_INT, 1, PP_MAX_STAGES, false, true},
    [S_MICROBATCHES] = {"microbatches", K_INT, 1, PP_MAX_MICROBATCHES, false, true},
    [S_PLACEMENT] = {"placement", K_PLACEMENT, 0, 0, false, true},
    [S_SCHEDULE] = {"schedule", K_WORD, 0, 0, true, true},
    [S_GROUP] = {"schedule.group", K_INT, 1, PP_MAX_MICROBATCHES, false},
    [S_VSYNC] = {"schedule.vertical_sync", K_INT, 0, 1, false}, /* pipedream, docs/async.md */
    [S_COST_F] = {"cost.F", K_NUM, 0, 0, false},
    [S_COST_B] = {"cost.B", K_NUM, 0, 0, false},
    [S_COST_W] = {"cost.W", K_NUM, 0, 0, false},
    [S_COST_COMM] = {"cost.comm", K_NUM, 0, 0, false},
    [S_MEM_ACT] = {"memory.activation", K_NUM, 0, 0, false},
    [S_MEM_LIMIT] = {"memory.limit", K_NUM, 0, 0, false},
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
    [S_MEM_INPUT] = {"memory.input", K_NUM, 0, 0, false},
};

/* Short names for -D only (DESIGN.md: `-D layers=16`). */
static const struct {
    const char *alias;
    enum slot slot;
} aliases[] = {
    {"layers", S_LAYERS}, {"hidden", S_HIDDEN}, {"batch", S_BATCH}, {"lr", S_LR}, {"seed", S_SEED},
    {"recompute", S_RECOMPUTE}, {"recompute_stages", S_RECOMPUTE_STAGES},
};

/* The blocks that are not settings themselves (`cost { F = 2 }`), with a
 * key of each for the message of a -D that names the block. */
static const struct {
    const char *name;
    const char *example;
} blocks[] = {
    {"cost", "cost.F"}, {"memory", "memory.limit"}, {"pipeline", "devices"}, {"cost.stage", "cost.stage.0.F"},
};

/* The costs a stage may override (cost.stage.N.F), by `which`. */
static const char *const stage_costs[] = {"F", "B", "W"};

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
} ctx;

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

static const char *def_name(const ctx *c, int i) { return c->defs[i].name ? c->defs[i].name : ""; }
static const char *def_value(const ctx *c, int i) { return c->defs[i].value ? c->defs[i].value : ""; }

/* "KEY: msg" at offset in the file, or "-D NAME=VALUE: msg". */
static void report_v(ctx *c, const origin *o, size_t offset, const char *key, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (o->def >= 0)
        pp_error(c->d, "-D %s=%s: %s", def_name(c, o->def), def_value(c, o->def), msg);
    else
        pp_error_at(c->d, c->src, offset, "%s: %s", key, msg);
}

__attribute__((format(printf, 5, 6))) static void report_at(ctx *c, const origin *o, size_t offset, const char *key,
                                                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report_v(c, o, offset, key, fmt, ap);
    va_end(ap);
}

/* The value as the user wrote it, for ", got ..." in file messages. */
static const char *describe(const pp_value *v, char *buf, size_t size)
{
    const char *more = strlen(v->text) > 40 ? "..." : "";
    switch (v->kind) {
    case PP_VAL_LIST: return "a list";
    case PP_VAL_STRING: snprintf(buf, size, "\"%.40s%s\"", v->text, more); break;
    default: snprintf(buf, size, "'%.40s%s'", v->text, more); break;
    }
    return buf;
}

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
        report_at(c, o, 0, key, "%s", msg);
    else
        report_at(c, o, v->offset, key, "%s, got %s", msg, describe(v, got, sizeof got));
}

/* Levenshtein distance, for "did you mean"; large for long names. */
static int distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    int row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int sub = diag + (a[i - 1] != b[j - 1]);
            int best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[lb];
}

/* The closest of names to word, if close enough to be a typo. */
static const char *closest(const char *word, const char *const *names, int n)
{
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; n < 0 ? names[i] != NULL : i < n; i++) {
        if (strcasecmp(word, names[i]) == 0)
            return names[i];
        /* Only when most of the word survives: 'Q' is not a typo of 'F'. */
        int dist = distance(word, names[i]);
        if (2 * dist >= (int)strlen(word))
            continue;
        if (dist < best_d) {
            best_d = dist;
            best = names[i];
        }
    }
    return best;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

enum target_kind {
    T_UNKNOWN,
    T_SETTING,    /* keys[slot] */
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
        if (strcmp(keys[s].name, path) == 0) {
            t.kind = T_SETTING;
            t.slot = (enum slot)s;
        }
    for (size_t i = 0; with_aliases && i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(aliases[i].alias, path) == 0) {
            t.kind = T_SETTING;
            t.slot = aliases[i].slot;
        }
    if (in_pipeline) {
        if (t.kind != T_SETTING || !keys[t.slot].pipeline)
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
            if (!strcmp(p + 1, stage_costs[w])) {
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
    const char *names[64];
    int n = 0;
    for (const pp_policy *const *p = pp_policy_all(); *p && n < 64; p++)
        names[n++] = (*p)->name;
    const char *guess = closest(v->text, names, n);
    char hint[80] = "";
    if (guess)
        snprintf(hint, sizeof hint, "; did you mean %s?", guess);
    report_at(c, o, v->offset, "schedule", "unknown policy '%.40s'%s (ppcc --list-policies lists them)", v->text,
              hint);
}

/* Checks v for keys[slot] and records it.  A second setting of one key
 * in the file is an error; -D overrides silently (that is its job). */
static void set_value(ctx *c, enum slot slot, const pp_value *v, const origin *o)
{
    const key_def *k = &keys[slot];
    setting *s = &c->set[slot];
    if (s->set && s->at.def < 0 && o->def < 0) {
        report_at(c, o, o->name_off, k->name, "duplicate setting");
        pp_note_at(c->d, c->src, s->at.name_off, "'%s' was first set here", k->name);
        return;
    }
    double num = 0;
    switch (k->kind) {
    case K_INT:
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
        if (slot == S_MODEL && strcmp(v->text, "mlp") != 0) {
            bad_value(c, o, k->name, v, "unknown model kind (the only one is mlp)");
            return;
        }
        if (slot == S_RECOMPUTE && strcmp(v->text, "never") && strcmp(v->text, "always") &&
            strcmp(v->text, "except_last")) {
            bad_value(c, o, k->name, v, "expected never, always or except_last");
            return;
        }
        if (slot == S_OPTIMIZER && strcmp(v->text, "sgd") != 0) {
            bad_value(c, o, k->name, v, "unknown optimizer (the only one is sgd)");
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
        if (v->kind != PP_VAL_LIST) {
            bad_value(c, o, k->name, v, slot == S_RECOMPUTE_STAGES ? "expected a list of stage numbers"
                                                                   : "expected a list of layer counts, one per stage");
            return;
        }
        break;
    }
    s->set = true;
    s->at = *o;
    s->v = v;
    s->num = num;
}

static void add_override(ctx *c, long stage, int which, const pp_value *v, const origin *o)
{
    char name[64];
    snprintf(name, sizeof name, "cost.stage.%ld.%s", stage, stage_costs[which]);
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
            scope_add(sc, stage_costs[w], strlen(stage_costs[w]));
        return;
    }
    for (int s = 0; s < S__COUNT; s++)
        if (!in_pipeline || keys[s].pipeline)
            scope_add_inside(sc, keys[s].name, in_pipeline ? "" : prefix);
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
    const char *guess = closest(it->name, names, -1);
    if (guess) {
        pp_error_at(c->d, c->src, it->offset, "unknown setting '%.60s'%s%s; did you mean '%s'?", it->name, where,
                    block, guess);
        return;
    }
    /* A key of another block written here: say where it belongs. */
    for (int s = 0; s < S__COUNT; s++) {
        const char *dot = strrchr(keys[s].name, '.');
        size_t blen = dot ? (size_t)(dot - keys[s].name) : 0;
        bool same_block = strlen(prefix) == blen && !strncmp(prefix, keys[s].name, blen);
        if (dot && !strcmp(dot + 1, it->name) && !same_block && !in_pipeline) {
            pp_error_at(c->d, c->src, it->offset, "unknown setting '%s'%s%s; it belongs in %.*s { ... } (%s)",
                        it->name, where, block, (int)(dot - keys[s].name), keys[s].name, keys[s].name);
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

/* `order { rows }`: only recorded here, read in resolve_order() once the
 * shape is known. */
static void walk_order(ctx *c, const pp_item *it)
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
            walk_order(c, it);
            continue;
        }
        char path[256];
        int len = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", it->name);
        target t = {T_UNKNOWN, S__COUNT, -1, -1};
        if (len > 0 && (size_t)len < sizeof path)
            t = lookup(path, false);
        if (in_pipeline && !(t.kind == T_SETTING && keys[t.slot].pipeline))
            t.kind = T_UNKNOWN;
        origin o = {-1, it->offset, it->value ? it->value->offset : it->offset};

        switch (t.kind) {
        case T_UNKNOWN:
            unknown_setting(c, it, prefix, in_pipeline);
            break;
        case T_SETTING: {
            const key_def *k = &keys[t.slot];
            if (it->has_block && !k->block)
                pp_error_at(c->d, c->src, it->offset, "%s: takes a value, not a block, as in '%s = ...'", k->name,
                            it->name);
            else if (!it->value)
                pp_error_at(c->d, c->src, it->offset, "%s: expected a value, as in '%s %s'", k->name, it->name,
                            t.slot == S_SCHEDULE ? "interleaved { group = 4 }"
                            : t.slot == S_MODEL  ? "mlp { layers = 8 }"
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

static void apply_define(ctx *c, int i)
{
    const char *name = def_name(c, i);
    origin o = {i, 0, 0};
    target t = lookup(name, true);
    switch (t.kind) {
    case T_UNKNOWN: {
        const char *all[S__COUNT + sizeof aliases / sizeof aliases[0]];
        int n = 0;
        for (int s = 0; s < S__COUNT; s++)
            all[n++] = keys[s].name;
        for (size_t j = 0; j < sizeof aliases / sizeof aliases[0]; j++)
            all[n++] = aliases[j].alias;
        const char *guess = closest(name, all, n);
        char hint[80] = "";
        if (guess)
            snprintf(hint, sizeof hint, "; did you mean '%s'?", guess);
        pp_error(c->d, "-D %s=%s: unknown setting '%s'%s", name, def_value(c, i), name, hint);
        return;
    }
    case T_BLOCK:
    case T_STAGE:
    case T_STAGE_LIST: {
        const char *example = "cost.stage.0.F"; /* cost.stage.N */
        for (size_t j = 0; j < sizeof blocks / sizeof blocks[0]; j++)
            if (!strcmp(name, blocks[j].name))
                example = blocks[j].example;
        pp_error(c->d, "-D %s=%s: '%s' is a block; set one of its keys, such as %s", name, def_value(c, i), name,
                 example);
        return;
    }
    default:
        break;
    }
    char err[160];
    const pp_value *v = pp_parse_value(def_value(c, i), c->a, err, sizeof err);
    if (!v) {
        pp_error(c->d, "-D %s=%s: %s", name, def_value(c, i), err);
        return;
    }
    if (t.kind == T_STAGE_COST)
        add_override(c, t.stage, t.which, v, &o);
    else
        set_value(c, t.slot, v, &o);
}

/* ------------------------------------------------------------------ */
/* Resolution: defaults, derived values, cross-checks                  */
/* ------------------------------------------------------------------ */

static double get(const ctx *c, enum slot s, double dflt) { return c->set[s].set ? c->set[s].num : dflt; }

/* Reports at the key's name (file) or its -D. */
__attribute__((format(printf, 3, 4))) static void report_key(ctx *c, enum slot s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report_v(c, &c->set[s].at, c->set[s].at.name_off, keys[s].name, fmt, ap);
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
            report_at(c, &ps->at, v->offset, "placement",
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
        report_at(c, &ps->at, v->offset, "placement", "expected %d device numbers (one per stage), got %d", S,
                  v->nitems);
        return;
    }
    int *count = pp_arena_alloc(c->a, (size_t)D * sizeof *count);
    bool ok = true;
    for (int s = 0; s < S; s++) {
        const pp_value *item = v->items[s];
        if (!int_item(item, 0, D - 1)) {
            char got[64];
            report_at(c, &ps->at, item->offset, "placement", "entry %d (stage %d): expected a device 0..%d, got %s", s,
                      s, D - 1, describe(item, got, sizeof got));
            ok = false;
            continue;
        }
        count[(int)item->number]++;
    }
    if (!ok)
        return;
    for (int dev = 0; dev < D; dev++)
        if (count[dev] != V) {
            report_at(c, &ps->at, v->offset, "placement",
                      "device %d holds %d stage%s, but every device must hold stages / devices = %d", dev, count[dev],
                      count[dev] == 1 ? "" : "s", V);
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
    for (int s = 0; s < S; s++) {
        k->stage_F[s] = k->F;
        k->stage_B[s] = k->B;
        k->stage_W[s] = k->W;
    }
    /* Sorted by (stage, which, order): duplicates are neighbours and the
     * later of two settings wins. */
    if (c->noverrides)
        qsort(c->overrides, (size_t)c->noverrides, sizeof *c->overrides, cmp_override);
    for (int i = 0; i < c->noverrides; i++) {
        const stage_cost *o = &c->overrides[i];
        char name[64];
        snprintf(name, sizeof name, "cost.stage.%ld.%s", o->stage, stage_costs[o->which]);
        if (o->stage >= S) {
            report_at(c, &o->at, o->at.name_off, name, "stage %ld does not exist (stages are 0..%d)", o->stage, S - 1);
            continue;
        }
        const stage_cost *prev = i > 0 ? &c->overrides[i - 1] : NULL;
        if (prev && prev->stage == o->stage && prev->which == o->which && prev->at.def < 0 && o->at.def < 0) {
            report_at(c, &o->at, o->at.name_off, name, "duplicate setting");
            pp_note_at(c->d, c->src, prev->at.name_off, "'%s' was first set here", name);
            continue;
        }
        double *arr = o->which == 0 ? k->stage_F : o->which == 1 ? k->stage_B : k->stage_W;
        arr[o->stage] = o->value;
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

    /* balance: S positive integers; without layers they define it. */
    const setting *bs = &c->set[S_BALANCE];
    bool balanced = false;
    long sum = 0;
    if (bs->set) {
        const pp_value *v = bs->v;
        balanced = true;
        if (v->nitems != S) {
            report_at(c, &bs->at, v->offset, "model.balance", "expected %d layer counts (one per stage), got %d", S,
                      v->nitems);
            balanced = false;
        }
        for (int i = 0; balanced && i < S; i++) {
            const pp_value *item = v->items[i];
            if (!int_item(item, 1, PP_MAX_LAYERS)) {
                char got[64];
                report_at(c, &bs->at, item->offset, "model.balance",
                          "entry %d: expected a positive number of layers, got %s", i, describe(item, got, sizeof got));
                balanced = false;
                break;
            }
            m->layers_per_stage[i] = (int)item->number;
            sum += (long)item->number;
        }
    }
    m->layers = (int)get(c, S_LAYERS, balanced && sum <= PP_MAX_LAYERS ? (double)sum : S);
    if (m->layers < S) {
        report_key(c, S_LAYERS, "%d layers cannot fill %d stages (each stage needs at least one layer)", m->layers, S);
    } else if (balanced && sum != m->layers) {
        report_at(c, &bs->at, bs->v->offset, "model.balance", "entries sum to %ld, but model.layers = %d", sum,
                  m->layers);
    } else if (!balanced) {
        /* As even as possible; the earlier stages take the extra layers. */
        for (int s = 0; s < S; s++)
            m->layers_per_stage[s] = m->layers / S + (s < m->layers % S);
    }

    m->batch = (int)get(c, S_BATCH, (double)M * 4);
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
            report_at(c, &list->at, item->offset, "memory.recompute_stages",
                      "entry %d: expected a stage number (0..%d), got %s", i, S - 1, describe(item, got, sizeof got));
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
    if (c->set[S_MEM_INPUT].set && input > act)
        report_key(c, S_MEM_INPUT, "%g is more than memory.activation = %g (the input is part of the activations)",
                   input, act);
    spec->cost.recompute_input = input / act;
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

/* Reads the order block into spec->order: one row per device, each op
 * word checked for its shape and range.  What the ops must satisfy
 * together (each once, on its stage's device, in dependency order) is the
 * custom policy's to check, with the same offsets. */
static void resolve_order(ctx *c, pp_spec *spec)
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
                            describe(w, got, sizeof got));
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

static void resolve(ctx *c, pp_spec *spec)
{
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
    spec->microbatches = (int)get(c, S_MICROBATCHES, 8);
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
    resolve_model(c, spec);
    resolve_recompute(c, spec);
    resolve_order(c, spec);
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
    resolve(&c, spec);
    return d->errors - before;
}
