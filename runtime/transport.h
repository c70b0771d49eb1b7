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

#include <stddef.h>

typedef struct pr_tag {
    int comm, stage, mb; /* enum pp_comm_kind and the F/B it came from */
} pr_tag;

enum { PR_RECV_OK = 0, PR_RECV_TIMEOUT = 1, PR_RECV_ABORTED = 2, PR_RECV_MISMATCH = 3 };

typedef struct pr_transport pr_transport;
typedef struct pr_transport_ops {
    const char *name;
    int (*send)(pr_transport *t, int src, int dst, pr_tag tag, const float *data, size_t count);
    /* Returns PR_RECV_*; on mismatch *got holds what arrived. */
    int (*recv)(pr_transport *t, int dst, int src, pr_tag want, float *data, size_t count,
                double timeout, pr_tag *got);
    /* Wakes every waiting recv with PR_RECV_ABORTED (another device failed). */
    void (*abort)(pr_transport *t);
    void (*destroy)(pr_transport *t);
} pr_transport_ops;

struct pr_transport {
    const pr_transport_ops *ops;
};

pr_transport *pr_transport_threads_create(int devices);

#endif
