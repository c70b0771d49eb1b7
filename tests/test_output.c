/*
 * test_output.c — the output writer (compiler/output.h): what it replaces
 * and what it writes through, modes, refusals before any work, the
 * directory set swapped whole, a set of outputs placed together or not at
 * all (with and without RENAME_EXCHANGE), and signals, abort() and the
 * error paths that end the process at once, which leave nothing.
 * Each test works in a fresh directory under /tmp.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "output.h"
#include "test_util.h"

static char dir[64];

static void setup(void)
{
    strcpy(dir, "/tmp/pp-output-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(chdir(dir), 0);
    pp_output_test_no_exchange = false;
}

static void teardown(void)
{
    ck_assert_int_eq(chdir("/"), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static void expect_text(const char *path, const char *want)
{
    char *got = tu_read_file(path, NULL);
    ck_assert_msg(got != NULL, "%s is missing", path);
    ck_assert_str_eq(got, want);
    free(got);
}

/* Entries of path (recursively) whose name holds ".tmp-": temporaries left. */
static int temporaries(const char *path)
{
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        n += strstr(e->d_name, ".tmp-") != NULL;
        char sub[512];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            n += temporaries(sub);
    }
    closedir(d);
    return n;
}

static int put_text(FILE *f, void *ctx)
{
    return fputs(ctx, f) < 0;
}

/* Writes half, then fails without an I/O error. */
static int fail_midway(FILE *f, void *ctx)
{
    fputs("half", f);
    return 1;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_mode & 07777;
}

/* ---- files ---- */

START_TEST(new_file_gets_0666_less_umask)
{
    mode_t old = umask(027);
    tu_diag td;
    tu_diag_open(&td);
    pp_outputs *s = pp_outputs_new(&td.diag);
    pp_output *o = pp_outputs_file(s, "-o", "plan.json");
    ck_assert_ptr_nonnull(o);
    pp_output_fill(o, put_text, "new\n");
    ck_assert_int_eq(pp_outputs_commit(s), 0);
    pp_outputs_free(s);
    umask(old);
    expect_text("plan.json", "new\n");
    ck_assert_int_eq(mode_of("plan.json"), 0640);
    ck_assert_int_eq(temporaries("."), 0);
    tu_diag_close(&td);
}
END_TEST

START_TEST(replaced_file_keeps_its_mode)
{
    put("plan.json", "old\n");
    ck_assert_int_eq(chmod("plan.json", 0604), 0);
    tu_diag td;
    tu_diag_open(&td);
    pp_outputs *s = pp_outputs_new(&td.diag);
    pp_output *o = pp_outputs_file(s, "-o", "plan.json");
    ck_assert_ptr_nonnull(o);
    expect_text("plan.json", "old\n"); /* untouched until the commit */
    pp_output_fill(o, put_text, "new\n");
    ck_assert_int_eq(pp_outputs_commit(s), 0);
    pp_outputs_free(s);
    expect_text("plan.json", "new\n");
    ck_assert_int_eq(mode_of("plan.json"), 0604);
    ck_assert_int_eq(temporaries("."), 0);
    tu_diag_close(&td);
}
END_TEST

START_TEST(device_and_fifo_are_written_through)
{
    struct stat before, after;
    ck_assert_int_eq(stat("/dev/null", &before), 0);
    ck_assert_int_eq(mkfifo("fifo", 0600), 0);
    pid_t reader = fork();
    if (reader == 0) {
        char *got = tu_read_file("fifo", NULL);
        _exit(got && strcmp(got, "through\n") == 0 ? 0 : 1);
    }
    tu_diag td;
    tu_diag_open(&td);
    pp_outputs *s = pp_outputs_new(&td.diag);
    pp_output *null = pp_outputs_file(s, "-o", "/dev/null");
    pp_output *fifo = pp_outputs_file(s, "--trace", "fifo");
    ck_assert_ptr_nonnull(null);
    ck_assert_ptr_nonnull(fifo);
    pp_output_fill(null, put_text, "gone\n");
    pp_output_fill(fifo, put_text, "through\n");
    ck_assert_int_eq(pp_outputs_commit(s), 0);
    pp_outputs_free(s);
    int st;
    ck_assert_int_eq(waitpid(reader, &st, 0), reader);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_int_eq(stat("/dev/null", &after), 0);
    ck_assert(S_ISCHR(after.st_mode) && after.st_ino == before.st_ino && after.st_rdev == before.st_rdev);
    ck_assert_int_eq(lstat("fifo", &after), 0);
    ck_assert(S_ISFIFO(after.st_mode));
    ck_assert_int_eq(temporaries("."), 0);
    tu_diag_close(&td);
}
END_TEST

/* A path naming an open descriptor (/dev/fd/N, a link to /proc/self/fd/N)
 * is written through it, sharing its offset and O_APPEND: the file is
 * appended to and never replaced.  A descriptor this process opened itself
 * (close-on-exec), one not open, and a read-only one are refused. */
START_TEST(open_descriptor_is_written_through)
{
    put("log.txt", "old\n");
    struct stat before;
    ck_assert_int_eq(stat("log.txt", &before), 0);
    int fd = open("log.txt", O_WRONLY | O_APPEND); /* as the shell's >> gives it */
    ck_assert_int_ge(fd, 0);
    char path[64], link_path[64];
    snprintf(path, sizeof path, "/dev/fd/%d", fd);
    snprintf(link_path, sizeof link_path, "/proc/self/fd/%d", fd);
    ck_assert_int_eq(symlink(link_path, "to-log"), 0);
    tu_diag td;
    tu_diag_open(&td);
    pp_outputs *s = pp_outputs_new(&td.diag);
    pp_output *a = pp_outputs_file(s, "-o", path);
    ck_assert_msg(a != NULL, "%s", tu_diag_text(&td));
    ck_assert(!pp_output_is_stdout(a));
    pp_output_fill(a, put_text, "new\n");
    ck_assert_int_eq(pp_outputs_commit(s), 0);
    pp_outputs_free(s);
    s = pp_outputs_new(&td.diag);
    pp_output *b = pp_outputs_file(s, "--trace", "to-log");
    ck_assert_msg(b != NULL, "%s", tu_diag_text(&td));
    pp_output_fill(b, put_text, "more\n");
    ck_assert_int_eq(pp_outputs_commit(s), 0);
    pp_outputs_free(s);
    expect_text("log.txt", "old\nnew\nmore\n");
    struct stat after;
    ck_assert_int_eq(stat("log.txt", &after), 0);
    ck_assert_int_eq(after.st_ino, before.st_ino);
    ck_assert_int_eq(temporaries("."), 0);
    close(fd);

    int own = open("log.txt", O_WRONLY | O_CLOEXEC), ro = open("log.txt", O_RDONLY);
    ck_assert_int_ge(own, 0);
    ck_assert_int_ge(ro, 0);
    s = pp_outputs_new(&td.diag);
    char p1[64], p2[64], p3[64], want[512];
    snprintf(p1, sizeof p1, "/dev/fd/%d", own);
    snprintf(p2, sizeof p2, "/dev/fd/%d", ro);
    close(900);
    snprintf(p3, sizeof p3, "/proc/self/fd/%d", 900);
    ck_assert_ptr_null(pp_outputs_file(s, "-o", p1));
    ck_assert_ptr_null(pp_outputs_file(s, "-o", p2));
    ck_assert_ptr_null(pp_outputs_file(s, "-o", p3));
    pp_outputs_free(s);
    snprintf(want, sizeof want,
             "ppcc: error: cannot write %s: descriptor %d is one ppcc opened itself, not one it was given\n"
             "ppcc: error: cannot write %s: descriptor %d is open for reading only\n"
             "ppcc: error: cannot write %s: descriptor %d is not open\n",
             p1, own, p2, ro, p3, 900);
    ck_assert_str_eq(tu_diag_text(&td), want);
    expect_text("log.txt", "old\nnew\nmore\n");
    close(own);
    close(ro);
    tu_diag_close(&td);
}
END_TEST

START_TEST(device_error_names_the_device)
{
    tu_diag td;
    tu_diag_open(&td);
    pp_outputs *s = pp_outputs_new(&td.diag);
    pp_output *o = pp_outputs_file(s, "-o", "/dev/full");
    ck_assert_ptr_nonnull(o);
    pp_output_fill(o, put_text, "x\n");
    ck_assert_int_eq(pp_outputs_commit(s), 1);
    pp_outputs_free(s);
    ck_assert_str_eq(tu_diag_text(&td), "ppcc: error: cannot write /dev/full: No space left on device\n");
    tu_diag_close(&td);
}
END_TEST

START_TEST(symlink_target_is_replaced_link_stays)
{
    ck_assert_int_eq(mkdir("real", 0755), 0);
    put("real/plan.json", "old\n");
    ck_assert_int_eq(chmod("real/plan.json", 0640), 0);
    ck_assert_int_eq(symlink("real/plan.json", "link.json"), 0);
    tu_diag td;
    tu_diag_open(&td);
    pp_outputs *s = pp_outputs_new(&td.diag);
    pp_output *o = pp_outputs_file(s, "-o", "link.json");
    ck_assert_ptr_nonnull(o);
    pp_output_fill(o, put_text, "new\n");
    ck_assert_int_eq(pp_outputs_commit(s), 0);
    pp_outputs_free(s);
    struct stat st;
    ck_assert_int_eq(lstat("link.json", &st), 0);
    ck_assert(S_ISLNK(st.st_mode));
    expect_text("real/plan.json", "new\n");
    ck_assert_int_eq(mode_of("real/plan.json"), 0640);
    ck_assert_int_eq(temporaries("."), 0);
    /* a link to nothing is refused: the name it would create is not obvious */
    ck_assert_int_eq(symlink("nowhere/x.json", "dangling.json"), 0);
    s = pp_outputs_new(&td.diag);
    ck_assert_ptr_null(pp_outputs_file(s, "-o", "dangling.json"));
    pp_outputs_free(s);
    ck_assert(strstr(tu_diag_text(&td), "cannot create dangling.json: it is a symbolic link to a missing file"));
    tu_diag_close(&td);
}
END_TEST

/* ---- refusals, before any work ---- */

START_TEST(refusals_name_the_users_path)
{
    put("in.pp", "devices = 2\n");
    ck_assert_int_eq(link("in.pp", "hard.pp"), 0);
    ck_assert_int_eq(mkdir("sub", 0755), 0);
    struct {
        const char *path, *message;
    } cases[] = {
        {"in.pp", "-o in.pp would overwrite the schedule in.pp"},
        {"./sub/../in.pp", "-o ./sub/../in.pp would overwrite the schedule in.pp"},
        {"hard.pp", "-o hard.pp would overwrite the schedule in.pp"},
        {"sub", "cannot write sub: it is a directory"},
        {"nodir/plan.json", "cannot create nodir/plan.json: the directory nodir does not exist"},
        {"in.pp/plan.json", "cannot write in.pp/plan.json: Not a directory"},
        {"", "-o: empty file name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tu_diag td;
        tu_diag_open(&td);
        pp_outputs *s = pp_outputs_new(&td.diag);
        ck_assert_int_eq(pp_outputs_input(s, "the schedule", "in.pp"), 0);
        ck_assert_ptr_null(pp_outputs_file(s, "-o", cases[i].path));
        pp_outputs_free(s);
        char want[256];
        snprintf(want, sizeof want, "ppcc: error: %s\n", cases[i].message);
        ck_assert_str_eq(tu_diag_text(&td), want);
        tu_diag_close(&td);
    }
    expect_text("in.pp", "devices = 2\n");
    ck_assert_int_eq(temporaries("."), 0);
}
END_TEST

START_TEST(two_outputs_on_one_file_are_refused)
{
    tu_diag td;
    tu_diag_open(&td);
    pp_outputs *s = pp_outputs_new(&td.diag);
    ck_assert_ptr_nonnull(pp_outputs_file(s, "--trace", "a.json"));
    ck_assert_ptr_null(pp_outputs_file(s, "-o", "./a.json"));
    ck_assert_ptr_nonnull(pp_outputs_file(s, "-o", "-"));
    ck_assert_ptr_null(pp_outputs_file(s, "--other", "-"));
    pp_outputs_free(s);
    ck_assert_str_eq(tu_diag_text(&td),
                     "ppcc: error: --trace a.json and -o ./a.json are the same file\n"
                     "ppcc: error: -o - and --other - both write to standard output\n");
    /* a device twice is fine: /dev/null takes both */
    s = pp_outputs_new(&td.diag);
    ck_assert_ptr_nonnull(pp_outputs_file(s, "--trace", "/dev/null"));
    ck_assert_ptr_nonnull(pp_outputs_file(s, "-o", "/dev/null"));
    pp_outputs_free(s);
    ck_assert_int_eq(temporaries("."), 0);
    tu_diag_close(&td);
}
END_TEST

/* ---- directories ---- */

static const char *const set_names[] = {"a.npy", "b.npy", "c.npy", "d.npy", NULL};

typedef struct set_fill {
    const char *text;
    int fail_at; /* the member that fails, -1: none */
} set_fill;

static int fill_set(pp_output *d, void *ctx)
{
    const set_fill *f = ctx;
    for (int i = 0; set_names[i]; i++)
        if (pp_output_member(d, set_names[i], i == f->fail_at ? fail_midway : put_text,
                             (void *)f->text))
            return 1;
    return 0;
}

static void make_old_set(void)
{
    ck_assert_int_eq(mkdir("dump", 0750), 0);
    for (int i = 0; set_names[i]; i++) {
        char p[64];
        snprintf(p, sizeof p, "dump/%s", set_names[i]);
        put(p, "old");
    }
    ck_assert_int_eq(chmod("dump/b.npy", 0600), 0);
}

static void expect_set(const char *text)
{
    for (int i = 0; set_names[i]; i++) {
        char p[64];
        snprintf(p, sizeof p, "dump/%s", set_names[i]);
        expect_text(p, text);
    }
}

START_TEST(dump_set_is_swapped_whole)
{
    make_old_set();
    tu_diag td;
    tu_diag_open(&td);
    pp_outputs *s = pp_outputs_new(&td.diag);
    pp_output *o = pp_outputs_dir(s, "--dump", "dump/", set_names);
    ck_assert_ptr_nonnull(o);
    set_fill f = {"new", -1};
    pp_output_fill_dir(o, fill_set, &f);
    ck_assert_int_eq(pp_outputs_commit(s), 0);
    pp_outputs_free(s);
    expect_set("new");
    ck_assert_int_eq(mode_of("dump"), 0750);
    ck_assert_int_eq(mode_of("dump/b.npy"), 0600);
    ck_assert_int_eq(temporaries("."), 0);
    tu_diag_close(&td);
}
END_TEST

START_TEST(dump_failing_midway_keeps_the_old_set)
{
    for (int no_exchange = 0; no_exchange < 2; no_exchange++) {
        pp_output_test_no_exchange = no_exchange;
        if (!no_exchange)
            make_old_set();
        tu_diag td;
        tu_diag_open(&td);
        pp_outputs *s = pp_outputs_new(&td.diag);
        pp_output *o = pp_outputs_dir(s, "--dump", "dump", set_names);
        ck_assert_ptr_nonnull(o);
        set_fill f = {"new", 2};
        pp_output_fill_dir(o, fill_set, &f);
        ck_assert_int_eq(pp_outputs_commit(s), 1);
        pp_outputs_free(s);
        ck_assert_str_eq(tu_diag_text(&td), "ppcc: error: cannot write dump/c.npy\n");
        expect_set("old");
        ck_assert_int_eq(temporaries("."), 0);
        tu_diag_close(&td);
    }
    /* and where there was none, none is left */
    ck_assert_int_eq(system("rm -r dump"), 0);
    tu_diag td;
    tu_diag_open(&td);
    pp_outputs *s = pp_outputs_new(&td.diag);
    pp_output *o = pp_outputs_dir(s, "--dump", "dump", set_names);
    set_fill f = {"new", 3};
    pp_output_fill_dir(o, fill_set, &f);
    ck_assert_int_eq(pp_outputs_commit(s), 1);
    pp_outputs_free(s);
    tu_diag_close(&td);
    ck_assert_int_ne(access("dump", F_OK), 0);
    ck_assert_int_eq(temporaries("."), 0);
}
END_TEST

START_TEST(dump_refuses_a_directory_with_other_files)
{
    make_old_set();
    put("dump/notes.txt", "mine");
    put("file", "x");
    tu_diag td;
    tu_diag_open(&td);
    pp_outputs *s = pp_outputs_new(&td.diag);
    ck_assert_ptr_null(pp_outputs_dir(s, "--dump", "dump", set_names));
    ck_assert_ptr_null(pp_outputs_dir(s, "--dump", "file", set_names));
    ck_assert_ptr_null(pp_outputs_dir(s, "--dump", "no/dump", set_names));
    pp_outputs_free(s);
    ck_assert_str_eq(tu_diag_text(&td),
                     "ppcc: error: cannot replace dump: it holds notes.txt, which --dump does not "
                     "write (remove it, or choose another directory)\n"
                     "ppcc: error: cannot write file: it exists and is not a directory\n"
                     "ppcc: error: cannot create no/dump: the directory no does not exist\n");
    ck_assert_int_eq(unlink("dump/notes.txt"), 0);
    /* an output inside the set would vanish with it */
    s = pp_outputs_new(&td.diag);
    ck_assert_ptr_nonnull(pp_outputs_dir(s, "--dump", "dump", set_names));
    ck_assert_ptr_null(pp_outputs_file(s, "--trace", "dump/t.json"));
    pp_outputs_free(s);
    ck_assert(strstr(tu_diag_text(&td), "--trace dump/t.json lies inside --dump dump, which is "
                                        "replaced as a whole"));
    expect_set("old");
    ck_assert_int_eq(temporaries("."), 0);
    tu_diag_close(&td);
}
END_TEST

/* ---- a set of outputs: all or none ---- */

/* A stream's fill runs after every temporary is filled and before any is
 * renamed: removing b.json's temporary makes its rename fail. */
static int sabotage_b(FILE *f, void *ctx)
{
    DIR *d = opendir("other");
    ck_assert_ptr_nonnull(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, ".b.json.tmp-", 12) == 0) {
            char p[300];
            snprintf(p, sizeof p, "other/%s", e->d_name);
            ck_assert_int_eq(unlink(p), 0);
        }
    closedir(d);
    return 0;
}

START_TEST(failed_rename_puts_back_what_was_placed)
{
    for (int no_exchange = 0; no_exchange < 2; no_exchange++) {
        pp_output_test_no_exchange = no_exchange;
        if (!no_exchange) {
            ck_assert_int_eq(mkdir("other", 0755), 0);
            make_old_set();
        }
        put("a.json", "old a\n");
        put("other/b.json", "old b\n");
        tu_diag td;
        tu_diag_open(&td);
        pp_outputs *s = pp_outputs_new(&td.diag);
        pp_output *a = pp_outputs_file(s, "--trace", "a.json");
        pp_output *dump = pp_outputs_dir(s, "--dump", "dump", set_names);
        pp_output *fresh = pp_outputs_file(s, "--new", "fresh.json");
        pp_output *b = pp_outputs_file(s, "-o", "other/b.json");
        pp_output *null = pp_outputs_file(s, "--null", "/dev/null");
        ck_assert(a && dump && fresh && b && null);
        set_fill f = {"new", -1};
        pp_output_fill(a, put_text, "new a\n");
        pp_output_fill_dir(dump, fill_set, &f);
        pp_output_fill(fresh, put_text, "fresh\n");
        pp_output_fill(b, put_text, "new b\n");
        pp_output_fill(null, sabotage_b, NULL);
        ck_assert_int_eq(pp_outputs_commit(s), 1);
        ck_assert_str_eq(tu_diag_text(&td),
                         "ppcc: error: cannot replace other/b.json: No such file or directory\n");
        /* put back before the set is freed */
        expect_text("a.json", "old a\n");
        expect_set("old");
        expect_text("other/b.json", "old b\n");
        ck_assert_int_ne(access("fresh.json", F_OK), 0);
        ck_assert_int_eq(temporaries("."), 0);
        pp_outputs_free(s);
        tu_diag_close(&td);
    }
}
END_TEST

START_TEST(fallback_without_exchange_replaces_too)
{
    pp_output_test_no_exchange = true;
    make_old_set();
    put("a.json", "old a\n");
    ck_assert_int_eq(chmod("a.json", 0640), 0);
    tu_diag td;
    tu_diag_open(&td);
    pp_outputs *s = pp_outputs_new(&td.diag);
    pp_output *a = pp_outputs_file(s, "-o", "a.json");
    pp_output *dump = pp_outputs_dir(s, "--dump", "dump", set_names);
    set_fill f = {"new", -1};
    pp_output_fill(a, put_text, "new a\n");
    pp_output_fill_dir(dump, fill_set, &f);
    ck_assert_int_eq(pp_outputs_commit(s), 0);
    pp_outputs_free(s);
    expect_text("a.json", "new a\n");
    ck_assert_int_eq(mode_of("a.json"), 0640);
    expect_set("new");
    ck_assert_int_eq(temporaries("."), 0);
    struct stat st;
    ck_assert_int_eq(stat("a.json", &st), 0);
    ck_assert_int_eq(st.st_nlink, 1); /* the hard link that kept the old one is gone */
    tu_diag_close(&td);
}
END_TEST

START_TEST(failing_writer_leaves_nothing)
{
    put("a.json", "old a\n");
    tu_diag td;
    tu_diag_open(&td);
    pp_outputs *s = pp_outputs_new(&td.diag);
    pp_output *a = pp_outputs_file(s, "--trace", "a.json");
    pp_output *b = pp_outputs_file(s, "-o", "b.json");
    pp_output_fill(a, put_text, "new a\n");
    pp_output_fill(b, fail_midway, NULL);
    ck_assert_int_eq(pp_outputs_commit(s), 1);
    pp_outputs_free(s);
    ck_assert_str_eq(tu_diag_text(&td), "ppcc: error: cannot write b.json\n");
    expect_text("a.json", "old a\n");
    ck_assert_int_ne(access("b.json", F_OK), 0);
    ck_assert_int_eq(temporaries("."), 0);
    tu_diag_close(&td);
}
END_TEST

/* ---- signals ---- */

static int raise_term(FILE *f, void *ctx)
{
    fputs("half", f);
    fflush(f);
    raise(SIGTERM);
    return 0;
}

/* A child as a program starts: Check's runner catches SIGTERM, and the
 * writer leaves a handler that someone installed alone. */
static pid_t fork_program(void)
{
    pid_t pid = fork();
    if (pid == 0)
        signal(SIGTERM, SIG_DFL);
    return pid;
}

/* In a child: a, dump, b (new) and a stream; the fill of `which` raises
 * SIGTERM.  The child must die of it, leaving everything as it was. */
static void killed_while_writing(int which)
{
    make_old_set();
    put("a.json", "old a\n");
    pid_t pid = fork_program();
    if (pid == 0) {
        tu_diag td;
        tu_diag_open(&td);
        pp_outputs *s = pp_outputs_new(&td.diag);
        pp_output *a = pp_outputs_file(s, "--trace", "a.json");
        pp_output *dump = pp_outputs_dir(s, "--dump", "dump", set_names);
        pp_output *b = pp_outputs_file(s, "-o", "b.json");
        pp_output *null = pp_outputs_file(s, "--null", "/dev/null");
        if (!a || !dump || !b || !null)
            _exit(3);
        set_fill f = {"new", -1};
        pp_output_fill(a, which == 0 ? raise_term : put_text, "new a\n");
        pp_output_fill_dir(dump, fill_set, &f);
        pp_output_fill(b, which == 1 ? raise_term : put_text, "new b\n");
        pp_output_fill(null, which == 2 ? raise_term : put_text, "x");
        pp_outputs_commit(s);
        _exit(4); /* not reached */
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %#x", st);
    expect_text("a.json", "old a\n");
    expect_set("old");
    ck_assert_int_ne(access("b.json", F_OK), 0);
    ck_assert_int_eq(temporaries("."), 0);
}

START_TEST(sigterm_while_writing_leaves_nothing)
{
    killed_while_writing(_i);
}
END_TEST

START_TEST(sigterm_before_commit_leaves_nothing)
{
    /* the run between the check and the commit (training, compiling) */
    make_old_set();
    put("a.json", "old a\n");
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork_program();
    if (pid == 0) {
        tu_diag td;
        tu_diag_open(&td);
        pp_outputs *s = pp_outputs_new(&td.diag);
        if (!pp_outputs_file(s, "-o", "a.json") || !pp_outputs_dir(s, "--dump", "dump", set_names))
            _exit(3);
        ck_assert_int_eq(write(ready[1], "r", 1), 1);
        for (;;)
            pause();
    }
    char c;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    ck_assert_int_eq(temporaries("."), 2); /* both made before the work */
    kill(pid, SIGTERM);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    expect_text("a.json", "old a\n");
    expect_set("old");
    ck_assert_int_eq(temporaries("."), 0);
    close(ready[0]);
    close(ready[1]);
}
END_TEST

/* The error paths that end the process at once run no atexit handler and
 * unwind nothing: pp_exit_now (out of memory, pprun's watchdog) and
 * abort() (SIGABRT) still remove every temporary and undo a half-done
 * commit, before the commit (`which` 0: abort, 1: out of memory) or
 * during it (2: abort, 3: out of memory, from a fill after the set's
 * first file is staged). */
static int fail_hard(FILE *f, void *ctx)
{
    fputs("half", f);
    fflush(f);
    if (*(const int *)ctx == 2)
        abort();
    pp_xcalloc(1000, 1, "the test's table"); /* hooked to fail, below */
    return 0;
}

static int test_fail_all;
bool pp_test_alloc_fails(double bytes, const char *what)
{
    return test_fail_all;
}

START_TEST(abort_and_exit_now_leave_nothing)
{
    make_old_set();
    put("a.json", "old a\n");
    int which = _i;
    pid_t pid = fork_program();
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        if (!freopen("err.txt", "w", stderr))
            _exit(3);
        tu_diag td;
        tu_diag_open(&td);
        pp_outputs *s = pp_outputs_new(&td.diag);
        pp_output *b = pp_outputs_file(s, "-o", "b.json");
        pp_output *dump = pp_outputs_dir(s, "--dump", "dump", set_names);
        pp_output *a = pp_outputs_file(s, "--trace", "a.json");
        if (!a || !dump || !b)
            _exit(3);
        set_fill f = {"new", -1};
        pp_output_fill(b, put_text, "new b\n");
        pp_output_fill_dir(dump, fill_set, &f);
        pp_output_fill(a, fail_hard, &which);
        test_fail_all = which == 1 || which == 3;
        if (which == 0)
            abort();
        if (which == 1)
            pp_xcalloc(1000, 1, "the test's table");
        pp_outputs_commit(s);
        _exit(4); /* not reached */
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    if (which % 2 == 0) {
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status %#x", st);
    } else {
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x", st);
        char *err = tu_read_file("err.txt", NULL);
        ck_assert_ptr_nonnull(err);
        ck_assert_msg(strstr(err, "ppcc: error: out of memory: cannot allocate 1000 bytes for the "
                                  "test's table\n"), "%s", err);
        free(err);
    }
    unlink("err.txt");
    expect_text("a.json", "old a\n");
    expect_set("old");
    ck_assert_int_ne(access("b.json", F_OK), 0);
    ck_assert_int_eq(temporaries("."), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("output");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, new_file_gets_0666_less_umask);
    tcase_add_test(tc, replaced_file_keeps_its_mode);
    tcase_add_test(tc, device_and_fifo_are_written_through);
    tcase_add_test(tc, open_descriptor_is_written_through);
    tcase_add_test(tc, device_error_names_the_device);
    tcase_add_test(tc, symlink_target_is_replaced_link_stays);
    tcase_add_test(tc, refusals_name_the_users_path);
    tcase_add_test(tc, two_outputs_on_one_file_are_refused);
    tcase_add_test(tc, dump_set_is_swapped_whole);
    tcase_add_test(tc, dump_failing_midway_keeps_the_old_set);
    tcase_add_test(tc, dump_refuses_a_directory_with_other_files);
    tcase_add_test(tc, failed_rename_puts_back_what_was_placed);
    tcase_add_test(tc, fallback_without_exchange_replaces_too);
    tcase_add_test(tc, failing_writer_leaves_nothing);
    tcase_add_loop_test(tc, sigterm_while_writing_leaves_nothing, 0, 3);
    tcase_add_test(tc, sigterm_before_commit_leaves_nothing);
    tcase_add_loop_test(tc, abort_and_exit_now_leave_nothing, 0, 4);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
