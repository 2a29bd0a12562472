/* Leave-one-out and replay splits: per user, the last s items are held back
 * and revealed one step at a time. Everything is a view of the dataset's
 * CSR: a step is just a prefix length per user. */
#include "rec/rec.h"

#include <stdlib.h>
#include <string.h>

static lrgd_status split_new(const lrgd_dataset *ds, int s, int loo, lrgd_split **out)
{
    *out = NULL;
    if (!ds) return lrgd_fail(LRGD_E_INVALID, "split: no dataset");
    if (s < 1 || s > 1000000) return lrgd_fail(LRGD_E_INVALID, "split: s = %d held-back items per user (expected 1..10^6)", s);
    lrgd_split *sp = calloc(1, sizeof *sp);
    if (!sp) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    sp->ds = ds;
    sp->s = s;
    sp->loo = loo;
    sp->member = calloc((size_t)ds->n_users, 1);
    sp->users = malloc((size_t)ds->n_users * sizeof *sp->users);
    sp->n_train = calloc((size_t)s, sizeof *sp->n_train);
    if (!sp->member || !sp->users || !sp->n_train) {
        lrgd_split_free(sp);
        return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    }
    for (int u = 0; u < ds->n_users; u++) {
        int64_t n = ds->offsets[u + 1] - ds->offsets[u];
        if (n >= (int64_t)s + 1) {
            sp->member[u] = 1;
            sp->users[sp->n_users++] = u;
            for (int r = 0; r < s; r++) sp->n_train[r] += n - s + r;
        } else {
            sp->n_skipped++;
        }
    }
    if (sp->n_users == 0) {
        lrgd_split_free(sp);
        return lrgd_fail(LRGD_E_INVALID, "%s: no user has the %d interactions a split holding back %d needs",
                         ds->source[0] ? ds->source : "dataset", s + 1, s);
    }
    *out = sp;
    return LRGD_OK;
}

lrgd_status lrgd_split_loo(const lrgd_dataset *ds, lrgd_split **out) { return split_new(ds, 2, 1, out); }
lrgd_status lrgd_split_replay(const lrgd_dataset *ds, int s, lrgd_split **out) { return split_new(ds, s, 0, out); }

void lrgd_split_free(lrgd_split *sp)
{
    if (!sp) return;
    free(sp->member);
    free(sp->users);
    free(sp->n_train);
    free(sp);
}

const lrgd_dataset *lrgd_split_dataset(const lrgd_split *sp) { return sp->ds; }
int lrgd_split_n_steps(const lrgd_split *sp) { return sp->s; }
int lrgd_split_is_loo(const lrgd_split *sp) { return sp->loo; }
int lrgd_split_n_users(const lrgd_split *sp) { return sp->n_users; }
const int32_t *lrgd_split_users(const lrgd_split *sp) { return sp->users; }
int lrgd_split_n_skipped(const lrgd_split *sp) { return sp->n_skipped; }
int lrgd_split_has_user(const lrgd_split *sp, int u) { return u >= 0 && u < sp->ds->n_users && sp->member[u]; }

/* The known prefix at step; the single place that decides what is visible. */
static void prefix(const lrgd_split *sp, int step, int u, const int32_t **items, int *len)
{
    if (step < 0 || step >= sp->s || !lrgd_split_has_user(sp, u)) {
        *items = NULL;
        *len = 0;
        return;
    }
    const lrgd_dataset *ds = sp->ds;
    int64_t n = ds->offsets[u + 1] - ds->offsets[u];
    *items = ds->items + ds->offsets[u];
    *len = (int)(n - sp->s + step);
}

void lrgd_split_history(const lrgd_split *sp, int step, int u, const int32_t **items, int *len)
{
    prefix(sp, step, u, items, len);
}

void lrgd_split_train_items(const lrgd_split *sp, int step, int u, const int32_t **items, int *len)
{
    prefix(sp, step, u, items, len);
}

int32_t lrgd_split_target(const lrgd_split *sp, int step, int u)
{
    const int32_t *items;
    int len;
    prefix(sp, step, u, &items, &len);
    return items ? items[len] : -1;
}

int64_t lrgd_split_n_train(const lrgd_split *sp, int step)
{
    return step >= 0 && step < sp->s ? sp->n_train[step] : 0;
}
