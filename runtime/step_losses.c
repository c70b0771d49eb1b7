/*
 * step_losses.c — a step's losses when each process runs one rank
 * (docs/pprun.md, "Data parallelism").  With replicas each replica's last
 * stage holds its own rows' share of the loss, and a mirrored plan's two
 * last stages each hold half the micro-batches'; in one process they all
 * write the shared table, but a process a rank sees only its own.  So at
 * each flush every rank holding losses sends its replica's row of the
 * table to the reporting rank (pr_reporting_rank), which adds them into
 * its table and prints the step.  The rows of different ranks never hold
 * the same micro-batch (the others' entries are 0), so the reporter's
 * table, and the loss it sums from it in the usual order, are bit for bit
 * the one-process run's.
 */
#include <stdlib.h>

#include "clock.h"
#include "replay_internal.h"

int pr_reporting_rank(const pp_plan *p)
{
    return pp_rank_of(p->placement[p->stages - 1], 0, pp_plan_replicas(p));
}

/* Whether rank q holds losses: its device has a stage that ends a micro-batch's route. */
static bool holds_losses(const pp_plan *p, int q)
{
    int dev = q / pp_plan_replicas(p);
    return p->placement[p->stages - 1] == dev || (p->mirrored && p->placement[p->stages / 2 - 1] == dev);
}

static bool shared(const run *R)
{
    return R->o->one_rank && (R->replicas > 1 || R->p->mirrored);
}

size_t step_losses_floats(const run *R, const device_ctx *D)
{
    /* a row of doubles, carried as twice as many floats (the bits as they are) */
    return shared(R) && holds_losses(R->p, D->rank) ? 2 * (size_t)R->p->microbatches : 0;
}

static int send_row(device_ctx *D, int step, const double *row, int to)
{
    run *R = D->R;
    int M = R->p->microbatches;
    R->be->upload(D->bc, D->loss_row, (const float *)row, 2 * (size_t)M);
    pr_tag tag = {PR_TAG_LOSSES, step, D->rank};
    int err = R->tr->ops->send(R->tr, D->rank, to, tag, D->loss_row, 2 * (size_t)M);
    if (!err)
        return 0;
    char me[64], who[64];
    if (D->bc->failed)
        run_fail(R, "%s", D->bc->err);
    else
        run_fail(R, "%s: step %d: sending its losses to %s: the %s transport failed", rank_name(R, D->rank, me, sizeof me),
                 step + 1, rank_name(R, to, who, sizeof who), R->tr->ops->name);
    return 1;
}

/* The reporter's receive of rank q's row, added into the table. */
static int add_row(device_ctx *D, int step, int q, double *got)
{
    run *R = D->R;
    int M = R->p->microbatches;
    pr_tag want = {PR_TAG_LOSSES, step, q}, tag = {0, 0, 0};
    atomic_store_explicit(&D->waiting, 1, memory_order_relaxed);
    double since = pp_now();
    int rc = R->tr->ops->recv(R->tr, D->rank, q, want, D->loss_row, 2 * (size_t)M, R->o->timeout, &tag);
    D->waited += pp_now() - since;
    atomic_store_explicit(&D->waiting, 0, memory_order_relaxed);
    char me[64], who[64];
    rank_name(R, D->rank, me, sizeof me);
    rank_name(R, q, who, sizeof who);
    if (rc == PR_RECV_ABORTED)
        return 1; /* another rank failed and said why */
    if (rc == PR_RECV_ERROR) {
        run_fail(R, "%s", D->bc->err);
        return 1;
    }
    if (rc == PR_RECV_TIMEOUT) {
        run_fail(R, "%s: step %d: %s did not send its losses within %g s (timeout)", me, step + 1, who,
                 R->o->timeout);
        return 1;
    }
    if (rc != PR_RECV_OK) {
        run_fail(R, "%s: step %d: %s sent %s instead of its losses", me, step + 1, who,
                 tag_name(tag, (char[64]){0}, 64));
        return 1;
    }
    R->be->download(D->bc, (float *)got, D->loss_row, 2 * (size_t)M);
    if (D->bc->failed) {
        run_fail(R, "%s", D->bc->err);
        return 1;
    }
    double *row = R->loss_sq + ((size_t)step * R->replicas + q % R->replicas) * M; /* q's replica's */
    for (int mb = 0; mb < M; mb++)
        row[mb] += got[mb];
    return 0;
}

int share_step_losses(device_ctx *D, int step)
{
    run *R = D->R;
    if (!step_losses_floats(R, D))
        return 0;
    int M = R->p->microbatches, to = pr_reporting_rank(R->p);
    if (D->rank != to)
        return send_row(D, step, R->loss_sq + ((size_t)step * R->replicas + D->replica) * M, to);
    double *got = pp_xcalloc((size_t)M, sizeof *got, "the losses of a step");
    int rc = 0;
    for (int q = 0; q < R->p->devices * R->replicas && !rc; q++) /* in rank order */
        if (q != D->rank && holds_losses(R->p, q))
            rc = add_row(D, step, q, got);
    free(got);
    return rc;
}
