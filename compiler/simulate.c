/*
 * simulate.c — predicts when every op of a (verified) plan starts and ends
 * on the cost model, and from that the makespan, the bubble and each
 * device's peak memory (activation_memory.c's accounting, in the memory
 * model's unit).
 *
 * Timing model (docs/verifier.md): a device runs its list in order; F(s)
 * takes stage_F[s], so does a recomputed forward R(s), B takes stage_B[s] (+ stage_W[s] when the backward is
 * not split), W takes stage_W[s], update and flush take no time.  A group
 * of comm ops is posted when the device reaches it.  Sends are buffered:
 * the runtimes post them on a communication stream (NCCL) or into a queue
 * (threads), so a send never holds its device up.  A transfer starts once
 * both its send and its recv are posted and its directed link is free (one
 * transfer at a time per link), and its recv ends cost.comm (plus, with a
 * hardware description, its link's latency + bytes / bandwidth:
 * pp_transfer_time) later; the device leaves a synchronous group when its
 * last recv ends, an asynchronous one (plan version 2) at once, and a wait
 * when its group's last recv has ended.  An allreduce begins when every member of its group
 * has posted it and ends cost.comm (plus, with a hardware description and
 * the group's bytes, pp_collective_time) later on all of them at once; a
 * reduction over replicas takes its device's data-parallel lane, one at a
 * time, and one posted ahead (plan version 2) holds its device only at its
 * wait.  (Deadlock freedom is still proven by the verifier
 * under the stricter rendezvous rule, where a send waits for its recv.)  The replay itself is walk.c's: with
 * no contention but the devices' and the links' (met in channel order),
 * replaying in rendezvous order computes every time exactly once, so this
 * is O(ops).
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

/* Ops of device d as walk.c counts them (its base[] lays out start/end). */
static size_t list_len(const pp_plan *p, int d)
{
    return p->dev[d].n > 0 && p->dev[d].ops ? (size_t)p->dev[d].n : 0;
}

void pp_sim_alloc(pp_sim *s, const pp_plan *p)
{
    memset(s, 0, sizeof *s);
    size_t D = p->devices > 0 ? (size_t)p->devices : 1, total = 0;
    for (int d = 0; d < p->devices; d++)
        total += list_len(p, d);
    s->start = pp_xcalloc(D, sizeof *s->start, "the timing of a plan");
    s->end = pp_xcalloc(D, sizeof *s->end, "the timing of a plan");
    s->start[0] = pp_xcalloc(total, sizeof **s->start, "the timing of a plan");
    s->end[0] = pp_xcalloc(total, sizeof **s->end, "the timing of a plan");
    for (int d = 1; d < p->devices; d++) {
        s->start[d] = s->start[d - 1] + list_len(p, d - 1);
        s->end[d] = s->end[d - 1] + list_len(p, d - 1);
    }
    s->busy = pp_xcalloc(D, sizeof *s->busy, "the timing of a plan");
    s->peak_act = pp_xcalloc(D, sizeof *s->peak_act, "the timing of a plan");
    s->peak_mem = pp_xcalloc(D, sizeof *s->peak_mem, "the timing of a plan");
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
    free(s->zero_saved);
    memset(s, 0, sizeof *s);
}

double pp_bubble(const double *busy, int devices, double makespan)
{
    double sum = 0;
    for (int d = 0; d < devices; d++)
        sum += busy[d];
    return makespan > 0 ? 1 - sum / (devices * makespan) : 0;
}

void pp_sim_coll_times(const pp_plan *p, pp_sim *s)
{
    s->coll_time = s->dp_time = 0;
    for (int d = 0; d < p->devices; d++) /* each collective once: on its first member */
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_coll *g = pp_plan_op_coll(p, &p->dev[d].ops[i]);
            if (g && g->nranks > 0 && g->ranks[0] == d) {
                s->coll_time += s->end[d][i] - s->start[d][i];
                if (pp_coll_over_replicas(g))
                    s->dp_time += s->end[d][i] - s->start[d][i];
            }
        }
}

int pp_simulate(const pp_plan *p, const pp_cost *c, const pp_verify_opts *mem, pp_sim *out, pp_diag *dg)
{
    memset(out, 0, sizeof *out);
    pp_walk w;
    if (p->stages <= 0 || !p->placement || pp_walk_init(&w, p)) {
        pp_error(dg, "simulate: the plan has no valid shape");
        return 1;
    }
    int D = p->devices;
    size_t nt = (size_t)(w.total ? w.total : 1);
    double *dur = pp_xcalloc(nt, sizeof *dur, "the simulation");
    pp_sim_alloc(out, p);
    bool *recomputing = pp_xcalloc((size_t)p->stages, sizeof *recomputing, "the simulation");
    pp_plan_recomputing(p, recomputing);
    int rc = 0;
    char buf[96];
    for (int d = 0; d < D; d++) {
        const pp_device *dv = &p->dev[d];
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            if (op->kind == PP_OP_RECV && op->stage >= 0 && op->stage < p->stages)
                dur[w.base[d] + i] = pp_transfer_time(c, op, d); /* on top of cost.comm */
            if (op->kind == PP_OP_ALLREDUCE)
                dur[w.base[d] + i] = pp_collective_time(c, p, op); /* the same */
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
            dur[w.base[d] + i] = t;
            out->busy[d] += t;
        }
        pp_mem_peak m = pp_device_memory(p, d, recomputing, mem);
        out->peak_act[d] = (int)m.peak_full;
        out->peak_mem[d] = m.peak;
    }
    if (rc == 0 && pp_walk_run_eager(&w, p, dur, c->comm, out->start[0], out->end[0]) > 0) {
        pp_walk_report(&w, p, dg, "simulate: deadlock");
        rc = 1;
    }
    if (rc == 0) {
        for (int d = 0; d < D; d++) {
            int n = p->dev[d].n;
            if (n > 0 && out->end[d][n - 1] > out->makespan)
                out->makespan = out->end[d][n - 1];
        }
        out->bubble = pp_bubble(out->busy, D, out->makespan);
        pp_sim_coll_times(p, out);
        if (mem && mem->zero_saved && mem->devices == D) {
            out->zero_saved = pp_xcalloc((size_t)D, sizeof *out->zero_saved, "the simulation");
            memcpy(out->zero_saved, mem->zero_saved, (size_t)D * sizeof *out->zero_saved);
        }
    }
    free(dur);
    free(recomputing);
    pp_walk_free(&w);
    if (rc)
        pp_sim_free(out, D);
    return rc;
}
