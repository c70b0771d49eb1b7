/*
 * run.c — pr_replay, a run from start to end: the pools are sized by a dry
 * run (pool_plan.c) and what the run will allocate is checked against what
 * the host has left (host_memory.c) before anything else; then one thread
 * per device of this process replays its list (replay.c) while this thread
 * watches them (the watchdog: it prints the first error when it happens,
 * bounds an op nothing waits for, and ends the process when a device is
 * stuck inside an op after a failure); or, with a
 * backend that can, step 1 is captured as a CUDA graph and later steps are
 * graph launches.  Last, the trained parameters are checked for a
 * divergence the last loss did not show.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "replay_internal.h"

/* The first error, printed when it happens rather than when every thread
 * has ended: a stuck one may never end.  Called with R->mu held. */
static void report_now(run *R)
{
    if (R->reported || !atomic_load(&R->failed))
        return;
    R->reported = true;
    char err[sizeof R->err];
    memcpy(err, R->err, sizeof err);
    pthread_mutex_unlock(&R->mu);
    pp_error(R->diag, "%s", err);
    fflush(R->diag->out);
    pthread_mutex_lock(&R->mu);
}

/* After the run failed, how long a device may stay in the op it is in
 * before it counts as stuck: the abort wakes every wait at once, so what is
 * still in the same op this long after the failure is not coming back
 * soon (and an op a little slower than the timeout is waited for). */
static double grace_s(const run *R) { return fmin(R->o->timeout, 2.0); }

/* While nothing waits that could time out, an op may compute at most the
 * larger of --timeout and this many times the longest op so far. */
enum { OP_LIMIT_FACTOR = 100 };

/* Before any failure: if no device of this process is inside a wait (whose
 * own timeout would end the run, naming what it waits for) and one has
 * been inside an op longer than the op limit, the run fails naming the
 * oldest such op (a one-device plan, or one rank of a multi-process run,
 * has nobody else here to notice).  Called with R->mu held. */
static void limit_ops(run *R, int started, double now)
{
    double longest = 0;
    for (int q = R->first; q < R->first + started; q++) {
        const device_ctx *D = &R->dev[q];
        if (D->returned)
            continue;
        if (atomic_load(&D->waiting))
            return;
        longest = fmax(longest, atomic_load(&D->longest));
    }
    double limit = fmax(R->o->timeout, OP_LIMIT_FACTOR * longest), since = 0;
    int slow = -1, op = -1;
    for (int q = R->first; q < R->first + started; q++) {
        const device_ctx *D = &R->dev[q];
        int i = atomic_load(&D->cur_op);
        double t = atomic_load(&D->op_since);
        if (!D->returned && i >= 0 && now - t > limit && (slow < 0 || t < since))
            slow = q, op = i, since = t;
    }
    if (slow < 0)
        return;
    char where[128];
    op_place(R, slow, op, where, sizeof where);
    pthread_mutex_unlock(&R->mu);
    run_fail(R, "%s has not returned after %.2f s, longer than an op may compute (%g s: the "
                "larger of --timeout and %d times the longest op so far, %.3g s)",
             where, now - since, limit, OP_LIMIT_FACTOR, longest);
    pthread_mutex_lock(&R->mu);
}

/* After a failure: when every device thread still running has been in its
 * op (or wait) since before the failure, or began it after, and stayed a
 * grace period past that (a wait, which ends by its own timeout, that
 * long plus the timeout), none of them is coming back: it cannot be
 * stopped, nor left running over memory about to be freed, so the
 * process ends here, naming the oldest op that waits for nothing (else
 * the oldest wait).  Called with R->mu held; returns if one may yet
 * return. */
static void end_if_stuck(run *R, int started, double now)
{
    double failed = R->failed_at - R->t0, since = 0;
    int stuck = -1, op = -1;
    bool waits = true;
    for (int q = R->first; q < R->first + started; q++) {
        const device_ctx *D = &R->dev[q];
        if (D->returned)
            continue;
        int i = atomic_load(&D->cur_op);
        double t = atomic_load(&D->op_since);
        bool w = atomic_load(&D->waiting);
        if (now - fmax(t, failed) < grace_s(R) + (w ? R->o->timeout : 0))
            return; /* it may yet return */
        if (stuck < 0 || (waits && !w) || (waits == w && t < since))
            stuck = q, op = i, since = t, waits = w;
    }
    if (stuck < 0)
        return;
    char where[128];
    if (op >= 0)
        op_place(R, stuck, op, where, sizeof where);
    else
        snprintf(where, sizeof where, "device %d", stuck);
    pthread_mutex_unlock(&R->mu);
    pp_error(R->diag, "%s is still %s %.2f s after it began, and the run has failed: exiting "
                      "without waiting for it", where, waits ? "waiting" : "running", now - since);
    pp_exit_now(1); /* the outputs' temporaries go first (output.c) */
}

/* The watchdog, on the thread that started the devices: waits for the
 * `started` device threads from R->first to end, reporting the first
 * error at once, failing the run when an op outlives the op limit, and
 * ending the process when the run has failed and a device is stuck. */
static void watch(run *R, int started)
{
    pthread_mutex_lock(&R->mu);
    while (R->finished < started) {
        struct timespec tick = pp_deadline_after(0.05);
        pthread_cond_timedwait(&R->cv, &R->mu, &tick);
        report_now(R);
        if (R->finished == started)
            break;
        double now = pp_now() - R->t0;
        if (!atomic_load(&R->failed))
            limit_ops(R, started, now);
        else
            end_if_stuck(R, started, now);
    }
    pthread_mutex_unlock(&R->mu);
}

/* Runs steps [lo, hi) on one thread per device of this process. */
static void run_threads(run *R, int lo, int hi)
{
    R->step_lo = lo;
    R->step_hi = hi;
    int n = R->last - R->first + 1;
    pthread_t *th = pp_xcalloc((size_t)n, sizeof *th, "the device threads");
    R->finished = 0;
    for (int q = R->first; q <= R->last; q++)
        R->dev[q].returned = false;
    int started = 0;
    for (; started < n; started++)
        if (pthread_create(&th[started], NULL, device_main, &R->dev[R->first + started]) != 0) {
            run_fail(R, "cannot start the thread of device %d", R->first + started);
            break;
        }
    watch(R, started);
    for (int q = 0; q < started; q++)
        pthread_join(th[q], NULL);
    free(th);
}

/* Step 0 runs eagerly (it warms up the libraries), step 1 is issued under
 * capture, then every step from 1 on is one graph launch. */
static void run_graph(run *R)
{
    const pr_backend *be = R->be;
    int n = R->last - R->first + 1;
    pr_bctx **cs = pp_xcalloc((size_t)n, sizeof *cs, "the graph's device contexts");
    for (int q = 0; q < n; q++)
        cs[q] = R->dev[R->first + q].bc;
    run_threads(R, 0, 1);
    if (!atomic_load(&R->failed) && be->capture_begin(cs, n))
        run_fail(R, "%s", cs[0]->err);
    if (!atomic_load(&R->failed)) {
        run_threads(R, 1, 2);
        if (be->capture_end(cs, n) && !atomic_load(&R->failed))
            run_fail(R, "%s", cs[0]->err);
    }
    device_ctx *loss_dev = NULL;
    for (int q = R->first; q <= R->last; q++)
        if (has_loss(&R->dev[q]))
            loss_dev = &R->dev[q];
    for (int step = 1; step < R->o->steps && !atomic_load(&R->failed); step++) {
        if (be->graph_step(cs, n, step)) {
            run_fail(R, "%s", cs[0]->err);
            break;
        }
        if (loss_dev) {
            be->read_loss(loss_dev->bc, R->loss_sq + (size_t)step * R->p->microbatches,
                          R->p->microbatches);
            if (loss_dev->bc->failed) {
                run_fail(R, "%s", loss_dev->bc->err);
                break;
            }
        }
        char diverged[160];
        if (!close_step(R, step, diverged, sizeof diverged)) {
            run_fail(R, "%s", diverged);
            break;
        }
        R->res->graph_steps++;
    }
    free(cs);
}

/* The first layer whose trained parameters hold a NaN or an infinity,
 * or -1: the last update can diverge after the last loss was still
 * finite. */
static int nonfinite_layer(const pr_run_result *r, const pr_model *m)
{
    for (int l = 0; l < m->layers; l++)
        for (size_t i = m->param_off[l]; i < m->param_off[l + 1]; i++)
            if (!isfinite(r->params[i]))
                return l;
    return -1;
}

/* What the run will allocate on the host, against what the host has left
 * (host_memory.c): refused before anything is allocated, with the numbers,
 * when it cannot fit.  bytes[rank] (from the dry run) is host memory on
 * the CPU backend, the GPU's on others. */
static bool memory_fits(const pp_plan *p, const pr_model *m, const pr_run_opts *o,
                        const pool_shape *pools, const double *bytes, pp_diag *d)
{
    bool host_buffers = !o->backend || o->backend->device == PR_DEVICE_HOST;
    int replicas = pp_plan_replicas(p); /* each runs every device's list: as many again */
    /* one process a rank: its device's list, once (rank_grid.h) */
    int first = o->one_rank ? o->rank / replicas : 0, last = o->one_rank ? o->rank / replicas : p->devices - 1;
    int copies = o->one_rank ? 1 : replicas;
    double f = sizeof(float), rows = (double)(m->batch / (p->microbatches * replicas));
    double slot = (double)m->ops->slot_floats(m, (int)rows) * f, params = 0, acts = 0, other = 0;
    for (int l = 0; l < m->layers; l++) /* a layer's initial values, on the host */
        other = fmax(other, (double)pr_layer_param_count(m, l) * f);
    double results = (double)m->param_off[m->layers] * f +
                     (double)o->steps * (2.0 + p->microbatches) * sizeof(double);
    size_t stack = 0;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_getstacksize(&attr, &stack);
        pthread_attr_destroy(&attr);
    }
    for (int q = first; q <= last; q++) {
        int sends = 0;
        for (int i = 0; i < p->dev[q].n; i++)
            sends += p->dev[q].ops[i].kind == PP_OP_SEND;
        if (host_buffers) {
            double pool = 0;
            for (int c = 0; c < pools[q].n; c++)
                pool += (double)pools[q].count[c] * (double)pools[q].floats[c] * f;
            acts += pool;
            params += bytes[q] - pool;
            other += PR_CPU_BLAS_BUFFER_BYTES; /* the device thread's, backend.h */
        }
        if (!o->transport) /* in-process queues: a copy per message in flight */
            other += sends * slot;
        other += (double)stack;
        results += 2.0 * p->dev[q].n * (o->record_all ? o->steps : 1) * sizeof(double);
    }
    params *= copies;
    acts *= copies;
    other = (other - o->output_bytes) * copies + o->output_bytes;
    results += (double)o->steps * p->microbatches * (replicas - 1) * sizeof(double);
    other += o->output_bytes;
    double need = params + acts + results + other;
    const char *limit;
    double left = pr_host_memory_left(&limit);
    if (need <= left)
        return true;
    char b[5][32];
    pr_format_bytes(need, b[0], sizeof b[0]);
    pr_format_bytes(left, b[4], sizeof b[4]);
    pr_format_bytes(results, b[3], sizeof b[3]);
    pr_format_bytes(other, b[2], sizeof b[2]);
    if (host_buffers) {
        char pb[32], ab[32];
        pp_error(d, "the run needs %s of memory (parameters, gradients and weight versions %s, "
                    "activations %s, trained weights and op times %s, other %s), more than the "
                    "%s left under %s",
                 b[0], pr_format_bytes(params, pb, sizeof pb), pr_format_bytes(acts, ab, sizeof ab),
                 b[3], b[2], b[4], limit);
    } else {
        pp_error(d, "the run needs %s of host memory (trained weights and op times %s, other %s), "
                    "more than the %s left under %s", b[0], b[3], b[2], b[4], limit);
    }
    return false;
}

int pr_replay(const pp_plan *p, const pr_model *m, const pr_run_opts *o, pr_run_result *r,
              pp_diag *d)
{
    memset(r, 0, sizeof *r);
    if (o->steps < 1) {
        pp_error(d, "steps must be at least 1");
        return 1;
    }
    int replicas = pp_plan_replicas(p), world = p->devices * replicas;
    /* docs/pprun.md, "Data parallelism": every rank in this process, or
     * one (one process a rank); the transport carries world ranks */
    if (o->one_rank && (o->rank < 0 || o->rank >= world)) {
        if (replicas > 1)
            pp_error(d, "rank %d is not a rank of this plan's %d devices x %d replicas", o->rank, p->devices,
                     replicas);
        else
            pp_error(d, "rank %d is not a device of this %d-device plan", o->rank, p->devices);
        return 1;
    }
    pool_shape *pools = pp_xcalloc((size_t)p->devices, sizeof *pools, "the pool sizes");
    double *bytes = pp_xcalloc((size_t)p->devices, sizeof(double), "the pool sizes");
    int sized = pool_sizes(p, m, pools, bytes, d) == 0 && memory_fits(p, m, o, pools, bytes, d);
    free(bytes);
    if (!sized) {
        free(pools);
        return 1;
    }
    pr_transport *tr = o->transport ? o->transport
                                   : pr_transport_threads_create(world, &(pr_link){o->link_latency, o->link_bandwidth});
    run R;
    run_open(&R, p, m, o, o->backend ? o->backend : pr_backend_cpu(), tr, r);
    R.first = o->one_rank ? o->rank : 0;
    R.last = o->one_rank ? o->rank : world - 1;
    R.ignore_stash = pr_test_ignore_stash && pr_test_ignore_stash();
    R.loss_sq = pp_xcalloc((size_t)o->steps * replicas * p->microbatches, sizeof(double),
                           "the micro-batch losses");
    R.diag = d;
    result_alloc(r, p, m, o->steps, o->record_all, true);
    R.dev = pp_xcalloc((size_t)world, sizeof *R.dev, "the device states");
    for (int rank = R.first; rank <= R.last; rank++) {
        pool_shape ps_rank = pools[rank / replicas], *ps = &ps_rank; /* every replica's is its device's */
        int total = 0;
        for (int c = 0; c < ps->n; c++)
            total += ps->count[c];
        if (pr_test_pool_slots) { /* fewer: the first sizes keep theirs */
            int left = total = pr_test_pool_slots(rank, total);
            for (int c = 0; c < ps->n; c++) {
                ps->count[c] = ps->count[c] < left ? ps->count[c] : left;
                left -= ps->count[c];
            }
        }
        r->pool_slots[rank / replicas] = total;
        if (device_setup(&R, &R.dev[rank], rank, ps))
            break;
    }
    free(pools);
    if (!atomic_load(&R.failed) && R.tr->ops->attach)
        for (int rank = R.first; rank <= R.last; rank++)
            R.tr->ops->attach(R.tr, rank, R.dev[rank].bc);
    for (int rank = R.first; rank <= R.last && !atomic_load(&R.failed); rank++)
        R.be->sync(R.dev[rank].bc); /* parameters are in place before the clock starts */

    R.t0 = pp_now();
    if (!atomic_load(&R.failed)) {
        /* weight versions live in host-side bookkeeping a graph cannot replay */
        bool graph = o->graph && R.be->capture_begin && o->steps >= 2 && !o->record_all &&
                     p->async == PP_ASYNC_NONE && replicas == 1;
        if (graph)
            run_graph(&R);
        else
            run_threads(&R, 0, o->steps);
    }
    if (atomic_load(&R.failed))
        R.tr->ops->abort(R.tr);
    for (int rank = R.first; rank <= R.last; rank++)
        device_teardown(&R, &R.dev[rank]);

    int rc = 0;
    if (atomic_load(&R.failed)) {
        if (!R.reported)
            pp_error(d, "%s", R.err);
        rc = 1;
    } else {
        int bad = nonfinite_layer(r, m);
        if (bad >= 0) {
            pp_error(d, "after step %d of %d the parameters of layer %d are not finite: the "
                        "training diverged (a smaller model.lr may help)",
                     o->steps, o->steps, bad);
            rc = 1;
        }
    }
    if (!o->transport)
        R.tr->ops->destroy(R.tr);
    run_close(&R);
    if (rc)
        pr_run_result_free(r);
    return rc;
}
