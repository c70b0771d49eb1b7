/*
 * gpt_check.c — pprun --check of a transformer: the same steps trained by
 * gpt_reference.c (single-device, or the asynchronous plan's rule: docs/async.md),
 * every parameter compared with the run's, the largest relative error
 * against the precision's tolerance (check.c's).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pprun.h"

int pr_gpt_check_run(const pp_plan *p, const pr_model *m, int steps, pr_run_result *r,
                     double tolerance, const bool *own, bool with_loss)
{
    size_t n = m->param_off[m->layers];
    float *P = pp_xcalloc(n, sizeof(float), "the reference's parameters");
    double *loss = pp_xcalloc((size_t)steps, sizeof(double), "the reference's losses");
    pr_gpt_init_params(m, P);
    pp_diag dg;
    pp_diag_init(&dg, stderr, "pprun");
    if (p->async == PP_ASYNC_PIPEDREAM) {
        if (pr_gpt_reference_pipedream(p, m, steps, P, loss, &dg)) {
            free(P);
            free(loss);
            return 1;
        }
    } else {
        pr_gpt_reference_train(m, steps, p->async == PP_ASYNC_2BW, P, loss);
    }
    /* this process's layers only (one rank of a multi-process run) */
    size_t kept = 0;
    for (int l = 0; l < m->layers; l++) {
        size_t o = m->param_off[l], len = m->param_off[l + 1] - o;
        if (own && !own[l])
            continue;
        memmove(P + kept, P + o, len * sizeof(float));
        memmove(r->params + kept, r->params + o, len * sizeof(float));
        kept += len;
    }
    double ew = pr_max_rel_err(r->params, P, kept), el = 0;
    for (int k = 0; k < steps && with_loss; k++) {
        double e = fabs(r->loss[k] - loss[k]) / (fabs(loss[k]) > 0 ? fabs(loss[k]) : 1);
        if (e > el || isnan(e))
            el = isnan(e) ? INFINITY : e;
    }
    /* AdamW divides each gradient by its own running size: where one cancels
     * to about eps its rounding noise, which the order of the sums decides,
     * becomes a sizeable part of an update of at most lr (docs/gpt.md,
     * "--check"): measured 0.4-1.6 % of lr x updates at the default eps,
     * and a wrong run (a micro-batch, a sum or a version missing) moves
     * parameters by that much or more.  So AdamW's bound is a twentieth of
     * it (updates: one a step, pipedream's one a micro-batch). */
    double updates = (double)steps * (p->async == PP_ASYNC_PIPEDREAM ? p->microbatches : 1);
    double adamw = m->gpt.optimizer == PR_ADAMW ? m->lr * updates / 20 : 0;
    if (adamw > tolerance)
        tolerance = adamw;
    bool ok = ew <= tolerance && !isnan(ew);
    printf("check: largest relative error %.3g (parameters %.3g; loss %.3g) vs %s: %s (tolerance %g%s)\n",
           ew, ew, el,
           p->async == PP_ASYNC_NONE  ? "single-device training"
           : p->async == PP_ASYNC_2BW ? "the 2bw rule (docs/async.md)"
           : p->vertical_sync         ? "the pipedream vertical-sync rule (docs/async.md)"
                                      : "the pipedream rule (docs/async.md)",
           ok ? "ok" : "FAILED", tolerance, tolerance == adamw ? ": AdamW's, lr x updates / 20" : "");
    free(P);
    free(loss);
    return ok ? 0 : 1;
}

bool pr_gpt_check_fits(const pp_plan *p, const pr_model *m, int steps, pp_diag *d)
{
    double need = pr_gpt_reference_bytes(p, m) + steps * 2.0 * sizeof(double);
    const char *limit;
    double left = pr_host_memory_left(&limit);
    if (need <= left)
        return true;
    char nb[32], lb[32];
    pp_error(d, "--check needs %s of memory for the single-device reference (the parameters, "
                "their gradients and moments, one sequence's activations), more than the %s left "
                "under %s",
             pr_format_bytes(need, nb, sizeof nb), pr_format_bytes(left, lb, sizeof lb), limit);
    return false;
}
