/*
 * transport_cuda.cu — the two GPU transports.
 *
 * local: every pipeline device in this process (one or more GPUs); the
 * queues and host-side waits are transport_local.c's, this file gives them
 * the device operations.  A send copies, on the sender's stream, into a
 * message slot on the receiver's GPU (cudaMemcpyAsync, or
 * cudaMemcpyPeerAsync across GPUs) and records the slot's `filled` event;
 * the recv makes the receiver's stream wait for it, copies out and records
 * `drained`, which the next send into that slot waits for.  The host only
 * waits until the matching send has been issued, so hand-offs never stall
 * a stream on the host, and a captured step turns them into graph edges.
 * An asynchronous group's sends (a group the plan waits for later) copy
 * on the sender's communication stream instead, after an event recorded
 * on its compute stream; the group's completion is an event on that
 * stream, which the compute stream waits for at the plan's wait (a captured
 * step: the stream joins the capture through the first event and is joined
 * back at the wait).
 *
 * nccl: one process per GPU; ncclSend/ncclRecv on a communication stream
 * that waits for the compute stream before a group and is waited for after
 * it, or, for an asynchronous group, at the plan's wait (a completion
 * event per group).  Ranks that die or hang end in an error after the timeout: the
 * communicator is non-blocking, every wait polls ncclCommGetAsyncError,
 * and a deadline aborts it (ncclCommAbort).  With data parallelism the
 * world is D x R ranks (rank_grid.h) from the one unique id; a second
 * communicator per replica group is split from it (color = the device,
 * key = the replica) and carries the messages between replicas of one
 * device (the stages' reductions, data_parallel.c), the world one the
 * pipeline's, between world ranks of one replica.
 */
#include <dlfcn.h>
#include <nccl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "cuda_ctx.cuh"
#include "rank_grid.h"
#include "transport_local.h"

/* ---------------- local ---------------- */

/* The device side of the local transport (the queues and waits are
 * transport_local.c's): a slot is a buffer on the receiver's GPU and two
 * events, filled recorded on the sender's stream, drained on the
 * receiver's. */
typedef struct cuda_slot {
    float *buf;
    cudaEvent_t filled, drained;
} cuda_slot;

/* A device's asynchronous groups: its communication stream, made at its
 * first group, the event that orders it after the compute stream, and one
 * completion event per group (by token, made on first use). */
typedef struct comm_lane {
    cudaStream_t stream;
    cudaEvent_t ready;
    cudaEvent_t *done;
    int ndone;
    bool open; /* between lane_begin and lane_end: fills go on stream */
} comm_lane;

typedef struct local_gpus {
    cuda_ctx **ctx; /* [devices], set by attach; closed before the transport is destroyed */
    int *gpu;       /* [devices]: the GPU each device runs on (-1: never attached) */
    comm_lane *lane; /* [devices] */
    int devices;
    pr_transport *t;
} local_gpus;

/* A capture starts: no fill may wait for a drain, nor a stream for an
 * event, recorded before it. */
static void local_on_capture(void *arg)
{
    local_gpus *g = (local_gpus *)arg;
    pr_transport_local_streams_idle(g->t);
    for (int r = 0; r < g->devices; r++)
        if (g->lane[r].stream && g->ctx[r] && pp_cuda_enter(g->ctx[r]))
            CU(g->ctx[r], cudaStreamSynchronize(g->lane[r].stream));
}

static void local_attach(void *arg, pr_transport *t, int rank, pr_bctx *c)
{
    local_gpus *g = (local_gpus *)arg;
    g->t = t;
    g->ctx[rank] = (cuda_ctx *)c;
    g->gpu[rank] = g->ctx[rank]->gpu;
    g->ctx[rank]->on_capture = local_on_capture;
    g->ctx[rank]->capture_arg = g;
}

/* The stream rank's copies go on: the communication stream inside an
 * asynchronous group, else the compute stream. */
static cudaStream_t fill_stream(local_gpus *g, int rank)
{
    return g->lane[rank].open ? g->lane[rank].stream : g->ctx[rank]->stream;
}

static bool local_lane_begin(void *arg, int rank)
{
    local_gpus *g = (local_gpus *)arg;
    cuda_ctx *c = g->ctx[rank];
    comm_lane *l = &g->lane[rank];
    if (!c || !pp_cuda_enter(c))
        return false;
    if (!l->stream && (!CU(c, cudaStreamCreateWithFlags(&l->stream, cudaStreamNonBlocking)) ||
                       !CU(c, cudaEventCreateWithFlags(&l->ready, cudaEventDisableTiming))))
        return false;
    l->open = CU(c, cudaEventRecord(l->ready, c->stream)) && CU(c, cudaStreamWaitEvent(l->stream, l->ready, 0));
    return l->open;
}

/* token's completion event, made on first use. */
static cudaEvent_t *lane_event(cuda_ctx *c, comm_lane *l, int token)
{
    if (token >= l->ndone) {
        int n = token + 1 > 2 * l->ndone ? token + 1 : 2 * l->ndone;
        cudaEvent_t *grown = (cudaEvent_t *)realloc(l->done, (size_t)n * sizeof *grown);
        if (!grown) {
            pr_bctx_fail(&c->base, "local:", "out of memory for the communication lane's events");
            return NULL;
        }
        memset(grown + l->ndone, 0, (size_t)(n - l->ndone) * sizeof *grown);
        l->done = grown;
        l->ndone = n;
    }
    if (!l->done[token] && !CU(c, cudaEventCreateWithFlags(&l->done[token], cudaEventDisableTiming)))
        return NULL;
    return &l->done[token];
}

static bool local_lane_end(void *arg, int rank, int token)
{
    local_gpus *g = (local_gpus *)arg;
    cuda_ctx *c = g->ctx[rank];
    comm_lane *l = &g->lane[rank];
    l->open = false;
    cudaEvent_t *e = c && pp_cuda_enter(c) ? lane_event(c, l, token) : NULL;
    return e && CU(c, cudaEventRecord(*e, l->stream));
}

static bool local_lane_wait(void *arg, int rank, int token)
{
    local_gpus *g = (local_gpus *)arg;
    cuda_ctx *c = g->ctx[rank];
    comm_lane *l = &g->lane[rank];
    if (!c || !pp_cuda_enter(c) || token >= l->ndone || !l->done[token])
        return false;
    return CU(c, cudaStreamWaitEvent(c->stream, l->done[token], 0));
}

static void local_slot_free(void *arg, void *p)
{
    cuda_slot *s = (cuda_slot *)p;
    cudaFree(s->buf);
    if (s->filled)
        cudaEventDestroy(s->filled);
    if (s->drained)
        cudaEventDestroy(s->drained);
    free(s);
}

static void *local_slot_new(void *arg, int src, int dst, size_t count)
{
    local_gpus *g = (local_gpus *)arg;
    cuda_ctx *cs = g->ctx[src], *cd = g->ctx[dst];
    cuda_slot *s = (cuda_slot *)calloc(1, sizeof *s);
    if (!s || !cs || !cd || !pp_cuda_enter(cs)) {
        free(s);
        return NULL;
    }
    bool ok = CU(cs, cudaSetDevice(cd->gpu)) &&
              CU(cs, cudaMalloc(&s->buf, count * sizeof(float))) &&
              CU(cs, cudaEventCreateWithFlags(&s->drained, cudaEventDisableTiming)) &&
              CU(cs, cudaSetDevice(cs->gpu)) &&
              CU(cs, cudaEventCreateWithFlags(&s->filled, cudaEventDisableTiming));
    cudaSetDevice(cs->gpu);
    if (!ok) {
        local_slot_free(arg, s);
        return NULL;
    }
    return s;
}

static bool local_fill(void *arg, int src, int dst, void *p, bool wait_drain, const float *data,
                       size_t count)
{
    local_gpus *g = (local_gpus *)arg;
    cuda_ctx *cs = g->ctx[src], *cd = g->ctx[dst];
    cuda_slot *s = (cuda_slot *)p;
    if (!cs || !cd || !pp_cuda_enter(cs))
        return false;
    cs->base.last_op = cs->base.op;
    cudaStream_t st = fill_stream(g, src);
    return (!wait_drain || CU(cs, cudaStreamWaitEvent(st, s->drained, 0))) &&
           (cs->gpu == cd->gpu
                ? CU(cs, cudaMemcpyAsync(s->buf, data, count * sizeof(float),
                                         cudaMemcpyDeviceToDevice, st))
                : CU(cs, cudaMemcpyPeerAsync(s->buf, cd->gpu, data, cs->gpu,
                                             count * sizeof(float), st))) &&
           CU(cs, cudaEventRecord(s->filled, st));
}

static bool local_drain(void *arg, int dst, void *p, float *data, size_t count)
{
    local_gpus *g = (local_gpus *)arg;
    cuda_ctx *cd = g->ctx[dst];
    cuda_slot *s = (cuda_slot *)p;
    if (!cd || !pp_cuda_enter(cd))
        return false;
    cd->base.last_op = cd->base.op;
    return CU(cd, cudaStreamWaitEvent(cd->stream, s->filled, 0)) &&
           CU(cd, cudaMemcpyAsync(data, s->buf, count * sizeof(float), cudaMemcpyDeviceToDevice,
                                  cd->stream)) &&
           CU(cd, cudaEventRecord(s->drained, cd->stream));
}

/* Teardown, for each device before any slot is freed: waits for all work
 * on its GPU, once per GPU (the contexts are closed by now: by GPU id),
 * and leaves this thread's current GPU as it was (backend_cuda.cu caches
 * it per thread). */
static void local_wait_idle(void *arg, int rank)
{
    local_gpus *g = (local_gpus *)arg;
    int gpu = g->gpu[rank], current = -1;
    for (int r = 0; r < rank; r++)
        if (g->gpu[r] == gpu)
            return; /* waited for with device r */
    if (gpu < 0 || cudaGetDevice(&current) != cudaSuccess)
        return;
    if (cudaSetDevice(gpu) == cudaSuccess)
        cudaDeviceSynchronize();
    cudaSetDevice(current);
    (void)cudaGetLastError(); /* teardown: nothing is left to report a failure to */
}

/* After every device's wait_idle: the lanes' streams and events. */
static void local_destroy(void *arg)
{
    local_gpus *g = (local_gpus *)arg;
    for (int r = 0; g->lane && r < g->devices; r++) {
        comm_lane *l = &g->lane[r];
        if (!l->stream)
            continue;
        int current = -1;
        if (cudaGetDevice(&current) == cudaSuccess && cudaSetDevice(g->gpu[r]) == cudaSuccess) {
            for (int k = 0; k < l->ndone; k++)
                if (l->done[k])
                    cudaEventDestroy(l->done[k]);
            cudaEventDestroy(l->ready);
            cudaStreamDestroy(l->stream);
            cudaSetDevice(current);
        }
        free(l->done);
        (void)cudaGetLastError(); /* teardown: nothing is left to report a failure to */
    }
    free(g->lane);
    free(g->ctx);
    free(g->gpu);
    free(g);
}

extern "C" pr_transport *pr_transport_local_create(int devices, char *err, size_t errlen)
{
    local_gpus *g = (local_gpus *)calloc(1, sizeof *g);
    if (g) {
        g->ctx = (cuda_ctx **)calloc((size_t)devices, sizeof *g->ctx);
        g->gpu = (int *)malloc((size_t)devices * sizeof *g->gpu);
        g->lane = (comm_lane *)calloc((size_t)devices, sizeof *g->lane);
        g->devices = devices;
    }
    if (!g || !g->ctx || !g->gpu || !g->lane) {
        if (g)
            free(g->ctx), free(g->gpu), free(g->lane);
        free(g);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int r = 0; r < devices; r++)
        g->gpu[r] = -1;
    pr_local_dev dev = {};
    dev.arg = g;
    dev.slot_new = local_slot_new;
    dev.fill = local_fill;
    dev.drain = local_drain;
    dev.slot_free = local_slot_free;
    dev.attach = local_attach;
    dev.wait_idle = local_wait_idle;
    dev.destroy = local_destroy;
    dev.lane_begin = local_lane_begin;
    dev.lane_end = local_lane_end;
    dev.lane_wait = local_lane_wait;
    pr_transport *t = pr_transport_local_new(devices, &dev, err, errlen);
    if (!t)
        local_destroy(g);
    return t;
}

/* ---------------- nccl ---------------- */

/* NCCL is loaded with dlopen when a multi-process run first needs it, so
 * that pprun starts, and runs on one GPU, where libnccl.so.2 (~200 MB) is
 * not installed: single-process runs need only cudart and cuBLAS.  The
 * names below are the library's own (from nccl.h) bound to the loaded
 * entry points, so the code and its error messages read as plain NCCL. */
#define NCCL_ENTRY_POINTS(X)                                                                 \
    X(ncclGetErrorString) X(ncclGetLastError) X(ncclGetUniqueId) X(ncclCommInitRankConfig)   \
    X(ncclCommGetAsyncError) X(ncclCommAbort) X(ncclCommFinalize) X(ncclCommDestroy)          \
    X(ncclGroupStart) X(ncclGroupEnd) X(ncclSend) X(ncclRecv)

static struct {
#define NCCL_POINTER(name) decltype(&::name) name;
    NCCL_ENTRY_POINTS(NCCL_POINTER)
#undef NCCL_POINTER
    /* NCCL 2.18 on: only a run with replicas needs it (NULL: too old) */
    decltype(&::ncclCommSplit) split;
} nccl_api;
static char nccl_load_err[600];
static pthread_once_t nccl_once = PTHREAD_ONCE_INIT;

static void nccl_load_once(void)
{
    const char *path = getenv("PPRUN_NCCL_LIBRARY");
    if (!path || !*path)
        path = "libnccl.so.2";
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(nccl_load_err, sizeof nccl_load_err,
                 "NCCL cannot be loaded (%s): a multi-process run needs libnccl.so.2 on the "
                 "library path (LD_LIBRARY_PATH; e.g. the nvidia/nccl/lib folder of a Python's "
                 "nvidia-nccl wheel) or PPRUN_NCCL_LIBRARY=PATH",
                 dlerror());
        return;
    }
#define NCCL_RESOLVE(name)                                                                   \
    if (!nccl_load_err[0] && !(nccl_api.name = (decltype(&::name))dlsym(lib, #name)))          \
        snprintf(nccl_load_err, sizeof nccl_load_err, "%s has no %s: too old an NCCL", path,   \
                 #name);
    NCCL_ENTRY_POINTS(NCCL_RESOLVE)
#undef NCCL_RESOLVE
    nccl_api.split = (decltype(&::ncclCommSplit))dlsym(lib, "ncclCommSplit");
}

/* false and the reason in err when NCCL cannot be loaded. */
static bool nccl_load(char *err, size_t errlen)
{
    pthread_once(&nccl_once, nccl_load_once);
    if (nccl_load_err[0])
        snprintf(err, errlen, "%s", nccl_load_err);
    return !nccl_load_err[0];
}

#define ncclGetErrorString nccl_api.ncclGetErrorString
#define ncclGetLastError nccl_api.ncclGetLastError
#define ncclGetUniqueId nccl_api.ncclGetUniqueId
#define ncclCommInitRankConfig nccl_api.ncclCommInitRankConfig
#define ncclCommGetAsyncError nccl_api.ncclCommGetAsyncError
#define ncclCommAbort nccl_api.ncclCommAbort
#define ncclCommFinalize nccl_api.ncclCommFinalize
#define ncclCommDestroy nccl_api.ncclCommDestroy
#define ncclGroupStart nccl_api.ncclGroupStart
#define ncclGroupEnd nccl_api.ncclGroupEnd
#define ncclSend nccl_api.ncclSend
#define ncclRecv nccl_api.ncclRecv
#define ncclCommSplit nccl_api.split

typedef struct nccl_tr {
    pr_transport base;
    int rank, world, gpu;
    double timeout;
    ncclComm_t comm;
    ncclComm_t dp;  /* the rank's replica group (NULL: one replica) */
    pr_grid grid;
    cudaStream_t comm_stream;
    cudaEvent_t ready, done;
    cudaEvent_t *group_done; /* [ngroup_done]: an asynchronous group's completion, by token */
    int ngroup_done;
    cuda_ctx *c;
    bool in_group;
    int aborted; /* read and written with __atomic builtins */
    char init_err[400];
} nccl_tr;

/* Records "[device R] FILE:LINE ncclX failed (msg: last error)" in the context. */
static bool nccl_check(nccl_tr *t, ncclResult_t r, const char *call, const char *file, int line)
{
    if (r == ncclSuccess || r == ncclInProgress)
        return true;
    char where[200], msg[300];
    pp_call_where(where, sizeof where, call, file, line);
    snprintf(msg, sizeof msg, "failed (%s%s%s)", ncclGetErrorString(r),
             t->comm ? ": " : "", t->comm ? ncclGetLastError(t->comm) : "");
    if (t->c)
        pr_bctx_fail(&t->c->base, where, msg);
    else
        snprintf(t->init_err, sizeof t->init_err, "%s %s", where, msg);
    return false;
}
#define NCCL(t, call) nccl_check((t), (call), #call, __FILE__, __LINE__)

/* Polls the communicator until its pending calls are issued (non-blocking
 * mode), failing on an asynchronous error or at the deadline. */
static bool nccl_settle_comm(nccl_tr *t, ncclComm_t comm, double deadline)
{
    for (;;) {
        ncclResult_t st = ncclSuccess;
        if (!NCCL(t, ncclCommGetAsyncError(comm, &st)) || !NCCL(t, st))
            return false;
        if (st == ncclSuccess)
            return true;
        if (pp_now() > deadline)
            return false;
        usleep(50);
    }
}

/* Both communicators (a group may hold calls on each). */
static bool nccl_settle(nccl_tr *t, double deadline)
{
    return t->comm && nccl_settle_comm(t, t->comm, deadline) &&
           (!t->dp || nccl_settle_comm(t, t->dp, deadline));
}

/* The communicator a message to world rank peer goes on, and peer's rank
 * in it: the replica group's between replicas of one device. */
static ncclComm_t nccl_route(nccl_tr *t, int peer, int *to)
{
    if (t->dp && pr_grid_same_group(t->grid, t->rank, peer)) {
        *to = pr_grid_group_rank(t->grid, t->rank, peer);
        return t->dp;
    }
    *to = peer;
    return t->comm;
}

static void nccl_abort_comms(nccl_tr *t)
{
    if (t->dp) {
        ncclCommAbort(t->dp);
        t->dp = NULL;
    }
    if (t->comm) {
        ncclCommAbort(t->comm);
        t->comm = NULL;
    }
}

static void nccl_fail_abort(nccl_tr *t, const char *why)
{
    if (t->c && !t->c->base.failed) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s after %g s: a rank died or hung; communicator aborted", why,
                 t->timeout);
        pr_bctx_fail(&t->c->base, "nccl:", msg);
    }
    nccl_abort_comms(t);
    __atomic_store_n(&t->aborted, 1, __ATOMIC_SEQ_CST);
}

static void nccl_attach(pr_transport *tp, int rank, pr_bctx *c)
{
    nccl_tr *t = (nccl_tr *)tp;
    if (rank == t->rank)
        t->c = (cuda_ctx *)c;
}

/* The communication stream waits for everything the compute stream issued
 * (data to send is ready; buffers to receive into are free). */
static bool nccl_begin(nccl_tr *t)
{
    if (t->c)
        t->c->base.last_op = t->c->base.op;
    return t->comm && pp_cuda_enter(t->c) && CU(t->c, cudaEventRecord(t->ready, t->c->stream)) &&
           CU(t->c, cudaStreamWaitEvent(t->comm_stream, t->ready, 0));
}

/* The compute stream waits for the communication (received data; sent
 * buffers go back to the pool). */
static bool nccl_end(nccl_tr *t)
{
    return nccl_settle(t, pp_now() + t->timeout) &&
           CU(t->c, cudaEventRecord(t->done, t->comm_stream)) &&
           CU(t->c, cudaStreamWaitEvent(t->c->stream, t->done, 0));
}

static int nccl_group_begin(pr_transport *tp, int rank)
{
    nccl_tr *t = (nccl_tr *)tp;
    if (!nccl_begin(t) || !NCCL(t, ncclGroupStart()))
        return 1;
    t->in_group = true;
    return 0;
}

static int nccl_group_end(pr_transport *tp, int rank)
{
    nccl_tr *t = (nccl_tr *)tp;
    t->in_group = false;
    if (!NCCL(t, ncclGroupEnd()))
        return 1;
    if (!nccl_end(t)) {
        nccl_fail_abort(t, "posting a send/recv group did not complete");
        return 1;
    }
    return 0;
}

/* An asynchronous group: posted like a synchronous one, but the compute
 * stream does not wait for it here; its completion is recorded as token
 * and waited for at the plan's wait (nccl_lane_wait). */
static int nccl_lane_begin(pr_transport *tp, int rank) { return nccl_group_begin(tp, rank); }

static int nccl_lane_end(pr_transport *tp, int rank, int token)
{
    nccl_tr *t = (nccl_tr *)tp;
    t->in_group = false;
    if (!NCCL(t, ncclGroupEnd()))
        return 1;
    if (!nccl_settle(t, pp_now() + t->timeout)) {
        nccl_fail_abort(t, "posting a send/recv group did not complete");
        return 1;
    }
    if (token >= t->ngroup_done) {
        int n = token + 1 > 2 * t->ngroup_done ? token + 1 : 2 * t->ngroup_done;
        cudaEvent_t *grown = (cudaEvent_t *)realloc(t->group_done, (size_t)n * sizeof *grown);
        if (!grown) {
            pr_bctx_fail(&t->c->base, "nccl:", "out of memory for the communication lane's events");
            return 1;
        }
        memset(grown + t->ngroup_done, 0, (size_t)(n - t->ngroup_done) * sizeof *grown);
        t->group_done = grown;
        t->ngroup_done = n;
    }
    if (!t->group_done[token] && !CU(t->c, cudaEventCreateWithFlags(&t->group_done[token], cudaEventDisableTiming)))
        return 1;
    return CU(t->c, cudaEventRecord(t->group_done[token], t->comm_stream)) ? 0 : 1;
}

static int nccl_lane_wait(pr_transport *tp, int rank, int token)
{
    nccl_tr *t = (nccl_tr *)tp;
    if (!t->c || !pp_cuda_enter(t->c) || token >= t->ngroup_done || !t->group_done[token])
        return 1;
    return CU(t->c, cudaStreamWaitEvent(t->c->stream, t->group_done[token], 0)) ? 0 : 1;
}

static int nccl_send(pr_transport *tp, int src, int dst, pr_tag tag, const float *data,
                     size_t count)
{
    nccl_tr *t = (nccl_tr *)tp;
    if (!t->in_group && !nccl_begin(t))
        return 1;
    int to;
    ncclComm_t comm = nccl_route(t, dst, &to);
    if (!NCCL(t, ncclSend(data, count, ncclFloat, to, comm, t->comm_stream)))
        return 1;
    return !t->in_group && !nccl_end(t) ? 1 : 0;
}

/* NCCL carries no tag: the verifier proved the order of each pair's
 * messages, so the k-th recv meets the k-th send. */
static int nccl_recv(pr_transport *tp, int dst, int src, pr_tag want, float *data, size_t count,
                     double timeout, pr_tag *got)
{
    nccl_tr *t = (nccl_tr *)tp;
    if (__atomic_load_n(&t->aborted, __ATOMIC_SEQ_CST))
        return PR_RECV_ABORTED;
    if (!t->in_group && !nccl_begin(t))
        return PR_RECV_ERROR;
    int from;
    ncclComm_t comm = nccl_route(t, src, &from);
    if (!NCCL(t, ncclRecv(data, count, ncclFloat, from, comm, t->comm_stream)))
        return PR_RECV_ERROR;
    return !t->in_group && !nccl_end(t) ? PR_RECV_ERROR : PR_RECV_OK;
}

/* Waits for the compute stream (which waits for the communication),
 * polling NCCL for errors, at most `timeout` seconds. */
static int nccl_flush(pr_transport *tp, int rank, double timeout)
{
    nccl_tr *t = (nccl_tr *)tp;
    if (!t->comm || !pp_cuda_enter(t->c))
        return 1;
    double deadline = pp_now() + timeout;
    for (;;) {
        cudaError_t q = cudaStreamQuery(t->c->stream);
        if (q == cudaSuccess)
            return 0;
        if (q != cudaErrorNotReady)
            return CU(t->c, q) ? 0 : 1;
        ncclResult_t st = ncclSuccess, dst = ncclSuccess;
        if (!NCCL(t, ncclCommGetAsyncError(t->comm, &st)) || !NCCL(t, st) ||
            (t->dp && (!NCCL(t, ncclCommGetAsyncError(t->dp, &dst)) || !NCCL(t, dst)))) {
            nccl_fail_abort(t, "communication failed");
            return 1;
        }
        if (pp_now() > deadline) {
            nccl_fail_abort(t, "the step's communication did not finish");
            return 1;
        }
        usleep(100);
    }
}

/* Another failure ended the run: abort the communicator now, not at
 * destroy, so that NCCL kernels still waiting for a peer end and the
 * teardown's stream synchronisation cannot hang.  (One device per process:
 * the caller is the thread that drives this communicator.) */
static void nccl_abort(pr_transport *tp)
{
    nccl_tr *t = (nccl_tr *)tp;
    __atomic_store_n(&t->aborted, 1, __ATOMIC_SEQ_CST);
    if (t->comm) {
        if (t->in_group) { /* a group left open by the failure */
            ncclGroupEnd();
            t->in_group = false;
        }
    }
    nccl_abort_comms(t);
}

static void nccl_destroy(pr_transport *tp)
{
    nccl_tr *t = (nccl_tr *)tp;
    cudaSetDevice(t->gpu);
    if (__atomic_load_n(&t->aborted, __ATOMIC_SEQ_CST)) {
        nccl_abort_comms(t);
    } else {
        if (t->dp)
            ncclCommFinalize(t->dp);
        if (t->comm)
            ncclCommFinalize(t->comm);
        if (t->comm || t->dp)
            nccl_settle(t, pp_now() + t->timeout);
        if (t->dp)
            ncclCommDestroy(t->dp);
        if (t->comm)
            ncclCommDestroy(t->comm);
    }
    if (t->ready)
        cudaEventDestroy(t->ready);
    if (t->done)
        cudaEventDestroy(t->done);
    for (int k = 0; k < t->ngroup_done; k++)
        if (t->group_done[k])
            cudaEventDestroy(t->group_done[k]);
    free(t->group_done);
    if (t->comm_stream)
        cudaStreamDestroy(t->comm_stream);
    free(t);
}

static const pr_transport_ops nccl_ops = {
    .name = "nccl",
    .send = nccl_send,
    .recv = nccl_recv,
    .abort = nccl_abort,
    .destroy = nccl_destroy,
    .attach = nccl_attach,
    .group_begin = nccl_group_begin,
    .group_end = nccl_group_end,
    .flush = nccl_flush,
    .lane_begin = nccl_lane_begin,
    .lane_end = nccl_lane_end,
    .lane_wait = nccl_lane_wait,
    .recv_post = NULL,
    .recv_posts = true,
};

extern "C" int pr_nccl_unique_id(void *id, char *err, size_t errlen)
{
    if (!nccl_load(err, errlen))
        return 1;
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) {
        snprintf(err, errlen, "ncclGetUniqueId failed (%s)", ncclGetErrorString(r));
        return 1;
    }
    static_assert(sizeof u == 128, "ncclUniqueId is 128 bytes");
    memcpy(id, &u, sizeof u);
    return 0;
}

extern "C" pr_transport *pr_transport_nccl_create(int rank, int world, int replicas, int gpu,
                                                  const void *nccl_id, double timeout, char *err,
                                                  size_t errlen)
{
    if (!nccl_load(err, errlen))
        return NULL;
    nccl_tr *t = (nccl_tr *)calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->base.ops = &nccl_ops;
    t->rank = rank;
    t->world = world;
    t->gpu = gpu;
    t->timeout = timeout;
    replicas = replicas > 1 ? replicas : 1;
    t->grid = (pr_grid){world / replicas, replicas};
    if (world % replicas || !pr_grid_valid(t->grid, rank)) {
        snprintf(err, errlen, "rank %d of %d is not a place of %d replicas' grid", rank, world, replicas);
        free(t);
        return NULL;
    }
    cudaError_t e = cudaSetDevice(gpu);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&t->comm_stream, cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaEventCreateWithFlags(&t->ready, cudaEventDisableTiming);
    if (e == cudaSuccess)
        e = cudaEventCreateWithFlags(&t->done, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        snprintf(err, errlen, "GPU %d: %s", gpu, cudaGetErrorString(e));
        nccl_destroy(&t->base);
        return NULL;
    }
    ncclUniqueId id;
    memcpy(&id, nccl_id, sizeof id);
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0; /* so that a missing rank is a timeout, not a hang */
    bool ok = NCCL(t, ncclCommInitRankConfig(&t->comm, world, id, rank, &cfg)) &&
              nccl_settle(t, pp_now() + timeout);
    if (!ok) {
        if (!t->init_err[0])
            snprintf(t->init_err, sizeof t->init_err,
                     "ncclCommInitRankConfig did not complete within %g s (rank %d of %d)",
                     timeout, rank, world);
        snprintf(err, errlen, "%s", t->init_err);
        __atomic_store_n(&t->aborted, 1, __ATOMIC_SEQ_CST);
        nccl_destroy(&t->base);
        return NULL;
    }
    if (replicas > 1 && !nccl_api.split) {
        snprintf(err, errlen, "the NCCL loaded has no ncclCommSplit (NCCL 2.18 or newer): a plan "
                              "with replicas (data_parallel) needs it for the replica groups");
        __atomic_store_n(&t->aborted, 1, __ATOMIC_SEQ_CST);
        nccl_destroy(&t->base);
        return NULL;
    }
    if (replicas > 1) { /* every rank splits: collective over the world */
        int color, key;
        pr_grid_split(t->grid, rank, &color, &key);
        char who[64];
        pr_grid_name(t->grid, rank, who, sizeof who);
        ok = NCCL(t, ncclCommSplit(t->comm, color, key, &t->dp, &cfg)) && t->dp &&
             nccl_settle_comm(t, t->dp, pp_now() + timeout);
        if (!ok) {
            if (!t->init_err[0])
                snprintf(t->init_err, sizeof t->init_err,
                         "ncclCommSplit of %s's replica group (color %d, key %d) did not complete "
                         "within %g s", who, color, key, timeout);
            snprintf(err, errlen, "%s", t->init_err);
            __atomic_store_n(&t->aborted, 1, __ATOMIC_SEQ_CST);
            nccl_destroy(&t->base);
            return NULL;
        }
    }
    return &t->base;
}
