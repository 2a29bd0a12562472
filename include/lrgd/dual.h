/* The dual model of every attention head (LRGD.md §1), and the equivalence
 * checks E1-E4.
 *
 * For a prompt [T | D_1..D_m | Q] with answer position t, layer l and head h
 * (kv head h / (n_heads / n_kv_heads)) read from the forward pass
 *   q_t = R_t W_Q x_t,  k_j = R_j W_K x_j,  v_j = W_V x_j,  d = head_dim
 * and define
 *   W_0   = sum_{j in T u Q} v_j k_j^T / sqrt(d)
 *   dW_d  = sum_{i in D_d}   v_i k_i^T / sqrt(d)      (the rotated keys k_i are
 *                                                      the training inputs)
 *   linear attention:  o_t = (W_0 + sum_d dW_d) q_t
 *   softmax, exact:    o_t = (1 - lambda_t) o^{TuQ} + lambda_t o^D,
 *                      lambda_t = Z_D / (Z_D + Z_{TuQ}), Z_S = sum_{j in S} exp(k_j.q_t/sqrt(d)),
 *                      o^S the softmax-weighted mean of v over S;
 *                      o^D = sum_d mu_d o^{D_d}, mu_d = Z_{D_d} / Z_D (demo d's share)
 *   softmax, kernel:   exp(k.q/sqrt(d)) ~ phi(k).phi(q) with r positive random
 *                      features phi(x) = exp(w^T x' - |x'|^2/2)/sqrt(r), x' = x/d^{1/4},
 *                      w ~ N(0, I):  o_t ~ (W_0^phi + dW^phi) phi(q_t) / ((z_0 + dz).phi(q_t))
 *                      (or a lower-variance member of the same unbiased family,
 *                      LRGD_KERNEL_OPRF)
 *   GD reading:        L(W) = -sum_{i in D} v_i^T W k_i / sqrt(d);  W_0 - grad L = W_0 + dW.
 *
 * Everything is computed in double, in product form sum_j v_j (k_j.q): no
 * head_dim x head_dim matrix is built unless LRGD_DUAL_MATRICES asks for it.
 *
 * Checks (relative errors |a - b| / |b|, vectors in the 2-norm, matrices in
 * the Frobenius norm, against the float32 forward pass):
 *   E1 linear-mode model: (W_0 + dW) q equals the attention output;
 *   E2 softmax model: the exact split equals the attention output;
 *   E3 softmax model: the kernel dual's error at each r in opts.features;
 *   E4 W_0 - grad L (gradient by lrgd_gd_grad, its own code) equals W_0 + dW,
 *      for the whole step and for each demonstration alone. */
#ifndef LRGD_DUAL_H
#define LRGD_DUAL_H

#include "lrgd/model.h"
#include "lrgd/prompt.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    LRGD_DUAL_MATRICES = 1,      /* keep W_0, each dW_d and the GD step as explicit matrices */
    LRGD_DUAL_ALL_POSITIONS = 2, /* E1/E2 also at every position p <= t (each with its own causal W_0, dW_d) */
    LRGD_DUAL_GD = 4             /* E4 (builds the matrices, keeps them only with LRGD_DUAL_MATRICES) */
};

#define LRGD_DUAL_MAX_FEATURES 16

/* Random features of the kernel dual. */
typedef enum lrgd_kernel_kind {
    LRGD_KERNEL_PRF = 0, /* phi(x) = exp(w.x' - |x'|^2/2)/sqrt(r) */
    LRGD_KERNEL_OPRF = 1 /* the same family with the variance-minimizing A per head (src/dual/kernel.c) */
} lrgd_kernel_kind;

typedef struct lrgd_dual_opts {
    unsigned flags;
    int n_features;                         /* E3 at features[0..n_features); 0: no kernel dual */
    int features[LRGD_DUAL_MAX_FEATURES];   /* r values, each in 1..2^20 */
    uint64_t seed;                          /* the random features depend only on (seed, stream, layer, r) */
    uint64_t stream;                        /* e.g. the query user's id */
    lrgd_kernel_kind kernel;
} lrgd_dual_opts;

/* One head at the answer position t. Vectors are head_dim doubles. */
typedef struct lrgd_dual_head {
    int layer, head, kv_head, head_dim, n_demos, n_pos; /* n_pos = t + 1 */
    /* inputs (RoPE applied) */
    const float *q;         /* q_t */
    const float *k, *v;     /* k_j at k + j*kv_stride (the training inputs), v_j likewise, j < n_pos */
    int kv_stride;
    const float *o_fwd;     /* the forward pass's attention output at t; NULL when not given */
    const int *demo_of;     /* [n_pos] demonstration of position j, -1 for T u Q */

    /* linear dual */
    double lambda_abs;      /* sum_{j in D} |k_j.q_t| / sum_j |k_j.q_t|: the demonstrations' share of the
                               linear attention's scores (its analogue of lambda_t) */
    double *w0q;            /* W_0 q_t */
    double *dwq;            /* [n_demos][head_dim] dW_d q_t */
    /* softmax, exact split */
    double lambda;          /* lambda_t (0 without demonstrations) */
    double *o_tq, *o_d;     /* o^{TuQ}, o^D */
    double *mu;             /* [n_demos] Z_{D_d} / Z_D */
    double *o_dd;           /* [n_demos][head_dim] o^{D_d} */
    double *o_split;        /* (1 - lambda) o^{TuQ} + lambda o^D */
    /* explicit matrices (LRGD_DUAL_MATRICES), row-major [a][b] = sum v[a] k[b] / sqrt(d) */
    double *w0;             /* [head_dim][head_dim] or NULL */
    double *dw;             /* [n_demos][head_dim][head_dim] or NULL */
    double *w_gd;           /* W_0 - grad L(W_0) (with LRGD_DUAL_GD) or NULL */
    /* kernel dual */
    double *o_phi;          /* [n_features][head_dim] */
    double *lambda_phi;     /* [n_features] the kernel estimate of lambda_t */
    double kernel_a;        /* A of the features (0 for LRGD_KERNEL_PRF) */

    /* errors; NaN where a check does not apply (E1 on softmax, E2/E3 on linear models,
     * anything without o_fwd, E4 without LRGD_DUAL_GD) */
    double e1, e1_pos_max, e1_pos_mean; /* at t; max and mean over positions (t only without ALL_POSITIONS) */
    double e2, e2_pos_max, e2_pos_mean;
    /* max over positions of |dual - o_fwd| / S, S the scale float32 attention is
     * accurate relative to: sum_j (sum_a |k_ja q_a|)/sqrt(d) |v_j| for linear
     * attention, sum_j p_j |v_j| for softmax. The plain relative error can
     * exceed 1e-5 where the forward pass itself is ill-conditioned (e.g. a
     * score k_j.q that cancels to nearly 0 at position 0); this one cannot. */
    double e1_pos_scaled, e2_pos_scaled;
    double e3[LRGD_DUAL_MAX_FEATURES];
    double e4;              /* max over the full step and each demonstration's step */
    double e4_out;          /* linear models: |(W_0 - grad L) q_t - o_fwd| / |o_fwd| */
} lrgd_dual_head;

typedef struct lrgd_dual lrgd_dual;

/* Run the model on the prompt (a fresh cache), read q/k/v/attention output
 * of every layer through the hook, and build every head's dual model. */
lrgd_status lrgd_dual_run(const lrgd_model *m, const lrgd_prompt *p, const lrgd_dual_opts *opts, lrgd_dual **out);

/* The same from arrays (hand-made or captured elsewhere). Layer l's q and
 * att_out hold rows for positions t+1-n_q .. t (n_q = 1: only t; n_q = t+1:
 * every position); k and v hold rows 0..t. Arrays are copied. */
typedef struct lrgd_dual_shape {
    int n_layers, n_heads, n_kv_heads, head_dim;
    lrgd_attn_mode attn;
    int n_q;
} lrgd_dual_shape;
typedef struct lrgd_dual_layer_in {
    const float *q;       /* [n_q][n_heads*head_dim] */
    const float *k, *v;   /* [t+1][n_kv_heads*head_dim] */
    const float *att_out; /* [n_q][n_heads*head_dim] or NULL */
} lrgd_dual_layer_in;
lrgd_status lrgd_dual_from_arrays(const lrgd_dual_shape *shape, const lrgd_prompt *p, const lrgd_dual_layer_in *layers,
                                  const lrgd_dual_opts *opts, lrgd_dual **out);

void lrgd_dual_free(lrgd_dual *d);

const lrgd_dual_shape *lrgd_dual_get_shape(const lrgd_dual *d);
int lrgd_dual_n_demos(const lrgd_dual *d);
int lrgd_dual_ans_pos(const lrgd_dual *d);
const lrgd_dual_head *lrgd_dual_head_at(const lrgd_dual *d, int layer, int head);
/* The forward pass's logits at t (vocab_size floats); NULL from arrays. */
const float *lrgd_dual_logits(const lrgd_dual *d);

/* Multi-layer stacking: rebuild the logits at t from the dual models alone.
 * The answer token's embedding goes through every layer with the attention
 * replaced by the layer's dual model applied to a freshly computed q_t:
 * (W_0 + sum_d dW_d) q_t in linear mode (needs LRGD_DUAL_MATRICES), the exact
 * split in softmax mode; norms, wo, residuals, the SwiGLU FFN and the output
 * layer run as usual. d must come from lrgd_dual_run on the same model.
 * logits: vocab_size floats. */
lrgd_status lrgd_dual_stack_logits(const lrgd_model *m, const lrgd_dual *d, float *logits);

/* ---- the explicit gradient step on the dual linear model ---------------
 * Training pairs (k_i, v_i) for i in rows[0..n): k_i at k + rows[i]*stride.
 *   L(W) = -sum_i v_i^T W k_i / sqrt(d)      (W: d x d row-major, double) */
double lrgd_gd_loss(const double *W, int d, const float *k, const float *v, int stride, const int *rows, int n);
/* G = dL/dW by reverse mode through y_i = W k_i (independent of W: L is linear). */
void lrgd_gd_grad(double *G, int d, const float *k, const float *v, int stride, const int *rows, int n);
/* W1 = W0 - lr * dL/dW. W1 may alias W0. */
lrgd_status lrgd_gd_step(double *W1, const double *W0, double lr, int d, const float *k, const float *v, int stride,
                         const int *rows, int n);

/* Least-squares slope of log(y) against log(x) over the points with x, y > 0
 * (NaN with fewer than two). */
double lrgd_loglog_slope(const double *x, const double *y, int n);

#ifdef __cplusplus
}
#endif

#endif
