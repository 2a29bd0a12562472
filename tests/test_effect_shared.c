/* lrgd_effect_validity with a shared pool (lrgd_validity_opts.shared_pool,
 * what 'lrgd effect --shared-pool' runs): every user is paired with the same
 * P demonstration users, ascending, drawn from the demonstration pool
 * outside the scored users; each pair's Effect_D (answer row, per token and
 * all rows) equals lrgd_effect_score of the same demonstration, encoded and
 * probed independently here, up to float32 rounding, and its dlogP is the
 * difference of two forward passes; the pairs are the same bits through a
 * map that computes shards of 3 users in reverse order (each shard a fresh
 * job call, as a checkpoint or an MPI rank would) and at 2 threads; a pool
 * that the split cannot fill is refused with LRGD_E_INVALID. */
#include "core/core.h"
#include "lrgd/effect.h"
#include "lrgd/train.h"
#include "model_fixtures.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* shards of `shard` users, last shard first, each into its own buffer */
static lrgd_status shard_run(void *self, const char *phase, uint64_t hash, int64_t n, size_t rec_size, lrgd_user_job job,
                             void *ctx, void *all)
{
    (void)phase;
    (void)hash;
    int64_t shard = *(const int64_t *)self;
    unsigned char *buf = malloc((size_t)shard * rec_size);
    if (!buf) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (int64_t b = (n - 1) / shard * shard; b >= 0; b -= shard) {
        int64_t e = b + shard < n ? b + shard : n;
        memset(buf, 0xA5, (size_t)shard * rec_size);
        lrgd_status st = job(ctx, b, e, buf);
        if (st != LRGD_OK) {
            free(buf);
            return st;
        }
        memcpy((unsigned char *)all + (size_t)b * rec_size, buf, (size_t)(e - b) * rec_size);
    }
    free(buf);
    return LRGD_OK;
}

static int same_pairs(const lrgd_validity *a, const lrgd_validity *b)
{
    if (a->n_pairs != b->n_pairs || a->n_users != b->n_users) return 0;
    for (int i = 0; i < a->n_pairs; i++) {
        const lrgd_validity_pair *x = &a->pairs[i], *y = &b->pairs[i];
        if (x->user != y->user || x->demo_user != y->demo_user || x->len != y->len ||
            memcmp(&x->effect, &y->effect, sizeof(double)) || memcmp(&x->per_token, &y->per_token, sizeof(double)) ||
            memcmp(&x->effect_all, &y->effect_all, sizeof(double)) || memcmp(&x->dlogp, &y->dlogp, sizeof(double)))
            return 0;
    }
    return !memcmp(a->logp0, b->logp0, (size_t)a->n_users * sizeof(double)) && !memcmp(&a->rho, &b->rho, sizeof a->rho);
}

/* |a - b| relative to b, with a floor at 1/10 of the scale of b's row: float32 rounding of
 * sums with cancellation (these weights are large; tests/test_effect_fast.c checks the matrix
 * scorer against the exact formula with a rigorous float32 bound) */
static double rel(double a, double b, double scale) { return fabs(a - b) / fmax(0.1 * scale, fabs(b)); }
static double row_scale(const double *x, int n)
{
    double m = 1e-9;
    for (int i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

static void check_shared(const lrgd_split *sp, lrgd_tmodel *t)
{
    const lrgd_model *m = lrgd_tmodel_model(t);
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    enum { NU = 10, P = 12 };
    lrgd_validity_opts vo;
    lrgd_validity_opts_init(&vo);
    vo.n_users = NU, vo.pool = P, vo.max_hist = 12, vo.demo_hist = 8, vo.seed = 5, vo.shared_pool = 1;
    lrgd_validity *V = NULL;
    CHECK_OK(lrgd_effect_validity(m, sp, &vo, &V));
    if (!V) return;
    CHECK_MSG(V->n_users == NU && V->n_pairs == NU * P, "%d users, %d pairs", V->n_users, V->n_pairs);
    CHECK_MSG(V->n_encoded == P && V->n_truth == NU * P, "encoded %lld, truth %lld", (long long)V->n_encoded,
              (long long)V->n_truth);
    CHECK(isfinite(V->rho) && fabs(V->rho) <= 1 && isfinite(V->rho_all_rows) && isfinite(V->rho_user_mean));
    CHECK(V->us_score_per_pair > 0 && V->us_truth_per_pair > 0 && V->t_encode > 0 && V->t_probe > 0);
    /* the same users as the per-user mode with this seed */
    int32_t users[NU];
    CHECK_OK(lrgd_sample_users(sp, NU, vo.seed, users));
    CHECK(!memcmp(users, V->users, sizeof users));
    /* one pool: the first user's demonstration users, ascending, every user the same, none scored, all in the
     * demonstration pool */
    lrgd_demo_index *ix = NULL;
    CHECK_OK(lrgd_demo_index_new(sp, LRGD_STEP_VALID, vo.demo_hist, &ix));
    if (!ix) goto out;
    int32_t pool[P];
    int pool_ok = V->n_pairs == NU * P;
    for (int k = 0; pool_ok && k < P; k++) {
        pool[k] = V->pairs[k].demo_user;
        pool_ok = k == 0 || pool[k] > pool[k - 1];
        for (int i = 0; i < NU; i++) pool_ok &= pool[k] != V->users[i];
        int in = 0;
        for (int i = 0; i < lrgd_demo_index_n_pool(ix); i++) in |= lrgd_demo_index_pool(ix)[i] == pool[k];
        pool_ok &= in;
    }
    for (int i = 0; pool_ok && i < NU * P; i++)
        pool_ok = V->pairs[i].user == V->users[i / P] && V->pairs[i].demo_user == pool[i % P];
    CHECK_MSG(pool_ok, "the pairs are not every user x one shared pool outside the scored users");
    if (!pool_ok) goto out;

    /* every pair against lrgd_effect_score of an independent store and probes */
    lrgd_effect *e = NULL;
    lrgd_store *st = NULL;
    CHECK_OK(lrgd_effect_new(m, &e));
    if (e) CHECK_OK(lrgd_store_new(e, &st));
    if (!st) {
        lrgd_effect_free(e);
        goto out;
    }
    int ids[P], tok[256], n;
    for (int k = 0; k < P; k++) {
        lrgd_demo d;
        CHECK_OK(lrgd_demo_index_demo(ix, pool[k], &d, NULL));
        CHECK_OK(lrgd_effect_demo_tokens(e, &d, vo.demo_hist, tok, &n));
        CHECK_OK(lrgd_store_add(st, tok, n, NULL, &ids[k]));
    }
    double worst = 0, worst_all = 0, worst_truth = 0, worst_p0 = 0;
    int len_ok = 1;
    for (int i = 0; i < NU; i++) {
        const int32_t *h;
        int nh, qt[256], nq;
        lrgd_split_history(sp, LRGD_STEP_VALID, V->users[i], &h, &nh);
        int32_t y = lrgd_split_target(sp, LRGD_STEP_VALID, V->users[i]);
        CHECK_OK(lrgd_effect_query_tokens(e, h, nh, vo.max_hist, qt, &nq));
        lrgd_probe *p = NULL, *pa = NULL;
        double eff[P], ptk[P], efa[P];
        CHECK_OK(lrgd_probe_run(e, NULL, NULL, 0, qt, nq, y, &p));
        CHECK_OK(lrgd_probe_run_ex(e, NULL, NULL, 0, qt, nq, y, LRGD_PROBE_ALL_ROWS, &pa));
        if (!p || !pa) {
            lrgd_probe_free(p);
            lrgd_probe_free(pa);
            continue;
        }
        CHECK_OK(lrgd_effect_score(st, p, ids, P, eff, ptk));
        CHECK_OK(lrgd_effect_score(st, pa, ids, P, efa, NULL));
        double lp0 = lrgd_probe_logp(p), se = row_scale(eff, P), sp_ = row_scale(ptk, P), sa = row_scale(efa, P);
        worst_p0 = fmax(worst_p0, fabs(V->logp0[i] - lp0));
        for (int k = 0; k < P; k++) {
            const lrgd_validity_pair *pr = &V->pairs[i * P + k];
            len_ok &= pr->len == lrgd_store_len(st, ids[k]);
            worst = fmax(worst, fmax(rel(pr->effect, eff[k], se), rel(pr->per_token, ptk[k], sp_)));
            worst_all = fmax(worst_all, rel(pr->effect_all, efa[k], sa));
            /* the truth: [T | d | Q] */
            int k0 = lrgd_effect_n_instr(e), len = lrgd_store_len(st, ids[k]);
            CHECK(k0 == 1); /* T is [BOS] */
            tok[0] = lrgd_effect_vocab(e)->bos;
            memcpy(tok + k0, lrgd_store_tokens(st, ids[k]), sizeof(int) * (size_t)len);
            memcpy(tok + k0 + len, qt, sizeof(int) * (size_t)nq);
            double lp;
            CHECK_OK(lrgd_effect_logp(e, tok, k0 + len + nq, y, &lp));
            worst_truth = fmax(worst_truth, fabs(pr->dlogp - (lp - lp0)));
        }
        lrgd_probe_free(p);
        lrgd_probe_free(pa);
    }
    CHECK(len_ok);
    printf("shared pool vs lrgd_effect_score: worst relative difference %.3g (all rows %.3g)\n", worst, worst_all);
    CHECK_MSG(worst < 1e-3, "shared pool vs lrgd_effect_score: worst relative difference %.3g", worst);
    CHECK_MSG(worst_all < 1e-3, "all-rows form: worst relative difference %.3g", worst_all);
    CHECK_MSG(worst_truth < 1e-9 && worst_p0 < 1e-9, "dlogP off by %.3g, log p0 by %.3g", worst_truth, worst_p0);
    lrgd_store_free(st);
    lrgd_effect_free(e);

    /* the same bits through shards of 3 (reverse order) and at 2 threads */
    int64_t shard = 3;
    lrgd_user_map map = {shard_run, &shard};
    lrgd_validity *W = NULL;
    vo.map = &map;
    CHECK_OK(lrgd_effect_validity(m, sp, &vo, &W));
    if (W) CHECK_MSG(same_pairs(V, W), "the shards give other pairs");
    lrgd_validity_free(W);
    W = NULL;
    vo.map = NULL;
    int th = lrgd_get_threads();
    lrgd_set_threads(2);
    CHECK_OK(lrgd_effect_validity(m, sp, &vo, &W));
    lrgd_set_threads(th);
    if (W) CHECK_MSG(same_pairs(V, W), "2 threads give other pairs");
    lrgd_validity_free(W);

    /* a pool the split cannot fill */
    int N = lrgd_demo_index_n_pool(ix);
    vo.pool = N - NU + 1;
    W = NULL;
    lrgd_status s = lrgd_effect_validity(m, sp, &vo, &W);
    CHECK_MSG(s == LRGD_E_INVALID && !W && strstr(lrgd_last_error(), "shared pool"), "status %d: %s", (int)s,
              lrgd_last_error());
    lrgd_clear_error();
    /* the largest that fits, without truth: every remaining pool user (some scored users may be outside
     * the demonstration pool, so this is at least N - NU) */
    vo.pool = N - NU;
    vo.truth = 0;
    CHECK_OK(lrgd_effect_validity(m, sp, &vo, &W));
    if (W) CHECK(W->n_pairs == NU * vo.pool && isnan(W->pairs[0].dlogp) && isnan(W->rho));
    lrgd_validity_free(W);
out:
    (void)ds;
    lrgd_demo_index_free(ix);
    lrgd_validity_free(V);
}

int main(void)
{
    lrgd_synth *sy = NULL;
    CHECK_OK(mf_small_synth(&sy));
    if (!sy) return t_finish("test_effect_shared");
    const lrgd_dataset *ds = lrgd_synth_dataset(sy);
    lrgd_split *sp = NULL;
    CHECK_OK(lrgd_split_loo(ds, &sp));
    lrgd_tmodel *t = sp ? mf_random_model(ds, LRGD_ATTN_SOFTMAX) : NULL;
    CHECK(t != NULL);
    if (t) check_shared(sp, t);
    lrgd_tmodel_free(t);
    lrgd_split_free(sp);
    lrgd_synth_free(sy);
    return t_finish("test_effect_shared");
}
