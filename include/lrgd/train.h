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

#include "lrgd/lrgd.h"

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

#ifdef __cplusplus
}
#endif

#endif
