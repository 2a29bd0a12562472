/* lrgd_evaluate_dist (src/dist/dist_eval.h) equals lrgd_evaluate field by
 * field: Pop and ItemKNN on Beauty, full ranking and 1+99, a custom user
 * list in a scrambled order, checkpoints and resume, to_all; and a planted
 * scorer whose scores depend on each user's slot in its batch, which proves
 * that shards hold whole batches (the effective batch when the scorer caps
 * it). Every rank computes the single-process reference itself, so under
 * mpirun (tests/cli_mpi.sh runs it with 2 ranks) each compares its copy. */
#include "dist/dist_eval.h"
#include "test.h"

#include <unistd.h>

static int same(const lrgd_eval_result *a, const lrgd_eval_result *b)
{
    if (!a || !b || a->n != b->n) return 0;
    size_t n = (size_t)a->n * sizeof(int32_t);
    return !memcmp(a->users, b->users, n) && !memcmp(a->targets, b->targets, n) && !memcmp(a->ranks, b->ranks, n) &&
           !memcmp(a->n_ranked, b->n_ranked, n);
}

/* Scores by a hash of (user, item), negated for the first user of every
 * score_batch call: ranks depend on where batches start. */
typedef struct slot_ctx {
    int n_items;
} slot_ctx;

static lrgd_status slot_score(void *vctx, int n, const int32_t *users, const int32_t *const *hist, const int *hist_len,
                              float *scores)
{
    (void)hist;
    (void)hist_len;
    slot_ctx *c = vctx;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < c->n_items; j++) {
            uint32_t h = (uint32_t)users[i] * 2654435761u ^ (uint32_t)j * 40503u;
            h ^= h >> 13;
            h *= 0x5bd1e995u;
            float s = (float)(h >> 8);
            scores[(size_t)i * c->n_items + j] = i == 0 ? -s : s;
        }
    return LRGD_OK;
}

static void check_case(const char *what, const lrgd_split *sp, const lrgd_scorer *sc, const lrgd_eval_opts *eo,
                       const lrgd_dist_eval *d, int want_resumed)
{
    lrgd_eval_result *ref = NULL, *got = NULL;
    lrgd_shard_stats ss;
    CHECK_OK(lrgd_evaluate(sp, LRGD_STEP_TEST, sc, eo, &ref));
    CHECK_OK(lrgd_evaluate_dist(sp, LRGD_STEP_TEST, sc, eo, d, &got, &ss));
    if (lrgd_dist_rank() == 0 || d->to_all) CHECK_MSG(same(ref, got), "%s: distributed result differs", what);
    else CHECK_MSG(got == NULL, "%s: rank %d got a result without to_all", what, lrgd_dist_rank());
    if (want_resumed >= 0)
        CHECK_MSG(ss.total_resumed == want_resumed, "%s: %lld shards resumed, want %d", what,
                  (long long)ss.total_resumed, want_resumed);
    lrgd_eval_result_free(ref);
    lrgd_eval_result_free(got);
}

int main(int argc, char **argv)
{
    if (lrgd_dist_init(&argc, &argv) != LRGD_OK) {
        fprintf(stderr, "test_dist_eval: %s\n", lrgd_last_error());
        return 1;
    }
    lrgd_set_quiet(1);
    lrgd_set_threads(1);
    lrgd_dataset *ds = NULL;
    lrgd_split *sp = NULL;
    CHECK_OK(lrgd_dataset_load(t_shared("datasets/amazon/Beauty.txt"), LRGD_DATA_AMAZON, &ds));
    if (!ds) return t_finish("test_dist_eval");
    CHECK_OK(lrgd_split_loo(ds, &sp));
    lrgd_scorer pop, knn;
    CHECK_OK(lrgd_scorer_pop(sp, LRGD_STEP_TEST, &pop));
    lrgd_itemknn_opts ko;
    lrgd_itemknn_opts_init(&ko);
    CHECK_OK(lrgd_scorer_itemknn(sp, LRGD_STEP_TEST, &ko, &knn));

    /* A scrambled subset: every third user, in a stride order. */
    int n_all = lrgd_split_n_users(sp), n_sub = 0;
    int32_t *sub = malloc((size_t)n_all * sizeof *sub);
    for (int i = 0; i < n_all; i += 3) sub[n_sub++] = lrgd_split_users(sp)[(i * 7919) % n_all];

    lrgd_dist_eval d;
    memset(&d, 0, sizeof d);
    d.name = "test-eval";
    d.config_hash = 1;
    lrgd_eval_opts eo;
    lrgd_eval_opts_init(&eo);
    check_case("pop full", sp, &pop, &eo, &d, 0);
    eo.n_neg = 99;
    d.config_hash = 2;
    check_case("itemknn 1+99", sp, &knn, &eo, &d, 0);
    eo.users = sub;
    eo.n_users = n_sub;
    d.to_all = 1;
    check_case("itemknn 1+99 subset, to_all", sp, &knn, &eo, &d, 0);
    eo.n_neg = 0;
    d.shard_size = 64 * 5;
    check_case("itemknn full subset, shards of 320", sp, &knn, &eo, &d, 0);

    /* Checkpoints: the second run resumes every shard and gives the same. */
    char dir[256] = "";
    if (lrgd_dist_rank() == 0) {
        snprintf(dir, sizeof dir, "/tmp/lrgd_test_dist_eval.XXXXXX");
        if (!mkdtemp(dir)) dir[0] = 0;
    }
    CHECK_OK(lrgd_dist_bcast(dir, sizeof dir, 0));
    d.ckpt_dir = dir;
    d.shard_size = 0;
    d.to_all = 0;
    eo.n_neg = 99;
    int64_t n_shards = (n_sub + lrgd_shards_default_size(n_sub, 64) - 1) / lrgd_shards_default_size(n_sub, 64);
    check_case("checkpointed, first run", sp, &knn, &eo, &d, 0);
    check_case("checkpointed, resumed", sp, &knn, &eo, &d, (int)n_shards);
    /* Another seed is another configuration: nothing resumed. */
    eo.seed = 7;
    check_case("checkpointed, other seed", sp, &knn, &eo, &d, 0);
    d.ckpt_dir = NULL;
    eo.seed = 42;

    /* Batches: shards must start where batches start. */
    slot_ctx sc_ctx = {lrgd_dataset_n_items(ds)};
    lrgd_scorer slot = {"slot", &sc_ctx, lrgd_dataset_n_items(ds), 0, slot_score, NULL, NULL};
    eo.users = NULL;
    eo.n_users = 0;
    eo.n_neg = 0;
    eo.batch = 48;
    d.config_hash = 3;
    check_case("batch-dependent scorer, batch 48", sp, &slot, &eo, &d, 0);
    slot.max_batch = 20; /* the effective batch is 20 */
    check_case("batch-dependent scorer, max_batch 20", sp, &slot, &eo, &d, 0);
    d.shard_size = 48 * 7; /* a multiple of 48 but not of 20 */
    lrgd_eval_result *bad = NULL;
    CHECK(lrgd_evaluate_dist(sp, LRGD_STEP_TEST, &slot, &eo, &d, &bad, NULL) == LRGD_E_INVALID);
    CHECK(strstr(lrgd_last_error(), "not a multiple of the batch (20)") != NULL);
    /* The planted dependence is real: misaligned shards change ranks. */
    if (lrgd_dist_size() == 1) {
        lrgd_eval_result *a = NULL, *b = NULL;
        lrgd_eval_opts e2 = eo;
        CHECK_OK(lrgd_evaluate(sp, LRGD_STEP_TEST, &slot, &e2, &a));
        e2.users = lrgd_split_users(sp) + 10; /* batches start 10 users later */
        e2.n_users = n_all - 10;
        CHECK_OK(lrgd_evaluate(sp, LRGD_STEP_TEST, &slot, &e2, &b));
        int diff = 0;
        for (int i = 0; a && b && i < b->n; i++) diff += a->ranks[i + 10] != b->ranks[i];
        CHECK_MSG(diff > 0, "the slot scorer did not depend on batch boundaries");
        lrgd_eval_result_free(a);
        lrgd_eval_result_free(b);
    }

    CHECK_OK(lrgd_dist_barrier());
    if (lrgd_dist_rank() == 0 && dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CHECK(system(cmd) == 0);
    }
    free(sub);
    lrgd_scorer_release(&pop);
    lrgd_scorer_release(&knn);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
    char name[64];
    snprintf(name, sizeof name, "test_dist_eval (rank %d of %d)", lrgd_dist_rank(), lrgd_dist_size());
    int rc = t_finish(name);
    lrgd_dist_finalize();
    return rc;
}
