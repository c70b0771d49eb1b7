/*
 * diag.c — error messages.  Locations travel as byte offsets and become
 * FILE:LINE:COL, the source line and a caret only here, when printed.
 * Also the "did you mean" of every message that names an unknown name,
 * and the UTF-8 reading the messages show text by (json.c's check too).
 */
#include <stdarg.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

void pp_diag_init(pp_diag *d, FILE *out, const char *prog)
{
    memset(d, 0, sizeof *d);
    d->out = out;
    d->prog = prog;
    d->max_errors = 20;
    pp_set_program(prog);
}

void pp_diag_buffer_open(pp_diag_buffer *b, const char *prog)
{
    b->text = NULL;
    b->len = 0;
    FILE *f = open_memstream(&b->text, &b->len);
    if (!f)
        pp_out_of_memory(0, "a buffer of messages");
    pp_diag_init(&b->diag, f, prog);
}

void pp_diag_buffer_close(pp_diag_buffer *b)
{
    fclose(b->diag.out);
    free(b->text);
    b->text = NULL;
}

static bool diag_open(pp_diag *d)
{
    d->errors++;
    if (d->errors == d->max_errors + 1)
        fprintf(d->out, "%s: too many errors, giving up on the rest\n", d->prog);
    return d->errors <= d->max_errors;
}

/* Lines end at LF, CR or CRLF, as in lexer.l: byte i ends a line if it is
 * a LF, or a CR that no LF follows (the LF of a CRLF ends it). */
static bool ends_line(const pp_source *src, size_t i)
{
    char c = src->text[i];
    return c == '\n' || (c == '\r' && (i + 1 >= src->len || src->text[i + 1] != '\n'));
}

int pp_utf8_length(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    int n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0xC2)
        return 0;
    else if (c < 0xE0)
        n = 2;
    else if (c < 0xF0) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c < 0xF5) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else
        return 0;
    for (int i = 1; i < n; i++) {
        if ((size_t)i >= avail)
            return -1;
        unsigned char b = s[i];
        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF))
            return 0;
    }
    return n;
}

long pp_utf8_code_point(const unsigned char *s, int len)
{
    static const unsigned char lead_bits[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    long u = s[0] & lead_bits[len];
    for (int i = 1; i < len; i++)
        u = u << 6 | (s[i] & 0x3F);
    return u;
}

bool pp_char_invisible(long u)
{
    return u < 0x20 || (u >= 0x7F && u <= 0x9F) || /* C0 and C1 controls, DEL */
           u == 0xAD || u == 0xFEFF ||              /* soft hyphen, a byte order mark */
           (u >= 0x200B && u <= 0x200F) ||          /* zero widths, direction marks */
           (u >= 0x2028 && u <= 0x202E) ||          /* line separators, embeddings, overrides */
           (u >= 0x2060 && u <= 0x206F);            /* word joiner, isolates, ... */
}

/* The character at i: a well-formed UTF-8 sequence, else one byte (every
 * byte of ill-formed UTF-8 is a character of its own, shown as '?'). */
static size_t char_len(const pp_source *src, size_t i)
{
    int n = pp_utf8_length((const unsigned char *)src->text + i, src->len - i);
    return n > 0 ? (size_t)n : 1;
}

/* The start of the character before i, not before bol: the nearest lead
 * byte within three, if its sequence ends at i; else the byte before i
 * (a stray continuation byte).  Walking forward from bol gives the same
 * starts. */
static size_t prev_char(const pp_source *src, size_t i, size_t bol)
{
    for (size_t k = 1; k <= 4 && k <= i - bol; k++) {
        unsigned char c = (unsigned char)src->text[i - k];
        if ((c & 0xC0) != 0x80)
            return char_len(src, i - k) == k ? i - k : i - 1;
    }
    return i - 1;
}

/* offset -> line, column and the offset where its line begins. */
static void locate(const pp_source *src, size_t offset, int *line, int *col, size_t *bol)
{
    if (offset > src->len)
        offset = src->len;
    int l = 1;
    size_t b = 0;
    for (size_t i = 0; i < offset; i++)
        if (ends_line(src, i)) {
            l++;
            b = i + 1;
        }
    int c = 1;
    for (size_t i = b; i < offset; i += char_len(src, i))
        c++;
    *line = l;
    *col = c;
    *bol = b;
}

void pp_source_position(const pp_source *src, size_t offset, int *line, int *col)
{
    size_t bol;
    locate(src, offset, line, col, &bol);
}

/* The echoed line shows at most this many characters around the caret, so
 * that an error on a megabyte-long line prints a line, not a megabyte. */
enum { ECHO_CHARS = 100 };

static bool at_line_end(const pp_source *src, size_t i)
{
    return i >= src->len || src->text[i] == '\n' || src->text[i] == '\r';
}

/* Moves i back by up to n characters, not before bol. */
static size_t back_chars(const pp_source *src, size_t i, size_t bol, int n)
{
    for (; n > 0 && i > bol; n--)
        i = prev_char(src, i, bol);
    return i;
}

/* Moves i on by up to n characters, not past the end of its line; *left
 * gets the count it could not move. */
static size_t on_chars(const pp_source *src, size_t i, int n, int *left)
{
    for (; n > 0 && !at_line_end(src, i); n--)
        i += char_len(src, i);
    *left = n;
    return i;
}

/* " LINE | text" and "      | ^" under the character at offset: a window
 * of ECHO_CHARS characters around it, "..." where the line goes on.
 * Tabs are kept in both lines, so the caret stays under its character;
 * a character that would not show as itself — a control character, an
 * invisible one (a byte order mark, a direction override), a byte of
 * ill-formed UTF-8 — prints as one '?', never reaching the terminal. */
static void print_echo(pp_diag *d, const pp_source *src, size_t offset, int line, size_t bol)
{
    if (offset > src->len)
        offset = src->len;
    size_t at = offset;
    while (at > bol && at_line_end(src, at - 1)) /* inside a CRLF: point at its end */
        at--;
    int left;
    size_t from = back_chars(src, at, bol, ECHO_CHARS / 2);
    size_t to = on_chars(src, from, ECHO_CHARS, &left);
    from = back_chars(src, from, bol, left); /* near the line's end: show more before */
    bool cut_before = from > bol, cut_after = !at_line_end(src, to);

    fprintf(d->out, " %5d | %s", line, cut_before ? "..." : "");
    for (size_t i = from, n; i < to; i += n) {
        const unsigned char *c = (const unsigned char *)src->text + i;
        int len = pp_utf8_length(c, src->len - i);
        n = len > 0 ? (size_t)len : 1;
        if (c[0] == '\t' || (len > 0 && !pp_char_invisible(pp_utf8_code_point(c, len))))
            fwrite(c, 1, n, d->out);
        else
            fputc('?', d->out);
    }
    fprintf(d->out, "%s\n       | %s", cut_after ? "..." : "", cut_before ? "   " : "");
    for (size_t i = from; i < at; i += char_len(src, i))
        fputc(src->text[i] == '\t' ? '\t' : ' ', d->out);
    fputs("^\n", d->out);
}

/* "FILE:LINE:COL: LEVEL: msg", the source line and a caret under COL. */
static void print_located(pp_diag *d, const pp_source *src, size_t offset, const char *level,
                          const char *fmt, va_list ap)
{
    int line, col;
    size_t bol;
    locate(src, offset, &line, &col, &bol);
    fprintf(d->out, "%s:%d:%d: %s: ", src->path, line, col, level);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    print_echo(d, src, offset, line, bol);
}

void pp_error_at(pp_diag *d, const pp_source *src, size_t offset, const char *fmt, ...)
{
    if (!diag_open(d))
        return;
    va_list ap;
    va_start(ap, fmt);
    print_located(d, src, offset, "error", fmt, ap);
    va_end(ap);
}

void pp_note_at(pp_diag *d, const pp_source *src, size_t offset, const char *fmt, ...)
{
    if (d->errors > d->max_errors)
        return;
    va_list ap;
    va_start(ap, fmt);
    print_located(d, src, offset, "note", fmt, ap);
    va_end(ap);
}

/* "PROG: LEVEL: msg", written at once: the ranks of a multi-process run
 * share one unbuffered stderr, and their lines must not interleave. */
static void print_plain(pp_diag *d, const char *level, const char *fmt, va_list ap)
{
    char head[96], small[1024];
    int h = snprintf(head, sizeof head, "%s: %s: ", d->prog, level);
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, again);
    va_end(again);
    if (h < 0 || n < 0) {
        fputs("(unprintable message)\n", d->out);
        return;
    }
    if ((size_t)h >= sizeof head)
        h = (int)sizeof head - 1;
    size_t len = (size_t)h + (size_t)n + 2;
    char *line = len <= sizeof small ? small : malloc(len);
    if (!line) { /* out of memory: the message in pieces rather than none */
        fputs(head, d->out);
        vfprintf(d->out, fmt, ap);
        fputc('\n', d->out);
        return;
    }
    memcpy(line, head, (size_t)h);
    vsnprintf(line + h, (size_t)n + 1, fmt, ap);
    line[h + n] = '\n';
    fwrite(line, 1, (size_t)h + (size_t)n + 1, d->out);
    if (line != small)
        free(line);
}

void pp_error(pp_diag *d, const char *fmt, ...)
{
    if (!diag_open(d))
        return;
    va_list ap;
    va_start(ap, fmt);
    print_plain(d, "error", fmt, ap);
    va_end(ap);
}

void pp_warning(pp_diag *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_plain(d, "warning", fmt, ap);
    va_end(ap);
}

/* ---- did you mean ---- */

/* Levenshtein distance, for "did you mean"; large for long names. */
static int distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    int row[41];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int sub = diag + (a[i - 1] != b[j - 1]);
            int best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
            row[j] = sub < best ? sub : best;
            diag = up;
        }
    }
    return row[lb];
}

const char *pp_closest(const char *word, const char *const *names, int n)
{
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; n < 0 ? names[i] != NULL : i < n; i++) {
        if (strcasecmp(word, names[i]) == 0)
            return names[i];
        /* Only when most of the word survives: 'Q' is not a typo of 'F'. */
        int dist = distance(word, names[i]);
        if (2 * dist >= (int)strlen(word))
            continue;
        if (dist < best_d) {
            best_d = dist;
            best = names[i];
        }
    }
    return best;
}
