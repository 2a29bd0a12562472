/* lrgd_evaluate across ranks (see dist_eval.h). */
#include "dist/dist_eval.h"

#include <stdlib.h>
#include <string.h>

typedef struct de_rec {
    int32_t user, target, n_ranked, rank;
} de_rec;

typedef struct de_ctx {
    const lrgd_split *sp;
    int step;
    const lrgd_scorer *sc;
    lrgd_eval_opts eo; /* users: the whole list; each shard takes its slice */
} de_ctx;

static lrgd_status de_run(void *vctx, int64_t begin, int64_t end, void *out)
{
    de_ctx *c = vctx;
    lrgd_eval_opts o = c->eo;
    o.users = c->eo.users + begin;
    o.n_users = (int)(end - begin);
    lrgd_eval_result *r;
    LRGD_TRY(lrgd_evaluate(c->sp, c->step, c->sc, &o, &r));
    de_rec *rec = out;
    for (int i = 0; i < r->n; i++) {
        rec[i].user = r->users[i];
        rec[i].target = r->targets[i];
        rec[i].n_ranked = r->n_ranked[i];
        rec[i].rank = r->ranks[i];
    }
    lrgd_eval_result_free(r);
    return LRGD_OK;
}

lrgd_status lrgd_evaluate_dist(const lrgd_split *sp, int step, const lrgd_scorer *sc, const lrgd_eval_opts *opts,
                               const lrgd_dist_eval *d, lrgd_eval_result **out, lrgd_shard_stats *stats)
{
    *out = NULL;
    lrgd_shard_stats local_stats;
    if (!stats) stats = &local_stats;
    memset(stats, 0, sizeof *stats);
    de_ctx c;
    memset(&c, 0, sizeof c);
    c.sp = sp;
    c.step = step;
    c.sc = sc;
    if (opts) c.eo = *opts;
    else lrgd_eval_opts_init(&c.eo);
    if (!c.eo.users) {
        c.eo.users = lrgd_split_users(sp);
        c.eo.n_users = lrgd_split_n_users(sp);
    }
    int n = c.eo.n_users;
    if (n <= 0) return lrgd_fail(LRGD_E_INVALID, "%s: no users to evaluate", d->name);
    int B = c.eo.batch > 0 ? c.eo.batch : 64;
    if (sc->max_batch > 0 && B > sc->max_batch) B = sc->max_batch;
    int64_t size = d->shard_size ? d->shard_size : lrgd_shards_default_size(n, B);
    if (size % B)
        return lrgd_fail(LRGD_E_INVALID, "%s: shard size %lld is not a multiple of the batch (%d)", d->name,
                         (long long)size, B);

    /* What the records depend on beyond the scorer: the data, the users, the
     * evaluator's options and the shard size. */
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    int n_users = lrgd_dataset_n_users(ds), n_items = lrgd_dataset_n_items(ds);
    uint64_t h = lrgd_hash64(LRGD_HASH_INIT, &d->config_hash, sizeof d->config_hash);
    h = lrgd_hash64(h, &n_users, sizeof n_users);
    h = lrgd_hash64(h, &n_items, sizeof n_items);
    h = lrgd_hash64(h, lrgd_dataset_offsets(ds), (size_t)(n_users + 1) * sizeof(int64_t));
    h = lrgd_hash64(h, lrgd_dataset_items(ds), (size_t)lrgd_dataset_n_interactions(ds) * sizeof(int32_t));
    int64_t v[8] = {step, lrgd_split_n_steps(sp), c.eo.n_neg, (int64_t)c.eo.seed, c.eo.keep_history, B, size, n};
    h = lrgd_hash64(h, v, sizeof v);
    h = lrgd_hash64(h, c.eo.users, (size_t)n * sizeof(int32_t));
    LRGD_TRY(lrgd_dist_agree_u64(h, d->name));

    lrgd_shard_job job;
    memset(&job, 0, sizeof job);
    job.name = d->name;
    job.config_hash = h;
    job.ckpt_dir = d->ckpt_dir;
    job.rec_size = sizeof(de_rec);
    job.run = de_run;
    job.ctx = &c;
    job.to_all = d->to_all;
    LRGD_TRY(lrgd_shards_init(&job.shards, n, size));
    int receives = lrgd_dist_rank() == 0 || d->to_all;
    de_rec *all = receives ? malloc((size_t)n * sizeof *all) : NULL;
    if (receives && !all) return lrgd_fail(LRGD_E_NOMEM, "%s: out of memory", d->name);
    lrgd_status st = lrgd_shards_run(&job, all, stats);
    if (st != LRGD_OK || !receives) {
        free(all);
        return st;
    }
    lrgd_eval_result *r = calloc(1, sizeof *r);
    if (r) {
        r->n = n;
        r->seconds = stats->seconds;
        r->users = malloc((size_t)n * sizeof *r->users);
        r->targets = malloc((size_t)n * sizeof *r->targets);
        r->ranks = malloc((size_t)n * sizeof *r->ranks);
        r->n_ranked = malloc((size_t)n * sizeof *r->n_ranked);
    }
    if (!r || !r->users || !r->targets || !r->ranks || !r->n_ranked) {
        lrgd_eval_result_free(r);
        free(all);
        return lrgd_fail(LRGD_E_NOMEM, "%s: out of memory", d->name);
    }
    for (int i = 0; i < n; i++) {
        r->users[i] = all[i].user;
        r->targets[i] = all[i].target;
        r->n_ranked[i] = all[i].n_ranked;
        r->ranks[i] = all[i].rank;
    }
    free(all);
    *out = r;
    return LRGD_OK;
}
