/*
 * test_gpt_kernels_cpu.c — the CPU's GELU kernels of the transformer
 * (runtime/gpt_kernels_cpu.c), compiled for AVX-512 and AVX2 besides the
 * baseline and picked by the machine, compute bit for bit the scalar
 * formula of kernels/mlp_math.h (pp_gelu, pp_gelu_grad), which the
 * --check reference and the CUDA kernels use: no FMA contraction, no
 * lane or tail handled differently.  Shapes with odd widths catch the
 * vector loops' remainders; the inputs reach pp_expf's clamps.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gpt_kernels.h"
#include "mlp_math.h"
#include "test_util.h"

/* rows n, width f */
static const int shapes[][2] = {{1, 1}, {3, 7}, {5, 33}, {16, 1024}, {7, 1000}, {2, 4099}};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

/* Values in [-8, 8], every 13th scaled up to reach the exponential's clamps. */
static float *fill(size_t count, uint64_t stream, float scale)
{
    float *p = calloc(count ? count : 1, sizeof(float));
    for (size_t i = 0; i < count; i++)
        p[i] = scale * pp_uniform_pm1(7, stream, i) * (i % 13 == 0 ? 20.0f : 1.0f);
    return p;
}

static pr_bctx *ctx(int *step)
{
    pr_bctx *c = calloc(1, sizeof *c);
    c->step = step;
    return c;
}

START_TEST(bias_gelu_is_the_scalar_formula)
{
    int n = shapes[_i][0], f = shapes[_i][1], step = 0;
    size_t count = (size_t)n * f;
    float *u = fill(count, 1, 8.0f), *b = fill((size_t)f, 2, 1.0f), *g = malloc(count * sizeof(float));
    float *u0 = malloc(count * sizeof(float));
    memcpy(u0, u, count * sizeof(float));
    pr_bctx *c = ctx(&step);
    pr_gpt_kernels_cpu.bias_gelu(c, u, b, g, n, f);
    for (size_t i = 0; i < count; i++) {
        float z = u0[i] + b[i % (size_t)f], want = pp_gelu(z);
        ck_assert_msg(memcmp(&u[i], &z, sizeof z) == 0 && memcmp(&g[i], &want, sizeof want) == 0,
                      "[%d x %d] element %zu: u %a g %a, the formula %a %a", n, f, i, (double)u[i],
                      (double)g[i], (double)z, (double)want);
    }
    free(c), free(u), free(b), free(g), free(u0);
}
END_TEST

START_TEST(gelu_backward_is_the_scalar_formula)
{
    int n = shapes[_i][0], f = shapes[_i][1], step = 0;
    size_t count = (size_t)n * f;
    float *u = fill(count, 3, 8.0f), *dg = fill(count, 4, 1.0f), *du = malloc(count * sizeof(float));
    pr_bctx *c = ctx(&step);
    pr_gpt_kernels_cpu.gelu_backward(c, dg, u, du, count);
    for (size_t i = 0; i < count; i++) {
        float want = dg[i] * pp_gelu_grad(u[i]);
        ck_assert_msg(memcmp(&du[i], &want, sizeof want) == 0,
                      "[%d x %d] element %zu: du %a, the formula %a", n, f, i, (double)du[i],
                      (double)want);
    }
    /* in place (du = dg), as the block's backward calls it */
    float *d2 = malloc(count * sizeof(float));
    memcpy(d2, dg, count * sizeof(float));
    pr_gpt_kernels_cpu.gelu_backward(c, d2, u, d2, count);
    ck_assert_mem_eq(d2, du, count * sizeof(float));
    free(c), free(u), free(dg), free(du), free(d2);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("gpt_kernels_cpu");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, bias_gelu_is_the_scalar_formula, 0, NSHAPES);
    tcase_add_loop_test(tc, gelu_backward_is_the_scalar_formula, 0, NSHAPES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }
