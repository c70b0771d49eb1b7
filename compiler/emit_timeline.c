/*
 * emit_timeline.c — the text Gantt chart of a simulated (or measured)
 * timeline, as in the GPipe / PipeDream / 1F1B papers: one row per device,
 * time running left to right.  docs/timeline.md shows how to read it.
 *
 * Four layouts, tried in order, so that no op is ever lost:
 *
 *   labelled  x is time, scaled to the width; each compute op spans the
 *             columns of [start, end) and carries its full label (F3, b12).
 *             Used when every op is wide enough for its label.
 *   compact   one column per distinct start time (x no longer to scale,
 *             but concurrent ops stay aligned, so the staircase shows);
 *             each op is one character on a kind row (F/B/W) above a
 *             micro-batch row (last digit).  Used on request or when some
 *             label does not fit.
 *   parts     compact, wrapped: when its columns do not fit the width, they
 *             are cut into parts of the width drawn one below the other (at
 *             most MAX_PARTS, and MAX_PART_ROWS device rows in all), each
 *             micro-batch written in full (tens over units), so that every
 *             op of 8 devices x 32 micro-batches x 2 chunks stays legible
 *             at 80 columns.
 *   scaled    x is time again, several ops per column; each cell shows what
 *             fills most of it.  Used when even the parts do not fit (say
 *             64 devices x 1024 micro-batches): bounded width, linear time.
 *
 * Times are taken as they are — not integers, not uniform, not starting at
 * 0 — so a measured trace renders like a predicted one.  A time t maps to
 * column floor((t - t0) * scale + 0.5): the end of one op and the start of
 * the next map to the same column, so consecutive ops neither overlap nor
 * leave false gaps.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

#define MIN_WIDTH 24
#define MAX_WIDTH 1000
#define IDLE '.'
#define COMM '~'
#define COLL '=' /* an allreduce (a collective) */
#define FILL '-' /* the rest of a labelled op after its label */
#define MAX_PARTS 8    /* of the compact layout in parts, */
#define MAX_PART_ROWS 160 /* and the device rows of all its parts together */

typedef struct chart {
    const pp_plan *p;
    const pp_sim *sim;
    int width;   /* whole line, label included */
    int label_w; /* "d0 |" */
    int digits;  /* of the largest rank */
    int ncols;   /* chart columns between the bars */
    double t0, t1, scale; /* columns per time unit */
    int chunks;  /* most stages on one device */
    int *chunk;  /* [stages]: index of the stage among its device's stages */
    bool any_w, any_comm, any_lower, any_r;
    bool any_coll; /* an allreduce was drawn (set by the layout's drawing) */
    long untimed; /* compute ops without a usable time: not drawn */
    double **xfer; /* [devices][op]: when a send/recv's transfer begins */
    char lane;     /* a lane's letter: 'd' device, 'r' rank (every replica shown) */
} chart;

static bool op_times(const chart *c, int d, int i, double *s, double *e)
{
    *s = c->sim->start[d][i];
    *e = c->sim->end[d][i];
    return isfinite(*s) && isfinite(*e) && *e >= *s;
}

/* A send/recv spans from when the device posts it to when the transfer
 * ends, waiting for the peer included; only the transfer is drawn as '~',
 * from when both sides have posted it. */
static bool comm_times(const chart *c, int d, int i, double *s, double *e)
{
    if (!op_times(c, d, i, s, e))
        return false;
    const pp_op *ops = c->p->dev[d].ops;
    if (ops[i].kind == PP_OP_WAIT) { /* only the wait for a transfer under way, as for a recv */
        if (!(*e > *s))
            return false;
        int k = i - 1;
        while (k >= 0 && !((pp_op_is_comm(ops[k].kind) || ops[k].kind == PP_OP_ALLREDUCE) &&
                           ops[k].group == ops[i].group))
            k--;
        if (k >= 0 && ops[k].kind == PP_OP_ALLREDUCE)
            return false; /* an asynchronous reduction's: drawn as the allreduce, where it runs */
        for (; k >= 0 && pp_op_is_comm(ops[k].kind) && ops[k].group == ops[i].group; k--)
            if (ops[k].kind == PP_OP_RECV && c->xfer && c->xfer[d])
                *s = fmin(fmax(*s, c->xfer[d][k]), *e);
        return *e > *s;
    }
    if (c->xfer && c->xfer[d])
        *s = fmin(fmax(*s, c->xfer[d][i]), *e);
    /* A row shows one op at a time: an asynchronous recv (plan version 2)
     * lasts until its data arrives, but its device has gone on. */
    double s1, e1;
    if (i + 1 < c->p->dev[d].n && op_times(c, d, i + 1, &s1, &e1))
        *e = fmin(*e, fmax(s1, *s));
    return *e > *s;
}

/* A device waiting for communication: a send or recv, or a wait (plan
 * version 2) that stops its device until its group's data has arrived. */
static bool comm_wait(const pp_op *op)
{
    return pp_op_is_comm(op->kind) || op->kind == PP_OP_WAIT;
}

/* The ops that get a place of their own: compute, and the collectives
 * (which hold their device as compute does). */
static bool drawn(const pp_op *op)
{
    return pp_op_is_compute(op->kind) || op->kind == PP_OP_ALLREDUCE;
}

static int ndigits(long v)
{
    int n = 1;
    while (v >= 10)
        v /= 10, n++;
    return n;
}

static int op_chunk(const chart *c, const pp_op *op)
{
    return op->stage >= 0 && op->stage < c->p->stages ? c->chunk[op->stage] : 0;
}

/* The kind letter: upper case for even chunks, lower case for odd ones. */
static char op_letter(const chart *c, const pp_op *op)
{
    char l = pp_op_name(op->kind)[0];
    return op_chunk(c, op) % 2 ? (char)(l - 'A' + 'a') : l;
}

/* "F3", "b12", with ":2" for the chunk when there are more than two. */
static int op_label(const chart *c, const pp_op *op, char *buf, size_t size)
{
    if (c->chunks > 2)
        return snprintf(buf, size, "%c%d:%d", op_letter(c, op), op->mb, op_chunk(c, op));
    return snprintf(buf, size, "%c%d", op_letter(c, op), op->mb);
}

static int col_of(const chart *c, double t)
{
    double x = floor((t - c->t0) * c->scale + 0.5);
    return x < 0 ? 0 : x > c->ncols ? c->ncols : (int)x;
}

typedef struct posted {
    uint64_t key; /* (comm, stage, mb): names one transfer */
    double start;
} posted;

static int cmp_posted(const void *a, const void *b)
{
    uint64_t x = ((const posted *)a)->key, y = ((const posted *)b)->key;
    return (x > y) - (x < y);
}

static bool comm_key(const pp_plan *p, const pp_op *op, uint64_t *key)
{
    if (op->stage < 0 || op->stage >= p->stages || op->mb < 0 || op->mb >= p->microbatches)
        return false;
    *key = ((uint64_t)(op->comm & 1) * (uint64_t)p->stages + (uint64_t)op->stage) *
               (uint64_t)p->microbatches + (uint64_t)op->mb;
    return true;
}

/* Matches each send with its recv (one activation or gradient travels
 * once) and records when both were posted.  Unmatched: its own start. */
static int transfer_starts(chart *c)
{
    const pp_plan *p = c->p;
    long n[2] = {0, 0};
    for (int d = 0; d < p->devices; d++)
        for (int i = 0; i < p->dev[d].n; i++)
            if (pp_op_is_comm(p->dev[d].ops[i].kind))
                n[p->dev[d].ops[i].kind == PP_OP_RECV]++;
    if (n[0] + n[1] == 0)
        return 0;
    posted *side[2] = {malloc(((size_t)n[0] + 1) * sizeof(posted)),
                       malloc(((size_t)n[1] + 1) * sizeof(posted))};
    c->xfer = calloc((size_t)p->devices, sizeof *c->xfer);
    int rc = 1;
    if (!side[0] || !side[1] || !c->xfer)
        goto out;
    long k[2] = {0, 0};
    for (int d = 0; d < p->devices; d++)
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_op *op = &p->dev[d].ops[i];
            uint64_t key;
            double s, e;
            if (pp_op_is_comm(op->kind) && comm_key(p, op, &key) && op_times(c, d, i, &s, &e)) {
                int r = op->kind == PP_OP_RECV;
                side[r][k[r]++] = (posted){key, s};
            }
        }
    for (int r = 0; r < 2; r++)
        qsort(side[r], (size_t)k[r], sizeof(posted), cmp_posted);
    for (int d = 0; d < p->devices; d++) {
        c->xfer[d] = malloc(((size_t)p->dev[d].n + 1) * sizeof **c->xfer);
        if (!c->xfer[d])
            goto out;
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_op *op = &p->dev[d].ops[i];
            c->xfer[d][i] = -INFINITY;
            posted want, *peer = NULL;
            if (!pp_op_is_comm(op->kind) || !comm_key(p, op, &want.key))
                continue;
            int other = op->kind == PP_OP_SEND; /* a send looks among the recvs */
            peer = bsearch(&want, side[other], (size_t)k[other], sizeof(posted), cmp_posted);
            if (peer)
                c->xfer[d][i] = peer->start;
        }
    }
    rc = 0;
out:
    free(side[0]);
    free(side[1]);
    return rc;
}

static void chart_free(chart *c)
{
    for (int d = 0; c->xfer && d < c->p->devices; d++)
        free(c->xfer[d]);
    free(c->xfer);
    free(c->chunk);
}

/* Chunks of each stage, the time range, and what the legend will need. */
/* Do all compute ops start and end on multiples of u after t0? */
static bool on_grid(const chart *c, double u)
{
    for (int d = 0; d < c->p->devices; d++)
        for (int i = 0; i < c->p->dev[d].n; i++) {
            double s, e;
            if (!pp_op_is_compute(c->p->dev[d].ops[i].kind) || !op_times(c, d, i, &s, &e))
                continue;
            double a = (s - c->t0) / u, b = (e - c->t0) / u;
            if (fabs(a - round(a)) > 1e-9 || fabs(b - round(b)) > 1e-9)
                return false;
        }
    return true;
}

/* When the times lie on a grid (the usual small integer costs), give each
 * grid step a whole number of columns, so equal ops get equal widths and
 * the literature's staircase lines up; measured times keep the exact scale. */
static void snap_scale(chart *c)
{
    static const double units[] = {1, 0.5, 0.25, 0.125, 0.1};
    for (size_t k = 0; k < sizeof units / sizeof units[0]; k++) {
        double u = units[k], per = floor(c->scale * u);
        if (per < 1)
            return; /* too fine a grid for the width: keep the exact scale */
        if (on_grid(c, u)) {
            c->scale = per / u;
            return;
        }
    }
}

static int chart_init(chart *c, const pp_plan *p, const pp_sim *sim, const pp_timeline_opts *o)
{
    memset(c, 0, sizeof *c);
    c->p = p;
    c->sim = sim;
    c->width = o && o->width > 0 ? o->width : 80;
    c->lane = o && o->ranks ? 'r' : 'd';
    if (c->width < MIN_WIDTH)
        c->width = MIN_WIDTH;
    if (c->width > MAX_WIDTH)
        c->width = MAX_WIDTH;
    c->digits = ndigits(p->devices - 1);
    c->label_w = 1 + c->digits + 2;
    c->ncols = c->width - c->label_w - 1;
    if (c->ncols < 8)
        return 1; /* more devices than a line can label */

    c->chunk = calloc((size_t)p->stages + 1, sizeof *c->chunk);
    int *count = calloc((size_t)p->devices, sizeof *count);
    if (!c->chunk || !count) {
        free(count);
        return 1;
    }
    c->chunks = 1;
    for (int s = 0; s < p->stages; s++) {
        int r = p->placement ? p->placement[s] : 0;
        if (r < 0 || r >= p->devices)
            r = 0;
        c->chunk[s] = count[r]++;
        if (count[r] > c->chunks)
            c->chunks = count[r];
    }
    free(count);
    if (transfer_starts(c))
        return 1;

    double t0 = INFINITY, t1 = -INFINITY;
    for (int d = 0; d < p->devices; d++)
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_op *op = &p->dev[d].ops[i];
            double s, e;
            if (!op_times(c, d, i, &s, &e)) {
                c->untimed += pp_op_is_compute(op->kind);
                continue;
            }
            if (drawn(op) || (comm_wait(op) && comm_times(c, d, i, &s, &e))) {
                t0 = fmin(t0, s);
                t1 = fmax(t1, e);
            }
            if (op->kind == PP_OP_W)
                c->any_w = true;
            if (op->kind == PP_OP_R)
                c->any_r = true;
            if (pp_op_is_compute(op->kind) && op_chunk(c, op) % 2)
                c->any_lower = true;
        }
    if (!(t0 < t1)) { /* nothing timed, or all instantaneous */
        t0 = isfinite(t0) ? t0 : 0;
        t1 = t0 + 1;
    }
    c->t0 = t0;
    c->t1 = t1;
    c->scale = c->ncols / (t1 - t0);
    snap_scale(c);
    return 0;
}

/* ---- output, wrapped to the width ---- */

typedef struct wrap {
    FILE *f;
    int col, width;
} wrap;

/* Writes sep then phrase, or a new line indented by two when it would
 * pass the width.  A phrase never breaks. */
static void wrap_put(wrap *w, const char *sep, const char *phrase)
{
    int need = (int)strlen(phrase);
    if (w->col > 0 && w->col + (int)strlen(sep) + need > w->width) {
        fputs("\n  ", w->f);
        w->col = 2;
    } else if (w->col > 0) {
        fputs(sep, w->f);
        w->col += (int)strlen(sep);
    }
    fputs(phrase, w->f);
    w->col += need;
}

static void wrap_end(wrap *w)
{
    if (w->col > 0)
        fputc('\n', w->f);
    w->col = 0;
}

/* %.6g with a ".0" on whole numbers, so "33.0" reads as a time. */
static void fmt_time(char *buf, size_t size, double t)
{
    snprintf(buf, size, "%.6g", t);
    if (!strpbrk(buf, ".eEn"))
        strncat(buf, ".0", size - strlen(buf) - 1);
}

static void put_row(const chart *c, FILE *f, int d, bool first, const char *cells)
{
    if (first)
        fprintf(f, "%c%-*d |%s|\n", c->lane, c->digits, d, cells);
    else
        fprintf(f, "%*s|%s|\n", c->label_w - 1, "", cells);
}

/* ---- labelled ---- */

/* Every compute op at least as wide as its label? */
static bool labelled_fits(const chart *c)
{
    char label[32];
    for (int d = 0; d < c->p->devices; d++)
        for (int i = 0; i < c->p->dev[d].n; i++) {
            const pp_op *op = &c->p->dev[d].ops[i];
            double s, e;
            if (!pp_op_is_compute(op->kind) || !op_times(c, d, i, &s, &e))
                continue;
            if (col_of(c, e) - col_of(c, s) < op_label(c, op, label, sizeof label))
                return false;
        }
    return true;
}

static void draw_labelled(chart *c, FILE *f, char *row)
{
    char label[32];
    for (int d = 0; d < c->p->devices; d++) {
        memset(row, IDLE, (size_t)c->ncols);
        const pp_device *dv = &c->p->dev[d];
        /* Transfers first: compute drawn over them wins. */
        for (int i = 0; i < dv->n; i++) {
            double s, e;
            if (comm_wait(&dv->ops[i]) && comm_times(c, d, i, &s, &e)) {
                int a = col_of(c, s), b = col_of(c, e);
                if (b > a)
                    c->any_comm = true;
                memset(row + a, COMM, (size_t)(b - a));
            }
            if (dv->ops[i].kind == PP_OP_ALLREDUCE && op_times(c, d, i, &s, &e)) {
                int a = col_of(c, s), b = col_of(c, e);
                memset(row + a, COLL, (size_t)(b - a));
                c->any_coll |= b > a;
            }
        }
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            double s, e;
            if (!pp_op_is_compute(op->kind) || !op_times(c, d, i, &s, &e))
                continue;
            int a = col_of(c, s), b = col_of(c, e);
            int n = op_label(c, op, label, sizeof label);
            memset(row + a, FILL, (size_t)(b - a));
            memcpy(row + a, label, (size_t)(n < b - a ? n : b - a));
        }
        put_row(c, f, d, true, row);
    }
}

/* ---- compact ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* NAME(v, n, x): the first index in the sorted v[0..n) with v[i] >= x. */
#define LOWER_BOUND(NAME, T)                         \
    static long NAME(const T *v, long n, T x)        \
    {                                                \
        long lo = 0, hi = n;                         \
        while (lo < hi) {                            \
            long mid = lo + (hi - lo) / 2;           \
            if (v[mid] < x)                          \
                lo = mid + 1;                        \
            else                                     \
                hi = mid;                            \
        }                                            \
        return lo;                                   \
    }
LOWER_BOUND(lower_double, double)
LOWER_BOUND(lower_u64, uint64_t)
#undef LOWER_BOUND

/* The instant a start belongs to: the last representative at or before it. */
static long instant_of(const double *rep, long nrep, double s)
{
    long lo = 0, hi = nrep; /* first rep > s */
    while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        if (rep[mid] <= s)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 ? lo - 1 : 0;
}

/* The compact layout: col[d][i] for each compute op (-1 for the others)
 * and its last column + 1 in span[d][i].  Start times within half the
 * shortest op of each other are one instant (a measured trace jitters);
 * a device never has two ops in one instant unless one takes no time, and
 * those get a sub-column each.  Returns the number of columns, or -1 when
 * there would be more than limit (or memory ran out). */
static int compact_layout(const chart *c, int **col, int **span, long limit)
{
    const pp_plan *p = c->p;
    long n = 0;
    double min_dur = INFINITY;
    for (int d = 0; d < p->devices; d++) {
        long k = 0;
        for (int i = 0; i < p->dev[d].n; i++) {
            double s, e;
            if (!drawn(&p->dev[d].ops[i]) || !op_times(c, d, i, &s, &e))
                continue;
            if (e > s)
                min_dur = fmin(min_dur, e - s);
            k++;
        }
        if (k > limit)
            return -1; /* one column per op cannot fit: no need to sort */
        n += k;
    }
    double tol = isfinite(min_dur) ? min_dur / 2 : 0;
    double eps = (c->t1 - c->t0) * 1e-9;

    double *starts = malloc(((size_t)n + 1) * sizeof *starts);
    uint64_t *keys = malloc(((size_t)n + 1) * sizeof *keys);
    int result = -1;
    if (!starts || !keys)
        goto out;
    long k = 0;
    for (int d = 0; d < p->devices; d++)
        for (int i = 0; i < p->dev[d].n; i++) {
            double s, e;
            if (drawn(&p->dev[d].ops[i]) && op_times(c, d, i, &s, &e))
                starts[k++] = s;
        }
    qsort(starts, (size_t)n, sizeof *starts, cmp_double);
    long nrep = 0; /* each instant is represented by its earliest start */
    for (long i = 0; i < n; i++)
        if (nrep == 0 || starts[i] - starts[nrep - 1] > tol)
            starts[nrep++] = starts[i];
    const double *rep = starts;

    /* key = (instant, how many earlier ops of the device share it) */
    uint64_t stride = (uint64_t)limit + 1;
    k = 0;
    for (int d = 0; d < p->devices; d++) {
        long prev = -1;
        uint64_t j = 0;
        for (int i = 0; i < p->dev[d].n; i++) {
            double s, e;
            if (!drawn(&p->dev[d].ops[i]) || !op_times(c, d, i, &s, &e))
                continue;
            long inst = instant_of(rep, nrep, s);
            j = inst == prev ? j + 1 : 0;
            prev = inst;
            keys[k++] = (uint64_t)inst * stride + j;
        }
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_u64);
    long nkeys = 0;
    for (long i = 0; i < n; i++)
        if (nkeys == 0 || keys[i] != keys[nkeys - 1])
            keys[nkeys++] = keys[i];
    if (nkeys > limit)
        goto out;

    for (int d = 0; d < p->devices; d++) {
        const pp_device *dv = &p->dev[d];
        long prev = -1;
        uint64_t j = 0;
        int last = -1; /* the previous compute op of the device */
        for (int i = 0; i < dv->n; i++) {
            col[d][i] = span[d][i] = -1;
            double s, e;
            if (!drawn(&dv->ops[i]) || !op_times(c, d, i, &s, &e))
                continue;
            long inst = instant_of(rep, nrep, s);
            j = inst == prev ? j + 1 : 0;
            prev = inst;
            int cl = (int)lower_u64(keys, nkeys, (uint64_t)inst * stride + j);
            if (last >= 0 && cl <= col[d][last])
                goto out; /* ops of a device out of time order: not a timeline */
            long end_inst = lower_double(rep, nrep, e - eps);
            int ce = (int)lower_u64(keys, nkeys, (uint64_t)end_inst * stride);
            col[d][i] = cl;
            span[d][i] = ce > cl ? ce : cl + 1;
            if (last >= 0 && span[d][last] > cl)
                span[d][last] = cl; /* overlapping ops: the next one wins */
            last = i;
        }
    }
    result = (int)nkeys;
out:
    free(starts);
    free(keys);
    return result;
}

static void draw_compact(chart *c, FILE *f, char *row, char *row2, char *row3, int **col,
                         int **span)
{
    for (int d = 0; d < c->p->devices; d++) {
        memset(row, IDLE, (size_t)c->ncols);
        memset(row2, ' ', (size_t)c->ncols);
        memset(row3, ' ', (size_t)c->ncols);
        const pp_device *dv = &c->p->dev[d];
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            int a = col[d][i], b = span[d][i];
            if (a < 0)
                continue;
            if (op->kind == PP_OP_ALLREDUCE) {
                memset(row + a, COLL, (size_t)(b - a));
                c->any_coll = true;
                continue;
            }
            memset(row + a, FILL, (size_t)(b - a));
            row[a] = op_letter(c, op);
            row2[a] = (char)('0' + op->mb % 10);
            row3[a] = (char)('0' + op_chunk(c, op) % 10);
        }
        put_row(c, f, d, true, row);
        put_row(c, f, d, false, row2);
        if (c->chunks > 2)
            put_row(c, f, d, false, row3);
    }
}

/* Device rows of one part: kind, micro-batch digits, chunk. */
static int part_rows(const chart *c)
{
    return 1 + ndigits(c->p->microbatches > 1 ? c->p->microbatches - 1 : 0) + (c->chunks > 2);
}

/* How many parts the layout may take. */
static int parts_max(const chart *c)
{
    long by_rows = MAX_PART_ROWS / ((long)c->p->devices * part_rows(c));
    return by_rows < MAX_PARTS ? (int)by_rows : MAX_PARTS;
}

/* The compact columns [0, ncols) in parts of the width: each device's kind
 * row, then its micro-batch in full (tens over units, and hundreds over
 * those, as many rows as the largest needs), then its chunk when there
 * are more than two. */
static void draw_parts(chart *c, FILE *f, char *row, int **col, int **span, int ncols)
{
    int W = c->ncols, parts = (ncols + W - 1) / W;
    int mb_rows = ndigits(c->p->microbatches > 1 ? c->p->microbatches - 1 : 0);
    for (int part = 0; part < parts; part++) {
        int lo = part * W, hi = lo + W < ncols ? lo + W : ncols;
        fprintf(f, "%*s part %d of %d\n", c->label_w - 1, "", part + 1, parts);
        for (int d = 0; d < c->p->devices; d++) {
            const pp_device *dv = &c->p->dev[d];
            for (int r = 0; r < part_rows(c); r++) {
                memset(row, r == 0 ? IDLE : ' ', (size_t)W);
                for (int i = 0; i < dv->n; i++) {
                    const pp_op *op = &dv->ops[i];
                    int a = col[d][i], b = span[d][i];
                    if (a < 0 || b <= lo || a >= hi)
                        continue;
                    bool coll = op->kind == PP_OP_ALLREDUCE;
                    if (r == 0) {
                        int from = a > lo ? a : lo, to = b < hi ? b : hi;
                        memset(row + from - lo, coll ? COLL : FILL, (size_t)(to - from));
                        c->any_coll |= coll;
                    }
                    if (a < lo || coll)
                        continue; /* began in the part before, labelled there; a collective has no label */
                    long v = r == 0 ? 0 : r <= mb_rows ? op->mb : op_chunk(c, op);
                    int place = r <= mb_rows ? mb_rows - r : 0; /* digit of v on this row */
                    for (int k = 0; k < place; k++)
                        v /= 10;
                    row[a - lo] = r == 0 ? op_letter(c, op) : (char)('0' + v % 10);
                }
                row[hi - lo] = '\0';
                put_row(c, f, d, r == 0, row);
                row[hi - lo] = ' ';
            }
        }
    }
    row[W] = '\0';
}

/* ---- scaled ---- */

/* What a cell can show, in the order ties are broken. */
enum { CELL_F, CELL_B, CELL_W, CELL_R, CELL_f, CELL_b, CELL_w, CELL_r, CELL_COLL, CELL_COMM, CELL_IDLE, CELL__N };
static const char cell_char[CELL__N] = {'F', 'B', 'W', 'R', 'f', 'b', 'w', 'r', COLL, COMM, IDLE};

static void draw_scaled(chart *c, FILE *f, char *row, double *acc)
{
    double cell = 1 / c->scale; /* time per column */
    for (int d = 0; d < c->p->devices; d++) {
        memset(acc, 0, (size_t)c->ncols * CELL__N * sizeof *acc);
        const pp_device *dv = &c->p->dev[d];
        for (int i = 0; i < dv->n; i++) {
            const pp_op *op = &dv->ops[i];
            double s, e;
            if (!(comm_wait(op) ? comm_times(c, d, i, &s, &e) : op_times(c, d, i, &s, &e)) || e <= s)
                continue;
            int what;
            if (pp_op_is_compute(op->kind))
                what = (op->kind == PP_OP_F   ? CELL_F
                        : op->kind == PP_OP_B ? CELL_B
                        : op->kind == PP_OP_R ? CELL_R
                                              : CELL_W) +
                       (op_chunk(c, op) % 2 ? CELL_f : 0);
            else if (comm_wait(op))
                what = CELL_COMM;
            else if (op->kind == PP_OP_ALLREDUCE)
                what = CELL_COLL;
            else
                continue;
            double x0 = (s - c->t0) * c->scale, x1 = (e - c->t0) * c->scale;
            int a = (int)floor(x0), b = (int)floor(x1);
            if (a < 0)
                a = 0;
            if (b > c->ncols - 1)
                b = c->ncols - 1;
            for (int k = a; k <= b; k++) {
                double lo = fmax(x0, k), hi = fmin(x1, k + 1);
                if (hi > lo)
                    acc[k * CELL__N + what] += (hi - lo) * cell;
            }
        }
        for (int k = 0; k < c->ncols; k++) {
            double *a = &acc[k * CELL__N];
            /* Transfers only count where nothing computes: they overlap compute. */
            double compute = 0;
            for (int w = CELL_F; w <= CELL_COLL; w++) /* a collective holds its device too */
                compute += a[w];
            a[CELL_COMM] = fmin(a[CELL_COMM], fmax(0, cell - compute));
            a[CELL_IDLE] = fmax(0, cell - compute - a[CELL_COMM]);
            int best = 0;
            for (int w = 1; w < CELL__N; w++)
                if (a[w] > a[best] * (1 + 1e-9))
                    best = w;
            row[k] = cell_char[best];
            c->any_coll |= best == CELL_COLL;
        }
        put_row(c, f, d, true, row);
    }
}

/* ---- legend and summary ---- */

enum layout { LABELLED, COMPACT, PARTS, SCALED };

static void legend(const chart *c, FILE *f, enum layout how)
{
    wrap w = {f, 0, c->width};
    char buf[128], t0[32], t1[32], per[32];
    if (how == COMPACT) {
        wrap_put(&w, "", c->any_w ? "F/B/W over the micro-batch's last digit:"
                                  : "F/B over the micro-batch's last digit:");
    } else if (how == PARTS) {
        wrap_put(&w, "", c->any_w ? "F/B/W over the micro-batch" : "F/B over the micro-batch");
        wrap_put(&w, c->p->microbatches > 10 ? " " : "", c->p->microbatches > 10 ? "(tens over units):" : ":");
    } else if (how == LABELLED) {
        wrap_put(&w, "", c->any_w ? "F3/B3/W3:" : "F3/B3:");
    } else {
        wrap_put(&w, "", "each cell: what fills most of it;");
    }
    wrap_put(&w, " ", "F forward,");
    wrap_put(&w, " ", c->any_w ? "B input-grad backward," : "B backward");
    if (c->any_w)
        wrap_put(&w, " ", "W weight-grad");
    if (c->any_r)
        wrap_put(&w, ", ", "R recomputed forward");
    if (how == LABELLED)
        wrap_put(&w, " ", "of micro-batch 3");
    if (c->any_lower || c->chunks > 1)
        wrap_put(&w, "; ", "lower case: odd chunk");
    if (c->chunks > 2)
        wrap_put(&w, "; ", how == COMPACT ? "third row: chunk" : how == PARTS ? "last row: chunk" : ":c chunk c");
    if (how != SCALED)
        wrap_put(&w, "; ", "- op continues");
    wrap_put(&w, "; ", ". idle");
    if (how == LABELLED && c->any_comm)
        wrap_put(&w, "; ", "~ send/recv");
    if (how == SCALED)
        wrap_put(&w, "; ", "~ send/recv");
    if (c->any_coll)
        wrap_put(&w, "; ", "= allreduce");
    wrap_end(&w);

    if (c->sim->units.seconds) {
        pp_time_show(&c->sim->units, c->t0, t0, sizeof t0);
        pp_time_show(&c->sim->units, c->t1, t1, sizeof t1);
    } else {
        fmt_time(t0, sizeof t0, c->t0);
        fmt_time(t1, sizeof t1, c->t1);
    }
    if (how == COMPACT || how == PARTS) {
        wrap_put(&w, "", how == PARTS ? "compact in parts: one column per start time," : "compact: one column per start time,");
        wrap_put(&w, " ", how == PARTS ? "not to scale, each part after the one above;" : "not to scale;");
    } else {
        snprintf(per, sizeof per, "%.3g", 1 / c->scale);
        snprintf(buf, sizeof buf, "%s: 1 column = %s %s;", how == SCALED ? "scaled" : "x", per,
                 c->sim->units.seconds ? "s" : "time units");
        wrap_put(&w, "", buf);
    }
    snprintf(buf, sizeof buf, "t %s .. %s", t0, t1);
    wrap_put(&w, " ", buf);
    if (c->untimed) {
        snprintf(buf, sizeof buf, "(%ld op%s without a time not drawn)", c->untimed,
                 c->untimed == 1 ? "" : "s");
        wrap_put(&w, " ", buf);
    }
    wrap_end(&w);
}

static void summary(const chart *c, FILE *f)
{
    wrap w = {f, 0, c->width};
    char buf[64], t[32];
    snprintf(buf, sizeof buf, "bubble %.1f%%", c->sim->bubble * 100);
    wrap_put(&w, "", buf);
    pp_bubble_split split;
    pp_bubble_split_of(c->p, c->sim, &split);
    snprintf(buf, sizeof buf, "(fill/drain %.1f%%,", split.fill_drain * 100);
    wrap_put(&w, " ", buf);
    snprintf(buf, sizeof buf, "imbalance %.1f%%,", split.imbalance * 100);
    wrap_put(&w, " ", buf);
    if (split.stage >= 0)
        snprintf(buf, sizeof buf, "bottleneck stage %d)", split.stage);
    else
        snprintf(buf, sizeof buf, "balanced)");
    wrap_put(&w, " ", buf);
    const pp_view_units *u = &c->sim->units;
    double makespan = c->sim->makespan > 0 ? c->sim->makespan : c->t1 - c->t0;
    if (u->seconds)
        pp_time_show(u, makespan, t, sizeof t);
    else
        fmt_time(t, sizeof t, makespan);
    snprintf(buf, sizeof buf, "makespan %s", t);
    wrap_put(&w, "  ", buf);
    double tps, mfu;
    if (pp_throughput(u, c->sim->makespan, c->p->devices, &tps, &mfu)) {
        snprintf(buf, sizeof buf, "%.6g tokens/s per device,", tps);
        wrap_put(&w, "  ", buf);
        snprintf(buf, sizeof buf, "MFU %.1f%%", 100 * mfu);
        wrap_put(&w, " ", buf);
    }
    if (pp_plan_replicas(c->p) > 1) { /* --stats' dp_allreduce= */
        snprintf(buf, sizeof buf, "data-parallel allreduce %s", pp_time_show(u, c->sim->dp_time, t, sizeof t));
        wrap_put(&w, "  ", buf);
        wrap_put(&w, " ", "(each stage once)");
    }
    if (c->sim->peak_mem) { /* activation_memory.c's peak, the number of every view */
        wrap_put(&w, "  ", "peak memory:");
        for (int d = 0; d < c->p->devices; d++) {
            char m[32];
            snprintf(buf, sizeof buf, "%c%d %s%s", c->lane, d, pp_mem_show(u, c->sim->peak_mem[d], m, sizeof m),
                     d + 1 < c->p->devices ? "," : "");
            wrap_put(&w, " ", buf);
        }
    }
    if (c->sim->zero_saved) { /* already out of the peak; --stats' zero_saved= */
        wrap_put(&w, "  ", "ZeRO-1 saved:");
        for (int d = 0; d < c->p->devices; d++) {
            char m[32];
            snprintf(buf, sizeof buf, "%c%d %s%s", c->lane, d, pp_mem_show(u, c->sim->zero_saved[d], m, sizeof m),
                     d + 1 < c->p->devices ? "," : "");
            wrap_put(&w, " ", buf);
        }
    }
    wrap_end(&w);
}

/* Every replica: a lane per rank k = device x R + replica, each a copy of
 * its device's list (peers turned into the replica's ranks) and timing
 * (every replica runs the same lists at the same times), drawn as one
 * plan of D x R lanes. */
static int emit_all_replicas(FILE *f, const pp_plan *p, const pp_sim *sim, const pp_timeline_opts *o)
{
    int R = pp_plan_replicas(p), N = p->devices * R;
    pp_plan q = *p;
    pp_sim t = *sim;
    q.devices = N;
    q.dev = pp_xcalloc((size_t)N, sizeof *q.dev, "the timeline of every replica");
    q.placement = pp_xcalloc((size_t)p->stages + 1, sizeof *q.placement, "the timeline of every replica");
    for (int s = 0; s < p->stages; s++)
        q.placement[s] = pp_rank_of(p->placement[s], 0, R);
    t.start = pp_xcalloc((size_t)N, sizeof *t.start, "the timeline of every replica");
    t.end = pp_xcalloc((size_t)N, sizeof *t.end, "the timeline of every replica");
    t.busy = pp_xcalloc((size_t)N, sizeof *t.busy, "the timeline of every replica");
    t.peak_mem = sim->peak_mem ? pp_xcalloc((size_t)N, sizeof *t.peak_mem, "the timeline of every replica") : NULL;
    t.peak_act = sim->peak_act ? pp_xcalloc((size_t)N, sizeof *t.peak_act, "the timeline of every replica") : NULL;
    t.zero_saved = sim->zero_saved ? pp_xcalloc((size_t)N, sizeof *t.zero_saved, "the timeline of every replica")
                                   : NULL;
    for (int k = 0; k < N; k++) {
        int d = k / R, r = k % R, n = p->dev[d].n;
        q.dev[k] = (pp_device){pp_xcalloc((size_t)(n > 0 ? n : 1), sizeof(pp_op), "the timeline of every replica"),
                               n, n};
        for (int i = 0; i < n; i++) {
            pp_op op = p->dev[d].ops[i];
            if (pp_op_is_comm(op.kind))
                op.peer = pp_rank_of(op.peer, r, R);
            q.dev[k].ops[i] = op;
        }
        t.start[k] = sim->start[d];
        t.end[k] = sim->end[d];
        t.busy[k] = sim->busy[d];
        if (t.peak_mem)
            t.peak_mem[k] = sim->peak_mem[d];
        if (t.peak_act)
            t.peak_act[k] = sim->peak_act[d];
        if (t.zero_saved)
            t.zero_saved[k] = sim->zero_saved[d];
    }
    pp_timeline_opts lanes = *o;
    lanes.all_replicas = false;
    lanes.ranks = true;
    int rc = pp_emit_timeline(f, &q, &t, &lanes);
    for (int k = 0; k < N; k++)
        free(q.dev[k].ops);
    free(q.dev);
    free(q.placement);
    free(t.start);
    free(t.end);
    free(t.busy);
    free(t.peak_mem);
    free(t.peak_act);
    free(t.zero_saved);
    return rc;
}

int pp_emit_timeline(FILE *f, const pp_plan *p, const pp_sim *sim, const pp_timeline_opts *o)
{
    if (!f || !p || !sim || !sim->start || !sim->end || p->devices < 1 || !p->dev)
        return 1;
    if (o && o->all_replicas && pp_plan_replicas(p) > 1)
        return emit_all_replicas(f, p, sim, o);
    chart c;
    if (chart_init(&c, p, sim, o)) {
        chart_free(&c);
        return 1;
    }
    int rc = 1;
    char *row = malloc((size_t)c.ncols * 3 + 3);
    int **col = calloc((size_t)p->devices, sizeof *col);
    int **span = calloc((size_t)p->devices, sizeof *span);
    double *acc = NULL;
    if (!row || !col || !span)
        goto out;
    char *row2 = row + c.ncols + 1, *row3 = row2 + c.ncols + 1;
    row[c.ncols] = row2[c.ncols] = row3[c.ncols] = '\0';

    char title[96];
    wrap w = {f, 0, c.width};
    snprintf(title, sizeof title, "%.32s:", p->schedule);
    wrap_put(&w, "", title);
    bool ranks = o && o->ranks;
    if (ranks) /* every replica: a lane per rank */
        snprintf(title, sizeof title, "%d ranks (%d devices x %d replicas, every replica shown),", p->devices,
                 p->devices / pp_plan_replicas(p), pp_plan_replicas(p));
    else
        snprintf(title, sizeof title, "%d device%s%s", p->devices, p->devices == 1 ? "" : "s",
                 pp_plan_replicas(p) > 1 ? "" : ",");
    wrap_put(&w, " ", title);
    if (!ranks && pp_plan_replicas(p) > 1) { /* every replica runs these lists: one stands for all */
        snprintf(title, sizeof title, "x %d replicas (%ld ranks, one replica shown),", pp_plan_replicas(p),
                 (long)p->devices * pp_plan_replicas(p));
        wrap_put(&w, " ", title);
    }
    snprintf(title, sizeof title, "%d stage%s,", p->stages, p->stages == 1 ? "" : "s");
    wrap_put(&w, " ", title);
    snprintf(title, sizeof title, "%d micro-batch%s", p->microbatches, p->microbatches == 1 ? "" : "es");
    wrap_put(&w, " ", title);
    wrap_end(&w);

    enum layout how = SCALED;
    int parts_cols = 0;
    if (!(o && o->compact) && labelled_fits(&c)) {
        how = LABELLED;
    } else {
        bool ok = true;
        for (int d = 0; d < p->devices && ok; d++) {
            int n = p->dev[d].n > 0 ? p->dev[d].n : 1;
            col[d] = malloc((size_t)n * sizeof **col);
            span[d] = malloc((size_t)n * sizeof **span);
            ok = col[d] && span[d];
        }
        if (ok && compact_layout(&c, col, span, c.ncols) >= 0)
            how = COMPACT;
        else if (ok && parts_max(&c) > 1 &&
                 (parts_cols = compact_layout(&c, col, span, (long)c.ncols * parts_max(&c))) >= 0)
            how = PARTS;
    }
    if (how == LABELLED) {
        draw_labelled(&c, f, row);
    } else if (how == COMPACT) {
        draw_compact(&c, f, row, row2, row3, col, span);
    } else if (how == PARTS) {
        draw_parts(&c, f, row, col, span, parts_cols);
    } else {
        acc = malloc((size_t)c.ncols * CELL__N * sizeof *acc);
        if (!acc)
            goto out;
        draw_scaled(&c, f, row, acc);
    }
    legend(&c, f, how);
    summary(&c, f);
    rc = fflush(f) != 0 || ferror(f) ? 1 : 0;
out:
    for (int d = 0; col && d < p->devices; d++)
        free(col[d]);
    for (int d = 0; span && d < p->devices; d++)
        free(span[d]);
    free(col);
    free(span);
    free(acc);
    free(row);
    chart_free(&c);
    return rc;
}
