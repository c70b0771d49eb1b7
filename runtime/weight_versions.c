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
bool weights_for(device_ctx *D, stage_state *st, const act_set *a, bool backward, float ***W,
                 float ***b)
{
    *W = st->W;
    *b = st->b;
    int async = D->R->p->async;
    if (backward && D->R->ignore_stash)
        return true;
    if (async == PP_ASYNC_2BW) {
        *W = st->oldW;
        *b = st->oldb;
    } else if (async == PP_ASYNC_PIPEDREAM && (backward || D->R->vsync_ver) && a->ver != st->cur_ver) {
        for (int q = 0; q < st->nstash; q++)
            if (st->stash[q].refs > 0 && st->stash[q].id == a->ver) {
                *W = st->stash[q].W;
                *b = st->stash[q].b;
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

/* dst[l] = src[l] for the stage's k layers, on the device (no wait, so
 * an asynchronous backend stays ahead of the host). */
static void copy_weights(device_ctx *D, stage_state *st, float **dstW, float **dstb)
{
    run *R = D->R;
    if (R->dry)
        return;
    size_t h = (size_t)R->m->hidden;
    for (int l = 0; l < st->k; l++) {
        R->be->copy_weight(D->bc, dstW[l], st->W[l], h * h);
        R->be->copy(D->bc, dstb[l], st->b[l], h);
    }
}

/* Before an update moves the stage on: keep what someone still needs.
 * pipedream: the current version, if an in-flight F used it (with
 * vertical sync: if a micro-batch of the step with k(m) = it has not
 * run its B here yet, whether its F ran or not), goes to a stash slot;
 * 2bw: the current weights become the previous step's. */
void keep_version(device_ctx *D, stage_state *st, int step)
{
    run *R = D->R;
    size_t h = (size_t)R->m->hidden;
    if (R->p->async == PP_ASYNC_2BW) {
        copy_weights(D, st, st->oldW, st->oldb);
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
            ns[q].W = pp_xcalloc((size_t)st->k * 2, sizeof(float *), "a weight version's table");
            ns[q].b = ns[q].W + st->k;
            for (int l = 0; l < st->k; l++) {
                int L = st->first_layer + l;
                if (!(ns[q].W[l] = replay_buffer(D, true, h * h, "a stashed copy of the weights of layer %d", L)) ||
                    !(ns[q].b[l] = replay_buffer(D, false, h, "a stashed copy of the biases of layer %d", L)))
                    return;
            }
        }
        copy_weights(D, st, st->stash[q].W, st->stash[q].b);
        st->stash[q].id = st->cur_ver;
        st->stash[q].refs = st->cur_refs;
        if (++st->versions > st->peak_versions)
            st->peak_versions = st->versions;
    }
    st->cur_ver++;
    st->cur_refs = 0;
}

/* A stage starts with one version; 2bw also with the previous step's
 * weights, initialised like the current ones. */
void versions_setup(device_ctx *D, stage_state *st, float *hw, float *hb)
{
    run *R = D->R;
    const pp_plan *p = R->p;
    const pr_model *m = R->m;
    const pr_backend *be = R->be;
    size_t h = (size_t)m->hidden;
    st->versions = st->peak_versions = 1;
    if (p->async == PP_ASYNC_2BW) { /* W^{-1} = W^0 */
        st->versions = st->peak_versions = 2;
        st->oldW = pp_xcalloc((size_t)st->k * 2, sizeof(float *), "the 2bw weight table");
        st->oldb = st->oldW + st->k;
        for (int l = 0; l < st->k; l++) {
            int L = st->first_layer + l;
            if (!(st->oldW[l] = replay_buffer(D, true, h * h, "the previous step's weights of layer %d", L)) ||
                !(st->oldb[l] = replay_buffer(D, false, h, "the previous step's biases of layer %d", L)))
                return;
            if (!R->dry) {
                pr_init_layer(m, st->first_layer + l, hw, hb);
                be->upload_weight(D->bc, st->oldW[l], hw, h * h);
                be->upload(D->bc, st->oldb[l], hb, h);
            }
        }
    }
}

/* Releases the stage's kept versions and reports the most it held. */
void versions_teardown(device_ctx *D, stage_state *st)
{
    run *R = D->R;
    const pr_backend *be = R->be;
    size_t h = (size_t)R->m->hidden;
    for (int l = 0; l < st->k; l++) {
        if (st->oldW) {
            be->release(D->bc, st->oldW[l]);
            be->release(D->bc, st->oldb[l]);
        }
        for (int q = 0; q < st->nstash; q++) {
            be->release(D->bc, st->stash[q].W[l]);
            be->release(D->bc, st->stash[q].b[l]);
        }
    }
    if (R->res->weight_versions) {
        int *wv = &R->res->weight_versions[D->rank];
        if (st->peak_versions > *wv)
            *wv = st->peak_versions;
        R->res->extra_weight_bytes[D->rank] +=
            (double)(st->peak_versions - 1) * (double)st->k * (double)(h * h + h) * sizeof(float);
    }
    for (int q = 0; q < st->nstash; q++)
        free(st->stash[q].W);
    free(st->stash);
    free(st->oldW);
}
