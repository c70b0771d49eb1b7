/*
 * test_overlap_sweep.c — overlap's property sweep (issue 10): every
 * policy's plan, lowered with overlap, verifies, and its simulated makespan
 * is within 1 % of the dataflow bound of its compute order, computed here
 * on its own: each compute op starts when its device is free and its
 * inputs have arrived; a transfer leaves when its producer ends and its
 * directed link is free (one at a time per link, in the sender's order),
 * and arrives comm later.  With comm <= F no link is ever busy when a
 * transfer wants it (a device produces at most one output per F), so the
 * bound is the pure dataflow bound; above F it is what the busiest link
 * imposes on the order.  No memory limit: buffer memory never binds.
 * A second sweep puts the limit at the version-1 plan's peak: the posts
 * it holds back keep every device under it, and the plan is never slower
 * than the version-1 one.
 *
 * The run in CI takes a sample of the shapes (seconds); PP_SWEEP_FULL=1
 * (this test binary's own switch) sweeps devices 1..8 x micro-batches
 * 1..32 x chunks 1..4.  Either way it prints the largest gap found.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

typedef struct shape {
    const char *policy;
    int D, M, v;
    double comm;
} shape;

/* The stages micro-batch m flows through, [*first, *last]: all of them, or
 * in a mirrored plan (dualpipe) the first half's for the first half of the
 * micro-batches and the second half's for the others. */
static void mb_route(const pp_plan *p, int m, int *first, int *last)
{
    int S = p->stages, H = S / 2;
    *first = 0;
    *last = S - 1;
    if (p->mirrored) {
        *first = m < p->microbatches / 2 ? 0 : H;
        *last = *first + H - 1;
    }
}

/* The allreduce at pc[d], when every member of its group is at its own
 * allreduce of that group with as many of the group's before it (seen[r *
 * ncoll + g]): all of them pass it at once, comm after the last arrives
 * (mirrored plans' sums and tied pairs carry no bytes here).  False: some
 * member is not there yet. */
static bool collective(const pp_plan *p, int *pc, double *clock, long *seen, double comm, int d)
{
    int g = p->dev[d].ops[pc[d]].peer;
    const pp_coll *c = &p->coll[g];
    double t = 0;
    for (int k = 0; k < c->nranks; k++) {
        int r = c->ranks[k];
        const pp_op *o = pc[r] < p->dev[r].n ? &p->dev[r].ops[pc[r]] : NULL;
        if (!o || o->kind != PP_OP_ALLREDUCE || o->peer != g || seen[(size_t)r * p->ncoll + g] != seen[(size_t)d * p->ncoll + g])
            return false;
        t = fmax(t, clock[r]);
    }
    for (int k = 0; k < c->nranks; k++) {
        int r = c->ranks[k];
        clock[r] = t + comm;
        seen[(size_t)r * p->ncoll + g]++;
        if (r != d)
            pc[r]++;
    }
    return true;
}

/* The dataflow bound of p's compute order on F = B = W = 1 (B + W when
 * not split, R = F) with transfers of comm.  -1: the order waits in a cycle. */
static double dataflow_bound(const pp_plan *p, double comm)
{
    int D = p->devices, S = p->stages, M = p->microbatches;
    size_t n = (size_t)S * M;
    double *endF = malloc(n * sizeof *endF), *endB = malloc(n * sizeof *endB), *endFR = malloc(n * sizeof *endFR);
    double *link = calloc((size_t)D * D, sizeof *link), *clock = calloc((size_t)D, sizeof *clock);
    int *pc = calloc((size_t)D, sizeof *pc);
    long *seen = calloc((size_t)D * (p->ncoll > 0 ? p->ncoll : 1), sizeof *seen);
    for (size_t k = 0; k < n; k++)
        endF[k] = endB[k] = endFR[k] = -1;
    /* The arrival of what (s, m) of kind F/B sent to the other device:
     * kept per edge, computed when the producer ends (in its device's order). */
    double *arrF = malloc(n * sizeof *arrF), *arrB = malloc(n * sizeof *arrB);
    bool progress = true;
    while (progress) {
        progress = false;
        for (int d = 0; d < D; d++) {
            const pp_device *dv = &p->dev[d];
            for (; pc[d] < dv->n; pc[d]++) {
                const pp_op *op = &dv->ops[pc[d]];
                if (op->kind == PP_OP_ALLREDUCE) { /* all members at it: together, comm long */
                    if (!collective(p, pc, clock, seen, comm, d))
                        break;
                    progress = true;
                    continue;
                }
                if (!pp_op_is_compute(op->kind))
                    continue;
                int s = op->stage, m = op->mb, first, last;
                mb_route(p, m, &first, &last);
                size_t k = (size_t)s * M + m;
                double ready = clock[d];
                if (op->kind == PP_OP_F && s > first) {
                    size_t j = k - M;
                    if (endF[j] < 0)
                        break;
                    double a = p->placement[s - 1] == d ? endF[j] : arrF[j];
                    ready = fmax(ready, a);
                } else if (op->kind == PP_OP_B) {
                    if (endF[k] < 0)
                        break;
                    ready = fmax(ready, endFR[k]);
                    if (s < last) {
                        size_t j = k + M;
                        if (endB[j] < 0)
                            break;
                        ready = fmax(ready, p->placement[s + 1] == d ? endB[j] : arrB[j]);
                    }
                } else if (op->kind == PP_OP_W) {
                    if (endB[k] < 0)
                        break;
                    ready = fmax(ready, endB[k]);
                } else if (op->kind == PP_OP_R) {
                    if (endF[k] < 0)
                        break;
                    ready = fmax(ready, endF[k]);
                }
                double dur = op->kind == PP_OP_B && !p->split_backward ? 2 : 1;
                clock[d] = ready + dur;
                progress = true;
                if (op->kind == PP_OP_F) {
                    endF[k] = endFR[k] = clock[d];
                    if (s < last && p->placement[s + 1] != d) {
                        double *l = &link[(size_t)d * D + p->placement[s + 1]];
                        *l = fmax(*l, clock[d]) + comm;
                        arrF[k] = *l;
                    }
                } else if (op->kind == PP_OP_R) {
                    endFR[k] = clock[d];
                } else if (op->kind == PP_OP_B) {
                    endB[k] = clock[d];
                    if (s > first && p->placement[s - 1] != d) {
                        double *l = &link[(size_t)d * D + p->placement[s - 1]];
                        *l = fmax(*l, clock[d]) + comm;
                        arrB[k] = *l;
                    }
                }
            }
        }
    }
    double bound = 0;
    for (int d = 0; d < D; d++) {
        if (pc[d] < p->dev[d].n)
            bound = -1;
        if (bound >= 0 && clock[d] > bound)
            bound = clock[d];
    }
    free(endF);
    free(endB);
    free(endFR);
    free(arrF);
    free(arrB);
    free(link);
    free(clock);
    free(pc);
    free(seen);
    return bound;
}

typedef struct worst {
    double gap;
    char where[128];
    long plans;
} worst;

/* The spec of shape sh (F = B = W = 1, a stage's activations 1, its
 * recomputed input and a posted receive's buffer input_frac); its arrays
 * are freed by spec_free. */
static void spec_of(const shape *sh, double input_frac, pp_spec *s)
{
    int S = sh->D * sh->v;
    int *placement = calloc((size_t)S, sizeof *placement);
    double *sF = calloc((size_t)S, sizeof(double)), *sB = calloc((size_t)S, sizeof(double)),
           *sW = calloc((size_t)S, sizeof(double));
    memset(s, 0, sizeof *s);
    snprintf(s->schedule, sizeof s->schedule, "%s", sh->policy);
    s->devices = sh->D;
    s->chunks = sh->v;
    s->stages = S;
    s->microbatches = sh->M;
    bool vshape = strcmp(sh->policy, "zbv") == 0 || strcmp(sh->policy, "dualpipev") == 0 ||
                  strcmp(sh->policy, "v-half") == 0 || strcmp(sh->policy, "v-min") == 0 ||
                  strcmp(sh->policy, "dualpipe") == 0;
    const pp_policy *pol = pp_policy_find(sh->policy);
    s->mirrored = pol && pol->mirrored && S % 2 == 0; /* as spec_resolve.c sets it */
    s->placement_kind = vshape ? PP_PLACE_VSHAPE : PP_PLACE_LOOP;
    for (int st = 0; st < S; st++) {
        placement[st] = !vshape ? st % sh->D : st < sh->D ? st : 2 * sh->D - 1 - st;
        sF[st] = sB[st] = sW[st] = 1;
    }
    s->placement = placement;
    s->cost = (pp_cost){.F = 1, .B = 1, .W = 1, .comm = sh->comm, .stage_F = sF, .stage_B = sB, .stage_W = sW,
                        .recompute_input = input_frac};
    s->act_size = 1;
    s->overlap = true;
    snprintf(s->model.kind, sizeof s->model.kind, "mlp");
    s->model.layers = pp_spec_pipe_stages(s);
    s->model.hidden = 4;
    s->model.batch = sh->M;
    s->model.lr = 0.01;
}

static void spec_free(pp_spec *s)
{
    free(s->placement);
    free(s->cost.stage_F);
    free(s->cost.stage_B);
    free(s->cost.stage_W);
}

/* Compiles sh with overlap; false when the policy refuses the shape. */
static bool check_shape(const shape *sh, worst *w)
{
    pp_spec s;
    spec_of(sh, 0, &s);
    tu_diag t;
    tu_diag_open(&t);
    pp_plan plan;
    memset(&plan, 0, sizeof plan);
    bool ran = pp_policy_run(&s, &plan, &t.diag) == 0;
    if (ran) {
        pp_sim sim;
        ck_assert_msg(pp_lower_verify_simulate(&plan, &s, false, &sim, &t.diag) == 0,
                      "%s D=%d M=%d v=%d comm=%g: %s", sh->policy, sh->D, sh->M, sh->v, sh->comm, tu_diag_text(&t));
        double bound = dataflow_bound(&plan, sh->comm);
        ck_assert_msg(bound > 0, "%s D=%d M=%d v=%d: the order has no dataflow timing", sh->policy, sh->D, sh->M,
                      sh->v);
        double gap = sim.makespan / bound - 1;
        ck_assert_msg(gap > -1e-9, "%s D=%d M=%d v=%d comm=%g: makespan %.17g under the bound %.17g", sh->policy,
                      sh->D, sh->M, sh->v, sh->comm, sim.makespan, bound);
        if (gap > w->gap) {
            w->gap = gap;
            snprintf(w->where, sizeof w->where, "%s D=%d M=%d v=%d comm=%g: makespan %g, bound %g", sh->policy,
                     sh->D, sh->M, sh->v, sh->comm, sim.makespan, bound);
        }
        w->plans++;
        ck_assert_msg(gap <= 0.01, "%s D=%d M=%d v=%d comm=%g: makespan %g is %.2f%% over the dataflow bound %g",
                      sh->policy, sh->D, sh->M, sh->v, sh->comm, sim.makespan, 100 * gap, bound);
        pp_sim_free(&sim, plan.devices);
    }
    pp_plan_free(&plan);
    tu_diag_close(&t);
    spec_free(&s);
    return ran;
}

/* What the memory-limited sweep saw: shapes compiled, and those where the
 * limit held the posts back (slower than without it) and where overlap
 * still gained (faster than the version-1 plan). */
typedef struct limited {
    long plans, bound, gained;
} limited;

/* The peak of the plan's devices. */
static double max_peak(const pp_sim *sim, int devices)
{
    double top = 0;
    for (int d = 0; d < devices; d++)
        top = fmax(top, sim->peak_mem[d]);
    return top;
}

/* sh under memory.limit = the version-1 plan's peak, with posted buffers
 * of half a stage's activations: the overlapped plan verifies, no device
 * goes over the limit, and it is no slower than the version-1 plan (a recv
 * posted at its consumer's gap, the latest place lowering uses, is the
 * version-1 place) nor faster than its order's dataflow bound. */
static void check_limited(const shape *sh, limited *w)
{
    pp_spec s;
    spec_of(sh, 0.5, &s);
    tu_diag t;
    tu_diag_open(&t);
    pp_plan v1, free_, capped;
    memset(&v1, 0, sizeof v1);
    memset(&free_, 0, sizeof free_);
    memset(&capped, 0, sizeof capped);
    pp_sim sv1, sfree, scap;
    s.overlap = false;
    if (pp_policy_run(&s, &v1, &t.diag) == 0) {
        ck_assert_msg(pp_lower_verify_simulate(&v1, &s, false, &sv1, &t.diag) == 0, "%s", tu_diag_text(&t));
        s.overlap = true;
        ck_assert(pp_policy_run(&s, &free_, &t.diag) == 0 && pp_policy_run(&s, &capped, &t.diag) == 0);
        ck_assert_msg(pp_lower_verify_simulate(&free_, &s, false, &sfree, &t.diag) == 0, "%s", tu_diag_text(&t));
        s.mem_limit = max_peak(&sv1, v1.devices);
        ck_assert_msg(pp_lower_verify_simulate(&capped, &s, true, &scap, &t.diag) == 0,
                      "%s D=%d M=%d v=%d comm=%g under the version-1 peak %g: %s", sh->policy, sh->D, sh->M, sh->v,
                      sh->comm, s.mem_limit, tu_diag_text(&t));
        for (int d = 0; d < capped.devices; d++)
            ck_assert_msg(scap.peak_mem[d] <= s.mem_limit + 1e-9, "%s D=%d M=%d v=%d comm=%g: device %d peaks at %g, "
                          "over the limit %g", sh->policy, sh->D, sh->M, sh->v, sh->comm, d, scap.peak_mem[d],
                          s.mem_limit);
        ck_assert_msg(scap.makespan <= sv1.makespan + 1e-9, "%s D=%d M=%d v=%d comm=%g: %g under the limit, %g "
                      "without overlap", sh->policy, sh->D, sh->M, sh->v, sh->comm, scap.makespan, sv1.makespan);
        double bound = dataflow_bound(&capped, sh->comm);
        ck_assert_msg(scap.makespan >= bound - 1e-9, "%s D=%d M=%d v=%d comm=%g: %g under the dataflow bound %g",
                      sh->policy, sh->D, sh->M, sh->v, sh->comm, scap.makespan, bound);
        w->plans++;
        w->bound += scap.makespan > sfree.makespan + 1e-9;
        w->gained += scap.makespan < sv1.makespan - 1e-9;
        pp_sim_free(&sv1, v1.devices);
        pp_sim_free(&sfree, free_.devices);
        pp_sim_free(&scap, capped.devices);
    }
    pp_plan_free(&v1);
    pp_plan_free(&free_);
    pp_plan_free(&capped);
    tu_diag_close(&t);
    spec_free(&s);
}

START_TEST(overlap_under_a_memory_limit)
{
    static const int Ds[] = {2, 4}, Ms[] = {4, 8};
    static const double comms[] = {0.5, 1};
    limited w = {0};
    for (const pp_policy *const *pol = pp_policy_all(); *pol; pol++) {
        if (strcmp((*pol)->name, "custom") == 0 || strcmp((*pol)->name, "auto") == 0)
            continue; /* no order to run; auto's own search is the sweep's */
        for (int v = 1; v <= 2; v++)
            for (int di = 0; di < 2; di++)
                for (int mi = 0; mi < 2; mi++)
                    for (int ci = 0; ci < 2; ci++) {
                        shape sh = {(*pol)->name, Ds[di], Ms[mi], v, comms[ci]};
                        check_limited(&sh, &w);
                    }
    }
    printf("memory-limited overlap: %ld plans; the limit held posts back in %ld, overlap still gained in %ld\n",
           w.plans, w.bound, w.gained);
    ck_assert_int_gt(w.bound, 0);  /* the limit binds somewhere: the sweep tests the capped lowering */
    ck_assert_int_gt(w.gained, 0); /* and overlap still helps somewhere under it */
}
END_TEST

START_TEST(overlap_reaches_the_dataflow_bound)
{
    bool full = getenv("PP_SWEEP_FULL") && strcmp(getenv("PP_SWEEP_FULL"), "1") == 0;
    static const int Ds_sample[] = {1, 2, 3, 4, 8}, Ms_sample[] = {1, 2, 3, 5, 8, 13, 32};
    static const double comms[] = {0, 0.1, 0.5, 1, 1.5, 2}; /* x F; above 1 the links saturate */
    worst w = {.gap = -1};
    for (const pp_policy *const *pol = pp_policy_all(); *pol; pol++) {
        const char *name = (*pol)->name;
        if (strcmp(name, "custom") == 0)
            continue; /* no order to run */
        bool costly = strcmp(name, "auto") == 0; /* its own search per shape */
        long accepted = 0;
        for (int v = 1; v <= 4; v++)
            for (int di = 0; di < (full ? 8 : 5); di++)
                for (int mi = 0; mi < (full ? 32 : 7); mi++)
                    for (int ci = 0; ci < 6; ci++) {
                        int D = full ? di + 1 : Ds_sample[di], M = full ? mi + 1 : Ms_sample[mi];
                        if (costly && (D > 4 || M > 8 || v > 2 || (!full && ci % 2)))
                            continue;
                        shape sh = {name, D, M, v, comms[ci]};
                        accepted += check_shape(&sh, &w);
                    }
        ck_assert_msg(accepted > 0, "%s accepted no shape", name);
    }
    printf("overlap sweep: %ld plans; largest gap to the dataflow bound %.4f%% (%s)\n", w.plans, 100 * w.gap,
           w.where);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("overlap_sweep");
    TCase *tc = tcase_create("sweep");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, overlap_reaches_the_dataflow_bound);
    tcase_add_test(tc, overlap_under_a_memory_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
