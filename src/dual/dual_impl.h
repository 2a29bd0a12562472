/* Internals of the dual-model analysis, shared by dual.c, kernel.c and stack.c. */
#ifndef LRGD_DUAL_IMPL_H
#define LRGD_DUAL_IMPL_H

#include "core/core.h"
#include "lrgd/dual.h"

struct lrgd_dual {
    lrgd_dual_shape sh;
    lrgd_dual_opts opts;
    int n_pos, n_demos, ans_token, vocab;
    int *demo_of;                /* [n_pos] */
    float *q, *att_out;          /* [n_layers][n_q][n_heads*head_dim] (att_out may be NULL) */
    float *k, *v;                /* [n_layers][n_pos][n_kv_heads*head_dim] */
    float *logits;               /* [vocab] from lrgd_dual_run, else NULL */
    lrgd_dual_head *heads;       /* [n_layers][n_heads] */
    double **blocks;             /* one allocation per head */
};

/* Per-head outputs of the dual model applied to one query vector. */
typedef struct dual_out {
    double *w0q, *dwq;           /* linear dual: W_0 q, dW_d q */
    double *o_tq, *o_d, *mu, *o_dd, *o_split;
    double lambda, lambda_abs;
    /* float32 error scales: sum_j (sum_a |k_ja q_a|/sqrt(d)) |v_j| (linear) and
     * sum_j p_j |v_j| (softmax), the magnitudes a float32 evaluation of the
     * attention is accurate relative to */
    double scale_lin, scale_soft;
} dual_out;

/* The dual model of one head applied to q (double[hd]) over keys/values
 * 0..n-1 (k_j at k + j*stride). sc: n doubles of scratch. */
void lrgd_dual_apply(const double *q, const float *k, const float *v, int stride, int n, const int *demo_of,
                     int n_demos, int hd, double *sc, dual_out *o);

/* Random features for the kernel dual: omega [r][hd], N(0, 1), a function of
 * (seed, stream, layer, r index) only. */
lrgd_status lrgd_prf_draw(float *omega, int r, int hd, uint64_t seed, uint64_t stream, int layer, int ri);
/* Kernel dual of one head: o ~ sum_j v_j phi(k_j).phi(q) / sum_j phi(k_j).phi(q).
 * Scratch: la [n] doubles, tf [2r] doubles. Returns lambda^phi in *lambda. */
void lrgd_prf_apply(const double *q, const float *k, const float *v, int stride, int n, const int *demo_of, int hd,
                    const float *omega, int r, double A, double *la, double *tf, double *o, double *lambda);
/* The variance-minimizing A of the optimal positive features for one head
 * (keys 0..n-1 against q); 0 gives the plain features. */
double lrgd_prf_opt_a(const double *q, const float *k, int stride, int n, int hd);

#endif
