/*
 * deadline.h — timed waits on one clock.  A condition variable's timed
 * wait compares its deadline with the clock the variable was made with;
 * mixing clocks (a CLOCK_MONOTONIC deadline, a CLOCK_REALTIME variable)
 * puts the deadline decades in the past and every wait "times out" at
 * once.  So the transports make their condition variables and deadlines
 * here, both on CLOCK_MONOTONIC (immune to wall-clock changes too).
 */
#ifndef PPRUN_DEADLINE_H
#define PPRUN_DEADLINE_H

#include <pthread.h>
#include <time.h>

static inline void pr_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* The CLOCK_MONOTONIC time `seconds` from now, for pthread_cond_timedwait
 * on a variable made by pr_cond_init_monotonic. */
static inline struct timespec pr_deadline_after(double seconds)
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
