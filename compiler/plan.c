/*
 * plan.c — the per-device op lists every pass after the policy works on,
 * and the words a plan is written in beyond its ops: the names of its
 * weight semantics (pipeline.async), shared by the verifier, the emitter
 * and pprun's loader.
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

int pp_plan_init(pp_plan *p, const char *schedule, int devices, int stages, int microbatches,
                 const int *placement)
{
    memset(p, 0, sizeof *p);
    snprintf(p->schedule, sizeof p->schedule, "%s", schedule);
    p->devices = devices;
    p->stages = stages;
    p->microbatches = microbatches;
    p->dev = calloc((size_t)devices, sizeof *p->dev);
    p->placement = malloc((size_t)stages * sizeof *p->placement);
    if (!p->dev || !p->placement) {
        pp_plan_free(p);
        return 1;
    }
    memcpy(p->placement, placement, (size_t)stages * sizeof *p->placement);
    return 0;
}

void pp_plan_free(pp_plan *p)
{
    if (p->dev)
        for (int d = 0; d < p->devices; d++)
            free(p->dev[d].ops);
    free(p->dev);
    free(p->placement);
    p->dev = NULL;
    p->placement = NULL;
}

void pp_plan_reserve(pp_plan *p, int device, int n)
{
    pp_device *dv = &p->dev[device];
    if (dv->cap >= n)
        return;
    pp_op *ops = realloc(dv->ops, (size_t)n * sizeof *ops);
    if (!ops)
        pp_out_of_memory();
    dv->ops = ops;
    dv->cap = n;
}

pp_op *pp_plan_push(pp_plan *p, int device, pp_op op)
{
    pp_device *dv = &p->dev[device];
    if (dv->n == dv->cap)
        pp_plan_reserve(p, device, dv->cap ? dv->cap * 2 : 64);
    dv->ops[dv->n] = op;
    return &dv->ops[dv->n++];
}

long pp_plan_total_ops(const pp_plan *p)
{
    long n = 0;
    for (int d = 0; d < p->devices; d++)
        n += p->dev[d].n;
    return n;
}

const char *pp_async_name(int async)
{
    switch (async) {
    case PP_ASYNC_PIPEDREAM: return "pipedream";
    case PP_ASYNC_2BW: return "2bw";
    default: return "none";
    }
}

int pp_async_from_name(const char *name)
{
    for (int a = PP_ASYNC_NONE; a <= PP_ASYNC_2BW; a++)
        if (strcmp(name, pp_async_name(a)) == 0)
            return a;
    return -1;
}
