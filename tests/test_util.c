/*
 * test_util.c — golden files, in-memory diagnostics, the suite runner.
 */
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

const char *tu_src_path(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("PP_SOURCE_ROOT");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : ".", rel);
    return buf;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

void tu_check_golden(const char *text, const char *golden_rel)
{
    const char *path = tu_src_path(golden_rel);
    const char *update = getenv("PP_UPDATE_GOLDEN");
    if (update && strcmp(update, "1") == 0) {
        FILE *f = fopen(path, "wb");
        ck_assert_msg(f != NULL, "cannot write %s", path);
        fputs(text, f);
        fclose(f);
        return;
    }
    char *want = tu_read_file(path, NULL);
    ck_assert_msg(want != NULL, "missing golden file %s (PP_UPDATE_GOLDEN=1 writes it)", path);
    if (strcmp(want, text) != 0) {
        int line = 1;
        const char *a = want, *b = text;
        while (*a && *a == *b) {
            if (*a == '\n')
                line++;
            a++;
            b++;
        }
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        int la = ea ? (int)(ea - a) : (int)strlen(a), lb = eb ? (int)(eb - b) : (int)strlen(b);
        char msg[1024];
        snprintf(msg, sizeof msg, "%s differs at line %d:\n  want: %.*s\n  got:  %.*s", golden_rel, line,
                 la > 300 ? 300 : la, a, lb > 300 ? 300 : lb, b);
        free(want);
        ck_abort_msg("%s", msg);
    }
    free(want);
}

void tu_diag_open(tu_diag *t)
{
    memset(t, 0, sizeof *t);
    t->f = open_memstream(&t->buf, &t->len);
    pp_diag_init(&t->diag, t->f, "ppcc");
}

const char *tu_diag_text(tu_diag *t)
{
    fflush(t->f);
    return t->buf ? t->buf : "";
}

void tu_diag_close(tu_diag *t)
{
    fclose(t->f);
    free(t->buf);
    t->buf = NULL;
}

int tu_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

void tu_compile_text(tu_compiled *c, const char *text)
{
    memset(c, 0, sizeof *c);
    tu_diag td;
    tu_diag_open(&td);
    pp_ast ast;
    int rc = pp_parse("t.pp", text, strlen(text), &c->a, &td.diag, &ast);
    if (rc == 0)
        rc = pp_spec_build(&ast, NULL, 0, &c->a, &td.diag, &c->spec);
    if (rc == 0)
        rc = pp_compile(&c->spec, &c->plan, &c->sim, &td.diag);
    c->rc = rc;
    snprintf(c->err, sizeof c->err, "%s", tu_diag_text(&td));
    tu_diag_close(&td);
}

void tu_compile_ok(tu_compiled *c, const char *text)
{
    tu_compile_text(c, text);
    ck_assert_msg(c->rc == 0, "%s\n%s", text, c->err);
}

void tu_compiled_free(tu_compiled *c)
{
    if (c->rc == 0)
        pp_sim_free(&c->sim, c->plan.devices);
    pp_plan_free(&c->plan);
    pp_arena_free(&c->a);
}
