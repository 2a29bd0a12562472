/* In-context recommendation prompts, with the segment spans that the LRGD
 * analysis needs (LRGD.md: a prompt is [T | D_1 ... D_m | Q]).
 *
 * Layout built by lrgd_prompt_build (one token per item; item token =
 * n_special + internal item id):
 *
 *   BOS | a_1 .. a_p ANS y_a SEP | ... | b_1 .. b_s ANS y_b SEP | q_1 .. q_c ANS
 *    T  |           D_1          | ... |          D_m           |      Q
 *
 *  - T: the instruction tokens; for the embedded model just BOS (position 0).
 *  - D_d: demonstration d = another user's history, the answer marker, that
 *    user's next item, and the closing SEP. The SEP belongs to D_d.
 *  - Q: the query user's history and the final answer marker at position
 *    t = n_tokens - 1; the logits at t rank the items.
 * Every token is in exactly one segment, segments are contiguous and in the
 * order T, D_1..D_m, Q. The trainer's episodes use the same layout.
 *
 * Errors are never silent truncations: an unknown item id, an empty query or
 * demonstration history, or a prompt longer than the context is refused. The
 * only shortening is the documented max_hist cap, which keeps the most
 * recent items of each history. */
#ifndef LRGD_PROMPT_H
#define LRGD_PROMPT_H

#include "lrgd/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lrgd_seg_kind {
    LRGD_SEG_T = 0, /* instruction / BOS */
    LRGD_SEG_D = 1, /* one demonstration */
    LRGD_SEG_Q = 2  /* the query, ending at the answer position */
} lrgd_seg_kind;

typedef struct lrgd_segment {
    lrgd_seg_kind kind;
    int demo;       /* 0..n_demos-1 for LRGD_SEG_D, -1 otherwise */
    int begin, end; /* token span [begin, end) */
} lrgd_segment;

/* A built prompt. Read-only for callers; free with lrgd_prompt_free. */
typedef struct lrgd_prompt {
    int *tokens;
    int n_tokens;
    lrgd_segment *segs; /* T (if any), D_1..D_m, Q */
    int n_segs;
    int n_demos;
    int ans_pos;        /* t: last token of Q; -1 until Q is added */
    int cap_tokens, cap_segs;
} lrgd_prompt;

/* The tokens the item layout needs. */
typedef struct lrgd_prompt_vocab {
    int bos, sep, ans;
    int n_special; /* item i is token n_special + i */
    int n_items;
} lrgd_prompt_vocab;

/* The vocabulary of a recommendation model (lrgd.* keys or the trainer's).
 * LRGD_E_UNSUPPORTED for a model without an item vocabulary (a text LLM). */
lrgd_status lrgd_prompt_vocab_of(const lrgd_model *m, lrgd_prompt_vocab *v);

typedef struct lrgd_prompt_opts {
    int max_hist; /* > 0: keep only the most recent max_hist items of each history; 0: all */
    int n_ctx;    /* > 0: refuse prompts longer than this; 0: no limit */
} lrgd_prompt_opts;

/* One demonstration: a history of internal item ids and the next item. */
typedef struct lrgd_demo {
    const int32_t *hist;
    int n_hist;
    int32_t next;
} lrgd_demo;

/* Build [BOS | D_1..D_m | Q] from internal item ids (layout above). opts may
 * be NULL (no cap, no limit). n_demos may be 0 (zero-shot). */
lrgd_status lrgd_prompt_build(const lrgd_prompt_vocab *v, const lrgd_prompt_opts *opts, const lrgd_demo *demos,
                              int n_demos, const int32_t *query, int n_query, lrgd_prompt **out);

/* Lower level, for other layouts (text prompts, demonstrations encoded at a
 * fixed slot): start empty, then add segments of raw token ids in the order
 * T (at most one, first), D (any number), Q (exactly one, last, non-empty).
 * The answer position is the last token of Q. */
lrgd_status lrgd_prompt_new(lrgd_prompt **out);
lrgd_status lrgd_prompt_add(lrgd_prompt *p, lrgd_seg_kind kind, const int *tokens, int n);
void lrgd_prompt_free(lrgd_prompt *p);

/* Check a finished prompt against a model: Q present, every token id inside
 * the vocabulary, length within n_ctx (> 0) and the model's seq_len. */
lrgd_status lrgd_prompt_check(const lrgd_prompt *p, const lrgd_model *m, int n_ctx);

/* map[j] = demonstration index of position j, or -1 for T and Q
 * (map has room for p->n_tokens ints). */
void lrgd_prompt_demo_map(const lrgd_prompt *p, int *map);

#ifdef __cplusplus
}
#endif

#endif
