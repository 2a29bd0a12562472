/* The Llama forward pass over a KV cache, with per-layer hooks.
 *
 * One lrgd_state per sequence: the K/V cache of every layer plus scratch for
 * one batch of up to n_batch positions. A batch goes through each layer as
 *
 *   xn  = RMSNorm(x) * attn_norm
 *   q, k, v = xn Wq^T, xn Wk^T, xn Wv^T     (k, v written straight into the cache)
 *   q, k = RoPE(q), RoPE(k)
 *   a   = causal attention of q over cache rows 0..pos0+n-1
 *   x'  = x + a Wo^T
 *   h   = silu(RMSNorm(x') W1^T) * (RMSNorm(x') W3^T)
 *   x'' = x' + h W2^T
 *
 * and ends with logits = RMSNorm(x) * out_norm * Output^T. The residual stream
 * rotates through three buffers so that a hook sees x_in, x_mid and x_out of
 * the same layer without any copy being made for it. */
#include "model/model_impl.h"
#include "model/ops.h"

#include <math.h>
#include <string.h>

struct lrgd_state {
    const lrgd_model *m;
    int n_ctx, n_batch, pos;
    size_t kvd;              /* n_kv_heads * head_dim */
    float *k_cache, *v_cache; /* [n_layers][n_ctx][kvd], RoPE applied to k */

    /* batch scratch, [n_batch][...] */
    float *res[3];           /* residual stream: in, mid, out (rotating) */
    float *xn, *xn2;         /* attention / FFN norm outputs */
    float *q, *att_out;      /* [n_batch][dim] */
    float *hb, *hb2;         /* [n_batch][hidden] gate (then silu(gate)*up), up */
    float *lse;              /* [n_heads][n_batch], filled while a hook is installed */
    float *rope_cs;          /* [n_batch][2*head_dim]: the batch's RoPE angles, shared by q, k, layers */
    float *att;              /* [n_heads][n_batch][n_ctx], only with LRGD_HOOK_ATT */

    lrgd_hook_fn hook;
    void *hook_user;
    unsigned hook_flags;
};

static float *alloc_f32(size_t a, size_t b, lrgd_status *st)
{
    size_t n;
    float *p = NULL;
    if (*st == LRGD_OK && lrgd_mul_ok(a, b, &n)) p = lrgd_alloc_n(n, sizeof(float));
    if (!p && *st == LRGD_OK)
        *st = lrgd_fail(LRGD_E_NOMEM, "state: cannot allocate %zu x %zu floats", a, b);
    return p;
}

lrgd_status lrgd_state_new(const lrgd_model *m, int n_ctx, int n_batch, lrgd_state **out)
{
    if (!out) return lrgd_fail(LRGD_E_INVALID, "lrgd_state_new: out is NULL");
    *out = NULL;
    if (!m) return lrgd_fail(LRGD_E_INVALID, "lrgd_state_new: model is NULL");
    const lrgd_config *c = &m->cfg;
    if (n_ctx <= 0) n_ctx = c->seq_len;
    if (n_ctx > c->seq_len)
        return lrgd_fail(LRGD_E_INVALID, "lrgd_state_new: n_ctx %d exceeds the model's context length %d", n_ctx,
                         c->seq_len);
    if (n_batch <= 0) n_batch = n_ctx < 512 ? n_ctx : 512;
    if (n_batch > n_ctx) n_batch = n_ctx;

    {
        /* up front, so that --max-memory refuses a too long context before anything is allocated */
        double nbd = n_batch, D = c->dim, F = c->hidden_dim, kvd = (double)c->n_kv_heads * c->head_dim;
        lrgd_mem_plan plan = {0};
        lrgd_mem_plan_add(&plan, "KV cache", 2.0 * c->n_layers * n_ctx * kvd * sizeof(float));
        lrgd_mem_plan_add(&plan, "activations", (8 * nbd * D + 2 * nbd * F + nbd * c->n_heads) * sizeof(float));
        char task[96];
        snprintf(task, sizeof task, "an inference state of %d positions", n_ctx);
        LRGD_TRY(lrgd_mem_plan_check(&plan, task));
    }
    lrgd_state *s = lrgd_alloc(sizeof *s);
    if (!s) return lrgd_fail(LRGD_E_NOMEM, "lrgd_state_new: out of memory");
    s->m = m;
    s->n_ctx = n_ctx;
    s->n_batch = n_batch;
    s->kvd = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    size_t nb = (size_t)n_batch, D = (size_t)c->dim, F = (size_t)c->hidden_dim, cache_rows;
    lrgd_status st = LRGD_OK;
    if (!lrgd_mul_ok((size_t)c->n_layers, (size_t)n_ctx, &cache_rows))
        st = lrgd_fail(LRGD_E_NOMEM, "lrgd_state_new: cache size overflows");
    s->k_cache = alloc_f32(cache_rows, s->kvd, &st);
    s->v_cache = alloc_f32(cache_rows, s->kvd, &st);
    for (int i = 0; i < 3; i++) s->res[i] = alloc_f32(nb, D, &st);
    s->xn = alloc_f32(nb, D, &st);
    s->xn2 = alloc_f32(nb, D, &st);
    s->q = alloc_f32(nb, D, &st);
    s->att_out = alloc_f32(nb, D, &st);
    s->hb = alloc_f32(nb, F, &st);
    s->hb2 = alloc_f32(nb, F, &st);
    s->lse = alloc_f32(nb, (size_t)c->n_heads, &st);
    s->rope_cs = alloc_f32(nb, 2 * (size_t)c->head_dim, &st);
    if (st != LRGD_OK) {
        lrgd_state_free(s);
        return st;
    }
    *out = s;
    return LRGD_OK;
}

void lrgd_state_free(lrgd_state *s)
{
    if (!s) return;
    lrgd_free(s->k_cache);
    lrgd_free(s->v_cache);
    for (int i = 0; i < 3; i++) lrgd_free(s->res[i]);
    lrgd_free(s->xn);
    lrgd_free(s->xn2);
    lrgd_free(s->q);
    lrgd_free(s->att_out);
    lrgd_free(s->hb);
    lrgd_free(s->hb2);
    lrgd_free(s->lse);
    lrgd_free(s->rope_cs);
    lrgd_free(s->att);
    lrgd_free(s);
}

int lrgd_state_pos(const lrgd_state *s) { return s ? s->pos : 0; }

lrgd_status lrgd_state_truncate(lrgd_state *s, int n)
{
    if (!s) return lrgd_fail(LRGD_E_INVALID, "lrgd_state_truncate: state is NULL");
    if (n < 0 || n > s->pos)
        return lrgd_fail(LRGD_E_INVALID, "lrgd_state_truncate: n = %d outside 0..%d (the cached positions)", n, s->pos);
    /* Rows >= n are simply overwritten by the next eval. */
    s->pos = n;
    return LRGD_OK;
}

lrgd_status lrgd_state_copy_prefix(lrgd_state *dst, const lrgd_state *src, int n)
{
    if (!dst || !src) return lrgd_fail(LRGD_E_INVALID, "lrgd_state_copy_prefix: state is NULL");
    if (dst->m != src->m) return lrgd_fail(LRGD_E_INVALID, "lrgd_state_copy_prefix: states belong to different models");
    if (n < 0 || n > src->pos)
        return lrgd_fail(LRGD_E_INVALID, "lrgd_state_copy_prefix: n = %d outside 0..%d (positions cached in src)", n,
                         src->pos);
    if (n > dst->n_ctx)
        return lrgd_fail(LRGD_E_INVALID, "lrgd_state_copy_prefix: n = %d exceeds the destination's n_ctx %d", n,
                         dst->n_ctx);
    if (dst != src) {
        size_t bytes = (size_t)n * src->kvd * sizeof(float);
        for (int l = 0; l < src->m->cfg.n_layers; l++) {
            memcpy(dst->k_cache + (size_t)l * dst->n_ctx * dst->kvd, src->k_cache + (size_t)l * src->n_ctx * src->kvd,
                   bytes);
            memcpy(dst->v_cache + (size_t)l * dst->n_ctx * dst->kvd, src->v_cache + (size_t)l * src->n_ctx * src->kvd,
                   bytes);
        }
    }
    dst->pos = n;
    return LRGD_OK;
}

lrgd_status lrgd_state_set_hook(lrgd_state *s, lrgd_hook_fn fn, void *user, unsigned flags)
{
    if (!s) return lrgd_fail(LRGD_E_INVALID, "lrgd_state_set_hook: state is NULL");
    if (flags & ~(unsigned)LRGD_HOOK_ATT) return lrgd_fail(LRGD_E_INVALID, "lrgd_state_set_hook: unknown flags 0x%x", flags);
    if (fn && (flags & LRGD_HOOK_ATT) && !s->att) {
        lrgd_status st = LRGD_OK;
        size_t hb;
        if (!lrgd_mul_ok((size_t)s->m->cfg.n_heads, (size_t)s->n_batch, &hb))
            return lrgd_fail(LRGD_E_NOMEM, "lrgd_state_set_hook: attention matrix size overflows");
        s->att = alloc_f32(hb, (size_t)s->n_ctx, &st);
        if (st != LRGD_OK) return lrgd_fail_wrap(st, "lrgd_state_set_hook: attention matrix");
    }
    if (!fn || !(flags & LRGD_HOOK_ATT)) { /* give the (possibly large) matrix back */
        lrgd_free(s->att);
        s->att = NULL;
    }
    s->hook = fn;
    s->hook_user = fn ? user : NULL;
    s->hook_flags = fn ? flags : 0;
    return LRGD_OK;
}

/* A NaN or Inf in the residual stream (from overflowing but finite weights:
 * non-finite ones are refused when a model is loaded) would turn every later
 * number into NaN and a ranking into noise: stop, naming where it appeared.
 * One pass over n x width floats per layer, small next to the layer's GEMMs. */
static lrgd_status check_finite_rows(const float *x, int n, int width, int pos0, int layer)
{
    size_t N = (size_t)n * (size_t)width;
    int bad = 0;
    for (size_t i = 0; i < N; i++) bad |= !isfinite(x[i]);
    if (!bad) return LRGD_OK;
    size_t i = 0;
    while (isfinite(x[i])) i++;
    char where[40];
    if (layer >= 0) snprintf(where, sizeof where, "layer %d", layer);
    else snprintf(where, sizeof where, "the output (logits)");
    return lrgd_fail(LRGD_E_NUMERIC, "non-finite activation at %s, position %d, column %zu (%g)", where,
                     pos0 + (int)(i / (size_t)width), i % (size_t)width, (double)x[i]);
}

/* One batch of n <= n_batch positions whose input embeddings are already in
 * res[0]. logits: NULL, or n*vocab floats (all) or vocab floats (last row). */
static lrgd_status forward_batch(lrgd_state *s, int n, float *logits, int all_logits)
{
    const lrgd_model *m = s->m;
    const lrgd_config *c = &m->cfg;
    const int pos0 = s->pos, D = c->dim, hd = c->head_dim, F = c->hidden_dim;
    const size_t kvd = s->kvd, nD = (size_t)n * D;
    float *x = s->res[0], *mid = s->res[1], *xo = s->res[2];

    lrgd_rope_table(s->rope_cs, n, hd, pos0, NULL, c->rope_base, c->rope_type, 1);
    for (int l = 0; l < c->n_layers; l++) {
        const lrgd_layer *L = &m->layers[l];
        float *kc = s->k_cache + (size_t)l * s->n_ctx * kvd, *vc = s->v_cache + (size_t)l * s->n_ctx * kvd;
        float *kb = kc + (size_t)pos0 * kvd, *vb = vc + (size_t)pos0 * kvd; /* this batch's rows */

        /* attention block */
        lrgd_rmsnorm_forward(s->xn, NULL, x, L->attn_norm, n, D, c->norm_eps);
        lrgd_matmul(s->q, s->xn, &L->wq, n, 0);
        lrgd_matmul(kb, s->xn, &L->wk, n, 0);
        lrgd_matmul(vb, s->xn, &L->wv, n, 0);
        lrgd_rope_apply(s->q, n, c->n_heads, hd, s->rope_cs, c->rope_type);
        lrgd_rope_apply(kb, n, c->n_kv_heads, hd, s->rope_cs, c->rope_type);
        lrgd_attention_forward_lse(s->att_out, s->hook ? s->att : NULL, s->hook ? s->lse : NULL, s->q, kc, vc, pos0,
                                   n, c->n_heads, c->n_kv_heads, hd, c->attn);
        memcpy(mid, x, nD * sizeof(float));
        lrgd_matmul(mid, s->att_out, &L->wo, n, 1);

        /* feed-forward block */
        lrgd_rmsnorm_forward(s->xn2, NULL, mid, L->ffn_norm, n, D, c->norm_eps);
        lrgd_matmul(s->hb, s->xn2, &L->w1, n, 0);
        lrgd_matmul(s->hb2, s->xn2, &L->w3, n, 0);
        lrgd_swiglu_forward(s->hb, s->hb, s->hb2, (size_t)n * F);
        memcpy(xo, mid, nD * sizeof(float));
        lrgd_matmul(xo, s->hb, &L->w2, n, 1);
        LRGD_TRY(check_finite_rows(xo, n, D, pos0, l));

        if (s->hook) {
            lrgd_hook_layer h = {
                .layer = l, .pos0 = pos0, .n = n,
                .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = hd, .dim = D,
                .x_in = x, .x_norm = s->xn, .q = s->q, .k_cache = kc, .v_cache = vc,
                .att = s->att, .att_out = s->att_out, .x_mid = mid, .x_out = xo,
                .hidden_dim = F, .attn = c->attn,
                .att_lse = c->attn == LRGD_ATTN_SOFTMAX ? s->lse : NULL,
                .x_ffn_norm = s->xn2, .ffn_h = s->hb,
            };
            lrgd_clear_error();
            lrgd_status st = s->hook(s->hook_user, &h);
            if (st != LRGD_OK) {
                if (lrgd_last_error()[0] == 0) return lrgd_fail(st, "hook aborted the forward pass at layer %d", l);
                return lrgd_fail_wrap(st, "hook at layer %d", l);
            }
        }
        float *t = x; /* the output is the next layer's input */
        x = xo;
        xo = t;
    }

    if (logits) {
        const float *xr = all_logits ? x : x + (size_t)(n - 1) * D;
        int rows = all_logits ? n : 1;
        lrgd_rmsnorm_forward(s->xn, NULL, xr, m->out_norm, rows, D, c->norm_eps);
        lrgd_matmul(logits, s->xn, &m->output, rows, 0);
        LRGD_TRY(check_finite_rows(logits, rows, c->vocab_size, all_logits ? pos0 : pos0 + n - 1, -1));
    }
    s->pos += n;
    return LRGD_OK;
}

static lrgd_status eval_common(lrgd_state *s, const int *tokens, const float *embd, int n, float *logits,
                               int all_logits, const char *fn)
{
    if (!s) return lrgd_fail(LRGD_E_INVALID, "%s: state is NULL", fn);
    if (n <= 0) return lrgd_fail(LRGD_E_INVALID, "%s: n = %d, expected at least one position", fn, n);
    if (!tokens && !embd) return lrgd_fail(LRGD_E_INVALID, "%s: input is NULL", fn);
    if (n > s->n_ctx - s->pos)
        return lrgd_fail(LRGD_E_INVALID, "%s: positions %d..%d exceed the context of %d positions", fn, s->pos,
                         s->pos + n - 1, s->n_ctx);
    const lrgd_config *c = &s->m->cfg;
    const size_t D = (size_t)c->dim, V = (size_t)c->vocab_size;
    /* Validate everything before touching the cache. */
    if (tokens) {
        for (int i = 0; i < n; i++)
            if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
                return lrgd_fail(LRGD_E_INVALID, "%s: token at position %d (input index %d) has id %d, outside 0..%d",
                                 fn, s->pos + i, i, tokens[i], c->vocab_size - 1);
    } else {
        for (size_t i = 0; i < (size_t)n * D; i++)
            if (!isfinite(embd[i]))
                return lrgd_fail(LRGD_E_NUMERIC, "%s: embedding of position %d (input index %zu) is not finite at "
                                 "column %zu", fn, s->pos + (int)(i / D), i / D, i % D);
    }

    const int pos_start = s->pos;
    for (int done = 0; done < n;) {
        int nc = n - done < s->n_batch ? n - done : s->n_batch;
        if (tokens) lrgd_embed(s->res[0], &s->m->tok_embd, tokens + done, nc);
        else memcpy(s->res[0], embd + (size_t)done * D, (size_t)nc * D * sizeof(float));
        float *lg = NULL;
        if (logits && all_logits) lg = logits + (size_t)done * V;
        else if (logits && done + nc == n) lg = logits;
        lrgd_status st = forward_batch(s, nc, lg, all_logits);
        if (st != LRGD_OK) {
            s->pos = pos_start;
            return st;
        }
        done += nc;
    }
    return LRGD_OK;
}

lrgd_status lrgd_eval(lrgd_state *s, const int *tokens, int n, float *logits, int all_logits)
{
    return eval_common(s, tokens, NULL, n, logits, all_logits, "lrgd_eval");
}

lrgd_status lrgd_eval_embd(lrgd_state *s, const float *embd, int n, float *logits, int all_logits)
{
    if (!embd && n > 0) return lrgd_fail(LRGD_E_INVALID, "lrgd_eval_embd: embeddings are NULL");
    return eval_common(s, NULL, embd, n, logits, all_logits, "lrgd_eval_embd");
}
