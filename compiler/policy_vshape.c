/*
 * policy_vshape.c — what the two V-shape policies (zbv, dualpipev) share:
 * the check of their placement and the builder of an order written as a
 * table of phases.
 *
 * On the V-shape placement device d holds two stages: chunk 0 is stage d,
 * on the way down the model, and chunk 1 is stage 2D-1-d, on the way back,
 * so device 0 holds both the first and the last stage.  Each chunk's
 * forwards, backwards and weight gradients run in micro-batch order, so an
 * order is fully described by the sequence of *units* a device issues:
 *
 *   F0, F1   the next forward of chunk 0 / 1
 *   B0, B1   the next input-gradient backward; its W becomes pending
 *   W0, W1   the oldest pending W of that chunk (right after its B: the
 *            whole backward)
 *   W*       the oldest pending W of the device, whichever chunk
 *
 * A policy gives, for each device, phases: a few units repeated a number
 * of times, e.g. {D - d, "F1 B1 W1"}.  Orders built for more micro-batches
 * than the plan has (zbv builds at least 2D-1) drop the units past the
 * plan's, keeping the others in place.
 */
#include <stdlib.h>

#include "pp.h"

int pp_policy_need_vshape(const pp_spec *s, const char *policy, pp_diag *d)
{
    if (s->chunks != 2) {
        pp_error(d, "%s: needs exactly two stages per device (virtual = 2), got virtual = %d", policy, s->chunks);
        return 1;
    }
    int D = s->devices;
    for (int st = 0; st < s->stages; st++) {
        int want = st < D ? st : 2 * D - 1 - st;
        if (s->placement[st] != want) {
            pp_error(d, "%s: needs placement = vshape (stage s < %d on device s, else on device %d - s), "
                        "but stage %d is on device %d",
                     policy, D, 2 * D - 1, st, s->placement[st]);
            return 1;
        }
    }
    return 0;
}

/* One device's progress through its phases. */
typedef struct vshape_device {
    pp_plan *p;
    int dev, built;
    int kept;                     /* micro-batches of a chunk kept: units past them are dropped */
    int stage[2];                 /* chunk -> stage */
    int mb0[2];                   /* chunk -> its first micro-batch */
    int next_f[2], next_b[2], next_w[2];
    long *b_order;                /* [chunk * built + mb]: when its B was issued */
    long issued;                  /* Bs issued so far */
} vshape_device;

static void emit(vshape_device *x, int kind, int chunk, int mb)
{
    if (mb < x->kept)
        pp_policy_emit(x->p, x->dev, kind, x->stage[chunk], x->mb0[chunk] + mb);
}

/* The chunk whose oldest pending W was the first to become pending; -1
 * when none is pending. */
static int oldest_pending(const vshape_device *x)
{
    int best = -1;
    for (int c = 0; c < 2; c++) {
        if (x->next_w[c] >= x->next_b[c] || x->next_w[c] >= x->built)
            continue;
        if (best < 0 || x->b_order[c * x->built + x->next_w[c]] < x->b_order[best * x->built + x->next_w[best]])
            best = c;
    }
    return best;
}

static void run_unit(vshape_device *x, char kind, char which)
{
    int c = which == '1';
    switch (kind) {
    case 'F':
        emit(x, PP_OP_F, c, x->next_f[c]++);
        break;
    case 'B':
        if (x->next_b[c] < x->built)
            x->b_order[c * x->built + x->next_b[c]] = x->issued++;
        emit(x, PP_OP_B, c, x->next_b[c]++);
        break;
    case 'W':
        if (which == '*')
            c = oldest_pending(x);
        if (c >= 0 && x->next_w[c] < x->next_b[c])
            emit(x, PP_OP_W, c, x->next_w[c]++);
        break;
    }
}

/* Runs phases[n] on device x->dev (its chunks' stages and first
 * micro-batches set). */
static void run_phases(vshape_device *x, const pp_vphase *phases, int n)
{
    for (int c = 0; c < 2; c++)
        x->next_f[c] = x->next_b[c] = x->next_w[c] = 0;
    x->issued = 0;
    for (int i = 0; i < n; i++)
        for (long rep = 0; rep < phases[i].count; rep++)
            for (const char *u = phases[i].units; u[0] && u[1]; u += u[2] ? 3 : 2)
                run_unit(x, u[0], u[1]);
}

int pp_policy_vshape_order(pp_plan *p, int built, pp_vphases_fn *phases_of)
{
    int D = p->devices;
    vshape_device x = {.p = p, .built = built, .kept = p->microbatches,
                       .b_order = malloc(sizeof(long) * 2 * (size_t)built)};
    if (!x.b_order)
        return 1;
    for (int dev = 0; dev < D; dev++) {
        pp_vphase phases[PP_VPHASES_MAX];
        int n = phases_of(D, dev, built, phases);
        x.dev = dev;
        x.stage[0] = dev;
        x.stage[1] = 2 * D - 1 - dev;
        x.mb0[0] = x.mb0[1] = 0;
        run_phases(&x, phases, n);
    }
    free(x.b_order);
    return 0;
}

int pp_policy_vshape_device(pp_plan *p, int dev, const int stage[2], const int mb0[2], int built, const pp_vphase *phases,
                            int n)
{
    vshape_device x = {.p = p, .dev = dev, .built = built, .kept = built,
                       .stage = {stage[0], stage[1]}, .mb0 = {mb0[0], mb0[1]},
                       .b_order = malloc(sizeof(long) * 2 * (size_t)built)};
    if (!x.b_order)
        return 1;
    run_phases(&x, phases, n);
    free(x.b_order);
    return 0;
}
