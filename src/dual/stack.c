/* Multi-layer stacking: the answer position's logits rebuilt from the dual
 * models alone (LRGD.md §1, "many layers").
 *
 * Each layer's W_0 + dW was fixed by the real hidden states of that layer in
 * the forward pass. Here only the answer token travels through the network:
 * at every layer its query is computed afresh from its own residual stream,
 * the attention is replaced by the dual model applied to that query, and
 * the rest of the block (wo, residual, RMSNorm, SwiGLU) runs as usual. If the
 * dual models are right, the logits equal the forward pass's. */
#include "dual/dual_impl.h"

#include "model/model_impl.h"
#include "model/ops.h"

#include <math.h>
#include <string.h>

lrgd_status lrgd_dual_stack_logits(const lrgd_model *m, const lrgd_dual *d, float *logits)
{
    if (!m || !d || !logits) return lrgd_fail(LRGD_E_INVALID, "lrgd_dual_stack_logits: NULL argument");
    const lrgd_config *c = &m->cfg;
    const lrgd_dual_shape *sh = &d->sh;
    if (!d->logits || sh->n_layers != c->n_layers || sh->n_heads != c->n_heads || sh->n_kv_heads != c->n_kv_heads ||
        sh->head_dim != c->head_dim || sh->attn != c->attn || d->vocab != c->vocab_size)
        return lrgd_fail(LRGD_E_INVALID, "dual stacking: the dual models do not come from lrgd_dual_run on this model");
    const int linear = c->attn == LRGD_ATTN_LINEAR;
    if (linear && !(d->opts.flags & LRGD_DUAL_MATRICES))
        return lrgd_fail(LRGD_E_INVALID, "dual stacking of a linear model needs the explicit matrices "
                                         "(LRGD_DUAL_MATRICES)");
    const int D = c->dim, hd = c->head_dim, F = c->hidden_dim, t = d->n_pos - 1, m_d = d->n_demos;
    const size_t qdim = (size_t)c->n_heads * hd, hh = (size_t)hd * hd;
    size_t nd = 4 * (size_t)D + 2 * (size_t)F + qdim, ndd = 2 * (size_t)hd + (size_t)d->n_pos + 4 * hd +
                                                             2 * (size_t)m_d * hd + m_d;
    float *fb = lrgd_alloc_n(nd, sizeof(float));
    double *db = lrgd_alloc_n(ndd, sizeof(double));
    if (!fb || !db) {
        lrgd_free(fb);
        lrgd_free(db);
        return lrgd_fail(LRGD_E_NOMEM, "dual stacking: out of memory");
    }
    float *x = fb, *xn = x + D, *mid = xn + D, *xn2 = mid + D, *g = xn2 + D, *u = g + F, *q = u + F;
    double *qv = db, *ov = qv + hd, *sc = ov + hd, *tmp = sc + d->n_pos;
    float *att = q; /* the attention output overwrites q head by head */

    lrgd_embed(x, &m->tok_embd, &d->ans_token, 1);
    for (int l = 0; l < c->n_layers; l++) {
        const lrgd_layer *L = &m->layers[l];
        lrgd_rmsnorm_forward(xn, NULL, x, L->attn_norm, 1, D, c->norm_eps);
        lrgd_matmul(q, xn, &L->wq, 1, 0);
        lrgd_rope(q, 1, c->n_heads, hd, t, NULL, c->rope_base, c->rope_type, 1);
        for (int h = 0; h < c->n_heads; h++) {
            const lrgd_dual_head *H = &d->heads[(size_t)l * c->n_heads + h];
            for (int a = 0; a < hd; a++) qv[a] = q[(size_t)h * hd + a];
            if (linear) { /* (W_0 + sum_d dW_d) q */
                for (int a = 0; a < hd; a++) {
                    double s = 0;
                    for (int b = 0; b < hd; b++) {
                        double w = H->w0[(size_t)a * hd + b];
                        for (int dd = 0; dd < m_d; dd++) w += H->dw[(size_t)dd * hh + (size_t)a * hd + b];
                        s += w * qv[b];
                    }
                    ov[a] = s;
                }
            } else { /* (1 - lambda) o^{TuQ} + lambda o^D for this query */
                dual_out o;
                o.w0q = tmp;
                o.dwq = o.w0q + hd;
                o.o_tq = o.dwq + (size_t)m_d * hd;
                o.o_d = o.o_tq + hd;
                o.mu = o.o_d + hd;
                o.o_dd = o.mu + m_d;
                o.o_split = ov;
                lrgd_dual_apply(qv, H->k, H->v, H->kv_stride, d->n_pos, H->demo_of, m_d, hd, sc, &o);
            }
            for (int a = 0; a < hd; a++) att[(size_t)h * hd + a] = (float)ov[a];
        }
        memcpy(mid, x, (size_t)D * sizeof(float));
        lrgd_matmul(mid, att, &L->wo, 1, 1);
        lrgd_rmsnorm_forward(xn2, NULL, mid, L->ffn_norm, 1, D, c->norm_eps);
        lrgd_matmul(g, xn2, &L->w1, 1, 0);
        lrgd_matmul(u, xn2, &L->w3, 1, 0);
        lrgd_swiglu_forward(g, g, u, (size_t)F);
        memcpy(x, mid, (size_t)D * sizeof(float));
        lrgd_matmul(x, g, &L->w2, 1, 1);
    }
    lrgd_rmsnorm_forward(xn, NULL, x, m->out_norm, 1, D, c->norm_eps);
    lrgd_matmul(logits, xn, &m->output, 1, 0);
    lrgd_free(fb);
    lrgd_free(db);
    for (int i = 0; i < c->vocab_size; i++)
        if (!isfinite(logits[i]))
            return lrgd_fail(LRGD_E_NUMERIC, "dual stacking: logit %d is not finite", i);
    return LRGD_OK;
}
