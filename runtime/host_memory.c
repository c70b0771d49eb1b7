/*
 * host_memory.c — host memory: how much this process may still allocate,
 * and byte counts as people read them (an allocation that fails ends the
 * process through pp_xcalloc, compiler/arena.c, naming it).  The replay and
 * --check compare what a run needs with pr_host_memory_left before they
 * allocate anything (docs/pprun.md, "Memory").
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pprun.h"

/* Bytes the process maps now (VmSize), or -1. */
static double mapped_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    unsigned long pages = 0;
    int ok = fscanf(f, "%lu", &pages) == 1;
    fclose(f);
    return ok ? (double)pages * (double)sysconf(_SC_PAGESIZE) : -1;
}

/* MemAvailable + SwapFree from /proc/meminfo, or -1. */
static double free_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    double avail = -1, swap = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long kb;
        if (sscanf(line, "MemAvailable: %lu kB", &kb) == 1)
            avail = (double)kb * 1024;
        else if (sscanf(line, "SwapFree: %lu kB", &kb) == 1)
            swap = (double)kb * 1024;
    }
    fclose(f);
    return avail < 0 ? -1 : avail + swap;
}

double pr_host_memory_left(const char **limit)
{
    double left = INFINITY;
    *limit = "no known limit";
    struct rlimit rl;
    double mapped = mapped_bytes();
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && mapped >= 0) {
        left = fmax(0, (double)rl.rlim_cur - mapped);
        *limit = "the address-space limit (ulimit -v)";
    }
    double avail = free_bytes();
    if (avail >= 0 && avail < left) {
        left = avail;
        *limit = "the memory this machine has available (MemAvailable + SwapFree)";
    }
    return left;
}

const char *pr_format_bytes(double bytes, char *buf, size_t size)
{
    static const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (bytes >= 1024 && u < 5) {
        bytes /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, size, "%.0f bytes", bytes);
    else
        snprintf(buf, size, "%.2f %s", bytes, unit[u]);
    return buf;
}
