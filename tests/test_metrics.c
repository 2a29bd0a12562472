/* Ranks, candidates, metrics and significance tests: pinned by hand (ties
 * included), against brute-force references (sort everything, find the
 * target), and the distribution functions against closed forms and tables. */
#include "core/core.h"
#include "lrgd/eval.h"
#include "test.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- metrics from ranks, by hand -------------------------------------------- */

static void test_metric_values(void)
{
    /* rank 1: every HR and NDCG is 1 (1/log2(2) = 1), MRR 1. */
    for (int m = 0; m < LRGD_N_METRICS; m++) CHECK_NEAR(lrgd_metric_value((lrgd_metric)m, 1), 1.0, 1e-15);
    /* rank 3: HR@1 0, HR@5.. 1, NDCG@k = 1/log2(4) = 0.5, MRR 1/3. */
    CHECK(lrgd_metric_value(LRGD_HR1, 3) == 0 && lrgd_metric_value(LRGD_HR5, 3) == 1);
    CHECK_NEAR(lrgd_metric_value(LRGD_NDCG5, 3), 0.5, 1e-15);
    CHECK_NEAR(lrgd_metric_value(LRGD_NDCG20, 3), 0.5, 1e-15);
    CHECK_NEAR(lrgd_metric_value(LRGD_MRR, 3), 1.0 / 3, 1e-15);
    /* rank 5 is inside @5: NDCG@5 = 1/log2(6). rank 6 is outside. */
    CHECK(lrgd_metric_value(LRGD_HR5, 5) == 1 && lrgd_metric_value(LRGD_HR5, 6) == 0);
    CHECK_NEAR(lrgd_metric_value(LRGD_NDCG5, 5), 1.0 / log2(6.0), 1e-15);
    CHECK(lrgd_metric_value(LRGD_NDCG5, 6) == 0);
    /* rank 7: NDCG@10 = 1/log2(8) = 1/3, NDCG@5 = 0, HR@10 = 1. */
    CHECK_NEAR(lrgd_metric_value(LRGD_NDCG10, 7), 1.0 / 3, 1e-15);
    CHECK(lrgd_metric_value(LRGD_NDCG5, 7) == 0 && lrgd_metric_value(LRGD_HR10, 7) == 1);
    /* rank 10 / 11 at the @10 border; rank 15: NDCG@20 = 1/log2(16) = 0.25. */
    CHECK(lrgd_metric_value(LRGD_HR10, 10) == 1 && lrgd_metric_value(LRGD_HR10, 11) == 0);
    CHECK_NEAR(lrgd_metric_value(LRGD_NDCG10, 10), 1.0 / log2(11.0), 1e-15);
    CHECK_NEAR(lrgd_metric_value(LRGD_NDCG20, 15), 0.25, 1e-15);
    CHECK(lrgd_metric_value(LRGD_HR20, 20) == 1 && lrgd_metric_value(LRGD_HR20, 21) == 0);
    CHECK(lrgd_metric_value(LRGD_NDCG20, 21) == 0);
    CHECK_NEAR(lrgd_metric_value(LRGD_MRR, 21), 1.0 / 21, 1e-15);
    CHECK(isnan(lrgd_metric_value(LRGD_MRR, 0)));
    CHECK(strcmp(lrgd_metric_name(LRGD_NDCG10), "NDCG@10") == 0 && strcmp(lrgd_metric_name(LRGD_MRR), "MRR") == 0);

    /* Averages: ranks {1, 3, 7, 30}: HR@5 = 2/4, NDCG@10 = (1 + 0.5 + 1/3 + 0)/4,
     * MRR = (1 + 1/3 + 1/7 + 1/30)/4. */
    int32_t ranks[] = {1, 3, 7, 30};
    lrgd_interval iv;
    CHECK_OK(lrgd_metric_summary(LRGD_HR5, ranks, 4, &iv));
    CHECK_NEAR(iv.mean, 0.5, 1e-15);
    CHECK_OK(lrgd_metric_summary(LRGD_NDCG10, ranks, 4, &iv));
    CHECK_NEAR(iv.mean, (1 + 0.5 + 1.0 / 3) / 4, 1e-15);
    CHECK_OK(lrgd_metric_summary(LRGD_MRR, ranks, 4, &iv));
    CHECK_NEAR(iv.mean, (1 + 1.0 / 3 + 1.0 / 7 + 1.0 / 30) / 4, 1e-15);
    int32_t bad[] = {1, 0};
    CHECK(lrgd_metric_summary(LRGD_MRR, bad, 2, &iv) == LRGD_E_INVALID);
}

/* ---- ranks, by hand and brute force ------------------------------------------ */

static void test_rank_by_hand(void)
{
    /* target 0 has 0.5; items 1 (0.9), 2 (0.5) and 4 (0.5) are >= it:
     * the two ties count against the target, so rank = 1 + 3 = 4. */
    float s[] = {0.5f, 0.9f, 0.5f, 0.1f, 0.5f};
    CHECK(lrgd_rank_full(s, 5, 0, NULL, 0) == 4);
    /* excluding item 1 (history) -> 3; a repeated history item counts once */
    CHECK(lrgd_rank_full(s, 5, 0, (int32_t[]){1}, 1) == 3);
    CHECK(lrgd_rank_full(s, 5, 0, (int32_t[]){1, 2, 1}, 3) == 2);
    /* excluding a lower item changes nothing; the target is never excluded */
    CHECK(lrgd_rank_full(s, 5, 0, (int32_t[]){3}, 1) == 4);
    CHECK(lrgd_rank_full(s, 5, 0, (int32_t[]){0, 1}, 2) == 3);
    /* best item: nothing >= 0.9 but itself */
    CHECK(lrgd_rank_full(s, 5, 1, NULL, 0) == 1);
    /* worst: everything else is >= 0.1 */
    CHECK(lrgd_rank_full(s, 5, 3, NULL, 0) == 5);
    /* all tied: the target is last */
    float z[] = {0, 0, 0, 0};
    CHECK(lrgd_rank_full(z, 4, 2, NULL, 0) == 4);
    /* -inf is an ordinary (lowest) score; NaN anywhere is an error */
    float inf[] = {-INFINITY, 1, -INFINITY};
    CHECK(lrgd_rank_full(inf, 3, 0, NULL, 0) == 3 && lrgd_rank_full(inf, 3, 1, NULL, 0) == 1);
    float nan[] = {1, NAN, 0};
    CHECK(lrgd_rank_full(nan, 3, 0, NULL, 0) == -1 && lrgd_rank_full(nan, 3, 1, NULL, 0) == -1);
    CHECK(lrgd_rank_full(s, 5, 5, NULL, 0) == -1);
    /* candidates: same rule */
    float c[] = {0.2f, 0.7f, 0.7f, 0.1f};
    CHECK(lrgd_rank_cands(c, 4, 1) == 2 && lrgd_rank_cands(c, 4, 2) == 2 && lrgd_rank_cands(c, 4, 0) == 3);
    CHECK(lrgd_rank_cands(c, 4, 3) == 4);
    float cn[] = {0.2f, NAN};
    CHECK(lrgd_rank_cands(cn, 2, 0) == -1);
}

typedef struct { float s; int is_target; int id; } bf_item;

/* Descending score; among equal scores the target goes last (ties count
 * against it). */
static int bf_cmp(const void *a, const void *b)
{
    const bf_item *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    if (x->is_target != y->is_target) return x->is_target ? 1 : -1;
    return x->id - y->id;
}

/* Brute-force metric from a sorted list: DCG over the top k with one
 * relevant item, IDCG = 1. */
static double bf_metric(lrgd_metric m, const bf_item *sorted, int n)
{
    int pos = 0;
    while (!sorted[pos].is_target) pos++;
    int ks[] = {1, 5, 10, 20, 5, 10, 20};
    if (m == LRGD_MRR) return 1.0 / (pos + 1);
    int k = ks[m];
    if (m <= LRGD_HR20) {
        for (int i = 0; i < k && i < n; i++) if (sorted[i].is_target) return 1;
        return 0;
    }
    double dcg = 0;
    for (int i = 0; i < k && i < n; i++) dcg += sorted[i].is_target / log2(i + 2.0);
    return dcg;
}

static void test_rank_brute_force(void)
{
    lrgd_rng r;
    lrgd_rng_seed(&r, 123, 0);
    int mism = 0, trials = 3000;
    for (int t = 0; t < trials; t++) {
        int n = 1 + (int)lrgd_rng_below(&r, 60);
        float s[64];
        /* few distinct values: ties everywhere */
        for (int j = 0; j < n; j++) s[j] = (float)lrgd_rng_below(&r, 6) * 0.25f;
        int32_t target = (int32_t)lrgd_rng_below(&r, (uint32_t)n);
        int32_t ex[20];
        int nex = (int)lrgd_rng_below(&r, 20);
        for (int k = 0; k < nex; k++) ex[k] = (int32_t)lrgd_rng_below(&r, (uint32_t)n);
        bf_item list[64];
        int m = 0;
        for (int j = 0; j < n; j++) {
            int excluded = 0;
            for (int k = 0; k < nex; k++) excluded |= ex[k] == j;
            if (excluded && j != target) continue;
            list[m++] = (bf_item){s[j], j == target, j};
        }
        qsort(list, (size_t)m, sizeof *list, bf_cmp);
        int pos = 0;
        while (!list[pos].is_target) pos++;
        int32_t rank = lrgd_rank_full(s, n, target, ex, nex);
        if (rank != pos + 1) mism++;
        for (int mm = 0; mm < LRGD_N_METRICS; mm++)
            if (fabs(lrgd_metric_value((lrgd_metric)mm, rank) - bf_metric((lrgd_metric)mm, list, m)) > 1e-12) mism++;
        /* candidate form: the first m entries of a fresh random list */
        int tc = (int)lrgd_rng_below(&r, (uint32_t)n);
        bf_item cl[64];
        for (int j = 0; j < n; j++) cl[j] = (bf_item){s[j], j == tc, j};
        qsort(cl, (size_t)n, sizeof *cl, bf_cmp);
        int cpos = 0;
        while (!cl[cpos].is_target) cpos++;
        if (lrgd_rank_cands(s, n, tc) != cpos + 1) mism++;
    }
    CHECK_MSG(mism == 0, "%d mismatches against the brute-force ranking", mism);
}

/* ---- the evaluator with a planted scorer ----------------------------------------- */

/* Scores that depend only on (user, item), with ties: hash mod 8. */
static float table_score(int32_t u, int32_t j)
{
    uint64_t h = (uint64_t)u * 0x9E3779B97F4A7C15ull ^ (uint64_t)j * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return (float)(h % 8);
}

typedef struct { int n_items; int nan_user; int calls; int max_seen; } table_ctx;

static lrgd_status table_batch(void *ctx, int n, const int32_t *users, const int32_t *const *hist, const int *hist_len,
                               float *scores)
{
    (void)hist; (void)hist_len;
    table_ctx *c = ctx;
    c->calls++;
    if (n > c->max_seen) c->max_seen = n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c->n_items; j++)
            scores[(size_t)i * c->n_items + j] = users[i] == c->nan_user && j == 3 ? NAN : table_score(users[i], j);
    return LRGD_OK;
}

static lrgd_status table_cands(void *ctx, int n, const int32_t *users, const int32_t *const *hist, const int *hist_len,
                               const int32_t *const *cands, const int *n_cands, float *const *out)
{
    (void)ctx; (void)hist; (void)hist_len;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n_cands[i]; k++) out[i][k] = table_score(users[i], cands[i][k]);
    return LRGD_OK;
}

/* Random planted dataset: n_users sequences over n_items, lengths 3..14,
 * repeats possible (so a target can repeat a history item). */
static lrgd_dataset *planted(int n_users, int n_items, uint64_t seed)
{
    int64_t *off = malloc(((size_t)n_users + 1) * sizeof *off);
    int32_t *it = malloc((size_t)n_users * 14 * sizeof *it);
    lrgd_rng r;
    lrgd_rng_seed(&r, seed, 0);
    off[0] = 0;
    for (int u = 0; u < n_users; u++) {
        int n = 3 + (int)lrgd_rng_below(&r, 12);
        for (int k = 0; k < n; k++) it[off[u] + k] = (int32_t)lrgd_rng_below(&r, (uint32_t)n_items);
        off[u + 1] = off[u] + n;
    }
    lrgd_dataset *ds = NULL;
    CHECK_OK(lrgd_dataset_from_sequences(n_users, off, it, n_items, &ds));
    free(off);
    free(it);
    return ds;
}

/* Brute-force rank of user u at step with full ranking / sampled negatives. */
static int32_t bf_user_rank(const lrgd_split *sp, int step, int u, int keep, const int32_t *negs, int n_neg,
                            int *n_ranked)
{
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    int ni = lrgd_dataset_n_items(ds);
    const int32_t *h;
    int hl;
    lrgd_split_history(sp, step, u, &h, &hl);
    int32_t target = lrgd_split_target(sp, step, u);
    bf_item *list = malloc((size_t)ni * sizeof *list);
    int m = 0;
    if (negs) {
        list[m++] = (bf_item){table_score(u, target), 1, target};
        for (int k = 0; k < n_neg; k++) list[m++] = (bf_item){table_score(u, negs[k]), 0, negs[k]};
    } else {
        for (int j = 0; j < ni; j++) {
            int in_hist = 0;
            for (int k = 0; k < hl; k++) in_hist |= h[k] == j;
            if (in_hist && !keep && j != target) continue;
            list[m++] = (bf_item){table_score(u, j), j == target, j};
        }
    }
    qsort(list, (size_t)m, sizeof *list, bf_cmp);
    int pos = 0;
    while (!list[pos].is_target) pos++;
    free(list);
    *n_ranked = m;
    return pos + 1;
}

static void test_evaluator(void)
{
    const int NI = 60;
    lrgd_dataset *ds = planted(150, NI, 5);
    if (!ds) return;
    lrgd_split *sp = NULL;
    CHECK_OK(lrgd_split_loo(ds, &sp));
    if (!sp) { lrgd_dataset_free(ds); return; }
    table_ctx tc = {NI, -1, 0, 0};
    lrgd_scorer sc = {"table", &tc, NI, 0, table_batch, NULL, NULL};

    for (int mode = 0; mode < 4; mode++) {
        int n_neg = mode == 2 ? 19 : mode == 3 ? 30 : 0, keep = mode == 1;
        for (int step = 0; step < 2; step++) {
            lrgd_eval_opts o;
            lrgd_eval_opts_init(&o);
            o.n_neg = n_neg;
            o.keep_history = keep;
            o.seed = 99;
            o.batch = 7; /* odd batch size: the last batch is partial */
            lrgd_eval_result *res = NULL;
            tc.max_seen = 0;
            CHECK_OK(lrgd_evaluate(sp, step, &sc, &o, &res));
            if (!res) continue;
            CHECK(res->n == lrgd_split_n_users(sp));
            CHECK(tc.max_seen <= 7);
            int mism = 0;
            for (int i = 0; i < res->n; i++) {
                int u = res->users[i], nr;
                int32_t negs[40];
                if (n_neg) CHECK_OK(lrgd_sample_negatives(ds, u, n_neg, 99, negs));
                int32_t want = bf_user_rank(sp, step, u, keep, n_neg ? negs : NULL, n_neg, &nr);
                mism += res->ranks[i] != want || res->n_ranked[i] != nr || res->targets[i] != lrgd_split_target(sp, step, u);
            }
            CHECK_MSG(mism == 0, "mode %d step %d: %d users differ from brute force", mode, step, mism);

            /* Same ranks with one thread and one big batch, and through
             * score_cands when sampled. */
            int saved = omp_get_max_threads();
            omp_set_num_threads(1);
            o.batch = 1000;
            lrgd_scorer sc2 = sc;
            if (n_neg) sc2.score_cands = table_cands;
            lrgd_eval_result *res2 = NULL;
            CHECK_OK(lrgd_evaluate(sp, step, &sc2, &o, &res2));
            omp_set_num_threads(saved);
            if (res2) {
                CHECK(res2->n == res->n);
                CHECK(memcmp(res2->ranks, res->ranks, (size_t)res->n * sizeof *res->ranks) == 0);
                CHECK(memcmp(res2->users, res->users, (size_t)res->n * sizeof *res->users) == 0);
            }
            lrgd_eval_result_free(res2);
            lrgd_eval_result_free(res);
        }
    }

    /* A subset of users, in the given order. */
    lrgd_eval_opts o;
    lrgd_eval_opts_init(&o);
    int32_t some[] = {17, 3, 99};
    o.users = some;
    o.n_users = 3;
    lrgd_eval_result *res = NULL;
    CHECK_OK(lrgd_evaluate(sp, LRGD_STEP_TEST, &sc, &o, &res));
    if (res) {
        int nr;
        CHECK(res->n == 3 && res->users[0] == 17 && res->users[2] == 99);
        CHECK(res->ranks[1] == bf_user_rank(sp, LRGD_STEP_TEST, 3, 0, NULL, 0, &nr));
    }
    lrgd_eval_result_free(res);

    /* NaN from the scorer: LRGD_E_NUMERIC naming the user. */
    tc.nan_user = 42;
    lrgd_eval_opts_init(&o);
    CHECK(lrgd_evaluate(sp, LRGD_STEP_TEST, &sc, &o, &res) == LRGD_E_NUMERIC && res == NULL);
    CHECK_MSG(strstr(lrgd_last_error(), "user 42") != NULL, "message: %s", lrgd_last_error());
    tc.nan_user = -1;

    /* Bad requests. */
    o.n_neg = NI;
    CHECK(lrgd_evaluate(sp, LRGD_STEP_TEST, &sc, &o, &res) == LRGD_E_INVALID);
    o.n_neg = 0;
    CHECK(lrgd_evaluate(sp, 2, &sc, &o, &res) == LRGD_E_INVALID);
    lrgd_scorer wrong = sc;
    wrong.n_items = NI + 1;
    CHECK(lrgd_evaluate(sp, 0, &wrong, &o, &res) == LRGD_E_INVALID);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
}

/* ---- negatives -------------------------------------------------------------------- */

static void test_negatives(void)
{
    lrgd_dataset *ds = planted(200, 300, 9);
    if (!ds) return;
    int bad = 0;
    for (int u = 0; u < 200; u++) {
        const int32_t *seq;
        int n;
        lrgd_dataset_user_items(ds, u, &seq, &n);
        int32_t a[99], b[99], c[99];
        CHECK_OK(lrgd_sample_negatives(ds, u, 99, 1, a));
        CHECK_OK(lrgd_sample_negatives(ds, u, 99, 1, b));
        CHECK_OK(lrgd_sample_negatives(ds, u, 99, 2, c));
        bad += memcmp(a, b, sizeof a) != 0;  /* reproducible */
        bad += memcmp(a, c, sizeof a) == 0;  /* another seed, another draw */
        for (int k = 0; k < 99; k++) {
            bad += a[k] < 0 || a[k] >= 300;
            for (int q = 0; q < n; q++) bad += a[k] == seq[q]; /* never a history item */
            for (int q = 0; q < k; q++) bad += a[k] == a[q];   /* distinct */
        }
    }
    CHECK_MSG(bad == 0, "%d problems with sampled negatives", bad);
    lrgd_dataset_free(ds);

    /* Uniformity, both code paths. One user holding items 0..9 of 30: 20
     * available. Draw 5 (rejection path) or 15 (dense path) with 4000 seeds;
     * each available item is expected 4000*5/20 = 1000 / 4000*15/20 = 3000
     * times, sd about sqrt(4000 p (1-p)) <= 28; allow +-150. */
    int64_t off[] = {0, 10};
    int32_t it[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK_OK(lrgd_dataset_from_sequences(1, off, it, 30, &ds));
    if (!ds) return;
    for (int pass = 0; pass < 2; pass++) {
        int k = pass ? 15 : 5, cnt[30] = {0};
        double want = 4000.0 * k / 20;
        for (int s = 0; s < 4000; s++) {
            int32_t o[15];
            CHECK_OK(lrgd_sample_negatives(ds, 0, k, (uint64_t)s, o));
            for (int q = 0; q < k; q++) cnt[o[q]]++;
        }
        for (int j = 0; j < 30; j++) {
            if (j < 10) CHECK(cnt[j] == 0);
            else CHECK_MSG(fabs(cnt[j] - want) < 150, "item %d drawn %d times, expected about %.0f", j, cnt[j], want);
        }
    }
    int32_t o[21];
    CHECK(lrgd_sample_negatives(ds, 0, 21, 1, o) == LRGD_E_INVALID);
    CHECK(lrgd_sample_negatives(ds, 0, 20, 1, o) == LRGD_OK);
    lrgd_dataset_free(ds);
}

/* ---- distributions and tests --------------------------------------------------------- */

/* Student t CDF in closed form for small df (independent of the beta route):
 * df=1: 1/2 + atan(t)/pi; df=2: 1/2 + t/(2 sqrt(2+t^2));
 * even df: 1/2 + (x/2) sum_{j<df/2} c_j (1-x^2)^j, x = t/sqrt(df+t^2),
 * c_0 = 1, c_j = c_{j-1} (2j-1)/(2j). */
static double t_cdf_closed(double t, int df)
{
    if (df == 1) return 0.5 + atan(t) / M_PI;
    double x = t / sqrt(df + t * t), c = 1, sum = 0, pw = 1;
    for (int j = 0; j < df / 2; j++) {
        if (j > 0) c *= (2.0 * j - 1) / (2.0 * j);
        sum += c * pw;
        pw *= 1 - x * x;
    }
    return 0.5 + 0.5 * x * sum;
}

static void test_distributions(void)
{
    /* I_x(a,1) = x^a; I_x(1,b) = 1-(1-x)^b; I_{1/2}(a,a) = 1/2; symmetry. */
    double xs[] = {0.01, 0.2, 0.5, 0.77, 0.999};
    for (int i = 0; i < 5; i++) {
        double x = xs[i];
        CHECK_NEAR(lrgd_betainc(3.5, 1, x), pow(x, 3.5), 1e-13);
        CHECK_NEAR(lrgd_betainc(1, 7, x), 1 - pow(1 - x, 7), 1e-13);
        CHECK_NEAR(lrgd_betainc(2.5, 4, x), 1 - lrgd_betainc(4, 2.5, 1 - x), 1e-13);
    }
    CHECK_NEAR(lrgd_betainc(40, 40, 0.5), 0.5, 1e-13);
    CHECK_NEAR(lrgd_betainc(0.5, 0.5, 0.5), 0.5, 1e-13);
    /* I_x(1/2,1/2) = (2/pi) asin(sqrt x) */
    CHECK_NEAR(lrgd_betainc(0.5, 0.5, 0.3), 2 / M_PI * asin(sqrt(0.3)), 1e-13);
    CHECK(lrgd_betainc(1, 1, 0) == 0 && lrgd_betainc(1, 1, 1) == 1 && isnan(lrgd_betainc(-1, 1, 0.5)));

    int dfs[] = {1, 2, 4, 6, 10};
    double ts[] = {-7.5, -2.1, -0.3, 0, 0.4, 1.96, 3.3, 12};
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 8; b++)
            CHECK_NEAR(lrgd_t_cdf(ts[b], dfs[a]), t_cdf_closed(ts[b], dfs[a]), 1e-12);
    /* Large df tends to the normal: Phi(t) = erfc(-t/sqrt 2)/2. */
    CHECK_NEAR(lrgd_t_cdf(1.7, 1e8), 0.5 * erfc(-1.7 / sqrt(2.0)), 1e-7);
    CHECK_NEAR(lrgd_t_cdf(-2.5, 1e8), 0.5 * erfc(2.5 / sqrt(2.0)), 1e-7);

    /* Quantiles: exact for df 1 (tan(pi (p - 1/2))) and df 2
     * (t^2 = 2a^2/(1-a^2), a = 2p-1: p=.975 -> t = 4.302653); tables to 3
     * decimals for the rest (t_.975,10 = 2.228; t_.975,30 = 2.042;
     * t_.995,5 = 4.032; t_.975,4 = 2.776) and 1.960 in the normal limit. */
    CHECK_NEAR(lrgd_t_quantile(0.975, 1), tan(M_PI * 0.475), 1e-9);
    CHECK_NEAR(lrgd_t_quantile(0.975, 2), sqrt(2 * 0.95 * 0.95 / (1 - 0.95 * 0.95)), 1e-9);
    CHECK_NEAR(lrgd_t_quantile(0.975, 10), 2.228, 5e-4);
    CHECK_NEAR(lrgd_t_quantile(0.975, 30), 2.042, 5e-4);
    CHECK_NEAR(lrgd_t_quantile(0.995, 5), 4.032, 5e-4);
    CHECK_NEAR(lrgd_t_quantile(0.975, 4), 2.776, 5e-4);
    CHECK_NEAR(lrgd_t_quantile(0.975, 1e7), 1.960, 5e-4);
    CHECK_NEAR(lrgd_t_quantile(0.025, 10), -lrgd_t_quantile(0.975, 10), 1e-12);
    CHECK_NEAR(lrgd_t_cdf(lrgd_t_quantile(0.9, 35000), 35000), 0.9, 1e-12);

    /* Binomial(n, 1/2) CDF: small cases by hand, large n against a forward
     * recurrence from P(X=0) = 2^-n (a different route from the loader's). */
    CHECK_NEAR(lrgd_binom_cdf_half(1, 10), 11.0 / 1024, 1e-15);
    CHECK_NEAR(lrgd_binom_cdf_half(0, 5), 1.0 / 32, 1e-15);
    CHECK_NEAR(lrgd_binom_cdf_half(2, 4), 11.0 / 16, 1e-15); /* 1+4+6 of 16 */
    CHECK_NEAR(lrgd_binom_cdf_half(3, 5), 26.0 / 32, 1e-15); /* 1+5+10+10 of 32 */
    CHECK(lrgd_binom_cdf_half(-1, 5) == 0 && lrgd_binom_cdf_half(5, 5) == 1);
    for (int n = 100; n <= 1000; n += 450) {
        double p = ldexp(1.0, -n), sum = 0;
        for (int k = 0; k <= n; k++) {
            sum += p;
            if (k % 37 == 0 || k == n / 2 - 20)
                CHECK_MSG(fabs(lrgd_binom_cdf_half(k, n) - sum) <= 1e-10 * sum + 1e-300,
                          "n=%d k=%d: %.17g vs %.17g", n, k, lrgd_binom_cdf_half(k, n), sum);
            p *= (double)(n - k) / (k + 1);
        }
    }
}

static void test_paired(void)
{
    /* d = a - b = 1,2,3,4,5: mean 3, sd = sqrt(10/4), se = sqrt(0.5),
     * t = 3/sqrt(0.5) = 3 sqrt 2, df = 4. With the df=4 closed form,
     * x = t/sqrt(4+t^2) = 3/sqrt 11, 1-x^2 = 2/11:
     * F = 1/2 + (x/2)(1 + (1-x^2)/2) = 1/2 + 18/(11 sqrt 11), so the
     * two-sided p = 2(1-F) = 1 - 36/(11 sqrt 11) = 0.013236...
     * CI = 3 +- t_.975,4 * sqrt(0.5) = 3 +- 2.776 * 0.70711 (table).
     * Sign test: 5 of 5 positive: p = 2 * 2^-5 = 0.0625. */
    double a[] = {1, 2, 3, 4, 5}, b[] = {0, 0, 0, 0, 0};
    lrgd_paired p;
    CHECK_OK(lrgd_paired_test(a, b, 5, &p));
    CHECK_NEAR(p.diff, 3, 1e-15);
    CHECK_NEAR(p.t, 3 * sqrt(2.0), 1e-12);
    CHECK_NEAR(p.df, 4, 0);
    CHECK_NEAR(p.p_t, 1 - 36 / (11 * sqrt(11.0)), 1e-12);
    CHECK_NEAR(p.diff_lo, 3 - 2.776 * sqrt(0.5), 5e-4);
    CHECK_NEAR(p.diff_hi, 3 + 2.776 * sqrt(0.5), 5e-4);
    CHECK(p.n_pos == 5 && p.n_neg == 0 && p.n_tie == 0);
    CHECK_NEAR(p.p_sign, 0.0625, 1e-15);
    CHECK_NEAR(p.a.mean, 3, 1e-15);
    CHECK_NEAR(p.b.mean, 0, 0);

    /* Sign test with ties: 9 up, 1 down, 3 equal -> ties dropped, n = 10,
     * p = 2 P(X <= 1) = 2 * 11/1024 = 0.021484375. */
    double sa[13], sb[13];
    for (int i = 0; i < 13; i++) { sa[i] = i < 9 ? 1 : 0; sb[i] = i == 9 ? 1 : 0; }
    CHECK_OK(lrgd_paired_test(sa, sb, 13, &p));
    CHECK(p.n_pos == 9 && p.n_neg == 1 && p.n_tie == 3);
    CHECK_NEAR(p.p_sign, 22.0 / 1024, 1e-15);

    /* Identical methods: nothing to test. A constant shift: p_t = 0. */
    CHECK_OK(lrgd_paired_test(a, a, 5, &p));
    CHECK(p.p_t == 1 && p.p_sign == 1 && p.diff == 0 && p.diff_lo == 0 && p.diff_hi == 0);
    double a1[] = {2, 3, 4, 5, 6};
    CHECK_OK(lrgd_paired_test(a1, a, 5, &p));
    CHECK(p.p_t == 0 && p.diff_lo == 1 && p.diff_hi == 1);

    /* Mean interval of 1,0,1,0: mean 1/2, sd = sqrt(1/3), half width =
     * t_.975,3 * sd / 2 = 3.182 * 0.288675 (table value 3.182). */
    double x[] = {1, 0, 1, 0};
    lrgd_interval iv;
    CHECK_OK(lrgd_mean_ci(x, 4, &iv));
    CHECK_NEAR(iv.mean, 0.5, 1e-15);
    CHECK_NEAR(iv.sd, sqrt(1.0 / 3), 1e-15);
    CHECK_NEAR(iv.hi - iv.mean, 3.182 * sqrt(1.0 / 3) / 2, 5e-4);
    CHECK_OK(lrgd_mean_ci(x, 1, &iv));
    CHECK(iv.mean == 1 && isnan(iv.lo));
    CHECK(lrgd_mean_ci(x, 0, &iv) == LRGD_E_INVALID);
    double xn[] = {1, NAN};
    CHECK(lrgd_mean_ci(xn, 2, &iv) == LRGD_E_NUMERIC);
}

int main(void)
{
    test_metric_values();
    test_rank_by_hand();
    test_rank_brute_force();
    test_evaluator();
    test_negatives();
    test_distributions();
    test_paired();
    return t_finish("test_metrics");
}
