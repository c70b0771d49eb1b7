/*
 * measured.c — a measured step as a pp_sim, so that the renderers draw it
 * as they draw a prediction: from the start and end of every op (pprun's
 * arrays: runtime/trace.c) or from pprun's --trace file
 * (`ppcc FILE --svg OUT --measured TRACE`, docs/timeline.md,
 * "Predicted and measured").
 *
 * pprun's trace holds one complete ("X") event per op and step, tid the
 * device, args.step and args.op the step and the op's index in the
 * device's list, named as pp_plan_op_format names the op (a collective
 * by its kind and ranks: pprun's loader numbers its groups otherwise).  The last step is
 * read; each of its events must be an op of this plan, under that name,
 * and every op of the plan must have one, so a trace of another plan (or
 * of another compilation of this file) is refused, naming the event.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "pp.h"

/* A trace file is read whole; pprun's of a long run is large, not this. */
#define MAX_TRACE_BYTES (1L << 30)

void pp_sim_measured(const pp_plan *p, pp_sim *sim)
{
    sim->makespan = 0;
    for (int d = 0; d < p->devices; d++) {
        sim->busy[d] = 0;
        for (int i = 0; i < p->dev[d].n; i++) {
            if (pp_op_is_compute(p->dev[d].ops[i].kind))
                sim->busy[d] += sim->end[d][i] - sim->start[d][i];
            /* the flush waits for the slowest device: the step ends when it starts */
            double e = p->dev[d].ops[i].kind == PP_OP_FLUSH ? sim->start[d][i] : sim->end[d][i];
            if (e > sim->makespan)
                sim->makespan = e;
        }
    }
    sim->bubble = pp_bubble(sim->busy, p->devices, sim->makespan);
    pp_sim_coll_times(p, sim); /* pprun --timeline's data-parallel allreduce */
}

static char *read_whole(const char *path, pp_diag *d, size_t *len)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        pp_error(d, "--measured %s: cannot open it: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *text = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        pp_error(d, "--measured %s: not a regular file (give the file pprun --trace wrote)", path);
    else if (st.st_size > MAX_TRACE_BYTES)
        pp_error(d, "--measured %s: %lld bytes, more than a trace ppcc reads (%ld MiB)", path,
                 (long long)st.st_size, MAX_TRACE_BYTES >> 20);
    else if (!(text = pp_calloc((size_t)st.st_size + 1, 1, "the measured trace")))
        pp_out_of_memory((double)st.st_size + 1, "the measured trace");
    else {
        size_t got = 0;
        ssize_t n = 1;
        while (got < (size_t)st.st_size && (n = read(fd, text + got, (size_t)st.st_size - got)) > 0)
            got += (size_t)n;
        if (n < 0 || got != (size_t)st.st_size) {
            pp_error(d, "--measured %s: cannot read it: %s", path, n < 0 ? strerror(errno) : "it changed size");
            free(text);
            text = NULL;
        }
        *len = got;
    }
    close(fd);
    return text;
}

/* A JSON number that is an integer in [lo, hi], into *out. */
static bool int_in(const cJSON *j, double lo, double hi, int *out)
{
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < lo || j->valuedouble > hi)
        return false;
    *out = (int)j->valuedouble;
    return true;
}

int pp_measured_read(const char *path, const pp_plan *p, const pp_sim *predicted, pp_sim *out, pp_diag *d)
{
    size_t len = 0;
    char *text = read_whole(path, d, &len);
    if (!text)
        return 1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    int rc = 1;
    const cJSON *events = root ? cJSON_GetObjectItemCaseSensitive(root, "traceEvents") : NULL;
    if (!root) {
        pp_error(d, "--measured %s: not JSON (at byte %ld)", path, end ? (long)(end - text) : 0L);
        goto done;
    }
    if (!cJSON_IsArray(events)) {
        pp_error(d, "--measured %s: traceEvents: expected an array of trace events (pprun --trace FILE)", path);
        goto done;
    }
    /* the last step: the largest args.step of an op event */
    int last = -1, k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, events) {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(e, "ph");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(e, "args");
        int step;
        if (cJSON_IsString(ph) && !strcmp(ph->valuestring, "X")) {
            if (!cJSON_IsObject(args) || !int_in(cJSON_GetObjectItemCaseSensitive(args, "step"), 0, 1e9, &step) ||
                !cJSON_GetObjectItemCaseSensitive(args, "op")) {
                pp_error(d, "--measured %s: traceEvents[%d]: no args.step and args.op: not a trace of pprun's (ppcc's "
                            "own --trace is a prediction)", path, k);
                goto done;
            }
            if (step > last)
                last = step;
        }
        k++;
    }
    if (last < 0) {
        pp_error(d, "--measured %s: no op events (\"ph\": \"X\") in traceEvents", path);
        goto done;
    }
    pp_sim_alloc(out, p);
    long missing = 0;
    for (int dv = 0; dv < p->devices; dv++)
        for (int i = 0; i < p->dev[dv].n; i++)
            out->start[dv][i] = NAN, missing++;
    double t0 = INFINITY;
    char name[64];
    k = 0;
    cJSON_ArrayForEach(e, events) {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(e, "ph");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(e, "args");
        int step = -1, dv, i;
        if (!cJSON_IsString(ph) || strcmp(ph->valuestring, "X") ||
            !int_in(cJSON_GetObjectItemCaseSensitive(args, "step"), 0, 1e9, &step) || step != last) {
            k++;
            continue;
        }
        const cJSON *ev_name = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(e, "ts"), *dur = cJSON_GetObjectItemCaseSensitive(e, "dur");
        if (!int_in(cJSON_GetObjectItemCaseSensitive(e, "tid"), 0, p->devices - 1, &dv)) {
            pp_error(d, "--measured %s: traceEvents[%d]: tid is not a device of this plan (0..%d)", path, k,
                     p->devices - 1);
            goto fail;
        }
        if (!int_in(cJSON_GetObjectItemCaseSensitive(args, "op"), 0, p->dev[dv].n - 1, &i)) {
            pp_error(d, "--measured %s: traceEvents[%d]: args.op is not an op of device %d (0..%d): a trace of "
                        "another plan", path, k, dv, p->dev[dv].n - 1);
            goto fail;
        }
        pp_plan_op_format(p, &p->dev[dv].ops[i], name, sizeof name);
        if (!cJSON_IsString(ev_name) || strcmp(ev_name->valuestring, name)) {
            pp_error(d, "--measured %s: traceEvents[%d]: device %d's op %d is %s in this plan, %s%s%s in the trace: "
                        "a trace of another plan", path, k, dv, i, name, cJSON_IsString(ev_name) ? "'" : "",
                     cJSON_IsString(ev_name) ? ev_name->valuestring : "no name", cJSON_IsString(ev_name) ? "'" : "");
            goto fail;
        }
        if (!cJSON_IsNumber(ts) || !isfinite(ts->valuedouble) || !cJSON_IsNumber(dur) || !isfinite(dur->valuedouble) ||
            dur->valuedouble < 0) {
            pp_error(d, "--measured %s: traceEvents[%d]: ts and dur must be numbers, dur not negative", path, k);
            goto fail;
        }
        if (!isnan(out->start[dv][i])) {
            pp_error(d, "--measured %s: traceEvents[%d]: device %d's op %d (%s) of step %d is there twice", path, k, dv,
                     i, name, last);
            goto fail;
        }
        out->start[dv][i] = ts->valuedouble;
        out->end[dv][i] = ts->valuedouble + dur->valuedouble;
        if (ts->valuedouble < t0)
            t0 = ts->valuedouble;
        missing--;
        k++;
    }
    if (missing) {
        for (int dv = 0; dv < p->devices; dv++)
            for (int i = 0; i < p->dev[dv].n; i++)
                if (isnan(out->start[dv][i])) {
                    pp_plan_op_format(p, &p->dev[dv].ops[i], name, sizeof name);
                    pp_error(d, "--measured %s: step %d has no event for device %d's op %d (%s)%s: a trace of another "
                                "plan, or cut short", path, last, dv, i, name,
                             missing > 1 ? " and others" : "");
                    goto fail;
                }
    }
    /* microseconds from the step's first op, as pprun draws its own */
    for (int dv = 0; dv < p->devices; dv++)
        for (int i = 0; i < p->dev[dv].n; i++) {
            out->start[dv][i] -= t0;
            out->end[dv][i] -= t0;
        }
    pp_sim_measured(p, out);
    out->units.bytes = predicted->units.bytes; /* microseconds, in the prediction's memory unit */
    out->units.mem = predicted->units.mem;
    /* memory follows each device's op order, not its times: the prediction's */
    for (int dv = 0; dv < p->devices; dv++) {
        out->peak_act[dv] = predicted->peak_act ? predicted->peak_act[dv] : 0;
        out->peak_mem[dv] = predicted->peak_mem ? predicted->peak_mem[dv] : 0;
    }
    rc = 0;
    goto done;
fail:
    pp_sim_free(out, p->devices);
    memset(out, 0, sizeof *out);
done:
    cJSON_Delete(root);
    free(text);
    return rc;
}

/* The relative error of got against want, in percent. */
static double percent(double got, double want) { return want != 0 ? 100 * (got - want) / want : 0; }

int pp_measured_report(FILE *f, const pp_plan *p, const pp_sim *predicted, const pp_sim *measured)
{
    double span = predicted->makespan, sum_start = 0, sum_dur = 0, worst = -1;
    int n = 0, wd = 0, wi = 0;
    for (int d = 0; d < p->devices; d++)
        for (int i = 0; i < p->dev[d].n; i++) {
            if (!pp_op_is_compute(p->dev[d].ops[i].kind))
                continue;
            double e = fabs(measured->start[d][i] - predicted->start[d][i]);
            double pd = predicted->end[d][i] - predicted->start[d][i];
            double md = measured->end[d][i] - measured->start[d][i];
            sum_start += e;
            sum_dur += pd > 0 ? fabs(md - pd) / pd : 0;
            if (e > worst)
                worst = e, wd = d, wi = i;
            n++;
        }
    char name[64];
    fprintf(f, "measured against predicted: makespan %.1f measured, %.1f predicted: %+.1f %%\n", measured->makespan,
            span, percent(measured->makespan, span));
    if (n > 0) {
        pp_plan_op_format(p, &p->dev[wd].ops[wi], name, sizeof name);
        fprintf(f, "  %d compute ops: start error mean %.1f %% of the predicted makespan, largest %.1f %% (device %d "
                   "op %d, %s: %.1f measured, %.1f predicted); duration error mean %.1f %%\n",
                n, span > 0 ? 100 * sum_start / n / span : 0, span > 0 ? 100 * worst / span : 0, wd, wi, name,
                measured->start[wd][wi], predicted->start[wd][wi], 100 * sum_dur / n);
    }
    if (p->ncoll > 0) { /* each collective once, as --stats' allreduce= and dp_allreduce= count them */
        fprintf(f, "  allreduce %.1f measured, %.1f predicted", measured->coll_time, predicted->coll_time);
        if (predicted->coll_time > 0) /* an error against nothing predicted means nothing */
            fprintf(f, ": %+.1f %%", percent(measured->coll_time, predicted->coll_time));
        if (pp_plan_replicas(p) > 1) {
            fprintf(f, "; data-parallel %.1f measured, %.1f predicted", measured->dp_time, predicted->dp_time);
            if (predicted->dp_time > 0)
                fprintf(f, ": %+.1f %%", percent(measured->dp_time, predicted->dp_time));
        }
        fputc('\n', f);
    }
    return ferror(f) ? 1 : 0;
}
