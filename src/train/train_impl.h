/* Internals of the training model: parameter layout, saved activations and
 * the backward halves of the layer primitives (the forward halves live in
 * model/ops.h and are shared with inference). */
#ifndef LRGD_TRAIN_IMPL_H
#define LRGD_TRAIN_IMPL_H

#include "lrgd/train.h"
#include "model/model_impl.h"
#include "model/ops.h"

/* Offsets (in floats) of one layer's tensors in the parameter buffer. */
typedef struct tm_layer {
    size_t attn_norm, wq, wk, wv, wo, ffn_norm, w1, w2, w3;
} tm_layer;

/* Activations of the last forward pass, kept for the backward pass.
 * Per-layer arrays are [n_layers][n_tok][width]; att is per sequence
 * [n_heads][T][T] at att_off[s]. */
typedef struct tm_acts {
    int n_tok, n_seq, n_tgt;
    size_t n_att; /* floats of att per layer */
    int *pos;     /* [n_tok] RoPE position of each row */
    const int *vis; /* NULL (causal) or [n_tok]: row i of a sequence sees rows 0..vis[i] and itself */
    size_t *att_off; /* [n_seq] */
    int *tgt_row; /* [n_tgt] rows with a target */
    int *tgt_tok; /* [n_tgt] their target item index (token - n_special) */
    float *x_in;  /* [L+1][N][D]: residual entering layer l; x_in[L] leaves the last layer */
    float *xn1, *rstd1, *q, *k, *v, *att, *ao, *x_mid, *xn2, *rstd2, *g, *u, *hsw;
    float *xf, *rstdf; /* final norm */
    float *dht;        /* [n_tgt][D] gradient at the target rows (fused classifier) */
    /* backward scratch */
    float *dx, *dxn, *dq, *dk, *dv, *dao, *dg, *du, *dh, *tmp;
    float *logits; /* [chunk][n_items] */
    void *block;
    size_t cap_bytes;
} tm_acts;

struct lrgd_tmodel {
    lrgd_config cfg;
    int n_items;
    size_t n_params;
    float *params, *grads;
    float *m, *v; /* AdamW moments, allocated by the first step */
    size_t off_tok, off_out_norm;
    tm_layer *lay;
    lrgd_tensor_info *tensors;
    char (*names)[48];
    int n_tensors;
    lrgd_model *view;
    float dropout;
    uint64_t drop_seed, step;
    int n_sampled;      /* > 0: sampled softmax with this many negatives while training */
    int fault_layer;    /* test hook: >= 0 poisons this layer's attention output with NaN */
    tm_acts a;
};

#ifndef TM_CE_CHUNK
#define TM_CE_CHUNK 512 /* rows of logits computed at once */
#endif

/* lrgd_tmodel_forward / _grad with an attention layout other than causal:
 * pos [n_tok] the RoPE position of each row (NULL: 0, 1, ... per sequence),
 * vis [n_tok] for row i of a sequence the last row it sees besides itself
 * (NULL: i - 1, causal). The trainer's answer probes use it. */
lrgd_status tm_forward_ex(lrgd_tmodel *t, const lrgd_tbatch *b, const int *pos, const int *vis, int train,
                          double *loss, int *n_targets, float *hidden);
lrgd_status tm_grad_ex(lrgd_tmodel *t, const lrgd_tbatch *b, const int *pos, const int *vis, int train, double *loss,
                       float *d_embd);

/* ---- layer backward passes (forward halves: model/ops.h) ---------------- */

/* Given out = rmsnorm(x) * w and rstd from the forward pass: dx (+)= d/dx,
 * dw += d/dw. accumulate: add into dx instead of overwriting. */
void tm_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                         const float *rstd, int n, int dim, int accumulate);

/* Run OpenBLAS single-threaded until _end (returns the previous count). */
int tm_blas_single_begin(void);
void tm_blas_single_end(int saved);
/* sgemm (row-major, as lrgd_sgemm) split over the OpenMP threads. */
void tm_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc);

/* y[n][out] = x[n][in] W^T and its backward: dx (+)= dy W, dW += dy^T x. */
void tm_linear_forward(float *y, const float *x, const float *w, int n, int in, int out);
void tm_linear_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, int n, int in,
                        int out, int accumulate_dx);

/* Backward of lrgd_attention_forward (vis NULL) or tm_attention_forward_masked
 * for one sequence of T rows. att holds what the forward pass stored
 * (softmax weights, or the scaled raw scores in linear mode). Writes dq, dk,
 * dv (overwrite). */
void tm_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                           const float *k, const float *v, const int *vis, int T, int n_heads, int n_kv_heads,
                           int head_dim, lrgd_attn_mode mode);
/* Attention where row i sees keys 0..vis[i] and itself (see layers.c). */
void tm_attention_forward_masked(float *out, float *att, const float *q, const float *k, const float *v,
                                 const int *vis, int T, int n_heads, int n_kv_heads, int head_dim, lrgd_attn_mode mode);

/* Backward of h = silu(g) * u: dg, du from dh. */
void tm_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n);

/* Embedding backward: dtable[tok[i]] += dx[i] (rows in order: deterministic). */
void tm_embed_backward(float *dtable, const float *dx, const int *tok, int n, int dim);

/* Dropout with hashed masks: x *= keep / (1 - p), keep = hash(seed, site,
 * index) >= p. Applying it to a gradient is its own backward. */
void tm_dropout(float *x, size_t n, float p, uint64_t seed, uint64_t site);

/* Fast exp for x <= 0 (softmax after subtracting the max); relative error
 * ~2e-7, vectorizes. */
static inline float tm_expf(float x)
{
    if (x < -87.0f) x = -87.0f; /* NaN stays NaN (and comes out NaN) */
    /* round to nearest by the 1.5*2^23 trick: plain arithmetic, so it vectorizes */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float f = x - n * 0.693359375f;
    f = f + n * 2.12194440e-4f;
    /* exp(f) on |f| <= ln2/2: Taylor-like minimax polynomial */
    float p = 1.9875691500e-4f;
    p = p * f + 1.3981999507e-3f;
    p = p * f + 8.3334519073e-3f;
    p = p * f + 4.1665795894e-2f;
    p = p * f + 1.6666665459e-1f;
    p = p * f + 5.0000001201e-1f;
    p = p * f * f + f + 1.0f;
    /* 2^n from the bits of 1.5*2^23 + n + 127 (no float-to-int conversion,
     * which would be undefined for a NaN) */
    union { float f; uint32_t u; } m = {.f = n + (12582912.0f + 127.0f)};
    union { uint32_t u; float f; } s = {.u = (m.u - 0x4B400000u) << 23};
    return p * s.f;
}

/* Global L2 norm over fixed chunks (deterministic). */
double tm_grad_norm(const float *g, size_t n);
lrgd_status tm_adamw_init(lrgd_tmodel *t);

/* ---- packed episodes (episodes.c) ------------------------------------------- */

/* A batch of episodes or prompts, packed for lrgd_tbatch, with the source of
 * every token and target: (dataset user, index into that user's full
 * sequence), -1 for special tokens. The no-leakage test reads these. */
typedef struct tm_ep {
    int n_seq, n_tok, cap_seq, cap_tok;
    int *off;                  /* [n_seq + 1] */
    int *tok, *tgt;            /* [n_tok] */
    int *src_user, *src_pos;   /* [n_tok] where the token came from */
    int *tgt_user, *tgt_pos;   /* [n_tok] where the target came from */
    int *pos, *vis;            /* [n_tok] RoPE position and the last row seen (sequence-relative; tm_forward_ex) */
    int *ans_row;              /* [n_seq] the final ANS row (answer probes, if any, follow it) */
    int *n_demos, *query_user; /* [n_seq] */
} tm_ep;

/* The query part of one episode. */
typedef struct tm_ep_query {
    int user;
    const int32_t *items; /* the (capped) history */
    int n;
    int off;              /* index of items[0] in the user's sequence */
    int32_t target;       /* item predicted at the final ANS, -1: none (scoring) */
    int target_pos;       /* its index in the user's sequence */
    int hist_targets;     /* 1: each history row predicts the next history item */
    int demo_targets;     /* 1: each demonstration's ANS predicts its answer */
    int probes;           /* 1: answer probes predict items 2..n of the history (needs a target) */
} tm_ep_query;

void tm_ep_reset(tm_ep *e);
void tm_ep_free(tm_ep *e);
/* Tokens of an episode with these demonstrations (before any is dropped). */
int tm_ep_length(const lrgd_demo_index *ix, int nq, const int32_t *demo_users, int n_demos);
/* Append one episode; demonstrations are dropped from the front until it
 * fits max_len tokens (*n_used: how many stayed). */
lrgd_status tm_ep_add(tm_ep *e, const lrgd_demo_index *ix, const tm_ep_query *q, const int32_t *demo_users,
                      int n_demos, int max_len, int *n_used);

/* k distinct random pool users other than u (stream: u, salt). Returns how many. */
int tm_random_demos(const lrgd_demo_index *ix, int u, int k, uint64_t seed, uint64_t salt, int32_t *out);
/* The demonstration users of u's prompt in prompt order (least similar first). */
lrgd_status tm_prompt_demos(const lrgd_demo_index *ix, lrgd_demo_mode mode, int k, uint64_t seed, int u,
                            const int32_t *hist, int n_hist, int32_t *demo, int *n_demo);

/* Append the scoring prompt of user u with input history hist:
 * [BOS | demonstrations | the last max_hist items ANS], no targets. */
lrgd_status tm_ep_add_prompt(tm_ep *e, const lrgd_demo_index *ix, lrgd_demo_mode mode, int k, uint64_t seed, int u,
                             const int32_t *hist, int n_hist, int max_hist, int seq_len);
/* Every training episode of one epoch, in the epoch's order (the trainer's
 * own code path; for the no-leakage test). */
lrgd_status tm_epoch_episodes(const lrgd_split *sp, const lrgd_train_opts *o, int64_t epoch, tm_ep *out);

/* First layer (or -1: the embedding/final norm) whose saved activations hold
 * a NaN or Inf; -2 when all are finite. */
int tm_first_nonfinite_layer(const lrgd_tmodel *t);
/* The same with the place: 1 and the first non-finite value's layer (as
 * above), token row and column, or 0 if all are finite (trainer.c). */
int tm_locate_nonfinite(const lrgd_tmodel *t, int *layer, size_t *row, size_t *col);
/* LRGD_E_NUMERIC "non-finite activation at layer L, row R (position P of
 * sequence S), column C" after a forward pass of batch b, or LRGD_OK. */
lrgd_status tm_check_finite(const lrgd_tmodel *t, const lrgd_tbatch *b);

#endif
