/*
 * trace.c — what the replay measured: --trace writes Chrome trace-event
 * JSON (one "X" event per op and step, one tid per device), and
 * pr_measured_sim turns the last step into a pp_sim so the compiler's text
 * timeline renderer draws the measured run like a predicted one.
 */
#include <stdlib.h>

#include "pprun.h"

int pr_trace_fill(FILE *f, void *record)
{
    const pp_plan *p = ((const pr_run_record *)record)->plan;
    const pr_run_result *r = ((const pr_run_record *)record)->result;
    fputs("{\"traceEvents\":[\n", f);
    const char *sep = "";
    for (int dv = 0; dv < p->devices; dv++) {
        fprintf(f, "%s{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":0,\"tid\":%d,"
                   "\"args\":{\"name\":\"device %d\"}}",
                sep, dv, dv);
        sep = ",\n";
    }
    for (int dv = 0; dv < p->devices; dv++) {
        int n = p->dev[dv].n;
        for (int k = 0; k < r->recorded_steps; k++)
            for (int i = 0; i < n; i++) {
                const pp_op *op = &p->dev[dv].ops[i];
                size_t at = (size_t)k * n + i;
                char name[64];
                /* a collective by what it sums, not its index: the loader numbers them its own way */
                pp_plan_op_format(p, op, name, sizeof name);
                double ts = r->start[dv][at] * 1e6, dur = (r->end[dv][at] - r->start[dv][at]) * 1e6;
                fprintf(f, "%s{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":0,\"tid\":%d,"
                           "\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"step\":%d,\"op\":%d}}",
                        sep, name, pp_op_name(op->kind), dv, ts, dur, k, i);
            }
    }
    fputs("\n]}\n", f);
    return ferror(f) ? 1 : 0;
}

void pr_measured_sim(const pp_plan *p, const pr_run_result *r, pp_sim *sim)
{
    int k = r->recorded_steps - 1;
    double t0 = -1;
    for (int dv = 0; dv < p->devices; dv++)
        if (p->dev[dv].n > 0) {
            double s = r->start[dv][(size_t)k * p->dev[dv].n];
            if (t0 < 0 || s < t0)
                t0 = s;
        }
    if (t0 < 0)
        t0 = 0;
    pp_sim_alloc(sim, p); /* the compiler's layout: pp_sim_free releases it */
    for (int dv = 0; dv < p->devices; dv++) {
        int n = p->dev[dv].n;
        sim->peak_act[dv] = r->peak_act[dv];
        sim->peak_mem[dv] = r->peak_mem[dv];
        for (int i = 0; i < n; i++) {
            size_t at = (size_t)k * n + i;
            sim->start[dv][i] = (r->start[dv][at] - t0) * 1e6;
            sim->end[dv][i] = (r->end[dv][at] - t0) * 1e6;
        }
    }
    pp_sim_measured(p, sim); /* busy, makespan, bubble: as ppcc --measured reads a trace */
}
