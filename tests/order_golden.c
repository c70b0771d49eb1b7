/*
 * order_golden.c — the golden-order replay and the compute-order
 * invariants that the policy suites (classic and split-backward) share.
 * One implementation, W-aware, so that both suites check the same things.
 */
#include <stdlib.h>
#include <string.h>

#include "order_golden.h"

void order_spec_place(order_spec *t, int kind)
{
    int D = t->spec.devices;
    t->spec.placement_kind = kind;
    for (int s = 0; s < t->spec.stages; s++)
        t->placement[s] = kind == PP_PLACE_VSHAPE ? (s < D ? s : 2 * D - 1 - s) : s % D;
}

void order_spec_init(order_spec *t, const char *schedule, int D, int M, int v, int group)
{
    memset(t, 0, sizeof *t);
    snprintf(t->spec.schedule, sizeof t->spec.schedule, "%s", schedule);
    t->spec.devices = D;
    t->spec.chunks = v;
    t->spec.stages = D * v;
    t->spec.microbatches = M;
    t->spec.group = group;
    t->spec.placement = t->placement;
    t->spec.cost = (pp_cost){.F = 1, .B = 1, .W = 1, .comm = 0};
    bool vshape = v == 2 && (strcmp(schedule, "zbv") == 0 || strcmp(schedule, "dualpipev") == 0);
    order_spec_place(t, vshape ? PP_PLACE_VSHAPE : PP_PLACE_LOOP);
}

/* The first broken invariant of device d's list, written into msg. */
static const char *check_device(const pp_plan *p, int d, char *seen, char *msg, size_t size)
{
    int S = p->stages, M = p->microbatches, K = p->split_backward ? 3 : 2;
    const pp_device *dv = &p->dev[d];
    if (dv->n < 2 || dv->ops[dv->n - 2].kind != PP_OP_UPDATE || dv->ops[dv->n - 1].kind != PP_OP_FLUSH) {
        snprintf(msg, size, "device %d: does not end with update, flush", d);
        return msg;
    }
    for (int i = dv->n - 2; i < dv->n; i++) {
        const pp_op *op = &dv->ops[i];
        if (op->stage != -1 || op->mb != -1 || op->peer != -1) {
            snprintf(msg, size, "device %d op %d: update/flush with stage/mb/peer set", d, i);
            return msg;
        }
    }
    for (int i = 0; i < dv->n - 2; i++) {
        const pp_op *op = &dv->ops[i];
        int k = op->kind == PP_OP_F ? 0 : op->kind == PP_OP_B ? 1 : op->kind == PP_OP_W ? 2 : -1;
        if (k < 0 || k >= K) {
            snprintf(msg, size, "device %d op %d: %s not allowed before the end", d, i, pp_op_name(op->kind));
            return msg;
        }
        if (op->stage < 0 || op->stage >= S || op->mb < 0 || op->mb >= M || op->peer != -1 || op->group != -1) {
            snprintf(msg, size, "device %d op %d: bad fields (stage %d mb %d peer %d group %d)", d, i, op->stage,
                     op->mb, op->peer, op->group);
            return msg;
        }
        if (p->placement[op->stage] != d) {
            snprintf(msg, size, "device %d op %d: stage %d belongs to device %d", d, i, op->stage,
                     p->placement[op->stage]);
            return msg;
        }
        char *slot = &seen[((size_t)op->stage * M + op->mb) * 3];
        if (slot[k]) {
            snprintf(msg, size, "device %d op %d: %s%d.%d twice", d, i, pp_op_name(op->kind), op->stage, op->mb);
            return msg;
        }
        if (k > 0 && !slot[k - 1]) {
            snprintf(msg, size, "device %d op %d: %s%d.%d before its %s", d, i, pp_op_name(op->kind), op->stage,
                     op->mb, k == 1 ? "F" : "B");
            return msg;
        }
        slot[k] = 1;
    }
    return NULL;
}

const char *order_check_invariants(const pp_plan *p, char *msg, size_t size)
{
    int S = p->stages, M = p->microbatches, K = p->split_backward ? 3 : 2;
    char *seen = calloc((size_t)S * M * 3, 1); /* F, B, W of each (stage, mb) */
    const char *bad = NULL;
    for (int d = 0; d < p->devices && !bad; d++)
        bad = check_device(p, d, seen, msg, size);
    for (size_t i = 0; !bad && i < (size_t)S * M; i++)
        for (int k = 0; k < K && !bad; k++)
            if (!seen[i * 3 + k]) {
                snprintf(msg, size, "%c%zu.%zu never appears", "FBW"[k], i / M, i % M);
                bad = msg;
            }
    free(seen);
    return bad;
}

bool order_runs_buffered(const pp_plan *p)
{
    int S = p->stages, M = p->microbatches, D = p->devices;
    char *done = calloc((size_t)3 * S * M, 1); /* [kind][stage][mb], kind F B W */
    int *pos = calloc((size_t)D, sizeof *pos);
#define DONE(k, s, m) done[((size_t)(k) * S + (s)) * M + (m)]
    for (bool moved = true; moved;) {
        moved = false;
        for (int d = 0; d < D; d++)
            for (; pos[d] < p->dev[d].n; pos[d]++) {
                const pp_op *op = &p->dev[d].ops[pos[d]];
                int s = op->stage, m = op->mb;
                if (op->kind == PP_OP_F) {
                    if (s > 0 && !DONE(0, s - 1, m))
                        break;
                    DONE(0, s, m) = 1;
                } else if (op->kind == PP_OP_B) {
                    if (!DONE(0, s, m) || (s < S - 1 && !DONE(1, s + 1, m)))
                        break;
                    DONE(1, s, m) = 1;
                } else if (op->kind == PP_OP_W) {
                    if (!DONE(1, s, m))
                        break;
                    DONE(2, s, m) = 1;
                }
                moved = true;
            }
    }
#undef DONE
    bool ran = true;
    for (int d = 0; d < D; d++)
        ran &= pos[d] == p->dev[d].n;
    free(done);
    free(pos);
    return ran;
}

void order_format_device(const pp_device *dv, char **buf, size_t *cap, int d)
{
    size_t need = 16 + (size_t)dv->n * 24, n = 0;
    if (*cap < need) {
        *cap = need;
        *buf = realloc(*buf, *cap);
    }
    n += (size_t)sprintf(*buf + n, "%d:", d);
    for (int i = 0; i < dv->n; i++)
        if (pp_op_is_compute(dv->ops[i].kind))
            n += (size_t)sprintf(*buf + n, " %s%d.%d", pp_op_name(dv->ops[i].kind), dv->ops[i].stage, dv->ops[i].mb);
}

/* The next line of the text, terminated in place; NULL at the end. */
static char *next_line(char **text)
{
    char *line = *text, *eol = strchr(line, '\n');
    if (!eol)
        return NULL;
    *eol = '\0';
    *text = eol + 1;
    return line;
}

/* Compares each device's order of an accepted case with the D lines that
 * follow its header; *lineno counts the lines read. */
static void compare_devices(const pp_plan *plan, char **text, const char *rel, int *lineno, const char *header)
{
    char *buf = NULL;
    size_t cap = 0;
    for (int d = 0; d < plan->devices; d++) {
        char *want = next_line(text);
        ck_assert_msg(want != NULL, "%s: device %d missing", header, d);
        ++*lineno;
        order_format_device(&plan->dev[d], &buf, &cap, d);
        if (strcmp(buf, want) != 0) {
            int i = 0;
            while (buf[i] && buf[i] == want[i])
                i++;
            int from = i > 40 ? i - 40 : 0;
            ck_abort_msg("%s:%d: %s: device %d differs at column %d\n  want: ...%.100s\n  got:  ...%.100s", rel,
                         *lineno, header, d, i + 1, want + from, buf + from);
        }
    }
    free(buf);
}

int order_replay_golden(const char *dir, const char *policy)
{
    char rel[128];
    snprintf(rel, sizeof rel, "tests/golden/%s/%s.txt", dir, policy);
    char *text = tu_read_file(tu_src_path(rel), NULL);
    ck_assert_msg(text != NULL, "missing %s (tests/ref/generate_orders.py writes it)", rel);
    const pp_policy *pol = pp_policy_find(policy);
    ck_assert_msg(pol != NULL, "%s is not registered", policy);

    int cases = 0, lineno = 0;
    bool sourced = false;
    char *rest = text;
    static order_spec t;
    while (*rest) {
        char *line = next_line(&rest);
        ck_assert_msg(line != NULL, "%s: last line unterminated", rel);
        lineno++;
        if (line[0] == '#') { /* provenance and findings, before the cases */
            ck_assert_msg(cases == 0, "%s:%d: a comment after the first case", rel, lineno);
            sourced |= strncmp(line, "# source: ", 10) == 0;
            continue;
        }
        ck_assert_msg(sourced, "%s:%d: no \"# source: \" line names the packages it comes from", rel, lineno);
        char name[32];
        int D, M, v, G, used = 0;
        ck_assert_msg(sscanf(line, "case %31s D=%d M=%d v=%d group=%d%n", name, &D, &M, &v, &G, &used) == 5,
                      "%s:%d: expected a case line, got: %.80s", rel, lineno, line);
        bool refused = strcmp(line + used, " refused") == 0;
        ck_assert_msg(refused || line[used] == '\0', "%s:%d: trailing text: %s", rel, lineno, line + used);
        ck_assert_str_eq(name, policy);

        order_spec_init(&t, name, D, M, v, G);
        pp_plan plan;
        tu_diag td;
        tu_diag_open(&td);
        int rc = pp_policy_run(&t.spec, &plan, &td.diag);
        if (refused) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "ppcc: error: %s: ", policy);
            ck_assert_msg(rc != 0, "%s: the reference refuses it, we accepted it", line);
            ck_assert_msg(strncmp(tu_diag_text(&td), prefix, strlen(prefix)) == 0, "%s: refused with: %s", line,
                          tu_diag_text(&td));
        } else {
            ck_assert_msg(rc == 0, "%s: refused: %s", line, tu_diag_text(&td));
            ck_assert_msg(plan.split_backward == pol->split_backward, "%s: split_backward %d", line,
                          plan.split_backward);
            char msg[256];
            const char *bad = order_check_invariants(&plan, msg, sizeof msg);
            ck_assert_msg(bad == NULL, "%s: %s", line, bad);
            compare_devices(&plan, &rest, rel, &lineno, line);
        }
        tu_diag_close(&td);
        pp_plan_free(&plan);
        cases++;
    }
    free(text);
    return cases;
}

void order_expect(const char *policy, int D, int M, int v, int group, int dev, const char *want)
{
    static order_spec t;
    order_spec_init(&t, policy, D, M, v, group);
    pp_plan plan;
    tu_diag td;
    tu_diag_open(&td);
    ck_assert_msg(pp_policy_run(&t.spec, &plan, &td.diag) == 0, "%s", tu_diag_text(&td));
    char *buf = NULL;
    size_t cap = 0;
    order_format_device(&plan.dev[dev], &buf, &cap, dev);
    ck_assert_str_eq(buf, want);
    free(buf);
    tu_diag_close(&td);
    pp_plan_free(&plan);
}
