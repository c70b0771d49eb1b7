/* STUB: emit_timeline pass, being written. */
#include "pp.h"
int pp_emit_timeline(FILE *f, const pp_plan *p, const pp_sim *sim, const pp_timeline_opts *o) { return 1; }
