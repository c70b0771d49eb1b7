/*
 * test_model_limits.c — ppcc and pprun agree on the models' limits
 * (pp.h): every model ppcc compiles, pprun's loader accepts, and every
 * model the loader refuses, ppcc refuses at compile time.  The plan of
 * each case is ppcc's own plan with its model fields replaced, so both
 * sides judge exactly the same numbers.  For model gpt also: the plan's
 * model section as the loader reads it back, and each field it refuses.
 */
#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "pprun.h"
#include "test_util.h"

/* Compiles text with defs through every pass, as ppcc does (pp_compile); returns the
 * plan JSON (malloc'd) or NULL when refused, the diag text in *msg. */
static char *compile(const char *text, const pp_define *defs, int ndefs, char **msg)
{
    pp_arena a = {0};
    tu_diag td;
    tu_diag_open(&td);
    pp_ast ast;
    pp_spec spec;
    pp_plan plan = {0};
    pp_sim sim = {0};
    char *json = NULL;
    size_t len = 0;
    if (pp_parse("t.pp", text, strlen(text), &a, &td.diag, &ast) == 0 &&
        pp_spec_build(&ast, defs, ndefs, &a, &td.diag, &spec) == 0 && pp_compile(&spec, &plan, &sim, &td.diag) == 0) {
        FILE *f = open_memstream(&json, &len);
        ck_assert_int_eq(pp_emit_json(f, &spec, &plan, &sim), 0);
        fclose(f);
        pp_sim_free(&sim, plan.devices);
    }
    *msg = strdup(tu_diag_text(&td));
    pp_plan_free(&plan);
    tu_diag_close(&td);
    pp_arena_free(&a);
    return json;
}

/* A number as written ("%.0f"): cJSON's printer rounds to 15 digits. */
static cJSON *exact(double v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.0f", v);
    return cJSON_CreateRaw(buf);
}

/* The loader's verdict on base with its model's fields set as given. */
static bool loader_accepts(const char *base, double layers, double hidden, double batch, double seed, char **msg)
{
    cJSON *root = cJSON_Parse(base);
    ck_assert_ptr_nonnull(root);
    cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    cJSON_ReplaceItemInObjectCaseSensitive(model, "layers", exact(layers));
    cJSON_ReplaceItemInObjectCaseSensitive(model, "hidden", exact(hidden));
    cJSON_ReplaceItemInObjectCaseSensitive(model, "batch", exact(batch));
    cJSON_ReplaceItemInObjectCaseSensitive(model, "seed", exact(seed));
    cJSON *lps = cJSON_CreateArray();
    cJSON_AddItemToArray(lps, exact(layers));
    cJSON_ReplaceItemInObjectCaseSensitive(model, "layers_per_stage", lps);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    tu_diag td;
    tu_diag_open(&td);
    pp_plan plan;
    pr_model m;
    int rc = pr_plan_load_text("plan.json", text, strlen(text), &td.diag, &plan, &m);
    if (rc == 0) {
        pp_plan_free(&plan);
        pr_model_free(&m);
    }
    *msg = strdup(tu_diag_text(&td));
    tu_diag_close(&td);
    free(text);
    return rc == 0;
}

START_TEST(test_ppcc_and_loader_agree)
{
    /* One device, one micro-batch: the model alone decides.  The accepted
     * cases stay small in memory; the refused ones cross each bound. */
    static const struct {
        double layers, hidden, batch, seed;
        bool ok;
    } cases[] = {
        {PP_MAX_LAYERS, 1, 1, 1, true},
        {PP_MAX_LAYERS + 1, 1, 1, 1, false},
        {1, 1, PP_MAX_BATCH, 1, true},
        {1, 1, 2.0 * PP_MAX_BATCH, 1, false},
        {1, PP_MAX_HIDDEN, 1, 1, false},                              /* the weights */
        {1, PP_MAX_HIDDEN + 1, 1, 1, false},
        {1, 65, PP_MAX_BATCH, 1, false},                              /* one micro-batch */
        {1, 1, 1, PP_MAX_SEED, true},
        {1, 1, 1, PP_MAX_SEED + 1, false},
    };
    char *msg;
    char *base = compile("devices = 1\nmicrobatches = 1\nmodel mlp { layers = 1 hidden = 1 batch = 1 }\n", NULL, 0,
                         &msg);
    ck_assert_msg(base != NULL, "%s", msg);
    free(msg);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char layers[32], hidden[32], batch[32], seed[32];
        snprintf(layers, sizeof layers, "%.0f", cases[i].layers);
        snprintf(hidden, sizeof hidden, "%.0f", cases[i].hidden);
        snprintf(batch, sizeof batch, "%.0f", cases[i].batch);
        snprintf(seed, sizeof seed, "%.0f", cases[i].seed);
        pp_define defs[] = {{"layers", layers}, {"hidden", hidden}, {"batch", batch}, {"seed", seed}};
        char *plan = compile("devices = 1\nmicrobatches = 1\n", defs, 4, &msg);
        ck_assert_msg((plan != NULL) == cases[i].ok, "ppcc on layers %s hidden %s batch %s seed %s: %s", layers,
                      hidden, batch, seed, plan ? "accepted" : msg);
        free(plan);
        free(msg);
        bool loaded = loader_accepts(base, cases[i].layers, cases[i].hidden, cases[i].batch, cases[i].seed, &msg);
        ck_assert_msg(loaded == cases[i].ok, "loader on layers %s hidden %s batch %s seed %s: %s", layers, hidden,
                      batch, seed, loaded ? "accepted" : msg);
        free(msg);
    }
    free(base);
}
END_TEST

/* ---- model gpt ---- */

static long file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (long)st.st_size;
}

/* A gpt on 2 devices, data from the repository's corpus (absolute path). */
/* In the synchronous (version-1) form, whose op positions the tied
 * allreduce's cases below name. */
static char *gpt_plan(const char *extra, char **msg)
{
    char text[1024];
    snprintf(text, sizeof text,
             "devices = 2\nmicrobatches = 2\noverlap = false\nmodel gpt { layers = 3 hidden = 64 heads = 4 seq = 16 batch = 4 "
             "data = \"%s\" %s }\n",
             tu_src_path("data/docs.txt"), extra);
    return compile(text, NULL, 0, msg);
}

static int load_text(const char *text, pr_model *m, char **msg)
{
    tu_diag td;
    tu_diag_open(&td);
    pp_plan plan;
    int rc = pr_plan_load_text("plan.json", text, strlen(text), &td.diag, &plan, m);
    if (rc == 0)
        pp_plan_free(&plan);
    *msg = strdup(tu_diag_text(&td));
    tu_diag_close(&td);
    return rc;
}

START_TEST(test_gpt_round_trip)
{
    char *msg;
    char *json = gpt_plan("ffn = 100 tie = 0 optimizer = adamw lr = 2e-4 beta2 = 0.99 precision = bf16 seed = 7",
                          &msg);
    ck_assert_msg(json != NULL, "%s", msg);
    free(msg);
    pr_model m;
    ck_assert_msg(load_text(json, &m, &msg) == 0, "%s", msg);
    free(msg);
    ck_assert_int_eq(m.kind, PR_MODEL_GPT);
    ck_assert_int_eq(m.gpt.blocks, 3);
    ck_assert_int_eq(m.layers, 5); /* pprun's layers: the embedding, the blocks, the head */
    ck_assert_int_eq(m.hidden, 64);
    ck_assert_int_eq(m.batch, 4);
    ck_assert_int_eq(m.gpt.heads, 4);
    ck_assert_int_eq(m.gpt.ffn, 100);
    ck_assert_int_eq(m.gpt.seq, 16);
    ck_assert_int_eq(m.gpt.vocab, 256);
    ck_assert(!m.gpt.tie);
    ck_assert_int_eq(m.gpt.optimizer, PR_ADAMW);
    ck_assert_double_eq(m.lr, 2e-4);
    ck_assert_double_eq(m.gpt.beta1, 0.9);
    ck_assert_double_eq(m.gpt.beta2, 0.99);
    ck_assert_double_eq(m.gpt.eps, 1e-8);
    ck_assert_double_eq(m.gpt.weight_decay, 0.1);
    ck_assert_int_eq(m.gpt.precision, PR_BF16);
    ck_assert_uint_eq(m.seed, 7);
    /* 3 blocks on 2 stages: the earlier stage takes the extra one, and the
     * embedding and the head join the first and the last */
    ck_assert_int_eq(m.layers_per_stage[0], 3);
    ck_assert_int_eq(m.layers_per_stage[1], 2);
    ck_assert_int_eq(m.first_layer[1], 3);
    char *real = realpath(tu_src_path("data/docs.txt"), NULL);
    ck_assert_str_eq(m.gpt.data, real);
    free(real);
    ck_assert_int_gt(m.gpt.data_bytes, 0);
    pr_model_free(&m);
    free(json);
}
END_TEST

/* Each field of a valid gpt plan, changed: the loader's exact refusal. */
static const struct {
    const char *key, *value; /* value NULL: the field removed */
    const char *error;       /* after "pprun: error: plan.json: " */
} gpt_mutations[] = {
    {"heads", "5", "model.heads: 5 does not divide model.hidden (64)"},
    {"heads", "0", "model.heads: 0 is out of range [1, 65536]"},
    {"seq", "70000", "model.seq: 70000 is out of range [1, 65536]"},
    {"vocab", "1", "model.vocab: 1 is out of range [2, 1048576]"},
    {"vocab", "100", "model.vocab: 100 is fewer than the 256 byte values of a data file (model.data is set)"},
    {"batch", "3", "model.batch: 3 is not a multiple of pipeline.microbatches (2)"},
    {"tie", "1", "model.tie: expected a boolean, got a number"},
    {"blocks_per_stage", "[3, 1]", "model.blocks_per_stage: sums to 4, model.layers is 3"},
    {"blocks_per_stage", "[3]", "model.blocks_per_stage: 1 entries, pipeline.stages is 2"},
    {"embedding_stage", "1", "model.embedding_stage: 1, but the embedding belongs to the first stage (0)"},
    {"head_stage", "0", "model.head_stage: 0, but the head belongs to the last stage (1)"},
    {"optimizer", "\"adam\"", "model.optimizer: unknown optimizer \"adam\" (this pprun knows \"sgd\" and \"adamw\")"},
    {"beta1", "1", "model.beta1: 1 is not in [0, 1)"},
    {"eps", NULL, "model: missing field \"eps\""},
    {"precision", "\"fp16\"", "model.precision: unknown precision \"fp16\" (fp32, tf32 or bf16)"},
    {"data", "\"relative.txt\"", "model.data: \"relative.txt\" is not an absolute path (ppcc writes one)"},
    {"data", "\"/nonexistent/corpus.txt\"", "model.data: /nonexistent/corpus.txt cannot be opened: No such file or directory"},
    {"data_bytes", "12", NULL}, /* checked below: the file has changed */
    {"data", NULL, "model: missing field \"data\" (null for synthetic tokens)"},
    {"kind", "\"bert\"", "model.kind: unknown model \"bert\" (this pprun knows \"mlp\" and \"gpt\")"},
    {"hidden", "65536", "model: attn.w (hidden x 3 hidden) = 65536 x 196608 = 12884901888 elements, more than one "
                        "array of pprun holds (2147483648)"},
};

START_TEST(test_gpt_mutations)
{
    char *msg;
    char *json = gpt_plan("", &msg);
    ck_assert_msg(json != NULL, "%s", msg);
    free(msg);
    cJSON *root = cJSON_Parse(json);
    cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *key = gpt_mutations[_i].key, *value = gpt_mutations[_i].value;
    if (value)
        cJSON_ReplaceItemInObjectCaseSensitive(model, key, cJSON_Parse(value));
    else
        cJSON_DeleteItemFromObjectCaseSensitive(model, key);
    char *text = cJSON_PrintUnformatted(root);
    char want[512];
    if (gpt_mutations[_i].error) {
        snprintf(want, sizeof want, "ppcc: error: plan.json: %s\n", gpt_mutations[_i].error);
    } else {
        char *real = realpath(tu_src_path("data/docs.txt"), NULL);
        long bytes = file_size(real);
        snprintf(want, sizeof want, "ppcc: error: plan.json: model.data: %s holds %ld bytes, but the plan was "
                 "compiled for 12 (model.data_bytes): the file has changed\n", real, bytes);
        free(real);
    }
    pr_model m;
    ck_assert_int_eq(load_text(text, &m, &msg), 1);
    ck_assert_str_eq(msg, want);
    free(msg);
    free(text);
    cJSON_Delete(root);
    free(json);
}
END_TEST

/* ---- the tied embedding's allreduce (docs/plan-format.md) ---- */

/* devices[r].ops of root, and the index of its allreduce (-1: none). */
static cJSON *ops_of(cJSON *root, int r, int *at)
{
    cJSON *ops = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "devices"), r),
                                                  "ops");
    *at = -1;
    for (int i = 0; i < cJSON_GetArraySize(ops); i++)
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(ops, i), "op")->valuestring, "allreduce"))
            *at = i;
    return ops;
}

/* Puts item at index `to` of arr (shifting the rest), by rebuilding the
 * array: the system's cJSON (1.7.15) drops items cJSON_InsertItemInArray
 * is given in the middle. */
static void insert_at(cJSON *arr, int to, cJSON *item)
{
    int n = cJSON_GetArraySize(arr);
    cJSON **all = calloc((size_t)n + 1, sizeof *all);
    for (int i = 0; i < n; i++)
        all[i] = cJSON_DetachItemFromArray(arr, 0);
    for (int i = 0, k = 0; i <= n; i++)
        cJSON_AddItemToArray(arr, i == to ? item : all[k++]);
    free(all);
}

/* A tied gpt on 2 devices (1f1b): both hold the allreduce, ppcc's plan loads,
 * the op names its group {0, 1}, right before each device's update. */
START_TEST(test_tied_round_trip)
{
    char *msg;
    char *json = gpt_plan("", &msg);
    ck_assert_msg(json != NULL, "%s", msg);
    free(msg);
    ck_assert_ptr_nonnull(strstr(json, "{\"op\": \"allreduce\", \"what\": \"tied\", \"ranks\": [0, 1]}"));
    tu_diag td;
    tu_diag_open(&td);
    pp_plan plan;
    pr_model m;
    ck_assert_msg(pr_plan_load_text("plan.json", json, strlen(json), &td.diag, &plan, &m) == 0, "%s",
                  tu_diag_text(&td));
    tu_diag_close(&td);
    ck_assert_int_eq(plan.ncoll, 1);
    for (int r = 0; r < 2; r++) {
        const pp_device *dv = &plan.dev[r];
        const pp_op *op = &dv->ops[dv->n - 3];
        const pp_coll *c = pp_plan_op_coll(&plan, op);
        ck_assert_ptr_nonnull(c);
        ck_assert_int_eq(c->what, PP_COLL_TIED);
        ck_assert_int_eq(c->nranks, 2);
        ck_assert_int_eq(c->ranks[0], 0);
        ck_assert_int_eq(c->ranks[1], 1);
        ck_assert_int_eq(dv->ops[dv->n - 2].kind, PP_OP_UPDATE);
    }
    pp_plan_free(&plan);
    pr_model_free(&m);
    free(json);
}
END_TEST

/* Each change to the allreduce of a valid tied plan: the loader's exact
 * refusal (the JSON path), or the verifier's deadlock. */
enum tied_change { SET, DROP_KEY, REMOVE, DUPLICATE, AFTER_UPDATE, BEFORE_COMPUTE, BEFORE_SEND, UNTIE };
static const struct {
    int rank;
    enum tied_change change;
    const char *key, *value;
    const char *error; /* after "ppcc: error: " */
} tied_changes[] = {
    {0, SET, "what", "\"bogus\"", "plan.json: devices[0].ops[8].what: unknown collective \"bogus\" (this pprun knows "
                                 "\"tied\", \"stage\", \"shard\", \"gather\" and \"mirror\")"},
    {0, SET, "what", "\"mirror\"", "plan.json: devices[0].ops[8]: an allreduce mirror, but pipeline.mirrored is not "
                                 "true: no stage has a copy"},
    {0, SET, "what", "3", "plan.json: devices[0].ops[8].what: expected a string, got a number"},
    {0, DROP_KEY, "what", NULL, "plan.json: devices[0].ops[8]: missing field \"what\""},
    {1, DROP_KEY, "ranks", NULL, "plan.json: devices[1].ops[8]: missing field \"ranks\""},
    {1, SET, "ranks", "[1, 0]", "plan.json: devices[1].ops[8].ranks: must be [0, 1], the ranks of stage 0 and stage 1, "
                                "in that order"},
    {1, SET, "ranks", "[0]", "plan.json: devices[1].ops[8].ranks: must be [0, 1], the ranks of stage 0 and stage 1, "
                             "in that order"},
    {1, SET, "ranks", "[0, 1, 1]", "plan.json: devices[1].ops[8].ranks: 3 entries, a tied allreduce has 2 (ranks 0 "
                                   "and 1)"},
    {0, SET, "ranks", "[0, 7]", "plan.json: devices[0].ops[8].ranks[1]: 7 is not a rank"},
    {0, SET, "ranks", "{}", "plan.json: devices[0].ops[8].ranks: expected an array, got an object"},
    {1, REMOVE, NULL, NULL, "plan.json: devices[1].ops: no allreduce tied, but model.tie is true and stages 0 and 1 "
                            "are on ranks 0 and 1: {\"op\": \"allreduce\", \"what\": \"tied\", \"ranks\": [0, 1]} "
                            "must come before the update"},
    {0, DUPLICATE, NULL, NULL, "plan.json: devices[0].ops[9]: a second allreduce tied (the first is "
                               "devices[0].ops[8]): one a step"},
    {1, AFTER_UPDATE, NULL, NULL, "plan.json: devices[1].ops[9]: the allreduce tied comes after the update "
                                  "(devices[1].ops[8]), which needs the summed gradient"},
    {0, BEFORE_COMPUTE, NULL, NULL, "plan.json: devices[0].ops[8]: B after the allreduce tied (devices[0].ops[7]), "
                                    "which sums the step's last gradients"},
    {0, UNTIE, NULL, NULL, "plan.json: devices[0].ops[8]: an allreduce tied, but model.tie is false: no weights are "
                           "tied"},
    /* the loader lets a send follow it; the verifier finds the wait it makes */
    {1, BEFORE_SEND, NULL, NULL, "deadlock: device 0 waits at op 6 (recv grad 1.1 from 1) for device 1, which waits "
                                 "at op 7 (allreduce tied {0,1}) for device 0"},
};

START_TEST(test_tied_refusals)
{
    char *msg;
    char *json = gpt_plan("", &msg);
    ck_assert_msg(json != NULL, "%s", msg);
    free(msg);
    cJSON *root = cJSON_Parse(json);
    int at;
    cJSON *ops = ops_of(root, tied_changes[_i].rank, &at);
    ck_assert_int_eq(at, 8);
    cJSON *op = cJSON_GetArrayItem(ops, at);
    switch (tied_changes[_i].change) {
    case SET: cJSON_ReplaceItemInObjectCaseSensitive(op, tied_changes[_i].key, cJSON_Parse(tied_changes[_i].value)); break;
    case DROP_KEY: cJSON_DeleteItemFromObjectCaseSensitive(op, tied_changes[_i].key); break;
    case REMOVE: cJSON_DeleteItemFromArray(ops, at); break;
    case DUPLICATE: insert_at(ops, at, cJSON_Duplicate(op, true)); break;
    case AFTER_UPDATE: insert_at(ops, at + 1, cJSON_DetachItemFromArray(ops, at)); break;
    case BEFORE_COMPUTE: /* ops[7] is B0.1 */
    case BEFORE_SEND:    /* ops[7] is send grad 1.1 */
        insert_at(ops, at - 1, cJSON_DetachItemFromArray(ops, at));
        break;
    case UNTIE:
        cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "tie", cJSON_CreateFalse());
        break;
    }
    char *text = cJSON_PrintUnformatted(root);
    pr_model m;
    ck_assert_int_eq(load_text(text, &m, &msg), 1);
    char want[512];
    snprintf(want, sizeof want, "ppcc: error: %s\n", tied_changes[_i].error);
    ck_assert_str_eq(msg, want);
    free(msg);
    free(text);
    cJSON_Delete(root);
    free(json);
}
END_TEST

/* A mirrored plan (docs/dualpipe.md, schedule dualpipe on 4 devices):
 * each change, the loader's exact refusal or the verifier's. */
enum mirror_change { M_SET, M_LAYERS, M_REMOVE, M_UNMIRROR };
static const struct {
    enum mirror_change change;
    const char *key, *value;
    const char *error; /* after "ppcc: error: " */
} mirror_changes[] = {
    {M_SET, "stage", "4", "plan.json: devices[0].ops[41].stage: 4 is not a stage of the first pipeline"},
    {M_SET, "stage", "1", "plan.json: devices[0].ops[41].ranks: must be [1, 2], the ranks of stage 1 and its copy, "
                          "stage 5, in that order"},
    {M_SET, "ranks", "[0, 2]", "plan.json: devices[0].ops[41].ranks: must be [0, 3], the ranks of stage 3 and its "
                               "copy, stage 7, in that order"},
    {M_LAYERS, NULL, NULL, "plan.json: model.layers_per_stage[5]: 3, but stage 5 of a mirrored plan is a copy of "
                           "stage 1, which holds 2"},
    {M_REMOVE, NULL, NULL, "device 0: no mirror allreduce of stage 3 (its copies, stages 3 and 7, are on devices 3 "
                           "and 0)"},
    {M_UNMIRROR, NULL, NULL, "plan.json: devices[0].ops[40]: an allreduce mirror, but pipeline.mirrored is not "
                             "true: no stage has a copy"},
};

START_TEST(test_mirror_refusals)
{
    char *msg;
    /* the synchronous (version-1) form, whose op positions the cases name */
    char *json = compile("devices = 4\nvirtual = 2\nplacement = vshape\nmicrobatches = 8\nschedule dualpipe\n"
                         "overlap = false\nmodel mlp { layers = 8 hidden = 8 batch = 16 }\n", NULL, 0, &msg);
    ck_assert_msg(json != NULL, "%s", msg);
    free(msg);
    pr_model m;
    ck_assert_msg(load_text(json, &m, &msg) == 0, "%s", msg); /* as ppcc wrote it */
    free(msg);
    pr_model_free(&m);
    cJSON *root = cJSON_Parse(json);
    int at;
    cJSON *ops = ops_of(root, 0, &at); /* device 0's last allreduce: stage 3's */
    ck_assert_int_eq(at, 41);
    cJSON *op = cJSON_GetArrayItem(ops, at);
    switch (mirror_changes[_i].change) {
    case M_SET:
        cJSON_ReplaceItemInObjectCaseSensitive(op, mirror_changes[_i].key, cJSON_Parse(mirror_changes[_i].value));
        break;
    case M_LAYERS: {
        cJSON *lps = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "layers_per_stage");
        cJSON_ReplaceItemInArray(lps, 5, cJSON_CreateNumber(3));
        break;
    }
    case M_REMOVE: cJSON_DeleteItemFromArray(ops, at); break;
    case M_UNMIRROR: /* stages 4..7 become 8 more layers of one model */
        cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "pipeline"), "mirrored");
        cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "model"), "layers",
                                               cJSON_CreateNumber(16));
        break;
    }
    char *text = cJSON_PrintUnformatted(root);
    ck_assert_int_eq(load_text(text, &m, &msg), 1);
    char want[512];
    snprintf(want, sizeof want, "ppcc: error: %s\n", mirror_changes[_i].error);
    ck_assert_msg(strstr(msg, want) != NULL, "got: %s", msg);
    free(msg);
    free(text);
    cJSON_Delete(root);
    free(json);
}
END_TEST

/* Where no allreduce belongs: on a rank off the pair (3 devices), on one
 * device that holds both ends (the sum is local). */
START_TEST(test_tied_misplaced)
{
    static const struct {
        const char *shape;
        int rank, at;
        const char *error;
    } cases[] = {
        {"devices = 3\nmicrobatches = 3", 1, 1,
         "plan.json: devices[1].ops[1]: rank 1 is not one of the allreduce's ranks [0, 2]"},
        {"devices = 1\nmicrobatches = 2", 0, 1,
         "plan.json: devices[0].ops[1]: an allreduce tied, but the first and the last stage are both on rank 0: the "
         "sum is local (no op)"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char text[512], *msg;
        snprintf(text, sizeof text, "%s\nmodel gpt { layers = 3 hidden = 64 heads = 4 seq = 16 batch = 6 }\n",
                 cases[k].shape);
        char *json = compile(text, NULL, 0, &msg);
        ck_assert_msg(json != NULL, "%s", msg);
        free(msg);
        cJSON *root = cJSON_Parse(json);
        int at;
        cJSON *ops = ops_of(root, cases[k].rank, &at);
        ck_assert_int_eq(at, -1); /* ppcc puts none there */
        insert_at(ops, cases[k].at, cJSON_Parse("{\"op\": \"allreduce\", \"what\": \"tied\", \"ranks\": [0, 2]}"));
        char *edited = cJSON_PrintUnformatted(root);
        pr_model m;
        ck_assert_int_eq(load_text(edited, &m, &msg), 1);
        char want[512];
        snprintf(want, sizeof want, "ppcc: error: %s\n", cases[k].error);
        ck_assert_str_eq(msg, want);
        free(msg);
        free(edited);
        cJSON_Delete(root);
        free(json);
    }
}
END_TEST

/* The gpt's array and parameter limits (model_limits.c): ppcc and the
 * loader give the same verdict on the same numbers. */
START_TEST(test_gpt_limits_agree)
{
    static const struct {
        const char *set; /* -D settings, space separated */
        bool ok;
    } cases[] = {
        {"hidden=4096 heads=32 vocab=500000", true},   /* wte 2^31 - a little */
        {"hidden=4096 heads=32 vocab=600000", false},  /* wte above 2^31 elements */
        {"seq=2048 batch=4 heads=16 hidden=256", true},
        {"seq=65536 batch=2 heads=1 hidden=64", false}, /* the attention scores: 65536^2 */
    };
    char *msg;
    char *base = gpt_plan("", &msg);
    ck_assert_msg(base != NULL, "%s", msg);
    free(msg);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pp_define defs[8];
        char buf[256];
        snprintf(buf, sizeof buf, "%s", cases[i].set);
        int n = 0;
        for (char *tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
            char *eq = strchr(tok, '=');
            *eq = '\0';
            defs[n++] = (pp_define){tok, eq + 1};
        }
        char *plan = compile("devices = 2\nmicrobatches = 2\nmodel gpt { layers = 2 }\n", defs, n, &msg);
        ck_assert_msg((plan != NULL) == cases[i].ok, "ppcc on %s: %s", cases[i].set, plan ? "accepted" : msg);
        free(msg);
        /* the same numbers into the base plan */
        cJSON *root = cJSON_Parse(base);
        cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
        for (int k = 0; k < n; k++)
            cJSON_ReplaceItemInObjectCaseSensitive(model, defs[k].name, exact(atof(defs[k].value)));
        cJSON_ReplaceItemInObjectCaseSensitive(model, "layers", exact(2));
        cJSON *bps = cJSON_CreateArray();
        cJSON_AddItemToArray(bps, exact(1));
        cJSON_AddItemToArray(bps, exact(1));
        cJSON_ReplaceItemInObjectCaseSensitive(model, "blocks_per_stage", bps);
        char *text = cJSON_PrintUnformatted(root);
        pr_model m;
        int rc = load_text(text, &m, &msg);
        ck_assert_msg((rc == 0) == cases[i].ok, "loader on %s: %s", cases[i].set, rc == 0 ? "accepted" : msg);
        if (rc == 0)
            pr_model_free(&m);
        free(msg);
        free(text);
        free(plan);
        cJSON_Delete(root);
    }
    free(base);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model_limits");
    TCase *tc = tcase_create("agree");
    tcase_add_test(tc, test_ppcc_and_loader_agree);
    tcase_add_test(tc, test_gpt_round_trip);
    tcase_add_loop_test(tc, test_gpt_mutations, 0, (int)(sizeof gpt_mutations / sizeof gpt_mutations[0]));
    tcase_add_test(tc, test_gpt_limits_agree);
    tcase_add_test(tc, test_tied_round_trip);
    tcase_add_loop_test(tc, test_tied_refusals, 0, (int)(sizeof tied_changes / sizeof tied_changes[0]));
    tcase_add_test(tc, test_tied_misplaced);
    tcase_add_loop_test(tc, test_mirror_refusals, 0, (int)(sizeof mirror_changes / sizeof mirror_changes[0]));
    suite_add_tcase(s, tc);
    return tu_run(s);
}
