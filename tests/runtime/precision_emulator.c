/*
 * precision_emulator.c — `pprun --check` under the GPU's reduced-precision
 * GEMMs, on the CPU: the CPU backend with every GEMM operand rounded the
 * way the CUDA backend's GEMMs round it, so that a GPU test case's
 * --precision tf32|bf16 --check can be tried, and its tolerance judged,
 * without a GPU (tests/runtime/test_gpu.sh --backend cpu runs it).
 *
 *   precision_emulator PLAN.json --precision fp32|tf32|bf16 [--tf32 trunc|rna] [--steps N]
 *
 * What the CUDA backend rounds (runtime/backend_cuda.cu): the operands of
 * the three GEMMs of a layer — x and W (forward), dz and W (input
 * gradient), x and dz (weight gradient) — accumulating in FP32 into FP32
 * outputs; the bias, GELU, residual, bias-gradient and SGD arithmetic stay
 * FP32.  bf16: round to nearest even (__float2bfloat16, the backend's own
 * conversion, also for the weights' BF16 shadows).  tf32: Hopper's wgmma
 * truncates the low 13 bits of FP32 operands (PTX ISA, wgmma.mma_async),
 * the worst case when cuBLAS feeds FP32 data to the tensor cores as is;
 * `--tf32 rna` rounds to nearest (cvt.rna.tf32.f32) instead, the case where
 * operands are converted first.  Prints pprun's check line and exits as
 * pprun --check does (0 ok, 1 over the tolerance).  --precision fp32
 * rounds nothing: the emulator's own arithmetic, which must then agree
 * with single-device training within pprun's fp32 tolerance.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "mlp_launch.h"
#include "pprun.h"

enum rounding { NONE, BF16_RN, TF32_TRUNC, TF32_RNA };
static enum rounding rounding;

static float round_operand(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u)
        return v; /* inf, nan */
    switch (rounding) {
    case NONE: break;
    case BF16_RN: u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u; break;
    case TF32_TRUNC: u &= 0xffffe000u; break;
    case TF32_RNA: u = (u + 0x1000u) & 0xffffe000u; break;
    }
    memcpy(&v, &u, sizeof v);
    return v;
}

/* A rounded copy of src [rows, cols], transposed when asked. */
static float *rounded(const float *src, int rows, int cols, bool transpose)
{
    float *dst = malloc((size_t)rows * (size_t)cols * sizeof(float));
    if (!dst)
        abort();
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float v = round_operand(src[(size_t)r * cols + c]);
            dst[transpose ? (size_t)c * rows + r : (size_t)r * cols + c] = v;
        }
    return dst;
}

static void emu_forward(pr_bctx *c, const float *x, const float *W, const float *b, float *z,
                        float *y, int n, int h)
{
    float *xr = rounded(x, n, h, false), *Wr = rounded(W, h, h, false);
    pr_cpu_sgemm(n, h, h, xr, Wr, z, 0);
    for (size_t i = 0; i < (size_t)n * h; i++)
        pp_bias_gelu_at(i, x, b, z, y, h);
    free(xr);
    free(Wr);
}

static void emu_backward_input(pr_bctx *c, const float *dy, const float *z, const float *W,
                               float *dz, float *dx, int n, int h)
{
    for (size_t i = 0; i < (size_t)n * h; i++)
        pp_gelu_backward_at(i, dy, z, dz, dx);
    if (!dx)
        return;
    float *dzr = rounded(dz, n, h, false), *WrT = rounded(W, h, h, true);
    pr_cpu_sgemm(n, h, h, dzr, WrT, dx, 1); /* dx = dy + dz W^T */
    free(dzr);
    free(WrT);
}

static void emu_backward_weight(pr_bctx *c, const float *x, const float *dz, float *dW, float *db,
                                int n, int h)
{
    float *xrT = rounded(x, n, h, true), *dzr = rounded(dz, n, h, false);
    pr_cpu_sgemm(h, h, n, xrT, dzr, dW, 1); /* dW += x^T dz */
    for (int r = 0; r < n; r++)
        for (int j = 0; j < h; j++)
            db[j] += dz[(size_t)r * h + j];
    free(xrT);
    free(dzr);
}

static int usage(void)
{
    fputs("usage: precision_emulator PLAN.json --precision fp32|tf32|bf16 [--tf32 trunc|rna] "
          "[--steps N]\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *precision = NULL, *tf32 = "trunc";
    int steps = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc)
            precision = argv[++i];
        else if (strcmp(argv[i], "--tf32") == 0 && i + 1 < argc)
            tf32 = argv[++i];
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            return usage();
    }
    int prec;
    if (!path || !precision || steps < 1)
        return usage();
    if (strcmp(precision, "fp32") == 0) { /* no rounding: the emulator's own arithmetic */
        prec = PR_FP32;
        rounding = NONE;
    } else if (strcmp(precision, "bf16") == 0) {
        prec = PR_BF16;
        rounding = BF16_RN;
    } else if (strcmp(precision, "tf32") == 0 && strcmp(tf32, "trunc") == 0) {
        prec = PR_TF32;
        rounding = TF32_TRUNC;
    } else if (strcmp(precision, "tf32") == 0 && strcmp(tf32, "rna") == 0) {
        prec = PR_TF32;
        rounding = TF32_RNA;
    } else {
        return usage();
    }

    pp_diag d;
    pp_diag_init(&d, stderr, "precision_emulator");
    pp_plan p;
    pr_model m;
    if (pr_plan_load_file(path, &d, &p, &m))
        return 1;
    pr_backend emu = *pr_backend_cpu();
    emu.name = "cpu, GPU rounding emulated";
    emu.layer_forward = emu_forward;
    emu.layer_backward_input = emu_backward_input;
    emu.layer_backward_weight = emu_backward_weight;
    pr_run_opts o = {.steps = steps, .timeout = 60, .backend = &emu, .precision = prec};
    pr_run_result r;
    if (pr_replay(&p, &m, &o, &r, &d))
        return 1;
    size_t hh = (size_t)m.layers * m.hidden * m.hidden, hb = (size_t)m.layers * m.hidden;
    float *W = malloc(hh * sizeof(float)), *b = malloc(hb * sizeof(float));
    double *loss = malloc((size_t)steps * sizeof(double));
    pr_init_params(&m, W, b);
    int rc = pr_reference_train_async(&p, &m, steps, W, b, loss, &d);
    if (rc == 0) {
        double ew = pr_max_rel_err(r.W, W, hh), eb = pr_max_rel_err(r.b, b, hb);
        double worst = ew > eb ? ew : eb, tol = pr_check_tolerance(prec);
        bool ok = worst <= tol;
        printf("check: largest relative error %.3g (weights %.3g, biases %.3g) with %s GEMM "
               "operands (%s): %s (tolerance %g)\n",
               worst, ew, eb, precision,
               rounding == NONE ? "not rounded"
               : rounding == BF16_RN ? "round to nearest even"
               : rounding == TF32_TRUNC ? "truncated, as wgmma does"
                                        : "rounded to nearest, ties away",
               ok ? "ok" : "FAILED", tol);
        rc = ok ? 0 : 1;
    }
    pr_run_result_free(&r);
    pp_plan_free(&p);
    pr_model_free(&m);
    free(W), free(b), free(loss);
    return rc;
}
