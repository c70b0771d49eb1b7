/*
 * pool_plan.c — sizes each device's activation pool before the run, so a
 * step allocates nothing.  It replays each device's op list once, alone,
 * on replay.c's harness and loop but with a dry backend (distinct tokens;
 * the replay calls no layer when dry) and a dry transport (no
 * communication: the loop skips sends and receives and flush's barrier
 * when R->dry), and counts the buffers the list takes, by size.  A
 * device's own list alone decides that, so devices run one after another
 * on this thread.
 */
#include <stdlib.h>
#include <string.h>

#include "replay_internal.h"

typedef struct dry_ctx {
    pr_bctx base;
    double bytes; /* what a real backend would have allocated */
} dry_ctx;

static pr_bctx *dry_open(int rank, const pr_backend_cfg *cfg, char *err, size_t errlen)
{
    dry_ctx *c = pp_xcalloc(1, sizeof *c, "the pool sizing's context");
    c->base.rank = rank;
    return &c->base;
}
static void dry_close(pr_bctx *c) { free(c); }
/* Distinct tokens, never dereferenced. */
static float *dry_alloc(pr_bctx *c, size_t count)
{
    ((dry_ctx *)c)->bytes += (double)count * sizeof(float);
    return pp_xcalloc(1, 1, "the pool sizing's tokens");
}
static void dry_release(pr_bctx *c, float *p) { free(p); }
static void dry_weights(pr_bctx *c, float *p, size_t count) {}

/* The replay computes nothing when dry: no compute primitive is called. */
static const pr_backend dry_backend = {
    .name = "dry", .device = PR_DEVICE_NONE, .open = dry_open, .close = dry_close,
    .alloc = dry_alloc, .release = dry_release, .weights = dry_weights,
};

static const pr_transport_ops dry_transport_ops = {.name = "dry"};
static pr_transport dry_transport = {.ops = &dry_transport_ops};

/* Runs each device's op list once, alone, on the dry backend, counting the
 * activation buffers it takes: a device's own list alone decides that. */
int pool_sizes(const pp_plan *p, const pr_model *m, pool_shape *pools, double *bytes, pp_diag *d)
{
    pr_run_opts o = {.steps = 1};
    pr_run_result r;
    memset(&r, 0, sizeof r);
    result_alloc(&r, p, m, 1, false, false);
    run R;
    run_open(&R, p, m, &o, &dry_backend, &dry_transport, &r);
    R.dry = true;
    R.step_lo = 0;
    R.step_hi = 1;
    R.loss_sq = pp_xcalloc((size_t)p->microbatches * R.replicas, sizeof(double), "the pool sizing's losses");
    R.dev = pp_xcalloc((size_t)p->devices * R.replicas, sizeof *R.dev, "the pool sizing's devices");
    for (int dv = 0; dv < p->devices && !atomic_load(&R.failed); dv++) {
        int rank = pp_rank_of(dv, 0, R.replicas); /* replica 0's: every replica's is the same */
        device_ctx *D = &R.dev[rank];
        R.first = R.last = rank;
        if (device_setup(&R, D, rank, NULL) == 0)
            device_main(D);
        pool_shape *ps = &pools[dv];
        ps->n = D->npool;
        for (int q = 0; q < D->npool; q++) {
            ps->floats[q] = D->pool[q].floats;
            ps->count[q] = D->pool[q].taken;
        }
        bytes[dv] = D->bc ? ((dry_ctx *)D->bc)->bytes : 0;
        device_teardown(&R, D);
    }
    int rc = 0;
    if (atomic_load(&R.failed)) {
        pp_error(d, "%s", R.err);
        rc = 1;
    }
    run_close(&R);
    pr_run_result_free(&r);
    return rc;
}
