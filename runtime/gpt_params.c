/*
 * gpt_params.c — the transformer's parameter tensors (gpt_layers.h): their
 * names, shapes and place in each layer's block, initialisation and weight
 * decay, in one table that the layers, the reference and --dump read; and
 * pprun's layers made from the plan's blocks per stage.
 */
#include <math.h>
#include <stdio.h>

#include "gpt_layers.h"

int pr_gpt_kind_of(const pr_model *m, int layer)
{
    return layer == 0 ? PR_GPT_EMBEDDING : layer == m->layers - 1 ? PR_GPT_HEAD : PR_GPT_BLOCK;
}

int pr_gpt_tensors(const pr_model *m, int layer, pr_gpt_tensor *t)
{
    long H = m->hidden, F = m->gpt.ffn, V = m->gpt.vocab, T = m->gpt.seq;
    int n = 0;
    size_t off = 0;
#define ADD(nm, r, c, dec, sd)                                                              \
    do {                                                                                    \
        t[n] = (pr_gpt_tensor){nm, off, (int)(r), (int)(c), dec, sd};                       \
        off += (size_t)(r) * (size_t)((c) > 0 ? (c) : 1);                                   \
        n++;                                                                                \
    } while (0)
    double resid = 0.02 / sqrt(2.0 * m->gpt.blocks); /* GPT-2's scaled residual projections */
    switch (pr_gpt_kind_of(m, layer)) {
    case PR_GPT_EMBEDDING:
        ADD("wte", V, H, true, 0.02);
        ADD("wpe", T, H, true, 0.01);
        break;
    case PR_GPT_BLOCK:
        ADD("ln1.w", H, 0, false, -1);
        ADD("ln1.b", H, 0, false, 0);
        ADD("attn.w", H, 3 * H, true, 0.02);
        ADD("attn.b", 3 * H, 0, false, 0);
        ADD("proj.w", H, H, true, resid);
        ADD("proj.b", H, 0, false, 0);
        ADD("ln2.w", H, 0, false, -1);
        ADD("ln2.b", H, 0, false, 0);
        ADD("fc.w", H, F, true, 0.02);
        ADD("fc.b", F, 0, false, 0);
        ADD("fcproj.w", F, H, true, resid);
        ADD("fcproj.b", H, 0, false, 0);
        break;
    default:
        ADD("lnf.w", H, 0, false, -1);
        ADD("lnf.b", H, 0, false, 0);
        if (!m->gpt.tie)
            ADD("head.w", H, V, true, 0.02);
    }
#undef ADD
    return n;
}


void pr_gpt_layout(pr_model *m)
{
    m->gpt.blocks = m->layers;
    m->layers = m->gpt.blocks + 2;
    /* a mirrored plan's second pipeline, stages H.., is a copy of the first */
    int H = m->mirrored ? m->stages / 2 : m->stages;
    for (int s = 0; s < m->stages; s += H) {
        m->layers_per_stage[s]++;
        m->layers_per_stage[s + H - 1]++;
    }
    for (int s = 0, first = 0; s < m->stages; s++) {
        m->first_layer[s] = s < H ? first : m->first_layer[s - H];
        first += m->layers_per_stage[s];
    }
}
