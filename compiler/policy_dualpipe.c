/*
 * policy_dualpipe.c — DeepSeek's DualPipe (DeepSeek-V3 technical report,
 * arXiv 2412.19437, section 3.2.1; github.com/deepseek-ai/DualPipe): two
 * copies of the model as two pipelines running in opposite directions
 * (docs/dualpipe.md).
 *
 * Rank r holds stage r of pipeline A and stage D-1-r of pipeline B; half
 * of the micro-batches enter A at rank 0, the other half enter B at rank
 * D-1.  The plan has 2D stages on the V placement (stage D + s is B's
 * stage s, on device D-1-s) and is mirrored (pp_plan.mirrored):
 * micro-batches 0 .. M/2-1 flow through stages 0 .. D-1, the others
 * through D .. 2D-1; policy.c adds the allreduce that sums the two copies'
 * gradients of each pipeline stage before the update.
 *
 * Ranks r and D-1-r are mirror images, and the reference schedule gives
 * each rank the phases DualPipeV (its "cut-in-half" form) gives device
 * h = min(r, D-1-r) of D/2 with M/2 micro-batches per chunk
 * (pp_policy_dualpipev_phases), where chunk 0 is the rank's stage in the
 * first half of its pipeline (A's stage r when r < D/2, else B's stage
 * D-1-r) and chunk 1 its stage in the second half.  With unit costs the
 * idle time is D/2 - 1 per device at D + 1 stage activations.
 */
#include "pp.h"

static int dualpipe_check(const pp_spec *s, pp_diag *d)
{
    int errors = pp_policy_need_vshape(s, "dualpipe", d) + pp_policy_no_group(s, "dualpipe", d);
    if (errors)
        return errors;
    if (!s->mirrored) { /* a spec built for another policy: its stages are not two copies */
        pp_error(d, "dualpipe: the model is split over all %d stages, not over one pipeline's %d and copied "
                    "(compile the file with schedule dualpipe)", s->stages, s->stages / 2);
        return 1;
    }
    int D = s->devices, M = s->microbatches;
    if (D % 2 != 0) {
        pp_error(d, "dualpipe: needs an even number of devices (ranks r and %d - r mirror each other), got devices = %d",
                 D - 1, D);
        errors++;
    }
    if (M % 2 != 0 || M < 2 * D) {
        pp_error(d, "dualpipe: needs an even number of microbatches, at least 2 x devices = %d (half of them enter "
                    "each pipeline), got microbatches = %d", 2 * D, M);
        errors++;
    }
    return errors;
}

static int dualpipe_generate(const pp_spec *s, pp_plan *p, pp_diag *d)
{
    int D = s->devices, H = D / 2, half = s->microbatches / 2;
    p->split_backward = true;
    for (int r = 0; r < D; r++) {
        bool upper = r < H; /* its first-half stage is pipeline A's */
        int h = upper ? r : D - 1 - r;
        int a = r, b = D + (D - 1 - r); /* its stage of A, of B */
        int stage[2] = {upper ? a : b, upper ? b : a};
        int mb0[2] = {upper ? 0 : half, upper ? half : 0};
        pp_vphase phases[PP_VPHASES_MAX];
        int n = pp_policy_dualpipev_phases(H, h, half, phases);
        if (pp_policy_vshape_device(p, r, stage, mb0, half, phases, n)) {
            pp_error(d, "dualpipe: out of memory");
            return 1;
        }
    }
    pp_policy_finish(p);
    return 0;
}

const pp_policy pp_policy_dualpipe = {
    .name = "dualpipe",
    .summary = "DualPipe: two mirrored pipelines fed from both ends, 2x parameters (DeepSeek-V3)",
    .check = dualpipe_check,
    .generate = dualpipe_generate,
    .split_backward = true,
    .mirrored = true,
};
