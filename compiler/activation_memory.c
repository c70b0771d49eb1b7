/*
 * activation_memory.c — the one definition of what activation memory a
 * device holds, shared by the verifier (memory.limit), the simulator (peak
 * memory in every view: timeline, --stats, plan JSON, --compare, auto) and
 * pprun's replay (the measured peak).  docs/recompute.md states the rule:
 *
 *   - F(s, m) takes one activation set of stage s, or only its input
 *     (mem->input_frac of a set) when stage s recomputes;
 *   - R(s, m) brings a recomputed set back to a full one;
 *   - the set is released by B(s, m), or by W(s, m) when the backward is
 *     split.
 *
 * Memory held = (full sets + input_frac * kept inputs) * act_size, in the
 * unit of memory.activation; a device's peak memory is its maximum over
 * the device's list.  The counts stay integers so that the same list gives
 * the same number whichever pass walks it.
 *
 * With layers (docs/costs.md) sizes are per stage: a set of stage s is
 * stage_act[s], a kept input stage_input[s], and the device holds its
 * static memory (weights, gradients, optimizer state) from the start:
 * memory held = static + the sizes of what it holds, added and taken in
 * list order, so the same list still gives the same number in every pass.
 *
 * Plan version 2 (overlap): a recv posted ahead of its consumer (a compute
 * op between its post and its wait) holds its buffer from its post until
 * its wait (pp_mem_posted_deltas), on top of the sets; at the wait the
 * consumer takes it.  One posted in its consumer's gap is the version-1
 * place: its buffer goes straight to the consumer, as there.
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

static bool per_stage(const pp_verify_opts *mem) { return mem && mem->stage_act; }

pp_mem_state pp_mem_begin(const pp_verify_opts *mem, int d)
{
    pp_mem_state m = {0};
    if (per_stage(mem) && mem->static_mem && d >= 0 && d < mem->devices)
        m.base = mem->static_mem[d];
    return m;
}

void pp_mem_step(pp_mem_state *m, const pp_op *op, bool recomputes, bool split, const pp_verify_opts *mem)
{
    bool sized = per_stage(mem) && op->stage >= 0 && op->stage < mem->stages;
    double act = sized ? mem->stage_act[op->stage] : 0, in = sized ? mem->stage_input[op->stage] : 0;
    switch (op->kind) {
    case PP_OP_F:
        if (recomputes) {
            m->inputs++;
            m->act += in;
        } else {
            m->full++;
            m->act += act;
        }
        break;
    case PP_OP_R:
        m->inputs--;
        m->full++;
        m->act += act - in;
        break;
    case PP_OP_B:
        m->full -= !split;
        m->act -= split ? 0 : act;
        break;
    case PP_OP_W:
        m->full -= split;
        m->act -= split ? act : 0;
        break;
    default:
        break;
    }
}

double pp_mem_held(const pp_mem_state *m, const pp_verify_opts *mem)
{
    if (per_stage(mem))
        return m->base + m->act + m->posted;
    double act = mem && mem->act_size > 0 ? mem->act_size : 1, in = mem ? mem->input_frac : 0;
    return ((double)m->full + (double)m->inputs * in) * act + m->posted;
}

double pp_mem_recv_size(const pp_op *op, const pp_verify_opts *mem)
{
    if (op->kind != PP_OP_RECV || !mem)
        return 0;
    if (!per_stage(mem))
        return mem->input_frac * (mem->act_size > 0 ? mem->act_size : 1);
    int s = op->comm == PP_COMM_ACT ? op->stage + 1 : op->stage;
    return s >= 0 && s < mem->stages ? mem->stage_input[s] : 0;
}

void pp_mem_posted_deltas(const pp_device *dv, const pp_verify_opts *mem, double *delta)
{
    int n = dv->n;
    /* last[g]: the first op of the latest group g seen (ids 0 .. n - 1, as
     * lowering numbers them; others are looked for backwards) */
    int *last = pp_xcalloc((size_t)(n > 0 ? n : 1), sizeof *last, "the memory count");
    int *computes = pp_xcalloc((size_t)n + 1, sizeof *computes, "the memory count"); /* before op i */
    for (int i = 0; i < n; i++) {
        last[i] = -1;
        computes[i + 1] = computes[i] + pp_op_is_compute(dv->ops[i].kind);
    }
    for (int i = 0; i < n; i++) {
        const pp_op *op = &dv->ops[i];
        delta[i] = 0;
        if (pp_op_is_comm(op->kind) && op->group >= 0 && op->group < n &&
            !(i > 0 && pp_op_is_comm(dv->ops[i - 1].kind) && dv->ops[i - 1].group == op->group))
            last[op->group] = i;
        if (op->kind != PP_OP_WAIT)
            continue;
        int g = -1;
        if (op->group >= 0 && op->group < n)
            g = last[op->group];
        else {
            for (g = i - 1; g >= 0 && !(pp_op_is_comm(dv->ops[g].kind) && dv->ops[g].group == op->group); g--)
                ;
            while (g > 0 && pp_op_is_comm(dv->ops[g - 1].kind) && dv->ops[g - 1].group == op->group)
                g--;
        }
        if (g < 0 || computes[i] == computes[g]) /* posted in its consumer's gap: the version-1 place */
            continue;
        for (int q = g; q < i && pp_op_is_comm(dv->ops[q].kind) && dv->ops[q].group == op->group; q++) {
            double b = pp_mem_recv_size(&dv->ops[q], mem);
            delta[q] += b;
            delta[i] -= b;
        }
    }
    free(last);
    free(computes);
}

bool pp_mem_over(double held, double limit)
{
    return limit > 0 && held > limit * (1 + 1e-12);
}

void pp_plan_recomputing(const pp_plan *p, bool *out)
{
    memset(out, 0, (size_t)p->stages * sizeof *out);
    for (int d = 0; d < p->devices; d++)
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_op *op = &p->dev[d].ops[i];
            if (op->kind == PP_OP_R && op->stage >= 0 && op->stage < p->stages)
                out[op->stage] = true;
        }
}

pp_mem_peak pp_device_memory(const pp_plan *p, int d, const bool *recomputing, const pp_verify_opts *mem)
{
    pp_mem_peak r = {.over_at = -1};
    pp_mem_state m = pp_mem_begin(mem, d);
    double limit = mem ? mem->mem_limit : 0;
    r.peak = pp_mem_held(&m, mem);
    const pp_device *dv = &p->dev[d];
    double *posted = pp_xcalloc((size_t)(dv->n > 0 ? dv->n : 1), sizeof *posted, "the memory count");
    pp_mem_posted_deltas(dv, mem, posted);
    for (int i = 0; i < dv->n; i++) {
        const pp_op *op = &dv->ops[i];
        bool rec = op->stage >= 0 && op->stage < p->stages && recomputing && recomputing[op->stage];
        pp_mem_step(&m, op, rec, p->split_backward, mem);
        m.posted += posted[i];
        double held = pp_mem_held(&m, mem);
        if (held > r.peak)
            r.peak = held;
        if (m.full > r.peak_full)
            r.peak_full = m.full;
        if (r.over_at < 0 && pp_mem_over(held, limit)) {
            r.over_at = i;
            r.held_over = held;
        }
    }
    free(posted);
    return r;
}
