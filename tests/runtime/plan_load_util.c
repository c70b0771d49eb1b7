/*
 * plan_load_util.c — see plan_load_util.h.
 */
#include <stdlib.h>
#include <string.h>

#include "plan_load_util.h"
#include "test_util.h"

char *lu_named_plan(const char *name)
{
    tg_spec s;
    ck_assert_msg(tg_named(name, &s), "no plan %s", name);
    return tg_plan_json(&s);
}

int lu_load(const char *text, pp_plan *p, pr_model *m, char **msg)
{
    tu_diag td;
    tu_diag_open(&td);
    td.diag.prog = "pprun";
    int rc = pr_plan_load_text("plan.json", text, strlen(text), &td.diag, p, m);
    *msg = strdup(tu_diag_text(&td));
    tu_diag_close(&td);
    return rc;
}
