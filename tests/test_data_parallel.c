/*
 * test_data_parallel.c — data_parallel = R and zero = 1 (docs/dsl.md,
 * "Data parallelism"; docs/plan-format.md): the setting and the batch it
 * splits, each stage's reduction over its replicas as plan ops in every
 * synchronous policy, the verifier's refusals, the ring's cost in the
 * simulator against the formula, ZeRO-1's saving in the memory model.
 */
#include <math.h>
#include <string.h>

#include <stdlib.h>

#include "test_util.h"

/* the sweep budget a test asks for (0: the programs') */
static long test_budget;
long pp_test_sweep_ops(void) { return test_budget; }

static void close_to(double got, double want, const char *what)
{
    ck_assert_msg(fabs(got - want) <= 1e-12 * fabs(want), "%s: %.17g, want %.17g", what, got, want);
}

/* The setting: 1 by default, the batch split over replicas then into
 * micro-batches (refused when it does not divide), zero only over replicas
 * and with state to shard, pipedream refused. */
START_TEST(test_setting)
{
    static const struct {
        const char *text, *error; /* "": compiles */
    } cases[] = {
        {"devices = 2\nmodel mlp { batch = 32 }\n", ""},
        {"devices = 2\ndata_parallel = 4\nmodel mlp { batch = 32 }\n", ""},
        {"devices = 2\ndata_parallel = 3\nmodel mlp { batch = 32 }\n",
         "t.pp:3:13: error: model.batch: 32 is not a multiple of data_parallel x microbatches = 3 x 8 = 24"},
        {"devices = 2\nzero = 1\n", "t.pp:2:1: error: zero: zero = 1 shards the optimizer state over the "
                                    "data-parallel replicas, but data_parallel = 1"},
        {"devices = 2\ndata_parallel = 2\nzero = 1\nmodel mlp { batch = 32 }\n",
         "t.pp:3:1: error: zero: zero = 1 shards the optimizer state, but model mlp trains with sgd, which has none"},
        {"devices = 2\ndata_parallel = 2\nschedule pipedream\nmodel mlp { batch = 32 }\n",
         "t.pp:2:1: error: data_parallel: the replicas' gradients are summed before one update a step, but schedule "
         "pipedream updates after every B"},
        {"devices = 1024\ndata_parallel = 1024\nmodel mlp { layers = 1024 batch = 8388608 }\n",
         "t.pp:2:1: error: data_parallel: devices x data_parallel = 1024 x 1024 = 1048576 ranks, more than the limit of 131072"},
        {"devices = 2\ndata_parallel = 0\n", "t.pp:2:17: error: data_parallel:"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tu_compiled c;
        tu_compile_text(&c, cases[k].text);
        if (!cases[k].error[0]) {
            ck_assert_msg(c.rc == 0, "%s: %s", cases[k].text, c.err);
            int R = strstr(cases[k].text, "data_parallel") ? 4 : 1;
            ck_assert_int_eq(c.spec.data_parallel, R);
            ck_assert_int_eq(pp_plan_replicas(&c.plan), R);
        } else {
            ck_assert_msg(c.rc != 0 && strstr(c.err, cases[k].error), "%s: got\n%s", cases[k].text, c.err);
        }
        tu_compiled_free(&c);
    }
}
END_TEST

/* A micro-batch is batch / (R x M): the file's costs are for batch /
 * microbatches.reference rows, so R replicas of M micro-batches cost what
 * one replica of R x M does, and a gpt's layers are derived for its
 * sequences a micro-batch. */
START_TEST(test_microbatch_size)
{
    tu_compiled a, b;
    tu_compile_ok(&a, "devices = 2\nmicrobatches = 4\nmicrobatches.reference = 4\ndata_parallel = 2\n"
                   "model mlp { batch = 32 }\n");
    tu_compile_ok(&b, "devices = 2\nmicrobatches = 8\nmicrobatches.reference = 4\nmodel mlp { batch = 32 }\n");
    close_to(a.spec.cost.stage_F[0], b.spec.cost.stage_F[0], "F of a micro-batch of 4 rows");
    tu_compiled_free(&a);
    tu_compiled_free(&b);
    const char *gpt = "devices = 2\nmicrobatches = 2\n%s\nhardware h100 { }\n"
                      "model gpt { layers = 2 hidden = 256 heads = 4 seq = 64 vocab = 512 batch = 8 }\n";
    char t1[512];
    snprintf(t1, sizeof t1, gpt, "data_parallel = 2");
    tu_compile_ok(&a, t1);
    ck_assert_int_eq(a.spec.n_layers, 4);
    pp_gpt_shape g = {2, 256, 4, 1024, 64, 512, 8, 4, true}; /* 8 / (2 x 2) = 2 sequences */
    pp_gpt_counts k;
    pp_gpt_layer_counts(&g, PP_FP32, PP_GPT_BLOCK, &k);
    close_to(a.spec.layers[1].act, k.act_bytes, "a block's activations, 2 sequences");
    /* throughput per device counts the D x R ranks */
    double tps, mfu;
    ck_assert(pp_throughput(&a.sim.units, a.sim.makespan, a.plan.devices, &tps, &mfu));
    close_to(tps, 8.0 * 64 / a.sim.makespan / 4, "tokens/s per rank");
    tu_compiled_free(&a);
}
END_TEST

/* What every synchronous policy's plan holds with R replicas: on each
 * stage's device one reduction of it (STAGE; with zero SHARD, and a GATHER
 * right after the update), none with R = 1.  Plan version 2 (the default)
 * posts a STAGE (a SHARD of a stage the tied pair does not sum) on the
 * data-parallel lane right after its stage's last compute op (no compute
 * op between), with one wait after the device's last compute op, before
 * the tied allreduce and the update; the others (and every one with
 * overlap = false) stand after the device's last compute op, before the
 * tied allreduce (with zero: after it) and the update. */
START_TEST(test_reductions_every_policy)
{
    static const char *const shapes[] = {
        "schedule gpipe",
        "schedule 1f1b",
        "schedule 1f1b\nmemory.recompute = always",
        "schedule zb-h1",
        "schedule zb-h2",
        "schedule 2bw\nmodel.tie = 0",
        "schedule interleaved\nvirtual = 2",
        "schedule looped-bfs\nvirtual = 2",
        "schedule interleaved-zb\nvirtual = 2",
        "schedule zbv\nvirtual = 2\nplacement = vshape",
        "schedule dualpipev\nvirtual = 2\nplacement = vshape",
        "schedule v-half\nvirtual = 2\nplacement = vshape",
        "schedule auto",
    };
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
        for (int R = 1; R <= 3; R++)
            for (int zero = 0; zero <= (R > 1); zero++) {
                char text[512];
                snprintf(text, sizeof text,
                         "devices = 3\nmicrobatches = 6\ndata_parallel = %d\nzero = %d\n%s\nhardware h100 { }\n"
                         "model gpt { layers = 6 hidden = 64 heads = 2 seq = 16 vocab = 256 batch = %d }\n",
                         R, zero, shapes[k], 6 * R);
                for (int overlap = 0; overlap <= 1; overlap++) {
                char otext[600];
                snprintf(otext, sizeof otext, "%soverlap = %d\n", text, overlap);
                tu_compiled c;
                tu_compile_ok(&c, otext);
                const pp_plan *p = &c.plan;
                int stage_seen[16] = {0}, gather_seen[16] = {0}, nasync = 0;
                for (int d = 0; d < p->devices; d++) {
                    const pp_device *dv = &p->dev[d];
                    int update = -1, last_compute = -1, tied = -1, first_red = -1, last_red = -1, last_wait = -1;
                    int stage_last[16];
                    for (int s = 0; s < 16; s++)
                        stage_last[s] = -1;
                    for (int i = 0; i < dv->n; i++) {
                        if (dv->ops[i].kind == PP_OP_UPDATE)
                            update = i;
                        if (pp_op_is_compute(dv->ops[i].kind))
                            stage_last[dv->ops[i].stage] = last_compute = i;
                    }
                    for (int i = 0; i < dv->n; i++) {
                        const pp_coll *g = pp_plan_op_coll(p, &dv->ops[i]);
                        if (!g)
                            continue;
                        if (g->what == PP_COLL_TIED) {
                            tied = i;
                            continue;
                        }
                        int s = g->stage;
                        ck_assert_msg(s == dv->ops[i].stage && p->placement[s] == d && g->nranks == 1 &&
                                          g->ranks[0] == d, "%s R=%d: device %d op %d: a wrong group", shapes[k], R,
                                      d, i);
                        close_to(g->bytes, c.spec.cost.stage_grad[s], "its bytes");
                        ck_assert(g->bytes > 0);
                        if (g->what == PP_COLL_GATHER) {
                            gather_seen[s]++;
                            ck_assert_msg(i > update, "%s: gather before the update", shapes[k]);
                            continue;
                        }
                        ck_assert_int_eq(g->what, zero ? PP_COLL_SHARD : PP_COLL_STAGE);
                        stage_seen[s]++;
                        bool tied_stage = s == 0 || s == p->stages - 1;
                        bool tied_pair = c.spec.model.tie && p->placement[0] != p->placement[p->stages - 1];
                        bool want_async = overlap && !(zero && tied_stage && tied_pair);
                        ck_assert_msg((dv->ops[i].group >= 0) == want_async, "%s R=%d zero=%d overlap=%d: device %d "
                                      "op %d: group %d", shapes[k], R, zero, overlap, d, i, dv->ops[i].group);
                        if (dv->ops[i].group >= 0) { /* right after its stage's last compute op; one wait */
                            nasync++;
                            for (int j = stage_last[s] + 1; j < i; j++)
                                ck_assert_msg(!pp_op_is_compute(dv->ops[j].kind), "%s: device %d: op %d between "
                                              "stage %d's last compute op and its reduction", shapes[k], d, j, s);
                            int waits = 0, wait_at = -1;
                            for (int j = 0; j < dv->n; j++)
                                if (dv->ops[j].kind == PP_OP_WAIT && dv->ops[j].group == dv->ops[i].group) {
                                    waits++;
                                    wait_at = j;
                                }
                            ck_assert_int_eq(waits, 1);
                            ck_assert_msg(wait_at > last_compute && wait_at < update, "%s: device %d: wait at %d, "
                                          "last compute %d, update %d", shapes[k], d, wait_at, last_compute, update);
                            last_wait = wait_at > last_wait ? wait_at : last_wait;
                            continue;
                        }
                        ck_assert_msg(i > last_compute && i < update, "%s R=%d: device %d: reduction at %d, last "
                                      "compute %d, update %d", shapes[k], R, d, i, last_compute, update);
                        if (first_red < 0)
                            first_red = i;
                        last_red = i;
                    }
                    if (tied >= 0 && first_red >= 0)
                        ck_assert_msg(zero ? tied < first_red : tied > last_red, "%s zero=%d: device %d: tied at %d, "
                                      "reductions %d..%d", shapes[k], zero, d, tied, first_red, last_red);
                    if (tied >= 0 && !zero)
                        ck_assert_msg(tied > last_wait, "%s: device %d: tied at %d, a wait at %d", shapes[k], d, tied,
                                      last_wait);
                }
                ck_assert(overlap || nasync == 0);
                for (int s = 0; s < p->stages; s++) {
                    ck_assert_msg(stage_seen[s] == (R > 1), "%s R=%d: stage %d reduced %d times", shapes[k], R, s,
                                  stage_seen[s]);
                    ck_assert_int_eq(gather_seen[s], zero);
                }
                ck_assert(R > 1 ? c.sim.dp_time > 0 : c.sim.dp_time == 0);
                tu_compiled_free(&c);
                }
            }
}
END_TEST

/* The ring on the hardware's links: 2 (R - 1) steps of bytes / R, each a
 * latency + bytes / R / bandwidth of the slowest link among the replicas'
 * ranks (device x R + replica): within a node NVLink, across nodes the
 * network; ZeRO-1's reduce-scatter and all-gather, R - 1 steps each.  The
 * simulator times each stage's reduction by it. */
START_TEST(test_ring_cost)
{
    for (int per_node = 2; per_node <= 8; per_node *= 2)
        for (int zero = 0; zero <= 1; zero++) {
            char text[512];
            snprintf(text, sizeof text,
                     "devices = 2\nmicrobatches = 2\nschedule gpipe\ndata_parallel = 4\nzero = %d\n"
                     "hardware h100 { devices_per_node = %d }\n"
                     "model gpt { layers = 2 hidden = 256 heads = 4 seq = 64 vocab = 512 batch = 16 tie = 0 "
                     "precision = bf16 }\n", zero, per_node);
            tu_compiled c;
            tu_compile_ok(&c, text);
            const pp_plan *p = &c.plan;
            double want_total = 0;
            for (int s = 0; s < 2; s++) {
                double bytes = c.spec.cost.stage_grad[s];
                /* the layers' parameters in bf16 */
                double params = 0;
                for (int l = 0; l < c.spec.n_layers; l++)
                    if ((s == 0 && l <= 1) || (s == 1 && l >= 2))
                        params += c.spec.layers[l].grads / 2;
                close_to(bytes, params * 2, "stage gradient bytes");
                /* ranks 4s .. 4s+3: one node with 8 or 4 a node, two with 2 */
                bool one_node = per_node >= 4;
                double lat = one_node ? 5e-6 : 10e-6, bw = one_node ? 450e9 : 50e9;
                double ring = 2 * 3 * (lat + bytes / 4 / bw), half = 3 * (lat + bytes / 4 / bw);
                for (int i = 0; i < p->dev[s].n; i++) {
                    const pp_coll *g = pp_plan_op_coll(p, &p->dev[s].ops[i]);
                    if (g)
                        close_to(c.sim.end[s][i] - c.sim.start[s][i], zero ? half : ring, "a reduction's time");
                }
                want_total += zero ? 2 * half : ring;
            }
            close_to(c.sim.dp_time, want_total, "dp_time");
            close_to(c.sim.coll_time, want_total, "coll_time (untied: no other collective)");
            tu_compiled_free(&c);
        }
    /* the formula alone: 2 (n - 1) / n x bytes / bandwidth + 2 (n - 1) latencies */
    const pp_hardware *h = pp_hardware_preset("h100");
    int ranks[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    close_to(pp_allreduce_time(h, ranks, 8, 8e9), 2.0 * 7 / 8 * 8e9 / 450e9 + 14 * 5e-6, "ring of 8");
    close_to(pp_reduce_scatter_time(h, ranks, 8, 8e9), 7.0 / 8 * 8e9 / 450e9 + 7 * 5e-6, "reduce-scatter of 8");
    /* R = 2 (docs/hardware.md): the allreduce is one exchange of the whole bytes, a reduce-scatter
     * one step of half of them: a latency each, so more than half of the allreduce */
    close_to(pp_allreduce_time(h, ranks, 2, 8e9), 5e-6 + 8e9 / 450e9, "pair");
    close_to(pp_reduce_scatter_time(h, ranks, 2, 8e9), 5e-6 + 4e9 / 450e9, "reduce-scatter of 2");
    /* pipeline links per replica: R = 8 on 8 a node puts devices on nodes of their own */
    close_to(pp_pipeline_link_time(h, 8, 0, 1, 1e9), 10e-6 + 1e9 / 50e9, "across nodes");
    close_to(pp_pipeline_link_time(h, 2, 0, 1, 1e9), 5e-6 + 1e9 / 450e9, "within a node");
    /* R = 3: replica 2 of device 2 is rank 8, on the next node from device 1's rank 5 */
    close_to(pp_pipeline_link_time(h, 3, 1, 2, 1e9), 10e-6 + 1e9 / 50e9, "the slowest replica");
}
END_TEST

/* ZeRO-1 keeps 1 / R of the optimizer state (AdamW's moments and bf16's
 * master weights, 12 of bf16's 16 bytes a parameter): static memory and
 * the peak drop by 12 (1 - 1/R) bytes a parameter held, zero_saved says
 * so per device, and the step's timing is the allreduce's. */
START_TEST(test_zero_memory)
{
    const char *base = "devices = 2\nmicrobatches = 2\nschedule 1f1b\ndata_parallel = 4\nzero = %d\n"
                       "hardware h100 { }\n"
                       "model gpt { layers = 2 hidden = 256 heads = 4 seq = 64 vocab = 512 batch = 16 tie = 1 "
                       "precision = bf16 }\n";
    char t0[512], t1[512];
    snprintf(t0, sizeof t0, base, 0);
    snprintf(t1, sizeof t1, base, 1);
    tu_compiled a, b;
    tu_compile_ok(&a, t0);
    tu_compile_ok(&b, t1);
    ck_assert_ptr_null(a.sim.zero_saved);
    ck_assert_ptr_nonnull(b.sim.zero_saved);
    for (int d = 0; d < 2; d++) {
        double held = 0;
        for (int l = 0; l < a.spec.n_layers; l++)
            if ((d == 0 && l <= 1) || (d == 1 && l >= 2))
                held += a.spec.layers[l].weights / 16; /* parameters held: 16 bytes each */
        double saved = held * 12 * (1 - 1.0 / 4);
        close_to(b.sim.zero_saved[d], saved, "zero_saved");
        close_to(a.spec.static_mem[d] - b.spec.static_mem[d], saved, "static memory");
        close_to(a.sim.peak_mem[d] - b.sim.peak_mem[d], saved, "peak memory");
    }
    close_to(a.sim.dp_time, b.sim.dp_time, "reduce-scatter + all-gather = allreduce on a ring of 4");
    tu_compiled_free(&a);
    tu_compiled_free(&b);
}
END_TEST

/* The verifier refuses a reduction that is missing, early, twice, on the
 * wrong device, or in a plan without replicas; with one, the replay of one
 * replica proves the plan (every replica posts its reductions at the same
 * place of the same list). */
START_TEST(test_verifier)
{
    tu_compiled c;
    tu_compile_ok(&c, "devices = 2\nmicrobatches = 2\nschedule 1f1b\ndata_parallel = 2\nmodel mlp { batch = 8 }\n");
    pp_plan *p = &c.plan;
    pp_verify_opts o = pp_verify_opts_of(&c.spec, true);
    int red = -1, last_b = -1;
    pp_device *dv = &p->dev[1];
    for (int i = 0; i < dv->n; i++) {
        if (dv->ops[i].kind == PP_OP_ALLREDUCE)
            red = i;
        if (dv->ops[i].kind == PP_OP_B)
            last_b = i;
    }
    ck_assert(red > last_b && last_b > 0);
    tu_diag td;
    /* as compiled: verified */
    tu_diag_open(&td);
    ck_assert_msg(pp_verify(p, &o, &td.diag) == 0, "%s", tu_diag_text(&td));
    tu_diag_close(&td);
    /* early: before the device's last B */
    pp_op keep = dv->ops[red];
    memmove(&dv->ops[last_b + 1], &dv->ops[last_b], (size_t)(red - last_b) * sizeof *dv->ops);
    dv->ops[last_b] = keep;
    tu_diag_open(&td);
    ck_assert(pp_verify(p, &o, &td.diag) > 0);
    ck_assert_msg(strstr(tu_diag_text(&td), "device 1, op ") &&
                      strstr(tu_diag_text(&td), "(allreduce stage 1 {device 1 x 2 replicas}): before B1.1"),
                  "%s", tu_diag_text(&td));
    tu_diag_close(&td);
    /* missing */
    memmove(&dv->ops[last_b], &dv->ops[last_b + 1], (size_t)(dv->n - last_b - 1) * sizeof *dv->ops);
    dv->n--;
    tu_diag_open(&td);
    ck_assert(pp_verify(p, &o, &td.diag) > 0);
    ck_assert_msg(strstr(tu_diag_text(&td), "device 1: 0 allreduce stage of stage 1, but data_parallel = 2 needs 1"),
                  "%s", tu_diag_text(&td));
    tu_diag_close(&td);
    /* without replicas its group is refused */
    p->replicas = 1;
    tu_diag_open(&td);
    ck_assert(pp_verify(p, &o, &td.diag) > 0);
    ck_assert_msg(strstr(tu_diag_text(&td), "(stage): data_parallel is 1, no replicas to reduce over"), "%s",
                  tu_diag_text(&td));
    tu_diag_close(&td);
    /* a group naming another device than its stage's */
    p->replicas = 2;
    p->coll[0].ranks[0] = 1 - p->coll[0].ranks[0];
    tu_diag_open(&td);
    ck_assert(pp_verify(p, &o, &td.diag) > 0);
    ck_assert_msg(strstr(tu_diag_text(&td), "its members must be {"), "%s", tu_diag_text(&td));
    tu_diag_close(&td);
    tu_compiled_free(&c);
}
END_TEST

/* An interleaved 1F1B plan, 2 devices x 2 chunks, R = 2, on an H100 (so
 * the reductions cost their ring): its plan-version-2 form. */
static const char *const interleaved_dp =
    "devices = 2\nvirtual = 2\nplacement = loop\nmicrobatches = 4\ndata_parallel = 2\nzero = %d\n"
    "schedule interleaved\nhardware h100 { }\n"
    "model gpt { layers = 4 hidden = 512 heads = 8 seq = 256 vocab = 4096 tie = %d batch = 8 "
    "precision = bf16 }\n%s";

static void compile_interleaved(tu_compiled *c, int zero, int tie, const char *more)
{
    char text[600];
    snprintf(text, sizeof text, interleaved_dp, zero, tie, more);
    tu_compile_ok(c, text);
}

/* The index of device d's op: the k-th of kind (stage; -1: any) from the
 * end when k < 0, or -1. */
static int find_op(const pp_device *dv, int kind, int stage, int k)
{
    int seen = 0;
    for (int i = dv->n - 1; i >= 0; i--)
        if (dv->ops[i].kind == kind && (stage < 0 || dv->ops[i].stage == stage) && ++seen == -k)
            return i;
    return -1;
}

/* The wait naming group g on device d, or -1. */
static int wait_of(const pp_device *dv, int g)
{
    for (int i = 0; i < dv->n; i++)
        if (dv->ops[i].kind == PP_OP_WAIT && dv->ops[i].group == g)
            return i;
    return -1;
}

/* Moves op `from` to index `to` of the list it leaves. */
static void move_op(pp_device *dv, int from, int to)
{
    pp_op keep = dv->ops[from];
    memmove(&dv->ops[from], &dv->ops[from + 1], (size_t)(dv->n - from - 1) * sizeof *dv->ops);
    memmove(&dv->ops[to + 1], &dv->ops[to], (size_t)(dv->n - 1 - to) * sizeof *dv->ops);
    dv->ops[to] = keep;
}

/* The plan with every asynchronous reduction synchronous again, in post
 * order, right before its waits stood (the version-1 place: after the
 * device's last compute op, before the tied allreduce and the update). */
static void make_synchronous(pp_plan *p)
{
    for (int d = 0; d < p->devices; d++) {
        pp_device *dv = &p->dev[d];
        pp_op *red = calloc((size_t)dv->n, sizeof *red), *rest = calloc((size_t)dv->n, sizeof *rest);
        int nr = 0, n = 0, at = -1;
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            bool reduction_wait = false;
            for (int r = 0; r < nr && op->kind == PP_OP_WAIT; r++)
                reduction_wait |= red[r].peer == op->group; /* red[r].peer: its group, for now */
            if (op->kind == PP_OP_ALLREDUCE && op->group >= 0) {
                red[nr] = *op;
                red[nr++].peer = op->group;
            } else if (reduction_wait) {
                at = at < 0 ? n : at; /* a reduction's wait: dropped */
            } else {
                rest[n++] = *op;
            }
        }
        for (int r = 0, k = 0; r < nr; r++) /* each its own group index again */
            for (; k < dv->n; k++)
                if (dv->ops[k].kind == PP_OP_ALLREDUCE && dv->ops[k].group >= 0) {
                    red[r] = dv->ops[k++];
                    red[r].group = -1;
                    break;
                }
        if (nr) {
            ck_assert_int_ge(at, 0);
            memcpy(dv->ops, rest, (size_t)at * sizeof *rest);
            memcpy(dv->ops + at, red, (size_t)nr * sizeof *red);
            memcpy(dv->ops + at + nr, rest + at, (size_t)(n - at) * sizeof *rest);
            dv->n = n + nr;
        }
        free(red);
        free(rest);
    }
}

/* Plan version 2 posts each stage's reduction on the data-parallel lane
 * right after the stage's last backward: the later chunk's (stage d + 2,
 * whose backward ends first) before the earlier chunk's last B, so it
 * runs under the device's remaining backward.  The simulator's times are
 * the lane's: each reduction begins at the later of its post (its stage's
 * last compute op's end) and the lane's previous end and takes its ring's
 * time, and the device's step ends at the later of its last compute op and
 * its last reduction.  With them synchronous (the same plan, the waits
 * dropped, the reductions where the waits were) the step ends at the last
 * compute op plus every reduction: later, by that difference, and later
 * still with overlap = false. */
START_TEST(test_async_reductions)
{
    tu_compiled c, v1;
    compile_interleaved(&c, 0, 0, "");
    compile_interleaved(&v1, 0, 0, "overlap = false\n");
    pp_plan *p = &c.plan;
    const pp_cost *cost = &c.spec.cost;
    double want_async = 0, want_sync = 0, dp = 0;
    for (int d = 0; d < 2; d++) {
        const pp_device *dv = &p->dev[d];
        int late = find_op(dv, PP_OP_ALLREDUCE, d + 2, -1), early_b = find_op(dv, PP_OP_B, d, -1);
        ck_assert_msg(late >= 0 && dv->ops[late].group >= 0 && late < early_b,
                      "device %d: stage %d's reduction at %d (group %d), stage %d's last B at %d", d, d + 2, late,
                      late >= 0 ? dv->ops[late].group : -9, d, early_b);
        double lane = 0, last_compute = 0, total = 0;
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            if (pp_op_is_compute(op->kind))
                last_compute = c.sim.end[d][i];
            if (op->kind != PP_OP_ALLREDUCE)
                continue;
            int s = op->stage, lastc = -1;
            for (int j = 0; j < i; j++)
                if (pp_op_is_compute(dv->ops[j].kind) && dv->ops[j].stage == s)
                    lastc = j;
            double post = c.sim.end[d][lastc], take = cost->comm + pp_collective_time(cost, p, op);
            double begin = post > lane ? post : lane;
            ck_assert(take > 0);
            close_to(c.sim.start[d][i], begin, "a reduction's start: its post or the lane's previous end");
            close_to(c.sim.end[d][i], begin + take, "its end");
            lane = begin + take;
            total += take;
        }
        dp += total;
        double end_async = lane > last_compute ? lane : last_compute, end_sync = last_compute + total;
        want_async = end_async > want_async ? end_async : want_async;
        want_sync = end_sync > want_sync ? end_sync : want_sync;
    }
    close_to(c.sim.makespan, want_async, "the makespan: each device's later of compute and its lane");
    close_to(c.sim.dp_time, dp, "dp_allreduce: the reductions' time, each once");
    close_to(v1.sim.dp_time, dp, "the same reductions with overlap = false");
    ck_assert_msg(want_async < want_sync, "%g against %g", want_async, want_sync);
    /* the same plan with synchronous reductions: verified, and its makespan the sum's */
    make_synchronous(p);
    pp_verify_opts o = pp_verify_opts_of(&c.spec, true);
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_msg(pp_verify(p, &o, &td.diag) == 0, "%s", tu_diag_text(&td));
    pp_sim sync;
    ck_assert_int_eq(pp_simulate(p, cost, &o, &sync, &td.diag), 0);
    tu_diag_close(&td);
    close_to(sync.makespan, want_sync, "synchronous: the last compute op plus every reduction");
    ck_assert_msg(c.sim.makespan < sync.makespan && sync.makespan < v1.sim.makespan, "async %g, sync %g, v1 %g",
                  c.sim.makespan, sync.makespan, v1.sim.makespan);
    pp_sim_free(&sync, p->devices);
    tu_compiled_free(&c);
    tu_compiled_free(&v1);
}
END_TEST

/* Expects the verifier to refuse c's plan with `want` in its messages,
 * then recompiles c (zero, tie) for the next case. */
static void refused(tu_compiled *c, int zero, int tie, const char *want)
{
    pp_verify_opts o = pp_verify_opts_of(&c->spec, true);
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_msg(pp_verify(&c->plan, &o, &td.diag) > 0 && strstr(tu_diag_text(&td), want), "want %s, got\n%s",
                  want, tu_diag_text(&td));
    tu_diag_close(&td);
    tu_compiled_free(c);
    compile_interleaved(c, zero, tie, "");
}

/* The verifier's rules for an asynchronous reduction, each broken once
 * on device 0 of the interleaved plan: a wait before its post, none, two,
 * a backward of the stage after the post, the update before the wait, the
 * tied allreduce before it, a group on a gather or a tied allreduce. */
START_TEST(test_async_verifier)
{
    tu_compiled c;
    char want[256];
    compile_interleaved(&c, 0, 1, "");
    pp_device *dv = &c.plan.dev[0];
    int post = find_op(dv, PP_OP_ALLREDUCE, 2, -1), g = dv->ops[post].group, w = wait_of(dv, g);
    ck_assert_int_ge(w, 0);
    const char *name = "allreduce stage 2 {device 0 x 2 replicas}";
    /* the wait before its post */
    move_op(dv, w, post);
    snprintf(want, sizeof want, "device 0, op %d (wait #%d): group %d is not a send/recv group or an asynchronous "
             "reduction earlier in this device's list", post, g, g);
    refused(&c, 0, 1, want);
    /* no wait */
    dv = &c.plan.dev[0];
    move_op(dv, w, dv->n - 1);
    dv->n--;
    snprintf(want, sizeof want, "device 0, op %d (%s): asynchronous (group %d) but never waited", post, name, g);
    refused(&c, 0, 1, want);
    /* two */
    dv = &c.plan.dev[0];
    pp_plan_push(&c.plan, 0, dv->ops[dv->n - 1]);
    dv->ops[dv->n - 2] = dv->ops[w];
    move_op(dv, dv->n - 2, w + 1);
    snprintf(want, sizeof want, "device 0, op %d (wait #%d): second wait for group %d (the first is op %d)", w + 1, g,
             g, w);
    refused(&c, 0, 1, want);
    /* a B of the stage after it */
    dv = &c.plan.dev[0];
    int last_b = find_op(dv, PP_OP_B, 2, -1);
    move_op(dv, post, last_b);
    snprintf(want, sizeof want, "device 0, op %d (%s): before B2.3 (op %d): it reduces the gradients of the whole "
             "step", last_b, name, last_b + 1);
    refused(&c, 0, 1, want);
    /* the update before the wait */
    dv = &c.plan.dev[0];
    int update = find_op(dv, PP_OP_UPDATE, -1, -1);
    move_op(dv, w, update);
    snprintf(want, sizeof want, "device 0, op %d (wait #%d): after update (op %d), which needs the gradients op %d "
             "(%s) reduces", update, g, update - 1, post, name);
    refused(&c, 0, 1, want);
    /* the tied allreduce before the wait of stage 0's reduction (it sums copies summed over the replicas) */
    dv = &c.plan.dev[0];
    int tied = find_op(dv, PP_OP_ALLREDUCE, -1, -1), r0 = find_op(dv, PP_OP_ALLREDUCE, 0, -1);
    ck_assert(pp_plan_op_coll(&c.plan, &dv->ops[tied])->what == PP_COLL_TIED && dv->ops[r0].group >= 0);
    int w0 = wait_of(dv, dv->ops[r0].group);
    move_op(dv, tied, w0);
    snprintf(want, sizeof want, "device 0, op %d (allreduce tied {0,1}): before the wait of op %d (allreduce stage 0 "
             "{device 0 x 2 replicas}): the tied pair sums copies already summed over the replicas", w0, r0);
    refused(&c, 0, 1, want);
    /* a group on the tied allreduce */
    dv = &c.plan.dev[0];
    dv->ops[tied].group = 99;
    snprintf(want, sizeof want, "device 0, op %d (allreduce tied {0,1}): carries group 99, but a tied allreduce is "
             "synchronous", tied);
    refused(&c, 1, 1, want);
    /* with zero: a group on a gather; the shards of the tied stages stay synchronous after the tied pair */
    dv = &c.plan.dev[0];
    int gather = find_op(dv, PP_OP_ALLREDUCE, 2, -1);
    ck_assert(pp_plan_op_coll(&c.plan, &dv->ops[gather])->what == PP_COLL_GATHER);
    ck_assert_int_lt(dv->ops[find_op(dv, PP_OP_ALLREDUCE, 0, -2)].group, 0);
    ck_assert_int_ge(dv->ops[find_op(dv, PP_OP_ALLREDUCE, 2, -2)].group, 0);
    dv->ops[gather].group = 99;
    snprintf(want, sizeof want, "device 0, op %d (allreduce gather 2 {device 0 x 2 replicas}): carries group 99, but "
             "a gather allreduce is synchronous", gather);
    refused(&c, 1, 1, want);
    tu_compiled_free(&c);
}
END_TEST

/* A mirrored plan with replicas: the mirror allreduce of pipeline stage s
 * sums the copies of stages s and H + s once each is summed over the
 * replicas, so it comes after the waits of their asynchronous reductions;
 * one moved before such a wait is refused, naming both. */
START_TEST(test_async_mirror_verifier)
{
    tu_compiled c;
    tu_compile_ok(&c, "devices = 2\nvirtual = 2\nplacement = vshape\nmicrobatches = 4\nschedule dualpipe\n"
                      "data_parallel = 2\nmodel mlp { layers = 2 hidden = 8 batch = 8 }\n");
    pp_device *dv = &c.plan.dev[0];
    int mirror = -1;
    for (int i = 0; i < dv->n && mirror < 0; i++) {
        const pp_coll *g = pp_plan_op_coll(&c.plan, &dv->ops[i]);
        if (g && g->what == PP_COLL_MIRROR)
            mirror = i;
    }
    ck_assert_int_ge(mirror, 0);
    int s = dv->ops[mirror].stage, H = c.plan.stages / 2, r = -1;
    for (int i = 0; i < mirror && r < 0; i++)
        if (dv->ops[i].kind == PP_OP_ALLREDUCE && dv->ops[i].group >= 0 &&
            (dv->ops[i].stage == s || dv->ops[i].stage == H + s))
            r = i;
    ck_assert_msg(r >= 0, "no asynchronous reduction of stage %d or %d before the mirror", s, H + s);
    int w = wait_of(dv, dv->ops[r].group);
    ck_assert_int_lt(w, mirror);
    move_op(dv, mirror, w);
    char want[256], name[96];
    pp_plan_op_format(&c.plan, &dv->ops[r], name, sizeof name);
    snprintf(want, sizeof want, "device 0, op %d (allreduce mirror %d {0,1}): before the wait of op %d (%s): the mirror "
             "sums copies already summed over the replicas", w, s, r, name);
    pp_verify_opts o = pp_verify_opts_of(&c.spec, true);
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_msg(pp_verify(&c.plan, &o, &td.diag) > 0 && strstr(tu_diag_text(&td), want), "want %s, got\n%s", want,
                  tu_diag_text(&td));
    tu_diag_close(&td);
    tu_compiled_free(&c);
}
END_TEST

/* gpus = N (docs/auto.md): a row for every divisor D of N, the winner the
 * shortest step among the rows that fit, each row what its settings
 * compile to, and the winner's settings what ppcc goes on to compile. */
START_TEST(test_gpus)
{
    const char *text = "gpus = 12\nmicrobatches = auto\nschedule 1f1b\nmemory.limit = 6GB\nhardware h100 { }\n"
                       "model gpt { layers = 4 hidden = 512 heads = 8 seq = 512 vocab = 1024 batch = 48 "
                       "precision = bf16 }\n";
    pp_arena a = {0};
    tu_diag td;
    tu_diag_open(&td);
    pp_ast ast;
    pp_spec s;
    ck_assert_int_eq(pp_parse("t.pp", text, strlen(text), &a, &td.diag, &ast), 0);
    ck_assert_msg(pp_spec_build(&ast, NULL, 0, &a, &td.diag, &s) == 0, "%s", tu_diag_text(&td));
    ck_assert_int_eq(s.gpus, 12);
    char *report = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&report, &len);
    int n = 0;
    pp_define *chosen = pp_gpus_choose(f, &ast, NULL, 0, &s, &n, &td.diag);
    fclose(f);
    ck_assert_msg(chosen, "%s\n%s", report, tu_diag_text(&td));
    /* every divisor has its row; each fitting row is what its split compiles to */
    double best = INFINITY;
    int best_d = -1;
    for (int D = 1; D <= 12; D++) {
        if (12 % D)
            continue;
        char head[64];
        snprintf(head, sizeof head, "gpus 12: %-7d %-13d ", D, 12 / D);
        const char *row = strstr(report, head);
        ck_assert_msg(row, "no row for %d x %d:\n%s", D, 12 / D, report);
        char one[256];
        snprintf(one, sizeof one, "%.*s", (int)strcspn(row, "\n"), row);
        int M;
        char ms[32];
        if (sscanf(one + strlen(head), "%d (auto) %31s", &M, ms) != 2) /* a row that cannot run */
            continue;
        char t2[512];
        snprintf(t2, sizeof t2, "devices = %d\ndata_parallel = %d\nmicrobatches = %d\nschedule 1f1b\n"
                 "memory.limit = 0\nhardware h100 { }\nmodel gpt { layers = 4 hidden = 512 heads = 8 seq = 512 "
                 "vocab = 1024 batch = 48 precision = bf16 }\n", D, 12 / D, M);
        tu_compiled c;
        tu_compile_ok(&c, t2);
        char want[32];
        pp_time_show(&c.sim.units, c.sim.makespan, want, sizeof want);
        ck_assert_msg(strcmp(ms, want) == 0, "%d x %d: row says %s, compiles to %s", D, 12 / D, ms, want);
        double peak = 0;
        for (int d = 0; d < c.plan.devices; d++)
            peak = c.sim.peak_mem[d] > peak ? c.sim.peak_mem[d] : peak;
        bool fits = peak <= 6e9;
        ck_assert_msg(fits == (strstr(one, "%  yes") != NULL), "%d: fits %d\n%s", D, fits, one);
        if (fits && c.sim.makespan < best) {
            best = c.sim.makespan;
            best_d = D;
        }
        tu_compiled_free(&c);
    }
    ck_assert_int_ge(best_d, 1);
    char line[96];
    snprintf(line, sizeof line, "gpus 12: best devices = %d x data_parallel = %d", best_d, 12 / best_d);
    ck_assert_msg(strstr(report, line), "want %s:\n%s", line, report);
    /* the winner's settings: devices, data_parallel, gpus = 0 and the row's M */
    pp_spec w;
    ck_assert_msg(pp_spec_build(&ast, chosen, n, &a, &td.diag, &w) == 0, "%s", tu_diag_text(&td));
    ck_assert_int_eq(w.devices, best_d);
    ck_assert_int_eq(w.data_parallel, 12 / best_d);
    ck_assert_int_eq(w.gpus, 0);
    ck_assert(!w.microbatches_auto);
    free(chosen);
    free(report);
    tu_diag_close(&td);
    pp_arena_free(&a);
    /* the split is the search's: devices or data_parallel beside gpus is refused */
    tu_compiled c;
    tu_compile_text(&c, "gpus = 8\ndevices = 2\n");
    ck_assert_msg(c.rc && strstr(c.err, "t.pp:2:1: error: devices: gpus = 8 chooses devices and data_parallel"),
                  "%s", c.err);
    tu_compiled_free(&c);
    /* a prime past both limits has no row at all: the error says so, not "devices = 1: ..." */
    const char *prime = "gpus = 131071\nmodel mlp { batch = 64 layers = 8 }\n";
    a = (pp_arena){0};
    tu_diag_open(&td);
    ck_assert_int_eq(pp_parse("t.pp", prime, strlen(prime), &a, &td.diag, &ast), 0);
    ck_assert_int_eq(pp_spec_build(&ast, NULL, 0, &a, &td.diag, &s), 0);
    FILE *devnull = fopen("/dev/null", "w");
    ck_assert_ptr_null(pp_gpus_choose(devnull, &ast, NULL, 0, &s, &n, &td.diag));
    fclose(devnull);
    ck_assert_str_eq(tu_diag_text(&td), "ppcc: error: gpus = 131071: no split devices x data_parallel within their "
                                        "limits (no divisor D of 131071 has D <= 1024 devices and 131071 / D <= 1024 "
                                        "replicas)\n");
    tu_diag_close(&td);
    pp_arena_free(&a);
}
END_TEST

/* gpus = N compiles no more than one sweep may: past the budget it stops
 * with an error naming it, and writes nothing. */
START_TEST(test_gpus_budget)
{
    /* version-1 lists (no waits), whose op counts the budget below is set by */
    const char *text = "gpus = 8\nmicrobatches = 4\noverlap = false\nmodel mlp { batch = 64 layers = 8 }\n";
    pp_arena a = {0};
    tu_diag td;
    tu_diag_open(&td);
    pp_ast ast;
    pp_spec s;
    ck_assert_int_eq(pp_parse("t.pp", text, strlen(text), &a, &td.diag, &ast), 0);
    ck_assert_int_eq(pp_spec_build(&ast, NULL, 0, &a, &td.diag, &s), 0);
    test_budget = 50; /* 1 x 8, 2 x 4 and 4 x 2 compile 141 ops */
    int n = 0;
    FILE *devnull = fopen("/dev/null", "w");
    pp_define *chosen = pp_gpus_choose(devnull, &ast, NULL, 0, &s, &n, &td.diag);
    fclose(devnull);
    test_budget = 0;
    ck_assert_ptr_null(chosen);
    ck_assert_msg(strstr(tu_diag_text(&td), "gpus = 8: devices = 1 to 4 compiled 141 ops") &&
                      strstr(tu_diag_text(&td), " ops, past the 50 one search may"), "%s", tu_diag_text(&td));
    tu_diag_close(&td);
    pp_arena_free(&a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("data_parallel");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_setting);
    tcase_add_test(tc, test_microbatch_size);
    tcase_add_test(tc, test_reductions_every_policy);
    tcase_add_test(tc, test_ring_cost);
    tcase_add_test(tc, test_zero_memory);
    tcase_add_test(tc, test_verifier);
    tcase_add_test(tc, test_async_reductions);
    tcase_add_test(tc, test_async_verifier);
    tcase_add_test(tc, test_async_mirror_verifier);
    tcase_add_test(tc, test_gpus);
    tcase_add_test(tc, test_gpus_budget);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
