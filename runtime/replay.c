/*
 * replay.c — executes a plan: one thread per device walks its op list in
 * order, computing through a backend (backend.h) and exchanging
 * activations and gradients through a transport (transport.h).  It never
 * reorders: the compiler owns deadlock freedom, the verifier proved it.
 *
 * Per device, each (stage, micro-batch) has an act_set: the inputs x and
 * pre-activations z each layer of the stage keeps from F until B (and dz
 * from B until W when the backward is split), plus the mailboxes through
 * which F/B hand data to the next op (in_act, in_grad) or to a send
 * (out_act, out_grad).  Buffers are all [rows, hidden] and come from a
 * per-device pool, so a step allocates nothing once warm.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "pprun.h"
#include "transport.h"

typedef struct act_set {
    float **x, **z, **dz; /* [k] each */
    float *in_act, *in_grad, *out_act, *out_grad;
    bool live; /* F done, activations held */
} act_set;

typedef struct stage_state {
    int stage, k, first_layer;
    float **W, **b, **dW, **db; /* [k] */
    act_set *mb;                /* [microbatches] */
    float **ptrs;               /* storage of every act_set's x, z, dz */
} stage_state;

typedef struct run run;

typedef struct device_ctx {
    run *R;
    int rank;
    stage_state *st;
    int nst;
    int *local; /* [stages] -> index in st, or -1 */
    float **pool;
    int npool, cap_pool;
    float *host_tmp, *t_dev;
    int inflight, peak;
    double *start, *end;
} device_ctx;

struct run {
    const pp_plan *p;
    const pr_model *m;
    const pr_run_opts *o;
    const pr_backend *be;
    pr_transport *tr;
    int rows;    /* per micro-batch */
    size_t slot; /* rows * hidden */
    double *loss_sq; /* [steps * microbatches]: sum (y - t)^2 of each micro-batch */
    double t0;
    pr_run_result *res;
    device_ctx *dev;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived;
    long generation;
    int step_done;
    atomic_int failed;
    char err[640];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Records the first error, wakes everyone so the run ends. */
static void __attribute__((format(printf, 2, 3))) fail(run *R, const char *fmt, ...)
{
    pthread_mutex_lock(&R->mu);
    if (!atomic_load(&R->failed)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(R->err, sizeof R->err, fmt, ap);
        va_end(ap);
        atomic_store(&R->failed, 1);
    }
    pthread_cond_broadcast(&R->cv);
    pthread_mutex_unlock(&R->mu);
    R->tr->ops->abort(R->tr);
}

static float *pool_get(device_ctx *D)
{
    if (D->npool > 0)
        return D->pool[--D->npool];
    return D->R->be->alloc(D->R->slot);
}

static void pool_put(device_ctx *D, float *p)
{
    if (!p)
        return;
    if (D->npool == D->cap_pool) {
        D->cap_pool = D->cap_pool ? 2 * D->cap_pool : 16;
        D->pool = realloc(D->pool, (size_t)D->cap_pool * sizeof *D->pool);
        if (!D->pool)
            abort();
    }
    D->pool[D->npool++] = p;
}

/* The act_set of (stage, mb) on this device, or NULL. */
static act_set *set_of(device_ctx *D, int stage, int mb)
{
    if (stage < 0 || stage >= D->R->p->stages || D->local[stage] < 0)
        return NULL;
    return &D->st[D->local[stage]].mb[mb];
}

#define OP_FAIL(D, i, ...)                                                                 \
    do {                                                                                   \
        char name_[64], msg_[400];                                                         \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                                          \
        fail((D)->R, "device %d op %d (%s): %s", (D)->rank, (i),                           \
             pp_op_format(&(D)->R->p->dev[(D)->rank].ops[(i)], name_, sizeof name_), msg_); \
        return 1;                                                                          \
    } while (0)

static int do_forward(device_ctx *D, int i, const pp_op *op, int step)
{
    run *R = D->R;
    const pr_backend *be = R->be;
    int h = R->m->hidden, S = R->p->stages;
    stage_state *st = &D->st[D->local[op->stage]];
    act_set *a = &st->mb[op->mb];
    if (a->live)
        OP_FAIL(D, i, "its activations are still held (F twice without B)");
    float *x = a->in_act;
    a->in_act = NULL;
    if (op->stage == 0) {
        if (x)
            pool_put(D, x);
        x = pool_get(D);
        pr_make_batch(R->m, step, op->mb * R->rows, R->rows, D->host_tmp, NULL);
        be->upload(x, D->host_tmp, R->slot);
    } else if (!x) {
        OP_FAIL(D, i, "no input activation (missing recv or F of stage %d)", op->stage - 1);
    }
    for (int l = 0; l < st->k; l++) {
        float *z = pool_get(D), *y = pool_get(D);
        be->layer_forward(x, st->W[l], st->b[l], z, y, R->rows, h);
        a->x[l] = x;
        a->z[l] = z;
        x = y;
    }
    a->live = true;
    if (++D->inflight > D->peak)
        D->peak = D->inflight;
    if (op->stage == S - 1) {
        pr_make_batch(R->m, step, op->mb * R->rows, R->rows, NULL, D->host_tmp);
        be->upload(D->t_dev, D->host_tmp, R->slot);
        float *dy = pool_get(D);
        R->loss_sq[(size_t)step * R->p->microbatches + op->mb] =
            be->mse(x, D->t_dev, 1.0f / (float)R->m->batch, dy, R->rows, h);
        pool_put(D, x);
        pool_put(D, a->in_grad);
        a->in_grad = dy;
    } else {
        act_set *next = set_of(D, op->stage + 1, op->mb);
        float **box = next ? &next->in_act : &a->out_act;
        pool_put(D, *box);
        *box = x;
    }
    return 0;
}

static void weight_grad(device_ctx *D, stage_state *st, act_set *a, int l)
{
    D->R->be->layer_backward_weight(a->x[l], a->dz[l], st->dW[l], st->db[l], D->R->rows,
                                    D->R->m->hidden);
    pool_put(D, a->x[l]);
    pool_put(D, a->dz[l]);
    a->x[l] = a->dz[l] = NULL;
}

static int do_backward(device_ctx *D, int i, const pp_op *op)
{
    run *R = D->R;
    int h = R->m->hidden;
    bool split = R->p->split_backward;
    stage_state *st = &D->st[D->local[op->stage]];
    act_set *a = &st->mb[op->mb];
    if (!a->live || !a->z[0])
        OP_FAIL(D, i, "no activations held (B before F, or B twice)");
    float *dy = a->in_grad;
    a->in_grad = NULL;
    if (!dy)
        OP_FAIL(D, i, "no output gradient (missing recv or B of stage %d)", op->stage + 1);
    for (int l = st->k - 1; l >= 0; l--) {
        float *dz = pool_get(D);
        float *dx = l > 0 || op->stage > 0 ? pool_get(D) : NULL;
        R->be->layer_backward_input(dy, a->z[l], st->W[l], dz, dx, R->rows, h);
        pool_put(D, dy);
        pool_put(D, a->z[l]);
        a->z[l] = NULL;
        a->dz[l] = dz;
        if (!split)
            weight_grad(D, st, a, l);
        dy = dx;
    }
    if (!split) {
        a->live = false;
        D->inflight--;
    }
    if (op->stage > 0) {
        act_set *prev = set_of(D, op->stage - 1, op->mb);
        float **box = prev ? &prev->in_grad : &a->out_grad;
        pool_put(D, *box);
        *box = dy;
    }
    return 0;
}

static int do_weight(device_ctx *D, int i, const pp_op *op)
{
    stage_state *st = &D->st[D->local[op->stage]];
    act_set *a = &st->mb[op->mb];
    if (!a->live || !a->dz[0])
        OP_FAIL(D, i, "no input-gradient state (W before B, or W twice)");
    for (int l = st->k - 1; l >= 0; l--)
        weight_grad(D, st, a, l);
    a->live = false;
    D->inflight--;
    return 0;
}

static int do_send(device_ctx *D, int i, const pp_op *op)
{
    act_set *a = set_of(D, op->stage, op->mb);
    float **box = op->comm == PP_COMM_ACT ? &a->out_act : &a->out_grad;
    if (!*box)
        OP_FAIL(D, i, "nothing to send (its %s has not run)", op->comm == PP_COMM_ACT ? "F" : "B");
    pr_tag tag = {op->comm, op->stage, op->mb};
    D->R->tr->ops->send(D->R->tr, D->rank, op->peer, tag, *box, D->R->slot);
    pool_put(D, *box);
    *box = NULL;
    return 0;
}

static int do_recv(device_ctx *D, int i, const pp_op *op)
{
    run *R = D->R;
    act_set *a = op->comm == PP_COMM_ACT ? set_of(D, op->stage + 1, op->mb)
                                         : set_of(D, op->stage - 1, op->mb);
    float **box = op->comm == PP_COMM_ACT ? &a->in_act : &a->in_grad;
    float *buf = pool_get(D);
    pr_tag want = {op->comm, op->stage, op->mb}, got = {0, 0, 0};
    int rc = R->tr->ops->recv(R->tr, D->rank, op->peer, want, buf, R->slot, R->o->timeout, &got);
    if (rc != PR_RECV_OK) {
        pool_put(D, buf);
        if (rc == PR_RECV_ABORTED)
            return 1; /* another device failed and said why */
        if (rc == PR_RECV_TIMEOUT)
            OP_FAIL(D, i, "nothing arrived from device %d within %g s (timeout)", op->peer,
                    R->o->timeout);
        OP_FAIL(D, i, "device %d sent %s %d.%d instead", op->peer, pp_comm_name(got.comm),
                got.stage, got.mb);
    }
    pool_put(D, *box);
    *box = buf;
    return 0;
}

static void do_update(device_ctx *D)
{
    run *R = D->R;
    size_t h = (size_t)R->m->hidden;
    float lr = (float)R->m->lr;
    for (int s = 0; s < D->nst; s++)
        for (int l = 0; l < D->st[s].k; l++) {
            R->be->sgd(D->st[s].W[l], D->st[s].dW[l], lr, h * h);
            R->be->sgd(D->st[s].b[l], D->st[s].db[l], lr, h);
        }
}

/* flush: every device has finished the step.  The last to arrive closes
 * the step's books (loss, time, progress line). */
static int do_flush(device_ctx *D, int step)
{
    run *R = D->R;
    pthread_mutex_lock(&R->mu);
    if (atomic_load(&R->failed)) {
        pthread_mutex_unlock(&R->mu);
        return 1;
    }
    long gen = R->generation;
    if (++R->arrived == R->p->devices) {
        double t = now_s() - R->t0;
        double sq = 0;
        for (int m = 0; m < R->p->microbatches; m++)
            sq += R->loss_sq[(size_t)step * R->p->microbatches + m];
        double loss = sq / (2.0 * R->m->batch);
        R->res->loss[step] = loss;
        double dt = t - R->res->step_start[step];
        if (step + 1 < R->o->steps)
            R->res->step_start[step + 1] = t;
        R->res->seconds = t;
        if (R->o->progress) {
            fprintf(R->o->progress, "step %d/%d  loss %.6f  time %.3f ms  samples/s %.0f\n",
                    step + 1, R->o->steps, loss, dt * 1e3, dt > 0 ? R->m->batch / dt : 0.0);
            fflush(R->o->progress);
        }
        R->arrived = 0;
        R->generation++;
        pthread_cond_broadcast(&R->cv);
    } else {
        while (R->generation == gen && !atomic_load(&R->failed))
            pthread_cond_wait(&R->cv, &R->mu);
    }
    int failed = atomic_load(&R->failed) && R->generation == gen;
    pthread_mutex_unlock(&R->mu);
    return failed;
}

static int exec_op(device_ctx *D, int i, int step)
{
    const pp_op *op = &D->R->p->dev[D->rank].ops[i];
    size_t rec = (size_t)(D->R->o->record_all ? step : 0) * (size_t)D->R->p->dev[D->rank].n + i;
    D->start[rec] = now_s() - D->R->t0;
    int rc = 0;
    switch (op->kind) {
    case PP_OP_F: rc = do_forward(D, i, op, step); break;
    case PP_OP_B: rc = do_backward(D, i, op); break;
    case PP_OP_W: rc = do_weight(D, i, op); break;
    case PP_OP_SEND: rc = do_send(D, i, op); break;
    case PP_OP_RECV: rc = do_recv(D, i, op); break;
    case PP_OP_UPDATE: do_update(D); break;
    case PP_OP_FLUSH: rc = do_flush(D, step); break;
    default: OP_FAIL(D, i, "unknown op kind %d", op->kind);
    }
    D->end[rec] = now_s() - D->R->t0;
    return rc;
}

static void *device_main(void *arg)
{
    device_ctx *D = arg;
    const pp_device *dv = &D->R->p->dev[D->rank];
    for (int step = 0; step < D->R->o->steps; step++) {
        for (int i = 0; i < dv->n;) {
            if (atomic_load_explicit(&D->R->failed, memory_order_relaxed))
                return NULL;
            const pp_op *op = &dv->ops[i];
            bool comm = op->kind == PP_OP_SEND || op->kind == PP_OP_RECV;
            if (!comm || op->group < 0) {
                if (exec_op(D, i, step))
                    return NULL;
                i++;
                continue;
            }
            /* a group is posted together: sends are buffered, so post them
             * all first; then wait for the receives in list order */
            int j = i;
            while (j < dv->n && dv->ops[j].group == op->group &&
                   (dv->ops[j].kind == PP_OP_SEND || dv->ops[j].kind == PP_OP_RECV))
                j++;
            for (int q = i; q < j; q++)
                if (dv->ops[q].kind == PP_OP_SEND && exec_op(D, q, step))
                    return NULL;
            for (int q = i; q < j; q++)
                if (dv->ops[q].kind == PP_OP_RECV && exec_op(D, q, step))
                    return NULL;
            i = j;
        }
    }
    return NULL;
}

static void device_setup(run *R, device_ctx *D, int rank)
{
    const pp_plan *p = R->p;
    const pr_model *m = R->m;
    size_t h = (size_t)m->hidden;
    int M = p->microbatches;
    D->R = R;
    D->rank = rank;
    D->local = malloc((size_t)p->stages * sizeof(int));
    for (int s = 0; s < p->stages; s++)
        D->local[s] = p->placement[s] == rank ? D->nst++ : -1;
    D->st = calloc((size_t)D->nst > 0 ? (size_t)D->nst : 1, sizeof *D->st);
    float *hw = malloc(h * h * sizeof(float)), *hb = malloc(h * sizeof(float));
    for (int s = 0; s < p->stages; s++) {
        if (D->local[s] < 0)
            continue;
        stage_state *st = &D->st[D->local[s]];
        st->stage = s;
        st->k = m->layers_per_stage[s];
        st->first_layer = m->first_layer[s];
        st->W = calloc((size_t)st->k * 4, sizeof(float *));
        st->b = st->W + st->k;
        st->dW = st->b + st->k;
        st->db = st->dW + st->k;
        for (int l = 0; l < st->k; l++) {
            pr_init_layer(m, st->first_layer + l, hw, hb);
            st->W[l] = R->be->alloc(h * h);
            st->b[l] = R->be->alloc(h);
            st->dW[l] = R->be->alloc(h * h);
            st->db[l] = R->be->alloc(h);
            R->be->upload(st->W[l], hw, h * h);
            R->be->upload(st->b[l], hb, h);
            R->be->zero(st->dW[l], h * h);
            R->be->zero(st->db[l], h);
        }
        st->mb = calloc((size_t)M, sizeof *st->mb);
        st->ptrs = calloc((size_t)M * 3 * st->k, sizeof(float *));
        for (int mb = 0; mb < M; mb++) {
            float **base = st->ptrs + (size_t)mb * 3 * st->k;
            st->mb[mb].x = base;
            st->mb[mb].z = base + st->k;
            st->mb[mb].dz = base + 2 * st->k;
        }
    }
    free(hw);
    free(hb);
    D->host_tmp = malloc(R->slot * sizeof(float));
    D->t_dev = R->be->alloc(R->slot);
    int n = p->dev[rank].n;
    size_t rec = (size_t)R->res->recorded_steps * (size_t)(n > 0 ? n : 1);
    D->start = R->res->start[rank] = calloc(rec, sizeof(double));
    D->end = R->res->end[rank] = calloc(rec, sizeof(double));
}

/* Downloads the device's parameters into the result, frees everything. */
static void device_teardown(run *R, device_ctx *D)
{
    size_t h = (size_t)R->m->hidden;
    for (int s = 0; s < D->nst; s++) {
        stage_state *st = &D->st[s];
        for (int l = 0; l < st->k; l++) {
            size_t L = (size_t)(st->first_layer + l);
            R->be->download(R->res->W + L * h * h, st->W[l], h * h);
            R->be->download(R->res->b + L * h, st->b[l], h);
            R->be->release(st->W[l]);
            R->be->release(st->b[l]);
            R->be->release(st->dW[l]);
            R->be->release(st->db[l]);
        }
        for (int mb = 0; mb < R->p->microbatches; mb++) {
            act_set *a = &st->mb[mb];
            for (int q = 0; q < 3 * st->k; q++)
                pool_put(D, a->x[q]); /* x, z, dz are one array */
            pool_put(D, a->in_act);
            pool_put(D, a->in_grad);
            pool_put(D, a->out_act);
            pool_put(D, a->out_grad);
        }
        free(st->W);
        free(st->mb);
        free(st->ptrs);
    }
    for (int q = 0; q < D->npool; q++)
        R->be->release(D->pool[q]);
    R->be->release(D->t_dev);
    R->res->peak_act[D->rank] = D->peak;
    free(D->pool);
    free(D->host_tmp);
    free(D->st);
    free(D->local);
}

int pr_replay(const pp_plan *p, const pr_model *m, const pr_run_opts *o, pr_run_result *r,
              pp_diag *d)
{
    memset(r, 0, sizeof *r);
    if (o->steps < 1) {
        pp_error(d, "steps must be at least 1");
        return 1;
    }
    size_t h = (size_t)m->hidden;
    run R;
    memset(&R, 0, sizeof R);
    R.p = p;
    R.m = m;
    R.o = o;
    R.be = o->backend ? o->backend : pr_backend_cpu();
    R.tr = o->transport ? o->transport : pr_transport_threads_create(p->devices);
    if (!R.tr) {
        pp_error(d, "out of memory");
        return 1;
    }
    R.rows = m->batch / p->microbatches;
    R.slot = (size_t)R.rows * h;
    R.res = r;
    R.loss_sq = calloc((size_t)o->steps * p->microbatches, sizeof(double));
    pthread_mutex_init(&R.mu, NULL);
    pthread_cond_init(&R.cv, NULL);

    r->devices = p->devices;
    r->W = calloc((size_t)m->layers * h * h, sizeof(float));
    r->b = calloc((size_t)m->layers * h, sizeof(float));
    r->loss = calloc((size_t)o->steps, sizeof(double));
    r->step_start = calloc((size_t)o->steps, sizeof(double));
    r->recorded_steps = o->record_all ? o->steps : 1;
    r->start = calloc((size_t)p->devices, sizeof(double *));
    r->end = calloc((size_t)p->devices, sizeof(double *));
    r->peak_act = calloc((size_t)p->devices, sizeof(int));
    R.dev = calloc((size_t)p->devices, sizeof *R.dev);
    pthread_t *th = calloc((size_t)p->devices, sizeof *th);
    for (int rank = 0; rank < p->devices; rank++)
        device_setup(&R, &R.dev[rank], rank);

    R.t0 = now_s();
    int started = 0;
    for (; started < p->devices; started++)
        if (pthread_create(&th[started], NULL, device_main, &R.dev[started]) != 0) {
            fail(&R, "cannot start the thread of device %d", started);
            break;
        }
    for (int rank = 0; rank < started; rank++)
        pthread_join(th[rank], NULL);
    for (int rank = 0; rank < p->devices; rank++)
        device_teardown(&R, &R.dev[rank]);

    int rc = 0;
    if (atomic_load(&R.failed)) {
        pp_error(d, "%s", R.err);
        rc = 1;
    }
    if (!o->transport)
        R.tr->ops->destroy(R.tr);
    pthread_mutex_destroy(&R.mu);
    pthread_cond_destroy(&R.cv);
    free(R.loss_sq);
    free(R.dev);
    free(th);
    if (rc)
        pr_run_result_free(r);
    return rc;
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
    free(r->W);
    free(r->b);
    free(r->loss);
    free(r->step_start);
    free(r->peak_act);
    memset(r, 0, sizeof *r);
}
