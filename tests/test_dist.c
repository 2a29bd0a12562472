/* The scale-out layer (core/dist.h): shard arithmetic, FNV-1a against its
 * published vectors, sharded jobs with checkpoints (resume, corrupted and
 * foreign checkpoints recomputed, the failure hook), and, when started by
 * mpirun (tests/cli_mpi.sh runs it with 3 ranks), the gather in position
 * order, ownership, reductions and the agreement check across ranks. */
#include "core/dist.h"
#include "test.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct rec {
    int64_t pos;
    int32_t rank;  /* who computed it */
    int32_t value; /* a function of pos only */
} rec;

static int32_t value_of(int64_t pos) { return (int32_t)(((uint64_t)pos * 2654435761u + 7) & 0x7fffffff); }

typedef struct job_ctx {
    int calls;          /* run() calls on this rank */
    int64_t fail_begin; /* run() fails for the shard starting here (-1: never) */
} job_ctx;

static lrgd_status run_fn(void *vctx, int64_t begin, int64_t end, void *out)
{
    job_ctx *c = vctx;
    c->calls++;
    if (begin == c->fail_begin) return lrgd_fail(LRGD_E_NUMERIC, "planted failure at %lld", (long long)begin);
    rec *r = out;
    for (int64_t p = begin; p < end; p++) {
        r[p - begin].pos = p;
        r[p - begin].rank = lrgd_dist_rank();
        r[p - begin].value = value_of(p);
    }
    return LRGD_OK;
}

static void test_hash(void)
{
    /* FNV-1a 64 test vectors (Fowler/Noll/Vo reference values). */
    CHECK(lrgd_hash64(LRGD_HASH_INIT, "", 0) == 0xcbf29ce484222325ull);
    CHECK(lrgd_hash64(LRGD_HASH_INIT, "a", 1) == 0xaf63dc4c8601ec8cull);
    CHECK(lrgd_hash64(LRGD_HASH_INIT, "foobar", 6) == 0x85944171f73967e8ull);
    /* Continuing a hash equals hashing the concatenation. */
    CHECK(lrgd_hash64(lrgd_hash64(LRGD_HASH_INIT, "foo", 3), "bar", 3) == 0x85944171f73967e8ull);
}

static void test_shard_math(void)
{
    lrgd_shards s;
    CHECK(lrgd_shards_init(&s, -1, 4) == LRGD_E_INVALID);
    CHECK(lrgd_shards_init(&s, 10, 0) == LRGD_E_INVALID);
    const int64_t ns[] = {0, 1, 7, 64, 65, 1000, 22363};
    const int64_t sizes[] = {1, 3, 64, 384, 100000};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof sizes / sizeof sizes[0]; b++) {
            CHECK_OK(lrgd_shards_init(&s, ns[a], sizes[b]));
            CHECK(s.rank == lrgd_dist_rank() && s.size == lrgd_dist_size());
            /* Shards tile [0, n) in order, none empty, all full but the last. */
            int64_t next = 0, total = 0;
            for (int64_t k = 0; k < s.n_shards; k++) {
                int64_t lo, hi;
                lrgd_shards_range(&s, k, &lo, &hi);
                CHECK_MSG(lo == next && hi > lo && (hi - lo == sizes[b] || k == s.n_shards - 1),
                          "n %lld size %lld shard %lld: [%lld, %lld)", (long long)ns[a], (long long)sizes[b],
                          (long long)k, (long long)lo, (long long)hi);
                CHECK(lrgd_shards_owner(&s, k) == (int)(k % s.size));
                next = hi;
            }
            CHECK(next == ns[a]);
            for (int r = 0; r < s.size; r++) total += lrgd_shards_count(&s, r);
            CHECK(total == ns[a]);
        }
    /* Default size: a multiple of the alignment, about n/64, never 0, and a
     * function of n and the alignment only. */
    CHECK(lrgd_shards_default_size(0, 64) == 64);
    CHECK(lrgd_shards_default_size(22363, 64) == 384); /* ceil(22363/64) = 350 -> 384 */
    CHECK(lrgd_shards_default_size(100, 1) == 2);
    CHECK(lrgd_shards_default_size(100, 0) == 2);
    for (int64_t n = 1; n < 5000; n += 37) {
        int64_t d = lrgd_shards_default_size(n, 48);
        CHECK(d % 48 == 0 && d >= 48 && d - 48 < (n + 63) / 64 && d >= (n + 63) / 64);
    }
}

/* A folder every rank sees: rank 0 makes it and broadcasts its name. */
static void shared_tmpdir(char *dir, size_t n)
{
    memset(dir, 0, n);
    if (lrgd_dist_rank() == 0) {
        snprintf(dir, n, "/tmp/lrgd_test_dist.XXXXXX");
        if (!mkdtemp(dir)) dir[0] = 0;
    }
    CHECK_OK(lrgd_dist_bcast(dir, n, 0));
    CHECK(dir[0] != 0);
}

static int count_files(const char *dir, const char *prefix)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls '%s' 2>/dev/null | grep -c '^%s'", dir, prefix);
    FILE *p = popen(cmd, "r");
    int c = -1;
    if (p) {
        if (fscanf(p, "%d", &c) != 1) c = -1;
        pclose(p);
    }
    return c;
}

/* The records in position order, each by its shard's owner; on rank 0 (on
 * every rank when everyone). */
static void check_on(const rec *all, int64_t n, const lrgd_shards *s, int everyone)
{
    int bad = 0;
    for (int64_t p = 0; p < n && (everyone || lrgd_dist_rank() == 0); p++)
        if (all[p].pos != p || all[p].value != value_of(p) ||
            all[p].rank != lrgd_shards_owner(s, p / s->shard_size))
            bad++;
    CHECK_MSG(bad == 0, "%d of %lld gathered records out of place or computed by the wrong rank", bad, (long long)n);
}
static void check_all(const rec *all, int64_t n, const lrgd_shards *s) { check_on(all, n, s, 0); }

static void setup_job(lrgd_shard_job *job, job_ctx *c, int64_t n, int64_t shard, const char *dir, uint64_t hash)
{
    memset(job, 0, sizeof *job);
    memset(c, 0, sizeof *c);
    c->fail_begin = -1;
    job->name = "test";
    job->config_hash = hash;
    job->config_text = "test job\n";
    job->ckpt_dir = dir;
    job->rec_size = sizeof(rec);
    job->run = run_fn;
    job->ctx = c;
    CHECK_OK(lrgd_shards_init(&job->shards, n, shard));
}

static void test_jobs(void)
{
    char dir[256];
    shared_tmpdir(dir, sizeof dir);
    int rank = lrgd_dist_rank(), size = lrgd_dist_size();
    const int64_t n = 1003, shard = 50; /* 21 shards, the last holds 3 */
    rec *all = calloc((size_t)n, sizeof *all);
    lrgd_shard_job job;
    job_ctx c;
    lrgd_shard_stats ss;

    /* No checkpoints: every shard computed once, by its owner. */
    setup_job(&job, &c, n, shard, NULL, 1);
    CHECK_OK(lrgd_shards_run(&job, all, &ss));
    CHECK(c.calls == (21 - rank + size - 1) / size);
    CHECK(ss.computed == c.calls && ss.resumed == 0);
    CHECK(ss.total_computed == 21 && ss.total_resumed == 0);
    check_all(all, n, &job.shards);

    /* to_all: every rank receives every record. */
    setup_job(&job, &c, n, shard, NULL, 1);
    job.to_all = 1;
    memset(all, 0, (size_t)n * sizeof *all);
    CHECK_OK(lrgd_shards_run(&job, all, &ss));
    check_on(all, n, &job.shards, 1);
    CHECK(lrgd_shards_run(&job, NULL, &ss) == LRGD_E_INVALID);

    /* An empty job gathers nothing. */
    setup_job(&job, &c, 0, shard, NULL, 1);
    CHECK_OK(lrgd_shards_run(&job, NULL, &ss));
    CHECK(c.calls == 0 && ss.total_computed == 0);

    /* Checkpoints: the first run writes 21 shard files, the second computes
     * nothing and gathers the same records. */
    setup_job(&job, &c, n, shard, dir, 0xfeedull);
    memset(all, 0, (size_t)n * sizeof *all);
    CHECK_OK(lrgd_shards_run(&job, all, &ss));
    CHECK(ss.total_computed == 21 && ss.total_resumed == 0);
    check_all(all, n, &job.shards);
    char path[512], file[600];
    lrgd_shards_ckpt_path(&job, path, sizeof path);
    CHECK(strstr(path, "/test-000000000000feed") != NULL);
    CHECK_OK(lrgd_dist_barrier());
    CHECK(count_files(path, "shard-") == 21);
    CHECK(count_files(path, "config.txt") == 1);
    CHECK(count_files(path, ".*tmp") == 0);
    /* Rank 0 rewrites config.txt (via a temp file) in the next run: let every
     * rank finish listing the folder first. */
    CHECK_OK(lrgd_dist_barrier());

    setup_job(&job, &c, n, shard, dir, 0xfeedull);
    memset(all, 0, (size_t)n * sizeof *all);
    CHECK_OK(lrgd_shards_run(&job, all, &ss));
    CHECK(c.calls == 0 && ss.computed == 0);
    CHECK(ss.total_computed == 0 && ss.total_resumed == 21);
    check_all(all, n, &job.shards);

    /* A flipped payload byte (checksum), a truncated file and another shard's
     * file in its place are each noticed and recomputed; the others are not. */
    CHECK_OK(lrgd_dist_barrier());
    if (rank == 0) {
        snprintf(file, sizeof file, "%s/shard-000003.bin", path);
        FILE *f = fopen(file, "r+b");
        CHECK(f != NULL);
        if (f) {
            fseek(f, 64 + 17, SEEK_SET);
            int ch = fgetc(f);
            fseek(f, 64 + 17, SEEK_SET);
            fputc(ch ^ 0x40, f);
            fclose(f);
        }
        snprintf(file, sizeof file, "%s/shard-000007.bin", path);
        CHECK(truncate(file, 64 + 100) == 0);
        char cmd[1400];
        snprintf(cmd, sizeof cmd, "cp '%s/shard-000001.bin' '%s/shard-000011.bin'", path, path);
        CHECK(system(cmd) == 0);
    }
    CHECK_OK(lrgd_dist_barrier());
    setup_job(&job, &c, n, shard, dir, 0xfeedull);
    memset(all, 0, (size_t)n * sizeof *all);
    CHECK_OK(lrgd_shards_run(&job, all, &ss));
    CHECK(ss.total_computed == 3 && ss.total_resumed == 18);
    check_all(all, n, &job.shards);

    /* Another configuration hash is another folder: nothing resumed. */
    setup_job(&job, &c, n, shard, dir, 0xbeefull);
    CHECK_OK(lrgd_shards_run(&job, all, &ss));
    CHECK(ss.total_computed == 21 && ss.total_resumed == 0);
    /* The same hash with another shard size: the headers do not match. */
    setup_job(&job, &c, n, 64, dir, 0xfeedull);
    memset(all, 0, (size_t)n * sizeof *all);
    CHECK_OK(lrgd_shards_run(&job, all, &ss));
    CHECK(ss.total_resumed == 0);
    check_all(all, n, &job.shards);

    if (size == 1) {
        /* A failing shard stops the job with the shard named; shards done
         * before it stay checkpointed and resume. */
        char dir2[300];
        snprintf(dir2, sizeof dir2, "%s/fail", dir);
        setup_job(&job, &c, n, shard, dir2, 0x77ull);
        c.fail_begin = 5 * shard;
        CHECK(lrgd_shards_run(&job, all, &ss) == LRGD_E_NUMERIC);
        CHECK(strstr(lrgd_last_error(), "shard 5 (users 250..299)") != NULL);
        CHECK(strstr(lrgd_last_error(), "planted failure at 250") != NULL);
        CHECK(c.calls == 6);
        setup_job(&job, &c, n, shard, dir2, 0x77ull);
        CHECK_OK(lrgd_shards_run(&job, all, &ss));
        CHECK(ss.total_resumed == 5 && ss.total_computed == 16 && c.calls == 16);
        check_all(all, n, &job.shards);

        /* The failure hook: rank 0 fails after 4 computed shards; a re-run
         * computes only the rest. */
        snprintf(dir2, sizeof dir2, "%s/hook", dir);
        setenv("LRGD_FAIL_RANK", "0", 1);
        setenv("LRGD_FAIL_AFTER", "4", 1);
        setup_job(&job, &c, n, shard, dir2, 0x78ull);
        CHECK(lrgd_shards_run(&job, all, &ss) == LRGD_E_RUNTIME);
        CHECK(strstr(lrgd_last_error(), "injected failure after 4 computed shards") != NULL);
        CHECK(c.calls == 4);
        setenv("LRGD_FAIL_RANK", "1", 1); /* another rank: no effect here */
        setup_job(&job, &c, n, shard, dir2, 0x78ull);
        CHECK_OK(lrgd_shards_run(&job, all, &ss));
        CHECK(ss.total_resumed == 4 && ss.total_computed == 17);
        check_all(all, n, &job.shards);
        setenv("LRGD_FAIL_RANK", "x", 1);
        CHECK(lrgd_shards_run(&job, all, &ss) == LRGD_E_INVALID);
        CHECK(strstr(lrgd_last_error(), "LRGD_FAIL_RANK") != NULL);
        setenv("LRGD_FAIL_RANK", "0", 1);
        setenv("LRGD_FAIL_MODE", "explode", 1);
        CHECK(lrgd_shards_run(&job, all, &ss) == LRGD_E_INVALID);
        unsetenv("LRGD_FAIL_RANK");
        unsetenv("LRGD_FAIL_AFTER");
        unsetenv("LRGD_FAIL_MODE");

        /* A checkpoint folder that cannot be made. */
        snprintf(file, sizeof file, "%s/plainfile", dir);
        CHECK_OK(lrgd_write_file_atomic(file, "x", 1));
        setup_job(&job, &c, n, shard, file, 1);
        CHECK(lrgd_shards_run(&job, all, &ss) == LRGD_E_WRITE);
        CHECK(strstr(lrgd_last_error(), "not a folder") != NULL);
    }

    CHECK_OK(lrgd_dist_barrier());
    if (rank == 0) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CHECK(system(cmd) == 0);
    }
    free(all);
}

static void test_collectives(void)
{
    int rank = lrgd_dist_rank(), size = lrgd_dist_size();
    int64_t v[2] = {rank + 1, 10};
    CHECK_OK(lrgd_dist_sum_i64(v, 2));
    CHECK(v[0] == (int64_t)size * (size + 1) / 2 && v[1] == 10 * (int64_t)size);
    double m[2] = {rank, -rank};
    CHECK_OK(lrgd_dist_max_f64(m, 2));
    CHECK(m[0] == size - 1 && m[1] == 0);
    char cfg[16];
    snprintf(cfg, sizeof cfg, "rank%d", rank);
    CHECK_OK(lrgd_dist_bcast(cfg, sizeof cfg, 0));
    CHECK(strcmp(cfg, "rank0") == 0);
    CHECK(lrgd_dist_bcast(cfg, sizeof cfg, size) == LRGD_E_INVALID);
    CHECK_OK(lrgd_dist_agree_u64(12345, "a constant"));
    lrgd_status st = lrgd_dist_agree_u64((uint64_t)rank, "the rank");
    CHECK(rank == 0 ? st == LRGD_OK : st == LRGD_E_INVALID);
    if (rank) CHECK(strstr(lrgd_last_error(), "the rank differs from rank 0's") != NULL);
}

int main(int argc, char **argv)
{
    if (lrgd_dist_init(&argc, &argv) != LRGD_OK) {
        fprintf(stderr, "test_dist: %s\n", lrgd_last_error());
        return 1;
    }
    lrgd_set_quiet(1);
    if (lrgd_dist_size() > 1) printf("test_dist: rank %d of %d\n", lrgd_dist_rank(), lrgd_dist_size());
    test_hash();
    test_shard_math();
    test_collectives();
    test_jobs();
    char name[64];
    snprintf(name, sizeof name, "test_dist (rank %d of %d)", lrgd_dist_rank(), lrgd_dist_size());
    int rc = t_finish(name);
    lrgd_dist_finalize();
    return rc;
}
