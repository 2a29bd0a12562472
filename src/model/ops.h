/* Layer primitives of the Llama architecture, shared by inference (model/),
 * training (train/) and the LRGD analysis (dual/). Row-major; a "row" is one
 * position. Each function is a loop a reader can check against the maths;
 * rows are split across threads, so results do not depend on the thread count. */
#ifndef LRGD_OPS_H
#define LRGD_OPS_H

#include "core/core.h"

/* out[i] = x[i] / rms(x[i]) * w, rms = sqrt(mean(x^2) + eps). rstd[i] = 1/rms
 * is stored when rstd != NULL (the backward pass needs it). out may alias x. */
void lrgd_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int n, int dim, float eps);

/* Rotate each head of x [n][n_heads*head_dim] in place for positions
 * pos[i] (or pos0 + i when pos == NULL). sign = +1 applies R_p, -1 applies
 * R_p^T = R_{-p} (used by the backward pass). Angle of pair j: p * base^(-2j/head_dim). */
void lrgd_rope(float *x, int n, int n_heads, int head_dim, int pos0, const int *pos, float base,
               lrgd_rope_type type, int sign);
/* The same rotation in two steps, so that a batch computes its angles once
 * for q, k and every layer: cs [n][2*head_dim] gets, per element of a head,
 * the cosine and the signed sine that multiply it and its partner
 * (core/kernels.h rope_row); lrgd_rope_apply rotates x [n][n_heads*head_dim]. */
void lrgd_rope_table(float *cs, int n, int head_dim, int pos0, const int *pos, float base, lrgd_rope_type type,
                     int sign);
void lrgd_rope_apply(float *x, int n, int n_heads, int head_dim, const float *cs, lrgd_rope_type type);

/* Causal attention for a batch of n queries at positions pos0..pos0+n-1
 * against keys/values at positions 0..pos0+n-1 (k, v: [pos0+n][n_kv*head_dim]).
 * q: [n][n_heads*head_dim]; out: [n][n_heads*head_dim].
 * softmax: out = sum_j softmax_j(k_j.q/sqrt(d)) v_j
 * linear:  out = sum_j (k_j.q/sqrt(d)) v_j
 * att (optional, [n_heads][n][pos0+n]): the softmax weights, or for linear
 * mode the raw scores; entries above the diagonal are 0. */
void lrgd_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int pos0,
                            int n, int n_heads, int n_kv_heads, int head_dim, lrgd_attn_mode mode);
/* Same, and lse (optional, [n_heads][n]) gets the log of each softmax
 * normalizer, log sum_j exp(k_j.q_i/sqrt(d)) (0 in linear mode). */
void lrgd_attention_forward_lse(float *out, float *att, float *lse, const float *q, const float *k, const float *v,
                                int pos0, int n, int n_heads, int n_kv_heads, int head_dim, lrgd_attn_mode mode);

/* h[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + exp(-x)). */
void lrgd_swiglu_forward(float *h, const float *gate, const float *up, size_t n);

/* In-place softmax of one row; returns log of the normalizer (log-sum-exp). */
double lrgd_softmax_row(float *x, int n);

/* out[i][:] = table[tok[i]][:] for a weight of any dtype. */
void lrgd_embed(float *out, const lrgd_weight *table, const int *tok, int n);

#endif
