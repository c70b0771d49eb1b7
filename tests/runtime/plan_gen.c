/*
 * plan_gen.c — see plan_gen.h.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "plan_gen.h"

typedef struct gop {
    const char *op;
    int stage, mb, peer, group;
    const char *kind;
} gop;

typedef struct glist {
    gop *v;
    int n, cap;
} glist;

static void push(glist *l, gop o)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    l->v[l->n++] = o;
}

static const int place_same[] = {0, 0, 1, 1};

bool tg_named(const char *name, tg_spec *s)
{
    memset(s, 0, sizeof *s);
    s->lr = 0.05;
    s->seed = 7;
    s->hidden = 16;
    if (strcmp(name, "1f1b-2x4") == 0)
        *s = (tg_spec){"1f1b", 2, 2, 4, NULL, false, 4, 16, 32, 0.05, 7, false};
    else if (strcmp(name, "1f1b-1x4") == 0) /* one device: nothing waits */
        *s = (tg_spec){"1f1b", 1, 1, 4, NULL, false, 4, 16, 32, 0.05, 7, false};
    else if (strcmp(name, "gpipe-4x8") == 0)
        *s = (tg_spec){"gpipe", 4, 4, 8, NULL, false, 8, 12, 32, 0.05, 11, false};
    else if (strcmp(name, "interleaved-2x2x4") == 0)
        *s = (tg_spec){"dfs", 2, 4, 4, NULL, false, 4, 16, 16, 0.1, 3, false};
    else if (strcmp(name, "same-device-2x4") == 0)
        *s = (tg_spec){"gpipe", 2, 4, 4, place_same, false, 6, 8, 8, 0.1, 5, false};
    else if (strcmp(name, "zb-2x4") == 0)
        *s = (tg_spec){"1f1b", 2, 2, 4, NULL, true, 3, 16, 32, 0.05, 9, false};
    else
        return false;
    return true;
}

static int place_of(const tg_spec *s, int stage)
{
    return s->placement ? s->placement[stage] : stage % s->devices;
}

/* Appends compute op (op, stage, mb) with the comm it needs around it. */
static void emit(const tg_spec *s, glist *l, int rank, const char *op, int stage, int mb)
{
    bool fwd = strcmp(op, "F") == 0, bwd = strcmp(op, "B") == 0;
    if (fwd && stage > 0 && place_of(s, stage - 1) != rank)
        push(l, (gop){"recv", stage - 1, mb, place_of(s, stage - 1), 0, "act"});
    if (bwd && stage < s->stages - 1 && place_of(s, stage + 1) != rank)
        push(l, (gop){"recv", stage + 1, mb, place_of(s, stage + 1), 0, "grad"});
    push(l, (gop){op, stage, mb, -1, -1, NULL});
    if (fwd && stage < s->stages - 1 && place_of(s, stage + 1) != rank)
        push(l, (gop){"send", stage, mb, place_of(s, stage + 1), 0, "act"});
    if (bwd && stage > 0 && place_of(s, stage - 1) != rank)
        push(l, (gop){"send", stage, mb, place_of(s, stage - 1), 0, "grad"});
}

static void device_ops(const tg_spec *s, int rank, glist *l)
{
    int mine[64], k = 0;
    for (int st = 0; st < s->stages; st++)
        if (place_of(s, st) == rank)
            mine[k++] = st;
    int M = s->microbatches;
    glist bs = {0};
    if (strcmp(s->schedule, "1f1b") == 0) {
        int st = mine[0]; /* one stage per device */
        int warm = s->stages - st - 1 < M ? s->stages - st - 1 : M;
        for (int m = 0; m < warm; m++)
            emit(s, l, rank, "F", st, m);
        for (int i = 0; i < M - warm; i++) {
            emit(s, l, rank, "F", st, warm + i);
            emit(s, l, rank, "B", st, i);
            push(&bs, (gop){"W", st, i, -1, -1, NULL});
        }
        for (int m = M - warm; m < M; m++) {
            emit(s, l, rank, "B", st, m);
            push(&bs, (gop){"W", st, m, -1, -1, NULL});
        }
    } else if (strcmp(s->schedule, "dfs") == 0) {
        /* depth first: each micro-batch through all of the device's stages */
        for (int m = 0; m < M; m++)
            for (int i = 0; i < k; i++)
                emit(s, l, rank, "F", mine[i], m);
        for (int m = 0; m < M; m++)
            for (int i = k - 1; i >= 0; i--) {
                emit(s, l, rank, "B", mine[i], m);
                push(&bs, (gop){"W", mine[i], m, -1, -1, NULL});
            }
    } else {
        /* GPipe over the virtual pipeline of all stages: F(s,m) in the
         * wavefront slot s+m, then B(s,m) in slot (S-1-s)+m; a device runs
         * its ops in slot order (ties: model order for F, reverse for B),
         * which is a linear extension of one global schedule: no deadlock
         * even when every send waits for its receive. */
        int S = s->stages;
        for (int slot = 0; slot < S + M; slot++)
            for (int i = 0; i < k; i++)
                if (slot - mine[i] >= 0 && slot - mine[i] < M)
                    emit(s, l, rank, "F", mine[i], slot - mine[i]);
        for (int slot = 0; slot < S + M; slot++)
            for (int i = k - 1; i >= 0; i--) {
                int m = slot - (S - 1 - mine[i]);
                if (m >= 0 && m < M) {
                    emit(s, l, rank, "B", mine[i], m);
                    push(&bs, (gop){"W", mine[i], m, -1, -1, NULL});
                }
            }
    }
    if (s->split_backward)
        for (int i = 0; i < bs.n; i++)
            push(l, bs.v[i]);
    free(bs.v);
    push(l, (gop){"update", -1, -1, -1, -1, NULL});
    push(l, (gop){"flush", -1, -1, -1, -1, NULL});
    /* consecutive comm ops form one group */
    int group = -1;
    for (int i = 0; i < l->n; i++) {
        if (!l->v[i].kind)
            continue;
        if (i == 0 || !l->v[i - 1].kind)
            group++;
        l->v[i].group = group;
    }
    if (s->groups_descending)
        for (int i = 0; i < l->n; i++)
            if (l->v[i].kind)
                l->v[i].group = group - l->v[i].group;
}

char *tg_plan_json(const tg_spec *s)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "ppcc-plan");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddStringToObject(root, "generator", "tests/runtime/plan_gen.c");
    cJSON *pl = cJSON_AddObjectToObject(root, "pipeline");
    cJSON_AddStringToObject(pl, "schedule", s->schedule);
    cJSON_AddNumberToObject(pl, "devices", s->devices);
    cJSON_AddNumberToObject(pl, "stages", s->stages);
    cJSON_AddNumberToObject(pl, "chunks", s->stages / s->devices);
    cJSON_AddNumberToObject(pl, "microbatches", s->microbatches);
    cJSON *place = cJSON_AddArrayToObject(pl, "placement");
    for (int st = 0; st < s->stages; st++)
        cJSON_AddItemToArray(place, cJSON_CreateNumber(place_of(s, st)));
    cJSON_AddBoolToObject(pl, "split_backward", s->split_backward);
    cJSON *mo = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(mo, "kind", "mlp");
    cJSON_AddNumberToObject(mo, "layers", s->layers);
    cJSON_AddNumberToObject(mo, "hidden", s->hidden);
    cJSON_AddNumberToObject(mo, "batch", s->batch);
    cJSON *lps = cJSON_AddArrayToObject(mo, "layers_per_stage");
    for (int st = 0; st < s->stages; st++)
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(s->layers / s->stages +
                                                     (st < s->layers % s->stages)));
    cJSON_AddStringToObject(mo, "optimizer", "sgd");
    cJSON_AddNumberToObject(mo, "lr", s->lr);
    cJSON_AddNumberToObject(mo, "seed", (double)s->seed);
    cJSON *mem = cJSON_AddObjectToObject(root, "memory");
    cJSON_AddNumberToObject(mem, "activation", 1);
    cJSON_AddNumberToObject(mem, "limit", 0);
    cJSON *devs = cJSON_AddArrayToObject(root, "devices");
    for (int r = 0; r < s->devices; r++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddItemToArray(devs, d);
        cJSON_AddNumberToObject(d, "rank", r);
        cJSON *st = cJSON_AddArrayToObject(d, "stages");
        for (int k = 0; k < s->stages; k++)
            if (place_of(s, k) == r)
                cJSON_AddItemToArray(st, cJSON_CreateNumber(k));
        glist l = {0};
        device_ops(s, r, &l);
        cJSON *ops = cJSON_AddArrayToObject(d, "ops");
        for (int i = 0; i < l.n; i++) {
            gop *g = &l.v[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "op", g->op);
            if (g->kind)
                cJSON_AddStringToObject(o, "kind", g->kind);
            if (g->stage >= 0) {
                cJSON_AddNumberToObject(o, "stage", g->stage);
                cJSON_AddNumberToObject(o, "mb", g->mb);
            }
            if (g->kind) {
                cJSON_AddNumberToObject(o, "peer", g->peer);
                cJSON_AddNumberToObject(o, "group", g->group);
            }
            cJSON_AddItemToArray(ops, o);
        }
        free(l.v);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}
