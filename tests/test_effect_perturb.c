/* Perturbations, selections, the selection scorer, validity and the replay,
 * on planted synthetic data with a small random model (no training).
 *  - every perturbation is a pure function of its key and does what its
 *    rate says (dropout keeps one item, shuffles keep the multiset,
 *    popular substitution follows the training counts, noise has the
 *    asked RMS);
 *  - the selection scorer (packed training forward) agrees with the engine
 *    (KV cache), and its test-time perturbation is a no-op at rate 0;
 *  - the similar baseline follows the retrieval order, most similar last;
 *  - validity's dlogP equals a direct computation; the replay's step 0
 *    adapted and frozen choices coincide. */
#include "lrgd/effect.h"
#include "core/core.h"
#include "model_fixtures.h"
#include "test.h"

#include <math.h>

static void check_perturb(const lrgd_split *sp, int n_items)
{
    lrgd_popdist *pop = NULL;
    CHECK_OK(lrgd_popdist_new(sp, 0, &pop));
    int32_t hist[12] = {3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25}, out[12], out2[12];
    lrgd_demo d = {hist, 12, 30}, p, p2;
    lrgd_perturb none = {0};
    CHECK(!lrgd_perturb_active(&none));
    CHECK_OK(lrgd_perturb_items(&none, NULL, n_items, 1, 2, 3, 4, &d, out, &p));
    CHECK(p.n_hist == 12 && p.next == 30 && !memcmp(out, hist, sizeof hist));
    /* the same key gives the same copy; another key another one */
    lrgd_perturb pt = {0.3, 0.2, 0.1, 0.3, 0};
    CHECK(lrgd_perturb_active(&pt));
    CHECK_OK(lrgd_perturb_items(&pt, pop, n_items, 1, 2, 3, 4, &d, out, &p));
    CHECK_OK(lrgd_perturb_items(&pt, pop, n_items, 1, 2, 3, 4, &d, out2, &p2));
    CHECK(p.n_hist == p2.n_hist && p.next == p2.next && !memcmp(out, out2, sizeof(int32_t) * (size_t)p.n_hist));
    int differ = 0;
    for (int m = 5; m < 25; m++) {
        CHECK_OK(lrgd_perturb_items(&pt, pop, n_items, 1, 2, 3, m, &d, out2, &p2));
        differ += p2.n_hist != p.n_hist || memcmp(out, out2, sizeof(int32_t) * (size_t)(p.n_hist < p2.n_hist ? p.n_hist : p2.n_hist));
    }
    CHECK(differ >= 15);
    /* dropout 1 keeps exactly one (the last) item */
    lrgd_perturb dr = {1, 0, 0, 0, 0};
    CHECK_OK(lrgd_perturb_items(&dr, NULL, n_items, 1, 2, 3, 4, &d, out, &p));
    CHECK(p.n_hist == 1 && out[0] == 25 && p.next == 30);
    /* dropout rate r keeps about (1 - r) of the items */
    lrgd_perturb dh = {0.5, 0, 0, 0, 0};
    long kept = 0;
    for (int m = 0; m < 400; m++) {
        CHECK_OK(lrgd_perturb_items(&dh, NULL, n_items, 9, 1, 1, m, &d, out, &p));
        kept += p.n_hist;
    }
    CHECK_NEAR(kept / 400.0, 6.0, 0.5);
    /* shuffle keeps the multiset */
    lrgd_perturb sh = {0, 0, 0, 1, 0};
    CHECK_OK(lrgd_perturb_items(&sh, NULL, n_items, 1, 2, 3, 4, &d, out, &p));
    long s1 = 0, s2 = 0, moved = 0;
    for (int i = 0; i < 12; i++) s1 += out[i], s2 += hist[i], moved += out[i] != hist[i];
    CHECK(p.n_hist == 12 && s1 == s2 && moved > 0);
    /* random substitution 1 replaces about everything; sub rates are validated */
    lrgd_perturb sr = {0, 1, 0, 0, 0};
    CHECK_OK(lrgd_perturb_items(&sr, NULL, n_items, 1, 2, 3, 4, &d, out, &p));
    int same = 0;
    for (int i = 0; i < 12; i++) same += out[i] == hist[i];
    CHECK(same <= 3);
    lrgd_perturb bad = {1.5, 0, 0, 0, 0};
    CHECK(lrgd_perturb_items(&bad, NULL, n_items, 1, 2, 3, 4, &d, out, &p) == LRGD_E_INVALID);
    lrgd_perturb popsub = {0, 0, 1, 0, 0};
    CHECK(lrgd_perturb_items(&popsub, NULL, n_items, 1, 2, 3, 4, &d, out, &p) == LRGD_E_INVALID);
    /* popular substitution follows the training counts */
    {
        const lrgd_dataset *ds = lrgd_split_dataset(sp);
        double *cnt = calloc((size_t)n_items, sizeof(double)), *got = calloc((size_t)n_items, sizeof(double)), tot = 0;
        for (int u = 0; u < lrgd_dataset_n_users(ds); u++) {
            const int32_t *it;
            int len;
            lrgd_split_train_items(sp, 0, u, &it, &len);
            for (int i = 0; i < len; i++) cnt[it[i]]++, tot++;
        }
        int draws = 0;
        for (int m = 0; m < 2000; m++) {
            CHECK_OK(lrgd_perturb_items(&popsub, pop, n_items, 5, 1, 1, m, &d, out, &p));
            for (int i = 0; i < p.n_hist; i++) got[out[i]]++, draws++;
            got[p.next]++, draws++;
        }
        double tv = 0; /* total variation distance between the draws and the counts */
        for (int i = 0; i < n_items; i++) tv += fabs(got[i] / draws - cnt[i] / tot);
        CHECK_MSG(tv / 2 < 0.05, "popular substitution: total variation %.3f from the training counts", tv / 2);
        free(cnt);
        free(got);
    }
    /* embedding noise: std = sigma * RMS of the embeddings */
    {
        int n = 20, dim = 50;
        float *emb = malloc(sizeof(float) * (size_t)(n * dim)), *nz = malloc(sizeof(float) * (size_t)(n * dim));
        double ss = 0, sn = 0;
        for (int i = 0; i < n * dim; i++) emb[i] = (float)(0.3 * sin(i * 0.7) + 0.1), ss += emb[i] * emb[i];
        lrgd_perturb ns = {0, 0, 0, 0, 0.5};
        lrgd_perturb_noise(&ns, 3, 4, 5, 6, emb, n, dim, nz);
        for (int i = 0; i < n * dim; i++) sn += nz[i] * nz[i];
        CHECK_NEAR(sqrt(sn / (n * dim)), 0.5 * sqrt(ss / (n * dim)), 0.05 * 0.5 * sqrt(ss / (n * dim)));
        lrgd_perturb_noise(&none, 3, 4, 5, 6, emb, n, dim, nz);
        sn = 0;
        for (int i = 0; i < n * dim; i++) sn += fabs(nz[i]);
        CHECK(sn == 0);
        free(emb);
        free(nz);
    }
    lrgd_popdist_free(pop);
}

static void check_selection_scorer(const lrgd_split *sp, lrgd_tmodel *t)
{
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    int NU = lrgd_dataset_n_users(ds), NI = lrgd_dataset_n_items(ds);
    lrgd_demo_index *ix = NULL;
    CHECK_OK(lrgd_demo_index_new(sp, LRGD_STEP_VALID, 20, &ix));
    lrgd_selection *sel = NULL, *cp = NULL;
    CHECK_OK(lrgd_selection_new(NU, &sel));
    int32_t users[5] = {0, 7, 19, 40, 63};
    CHECK_OK(lrgd_selection_baseline(sp, ix, LRGD_DEMOS_SIMILAR, 3, 42, users, 5, sel));
    /* the most similar sits next to the query: the last in prompt order */
    for (int i = 0; i < 5; i++) {
        const int32_t *h;
        int nh, n;
        int32_t sim[3], src;
        lrgd_split_history(sp, LRGD_STEP_VALID, users[i], &h, &nh);
        CHECK_OK(lrgd_demo_index_similar(ix, h, nh, users[i], 3, sim, NULL, &n));
        CHECK(lrgd_selection_count(sel, users[i]) == n);
        lrgd_demo d;
        for (int j = 0; j < n; j++) {
            CHECK_OK(lrgd_selection_get(sel, users[i], j, &d, &src));
            CHECK(src == sim[n - 1 - j]);
        }
    }
    CHECK_OK(lrgd_selection_copy(sel, &cp));
    CHECK(lrgd_selection_count(cp, 19) == lrgd_selection_count(sel, 19));
    CHECK(lrgd_selection_get(sel, 1, 0, &(lrgd_demo){0}, NULL) == LRGD_E_INVALID); /* user 1 has none */

    /* scorer scores vs the engine's log p(y) for a few targets */
    lrgd_sel_scorer_opts so;
    lrgd_sel_scorer_opts_init(&so);
    lrgd_scorer sc;
    CHECK_OK(lrgd_scorer_selection(t, sel, &so, &sc));
    lrgd_effect *e = NULL;
    CHECK_OK(lrgd_effect_new(lrgd_tmodel_model(t), &e));
    const lrgd_prompt_vocab *v = lrgd_effect_vocab(e);
    float *scores = malloc(sizeof(float) * (size_t)NI * 5);
    const int32_t *hp[5];
    int hl[5];
    for (int i = 0; i < 5; i++) lrgd_split_history(sp, LRGD_STEP_VALID, users[i], &hp[i], &hl[i]);
    CHECK_OK(sc.score_batch(sc.ctx, 5, users, hp, hl, scores));
    double worst = 0;
    for (int i = 0; i < 5; i++) {
        int tok[256], n = 0;
        tok[n++] = v->bos;
        for (int j = 0; j < lrgd_selection_count(sel, users[i]); j++) {
            lrgd_demo d;
            int dn;
            lrgd_selection_get(sel, users[i], j, &d, NULL);
            lrgd_demo_tokens(v, &d, 20, tok + n, &dn);
            n += dn;
        }
        int qn;
        lrgd_query_tokens(v, hp[i], hl[i], 50, tok + n, &qn);
        n += qn;
        const float *row = scores + (size_t)i * NI;
        double mx = row[0], z = 0;
        for (int k = 1; k < NI; k++) mx = row[k] > mx ? row[k] : mx;
        for (int k = 0; k < NI; k++) z += exp(row[k] - mx);
        for (int y = 0; y < NI; y += 9) {
            double lp;
            CHECK_OK(lrgd_effect_logp(e, tok, n, y, &lp));
            worst = fmax(worst, fabs(lp - (row[y] - mx - log(z))));
        }
    }
    CHECK_MSG(worst < 1e-3, "selection scorer vs engine: worst log p difference %.3g", worst);
    /* perturbation at rate 0 changes nothing; at a real rate it does */
    lrgd_scorer sc0, sc1;
    lrgd_sel_scorer_opts s0 = so, s1 = so;
    s0.perturb = (lrgd_perturb){0};
    s1.perturb = (lrgd_perturb){0.5, 0.5, 0, 0.5, 0.5};
    float *a0 = malloc(sizeof(float) * (size_t)NI * 5), *a1 = malloc(sizeof(float) * (size_t)NI * 5);
    CHECK_OK(lrgd_scorer_selection(t, sel, &s0, &sc0));
    CHECK_OK(lrgd_scorer_selection(t, sel, &s1, &sc1));
    CHECK_OK(sc0.score_batch(sc0.ctx, 5, users, hp, hl, a0));
    CHECK_OK(sc1.score_batch(sc1.ctx, 5, users, hp, hl, a1));
    CHECK(!memcmp(a0, scores, sizeof(float) * (size_t)NI * 5));
    CHECK(memcmp(a1, scores, sizeof(float) * (size_t)NI * 5) != 0);
    s1.perturb.sub_pop = 0.2;
    lrgd_scorer sc2;
    CHECK(lrgd_scorer_selection(t, sel, &s1, &sc2) == LRGD_E_INVALID); /* sub_pop without popularity */
    lrgd_scorer_release(&sc0);
    lrgd_scorer_release(&sc1);
    lrgd_scorer_release(&sc);
    free(a0);
    free(a1);
    free(scores);
    lrgd_effect_free(e);
    lrgd_selection_free(sel);
    lrgd_selection_free(cp);
    lrgd_demo_index_free(ix);
}

static void check_validity_and_replay(const lrgd_dataset *ds, const lrgd_split *sp, lrgd_tmodel *t)
{
    lrgd_validity_opts vo;
    lrgd_validity_opts_init(&vo);
    vo.n_users = 6;
    vo.pool = 5;
    lrgd_validity *V = NULL;
    CHECK_OK(lrgd_effect_validity(lrgd_tmodel_model(t), sp, &vo, &V));
    if (V) {
        CHECK(V->n_users == 6 && V->n_pairs > 10 && V->n_pairs <= 30);
        CHECK(isfinite(V->rho) && fabs(V->rho) <= 1 && isfinite(V->rho_all_rows));
        CHECK(V->n_truth == V->n_pairs && V->us_score_per_pair > 0 && V->us_truth_per_pair > 0);
        /* one pair recomputed directly */
        const lrgd_validity_pair *pr = &V->pairs[0];
        lrgd_effect *e = NULL;
        CHECK_OK(lrgd_effect_new(lrgd_tmodel_model(t), &e));
        lrgd_demo_index *ix = NULL;
        CHECK_OK(lrgd_demo_index_new(sp, LRGD_STEP_VALID, 20, &ix));
        const lrgd_prompt_vocab *v = lrgd_effect_vocab(e);
        const int32_t *h;
        int nh, tok[256], n = 0, dn, qn;
        lrgd_split_history(sp, LRGD_STEP_VALID, pr->user, &h, &nh);
        int32_t y = lrgd_split_target(sp, LRGD_STEP_VALID, pr->user);
        lrgd_demo d;
        CHECK_OK(lrgd_demo_index_demo(ix, pr->demo_user, &d, NULL));
        tok[n++] = v->bos;
        lrgd_query_tokens(v, h, nh, 50, tok + n, &qn);
        double lp0, lp1;
        CHECK_OK(lrgd_effect_logp(e, tok, 1 + qn, y, &lp0));
        lrgd_demo_tokens(v, &d, 20, tok + 1, &dn);
        lrgd_query_tokens(v, h, nh, 50, tok + 1 + dn, &qn);
        CHECK_OK(lrgd_effect_logp(e, tok, 1 + dn + qn, y, &lp1));
        CHECK_NEAR(pr->dlogp, lp1 - lp0, 1e-9);
        CHECK_NEAR(V->logp0[0], lp0, 1e-4);
        lrgd_demo_index_free(ix);
        lrgd_effect_free(e);
        lrgd_validity_free(V);
    }
    /* replay: 3 held-back items */
    lrgd_split *rp = NULL;
    CHECK_OK(lrgd_split_replay(ds, 3, &rp));
    if (!rp) return;
    int32_t users[8];
    CHECK_OK(lrgd_sample_users(rp, 8, 1, users));
    lrgd_opt_opts o;
    lrgd_opt_opts_init(&o);
    o.pool = 6;
    o.n_perturb = 2;
    lrgd_adapt_result *AR = NULL;
    CHECK_OK(lrgd_adapt(t, rp, users, 8, &o, &AR));
    if (AR) {
        CHECK(AR->n_steps == 3);
        CHECK(AR->steps[0].hr10_adapted == AR->steps[0].hr10_frozen);
        CHECK(AR->steps[0].ndcg10_adapted == AR->steps[0].ndcg10_frozen);
        CHECK(AR->steps[0].mean_replaced == 0);
        for (int s = 0; s < 3; s++) {
            CHECK(AR->steps[s].n_users == 8);
            CHECK(AR->steps[s].hr10_adapted >= 0 && AR->steps[s].hr10_adapted <= 1);
            CHECK(AR->steps[s].ndcg10_frozen >= 0 && AR->steps[s].ndcg10_frozen <= AR->steps[s].hr10_frozen + 1e-12);
            CHECK(AR->steps[s].mean_replaced >= 0 && AR->steps[s].mean_replaced <= o.k);
        }
        lrgd_adapt_result_free(AR);
    }
    lrgd_split_free(rp);
}

int main(void)
{
    lrgd_synth *sy = NULL;
    CHECK_OK(mf_small_synth(&sy));
    if (!sy) return t_finish("test_effect_perturb");
    const lrgd_dataset *ds = lrgd_synth_dataset(sy);
    CHECK(lrgd_dataset_n_users(ds) == 80 && lrgd_dataset_n_items(ds) == 32);
    /* the planted structure: each user follows its cluster's cycle except for noise */
    int follow = 0, steps = 0;
    for (int u = 0; u < lrgd_dataset_n_users(ds); u++) {
        const int32_t *it;
        int len;
        lrgd_dataset_user_items(ds, u, &it, &len);
        for (int i = 0; i + 1 < len; i++) follow += lrgd_synth_next(sy, lrgd_synth_cluster(sy, u), it[i]) == it[i + 1], steps++;
    }
    CHECK(follow > 0.85 * steps);
    /* sibling clusters never agree on a shared item's successor */
    for (int i = 0; i < 16; i++) CHECK(lrgd_synth_next(sy, 0, i) != lrgd_synth_next(sy, 1, i));
    lrgd_split *sp = NULL;
    CHECK_OK(lrgd_split_loo(ds, &sp));
    if (!sp) return t_finish("test_effect_perturb");
    check_perturb(sp, lrgd_dataset_n_items(ds));
    lrgd_tmodel *t = mf_random_model(ds, LRGD_ATTN_SOFTMAX);
    CHECK(t != NULL);
    if (t) {
        CHECK_OK(lrgd_model_check_items(lrgd_tmodel_model(t), ds));
        check_selection_scorer(sp, t);
        check_validity_and_replay(ds, sp, t);
        lrgd_tmodel_free(t);
    }
    lrgd_split_free(sp);
    lrgd_synth_free(sy);
    return t_finish("test_effect_perturb");
}
