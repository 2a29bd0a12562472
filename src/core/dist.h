/* Scale-out over MPI: one process group, users sharded across ranks, per-user
 * results gathered to rank 0, per-shard checkpoints.
 *
 * The default build has no MPI: every process is rank 0 of 1, collectives
 * are local copies, and the same code path runs. Built with -DLRGD_MPI=ON,
 * MPI is started only when a launcher (mpirun, srun) started the process;
 * run by hand, an MPI build behaves exactly like the default build.
 *
 * The model: every rank loads the dataset and mmaps the model itself (no
 * broadcast of big data), fits whatever the command fits, and computes the
 * shards it owns. Results are fixed-size per-user records; rank 0 gathers
 * them in user order and computes every statistic from per-user values
 * exactly as a single process does, then writes the outputs. Other ranks
 * write nothing but their checkpoints. Randomness is keyed by user
 * (lrgd_rng_seed(seed, user)), so which rank computes a user changes nothing.
 *
 * Shards are fixed by (n, shard_size) and never by the number of ranks:
 * shard s covers positions [s*shard_size, min(n, (s+1)*shard_size)) and rank
 * s % size computes it. A checkpoint is a shard's records, so a re-run with
 * any number of ranks resumes from whatever shards are on disk.
 *
 * Failure: a rank that fails prints "lrgd CMD: rank R: MESSAGE" and calls
 * MPI_Abort, which stops every rank (lrgd_dist_fail). MPI calls come from the
 * main thread only (MPI_THREAD_FUNNELED); OpenMP runs inside each rank.
 *
 * Test hook (any build): LRGD_FAIL_RANK=R makes rank R fail after it has
 * computed and checkpointed LRGD_FAIL_AFTER shards (default 1);
 * LRGD_FAIL_MODE=error (default: the normal error path, message + abort) or
 * kill (SIGKILL, as a crashed process); LRGD_FAIL_JOB=TEXT limits it to the
 * jobs whose name contains TEXT (e.g. one phase of lrgd optimize). */
#ifndef LRGD_DIST_H
#define LRGD_DIST_H

#include "core/core.h"

/* ---- the process group ------------------------------------------------------ */

/* Start MPI if built with it and started by a launcher; otherwise size 1.
 * Call once, first thing in main. */
lrgd_status lrgd_dist_init(int *argc, char ***argv);
/* MPI_Finalize if MPI was started. Every rank must call it on a normal exit. */
void lrgd_dist_finalize(void);
int lrgd_dist_rank(void);
int lrgd_dist_size(void);
/* 1 if this binary was built with MPI (-DLRGD_MPI=ON). */
int lrgd_dist_built_with_mpi(void);
/* 1 if MPI was started (size may still be 1: mpirun -np 1). */
int lrgd_dist_active(void);

/* Report st for command cmd and return its exit code (2 bad input, 1
 * runtime), like cli_fail. With MPI active it prints "lrgd CMD: rank R:
 * MESSAGE" and stops the whole job with MPI_Abort(exit code): use it for any
 * failure after a rank may have entered a collective. */
int lrgd_dist_fail(const char *cmd, lrgd_status st);

/* ---- collectives (every rank must call them, in the same order) ------------- */

/* Every rank waits for the others. Waiting ranks sleep (MPI_Ibarrier polled
 * with short sleeps) instead of spinning as MPI's blocking calls do, so a
 * rank that finished early leaves its core to the ones still computing (the
 * gather and lrgd_dist_bcast wait this way first, too). */
lrgd_status lrgd_dist_barrier(void);
/* Broadcast bytes from root (small configs). */
lrgd_status lrgd_dist_bcast(void *buf, size_t bytes, int root);
/* Element-wise sum / max over ranks, result on every rank. */
lrgd_status lrgd_dist_sum_i64(int64_t *v, int n);
lrgd_status lrgd_dist_max_f64(double *v, int n);
/* Check that every rank computed the same value (a config hash: the same
 * data, model and options everywhere). LRGD_E_INVALID naming what on a rank
 * that disagrees with rank 0 (fail it with lrgd_dist_fail). */
lrgd_status lrgd_dist_agree_u64(uint64_t v, const char *what);

/* Payload bytes this rank has sent to / received from other ranks in
 * collectives so far (gathers of records, broadcasts): the communication
 * volume a run reports. Barriers and the few-byte reductions are not counted. */
void lrgd_dist_traffic(int64_t *sent, int64_t *received);

/* ---- hashing ----------------------------------------------------------------- */

/* 64-bit FNV-1a over bytes, continuing from h (start with LRGD_HASH_INIT). */
#define LRGD_HASH_INIT 0xcbf29ce484222325ull
uint64_t lrgd_hash64(uint64_t h, const void *data, size_t n);
/* The same over a whole file (mmapped). */
lrgd_status lrgd_hash_file(uint64_t *h, const char *path);

/* ---- shards -------------------------------------------------------------------- */

typedef struct lrgd_shards {
    int64_t n;          /* positions 0..n-1 (users in a fixed order) */
    int64_t shard_size; /* positions per shard; the last may be shorter */
    int64_t n_shards;
    int rank, size;     /* shard s is computed by rank s % size */
} lrgd_shards;

/* A default shard size for n positions: about n/64, rounded up to a
 * multiple of align (a scorer's batch, so that batches hold the same users
 * as in one process), at least align. Depends only on n and align. */
int64_t lrgd_shards_default_size(int64_t n, int64_t align);
/* Partition n >= 0 positions for this process group; shard_size >= 1. */
lrgd_status lrgd_shards_init(lrgd_shards *s, int64_t n, int64_t shard_size);
int lrgd_shards_owner(const lrgd_shards *s, int64_t shard);
void lrgd_shards_range(const lrgd_shards *s, int64_t shard, int64_t *begin, int64_t *end);
/* Positions computed by rank r. */
int64_t lrgd_shards_count(const lrgd_shards *s, int r);

/* A sharded job: run(ctx, begin, end, rec) fills the records of positions
 * [begin, end), rec_size bytes each (fixed-size, no pointers). It is called
 * with progress output turned off (the job reports progress over positions
 * on rank 0) and may fail; a failure stops the job on this rank (the caller
 * then calls lrgd_dist_fail). */
typedef struct lrgd_shard_job {
    const char *name;        /* command name: messages, checkpoint folder prefix */
    uint64_t config_hash;    /* everything the records depend on */
    const char *config_text; /* optional: written as config.txt next to the checkpoints */
    const char *ckpt_dir;    /* NULL: no checkpoints */
    lrgd_shards shards;
    size_t rec_size;
    lrgd_status (*run)(void *ctx, int64_t begin, int64_t end, void *rec);
    void *ctx;
    int to_all;              /* 1: every rank receives every record (MPI_Allgatherv), e.g. for a
                                decision all ranks must take alike from per-user values */
} lrgd_shard_job;

typedef struct lrgd_shard_stats {
    int64_t computed, resumed;             /* shards of this rank */
    int64_t total_computed, total_resumed; /* over all ranks (every rank) */
    double seconds;                        /* wall time of lrgd_shards_run on this rank */
    char ckpt_path[1024];                  /* the checkpoint folder ("" if none) */
} lrgd_shard_stats;

/* Compute (or load from checkpoints) every shard this rank owns, then gather
 * every record to rank 0 (every rank with to_all) in position order: all
 * must hold n * rec_size bytes there (it may be NULL elsewhere). Checkpoints: CKPT_DIR/NAME-HASH/
 * shard-S.bin, written atomically right after the shard is computed; a valid
 * one (same hash, shard, range and record size, checksum intact) is loaded
 * instead of computing; an invalid one is reported and recomputed.
 * Collective; on failure the caller must call lrgd_dist_fail (other ranks
 * may be waiting in the gather). */
lrgd_status lrgd_shards_run(const lrgd_shard_job *job, void *all, lrgd_shard_stats *stats);

/* The checkpoint folder of a job (CKPT_DIR/NAME-HASH). */
void lrgd_shards_ckpt_path(const lrgd_shard_job *job, char *buf, size_t n);

#endif
