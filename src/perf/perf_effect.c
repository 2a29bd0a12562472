/* Effect_D of U users against one shared pool of D demonstrations: the
 * matrix scorer, the per-user scorer and the ground-truth forward pass in
 * the same run (perf.h). */
#include "effect/effect_impl.h"
#include "perf/perf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lrgd_status lrgd_perf_effect_matrix_run(const lrgd_model *m, const lrgd_split *sp, int U, int D, int reps,
                                        uint64_t seed, lrgd_perf_effect_matrix *out)
{
    memset(out, 0, sizeof *out);
    int N = lrgd_split_n_users(sp);
    if (U < 1 || D < 1 || reps < 1 || (long long)U + D > N)
        return lrgd_fail(LRGD_E_INVALID, "effect matrix benchmark: %d users + a pool of %d from %d split users, %d reps",
                         U, D, N, reps);
    lrgd_effect *e = NULL;
    lrgd_store *st = NULL;
    lrgd_demo_index *ix = NULL;
    int32_t *sample = malloc(sizeof *sample * (size_t)(U + D)), *ys = malloc(sizeof *ys * (size_t)U);
    int *ids = malloc(sizeof *ids * (size_t)D), *tok = NULL, *qlen = calloc((size_t)U, sizeof *qlen);
    int **qtok = calloc((size_t)U, sizeof *qtok);
    lrgd_probe **pr = calloc((size_t)U, sizeof *pr);
    double *mat = malloc(sizeof *mat * (size_t)U * D), *one = malloc(sizeof *one * (size_t)D);
    lrgd_status s_ = sample && ys && ids && qlen && qtok && pr && mat && one ? LRGD_OK
                                                                            : lrgd_fail(LRGD_E_NOMEM, "out of memory");
    if (s_ == LRGD_OK) s_ = lrgd_effect_new(m, &e);
    if (s_ == LRGD_OK) s_ = lrgd_store_new(e, &st);
    if (s_ == LRGD_OK) s_ = lrgd_demo_index_new(sp, LRGD_STEP_VALID, 20, &ix);
    if (s_ == LRGD_OK) s_ = lrgd_sample_users(sp, U + D, seed, sample);
    if (s_ == LRGD_OK && !(tok = malloc(sizeof *tok * (size_t)e->c.seq_len)))
        s_ = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    /* the pool: sample[U..U+D) (a user without a demonstration at this step is left out) */
    int nd = 0;
    long rows = 0;
    for (int j = 0; j < D && s_ == LRGD_OK; j++) {
        lrgd_demo d;
        int n = 0;
        if (lrgd_demo_index_demo(ix, sample[U + j], &d, NULL) != LRGD_OK) {
            lrgd_clear_error();
            continue;
        }
        s_ = lrgd_demo_tokens(&e->v, &d, 20, tok, &n);
        if (s_ == LRGD_OK) s_ = lrgd_store_add(st, tok, n, NULL, &ids[nd]);
        if (s_ == LRGD_OK) rows += lrgd_store_len(st, ids[nd++]);
    }
    if (s_ == LRGD_OK && nd == 0) s_ = lrgd_fail(LRGD_E_INVALID, "effect matrix benchmark: an empty pool");
    /* the users: one probe each */
    for (int u = 0; u < U && s_ == LRGD_OK; u++) {
        const int32_t *h;
        int nh;
        lrgd_split_history(sp, LRGD_STEP_VALID, sample[u], &h, &nh);
        ys[u] = lrgd_split_target(sp, LRGD_STEP_VALID, sample[u]);
        if (!(qtok[u] = malloc(sizeof(int) * (size_t)e->c.seq_len))) s_ = lrgd_fail(LRGD_E_NOMEM, "out of memory");
        if (s_ == LRGD_OK) s_ = lrgd_query_tokens(&e->v, h, nh, 50, qtok[u], &qlen[u]);
        if (s_ == LRGD_OK) s_ = lrgd_probe_run(e, NULL, NULL, 0, qtok[u], qlen[u], ys[u], &pr[u]);
    }
    double best_mat = INFINITY, best_one = INFINITY, best_truth = INFINITY, maxrel = 0;
    int nt = 0;
    for (int r = 0; r < reps && s_ == LRGD_OK; r++) {
        double t0 = lrgd_perf_cpu_now();
        s_ = lrgd_effect_score_matrix(st, (const lrgd_probe *const *)pr, U, ids, nd, mat, NULL);
        double tm = lrgd_perf_cpu_now() - t0;
        t0 = lrgd_perf_cpu_now();
        for (int u = 0; u < U && s_ == LRGD_OK; u++) {
            s_ = lrgd_effect_score(st, pr[u], ids, nd, one, NULL);
            for (int j = 0; j < nd && r == 0; j++) {
                double rel = fabs(mat[(size_t)u * nd + j] - one[j]) / fmax(1e-3, fabs(one[j]));
                if (rel > maxrel) maxrel = rel;
            }
        }
        double to = lrgd_perf_cpu_now() - t0;
        /* the truth on a corner of the matrix */
        int k = e->n_instr;
        nt = 0;
        t0 = lrgd_perf_cpu_now();
        for (int u = 0; u < (U < 8 ? U : 8) && s_ == LRGD_OK; u++)
            for (int j = 0; j < (nd < 25 ? nd : 25) && s_ == LRGD_OK; j++) {
                int len = lrgd_store_len(st, ids[j]);
                if (k + len + qlen[u] > e->c.seq_len) continue;
                double lp;
                s_ = ef_store_logp(e, st, ids[j], qtok[u], qlen[u], ys[u], tok, &lp);
                nt++;
            }
        double tt = (lrgd_perf_cpu_now() - t0) / (nt ? nt : 1);
        if (tm < best_mat) best_mat = tm;
        if (to < best_one) best_one = to;
        if (tt < best_truth) best_truth = tt;
    }
    if (s_ == LRGD_OK) {
        double np = (double)U * nd;
        out->users = U;
        out->pool = nd;
        out->pairs = (int)np;
        out->truth_pairs = nt;
        out->reps = reps;
        out->tokens_per_demo = (double)rows / nd;
        out->us_matrix_per_pair = 1e6 * best_mat / np;
        out->us_score_per_pair = 1e6 * best_one / np;
        out->us_truth_per_pair = 1e6 * best_truth;
        out->max_rel_diff = maxrel;
    }
    for (int u = 0; u < U && pr && qtok; u++) {
        lrgd_probe_free(pr[u]);
        free(qtok[u]);
    }
    free(pr);
    free(qtok);
    free(sample);
    free(ys);
    free(ids);
    free(tok);
    free(qlen);
    free(mat);
    free(one);
    lrgd_demo_index_free(ix);
    lrgd_store_free(st);
    lrgd_effect_free(e);
    return s_;
}
