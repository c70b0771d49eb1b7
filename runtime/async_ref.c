/*
 * async_ref.c — the --check references of the asynchronous policies
 * (docs/async.md), written as plain sequential loops like model.c's
 * synchronous one and sharing nothing with the replay loop:
 *
 *   pipedream  every stage s keeps its list of versions W_s^0, W_s^1, ...;
 *              W_s^{k+1} = W_s^k - lr * g_s(u_s(k)), where u_s(k) is the
 *              micro-batch of the k-th B of stage s in the plan, and the
 *              gradient of micro-batch m is taken with every stage s at
 *              version v(s, m) = number of B of stage s before F(s, m) in
 *              the plan.  Only those two numbers come from the plan.
 *              With vertical sync every stage takes micro-batch m's
 *              gradient at stage 0's number instead: version k(m) =
 *              v(0, m) on every stage.
 *   2bw        W^{t+1} = W^t - lr * grad f_t(W^{t-1}),  W^{-1} = W^0.
 */
#include <stdlib.h>
#include <string.h>

#include "mlp_math.h"
#include "pprun.h"

/* Per stage, from the plan: fver[m] = B of the stage before F(s, m) on its
 * device; border[k] = micro-batch of its k-th B.  Nonzero if not every
 * F and B of the stage is there once. */
int pr_async_stage_order(const pp_plan *p, int s, int *fver, int *border)
{
    int M = p->microbatches, nb = 0, nf = 0;
    const pp_device *dv = &p->dev[p->placement[s]];
    for (int i = 0; i < dv->n; i++) {
        const pp_op *op = &dv->ops[i];
        if (op->stage != s || op->mb < 0 || op->mb >= M)
            continue;
        if (op->kind == PP_OP_F && nf++ < M)
            fver[op->mb] = nb;
        else if (op->kind == PP_OP_B && nb < M)
            border[nb++] = op->mb;
    }
    return nf != M || nb != M;
}

static int train_pipedream(const pp_plan *p, const pr_model *m, int steps, float *W, float *b,
                           double *loss, pp_diag *d)
{
    int S = p->stages, M = p->microbatches, L = m->layers;
    size_t h = (size_t)m->hidden, rows = (size_t)(m->batch / M), lw = h * h + h;
    /* pr_reference_bytes counts these */
    int *fver = pp_xcalloc((size_t)S * M, sizeof(int), "the reference's order");
    int *border = pp_xcalloc((size_t)S * M, sizeof(int), "the reference's order");
    int rc = 0;
    for (int s = 0; s < S && !rc; s++)
        if (pr_async_stage_order(p, s, fver + (size_t)s * M, border + (size_t)s * M)) {
            pp_error(d, "check: stage %d does not run each F and B once", s);
            rc = 1;
        }
    /* vertical sync: version of (s, m) is k(m) = v(0, m) for every stage s */
    for (int s = 1; s < S && p->vertical_sync; s++)
        memcpy(fver + (size_t)s * M, fver, (size_t)M * sizeof(int));
    /* ver[l][v]: layer l's W then b at its stage's version v (0..M in a step) */
    float *ver = pp_xcalloc((size_t)L * (M + 1) * lw, sizeof(float),
                            "the reference's weight versions");
    float *grad = pp_xcalloc((size_t)L * M * lw, sizeof(float),
                             "the reference's micro-batch gradients"); /* [l][mb] */
    int *nver = pp_xcalloc((size_t)S, sizeof(int), "the reference's version counts");
    bool *done = pp_xcalloc((size_t)M, sizeof(bool), "the reference's micro-batch flags");
    float *x = pp_xcalloc(rows * h, sizeof(float), "the reference's batch");
    float *t = pp_xcalloc(rows * h, sizeof(float), "the reference's targets");
    float **Wl = pp_xcalloc((size_t)L * 4, sizeof(float *), "the reference's layer table");
    float **bl = Wl + L, **dW = bl + L, **db = dW + L;
    float lr = (float)m->lr;
#define VER(l, v) (ver + ((size_t)(l) * (M + 1) + (size_t)(v)) * lw)
#define GRAD(l, mb) (grad + ((size_t)(l) * M + (size_t)(mb)) * lw)
    for (int k = 0; k < steps && !rc; k++) {
        for (int l = 0; l < L; l++) {
            memcpy(VER(l, 0), W + (size_t)l * h * h, h * h * sizeof(float));
            memcpy(VER(l, 0) + h * h, b + (size_t)l * h, h * sizeof(float));
        }
        for (int s = 0; s < S; s++)
            nver[s] = 1;
        memset(done, 0, (size_t)M * sizeof(bool));
        double sq = 0;
        for (int left = M; left > 0;) {
            int progress = 0;
            for (int mb = 0; mb < M; mb++) {
                bool ready = !done[mb];
                for (int s = 0; s < S && ready; s++)
                    ready = fver[(size_t)s * M + mb] < nver[s];
                if (!ready)
                    continue;
                for (int s = 0; s < S; s++)
                    for (int q = 0; q < m->layers_per_stage[s]; q++) {
                        int l = m->first_layer[s] + q;
                        Wl[l] = VER(l, fver[(size_t)s * M + mb]);
                        bl[l] = Wl[l] + h * h;
                        dW[l] = GRAD(l, mb);
                        db[l] = dW[l] + h * h;
                    }
                pr_make_batch(m, k, mb * (int)rows, (int)rows, x, t);
                sq += pr_reference_grad(m, Wl, bl, x, t, (int)rows, dW, db);
                done[mb] = true;
                left--;
                progress++;
            }
            /* each stage steps through its updates, in its B order, as far
             * as the gradients are known */
            for (int s = 0; s < S; s++)
                while (nver[s] <= M && done[border[(size_t)s * M + nver[s] - 1]]) {
                    int mb = border[(size_t)s * M + nver[s] - 1];
                    for (int q = 0; q < m->layers_per_stage[s]; q++) {
                        int l = m->first_layer[s] + q;
                        const float *prev = VER(l, nver[s] - 1), *g = GRAD(l, mb);
                        float *next = VER(l, nver[s]);
                        for (size_t i = 0; i < lw; i++)
                            next[i] = pp_sgd(prev[i], g[i], lr);
                    }
                    nver[s]++;
                    progress++;
                }
            if (!progress) {
                pp_error(d, "check: the plan's pipedream order needs a weight version before it exists");
                rc = 1;
                break;
            }
        }
        loss[k] = sq / (2.0 * (double)m->batch);
        for (int l = 0; l < L && !rc; l++) {
            memcpy(W + (size_t)l * h * h, VER(l, M), h * h * sizeof(float));
            memcpy(b + (size_t)l * h, VER(l, M) + h * h, h * sizeof(float));
        }
    }
#undef VER
#undef GRAD
    free(fver);
    free(border);
    free(ver);
    free(grad);
    free(nver);
    free(done);
    free(x);
    free(t);
    free(Wl);
    return rc;
}

double pr_reference_bytes(const pp_plan *p, const pr_model *m)
{
    double f = sizeof(float), L = m->layers, h = m->hidden, M = p->microbatches;
    double lw = h * h + h, rows = (double)(m->batch / p->microbatches), N = m->batch;
    switch (p->async) {
    case PP_ASYNC_PIPEDREAM: /* train_pipedream's arrays */
        return f * (L * (2 * M + 1) * lw + 2 * rows * h) + pr_reference_grad_bytes(m, (int)rows);
    case PP_ASYNC_2BW: /* pr_reference_train_delayed's, with the old weights */
        return f * (2 * N * h + 2 * L * lw) + pr_reference_grad_bytes(m, m->batch);
    default:
        return f * (2 * N * h + L * lw) + pr_reference_grad_bytes(m, m->batch);
    }
}

int pr_reference_train_async(const pp_plan *p, const pr_model *m, int steps, float *W, float *b,
                             double *loss, pp_diag *d)
{
    switch (p->async) {
    case PP_ASYNC_NONE: pr_reference_train(m, steps, W, b, loss); return 0;
    case PP_ASYNC_2BW: pr_reference_train_delayed(m, steps, 1, W, b, loss); return 0;
    case PP_ASYNC_PIPEDREAM: return train_pipedream(p, m, steps, W, b, loss, d);
    default: pp_error(d, "check: unknown weight rule %d", p->async); return 1;
    }
}
