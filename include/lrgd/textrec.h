/* Recommendation with a text LLM brought as GGUF (LRGD.md, "Other models"):
 * items are shown by their titles, and a candidate is scored by the summed
 * log-likelihood of its text after the answer marker.
 *
 * Prompt (each part tokenized on its own, so part boundaries are token
 * boundaries; the default texts are below and can be replaced):
 *
 *   [BOS if the vocabulary adds one]                       segment T
 *   HEADER "- " TITLE "\n" ... ANSWER " " TITLE "\n" "\n"   one segment D per demonstration
 *   HEADER "- " TITLE "\n" ... ANSWER                       segment Q (answer marker last)
 *
 * HEADER = "A shopper bought these items, oldest first:\n", ANSWER = "The
 * next item they bought:". TITLE is the item text attached to the dataset
 * (lrgd_dataset_load_item_text) cut to max_title_bytes at a character
 * boundary, or "item <id>" (external id) for items without text. Only the
 * most recent max_hist items of each history are shown; if a prompt plus the
 * longest candidate would not fit the context, older items are dropped
 * until it does (the query keeps at least one).
 *
 * Scoring: the candidate's continuation is " " TITLE "\n" tokenized without
 * a space prefix (the trailing newline makes the model say where the title
 * ends). score = sum_j log p(c_j | prompt, c_<j) in double precision (or the
 * mean over the candidate's tokens with length_norm). The prompt is
 * evaluated once; each candidate then runs on the cached prefix and the
 * cache is truncated back to the prompt (lrgd_state_truncate), so a user's k
 * candidates cost one prompt plus the candidates' own tokens.
 *
 * Demonstrations (lrgd_textrec_icl) are chosen as the embedded model's
 * scorer chooses them, so text and item-token models can be compared on the
 * same prompts' contents. The segments are those of lrgd/prompt.h, so the
 * dual model (lrgd/dual.h) runs on these prompts unchanged.
 *
 * Cost: full ranking scores every item for every user: tens of thousands of
 * forward passes per user with a real LLM. It works, but sampled candidates
 * (target + 19, lrgd eval's default for this method) are the usual setting.
 *
 * Ownership: lrgd_textrec_new borrows the model, tokenizer and dataset (they
 * must outlive it); lrgd_textrec_load owns what it loads. A textrec holds
 * one KV cache: use it from one thread at a time (the forward pass itself is
 * multi-threaded). */
#ifndef LRGD_TEXTREC_H
#define LRGD_TEXTREC_H

#include "lrgd/data.h"
#include "lrgd/eval.h"
#include "lrgd/prompt.h"
#include "lrgd/tokenizer.h"
#include "lrgd/train.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lrgd_textrec_opts {
    int max_hist;        /* most recent items per history (default 20; 0: all that fit) */
    int max_title_bytes; /* cut longer titles (default 160; 0: no cut) */
    int length_norm;     /* 0: summed log-likelihood (default); 1: mean per candidate token */
    int n_ctx;           /* context (0: the model's seq_len) */
    const char *header;  /* NULL: the default above */
    const char *answer;  /* NULL: the default above */
} lrgd_textrec_opts;
void lrgd_textrec_opts_init(lrgd_textrec_opts *o);

typedef struct lrgd_textrec lrgd_textrec;

/* Tokenizes every item's continuation once (so construction costs one pass
 * over the item texts). */
lrgd_status lrgd_textrec_new(const lrgd_model *m, const lrgd_tokenizer *tok, const lrgd_dataset *ds,
                             const lrgd_textrec_opts *o, lrgd_textrec **out);
/* Load the model and its tokenizer from a GGUF file and own them. */
lrgd_status lrgd_textrec_load(const char *model_path, const lrgd_dataset *ds, const lrgd_textrec_opts *o,
                              lrgd_textrec **out);
void lrgd_textrec_free(lrgd_textrec *tr);

const lrgd_model *lrgd_textrec_model(const lrgd_textrec *tr);
const lrgd_tokenizer *lrgd_textrec_tokenizer(const lrgd_textrec *tr);

/* How the prompt shows item i (NUL-terminated, owned by tr). */
const char *lrgd_textrec_item_text(const lrgd_textrec *tr, int item);
/* The continuation tokens of item i (owned by tr). */
lrgd_status lrgd_textrec_cand_tokens(const lrgd_textrec *tr, int item, const int **ids, int *n);

/* The prompt text for a query history (and demonstrations, which may be
 * none), as one malloc'd string (free() it): what the segments hold, for
 * people to read. */
lrgd_status lrgd_textrec_prompt_text(const lrgd_textrec *tr, const lrgd_demo *demos, int n_demos,
                                     const int32_t *hist, int n_hist, char **text);
/* The token prompt [T | D_1..D_m | Q] with its segments (lrgd/prompt.h), the
 * answer marker's last token at ans_pos. Free with lrgd_prompt_free. */
lrgd_status lrgd_textrec_prompt(const lrgd_textrec *tr, const lrgd_demo *demos, int n_demos, const int32_t *hist,
                                int n_hist, lrgd_prompt **out);

/* Scores of items cands[0..n) after prompt p: out[c] as described above.
 * LRGD_E_NUMERIC if the model produces a non-finite logit. */
lrgd_status lrgd_textrec_score(lrgd_textrec *tr, const lrgd_prompt *p, const int32_t *cands, int n, double *out);

/* Tokens run through the model so far (prompts + candidates), for reports. */
int64_t lrgd_textrec_tokens_evaluated(const lrgd_textrec *tr);

/* In-context demonstrations for the scorer, chosen exactly as the embedded
 * model's scorer chooses them (lrgd/train.h): the pool is every user's
 * lrgd_split_train_items at step; "random" draws k pool users seeded by the
 * query user, "similar" takes the k most similar (cosine of item sets), the
 * most similar next to the query. A demonstration shows its user's training
 * items but the last (the most recent demo_hist) and the last as the answer.
 * When a prompt does not fit, the least similar demonstrations are left out
 * first; with none left the query's oldest items go. */
typedef struct lrgd_textrec_icl {
    const lrgd_split *sp; /* the split of the textrec's dataset (borrowed) */
    int step;             /* LRGD_STEP_TEST or LRGD_STEP_VALID: what the pool may hold */
    lrgd_demo_mode mode;  /* LRGD_DEMOS_NONE: zero-shot */
    int k;                /* demonstrations per prompt, 1..256 (default 3) */
    int demo_hist;        /* default 20 */
    uint64_t seed;        /* default 42 */
} lrgd_textrec_icl;
/* zero-shot, k 3, demo_hist 20, seed 42 */
void lrgd_textrec_icl_init(lrgd_textrec_icl *icl);

/* An evaluator scorer (lrgd/eval.h): each user's prompt is their history,
 * after demonstrations when icl asks for them (icl NULL: zero-shot). own !=
 * 0: the scorer frees tr when released. */
lrgd_status lrgd_scorer_textllm(lrgd_textrec *tr, int own, const lrgd_textrec_icl *icl, lrgd_scorer *out);

#ifdef __cplusplus
}
#endif

#endif
