/*
 * emit_trace.c — a timeline as Chrome / Perfetto trace-event JSON
 * (open it in ui.perfetto.dev or chrome://tracing).
 *
 *   {"traceEvents": [
 *     {"name": "thread_name", "ph": "M", "pid": 0, "tid": 2, "args": {"name": "device 2"}},
 *     {"name": "F3.5", "cat": "F", "ph": "X", "pid": 0, "tid": 2, "ts": 5000, "dur": 1000,
 *      "args": {"stage": 3, "mb": 5}},
 *     ...],
 *    "displayTimeUnit": "ms", "otherData": {...}}
 *
 * One track (tid) per device, one complete ("X") event per compute op,
 * named as pp_op_format names it (F3.5 = forward of stage 3, micro-batch
 * 5), and one per allreduce on each of its members, named as
 * pp_plan_op_format names it ("allreduce tied {0,3}", cat "allreduce",
 * args what and ranks), from when it begins to when it ends; an
 * asynchronous reduction over replicas (plan version 2) on a track of its
 * own beside its device's, tid devices + d ("device d data-parallel
 * lane"), as it overlaps the device's compute there.  ts and dur are microseconds: time * us_per_unit, so a predicted
 * timeline in cost units with us_per_unit = 1000 shows one unit as 1 ms.
 * Sends, receives (waits included), update and flush are not drawn.  pprun writes measured
 * traces in the same format, so both open side by side.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

/* Shortest of %.15g / %.17g that reads back as the same double. */
static void put_number(FILE *f, double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, sizeof buf, "%.17g", v);
    fputs(buf, f);
}

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

int pp_emit_trace(FILE *f, const pp_plan *p, const pp_sim *sim, double us_per_unit)
{
    if (!f || !p || !sim || !sim->start || !sim->end || p->devices < 1 || !p->dev ||
        !(us_per_unit > 0) || !isfinite(us_per_unit))
        return 1;
    fputs("{\"traceEvents\": [\n", f);
    fputs("{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": 0, \"tid\": 0, \"args\": {\"name\": ", f);
    put_string(f, p->schedule);
    fputs("}}", f);
    /* the devices with an asynchronous reduction: a data-parallel lane track each */
    bool *lane = pp_xcalloc((size_t)p->devices, sizeof *lane, "the trace's tracks");
    bool any_lane = false;
    for (int d = 0; d < p->devices; d++)
        for (int i = 0; i < p->dev[d].n; i++)
            if (p->dev[d].ops[i].kind == PP_OP_ALLREDUCE && p->dev[d].ops[i].group >= 0)
                any_lane = lane[d] = true;
    for (int d = 0; d < p->devices; d++) {
        fprintf(f, ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, \"tid\": %d, "
                   "\"args\": {\"name\": \"device %d\"}}", d, d);
        fprintf(f, ",\n{\"name\": \"thread_sort_index\", \"ph\": \"M\", \"pid\": 0, \"tid\": %d, "
                   "\"args\": {\"sort_index\": %d}}", d, any_lane ? 2 * d : d);
        if (!lane[d])
            continue;
        fprintf(f, ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 0, \"tid\": %d, "
                   "\"args\": {\"name\": \"device %d data-parallel lane\"}}", p->devices + d, d);
        fprintf(f, ",\n{\"name\": \"thread_sort_index\", \"ph\": \"M\", \"pid\": 0, \"tid\": %d, "
                   "\"args\": {\"sort_index\": %d}}", p->devices + d, 2 * d + 1);
    }
    free(lane);
    char name[64];
    for (int d = 0; d < p->devices; d++) {
        const pp_device *dv = &p->dev[d];
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            double s = sim->start[d][i], e = sim->end[d][i];
            const pp_coll *c = pp_plan_op_coll(p, op);
            if ((!pp_op_is_compute(op->kind) && !c) || !isfinite(s) || !isfinite(e))
                continue;
            if (c) {
                fprintf(f, ",\n{\"name\": \"%s\", \"cat\": \"allreduce\", \"ph\": \"X\", \"pid\": 0, \"tid\": %d, "
                           "\"ts\": ", pp_plan_op_format(p, op, name, sizeof name), op->group >= 0 ? p->devices + d : d);
                put_number(f, s * us_per_unit);
                fputs(", \"dur\": ", f);
                put_number(f, e > s ? (e - s) * us_per_unit : 0);
                fprintf(f, ", \"args\": {\"what\": \"%s\", ", pp_coll_what_name(c->what));
                int R = pp_plan_replicas(p);
                if (pp_coll_over_replicas(c)) { /* the plan JSON's members: the device's replicas' ranks */
                    fprintf(f, "\"stage\": %d, \"ranks\": [", c->stage);
                    for (int r = 0; r < R; r++)
                        fprintf(f, "%s%d", r ? ", " : "", pp_rank_of(d, r, R));
                } else {
                    fputs("\"ranks\": [", f);
                    for (int k = 0; k < c->nranks; k++)
                        fprintf(f, "%s%d", k ? ", " : "", c->ranks[k]);
                }
                fprintf(f, "], \"index\": %d}}", i);
                continue;
            }
            pp_op_format(op, name, sizeof name);
            fprintf(f, ",\n{\"name\": \"%s\", \"cat\": \"%s\", \"ph\": \"X\", \"pid\": 0, \"tid\": %d, \"ts\": ",
                    name, pp_op_name(op->kind), d);
            put_number(f, s * us_per_unit);
            fputs(", \"dur\": ", f);
            put_number(f, e > s ? (e - s) * us_per_unit : 0);
            fprintf(f, ", \"args\": {\"stage\": %d, \"mb\": %d, \"index\": %d}}", op->stage, op->mb, i);
        }
    }
    fputs("\n],\n\"displayTimeUnit\": \"ms\",\n\"otherData\": {\"generator\": \"ppcc\", \"schedule\": ", f);
    put_string(f, p->schedule);
    fputs(", \"us_per_unit\": ", f);
    put_number(f, us_per_unit);
    fputs("}}\n", f);
    return fflush(f) != 0 || ferror(f) ? 1 : 0;
}
