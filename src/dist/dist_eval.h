/* lrgd_evaluate across MPI ranks (core/dist.h): the users are sharded, every
 * rank ranks its shards with its own copy of the scorer, and the per-user
 * results come back as the lrgd_eval_result one process would produce,
 * identical field by field (users, targets, ranks, n_ranked; seconds is the
 * wall time of the sharded phase). For commands that evaluate many scorers
 * (lrgd experiment): replace lrgd_evaluate by lrgd_evaluate_dist and keep the
 * rest of the code path. */
#ifndef LRGD_DIST_EVAL_H
#define LRGD_DIST_EVAL_H

#include "core/dist.h"
#include "lrgd/eval.h"

typedef struct lrgd_dist_eval {
    const char *name;     /* job name: progress, messages, checkpoint folder NAME-HASH */
    const char *ckpt_dir; /* NULL: no checkpoints */
    uint64_t config_hash; /* the scorer's identity: method, model bytes, its options. The
                             dataset, the step, the users and the evaluator options are
                             added here; the ranks must agree on the total (checked) */
    int64_t shard_size;   /* users per shard, a multiple of the effective batch
                             (min(opts->batch, sc->max_batch)); 0: lrgd_shards_default_size */
    int to_all;           /* 1: every rank gets the result (the caller's code path can stay the
                             same on every rank); 0: rank 0 only, *out = NULL elsewhere */
} lrgd_dist_eval;

/* Collective: every rank calls it with the same arguments (its own scorer).
 * With one process and no checkpoints it is lrgd_evaluate plus a copy.
 * stats may be NULL. On failure call lrgd_dist_fail: other ranks may wait. */
lrgd_status lrgd_evaluate_dist(const lrgd_split *sp, int step, const lrgd_scorer *sc, const lrgd_eval_opts *opts,
                               const lrgd_dist_eval *d, lrgd_eval_result **out, lrgd_shard_stats *stats);

#endif
