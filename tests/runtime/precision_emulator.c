/*
 * precision_emulator.c — the GPU's reduced-precision GEMMs on the CPU: the
 * CPU backend with every GEMM operand rounded the way a GPU GEMM may round
 * it.  Two uses (tests/runtime/test_gpu.sh runs both):
 *
 *   precision_emulator PLAN.json --precision fp32|tf32|bf16 [--tf32 trunc|rna]
 *                      [--steps N] [--sum reverse] [--dump DIR]
 *
 * An emulated run, checked as `pprun --check` checks one (against
 * single-device training at pprun's tolerance; exit 0 ok, 1 over it), so
 * that a GPU test case's tolerance is tried without a GPU.  --dump DIR
 * writes its trained weights as pprun --dump does (w_final.npy,
 * b_final.npy).  --sum reverse sums every dot product of every GEMM from
 * its last term: another summation order, standing in for the GPU's when
 * the judge below is tested on the CPU.  --precision fp32 rounds nothing.
 *
 *   precision_emulator PLAN.json --precision tf32|bf16 --steps N --match DIR
 *                      [--tensor-cores]
 *
 * Judges a GPU run by measurement: DIR is its `pprun --dump` (same plan,
 * same steps).  The plan is emulated without rounding (fp32) and under
 * each rounding the GPU may apply (tf32: operands truncated, or rounded to
 * nearest; bf16: rounded to nearest even), and the run's deviation from
 * the fp32 emulation (every trained weight and bias) is fitted, by least
 * squares, as a sum of the roundings' deviations: run - fp32 = a (trunc -
 * fp32) + b (round - fp32) + rest.  A run that rounds one way has that
 * coefficient near 1 and the other near 0 (measured on the CPU with
 * stand-ins whose sums run in another order: truncated 0.998 to 1.000,
 * rounded 0.80 to 0.94, the other within 0.02; ties to even and ties away
 * cannot be told apart, exact ties being rare).  Pointwise distances do
 * not tell the roundings apart: another summation order flips a few
 * operands' rounding, and one flipped activation reaches every weight, so
 * a rounded run lies as close to the fp32 emulation as to its own; the
 * flips are nearly orthogonal to the roundings' deviations, so the
 * coefficients still separate them (the rest carries the flips).  Verdict:
 *   - one rounding present (coefficient within MATCH_BAND-fold of 1: a
 *     two-sided band on the deviation from fp32) and the other absent
 *     (|coefficient| <= MATCH_ABSENT): "matches" that rounding;
 *   - all absent: fp32 arithmetic — for tf32 cuBLAS's own choice of a
 *     non-tensor-core kernel for a small GEMM, reported and accepted
 *     unless --tensor-cores says the case is too large for that; for bf16
 *     a failure (the backend converts the operands itself);
 *   - and the rest at most MATCH_REST times the matched rounding's
 *     deviation (the smaller one's when none matched): a run that differs
 *     by more than summation order (a wrong micro-batch, a stale weight) is
 *     no match whatever its coefficients.
 * Prints one line (the coefficients, the rest, the verdict); exit 0 on a
 * match, 1 otherwise.
 *
 * What the CUDA backend rounds (runtime/backend_cuda.cu): the operands of
 * the three GEMMs of a layer — x and W (forward), dz and W (input
 * gradient), x and dz (weight gradient) — accumulating in FP32 into FP32
 * outputs; the bias, GELU, residual, bias-gradient and SGD arithmetic stay
 * FP32.  bf16: round to nearest even (__float2bfloat16, also for the
 * weights' BF16 shadows).  tf32: how cuBLAS's kernels convert FP32
 * operands is undocumented (runtime/check.c, pr_check_tolerance, has what
 * is known): a tensor-core MMA fed FP32 bits ignores the low 13 (trunc),
 * a kernel that converts first rounds to nearest, ties away (rna,
 * cvt.rna.tf32.f32).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"
#include "mlp_launch.h"
#include "pprun.h"

enum rounding { NONE, BF16_RN, TF32_TRUNC, TF32_RNA };
static const char *const rounding_name[] = {
    [NONE] = "not rounded",
    [BF16_RN] = "bf16, round to nearest even",
    [TF32_TRUNC] = "tf32, truncated",
    [TF32_RNA] = "tf32, rounded to nearest",
};

/* The judge's thresholds (--match, above).  On the CPU the stand-ins of
 * every GPU test case (test_gpu.sh --backend cpu) gave coefficients 0.80
 * to 1.00 for their own rounding, at most 0.02 for the other, and a rest
 * up to 0.58 of their rounding's deviation; wrong roundings and wrong runs
 * (tests/runtime/test_precision_judge.sh) a coefficient near 0 or outside
 * the band, or a rest of 7 and more. */
#define MATCH_BAND 2.5
#define MATCH_ABSENT 0.25
#define MATCH_REST 1.5

/* What the backend callbacks below do: set before each emulated run. */
static enum rounding rounding;
static bool sum_reversed;

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

static void *emu_alloc(size_t count, size_t size)
{
    void *p = malloc((count ? count : 1) * size);
    if (!p) {
        fputs("precision_emulator: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

/* op(src), rounded: [rows, cols] of a matrix stored with row stride ld
 * (transposed when t). */
static float *rounded(const float *src, int ld, int rows, int cols, bool t)
{
    float *dst = emu_alloc((size_t)rows * (size_t)cols, sizeof(float));
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(size_t)r * cols + c] = round_operand(t ? src[(size_t)c * ld + r] : src[(size_t)r * ld + c]);
    return dst;
}

/* The backend's gemm with every operand rounded: C = op(A) op(B) + beta C
 * through the CPU's GEMM, or with --sum reverse each dot product summed
 * from k - 1 down. */
static void emu_gemm(pr_bctx *c, int ta, int tb, int m, int n, int k, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
    float *Ar = rounded(A, lda, m, k, ta == PR_T), *Br = rounded(B, ldb, k, n, tb == PR_T);
    float *P = emu_alloc((size_t)m * (size_t)n, sizeof(float));
    if (!sum_reversed) {
        pr_cpu_sgemm(m, n, k, Ar, Br, P, 0);
    } else {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                float acc = 0;
                for (int q = k - 1; q >= 0; q--)
                    acc += Ar[(size_t)i * k + q] * Br[(size_t)q * n + j];
                P[(size_t)i * n + j] = acc;
            }
    }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float *cij = C + (size_t)i * ldc + j;
            *cij = beta != 0.0f ? beta * *cij + P[(size_t)i * n + j] : P[(size_t)i * n + j];
        }
    free(Ar), free(Br), free(P);
}

/* One emulated run of the plan under `how`: its trained weights in r. */
static int emulate(const pp_plan *p, const pr_model *m, int steps, int precision,
                   enum rounding how, pr_run_result *r, pp_diag *d)
{
    pr_backend emu = *pr_backend_cpu();
    emu.name = "cpu, GPU rounding emulated";
    emu.gemm = emu_gemm;
    rounding = how;
    pr_run_opts o = {.steps = steps, .timeout = 60, .backend = &emu, .precision = precision};
    return pr_replay(p, m, &o, r, d);
}

/* ---- .npy files: pprun --dump's (float32, C order) ---- */

static int write_npy(const char *dir, const char *name, const float *data, const int *shape,
                     int ndim)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int rc = !f || pr_npy_write(f, data, shape, ndim);
    if (f && fclose(f))
        rc = 1;
    if (rc)
        fprintf(stderr, "precision_emulator: cannot write %s\n", path);
    return rc;
}

/* Reads DIR/NAME, a float32 C-order array of exactly `count` elements
 * whose shape is `shape` (e.g. "(8, 64, 64)"), into data. */
static int read_npy(const char *dir, const char *name, const char *shape, float *data,
                    size_t count)
{
    char path[4096], head[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "precision_emulator: cannot open %s\n", path);
        return 1;
    }
    unsigned char pre[10];
    const char *why = NULL;
    size_t hlen = 0;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY\x01\x00", 8) != 0)
        why = "not a version 1.0 .npy file";
    else if ((hlen = (size_t)pre[8] | (size_t)pre[9] << 8) >= sizeof head ||
             fread(head, 1, hlen, f) != hlen)
        why = "its header is cut short or too long";
    if (!why) {
        head[hlen] = 0;
        char want[128];
        snprintf(want, sizeof want, "'shape': %s", shape);
        if (!strstr(head, "'descr': '<f4'") || !strstr(head, "'fortran_order': False"))
            why = "not float32 in C order";
        else if (!strstr(head, want))
            why = "not of the plan's shape";
    }
    if (!why && (fread(data, sizeof(float), count, f) != count || fgetc(f) != EOF))
        why = "its data is not of the size its shape says";
    fclose(f);
    if (why)
        fprintf(stderr, "precision_emulator: %s: %s (want float32 %s)\n", path, why, shape);
    return why != NULL;
}

/* ---- --match: which rounding a GPU run matches ---- */

/* A run's trained parameters, weights then biases: [L*H*H + L*H]. */
static float *params(const pr_model *m, const float *W, const float *b);
/* The same from a run's result. */
static float *run_params(const pr_model *m, const pr_run_result *r)
{
    size_t hh = (size_t)m->layers * m->hidden * m->hidden, hb = (size_t)m->layers * m->hidden;
    float *v = emu_alloc(hh + hb, sizeof(float));
    pr_mlp_unpack(m, r->params, v, v + hh);
    return v;
}

static float *params(const pr_model *m, const float *W, const float *b)
{
    size_t hh = (size_t)m->layers * m->hidden * m->hidden, hb = (size_t)m->layers * m->hidden;
    float *v = emu_alloc(hh + hb, sizeof(float));
    memcpy(v, W, hh * sizeof(float));
    memcpy(v + hh, b, hb * sizeof(float));
    return v;
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Least squares: r ~ coef[0] s[0] + ... + coef[k-1] s[k-1] (k = 1 or 2);
 * returns |residual|. */
static double fit(const double *r, double *const *s, int k, size_t n, double *coef)
{
    double g00 = dot(s[0], s[0], n), v0 = dot(s[0], r, n);
    if (k == 1) {
        coef[0] = g00 > 0 ? v0 / g00 : 0;
    } else {
        double g01 = dot(s[0], s[1], n), g11 = dot(s[1], s[1], n), v1 = dot(s[1], r, n);
        double det = g00 * g11 - g01 * g01;
        coef[0] = det > 0 ? (v0 * g11 - v1 * g01) / det : 0;
        coef[1] = det > 0 ? (v1 * g00 - v0 * g01) / det : 0;
    }
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = r[i];
        for (int j = 0; j < k; j++)
            d -= coef[j] * s[j][i];
        e += d * d;
    }
    return sqrt(e);
}

static int match(const pp_plan *p, const pr_model *m, int steps, int precision,
                 const char *precision_name, const char *dir, bool tensor_cores, pp_diag *d)
{
    int L = m->layers, H = m->hidden;
    size_t hh = (size_t)L * H * H, hb = (size_t)L * H, n = hh + hb;
    char wshape[64], bshape[64];
    snprintf(wshape, sizeof wshape, "(%d, %d, %d)", L, H, H);
    snprintf(bshape, sizeof bshape, "(%d, %d)", L, H);
    float *W = emu_alloc(hh, sizeof(float)), *b = emu_alloc(hb, sizeof(float));
    int rc = read_npy(dir, "w_final.npy", wshape, W, hh) || read_npy(dir, "b_final.npy", bshape, b, hb);
    float *run = rc ? NULL : params(m, W, b);
    free(W), free(b);
    /* The fp32 emulation, then each rounding's: the regressors are what
     * each rounding changes in the trained parameters. */
    enum rounding cand[2];
    int k = 0;
    if (precision == PR_TF32) {
        cand[k++] = TF32_TRUNC;
        cand[k++] = TF32_RNA;
    } else {
        cand[k++] = BF16_RN;
    }
    float *base = NULL;
    double *s[2] = {NULL, NULL}, norm[2] = {0, 0};
    for (int i = -1; i < k && !rc; i++) {
        pr_run_result r;
        if ((rc = emulate(p, m, steps, precision, i < 0 ? NONE : cand[i], &r, d)))
            break;
        float *v = run_params(m, &r);
        pr_run_result_free(&r);
        if (i < 0) {
            base = v;
            continue;
        }
        s[i] = emu_alloc(n, sizeof(double));
        for (size_t j = 0; j < n; j++)
            s[i][j] = (double)v[j] - (double)base[j];
        norm[i] = sqrt(dot(s[i], s[i], n));
        free(v);
    }
    if (rc) {
        free(run), free(base), free(s[0]), free(s[1]);
        return 1;
    }
    double *dev = emu_alloc(n, sizeof(double)), coef[2] = {0, 0};
    for (size_t j = 0; j < n; j++)
        dev[j] = (double)run[j] - (double)base[j];
    double resid = fit(dev, s, k, n, coef);
    /* present: that rounding's effect in full, within the band; absent: none of it */
    bool present[2], absent[2];
    for (int i = 0; i < k; i++) {
        present[i] = coef[i] >= 1 / MATCH_BAND && coef[i] <= MATCH_BAND;
        absent[i] = fabs(coef[i]) <= MATCH_ABSENT;
    }
    int matched = -1; /* the rounding present, or -1: none (the unit is then the smallest effect) */
    for (int i = 0; i < k; i++)
        if (present[i] && (k == 1 || absent[1 - i]))
            matched = i;
    bool none = absent[0] && (k == 1 || absent[1]);
    int unit = matched >= 0 ? matched : k == 2 && norm[1] < norm[0] ? 1 : 0;
    double rest = norm[unit] > 0 ? resid / norm[unit] : resid > 0 ? INFINITY : 0;
    const char *verdict = NULL;
    char why[300] = "";
    if (rest > MATCH_REST)
        snprintf(why, sizeof why, "the rest is over %g times the effect of %s: more differs than "
                 "summation order explains", MATCH_REST, rounding_name[cand[unit]]);
    else if (matched < 0 && !none)
        snprintf(why, sizeof why, "not one rounding's effect in full (%g to %g times) with "
                 "the other's absent (under %g)", 1 / MATCH_BAND, MATCH_BAND, MATCH_ABSENT);
    else if (matched >= 0)
        verdict = rounding_name[cand[matched]];
    else if (precision == PR_BF16)
        snprintf(why, sizeof why, "its GEMMs did not round their operands to bf16");
    else if (tensor_cores)
        snprintf(why, sizeof why, "its GEMMs did not round their operands: no tensor cores, "
                 "though this case is large enough that cuBLAS should use them");
    else
        verdict = "fp32: cuBLAS used no tensor cores for this case";
    printf("match: %s run vs this plan emulated (%d steps): run - fp32 emulation =",
           precision_name, steps);
    for (int i = 0; i < k; i++)
        printf("%s %.3f x the effect of %s", i ? " +" : "", coef[i], rounding_name[cand[i]]);
    printf(", rest %.3f times the effect of %s: %s%s\n", rest, rounding_name[cand[unit]],
           verdict ? "matches " : "FAILED: ", verdict ? verdict : why);
    free(run), free(base), free(s[0]), free(s[1]), free(dev);
    return verdict ? 0 : 1;
}

/* ---- an emulated run, checked ---- */

static int check(const pp_plan *p, const pr_model *m, int steps, int precision,
                 const char *precision_name, enum rounding how, const char *dump, pp_diag *d)
{
    int L = m->layers, H = m->hidden;
    size_t hh = (size_t)L * H * H, hb = (size_t)L * H;
    pr_run_result r;
    if (emulate(p, m, steps, precision, how, &r, d))
        return 1;
    float *W = emu_alloc(hh, sizeof(float)), *b = emu_alloc(hb, sizeof(float));
    double *loss = emu_alloc((size_t)steps, sizeof(double));
    pr_init_params(m, W, b);
    int rc = pr_reference_train_async(p, m, steps, W, b, loss, d);
    float *v = run_params(m, &r), *rW = v, *rb = v + hh;
    if (rc == 0) {
        double ew = pr_max_rel_err(rW, W, hh), eb = pr_max_rel_err(rb, b, hb);
        double worst = ew > eb ? ew : eb, tol = pr_check_tolerance(precision);
        bool ok = worst <= tol;
        printf("check: largest relative error %.3g (weights %.3g, biases %.3g) with %s GEMM "
               "operands (%s%s): %s (tolerance %g)\n",
               worst, ew, eb, precision_name, rounding_name[how],
               sum_reversed ? ", sums reversed" : "", ok ? "ok" : "FAILED", tol);
        rc = ok ? 0 : 1;
    }
    if (dump) {
        int ws[3] = {L, H, H}, bs[2] = {L, H};
        if (mkdir(dump, 0777) != 0 && errno != EEXIST)
            fprintf(stderr, "precision_emulator: cannot make %s: %s\n", dump, strerror(errno));
        if (write_npy(dump, "w_final.npy", rW, ws, 3) || write_npy(dump, "b_final.npy", rb, bs, 2))
            rc = 1;
    }
    free(v);
    pr_run_result_free(&r);
    free(W), free(b), free(loss);
    return rc;
}

static int usage(void)
{
    fputs("usage: precision_emulator PLAN.json --precision fp32|tf32|bf16 [--tf32 trunc|rna] "
          "[--steps N] [--sum reverse] [--dump DIR]\n"
          "       precision_emulator PLAN.json --precision tf32|bf16 [--steps N] --match DIR "
          "[--tensor-cores]\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *precision = NULL, *tf32 = "trunc", *dump = NULL, *match_dir = NULL;
    const char *sum = "forward";
    bool tensor_cores = false;
    int steps = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc)
            precision = argv[++i];
        else if (strcmp(argv[i], "--tf32") == 0 && i + 1 < argc)
            tf32 = argv[++i];
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--sum") == 0 && i + 1 < argc)
            sum = argv[++i];
        else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc)
            dump = argv[++i];
        else if (strcmp(argv[i], "--match") == 0 && i + 1 < argc)
            match_dir = argv[++i];
        else if (strcmp(argv[i], "--tensor-cores") == 0)
            tensor_cores = true;
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            return usage();
    }
    if (!path || !precision || steps < 1 || (strcmp(sum, "forward") && strcmp(sum, "reverse")))
        return usage();
    sum_reversed = strcmp(sum, "reverse") == 0;
    int prec;
    enum rounding how;
    if (strcmp(precision, "fp32") == 0) {
        prec = PR_FP32;
        how = NONE;
    } else if (strcmp(precision, "bf16") == 0) {
        prec = PR_BF16;
        how = BF16_RN;
    } else if (strcmp(precision, "tf32") == 0 && strcmp(tf32, "trunc") == 0) {
        prec = PR_TF32;
        how = TF32_TRUNC;
    } else if (strcmp(precision, "tf32") == 0 && strcmp(tf32, "rna") == 0) {
        prec = PR_TF32;
        how = TF32_RNA;
    } else {
        return usage();
    }
    if (match_dir && (prec == PR_FP32 || dump || sum_reversed))
        return usage(); /* the judge emulates in the CPU backend's own order */
    if (tensor_cores && !match_dir)
        return usage();

    pp_diag d;
    pp_diag_init(&d, stderr, "precision_emulator");
    pp_plan p;
    pr_model m;
    if (pr_plan_load_file(path, &d, &p, &m))
        return 1;
    int rc = match_dir ? match(&p, &m, steps, prec, precision, match_dir, tensor_cores, &d)
                       : check(&p, &m, steps, prec, precision, how, dump, &d);
    pp_plan_free(&p);
    pr_model_free(&m);
    return rc;
}
