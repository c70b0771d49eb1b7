/*
 * fuzz_plan.c — libFuzzer harness for pprun's plan loader: strict JSON v1
 * checking (runtime/plan_load.c) and the verifier it runs.  Any input must
 * be refused with an error or loaded whole, never crash, hang or leak.
 * Built and run by tools/fuzz (docs/fuzzing.md).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    pp_plan plan;
    pr_model model;
    if (pr_plan_load_text("fuzz.json", text, size, &diag, &plan, &model) == 0) {
        pp_plan_free(&plan);
        pr_model_free(&model);
    }
    free(text);
    return 0;
}
