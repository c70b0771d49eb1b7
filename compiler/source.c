/*
 * source.c — reading a schedule file into memory, safely: what ppcc reads
 * is bounded (PP_MAX_SOURCE_BYTES), and nothing can make it wait forever.
 *
 * A regular file larger than the bound is refused from its size, before
 * a byte is read; a pipe, a FIFO or a device is read up to one byte past
 * the bound, so /dev/zero costs 64 MiB, not all memory.  open() of a FIFO
 * blocks until a writer opens it: here it is opened O_NONBLOCK (then made
 * blocking again), so a FIFO with no writer reads as empty at once, and
 * the error says why; one whose writer is there is read to its end.
 * "-" is standard input, named "<stdin>" in messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pp.h"

/* Reads fd to its end, but never more than PP_MAX_SOURCE_BYTES + 1 bytes:
 * one byte past the bound tells a file that is too large from one that
 * just fits.  NULL with *err set on a read error or out of memory. */
static char *read_bounded(int fd, size_t *len, int *err)
{
    const size_t limit = (size_t)PP_MAX_SOURCE_BYTES + 1;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap == limit)
                break;
            size_t next = cap * 2 < limit ? cap * 2 : limit;
            char *bigger = realloc(buf, next);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap = next;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r > 0)
            n += (size_t)r;
        else if (r == 0)
            break;
        else if (errno != EINTR) {
            *err = errno;
            free(buf);
            return NULL;
        }
    }
    if (!buf)
        *err = ENOMEM;
    *len = n;
    return buf;
}

/* open() that never blocks (a FIFO without a writer), then blocking reads. */
static int open_source(const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int flags = fcntl(fd, F_GETFL);
    if (fstat(fd, st) != 0 || flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int pp_source_read(const char *path, pp_arena *a, pp_diag *d, pp_source *src)
{
    bool from_stdin = strcmp(path, "-") == 0;
    const char *name = from_stdin ? "<stdin>" : path;
    struct stat st;
    int fd = from_stdin ? STDIN_FILENO : open_source(path, &st);
    if (fd < 0 || (from_stdin && fstat(fd, &st) != 0)) {
        pp_error(d, "cannot open %s: %s", name, strerror(errno));
        return 1;
    }
    int rc = 1, err = 0;
    size_t len = 0;
    char *buf = NULL;
    if (S_ISDIR(st.st_mode)) {
        pp_error(d, "cannot read %s: it is a directory, not a schedule file", name);
    } else if (S_ISREG(st.st_mode) && st.st_size > PP_MAX_SOURCE_BYTES) {
        pp_error(d, "%s: %lld bytes, more than a schedule file may have (%ld MiB)", name, (long long)st.st_size,
                 PP_MAX_SOURCE_BYTES >> 20);
    } else if (!(buf = read_bounded(fd, &len, &err))) {
        pp_error(d, "cannot read %s: %s", name, strerror(err));
    } else if (len > PP_MAX_SOURCE_BYTES) {
        /* A pipe, a device or a file that grew: only the bound was read. */
        pp_error(d, "%s: more than a schedule file may have (%ld MiB); stopped reading there", name,
                 PP_MAX_SOURCE_BYTES >> 20);
    } else if (len == 0) {
        pp_error(d, "%s: empty: nothing to compile%s", name,
                 S_ISFIFO(st.st_mode) && !from_stdin
                     ? " (a FIFO reads as empty when no writer has opened it: ppcc does not wait for one)"
                     : "");
    } else {
        src->path = name;
        src->text = pp_arena_strndup(a, buf, len);
        src->len = len;
        rc = 0;
    }
    free(buf);
    if (!from_stdin)
        close(fd);
    return rc;
}
