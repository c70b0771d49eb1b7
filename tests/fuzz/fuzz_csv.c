/*
 * fuzz_csv.c — libFuzzer harness for ppcc's PyTorch schedule CSV input
 * (`ppcc X.csv [--ranks N] [--microbatches M] [-D ...]`, docs/torch.md):
 * the reader, the spec of the shape it implies, the custom policy and
 * every pass after, as ppcc runs them.  Any input must end in diagnostics
 * and an error count, never a crash, a hang or a leak.  Built and run by
 * tools/fuzz (docs/fuzzing.md).
 *
 * Input layout: the CSV bytes (any, NUL included), optionally followed by
 * the marker "\0--\n" and lines "NAME=VALUE\n": "--ranks=N" and
 * "--microbatches=M" as the options, the others -D overrides.  The CSV is
 * read from a file, as ppcc reads it (the reader takes a path).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp.h"

enum { MAX_WORK = 20000, MAX_DEFINES = 16 };
static const char marker[] = "\0--\n";
#define MARKER_LEN 4

static FILE *sink(void)
{
    static FILE *null;
    if (!null)
        null = fopen("/dev/null", "w");
    return null;
}

/* One file per process (libFuzzer may run several jobs at once). */
static const char *csv_path(void)
{
    static char path[128];
    if (!path[0]) {
        const char *dir = getenv("TMPDIR");
        snprintf(path, sizeof path, "%s/fuzz_csv_%ld.csv", dir && *dir ? dir : "/tmp", (long)getpid());
    }
    return path;
}

/* --ranks / --microbatches as ppcc's options take them: 1 .. max, else 0
 * (ppcc refuses the others as usage errors, before reading the file). */
static int option_value(const char *v, int max)
{
    char *end;
    long n = strtol(v, &end, 10);
    return end != v && !*end && n >= 1 && n <= max ? (int)n : 0;
}

static int parse_lines(char *text, pp_define *defs, int *ranks, int *microbatches)
{
    int n = 0;
    for (char *line = text; line && *line && n < MAX_DEFINES;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            if (strcmp(line, "--ranks") == 0)
                *ranks = option_value(eq + 1, PP_MAX_DEVICES);
            else if (strcmp(line, "--microbatches") == 0)
                *microbatches = option_value(eq + 1, PP_MAX_MICROBATCHES);
            else
                defs[n++] = (pp_define){line, eq + 1};
        }
        line = next;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = size;
    char *lines = NULL;
    for (size_t i = 0; i + MARKER_LEN <= size; i++)
        if (memcmp(data + i, marker, MARKER_LEN) == 0) {
            len = i;
            lines = malloc(size - i - MARKER_LEN + 1);
            memcpy(lines, data + i + MARKER_LEN, size - i - MARKER_LEN);
            lines[size - i - MARKER_LEN] = '\0';
            break;
        }
    FILE *f = fopen(csv_path(), "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(csv_path());
        abort();
    }
    pp_define defs[MAX_DEFINES];
    int ranks = 0, microbatches = 0;
    int ndefs = lines ? parse_lines(lines, defs, &ranks, &microbatches) : 0;

    pp_diag diag;
    pp_diag_init(&diag, sink(), "ppcc");
    pp_arena arena = {0};
    pp_ast ast;
    pp_spec spec;
    pp_plan plan = {0};
    pp_sim sim = {0};
    if (pp_torch_csv_spec(csv_path(), ranks, microbatches, defs, ndefs, &arena, &diag, &ast, &spec))
        goto done;
    if ((long)spec.devices * spec.stages * spec.microbatches > MAX_WORK || spec.devices > 64)
        goto done;
    if (pp_compile(&spec, &plan, &sim, &diag) == 0) {
        /* what ppcc would write: the plan, the CSV back, the SVG */
        pp_verify_opts mem = pp_verify_opts_of(&spec, true);
        pp_emit_json(sink(), &spec, &plan, &sim);
        if (pp_torch_csv_check(&plan, &diag) == 0) {
            pp_emit_torch_csv(sink(), &plan, PP_TORCH_CSV_COMPUTE_ONLY);
            pp_emit_torch_csv(sink(), &plan, PP_TORCH_CSV_COMPUTE_COMMS);
        }
        pp_emit_svg(sink(), &plan, &sim, &mem, "predicted", false);
        pp_sim_free(&sim, plan.devices);
    }
done:
    pp_plan_free(&plan);
    pp_arena_free(&arena);
    free(lines);
    return 0;
}
