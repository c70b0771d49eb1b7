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
}

void pp_diag_buffer_open(pp_diag_buffer *b, const char *prog)
{
    b->text = NULL;
    b->len = 0;
    FILE *f = open_memstream(&b->text, &b->len);
    if (!f)
        pp_out_of_memory();
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

void pp_source_position(const pp_source *src, size_t offset, int *line, int *col)
{
    if (offset > src->len)
        offset = src->len;
    int l = 1;
    size_t bol = 0;
    for (size_t i = 0; i < offset; i++)
        if (src->text[i] == '\n') {
            l++;
            bol = i + 1;
        }
    *line = l;
    *col = (int)(offset - bol) + 1;
}

/* "FILE:LINE:COL: LEVEL: msg", the source line and a caret under COL. */
static void print_located(pp_diag *d, const pp_source *src, size_t offset, const char *level,
                          const char *fmt, va_list ap)
{
    int line, col;
    pp_source_position(src, offset, &line, &col);
    fprintf(d->out, "%s:%d:%d: %s: ", src->path, line, col, level);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);

    size_t bol = offset > src->len ? src->len : offset;
    while (bol > 0 && src->text[bol - 1] != '\n')
        bol--;
    size_t eol = bol;
    while (eol < src->len && src->text[eol] != '\n')
        eol++;
    fprintf(d->out, " %5d | %.*s\n       | ", line, (int)(eol - bol), src->text + bol);
    for (size_t i = bol; i < bol + (size_t)(col - 1); i++)
        fputc(src->text[i] == '\t' ? '\t' : ' ', d->out);
    fputs("^\n", d->out);
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

void pp_error(pp_diag *d, const char *fmt, ...)
{
    if (!diag_open(d))
        return;
    fprintf(d->out, "%s: error: ", d->prog);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(d->out, fmt, ap);
    va_end(ap);
    fputc('\n', d->out);
}

void pp_warning(pp_diag *d, const char *fmt, ...)
{
    fprintf(d->out, "%s: warning: ", d->prog);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(d->out, fmt, ap);
    va_end(ap);
    fputc('\n', d->out);
}
