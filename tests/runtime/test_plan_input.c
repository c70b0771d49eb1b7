/*
 * test_plan_input.c — what the plan loader accepts as input, before any
 * field is read: strict JSON (each gap a lenient parser leaves, refused
 * with its place and JSON path), inputs bounded in size (regular files by
 * their size, FIFOs and devices as streams refused early), a FIFO with no
 * writer that does not wait silently, and time linear in the ops whatever
 * the order of their group ids.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "plan_gen.h"
#include "pprun.h"
#include "test_util.h"

static char *named_plan(const char *name)
{
    tg_spec s;
    ck_assert_msg(tg_named(name, &s), "no plan %s", name);
    return tg_plan_json(&s);
}

/* Loads text[0, len); returns the status, the messages in *msg (malloc'd). */
static int load_n(const char *text, size_t len, char **msg)
{
    tu_diag td;
    tu_diag_open(&td);
    td.diag.prog = "pprun";
    pp_plan p;
    pr_model m;
    int rc = pr_plan_load_text("plan.json", text, len, &td.diag, &p, &m);
    if (rc == 0) {
        pp_plan_free(&p);
        pr_model_free(&m);
    }
    *msg = strdup(tu_diag_text(&td));
    tu_diag_close(&td);
    return rc;
}

static int load(const char *text, char **msg) { return load_n(text, strlen(text), msg); }

/* The first line of msg, NUL-terminated in place. */
static const char *first_line(char *msg)
{
    char *nl = strchr(msg, '\n');
    if (nl)
        *nl = '\0';
    return msg;
}

/* ---- strict JSON: each refusal with its LINE:COL, path and reason ---- */

typedef struct refusal {
    const char *text;
    size_t len;        /* 0: strlen(text) (set for texts holding NUL bytes) */
    const char *error; /* the first line of the message, after "plan.json:" */
} refusal;

static const refusal refusals[] = {
    /* duplicate keys: cJSON took the first, Python's json the last */
    {"{\"model\": {\"layers\": 4, \"layers\": 8}}", 0,
     "1:25: error: model: duplicate key \"layers\" (first at 1:12)"},
    {"{\"a\": 1,\n \"\\u0061\": 2}", 0, "2:2: error: duplicate key \"a\" (first at 1:2)"},
    /* NUL: escaped in a string (a C string would end there), raw in a string, between tokens */
    {"{\"devices\": [{\"ops\": [{\"op\": \"F\\u0000junk\"}]}]}", 0,
     "1:32: error: devices[0].ops[0].op: \\u0000 in a string: NUL characters are not allowed (a C "
     "string would end there)"},
    {"{\"op\": \"F\0junk\"}", 16, "1:10: error: op: a NUL byte in a string"},
    {"{\"a\": 1,\0 \"b\": 2}", 17,
     "1:9: error: expected a key (a string in double quotes), got a NUL byte (not JSON text)"},
    {"{\"a\": 1\0}", 9, "1:8: error: a: expected ',' or '}' after the member, got a NUL byte (not JSON text)"},
    {"\0", 1, "1:1: error: expected a value, got a NUL byte (not JSON text)"},
    /* numbers outside the JSON grammar */
    {"{\"version\": 01}", 0, "1:13: error: version: '01' is not a JSON value: a leading zero"},
    {"{\"version\": 1.}", 0, "1:13: error: version: '1.' is not a JSON value: a digit must follow the '.'"},
    {"{\"version\": +1}", 0, "1:13: error: version: '+1' is not a JSON value: a JSON number has no '+' sign"},
    {"{\"version\": .5}", 0,
     "1:13: error: version: '.5' is not a JSON value: a JSON number starts with a digit (0.5, not .5)"},
    {"{\"lr\": NaN}", 0, "1:8: error: lr: 'NaN' is not a JSON value: JSON has no NaN or Infinity"},
    {"{\"lr\": -Infinity}", 0, "1:8: error: lr: '-Infinity' is not a JSON value: JSON has no NaN or Infinity"},
    {"{\"lr\": 0x10}", 0, "1:8: error: lr: '0x10' is not a JSON value: JSON has no hexadecimal numbers"},
    {"{\"lr\": 1e}", 0, "1:8: error: lr: '1e' is not a JSON value: the exponent has no digits"},
    {"{\"lr\": -}", 0, "1:8: error: lr: '-' is not a JSON value: a digit must follow the '-'"},
    {"{\"lr\": 1.5.2}", 0, "1:8: error: lr: '1.5.2' is not a JSON value: unexpected characters after the number"},
    {"{\"x\": True}", 0, "1:7: error: x: 'True' is not a JSON value: true, false and null are lower case"},
    {"{\"x\": [1, 2, nope]}", 0, "1:14: error: x[2]: 'nope' is not a JSON value"},
    /* numbers a double cannot hold (read as infinity, they were refused without a place:
     * "version: inf is not an integer"); too small ones round to 0, as every reader does */
    {"{\"version\": 1e400}", 0, "1:13: error: version: 1e400 is out of range: larger than a double holds (about 1.8e308)"},
    {"{\"lr\": [0, -1.5E+99999999999999999999]}", 0,
     "1:12: error: lr[1]: -1.5E+99999999999999999999 is out of range: larger than a double holds (about 1.8e308)"},
    /* strings */
    {"{\"a\": \"\\x41\"}", 0,
     "1:8: error: a: \\ before 'x' is not a JSON escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)"},
    {"{\"a\": \"\\u12\"}", 0, "1:8: error: a: \\u needs four hex digits"},
    {"{\"a\": \"\\ud800\"}", 0, "1:8: error: a: \\ud800 is a lone high surrogate (a \\uDC00 to \\uDFFF must follow)"},
    {"{\"a\": \"\\udc00\"}", 0, "1:8: error: a: \\udc00 is a lone low surrogate"},
    {"{\"a\": \"x\ty\"}", 0, "1:9: error: a: a raw control character (byte 0x09) in a string: write it as an escape"},
    {"{\"a\": \"\xc3\x28\"}", 0, "1:8: error: a: invalid UTF-8 in a string (byte 0xc3)"},
    {"{\"a\": \"\xed\xa0\x80\"}", 0, "1:8: error: a: invalid UTF-8 in a string (byte 0xed)"},
    {"{\"a\": 'x'}", 0, "1:7: error: a: expected a value, got '''"},
    /* structure */
    {"{\"a\": 1,}", 0, "1:9: error: expected a key (a string in double quotes), got '}'"},
    {"{\"a\" 1}", 0, "1:6: error: a: expected ':' after the key, got '1'"},
    {"{\"a\": [1 2]}", 0, "1:10: error: a[0]: expected ',' or ']' after the element, got '2'"},
    {"{\"a\": [1,", 0, "1:10: error: a[1]: unexpected end of the file: expected a value"},
    {"{\"a\": \"abc", 0, "1:11: error: a: unexpected end of the file in a string"},
    {"{\"a\\nb\": [01]}", 0, "1:11: error: a\\u000ab[0]: '01' is not a JSON value: a leading zero"},
    {"{} x", 0, "1:4: error: trailing characters after the JSON value: 'x'"},
    {"  \n ", 0, "2:2: error: no JSON value (the file is empty)"},
};

START_TEST(test_json_refusals)
{
    const refusal *r = &refusals[_i];
    char *msg;
    ck_assert_int_eq(load_n(r->text, r->len ? r->len : strlen(r->text), &msg), 1);
    char want[512];
    snprintf(want, sizeof want, "plan.json:%s", r->error);
    ck_assert_str_eq(first_line(msg), want);
    free(msg);
}
END_TEST

/* Range without an exponent: 400 digits overflow (and are shown clipped),
 * 400 decimals do not (they round to a tiny number). */
START_TEST(test_json_long_numbers)
{
    char text[512];
    pr_json_error e;
    int n = snprintf(text, sizeof text, "{\"lr\": 1");
    for (int i = 0; i < 400; i++)
        text[n++] = '0';
    snprintf(text + n, sizeof text - (size_t)n, "}");
    ck_assert_int_eq(pr_json_check(text, strlen(text), false, &e), 1);
    ck_assert_int_eq(e.offset, 7);
    ck_assert_str_eq(e.msg, "lr: 1000000000000000000000000000000000000000... is out of range: larger than a double holds (about 1.8e308)");
    n = snprintf(text, sizeof text, "{\"lr\": 0.");
    for (int i = 0; i < 400; i++)
        text[n++] = '0';
    snprintf(text + n, sizeof text - (size_t)n, "1}");
    ck_assert_msg(pr_json_check(text, strlen(text), false, &e) == 0, "refused: %s", e.msg);
}
END_TEST

/* The cases on a whole plan: a second "model" appended ran with
 * the first; an op "F\u0000junk" ran as F. */
START_TEST(test_json_refusals_in_a_plan)
{
    char *text = named_plan("1f1b-2x4");
    size_t n = strlen(text);
    char *end = strrchr(text, '}');
    ck_assert_ptr_nonnull(end);
    char *twice = malloc(n + 64);
    memcpy(twice, text, (size_t)(end - text));
    strcpy(twice + (end - text), ", \"model\": {\"kind\": \"mlp\"}}");
    char *msg;
    ck_assert_int_eq(load(twice, &msg), 1);
    ck_assert_msg(strstr(msg, ": error: duplicate key \"model\" (first at ") != NULL, "got: %s", msg);
    free(msg);
    free(twice);

    char *op = strstr(text, "\"op\":\t\"F\"");
    ck_assert_ptr_nonnull(op);
    char *junk = malloc(n + 64);
    size_t at = (size_t)(op - text) + strlen("\"op\":\t\"F");
    memcpy(junk, text, at);
    strcpy(junk + at, "\\u0000junk");
    strcat(junk, text + at);
    ck_assert_int_eq(load(junk, &msg), 1);
    ck_assert_msg(strstr(msg, ": error: devices[0].ops[0].op: \\u0000 in a string") != NULL, "got: %s", msg);
    free(msg);
    free(junk);

    /* a UTF-8 byte-order mark is skipped (RFC 8259 allows it) */
    char *bom = malloc(n + 4);
    memcpy(bom, "\xEF\xBB\xBF", 3);
    memcpy(bom + 3, text, n + 1);
    ck_assert_msg(load(bom, &msg) == 0, "refused: %s", msg);
    free(msg);
    free(bom);
    free(text);
}
END_TEST

/* Depth PR_JSON_MAX_DEPTH is JSON (then not a plan); one more is refused
 * as too deep, not as "malformed JSON". */
START_TEST(test_json_nesting_limit)
{
    char text[2 * PR_JSON_MAX_DEPTH + 8];
    char *msg;
    for (int extra = 0; extra < 2; extra++) {
        int depth = PR_JSON_MAX_DEPTH + extra, k = 0;
        for (int i = 0; i < depth; i++)
            text[k++] = '[';
        for (int i = 0; i < depth; i++)
            text[k++] = ']';
        text[k] = '\0';
        ck_assert_int_eq(load(text, &msg), 1);
        if (!extra) {
            ck_assert_str_eq(msg, "pprun: error: plan.json: expected a JSON object at the top, got an array\n");
        } else {
            ck_assert_msg(strncmp(msg, "plan.json:1:101: error: [0][0][0]", 33) == 0, "got: %s", msg);
            ck_assert_msg(strstr(first_line(msg), "...: nested deeper than 100 arrays and objects") != NULL,
                          "got: %s", msg);
        }
        free(msg);
    }
}
END_TEST

/* Objects with many keys find duplicates by sorting, reported at the
 * repeat that comes first in the text. */
START_TEST(test_json_duplicate_in_a_large_object)
{
    char text[1024];
    int k = snprintf(text, sizeof text, "{");
    for (int i = 0; i < 40; i++)
        k += snprintf(text + k, sizeof text - (size_t)k, "\"k%d\": %d, ", i, i);
    snprintf(text + k, sizeof text - (size_t)k, "\"k31\": 0, \"k7\": 0}");
    char *msg;
    ck_assert_int_eq(load(text, &msg), 1);
    ck_assert_msg(strstr(first_line(msg), ": error: duplicate key \"k31\" (first at 1:") != NULL, "got: %s", msg);
    free(msg);
}
END_TEST

/* The start of a stream: incomplete is fine, wrong is not. */
START_TEST(test_json_prefix)
{
    static const char *const fine[] = {"", "  ", "{\"a\": [1, 2", "{\"a\": tr", "[-", "[1.", "[1e", "[1e+",
                                       "{\"a\": \"\\ud8", "[\"\xe2\x82"};
    static const char *const wrong[] = {"yyyy\ny", "yyyy", "[tru5", "[1.x", "[0x", "{\"a\": 01,", "{\"a\" 1",
                                        "{} x", "[1 2"};
    pr_json_error e;
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++)
        ck_assert_msg(pr_json_check(fine[i], strlen(fine[i]), true, &e) == 0, "'%s': %s", fine[i], e.msg);
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++)
        ck_assert_msg(pr_json_check(wrong[i], strlen(wrong[i]), true, &e) == 1, "'%s' accepted", wrong[i]);
    char zeros[16] = {0};
    ck_assert_int_eq(pr_json_check(zeros, sizeof zeros, true, &e), 1);
    ck_assert_str_eq(e.msg, "expected a value, got a NUL byte (not JSON text)");
    /* the whole text: running out is an error */
    ck_assert_int_eq(pr_json_check("{\"a\": [1, 2", 11, false, &e), 1);
    ck_assert_str_eq(e.msg, "a[1]: unexpected end of the file in an array");
}
END_TEST

/* ---- reading: bounded, streams refused early, no silent wait ---- */

typedef struct scratch {
    char dir[64];
    char path[96];
} scratch;

static void scratch_open(scratch *s, const char *name)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/pprun-input-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(s->dir));
    snprintf(s->path, sizeof s->path, "%s/%s", s->dir, name);
}

static void scratch_close(scratch *s)
{
    unlink(s->path);
    rmdir(s->dir);
}

/* pr_plan_read of path with bound max: the status, the messages in *msg. */
static int read_input(const char *path, size_t max, char **msg, size_t *len)
{
    tu_diag td;
    tu_diag_open(&td);
    td.diag.prog = "pprun";
    char *text;
    int rc = pr_plan_read(path, max, &td.diag, &text, len);
    if (rc == 0)
        free(text);
    *msg = strdup(tu_diag_text(&td));
    tu_diag_close(&td);
    return rc;
}

START_TEST(test_read_regular_file_bound)
{
    scratch s;
    scratch_open(&s, "plan.json");
    FILE *f = fopen(s.path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"format\": \"ppcc-plan\"}    ", f);
    fclose(f);
    char *msg;
    size_t len;
    ck_assert_int_eq(read_input(s.path, 27, &msg, &len), 0);
    ck_assert_uint_eq(len, 27);
    free(msg);
    ck_assert_int_eq(read_input(s.path, 26, &msg, &len), 1);
    char want[256];
    snprintf(want, sizeof want, "pprun: error: %s: 27 bytes, more than the largest plan pprun reads (26 bytes)\n",
             s.path);
    ck_assert_str_eq(msg, want);
    free(msg);
    scratch_close(&s);
    /* a directory is not read at all */
    ck_assert_int_eq(read_input("/tmp", 1 << 20, &msg, &len), 1);
    ck_assert_str_eq(msg, "pprun: error: /tmp is a directory, not a plan\n");
    free(msg);
}
END_TEST

/* A writer thread feeding a FIFO: `bytes` of `fill` in 64 KiB writes after
 * `delay_ms`, or `text`; it records how much the reader took. */
typedef struct writer {
    const char *path;
    int delay_ms;
    const char *text;
    char fill;
    size_t bytes, written;
} writer;

static void *write_fifo(void *arg)
{
    writer *w = arg;
    if (w->delay_ms)
        usleep((useconds_t)w->delay_ms * 1000);
    int fd = open(w->path, O_WRONLY);
    if (fd < 0)
        return NULL;
    if (w->text) {
        size_t n = strlen(w->text);
        for (size_t off = 0; off < n;) {
            ssize_t r = write(fd, w->text + off, n - off);
            if (r <= 0)
                break;
            off += (size_t)r;
        }
    } else {
        static char chunk[1 << 16];
        memset(chunk, w->fill, sizeof chunk);
        while (w->written < w->bytes) {
            ssize_t r = write(fd, chunk, sizeof chunk);
            if (r <= 0) /* EPIPE: the reader stopped */
                break;
            w->written += (size_t)r;
        }
    }
    close(fd);
    return NULL;
}

static int read_fifo(writer *w, size_t max, char **msg, size_t *len)
{
    scratch s;
    scratch_open(&s, "plan.fifo");
    ck_assert_int_eq(mkfifo(s.path, 0600), 0);
    signal(SIGPIPE, SIG_IGN);
    w->path = s.path;
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, write_fifo, w), 0);
    int rc = read_input(s.path, max, msg, len);
    pthread_join(t, NULL);
    scratch_close(&s);
    return rc;
}

/* /dev/zero through a FIFO: refused at its first chunk, not read to the bound. */
START_TEST(test_read_stream_refused_early)
{
    writer w = {.fill = '\0', .bytes = 256u << 20};
    char *msg;
    size_t len;
    ck_assert_int_eq(read_fifo(&w, PR_PLAN_MAX_BYTES, &msg, &len), 1);
    ck_assert_msg(strstr(msg, ":1:1: error: expected a value, got a NUL byte (not JSON text)\n") != NULL, "got: %s",
                  msg);
    ck_assert_msg(w.written < (4u << 20), "the reader took %zu bytes", w.written);
    free(msg);
    /* `yes` */
    w = (writer){.fill = 'y', .bytes = 256u << 20};
    ck_assert_int_eq(read_fifo(&w, PR_PLAN_MAX_BYTES, &msg, &len), 1);
    ck_assert_msg(strstr(msg, ":1:1: error: 'yyyy") != NULL, "got: %s", msg);
    ck_assert_msg(w.written < (4u << 20), "the reader took %zu bytes", w.written);
    free(msg);
}
END_TEST

/* A stream that could begin a plan is read up to the bound, no further. */
START_TEST(test_read_stream_bound)
{
    writer w = {.fill = ' ', .bytes = 4u << 20};
    char *msg;
    size_t len;
    ck_assert_int_eq(read_fifo(&w, 1u << 20, &msg, &len), 1);
    ck_assert_msg(strstr(msg, "plan.fifo: more than the largest plan pprun reads (1048576 bytes") != NULL, "got: %s",
                  msg);
    ck_assert_msg(w.written <= (1u << 20) + (1u << 17), "the reader took %zu bytes", w.written);
    free(msg);
}
END_TEST

/* A FIFO with no writer yet: a note after a second, then the plan when it comes. */
START_TEST(test_read_fifo_without_writer)
{
    char *text = named_plan("1f1b-2x4");
    writer w = {.delay_ms = 1500, .text = text};
    char *msg;
    size_t len;
    ck_assert_int_eq(read_fifo(&w, PR_PLAN_MAX_BYTES, &msg, &len), 0);
    ck_assert_uint_eq(len, strlen(text));
    ck_assert_msg(strstr(msg, "pprun: note: waiting for ") == msg &&
                      strstr(msg, "plan.fifo: nothing written to it yet (a FIFO without a writer?)\n") != NULL,
                  "got: %s", msg);
    free(msg);
    free(text);
}
END_TEST

/* ---- time linear in the ops, whatever the order of group ids ---- */

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of 3 CPU seconds to load a 2-device GPipe plan of M micro-batches. */
static double load_seconds(int M, bool descending, long *ops)
{
    tg_spec s = {"gpipe", 2, 2, M, NULL, false, 2, 1, M, 0.01, 1, descending};
    char *text = tg_plan_json(&s);
    double best = 1e300;
    for (int k = 0; k < 3; k++) {
        pp_diag d;
        pp_diag_init(&d, stderr, "pprun");
        pp_plan p;
        pr_model m;
        double t0 = cpu_now();
        ck_assert_int_eq(pr_plan_load_text("plan.json", text, strlen(text), &d, &p, &m), 0);
        double t = cpu_now() - t0;
        *ops = pp_plan_total_ops(&p);
        pp_plan_free(&p);
        pr_model_free(&m);
        if (t < best)
            best = t;
    }
    free(text);
    return best;
}

/* Eight times the ops: eight times the time when linear, 64 when
 * quadratic (decreasing group ids made the loader look back over the
 * whole list at every group: 93 s for 524k ops; x31 here).  CPU time of
 * this thread, best of 3, and a bound of twice the linear ratio, so that a
 * loaded machine does not fail it. */
START_TEST(test_load_time_is_linear)
{
    for (int descending = 0; descending < 2; descending++) {
        long small_ops, big_ops;
        double small = load_seconds(2048, descending, &small_ops);
        double big = load_seconds(8 * 2048, descending, &big_ops);
        ck_assert_int_gt(big_ops, 8 * small_ops - 100);
        ck_assert_msg(big < 16 * small, "groups %s: %ld ops in %.4f s, %ld ops in %.4f s (x%.1f)",
                      descending ? "descending" : "ascending", small_ops, small, big_ops, big, big / small);
    }
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("plan_input");
    TCase *tc = tcase_create("plan_input");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_json_refusals, 0, (int)(sizeof refusals / sizeof *refusals));
    tcase_add_test(tc, test_json_long_numbers);
    tcase_add_test(tc, test_json_refusals_in_a_plan);
    tcase_add_test(tc, test_json_nesting_limit);
    tcase_add_test(tc, test_json_duplicate_in_a_large_object);
    tcase_add_test(tc, test_json_prefix);
    tcase_add_test(tc, test_read_regular_file_bound);
    tcase_add_test(tc, test_read_stream_refused_early);
    tcase_add_test(tc, test_read_stream_bound);
    tcase_add_test(tc, test_read_fifo_without_writer);
    tcase_add_test(tc, test_load_time_is_linear);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(make_suite());
}
