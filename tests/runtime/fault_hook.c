/*
 * fault_hook.c — linked into pprun_fault, the test build of pprun (the
 * same main.c and libpprun): defines the test-only hooks that pprun itself
 * does not (pprun.h, pp.h), each driven by an environment variable that
 * does nothing in pprun:
 *   PPRUN_TEST_FAULT=DEVICE:OP:ACTION  device DEVICE stops inside op OP (as
 *       pp_op_format writes it: F0.1, B1.3, flush, ...) the first time it
 *       reaches it; ACTION: pause (the op never returns) or sleep=S (it
 *       takes S seconds);
 *   PPRUN_TEST_NOMEM=TEXT  every allocation of pp_calloc / pp_xcalloc
 *       whose purpose (the WHAT its message names) contains TEXT fails.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pprun.h"

static struct {
    int device;
    char op[64];
    double sleep_s; /* < 0: pause */
    int armed;
} fault;

static void parse_fault(void)
{
    const char *spec = getenv("PPRUN_TEST_FAULT");
    char action[32];
    if (!spec)
        return;
    if (sscanf(spec, "%d:%63[^:]:%31s", &fault.device, fault.op, action) != 3) {
        fprintf(stderr, "pprun_fault: PPRUN_TEST_FAULT='%s' is not DEVICE:OP:ACTION\n", spec);
        pp_exit_now(2);
    }
    if (strcmp(action, "pause") == 0)
        fault.sleep_s = -1;
    else if (sscanf(action, "sleep=%lf", &fault.sleep_s) != 1 || fault.sleep_s < 0) {
        fprintf(stderr, "pprun_fault: action '%s' is not pause or sleep=S\n", action);
        pp_exit_now(2);
    }
    fault.armed = 1;
}

void pr_test_fault_hook(int rank, const pp_op *op, int step)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, parse_fault);
    char name[64];
    if (!fault.armed || rank != fault.device || step != 0 ||
        strcmp(pp_op_format(op, name, sizeof name), fault.op) != 0)
        return;
    if (fault.sleep_s < 0)
        for (;;)
            pause();
    usleep((useconds_t)(fault.sleep_s * 1e6));
}

bool pp_test_alloc_fails(double bytes, const char *what)
{
    const char *text = getenv("PPRUN_TEST_NOMEM");
    (void)bytes;
    return text && *text && strstr(what, text) != NULL;
}
