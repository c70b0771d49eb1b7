/*
 * parser.y — grammar of the schedule DSL (docs/dsl.md).
 *
 *   file  := item*
 *   item  := NAME '=' value | NAME value | NAME value? '{' item* '}'
 *          | NAME value? '{' row+ '}'
 *   row   := ROW (NUMBER | WORD | STRING)*         ROW is `device 0:`
 *   value := NUMBER | WORD | STRING | '[' (value (',' value)* ','?)? ']'
 *
 * A pure (reentrant) bison parser fed by lexer.l.  Each action is one
 * call to a constructor in ast.c; everything lives in the compilation's
 * arena, so nothing needs a %destructor.  Syntax errors are recovered at
 * item level (`items error`): the parser skips to the next name, '}' or
 * the end, so one run reports every broken item of a file.
 *
 * The %code requires block is the private interface between lexer.l,
 * parser.y and ast.c (it lands in the generated parser.h).
 */
%code requires {
#include "pp.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* A token's or rule's extent: byte offsets [start, end). */
typedef struct pp_span {
    size_t start, end;
} pp_span;

/* Growable arrays in the arena, built left to right by the grammar. */
typedef struct pp_item_list {
    pp_item **v;
    int n, cap;
} pp_item_list;
typedef struct pp_value_list {
    pp_value **v;
    int n, cap;
} pp_value_list;

/* State of one parse, shared by scanner, parser and constructors. */
typedef struct pp_parser {
    pp_arena *arena;
    pp_diag *diag;          /* NULL: quiet (a -D value); first message kept */
    const pp_source *src;
    int errors;
    char first_error[160];  /* quiet mode: the first message */
    size_t pos;             /* scanner position, byte offset */
    int start_token;        /* returned once before the text, then 0 */
    size_t *open;           /* offsets of the '{' not yet closed */
    int nopen, capopen;
    bool stray_close;       /* the last '}' closed nothing */
    pp_item_list top;       /* result: the file's items */
    pp_value *value;        /* result of a value parse */
} pp_parser;

void ast_error(pp_parser *p, size_t offset, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
pp_value *ast_number(pp_parser *p, size_t offset, size_t len);
pp_value *ast_word(pp_parser *p, size_t offset, size_t len);
pp_value *ast_string(pp_parser *p, size_t offset, size_t len, bool closed);
void ast_bad_char(pp_parser *p, size_t offset, unsigned char c);
void ast_bad_utf8(pp_parser *p, size_t offset, size_t len);
void ast_open_brace(pp_parser *p, size_t offset);
void ast_close_brace(pp_parser *p);
pp_value *ast_list(pp_parser *p, size_t offset, pp_value_list items);
pp_value_list ast_values_add(pp_parser *p, pp_value_list list, pp_value *v);
pp_item *ast_item(pp_parser *p, const pp_value *name, pp_value *value, const pp_item_list *block);
pp_item_list ast_items_add(pp_parser *p, pp_item_list list, pp_item *item);
pp_item *ast_row_head(pp_parser *p, size_t offset, size_t len);
pp_item *ast_row(pp_parser *p, pp_item *head, pp_value_list words);
}

%code {
#include <string.h>

#include "lexer.h"

static void pp_yyerror(const PP_YYLTYPE *loc, yyscan_t scanner, pp_parser *p, const char *msg)
{
    (void)scanner;
    /* With parse.error custom, bison's own messages are only its stack
     * overflow (YYMAXDEPTH), which only deep nesting reaches: say so
     * rather than "memory exhausted". */
    if (strcmp(msg, "memory exhausted") == 0)
        msg = "blocks or lists nested too deeply";
    ast_error(p, loc->start, "%s", msg);
}

#define YYLLOC_DEFAULT(cur, rhs, n)                                        \
    do {                                                                    \
        if (n) {                                                            \
            (cur).start = YYRHSLOC(rhs, 1).start;                           \
            (cur).end = YYRHSLOC(rhs, n).end;                               \
        } else {                                                            \
            (cur).start = (cur).end = YYRHSLOC(rhs, 0).end;                 \
        }                                                                   \
    } while (0)
}

%define api.pure full
%define api.prefix {pp_yy}
%define api.token.prefix {TOK_}
%define api.location.type {pp_span}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%param {yyscan_t scanner}
%parse-param {pp_parser *p}

%union {
    pp_value *value;
    pp_item *item;
    pp_item_list items;
    pp_value_list values;
}

%token <value> NUMBER "number" WORD "word" STRING "string"
%token START_VALUE "start of value"
%token <item> ROW "row"
%type <value> value
%type <values> values
%type <item> item row
%type <items> items block rows
%type <values> rowvals

%%

start: items                    { p->top = $1; }
     | START_VALUE value        { p->value = $2; }
     ;

items: %empty                   { $$ = (pp_item_list){0}; }
     | items item               { $$ = ast_items_add(p, $1, $2); }
     | items error              { $$ = $1; }
     ;

item: WORD '=' value            { $$ = ast_item(p, $1, $3, NULL); }
    | WORD value                { $$ = ast_item(p, $1, $2, NULL); }
    | WORD block                { $$ = ast_item(p, $1, NULL, &$2); }
    | WORD value block          { $$ = ast_item(p, $1, $2, &$3); }
    ;

block: '{' items '}'            { $$ = $2; }
     | '{' rows '}'             { $$ = $2; }
     ;

/* Rows only fill a block of their own: a row's words end at the next ROW
 * or '}', never at a name, which could be one more word of the row. */
rows: row                       { $$ = ast_items_add(p, (pp_item_list){0}, $1); }
    | rows row                  { $$ = ast_items_add(p, $1, $2); }
    ;

row: ROW rowvals                { $$ = ast_row(p, $1, $2); }
   ;

rowvals: %empty                 { $$ = (pp_value_list){0}; }
       | rowvals NUMBER         { $$ = ast_values_add(p, $1, $2); }
       | rowvals WORD           { $$ = ast_values_add(p, $1, $2); }
       | rowvals STRING         { $$ = ast_values_add(p, $1, $2); }
       ;

value: NUMBER
     | WORD
     | STRING
     | '[' ']'                  { $$ = ast_list(p, @1.start, (pp_value_list){0}); }
     | '[' values ']'           { $$ = ast_list(p, @1.start, $2); }
     | '[' values ',' ']'       { $$ = ast_list(p, @1.start, $2); }
     ;

values: value                   { $$ = ast_values_add(p, (pp_value_list){0}, $1); }
      | values ',' value        { $$ = ast_values_add(p, $1, $3); }
      ;

%%

/* How a token reads in "unexpected ..." and "expected ...". */
static const char *token_name(yysymbol_kind_t kind, bool article)
{
    switch (kind) {
    case YYSYMBOL_YYEOF: return "end of input";
    case YYSYMBOL_NUMBER: return article ? "a number" : "number";
    case YYSYMBOL_WORD: return article ? "a name" : "name";
    case YYSYMBOL_STRING: return article ? "a string" : "string";
    case YYSYMBOL_ROW: return article ? "a row" : "row";
    default: return yysymbol_name(kind);
    }
}

/* Messages that say what is wrong in the user's words: an unclosed '{'
 * is reported where it was opened, a '}' that closes nothing as such,
 * anything else as "unexpected X, expected Y or Z". */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, pp_parser *p)
{
    (void)scanner;
    yysymbol_kind_t got = yypcontext_token(ctx);
    const PP_YYLTYPE *loc = yypcontext_location(ctx);
    if (got == YYSYMBOL_YYEOF && p->nopen > 0) {
        ast_error(p, p->open[p->nopen - 1], "this '{' is never closed: the input ends before its '}'");
        return 0;
    }

    char msg[200];
    int n;
    size_t len = loc->end - loc->start;
    const char *text = p->src->text + loc->start;
    if (got == YYSYMBOL_NUMBER || got == YYSYMBOL_WORD || got == YYSYMBOL_STRING || got == YYSYMBOL_ROW)
        n = snprintf(msg, sizeof msg, "unexpected %s '%.*s%s'", token_name(got, false), len > 32 ? 32 : (int)len, text,
                     len > 32 ? "..." : "");
    else if (got == YYSYMBOL_YYEOF)
        n = snprintf(msg, sizeof msg, "unexpected end of input");
    else if (p->stray_close && len == 1 && text[0] == '}')
        n = snprintf(msg, sizeof msg, "'}' closes no block");
    else
        n = snprintf(msg, sizeof msg, "unexpected %s", token_name(got, false));

    /* Where any value fits, say "a value" once instead of four tokens. */
    enum { MAX_EXPECTED = 8 };
    yysymbol_kind_t expected[MAX_EXPECTED];
    int nexp = yypcontext_expected_tokens(ctx, expected, MAX_EXPECTED);
    const char *names[MAX_EXPECTED + 1];
    int nnames = 0;
    bool value = false;
    for (int i = 0; i < nexp; i++)
        value |= expected[i] == YYSYMBOL_NUMBER;
    for (int i = 0; i < nexp; i++) {
        yysymbol_kind_t k = expected[i];
        /* Rows belong in order blocks only; spec.c says so where one is
         * misplaced, so "expected" lists stay about ordinary settings. */
        if (k == YYSYMBOL_ROW)
            continue;
        bool starts_value = k == YYSYMBOL_NUMBER || k == YYSYMBOL_WORD || k == YYSYMBOL_STRING ||
                            strcmp(yysymbol_name(k), "'['") == 0;
        if (!(value && starts_value))
            names[nnames++] = token_name(k, true);
    }
    if (value)
        names[nnames++] = "a value";
    for (int i = 0; i < nnames && n >= 0 && n < (int)sizeof msg; i++)
        n += snprintf(msg + n, sizeof msg - (size_t)n, "%s%s", i == 0 ? ", expected " : i == nnames - 1 ? " or " : ", ",
                      names[i]);
    ast_error(p, loc->start, "%s", msg);
    return 0;
}
