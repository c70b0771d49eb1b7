/*
 * output.h — the one way ppcc and pprun write their outputs (-o, --trace,
 * --dump): docs/outputs.md says what a user can rely on.
 *
 * A run declares its inputs and outputs when it reads its command line,
 * before any work: each output is checked then (its directory exists, it is
 * not a directory, not an input, not another output) and its temporary is
 * made, so a bad path fails at once, naming the user's path.  After the
 * work the caller gives each output its content and commits the set: every
 * temporary is filled, then every stream written, then everything renamed
 * into place — all of it, or on any failure none of it (what was there
 * before is put back).  SIGINT, SIGTERM, SIGHUP, SIGPIPE and SIGABRT
 * remove the temporaries (and undo a half-done commit) before the process
 * dies, and so does pp_exit_now (pp.h) on the error paths that end the
 * process at once.
 *
 * Kinds of output path:
 *   "-"                      standard output
 *   an open descriptor       /dev/stdout, /dev/fd/N, /proc/self/fd/N (or a
 *                            link to one), the file fd 0/1/2 is open on:
 *                            written through that descriptor, as "-" is
 *   character device, FIFO   written through, never replaced (/dev/null)
 *   regular file, new name   replaced through a temporary in its directory
 *   symbolic link            followed: its target is replaced, the link stays
 *   directory (add_dir)      a set of files, staged in a fresh directory and
 *                            swapped in whole
 * Block devices, sockets and dangling links are refused.
 */
#ifndef PP_OUTPUT_H
#define PP_OUTPUT_H

#include "pp.h"

typedef struct pp_outputs pp_outputs; /* the inputs and outputs of one run */
typedef struct pp_output pp_output;   /* one of them */

/* Writes one file's bytes to f; non-zero on failure (an I/O error on f
 * needs no report: the committer names the path and errno). */
typedef int (*pp_fill_fn)(FILE *f, void *ctx);
/* Writes the files of a directory output with pp_output_member. */
typedef int (*pp_fill_dir_fn)(pp_output *dir, void *ctx);

/* Errors go to d; prog (d->prog) names the program in messages. */
pp_outputs *pp_outputs_new(pp_diag *d);
/* Removes every temporary (and undoes a commit that did not finish), then
 * frees.  NULL is fine. */
void pp_outputs_free(pp_outputs *s);

/* A file the run reads ("-": standard input): no output may replace it.
 * `what` names it in messages ("the schedule").  A path that cannot be
 * stat-ed is skipped: reading it reports the error.  Non-zero after
 * reporting a clash with an output added before. */
int pp_outputs_input(pp_outputs *s, const char *what, const char *path);
/* A file output; `what` is its option ("-o", "--trace").  Checks the path
 * and makes the temporary.  NULL after reporting an error. */
pp_output *pp_outputs_file(pp_outputs *s, const char *what, const char *path);
/* A directory output holding the files named in `names` (NULL-terminated,
 * kept by the caller).  An existing directory is replaced only if it holds
 * nothing else: it is never a place for the user's other files. */
pp_output *pp_outputs_dir(pp_outputs *s, const char *what, const char *path,
                          const char *const *names);

/* Whether o writes to standard output ("-", descriptor 1, or the same
 * file, pipe or terminal; not a device that is no terminal, such as
 * /dev/null): the caller's text reports must then go elsewhere. */
bool pp_output_is_stdout(const pp_output *o);

/* The content, written at commit; ctx must live until then. */
void pp_output_fill(pp_output *o, pp_fill_fn fill, void *ctx);
void pp_output_fill_dir(pp_output *dir, pp_fill_dir_fn fill, void *ctx);
/* From a pp_fill_dir_fn: writes the member `name` (one of the names);
 * reports its own errors.  A fill_dir reports any other of its errors to
 * pp_output_diag. */
int pp_output_member(pp_output *dir, const char *name, pp_fill_fn fill, void *ctx);
pp_diag *pp_output_diag(const pp_output *o);

/* Writes and places every output; 0 when all are in place, else 1 with
 * the error reported and every output as it was before the run. */
int pp_outputs_commit(pp_outputs *s);

/* For a process about to end at once (pp_exit_now runs it): undoes every
 * set as the signal handler does (temporaries removed, a half-done commit
 * put back) and leaves the writer locked, with its signals blocked in
 * this thread, so nothing changes before the end.  Async-signal-safe. */
void pp_outputs_abandon(void);

/* Tests only: place outputs as on a filesystem without
 * renameat2(RENAME_EXCHANGE) (NFS, some FUSE), to exercise that path. */
extern bool pp_output_test_no_exchange;

#endif
