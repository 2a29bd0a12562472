/* Effect_D, robust demonstrations and the two-stage optimizer (LRGD.md
 * §§2-4).
 *
 * Notation: a prompt is [T | D_1 .. D_m | Q] (lrgd/prompt.h); t is the answer
 * position; y the target item; p(y | prompt) the model's softmax over the
 * item tokens at t (the distribution the embedded model is trained and
 * ranked with); l = -log p(y | prompt).
 *
 * Effect_D (the first-order drop in l that one demonstration's implicit
 * update causes):
 *   a probe runs the prompt once forward and once backward *along the answer
 *   row only* (l depends on the residual stream of row t, and row t is the
 *   last row, so nothing else needs a gradient) and keeps, per layer l and
 *   head h, g = dl/do_t (the gradient at the attention output), q_t, the
 *   attention output o_t and the log-normalizer log Z of the softmax;
 *   a candidate demonstration d is encoded once, at a fixed slot right after
 *   T, and its keys (RoPE applied) and values at every layer are kept; then
 *     linear attention:  Effect_D(d) = -sum_{l,h} sum_{i in d} (g.v_i)(k_i.q_t)/sqrt(dh)
 *                        = -sum g . (dW_d q_t), exactly LRGD.md §2;
 *     softmax attention: d's exact share of the split (LRGD.md §1): adding d
 *                        changes o_t by lambda_d (o^{d} - o_t), lambda_d =
 *                        Z_d / (Z + Z_d), so
 *                        Effect_D(d) = -sum_{l,h} sum_{i in d} e_i (g.v_i - g.o_t) / (1 + sum_i e_i),
 *                        e_i = exp(k_i.q_t/sqrt(dh) - log Z);
 *   per-token form: Effect_D(d) / |D_d|.
 * Positions: d is scored as if inserted right after T. Its keys are stored
 * rotated as if d ended at position -1 (the token after d is position 0);
 * the probe rotates q_t back by the insertion position, so k_i.q_t sees the
 * exact RoPE distance d's token i would have from t in [T | d | rest of the
 * prompt], whatever d's length.
 * Scoring is dot products only: two per (token, layer, head).
 *
 * Ground truth: dlogP(d) = log p(y | T, d, rest) - log p(y | T, rest) from
 * real forward passes (the T prefix of the KV cache is reused).
 *
 * Text LLMs (no item vocabulary; lrgd_effect_new_text): the prompts are the
 * item-title prompts of lrgd/textrec.h and y is item y's text: its
 * continuation c_0..c_{k-1} after the answer marker, so
 *   l = -log p(y | prompt) = -sum_j log p(c_j | prompt, c_<j)
 * over the whole vocabulary (what lrgd_textrec_score sums). The probe runs
 * [T | demos | Q | c_0..c_{k-2}]; the loss sits on the k rows t..t+k-1
 * that predict c (t: the answer marker's last token), the backward walks
 * those rows, and Effect_D sums the dot products above over them, with
 * g_r = dl/do_r at each: the first-order effect of d entering the attention
 * of the rows that read the answer. With k = 1 it is the item path's form.
 *
 * Ownership: *_new returns an object the caller frees with the matching
 * *_free. An engine borrows its model; stores and probes borrow their
 * engine; a selection owns copies of its items. */
#ifndef LRGD_EFFECT_H
#define LRGD_EFFECT_H

#include "lrgd/data.h"
#include "lrgd/eval.h"
#include "lrgd/model.h"
#include "lrgd/prompt.h"
#include "lrgd/textrec.h"
#include "lrgd/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- per-user phases: where a distributed runner plugs in ------------------
 *
 * The long computations below (Effect_D validity, Stage 1, each Stage 2
 * round, the collapse guard) are phases of independent per-user work whose
 * results are fixed-size records. A phase calls job(ctx, begin, end, rec)
 * to fill the records of items [begin, end) of a list of n (rec_size bytes
 * each, no pointers; the job may fail). With no map (the default) it is one
 * call over [0, n). A map may instead cut [0, n) into shards computed by
 * several processes, each with its own copy of the model and data, (and
 * checkpoint them); it must hand every process all n records in item order,
 * so that what the caller derives from them (sums in item order, decisions)
 * is the same in every process and equal to one process's. phase names the
 * phase (messages, checkpoint files); hash is what its records depend on
 * beyond the map's own configuration (the caller's state, e.g. the
 * demonstrations as a Stage 2 round starts). The library stays free of MPI:
 * src/dist/dist_map.h provides the map over MPI ranks. */
typedef lrgd_status (*lrgd_user_job)(void *ctx, int64_t begin, int64_t end, void *rec);
typedef struct lrgd_user_map {
    lrgd_status (*run)(void *self, const char *phase, uint64_t hash, int64_t n, size_t rec_size, lrgd_user_job job,
                       void *ctx, void *all);
    void *self;
} lrgd_user_map;

/* ---- the engine ---------------------------------------------------------- */

typedef struct lrgd_effect lrgd_effect;

/* An engine over a recommendation model (item vocabulary required;
 * LRGD_E_UNSUPPORTED for a text LLM, which goes through
 * lrgd_effect_new_text or lrgd_effect_new_data). T is [BOS]. Contexts up to
 * the model's seq_len. */
lrgd_status lrgd_effect_new(const lrgd_model *m, lrgd_effect **out);
/* An engine over a text LLM through the textrec tr (borrowed: it must
 * outlive the engine): T is how its prompts begin ([BOS] when the
 * vocabulary adds one, else empty); items are tr's dataset's internal ids;
 * a demonstration's tokens are the textrec's segment for it as the first
 * demonstration after T, a query's its query segment (its history capped
 * to fit tr's context with the longest target). Ground truth takes those
 * segments' tokens as they are: inserting d does not re-tokenize what
 * follows it. */
lrgd_status lrgd_effect_new_text(lrgd_textrec *tr, lrgd_effect **out);
/* Either path from a model and the dataset it recommends on: a
 * recommendation model whose items are ds's (lrgd_model_check_items) gets
 * lrgd_effect_new; a text LLM (no item vocabulary, a tokenizer) gets the text
 * path over a textrec the engine owns: titles from ds's item text ("item
 * <id>" without), every history item that fits (callers cap histories),
 * half of the context for the query and the target, half for the
 * demonstrations inserted before them. ds must outlive the engine. */
lrgd_status lrgd_effect_new_data(const lrgd_model *m, const lrgd_dataset *ds, lrgd_effect **out);
void lrgd_effect_free(lrgd_effect *e);
const lrgd_model *lrgd_effect_model(const lrgd_effect *e);
/* The item vocabulary; NULL on the text path. */
const lrgd_prompt_vocab *lrgd_effect_vocab(const lrgd_effect *e);
/* The textrec of the text path; NULL on the item path. */
lrgd_textrec *lrgd_effect_textrec(const lrgd_effect *e);
/* Token count of T. */
int lrgd_effect_n_instr(const lrgd_effect *e);

/* log p(y | tokens) at the last token, softmax over the item tokens (the
 * text path: the summed log-likelihood of y's text after tokens). The
 * first n_T tokens must be T (their KV cache is reused). */
lrgd_status lrgd_effect_logp(lrgd_effect *e, const int *tokens, int n, int32_t y, double *logp);

/* Tokens of a demonstration: hist (the most recent max_hist items; 0: all)
 * ANS next SEP. tok needs room for min(n_hist, max_hist) + 3. */
lrgd_status lrgd_demo_tokens(const lrgd_prompt_vocab *v, const lrgd_demo *d, int max_hist, int *tok, int *n);
/* Tokens of a query: hist (most recent max_hist) ANS. */
lrgd_status lrgd_query_tokens(const lrgd_prompt_vocab *v, const int32_t *hist, int n_hist, int max_hist, int *tok,
                              int *n);
/* The same through an engine, for either path (text: the textrec's
 * segments, see lrgd_effect_new_text). tok needs room for the model's
 * seq_len ints. */
lrgd_status lrgd_effect_demo_tokens(lrgd_effect *e, const lrgd_demo *d, int max_hist, int *tok, int *n);
lrgd_status lrgd_effect_query_tokens(lrgd_effect *e, const int32_t *hist, int n_hist, int max_hist, int *tok, int *n);

/* ---- probes: g, q, o, log Z at the answer row ----------------------------- */

typedef struct lrgd_probe lrgd_probe;

/* Run [T | demos (tokens, prompt order) | query] with target item y: forward,
 * then the answer-row backward. Candidates will be scored as inserted right
 * after T. */
lrgd_status lrgd_probe_run(lrgd_effect *e, const int *const *demo_tok, const int *demo_len, int n_demos,
                           const int *query_tok, int n_query, int32_t y, lrgd_probe **out);
/* Flags of lrgd_probe_run_ex. LRGD_PROBE_ALL_ROWS keeps g, q, o, log Z of
 * every row after the insertion point (the demonstrations already in the
 * prompt and the query), not only of the answer row, and scores sum over
 * them: the full first-order effect of inserting d, which also counts d's
 * direct effect on the rows that row t reads at later layers. Effect_D as
 * LRGD.md defines it is the default (answer row only). */
enum { LRGD_PROBE_ALL_ROWS = 1 };
lrgd_status lrgd_probe_run_ex(lrgd_effect *e, const int *const *demo_tok, const int *demo_len, int n_demos,
                              const int *query_tok, int n_query, int32_t y, unsigned flags, lrgd_probe **out);
void lrgd_probe_free(lrgd_probe *p);
double lrgd_probe_logp(const lrgd_probe *p);     /* log p(y | prompt) */
int lrgd_probe_n_tokens(const lrgd_probe *p);
/* g = dl/do_t of layer l, head h at the answer row (head_dim floats), and
 * the input-embedding gradient of the answer row (dim floats): read-only views. */
const float *lrgd_probe_grad(const lrgd_probe *p, int layer, int head);
const float *lrgd_probe_embd_grad(const lrgd_probe *p);
/* Rows the probe keeps (1; k on the text path; every row after T with
 * LRGD_PROBE_ALL_ROWS), the last n_targets of which carry the loss (the
 * answer row is n_rows - n_targets), and g at kept row `row` (NULL out of range). */
int lrgd_probe_n_rows(const lrgd_probe *p);
int lrgd_probe_n_targets(const lrgd_probe *p);
const float *lrgd_probe_grad_row(const lrgd_probe *p, int layer, int head, int row);
/* sum over layers and kv heads of |W_0|_F^2, W_0 = sum_{j in T u Q} v_j k_j^T / sqrt(dh)
 * (the user's own implicit model; the trust region is relative to it). */
double lrgd_probe_w0_norm2(const lrgd_probe *p);

/* ---- demonstration stores ------------------------------------------------- */

typedef struct lrgd_store lrgd_store;

lrgd_status lrgd_store_new(lrgd_effect *e, lrgd_store **out);
void lrgd_store_free(lrgd_store *s);
/* Forget every entry (keeps the memory). */
void lrgd_store_clear(lrgd_store *s);
int lrgd_store_n(const lrgd_store *s);
/* Plausibility (off by default: it costs the logits of every row): the
 * mean log-likelihood of a demonstration's item tokens, each given T and the
 * tokens before it, measured by lrgd_store_add while on. */
void lrgd_store_set_plaus(lrgd_store *s, int on);
/* Encode one demonstration (its tokens) at the slot after T; noise: NULL, or
 * n x dim values added to its input embeddings (the embedding-noise
 * perturbation). *id: its entry. */
lrgd_status lrgd_store_add(lrgd_store *s, const int *tokens, int n, const float *noise, int *id);
int lrgd_store_len(const lrgd_store *s, int id);
const int *lrgd_store_tokens(const lrgd_store *s, int id);
double lrgd_store_plaus(const lrgd_store *s, int id); /* NaN when not measured */
/* <dW_a, dW_b>_F summed over layers and kv heads (product form
 * sum_{i in a, j in b} (v_i.v_j)(k_i.k_j)/dh, both as if ending right before
 * the query: the position-free geometry of the implicit updates). */
double lrgd_store_inner(const lrgd_store *a_store, int a, const lrgd_store *b_store, int b);

/* Effect_D of entries ids[0..n) of s against probe p: effect[i] and
 * (optional) per_token[i] = effect[i] / len. */
lrgd_status lrgd_effect_score(const lrgd_store *s, const lrgd_probe *p, const int *ids, int n, double *effect,
                              double *per_token);
/* Effect_D of entries ids[0..n_ids) of s against each of n_probes probes
 * (the probes of many users against one shared pool of demonstrations):
 * effect[u * n_ids + i] is probe u's Effect_D of entry ids[i], and
 * (optional) per_token[u * n_ids + i] = that / len. The same numbers as
 * lrgd_effect_score per probe up to float32 rounding, faster once there are
 * several probes: the query vectors of all probes are scored together in
 * vector lanes (16 per vector; a probe of the embedded model fills 2), so an
 * entry's keys and values are read once per call. A probe's scores do not
 * depend on the other probes of the call or on the thread count. Every probe
 * must come from the store's model (any rows: the answer-row and the
 * all-rows forms may be mixed); ids may repeat. LRGD_E_INVALID for NULL
 * arguments, negative counts, an id outside the store or a probe of another
 * model; LRGD_E_NUMERIC when a score is not finite (all are written). */
lrgd_status lrgd_effect_score_matrix(const lrgd_store *s, const lrgd_probe *const *probes, int n_probes,
                                     const int *ids, int n_ids, double *effect, double *per_token);

/* ---- statistics -------------------------------------------------------------- */

/* Spearman's rho with average ranks for ties; NaN when n < 2 or a side is
 * constant. */
double lrgd_spearman(const double *x, const double *y, int n);
/* Pearson correlation (NaN when undefined). */
double lrgd_pearson(const double *x, const double *y, int n);

/* ---- validity: Effect_D against the ground truth ------------------------------
 *
 * For a seeded sample of users of a leave-one-out split: the target is the
 * validation item, the query the training items, the candidates the P most
 * similar training demonstrations (lrgd_demo_index_similar at the
 * validation step). Each distinct candidate is encoded once (shared by every
 * user), each user is probed once, then every (user, demonstration) pair is
 * scored with dot products; with truth, dlogP = log p(y | T, d, Q) -
 * log p(y | T, Q) is measured with a real forward pass per pair (T's cache
 * reused). The timings of both are taken in the same run.
 *
 * With shared_pool, every user is scored against ONE pool instead: pool
 * (P) users drawn by seed from the demonstration pool at the validation step
 * (lrgd_demo_index_pool: the users with >= 2 training items) that are not
 * among the scored users, ascending ids; each demonstration is built as a
 * candidate is (training items but the last, then the last as the answer).
 * The P demonstrations are encoded once per process, and the users are
 * probed and scored in blocks of up to 256 through lrgd_effect_score_matrix
 * (each block's scoring time shared evenly by its users); the all-rows form,
 * the truth and every summary are as above. LRGD_E_INVALID when fewer than P
 * such users exist. The scores do not depend on the blocks, the map's
 * shards or the thread count. */
typedef struct lrgd_validity_opts {
    int n_users;          /* sampled users (default 100) */
    const int32_t *users; /* or exactly these users (n_users of them) */
    int pool;             /* candidates per user (default 50) */
    int max_hist, demo_hist; /* default 50, 20 */
    int truth;            /* 1: measure dlogP (default 1) */
    int top_k;            /* for the gain summary (default 3) */
    uint64_t seed;
    const lrgd_user_map *map; /* NULL: every user in this process (see lrgd_user_map) */
    int shared_pool;      /* 1: one shared pool of `pool` demonstrations for every user (default 0) */
} lrgd_validity_opts;
void lrgd_validity_opts_init(lrgd_validity_opts *o);

typedef struct lrgd_validity_pair {
    int user, demo_user, len;   /* dataset ids; len: tokens of the demonstration */
    double effect, per_token;   /* Effect_D and Effect_D / len */
    double effect_all;          /* the all-rows form */
    double dlogp;               /* ground truth (NaN without truth) */
} lrgd_validity_pair;

typedef struct lrgd_validity {
    int n_users, n_pairs;
    lrgd_validity_pair *pairs;  /* grouped by user */
    double *logp0;              /* [n_users] log p(y | T, Q) */
    int32_t *users;             /* [n_users] */
    /* agreement (NaN without truth) */
    double rho;                 /* Spearman over all pairs: Effect_D vs dlogP */
    double rho_all_rows;        /* the all-rows form (LRGD_PROBE_ALL_ROWS) vs dlogP */
    double rho_per_token;       /* the per-token form vs dlogP */
    double rho_user_mean;       /* mean of the per-user Spearman rho (users with >= 3 pairs) */
    double pearson;
    double top1_agree;          /* share of users whose best demonstration by Effect_D is the best by dlogP */
    double gain_top, gain_all, gain_bottom; /* mean dlogP of each user's top_k by Effect_D, of all, of the bottom top_k */
    /* cost, seconds and counts of this run */
    double t_encode, t_probe, t_score, t_truth;
    int64_t n_encoded, n_truth;
    double us_score_per_pair;   /* Effect_D scoring only */
    double us_effect_per_pair;  /* scoring + encoding + probes, amortized over the pairs */
    double us_truth_per_pair;   /* one ground-truth forward pass */
} lrgd_validity;
void lrgd_validity_free(lrgd_validity *v);
lrgd_status lrgd_effect_validity(const lrgd_model *m, const lrgd_split *sp, const lrgd_validity_opts *o,
                                 lrgd_validity **out);

/* The model's item tokens are the dataset's items (same count, same external
 * ids in the same order), or the model is a text LLM (no item vocabulary, a
 * tokenizer: the dataset's items are shown by their text, lrgd/textrec.h):
 * what the commands require of --model and --data. Commands that need item
 * tokens (lrgd optimize) must refuse a text LLM themselves. */
lrgd_status lrgd_model_check_items(const lrgd_model *m, const lrgd_dataset *ds);
/* n distinct users of the split, a seeded sample (partial Fisher-Yates over
 * lrgd_split_users); n <= lrgd_split_n_users. */
lrgd_status lrgd_sample_users(const lrgd_split *sp, int n, uint64_t seed, int32_t *out);

/* ---- perturbations (LRGD.md §3) ------------------------------------------------
 *
 * Each perturbed copy applies every enabled kind, seeded by (seed, user,
 * demo, m) so that copies are reproducible and independent:
 *  - drop:       each history item is dropped with this probability (one stays);
 *  - sub_random: each item (history and answer) is replaced by a uniformly
 *                random item with this probability;
 *  - sub_pop:    ... by an item drawn by training popularity;
 *  - shuffle:    each history position swaps with a random history position
 *                with this probability (1: about a full shuffle);
 *  - noise:      Gaussian noise on the demonstration's input embeddings, std =
 *                noise * the RMS of those embeddings. */
typedef struct lrgd_perturb {
    double drop, sub_random, sub_pop, shuffle, noise;
} lrgd_perturb;

/* Item popularity for sub_pop: counts of the training items at a step. */
typedef struct lrgd_popdist lrgd_popdist;
lrgd_status lrgd_popdist_new(const lrgd_split *sp, int step, lrgd_popdist **out);
void lrgd_popdist_free(lrgd_popdist *p);

/* 1 if any kind is enabled. */
int lrgd_perturb_active(const lrgd_perturb *pt);
/* Perturb one demonstration's items. hist_out needs room for d->n_hist; the
 * result points into hist_out. pop may be NULL when sub_pop is 0. */
lrgd_status lrgd_perturb_items(const lrgd_perturb *pt, const lrgd_popdist *pop, int n_items, uint64_t seed, int user,
                               int demo, int m, const lrgd_demo *d, int32_t *hist_out, lrgd_demo *out);
/* The embedding noise of that copy (n x dim floats, given the token
 * embeddings emb of the n tokens); writes zeros when pt->noise is 0. */
void lrgd_perturb_noise(const lrgd_perturb *pt, uint64_t seed, int user, int demo, int m, const float *emb, int n,
                        int dim, float *noise);

/* ---- selections: demonstrations per user ------------------------------------------ */

typedef struct lrgd_selection lrgd_selection;

lrgd_status lrgd_selection_new(int n_users, lrgd_selection **out);
void lrgd_selection_free(lrgd_selection *s);
lrgd_status lrgd_selection_copy(const lrgd_selection *s, lrgd_selection **out);
int lrgd_selection_n_users(const lrgd_selection *s);
/* Set user u's demonstrations in prompt order (copied). src[i]: the pool user
 * a demonstration came from (-1 if unknown); src may be NULL. */
lrgd_status lrgd_selection_set(lrgd_selection *s, int u, const lrgd_demo *demos, const int32_t *src, int n);
int lrgd_selection_count(const lrgd_selection *s, int u); /* 0 when unset */
/* Demonstration i of u (pointers into s, valid until the next set of u). */
lrgd_status lrgd_selection_get(const lrgd_selection *s, int u, int i, lrgd_demo *d, int32_t *src);
/* The baselines as selections, in the same order as the model scorer uses:
 * LRGD_DEMOS_SIMILAR (the k most similar pool users, the most similar next
 * to the query) or LRGD_DEMOS_RANDOM, for the query histories of the given
 * users (NULL: every user of the split) at the index's step; ix must be
 * built on sp. */
lrgd_status lrgd_selection_baseline(const lrgd_split *sp, const lrgd_demo_index *ix, lrgd_demo_mode mode, int k,
                                    uint64_t seed, const int32_t *users, int n_users, lrgd_selection *s);

/* A scorer for lrgd_evaluate: user u's prompt is [BOS | u's selected
 * demonstrations | history ANS]; users without a selection get zero-shot
 * prompts. With perturb active, every demonstration is perturbed at scoring
 * time (the robustness curves), seeded by (seed, user, demo index, m = 0). The
 * model t is borrowed (prompts of a batch run as one packed forward pass). */
typedef struct lrgd_sel_scorer_opts {
    int max_hist;          /* query history cap (default 50) */
    int demo_hist;         /* demonstration history cap (default 20) */
    lrgd_perturb perturb;  /* test-time perturbation (default none) */
    const lrgd_popdist *pop; /* for sub_pop */
    uint64_t seed;
} lrgd_sel_scorer_opts;
void lrgd_sel_scorer_opts_init(lrgd_sel_scorer_opts *o);
lrgd_status lrgd_scorer_selection(lrgd_tmodel *t, const lrgd_selection *sel, const lrgd_sel_scorer_opts *o,
                                  lrgd_scorer *out);

/* ---- the two-stage optimizer (LRGD.md §4) ----------------------------------------- */

typedef struct lrgd_opt_opts {
    /* prompts */
    int k;              /* demonstrations chosen per user (default 3) */
    int pool;           /* P: similar training demonstrations scored per user (default 50) */
    int max_hist;       /* query history cap (default 50) */
    int demo_hist;      /* demonstration history cap (default 20) */
    int all_rows;       /* 1: score with the all-rows form (LRGD_PROBE_ALL_ROWS); 0: Effect_D at the answer row
                           as LRGD.md defines it (default 0) */
    /* robust effect */
    int use_perturb;    /* 0: plain Effect_D (the ablation) */
    lrgd_perturb perturb;
    int n_perturb;      /* M (default 8) */
    double beta;        /* robust = mean - beta * std over the M copies (default 0.5) */
    /* regularization */
    int use_reg;        /* 0: no regularizer at all (the ablation) */
    double lambda;      /* trust region: lambda * |sum_d dW_d|^2 / |W_0|^2 (default 0.05; 0: off) */
    double mu;          /* redundancy: mu * sum_{a<b} cos(dW_a, dW_b) (default 0.2; 0: off) */
    int use_plaus;      /* plausibility floor for refined demonstrations (default 1) */
    double plaus_delta; /* an edit's mean item log-likelihood may fall at most this far below the original's
                           (default 1.0 nats) */
    /* stage 2 */
    int stage;          /* 1: select only; 2: select, then refine (default 2) */
    int rounds;         /* edit rounds (default 3) */
    int proposals;      /* gradient-proposed swaps per demonstration position list (default 16) */
    int verify;         /* proposals checked with forward passes per user and round (default 4) */
    int n_perturb2;     /* perturbed copies in the stage-2 objective when use_perturb (default 2) */
    double guard_tol;   /* roll back when the held-out metric < stage-1 value - guard_tol (default 0) */
    int guard_logp;     /* 1: the held-out metric is mean log p(y); 0: NDCG@10 over all items (default) */
    int fault;          /* test hook: 1 = in the first round, replace every item of each edited
                           demonstration by random items and accept without checks */
    uint64_t seed;
    /* NULL: every phase in this process. With a map, Stage 1, the
     * validation log p, the guard and the final objective are sharded
     * as they are; a Stage 2 round is computed speculatively, every user
     * against the demonstrations as the round starts (sharded), then
     * merged in user order, and a user whose speculation read a
     * demonstration that an earlier user's accepted edit of the same round
     * changed is computed again: the result equals the sequential round
     * exactly (lrgd_opt_result.stage2_redone counts the recomputations). */
    const lrgd_user_map *map;
} lrgd_opt_opts;
void lrgd_opt_opts_init(lrgd_opt_opts *o);

/* Per user of an optimization run. */
typedef struct lrgd_opt_user {
    int user;
    int32_t y;               /* the validation item targeted */
    int n_pool;              /* candidates scored */
    double logp_zero;        /* log p(y) with no demonstrations */
    double logp_similar;     /* ... with the k most similar (the baseline) */
    double logp_stage1;      /* ... with the stage-1 choice (real forward pass) */
    double logp_stage2;      /* ... after stage 2 (= stage 1 when stage 2 did not run or changed nothing) */
    double obj_stage1;       /* stage 1's objective: the sum of the picks' regularized marginal gains */
    double j_stage1, j_stage2; /* stage 2's objective J (real forward passes, see optimize.c) of each choice */
    int edits;               /* items of the user's demonstrations that differ from stage 1 at the end */
} lrgd_opt_user;

typedef struct lrgd_opt_result {
    int n;                   /* optimized users */
    lrgd_opt_user *users;    /* [n] */
    lrgd_selection *stage1;  /* every optimized and held-out user's stage-1 choice */
    lrgd_selection *stage2;  /* after stage 2 (held-out users see the refined demonstrations too) */
    lrgd_selection *similar; /* the baseline's k most similar, for comparison */
    /* collapse guard */
    int n_hold;
    double hold_stage1;      /* held-out metric with the stage-1 demonstrations */
    double *hold_trace;      /* [n_rounds] after each round (before any roll back) */
    int n_rounds;            /* rounds run */
    int rolled_back;         /* 1: a round fell below stage 1 and was undone */
    double hold_final;
    int edits_accepted, edits_rolled_back;
    double seconds_stage1, seconds_stage2;
    int stage2_redone;       /* with a map: user-rounds recomputed in the merge (see lrgd_opt_opts.map) */
    double cpu_stage1, cpu_stage2; /* CPU seconds of this process (all its threads) in each stage */
} lrgd_opt_result;
void lrgd_opt_result_free(lrgd_opt_result *r);

/* Optimize the demonstrations of `users` at the leave-one-out validation
 * step (targets: validation items; the pool: training demonstrations at
 * that step; never a test item). hold: held-out validation users (not
 * optimized, disjoint from users) for the collapse guard; n_hold 0 turns the
 * guard off. pool_users: NULL (retrieve the P most similar per user) or a
 * fixed candidate list for every user (tests, planted pools). t: the model
 * (stage 2 needs its input-embedding gradients). */
lrgd_status lrgd_optimize(lrgd_tmodel *t, const lrgd_split *sp, const int32_t *users, int n_users,
                          const int32_t *hold, int n_hold, const int32_t *pool_users, int n_pool_users,
                          const lrgd_opt_opts *o, lrgd_opt_result **out);

/* Stage 1 for one query (exposed for tests and the replay): choose up to k
 * of the candidates cand[0..n) (demonstrations as items) for query
 * history q with target y. chosen[0..*n_chosen) are indices into cand in
 * prompt order; obj: the regularized objective of the choice (may be NULL). */
lrgd_status lrgd_stage1(lrgd_effect *e, const lrgd_demo *cand, int n_cand, const int32_t *q, int n_q, int32_t y,
                        int user, const lrgd_popdist *pop, const lrgd_opt_opts *o, int *chosen, int *n_chosen,
                        double *obj);

/* The stage-1 objective of a given set (in prompt order) against query
 * (q, y): sum of marginal robust effects (each against the prompt with the
 * demonstrations placed after it) minus the regularizers; with the switches
 * of o. Used by tests to prove the switches change the objective. */
lrgd_status lrgd_stage1_objective(lrgd_effect *e, const lrgd_demo *set, int n_set, const int32_t *q, int n_q,
                                  int32_t y, int user, const lrgd_popdist *pop, const lrgd_opt_opts *o, double *obj);

/* ---- long-term adaptation (LRGD.md §4) ------------------------------------------------ */

typedef struct lrgd_adapt_step {
    int step, n_users;
    double hr10_adapted, ndcg10_adapted, hr10_frozen, ndcg10_frozen;
    double mean_replaced;    /* demonstrations replaced per user at this step */
} lrgd_adapt_step;
typedef struct lrgd_adapt_result {
    int n_steps;
    lrgd_adapt_step *steps;  /* [n_steps] */
    double seconds;
} lrgd_adapt_result;
void lrgd_adapt_result_free(lrgd_adapt_result *r);

/* On a replay split: at step 0 choose each user's demonstrations by stage 1
 * (against the newest known item); at each later step r the pool is rebuilt
 * from what step r reveals (new demonstrations enter, every pool user's
 * demonstration is its newest), each user's choice is re-scored against its
 * newest known item together with the new pool, and demonstrations that
 * lose their place are replaced. Each step ranks the step's target (all
 * items, history excluded) with the adapted choice and with the choice
 * frozen at step 0 (its step-0 contents). */
lrgd_status lrgd_adapt(lrgd_tmodel *t, const lrgd_split *replay, const int32_t *users, int n_users,
                       const lrgd_opt_opts *o, lrgd_adapt_result **out);

/* ---- synthetic data with planted tastes (src/effect/synth.c) ------------------------ */

typedef struct lrgd_synth_opts {
    int n_groups;           /* disjoint item groups (default 4) */
    int clusters_per_group; /* taste clusters sharing each group's items (default 2) */
    int items_per_group;    /* default 16 */
    int users_per_cluster;  /* default 40 */
    int min_len, max_len;   /* sequence lengths (default 7..11) */
    double noise;           /* probability that a step emits a random item of the cluster (default 0.05) */
    int private_items;      /* items owned by each cluster besides the group's shared ones (default 0) */
    uint64_t seed;
} lrgd_synth_opts;
void lrgd_synth_opts_init(lrgd_synth_opts *o);

typedef struct lrgd_synth lrgd_synth;
lrgd_status lrgd_synth_new(const lrgd_synth_opts *o, lrgd_synth **out);
void lrgd_synth_free(lrgd_synth *s);
/* The dataset (owned by s; ids from 1 as in the Amazon files). */
const lrgd_dataset *lrgd_synth_dataset(const lrgd_synth *s);
int lrgd_synth_n_clusters(const lrgd_synth *s);
int lrgd_synth_cluster(const lrgd_synth *s, int u);
int lrgd_synth_group(const lrgd_synth *s, int u);
/* 1 if item is one of its group's shared items (not a cluster's private one). */
int lrgd_synth_is_shared(const lrgd_synth *s, int32_t item);
/* succ_c(item), -1 outside the cluster's items. */
int32_t lrgd_synth_next(const lrgd_synth *s, int c, int32_t item);
/* 1 if a -> y occurs consecutively in d's items (history then answer). */
int lrgd_synth_has_transition(const lrgd_demo *d, int32_t a, int32_t y);
/* Write the dataset as an Amazon-format file (atomically). */
lrgd_status lrgd_synth_write(const lrgd_synth *s, const char *path);

#ifdef __cplusplus
}
#endif

#endif
