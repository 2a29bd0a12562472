/* The training model: one parameter buffer, one gradient buffer, the
 * forward pass that keeps its activations, and the backward pass that walks
 * them in reverse (llm.c style). */
#include "train/train_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- layout ----------------------------------------------------------------- */

static void add_tensor(lrgd_tmodel *t, const char *name, int rows, int cols, size_t *off)
{
    int i = t->n_tensors++;
    snprintf(t->names[i], sizeof t->names[i], "%s", name);
    t->tensors[i].name = t->names[i];
    t->tensors[i].offset = t->n_params;
    t->tensors[i].rows = rows;
    t->tensors[i].cols = cols;
    if (off) *off = t->n_params;
    t->n_params += (size_t)rows * cols;
}

static lrgd_status tm_layout(lrgd_tmodel *t)
{
    const lrgd_config *c = &t->cfg;
    int L = c->n_layers, D = c->dim, Q = c->n_heads * c->head_dim, KV = c->n_kv_heads * c->head_dim,
        F = c->hidden_dim;
    int cap = 2 + 9 * L;
    t->tensors = calloc((size_t)cap, sizeof *t->tensors);
    t->names = calloc((size_t)cap, sizeof *t->names);
    t->lay = calloc((size_t)L, sizeof *t->lay);
    if (!t->tensors || !t->names || !t->lay) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    char nm[48];
    add_tensor(t, "token_embd.weight", c->vocab_size, D, &t->off_tok);
    for (int l = 0; l < L; l++) {
        tm_layer *y = &t->lay[l];
#define T_(suffix, r, cc, field) \
        snprintf(nm, sizeof nm, "blk.%d." suffix ".weight", l); \
        add_tensor(t, nm, r, cc, &y->field)
        T_("attn_norm", 1, D, attn_norm);
        T_("attn_q", Q, D, wq);
        T_("attn_k", KV, D, wk);
        T_("attn_v", KV, D, wv);
        T_("attn_output", D, Q, wo);
        T_("ffn_norm", 1, D, ffn_norm);
        T_("ffn_gate", F, D, w1);
        T_("ffn_down", D, F, w2);
        T_("ffn_up", F, D, w3);
#undef T_
    }
    add_tensor(t, "output_norm.weight", 1, D, &t->off_out_norm);
    return LRGD_OK;
}

/* Point the lrgd_model view's weights into the parameter buffer. */
static lrgd_status tm_make_view(lrgd_tmodel *t)
{
    LRGD_TRY(lrgd_model_alloc(&t->cfg, &t->view));
    lrgd_model *m = t->view;
    const lrgd_config *c = &t->cfg;
    int D = c->dim, Q = c->n_heads * c->head_dim, KV = c->n_kv_heads * c->head_dim, F = c->hidden_dim;
    float *p = t->params;
    m->tok_embd = (lrgd_weight){LRGD_F32, p + t->off_tok, c->vocab_size, D};
    m->output = m->tok_embd;
    m->out_norm = p + t->off_out_norm;
    for (int l = 0; l < c->n_layers; l++) {
        const tm_layer *y = &t->lay[l];
        lrgd_layer *x = &m->layers[l];
        x->attn_norm = p + y->attn_norm;
        x->wq = (lrgd_weight){LRGD_F32, p + y->wq, Q, D};
        x->wk = (lrgd_weight){LRGD_F32, p + y->wk, KV, D};
        x->wv = (lrgd_weight){LRGD_F32, p + y->wv, KV, D};
        x->wo = (lrgd_weight){LRGD_F32, p + y->wo, D, Q};
        x->ffn_norm = p + y->ffn_norm;
        x->w1 = (lrgd_weight){LRGD_F32, p + y->w1, F, D};
        x->w2 = (lrgd_weight){LRGD_F32, p + y->w2, D, F};
        x->w3 = (lrgd_weight){LRGD_F32, p + y->w3, F, D};
    }
    m->rec.pad = LRGD_TOK_PAD;
    m->rec.bos = LRGD_TOK_BOS;
    m->rec.sep = LRGD_TOK_SEP;
    m->rec.ans = LRGD_TOK_ANS;
    m->rec.eos = LRGD_TOK_EOS;
    m->rec.n_special = LRGD_N_SPECIAL;
    m->rec.n_items = t->n_items;
    m->rec.item_ext = malloc((size_t)t->n_items * sizeof(int64_t));
    if (!m->rec.item_ext) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (int i = 0; i < t->n_items; i++) m->rec.item_ext[i] = i + 1; /* until the data says otherwise */
    return LRGD_OK;
}

static lrgd_status tm_alloc(const lrgd_config *cfg, lrgd_tmodel **out)
{
    *out = NULL;
    LRGD_TRY(lrgd_config_check(cfg, "training model"));
    if (!cfg->tied) return lrgd_fail(LRGD_E_UNSUPPORTED, "training model: only a tied output layer is supported");
    if (cfg->vocab_size <= LRGD_N_SPECIAL)
        return lrgd_fail(LRGD_E_INVALID, "training model: vocab_size %d leaves no item tokens after the %d special tokens",
                         cfg->vocab_size, LRGD_N_SPECIAL);
    lrgd_tmodel *t = calloc(1, sizeof *t);
    if (!t) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    t->cfg = *cfg;
    t->n_items = cfg->vocab_size - LRGD_N_SPECIAL;
    t->fault_layer = -1;
    lrgd_status st = tm_layout(t);
    if (st == LRGD_OK) {
        t->params = lrgd_alloc_n(t->n_params, sizeof(float));
        t->grads = lrgd_alloc_n(t->n_params, sizeof(float));
        if (!t->params || !t->grads) st = lrgd_fail(LRGD_E_NOMEM, "training model: out of memory for %zu parameters", t->n_params);
    }
    if (st == LRGD_OK) st = tm_make_view(t);
    if (st != LRGD_OK) { lrgd_tmodel_free(t); return st; }
    *out = t;
    return LRGD_OK;
}

lrgd_status lrgd_tmodel_new(const lrgd_config *cfg, uint64_t seed, lrgd_tmodel **out)
{
    lrgd_tmodel *t;
    LRGD_TRY(tm_alloc(cfg, &t));
    float out_scale = 1.0f / sqrtf(2.0f * (float)cfg->n_layers);
    for (int i = 0; i < t->n_tensors; i++) {
        const lrgd_tensor_info *ti = &t->tensors[i];
        float *w = t->params + ti->offset;
        size_t n = (size_t)ti->rows * ti->cols;
        if (ti->rows == 1) { /* norm weights */
            for (size_t j = 0; j < n; j++) w[j] = 1.0f;
            continue;
        }
        float std = 0.02f;
        if (strstr(ti->name, "attn_output") || strstr(ti->name, "ffn_down")) std *= out_scale;
        lrgd_rng r;
        lrgd_rng_seed(&r, seed, 0x7a11000u + (uint64_t)i); /* one stream per tensor */
        for (size_t j = 0; j < n; j++) w[j] = (float)(std * lrgd_rng_normal(&r));
    }
    *out = t;
    return LRGD_OK;
}

lrgd_status lrgd_tmodel_from_model(const lrgd_model *m, lrgd_tmodel **out)
{
    *out = NULL;
    const lrgd_config *c = &m->cfg;
    if (!c->tied && m->output.data != m->tok_embd.data)
        return lrgd_fail(LRGD_E_UNSUPPORTED, "training model: the model has an untied output layer");
    lrgd_config cfg = *c;
    cfg.tied = 1;
    lrgd_tmodel *t;
    LRGD_TRY(tm_alloc(&cfg, &t));
    const lrgd_weight *w[9];
    for (int i = 0; i < t->n_tensors; i++) {
        const lrgd_tensor_info *ti = &t->tensors[i];
        float *dst = t->params + ti->offset;
        const lrgd_weight *src = NULL;
        const float *vec = NULL;
        if (i == 0) src = &m->tok_embd;
        else if (i == t->n_tensors - 1) vec = m->out_norm;
        else {
            int l = (i - 1) / 9, k = (i - 1) % 9;
            const lrgd_layer *y = &m->layers[l];
            w[1] = &y->wq; w[2] = &y->wk; w[3] = &y->wv; w[4] = &y->wo;
            w[6] = &y->w1; w[7] = &y->w2; w[8] = &y->w3;
            if (k == 0) vec = y->attn_norm;
            else if (k == 5) vec = y->ffn_norm;
            else src = w[k];
        }
        if (vec) memcpy(dst, vec, (size_t)ti->cols * sizeof(float));
        else {
            size_t rb = lrgd_dtype_row_bytes(src->type, (size_t)src->cols);
            for (int r = 0; r < ti->rows; r++)
                lrgd_dequantize(src->type, (const unsigned char *)src->data + rb * (size_t)r, dst + (size_t)r * ti->cols,
                                (size_t)ti->cols);
        }
    }
    if (m->rec.n_items > 0 && m->rec.n_items == t->n_items && m->rec.item_ext)
        memcpy(t->view->rec.item_ext, m->rec.item_ext, (size_t)t->n_items * sizeof(int64_t));
    *out = t;
    return LRGD_OK;
}

void lrgd_tmodel_free(lrgd_tmodel *t)
{
    if (!t) return;
    lrgd_model_free(t->view);
    lrgd_free(t->params);
    lrgd_free(t->grads);
    lrgd_free(t->m);
    lrgd_free(t->v);
    lrgd_free(t->a.block);
    free(t->tensors);
    free(t->names);
    free(t->lay);
    free(t);
}

lrgd_model *lrgd_tmodel_model(lrgd_tmodel *t) { return t->view; }
const lrgd_config *lrgd_tmodel_config(const lrgd_tmodel *t) { return &t->cfg; }
int lrgd_tmodel_n_items(const lrgd_tmodel *t) { return t->n_items; }
size_t lrgd_tmodel_n_params(const lrgd_tmodel *t) { return t->n_params; }
float *lrgd_tmodel_params(lrgd_tmodel *t) { return t->params; }
float *lrgd_tmodel_grads(lrgd_tmodel *t) { return t->grads; }
void lrgd_tmodel_zero_grad(lrgd_tmodel *t) { memset(t->grads, 0, t->n_params * sizeof(float)); }
int lrgd_tmodel_n_tensors(const lrgd_tmodel *t) { return t->n_tensors; }

lrgd_status lrgd_tmodel_tensor(const lrgd_tmodel *t, int i, lrgd_tensor_info *info)
{
    if (i < 0 || i >= t->n_tensors)
        return lrgd_fail(LRGD_E_INVALID, "tensor index %d outside 0..%d", i, t->n_tensors - 1);
    *info = t->tensors[i];
    return LRGD_OK;
}

lrgd_status lrgd_tmodel_set_item_ids(lrgd_tmodel *t, const int64_t *ext)
{
    memcpy(t->view->rec.item_ext, ext, (size_t)t->n_items * sizeof(int64_t));
    return LRGD_OK;
}

void lrgd_tmodel_set_dropout(lrgd_tmodel *t, float p, uint64_t seed)
{
    t->dropout = p;
    t->drop_seed = seed;
}

void lrgd_tmodel_set_step(lrgd_tmodel *t, uint64_t step) { t->step = step; }

void lrgd_tmodel_set_sampled(lrgd_tmodel *t, int n_sampled) { t->n_sampled = n_sampled > 0 ? n_sampled : 0; }

/* ---- activations -------------------------------------------------------------- */

static lrgd_status acts_reserve(lrgd_tmodel *t, const lrgd_tbatch *b, const int *pos, const int *vis, int need_grad)
{
    tm_acts *a = &t->a;
    const lrgd_config *c = &t->cfg;
    size_t N = (size_t)b->seq_off[b->n_seq], L = (size_t)c->n_layers, D = (size_t)c->dim,
           Q = (size_t)c->n_heads * c->head_dim, KV = (size_t)c->n_kv_heads * c->head_dim, F = (size_t)c->hidden_dim,
           H = (size_t)c->n_heads;
    size_t n_att = 0, n_tgt = 0;
    for (int s = 0; s < b->n_seq; s++) {
        size_t T = (size_t)(b->seq_off[s + 1] - b->seq_off[s]);
        n_att += H * T * T;
    }
    if (b->targets)
        for (size_t i = 0; i < N; i++) n_tgt += b->targets[i] >= 0;
    /* the layout: sizes in floats (ints share the float size), each piece 16-float aligned */
    size_t sz[40];
    int k = 0;
    sz[k++] = N;                 /* pos */
    sz[k++] = (size_t)b->n_seq * 2; /* att_off (size_t) */
    sz[k++] = n_tgt;             /* tgt_row */
    sz[k++] = n_tgt;             /* tgt_tok */
    sz[k++] = (L + 1) * N * D;   /* x_in */
    sz[k++] = L * N * D;         /* xn1 */
    sz[k++] = L * N;             /* rstd1 */
    sz[k++] = L * N * Q;         /* q */
    sz[k++] = L * N * KV;        /* k */
    sz[k++] = L * N * KV;        /* v */
    sz[k++] = L * n_att;         /* att */
    sz[k++] = L * N * Q;         /* ao */
    sz[k++] = L * N * D;         /* x_mid */
    sz[k++] = L * N * D;         /* xn2 */
    sz[k++] = L * N;             /* rstd2 */
    sz[k++] = L * N * F;         /* g */
    sz[k++] = L * N * F;         /* u */
    sz[k++] = L * N * F;         /* hsw */
    sz[k++] = N * D;             /* xf */
    sz[k++] = N;                 /* rstdf */
    sz[k++] = n_tgt * D;         /* dht */
    size_t g = need_grad ? 1 : 0;
    sz[k++] = g * N * D;         /* dx */
    sz[k++] = g * N * D;         /* dxn */
    sz[k++] = g * N * Q;         /* dq */
    sz[k++] = g * N * KV;        /* dk */
    sz[k++] = g * N * KV;        /* dv */
    sz[k++] = g * N * Q;         /* dao */
    sz[k++] = g * N * F;         /* dg */
    sz[k++] = g * N * F;         /* du */
    sz[k++] = g * N * F;         /* dh */
    sz[k++] = N * (D > F ? D : F); /* tmp */
    sz[k++] = (size_t)TM_CE_CHUNK * t->n_items; /* logits */
    size_t total = 0;
    for (int i = 0; i < k; i++) total += (sz[i] + 15) / 16 * 16;
    size_t bytes;
    if (!lrgd_mul_ok(total, sizeof(float), &bytes) || total > ((size_t)1 << 40))
        return lrgd_fail(LRGD_E_NOMEM, "training batch: activations too large");
    if (bytes > a->cap_bytes) {
        lrgd_free(a->block);
        size_t want = bytes + bytes / 4;
        a->block = lrgd_alloc(want);
        if (!a->block) {
            a->cap_bytes = 0;
            return lrgd_fail(LRGD_E_NOMEM, "training batch: out of memory for %zu MiB of activations", want >> 20);
        }
        a->cap_bytes = want;
    }
    float *p = a->block;
    float **dst[40];
    k = 0;
    dst[k++] = (float **)&a->pos;
    dst[k++] = (float **)&a->att_off;
    dst[k++] = (float **)&a->tgt_row;
    dst[k++] = (float **)&a->tgt_tok;
    dst[k++] = &a->x_in;
    dst[k++] = &a->xn1;
    dst[k++] = &a->rstd1;
    dst[k++] = &a->q;
    dst[k++] = &a->k;
    dst[k++] = &a->v;
    dst[k++] = &a->att;
    dst[k++] = &a->ao;
    dst[k++] = &a->x_mid;
    dst[k++] = &a->xn2;
    dst[k++] = &a->rstd2;
    dst[k++] = &a->g;
    dst[k++] = &a->u;
    dst[k++] = &a->hsw;
    dst[k++] = &a->xf;
    dst[k++] = &a->rstdf;
    dst[k++] = &a->dht;
    dst[k++] = &a->dx;
    dst[k++] = &a->dxn;
    dst[k++] = &a->dq;
    dst[k++] = &a->dk;
    dst[k++] = &a->dv;
    dst[k++] = &a->dao;
    dst[k++] = &a->dg;
    dst[k++] = &a->du;
    dst[k++] = &a->dh;
    dst[k++] = &a->tmp;
    dst[k++] = &a->logits;
    for (int i = 0; i < k; i++) {
        *dst[i] = sz[i] ? p : NULL;
        p += (sz[i] + 15) / 16 * 16;
    }
    a->n_tok = (int)N;
    a->n_seq = b->n_seq;
    a->vis = vis;
    a->n_tgt = (int)n_tgt;
    a->n_att = n_att;
    size_t off = 0;
    for (int s = 0; s < b->n_seq; s++) {
        int T = b->seq_off[s + 1] - b->seq_off[s];
        a->att_off[s] = off;
        off += H * (size_t)T * T;
        for (int i = 0; i < T; i++) a->pos[b->seq_off[s] + i] = pos ? pos[b->seq_off[s] + i] : i;
    }
    int nt = 0;
    if (b->targets)
        for (int i = 0; i < (int)N; i++)
            if (b->targets[i] >= 0) {
                a->tgt_row[nt] = i;
                a->tgt_tok[nt] = b->targets[i] - LRGD_N_SPECIAL;
                nt++;
            }
    return LRGD_OK;
}

static lrgd_status check_batch(const lrgd_tmodel *t, const lrgd_tbatch *b, const int *pos, const int *vis)
{
    if (b->n_seq <= 0 || !b->seq_off || b->seq_off[0] != 0)
        return lrgd_fail(LRGD_E_INVALID, "training batch: needs n_seq >= 1 and seq_off[0] == 0");
    for (int s = 0; s < b->n_seq; s++) {
        int T = b->seq_off[s + 1] - b->seq_off[s];
        if (T <= 0 || T > t->cfg.seq_len)
            return lrgd_fail(LRGD_E_INVALID, "training batch: sequence %d has %d tokens (allowed 1..%d)", s, T,
                             t->cfg.seq_len);
    }
    int N = b->seq_off[b->n_seq];
    for (int s = 0; s < b->n_seq && (pos || vis); s++)
        for (int i = 0; i < b->seq_off[s + 1] - b->seq_off[s]; i++) {
            int r = b->seq_off[s] + i;
            if (pos && (pos[r] < 0 || pos[r] >= t->cfg.seq_len))
                return lrgd_fail(LRGD_E_INVALID, "training batch: position %d at row %d outside 0..%d", pos[r], r,
                                 t->cfg.seq_len - 1);
            if (vis && (vis[r] < -1 || vis[r] >= i))
                return lrgd_fail(LRGD_E_INVALID, "training batch: row %d of its sequence may not see up to row %d", i,
                                 vis[r]);
        }
    if (!b->embd) {
        if (!b->tokens) return lrgd_fail(LRGD_E_INVALID, "training batch: neither tokens nor embeddings given");
        for (int i = 0; i < N; i++)
            if (b->tokens[i] < 0 || b->tokens[i] >= t->cfg.vocab_size)
                return lrgd_fail(LRGD_E_INVALID, "training batch: token %d at row %d outside 0..%d", b->tokens[i], i,
                                 t->cfg.vocab_size - 1);
    }
    if (b->targets)
        for (int i = 0; i < N; i++)
            if (b->targets[i] >= 0 && (b->targets[i] < LRGD_N_SPECIAL || b->targets[i] >= t->cfg.vocab_size))
                return lrgd_fail(LRGD_E_INVALID, "training batch: target %d at row %d is not an item token (%d..%d)",
                                 b->targets[i], i, LRGD_N_SPECIAL, t->cfg.vocab_size - 1);
    return LRGD_OK;
}

/* ---- forward ---------------------------------------------------------------------- */

/* dropout sites: 0 embedding, then per layer 3 (attention out, swiglu, ffn out) */
static uint64_t site(const lrgd_tmodel *t, int layer, int kind)
{
    return (t->step << 16) ^ (uint64_t)(1 + layer * 3 + kind);
}

static void attention_all(lrgd_tmodel *t, const lrgd_tbatch *b, int l)
{
    const lrgd_config *c = &t->cfg;
    tm_acts *a = &t->a;
    size_t N = (size_t)a->n_tok, Q = (size_t)c->n_heads * c->head_dim, KV = (size_t)c->n_kv_heads * c->head_dim;
    float *q = a->q + l * N * Q, *k = a->k + l * N * KV, *v = a->v + l * N * KV, *ao = a->ao + l * N * Q,
          *att = a->att + l * a->n_att;
    /* many sequences: one thread per sequence; few: let the primitive spread its rows */
    int par = b->n_seq >= 2 * lrgd_get_threads();
#pragma omp parallel for schedule(dynamic, 1) if (par)
    for (int s = 0; s < b->n_seq; s++) {
        size_t o = (size_t)b->seq_off[s];
        int T = b->seq_off[s + 1] - b->seq_off[s];
        if (a->vis)
            tm_attention_forward_masked(ao + o * Q, att + a->att_off[s], q + o * Q, k + o * KV, v + o * KV, a->vis + o,
                                        T, c->n_heads, c->n_kv_heads, c->head_dim, c->attn);
        else
            lrgd_attention_forward(ao + o * Q, att + a->att_off[s], q + o * Q, k + o * KV, v + o * KV, 0, T,
                                   c->n_heads, c->n_kv_heads, c->head_dim, c->attn);
    }
}

/* Softmax cross-entropy at the target rows over the columns of Ec (Vc rows
 * of item embeddings), each logit plus bias[j] when bias != NULL; ycol[r]
 * is the column of target r. Fused: when dEc is given, the gradient of the
 * mean loss is formed chunk by chunk (logits are never stored whole), dht is
 * written and dEc accumulated. */
static double softmax_xent(lrgd_tmodel *t, const float *Ec, float *dEc, int Vc, const float *bias, const int *ycol)
{
    const lrgd_config *c = &t->cfg;
    tm_acts *a = &t->a;
    int D = c->dim, NT = a->n_tgt, want_grad = dEc != NULL;
    float *ht = a->tmp; /* gathered rows of one chunk */
    double loss = 0;
    float inv = NT > 0 ? 1.0f / (float)NT : 0.0f;
    for (int r0 = 0; r0 < NT; r0 += TM_CE_CHUNK) {
        int n = NT - r0 < TM_CE_CHUNK ? NT - r0 : TM_CE_CHUNK;
        for (int i = 0; i < n; i++)
            memcpy(ht + (size_t)i * D, a->xf + (size_t)a->tgt_row[r0 + i] * D, (size_t)D * sizeof(float));
        float *lg = a->logits;
        tm_gemm(0, 1, n, Vc, D, 1.0f, ht, D, Ec, D, 0.0f, lg, Vc);
        double part = 0;
#pragma omp parallel for schedule(static) reduction(+ : part)
        for (int i = 0; i < n; i++) {
            float *row = lg + (size_t)i * Vc;
            if (bias)
                for (int j = 0; j < Vc; j++) row[j] += bias[j];
            float mx = row[0];
            for (int j = 1; j < Vc; j++) mx = row[j] > mx ? row[j] : mx;
            int y = ycol[r0 + i];
            float ly = row[y], sum = 0;
            if (want_grad) { /* keep the exponentials: the gradient is softmax - onehot */
#pragma omp simd reduction(+ : sum)
                for (int j = 0; j < Vc; j++) {
                    float e = tm_expf(row[j] - mx);
                    row[j] = e;
                    sum += e;
                }
                float sc = inv / sum;
#pragma omp simd
                for (int j = 0; j < Vc; j++) row[j] *= sc;
                row[y] -= inv;
            } else {
#pragma omp simd reduction(+ : sum)
                for (int j = 0; j < Vc; j++) sum += tm_expf(row[j] - mx);
            }
            part += (double)mx + log((double)sum) - ly;
        }
        loss += part;
        if (want_grad) {
            tm_gemm(0, 0, n, D, Vc, 1.0f, lg, Vc, Ec, D, 0.0f, a->dht + (size_t)r0 * D, D);
            tm_gemm(1, 0, Vc, D, n, 1.0f, lg, Vc, ht, D, 1.0f, dEc, D);
        }
    }
    return NT > 0 ? loss / NT : 0;
}

/* Sampled softmax (training only): the batch's target items plus n_sampled
 * other items drawn uniformly without replacement (seeded by the step),
 * shared by every row. The sampled columns get the log of their inverse
 * inclusion rate, (V - P) / S, so that the normalizer estimates the full
 * one; the targets' columns get 0. */
static lrgd_status sampled_xent(lrgd_tmodel *t, int want_grad, double *loss)
{
    const lrgd_config *c = &t->cfg;
    tm_acts *a = &t->a;
    int D = c->dim, V = t->n_items, NT = a->n_tgt;
    const float *E = t->params + t->off_tok + (size_t)LRGD_N_SPECIAL * D;
    float *dE = t->grads + t->off_tok + (size_t)LRGD_N_SPECIAL * D;
    int *col = malloc((size_t)V * sizeof *col), *cand = malloc((size_t)V * sizeof *cand),
        *ycol = malloc((size_t)(NT > 0 ? NT : 1) * sizeof *ycol);
    float *Ec = NULL, *dEc = NULL, *bias = NULL;
    lrgd_status st = LRGD_OK;
    if (!col || !cand || !ycol) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); goto done; }
    for (int j = 0; j < V; j++) col[j] = -1;
    int nc = 0;
    for (int r = 0; r < NT; r++) {
        int y = a->tgt_tok[r];
        if (col[y] < 0) { col[y] = nc; cand[nc++] = y; }
        ycol[r] = col[y];
    }
    int P = nc, S = t->n_sampled < V - P ? t->n_sampled : V - P;
    lrgd_rng r;
    lrgd_rng_seed(&r, t->drop_seed ^ 0x5A3D1EDull, t->step);
    while (nc < P + S) {
        int j = (int)lrgd_rng_below(&r, (uint32_t)V);
        if (col[j] < 0) { col[j] = nc; cand[nc++] = j; }
    }
    Ec = lrgd_alloc_n((size_t)nc * D, sizeof(float));
    bias = lrgd_alloc_n((size_t)nc, sizeof(float));
    if (want_grad) dEc = lrgd_alloc_n((size_t)nc * D, sizeof(float));
    if (!Ec || !bias || (want_grad && !dEc)) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); goto done; }
    float lw = S > 0 ? logf((float)(V - P) / (float)S) : 0.0f;
    for (int k = 0; k < nc; k++) {
        memcpy(Ec + (size_t)k * D, E + (size_t)cand[k] * D, (size_t)D * sizeof(float));
        bias[k] = k < P ? 0.0f : lw;
    }
    *loss = softmax_xent(t, Ec, dEc, nc, bias, ycol);
    if (want_grad) /* scatter back, in candidate order */
        for (int k = 0; k < nc; k++) {
            float *d = dE + (size_t)cand[k] * D;
            const float *g = dEc + (size_t)k * D;
            for (int q = 0; q < D; q++) d[q] += g[q];
        }
done:
    free(col); free(cand); free(ycol);
    lrgd_free(Ec); lrgd_free(dEc); lrgd_free(bias);
    return st;
}

/* Classifier over the item tokens at the target rows: the full softmax,
 * or the sampled one while training with n_sampled > 0. */
static lrgd_status classifier(lrgd_tmodel *t, int train, int want_grad, double *loss)
{
    if (train && t->n_sampled > 0 && t->a.n_tgt > 0) return sampled_xent(t, want_grad, loss);
    const lrgd_config *c = &t->cfg;
    int D = c->dim;
    const float *E = t->params + t->off_tok + (size_t)LRGD_N_SPECIAL * D;
    float *dE = t->grads + t->off_tok + (size_t)LRGD_N_SPECIAL * D;
    *loss = softmax_xent(t, E, want_grad ? dE : NULL, t->n_items, NULL, t->a.tgt_tok);
    return LRGD_OK;
}

static lrgd_status tm_forward(lrgd_tmodel *t, const lrgd_tbatch *b, const int *pos, const int *vis, int train,
                              int want_grad, double *loss)
{
    LRGD_TRY(check_batch(t, b, pos, vis));
    LRGD_TRY(acts_reserve(t, b, pos, vis, want_grad));
    const lrgd_config *c = &t->cfg;
    tm_acts *a = &t->a;
    size_t N = (size_t)a->n_tok, D = (size_t)c->dim, Q = (size_t)c->n_heads * c->head_dim,
           KV = (size_t)c->n_kv_heads * c->head_dim, F = (size_t)c->hidden_dim;
    float p = train ? t->dropout : 0.0f;
    const float *P = t->params;

    if (b->embd) memcpy(a->x_in, b->embd, N * D * sizeof(float));
    else {
        lrgd_weight tab = {LRGD_F32, P + t->off_tok, c->vocab_size, (int)D};
        lrgd_embed(a->x_in, &tab, b->tokens, (int)N);
    }
    tm_dropout(a->x_in, N * D, p, t->drop_seed, site(t, -1, 2));

    for (int l = 0; l < c->n_layers; l++) {
        const tm_layer *y = &t->lay[l];
        float *x = a->x_in + l * N * D, *xn1 = a->xn1 + l * N * D, *q = a->q + l * N * Q, *k = a->k + l * N * KV,
              *v = a->v + l * N * KV, *ao = a->ao + l * N * Q, *xm = a->x_mid + l * N * D, *xn2 = a->xn2 + l * N * D,
              *g = a->g + l * N * F, *u = a->u + l * N * F, *h = a->hsw + l * N * F, *xo = x + N * D;
        lrgd_rmsnorm_forward(xn1, a->rstd1 + l * N, x, P + y->attn_norm, (int)N, (int)D, c->norm_eps);
        tm_linear_forward(q, xn1, P + y->wq, (int)N, (int)D, (int)Q);
        tm_linear_forward(k, xn1, P + y->wk, (int)N, (int)D, (int)KV);
        tm_linear_forward(v, xn1, P + y->wv, (int)N, (int)D, (int)KV);
        lrgd_rope(q, (int)N, c->n_heads, c->head_dim, 0, a->pos, c->rope_base, c->rope_type, 1);
        lrgd_rope(k, (int)N, c->n_kv_heads, c->head_dim, 0, a->pos, c->rope_base, c->rope_type, 1);
        attention_all(t, b, l);
        if (t->fault_layer == l) ao[(size_t)(a->n_tgt > 0 ? a->tgt_row[0] : 0) * Q] = NAN; /* reaches the loss */
        tm_linear_forward(a->tmp, ao, P + y->wo, (int)N, (int)Q, (int)D);
        tm_dropout(a->tmp, N * D, p, t->drop_seed, site(t, l, 0));
        for (size_t i = 0; i < N * D; i++) xm[i] = x[i] + a->tmp[i];
        lrgd_rmsnorm_forward(xn2, a->rstd2 + l * N, xm, P + y->ffn_norm, (int)N, (int)D, c->norm_eps);
        tm_linear_forward(g, xn2, P + y->w1, (int)N, (int)D, (int)F);
        tm_linear_forward(u, xn2, P + y->w3, (int)N, (int)D, (int)F);
        lrgd_swiglu_forward(h, g, u, N * F);
        tm_dropout(h, N * F, p, t->drop_seed, site(t, l, 1));
        tm_linear_forward(a->tmp, h, P + y->w2, (int)N, (int)F, (int)D);
        tm_dropout(a->tmp, N * D, p, t->drop_seed, site(t, l, 2));
        for (size_t i = 0; i < N * D; i++) xo[i] = xm[i] + a->tmp[i];
    }
    lrgd_rmsnorm_forward(a->xf, a->rstdf, a->x_in + (size_t)c->n_layers * N * D, P + t->off_out_norm, (int)N,
                         (int)D, c->norm_eps);
    double l = 0;
    LRGD_TRY(classifier(t, train, want_grad, &l));
    if (loss) *loss = l;
    return LRGD_OK;
}

lrgd_status lrgd_tmodel_forward(lrgd_tmodel *t, const lrgd_tbatch *b, int train, double *loss, int *n_targets,
                                float *hidden)
{
    return tm_forward_ex(t, b, NULL, NULL, train, loss, n_targets, hidden);
}

lrgd_status tm_forward_ex(lrgd_tmodel *t, const lrgd_tbatch *b, const int *pos, const int *vis, int train,
                          double *loss, int *n_targets, float *hidden)
{
    int blas = tm_blas_single_begin();
    lrgd_status st = tm_forward(t, b, pos, vis, train, 0, loss);
    tm_blas_single_end(blas);
    LRGD_TRY(st);
    if (hidden) LRGD_TRY(tm_check_finite(t, b)); /* scoring: a NaN must not become a ranking */
    if (n_targets) *n_targets = t->a.n_tgt;
    if (hidden) memcpy(hidden, t->a.xf, (size_t)t->a.n_tok * t->cfg.dim * sizeof(float));
    return LRGD_OK;
}

/* ---- backward ------------------------------------------------------------------- */

static lrgd_status tm_grad(lrgd_tmodel *t, const lrgd_tbatch *b, const int *pos, const int *vis, int train,
                           double *loss, float *d_embd);

lrgd_status lrgd_tmodel_grad(lrgd_tmodel *t, const lrgd_tbatch *b, int train, double *loss, float *d_embd)
{
    return tm_grad_ex(t, b, NULL, NULL, train, loss, d_embd);
}

lrgd_status tm_grad_ex(lrgd_tmodel *t, const lrgd_tbatch *b, const int *pos, const int *vis, int train, double *loss,
                       float *d_embd)
{
    if (!b->targets) return lrgd_fail(LRGD_E_INVALID, "training batch: gradients need targets");
    int blas = tm_blas_single_begin();
    lrgd_status st = tm_grad(t, b, pos, vis, train, loss, d_embd);
    tm_blas_single_end(blas);
    return st;
}

static lrgd_status tm_grad(lrgd_tmodel *t, const lrgd_tbatch *b, const int *pos, const int *vis, int train,
                           double *loss, float *d_embd)
{
    LRGD_TRY(tm_forward(t, b, pos, vis, train, 1, loss));
    const lrgd_config *c = &t->cfg;
    tm_acts *a = &t->a;
    size_t N = (size_t)a->n_tok, D = (size_t)c->dim, Q = (size_t)c->n_heads * c->head_dim,
           KV = (size_t)c->n_kv_heads * c->head_dim, F = (size_t)c->hidden_dim;
    float p = train ? t->dropout : 0.0f;
    const float *P = t->params;
    float *G = t->grads;

    /* scatter the classifier gradient to its rows, then through the final norm */
    memset(a->dxn, 0, N * D * sizeof(float));
    for (int i = 0; i < a->n_tgt; i++)
        memcpy(a->dxn + (size_t)a->tgt_row[i] * D, a->dht + (size_t)i * D, D * sizeof(float));
    tm_rmsnorm_backward(a->dx, G + t->off_out_norm, a->dxn, a->x_in + (size_t)c->n_layers * N * D,
                        P + t->off_out_norm, a->rstdf, (int)N, (int)D, 0);

    for (int l = c->n_layers - 1; l >= 0; l--) {
        const tm_layer *y = &t->lay[l];
        float *x = a->x_in + l * N * D, *xn1 = a->xn1 + l * N * D, *q = a->q + l * N * Q, *k = a->k + l * N * KV,
              *v = a->v + l * N * KV, *ao = a->ao + l * N * Q, *xm = a->x_mid + l * N * D, *xn2 = a->xn2 + l * N * D,
              *g = a->g + l * N * F, *u = a->u + l * N * F, *h = a->hsw + l * N * F, *att = a->att + l * a->n_att;
        /* FFN: x_out = x_mid + drop(W2 drop(swiglu(W1 xn2, W3 xn2))); dx holds d/dx_out */
        memcpy(a->tmp, a->dx, N * D * sizeof(float));
        tm_dropout(a->tmp, N * D, p, t->drop_seed, site(t, l, 2));
        tm_linear_backward(a->dh, G + y->w2, a->tmp, h, P + y->w2, (int)N, (int)F, (int)D, 0);
        tm_dropout(a->dh, N * F, p, t->drop_seed, site(t, l, 1));
        tm_swiglu_backward(a->dg, a->du, a->dh, g, u, N * F);
        tm_linear_backward(a->dxn, G + y->w1, a->dg, xn2, P + y->w1, (int)N, (int)D, (int)F, 0);
        tm_linear_backward(a->dxn, G + y->w3, a->du, xn2, P + y->w3, (int)N, (int)D, (int)F, 1);
        tm_rmsnorm_backward(a->dx, G + y->ffn_norm, a->dxn, xm, P + y->ffn_norm, a->rstd2 + l * N, (int)N, (int)D, 1);
        /* attention: x_mid = x + drop(Wo attn(rope(Wq xn1), rope(Wk xn1), Wv xn1)) */
        memcpy(a->tmp, a->dx, N * D * sizeof(float));
        tm_dropout(a->tmp, N * D, p, t->drop_seed, site(t, l, 0));
        tm_linear_backward(a->dao, G + y->wo, a->tmp, ao, P + y->wo, (int)N, (int)Q, (int)D, 0);
#pragma omp parallel for schedule(dynamic, 1) if (b->n_seq > 1)
        for (int s = 0; s < b->n_seq; s++) {
            size_t o = (size_t)b->seq_off[s];
            int T = b->seq_off[s + 1] - b->seq_off[s];
            tm_attention_backward(a->dq + o * Q, a->dk + o * KV, a->dv + o * KV, a->dao + o * Q, att + a->att_off[s],
                                  q + o * Q, k + o * KV, v + o * KV, a->vis ? a->vis + o : NULL, T, c->n_heads,
                                  c->n_kv_heads, c->head_dim, c->attn);
        }
        /* rotations are orthogonal: the backward of R_p is R_p^T */
        lrgd_rope(a->dq, (int)N, c->n_heads, c->head_dim, 0, a->pos, c->rope_base, c->rope_type, -1);
        lrgd_rope(a->dk, (int)N, c->n_kv_heads, c->head_dim, 0, a->pos, c->rope_base, c->rope_type, -1);
        tm_linear_backward(a->dxn, G + y->wq, a->dq, xn1, P + y->wq, (int)N, (int)D, (int)Q, 0);
        tm_linear_backward(a->dxn, G + y->wk, a->dk, xn1, P + y->wk, (int)N, (int)D, (int)KV, 1);
        tm_linear_backward(a->dxn, G + y->wv, a->dv, xn1, P + y->wv, (int)N, (int)D, (int)KV, 1);
        tm_rmsnorm_backward(a->dx, G + y->attn_norm, a->dxn, x, P + y->attn_norm, a->rstd1 + l * N, (int)N, (int)D, 1);
    }
    /* input embeddings (before dropout) */
    tm_dropout(a->dx, N * D, p, t->drop_seed, site(t, -1, 2));
    if (d_embd) memcpy(d_embd, a->dx, N * D * sizeof(float));
    if (!b->embd) tm_embed_backward(G + t->off_tok, a->dx, b->tokens, (int)N, (int)D);
    return LRGD_OK;
}

void lrgd_tmodel_item_scores(lrgd_tmodel *t, const float *hidden, int n, float *out)
{
    int D = t->cfg.dim;
    int blas = tm_blas_single_begin();
    tm_gemm(0, 1, n, t->n_items, D, 1.0f, hidden, D, t->params + t->off_tok + (size_t)LRGD_N_SPECIAL * D, D, 0.0f,
            out, t->n_items);
    tm_blas_single_end(blas);
}

int tm_first_nonfinite_layer(const lrgd_tmodel *t)
{
    const tm_acts *a = &t->a;
    const lrgd_config *c = &t->cfg;
    size_t N = (size_t)a->n_tok, D = (size_t)c->dim;
    for (int l = 0; l <= c->n_layers; l++) {
        const float *x = a->x_in + l * N * D;
        for (size_t i = 0; i < N * D; i++)
            if (!isfinite(x[i])) return l - 1; /* x_in[l] leaves layer l-1 (x_in[0]: the embedding) */
    }
    for (size_t i = 0; i < N * D; i++)
        if (!isfinite(a->xf[i])) return c->n_layers;
    return -2;
}
