/*
 * mlp_layers.c — the reference MLP on the model seam (layer.h): one layer
 * kind, `z = x W + b; y = x + gelu(z)` (docs/model.md), its parameter
 * block W [H, H] then b [H], the stage-0 input and the MSE loss from the
 * counter-based generator, SGD.  GEMMs are the backend's; the element-wise
 * work is kernels/mlp_kernels.h's on the backend's device.
 */
#include <string.h>

#include "layer.h"
#include "mlp_kernels.h"
#include "pprun.h"

#define KERNELS(e) ((const pr_mlp_kernels *)(e)->kernels)

static size_t layer_params(const pr_model *m, int layer)
{
    size_t h = (size_t)m->hidden;
    return h * h + h;
}

static void layer_init(const pr_model *m, int layer, float *P)
{
    pr_init_layer(m, layer, P, P + (size_t)m->hidden * (size_t)m->hidden);
}

static size_t rows_by_hidden(const pr_model *m, int rows) { return (size_t)rows * (size_t)m->hidden; }
static size_t none(const pr_model *m, int rows) { return 0; }

/* act_b = z. */
static void layer_forward(const pr_layer_env *e, const float *P, const float *x, float *z,
                          float *act_w, float *y)
{
    int h = e->m->hidden, n = e->rows;
    e->be->gemm(e->c, PR_N, PR_N, n, h, h, x, h, P, h, 0.0f, z, h);
    KERNELS(e)->bias_gelu(e->c, x, P + (size_t)h * h, z, y, n, h);
}

/* grad_w = dz = dy gelu'(z); dx = dy + dz W^T. */
static void layer_backward_input(const pr_layer_env *e, const float *P, const float *x,
                                 const float *z, const float *act_w, const float *dy, float *dz,
                                 float *dx)
{
    int h = e->m->hidden, n = e->rows;
    KERNELS(e)->gelu_backward(e->c, dy, z, dz, dx, (size_t)n * h);
    if (dx)
        e->be->gemm(e->c, PR_N, PR_T, n, h, h, dz, h, P, h, 1.0f, dx, h);
}

/* dW += x^T dz; db += column sums of dz. */
static void layer_backward_weight(const pr_layer_env *e, const float *x, const float *act_w,
                                  const float *dz, float *G)
{
    int h = e->m->hidden, n = e->rows;
    e->be->gemm(e->c, PR_T, PR_N, h, h, n, x, h, dz, h, 1.0f, G, h);
    e->be->colsum(e->c, dz, n, h, G + (size_t)h * h);
}

static const pr_layer_kind mlp_layer = {
    .name = "layer",
    .params = layer_params,
    .init = layer_init,
    .act_b = rows_by_hidden,
    .act_w = none,
    .grad_w = rows_by_hidden,
    .forward = layer_forward,
    .backward_input = layer_backward_input,
    .backward_weight = layer_backward_weight,
};

static const pr_layer_kind *mlp_kind(const pr_model *m, int layer) { return &mlp_layer; }

static const void *mlp_kernels(int device)
{
    if (device == PR_DEVICE_HOST)
        return &pr_mlp_kernels_cpu;
#ifdef PPRUN_CUDA
    if (device == PR_DEVICE_CUDA)
        return &pr_mlp_kernels_cuda;
#endif
    return NULL;
}

static void mlp_input(const pr_layer_env *e, int row0, int rows, float *x)
{
    KERNELS(e)->make_batch(e->c, e->m->seed, row0, rows, e->m->hidden, x, NULL);
}

/* scratch = t; loss slot = sum (y - t)^2, dy = (y - t) / N (the global N). */
static void mlp_loss(const pr_layer_env *e, int row0, int rows, const float *y, float *t,
                     float *dy, int slot)
{
    KERNELS(e)->make_batch(e->c, e->m->seed, row0, rows, e->m->hidden, NULL, t);
    KERNELS(e)->mse(e->c, y, t, 1.0f / (float)e->m->batch, dy, (size_t)rows * e->m->hidden, slot);
}

static double mlp_loss_of(const pr_model *m, double sq) { return sq / (2.0 * m->batch); }

static void mlp_scratch(const pr_model *m, int rows, size_t *gemm_floats, int *max_cols)
{
    *gemm_floats = rows_by_hidden(m, rows);
    *max_cols = m->hidden;
}

static int mlp_opt_state(const pr_model *m) { return 0; }

static void mlp_sgd(const pr_layer_env *e, int layer, float *P, float *G, float *S, size_t lo,
                    size_t hi)
{
    e->be->sgd(e->c, P + lo, G + lo, (float)e->m->lr, hi - lo);
}

const pr_model_ops pr_model_mlp = {
    .name = "mlp",
    .kind = mlp_kind,
    .kernels = mlp_kernels,
    .scratch = mlp_scratch,
    .slot_floats = rows_by_hidden,
    .input = mlp_input,
    .loss_floats = rows_by_hidden,
    .loss = mlp_loss,
    .loss_of = mlp_loss_of,
    .opt_state = mlp_opt_state,
    .update = mlp_sgd,
    .check_fits = pr_check_fits,
    .check = pr_check_run,
    .dump_files = pr_dump_file_names,
    .dump_fill = pr_dump_fill,
    .dump_bytes = pr_dump_bytes,
};
