/* Internal core: errors, memory, checked arithmetic, RNG, files, JSON,
 * progress, GEMM. Shared by every module; not part of the public API. */
#ifndef LRGD_CORE_H
#define LRGD_CORE_H

#include "lrgd/lrgd.h"

#include <stdbool.h>
#include <stdio.h>

/* ---- errors -------------------------------------------------------------- */

/* Record a message for lrgd_last_error() and return s. printf-style. */
lrgd_status lrgd_fail(lrgd_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with "prefix: " (context as an error travels up). */
lrgd_status lrgd_fail_wrap(lrgd_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lrgd_clear_error(void);

#define LRGD_TRY(expr) do { lrgd_status st_ = (expr); if (st_ != LRGD_OK) return st_; } while (0)

/* ---- memory --------------------------------------------------------------- */

#define LRGD_ALIGN 64
/* 64-byte aligned, zeroed; NULL on overflow or exhaustion. Free with lrgd_free. */
void *lrgd_alloc(size_t bytes);
/* n elements of size sz, overflow-checked. */
void *lrgd_alloc_n(size_t n, size_t sz);
void lrgd_free(void *p);
/* The same, recording the call site: a block the memory limit refuses leaves
 * "memory limit ... exceeded at FILE:LINE" for the next lrgd_fail(LRGD_E_NOMEM). */
void *lrgd_alloc_at(size_t bytes, const char *file, int line);
void *lrgd_alloc_n_at(size_t n, size_t sz, const char *file, int line);
#define lrgd_alloc(bytes) lrgd_alloc_at((bytes), __FILE__, __LINE__)
#define lrgd_alloc_n(n, sz) lrgd_alloc_n_at((n), (sz), __FILE__, __LINE__)

/* Process-wide memory limit (--max-memory): lrgd_alloc blocks of 4 KiB and
 * more and file mappings count against it; 0 = no limit. */
void lrgd_mem_set_limit(size_t bytes);
size_t lrgd_mem_limit(void);
size_t lrgd_mem_in_use(void); /* counted bytes now */
size_t lrgd_mem_peak(void);   /* and at most so far */
/* Count bytes not from lrgd_alloc (a file mapping) against the limit:
 * LRGD_E_INVALID naming what and the limit if they do not fit. */
lrgd_status lrgd_mem_reserve(size_t bytes, const char *what);
void lrgd_mem_release(size_t bytes);
/* The refusal message of the last refused lrgd_alloc on this thread, once (NULL: none). */
const char *lrgd_mem_take_note(void);
/* "1.50 GiB" */
void lrgd_mem_format(double bytes, char *buf, size_t n);

/* An up-front estimate: named parts; checked against the limit before the
 * work allocates anything, so that asking for too much fails at once. */
#define LRGD_MEM_PLAN_MAX 12
typedef struct lrgd_mem_plan {
    int n;
    const char *what[LRGD_MEM_PLAN_MAX]; /* static strings */
    double bytes[LRGD_MEM_PLAN_MAX];
} lrgd_mem_plan;
void lrgd_mem_plan_add(lrgd_mem_plan *p, const char *what, double bytes);
double lrgd_mem_plan_total(const lrgd_mem_plan *p);
/* LRGD_E_INVALID "TASK needs an estimated X (parts) ... over the memory limit
 * of L" when the bytes in use plus the plan exceed the limit. */
lrgd_status lrgd_mem_plan_check(const lrgd_mem_plan *p, const char *task);
/* Test hook: 0 skips plan checks, so that the allocator's limit is what trips. */
void lrgd_mem_set_plan_checks(int on);

/* Bump allocator for per-call scratch: one block, 64-byte aligned pieces. */
typedef struct lrgd_arena {
    unsigned char *base;
    size_t cap, used;
} lrgd_arena;
lrgd_status lrgd_arena_init(lrgd_arena *a, size_t cap);
void *lrgd_arena_alloc(lrgd_arena *a, size_t bytes); /* NULL if it does not fit */
float *lrgd_arena_f32(lrgd_arena *a, size_t n);
void lrgd_arena_reset(lrgd_arena *a);
void lrgd_arena_free(lrgd_arena *a);

/* Overflow-checked size arithmetic: return false on overflow. */
static inline bool lrgd_mul_ok(size_t a, size_t b, size_t *r) { return !__builtin_mul_overflow(a, b, r); }
static inline bool lrgd_add_ok(size_t a, size_t b, size_t *r) { return !__builtin_add_overflow(a, b, r); }

/* ---- random numbers: splitmix64-seeded xoshiro256** ----------------------- */

typedef struct lrgd_rng { uint64_t s[4]; } lrgd_rng;
/* Streams are independent for different (seed, stream): key randomness by
 * user, never by thread or rank. */
void lrgd_rng_seed(lrgd_rng *r, uint64_t seed, uint64_t stream);
uint64_t lrgd_rng_u64(lrgd_rng *r);
uint32_t lrgd_rng_below(lrgd_rng *r, uint32_t n); /* uniform in [0, n), unbiased */
double lrgd_rng_uniform(lrgd_rng *r);            /* [0, 1) */
double lrgd_rng_normal(lrgd_rng *r);             /* N(0, 1) */
/* Partial Fisher-Yates: a[0..k) become a uniform sample without replacement
 * of a[0..n), in draw order (a[k..n) keeps the rest); 0 <= k <= n. */
void lrgd_rng_draw_i32(lrgd_rng *r, int32_t *a, int n, int k);

/* ---- time ----------------------------------------------------------------- */
double lrgd_now(void); /* monotonic seconds */

/* ---- files ---------------------------------------------------------------- */

/* Read-only mapping of a whole file. */
typedef struct lrgd_mapped {
    const unsigned char *data;
    size_t size;
    int mapped; /* 1: munmap on close; 0: heap copy (empty files) */
} lrgd_mapped;
lrgd_status lrgd_map_file(const char *path, lrgd_mapped *m);
void lrgd_unmap_file(lrgd_mapped *m);

/* Read a whole file into a NUL-terminated heap buffer (lrgd_free it). */
lrgd_status lrgd_read_file(const char *path, char **out, size_t *size);

/* Atomic output: write to "PATH.tmp.PID", fsync, rename over PATH on commit.
 * Abort (or a crash) leaves PATH untouched. */
typedef struct lrgd_afile {
    FILE *f;
    char *path, *tmp;
} lrgd_afile;
lrgd_status lrgd_afile_open(lrgd_afile *af, const char *path);
lrgd_status lrgd_afile_commit(lrgd_afile *af);
void lrgd_afile_abort(lrgd_afile *af);
/* Write a whole buffer atomically. */
lrgd_status lrgd_write_file_atomic(const char *path, const void *data, size_t size);

/* ---- JSON writer ----------------------------------------------------------- */

/* Streaming writer that tracks nesting and commas. Numbers that are not
 * finite are written as null (JSON has no NaN). */
typedef struct lrgd_json {
    FILE *f;
    int depth;
    int first[64];
    int after_key;
    int pretty;
} lrgd_json;
void lrgd_json_init(lrgd_json *j, FILE *f, int pretty);
void lrgd_json_obj_begin(lrgd_json *j);
void lrgd_json_obj_end(lrgd_json *j);
void lrgd_json_arr_begin(lrgd_json *j);
void lrgd_json_arr_end(lrgd_json *j);
void lrgd_json_key(lrgd_json *j, const char *k);
void lrgd_json_str(lrgd_json *j, const char *s);
void lrgd_json_num(lrgd_json *j, double v);
void lrgd_json_int(lrgd_json *j, long long v);
void lrgd_json_bool(lrgd_json *j, int v);
void lrgd_json_null(lrgd_json *j);
/* key + value shorthands */
void lrgd_json_kstr(lrgd_json *j, const char *k, const char *s);
void lrgd_json_knum(lrgd_json *j, const char *k, double v);
void lrgd_json_kint(lrgd_json *j, const char *k, long long v);

/* ---- progress -------------------------------------------------------------- */

/* One self-overwriting line with rate and ETA when stderr is a terminal;
 * a plain line every `every_s` seconds otherwise; nothing when quiet. */
typedef struct lrgd_progress {
    const char *label;
    const char *unit;
    double total;
    double t0, t_last;
    double every_s;
    int tty, quiet, drawn;
} lrgd_progress;
void lrgd_progress_begin(lrgd_progress *p, const char *label, const char *unit, double total);
void lrgd_progress_update(lrgd_progress *p, double done, const char *extra);
void lrgd_progress_end(lrgd_progress *p, double done, const char *extra);
/* Global switch for --quiet. */
void lrgd_set_quiet(int quiet);
int lrgd_is_quiet(void);

/* ---- dense linear algebra ------------------------------------------------- */

/* lrgd_dtype (F32, F16, Q8_0, numbered as GGML numbers them) is public: lrgd/lrgd.h. */

#define LRGD_Q8_0_BLOCK 32
typedef struct { uint16_t d; int8_t qs[LRGD_Q8_0_BLOCK]; } lrgd_block_q8_0; /* d is fp16 */

float lrgd_fp16_to_fp32(uint16_t h);
uint16_t lrgd_fp32_to_fp16(float f); /* round to nearest even */
/* Size in bytes of n elements of type t (n must be a multiple of the block). */
size_t lrgd_dtype_row_bytes(lrgd_dtype t, size_t n);
const char *lrgd_dtype_name(lrgd_dtype t);
/* Dequantize n elements. */
void lrgd_dequantize(lrgd_dtype t, const void *src, float *dst, size_t n);
/* Quantize n floats (n % 32 == 0) to Q8_0 blocks. */
void lrgd_quantize_q8_0(const float *src, lrgd_block_q8_0 *dst, size_t n);

/* A weight matrix W [rows = out][cols = in], row-major, of any dtype. */
typedef struct lrgd_weight {
    lrgd_dtype type;
    const void *data;
    int rows, cols;
} lrgd_weight;

/* y[n][rows] = x[n][cols] * W^T (+ y if accumulate). */
void lrgd_matmul(float *y, const float *x, const lrgd_weight *w, int n, int accumulate);
/* Plain sgemm wrapper, row-major: C[m][n] = alpha * op(A) op(B) + beta * C. */
void lrgd_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* Restart this process once (execv of /proc/self/exe) with lrgd's OpenMP
 * waiting policy unless the caller chose a policy (threads.c says why);
 * returns when no restart is needed or the exec failed. For the main() of
 * the tool and of the benchmarks. */
void lrgd_wait_policy_exec(char **argv);

#endif
