/*
 * gpt_dump.c — --dump DIR of a transformer (DESIGN.md, "The transformer";
 * docs/gpt.md, "--dump"): every parameter by name at initialisation
 * (init/NAME.npy, made again from the seed) and at the end
 * (final/NAME.npy, the run's), float32 C order, wte once when tied; the
 * tokens of every step (tokens.npy [steps, batch, seq + 1], int32, drawn
 * again, a sequence at a time) and the loss of every step (loss.npy).
 * The set goes through output.h's directory output like the MLP's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_layers.h"
#include "layer.h"
#include "pprun.h"

/* "blocks.3.attn.w" for block tensors, the tensor's name otherwise. */
static void tensor_name(const pr_model *m, int layer, const pr_gpt_tensor *t, char *buf, size_t size)
{
    if (pr_gpt_kind_of(m, layer) == PR_GPT_BLOCK)
        snprintf(buf, size, "blocks.%d.%s", layer - 1, t->name);
    else
        snprintf(buf, size, "%s", t->name);
}

/* Calls each(ctx, layer, tensor, name) for every parameter tensor in model order. */
static int each_tensor(const pr_model *m, int (*each)(void *, int, const pr_gpt_tensor *, const char *),
                       void *ctx)
{
    for (int l = 0; l < m->layers; l++) {
        pr_gpt_tensor t[PR_GPT_MAX_TENSORS];
        int n = pr_gpt_tensors(m, l, t);
        for (int i = 0; i < n; i++) {
            char name[64];
            tensor_name(m, l, &t[i], name, sizeof name);
            int rc = each(ctx, l, &t[i], name);
            if (rc)
                return rc;
        }
    }
    return 0;
}

typedef struct names {
    char **v;
    int n;
} names;

static int add_names(void *ctx, int layer, const pr_gpt_tensor *t, const char *name)
{
    names *ns = ctx;
    for (int k = 0; k < 2; k++) {
        char buf[96];
        int len = snprintf(buf, sizeof buf, "%s/%s.npy", k ? "final" : "init", name) + 1;
        ns->v[ns->n++] = memcpy(pp_xcalloc((size_t)len, 1, "--dump's file names"), buf, (size_t)len);
    }
    return 0;
}

static int count_tensors(void *ctx, int layer, const pr_gpt_tensor *t, const char *name)
{
    (*(int *)ctx)++;
    return 0;
}

char **pr_gpt_dump_files(const pr_model *m)
{
    int tensors = 0;
    each_tensor(m, count_tensors, &tensors);
    names ns = {pp_xcalloc((size_t)2 * tensors + 3, sizeof(char *), "--dump's file names"), 0};
    each_tensor(m, add_names, &ns);
    static const char *const rest[] = {"tokens.npy", "loss.npy", NULL};
    char **r = pr_names_copy(rest);
    ns.v[ns.n++] = r[0];
    ns.v[ns.n++] = r[1];
    free(r);
    return ns.v;
}

typedef struct dump {
    const pr_run_record *rec;
    pp_output *dir;
    float *buf; /* the largest layer block, or seq + 1 tokens, or the losses */
    const float *from;
    size_t count;
    int shape[2], ndim;
} dump;

static int fill_floats(FILE *f, void *arg)
{
    const dump *d = arg;
    if (pr_npy_header(f, "<f4", d->shape, d->ndim))
        return 1;
    return fwrite(d->from, sizeof(float), d->count, f) == d->count ? 0 : 1;
}

/* init/NAME.npy and final/NAME.npy of one tensor. */
static int write_tensor(void *ctx, int layer, const pr_gpt_tensor *t, const char *name)
{
    dump *d = ctx;
    const pr_model *m = d->rec->model;
    d->ndim = t->cols > 0 ? 2 : 1;
    d->shape[0] = t->rows;
    d->shape[1] = t->cols;
    d->count = (size_t)t->rows * (size_t)(t->cols > 0 ? t->cols : 1);
    char file[96];
    m->ops->kind(m, layer)->init(m, layer, d->buf);
    d->from = d->buf + t->off;
    snprintf(file, sizeof file, "init/%s.npy", name);
    if (pp_output_member(d->dir, file, fill_floats, d))
        return 1;
    d->from = d->rec->result->params + m->param_off[layer] + t->off;
    snprintf(file, sizeof file, "final/%s.npy", name);
    return pp_output_member(d->dir, file, fill_floats, d);
}

static int fill_tokens(FILE *f, void *arg)
{
    const dump *d = arg;
    const pr_model *m = d->rec->model;
    int shape[3] = {d->rec->steps, m->batch, m->gpt.seq + 1};
    int rc = pr_npy_header(f, "<i4", shape, 3);
    int32_t *tok = (int32_t *)d->buf;
    for (int k = 0; k < d->rec->steps && !rc; k++)
        for (int j = 0; j < m->batch && !rc; j++) {
            pr_gpt_step_tokens(m, k, j, tok);
            rc = fwrite(tok, sizeof(int32_t), (size_t)m->gpt.seq + 1, f) == (size_t)m->gpt.seq + 1 ? 0 : 1;
        }
    return rc;
}

static int fill_loss(FILE *f, void *arg)
{
    const dump *d = arg;
    int steps = d->rec->steps, rc = pr_npy_header(f, "<f4", &steps, 1);
    for (int k = 0; k < steps && !rc; k++) {
        float x = (float)d->rec->result->loss[k];
        rc = fwrite(&x, sizeof x, 1, f) == 1 ? 0 : 1;
    }
    return rc;
}

static size_t buffer_floats(const pr_model *m)
{
    size_t most = (size_t)m->gpt.seq + 1;
    for (int l = 0; l < m->layers; l++)
        if (m->param_off[l + 1] - m->param_off[l] > most)
            most = m->param_off[l + 1] - m->param_off[l];
    return most;
}

double pr_gpt_dump_bytes(const pr_model *m) { return (double)buffer_floats(m) * sizeof(float); }

int pr_gpt_dump_fill(pp_output *dir, void *record)
{
    const pr_run_record *rec = record;
    size_t n = buffer_floats(rec->model);
    dump d = {.rec = rec, .dir = dir};
    if (!(d.buf = pp_calloc(n, sizeof(float), "--dump's buffer"))) {
        char size[32];
        pp_error(pp_output_diag(dir), "--dump: out of memory: cannot allocate %s for its buffer",
                 pr_format_bytes((double)n * sizeof(float), size, sizeof size));
        return 1;
    }
    int rc = each_tensor(rec->model, write_tensor, &d);
    if (!rc)
        rc = pp_output_member(dir, "tokens.npy", fill_tokens, &d);
    if (!rc)
        rc = pp_output_member(dir, "loss.npy", fill_loss, &d);
    free(d.buf);
    return rc;
}
