/*
 * plan_builders.c — hand-built plans for the pass tests (lower, verify,
 * simulate): compute orders written out independently of the policies, and
 * a compact text notation for op lists.
 */
#include <stdlib.h>
#include <string.h>

#include "plan_builders.h"

pp_op cop(int kind, int s, int m)
{
    return (pp_op){.kind = (uint8_t)kind, .stage = s, .mb = m, .peer = -1, .group = -1};
}

void push_end(pp_plan *p, int d)
{
    pp_plan_push(p, d, cop(PP_OP_UPDATE, -1, -1));
    pp_plan_push(p, d, cop(PP_OP_FLUSH, -1, -1));
}

/* A plan of D devices, v chunks each, loop placement (stage c*D + d). */
void plan_loop(pp_plan *p, const char *name, int D, int v, int M)
{
    int S = D * v;
    int *place = malloc((size_t)S * sizeof *place);
    for (int s = 0; s < S; s++)
        place[s] = s % D;
    ck_assert_int_eq(pp_plan_init(p, name, D, S, M, place), 0);
    free(place);
}

void gen_gpipe(pp_plan *p)
{
    for (int d = 0; d < p->devices; d++) {
        for (int m = 0; m < p->microbatches; m++)
            pp_plan_push(p, d, cop(PP_OP_F, d, m));
        for (int m = 0; m < p->microbatches; m++)
            pp_plan_push(p, d, cop(PP_OP_B, d, m));
        push_end(p, d);
    }
}

/* 1F1B: warmup = min(D-d-1, M) forwards, then F/B alternating, then B's;
 * with split, W(i) right after B(i). */
void gen_1f1b(pp_plan *p)
{
    int D = p->devices, M = p->microbatches;
    for (int d = 0; d < D; d++) {
        int w = D - d - 1 < M ? D - d - 1 : M, nb = 0;
#define BW()                                                      \
    do {                                                          \
        pp_plan_push(p, d, cop(PP_OP_B, d, nb));                  \
        if (p->split_backward)                                    \
            pp_plan_push(p, d, cop(PP_OP_W, d, nb));              \
        nb++;                                                     \
    } while (0)
        for (int m = 0; m < w; m++)
            pp_plan_push(p, d, cop(PP_OP_F, d, m));
        for (int i = 0; i < M - w; i++) {
            pp_plan_push(p, d, cop(PP_OP_F, d, w + i));
            BW();
        }
        while (nb < M)
            BW();
#undef BW
        push_end(p, d);
    }
}

/* Megatron's interleaved 1F1B (loop placement, M a multiple of D): virtual
 * micro-batch k runs chunk (k mod (D*v)) / D (reversed for backward) on
 * micro-batch (k / (D*v)) * D + k mod D; warmup (D-d-1)*2 + (v-1)*D. */
void gen_interleaved(pp_plan *p, int v)
{
    int D = p->devices, M = p->microbatches, total = M * v;
    for (int d = 0; d < D; d++) {
        int warm = (D - d - 1) * 2 + (v - 1) * D;
        if (warm > total)
            warm = total;
#define VOP(kind, k)                                                                 \
    do {                                                                             \
        int kg_ = (k) % (D * v), c_ = kg_ / D, m_ = ((k) / (D * v)) * D + (k) % D;   \
        if ((kind) == PP_OP_B)                                                       \
            c_ = v - 1 - c_;                                                         \
        pp_plan_push(p, d, cop((kind), c_ * D + d, m_));                             \
    } while (0)
        for (int k = 0; k < warm; k++)
            VOP(PP_OP_F, k);
        for (int i = 0; i < total - warm; i++) {
            VOP(PP_OP_F, warm + i);
            VOP(PP_OP_B, i);
        }
        for (int i = total - warm; i < total; i++)
            VOP(PP_OP_B, i);
#undef VOP
        push_end(p, d);
    }
}

/* Appends ops written compactly: F0.1 B1.0 W1.0, U (update), X (flush),
 * sa0.1>1/3 (send act 0.1 to device 1, group 3), rg1.0<1/2 (recv grad 1.0
 * from device 1, group 2), A0 (allreduce of collective group 0). */
void push_ops(pp_plan *p, int d, const char *text)
{
    const char *s = text;
    while (*s) {
        while (*s == ' ')
            s++;
        if (!*s)
            break;
        char *e;
        if (*s == 'U' || *s == 'X') {
            pp_plan_push(p, d, cop(*s == 'U' ? PP_OP_UPDATE : PP_OP_FLUSH, -1, -1));
            s++;
        } else if (*s == 'w') {
            pp_op op = cop(PP_OP_WAIT, -1, -1);
            op.group = (int)strtol(s + 1, &e, 10);
            pp_plan_push(p, d, op);
            s = e;
        } else if (*s == 'A') {
            pp_op op = cop(PP_OP_ALLREDUCE, -1, -1);
            op.peer = (int)strtol(s + 1, &e, 10);
            pp_plan_push(p, d, op);
            s = e;
        } else if (*s == 'F' || *s == 'B' || *s == 'W' || *s == 'R') {
            int kind = *s == 'F' ? PP_OP_F : *s == 'B' ? PP_OP_B : *s == 'W' ? PP_OP_W : PP_OP_R;
            int st = (int)strtol(s + 1, &e, 10);
            int mb = (int)strtol(e + 1, &e, 10);
            pp_plan_push(p, d, cop(kind, st, mb));
            s = e;
        } else {
            pp_op op = cop(*s == 's' ? PP_OP_SEND : PP_OP_RECV, 0, 0);
            op.comm = s[1] == 'g' ? PP_COMM_GRAD : PP_COMM_ACT;
            op.stage = (int)strtol(s + 2, &e, 10);
            op.mb = (int)strtol(e + 1, &e, 10);
            op.peer = (int)strtol(e + 1, &e, 10);
            op.group = (int)strtol(e + 1, &e, 10);
            pp_plan_push(p, d, op);
            s = e;
        }
    }
}

/* The list of device d in the same notation (groups included). */
char *format_ops(const pp_plan *p, int d)
{
    static char out[1 << 16];
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < p->dev[d].n && n + 64 < sizeof out; i++) {
        const pp_op *op = &p->dev[d].ops[i];
        const char *sep = i ? " " : "";
        switch (op->kind) {
        case PP_OP_UPDATE: n += snprintf(out + n, sizeof out - n, "%sU", sep); break;
        case PP_OP_FLUSH: n += snprintf(out + n, sizeof out - n, "%sX", sep); break;
        case PP_OP_ALLREDUCE: n += snprintf(out + n, sizeof out - n, "%sA%d", sep, op->peer); break;
        case PP_OP_WAIT: n += snprintf(out + n, sizeof out - n, "%sw%d", sep, op->group); break;
        case PP_OP_SEND:
        case PP_OP_RECV:
            n += snprintf(out + n, sizeof out - n, "%s%c%c%d.%d%c%d/%d", sep, op->kind == PP_OP_SEND ? 's' : 'r',
                          op->comm == PP_COMM_GRAD ? 'g' : 'a', op->stage, op->mb,
                          op->kind == PP_OP_SEND ? '>' : '<', op->peer, op->group);
            break;
        default: n += snprintf(out + n, sizeof out - n, "%s%s%d.%d", sep, pp_op_name(op->kind), op->stage, op->mb);
        }
    }
    return out;
}

void plan_send_deadlock(pp_plan *p)
{
    plan_loop(p, "custom", 2, 1, 3);
    p->split_backward = true;
    push_ops(p, 0, "F0.0 sa0.0>1/0 F0.1 sa0.1>1/1 F0.2 sa0.2>1/2 rg1.0<1/2 B0.0 W0.0 rg1.1<1/3 B0.1 W0.1 "
                   "rg1.2<1/4 B0.2 W0.2 U X");
    push_ops(p, 1, "ra0.0<0/0 F1.0 B1.0 sg1.0>0/1 W1.0 ra0.1<0/2 F1.1 B1.1 sg1.1>0/3 W1.1 ra0.2<0/4 F1.2 B1.2 "
                   "sg1.2>0/5 W1.2 U X");
}
