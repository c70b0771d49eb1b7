/*
 * gpt_layers.h — the transformer's parameter tensors (their names, shapes,
 * place in a layer's block, initialisation and weight decay), shared by its
 * layers (gpt_layers.c), its --check reference (gpt_reference.c) and its
 * --dump (gpt_dump.c).  docs/gpt.md, "The model in pprun".
 */
#ifndef PPRUN_GPT_LAYERS_H
#define PPRUN_GPT_LAYERS_H

#include <stdbool.h>
#include <stddef.h>

#include "pprun.h"

/* The model's layers in pprun: 0 the embedding, 1..blocks the blocks,
 * blocks + 1 the head (pr_model.layers = blocks + 2). */
enum pr_gpt_kind { PR_GPT_EMBEDDING, PR_GPT_BLOCK, PR_GPT_HEAD };
int pr_gpt_kind_of(const pr_model *m, int layer);

enum { PR_GPT_MAX_TENSORS = 12 };

typedef struct pr_gpt_tensor {
    const char *name; /* "wte", "attn.w", ...: DESIGN.md's names */
    size_t off;       /* in the layer's block */
    int rows, cols;   /* cols 0: a vector of rows */
    bool decay;       /* AdamW's weight decay applies */
    double sd;        /* initialisation: uniform of this standard deviation; 0: zeros; < 0: ones */
} pr_gpt_tensor;

/* The index of each tensor in its layer's list (pr_gpt_tensors' order). */
enum { PR_GPT_WTE, PR_GPT_WPE };
enum { PR_GPT_LN1W, PR_GPT_LN1B, PR_GPT_ATTNW, PR_GPT_ATTNB, PR_GPT_PROJW, PR_GPT_PROJB, PR_GPT_LN2W,
       PR_GPT_LN2B, PR_GPT_FCW, PR_GPT_FCB, PR_GPT_FCPROJW, PR_GPT_FCPROJB, PR_GPT_BLOCK_N };
enum { PR_GPT_LNFW, PR_GPT_LNFB, PR_GPT_HEADW };

/* The tensors of layer's block, in order; their count. */
int pr_gpt_tensors(const pr_model *m, int layer, pr_gpt_tensor *t);

/* The plan's blocks per stage (pr_model.layers, layers_per_stage) made
 * pprun's layers: the embedding joins the first stage, the head the last. */
void pr_gpt_layout(pr_model *m);

#endif
