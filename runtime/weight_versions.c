/*
 * weight_versions.c — which weights an op computes with, and keeping the
 * old versions the asynchronous policies still need (docs/async.md).
 * Synchronous plans always use a stage's current weights.  PipeDream
 * stashes the version each in-flight F used until its B is done; with
 * vertical sync every stage uses the version stage 0's F saw, k(m),
 * counted from the plan.  2BW keeps one previous step's weights, which F
 * and B both use.  replay.c asks here at every F, R and B and at each
 * update; everything is host-side bookkeeping, so a CUDA graph cannot
 * replay it (replay.c captures only synchronous plans).
 */
#include <stdlib.h>

#include "replay_internal.h"

/* The weights F (backward false) or B of a micro-batch compute with:
 * pipedream's B the version its F saw, with vertical sync its F too
 * (version a->ver, k(m)), 2bw's F and B the previous step's, otherwise
 * (and under the test hook, for B) the current ones.  False if the
 * version a->ver is neither current nor stashed. */
bool weights_for(device_ctx *D, stage_state *st, const act_set *a, bool backward, float **P)
{
    *P = st->P;
    int async = D->R->p->async;
    if (backward && D->R->ignore_stash)
        return true;
    if (async == PP_ASYNC_2BW) {
        *P = st->oldP;
    } else if (async == PP_ASYNC_PIPEDREAM && (backward || D->R->vsync_ver) && a->ver != st->cur_ver) {
        for (int q = 0; q < st->nstash; q++)
            if (st->stash[q].refs > 0 && st->stash[q].id == a->ver) {
                *P = st->stash[q].P;
                return true;
            }
        return false;
    }
    return true;
}

/* Vertical sync (docs/async.md): k(m) - t*M for every micro-batch m, the
 * updates stage 0 applies in a step before F(0, m), counted in the plan's
 * list of stage 0's device; each device computes it from the plan, so no
 * version number travels with the activations.  NULL without vertical
 * sync. */
int *vsync_versions(const pp_plan *p)
{
    if (p->async != PP_ASYNC_PIPEDREAM || !p->vertical_sync)
        return NULL;
    int *k = pp_xcalloc((size_t)p->microbatches, sizeof(int), "the vertical-sync weight versions"), nb = 0;
    const pp_device *dv = &p->dev[p->placement[0]];
    for (int i = 0; i < dv->n; i++)
        if (dv->ops[i].stage == 0 && dv->ops[i].mb >= 0 && dv->ops[i].mb < p->microbatches) {
            if (dv->ops[i].kind == PP_OP_F)
                k[dv->ops[i].mb] = nb;
            else if (dv->ops[i].kind == PP_OP_B)
                nb++;
        }
    return k;
}

/* The B of a micro-batch is done with version ver: the last user frees it. */
void stash_release(device_ctx *D, stage_state *st, int ver)
{
    if (ver == st->cur_ver) {
        if (D->R->vsync_ver)
            return; /* users are counted when the version is stashed */
        st->cur_refs--;
        return;
    }
    for (int q = 0; q < st->nstash; q++)
        if (st->stash[q].refs > 0 && st->stash[q].id == ver && --st->stash[q].refs == 0)
            st->versions--;
}

/* dst = the stage's current parameters, on the device (no wait, so an
 * asynchronous backend stays ahead of the host). */
static void copy_weights(device_ctx *D, stage_state *st, float *dst)
{
    run *R = D->R;
    if (!R->dry)
        R->be->copy(D->bc, dst, st->P, st->off[st->k]);
}

/* Before an update moves the stage on: keep what someone still needs.
 * pipedream: the current version, if an in-flight F used it (with
 * vertical sync: if a micro-batch of the step with k(m) = it has not
 * run its B here yet, whether its F ran or not), goes to a stash slot;
 * 2bw: the current weights become the previous step's. */
void keep_version(device_ctx *D, stage_state *st, int step)
{
    run *R = D->R;
    if (R->p->async == PP_ASYNC_2BW) {
        copy_weights(D, st, st->oldP);
        return;
    }
    if (R->p->async != PP_ASYNC_PIPEDREAM)
        return;
    if (R->vsync_ver) {
        int M = R->p->microbatches;
        st->cur_refs = 0;
        for (int mb = 0; mb < M; mb++)
            st->cur_refs += step * M + R->vsync_ver[mb] == st->cur_ver && st->mb[mb].bstep != step + 1;
    }
    if (st->cur_refs > 0) {
        int q = 0;
        while (q < st->nstash && st->stash[q].refs > 0)
            q++;
        if (q == st->nstash) {
            weight_stash *ns = realloc(st->stash, (size_t)(q + 1) * sizeof *ns);
            if (!ns) {
                run_fail(R, "out of memory for the list of a stage's weight versions");
                return;
            }
            st->stash = ns;
            st->nstash++;
            ns[q].refs = 0;
            if (!(ns[q].P = replay_buffer(D, true, st->off[st->k],
                                          "a stashed copy of the parameters of stage %d", st->stage)))
                return;
        }
        copy_weights(D, st, st->stash[q].P);
        st->stash[q].id = st->cur_ver;
        st->stash[q].refs = st->cur_refs;
        if (++st->versions > st->peak_versions)
            st->peak_versions = st->versions;
    }
    st->cur_ver++;
    st->cur_refs = 0;
}

/* A stage starts with one version; 2bw also with the previous step's
 * weights (its oldP, in the arena), a copy of the current ones. */
void versions_setup(device_ctx *D, stage_state *st)
{
    run *R = D->R;
    st->versions = st->peak_versions = 1;
    if (R->p->async == PP_ASYNC_2BW) { /* W^{-1} = W^0 */
        st->versions = st->peak_versions = 2;
        R->be->weights(D->bc, st->oldP, st->off[st->k]);
        copy_weights(D, st, st->oldP);
    }
}

/* Releases the stage's kept versions and reports the most it held. */
void versions_teardown(device_ctx *D, stage_state *st)
{
    run *R = D->R;
    for (int q = 0; q < st->nstash; q++)
        R->be->release(D->bc, st->stash[q].P);
    if (R->res->weight_versions && D->replica == 0) { /* replica 0's stand for the device's */
        int *wv = &R->res->weight_versions[D->dev];
        if (st->peak_versions > *wv)
            *wv = st->peak_versions;
        double params = 0;
        for (int l = 0; l < st->k; l++)
            params += (double)pr_layer_param_count(R->m, st->first_layer + l);
        R->res->extra_weight_bytes[D->dev] += (double)(st->peak_versions - 1) * params * sizeof(float);
    }
    free(st->stash);
}
