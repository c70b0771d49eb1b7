/*
 * test_ops.c — the op table, op formatting, the arena and diagnostics.
 */
#include <string.h>

#include "test_util.h"

START_TEST(op_names_round_trip)
{
    for (int k = 0; k < PP_OP__COUNT; k++)
        ck_assert_int_eq(pp_op_from_name(pp_op_name(k)), k);
    ck_assert_int_eq(pp_op_from_name("f"), -1); /* case matters */
    ck_assert_int_eq(pp_op_from_name("nope"), -1);
    ck_assert(pp_op_is_compute(PP_OP_F) && pp_op_is_compute(PP_OP_W));
    ck_assert(!pp_op_is_compute(PP_OP_SEND) && !pp_op_is_compute(PP_OP_FLUSH));
    ck_assert(!pp_op_is_compute(-1) && !pp_op_is_compute(PP_OP__COUNT));
    ck_assert_int_eq(pp_comm_from_name("grad"), PP_COMM_GRAD);
    ck_assert_int_eq(pp_comm_from_name("act"), PP_COMM_ACT);
    ck_assert_int_eq(pp_comm_from_name("ACT"), -1);
}
END_TEST

START_TEST(op_format)
{
    char buf[64];
    pp_op f = {.kind = PP_OP_B, .stage = 3, .mb = 5, .peer = -1, .group = -1};
    ck_assert_str_eq(pp_op_format(&f, buf, sizeof buf), "B3.5");
    pp_op s = {.kind = PP_OP_SEND, .comm = PP_COMM_GRAD, .stage = 2, .mb = 0, .peer = 1};
    ck_assert_str_eq(pp_op_format(&s, buf, sizeof buf), "send grad 2.0 to 1");
    pp_op r = {.kind = PP_OP_RECV, .comm = PP_COMM_ACT, .stage = 0, .mb = 7, .peer = 0};
    ck_assert_str_eq(pp_op_format(&r, buf, sizeof buf), "recv act 0.7 from 0");
    pp_op u = {.kind = PP_OP_UPDATE, .stage = -1, .mb = -1};
    ck_assert_str_eq(pp_op_format(&u, buf, sizeof buf), "update");
    /* plan version 2: the new kind keeps the older kinds' numbers */
    pp_op w = {.kind = PP_OP_WAIT, .stage = -1, .mb = -1, .peer = -1, .group = 4};
    ck_assert_str_eq(pp_op_format(&w, buf, sizeof buf), "wait #4");
    ck_assert_int_eq(PP_OP_WAIT, PP_OP__COUNT - 1);
    ck_assert_int_eq(PP_OP_ALLREDUCE, 8);
    ck_assert(!pp_op_is_compute(PP_OP_WAIT) && !pp_op_is_comm(PP_OP_WAIT));
}
END_TEST

/* A collective names its plan-level group through an existing field: an
 * op stays 20 bytes.  Groups are found again by (what, ranks); the tied
 * allreduce goes right before each member's update, and nowhere when one
 * device holds both ends. */
START_TEST(op_collectives)
{
    ck_assert_uint_eq(sizeof(pp_op), 20);
    ck_assert_str_eq(pp_op_name(PP_OP_ALLREDUCE), "allreduce");
    ck_assert(!pp_op_is_compute(PP_OP_ALLREDUCE) && !pp_op_is_comm(PP_OP_ALLREDUCE));
    ck_assert_int_eq(pp_coll_what_from_name("tied"), PP_COLL_TIED);
    ck_assert_int_eq(pp_coll_what_from_name("Tied"), -1);
    ck_assert_str_eq(pp_coll_what_name(PP_COLL__COUNT), "?");
    char buf[64];
    pp_op a = {.kind = PP_OP_ALLREDUCE, .stage = -1, .mb = -1, .peer = 0, .group = -1};
    ck_assert_str_eq(pp_op_format(&a, buf, sizeof buf), "allreduce #0");

    int place[4] = {0, 1, 2, 3};
    pp_plan p;
    ck_assert_int_eq(pp_plan_init(&p, "t", 4, 4, 1, place), 0);
    int pair[2];
    ck_assert(pp_tied_pair(place, 4, pair));
    ck_assert_int_eq(pair[0], 0);
    ck_assert_int_eq(pair[1], 3);
    for (int d = 0; d < 4; d++) {
        pp_plan_push(&p, d, (pp_op){.kind = PP_OP_F, .stage = d, .mb = 0, .peer = -1, .group = -1});
    }
    pp_policy_finish(&p);
    ck_assert_int_eq(pp_plan_add_tied(&p, 64), 0);
    ck_assert_int_eq(p.ncoll, 1);
    ck_assert_int_eq(pp_plan_coll(&p, PP_COLL_TIED, pair, 2, 0), 0); /* the same group */
    ck_assert_double_eq(p.coll[0].bytes, 64);
    for (int d = 0; d < 4; d++) {
        bool member = d == 0 || d == 3;
        ck_assert_int_eq(p.dev[d].n, member ? 4 : 3);
        if (!member)
            continue;
        const pp_op *op = &p.dev[d].ops[1];
        ck_assert_ptr_eq(pp_plan_op_coll(&p, op), &p.coll[0]);
        ck_assert_str_eq(pp_plan_op_format(&p, op, buf, sizeof buf), "allreduce tied {0,3}");
        ck_assert_int_eq(p.dev[d].ops[2].kind, PP_OP_UPDATE);
    }
    ck_assert_ptr_null(pp_plan_op_coll(&p, &p.dev[1].ops[0]));
    a.peer = 5;
    ck_assert_ptr_null(pp_plan_op_coll(&p, &a));
    ck_assert_str_eq(pp_plan_op_format(&p, &a, buf, sizeof buf), "allreduce #5");
    pp_plan_free(&p);

    int vee[4] = {0, 1, 1, 0};
    ck_assert(!pp_tied_pair(vee, 4, pair));
    ck_assert_int_eq(pp_plan_init(&p, "t", 2, 4, 1, vee), 0);
    pp_policy_finish(&p);
    ck_assert_int_eq(pp_plan_add_tied(&p, 64), 0);
    ck_assert_int_eq(p.ncoll, 0);
    ck_assert_int_eq(p.dev[0].n, 2);
    pp_plan_free(&p);
}
END_TEST

START_TEST(arena_alloc_zeroed_aligned)
{
    pp_arena a = {0};
    static const unsigned char zeros[2000 * 7];
    for (int i = 1; i < 2000; i++) {
        unsigned char *p = pp_arena_alloc(&a, (size_t)i * 7);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        ck_assert(memcmp(p, zeros, (size_t)i * 7) == 0);
        memset(p, 0xab, (size_t)i * 7);
    }
    unsigned char *big = pp_arena_alloc(&a, 1 << 20);
    ck_assert_uint_eq(big[(1 << 20) - 1], 0);
    ck_assert_str_eq(pp_arena_strndup(&a, "hello world", 5), "hello");
    pp_arena_free(&a);
    ck_assert_ptr_null(a.head);
}
END_TEST

START_TEST(error_at_prints_location_line_and_caret)
{
    tu_diag t;
    tu_diag_open(&t);
    const char *text = "devices = 4\nstages = x\n";
    pp_source src = {.path = "f.pp", .text = text, .len = strlen(text)};
    pp_error_at(&t.diag, &src, 21, "expected an integer, got '%s'", "x");
    ck_assert_str_eq(tu_diag_text(&t), "f.pp:2:10: error: expected an integer, got 'x'\n"
                                       "     2 | stages = x\n"
                                       "       |          ^\n");
    ck_assert_int_eq(t.diag.errors, 1);
    tu_diag_close(&t);
}
END_TEST

/* Ill-formed UTF-8 and invisible characters in the echoed line: each is
 * one '?' and one column, walking back to clip a long line as forward, so
 * the window and the caret stay where the character is. */
START_TEST(error_at_echoes_unshowable_bytes)
{
    static char text[256];
    size_t n = 0;
    for (int i = 0; i < 60; i++)
        text[n++] = (char)0x80; /* stray continuation bytes */
    memcpy(text + n, "\xc3\xa9\xef\xbb\xbf@", 6); /* é, a BOM, then the error's place */
    n += 6;
    for (int i = 0; i < 60; i++)
        text[n++] = 'x';
    text[n++] = '\n';
    pp_source src = {.path = "u.pp", .text = text, .len = n};
    tu_diag t;
    tu_diag_open(&t);
    pp_error_at(&t.diag, &src, 65, "here");
    char want[1024], q[64], sp[64], xs[64];
    memset(q, '?', 48);
    q[48] = '\0';
    memset(sp, ' ', 50);
    sp[50] = '\0';
    memset(xs, 'x', 49);
    xs[49] = '\0';
    /* 50 characters before the caret: 48 stray bytes, é and the BOM */
    snprintf(want, sizeof want, "u.pp:1:63: error: here\n     1 | ...%s\xc3\xa9?@%s...\n       |    %s^\n", q, xs, sp);
    ck_assert_str_eq(tu_diag_text(&t), want);
    tu_diag_close(&t);
}
END_TEST

START_TEST(error_count_is_capped)
{
    tu_diag t;
    tu_diag_open(&t);
    for (int i = 0; i < 30; i++)
        pp_error(&t.diag, "e%d", i);
    ck_assert_int_eq(t.diag.errors, 30);
    const char *out = tu_diag_text(&t);
    ck_assert_ptr_nonnull(strstr(out, "ppcc: error: e19\n"));
    ck_assert_ptr_null(strstr(out, "e20"));
    ck_assert_ptr_nonnull(strstr(out, "too many errors"));
    tu_diag_close(&t);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, op_names_round_trip);
    tcase_add_test(tc, op_format);
    tcase_add_test(tc, op_collectives);
    tcase_add_test(tc, arena_alloc_zeroed_aligned);
    tcase_add_test(tc, error_at_prints_location_line_and_caret);
    tcase_add_test(tc, error_at_echoes_unshowable_bytes);
    tcase_add_test(tc, error_count_is_capped);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
