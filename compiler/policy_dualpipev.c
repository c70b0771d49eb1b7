/*
 * policy_dualpipev.c — DualPipeV, DeepSeek's cut-down DualPipe
 * (DeepSeek-V3 report, arXiv 2412.19437; deepseek-ai/DualPipe), in the
 * order PyTorch's ScheduleDualPipeV computes it.
 *
 * The V-shape placement of zbv (device r holds stages r and 2D-1-r), with
 * the steady state made of overlapped pairs: the forward of one chunk
 * with the full backward of the other, which a runtime can run on two
 * streams to hide communication (our executor runs them one after the
 * other; the order is what matters here).  Eight phases per device r:
 *   1  2(D-r-1) F0         2  r+1 x (F0, F1)        3  D-r-1 x (B1, W?, F1)
 *   4  M-2D+r+1 x (F0+B1, F1+B0), the first F0, B1 of the last rank apart
 *   5  D-r-1 x (B1, F1+B0)  6  r+1 x (B1, B0), zero-bubble (B without W)
 *      from the middle on   7  D-r-1 x (W?, B0)     8  r+1 x W?
 * where W? pays the oldest deferred W, if any.  A full backward is B
 * immediately followed by its W (split_backward holds for the whole
 * plan).  PyTorch refuses M < 2D, so do we.
 */
#include <stdlib.h>

#include "pp.h"

typedef struct dpv {
    pp_plan *p;
    int rank;
    int stage[2];      /* chunk -> global stage */
    int f[2], b[2];    /* next forward / input-backward micro-batch per chunk */
    int *wq, wq_head, wq_tail; /* deferred W: chunk * M + mb, oldest first */
    int M;
} dpv;

static void forward(dpv *x, int c)
{
    pp_policy_emit(x->p, x->rank, PP_OP_F, x->stage[c], x->f[c]++);
}

/* A full backward: B and its W at once. */
static void full_backward(dpv *x, int c)
{
    pp_policy_emit(x->p, x->rank, PP_OP_B, x->stage[c], x->b[c]);
    pp_policy_emit(x->p, x->rank, PP_OP_W, x->stage[c], x->b[c]++);
}

/* An input-gradient backward whose W is deferred to the queue. */
static void input_backward(dpv *x, int c)
{
    x->wq[x->wq_tail++] = c * x->M + x->b[c];
    pp_policy_emit(x->p, x->rank, PP_OP_B, x->stage[c], x->b[c]++);
}

static void backward(dpv *x, int c, bool zb)
{
    if (zb)
        input_backward(x, c);
    else
        full_backward(x, c);
}

static void weight_if_pending(dpv *x)
{
    if (x->wq_head == x->wq_tail)
        return;
    int e = x->wq[x->wq_head++];
    pp_policy_emit(x->p, x->rank, PP_OP_W, x->stage[e / x->M], e % x->M);
}

/* OVERLAP_F_B: the forward of chunk fc with the full backward of bc. */
static void overlap(dpv *x, int fc, int bc)
{
    forward(x, fc);
    full_backward(x, bc);
}

static int dualpipev_check(const pp_spec *s, pp_diag *d)
{
    int errors = pp_policy_need_vshape(s, "dualpipev", d) + pp_policy_no_group(s, "dualpipev", d);
    if (!errors && s->microbatches < s->stages) {
        pp_error(d, "dualpipev: needs at least as many microbatches as stages (2 x devices = %d), got microbatches = %d",
                 s->stages, s->microbatches);
        errors++;
    }
    return errors;
}

static int dualpipev_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    p->split_backward = true;
    int D = s->devices, M = s->microbatches;
    dpv x = {.p = p, .M = M, .wq = malloc(sizeof(int) * 2 * (size_t)M)};
    if (!x.wq) {
        pp_error(d, "dualpipev: out of memory");
        return 1;
    }
    for (int r = 0; r < D; r++) {
        x.rank = r;
        x.stage[0] = r;
        x.stage[1] = 2 * D - 1 - r;
        x.f[0] = x.f[1] = x.b[0] = x.b[1] = 0;
        x.wq_head = x.wq_tail = 0;

        for (int i = 0; i < 2 * (D - r - 1); i++) /* 1: F0 */
            forward(&x, 0);
        for (int i = 0; i < r + 1; i++) {          /* 2: F0 F1 */
            forward(&x, 0);
            forward(&x, 1);
        }
        for (int i = 0; i < D - r - 1; i++) {      /* 3: I1 W F1 */
            input_backward(&x, 1);
            weight_if_pending(&x);
            forward(&x, 1);
        }
        for (int i = 0; i < M - 2 * D + r + 1; i++) { /* 4: F0B1 F1B0 */
            if (i == 0 && r == D - 1) {
                forward(&x, 0);       /* not overlapped: a smaller bubble */
                full_backward(&x, 1);
            } else {
                overlap(&x, 0, 1);
            }
            overlap(&x, 1, 0);
        }
        for (int i = 0; i < D - r - 1; i++) {      /* 5: B1 F1B0 */
            full_backward(&x, 1);
            overlap(&x, 1, 0);
        }
        bool zb = false;                            /* 6: B1 B0, then zero bubble */
        int step6 = r + 1;
        for (int i = 0; i < step6; i++) {
            if (i == step6 / 2 && r % 2 == 1)
                zb = true;
            backward(&x, 1, zb);
            if (i == step6 / 2 && r % 2 == 0)
                zb = true;
            backward(&x, 0, zb);
        }
        for (int i = 0; i < D - r - 1; i++) {      /* 7: W B0 */
            weight_if_pending(&x);
            backward(&x, 0, zb);
        }
        for (int i = 0; i < r + 1; i++)            /* 8: W */
            weight_if_pending(&x);
    }
    free(x.wq);
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_dualpipev = {
    .name = "dualpipev",
    .summary = "DualPipeV: V-shape, overlapped forward/backward pairs (DeepSeek DualPipe, PyTorch ScheduleDualPipeV)",
    .check = dualpipev_check,
    .generate = dualpipev_generate,
    .split_backward = true,
};
