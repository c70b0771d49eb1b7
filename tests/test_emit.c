/*
 * test_emit.c — the emitters: plan JSON (round trip, golden, write errors,
 * speed), the text timeline (goldens for each layout, width, no lost ops,
 * measured-looking times), the stats line and the Chrome trace.
 *
 * Plans are built here by hand (compute orders of GPipe, 1F1B and a looped
 * two-chunk schedule, with send/recv inserted), and timed by a small
 * reference simulator below, so these tests do not depend on the policy,
 * lowering or simulator passes.  Its numbers are checked against the
 * closed forms (makespan (M+D-1)(F+B), bubble (D-1)/(M+D-1)).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "test_util.h"

/* ---- hand-built plans ---- */

typedef struct tplan {
    pp_plan p;
    pp_sim sim;
    bool timed;
} tplan;

typedef struct corder { /* a device's compute order before lowering */
    pp_op *ops;
    int n, cap;
} corder;

static void corder_push(corder *c, int kind, int stage, int mb)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->ops = realloc(c->ops, (size_t)c->cap * sizeof *c->ops);
    }
    c->ops[c->n++] = (pp_op){.kind = (uint8_t)kind, .stage = stage, .mb = mb, .peer = -1, .group = -1};
}

static pp_op comm_op(int kind, int comm, int stage, int mb, int peer, int group)
{
    return (pp_op){.kind = (uint8_t)kind, .comm = (uint8_t)comm, .stage = stage, .mb = mb,
                   .peer = peer, .group = group};
}

/* Inserts a recv before each compute op whose input lives on another
 * device and a send after each one whose output does; then update, flush. */
static void lower_into(pp_plan *p, corder *orders)
{
    int S = p->stages;
    const int *pl = p->placement;
    for (int d = 0; d < p->devices; d++) {
        int group = 0;
        for (int i = 0; i < orders[d].n; i++) {
            pp_op op = orders[d].ops[i];
            int s = op.stage, m = op.mb;
            if (op.kind == PP_OP_F && s > 0 && pl[s - 1] != d)
                pp_plan_push(p, d, comm_op(PP_OP_RECV, PP_COMM_ACT, s - 1, m, pl[s - 1], group++));
            if (op.kind == PP_OP_B && s < S - 1 && pl[s + 1] != d)
                pp_plan_push(p, d, comm_op(PP_OP_RECV, PP_COMM_GRAD, s + 1, m, pl[s + 1], group++));
            pp_plan_push(p, d, op);
            if (op.kind == PP_OP_F && s < S - 1 && pl[s + 1] != d)
                pp_plan_push(p, d, comm_op(PP_OP_SEND, PP_COMM_ACT, s, m, pl[s + 1], group++));
            if (op.kind == PP_OP_B && s > 0 && pl[s - 1] != d)
                pp_plan_push(p, d, comm_op(PP_OP_SEND, PP_COMM_GRAD, s, m, pl[s - 1], group++));
        }
        pp_plan_push(p, d, (pp_op){.kind = PP_OP_UPDATE, .stage = -1, .mb = -1, .peer = -1, .group = -1});
        pp_plan_push(p, d, (pp_op){.kind = PP_OP_FLUSH, .stage = -1, .mb = -1, .peer = -1, .group = -1});
        free(orders[d].ops);
    }
    free(orders);
}

static int *loop_placement(int D, int S)
{
    int *pl = malloc((size_t)S * sizeof *pl);
    for (int s = 0; s < S; s++)
        pl[s] = s % D;
    return pl;
}

enum sched { GPIPE, ONE_F_ONE_B, LOOPED };

/* GPipe: all forwards, then all backwards.  1F1B: D-d-1 warm-up forwards,
 * then alternate.  LOOPED (chunks > 1): breadth-first over the device's
 * chunks, forwards in chunk order, backwards in reverse. */
static void build(tplan *t, enum sched how, int D, int chunks, int M, bool split)
{
    memset(t, 0, sizeof *t);
    int S = D * chunks;
    int *pl = loop_placement(D, S);
    const char *name = how == GPIPE ? "gpipe" : how == ONE_F_ONE_B ? "1f1b" : "looped";
    ck_assert_int_eq(pp_plan_init(&t->p, name, D, S, M, pl), 0);
    free(pl);
    t->p.split_backward = split;
    corder *o = calloc((size_t)D, sizeof *o);
    for (int d = 0; d < D; d++) {
        corder *c = &o[d];
#define BACK(s, m)                                  \
    do {                                            \
        corder_push(c, PP_OP_B, (s), (m));          \
        if (split)                                  \
            corder_push(c, PP_OP_W, (s), (m));      \
    } while (0)
        if (how == GPIPE) {
            for (int m = 0; m < M; m++)
                corder_push(c, PP_OP_F, d, m);
            for (int m = 0; m < M; m++)
                BACK(d, m);
        } else if (how == ONE_F_ONE_B) {
            int warm = D - d - 1 < M ? D - d - 1 : M, f = 0, b = 0;
            while (f < warm)
                corder_push(c, PP_OP_F, d, f++);
            while (f < M) {
                corder_push(c, PP_OP_F, d, f++);
                BACK(d, b);
                b++;
            }
            while (b < M) {
                BACK(d, b);
                b++;
            }
        } else {
            for (int k = 0; k < chunks; k++)
                for (int m = 0; m < M; m++)
                    corder_push(c, PP_OP_F, k * D + d, m);
            for (int k = chunks - 1; k >= 0; k--)
                for (int m = 0; m < M; m++)
                    BACK(k * D + d, m);
        }
#undef BACK
    }
    lower_into(&t->p, o);
}

/* ---- a small reference simulator ---- */

/* Eager sends that keep the sender busy for `comm`; a recv starts when
 * posted and ends when the data has arrived.  Activations:
 * +1 at F, -1 at B (memory: one unit per set, no recompute).  Times come
 * out exact for these costs. */
static void simulate(tplan *t, double F, double B, double W, double comm)
{
    pp_plan *p = &t->p;
    pp_sim *sim = &t->sim;
    int D = p->devices, S = p->stages, M = p->microbatches;
    sim->start = calloc((size_t)D, sizeof *sim->start);
    sim->end = calloc((size_t)D, sizeof *sim->end);
    sim->busy = calloc((size_t)D, sizeof *sim->busy);
    sim->peak_act = calloc((size_t)D, sizeof *sim->peak_act);
    sim->peak_mem = calloc((size_t)D, sizeof *sim->peak_mem);
    size_t SM = (size_t)S * M;
    double *done_f = malloc(SM * sizeof(double)), *done_b = malloc(SM * sizeof(double));
    double *send_s[2], *send_e[2], *got[2];
    for (int k = 0; k < 2; k++) {
        send_s[k] = malloc(SM * sizeof(double));
        send_e[k] = malloc(SM * sizeof(double));
        got[k] = malloc(SM * sizeof(double));
    }
    for (size_t i = 0; i < SM; i++) {
        done_f[i] = done_b[i] = NAN;
        for (int k = 0; k < 2; k++)
            send_s[k][i] = send_e[k][i] = got[k][i] = NAN;
    }
    int *next = calloc((size_t)D, sizeof *next), *live = calloc((size_t)D, sizeof *live);
    double *now = calloc((size_t)D, sizeof *now);
    for (int d = 0; d < D; d++) {
        sim->start[d] = calloc((size_t)p->dev[d].n, sizeof(double));
        sim->end[d] = calloc((size_t)p->dev[d].n, sizeof(double));
    }
    bool progress = true;
    while (progress) {
        progress = false;
        for (int d = 0; d < D; d++) {
            while (next[d] < p->dev[d].n) {
                const pp_op *op = &p->dev[d].ops[next[d]];
                size_t at = (size_t)op->stage * M + op->mb;
                double s = now[d], e;
                if (op->kind == PP_OP_F || op->kind == PP_OP_B || op->kind == PP_OP_W) {
                    double ready = 0;
                    if (op->kind == PP_OP_F && op->stage > 0)
                        ready = p->placement[op->stage - 1] == d ? done_f[at - M] : got[0][at - M];
                    if (op->kind == PP_OP_B && op->stage < S - 1)
                        ready = p->placement[op->stage + 1] == d ? done_b[at + M] : got[1][at + M];
                    if (isnan(ready))
                        break;
                    s = fmax(s, ready);
                    e = s + (op->kind == PP_OP_F ? F : op->kind == PP_OP_B ? B : W);
                    if (!p->split_backward && op->kind == PP_OP_B)
                        e += W;
                    (op->kind == PP_OP_F ? done_f : done_b)[at] = op->kind == PP_OP_W ? done_b[at] : e;
                    sim->busy[d] += e - s;
                    live[d] += op->kind == PP_OP_F ? 1 : op->kind == PP_OP_B ? -1 : 0;
                    if (live[d] > sim->peak_act[d])
                        sim->peak_act[d] = live[d];
                } else if (op->kind == PP_OP_SEND) {
                    e = s + comm;
                    send_s[op->comm][at] = s;
                    send_e[op->comm][at] = e;
                } else if (op->kind == PP_OP_RECV) {
                    /* the recv spans from when it is posted, waiting included,
                     * as pp_simulate and a measured trace have it */
                    if (isnan(send_s[op->comm][at]))
                        break;
                    e = fmax(s, send_e[op->comm][at]);
                    got[op->comm][at] = e;
                } else {
                    e = s;
                }
                sim->start[d][next[d]] = s;
                sim->end[d][next[d]] = e;
                now[d] = e;
                next[d]++;
                progress = true;
            }
        }
    }
    double total = 0;
    for (int d = 0; d < D; d++) {
        ck_assert_msg(next[d] == p->dev[d].n, "reference sim stuck on d%d", d);
        sim->makespan = fmax(sim->makespan, now[d]);
        total += sim->busy[d];
        sim->peak_mem[d] = sim->peak_act[d];
    }
    sim->bubble = 1 - total / (D * sim->makespan);
    free(done_f);
    free(done_b);
    for (int k = 0; k < 2; k++) {
        free(send_s[k]);
        free(send_e[k]);
        free(got[k]);
    }
    free(next);
    free(live);
    free(now);
    t->timed = true;
}

static void tplan_free(tplan *t)
{
    if (t->timed)
        for (int d = 0; d < t->p.devices; d++) {
            free(t->sim.start[d]);
            free(t->sim.end[d]);
        }
    free(t->sim.start);
    free(t->sim.end);
    free(t->sim.busy);
    free(t->sim.peak_act);
    free(t->sim.peak_mem);
    pp_plan_free(&t->p);
}

static long count_compute(const pp_plan *p, int d)
{
    long n = 0;
    for (int i = 0; i < p->dev[d].n; i++)
        n += pp_op_is_compute(p->dev[d].ops[i].kind);
    return n;
}

/* ---- capture helpers ---- */

typedef struct capture {
    char *buf;
    size_t len;
    FILE *f;
} capture;

static void cap_open(capture *c)
{
    memset(c, 0, sizeof *c);
    c->f = open_memstream(&c->buf, &c->len);
    ck_assert_ptr_nonnull(c->f);
}

static char *cap_close(capture *c)
{
    fclose(c->f);
    return c->buf;
}

static char *timeline_text(const tplan *t, int width, bool compact)
{
    capture c;
    cap_open(&c);
    pp_timeline_opts o = {.width = width, .compact = compact};
    ck_assert_int_eq(pp_emit_timeline(c.f, &t->p, &t->sim, &o), 0);
    return cap_close(&c);
}

static void assert_lines_within(const char *text, int width)
{
    int line = 1;
    for (const char *s = text; *s;) {
        const char *e = strchr(s, '\n');
        ck_assert_msg(e != NULL, "line %d has no newline", line);
        ck_assert_msg(e - s <= width, "line %d is %d columns, width %d: %.*s", line, (int)(e - s),
                      width, (int)(e - s), s);
        s = e + 1;
        line++;
    }
}

/* The chart line of device d (the first line starting "dN "). */
static const char *row_of(const char *text, int d, int *len)
{
    char want[16];
    snprintf(want, sizeof want, "d%d ", d);
    for (const char *s = text; *s;) {
        const char *e = strchr(s, '\n');
        if (strncmp(s, want, strlen(want)) == 0) {
            const char *bar = strchr(s, '|');
            *len = (int)(e - bar) - 2; /* between the bars */
            return bar + 1;
        }
        s = e + 1;
    }
    ck_abort_msg("no row for d%d", d);
    return NULL;
}

/* Every compute op of each device shows once on its row: one F, B or W
 * per op, as a label or a compact mark. */
static void assert_every_op_shown(const char *text, const pp_plan *p)
{
    for (int d = 0; d < p->devices; d++) {
        int n, ops = 0;
        const char *row = row_of(text, d, &n);
        for (int i = 0; i < n; i++)
            ops += row[i] == 'F' || row[i] == 'B' || row[i] == 'W';
        ck_assert_msg(ops == count_compute(p, d), "d%d shows %d of %ld compute ops", d, ops, count_compute(p, d));
    }
}

/* ---- a hand-made spec for the JSON sections ---- */

typedef struct tspec {
    pp_spec s;
    double sf[8], sb[8], sw[8];
    int lps[8], placement[8];
} tspec;

static void make_spec(tspec *t, const pp_plan *p)
{
    memset(t, 0, sizeof *t);
    pp_spec *s = &t->s;
    snprintf(s->schedule, sizeof s->schedule, "%s", p->schedule);
    s->devices = p->devices;
    s->stages = p->stages;
    s->chunks = p->stages / p->devices;
    s->microbatches = p->microbatches;
    ck_assert_int_le(p->stages, 8);
    for (int i = 0; i < p->stages; i++) {
        t->placement[i] = p->placement[i];
        t->sf[i] = 1.0 + 0.125 * i;
        t->sb[i] = 2.0;
        t->sw[i] = 0.1; /* not exact in binary: tests round-trip printing */
        t->lps[i] = i == 0 ? 3 : 2;
    }
    s->placement = t->placement;
    s->cost = (pp_cost){.F = 1, .B = 2, .W = 0.1, .comm = 0.25, .stage_F = t->sf, .stage_B = t->sb,
                        .stage_W = t->sw};
    s->act_size = 1.5;
    s->mem_limit = 0;
    snprintf(s->model.kind, sizeof s->model.kind, "mlp");
    s->model.layers = 2 * p->stages + 1;
    s->model.hidden = 64;
    s->model.batch = 32;
    snprintf(s->model.optimizer, sizeof s->model.optimizer, "sgd");
    s->model.lr = 0.01;
    s->model.seed = 18446744073709551615ull; /* 2^64-1: a double would round it */
    s->model.layers_per_stage = t->lps;
}

static char *json_text(const pp_spec *s, const pp_plan *p, const pp_sim *sim)
{
    capture c;
    cap_open(&c);
    ck_assert_int_eq(pp_emit_json(c.f, s, p, sim), 0);
    return cap_close(&c);
}

static const cJSON *get(const cJSON *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(j != NULL, "missing \"%s\"", key);
    return j;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *j = get(o, key);
    ck_assert_msg(cJSON_IsNumber(j), "\"%s\" is not a number", key);
    return j->valuedouble;
}

static void assert_int_array(const cJSON *a, const int *want, int n)
{
    ck_assert(cJSON_IsArray(a));
    ck_assert_int_eq(cJSON_GetArraySize(a), n);
    for (int i = 0; i < n; i++)
        ck_assert_double_eq(cJSON_GetArrayItem(a, i)->valuedouble, want[i]);
}

static void assert_double_array(const cJSON *a, const double *want, int n)
{
    ck_assert(cJSON_IsArray(a));
    ck_assert_int_eq(cJSON_GetArraySize(a), n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(cJSON_GetArrayItem(a, i)->valuedouble == want[i], "[%d]: %.17g != %.17g", i,
                      cJSON_GetArrayItem(a, i)->valuedouble, want[i]);
}

/* ================================================================== */
/* plan JSON                                                           */
/* ================================================================== */

/* Plan version 2's wait op: its group, nothing else. */
START_TEST(json_wait_op)
{
    int place[2] = {0, 1};
    pp_plan p;
    ck_assert_int_eq(pp_plan_init(&p, "t", 2, 2, 1, place), 0);
    pp_plan_push(&p, 0, (pp_op){.kind = PP_OP_F, .stage = 0, .mb = 0, .peer = -1, .group = -1});
    pp_plan_push(&p, 0, (pp_op){.kind = PP_OP_SEND, .comm = PP_COMM_ACT, .stage = 0, .mb = 0, .peer = 1, .group = 0});
    pp_plan_push(&p, 0, (pp_op){.kind = PP_OP_WAIT, .stage = -1, .mb = -1, .peer = -1, .group = 0});
    pp_policy_finish(&p);
    char *text = json_text(NULL, &p, NULL);
    ck_assert_ptr_nonnull(strstr(text, "\"version\": 2,"));
    ck_assert_ptr_nonnull(strstr(text, "{\"op\": \"wait\", \"group\": 0},"));
    free(text);
    pp_plan_free(&p);
}
END_TEST

START_TEST(json_round_trip)
{
    tplan t;
    build(&t, ONE_F_ONE_B, 4, 1, 8, true);
    simulate(&t, 1, 2, 0.5, 0.25);
    tspec ts;
    make_spec(&ts, &t.p);
    char *text = json_text(&ts.s, &t.p, &t.sim);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, strlen(text), &end, false);
    ck_assert_msg(root != NULL, "emitted JSON does not parse");
    ck_assert_ptr_eq(end, text + strlen(text) - 1); /* just the final newline after } */

    ck_assert_str_eq(get(root, "format")->valuestring, "ppcc-plan");
    ck_assert_double_eq(num(root, "version"), 2);
    ck_assert(cJSON_IsString(get(root, "generator")));

    const cJSON *pl = get(root, "pipeline");
    ck_assert_str_eq(get(pl, "schedule")->valuestring, "1f1b");
    ck_assert_double_eq(num(pl, "devices"), 4);
    ck_assert_double_eq(num(pl, "stages"), 4);
    ck_assert_double_eq(num(pl, "chunks"), 1);
    ck_assert_double_eq(num(pl, "microbatches"), 8);
    assert_int_array(get(pl, "placement"), t.p.placement, 4);
    ck_assert(cJSON_IsTrue(get(pl, "split_backward")));

    const cJSON *mo = get(root, "model");
    ck_assert_str_eq(get(mo, "kind")->valuestring, "mlp");
    ck_assert_double_eq(num(mo, "layers"), 9);
    ck_assert_double_eq(num(mo, "hidden"), 64);
    ck_assert_double_eq(num(mo, "batch"), 32);
    assert_int_array(get(mo, "layers_per_stage"), ts.lps, 4);
    ck_assert_str_eq(get(mo, "optimizer")->valuestring, "sgd");
    ck_assert(num(mo, "lr") == 0.01);
    ck_assert(cJSON_IsNumber(get(mo, "seed")));
    ck_assert_ptr_nonnull(strstr(text, "\"seed\":18446744073709551615")); /* every digit */

    const cJSON *co = get(root, "cost");
    ck_assert(num(co, "F") == 1 && num(co, "B") == 2 && num(co, "W") == 0.1 && num(co, "comm") == 0.25);
    assert_double_array(get(co, "stage_F"), ts.sf, 4);
    assert_double_array(get(co, "stage_B"), ts.sb, 4);
    assert_double_array(get(co, "stage_W"), ts.sw, 4);
    const cJSON *me = get(root, "memory");
    ck_assert(num(me, "activation") == 1.5 && num(me, "limit") == 0);

    const cJSON *devs = get(root, "devices");
    ck_assert_int_eq(cJSON_GetArraySize(devs), 4);
    for (int d = 0; d < 4; d++) {
        const cJSON *dj = cJSON_GetArrayItem(devs, d);
        ck_assert_double_eq(num(dj, "rank"), d);
        int st = d;
        assert_int_array(get(dj, "stages"), &st, 1);
        const cJSON *ops = get(dj, "ops");
        ck_assert_int_eq(cJSON_GetArraySize(ops), t.p.dev[d].n);
        int i = 0;
        const cJSON *oj;
        cJSON_ArrayForEach(oj, ops) {
            const pp_op *op = &t.p.dev[d].ops[i++];
            ck_assert_str_eq(get(oj, "op")->valuestring, pp_op_name(op->kind));
            bool comm = op->kind == PP_OP_SEND || op->kind == PP_OP_RECV;
            bool staged = comm || pp_op_is_compute(op->kind);
            ck_assert_int_eq(cJSON_GetArraySize(oj), 1 + (staged ? 2 : 0) + (comm ? 3 : 0));
            if (staged) {
                ck_assert_double_eq(num(oj, "stage"), op->stage);
                ck_assert_double_eq(num(oj, "mb"), op->mb);
            }
            if (comm) {
                ck_assert_str_eq(get(oj, "kind")->valuestring, pp_comm_name(op->comm));
                ck_assert_double_eq(num(oj, "peer"), op->peer);
                ck_assert_double_eq(num(oj, "group"), op->group);
            }
        }
    }
    const cJSON *st = get(root, "stats");
    ck_assert(num(st, "makespan") == t.sim.makespan);
    ck_assert(num(st, "bubble") == t.sim.bubble); /* printed to round-trip precision */
    assert_double_array(get(st, "busy"), t.sim.busy, 4);
    assert_int_array(get(st, "peak_activations"), t.sim.peak_act, 4);
    ck_assert_int_eq(t.sim.peak_act[0], 4);
    ck_assert_int_eq(t.sim.peak_act[3], 1);
    cJSON_Delete(root);
    free(text);
    tplan_free(&t);
}
END_TEST

/* Interleaved placement: a rank lists its stages in model order; no sim, no stats. */
START_TEST(json_chunks_and_no_stats)
{
    tplan t;
    build(&t, LOOPED, 2, 3, 2, false);
    char *text = json_text(NULL, &t.p, NULL);
    cJSON *root = cJSON_Parse(text);
    ck_assert_ptr_nonnull(root);
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(root, "stats"));
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(root, "model"));
    ck_assert_double_eq(num(get(root, "pipeline"), "chunks"), 3);
    ck_assert(cJSON_IsFalse(get(get(root, "pipeline"), "split_backward")));
    int want1[] = {1, 3, 5};
    assert_int_array(get(cJSON_GetArrayItem(get(root, "devices"), 1), "stages"), want1, 3);
    /* update and flush carry nothing but their name */
    const cJSON *ops = get(cJSON_GetArrayItem(get(root, "devices"), 0), "ops");
    const cJSON *last = cJSON_GetArrayItem(ops, cJSON_GetArraySize(ops) - 1);
    ck_assert_str_eq(get(last, "op")->valuestring, "flush");
    ck_assert_int_eq(cJSON_GetArraySize(last), 1);
    cJSON_Delete(root);
    free(text);
    tplan_free(&t);
}
END_TEST

START_TEST(json_golden_tiny)
{
    tplan t;
    /* GPipe: unbatched send/recv cannot deadlock, so pprun's loader (and
     * its verifier) accepts this file as it stands. */
    build(&t, GPIPE, 2, 1, 2, false);
    simulate(&t, 1, 2, 0, 0);
    tspec ts;
    make_spec(&ts, &t.p);
    ts.s.model.seed = 7;
    char *text = json_text(&ts.s, &t.p, &t.sim);
    tu_check_golden(text, "tests/golden/emit/plan_gpipe_2x2.json");
    free(text);
    tplan_free(&t);
}
END_TEST

START_TEST(json_write_error)
{
    tplan t;
    build(&t, ONE_F_ONE_B, 4, 1, 8, false);
    simulate(&t, 1, 2, 0, 0);
    FILE *f = fopen("/dev/full", "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ne(pp_emit_json(f, NULL, &t.p, &t.sim), 0); /* small: fails at the flush */
    fclose(f);
    tplan_free(&t);

    build(&t, GPIPE, 8, 1, 4096, false); /* over 1 MiB: fails in the middle */
    f = fopen("/dev/full", "w");
    setvbuf(f, NULL, _IONBF, 0);
    ck_assert_int_ne(pp_emit_json(f, NULL, &t.p, NULL), 0);
    fclose(f);
    tplan_free(&t);
}
END_TEST

/* A FILE that only counts what is written to it (no 100 MB buffer). */
typedef struct counter {
    long bytes, lines;
    char last;
} counter;

static ssize_t counter_write(void *cookie, const char *buf, size_t n)
{
    counter *c = cookie;
    c->bytes += (long)n;
    for (size_t i = 0; i < n; i++)
        c->lines += buf[i] == '\n';
    if (n)
        c->last = buf[n - 1];
    return (ssize_t)n;
}

/* 1.5M ops must stream out fast (the design budget is a few hundred ms;
 * the bound here leaves room for sanitizers and slow machines), one op a
 * line: nothing lost, nothing doubled. */
/* A plan of 1.5 M ops is written whole, one op a line.  Its speed is
 * bench/ppcc_scaling.sh's to measure (docs/bench.md), not a timed test's:
 * a wall-clock bound failed on a loaded machine. */
START_TEST(json_large_plan_is_whole)
{
    tplan t;
    build(&t, ONE_F_ONE_B, 64, 1, 8192, false);
    long total = pp_plan_total_ops(&t.p);
    ck_assert_int_ge(total, 1500000);
    counter cnt = {0};
    FILE *f = fopencookie(&cnt, "w", (cookie_io_functions_t){.write = counter_write});
    double t0 = pp_now();
    ck_assert_int_eq(pp_emit_json(f, NULL, &t.p, NULL), 0);
    double s = pp_now() - t0;
    fclose(f);
    fprintf(stderr, "json: %ld ops, %ld bytes in %.3f s\n", total, cnt.bytes, s);
    /* {, format, version, generator, pipeline, "devices": [, 2 per device, ], } */
    ck_assert_int_eq(cnt.lines, total + 8 + 2 * 64);
    ck_assert_int_eq(cnt.last, '\n');
    tplan_free(&t);
}
END_TEST

/* ================================================================== */
/* reference simulator sanity (the goldens below rest on it)           */
/* ================================================================== */

START_TEST(reference_sim_closed_forms)
{
    for (int how = GPIPE; how <= ONE_F_ONE_B; how++) {
        tplan t;
        build(&t, how, 4, 1, 8, false);
        simulate(&t, 1, 2, 0, 0);
        ck_assert_double_eq(t.sim.makespan, 33); /* (M+D-1)(F+B) */
        ck_assert_double_eq_tol(t.sim.bubble, 3.0 / 11, 1e-12);
        ck_assert_int_eq(t.sim.peak_act[0], how == GPIPE ? 8 : 4);
        ck_assert_int_eq(t.sim.peak_act[3], how == GPIPE ? 8 : 1);
        tplan_free(&t);
    }
}
END_TEST

/* ================================================================== */
/* timeline                                                            */
/* ================================================================== */

static void timeline_golden(tplan *t, int width, bool compact, const char *golden)
{
    char *text = timeline_text(t, width, compact);
    assert_lines_within(text, width);
    tu_check_golden(text, golden);
    free(text);
}

START_TEST(timeline_gpipe_4x8)
{
    tplan t;
    build(&t, GPIPE, 4, 1, 8, false);
    simulate(&t, 1, 2, 0, 0);
    char *text = timeline_text(&t, 80, false);
    ck_assert_ptr_null(strstr(text, "compact"));
    /* d0 computes F0..F7 back to back over [0, 8): no false gap, no overlap.
     * Integer times snap the scale to whole columns per unit: floor(75/33). */
    int n;
    const char *row = row_of(text, 0, &n);
    ck_assert_int_eq(n, 75);
    const int per_unit = 75 / 33;
    int end8 = 8 * per_unit;
    ck_assert_ptr_null(memchr(row, '.', (size_t)end8));
    ck_assert_int_eq(row[end8], '.');
    for (int m = 0; m < 8; m++) {
        char label[8];
        snprintf(label, sizeof label, "F%d", m);
        int col = m * per_unit;
        ck_assert_msg(strncmp(row + col, label, 2) == 0, "%s not at column %d", label, col);
    }
    ck_assert_ptr_nonnull(strstr(text, "bubble 27.3% (fill/drain 27.3%, imbalance 0.0%, balanced)  makespan 33.0\n"
                                       "  peak memory: d0 8, d1 8, d2 8, d3 8\n"));
    free(text);
    timeline_golden(&t, 80, false, "tests/golden/emit/gpipe_4x8.txt");
    tplan_free(&t);
}
END_TEST

START_TEST(timeline_1f1b_4x8)
{
    tplan t;
    build(&t, ONE_F_ONE_B, 4, 1, 8, false);
    simulate(&t, 1, 2, 0, 0);
    char *text = timeline_text(&t, 80, false);
    assert_every_op_shown(text, &t.p);
    ck_assert_ptr_nonnull(strstr(text, "peak memory: d0 4, d1 3, d2 2, d3 1\n"));
    free(text);
    timeline_golden(&t, 80, false, "tests/golden/emit/1f1b_4x8.txt");
    timeline_golden(&t, 120, false, "tests/golden/emit/1f1b_4x8_w120.txt");
    timeline_golden(&t, 80, true, "tests/golden/emit/1f1b_4x8_compact.txt");
    tplan_free(&t);
}
END_TEST

START_TEST(timeline_comm)
{
    tplan t;
    build(&t, ONE_F_ONE_B, 4, 1, 8, false);
    simulate(&t, 1, 2, 0, 0.5);
    char *text = timeline_text(&t, 100, false);
    int n;
    const char *row = row_of(text, 1, &n);
    ck_assert_ptr_nonnull(memchr(row, '~', (size_t)n));
    ck_assert_ptr_nonnull(strstr(text, "~ send/recv"));
    free(text);
    timeline_golden(&t, 100, false, "tests/golden/emit/1f1b_4x8_comm.txt");
    tplan_free(&t);

    /* Waiting in a recv for a peer that has not sent yet is idle, not
     * communication: with comm = 0 there is no '~' at all. */
    build(&t, ONE_F_ONE_B, 4, 1, 8, false);
    simulate(&t, 1, 2, 0, 0);
    ck_assert(t.sim.end[3][0] - t.sim.start[3][0] == 3); /* d3's first recv waits 3 */
    text = timeline_text(&t, 100, false);
    ck_assert_ptr_null(strchr(text, '~'));
    free(text);
    tplan_free(&t);
}
END_TEST

START_TEST(timeline_two_chunks)
{
    tplan t;
    build(&t, LOOPED, 4, 2, 4, false);
    simulate(&t, 1, 2, 0, 0);
    char *text = timeline_text(&t, 120, false);
    ck_assert_ptr_null(strstr(text, "compact"));
    ck_assert_ptr_nonnull(strstr(text, "f0")); /* chunk 1 in lower case */
    ck_assert_ptr_nonnull(strstr(text, "b3"));
    ck_assert_ptr_nonnull(strstr(text, "lower case: odd chunk"));
    free(text);
    timeline_golden(&t, 120, false, "tests/golden/emit/looped_4x2x4.txt");
    tplan_free(&t);
}
END_TEST

START_TEST(timeline_three_chunks_split)
{
    tplan t;
    build(&t, LOOPED, 2, 3, 2, true);
    simulate(&t, 1, 1, 1, 0);
    char *wide = timeline_text(&t, 200, false);
    ck_assert_ptr_nonnull(strstr(wide, "f1:1"));
    ck_assert_ptr_nonnull(strstr(wide, "W0:2"));
    free(wide);
    char *text = timeline_text(&t, 80, true);
    ck_assert_ptr_nonnull(strstr(text, "third row: chunk"));
    free(text);
    timeline_golden(&t, 80, true, "tests/golden/emit/looped_2x3x2_split_compact.txt");
    tplan_free(&t);
}
END_TEST

/* Too narrow for labels: compact on its own, and every op keeps a column. */
START_TEST(timeline_auto_compact)
{
    tplan t;
    build(&t, ONE_F_ONE_B, 4, 1, 16, false);
    simulate(&t, 1, 2, 0, 0);
    char *text = timeline_text(&t, 80, false);
    ck_assert_ptr_nonnull(strstr(text, "compact:"));
    assert_lines_within(text, 80);
    assert_every_op_shown(text, &t.p);
    /* the staircase: d3 starts with F0 at the column where d0 has F3 */
    int n0, n3;
    const char *r0 = row_of(text, 0, &n0), *r3 = row_of(text, 3, &n3);
    const char *first3 = r3;
    while (*first3 == '.')
        first3++;
    ck_assert_int_eq(*first3, 'F');
    ck_assert_int_eq(r0[first3 - r3], 'F');
    const char *digits0 = strchr(strchr(text, '\n') + 1, '\n') + 1; /* d0's micro-batch row */
    digits0 = strchr(digits0, '|') + 1;
    ck_assert_int_eq(digits0[first3 - r3], '3');
    free(text);
    tplan_free(&t);
}
END_TEST

/* 64 devices x 1024 micro-batches: bounded width and time. */
START_TEST(timeline_huge_is_scaled)
{
    tplan t;
    build(&t, ONE_F_ONE_B, 64, 1, 1024, false);
    simulate(&t, 1, 2, 0, 0);
    for (int w = 80; w <= 1000; w += 920) {
        double t0 = pp_now();
        char *text = timeline_text(&t, w, false);
        double s = pp_now() - t0;
        ck_assert_msg(s < 5.0, "width %d took %.2f s", w, s);
        assert_lines_within(text, w);
        ck_assert_ptr_nonnull(strstr(text, "scaled: 1 column ="));
        /* the warm-up staircase and the busy middle survive the scaling */
        int n;
        const char *r63 = row_of(text, 63, &n);
        ck_assert_int_eq(r63[0], '.');
        ck_assert_int_eq(r63[n / 2] == 'F' || r63[n / 2] == 'B', 1);
        const char *r0 = row_of(text, 0, &n);
        ck_assert_int_eq(r0[0], 'F');
        ck_assert_int_eq(r0[n - 1], 'B'); /* d0 does the last backward */
        ck_assert_int_eq(r63[n - 1], '.');
        free(text);
    }
    tplan_free(&t);
}
END_TEST

/* A measured trace: odd durations, jitter, not starting at 0. */
START_TEST(timeline_measured_times)
{
    tplan t;
    build(&t, ONE_F_ONE_B, 4, 1, 8, false);
    simulate(&t, 1, 2, 0, 0);
    srand(7);
    for (int d = 0; d < 4; d++)
        for (int i = 0; i < t.p.dev[d].n; i++) {
            /* stretch, shift and jitter monotonically: still sequential per device */
            double j = (rand() % 100) * 1e-4;
            t.sim.start[d][i] = 1000.37 + t.sim.start[d][i] * 1.7 + (t.sim.start[d][i] > 0 ? j : 0);
            t.sim.end[d][i] = 1000.37 + t.sim.end[d][i] * 1.7 - j * 0.5;
        }
    t.sim.makespan = 33 * 1.7;
    for (int w = 80; w <= 200; w += 120) {
        char *text = timeline_text(&t, w, false);
        assert_lines_within(text, w);
        ck_assert_ptr_nonnull(strstr(text, "t 1000.37 .. "));
        assert_every_op_shown(text, &t.p);
        free(text);
    }
    char *text = timeline_text(&t, 80, true);
    ck_assert_ptr_nonnull(strstr(text, "compact:"));
    assert_every_op_shown(text, &t.p);
    /* jitter does not split one instant into several columns */
    int n0, n3;
    row_of(text, 0, &n0);
    const char *r3 = row_of(text, 3, &n3);
    ck_assert_int_eq((int)(strchr(r3, 'F') - r3), 3);
    free(text);
    tplan_free(&t);
}
END_TEST

/* Zero-time ops (W costed 0) still get a column each; one device; an
 * idle device; times that are not numbers: no crash, no lost op. */
START_TEST(timeline_odd_shapes)
{
    tplan t;
    build(&t, ONE_F_ONE_B, 4, 1, 4, true);
    simulate(&t, 1, 2, 0, 0);
    char *text = timeline_text(&t, 80, false);
    ck_assert_ptr_nonnull(strstr(text, "compact:"));
    assert_every_op_shown(text, &t.p);
    free(text);
    tplan_free(&t);

    build(&t, GPIPE, 1, 1, 3, false);
    simulate(&t, 1, 2, 0, 0);
    text = timeline_text(&t, 40, false);
    assert_lines_within(text, 40);
    ck_assert_ptr_nonnull(strstr(text, "d0 |F0"));
    free(text);
    /* an op without a time is left out, the others still drawn */
    t.sim.start[0][0] = NAN;
    text = timeline_text(&t, 40, false);
    ck_assert_ptr_nonnull(strstr(text, "B2"));
    free(text);
    t.sim.end[0][1] = INFINITY;
    text = timeline_text(&t, 40, true);
    assert_lines_within(text, 40);
    free(text);
    tplan_free(&t);

    /* a device with nothing to compute */
    int pl[2] = {0, 0};
    pp_plan p;
    ck_assert_int_eq(pp_plan_init(&p, "x", 2, 2, 1, pl), 0);
    pp_plan_push(&p, 0, (pp_op){.kind = PP_OP_F, .stage = 0, .mb = 0, .peer = -1, .group = -1});
    double s0[1] = {0}, e0[1] = {1}, *st[2] = {s0, s0}, *en[2] = {e0, e0};
    pp_sim sim = {.makespan = 1, .bubble = 0.5, .start = st, .end = en};
    capture c;
    cap_open(&c);
    pp_timeline_opts o = {.width = 60};
    ck_assert_int_eq(pp_emit_timeline(c.f, &p, &sim, &o), 0);
    ck_assert_int_eq(pp_emit_json(c.f, NULL, &p, &sim), 0);
    text = cap_close(&c);
    ck_assert_ptr_nonnull(strstr(text, "d1 |......"));
    ck_assert_ptr_nonnull(strstr(text, "{\"rank\": 1, \"stages\": [], \"ops\": [\n    ]}"));
    free(text);
    pp_plan_free(&p);
}
END_TEST

START_TEST(timeline_bad_input_and_write_error)
{
    tplan t;
    build(&t, ONE_F_ONE_B, 2, 1, 2, false);
    pp_timeline_opts o = {.width = 80};
    ck_assert_int_ne(pp_emit_timeline(stdout, &t.p, NULL, &o), 0); /* no times, no chart */
    simulate(&t, 1, 2, 0, 0);
    FILE *f = fopen("/dev/full", "w");
    ck_assert_int_ne(pp_emit_timeline(f, &t.p, &t.sim, &o), 0);
    ck_assert_int_ne(pp_emit_stats(f, &t.p, &t.sim), 0);
    ck_assert_int_ne(pp_emit_trace(f, &t.p, &t.sim, 1000), 0);
    fclose(f);
    /* width 0 means the default; out-of-range widths are clamped */
    o.width = 0;
    char *text = timeline_text(&t, 0, false);
    assert_lines_within(text, 80);
    free(text);
    text = timeline_text(&t, 5000, false);
    assert_lines_within(text, 1000);
    free(text);
    tplan_free(&t);
}
END_TEST

/* ================================================================== */
/* stats                                                               */
/* ================================================================== */

/* The bubble's split (bubble_split.c): fill/drain is the busiest
 * device's idle share, imbalance what the others idle beyond it; they add
 * up to the bubble; the bottleneck is the busiest device's heaviest stage. */
START_TEST(bubble_split_formulas)
{
    /* 2 devices, 4 stages (loop), 1 micro-batch: d0 runs F0 [0,1) and
     * F2 [1,4), d1 runs F1 [0,2); the step ends at 5. */
    int pl[4] = {0, 1, 0, 1};
    pp_plan p;
    ck_assert_int_eq(pp_plan_init(&p, "x", 2, 4, 1, pl), 0);
    pp_plan_push(&p, 0, (pp_op){.kind = PP_OP_F, .stage = 0, .mb = 0, .peer = -1, .group = -1});
    pp_plan_push(&p, 0, (pp_op){.kind = PP_OP_F, .stage = 2, .mb = 0, .peer = -1, .group = -1});
    pp_plan_push(&p, 1, (pp_op){.kind = PP_OP_F, .stage = 1, .mb = 0, .peer = -1, .group = -1});
    double s0[2] = {0, 1}, e0[2] = {1, 4}, s1[1] = {0}, e1[1] = {2}, *st[2] = {s0, s1}, *en[2] = {e0, e1};
    double busy[2] = {4, 2};
    pp_sim sim = {.makespan = 5, .busy = busy, .start = st, .end = en};
    sim.bubble = pp_bubble(busy, 2, 5);
    pp_bubble_split b;
    pp_bubble_split_of(&p, &sim, &b);
    ck_assert_double_eq_tol(sim.bubble, 0.4, 1e-15);
    ck_assert_double_eq_tol(b.fill_drain, 0.2, 1e-15);
    ck_assert_double_eq_tol(b.imbalance, 0.2, 1e-15);
    ck_assert_int_eq(b.device, 0);
    ck_assert_int_eq(b.stage, 2);
    ck_assert_double_eq_tol(b.stage_time, 3, 1e-15);
    capture c;
    cap_open(&c);
    ck_assert_int_eq(pp_emit_stats(c.f, &p, &sim), 0);
    char *text = cap_close(&c);
    ck_assert_ptr_nonnull(strstr(text, " bubble=40.00% fill_drain=20.00% imbalance=20.00% bottleneck_stage=2\n"));
    free(text);
    /* every device as busy: no bottleneck; the bubble is fill/drain */
    busy[1] = 4;
    sim.bubble = pp_bubble(busy, 2, 5);
    pp_bubble_split_of(&p, &sim, &b);
    ck_assert_int_eq(b.device, -1);
    ck_assert_int_eq(b.stage, -1);
    ck_assert_double_eq_tol(b.fill_drain + b.imbalance, sim.bubble, 1e-15);
    ck_assert_double_eq_tol(b.imbalance, 0, 1e-15);
    /* no time at all: nothing */
    sim.makespan = 0;
    pp_bubble_split_of(&p, &sim, &b);
    ck_assert(b.fill_drain == 0 && b.imbalance == 0 && b.stage == -1);
    pp_plan_free(&p);

    /* a simulated 1F1B whose stage 2 takes twice as long: it is the bottleneck,
     * and the parts add up to the bubble */
    tplan t;
    build(&t, ONE_F_ONE_B, 4, 1, 8, false);
    simulate(&t, 1, 2, 0, 0);
    for (int i = 0; i < t.p.dev[2].n; i++) /* stretch d2's ops in place: busy only */
        if (pp_op_is_compute(t.p.dev[2].ops[i].kind))
            t.sim.busy[2] += t.sim.end[2][i] - t.sim.start[2][i];
    t.sim.bubble = pp_bubble(t.sim.busy, 4, t.sim.makespan * 2);
    t.sim.makespan *= 2;
    pp_bubble_split_of(&t.p, &t.sim, &b);
    ck_assert_double_eq_tol(b.fill_drain + b.imbalance, t.sim.bubble, 1e-12);
    ck_assert_int_eq(b.device, 2);
    ck_assert_int_eq(b.stage, 2);
    tplan_free(&t);
}
END_TEST

START_TEST(stats_line)
{
    tplan t;
    build(&t, ONE_F_ONE_B, 4, 1, 8, false);
    simulate(&t, 1, 2, 0, 0);
    capture c;
    cap_open(&c);
    ck_assert_int_eq(pp_emit_stats(c.f, &t.p, &t.sim), 0);
    ck_assert_int_eq(pp_emit_stats(c.f, &t.p, NULL), 0);
    char *text = cap_close(&c);
    ck_assert_str_eq(text,
                     "schedule=1f1b devices=4 stages=4 chunks=1 microbatches=8 ops=168 compute_ops=64 "
                     "makespan=33 bubble=27.27% fill_drain=27.27% imbalance=0.00% bottleneck_stage=none "
                     "peak_act=[4,3,2,1] peak_mem=[4,3,2,1]\n"
                     "schedule=1f1b devices=4 stages=4 chunks=1 microbatches=8 ops=168 compute_ops=64\n");
    free(text);
    tplan_free(&t);

    build(&t, LOOPED, 4, 2, 4, true);
    simulate(&t, 1, 1, 1, 0.5);
    char *g = NULL;
    size_t len;
    FILE *f = open_memstream(&g, &len);
    ck_assert_int_eq(pp_emit_stats(f, &t.p, &t.sim), 0);
    fclose(f);
    tu_check_golden(g, "tests/golden/emit/stats_looped.txt");
    free(g);
    tplan_free(&t);
}
END_TEST

/* ================================================================== */
/* Chrome trace                                                        */
/* ================================================================== */

START_TEST(trace_round_trip)
{
    tplan t;
    build(&t, LOOPED, 4, 2, 4, true);
    simulate(&t, 1, 2, 0.5, 0.25);
    capture c;
    cap_open(&c);
    ck_assert_int_eq(pp_emit_trace(c.f, &t.p, &t.sim, 1000), 0);
    char *text = cap_close(&c);
    cJSON *root = cJSON_Parse(text);
    ck_assert_msg(root != NULL, "trace does not parse");
    const cJSON *ev = get(root, "traceEvents");
    long compute = 0;
    for (int d = 0; d < 4; d++)
        compute += count_compute(&t.p, d);
    /* walk the plan's compute ops in the same order as the X events */
    int d = 0, i = -1, names = 0;
    long xs = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ev) {
        const char *ph = get(e, "ph")->valuestring;
        if (strcmp(ph, "M") == 0) {
            if (strcmp(get(e, "name")->valuestring, "thread_name") == 0) {
                char want[32];
                snprintf(want, sizeof want, "device %d", (int)num(e, "tid"));
                ck_assert_str_eq(get(get(e, "args"), "name")->valuestring, want);
                names++;
            }
            continue;
        }
        ck_assert_str_eq(ph, "X");
        do {
            if (++i >= t.p.dev[d].n)
                d++, i = 0;
        } while (!pp_op_is_compute(t.p.dev[d].ops[i].kind));
        const pp_op *op = &t.p.dev[d].ops[i];
        char want[32];
        ck_assert_str_eq(get(e, "name")->valuestring, pp_op_format(op, want, sizeof want));
        ck_assert_str_eq(get(e, "cat")->valuestring, pp_op_name(op->kind));
        ck_assert_double_eq(num(e, "tid"), d);
        ck_assert(num(e, "ts") == t.sim.start[d][i] * 1000);
        ck_assert(num(e, "dur") == (t.sim.end[d][i] - t.sim.start[d][i]) * 1000);
        ck_assert_double_eq(num(get(e, "args"), "stage"), op->stage);
        ck_assert_double_eq(num(get(e, "args"), "mb"), op->mb);
        xs++;
    }
    ck_assert_int_eq(xs, compute);
    ck_assert_int_eq(names, 4);
    ck_assert_ptr_nonnull(strstr(text, "\"name\": \"B5.3\"")); /* stage 5, micro-batch 3 */
    cJSON_Delete(root);
    free(text);
    ck_assert_int_ne(pp_emit_trace(stdout, &t.p, &t.sim, 0), 0);
    tplan_free(&t);
}
END_TEST

static Suite *emit_suite(void)
{
    Suite *s = suite_create("emit");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, json_round_trip);
    tcase_add_test(tc, json_wait_op);
    tcase_add_test(tc, json_chunks_and_no_stats);
    tcase_add_test(tc, json_golden_tiny);
    tcase_add_test(tc, json_write_error);
    tcase_add_test(tc, json_large_plan_is_whole);
    suite_add_tcase(s, tc);
    tc = tcase_create("timeline");
    tcase_add_test(tc, reference_sim_closed_forms);
    tcase_add_test(tc, timeline_gpipe_4x8);
    tcase_add_test(tc, timeline_1f1b_4x8);
    tcase_add_test(tc, timeline_comm);
    tcase_add_test(tc, timeline_two_chunks);
    tcase_add_test(tc, timeline_three_chunks_split);
    tcase_add_test(tc, timeline_auto_compact);
    tcase_add_test(tc, timeline_huge_is_scaled);
    tcase_add_test(tc, timeline_measured_times);
    tcase_add_test(tc, timeline_odd_shapes);
    tcase_add_test(tc, timeline_bad_input_and_write_error);
    suite_add_tcase(s, tc);
    tc = tcase_create("stats_trace");
    tcase_add_test(tc, stats_line);
    tcase_add_test(tc, bubble_split_formulas);
    tcase_add_test(tc, trace_round_trip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(emit_suite()); }
