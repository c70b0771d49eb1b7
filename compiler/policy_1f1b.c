/*
 * policy_1f1b.c — 1F1B / PipeDream-Flush (Narayanan et al. 2021), as
 * Megatron's forward_backward_pipelining_without_interleaving runs it:
 * device d warms up with min(D-d-1, M) forwards, then alternates one
 * forward and one backward, then drains the remaining backwards.  At most
 * D-d activations are alive on device d, against M for GPipe, with the
 * same bubble.  PyTorch's Schedule1F1B computes in the same order (it
 * refuses M < D, which Megatron accepts and so do we).
 */
#include "pp.h"

static int onef1b_check(const pp_spec *s, pp_diag *d)
{
    if (s->chunks != 1) {
        pp_error(d, "1f1b: needs one stage per device (virtual = 1), got virtual = %d; use interleaved", s->chunks);
        return 1;
    }
    return pp_policy_need_loop(s, "1f1b", d) + pp_policy_no_group(s, "1f1b", d);
}

static int onef1b_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    (void)d;
    int D = s->devices, M = s->microbatches;
    for (int dev = 0; dev < D; dev++) {
        int warmup = D - dev - 1 < M ? D - dev - 1 : M;
        for (int m = 0; m < warmup; m++)
            pp_policy_emit(p, dev, PP_OP_F, dev, m);
        for (int i = 0; i < M - warmup; i++) {
            pp_policy_emit(p, dev, PP_OP_F, dev, warmup + i);
            pp_policy_emit(p, dev, PP_OP_B, dev, i);
        }
        for (int m = M - warmup; m < M; m++)
            pp_policy_emit(p, dev, PP_OP_B, dev, m);
    }
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_1f1b = {
    .name = "1f1b",
    .summary = "one forward, one backward after a warmup (Megatron non-interleaved, PyTorch Schedule1F1B)",
    .check = onef1b_check,
    .generate = onef1b_generate,
    .split_backward = false,
};
