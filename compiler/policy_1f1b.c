/*
 * policy_1f1b.c — 1F1B, or PipeDream-Flush (Narayanan et al. 2021).
 * Device d warms up with min(D-d-1, M) forwards, one for each device after
 * it (so the pipeline below it is full when its steady state starts); then
 * it alternates one forward and one backward, then drains the remaining
 * backwards.  At most D-d activations are alive on device d,
 * against M for GPipe, with the same bubble.  The order matches
 * Megatron-core's forward_backward_pipelining_without_interleaving, and
 * PyTorch's Schedule1F1B where it runs (it refuses M < D, which Megatron
 * and we accept), checked against the goldens (tests/golden/orders/1f1b.txt).
 */
#include "pp.h"

static int onef1b_check(const pp_spec *s, pp_diag *d)
{
    return pp_policy_need_one_stage(s, "1f1b", "; use interleaved", d);
}

void pp_policy_1f1b_order(pp_plan *p, int D, int M, int dev, bool update_after_b)
{
    int warmup = D - dev - 1 < M ? D - dev - 1 : M;
#define EMIT_B(m)                                              \
    do {                                                       \
        pp_policy_emit(p, dev, PP_OP_B, dev, (m));             \
        if (update_after_b)                                    \
            pp_policy_emit(p, dev, PP_OP_UPDATE, -1, -1);      \
    } while (0)
    for (int m = 0; m < warmup; m++)
        pp_policy_emit(p, dev, PP_OP_F, dev, m);
    for (int i = 0; i < M - warmup; i++) {
        pp_policy_emit(p, dev, PP_OP_F, dev, warmup + i);
        EMIT_B(i);
    }
    for (int m = M - warmup; m < M; m++)
        EMIT_B(m);
#undef EMIT_B
}

int pp_policy_1f1b_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    (void)d;
    for (int dev = 0; dev < s->devices; dev++)
        pp_policy_1f1b_order(p, s->devices, s->microbatches, dev, false);
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_1f1b = {
    .name = "1f1b",
    .summary = "one forward, one backward after a warmup (Megatron non-interleaved, PyTorch Schedule1F1B)",
    .check = onef1b_check,
    .generate = pp_policy_1f1b_generate,
    .split_backward = false,
};
