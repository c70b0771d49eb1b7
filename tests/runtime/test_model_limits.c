/*
 * test_model_limits.c — ppcc and pprun agree on the reference model's
 * limits (pp.h): every model ppcc compiles, pprun's loader accepts, and
 * every model the loader refuses, ppcc refuses at compile time.  The
 * plan of each case is ppcc's own plan with its model fields replaced, so
 * both sides judge exactly the same numbers.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    Suite *s = suite_create("model_limits");
    TCase *tc = tcase_create("agree");
    tcase_add_test(tc, test_ppcc_and_loader_agree);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
