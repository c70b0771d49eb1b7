/*
 * gpt_data.c — the transformer's training text in memory: the plan's data
 * file (checked by the loader, docs/gpt.md "Data") read whole, once, for
 * the devices that draw tokens from it and for --check and --dump.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pprun.h"

int pr_gpt_read_data(pr_model *m, pp_diag *d)
{
    pr_gpt *g = &m->gpt;
    if (m->kind != PR_MODEL_GPT || !g->data || g->bytes)
        return 0;
    FILE *f = fopen(g->data, "rb");
    if (!f) {
        pp_error(d, "model.data: %s: %s", g->data, strerror(errno));
        return 1;
    }
    g->bytes = malloc((size_t)g->data_bytes);
    if (!g->bytes) {
        fclose(f);
        pp_error(d, "model.data: %s: out of memory for its %lld bytes", g->data,
                 (long long)g->data_bytes);
        return 1;
    }
    size_t got = fread(g->bytes, 1, (size_t)g->data_bytes, f);
    int more = fgetc(f) != EOF, err = ferror(f);
    fclose(f);
    if (got != (size_t)g->data_bytes || more || err) {
        pp_error(d, "model.data: %s: %s (the plan was compiled for %lld bytes)", g->data,
                 err ? "cannot be read" : "has changed size since the plan was loaded",
                 (long long)g->data_bytes);
        free(g->bytes);
        g->bytes = NULL;
        return 1;
    }
    return 0;
}
