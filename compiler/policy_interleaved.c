/*
 * policy_interleaved.c — interleaved 1F1B (Narayanan et al. 2021), as
 * Megatron-core's forward_backward_pipelining_with_interleaving runs it.
 *
 * Each device holds v = chunks stages (chunk c of device d is stage
 * c*D + d, the loop placement).  Megatron walks a *schedule table* of
 * M*v virtual micro-batch ids (get_schedule_table): micro-batches are cut
 * into groups of G consecutive ones, and within a group every chunk in
 * turn takes the whole group.  Forward k runs table[k]; backward k runs
 * the same micro-batch on the mirrored chunk v-1-table[k].chunk.  Device d
 * warms up with (D-d-1)*2 + (v-1)*G forwards (get_pp_rank_microbatches,
 * capped at M*v), alternates F(k+w) / B(k), then drains.
 *
 * G defaults to D (Megatron).  Megatron refuses G outside [D, M] and a
 * last group of 1..D-1 micro-batches, and so do we (such orders can
 * deadlock), with one exception: a single group of all M micro-batches,
 * which is PyTorch's ScheduleInterleaved1F1B order when M < D (one round,
 * G = M) and our default there (docs/schedules.md).
 */
#include "pp.h"

/* Megatron's two checks on a group size G, relaxed by one case: a single
 * group of all M micro-batches (PyTorch's one round when M < D).  Other
 * groups below D, or leaving a last group of 1..D-1, can deadlock: device
 * d then needs a forward of chunk c+1 before the backward that frees its
 * upstream neighbour (Megatron refuses them: "dependency bubbles"). */
static bool group_ok(int G, int D, int M)
{
    return G == M || (G >= D && G <= M && (M % G == 0 || M % G >= D));
}

/* The group size in force: explicit, else D (Megatron), else M when
 * M < D (PyTorch).  Check refuses shapes where this is not group_ok. */
static int resolve_group(const pp_spec *s)
{
    int D = s->devices, M = s->microbatches;
    if (s->group > 0)
        return s->group;
    return M < D ? M : D;
}

static int interleaved_check(const pp_spec *s, pp_diag *d)
{
    int D = s->devices, M = s->microbatches, G = resolve_group(s);
    if (pp_policy_need_loop(s, "interleaved", d))
        return 1;
    if (s->group > M) {
        pp_error(d, "interleaved: group = %d is larger than microbatches = %d (a group holds at most all of them)",
                 s->group, M);
        return 1;
    }
    if (group_ok(G, D, M))
        return 0;
    /* PyTorch's group: M split into max(1, M / D) equal rounds. */
    int rounds = M / D > 1 ? M / D : 1;
    char hint[64] = "";
    if (M % rounds == 0)
        snprintf(hint, sizeof hint, " (%d gives PyTorch's order)", M / rounds);
    if (s->group == 0)
        pp_error(d,
                 "interleaved: microbatches = %d is not a multiple of devices = %d, so the default group "
                 "(= devices, as Megatron) leaves a last group of %d < %d micro-batches, which can deadlock; "
                 "set schedule.group to %d or a size in [%d, %d] that divides %d or leaves at least %d%s",
                 M, D, M % D, D, M, D, M, M, D, hint);
    else if (G < D)
        pp_error(d,
                 "interleaved: group = %d is smaller than devices = %d, which can deadlock; "
                 "use %d (all micro-batches) or a size in [%d, %d]%s",
                 G, D, M, D, M, hint);
    else
        pp_error(d,
                 "interleaved: group = %d leaves a last group of %d < devices = %d micro-batches, which can "
                 "deadlock; use a size in [%d, %d] that divides %d or leaves at least %d%s",
                 G, M % G, D, D, M, M, D, hint);
    return 1;
}

/* Entry k of Megatron's schedule table: groups of G micro-batches (the
 * last one holds the remainder), each swept by chunk 0..v-1. */
static inline void table_entry(long k, int M, int v, int G, int *chunk, int *mb)
{
    int full = M / G;                  /* groups of exactly G */
    long full_span = (long)full * v * G;
    if (k < full_span) {
        long j = k / ((long)v * G), off = k % ((long)v * G);
        *chunk = (int)(off / G);
        *mb = (int)(j * G + off % G);
    } else {
        int rest = M - full * G;       /* > 0 here */
        long off = k - full_span;
        *chunk = (int)(off / rest);
        *mb = full * G + (int)(off % rest);
    }
}

static int interleaved_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    (void)d;
    int D = s->devices, M = s->microbatches, v = s->chunks, G = resolve_group(s);
    long total = (long)M * v;
    for (int dev = 0; dev < D; dev++) {
        long warmup = (long)(D - dev - 1) * 2 + (long)(v - 1) * G;
        if (warmup > total)
            warmup = total;
        int c, m;
        for (long k = 0; k < warmup; k++) {
            table_entry(k, M, v, G, &c, &m);
            pp_policy_emit(p, dev, PP_OP_F, c * D + dev, m);
        }
        for (long k = 0; k < total - warmup; k++) {
            table_entry(k + warmup, M, v, G, &c, &m);
            pp_policy_emit(p, dev, PP_OP_F, c * D + dev, m);
            table_entry(k, M, v, G, &c, &m);
            pp_policy_emit(p, dev, PP_OP_B, (v - 1 - c) * D + dev, m);
        }
        for (long k = total - warmup; k < total; k++) {
            table_entry(k, M, v, G, &c, &m);
            pp_policy_emit(p, dev, PP_OP_B, (v - 1 - c) * D + dev, m);
        }
    }
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_interleaved = {
    .name = "interleaved",
    .summary = "interleaved 1F1B over v chunks per device (Megatron virtual pipeline)",
    .check = interleaved_check,
    .generate = interleaved_generate,
    .split_backward = false,
};
