/*
 * units.c — sizes in bytes: read as a user writes them (`memory.limit =
 * 80GB`, docs/dsl.md "Units") and shown in the one unit a view picks, so
 * that every device's number in a view is in the same unit and two views
 * show the same text for the same number (docs/hardware.md).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

static const struct {
    const char *name;
    double scale;
} units[] = {
    {"B", 1},           {"KB", 1e3},           {"MB", 1e6},
    {"GB", 1e9},        {"KiB", 1024.0},       {"MiB", 1024.0 * 1024},
    {"GiB", 1024.0 * 1024 * 1024},
};

bool pp_bytes_parse(const char *text, double *bytes, char *err, size_t errsize)
{
    char *end;
    double x = strtod(text, &end);
    /* strtod's other spellings (inf, nan, hex) are not sizes; a negative
     * one is refused as a negative number is (spec.c, to_number). */
    const char *digits = text + (text[0] == '-');
    if (end == text || !(digits[0] >= '0' && digits[0] <= '9')) {
        snprintf(err, errsize, "expected a number, or a size such as 80GB (B, KB, MB, GB, KiB, MiB, GiB)");
        return false;
    }
    if (text[0] == '-') {
        snprintf(err, errsize, "must not be negative");
        return false;
    }
    if (!*end) {
        snprintf(err, errsize, "a size needs its unit, as in %sGB (B, KB, MB, GB, KiB, MiB, GiB)", text);
        return false;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].name) == 0) {
            if (!isfinite(x * units[i].scale)) {
                snprintf(err, errsize, "too large");
                return false;
            }
            *bytes = x * units[i].scale;
            return true;
        }
    snprintf(err, errsize, "unknown unit '%.16s' (B, KB, MB, GB, KiB, MiB, GiB)", end);
    return false;
}

pp_byte_unit pp_bytes_unit(double max)
{
    static const pp_byte_unit shown[] = {{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}};
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
        if (max >= shown[i].scale)
            return shown[i];
    return (pp_byte_unit){"B", 1};
}

const char *pp_bytes_show(double bytes, pp_byte_unit u, char *buf, size_t size)
{
    if (u.scale == 1)
        snprintf(buf, size, "%.0fB", bytes);
    else
        snprintf(buf, size, "%.2f%s", bytes / u.scale, u.name);
    return buf;
}

const char *pp_bytes_human(double bytes, char *buf, size_t size)
{
    return pp_bytes_show(bytes, pp_bytes_unit(bytes), buf, size);
}

const char *pp_mem_show(const pp_view_units *u, double v, char *buf, size_t size)
{
    if (u && u->bytes)
        snprintf(buf, size, "%.4g%s", v / u->mem.scale, u->mem.name);
    else
        snprintf(buf, size, "%g", v);
    return buf;
}

const char *pp_time_show(const pp_view_units *u, double t, char *buf, size_t size)
{
    snprintf(buf, size, u && u->seconds ? "%.6gs" : "%.6g", t);
    return buf;
}

bool pp_throughput(const pp_view_units *u, double makespan, int devices, double *tokens_per_s, double *mfu)
{
    if (!u || !u->seconds || !(u->step_tokens > 0) || !(makespan > 0) || devices < 1)
        return false;
    *tokens_per_s = u->step_tokens / makespan / devices;
    *mfu = u->peak_flops > 0 ? u->step_flops / (makespan * devices * u->peak_flops) : 0;
    return true;
}
