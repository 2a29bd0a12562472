/* Walk a dataset the loaders accepted: the CSR, the id maps both ways, the
 * statistics, and the splits built on it. */
#ifndef LRGD_FUZZ_DATASET_H
#define LRGD_FUZZ_DATASET_H

#include "fuzz.h"
#include "lrgd/data.h"
#include "lrgd/eval.h"

static inline void fuzz_walk_split(const lrgd_split *sp, const lrgd_dataset *ds, int s)
{
    FUZZ_CHECK(lrgd_split_n_steps(sp) == s);
    int nu = lrgd_split_n_users(sp), nskip = lrgd_split_n_skipped(sp);
    FUZZ_CHECK(nu >= 0 && nskip >= 0 && nu + nskip == lrgd_dataset_n_users(ds));
    const int32_t *users = lrgd_split_users(sp);
    for (int step = 0; step < s; step++) {
        int64_t n_train = 0;
        for (int k = 0; k < nu; k++) {
            int u = users[k];
            FUZZ_CHECK(u >= 0 && u < lrgd_dataset_n_users(ds) && lrgd_split_has_user(sp, u));
            if (k) FUZZ_CHECK(users[k - 1] < u);
            const int32_t *all, *hist, *tr;
            int n, nh, nt;
            lrgd_dataset_user_items(ds, u, &all, &n);
            lrgd_split_history(sp, step, u, &hist, &nh);
            lrgd_split_train_items(sp, step, u, &tr, &nt);
            int32_t target = lrgd_split_target(sp, step, u);
            /* the known prefix, then the target, never anything later */
            FUZZ_CHECK(nh == n - s + step && nh >= 1 && nt == nh);
            FUZZ_CHECK(memcmp(hist, all, (size_t)nh * sizeof *hist) == 0);
            FUZZ_CHECK(memcmp(tr, all, (size_t)nt * sizeof *tr) == 0);
            FUZZ_CHECK(target == all[nh]);
            n_train += nt;
        }
        FUZZ_CHECK(n_train == lrgd_split_n_train(sp, step));
    }
    FUZZ_CHECK(lrgd_split_target(sp, s, users ? users[0] : 0) == -1);
}

/* Pop and ItemKNN on the leave-one-out test step: every rank in range. */
static inline void fuzz_eval(const lrgd_split *sp)
{
    for (int method = 0; method < 2; method++) {
        lrgd_scorer sc = {0};
        lrgd_status st;
        if (method == 0) st = lrgd_scorer_pop(sp, LRGD_STEP_TEST, &sc);
        else {
            lrgd_itemknn_opts ko;
            lrgd_itemknn_opts_init(&ko);
            ko.top_k = 3;
            ko.window = 2;
            st = lrgd_scorer_itemknn(sp, LRGD_STEP_TEST, &ko, &sc);
        }
        FUZZ_CHECK(st == LRGD_OK);
        for (int n_neg = 0; n_neg <= 3; n_neg += 3) {
            lrgd_eval_opts o;
            lrgd_eval_opts_init(&o);
            o.n_neg = n_neg;
            o.batch = 3;
            lrgd_eval_result *r;
            st = lrgd_evaluate(sp, LRGD_STEP_TEST, &sc, &o, &r);
            if (st != LRGD_OK) {
                /* only sampling can fail: a user without n_neg unseen items */
                FUZZ_CHECK(n_neg > 0 && st == LRGD_E_INVALID);
                continue;
            }
            FUZZ_CHECK(r->n == lrgd_split_n_users(sp));
            for (int k = 0; k < r->n; k++) {
                FUZZ_CHECK(r->ranks[k] >= 1 && r->ranks[k] <= r->n_ranked[k]);
                FUZZ_CHECK(r->targets[k] == lrgd_split_target(sp, LRGD_STEP_TEST, r->users[k]));
                if (n_neg) FUZZ_CHECK(r->n_ranked[k] == n_neg + 1);
            }
            lrgd_eval_result_free(r);
        }
        lrgd_scorer_release(&sc);
    }
}

static inline void fuzz_walk_dataset(const lrgd_dataset *ds)
{
    int nu = lrgd_dataset_n_users(ds), ni = lrgd_dataset_n_items(ds);
    int64_t nint = lrgd_dataset_n_interactions(ds);
    FUZZ_CHECK(nu >= 1 && ni >= 1 && nint >= nu);
    const int64_t *off = lrgd_dataset_offsets(ds);
    const int32_t *items = lrgd_dataset_items(ds);
    FUZZ_CHECK(off[0] == 0 && off[nu] == nint);
    const lrgd_data_stats *st = lrgd_dataset_stats(ds);
    FUZZ_CHECK(st->n_users == nu && st->n_items == ni && st->n_interactions == nint);
    int min_len = 0x7fffffff, max_len = 0;
    int64_t n_short = 0;
    unsigned char *used = calloc((size_t)ni, 1);
    FUZZ_CHECK(used != NULL);
    for (int u = 0; u < nu; u++) {
        FUZZ_CHECK(off[u + 1] > off[u]);
        int len = (int)(off[u + 1] - off[u]);
        min_len = len < min_len ? len : min_len;
        max_len = len > max_len ? len : max_len;
        n_short += len < 3;
        for (int64_t k = off[u]; k < off[u + 1]; k++) {
            FUZZ_CHECK(items[k] >= 0 && items[k] < ni);
            used[items[k]] = 1;
        }
        const char *name = lrgd_dataset_user_name(ds, u);
        FUZZ_CHECK(name != NULL);
        FUZZ_CHECK(lrgd_dataset_find_user(ds, name, strlen(name)) == u);
        int64_t ext = lrgd_dataset_user_ext(ds, u);
        FUZZ_CHECK(ext >= -1);
    }
    FUZZ_CHECK(st->min_len == min_len && st->max_len == max_len && st->n_short == n_short);
    for (int i = 0; i < ni; i++) {
        FUZZ_CHECK(used[i]); /* every item occurs somewhere */
        const char *name = lrgd_dataset_item_name(ds, i);
        FUZZ_CHECK(name != NULL);
        FUZZ_CHECK(lrgd_dataset_find_item(ds, name, strlen(name)) == i);
        if (lrgd_dataset_format(ds) == LRGD_DATA_AMAZON) {
            /* items are numbered in ascending external id order */
            FUZZ_CHECK(lrgd_dataset_item_ext(ds, i) >= 0);
            if (i) FUZZ_CHECK(lrgd_dataset_item_ext(ds, i - 1) < lrgd_dataset_item_ext(ds, i));
        }
    }
    free(used);
    FUZZ_CHECK(lrgd_dataset_user_name(ds, nu) == NULL && lrgd_dataset_item_name(ds, -1) == NULL);
    FUZZ_CHECK(lrgd_dataset_item_text(ds, 0) == NULL || lrgd_dataset_n_item_text(ds) > 0);

    lrgd_split *sp;
    if (lrgd_split_loo(ds, &sp) == LRGD_OK) {
        FUZZ_CHECK(lrgd_split_is_loo(sp));
        fuzz_walk_split(sp, ds, 2);
        if (nu <= 64 && ni <= 256) fuzz_eval(sp);
        lrgd_split_free(sp);
    }
    for (int s = 1; s <= 3; s += 2)
        if (lrgd_split_replay(ds, s, &sp) == LRGD_OK) {
            fuzz_walk_split(sp, ds, s);
            lrgd_split_free(sp);
        }
}

#endif
