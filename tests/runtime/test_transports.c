/*
 * test_transports.c — transports' host-side logic on the CPU.
 *
 * The local GPU transport (runtime/transport_local.c) runs here with
 * stubbed device operations: host buffers for slots, counters for events.
 * So its waits (a recv posted before its send waits for it, the timeout is
 * the one asked for, an abort wakes it), its FIFO order and tag checks,
 * its slot reuse (a refilled slot waits for its last drain, unless the
 * streams were idle since) and its teardown (every device waited for
 * before any slot is freed) are tested without a GPU.
 *
 * NCCL's group semantics run here too: the threads transport wrapped so
 * that the sends and receives posted inside a group only happen at its
 * end, together (in NCCL they run concurrently, and no buffer of the group
 * may be reused before the group completes).  Replays of the hand-written
 * plans through it must train exactly as single-device training, and no
 * receive of a group may land in a buffer a send of the same group reads.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "clock.h"
#include "plan_gen.h"
#include "pprun.h"
#include "rank_grid.h"
#include "transport_local.h"
#include "test_util.h"

/* ---- the local transport behind stubbed device operations ---- */

typedef struct stub_slot {
    float *buf;
    size_t cap;
    int src, dst;
    bool drained; /* a drain was recorded since the last fill */
} stub_slot;

enum { STUB_MAX_DEVICES = 8 };

typedef struct stub_dev {
    pthread_mutex_t mu;
    int devices, slots, fills, waited_fills, unwaited_refills, drains, freed;
    /* slots freed before both of their devices were waited for: on a GPU a
     * copy on the other device's stream could still be using the buffer */
    int freed_unwaited;
    bool fail_fill, waited[STUB_MAX_DEVICES];
} stub_dev;

static void *stub_slot_new(void *arg, int src, int dst, size_t count)
{
    stub_dev *d = arg;
    stub_slot *s = calloc(1, sizeof *s);
    s->buf = calloc(count ? count : 1, sizeof(float));
    s->cap = count;
    s->src = src;
    s->dst = dst;
    pthread_mutex_lock(&d->mu);
    d->slots++;
    pthread_mutex_unlock(&d->mu);
    return s;
}

static bool stub_fill(void *arg, int src, int dst, void *p, bool wait_drain, const float *data,
                      size_t count)
{
    stub_dev *d = arg;
    stub_slot *s = p;
    pthread_mutex_lock(&d->mu);
    bool fail = d->fail_fill;
    d->fills++;
    d->waited_fills += wait_drain;
    /* reusing a drained slot without waiting: on a GPU the copy could
     * overwrite data the receiver's stream has not read yet */
    d->unwaited_refills += s->drained && !wait_drain;
    pthread_mutex_unlock(&d->mu);
    if (fail)
        return false;
    ck_assert_uint_ge(s->cap, count);
    memcpy(s->buf, data, count * sizeof(float));
    s->drained = false;
    return true;
}

static bool stub_drain(void *arg, int dst, void *p, float *data, size_t count)
{
    stub_dev *d = arg;
    stub_slot *s = p;
    memcpy(data, s->buf, count * sizeof(float));
    s->drained = true;
    pthread_mutex_lock(&d->mu);
    d->drains++;
    pthread_mutex_unlock(&d->mu);
    return true;
}

static void stub_slot_free(void *arg, void *p)
{
    stub_dev *d = arg;
    stub_slot *s = p;
    d->freed++;
    d->freed_unwaited += !d->waited[s->src] || !d->waited[s->dst];
    free(s->buf);
    free(s);
}

static void stub_wait_idle(void *arg, int rank)
{
    stub_dev *d = arg;
    ck_assert_int_lt(rank, d->devices);
    d->waited[rank] = true;
}

static pr_transport *stub_local(stub_dev *d, int devices)
{
    memset(d, 0, sizeof *d);
    ck_assert_int_le(devices, STUB_MAX_DEVICES);
    d->devices = devices;
    pthread_mutex_init(&d->mu, NULL);
    pr_local_dev dev = {.arg = d, .slot_new = stub_slot_new, .fill = stub_fill,
                        .drain = stub_drain, .slot_free = stub_slot_free,
                        .wait_idle = stub_wait_idle};
    char err[100];
    pr_transport *t = pr_transport_local_new(devices, &dev, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    return t;
}

static void stub_destroy(pr_transport *t, stub_dev *d)
{
    t->ops->destroy(t);
    for (int r = 0; r < d->devices; r++)
        ck_assert_msg(d->waited[r], "teardown did not wait for device %d", r);
    ck_assert_int_eq(d->freed_unwaited, 0);
    ck_assert_int_eq(d->freed, d->slots);
    pthread_mutex_destroy(&d->mu);
}

typedef struct recv_job {
    pr_transport *t;
    int dst, src;
    pr_tag want;
    float *data;
    size_t count;
    double timeout, seconds;
    int rc;
    pr_tag got;
} recv_job;

static void *recv_thread(void *arg)
{
    recv_job *j = arg;
    double t0 = pp_now();
    j->rc = j->t->ops->recv(j->t, j->dst, j->src, j->want, j->data, j->count, j->timeout, &j->got);
    j->seconds = pp_now() - t0;
    return NULL;
}

static const pr_tag tag_a = {0, 1, 2}, tag_b = {1, 1, 3};

/* The first multi-device run's first hand-off: device 1 waits for an
 * activation device 0 sends 100 ms later.  (With the condition variable on
 * another clock than its deadline this returned "timeout" after 0 s.) */
START_TEST(local_recv_waits_for_a_later_send)
{
    stub_dev d;
    pr_transport *t = stub_local(&d, 2);
    float out[4] = {0}, in[4] = {1, 2, 3, 4};
    recv_job j = {.t = t, .dst = 1, .src = 0, .want = tag_a, .data = out, .count = 4,
                  .timeout = 10};
    pthread_t th;
    pthread_create(&th, NULL, recv_thread, &j);
    usleep(100 * 1000);
    ck_assert_int_eq(t->ops->send(t, 0, 1, tag_a, in, 4), 0);
    pthread_join(th, NULL);
    ck_assert_msg(j.rc == PR_RECV_OK, "recv returned %d after %.3f s", j.rc, j.seconds);
    ck_assert_msg(j.seconds >= 0.05, "recv returned after %.3f s, before the send", j.seconds);
    ck_assert_mem_eq(out, in, sizeof in);
    stub_destroy(t, &d);
}
END_TEST

/* Nothing sent: the recv gives up after the timeout asked for, not before
 * and not much after. */
START_TEST(local_recv_times_out_after_its_timeout)
{
    stub_dev d;
    pr_transport *t = stub_local(&d, 2);
    float out[4];
    recv_job j = {.t = t, .dst = 0, .src = 1, .want = tag_a, .data = out, .count = 4,
                  .timeout = 0.3};
    recv_thread(&j);
    ck_assert_int_eq(j.rc, PR_RECV_TIMEOUT);
    ck_assert_msg(j.seconds >= 0.29 && j.seconds < 3, "timed out after %.3f s, asked 0.3 s",
                  j.seconds);
    stub_destroy(t, &d);
}
END_TEST

START_TEST(local_abort_wakes_a_waiting_recv)
{
    stub_dev d;
    pr_transport *t = stub_local(&d, 3);
    float out[4];
    recv_job j = {.t = t, .dst = 2, .src = 0, .want = tag_a, .data = out, .count = 4,
                  .timeout = 30};
    pthread_t th;
    pthread_create(&th, NULL, recv_thread, &j);
    usleep(50 * 1000);
    t->ops->abort(t);
    pthread_join(th, NULL);
    ck_assert_int_eq(j.rc, PR_RECV_ABORTED);
    ck_assert_msg(j.seconds < 10, "abort took %.3f s", j.seconds);
    stub_destroy(t, &d);
}
END_TEST

/* Messages of a pair arrive in order; a wrong tag or size is a mismatch
 * that names what came; pairs are independent. */
START_TEST(local_fifo_and_mismatch)
{
    stub_dev d;
    pr_transport *t = stub_local(&d, 2);
    float a[3] = {1, 2, 3}, b[3] = {4, 5, 6}, c[2] = {7, 8}, out[3];
    pr_tag got = {-1, -1, -1};
    ck_assert_int_eq(t->ops->send(t, 0, 1, tag_a, a, 3), 0);
    ck_assert_int_eq(t->ops->send(t, 0, 1, tag_b, b, 3), 0);
    ck_assert_int_eq(t->ops->send(t, 1, 0, tag_a, c, 2), 0);
    ck_assert_int_eq(t->ops->recv(t, 1, 0, tag_a, out, 3, 1, &got), PR_RECV_OK);
    ck_assert_mem_eq(out, a, sizeof a);
    ck_assert_int_eq(t->ops->recv(t, 1, 0, tag_a, out, 3, 1, &got), PR_RECV_MISMATCH);
    ck_assert(got.comm == tag_b.comm && got.stage == tag_b.stage && got.mb == tag_b.mb);
    ck_assert_int_eq(t->ops->recv(t, 0, 1, tag_a, out, 3, 1, &got), PR_RECV_MISMATCH); /* size */
    stub_destroy(t, &d);
}
END_TEST

/* A slot comes back after its recv with a drain pending: the next send
 * into it waits for that drain on the sender's stream; after the streams
 * were idle (a capture starts) it need not.  A larger message gets a new
 * slot. */
START_TEST(local_slot_reuse_waits_for_the_drain)
{
    stub_dev d;
    pr_transport *t = stub_local(&d, 2);
    float in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
    pr_tag got;
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(t->ops->send(t, 0, 1, tag_a, in, 4), 0);
        ck_assert_int_eq(t->ops->recv(t, 1, 0, tag_a, out, 4, 1, &got), PR_RECV_OK);
    }
    ck_assert_int_eq(d.slots, 1);
    ck_assert_int_eq(d.fills, 3);
    ck_assert_int_eq(d.waited_fills, 2);
    pr_transport_local_streams_idle(t);
    ck_assert_int_eq(t->ops->send(t, 0, 1, tag_a, in, 4), 0);
    ck_assert_int_eq(d.waited_fills, 2);
    ck_assert_int_eq(t->ops->recv(t, 1, 0, tag_a, out, 4, 1, &got), PR_RECV_OK);
    ck_assert_int_eq(t->ops->send(t, 0, 1, tag_a, in, 8), 0); /* too big for the free slot */
    ck_assert_int_eq(d.slots, 2);
    ck_assert_int_eq(t->ops->recv(t, 1, 0, tag_a, out, 8, 1, &got), PR_RECV_OK);
    ck_assert_mem_eq(out, in, sizeof in);
    /* the stub saw a drained slot refilled without a wait only after the idle point */
    ck_assert_int_eq(d.unwaited_refills, 1);
    stub_destroy(t, &d);
}
END_TEST

/* A failed fill fails the send and the slot is still freed at teardown. */
START_TEST(local_failed_fill)
{
    stub_dev d;
    pr_transport *t = stub_local(&d, 2);
    float in[2] = {1, 2}, out[2];
    pr_tag got;
    d.fail_fill = true;
    ck_assert_int_ne(t->ops->send(t, 0, 1, tag_a, in, 2), 0);
    ck_assert_int_eq(t->ops->recv(t, 1, 0, tag_a, out, 2, 0.05, &got), PR_RECV_TIMEOUT);
    stub_destroy(t, &d);
}
END_TEST

/* Teardown with slots between every pair of three devices, some still
 * queued: every device is waited for (on a GPU: its GPU synchronised;
 * with --gpus 2 a slot's copies run on two GPUs) before any slot is freed.
 * (The CUDA side once synchronised only the current GPU.) */
START_TEST(local_teardown_waits_for_every_device)
{
    stub_dev d;
    pr_transport *t = stub_local(&d, 3);
    float in[4] = {1, 2, 3, 4}, out[4];
    pr_tag got;
    for (int src = 0; src < 3; src++)
        for (int dst = 0; dst < 3; dst++)
            if (src != dst)
                ck_assert_int_eq(t->ops->send(t, src, dst, tag_a, in, 4), 0);
    ck_assert_int_eq(t->ops->recv(t, 2, 0, tag_a, out, 4, 1, &got), PR_RECV_OK); /* drained */
    ck_assert_int_eq(d.slots, 6);
    stub_destroy(t, &d); /* asserts each slot's devices were waited for first */
}
END_TEST

/* ---- NCCL-style groups over the threads transport ---- */

typedef struct posted {
    bool send;
    int peer;
    pr_tag tag;
    float *buf;
    size_t count;
} posted;

typedef struct group_dev {
    pr_bctx *c;
    bool open;
    posted *ops;
    int n, cap;
} group_dev;

typedef struct grouped_tr {
    pr_transport base;
    pr_transport *inner; /* threads */
    int devices;
    group_dev *dev;
    double timeout;
    int groups, aliased; /* groups completed; recvs that aliased a send of their group */
} grouped_tr;

static void post(group_dev *g, posted op)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 8;
        g->ops = realloc(g->ops, (size_t)g->cap * sizeof *g->ops);
    }
    g->ops[g->n++] = op;
}

static int gr_send(pr_transport *tp, int src, int dst, pr_tag tag, const float *data, size_t count)
{
    grouped_tr *t = (grouped_tr *)tp;
    if (!t->dev[src].open)
        return t->inner->ops->send(t->inner, src, dst, tag, data, count);
    post(&t->dev[src], (posted){true, dst, tag, (float *)data, count});
    return 0; /* the data is read at the group's end */
}

static int gr_recv(pr_transport *tp, int dst, int src, pr_tag want, float *data, size_t count,
                   double timeout, pr_tag *got)
{
    grouped_tr *t = (grouped_tr *)tp;
    if (!t->dev[dst].open)
        return t->inner->ops->recv(t->inner, dst, src, want, data, count, timeout, got);
    post(&t->dev[dst], (posted){false, src, want, data, count});
    return PR_RECV_OK; /* the data arrives at the group's end */
}

static int gr_group_begin(pr_transport *tp, int rank)
{
    grouped_tr *t = (grouped_tr *)tp;
    t->dev[rank].open = true;
    t->dev[rank].n = 0;
    return 0;
}

/* The group runs: every send reads its buffer, every recv writes its own,
 * all at once; a recv buffer that is also a send buffer of the group is a
 * race on a GPU. */
static int gr_group_end(pr_transport *tp, int rank)
{
    grouped_tr *t = (grouped_tr *)tp;
    group_dev *g = &t->dev[rank];
    g->open = false;
    for (int r = 0; r < g->n; r++)
        for (int s = 0; s < g->n && !g->ops[r].send; s++)
            if (g->ops[s].send && g->ops[s].buf == g->ops[r].buf) {
                __atomic_add_fetch(&t->aliased, 1, __ATOMIC_SEQ_CST);
                pr_bctx_fail(g->c, "group:", "a recv lands in the buffer a send of the same "
                                             "group is still reading");
                return 1;
            }
    for (int q = 0; q < g->n; q++)
        if (g->ops[q].send && t->inner->ops->send(t->inner, rank, g->ops[q].peer, g->ops[q].tag,
                                                  g->ops[q].buf, g->ops[q].count))
            return 1;
    for (int q = 0; q < g->n; q++) {
        pr_tag got;
        if (!g->ops[q].send &&
            t->inner->ops->recv(t->inner, rank, g->ops[q].peer, g->ops[q].tag, g->ops[q].buf,
                                g->ops[q].count, t->timeout, &got) != PR_RECV_OK) {
            pr_bctx_fail(g->c, "group:", "a recv of the group did not complete");
            return 1;
        }
    }
    __atomic_add_fetch(&t->groups, 1, __ATOMIC_SEQ_CST);
    return 0;
}

static void gr_attach(pr_transport *tp, int rank, pr_bctx *c) { ((grouped_tr *)tp)->dev[rank].c = c; }

static void gr_abort(pr_transport *tp)
{
    grouped_tr *t = (grouped_tr *)tp;
    t->inner->ops->abort(t->inner);
}

static void gr_destroy(pr_transport *tp)
{
    grouped_tr *t = (grouped_tr *)tp;
    t->inner->ops->destroy(t->inner);
    for (int d = 0; d < t->devices; d++)
        free(t->dev[d].ops);
    free(t->dev);
}

static const pr_transport_ops grouped_ops = {
    .name = "nccl-style groups", .send = gr_send, .recv = gr_recv, .abort = gr_abort,
    .destroy = gr_destroy, .attach = gr_attach, .group_begin = gr_group_begin,
    .group_end = gr_group_end,
};

/* Two replicas of a 2-device GPipe (docs/plan-format.md, "Data
 * parallelism"), written by hand: every rank on the local transport. */
static const char dp_plan[] =
    "{\"format\": \"ppcc-plan\", \"version\": 1,"
    " \"pipeline\": {\"schedule\": \"gpipe\", \"devices\": 2, \"stages\": 2, \"microbatches\": 2,"
    "  \"placement\": [0, 1], \"split_backward\": false, \"data_parallel\": 2, \"zero\": false,"
    "  \"ranks\": [[0, 0], [0, 1], [1, 0], [1, 1]]},"
    " \"model\": {\"kind\": \"mlp\", \"layers\": 4, \"hidden\": 16, \"batch\": 8, \"layers_per_stage\": [2, 2],"
    "  \"optimizer\": \"sgd\", \"lr\": 0.05, \"seed\": 7},"
    " \"memory\": {\"activation\": 1, \"limit\": 0},"
    " \"devices\": [{\"rank\": 0, \"stages\": [0], \"ranks\": [0, 1], \"ops\": ["
    "   {\"op\": \"F\", \"stage\": 0, \"mb\": 0},"
    "   {\"op\": \"send\", \"kind\": \"act\", \"stage\": 0, \"mb\": 0, \"peer\": 1, \"group\": 0},"
    "   {\"op\": \"F\", \"stage\": 0, \"mb\": 1},"
    "   {\"op\": \"send\", \"kind\": \"act\", \"stage\": 0, \"mb\": 1, \"peer\": 1, \"group\": 1},"
    "   {\"op\": \"recv\", \"kind\": \"grad\", \"stage\": 1, \"mb\": 0, \"peer\": 1, \"group\": 2},"
    "   {\"op\": \"B\", \"stage\": 0, \"mb\": 0},"
    "   {\"op\": \"recv\", \"kind\": \"grad\", \"stage\": 1, \"mb\": 1, \"peer\": 1, \"group\": 3},"
    "   {\"op\": \"B\", \"stage\": 0, \"mb\": 1},"
    "   {\"op\": \"allreduce\", \"what\": \"stage\", \"stage\": 0, \"device\": 0, \"ranks\": [0, 1]},"
    "   {\"op\": \"update\"}, {\"op\": \"flush\"}]},"
    "  {\"rank\": 1, \"stages\": [1], \"ranks\": [2, 3], \"ops\": ["
    "   {\"op\": \"recv\", \"kind\": \"act\", \"stage\": 0, \"mb\": 0, \"peer\": 0, \"group\": 0},"
    "   {\"op\": \"F\", \"stage\": 1, \"mb\": 0},"
    "   {\"op\": \"recv\", \"kind\": \"act\", \"stage\": 0, \"mb\": 1, \"peer\": 0, \"group\": 1},"
    "   {\"op\": \"F\", \"stage\": 1, \"mb\": 1},"
    "   {\"op\": \"B\", \"stage\": 1, \"mb\": 0},"
    "   {\"op\": \"send\", \"kind\": \"grad\", \"stage\": 1, \"mb\": 0, \"peer\": 0, \"group\": 2},"
    "   {\"op\": \"B\", \"stage\": 1, \"mb\": 1},"
    "   {\"op\": \"send\", \"kind\": \"grad\", \"stage\": 1, \"mb\": 1, \"peer\": 0, \"group\": 3},"
    "   {\"op\": \"allreduce\", \"what\": \"stage\", \"stage\": 1, \"device\": 1, \"ranks\": [2, 3]},"
    "   {\"op\": \"update\"}, {\"op\": \"flush\"}]}]}";

/* The local transport carries a data-parallel run: each replica's
 * pipeline and the stage reductions over the replicas go through its
 * slots (4 ranks), and the run trains as single-device training on the
 * global batch. */
START_TEST(local_runs_replicas)
{
    pp_plan p;
    pr_model m;
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_msg(pr_plan_load_text("dp.json", dp_plan, strlen(dp_plan), &td.diag, &p, &m) == 0, "%s",
                  tu_diag_text(&td));
    stub_dev d;
    pr_transport *t = stub_local(&d, 4);
    int steps = 2;
    pr_run_opts o = {.steps = steps, .timeout = 10, .transport = t};
    pr_run_result r;
    ck_assert_msg(pr_replay(&p, &m, &o, &r, &td.diag) == 0, "%s", tu_diag_text(&td));
    /* each replica's 2 micro-batches x 2 hand-offs, and 2 parts of each stage's reduction */
    ck_assert_int_eq(d.drains, steps * (2 * 2 * 2 + 2 * 2 * 2));
    size_t hh = (size_t)m.layers * m.hidden * m.hidden, hb = (size_t)m.layers * m.hidden;
    float *W = malloc(hh * sizeof(float)), *b = malloc(hb * sizeof(float));
    float *rW = malloc(hh * sizeof(float)), *rb = malloc(hb * sizeof(float));
    double *loss = malloc((size_t)steps * sizeof(double));
    pr_init_params(&m, W, b);
    pr_reference_train(&m, steps, W, b, loss);
    pr_mlp_unpack(&m, r.params, rW, rb);
    double ew = pr_max_rel_err(rW, W, hh), eb = pr_max_rel_err(rb, b, hb);
    ck_assert_msg(ew <= 1e-5 && eb <= 1e-5, "weights %g, biases %g", ew, eb);
    ck_assert_msg(fabs(r.loss[steps - 1] - loss[steps - 1]) <= 1e-5 * fabs(loss[steps - 1]), "loss %g, not %g",
                  r.loss[steps - 1], loss[steps - 1]);
    pr_run_result_free(&r);
    stub_destroy(t, &d);
    tu_diag_close(&td);
    pp_plan_free(&p);
    pr_model_free(&m);
    free(W), free(b), free(rW), free(rb), free(loss);
}
END_TEST

/* One process a rank (pprun under --nproc, torchrun, srun) on the CPU:
 * each rank of a plan is its own pr_replay (one_rank, as each process
 * runs it), all sharing one threads transport in place of NCCL.  Each rank
 * trains its device's layers bit for bit as the one-process run does (the
 * same sums in the same order), replicas above 0 included (their result is
 * their own: no replica 0 in the process to compare with); the reporting
 * rank, to which the others send their losses, ends with the one-process
 * run's losses bit for bit and is the one that prints the steps. */
typedef struct one_rank_run {
    const pp_plan *p;
    const pr_model *m;
    pr_transport *t;
    int rank, rc;
    FILE *progress;
    pr_run_result r;
    tu_diag td;
} one_rank_run;

static void *one_rank_main(void *arg)
{
    one_rank_run *u = arg;
    pr_run_opts o = {.steps = 2, .timeout = 10, .transport = u->t, .one_rank = true, .rank = u->rank,
                     .progress = u->progress};
    u->rc = pr_replay(u->p, u->m, &o, &u->r, &u->td.diag);
    return NULL;
}

/* The lines a progress file holds. */
static int lines_of(FILE *f)
{
    rewind(f);
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    return n;
}

static void one_rank_runs_match(const char *text)
{
    pp_plan p;
    pr_model m;
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_msg(pr_plan_load_text("plan.json", text, strlen(text), &td.diag, &p, &m) == 0, "%s",
                  tu_diag_text(&td));
    pr_grid g = {p.devices, p.replicas};
    int world = pr_grid_world(g), steps = 2, reporter = pr_reporting_rank(&p);
    pr_run_opts all = {.steps = steps, .timeout = 10};
    pr_run_result whole;
    ck_assert_msg(pr_replay(&p, &m, &all, &whole, &td.diag) == 0, "%s", tu_diag_text(&td));
    pr_transport *t = pr_transport_threads_create(world, NULL);
    one_rank_run *u = calloc((size_t)world, sizeof *u);
    pthread_t *th = calloc((size_t)world, sizeof *th);
    for (int q = 0; q < world; q++) {
        u[q] = (one_rank_run){.p = &p, .m = &m, .t = t, .rank = q, .progress = tmpfile()};
        ck_assert_ptr_nonnull(u[q].progress);
        tu_diag_open(&u[q].td);
        ck_assert(pthread_create(&th[q], NULL, one_rank_main, &u[q]) == 0);
    }
    for (int q = 0; q < world; q++)
        pthread_join(th[q], NULL);
    for (int q = 0; q < world; q++) {
        char who[64];
        pr_grid_name(g, q, who, sizeof who);
        ck_assert_msg(u[q].rc == 0, "%s: %s", who, tu_diag_text(&u[q].td));
        int dev = pr_grid_device(g, q), layers = 0;
        for (int s = 0; s < p.stages; s++)
            if (p.placement[s] == dev)
                for (int l = 0; l < m.layers_per_stage[s]; l++) {
                    int L = m.first_layer[s] + l;
                    size_t n = (size_t)(m.param_off[L + 1] - m.param_off[L]);
                    ck_assert_msg(memcmp(u[q].r.params + m.param_off[L], whole.params + m.param_off[L],
                                         n * sizeof(float)) == 0,
                                  "%s: layer %d differs from the one-process run", who, L);
                    layers++;
                }
        ck_assert_int_gt(layers, 0);
        if (q == reporter) {
            for (int k = 0; k < steps; k++)
                ck_assert_msg(memcmp(&u[q].r.loss[k], &whole.loss[k], sizeof(double)) == 0,
                              "%s: step %d's loss %.17g, the one-process run's %.17g", who, k + 1,
                              u[q].r.loss[k], whole.loss[k]);
            ck_assert_int_eq(lines_of(u[q].progress), steps);
        }
        fclose(u[q].progress);
        pr_run_result_free(&u[q].r);
        tu_diag_close(&u[q].td);
    }
    free(u);
    free(th);
    t->ops->destroy(t);
    pr_run_result_free(&whole);
    tu_diag_close(&td);
    pp_plan_free(&p);
    pr_model_free(&m);
}

START_TEST(one_rank_a_process_with_replicas)
{
    one_rank_runs_match(dp_plan);
}
END_TEST

/* ppcc's plan of a schedule under -D settings, as text (malloc'd). */
static char *ppcc_plan(const char *schedule, const char *settings)
{
    const char *build = getenv("PP_BUILD_ROOT");
    ck_assert_ptr_nonnull(build);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/compiler/ppcc %s %s -o -", build, tu_src_path(schedule), settings);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t cap = 1 << 16, n = 0, got;
    char *text = malloc(cap);
    while ((got = fread(text + n, 1, cap - n - 1, f)) > 0)
        if ((n += got) + 1 == cap)
            text = realloc(text, cap *= 2);
    text[n] = '\0';
    ck_assert_int_eq(pclose(f), 0);
    return text;
}

/* Plans whose losses are on more ranks than the reporting one: mirrored
 * (two last stages, each with half the micro-batches), with replicas and
 * both, an mlp and a gpt. */
static const char *const shared_loss_plans[][2] = {
    {"schedules/dualpipe.pp", "-D devices=2 -D microbatches=4"},
    {"schedules/dualpipe.pp", "-D devices=2 -D microbatches=4 -D data_parallel=2"},
    {"schedules/gpt.pp", "-D devices=2 -D microbatches=2 -D data_parallel=3 -D model.batch=6 -D model.layers=2 "
                         "-D model.hidden=32 -D model.seq=16"},
};

START_TEST(one_rank_a_process_shares_the_losses)
{
    char *text = ppcc_plan(shared_loss_plans[_i][0], shared_loss_plans[_i][1]);
    one_rank_runs_match(text);
    free(text);
}
END_TEST

/* Stage reductions under NCCL's group semantics: each phase's sends and
 * receives run together at its group's end, no receive lands in a buffer
 * a send of its group reads, and the run trains as single-device training
 * (the 2 x 2 plan of local_runs_replicas). */
START_TEST(groups_carry_replicas)
{
    pp_plan p;
    pr_model m;
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_msg(pr_plan_load_text("dp.json", dp_plan, strlen(dp_plan), &td.diag, &p, &m) == 0, "%s",
                  tu_diag_text(&td));
    int world = p.devices * p.replicas;
    grouped_tr t = {.base.ops = &grouped_ops, .inner = pr_transport_threads_create(world, NULL), .devices = world,
                    .timeout = 10};
    t.dev = calloc((size_t)world, sizeof *t.dev);
    int steps = 2;
    pr_run_opts o = {.steps = steps, .timeout = 10, .transport = &t.base};
    pr_run_result r;
    ck_assert_msg(pr_replay(&p, &m, &o, &r, &td.diag) == 0, "%s (%d recvs aliased a send of their group)",
                  tu_diag_text(&td), t.aliased);
    /* each rank a step: its 4 transfers' groups, and the 2 phases of its stage's reduction */
    ck_assert_int_eq(t.groups, steps * world * (4 + 2));
    size_t hh = (size_t)m.layers * m.hidden * m.hidden, hb = (size_t)m.layers * m.hidden;
    float *W = malloc(hh * sizeof(float)), *b = malloc(hb * sizeof(float));
    float *rW = malloc(hh * sizeof(float)), *rb = malloc(hb * sizeof(float));
    double *loss = malloc((size_t)steps * sizeof(double));
    pr_init_params(&m, W, b);
    pr_reference_train(&m, steps, W, b, loss);
    pr_mlp_unpack(&m, r.params, rW, rb);
    double ew = pr_max_rel_err(rW, W, hh), eb = pr_max_rel_err(rb, b, hb);
    ck_assert_msg(ew <= 1e-5 && eb <= 1e-5, "weights %g, biases %g", ew, eb);
    pr_run_result_free(&r);
    gr_destroy(&t.base);
    tu_diag_close(&td);
    pp_plan_free(&p);
    pr_model_free(&m);
    free(W), free(b), free(rW), free(rb), free(loss);
}
END_TEST

static const char *const group_plans[] = {
    "1f1b-2x4", "gpipe-4x8", "interleaved-2x2x4", "same-device-2x4", "zb-2x4",
};

/* Every hand-written plan, 2 steps, under group semantics: no recv aliases
 * a send of its group, and the weights are single-device training's. */
START_TEST(groups_never_alias_and_train_right)
{
    tg_spec spec;
    ck_assert(tg_named(group_plans[_i], &spec));
    char *text = tg_plan_json(&spec);
    pp_plan p;
    pr_model m;
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_msg(pr_plan_load_text("plan.json", text, strlen(text), &td.diag, &p, &m) == 0,
                  "%s", tu_diag_text(&td));
    grouped_tr t = {.base.ops = &grouped_ops, .inner = pr_transport_threads_create(p.devices, NULL),
                    .devices = p.devices, .timeout = 10};
    t.dev = calloc((size_t)p.devices, sizeof *t.dev);
    int steps = 2;
    pr_run_opts o = {.steps = steps, .timeout = 10, .transport = &t.base};
    pr_run_result r;
    int rc = pr_replay(&p, &m, &o, &r, &td.diag);
    ck_assert_msg(rc == 0, "%s: %s (%d recvs aliased a send of their group, %d groups completed)",
                  group_plans[_i], tu_diag_text(&td), t.aliased, t.groups);
    ck_assert_int_gt(t.groups, 0);
    for (int d = 0; d < p.devices; d++) /* the plan-sized pools count the held buffers */
        ck_assert_msg(r.pool_misses[d] == 0, "device %d allocated %d buffers during the run", d,
                      r.pool_misses[d]);
    size_t hh = (size_t)m.layers * m.hidden * m.hidden, hb = (size_t)m.layers * m.hidden;
    float *W = malloc(hh * sizeof(float)), *b = malloc(hb * sizeof(float));
    double *loss = malloc((size_t)steps * sizeof(double));
    pr_init_params(&m, W, b);
    pr_reference_train(&m, steps, W, b, loss);
    float *rW = malloc(hh * sizeof(float)), *rb = malloc(hb * sizeof(float));
    pr_mlp_unpack(&m, r.params, rW, rb);
    double ew = pr_max_rel_err(rW, W, hh), eb = pr_max_rel_err(rb, b, hb);
    free(rW), free(rb);
    ck_assert_msg(ew <= 1e-5 && eb <= 1e-5, "%s: weights %g, biases %g", group_plans[_i], ew, eb);
    pr_run_result_free(&r);
    gr_destroy(&t.base);
    tu_diag_close(&td);
    pp_plan_free(&p);
    pr_model_free(&m);
    free(W), free(b), free(loss), free(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("transports");
    TCase *tc = tcase_create("local");
    tcase_add_test(tc, local_recv_waits_for_a_later_send);
    tcase_add_test(tc, local_recv_times_out_after_its_timeout);
    tcase_add_test(tc, local_abort_wakes_a_waiting_recv);
    tcase_add_test(tc, local_fifo_and_mismatch);
    tcase_add_test(tc, local_slot_reuse_waits_for_the_drain);
    tcase_add_test(tc, local_failed_fill);
    tcase_add_test(tc, local_teardown_waits_for_every_device);
    tcase_add_test(tc, local_runs_replicas);
    tcase_add_test(tc, one_rank_a_process_with_replicas);
    tcase_add_loop_test(tc, one_rank_a_process_shares_the_losses, 0,
                        (int)(sizeof shared_loss_plans / sizeof *shared_loss_plans));
    suite_add_tcase(s, tc);
    tc = tcase_create("groups");
    tcase_add_test(tc, groups_carry_replicas);
    tcase_add_loop_test(tc, groups_never_alias_and_train_right, 0,
                        (int)(sizeof group_plans / sizeof *group_plans));
    suite_add_tcase(s, tc);
    return tu_run(s);
}
