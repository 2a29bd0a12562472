/* The embedded recommender: a small Llama-architecture model that lrgd
 * trains itself, in C, on ICL episodes built from interaction data.
 *
 * Vocabulary: the special tokens PAD, BOS, SEP, ANS, EOS (ids 0..4), then
 * one token per item: token = LRGD_N_SPECIAL + internal item id. The output
 * layer is the token embedding (tied); the loss is a softmax over the item
 * tokens only.
 *
 * A training model keeps every parameter in one float buffer, with a
 * gradient buffer of the same layout and the AdamW moments beside it. Its
 * lrgd_model view (lrgd_tmodel_model) points into that buffer, so the
 * inference engine, the GGUF writer and the LRGD analysis read the weights
 * being trained without a copy. */
#ifndef LRGD_TRAIN_H
#define LRGD_TRAIN_H

#include "lrgd/data.h"
#include "lrgd/eval.h"
#include "lrgd/lrgd.h"
#include "lrgd/prompt.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    LRGD_TOK_PAD = 0,
    LRGD_TOK_BOS = 1,
    LRGD_TOK_SEP = 2,
    LRGD_TOK_ANS = 3,
    LRGD_TOK_EOS = 4,
    LRGD_N_SPECIAL = 5
};

typedef struct lrgd_tmodel lrgd_tmodel;

/* A batch of variable-length sequences, packed: the rows of sequence s are
 * seq_off[s] .. seq_off[s+1]-1 and its positions start at 0. Attention stays
 * inside a sequence; every matrix product runs over all rows at once. */
typedef struct lrgd_tbatch {
    int n_seq;
    const int *seq_off;  /* [n_seq + 1], seq_off[0] == 0 */
    const int *tokens;   /* [n_tok] token ids (unused where embd is given) */
    const float *embd;   /* NULL, or [n_tok][dim] input embeddings used instead of the table */
    const int *targets;  /* NULL, or [n_tok]: the item token predicted at this row, or -1 */
} lrgd_tbatch;

/* A fresh model with random weights (normal, std 0.02; output projections
 * scaled by 1/sqrt(2 n_layers); norms 1). cfg->vocab_size must be
 * LRGD_N_SPECIAL + n_items, cfg->tied 1. */
lrgd_status lrgd_tmodel_new(const lrgd_config *cfg, uint64_t seed, lrgd_tmodel **out);
/* A training model holding a float32 copy of m's weights (any dtype, tied
 * or not: an untied output is not supported and is refused). */
lrgd_status lrgd_tmodel_from_model(const lrgd_model *m, lrgd_tmodel **out);
void lrgd_tmodel_free(lrgd_tmodel *t);

/* The inference view: weights point into the parameter buffer. Owned by t. */
lrgd_model *lrgd_tmodel_model(lrgd_tmodel *t);
const lrgd_config *lrgd_tmodel_config(const lrgd_tmodel *t);
int lrgd_tmodel_n_items(const lrgd_tmodel *t);
/* The external id of each item token (written to GGUF as lrgd.item_ids). */
lrgd_status lrgd_tmodel_set_item_ids(lrgd_tmodel *t, const int64_t *ext);

/* Parameters and gradients: one contiguous float buffer each, same layout. */
size_t lrgd_tmodel_n_params(const lrgd_tmodel *t);
float *lrgd_tmodel_params(lrgd_tmodel *t);
float *lrgd_tmodel_grads(lrgd_tmodel *t);
void lrgd_tmodel_zero_grad(lrgd_tmodel *t);

/* The named tensors of the buffer, in order ("token_embd", "blk.0.attn_q", ...,
 * GGUF names). rows x cols elements at offset (floats). */
typedef struct lrgd_tensor_info {
    const char *name;
    size_t offset;
    int rows, cols;
} lrgd_tensor_info;
int lrgd_tmodel_n_tensors(const lrgd_tmodel *t);
lrgd_status lrgd_tmodel_tensor(const lrgd_tmodel *t, int i, lrgd_tensor_info *info);

/* Dropout for the training passes (train != 0 below): after the input
 * embedding, after each attention output projection, after each SwiGLU and
 * after each FFN output. Masks are a hash of (seed, step, site, row, column),
 * so they do not depend on the thread count and need no storage. */
void lrgd_tmodel_set_dropout(lrgd_tmodel *t, float p, uint64_t seed);
void lrgd_tmodel_set_step(lrgd_tmodel *t, uint64_t step);
/* Sampled softmax for the training passes: n > 0 scores each target row
 * against the batch's target items plus n items drawn uniformly without
 * replacement (seeded by seed and step, shared by the batch), the sampled
 * columns corrected by log((n_items - n_targets) / n); 0: the full softmax
 * (always used when train == 0). */
void lrgd_tmodel_set_sampled(lrgd_tmodel *t, int n);

/* Forward pass. loss: mean cross-entropy over the rows with a target (batch
 * needs targets); n_targets: how many there were. hidden: NULL or
 * [n_tok][dim], the final-normed hidden states (scores = hidden . item
 * embeddings). train != 0 applies dropout. */
lrgd_status lrgd_tmodel_forward(lrgd_tmodel *t, const lrgd_tbatch *b, int train, double *loss, int *n_targets,
                                float *hidden);

/* Forward + backward: ADDS d(mean loss)/d(parameter) to the gradient buffer
 * and, when d_embd != NULL, writes d(loss)/d(input embedding) [n_tok][dim]
 * (the vectors that enter the first layer, before dropout). train != 0
 * applies dropout. */
lrgd_status lrgd_tmodel_grad(lrgd_tmodel *t, const lrgd_tbatch *b, int train, double *loss, float *d_embd);

/* Scores of every item at the given rows after a forward pass with hidden
 * states h [n][dim]: out [n][n_items] = h . E_items^T. */
void lrgd_tmodel_item_scores(lrgd_tmodel *t, const float *hidden, int n, float *out);

/* ---- demonstrations ---------------------------------------------------------
 *
 * The pool at a split step: every user with >= 2 items in
 * lrgd_split_train_items(sp, step, .). User v's demonstration is its
 * training items but the last (the most recent demo_hist of them), then the
 * answer marker, then its last training item. Retrieval ranks pool users by
 * a recency-weighted overlap between the query history Q and v's
 * demonstration history H_v (all its training items but the answer):
 *   sim(Q, v) = sum over items i in both of DECAY^(a_Q(i) + a_H(i)),
 * a(i) = how many items came after i's latest occurrence in that sequence
 * (0 for the last one), DECAY = LRGD_DEMO_DECAY. An inverted index makes a
 * query cost the posting lists of its items; ties go to the smaller user id.
 * The index borrows sp. */
#define LRGD_DEMO_DECAY 0.7
typedef struct lrgd_demo_index lrgd_demo_index;
lrgd_status lrgd_demo_index_new(const lrgd_split *sp, int step, int demo_hist, lrgd_demo_index **out);
void lrgd_demo_index_free(lrgd_demo_index *ix);
int lrgd_demo_index_n_pool(const lrgd_demo_index *ix);
const int32_t *lrgd_demo_index_pool(const lrgd_demo_index *ix); /* ascending user ids */
int lrgd_demo_index_step(const lrgd_demo_index *ix);
/* User v's demonstration (pointers into the dataset); *hist_off (may be NULL):
 * index of d->hist[0] in v's sequence. */
lrgd_status lrgd_demo_index_demo(const lrgd_demo_index *ix, int v, lrgd_demo *d, int *hist_off);
/* The (up to) k pool users most similar to hist, never `exclude` (-1: none),
 * best first; users whose demonstration history shares no item with hist are
 * not returned. sims (may be NULL) gets sim(Q, v). */
lrgd_status lrgd_demo_index_similar(const lrgd_demo_index *ix, const int32_t *hist, int n_hist, int exclude, int k,
                                    int32_t *users, float *sims, int *n_out);

/* ---- the model as a scorer for lrgd_evaluate -------------------------------- */

typedef enum lrgd_demo_mode {
    LRGD_DEMOS_NONE = 0,    /* zero-shot: [BOS | history ANS] */
    LRGD_DEMOS_RANDOM = 1,  /* k random pool users (seeded by user) */
    LRGD_DEMOS_SIMILAR = 2  /* the k most similar pool users, the most similar next to the query */
} lrgd_demo_mode;
const char *lrgd_demo_mode_name(lrgd_demo_mode m); /* "none", "random", "similar" */

typedef struct lrgd_model_scorer_opts {
    lrgd_demo_mode demos;
    int k;          /* demonstrations per prompt (fewer if the context is full) */
    int max_hist;   /* query history cap: the most recent items (default 50) */
    int demo_hist;  /* demonstration history cap (default 20) */
    uint64_t seed;  /* random demonstrations */
    int engine;     /* 1: score through lrgd_eval one prompt at a time (slow; for cross-checks) */
} lrgd_model_scorer_opts;
/* similar, k 3, max_hist 50, demo_hist 20, seed 42, batched */
void lrgd_model_scorer_opts_init(lrgd_model_scorer_opts *o);

/* A scorer over the training model t (borrowed) at split step: demonstrations
 * come from lrgd_split_train_items at that step. The model's item tokens
 * must be the dataset's items (same external ids). */
lrgd_status lrgd_scorer_tmodel(const lrgd_split *sp, int step, lrgd_tmodel *t, const lrgd_model_scorer_opts *o,
                               lrgd_scorer *out);
/* The same for a model file (GGUF written by lrgd train). */
lrgd_status lrgd_scorer_model(const lrgd_split *sp, int step, const char *path, const lrgd_model_scorer_opts *o,
                              lrgd_scorer *out);

/* ---- optimizer ------------------------------------------------------------ */

/* AdamW with decoupled weight decay (matrices and embeddings; not the norm
 * gains), linear warm-up over warmup_steps, then cosine decay to
 * lr * min_lr_ratio at total_steps; the gradient is scaled so its global L2
 * norm is at most clip (clip <= 0: no clipping). */
typedef struct lrgd_adamw_opts {
    double lr, beta1, beta2, eps, weight_decay, clip, min_lr_ratio;
    int64_t warmup_steps;
} lrgd_adamw_opts;
/* lr 1e-3, betas 0.9/0.98, eps 1e-8, weight decay 0, clip 1, warm-up 100, min ratio 0.1 */
void lrgd_adamw_opts_init(lrgd_adamw_opts *o);
/* The learning rate at step (0-based) of total_steps. */
double lrgd_lr_schedule(const lrgd_adamw_opts *o, int64_t step, int64_t total_steps);
/* One update of every parameter from the gradient buffer (the moments live in
 * t). LRGD_E_NUMERIC, without touching the parameters, when the gradient norm
 * is not finite. */
lrgd_status lrgd_adamw_step(lrgd_tmodel *t, const lrgd_adamw_opts *o, int64_t step, int64_t total_steps,
                            double *grad_norm, double *lr_used);

/* ---- training ---------------------------------------------------------------
 *
 * lrgd_train fits a fresh model on a leave-one-out split: episodes are built
 * from lrgd_split_train_items at LRGD_STEP_VALID only (never a validation or
 * test item), one per user with >= 2 training items per epoch, in a seeded
 * order. Episode of user u with training items s_1..s_m:
 *   BOS | 0..K demonstrations | s_1 .. s_{m-1} (last max_hist) ANS   -> target s_m
 * with K drawn uniformly per episode; the demonstrations are, with
 * probability p_similar, K of the pool users most similar to s_1..s_{m-1}
 * (drawn from the top `pool`), otherwise random pool users. Loss: mean
 * cross-entropy over the item tokens at every history row (next item), the
 * final ANS (s_m) and, with demo_loss, each demonstration's ANS (its answer).
 * With probes, the episode also ends in m-2 answer probes: ANS tokens that
 * see the episode up to history item i (and themselves, at the position an
 * ANS would have after it) and predict item i+1, while no other row sees
 * them. Each is exactly the prompt [BOS | demos | s_1..s_i ANS] sharing the
 * episode's pass, so the answer position learns from every prefix, not just
 * from the last one.
 * After each epoch: validation NDCG@10 (full ranking, history excluded) with
 * val_demos/val_k demonstrations; the best model is written to `out` (GGUF,
 * atomically) and the training state to out + ".train" (parameters, AdamW
 * moments, counters, epoch log, checksum; atomically), also every
 * save_every_s seconds. A run finding that state resumes from it and ends
 * with the same bytes as an uninterrupted run. */
typedef struct lrgd_train_opts {
    /* model */
    int n_layers, dim, n_heads, n_kv_heads, hidden_dim, seq_len;
    lrgd_attn_mode attn;
    /* episodes */
    int demos;        /* K: at most K demonstrations per episode (0: plain sequential training) */
    int max_hist;     /* query history cap */
    int demo_hist;    /* demonstration history cap */
    int pool;         /* similar demonstrations come from the top `pool` (0: 2K) */
    double p_similar; /* probability that an episode's demonstrations are similar users */
    int demo_loss;    /* 1: demonstrations' answers are targets too */
    int probes;       /* 1: answer probes (see above) */
    /* optimization */
    int epochs, batch;
    double dropout;
    int sampled;        /* > 0: sampled softmax with this many shared negatives (see lrgd_tmodel_set_sampled) */
    lrgd_adamw_opts adamw;
    uint64_t seed;
    double max_minutes; /* > 0: stop after this much training time (best checkpoint stands) */
    int patience;       /* > 0: stop after this many epochs without a better validation NDCG@10 */
    /* validation */
    lrgd_demo_mode val_demos;
    int val_k;          /* < 0: demos */
    /* output */
    const char *out;    /* GGUF path; the state goes to out + ".train" */
    int no_resume;      /* 1: ignore (and overwrite) an existing state */
    double save_every_s;  /* state save interval in seconds (also at every epoch end) */
    int64_t checkpoint_steps; /* > 0: save the state every this many steps instead */
    int64_t fault_nan_step;   /* test hook: >= 0 poisons an activation at this step */
    int64_t halt_after_step;  /* test hook: >= 0 ends the session after this step, saving nothing more */
} lrgd_train_opts;
/* 2 layers, dim 64, 2 heads, 1 kv head, hidden 128, seq 256, softmax, K 3,
 * max_hist 50, demo_hist 20, p_similar 0.75, 40 epochs, batch 128, dropout
 * 0.3, sampled softmax with 2048 negatives, AdamW defaults, seed 42, save
 * every 60 s */
void lrgd_train_opts_init(lrgd_train_opts *o);

typedef struct lrgd_train_epoch {
    int epoch;               /* 1-based */
    double loss;             /* mean training loss over the epoch's steps */
    double val_ndcg10, val_hr10;
    double train_seconds, val_seconds, tokens_per_s;
    int best;                /* 1 if this epoch was saved as the best */
} lrgd_train_epoch;

typedef struct lrgd_train_result {
    int64_t n_params, n_episodes, steps_per_epoch, steps, tokens;
    int epochs_run, best_epoch; /* best_epoch 1-based, 0 if none */
    double best_ndcg10;
    double train_seconds;       /* wall time over all sessions (validation included) */
    double tokens_per_s;        /* training steps of this session only */
    int resumed, stopped_early, stopped_by_time;
    lrgd_train_epoch *log;      /* [n_log], every epoch of the run (resumed ones too) */
    int n_log;
} lrgd_train_result;
void lrgd_train_result_free(lrgd_train_result *r);

lrgd_status lrgd_train(const lrgd_split *sp, const lrgd_train_opts *o, lrgd_train_result *res);

#ifdef __cplusplus
}
#endif

#endif
