/* Pop and ItemKNN: pinned by hand, ItemKNN against a brute-force dense
 * reference, fitted only on training items (changing held-out items changes
 * nothing), deterministic over threads, and sane on a real dataset. */
#include "core/core.h"
#include "lrgd/eval.h"
#include "test.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static lrgd_dataset *make_ds(int n_users, const int64_t *off, const int32_t *it, int n_items)
{
    lrgd_dataset *ds = NULL;
    CHECK_OK(lrgd_dataset_from_sequences(n_users, off, it, n_items, &ds));
    return ds;
}

/* Score user u's split history at step with sc into row (n_items). */
static void score_user(const lrgd_scorer *sc, const lrgd_split *sp, int step, int u, float *row)
{
    const int32_t *h;
    int hl;
    lrgd_split_history(sp, step, u, &h, &hl);
    int32_t uu = u;
    CHECK_OK(sc->score_batch(sc->ctx, 1, &uu, &h, &hl, row));
}

static void test_pop_by_hand(void)
{
    /* u0: 0 1 2 3 4   u1: 1 2 5   u2: 2 0 1 6   (8 items) */
    int64_t off[] = {0, 5, 8, 12};
    int32_t it[] = {0, 1, 2, 3, 4, 1, 2, 5, 2, 0, 1, 6};
    lrgd_dataset *ds = make_ds(3, off, it, 8);
    lrgd_split *sp = NULL;
    if (!ds) return;
    CHECK_OK(lrgd_split_loo(ds, &sp));
    lrgd_scorer sc;
    float row[8];
    /* Valid step trains on u0 {0,1,2}, u1 {1}, u2 {2,0}:
     * counts 0:2 1:2 2:2, the rest 0. */
    CHECK_OK(lrgd_scorer_pop(sp, LRGD_STEP_VALID, &sc));
    score_user(&sc, sp, LRGD_STEP_VALID, 0, row);
    float want_v[8] = {2, 2, 2, 0, 0, 0, 0, 0};
    CHECK(memcmp(row, want_v, sizeof row) == 0);
    lrgd_scorer_release(&sc);
    CHECK(sc.ctx == NULL && sc.score_batch == NULL);
    /* Test step trains on u0 {0,1,2,3}, u1 {1,2}, u2 {2,0,1}:
     * counts 0:2 1:3 2:3 3:1. */
    CHECK_OK(lrgd_scorer_pop(sp, LRGD_STEP_TEST, &sc));
    score_user(&sc, sp, LRGD_STEP_TEST, 1, row);
    float want_t[8] = {2, 3, 3, 1, 0, 0, 0, 0};
    CHECK(memcmp(row, want_t, sizeof row) == 0);
    /* Ranks at the test step, history excluded, ties against the target:
     * u0: target 4 (0), history 0-3 out; 5,6,7 tie at 0     -> rank 4
     * u1: target 5 (0), history 1,2 out; 0 (2), 3 (1), 4,6,7 -> rank 6
     * u2: target 6 (0), history 2,0,1 out; 3 (1), 4,5,7     -> rank 5 */
    lrgd_eval_opts o;
    lrgd_eval_opts_init(&o);
    lrgd_eval_result *res = NULL;
    CHECK_OK(lrgd_evaluate(sp, LRGD_STEP_TEST, &sc, &o, &res));
    if (res) {
        CHECK(res->n == 3);
        CHECK(res->ranks[0] == 4 && res->ranks[1] == 6 && res->ranks[2] == 5);
        CHECK(res->n_ranked[0] == 4 && res->n_ranked[1] == 6 && res->n_ranked[2] == 5);
    }
    lrgd_eval_result_free(res);
    /* Keeping history: u0's target 4 now also trails 0,1,2,3 -> rank 8. */
    o.keep_history = 1;
    CHECK_OK(lrgd_evaluate(sp, LRGD_STEP_TEST, &sc, &o, &res));
    if (res) CHECK(res->ranks[0] == 8 && res->n_ranked[0] == 8);
    lrgd_eval_result_free(res);
    lrgd_scorer_release(&sc);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
}

static void neighbours_are(const lrgd_scorer *sc, int i, const int32_t *ids, const double *sims, int n)
{
    const int32_t *gi;
    const float *gs;
    int gn;
    CHECK_OK(lrgd_itemknn_neighbours(sc, i, &gi, &gs, &gn));
    CHECK_MSG(gn == n, "item %d: %d neighbours, want %d", i, gn, n);
    for (int k = 0; k < n && k < gn; k++) {
        CHECK_MSG(gi[k] == ids[k], "item %d neighbour %d: %d, want %d", i, k, gi[k], ids[k]);
        CHECK_NEAR(gs[k], sims[k], 1e-6);
    }
}

static void test_itemknn_by_hand(void)
{
    /* Full sequences; at the LOO test step the training parts are
     *   u0: 0 1 2   u1: 0 1   u2: 1 2 3
     * N(0)=2, N(1)=3, N(2)=2, N(3)=1, N(4)=0.
     * Whole-sequence co-occurrence (users): C(0,1)=2, C(0,2)=1, C(1,2)=2,
     * C(1,3)=1, C(2,3)=1, C(0,3)=0. Cosine C/sqrt(N N):
     *   s01 = 2/sqrt6, s02 = 1/2, s12 = 2/sqrt6, s13 = 1/sqrt3, s23 = 1/sqrt2. */
    int64_t off[] = {0, 4, 7, 11};
    int32_t it[] = {0, 1, 2, 3, 0, 1, 4, 1, 2, 3, 0};
    lrgd_dataset *ds = make_ds(3, off, it, 5);
    lrgd_split *sp = NULL;
    if (!ds) return;
    CHECK_OK(lrgd_split_loo(ds, &sp));
    double s01 = 2 / sqrt(6.0), s02 = 0.5, s12 = 2 / sqrt(6.0), s13 = 1 / sqrt(3.0), s23 = 1 / sqrt(2.0);
    lrgd_itemknn_opts ko;
    lrgd_itemknn_opts_init(&ko);
    ko.window = 0;
    ko.decay = 0.5;
    ko.pop_weight = 0; /* the pure method; the back-off is checked against brute force below */
    lrgd_scorer sc;
    CHECK_OK(lrgd_scorer_itemknn(sp, LRGD_STEP_TEST, &ko, &sc));
    /* Best first; 1's neighbours 0 and 2 tie at 2/sqrt6: smaller id first. */
    neighbours_are(&sc, 0, (int32_t[]){1, 2}, (double[]){s01, s02}, 2);
    neighbours_are(&sc, 1, (int32_t[]){0, 2, 3}, (double[]){s01, s12, s13}, 3);
    neighbours_are(&sc, 2, (int32_t[]){1, 3, 0}, (double[]){s12, s23, s02}, 3);
    neighbours_are(&sc, 3, (int32_t[]){2, 1}, (double[]){s23, s13}, 2);
    neighbours_are(&sc, 4, NULL, NULL, 0);
    /* u0's history 0 1 2 with decay 0.5: weights 1/4, 1/2, 1 (newest = 1).
     *   score(0) = s10/2 + s20        score(1) = s01/4 + s21
     *   score(2) = s02/4 + s12/2      score(3) = s13/2 + s23     score(4) = 0 */
    float row[5];
    score_user(&sc, sp, LRGD_STEP_TEST, 0, row);
    CHECK_NEAR(row[0], s01 / 2 + s02, 1e-6);
    CHECK_NEAR(row[1], s01 / 4 + s12, 1e-6);
    CHECK_NEAR(row[2], s02 / 4 + s12 / 2, 1e-6);
    CHECK_NEAR(row[3], s13 / 2 + s23, 1e-6);
    CHECK(row[4] == 0);
    lrgd_scorer_release(&sc);

    /* top_k = 2 cuts 1's third neighbour and 2's third. */
    ko.top_k = 2;
    CHECK_OK(lrgd_scorer_itemknn(sp, LRGD_STEP_TEST, &ko, &sc));
    neighbours_are(&sc, 1, (int32_t[]){0, 2}, (double[]){s01, s12}, 2);
    neighbours_are(&sc, 2, (int32_t[]){1, 3}, (double[]){s12, s23}, 2);
    lrgd_scorer_release(&sc);

    /* window = 1: only adjacent positions co-occur: C(0,1)=2, C(1,2)=2,
     * C(2,3)=1; 0-2 and 1-3 no longer do. shrink = 1 adds 1 to the norm. */
    ko.top_k = 100;
    ko.window = 1;
    ko.shrink = 1;
    CHECK_OK(lrgd_scorer_itemknn(sp, LRGD_STEP_TEST, &ko, &sc));
    neighbours_are(&sc, 0, (int32_t[]){1}, (double[]){2 / (sqrt(6.0) + 1)}, 1);
    neighbours_are(&sc, 1, (int32_t[]){0, 2}, (double[]){2 / (sqrt(6.0) + 1), 2 / (sqrt(6.0) + 1)}, 2);
    neighbours_are(&sc, 3, (int32_t[]){2}, (double[]){1 / (sqrt(2.0) + 1)}, 1);
    /* Pop is not an ItemKNN scorer. */
    lrgd_scorer pop;
    CHECK_OK(lrgd_scorer_pop(sp, LRGD_STEP_TEST, &pop));
    const int32_t *gi;
    const float *gs;
    int gn;
    CHECK(lrgd_itemknn_neighbours(&pop, 0, &gi, &gs, &gn) == LRGD_E_INVALID);
    lrgd_scorer_release(&pop);
    lrgd_scorer_release(&sc);

    /* Bad options. */
    lrgd_itemknn_opts_init(&ko);
    ko.decay = 0;
    CHECK(lrgd_scorer_itemknn(sp, LRGD_STEP_TEST, &ko, &sc) == LRGD_E_INVALID);
    lrgd_itemknn_opts_init(&ko);
    ko.top_k = 0;
    CHECK(lrgd_scorer_itemknn(sp, LRGD_STEP_TEST, &ko, &sc) == LRGD_E_INVALID);
    CHECK(lrgd_scorer_itemknn(sp, 2, NULL, &sc) == LRGD_E_INVALID);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);

    /* A user counts once per pair however often the items repeat: at the
     * validation step the training part is 0 1 0 1 -> N(0) = N(1) = 1,
     * C(0,1) = 1, sim = 1 (not 4/2 or 3/2 from counting occurrences). */
    int64_t off2[] = {0, 6};
    int32_t it2[] = {0, 1, 0, 1, 2, 2};
    ds = make_ds(1, off2, it2, 3);
    if (!ds) return;
    CHECK_OK(lrgd_split_loo(ds, &sp));
    CHECK_OK(lrgd_scorer_itemknn(sp, LRGD_STEP_VALID, NULL, &sc));
    neighbours_are(&sc, 0, (int32_t[]){1}, (double[]){1.0}, 1);
    lrgd_scorer_release(&sc);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
}

/* ---- brute-force ItemKNN ------------------------------------------------------ */

typedef struct { double s; int j; } ref_nb;

static int ref_cmp(const void *a, const void *b)
{
    const ref_nb *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->j - y->j;
}

/* Dense reference: per user, the set of co-occurring pairs by scanning all
 * position pairs; then cosine, sort, cut; scores in double. */
static void test_itemknn_brute_force(void)
{
    const int NU = 120, NI = 40;
    int64_t off[121];
    int32_t it[120 * 12];
    lrgd_rng r;
    lrgd_rng_seed(&r, 31, 0);
    off[0] = 0;
    for (int u = 0; u < NU; u++) {
        int n = 3 + (int)lrgd_rng_below(&r, 10);
        /* skewed item popularity so that neighbour lists overlap and tie */
        for (int k = 0; k < n; k++) it[off[u] + k] = (int32_t)(lrgd_rng_below(&r, NI) * lrgd_rng_below(&r, NI) / NI);
        off[u + 1] = off[u] + n;
    }
    lrgd_dataset *ds = make_ds(NU, off, it, NI);
    lrgd_split *sp = NULL;
    if (!ds) return;
    CHECK_OK(lrgd_split_loo(ds, &sp));
    int *C = calloc((size_t)NI * NI, sizeof *C), *N = calloc(NI, sizeof *N);
    double *S = calloc((size_t)NI * NI, sizeof *S);
    ref_nb *list = malloc(NI * sizeof *list);
    struct { int k, window; double shrink, decay, pop; } cfg[] = {
        {100, 0, 0, 0.8, 0}, {5, 0, 0, 0.9, 0}, {3, 2, 0.5, 0.6, 0}, {7, 1, 0, 1.0, 0}, {4, 3, 0, 0.7, 0.01}};
    const int n_cfg = (int)(sizeof cfg / sizeof cfg[0]);
    int bad = 0;
    for (int step = 0; step < 2; step++)
        for (int c = 0; c < n_cfg; c++) {
            memset(C, 0, (size_t)NI * NI * sizeof *C);
            memset(N, 0, NI * sizeof *N);
            for (int u = 0; u < NU; u++) {
                const int32_t *t;
                int L;
                lrgd_split_train_items(sp, step, u, &t, &L);
                char pair[40][40], has[40];
                memset(pair, 0, sizeof pair);
                memset(has, 0, sizeof has);
                for (int p = 0; p < L; p++) {
                    has[t[p]] = 1;
                    for (int q = 0; q < L; q++)
                        if (t[p] != t[q] && (cfg[c].window == 0 || abs(p - q) <= cfg[c].window)) pair[t[p]][t[q]] = 1;
                }
                for (int i = 0; i < NI; i++) {
                    N[i] += has[i];
                    for (int j = 0; j < NI; j++) C[i * NI + j] += pair[i][j];
                }
            }
            lrgd_itemknn_opts ko = {cfg[c].k, cfg[c].window, cfg[c].decay, cfg[c].shrink, cfg[c].pop};
            /* Pop counts on the same training items, for the back-off term */
            double cnt[40] = {0}, mx = 1;
            for (int u = 0; u < NU; u++) {
                const int32_t *t;
                int L;
                lrgd_split_train_items(sp, step, u, &t, &L);
                for (int p = 0; p < L; p++) cnt[t[p]] += 1;
            }
            for (int i = 0; i < NI; i++) mx = cnt[i] > mx ? cnt[i] : mx;
            lrgd_scorer sc;
            CHECK_OK(lrgd_scorer_itemknn(sp, step, &ko, &sc));
            if (!sc.ctx) continue;
            memset(S, 0, (size_t)NI * NI * sizeof *S);
            for (int i = 0; i < NI; i++) {
                int m = 0;
                for (int j = 0; j < NI; j++)
                    if (C[i * NI + j] > 0) list[m++] = (ref_nb){(float)(C[i * NI + j] / (sqrt((double)N[i] * N[j]) + cfg[c].shrink)), j};
                qsort(list, (size_t)m, sizeof *list, ref_cmp);
                if (m > cfg[c].k) m = cfg[c].k;
                const int32_t *gi;
                const float *gs;
                int gn;
                CHECK_OK(lrgd_itemknn_neighbours(&sc, i, &gi, &gs, &gn));
                bad += gn != m;
                for (int k = 0; k < m && k < gn; k++) {
                    bad += gi[k] != list[k].j || fabs(gs[k] - list[k].s) > 1e-6;
                    S[i * NI + list[k].j] = list[k].s;
                }
            }
            for (int u = 0; u < NU; u++) {
                const int32_t *h;
                int hl;
                lrgd_split_history(sp, step, u, &h, &hl);
                float row[40];
                score_user(&sc, sp, step, u, row);
                for (int j = 0; j < NI; j++) {
                    double want = (float)(cfg[c].pop * cnt[j] / mx);
                    for (int t = 0; t < hl; t++) want += pow(cfg[c].decay, hl - 1 - t) * S[h[t] * NI + j];
                    bad += fabs(row[j] - want) > 1e-5 * (1 + fabs(want));
                }
            }
            lrgd_scorer_release(&sc);
        }
    CHECK_MSG(bad == 0, "%d differences from the brute-force ItemKNN", bad);
    free(C); free(N); free(S); free(list);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
}

/* ---- no leakage: held-out items cannot move a fitted model ---------------------- */

/* Two datasets equal except at held-out positions (>= n - s + step of every
 * user, and everything of users too short to take part): the fitted scorers
 * must give bit-identical scores for every user's history. */
static void test_fit_ignores_held_out(void)
{
    const int NU = 200, NI = 50;
    int64_t off[201];
    int32_t a[200 * 15], b[200 * 15];
    lrgd_rng r;
    lrgd_rng_seed(&r, 77, 0);
    off[0] = 0;
    for (int u = 0; u < NU; u++) {
        int n = 1 + (int)lrgd_rng_below(&r, 14);
        for (int k = 0; k < n; k++) a[off[u] + k] = (int32_t)lrgd_rng_below(&r, NI);
        off[u + 1] = off[u] + n;
    }
    int changed_total = 0, bad = 0;
    for (int s = 1; s <= 3; s++)
        for (int step = 0; step < s; step++) {
            memcpy(b, a, (size_t)off[NU] * sizeof *a);
            for (int u = 0; u < NU; u++) {
                int n = (int)(off[u + 1] - off[u]);
                for (int k = 0; k < n; k++)
                    if (n < s + 1 || k >= n - s + step) {
                        b[off[u] + k] = (a[off[u] + k] + 1 + (int32_t)lrgd_rng_below(&r, NI - 1)) % NI;
                        changed_total++;
                    }
            }
            lrgd_dataset *da = make_ds(NU, off, a, NI), *db = make_ds(NU, off, b, NI);
            lrgd_split *sa = NULL, *sb = NULL;
            if (!da || !db) { lrgd_dataset_free(da); lrgd_dataset_free(db); continue; }
            CHECK_OK(s == 2 ? lrgd_split_loo(da, &sa) : lrgd_split_replay(da, s, &sa));
            CHECK_OK(s == 2 ? lrgd_split_loo(db, &sb) : lrgd_split_replay(db, s, &sb));
            for (int meth = 0; meth < 3 && sa && sb; meth++) {
                lrgd_scorer ca, cb;
                lrgd_itemknn_opts ko;
                lrgd_itemknn_opts_init(&ko);
                ko.window = meth == 2 ? 2 : 0; /* whole sequence, then a window */
                if (meth == 0) { CHECK_OK(lrgd_scorer_pop(sa, step, &ca)); CHECK_OK(lrgd_scorer_pop(sb, step, &cb)); }
                else { CHECK_OK(lrgd_scorer_itemknn(sa, step, &ko, &ca)); CHECK_OK(lrgd_scorer_itemknn(sb, step, &ko, &cb)); }
                for (int u = 0; u < NU; u++) {
                    if (!lrgd_split_has_user(sa, u)) continue;
                    float ra[50], rb[50];
                    score_user(&ca, sa, step, u, ra);
                    score_user(&cb, sb, step, u, rb);
                    bad += memcmp(ra, rb, sizeof ra) != 0;
                }
                lrgd_scorer_release(&ca);
                lrgd_scorer_release(&cb);
            }
            lrgd_split_free(sa);
            lrgd_split_free(sb);
            lrgd_dataset_free(da);
            lrgd_dataset_free(db);
        }
    CHECK(changed_total > 500);
    CHECK_MSG(bad == 0, "%d user score rows changed when only held-out items changed", bad);

    /* And the check can fail: changing one training item does move Pop. */
    memcpy(b, a, (size_t)off[NU] * sizeof *a);
    int u0 = 0;
    while (off[u0 + 1] - off[u0] < 3) u0++;
    b[off[u0]] = (a[off[u0]] + 1) % NI;
    lrgd_dataset *da = make_ds(NU, off, a, NI), *db = make_ds(NU, off, b, NI);
    lrgd_split *sa = NULL, *sb = NULL;
    if (da && db && lrgd_split_loo(da, &sa) == LRGD_OK && lrgd_split_loo(db, &sb) == LRGD_OK) {
        lrgd_scorer ca, cb;
        CHECK_OK(lrgd_scorer_pop(sa, LRGD_STEP_TEST, &ca));
        CHECK_OK(lrgd_scorer_pop(sb, LRGD_STEP_TEST, &cb));
        float ra[50], rb[50];
        score_user(&ca, sa, LRGD_STEP_TEST, u0, ra);
        score_user(&cb, sb, LRGD_STEP_TEST, u0, rb);
        CHECK(memcmp(ra, rb, sizeof ra) != 0);
        lrgd_scorer_release(&ca);
        lrgd_scorer_release(&cb);
    }
    lrgd_split_free(sa);
    lrgd_split_free(sb);
    lrgd_dataset_free(da);
    lrgd_dataset_free(db);
}

/* ---- a real dataset --------------------------------------------------------------- */

static void test_beauty(void)
{
    lrgd_dataset *ds = NULL;
    lrgd_status st = lrgd_dataset_load(t_shared("datasets/amazon/Beauty.txt"), LRGD_DATA_AMAZON, &ds);
    CHECK_MSG(st == LRGD_OK, "%s", lrgd_last_error());
    if (!ds) return;
    lrgd_split *sp = NULL;
    CHECK_OK(lrgd_split_loo(ds, &sp));
    if (!sp) { lrgd_dataset_free(ds); return; }
    lrgd_scorer pop, knn;
    CHECK_OK(lrgd_scorer_pop(sp, LRGD_STEP_TEST, &pop));

    /* ItemKNN fitted with 1 and with 2 threads: identical neighbour lists. */
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    lrgd_scorer k1;
    CHECK_OK(lrgd_scorer_itemknn(sp, LRGD_STEP_TEST, NULL, &k1));
    omp_set_num_threads(2);
    CHECK_OK(lrgd_scorer_itemknn(sp, LRGD_STEP_TEST, NULL, &knn));
    int diff = 0;
    for (int i = 0; i < lrgd_dataset_n_items(ds) && k1.ctx && knn.ctx; i++) {
        const int32_t *i1, *i2;
        const float *s1, *s2;
        int n1, n2;
        lrgd_itemknn_neighbours(&k1, i, &i1, &s1, &n1);
        lrgd_itemknn_neighbours(&knn, i, &i2, &s2, &n2);
        diff += n1 != n2 || memcmp(i1, i2, (size_t)n1 * sizeof *i1) || memcmp(s1, s2, (size_t)n1 * sizeof *s1);
    }
    CHECK_MSG(diff == 0, "%d items with thread-dependent neighbours", diff);
    lrgd_scorer_release(&k1);

    /* Full ranking and 1+99 for both; ranks identical with 1 thread. */
    double hr10[2][2];
    for (int cand = 0; cand < 2; cand++) {
        lrgd_eval_opts o;
        lrgd_eval_opts_init(&o);
        o.n_neg = cand ? 99 : 0;
        lrgd_eval_result *rp = NULL, *rk = NULL, *rk1 = NULL;
        CHECK_OK(lrgd_evaluate(sp, LRGD_STEP_TEST, &pop, &o, &rp));
        CHECK_OK(lrgd_evaluate(sp, LRGD_STEP_TEST, &knn, &o, &rk));
        omp_set_num_threads(1);
        o.batch = 500;
        CHECK_OK(lrgd_evaluate(sp, LRGD_STEP_TEST, &knn, &o, &rk1));
        omp_set_num_threads(2);
        if (rp && rk && rk1) {
            CHECK(memcmp(rk->ranks, rk1->ranks, (size_t)rk->n * sizeof *rk->ranks) == 0);
            lrgd_interval ip, ik;
            CHECK_OK(lrgd_metric_summary(LRGD_HR10, rp->ranks, rp->n, &ip));
            CHECK_OK(lrgd_metric_summary(LRGD_HR10, rk->ranks, rk->n, &ik));
            hr10[cand][0] = ip.mean;
            hr10[cand][1] = ik.mean;
            printf("Beauty %s: HR@10 pop %.4f [%.4f, %.4f], itemknn %.4f [%.4f, %.4f]\n", cand ? "1+99" : "full", ip.mean,
                   ip.lo, ip.hi, ik.mean, ik.lo, ik.hi);
            /* every rank lies within the number of items ranked */
            int oob = 0;
            for (int i = 0; i < rp->n; i++) oob += rp->ranks[i] < 1 || rp->ranks[i] > rp->n_ranked[i];
            CHECK(oob == 0);
        }
        lrgd_eval_result_free(rp);
        lrgd_eval_result_free(rk);
        lrgd_eval_result_free(rk1);
    }
    /* ItemKNN beats Pop on Beauty in both settings (known from the
     * literature and by a wide margin); 1+99 is easier than full ranking. */
    CHECK(hr10[0][1] > 2 * hr10[0][0] && hr10[1][1] > hr10[1][0]);
    CHECK(hr10[1][0] > hr10[0][0] && hr10[1][1] > hr10[0][1]);
    omp_set_num_threads(saved);
    lrgd_scorer_release(&pop);
    lrgd_scorer_release(&knn);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
}

int main(void)
{
    test_pop_by_hand();
    test_itemknn_by_hand();
    test_itemknn_brute_force();
    test_fit_ignores_held_out();
    test_beauty();
    return t_finish("test_baselines");
}
