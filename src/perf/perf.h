/* Measurement code shared by `lrgd bench` and the bench/bench_* programs:
 * forward-pass throughput, the machine's reference rates (OpenBLAS sgemm on
 * a model's own GEMM shapes, memory-copy bandwidth), FLOP and byte counts,
 * training-step throughput, and peak RSS. Internal to lrgd (not installed).
 *
 * Threads: every function runs at the current lrgd_set_threads count. */
#ifndef LRGD_PERF_H
#define LRGD_PERF_H

#include "core/core.h"
#include "lrgd/model.h"
#include "lrgd/train.h"

/* ---- forward pass ------------------------------------------------------------
 *
 * pp: one lrgd_eval of pp tokens (n_batch pp) into an empty cache, logits of
 * the last token only. tg: tg lrgd_eval calls of one token each, with
 * logits, from an empty cache. One warm-up eval of 8 tokens first (pages in
 * the weights, starts the thread pools), then up to reps timed runs of each;
 * budget_s > 0 stops repeating a measurement once its runs have taken that
 * long (at least one run; a slow path then costs one run, not reps).
 * pp and tg must fit the model's context (pp, tg <= seq_len). */
typedef struct lrgd_perf_fwd {
    int pp, tg;
    int pp_reps, tg_reps;        /* timed runs made */
    double pp_mean_s, pp_best_s; /* seconds for the pp tokens */
    double tg_mean_s, tg_best_s; /* seconds for the tg tokens */
    double pp_cpu_s, tg_cpu_s;   /* CPU seconds of the process in its least CPU-hungry run: on a
                                    loaded machine, tokens per CPU second at 1 thread are close
                                    to what an idle machine shows */
} lrgd_perf_fwd;
lrgd_status lrgd_perf_forward(const lrgd_model *m, int pp, int tg, int reps, double budget_s, lrgd_perf_fwd *out);

/* Parameters counted as llama.cpp counts them (embedding, layers, final
 * norm, untied output). */
long long lrgd_perf_params(const lrgd_config *c);
/* FLOPs of one pp pass of n tokens from an empty cache with the logits of the
 * last token: the layer GEMMs (2 per weight per token), causal attention
 * (q.k and p.v over the n(n+1)/2 visible pairs per head) and the output row. */
double lrgd_perf_pp_flops(const lrgd_config *c, int n);
/* FLOPs of the layer GEMMs alone for n tokens (what an sgemm can be set against). */
double lrgd_perf_layer_gemm_flops(const lrgd_config *c, int n);
/* Bytes a decoding step reads, averaged over tg steps from an empty cache:
 * every layer weight and the output matrix in their stored types, one
 * embedding row, the norms, and the KV cache (float32) up to the mean
 * position. */
double lrgd_perf_tg_bytes(const lrgd_model *m, int tg);

/* ---- reference rates ------------------------------------------------------------ */

/* GFLOP/s of float32 GEMMs two ways, best of reps: OpenBLAS with its own
 * threads (cblas_sgemm, openblas_set_num_threads to the current count; lrgd's
 * arrangement restored afterwards), and lrgd_sgemm (single-threaded OpenBLAS
 * calls split over the OpenMP threads, what lrgd's forward pass runs). */
typedef struct lrgd_perf_gemm_rate {
    double openblas, lrgd, best;
} lrgd_perf_gemm_rate;
/* One layer's GEMMs of config c for n tokens (y = x W^T for the wq, wk, wv,
 * wo, w1, w3, w2 shapes). */
lrgd_status lrgd_perf_sgemm_layer(const lrgd_config *c, int n, int reps, lrgd_perf_gemm_rate *out);
/* Memory-copy bandwidth, STREAM "copy" convention (bytes read + bytes
 * written per second), over two buffers of `bytes` each, split over the
 * OpenMP threads, best of reps. */
lrgd_status lrgd_perf_memcpy(size_t bytes, int reps, double *bytes_per_s);

/* CPU seconds of the whole process (CLOCK_PROCESS_CPUTIME_ID). */
double lrgd_perf_cpu_now(void);

/* ---- memory -------------------------------------------------------------------- */

/* Start a section: resets the peak resident set size (VmHWM) by writing 5
 * to /proc/self/clear_refs where the kernel allows it. Returns 1 when reset,
 * 0 when only the process-lifetime peak (getrusage ru_maxrss) is available. */
int lrgd_perf_rss_reset(void);
/* Peak RSS in KiB since the last successful reset (VmHWM), else the process
 * peak (ru_maxrss). */
long long lrgd_perf_rss_peak_kb(void);
/* How the peak was measured, for reports. */
const char *lrgd_perf_rss_method(int reset_works);

/* ---- training steps ---------------------------------------------------------------
 *
 * The first training episodes of a split (the trainer's own sampler at epoch
 * 0), a fresh embedded model with the trainer's configuration for opts, and
 * timed full optimizer steps (forward, backward, AdamW) and forward-only
 * passes over them, with FLOPs counted from the shapes (GEMMs, attention,
 * the item softmax) and OpenBLAS sgemm on the step's own shapes next to them:
 * OpenBLAS with its own threads and split as the trainer does (one
 * single-threaded sgemm per OpenMP thread). */
/* Seconds of the fastest of reps runs of C = op(A) op(B) (row-major, as
 * lrgd_sgemm) by OpenBLAS with its own threads (the current count). */
double lrgd_perf_openblas_time(int ta, int tb, int M, int N, int K, const float *A, const float *B, float *C, int reps);
typedef struct lrgd_perf_train lrgd_perf_train;

enum { LRGD_PERF_TRAIN_SHAPES = 5 };
typedef struct lrgd_perf_shape {
    const char *name;
    int ta, tb, M, N, K;
} lrgd_perf_shape;

typedef struct lrgd_perf_train_run {
    int threads, steps;
    double step_s, fwd_s;                  /* mean seconds per step / forward pass */
    double tokens_per_step, targets_per_step;
    double flops_step, flops_fwd;          /* mean per step */
    /* GFLOP/s: OpenBLAS with its own threads, and split over OpenMP as the trainer does (tm_gemm) */
    double sgemm_blas[LRGD_PERF_TRAIN_SHAPES], sgemm_split[LRGD_PERF_TRAIN_SHAPES];
    double sampled_step_s;                 /* the same steps with the sampled softmax (0: not measured) */
} lrgd_perf_train_run;

/* opts: the trainer's options (dim, n_layers, demos, batch, ... as
 * lrgd_train_opts_init sets them); the split's episodes must fill a batch. */
lrgd_status lrgd_perf_train_new(const lrgd_split *sp, const lrgd_train_opts *opts, lrgd_perf_train **out);
void lrgd_perf_train_free(lrgd_perf_train *b);
const lrgd_perf_shape *lrgd_perf_train_shapes(const lrgd_perf_train *b); /* [LRGD_PERF_TRAIN_SHAPES] */
int lrgd_perf_train_n_items(const lrgd_perf_train *b);
/* steps timed steps after two warm-up steps, at the current thread count;
 * sampled > 0 also times the same steps with that many sampled negatives. */
lrgd_status lrgd_perf_train_measure(lrgd_perf_train *b, int steps, int sampled, lrgd_perf_train_run *out);

/* ---- Effect_D against a shared pool (perf_effect.c) ----------------------------
 *
 * U users of the leave-one-out split (a seeded sample, each probed once at
 * its validation target with its history as the query) against one shared
 * pool of D demonstrations (the validation-step demonstrations of D other
 * sampled users, encoded once): the U x D Effect_D matrix by one
 * lrgd_effect_score_matrix call, the same pairs by lrgd_effect_score (one
 * call per user over the pool), and the ground-truth forward pass of
 * [T | d | Q] for the first min(U, 8) users x min(D, 25) demonstrations; CPU
 * seconds of the process at the current thread count (1 for the figures of
 * record), best of reps. The model must be a recommendation model trained on
 * sp's dataset. */
typedef struct lrgd_perf_effect_matrix {
    int users, pool, pairs, truth_pairs, reps;
    double tokens_per_demo;     /* mean tokens of a pool demonstration */
    double us_matrix_per_pair;  /* lrgd_effect_score_matrix, whole call (packing included) / (U x D) */
    double us_score_per_pair;   /* lrgd_effect_score per user over the pool / (U x D) */
    double us_truth_per_pair;   /* one forward pass, T's cache reused */
    double max_rel_diff;        /* max |matrix - per-user| / max(1e-3, |per-user|) over the pairs */
} lrgd_perf_effect_matrix;
lrgd_status lrgd_perf_effect_matrix_run(const lrgd_model *m, const lrgd_split *sp, int users, int pool, int reps,
                                        uint64_t seed, lrgd_perf_effect_matrix *out);

#endif
