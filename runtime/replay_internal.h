/*
 * replay_internal.h — the state of a replay, shared by the files that make
 * one, each calling only those listed before it (docs/layout.md):
 *   run_state.c        how a run fails, its buffers, its result's arrays;
 *   weight_versions.c  which weights an op computes with, keeping old ones;
 *   replay.c           a device's replay of its list, and the harness a run
 *                      is made on (run_open, device_setup, device_main, ...);
 *   data_parallel.c    a stage's reduction over its replicas (data_parallel
 *                      = R: all-reduce, or ZeRO-1's reduce-scatter, sharded
 *                      update and all-gather), called by replay.c's ops;
 *   step_losses.c      one process a rank: the step's losses to the rank
 *                      that reports it, called by replay.c's flush;
 *   pool_plan.c        the dry run on that harness that sizes the pools;
 *   run.c              pr_replay: sizing, the device threads, the watchdog,
 *                      the CUDA graph.
 * Not part of pprun's interface: nothing outside runtime/ includes it.
 */
#ifndef PPRUN_REPLAY_INTERNAL_H
#define PPRUN_REPLAY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "backend.h"
#include "layer.h"
#include "pprun.h"
#include "transport.h"

/* A (stage, micro-batch)'s activations on its device: per layer, its
 * kept input and the buffers its kind declares (layer.h), and the
 * mailboxes through which F/B hand data to the next op (in_act, in_grad)
 * or to a send (out_act, out_grad). */
typedef struct act_set {
    float **x, **act_b, **act_w, **grad_w; /* [k] each */
    float *in_act, *in_grad, *out_act, *out_grad;
    bool live;  /* F done, activations held */
    bool acts;  /* every layer's activations held (F without recompute, or R): B may run */
    bool grads; /* B done, W not yet (split backward) */
    int ver;   /* pipedream: id of the weight version its F used */
    int bstep; /* vertical sync: 1 + the step of its last B (0: none yet) */
} act_set;

/* A stashed weight version (pipedream): what in-flight micro-batches' B
 * still need after later updates moved the stage on (docs/async.md). */
typedef struct weight_stash {
    int id, refs; /* refs == 0: a free slot */
    float *P;     /* the stage's parameter blocks, laid out as stage_state.P */
} weight_stash;

typedef struct stage_state {
    int stage, k, first_layer;
    const pr_layer_kind **kind; /* [k] */
    size_t *off;                /* [k + 1]: layer l's block at P + off[l] (aligned) */
    float *P, *G, *S;           /* parameters, gradients, optimizer state (off[k] floats each,
                                   S: off[k] * opt_state), in the device's arena */
    act_set *mb;                /* [microbatches] */
    float **ptrs;               /* storage of every act_set's x, act_b, act_w, grad_w */
    bool recompute;             /* the plan has R for this stage: F keeps only x[0] */
    /* Weight versions (docs/async.md).  P is always the current one.
     * pipedream: its id is cur_ver and cur_refs in-flight F used it; older
     * versions some B still needs are in stash.  2bw: oldP holds the
     * previous step's weights, which F and B use. */
    int cur_ver, cur_refs, versions, peak_versions;
    weight_stash *stash;
    int nstash;
    float *oldP; /* 2bw, in the arena */
} stage_state;

/* The activation pool: buffers by size (every size a layer kind declares,
 * and the tensors between stages). */
enum { POOL_CLASSES = 8 };
typedef struct pool_class {
    size_t floats;
    float **free;
    int n, cap;
    int taken; /* buffers allocated beyond the preallocated ones */
} pool_class;

/* What the dry run counted for a device: its pool, by size. */
typedef struct pool_shape {
    int n;
    size_t floats[POOL_CLASSES];
    int count[POOL_CLASSES];
} pool_shape;

typedef struct run run;

typedef struct device_ctx {
    run *R;
    int rank;         /* its world rank: pp_rank_of(dev, replica, R->replicas) */
    int dev, replica; /* the pipeline device whose list it runs, and its replica */
    int row0;         /* its replica's first row of the global batch (docs/dsl.md) */
    pr_bctx *bc;
    pr_layer_env env; /* what the model's layers compute with */
    stage_state *st;
    int nst;
    int *local; /* [stages] -> index in st, or -1 */
    float *arena; /* the one allocation: parameters, gradients, state, pool */
    pool_class pool[POOL_CLASSES];
    int npool, allocated;
    float **extra; /* buffers allocated beyond the arena, released at the end */
    int nextra, cap_extra;
    float **held; /* sent inside the open group: back to the pool at its end */
    int nheld, cap_held;
    bool in_group;
    /* Asynchronous groups (docs/pprun.md, "Overlap"): pair[i] links the
     * first op of a group that has a wait and that wait, both ways (-1:
     * none); posted[i] the buffer of comm op i of a posted group (a send's
     * source, kept until the wait; a recv's destination, taken at the
     * post); lane[] the step's posted groups (their first ops) in post
     * order, lane_at[i] the position of group i in it; the first
     * lane_recvd have had their receives issued (transports without
     * recv_posts issue them at a wait, in this order). */
    int *pair, *lane, *lane_at;
    float **posted;
    double *mem_posted; /* [n] what op i adds to mem.posted (pp_mem_posted_deltas) */
    int lane_n, lane_recvd;
    float *loss_scratch; /* the model's loss scratch (the MLP's targets) */
    /* A tied parameter's copy (layer.h, tied_floats) on the device of the
     * last stage when another holds the first: values, gradient, state. */
    float *tied_P, *tied_G, *tied_S;
    size_t tied_n;
    float *tied_recv; /* the other device's tied gradient, at an allreduce */
    float *mirror_recv; /* a mirrored plan: the other copy's gradients of a stage, at its allreduce */
    float *loss_row;  /* one process a rank: its step's losses on their way to the reporter (step_losses.c) */
    float *dp_recv;   /* a replica's part of a stage's gradients, at a reduction */
    size_t dp_recv_n;
    bool own_times;   /* start/end are its own (a replica > 0), not the result's */
    int updates_per_step; /* update ops in its list */
    pp_mem_state mem; /* activations held now (activation_memory.c) */
    long peak_full;   /* the most sets held in full */
    double peak_mem;  /* peak memory, in the plan's memory unit */
    double *start, *end;
    /* What the device is doing, read by the other devices and the watchdog
     * (run.c) to name a device that is stuck: the op being executed (-1
     * between ops), since when (seconds since the run's t0: the op's start,
     * or between ops the last one's end), whether it is inside a wait that
     * ends by itself and that a failed run's abort wakes (a receive, the
     * flush's barrier and communication, a group's start and end), and the
     * longest an op of it has computed (its waits left out). */
    atomic_int cur_op;
    _Atomic double op_since;
    atomic_int waiting;
    _Atomic double longest;
    double waited;     /* seconds spent in waits, by the device's thread */
    long barrier_seen; /* 1 + the generation of the barrier it is at (under R->mu) */
    bool returned;     /* its thread has ended (under R->mu) */
} device_ctx;

struct run {
    const pp_plan *p;
    const pr_model *m;
    const pr_run_opts *o;
    const pr_backend *be;
    pr_transport *tr;
    int rows;    /* per micro-batch */
    int replicas; /* data_parallel (1: none): the world is p->devices x replicas ranks */
    size_t slot; /* floats of a tensor between stages (the model's slot_floats) */
    double *loss_sq; /* [steps * replicas * microbatches]: sum (y - t)^2 of each micro-batch */
    double t0;
    pr_run_result *res;
    device_ctx *dev;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived;
    long generation;
    int finished;   /* device threads that have returned (under mu) */
    pp_diag *diag;  /* where the first error is printed when it happens */
    bool reported;  /* it has been */
    int step_lo, step_hi; /* the device threads run steps [lo, hi) */
    bool dry;             /* counting pool buffers: no barrier at flush */
    int first, last;      /* ranks this process runs: [first, last] */
    atomic_int failed;
    double failed_at;     /* pp_now() of the first failure (under mu) */
    char err[640];
    bool ignore_stash; /* test hook pr_test_ignore_stash: B on the current weights */
    int *vsync_ver;    /* vertical sync: [microbatches] k(m) - t*M, or NULL (docs/async.md) */
};

/* run_state.c */
/* Ends the run with the message (the first error wins, and when it came
 * is kept in failed_at): every device waiting is woken and the transport
 * aborted. */
void run_fail(run *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* count floats from the backend (declared weights when weight) for what
 * fmt names; NULL, and the run failed naming the device, it and its size,
 * when the backend has no room. */
float *replay_buffer(device_ctx *D, bool weight, size_t count, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Names rank q: "device 2" with one replica, "rank 5 (device 2, replica 1)". */
const char *rank_name(const run *R, int q, char *buf, size_t size);
/* "device 2 op 7 (F1.3)" into buf (with replicas "rank 5 (device 2,
 * replica 1) op 7 (F1.3)"); returns buf. */
const char *op_place(const run *R, int rank, int i, char *buf, size_t size);
/* What a message with tag t is, for an error: "act 1.3", "a part of
 * collective #2", "its losses of step 4". */
const char *tag_name(pr_tag t, char *buf, size_t size);
/* params: room for the trained W and b (the dry run has none). */
void result_alloc(pr_run_result *r, const pp_plan *p, const pr_model *m, int steps,
                  bool record_all, bool params);

/* replay.c: the harness.  run_open fills R for plan p on be and tr, its
 * results in res, devices [0, devices) (the caller narrows first/last and
 * allocates loss_sq and dev), with a mutex and a CLOCK_MONOTONIC condition
 * variable (clock.h); run_close releases what R holds. */
void run_open(run *R, const pp_plan *p, const pr_model *m, const pr_run_opts *o, const pr_backend *be,
              pr_transport *tr, pr_run_result *res);
void run_close(run *R);
/* A device's life: its buffers and parameters (setup), its thread's replay
 * of steps [R->step_lo, R->step_hi) (main), and the parameters downloaded
 * into the result and everything freed (teardown). */
int device_setup(run *R, device_ctx *D, int rank, const pool_shape *pool);
void *device_main(void *arg);
void device_teardown(run *R, device_ctx *D);
/* The step's books (loss, time, progress line); false, with why, when the
 * loss is not finite. */
bool close_step(run *R, int step, char *why, size_t len);
/* The device computes the loss (owns the last stage). */
bool has_loss(const device_ctx *D);

/* weight_versions.c (docs/async.md) */
bool weights_for(device_ctx *D, stage_state *st, const act_set *a, bool backward, float **P);
int *vsync_versions(const pp_plan *p);
void stash_release(device_ctx *D, stage_state *st, int ver);
void keep_version(device_ctx *D, stage_state *st, int step);
void versions_setup(device_ctx *D, stage_state *st);
void versions_teardown(device_ctx *D, stage_state *st);

/* The world rank of pipeline device dev in D's replica: whom D's ops'
 * peers name (docs/plan-format.md, "Data parallelism"). */
static inline int peer_rank(const device_ctx *D, int dev)
{
    return pp_rank_of(dev, D->replica, D->R->replicas);
}

/* data_parallel.c (docs/plan-format.md, "Data parallelism") */
/* The floats of the stage's parameters and gradients a reduction covers:
 * its layers' blocks, and the tied copy on the last stage's device. */
size_t dp_stage_floats(const device_ctx *D, const stage_state *st);
/* [lo, hi) of those: the part replica r updates under ZeRO-1. */
void dp_shard(const device_ctx *D, const stage_state *st, int r, size_t *lo, size_t *hi);
/* The floats of optimizer state a stage keeps: all of it, or under ZeRO-1
 * its shard's (the tied copy's included on the last stage). */
size_t dp_state_floats(const device_ctx *D, const stage_state *st);
/* The receive buffer a device's reductions need (0: none). */
size_t dp_recv_floats(const device_ctx *D);
/* The op i, an allreduce of group g over the device's replicas: STAGE
 * (all-reduce), SHARD (reduce-scatter) or GATHER (all-gather of the
 * parameters).  Nonzero when it failed (R failed, naming it). */
int dp_reduce(device_ctx *D, int i, const pp_op *op, const pp_coll *g);
/* ZeRO-1's update of the stage: only this replica's shard, with its
 * shard's optimizer state; the rest of the gradients is zeroed. */
void dp_update_shard(device_ctx *D, stage_state *st);
/* At the teardown of a replica above 0: whether layer l of the stage
 * differs from the result (replica 0's, downloaded first); if so the run
 * fails, naming both (the replicas must end equal, bit for bit). */
bool dp_differs(device_ctx *D, const stage_state *st, int l);

/* step_losses.c (docs/pprun.md, "Data parallelism"): one process a rank. */
/* The floats of D's buffer for its losses' row (0: it needs none: one
 * process holds every rank, or D holds no losses). */
size_t step_losses_floats(const run *R, const device_ctx *D);
/* At D's flush of step, after it read its losses: sends them to the
 * reporting rank, or there adds every other rank's into the table.
 * Nonzero when it failed (R failed, naming the rank). */
int share_step_losses(device_ctx *D, int step);

/* pool_plan.c: pools[rank] = the activation buffers each device's list
 * takes, by size; bytes[rank] = everything its replay allocates from the
 * backend (parameters, gradients, optimizer state, weight versions, the
 * loss's scratch and those buffers). */
int pool_sizes(const pp_plan *p, const pr_model *m, pool_shape *pools, double *bytes, pp_diag *d);

#endif
