/*
 * passes.c — the passes after the policy, as one call: lowering on the
 * file's costs, the verifier with the file's memory model, the simulator.
 * ppcc itself (compile.c), --compare's rows (compare.c), every candidate
 * of the auto search (policy_auto.c) and of the balance search
 * (balance.c) compile a compute order this one way, so the numbers they
 * show for the same order are the same numbers.
 */
#include "pp.h"

int pp_lower_verify_simulate(pp_plan *p, const pp_spec *s, bool with_limit, pp_sim *sim, pp_diag *d)
{
    pp_verify_opts vo = pp_verify_opts_of(s, with_limit);
    /* the lowering always sees the limit (it posts recvs later where it
     * binds): checked or not, one order lowers to one plan */
    pp_verify_opts lo = pp_verify_opts_of(s, true);
    if ((s->overlap ? pp_lower_overlap(p, &s->cost, &lo, d) : pp_lower_costed(p, &s->cost, d)) || pp_verify(p, &vo, d))
        return 1;
    if (pp_simulate(p, &s->cost, &vo, sim, d))
        return 1;
    sim->units = s->units; /* how the views show its numbers */
    return 0;
}
