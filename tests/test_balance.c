/*
 * test_balance.c — layers as the unit of cost and memory, and the balance
 * rules (docs/costs.md): the stage sums of layers.c against hand sums, a
 * balance that changes the prediction, the per-stage memory model, the
 * min-max DP against brute force, the compute and parameters rules, and
 * balance = auto against every contiguous split, for every policy, on
 * small skewed models (with and without a memory limit); the same for a
 * gpt on hardware over its block splits, its parameters and compute rules
 * against the closed forms of docs/gpt.md, and its errors.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* One spec from text and -D settings. */
typedef struct spec_run {
    pp_arena a;
    pp_ast ast;
    pp_spec s;
    tu_diag td;
    int errors;
} spec_run;

static int build(spec_run *r, const char *text, const pp_define *defs, int n)
{
    memset(r, 0, sizeof *r);
    tu_diag_open(&r->td);
    r->errors = pp_parse("t.pp", text, strlen(text), &r->a, &r->td.diag, &r->ast);
    if (!r->errors)
        r->errors = pp_spec_build(&r->ast, defs, n, &r->a, &r->td.diag, &r->s);
    return r->errors;
}

static void build_free(spec_run *r)
{
    tu_diag_close(&r->td);
    pp_arena_free(&r->a);
}

/* pp_compile's makespan (INFINITY when it fails, e.g. over the limit). */
static double makespan_of(pp_spec *s, double *peak)
{
    pp_plan p = {0};
    pp_sim sim;
    pp_diag_buffer b;
    pp_diag_buffer_open(&b, "ppcc");
    double m = INFINITY;
    if (pp_compile(s, &p, &sim, &b.diag) == 0) {
        m = sim.makespan;
        for (int d = 0; peak && d < s->devices; d++)
            peak[d] = sim.peak_mem[d];
        pp_sim_free(&sim, s->devices);
    }
    pp_plan_free(&p);
    pp_diag_buffer_close(&b);
    return m;
}

static const char *const skewed =
    "devices = 4\nmicrobatches = 8\nschedule 1f1b\n"
    "layer_costs {\n"
    "    embedding { F = 0.5  B = 0.5  weights = 8  activation = 1 }\n"
    "    block 6   { F = 1  B = 1  W = 1  activation = 2  input = 0.5  weights = 1 }\n"
    "    head      { F = 3  B = 3  activation = 4  weights = 8 }\n"
    "}\n"
    "model mlp { balance = [2, 2, 2, 2] }\n";

START_TEST(stage_sums)
{
    spec_run r;
    ck_assert_int_eq(build(&r, skewed, NULL, 0), 0);
    const pp_spec *s = &r.s;
    ck_assert_int_eq(s->n_layers, 8);
    ck_assert_int_eq(s->model.layers, 8);
    /* stage 0: embedding + block; 1, 2: two blocks; 3: block + head */
    const double F[4] = {1.5, 2, 2, 4}, B[4] = {1.5, 2, 2, 4}, W[4] = {1, 2, 2, 1};
    const double act[4] = {3, 4, 4, 6}, input[4] = {0.5, 0.5, 0.5, 0.5}, stat[4] = {9, 2, 2, 9};
    for (int st = 0; st < 4; st++) {
        ck_assert_double_eq(s->cost.stage_F[st], F[st]);
        ck_assert_double_eq(s->cost.stage_B[st], B[st]);
        ck_assert_double_eq(s->cost.stage_W[st], W[st]);
        ck_assert_double_eq(s->stage_act[st], act[st]);
        ck_assert_double_eq(s->stage_input[st], st == 0 ? 0.5 : input[st]); /* embedding: half its activation */
        ck_assert_double_eq(s->static_mem[st], stat[st]);
    }
    build_free(&r);

    /* A per-stage override stays whatever the split. */
    pp_define defs[] = {{"cost.stage.3.F", "7"}, {"model.balance", "[1, 1, 1, 5]"}};
    ck_assert_int_eq(build(&r, skewed, defs, 2), 0);
    ck_assert_double_eq(r.s.cost.stage_F[3], 7);
    ck_assert_double_eq(r.s.cost.stage_B[3], 4 + 3); /* four blocks and the head */
    ck_assert_double_eq(r.s.static_mem[3], 4 + 8);
    build_free(&r);
}
END_TEST

/* The first complaint: a balance did not change the makespan. */
START_TEST(balance_changes_prediction)
{
    static const char *const mlp = "devices = 4\nmicrobatches = 8\nschedule 1f1b\ncost { F = 1 B = 2 }\n"
                                   "model mlp { layers = 32 }\n";
    spec_run even, skew;
    /* version-1 lists: the sets alone (a posted recv's buffer: test_lower, fit_memory_*) */
    pp_define d_even[] = {{"model.balance", "even"}, {"overlap", "false"}},
              d_skew[] = {{"model.balance", "[1,1,1,29]"}, {"overlap", "false"}};
    ck_assert_int_eq(build(&even, mlp, d_even, 2), 0);
    ck_assert_int_eq(build(&skew, mlp, d_skew, 2), 0);
    double pe[4], ps[4];
    double me = makespan_of(&even.s, pe), ms = makespan_of(&skew.s, ps);
    /* the even split of 32 layers keeps the stage at cost.F: 1F1B's (M + D - 1)(F + B) */
    ck_assert_double_eq_tol(me, (8 + 3) * 3, 1e-9);
    /* the last stage holds 29 of 32 layers: its 8 micro-batches alone take 8 * 29/8 * 3 */
    ck_assert(ms >= 8 * (29.0 / 8) * 3);
    ck_assert(ms > me * 2);
    /* and the memory: the last device holds one set at a time, of 29/8 of a stage */
    ck_assert_double_eq_tol(ps[3], 29.0 / 8, 1e-12);
    ck_assert_double_eq_tol(pe[3], 1, 1e-12);
    build_free(&even);
    build_free(&skew);

    /* Without layer information, the old numbers: every stage costs cost.F. */
    spec_run plain;
    pp_define d_devices = {"devices", "3"}; /* 32 layers on 3 stages: 11 11 10 */
    ck_assert_int_eq(build(&plain, mlp, &d_devices, 1), 0);
    ck_assert_ptr_null(plain.s.layers);
    ck_assert_ptr_null(plain.s.stage_act);
    ck_assert_double_eq(plain.s.cost.stage_F[2], 1);
    build_free(&plain);
}
END_TEST

/* Static memory is held from the start and counted in the limit. */
START_TEST(static_memory_in_the_limit)
{
    spec_run r;
    pp_define lim = {"memory.limit", "20"};
    ck_assert_int_eq(build(&r, skewed, &lim, 1), 0);
    double peak[4];
    /* 1F1B: device d holds D - d sets at most, on top of its weights */
    const double want[4] = {9 + 4 * 3, 2 + 3 * 4, 2 + 2 * 4, 9 + 1 * 6};
    ck_assert(!isfinite(makespan_of(&r.s, peak))); /* device 0 needs 21 */
    build_free(&r);
    pp_define v1 = {"overlap", "false"}; /* the sets alone, as in balance_changes_prediction */
    ck_assert_int_eq(build(&r, skewed, &v1, 1), 0);
    ck_assert(isfinite(makespan_of(&r.s, peak)));
    for (int d = 0; d < 4; d++)
        ck_assert_double_eq_tol(peak[d], want[d], 1e-12);
    build_free(&r);
}
END_TEST

/* ---- the simple rules ---- */

static double max_part(const double *w, const int *split, int S)
{
    double m = 0;
    for (int k = 0, i = 0; k < S; k++) {
        double sum = 0;
        for (int j = 0; j < split[k]; j++)
            sum += w[i++];
        m = sum > m ? sum : m;
    }
    return m;
}

/* The best largest part over every contiguous split, by brute force. */
static double brute_minmax(const double *w, int n, int S, int first, int k)
{
    if (k == S - 1) {
        double sum = 0;
        for (int i = first; i < n; i++)
            sum += w[i];
        return sum;
    }
    double best = INFINITY, sum = 0;
    for (int end = first + 1; end <= n - (S - k - 1); end++) {
        sum += w[end - 1];
        double rest = brute_minmax(w, n, S, end, k + 1);
        double v = sum > rest ? sum : rest;
        best = v < best ? v : best;
    }
    return best;
}

START_TEST(minmax_dp_is_optimal)
{
    unsigned seed = 12345;
    for (int trial = 0; trial < 300; trial++) {
        int n = 2 + trial % 11, S = 1 + trial % (n < 5 ? n : 5);
        double w[16];
        for (int i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            w[i] = (double)((seed >> 16) % 10); /* zeros and ties included */
        }
        int split[16];
        pp_split_minmax(w, n, S, split);
        int total = 0;
        for (int k = 0; k < S; k++) {
            ck_assert_int_ge(split[k], 1);
            total += split[k];
        }
        ck_assert_int_eq(total, n);
        ck_assert_double_eq_tol(max_part(w, split, S), brute_minmax(w, n, S, 0, 0), 1e-9);
    }
    /* equal weights: the even split's largest count */
    double ones[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, zeros[10] = {0};
    int split[4];
    pp_split_minmax(zeros, 10, 4, split);
    for (int k = 0; k < 4; k++)
        ck_assert_int_le(split[k], 3);
    pp_split_minmax(ones, 10, 4, split);
    for (int k = 0; k < 4; k++)
        ck_assert_int_le(split[k], 3);
}
END_TEST

START_TEST(compute_and_parameters_rules)
{
    pp_layer l[12];
    memset(l, 0, sizeof l);
    for (int i = 0; i < 12; i++)
        l[i].F = 1;
    l[0].weights = l[11].weights = 8;
    l[11].F = 4; /* times: 1 x 11, then 4: total 15, a quarter 3.75 */
    int split[4];
    /* greedy prefix: cuts at the layers nearest to 3.75, 7.5, 11.25 */
    pp_balance_split(PP_BALANCE_COMPUTE, l, 12, 4, split);
    ck_assert_int_eq(split[0], 4); /* 4 is nearer 3.75 than 3 */
    ck_assert_int_eq(split[1], 3); /* 7 and 8 are as near 7.5: the earlier cut */
    ck_assert_int_eq(split[2], 4); /* 11 against 15 for 11.25 */
    ck_assert_int_eq(split[3], 1); /* the head alone */
    /* parameters: the weighted layers apart, then even counts */
    pp_balance_split(PP_BALANCE_PARAMETERS, l, 12, 4, split);
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(split[k], 3);
    pp_balance_split(PP_BALANCE_EVEN, l, 10, 4, split);
    ck_assert(split[0] == 3 && split[1] == 3 && split[2] == 2 && split[3] == 2);
}
END_TEST

/* ---- balance = auto against every contiguous split ---- */

typedef struct shape_case {
    const char *policy;
    const char *shape; /* settings of its natural shape */
} shape_case;

static const shape_case policies[] = {
    {"gpipe", ""},
    {"1f1b", ""},
    {"zb-h1", ""},
    {"zb-h2", ""},
    {"pipedream", ""},
    {"2bw", ""},
    {"auto", ""},
    {"interleaved", "virtual = 2\n"},
    {"looped-bfs", "virtual = 2\n"},
    {"interleaved-zb", "virtual = 2\n"},
    {"zbv", "virtual = 2\nplacement = vshape\n"},
    {"dualpipev", "virtual = 2\nplacement = vshape\n"},
};

/* Random skewed layers: a heavy embedding and head, random blocks. */
static void skewed_file(char *buf, size_t size, const shape_case *c, int layers, unsigned *seed)
{
    size_t at = (size_t)snprintf(buf, size, "devices = 2\nmicrobatches = 4\nschedule %s\n%slayer_costs {\n"
                                             "    embedding { F = 2 B = 2 W = 0 activation = 1 weights = 6 }\n",
                                 c->policy, c->shape);
    for (int i = 0; i < layers - 2; i++) {
        *seed = *seed * 1103515245u + 12345u;
        int f = 1 + (int)((*seed >> 16) % 4), act = 1 + (int)((*seed >> 20) % 3);
        at += (size_t)snprintf(buf + at, size - at, "    block { F = %d B = %d W = %d activation = %d weights = 1 }\n",
                               f, f, f / 2, act);
    }
    snprintf(buf + at, size - at, "    head { F = 5 B = 5 W = 1 activation = 3 weights = 6 }\n}\n"
                                  "model mlp { balance = auto }\n");
}

/* The best pp_compile over every contiguous split (INFINITY: none fits);
 * also the even split's. */
static double best_hand_split(const char *text, const pp_define *lim, int nlim, int n, int S, double *even)
{
    double best = INFINITY;
    int cut[16];
    for (int k = 0; k < S; k++)
        cut[k] = k;
    cut[S] = n;
    for (;;) {
        char list[96];
        size_t at = 0;
        for (int k = 0; k < S; k++)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%d", k ? "," : "[", cut[k + 1] - cut[k]);
        snprintf(list + at, sizeof list - at, "]");
        pp_define defs[2] = {{"model.balance", list}};
        if (nlim)
            defs[1] = lim[0];
        spec_run r;
        ck_assert_int_eq(build(&r, text, defs, 1 + nlim), 0);
        double m = makespan_of(&r.s, NULL);
        best = m < best ? m : best;
        build_free(&r);
        int k = S - 1;
        while (k >= 1 && cut[k] >= n - (S - k))
            k--;
        if (k < 1)
            break;
        cut[k]++;
        for (int j = k + 1; j < S; j++)
            cut[j] = cut[j - 1] + 1;
    }
    spec_run r;
    pp_define defs[2] = {{"model.balance", "even"}};
    if (nlim)
        defs[1] = lim[0];
    ck_assert_int_eq(build(&r, text, defs, 1 + nlim), 0);
    *even = makespan_of(&r.s, NULL);
    build_free(&r);
    return best;
}

START_TEST(auto_beats_every_contiguous_split)
{
    const shape_case *c = &policies[_i];
    unsigned seed = 777u + (unsigned)_i;
    char text[4096];
    for (int trial = 0; trial < 2; trial++) {
        int S = strstr(c->shape, "virtual = 2") ? 4 : 2;
        int n = S + 2 + trial; /* 4..7 layers */
        skewed_file(text, sizeof text, c, n, &seed);
        for (int limited = 0; limited < 2; limited++) {
            /* a limit between the smallest and the largest peak of the hand splits */
            pp_define lim = {"memory.limit", limited ? "30" : "0"};
            double even, best = best_hand_split(text, &lim, 1, n, S, &even);
            spec_run r;
            ck_assert_int_eq(build(&r, text, &lim, 1), 0);
            pp_balance_report rep;
            int rc = pp_balance_auto(&r.s, &rep, &r.td.diag);
            if (!isfinite(best)) { /* nothing fits: auto says so */
                ck_assert_int_eq(rc, 1);
                ck_assert_ptr_nonnull(strstr(tu_diag_text(&r.td), "no split of the"));
                build_free(&r);
                continue;
            }
            ck_assert_msg(rc == 0, "%s: %s", c->policy, tu_diag_text(&r.td));
            double got = makespan_of(&r.s, NULL);
            ck_assert_double_eq_tol(got, rep.makespan, 1e-9 * got); /* the report is the plan's */
            ck_assert_msg(got <= best * (1 + 1e-12), "%s, %d layers, limit %s: auto %g, best hand split %g",
                          c->policy, n, lim.value, got, best);
            ck_assert(got <= even * (1 + 1e-12));
            build_free(&r);
        }
    }
}
END_TEST

/* Larger than the budget holds: the local search, never worse than its starts. */
START_TEST(auto_local_search_never_worse)
{
    static const char *const text = "devices = 8\nmicrobatches = 32\nschedule 1f1b\n"
                                    "layer_costs {\n  embedding { F = 2 B = 2 weights = 8 }\n"
                                    "  block 78 { F = 1 B = 1 W = 1 activation = 2 }\n"
                                    "  head { F = 6 B = 6 activation = 4 weights = 8 }\n}\n"
                                    "model mlp { balance = auto }\n";
    static const char *const rules[] = {"even", "compute", "parameters"};
    spec_run r;
    ck_assert_int_eq(build(&r, text, NULL, 0), 0);
    pp_balance_report rep;
    ck_assert_int_eq(pp_balance_auto(&r.s, &rep, &r.td.diag), 0);
    ck_assert(!rep.exhaustive);
    double got = makespan_of(&r.s, NULL);
    ck_assert_double_eq_tol(got, rep.makespan, 1e-9 * got);
    for (int k = 0; k < 3; k++) {
        spec_run t;
        pp_define def = {"model.balance", rules[k]};
        ck_assert_int_eq(build(&t, text, &def, 1), 0);
        double m = makespan_of(&t.s, NULL);
        ck_assert_msg(got <= m, "auto %g, %s %g", got, rules[k], m);
        if (k == 0)
            ck_assert_double_eq_tol(m, rep.even_makespan, 1e-9 * m);
        build_free(&t);
    }
    ck_assert(got < rep.even_makespan * 0.95); /* the heavy head moves layers off the last stage */
    build_free(&r);
}
END_TEST

START_TEST(auto_errors)
{
    /* a layer heavier than the limit fits nowhere */
    spec_run r;
    pp_define defs[] = {{"memory.limit", "7"}, {"model.balance", "auto"}};
    ck_assert_int_eq(build(&r, skewed, defs, 2), 0);
    pp_balance_report rep;
    ck_assert_int_eq(pp_balance_auto(&r.s, &rep, &r.td.diag), 1);
    ck_assert_str_eq(tu_diag_text(&r.td), "ppcc: error: model.balance = auto: layer 0 (embedding) alone holds 8 of "
                                          "weights, over memory.limit = 7: no split of the 8 layers over 4 stages fits\n");
    build_free(&r);
    /* every split compiled, none fits: the closest named */
    defs[0].value = "10";
    ck_assert_int_eq(build(&r, skewed, defs, 2), 0);
    ck_assert_int_eq(pp_balance_auto(&r.s, &rep, &r.td.diag), 1);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&r.td), "model.balance = auto: no split of the 8 layers over 4 stages "
                                                      "fits memory.limit = 10 under schedule 1f1b (36 compiled): "
                                                      "the closest, balance ["));
    build_free(&r);
}
END_TEST

/* ---- a gpt on hardware: the rules and the search over its blocks ---- */

/* A small gpt whose head (vocab 4096 at hidden 64) costs about five blocks,
 * on the cpu preset, where compute outweighs a transfer's latency; untied
 * under pipedream and 2bw, which refuse a tied embedding. */
static void gpt_file(char *buf, size_t size, const shape_case *c, int devices, int blocks)
{
    snprintf(buf, size,
             "devices = %d\nmicrobatches = 4\nschedule %s\n%shardware cpu { }\n"
             "model gpt { layers = %d hidden = 64 heads = 2 seq = 32 vocab = 4096 batch = 8 precision = bf16%s }\n",
             devices, c->policy, c->shape, blocks,
             strcmp(c->policy, "pipedream") == 0 || strcmp(c->policy, "2bw") == 0 ? " tie = 0" : "");
}

/* Every block split of the gpt (the first and the last stage 0 or more,
 * a middle one 1 or more), written as a balance and compiled: the best
 * makespan (INFINITY: none fits), and the default even split's. */
static double best_block_split(const char *text, const pp_define *lim, int S, int blocks, double *even)
{
    double best = INFINITY;
    int b[16];
    long combos = 1;
    for (int k = 0; k < S; k++)
        combos *= blocks + 1;
    for (long code = 0; code < combos; code++) {
        long x = code;
        int sum = 0;
        bool ok = true;
        for (int k = 0; k < S; k++, x /= blocks + 1) {
            b[k] = (int)(x % (blocks + 1));
            sum += b[k];
            ok = ok && (b[k] > 0 || k == 0 || k == S - 1);
        }
        if (!ok || sum != blocks)
            continue;
        char list[96];
        size_t at = 0;
        for (int k = 0; k < S; k++)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%d", k ? "," : "[", b[k]);
        snprintf(list + at, sizeof list - at, "]");
        pp_define defs[2] = {lim[0], {"model.balance", list}};
        spec_run r;
        ck_assert_msg(build(&r, text, defs, 2) == 0, "%s: %s", list, tu_diag_text(&r.td));
        double m = makespan_of(&r.s, NULL);
        best = m < best ? m : best;
        build_free(&r);
    }
    spec_run r; /* fewer blocks than stages have no even split (a rule may leave the ends empty) */
    ck_assert_int_eq(build(&r, text, lim, 1), blocks < S);
    *even = blocks < S ? INFINITY : makespan_of(&r.s, NULL);
    build_free(&r);
    return best;
}

START_TEST(gpt_auto_is_the_best_block_split)
{
    const shape_case *c = &policies[_i];
    int D = 2, S = strstr(c->shape, "virtual = 2") ? 4 : 2;
    char text[1024];
    for (int blocks = S - 1; blocks <= S + 2; blocks++) {
        gpt_file(text, sizeof text, c, D, blocks);
        /* unlimited, then a limit the splits heavy at either end cross (wte: 4096 x 64 x 16 B = 4.2 MB) */
        static const char *const limits[] = {"0", "7.5MB"};
        for (int k = 0; k < 2; k++) {
            pp_define lim = {"memory.limit", limits[k]};
            double even, best = best_block_split(text, &lim, S, blocks, &even);
            pp_define defs[2] = {lim, {"model.balance", "auto"}};
            spec_run r;
            ck_assert_int_eq(build(&r, text, defs, 2), 0);
            pp_balance_report rep;
            int rc = pp_balance_auto(&r.s, &rep, &r.td.diag);
            if (!isfinite(best)) {
                ck_assert_int_eq(rc, 1);
                ck_assert_ptr_nonnull(strstr(tu_diag_text(&r.td), "no split of the"));
                build_free(&r);
                continue;
            }
            ck_assert_msg(rc == 0, "%s: %s", c->policy, tu_diag_text(&r.td));
            ck_assert(rep.exhaustive);
            double got = makespan_of(&r.s, NULL);
            ck_assert_double_eq_tol(got, rep.makespan, 1e-9 * got); /* the report is the plan's */
            ck_assert_msg(fabs(got - best) <= 1e-12 * best, "%s, %d blocks, limit %s: auto %g, best block split %g",
                          c->policy, blocks, lim.value, got, best);
            if (isfinite(even))
                ck_assert(got <= even * (1 + 1e-12));
            /* the split found is a block split pprun takes: the ends may be 0, a middle stage not */
            int sum = 0;
            for (int st = 0; st < S; st++) {
                sum += r.s.model.layers_per_stage[st];
                ck_assert(r.s.model.layers_per_stage[st] >= (st > 0 && st < S - 1));
            }
            ck_assert_int_eq(sum, blocks);
            build_free(&r);
        }
    }
}
END_TEST

/* GPT-2 small's layers by the closed forms of docs/gpt.md (tied head, f =
 * 4h, AdamW: 16 bytes a parameter), per micro-batch of b sequences. */
typedef struct gpt2_layers {
    double params[14], flops[14]; /* embedding, 12 blocks, head; F + B + W */
} gpt2_layers;

static gpt2_layers gpt2_small(double b)
{
    const double h = 768, s = 1024, V = 50257;
    gpt2_layers g;
    g.params[0] = V * h + s * h;
    g.params[13] = 2 * h + h * V; /* lnf and its copy of wte */
    g.flops[0] = 0;
    g.flops[13] = 3 * 2 * b * s * h * V;
    for (int i = 1; i <= 12; i++) {
        g.params[i] = 12 * h * h + 13 * h;
        g.flops[i] = 72 * b * s * h * h + 12 * b * s * s * h;
    }
    return g;
}

static const char *const gpt2_text = "devices = 4\nmicrobatches = 16\nschedule 1f1b\nhardware h100 { }\n"
                                     "model gpt { layers = 12 hidden = 768 heads = 12 seq = 1024 vocab = 50257 "
                                     "batch = 64 precision = bf16 }\n";

START_TEST(gpt_parameters_rule)
{
    gpt2_layers g = gpt2_small(4);
    /* the smallest largest stage in parameters over every block split of 4 stages */
    double best = INFINITY;
    for (int a = 0; a <= 12; a++)
        for (int b = 1; a + b <= 12; b++)
            for (int c = 1; a + b + c <= 12; c++) {
                int blocks[4] = {a, b, c, 12 - a - b - c}, l = 0;
                double worst = 0;
                for (int st = 0; st < 4; st++) {
                    double p = 0;
                    int n = blocks[st] + (st == 0) + (st == 3);
                    for (int k = 0; k < n; k++)
                        p += g.params[l++];
                    worst = p > worst ? p : worst;
                }
                best = worst < best ? worst : best;
            }
    spec_run r;
    pp_define def = {"model.balance", "parameters"};
    ck_assert_int_eq(build(&r, gpt2_text, &def, 1), 0);
    const int *got = r.s.model.layers_per_stage;
    double worst = 0;
    for (int st = 0, l = 0; st < 4; st++) {
        double p = 0;
        for (int k = 0; k < got[st] + (st == 0) + (st == 3); k++)
            p += g.params[l++];
        ck_assert_double_eq_tol(r.s.static_mem[st], 16 * p, 1e-9 * 16 * p);
        worst = p > worst ? p : worst;
    }
    ck_assert_double_eq_tol(worst, best, 1e-9 * best);
    /* wte on both ends (38.6M parameters) outweighs 5 blocks (35.4M): each end alone */
    ck_assert(got[0] == 0 && got[1] == 6 && got[2] == 6 && got[3] == 0);
    build_free(&r);
}
END_TEST

START_TEST(gpt_compute_rule)
{
    gpt2_layers g = gpt2_small(4);
    /* the greedy prefix of docs/costs.md on the closed forms: each cut at the
     * layer boundary nearest to k/4 of the step (the earlier on a tie) */
    double total = 0, run = 0;
    for (int i = 0; i < 14; i++)
        total += g.flops[i];
    int want[4], prev = 0;
    for (int k = 1; k < 4; k++) {
        int cut = prev + 1;
        double best = INFINITY;
        run = 0;
        for (int i = 0; i < 14; i++) {
            run += g.flops[i];
            double off = fabs(run - total * k / 4);
            if (i + 1 > prev && i + 1 <= 14 - (4 - k) && off < best * (1 - 1e-12)) {
                best = off;
                cut = i + 1;
            }
        }
        want[k - 1] = cut - prev;
        prev = cut;
    }
    want[3] = 14 - prev;
    want[0]--; /* in blocks: the embedding and the head beyond them */
    want[3]--;
    spec_run r;
    pp_define def = {"model.balance", "compute"};
    ck_assert_int_eq(build(&r, gpt2_text, &def, 1), 0);
    double rate = 989.4e12 * 0.5; /* the h100 preset: bf16 dense peak x efficiency (docs/hardware.md) */
    for (int st = 0, l = 0; st < 4; st++) {
        ck_assert_int_eq(r.s.model.layers_per_stage[st], want[st]);
        double f = 0;
        for (int k = 0; k < want[st] + (st == 0) + (st == 3); k++)
            f += g.flops[l++];
        double t = r.s.cost.stage_F[st] + r.s.cost.stage_B[st] + r.s.cost.stage_W[st];
        ck_assert_double_eq_tol(t, f / rate, 1e-9 * t);
    }
    ck_assert(want[3] == 0); /* the head is the last stage's whole share */
    build_free(&r);
}
END_TEST

START_TEST(gpt_balance_errors)
{
    spec_run r;
    pp_balance_report rep;
    /* the embedding's state alone (39.4M parameters x 16 B) is over the limit */
    pp_define defs[] = {{"model.balance", "auto"}, {"memory.limit", "0.5GB"}};
    ck_assert_int_eq(build(&r, gpt2_text, defs, 2), 0);
    ck_assert_int_eq(pp_balance_auto(&r.s, &rep, &r.td.diag), 1);
    ck_assert_str_eq(tu_diag_text(&r.td), "ppcc: error: model.balance = auto: layer 0 (embedding) alone holds "
                                          "0.6301GB of weights, over memory.limit = 0.5GB: no split of the 14 layers "
                                          "(12 blocks, the embedding and the head) over 4 stages fits\n");
    build_free(&r);
    /* each layer fits, no split does: the closest, in blocks */
    defs[1].value = "1.2GB";
    ck_assert_int_eq(build(&r, gpt2_text, defs, 2), 0);
    ck_assert_int_eq(pp_balance_auto(&r.s, &rep, &r.td.diag), 1);
    const char *text = tu_diag_text(&r.td);
    ck_assert_msg(strstr(text, "model.balance = auto: no split of the 14 layers (12 blocks, the embedding and the "
                               "head) over 4 stages fits memory.limit = 1.2GB under schedule 1f1b (287 compiled): "
                               "the closest, balance [") != NULL, "%s", text);
    build_free(&r);
    /* without hardware a gpt has no layers to weigh */
    static const char *const bare = "devices = 4\nmodel gpt { layers = 8 hidden = 64 batch = 32 balance = compute }\n";
    ck_assert_int_ne(build(&r, bare, NULL, 0), 0);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&r.td), "model.balance: balance = compute weighs a gpt's layers in "
                                                      "seconds and bytes, which need a hardware description"));
    build_free(&r);
    /* a rule may leave the ends without a block, but every stage needs a layer */
    pp_define few[] = {{"model.balance", "compute"}, {"model.layers", "1"}};
    ck_assert_int_ne(build(&r, gpt2_text, few, 2), 0);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&r.td), "-D model.layers=1: 1 blocks cannot fill 4 stages (with the "
                                                      "embedding and the head, 3 layers"));
    build_free(&r);
    few[1].value = "2";
    ck_assert_int_eq(build(&r, gpt2_text, few, 2), 0);
    const int *b = r.s.model.layers_per_stage;
    ck_assert(b[0] == 0 && b[1] == 1 && b[2] == 1 && b[3] == 0);
    build_free(&r);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("balance");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, stage_sums);
    tcase_add_test(tc, balance_changes_prediction);
    tcase_add_test(tc, static_memory_in_the_limit);
    tcase_add_test(tc, minmax_dp_is_optimal);
    tcase_add_test(tc, compute_and_parameters_rules);
    tcase_add_loop_test(tc, auto_beats_every_contiguous_split, 0, (int)(sizeof policies / sizeof *policies));
    tcase_add_test(tc, auto_local_search_never_worse);
    tcase_add_test(tc, auto_errors);
    tcase_add_loop_test(tc, gpt_auto_is_the_best_block_split, 0, (int)(sizeof policies / sizeof *policies));
    tcase_add_test(tc, gpt_parameters_rule);
    tcase_add_test(tc, gpt_compute_rule);
    tcase_add_test(tc, gpt_balance_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(make_suite());
}
