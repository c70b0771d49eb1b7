/*
 * plan_load_util.h — what the loader suites share: a named generated plan
 * as JSON, and the loader run on a text with its messages kept.
 */
#ifndef PLAN_LOAD_UTIL_H
#define PLAN_LOAD_UTIL_H

#include "plan_gen.h"
#include "pprun.h"

/* The JSON of plan_gen's plan NAME (fails the test if there is none); caller frees. */
char *lu_named_plan(const char *name);
/* Loads text as pprun does; the loader's status, its messages in *msg (malloc'd). */
int lu_load(const char *text, pp_plan *p, pr_model *m, char **msg);

#endif
