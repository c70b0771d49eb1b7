/*
 * simulate.c — predicts when every op of a (verified) plan starts and ends
 * on the cost model, and from that the makespan, the bubble and the peak
 * number of activations each device holds.
 *
 * Timing model (docs/verifier.md): a device runs its list in order; F(s)
 * takes stage_F[s], so does a recomputed forward R(s), B takes stage_B[s] (+ stage_W[s] when the backward is
 * not split), W takes stage_W[s], update and flush take no time.  A group
 * of comm ops is posted when the device reaches it.  Sends are buffered:
 * the runtimes post them on a communication stream (NCCL) or into a queue
 * (threads), so a send never holds its device up.  A recv ends cost.comm
 * after both it and its send are posted; the device leaves the group when
 * its last recv ends.  (Deadlock freedom is still proven by the verifier
 * under the stricter rendezvous rule, where a send waits for its recv.)  The replay itself is walk.c's: with
 * no contention for anything but the devices, replaying in rendezvous order
 * computes every time exactly once, so this is O(ops).
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

int pp_lower_verify_simulate(pp_plan *p, const pp_spec *s, bool with_limit, pp_sim *sim, pp_diag *d)
{
    pp_verify_opts vo = pp_verify_opts_of(s, with_limit);
    if (pp_lower_costed(p, &s->cost, d) || pp_verify(p, &vo, d))
        return 1;
    return pp_simulate(p, &s->cost, sim, d);
}

void pp_sim_free(pp_sim *s, int devices)
{
    (void)devices;
    if (s->start)
        free(s->start[0]);
    if (s->end)
        free(s->end[0]);
    free(s->start);
    free(s->end);
    free(s->busy);
    free(s->peak_act);
    free(s->peak_mem);
    memset(s, 0, sizeof *s);
}

int pp_simulate(const pp_plan *p, const pp_cost *c, pp_sim *out, pp_diag *dg)
{
    memset(out, 0, sizeof *out);
    pp_walk w;
    if (p->stages <= 0 || !p->placement || pp_walk_init(&w, p)) {
        pp_error(dg, "simulate: the plan has no valid shape");
        return 1;
    }
    int D = p->devices;
    size_t nt = (size_t)(w.total ? w.total : 1);
    double *dur = calloc(nt, sizeof *dur);
    double *start = calloc(nt, sizeof *start), *end = calloc(nt, sizeof *end);
    out->start = calloc((size_t)D, sizeof *out->start);
    out->end = calloc((size_t)D, sizeof *out->end);
    out->busy = calloc((size_t)D, sizeof *out->busy);
    out->peak_act = calloc((size_t)D, sizeof *out->peak_act);
    out->peak_mem = calloc((size_t)D, sizeof *out->peak_mem);
    bool *recomputed = calloc((size_t)p->stages, sizeof *recomputed);
    if (!dur || !start || !end || !out->start || !out->end || !out->busy || !out->peak_act || !out->peak_mem ||
        !recomputed) {
        pp_out_of_memory();
    }
    out->start[0] = start;
    out->end[0] = end;
    int rc = 0;
    char buf[96];
    /* A stage with an R drops its activations after F, keeping only its
     * input (recompute_input of them), and holds them fully from R on. */
    for (int d = 0; d < D; d++)
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_op *op = &p->dev[d].ops[i];
            if (op->kind == PP_OP_R && op->stage >= 0 && op->stage < p->stages)
                recomputed[op->stage] = true;
        }
    double input = c->recompute_input;
    for (int d = 0; d < D; d++) {
        const pp_device *dv = &p->dev[d];
        out->start[d] = start + w.base[d];
        out->end[d] = end + w.base[d];
        int live = 0, peak = 0, inputs = 0;
        double peak_mem = 0;
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            if (!pp_op_is_compute(op->kind))
                continue;
            int s = op->stage;
            if (s < 0 || s >= p->stages) {
                pp_error(dg, "simulate: device %d, op %d (%s): stage %d is not a stage", d, i,
                         pp_op_format(op, buf, sizeof buf), s);
                rc = 1;
                continue;
            }
            double t = pp_op_cost(c, op->kind, s, p->split_backward);
            if (op->kind == PP_OP_F) {
                if (recomputed[s])
                    inputs++;
                else
                    live++;
            } else if (op->kind == PP_OP_R) {
                inputs--;
                live++;
            } else if (op->kind == PP_OP_B) {
                live -= !p->split_backward;
            } else {
                live -= p->split_backward;
            }
            if (live > peak)
                peak = live;
            if (live + inputs * input > peak_mem)
                peak_mem = live + inputs * input;
            dur[w.base[d] + i] = t;
            out->busy[d] += t;
        }
        out->peak_act[d] = peak;
        out->peak_mem[d] = peak_mem;
    }
    if (rc == 0 && pp_walk_run_eager(&w, p, dur, c->comm, start, end) > 0) {
        pp_walk_report(&w, p, dg, "simulate: deadlock");
        rc = 1;
    }
    if (rc == 0) {
        double busy = 0;
        for (int d = 0; d < D; d++) {
            int n = p->dev[d].n;
            if (n > 0 && out->end[d][n - 1] > out->makespan)
                out->makespan = out->end[d][n - 1];
            busy += out->busy[d];
        }
        out->bubble = out->makespan > 0 ? 1 - busy / (D * out->makespan) : 0;
    }
    free(dur);
    free(recomputed);
    pp_walk_free(&w);
    if (rc)
        pp_sim_free(out, D);
    return rc;
}
