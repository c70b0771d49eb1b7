/*
 * test_dsl.c — the DSL front end: lexer, parser, AST, spec and -D.
 *
 * The shipped schedules resolve to the values their comments promise;
 * every key and alias can be set with -D; each bad input in
 * tests/golden/dsl/NAME.pp gives exactly the messages in NAME.err; bad -D
 * values name their key; and no prefix or byte-mutation of a shipped
 * schedule crashes the front end (run this under ASan/UBSan).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* One compilation's worth of state, released by dsl_end. */
typedef struct dsl {
    pp_arena arena;
    tu_diag diag;
    pp_ast ast;
    pp_spec spec;
    int parse_errors, spec_errors;
} dsl;

/* Parses text and, as ppcc does, builds the spec only if it parsed. */
static void dsl_run(dsl *t, const char *path, const char *text, const pp_define *defs, int ndefs)
{
    memset(t, 0, sizeof *t);
    tu_diag_open(&t->diag);
    t->parse_errors = pp_parse(path, text, strlen(text), &t->arena, &t->diag.diag, &t->ast);
    if (t->parse_errors == 0)
        t->spec_errors = pp_spec_build(&t->ast, defs, ndefs, &t->arena, &t->diag.diag, &t->spec);
}

static void dsl_end(dsl *t)
{
    tu_diag_close(&t->diag);
    pp_arena_free(&t->arena);
}

/* Runs a shipped schedule file with defs; asserts it has no error. */
static void dsl_schedule(dsl *t, const char *rel, const pp_define *defs, int ndefs)
{
    char *text = tu_read_file(tu_src_path(rel), NULL);
    ck_assert_msg(text != NULL, "missing %s", rel);
    dsl_run(t, rel, text, defs, ndefs);
    free(text);
    ck_assert_msg(t->parse_errors == 0 && t->spec_errors == 0, "%s: %s", rel, tu_diag_text(&t->diag));
}

static void assert_ints(const int *got, const int *want, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "%s[%d] = %d, want %d", what, i, got[i], want[i]);
}

/* ------------------------------------------------------------------ */
/* Lexer and parser                                                     */
/* ------------------------------------------------------------------ */

START_TEST(test_tokens)
{
    /* NUMBER before WORD: longest match decides, numbers win ties. */
    static const struct {
        const char *text;
        enum pp_value_kind kind;
        double number;
    } cases[] = {
        {"4", PP_VAL_NUMBER, 4},        {"1.5", PP_VAL_NUMBER, 1.5},   {"1e-3", PP_VAL_NUMBER, 1e-3},
        {"-2", PP_VAL_NUMBER, -2},      {"2.", PP_VAL_NUMBER, 2},      {"3E+2", PP_VAL_NUMBER, 300},
        {"1f1b", PP_VAL_WORD, 0},       {"zb-h1", PP_VAL_WORD, 0},     {"2bw", PP_VAL_WORD, 0},
        {"1.5.2", PP_VAL_WORD, 0},      {"cost.stage.3.F", PP_VAL_WORD, 0}, {"inf", PP_VAL_WORD, 0},
        {"\"a b # c\"", PP_VAL_STRING, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pp_arena a = {0};
        char err[160] = "";
        pp_value *v = pp_parse_value(cases[i].text, &a, err, sizeof err);
        ck_assert_msg(v != NULL, "%s: %s", cases[i].text, err);
        ck_assert_msg(v->kind == cases[i].kind, "%s: kind %d, want %d", cases[i].text, v->kind, cases[i].kind);
        if (v->kind == PP_VAL_NUMBER)
            ck_assert_msg(v->number == cases[i].number, "%s: %g", cases[i].text, v->number);
        else if (v->kind == PP_VAL_WORD)
            ck_assert_str_eq(v->text, cases[i].text);
        else
            ck_assert_str_eq(v->text, "a b # c");
        pp_arena_free(&a);
    }
}
END_TEST

START_TEST(test_value_errors)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"", "expected a value"},
        {"4 5", "unexpected number '5', expected end of input"},
        {"[0, 1", "unexpected end of input, expected ']' or ','"},
        {"1e999", "number out of range: '1e999'"},
        {"\"abc", "unterminated string: a '\"' is missing before the end of the line"},
        {"@", "unexpected character '@'"},
        {"x = 1", "unexpected '=', expected end of input"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pp_arena a = {0};
        char err[160] = "";
        ck_assert_msg(pp_parse_value(cases[i].text, &a, err, sizeof err) == NULL, "'%s' parsed", cases[i].text);
        ck_assert_str_eq(err, cases[i].err);
        pp_arena_free(&a);
    }
}
END_TEST

START_TEST(test_ast_shape)
{
    const char *text = "# comment\n"
                       "devices = 4   # trailing comment\n"
                       "schedule interleaved { group = 4 }\n"
                       "placement [0, [1, two], \"s\",]\n"
                       "cost { stage 3 { F = 1.5 } }\n"
                       "empty { }\n";
    pp_arena a = {0};
    tu_diag d;
    tu_diag_open(&d);
    pp_ast ast;
    ck_assert_int_eq(pp_parse("t.pp", text, strlen(text), &a, &d.diag, &ast), 0);
    ck_assert_ptr_eq(ast.src.text, text); /* kept by reference */
    ck_assert_int_eq(ast.nitems, 5);

    pp_item *dev = ast.items[0];
    ck_assert_str_eq(dev->name, "devices");
    ck_assert_uint_eq(dev->offset, strstr(text, "devices") - text);
    ck_assert(!dev->has_block);
    ck_assert_int_eq(dev->value->kind, PP_VAL_NUMBER);
    ck_assert_uint_eq(dev->value->offset, strstr(text, "4 ") - text);

    pp_item *sched = ast.items[1];
    ck_assert_str_eq(sched->value->text, "interleaved");
    ck_assert(sched->has_block);
    ck_assert_int_eq(sched->nchildren, 1);
    ck_assert_str_eq(sched->children[0]->name, "group");
    ck_assert(sched->children[0]->value->number == 4);

    pp_value *list = ast.items[2]->value;
    ck_assert_int_eq(list->kind, PP_VAL_LIST);
    ck_assert_int_eq(list->nitems, 3); /* trailing comma allowed */
    ck_assert_uint_eq(list->offset, strchr(text, '[') - text);
    ck_assert_int_eq(list->items[1]->kind, PP_VAL_LIST);
    ck_assert_str_eq(list->items[1]->items[1]->text, "two");
    ck_assert_int_eq(list->items[2]->kind, PP_VAL_STRING);

    pp_item *cost = ast.items[3];
    ck_assert(cost->has_block && cost->value == NULL);
    pp_item *stage = cost->children[0];
    ck_assert(stage->value->number == 3);
    ck_assert(stage->children[0]->value->number == 1.5);

    ck_assert(ast.items[4]->has_block);
    ck_assert_int_eq(ast.items[4]->nchildren, 0);
    tu_diag_close(&d);
    pp_arena_free(&a);
}
END_TEST

START_TEST(test_parse_file)
{
    pp_arena a = {0};
    tu_diag d;
    tu_diag_open(&d);
    pp_ast ast;
    ck_assert_int_eq(pp_parse_file(tu_src_path("schedules/1f1b.pp"), &a, &d.diag, &ast), 0);
    ck_assert_int_gt(ast.nitems, 4);
    ck_assert_int_eq(pp_parse_file("/nonexistent/x.pp", &a, &d.diag, &ast), 1);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&d), "ppcc: error: cannot open /nonexistent/x.pp: "));
    tu_diag_close(&d);
    pp_arena_free(&a);
}
END_TEST

/* ------------------------------------------------------------------ */
/* The shipped schedules                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_schedule_1f1b)
{
    for (int which = 0; which < 2; which++) {
        dsl t;
        dsl_schedule(&t, which ? "schedules/gpipe.pp" : "schedules/1f1b.pp", NULL, 0);
        const pp_spec *s = &t.spec;
        ck_assert_str_eq(s->schedule, which ? "gpipe" : "1f1b");
        ck_assert_int_eq(s->devices, 4);
        ck_assert_int_eq(s->stages, 4);
        ck_assert_int_eq(s->chunks, 1);
        ck_assert_int_eq(s->microbatches, 8);
        ck_assert_int_eq(s->group, 0);
        ck_assert_int_eq(s->placement_kind, PP_PLACE_LOOP);
        assert_ints(s->placement, (int[]){0, 1, 2, 3}, 4, "placement");
        ck_assert(s->cost.F == 1 && s->cost.B == 2 && s->cost.W == 0 && s->cost.comm == 0);
        for (int i = 0; i < 4; i++)
            ck_assert(s->cost.stage_F[i] == 1 && s->cost.stage_B[i] == 2 && s->cost.stage_W[i] == 0);
        ck_assert(s->act_size == 1 && s->mem_limit == 0);
        ck_assert_str_eq(s->model.kind, "mlp");
        ck_assert_int_eq(s->model.layers, 8);
        ck_assert_int_eq(s->model.hidden, 64);
        ck_assert_int_eq(s->model.batch, 32);
        ck_assert_str_eq(s->model.optimizer, "sgd");
        ck_assert(s->model.lr == 0.01);
        ck_assert_uint_eq(s->model.seed, 1);
        assert_ints(s->model.layers_per_stage, (int[]){2, 2, 2, 2}, 4, "layers_per_stage");
        dsl_end(&t);
    }
}
END_TEST

START_TEST(test_schedule_interleaved)
{
    dsl t;
    dsl_schedule(&t, "schedules/interleaved.pp", NULL, 0);
    const pp_spec *s = &t.spec;
    ck_assert_str_eq(s->schedule, "interleaved");
    ck_assert_int_eq(s->group, 0);
    ck_assert_int_eq(s->devices, 4);
    ck_assert_int_eq(s->chunks, 2);
    ck_assert_int_eq(s->stages, 8);
    ck_assert_int_eq(s->microbatches, 8);
    ck_assert_int_eq(s->placement_kind, PP_PLACE_LOOP);
    assert_ints(s->placement, (int[]){0, 1, 2, 3, 0, 1, 2, 3}, 8, "placement");
    ck_assert_int_eq(s->model.layers, 16);
    assert_ints(s->model.layers_per_stage, (int[]){2, 2, 2, 2, 2, 2, 2, 2}, 8, "layers_per_stage");
    ck_assert(s->cost.stage_B[7] == 2);
    dsl_end(&t);
}
END_TEST

START_TEST(test_defaults)
{
    dsl t;
    dsl_run(&t, "empty.pp", "# nothing set\n", NULL, 0);
    ck_assert_int_eq(t.parse_errors + t.spec_errors, 0);
    const pp_spec *s = &t.spec;
    ck_assert_str_eq(s->schedule, "1f1b");
    ck_assert(s->devices == 4 && s->chunks == 1 && s->stages == 4 && s->microbatches == 8 && s->group == 0);
    ck_assert(s->cost.F == 1 && s->cost.B == 1 && s->cost.W == 0 && s->cost.comm == 0);
    ck_assert(s->act_size == 1 && s->mem_limit == 0);
    ck_assert_int_eq(s->model.layers, 4); /* = stages */
    ck_assert_int_eq(s->model.batch, 32); /* = microbatches * 4 */
    ck_assert(s->model.hidden == 64 && s->model.lr == 0.01 && s->model.seed == 1);
    assert_ints(s->model.layers_per_stage, (int[]){1, 1, 1, 1}, 4, "layers_per_stage");
    ck_assert(s->overlap); /* asynchronous communication unless overlap = false */
    dsl_end(&t);
    dsl_run(&t, "sync.pp", "overlap = false\n", NULL, 0);
    ck_assert_int_eq(t.parse_errors + t.spec_errors, 0);
    ck_assert(!t.spec.overlap);
    dsl_end(&t);
    pp_define on = {"overlap", "true"};
    dsl_run(&t, "sync.pp", "overlap = 0\n", &on, 1);
    ck_assert_int_eq(t.parse_errors + t.spec_errors, 0);
    ck_assert(t.spec.overlap);
    dsl_end(&t);
}
END_TEST

START_TEST(test_resolution)
{
    dsl t;
    /* Uneven split: earlier stages take the extra layers. */
    dsl_run(&t, "t.pp", "model mlp { layers = 10 }", NULL, 0);
    assert_ints(t.spec.model.layers_per_stage, (int[]){3, 3, 2, 2}, 4, "layers_per_stage");
    dsl_end(&t);

    /* A balance defines layers when they are not given. */
    dsl_run(&t, "t.pp", "model mlp { balance = [1, 3, 2, 2] }", NULL, 0);
    ck_assert_int_eq(t.spec_errors, 0);
    ck_assert_int_eq(t.spec.model.layers, 8);
    assert_ints(t.spec.model.layers_per_stage, (int[]){1, 3, 2, 2}, 4, "layers_per_stage");
    dsl_end(&t);

    /* vshape: s < D on s, else on 2D-1-s. */
    dsl_run(&t, "t.pp", "devices = 4 virtual = 2 placement = vshape", NULL, 0);
    ck_assert_int_eq(t.spec_errors, 0);
    ck_assert_int_eq(t.spec.placement_kind, PP_PLACE_VSHAPE);
    assert_ints(t.spec.placement, (int[]){0, 1, 2, 3, 3, 2, 1, 0}, 8, "placement");
    dsl_end(&t);

    dsl_run(&t, "t.pp", "pipeline { devices = 2 virtual = 2 placement = [1, 0, 0, 1] stages = 4 }", NULL, 0);
    ck_assert_int_eq(t.spec_errors, 0);
    ck_assert_int_eq(t.spec.placement_kind, PP_PLACE_LIST);
    assert_ints(t.spec.placement, (int[]){1, 0, 0, 1}, 4, "placement");
    dsl_end(&t);

    /* Per-stage costs: block and dotted forms, defaults elsewhere. */
    dsl_run(&t, "t.pp",
            "cost { F = 2 B = 3 W = 0.5 comm = 0.25 stage 1 { F = 4 } stage.2 { W = 7 } }\n"
            "cost.stage.3.B = 9\n",
            NULL, 0);
    ck_assert_int_eq(t.spec_errors, 0);
    const pp_cost *c = &t.spec.cost;
    ck_assert(c->F == 2 && c->B == 3 && c->W == 0.5 && c->comm == 0.25);
    ck_assert(c->stage_F[0] == 2 && c->stage_F[1] == 4 && c->stage_F[2] == 2);
    ck_assert(c->stage_W[2] == 7 && c->stage_W[1] == 0.5);
    ck_assert(c->stage_B[3] == 9 && c->stage_B[0] == 3);
    dsl_end(&t);

    /* NAME VALUE is NAME = VALUE; memory block. */
    dsl_run(&t, "t.pp", "devices 2 memory { activation = 2.5 limit = 10 }", NULL, 0);
    ck_assert_int_eq(t.spec_errors, 0);
    ck_assert(t.spec.devices == 2 && t.spec.act_size == 2.5 && t.spec.mem_limit == 10);
    dsl_end(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* -D                                                                   */
/* ------------------------------------------------------------------ */

/* The spec of 1f1b.pp with one -D; asserts it is accepted. */
static void with_define(dsl *t, const char *name, const char *value)
{
    pp_define def = {name, value};
    dsl_schedule(t, "schedules/1f1b.pp", &def, 1);
}

START_TEST(test_define_every_key)
{
    static const struct {
        const char *name, *value;
        enum { DEV, VIRT, STAGES, MB, SCHED, GROUP, PLACE0, CF, CB, CW, COMM, ST2F, ST1B, ST3W, ACT, LIMIT, KIND,
               LAYERS, HIDDEN, BATCH, OPT, LR, SEED, BAL1 } field;
        double want;
        const char *want_text;
    } cases[] = {
        {"devices", "2", DEV, 2, NULL},
        {"pipeline.devices", "1", DEV, 1, NULL},
        {"virtual", "2", VIRT, 2, NULL},
        {"stages", "4", STAGES, 4, NULL},
        {"microbatches", "16", MB, 16, NULL},
        {"schedule", "zb-h1", SCHED, 0, "zb-h1"},
        {"schedule.group", "2", GROUP, 2, NULL},
        {"placement", "[3,2,1,0]", PLACE0, 3, NULL},
        {"cost.F", "1.5", CF, 1.5, NULL},
        {"cost.B", "3", CB, 3, NULL},
        {"cost.W", "0.75", CW, 0.75, NULL},
        {"cost.comm", "0.1", COMM, 0.1, NULL},
        {"cost.stage.2.F", "5", ST2F, 5, NULL},
        {"cost.stage.1.B", "6", ST1B, 6, NULL},
        {"cost.stage.3.W", "7", ST3W, 7, NULL},
        {"memory.activation", "2", ACT, 2, NULL},
        {"memory.limit", "12", LIMIT, 12, NULL},
        {"model", "mlp", KIND, 0, "mlp"},
        {"model.layers", "12", LAYERS, 12, NULL},
        {"layers", "16", LAYERS, 16, NULL},
        {"model.hidden", "128", HIDDEN, 128, NULL},
        {"hidden", "32", HIDDEN, 32, NULL},
        {"model.batch", "64", BATCH, 64, NULL},
        {"batch", "16", BATCH, 16, NULL},
        {"model.optimizer", "sgd", OPT, 0, "sgd"},
        {"model.lr", "0.5", LR, 0.5, NULL},
        {"lr", "1e-3", LR, 1e-3, NULL},
        {"model.seed", "42", SEED, 42, NULL},
        {"seed", "0", SEED, 0, NULL},
        {"model.balance", "[1, 5, 1, 1]", BAL1, 5, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dsl t;
        with_define(&t, cases[i].name, cases[i].value);
        const pp_spec *s = &t.spec;
        double got = NAN;
        const char *got_text = NULL;
        switch (cases[i].field) {
        case DEV: got = s->devices; break;
        case VIRT: got = s->chunks; break;
        case STAGES: got = s->stages; break;
        case MB: got = s->microbatches; break;
        case SCHED: got_text = s->schedule; break;
        case GROUP: got = s->group; break;
        case PLACE0: got = s->placement[0]; break;
        case CF: got = s->cost.stage_F[3]; break;
        case CB: got = s->cost.stage_B[0]; break;
        case CW: got = s->cost.stage_W[1]; break;
        case COMM: got = s->cost.comm; break;
        case ST2F: got = s->cost.stage_F[2] + 100 * (s->cost.stage_F[1] - 1); break;
        case ST1B: got = s->cost.stage_B[1] + 100 * (s->cost.stage_B[0] - 2); break;
        case ST3W: got = s->cost.stage_W[3]; break;
        case ACT: got = s->act_size; break;
        case LIMIT: got = s->mem_limit; break;
        case KIND: got_text = s->model.kind; break;
        case LAYERS: got = s->model.layers; break;
        case HIDDEN: got = s->model.hidden; break;
        case BATCH: got = s->model.batch; break;
        case OPT: got_text = s->model.optimizer; break;
        case LR: got = s->model.lr; break;
        case SEED: got = (double)s->model.seed; break;
        case BAL1: got = s->model.layers_per_stage[1]; break;
        }
        if (cases[i].want_text)
            ck_assert_msg(got_text && !strcmp(got_text, cases[i].want_text), "-D %s=%s: got %s", cases[i].name,
                          cases[i].value, got_text ? got_text : "(null)");
        else
            ck_assert_msg(got == cases[i].want, "-D %s=%s: got %g, want %g", cases[i].name, cases[i].value, got,
                          cases[i].want);
        dsl_end(&t);
    }
}
END_TEST

START_TEST(test_define_interplay)
{
    /* Defines apply in order; the last one wins. */
    pp_define two[] = {{"microbatches", "4"}, {"microbatches", "16"}};
    dsl t;
    dsl_schedule(&t, "schedules/1f1b.pp", two, 2);
    ck_assert_int_eq(t.spec.microbatches, 16);
    dsl_end(&t);

    /* stages is derived: devices=8 on devices=4 virtual=2 gives 16. */
    pp_define dev8 = {"devices", "8"};
    dsl_schedule(&t, "schedules/interleaved.pp", &dev8, 1);
    ck_assert_int_eq(t.spec.devices, 8);
    ck_assert_int_eq(t.spec.stages, 16);
    ck_assert_int_eq(t.spec.model.layers, 16);
    assert_ints(t.spec.placement, (int[]){0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7}, 16, "placement");
    dsl_end(&t);

    /* ...but an explicit stages in the file must still agree. */
    dsl_run(&t, "t.pp", "devices = 4\nvirtual = 2\nstages = 8\n", &dev8, 1);
    ck_assert_int_eq(t.spec_errors, 1);
    ck_assert_str_eq(tu_diag_text(&t.diag), "t.pp:3:1: error: stages: 8 stages do not match devices * virtual = "
                                            "8 * 2 = 16\n"
                                            "     3 | stages = 8\n"
                                            "       | ^\n");
    dsl_end(&t);

    /* A -D replaces a file setting without a duplicate error, and a
     * microbatches change is checked against the file's batch. */
    pp_define mb = {"microbatches", "3"};
    dsl_run(&t, "t.pp", "microbatches = 8\nmodel mlp { batch = 32 }\n", &mb, 1);
    ck_assert_int_eq(t.spec_errors, 1);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&t.diag), "model.batch: 32 is not a multiple of microbatches = 3"));
    dsl_end(&t);

    /* The stage limit applies to the product. */
    pp_define big[] = {{"devices", "1024"}, {"virtual", "16"}};
    dsl_run(&t, "t.pp", "", big, 2);
    ck_assert_int_eq(t.spec_errors, 1);
    ck_assert_str_eq(tu_diag_text(&t.diag), "ppcc: error: -D virtual=16: devices * virtual = 1024 * 16 = 16384 "
                                            "stages, more than the limit of 8192\n");
    dsl_end(&t);
}
END_TEST

START_TEST(test_define_errors)
{
    static const struct {
        const char *name, *value, *msg;
    } cases[] = {
        {"devices", "abc", "-D devices=abc: expected an integer"},
        {"devices", "4.5", "-D devices=4.5: expected an integer"},
        {"devices", "0", "-D devices=0: must be between 1 and 1024"},
        {"devices", "", "-D devices=: expected a value"},
        {"devices", "4 5", "-D devices=4 5: unexpected number '5', expected end of input"},
        {"devices", "1e999", "-D devices=1e999: number out of range: '1e999'"},
        {"foo", "1", "-D foo=1: unknown setting 'foo'"},
        {"devcies", "8", "-D devcies=8: unknown setting 'devcies'; did you mean 'devices'?"},
        {"cost", "1", "-D cost=1: 'cost' is a block; set one of its keys, such as cost.F"},
        {"cost.stage.9.F", "1", "-D cost.stage.9.F=1: stage 9 does not exist (stages are 0..3)"},
        {"cost.stage.1.X", "1", "-D cost.stage.1.X=1: unknown setting 'cost.stage.1.X'"},
        {"cost.B", "-1", "-D cost.B=-1: must not be negative"},
        {"lr", "0", "-D lr=0: must be greater than 0"},
        {"layers", "2", "-D layers=2: 2 layers cannot fill 4 stages (each stage needs at least one layer)"},
        {"hidden", "x", "-D hidden=x: expected an integer"},
        {"batch", "30", "-D batch=30: 30 is not a multiple of microbatches = 8 (each micro-batch takes batch / "
                        "microbatches rows)"},
        {"seed", "-1", "-D seed=-1: must be at least 0"},
        {"stages", "8", "-D stages=8: 8 stages do not match devices * virtual = 4 * 1 = 4; for 2 stages per device "
                        "set virtual = 2"},
        {"virtual", "65", "-D virtual=65: must be between 1 and 64"},
        {"schedule", "3", "-D schedule=3: expected a name"},
        {"schedule.group", "0", "-D schedule.group=0: must be between 1 and 1048576"},
        {"overlap", "yes", "-D overlap=yes: expected true or false"},
        {"overlap", "2", "-D overlap=2: must be between 0 and 1"},
        {"placement", "vshape", "-D placement=vshape: vshape needs virtual = 2 (two stages per device), but "
                                "virtual = 1"},
        {"placement", "[0,1", "-D placement=[0,1: unexpected end of input, expected ']' or ','"},
        {"placement", "[0,1,1,0]", "-D placement=[0,1,1,0]: device 0 holds 2 stages, but every device must hold "
                                   "stages / devices = 1"},
        {"placement", "[0,1,2,9]", "-D placement=[0,1,2,9]: entry 3 (stage 3): expected a device 0..3, got '9'"},
        {"model", "cnn", "-D model=cnn: unknown model kind (mlp or gpt)"},
        {"model.optimizer", "adam", "-D model.optimizer=adam: unknown optimizer (sgd or adamw)"},
        {"model.balance", "[1,1]", "-D model.balance=[1,1]: expected 4 layer counts (one per stage), got 2"},
        {"model.balance", "best", "-D model.balance=best: expected a list of layer counts or a rule: even, parameters, compute or auto"},
        {"layer_costs.block.F", "2", "-D layer_costs.block.F=2: the layers are listed in the file (layer_costs { ... }), not by -D"},
        {"microbatches.bubble", "1.5", "-D microbatches.bubble=1.5: must be below 1: a bubble is a fraction (0.1 is 10%), got 1.5"},
        {"memory.limit", "big", "-D memory.limit=big: expected a number, or a size such as 80GB (B, KB, MB, GB, KiB, MiB, GiB)"},
        {"memory.limit", "80Gb", "-D memory.limit=80Gb: unknown unit 'Gb' (B, KB, MB, GB, KiB, MiB, GiB)"},
        /* Found by hand (docs/fuzzing.md): a negative size was a number and
         * a stray unit. */
        {"memory.limit", "-5GB", "-D memory.limit=-5GB: must not be negative"},
        {"hardware.memory", "-80GB", "-D hardware.memory=-80GB: must not be negative"},
        {"memory.limit", "-0.5GiB", "-D memory.limit=-0.5GiB: must not be negative"},
        /* Found by tools/fuzz: a range with a huge maximum named the minimum
         * when the maximum was crossed; costs whose sums overflow made lowering
         * report a deadlock that is not there. */
        {"batch", "2147483647", "-D batch=2147483647: must be between 1 and 16777216"},
        {"seed", "9007199254740992", "-D seed=9007199254740992: must be at most 9007199254740991"},
        {"cost.F", "1e308", "-D cost.F=1e308: must be at most 1e+15"},
        {"cost.stage.1.B", "1e300", "-D cost.stage.1.B=1e300: must be at most 1e+15"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pp_define def = {cases[i].name, cases[i].value};
        char *text = tu_read_file(tu_src_path("schedules/1f1b.pp"), NULL);
        dsl t;
        dsl_run(&t, "schedules/1f1b.pp", text, &def, 1);
        free(text);
        char want[512];
        snprintf(want, sizeof want, "ppcc: error: %s\n", cases[i].msg);
        ck_assert_msg(t.spec_errors >= 1, "-D %s=%s accepted", cases[i].name, cases[i].value);
        ck_assert_msg(strncmp(tu_diag_text(&t.diag), want, strlen(want)) == 0, "-D %s=%s:\n  got:  %s  want: %s",
                      cases[i].name, cases[i].value, tu_diag_text(&t.diag), want);
        dsl_end(&t);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Golden error messages                                                */
/* ------------------------------------------------------------------ */

static const char *const golden_cases[] = {
    /* syntax and lexical */
    "missing_equals", "missing_value", "unclosed_block", "stray_brace", "bad_char", "unterminated_string",
    "huge_number", "several_syntax",
    /* meaning */
    "unknown_key", "bad_type", "out_of_range", "duplicate", "stages_mismatch", "stages_hint", "batch_multiple",
    "balance_sum", "balance_length", "balance_entry", "vshape_virtual", "placement_range", "placement_count",
    "placement_length", "too_few_layers", "block_value_mixup", "model_kind", "too_many_errors",
    /* model gpt */
    "gpt_heads", "gpt_fill", "gpt_balance_middle", "gpt_batch", "gpt_absurd", "gpt_sizes", "gpt_wrong_model",
    "gpt_sgd_betas", "gpt_layout_mtp", "gpt_layout_stages",
    /* hardware and units */
    "hw_preset", "hw_fields", "hw_no_preset", "hw_mlp", "hw_costs", "mem_units", "mem_unknown_unit", "mem_negative",
    /* layers (docs/costs.md) */
    "layer_costs_errors", "layer_costs_fill", "layer_costs_count", "balance_rule",
    /* found by tools/fuzz */
    "cost_overflow", "deep_nesting",
};

START_TEST(test_golden_errors)
{
    const char *name = golden_cases[_i];
    char rel[256], err_rel[256];
    snprintf(rel, sizeof rel, "tests/golden/dsl/%s.pp", name);
    snprintf(err_rel, sizeof err_rel, "tests/golden/dsl/%s.err", name);
    char *text = tu_read_file(tu_src_path(rel), NULL);
    ck_assert_msg(text != NULL, "missing %s", rel);
    dsl t;
    dsl_run(&t, rel, text, NULL, 0);
    free(text);
    const char *out = tu_diag_text(&t.diag);
    int errors = t.parse_errors + t.spec_errors;
    ck_assert_msg(errors > 0, "%s: no error reported", name);
    /* The count returned is the count printed (up to the cap). */
    int printed = 0;
    for (const char *p = out; (p = strstr(p, ": error: ")) != NULL; p++)
        printed++;
    ck_assert_int_eq(printed, errors < 20 ? errors : 20);
    tu_check_golden(out, err_rel);
    dsl_end(&t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Robustness                                                           */
/* ------------------------------------------------------------------ */

/* Parse + spec of len bytes of text; either errors or a spec whose
 * arrays and values hold together. */
static void survive(const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    memcpy(copy, text, len);
    copy[len] = '\0';
    pp_arena a = {0};
    FILE *null = fopen("/dev/null", "w");
    pp_diag d;
    pp_diag_init(&d, null, "ppcc");
    pp_ast ast;
    pp_spec s;
    int errors = pp_parse("fuzz.pp", copy, len, &a, &d, &ast);
    /* Also build the spec from a tree that had errors: recovery must
     * still leave a well-formed tree. */
    errors += pp_spec_build(&ast, NULL, 0, &a, &d, &s);
    ck_assert_int_eq(errors, d.errors);
    if (errors == 0) {
        ck_assert(s.devices >= 1 && s.stages == s.devices * s.chunks && s.microbatches >= 1);
        ck_assert(s.model.batch % s.microbatches == 0);
        int layers = 0;
        for (int i = 0; i < s.stages; i++) {
            ck_assert(s.placement[i] >= 0 && s.placement[i] < s.devices);
            ck_assert(s.cost.stage_F[i] >= 0 && s.cost.stage_B[i] >= 0 && s.cost.stage_W[i] >= 0);
            ck_assert(s.model.layers_per_stage[i] >= 1);
            layers += s.model.layers_per_stage[i];
        }
        ck_assert_int_eq(layers, s.model.layers);
    }
    fclose(null);
    pp_arena_free(&a);
    free(copy);
}

START_TEST(test_fuzz_shipped)
{
    static const char *const files[] = {"schedules/1f1b.pp", "schedules/gpipe.pp", "schedules/interleaved.pp"};
    static const char bytes[] = {'{', '}', '[', ']', '=', ',', '"', '#', '\n', ' ', '-', '.', '9', 'x', '\0', '\xff'};
    unsigned seed = 12345;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t len;
        char *text = tu_read_file(tu_src_path(files[f]), &len);
        ck_assert(text != NULL);
        for (size_t n = 0; n <= len; n++)
            survive(text, n);
        char *mut = malloc(len + 1);
        for (int round = 0; round < 400; round++) {
            memcpy(mut, text, len + 1);
            for (int k = 0; k < 1 + round % 4; k++) {
                seed = seed * 1103515245u + 12345u;
                size_t at = (seed >> 8) % len;
                seed = seed * 1103515245u + 12345u;
                mut[at] = bytes[(seed >> 8) % sizeof bytes];
            }
            survive(mut, len);
        }
        free(mut);
        free(text);
    }
}
END_TEST

START_TEST(test_limits)
{
    /* Many errors: the diag caps what it prints, counting goes on. */
    size_t n = 60 * 8;
    char *text = malloc(n + 1);
    for (size_t i = 0; i < n; i += 8)
        memcpy(text + i, "q = 1\n\n\n", 8);
    text[n] = '\0';
    dsl t;
    dsl_run(&t, "many.pp", text, NULL, 0);
    ck_assert_int_eq(t.spec_errors, 60);
    ck_assert_ptr_nonnull(strstr(tu_diag_text(&t.diag), "ppcc: too many errors, giving up on the rest\n"));
    dsl_end(&t);
    free(text);

    /* Nesting far deeper than the parser's stack: an error, no crash. */
    n = 40000 * 2;
    text = malloc(n + 1);
    for (size_t i = 0; i < n; i += 2)
        memcpy(text + i, "a{", 2);
    text[n] = '\0';
    dsl_run(&t, "deep.pp", text, NULL, 0);
    ck_assert_int_ge(t.parse_errors, 1);
    dsl_end(&t);
    free(text);

    /* NUL bytes make a binary file: one error at the first, not one each. */
    pp_arena a = {0};
    tu_diag d;
    tu_diag_open(&d);
    pp_ast ast;
    ck_assert_int_eq(pp_parse("nul.pp", "devices = 4\0\0 \0", 15, &a, &d.diag, &ast), 1);
    ck_assert_str_eq(tu_diag_text(&d), "nul.pp:1:12: error: NUL byte: a schedule file is text (3 NUL bytes, the "
                                       "first here)\n"
                                       "     1 | devices = 4?? ?\n"
                                       "       |            ^\n");
    tu_diag_close(&d);
    pp_arena_free(&a);
}
END_TEST

/* The diag's text for a parse of text (errors expected). */
static char *parse_errors(const char *path, const char *text, size_t len)
{
    pp_arena a = {0};
    tu_diag d;
    tu_diag_open(&d);
    pp_ast ast;
    ck_assert_int_ge(pp_parse(path, text, len, &a, &d.diag, &ast), 1);
    char *out = strdup(tu_diag_text(&d));
    tu_diag_close(&d);
    pp_arena_free(&a);
    return out;
}

START_TEST(test_line_ends)
{
    /* CR alone (old Mac editors) and CRLF (Windows) end lines as LF does:
     * a comment stops there, and lines are counted by them. */
    static const char *const texts[] = {
        "# shape\rdevices = 2\rschedule gpipe # policy\rmicrobatches = 3\r",
        "# shape\r\ndevices = 2\r\nschedule gpipe # policy\r\nmicrobatches = 3\r\n",
    };
    for (int i = 0; i < 2; i++) {
        dsl t;
        dsl_run(&t, "t.pp", texts[i], NULL, 0);
        ck_assert_msg(t.parse_errors + t.spec_errors == 0, "%s", tu_diag_text(&t.diag));
        ck_assert_str_eq(t.spec.schedule, "gpipe");
        ck_assert_int_eq(t.spec.devices, 2);
        ck_assert_int_eq(t.spec.microbatches, 3);
        dsl_end(&t);
    }
    static const struct {
        const char *text, *want;
    } errs[] = {
        {"devices = 4\r# c\rmicrobatches = = 8\rx = 1\r",
         "t.pp:3:16: error: unexpected '=', expected a value\n     3 | microbatches = = 8\n       |                ^\n"},
        {"devices = 4\r\n\r\nmicrobatches = = 8\r\n",
         "t.pp:3:16: error: unexpected '=', expected a value\n     3 | microbatches = = 8\n       |                ^\n"},
        /* A string ends at a CR too. */
        {"a = \"x\ry = 1\r",
         "t.pp:1:5: error: unterminated string: a '\"' is missing before the end of the line\n     1 | a = \"x\n"
         "       |     ^\n"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        char *out = parse_errors("t.pp", errs[i].text, strlen(errs[i].text));
        ck_assert_str_eq(out, errs[i].want);
        free(out);
    }
}
END_TEST

START_TEST(test_byte_order_mark)
{
    /* A UTF-8 BOM is not part of the text: columns count from after it. */
    dsl t;
    dsl_run(&t, "t.pp", "\xef\xbb\xbf" "devices = 2\n", NULL, 0);
    ck_assert_msg(t.parse_errors + t.spec_errors == 0, "%s", tu_diag_text(&t.diag));
    ck_assert_int_eq(t.spec.devices, 2);
    dsl_end(&t);
    const char *bad = "\xef\xbb\xbf" "devices = = 2\n";
    char *out = parse_errors("t.pp", bad, strlen(bad));
    ck_assert_str_eq(out, "t.pp:1:11: error: unexpected '=', expected a value\n     1 | devices = = 2\n"
                          "       |           ^\n");
    free(out);
}
END_TEST

/* The echoed line and the caret line that follow a located error. */
static void echo_of(const char *text, size_t len, char *line, char *caret, size_t size)
{
    char *out = parse_errors("t.pp", text, len);
    char *nl1 = strchr(out, '\n'), *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL, *nl3 = nl2 ? strchr(nl2 + 1, '\n') : NULL;
    ck_assert_ptr_nonnull(nl3);
    snprintf(line, size, "%.*s", (int)(nl2 - nl1 - 1), nl1 + 1);
    snprintf(caret, size, "%.*s", (int)(nl3 - nl2 - 1), nl2 + 1);
    free(out);
}

START_TEST(test_echo_is_clipped)
{
    /* An error on a long line echoes a window around the caret, not the
     * line: 20 errors on a 4 MB line print kilobytes, not 80 MB. */
    size_t n = 4u << 20;
    char *text = malloc(n + 1);
    memset(text, 'y', n);
    memcpy(text, "a = ", 4);
    for (int k = 0; k < 30; k++)
        text[1000 + (size_t)k * 100000] = '@';
    text[n] = '\0';
    char *out = parse_errors("t.pp", text, n);
    ck_assert_msg(strlen(out) < 20 * 400, "%zu bytes of errors", strlen(out));
    free(out);

    /* Wherever the caret is, it stands under the character it names, and
     * "..." marks each side where the line goes on. */
    static const size_t at[] = {4, 30, 1000, 2000000, 4194300, 4194303};
    char line[512], caret[512];
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        memset(text + 4, 'y', n - 4);
        text[at[i]] = '@';
        echo_of(text, n, line, caret, sizeof line);
        size_t col = strlen(caret) - 1;
        ck_assert_msg(caret[col] == '^' && line[col] == '@', "at %zu:\n%s\n%s", at[i], line, caret);
        ck_assert_msg(strlen(line) <= 9 + 3 + 100 + 3, "at %zu: %zu columns", at[i], strlen(line));
        ck_assert_int_eq(strncmp(line + 9, "...", 3) == 0, at[i] > 50);
        ck_assert_int_eq(strcmp(line + strlen(line) - 3, "...") == 0, at[i] < n - 51);
    }
    free(text);

    /* UTF-8 characters take one column each, a tab stays a tab, so the
     * caret lines up in a terminal; other control characters print as '?'
     * (here the ESC the error is about). */
    const char *u = "a = \"\xc3\xa9t\xc3\xa9\"\t\x1b @\n";
    echo_of(u, strlen(u), line, caret, sizeof line);
    ck_assert_str_eq(line, "     1 | a = \"\xc3\xa9t\xc3\xa9\"\t? @");
    ck_assert_str_eq(caret, "       |          \t^");
    /* Clipping never cuts a character in two. */
    size_t m = 5 + 300 * 2 + 3;
    char *wide = malloc(m + 1);
    memcpy(wide, "a = \"", 5);
    for (size_t i = 5; i < 5 + 600; i += 2)
        memcpy(wide + i, "\xc3\xa9", 2);
    memcpy(wide + 605, "\" @", 3);
    wide[m] = '\0';
    char *all = parse_errors("t.pp", wide, m);
    ck_assert_ptr_nonnull(strstr(all, "t.pp:1:308: error: unexpected character '@'"));
    echo_of(wide, m, line, caret, sizeof line);
    ck_assert_int_eq(strncmp(line, "     1 | ...\xc3\xa9", 14), 0);
    ck_assert_str_eq(line + strlen(line) - 3, "\" @");
    ck_assert_int_eq(strlen(caret), 9 + 3 + 99 + 1);
    free(all);
    free(wide);
}
END_TEST

START_TEST(test_unknown_policy_is_located)
{
    dsl t;
    dsl_run(&t, "t.pp", "devices = 2\nschedule 1f1c\n", NULL, 0);
    ck_assert_int_eq(t.spec_errors, 1);
    ck_assert_str_eq(tu_diag_text(&t.diag), "t.pp:2:10: error: schedule: unknown policy '1f1c'; did you mean 1f1b? "
                                            "(ppcc --list-policies lists them)\n"
                                            "     2 | schedule 1f1c\n"
                                            "       |          ^\n");
    dsl_end(&t);
    pp_define def = {"schedule", "ZBV"};
    dsl_run(&t, "t.pp", "devices = 2\n", &def, 1);
    ck_assert_str_eq(tu_diag_text(&t.diag), "ppcc: error: -D schedule=ZBV: unknown policy 'ZBV'; did you mean zbv? "
                                            "(ppcc --list-policies lists them)\n");
    dsl_end(&t);
}
END_TEST

START_TEST(test_model_limits)
{
    /* The model's limits are pprun's (pp.h): refused here, at the key. */
    char big[32], rows[32];
    snprintf(big, sizeof big, "%d", PP_MAX_BATCH + 8);
    snprintf(rows, sizeof rows, "%d", PP_MAX_BATCH);
    static const struct {
        const char *text;
        pp_define def[3];
        int ndefs;
        const char *want;
    } cases[] = {
        {"model mlp { hidden = 65536 }\n", {{0}}, 0,
         "t.pp:1:13: error: model.hidden: 4 layers of 65536 x 65536 weights are 17179869184 floats, more than pprun "
         "holds (2147483648)\n"},
        {"devices = 1\n", {{"hidden", "46341"}, {"layers", "1"}}, 2,
         "ppcc: error: -D hidden=46341: 1 layer of 46341 x 46341 weights are 2147488281 floats, more than pprun "
         "holds (2147483648)\n"},
        {"devices = 1\nmicrobatches = 1\n", {{"hidden", "128"}, {"batch", NULL}}, 2,
         "ppcc: error: -D batch=16777216: a micro-batch of 16777216 rows x 128 is 2147483648 floats, more than "
         "pprun holds (1073741824)\n"},
        {"devices = 1\n", {{"batch", NULL}}, 1, "ppcc: error: -D batch=16777224: must be between 1 and 16777216\n"},
        {"model mlp { layers = 65537 }\n", {{0}}, 0, "t.pp:1:22: error: model.layers: must be between 1 and 65536"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pp_define defs[3];
        memcpy(defs, cases[i].def, sizeof defs);
        for (int k = 0; k < cases[i].ndefs; k++)
            if (!defs[k].value)
                defs[k].value = i == 2 ? rows : big;
        dsl t;
        dsl_run(&t, "t.pp", cases[i].text, defs, cases[i].ndefs);
        ck_assert_int_eq(t.spec_errors, 1);
        ck_assert_msg(strncmp(tu_diag_text(&t.diag), cases[i].want, strlen(cases[i].want)) == 0, "got:  %s\nwant: %s",
                      tu_diag_text(&t.diag), cases[i].want);
        dsl_end(&t);
    }
    /* At the bounds themselves: accepted. */
    pp_define ok[] = {{"hidden", "46340"}, {"layers", "1"}, {"batch", "16384"}};
    dsl t;
    dsl_run(&t, "t.pp", "devices = 1\nmicrobatches = 1\n", ok, 3);
    ck_assert_msg(t.spec_errors == 0, "%s", tu_diag_text(&t.diag));
    dsl_end(&t);
}
END_TEST

static Suite *dsl_suite(void)
{
    Suite *s = suite_create("dsl");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_tokens);
    tcase_add_test(tc, test_value_errors);
    tcase_add_test(tc, test_ast_shape);
    tcase_add_test(tc, test_parse_file);
    tcase_add_test(tc, test_line_ends);
    tcase_add_test(tc, test_byte_order_mark);
    tcase_add_test(tc, test_echo_is_clipped);
    suite_add_tcase(s, tc);

    tc = tcase_create("spec");
    tcase_add_test(tc, test_schedule_1f1b);
    tcase_add_test(tc, test_schedule_interleaved);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_resolution);
    tcase_add_test(tc, test_define_every_key);
    tcase_add_test(tc, test_define_interplay);
    tcase_add_test(tc, test_define_errors);
    tcase_add_test(tc, test_unknown_policy_is_located);
    tcase_add_test(tc, test_model_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_loop_test(tc, test_golden_errors, 0, (int)(sizeof golden_cases / sizeof golden_cases[0]));
    suite_add_tcase(s, tc);

    tc = tcase_create("robustness");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_fuzz_shipped);
    tcase_add_test(tc, test_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(dsl_suite()); }
