/* The Effect_D engine: one model, one KV cache with T kept at its front, the
 * hook that copies what probes and stores need, and prompt tokens. */
#include "effect/effect_impl.h"
#include "train/train_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static lrgd_status capture_hook(void *user, const lrgd_hook_layer *h);

/* What both paths share: the state with T cached, the buffers. logit_rows:
 * rows of logits kept (the item path: every row; the text path grows them
 * to the target's length on demand). */
static lrgd_status effect_init(lrgd_effect *e, const lrgd_model *m, int logit_rows)
{
    e->m = m;
    e->c = m->cfg;
    lrgd_status st = lrgd_state_new(m, e->c.seq_len, e->c.seq_len, &e->st);
    size_t V = (size_t)e->c.vocab_size;
    if (st == LRGD_OK) {
        st = ef_logits_reserve(e, logit_rows);
        e->instr_logits = lrgd_alloc_n(V, sizeof(float));
        e->w32 = calloc((size_t)e->c.n_layers * 8 + 1, sizeof *e->w32);
        size_t nb = 8 * (size_t)(e->c.dim + e->c.hidden_dim + e->c.n_heads * e->c.head_dim) + V;
        e->b_buf = lrgd_alloc_n(nb, sizeof(float));
        e->tok_buf = malloc((size_t)e->c.seq_len * sizeof *e->tok_buf);
        e->embd_buf = lrgd_alloc_n((size_t)e->c.seq_len * e->c.dim, sizeof(float));
        if (st == LRGD_OK && (!e->instr_logits || !e->w32 || !e->b_buf || !e->tok_buf || !e->embd_buf))
            st = lrgd_fail(LRGD_E_NOMEM, "effect: out of memory");
    }
    /* T may be empty on the text path (a vocabulary that adds no BOS) */
    if (st == LRGD_OK && e->n_instr > 0) st = lrgd_eval(e->st, e->instr, e->n_instr, e->instr_logits, 0);
    return st;
}

lrgd_status lrgd_effect_new(const lrgd_model *m, lrgd_effect **out)
{
    if (!out) return lrgd_fail(LRGD_E_INVALID, "lrgd_effect_new: out is NULL");
    *out = NULL;
    if (!m) return lrgd_fail(LRGD_E_INVALID, "lrgd_effect_new: model is NULL");
    lrgd_prompt_vocab v;
    lrgd_status st = lrgd_prompt_vocab_of(m, &v);
    if (st == LRGD_E_UNSUPPORTED)
        return lrgd_fail(LRGD_E_UNSUPPORTED, "effect: the model has no item vocabulary; a text LLM scores "
                                             "demonstrations through its item texts (lrgd_effect_new_data or "
                                             "lrgd_effect_new_text)");
    LRGD_TRY(st);
    lrgd_effect *e = calloc(1, sizeof *e);
    if (!e) return lrgd_fail(LRGD_E_NOMEM, "effect: out of memory");
    e->v = v;
    e->instr[0] = v.bos;
    e->n_instr = 1;
    st = effect_init(e, m, m->cfg.seq_len);
    if (st != LRGD_OK) {
        lrgd_effect_free(e);
        return st;
    }
    *out = e;
    return LRGD_OK;
}

lrgd_status lrgd_effect_new_text(lrgd_textrec *tr, lrgd_effect **out)
{
    if (!out) return lrgd_fail(LRGD_E_INVALID, "lrgd_effect_new_text: out is NULL");
    *out = NULL;
    if (!tr) return lrgd_fail(LRGD_E_INVALID, "lrgd_effect_new_text: textrec is NULL");
    const lrgd_tokenizer *tok = lrgd_textrec_tokenizer(tr);
    lrgd_effect *e = calloc(1, sizeof *e);
    if (!e) return lrgd_fail(LRGD_E_NOMEM, "effect: out of memory");
    e->tr = tr;
    /* no item tokens: every range check of the item path fails closed */
    e->v = (lrgd_prompt_vocab){-1, -1, -1, 0, 0};
    /* T as the textrec's prompts begin (lrgd/textrec.h) */
    if (lrgd_tokenizer_add_bos(tok) && lrgd_tokenizer_bos(tok) >= 0) e->instr[e->n_instr++] = lrgd_tokenizer_bos(tok);
    lrgd_status st = effect_init(e, lrgd_textrec_model(tr), 1);
    if (st != LRGD_OK) {
        lrgd_effect_free(e);
        return st;
    }
    *out = e;
    return LRGD_OK;
}

lrgd_status lrgd_effect_new_data(const lrgd_model *m, const lrgd_dataset *ds, lrgd_effect **out)
{
    if (!out) return lrgd_fail(LRGD_E_INVALID, "lrgd_effect_new_data: out is NULL");
    *out = NULL;
    if (!m || !ds) return lrgd_fail(LRGD_E_INVALID, "lrgd_effect_new_data: NULL model or dataset");
    if (m->rec.n_items > 0) {
        LRGD_TRY(lrgd_model_check_items(m, ds));
        return lrgd_effect_new(m, out);
    }
    lrgd_tokenizer *tok = NULL;
    lrgd_textrec *tr = NULL;
    lrgd_status st = lrgd_tokenizer_from_model(m, &tok);
    if (st != LRGD_OK) {
        return lrgd_fail_wrap(st, "the model has neither an item vocabulary (lrgd.* keys) nor a tokenizer for "
                                  "item texts");
    }
    /* Half the context for the query and the target's text, the other half
     * for the demonstrations inserted before it: each probe's query (with
     * the longest candidate) and each demonstration fits in its half, so
     * [T | d | Q | target] always fits. All history items that fit: the
     * callers cap histories (max_hist, demo_hist). */
    lrgd_textrec_opts o;
    lrgd_textrec_opts_init(&o);
    o.max_hist = 0;
    o.n_ctx = m->cfg.seq_len / 2;
    st = lrgd_textrec_new(m, tok, ds, &o, &tr);
    if (st == LRGD_OK) st = lrgd_effect_new_text(tr, out);
    if (st != LRGD_OK) {
        lrgd_textrec_free(tr);
        lrgd_tokenizer_free(tok);
        return st;
    }
    (*out)->own_tr = tr;
    (*out)->own_tok = tok;
    return LRGD_OK;
}

lrgd_status ef_logits_reserve(lrgd_effect *e, int rows)
{
    if (rows <= e->logit_rows) return LRGD_OK;
    float *l = lrgd_alloc_n((size_t)rows * (size_t)e->c.vocab_size, sizeof(float));
    if (!l) return lrgd_fail(LRGD_E_NOMEM, "effect: out of memory for %d rows of logits", rows);
    lrgd_free(e->logits);
    e->logits = l;
    e->logit_rows = rows;
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
    lrgd_textrec_free(e->own_tr);
    lrgd_tokenizer_free(e->own_tok);
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
const lrgd_prompt_vocab *lrgd_effect_vocab(const lrgd_effect *e) { return e->tr ? NULL : &e->v; }
lrgd_textrec *lrgd_effect_textrec(const lrgd_effect *e) { return e->tr; }
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
        /* keep rows r0 .. row_last (r0 = row_last - n + 1); they may span
         * batches: the text path runs its target rows as a batch of their own */
        int m = c->n, H = h->n_heads, r0 = c->row_last - m + 1;
        int lo = h->pos0 > r0 ? h->pos0 : r0, hi = last < c->row_last ? last : c->row_last;
        if (lo <= hi) {
            size_t i0 = (size_t)(lo - h->pos0), r = (size_t)(lo - r0), k = (size_t)(hi - lo + 1);
            memcpy(c->x_in + ((size_t)l * m + r) * D, h->x_in + i0 * D, k * D * sizeof(float));
            memcpy(c->q + ((size_t)l * m + r) * Qd, h->q + i0 * Qd, k * Qd * sizeof(float));
            memcpy(c->att_out + ((size_t)l * m + r) * Qd, h->att_out + i0 * Qd, k * Qd * sizeof(float));
            memcpy(c->mid + ((size_t)l * m + r) * D, h->x_mid + i0 * D, k * D * sizeof(float));
            memcpy(c->xn2 + ((size_t)l * m + r) * D, h->x_ffn_norm + i0 * D, k * D * sizeof(float));
            for (size_t j = 0; j < k; j++)
                for (int hh = 0; hh < H; hh++)
                    c->lse[((size_t)l * m + r + j) * H + hh] =
                        h->att_lse ? h->att_lse[(size_t)hh * h->n + i0 + j] : 0.0f;
            if (l == e->c.n_layers - 1) memcpy(c->x_last + r * D, h->x_out + i0 * D, k * D * sizeof(float));
        }
        if (last != c->row_last) return LRGD_OK; /* K/V once the cache holds every row */
        size_t rows = (size_t)c->row_last + 1;
        memcpy(c->k + (size_t)l * rows * KV, h->k_cache, rows * KV * sizeof(float));
        memcpy(c->v + (size_t)l * rows * KV, h->v_cache, rows * KV * sizeof(float));
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

/* Tokens (or T + embedding rows) after the cached T; the last n_tail rows
 * (0: none) run as a batch of their own. */
static lrgd_status eval_after(lrgd_effect *e, const int *tokens, const float *embd, int n, int n_tail, float *logits,
                              int all)
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
    int head = n - e->n_instr - n_tail;
    lrgd_status st = LRGD_OK;
    if (n_tail == 0)
        st = embd ? lrgd_eval_embd(e->st, embd, head, logits, all) : lrgd_eval(e->st, tokens + e->n_instr, head, logits, all);
    else {
        if (head > 0) st = lrgd_eval(e->st, tokens + e->n_instr, head, NULL, 0);
        if (st == LRGD_OK) st = lrgd_eval(e->st, tokens + n - n_tail, n_tail, logits, all);
    }
    if (e->cap.mode) lrgd_state_set_hook(e->st, NULL, NULL, 0);
    e->cap.mode = 0;
    return st;
}

lrgd_status ef_eval_after_instr(lrgd_effect *e, const int *tokens, const float *embd, int n, float *logits, int all)
{
    return eval_after(e, tokens, embd, n, 0, logits, all);
}

lrgd_status ef_eval_tail(lrgd_effect *e, const int *tokens, int n, int n_tail)
{
    if (n_tail < 1 || n_tail > n - e->n_instr)
        return lrgd_fail(LRGD_E_INVALID, "effect: %d target rows in a prompt of %d tokens", n_tail, n);
    lrgd_status st = ef_logits_reserve(e, n_tail);
    if (st != LRGD_OK) {
        e->cap.mode = 0;
        return st;
    }
    return eval_after(e, tokens, NULL, n, n_tail, e->logits, 1);
}

double ef_text_logp(const lrgd_effect *e, const int *c, int k)
{
    int V = e->c.vocab_size;
    double lp = 0;
    for (int j = 0; j < k; j++) {
        const float *row = e->logits + (size_t)j * V;
        float mx = row[0];
        for (int i = 1; i < V; i++) mx = row[i] > mx ? row[i] : mx;
        double z = 0;
        for (int i = 0; i < V; i++) z += exp((double)row[i] - mx);
        lp += (double)row[c[j]] - mx - log(z);
    }
    return lp;
}

/* log softmax over the items at y: float exponentials (tm_expf, relative
 * error ~2e-7, vectorized) summed in double, 64 at a time: 4.5 us over
 * Beauty's 12,101 items where a double exp per item took 40 us (~5% of a
 * forward pass); the two differ by ~2e-8. */
double ef_item_logp(const lrgd_effect *e, const float *logits, int y_tok)
{
    const float *it = logits + e->v.n_special;
    int n = e->v.n_items;
    float mx = it[0];
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < n; j++) mx = it[j] > mx ? it[j] : mx;
    double s = 0;
    for (int j0 = 0; j0 < n; j0 += 64) {
        int j1 = j0 + 64 < n ? j0 + 64 : n;
        float part = 0;
#pragma omp simd reduction(+ : part)
        for (int j = j0; j < j1; j++) part += tm_expf(it[j] - mx);
        s += part;
    }
    return (double)logits[y_tok] - mx - log(s);
}

/* The text path's evaluated sequence: tokens[0..n) then the target's
 * continuation but its last token (row t + j predicts c_j). */
static lrgd_status text_target(lrgd_effect *e, int32_t y, const int **c, int *k)
{
    LRGD_TRY(lrgd_textrec_cand_tokens(e->tr, y, c, k));
    if (*k < 1) return lrgd_fail(LRGD_E_INVALID, "effect: item %d has no text tokens", y);
    return LRGD_OK;
}

lrgd_status lrgd_effect_logp(lrgd_effect *e, const int *tokens, int n, int32_t y, double *logp)
{
    if (e->tr) {
        const int *c;
        int k;
        LRGD_TRY(text_target(e, y, &c, &k));
        if (n < 1 || n > e->c.seq_len - (k - 1))
            return lrgd_fail(LRGD_E_INVALID, "effect: prompt of %d tokens and a target of %d exceed the model's "
                                             "context of %d", n, k, e->c.seq_len);
        int *buf = e->tok_buf;
        memmove(buf, tokens, (size_t)n * sizeof *buf);
        memcpy(buf + n, c, (size_t)(k - 1) * sizeof *buf);
        e->cap.mode = 0;
        LRGD_TRY(ef_eval_tail(e, buf, n + k - 1, k));
        *logp = ef_text_logp(e, c, k);
    } else {
        if (y < 0 || y >= e->v.n_items)
            return lrgd_fail(LRGD_E_INVALID, "effect: target item %d outside 0..%d", y, e->v.n_items - 1);
        e->cap.mode = 0;
        LRGD_TRY(ef_eval_after_instr(e, tokens, NULL, n, e->logits, 0));
        *logp = ef_item_logp(e, e->logits, e->v.n_special + y);
    }
    if (!isfinite(*logp)) return lrgd_fail(LRGD_E_NUMERIC, "effect: log p(y) is not finite");
    return LRGD_OK;
}

lrgd_status ef_text_target(lrgd_effect *e, int32_t y, const int **c, int *k) { return text_target(e, y, c, k); }

/* Copy the segment of a textrec prompt that holds what was asked for (the
 * one demonstration, or the query), after checking that the prompt starts
 * with this engine's T. */
static lrgd_status take_segment(const lrgd_effect *e, const lrgd_prompt *p, lrgd_seg_kind kind, int *tok, int *n)
{
    int t_len = p->n_segs > 0 && p->segs[0].kind == LRGD_SEG_T ? p->segs[0].end : 0;
    if (t_len != e->n_instr || memcmp(p->tokens, e->instr, (size_t)t_len * sizeof(int)))
        return lrgd_fail(LRGD_E_RUNTIME, "effect: the textrec's prompts do not begin with the engine's T");
    for (int s = 0; s < p->n_segs; s++)
        if (p->segs[s].kind == kind) {
            *n = p->segs[s].end - p->segs[s].begin;
            memcpy(tok, p->tokens + p->segs[s].begin, (size_t)*n * sizeof *tok);
            return LRGD_OK;
        }
    return lrgd_fail(LRGD_E_RUNTIME, "effect: the textrec's prompt lacks a segment");
}

lrgd_status lrgd_effect_demo_tokens(lrgd_effect *e, const lrgd_demo *d, int max_hist, int *tok, int *n)
{
    if (!e->tr) return lrgd_demo_tokens(&e->v, d, max_hist, tok, n);
    if (d->n_hist < 1) return lrgd_fail(LRGD_E_INVALID, "demonstration: empty history");
    int nh = max_hist > 0 && d->n_hist > max_hist ? max_hist : d->n_hist;
    lrgd_demo dd = {d->hist + (d->n_hist - nh), nh, d->next};
    lrgd_prompt *p = NULL;
    /* the demonstration as the first segment after T (a one-item query behind it) */
    LRGD_TRY(lrgd_textrec_prompt(e->tr, &dd, 1, &dd.next, 1, &p));
    lrgd_status st = take_segment(e, p, LRGD_SEG_D, tok, n);
    lrgd_prompt_free(p);
    return st;
}

lrgd_status lrgd_effect_query_tokens(lrgd_effect *e, const int32_t *hist, int n_hist, int max_hist, int *tok, int *n)
{
    if (!e->tr) return lrgd_query_tokens(&e->v, hist, n_hist, max_hist, tok, n);
    if (n_hist < 1) return lrgd_fail(LRGD_E_INVALID, "query: empty history");
    int nh = max_hist > 0 && n_hist > max_hist ? max_hist : n_hist;
    lrgd_prompt *p = NULL;
    LRGD_TRY(lrgd_textrec_prompt(e->tr, NULL, 0, hist + (n_hist - nh), nh, &p));
    lrgd_status st = take_segment(e, p, LRGD_SEG_Q, tok, n);
    lrgd_prompt_free(p);
    return st;
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
