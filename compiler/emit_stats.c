/*
 * emit_stats.c — the one-line summary of `ppcc --stats`, made for sweeps:
 * space-separated key=value pairs in a fixed order, no spaces inside a
 * value, so `grep -o 'bubble=[^ ]*'` or a split on ' ' and '=' reads it.
 *
 *   schedule=1f1b devices=4 stages=4 chunks=1 microbatches=8 ops=168
 *   compute_ops=64 makespan=33 bubble=27.27% fill_drain=27.27%
 *   imbalance=0.00% bottleneck_stage=none peak_act=[4,3,2,1]
 *   peak_mem=[4,3,2,1]
 *
 * (one line).  Without a simulation the keys from makespan on are left
 * out.  fill_drain + imbalance is the bubble, and bottleneck_stage the
 * busiest device's heaviest stage (bubble_split.c).
 * With a gpt on hardware (docs/hardware.md, "Views") the makespan is in
 * seconds (makespan=0.0297684s), tokens_per_s_per_device= and mfu= follow
 * the bubble, and with memory in bytes peak_mem is in one unit
 * ([8.00GB,6.00GB]).
 * A plan with collectives (a gpt's tied allreduce) adds allreduce= after
 * the bubble's split: the time of every collective, each counted once (pp_sim's
 * coll_time).  With data_parallel = R > 1, data_parallel=R ranks=D*R follow
 * devices=, dp_allreduce= (the stages' reductions over their replicas, each
 * once) follows allreduce=, and with zero = 1 zero_saved=[...] (what
 * ZeRO-1's sharded optimizer state takes off each device, already out of
 * peak_mem) ends the line.
 * peak_act counts the (stage, mb) sets held in full at once; peak_mem is
 * each device's peak memory (activation_memory.c), in the unit of
 * memory.activation with the inputs kept for recompute counted: the number
 * the timeline, the plan JSON, --compare and the memory.limit error show.
 */
#include "pp.h"

int pp_emit_stats(FILE *f, const pp_plan *p, const pp_sim *sim)
{
    if (!f || !p || p->devices < 1 || !p->dev)
        return 1;
    /* A policy name is a word; keep the line splittable whatever it is. */
    char sched[sizeof p->schedule];
    int n = 0;
    for (; n < (int)sizeof sched - 1 && p->schedule[n]; n++) {
        char ch = p->schedule[n];
        sched[n] = ch == ' ' || ch == '=' || ch == '\t' || ch == '\n' ? '_' : ch;
    }
    sched[n] = '\0';

    long compute = 0;
    int chunks = 0;
    for (int d = 0; d < p->devices; d++) {
        for (int i = 0; i < p->dev[d].n; i++)
            compute += pp_op_is_compute(p->dev[d].ops[i].kind);
        int held = 0;
        for (int s = 0; p->placement && s < p->stages; s++)
            held += p->placement[s] == d;
        if (held > chunks)
            chunks = held;
    }
    fprintf(f, "schedule=%s devices=%d", sched[0] ? sched : "-", p->devices);
    if (pp_plan_replicas(p) > 1)
        fprintf(f, " data_parallel=%d ranks=%ld", pp_plan_replicas(p), (long)p->devices * pp_plan_replicas(p));
    fprintf(f, " stages=%d chunks=%d microbatches=%d ops=%ld compute_ops=%ld", p->stages, chunks, p->microbatches,
            pp_plan_total_ops(p), compute);
    if (sim) {
        char t[32];
        fprintf(f, " makespan=%s bubble=%.2f%%", pp_time_show(&sim->units, sim->makespan, t, sizeof t),
                sim->bubble * 100);
        pp_bubble_split split;
        pp_bubble_split_of(p, sim, &split);
        fprintf(f, " fill_drain=%.2f%% imbalance=%.2f%%", split.fill_drain * 100, split.imbalance * 100);
        if (split.stage >= 0)
            fprintf(f, " bottleneck_stage=%d", split.stage);
        else
            fputs(" bottleneck_stage=none", f);
        if (p->ncoll > 0)
            fprintf(f, " allreduce=%s", pp_time_show(&sim->units, sim->coll_time, t, sizeof t));
        if (pp_plan_replicas(p) > 1)
            fprintf(f, " dp_allreduce=%s", pp_time_show(&sim->units, sim->dp_time, t, sizeof t));
        double tps, mfu;
        if (pp_throughput(&sim->units, sim->makespan, p->devices, &tps, &mfu))
            fprintf(f, " tokens_per_s_per_device=%.6g mfu=%.2f%%", tps, 100 * mfu);
        if (sim->peak_act) {
            fputs(" peak_act=[", f);
            for (int d = 0; d < p->devices; d++)
                fprintf(f, "%s%d", d ? "," : "", sim->peak_act[d]);
            fputc(']', f);
        }
        if (sim->peak_mem) {
            fputs(" peak_mem=[", f);
            for (int d = 0; d < p->devices; d++)
                fprintf(f, "%s%s", d ? "," : "", pp_mem_show(&sim->units, sim->peak_mem[d], t, sizeof t));
            fputc(']', f);
        }
        if (sim->zero_saved) {
            fputs(" zero_saved=[", f);
            for (int d = 0; d < p->devices; d++)
                fprintf(f, "%s%s", d ? "," : "", pp_mem_show(&sim->units, sim->zero_saved[d], t, sizeof t));
            fputc(']', f);
        }
    }
    fputc('\n', f);
    return fflush(f) != 0 || ferror(f) ? 1 : 0;
}
