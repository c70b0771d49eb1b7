/*
 * transport_local.h — the host side of the `local` GPU transport: every
 * pipeline device in this process, one FIFO of message slots per ordered
 * device pair.  transport_local.c owns the queues, the waiting and the
 * reuse of slots; what touches a GPU (a slot's buffer and events, the
 * copies) is a small table of device operations, CUDA's in
 * transport_cuda.cu, a test's stubs in tests/runtime/test_transports.c.
 * Plain C, built with or without CUDA.
 *
 * The protocol: a send takes a free slot of the pair (or makes one) and
 * `fill`s it on the sender's stream — waiting first for the slot's last
 * drain when one is pending — then queues it; a recv waits on the host,
 * at most `timeout` seconds, until a slot is queued (only until the send
 * is issued: the data itself is ordered by the events), checks its tag,
 * `drain`s it on the receiver's stream and puts it back on the free list
 * with a drain pending.
 */
#ifndef PPRUN_TRANSPORT_LOCAL_H
#define PPRUN_TRANSPORT_LOCAL_H

#include <stdbool.h>
#include <stddef.h>

#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pr_local_dev {
    void *arg;
    /* A slot's device part for count floats from src to dst (a buffer on
     * dst's GPU, a filled and a drained event); NULL on failure. */
    void *(*slot_new)(void *arg, int src, int dst, size_t count);
    /* On src's stream: wait for the slot's drained event if wait_drain,
     * copy count floats in, record filled.  false = failed. */
    bool (*fill)(void *arg, int src, int dst, void *slot, bool wait_drain, const float *data,
                 size_t count);
    /* On dst's stream: wait for filled, copy out, record drained. */
    bool (*drain)(void *arg, int dst, void *slot, float *data, size_t count);
    void (*slot_free)(void *arg, void *slot);
    /* The replay's attach hook (t is the transport, for
     * pr_transport_local_streams_idle); may be NULL. */
    void (*attach)(void *arg, pr_transport *t, int rank, struct pr_bctx *c);
    /* Teardown: wait_idle(arg, r) is called for every device r before any
     * slot is freed — it waits for all the work issued where device r runs
     * (a slot's copies run on its sender's and its receiver's streams, on
     * up to two GPUs) — then each slot is freed, then destroy frees arg.
     * Either may be NULL. */
    void (*wait_idle)(void *arg, int rank);
    void (*destroy)(void *arg);
    /* Asynchronous groups (transport.h, lane_begin): the fills of rank's
     * sends between lane_begin and lane_end go on its communication
     * stream, after what its compute stream issued before; lane_end keeps
     * their completion as token, lane_wait makes the compute stream wait
     * for it.  Each may be NULL (the fills stay on the compute stream).
     * false = failed. */
    bool (*lane_begin)(void *arg, int rank);
    bool (*lane_end)(void *arg, int rank, int token);
    bool (*lane_wait)(void *arg, int rank, int token);
} pr_local_dev;

/* NULL and a message in err when out of memory. */
pr_transport *pr_transport_local_new(int devices, const pr_local_dev *dev, char *err,
                                     size_t errlen);

/* Every device's stream is idle (a graph capture starts): no slot's drain
 * is pending any more, so no fill waits on an event recorded before. */
void pr_transport_local_streams_idle(pr_transport *t);

#ifdef __cplusplus
}
#endif

#endif
