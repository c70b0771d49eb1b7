/*
 * fuzz_plan.c — libFuzzer harness for pprun's plan loader: the strict JSON
 * check (runtime/json.c, also as the start of a stream, as plan_read.c
 * runs it), the reading of plan JSON v1 (runtime/plan_load.c) and the
 * verifier it runs.  Any input must be refused with an error or loaded
 * whole, never crash, hang or leak.  Built and run by tools/fuzz
 * (docs/fuzzing.md).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "pprun.h"

static FILE *sink(void)
{
    static FILE *null;
    if (!null)
        null = fopen("/dev/null", "w");
    return null;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    pp_diag diag;
    pp_diag_init(&diag, sink(), "pprun");
    pr_json_error err;
    pr_json_check(text, size, true, &err);
    pp_plan plan;
    pr_model model;
    if (pr_plan_load_text("fuzz.json", text, size, &diag, &plan, &model) == 0) {
        pp_plan_free(&plan);
        pr_model_free(&model);
    }
    free(text);
    return 0;
}
