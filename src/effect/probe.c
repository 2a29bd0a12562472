/* Probes: the prompt forward, then the backward pass of l = -log p(y) along
 * the answer row t only.
 *
 * Why one row is enough: l reads the logits of row t; row t is the last row,
 * and under causal attention a row's residual stream feeds only itself and
 * later rows. So dl/d(anything of row t at layer l) flows only through row
 * t's own path: its FFN, its attention output o_t, and its q_t, k_t, v_t
 * (k_t and v_t enter only row t's attention, as the last key and value).
 * The backward below walks that path with the training backward halves
 * (train/layers.c), using one row; g^l = dl/do_t^l falls out at each layer
 * on the way down. */
#include "effect/effect_impl.h"
#include "train/train_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lrgd_probe_free(lrgd_probe *p)
{
    if (!p) return;
    lrgd_free(p->q);
    lrgd_free(p->g);
    lrgd_free(p->o);
    lrgd_free(p->lse);
    lrgd_free(p->go);
    lrgd_free(p->dembd);
    free(p);
}

double lrgd_probe_logp(const lrgd_probe *p) { return p->logp; }
int lrgd_probe_n_tokens(const lrgd_probe *p) { return p->n_tokens; }
double lrgd_probe_w0_norm2(const lrgd_probe *p) { return p->w0_norm2; }
const float *lrgd_probe_embd_grad(const lrgd_probe *p) { return p->dembd + (size_t)(p->n_rows - p->n_tgt) * p->D; }
int lrgd_probe_n_rows(const lrgd_probe *p) { return p->n_rows; }
int lrgd_probe_n_targets(const lrgd_probe *p) { return p->n_tgt; }

const float *lrgd_probe_grad_row(const lrgd_probe *p, int layer, int head, int row)
{
    if (layer < 0 || layer >= p->L || head < 0 || head >= p->H || row < 0 || row >= p->n_rows) return NULL;
    return p->g + (((size_t)layer * p->n_rows + row) * p->H + head) * p->hd;
}

const float *lrgd_probe_grad(const lrgd_probe *p, int layer, int head)
{
    return lrgd_probe_grad_row(p, layer, head, p->n_rows - p->n_tgt);
}

static float rstd_of(const float *x, int D, float eps)
{
    double ss = 0;
    for (int j = 0; j < D; j++) ss += (double)x[j] * x[j];
    return (float)(1.0 / sqrt(ss / D + eps));
}

/* The attention backward of the kept query rows p0..t (p0 = t - m + 1) of
 * one layer: given dout = dl/do for each, writes dq of each and the
 * gradients of the keys/values of the kept rows (earlier rows are fixed
 * context: their gradients are not needed). */
static void attn_rows_backward(const lrgd_config *c, const float *q, const float *K, const float *V, int t, int m,
                               const float *dout, float *dq, float *dk, float *dv, double *sbuf)
{
    int hd = c->head_dim, group = c->n_heads / c->n_kv_heads, KVd = c->n_kv_heads * hd, Qd = c->n_heads * hd;
    int p0 = t - m + 1;
    double scale = 1.0 / sqrt((double)hd);
    memset(dq, 0, (size_t)m * Qd * sizeof(float));
    memset(dk, 0, (size_t)m * KVd * sizeof(float));
    memset(dv, 0, (size_t)m * KVd * sizeof(float));
    for (int r = 0; r < m; r++) {
        int pj = p0 + r;
        for (int h = 0; h < c->n_heads; h++) {
            int kh = h / group;
            const float *qh = q + (size_t)r * Qd + (size_t)h * hd, *doh = dout + (size_t)r * Qd + (size_t)h * hd;
            double *P = sbuf, *dS = sbuf + (t + 1);
            double mx = -INFINITY;
            for (int j = 0; j <= pj; j++) {
                const float *kj = K + (size_t)j * KVd + (size_t)kh * hd;
                double s = 0;
                for (int d = 0; d < hd; d++) s += (double)qh[d] * kj[d];
                P[j] = s * scale;
                if (P[j] > mx) mx = P[j];
            }
            if (c->attn == LRGD_ATTN_SOFTMAX) {
                double z = 0;
                for (int j = 0; j <= pj; j++) z += P[j] = exp(P[j] - mx);
                for (int j = 0; j <= pj; j++) P[j] /= z;
            }
            double sum = 0;
            for (int j = 0; j <= pj; j++) {
                const float *vj = V + (size_t)j * KVd + (size_t)kh * hd;
                double dp = 0;
                for (int d = 0; d < hd; d++) dp += (double)doh[d] * vj[d];
                dS[j] = dp;
                sum += P[j] * dp;
            }
            if (c->attn == LRGD_ATTN_SOFTMAX)
                for (int j = 0; j <= pj; j++) dS[j] = P[j] * (dS[j] - sum);
            float *dqh = dq + (size_t)r * Qd + (size_t)h * hd;
            for (int j = 0; j <= pj; j++) {
                const float *kj = K + (size_t)j * KVd + (size_t)kh * hd;
                double s = dS[j] * scale;
                for (int d = 0; d < hd; d++) dqh[d] += (float)(s * kj[d]);
                if (j < p0) continue;
                float *dkj = dk + (size_t)(j - p0) * KVd + (size_t)kh * hd, *dvj = dv + (size_t)(j - p0) * KVd + (size_t)kh * hd;
                for (int d = 0; d < hd; d++) {
                    dkj[d] += (float)(s * qh[d]);
                    dvj[d] += (float)(P[j] * doh[d]);
                }
            }
        }
    }
}

/* |W_0|_F^2 summed over layers and kv heads, W_0 = sum_{j in rows} v_j k_j^T / sqrt(dh):
 * sum_{i,j} (v_i.v_j)(k_i.k_j) / dh in product form. */
static double w0_norm2(const lrgd_config *c, const float *K, const float *V, int n_rows, const int *rows, int nr)
{
    int hd = c->head_dim, KVd = c->n_kv_heads * hd;
    double tot = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int kh = 0; kh < c->n_kv_heads; kh++)
            for (int a = 0; a < nr; a++)
                for (int b = 0; b < nr; b++) {
                    const float *ka = K + ((size_t)l * n_rows + rows[a]) * KVd + (size_t)kh * hd;
                    const float *kb = K + ((size_t)l * n_rows + rows[b]) * KVd + (size_t)kh * hd;
                    const float *va = V + ((size_t)l * n_rows + rows[a]) * KVd + (size_t)kh * hd;
                    const float *vb = V + ((size_t)l * n_rows + rows[b]) * KVd + (size_t)kh * hd;
                    double kk = 0, vv = 0;
                    for (int d = 0; d < hd; d++) {
                        kk += (double)ka[d] * kb[d];
                        vv += (double)va[d] * vb[d];
                    }
                    tot += kk * vv / hd;
                }
    return tot;
}

static lrgd_status probe_alloc(const lrgd_config *c, int m, lrgd_probe **out)
{
    lrgd_probe *p = calloc(1, sizeof *p);
    if (!p) return lrgd_fail(LRGD_E_NOMEM, "probe: out of memory");
    size_t LQ = (size_t)c->n_layers * m * c->n_heads * c->head_dim, LH = (size_t)c->n_layers * m * c->n_heads;
    p->q = lrgd_alloc_n(LQ, sizeof(float));
    p->g = lrgd_alloc_n(LQ, sizeof(float));
    p->o = lrgd_alloc_n(LQ, sizeof(float));
    p->lse = lrgd_alloc_n(LH, sizeof(float));
    p->go = lrgd_alloc_n(LH, sizeof(double));
    p->dembd = lrgd_alloc_n((size_t)m * c->dim, sizeof(float));
    if (!p->q || !p->g || !p->o || !p->lse || !p->go || !p->dembd) {
        lrgd_probe_free(p);
        return lrgd_fail(LRGD_E_NOMEM, "probe: out of memory");
    }
    p->L = c->n_layers;
    p->H = c->n_heads;
    p->KVH = c->n_kv_heads;
    p->hd = c->head_dim;
    p->D = c->dim;
    p->attn = c->attn;
    p->n_rows = m;
    *out = p;
    return LRGD_OK;
}

/* dy (n rows of `out`) times W (out x in) into dx (n rows of `in`), any dtype */
static lrgd_status wt_rows(lrgd_effect *e, int slot, const lrgd_weight *w, const float *dy, float *dx, int n, int acc)
{
    if (w->type == LRGD_F32) {
        tm_linear_backward(dx, NULL, dy, NULL, w->data, n, w->cols, w->rows, acc);
        return LRGD_OK;
    }
    for (int i = 0; i < n; i++)
        LRGD_TRY(ef_wt_vec(e, slot, w, dy + (size_t)i * w->rows, dx + (size_t)i * w->cols, acc));
    return LRGD_OK;
}

/* The backward pass of l along the kept rows (t - m + 1 .. t); g^l of every
 * kept row lands in p->g. The loss sits on the last n_tgt kept rows: row
 * m - n_tgt + j has -log of the softmax over tokens [lo, hi) at tgt[j]; its
 * logits are row j of e->logits. */
static lrgd_status probe_backward(lrgd_effect *e, lrgd_probe *p, int t, int m, const int *tgt, int n_tgt, int lo,
                                  int hi)
{
    const lrgd_config *c = &e->c;
    const lrgd_model *md = e->m;
    ef_capture *cp = &e->cap;
    int D = c->dim, F = c->hidden_dim, Qd = c->n_heads * c->head_dim, KVd = c->n_kv_heads * c->head_dim,
        V = c->vocab_size, L = c->n_layers;
    size_t mD = (size_t)m * D, mF = (size_t)m * F, mQ = (size_t)m * Qd;
    float *buf = lrgd_alloc_n(4 * mD + 5 * mF + 4 * mQ + (size_t)V + (size_t)D + (size_t)m, sizeof(float));
    double *sbuf = malloc(2 * (size_t)(t + 1) * sizeof *sbuf);
    if (!buf || !sbuf) {
        lrgd_free(buf);
        free(sbuf);
        return lrgd_fail(LRGD_E_NOMEM, "probe: out of memory");
    }
    float *dx = buf, *dmid = dx + mD, *dxn = dmid + mD, *tmp = dxn + mD, *gate = tmp + mD, *up = gate + mF,
          *dh = up + mF, *dg = dh + mF, *du = dg + mF, *dq = du + mF, *dout = dq + mQ, *dk = dout + mQ,
          *dv = dk + mQ, *dl = dv + mQ, *dxf = dl + V, *rs = dxf + D;

    /* dl/dlogits at each target row = softmax over [lo, hi) - onehot(target); 0 for other tokens */
    lrgd_status st = LRGD_OK;
    memset(dx, 0, mD * sizeof(float));
    for (int j = 0; j < n_tgt && st == LRGD_OK; j++) {
        const float *lg = e->logits + (size_t)j * V;
        float mx = lg[lo];
        for (int i = lo + 1; i < hi; i++) mx = lg[i] > mx ? lg[i] : mx;
        double z = 0;
        for (int i = lo; i < hi; i++) z += exp((double)lg[i] - mx);
        memset(dl, 0, (size_t)V * sizeof(float));
        for (int i = lo; i < hi; i++) dl[i] = (float)(exp((double)lg[i] - mx) / z);
        dl[tgt[j]] -= 1.0f;
        st = ef_wt_vec(e, L * 8, &md->output, dl, dxf, 0);
        int row = m - n_tgt + j;
        const float *xl = cp->x_last + (size_t)row * D;
        float r = rstd_of(xl, D, c->norm_eps);
        if (st == LRGD_OK) tm_rmsnorm_backward(dx + (size_t)row * D, NULL, dxf, xl, md->out_norm, &r, 1, D, 0);
    }

    for (int l = L - 1; l >= 0 && st == LRGD_OK; l--) {
        const lrgd_layer *ly = &md->layers[l];
        const float *x_in = cp->x_in + (size_t)l * mD, *mid = cp->mid + (size_t)l * mD, *xn2 = cp->xn2 + (size_t)l * mD;
        /* FFN: x_out = mid + W2 (silu(W1 xn2) * (W3 xn2)), xn2 = rmsnorm(mid) */
        memcpy(dmid, dx, mD * sizeof(float));
        lrgd_matmul(gate, xn2, &ly->w1, m, 0);
        lrgd_matmul(up, xn2, &ly->w3, m, 0);
        if ((st = wt_rows(e, l * 8 + 5, &ly->w2, dx, dh, m, 0)) != LRGD_OK) break;
        tm_swiglu_backward(dg, du, dh, gate, up, mF);
        if ((st = wt_rows(e, l * 8 + 4, &ly->w1, dg, dxn, m, 0)) != LRGD_OK) break;
        if ((st = wt_rows(e, l * 8 + 6, &ly->w3, du, dxn, m, 1)) != LRGD_OK) break;
        for (int i = 0; i < m; i++) rs[i] = rstd_of(mid + (size_t)i * D, D, c->norm_eps);
        tm_rmsnorm_backward(dmid, NULL, dxn, mid, ly->ffn_norm, rs, m, D, 1);
        /* attention: mid = x_in + Wo o; g^l = dl/do */
        if ((st = wt_rows(e, l * 8 + 3, &ly->wo, dmid, dout, m, 0)) != LRGD_OK) break;
        memcpy(p->g + (size_t)l * mQ, dout, mQ * sizeof(float));
        attn_rows_backward(c, cp->q + (size_t)l * mQ, cp->k + (size_t)l * (t + 1) * KVd,
                           cp->v + (size_t)l * (t + 1) * KVd, t, m, dout, dq, dk, dv, sbuf);
        /* q and k of row j were rotated by R_j: the backward rotates by R_j^T */
        lrgd_rope(dq, m, c->n_heads, c->head_dim, t - m + 1, NULL, c->rope_base, c->rope_type, -1);
        lrgd_rope(dk, m, c->n_kv_heads, c->head_dim, t - m + 1, NULL, c->rope_base, c->rope_type, -1);
        if ((st = wt_rows(e, l * 8 + 0, &ly->wq, dq, dxn, m, 0)) != LRGD_OK) break;
        if ((st = wt_rows(e, l * 8 + 1, &ly->wk, dk, dxn, m, 1)) != LRGD_OK) break;
        if ((st = wt_rows(e, l * 8 + 2, &ly->wv, dv, dxn, m, 1)) != LRGD_OK) break;
        for (int i = 0; i < m; i++) rs[i] = rstd_of(x_in + (size_t)i * D, D, c->norm_eps);
        memcpy(dx, dmid, mD * sizeof(float));
        tm_rmsnorm_backward(dx, NULL, dxn, x_in, ly->attn_norm, rs, m, D, 1);
    }
    if (st == LRGD_OK) memcpy(p->dembd, dx, mD * sizeof(float));
    (void)tmp;
    lrgd_free(buf);
    free(sbuf);
    return st;
}

lrgd_status lrgd_probe_run(lrgd_effect *e, const int *const *demo_tok, const int *demo_len, int n_demos,
                           const int *query_tok, int n_query, int32_t y, lrgd_probe **out)
{
    return lrgd_probe_run_ex(e, demo_tok, demo_len, n_demos, query_tok, n_query, y, 0, out);
}

lrgd_status lrgd_probe_run_ex(lrgd_effect *e, const int *const *demo_tok, const int *demo_len, int n_demos,
                              const int *query_tok, int n_query, int32_t y, unsigned flags, lrgd_probe **out)
{
    *out = NULL;
    const lrgd_config *c = &e->c;
    /* the target: one item token, or (text path) the item's continuation c,
     * whose tokens but the last follow the query (row t + j predicts c_j) */
    int item_tok = 0, kc = 1;
    const int *tgt = &item_tok;
    if (e->tr) LRGD_TRY(ef_text_target(e, y, &tgt, &kc));
    else if (y < 0 || y >= e->v.n_items)
        return lrgd_fail(LRGD_E_INVALID, "probe: target item %d outside 0..%d", y, e->v.n_items - 1);
    else item_tok = e->v.n_special + y;
    if (n_query < 1) return lrgd_fail(LRGD_E_INVALID, "probe: empty query");
    int n = e->n_instr;
    for (int d = 0; d < n_demos; d++) {
        if (demo_len[d] < 1) return lrgd_fail(LRGD_E_INVALID, "probe: demonstration %d is empty", d);
        if (demo_len[d] > c->seq_len - n) goto too_long;
        n += demo_len[d];
    }
    if (n_query > c->seq_len - n || kc - 1 > c->seq_len - n - n_query) goto too_long;
    n += n_query + kc - 1;
    int *tok = e->tok_buf, k = 0;
    memcpy(tok, e->instr, (size_t)e->n_instr * sizeof(int));
    k = e->n_instr;
    for (int d = 0; d < n_demos; d++) {
        memcpy(tok + k, demo_tok[d], (size_t)demo_len[d] * sizeof(int));
        k += demo_len[d];
    }
    memcpy(tok + k, query_tok, (size_t)n_query * sizeof(int));
    k += n_query;
    memcpy(tok + k, tgt, (size_t)(kc - 1) * sizeof(int));

    if (flags & ~(unsigned)LRGD_PROBE_ALL_ROWS) return lrgd_fail(LRGD_E_INVALID, "probe: unknown flags 0x%x", flags);
    /* kept rows: every row after the insertion point, or the target rows */
    int m = flags & LRGD_PROBE_ALL_ROWS ? n - e->n_instr : kc;
    LRGD_TRY(ef_capture_reserve(e, n));
    e->cap.mode = 1;
    e->cap.row_last = n - 1;
    e->cap.n = m;
    if (e->tr) LRGD_TRY(ef_eval_tail(e, tok, n, kc));
    else LRGD_TRY(ef_eval_after_instr(e, tok, NULL, n, e->logits, 0));
    if (e->cap.seen != c->n_layers) return lrgd_fail(LRGD_E_RUNTIME, "probe: the hook saw %d of %d layers",
                                                      e->cap.seen, c->n_layers);
    lrgd_probe *p = NULL;
    LRGD_TRY(probe_alloc(c, m, &p));
    p->n_tokens = n;
    p->ins_pos = e->n_instr;
    p->n_tgt = kc;
    p->logp = e->tr ? ef_text_logp(e, tgt, kc) : ef_item_logp(e, e->logits, item_tok);
    lrgd_status st = isfinite(p->logp) ? LRGD_OK : lrgd_fail(LRGD_E_NUMERIC, "probe: log p(y) is not finite");
    if (st == LRGD_OK) {
        if (e->tr) st = probe_backward(e, p, n - 1, m, tgt, kc, 0, c->vocab_size);
        else st = probe_backward(e, p, n - 1, m, tgt, 1, e->v.n_special, e->v.n_special + e->v.n_items);
    }
    if (st == LRGD_OK) {
        int Qd = c->n_heads * c->head_dim, H = c->n_heads, hd = c->head_dim;
        size_t LM = (size_t)c->n_layers * m;
        memcpy(p->q, e->cap.q, LM * Qd * sizeof(float));
        memcpy(p->o, e->cap.att_out, LM * Qd * sizeof(float));
        memcpy(p->lse, e->cap.lse, LM * H * sizeof(float));
        /* q as seen from a demonstration inserted right after T: rotate back by the insertion position */
        for (size_t i = 0; i < LM; i++)
            lrgd_rope(p->q + i * Qd, 1, H, hd, p->ins_pos, NULL, c->rope_base, c->rope_type, -1);
        for (size_t i = 0; i < LM * H; i++) {
            double s = 0;
            for (int d = 0; d < hd; d++) s += (double)p->g[i * hd + d] * p->o[i * hd + d];
            p->go[i] = s;
            if (!isfinite(s)) st = lrgd_fail(LRGD_E_NUMERIC, "probe: gradient at layer %zu is not finite", i / H / m);
        }
        /* the user's own implicit model: rows of T and Q (not the target's tokens after Q) */
        int *rows = malloc((size_t)n * sizeof *rows), nr = 0, q_end = n - (kc - 1);
        if (!rows) st = lrgd_fail(LRGD_E_NOMEM, "probe: out of memory");
        else {
            for (int j = 0; j < e->n_instr; j++) rows[nr++] = j;
            for (int j = q_end - n_query; j < q_end; j++) rows[nr++] = j;
            p->w0_norm2 = w0_norm2(c, e->cap.k, e->cap.v, n, rows, nr);
            free(rows);
        }
    }
    if (st != LRGD_OK) {
        lrgd_probe_free(p);
        return st;
    }
    *out = p;
    return LRGD_OK;
too_long:
    return lrgd_fail(LRGD_E_INVALID, "probe: the prompt exceeds the model's context of %d tokens", c->seq_len);
}
