/*
 * models.c — the models pprun trains, by the plan's model.kind, and the
 * layout every part of a run shares: each layer's parameter block, in
 * model order (docs/models.md says how a model plugs in).
 */
#include <stdlib.h>
#include <string.h>

#include "layer.h"
#include "pprun.h"

static const pr_model_ops *const models[] = {&pr_model_mlp, &pr_model_gpt};

const pr_model_ops *pr_model_ops_named(const char *kind)
{
    for (size_t i = 0; i < sizeof models / sizeof *models; i++)
        if (strcmp(models[i]->name, kind) == 0)
            return models[i];
    return NULL;
}

int pr_model_build(pr_model *m, const char *kind)
{
    const pr_model_ops *ops = pr_model_ops_named(kind);
    if (!ops)
        return 1;
    m->ops = ops;
    free(m->param_off);
    m->param_off = pp_xcalloc((size_t)m->layers + 1, sizeof(size_t), "the parameter layout");
    for (int l = 0; l < m->layers; l++)
        m->param_off[l + 1] = m->param_off[l] + ops->kind(m, l)->params(m, l);
    return 0;
}

size_t pr_layer_param_count(const pr_model *m, int layer)
{
    return m->param_off[layer + 1] - m->param_off[layer];
}
