/*
 * gpt_reference.c — the transformer's --check reference: single-device
 * full-batch training in straightforward loops, one sequence at a time,
 * matrix products summed in double, independent of the replay, the
 * backends and the layer code.  It shares only the formulas with them
 * (kernels/gpt_math.h's rows, mlp_math.h's GELU, optim_math.h's AdamW) and
 * the parameter table (gpt_layers.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpt_layers.h"
#include "gpt_math.h"
#include "layer.h"
#include "optim_math.h"
#include "pprun.h"

typedef struct ref {
    const pr_model *m;
    int H, F, V, T, A, hd, L;
    float **P;          /* [layers]: the block each layer computes with */
    float *G;           /* every parameter's gradient, in model order (pr_model.param_off) */
    const float *wte;   /* the token embedding the embedding and a tied head read */
    float *gwte;
} ref;

/* Tensor i of layer l, in the parameters (G NULL) or in G. */
static float *tensor(const ref *r, float *G, int l, int i)
{
    pr_gpt_tensor t[PR_GPT_MAX_TENSORS];
    pr_gpt_tensors(r->m, l, t);
    return (G ? G + r->m->param_off[l] : r->P[l]) + t[i].off;
}

/* y[n, o] (+)= x[n, i] w[i, o] */
static void matmul(float *y, const float *x, const float *w, int n, int in, int out, bool acc)
{
    for (int a = 0; a < n; a++)
        for (int o = 0; o < out; o++) {
            double s = acc ? y[(size_t)a * out + o] : 0;
            for (int k = 0; k < in; k++)
                s += (double)x[(size_t)a * in + k] * w[(size_t)k * out + o];
            y[(size_t)a * out + o] = (float)s;
        }
}

/* dx[n, i] (+)= dy[n, o] w[i, o]^T */
static void matmul_bt(float *dx, const float *dy, const float *w, int n, int in, int out, bool acc)
{
    for (int a = 0; a < n; a++)
        for (int k = 0; k < in; k++) {
            double s = acc ? dx[(size_t)a * in + k] : 0;
            for (int o = 0; o < out; o++)
                s += (double)dy[(size_t)a * out + o] * w[(size_t)k * out + o];
            dx[(size_t)a * in + k] = (float)s;
        }
}

/* dw[i, o] += x[n, i]^T dy[n, o]; db[o] += sum dy (db may be NULL) */
static void matmul_grad(float *dw, float *db, const float *x, const float *dy, int n, int in, int out)
{
    for (int k = 0; k < in; k++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int a = 0; a < n; a++)
                s += (double)x[(size_t)a * in + k] * dy[(size_t)a * out + o];
            dw[(size_t)k * out + o] += (float)s;
        }
    for (int o = 0; db && o < out; o++) {
        double s = 0;
        for (int a = 0; a < n; a++)
            s += dy[(size_t)a * out + o];
        db[o] += (float)s;
    }
}

static void add_bias(float *y, const float *b, int n, int c)
{
    for (int a = 0; a < n; a++)
        for (int j = 0; j < c; j++)
            y[(size_t)a * c + j] += b[j];
}

/* What a block keeps for its backward, for one sequence. */
typedef struct block_state {
    float *x, *a, *mean1, *rstd1, *qkv, *P, *att, *h1, *m, *mean2, *rstd2, *u, *g;
} block_state;

static float *grab(float **cursor, size_t n)
{
    float *p = *cursor;
    *cursor += n;
    return p;
}

static size_t block_state_floats(const ref *r)
{
    size_t T = r->T, H = r->H, F = r->F;
    return T * H * 6 + T * 3 * H + (size_t)r->A * T * T + 2 * T * F + 4 * T;
}

static void block_forward(const ref *r, int l, const float *x, float *y, block_state *s)
{
    int T = r->T, H = r->H, F = r->F, A = r->A, hd = r->hd;
    memcpy(s->x, x, (size_t)T * H * sizeof(float));
    for (int t = 0; t < T; t++)
        pp_layernorm_row(x + (size_t)t * H, tensor(r, NULL, l, PR_GPT_LN1W), tensor(r, NULL, l, PR_GPT_LN1B),
                         s->a + (size_t)t * H, &s->mean1[t], &s->rstd1[t], H);
    matmul(s->qkv, s->a, tensor(r, NULL, l, PR_GPT_ATTNW), T, H, 3 * H, false);
    add_bias(s->qkv, tensor(r, NULL, l, PR_GPT_ATTNB), T, 3 * H);
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < A; h++)
        for (int q = 0; q < T; q++) {
            float *row = s->P + ((size_t)h * T + q) * T;
            for (int k = 0; k < T; k++) {
                double d = 0;
                for (int c = 0; c < hd; c++)
                    d += (double)s->qkv[(size_t)q * 3 * H + h * hd + c] *
                         s->qkv[(size_t)k * 3 * H + H + h * hd + c];
                row[k] = (float)d;
            }
            pp_causal_softmax_row(row, row, q, T, scale);
            for (int c = 0; c < hd; c++) {
                double o = 0;
                for (int k = 0; k < T; k++)
                    o += (double)row[k] * s->qkv[(size_t)k * 3 * H + 2 * H + h * hd + c];
                s->att[(size_t)q * H + h * hd + c] = (float)o;
            }
        }
    matmul(s->h1, s->att, tensor(r, NULL, l, PR_GPT_PROJW), T, H, H, false);
    add_bias(s->h1, tensor(r, NULL, l, PR_GPT_PROJB), T, H);
    for (size_t i = 0; i < (size_t)T * H; i++)
        s->h1[i] += x[i];
    for (int t = 0; t < T; t++)
        pp_layernorm_row(s->h1 + (size_t)t * H, tensor(r, NULL, l, PR_GPT_LN2W), tensor(r, NULL, l, PR_GPT_LN2B),
                         s->m + (size_t)t * H, &s->mean2[t], &s->rstd2[t], H);
    matmul(s->u, s->m, tensor(r, NULL, l, PR_GPT_FCW), T, H, F, false);
    add_bias(s->u, tensor(r, NULL, l, PR_GPT_FCB), T, F);
    for (size_t i = 0; i < (size_t)T * F; i++)
        s->g[i] = pp_gelu(s->u[i]);
    matmul(y, s->g, tensor(r, NULL, l, PR_GPT_FCPROJW), T, F, H, false);
    add_bias(y, tensor(r, NULL, l, PR_GPT_FCPROJB), T, H);
    for (size_t i = 0; i < (size_t)T * H; i++)
        y[i] += s->h1[i];
}

/* LayerNorm's parameter gradients for one row. */
static void ln_param_grad(const float *dy, const float *x, float mean, float rstd, float *dw,
                          float *db, int h)
{
    for (int j = 0; j < h; j++) {
        dw[j] += dy[j] * ((x[j] - mean) * rstd);
        db[j] += dy[j];
    }
}

/* dy [T, H] in, dx out (may not alias); gradients added to G; tmp has
 * block_state_floats. */
static void block_backward(const ref *r, int l, const block_state *s, const float *dy, float *dx,
                           float *tmp)
{
    int T = r->T, H = r->H, F = r->F, A = r->A, hd = r->hd;
    float *G = r->G;
    float *dg = grab(&tmp, (size_t)T * F), *dm = grab(&tmp, (size_t)T * H);
    float *dh1 = grab(&tmp, (size_t)T * H), *datt = grab(&tmp, (size_t)T * H);
    float *dqkv = grab(&tmp, (size_t)T * 3 * H), *da = grab(&tmp, (size_t)T * H);
    float *dP = grab(&tmp, (size_t)T);
    /* the MLP */
    matmul_grad(tensor(r, G, l, PR_GPT_FCPROJW), tensor(r, G, l, PR_GPT_FCPROJB), s->g, dy, T, F, H);
    matmul_bt(dg, dy, tensor(r, NULL, l, PR_GPT_FCPROJW), T, F, H, false);
    for (size_t i = 0; i < (size_t)T * F; i++)
        dg[i] *= pp_gelu_grad(s->u[i]);
    matmul_grad(tensor(r, G, l, PR_GPT_FCW), tensor(r, G, l, PR_GPT_FCB), s->m, dg, T, H, F);
    matmul_bt(dm, dg, tensor(r, NULL, l, PR_GPT_FCW), T, H, F, false);
    for (int t = 0; t < T; t++) {
        size_t o = (size_t)t * H;
        ln_param_grad(dm + o, s->h1 + o, s->mean2[t], s->rstd2[t], tensor(r, G, l, PR_GPT_LN2W),
                      tensor(r, G, l, PR_GPT_LN2B), H);
        pp_layernorm_backward_row(dm + o, s->h1 + o, s->mean2[t], s->rstd2[t], tensor(r, NULL, l, PR_GPT_LN2W),
                                  dy + o, dh1 + o, H);
    }
    /* attention */
    matmul_grad(tensor(r, G, l, PR_GPT_PROJW), tensor(r, G, l, PR_GPT_PROJB), s->att, dh1, T, H, H);
    matmul_bt(datt, dh1, tensor(r, NULL, l, PR_GPT_PROJW), T, H, H, false);
    memset(dqkv, 0, (size_t)T * 3 * H * sizeof(float));
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < A; h++)
        for (int q = 0; q < T; q++) {
            const float *p = s->P + ((size_t)h * T + q) * T;
            for (int k = 0; k < T; k++) { /* dP = datt v^T; dv += P^T datt */
                double d = 0;
                for (int c = 0; c < hd; c++) {
                    d += (double)datt[(size_t)q * H + h * hd + c] *
                         s->qkv[(size_t)k * 3 * H + 2 * H + h * hd + c];
                    dqkv[(size_t)k * 3 * H + 2 * H + h * hd + c] +=
                        p[k] * datt[(size_t)q * H + h * hd + c];
                }
                dP[k] = (float)d;
            }
            pp_causal_softmax_backward_row(p, dP, dP, q, T, scale);
            for (int k = 0; k <= q; k++) /* dq += dS k; dk += dS^T q */
                for (int c = 0; c < hd; c++) {
                    dqkv[(size_t)q * 3 * H + h * hd + c] +=
                        dP[k] * s->qkv[(size_t)k * 3 * H + H + h * hd + c];
                    dqkv[(size_t)k * 3 * H + H + h * hd + c] +=
                        dP[k] * s->qkv[(size_t)q * 3 * H + h * hd + c];
                }
        }
    matmul_grad(tensor(r, G, l, PR_GPT_ATTNW), tensor(r, G, l, PR_GPT_ATTNB), s->a, dqkv, T, H, 3 * H);
    memset(tensor(r, G, l, PR_GPT_ATTNB) + H, 0, (size_t)H * sizeof(float)); /* the key bias: docs/gpt.md */
    matmul_bt(da, dqkv, tensor(r, NULL, l, PR_GPT_ATTNW), T, H, 3 * H, false);
    for (int t = 0; t < T; t++) {
        size_t o = (size_t)t * H;
        ln_param_grad(da + o, s->x + o, s->mean1[t], s->rstd1[t], tensor(r, G, l, PR_GPT_LN1W),
                      tensor(r, G, l, PR_GPT_LN1B), H);
        pp_layernorm_backward_row(da + o, s->x + o, s->mean1[t], s->rstd1[t], tensor(r, NULL, l, PR_GPT_LN1W),
                                  dh1 + o, dx + o, H);
    }
}

/* One sequence: forward, loss, backward; returns the sum of its tokens'
 * cross-entropies, adds its gradient (of the mean over `count` tokens) to G. */
static double sequence(const ref *r, const int32_t *tok, float *work, size_t state_floats,
                       double count)
{
    const pr_model *m = r->m;
    int T = r->T, H = r->H, V = r->V, B = m->gpt.blocks, head = m->layers - 1;
    float *cur = work;
    float *h = grab(&cur, (size_t)T * H), *y = grab(&cur, (size_t)T * H);
    float *yln = grab(&cur, (size_t)T * H), *meanf = grab(&cur, (size_t)T);
    float *rstdf = grab(&cur, (size_t)T), *logits = grab(&cur, (size_t)T * V);
    float *dh = grab(&cur, (size_t)T * H), *dx = grab(&cur, (size_t)T * H);
    float *tmp = grab(&cur, state_floats);
    block_state *st = calloc((size_t)B, sizeof *st);
    for (int b = 0; b < B; b++) {
        float *c = grab(&cur, state_floats);
        st[b] = (block_state){grab(&c, (size_t)T * H), grab(&c, (size_t)T * H), grab(&c, (size_t)T),
                              grab(&c, (size_t)T), grab(&c, (size_t)T * 3 * H),
                              grab(&c, (size_t)r->A * T * T), grab(&c, (size_t)T * H),
                              grab(&c, (size_t)T * H), grab(&c, (size_t)T * H), grab(&c, (size_t)T),
                              grab(&c, (size_t)T), grab(&c, (size_t)T * r->F),
                              grab(&c, (size_t)T * r->F)};
    }
    const float *wpe = tensor(r, NULL, 0, PR_GPT_WPE);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < H; j++)
            h[(size_t)t * H + j] = r->wte[(size_t)tok[t] * H + j] + wpe[(size_t)t * H + j];
    for (int b = 0; b < B; b++) {
        block_forward(r, b + 1, h, y, &st[b]);
        memcpy(h, y, (size_t)T * H * sizeof(float));
    }
    for (int t = 0; t < T; t++)
        pp_layernorm_row(h + (size_t)t * H, tensor(r, NULL, head, PR_GPT_LNFW), tensor(r, NULL, head, PR_GPT_LNFB),
                         yln + (size_t)t * H, &meanf[t], &rstdf[t], H);
    const float *headw = m->gpt.tie ? NULL : tensor(r, NULL, head, PR_GPT_HEADW);
    for (int t = 0; t < T; t++)
        for (int v = 0; v < V; v++) {
            double s = 0;
            for (int j = 0; j < H; j++)
                s += (double)yln[(size_t)t * H + j] *
                     (headw ? headw[(size_t)j * V + v] : r->wte[(size_t)v * H + j]);
            logits[(size_t)t * V + v] = (float)s;
        }
    double loss = 0;
    for (int t = 0; t < T; t++) /* logits become their gradient */
        loss += pp_cross_entropy_row(logits + (size_t)t * V, tok[t + 1], V, (float)(1.0 / count),
                                     logits + (size_t)t * V);
    /* the head */
    float *gheadw = m->gpt.tie ? NULL : tensor(r, r->G, head, PR_GPT_HEADW);
    for (int j = 0; j < H; j++)
        for (int v = 0; v < V; v++) {
            double s = 0;
            for (int t = 0; t < T; t++)
                s += (double)yln[(size_t)t * H + j] * logits[(size_t)t * V + v];
            if (gheadw)
                gheadw[(size_t)j * V + v] += (float)s;
            else
                r->gwte[(size_t)v * H + j] += (float)s;
        }
    for (int t = 0; t < T; t++)
        for (int j = 0; j < H; j++) {
            double s = 0;
            for (int v = 0; v < V; v++)
                s += (double)logits[(size_t)t * V + v] *
                     (headw ? headw[(size_t)j * V + v] : r->wte[(size_t)v * H + j]);
            y[(size_t)t * H + j] = (float)s; /* d yln */
        }
    for (int t = 0; t < T; t++) {
        size_t o = (size_t)t * H;
        ln_param_grad(y + o, h + o, meanf[t], rstdf[t], tensor(r, r->G, head, PR_GPT_LNFW),
                      tensor(r, r->G, head, PR_GPT_LNFB), H);
        pp_layernorm_backward_row(y + o, h + o, meanf[t], rstdf[t], tensor(r, NULL, head, PR_GPT_LNFW), NULL,
                                  dh + o, H);
    }
    for (int b = B - 1; b >= 0; b--) {
        block_backward(r, b + 1, &st[b], dh, dx, tmp);
        memcpy(dh, dx, (size_t)T * H * sizeof(float));
    }
    float *gwpe = tensor(r, r->G, 0, PR_GPT_WPE);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < H; j++) {
            r->gwte[(size_t)tok[t] * H + j] += dh[(size_t)t * H + j];
            gwpe[(size_t)t * H + j] += dh[(size_t)t * H + j];
        }
    free(st);
    return loss;
}

double pr_gpt_reference_bytes(const pp_plan *p, const pr_model *m)
{
    double T = m->gpt.seq, H = m->hidden, F = m->gpt.ffn, A = m->gpt.heads, V = m->gpt.vocab;
    double state = T * H * 6 + T * 3 * H + A * T * T + 2 * T * F + 4 * T;
    double work = T * H * 5 + 2 * T + T * V + state * (m->gpt.blocks + 1);
    double params = (double)m->param_off[m->layers];
    double versions = p->async == PP_ASYNC_PIPEDREAM ? (2.0 * p->microbatches + 1) * params
                      : p->async == PP_ASYNC_2BW     ? params
                                                     : 0;
    return (work + params * 4 + versions + (T + 1) * sizeof(int32_t)) * sizeof(float);
}

void pr_gpt_init_params(const pr_model *m, float *P)
{
    for (int l = 0; l < m->layers; l++)
        m->ops->kind(m, l)->init(m, l, P + m->param_off[l]);
}

void pr_gpt_step_tokens(const pr_model *m, int step, int row, int32_t *tok)
{
    for (int i = 0; i <= m->gpt.seq; i++)
        tok[i] = pp_gpt_token(m->gpt.bytes, m->gpt.bytes ? m->gpt.data_bytes : 0, m->seed, step, row,
                              m->gpt.seq, m->gpt.vocab, i);
}

/* The optimizer step of layer l's block from its gradient G (model
 * order), the update's count t (from 1); moments M, Vs in model order. */
static void update_layer(const pr_model *m, int l, float *Pl, const float *G, float *M, float *Vs,
                         double t)
{
    pr_gpt_tensor tn[PR_GPT_MAX_TENSORS];
    int nt = pr_gpt_tensors(m, l, tn);
    for (int i = 0; i < nt; i++) {
        size_t o = tn[i].off, go = m->param_off[l] + o;
        size_t len = (size_t)tn[i].rows * (size_t)(tn[i].cols > 0 ? tn[i].cols : 1);
        if (m->gpt.optimizer == PR_SGD) {
            for (size_t q = 0; q < len; q++)
                Pl[o + q] = pp_sgd(Pl[o + q], G[go + q], (float)m->lr);
            continue;
        }
        pp_adamw_step a = {(float)m->lr, (float)m->gpt.beta1, (float)m->gpt.beta2, (float)m->gpt.eps,
                           tn[i].decay ? (float)m->gpt.weight_decay : 0.0f,
                           (float)(1.0 - pow(m->gpt.beta1, t)), (float)(1.0 - pow(m->gpt.beta2, t))};
        for (size_t q = 0; q < len; q++)
            pp_adamw(&Pl[o + q], G[go + q], &M[go + q], &Vs[go + q], &a);
    }
}

typedef struct trainer {
    ref r;
    size_t n, state;
    float *M, *Vs, *work;
    int32_t *tok;
} trainer;

/* The gradient (into r.G, zeroed first) and the loss sum of rows
 * [row0, row0 + rows) of step k, each layer at r.P[l]. */
static double batch_gradient(trainer *tr, int k, int row0, int rows)
{
    const pr_model *m = tr->r.m;
    memset(tr->r.G, 0, tr->n * sizeof(float));
    tr->r.wte = tr->r.P[0];
    tr->r.gwte = tr->r.G; /* wte starts layer 0's block */
    double sum = 0, count = (double)m->batch * m->gpt.seq;
    for (int j = row0; j < row0 + rows; j++) {
        pr_gpt_step_tokens(m, k, j, tr->tok);
        sum += sequence(&tr->r, tr->tok, tr->work, tr->state, count);
    }
    return sum;
}

static void trainer_open(trainer *tr, const pr_model *m)
{
    memset(tr, 0, sizeof *tr);
    tr->n = m->param_off[m->layers];
    tr->r = (ref){.m = m, .H = m->hidden, .F = m->gpt.ffn, .V = m->gpt.vocab, .T = m->gpt.seq,
                  .A = m->gpt.heads, .hd = m->hidden / m->gpt.heads, .L = m->layers};
    tr->r.P = pp_xcalloc((size_t)m->layers, sizeof(float *), "the reference's layer table");
    tr->r.G = pp_xcalloc(tr->n, sizeof(float), "the reference's gradients");
    tr->M = pp_xcalloc(tr->n, sizeof(float), "the reference's first moments");
    tr->Vs = pp_xcalloc(tr->n, sizeof(float), "the reference's second moments");
    tr->state = block_state_floats(&tr->r);
    tr->work = pp_xcalloc((size_t)tr->r.T * tr->r.H * 5 + 2 * (size_t)tr->r.T +
                              (size_t)tr->r.T * tr->r.V + tr->state * ((size_t)m->gpt.blocks + 1),
                          sizeof(float), "the reference's activations");
    tr->tok = pp_xcalloc((size_t)tr->r.T + 1, sizeof(int32_t), "the reference's tokens");
}

static void trainer_close(trainer *tr)
{
    free(tr->r.P);
    free(tr->r.G);
    free(tr->M);
    free(tr->Vs);
    free(tr->work);
    free(tr->tok);
}

static void point_at(trainer *tr, float *P)
{
    for (int l = 0; l < tr->r.m->layers; l++)
        tr->r.P[l] = P + tr->r.m->param_off[l];
}

void pr_gpt_reference_train(const pr_model *m, int steps, int delay, float *P, double *loss)
{
    trainer tr;
    trainer_open(&tr, m);
    float *old = delay ? pp_xcalloc(tr.n, sizeof(float), "the reference's previous weights") : NULL;
    if (old)
        memcpy(old, P, tr.n * sizeof(float));
    for (int k = 0; k < steps; k++) {
        /* the gradient at the weights of `delay` steps before (2bw: 1) */
        point_at(&tr, old ? old : P);
        loss[k] = batch_gradient(&tr, k, 0, m->batch) / ((double)m->batch * m->gpt.seq);
        if (old)
            memcpy(old, P, tr.n * sizeof(float));
        for (int l = 0; l < m->layers; l++)
            update_layer(m, l, P + m->param_off[l], tr.r.G, tr.M, tr.Vs, k + 1);
    }
    free(old);
    trainer_close(&tr);
}

/* docs/async.md, "pipedream": version j of the whole parameter vector in
 * ver[j] (each stage's layers at their stage's j-th version of the step);
 * micro-batch mb's gradient with every layer at its stage's v(s, mb); the
 * k-th update of stage s from the gradient of u_s(k) alone, AdamW's count
 * t = the stage's updates so far + 1. */
int pr_gpt_reference_pipedream(const pp_plan *p, const pr_model *m, int steps, float *P,
                               double *loss, pp_diag *d)
{
    int S = p->stages, M = p->microbatches, rows = m->batch / M;
    int *fver = pp_xcalloc((size_t)S * M, sizeof(int), "the reference's order");
    int *border = pp_xcalloc((size_t)S * M, sizeof(int), "the reference's order");
    int *stage = pp_xcalloc((size_t)m->layers, sizeof(int), "the reference's layer table");
    for (int s = 0; s < S; s++)
        for (int q = 0; q < m->layers_per_stage[s]; q++)
            stage[m->first_layer[s] + q] = s;
    int rc = 0;
    for (int s = 0; s < S && !rc; s++)
        if (pr_async_stage_order(p, s, fver + (size_t)s * M, border + (size_t)s * M)) {
            pp_error(d, "check: stage %d does not run each F and B once", s);
            rc = 1;
        }
    for (int s = 1; s < S && p->vertical_sync; s++) /* every stage at stage 0's number */
        memcpy(fver + (size_t)s * M, fver, (size_t)M * sizeof(int));
    trainer tr;
    trainer_open(&tr, m);
    float *ver = pp_xcalloc((size_t)(M + 1) * tr.n, sizeof(float), "the reference's weight versions");
    float **G = pp_xcalloc((size_t)M, sizeof(float *), "the reference's gradients");
    for (int mb = 0; mb < M; mb++)
        G[mb] = pp_xcalloc(tr.n, sizeof(float), "the reference's gradients");
    memcpy(ver, P, tr.n * sizeof(float));
    float *own_G = tr.r.G;
    for (int k = 0; k < steps && !rc; k++) {
        int *next = pp_xcalloc((size_t)S, sizeof(int), "the reference's progress");
        bool *done = pp_xcalloc((size_t)M, sizeof(bool), "the reference's progress");
        double sum = 0;
        /* as soon as the versions a gradient needs exist, and the gradient an update needs */
        for (bool moved = true; moved;) {
            moved = false;
            for (int mb = 0; mb < M; mb++) {
                bool ready = !done[mb];
                for (int l = 0; l < m->layers && ready; l++)
                    ready = fver[(size_t)stage[l] * M + mb] <= next[stage[l]];
                if (!ready)
                    continue;
                for (int l = 0; l < m->layers; l++)
                    tr.r.P[l] = ver + (size_t)fver[(size_t)stage[l] * M + mb] * tr.n + m->param_off[l];
                tr.r.G = G[mb];
                sum += batch_gradient(&tr, k, mb * rows, rows);
                done[mb] = moved = true;
            }
            for (int s = 0; s < S; s++)
                while (next[s] < M && done[border[(size_t)s * M + next[s]]]) {
                    int j = next[s], mb = border[(size_t)s * M + j];
                    for (int l = m->first_layer[s]; l < m->first_layer[s] + m->layers_per_stage[s]; l++) {
                        size_t o = m->param_off[l], len = m->param_off[l + 1] - o;
                        float *to = ver + (size_t)(j + 1) * tr.n + o;
                        memcpy(to, ver + (size_t)j * tr.n + o, len * sizeof(float));
                        update_layer(m, l, to, G[mb], tr.M, tr.Vs, (double)k * M + j + 1);
                    }
                    next[s]++;
                    moved = true;
                }
        }
        for (int s = 0; s < S; s++)
            if (next[s] < M && !rc) {
                pp_error(d, "check: stage %d's updates wait on versions that never come", s);
                rc = 1;
            }
        loss[k] = sum / ((double)m->batch * m->gpt.seq);
        memcpy(ver, ver + (size_t)M * tr.n, tr.n * sizeof(float)); /* the step's last versions */
        free(next);
        free(done);
    }
    memcpy(P, ver, tr.n * sizeof(float));
    tr.r.G = own_G;
    for (int mb = 0; mb < M; mb++)
        free(G[mb]);
    free(G);
    free(ver);
    free(fver);
    free(border);
    free(stage);
    trainer_close(&tr);
    return rc;
}
