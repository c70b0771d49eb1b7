/*
 * gpt_costs.c — what each layer of a model gpt costs per micro-batch, from
 * its dimensions alone (docs/gpt.md, "Costs", has every formula and its source):
 * the matmul FLOPs of the forward, of the input gradient and of the weight
 * gradient (Narayanan et al. 2021, split as in Qi et al. 2023), the
 * parameters it holds, the activations it keeps for its backward (Korthikanti
 * et al. 2022 without dropout) in full and with recompute, and the bytes its
 * output sends.  A hardware description turns FLOPs into seconds; the
 * precision and the optimizer turn parameters into bytes.  A pure function of
 * its arguments: ppcc's cost model and the tests call the same code.
 */
#include <string.h>

#include "pp.h"

/* Bytes of one activation element: fp32 and tf32 keep fp32 tensors. */
static double element_bytes(int precision) { return precision == PP_BF16 ? 2 : 4; }

double pp_gpt_grad_element_bytes(int precision) { return element_bytes(precision); }

double pp_gpt_bytes_per_param(int precision, bool adamw)
{
    /* weights + gradients in the compute precision; bf16 adds fp32 master
     * weights; AdamW its two fp32 moments (ZeRO, Rajbhandari et al. 2020:
     * 2 + 2 + 12 = 16 bytes with Adam in mixed precision) */
    double state = adamw ? 8 : 0;
    return precision == PP_BF16 ? 2 + 2 + 4 + state : 4 + 4 + state;
}

double pp_gpt_state_bytes_per_param(int precision, bool adamw)
{
    return (precision == PP_BF16 ? 4 : 0) + (adamw ? 8 : 0);
}

void pp_gpt_layer_counts(const pp_gpt_shape *g, int precision, int kind, pp_gpt_counts *out)
{
    double b = g->batch / g->microbatches, s = g->seq, h = g->hidden, f = g->ffn, a = g->heads, V = g->vocab;
    double e = element_bytes(precision), tokens = b * s;
    memset(out, 0, sizeof *out);
    switch (kind) {
    case PP_GPT_EMBEDDING:
        /* a lookup and an add: no matmul FLOPs; the backward needs the token ids (int32) */
        out->params = out->params_held = V * h + s * h;
        out->act_bytes = out->act_input_bytes = 4 * tokens;
        out->out_bytes = tokens * h * e;
        break;
    case PP_GPT_BLOCK: {
        /* qkv 6bsh^2, q.k^T 2bs^2h, att.v 2bs^2h, proj 2bsh^2, fc 2bshf, fcproj 2bsfh */
        double linear = 8 * tokens * h * h + 4 * tokens * h * f, attention = 4 * tokens * s * h;
        out->flops_F = linear + attention;
        out->flops_B = linear + 2 * attention; /* both operands of both attention matmuls */
        out->flops_W = linear;
        out->params = out->params_held = 4 * h * h + 2 * h * f + 9 * h + f;
        /* ln1 in, attn in, q k v, scores after softmax, proj in, ln2 in, fc in, gelu in, fcproj in */
        out->act_bytes = (8 * tokens * h + 2 * tokens * f + a * b * s * s) * e;
        out->act_input_bytes = tokens * h * e;
        out->out_bytes = tokens * h * e;
        break;
    }
    case PP_GPT_HEAD:
        out->flops_F = out->flops_B = out->flops_W = 2 * tokens * h * V;
        out->params = 2 * h + (g->tie ? 0 : h * V);
        out->params_held = 2 * h + h * V; /* tied: the last stage's copy of wte */
        /* lnf in and out; the probabilities for the loss's backward, in fp32 */
        out->act_bytes = 2 * tokens * h * e + 4 * tokens * V;
        out->act_input_bytes = tokens * h * e;
        break;
    }
}

double pp_gpt_step_flops(const pp_gpt_shape *g)
{
    pp_gpt_shape whole = *g;
    whole.microbatches = 1; /* the counts are linear in the sequences */
    double total = 0;
    for (int kind = PP_GPT_EMBEDDING; kind <= PP_GPT_HEAD; kind++) {
        pp_gpt_counts c;
        pp_gpt_layer_counts(&whole, PP_FP32, kind, &c);
        total += (c.flops_F + c.flops_B + c.flops_W) * (kind == PP_GPT_BLOCK ? g->layers : 1);
    }
    return total;
}

int pp_gpt_layers(const pp_gpt_shape *g, int precision, bool adamw, const pp_hardware *hw, pp_layer *out, int n)
{
    int count = (int)g->layers + 2;
    if (n < count)
        return -1;
    double per_param = pp_gpt_bytes_per_param(precision, adamw);
    static const char *const names[] = {"embedding", "block", "head"};
    for (int i = 0; i < count; i++) {
        int kind = i == 0 ? PP_GPT_EMBEDDING : i == count - 1 ? PP_GPT_HEAD : PP_GPT_BLOCK;
        pp_gpt_counts c;
        pp_gpt_layer_counts(g, precision, kind, &c);
        pp_layer *l = &out[i];
        memset(l, 0, sizeof *l);
        snprintf(l->kind, sizeof l->kind, "%s", names[kind]);
        if (hw) {
            l->F = pp_compute_time(hw, precision, c.flops_F);
            l->B = pp_compute_time(hw, precision, c.flops_B);
            l->W = pp_compute_time(hw, precision, c.flops_W);
        }
        l->act = c.act_bytes;
        l->act_input = c.act_input_bytes;
        l->weights = c.params_held * per_param;
        l->opt_state = c.params_held * pp_gpt_state_bytes_per_param(precision, adamw);
        l->grads = c.params_held * pp_gpt_grad_element_bytes(precision);
        l->shared = (c.params_held - c.params) * per_param; /* a tied head's copy of wte */
        l->out = c.out_bytes;
    }
    return count;
}
