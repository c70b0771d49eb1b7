/*
 * policy_vblock.c — V-Half and V-Min (Qi, Wan, Amar, Lin, "Pipeline
 * Parallelism with Controllable Memory", NeurIPS 2024, arXiv 2405.15362):
 * V-shape schedules (policy_vshape.c's placement: chunk 0 of device d is
 * stage d, chunk 1 is stage 2D-1-d) built as one *building block*
 * repeated, whose lifespans bound the activation memory
 * (docs/v-schedules.md has the derivation and the numbers).
 *
 * The block is micro-batch 0's passes on a grid of unit slots (F = B = W
 * = 1): F0 down the V, F1 back up, B1 down, B0 up.  Micro-batch m is the
 * block shifted by 6m slots, 6 being a device's work per micro-batch
 * (F, B, W of two chunks), so in the steady state every slot is busy.
 * Each pass follows the one it needs after a fixed *step*:
 *
 *            F0 step   F1 step   B1 step   B0 step
 *   v-min       1         1         1         1      the least lifespans
 *   v-half      2         1         2         1      the passes going down
 *                                                     wait one slot more
 *
 * plus two free delays: `gap` slots between the end of F1 on device 0 and
 * B1 there (the turn at the top of the V), and `turn`, the step from B1
 * to B0 on device D-1 (the turn at the bottom).  A device's four F/B
 * passes must sit on different slots mod 6 or micro-batches would
 * collide; the Ws take the two slots left, each in the first free slot
 * after its B, oldest first.  Among the (gap, turn) that are collision
 * free the policy takes the one of least peak activations, then the
 * shortest block.  The lifespan of a chunk (its F to its W) is l slots,
 * so it holds at most ceil(l / 6) micro-batches: v-min's lifespans sum to
 * about 4D + 12 slots per device, v-half's to about 6D + 12, which gives
 * the paper's ceil((D+4)/3) and ceil((D+2)/2) micro-batches (two chunk
 * activations each), against 1F1B's D.
 *
 * A device's order is its slots read in time order; the simulator runs it
 * as early as dependencies allow, which is the paper's "squeezing".  The
 * slot times are a valid schedule (every pass after the one it needs, no
 * two passes of a device in one slot), so the orders cannot deadlock
 * whatever the real costs.
 */
#include <stdlib.h>

#include "pp.h"

enum { PERIOD = 6, PASSES = 4 }; /* F0, F1, B1, B0 */

typedef struct vblock_kind {
    const char *name;
    int f0_step, b1_step; /* the passes going down the V */
} vblock_kind;

/* Micro-batch 0's slot of each pass on each device: at[pass][device]. */
typedef struct vblock {
    int D;
    long *at[PASSES];
} vblock;

enum { P_F0, P_F1, P_B1, P_B0 };

static void block_place(vblock *b, const vblock_kind *k, int gap, int turn)
{
    int D = b->D;
    for (int d = 0; d < D; d++)
        b->at[P_F0][d] = (long)k->f0_step * d;
    for (int d = D - 1; d >= 0; d--)
        b->at[P_F1][d] = d == D - 1 ? b->at[P_F0][D - 1] + 1 : b->at[P_F1][d + 1] + 1;
    for (int d = 0; d < D; d++)
        b->at[P_B1][d] = d == 0 ? b->at[P_F1][0] + 1 + gap : b->at[P_B1][d - 1] + k->b1_step;
    for (int d = D - 1; d >= 0; d--)
        b->at[P_B0][d] = d == D - 1 ? b->at[P_B1][D - 1] + turn : b->at[P_B0][d + 1] + 1;
}

static bool block_collision_free(const vblock *b)
{
    for (int d = 0; d < b->D; d++)
        for (int i = 0; i < PASSES; i++)
            for (int j = i + 1; j < PASSES; j++)
                if ((b->at[i][d] - b->at[j][d]) % PERIOD == 0)
                    return false;
    return true;
}

/* Walks device d's slots for M micro-batches in time order; emits the ops
 * into p when p is not NULL.  Returns the device's peak of chunk
 * activations held (an F takes one, its W gives it back), or -1 when out
 * of memory. */
static long device_walk(const vblock *b, int d, int M, pp_plan *p)
{
    int D = b->D;
    int stage[2] = {d, 2 * D - 1 - d};
    static const int pass_chunk[PASSES] = {0, 1, 1, 0};
    /* Pending Ws, oldest first: a FIFO of chunks (each chunk's Ws run in
     * micro-batch order, so the chunk says which). */
    int *fifo = malloc(sizeof(int) * 2 * (size_t)M);
    if (!fifo)
        return -1;
    int head = 0, tail = 0, next_w[2] = {0, 0};
    long held = 0, peak = 0, last = 0;
    for (int i = 0; i < PASSES; i++)
        if (b->at[i][d] + (long)PERIOD * (M - 1) > last)
            last = b->at[i][d] + (long)PERIOD * (M - 1);
    for (long slot = 0; slot <= last || head < tail; slot++) {
        int pass = -1;
        long mb = -1;
        for (int i = 0; i < PASSES && slot <= last; i++) {
            long off = slot - b->at[i][d];
            if (off >= 0 && off % PERIOD == 0 && off / PERIOD < M) {
                pass = i;
                mb = off / PERIOD;
            }
        }
        if (pass >= 0) {
            int c = pass_chunk[pass];
            bool fwd = pass == P_F0 || pass == P_F1;
            if (p)
                pp_policy_emit(p, d, fwd ? PP_OP_F : PP_OP_B, stage[c], (int)mb);
            if (fwd) {
                held++;
            } else {
                fifo[tail++] = c;
            }
        } else if (head < tail) {
            int c = fifo[head++];
            if (p)
                pp_policy_emit(p, d, PP_OP_W, stage[c], next_w[c]);
            next_w[c]++;
            held--;
        }
        if (held > peak)
            peak = held;
    }
    free(fifo);
    return peak;
}

/* Enough micro-batches for every chunk to reach its steady state: a
 * lifespan is under 6D + 24 slots, so under D + 4 periods. */
static int steady_microbatches(int D) { return 2 * D + 8; }

/* Chooses the block's gap and turn (see the header).  Returns 0, 1 when
 * out of memory, 2 when no gap and turn under a period are collision
 * free. */
static int block_choose(vblock *b, const vblock_kind *k)
{
    long best_peak = -1;
    int best_gap = 0, best_turn = 1;
    for (int sum = 1; sum < 2 * PERIOD; sum++)
        for (int gap = 0; gap < PERIOD && gap < sum; gap++) {
            int turn = sum - gap;
            if (turn > PERIOD)
                continue;
            block_place(b, k, gap, turn);
            if (!block_collision_free(b))
                continue;
            long peak = 0;
            for (int d = 0; d < b->D; d++) {
                long pd = device_walk(b, d, steady_microbatches(b->D), NULL);
                if (pd < 0)
                    return 1;
                if (pd > peak)
                    peak = pd;
            }
            if (best_peak < 0 || peak < best_peak) {
                best_peak = peak;
                best_gap = gap;
                best_turn = turn;
            }
        }
    if (best_peak < 0)
        return 2; /* none: tests/test_vblock.c shows every D to 64 has one */
    block_place(b, k, best_gap, best_turn);
    return 0;
}

static int vblock_generate(const vblock_kind *k, const pp_spec *s, pp_plan *p, pp_diag *d)
{
    p->split_backward = true;
    vblock b = {.D = s->devices};
    int errors = 0;
    for (int i = 0; i < PASSES; i++)
        if (!(b.at[i] = malloc(sizeof(long) * (size_t)s->devices)))
            errors = 1;
    if (!errors)
        errors = block_choose(&b, k);
    for (int dv = 0; dv < s->devices && !errors; dv++)
        errors = device_walk(&b, dv, s->microbatches, p) < 0;
    for (int i = 0; i < PASSES; i++)
        free(b.at[i]);
    if (errors == 2) {
        pp_error(d, "%s: no collision-free building block for %d devices", k->name, s->devices);
        return 1;
    }
    if (errors) {
        pp_error(d, "%s: out of memory", k->name);
        return 1;
    }
    pp_policy_finish(p);
    return 0;
}

static const vblock_kind v_half = {"v-half", 2, 2};
static const vblock_kind v_min = {"v-min", 1, 1};

static int v_half_check(const pp_spec *s, pp_diag *d)
{
    return pp_policy_need_vshape(s, v_half.name, d) + pp_policy_no_group(s, v_half.name, d);
}

static int v_min_check(const pp_spec *s, pp_diag *d)
{
    return pp_policy_need_vshape(s, v_min.name, d) + pp_policy_no_group(s, v_min.name, d);
}

static int v_half_generate(const pp_spec *s, pp_plan *p, pp_diag *d) { return vblock_generate(&v_half, s, p, d); }
static int v_min_generate(const pp_spec *s, pp_plan *p, pp_diag *d) { return vblock_generate(&v_min, s, p, d); }

const pp_policy pp_policy_v_half = {
    .name = "v-half",
    .summary = "V-Half: V-shape, B/W split, half of 1F1B's activations (Qi et al. 2024, controllable memory)",
    .check = v_half_check,
    .generate = v_half_generate,
    .split_backward = true,
};

const pp_policy pp_policy_v_min = {
    .name = "v-min",
    .summary = "V-Min: V-shape, B/W split, a third of 1F1B's activations (Qi et al. 2024, controllable memory)",
    .check = v_min_check,
    .generate = v_min_generate,
    .split_backward = true,
};
