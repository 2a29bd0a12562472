/* The per-user phases of the Effect_D validity check and the two-stage
 * optimizer (lrgd_user_map in lrgd/effect.h) sharded across MPI ranks
 * (core/dist.h): every rank computes the shards it owns with its own copy of
 * the model and data, checkpoints them, and receives every record in user
 * order (MPI_Allgatherv), so the code after each phase, sums and decisions
 * included, runs identically on every rank and equals one process's.
 *
 *   lrgd_dist_map dm;
 *   lrgd_dist_map_init(&dm, "optimize", config_hash, ckpt_dir, 0);
 *   opts.map = &dm.map;
 *   lrgd_optimize(...);            -- collective: every rank calls it
 *
 * A phase's checkpoint folder is CKPT_DIR/CMD-PHASE-HASH, HASH covering
 * config_hash (the data, model and options: the caller's), the phase's own
 * hash (the optimizer's state as the phase starts), the item count and the
 * record size: a re-run of the same command resumes every finished shard of
 * every phase, with any number of ranks. */
#ifndef LRGD_DIST_MAP_H
#define LRGD_DIST_MAP_H

#include "core/dist.h"
#include "lrgd/effect.h"

typedef struct lrgd_dist_map {
    lrgd_user_map map;    /* give &dm.map to the library */
    const char *cmd;      /* job names: CMD-PHASE */
    const char *ckpt_dir; /* NULL: no checkpoints */
    uint64_t config_hash; /* what every phase depends on (data, model, options) */
    int64_t shard_size;   /* items per shard; 0: lrgd_shards_default_size(n, 1) per phase */
    /* totals over the phases run so far (this rank / every rank) */
    int phases;
    int64_t records;              /* items of every phase */
    int64_t computed, resumed;    /* shards of this rank */
    int64_t total_computed, total_resumed;
    double seconds;               /* wall time inside the phases on this rank */
    /* two figures of the caller's, gathered per rank by lrgd_dist_map_finish
     * and written as seconds under these names (NULL: not written), e.g.
     * the CPU seconds of a stage */
    const char *extra_name[2];
    double extra[2];
    /* after lrgd_dist_map_finish: per rank r, rank_stats[r * LRGD_RANK_STATS + k] */
    int64_t *rank_stats;
} lrgd_dist_map;

/* Per-rank figures collected by lrgd_dist_map_finish, in this order: payload
 * bytes sent and received (lrgd_dist_traffic), CPU microseconds (user + sys,
 * the whole process so far), microseconds inside the phases, shards
 * computed, shards resumed, then the caller's two extra figures (in
 * microseconds). */
enum { LRGD_RANK_STATS = 8 };

void lrgd_dist_map_init(lrgd_dist_map *m, const char *cmd, uint64_t config_hash, const char *ckpt_dir,
                        int64_t shard_size);

/* Collective: every rank's figures to every rank (m->rank_stats). */
lrgd_status lrgd_dist_map_finish(lrgd_dist_map *m);
/* The "distributed" object of a command's JSON (rank 0, after finish):
 * ranks, shard size, phases, shards computed / resumed, and per rank the
 * bytes, CPU and phase seconds. extra_key/extra_val: one more integer (or NULL). */
void lrgd_dist_map_json(lrgd_json *j, const lrgd_dist_map *m, const char *extra_key, long long extra_val);
void lrgd_dist_map_free(lrgd_dist_map *m);

/* Hash of a dataset's interactions (user offsets and items) into h. */
uint64_t lrgd_hash_dataset(uint64_t h, const lrgd_dataset *ds);
/* Hash of the demonstrations a selection holds for the listed users (their
 * items and source users, in order) into h: a selection scorer's identity. */
uint64_t lrgd_hash_selection(uint64_t h, const lrgd_selection *s, const int32_t *users, int n);

#endif
