/* Long-term adaptation on a replay split (LRGD.md §4).
 *
 * Step r reveals each user's r-th held-back item. At every step:
 *  - the pool is rebuilt from what the step reveals: every pool user's
 *    demonstration is its newest (new demonstrations enter, old contents
 *    are gone);
 *  - each user's choice is re-scored by stage 1 against its newest known
 *    item (history = the known prefix but that item), over the new pool's P
 *    most similar plus the users chosen at the previous step (their newest
 *    demonstrations); a previous pick that no longer wins its place is
 *    replaced;
 *  - the step's target (the item revealed next) is ranked over all items
 *    (history excluded) with the adapted choice, and with the choice frozen
 *    at step 0 (the same users' step-0 demonstrations). */
#include "effect/stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lrgd_adapt_result_free(lrgd_adapt_result *r)
{
    if (!r) return;
    free(r->steps);
    free(r);
}

static lrgd_status eval_sel(lrgd_tmodel *t, const lrgd_split *sp, int step, const lrgd_selection *sel,
                            const int32_t *users, int n, const lrgd_opt_opts *o, double *hr, double *ndcg)
{
    lrgd_sel_scorer_opts so;
    lrgd_sel_scorer_opts_init(&so);
    so.max_hist = o->max_hist;
    so.demo_hist = o->demo_hist;
    lrgd_scorer sc;
    LRGD_TRY(lrgd_scorer_selection(t, sel, &so, &sc));
    lrgd_eval_opts eo;
    lrgd_eval_opts_init(&eo);
    eo.users = users;
    eo.n_users = n;
    eo.label = "replay eval";
    lrgd_eval_result *er = NULL;
    lrgd_status s_ = lrgd_evaluate(sp, step, &sc, &eo, &er);
    lrgd_scorer_release(&sc);
    LRGD_TRY(s_);
    double a = 0, b = 0;
    for (int i = 0; i < er->n; i++) {
        a += lrgd_metric_value(LRGD_HR10, er->ranks[i]);
        b += lrgd_metric_value(LRGD_NDCG10, er->ranks[i]);
    }
    *hr = er->n ? a / er->n : NAN;
    *ndcg = er->n ? b / er->n : NAN;
    lrgd_eval_result_free(er);
    return LRGD_OK;
}

lrgd_status lrgd_adapt(lrgd_tmodel *t, const lrgd_split *replay, const int32_t *users, int n_users,
                       const lrgd_opt_opts *o, lrgd_adapt_result **out)
{
    *out = NULL;
    LRGD_TRY(st_check_opts(o));
    if (n_users < 1 || !users) return lrgd_fail(LRGD_E_INVALID, "replay: no users");
    const lrgd_dataset *ds = lrgd_split_dataset(replay);
    int nu = lrgd_dataset_n_users(ds), S = lrgd_split_n_steps(replay);
    for (int i = 0; i < n_users; i++)
        if (!lrgd_split_has_user(replay, users[i]))
            return lrgd_fail(LRGD_E_INVALID, "replay: user %d does not take part in the split", users[i]);
    double t0 = lrgd_now();
    lrgd_adapt_result *R = calloc(1, sizeof *R);
    lrgd_effect *e = NULL;
    lrgd_selection *adapted = NULL, *frozen = NULL;
    int P = o->pool, K = o->k, M = st_n_copies(o);
    int32_t *prev = malloc((size_t)n_users * K * sizeof *prev), *cur = malloc((size_t)n_users * K * sizeof *cur);
    int *n_prev = calloc((size_t)n_users, sizeof *n_prev);
    int32_t *cu = malloc((size_t)(P + K) * sizeof *cu), *eval_users = malloc((size_t)n_users * sizeof *eval_users);
    lrgd_demo *cd = malloc((size_t)(P + K) * sizeof *cd);
    int *ids = malloc((size_t)(P + K) * (M + 1) * sizeof *ids), *chosen = malloc((size_t)(K > 0 ? K : 1) * sizeof *chosen);
    lrgd_status s_ = R && prev && cur && n_prev && cu && cd && ids && chosen && eval_users
                         ? LRGD_OK
                         : lrgd_fail(LRGD_E_NOMEM, "replay: out of memory");
    if (s_ == LRGD_OK) R->steps = calloc((size_t)S, sizeof *R->steps);
    if (s_ == LRGD_OK && !R->steps) s_ = lrgd_fail(LRGD_E_NOMEM, "replay: out of memory");
    if (s_ == LRGD_OK) s_ = lrgd_effect_new(lrgd_tmodel_model(t), &e);
    if (s_ == LRGD_OK) s_ = lrgd_selection_new(nu, &adapted);
    if (s_ == LRGD_OK) s_ = lrgd_selection_new(nu, &frozen);
    lrgd_progress pg;
    lrgd_progress_begin(&pg, "replay", "user-steps", (double)S * n_users);
    for (int r = 0; r < S && s_ == LRGD_OK; r++) {
        lrgd_demo_index *ix = NULL;
        lrgd_popdist *pop = NULL;
        lrgd_store *st = NULL;
        s_ = lrgd_demo_index_new(replay, r, o->demo_hist, &ix);
        if (s_ == LRGD_OK) s_ = lrgd_popdist_new(replay, r, &pop);
        if (s_ == LRGD_OK) s_ = lrgd_store_new(e, &st);
        double replaced = 0;
        int n_eval = 0;
        for (int i = 0; i < n_users && s_ == LRGD_OK; i++) {
            int u = users[i];
            const int32_t *h;
            int nh;
            lrgd_split_history(replay, r, u, &h, &nh);
            lrgd_progress_update(&pg, (double)r * n_users + i + 1, NULL);
            if (nh < 2) { /* no known item to select against: zero-shot at this step */
                s_ = lrgd_selection_set(adapted, u, NULL, NULL, 0);
                if (s_ == LRGD_OK && r == 0) s_ = lrgd_selection_set(frozen, u, NULL, NULL, 0);
                n_prev[i] = 0;
                eval_users[n_eval++] = u;
                continue;
            }
            int nc = 0;
            s_ = lrgd_demo_index_similar(ix, h, nh - 1, u, P, cu, NULL, &nc);
            /* the previous picks compete again with their newest demonstrations */
            for (int j = 0; j < n_prev[i] && s_ == LRGD_OK; j++) {
                int dup = 0;
                for (int c = 0; c < nc && !dup; c++) dup = cu[c] == prev[i * K + j];
                lrgd_demo dtmp;
                if (!dup && lrgd_demo_index_demo(ix, prev[i * K + j], &dtmp, NULL) == LRGD_OK) cu[nc++] = prev[i * K + j];
            }
            lrgd_clear_error();
            for (int c = 0; c < nc && s_ == LRGD_OK; c++) s_ = lrgd_demo_index_demo(ix, cu[c], &cd[c], NULL);
            int qt[4096], nq = 0, n_ch = 0;
            int32_t y = h[nh - 1];
            if (s_ == LRGD_OK) s_ = lrgd_query_tokens(&e->v, h, nh - 1, o->max_hist < 4000 ? o->max_hist : 4000, qt, &nq);
            lrgd_store_clear(st);
            if (s_ == LRGD_OK) s_ = st_prepare(e, st, cd, cu, nc, u, pop, o, ids);
            if (s_ == LRGD_OK && nc > 0) s_ = st_greedy(e, st, ids, nc, qt, nq, y, o, NULL, 0, chosen, &n_ch, NULL, NULL);
            if (s_ != LRGD_OK) break;
            lrgd_demo dsel[64];
            int32_t src[64];
            int rep = 0;
            for (int j = 0; j < n_ch; j++) {
                dsel[j] = cd[chosen[j]];
                src[j] = cu[chosen[j]];
                int was = 0;
                for (int q = 0; q < n_prev[i]; q++) was |= prev[i * K + q] == src[j];
                rep += !was;
            }
            if (r > 0) replaced += rep;
            s_ = lrgd_selection_set(adapted, u, dsel, src, n_ch);
            if (s_ == LRGD_OK && r == 0) s_ = lrgd_selection_set(frozen, u, dsel, src, n_ch);
            for (int j = 0; j < n_ch; j++) cur[i * K + j] = src[j];
            memcpy(prev + (size_t)i * K, cur + (size_t)i * K, (size_t)n_ch * sizeof *prev);
            n_prev[i] = n_ch;
            eval_users[n_eval++] = u;
        }
        lrgd_adapt_step *as = &R->steps[r];
        as->step = r;
        as->n_users = n_eval;
        as->mean_replaced = r > 0 && n_eval ? replaced / n_eval : 0;
        if (s_ == LRGD_OK) s_ = eval_sel(t, replay, r, adapted, eval_users, n_eval, o, &as->hr10_adapted, &as->ndcg10_adapted);
        if (s_ == LRGD_OK) s_ = eval_sel(t, replay, r, frozen, eval_users, n_eval, o, &as->hr10_frozen, &as->ndcg10_frozen);
        lrgd_store_free(st);
        lrgd_popdist_free(pop);
        lrgd_demo_index_free(ix);
        R->n_steps = r + 1;
    }
    lrgd_progress_end(&pg, (double)S * n_users, NULL);
    lrgd_selection_free(adapted);
    lrgd_selection_free(frozen);
    lrgd_effect_free(e);
    free(prev);
    free(cur);
    free(n_prev);
    free(cu);
    free(cd);
    free(ids);
    free(chosen);
    free(eval_users);
    if (s_ != LRGD_OK) {
        lrgd_adapt_result_free(R);
        return s_;
    }
    R->seconds = lrgd_now() - t0;
    *out = R;
    return LRGD_OK;
}
