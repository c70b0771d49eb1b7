/*
 * layer.h — the model seam (docs/models.md).  The replay (replay.c) knows
 * ops, buffers and transports; what a stage computes is its model's: a
 * table of layer kinds (forward, input-gradient backward, weight-gradient
 * backward, recompute, parameter and activation layout) and the model's
 * own entries (the stage-0 input, the loss, the optimizer's state).  Layer
 * code computes only through the backend's primitives (backend.h: GEMM,
 * column sums, the optimizer step) and the model's own element-wise
 * kernels, which the model offers per kind of device (kernels()).
 *
 * Buffers: a layer's parameters and gradients are one block each (its own
 * layout inside); the replay carves every block of a device out of one
 * allocation with its activation pool.  Activations a layer keeps are
 * whole buffers from the pool, of the sizes its kind declares:
 *   input   the layer's input, kept from F until its weight gradient;
 *   act_b   floats written by F, read by B (released at B);
 *   act_w   floats written by F, read by B and W (released at W);
 *   grad_w  floats written by B, read by W (released at W).
 * With recompute, F keeps only the stage's input and R runs the same
 * forward again (bitwise the same buffers).  Every inter-stage tensor (a
 * stage's input, output and their gradients) is slot_floats.
 *
 * C and CUDA both include this header: keep it plain C.
 */
#ifndef PPRUN_LAYER_H
#define PPRUN_LAYER_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pr_model pr_model;
struct pp_plan;
struct pp_diag;
struct pp_output;
struct pr_run_result;

/* What a layer kind's calls compute with: the device's backend context,
 * the model, the rows of a micro-batch and the model's kernel table for
 * this backend's device (NULL in the dry run, which computes nothing). */
typedef struct pr_layer_env {
    const pr_backend *be;
    pr_bctx *c;
    const pr_model *m;
    int rows;
    const void *kernels;
    /* Scratch any call may use and nothing keeps (the largest of the
     * kinds' work()), in device memory. */
    float *work;
    /* The parameter the model's first and last layers share (tied_floats),
     * its gradient, on this device: inside the first layer's block where
     * the device holds it, else the replay's copy; NULL where neither. */
    float *tied_P, *tied_G;
    /* The model's data (ops->data) in device memory, on the devices of the
     * first and the last stage; NULL elsewhere or when it has none. */
    const unsigned char *data;
    /* For update: the updates a step makes and which one this is. */
    int updates_per_step, update_index;
} pr_layer_env;

typedef struct pr_layer_kind {
    const char *name;
    /* Floats of the layer's parameter block (its gradient block is the same
     * layout), and its initial values (host memory, docs/model.md). */
    size_t (*params)(const pr_model *m, int layer);
    void (*init)(const pr_model *m, int layer, float *params);
    /* Activation layout for a micro-batch of `rows` rows (0: none), and
     * the floats of its output (NULL: slot_floats; a stage's last layer's
     * output is always slot_floats, or the loss's input). */
    size_t (*out)(const pr_model *m, int rows);
    size_t (*act_b)(const pr_model *m, int rows);
    size_t (*act_w)(const pr_model *m, int rows);
    size_t (*grad_w)(const pr_model *m, int rows);
    /* y = layer(x); fills act_b, act_w. */
    void (*forward)(const pr_layer_env *e, const float *P, const float *x, float *act_b,
                    float *act_w, float *y);
    /* From dy: grad_w, and dx unless NULL (the model's first layer). */
    void (*backward_input)(const pr_layer_env *e, const float *P, const float *x,
                           const float *act_b, const float *act_w, const float *dy, float *grad_w,
                           float *dx);
    /* G += the parameters' gradient. */
    void (*backward_weight)(const pr_layer_env *e, const float *x, const float *act_w,
                            const float *grad_w, float *G);
    /* Rebuilds act_b and act_w (and y) from x; NULL: forward does. */
    void (*recompute)(const pr_layer_env *e, const float *P, const float *x, float *act_b,
                      float *act_w, float *y);
    /* Floats of env->work its calls use (NULL: none). */
    size_t (*work)(const pr_model *m, int rows);
} pr_layer_kind;

typedef struct pr_model_ops {
    const char *name;
    const pr_layer_kind *(*kind)(const pr_model *m, int layer);
    /* The model's element-wise kernels on a device (enum pr_device), or
     * NULL when it has none there. */
    const void *(*kernels)(int device);
    /* The backend's scratch (pr_backend_cfg): the largest activation
     * operand of a GEMM, the widest column sum. */
    void (*scratch)(const pr_model *m, int rows, size_t *gemm_floats, int *max_cols);
    /* Floats of every tensor between stages, for `rows` rows. */
    size_t (*slot_floats)(const pr_model *m, int rows);
    /* Stage 0's input: rows [row0, row0 + rows) of the current step's batch. */
    void (*input)(const pr_layer_env *e, int row0, int rows, float *x);
    /* The last stage: the loss of y (sum into the backend's loss slot
     * `slot`, docs/model.md) and its gradient dy, with loss_floats of
     * scratch. */
    size_t (*loss_floats)(const pr_model *m, int rows);
    void (*loss)(const pr_layer_env *e, int row0, int rows, const float *y, float *scratch,
                 float *dy, int slot);
    /* The step's loss from the sum of the micro-batches' slots. */
    double (*loss_of)(const pr_model *m, double slot_sum);
    /* Optimizer state floats per parameter float (SGD: 0, AdamW: 2), and
     * the update of floats [lo, hi) of layer `layer`'s block: P, G (zeroed
     * after) the block's start, S opt_state arrays of hi - lo floats, one
     * after the other (a whole block: lo 0; ZeRO-1 updates a replica's
     * part, data_parallel.c). */
    int (*opt_state)(const pr_model *m);
    void (*update)(const pr_layer_env *e, int layer, float *P, float *G, float *S, size_t lo,
                   size_t hi);
    /* Optional.  tied_floats: the floats at the start of the first layer's
     * block that the last layer reads too (env->tied_P: a tied embedding);
     * when another device holds the first layer, the last layer's device
     * keeps a copy, initialised and updated as layer 0's first floats, and
     * the plan's allreduce sums the two gradients before the update.
     * data: bytes every device of the first or the last stage needs in
     * its memory (env->data), NULL for none. */
    size_t (*tied_floats)(const pr_model *m);
    const unsigned char *(*data)(const pr_model *m, size_t *bytes);
    /* pprun --check (in the model's own files): whether its reference of
     * `steps` steps fits in the host's memory (else an error, with the
     * numbers), and the comparison of the run's trained parameters with it
     * (the "check: ..." line; 0 within tolerance; own: the layers this
     * process trained, NULL all; with_loss: it computed the loss too). */
    bool (*check_fits)(const struct pp_plan *p, const pr_model *m, int steps, struct pp_diag *d);
    int (*check)(const struct pp_plan *p, const pr_model *m, int steps, struct pr_run_result *r,
                 double tolerance, const bool *own, bool with_loss);
    /* pprun --dump DIR: its files (malloc'd, NULL-terminated; pr_names_free),
     * the pp_fill_dir_fn that writes them from a pr_run_record, and the
     * bytes that writer allocates (the run's memory check counts them). */
    char **(*dump_files)(const pr_model *m);
    int (*dump_fill)(struct pp_output *dir, void *record);
    double (*dump_bytes)(const pr_model *m);
} pr_model_ops;

/* models.c: the model named `kind` ("mlp"), or NULL. */
const pr_model_ops *pr_model_ops_named(const char *kind);
/* Fills m->ops and m->param_off for m->kind's layers; 1 on an unknown kind. */
int pr_model_build(pr_model *m, const char *kind);
/* Floats of layer l's parameter block (m->param_off's difference). */
size_t pr_layer_param_count(const pr_model *m, int layer);

/* The MLP (mlp_layers.c, docs/model.md) and the transformer
 * (gpt_layers.c, docs/gpt.md). */
extern const pr_model_ops pr_model_mlp;
extern const pr_model_ops pr_model_gpt;

#ifdef __cplusplus
}
#endif

#endif
