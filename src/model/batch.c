/* Many sequences through the model in one pass (batch.h). Layer by layer,
 * with N the batch's tokens and S its sequences:
 *
 *   xn      = RMSNorm(x) * attn_norm                        N rows
 *   k, v    = xn Wk^T, xn Wv^T, RoPE(k)                     N rows
 *   q       = RoPE(xn Wq^T)                 N rows (the last layer: S rows)
 *   a       = attention of q over [prefix k, v | the sequence's own k, v]
 *   x'      = x + a Wo^T                    N rows (the last layer: S rows)
 *   x''     = x' + swiglu(RMSNorm(x') W1^T, RMSNorm(x') W3^T) W2^T
 *
 * the same maths as forward.c; positions continue after the prefix. */
#include "model/batch.h"
#include "model/ops.h"

#include <math.h>
#include <omp.h>
#include <string.h>

struct lrgd_mbatch {
    const lrgd_model *m;
    size_t kvd;
    float *rope_pos;      /* [seq_len][2*head_dim]: RoPE angles of every position, computed once */
    float *cs;            /* [N][2*head_dim]: the batch rows' angles, shared by q, k and every layer */
    /* the prefix: tokens and, per layer, its keys (RoPE applied) and values */
    int n_pre, cap_pre;
    int *pre_tok;
    float *pre_k, *pre_v; /* [L][n_pre][kvd] */
    /* batch scratch, grown on demand */
    int cap_tok, cap_seq;
    size_t cap_att;
    int *pos;             /* [N] position of each row */
    int *last;            /* [S] row of each sequence's last token */
    float *x, *mid, *xn;  /* [N][dim] */
    float *q, *ao;        /* [N][n_heads*hd] */
    float *k, *v;         /* [N][kvd] */
    float *hb, *hb2;      /* [N][hidden] */
    float *ka, *va;       /* [sum over sequences of (n_pre + T_s)][kvd]: attention's keys/values */
    size_t *att_off;      /* [S] where sequence s's keys start in ka/va */
    /* the last non-finite activation: layer, row (of that run), column, value */
    int bad_layer, bad_row, bad_col, bad_last, bad_seq;
    float bad_val;
};

lrgd_status lrgd_mbatch_new(const lrgd_model *m, lrgd_mbatch **out)
{
    *out = NULL;
    if (!m) return lrgd_fail(LRGD_E_INVALID, "lrgd_mbatch_new: model is NULL");
    lrgd_mbatch *b = lrgd_alloc(sizeof *b);
    if (!b) return lrgd_fail(LRGD_E_NOMEM, "batch: out of memory");
    memset(b, 0, sizeof *b);
    b->m = m;
    b->kvd = (size_t)m->cfg.n_kv_heads * (size_t)m->cfg.head_dim;
    const lrgd_config *c = &m->cfg;
    b->rope_pos = lrgd_alloc_n((size_t)c->seq_len * 2 * (size_t)c->head_dim, sizeof(float));
    if (!b->rope_pos) {
        lrgd_free(b);
        return lrgd_fail(LRGD_E_NOMEM, "batch: out of memory");
    }
    lrgd_rope_table(b->rope_pos, c->seq_len, c->head_dim, 0, NULL, c->rope_base, c->rope_type, 1);
    *out = b;
    return LRGD_OK;
}

static void free_scratch(lrgd_mbatch *b)
{
    float **f[] = {&b->x, &b->mid, &b->xn, &b->q, &b->ao, &b->k, &b->v, &b->hb, &b->hb2, &b->cs};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        lrgd_free(*f[i]);
        *f[i] = NULL;
    }
    lrgd_free(b->pos);
    lrgd_free(b->last);
    lrgd_free(b->att_off);
    b->pos = b->last = NULL;
    b->att_off = NULL;
    b->cap_tok = b->cap_seq = 0;
}

void lrgd_mbatch_free(lrgd_mbatch *b)
{
    if (!b) return;
    free_scratch(b);
    lrgd_free(b->ka);
    lrgd_free(b->va);
    lrgd_free(b->pre_tok);
    lrgd_free(b->pre_k);
    lrgd_free(b->pre_v);
    lrgd_free(b->rope_pos);
    lrgd_free(b);
}

int lrgd_mbatch_prefix_len(const lrgd_mbatch *b) { return b->n_pre; }
int lrgd_mbatch_bad_seq(const lrgd_mbatch *b) { return b->bad_seq; }
const int *lrgd_mbatch_prefix(const lrgd_mbatch *b) { return b->pre_tok; }

static lrgd_status reserve(lrgd_mbatch *b, int n_tok, int n_seq)
{
    const lrgd_config *c = &b->m->cfg;
    if (n_tok > b->cap_tok || n_seq > b->cap_seq) {
        int nt = n_tok > b->cap_tok ? n_tok + n_tok / 4 : b->cap_tok, ns = n_seq > b->cap_seq ? n_seq + n_seq / 4 : b->cap_seq;
        free_scratch(b);
        size_t N = (size_t)nt, D = (size_t)c->dim, Qd = (size_t)c->n_heads * c->head_dim, F = (size_t)c->hidden_dim;
        b->x = lrgd_alloc_n(N * D, sizeof(float));
        b->mid = lrgd_alloc_n(N * D, sizeof(float));
        b->xn = lrgd_alloc_n(N * D, sizeof(float));
        b->q = lrgd_alloc_n(N * Qd, sizeof(float));
        b->ao = lrgd_alloc_n(N * Qd, sizeof(float));
        b->k = lrgd_alloc_n(N * b->kvd, sizeof(float));
        b->v = lrgd_alloc_n(N * b->kvd, sizeof(float));
        b->hb = lrgd_alloc_n(N * F, sizeof(float));
        b->hb2 = lrgd_alloc_n(N * F, sizeof(float));
        b->cs = lrgd_alloc_n(N * 2 * (size_t)c->head_dim, sizeof(float));
        b->pos = lrgd_alloc_n(N, sizeof(int));
        b->last = lrgd_alloc_n((size_t)ns, sizeof(int));
        b->att_off = lrgd_alloc_n((size_t)ns + 1, sizeof(size_t));
        if (!b->x || !b->mid || !b->xn || !b->q || !b->ao || !b->k || !b->v || !b->hb || !b->hb2 || !b->cs ||
            !b->pos || !b->last || !b->att_off) {
            free_scratch(b);
            return lrgd_fail(LRGD_E_NOMEM, "batch: out of memory for %d tokens", n_tok);
        }
        b->cap_tok = nt;
        b->cap_seq = ns;
    }
    size_t att = (size_t)n_seq * b->n_pre + (size_t)n_tok;
    if (att > b->cap_att) {
        lrgd_free(b->ka);
        lrgd_free(b->va);
        size_t na = att + att / 4;
        b->ka = lrgd_alloc_n(na * b->kvd, sizeof(float));
        b->va = lrgd_alloc_n(na * b->kvd, sizeof(float));
        b->cap_att = b->ka && b->va ? na : 0;
        if (!b->ka || !b->va) return lrgd_fail(LRGD_E_NOMEM, "batch: out of memory for attention keys");
    }
    return LRGD_OK;
}

/* Where the first non-finite value of rows [n][width] is: 0 when none. */
static int first_nonfinite(const float *x, int n, int width, int *row, int *col, float *val)
{
    size_t N = (size_t)n * (size_t)width;
    int bad = 0;
    for (size_t i = 0; i < N; i++) bad |= !isfinite(x[i]);
    if (!bad) return 0;
    size_t i = 0;
    while (isfinite(x[i])) i++;
    *row = (int)(i / (size_t)width);
    *col = (int)(i % (size_t)width);
    *val = x[i];
    return 1;
}

enum { RUN_SCORE, RUN_PREFIX, RUN_FULL };

/* The layers over the rows of a batch: embeddings in b->x, sequence s at
 * rows off[s]..off[s+1]-1. RUN_SCORE: after the prefix (positions n_pre +
 * 0, 1, ...), the last layer runs its query and everything after it only on
 * each sequence's last row, and out gets their final-norm output.
 * RUN_PREFIX: one sequence from position 0, every row through every layer,
 * keys and values kept in pre_k/pre_v. RUN_FULL: the same without keeping
 * anything (the diagnosis after a non-finite activation). On one, b->bad_*
 * say where (rows as run here: in RUN_SCORE's last layer, row s is
 * sequence s's last row) and LRGD_E_NUMERIC is returned. */
static lrgd_status run_layers(lrgd_mbatch *b, int n_seq, const int *off, int mode, float *out)
{
    const lrgd_model *m = b->m;
    const lrgd_config *c = &m->cfg;
    const int D = c->dim, hd = c->head_dim, F = c->hidden_dim, H = c->n_heads, KVH = c->n_kv_heads, L = c->n_layers;
    const int N = off[n_seq], P = mode == RUN_SCORE ? b->n_pre : 0, Qd = H * hd;
    const size_t kvd = b->kvd;

    for (int s = 0; s < n_seq; s++) {
        for (int r = off[s]; r < off[s + 1]; r++) b->pos[r] = P + r - off[s];
        b->last[s] = off[s + 1] - 1;
    }
    b->att_off[0] = 0;
    for (int s = 0; s < n_seq; s++) b->att_off[s + 1] = b->att_off[s] + (size_t)P + (size_t)(off[s + 1] - off[s]);
    const size_t cw = 2 * (size_t)hd; /* one row of angles */
    for (int r = 0; r < N; r++) memcpy(b->cs + r * cw, b->rope_pos + (size_t)b->pos[r] * cw, cw * sizeof(float));

    float *x = b->x, *mid = b->mid;
    for (int l = 0; l < L; l++) {
        const lrgd_layer *W = &m->layers[l];
        int last_layer = l == L - 1 && mode == RUN_SCORE;
        int nq = last_layer ? n_seq : N; /* rows that go on past the keys and values */

        lrgd_rmsnorm_forward(b->xn, NULL, x, W->attn_norm, N, D, c->norm_eps);
        lrgd_matmul(b->k, b->xn, &W->wk, N, 0);
        lrgd_matmul(b->v, b->xn, &W->wv, N, 0);
        lrgd_rope_apply(b->k, N, KVH, hd, b->cs, c->rope_type);
        if (mode == RUN_PREFIX) {
            memcpy(b->pre_k + (size_t)l * N * kvd, b->k, (size_t)N * kvd * sizeof(float));
            memcpy(b->pre_v + (size_t)l * N * kvd, b->v, (size_t)N * kvd * sizeof(float));
        }
        /* the rows that continue: all, or each sequence's last (gathered to the front) */
        if (last_layer) {
            for (int s = 0; s < n_seq; s++) {
                memmove(b->xn + (size_t)s * D, b->xn + (size_t)b->last[s] * D, (size_t)D * sizeof(float));
                memmove(x + (size_t)s * D, x + (size_t)b->last[s] * D, (size_t)D * sizeof(float));
            }
            for (int s = 0; s < n_seq; s++) /* the last rows' angles to the front (k is rotated already) */
                memcpy(b->cs + s * cw, b->rope_pos + (size_t)(P + off[s + 1] - 1 - off[s]) * cw, cw * sizeof(float));
        }
        lrgd_matmul(b->q, b->xn, &W->wq, nq, 0);
        lrgd_rope_apply(b->q, nq, H, hd, b->cs, c->rope_type);

        /* attention, one sequence at a time (a thread each when there are enough) */
        const float *pk = P ? b->pre_k + (size_t)l * P * kvd : NULL, *pv = P ? b->pre_v + (size_t)l * P * kvd : NULL;
        int par = n_seq >= 2 * lrgd_get_threads();
#pragma omp parallel for schedule(dynamic, 4) if (par)
        for (int s = 0; s < n_seq; s++) {
            int T = off[s + 1] - off[s];
            float *ka = b->ka + b->att_off[s] * kvd, *va = b->va + b->att_off[s] * kvd;
            if (P) {
                memcpy(ka, pk, (size_t)P * kvd * sizeof(float));
                memcpy(va, pv, (size_t)P * kvd * sizeof(float));
            }
            memcpy(ka + (size_t)P * kvd, b->k + (size_t)off[s] * kvd, (size_t)T * kvd * sizeof(float));
            memcpy(va + (size_t)P * kvd, b->v + (size_t)off[s] * kvd, (size_t)T * kvd * sizeof(float));
            if (last_layer)
                lrgd_attention_forward_lse(b->ao + (size_t)s * Qd, NULL, NULL, b->q + (size_t)s * Qd, ka, va,
                                           P + T - 1, 1, H, KVH, hd, c->attn);
            else
                lrgd_attention_forward_lse(b->ao + (size_t)off[s] * Qd, NULL, NULL, b->q + (size_t)off[s] * Qd, ka,
                                           va, P, T, H, KVH, hd, c->attn);
        }
        memcpy(mid, x, (size_t)nq * D * sizeof(float));
        lrgd_matmul(mid, b->ao, &W->wo, nq, 1);

        lrgd_rmsnorm_forward(b->xn, NULL, mid, W->ffn_norm, nq, D, c->norm_eps);
        lrgd_matmul(b->hb, b->xn, &W->w1, nq, 0);
        lrgd_matmul(b->hb2, b->xn, &W->w3, nq, 0);
        lrgd_swiglu_forward(b->hb, b->hb, b->hb2, (size_t)nq * F);
        memcpy(x, mid, (size_t)nq * D * sizeof(float));
        lrgd_matmul(x, b->hb, &W->w2, nq, 1);
        if (first_nonfinite(x, nq, D, &b->bad_row, &b->bad_col, &b->bad_val)) {
            b->bad_layer = l;
            b->bad_last = last_layer;
            return lrgd_fail(LRGD_E_NUMERIC, "non-finite activation at layer %d", l); /* the caller says where */
        }
    }
    if (out) lrgd_rmsnorm_forward(out, NULL, x, m->out_norm, n_seq, D, c->norm_eps);
    return LRGD_OK;
}

static lrgd_status check_tokens(const lrgd_mbatch *b, const int *tok, int n, const char *what)
{
    for (int i = 0; i < n; i++)
        if (tok[i] < 0 || tok[i] >= b->m->cfg.vocab_size)
            return lrgd_fail(LRGD_E_INVALID, "batch: %s token %d has id %d, outside 0..%d", what, i, tok[i],
                             b->m->cfg.vocab_size - 1);
    return LRGD_OK;
}

lrgd_status lrgd_mbatch_set_prefix(lrgd_mbatch *b, const int *tok, int n)
{
    const lrgd_config *c = &b->m->cfg;
    if (n < 0 || n >= c->seq_len)
        return lrgd_fail(LRGD_E_INVALID, "batch: a prefix of %d tokens (the context holds %d)", n, c->seq_len);
    LRGD_TRY(check_tokens(b, tok, n, "prefix"));
    b->n_pre = 0;
    if (n == 0) return LRGD_OK;
    if (n > b->cap_pre) {
        lrgd_free(b->pre_tok);
        lrgd_free(b->pre_k);
        lrgd_free(b->pre_v);
        size_t rows = (size_t)c->n_layers * (size_t)n;
        b->pre_tok = lrgd_alloc_n((size_t)n, sizeof(int));
        b->pre_k = lrgd_alloc_n(rows * b->kvd, sizeof(float));
        b->pre_v = lrgd_alloc_n(rows * b->kvd, sizeof(float));
        b->cap_pre = b->pre_tok && b->pre_k && b->pre_v ? n : 0;
        if (!b->cap_pre) return lrgd_fail(LRGD_E_NOMEM, "batch: out of memory for a prefix of %d tokens", n);
    }
    LRGD_TRY(reserve(b, n, 1));
    int off[2] = {0, n};
    lrgd_embed(b->x, &b->m->tok_embd, tok, n);
    lrgd_status st = run_layers(b, 1, off, RUN_PREFIX, NULL);
    if (st == LRGD_E_NUMERIC) {
        b->bad_seq = -1;
        return lrgd_fail(LRGD_E_NUMERIC, "non-finite activation at layer %d, row %d (position %d of the prefix every "
                         "sequence shares), column %d (%g)", b->bad_layer, b->bad_row, b->bad_row, b->bad_col,
                         (double)b->bad_val);
    }
    LRGD_TRY(st);
    memcpy(b->pre_tok, tok, (size_t)n * sizeof(int));
    b->n_pre = n;
    return LRGD_OK;
}

/* After a non-finite activation in sequence s of a scoring run: run
 * [prefix | sequence s] alone through every row of every layer, to name the
 * first layer and position where it appears (the scoring run skips the last
 * layer's other rows, so it may see it only at the last row). */
static lrgd_status diagnose(lrgd_mbatch *b, int s, const int *off, const int *tok)
{
    int P = b->n_pre, T = off[s + 1] - off[s], layer = b->bad_layer, col = b->bad_col;
    int pos = b->bad_last ? P + T - 1 : P + b->bad_row - off[s];
    float val = b->bad_val;
    int *full = lrgd_alloc_n((size_t)(P + T), sizeof(int)), o2[2] = {0, P + T};
    if (full && reserve(b, P + T, 1) == LRGD_OK) {
        if (P) memcpy(full, b->pre_tok, (size_t)P * sizeof(int)); /* no prefix: pre_tok may be NULL */
        memcpy(full + P, tok + off[s], (size_t)T * sizeof(int));
        lrgd_embed(b->x, &b->m->tok_embd, full, P + T);
        if (run_layers(b, 1, o2, RUN_FULL, NULL) == LRGD_E_NUMERIC) {
            layer = b->bad_layer;
            pos = b->bad_row;
            col = b->bad_col;
            val = b->bad_val;
        }
    }
    lrgd_free(full);
    b->bad_seq = s;
    /* the row in this batch's own rows (a prefix position has none: its position) */
    int row = pos >= P ? off[s] + pos - P : pos;
    return lrgd_fail(LRGD_E_NUMERIC, "non-finite activation at layer %d, row %d (position %d of sequence %d), column %d "
                     "(%g)", layer, row, pos, s, col, (double)val);
}

lrgd_status lrgd_mbatch_last(lrgd_mbatch *b, int n_seq, const int *off, const int *tok, float *out)
{
    const lrgd_config *c = &b->m->cfg;
    if (n_seq < 1) return lrgd_fail(LRGD_E_INVALID, "batch: no sequences");
    if (off[0] != 0) return lrgd_fail(LRGD_E_INVALID, "batch: the first sequence starts at %d, not 0", off[0]);
    for (int s = 0; s < n_seq; s++) {
        int T = off[s + 1] - off[s];
        if (T < 1) return lrgd_fail(LRGD_E_INVALID, "batch: sequence %d is empty", s);
        if (T > c->seq_len - b->n_pre)
            return lrgd_fail(LRGD_E_INVALID, "batch: sequence %d: %d tokens after a prefix of %d exceed the context of %d",
                             s, T, b->n_pre, c->seq_len);
    }
    int N = off[n_seq];
    LRGD_TRY(check_tokens(b, tok, N, "sequence"));
    LRGD_TRY(reserve(b, N, n_seq));
    lrgd_embed(b->x, &b->m->tok_embd, tok, N);
    lrgd_status st = run_layers(b, n_seq, off, RUN_SCORE, out);
    if (st != LRGD_E_NUMERIC) return st;
    int s = 0;
    if (b->bad_last) s = b->bad_row;
    else
        while (off[s + 1] <= b->bad_row) s++;
    return diagnose(b, s, off, tok);
}
