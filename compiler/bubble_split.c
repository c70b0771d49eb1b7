/*
 * bubble_split.c — where a timeline's bubble comes from (docs/timeline.md,
 * "The bubble, split"), computed once for every view that prints it
 * (--stats, the text timeline, the pictures; predicted or measured alike).
 *
 * The bubble is 1 - sum(busy) / (D * makespan).  Against the busiest
 * device (busy_max) it splits into two parts that add up to it:
 *
 *   fill/drain = (makespan - busy_max) / makespan
 *       the idle even the busiest device has: the pipeline's fill and
 *       drain and the schedule's own gaps, the whole bubble of a pipeline
 *       whose every device worked as long as the busiest;
 *   imbalance  = sum_d (busy_max - busy_d) / (D * makespan)
 *       the idle the other devices have on top, because they carry less
 *       work than the busiest: 0 when every device is as busy.
 *
 * The bottleneck is the busiest device, named by its stage with the most
 * compute time per micro-batch; none when every device is as busy (within
 * a relative 1e-9, so that a balanced prediction names no stage).
 */
#include <math.h>
#include <stdlib.h>

#include "pp.h"

void pp_bubble_split_of(const pp_plan *p, const pp_sim *sim, pp_bubble_split *out)
{
    *out = (pp_bubble_split){0, 0, -1, -1, 0};
    if (!p || !sim || !sim->busy || p->devices < 1 || !(sim->makespan > 0))
        return;
    int D = p->devices, top = 0;
    double sum = 0, least = sim->busy[0];
    for (int d = 0; d < D; d++) {
        sum += sim->busy[d];
        if (sim->busy[d] > sim->busy[top])
            top = d;
        if (sim->busy[d] < least)
            least = sim->busy[d];
    }
    double most = sim->busy[top];
    out->fill_drain = (sim->makespan - most) / sim->makespan;
    out->imbalance = (D * most - sum) / (D * sim->makespan);
    if (!(most > 0) || most - least <= 1e-9 * most || !sim->start || !sim->end || !p->dev)
        return;
    out->device = top;
    /* the busiest device's stages: compute time of each, per micro-batch */
    int M = p->microbatches > 0 ? p->microbatches : 1;
    double *t = pp_xcalloc((size_t)(p->stages > 0 ? p->stages : 1), sizeof *t, "the bubble's split");
    for (int i = 0; i < p->dev[top].n; i++) {
        const pp_op *op = &p->dev[top].ops[i];
        double a = sim->start[top][i], b = sim->end[top][i];
        if (pp_op_is_compute(op->kind) && op->stage >= 0 && op->stage < p->stages && isfinite(a) && isfinite(b))
            t[op->stage] += b - a;
    }
    for (int s = 0; s < p->stages; s++)
        if (p->placement && p->placement[s] == top && (out->stage < 0 || t[s] / M > out->stage_time)) {
            out->stage = s;
            out->stage_time = t[s] / M;
        }
    free(t);
}
