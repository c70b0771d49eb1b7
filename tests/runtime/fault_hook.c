/*
 * fault_hook.c — linked into pprun_fault, the test build of pprun (the
 * same main.c and libpprun): defines the test-only hooks that pprun itself
 * does not (pprun.h, pp.h), each driven by an environment variable that
 * does nothing in pprun:
 *   PPRUN_TEST_FAULT=DEVICE:OP:ACTION[,...]  device DEVICE stops inside op
 *       OP (as pp_op_format writes it: F0.1, B1.3, flush, ...) the first
 *       time it reaches it in step 1; ACTION: pause (the op never returns),
 *       sleep=S (it takes S seconds more), fail (the op returns an error,
 *       as a failed kernel or transfer does) or kill (the process is
 *       killed there: a rank that disappears); up to four faults;
 *   PPRUN_TEST_IGNORE_STASH=1  B computes on the current weights instead
 *       of the version its F used (docs/async.md: --check must fail);
 *   PPRUN_TEST_NOMEM=TEXT  every allocation of pp_calloc / pp_xcalloc
 *       whose purpose (the WHAT its message names) contains TEXT fails.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pprun.h"

enum { MAX_FAULTS = 4 };

static struct fault {
    int device;
    char op[64];
    double sleep_s; /* < 0: pause */
    bool fail, kill;
    int armed;      /* until the device first reaches the op */
} faults[MAX_FAULTS];
static int nfaults;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void parse_faults(void)
{
    const char *spec = getenv("PPRUN_TEST_FAULT");
    for (const char *s = spec; s && *s && nfaults < MAX_FAULTS; nfaults++) {
        struct fault *f = &faults[nfaults];
        char action[32];
        int used = 0;
        if (sscanf(s, "%d:%63[^:]:%31[^,]%n", &f->device, f->op, action, &used) != 3) {
            fprintf(stderr, "pprun_fault: PPRUN_TEST_FAULT='%s' is not DEVICE:OP:ACTION[,...]\n", spec);
            pp_exit_now(2);
        }
        if (strcmp(action, "pause") == 0)
            f->sleep_s = -1;
        else if (strcmp(action, "fail") == 0)
            f->fail = true;
        else if (strcmp(action, "kill") == 0)
            f->kill = true;
        else if (sscanf(action, "sleep=%lf", &f->sleep_s) != 1 || f->sleep_s < 0) {
            fprintf(stderr, "pprun_fault: action '%s' is not pause, sleep=S, fail or kill\n", action);
            pp_exit_now(2);
        }
        f->armed = 1;
        s += used + (s[used] == ',');
    }
}

int pr_test_fault_hook(int rank, const pp_op *op, int step)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, parse_faults);
    char name[64];
    pp_op_format(op, name, sizeof name);
    double sleep_s = 0;
    bool hit = false, fail = false, kill = false;
    pthread_mutex_lock(&mu);
    for (int k = 0; k < nfaults && !hit; k++)
        if (faults[k].armed && faults[k].device == rank && step == 0 &&
            strcmp(faults[k].op, name) == 0) {
            faults[k].armed = 0;
            sleep_s = faults[k].sleep_s;
            fail = faults[k].fail;
            kill = faults[k].kill;
            hit = true;
        }
    pthread_mutex_unlock(&mu);
    if (kill)
        raise(SIGKILL);
    if (fail)
        return 1;
    if (hit && sleep_s < 0)
        for (;;)
            pause();
    if (hit)
        usleep((useconds_t)(sleep_s * 1e6));
    return 0;
}

bool pr_test_ignore_stash(void)
{
    return getenv("PPRUN_TEST_IGNORE_STASH") != NULL;
}

bool pp_test_alloc_fails(double bytes, const char *what)
{
    const char *text = getenv("PPRUN_TEST_NOMEM");
    (void)bytes;
    return text && *text && strstr(what, text) != NULL;
}
