/* Llama-family transformer: loading, forward pass, KV cache, hooks. */
#ifndef LRGD_MODEL_H
#define LRGD_MODEL_H

#include "lrgd/lrgd.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lrgd_rope_type {
    LRGD_ROPE_NORM = 0, /* rotate adjacent pairs (2i, 2i+1): llama.cpp "llama", llama2.c */
    LRGD_ROPE_NEOX = 2  /* rotate halves (i, i + d/2): GPT-NeoX / HF layout */
} lrgd_rope_type;

typedef enum lrgd_attn_mode {
    LRGD_ATTN_SOFTMAX = 0, /* causal softmax attention */
    LRGD_ATTN_LINEAR = 1   /* o_t = sum_j v_j (k_j . q_t) / sqrt(d), causal, no softmax */
} lrgd_attn_mode;

typedef struct lrgd_config {
    int dim;         /* model width */
    int hidden_dim;  /* SwiGLU inner width */
    int n_layers;
    int n_heads;
    int n_kv_heads;  /* grouped-query: n_heads % n_kv_heads == 0 */
    int head_dim;    /* dim / n_heads */
    int vocab_size;
    int seq_len;     /* context length the model was built for */
    float norm_eps;  /* RMSNorm epsilon */
    float rope_base; /* RoPE freq_base (theta) */
    lrgd_rope_type rope_type;
    lrgd_attn_mode attn;
    int tied;        /* 1: the output layer is the token embedding */
} lrgd_config;

typedef struct lrgd_model lrgd_model;  /* weights (possibly mmap'd), read-only once loaded */
typedef struct lrgd_state lrgd_state;  /* KV cache + scratch for one sequence */

/* Load a model: GGUF (by magic) or a llama2.c checkpoint. */
lrgd_status lrgd_model_load(const char *path, lrgd_model **out);
void lrgd_model_free(lrgd_model *m);
const lrgd_config *lrgd_model_config(const lrgd_model *m);
/* Build an in-memory model with random float32 weights (for tests, benchmarks
 * and as the trainer's initialization). The same (cfg, seed) always gives the
 * same weights. Scales keep activations O(1): linear weights N(0, 1/fan_in),
 * wo and w2 further divided by sqrt(2 n_layers), embeddings N(0, 1), norm
 * weights 1 + N(0, 0.1^2); logits come out O(1) for tied and untied models. */
lrgd_status lrgd_model_new_random(const lrgd_config *cfg, uint64_t seed, lrgd_model **out);

/* ---- forward pass ------------------------------------------------------ */

/* A state holds the KV cache for up to n_ctx positions; batches of up to
 * n_batch tokens are processed at once (GEMM over the batch). n_ctx <= 0 means
 * the model's seq_len (n_ctx may not exceed it); n_batch <= 0 means
 * min(512, n_ctx). All memory is allocated here: evaluation does not allocate
 * except for the attention matrix of a hook that asks for it. */
lrgd_status lrgd_state_new(const lrgd_model *m, int n_ctx, int n_batch, lrgd_state **out);
void lrgd_state_free(lrgd_state *s);
/* Number of positions already in the cache. */
int lrgd_state_pos(const lrgd_state *s);
/* Forget positions >= n (n <= current position): reuse a shared prefix. */
lrgd_status lrgd_state_truncate(lrgd_state *s, int n);
/* Copy the first n cached positions of src into dst (same model). */
lrgd_status lrgd_state_copy_prefix(lrgd_state *dst, const lrgd_state *src, int n);

/* Run n >= 1 tokens at positions pos..pos+n-1 (pos = current cache length),
 * in chunks of at most n_batch. logits: NULL, or room for n*vocab floats
 * (all_logits != 0) or vocab floats (logits of the last token only).
 * On failure the cache length stays what it was. */
lrgd_status lrgd_eval(lrgd_state *s, const int *tokens, int n, float *logits, int all_logits);
/* Same, but the input embeddings are given (n x dim) instead of token ids. */
lrgd_status lrgd_eval_embd(lrgd_state *s, const float *embd, int n, float *logits, int all_logits);

/* ---- hooks: read what the forward pass computed ------------------------ */

/* Pointers are into the engine's own buffers and valid only during the call.
 * Row-major; "positions" of a batch are pos0 .. pos0+n-1. */
typedef struct lrgd_hook_layer {
    int layer;
    int pos0, n;            /* the batch */
    int n_heads, n_kv_heads, head_dim, dim;
    const float *x_in;      /* [n][dim] residual stream entering the layer */
    const float *x_norm;    /* [n][dim] RMSNorm(x_in) * attn_norm */
    const float *q;         /* [n][n_heads*head_dim], RoPE applied */
    const float *k_cache;   /* [pos0+n][n_kv_heads*head_dim], RoPE applied, all cached positions */
    const float *v_cache;   /* [pos0+n][n_kv_heads*head_dim] */
    const float *att;       /* softmax: [n_heads][n][pos0+n] attention weights (0 above the diagonal);
                               linear: [n_heads][n][pos0+n] raw scores k.q/sqrt(d). NULL unless asked. */
    const float *att_out;   /* [n][n_heads*head_dim] attention output before wo */
    const float *x_mid;     /* [n][dim] residual after attention */
    const float *x_out;     /* [n][dim] residual after the FFN (leaving the layer) */
    /* Added fields (after the original ones): */
    int hidden_dim;
    lrgd_attn_mode attn;
    const float *att_lse;   /* softmax: [n_heads][n] log sum_j exp(k_j.q_i/sqrt(d)), the log of the
                               softmax normalizer over positions 0..pos0+i; NULL in linear mode */
    const float *x_ffn_norm;/* [n][dim] RMSNorm(x_mid) * ffn_norm */
    const float *ffn_h;     /* [n][hidden_dim] silu(w1 x) * (w3 x), the input of w2 */
} lrgd_hook_layer;

/* Return LRGD_OK to continue; anything else aborts lrgd_eval with that status. */
typedef lrgd_status (*lrgd_hook_fn)(void *user, const lrgd_hook_layer *h);

enum { LRGD_HOOK_ATT = 1 }; /* also materialize the attention matrix */

/* Install (fn != NULL) or remove (fn == NULL) a per-layer hook. */
lrgd_status lrgd_state_set_hook(lrgd_state *s, lrgd_hook_fn fn, void *user, unsigned flags);

/* ---- sampling --------------------------------------------------------- */

typedef struct lrgd_sampler {
    float temperature; /* 0: greedy (argmax, lowest id wins ties) */
    float top_p;       /* 1: no nucleus cut */
    uint64_t seed;
} lrgd_sampler;

/* Decode up to n_new tokens after prompt[0..n_prompt) with a fresh cache.
 * out gets the generated ids; *n_out how many (stops early after emitting
 * eos_id >= 0, which is included). smp NULL means greedy. Sampling draws from
 * lrgd_rng stream (seed, 0): the same seed gives the same tokens. */
lrgd_status lrgd_generate(const lrgd_model *m, const int *prompt, int n_prompt, int n_new,
                          const lrgd_sampler *smp, int eos_id, int *out, int *n_out);

#ifdef __cplusplus
}
#endif

#endif
