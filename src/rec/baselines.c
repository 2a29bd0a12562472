/* Classic baselines behind the scorer interface: Pop and ItemKNN. Both are
 * fitted only on lrgd_split_train_items at one step. */
#include "rec/rec.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- Pop ----------------------------------------------------------------------- */

typedef struct pop_ctx {
    int n_items;
    float *count;
} pop_ctx;

static lrgd_status pop_score(void *ctx, int n, const int32_t *users, const int32_t *const *hist, const int *hist_len,
                             float *scores)
{
    (void)users; (void)hist; (void)hist_len;
    const pop_ctx *c = ctx;
    for (int i = 0; i < n; i++) memcpy(scores + (size_t)i * c->n_items, c->count, (size_t)c->n_items * sizeof(float));
    return LRGD_OK;
}

static void pop_destroy(void *ctx)
{
    pop_ctx *c = ctx;
    lrgd_free(c->count);
    free(c);
}

lrgd_status lrgd_scorer_pop(const lrgd_split *sp, int step, lrgd_scorer *out)
{
    memset(out, 0, sizeof *out);
    if (step < 0 || step >= sp->s) return lrgd_fail(LRGD_E_INVALID, "pop: step %d outside [0, %d)", step, sp->s);
    int ni = sp->ds->n_items;
    pop_ctx *c = calloc(1, sizeof *c);
    if (!c) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    c->n_items = ni;
    c->count = lrgd_alloc_n((size_t)ni, sizeof(float));
    if (!c->count) { free(c); return lrgd_fail(LRGD_E_NOMEM, "out of memory"); }
    /* Counts are exact in float up to 2^24 per item, far above these data. */
    for (int k = 0; k < sp->n_users; k++) {
        const int32_t *it;
        int len;
        lrgd_split_train_items(sp, step, sp->users[k], &it, &len);
        for (int t = 0; t < len; t++) c->count[it[t]] += 1.0f;
    }
    out->name = "pop";
    out->ctx = c;
    out->n_items = ni;
    out->score_batch = pop_score;
    out->destroy = pop_destroy;
    return LRGD_OK;
}

/* ---- ItemKNN -------------------------------------------------------------------- */

typedef struct knn_ctx {
    int n_items;
    double decay;
    float *prior;  /* [n_items] pop_weight * count/max count, or NULL */
    int64_t *off; /* [n_items + 1] into nbr / sim */
    int32_t *nbr;
    float *sim;
} knn_ctx;

static lrgd_status knn_score(void *ctx, int n, const int32_t *users, const int32_t *const *hist, const int *hist_len,
                             float *scores)
{
    (void)users;
    const knn_ctx *c = ctx;
#pragma omp parallel for schedule(dynamic, 8)
    for (int i = 0; i < n; i++) {
        float *row = scores + (size_t)i * c->n_items;
        if (c->prior) memcpy(row, c->prior, (size_t)c->n_items * sizeof *row);
        else memset(row, 0, (size_t)c->n_items * sizeof *row);
        int L = hist_len[i];
        /* Weights from the most recent item backwards; the sum runs oldest
         * first so the float order is fixed whatever the threads do. */
        for (int t = 0; t < L; t++) {
            float w = (float)pow(c->decay, (double)(L - 1 - t));
            int32_t h = hist[i][t];
            for (int64_t k = c->off[h]; k < c->off[h + 1]; k++) row[c->nbr[k]] += w * c->sim[k];
        }
    }
    return LRGD_OK;
}

static void knn_destroy(void *ctx)
{
    knn_ctx *c = ctx;
    free(c->prior);
    free(c->off);
    free(c->nbr);
    free(c->sim);
    free(c);
}

void lrgd_itemknn_opts_init(lrgd_itemknn_opts *o)
{
    /* Chosen on the validation step of the three Amazon files (full
     * ranking, NDCG@10): windows of 3-5 and decay 0.6-0.7 were best on all
     * three; whole-sequence co-occurrence and no decay were worse. */
    o->top_k = 100;
    o->window = 5;
    o->decay = 0.7;
    o->shrink = 0.0;
    /* A tie-breaker, not a blend: 1e-3 of the largest count lifts the
     * sampled-candidate metrics a lot (targets no neighbour list reaches no
     * longer tie at 0 behind every negative) and moves full ranking by less
     * than 0.1 points on the validation step. */
    o->pop_weight = 1e-3;
}

typedef struct { float s; int32_t j; } cand;

/* "a is worse than b": lower similarity, or equal and larger id. */
static inline int worse(cand a, cand b) { return a.s < b.s || (a.s == b.s && a.j > b.j); }

/* Min-heap on "worse" keeps the best K seen so far at O(log K) per item. */
static void heap_sift_down(cand *h, int n, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(h[l], h[m])) m = l;
        if (r < n && worse(h[r], h[m])) m = r;
        if (m == i) return;
        cand t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

static void heap_push(cand *h, int *n, int cap, cand x)
{
    if (*n < cap) {
        int i = (*n)++;
        h[i] = x;
        while (i > 0) {
            int p = (i - 1) / 2;
            if (!worse(h[i], h[p])) break;
            cand t = h[i]; h[i] = h[p]; h[p] = t;
            i = p;
        }
    } else if (worse(h[0], x)) {
        h[0] = x;
        heap_sift_down(h, *n, 0);
    }
}

static int cmp_best_first(const void *a, const void *b)
{
    cand x = *(const cand *)a, y = *(const cand *)b;
    return worse(y, x) ? -1 : worse(x, y) ? 1 : 0;
}

lrgd_status lrgd_scorer_itemknn(const lrgd_split *sp, int step, const lrgd_itemknn_opts *o, lrgd_scorer *out)
{
    memset(out, 0, sizeof *out);
    lrgd_itemknn_opts def;
    if (!o) { lrgd_itemknn_opts_init(&def); o = &def; }
    if (step < 0 || step >= sp->s) return lrgd_fail(LRGD_E_INVALID, "itemknn: step %d outside [0, %d)", step, sp->s);
    if (o->top_k < 1) return lrgd_fail(LRGD_E_INVALID, "itemknn: top_k = %d (expected >= 1)", o->top_k);
    if (o->window < 0) return lrgd_fail(LRGD_E_INVALID, "itemknn: window = %d (expected >= 0)", o->window);
    if (!(o->decay > 0 && o->decay <= 1)) return lrgd_fail(LRGD_E_INVALID, "itemknn: decay = %g (expected in (0, 1])", o->decay);
    if (!(o->shrink >= 0) || !isfinite(o->shrink)) return lrgd_fail(LRGD_E_INVALID, "itemknn: shrink = %g (expected >= 0)", o->shrink);
    if (!(o->pop_weight >= 0) || !isfinite(o->pop_weight))
        return lrgd_fail(LRGD_E_INVALID, "itemknn: pop_weight = %g (expected >= 0)", o->pop_weight);

    const lrgd_dataset *ds = sp->ds;
    int ni = ds->n_items, K = o->top_k < ni ? o->top_k : ni;
    lrgd_status st = LRGD_OK;
    int64_t *occ_off = NULL, *fill = NULL;
    int32_t *occ_user = NULL, *occ_pos = NULL, *nusers = NULL, *cnt = NULL, *tmp_n = NULL;
    cand *tmp = NULL;
    knn_ctx *c = calloc(1, sizeof *c);
    if (!c) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    c->n_items = ni;
    c->decay = o->decay;

    /* Inverted index over training sequences: item -> (user, position). */
    occ_off = calloc((size_t)ni + 1, sizeof *occ_off);
    fill = malloc(((size_t)ni + 1) * sizeof *fill);
    nusers = calloc((size_t)ni, sizeof *nusers);
    if (!occ_off || !fill || !nusers) goto oom;
    int64_t n_occ = lrgd_split_n_train(sp, step);
    occ_user = malloc((size_t)(n_occ ? n_occ : 1) * sizeof *occ_user);
    occ_pos = malloc((size_t)(n_occ ? n_occ : 1) * sizeof *occ_pos);
    if (!occ_user || !occ_pos) goto oom;
    for (int k = 0; k < sp->n_users; k++) {
        const int32_t *it;
        int len;
        lrgd_split_train_items(sp, step, sp->users[k], &it, &len);
        for (int t = 0; t < len; t++) occ_off[it[t] + 1]++;
    }
    for (int i = 0; i < ni; i++) occ_off[i + 1] += occ_off[i];
    memcpy(fill, occ_off, ((size_t)ni + 1) * sizeof *fill);
    for (int k = 0; k < sp->n_users; k++) {
        int u = sp->users[k];
        const int32_t *it;
        int len;
        lrgd_split_train_items(sp, step, u, &it, &len);
        for (int t = 0; t < len; t++) {
            int64_t at = fill[it[t]]++;
            occ_user[at] = u;
            occ_pos[at] = t;
        }
    }
    /* N(i): distinct users (occurrences are grouped by user, in user order). */
    for (int i = 0; i < ni; i++)
        for (int64_t a = occ_off[i]; a < occ_off[i + 1]; a++)
            if (a == occ_off[i] || occ_user[a] != occ_user[a - 1]) nusers[i]++;

    size_t tmp_bytes;
    if (!lrgd_mul_ok((size_t)ni, (size_t)K, &tmp_bytes) || !lrgd_mul_ok(tmp_bytes, sizeof *tmp, &tmp_bytes)) goto oom;
    tmp = malloc(tmp_bytes);
    tmp_n = calloc((size_t)ni, sizeof *tmp_n);
    int nth = omp_get_max_threads();
    cnt = malloc((size_t)nth * 3 * (size_t)ni * sizeof *cnt);
    if (!tmp || !tmp_n || !cnt) goto oom;
    for (int t = 0; t < nth; t++) {
        int32_t *w = cnt + (size_t)t * 3 * (size_t)ni;
        memset(w, 0, (size_t)ni * sizeof *w);              /* C */
        memset(w + ni, 0xff, (size_t)ni * sizeof *w);      /* lastu = -1 */
    }

    /* One row of C(i, .) per item: independent, so parallel and deterministic. */
#pragma omp parallel
    {
        int32_t *w = cnt + (size_t)omp_get_thread_num() * 3 * (size_t)ni;
        int32_t *C = w, *lastu = w + ni, *touched = w + 2 * ni;
#pragma omp for schedule(dynamic, 16)
        for (int i = 0; i < ni; i++) {
            int nt = 0;
            for (int64_t a = occ_off[i]; a < occ_off[i + 1]; a++) {
                int u = occ_user[a], p = occ_pos[a];
                const int32_t *seq;
                int len;
                lrgd_split_train_items(sp, step, u, &seq, &len);
                int lo = 0, hi = len - 1;
                if (o->window > 0) {
                    lo = p - o->window > 0 ? p - o->window : 0;
                    hi = p + o->window < len - 1 ? p + o->window : len - 1;
                }
                for (int q = lo; q <= hi; q++) {
                    int32_t j = seq[q];
                    if (j == i || lastu[j] == u) continue; /* each user counts once per pair */
                    lastu[j] = u;
                    if (C[j] == 0) touched[nt++] = j;
                    C[j]++;
                }
            }
            cand *heap = tmp + (size_t)i * K;
            int hn = 0;
            for (int k = 0; k < nt; k++) {
                int32_t j = touched[k];
                double s = C[j] / (sqrt((double)nusers[i] * (double)nusers[j]) + o->shrink);
                heap_push(heap, &hn, K, (cand){(float)s, j});
                C[j] = 0;
                lastu[j] = -1;
            }
            qsort(heap, (size_t)hn, sizeof *heap, cmp_best_first);
            tmp_n[i] = hn;
        }
    }

    if (o->pop_weight > 0) {
        /* occ_off already holds the training counts as differences */
        int64_t mx = 1;
        for (int i = 0; i < ni; i++)
            if (occ_off[i + 1] - occ_off[i] > mx) mx = occ_off[i + 1] - occ_off[i];
        c->prior = malloc((size_t)ni * sizeof *c->prior);
        if (!c->prior) goto oom;
        for (int i = 0; i < ni; i++) c->prior[i] = (float)(o->pop_weight * (double)(occ_off[i + 1] - occ_off[i]) / (double)mx);
    }
    c->off = malloc(((size_t)ni + 1) * sizeof *c->off);
    if (!c->off) goto oom;
    c->off[0] = 0;
    for (int i = 0; i < ni; i++) c->off[i + 1] = c->off[i] + tmp_n[i];
    c->nbr = malloc((size_t)(c->off[ni] ? c->off[ni] : 1) * sizeof *c->nbr);
    c->sim = malloc((size_t)(c->off[ni] ? c->off[ni] : 1) * sizeof *c->sim);
    if (!c->nbr || !c->sim) goto oom;
    for (int i = 0; i < ni; i++)
        for (int k = 0; k < tmp_n[i]; k++) {
            c->nbr[c->off[i] + k] = tmp[(size_t)i * K + k].j;
            c->sim[c->off[i] + k] = tmp[(size_t)i * K + k].s;
        }
    out->name = "itemknn";
    out->ctx = c;
    out->n_items = ni;
    out->score_batch = knn_score;
    out->destroy = knn_destroy;
    c = NULL;
    goto done;
oom:
    st = lrgd_fail(LRGD_E_NOMEM, "itemknn: out of memory (%d items, top %d)", ni, K);
done:
    if (c) knn_destroy(c);
    free(occ_off); free(fill); free(occ_user); free(occ_pos); free(nusers); free(cnt); free(tmp); free(tmp_n);
    return st;
}

lrgd_status lrgd_itemknn_neighbours(const lrgd_scorer *sc, int i, const int32_t **ids, const float **sims, int *n)
{
    if (!sc || sc->score_batch != knn_score) return lrgd_fail(LRGD_E_INVALID, "not an ItemKNN scorer");
    const knn_ctx *c = sc->ctx;
    if (i < 0 || i >= c->n_items) return lrgd_fail(LRGD_E_INVALID, "itemknn: item %d outside [0, %d)", i, c->n_items);
    *ids = c->nbr + c->off[i];
    *sims = c->sim + c->off[i];
    *n = (int)(c->off[i + 1] - c->off[i]);
    return LRGD_OK;
}
