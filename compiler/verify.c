/* STUB: verify pass, being written. */
#include "pp.h"
int pp_verify(const pp_plan *p, const pp_verify_opts *o, pp_diag *d) { pp_error(d, "verify not built"); return 1; }
