/* Internals of the Effect_D engine, stores and probes (lrgd/effect.h). */
#ifndef LRGD_EFFECT_IMPL_H
#define LRGD_EFFECT_IMPL_H

#include "lrgd/effect.h"
#include "lrgd/textrec.h"
#include "model/model_impl.h"
#include "model/ops.h"

#define EF_MAX_INSTR 8

/* What the hook copies out of one forward pass. */
typedef struct ef_capture {
    int mode;      /* 1: probe (rows row0..row_last + K/V of every row); 2: store (K/V of the new rows) */
    int row_last;  /* absolute position of the answer row (probe) */
    int row0, n;   /* probe: the rows kept (row_last - n + 1 ..); store: the new rows' positions row0 .. row0+n-1 */
    int seen;      /* layers captured */
    /* probe, per layer and kept row: */
    float *x_in, *q, *att_out, *mid, *xn2; /* [L][n][D or Qd] */
    float *lse;                            /* [L][n][H] */
    float *x_last;                         /* [n][D] residual leaving the last layer */
    float *k, *v;                          /* [L][n_rows][KV] rows 0..row_last (probe) or the new rows (store) */
    size_t cap_rows;
} ef_capture;

struct lrgd_effect {
    const lrgd_model *m;
    lrgd_config c;
    lrgd_prompt_vocab v;
    int instr[EF_MAX_INSTR], n_instr;
    float *instr_logits; /* [vocab] logits at the last T token (plausibility of a demonstration's first item) */
    lrgd_state *st;      /* T is cached at positions 0..n_instr-1 */
    float *logits;       /* [seq_len][vocab] */
    float **w32;         /* float32 copies of quantized weights, lazily: [L*8 + 1] */
    ef_capture cap;
    /* answer-row backward scratch */
    float *b_buf;
    int *tok_buf;        /* [seq_len] prompt assembly */
    float *embd_buf;     /* [seq_len][dim] prompts with embedding noise */
    /* The text path (a text LLM, no item vocabulary): prompts are the
     * textrec's title prompts, the target is an item's continuation tokens
     * and l = -sum_j log p(c_j | prompt, c_<j) over the whole vocabulary.
     * NULL on the item path. */
    lrgd_textrec *tr;
    lrgd_textrec *own_tr; /* made by lrgd_effect_new_data (with own_tok) */
    lrgd_tokenizer *own_tok;
    int logit_rows;      /* rows of `logits` */
};

/* Room for rows x vocab logits in e->logits. */
lrgd_status ef_logits_reserve(lrgd_effect *e, int rows);
/* Evaluate tokens[n_instr..n) after the cached T with the hook per cap.mode,
 * the last n_tail rows as their own batch whose logits (n_tail rows) go to
 * e->logits: the text path's target rows without the logits of the rest. */
lrgd_status ef_eval_tail(lrgd_effect *e, const int *tokens, int n, int n_tail);
/* sum_j log softmax(row j)[c_j] over the whole vocabulary, rows of e->logits. */
double ef_text_logp(const lrgd_effect *e, const int *c, int k);
/* The text path's target: item y's continuation tokens c[0..k) (the textrec's). */
lrgd_status ef_text_target(lrgd_effect *e, int32_t y, const int **c, int *k);

/* Logits (vocab floats, the engine's buffer) at the last token of
 * tokens[0..n) (T first) or of T + embd rows (embd != NULL: n - n_instr rows). */
lrgd_status ef_last_logits(lrgd_effect *e, const int *tokens, const float *embd, int n, const float **logits);

/* y = W^T dy for a weight of any dtype: dx[cols] (+)= sum_r dy[r] W[r][:]. */
lrgd_status ef_wt_vec(lrgd_effect *e, int slot, const lrgd_weight *w, const float *dy, float *dx, int accumulate);

/* Evaluate tokens[n_instr..n) after the cached T (hook installed per cap.mode).
 * logits: NULL, last-row or all-rows as lrgd_eval. */
lrgd_status ef_eval_after_instr(lrgd_effect *e, const int *tokens, const float *embd, int n, float *logits, int all);

/* log softmax over the item tokens of a logit row, at item token y_tok. */
double ef_item_logp(const lrgd_effect *e, const float *logits, int y_tok);

lrgd_status ef_capture_reserve(lrgd_effect *e, int rows);

/* A probe keeps n_rows rows: the answer row only (Effect_D as LRGD.md
 * defines it), or every row after the insertion point (LRGD_PROBE_ALL_ROWS). */
struct lrgd_probe {
    int L, H, KVH, hd, D, ins_pos, n_tokens, n_rows;
    int n_tgt;  /* the last n_tgt kept rows carry the loss (1 on the item path; the target's tokens on the text
                   path); the answer row is row n_rows - n_tgt */
    lrgd_attn_mode attn;
    double logp, w0_norm2;
    float *q;   /* [L][n_rows][H*hd] q rotated back by the insertion position */
    float *g;   /* [L][n_rows][H*hd] dl/do */
    float *o;   /* [L][n_rows][H*hd] attention output */
    float *lse; /* [L][n_rows][H] */
    double *go; /* [L][n_rows][H] g.o */
    float *dembd; /* [n_rows][D] */
};

struct lrgd_store {
    lrgd_effect *e;
    int L, KV;          /* KV = n_kv_heads * head_dim */
    int n, cap, plaus_on;
    int *off, *len;     /* [cap] first column (see kv), tokens */
    double *plaus, *self; /* [cap]: plausibility, <dW, dW> */
    int n_rows, cap_rows;
    float *kv;          /* per entry [L][K, V][n_kv_heads][head_dim][len]: its keys (end-aligned RoPE) and values
                           as columns, then a vector of zeros after the last entry (store.c) */
    int *tok;           /* [columns] the entry's tokens from off[id] */
};

/* Effect of entry id with every one of its keys weighted by eps (eps = 1:
 * Effect_D). Linear: eps * Effect_D; softmax: the split with eps * exp(score).
 * The first-order test takes eps -> 0. */
double ef_score_scaled(const lrgd_store *s, int id, const lrgd_probe *p, double eps);
/* Token i's stored key (part 0, RoPE end-aligned) or value (part 1) of kv head
 * kh at layer l of entry id: head_dim floats into out. */
void ef_store_kv(const lrgd_store *s, int id, int l, int part, int kh, int i, float *out);
/* The ground truth of one pair: log p(y | T, entry id, Q) by a real forward
 * pass of [T | entry | q[0..nq)] (T's cache reused), built in tok (room for
 * the model's context). LRGD_E_INVALID when it exceeds the context. */
lrgd_status ef_store_logp(lrgd_effect *e, const lrgd_store *s, int id, const int *q, int nq, int32_t y, int *tok,
                          double *logp);
/* lrgd_effect_score_matrix with the clone of instruction set isa (an
 * lrgd_isa; -1: the one lrgd_kernels_active() picks); LRGD_E_UNSUPPORTED
 * when this CPU lacks it (tests run every clone, score_matrix.c). */
lrgd_status ef_score_matrix_isa(const lrgd_store *s, const lrgd_probe *const *probes, int n_probes, const int *ids,
                                int n_ids, double *effect, double *per_token, int isa);

#endif
