/*
 * plan_read.c — reads a plan file into memory, never more than a plan can
 * be (PR_PLAN_MAX_BYTES, pprun.h), and never waiting without saying so.
 *
 * A regular file is refused by its size before anything is read.  Other
 * inputs (a FIFO, a pipe as /dev/stdin, a character device) have no size:
 * they are read up to the bound, and what has arrived is checked as the
 * start of a JSON text each time it doubles, so /dev/zero or `yes` is
 * refused after a few kilobytes, not gigabytes.  A FIFO is opened without
 * blocking (open(2) would wait for a writer, silently); when nothing
 * arrives within a second, a note says what pprun is waiting for.  "-"
 * is standard input, read the same way (by its size when it is a file,
 * else as a stream) and named "<stdin>" in messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "pprun.h"

enum { FIRST_CHUNK = 1 << 16, NOTE_AFTER_MS = 1000 };

static int refuse_size(pp_diag *d, const char *path, const char *what, size_t max)
{
    char why[128] = "";
    if (max == PR_PLAN_MAX_BYTES)
        snprintf(why, sizeof why, ": %d for each of the %ld ops a plan may hold", PR_PLAN_MAX_BYTES_PER_OP,
                 (long)PP_MAX_OPS_TOTAL);
    pp_error(d, "%s: %s than the largest plan pprun reads (%zu bytes%s)", path, what, max, why);
    return 1;
}

/* Waits until fd has something to read (or its end); says so once if
 * nothing came for a while. */
static int wait_readable(int fd, const char *path, bool *noted, pp_diag *d)
{
    bool from_stdin = fd == STDIN_FILENO;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, *noted ? -1 : NOTE_AFTER_MS);
        if (n > 0)
            return 0;
        if (n == 0) {
            fprintf(d->out, "%s: note: waiting for %s: nothing written to it yet%s\n", d->prog, path,
                    from_stdin ? " (the plan is read from standard input)" : " (a FIFO without a writer?)");
            fflush(d->out);
            *noted = true;
        } else if (errno != EINTR) {
            pp_error(d, "cannot read %s: %s", path, strerror(errno));
            return 1;
        }
    }
}

int pr_plan_read(const char *path, size_t max, pp_diag *d, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    /* standard input is the caller's: read as it is (no O_NONBLOCK set on a
     * description other processes may share), never closed */
    bool from_stdin = strcmp(path, "-") == 0;
    if (from_stdin)
        path = "<stdin>";
    int fd = from_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        pp_error(d, "cannot open %s: %s", path, strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        pp_error(d, "cannot read %s: %s", path, strerror(errno));
        if (!from_stdin)
            close(fd);
        return 1;
    }
    if (S_ISDIR(st.st_mode)) {
        pp_error(d, "%s is a directory, not a plan", path);
        if (!from_stdin)
            close(fd);
        return 1;
    }
    bool stream = !S_ISREG(st.st_mode), noted = false;
    if (!stream && (uintmax_t)st.st_size > max) {
        char what[64];
        snprintf(what, sizeof what, "%jd bytes, more", (intmax_t)st.st_size);
        if (!from_stdin)
            close(fd);
        return refuse_size(d, path, what, max);
    }
    /* a regular file in one read (one more byte sees its end); a stream in doubling chunks */
    size_t cap = stream ? FIRST_CHUNK : (size_t)st.st_size + 1, n = 0, check_at = FIRST_CHUNK;
    if (cap > max + 1)
        cap = max + 1;
    char *buf = malloc(cap + 1);
    int rc = 1;
    if (!buf) {
        pp_error(d, "%s: out of memory for %zu bytes", path, cap + 1);
        goto out;
    }
    for (;;) {
        if (stream && wait_readable(fd, path, &noted, d))
            goto out;
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            pp_error(d, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            refuse_size(d, path, "more", max);
            goto out;
        }
        if (stream && n >= check_at) { /* the start must be able to begin a plan */
            pr_json_error e;
            buf[n] = '\0';
            if (pr_json_check(buf, n, true, &e)) {
                pp_source src = {path, buf, n};
                pp_error_at(d, &src, e.offset, "%s", e.msg);
                goto out;
            }
            check_at = 2 * n;
        }
        if (n == cap) {
            size_t grown = cap > max / 2 ? max + 1 : 2 * cap;
            char *b = realloc(buf, grown + 1);
            if (!b) {
                pp_error(d, "%s: out of memory for %zu bytes", path, grown + 1);
                goto out;
            }
            buf = b;
            cap = grown;
        }
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    if (!from_stdin)
        close(fd);
    return rc;
}
