/*
 * emit_svg.c — a timeline as a picture: `ppcc --svg FILE` / `--html FILE`
 * (docs/timeline.md).  A self-contained SVG (the page: the same SVG inside
 * a bare HTML document): no script, no font or style fetched, so it opens
 * from disk in any browser.
 *
 *   - a title line and the summary, with the numbers and formats of
 *     --stats: makespan, bubble and its split (fill/drain, imbalance, the
 *     bottleneck stage: bubble_split.c), peak memory per device;
 *   - one lane (<g class="lane">) per device, on one time axis: compute
 *     ops as boxes coloured by kind (F blue, B green, W orange, R purple)
 *     and shaded by micro-batch (darker = earlier), labelled with their
 *     name (F3.5) where it fits; the lane's grey shows between them, so
 *     idle time is what is not covered; each box's <title> is its details,
 *     shown on hover;
 *   - transfers as thin lines from the sender's lane, where the send is
 *     posted, to the receiver's, where the receive ends;
 *   - under the lanes, each device's activation memory over time (the
 *     memory model of activation_memory.c, stepped at each op's end),
 *     on one scale for all devices, its peak written beside it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pp.h"

enum { WIDTH = 1200, LEFT = 96, RIGHT = 24, TOP = 64, LANE = 26, GAP = 6, MEM_H = 40 };

static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20)
                fputc(*s, f);
        }
}

/* The summary exactly as --stats prints its keys (emit_stats.c). */
static void put_summary(FILE *f, const pp_plan *p, const pp_sim *sim)
{
    char t[48];
    pp_bubble_split split;
    pp_bubble_split_of(p, sim, &split);
    fprintf(f, "makespan=%s bubble=%.2f%% fill_drain=%.2f%% imbalance=%.2f%% bottleneck_stage=",
            pp_time_show(&sim->units, sim->makespan, t, sizeof t), sim->bubble * 100, split.fill_drain * 100,
            split.imbalance * 100);
    if (split.stage >= 0)
        fprintf(f, "%d", split.stage);
    else
        fputs("none", f);
    fputs(" peak_mem=[", f);
    for (int d = 0; d < p->devices; d++)
        fprintf(f, "%s%s", d ? "," : "", pp_mem_show(&sim->units, sim->peak_mem ? sim->peak_mem[d] : 0.0, t, sizeof t));
    fputc(']', f);
}

static const int hue_of[PP_OP__COUNT] = {[PP_OP_F] = 212, [PP_OP_B] = 140, [PP_OP_W] = 32, [PP_OP_R] = 285};

/* Where the send of a transfer was posted, by (comm, stage, mb): every
 * send of a plan carries a distinct one. */
typedef struct send_index {
    double *t;
    int *dev;
    long n;
} send_index;

static long send_key(const pp_plan *p, const pp_op *op)
{
    return ((long)op->comm * p->stages + op->stage) * p->microbatches + op->mb;
}

/* The height of one panel of D devices. */
static int panel_height(int D) { return TOP + D * (LANE + GAP) + 34 + D * (MEM_H + GAP) + 24; }

/* One timeline, drawn from y = 0 (the caller places it): title, summary
 * (id "summary" for the first panel, "summary-N" for the N-th after it),
 * lanes, transfers, memory. */
static void draw_panel(FILE *f, const pp_plan *p, const pp_sim *sim, const pp_verify_opts *mem, const char *caption,
                       int index)
{
    int D = p->devices, M = p->microbatches > 0 ? p->microbatches : 1;
    double span = sim->makespan > 0 ? sim->makespan : 1;
    double scale = (WIDTH - LEFT - RIGHT) / span;
    int lanes_h = D * (LANE + GAP);
    int mem_top = TOP + lanes_h + 34;
    char name[64];

    fputs("<text x=\"12\" y=\"20\" font-size=\"14\" font-weight=\"bold\">", f);
    put_escaped(f, p->schedule);
    fprintf(f, ": %d devices, %d stages, %d micro-batches (", D, p->stages, p->microbatches);
    put_escaped(f, caption ? caption : "predicted");
    fputs(")</text>\n", f);
    if (index == 0)
        fputs("<text id=\"summary\" x=\"12\" y=\"38\">", f);
    else
        fprintf(f, "<text id=\"summary-%d\" x=\"12\" y=\"38\">", index);
    put_summary(f, p, sim);
    fputs("</text>\n", f);
    fprintf(f, "<text x=\"12\" y=\"54\" fill=\"#555\">F forward, B backward%s, W weight gradient, R recompute; "
               "darker = earlier micro-batch; grey = idle; lines = transfers%s</text>\n",
            p->split_backward ? " (input gradient)" : "", p->ncoll > 0 ? "; red band = allreduce" : "");

    /* The time axis: ticks at a round step. */
    double step = pow(10, floor(log10(span / 8)));
    if (span / step > 16)
        step *= span / step > 40 ? 5 : 2;
    fputs("<g class=\"axis\" stroke=\"#ddd\">\n", f);
    for (double t = 0; t <= span * (1 + 1e-9); t += step)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\"/><text x=\"%.2f\" y=\"%d\" fill=\"#777\" "
                   "stroke=\"none\" text-anchor=\"middle\">%g</text>\n",
                LEFT + t * scale, TOP - 4, LEFT + t * scale, TOP + lanes_h, LEFT + t * scale, TOP + lanes_h + 14, t);
    fputs("</g>\n", f);

    for (int d = 0; d < D; d++) {
        int y = TOP + d * (LANE + GAP);
        fprintf(f, "<g class=\"lane\" data-device=\"%d\">\n<text x=\"12\" y=\"%d\">device %d</text>\n"
                   "<rect x=\"%d\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"#e4e4e4\"><title>device %d: "
                   "busy %.6g of %.6g</title></rect>\n",
                d, y + LANE / 2 + 4, d, LEFT, y, span * scale, LANE, d, sim->busy ? sim->busy[d] : 0, sim->makespan);
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_op *op = &p->dev[d].ops[i];
            double s = sim->start[d][i], e = sim->end[d][i];
            if (!pp_op_is_compute(op->kind) || !isfinite(s) || !isfinite(e))
                continue;
            double x = LEFT + s * scale, w = (e - s) * scale;
            int light = 38 + (M > 1 ? 40 * op->mb / (M - 1) : 20);
            pp_op_format(op, name, sizeof name);
            fprintf(f, "<g><rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"hsl(%d,62%%,%d%%)\" "
                       "stroke=\"#fff\" stroke-width=\"0.5\"><title>%s on device %d: %s, stage %d, micro-batch %d, "
                       "%.6g to %.6g</title></rect>",
                    x, y, w, LANE, hue_of[op->kind], light, name, d, pp_op_name(op->kind), op->stage, op->mb, s, e);
            if (w >= 6.5 * (double)strlen(name) + 2)
                fprintf(f, "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\" fill=\"%s\" pointer-events=\"none\">"
                           "%s</text>",
                        x + w / 2, y + LANE / 2 + 4, light > 60 ? "#000" : "#fff", name);
            fputs("</g>\n", f);
        }
        fputs("</g>\n", f);
    }

    /* Collectives: each allreduce once (on its first member), a band from
     * when it begins to when it ends across the lanes of its members, the
     * lanes between them included (an asynchronous one: a strip). */
    if (p->ncoll > 0)
        fputs("<g class=\"collectives\" fill=\"hsl(0,70%,45%)\">\n", f);
    for (int d = 0; d < D && p->ncoll > 0; d++)
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_op *op = &p->dev[d].ops[i];
            const pp_coll *c = pp_plan_op_coll(p, op);
            double s = sim->start[d][i], e = sim->end[d][i];
            if (!c || c->ranks[0] != d || !isfinite(s) || !isfinite(e))
                continue;
            int lo = c->ranks[0], hi = c->ranks[c->nranks - 1];
            int y0 = TOP + lo * (LANE + GAP), y1 = TOP + hi * (LANE + GAP) + LANE;
            /* an asynchronous reduction runs beside its device's compute (its
             * data-parallel lane): a strip along the lane's foot, not over it */
            int strip = op->group >= 0 ? LANE / 4 : LANE;
            y0 = y1 - (op->group >= 0 ? strip : y1 - y0);
            double w = (e - s) * scale;
            pp_plan_op_format(p, op, name, sizeof name);
            fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill-opacity=\"0.35\" "
                       "data-start=\"%.17g\" data-end=\"%.17g\"><title>%s: devices",
                    LEFT + s * scale, y0, w > 1.5 ? w : 1.5, y1 - y0, s, e, name);
            for (int k = 0; k < c->nranks; k++)
                fprintf(f, "%s %d", k ? "," : "", c->ranks[k]);
            fprintf(f, ", %.6g to %.6g</title></rect>\n", s, e);
            for (int k = 0; k < c->nranks; k++) /* and solid on each member's lane */
                fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\"/>\n", LEFT + s * scale,
                        TOP + c->ranks[k] * (LANE + GAP) + LANE - strip, w > 1.5 ? w : 1.5, strip);
        }
    if (p->ncoll > 0)
        fputs("</g>\n", f);

    /* Transfers, where the shape is small enough to index its sends. */
    send_index idx = {0};
    idx.n = 2L * p->stages * M;
    if (p->stages > 0 && idx.n <= (4L << 20)) {
        idx.t = pp_xcalloc((size_t)idx.n, sizeof *idx.t, "the picture's transfers");
        idx.dev = pp_xcalloc((size_t)idx.n, sizeof *idx.dev, "the picture's transfers");
        for (int d = 0; d < D; d++)
            for (int i = 0; i < p->dev[d].n; i++) {
                const pp_op *op = &p->dev[d].ops[i];
                if (op->kind == PP_OP_SEND && op->stage >= 0 && op->stage < p->stages && op->mb >= 0 && op->mb < M) {
                    idx.t[send_key(p, op)] = sim->start[d][i];
                    idx.dev[send_key(p, op)] = d + 1;
                }
            }
        fputs("<g class=\"transfers\" stroke=\"#333\" stroke-width=\"0.7\" stroke-opacity=\"0.55\">\n", f);
        for (int d = 0; d < D; d++)
            for (int i = 0; i < p->dev[d].n; i++) {
                const pp_op *op = &p->dev[d].ops[i];
                if (op->kind != PP_OP_RECV || op->stage < 0 || op->stage >= p->stages || op->mb < 0 || op->mb >= M)
                    continue;
                long k = send_key(p, op);
                int from = idx.dev[k] - 1;
                if (from < 0 || !isfinite(idx.t[k]) || !isfinite(sim->end[d][i]))
                    continue;
                int y0 = TOP + from * (LANE + GAP) + (from < d ? LANE : 0);
                int y1 = TOP + d * (LANE + GAP) + (from < d ? 0 : LANE);
                pp_op_format(op, name, sizeof name);
                fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\"><title>%s: device %d to %d, %.6g to "
                           "%.6g</title></line>\n",
                        LEFT + idx.t[k] * scale, y0, LEFT + sim->end[d][i] * scale, y1, name, from, d, idx.t[k],
                        sim->end[d][i]);
            }
        fputs("</g>\n", f);
        free(idx.t);
        free(idx.dev);
    }

    /* Memory over time, each device's held memory stepped at op ends. */
    double top_mem = 0;
    for (int d = 0; d < D; d++)
        top_mem = sim->peak_mem && sim->peak_mem[d] > top_mem ? sim->peak_mem[d] : top_mem;
    if (top_mem <= 0)
        top_mem = 1;
    bool *recomputing = pp_xcalloc((size_t)(p->stages > 0 ? p->stages : 1), sizeof *recomputing, "the picture");
    pp_plan_recomputing(p, recomputing);
    char shown[48];
    fprintf(f, "<text x=\"12\" y=\"%d\" font-weight=\"bold\">memory over time (one scale, peak %s)</text>\n",
            mem_top - 8, pp_mem_show(&sim->units, top_mem, shown, sizeof shown));
    for (int d = 0; d < D; d++) {
        int y = mem_top + d * (MEM_H + GAP);
        pp_mem_state m = pp_mem_begin(mem, d); /* static memory held from the start */
        double held = pp_mem_held(&m, mem);
        fprintf(f, "<g class=\"memory\" data-device=\"%d\">\n<text x=\"12\" y=\"%d\">device %d</text>\n"
                   "<rect x=\"%d\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"#f6f6f6\"/>\n"
                   "<polyline fill=\"none\" stroke=\"hsl(%d,60%%,40%%)\" stroke-width=\"1.5\" points=\"%d,%.2f",
                d, y + MEM_H / 2 + 4, d, LEFT, y, span * scale, MEM_H, (d * 47) % 360, LEFT, y + MEM_H - held / top_mem * (MEM_H - 4));
        double *posted = pp_xcalloc((size_t)(p->dev[d].n > 0 ? p->dev[d].n : 1), sizeof *posted, "the picture");
        pp_mem_posted_deltas(&p->dev[d], mem, posted); /* posted recvs' buffers: drawn from the next compute op */
        for (int i = 0; i < p->dev[d].n; i++) {
            const pp_op *op = &p->dev[d].ops[i];
            m.posted += posted[i];
            if (!pp_op_is_compute(op->kind) || !isfinite(sim->end[d][i]))
                continue;
            pp_mem_step(&m, op, op->stage >= 0 && op->stage < p->stages && recomputing[op->stage], p->split_backward, mem);
            double now = pp_mem_held(&m, mem);
            if (now == held)
                continue;
            double x = LEFT + sim->end[d][i] * scale;
            fprintf(f, " %.2f,%.2f %.2f,%.2f", x, y + MEM_H - held / top_mem * (MEM_H - 4), x,
                    y + MEM_H - now / top_mem * (MEM_H - 4));
            held = now;
        }
        free(posted);
        fprintf(f, " %.2f,%.2f\"/>\n<text x=\"%.2f\" y=\"%d\" text-anchor=\"end\" fill=\"#555\">peak %s</text>\n</g>\n",
                LEFT + span * scale, y + MEM_H - held / top_mem * (MEM_H - 4), (double)WIDTH - 4, y + 12,
                pp_mem_show(&sim->units, sim->peak_mem ? sim->peak_mem[d] : 0.0, shown, sizeof shown));
    }
    free(recomputing);
}

int pp_emit_svg_panels(FILE *f, const pp_plan *p, const pp_svg_panel *panels, int n, const pp_verify_opts *mem,
                       bool html)
{
    if (!f || !p || !panels || n < 1 || p->devices < 1 || !p->dev)
        return 1;
    for (int k = 0; k < n; k++)
        if (!panels[k].sim || !panels[k].sim->start || !panels[k].sim->end)
            return 1;
    int height = n * panel_height(p->devices) + (n - 1) * 16;
    if (html) {
        fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>", f);
        put_escaped(f, p->schedule);
        fputs(" timeline</title>\n<style>body{margin:16px;font-family:sans-serif;background:#fff}</style>\n"
              "</head>\n<body>\n",
              f);
    } else
        fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n",
            WIDTH, height, WIDTH, height);
    fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", WIDTH, height);
    for (int k = 0; k < n; k++) {
        if (n == 1) {
            draw_panel(f, p, panels[k].sim, mem, panels[k].caption, 0);
            continue;
        }
        int y = k * (panel_height(p->devices) + 16);
        if (k > 0)
            fprintf(f, "<line x1=\"0\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/>\n", y - 8, WIDTH, y - 8);
        fprintf(f, "<g class=\"panel\" data-panel=\"%d\" transform=\"translate(0,%d)\">\n", k, y);
        draw_panel(f, p, panels[k].sim, mem, panels[k].caption, k);
        fputs("</g>\n", f);
    }
    fputs("</svg>\n", f);
    if (html)
        fputs("</body>\n</html>\n", f);
    return fflush(f) != 0 || ferror(f) ? 1 : 0;
}

int pp_emit_svg(FILE *f, const pp_plan *p, const pp_sim *sim, const pp_verify_opts *mem, const char *caption,
                bool html)
{
    pp_svg_panel one = {sim, caption};
    return pp_emit_svg_panels(f, p, &one, 1, mem, html);
}
