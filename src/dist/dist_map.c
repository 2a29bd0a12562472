/* lrgd_user_map over MPI ranks (see dist_map.h). */
#include "dist/dist_map.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static lrgd_status map_run(void *self, const char *phase, uint64_t hash, int64_t n, size_t rec_size, lrgd_user_job job,
                           void *ctx, void *all)
{
    lrgd_dist_map *m = self;
    char name[160];
    snprintf(name, sizeof name, "%s-%s", m->cmd, phase);
    /* A phase depends on the caller's configuration, its own state, the item
     * count and the record layout; every rank must see the same. */
    uint64_t h = lrgd_hash64(LRGD_HASH_INIT, &m->config_hash, sizeof m->config_hash);
    h = lrgd_hash64(h, phase, strlen(phase));
    int64_t v[3] = {(int64_t)hash, n, (int64_t)rec_size};
    h = lrgd_hash64(h, v, sizeof v);
    LRGD_TRY(lrgd_dist_agree_u64(h, name));
    lrgd_shard_job sj;
    memset(&sj, 0, sizeof sj);
    sj.name = name;
    sj.config_hash = h;
    sj.ckpt_dir = m->ckpt_dir;
    sj.rec_size = rec_size;
    sj.run = job;
    sj.ctx = ctx;
    sj.to_all = 1;
    LRGD_TRY(lrgd_shards_init(&sj.shards, n, m->shard_size > 0 ? m->shard_size : lrgd_shards_default_size(n, 1)));
    lrgd_shard_stats ss;
    LRGD_TRY(lrgd_shards_run(&sj, all, &ss));
    m->phases++;
    m->records += n;
    m->computed += ss.computed;
    m->resumed += ss.resumed;
    m->total_computed += ss.total_computed;
    m->total_resumed += ss.total_resumed;
    m->seconds += ss.seconds;
    return LRGD_OK;
}

void lrgd_dist_map_init(lrgd_dist_map *m, const char *cmd, uint64_t config_hash, const char *ckpt_dir,
                        int64_t shard_size)
{
    memset(m, 0, sizeof *m);
    m->map.run = map_run;
    m->map.self = m;
    m->cmd = cmd;
    m->ckpt_dir = ckpt_dir;
    m->config_hash = config_hash;
    m->shard_size = shard_size;
}

uint64_t lrgd_hash_dataset(uint64_t h, const lrgd_dataset *ds)
{
    int n_users = lrgd_dataset_n_users(ds), n_items = lrgd_dataset_n_items(ds);
    h = lrgd_hash64(h, &n_users, sizeof n_users);
    h = lrgd_hash64(h, &n_items, sizeof n_items);
    h = lrgd_hash64(h, lrgd_dataset_offsets(ds), (size_t)(n_users + 1) * sizeof(int64_t));
    return lrgd_hash64(h, lrgd_dataset_items(ds), (size_t)lrgd_dataset_n_interactions(ds) * sizeof(int32_t));
}

uint64_t lrgd_hash_selection(uint64_t h, const lrgd_selection *s, const int32_t *users, int n)
{
    for (int i = 0; i < n; i++) {
        int c = lrgd_selection_count(s, users[i]);
        h = lrgd_hash64(h, &users[i], sizeof users[i]);
        h = lrgd_hash64(h, &c, sizeof c);
        for (int d = 0; d < c; d++) {
            lrgd_demo dm;
            int32_t src = -1;
            if (lrgd_selection_get(s, users[i], d, &dm, &src) != LRGD_OK) continue;
            int32_t v[3] = {src, dm.n_hist, dm.next};
            h = lrgd_hash64(h, v, sizeof v);
            h = lrgd_hash64(h, dm.hist, (size_t)dm.n_hist * sizeof(int32_t));
        }
    }
    return h;
}

lrgd_status lrgd_dist_map_finish(lrgd_dist_map *m)
{
    int size = lrgd_dist_size(), r = lrgd_dist_rank();
    free(m->rank_stats);
    m->rank_stats = calloc((size_t)size * LRGD_RANK_STATS, sizeof *m->rank_stats);
    if (!m->rank_stats) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    struct rusage ru;
    int64_t cpu_us = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cpu_us = (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
    int64_t *mine = m->rank_stats + (size_t)r * LRGD_RANK_STATS;
    lrgd_dist_traffic(&mine[0], &mine[1]);
    mine[2] = cpu_us;
    mine[3] = (int64_t)(m->seconds * 1e6);
    mine[4] = m->computed;
    mine[5] = m->resumed;
    mine[6] = (int64_t)(m->extra[0] * 1e6);
    mine[7] = (int64_t)(m->extra[1] * 1e6);
    /* zeros elsewhere: the sum is the all-gather */
    return lrgd_dist_sum_i64(m->rank_stats, size * LRGD_RANK_STATS);
}

void lrgd_dist_map_json(lrgd_json *j, const lrgd_dist_map *m, const char *extra_key, long long extra_val)
{
    int size = lrgd_dist_size();
    lrgd_json_obj_begin(j);
    lrgd_json_kint(j, "ranks", size);
    lrgd_json_kint(j, "shard_size", m->shard_size); /* 0: about 1/64 of each phase's users */
    lrgd_json_kint(j, "phases", m->phases);
    lrgd_json_kint(j, "records", m->records);
    lrgd_json_kint(j, "shards_computed", m->total_computed);
    lrgd_json_kint(j, "shards_resumed", m->total_resumed);
    if (extra_key) lrgd_json_kint(j, extra_key, extra_val);
    lrgd_json_kstr(j, "checkpoint", m->ckpt_dir ? m->ckpt_dir : "");
    lrgd_json_key(j, "per_rank");
    lrgd_json_arr_begin(j);
    for (int r = 0; m->rank_stats && r < size; r++) {
        const int64_t *v = m->rank_stats + (size_t)r * LRGD_RANK_STATS;
        lrgd_json_obj_begin(j);
        lrgd_json_kint(j, "rank", r);
        lrgd_json_kint(j, "bytes_sent", v[0]);
        lrgd_json_kint(j, "bytes_received", v[1]);
        lrgd_json_knum(j, "cpu_seconds", (double)v[2] / 1e6);
        lrgd_json_knum(j, "phase_seconds", (double)v[3] / 1e6);
        lrgd_json_kint(j, "shards_computed", v[4]);
        lrgd_json_kint(j, "shards_resumed", v[5]);
        for (int k = 0; k < 2; k++)
            if (m->extra_name[k]) lrgd_json_knum(j, m->extra_name[k], (double)v[6 + k] / 1e6);
        lrgd_json_obj_end(j);
    }
    lrgd_json_arr_end(j);
    lrgd_json_obj_end(j);
}

void lrgd_dist_map_free(lrgd_dist_map *m)
{
    free(m->rank_stats);
    m->rank_stats = NULL;
}
