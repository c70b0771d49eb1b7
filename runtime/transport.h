/*
 * transport.h — how activations and gradients travel between devices.
 * A small table of functions; this file's one implementation is in-process
 * queues between threads (transport_threads.c).  The CUDA `local` and NCCL
 * transports will implement the same table.
 *
 * Matching: the k-th send from a to b meets the k-th recv on b from a; the
 * tag travels with the data so a mismatch is an error, not wrong numbers.
 * Sends are buffered (never block); a recv waits up to `timeout` seconds.
 */
#ifndef PPRUN_TRANSPORT_H
#define PPRUN_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pr_tag {
    int comm, stage, mb; /* enum pp_comm_kind and the F/B it came from; or a collective's */
} pr_tag;

/* A collective's messages: comm PR_TAG_COLLECTIVE, stage the plan's group
 * index, mb -1 (a mirror allreduce: its pipeline stage). */
enum { PR_TAG_COLLECTIVE = 16 };
/* A rank's row of a step's losses, to the rank that reports the step (one
 * process a rank, step_losses.c): stage the step, mb the sender. */
enum { PR_TAG_LOSSES = 17 };

/* PR_RECV_ERROR: the transport failed and recorded why in the receiving
 * device's backend context (pr_bctx.err). */
enum { PR_RECV_OK = 0, PR_RECV_TIMEOUT = 1, PR_RECV_ABORTED = 2, PR_RECV_MISMATCH = 3,
       PR_RECV_ERROR = 4 };

struct pr_bctx;

typedef struct pr_transport pr_transport;
typedef struct pr_transport_ops {
    const char *name;
    /* 0; ENOMEM when there is no room to buffer the message; any other
     * nonzero value: failed, the reason in the device's context. */
    int (*send)(pr_transport *t, int src, int dst, pr_tag tag, const float *data, size_t count);
    /* Returns PR_RECV_*; on mismatch *got holds what arrived. */
    int (*recv)(pr_transport *t, int dst, int src, pr_tag want, float *data, size_t count,
                double timeout, pr_tag *got);
    /* Wakes every waiting recv with PR_RECV_ABORTED (another device failed). */
    void (*abort)(pr_transport *t);
    void (*destroy)(pr_transport *t);
    /* Optional (NULL = not needed).  attach: the replay hands over each
     * device's backend context (its stream) before the first op.
     * group_begin/end bracket the comm ops of one group (ncclGroupStart/End);
     * nonzero = failed, the reason in the device's context.  flush: waits,
     * at most `timeout` seconds, for the device's communication (at the
     * plan's flush); nonzero = failed or timed out, reason in the context. */
    void (*attach)(pr_transport *t, int rank, struct pr_bctx *c);
    int (*group_begin)(pr_transport *t, int rank);
    int (*group_end)(pr_transport *t, int rank);
    int (*flush)(pr_transport *t, int rank, double timeout);
    /* Asynchronous groups (a group a plan waits for later: docs/pprun.md,
     * "Overlap"); optional.  lane_begin/lane_end bracket the comm ops of
     * such a group, posted on the device's communication lane (GPU: its
     * communication stream) without the device waiting for them; its
     * completion is kept as `token` (an index below the device's op count),
     * and lane_wait makes the device's compute wait for it.  recv_posts:
     * recv only enqueues work and never waits on the host, so a posted
     * group's recvs are issued at the post; otherwise (threads, local) the
     * replay issues them at the wait, in the order the groups were posted,
     * and announces each at the post with recv_post (optional: the threads
     * transport's emulated link starts the transfer then).  Nonzero =
     * failed, the reason in the device's context. */
    int (*lane_begin)(pr_transport *t, int rank);
    int (*lane_end)(pr_transport *t, int rank, int token);
    int (*lane_wait)(pr_transport *t, int rank, int token);
    void (*recv_post)(pr_transport *t, int dst, int src);
    bool recv_posts;
} pr_transport_ops;

struct pr_transport {
    const pr_transport_ops *ops;
};

/* An emulated link (threads transport): each message takes latency
 * seconds + its bytes / bandwidth (bytes per second; 0: no such term) on
 * its directed link, one message at a time, from when both its send and
 * its recv are posted.  All zero: no link. */
typedef struct pr_link {
    double latency, bandwidth;
} pr_link;

/* link NULL: none.  Out of memory ends the process (pp_xcalloc). */
pr_transport *pr_transport_threads_create(int devices, const pr_link *link);

/* The cpu backend between processes (transport_sockets.c): this process
 * is `rank` of `world` (devices x replicas), fds[q] its connected socket
 * to rank q (fds[rank] unused), which the transport owns from here on.
 * NULL and err on failure. */
pr_transport *pr_transport_sockets_create(int rank, int world, int replicas, const int *fds, char *err,
                                          size_t errlen);

/* CUDA transports (transport_cuda.cu); without CUDA they return NULL and
 * say so in err.  local: every device in this process, copies + events;
 * `devices` may share GPUs.  nccl: this process is `rank` of `world`
 * (devices x replicas, rank_grid.h), its GPU `gpu`; nccl_id is the
 * 128-byte ncclUniqueId every rank shares.  With replicas > 1 each replica
 * group gets its own communicator (ncclCommSplit), which the messages
 * between replicas of one device take. */
pr_transport *pr_transport_local_create(int devices, char *err, size_t errlen);
pr_transport *pr_transport_nccl_create(int rank, int world, int replicas, int gpu, const void *nccl_id,
                                       double timeout, char *err, size_t errlen);
/* Makes a new ncclUniqueId into id[128]; nonzero and err on failure. */
int pr_nccl_unique_id(void *id, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
