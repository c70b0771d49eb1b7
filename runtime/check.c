/*
 * check.c — pprun --check: after the run, the same steps are trained by
 * the reference of the plan's weight rule (single-device training for a
 * synchronous plan, async_ref.c's for the asynchronous ones), and the
 * largest relative error of the trained weights and biases (and of the
 * losses) is compared with the tolerance of the GEMM precision.  Whether
 * the reference fits in the host's memory is asked before the run.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "pprun.h"

double pr_max_rel_err(const float *a, const float *ref, size_t n)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)ref[i]);
        if (e > diff || isnan(e))
            diff = isnan(e) ? INFINITY : e;
        if (fabs((double)ref[i]) > scale)
            scale = fabs((double)ref[i]);
    }
    if (diff == 0)
        return 0;
    return scale > 0 ? diff / scale : INFINITY;
}

/* fp32: only the summation order differs (~1e-7).  Reduced precision
 * rounds every GEMM operand; the bounds below hold, with a margin of 2 or
 * more for the GPU's own summation order, over every GPU test case
 * emulated on the CPU (tests/runtime/precision_emulator.c, run by
 * test_gpu.sh --backend cpu), and stay under what a wrong run gives (a
 * micro-batch missing: 5e-2 to 0.4).
 * bf16: round to nearest even (the CUDA backend converts the operands
 * itself), 8 bits of mantissa; worst emulated 3.5e-3.
 * tf32: cuBLAS feeds FP32 operands to the tensor cores, and whether its
 * Hopper kernels round them first is not documented.  What is known: the
 * hardware truncates (PTX ISA, wgmma.mma_async: ".tf32 will truncate lower
 * 13 bits of the 32-bit input data"), a truncation error up to 2^-10,
 * always toward zero, that does not average out over a dot product;
 * CUTLASS 2.x's Ampere GEMMs round in registers first (PreferredRoundingMode
 * of tfloat32_t from float: round_half_ulp_truncate, to nearest, ties
 * away), and cuBLAS on Ampere did too (pytorch/pytorch#53635: 1024.5 x 1
 * gave 1025, which only ties-away rounding gives; triton-lang/triton#4574:
 * cvt.rna before Triton's tl.dot matched torch's matmul exactly); a Hopper
 * kernel that feeds operands from shared memory straight to wgmma rounds
 * nothing.  Emulated, truncation gives up to 8.6e-3 (interleaved's 16
 * layers) and rounding 4.2e-4, so the tolerance holds for truncation
 * (margin 2.3; 2.5 below the smallest wrong run).  The GPU tests measure
 * which one cuBLAS does (precision_emulator --match judges every tf32 run
 * against both emulations, docs/bench.md); should every case round, 2e-3
 * would do. */
double pr_check_tolerance(int precision)
{
    switch (precision) {
    case PR_BF16: return 1e-2;
    case PR_TF32: return 2e-2;
    default: return 1e-5;
    }
}

/* Keeps only the layers in `own` (all when NULL): the reference's and the
 * run's, packed to the front of both arrays.  Returns how many. */
static size_t keep_layers(const bool *own, size_t L, size_t per, float *ref, float *run)
{
    size_t n = 0;
    for (size_t l = 0; l < L; l++)
        if (!own || own[l]) {
            memmove(ref + n * per, ref + l * per, per * sizeof(float));
            memmove(run + n * per, run + l * per, per * sizeof(float));
            n++;
        }
    return n;
}

int pr_check_run(const pp_plan *p, const pr_model *m, int steps, pr_run_result *r,
                 double tolerance, const bool *own, bool with_loss)
{
    size_t h = (size_t)m->hidden, L = (size_t)m->layers;
    float *W = pp_xcalloc(L * h * h, sizeof(float), "the reference's weights");
    float *b = pp_xcalloc(L * h, sizeof(float), "the reference's biases");
    double *loss = pp_xcalloc((size_t)steps, sizeof(double), "the reference's losses");
    pr_init_params(m, W, b);
    pp_diag dg;
    pp_diag_init(&dg, stderr, "pprun");
    if (pr_reference_train_async(p, m, steps, W, b, loss, &dg)) { /* docs/async.md */
        free(W);
        free(b);
        free(loss);
        return 1;
    }
    float *runW = pp_xcalloc(L * h * h, sizeof(float), "the trained weights");
    float *runb = pp_xcalloc(L * h, sizeof(float), "the trained biases");
    pr_mlp_unpack(m, r->params, runW, runb);
    size_t n = keep_layers(own, L, h * h, W, runW);
    keep_layers(own, L, h, b, runb);
    double ew = pr_max_rel_err(runW, W, n * h * h), eb = pr_max_rel_err(runb, b, n * h);
    free(runW);
    free(runb);
    double el = 0;
    for (int k = 0; k < steps && with_loss; k++) {
        double e = fabs(r->loss[k] - loss[k]) / (fabs(loss[k]) > 0 ? fabs(loss[k]) : 1);
        if (e > el || isnan(e))
            el = isnan(e) ? INFINITY : e;
    }
    double worst = fmax(ew, eb);
    bool ok = worst <= tolerance && !isnan(worst);
    printf("check: largest relative error %.3g (weights %.3g, biases %.3g; loss %.3g) vs "
           "%s: %s (tolerance %g)\n",
           worst, ew, eb, el,
           p->async == PP_ASYNC_NONE ? "single-device training"
           : p->async == PP_ASYNC_2BW ? "the 2bw rule (docs/async.md)"
           : p->vertical_sync         ? "the pipedream vertical-sync rule (docs/async.md)"
                                      : "the pipedream rule (docs/async.md)",
           ok ? "ok" : "FAILED", tolerance);
    free(W);
    free(b);
    free(loss);
    return ok ? 0 : 1;
}

bool pr_check_fits(const pp_plan *p, const pr_model *m, int steps, pp_diag *d)
{
    double params = (double)m->layers * ((double)m->hidden * m->hidden + m->hidden) * sizeof(float);
    double need = pr_reference_bytes(p, m) + 3 * params + steps * 2.0 * sizeof(double);
    const char *limit;
    double left = pr_host_memory_left(&limit);
    if (need <= left)
        return true;
    char nb[32], lb[32];
    pp_error(d, "--check needs %s of memory for the single-device reference (the whole batch "
                "of %d rows through %d layers, and copies of the weights), more than the %s "
                "left under %s",
             pr_format_bytes(need, nb, sizeof nb), m->batch, m->layers,
             pr_format_bytes(left, lb, sizeof lb), limit);
    return false;
}
