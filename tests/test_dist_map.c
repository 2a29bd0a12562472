/* The per-user phases of lrgd_optimize and lrgd_effect_validity through a
 * map (lrgd_user_map, what src/dist/dist_map.c plugs in over MPI) give
 * exactly the results of the map-free run. The map here runs in this
 * process but like a distributed one would: shards of 3 users computed in
 * reverse order, each into its own buffer, then copied into place. Stage 2
 * thus takes the speculative path (every user against the round's start,
 * then the merge in user order that recomputes users whose reads changed),
 * and the test asserts that some users were recomputed, that the merge did
 * not recompute everybody, and that every per-user number, every selection,
 * the guard's trace and the edit counts equal the sequential run; the same
 * with the forced collapse (a round rolled back by the guard). A map that
 * fails in a shard fails the call. Needs no MPI (tests/cli_mpi.sh runs the
 * commands under mpirun). */
#include "core/core.h"
#include "lrgd/effect.h"
#include "lrgd/train.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct scramble {
    int64_t shard;
    int calls, phases, fail_phase; /* fail_phase >= 0: the phase whose first shard fails */
} scramble;

static lrgd_status scramble_run(void *self, const char *phase, uint64_t hash, int64_t n, size_t rec_size,
                                lrgd_user_job job, void *ctx, void *all)
{
    (void)phase;
    (void)hash;
    scramble *s = self;
    int this_phase = s->phases++;
    int64_t n_sh = (n + s->shard - 1) / s->shard;
    unsigned char *buf = malloc((size_t)s->shard * rec_size + 1);
    if (!buf) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (int64_t k = n_sh - 1; k >= 0; k--) {
        int64_t b = k * s->shard, e = b + s->shard < n ? b + s->shard : n;
        memset(buf, 0xA5, (size_t)s->shard * rec_size); /* nothing carries over between shards */
        if (this_phase == s->fail_phase) {
            free(buf);
            return lrgd_fail(LRGD_E_RUNTIME, "injected shard failure");
        }
        lrgd_status st = job(ctx, b, e, buf);
        s->calls++;
        if (st != LRGD_OK) {
            free(buf);
            return st;
        }
        memcpy((unsigned char *)all + (size_t)b * rec_size, buf, (size_t)(e - b) * rec_size);
    }
    free(buf);
    return LRGD_OK;
}

static int same_sel(const lrgd_selection *a, const lrgd_selection *b, int n_users)
{
    for (int u = 0; u < n_users; u++) {
        int c = lrgd_selection_count(a, u);
        if (c != lrgd_selection_count(b, u)) return 0;
        for (int i = 0; i < c; i++) {
            lrgd_demo da, db;
            int32_t sa, sb;
            if (lrgd_selection_get(a, u, i, &da, &sa) != LRGD_OK || lrgd_selection_get(b, u, i, &db, &sb) != LRGD_OK)
                return 0;
            if (sa != sb || da.n_hist != db.n_hist || da.next != db.next ||
                memcmp(da.hist, db.hist, (size_t)da.n_hist * sizeof *da.hist) != 0)
                return 0;
        }
    }
    return 1;
}

static void same_result(const char *what, const lrgd_opt_result *a, const lrgd_opt_result *b, int n_ds_users)
{
    CHECK_MSG(a->n == b->n && a->n_hold == b->n_hold, "%s: user counts", what);
    int users_same = 1;
    for (int i = 0; i < a->n && i < b->n; i++) {
        const lrgd_opt_user *x = &a->users[i], *y = &b->users[i];
        users_same &= x->user == y->user && x->y == y->y && x->n_pool == y->n_pool && x->edits == y->edits &&
                      !memcmp(&x->logp_zero, &y->logp_zero, sizeof x->logp_zero) &&
                      !memcmp(&x->logp_similar, &y->logp_similar, sizeof x->logp_similar) &&
                      !memcmp(&x->logp_stage1, &y->logp_stage1, sizeof x->logp_stage1) &&
                      !memcmp(&x->logp_stage2, &y->logp_stage2, sizeof x->logp_stage2) &&
                      !memcmp(&x->obj_stage1, &y->obj_stage1, sizeof x->obj_stage1) &&
                      !memcmp(&x->j_stage1, &y->j_stage1, sizeof x->j_stage1) &&
                      !memcmp(&x->j_stage2, &y->j_stage2, sizeof x->j_stage2);
    }
    CHECK_MSG(users_same, "%s: per-user results differ", what);
    CHECK_MSG(same_sel(a->stage1, b->stage1, n_ds_users), "%s: stage-1 selections differ", what);
    CHECK_MSG(same_sel(a->stage2, b->stage2, n_ds_users), "%s: stage-2 selections differ", what);
    CHECK_MSG(same_sel(a->similar, b->similar, n_ds_users), "%s: similar selections differ", what);
    CHECK_MSG(a->n_rounds == b->n_rounds && a->rolled_back == b->rolled_back &&
                  a->edits_accepted == b->edits_accepted && a->edits_rolled_back == b->edits_rolled_back,
              "%s: rounds %d/%d, rolled back %d/%d, edits %d/%d, %d/%d", what, a->n_rounds, b->n_rounds,
              a->rolled_back, b->rolled_back, a->edits_accepted, b->edits_accepted, a->edits_rolled_back,
              b->edits_rolled_back);
    CHECK_MSG(!memcmp(&a->hold_stage1, &b->hold_stage1, sizeof(double)) &&
                  !memcmp(&a->hold_final, &b->hold_final, sizeof(double)),
              "%s: guard %.9g/%.9g -> %.9g/%.9g", what, a->hold_stage1, b->hold_stage1, a->hold_final, b->hold_final);
    for (int r = 0; r < a->n_rounds && r < b->n_rounds; r++)
        CHECK_MSG(!memcmp(&a->hold_trace[r], &b->hold_trace[r], sizeof(double)), "%s: guard after round %d", what, r);
}

int main(void)
{
    lrgd_set_quiet(1);
    lrgd_set_threads(1);
    /* planted tastes: 8 clusters of 20 users over 4 item groups (small clusters:
     * the chosen demonstrations are shared, and a merge that skipped the
     * recomputation would differ from the sequential run) */
    lrgd_synth_opts so;
    lrgd_synth_opts_init(&so);
    so.users_per_cluster = 20;
    so.seed = 11;
    lrgd_synth *sy = NULL;
    CHECK_OK(lrgd_synth_new(&so, &sy));
    if (!sy) return t_finish("test_dist_map");
    const lrgd_dataset *ds = lrgd_synth_dataset(sy);
    lrgd_split *sp = NULL;
    CHECK_OK(lrgd_split_loo(ds, &sp));
    char path[] = "/tmp/lrgd_test_dist_map.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) close(fd);
    lrgd_train_opts to;
    lrgd_train_opts_init(&to);
    to.n_layers = 1, to.dim = 16, to.n_heads = 2, to.n_kv_heads = 1, to.hidden_dim = 32, to.seq_len = 128;
    to.demos = 2, to.max_hist = 12, to.demo_hist = 8, to.epochs = 4, to.batch = 16, to.sampled = 0;
    to.adamw.lr = 0.01;
    to.adamw.warmup_steps = 10;
    to.out = path;
    to.no_resume = 1;
    to.seed = 5;
    lrgd_train_result tr;
    memset(&tr, 0, sizeof tr);
    CHECK_OK(lrgd_train(sp, &to, &tr));
    lrgd_train_result_free(&tr);
    lrgd_model *m = NULL;
    lrgd_tmodel *t = NULL;
    CHECK_OK(lrgd_model_load(path, &m));
    if (m) CHECK_OK(lrgd_tmodel_from_model(m, &t));
    unlink(path);
    char state[sizeof path + 8];
    snprintf(state, sizeof state, "%s.train", path);
    unlink(state);
    if (!t) return t_finish("test_dist_map");

    int n_users = 30, n_hold = 8, nu = lrgd_dataset_n_users(ds);
    int32_t sample[64];
    CHECK_OK(lrgd_sample_users(sp, n_users + n_hold, 3, sample));
    lrgd_opt_opts o;
    lrgd_opt_opts_init(&o);
    o.k = 2, o.pool = 8, o.n_perturb = 2, o.n_perturb2 = 1, o.rounds = 3, o.verify = 2, o.proposals = 4;
    o.max_hist = 12, o.demo_hist = 8;
    scramble sc = {3, 0, 0, -1};
    lrgd_user_map map = {scramble_run, &sc};

    /* the two-stage run: sequential vs speculative-and-merged */
    lrgd_opt_result *ref = NULL, *got = NULL;
    CHECK_OK(lrgd_optimize(t, sp, sample, n_users, sample + n_users, n_hold, NULL, 0, &o, &ref));
    o.map = &map;
    CHECK_OK(lrgd_optimize(t, sp, sample, n_users, sample + n_users, n_hold, NULL, 0, &o, &got));
    if (ref && got) {
        same_result("two-stage", ref, got, nu);
        CHECK_MSG(ref->edits_accepted > 0, "stage 2 accepted no edit: nothing was tested");
        CHECK_MSG(got->stage2_redone > 0, "the merge recomputed no user: the speculative path was not tested");
        CHECK_MSG(got->stage2_redone < ref->n_rounds * n_users, "the merge recomputed every user (%d)",
                  got->stage2_redone);
        CHECK_MSG(ref->stage2_redone == 0, "the sequential run reports %d recomputations", ref->stage2_redone);
        /* stage 1 (all users), its log p, the guard before and after each round, each round, the final J */
        CHECK_MSG(sc.phases >= 4 + 2 * got->n_rounds, "%d phases through the map", sc.phases);
    }
    lrgd_opt_result_free(ref);
    lrgd_opt_result_free(got);
    ref = got = NULL;

    /* the forced collapse: round 1 scrambles every chosen demonstration, the guard rolls it back */
    o.map = NULL;
    o.fault = 1;
    o.rounds = 2;
    CHECK_OK(lrgd_optimize(t, sp, sample, n_users, sample + n_users, n_hold, NULL, 0, &o, &ref));
    o.map = &map;
    CHECK_OK(lrgd_optimize(t, sp, sample, n_users, sample + n_users, n_hold, NULL, 0, &o, &got));
    if (ref && got) {
        same_result("forced collapse", ref, got, nu);
        CHECK_MSG(ref->rolled_back == 1, "the forced round was not rolled back");
    }
    lrgd_opt_result_free(ref);
    lrgd_opt_result_free(got);
    o.fault = 0;

    /* a failing shard fails the call */
    sc.phases = 0;
    sc.fail_phase = 2;
    got = NULL;
    lrgd_status st = lrgd_optimize(t, sp, sample, n_users, sample + n_users, n_hold, NULL, 0, &o, &got);
    CHECK_MSG(st != LRGD_OK && got == NULL, "a failing shard: status %d", (int)st);
    CHECK_MSG(strstr(lrgd_last_error(), "injected shard failure") != NULL, "message: %s", lrgd_last_error());
    sc.fail_phase = -1;

    /* Effect_D validity: every pair and every summary */
    lrgd_validity_opts vo;
    lrgd_validity_opts_init(&vo);
    vo.n_users = 20, vo.pool = 10, vo.max_hist = 12, vo.demo_hist = 8, vo.seed = 9;
    lrgd_validity *va = NULL, *vb = NULL;
    CHECK_OK(lrgd_effect_validity(lrgd_tmodel_model(t), sp, &vo, &va));
    vo.map = &map;
    CHECK_OK(lrgd_effect_validity(lrgd_tmodel_model(t), sp, &vo, &vb));
    if (va && vb) {
        CHECK_MSG(va->n_users == vb->n_users && va->n_pairs == vb->n_pairs && va->n_pairs > 100,
                  "validity: %d/%d users, %d/%d pairs", va->n_users, vb->n_users, va->n_pairs, vb->n_pairs);
        int pairs_same = va->n_pairs == vb->n_pairs;
        for (int i = 0; pairs_same && i < va->n_pairs; i++) {
            const lrgd_validity_pair *x = &va->pairs[i], *y = &vb->pairs[i];
            pairs_same = x->user == y->user && x->demo_user == y->demo_user && x->len == y->len &&
                         !memcmp(&x->effect, &y->effect, sizeof(double)) &&
                         !memcmp(&x->per_token, &y->per_token, sizeof(double)) &&
                         !memcmp(&x->effect_all, &y->effect_all, sizeof(double)) &&
                         !memcmp(&x->dlogp, &y->dlogp, sizeof(double));
        }
        CHECK_MSG(pairs_same, "validity: pairs differ");
        CHECK_MSG(!memcmp(va->logp0, vb->logp0, (size_t)va->n_users * sizeof(double)), "validity: log p0 differs");
        CHECK_MSG(!memcmp(&va->rho, &vb->rho, sizeof(double)) && !memcmp(&va->pearson, &vb->pearson, sizeof(double)) &&
                      !memcmp(&va->rho_user_mean, &vb->rho_user_mean, sizeof(double)) &&
                      !memcmp(&va->gain_top, &vb->gain_top, sizeof(double)) &&
                      !memcmp(&va->top1_agree, &vb->top1_agree, sizeof(double)),
                  "validity: summaries differ (rho %.9g / %.9g)", va->rho, vb->rho);
        CHECK_MSG(va->n_encoded == vb->n_encoded && va->n_truth == vb->n_truth, "validity: counts %lld/%lld",
                  (long long)va->n_encoded, (long long)vb->n_encoded);
    }
    lrgd_validity_free(va);
    lrgd_validity_free(vb);

    lrgd_tmodel_free(t);
    lrgd_model_free(m);
    lrgd_split_free(sp);
    lrgd_synth_free(sy);
    return t_finish("test_dist_map");
}
