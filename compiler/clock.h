/*
 * clock.h — the one clock of ppcc, pprun, their tests and benchmarks:
 * CLOCK_MONOTONIC, which setting the wall clock does not move.
 *
 * pp_now() reads it in seconds (timings, deadlines compared by hand).
 * Timed waits on a condition variable compare their deadline with the
 * clock the variable was made with, and mixing clocks (a CLOCK_MONOTONIC
 * deadline, a CLOCK_REALTIME variable) puts the deadline decades in the
 * past, so every wait "times out" at once: variables are made by
 * pp_cond_init_monotonic and deadlines by pp_deadline_after, both on this
 * clock.  Header only, plain C that the CUDA files include too.
 */
#ifndef PP_CLOCK_H
#define PP_CLOCK_H

#include <pthread.h>
#include <time.h>

static inline double pp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void pp_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* The time `seconds` from now, for pthread_cond_timedwait on a variable
 * made by pp_cond_init_monotonic. */
static inline struct timespec pp_deadline_after(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    time_t whole = (time_t)seconds;
    ts.tv_sec += whole;
    ts.tv_nsec += (long)((seconds - (double)whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

#endif
