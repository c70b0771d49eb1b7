/* STUB: spec pass, being written. */
#include "pp.h"
int pp_spec_build(const pp_ast *ast, const pp_define *defs, int ndefs, pp_arena *a, pp_diag *d, pp_spec *spec) { pp_error(d, "spec not built"); return 1; }
