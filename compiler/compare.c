/*
 * compare.c — `ppcc FILE --compare a,b,...`: one table, one row per
 * policy, on the file's devices, micro-batches, model and total work
 * (docs/auto.md).
 *
 * A row is a compilation, not an estimate: its -D settings (printed with
 * it) are added after the command line's own, the spec is built again from
 * the file with them (pp_spec_build), and the policy, lowering, verifier
 * and simulator run as `ppcc FILE ... SETTINGS` runs them.  So the row's
 * numbers are those that command prints, recompute, memory model and all.
 *
 * Policies differ in their natural chunking: v = 1 on the loop placement
 * (gpipe, 1f1b, zb-h1, zb-h2), the file's virtual if > 1 else 2 on the
 * loop (interleaved, looped-bfs, interleaved-zb), v = 2 on the V shape
 * (zbv, dualpipev, dualpipe, v-half, v-min).  In the file's own shape a row keeps the file's costs;
 * in another one, the file's per-stage costs are summed per device into the
 * device's share of the model, each of the v chunks costs share / v and
 * holds activation * virtual / v, and the settings say so (cost.F, ...,
 * cost.stage.N.F where stages differ, memory.activation).  With layers
 * (docs/costs.md) a stage is its layers' sums in any shape, so another
 * chunking only re-splits them; with balance = auto each row searches its
 * own split and names it (-D model.balance=[...]).  `auto` is compiled in
 * each of the three shapes and its row is the best.
 *
 * A row that does not fit memory.limit shows what it compiles to without
 * the limit (-D memory.limit=0); compiling it with its settings fails with
 * the limit error.  Fitting is judged by activation_memory.c, as the
 * verifier does.
 *
 * --shapes (docs/auto.md, "Shapes") compiles each policy in every shape
 * (virtual 1 or 2, loop or vshape) x recompute (the file's or the other
 * way) x, with layers, balance (the file's or auto), each a row as above,
 * and keeps its best; pp_shapes_choose does it for the file's policy (or,
 * for auto, every synchronous one) and hands the winner's settings back
 * to be compiled.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

typedef struct shape {
    int v;
    bool vshape;
    bool mirrored; /* the row's policy runs two copies of the model (dualpipe): set by run_row */
} shape;

/* The stages of one copy of the model a device holds: a mirrored plan's
 * device holds one stage of each of its two copies. */
static int model_chunks(shape sh) { return sh.mirrored ? sh.v / 2 : sh.v; }
static int file_model_chunks(const pp_spec *s) { return pp_spec_pipe_stages(s) / s->devices; }

static shape natural_shape(const pp_spec *s, const char *name)
{
    if (!strcmp(name, "zbv") || !strcmp(name, "dualpipev") || !strcmp(name, "dualpipe") || !strcmp(name, "v-half") ||
        !strcmp(name, "v-min"))
        return (shape){.v = 2, .vshape = true};
    if (!strcmp(name, "interleaved") || !strcmp(name, "looped-bfs") || !strcmp(name, "interleaved-zb"))
        return (shape){.v = s->chunks > 1 ? s->chunks : 2};
    return (shape){.v = 1};
}

/* A row's own -D settings: names and values it owns. */
enum { MAX_SETTINGS = 3 * PP_MAX_STAGES + 8 };
typedef struct settings {
    pp_define *defs;
    int n;
} settings;

static void settings_add(settings *st, const char *name, const char *value)
{
    st->defs[st->n].name = strdup(name);
    st->defs[st->n].value = strdup(value);
    if (!st->defs[st->n].name || !st->defs[st->n].value)
        pp_out_of_memory((double)strlen(name) + strlen(value) + 2, "a row's settings");
    st->n++;
}

/* The shortest text that reads back as exactly x. */
static void exact_number(char *buf, size_t size, double x)
{
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, x);
        if (strtod(buf, NULL) == x)
            return;
    }
}

static void settings_add_number(settings *st, const char *name, double x)
{
    char buf[40];
    exact_number(buf, sizeof buf, x);
    settings_add(st, name, buf);
}

/* Sets name to value: the row's own entry replaced if it has one. */
static void settings_set(settings *st, const char *name, const char *value)
{
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->defs[i].name, name)) {
            free((char *)st->defs[i].value);
            if (!(st->defs[i].value = strdup(value)))
                pp_out_of_memory((double)strlen(value) + 1, "a row's settings");
            return;
        }
    settings_add(st, name, value);
}

static void settings_free(settings *st)
{
    for (int i = 0; i < st->n; i++) {
        free((char *)st->defs[i].name);
        free((char *)st->defs[i].value);
    }
    st->n = 0;
}

typedef struct row {
    const char *name;
    shape sh;
    bool ok, fits;
    double makespan, bubble;
    double dp_time; /* the reductions over data-parallel replicas (pp_sim.dp_time) */
    double saved;   /* ZeRO-1's largest saving on a device (pp_sim.zero_saved), 0: none */
    double *peak;   /* [devices] peak memory (activation_memory.c) */
    char *settings; /* "-D schedule=... -D ..." */
    char reason[300];
} row;

/* The first error line of a captured diag, without its "...error: ". */
static void first_error(const char *text, char *out, size_t size)
{
    const char *p = text ? strstr(text, "error: ") : NULL;
    p = p ? p + 7 : (text && *text ? text : "failed");
    size_t n = strcspn(p, "\n");
    snprintf(out, size, "%.*s", (int)n, p);
}

/* Shape sh over the file's devices: its placement, and whether it is the
 * file's own (same chunks, same placement). */
static bool place(const pp_spec *s, shape sh, int *placement)
{
    int D = s->devices, S = D * sh.v;
    bool same = S == s->stages;
    for (int st = 0; st < S; st++) {
        placement[st] = sh.vshape ? (st < D ? st : 2 * D - 1 - st) : st % D;
        same = same && placement[st] == s->placement[st];
    }
    return same && sh.mirrored == s->mirrored;
}

/* The per-stage costs of shape sh (stage_F, stage_B, stage_W, each [S]):
 * each device's share of the file's costs, split over its v chunks. */
static void reshaped_costs(const pp_spec *s, shape sh, const int *placement, double *cost)
{
    int D = s->devices, S = D * sh.v;
    double *share = pp_xcalloc(3 * (size_t)D, sizeof *share, "--compare's rows");
    for (int st = 0; st < pp_spec_pipe_stages(s); st++) { /* one copy of the model */
        int d = s->placement[st];
        share[d] += pp_op_cost(&s->cost, PP_OP_F, st, true);
        share[D + d] += pp_op_cost(&s->cost, PP_OP_B, st, true);
        share[2 * D + d] += pp_op_cost(&s->cost, PP_OP_W, st, true);
    }
    for (int k = 0; k < 3; k++)
        for (int st = 0; st < S; st++) /* a mirrored row's stage S/2 + s is a copy of stage s */
            cost[k * S + st] = share[k * D + placement[sh.mirrored ? st % (S / 2) : st]] / model_chunks(sh);
    free(share);
}

static const double *stage_costs(const pp_spec *t, int k)
{
    return k == 0 ? t->cost.stage_F : k == 1 ? t->cost.stage_B : t->cost.stage_W;
}

/* The settings of a row of policy name in shape sh: the schedule; for
 * another shape than the file's, virtual, placement, the costs (defaults,
 * then the stages that differ) and the activation size. */
/* With layers (docs/costs.md) the stages' costs and memory are their
 * layers' sums in any shape: another chunking sets virtual and placement,
 * the even split in place of a list of the file's length, and for the
 * MLP's equal layers (made from cost.F: a stage of the even split) the
 * costs and activation scaled to the new stage; the file's per-stage
 * overrides cannot follow (reason returned). */
static const char *layered_settings(const pp_spec *s, shape sh, settings *st)
{
    for (int i = 0; i < s->stages; i++)
        if (!isnan(s->cost.fixed_F[i]) || !isnan(s->cost.fixed_B[i]) || !isnan(s->cost.fixed_W[i]))
            return "per-stage cost overrides (cost.stage.N) do not carry over to another chunking of layers";
    char v[16];
    snprintf(v, sizeof v, "%d", sh.v);
    if (sh.v != s->chunks)
        settings_add(st, "virtual", v);
    if (s->placement_kind != (sh.vshape ? PP_PLACE_VSHAPE : PP_PLACE_LOOP))
        settings_add(st, "placement", sh.vshape ? "vshape" : "loop");
    if (s->model.balance == PP_BALANCE_LIST)
        settings_add(st, "model.balance", "even");
    if (s->layers_default) {
        double k = (double)file_model_chunks(s) / model_chunks(sh);
        static const char *const base[3] = {"cost.F", "cost.B", "cost.W"};
        const double file_base[3] = {s->cost.F, s->cost.B, s->cost.W};
        for (int j = 0; j < 3; j++)
            if (file_base[j] * k != file_base[j])
                settings_add_number(st, base[j], file_base[j] * k);
        double act = (s->act_size > 0 ? s->act_size : 1) * k;
        if (act != s->act_size)
            settings_add_number(st, "memory.activation", act);
    }
    return NULL;
}

static const char *row_settings(const pp_spec *s, const char *name, shape sh, settings *st, double *want,
                                bool *reshaped)
{
    int S = s->devices * sh.v;
    int *placement = pp_xcalloc((size_t)S, sizeof *placement, "--compare's rows");
    *reshaped = !place(s, sh, placement);
    settings_add(st, "schedule", name);
    if (*reshaped && s->layers) {
        free(placement);
        *reshaped = false; /* no per-stage costs to patch */
        return layered_settings(s, sh, st);
    }
    if (*reshaped) {
        char v[16];
        snprintf(v, sizeof v, "%d", sh.v);
        if (sh.v != s->chunks)
            settings_add(st, "virtual", v);
        if (s->placement_kind != (sh.vshape ? PP_PLACE_VSHAPE : PP_PLACE_LOOP))
            settings_add(st, "placement", sh.vshape ? "vshape" : "loop");
        reshaped_costs(s, sh, placement, want);
        static const char *const base[3] = {"cost.F", "cost.B", "cost.W"};
        const double file_base[3] = {s->cost.F, s->cost.B, s->cost.W};
        /* a gpt on hardware: the layers give each stage's times in any chunking */
        for (int k = 0; !s->seconds && k < 3; k++) {
            const double *c = want + (size_t)k * S;
            if (c[0] != file_base[k])
                settings_add_number(st, base[k], c[0]);
            for (int i = 1; i < S; i++)
                if (c[i] != c[0]) {
                    char key[48];
                    snprintf(key, sizeof key, "cost.stage.%d.%c", i, "FBW"[k]);
                    settings_add_number(st, key, c[i]);
                }
        }
        double act = (s->act_size > 0 ? s->act_size : 1) * file_model_chunks(s) / model_chunks(sh);
        if (act != s->act_size && s->bytes) { /* in bytes: with its unit */
            char buf[48];
            exact_number(buf, sizeof buf - 1, act);
            strcat(buf, "B");
            settings_add(st, "memory.activation", buf);
        } else if (act != s->act_size) {
            settings_add_number(st, "memory.activation", act);
        }
    }
    free(placement);
    return NULL;
}

/* What --shapes varies besides the shape: the recompute setting (NULL:
 * the file's) and balance = auto in place of the file's split. */
typedef struct variant {
    const char *recompute;
    bool balance_auto;
} variant;

/* Compiles the file with the command line's defs, then st's (and var's,
 * if any), as ppcc would (without the limit: fits says whether it holds). */
static void run_row(const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s, const char *name,
                    shape sh, const variant *var, row *r)
{
    int S = s->devices * sh.v;
    const pp_policy *pol = pp_policy_find(name);
    sh.mirrored = pol && pol->mirrored;
    settings st = {pp_xcalloc(MAX_SETTINGS, sizeof *st.defs, "--compare's rows"), 0};
    double *want = pp_xcalloc(3 * (size_t)S, sizeof *want, "--compare's rows");
    bool reshaped;
    const char *cannot = row_settings(s, name, sh, &st, want, &reshaped);
    if (var && var->recompute)
        settings_set(&st, "recompute", var->recompute);
    if (var && var->balance_auto)
        settings_set(&st, "model.balance", "auto");
    pp_define *all = pp_xcalloc((size_t)(ndefs + MAX_SETTINGS), sizeof *all, "--compare's rows");
    r->sh = sh;
    r->ok = false;
    pp_diag_buffer q;
    pp_diag_buffer_open(&q, "ppcc");
    pp_arena a = {0};
    pp_spec t;
    if (cannot) {
        fprintf(q.diag.out, "ppcc: error: %s\n", cannot);
        goto failed;
    }
    for (int pass = 0;; pass++) {
        memcpy(all, defs, (size_t)ndefs * sizeof *all);
        memcpy(all + ndefs, st.defs, (size_t)st.n * sizeof *all);
        pp_arena_free(&a);
        if (pp_spec_build(ast, all, ndefs + st.n, &a, &q.diag, &t))
            goto failed;
        /* A stage the file sets a cost of keeps it over cost.F: name those
         * stages too, once. */
        bool patched = false;
        for (int k = 0; reshaped && !s->seconds && pass == 0 && k < 3; k++)
            for (int i = 0; i < S; i++)
                if (stage_costs(&t, k)[i] != want[(size_t)k * S + i] && st.n < MAX_SETTINGS) {
                    char key[48];
                    snprintf(key, sizeof key, "cost.stage.%d.%c", i, "FBW"[k]);
                    settings_add_number(&st, key, want[(size_t)k * S + i]);
                    patched = true;
                }
        if (!patched)
            break;
    }
    if (t.layers && t.model.balance == PP_BALANCE_AUTO) {
        /* the row's own best split under the limit (the closest when none
         * fits: the row then says no), named in its settings */
        pp_balance_report rep;
        pp_balance_auto(&t, &rep, &q.diag);
        char list[16 * 64] = "[";
        size_t at = 1;
        for (int i = 0; i < t.stages && at + 16 < sizeof list; i++)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%d", i ? "," : "", t.model.layers_per_stage[i]);
        if (at + 16 < sizeof list && st.n < MAX_SETTINGS) {
            snprintf(list + at, sizeof list - at, "]");
            settings_set(&st, "model.balance", list);
        }
    }
    pp_plan p = {0};
    pp_sim sim;
    if (pp_policy_run(&t, &p, &q.diag) == 0 && pp_lower_verify_simulate(&p, &t, false, &sim, &q.diag) == 0) {
        r->ok = true;
        r->fits = true;
        r->makespan = sim.makespan;
        r->bubble = sim.bubble;
        r->dp_time = sim.dp_time;
        r->saved = 0;
        for (int d = 0; sim.zero_saved && d < s->devices; d++)
            r->saved = sim.zero_saved[d] > r->saved ? sim.zero_saved[d] : r->saved;
        for (int d = 0; d < s->devices; d++) {
            r->peak[d] = sim.peak_mem[d];
            r->fits = r->fits && !pp_mem_over(sim.peak_mem[d], t.mem_limit);
        }
        pp_sim_free(&sim, s->devices);
    }
    pp_plan_free(&p);
failed:
    if (!r->ok) {
        fflush(q.diag.out);
        first_error(q.text, r->reason, sizeof r->reason);
    }
    /* The settings as the row prints them. */
    size_t len = 1;
    for (int i = 0; i < st.n; i++)
        len += strlen(st.defs[i].name) + strlen(st.defs[i].value) + 5;
    free(r->settings);
    r->settings = pp_xcalloc(len, 1, "--compare's rows");
    for (int i = 0, at = 0; i < st.n; i++)
        at += snprintf(r->settings + at, len - (size_t)at, "%s-D %s=%s", i ? " " : "", st.defs[i].name,
                       st.defs[i].value);
    pp_arena_free(&a);
    pp_diag_buffer_close(&q);
    settings_free(&st);
    free(st.defs);
    free(all);
    free(want);
}

/* The peak memory column of a row: per device, as every view prints it
 * (pp_mem_show). */
static void peak_text(const pp_spec *s, const row *r, char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = '\0';
    if (!r->ok) {
        snprintf(buf, size, "-");
        return;
    }
    char m[32];
    for (int d = 0; d < s->devices && at + 1 < size; d++)
        at += (size_t)snprintf(buf + at, size - at, "%s%s", d ? " " : "", pp_mem_show(&s->units, r->peak[d], m,
                                                                                        sizeof m));
}

static void print_table(FILE *out, const pp_spec *s, row *rows, int n)
{
    size_t pw = strlen("peak memory per device");
    char *peaks = pp_xcalloc((size_t)s->devices * 32 + 8, 1, "--compare's rows");
    for (int i = 0; i < n; i++) {
        peak_text(s, &rows[i], peaks, (size_t)s->devices * 32 + 8);
        if (strlen(peaks) > pw)
            pw = strlen(peaks);
    }
    /* a gpt on hardware: tokens/s per device and MFU after the peaks */
    double tps, mfu;
    bool rate = pp_throughput(&s->units, 1, s->devices, &tps, &mfu);
    char head[96] = "";
    size_t hn = 0;
    if (rate)
        hn += (size_t)snprintf(head, sizeof head, "%12s %6s  ", "tokens/s/dev", "MFU");
    /* data parallelism: the stages' reductions (--stats' dp_allreduce=), ZeRO-1's largest saving */
    bool dp = s->data_parallel > 1, zero = dp && s->zero;
    if (dp)
        hn += (size_t)snprintf(head + hn, sizeof head - hn, "%12s  ", "dp_allreduce");
    if (zero)
        snprintf(head + hn, sizeof head - hn, "%10s  ", "zero_saved");
    fprintf(out, "%-15s %-9s %10s %8s  %-4s  %-*s  %s%s\n", "policy", "v place", "makespan", "bubble", "fits",
            (int)pw, "peak memory per device", head, "settings");
    for (int i = 0; i < n; i++) {
        const row *r = &rows[i];
        char shp[16], ms[32] = "-", bub[16] = "-";
        snprintf(shp, sizeof shp, "%d %s", r->sh.v, r->sh.vshape ? "vshape" : "loop");
        if (r->ok) {
            pp_time_show(&s->units, r->makespan, ms, sizeof ms);
            snprintf(bub, sizeof bub, "%.2f%%", 100 * r->bubble);
        }
        peak_text(s, r, peaks, (size_t)s->devices * 32 + 8);
        char cols[128] = "";
        size_t cn = 0;
        if (rate && r->ok && pp_throughput(&s->units, r->makespan, s->devices, &tps, &mfu))
            cn += (size_t)snprintf(cols, sizeof cols, "%12.6g %5.1f%%  ", tps, 100 * mfu);
        else if (rate)
            cn += (size_t)snprintf(cols, sizeof cols, "%12s %6s  ", "-", "-");
        char v[32];
        if (dp)
            cn += (size_t)snprintf(cols + cn, sizeof cols - cn, "%12s  ",
                                   r->ok ? pp_time_show(&s->units, r->dp_time, v, sizeof v) : "-");
        if (zero)
            snprintf(cols + cn, sizeof cols - cn, "%10s  ", r->ok ? pp_mem_show(&s->units, r->saved, v, sizeof v) : "-");
        fprintf(out, "%-15s %-9s %10s %8s  %-4s  %-*s  %s%s\n", r->name, shp, ms, bub,
                !r->ok ? "-" : r->fits ? "yes" : "no", (int)pw, peaks, cols, r->settings);
        if (!r->ok)
            fprintf(out, "%-15s cannot run: %s\n", "", r->reason);
    }
    free(peaks);
}

/* Splits list into items (at most 64, pointing into *names, which the
 * caller frees).  Returns the errors: unknown names, an empty list. */
static int parse_names(const char *list, char **names, char **items, int *n, pp_diag *d)
{
    int errors = 0;
    *n = 0;
    if (!(*names = strdup(list)))
        return 1;
    for (char *save = NULL, *tok = strtok_r(*names, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!pp_policy_find(tok)) {
            const char *guess = pp_policy_guess(tok);
            char hint[80] = "";
            if (guess)
                snprintf(hint, sizeof hint, "; did you mean %s?", guess);
            pp_error(d, "--compare: unknown policy '%.40s'%s (see --list-policies)", tok, hint);
            errors++;
        } else if (*n < 64) {
            items[(*n)++] = tok;
        }
    }
    if (!errors && *n == 0) {
        pp_error(d, "--compare: expected a comma-separated list of policies, got '%s'", list);
        errors++;
    }
    return errors;
}

static void print_header(FILE *out, const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s)
{
    char limit[32];
    char replicas[64] = "";
    if (s->data_parallel > 1)
        snprintf(replicas, sizeof replicas, " x %d replicas (%ld ranks%s)", s->data_parallel,
                 (long)s->devices * s->data_parallel, s->zero ? ", ZeRO-1" : "");
    fprintf(out, "compare: %d devices%s, %d micro-batches, memory limit %s\n", s->devices, replicas,
            s->microbatches, s->mem_limit > 0 ? pp_mem_show(&s->units, s->mem_limit, limit, sizeof limit) : "none");
    fprintf(out, "each row is what `ppcc %s", ast->src.path);
    for (int i = 0; i < ndefs; i++)
        fprintf(out, " -D %s=%s", defs[i].name, defs[i].value);
    if (s->seconds) /* a gpt on hardware (docs/gpt.md) */
        fputs(" SETTINGS` compiles;\n"
              "in another chunking than the file's, the model's layers split over the v * devices stages\n"
              "and a device's chunks hold activation * virtual / v; a row that does not fit is what\n"
              "-D memory.limit=0 compiles\n",
              out);
    else if (s->layers) /* docs/costs.md */
        fputs(" SETTINGS` compiles;\n"
              "a stage costs and holds the sums of its layers in every chunking (the even split where the\n"
              "file lists one for its own; balance = auto: each row's best); a row that does not fit is what\n"
              "-D memory.limit=0 compiles\n",
              out);
    else
        fputs(" SETTINGS` compiles;\n"
              "in another chunking than the file's, a device's v chunks each run at its cost / v and hold\n"
              "activation * virtual / v; a row that does not fit is what -D memory.limit=0 compiles\n",
              out);
}

int pp_compare(FILE *out, const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s, const char *list,
               pp_diag *d)
{
    /* Names first: an unknown one is an error before any work. */
    char *names, *items[64];
    int n, errors = parse_names(list, &names, items, &n, d);
    if (errors) {
        free(names);
        return errors;
    }
    row *rows = pp_xcalloc((size_t)n, sizeof *rows, "--compare's rows");
    row other = {0};
    other.peak = pp_xcalloc((size_t)s->devices, sizeof *other.peak, "--compare's rows");
    for (int i = 0; i < n; i++) {
        row *r = &rows[i];
        r->name = items[i];
        r->peak = pp_xcalloc((size_t)s->devices, sizeof *r->peak, "--compare's rows");
        if (strcmp(items[i], "auto") != 0) {
            run_row(ast, defs, ndefs, s, items[i], natural_shape(s, items[i]), NULL, r);
            continue;
        }
        /* auto: the best of its searches over the three natural shapes. */
        shape shapes[3] = {{.v = 1}, {.v = s->chunks > 1 ? s->chunks : 2}, {.v = 2, .vshape = true}};
        run_row(ast, defs, ndefs, s, "auto", shapes[0], NULL, r);
        for (int k = 1; k < 3; k++) {
            other.name = r->name;
            run_row(ast, defs, ndefs, s, "auto", shapes[k], NULL, &other);
            if (other.ok && (!r->ok || other.makespan < r->makespan - 1e-9)) {
                row t = *r;
                *r = other;
                other = t;
            }
        }
    }

    print_header(out, ast, defs, ndefs, s);
    print_table(out, s, rows, n);
    for (int i = 0; i < n; i++) {
        free(rows[i].peak);
        free(rows[i].settings);
    }
    free(rows);
    free(other.peak);
    free(other.settings);
    free(names);
    return 0;
}

/* ------------------------------------------------------------------ */
/* --compare LIST --shapes: each policy in its best shape.             */

enum { SHAPES = 3 };
static const shape searched_shapes[SHAPES] = {{.v = 1}, {.v = 2}, {.v = 2, .vshape = true}};

static double largest_peak(const row *r, int devices)
{
    double m = 0;
    for (int d = 0; d < devices; d++)
        m = fmax(m, r->peak[d]);
    return m;
}

/* Whether a beats b: compiled, then fitting the limit, then the smaller
 * makespan, then the smaller largest peak. */
static bool row_better(const row *a, const row *b, int devices)
{
    if (!a->ok || !b->ok)
        return a->ok && !b->ok;
    if (a->fits != b->fits)
        return a->fits;
    if (fabs(a->makespan - b->makespan) > 1e-9 * fmax(1, fabs(b->makespan)))
        return a->makespan < b->makespan;
    return largest_peak(a, devices) < largest_peak(b, devices) - 1e-12;
}

static void row_swap(row *a, row *b)
{
    row t = *a;
    *a = *b;
    *b = t;
}

static row new_row(const char *name, int devices)
{
    row r = {.name = name};
    r.peak = pp_xcalloc((size_t)devices, sizeof *r.peak, "--compare's rows");
    return r;
}

static void free_row(row *r)
{
    free(r->peak);
    free(r->settings);
}

/* best[k]: policy name's best compilation in searched_shapes[k] over the
 * recompute choices (the file's, and always or never: the other one) and,
 * with layers, the file's split and balance = auto. */
static void search_shapes(const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s, const char *name,
                          row *best)
{
    bool recomputes = false;
    for (int st = 0; s->recompute && st < s->stages; st++)
        recomputes = recomputes || s->recompute[st];
    const char *recompute[2] = {NULL, recomputes ? "never" : "always"};
    int balances = s->layers && s->model.balance != PP_BALANCE_AUTO ? 2 : 1;
    row cand = new_row(name, s->devices);
    for (int k = 0; k < SHAPES; k++)
        for (int r = 0; r < 2; r++)
            for (int b = 0; b < balances; b++) {
                variant var = {recompute[r], b == 1};
                run_row(ast, defs, ndefs, s, name, searched_shapes[k], &var, &cand);
                if (!best[k].settings || row_better(&cand, &best[k], s->devices))
                    row_swap(&cand, &best[k]);
            }
    free_row(&cand);
}

static void print_best(FILE *out, const pp_spec *s, const char *prefix, const char *what, const row *r)
{
    char ms[32];
    pp_time_show(&s->units, r->makespan, ms, sizeof ms);
    fprintf(out, "%s%-16s %-15s %d %-6s makespan %s%s  %s\n", prefix, what, r->name, r->sh.v,
            r->sh.vshape ? "vshape" : "loop", ms, r->fits ? "" : " (does not fit)", r->settings);
}

/* Policies names[n], each searched in every shape: per[i * SHAPES + k],
 * and rows[i], policy i's best (pointing into per). */
typedef struct shape_search {
    int n;
    row *per;
    const row **rows;
} shape_search;

static void search_policies(const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s, char **names,
                            int n, shape_search *x)
{
    x->n = n;
    x->per = pp_xcalloc((size_t)n * SHAPES + 1, sizeof *x->per, "--compare's rows");
    x->rows = pp_xcalloc((size_t)n + 1, sizeof *x->rows, "--compare's rows");
    for (int i = 0; i < n; i++) {
        row *per = &x->per[i * SHAPES];
        for (int k = 0; k < SHAPES; k++)
            per[k] = new_row(names[i], s->devices);
        search_shapes(ast, defs, ndefs, s, names[i], per);
        x->rows[i] = &per[0];
        for (int k = 1; k < SHAPES; k++)
            if (row_better(&per[k], x->rows[i], s->devices))
                x->rows[i] = &per[k];
    }
}

/* The best row of shape k (k < 0: of any shape) that compiled; NULL if none. */
static const row *search_best(const shape_search *x, int k, int devices)
{
    const row *top = NULL;
    for (int i = 0; i < x->n; i++) {
        const row *r = k < 0 ? x->rows[i] : &x->per[i * SHAPES + k];
        if (r->ok && (!top || row_better(r, top, devices)))
            top = r;
    }
    return top;
}

/* The winner, then the best of each shape (the runner-up of each family
 * of shapes), a line each, prefix before each. */
static void print_summary(FILE *out, const pp_spec *s, const shape_search *x, const char *prefix)
{
    const row *win = search_best(x, -1, s->devices);
    if (win)
        print_best(out, s, prefix, "best:", win);
    for (int k = 0; k < SHAPES; k++) {
        const row *top = search_best(x, k, s->devices);
        char what[32];
        snprintf(what, sizeof what, "best in %d %s:", searched_shapes[k].v, searched_shapes[k].vshape ? "vshape" : "loop");
        if (top)
            print_best(out, s, prefix, what, top);
    }
}

static void search_free(shape_search *x)
{
    for (int i = 0; i < x->n * SHAPES; i++)
        free_row(&x->per[i]);
    free(x->per);
    free(x->rows);
}

int pp_compare_shapes(FILE *out, const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s,
                      const char *list, pp_diag *d)
{
    char *names, *items[64];
    int n, errors = parse_names(list, &names, items, &n, d);
    if (errors) {
        free(names);
        return errors;
    }
    shape_search x;
    search_policies(ast, defs, ndefs, s, items, n, &x);
    row *rows = pp_xcalloc((size_t)n, sizeof *rows, "--compare's rows");
    for (int i = 0; i < n; i++)
        rows[i] = *x.rows[i];
    print_header(out, ast, defs, ndefs, s);
    fprintf(out, "each policy in its best shape: v and placement (1 loop, 2 loop, 2 vshape), recompute (the file's "
                 "or the other of never / always)%s\n",
            s->layers && s->model.balance != PP_BALANCE_AUTO ? ", balance (the file's or auto)" : "");
    print_table(out, s, rows, n);
    print_summary(out, s, &x, "");
    free(rows); /* shallow copies of x's */
    search_free(&x);
    free(names);
    return 0;
}

pp_define *pp_shapes_choose(FILE *report, const pp_ast *ast, const pp_define *defs, int ndefs, const pp_spec *s,
                            int *nout, pp_diag *d)
{
    /* auto's candidates: every policy that runs synchronous weights and
     * needs no order of the file's (custom), auto itself among them */
    char *items[64];
    int n = 0;
    if (!strcmp(s->schedule, "auto")) {
        for (const pp_policy *const *p = pp_policy_all(); *p && n < 64; p++)
            if ((*p)->async == PP_ASYNC_NONE && strcmp((*p)->name, "custom") != 0)
                items[n++] = (char *)(*p)->name;
    } else {
        items[n++] = (char *)s->schedule;
    }
    shape_search x;
    search_policies(ast, defs, ndefs, s, items, n, &x);
    const row *win = search_best(&x, -1, s->devices);
    if (!win) {
        pp_error(d, "--shapes: %s compiles this file in no shape (v = 1 or 2, loop or vshape): %s", s->schedule,
                 x.rows[0]->reason);
        search_free(&x);
        return NULL;
    }
    print_summary(report, s, &x, "shapes: ");
    /* defs, then the winner's settings ("-D a=b -D c=d"), parsed in a
     * copy that lives in the same block */
    size_t len = strlen(win->settings) + 1;
    int most = (int)len / 4 + 1;
    pp_define *out = pp_xcalloc(1, ((size_t)ndefs + (size_t)most) * sizeof *out + len, "--shapes' settings");
    char *text = (char *)(out + ndefs + most);
    memcpy(text, win->settings, len);
    if (ndefs > 0)
        memcpy(out, defs, (size_t)ndefs * sizeof *defs);
    *nout = ndefs;
    for (char *save = NULL, *tok = strtok_r(text, " ", &save); tok && *nout < ndefs + most;
         tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (!strcmp(tok, "-D") || !eq)
            continue;
        *eq = '\0';
        out[(*nout)++] = (pp_define){tok, eq + 1};
    }
    search_free(&x);
    return out;
}
