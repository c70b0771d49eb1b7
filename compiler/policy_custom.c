/*
 * policy_custom.c — an explicit compute order written in the schedule
 * file (`schedule custom` + `order { device 0: F0.0 B0.0 ... }`,
 * docs/dsl.md).  spec_order.c has already read every op word into (kind,
 * stage, micro-batch) with its offset; this policy checks what the words
 * must satisfy together and then emits them as written, so lowering, the
 * verifier and the simulator treat the order like any generated one.
 *
 * The checks run before lowering so that each error points at a token of
 * the file rather than at an op index of a lowered list:
 *   1. each op on its stage's device, and listed once;
 *   2. every F and B (and W, once any W is listed) of every (stage, mb);
 *   3. on one device, each op after the ops of that device it needs;
 *   4. across devices, a replay of the compute orders alone: a device
 *      stops at an op whose input another device has not produced yet.  If
 *      devices stay stopped, their waits form a cycle, the order deadlocks
 *      whatever communication is inserted, and the cycle is printed with a
 *      note at the token where each device of it waits.
 * The plan keeps the order (p->order): errors of the later passes (a memory
 * limit, a hand-built plan's deadlock) add a note at a token through
 * pp_order_note (plan.c).
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

/* After this many missing ops of one device, one line sums up the rest. */
#define MAX_MISSING_SHOWN 8

typedef struct checker {
    const pp_spec *s;
    const pp_order *o;
    pp_diag *d;
    int S, M;
    const pp_order_op **tok; /* [S*M*3] where each op is listed (NULL: not) */
    int *pos;                /* [S*M*3] its index in its device's row */
} checker;

static long op_id(const checker *c, int kind, int stage, int mb)
{
    int k = kind == PP_OP_F ? 0 : kind == PP_OP_B ? 1 : 2;
    return ((long)stage * c->M + mb) * 3 + k;
}

static const char *op_word(int kind, int stage, int mb, char *buf, size_t size)
{
    snprintf(buf, size, "%s%d.%d", pp_op_name(kind), stage, mb);
    return buf;
}

/* The ops op needs: at most two (B needs its F and the next stage's B). */
static int deps_of(const checker *c, const pp_order_op *op, pp_order_op out[2])
{
    int n = 0;
    switch (op->kind) {
    case PP_OP_F:
        if (op->stage > 0)
            out[n++] = (pp_order_op){PP_OP_F, op->stage - 1, op->mb, 0};
        break;
    case PP_OP_B:
        out[n++] = (pp_order_op){PP_OP_F, op->stage, op->mb, 0};
        if (op->stage < c->S - 1)
            out[n++] = (pp_order_op){PP_OP_B, op->stage + 1, op->mb, 0};
        break;
    default:
        out[n++] = (pp_order_op){PP_OP_B, op->stage, op->mb, 0};
        break;
    }
    return n;
}

/* 1: each op on its stage's device, once. */
static void check_listing(checker *c)
{
    const pp_order *o = c->o;
    char buf[48];
    for (int dev = 0; dev < c->s->devices; dev++)
        for (int k = 0; k < o->rows[dev].n; k++) {
            const pp_order_op *op = &o->rows[dev].ops[k];
            const char *w = op_word(op->kind, op->stage, op->mb, buf, sizeof buf);
            int home = c->s->placement[op->stage];
            if (home != dev) {
                pp_error_at(c->d, o->src, op->offset,
                            "order: %s is on the wrong device: stage %d is placed on device %d, not %d", w,
                            op->stage, home, dev);
                continue;
            }
            long id = op_id(c, op->kind, op->stage, op->mb);
            if (c->tok[id]) {
                pp_error_at(c->d, o->src, op->offset, "order: %s is listed twice", w);
                pp_note_at(c->d, o->src, c->tok[id]->offset, "%s was first listed here", w);
                continue;
            }
            c->tok[id] = op;
            c->pos[id] = k;
        }
}

/* 2: nothing missing; reported at the row of the device that owns it. */
static void check_missing(checker *c)
{
    const pp_order *o = c->o;
    int D = c->s->devices, kinds = o->split ? 3 : 2;
    int *missing = pp_xcalloc((size_t)D, sizeof *missing, "the custom order's check");
    char buf[48];
    /* Device by device, so that each summing-up line follows its ops. */
    for (int dev = 0; dev < D; dev++) {
        for (int s = 0; s < c->S; s++)
            for (int m = 0; m < c->M && c->s->placement[s] == dev; m++)
                for (int k = 0; k < kinds; k++) {
                    int kind = k == 0 ? PP_OP_F : k == 1 ? PP_OP_B : PP_OP_W;
                    if (c->tok[op_id(c, kind, s, m)])
                        continue;
                    if (++missing[dev] <= MAX_MISSING_SHOWN)
                        pp_error_at(c->d, o->src, o->rows[dev].offset, "order: %s is missing (device %d)",
                                    op_word(kind, s, m, buf, sizeof buf), dev);
                }
        if (missing[dev] > MAX_MISSING_SHOWN)
            pp_error_at(c->d, o->src, o->rows[dev].offset, "order: %d more ops are missing (device %d)",
                        missing[dev] - MAX_MISSING_SHOWN, dev);
    }
    free(missing);
}

/* 3: on one device, what an op needs from that device comes first. */
static void check_local_order(checker *c)
{
    const pp_order *o = c->o;
    char a[48], b[48];
    for (int dev = 0; dev < c->s->devices; dev++)
        for (int k = 0; k < o->rows[dev].n; k++) {
            const pp_order_op *op = &o->rows[dev].ops[k];
            pp_order_op need[2];
            int n = deps_of(c, op, need);
            for (int i = 0; i < n; i++) {
                long id = op_id(c, need[i].kind, need[i].stage, need[i].mb);
                if (c->s->placement[need[i].stage] != dev || c->pos[id] < k)
                    continue;
                op_word(need[i].kind, need[i].stage, need[i].mb, b, sizeof b);
                pp_error_at(c->d, o->src, op->offset, "order: %s comes before %s, which it needs, on device %d",
                            op_word(op->kind, op->stage, op->mb, a, sizeof a), b, dev);
                pp_note_at(c->d, o->src, c->tok[id]->offset, "%s is listed here", b);
            }
        }
}

/* The first op that op needs and that is not done yet (-1: none). */
static long first_pending(const checker *c, const pp_order_op *op, const uint8_t *done)
{
    pp_order_op need[2];
    int n = deps_of(c, op, need);
    for (int i = 0; i < n; i++) {
        long id = op_id(c, need[i].kind, need[i].stage, need[i].mb);
        if (!done[id])
            return id;
    }
    return -1;
}

/* 4: replays the compute orders; reports each cycle of waiting devices. */
static void check_deadlock(checker *c)
{
    const pp_order *o = c->o;
    int D = c->s->devices;
    long n = (long)c->S * c->M * 3;
    uint8_t *done = calloc((size_t)n, 1);
    int *waiter = malloc((size_t)n * sizeof *waiter);
    int *pc = calloc((size_t)D, sizeof *pc);
    int *stack = malloc((size_t)D * sizeof *stack);
    int *next = malloc((size_t)D * 3 * sizeof *next);
    if (!done || !waiter || !pc || !stack || !next)
        pp_out_of_memory((double)n * (1 + sizeof *waiter) + (double)D * 5 * sizeof(int),
                         "the custom order's wait-for graph");
    memset(waiter, 0xff, (size_t)n * sizeof *waiter);
    /* Each op has at most one dependant on another device (F(s+1, m) of an
     * F, B(s-1, m) of a B), so one waiter slot per op is enough. */
    int top = 0;
    for (int dev = 0; dev < D; dev++)
        stack[top++] = dev;
    while (top > 0) {
        int dev = stack[--top];
        const pp_order_row *r = &o->rows[dev];
        while (pc[dev] < r->n) {
            const pp_order_op *op = &r->ops[pc[dev]];
            long wait = first_pending(c, op, done);
            if (wait >= 0) {
                waiter[wait] = dev;
                break;
            }
            long id = op_id(c, op->kind, op->stage, op->mb);
            done[id] = 1;
            pc[dev]++;
            if (waiter[id] >= 0) {
                stack[top++] = waiter[id];
                waiter[id] = -1;
            }
        }
    }

    /* Every stopped device waits for a stopped one: follow to the cycles. */
    for (int dev = 0; dev < D; dev++) {
        next[dev] = -1;
        if (pc[dev] < o->rows[dev].n) {
            long wait = first_pending(c, &o->rows[dev].ops[pc[dev]], done);
            next[dev] = c->s->placement[wait / 3 / c->M];
        }
    }
    int *cycle = next + D, *entry = next + 2 * D;
    int ncycles = pp_wait_cycles(next, D, cycle, entry);
    char a[48], b[48];
    for (int cy = 0; cy < ncycles; cy++) {
        int u = entry[cy];
        char *msg = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&msg, &len);
        if (!f)
            pp_out_of_memory(0, "the message of a wait-for cycle");
        int v = u;
        do {
            const pp_order_op *op = &o->rows[v].ops[pc[v]];
            long wait = first_pending(c, op, done);
            int ws = (int)(wait / 3 / c->M), wm = (int)(wait / 3 % c->M), wk = (int)(wait % 3);
            if (v == u)
                fprintf(f, "device %d ", v);
            fprintf(f, "%swaits at %s for %s (device %d)", v == u ? "" : ", which ", op_word(op->kind, op->stage, op->mb, a, sizeof a),
                    op_word(wk == 0 ? PP_OP_F : wk == 1 ? PP_OP_B : PP_OP_W, ws, wm, b, sizeof b), next[v]);
            v = next[v];
        } while (v != u);
        fclose(f);
        pp_error_at(c->d, o->src, o->rows[u].ops[pc[u]].offset, "order: deadlock: %s", msg);
        free(msg);
        for (v = next[u]; v != u; v = next[v])
            pp_note_at(c->d, o->src, o->rows[v].ops[pc[v]].offset, "device %d waits here", v);
    }
    free(done);
    free(waiter);
    free(pc);
    free(stack);
    free(next);
}

static int custom_check(const pp_spec *s, pp_diag *d)
{
    if (!s->order) {
        pp_error(d, "custom: needs an explicit order in the schedule file, as in "
                    "'order { device 0: F0.0 B0.0 ... }' (docs/dsl.md)");
        return 1;
    }
    if (pp_policy_no_group(s, "custom", d))
        return 1;
    long n = (long)s->stages * s->microbatches * 3;
    if (n > PP_MAX_OPS_TOTAL) {
        pp_error(d, "custom: %d stages x %d micro-batches are too many to check", s->stages, s->microbatches);
        return 1;
    }
    checker c = {.s = s, .o = s->order, .d = d, .S = s->stages, .M = s->microbatches};
    c.tok = calloc((size_t)n, sizeof *c.tok);
    c.pos = calloc((size_t)n, sizeof *c.pos);
    if (!c.tok || !c.pos)
        pp_out_of_memory((double)n * (sizeof *c.tok + sizeof *c.pos), "the custom order's check");
    int before = d->errors;
    check_listing(&c);
    check_missing(&c);
    if (d->errors == before)
        check_local_order(&c);
    if (d->errors == before)
        check_deadlock(&c);
    free(c.tok);
    free(c.pos);
    return d->errors - before;
}

static int custom_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    (void)d;
    const pp_order *o = s->order;
    p->split_backward = o->split;
    p->order = o; /* later passes point their errors at its tokens */
    for (int dev = 0; dev < s->devices; dev++)
        for (int k = 0; k < o->rows[dev].n; k++) {
            const pp_order_op *op = &o->rows[dev].ops[k];
            pp_policy_emit(p, dev, op->kind, op->stage, op->mb);
        }
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_custom = {
    .name = "custom",
    .summary = "the explicit per-device order of the file's order { device N: ... } block",
    .check = custom_check,
    .generate = custom_generate,
    .split_backward = false, /* set per plan: true once the order lists a W */
};
