/* The process group, collectives, shards and checkpoints (see dist.h). */
#include "core/dist.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef LRGD_WITH_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_active = 0;
static int64_t g_sent = 0, g_received = 0;

void lrgd_dist_traffic(int64_t *sent, int64_t *received)
{
    if (sent) *sent = g_sent;
    if (received) *received = g_received;
}

int lrgd_dist_rank(void) { return g_rank; }
int lrgd_dist_size(void) { return g_size; }
int lrgd_dist_active(void) { return g_active; }

int lrgd_dist_built_with_mpi(void)
{
#ifdef LRGD_WITH_MPI
    return 1;
#else
    return 0;
#endif
}

#ifdef LRGD_WITH_MPI
/* Started by a launcher? Open MPI, MPICH/Hydra and Slurm (PMI, PMIx) each
 * leave their mark; LRGD_MPI_INIT=1 forces MPI_Init (singleton). */
static int launched(void)
{
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    const char *f = getenv("LRGD_MPI_INIT");
    return f && strcmp(f, "1") == 0;
}

static lrgd_status mpi_check(int rc, const char *what)
{
    if (rc == MPI_SUCCESS) return LRGD_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    return lrgd_fail(LRGD_E_RUNTIME, "%s failed: %s", what, msg);
}
#endif

lrgd_status lrgd_dist_init(int *argc, char ***argv)
{
#ifdef LRGD_WITH_MPI
    if (g_active || !launched()) return LRGD_OK;
    int provided = 0;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return lrgd_fail(LRGD_E_RUNTIME, "MPI_Init_thread failed (error %d)", rc);
    g_active = 1;
    /* Errors come back as codes so they can be reported with the rank. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (provided < MPI_THREAD_FUNNELED)
        return lrgd_fail(LRGD_E_RUNTIME, "MPI provides thread level %d, lrgd needs MPI_THREAD_FUNNELED", provided);
#else
    (void)argc;
    (void)argv;
#endif
    return LRGD_OK;
}

void lrgd_dist_finalize(void)
{
#ifdef LRGD_WITH_MPI
    if (g_active) MPI_Finalize();
#endif
    g_active = 0;
    g_rank = 0;
    g_size = 1;
}

int lrgd_dist_fail(const char *cmd, lrgd_status st)
{
    int code = lrgd_exit_code(st);
    if (code == 0) code = 1;
    if (g_size > 1) {
        fprintf(stderr, "lrgd %s: rank %d: %s\n", cmd, g_rank, lrgd_last_error());
        fflush(stderr);
        fflush(stdout);
#ifdef LRGD_WITH_MPI
        MPI_Abort(MPI_COMM_WORLD, code);
#endif
        _exit(code); /* MPI_Abort does not return; this is for the impossible case */
    }
    fprintf(stderr, "lrgd %s: %s\n", cmd, lrgd_last_error());
    return code;
}

/* ---- collectives -------------------------------------------------------------- */

lrgd_status lrgd_dist_barrier(void)
{
#ifdef LRGD_WITH_MPI
    if (g_size > 1) {
        /* MPI_Barrier spins: on a machine with fewer free cores than ranks the
         * spinner takes the core of the rank it waits for. Poll with sleeps
         * that grow from 50 us to 2 ms (a late rank is noticed within 2 ms). */
        MPI_Request req;
        LRGD_TRY(mpi_check(MPI_Ibarrier(MPI_COMM_WORLD, &req), "MPI_Ibarrier"));
        long ns = 50000;
        for (;;) {
            int done = 0;
            LRGD_TRY(mpi_check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test"));
            if (done) break;
            struct timespec ts = {0, ns};
            nanosleep(&ts, NULL);
            if (ns < 2000000) ns *= 2;
        }
    }
#endif
    return LRGD_OK;
}

lrgd_status lrgd_dist_bcast(void *buf, size_t bytes, int root)
{
    if (root < 0 || root >= g_size) return lrgd_fail(LRGD_E_INVALID, "bcast: root %d outside [0, %d)", root, g_size);
#ifdef LRGD_WITH_MPI
    if (g_size > 1) {
        if (bytes > (size_t)INT_MAX) return lrgd_fail(LRGD_E_INVALID, "bcast: %zu bytes is too many", bytes);
        LRGD_TRY(lrgd_dist_barrier()); /* wait asleep for the root */
        LRGD_TRY(mpi_check(MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast"));
        if (g_rank == root) g_sent += (int64_t)bytes;
        else g_received += (int64_t)bytes;
        return LRGD_OK;
    }
#else
    (void)buf;
    (void)bytes;
#endif
    return LRGD_OK;
}

lrgd_status lrgd_dist_sum_i64(int64_t *v, int n)
{
#ifdef LRGD_WITH_MPI
    if (g_size > 1 && n > 0)
        return mpi_check(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
#else
    (void)v;
    (void)n;
#endif
    return LRGD_OK;
}

lrgd_status lrgd_dist_max_f64(double *v, int n)
{
#ifdef LRGD_WITH_MPI
    if (g_size > 1 && n > 0)
        return mpi_check(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
#else
    (void)v;
    (void)n;
#endif
    return LRGD_OK;
}

lrgd_status lrgd_dist_agree_u64(uint64_t v, const char *what)
{
    uint64_t root = v;
    LRGD_TRY(lrgd_dist_bcast(&root, sizeof root, 0));
    if (root != v)
        return lrgd_fail(LRGD_E_INVALID,
                         "%s differs from rank 0's (%016llx here, %016llx on rank 0): the ranks read different "
                         "data, model files or options",
                         what, (unsigned long long)v, (unsigned long long)root);
    return LRGD_OK;
}

/* ---- hashing ------------------------------------------------------------------ */

uint64_t lrgd_hash64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

lrgd_status lrgd_hash_file(uint64_t *h, const char *path)
{
    lrgd_mapped m;
    LRGD_TRY(lrgd_map_file(path, &m));
    uint64_t size = m.size;
    *h = lrgd_hash64(*h, &size, sizeof size);
    *h = lrgd_hash64(*h, m.data, m.size);
    lrgd_unmap_file(&m);
    return LRGD_OK;
}

/* ---- shards ---------------------------------------------------------------------- */

int64_t lrgd_shards_default_size(int64_t n, int64_t align)
{
    if (align < 1) align = 1;
    int64_t target = n > 0 ? (n + 63) / 64 : 1;
    int64_t s = (target + align - 1) / align * align;
    return s < align ? align : s;
}

lrgd_status lrgd_shards_init(lrgd_shards *s, int64_t n, int64_t shard_size)
{
    memset(s, 0, sizeof *s);
    if (n < 0 || shard_size < 1)
        return lrgd_fail(LRGD_E_INVALID, "shards: %lld positions in shards of %lld (expected >= 0 and >= 1)",
                         (long long)n, (long long)shard_size);
    s->n = n;
    s->shard_size = shard_size;
    s->n_shards = n / shard_size + (n % shard_size != 0);
    s->rank = g_rank;
    s->size = g_size;
    return LRGD_OK;
}

int lrgd_shards_owner(const lrgd_shards *s, int64_t shard) { return (int)(shard % s->size); }

void lrgd_shards_range(const lrgd_shards *s, int64_t shard, int64_t *begin, int64_t *end)
{
    int64_t b = shard * s->shard_size, e = b + s->shard_size;
    *begin = b < s->n ? b : s->n;
    *end = e < s->n ? e : s->n;
}

int64_t lrgd_shards_count(const lrgd_shards *s, int r)
{
    int64_t c = 0, b, e;
    for (int64_t k = r; k < s->n_shards; k += s->size) {
        lrgd_shards_range(s, k, &b, &e);
        c += e - b;
    }
    return c;
}

/* ---- checkpoints --------------------------------------------------------------------
 *
 * shard-S.bin: a 64-byte header of eight 64-bit fields, then the records:
 *   magic "LRGDSHD1", (0x01020304 << 32 | version 1) as a byte-order check,
 *   config hash, shard, begin, end, record size, FNV-1a of the records. */

#define CKPT_MAGIC "LRGDSHD1"
#define CKPT_BOM ((0x01020304ull << 32) | 1u)
enum { CKPT_HEADER = 64 };

void lrgd_shards_ckpt_path(const lrgd_shard_job *job, char *buf, size_t n)
{
    if (!job->ckpt_dir) { if (n) buf[0] = 0; return; }
    snprintf(buf, n, "%s/%s-%016llx", job->ckpt_dir, job->name, (unsigned long long)job->config_hash);
}

/* mkdir -p: ranks on several machines may race to create it. */
static lrgd_status make_dir(const char *path)
{
    char buf[1024];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return lrgd_fail(LRGD_E_INVALID, "checkpoint folder name '%s': empty or too long", path);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return lrgd_fail(LRGD_E_WRITE, "checkpoint folder %s: %s", buf, strerror(errno));
            *p = '/';
        }
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return LRGD_OK;
        return lrgd_fail(LRGD_E_WRITE, "checkpoint folder %s: exists and is not a folder", path);
    }
    return lrgd_fail(LRGD_E_WRITE, "checkpoint folder %s: %s", path, strerror(errno));
}

static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static lrgd_status ckpt_write(const char *file, const lrgd_shard_job *job, int64_t shard, int64_t b, int64_t e,
                              const void *rec)
{
    size_t bytes = (size_t)(e - b) * job->rec_size;
    unsigned char h[CKPT_HEADER];
    memcpy(h, CKPT_MAGIC, 8);
    put_u64(h + 8, CKPT_BOM);
    put_u64(h + 16, job->config_hash);
    put_u64(h + 24, (uint64_t)shard);
    put_u64(h + 32, (uint64_t)b);
    put_u64(h + 40, (uint64_t)e);
    put_u64(h + 48, job->rec_size);
    put_u64(h + 56, lrgd_hash64(LRGD_HASH_INIT, rec, bytes));
    lrgd_afile af;
    LRGD_TRY(lrgd_afile_open(&af, file));
    if (fwrite(h, 1, sizeof h, af.f) != sizeof h || (bytes && fwrite(rec, 1, bytes, af.f) != bytes)) {
        lrgd_afile_abort(&af);
        return lrgd_fail(LRGD_E_WRITE, "%s: write failed", file);
    }
    return lrgd_afile_commit(&af);
}

/* 1: loaded into rec; 0: no file; -1: a file that is not this shard's
 * checkpoint (why in lrgd_last_error). */
static int ckpt_read(const char *file, const lrgd_shard_job *job, int64_t shard, int64_t b, int64_t e, void *rec)
{
    if (access(file, F_OK) != 0) return 0;
    char *buf = NULL;
    size_t size = 0;
    if (lrgd_read_file(file, &buf, &size) != LRGD_OK) return -1;
    const unsigned char *h = (const unsigned char *)buf;
    size_t bytes = (size_t)(e - b) * job->rec_size;
    int ok = -1;
    if (size < CKPT_HEADER || memcmp(h, CKPT_MAGIC, 8) != 0)
        lrgd_fail(LRGD_E_FORMAT, "not a shard checkpoint (bad magic or shorter than its header)");
    else if (get_u64(h + 8) != CKPT_BOM)
        lrgd_fail(LRGD_E_FORMAT, "written by another byte order or version");
    else if (get_u64(h + 16) != job->config_hash || get_u64(h + 24) != (uint64_t)shard ||
             get_u64(h + 32) != (uint64_t)b || get_u64(h + 40) != (uint64_t)e || get_u64(h + 48) != job->rec_size)
        lrgd_fail(LRGD_E_FORMAT, "header is for another job or shard");
    else if (size != CKPT_HEADER + bytes)
        lrgd_fail(LRGD_E_FORMAT, "%zu bytes, expected %zu", size, (size_t)CKPT_HEADER + bytes);
    else if (lrgd_hash64(LRGD_HASH_INIT, h + CKPT_HEADER, bytes) != get_u64(h + 56))
        lrgd_fail(LRGD_E_FORMAT, "checksum mismatch");
    else {
        memcpy(rec, h + CKPT_HEADER, bytes);
        ok = 1;
    }
    lrgd_free(buf);
    return ok;
}

/* LRGD_FAIL_RANK / _AFTER / _MODE (see dist.h). */
typedef struct fail_plan {
    int rank, after, kill;
    const char *job; /* LRGD_FAIL_JOB: only in jobs whose name contains it (NULL: any) */
} fail_plan;

static lrgd_status read_fail_plan(fail_plan *f)
{
    f->rank = -1;
    f->after = 1;
    f->kill = 0;
    const char *r = getenv("LRGD_FAIL_RANK"), *a = getenv("LRGD_FAIL_AFTER"), *m = getenv("LRGD_FAIL_MODE");
    f->job = getenv("LRGD_FAIL_JOB");
    if (f->job && !*f->job) f->job = NULL;
    char *end;
    if (r && *r) {
        long v = strtol(r, &end, 10);
        if (*end || v < 0) return lrgd_fail(LRGD_E_INVALID, "LRGD_FAIL_RANK: expected a rank >= 0, got '%s'", r);
        f->rank = (int)v;
    }
    if (a && *a) {
        long v = strtol(a, &end, 10);
        if (*end || v < 0 || v > INT_MAX)
            return lrgd_fail(LRGD_E_INVALID, "LRGD_FAIL_AFTER: expected a count >= 0, got '%s'", a);
        f->after = (int)v;
    }
    if (m && *m) {
        if (!strcmp(m, "kill")) f->kill = 1;
        else if (strcmp(m, "error") != 0)
            return lrgd_fail(LRGD_E_INVALID, "LRGD_FAIL_MODE: expected error or kill, got '%s'", m);
    }
    return LRGD_OK;
}

static lrgd_status injected(const fail_plan *f, const char *name, int64_t computed)
{
    if (f->rank != g_rank || computed != f->after || (f->job && !strstr(name, f->job))) return LRGD_OK;
    if (f->kill) {
        fprintf(stderr, "lrgd %s: rank %d: LRGD_FAIL_MODE=kill after %lld computed shards: SIGKILL\n", name, g_rank,
                (long long)computed);
        fflush(stderr);
        raise(SIGKILL);
    }
    return lrgd_fail(LRGD_E_RUNTIME, "injected failure after %lld computed shards (LRGD_FAIL_RANK=%d)",
                     (long long)computed, f->rank);
}

/* Gather each rank's records (its shards in order) into all on rank 0 (on
 * every rank with to_all), in position order. */
static lrgd_status gather(const lrgd_shard_job *job, const void *local, int64_t local_n, void *all)
{
    const lrgd_shards *s = &job->shards;
    if (s->size == 1) {
        if (local_n) memcpy(all, local, (size_t)local_n * job->rec_size);
        return LRGD_OK;
    }
#ifdef LRGD_WITH_MPI
    if (s->n > INT_MAX) return lrgd_fail(LRGD_E_INVALID, "%s: %lld records are more than one gather takes", job->name, (long long)s->n);
    if (job->rec_size > (size_t)INT_MAX) return lrgd_fail(LRGD_E_INVALID, "%s: record of %zu bytes", job->name, job->rec_size);
    MPI_Datatype rec;
    LRGD_TRY(mpi_check(MPI_Type_contiguous((int)job->rec_size, MPI_BYTE, &rec), "MPI_Type_contiguous"));
    lrgd_status st = mpi_check(MPI_Type_commit(&rec), "MPI_Type_commit");
    int *counts = NULL, *displs = NULL;
    unsigned char *tmp = NULL;
    int receives = g_rank == 0 || job->to_all;
    if (st == LRGD_OK && receives) {
        counts = malloc((size_t)g_size * sizeof *counts);
        displs = malloc((size_t)g_size * sizeof *displs);
        tmp = malloc((size_t)s->n * job->rec_size + 1);
        if (!counts || !displs || !tmp) st = lrgd_fail(LRGD_E_NOMEM, "%s: out of memory gathering", job->name);
        int64_t off = 0;
        for (int r = 0; st == LRGD_OK && r < g_size; r++) {
            counts[r] = (int)lrgd_shards_count(s, r);
            displs[r] = (int)off;
            off += counts[r];
        }
    }
    /* A receiver cannot skip the collective on a local failure: it aborts
     * instead (the caller's lrgd_dist_fail), which also stops the others. */
    if (st == LRGD_OK) st = lrgd_dist_barrier(); /* wait asleep for the slowest rank */
    if (st == LRGD_OK && job->to_all)
        st = mpi_check(MPI_Allgatherv(local, (int)local_n, rec, tmp, counts, displs, rec, MPI_COMM_WORLD),
                       "MPI_Allgatherv");
    else if (st == LRGD_OK)
        st = mpi_check(MPI_Gatherv(local, (int)local_n, rec, tmp, counts, displs, rec, 0, MPI_COMM_WORLD),
                       "MPI_Gatherv");
    if (st == LRGD_OK) {
        if (job->to_all || g_rank != 0) g_sent += local_n * (int64_t)job->rec_size;
        if (receives) g_received += (s->n - local_n) * (int64_t)job->rec_size;
    }
    if (st == LRGD_OK && receives) {
        /* Rank-major (each rank's shards in order) to position order. */
        for (int r = 0; r < g_size; r++) {
            const unsigned char *src = tmp + (size_t)displs[r] * job->rec_size;
            for (int64_t k = r; k < s->n_shards; k += g_size) {
                int64_t b, e;
                lrgd_shards_range(s, k, &b, &e);
                size_t bytes = (size_t)(e - b) * job->rec_size;
                memcpy((unsigned char *)all + (size_t)b * job->rec_size, src, bytes);
                src += bytes;
            }
        }
    }
    MPI_Type_free(&rec);
    free(counts);
    free(displs);
    free(tmp);
    return st;
#else
    (void)local;
    (void)all;
    return lrgd_fail(LRGD_E_RUNTIME, "%s: %d ranks without MPI", job->name, s->size);
#endif
}

lrgd_status lrgd_shards_run(const lrgd_shard_job *job, void *all, lrgd_shard_stats *stats)
{
    memset(stats, 0, sizeof *stats);
    const lrgd_shards *s = &job->shards;
    if (s->rank != g_rank || s->size != g_size)
        return lrgd_fail(LRGD_E_INVALID, "%s: shards were set up for rank %d of %d, this is rank %d of %d", job->name,
                         s->rank, s->size, g_rank, g_size);
    if (job->rec_size == 0 || !job->run) return lrgd_fail(LRGD_E_INVALID, "%s: job without records or run()", job->name);
    if ((g_rank == 0 || job->to_all) && s->n > 0 && !all)
        return lrgd_fail(LRGD_E_INVALID, "%s: rank %d needs the output array", job->name, g_rank);
    double t0 = lrgd_now();
    fail_plan fp;
    LRGD_TRY(read_fail_plan(&fp));

    char dir[1024] = "", file[1100];
    if (job->ckpt_dir) {
        lrgd_shards_ckpt_path(job, dir, sizeof dir);
        if (strlen(dir) + 32 >= sizeof dir) return lrgd_fail(LRGD_E_INVALID, "checkpoint folder name too long: %s", dir);
        LRGD_TRY(make_dir(job->ckpt_dir));
        LRGD_TRY(make_dir(dir));
        if (g_rank == 0 && job->config_text) {
            snprintf(file, sizeof file, "%s/config.txt", dir);
            LRGD_TRY(lrgd_write_file_atomic(file, job->config_text, strlen(job->config_text)));
        }
        snprintf(stats->ckpt_path, sizeof stats->ckpt_path, "%s", dir);
    }

    int64_t local_n = lrgd_shards_count(s, g_rank);
    size_t local_bytes;
    if (!lrgd_mul_ok((size_t)local_n, job->rec_size, &local_bytes))
        return lrgd_fail(LRGD_E_NOMEM, "%s: %lld records of %zu bytes", job->name, (long long)local_n, job->rec_size);
    unsigned char *local = malloc(local_bytes + 1);
    if (!local) return lrgd_fail(LRGD_E_NOMEM, "%s: out of memory (%zu bytes of records)", job->name, local_bytes);

    lrgd_status st = LRGD_OK;
    if (fp.after == 0) st = injected(&fp, job->name, 0);
    int quiet = lrgd_is_quiet();
    lrgd_progress prog;
    if (g_rank != 0) lrgd_set_quiet(1);
    lrgd_progress_begin(&prog, job->name, "users", (double)local_n);
    lrgd_set_quiet(quiet);
    int64_t off = 0;
    for (int64_t k = g_rank; k < s->n_shards && st == LRGD_OK; k += g_size) {
        int64_t b, e;
        lrgd_shards_range(s, k, &b, &e);
        unsigned char *rec = local + (size_t)off * job->rec_size;
        off += e - b;
        if (dir[0]) {
            snprintf(file, sizeof file, "%s/shard-%06lld.bin", dir, (long long)k);
            int got = ckpt_read(file, job, k, b, e, rec);
            if (got == 1) {
                stats->resumed++;
                lrgd_progress_update(&prog, (double)off, NULL);
                continue;
            }
            if (got < 0)
                fprintf(stderr, "lrgd %s: rank %d: checkpoint %s: %s; computing the shard again\n", job->name, g_rank,
                        file, lrgd_last_error());
        }
        lrgd_set_quiet(1);
        st = job->run(job->ctx, b, e, rec);
        lrgd_set_quiet(quiet);
        if (st != LRGD_OK) {
            lrgd_fail_wrap(st, "shard %lld (users %lld..%lld)", (long long)k, (long long)b, (long long)e - 1);
            break;
        }
        if (dir[0]) st = ckpt_write(file, job, k, b, e, rec);
        if (st != LRGD_OK) break;
        stats->computed++;
        st = injected(&fp, job->name, stats->computed);
        lrgd_progress_update(&prog, (double)off, NULL);
    }
    if (st == LRGD_OK) {
        lrgd_progress_end(&prog, (double)local_n, NULL);
        st = gather(job, local, local_n, all);
    }
    free(local);
    if (st != LRGD_OK) return st;
    int64_t tot[2] = {stats->computed, stats->resumed};
    LRGD_TRY(lrgd_dist_sum_i64(tot, 2));
    stats->total_computed = tot[0];
    stats->total_resumed = tot[1];
    stats->seconds = lrgd_now() - t0;
    return LRGD_OK;
}
