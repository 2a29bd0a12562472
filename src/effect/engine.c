/* The Effect_D engine: one model, one KV cache with T kept at its front, the
 * hook that copies what probes and stores need, and prompt tokens. */
#include "effect/effect_impl.h"
#include "train/train_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static lrgd_status capture_hook(void *user, const lrgd_hook_layer *h);

lrgd_status lrgd_effect_new(const lrgd_model *m, lrgd_effect **out)
{
    if (!out) return lrgd_fail(LRGD_E_INVALID, "lrgd_effect_new: out is NULL");
    *out = NULL;
    if (!m) return lrgd_fail(LRGD_E_INVALID, "lrgd_effect_new: model is NULL");
    lrgd_effect *e = calloc(1, sizeof *e);
    if (!e) return lrgd_fail(LRGD_E_NOMEM, "effect: out of memory");
    e->m = m;
    e->c = m->cfg;
    lrgd_status st = lrgd_prompt_vocab_of(m, &e->v);
    if (st == LRGD_OK) {
        e->instr[0] = e->v.bos;
        e->n_instr = 1;
        st = lrgd_state_new(m, e->c.seq_len, e->c.seq_len, &e->st);
    }
    size_t V = (size_t)e->c.vocab_size;
    if (st == LRGD_OK) {
        e->logits = lrgd_alloc_n((size_t)e->c.seq_len * V, sizeof(float));
        e->instr_logits = lrgd_alloc_n(V, sizeof(float));
        e->w32 = calloc((size_t)e->c.n_layers * 8 + 1, sizeof *e->w32);
        size_t nb = 8 * (size_t)(e->c.dim + e->c.hidden_dim + e->c.n_heads * e->c.head_dim) + V;
        e->b_buf = lrgd_alloc_n(nb, sizeof(float));
        e->tok_buf = malloc((size_t)e->c.seq_len * sizeof *e->tok_buf);
        e->embd_buf = lrgd_alloc_n((size_t)e->c.seq_len * e->c.dim, sizeof(float));
        if (!e->logits || !e->instr_logits || !e->w32 || !e->b_buf || !e->tok_buf || !e->embd_buf)
            st = lrgd_fail(LRGD_E_NOMEM, "effect: out of memory");
    }
    if (st == LRGD_OK) st = lrgd_eval(e->st, e->instr, e->n_instr, e->instr_logits, 0);
    if (st != LRGD_OK) {
        lrgd_effect_free(e);
        return st;
    }
    *out = e;
    return LRGD_OK;
}

void lrgd_effect_free(lrgd_effect *e)
{
    if (!e) return;
    lrgd_state_free(e->st);
    lrgd_free(e->logits);
    lrgd_free(e->instr_logits);
    if (e->w32)
        for (int i = 0; i < e->c.n_layers * 8 + 1; i++) lrgd_free(e->w32[i]);
    free(e->w32);
    lrgd_free(e->b_buf);
    free(e->tok_buf);
    lrgd_free(e->embd_buf);
    ef_capture *c = &e->cap;
    lrgd_free(c->x_in);
    lrgd_free(c->q);
    lrgd_free(c->att_out);
    lrgd_free(c->mid);
    lrgd_free(c->xn2);
    lrgd_free(c->lse);
    lrgd_free(c->x_last);
    lrgd_free(c->k);
    lrgd_free(c->v);
    free(e);
}

const lrgd_model *lrgd_effect_model(const lrgd_effect *e) { return e->m; }
const lrgd_prompt_vocab *lrgd_effect_vocab(const lrgd_effect *e) { return &e->v; }
int lrgd_effect_n_instr(const lrgd_effect *e) { return e->n_instr; }

lrgd_status ef_wt_vec(lrgd_effect *e, int slot, const lrgd_weight *w, const float *dy, float *dx, int accumulate)
{
    const float *W = NULL;
    if (w->type == LRGD_F32) W = w->data;
    else {
        /* a quantized weight: dequantize it once, keep the float copy */
        if (!e->w32[slot]) {
            size_t rb = lrgd_dtype_row_bytes(w->type, (size_t)w->cols);
            float *f = lrgd_alloc_n((size_t)w->rows * w->cols, sizeof(float));
            if (!f) return lrgd_fail(LRGD_E_NOMEM, "effect: out of memory for a float copy of a %dx%d weight",
                                     w->rows, w->cols);
            for (int r = 0; r < w->rows; r++)
                lrgd_dequantize(w->type, (const unsigned char *)w->data + rb * (size_t)r, f + (size_t)r * w->cols,
                                (size_t)w->cols);
            e->w32[slot] = f;
        }
        W = e->w32[slot];
    }
    /* one row of the training backward: dx = dy W (no weight gradient) */
    tm_linear_backward(dx, NULL, dy, NULL, W, 1, w->cols, w->rows, accumulate);
    return LRGD_OK;
}

lrgd_status ef_capture_reserve(lrgd_effect *e, int rows)
{
    ef_capture *c = &e->cap;
    const lrgd_config *g = &e->c;
    size_t L = (size_t)g->n_layers, D = (size_t)g->dim, Qd = (size_t)g->n_heads * g->head_dim,
           KV = (size_t)g->n_kv_heads * g->head_dim, H = (size_t)g->n_heads;
    if ((size_t)rows <= c->cap_rows) return LRGD_OK;
    float **arr[] = {&c->x_in, &c->q, &c->att_out, &c->mid, &c->xn2, &c->lse, &c->x_last, &c->k, &c->v};
    size_t width[] = {L * D, L * Qd, L * Qd, L * D, L * D, L * H, D, L * KV, L * KV};
    for (int i = 0; i < 9; i++) {
        lrgd_free(*arr[i]);
        *arr[i] = lrgd_alloc_n((size_t)rows * width[i], sizeof(float));
    }
    for (int i = 0; i < 9; i++)
        if (!*arr[i]) {
            c->cap_rows = 0;
            return lrgd_fail(LRGD_E_NOMEM, "effect: out of memory for %d captured rows", rows);
        }
    c->cap_rows = (size_t)rows;
    return LRGD_OK;
}

/* Copy what the probe or the store needs. The state runs a prompt in one
 * batch (n_batch = seq_len), so the answer row is the last row of the batch
 * that reaches it. */
static lrgd_status capture_hook(void *user, const lrgd_hook_layer *h)
{
    lrgd_effect *e = user;
    ef_capture *c = &e->cap;
    int l = h->layer, D = h->dim, Qd = h->n_heads * h->head_dim, KV = h->n_kv_heads * h->head_dim;
    int last = h->pos0 + h->n - 1;
    if (c->mode == 1) {
        /* keep rows row_last - n + 1 .. row_last (they are in one batch: n_batch = seq_len) */
        if (last != c->row_last) return LRGD_OK; /* not the batch holding the answer row */
        int m = c->n, i0 = h->n - m, H = h->n_heads;
        if (i0 < 0) return lrgd_fail(LRGD_E_RUNTIME, "effect: the probe's rows span batches");
        memcpy(c->x_in + (size_t)l * m * D, h->x_in + (size_t)i0 * D, (size_t)m * D * sizeof(float));
        memcpy(c->q + (size_t)l * m * Qd, h->q + (size_t)i0 * Qd, (size_t)m * Qd * sizeof(float));
        memcpy(c->att_out + (size_t)l * m * Qd, h->att_out + (size_t)i0 * Qd, (size_t)m * Qd * sizeof(float));
        memcpy(c->mid + (size_t)l * m * D, h->x_mid + (size_t)i0 * D, (size_t)m * D * sizeof(float));
        memcpy(c->xn2 + (size_t)l * m * D, h->x_ffn_norm + (size_t)i0 * D, (size_t)m * D * sizeof(float));
        for (int r = 0; r < m; r++)
            for (int hh = 0; hh < H; hh++)
                c->lse[((size_t)l * m + r) * H + hh] = h->att_lse ? h->att_lse[(size_t)hh * h->n + i0 + r] : 0.0f;
        size_t rows = (size_t)c->row_last + 1;
        memcpy(c->k + (size_t)l * rows * KV, h->k_cache, rows * KV * sizeof(float));
        memcpy(c->v + (size_t)l * rows * KV, h->v_cache, rows * KV * sizeof(float));
        if (l == e->c.n_layers - 1) memcpy(c->x_last, h->x_out + (size_t)i0 * D, (size_t)m * D * sizeof(float));
        c->seen++;
    } else if (c->mode == 2) {
        /* rows row0 .. row0+n-1 may span batches: copy whatever this batch adds */
        for (int i = 0; i < h->n; i++) {
            int p = h->pos0 + i;
            if (p < c->row0 || p >= c->row0 + c->n) continue;
            size_t r = (size_t)(p - c->row0);
            memcpy(c->k + ((size_t)l * c->n + r) * KV, h->k_cache + (size_t)p * KV, (size_t)KV * sizeof(float));
            memcpy(c->v + ((size_t)l * c->n + r) * KV, h->v_cache + (size_t)p * KV, (size_t)KV * sizeof(float));
        }
        c->seen++;
    }
    return LRGD_OK;
}

lrgd_status ef_eval_after_instr(lrgd_effect *e, const int *tokens, const float *embd, int n, float *logits, int all)
{
    if (n <= e->n_instr) return lrgd_fail(LRGD_E_INVALID, "effect: a prompt needs tokens after T");
    if (n > e->c.seq_len)
        return lrgd_fail(LRGD_E_INVALID, "effect: prompt of %d tokens exceeds the model's context of %d", n,
                         e->c.seq_len);
    if (tokens)
        for (int i = 0; i < e->n_instr; i++)
            if (tokens[i] != e->instr[i])
                return lrgd_fail(LRGD_E_INVALID, "effect: prompt token %d is %d, T expects %d", i, tokens[i],
                                 e->instr[i]);
    LRGD_TRY(lrgd_state_truncate(e->st, e->n_instr));
    if (e->cap.mode) LRGD_TRY(lrgd_state_set_hook(e->st, capture_hook, e, 0));
    e->cap.seen = 0;
    lrgd_status st = embd ? lrgd_eval_embd(e->st, embd, n - e->n_instr, logits, all)
                          : lrgd_eval(e->st, tokens + e->n_instr, n - e->n_instr, logits, all);
    if (e->cap.mode) lrgd_state_set_hook(e->st, NULL, NULL, 0);
    e->cap.mode = 0;
    return st;
}

double ef_item_logp(const lrgd_effect *e, const float *logits, int y_tok)
{
    const float *it = logits + e->v.n_special;
    int n = e->v.n_items;
    float mx = it[0];
    for (int j = 1; j < n; j++) mx = it[j] > mx ? it[j] : mx;
    double s = 0;
    for (int j = 0; j < n; j++) s += exp((double)it[j] - mx);
    return (double)logits[y_tok] - mx - log(s);
}

lrgd_status lrgd_effect_logp(lrgd_effect *e, const int *tokens, int n, int32_t y, double *logp)
{
    if (y < 0 || y >= e->v.n_items) return lrgd_fail(LRGD_E_INVALID, "effect: target item %d outside 0..%d", y,
                                                    e->v.n_items - 1);
    e->cap.mode = 0;
    LRGD_TRY(ef_eval_after_instr(e, tokens, NULL, n, e->logits, 0));
    *logp = ef_item_logp(e, e->logits, e->v.n_special + y);
    if (!isfinite(*logp)) return lrgd_fail(LRGD_E_NUMERIC, "effect: log p(y) is not finite");
    return LRGD_OK;
}

lrgd_status lrgd_demo_tokens(const lrgd_prompt_vocab *v, const lrgd_demo *d, int max_hist, int *tok, int *n)
{
    if (d->n_hist < 1) return lrgd_fail(LRGD_E_INVALID, "demonstration: empty history");
    int nh = max_hist > 0 && d->n_hist > max_hist ? max_hist : d->n_hist;
    const int32_t *h = d->hist + (d->n_hist - nh);
    for (int i = 0; i < nh; i++) {
        if (h[i] < 0 || h[i] >= v->n_items)
            return lrgd_fail(LRGD_E_INVALID, "demonstration: item %d outside 0..%d", h[i], v->n_items - 1);
        tok[i] = v->n_special + h[i];
    }
    if (d->next < 0 || d->next >= v->n_items)
        return lrgd_fail(LRGD_E_INVALID, "demonstration: answer item %d outside 0..%d", d->next, v->n_items - 1);
    tok[nh] = v->ans;
    tok[nh + 1] = v->n_special + d->next;
    tok[nh + 2] = v->sep;
    *n = nh + 3;
    return LRGD_OK;
}

lrgd_status lrgd_query_tokens(const lrgd_prompt_vocab *v, const int32_t *hist, int n_hist, int max_hist, int *tok,
                              int *n)
{
    if (n_hist < 1) return lrgd_fail(LRGD_E_INVALID, "query: empty history");
    int nh = max_hist > 0 && n_hist > max_hist ? max_hist : n_hist;
    const int32_t *h = hist + (n_hist - nh);
    for (int i = 0; i < nh; i++) {
        if (h[i] < 0 || h[i] >= v->n_items)
            return lrgd_fail(LRGD_E_INVALID, "query: item %d outside 0..%d", h[i], v->n_items - 1);
        tok[i] = v->n_special + h[i];
    }
    tok[nh] = v->ans;
    *n = nh + 1;
    return LRGD_OK;
}

lrgd_status ef_last_logits(lrgd_effect *e, const int *tokens, const float *embd, int n, const float **logits)
{
    e->cap.mode = 0;
    LRGD_TRY(ef_eval_after_instr(e, tokens, embd, n, e->logits, 0));
    *logits = e->logits;
    return LRGD_OK;
}
