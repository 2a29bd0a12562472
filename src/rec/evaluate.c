/* The evaluator: candidate sets, ranks, and the batched walk over users. */
#include "rec/rec.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void lrgd_scorer_release(lrgd_scorer *sc)
{
    if (!sc) return;
    if (sc->destroy && sc->ctx) sc->destroy(sc->ctx);
    memset(sc, 0, sizeof *sc);
}

/* ---- negatives ------------------------------------------------------------------ */

lrgd_status rec_sample_negatives(const lrgd_dataset *ds, int u, int n_neg, uint64_t seed, int32_t *out,
                                 uint8_t *mark)
{
    const int32_t *seq;
    int len;
    lrgd_dataset_user_items(ds, u, &seq, &len);
    if (!seq) return lrgd_fail(LRGD_E_INVALID, "negatives: no user %d", u);
    int n_items = ds->n_items, n_seen = 0;
    for (int k = 0; k < len; k++)
        if (!mark[seq[k]]) { mark[seq[k]] = 1; n_seen++; }
    int avail = n_items - n_seen;
    lrgd_status st = LRGD_OK;
    if (n_neg > avail) {
        st = lrgd_fail(LRGD_E_INVALID, "user %s: only %d of %d items never interacted with; cannot draw %d negatives",
                       lrgd_dataset_user_name(ds, u), avail, n_items, n_neg);
    } else {
        lrgd_rng r;
        lrgd_rng_seed(&r, seed, (uint64_t)u);
        if (2 * n_neg <= avail) {
            /* Rejection: each accepted draw is uniform over what is left. */
            for (int k = 0; k < n_neg;) {
                int32_t j = (int32_t)lrgd_rng_below(&r, (uint32_t)n_items);
                if (mark[j]) continue;
                mark[j] = 2;
                out[k++] = j;
            }
            for (int k = 0; k < n_neg; k++) mark[out[k]] = 0;
        } else {
            /* Dense case: list what is left, partial Fisher-Yates. */
            int32_t *pool = malloc((size_t)avail * sizeof *pool);
            if (!pool) {
                st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
            } else {
                int m = 0;
                for (int j = 0; j < n_items; j++)
                    if (!mark[j]) pool[m++] = j;
                for (int k = 0; k < n_neg; k++) {
                    int pick = k + (int)lrgd_rng_below(&r, (uint32_t)(m - k));
                    int32_t t = pool[k];
                    pool[k] = pool[pick];
                    pool[pick] = t;
                    out[k] = pool[k];
                }
                free(pool);
            }
        }
    }
    for (int k = 0; k < len; k++) mark[seq[k]] = 0;
    return st;
}

lrgd_status lrgd_sample_negatives(const lrgd_dataset *ds, int u, int n_neg, uint64_t seed, int32_t *out)
{
    if (u < 0 || u >= ds->n_users) return lrgd_fail(LRGD_E_INVALID, "negatives: user %d outside [0, %d)", u, ds->n_users);
    if (n_neg < 0) return lrgd_fail(LRGD_E_INVALID, "negatives: n_neg = %d", n_neg);
    uint8_t *mark = calloc((size_t)ds->n_items, 1);
    if (!mark) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    lrgd_status st = rec_sample_negatives(ds, u, n_neg, seed, out, mark);
    free(mark);
    return st;
}

/* ---- ranks ----------------------------------------------------------------------- */

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Rank against every item but the excluded ones; *n_excl gets how many
 * distinct items other than the target were excluded. -1 on NaN. */
static int32_t rank_full(const float *scores, int n_items, int32_t target, const int32_t *exclude, int n_exclude,
                         int *n_excl)
{
    *n_excl = 0;
    if (target < 0 || target >= n_items) return -1;
    float ts = scores[target];
    if (isnan(ts)) return -1;
    /* One branch-free, vectorized pass: count >= (the target counts itself,
     * so this is already 1 + the others) and <; a NaN is neither, so the
     * two counts miss n_items exactly when the row holds a NaN. */
    int32_t ge = 0, lt = 0;
#pragma omp simd reduction(+ : ge, lt)
    for (int j = 0; j < n_items; j++) {
        ge += scores[j] >= ts;
        lt += scores[j] < ts;
    }
    if (ge + lt != n_items) return -1;
    if (n_exclude > 0) {
        /* Excluded items are distinct ids, so repeats in a history count once. */
        int32_t stackbuf[512], *ex = n_exclude <= 512 ? stackbuf : malloc((size_t)n_exclude * sizeof *ex);
        if (!ex) return -1;
        memcpy(ex, exclude, (size_t)n_exclude * sizeof *ex);
        qsort(ex, (size_t)n_exclude, sizeof *ex, cmp_i32);
        for (int k = 0; k < n_exclude; k++) {
            int32_t e = ex[k];
            if ((k > 0 && e == ex[k - 1]) || e == target || e < 0 || e >= n_items) continue;
            (*n_excl)++;
            if (scores[e] >= ts) ge--;
        }
        if (ex != stackbuf) free(ex);
    }
    return (int32_t)ge;
}

int32_t lrgd_rank_full(const float *scores, int n_items, int32_t target, const int32_t *exclude, int n_exclude)
{
    int n_excl;
    return rank_full(scores, n_items, target, exclude, n_exclude, &n_excl);
}

int32_t lrgd_rank_cands(const float *s, int n, int t)
{
    if (t < 0 || t >= n || isnan(s[t])) return -1;
    int32_t r = 1;
    for (int c = 0; c < n; c++) {
        if (s[c] != s[c]) return -1;
        if (c != t && s[c] >= s[t]) r++;
    }
    return r;
}

/* ---- the evaluator ----------------------------------------------------------------- */

void lrgd_eval_opts_init(lrgd_eval_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 42;
    o->batch = 64;
}

void lrgd_eval_result_free(lrgd_eval_result *r)
{
    if (!r) return;
    free(r->users);
    free(r->targets);
    free(r->ranks);
    free(r->n_ranked);
    free(r);
}

lrgd_status lrgd_evaluate(const lrgd_split *sp, int step, const lrgd_scorer *sc, const lrgd_eval_opts *opts,
                          lrgd_eval_result **out)
{
    *out = NULL;
    lrgd_eval_opts def;
    if (!opts) { lrgd_eval_opts_init(&def); opts = &def; }
    const lrgd_dataset *ds = sp->ds;
    int n_items = ds->n_items;
    const char *name = sc->name ? sc->name : "scorer";
    if (step < 0 || step >= sp->s) return lrgd_fail(LRGD_E_INVALID, "evaluate: step %d outside [0, %d)", step, sp->s);
    if (!sc->score_batch) return lrgd_fail(LRGD_E_INVALID, "evaluate: scorer %s has no score_batch", name);
    if (sc->n_items != n_items)
        return lrgd_fail(LRGD_E_INVALID, "evaluate: scorer %s scores %d items, the dataset has %d", name, sc->n_items, n_items);
    if (opts->n_neg < 0 || opts->n_neg >= n_items)
        return lrgd_fail(LRGD_E_INVALID, "evaluate: %d sampled negatives with %d items (expected 0..%d)", opts->n_neg,
                         n_items, n_items - 1);
    const int32_t *users = opts->users ? opts->users : sp->users;
    int n = opts->users ? opts->n_users : sp->n_users;
    if (n <= 0) return lrgd_fail(LRGD_E_INVALID, "evaluate: no users to evaluate");
    for (int i = 0; i < n; i++)
        if (!lrgd_split_has_user(sp, users[i]))
            return lrgd_fail(LRGD_E_INVALID, "evaluate: user %d does not take part in the split", (int)users[i]);

    int B = opts->batch > 0 ? opts->batch : 64;
    if (sc->max_batch > 0 && B > sc->max_batch) B = sc->max_batch;
    if (B > n) B = n;
    int nc = opts->n_neg + 1;
    int sampled = opts->n_neg > 0, use_cands = sampled && sc->score_cands;

    lrgd_status st = LRGD_OK;
    lrgd_eval_result *r = calloc(1, sizeof *r);
    float *scores = NULL, *cscore = NULL, **cout = NULL;
    int32_t *cands = NULL, **cptr = NULL;
    const int32_t **hist = NULL;
    int *hlen = NULL, *ncands = NULL;
    uint8_t *marks = NULL;
    int32_t *bad_rank = NULL;
    size_t row_bytes;
    int nth = omp_get_max_threads();
    if (!r) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    r->n = n;
    r->users = malloc((size_t)n * sizeof *r->users);
    r->targets = malloc((size_t)n * sizeof *r->targets);
    r->ranks = malloc((size_t)n * sizeof *r->ranks);
    r->n_ranked = malloc((size_t)n * sizeof *r->n_ranked);
    hist = malloc((size_t)B * sizeof *hist);
    hlen = malloc((size_t)B * sizeof *hlen);
    bad_rank = malloc((size_t)B * sizeof *bad_rank);
    if (!r->users || !r->targets || !r->ranks || !r->n_ranked || !hist || !hlen || !bad_rank) goto oom;
    if (!use_cands) {
        if (!lrgd_mul_ok((size_t)B, (size_t)n_items, &row_bytes) || !lrgd_mul_ok(row_bytes, sizeof(float), &row_bytes))
            goto oom;
        scores = lrgd_alloc(row_bytes);
        if (!scores) goto oom;
    }
    if (sampled) {
        cands = malloc((size_t)B * (size_t)nc * sizeof *cands);
        cscore = malloc((size_t)B * (size_t)nc * sizeof *cscore);
        cptr = malloc((size_t)B * sizeof *cptr);
        cout = malloc((size_t)B * sizeof *cout);
        ncands = malloc((size_t)B * sizeof *ncands);
        marks = calloc((size_t)nth, (size_t)n_items);
        if (!cands || !cscore || !cptr || !cout || !ncands || !marks) goto oom;
    }

    double t0 = lrgd_now();
    lrgd_progress prog;
    lrgd_progress_begin(&prog, opts->label ? opts->label : name, "users", (double)n);
    for (int b0 = 0; b0 < n && st == LRGD_OK; b0 += B) {
        int bn = n - b0 < B ? n - b0 : B;
        const int32_t *bu = users + b0;
        for (int i = 0; i < bn; i++) {
            lrgd_split_history(sp, step, bu[i], &hist[i], &hlen[i]);
            r->users[b0 + i] = bu[i];
            r->targets[b0 + i] = lrgd_split_target(sp, step, bu[i]);
        }
        if (sampled) {
            /* Candidates: target + negatives, shuffled by the user's own
             * stream so a list-wise scorer cannot learn the target's slot. */
            int fail_at = -1;
            lrgd_status fail_st = LRGD_OK;
            char fail_msg[1024] = "";
#pragma omp parallel for schedule(static)
            for (int i = 0; i < bn; i++) {
                uint8_t *mark = marks + (size_t)omp_get_thread_num() * (size_t)n_items;
                int32_t *c = cands + (size_t)i * nc;
                c[0] = r->targets[b0 + i];
                lrgd_status s2 = rec_sample_negatives(ds, bu[i], opts->n_neg, opts->seed, c + 1, mark);
                if (s2 != LRGD_OK) {
#pragma omp critical(lrgd_eval_fail)
                    if (fail_at < 0 || i < fail_at) {
                        fail_at = i;
                        fail_st = s2;
                        snprintf(fail_msg, sizeof fail_msg, "%s", lrgd_last_error());
                    }
                    continue;
                }
                lrgd_rng rr;
                lrgd_rng_seed(&rr, opts->seed ^ 0x5ca1ab1e5eedULL, (uint64_t)bu[i]);
                for (int k = nc - 1; k > 0; k--) {
                    int j = (int)lrgd_rng_below(&rr, (uint32_t)(k + 1));
                    int32_t t = c[k];
                    c[k] = c[j];
                    c[j] = t;
                }
                cptr[i] = c;
                cout[i] = cscore + (size_t)i * nc;
                ncands[i] = nc;
            }
            if (fail_at >= 0) {
                st = lrgd_fail(fail_st, "%s", fail_msg);
                break;
            }
        }
        if (use_cands) {
            st = sc->score_cands(sc->ctx, bn, bu, hist, hlen, (const int32_t *const *)cptr, ncands, cout);
        } else {
            st = sc->score_batch(sc->ctx, bn, bu, hist, hlen, scores);
            if (st == LRGD_OK && sampled)
                for (int i = 0; i < bn; i++)
                    for (int k = 0; k < nc; k++) cout[i][k] = scores[(size_t)i * n_items + cptr[i][k]];
        }
        if (st != LRGD_OK) {
            lrgd_fail_wrap(st, "scorer %s", name);
            break;
        }
#pragma omp parallel for schedule(dynamic, 4)
        for (int i = 0; i < bn; i++) {
            int32_t rank, target = r->targets[b0 + i];
            if (sampled) {
                int t = 0;
                while (cptr[i][t] != target) t++;
                rank = lrgd_rank_cands(cout[i], nc, t);
                r->n_ranked[b0 + i] = nc;
            } else {
                const float *row = scores + (size_t)i * n_items;
                int n_excl = 0;
                rank = opts->keep_history ? rank_full(row, n_items, target, NULL, 0, &n_excl)
                                          : rank_full(row, n_items, target, hist[i], hlen[i], &n_excl);
                r->n_ranked[b0 + i] = n_items - n_excl;
            }
            r->ranks[b0 + i] = rank;
            bad_rank[i] = rank < 1;
        }
        for (int i = 0; i < bn; i++)
            if (bad_rank[i]) {
                st = lrgd_fail(LRGD_E_NUMERIC, "scorer %s gave a NaN score for user %s (step %d)", name,
                               lrgd_dataset_user_name(ds, bu[i]), step);
                break;
            }
        lrgd_progress_update(&prog, (double)(b0 + bn), NULL);
    }
    if (st == LRGD_OK) lrgd_progress_end(&prog, (double)n, NULL);
    r->seconds = lrgd_now() - t0;
    goto done;
oom:
    st = lrgd_fail(LRGD_E_NOMEM, "evaluate: out of memory (batch of %d users x %d items)", B, n_items);
done:
    lrgd_free(scores);
    free(cscore); free(cout); free(cands); free(cptr); free(hist); free(hlen); free(ncands); free(marks);
    free(bad_rank);
    if (st != LRGD_OK) { lrgd_eval_result_free(r); return st; }
    *out = r;
    return LRGD_OK;
}
