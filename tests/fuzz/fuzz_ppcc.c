/*
 * fuzz_ppcc.c — libFuzzer harness for ppcc's input surface: the DSL front
 * end (lexer, parser, spec with -D overrides), the policies and every pass
 * after them.  Any input must end in diagnostics and an error count, never
 * a crash, a hang or a leak.  Built and run by tools/fuzz (docs/fuzzing.md).
 *
 * Input layout: the schedule text, optionally followed by a NUL byte and
 * -D lines ("NAME=VALUE\n" ...), so that the fuzzer mutates overrides too.
 * A line "--sweep=A,B,..." (up to MAX_SWEEP values) runs ppcc's --sweep
 * microbatches=A,B,... instead of the compilation.  A spec with gpus = N
 * runs ppcc's split search first (pp_gpus_choose: a row per devices x
 * data_parallel), then compiles the chosen split, as ppcc does.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

/* Bigger shapes are legal but only slow the fuzzer down: one input must
 * stay well under a second. */
enum { MAX_WORK = 20000, MAX_DEFINES = 16, MAX_SWEEP = 8 };

static FILE *sink(void)
{
    static FILE *null;
    if (!null)
        null = fopen("/dev/null", "w");
    return null;
}

/* "A,B,..." into values[MAX_SWEEP], as --sweep's list: each from 1 to
 * PP_MAX_MICROBATCHES (ppcc refuses the others before any work). */
static int parse_sweep(const char *list, int *values)
{
    int n = 0;
    for (const char *p = list; *p && n < MAX_SWEEP;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > PP_MAX_MICROBATCHES)
            return 0;
        values[n++] = (int)v;
        p = *end == ',' ? end + 1 : end + strlen(end);
    }
    return n;
}

static int parse_defines(char *text, pp_define *defs, int *sweep, int *nsweep)
{
    int n = 0;
    for (char *line = text; line && *line && n < MAX_DEFINES;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            if (strcmp(line, "--sweep") == 0)
                *nsweep = parse_sweep(eq + 1, sweep);
            else
                defs[n++] = (pp_define){line, eq + 1};
        }
        line = next;
    }
    return n;
}

/* devices * stages * microbatches, the work of one compilation. */
static long work(const pp_spec *s, int microbatches)
{
    return (long)s->devices * s->stages * microbatches;
}

/* gpus = N: the work of its rows, a compilation of D devices per divisor D
 * (microbatches = auto: every M up to microbatches.max in each). */
static long gpus_work(const pp_spec *s)
{
    long v = s->stages / s->devices, w = 0;
    long m = s->microbatches_auto ? (long)s->mb_max * (s->mb_max + 1) / 2 : s->microbatches;
    for (long D = 1; D <= s->gpus; D++)
        if (s->gpus % D == 0)
            w += D * D * v * m;
    return w;
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
    int sweep[MAX_SWEEP], nsweep = 0;
    int ndefs = dtext ? parse_defines(dtext, defs, sweep, &nsweep) : 0;
    pp_define *mb_defs = NULL, *gpus_defs = NULL;
    const pp_define *use = defs;

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
    if (spec.devices > 64)
        goto done;
    /* auto compiles the spec with every policy: only small ones. */
    long cap = strcmp(spec.schedule, "auto") == 0 ? MAX_WORK / 20 : MAX_WORK;
    if (spec.gpus > 0) {
        int n;
        /* the split of the GPUs, then everything below on it (docs/auto.md) */
        if (spec.gpus > 64 || gpus_work(&spec) > cap ||
            !(gpus_defs = pp_gpus_choose(sink(), &ast, defs, ndefs, &spec, &n, &diag)))
            goto done;
        use = gpus_defs;
        ndefs = n;
        if (pp_spec_build(&ast, use, ndefs, &arena, &diag, &spec))
            goto done;
    }
    if (nsweep) {
        /* --sweep: one compilation per value, as ppcc runs it */
        long total = 0;
        for (int i = 0; i < nsweep; i++)
            total += work(&spec, sweep[i]);
        if (total <= cap)
            pp_sweep(sink(), &ast, use, ndefs, &spec, sweep, nsweep, &diag);
        goto done;
    }
    if (spec.microbatches_auto) {
        /* microbatches = auto compiles M = 1 .. microbatches.max, then the
         * chosen row's spec, as ppcc does */
        int M, n;
        if (work(&spec, spec.mb_max) * (spec.mb_max + 1) / 2 > cap ||
            pp_microbatch_choose(&ast, use, ndefs, &spec, &M, &diag))
            goto done;
        mb_defs = pp_microbatch_defs(use, ndefs, &spec, M, &n);
        if (pp_spec_build(&ast, mb_defs, n, &arena, &diag, &spec))
            goto done;
    }
    if (work(&spec, spec.microbatches) > cap)
        goto done;
    if (pp_compile(&spec, &plan, &sim, &diag) == 0) {
        /* what ppcc would write: the plan, the SVG and the HTML page */
        pp_verify_opts mem = pp_verify_opts_of(&spec, true);
        pp_emit_json(sink(), &spec, &plan, &sim);
        pp_emit_svg(sink(), &plan, &sim, &mem, "predicted", false);
        pp_emit_svg(sink(), &plan, &sim, &mem, "predicted", true);
        pp_sim_free(&sim, plan.devices);
    }
done:
    free(mb_defs);
    free(gpus_defs);
    pp_plan_free(&plan);
    pp_arena_free(&arena);
    free(dtext);
    free(text);
    return 0;
}
