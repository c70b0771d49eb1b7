/*
 * test_megatron.c — Megatron-LM's --pipeline-model-parallel-layout string
 * (compiler/megatron_layout.c, docs/megatron.md): Megatron's own examples
 * read as it reads them, the round trips split -> string -> split (every
 * split of small shapes) and canonical string -> split -> string, every
 * refusal with its column, and model.layout in a file and by -D as a
 * gpt's balance.  Megatron's parser itself checks the writer's strings in
 * tests/ref/megatron_layout_ref.py (opt-in).
 */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static char *written(const int *blocks, int S)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(pp_megatron_layout_write(f, blocks, S), 0);
    fclose(f);
    ck_assert(len > 0 && buf[len - 1] == '\n');
    buf[len - 1] = '\0';
    return buf;
}

static int read_layout(const char *text, int S, int *blocks, char *msg, size_t *at)
{
    return pp_megatron_layout_read(text, S, blocks, msg, 400, at);
}

/* Strings Megatron's docs and tests write, and the blocks per stage its
 * parser gives them (ppcc's subset: no m). */
START_TEST(megatron_examples)
{
    static const struct {
        const char *text;
        int S;
        int blocks[8];
    } cases[] = {
        {"Et*3|(tt|)*3,L", 5, {3, 2, 2, 2, 0}},
        {"Ettt|(tt|)*3,L", 5, {3, 2, 2, 2, 0}},
        {"E|t*4|t*4|L", 4, {0, 4, 4, 0}},
        {"E,t|t,t|tL", 3, {1, 2, 1}},
        {"(Et|)*1,ttL", 2, {1, 2}},
        {"Et|(t|)*2,(tt|)*2,tL", 6, {1, 1, 1, 2, 2, 1}},
        {"Et*0t|t*1|tL", 3, {1, 1, 1}},
        {"Et*12L", 1, {12}},
        {"Et|t*2|t,,*,3|tL", 4, {1, 2, 3, 1}}, /* commas go first: t*3 */
        {"Et|t*1,2|t|tL", 4, {1, 12, 1, 1}},   /* ... even between digits: t*12 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int b[8];
        char msg[400] = "";
        size_t at = 0;
        ck_assert_msg(read_layout(cases[i].text, cases[i].S, b, msg, &at) == 0, "%s: %s", cases[i].text, msg);
        for (int s = 0; s < cases[i].S; s++)
            ck_assert_msg(b[s] == cases[i].blocks[s], "%s: stage %d holds %d, want %d", cases[i].text, s, b[s],
                          cases[i].blocks[s]);
    }
}
END_TEST

/* Every split of up to 7 blocks per stage on up to 5 stages: written,
 * read back equal; the canonical string is the one written again. */
START_TEST(round_trip_every_small_split)
{
    long checked = 0;
    for (int S = 1; S <= 5; S++) {
        int b[5] = {0};
        for (;;) {
            bool legal = true;
            for (int s = 1; s < S - 1; s++)
                legal = legal && b[s] >= 1;
            long sum = 0;
            for (int s = 0; s < S; s++)
                sum += b[s];
            if (legal && sum >= 1) {
                char *text = written(b, S);
                int back[5];
                char msg[400] = "";
                size_t at = 0;
                ck_assert_msg(read_layout(text, S, back, msg, &at) == 0, "%s: %s", text, msg);
                ck_assert_msg(memcmp(back, b, (size_t)S * sizeof *b) == 0, "%s does not read back", text);
                char *again = written(back, S);
                ck_assert_str_eq(again, text);
                free(again);
                free(text);
                checked++;
            }
            int s = 0;
            while (s < S && ++b[s] > 7)
                b[s++] = 0;
            if (s == S)
                break;
        }
    }
    ck_assert_int_gt(checked, 25000);
}
END_TEST

/* The writer's shapes: runs of equal stages grouped, not the last. */
START_TEST(canonical_strings)
{
    static const struct {
        int S;
        int blocks[8];
        const char *text;
    } cases[] = {
        {4, {1, 1, 1, 1}, "Et|(t|)*2,tL"},
        {4, {4, 4, 4, 0}, "Et*4|(t*4|)*2,L"},
        {4, {0, 2, 2, 0}, "E|(tt|)*2,L"},
        {1, {5}, "Et*5L"},
        {2, {0, 0}, "E|L"},
        {5, {3, 2, 1, 2, 3}, "Et*3|tt|t|tt|t*3L"},
        {6, {2, 2, 3, 3, 3, 2}, "Ett|tt|(t*3|)*3,ttL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *text = written(cases[i].blocks, cases[i].S);
        ck_assert_str_eq(text, cases[i].text);
        free(text);
    }
}
END_TEST

/* Each refusal names the column of the character it is about. */
START_TEST(refusals_name_the_column)
{
    static const struct {
        const char *text;
        int S;
        size_t at;
        const char *msg;
    } cases[] = {
        {"Et|tm|t|tL", 4, 4, "column 5: m is Megatron's multi-token prediction layer, which ppcc does not model"},
        {"tE|t|t|tL", 4, 1, "column 2: E must come first"},
        {"|Et|t|tL", 4, 1, "column 2: E must come first"},
        {"|t|t|tL", 4, 0, "column 1: the first stage holds no E"},
        {"EEt|t|t|tL", 4, 1, "column 2: a second E"},
        {"Et||t|tL", 4, 3, "column 4: stage 1 holds no block"},
        {"Et|t|t|tL|", 4, 9, "column 10: a stage after L"},
        {"Et|t|t|tLt", 4, 9, "column 10: 't' after L"},
        {"Et|t|tL|L", 4, 7, "column 8: a stage after L"},
        {"Et|t|t|t", 4, 8, "column 9: no L"},
        {"t|t|t|tL", 4, 0, "column 1: no E"},
        {"Et|t|tL", 4, 7, "column 8: 3 stages, but the schedule has 4"},
        {"Et|t|t|t|tL", 4, 8, "column 9: more than 4 stages"},
        {"Et*2*3|t|t|tL", 4, 4, "column 5: a count after a count"},
        {"Et*2,*3|t|t|tL", 4, 5, "column 6: a count after a count"},
        {"E(t|)*2*3|tL", 4, 7, "column 8: a count after a count"},
        {"E*|t|t|tL", 4, 1, "column 2: '*' needs a count"},
        {"E|*2t|t|tL", 4, 1, "column 2: stage 1 holds no block"}, /* '|*2' is '||' */
        {"Et|(t|(t|)*2)*1,L", 4, 6, "column 7: groups do not nest (the '(' at column 4 is still open)"},
        {"Et|(t|t|tL", 4, 3, "column 4: this '(' is never closed"},
        {"Et|t)*2|t|tL", 4, 4, "column 5: ')' closes no group"},
        {"Et|(t|)|t|tL", 4, 6, "column 7: a group needs its count"},
        {"Et|(,)*2t|t|tL", 4, 3, "column 4: an empty group"},
        {"Et |t|t|tL", 4, 2, "column 3: unexpected space"},
        {"Et|x|t|tL", 4, 3, "column 4: unexpected 'x'"},
        {"Eté|t|t|tL", 4, 2, "column 3: unexpected 'é'"},
        {"éEt|t|t|tL", 4, 0, "column 1: unexpected 'é'"},
        {"E\xc3\xa9t|t|t|xL", 4, 1, "column 2: unexpected"},
        {"Et*70000|t|t|tL", 4, 2, "column 3: a count of more than 65536"},
        {"E(t*60000|)*60000,L", 4, 1, "column 2: the layout unrolls to more than"},
        {"", 4, 0, "column 1: no E"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int b[8];
        char msg[400] = "";
        size_t at = 99;
        ck_assert_msg(read_layout(cases[i].text, cases[i].S, b, msg, &at) == 1, "%s: read", cases[i].text);
        ck_assert_msg(!strncmp(msg, cases[i].msg, strlen(cases[i].msg)), "%s: '%s', want '%s...'", cases[i].text, msg,
                      cases[i].msg);
        ck_assert_msg(at == cases[i].at, "%s: at byte %zu, want %zu", cases[i].text, at, cases[i].at);
    }
}
END_TEST

/* model.layout is a gpt's balance: in a file (errors at the character,
 * with its caret), by -D, against model.layers and model.balance. */
static const char gpt_text[] = "devices = 4\nmicrobatches = 4\nmodel gpt {\n    layers = 6\n    hidden = 64\n"
                               "    batch = 8\n    layout = \"Ett|t|tt|tL\"\n}\n";

static int build(pp_arena *a, tu_diag *td, const char *text, const pp_define *defs, int n, pp_spec *s)
{
    pp_ast ast;
    int errors = pp_parse("t.pp", text, strlen(text), a, &td->diag, &ast);
    return errors ? errors : pp_spec_build(&ast, defs, n, a, &td->diag, s);
}

START_TEST(layout_setting)
{
    pp_arena a = {0};
    tu_diag td;
    pp_spec s;
    tu_diag_open(&td);
    ck_assert_int_eq(build(&a, &td, gpt_text, NULL, 0, &s), 0);
    static const int want[] = {2, 1, 2, 1};
    ck_assert_mem_eq(s.model.layers_per_stage, want, sizeof want);
    ck_assert_int_eq(s.model.balance, PP_BALANCE_LIST);
    tu_diag_close(&td);
    pp_arena_free(&a);

    static const struct {
        const char *name, *value, *err;
    } cases[] = {
        {"layout", "E|t*3|t*3|L", NULL},
        {"model.layout", "\"Et|t|t|t*3L\"", NULL},
        {"layout", "Et|tm|t|t*3L",
         "ppcc: error: -D layout=Et|tm|t|t*3L: column 5: m is Megatron's multi-token prediction layer, which ppcc "
         "does not model\n"},
        {"layout", "Et|t|t|tL", "ppcc: error: -D layout=Et|t|t|tL: 4 blocks (t), but model.layers = 6\n"},
        {"model.balance", "[1,2,2,1]",
         "t.pp:7:5: error: model.layout: give model.layout or model.balance, not both (each splits the blocks over "
         "the stages)\n"},
        {"model", "mlp", NULL}, /* checked below: only model gpt takes it */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pp_define d = {cases[i].name, cases[i].value};
        tu_diag_open(&td);
        int errors = build(&a, &td, gpt_text, &d, 1, &s);
        const char *out = tu_diag_text(&td);
        if (!strcmp(cases[i].name, "model"))
            ck_assert_msg(strstr(out, "t.pp:7:5: error: model.layout: only model gpt takes it, but model = mlp"), "%s",
                          out);
        else if (cases[i].err)
            ck_assert_msg(!strncmp(out, cases[i].err, strlen(cases[i].err)), "-D %s=%s: %s", cases[i].name,
                          cases[i].value, out);
        else
            ck_assert_msg(errors == 0 && s.model.layers_per_stage[1] + s.model.layers_per_stage[2] >= 2, "%s", out);
        tu_diag_close(&td);
        pp_arena_free(&a);
    }

    /* in the file: the caret under the character */
    char text[sizeof gpt_text + 8];
    snprintf(text, sizeof text, "%s", gpt_text);
    memcpy(strstr(text, "Ett|t|tt|tL"), "Ett|t|tm|tL", 11);
    tu_diag_open(&td);
    ck_assert_int_eq(build(&a, &td, text, NULL, 0, &s), 1);
    ck_assert_str_eq(tu_diag_text(&td), "t.pp:7:22: error: model.layout: column 8: m is Megatron's multi-token "
                                        "prediction layer, which ppcc does not model\n"
                                        "     7 |     layout = \"Ett|t|tm|tL\"\n"
                                        "       |                      ^\n");
    tu_diag_close(&td);
    pp_arena_free(&a);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("megatron");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, megatron_examples);
    tcase_add_test(tc, round_trip_every_small_split);
    tcase_add_test(tc, canonical_strings);
    tcase_add_test(tc, refusals_name_the_column);
    tcase_add_test(tc, layout_setting);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(make_suite());
}
