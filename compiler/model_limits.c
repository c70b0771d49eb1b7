/*
 * model_limits.c — the products of a model gpt's dimensions that pprun's
 * arrays must hold (pp.h: PP_MAX_GPT_ARRAY, PP_MAX_GPT_PARAMS), checked
 * in one place for ppcc (spec_model.c, at the key the user can change)
 * and pprun's loader (at the plan's model), so that a plan ppcc writes is
 * a plan pprun loads.  docs/gpt.md, "Limits", lists them.
 */
#include "pp.h"

double pp_gpt_parameters(const pp_gpt_shape *g)
{
    double H = g->hidden, F = g->ffn;
    /* a block: ln1 and ln2 (4H), attn (3H^2 + 3H), proj (H^2 + H), fc (HF + F), fcproj (FH + H) */
    double block = 4 * H * H + 2 * H * F + 9 * H + F;
    return g->vocab * H + g->seq * H + g->layers * block + 2 * H + (g->tie ? 0 : H * g->vocab);
}

/* One array: name (its shape in words), its factors, the settings to blame. */
static bool crosses(pp_gpt_limit *out, const char *name, int nf, const double *f, int nd, const enum pp_gpt_dim *d)
{
    double n = 1;
    for (int i = 0; i < nf; i++)
        n *= f[i];
    if (n <= (double)PP_MAX_GPT_ARRAY)
        return false;
    int len = snprintf(out->msg, sizeof out->msg, "%s = ", name);
    for (int i = 0; i < nf && len > 0 && (size_t)len < sizeof out->msg; i++)
        len += snprintf(out->msg + len, sizeof out->msg - (size_t)len, "%s%.0f", i ? " x " : "", f[i]);
    if (len > 0 && (size_t)len < sizeof out->msg)
        snprintf(out->msg + len, sizeof out->msg - (size_t)len,
                 " = %.0f elements, more than one array of pprun holds (%ld)", n, PP_MAX_GPT_ARRAY);
    out->ndims = nd;
    for (int i = 0; i < nd; i++)
        out->dims[i] = d[i];
    return true;
}

#define DIMS(...) (int)(sizeof((enum pp_gpt_dim[]){__VA_ARGS__}) / sizeof(enum pp_gpt_dim)), (enum pp_gpt_dim[]){__VA_ARGS__}
#define FACTORS(...) (int)(sizeof((double[]){__VA_ARGS__}) / sizeof(double)), (double[]){__VA_ARGS__}

bool pp_gpt_limit_crossed(const pp_gpt_shape *g, pp_gpt_limit *out)
{
    double H = g->hidden, F = g->ffn, V = g->vocab, T = g->seq, rows = g->batch / g->microbatches;
    /* the parameters: head.w (untied) has wte's shape transposed */
    if (crosses(out, "wte (vocab x hidden)", FACTORS(V, H), DIMS(PP_GPT_VOCAB, PP_GPT_HIDDEN)) ||
        crosses(out, "wpe (seq x hidden)", FACTORS(T, H), DIMS(PP_GPT_SEQ, PP_GPT_HIDDEN)) ||
        crosses(out, "attn.w (hidden x 3 hidden)", FACTORS(H, 3 * H), DIMS(PP_GPT_HIDDEN)) ||
        crosses(out, "fc.w (hidden x ffn)", FACTORS(H, F), DIMS(PP_GPT_FFN, PP_GPT_HIDDEN)))
        return true;
    double params = pp_gpt_parameters(g);
    if (params > (double)PP_MAX_GPT_PARAMS) {
        snprintf(out->msg, sizeof out->msg, "%.0f parameters in all, more than pprun counts (%ld)", params,
                 PP_MAX_GPT_PARAMS);
        out->ndims = 4;
        memcpy(out->dims, (enum pp_gpt_dim[]){PP_GPT_LAYERS, PP_GPT_HIDDEN, PP_GPT_FFN, PP_GPT_VOCAB},
               sizeof out->dims);
        return true;
    }
    /* one micro-batch's activations: its widest, and the attention scores */
    if (V >= 3 * H && V >= F) {
        if (crosses(out, "a micro-batch's logits (batch / microbatches x seq x vocab)", FACTORS(rows, T, V),
                    DIMS(PP_GPT_BATCH, PP_GPT_SEQ, PP_GPT_VOCAB)))
            return true;
    } else if (F >= 3 * H) {
        if (crosses(out, "a micro-batch's fc output (batch / microbatches x seq x ffn)", FACTORS(rows, T, F),
                    DIMS(PP_GPT_BATCH, PP_GPT_SEQ, PP_GPT_FFN)))
            return true;
    } else if (crosses(out, "a micro-batch's q, k, v (batch / microbatches x seq x 3 hidden)", FACTORS(rows, T, 3 * H),
                       DIMS(PP_GPT_BATCH, PP_GPT_SEQ, PP_GPT_HIDDEN))) {
        return true;
    }
    if (crosses(out, "a micro-batch's attention scores (batch / microbatches x heads x seq x seq)",
                FACTORS(rows, g->heads, T, T), DIMS(PP_GPT_SEQ, PP_GPT_BATCH, PP_GPT_HEADS)))
        return true;
    /* a step's tokens, [batch, seq + 1] (tokens.npy holds every step's) */
    return crosses(out, "a step's tokens (batch x (seq + 1))", FACTORS(g->batch, T + 1),
                   DIMS(PP_GPT_BATCH, PP_GPT_SEQ));
}
