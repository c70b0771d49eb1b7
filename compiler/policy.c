/* STUB: policy pass, being written. */
#include "pp.h"
const pp_policy *pp_policy_find(const char *name) { return NULL; }
const pp_policy *const *pp_policy_all(void) { static const pp_policy *const none[] = {NULL}; return none; }
int pp_policy_run(const pp_spec *s, pp_plan *p, pp_diag *d) { pp_error(d, "no policy"); return 1; }
