/* STUB: lower pass, being written. */
#include "pp.h"
int pp_lower(pp_plan *p, pp_diag *d) { pp_error(d, "lower not built"); return 1; }
