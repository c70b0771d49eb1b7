/*
 * model.c — the reference MLP's deterministic parameters and data
 * (docs/model.md), and the --check reference: single-device full-batch
 * training written as plain loops, sharing nothing with the replay loop or
 * the CPU backend's GEMM but the element-wise math of kernels/mlp_math.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mlp_math.h"
#include "pprun.h"

void pr_init_layer(const pr_model *m, int layer, float *W, float *b)
{
    size_t h = (size_t)m->hidden;
    /* 1/sqrt(H L): each residual branch adds ~1/(12 L) of its input's
     * variance, so the output stays O(1) at any depth (docs/model.md) */
    float scale = 1.0f / sqrtf((float)m->hidden * (float)m->layers);
    uint64_t stream = PP_STREAM_WEIGHT(layer);
    for (size_t i = 0; W && i < h * h; i++)
        W[i] = scale * pp_uniform_pm1(m->seed, stream, i);
    for (size_t j = 0; j < h; j++)
        b[j] = 0.1f * scale * pp_uniform_pm1(m->seed, stream, h * h + j);
}

void pr_init_params(const pr_model *m, float *W, float *b)
{
    size_t h = (size_t)m->hidden;
    for (int l = 0; l < m->layers; l++)
        pr_init_layer(m, l, W + (size_t)l * h * h, b + (size_t)l * h);
}

void pr_make_batch(const pr_model *m, int step, int row0, int rows, float *x, float *t)
{
    size_t h = (size_t)m->hidden;
    size_t first = (size_t)row0 * h, n = (size_t)rows * h;
    for (size_t i = 0; i < n; i++) {
        if (x)
            x[i] = pp_uniform_pm1(m->seed, PP_STREAM_X(step), first + i);
        if (t)
            t[i] = pp_uniform_pm1(m->seed, PP_STREAM_T(step), first + i);
    }
}

/* Gradient of the rows' loss with layer l at (Wl[l], bl[l]): dW[l], db[l]
 * (overwritten, [L][h*h], [L][h]); returns sum (y - t)^2. */
double pr_reference_grad(const pr_model *m, float *const *Wl, float *const *bl, const float *x0,
                        const float *t, int rows, float *const *dW, float *const *db)
{
    size_t L = (size_t)m->layers, h = (size_t)m->hidden, N = (size_t)rows;
    /* pr_reference_bytes counts these */
    float *acts = pp_xcalloc((L + 1) * N * h, sizeof(float), "the reference's activations");
    float *zs = pp_xcalloc(L * N * h, sizeof(float), "the reference's pre-activations");
    float *dy = pp_xcalloc(N * h, sizeof(float), "the reference's output gradient");
    float *dx = pp_xcalloc(N * h, sizeof(float), "the reference's input gradient");
    float *dz = pp_xcalloc(N * h, sizeof(float), "the reference's gradients");
    float inv_n = 1.0f / (float)m->batch; /* the global batch, as every micro-batch */
    memcpy(acts, x0, N * h * sizeof(float));
    for (size_t l = 0; l < L; l++) {
        const float *x = acts + l * N * h;
        float *z = zs + l * N * h, *y = acts + (l + 1) * N * h;
        for (size_t r = 0; r < N; r++)
            for (size_t j = 0; j < h; j++) {
                float s = 0;
                for (size_t i = 0; i < h; i++)
                    s += x[r * h + i] * Wl[l][i * h + j];
                z[r * h + j] = s + bl[l][j];
                y[r * h + j] = x[r * h + j] + pp_gelu(z[r * h + j]);
            }
    }
    const float *y = acts + L * N * h;
    double sq = 0;
    for (size_t i = 0; i < N * h; i++) {
        double e = (double)y[i] - (double)t[i];
        sq += e * e;
        dy[i] = pp_mse_grad(y[i], t[i], inv_n);
    }
    for (size_t l = L; l-- > 0;) {
        const float *x = acts + l * N * h, *z = zs + l * N * h;
        for (size_t i = 0; i < N * h; i++)
            dz[i] = dy[i] * pp_gelu_grad(z[i]);
        memset(dW[l], 0, h * h * sizeof(float));
        memset(db[l], 0, h * sizeof(float));
        for (size_t r = 0; r < N; r++)
            for (size_t i = 0; i < h; i++)
                for (size_t j = 0; j < h; j++)
                    dW[l][i * h + j] += x[r * h + i] * dz[r * h + j];
        for (size_t r = 0; r < N; r++)
            for (size_t j = 0; j < h; j++)
                db[l][j] += dz[r * h + j];
        for (size_t r = 0; r < N; r++)
            for (size_t i = 0; i < h; i++) {
                float s = 0;
                for (size_t j = 0; j < h; j++)
                    s += dz[r * h + j] * Wl[l][i * h + j];
                dx[r * h + i] = dy[r * h + i] + s;
            }
        float *tmp = dy;
        dy = dx;
        dx = tmp;
    }
    free(acts);
    free(zs);
    free(dy);
    free(dx);
    free(dz);
    return sq;
}

void pr_reference_train_delayed(const pr_model *m, int steps, int delay, float *W, float *b,
                                double *loss)
{
    size_t L = (size_t)m->layers, h = (size_t)m->hidden, N = (size_t)m->batch;
    /* pr_reference_bytes counts these */
    float *x = pp_xcalloc(N * h, sizeof(float), "the reference's batch");
    float *t = pp_xcalloc(N * h, sizeof(float), "the reference's targets");
    float *gW = pp_xcalloc(L * h * h, sizeof(float), "the reference's weight gradients");
    float *gb = pp_xcalloc(L * h, sizeof(float), "the reference's bias gradients");
    /* delay 1: the gradient is taken at the previous step's weights, kept here */
    float *oldW = delay ? pp_xcalloc(L * h * h, sizeof(float), "the reference's old weights") : NULL;
    float *oldb = delay ? pp_xcalloc(L * h, sizeof(float), "the reference's old biases") : NULL;
    float **Wl = pp_xcalloc(L * 4, sizeof(float *), "the reference's layer table");
    float **bl = Wl + L, **dW = bl + L, **db = dW + L;
    float lr = (float)m->lr;
    if (delay) {
        memcpy(oldW, W, L * h * h * sizeof(float)); /* W^{-1} = W^0 */
        memcpy(oldb, b, L * h * sizeof(float));
    }
    for (size_t l = 0; l < L; l++) {
        Wl[l] = (delay ? oldW : W) + l * h * h;
        bl[l] = (delay ? oldb : b) + l * h;
        dW[l] = gW + l * h * h;
        db[l] = gb + l * h;
    }
    for (int k = 0; k < steps; k++) {
        pr_make_batch(m, k, 0, (int)N, x, t);
        loss[k] = pr_reference_grad(m, Wl, bl, x, t, (int)N, dW, db) / (2.0 * (double)N);
        if (delay) {
            memcpy(oldW, W, L * h * h * sizeof(float));
            memcpy(oldb, b, L * h * sizeof(float));
        }
        for (size_t i = 0; i < L * h * h; i++)
            W[i] = pp_sgd(W[i], gW[i], lr);
        for (size_t i = 0; i < L * h; i++)
            b[i] = pp_sgd(b[i], gb[i], lr);
    }
    free(x);
    free(t);
    free(gW);
    free(gb);
    free(oldW);
    free(oldb);
    free(Wl);
}

double pr_reference_grad_bytes(const pr_model *m, int rows)
{
    return (2.0 * m->layers + 4) * rows * m->hidden * sizeof(float);
}

void pr_reference_train(const pr_model *m, int steps, float *W, float *b, double *loss)
{
    pr_reference_train_delayed(m, steps, 0, W, b, loss);
}

void pr_mlp_unpack(const pr_model *m, const float *params, float *W, float *b)
{
    size_t h = (size_t)m->hidden;
    for (int l = 0; l < m->layers; l++) {
        const float *P = params + m->param_off[l];
        memcpy(W + (size_t)l * h * h, P, h * h * sizeof(float));
        memcpy(b + (size_t)l * h, P + h * h, h * sizeof(float));
    }
}
