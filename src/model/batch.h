/* Many short sequences through a model in one pass, for scoring (the
 * evaluator's users, each a prompt [prefix | own tokens]).
 *
 * Per layer, every token of every sequence goes through the same GEMMs
 * (one matmul per weight for the whole batch); attention is per sequence,
 * over the shared prefix's keys/values (computed once, by
 * lrgd_mbatch_set_prefix) followed by the sequence's own. Only the last
 * token of each sequence is wanted, so the last layer computes keys and
 * values for every row (the last row attends to them) but its query,
 * attention output and feed-forward block only for the last rows.
 *
 * The result for a sequence equals lrgd_eval of [prefix | tokens] on one
 * state, to float rounding (tests/test_mbatch.c). */
#ifndef LRGD_MODEL_BATCH_H
#define LRGD_MODEL_BATCH_H

#include "model/model_impl.h"

typedef struct lrgd_mbatch lrgd_mbatch;

/* A batch runner over m (borrowed; it must outlive the runner). */
lrgd_status lrgd_mbatch_new(const lrgd_model *m, lrgd_mbatch **out);
void lrgd_mbatch_free(lrgd_mbatch *b);

/* The prefix every sequence of the next calls starts with: its keys and
 * values at every layer are computed here, once. n = 0: no prefix. */
lrgd_status lrgd_mbatch_set_prefix(lrgd_mbatch *b, const int *tok, int n);
int lrgd_mbatch_prefix_len(const lrgd_mbatch *b);
const int *lrgd_mbatch_prefix(const lrgd_mbatch *b);

/* Sequences s = 0..n_seq-1 with tokens tok[off[s] .. off[s+1]) (at least
 * one each) after the prefix. out [n_seq][dim] gets each sequence's last
 * row after the final norm (RMSNorm(x) * out_norm: the output layer's
 * input). LRGD_E_NUMERIC names the layer and sequence of a non-finite
 * activation. */
lrgd_status lrgd_mbatch_last(lrgd_mbatch *b, int n_seq, const int *off, const int *tok, float *out);
/* After LRGD_E_NUMERIC from lrgd_mbatch_last: the sequence (-1: the prefix). */
int lrgd_mbatch_bad_seq(const lrgd_mbatch *b);

#endif
