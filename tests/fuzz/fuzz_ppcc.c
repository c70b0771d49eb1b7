/*
 * fuzz_ppcc.c — libFuzzer harness for ppcc's input surface: the DSL front
 * end (lexer, parser, spec with -D overrides), the policies and every pass
 * after them.  Any input must end in diagnostics and an error count, never
 * a crash, a hang or a leak.  Built and run by tools/fuzz (docs/fuzzing.md).
 *
 * Input layout: the schedule text, optionally followed by a NUL byte and
 * -D lines ("NAME=VALUE\n" ...), so that the fuzzer mutates overrides too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

/* Bigger shapes are legal but only slow the fuzzer down: one input must
 * stay well under a second. */
enum { MAX_WORK = 20000, MAX_DEFINES = 16 };

static FILE *sink(void)
{
    static FILE *null;
    if (!null)
        null = fopen("/dev/null", "w");
    return null;
}

static int parse_defines(char *text, pp_define *defs)
{
    int n = 0;
    for (char *line = text; line && *line && n < MAX_DEFINES;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            defs[n++] = (pp_define){line, eq + 1};
        }
        line = next;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The parser expects NUL-terminated text; the define lines get a copy
     * of their own so that they can be split in place. */
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    size_t len = strlen(text) < size ? strlen(text) : size;
    char *dtext = len < size ? strdup(text + len + 1) : NULL;
    pp_define defs[MAX_DEFINES];
    int ndefs = dtext ? parse_defines(dtext, defs) : 0;

    pp_diag diag;
    pp_diag_init(&diag, sink(), "ppcc");
    pp_arena arena = {0};
    pp_ast ast;
    pp_spec spec;
    pp_plan plan = {0};
    pp_sim sim = {0};

    if (pp_parse("fuzz.pp", text, len, &arena, &diag, &ast))
        goto done;
    if (pp_spec_build(&ast, defs, ndefs, &arena, &diag, &spec))
        goto done;
    if ((long)spec.devices * spec.stages * spec.microbatches > MAX_WORK || spec.devices > 64)
        goto done;
    /* auto compiles the spec with every policy: only small ones. */
    if (strcmp(spec.schedule, "auto") == 0 &&
        (long)spec.devices * spec.stages * spec.microbatches > MAX_WORK / 20)
        goto done;
    if (pp_compile(&spec, &plan, &sim, &diag) == 0) {
        pp_emit_json(sink(), &spec, &plan, &sim); /* what ppcc would write */
        pp_sim_free(&sim, plan.devices);
    }
done:
    pp_plan_free(&plan);
    pp_arena_free(&arena);
    free(dtext);
    free(text);
    return 0;
}
