/* The evaluation protocol (LRGD.md §5): scorers, candidate sets, ranks,
 * metrics, paired significance tests, and the classic baselines.
 *
 * Ownership: a scorer filled in by a constructor (lrgd_scorer_pop, ...)
 * holds its own state; release it with lrgd_scorer_release. A scorer
 * borrows the split it was fitted on. lrgd_evaluate returns a result the
 * caller frees with lrgd_eval_result_free. */
#ifndef LRGD_EVAL_H
#define LRGD_EVAL_H

#include "lrgd/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- scorers ---------------------------------------------------------------
 *
 * Anything that ranks items implements this table: Pop, ItemKNN, the
 * transformer, ICL with demonstrations. The evaluator calls score_batch from
 * one thread at a time with up to max_batch users; the scorer may use
 * OpenMP/BLAS inside (so a model can batch users into one GEMM). It must be
 * deterministic for a given input and thread count.
 *
 * score_batch: for i < n, user users[i] with input history hist[i][0 ..
 *   hist_len[i]) (time order, from the split: never a held-out item) fills
 *   scores[i * n_items + j] for every item j. Higher is better. NaN is an
 *   error (the evaluator reports LRGD_E_NUMERIC naming the user); +-Inf are
 *   allowed.
 * score_cands (optional, may be NULL): the same for sampled candidates only,
 *   cands[i][0 .. n_cands[i]) (target included, in a seeded shuffled order),
 *   writing out[i][c] for candidate c. For scorers whose cost grows with the
 *   number of items scored (text prompts listing candidates). When NULL the
 *   evaluator uses score_batch and reads the candidates' entries. */
typedef struct lrgd_scorer {
    const char *name; /* short name for tables ("pop", "itemknn", ...) */
    void *ctx;
    int n_items;   /* must equal the dataset's n_items */
    int max_batch; /* most users per call; 0: no limit */
    lrgd_status (*score_batch)(void *ctx, int n, const int32_t *users, const int32_t *const *hist,
                               const int *hist_len, float *scores);
    lrgd_status (*score_cands)(void *ctx, int n, const int32_t *users, const int32_t *const *hist,
                               const int *hist_len, const int32_t *const *cands, const int *n_cands,
                               float *const *out);
    void (*destroy)(void *ctx); /* frees ctx; may be NULL */
} lrgd_scorer;

/* Calls destroy(ctx) and clears the struct; safe on a zeroed struct. */
void lrgd_scorer_release(lrgd_scorer *sc);

/* ---- candidate sets and ranks ----------------------------------------------
 *
 * Full ranking (n_neg = 0): the target against every item.
 * Sampled (n_neg > 0): the target plus n_neg distinct negatives drawn
 *   uniformly, without replacement, from the items the user never interacted
 *   with (the whole sequence, held-out items included). The generator is
 *   lrgd_rng_seed(seed, stream = user id), so the draw depends only on
 *   (seed, user, dataset) and not on threads, batches, the step or the
 *   method: two methods compared with the same seed see the same negatives.
 * History exclusion (default): items of the user's input history are not
 *   ranked, except the target itself if it repeats an earlier item. In
 *   sampled mode negatives are never history items, so this changes nothing
 *   there. keep_history = 1 ranks history items too (full ranking only
 *   differs).
 * Rank (1-based): 1 + the number of ranked candidates other than the target
 *   whose score is >= the target's score. A tie counts against the target. */

/* Draw the n_neg negatives for user u (whole sequence excluded). out has room
 * for n_neg. LRGD_E_INVALID if the user has fewer than n_neg items never
 * interacted with. */
lrgd_status lrgd_sample_negatives(const lrgd_dataset *ds, int u, int n_neg, uint64_t seed, int32_t *out);

/* Rank of target from a full score row (n_items entries). exclude: item ids
 * not ranked (the target is ranked even if listed). Returns the rank, or -1
 * if a score is NaN. */
int32_t lrgd_rank_full(const float *scores, int n_items, int32_t target, const int32_t *exclude, int n_exclude);
/* Rank of cands[0..n) position t among candidate scores s[0..n); -1 on NaN. */
int32_t lrgd_rank_cands(const float *s, int n, int t);

/* ---- metrics ---------------------------------------------------------------- */

typedef enum lrgd_metric {
    LRGD_HR1 = 0, LRGD_HR5, LRGD_HR10, LRGD_HR20, /* 1 if rank <= k */
    LRGD_NDCG5, LRGD_NDCG10, LRGD_NDCG20,         /* 1/log2(rank+1) if rank <= k, else 0 */
    LRGD_MRR,                                     /* 1/rank */
    LRGD_N_METRICS
} lrgd_metric;

/* "HR@10", "NDCG@10", "MRR", ... */
const char *lrgd_metric_name(lrgd_metric m);
/* The metric of one user with rank (>= 1). */
double lrgd_metric_value(lrgd_metric m, int32_t rank);

/* A mean with its 95% confidence interval: mean +- t(0.975, n-1) sd/sqrt(n). */
typedef struct lrgd_interval {
    double mean, lo, hi, sd;
    int64_t n;
} lrgd_interval;
lrgd_status lrgd_mean_ci(const double *x, int64_t n, lrgd_interval *out);
/* Mean and interval of metric m over ranks[0..n). */
lrgd_status lrgd_metric_summary(lrgd_metric m, const int32_t *ranks, int64_t n, lrgd_interval *out);

/* Paired comparison of a and b over the same n users (d = a - b).
 * t-test: t = mean(d) / (sd(d)/sqrt(n)), df = n-1, two-sided p from the
 *   Student t CDF; CI = mean(d) +- t(0.975, df) sd/sqrt(n). If sd(d) = 0:
 *   p = 1 when mean(d) = 0, else p = 0, CI = [mean, mean].
 * sign test: users with d > 0 vs d < 0 (ties dropped), exact two-sided
 *   binomial p = min(1, 2 P(X <= min(pos, neg))), X ~ Bin(pos+neg, 1/2);
 *   p = 1 when every d is 0. */
typedef struct lrgd_paired {
    int64_t n;
    lrgd_interval a, b;           /* each method's mean and 95% interval */
    double diff, diff_lo, diff_hi; /* mean(a - b) and its 95% interval */
    double t, df, p_t;
    int64_t n_pos, n_neg, n_tie;
    double p_sign;
} lrgd_paired;
lrgd_status lrgd_paired_test(const double *a, const double *b, int64_t n, lrgd_paired *out);

/* Distribution functions used above (exposed so they can be checked). */
double lrgd_betainc(double a, double b, double x); /* regularized incomplete beta I_x(a, b) */
double lrgd_t_cdf(double t, double df);            /* P(T <= t), Student t with df > 0 */
double lrgd_t_quantile(double p, double df);       /* inverse of lrgd_t_cdf, 0 < p < 1 */
double lrgd_binom_cdf_half(int64_t k, int64_t n);  /* P(X <= k), X ~ Bin(n, 1/2) */

/* ---- the evaluator ----------------------------------------------------------- */

typedef struct lrgd_eval_opts {
    int n_neg;            /* 0: rank all items; > 0: target + n_neg sampled negatives */
    uint64_t seed;        /* for the negatives */
    int keep_history;     /* 1: rank the user's history items too (see above) */
    int batch;            /* users per score_batch call (0: 64, capped by max_batch) */
    const int32_t *users; /* evaluate only these users (must take part in the split); NULL: all */
    int n_users;
    const char *label;    /* progress label (NULL: scorer name) */
} lrgd_eval_opts;
/* Defaults: full ranking, seed 42, history excluded, batch 64, all users. */
void lrgd_eval_opts_init(lrgd_eval_opts *o);

typedef struct lrgd_eval_result {
    int n;             /* users evaluated */
    int32_t *users;    /* [n] dataset user ids, in evaluation order */
    int32_t *targets;  /* [n] target item of each */
    int32_t *ranks;    /* [n] 1-based rank of the target */
    int32_t *n_ranked; /* [n] number of items ranked, target included */
    double seconds;    /* wall time */
} lrgd_eval_result;

/* Rank every user's target at step of split with scorer sc. Users are
 * processed in batches; ranking is parallel (OpenMP) and the result does not
 * depend on the thread count or batch size. */
lrgd_status lrgd_evaluate(const lrgd_split *sp, int step, const lrgd_scorer *sc, const lrgd_eval_opts *opts,
                          lrgd_eval_result **out);
void lrgd_eval_result_free(lrgd_eval_result *r);

/* ---- baselines ----------------------------------------------------------------
 *
 * Both are fitted only on lrgd_split_train_items(sp, step, u) of every user.
 *
 * Pop: score(j) = number of training interactions with item j (repeats
 *   count). Equal counts tie (and ties count against the target).
 *
 * ItemKNN: items i, j co-occur in a user's training sequence if some
 *   occurrence of i and some occurrence of j (i != j) are at most `window`
 *   positions apart (window 0: anywhere in the sequence). C(i,j) = number of
 *   users in which they co-occur (each user counts once), N(i) = number of
 *   users whose training sequence contains i. Similarity:
 *     sim(i,j) = C(i,j) / (sqrt(N(i) N(j)) + shrink),
 *   the cosine of the binary user vectors when window = 0 and shrink = 0.
 *   Each item keeps its top_k neighbours (ties broken by smaller item id).
 *   Scoring a history h_0 .. h_{L-1} (oldest first):
 *     score(j) = sum_t decay^(L-1-t) * sim(h_t, j) over j in neighbours(h_t),
 *   so the most recent item has weight 1. Items reached by no neighbour list
 *   score 0, and with ties counting against the target a target no list
 *   reaches ranks behind every other candidate. pop_weight > 0 adds
 *   pop_weight * count(j) / max_k count(k) (Pop's counts on the same training
 *   items) to every score: a popularity back-off that orders the items the
 *   neighbour lists leave tied; the default 1e-3 leaves the order of
 *   clearly different neighbour scores alone (pop_weight = 0 is the pure
 *   method above). */
typedef struct lrgd_itemknn_opts {
    int top_k;    /* neighbours kept per item (default 100) */
    int window;   /* co-occurrence window in positions; 0: whole sequence (default 5) */
    double decay; /* recency weight base in (0, 1] (default 0.7) */
    double shrink;/* >= 0 (default 0) */
    double pop_weight; /* >= 0: add pop_weight * count(j) / max count (default 1e-3; 0: pure ItemKNN) */
} lrgd_itemknn_opts;
void lrgd_itemknn_opts_init(lrgd_itemknn_opts *o);

lrgd_status lrgd_scorer_pop(const lrgd_split *sp, int step, lrgd_scorer *out);
lrgd_status lrgd_scorer_itemknn(const lrgd_split *sp, int step, const lrgd_itemknn_opts *o, lrgd_scorer *out);
/* The neighbour list of item i of an ItemKNN scorer: ids and similarities,
 * best first. Other scorers: LRGD_E_INVALID. */
lrgd_status lrgd_itemknn_neighbours(const lrgd_scorer *sc, int i, const int32_t **ids, const float **sims, int *n);

#ifdef __cplusplus
}
#endif

#endif
