/*
 * data_file.c — whether a model gpt can train on the data file it names
 * (docs/gpt.md, "Data"): a regular file that can be read, holding at
 * least one sequence and the token after it.  Sequences are drawn at
 * offsets up to the file's size, so a FIFO or a device (no size) will not
 * do.  ppcc checks it at model.data, pprun's loader again before a run.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pp.h"

int pp_data_file_check(const char *path, int seq, int64_t *bytes, char *err, size_t errsize)
{
    int64_t min_bytes = (int64_t)seq + 1;
    /* Non-blocking: a FIFO without a writer would wait here forever. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errsize, "cannot be opened: %s", strerror(errno));
        return 1;
    }
    struct stat st;
    int rc = fstat(fd, &st);
    int fstat_errno = errno;
    close(fd);
    if (rc != 0) {
        snprintf(err, errsize, "cannot be read: %s", strerror(fstat_errno));
        return 1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errsize, "is a directory, not a regular file");
        return 1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errsize, "is not a regular file (%s): sequences are drawn at offsets up to its size",
                 S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                                             : "a socket");
        return 1;
    }
    *bytes = (int64_t)st.st_size;
    if (st.st_size == 0) {
        snprintf(err, errsize, "is empty");
        return 1;
    }
    if ((int64_t)st.st_size < min_bytes) {
        snprintf(err, errsize, "holds %" PRId64 " byte%s, fewer than seq + 1 = %" PRId64
                 " (a sequence and the token after it)", (int64_t)st.st_size, st.st_size == 1 ? "" : "s", min_bytes);
        return 1;
    }
    return 0;
}
