/* lrgd bench: the benchmark suite of issue 7 in one run. Forward throughput
 * (pp/tg per model x dtype x threads) with the roofline set against OpenBLAS
 * sgemm and memory-copy bandwidth measured in the same run; evaluation
 * users/s; Effect_D pairs/s next to the ground-truth forward pass; training
 * tokens/s and GFLOP/s; peak RSS of each. Prints a table, writes JSON. The
 * measurements themselves live in src/perf (shared with bench/bench_*). */
#include "cli.h"
#include "commands.h"
#include "lrgd/effect.h"
#include "lrgd/eval.h"
#include "lrgd/gguf.h"
#include "lrgd/train.h"
#include "model/model_impl.h"
#include "perf/perf.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "bench"

const char help_bench[] =
    "usage: lrgd bench [options]\n"
    "\n"
    "Measure lrgd's speed on this machine in one run, print a table and\n"
    "(with --out / --json) write JSON. Sections (all by default; --only picks):\n"
    "  forward  prompt processing (one batch of --pp tokens, logits of the last)\n"
    "           and decoding (--tg single-token evals with logits) tokens/s for\n"
    "           each model (--model, --random) in each --dtypes at each thread\n"
    "           count; each model is written as a GGUF file per dtype and timed\n"
    "           from that file (the files a llama.cpp peer can run: --keep-models).\n"
    "           Roofline from the same run: achieved prompt GFLOP/s against\n"
    "           OpenBLAS sgemm on the model's own layer GEMMs, and decoding bytes/s\n"
    "           (weights + KV cache read per token) against memory-copy bandwidth\n"
    "  eval     users/s of full-ranking ICL evaluation with --k similar-user\n"
    "           demonstrations (lrgd eval's model method) on --users users\n"
    "  effect   Effect_D scoring (user, demonstration) pairs/s next to the\n"
    "           ground-truth forward passes' rate, and their ratio; then 256\n"
    "           users against one shared pool of 1000 demonstrations (1 thread,\n"
    "           CPU time): the matrix scorer, per-user scoring, the forward pass\n"
    "  train    training tokens/s and GFLOP/s of the embedded model (full\n"
    "           optimizer steps on the trainer's own episodes), against sgemm\n"
    "eval, effect and train need --data; eval and effect need a model trained\n"
    "on it (--eval-model, or the first --model whose items are --data's).\n"
    "Without --only, a section that lacks them is skipped and says why. Peak\n"
    "RSS is measured per row (VmHWM reset per row where the kernel allows).\n"
    "\n"
    "options:\n"
    "  --only LIST          sections to run: forward,eval,effect,train\n"
    "  --model FILE         a model for the forward section (llama2.c or GGUF;\n"
    "                       repeatable, at most 8)\n"
    "  --random SPEC        the built-in random model LxD: L layers, width D (a\n"
    "                       multiple of 32; heads of 64, SwiGLU width 8D/3 rounded\n"
    "                       up to 32, vocabulary 32000, context 1024); 'none':\n"
    "                       no random model (default 8x512)\n"
    "  --dtypes LIST        weight types: f32, f16, q8_0 (default f32,q8_0; q8_0\n"
    "                       writes rows not a multiple of 32 long as f16)\n"
    "  --threads-list LIST  thread counts, e.g. 1,2 (default 1,2)\n"
    "  --pp N               prompt tokens (default 512; capped at a model's context)\n"
    "  --tg N               decoded tokens (default 128; capped at the context)\n"
    "  --reps N             timed repetitions of pp and tg (default 3)\n"
    "  --budget S           fewer repetitions once a measurement's runs took S\n"
    "                       seconds (at least one; default 5; 0: always --reps)\n"
    "  --keep-models DIR    write the GGUF files into DIR and keep them (default:\n"
    "                       a temporary folder, removed at the end)\n"
    "  --data FILE          interactions (as lrgd eval) for eval, effect, train\n"
    "  --eval-model FILE    the model for eval and effect (trained on --data)\n"
    "  --users N            eval: users, a seeded sample (default 2048; 0: all)\n"
    "  --k N                eval: demonstrations per prompt (default 3)\n"
    "  --effect-users N     effect: users (default 20)\n"
    "  --pool N             effect: candidate demonstrations per user (default 50)\n"
    "  --train-steps N      train: timed optimizer steps (default 10)\n"
    "  --train-batch N      train: episodes per step (default 128)\n"
    "  --train-dim D        train: model width (default 64)\n"
    "  --train-layers L     train: layers (default 2)\n"
    "  --out FILE           results as JSON (written atomically)\n" CLI_COMMON_HELP
    "  (--threads N is the same as --threads-list N; with --json the table goes\n"
    "  to stderr)\n"
    "\n"
    "bench/run.sh runs this and llama.cpp on the same GGUF files and prints the\n"
    "lrgd/llama.cpp ratios (see bench/README.md).\n";

enum { SEC_FORWARD = 1, SEC_EVAL = 2, SEC_EFFECT = 4, SEC_TRAIN = 8, SEC_ALL = 15 };
static const char *const sec_names[] = {"forward", "eval", "effect", "train"};

enum { MAX_MODELS = 8, MAX_THREADS = 8, MAX_DTYPES = 3, MAX_ROWS = (MAX_MODELS + 1) * MAX_DTYPES * MAX_THREADS };

typedef struct fwd_row {
    char model[96];
    const char *dtype;
    char file[4096];
    char source[4096];
    lrgd_config cfg;
    long long params, file_bytes;
    int threads;
    lrgd_perf_fwd f;
    double pp_flops, tg_bytes, memcpy_bps;
    lrgd_perf_gemm_rate sgemm;
    long long rss_kb;
} fwd_row;

typedef struct eval_row {
    int threads, users;
    double seconds, ndcg10;
    long long rss_kb;
} eval_row;

typedef struct effect_row {
    int threads, users, pairs;
    double us_score, us_effect, us_truth, rho;
    long long rss_kb;
} effect_row;

typedef struct train_row {
    lrgd_perf_train_run r;
    long long rss_kb;
} train_row;

typedef struct bench {
    cli_common cc;
    unsigned sections, explicit_sections;
    const char *models[MAX_MODELS];
    int n_models;
    int rand_layers, rand_dim; /* 0: no random model */
    lrgd_dtype dtypes[MAX_DTYPES];
    int n_dtypes;
    int threads[MAX_THREADS];
    int n_threads;
    int pp, tg, reps;
    double budget;
    const char *keep_dir, *data, *eval_model, *out;
    int users, k, effect_users, pool, train_steps, train_batch, train_dim, train_layers;
    FILE *tab; /* the table: stdout, or stderr with --json */
    int rss_reset;
    double load0[3], load1[3];
    /* results */
    fwd_row *fwd;
    int n_fwd;
    double memcpy_bps[MAX_THREADS];
    const char *skip_eval, *skip_effect, *skip_train; /* reasons, NULL: ran */
    const char *eval_model_used;
    int split_users, eval_items;
    double eval_setup_s;
    eval_row ev[MAX_THREADS];
    int n_ev;
    effect_row ef[MAX_THREADS];
    int n_ef;
    lrgd_perf_effect_matrix efm; /* Effect_D of users against a shared pool (1 thread) */
    int have_efm;
    train_row tr[MAX_THREADS];
    int n_tr, train_items, train_hidden;
    lrgd_perf_shape train_shapes[LRGD_PERF_TRAIN_SHAPES];
} bench;

static const char *dtype_opt_name(lrgd_dtype t)
{
    return t == LRGD_F32 ? "f32" : t == LRGD_F16 ? "f16" : "q8_0";
}

/* "8x512" -> 8 layers, width 512. */
static int parse_random(const char *arg, int *L, int *D)
{
    if (!strcmp(arg, "none")) {
        *L = *D = 0;
        return 0;
    }
    char *end;
    errno = 0;
    long l = strtol(arg, &end, 10);
    if (end == arg || *end != 'x' || errno) return -1;
    const char *p = end + 1;
    long d = strtol(p, &end, 10);
    if (end == p || *end || errno || l < 1 || l > 64 || d < 32 || d > 8192 || d % 32) return -1;
    *L = (int)l;
    *D = (int)d;
    return 0;
}

static lrgd_config random_config(int L, int D)
{
    int heads = D % 64 == 0 ? D / 64 : D / 32;
    int hidden = ((8 * D + 2) / 3 + 31) / 32 * 32;
    lrgd_config c = {.dim = D, .hidden_dim = hidden, .n_layers = L, .n_heads = heads, .n_kv_heads = heads,
                     .head_dim = D / heads, .vocab_size = 32000, .seq_len = 1024, .norm_eps = 1e-5f,
                     .rope_base = 10000.0f, .rope_type = LRGD_ROPE_NORM, .attn = LRGD_ATTN_SOFTMAX, .tied = 0};
    return c;
}

static void base_name(const char *path, char *out, size_t cap)
{
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    snprintf(out, cap, "%s", s);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
    for (char *p = out; *p; p++)
        if (*p == ' ' || *p == '\'' || *p == '"' || *p == '\\') *p = '_';
}

/* The temporary folder holds only GGUF files this run wrote: empty it, remove it. */
static void remove_tmpdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char path[4400];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                unlink(path);
            }
        closedir(d);
    }
    rmdir(dir);
}

/* ---- forward ----------------------------------------------------------------- */

static void print_fwd_header(const bench *b)
{
    fprintf(b->tab,
            "\nforward: pp = one batch of up to %d tokens, tg = up to %d single-token decodes; tokens/s from the mean "
            "of up to %d runs (fewer past %g s)\n",
            b->pp, b->tg, b->reps, b->budget);
    fprintf(b->tab, "%-24s %-5s %3s %5s %10s %10s %8s %8s %7s %8s %8s %7s %8s\n", "model", "dtype", "thr", "pp",
            "pp tok/s", "tg tok/s", "pp GF/s", "sgemm", "pp/sg", "tg GB/s", "copy GB/s", "tg/cp", "RSS MiB");
    fflush(b->tab);
}

static void print_fwd_row(const bench *b, const fwd_row *r)
{
    double pps = r->f.pp / r->f.pp_mean_s, tgs = r->f.tg / r->f.tg_mean_s;
    double gf = r->pp_flops / r->f.pp_mean_s / 1e9, bw = r->tg_bytes * tgs;
    fprintf(b->tab, "%-24s %-5s %3d %5d %10.1f %10.1f %8.2f %8.2f %7.2f %8.2f %8.2f %7.2f %8.1f\n", r->model, r->dtype,
            r->threads, r->f.pp, pps, tgs, gf, r->sgemm.best, gf / r->sgemm.best, bw / 1e9, r->memcpy_bps / 1e9,
            bw / r->memcpy_bps, r->rss_kb / 1024.0);
    fflush(b->tab);
}

/* Write model m as GGUF in every dtype into dir, time each file at every thread count. */
static lrgd_status bench_model(bench *b, const lrgd_model *src, const char *name, const char *source, const char *dir)
{
    const lrgd_config *c = lrgd_model_config(src);
    int pp = b->pp < c->seq_len ? b->pp : c->seq_len, tg = b->tg < c->seq_len ? b->tg : c->seq_len;
    if (pp < b->pp || tg < b->tg)
        cli_note(CMD, b->cc.quiet, "%s: context %d: pp %d, tg %d tokens", name, c->seq_len, pp, tg);
    lrgd_perf_gemm_rate sgemm[MAX_THREADS] = {{0}};
    for (int d = 0; d < b->n_dtypes; d++) {
        fwd_row *r0 = &b->fwd[b->n_fwd];
        memset(r0, 0, sizeof *r0);
        snprintf(r0->model, sizeof r0->model, "%s", name);
        r0->dtype = dtype_opt_name(b->dtypes[d]);
        snprintf(r0->source, sizeof r0->source, "%s", source);
        int w = snprintf(r0->file, sizeof r0->file, "%s/%s-%s.gguf", dir, name, r0->dtype);
        if (w < 0 || (size_t)w >= sizeof r0->file) return lrgd_fail(LRGD_E_INVALID, "%s: path too long", dir);
        cli_note(CMD, b->cc.quiet, "writing %s", r0->file);
        LRGD_TRY(lrgd_model_save_gguf_ex(src, r0->file, b->dtypes[d], name, LRGD_SAVE_ROPE_NORM));
        lrgd_model *m = NULL;
        LRGD_TRY(lrgd_model_load(r0->file, &m));
        r0->cfg = *lrgd_model_config(m);
        r0->params = lrgd_perf_params(&r0->cfg);
        r0->file_bytes = (long long)m->file.size;
        r0->pp_flops = lrgd_perf_pp_flops(&r0->cfg, pp);
        r0->tg_bytes = lrgd_perf_tg_bytes(m, tg);
        lrgd_status st = LRGD_OK;
        for (int t = 0; t < b->n_threads && st == LRGD_OK; t++) {
            fwd_row *r = &b->fwd[b->n_fwd];
            if (t > 0) *r = *r0;
            r->threads = b->threads[t];
            if ((st = lrgd_set_threads(r->threads)) != LRGD_OK) break;
            cli_note(CMD, b->cc.quiet, "forward %s %s, %d thread(s)", name, r->dtype, r->threads);
            lrgd_perf_rss_reset();
            if ((st = lrgd_perf_forward(m, pp, tg, b->reps, b->budget, &r->f)) != LRGD_OK) break;
            r->rss_kb = lrgd_perf_rss_peak_kb();
            if (d == 0 && (st = lrgd_perf_sgemm_layer(&r->cfg, pp, b->reps, &sgemm[t])) != LRGD_OK) break;
            r->sgemm = sgemm[t];
            r->memcpy_bps = b->memcpy_bps[t];
            print_fwd_row(b, r);
            b->n_fwd++;
        }
        lrgd_model_free(m);
        if (!b->keep_dir) unlink(r0->file); /* a temporary file: free the disk now */
        if (st != LRGD_OK) return st;
    }
    return LRGD_OK;
}

static lrgd_status run_forward(bench *b, char *tmpdir)
{
    const char *dir = b->keep_dir;
    if (dir) {
        if (cli_out_dir(dir) != LRGD_OK) return lrgd_fail_wrap(LRGD_E_WRITE, "--keep-models");
    } else {
        const char *t = getenv("TMPDIR");
        snprintf(tmpdir, 4096, "%s/lrgd-bench-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(tmpdir)) return lrgd_fail(LRGD_E_WRITE, "cannot create a temporary folder %s", tmpdir);
        dir = tmpdir;
    }
    /* the machine's copy bandwidth at each thread count, once */
    for (int t = 0; t < b->n_threads; t++) {
        LRGD_TRY(lrgd_set_threads(b->threads[t]));
        LRGD_TRY(lrgd_perf_memcpy((size_t)128 << 20, 5, &b->memcpy_bps[t]));
        cli_note(CMD, b->cc.quiet, "memory copy, %d thread(s): %.2f GB/s (read + write)", b->threads[t], b->memcpy_bps[t] / 1e9);
    }
    print_fwd_header(b);
    for (int i = 0; i < b->n_models; i++) {
        lrgd_model *m = NULL;
        LRGD_TRY(lrgd_model_load(b->models[i], &m));
        char name[96];
        base_name(b->models[i], name, sizeof name);
        lrgd_status st = bench_model(b, m, name, b->models[i], dir);
        lrgd_model_free(m);
        if (st != LRGD_OK) return lrgd_fail_wrap(st, "%s", b->models[i]);
    }
    if (b->rand_layers) {
        lrgd_config c = random_config(b->rand_layers, b->rand_dim);
        char name[96], src[96];
        snprintf(name, sizeof name, "random-%dL-d%d", b->rand_layers, b->rand_dim);
        snprintf(src, sizeof src, "lrgd_model_new_random(seed 7)");
        lrgd_model *m = NULL;
        LRGD_TRY(lrgd_model_new_random(&c, 7, &m));
        lrgd_status st = bench_model(b, m, name, src, dir);
        lrgd_model_free(m);
        LRGD_TRY(st);
    }
    return LRGD_OK;
}

/* ---- eval, effect, train ---------------------------------------------------------- */

static lrgd_status run_eval(bench *b, const lrgd_split *sp)
{
    lrgd_model_scorer_opts mo;
    lrgd_model_scorer_opts_init(&mo);
    mo.k = b->k;
    mo.seed = b->cc.seed;
    int n_split = lrgd_split_n_users(sp);
    int n = b->users == 0 || b->users > n_split ? n_split : b->users;
    int32_t *users = malloc(sizeof *users * (size_t)(n ? n : 1));
    if (!users) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    lrgd_status st = lrgd_sample_users(sp, n, b->cc.seed, users);
    lrgd_scorer sc = {0};
    double t0 = lrgd_now();
    if (st == LRGD_OK) st = lrgd_scorer_model(sp, LRGD_STEP_TEST, b->eval_model_used, &mo, &sc);
    b->eval_setup_s = lrgd_now() - t0;
    b->split_users = n_split;
    fprintf(b->tab, "\neval: full ranking of %d items, k = %d similar-user demonstrations, %d of %d users (%s)\n",
            b->eval_items, b->k, n, n_split, b->eval_model_used);
    fprintf(b->tab, "%3s %8s %10s %10s %16s %8s %8s\n", "thr", "users", "seconds", "users/s", "all users est. s",
            "NDCG@10", "RSS MiB");
    for (int t = 0; t < b->n_threads && st == LRGD_OK; t++) {
        if ((st = lrgd_set_threads(b->threads[t])) != LRGD_OK) break;
        cli_note(CMD, b->cc.quiet, "eval, %d thread(s)", b->threads[t]);
        lrgd_eval_opts eo;
        lrgd_eval_opts_init(&eo);
        eo.seed = b->cc.seed;
        eo.users = users;
        eo.n_users = n;
        lrgd_eval_result *res = NULL;
        lrgd_perf_rss_reset();
        if ((st = lrgd_evaluate(sp, LRGD_STEP_TEST, &sc, &eo, &res)) != LRGD_OK) break;
        eval_row *r = &b->ev[b->n_ev++];
        r->rss_kb = lrgd_perf_rss_peak_kb();
        r->threads = b->threads[t];
        r->users = res->n;
        r->seconds = res->seconds;
        lrgd_interval iv;
        r->ndcg10 = lrgd_metric_summary(LRGD_NDCG10, res->ranks, res->n, &iv) == LRGD_OK ? iv.mean : -1;
        lrgd_eval_result_free(res);
        fprintf(b->tab, "%3d %8d %10.3f %10.1f %16.1f %8.4f %8.1f\n", r->threads, r->users, r->seconds,
                r->users / r->seconds, n_split * r->seconds / r->users, r->ndcg10, r->rss_kb / 1024.0);
        fflush(b->tab);
    }
    lrgd_scorer_release(&sc);
    free(users);
    return st;
}

static lrgd_status run_effect(bench *b, const lrgd_split *sp)
{
    lrgd_model *m = NULL;
    LRGD_TRY(lrgd_model_load(b->eval_model_used, &m));
    lrgd_validity_opts vo;
    lrgd_validity_opts_init(&vo);
    vo.n_users = b->effect_users < lrgd_split_n_users(sp) ? b->effect_users : lrgd_split_n_users(sp);
    vo.pool = b->pool;
    vo.truth = 1;
    vo.seed = b->cc.seed;
    fprintf(b->tab, "\neffect: Effect_D scoring vs ground-truth forward passes, %d users x up to %d demonstrations\n",
            vo.n_users, vo.pool);
    fprintf(b->tab, "%3s %7s %14s %14s %14s %9s %9s %7s %8s\n", "thr", "pairs", "score pairs/s", "+enc pairs/s",
            "truth pairs/s", "ratio", "ratio+enc", "rho", "RSS MiB");
    lrgd_status st = LRGD_OK;
    for (int t = 0; t < b->n_threads && st == LRGD_OK; t++) {
        if ((st = lrgd_set_threads(b->threads[t])) != LRGD_OK) break;
        cli_note(CMD, b->cc.quiet, "effect, %d thread(s)", b->threads[t]);
        lrgd_validity *V = NULL;
        lrgd_perf_rss_reset();
        if ((st = lrgd_effect_validity(m, sp, &vo, &V)) != LRGD_OK) break;
        effect_row *r = &b->ef[b->n_ef++];
        r->rss_kb = lrgd_perf_rss_peak_kb();
        r->threads = b->threads[t];
        r->users = V->n_users;
        r->pairs = V->n_pairs;
        r->us_score = V->us_score_per_pair;
        r->us_effect = V->us_effect_per_pair;
        r->us_truth = V->us_truth_per_pair;
        r->rho = V->rho;
        lrgd_validity_free(V);
        fprintf(b->tab, "%3d %7d %14.4g %14.4g %14.4g %9.0f %9.1f %7.3f %8.1f\n", r->threads, r->pairs, 1e6 / r->us_score,
                1e6 / r->us_effect, 1e6 / r->us_truth, r->us_truth / r->us_score, r->us_truth / r->us_effect, r->rho,
                r->rss_kb / 1024.0);
        fflush(b->tab);
    }
    /* users against one shared pool: the matrix scorer (all users' query vectors in vector lanes), 1 thread */
    int N = lrgd_split_n_users(sp), U = N >= 1256 ? 256 : N / 5, D = N >= 1256 ? 1000 : N - U;
    if (st == LRGD_OK && U >= 1 && D >= 1) {
        cli_note(CMD, b->cc.quiet, "effect, a shared pool, 1 thread");
        int th = lrgd_get_threads();
        lrgd_set_threads(1);
        st = lrgd_perf_effect_matrix_run(m, sp, U, D, 3, b->cc.seed, &b->efm);
        lrgd_set_threads(th);
        if (st == LRGD_OK) {
            const lrgd_perf_effect_matrix *r = &b->efm;
            b->have_efm = 1;
            fprintf(b->tab,
                    "shared pool: %d users x %d demonstrations, 1 thread, CPU time: matrix %.4f us/pair, per user %.4f "
                    "us/pair, truth %.1f us/pair: ratio %.0f (matrix), %.0f (per user)\n",
                    r->users, r->pool, r->us_matrix_per_pair, r->us_score_per_pair, r->us_truth_per_pair,
                    r->us_truth_per_pair / r->us_matrix_per_pair, r->us_truth_per_pair / r->us_score_per_pair);
            fflush(b->tab);
        }
    }
    lrgd_model_free(m);
    return st;
}

static double train_best_sgemm(const lrgd_perf_train_run *r)
{
    double best = 0;
    for (int k = 0; k < LRGD_PERF_TRAIN_SHAPES; k++) {
        if (r->sgemm_blas[k] > best) best = r->sgemm_blas[k];
        if (r->sgemm_split[k] > best) best = r->sgemm_split[k];
    }
    return best;
}

static lrgd_status run_train(bench *b, const lrgd_split *sp)
{
    lrgd_train_opts o;
    lrgd_train_opts_init(&o);
    o.dim = b->train_dim;
    o.n_layers = b->train_layers;
    o.hidden_dim = 2 * b->train_dim; /* the trainer's default ratio (64 -> 128) */
    o.n_heads = b->train_dim % 32 == 0 && b->train_dim >= 64 ? b->train_dim / 32 : o.n_heads;
    o.n_kv_heads = o.n_heads % 2 == 0 ? o.n_heads / 2 : o.n_heads;
    o.batch = b->train_batch;
    o.seed = b->cc.seed;
    o.out = "unused";
    lrgd_perf_train *pt = NULL;
    LRGD_TRY(lrgd_perf_train_new(sp, &o, &pt));
    b->train_items = lrgd_perf_train_n_items(pt);
    b->train_hidden = o.hidden_dim;
    memcpy(b->train_shapes, lrgd_perf_train_shapes(pt), sizeof b->train_shapes);
    fprintf(b->tab, "\ntrain: embedded model L=%d D=%d F=%d heads %d/%d, %d items, batch %d episodes, %d steps\n",
            o.n_layers, o.dim, o.hidden_dim, o.n_heads, o.n_kv_heads, b->train_items, o.batch, b->train_steps);
    fprintf(b->tab, "%3s %9s %10s %8s %8s %10s %7s %8s\n", "thr", "step ms", "tokens/s", "GFLOP/s", "fwd GF/s",
            "best sgemm", "/sgemm", "RSS MiB");
    lrgd_status st = LRGD_OK;
    for (int t = 0; t < b->n_threads && st == LRGD_OK; t++) {
        if ((st = lrgd_set_threads(b->threads[t])) != LRGD_OK) break;
        cli_note(CMD, b->cc.quiet, "train, %d thread(s)", b->threads[t]);
        train_row *r = &b->tr[b->n_tr];
        lrgd_perf_rss_reset();
        if ((st = lrgd_perf_train_measure(pt, b->train_steps, 0, &r->r)) != LRGD_OK) break;
        r->rss_kb = lrgd_perf_rss_peak_kb();
        b->n_tr++;
        double gf = r->r.flops_step / r->r.step_s / 1e9, sg = train_best_sgemm(&r->r);
        fprintf(b->tab, "%3d %9.1f %10.0f %8.2f %8.2f %10.2f %7.2f %8.1f\n", r->r.threads, 1e3 * r->r.step_s,
                r->r.tokens_per_step / r->r.step_s, gf, r->r.flops_fwd / r->r.fwd_s / 1e9, sg, gf / sg,
                r->rss_kb / 1024.0);
        fflush(b->tab);
    }
    lrgd_perf_train_free(pt);
    return st;
}

/* ---- JSON ------------------------------------------------------------------------ */

static void json_loadavg(lrgd_json *j, const char *key, const double *l)
{
    lrgd_json_key(j, key);
    lrgd_json_arr_begin(j);
    for (int i = 0; i < 3; i++) lrgd_json_num(j, l[i]);
    lrgd_json_arr_end(j);
}

static void json_skipped_or(lrgd_json *j, const char *key, const char *reason)
{
    lrgd_json_key(j, key);
    lrgd_json_obj_begin(j);
    lrgd_json_kstr(j, "skipped", reason);
    lrgd_json_obj_end(j);
}

static void write_json(FILE *f, bench *b)
{
    lrgd_json j;
    lrgd_json_init(&j, f, 1);
    lrgd_json_obj_begin(&j);
    lrgd_json_key(&j, "run");
    lrgd_json_obj_begin(&j);
    cli_json_run_info(&j, &b->cc);
    lrgd_json_key(&j, "threads_list");
    lrgd_json_arr_begin(&j);
    for (int t = 0; t < b->n_threads; t++) lrgd_json_int(&j, b->threads[t]);
    lrgd_json_arr_end(&j);
    lrgd_json_key(&j, "sections");
    lrgd_json_arr_begin(&j);
    for (int s = 0; s < 4; s++)
        if (b->sections & (1u << s)) lrgd_json_str(&j, sec_names[s]);
    lrgd_json_arr_end(&j);
    lrgd_json_obj_end(&j);

    lrgd_json_key(&j, "machine");
    lrgd_json_obj_begin(&j);
    lrgd_json_kint(&j, "cpus", sysconf(_SC_NPROCESSORS_ONLN));
    lrgd_json_kstr(&j, "openblas", openblas_get_config());
    json_loadavg(&j, "loadavg_start", b->load0);
    json_loadavg(&j, "loadavg_end", b->load1);
    lrgd_json_kstr(&j, "peak_rss", lrgd_perf_rss_method(b->rss_reset));
    lrgd_json_obj_end(&j);

    if (b->sections & SEC_FORWARD) {
        lrgd_json_key(&j, "forward");
        lrgd_json_obj_begin(&j);
        lrgd_json_kstr(&j, "pp", "one lrgd_eval of pp tokens (n_batch pp) into an empty cache, logits of the last");
        lrgd_json_kstr(&j, "tg", "tg lrgd_eval calls of 1 token with logits, from an empty cache");
        lrgd_json_kstr(&j, "tok_s", "tokens / mean seconds of the timed runs (pp_reps, tg_reps: up to reps, fewer once budget_s is spent; after one warm-up eval); best_*: the fastest run");
        lrgd_json_kstr(&j, "pp_gflops", "counted FLOPs (layer GEMMs, causal attention, last logits row) / mean time");
        lrgd_json_kstr(&j, "sgemm_gflops", "float32 GEMMs of one layer's shapes with pp rows, same threads: the better of "
                                           "OpenBLAS with its own threads (sgemm_openblas_gflops) and lrgd_sgemm, OpenBLAS "
                                           "calls split over OpenMP (sgemm_lrgd_gflops)");
        lrgd_json_kstr(&j, "cpu_tok_s", "tokens per CPU second of the process in its least CPU-hungry run (at 1 thread, "
                                        "about what an otherwise idle machine shows)");
        lrgd_json_kstr(&j, "tg_bytes_per_token", "weights in their stored types + output matrix + KV cache at the mean position");
        lrgd_json_kstr(&j, "memcpy_bytes_per_s", "2 x 128 MiB copy, bytes read + written per second, same threads");
        lrgd_json_kint(&j, "reps", b->reps);
        lrgd_json_knum(&j, "budget_s", b->budget);
        lrgd_json_key(&j, "results");
        lrgd_json_arr_begin(&j);
        for (int i = 0; i < b->n_fwd; i++) {
            const fwd_row *r = &b->fwd[i];
            double pps = r->f.pp / r->f.pp_mean_s, tgs = r->f.tg / r->f.tg_mean_s, gf = r->pp_flops / r->f.pp_mean_s / 1e9;
            lrgd_json_obj_begin(&j);
            lrgd_json_kstr(&j, "model", r->model);
            lrgd_json_kstr(&j, "dtype", r->dtype);
            lrgd_json_kstr(&j, "file", b->keep_dir ? r->file : "");
            lrgd_json_kstr(&j, "source", r->source);
            lrgd_json_kint(&j, "params", r->params);
            lrgd_json_kint(&j, "file_bytes", r->file_bytes);
            lrgd_json_kint(&j, "n_layers", r->cfg.n_layers);
            lrgd_json_kint(&j, "dim", r->cfg.dim);
            lrgd_json_kint(&j, "vocab", r->cfg.vocab_size);
            lrgd_json_kint(&j, "threads", r->threads);
            lrgd_json_kint(&j, "pp_tokens", r->f.pp);
            lrgd_json_kint(&j, "tg_tokens", r->f.tg);
            lrgd_json_kint(&j, "pp_reps", r->f.pp_reps);
            lrgd_json_kint(&j, "tg_reps", r->f.tg_reps);
            lrgd_json_knum(&j, "pp_tok_s", pps);
            lrgd_json_knum(&j, "pp_best_tok_s", r->f.pp / r->f.pp_best_s);
            lrgd_json_knum(&j, "tg_tok_s", tgs);
            lrgd_json_knum(&j, "tg_best_tok_s", r->f.tg / r->f.tg_best_s);
            lrgd_json_knum(&j, "pp_over_tg", pps / tgs);
            lrgd_json_knum(&j, "pp_gflops", gf);
            lrgd_json_knum(&j, "pp_cpu_tok_s", r->f.pp / r->f.pp_cpu_s);
            lrgd_json_knum(&j, "tg_cpu_tok_s", r->f.tg / r->f.tg_cpu_s);
            lrgd_json_knum(&j, "sgemm_gflops", r->sgemm.best);
            lrgd_json_knum(&j, "sgemm_openblas_gflops", r->sgemm.openblas);
            lrgd_json_knum(&j, "sgemm_lrgd_gflops", r->sgemm.lrgd);
            lrgd_json_knum(&j, "pp_vs_sgemm", gf / r->sgemm.best);
            lrgd_json_knum(&j, "tg_bytes_per_token", r->tg_bytes);
            lrgd_json_knum(&j, "tg_bytes_per_s", r->tg_bytes * tgs);
            lrgd_json_knum(&j, "memcpy_bytes_per_s", r->memcpy_bps);
            lrgd_json_knum(&j, "tg_vs_memcpy", r->tg_bytes * tgs / r->memcpy_bps);
            lrgd_json_kint(&j, "peak_rss_kb", r->rss_kb);
            lrgd_json_obj_end(&j);
        }
        lrgd_json_arr_end(&j);
        lrgd_json_obj_end(&j);
    }
    if (b->sections & SEC_EVAL) {
        if (b->skip_eval) json_skipped_or(&j, "eval", b->skip_eval);
        else {
            lrgd_json_key(&j, "eval");
            lrgd_json_obj_begin(&j);
            lrgd_json_kstr(&j, "data", b->data);
            lrgd_json_kstr(&j, "model", b->eval_model_used);
            lrgd_json_kstr(&j, "ranking", "full (every item), history excluded, test step");
            lrgd_json_kstr(&j, "demos", "similar");
            lrgd_json_kint(&j, "k", b->k);
            lrgd_json_kint(&j, "items", b->eval_items);
            lrgd_json_kint(&j, "split_users", b->split_users);
            lrgd_json_knum(&j, "setup_s", b->eval_setup_s);
            lrgd_json_key(&j, "runs");
            lrgd_json_arr_begin(&j);
            for (int i = 0; i < b->n_ev; i++) {
                const eval_row *r = &b->ev[i];
                lrgd_json_obj_begin(&j);
                lrgd_json_kint(&j, "threads", r->threads);
                lrgd_json_kint(&j, "users", r->users);
                lrgd_json_knum(&j, "seconds", r->seconds);
                lrgd_json_knum(&j, "users_per_s", r->users / r->seconds);
                lrgd_json_knum(&j, "all_users_est_s", b->split_users * r->seconds / r->users);
                lrgd_json_knum(&j, "ndcg10", r->ndcg10);
                lrgd_json_kint(&j, "peak_rss_kb", r->rss_kb);
                lrgd_json_obj_end(&j);
            }
            lrgd_json_arr_end(&j);
            lrgd_json_obj_end(&j);
        }
    }
    if (b->sections & SEC_EFFECT) {
        if (b->skip_effect) json_skipped_or(&j, "effect", b->skip_effect);
        else {
            lrgd_json_key(&j, "effect");
            lrgd_json_obj_begin(&j);
            lrgd_json_kstr(&j, "data", b->data);
            lrgd_json_kstr(&j, "model", b->eval_model_used);
            lrgd_json_kint(&j, "pool", b->pool);
            lrgd_json_kstr(&j, "score_pairs_per_s", "Effect_D scoring only (dot products)");
            lrgd_json_kstr(&j, "amortized_pairs_per_s", "scoring + demonstration encoding + probes, over the pairs");
            lrgd_json_kstr(&j, "truth_pairs_per_s", "one ground-truth forward pass per pair (T's cache reused)");
            lrgd_json_key(&j, "runs");
            lrgd_json_arr_begin(&j);
            for (int i = 0; i < b->n_ef; i++) {
                const effect_row *r = &b->ef[i];
                lrgd_json_obj_begin(&j);
                lrgd_json_kint(&j, "threads", r->threads);
                lrgd_json_kint(&j, "users", r->users);
                lrgd_json_kint(&j, "pairs", r->pairs);
                lrgd_json_knum(&j, "score_pairs_per_s", 1e6 / r->us_score);
                lrgd_json_knum(&j, "amortized_pairs_per_s", 1e6 / r->us_effect);
                lrgd_json_knum(&j, "truth_pairs_per_s", 1e6 / r->us_truth);
                lrgd_json_knum(&j, "ratio", r->us_truth / r->us_score);
                lrgd_json_knum(&j, "ratio_amortized", r->us_truth / r->us_effect);
                lrgd_json_knum(&j, "spearman", r->rho);
                lrgd_json_kint(&j, "peak_rss_kb", r->rss_kb);
                lrgd_json_obj_end(&j);
            }
            lrgd_json_arr_end(&j);
            if (b->have_efm) {
                const lrgd_perf_effect_matrix *r = &b->efm;
                lrgd_json_key(&j, "shared_pool");
                lrgd_json_obj_begin(&j);
                lrgd_json_kstr(&j, "what", "users x one shared pool of demonstrations, 1 thread, CPU seconds of the "
                                           "process, best of reps: lrgd_effect_score_matrix (all users' query vectors "
                                           "in vector lanes) and lrgd_effect_score per user on the same pairs; truth: "
                                           "one forward pass per pair on a corner of the matrix");
                lrgd_json_kint(&j, "n_users", r->users);
                lrgd_json_kint(&j, "n_pool", r->pool);
                lrgd_json_kint(&j, "n_pairs", r->pairs);
                lrgd_json_kint(&j, "n_truth_pairs", r->truth_pairs);
                lrgd_json_kint(&j, "reps", r->reps);
                lrgd_json_knum(&j, "us_per_pair_matrix", r->us_matrix_per_pair);
                lrgd_json_knum(&j, "us_per_pair_per_user", r->us_score_per_pair);
                lrgd_json_knum(&j, "us_per_pair_truth", r->us_truth_per_pair);
                lrgd_json_knum(&j, "ratio_matrix", r->us_truth_per_pair / r->us_matrix_per_pair);
                lrgd_json_knum(&j, "ratio_per_user", r->us_truth_per_pair / r->us_score_per_pair);
                lrgd_json_obj_end(&j);
            }
            lrgd_json_obj_end(&j);
        }
    }
    if (b->sections & SEC_TRAIN) {
        if (b->skip_train) json_skipped_or(&j, "train", b->skip_train);
        else {
            lrgd_json_key(&j, "train");
            lrgd_json_obj_begin(&j);
            lrgd_json_kstr(&j, "data", b->data);
            lrgd_json_kint(&j, "items", b->train_items);
            lrgd_json_kint(&j, "layers", b->train_layers);
            lrgd_json_kint(&j, "dim", b->train_dim);
            lrgd_json_kint(&j, "hidden", b->train_hidden);
            lrgd_json_kint(&j, "batch", b->train_batch);
            lrgd_json_kint(&j, "steps", b->train_steps);
            lrgd_json_kstr(&j, "gflops", "FLOPs counted from the shapes (GEMMs x3, attention x3, item softmax x3) / step time");
            lrgd_json_key(&j, "runs");
            lrgd_json_arr_begin(&j);
            for (int i = 0; i < b->n_tr; i++) {
                const lrgd_perf_train_run *r = &b->tr[i].r;
                double gf = r->flops_step / r->step_s / 1e9, sg = train_best_sgemm(r);
                lrgd_json_obj_begin(&j);
                lrgd_json_kint(&j, "threads", r->threads);
                lrgd_json_knum(&j, "step_ms", 1e3 * r->step_s);
                lrgd_json_knum(&j, "tokens_per_s", r->tokens_per_step / r->step_s);
                lrgd_json_knum(&j, "targets_per_s", r->targets_per_step / r->step_s);
                lrgd_json_knum(&j, "gflops", gf);
                lrgd_json_knum(&j, "forward_gflops", r->flops_fwd / r->fwd_s / 1e9);
                lrgd_json_knum(&j, "sgemm_best_gflops", sg);
                lrgd_json_knum(&j, "vs_sgemm", gf / sg);
                lrgd_json_key(&j, "sgemm");
                lrgd_json_arr_begin(&j);
                for (int k = 0; k < LRGD_PERF_TRAIN_SHAPES; k++) {
                    const lrgd_perf_shape *s = &b->train_shapes[k];
                    lrgd_json_obj_begin(&j);
                    lrgd_json_kstr(&j, "shape", s->name);
                    lrgd_json_kint(&j, "M", s->M);
                    lrgd_json_kint(&j, "N", s->N);
                    lrgd_json_kint(&j, "K", s->K);
                    lrgd_json_knum(&j, "openblas_gflops", r->sgemm_blas[k]);
                    lrgd_json_knum(&j, "split_gflops", r->sgemm_split[k]);
                    lrgd_json_obj_end(&j);
                }
                lrgd_json_arr_end(&j);
                lrgd_json_kint(&j, "peak_rss_kb", b->tr[i].rss_kb);
                lrgd_json_obj_end(&j);
            }
            lrgd_json_arr_end(&j);
            lrgd_json_obj_end(&j);
        }
    }
    lrgd_json_obj_end(&j);
    fputc('\n', f);
}

/* ---- options ------------------------------------------------------------------------ */

/* --only LIST: sections, comma-separated */
static int parse_only(const char *arg, unsigned *sections)
{
    char buf[256];
    *sections = 0;
    if (strlen(arg) >= sizeof buf) return cli_usage(CMD, "--only: expected a list of sections");
    strcpy(buf, arg);
    char *save = NULL;
    for (char *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < 4 && strcmp(s, sec_names[k])) k++;
        if (k == 4) return cli_usage(CMD, "--only: unknown section '%s' (forward, eval, effect, train)", s);
        *sections |= 1u << k;
    }
    if (!*sections) return cli_usage(CMD, "--only: expected a list of sections");
    return 0;
}

/* --dtypes LIST: weight types, comma-separated, each once */
static int parse_dtypes(const char *arg, bench *b)
{
    char buf[64];
    if (strlen(arg) >= sizeof buf) return cli_usage(CMD, "--dtypes: expected f32, f16, q8_0");
    strcpy(buf, arg);
    b->n_dtypes = 0;
    char *save = NULL;
    for (char *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        lrgd_dtype t;
        if (!strcmp(s, "f32")) t = LRGD_F32;
        else if (!strcmp(s, "f16")) t = LRGD_F16;
        else if (!strcmp(s, "q8_0")) t = LRGD_Q8_0;
        else return cli_usage(CMD, "--dtypes: unknown type '%s' (f32, f16, q8_0)", s);
        for (int k = 0; k < b->n_dtypes; k++)
            if (b->dtypes[k] == t) return cli_usage(CMD, "--dtypes: '%s' given twice", s);
        b->dtypes[b->n_dtypes++] = t;
    }
    if (!b->n_dtypes) return cli_usage(CMD, "--dtypes: expected f32, f16, q8_0");
    return 0;
}

/* CLI_CONTINUE, or the exit code */
static int parse_args(bench *b, int argc, char **argv)
{
    const char *only = NULL, *random = NULL, *dtypes = NULL;
    long long tlist[MAX_THREADS];
    int n_tlist = MAX_THREADS, tlist_set = 0;
    const cli_opt opts[] = {
        CLI_O_STR("only", &only, "a list of sections"),
        CLI_O_STRS("model", b->models, &b->n_models, MAX_MODELS, "a file"),
        CLI_O_STR("random", &random, "LxD or 'none'"),
        CLI_O_STR("dtypes", &dtypes, "f32, f16, q8_0"),
        {"threads-list", CLI_INT_LIST, tlist, 1, 1024, NULL, NULL, NULL, &tlist_set, &n_tlist},
        CLI_O_INT("pp", &b->pp, 1, 65536),
        CLI_O_INT("tg", &b->tg, 1, 65536),
        CLI_O_INT("reps", &b->reps, 1, 1000),
        CLI_O_DOUBLE("budget", &b->budget, 0, 1e6),
        CLI_O_STR("keep-models", &b->keep_dir, "a folder"),
        CLI_O_STR("data", &b->data, "a file"),
        CLI_O_STR("eval-model", &b->eval_model, "a file"),
        CLI_O_INT("users", &b->users, 0, 100000000),
        CLI_O_INT("k", &b->k, 0, 64),
        CLI_O_INT("effect-users", &b->effect_users, 1, 1000000),
        CLI_O_INT("pool", &b->pool, 1, 100000),
        CLI_O_INT("train-steps", &b->train_steps, 1, 100000),
        CLI_O_INT("train-batch", &b->train_batch, 1, 100000),
        CLI_O_INT("train-dim", &b->train_dim, 8, 4096),
        CLI_O_INT("train-layers", &b->train_layers, 1, 64),
        CLI_O_STR("out", &b->out, "a file"),
        CLI_O_END};
    int rc = cli_parse(CMD, help_bench, argc, argv, opts, &b->cc);
    if (rc != CLI_CONTINUE) return rc;
    if (only) {
        if (parse_only(only, &b->sections)) return CLI_USAGE;
        b->explicit_sections = b->sections;
    }
    if (random && parse_random(random, &b->rand_layers, &b->rand_dim))
        return cli_usage(CMD, "--random: expected LxD (1..64 layers, width 32..8192 a multiple of 32) or "
                              "'none', got '%s'", random);
    if (dtypes && parse_dtypes(dtypes, b)) return CLI_USAGE;
    if (b->cc.threads_given) { /* --threads N: the same as --threads-list N */
        if (b->cc.threads < 1) return cli_usage(CMD, "--threads: expected a count >= 1 for a benchmark");
        if (tlist_set) return cli_usage(CMD, "give --threads or --threads-list, not both");
        b->threads[0] = b->cc.threads;
        b->n_threads = 1;
    } else if (tlist_set) {
        for (int k = 0; k < n_tlist; k++) b->threads[k] = (int)tlist[k];
        b->n_threads = n_tlist;
    }
    if (b->train_dim % 8) return cli_usage(CMD, "--train-dim: expected a multiple of 8, got %d", b->train_dim);
    if ((b->sections & SEC_FORWARD) && !b->n_models && !b->rand_layers)
        return cli_usage(CMD, "forward: no model (give --model, or --random LxD)");
    unsigned need_data = b->explicit_sections & (SEC_EVAL | SEC_EFFECT | SEC_TRAIN);
    if (need_data && !b->data)
        return cli_usage(CMD, "--only %s needs --data", need_data & SEC_EVAL ? "eval" : need_data & SEC_EFFECT ? "effect"
                                                                                                              : "train");
    return CLI_CONTINUE;
}

int cmd_bench(int argc, char **argv)
{
    bench *b = calloc(1, sizeof *b);
    if (!b) return cli_fail(CMD, lrgd_fail(LRGD_E_NOMEM, "out of memory"));
    cli_common_init(&b->cc);
    b->sections = SEC_ALL;
    b->rand_layers = 8;
    b->rand_dim = 512;
    b->dtypes[0] = LRGD_F32;
    b->dtypes[1] = LRGD_Q8_0;
    b->n_dtypes = 2;
    b->threads[0] = 1;
    b->threads[1] = 2;
    b->n_threads = 2;
    b->pp = 512;
    b->tg = 128;
    b->reps = 3;
    b->budget = 5;
    b->users = 2048;
    b->k = 3;
    b->effect_users = 20;
    b->pool = 50;
    b->train_steps = 10;
    b->train_batch = 128;
    b->train_dim = 64;
    b->train_layers = 2;
    int rc = parse_args(b, argc, argv);
    if (rc != CLI_CONTINUE) {
        free(b);
        return rc;
    }
    if ((rc = cli_common_apply(CMD, &b->cc)) != 0) {
        free(b);
        return rc;
    }
    lrgd_set_quiet(1); /* the library's progress bars: the bench prints its own lines */
    b->tab = b->cc.json ? stderr : stdout;
    if (b->cc.json && b->cc.quiet) b->tab = fopen("/dev/null", "w");
    if (!b->tab) b->tab = stderr;
    b->rss_reset = lrgd_perf_rss_reset();
    if (getloadavg(b->load0, 3) != 3) b->load0[0] = b->load0[1] = b->load0[2] = -1;

    char tmpdir[4096] = "";
    lrgd_dataset *ds = NULL;
    lrgd_split *sp = NULL;
    lrgd_status st = LRGD_OK;
    int has_model_items = 0;
    /* Inputs are checked before any timing: a bad file fails in seconds, not after the forward section. */
    for (int i = 0; i < b->n_models && st == LRGD_OK; i++) {
        lrgd_model *m = NULL;
        if ((st = lrgd_model_load(b->models[i], &m)) != LRGD_OK) lrgd_fail_wrap(st, "--model %s", b->models[i]);
        lrgd_model_free(m);
    }
    if (st == LRGD_OK && b->data && (b->sections & (SEC_EVAL | SEC_EFFECT | SEC_TRAIN))) {
        if ((st = lrgd_dataset_load(b->data, LRGD_DATA_AUTO, &ds)) == LRGD_OK) st = lrgd_split_loo(ds, &sp);
        if (st != LRGD_OK) lrgd_fail_wrap(st, "--data");
    }
    /* the eval/effect model: --eval-model, else the first --model trained on --data */
    if (st == LRGD_OK && ds && (b->sections & (SEC_EVAL | SEC_EFFECT))) {
        const char *cands[MAX_MODELS + 1];
        int nc = 0;
        if (b->eval_model) cands[nc++] = b->eval_model;
        else
            for (int i = 0; i < b->n_models; i++) cands[nc++] = b->models[i];
        for (int i = 0; i < nc && st == LRGD_OK && !b->eval_model_used; i++) {
            lrgd_model *m = NULL;
            if ((st = lrgd_model_load(cands[i], &m)) != LRGD_OK) {
                lrgd_fail_wrap(st, "--eval-model %s", cands[i]);
                break;
            }
            lrgd_status ci = lrgd_model_check_items(m, ds);
            if (ci == LRGD_OK) {
                b->eval_model_used = cands[i];
                b->eval_items = lrgd_dataset_n_items(ds);
            } else if (b->eval_model) st = lrgd_fail_wrap(ci, "--eval-model %s and --data %s", cands[i], b->data);
            has_model_items |= m->rec.n_items > 0;
            lrgd_model_free(m);
        }
        if (st == LRGD_OK && !b->eval_model_used && (b->explicit_sections & (SEC_EVAL | SEC_EFFECT)))
            st = lrgd_fail(LRGD_E_INVALID, "eval/effect: no --model or --eval-model was trained on %s%s", b->data,
                           has_model_items ? " (the recommendation models given have other items)" : "");
    }
    if (st != LRGD_OK) {
        rc = cli_fail(CMD, st);
        goto done;
    }
    const char *why = !b->data ? "no --data" : "no --model or --eval-model trained on --data";
    if (!b->eval_model_used) b->skip_eval = b->skip_effect = why;
    if (!b->data) b->skip_train = "no --data";

    if (!b->cc.quiet)
        fprintf(b->tab, "lrgd bench %s: %ld cpus, load average %.2f %.2f %.2f, threads", lrgd_version(),
                sysconf(_SC_NPROCESSORS_ONLN), b->load0[0], b->load0[1], b->load0[2]);
    for (int t = 0; !b->cc.quiet && t < b->n_threads; t++) fprintf(b->tab, "%s%d", t ? "," : " ", b->threads[t]);
    if (!b->cc.quiet) fprintf(b->tab, "; peak RSS: %s\n", lrgd_perf_rss_method(b->rss_reset));

    if ((b->sections & SEC_FORWARD) && st == LRGD_OK) {
        b->fwd = calloc(MAX_ROWS, sizeof *b->fwd);
        st = b->fwd ? run_forward(b, tmpdir) : lrgd_fail(LRGD_E_NOMEM, "out of memory");
    }
    if ((b->sections & SEC_EVAL) && st == LRGD_OK) {
        if (b->skip_eval) fprintf(b->tab, "\neval: skipped (%s)\n", b->skip_eval);
        else st = run_eval(b, sp);
    }
    if ((b->sections & SEC_EFFECT) && st == LRGD_OK) {
        if (b->skip_effect) fprintf(b->tab, "\neffect: skipped (%s)\n", b->skip_effect);
        else st = run_effect(b, sp);
    }
    if ((b->sections & SEC_TRAIN) && st == LRGD_OK) {
        if (b->skip_train) fprintf(b->tab, "\ntrain: skipped (%s)\n", b->skip_train);
        else st = run_train(b, sp);
    }
    if (st != LRGD_OK) {
        rc = cli_fail(CMD, st);
        goto done;
    }
    if (getloadavg(b->load1, 3) != 3) b->load1[0] = b->load1[1] = b->load1[2] = -1;
    if (!b->cc.quiet)
        fprintf(b->tab, "\nload average at the end: %.2f %.2f %.2f\n", b->load1[0], b->load1[1], b->load1[2]);
    /* the run record's thread count: the largest measured */
    int tmax = 1;
    for (int t = 0; t < b->n_threads; t++) tmax = b->threads[t] > tmax ? b->threads[t] : tmax;
    lrgd_set_threads(tmax);
    if (b->out) {
        lrgd_afile af;
        if ((st = lrgd_afile_open(&af, b->out)) == LRGD_OK) {
            write_json(af.f, b);
            st = lrgd_afile_commit(&af);
        }
        if (st != LRGD_OK) {
            rc = cli_fail(CMD, st);
            goto done;
        }
        if (!b->cc.quiet) fprintf(b->tab, "wrote %s\n", b->out);
    }
    if (b->cc.json) write_json(stdout, b);
    rc = CLI_OK;
done:
    if (tmpdir[0]) remove_tmpdir(tmpdir);
    if (b->tab && b->tab != stdout && b->tab != stderr) fclose(b->tab);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
    free(b->fwd);
    free(b);
    return rc;
}
