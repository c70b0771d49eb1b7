/*
 * test_util.h — shared helpers for the Check suites.
 */
#ifndef TEST_UTIL_H
#define TEST_UTIL_H

#include <check.h>

#include "pp.h"

/* Path under the source tree (PP_SOURCE_ROOT); returns a static buffer. */
const char *tu_src_path(const char *rel);
/* Reads a whole file; NULL if missing.  Caller frees. */
char *tu_read_file(const char *path, size_t *len);
/* Compares text with a golden file; PP_UPDATE_GOLDEN=1 rewrites it.
 * On mismatch, fails the test showing the first differing line. */
void tu_check_golden(const char *text, const char *golden_rel);
/* A diag writing into memory: call tu_diag_text to read what was written. */
typedef struct tu_diag {
    pp_diag diag;
    char *buf;
    size_t len;
    FILE *f;
} tu_diag;
void tu_diag_open(tu_diag *t);
const char *tu_diag_text(tu_diag *t); /* flushes; valid until close */
void tu_diag_close(tu_diag *t);
/* A schedule text compiled as ppcc does (parse, settings, pp_compile); the
 * spec, plan and timing stay for the caller, with rc and the messages. */
typedef struct tu_compiled {
    pp_arena a;
    pp_spec spec;
    pp_plan plan;
    pp_sim sim;
    int rc;
    char err[2048];
} tu_compiled;
void tu_compile_text(tu_compiled *c, const char *text);
void tu_compile_ok(tu_compiled *c, const char *text); /* fails the test on an error */
void tu_compiled_free(tu_compiled *c);
/* Runs a suite built by make_suite; returns the process exit status. */
int tu_run(Suite *s);

#endif
