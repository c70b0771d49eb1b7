/*
 * policy_interleaved.c — interleaved 1F1B (Narayanan et al., "Efficient
 * Large-Scale Language Model Training on GPU Clusters Using Megatron-LM",
 * SC 2021, section 2.2), and the shape of order it shares with the
 * split-backward 1F1B orders zb-h1 (policy_zb.c) and interleaved-zb
 * (policy_looped.c).
 *
 * Device d holds v chunks, chunk c being stage c*D + d (the loop
 * placement): a micro-batch passes every device v times on its way down
 * the model and v times on its way back.  The order of device d:
 *
 *   Sweep.  Its forwards follow one sequence: the micro-batches are taken
 *   in groups of G consecutive ones (the last group holds what is left),
 *   and a group goes through chunk 0, then chunk 1, ..., then chunk v-1
 *   before the next group starts (the paper's figure 4 has G = D).  Its
 *   backwards follow the same sequence with the chunks reversed, since the
 *   gradients come back up the model.
 *
 *   Lead.  It issues the first `lead` forwards of its sweep, then one
 *   forward and one backward in turn, then the backwards left.  The lead
 *   of interleaved 1F1B is (v-1)*G + 2*(D-1-d): its first backward is of
 *   the last chunk on micro-batch 0, whose forward comes after the first
 *   group's (v-1)*G forwards on the other chunks; with F and B of equal
 *   cost, that micro-batch then needs 2*(D-1-d) slots to go down the
 *   devices after d and come back as a gradient, and the device fills them
 *   with forwards.  It is capped at all M*v forwards.
 *
 *   Split backward (the zero-bubble orders).  Each backward is its input
 *   gradient B, and the weight gradient W of the k-th backward follows the
 *   (k + lag)-th B; the last `lag` Ws close the list.
 *
 * G defaults to D, as in Megatron.  The order matches Megatron-core's
 * forward_backward_pipelining_with_interleaving for every group it
 * accepts, and PyTorch's ScheduleInterleaved1F1B with G = its round size,
 * checked against the goldens (tests/golden/orders/interleaved.txt,
 * docs/reference-orders.md).
 *
 * Accepted groups: G = M (one group; PyTorch's order when M < D, where it
 * is our default) and D <= G <= M leaving a last group of 0 or at least D
 * micro-batches (Megatron's rule).  With two chunks or more the others can
 * deadlock: the order itself has a dependency cycle (test_policy's
 * refused_groups counts them; docs/schedules.md).  With one chunk the
 * group does not change the order, and they are refused only to keep
 * Megatron's rule.
 */
#include "pp.h"

/* The groups the rule above accepts. */
static bool group_ok(int G, int D, int M)
{
    return G == M || (G >= D && G <= M && (M % G == 0 || M % G >= D));
}

/* The group size in force: explicit, else D, else M when M < D. */
static int resolve_group(const pp_spec *s)
{
    int D = s->devices, M = s->microbatches;
    if (s->group > 0)
        return s->group;
    return M < D ? M : D;
}

/* Why a refused group is refused: the deadlocks above, or with one chunk
 * (where no group deadlocks) Megatron's rule alone. */
static const char *refusal_reason(int chunks)
{
    return chunks > 1 ? "which can deadlock" : "which Megatron refuses (with one chunk the group does not change the order)";
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
    const char *why = refusal_reason(s->chunks);
    if (s->group == 0)
        pp_error(d,
                 "interleaved: microbatches = %d is not a multiple of devices = %d, so the default group "
                 "(= devices, as Megatron) leaves a last group of %d < %d micro-batches, %s; "
                 "set schedule.group to %d or a size in [%d, %d] that divides %d or leaves at least %d%s",
                 M, D, M % D, D, why, M, D, M, M, D, hint);
    else if (G < D)
        pp_error(d,
                 "interleaved: group = %d is smaller than devices = %d, %s; "
                 "use %d (all micro-batches) or a size in [%d, %d]%s",
                 G, D, why, M, D, M, hint);
    else
        pp_error(d,
                 "interleaved: group = %d leaves a last group of %d < devices = %d micro-batches, %s; "
                 "use a size in [%d, %d] that divides %d or leaves at least %d%s",
                 G, M % G, D, why, D, M, M, D, hint);
    return 1;
}

/* Position k of the forward sweep (0 <= k < M*v): its chunk and
 * micro-batch.  Every group but the last spans G*v positions, so k / (G*v)
 * is the group even when the last one is smaller. */
static void sweep_at(const pp_interleaving *o, long k, int *chunk, int *mb)
{
    long span = (long)o->group * o->chunks;
    int group = (int)(k / span), first = group * o->group;
    int size = o->microbatches - first < o->group ? o->microbatches - first : o->group;
    long offset = k - group * span;
    *chunk = (int)(offset / size);
    *mb = first + (int)(offset % size);
}

/* Appends op `kind` of sweep position k: forwards take the chunk of the
 * sweep, B and W the mirrored one. */
static void emit_at(pp_plan *p, int dev, const pp_interleaving *o, int kind, long k)
{
    int chunk, mb;
    sweep_at(o, k, &chunk, &mb);
    if (kind != PP_OP_F)
        chunk = o->chunks - 1 - chunk;
    pp_policy_emit(p, dev, kind, chunk * o->devices + dev, mb);
}

void pp_policy_interleave(pp_plan *p, int dev, const pp_interleaving *o)
{
    long n = (long)o->microbatches * o->chunks; /* forwards, and backwards, of the device */
    long lead = o->lead < n ? o->lead : n;
    for (long k = 0; k < lead; k++)
        emit_at(p, dev, o, PP_OP_F, k);
    for (long k = 0; k < n; k++) {
        if (lead + k < n)
            emit_at(p, dev, o, PP_OP_F, lead + k);
        emit_at(p, dev, o, PP_OP_B, k);
        if (o->w_lag >= 0 && k >= o->w_lag)
            emit_at(p, dev, o, PP_OP_W, k - o->w_lag);
    }
    if (o->w_lag >= 0)
        for (long k = n > o->w_lag ? n - o->w_lag : 0; k < n; k++)
            emit_at(p, dev, o, PP_OP_W, k);
}

static int interleaved_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    (void)d;
    int D = s->devices, v = s->chunks, G = resolve_group(s);
    for (int dev = 0; dev < D; dev++) {
        pp_interleaving o = {.devices = D, .chunks = v, .microbatches = s->microbatches, .group = G,
                             .lead = (long)(v - 1) * G + 2L * (D - 1 - dev), .w_lag = -1};
        pp_policy_interleave(p, dev, &o);
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
