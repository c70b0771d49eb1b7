/*
 * compile.c — ppcc's whole compilation of a spec: the split of its layers
 * when the file asks for balance = auto (balance.c, which reports it), the
 * policy, then the passes (passes.c) with the file's memory limit.  The
 * command line calls it, and so does every test that claims to compile as
 * ppcc does, so none can drift from what users get.
 */
#include "pp.h"

int pp_compile(pp_spec *s, pp_plan *p, pp_sim *sim, pp_diag *d)
{
    *p = (pp_plan){0};
    if (s->layers && s->model.balance == PP_BALANCE_AUTO && !s->balance_found) {
        pp_balance_report rep;
        if (pp_balance_auto(s, &rep, d))
            return 1;
        if (s->balance_found) /* else nothing compiles: the policy says why below */
            pp_balance_print(d->out, s, &rep); /* a report, as auto's: with the messages */
    }
    if (pp_policy_run(s, p, d))
        return 1;
    return pp_lower_verify_simulate(p, s, true, sim, d);
}
