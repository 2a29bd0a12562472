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
const float *lrgd_probe_embd_grad(const lrgd_probe *p) { return p->dembd; }

const float *lrgd_probe_grad(const lrgd_probe *p, int layer, int head)
{
    if (layer < 0 || layer >= p->L || head < 0 || head >= p->H) return NULL;
    return p->g + ((size_t)layer * p->H + head) * p->hd;
}

static float rstd_of(const float *x, int D, float eps)
{
    double ss = 0;
    for (int j = 0; j < D; j++) ss += (double)x[j] * x[j];
    return (float)(1.0 / sqrt(ss / D + eps));
}

/* The attention backward of one query row t (the last row) of one layer:
 * given do = dl/do_t, adds dq_t and the gradients of k_t and v_t (the only
 * keys/values of row t itself). Every earlier key/value belongs to a row
 * whose gradient l does not need. */
static void attn_row_backward(const lrgd_config *c, const float *q, const float *K, const float *V, int t,
                              const float *dout, float *dq, float *dk, float *dv, double *sbuf)
{
    int hd = c->head_dim, group = c->n_heads / c->n_kv_heads, KVd = c->n_kv_heads * hd;
    double scale = 1.0 / sqrt((double)hd);
    memset(dq, 0, (size_t)c->n_heads * hd * sizeof(float));
    memset(dk, 0, (size_t)KVd * sizeof(float));
    memset(dv, 0, (size_t)KVd * sizeof(float));
    for (int h = 0; h < c->n_heads; h++) {
        int kh = h / group;
        const float *qh = q + (size_t)h * hd, *doh = dout + (size_t)h * hd;
        double *P = sbuf, *dS = sbuf + (t + 1);
        double mx = -INFINITY;
        for (int j = 0; j <= t; j++) {
            const float *kj = K + (size_t)j * KVd + (size_t)kh * hd;
            double s = 0;
            for (int d = 0; d < hd; d++) s += (double)qh[d] * kj[d];
            P[j] = s * scale;
            if (P[j] > mx) mx = P[j];
        }
        if (c->attn == LRGD_ATTN_SOFTMAX) {
            double z = 0;
            for (int j = 0; j <= t; j++) z += P[j] = exp(P[j] - mx);
            for (int j = 0; j <= t; j++) P[j] /= z;
        }
        double sum = 0;
        for (int j = 0; j <= t; j++) {
            const float *vj = V + (size_t)j * KVd + (size_t)kh * hd;
            double dp = 0;
            for (int d = 0; d < hd; d++) dp += (double)doh[d] * vj[d];
            dS[j] = dp;
            sum += P[j] * dp;
        }
        if (c->attn == LRGD_ATTN_SOFTMAX)
            for (int j = 0; j <= t; j++) dS[j] = P[j] * (dS[j] - sum);
        float *dqh = dq + (size_t)h * hd;
        for (int j = 0; j <= t; j++) {
            const float *kj = K + (size_t)j * KVd + (size_t)kh * hd;
            double s = dS[j] * scale;
            for (int d = 0; d < hd; d++) dqh[d] += (float)(s * kj[d]);
        }
        for (int d = 0; d < hd; d++) {
            dk[(size_t)kh * hd + d] += (float)(dS[t] * scale * qh[d]);
            dv[(size_t)kh * hd + d] += (float)(P[t] * doh[d]);
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

static lrgd_status probe_alloc(const lrgd_config *c, lrgd_probe **out)
{
    lrgd_probe *p = calloc(1, sizeof *p);
    if (!p) return lrgd_fail(LRGD_E_NOMEM, "probe: out of memory");
    size_t LQ = (size_t)c->n_layers * c->n_heads * c->head_dim, LH = (size_t)c->n_layers * c->n_heads;
    p->q = lrgd_alloc_n(LQ, sizeof(float));
    p->g = lrgd_alloc_n(LQ, sizeof(float));
    p->o = lrgd_alloc_n(LQ, sizeof(float));
    p->lse = lrgd_alloc_n(LH, sizeof(float));
    p->go = lrgd_alloc_n(LH, sizeof(double));
    p->dembd = lrgd_alloc_n((size_t)c->dim, sizeof(float));
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
    *out = p;
    return LRGD_OK;
}

static lrgd_status probe_backward(lrgd_effect *e, lrgd_probe *p, int t, int32_t y)
{
    const lrgd_config *c = &e->c;
    const lrgd_model *m = e->m;
    ef_capture *cp = &e->cap;
    int D = c->dim, F = c->hidden_dim, Qd = c->n_heads * c->head_dim, KVd = c->n_kv_heads * c->head_dim,
        V = c->vocab_size, L = c->n_layers;
    float *dx = e->b_buf, *dmid = dx + D, *dxn = dmid + D, *dxf = dxn + D, *gate = dxf + D, *up = gate + F,
          *dh = up + F, *dg = dh + F, *du = dg + F, *dq = du + F, *dout = dq + Qd, *dk = dout + Qd, *dv = dk + Qd,
          *dl = dv + Qd;
    double *sbuf = malloc(2 * (size_t)(t + 1) * sizeof *sbuf);
    if (!sbuf) return lrgd_fail(LRGD_E_NOMEM, "probe: out of memory");

    /* dl/dlogits = softmax over the item tokens - onehot(y); 0 for other tokens */
    const float *lg = e->logits;
    int ns = e->v.n_special, ni = e->v.n_items;
    float mx = lg[ns];
    for (int j = 1; j < ni; j++) mx = lg[ns + j] > mx ? lg[ns + j] : mx;
    double z = 0;
    for (int j = 0; j < ni; j++) z += exp((double)lg[ns + j] - mx);
    memset(dl, 0, (size_t)V * sizeof(float));
    for (int j = 0; j < ni; j++) dl[ns + j] = (float)(exp((double)lg[ns + j] - mx) / z);
    dl[ns + y] -= 1.0f;
    lrgd_status st = ef_wt_vec(e, L * 8, &m->output, dl, dxf, 0);
    float r = rstd_of(cp->x_last, D, c->norm_eps);
    if (st == LRGD_OK) tm_rmsnorm_backward(dx, NULL, dxf, cp->x_last, m->out_norm, &r, 1, D, 0);

    for (int l = L - 1; l >= 0 && st == LRGD_OK; l--) {
        const lrgd_layer *ly = &m->layers[l];
        const float *x_in = cp->x_in + (size_t)l * D, *mid = cp->mid + (size_t)l * D, *xn2 = cp->xn2 + (size_t)l * D;
        /* FFN: x_out = mid + W2 (silu(W1 xn2) * (W3 xn2)), xn2 = rmsnorm(mid) */
        memcpy(dmid, dx, (size_t)D * sizeof(float));
        lrgd_matmul(gate, xn2, &ly->w1, 1, 0);
        lrgd_matmul(up, xn2, &ly->w3, 1, 0);
        if ((st = ef_wt_vec(e, l * 8 + 5, &ly->w2, dx, dh, 0)) != LRGD_OK) break;
        tm_swiglu_backward(dg, du, dh, gate, up, (size_t)F);
        if ((st = ef_wt_vec(e, l * 8 + 4, &ly->w1, dg, dxn, 0)) != LRGD_OK) break;
        if ((st = ef_wt_vec(e, l * 8 + 6, &ly->w3, du, dxn, 1)) != LRGD_OK) break;
        float r2 = rstd_of(mid, D, c->norm_eps);
        tm_rmsnorm_backward(dmid, NULL, dxn, mid, ly->ffn_norm, &r2, 1, D, 1);
        /* attention: mid = x_in + Wo o_t; g^l = dl/do_t */
        if ((st = ef_wt_vec(e, l * 8 + 3, &ly->wo, dmid, dout, 0)) != LRGD_OK) break;
        memcpy(p->g + (size_t)l * Qd, dout, (size_t)Qd * sizeof(float));
        attn_row_backward(c, cp->q + (size_t)l * Qd, cp->k + (size_t)l * (t + 1) * KVd,
                          cp->v + (size_t)l * (t + 1) * KVd, t, dout, dq, dk, dv, sbuf);
        /* q_t and k_t were rotated by R_t: the backward rotates by R_t^T */
        lrgd_rope(dq, 1, c->n_heads, c->head_dim, t, NULL, c->rope_base, c->rope_type, -1);
        lrgd_rope(dk, 1, c->n_kv_heads, c->head_dim, t, NULL, c->rope_base, c->rope_type, -1);
        if ((st = ef_wt_vec(e, l * 8 + 0, &ly->wq, dq, dxn, 0)) != LRGD_OK) break;
        if ((st = ef_wt_vec(e, l * 8 + 1, &ly->wk, dk, dxn, 1)) != LRGD_OK) break;
        if ((st = ef_wt_vec(e, l * 8 + 2, &ly->wv, dv, dxn, 1)) != LRGD_OK) break;
        float r1 = rstd_of(x_in, D, c->norm_eps);
        memcpy(dx, dmid, (size_t)D * sizeof(float));
        tm_rmsnorm_backward(dx, NULL, dxn, x_in, ly->attn_norm, &r1, 1, D, 1);
    }
    if (st == LRGD_OK) memcpy(p->dembd, dx, (size_t)D * sizeof(float));
    free(sbuf);
    return st;
}

lrgd_status lrgd_probe_run(lrgd_effect *e, const int *const *demo_tok, const int *demo_len, int n_demos,
                           const int *query_tok, int n_query, int32_t y, lrgd_probe **out)
{
    *out = NULL;
    const lrgd_config *c = &e->c;
    if (y < 0 || y >= e->v.n_items)
        return lrgd_fail(LRGD_E_INVALID, "probe: target item %d outside 0..%d", y, e->v.n_items - 1);
    if (n_query < 1) return lrgd_fail(LRGD_E_INVALID, "probe: empty query");
    int n = e->n_instr;
    for (int d = 0; d < n_demos; d++) {
        if (demo_len[d] < 1) return lrgd_fail(LRGD_E_INVALID, "probe: demonstration %d is empty", d);
        if (demo_len[d] > c->seq_len - n) goto too_long;
        n += demo_len[d];
    }
    if (n_query > c->seq_len - n) goto too_long;
    n += n_query;
    int *tok = e->tok_buf, k = 0;
    memcpy(tok, e->instr, (size_t)e->n_instr * sizeof(int));
    k = e->n_instr;
    for (int d = 0; d < n_demos; d++) {
        memcpy(tok + k, demo_tok[d], (size_t)demo_len[d] * sizeof(int));
        k += demo_len[d];
    }
    memcpy(tok + k, query_tok, (size_t)n_query * sizeof(int));

    LRGD_TRY(ef_capture_reserve(e, n));
    e->cap.mode = 1;
    e->cap.row_last = n - 1;
    LRGD_TRY(ef_eval_after_instr(e, tok, NULL, n, e->logits, 0));
    if (e->cap.seen != c->n_layers) return lrgd_fail(LRGD_E_RUNTIME, "probe: the hook saw %d of %d layers",
                                                      e->cap.seen, c->n_layers);
    lrgd_probe *p = NULL;
    LRGD_TRY(probe_alloc(c, &p));
    p->n_tokens = n;
    p->ins_pos = e->n_instr;
    p->logp = ef_item_logp(e, e->logits, e->v.n_special + y);
    lrgd_status st = isfinite(p->logp) ? LRGD_OK : lrgd_fail(LRGD_E_NUMERIC, "probe: log p(y) is not finite");
    if (st == LRGD_OK) st = probe_backward(e, p, n - 1, y);
    if (st == LRGD_OK) {
        int Qd = c->n_heads * c->head_dim, H = c->n_heads, hd = c->head_dim;
        memcpy(p->q, e->cap.q, (size_t)c->n_layers * Qd * sizeof(float));
        memcpy(p->o, e->cap.att_out, (size_t)c->n_layers * Qd * sizeof(float));
        memcpy(p->lse, e->cap.lse, (size_t)c->n_layers * H * sizeof(float));
        /* q_t as seen from a demonstration inserted right after T: rotate back by the insertion position */
        for (int l = 0; l < c->n_layers; l++)
            lrgd_rope(p->q + (size_t)l * Qd, 1, H, hd, p->ins_pos, NULL, c->rope_base, c->rope_type, -1);
        for (size_t i = 0; i < (size_t)c->n_layers * H; i++) {
            double s = 0;
            for (int d = 0; d < hd; d++) s += (double)p->g[i * hd + d] * p->o[i * hd + d];
            p->go[i] = s;
            if (!isfinite(s)) st = lrgd_fail(LRGD_E_NUMERIC, "probe: gradient at layer %zu is not finite", i / H);
        }
        /* the user's own implicit model: rows of T and Q */
        int *rows = malloc((size_t)n * sizeof *rows), nr = 0;
        if (!rows) st = lrgd_fail(LRGD_E_NOMEM, "probe: out of memory");
        else {
            for (int j = 0; j < e->n_instr; j++) rows[nr++] = j;
            for (int j = n - n_query; j < n; j++) rows[nr++] = j;
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
