/* Perturbations of demonstrations (LRGD.md §3): item dropout, substitution
 * by random or popular items, order shuffles, embedding noise. Every copy is
 * keyed by (seed, user, demo, m): the same key always gives the same copy,
 * whatever the thread count or the order of the calls. */
#include "lrgd/effect.h"

#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct lrgd_popdist {
    int n_items;
    double *cdf; /* [n_items] cumulative training counts, normalized to end at 1 */
};

lrgd_status lrgd_popdist_new(const lrgd_split *sp, int step, lrgd_popdist **out)
{
    *out = NULL;
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    int ni = lrgd_dataset_n_items(ds);
    lrgd_popdist *p = calloc(1, sizeof *p);
    if (!p || !(p->cdf = calloc((size_t)ni, sizeof *p->cdf))) {
        free(p);
        return lrgd_fail(LRGD_E_NOMEM, "popularity: out of memory");
    }
    p->n_items = ni;
    for (int u = 0; u < lrgd_dataset_n_users(ds); u++) {
        const int32_t *it;
        int len;
        lrgd_split_train_items(sp, step, u, &it, &len);
        for (int i = 0; i < len; i++) p->cdf[it[i]] += 1;
    }
    double tot = 0;
    for (int i = 0; i < ni; i++) p->cdf[i] = tot += p->cdf[i];
    if (tot <= 0) {
        free(p->cdf);
        free(p);
        return lrgd_fail(LRGD_E_INVALID, "popularity: no training interactions at step %d", step);
    }
    for (int i = 0; i < ni; i++) p->cdf[i] /= tot;
    *out = p;
    return LRGD_OK;
}

void lrgd_popdist_free(lrgd_popdist *p)
{
    if (!p) return;
    free(p->cdf);
    free(p);
}

static int32_t draw_pop(const lrgd_popdist *p, lrgd_rng *r)
{
    double u = lrgd_rng_uniform(r);
    int lo = 0, hi = p->n_items - 1;
    while (lo < hi) { /* first index with cdf > u */
        int mid = (lo + hi) / 2;
        if (p->cdf[mid] > u) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

int lrgd_perturb_active(const lrgd_perturb *pt)
{
    return pt && (pt->drop > 0 || pt->sub_random > 0 || pt->sub_pop > 0 || pt->shuffle > 0 || pt->noise > 0);
}

static void key_rng(lrgd_rng *r, uint64_t seed, int user, int demo, int m, uint64_t salt)
{
    uint64_t k = ((uint64_t)(uint32_t)demo << 32) ^ (uint64_t)(uint32_t)m ^ (salt * 0x9E3779B97F4A7C15ull);
    lrgd_rng_seed(r, seed ^ (k * 0xD6E8FEB86659FD93ull), (uint64_t)(uint32_t)user);
}

lrgd_status lrgd_perturb_items(const lrgd_perturb *pt, const lrgd_popdist *pop, int n_items, uint64_t seed, int user,
                               int demo, int m, const lrgd_demo *d, int32_t *hist_out, lrgd_demo *out)
{
    if (pt->drop < 0 || pt->drop > 1 || pt->sub_random < 0 || pt->sub_random > 1 || pt->sub_pop < 0 ||
        pt->sub_pop > 1 || pt->shuffle < 0 || pt->shuffle > 1 || !(pt->noise >= 0))
        return lrgd_fail(LRGD_E_INVALID, "perturbation: rates must be in [0, 1] and sigma >= 0");
    if (pt->sub_pop > 0 && !pop) return lrgd_fail(LRGD_E_INVALID, "perturbation: sub_pop needs item popularity");
    if (d->n_hist < 1) return lrgd_fail(LRGD_E_INVALID, "perturbation: empty demonstration");
    lrgd_rng r;
    key_rng(&r, seed, user, demo, m, 1);
    /* dropout: every history item independently; at least one stays */
    int n = 0;
    for (int i = 0; i < d->n_hist; i++)
        if (!(pt->drop > 0 && lrgd_rng_uniform(&r) < pt->drop)) hist_out[n++] = d->hist[i];
    if (n == 0) hist_out[n++] = d->hist[d->n_hist - 1];
    /* shuffle: each position swaps with a random one with probability `shuffle` */
    if (pt->shuffle > 0)
        for (int i = 0; i < n; i++)
            if (lrgd_rng_uniform(&r) < pt->shuffle) {
                int j = (int)lrgd_rng_below(&r, (uint32_t)n);
                int32_t t = hist_out[i];
                hist_out[i] = hist_out[j];
                hist_out[j] = t;
            }
    /* substitution: history and answer */
    int32_t next = d->next;
    for (int i = 0; i <= n; i++) {
        int32_t *it = i < n ? &hist_out[i] : &next;
        double u = lrgd_rng_uniform(&r);
        if (u < pt->sub_random) *it = (int32_t)lrgd_rng_below(&r, (uint32_t)n_items);
        else if (u < pt->sub_random + pt->sub_pop) *it = draw_pop(pop, &r);
    }
    out->hist = hist_out;
    out->n_hist = n;
    out->next = next;
    return LRGD_OK;
}

void lrgd_perturb_noise(const lrgd_perturb *pt, uint64_t seed, int user, int demo, int m, const float *emb, int n,
                        int dim, float *noise)
{
    size_t N = (size_t)n * dim;
    if (!(pt->noise > 0)) {
        memset(noise, 0, N * sizeof(float));
        return;
    }
    double ss = 0;
    for (size_t i = 0; i < N; i++) ss += (double)emb[i] * emb[i];
    double sd = pt->noise * sqrt(ss / (double)(N ? N : 1));
    lrgd_rng r;
    key_rng(&r, seed, user, demo, m, 2);
    for (size_t i = 0; i < N; i++) noise[i] = (float)(sd * lrgd_rng_normal(&r));
}
