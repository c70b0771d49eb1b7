/*
 * ast.c — the schedule file as written: a tree of items (`name = value`,
 * `name value`, `name value? { items }`) whose values are numbers, words,
 * strings and lists.  No meaning yet: spec.c decides what a name means.
 *
 * The grammar actions in parser.y and the rules in lexer.l call the small
 * constructors below; pp_parse runs scanner and parser over one text.
 * Every node and string lives in the compilation's arena; the source text
 * itself is kept by reference (pp_ast.src), so offsets in the tree can be
 * turned into LINE:COL and a caret when an error is printed.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"
#include "parser.h"
#include "lexer.h"

/* Reports at a byte offset; in quiet mode (a -D value) keeps the first
 * message so the caller can name the key in its own. */
void ast_error(pp_parser *p, size_t offset, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->diag)
        pp_error_at(p->diag, p->src, offset, "%s", msg);
    else if (p->errors == 0)
        snprintf(p->first_error, sizeof p->first_error, "%.150s", msg);
    p->errors++;
}

static pp_value *new_value(pp_parser *p, enum pp_value_kind kind, size_t offset, const char *text, size_t len)
{
    pp_value *v = pp_arena_alloc(p->arena, sizeof *v);
    v->kind = kind;
    v->offset = offset;
    v->text = pp_arena_strndup(p->arena, text, len);
    return v;
}

pp_value *ast_number(pp_parser *p, size_t offset, size_t len)
{
    pp_value *v = new_value(p, PP_VAL_NUMBER, offset, p->src->text + offset, len);
    errno = 0;
    v->number = strtod(v->text, NULL);
    /* Overflow, and underflow to zero or a denormal: both lose the value
     * the user wrote, so neither is silently accepted. */
    if (errno == ERANGE || !isfinite(v->number)) {
        ast_error(p, offset, "number out of range: '%.40s%s'", v->text, len > 40 ? "..." : "");
        v->number = 0;
    }
    return v;
}

pp_value *ast_word(pp_parser *p, size_t offset, size_t len)
{
    return new_value(p, PP_VAL_WORD, offset, p->src->text + offset, len);
}

pp_value *ast_string(pp_parser *p, size_t offset, size_t len, bool closed)
{
    if (!closed)
        ast_error(p, offset, "unterminated string: a '\"' is missing before the end of the line");
    return new_value(p, PP_VAL_STRING, offset, p->src->text + offset + 1, len - (closed ? 2 : 1));
}

void ast_bad_char(pp_parser *p, size_t offset, unsigned char c)
{
    if (c >= 0x21 && c < 0x7f)
        ast_error(p, offset, "unexpected character '%c'", c);
    else
        ast_error(p, offset, "unexpected byte 0x%02x", c);
}

/* A multibyte UTF-8 character, quoted as written, unless it would show
 * as nothing (a byte order mark, a zero-width space): then by its code
 * point.  The lexer's pattern also takes overlong forms and surrogates,
 * which are bytes, not characters. */
void ast_bad_utf8(pp_parser *p, size_t offset, size_t len)
{
    const unsigned char *c = (const unsigned char *)p->src->text + offset;
    if (pp_utf8_length(c, len) != (int)len)
        ast_error(p, offset, "unexpected bytes: ill-formed UTF-8 (outside a string or comment)");
    else if (pp_utf8_code_point(c, (int)len) == 0xFEFF)
        ast_error(p, offset, "unexpected U+FEFF, a byte order mark (only the start of the file may hold one)");
    else if (pp_char_invisible(pp_utf8_code_point(c, (int)len)))
        ast_error(p, offset, "unexpected invisible character U+%04lX (outside a string or comment)",
                  pp_utf8_code_point(c, (int)len));
    else
        ast_error(p, offset, "unexpected character '%.*s' (outside a string or comment)", (int)len,
                  (const char *)c);
}

/* The scanner tracks braces itself so that an unclosed block can be
 * reported where it was opened, not at the end of the file. */
void ast_open_brace(pp_parser *p, size_t offset)
{
    p->open = pp_arena_grow(p->arena, p->open, p->nopen, &p->capopen, sizeof *p->open);
    p->open[p->nopen++] = offset;
    p->stray_close = false;
}

void ast_close_brace(pp_parser *p)
{
    p->stray_close = p->nopen == 0;
    if (p->nopen > 0)
        p->nopen--;
}

pp_value_list ast_values_add(pp_parser *p, pp_value_list list, pp_value *v)
{
    list.v = pp_arena_grow(p->arena, list.v, list.n, &list.cap, sizeof *list.v);
    list.v[list.n++] = v;
    return list;
}

pp_value *ast_list(pp_parser *p, size_t offset, pp_value_list items)
{
    pp_value *v = pp_arena_alloc(p->arena, sizeof *v);
    v->kind = PP_VAL_LIST;
    v->offset = offset;
    v->text = "";
    v->items = items.v;
    v->nitems = items.n;
    return v;
}

pp_item *ast_item(pp_parser *p, const pp_value *name, pp_value *value, const pp_item_list *block)
{
    pp_item *it = pp_arena_alloc(p->arena, sizeof *it);
    it->name = name->text;
    it->offset = name->offset;
    it->value = value;
    if (block) {
        it->has_block = true;
        it->children = block->v;
        it->nchildren = block->n;
    }
    return it;
}

pp_item_list ast_items_add(pp_parser *p, pp_item_list list, pp_item *item)
{
    list.v = pp_arena_grow(p->arena, list.v, list.n, &list.cap, sizeof *list.v);
    list.v[list.n++] = item;
    return list;
}

/* `device 0:` as one token: the name, then the number at its own offset
 * (the lexer's pattern guarantees both are there). */
pp_item *ast_row_head(pp_parser *p, size_t offset, size_t len)
{
    const char *text = p->src->text + offset;
    size_t name_len = strcspn(text, " \t");
    size_t num_off = name_len + strspn(text + name_len, " \t");
    size_t num_len = strcspn(text + num_off, " \t:");
    if (num_off + num_len > len) /* cannot happen; stay in the token */
        num_len = len - num_off;
    pp_item *it = pp_arena_alloc(p->arena, sizeof *it);
    it->name = pp_arena_strndup(p->arena, text, name_len);
    it->offset = offset;
    it->value = ast_number(p, offset + num_off, num_len);
    return it;
}

pp_item *ast_row(pp_parser *p, pp_item *head, pp_value_list words)
{
    head->row = ast_list(p, head->offset, words);
    return head;
}

/* Runs scanner and parser over p->src.  Returns the error count. */
static int run_parser(pp_parser *p)
{
    if (p->src->len > (size_t)PP_MAX_SOURCE_BYTES) {
        ast_error(p, 0, "input too large: more than %ld MiB", PP_MAX_SOURCE_BYTES >> 20);
        return p->errors;
    }
    yyscan_t scanner;
    if (pp_yylex_init_extra(p, &scanner) != 0) {
        ast_error(p, 0, "cannot start the scanner");
        return p->errors;
    }
    YY_BUFFER_STATE buf = pp_yy_scan_bytes(p->src->text, (int)p->src->len, scanner);
    int rc = pp_yyparse(scanner, p);
    pp_yy_delete_buffer(buf, scanner);
    pp_yylex_destroy(scanner);
    /* Bison reports its own failures (stack exhausted) through yyerror. */
    if (rc != 0 && p->errors == 0)
        ast_error(p, p->pos, "cannot parse the input");
    return p->errors;
}

int pp_parse(const char *path, const char *text, size_t len, pp_arena *a, pp_diag *d, pp_ast *ast)
{
    memset(ast, 0, sizeof *ast);
    /* A UTF-8 byte order mark says nothing but "this is UTF-8": skipped,
     * so that line 1 counts its columns from the first real character. */
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
        text += 3;
        len -= 3;
    }
    ast->src.path = path;
    ast->src.text = text;
    ast->src.len = len;
    pp_parser p = {.arena = a, .diag = d, .src = &ast->src};
    /* A NUL byte means a binary file, not a schedule: one error at the
     * first, instead of one "unexpected byte" per NUL. */
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        size_t count = 0;
        for (const char *q = nul; q; q = memchr(q + 1, '\0', len - (size_t)(q + 1 - text)))
            count++;
        ast_error(&p, (size_t)(nul - text), "NUL byte: a schedule file is text (%zu NUL byte%s, the first here)",
                  count, count == 1 ? "" : "s");
        return p.errors;
    }
    int errors = run_parser(&p);
    ast->items = p.top.v;
    ast->nitems = p.top.n;
    return errors;
}

int pp_parse_file(const char *path, pp_arena *a, pp_diag *d, pp_ast *ast)
{
    memset(ast, 0, sizeof *ast);
    pp_source src;
    if (pp_source_read(path, a, d, &src))
        return 1;
    int errors = pp_parse(src.path, src.text, src.len, a, d, ast);
    /* Nothing in the file would compile every default silently. */
    if (errors == 0 && ast->nitems == 0) {
        pp_error(d, "%s: no settings: the file holds only comments and blank lines", src.path);
        errors = 1;
    }
    return errors;
}

pp_value *pp_parse_value(const char *text, pp_arena *a, char *err, size_t errsize)
{
    pp_source src = {.path = "-D", .text = text, .len = strlen(text)};
    pp_parser p = {.arena = a, .src = &src, .start_token = TOK_START_VALUE};
    if (src.len == 0) {
        snprintf(err, errsize, "expected a value");
        return NULL;
    }
    if (run_parser(&p) || !p.value) {
        snprintf(err, errsize, "%s", p.errors ? p.first_error : "expected a value");
        return NULL;
    }
    return p.value;
}
