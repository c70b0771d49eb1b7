/*
 * gpt_layers.c — the transformer on the model seam (layer.h): three layer
 * kinds, the embedding (wte, wpe), a pre-LayerNorm block and the head (the
 * final LayerNorm and the LM head, wte's transpose when tied), the
 * stage-0 input (a micro-batch's tokens), the cross-entropy loss, SGD and
 * AdamW.  The math is DESIGN.md's "The transformer"; what this file adds
 * (the parameters' layout, initialisation, what each layer keeps) is in
 * docs/gpt.md.  GEMMs are the backend's (attention through strided batched
 * GEMMs, one call per head over the micro-batch's sequences); row and
 * element-wise work is kernels/gpt_kernels.h's on the backend's device.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "gpt_kernels.h"
#include "gpt_layers.h"
#include "layer.h"
#include "mlp_math.h"
#include "pprun.h"

#define K(e) ((const pr_gpt_kernels *)(e)->kernels)

/* Offset of tensor i of the layer's block. */
static size_t at(const pr_model *m, int layer, int i)
{
    pr_gpt_tensor t[PR_GPT_MAX_TENSORS];
    pr_gpt_tensors(m, layer, t);
    return t[i].off;
}

/* The offsets of a block's tensors (every block has the same layout). */
typedef struct block_layout {
    size_t o[PR_GPT_BLOCK_N];
} block_layout;

static block_layout block_offsets(const pr_model *m)
{
    pr_gpt_tensor t[PR_GPT_MAX_TENSORS];
    pr_gpt_tensors(m, 1, t); /* layer 1 is a block: a model has one at least */
    block_layout b;
    for (int i = 0; i < PR_GPT_BLOCK_N; i++)
        b.o[i] = t[i].off;
    return b;
}

static size_t layer_params(const pr_model *m, int layer)
{
    pr_gpt_tensor t[PR_GPT_MAX_TENSORS];
    int n = pr_gpt_tensors(m, layer, t);
    return t[n - 1].off + (size_t)t[n - 1].rows * (size_t)(t[n - 1].cols > 0 ? t[n - 1].cols : 1);
}

/* Stream of tensor i of layer l (docs/gpt.md, "Initialisation"). */
#define PP_STREAM_GPT_PARAM(l, i) (((uint64_t)5 << 32) + 16 * (uint64_t)(l) + (uint64_t)(i))

/* Matrices and embeddings: uniform on [-sqrt(3) sd, sqrt(3) sd] (standard
 * deviation sd); LayerNorm weights 1 (sd < 0), biases 0 (sd 0). */
static void layer_init(const pr_model *m, int layer, float *P)
{
    pr_gpt_tensor t[PR_GPT_MAX_TENSORS];
    int n = pr_gpt_tensors(m, layer, t);
    for (int i = 0; i < n; i++) {
        size_t count = (size_t)t[i].rows * (size_t)(t[i].cols > 0 ? t[i].cols : 1);
        float *p = P + t[i].off;
        float a = (float)(sqrt(3.0) * t[i].sd);
        for (size_t k = 0; k < count; k++)
            p[k] = t[i].sd < 0 ? 1.0f
                   : t[i].sd == 0 ? 0.0f
                                  : a * pp_uniform_pm1(m->seed, PP_STREAM_GPT_PARAM(layer, i), k);
    }
}

/* ---- sizes: n tokens of a micro-batch, nq attention scores ---- */

static size_t ntok(const pr_model *m, int rows) { return (size_t)rows * (size_t)m->gpt.seq; }
static size_t nscores(const pr_model *m, int rows)
{
    return (size_t)rows * (size_t)m->gpt.heads * (size_t)m->gpt.seq * (size_t)m->gpt.seq;
}
static size_t nh(const pr_model *m, int rows) { return ntok(m, rows) * (size_t)m->hidden; }
static size_t nf(const pr_model *m, int rows) { return ntok(m, rows) * (size_t)m->gpt.ffn; }
static size_t nv(const pr_model *m, int rows) { return ntok(m, rows) * (size_t)m->gpt.vocab; }
static size_t none(const pr_model *m, int rows) { return 0; }

/* The block keeps, by when it is released (layer.h):
 *   act_b  qkv [n, 3H] | P [rows, heads, T, T] | u [n, F]
 *   act_w  a = LN1(x) [n, H] | mean1, rstd1 [n] | att [n, H] | h1 [n, H] |
 *          mean2, rstd2 [n] | m = LN2(h1) [n, H] | g = gelu(u) [n, F]
 *   grad_w dqkv [n, 3H] | dh1 [n, H] | du [n, F] | dy [n, H] | da [n, H] | dm [n, H]
 *   work   datt [n, H] | dP [rows, heads, T, T] */
typedef struct block_acts {
    float *qkv, *P, *u;
    float *a, *mean1, *rstd1, *att, *h1, *mean2, *rstd2, *m, *g;
    float *dqkv, *dh1, *du, *dy, *da, *dm;
    float *datt, *dP;
} block_acts;

static size_t block_act_b(const pr_model *m, int rows)
{
    return 3 * nh(m, rows) + nscores(m, rows) + nf(m, rows);
}
static size_t block_act_w(const pr_model *m, int rows)
{
    return 4 * nh(m, rows) + 4 * ntok(m, rows) + nf(m, rows);
}
static size_t block_grad_w(const pr_model *m, int rows) { return 7 * nh(m, rows) + nf(m, rows); }
static size_t block_work(const pr_model *m, int rows) { return nh(m, rows) + nscores(m, rows); }

static block_acts block_view(const pr_layer_env *e, const float *ab, const float *aw,
                             const float *gw)
{
    const pr_model *m = e->m;
    size_t n = ntok(m, e->rows), H = nh(m, e->rows), F = nf(m, e->rows);
    block_acts v = {0};
    float *p = (float *)ab;
    if (p) {
        v.qkv = p, p += 3 * H;
        v.P = p, p += nscores(m, e->rows);
        v.u = p;
    }
    if ((p = (float *)aw)) {
        v.a = p, p += H;
        v.mean1 = p, p += n;
        v.rstd1 = p, p += n;
        v.att = p, p += H;
        v.h1 = p, p += H;
        v.mean2 = p, p += n;
        v.rstd2 = p, p += n;
        v.m = p, p += H;
        v.g = p;
    }
    if ((p = (float *)gw)) {
        v.dqkv = p, p += 3 * H;
        v.dh1 = p, p += H;
        v.du = p, p += F;
        v.dy = p, p += H;
        v.da = p, p += H;
        v.dm = p;
    }
    v.datt = e->work;
    v.dP = e->work ? e->work + H : NULL;
    return v;
}

/* y = x + attn(LN1(x)); y += mlp(LN2(y)) (DESIGN.md). */
static void block_forward(const pr_layer_env *e, const float *P, const float *x, float *ab,
                          float *aw, float *y)
{
    const pr_model *m = e->m;
    block_layout b = block_offsets(m);
    int n = (int)ntok(m, e->rows), H = m->hidden, F = m->gpt.ffn, T = m->gpt.seq,
        A = m->gpt.heads, hd = H / A, rows = e->rows;
    block_acts v = block_view(e, ab, aw, NULL);
    const float *ln1w = P + b.o[PR_GPT_LN1W], *ln1b = P + b.o[PR_GPT_LN1B];
    const float *attnw = P + b.o[PR_GPT_ATTNW], *attnb = P + b.o[PR_GPT_ATTNB];
    const float *projw = P + b.o[PR_GPT_PROJW], *projb = P + b.o[PR_GPT_PROJB];
    const float *ln2w = P + b.o[PR_GPT_LN2W], *ln2b = P + b.o[PR_GPT_LN2B];
    const float *fcw = P + b.o[PR_GPT_FCW], *fcb = P + b.o[PR_GPT_FCB];
    const float *fcprojw = P + b.o[PR_GPT_FCPROJW], *fcprojb = P + b.o[PR_GPT_FCPROJB];
    size_t s3 = (size_t)T * 3 * H, sp = (size_t)A * T * T, sh = (size_t)T * H;
    float scale = 1.0f / sqrtf((float)hd);

    K(e)->layernorm(e->c, x, ln1w, ln1b, v.a, v.mean1, v.rstd1, n, H);
    e->be->gemm(e->c, PR_N, PR_N, n, 3 * H, H, v.a, H, attnw, 3 * H, 0.0f, v.qkv, 3 * H);
    K(e)->bias_residual(e->c, v.qkv, attnb, NULL, n, 3 * H);
    for (int h = 0; h < A; h++) /* S = q k^T, each sequence */
        e->be->gemm_batched(e->c, PR_N, PR_T, T, T, hd, v.qkv + h * hd, 3 * H, s3,
                            v.qkv + H + h * hd, 3 * H, s3, 0.0f, v.P + (size_t)h * T * T, T, sp, rows);
    K(e)->causal_softmax(e->c, v.P, rows * A, T, scale);
    for (int h = 0; h < A; h++) /* att = P v, heads side by side */
        e->be->gemm_batched(e->c, PR_N, PR_N, T, hd, T, v.P + (size_t)h * T * T, T, sp,
                            v.qkv + 2 * H + h * hd, 3 * H, s3, 0.0f, v.att + h * hd, H, sh, rows);
    e->be->gemm(e->c, PR_N, PR_N, n, H, H, v.att, H, projw, H, 0.0f, v.h1, H);
    K(e)->bias_residual(e->c, v.h1, projb, x, n, H);
    K(e)->layernorm(e->c, v.h1, ln2w, ln2b, v.m, v.mean2, v.rstd2, n, H);
    e->be->gemm(e->c, PR_N, PR_N, n, F, H, v.m, H, fcw, F, 0.0f, v.u, F);
    K(e)->bias_gelu(e->c, v.u, fcb, v.g, n, F);
    e->be->gemm(e->c, PR_N, PR_N, n, H, F, v.g, F, fcprojw, H, 0.0f, y, H);
    K(e)->bias_residual(e->c, y, fcprojb, v.h1, n, H);
}

static void block_backward_input(const pr_layer_env *e, const float *P, const float *x,
                                 const float *ab, const float *aw, const float *dy, float *gw,
                                 float *dx)
{
    const pr_model *m = e->m;
    block_layout b = block_offsets(m);
    int n = (int)ntok(m, e->rows), H = m->hidden, F = m->gpt.ffn, T = m->gpt.seq,
        A = m->gpt.heads, hd = H / A, rows = e->rows;
    block_acts v = block_view(e, ab, aw, gw);
    const float *ln1w = P + b.o[PR_GPT_LN1W], *attnw = P + b.o[PR_GPT_ATTNW];
    const float *projw = P + b.o[PR_GPT_PROJW], *ln2w = P + b.o[PR_GPT_LN2W];
    const float *fcw = P + b.o[PR_GPT_FCW], *fcprojw = P + b.o[PR_GPT_FCPROJW];
    size_t s3 = (size_t)T * 3 * H, sp = (size_t)A * T * T, sh = (size_t)T * H;
    float scale = 1.0f / sqrtf((float)hd);

    e->be->copy(e->c, v.dy, dy, (size_t)n * H);
    e->be->gemm(e->c, PR_N, PR_T, n, F, H, dy, H, fcprojw, H, 0.0f, v.du, F); /* dg */
    K(e)->gelu_backward(e->c, v.du, v.u, v.du, (size_t)n * F);
    e->be->gemm(e->c, PR_N, PR_T, n, H, F, v.du, F, fcw, F, 0.0f, v.dm, H);
    K(e)->layernorm_backward(e->c, v.dm, v.h1, v.mean2, v.rstd2, ln2w, dy, v.dh1, n, H);
    e->be->gemm(e->c, PR_N, PR_T, n, H, H, v.dh1, H, projw, H, 0.0f, v.datt, H);
    for (int h = 0; h < A; h++) {
        /* dP = datt v^T; dv = P^T datt */
        e->be->gemm_batched(e->c, PR_N, PR_T, T, T, hd, v.datt + h * hd, H, sh,
                            v.qkv + 2 * H + h * hd, 3 * H, s3, 0.0f, v.dP + (size_t)h * T * T, T, sp,
                            rows);
        e->be->gemm_batched(e->c, PR_T, PR_N, T, hd, T, v.P + (size_t)h * T * T, T, sp,
                            v.datt + h * hd, H, sh, 0.0f, v.dqkv + 2 * H + h * hd, 3 * H, s3, rows);
    }
    K(e)->causal_softmax_backward(e->c, v.P, v.dP, rows * A, T, scale); /* dP -> dS */
    for (int h = 0; h < A; h++) {
        /* dq = dS k; dk = dS^T q */
        e->be->gemm_batched(e->c, PR_N, PR_N, T, hd, T, v.dP + (size_t)h * T * T, T, sp,
                            v.qkv + H + h * hd, 3 * H, s3, 0.0f, v.dqkv + h * hd, 3 * H, s3, rows);
        e->be->gemm_batched(e->c, PR_T, PR_N, T, hd, T, v.dP + (size_t)h * T * T, T, sp,
                            v.qkv + h * hd, 3 * H, s3, 0.0f, v.dqkv + H + h * hd, 3 * H, s3, rows);
    }
    e->be->gemm(e->c, PR_N, PR_T, n, H, 3 * H, v.dqkv, 3 * H, attnw, 3 * H, 0.0f, v.da, H);
    if (dx)
        K(e)->layernorm_backward(e->c, v.da, x, v.mean1, v.rstd1, ln1w, v.dh1, dx, n, H);
}

static void block_backward_weight(const pr_layer_env *e, const float *x, const float *aw,
                                  const float *gw, float *G)
{
    const pr_model *m = e->m;
    block_layout b = block_offsets(m);
    int n = (int)ntok(m, e->rows), H = m->hidden, F = m->gpt.ffn;
    block_acts v = block_view(e, NULL, aw, gw);
    K(e)->layernorm_backward_weight(e->c, v.da, x, v.mean1, v.rstd1, G + b.o[PR_GPT_LN1W],
                                    G + b.o[PR_GPT_LN1B], n, H);
    e->be->gemm(e->c, PR_T, PR_N, H, 3 * H, n, v.a, H, v.dqkv, 3 * H, 1.0f,
                G + b.o[PR_GPT_ATTNW], 3 * H);
    e->be->colsum(e->c, v.dqkv, n, 3 * H, G + b.o[PR_GPT_ATTNB]);
    e->be->zero(e->c, G + b.o[PR_GPT_ATTNB] + H, (size_t)H); /* the key bias: docs/gpt.md */
    e->be->gemm(e->c, PR_T, PR_N, H, H, n, v.att, H, v.dh1, H, 1.0f, G + b.o[PR_GPT_PROJW], H);
    e->be->colsum(e->c, v.dh1, n, H, G + b.o[PR_GPT_PROJB]);
    K(e)->layernorm_backward_weight(e->c, v.dm, v.h1, v.mean2, v.rstd2, G + b.o[PR_GPT_LN2W],
                                    G + b.o[PR_GPT_LN2B], n, H);
    e->be->gemm(e->c, PR_T, PR_N, H, F, n, v.m, H, v.du, F, 1.0f, G + b.o[PR_GPT_FCW], F);
    e->be->colsum(e->c, v.du, n, F, G + b.o[PR_GPT_FCB]);
    e->be->gemm(e->c, PR_T, PR_N, F, H, n, v.g, F, v.dy, H, 1.0f, G + b.o[PR_GPT_FCPROJW], H);
    e->be->colsum(e->c, v.dy, n, H, G + b.o[PR_GPT_FCPROJB]);
}

/* ---- the embedding: its input is the micro-batch's tokens (int32, in
 * the first n words of the stage-input buffer); it keeps the output's
 * gradient from B for W ---- */

static void embed_forward(const pr_layer_env *e, const float *P, const float *x, float *ab,
                          float *aw, float *y)
{
    const pr_model *m = e->m;
    K(e)->embed(e->c, (const int32_t *)x, P, P + at(m, 0, PR_GPT_WPE), y, (int)ntok(m, e->rows),
                m->gpt.seq, m->hidden);
}

static void embed_backward_input(const pr_layer_env *e, const float *P, const float *x,
                                 const float *ab, const float *aw, const float *dy, float *gw,
                                 float *dx)
{
    e->be->copy(e->c, gw, dy, nh(e->m, e->rows));
}

static void embed_backward_weight(const pr_layer_env *e, const float *x, const float *aw,
                                  const float *gw, float *G)
{
    const pr_model *m = e->m;
    K(e)->embed_backward(e->c, (const int32_t *)x, gw, G, G + at(m, 0, PR_GPT_WPE), (int)ntok(m, e->rows),
                         m->gpt.seq, m->hidden);
}

/* ---- the head: LNf, then logits [n, V] (the loss's input); act_w holds
 * LNf's output and statistics, grad_w the logits' gradient and LNf's
 * output gradient ---- */

static size_t head_act_w(const pr_model *m, int rows) { return nh(m, rows) + 2 * ntok(m, rows); }
static size_t head_grad_w(const pr_model *m, int rows) { return nv(m, rows) + nh(m, rows); }

/* The LM head's matrix: wte [V, H] (used transposed) when tied, else head.w [H, V]. */
static const float *head_matrix(const pr_layer_env *e, const float *P)
{
    return e->m->gpt.tie ? e->tied_P : P + at(e->m, e->m->layers - 1, PR_GPT_HEADW);
}

static void head_forward(const pr_layer_env *e, const float *P, const float *x, float *ab,
                         float *aw, float *y)
{
    const pr_model *m = e->m;
    int n = (int)ntok(m, e->rows), H = m->hidden, V = m->gpt.vocab, L = m->layers - 1;
    float *yln = aw, *mean = aw + (size_t)n * H, *rstd = mean + n;
    K(e)->layernorm(e->c, x, P + at(m, L, PR_GPT_LNFW), P + at(m, L, PR_GPT_LNFB), yln, mean, rstd, n, H);
    e->be->gemm(e->c, PR_N, m->gpt.tie ? PR_T : PR_N, n, V, H, yln, H, head_matrix(e, P),
                m->gpt.tie ? H : V, 0.0f, y, V);
}

static void head_backward_input(const pr_layer_env *e, const float *P, const float *x,
                                const float *ab, const float *aw, const float *dy, float *gw,
                                float *dx)
{
    const pr_model *m = e->m;
    int n = (int)ntok(m, e->rows), H = m->hidden, V = m->gpt.vocab, L = m->layers - 1;
    const float *mean = aw + (size_t)n * H, *rstd = mean + n;
    float *dl = gw, *dyln = gw + (size_t)n * V;
    e->be->copy(e->c, dl, dy, (size_t)n * V);
    e->be->gemm(e->c, PR_N, m->gpt.tie ? PR_N : PR_T, n, H, V, dy, V, head_matrix(e, P),
                m->gpt.tie ? H : V, 0.0f, dyln, H);
    if (dx)
        K(e)->layernorm_backward(e->c, dyln, x, mean, rstd, P + at(m, L, PR_GPT_LNFW), NULL, dx, n, H);
}

static void head_backward_weight(const pr_layer_env *e, const float *x, const float *aw,
                                 const float *gw, float *G)
{
    const pr_model *m = e->m;
    int n = (int)ntok(m, e->rows), H = m->hidden, V = m->gpt.vocab, L = m->layers - 1;
    const float *yln = aw, *mean = aw + (size_t)n * H, *rstd = mean + n;
    const float *dl = gw, *dyln = gw + (size_t)n * V;
    K(e)->layernorm_backward_weight(e->c, dyln, x, mean, rstd, G + at(m, L, PR_GPT_LNFW),
                                    G + at(m, L, PR_GPT_LNFB), n, H);
    if (m->gpt.tie) /* d wte += dl^T yln */
        e->be->gemm(e->c, PR_T, PR_N, V, H, n, dl, V, yln, H, 1.0f, e->tied_G, H);
    else /* d head.w += yln^T dl */
        e->be->gemm(e->c, PR_T, PR_N, H, V, n, yln, H, dl, V, 1.0f, G + at(m, L, PR_GPT_HEADW), V);
}

static const pr_layer_kind embedding_kind = {
    .name = "embedding",
    .params = layer_params,
    .init = layer_init,
    .act_b = none,
    .act_w = none,
    .grad_w = nh,
    .forward = embed_forward,
    .backward_input = embed_backward_input,
    .backward_weight = embed_backward_weight,
};

static const pr_layer_kind block_kind = {
    .name = "block",
    .params = layer_params,
    .init = layer_init,
    .act_b = block_act_b,
    .act_w = block_act_w,
    .grad_w = block_grad_w,
    .forward = block_forward,
    .backward_input = block_backward_input,
    .backward_weight = block_backward_weight,
    .work = block_work,
};

static const pr_layer_kind head_kind = {
    .name = "head",
    .params = layer_params,
    .init = layer_init,
    .out = nv,
    .act_b = none,
    .act_w = head_act_w,
    .grad_w = head_grad_w,
    .forward = head_forward,
    .backward_input = head_backward_input,
    .backward_weight = head_backward_weight,
};

static const pr_layer_kind *gpt_kind(const pr_model *m, int layer)
{
    int k = pr_gpt_kind_of(m, layer);
    return k == PR_GPT_EMBEDDING ? &embedding_kind : k == PR_GPT_BLOCK ? &block_kind : &head_kind;
}

static const void *gpt_kernels(int device)
{
    if (device == PR_DEVICE_HOST)
        return &pr_gpt_kernels_cpu;
#ifdef PPRUN_CUDA
    if (device == PR_DEVICE_CUDA)
        return &pr_gpt_kernels_cuda;
#endif
    return NULL;
}

/* The largest activation operand of a GEMM: the attention scores of a
 * head over the micro-batch (batched), qkv, the MLP's hidden layer, the
 * logits. */
static void gpt_scratch(const pr_model *m, int rows, size_t *gemm_floats, int *max_cols)
{
    size_t most = nscores(m, rows);
    size_t c[] = {3 * nh(m, rows), nf(m, rows), nv(m, rows)};
    for (int i = 0; i < 3; i++)
        most = c[i] > most ? c[i] : most;
    *gemm_floats = most;
    int w[] = {3 * m->hidden, m->gpt.ffn, m->gpt.vocab};
    *max_cols = m->hidden;
    for (int i = 0; i < 3; i++)
        *max_cols = w[i] > *max_cols ? w[i] : *max_cols;
}

static void gpt_input(const pr_layer_env *e, int row0, int rows, float *x)
{
    const pr_model *m = e->m;
    K(e)->tokens(e->c, e->data, m->gpt.data ? m->gpt.data_bytes : 0, m->seed, m->gpt.seq,
                 m->gpt.vocab, row0, rows, 0, (int32_t *)x);
}

static size_t gpt_loss_floats(const pr_model *m, int rows) { return ntok(m, rows); }

/* scratch = the targets; slot = sum of the tokens' cross-entropies; dy =
 * the logits' gradient of the mean over the step's batch x seq tokens. */
static void gpt_loss(const pr_layer_env *e, int row0, int rows, const float *y, float *scratch,
                     float *dy, int slot)
{
    const pr_model *m = e->m;
    int32_t *target = (int32_t *)scratch;
    K(e)->tokens(e->c, e->data, m->gpt.data ? m->gpt.data_bytes : 0, m->seed, m->gpt.seq,
                 m->gpt.vocab, row0, rows, 1, target);
    K(e)->cross_entropy(e->c, y, target, dy, (int)ntok(m, rows), m->gpt.vocab,
                        (float)(1.0 / ((double)m->batch * m->gpt.seq)), slot);
}

static double gpt_loss_of(const pr_model *m, double sum)
{
    return sum / ((double)m->batch * m->gpt.seq);
}

static int gpt_opt_state(const pr_model *m) { return m->gpt.optimizer == PR_ADAMW ? 2 : 0; }

/* Floats [lo, hi) of layer's block: SGD on all; AdamW tensor by tensor
 * (the part of each inside [lo, hi)), weight decay on matrices and
 * embeddings only; S's moments start at lo. */
static void gpt_update(const pr_layer_env *e, int layer, float *P, float *G, float *S, size_t lo,
                       size_t hi)
{
    const pr_model *m = e->m;
    if (m->gpt.optimizer == PR_SGD) {
        e->be->sgd(e->c, P + lo, G + lo, (float)m->lr, hi - lo);
        return;
    }
    pr_gpt_tensor t[PR_GPT_MAX_TENSORS];
    int n = pr_gpt_tensors(m, layer, t);
    float *M = S, *Vs = S + (hi - lo); /* from lo */
    for (int i = 0; i < n && t[i].off < hi; i++) {
        size_t a = t[i].off, b = a + (size_t)t[i].rows * (size_t)(t[i].cols > 0 ? t[i].cols : 1);
        a = a > lo ? a : lo;
        b = b < hi ? b : hi;
        if (a >= b)
            continue;
        pr_adamw w = {(float)m->lr, (float)m->gpt.beta1, (float)m->gpt.beta2, (float)m->gpt.eps,
                      t[i].decay ? (float)m->gpt.weight_decay : 0.0f, e->updates_per_step,
                      e->update_index};
        e->be->adamw(e->c, P + a, G + a, M + (a - lo), Vs + (a - lo), b - a, &w);
    }
}

static size_t gpt_tied_floats(const pr_model *m)
{
    return m->gpt.tie ? (size_t)m->gpt.vocab * (size_t)m->hidden : 0;
}

static const unsigned char *gpt_data(const pr_model *m, size_t *bytes)
{
    *bytes = m->gpt.bytes ? (size_t)m->gpt.data_bytes : 0;
    return m->gpt.bytes;
}

const pr_model_ops pr_model_gpt = {
    .name = "gpt",
    .kind = gpt_kind,
    .kernels = gpt_kernels,
    .scratch = gpt_scratch,
    .slot_floats = nh,
    .input = gpt_input,
    .loss_floats = gpt_loss_floats,
    .loss = gpt_loss,
    .loss_of = gpt_loss_of,
    .opt_state = gpt_opt_state,
    .update = gpt_update,
    .tied_floats = gpt_tied_floats,
    .data = gpt_data,
    .check_fits = pr_gpt_check_fits,
    .check = pr_gpt_check_run,
    .dump_files = pr_gpt_dump_files,
    .dump_fill = pr_gpt_dump_fill,
    .dump_bytes = pr_gpt_dump_bytes,
};

