/*
 * output.c — the one output writer of ppcc and pprun (output.h says what
 * it promises, docs/outputs.md what users can rely on).
 *
 * Every output of a run is an entry in a set.  Its temporary is made when
 * it is added (so a bad path fails before any work): a random name
 * `.NAME.tmp-XXXXXXXX` in the target's own directory, created O_EXCL |
 * O_NOFOLLOW, so nothing planted at a guessable name is ever written
 * through.  At commit the temporaries are filled, the streams written, and
 * each target swapped with its temporary (renameat2 RENAME_EXCHANGE): until
 * the last swap succeeded the previous content waits under the
 * temporary's name and can be swapped back.  Without RENAME_EXCHANGE a
 * file's previous content is kept by a hard link, a directory is moved
 * aside.
 *
 * A signal handler undoes whatever a set has done, and so does
 * pp_outputs_abandon, which the error paths that end the process at once
 * run (pp_exit_now: out of memory, pprun's watchdog).  Either may run in
 * any thread, so every change of an entry's stage happens, with the
 * syscall that makes it true, under a spin lock taken with the handled
 * signals blocked: the handler and abandon (which take the same lock and
 * never give it back) always see true stages, and never wait for their
 * own thread.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "output.h"

bool pp_output_test_no_exchange = false;

/* OUT_FD: written through a descriptor this process was given ("-" is
 * standard output), never opened anew or replaced. */
enum kind { OUT_INPUT, OUT_FD, OUT_STREAM, OUT_FILE, OUT_DIR };

/* Where an output's new content is. */
enum stage {
    ST_NONE,      /* nothing to undo: an input, a stream, or finished */
    ST_STAGED,    /* at tmp */
    ST_PLACED,    /* at target; the previous content as `park` says */
    ST_COMMITTED, /* at target for good; the previous content is to go */
};
/* Where a placed output's previous content is. */
enum park {
    PARK_NONE,    /* there was none */
    PARK_SWAPPED, /* at tmp (exchanged) */
    PARK_MOVED,   /* at old: a hard link to the file, or the directory moved aside */
    PARK_LOST,    /* nowhere: replaced by rename(), no hard link possible */
};

struct pp_output {
    pp_outputs *set;
    pp_output *next;
    enum kind kind;
    const char *what;
    char *path;     /* as the user gave it: every message names this */
    char *target;   /* what is replaced: path, or the target of a link */
    char *dir;      /* target's directory */
    char *base;     /* target's last component */
    char *resolved; /* canonical path, for "inside a directory output" */
    char *tmp;
    char *old;
    int fd;          /* the open temporary */
    int through;     /* OUT_FD: the descriptor written through */
    bool has_id;     /* dev/ino below are known */
    bool exists;     /* the target existed when checked: dev/ino are its own */
    bool is_chr;
    bool is_reg;
    bool on_stdout;
    dev_t dev; /* the target's identity, or (new target) its directory's */
    ino_t ino;
    mode_t mode; /* a replaced file's mode; a directory's final mode */
    uid_t uid;
    gid_t gid;
    const char *const *names;
    int *member_mode; /* mode of each previous member, -1 where none */
    pp_fill_fn fill;
    pp_fill_dir_fn fill_dir;
    void *ctx;
    int undo_failed; /* 1: the temporary stays, 2: the previous content is lost */
    volatile sig_atomic_t stage, park;
};

struct pp_outputs {
    pp_diag *d;
    pp_output *first, **last;
};

/* ---- the live entries, the lock and the signal handler ---- */

#define MAX_LIVE 64
static pp_output *live[MAX_LIVE];
static volatile sig_atomic_t nlive;
static atomic_flag busy = ATOMIC_FLAG_INIT;
static _Thread_local volatile sig_atomic_t holding; /* this thread has the lock */
static sigset_t handled;
/* SIGABRT too: abort() runs no cleanup of its own */
static const int cleanup_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGABRT};

static void lock(sigset_t *saved)
{
    pthread_sigmask(SIG_BLOCK, &handled, saved);
    while (atomic_flag_test_and_set(&busy))
        sched_yield(); /* a signal handler holds it: the process is going */
    holding = 1;
}

static void unlock(const sigset_t *saved)
{
    holding = 0;
    atomic_flag_clear(&busy);
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

/* Removes a staged or previous content at path: the file, or the
 * directory with the members it may hold.  Async-signal-safe. */
static bool remove_content(const pp_output *o, const char *path)
{
    if (o->kind != OUT_DIR)
        return unlink(path) == 0 || errno == ENOENT;
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        for (const char *const *n = o->names; *n; n++)
            unlinkat(fd, *n, 0);
        for (const char *const *n = o->names; *n; n++) { /* then "sub" of each "sub/name" */
            char sub[256];
            size_t k = 0;
            while ((*n)[k] && (*n)[k] != '/' && k + 1 < sizeof sub) {
                sub[k] = (*n)[k];
                k++;
            }
            sub[k] = '\0';
            if ((*n)[k] == '/')
                unlinkat(fd, sub, AT_REMOVEDIR);
        }
        close(fd);
    }
    return rmdir(path) == 0 || errno == ENOENT;
}

/* Drops what the set must not leave: a staged content, or a placed one
 * (putting the previous back); after the commit, the previous content.
 * Async-signal-safe; under the lock.  False if something stays. */
static bool undo(pp_output *o)
{
    bool ok = true;
    if (o->stage == ST_STAGED) {
        ok = remove_content(o, o->tmp);
    } else if (o->stage == ST_PLACED) {
        if (o->park == PARK_NONE)
            ok = remove_content(o, o->target);
        else if (o->park == PARK_SWAPPED)
            ok = renameat2(AT_FDCWD, o->tmp, AT_FDCWD, o->target, RENAME_EXCHANGE) == 0 &&
                 remove_content(o, o->tmp);
        else if (o->park == PARK_MOVED && o->kind == OUT_FILE)
            ok = rename(o->old, o->target) == 0;
        else if (o->park == PARK_MOVED)
            ok = rename(o->target, o->tmp) == 0 && rename(o->old, o->target) == 0 &&
                 remove_content(o, o->tmp);
        else
            ok = false;
    } else if (o->stage == ST_COMMITTED) {
        if (o->park == PARK_SWAPPED)
            ok = remove_content(o, o->tmp);
        else if (o->park == PARK_MOVED)
            ok = remove_content(o, o->old);
    }
    o->stage = ST_NONE;
    return ok;
}

/* Undoes every live entry and keeps the lock, so that nothing changes an
 * entry again before the process ends.  Async-signal-safe. */
static void undo_every_set(void)
{
    if (!holding) /* (this thread may hold it: an abort() under the lock) */
        while (atomic_flag_test_and_set(&busy))
            ; /* held by another thread, for one short syscall */
    holding = 1;
    for (int i = nlive - 1; i >= 0; i--)
        undo(live[i]);
}

static void on_signal(int sig)
{
    undo_every_set();
    signal(sig, SIG_DFL);
    raise(sig); /* blocked here until the handler returns: then it kills */
}

void pp_outputs_abandon(void)
{
    sigset_t saved;
    pthread_sigmask(SIG_BLOCK, &handled, &saved); /* no handler waits for us */
    undo_every_set();
}

/* The cleanup handler for the signals that would kill the process
 * silently (where nobody chose to ignore or catch them), a file-size
 * limit reported as EFBIG instead of a kill, and the same cleanup before
 * pp_exit_now.  Idempotent. */
static void install_handlers(void)
{
    sigemptyset(&handled);
    for (size_t i = 0; i < sizeof cleanup_signals / sizeof *cleanup_signals; i++)
        sigaddset(&handled, cleanup_signals[i]);
    struct sigaction sa = {.sa_handler = on_signal, .sa_mask = handled}, old;
    for (size_t i = 0; i < sizeof cleanup_signals / sizeof *cleanup_signals; i++)
        if (sigaction(cleanup_signals[i], NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
            old.sa_handler == SIG_DFL)
            sigaction(cleanup_signals[i], &sa, NULL);
    if (sigaction(SIGXFSZ, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
        old.sa_handler == SIG_DFL)
        signal(SIGXFSZ, SIG_IGN);
    pp_before_exit(pp_outputs_abandon); /* the error paths that end the process at once */
}

/* Under the lock. */
static bool enlist(pp_output *o)
{
    if (nlive == MAX_LIVE)
        return false;
    live[nlive] = o;
    nlive = nlive + 1;
    return true;
}

static void delist(pp_output *o)
{
    for (int i = 0; i < nlive; i++)
        if (live[i] == o) {
            for (int j = i + 1; j < nlive; j++)
                live[j - 1] = live[j];
            nlive = nlive - 1;
            return;
        }
}

/* ---- names and checks ---- */

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        pp_out_of_memory(0, "an output's path");
    return s;
}

static char *copy(const char *s)
{
    char *c = strdup(s);
    if (!c)
        pp_out_of_memory((double)strlen(s) + 1, "an output's path");
    return c;
}

/* dir/.BASE.tmp-XXXXXXXX, eight random letters and digits. */
static char *temp_path(const char *dir, const char *base)
{
    static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static unsigned long counter;
    unsigned char r[8];
    if (getrandom(r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long x = (unsigned long long)ts.tv_nsec * 6364136223846793005ull ^
                               (unsigned long long)getpid() << 32 ^ ++counter * 0x9e3779b97f4a7c15ull;
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)(x >> (i * 8));
    }
    char name[sizeof r + 1];
    for (size_t i = 0; i < sizeof r; i++)
        name[i] = abc[r[i] % (sizeof abc - 1)];
    name[sizeof r] = '\0';
    return format("%s/.%.64s.tmp-%s", strcmp(dir, "/") == 0 ? "" : dir, base, name);
}

/* target -> dir, base ("." for a bare name). */
static void split(pp_output *o)
{
    char *slash = strrchr(o->target, '/');
    if (!slash) {
        o->dir = copy(".");
        o->base = copy(o->target);
    } else {
        o->dir = slash == o->target ? copy("/") : strndup(o->target, (size_t)(slash - o->target));
        o->base = copy(slash + 1);
        if (!o->dir)
            pp_out_of_memory((double)(slash - o->target) + 1, "an output's path");
    }
}

static pp_output *entry(pp_outputs *s, enum kind kind, const char *what, const char *path)
{
    pp_output *o = pp_xcalloc(1, sizeof *o, "an output");
    o->set = s;
    o->kind = kind;
    o->what = what;
    o->path = copy(path);
    o->fd = -1;
    return o;
}

static void entry_free(pp_output *o)
{
    if (o->fd >= 0)
        close(o->fd);
    free(o->path);
    free(o->target);
    free(o->dir);
    free(o->base);
    free(o->resolved);
    free(o->tmp);
    free(o->old);
    free(o->member_mode);
    free(o);
}

static void identify(pp_output *o, const struct stat *st)
{
    o->has_id = true;
    o->exists = true;
    o->dev = st->st_dev;
    o->ino = st->st_ino;
    o->is_chr = S_ISCHR(st->st_mode);
    o->is_reg = S_ISREG(st->st_mode);
    /* Written, it lands among standard output's bytes: the same file, pipe
     * or terminal.  A character device that is no terminal (/dev/null)
     * keeps no order of what is written to it: nothing mixes there. */
    struct stat out;
    o->on_stdout = fstat(STDOUT_FILENO, &out) == 0 && out.st_dev == st->st_dev &&
                   out.st_ino == st->st_ino && (!S_ISCHR(st->st_mode) || isatty(STDOUT_FILENO));
}

static bool same_object(const pp_output *a, const pp_output *b)
{
    if (!a->has_id || !b->has_id || a->exists != b->exists || a->dev != b->dev || a->ino != b->ino)
        return false;
    return a->exists || strcmp(a->base, b->base) == 0;
}

/* path lies in the directory dir, at any depth */
static bool inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return path && dir && strncmp(path, dir, n) == 0 && path[n] == '/';
}

/* o against every entry already in the set; reports and returns false on
 * a clash. */
static bool fits(pp_outputs *s, const pp_output *o)
{
    for (const pp_output *p = s->first; p; p = p->next) {
        if (p->kind == OUT_INPUT && o->kind == OUT_INPUT)
            continue;
        const pp_output *in = p->kind == OUT_INPUT ? p : o->kind == OUT_INPUT ? o : NULL;
        const pp_output *out = in == p ? o : p;
        bool both_stdout = p->kind == OUT_FD && o->kind == OUT_FD && p->through == o->through;
        if (in && (out->kind == OUT_FILE || out->kind == OUT_DIR) && same_object(in, out)) {
            pp_error(s->d, "%s %s would overwrite %s %s", out->what, out->path, in->what, in->path);
            return false;
        }
        if (in && out->kind == OUT_FD && out->is_reg && same_object(in, out)) {
            /* an input redirected into: `ppcc a.pp -o - >>a.pp` */
            pp_error(s->d, "%s %s would write into %s %s", out->what, out->path, in->what, in->path);
            return false;
        }
        if (!in && (both_stdout || same_object(p, o))) {
            if (p->is_chr && o->is_chr && !both_stdout)
                continue; /* /dev/null twice: written one after the other */
            if (p->on_stdout || o->on_stdout)
                pp_error(s->d, "%s %s and %s %s both write to standard output", p->what, p->path,
                         o->what, o->path);
            else
                pp_error(s->d, "%s %s and %s %s are the same file", p->what, p->path, o->what,
                         o->path);
            return false;
        }
        const pp_output *pair[2][2] = {{p, o}, {o, p}};
        for (int k = 0; k < 2; k++) {
            const pp_output *dir = pair[k][0], *x = pair[k][1];
            if (dir->kind == OUT_DIR && dir->exists && inside(x->resolved, dir->resolved)) {
                pp_error(s->d, "%s %s lies inside %s %s, which is replaced as a whole", x->what,
                         x->path, dir->what, dir->path);
                return false;
            }
        }
    }
    return true;
}

static void append(pp_outputs *s, pp_output *o)
{
    *s->last = o;
    s->last = &o->next;
}

/* The target's directory exists; a new target takes its identity from it. */
static bool check_directory(pp_outputs *s, pp_output *o)
{
    split(o);
    if (!*o->base) {
        pp_error(s->d, "cannot create %s: not a file name", o->path);
        return false;
    }
    struct stat st;
    if (stat(o->dir, &st) != 0) {
        if (errno == ENOENT)
            pp_error(s->d, "cannot create %s: the directory %s does not exist", o->path, o->dir);
        else
            pp_error(s->d, "cannot create %s: %s: %s", o->path, o->dir, strerror(errno));
        return false;
    }
    if (!S_ISDIR(st.st_mode)) {
        pp_error(s->d, "cannot create %s: %s is not a directory", o->path, o->dir);
        return false;
    }
    char *real = realpath(o->exists ? o->target : o->dir, NULL);
    if (o->exists)
        o->resolved = real;
    else if (real) {
        o->resolved = format("%s/%s", strcmp(real, "/") == 0 ? "" : real, o->base);
        free(real);
    }
    if (!o->exists) {
        o->has_id = true;
        o->dev = st.st_dev;
        o->ino = st.st_ino;
    }
    return true;
}

/* The link's target, or the path itself. */
static char *replaced_name(const char *path)
{
    struct stat lst;
    if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
        char *real = realpath(path, NULL);
        if (real)
            return real;
    }
    return copy(path);
}

/* Makes o's temporary: a file, or (dir) a directory, under a fresh name;
 * 0 or an errno value. */
static int make_temporary(pp_output *o)
{
    sigset_t saved;
    lock(&saved);
    int err = enlist(o) ? EEXIST : EMFILE;
    for (int tries = 0; tries < 100 && err == EEXIST; tries++) {
        free(o->tmp);
        o->tmp = temp_path(o->dir, o->base);
        if (o->kind == OUT_FILE) {
            o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                         o->exists ? 0600 : 0666);
            err = o->fd >= 0 ? 0 : errno;
        } else {
            /* 0777 lets the umask and a default ACL say what a new
             * directory gets; it stays private while it is filled */
            err = mkdir(o->tmp, 0777) == 0 ? 0 : errno;
        }
    }
    if (!err)
        o->stage = ST_STAGED;
    unlock(&saved);
    struct stat st;
    if (!err && o->kind == OUT_DIR) {
        o->fd = open(o->tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (o->fd < 0 || fstat(o->fd, &st) != 0 || fchmod(o->fd, 0700) != 0)
            err = errno;
        else if (!o->exists)
            o->mode = st.st_mode & 07777;
    }
    if (!err && o->kind == OUT_FILE && o->exists) {
        if ((o->uid != geteuid() || o->gid != getegid()) && fchown(o->fd, o->uid, o->gid) != 0) {
            /* not ours to give away: the replacement is owned by us */
        }
        if (fchmod(o->fd, o->mode) != 0)
            err = errno;
    }
    if (err) {
        lock(&saved);
        undo(o);
        delist(o);
        unlock(&saved);
    }
    return err;
}

/* ---- the set ---- */

pp_outputs *pp_outputs_new(pp_diag *d)
{
    pp_outputs *s = pp_xcalloc(1, sizeof *s, "the set of outputs");
    s->d = d;
    s->last = &s->first;
    install_handlers();
    return s;
}

int pp_outputs_input(pp_outputs *s, const char *what, const char *path)
{
    struct stat st;
    bool is_stdin = strcmp(path, "-") == 0;
    if ((is_stdin ? fstat(STDIN_FILENO, &st) : stat(path, &st)) != 0)
        return 0;
    pp_output *o = entry(s, OUT_INPUT, what, path);
    identify(o, &st);
    o->on_stdout = false;
    o->resolved = is_stdin ? NULL : realpath(path, NULL);
    if (!fits(s, o)) {
        entry_free(o);
        return 1;
    }
    append(s, o);
    return 0;
}

static pp_output *refuse(pp_output *o)
{
    entry_free(o);
    return NULL;
}

/* A replaced output keeps the mode and owner of what it replaces. */
static void keep_owner(pp_output *o, const struct stat *st)
{
    o->mode = st->st_mode & 07777;
    o->uid = st->st_uid;
    o->gid = st->st_gid;
}

/* An output that passed every check: its temporary is made, and it joins
 * the set (NULL after reporting why the temporary cannot be made). */
static pp_output *admit(pp_outputs *s, pp_output *o)
{
    int err = make_temporary(o);
    if (err) {
        pp_error(s->d, "cannot create %s: %s", o->path, strerror(err));
        return refuse(o);
    }
    append(s, o);
    return o;
}

/* "standard output", "descriptor 5". */
static const char *descriptor_name(int n, char *buf, size_t size)
{
    static const char *const std[] = {"standard input", "standard output", "standard error"};
    if (n >= 0 && n <= 2)
        return std[n];
    snprintf(buf, size, "descriptor %d", n);
    return buf;
}

/* The descriptor of this process that path names — /dev/stdout,
 * /dev/fd/N, /proc/self/fd/N, or a link leading to one — else -1.  The
 * links are followed one by one up to the fd directory, never through
 * its entry, which the kernel would resolve to the file itself (and a
 * replaced file is not what the descriptor writes to). */
static int named_descriptor(const char *path)
{
    struct stat own, thread_own;
    bool have_own = stat("/proc/self/fd", &own) == 0;
    bool have_thread = stat("/proc/thread-self/fd", &thread_own) == 0;
    if (!have_own && !have_thread)
        return -1;
    char *cur = copy(path);
    int fd = -1;
    for (int hops = 0; hops < 40; hops++) {
        char *slash = strrchr(cur, '/');
        const char *base = slash ? slash + 1 : cur;
        char *dir = !slash ? copy(".") : slash == cur ? copy("/") : strndup(cur, (size_t)(slash - cur));
        if (!dir)
            pp_out_of_memory((double)strlen(cur), "an output path");
        size_t digits = strspn(base, "0123456789");
        struct stat ds;
        if (digits > 0 && digits <= 9 && !base[digits] && stat(dir, &ds) == 0 &&
            ((have_own && ds.st_dev == own.st_dev && ds.st_ino == own.st_ino) ||
             (have_thread && ds.st_dev == thread_own.st_dev && ds.st_ino == thread_own.st_ino))) {
            fd = atoi(base);
            free(dir);
            break;
        }
        struct stat ls;
        char target[4096];
        ssize_t n = lstat(cur, &ls) == 0 && S_ISLNK(ls.st_mode) ? readlink(cur, target, sizeof target - 1) : -1;
        if (n < 0) {
            free(dir);
            break;
        }
        target[n] = '\0';
        char *next = target[0] == '/' ? copy(target) : format("%s/%s", dir, target);
        free(dir);
        free(cur);
        cur = next;
    }
    free(cur);
    return fd;
}

/* The standard stream (1, 2, then 0) open for writing on the regular file
 * st, if one is: `-o log.txt >>log.txt` writes through it. */
static int standard_stream_on(const struct stat *st)
{
    static const int order[] = {STDOUT_FILENO, STDERR_FILENO, STDIN_FILENO};
    for (size_t i = 0; i < sizeof order / sizeof *order; i++) {
        struct stat fs;
        int fl = fcntl(order[i], F_GETFL);
        if (fl >= 0 && (fl & O_ACCMODE) != O_RDONLY && fstat(order[i], &fs) == 0 &&
            fs.st_dev == st->st_dev && fs.st_ino == st->st_ino)
            return order[i];
    }
    return -1;
}

/* o written through descriptor n, which the process was given (opened by
 * the shell, not by us: our own are close-on-exec, like the temporaries);
 * NULL after reporting why it cannot be. */
static pp_output *through_descriptor(pp_outputs *s, pp_output *o, int n)
{
    char buf[32];
    const char *name = descriptor_name(n, buf, sizeof buf);
    int fl = fcntl(n, F_GETFL), fdfl = fcntl(n, F_GETFD);
    struct stat st;
    if (fl < 0 || fdfl < 0 || fstat(n, &st) != 0) {
        pp_error(s->d, "cannot write %s: %s is not open", o->path, name);
        return refuse(o);
    }
    if (fdfl & FD_CLOEXEC) {
        pp_error(s->d, "cannot write %s: %s is one %s opened itself, not one it was given", o->path, name,
                 s->d->prog);
        return refuse(o);
    }
    if ((fl & O_ACCMODE) == O_RDONLY) {
        pp_error(s->d, "cannot write %s: %s is open for reading only", o->path, name);
        return refuse(o);
    }
    o->kind = OUT_FD;
    o->through = n;
    identify(o, &st);
    o->on_stdout = o->on_stdout || n == STDOUT_FILENO;
    if (!fits(s, o))
        return refuse(o);
    append(s, o);
    return o;
}

pp_output *pp_outputs_file(pp_outputs *s, const char *what, const char *path)
{
    pp_diag *d = s->d;
    struct stat st;
    if (strcmp(path, "-") == 0) {
        pp_output *o = entry(s, OUT_FD, what, path);
        o->through = STDOUT_FILENO;
        if (fstat(STDOUT_FILENO, &st) == 0)
            identify(o, &st);
        o->on_stdout = true;
        if (!fits(s, o))
            return refuse(o);
        append(s, o);
        return o;
    }
    pp_output *o = entry(s, OUT_FILE, what, path);
    if (!*path) {
        pp_error(d, "%s: empty file name", what);
        return refuse(o);
    }
    /* A descriptor already open is written through, as "-" is: replacing
     * the file it is open on would leave it writing to a deleted one, and
     * opening it anew would lose its offset and O_APPEND. */
    int n = named_descriptor(path);
    if (n >= 0)
        return through_descriptor(s, o, n);
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            pp_error(d, "cannot write %s: it is a directory", path);
            return refuse(o);
        }
        if (S_ISREG(st.st_mode) && (n = standard_stream_on(&st)) >= 0)
            return through_descriptor(s, o, n);
        identify(o, &st);
        if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
            /* written through, never replaced */
            o->kind = OUT_STREAM;
            if (access(path, W_OK) != 0) {
                pp_error(d, "cannot write %s: %s", path, strerror(errno));
                return refuse(o);
            }
            if (!fits(s, o))
                return refuse(o);
            append(s, o);
            return o;
        }
        if (!S_ISREG(st.st_mode)) {
            pp_error(d, "cannot write %s: not a regular file, a character device or a FIFO", path);
            return refuse(o);
        }
        keep_owner(o, &st);
        o->target = replaced_name(path);
    } else if (errno == ENOENT) {
        struct stat lst;
        if (lstat(path, &lst) == 0) {
            pp_error(d, "cannot create %s: it is a symbolic link to a missing file", path);
            return refuse(o);
        }
        o->target = copy(path);
    } else {
        pp_error(d, "cannot write %s: %s", path, strerror(errno));
        return refuse(o);
    }
    if (!check_directory(s, o) || !fits(s, o))
        return refuse(o);
    return admit(s, o);
}

static int member_index(const pp_output *o, const char *name)
{
    for (int i = 0; o->names[i]; i++)
        if (strcmp(o->names[i], name) == 0)
            return i;
    return -1;
}

/* Some member is "name/...": a subdirectory the output writes. */
static bool member_dir(const pp_output *o, const char *name)
{
    size_t len = strlen(name);
    for (int i = 0; o->names[i]; i++)
        if (strncmp(o->names[i], name, len) == 0 && o->names[i][len] == '/')
            return true;
    return false;
}

/* The entries of dir (prefix "" or "sub/"): member files, whose modes are
 * kept, and at the top member subdirectories, looked into. */
static bool check_previous_dir(pp_outputs *s, pp_output *o, DIR *dir, const char *prefix)
{
    bool ok = true;
    for (struct dirent *e; ok && (e = readdir(dir));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char full[512];
        snprintf(full, sizeof full, "%s%s", prefix, e->d_name);
        int i = member_index(o, full);
        struct stat st;
        bool have = fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (i < 0 && !*prefix && have && S_ISDIR(st.st_mode) && member_dir(o, full)) {
            int fd = openat(dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            DIR *sub = fd >= 0 ? fdopendir(fd) : NULL;
            if (!sub) {
                if (fd >= 0)
                    close(fd);
                pp_error(s->d, "cannot replace %s: %s: %s", o->path, full, strerror(errno));
                return false;
            }
            char inner[512];
            snprintf(inner, sizeof inner, "%s/", full);
            ok = check_previous_dir(s, o, sub, inner);
            closedir(sub);
        } else if (i < 0) {
            pp_error(s->d, "cannot replace %s: it holds %s, which %s does not write (remove it, or "
                           "choose another directory)", o->path, full, o->what);
            ok = false;
        } else if (!have || !S_ISREG(st.st_mode)) {
            pp_error(s->d, "cannot replace %s: its %s is not a regular file", o->path, full);
            ok = false;
        } else {
            o->member_mode[i] = (int)(st.st_mode & 07777);
        }
    }
    return ok;
}

/* An existing directory output holds only regular files by its member
 * names (in the member subdirectories): nothing of the user's is lost
 * when it is replaced. */
static bool check_previous_set(pp_outputs *s, pp_output *o)
{
    int n = 0;
    while (o->names[n])
        n++;
    o->member_mode = malloc(((size_t)n + 1) * sizeof *o->member_mode);
    if (!o->member_mode)
        pp_out_of_memory(((double)n + 1) * sizeof *o->member_mode, "a directory output's modes");
    for (int i = 0; i < n; i++)
        o->member_mode[i] = -1;
    if (!o->exists)
        return true;
    DIR *dir = opendir(o->target);
    if (!dir) {
        pp_error(s->d, "cannot replace %s: %s", o->path, strerror(errno));
        return false;
    }
    bool ok = check_previous_dir(s, o, dir, "");
    closedir(dir);
    return ok;
}

pp_output *pp_outputs_dir(pp_outputs *s, const char *what, const char *path,
                          const char *const *names)
{
    pp_diag *d = s->d;
    pp_output *o = entry(s, OUT_DIR, what, path);
    o->names = names;
    if (!*path) {
        pp_error(d, "%s: empty directory name", what);
        return refuse(o);
    }
    struct stat st;
    if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            pp_error(d, "cannot write %s: it exists and is not a directory", path);
            return refuse(o);
        }
        identify(o, &st);
        keep_owner(o, &st);
        o->target = realpath(path, NULL); /* follows a link; names ".", "d/.." */
        if (!o->target) {
            pp_error(d, "cannot write %s: %s", path, strerror(errno));
            return refuse(o);
        }
        if (strcmp(o->target, "/") == 0) {
            pp_error(d, "cannot replace %s: it is the root directory", path);
            return refuse(o);
        }
    } else if (errno == ENOENT) {
        struct stat lst;
        if (lstat(path, &lst) == 0) {
            pp_error(d, "cannot create %s: it is a symbolic link to a missing directory", path);
            return refuse(o);
        }
        o->target = copy(path);
        size_t n = strlen(o->target);
        while (n > 1 && o->target[n - 1] == '/')
            o->target[--n] = '\0';
    } else {
        pp_error(d, "cannot write %s: %s", path, strerror(errno));
        return refuse(o);
    }
    if (!check_directory(s, o))
        return refuse(o);
    struct stat parent;
    if (o->exists && stat(o->dir, &parent) == 0 && parent.st_dev != st.st_dev) {
        pp_error(d, "cannot replace %s: it is a mount point", path);
        return refuse(o);
    }
    if (!fits(s, o) || !check_previous_set(s, o))
        return refuse(o);
    return admit(s, o);
}

pp_diag *pp_output_diag(const pp_output *o)
{
    return o->set->d;
}

bool pp_output_is_stdout(const pp_output *o)
{
    return o->on_stdout;
}

void pp_output_fill(pp_output *o, pp_fill_fn fill, void *ctx)
{
    o->fill = fill;
    o->ctx = ctx;
}

void pp_output_fill_dir(pp_output *dir, pp_fill_dir_fn fill, void *ctx)
{
    dir->fill_dir = fill;
    dir->ctx = ctx;
}

/* ---- writing ---- */

/* Runs fill into fd (closed here); 0, an errno value, or -1 when the
 * writer failed without an I/O error. */
static int fill_fd(int fd, bool sync, pp_fill_fn fill, void *ctx)
{
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int e = errno;
        close(fd);
        return e;
    }
    errno = 0;
    int rc = fill(f, ctx);
    int e = ferror(f) ? (errno ? errno : EIO) : 0;
    if (fflush(f) != 0 && !e)
        e = errno ? errno : EIO;
    if (!e && rc)
        e = -1;
    if (!e && sync && fsync(fileno(f)) != 0)
        e = errno;
    if (fclose(f) != 0 && !e)
        e = errno;
    return e;
}

static void report_write(pp_diag *d, const char *path, const char *member, int e)
{
    const char *sep = !member ? "" : path[strlen(path) - 1] == '/' ? "" : "/";
    if (e > 0)
        pp_error(d, "cannot write %s%s%s: %s", path, sep, member ? member : "", strerror(e));
    else
        pp_error(d, "cannot write %s%s%s", path, sep, member ? member : "");
}

int pp_output_member(pp_output *o, const char *name, pp_fill_fn fill, void *ctx)
{
    int i = member_index(o, name);
    if (i < 0 || o->fd < 0) {
        pp_error(o->set->d, "%s %s: %s is not one of its files", o->what, o->path, name);
        return 1;
    }
    int mode = o->member_mode[i];
    const char *slash = strchr(name, '/');
    if (slash) { /* "sub/name": sub is made when its first member is written */
        char sub[256];
        snprintf(sub, sizeof sub, "%.*s", (int)(slash - name), name);
        if (mkdirat(o->fd, sub, 0777) != 0 && errno != EEXIST) {
            pp_error(o->set->d, "%s %s: cannot make %s: %s", o->what, o->path, sub, strerror(errno));
            return 1;
        }
    }
    int fd = openat(o->fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    mode >= 0 ? 0600 : 0666);
    int e = fd < 0 ? errno : 0;
    if (!e && mode >= 0 && fchmod(fd, (mode_t)mode) != 0) {
        e = errno;
        close(fd);
    }
    if (!e)
        e = fill_fd(fd, true, fill, ctx);
    if (e) {
        report_write(o->set->d, o->path, name, e);
        return 1;
    }
    return 0;
}

/* Fills a file's or directory's temporary. */
static int stage(pp_output *o)
{
    pp_diag *d = o->set->d;
    if (o->kind == OUT_FILE) {
        int fd = o->fd;
        o->fd = -1;
        int e = fill_fd(fd, true, o->fill, o->ctx);
        if (e)
            report_write(d, o->path, NULL, e);
        return e != 0;
    }
    int before = d->errors;
    int rc = o->fill_dir(o, o->ctx);
    if (!rc && o->exists && (o->uid != geteuid() || o->gid != getegid()) &&
        fchown(o->fd, o->uid, o->gid) != 0) {
        /* not ours to give away: the new set is owned by us */
    }
    if (!rc && (fchmod(o->fd, o->mode) != 0 || fsync(o->fd) != 0)) {
        report_write(d, o->path, NULL, errno);
        rc = 1;
    }
    close(o->fd);
    o->fd = -1;
    if (rc && d->errors == before)
        report_write(d, o->path, NULL, -1);
    return rc != 0;
}

/* Writes through a descriptor (standard output through stdout's own
 * buffer, after what the program printed there), or a device / FIFO,
 * opened now. */
static int write_stream(pp_output *o)
{
    pp_diag *d = o->set->d;
    if (o->kind == OUT_FD && o->through == STDOUT_FILENO) {
        errno = 0;
        int rc = o->fill(stdout, o->ctx);
        int e = ferror(stdout) ? (errno ? errno : EIO) : 0;
        if (fflush(stdout) != 0 && !e)
            e = errno ? errno : EIO;
        if (e || rc) {
            if (strcmp(o->path, "-") != 0)
                report_write(d, o->path, NULL, e ? e : -1);
            else if (e > 0)
                pp_error(d, "cannot write to standard output: %s", strerror(e));
            else
                pp_error(d, "cannot write to standard output");
            return 1;
        }
        return 0;
    }
    if (o->kind == OUT_FD) {
        /* a duplicate shares the descriptor's offset and O_APPEND */
        fflush(stdout);
        fflush(stderr);
        int fd = fcntl(o->through, F_DUPFD_CLOEXEC, 0);
        int e = fd < 0 ? errno : fill_fd(fd, false, o->fill, o->ctx);
        if (e)
            report_write(d, o->path, NULL, e);
        return e != 0;
    }
    int fd = open(o->path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        report_write(d, o->path, NULL, errno);
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_dev != o->dev || st.st_ino != o->ino) {
        close(fd);
        pp_error(d, "cannot write %s: it changed while %s ran", o->path, d->prog);
        return 1;
    }
    int e = fill_fd(fd, false, o->fill, o->ctx);
    if (e)
        report_write(d, o->path, NULL, e);
    return e != 0;
}

/* Without RENAME_EXCHANGE: a file is replaced by rename() after a hard
 * link keeps the previous one; a directory is moved aside, then the new
 * one moved in (for a moment the name is absent).  Under the lock. */
static int place_by_rename(pp_output *o)
{
    int err = 0;
    for (int tries = 0; tries < 100; tries++) {
        free(o->old);
        o->old = temp_path(o->dir, o->base);
        err = (o->kind == OUT_FILE ? link(o->target, o->old) : mkdir(o->old, 0700)) == 0 ? 0 : errno;
        if (err != EEXIST)
            break;
    }
    if (err) {
        free(o->old);
        o->old = NULL;
        if (o->kind == OUT_DIR)
            return err;
    }
    if (o->kind == OUT_FILE) {
        if (rename(o->tmp, o->target) != 0) {
            err = errno;
            if (o->old)
                unlink(o->old);
            return err;
        }
        o->park = o->old ? PARK_MOVED : PARK_LOST;
    } else {
        if (rename(o->target, o->old) != 0) { /* replaces the empty placeholder */
            err = errno;
            rmdir(o->old);
            return err;
        }
        if (rename(o->tmp, o->target) != 0) {
            err = errno;
            rename(o->old, o->target);
            return err;
        }
        o->park = PARK_MOVED;
    }
    o->stage = ST_PLACED;
    return 0;
}

/* Puts a staged output at its target, keeping the previous content. */
static int place(pp_output *o)
{
    pp_diag *d = o->set->d;
    sigset_t saved;
    int err = 0;
    bool changed = false;
    lock(&saved);
    if (o->exists) {
        struct stat st;
        if (lstat(o->target, &st) != 0 || st.st_dev != o->dev || st.st_ino != o->ino)
            changed = true;
        else if (!pp_output_test_no_exchange &&
                 renameat2(AT_FDCWD, o->tmp, AT_FDCWD, o->target, RENAME_EXCHANGE) == 0) {
            o->park = PARK_SWAPPED;
            o->stage = ST_PLACED;
        } else if (pp_output_test_no_exchange || errno == EINVAL || errno == ENOSYS ||
                   errno == EOPNOTSUPP)
            err = place_by_rename(o);
        else
            err = errno;
    } else if (rename(o->tmp, o->target) == 0) {
        o->park = PARK_NONE;
        o->stage = ST_PLACED;
    } else {
        err = errno;
    }
    unlock(&saved);
    if (changed)
        pp_error(d, "cannot replace %s: it changed while %s ran", o->path, d->prog);
    else if (err)
        pp_error(d, "cannot replace %s: %s", o->path, strerror(err));
    return changed || err;
}

/* Undoes every entry of s, last first; reports what stays. */
static void undo_all(pp_outputs *s)
{
    sigset_t saved;
    lock(&saved);
    for (int i = nlive - 1; i >= 0; i--)
        if (live[i]->set == s) {
            pp_output *o = live[i];
            int was = o->stage;
            if (!undo(o))
                o->undo_failed = was == ST_STAGED ? 1 : 2;
        }
    unlock(&saved);
    for (pp_output *o = s->first; o; o = o->next) {
        if (o->undo_failed == 1)
            pp_error(s->d, "%s: could not remove the temporary %s", o->path, o->tmp);
        else if (o->undo_failed == 2)
            pp_error(s->d, "%s could not be put back as it was", o->path);
        o->undo_failed = 0;
    }
}

int pp_outputs_commit(pp_outputs *s)
{
    pp_output *o;
    for (o = s->first; o; o = o->next)
        if (o->kind != OUT_INPUT && (o->kind == OUT_DIR ? !o->fill_dir : !o->fill)) {
            pp_error(s->d, "nothing was given to write to %s", o->path);
            goto fail;
        }
    for (o = s->first; o; o = o->next)
        if ((o->kind == OUT_FILE || o->kind == OUT_DIR) && stage(o))
            goto fail;
    for (o = s->first; o; o = o->next)
        if ((o->kind == OUT_FD || o->kind == OUT_STREAM) && write_stream(o))
            goto fail;
    for (o = s->first; o; o = o->next)
        if ((o->kind == OUT_FILE || o->kind == OUT_DIR) && place(o))
            goto fail;
    sigset_t saved;
    lock(&saved);
    for (o = s->first; o; o = o->next)
        if (o->stage == ST_PLACED)
            o->stage = ST_COMMITTED;
    unlock(&saved);
    /* the previous contents go; a directory someone added to meanwhile stays */
    for (o = s->first; o; o = o->next) {
        if (o->stage != ST_COMMITTED)
            continue;
        const char *prev = o->park == PARK_SWAPPED ? o->tmp : o->old;
        lock(&saved);
        bool ok = undo(o);
        unlock(&saved);
        if (!ok)
            fprintf(s->d->out, "%s: warning: %s is in place; its previous content stays at %s\n",
                    s->d->prog, o->path, prev);
    }
    return 0;
fail:
    undo_all(s);
    return 1;
}

void pp_outputs_free(pp_outputs *s)
{
    if (!s)
        return;
    undo_all(s);
    sigset_t saved;
    lock(&saved);
    for (pp_output *o = s->first; o; o = o->next)
        delist(o);
    unlock(&saved);
    for (pp_output *o = s->first, *next; o; o = next) {
        next = o->next;
        entry_free(o);
    }
    free(s);
}
