/* A synthetic interaction dataset with planted tastes, where the right
 * demonstrations are known by construction (tests, and the demo run when no
 * Amazon data is at hand).
 *
 * Items fall into n_groups disjoint groups. Each group is shared by
 * clusters_per_group taste clusters; cluster c walks the group's items along
 * its own cycle succ_c (one cycle through every item of the group), and the
 * cycles of the clusters sharing a group never agree on a successor. A user
 * of cluster c starts at a random item of the group and takes
 * succ_c(previous) at each step, or with probability `noise` a random item
 * of the group. Sequences are shorter than a cycle, so a user's history
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

/* A random cycle through the n items base..base+n-1: succ[perm[i]] = perm[i+1]. */
static void random_cycle(lrgd_rng *r, int base, int n, int32_t *perm, int32_t *succ)
{
    for (int i = 0; i < n; i++) perm[i] = base + i;
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
    lrgd_synth *s = calloc(1, sizeof *s);
    if (!s) return lrgd_fail(LRGD_E_NOMEM, "synthetic data: out of memory");
    s->o = *o;
    s->n_clusters = o->n_groups * o->clusters_per_group;
    s->n_items = o->n_groups * o->items_per_group;
    s->n_users = s->n_clusters * o->users_per_cluster;
    s->cluster = malloc((size_t)s->n_users * sizeof *s->cluster);
    s->succ = malloc((size_t)s->n_clusters * s->n_items * sizeof *s->succ);
    int32_t *perm = malloc((size_t)o->items_per_group * sizeof *perm);
    int32_t *seq = malloc((size_t)o->max_len * sizeof *seq);
    lrgd_status st = LRGD_OK;
    size_t cap = 0;
    if (!s->cluster || !s->succ || !perm || !seq) st = lrgd_fail(LRGD_E_NOMEM, "synthetic data: out of memory");
    lrgd_rng r;
    lrgd_rng_seed(&r, o->seed, 0x5e7a11);
    for (int c = 0; st == LRGD_OK && c < s->n_clusters; c++) {
        int g = c / o->clusters_per_group, base = g * o->items_per_group;
        int32_t *sc = s->succ + (size_t)c * s->n_items;
        for (int i = 0; i < s->n_items; i++) sc[i] = -1;
        /* redraw until no earlier cluster of the group agrees on any successor */
        for (int tries = 0;; tries++) {
            random_cycle(&r, base, o->items_per_group, perm, sc);
            int clash = 0;
            for (int c2 = g * o->clusters_per_group; c2 < c && !clash; c2++)
                for (int i = base; i < base + o->items_per_group && !clash; i++)
                    clash = s->succ[(size_t)c2 * s->n_items + i] == sc[i];
            if (!clash) break;
            if (tries > 100000) {
                st = lrgd_fail(LRGD_E_RUNTIME, "synthetic data: could not draw disagreeing cycles");
                break;
            }
        }
    }
    char line[32];
    for (int u = 0; st == LRGD_OK && u < s->n_users; u++) {
        int c = u / o->users_per_cluster, g = c / o->clusters_per_group, base = g * o->items_per_group;
        const int32_t *sc = s->succ + (size_t)c * s->n_items;
        s->cluster[u] = c;
        lrgd_rng ru;
        lrgd_rng_seed(&ru, o->seed, 0x05e2000000ull + (uint64_t)u);
        int len = o->min_len + (int)lrgd_rng_below(&ru, (uint32_t)(o->max_len - o->min_len + 1));
        seq[0] = base + (int32_t)lrgd_rng_below(&ru, (uint32_t)o->items_per_group);
        for (int i = 1; i < len; i++)
            seq[i] = lrgd_rng_uniform(&ru) < o->noise ? base + (int32_t)lrgd_rng_below(&ru, (uint32_t)o->items_per_group)
                                                      : sc[seq[i - 1]];
        /* Amazon format: ids from 1 (item k is internal id k-1 after loading) */
        snprintf(line, sizeof line, "%d", u + 1);
        st = text_append(s, &cap, line);
        for (int i = 0; st == LRGD_OK && i < len; i++) {
            snprintf(line, sizeof line, " %d", seq[i] + 1);
            st = text_append(s, &cap, line);
        }
        if (st == LRGD_OK) st = text_append(s, &cap, "\n");
    }
    free(perm);
    free(seq);
    if (st == LRGD_OK) st = lrgd_dataset_parse(s->text, s->text_len, "synthetic", LRGD_DATA_AMAZON, &s->ds);
    /* every item occurs (a group's cycle is walked by many users), so internal id = item */
    if (st == LRGD_OK && lrgd_dataset_n_items(s->ds) != s->n_items)
        st = lrgd_fail(LRGD_E_RUNTIME, "synthetic data: only %d of %d items occur; use more users per cluster",
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
