/*
 * test_runtime.c — pprun's library: the strict plan loader (a table of
 * mutations of a valid plan, each with its exact error), the replay
 * against single-device training for several schedules and placements
 * (and proof that the comparison fails when it should), comm failures
 * (timeout, mismatch) that end with an error instead of a hang, traces,
 * and the .npy writer.
 */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend.h"
#include "plan_gen.h"
#include "pprun.h"
#include <cblas.h>

#include "plan_load_util.h"
#include "test_util.h"

static void load_ok(const char *text, pp_plan *p, pr_model *m)
{
    char *msg;
    int rc = lu_load(text, p, m, &msg);
    ck_assert_msg(rc == 0, "load failed: %s", msg);
    free(msg);
}

/* ---- equivalence with single-device training ---- */

typedef struct errs {
    double w, b, loss, moved;
} errs;

static errs train_and_compare(const pp_plan *p, const pr_model *run_model, const pr_model *ref_model,
                              int steps)
{
    pr_run_opts o = {.steps = steps, .timeout = 10};
    pr_run_result r;
    tu_diag td;
    tu_diag_open(&td);
    int rc = pr_replay(p, run_model, &o, &r, &td.diag);
    ck_assert_msg(rc == 0, "replay failed: %s", tu_diag_text(&td));
    tu_diag_close(&td);
    size_t hh = (size_t)ref_model->layers * ref_model->hidden * ref_model->hidden;
    size_t hb = (size_t)ref_model->layers * ref_model->hidden;
    float *W = malloc(hh * sizeof(float)), *b = malloc(hb * sizeof(float));
    float *W0 = malloc(hh * sizeof(float)), *b0 = malloc(hb * sizeof(float));
    double *loss = malloc((size_t)steps * sizeof(double));
    pr_init_params(ref_model, W, b);
    pr_init_params(ref_model, W0, b0);
    pr_reference_train(ref_model, steps, W, b, loss);
    float *rW = malloc(hh * sizeof(float)), *rb = malloc(hb * sizeof(float));
    pr_mlp_unpack(run_model, r.params, rW, rb);
    errs e = {pr_max_rel_err(rW, W, hh), pr_max_rel_err(rb, b, hb), 0,
              pr_max_rel_err(W, W0, hh)};
    free(rW), free(rb);
    for (int k = 0; k < steps; k++)
        e.loss = fmax(e.loss, fabs(r.loss[k] - loss[k]) / fabs(loss[k]));
    pr_run_result_free(&r);
    free(W), free(b), free(W0), free(b0), free(loss);
    return e;
}

static const char *const equivalence_plans[] = {
    "1f1b-2x4", "gpipe-4x8", "interleaved-2x2x4", "same-device-2x4", "zb-2x4",
};

START_TEST(test_schedule_equals_single_device)
{
    const char *name = equivalence_plans[_i];
    char *text = lu_named_plan(name);
    pp_plan p;
    pr_model m;
    load_ok(text, &p, &m);
    errs e = train_and_compare(&p, &m, &m, 3);
    ck_assert_msg(e.w <= 1e-5 && e.b <= 1e-5 && e.loss <= 1e-5, "%s: weights %g biases %g loss %g",
                  name, e.w, e.b, e.loss);
    /* training moved the weights well beyond the tolerance, so equality means something */
    ck_assert_msg(e.moved > 1e-3, "%s: weights barely moved (%g)", name, e.moved);
    pp_plan_free(&p);
    pr_model_free(&m);
    free(text);
}
END_TEST

START_TEST(test_check_detects_wrong_lr)
{
    char *text = lu_named_plan("1f1b-2x4");
    pp_plan p;
    pr_model m;
    load_ok(text, &p, &m);
    pr_model wrong = m;
    wrong.lr = m.lr * 1.01;
    errs e = train_and_compare(&p, &wrong, &m, 2);
    ck_assert_msg(e.w > 1e-5, "a 1%% lr change went unnoticed (%g)", e.w);
    pp_plan_free(&p);
    pr_model_free(&m);
    free(text);
}
END_TEST

/* Drops every op of micro-batch 3 from every device (the verifier would
 * refuse such a plan, so the ops are removed after loading). */
START_TEST(test_check_detects_dropped_microbatch)
{
    char *text = lu_named_plan("gpipe-4x8");
    pp_plan p;
    pr_model m;
    load_ok(text, &p, &m);
    for (int d = 0; d < p.devices; d++) {
        int k = 0;
        for (int i = 0; i < p.dev[d].n; i++)
            if (p.dev[d].ops[i].mb != 3)
                p.dev[d].ops[k++] = p.dev[d].ops[i];
        ck_assert_int_lt(k, p.dev[d].n);
        p.dev[d].n = k;
    }
    errs e = train_and_compare(&p, &m, &m, 1);
    ck_assert_msg(e.w > 1e-5, "a dropped micro-batch went unnoticed (%g)", e.w);
    pp_plan_free(&p);
    pr_model_free(&m);
    free(text);
}
END_TEST

/* ---- communication failures end the run with an error ---- */

static char *replay_error(pp_plan *p, const pr_model *m, double timeout)
{
    pr_run_opts o = {.steps = 1, .timeout = timeout};
    pr_run_result r;
    tu_diag td;
    tu_diag_open(&td);
    td.diag.prog = "pprun";
    int rc = pr_replay(p, m, &o, &r, &td.diag);
    ck_assert_int_eq(rc, 1);
    char *msg = strdup(tu_diag_text(&td));
    tu_diag_close(&td);
    return msg;
}

START_TEST(test_recv_timeout_names_device_and_op)
{
    char *text = lu_named_plan("1f1b-2x4");
    pp_plan p;
    pr_model m;
    load_ok(text, &p, &m);
    /* device 0 never sends: strip its sends; device 1's first recv waits forever */
    int k = 0;
    for (int i = 0; i < p.dev[0].n; i++)
        if (p.dev[0].ops[i].kind != PP_OP_SEND)
            p.dev[0].ops[k++] = p.dev[0].ops[i];
    p.dev[0].n = k;
    char *msg = replay_error(&p, &m, 0.2);
    ck_assert_msg(strstr(msg, "(timeout)") != NULL, "got: %s", msg);
    /* device 0 waits for a grad from 1, device 1 for an act from 0: either may time out first */
    ck_assert_msg(strcmp(msg, "pprun: error: device 1 op 0 (recv act 0.0 from 0): nothing arrived "
                              "from device 0 within 0.2 s (timeout)\n") == 0 ||
                      strstr(msg, "pprun: error: device 0 op ") == msg,
                  "got: %s", msg);
    free(msg);
    pp_plan_free(&p);
    pr_model_free(&m);
    free(text);
}
END_TEST

START_TEST(test_recv_mismatch_is_an_error)
{
    char *text = lu_named_plan("gpipe-4x8");
    pp_plan p;
    pr_model m;
    load_ok(text, &p, &m);
    /* device 0 sends act 0.1 where device 1 expects act 0.0 */
    pp_op *ops = p.dev[0].ops;
    ck_assert_int_eq(ops[1].kind, PP_OP_SEND);
    ck_assert_int_eq(ops[3].kind, PP_OP_SEND);
    ops[1].mb = 1;
    ops[3].mb = 0;
    /* and F0.1 must precede send 0.1: swap the forwards too */
    ops[0].mb = 1;
    ops[2].mb = 0;
    char *msg = replay_error(&p, &m, 5);
    ck_assert_str_eq(msg, "pprun: error: device 1 op 0 (recv act 0.0 from 0): device 0 sent act 0.1 "
                          "instead\n");
    free(msg);
    pp_plan_free(&p);
    pr_model_free(&m);
    free(text);
}
END_TEST

/* ---- the loader: each mutation of a valid plan gets its exact error ---- */

typedef struct mutation {
    const char *path;  /* dotted path; [i] indexes arrays */
    const char *value; /* JSON to put there; NULL deletes the field */
    const char *error; /* after "pprun: error: plan.json: " */
} mutation;

static const mutation mutations[] = {
    {"devices[0].ops[1].peer", "9", "devices[0].ops[1].peer: 9 is not a rank"},
    {"devices[0].ops[1].peer", "-1", "devices[0].ops[1].peer: -1 is not a rank"},
    {"devices[0].ops[1].peer", "0", "devices[0].ops[1].peer: 0 is the device itself"},
    {"devices[1].ops[0].op", "\"send\"", "devices[1].ops[0]: send act 0.0 does not belong on rank 1"},
    {"devices[0].ops[0].op", "\"flush\"", "devices[0].ops[0]: flush before the end of the list"},
    {"devices[0].ops[0].op", "\"W\"", "devices[0].ops[0].op: W in a plan whose pipeline.split_backward is false"},
    {"devices[0].ops[0].op", "\"X\"", "devices[0].ops[0].op: unknown op \"X\""},
    {"devices[0].ops[0].stage", "\"0\"", "devices[0].ops[0].stage: expected an integer, got a string"},
    {"devices[0].ops[0].mb", "1.5", "devices[0].ops[0].mb: 1.5 is not an integer"},
    {"devices[0].ops[0].mb", "4", "devices[0].ops[0].mb: 4 is not a micro-batch"},
    {"devices[0].ops[0].mb", "1e300", "devices[0].ops[0].mb: 1.0000000000000001e+300 is not a micro-batch"},
    {"devices[0].ops[0].stage", "1", "devices[0].ops[0].stage: 1 is held by rank 1, not rank 0"},
    {"devices[0].ops[0].stage", "7", "devices[0].ops[0].stage: 7 is not a stage"},
    {"devices[0].ops[1].kind", "\"grad\"", "devices[0].ops[1].stage: grad of stage 0 has no previous stage"},
    {"devices[0].ops[1].group", NULL, "devices[0].ops[1]: missing field \"group\""},
    {"devices[0].ops[1].Peer", "1", NULL}, /* unknown keys are allowed... */
    {"devices[0].ops[1].peer", NULL, "devices[0].ops[1]: missing field \"peer\""}, /* ...and case matters */
    {"devices[1]", NULL, "devices: 1 entries, pipeline.devices is 2"},
    {"devices[1].rank", "0", "devices[1].rank: 0, expected 1 (devices are listed in rank order)"},
    {"devices[1].stages[0]", "0", "devices[1].stages[0]: 0 does not match pipeline.placement"},
    {"version", "3", "version: 3 is newer than this pprun reads (2)"},
    {"version", "1.0000001", "version: 1.0000001000000001 is not an integer"},
    {"format", "\"ppcc\"", "format: \"ppcc\" is not \"ppcc-plan\""},
    {"pipeline.placement[1]", "5", "pipeline.placement[1]: 5 is not a rank"},
    {"pipeline.microbatches", "3", "model.batch: 32 is not a multiple of pipeline.microbatches (3)"},
    {"model.layers", "5", "model.layers_per_stage: sums to 4, model.layers is 5"},
    {"model.optimizer", "\"adam\"", "model.optimizer: unknown optimizer \"adam\" (this pprun knows \"sgd\")"},
    {"model.lr", "\"fast\"", "model.lr: expected a number, got a string"},
    {"model.hidden", "0", "model.hidden: 0 is out of range [1, 65536]"},
    {"model", NULL, "missing field \"model\""},
    /* the per-stage memory of layers (docs/plan-format.md) */
    {"memory.stage_activation", "[1]", "memory.stage_activation: 1 entries, expected 2"},
    {"memory.stage_activation", "[1, -1]", "memory.stage_activation[1]: expected a non-negative number"},
    {"memory.static", "3", "memory.static: expected an array, got a number"},
    {"memory.stage_input", "[0.5, 0.5]", "memory: stage_activation, stage_input and static come together (docs/plan-format.md)"},
    {"model.hidden", "65536", "model: 4 layers of 65536 x 65536 weights are more than this pprun holds (2147483648 floats)"},
};

static cJSON *walk(cJSON *root, const char *path, cJSON **parent, char *last, size_t lastsz)
{
    cJSON *cur = root, *par = NULL;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *tok = strtok(buf, "."); tok; tok = strtok(NULL, ".")) {
        char *br = strchr(tok, '[');
        int idx = -1;
        if (br) {
            idx = atoi(br + 1);
            *br = '\0';
        }
        par = cur;
        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
        snprintf(last, lastsz, "%s", tok);
        if (idx >= 0) {
            par = cur;
            cur = cJSON_GetArrayItem(cur, idx);
            snprintf(last, lastsz, "[%d]", idx);
        }
    }
    *parent = par;
    return cur;
}

START_TEST(test_loader_mutations)
{
    const mutation *mu = &mutations[_i];
    char *text = lu_named_plan("1f1b-2x4");
    cJSON *root = cJSON_Parse(text);
    cJSON *parent;
    char last[64];
    cJSON *node = walk(root, mu->path, &parent, last, sizeof last);
    ck_assert_ptr_nonnull(parent);
    if (last[0] == '[') {
        ck_assert_ptr_nonnull(node);
        int idx = atoi(last + 1);
        if (mu->value)
            cJSON_ReplaceItemInArray(parent, idx, cJSON_Parse(mu->value));
        else
            cJSON_DeleteItemFromArray(parent, idx);
    } else if (mu->value) {
        if (node)
            cJSON_ReplaceItemInObjectCaseSensitive(parent, last, cJSON_Parse(mu->value));
        else
            cJSON_AddItemToObject(parent, last, cJSON_Parse(mu->value));
    } else {
        ck_assert_ptr_nonnull(node);
        cJSON_DeleteItemFromObjectCaseSensitive(parent, last);
    }
    char *mutated = cJSON_Print(root);
    pp_plan p;
    pr_model m;
    char *msg;
    int rc = lu_load(mutated, &p, &m, &msg);
    if (!mu->error) {
        ck_assert_msg(rc == 0, "%s: refused: %s", mu->path, msg);
        pp_plan_free(&p);
        pr_model_free(&m);
    } else {
        char want[512];
        snprintf(want, sizeof want, "pprun: error: plan.json: %s\n", mu->error);
        ck_assert_int_eq(rc, 1);
        ck_assert_str_eq(msg, want);
    }
    free(msg);
    free(mutated);
    free(text);
    cJSON_Delete(root);
}
END_TEST

/* Plans that parse but are unsafe: the loader runs the verifier on them. */
static char *load_edited(const char *name, void (*edit)(cJSON *devices), int *rc)
{
    char *text = lu_named_plan(name);
    cJSON *root = cJSON_Parse(text);
    edit(cJSON_GetObjectItemCaseSensitive(root, "devices"));
    char *edited = cJSON_Print(root);
    pp_plan p;
    pr_model m;
    char *msg;
    *rc = lu_load(edited, &p, &m, &msg);
    if (*rc == 0) {
        pp_plan_free(&p);
        pr_model_free(&m);
    }
    free(edited);
    free(text);
    cJSON_Delete(root);
    return msg;
}

static cJSON *op_at(cJSON *devices, int d, int i)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(devices, d), "ops"), i);
}

static void drop_first_recv(cJSON *devices)
{
    cJSON_DeleteItemFromArray(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(devices, 1), "ops"), 0);
}

static void backward_first(cJSON *devices)
{
    /* device 1: F1.0, B1.0 -> B1.0, F1.0 */
    cJSON *ops = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(devices, 1), "ops");
    cJSON *f = cJSON_Duplicate(cJSON_GetArrayItem(ops, 1), 1);
    cJSON *b = cJSON_Duplicate(cJSON_GetArrayItem(ops, 2), 1);
    cJSON_ReplaceItemInArray(ops, 1, b);
    cJSON_ReplaceItemInArray(ops, 2, f);
}

static void reuse_group(cJSON *devices)
{
    /* device 0's grad recv takes the group of its first send again */
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(op_at(devices, 0, 4), "group"), 0);
}

static void ungroup_exchange(cJSON *devices)
{
    /* 1F1B's send_forward_recv_backward pairs, posted apart: each side's
     * send waits for a receive the other posts only after its own send */
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(op_at(devices, 0, 4), "group"), 9);
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(op_at(devices, 1, 4), "group"), 9);
}

START_TEST(test_loader_runs_the_verifier)
{
    int rc;
    char *msg = load_edited("1f1b-2x4", drop_first_recv, &rc);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strncmp(msg, "pprun: error: device 1, op 0 (F1.0): no recv act 0.0 from 0 before it\n",
                          70) == 0, "got: %s", msg);
    free(msg);
    msg = load_edited("1f1b-2x4", backward_first, &rc);
    ck_assert_int_eq(rc, 1);
    ck_assert_str_eq(msg, "pprun: error: device 1, op 1 (B1.0): runs before F1.0\n");
    free(msg);
    msg = load_edited("1f1b-2x4", reuse_group, &rc);
    ck_assert_int_eq(rc, 1);
    ck_assert_str_eq(msg, "pprun: error: device 0, op 4 (recv grad 1.0 from 1): group 0 is not contiguous (it "
                          "also holds op 1)\n");
    free(msg);
    msg = load_edited("1f1b-2x4", ungroup_exchange, &rc);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(msg, "deadlock") != NULL, "got: %s", msg);
    free(msg);
}
END_TEST

START_TEST(test_loader_syntax)
{
    char *text = lu_named_plan("1f1b-2x4");
    pp_plan p;
    pr_model m;
    char *msg;
    /* trailing garbage after a valid plan */
    size_t n = strlen(text);
    char *t2 = malloc(n + 16);
    memcpy(t2, text, n);
    strcpy(t2 + n, "\n  }x\n");
    ck_assert_int_eq(lu_load(t2, &p, &m, &msg), 1);
    ck_assert_msg(strstr(msg, "error: trailing characters after the JSON value: '}'\n") != NULL, "got: %s",
                  msg);
    ck_assert_msg(strncmp(msg, "plan.json:", 10) == 0, "got: %s", msg);
    free(msg);
    /* truncated */
    t2[n / 2] = '\0';
    ck_assert_int_eq(lu_load(t2, &p, &m, &msg), 1);
    ck_assert_msg(strstr(msg, "unexpected end of the file") != NULL, "got: %s", msg);
    free(msg);
    /* not an object */
    ck_assert_int_eq(lu_load("[1, 2]", &p, &m, &msg), 1);
    ck_assert_str_eq(msg, "pprun: error: plan.json: expected a JSON object at the top, got an array\n");
    free(msg);
    /* empty */
    ck_assert_int_eq(lu_load("", &p, &m, &msg), 1);
    ck_assert_str_eq(msg, "plan.json:1:1: error: no JSON value (the file is empty)\n"
                          "     1 | \n"
                          "       | ^\n");
    free(msg);
    free(t2);
    free(text);
}
END_TEST

START_TEST(test_loader_fills_plan_and_model)
{
    char *text = lu_named_plan("same-device-2x4");
    pp_plan p;
    pr_model m;
    load_ok(text, &p, &m);
    ck_assert_int_eq(p.devices, 2);
    ck_assert_int_eq(p.stages, 4);
    ck_assert_int_eq(p.microbatches, 4);
    ck_assert_int_eq(p.placement[1], 0);
    ck_assert_int_eq(p.placement[2], 1);
    ck_assert_int_eq(m.layers, 6);
    ck_assert_int_eq(m.hidden, 8);
    ck_assert_int_eq(m.batch, 8);
    ck_assert_int_eq(m.layers_per_stage[0], 2);
    ck_assert_int_eq(m.layers_per_stage[3], 1);
    ck_assert_int_eq(m.first_layer[2], 4);
    ck_assert(fabs(m.lr - 0.1) < 1e-12);
    ck_assert_int_eq((int)m.seed, 5);
    /* device 0: F0.0 first; the last op is flush */
    ck_assert_int_eq(p.dev[0].ops[0].kind, PP_OP_F);
    ck_assert_int_eq(p.dev[0].ops[p.dev[0].n - 1].kind, PP_OP_FLUSH);
    pp_plan_free(&p);
    pr_model_free(&m);
    free(text);
}
END_TEST

/* ---- traces ---- */

START_TEST(test_trace_has_one_event_per_op)
{
    char *text = lu_named_plan("interleaved-2x2x4");
    pp_plan p;
    pr_model m;
    load_ok(text, &p, &m);
    const int steps = 2;
    pr_run_opts o = {.steps = steps, .timeout = 10, .record_all = true};
    pr_run_result r;
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_int_eq(pr_replay(&p, &m, &o, &r, &td.diag), 0);
    char *json = NULL;
    size_t json_len = 0;
    FILE *f = open_memstream(&json, &json_len);
    pr_run_record rec = {&p, &m, steps, &r};
    ck_assert_int_eq(pr_trace_fill(f, &rec), 0);
    fclose(f);
    tu_diag_close(&td);
    cJSON *root = cJSON_Parse(json);
    ck_assert_ptr_nonnull(root);
    cJSON *ev = cJSON_GetObjectItemCaseSensitive(root, "traceEvents");
    ck_assert(cJSON_IsArray(ev));
    int *count = calloc((size_t)p.devices, sizeof(int));
    int meta = 0;
    double *last_end = calloc((size_t)p.devices, sizeof(double));
    cJSON *e;
    cJSON_ArrayForEach(e, ev) {
        const char *ph = cJSON_GetObjectItemCaseSensitive(e, "ph")->valuestring;
        int tid = cJSON_GetObjectItemCaseSensitive(e, "tid")->valueint;
        ck_assert(tid >= 0 && tid < p.devices);
        if (strcmp(ph, "M") == 0) {
            char want[32];
            snprintf(want, sizeof want, "device %d", tid);
            ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(
                                 cJSON_GetObjectItemCaseSensitive(e, "args"), "name")->valuestring,
                             want);
            meta++;
            continue;
        }
        ck_assert_str_eq(ph, "X");
        int i = count[tid] % p.dev[tid].n;
        char name[64];
        pp_op_format(&p.dev[tid].ops[i], name, sizeof name);
        ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring, name);
        double ts = cJSON_GetObjectItemCaseSensitive(e, "ts")->valuedouble;
        double dur = cJSON_GetObjectItemCaseSensitive(e, "dur")->valuedouble;
        ck_assert(dur >= 0);
        ck_assert_msg(ts + 1e-3 >= last_end[tid], "device %d op %d starts before the previous ends", tid, i);
        last_end[tid] = ts + dur;
        count[tid]++;
    }
    ck_assert_int_eq(meta, p.devices);
    for (int d = 0; d < p.devices; d++)
        ck_assert_int_eq(count[d], steps * p.dev[d].n);
    /* the measured sim for --timeline covers the last step, from 0 */
    pp_sim sim;
    pr_measured_sim(&p, &r, &sim);
    ck_assert(sim.makespan > 0);
    ck_assert(sim.bubble >= 0 && sim.bubble < 1);
    double first = 1e300;
    for (int d = 0; d < p.devices; d++) {
        first = fmin(first, sim.start[d][0]);
        ck_assert(sim.busy[d] > 0);
        ck_assert_int_ge(sim.peak_act[d], 1);
    }
    ck_assert(fabs(first) < 1e-9);
    /* all forwards before any backward: 2 stages x 4 mbs per device in flight at once */
    ck_assert_int_eq(sim.peak_act[0], 8);
    pp_sim_free(&sim, p.devices);
    free(count);
    free(last_end);
    cJSON_Delete(root);
    free(json);
    pr_run_result_free(&r);
    pp_plan_free(&p);
    pr_model_free(&m);
    free(text);
}
END_TEST

/* ---- pieces ---- */

START_TEST(test_npy_header)
{
    float data[6] = {1, 2, 3, 4, 5, 6};
    int shape[2] = {2, 3};
    char *b = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&b, &len);
    ck_assert_int_eq(pr_npy_write(f, data, shape, 2), 0);
    fclose(f);
    ck_assert(memcmp(b, "\x93NUMPY\x01\x00", 8) == 0);
    int hlen = (unsigned char)b[8] | (unsigned char)b[9] << 8;
    ck_assert_int_eq((10 + hlen) % 64, 0);
    ck_assert_int_eq(len, 10 + hlen + sizeof data);
    ck_assert(strstr(b + 10, "'shape': (2, 3)") != NULL);
    ck_assert(memcmp(b + 10 + hlen, data, sizeof data) == 0);
    free(b);
}
END_TEST

START_TEST(test_sgemm_matches_naive)
{
    /* odd sizes cover the 4-row and block remainders */
    int m = 7, n = 530, k = 131;
    float *A = malloc((size_t)m * k * sizeof(float)), *B = malloc((size_t)k * n * sizeof(float));
    float *C = malloc((size_t)m * n * sizeof(float));
    for (int i = 0; i < m * k; i++)
        A[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
    for (int i = 0; i < k * n; i++)
        B[i] = (float)((i * 11) % 13) / 13.0f - 0.5f;
    for (int i = 0; i < m * n; i++)
        C[i] = 1.0f;
    pr_cpu_sgemm(m, n, k, A, B, C, 1);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 1.0;
            for (int q = 0; q < k; q++)
                s += (double)A[i * k + q] * B[q * n + j];
            ck_assert_msg(fabs(C[i * n + j] - s) < 1e-4, "C[%d][%d] = %g, want %g", i, j,
                          C[i * n + j], s);
        }
    free(A), free(B), free(C);
}
END_TEST

/* The CPU backend's gemm primitive: every transpose, strides wider than
 * the operands, beta 0 and 1, against a plain sum in double; and OpenBLAS
 * runs on the calling (device) thread alone. */
START_TEST(test_backend_gemm_transposes)
{
    const pr_backend *be = pr_backend_cpu();
    pr_backend_cfg cfg = {.devices = 1, .microbatches = 1};
    char err[64];
    pr_bctx *c = be->open(0, &cfg, err, sizeof err);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(openblas_get_num_threads(), 1);
    enum { M = 5, N = 7, K = 3, LD = 9 };
    float A[LD * LD], B[LD * LD], C[M * LD];
    for (int i = 0; i < LD * LD; i++) {
        A[i] = (float)((i * 37) % 17) / 17.0f - 0.5f;
        B[i] = (float)((i * 11) % 13) / 13.0f - 0.5f;
    }
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int beta = 0; beta < 2; beta++) {
                for (int i = 0; i < M * LD; i++)
                    C[i] = 2.0f;
                be->gemm(c, ta ? PR_T : PR_N, tb ? PR_T : PR_N, M, N, K, A, LD, B, LD,
                         (float)beta, C, LD);
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < LD; j++) {
                        double want = 2.0;
                        if (j < N) {
                            want = beta ? 2.0 : 0.0;
                            for (int q = 0; q < K; q++)
                                want += (double)(ta ? A[q * LD + i] : A[i * LD + q]) *
                                        (tb ? B[j * LD + q] : B[q * LD + j]);
                        }
                        ck_assert_msg(fabs(C[i * LD + j] - want) < 1e-5,
                                      "ta %d tb %d beta %d: C[%d][%d] = %g, want %g", ta, tb, beta,
                                      i, j, C[i * LD + j], want);
                    }
            }
    float col[N] = {0};
    be->colsum(c, B, 3, N, col); /* rows of N out of B's stride... as one [3, N] block */
    for (int j = 0; j < N; j++)
        ck_assert(col[j] == B[j] + B[N + j] + B[2 * N + j]);
    be->close(c);
}
END_TEST

START_TEST(test_init_is_deterministic_and_sliceable)
{
    pr_model m = {.layers = 2, .hidden = 8, .batch = 8, .seed = 42};
    float x1[64], t1[64], x2[32], t2[32];
    pr_make_batch(&m, 3, 0, 8, x1, t1);
    pr_make_batch(&m, 3, 4, 4, x2, t2); /* rows 4..7 alone equal rows 4..7 of the whole */
    ck_assert(memcmp(x1 + 32, x2, sizeof x2) == 0);
    ck_assert(memcmp(t1 + 32, t2, sizeof t2) == 0);
    float x3[64];
    pr_make_batch(&m, 4, 0, 8, x3, NULL); /* another step, other data */
    ck_assert(memcmp(x1, x3, sizeof x3) != 0);
    float lo = 1, hi = -1;
    for (int i = 0; i < 64; i++)
        lo = fminf(lo, x1[i]), hi = fmaxf(hi, x1[i]);
    ck_assert(lo >= -1 && hi <= 1 && lo < -0.5f && hi > 0.5f);
    float W[128], b[16];
    pr_init_params(&m, W, b);
    float wmax = 0;
    for (int i = 0; i < 128; i++) /* U / sqrt(H L) (docs/model.md) */
        wmax = fmaxf(wmax, fabsf(W[i]));
    ck_assert(wmax <= 1.0f / sqrtf(16.0f) && wmax > 0.5f / sqrtf(16.0f));
}
END_TEST

/* Weight versions are copied on the device (weight_versions.c
 * copy_weights): the CPU backend's copy copies exactly count floats, no
 * more. */
START_TEST(test_backend_copy)
{
    const pr_backend *be = pr_backend_cpu();
    pr_backend_cfg cfg = {.devices = 1, .microbatches = 1, .gemm_floats = 6, .max_cols = 3};
    char err[64];
    pr_bctx *c = be->open(0, &cfg, err, sizeof err);
    ck_assert_ptr_nonnull(c);
    float src[6] = {1, -2, 3.5f, 4, 5, 6}, dst[7] = {0, 0, 0, 0, 0, 0, 9};
    be->copy(c, dst, src, 6);
    ck_assert(memcmp(dst, src, sizeof src) == 0 && dst[6] == 9);
    float dst2[3] = {7, 7, 7};
    be->copy(c, dst2, src + 3, 2);
    ck_assert(dst2[0] == 4 && dst2[1] == 5 && dst2[2] == 7);
    be->close(c);
}
END_TEST

/* ---- out of memory: the first allocation that fails ends the run, named ---- */

/* huge requests below must come back NULL under ASan too, as from malloc */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

/* the alloc_fail_at-th allocation fails (0: none); device threads count too */
static atomic_int alloc_calls;
static int alloc_fail_at;

static float *failing_alloc(pr_bctx *c, size_t count)
{
    return atomic_fetch_add(&alloc_calls, 1) + 1 == alloc_fail_at ? NULL : pr_backend_cpu()->alloc(c, count);
}

/* pr_test_pool_slots (pprun.h): with empty_pools, every device's pool
 * starts empty, so each activation buffer an op takes is allocated then
 * (a pool miss) and can fail inside any op that takes one. */
static bool empty_pools;
int pr_test_pool_slots(int rank, int slots)
{
    return empty_pools ? 0 : slots;
}

/* A device's memory is one allocation (parameters, gradients, optimizer
 * state and the pool, docs/models.md); each allocation in turn fails,
 * from the first device's to (_i = 1: with empty pools) the last
 * activation buffer an op takes: the run fails naming it, never a crash
 * (an op computing on a NULL buffer). */
START_TEST(test_failed_allocation_is_named)
{
    static const char *plans[] = {"1f1b-2x4", "zb-2x4", "same-device-2x4", "interleaved-2x2x4"};
    empty_pools = _i == 1;
    pr_backend be = *pr_backend_cpu();
    be.alloc = failing_alloc;
    for (size_t q = 0; q < sizeof plans / sizeof *plans; q++) {
        char *text = lu_named_plan(plans[q]);
        pp_plan p;
        pr_model m;
        load_ok(text, &p, &m);
        pr_run_opts o = {.steps = 2, .timeout = 10, .backend = &be};
        pr_run_result r;
        alloc_calls = alloc_fail_at = 0;
        tu_diag td;
        tu_diag_open(&td);
        ck_assert_msg(pr_replay(&p, &m, &o, &r, &td.diag) == 0, "%s", tu_diag_text(&td));
        tu_diag_close(&td);
        ck_assert_int_eq(r.pool_misses[0] > 0, empty_pools);
        pr_run_result_free(&r);
        int total = alloc_calls;
        if (!empty_pools) /* one allocation per device, nothing during the steps */
            ck_assert_int_eq(total, p.devices);
        else
            ck_assert(total > p.devices);
        int misses = 0; /* failures of a buffer beyond the pool */
        for (alloc_fail_at = 1; alloc_fail_at <= total; alloc_fail_at++) {
            alloc_calls = 0;
            tu_diag_open(&td);
            td.diag.prog = "pprun";
            ck_assert_int_eq(pr_replay(&p, &m, &o, &r, &td.diag), 1);
            const char *msg = tu_diag_text(&td);
            ck_assert_msg(strncmp(msg, "pprun: error: device ", 21) == 0 &&
                              strstr(msg, ": cannot allocate ") &&
                              (strstr(msg, " bytes): ") || strstr(msg, " KiB): ")) &&
                              strstr(msg, ": the backend has no room\n"),
                          "%s allocation %d: %s", plans[q], alloc_fail_at, msg);
            misses += strstr(msg, "beyond the pool's 0") != NULL;
            if (alloc_fail_at == 1)
                ck_assert_msg(strstr(msg, "pprun: error: device 0: cannot allocate its memory "
                                          "(parameters, gradients, optimizer state, activations) (") == msg,
                              "%s", msg);
            tu_diag_close(&td);
        }
        ck_assert_msg(empty_pools ? misses > 0 : misses == 0, "%s: %d pool misses failed", plans[q], misses);
        pp_plan_free(&p);
        pr_model_free(&m);
        free(text);
    }
}
END_TEST

/* The CPU backend's own failure: NULL, a message with the size, and every
 * later call on the context does nothing. */
START_TEST(test_cpu_backend_out_of_memory)
{
    const pr_backend *be = pr_backend_cpu();
    pr_backend_cfg cfg = {.devices = 1, .microbatches = 1, .gemm_floats = 6, .max_cols = 3};
    char err[64];
    pr_bctx *c = be->open(0, &cfg, err, sizeof err);
    ck_assert_ptr_nonnull(c);
    size_t huge = (size_t)1 << 46; /* 256 TiB */
    ck_assert_ptr_null(be->alloc(c, huge));
    ck_assert(c->failed);
    char want[96];
    snprintf(want, sizeof want, "[device 0] cpu backend: out of host memory (%zu floats)", huge);
    ck_assert_str_eq(c->err, want);
    be->zero(c, NULL, 8);
    be->gemm(c, PR_N, PR_N, 2, 3, 3, NULL, 3, NULL, 3, 0.0f, NULL, 3);
    be->colsum(c, NULL, 2, 3, NULL);
    be->sgd(c, NULL, NULL, 0.1f, 8);
    ck_assert_ptr_null(be->alloc(c, 4));
    be->close(c);

    c = be->open(1, &cfg, err, sizeof err);
    ck_assert_ptr_null(be->alloc(c, SIZE_MAX / 2)); /* bytes overflow size_t */
    ck_assert(c->failed && strstr(c->err, "out of host memory"));
    be->close(c);
}
END_TEST

/* A host array that cannot be allocated: the one out-of-memory message
 * (compiler/arena.c), naming it and its size, exit status 1 (a child
 * process, since it ends the process). */
START_TEST(test_xcalloc_names_what)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/pp_oom_%d.txt", (int)getpid());
    pid_t kid = fork();
    ck_assert(kid >= 0);
    if (kid == 0) {
        if (!freopen(path, "w", stderr))
            _exit(3);
        pp_set_program("pprun");
        pp_xcalloc((size_t)1 << 44, 16, "the test's array");
        _exit(0);
    }
    int st;
    ck_assert(waitpid(kid, &st, 0) == kid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    size_t n;
    char *text = tu_read_file(path, &n);
    ck_assert_ptr_nonnull(text);
    /* (a sanitizer may warn about the request first) */
    ck_assert_msg(strstr(text, "pprun: error: out of memory: cannot allocate 281474976710656 bytes "
                               "for the test's array\n"), "%s", text);
    free(text);
    unlink(path);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("runtime");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_schedule_equals_single_device, 0,
                        (int)(sizeof equivalence_plans / sizeof *equivalence_plans));
    tcase_add_test(tc, test_check_detects_wrong_lr);
    tcase_add_test(tc, test_check_detects_dropped_microbatch);
    tcase_add_test(tc, test_recv_timeout_names_device_and_op);
    tcase_add_test(tc, test_recv_mismatch_is_an_error);
    tcase_add_loop_test(tc, test_loader_mutations, 0, (int)(sizeof mutations / sizeof *mutations));
    tcase_add_test(tc, test_loader_syntax);
    tcase_add_test(tc, test_loader_runs_the_verifier);
    tcase_add_test(tc, test_loader_fills_plan_and_model);
    tcase_add_test(tc, test_trace_has_one_event_per_op);
    tcase_add_test(tc, test_npy_header);
    tcase_add_test(tc, test_sgemm_matches_naive);
    tcase_add_test(tc, test_backend_gemm_transposes);
    tcase_add_test(tc, test_init_is_deterministic_and_sliceable);
    tcase_add_test(tc, test_backend_copy);
    tcase_add_loop_test(tc, test_failed_allocation_is_named, 0, 2);
    tcase_add_test(tc, test_cpu_backend_out_of_memory);
    tcase_add_test(tc, test_xcalloc_names_what);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(make_suite());
}
