/*
 * torch_csv_read.c — a PyTorch schedule CSV read as a custom order
 * (`ppcc schedule.csv`, docs/torch.md): row r is pipeline rank r, each
 * cell one action of PyTorch's grammar, blank cells padding.  Either of
 * PyTorch's formats is read: the compute actions (F, I, B, W, and the
 * OVERLAP_F_B pairs) become the order's ops, each kept with the offset of
 * its cell so that the custom policy's errors point at row and column; the
 * communication actions are checked and dropped, since ppcc places its own
 * transfers (and proves them).  I is the input-gradient backward (ppcc's B
 * of a split backward), W the weight gradient, B a full backward (B, or B
 * then W where the CSV splits any backward).
 *
 * The shape comes from the file: ranks = rows, stages = the highest stage
 * named + 1, micro-batches = the highest named + 1 (--ranks and
 * --microbatches state it, and the file is checked against them), and the
 * placement is where each stage's actions sit.
 */
#include <stdlib.h>
#include <string.h>

#include "pp.h"

bool pp_torch_csv_is_path(const char *path)
{
    size_t n = strlen(path);
    return n > 4 && !strcmp(path + n - 4, ".csv");
}

/* PyTorch's action kinds, longest first where one begins another. */
static const char *const kinds[] = {
    "WAIT_REDUCE_GRAD", "WAIT_SEND_F", "WAIT_SEND_B", "REDUCE_GRAD", "UNSHARD", "RESHARD",
    "SEND_F", "RECV_F", "SEND_B", "RECV_B", "F", "I", "B", "W",
};
enum { K_COMPUTE = 10 }; /* kinds[K_COMPUTE..]: F I B W */

typedef struct reader {
    const pp_source *src;
    pp_arena *a;
    pp_diag *d;
    int ranks, microbatches; /* declared, 0: none */
    pp_order_row *rows;
    int nrows, cap;
    int max_stage, max_mb;
    bool split;
} reader;

static int digits(const char *s, const char *end, long *v)
{
    int n = 0;
    *v = 0;
    while (s + n < end && s[n] >= '0' && s[n] <= '9') {
        if (n < 9)
            *v = *v * 10 + (s[n] - '0');
        n++;
    }
    return n > 9 ? -1 : n;
}

/* One action [s, end) of row r: appends its compute op, if any. */
static void read_action(reader *R, pp_order_row *row, const char *s, const char *end)
{
    size_t off = (size_t)(s - R->src->text);
    int len = (int)(end - s);
    long stage, mb = -1;
    int ns = digits(s, end, &stage);
    const char *k = s + (ns > 0 ? ns : 0);
    int kind = -1;
    for (int i = 0; ns > 0 && i < (int)(sizeof kinds / sizeof *kinds); i++)
        if (!strncmp(k, kinds[i], strlen(kinds[i])) && k + strlen(kinds[i]) <= end) {
            kind = i;
            break;
        }
    if (ns < 0) { /* more digits than any stage ppcc takes */
        pp_error_at(R->d, R->src, off, "torch csv: '%.*s': stage number past ppcc's limit (%d stages)",
                    len > 40 ? 40 : len, s, PP_MAX_STAGES);
        return;
    }
    if (kind < 0) {
        pp_error_at(R->d, R->src, off,
                    "torch csv: '%.*s' is not an action (expected <stage><kind>[<mb>], as in 2F0, 1I3, 0SEND_F1)",
                    len > 40 ? 40 : len, s);
        return;
    }
    const char *m = k + strlen(kinds[kind]);
    int nm = m < end ? digits(m, end, &mb) : 0;
    if (nm < 0) {
        pp_error_at(R->d, R->src, off, "torch csv: '%.*s': micro-batch number past ppcc's limit (%d micro-batches)",
                    len > 40 ? 40 : len, s, PP_MAX_MICROBATCHES);
        return;
    }
    if (m + nm != end) {
        pp_error_at(R->d, R->src, off, "torch csv: '%.*s': unexpected text after the action %.*s", len > 40 ? 40 : len,
                    s, (int)(m + (nm > 0 ? nm : 0) - s), s);
        return;
    }
    if (kind < K_COMPUTE)
        return; /* a transfer, a wait, a reduction: ppcc lowers its own */
    if (nm == 0) {
        pp_error_at(R->d, R->src, off, "torch csv: '%.*s' names no micro-batch (as in %ld%s0)", len, s, stage,
                    kinds[kind]);
        return;
    }
    if (R->microbatches && mb >= R->microbatches) {
        pp_error_at(R->d, R->src, off, "torch csv: %.*s: micro-batch %ld does not exist (--microbatches %d: 0..%d)",
                    len, s, mb, R->microbatches, R->microbatches - 1);
        return;
    }
    if (stage >= PP_MAX_STAGES || mb >= PP_MAX_MICROBATCHES) {
        pp_error_at(R->d, R->src, off, "torch csv: %.*s: past ppcc's limits (%d stages, %d micro-batches)", len, s,
                    PP_MAX_STAGES, PP_MAX_MICROBATCHES);
        return;
    }
    char c = kinds[kind][0];
    int op = c == 'F' ? PP_OP_F : c == 'W' ? PP_OP_W : PP_OP_B;
    R->split |= c == 'I' || c == 'W';
    row->ops = pp_arena_grow(R->a, row->ops, row->n, &R->cap, sizeof *row->ops);
    /* A full backward is marked by stage -1 - s until the split is known. */
    row->ops[row->n++] = (pp_order_op){op, c == 'B' ? -1 - (int)stage : (int)stage, (int)mb, off};
    R->max_stage = stage > R->max_stage ? (int)stage : R->max_stage;
    R->max_mb = mb > R->max_mb ? (int)mb : R->max_mb;
}

/* One cell [s, end), spaces trimmed: empty, an action, or
 * (a;b;...)OVERLAP_F_B. */
static void read_cell(reader *R, pp_order_row *row, const char *s, const char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (s == end)
        return;
    if (*s != '(') {
        read_action(R, row, s, end);
        return;
    }
    const char *close = memchr(s, ')', (size_t)(end - s));
    static const char overlap[] = "OVERLAP_F_B";
    if (!close || (size_t)(end - close - 1) != strlen(overlap) || strncmp(close + 1, overlap, strlen(overlap))) {
        pp_error_at(R->d, R->src, (size_t)(s - R->src->text),
                    "torch csv: '%.*s': a parenthesised cell is (action;action)OVERLAP_F_B", (int)(end - s) > 40 ? 40 : (int)(end - s), s);
        return;
    }
    for (const char *a = s + 1; a < close;) {
        const char *semi = memchr(a, ';', (size_t)(close - a));
        const char *e = semi ? semi : close;
        while (a < e && *a == ' ')
            a++;
        const char *t = e;
        while (t > a && t[-1] == ' ')
            t--;
        if (a < t)
            read_action(R, row, a, t);
        a = e + 1;
    }
}

/* The rows of the file; a cell may be quoted ("..."; no action holds a
 * quote, so nothing but blanks may follow the closing one). */
static void read_rows(reader *R)
{
    const char *t = R->src->text, *end = t + R->src->len;
    int rows_cap = 0;
    while (t < end) {
        R->rows = pp_arena_grow(R->a, R->rows, R->nrows, &rows_cap, sizeof *R->rows);
        pp_order_row *row = &R->rows[R->nrows++];
        row->offset = (size_t)(t - R->src->text);
        R->cap = 0;
        const char *line_end = memchr(t, '\n', (size_t)(end - t));
        if (!line_end)
            line_end = end;
        const char *stop = line_end > t && line_end[-1] == '\r' ? line_end - 1 : line_end;
        for (const char *c = t; c <= stop;) {
            const char *e;
            if (*c == '"' && c < stop) {
                const char *q = memchr(c + 1, '"', (size_t)(stop - c - 1));
                if (!q) {
                    pp_error_at(R->d, R->src, (size_t)(c - R->src->text), "torch csv: unterminated quoted cell");
                    break;
                }
                read_cell(R, row, c + 1, q);
                e = q + 1;
                while (e < stop && (*e == ' ' || *e == '\t'))
                    e++;
                if (e < stop && *e != ',') {
                    pp_error_at(R->d, R->src, (size_t)(e - R->src->text),
                                "torch csv: unexpected text after a quoted cell (cells are separated by commas)");
                    while (e < stop && *e != ',')
                        e++;
                }
            } else {
                e = memchr(c, ',', (size_t)(stop - c));
                if (!e)
                    e = stop;
                read_cell(R, row, c, e);
            }
            c = e + 1;
        }
        t = line_end + 1;
    }
}

int pp_torch_csv_read(const pp_source *src, int ranks, int microbatches, pp_arena *a, pp_diag *d,
                      pp_torch_csv *out)
{
    reader R = {src, a, d, ranks, microbatches, NULL, 0, 0, -1, -1, false};
    int before = d->errors;
    memset(out, 0, sizeof *out);
    read_rows(&R);
    if (d->errors != before)
        return d->errors - before;
    int D = R.nrows, S = R.max_stage + 1, M = microbatches ? microbatches : R.max_mb + 1;
    if (ranks && D != ranks) {
        pp_error_at(d, src, D ? R.rows[D - 1].offset : 0, "torch csv: %d rows, but --ranks %d (one row per rank)", D,
                    ranks);
        return 1;
    }
    if (D < 1 || S < 1 || M < 1) {
        pp_error_at(d, src, 0, "torch csv: no compute action (F, I, B or W) in the file");
        return 1;
    }
    if (D > PP_MAX_DEVICES) {
        pp_error_at(d, src, R.rows[PP_MAX_DEVICES].offset, "torch csv: more than %d rows (ranks)", PP_MAX_DEVICES);
        return 1;
    }
    /* Each stage on one rank: where it first appears. */
    int *where = pp_arena_alloc(a, (size_t)S * sizeof *where);
    size_t *first = pp_arena_alloc(a, (size_t)S * sizeof *first);
    for (int s = 0; s < S; s++)
        where[s] = -1;
    for (int r = 0; r < D; r++) {
        pp_order_row *row = &R.rows[r];
        /* The full backwards, now that the split is known: B, or B then W. */
        int n = 0;
        for (int k = 0; k < row->n; k++)
            n += row->ops[k].stage < 0 && R.split ? 2 : 1;
        pp_order_op *ops = pp_arena_alloc(a, (size_t)(n ? n : 1) * sizeof *ops);
        n = 0;
        for (int k = 0; k < row->n; k++) {
            pp_order_op op = row->ops[k];
            bool full = op.stage < 0;
            if (full)
                op.stage = -1 - op.stage;
            ops[n++] = op;
            if (full && R.split)
                ops[n++] = (pp_order_op){PP_OP_W, op.stage, op.mb, op.offset};
            int s = op.stage;
            if (where[s] < 0) {
                where[s] = r;
                first[s] = op.offset;
            } else if (where[s] != r) {
                pp_error_at(d, src, op.offset, "torch csv: stage %d is on rank %d here, but on rank %d before", s, r,
                            where[s]);
                pp_note_at(d, src, first[s], "stage %d first appears here", s);
                where[s] = r; /* one report per move */
            }
        }
        row->ops = ops;
        row->n = n;
    }
    for (int s = 0; s < S && d->errors == before; s++)
        if (where[s] < 0)
            pp_error_at(d, src, 0, "torch csv: stage %d has no action, but stage %d does (stages are 0..%d)", s,
                        S - 1, S - 1);
    if (d->errors == before && S % D)
        pp_error_at(d, src, 0, "torch csv: %d stages on %d ranks; ppcc puts the same number of stages on every rank",
                    S, D);
    if (d->errors != before)
        return d->errors - before;
    out->ranks = D;
    out->stages = S;
    out->microbatches = M;
    out->placement = where;
    out->order.src = src;
    out->order.offset = 0;
    out->order.rows = R.rows;
    out->order.split = R.split;
    return 0;
}

int pp_torch_csv_spec(const char *path, int ranks, int microbatches, const pp_define *defs, int ndefs, pp_arena *a,
                      pp_diag *d, pp_ast *ast, pp_spec *spec)
{
    pp_source *src = pp_arena_alloc(a, sizeof *src);
    pp_torch_csv csv;
    if (pp_source_read(path, a, d, src) || pp_torch_csv_read(src, ranks, microbatches, a, d, &csv))
        return 1;
    int D = csv.ranks, S = csv.stages, shape = pp_placement_shape(csv.placement, D, S);
    /* The shape as a schedule file would say it; -D settings apply after. */
    size_t cap = 160 + (size_t)S * 12;
    char *text = pp_arena_alloc(a, cap);
    int n = snprintf(text, cap, "schedule custom\ndevices = %d\nvirtual = %d\nmicrobatches = %d\nplacement = ", D, S / D,
                     csv.microbatches);
    if (shape != PP_PLACE_LIST)
        n += snprintf(text + n, cap - (size_t)n, "%s\n", shape == PP_PLACE_LOOP ? "loop" : "vshape");
    else {
        for (int s = 0; s < S; s++)
            n += snprintf(text + n, cap - (size_t)n, "%s%d", s ? ", " : "[", csv.placement[s]);
        n += snprintf(text + n, cap - (size_t)n, "]\n");
    }
    char *name = pp_arena_alloc(a, strlen(path) + 16);
    sprintf(name, "<shape of %s>", path);
    if (pp_parse(name, text, (size_t)n, a, d, ast) || pp_spec_build(ast, defs, ndefs, a, d, spec))
        return 1;
    if (strcmp(spec->schedule, "custom") != 0 || spec->devices != D || spec->stages != S ||
        spec->microbatches != csv.microbatches) {
        pp_error(d, "%s: -D %s contradicts the CSV, which is schedule custom with %d ranks, %d stages and %d "
                    "micro-batches",
                 path,
                 strcmp(spec->schedule, "custom") ? "schedule"
                 : spec->devices != D             ? "devices"
                 : spec->stages != S              ? "virtual/stages"
                                                  : "microbatches",
                 D, S, csv.microbatches);
        return 1;
    }
    pp_order *order = pp_arena_alloc(a, sizeof *order);
    *order = csv.order;
    spec->order = order;
    return 0;
}
