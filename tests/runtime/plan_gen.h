/*
 * plan_gen.h — hand-written plans for the runtime tests, independent of
 * ppcc: compute orders from the textbook definitions, comm ops inserted
 * next to the compute that needs them (recv right before, send right
 * after), consecutive comm ops grouped.  Written in plan JSON v1.
 */
#ifndef PLAN_GEN_H
#define PLAN_GEN_H

#include <stdbool.h>
#include <stdint.h>

typedef struct tg_spec {
    const char *schedule; /* "gpipe" (wavefront over all stages) | "dfs" (depth first) | "1f1b" */
    int devices, stages, microbatches;
    const int *placement; /* [stages]; NULL = loop (s mod devices) */
    bool split_backward;  /* W ops: after all of a device's B, in B order */
    int layers, hidden, batch;
    double lr;
    uint64_t seed;
    bool groups_descending; /* group ids count down the list instead of up */
} tg_spec;

/* A named shape for tests and the CLI helper: "1f1b-2x4", "1f1b-1x4", "gpipe-4x8",
 * "interleaved-2x2x4", "same-device-2x4", "zb-2x4" (1F1B with split W). */
bool tg_named(const char *name, tg_spec *out);
/* The plan as JSON text (malloc'd). */
char *tg_plan_json(const tg_spec *s);

#endif
