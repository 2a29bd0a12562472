/* A synthetic interaction dataset with planted tastes, where the right
 * demonstrations are known by construction (tests, and the demo run when no
 * Amazon data is at hand).
 *
 * Items fall into n_groups disjoint groups. Each group is shared by
 * clusters_per_group taste clusters; each cluster may also own
 * private_items items of its own. Cluster c walks the group's shared items
 * and its private ones along its own cycle succ_c (one cycle through all of
 * them), and the cycles of the clusters sharing a group never agree on the
 * successor of a shared item. A user
 * of cluster c walks succ_c from a start point (starts are staggered along
 * the cycle so that the cluster's users cover every item); with probability
 * `noise` a step emits a random item of the group instead (a stray click)
 * and the walk goes on. Sequences are shorter than a cycle, so a user's history
 * rarely shows the item it ends on twice: the next step can be read only
 * from the cluster's transition, either memorized or copied from a
 * demonstration that contains it.
 *
 * For a query user of cluster c whose last history item is a and whose
 * target is y = succ_c(a):
 *  - a planted demonstration comes from cluster c and contains the
 *    transition a -> y (consecutive items, the answer included);
 *  - a sibling distractor comes from another cluster of the same group: same
 *    items, so item-overlap retrieval cannot tell it apart, but its
 *    transition out of a leads elsewhere;
 *  - any other demonstration shares no item with the query. */
#include "lrgd/effect.h"

#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lrgd_synth {
    lrgd_synth_opts o;
    lrgd_dataset *ds;
    int n_clusters, n_items, n_users;
    int32_t *cluster; /* [n_users] */
    int32_t *succ;    /* [n_clusters][n_items]: successor in the cluster's cycle, -1 outside its group */
    char *text;       /* the Amazon-format file */
    size_t text_len;
};

void lrgd_synth_opts_init(lrgd_synth_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_groups = 4;
    o->clusters_per_group = 2;
    o->items_per_group = 16;
    o->users_per_cluster = 40;
    o->min_len = 7;
    o->max_len = 11;
    o->noise = 0.05;
    o->private_items = 0;
    o->seed = 42;
}

void lrgd_synth_free(lrgd_synth *s)
{
    if (!s) return;
    lrgd_dataset_free(s->ds);
    free(s->cluster);
    free(s->succ);
    free(s->text);
    free(s);
}

/* A random cycle through items[0..n): succ[perm[i]] = perm[i+1]. */
static void random_cycle(lrgd_rng *r, const int32_t *items, int n, int32_t *perm, int32_t *succ)
{
    memcpy(perm, items, (size_t)n * sizeof *perm);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)lrgd_rng_below(r, (uint32_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < n; i++) succ[perm[i]] = perm[(i + 1) % n];
}

static lrgd_status text_append(lrgd_synth *s, size_t *cap, const char *str)
{
    size_t n = strlen(str);
    if (s->text_len + n + 1 > *cap) {
        size_t nc = *cap ? *cap * 2 : 4096;
        while (nc < s->text_len + n + 1) nc *= 2;
        char *t = realloc(s->text, nc);
        if (!t) return lrgd_fail(LRGD_E_NOMEM, "synthetic data: out of memory");
        s->text = t;
        *cap = nc;
    }
    memcpy(s->text + s->text_len, str, n + 1);
    s->text_len += n;
    return LRGD_OK;
}

lrgd_status lrgd_synth_new(const lrgd_synth_opts *o, lrgd_synth **out)
{
    *out = NULL;
    if (o->n_groups < 1 || o->clusters_per_group < 1 || o->items_per_group < 3 || o->users_per_cluster < 1 ||
        o->min_len < 3 || o->max_len < o->min_len || !(o->noise >= 0 && o->noise <= 1))
        return lrgd_fail(LRGD_E_INVALID, "synthetic data: needs groups >= 1, clusters per group >= 1, items per group "
                                         ">= 3, users per cluster >= 1, 3 <= min_len <= max_len, noise in [0, 1]");
    if (o->clusters_per_group > o->items_per_group - 1)
        return lrgd_fail(LRGD_E_INVALID, "synthetic data: %d clusters cannot have disagreeing cycles over %d items",
                         o->clusters_per_group, o->items_per_group);
    if ((int64_t)o->n_groups * o->items_per_group > 1000000 ||
        (int64_t)o->n_groups * o->clusters_per_group * o->users_per_cluster > 1000000 || o->max_len > 100000)
        return lrgd_fail(LRGD_E_INVALID, "synthetic data: more than 10^6 items or users");
    if (o->private_items < 0 || o->private_items > 100000)
        return lrgd_fail(LRGD_E_INVALID, "synthetic data: private items per cluster outside 0..100000");
    lrgd_synth *s = calloc(1, sizeof *s);
    if (!s) return lrgd_fail(LRGD_E_NOMEM, "synthetic data: out of memory");
    s->o = *o;
    int S = o->items_per_group, C = o->clusters_per_group, Pv = o->private_items, n = S + Pv;
    int block = S + C * Pv; /* items of one group: shared, then each cluster's private ones */
    s->n_clusters = o->n_groups * C;
    s->n_items = o->n_groups * block;
    s->n_users = s->n_clusters * o->users_per_cluster;
    s->cluster = malloc((size_t)s->n_users * sizeof *s->cluster);
    s->succ = malloc((size_t)s->n_clusters * s->n_items * sizeof *s->succ);
    int32_t *perms = malloc((size_t)s->n_clusters * n * sizeof *perms), *perm = perms;
    int32_t *list = malloc((size_t)s->n_clusters * n * sizeof *list);
    int32_t *seq = malloc((size_t)o->max_len * sizeof *seq);
    lrgd_status st = LRGD_OK;
    size_t cap = 0;
    if (!s->cluster || !s->succ || !perms || !list || !seq) st = lrgd_fail(LRGD_E_NOMEM, "synthetic data: out of memory");
    lrgd_rng r;
    lrgd_rng_seed(&r, o->seed, 0x5e7a11);
    for (int c = 0; st == LRGD_OK && c < s->n_clusters; c++) {
        int g = c / C, gb = g * block;
        int32_t *sc = s->succ + (size_t)c * s->n_items, *li = list + (size_t)c * n;
        perm = perms + (size_t)c * n;
        for (int i = 0; i < S; i++) li[i] = gb + i;
        for (int i = 0; i < Pv; i++) li[S + i] = gb + S + (c % C) * Pv + i;
        for (int i = 0; i < s->n_items; i++) sc[i] = -1;
        /* redraw until no earlier cluster of the group agrees on the successor of a shared item */
        for (int tries = 0;; tries++) {
            random_cycle(&r, li, n, perm, sc);
            int clash = 0;
            for (int c2 = g * C; c2 < c && !clash; c2++)
                for (int i = gb; i < gb + S && !clash; i++) clash = s->succ[(size_t)c2 * s->n_items + i] == sc[i];
            if (!clash) break;
            if (tries > 100000) {
                st = lrgd_fail(LRGD_E_RUNTIME, "synthetic data: could not draw disagreeing cycles");
                break;
            }
        }
    }
    char line[32];
    for (int u = 0; st == LRGD_OK && u < s->n_users; u++) {
        int c = u / o->users_per_cluster;
        const int32_t *li = list + (size_t)c * n;
        s->cluster[u] = c;
        lrgd_rng ru;
        lrgd_rng_seed(&ru, o->seed, 0x05e2000000ull + (uint64_t)u);
        int len = o->min_len + (int)lrgd_rng_below(&ru, (uint32_t)(o->max_len - o->min_len + 1));
        /* staggered starts along the cycle, so that the cluster's users cover every item:
         * user j starts up to `slack` steps before position j * n / users */
        int upc = o->users_per_cluster, j = u % upc;
        int gap = (n + upc - 1) / upc, slack = o->min_len - gap > 0 ? o->min_len - gap : 0;
        int start = (int)((int64_t)j * n / upc) - (int)lrgd_rng_below(&ru, (uint32_t)slack + 1);
        /* the walk follows the cycle; a noisy step emits a random item of the cluster instead
         * (a stray click) and the walk goes on where it was */
        start = (start % n + n) % n;
        for (int i = 0; i < len; i++) {
            seq[i] = perms[(size_t)c * n + (size_t)((start + i) % n)];
            if (o->noise > 0 && lrgd_rng_uniform(&ru) < o->noise) seq[i] = li[lrgd_rng_below(&ru, (uint32_t)n)];
        }
        /* Amazon format: ids from 1 (item k is internal id k-1 after loading) */
        snprintf(line, sizeof line, "%d", u + 1);
        st = text_append(s, &cap, line);
        for (int i = 0; st == LRGD_OK && i < len; i++) {
            snprintf(line, sizeof line, " %d", seq[i] + 1);
            st = text_append(s, &cap, line);
        }
        if (st == LRGD_OK) st = text_append(s, &cap, "\n");
    }
    free(list);
    free(perms);
    free(seq);
    if (st == LRGD_OK) st = lrgd_dataset_parse(s->text, s->text_len, "synthetic", LRGD_DATA_AMAZON, &s->ds);
    /* every item occurs (a group's cycle is walked by many users), so internal id = item */
    if (st == LRGD_OK && lrgd_dataset_n_items(s->ds) != s->n_items)
        st = lrgd_fail(LRGD_E_INVALID, "synthetic data: only %d of %d items occur (users per cluster x min_len must "
                       "cover items per group, and noise can skip items); use more users or longer sequences",
                       lrgd_dataset_n_items(s->ds), s->n_items);
    if (st != LRGD_OK) {
        lrgd_synth_free(s);
        return st;
    }
    *out = s;
    return LRGD_OK;
}

const lrgd_dataset *lrgd_synth_dataset(const lrgd_synth *s) { return s->ds; }
int lrgd_synth_n_clusters(const lrgd_synth *s) { return s->n_clusters; }

int lrgd_synth_cluster(const lrgd_synth *s, int u) { return u >= 0 && u < s->n_users ? s->cluster[u] : -1; }

int lrgd_synth_group(const lrgd_synth *s, int u)
{
    return u >= 0 && u < s->n_users ? s->cluster[u] / s->o.clusters_per_group : -1;
}

int lrgd_synth_is_shared(const lrgd_synth *s, int32_t item)
{
    int block = s->o.items_per_group + s->o.clusters_per_group * s->o.private_items;
    return item >= 0 && item < s->n_items && item % block < s->o.items_per_group;
}

int32_t lrgd_synth_next(const lrgd_synth *s, int c, int32_t item)
{
    if (c < 0 || c >= s->n_clusters || item < 0 || item >= s->n_items) return -1;
    return s->succ[(size_t)c * s->n_items + item];
}

int lrgd_synth_has_transition(const lrgd_demo *d, int32_t a, int32_t y)
{
    for (int i = 0; i < d->n_hist; i++) {
        int32_t nx = i + 1 < d->n_hist ? d->hist[i + 1] : d->next;
        if (d->hist[i] == a && nx == y) return 1;
    }
    return 0;
}

lrgd_status lrgd_synth_write(const lrgd_synth *s, const char *path)
{
    return lrgd_write_file_atomic(path, s->text, s->text_len);
}
