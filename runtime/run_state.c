/*
 * run_state.c — what every part of a replay shares below its loop: how a
 * run fails (the first error wins, every waiting device is woken and the
 * transport aborted, so the run ends), the backend buffers that fail it
 * naming what they were for, the words that place an op in a message, and
 * the arrays of a run's result.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "rank_grid.h"
#include "replay_internal.h"

void run_fail(run *R, const char *fmt, ...)
{
    pthread_mutex_lock(&R->mu);
    if (!atomic_load(&R->failed)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(R->err, sizeof R->err, fmt, ap);
        va_end(ap);
        R->failed_at = pp_now();
        atomic_store(&R->failed, 1);
    }
    pthread_cond_broadcast(&R->cv);
    pthread_mutex_unlock(&R->mu);
    if (R->tr->ops->abort)
        R->tr->ops->abort(R->tr);
}

float *replay_buffer(device_ctx *D, bool weight, size_t count, const char *fmt, ...)
{
    run *R = D->R;
    float *p = R->be->alloc(D->bc, count);
    if (p && weight)
        R->be->weights(D->bc, p, count);
    if (!p) {
        char what[96], size[32];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        char who[64];
        run_fail(R, "%s: cannot allocate %s (%s): %s", rank_name(R, D->rank, who, sizeof who), what,
                 pr_format_bytes((double)count * sizeof(float), size, sizeof size),
                 D->bc->failed ? D->bc->err : "the backend has no room");
    }
    return p;
}

const char *rank_name(const run *R, int q, char *buf, size_t size)
{
    return pr_grid_name((pr_grid){R->p->devices, R->replicas}, q, buf, size);
}

const char *tag_name(pr_tag t, char *buf, size_t size)
{
    if (t.comm == PR_TAG_COLLECTIVE)
        snprintf(buf, size, "a part of collective #%d", t.stage);
    else if (t.comm == PR_TAG_LOSSES)
        snprintf(buf, size, "its losses of step %d", t.stage + 1);
    else
        snprintf(buf, size, "%s %d.%d", pp_comm_name(t.comm), t.stage, t.mb);
    return buf;
}

const char *op_place(const run *R, int rank, int i, char *buf, size_t size)
{
    char name[64], who[64];
    snprintf(buf, size, "%s op %d (%s)", rank_name(R, rank, who, sizeof who), i,
             pp_plan_op_format(R->p, &R->p->dev[rank / R->replicas].ops[i], name, sizeof name));
    return buf;
}

void result_alloc(pr_run_result *r, const pp_plan *p, const pr_model *m, int steps,
                  bool record_all, bool params)
{
    size_t D = (size_t)p->devices;
    r->devices = p->devices;
    if (params)
        r->params = pp_xcalloc(m->param_off[m->layers] ? m->param_off[m->layers] : 1, sizeof(float),
                               "the trained parameters");
    r->loss = pp_xcalloc((size_t)steps, sizeof(double), "the losses");
    r->step_start = pp_xcalloc((size_t)steps, sizeof(double), "the step times");
    r->recorded_steps = record_all ? steps : 1;
    r->start = pp_xcalloc(D, sizeof(double *), "the op times");
    r->end = pp_xcalloc(D, sizeof(double *), "the op times");
    r->peak_act = pp_xcalloc(D, sizeof(int), "the run's counts");
    r->peak_mem = pp_xcalloc(D, sizeof(double), "the run's counts");
    r->pool_slots = pp_xcalloc(D, sizeof(int), "the run's counts");
    r->pool_misses = pp_xcalloc(D, sizeof(int), "the run's counts");
    r->weight_versions = pp_xcalloc(D, sizeof(int), "the run's counts");
    r->extra_weight_bytes = pp_xcalloc(D, sizeof(double), "the run's counts");
}

void pr_run_result_free(pr_run_result *r)
{
    if (r->start)
        for (int i = 0; i < r->devices; i++) {
            free(r->start[i]);
            free(r->end[i]);
        }
    free(r->start);
    free(r->end);
    free(r->params);
    free(r->loss);
    free(r->step_start);
    free(r->peak_act);
    free(r->peak_mem);
    free(r->pool_slots);
    free(r->pool_misses);
    free(r->weight_versions);
    free(r->extra_weight_bytes);
    memset(r, 0, sizeof *r);
}
