/* STUB: simulate pass, being written. */
#include "pp.h"
int pp_simulate(const pp_plan *p, const pp_cost *c, pp_sim *out, pp_diag *d) { pp_error(d, "sim not built"); return 1; }
void pp_sim_free(pp_sim *s, int devices) {}
