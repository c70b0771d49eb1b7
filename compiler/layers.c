/*
 * layers.c — layers are the unit of cost and memory (docs/costs.md): a
 * stage's F, B and W are the sums over the layers it holds, so are its
 * activations, and a device's static memory is the weights of its stages'
 * layers (a tied head's copy of the embedding counted once where one
 * device holds both).  The verifier, the simulator and every view go on reading
 * per-stage numbers; this file is the one place they are summed from the
 * layers, for the split the spec holds, and it is called again for every
 * split the balance search tries (balance.c).
 *
 * It also holds the splits that need no simulator: as even as possible in
 * layer counts, by parameters (DeepSpeed's partition_method='parameters':
 * the smallest largest stage in weights) and by compute (the greedy prefix
 * the tutorials teach: cut where the running F + B + W crosses k / S of
 * the total), with the min-max dynamic programme over prefix sums that
 * the parameters rule and the balance search start from.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

const char *pp_balance_name(int rule)
{
    switch (rule) {
    case PP_BALANCE_LIST: return "list";
    case PP_BALANCE_PARAMETERS: return "parameters";
    case PP_BALANCE_COMPUTE: return "compute";
    case PP_BALANCE_AUTO: return "auto";
    default: return "even";
    }
}

/* A tied head's copy of wte on the device that holds the embedding too is
 * the embedding's own: not counted twice (of the copy, the optimizer state
 * ZeRO-1 did not keep there is not there to drop). */
static void drop_tied_copy(pp_spec *s, int device, double unsharded)
{
    const pp_layer *head = &s->layers[s->n_layers - 1];
    double copy_state = head->weights > 0 ? head->opt_state * head->shared / head->weights : 0;
    s->static_mem[device] -= head->shared - copy_state * unsharded;
    if (s->zero_saved)
        s->zero_saved[device] -= copy_state * unsharded;
}

void pp_spec_sum_layers(pp_spec *s)
{
    if (!s->layers || !s->stage_act)
        return;
    pp_cost *c = &s->cost;
    /* ZeRO-1 keeps 1 / R of the optimizer state on each replica */
    int R = s->data_parallel > 1 ? s->data_parallel : 1;
    double unsharded = s->zero ? 1 - 1.0 / R : 0;
    for (int d = 0; d < s->devices; d++) {
        s->static_mem[d] = 0;
        if (s->zero_saved)
            s->zero_saved[d] = 0;
    }
    for (int st = 0, l = 0; st < s->stages; st++) {
        if (s->mirrored && st == s->stages / 2)
            l = 0; /* the second pipeline: a copy of the same layers */
        double F = 0, B = 0, W = 0, act = 0, weights = 0, state = 0, grads = 0;
        int first = l, n = pp_stage_layer_count(s, st);
        for (int k = 0; k < n && l < s->n_layers; k++, l++) {
            const pp_layer *y = &s->layers[l];
            F += y->F;
            B += y->B;
            W += y->W;
            act += y->act;
            weights += y->weights;
            state += y->opt_state;
            grads += y->grads;
        }
        if (c->stage_grad)
            c->stage_grad[st] = grads;
        weights -= state * unsharded;
        if (s->zero_saved)
            s->zero_saved[s->placement[st]] += state * unsharded;
        c->stage_F[st] = c->fixed_F && !isnan(c->fixed_F[st]) ? c->fixed_F[st] : F;
        c->stage_B[st] = c->fixed_B && !isnan(c->fixed_B[st]) ? c->fixed_B[st] : B;
        c->stage_W[st] = c->fixed_W && !isnan(c->fixed_W[st]) ? c->fixed_W[st] : W;
        s->stage_act[st] = act;
        s->stage_input[st] = s->input_set >= 0 ? s->input_set : first < s->n_layers ? s->layers[first].act_input : 0;
        if (c->stage_out && l > 0)
            c->stage_out[st] = s->layers[l - 1].out;
        s->static_mem[s->placement[st]] += weights;
    }
    /* one device holding the first and the last stage (a V placement) holds
     * wte once */
    int P = pp_spec_pipe_stages(s); /* a mirrored plan: the first pipeline's head and the second's embedding */
    if (s->n_layers >= 2 && s->placement[0] == s->placement[s->stages - 1])
        drop_tied_copy(s, s->placement[0], unsharded);
    if (s->mirrored && s->n_layers >= 2 && s->placement[P - 1] == s->placement[P])
        drop_tied_copy(s, s->placement[P], unsharded);
}

/* The one translation from a split in items of s->layers (what the rules
 * and the search choose: every stage at least one item) to
 * model.layers_per_stage (pprun's contract: a gpt's counts are blocks, its
 * embedding and head beyond them); pp_stage_layer_count is its inverse. */
void pp_spec_set_split(pp_spec *s, const int *items)
{
    for (int st = 0; st < s->stages; st++)
        s->model.layers_per_stage[st] =
            items[st] - (s->layer_ends && st == 0) - (s->layer_ends && st == s->stages - 1);
    pp_spec_sum_layers(s);
}

/* Exact DP in two rounds: best[k][i] is the best largest part splitting
 * the first i items into k parts, first in sums; then, among the splits
 * whose every part stays within that optimum, in counts (a lexicographic
 * DP would not be exact: a smaller largest sum can carry a larger count). */
static void minmax_dp(const double *prefix, int n, int S, int *out)
{
    size_t cells = (size_t)(S + 1) * (size_t)(n + 1);
    double *best = pp_xcalloc(cells, sizeof *best, "the balance");
    int *cut = pp_xcalloc(cells, sizeof *cut, "the balance");
#define AT(k, i) ((size_t)(k) * (size_t)(n + 1) + (size_t)(i))
    double bound = INFINITY;
    for (int round = 0; round < 2; round++) {
        /* round 0: the value of a part is its sum; round 1: its count, parts over the bound barred */
        for (size_t c = 0; c < cells; c++)
            best[c] = INFINITY;
        for (int i = 1; i <= n; i++)
            if (round == 0 || prefix[i] <= bound)
                best[AT(1, i)] = round == 0 ? prefix[i] : i;
        for (int k = 2; k <= S; k++)
            for (int i = k; i <= n - (S - k); i++) {
                double b = INFINITY;
                int bj = k - 1;
                for (int j = k - 1; j < i; j++) {
                    double sum = prefix[i] - prefix[j];
                    if (round == 1 && sum > bound)
                        continue;
                    double part = round == 0 ? sum : i - j;
                    double v = best[AT(k - 1, j)] > part ? best[AT(k - 1, j)] : part;
                    if (v < b) {
                        b = v;
                        bj = j;
                    }
                }
                best[AT(k, i)] = b;
                cut[AT(k, i)] = bj;
            }
        /* a tolerance for sums added in another order */
        bound = best[AT(S, n)] * (1 + 1e-12) + 1e-300;
    }
    for (int k = S, i = n; k >= 1; k--) {
        int j = k > 1 ? cut[AT(k, i)] : 0;
        out[k - 1] = i - j;
        i = j;
    }
#undef AT
    free(best);
    free(cut);
}

/* Greedy: parts of at most bound, each leaving one item per part to come;
 * returns the number of parts it needs (more than S: the bound is too low). */
static int greedy_parts(const double *prefix, int n, int S, double bound, int *out)
{
    int parts = 0, start = 0;
    while (start < n) {
        int end = start + 1;
        while (end < n && prefix[end + 1] - prefix[start] <= bound && n - (end + 1) >= S - parts - 1)
            end++;
        if (out && parts < S)
            out[parts] = end - start;
        parts++;
        start = end;
    }
    return parts;
}

void pp_split_minmax(const double *w, int n, int S, int *out)
{
    double *prefix = pp_xcalloc((size_t)n + 1, sizeof *prefix, "the balance");
    for (int i = 0; i < n; i++)
        prefix[i + 1] = prefix[i] + w[i];
    if ((double)S * n * n <= 2e7) {
        minmax_dp(prefix, n, S, out);
    } else {
        /* Bisection on the bound; then the greedy split at it, the parts
         * it did not need (a bound so loose that fewer suffice) made of one
         * layer each, taken from the nearest earlier part that has two (any
         * counts summing to n are a contiguous split). */
        double lo = 0, hi = prefix[n];
        for (int i = 0; i < n; i++)
            lo = w[i] > lo ? w[i] : lo;
        for (int it = 0; it < 100 && hi - lo > 1e-12 * (hi > 1 ? hi : 1); it++) {
            double mid = 0.5 * (lo + hi);
            if (greedy_parts(prefix, n, S, mid, NULL) <= S)
                hi = mid;
            else
                lo = mid;
        }
        int parts = greedy_parts(prefix, n, S, hi, out);
        for (int k = parts; k < S; k++) {
            out[k] = 0;
            for (int j = k - 1; j >= 0 && out[k] == 0; j--)
                if (out[j] > 1) {
                    out[j]--;
                    out[k] = 1;
                }
        }
    }
    free(prefix);
}

static void even_split(int n, int S, int *out)
{
    for (int s = 0; s < S; s++)
        out[s] = n / S + (s < n % S);
}

void pp_spec_even_split(const pp_spec *s, int *items)
{
    int S = s->stages, ends = s->layer_ends ? 2 : 0, blocks = s->n_layers - ends;
    if (!s->layer_ends || blocks < S) {
        even_split(s->n_layers, S, items); /* a gpt too short for an even split of blocks: of its layers */
        return;
    }
    even_split(blocks, S, items);
    items[0]++;
    items[S - 1]++;
}

/* Cut where the running time crosses k / S of the total, at the nearer of
 * the two layers around the crossing, every stage keeping one layer. */
static void greedy_prefix(const pp_layer *layers, int n, int S, int *out)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        total += pp_layer_time(&layers[i]);
    if (!(total > 0)) {
        even_split(n, S, out);
        return;
    }
    int prev = 0; /* the cut before stage k: its first layer */
    double run = 0;
    int i = 0;
    for (int k = 1; k < S; k++) {
        double target = total * k / S;
        while (i < n && run + pp_layer_time(&layers[i]) < target) {
            run += pp_layer_time(&layers[i]);
            i++;
        }
        /* layers [0, i) are under the target; layer i crosses it */
        int c = i;
        if (i < n && run + pp_layer_time(&layers[i]) - target < target - run)
            c = i + 1;
        int lo = prev + 1, hi = n - (S - k);
        c = c < lo ? lo : c > hi ? hi : c;
        out[k - 1] = c - prev;
        prev = c;
        while (i < c) {
            run += pp_layer_time(&layers[i]);
            i++;
        }
        while (i > c) {
            i--;
            run -= pp_layer_time(&layers[i]);
        }
    }
    out[S - 1] = n - prev;
}

void pp_balance_split(int rule, const pp_layer *layers, int n, int S, int *out)
{
    if (rule == PP_BALANCE_COMPUTE) {
        greedy_prefix(layers, n, S, out);
        return;
    }
    if (rule != PP_BALANCE_PARAMETERS) {
        even_split(n, S, out);
        return;
    }
    double *w = pp_xcalloc((size_t)n, sizeof *w, "the balance");
    for (int i = 0; i < n; i++)
        w[i] = layers[i].weights;
    pp_split_minmax(w, n, S, out);
    free(w);
}

void pp_spec_scale_microbatch(pp_spec *s, double k)
{
    pp_cost *c = &s->cost;
    c->F *= k;
    c->B *= k;
    c->W *= k;
    for (int st = 0; st < s->stages; st++) {
        c->stage_F[st] *= k;
        c->stage_B[st] *= k;
        c->stage_W[st] *= k;
        if (c->fixed_F) {
            c->fixed_F[st] *= k; /* NAN stays NAN */
            c->fixed_B[st] *= k;
            c->fixed_W[st] *= k;
        }
        if (s->stage_act) {
            s->stage_act[st] *= k;
            s->stage_input[st] *= k;
        }
    }
    for (int l = 0; s->layers && l < s->n_layers; l++) {
        pp_layer *y = &s->layers[l];
        y->F *= k;
        y->B *= k;
        y->W *= k;
        y->act *= k;
        y->act_input *= k;
        y->out *= k;
    }
    s->act_size *= k;
    if (s->input_set > 0)
        s->input_set *= k;
}
