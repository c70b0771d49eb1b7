/*
 * megatron_layout.c — Megatron-LM's `--pipeline-model-parallel-layout`
 * string (docs/megatron.md) as a gpt's blocks per stage, and back.
 *
 * The grammar, as Megatron's parser reads it: commas are cosmetic and
 * dropped first; `(...)*N` repeats what the parentheses hold N times
 * (groups do not nest); then `X*N` repeats the one character X before it
 * (a layer or a `|`); `|` separates stages; the layers are E (embedding),
 * t (a transformer block), m (an MTP layer) and L (the loss and head).
 * The list of stages is in model order: stage i goes to pipeline rank
 * i mod PP, virtual chunk i / PP, which is ppcc's loop placement.
 *
 * ppcc reads what it can model of that: E exactly once, first, in the
 * first stage; L exactly once, last, in the last stage; every middle stage
 * at least one t; no m.  Everything else is refused with the column of the
 * character, so what ppcc reads Megatron reads the same way.
 *
 * Written back (pp_megatron_layout_write), a split is canonical: each stage
 * as `E`, `t`, `tt` or `t*N`, `L`; a run of equal stages before the last as
 * `(...|)*K`, a comma after it; reading that string gives the split back.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

/* One character of the string once the repetitions are unrolled, and
 * where it was written (byte index), for the message. */
typedef struct lay_tok {
    char c; /* E t m L | */
    size_t at;
} lay_tok;

typedef struct lay_read {
    const char *text;
    lay_tok *tok;
    long n, cap, max;
    char *msg;
    size_t msgsize, *at;
} lay_read;

/* 1-based column of byte index i: UTF-8 code points, as diag.c counts. */
static long column(const char *text, size_t i)
{
    long col = 1;
    for (size_t k = 0; k < i && text[k]; k++)
        col += ((unsigned char)text[k] & 0xC0) != 0x80;
    return col;
}

static int __attribute__((format(printf, 3, 4))) fail(lay_read *r, size_t at, const char *fmt, ...)
{
    char body[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    snprintf(r->msg, r->msgsize, "column %ld: %s", column(r->text, at), body);
    *r->at = at;
    return 1;
}

static int push(lay_read *r, char c, size_t at)
{
    if (r->n >= r->max)
        return fail(r, at, "the layout unrolls to more than %ld layers and stage separators", r->max);
    if (r->n == r->cap) {
        long cap = r->cap ? 2 * r->cap : 64;
        lay_tok *grown = realloc(r->tok, (size_t)cap * sizeof *grown);
        if (!grown)
            pp_out_of_memory((double)cap * sizeof *grown, "the layout");
        r->tok = grown;
        r->cap = cap;
    }
    r->tok[r->n++] = (lay_tok){c, at};
    return 0;
}

/* The count after the '*' at text[*i]: digits, at most PP_MAX_LAYERS. */
static int count(lay_read *r, size_t *i, long *n)
{
    size_t star = *i, k = *i + 1;
    const char *t = r->text;
    while (t[k] == ',')
        k++;
    if (t[k] < '0' || t[k] > '9')
        return fail(r, star, "'*' needs a count after it, as in t*3");
    *n = 0;
    for (;; k++) { /* commas go first, even between digits: t*1,2 is t*12 */
        size_t next = k + strspn(t + k, ",");
        if (t[next] < '0' || t[next] > '9')
            break;
        k = next;
        *n = *n * 10 + (t[k] - '0');
        if (*n > PP_MAX_LAYERS)
            return fail(r, star, "a count of more than %d", PP_MAX_LAYERS);
    }
    *i = k;
    return 0;
}

/* Repeats tok[from .. n) until they are there times in all (0: removed). */
static int repeat(lay_read *r, long from, long times, size_t at)
{
    long len = r->n - from;
    if (times == 0) {
        r->n = from;
        return 0;
    }
    for (long k = 1; k < times; k++)
        for (long j = 0; j < len; j++)
            if (push(r, r->tok[from + j].c, r->tok[from + j].at))
                return fail(r, at, "the layout unrolls to more than %ld layers and stage separators", r->max);
    return 0;
}

static int unroll(lay_read *r)
{
    const char *t = r->text;
    long group = -1;           /* first token of the open group, -1: none */
    size_t group_at = 0;
    long last = -1;            /* first token of what a '*' repeats, -1: nothing */
    bool counted = false;      /* a count was the last thing read (commas aside) */
    for (size_t i = 0; t[i];) {
        unsigned char ch = (unsigned char)t[i];
        if (ch == ',') {
            i++;
        } else if (ch == 'E' || ch == 't' || ch == 'm' || ch == 'L' || ch == '|') {
            last = r->n;
            counted = false;
            if (push(r, (char)ch, i))
                return 1;
            i++;
        } else if (ch == '(') {
            if (group >= 0)
                return fail(r, i, "groups do not nest (the '(' at column %ld is still open)", column(t, group_at));
            group = r->n;
            group_at = i;
            last = -1;
            counted = false;
            i++;
        } else if (ch == ')') {
            if (group < 0)
                return fail(r, i, "')' closes no group");
            if (strspn(t + group_at + 1, ",") == i - group_at - 1)
                return fail(r, group_at, "an empty group: '(' and ')' hold no layer and no '|'");
            size_t k = i + 1;
            while (t[k] == ',')
                k++;
            if (t[k] != '*')
                return fail(r, i, "a group needs its count after it, as in (tt|)*4");
            long n = 0;
            if (count(r, &k, &n) || repeat(r, group, n, group_at))
                return 1;
            group = -1;
            last = -1;
            counted = true;
            i = k;
        } else if (ch == '*') {
            if (counted)
                return fail(r, i, "a count after a count (Megatron unrolls each '*' once: write t*6, not t*2*3)");
            if (last < 0)
                return fail(r, i, "'*' repeats the layer or '|' right before it, and there is none");
            size_t k = i;
            long n = 0;
            if (count(r, &k, &n) || repeat(r, last, n, i))
                return 1;
            last = -1; /* Megatron unrolls each count once: t*2*3 is not t*6 */
            counted = true;
            i = k;
        } else if (ch >= 0x80) {
            size_t len = 1;
            while (len < 4 && (t[i + len] & 0xC0) == 0x80)
                len++;
            return fail(r, i, "unexpected '%.*s' (Megatron's layers are E, t, m and L, stages separated by '|')",
                        (int)len, t + i);
        } else {
            if (ch == ' ')
                return fail(r, i, "unexpected space (Megatron's layout has none: E, t, m and L, stages separated "
                                  "by '|', commas where they help reading)");
            return fail(r, i, "unexpected '%c' (Megatron's layers are E, t, m and L, stages separated by '|')",
                        ch >= 0x20 && ch < 0x7f ? ch : '?');
        }
    }
    if (group >= 0)
        return fail(r, group_at, "this '(' is never closed");
    return 0;
}

int pp_megatron_layout_read(const char *text, int stages, int *blocks, char *msg, size_t msgsize, size_t *at)
{
    lay_read r = {text, NULL, 0, 0, (long)PP_MAX_LAYERS + PP_MAX_STAGES + 2, msg, msgsize, at};
    int rc = unroll(&r);
    long e = -1, l = -1; /* token index of E and of L */
    int stage = 0;
    long first_of_stage = 0;
    memset(blocks, 0, (size_t)stages * sizeof *blocks);
    for (long k = 0; !rc && k < r.n; k++) {
        const lay_tok *tk = &r.tok[k];
        if (tk->c == 'm')
            rc = fail(&r, tk->at, "m is Megatron's multi-token prediction layer, which ppcc does not model");
        else if (tk->c == 'E' && e >= 0)
            rc = fail(&r, tk->at, "a second E (the layout holds one embedding)");
        else if (tk->c == 'E' && k > 0)
            rc = fail(&r, tk->at, "E must come first: ppcc holds a gpt's embedding on the first stage, before "
                                  "its blocks");
        else if (tk->c == 'L' && l >= 0)
            rc = fail(&r, tk->at, "a second L (the layout holds one loss)");
        else if (l >= 0 && tk->c != '|')
            rc = fail(&r, tk->at, "'%c' after L: the loss is the model's last layer", tk->c);
        else if (tk->c == '|') {
            if (l >= 0)
                rc = fail(&r, tk->at, "a stage after L: ppcc holds a gpt's head and loss on the last stage");
            else if (stage > 0 && k == first_of_stage)
                rc = fail(&r, tk->at, "stage %d holds no block (only the first and the last stage, which hold the "
                                      "embedding and the head, may hold none)", stage);
            else if (stage + 1 >= stages)
                rc = fail(&r, tk->at, "more than %d stages (the schedule has %d: devices x virtual)", stages, stages);
            else
                stage++;
            first_of_stage = k + 1;
        } else {
            if (tk->c == 'E')
                e = k;
            else if (tk->c == 'L')
                l = k;
            else
                blocks[stage]++;
        }
    }
    size_t end = strlen(text);
    if (!rc && r.n > 0 && r.tok[0].c == '|')
        rc = fail(&r, r.tok[0].at, "the first stage holds no E: ppcc holds a gpt's embedding on the first stage");
    else if (!rc && e < 0)
        rc = fail(&r, 0, "no E: the layout begins with the embedding");
    else if (!rc && l < 0)
        rc = fail(&r, end, "no L: the layout ends with the loss");
    else if (!rc && stage + 1 != stages)
        rc = fail(&r, end, "%d stage%s, but the schedule has %d (devices x virtual)", stage + 1, stage ? "s" : "",
                  stages);
    free(r.tok);
    return rc;
}

/* Stage s as the writer spells it: E, the blocks (t, tt, t*N), L. */
static void stage_text(const int *blocks, int S, int s, char *buf, size_t size)
{
    int n = blocks[s];
    char t[24];
    if (n >= 3)
        snprintf(t, sizeof t, "t*%d", n);
    else
        snprintf(t, sizeof t, "%.*s", n, "tt");
    snprintf(buf, size, "%s%s%s", s == 0 ? "E" : "", t, s == S - 1 ? "L" : "");
}

int pp_megatron_layout_write(FILE *f, const int *blocks, int S)
{
    char cur[48], next[48];
    for (int s = 0; s < S;) {
        stage_text(blocks, S, s, cur, sizeof cur);
        int run = 1;
        while (s + run < S - 1 && (stage_text(blocks, S, s + run, next, sizeof next), !strcmp(cur, next)))
            run++;
        if (s == S - 1)
            fputs(cur, f);
        else if (run == 1)
            fprintf(f, "%s|", cur);
        else
            fprintf(f, "(%s|)*%d%s", cur, run, s + run < S ? "," : "");
        s += run;
    }
    fputc('\n', f);
    return fflush(f) != 0 || ferror(f) ? 1 : 0;
}

int pp_megatron_layout_check(const pp_spec *s, const pp_plan *p, pp_diag *d)
{
    if (!pp_model_is_gpt(&s->model)) {
        pp_error(d, "--emit megatron-layout: Megatron's layout places a transformer's embedding, blocks and loss; "
                    "this is model %s (use model gpt)", s->model.kind);
        return 1;
    }
    for (int st = 0; st < p->stages; st++)
        if (p->placement[st] != st % p->devices) {
            pp_error(d, "--emit megatron-layout: Megatron puts stage i on rank i mod %d (placement loop), but stage "
                        "%d is on device %d here: its layout cannot say this placement",
                     p->devices, st, p->placement[st]);
            return 1;
        }
    return 0;
}
