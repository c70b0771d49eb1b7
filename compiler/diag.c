/*
 * diag.c — error messages.  Locations travel as byte offsets and become
 * FILE:LINE:COL, the source line and a caret only here, when printed.
 */
#include <stdarg.h>
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

/* Columns count characters: every byte but a UTF-8 continuation byte. */
static bool starts_char(char c) { return ((unsigned char)c & 0xc0) != 0x80; }

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
    for (size_t i = b; i < offset; i++)
        c += starts_char(src->text[i]);
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
        do
            i--;
        while (i > bol && !starts_char(src->text[i]));
    return i;
}

/* Moves i on by up to n characters, not past the end of its line; *left
 * gets the count it could not move. */
static size_t on_chars(const pp_source *src, size_t i, int n, int *left)
{
    for (; n > 0 && !at_line_end(src, i); n--)
        do
            i++;
        while (!at_line_end(src, i) && !starts_char(src->text[i]));
    *left = n;
    return i;
}

/* " LINE | text" and "      | ^" under the character at offset: a window
 * of ECHO_CHARS characters around it, "..." where the line goes on.
 * Tabs are kept in both lines, so the caret stays under its character;
 * other control characters print as '?', never reaching the terminal. */
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
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)src->text[i];
        fputc(c == '\t' || (c >= 0x20 && c != 0x7f) ? c : '?', d->out);
    }
    fprintf(d->out, "%s\n       | %s", cut_after ? "..." : "", cut_before ? "   " : "");
    for (size_t i = from; i < at; i++)
        if (starts_char(src->text[i]))
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

/* "PROG: LEVEL: msg". */
static void print_plain(pp_diag *d, const char *level, const char *fmt, va_list ap)
{
    fprintf(d->out, "%s: %s: ", d->prog, level);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
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
