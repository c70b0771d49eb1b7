/*
 * json.h — strict JSON (RFC 8259) for the plan loader: pr_json_check
 * proves a text is one JSON value under the rules below, then the reading
 * functions walk the checked text in place (no tree: reading a plan costs
 * the text and the ops it holds, nothing per value).
 */
#ifndef PR_JSON_H
#define PR_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Arrays and objects nest at most this deep (RFC 8259 section 9 lets a
 * parser set the limit; a plan nests 5 deep). */
#define PR_JSON_MAX_DEPTH 100

typedef enum pr_json_type {
    PR_JSON_NONE, /* a member that is not there */
    PR_JSON_NULL,
    PR_JSON_BOOL,
    PR_JSON_NUMBER,
    PR_JSON_STRING,
    PR_JSON_ARRAY,
    PR_JSON_OBJECT,
} pr_json_type;

/* Why a text was refused: where (a byte offset) and what, the message
 * starting with the JSON path of the value when it is inside one. */
typedef struct pr_json_error {
    size_t offset;
    char msg[768];
} pr_json_error;

/* 0 if text[0, len) is one JSON value with only whitespace around it (a
 * UTF-8 byte-order mark first is skipped), and none of: a NUL byte, a
 * \u0000 escape, invalid UTF-8 or a lone surrogate, a number outside the
 * JSON grammar (01, 1., +1, .5, NaN, Infinity, 0x10), a key twice in one
 * object, nesting past PR_JSON_MAX_DEPTH.  Else 1 and *err says why.
 * With `prefix`, text is the start of a longer text: running out of it
 * is not an error, anything else is (a stream is refused as soon as what
 * arrived cannot start a JSON text). */
int pr_json_check(const char *text, size_t len, bool prefix, pr_json_error *err);

/* A value inside a checked text.  The functions below take only values
 * from pr_json_root of a text pr_json_check accepted (whole, not prefix),
 * and read nothing past the end of the root value. */
typedef struct pr_json {
    const char *at; /* its first byte */
    pr_json_type type;
} pr_json;

pr_json pr_json_root(const char *text, size_t len);
const char *pr_json_type_name(pr_json_type type); /* "a number", "an object", ... */

/* One pass over the members of obj: vals[k] is the member named keys[k]
 * (plain ASCII), or of type PR_JSON_NONE.  Returns the end of obj (past
 * its '}'), or NULL when it stopped early: at the last key it looked for,
 * whose value is an array or an object. */
const char *pr_json_members(pr_json obj, const char *const *keys, int n, pr_json *vals);

/* Elements of an array, in order: it = pr_json_elements(arr), then
 * pr_json_next(&it, &v) until it returns false.  Setting it.cur_end to the
 * end of the element just returned (from pr_json_members) saves a scan. */
typedef struct pr_json_iter {
    const char *next;    /* the element after cur, once known; NULL at the end */
    const char *cur;     /* the element returned last */
    const char *cur_end; /* past cur, or NULL if unknown */
} pr_json_iter;
pr_json_iter pr_json_elements(pr_json arr);
bool pr_json_next(pr_json_iter *it, pr_json *v);
int pr_json_length(pr_json arr); /* a scan of the array: for small ones */

double pr_json_number(pr_json v);
bool pr_json_true(pr_json v);
/* The decoded string, NUL-terminated, cut to fit buf[cap] ("..." marks a
 * cut; control characters are shown as \uXXXX when `for_message`).
 * Returns false if it was cut. */
bool pr_json_string(pr_json v, char *buf, size_t cap, bool for_message);

#endif
