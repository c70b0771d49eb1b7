/*
 * json.c — strict JSON (RFC 8259) for the plan loader (json.h).
 *
 * A lenient parser lets through texts that another reader would take
 * differently: cJSON keeps the first of two equal keys where Python keeps
 * the last, ends a string at \u0000 ("F\u0000junk" read as "F"), reads 01
 * and 1. as numbers.  So every text is first checked whole, in one pass,
 * against the grammar and the rules in json.h; each refusal names the byte
 * offset and the JSON path of the value.  Reading then walks the checked
 * text in place, trusting it: no tree is built, so a plan costs its text
 * and the ops read from it, not ten times the text in nodes.
 *
 * The check is iterative (an explicit stack of PR_JSON_MAX_DEPTH frames),
 * so nesting is limited by a rule, not by the C stack.  Keys of the open
 * objects are kept decoded (for duplicates and for paths): small objects
 * compare each new key with the earlier ones, larger ones sort their keys
 * when they close, so no input makes the check quadratic.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "pp.h"

typedef unsigned char uchar;

static bool is_digit(uchar ch) { return ch >= '0' && ch <= '9'; }
static bool is_space(uchar ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }
/* Bytes a number or a bare word (true, NaN, 0x1f, +1, ...) is made of. */
static bool is_word(uchar ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '+' ||
           ch == '-' || ch == '.' || ch == '_';
}

static int hex_value(uchar ch)
{
    if (is_digit(ch))
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Appends code point u as UTF-8; returns the bytes written (at most 4). */
static int put_utf8(char *out, uint32_t u)
{
    if (u < 0x80) {
        out[0] = (char)u;
        return 1;
    }
    if (u < 0x800) {
        out[0] = (char)(0xC0 | u >> 6);
        out[1] = (char)(0x80 | (u & 0x3F));
        return 2;
    }
    if (u < 0x10000) {
        out[0] = (char)(0xE0 | u >> 12);
        out[1] = (char)(0x80 | ((u >> 6) & 0x3F));
        out[2] = (char)(0x80 | (u & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | u >> 18);
    out[1] = (char)(0x80 | ((u >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((u >> 6) & 0x3F));
    out[3] = (char)(0x80 | (u & 0x3F));
    return 4;
}

/* ------------------------------------------------------------------ */
/* The check                                                           */
/* ------------------------------------------------------------------ */

typedef struct frame {
    bool object;
    bool has_key;     /* object: the current member's key has been read */
    long index;       /* array: the current element */
    size_t key;       /* object: the current key, an entry of keys */
    size_t first_key; /* object: its keys are entries first_key.. */
} frame;

typedef struct key_entry {
    size_t off, len; /* decoded, in the key bytes */
    size_t at;       /* its opening quote in the text */
} key_entry;

typedef struct checker {
    const uchar *s;
    size_t len, pos;
    bool prefix, ran_out; /* prefix: the text stopped early (not an error) */
    int depth;
    frame st[PR_JSON_MAX_DEPTH];
    char *kb; /* decoded keys of the open objects, a stack */
    size_t kb_len, kb_cap;
    key_entry *ke;
    size_t ke_len, ke_cap;
    pr_json_error *err;
} checker;

/* An object with more keys than this sorts them when it closes. */
enum { FEW_KEYS = 16 };

static void key_bytes(checker *c, const void *b, size_t n)
{
    if (c->kb_len + n > c->kb_cap) {
        size_t cap = c->kb_cap;
        while (cap < c->kb_len + n)
            cap *= 2;
        char *kb = realloc(c->kb, cap);
        if (!kb)
            pp_out_of_memory((double)cap, "the JSON checker's keys");
        c->kb = kb;
        c->kb_cap = cap;
    }
    memcpy(c->kb + c->kb_len, b, n);
    c->kb_len += n;
}

/* Appends s[0, n) to out (cap bytes, at *len) readably: control
 * characters as \uXXXX, clipped to about `max` bytes at a character
 * boundary with "...". */
static void put_readable(char *out, size_t cap, size_t *len, const char *s, size_t n, size_t max)
{
    size_t o = *len;
    for (size_t i = 0; i < n; i++) {
        uchar ch = (uchar)s[i];
        /* at a character's first byte: room for the widest one and "..." */
        if ((ch & 0xC0) != 0x80 && (i >= max || o + 6 + 4 >= cap)) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (ch < 0x20 || ch == 0x7F)
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        else
            out[o++] = (char)ch;
    }
    out[o] = '\0';
    *len = o;
}

/* The JSON path of the value at the top of the stack: model.layers,
 * devices[0].ops[3]; "" at the top level. */
static size_t render_path(const checker *c, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < c->depth; i++) {
        const frame *f = &c->st[i];
        if (n + 32 >= cap) {
            n += (size_t)snprintf(out + n, cap - n, "...");
            break;
        }
        if (f->object) {
            if (!f->has_key)
                break;
            if (n > 0)
                out[n++] = '.';
            const key_entry *k = &c->ke[f->key];
            put_readable(out, cap - 8, &n, c->kb + k->off, k->len, 48);
        } else {
            n += (size_t)snprintf(out + n, cap - n, "[%ld]", f->index);
        }
    }
    return n;
}

static bool __attribute__((format(printf, 3, 4))) fail(checker *c, size_t at, const char *fmt, ...)
{
    char path[256];
    size_t n = render_path(c, path, sizeof path);
    size_t o = n ? (size_t)snprintf(c->err->msg, sizeof c->err->msg, "%s: ", path) : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->msg + o, sizeof c->err->msg - o, fmt, ap);
    va_end(ap);
    c->err->offset = at;
    return false;
}

/* The text ended where more was needed: the end of a prefix, else an error. */
static bool ran_out(checker *c, const char *where)
{
    if (c->prefix) {
        c->ran_out = true;
        return false;
    }
    return fail(c, c->len, "unexpected end of the file%s", where);
}

/* "'x'", "a NUL byte", "byte 0xc3", "the end of the file". */
static const char *describe(const checker *c, size_t at, char *buf, size_t cap)
{
    if (at >= c->len)
        return "the end of the file";
    uchar ch = c->s[at];
    if (ch == 0)
        return "a NUL byte (not JSON text)";
    if (ch > 0x20 && ch < 0x7F)
        snprintf(buf, cap, "'%c'", ch);
    else
        snprintf(buf, cap, "byte 0x%02x", ch);
    return buf;
}

static void skip_space(checker *c)
{
    while (c->pos < c->len && is_space(c->s[c->pos]))
        c->pos++;
}

/* Four hex digits at s[p]: the value, -1 if not hex, -2 if the text ends first. */
static long hex4(const checker *c, size_t p)
{
    long u = 0;
    for (int i = 0; i < 4; i++) {
        if (p + (size_t)i >= c->len)
            return -2;
        int h = hex_value(c->s[p + (size_t)i]);
        if (h < 0)
            return -1;
        u = u * 16 + h;
    }
    return u;
}

/* The escape at c->pos (its backslash); its bytes go to the keys if `store`. */
static bool check_escape(checker *c, bool store)
{
    size_t p = c->pos;
    if (p + 1 >= c->len)
        return ran_out(c, " in a string");
    uchar e = c->s[p + 1];
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit = e ? strchr(from, e) : NULL;
    if (hit) {
        if (store)
            key_bytes(c, &to[hit - from], 1);
        c->pos += 2;
        return true;
    }
    if (e != 'u') {
        char buf[16];
        return fail(c, p, "\\ before %s is not a JSON escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
                    describe(c, p + 1, buf, sizeof buf));
    }
    long u = hex4(c, p + 2);
    if (u == -2)
        return ran_out(c, " in a string");
    if (u < 0)
        return fail(c, p, "\\u needs four hex digits");
    size_t n = 6;
    if (u == 0)
        return fail(c, p, "\\u0000 in a string: NUL characters are not allowed (a C string would end there)");
    if (u >= 0xDC00 && u <= 0xDFFF)
        return fail(c, p, "\\u%04lx is a lone low surrogate", u);
    if (u >= 0xD800 && u <= 0xDBFF) {
        long lo = -1;
        if (p + 7 < c->len && c->s[p + 6] == '\\' && c->s[p + 7] == 'u')
            lo = hex4(c, p + 8);
        else if (p + 6 >= c->len || (p + 7 >= c->len && c->s[p + 6] == '\\'))
            lo = -2;
        if (lo == -2)
            return ran_out(c, " in a string");
        if (lo < 0xDC00 || lo > 0xDFFF)
            return fail(c, p, "\\u%04lx is a lone high surrogate (a \\uDC00 to \\uDFFF must follow)", u);
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        n = 12;
    }
    if (store) {
        char b[4];
        key_bytes(c, b, (size_t)put_utf8(b, (uint32_t)u));
    }
    c->pos += n;
    return true;
}

/* The string at c->pos (its opening quote), decoded into the keys if `store`. */
static bool check_string(checker *c, bool store)
{
    const uchar *s = c->s;
    c->pos++;
    for (;;) {
        size_t p = c->pos;
        while (p < c->len && s[p] >= 0x20 && s[p] < 0x80 && s[p] != '"' && s[p] != '\\')
            p++;
        if (store)
            key_bytes(c, s + c->pos, p - c->pos);
        c->pos = p;
        if (p == c->len)
            return ran_out(c, " in a string");
        uchar ch = s[p];
        if (ch == '"') {
            c->pos++;
            return true;
        }
        if (ch == '\\') {
            if (!check_escape(c, store))
                return false;
            continue;
        }
        if (ch == 0)
            return fail(c, p, "a NUL byte in a string");
        if (ch < 0x20)
            return fail(c, p, "a raw control character (byte 0x%02x) in a string: write it as an escape",
                        ch);
        int n = pp_utf8_length(s + p, c->len - p);
        if (n < 0)
            return ran_out(c, " in a string");
        if (n == 0)
            return fail(c, p, "invalid UTF-8 in a string (byte 0x%02x)", ch);
        if (store)
            key_bytes(c, s + p, (size_t)n);
        c->pos += (size_t)n;
    }
}

/* NULL if w[0, n) is a JSON number, else what is wrong with it;
 * *cut says whether it went wrong only at its end (a prefix of one). */
static const char *number_error(const char *w, size_t n, bool *cut)
{
    size_t i = 0;
    const char *why = NULL;
    if (w[i] == '-')
        i++;
    if (i == n || !is_digit((uchar)w[i])) {
        why = "a digit must follow the '-'";
        goto out;
    }
    if (w[i] == '0') {
        i++;
        if (i < n && is_digit((uchar)w[i]))
            return *cut = false, "a leading zero";
        if (i < n && (w[i] == 'x' || w[i] == 'X'))
            return *cut = false, "JSON has no hexadecimal numbers";
    } else {
        while (i < n && is_digit((uchar)w[i]))
            i++;
    }
    if (i < n && w[i] == '.') {
        i++;
        if (i == n || !is_digit((uchar)w[i])) {
            why = "a digit must follow the '.'";
            goto out;
        }
        while (i < n && is_digit((uchar)w[i]))
            i++;
    }
    if (i < n && (w[i] == 'e' || w[i] == 'E')) {
        i++;
        if (i < n && (w[i] == '+' || w[i] == '-'))
            i++;
        if (i == n || !is_digit((uchar)w[i])) {
            why = "the exponent has no digits";
            goto out;
        }
        while (i < n && is_digit((uchar)w[i]))
            i++;
    }
    if (i < n)
        why = "unexpected characters after the number";
out:
    *cut = why && i == n;
    return why;
}

static bool same_word(const char *w, size_t n, const char *lit, bool any_case)
{
    if (strlen(lit) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = w[i], b = lit[i];
        if (any_case && a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (a != b)
            return false;
    }
    return true;
}

/* A JSON number w[0, n) that a double holds: one past DBL_MAX reads as
 * infinity, which no field of a plan may be (one too small to hold reads as
 * 0 or a subnormal, as every JSON reader rounds it).  Only a number with
 * an exponent or hundreds of digits can overflow: the rest skip strtod,
 * so the check stays cheap on a plan of millions of numbers. */
static bool number_in_range(checker *c, size_t at, const char *w, size_t n)
{
    if (n < 300 && !memchr(w, 'e', n) && !memchr(w, 'E', n))
        return true;
    char small[64], *copy = n < sizeof small ? small : malloc(n + 1);
    if (!copy)
        pp_out_of_memory((double)n + 1, "a JSON number");
    memcpy(copy, w, n);
    copy[n] = '\0';
    bool finite = isfinite(strtod(copy, NULL));
    if (copy != small)
        free(copy);
    if (finite)
        return true;
    char shown[128];
    size_t sl = 0;
    put_readable(shown, sizeof shown, &sl, w, n, 40);
    return fail(c, at, "%s is out of range: larger than a double holds (about 1.8e308)", shown);
}

/* A number or true / false / null at c->pos. */
static bool check_word(checker *c)
{
    size_t p = c->pos, e = p;
    while (e < c->len && is_word(c->s[e]))
        e++;
    const char *w = (const char *)c->s + p;
    size_t n = e - p;
    bool cut = false;
    if (e == c->len && c->prefix) { /* it may go on: wrong only if no word could begin so */
        static const char *const literals[] = {"true", "false", "null"};
        for (int k = 0; k < 3; k++)
            if (n <= strlen(literals[k]) && memcmp(w, literals[k], n) == 0)
                return ran_out(c, "");
        if ((w[0] == '-' || is_digit((uchar)w[0])) && (!number_error(w, n, &cut) || cut))
            return ran_out(c, "");
    }
    c->pos = e;
    if (same_word(w, n, "true", false) || same_word(w, n, "false", false) || same_word(w, n, "null", false))
        return true;
    const char *why = NULL;
    if (w[0] == '-' || is_digit((uchar)w[0])) {
        why = number_error(w, n, &cut);
        if (!why)
            return number_in_range(c, p, w, n);
    }
    static const char *const nan_inf[] = {"nan", "-nan", "+nan", "infinity", "-infinity", "+infinity", "inf", "-inf", "+inf"};
    for (size_t k = 0; k < sizeof nan_inf / sizeof *nan_inf; k++)
        if (same_word(w, n, nan_inf[k], true))
            why = "JSON has no NaN or Infinity";
    if (same_word(w, n, "true", true) || same_word(w, n, "false", true) || same_word(w, n, "null", true))
        why = "true, false and null are lower case";
    if (!why && w[0] == '+')
        why = "a JSON number has no '+' sign";
    if (!why && w[0] == '.')
        why = "a JSON number starts with a digit (0.5, not .5)";
    char shown[128];
    size_t sl = 0;
    put_readable(shown, sizeof shown, &sl, w, n, 40);
    if (why)
        return fail(c, p, "'%s' is not a JSON value: %s", shown, why);
    return fail(c, p, "'%s' is not a JSON value", shown);
}

static int key_order(const void *a, const void *b, void *kb)
{
    const key_entry *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp((char *)kb + x->off, (char *)kb + y->off, n);
    if (r)
        return r;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

static bool same_key(const checker *c, const key_entry *x, const key_entry *y)
{
    return x->len == y->len && memcmp(c->kb + x->off, c->kb + y->off, x->len) == 0;
}

static bool duplicate(checker *c, const key_entry *first, const key_entry *again)
{
    pp_source src = {NULL, (const char *)c->s, c->len};
    int line, col;
    pp_source_position(&src, first->at, &line, &col);
    char key[128];
    size_t n = 0;
    put_readable(key, sizeof key, &n, c->kb + again->off, again->len, 48);
    return fail(c, again->at, "duplicate key \"%s\" (first at %d:%d)", key, line, col);
}

/* The key just read (entry ke_len - 1) against the earlier keys of its
 * object, while it has few. */
static bool new_key(checker *c, frame *f)
{
    size_t last = c->ke_len - 1;
    if (last - f->first_key < FEW_KEYS)
        for (size_t k = f->first_key; k < last; k++)
            if (same_key(c, &c->ke[k], &c->ke[last]))
                return duplicate(c, &c->ke[k], &c->ke[last]);
    f->key = last;
    f->has_key = true;
    return true;
}

/* The object on top closes: a larger one sorts its keys for duplicates;
 * its keys leave the stack. */
static bool close_object(checker *c, frame *f)
{
    size_t n = c->ke_len - f->first_key;
    if (n > FEW_KEYS) {
        key_entry *k = c->ke + f->first_key;
        qsort_r(k, n, sizeof *k, key_order, c->kb);
        /* report the repeat that comes first in the text */
        size_t best = n;
        for (size_t i = 1; i < n; i++)
            if (same_key(c, &k[i - 1], &k[i]) && (best == n || k[i].at < k[best].at))
                best = i;
        if (best < n) {
            size_t first = best;
            while (first > 0 && same_key(c, &k[first - 1], &k[best]))
                first--;
            f->has_key = false;
            return duplicate(c, &k[first], &k[best]);
        }
    }
    if (n > 0)
        c->kb_len = c->ke[f->first_key].off;
    c->ke_len = f->first_key;
    return true;
}

static bool open_container(checker *c, bool object)
{
    if (c->depth == PR_JSON_MAX_DEPTH)
        return fail(c, c->pos, "nested deeper than %d arrays and objects", PR_JSON_MAX_DEPTH);
    c->st[c->depth++] = (frame){.object = object, .first_key = c->ke_len};
    c->pos++;
    return true;
}

static bool check_text(checker *c)
{
    char buf[32];
    if (c->len >= 3 && memcmp(c->s, "\xEF\xBB\xBF", 3) == 0)
        c->pos = 3;
    skip_space(c);
    if (c->pos == c->len)
        return c->prefix ? ran_out(c, "") : fail(c, c->pos, "no JSON value (the file is empty)");

value: /* a value starts at c->pos (after any space) */
    skip_space(c);
    if (c->pos == c->len)
        return ran_out(c, ": expected a value");
    switch (c->s[c->pos]) {
    case '{':
        if (!open_container(c, true))
            return false;
        skip_space(c);
        if (c->pos < c->len && c->s[c->pos] == '}') {
            c->pos++;
            c->depth--;
            goto after;
        }
        goto member;
    case '[':
        if (!open_container(c, false))
            return false;
        skip_space(c);
        if (c->pos < c->len && c->s[c->pos] == ']') {
            c->pos++;
            c->depth--;
            goto after;
        }
        goto value;
    case '"':
        if (!check_string(c, false))
            return false;
        goto after;
    default:
        if (!is_word(c->s[c->pos]))
            return fail(c, c->pos, "expected a value, got %s", describe(c, c->pos, buf, sizeof buf));
        if (!check_word(c))
            return false;
        goto after;
    }

member: { /* a key is due, after '{' or ',' */
    frame *f = &c->st[c->depth - 1];
    f->has_key = false;
    skip_space(c);
    if (c->pos == c->len)
        return ran_out(c, " in an object");
    if (c->s[c->pos] != '"')
        return fail(c, c->pos, "expected a key (a string in double quotes), got %s",
                    describe(c, c->pos, buf, sizeof buf));
    size_t at = c->pos, off = c->kb_len;
    if (!check_string(c, true))
        return false;
    if (c->ke_len == c->ke_cap) {
        c->ke_cap = c->ke_cap ? 2 * c->ke_cap : 64;
        key_entry *ke = realloc(c->ke, c->ke_cap * sizeof *ke);
        if (!ke)
            pp_out_of_memory((double)c->ke_cap * sizeof *ke, "the JSON checker's keys");
        c->ke = ke;
    }
    c->ke[c->ke_len++] = (key_entry){off, c->kb_len - off, at};
    if (!new_key(c, f))
        return false;
    skip_space(c);
    if (c->pos == c->len)
        return ran_out(c, " in an object");
    if (c->s[c->pos] != ':')
        return fail(c, c->pos, "expected ':' after the key, got %s", describe(c, c->pos, buf, sizeof buf));
    c->pos++;
    goto value;
}

after: /* a value ended at c->pos */
    if (c->depth == 0) {
        skip_space(c);
        if (c->pos < c->len)
            return fail(c, c->pos, "trailing characters after the JSON value: %s",
                        describe(c, c->pos, buf, sizeof buf));
        return true;
    }
    {
        frame *f = &c->st[c->depth - 1];
        skip_space(c);
        if (c->pos == c->len)
            return ran_out(c, f->object ? " in an object" : " in an array");
        uchar ch = c->s[c->pos];
        if (ch == ',') {
            c->pos++;
            if (f->object)
                goto member;
            f->index++;
            goto value;
        }
        if (ch == (f->object ? '}' : ']')) {
            if (f->object && !close_object(c, f))
                return false;
            c->pos++;
            c->depth--;
            goto after;
        }
        return fail(c, c->pos, "expected ',' or '%c' after the %s, got %s", f->object ? '}' : ']',
                    f->object ? "member" : "element", describe(c, c->pos, buf, sizeof buf));
    }
}

int pr_json_check(const char *text, size_t len, bool prefix, pr_json_error *err)
{
    /* the key bytes exist from the start: an empty key points into them too */
    checker c = {.s = (const uchar *)text, .len = len, .prefix = prefix, .err = err, .kb = malloc(256),
                 .kb_cap = 256};
    if (!c.kb)
        pp_out_of_memory(256, "the JSON checker's keys");
    err->offset = 0;
    err->msg[0] = '\0';
    bool ok = check_text(&c);
    free(c.kb);
    free(c.ke);
    return ok || c.ran_out ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* Reading a checked text                                              */
/* ------------------------------------------------------------------ */

static const char *skip_ws(const char *p)
{
    while (is_space((uchar)*p))
        p++;
    return p;
}

/* Past the string whose opening quote is at p. */
static const char *skip_string(const char *p)
{
    for (p++;; p++) {
        if (*p == '"')
            return p + 1;
        if (*p == '\\')
            p++;
    }
}

static const char *skip_value(const char *p)
{
    if (*p == '"')
        return skip_string(p);
    if (*p != '{' && *p != '[') {
        while (is_word((uchar)*p))
            p++;
        return p;
    }
    for (int depth = 0;;) {
        char ch = *p;
        if (ch == '"') {
            p = skip_string(p);
            continue;
        }
        p++;
        if (ch == '{' || ch == '[')
            depth++;
        else if ((ch == '}' || ch == ']') && --depth == 0)
            return p;
    }
}

static pr_json value_at(const char *p)
{
    pr_json_type t;
    switch (*p) {
    case '{': t = PR_JSON_OBJECT; break;
    case '[': t = PR_JSON_ARRAY; break;
    case '"': t = PR_JSON_STRING; break;
    case 't':
    case 'f': t = PR_JSON_BOOL; break;
    case 'n': t = PR_JSON_NULL; break;
    default: t = PR_JSON_NUMBER; break;
    }
    return (pr_json){p, t};
}

pr_json pr_json_root(const char *text, size_t len)
{
    size_t i = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    return value_at(skip_ws(text + i));
}

const char *pr_json_type_name(pr_json_type type)
{
    switch (type) {
    case PR_JSON_NULL: return "null";
    case PR_JSON_BOOL: return "a boolean";
    case PR_JSON_NUMBER: return "a number";
    case PR_JSON_STRING: return "a string";
    case PR_JSON_ARRAY: return "an array";
    case PR_JSON_OBJECT: return "an object";
    default: return "nothing";
    }
}

/* Decodes the string body at p (after the quote) into out[cap] (cap > 4),
 * NUL-terminated; stops early (returns false) when the next character
 * would not fit.  Control characters as \uXXXX when `readable`. */
static bool decode(const char *p, char *out, size_t cap, bool readable)
{
    size_t o = 0;
    for (;;) {
        char b[12];
        int n;
        uchar ch = (uchar)*p;
        if (ch == '"')
            break;
        if (ch != '\\') {
            n = 1;
            b[0] = (char)ch;
            p++;
        } else {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *hit = strchr(from, p[1]);
            if (p[1] != 'u' && hit) {
                n = 1;
                b[0] = to[hit - from];
                p += 2;
            } else {
                uint32_t u = 0;
                for (int i = 2; i < 6; i++)
                    u = u * 16 + (uint32_t)hex_value((uchar)p[i]);
                p += 6;
                if (u >= 0xD800 && u <= 0xDBFF) { /* checked: a low surrogate follows */
                    uint32_t lo = 0;
                    for (int i = 2; i < 6; i++)
                        lo = lo * 16 + (uint32_t)hex_value((uchar)p[i]);
                    p += 6;
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                }
                n = put_utf8(b, u);
            }
        }
        if (readable && n == 1 && ((uchar)b[0] < 0x20 || b[0] == 0x7F))
            n = snprintf(b, sizeof b, "\\u%04x", (uchar)b[0]);
        if (o + (size_t)n >= cap) {
            out[o] = '\0';
            return false;
        }
        memcpy(out + o, b, (size_t)n);
        o += (size_t)n;
    }
    out[o] = '\0';
    return true;
}

bool pr_json_string(pr_json v, char *buf, size_t cap, bool for_message)
{
    if (v.type != PR_JSON_STRING || cap < 8) {
        if (cap)
            buf[0] = '\0';
        return false;
    }
    if (decode(v.at + 1, buf, cap - 3, for_message))
        return true;
    /* cut: back to a character boundary, then "..." */
    size_t o = strlen(buf);
    while (o > 0 && ((uchar)buf[o - 1] & 0xC0) == 0x80)
        o--;
    if (o > 0 && (uchar)buf[o - 1] >= 0xC0)
        o--;
    memcpy(buf + o, "...", 4);
    return false;
}

/* The key whose body starts at k (after the quote), against keys[0, n). */
static int match_key(const char *k, const char *const *keys, int n)
{
    char dec[64];
    const char *end = k;
    while (*end != '"' && *end != '\\')
        end++;
    size_t len = (size_t)(end - k);
    if (*end == '\\') { /* escapes: compare the decoded key */
        if (!decode(k, dec, sizeof dec, false))
            return -1; /* longer than any key we look for */
        k = dec;
        len = strlen(dec);
    }
    for (int i = 0; i < n; i++)
        if (keys[i][0] == k[0] && strncmp(keys[i], k, len) == 0 && keys[i][len] == '\0')
            return i;
    return -1;
}

const char *pr_json_members(pr_json obj, const char *const *keys, int n, pr_json *vals)
{
    for (int i = 0; i < n; i++)
        vals[i] = (pr_json){NULL, PR_JSON_NONE};
    if (obj.type != PR_JSON_OBJECT)
        return NULL;
    const char *p = skip_ws(obj.at + 1);
    if (*p == '}')
        return p + 1;
    for (int found = 0;;) {
        int hit = match_key(p + 1, keys, n);
        const char *v = skip_ws(skip_ws(skip_string(p)) + 1); /* past the ':' */
        if (hit >= 0) {
            vals[hit] = value_at(v);
            /* all found (keys are unique: checked), the last a container
             * (a plan's devices): the end is not worth the scan */
            if (++found == n && (vals[hit].type == PR_JSON_ARRAY || vals[hit].type == PR_JSON_OBJECT))
                return NULL;
        }
        p = skip_ws(skip_value(v));
        if (*p == '}')
            return p + 1;
        p = skip_ws(p + 1); /* past the ',' */
    }
}

pr_json_iter pr_json_elements(pr_json arr)
{
    pr_json_iter it = {NULL, NULL, NULL};
    if (arr.type == PR_JSON_ARRAY) {
        const char *p = skip_ws(arr.at + 1);
        it.next = *p == ']' ? NULL : p;
    }
    return it;
}

bool pr_json_next(pr_json_iter *it, pr_json *v)
{
    if (it->cur) { /* move past the element returned last */
        const char *p = skip_ws(it->cur_end ? it->cur_end : skip_value(it->cur));
        it->next = *p == ',' ? skip_ws(p + 1) : NULL;
        it->cur = it->cur_end = NULL;
    }
    if (!it->next)
        return false;
    *v = value_at(it->next);
    it->cur = it->next;
    return true;
}

int pr_json_length(pr_json arr)
{
    pr_json_iter it = pr_json_elements(arr);
    pr_json v;
    int n = 0;
    while (pr_json_next(&it, &v))
        n++;
    return n;
}

double pr_json_number(pr_json v)
{
    if (v.type != PR_JSON_NUMBER)
        return 0;
    /* most are small integers, exact in a double without strtod */
    const char *p = v.at + (*v.at == '-');
    double x = 0;
    int digits = 0;
    while (is_digit((uchar)*p) && digits < 15)
        x = x * 10 + (*p++ - '0'), digits++;
    if (!is_digit((uchar)*p) && *p != '.' && *p != 'e' && *p != 'E')
        return *v.at == '-' ? -x : x;
    return strtod(v.at, NULL); /* checked: a JSON number, then a byte that ends it */
}

bool pr_json_true(pr_json v)
{
    return v.type == PR_JSON_BOOL && *v.at == 't';
}
