/* Forward-pass throughput, the developer's bench for the kernels (the suite
 * users run is `lrgd bench`): prompt processing (one batch of 512 tokens,
 * logits of the last one) and decoding (one token per call with its logits,
 * from an empty cache) on stories260K and on random 8-layer d=512 models, in
 * F32 and Q8_0, at 1 and 2 threads. Every model is first written as a GGUF
 * file of the dtype and loaded back (mmap'd, as users load one), so lrgd and
 * llama.cpp run the same file. Each figure is reported as tokens / fastest
 * repetition ("best": on a shared machine the least disturbed run) and
 * tokens / mean time, and as tokens per CPU second of the process (for one
 * thread on a loaded machine, close to what an idle machine's clock shows).
 * With several threads, the CPU time of the busiest thread is reported as
 * well: on a machine whose other core is busy with other sessions' work (the
 * kernel's autogroup scheduling shares the cores between sessions, so extra
 * threads of one session get no extra core), it tells the wall time an idle
 * machine would show, waits aside.
 * Prints a table with ratios measured in the same run (2 threads over 1, lrgd
 * over llama.cpp with --peer, by wall clock and by CPU time), the achieved prompt
 * GFLOP/s against OpenBLAS sgemm on the model's FFN shape at the same thread
 * count, and the load average; writes JSON atomically.
 *
 * usage: bench_forward [--quick] [--model FILE] [--peer DIR] [--only NAME] [--types LIST]
 *                      [--threads LIST] [--reps N] [--tg N] [OUT.json]
 *   --model FILE    the stories260K checkpoint (default $LRGD_SHARED/models/stories260K.bin,
 *                   else ../shared/models/stories260K.bin)
 *   --peer DIR      bench/llamacpp with node_modules installed (bench/llamacpp/setup.sh):
 *                   llama.cpp's bench.mjs runs the same GGUF file with the same pp/tg shapes,
 *                   an F32 KV cache and its default flash attention (auto), right after lrgd
 *   --only NAME     models whose name contains NAME (stories260K, random-8L-d512-kv8, ...)
 *   --types LIST    f32,q8_0 (default both)
 *   --threads LIST  thread counts (default 1,2)
 *   --reps N        timed repetitions (default 3; --quick 1)
 *   --tg N          decoded tokens (default 128; --quick 32)
 *   --no-tg         prompt processing only
 * Like the lrgd tool it runs with OMP_WAIT_POLICY=PASSIVE unless the
 * environment sets a policy (it restarts itself once to set it). OpenBLAS
 * picks its kernels from the CPU, or from OPENBLAS_CORETYPE when that is set:
 * the table names the core it runs (Haswell's AVX2 kernels reach half the
 * sgemm GFLOP/s of the AVX-512 ones on an AVX-512 machine). */
#include "core/core.h"
#include "core/kernels.h"
#include "lrgd/gguf.h"
#include "lrgd/lrgd.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { PP = 512, MAX_RESULTS = 64 };

typedef struct result {
    char model[64];
    const char *type;
    long long params;
    int threads, pp_tokens, tg_tokens, reps;
    double pp_best, pp_mean, tg_best, tg_mean; /* tokens/s */
    double pp_cpu, tg_cpu;                     /* tokens per CPU second of the process (fastest rep): on a
                                                  loaded machine, the 1-thread figure an idle one would show */
    double pp_crit, tg_crit;                   /* tokens per CPU second of the busiest thread (fastest rep):
                                                  what an idle machine would show if waits cost nothing */
    double pp_gflop;                           /* floating-point work of one prompt, GFLOP */
    double sgemm_gflops;                       /* OpenBLAS on the FFN shape, same threads */
    double peer_pp, peer_tg, peer_pp_mean, peer_tg_mean; /* llama.cpp, 0 when not measured */
    double peer_pp_cpu, peer_tg_cpu;                     /* llama.cpp tokens per CPU second of node */
} result;

static long long count_params(const lrgd_config *c)
{
    long long D = c->dim, F = c->hidden_dim, kvd = (long long)c->n_kv_heads * c->head_dim;
    long long per_layer = 2 * D + 2 * D * D + 2 * D * kvd + 3 * D * F;
    return (long long)c->vocab_size * D * (c->tied ? 1 : 2) + c->n_layers * per_layer + D;
}

/* Multiply-adds x 2 of one prompt of n tokens from an empty cache: the layer
 * matmuls, causal attention (scores and weighted values), the last row's logits. */
static double prompt_gflop(const lrgd_config *c, int n)
{
    double D = c->dim, F = c->hidden_dim, qd = (double)c->n_heads * c->head_dim,
           kvd = (double)c->n_kv_heads * c->head_dim;
    double mm = n * (D * qd + 2 * D * kvd + qd * D + 3 * D * F);
    double att = 2.0 * c->n_heads * c->head_dim * ((double)n * (n + 1) / 2);
    return 2.0 * (c->n_layers * (mm + att) + (double)c->vocab_size * D) / 1e9;
}

/* OpenBLAS sgemm GFLOP/s on [n x D] x [D x F] (the FFN gate's shape), best of 5. */
static double sgemm_gflops(int n, int D, int F)
{
    float *a = lrgd_alloc_n((size_t)n * D, sizeof(float)), *b = lrgd_alloc_n((size_t)F * D, sizeof(float)),
          *c = lrgd_alloc_n((size_t)n * F, sizeof(float));
    double best = 1e30;
    if (a && b && c) {
        for (size_t i = 0; i < (size_t)n * D; i++) a[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < (size_t)F * D; i++) b[i] = (float)(i % 5) * 0.1f;
        for (int r = 0; r < 6; r++) {
            double t0 = lrgd_now();
            lrgd_sgemm(0, 1, n, F, D, 1.0f, a, D, b, D, 0.0f, c, F);
            double t = lrgd_now() - t0;
            if (r > 0 && t < best) best = t;
        }
    }
    lrgd_free(a);
    lrgd_free(b);
    lrgd_free(c);
    return best < 1e30 ? 2.0 * n * D * F / best / 1e9 : 0;
}

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* CPU seconds each OpenMP thread has used so far. libgomp keeps its pool, so
 * team member i is the same thread from one region to the next. */
static void thread_cpu(double *t, int n)
{
#pragma omp parallel num_threads(n)
    {
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        t[omp_get_thread_num()] = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    }
}

/* CPU seconds of the busiest thread between two thread_cpu readings */
static double busiest(const double *t0, const double *t1, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++) m = t1[i] - t0[i] > m ? t1[i] - t0[i] : m;
    return m;
}

static int run_one(const lrgd_model *m, int threads, int reps, int tg, result *r)
{
    const lrgd_config *c = lrgd_model_config(m);
    lrgd_status st = lrgd_set_threads(threads);
    int n_ctx = PP > tg ? PP : tg;
    lrgd_state *s = NULL;
    int *tok = malloc(sizeof(int) * PP);
    float *logits = malloc(sizeof(float) * (size_t)c->vocab_size);
    if (st == LRGD_OK) st = lrgd_state_new(m, n_ctx, PP, &s);
    if (st != LRGD_OK || !tok || !logits) {
        fprintf(stderr, "bench_forward: %s: %s\n", r->model, lrgd_last_error());
        lrgd_state_free(s);
        free(tok);
        free(logits);
        return 1;
    }
    lrgd_rng rng;
    lrgd_rng_seed(&rng, 1234, 0);
    for (int i = 0; i < PP; i++) tok[i] = (int)lrgd_rng_below(&rng, (uint32_t)c->vocab_size);

    /* warm-up: page in the weights, start the thread pools */
    st = lrgd_eval(s, tok, 8, logits, 0);
    double sum_pp = 0, sum_tg = 0, best_pp = 1e30, best_tg = 1e30, cpu_pp = 1e30, cpu_tg = 1e30;
    double crit_pp = 1e30, crit_tg = 1e30, tc0[1024], tc1[1024];
    for (int rep = 0; rep < reps && st == LRGD_OK; rep++) {
        lrgd_state_truncate(s, 0);
        thread_cpu(tc0, threads);
        double t0 = lrgd_now(), c0 = cpu_now();
        st = lrgd_eval(s, tok, PP, logits, 0);
        double t = lrgd_now() - t0, c = cpu_now() - c0;
        thread_cpu(tc1, threads);
        double b = busiest(tc0, tc1, threads);
        sum_pp += t;
        best_pp = t < best_pp ? t : best_pp;
        cpu_pp = c < cpu_pp ? c : cpu_pp;
        crit_pp = b < crit_pp ? b : crit_pp;
    }
    for (int rep = 0; rep < reps && st == LRGD_OK && tg > 0; rep++) {
        lrgd_state_truncate(s, 0);
        thread_cpu(tc0, threads);
        double t0 = lrgd_now(), c0 = cpu_now();
        for (int i = 0; i < tg && st == LRGD_OK; i++) st = lrgd_eval(s, &tok[i % PP], 1, logits, 0);
        double t = lrgd_now() - t0, c = cpu_now() - c0;
        thread_cpu(tc1, threads);
        double b = busiest(tc0, tc1, threads);
        sum_tg += t;
        best_tg = t < best_tg ? t : best_tg;
        cpu_tg = c < cpu_tg ? c : cpu_tg;
        crit_tg = b < crit_tg ? b : crit_tg;
    }
    lrgd_state_free(s);
    free(tok);
    free(logits);
    if (st != LRGD_OK) {
        fprintf(stderr, "bench_forward: %s: %s\n", r->model, lrgd_last_error());
        return 1;
    }
    r->params = count_params(c);
    r->threads = threads;
    r->pp_tokens = PP;
    r->tg_tokens = tg;
    r->reps = reps;
    r->pp_best = PP / best_pp;
    r->pp_mean = PP * reps / sum_pp;
    r->tg_best = tg > 0 ? tg / best_tg : 0;
    r->tg_mean = tg > 0 ? (double)tg * reps / sum_tg : 0;
    r->pp_cpu = PP / cpu_pp;
    r->tg_cpu = tg > 0 ? tg / cpu_tg : 0;
    r->pp_crit = PP / crit_pp;
    r->tg_crit = tg > 0 ? tg / crit_tg : 0;
    r->pp_gflop = prompt_gflop(c, PP);
    r->sgemm_gflops = sgemm_gflops(PP, c->dim, c->hidden_dim);
    return 0;
}

/* The number after "key": inside the object that follows "obj": in a JSON text. */
static double json_num_in(const char *text, const char *obj, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", obj);
    const char *p = strstr(text, pat);
    snprintf(pat, sizeof pat, "\"%s\":", key);
    p = p ? strstr(p, pat) : NULL;
    return p ? strtod(p + strlen(pat), NULL) : 0.0;
}

/* llama.cpp on the same GGUF file, same shapes and threads. */
static void run_peer(const char *peer_dir, const char *gguf, int threads, int reps, int tg, result *r)
{
    char json[4300], cmd[9000];
    snprintf(json, sizeof json, "%s.peer.json", gguf);
    snprintf(cmd, sizeof cmd,
             "node '%s/bench.mjs' --model '%s' --threads %d --pp %d --tg %d --reps %d --kv f32 --json '%s' >/dev/null",
             peer_dir, gguf, threads, PP, tg > 0 ? tg : 1, reps, json);
    int rc = system(cmd);
    char *text = NULL;
    if (rc != 0 || lrgd_read_file(json, &text, NULL) != LRGD_OK) {
        fprintf(stderr, "bench_forward: llama.cpp peer failed (exit %d): %s\n", rc, cmd);
        return;
    }
    r->peer_pp = json_num_in(text, "pp", "best_tokens_per_s");
    r->peer_pp_mean = json_num_in(text, "pp", "tokens_per_s");
    r->peer_pp_cpu = json_num_in(text, "pp", "best_tokens_per_cpu_s");
    if (tg > 0) {
        r->peer_tg = json_num_in(text, "tg", "best_tokens_per_s");
        r->peer_tg_mean = json_num_in(text, "tg", "tokens_per_s");
        r->peer_tg_cpu = json_num_in(text, "tg", "best_tokens_per_cpu_s");
    }
    lrgd_free(text);
    unlink(json);
}

static void print_header(int peer)
{
    printf("%-20s %-5s %3s %10s %10s %9s %9s %7s %7s", "model", "type", "thr", "pp512 t/s", "tg t/s", "pp t/cpus",
           "tg t/cpus", "pp GF/s", "%sgemm");
    if (peer)
        printf(" %10s %10s %9s %9s %7s %7s %7s %7s", "llama pp", "llama tg", "pp t/cpus", "tg t/cpus", "pp x", "tg x",
               "pp xcpu", "tg xcpu");
    printf("   (best of reps; t/cpus: tokens per CPU second of the process; x: lrgd over llama.cpp)\n");
}

static void print_row(const result *r)
{
    double gf = r->pp_gflop * r->pp_best / PP;
    printf("%-20s %-5s %3d %10.1f %10.1f %9.1f %9.1f %7.1f %6.0f%%", r->model, r->type, r->threads, r->pp_best,
           r->tg_best, r->pp_cpu, r->tg_cpu, gf, r->sgemm_gflops > 0 ? 100 * gf / r->sgemm_gflops : 0);
    if (r->peer_pp > 0)
        printf(" %10.1f %10.1f %9.1f %9.1f %6.2fx %6.2fx %6.2fx %6.2fx", r->peer_pp, r->peer_tg, r->peer_pp_cpu,
               r->peer_tg_cpu, r->pp_best / r->peer_pp, r->peer_tg > 0 ? r->tg_best / r->peer_tg : 0,
               r->peer_pp_cpu > 0 ? r->pp_cpu / r->peer_pp_cpu : 0, r->peer_tg_cpu > 0 ? r->tg_cpu / r->peer_tg_cpu : 0);
    putchar('\n');
    fflush(stdout);
}

typedef struct opts {
    const char *peer_dir, *only, *tmpdir;
    int types[2], n_types, threads[8], n_threads, reps, tg;
} opts;

/* Every dtype and thread count for one model: lrgd, then (with a peer) llama.cpp. */
static int bench_model(const lrgd_model *src, const char *name, const opts *o, result *res, int *n)
{
    if (o->only && !strstr(name, o->only)) return 0;
    int fails = 0;
    for (int ti = 0; ti < o->n_types; ti++) {
        lrgd_dtype type = o->types[ti] ? LRGD_Q8_0 : LRGD_F32;
        char gguf[4200];
        snprintf(gguf, sizeof gguf, "%s/%s-%s.gguf", o->tmpdir, name, o->types[ti] ? "q8_0" : "f32");
        lrgd_model *m = NULL;
        if (lrgd_model_save_gguf(src, gguf, type, name) != LRGD_OK || lrgd_model_load(gguf, &m) != LRGD_OK) {
            fprintf(stderr, "bench_forward: %s: %s\n", name, lrgd_last_error());
            unlink(gguf);
            fails++;
            continue;
        }
        for (int t = 0; t < o->n_threads && *n < MAX_RESULTS; t++) {
            result *r = &res[*n];
            memset(r, 0, sizeof *r);
            snprintf(r->model, sizeof r->model, "%s", name);
            r->type = o->types[ti] ? "q8_0" : "f32";
            if (run_one(m, o->threads[t], o->reps, o->tg, r) != 0) { fails++; continue; }
            if (o->peer_dir) run_peer(o->peer_dir, gguf, o->threads[t], o->reps, o->tg, r);
            print_row(r);
            (*n)++;
        }
        lrgd_model_free(m);
        unlink(gguf);
    }
    return fails;
}

static void json_load(lrgd_json *j, const char *key)
{
    double l[3] = {0, 0, 0};
    lrgd_json_key(j, key);
    lrgd_json_arr_begin(j);
    if (getloadavg(l, 3) == 3)
        for (int i = 0; i < 3; i++) lrgd_json_num(j, l[i]);
    lrgd_json_arr_end(j);
}

static int write_json(const char *path, const result *r, int n, int quick, const double *load0)
{
    lrgd_afile af;
    if (lrgd_afile_open(&af, path) != LRGD_OK) {
        fprintf(stderr, "bench_forward: %s\n", lrgd_last_error());
        return 1;
    }
    lrgd_json j;
    lrgd_json_init(&j, af.f, 1);
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "benchmark", "forward");
    lrgd_json_kstr(&j, "version", lrgd_version());
    lrgd_json_key(&j, "quick");
    lrgd_json_bool(&j, quick);
    lrgd_json_kstr(&j, "pp", "one eval of 512 tokens (n_batch 512), logits of the last; tokens / fastest and mean rep");
    lrgd_json_kstr(&j, "tg", "tg_tokens evals of 1 token with logits, from an empty cache");
    lrgd_json_kstr(&j, "peer", "llama.cpp (node-llama-cpp 3.21.1, bench/llamacpp/bench.mjs), same GGUF file, F32 KV "
                               "cache, flash attention auto");
    lrgd_json_kstr(&j, "omp_wait_policy", getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "");
    lrgd_json_kstr(&j, "openblas_core", openblas_get_corename());
    lrgd_json_kstr(&j, "kernels", lrgd_kernels_active()->name);
    lrgd_json_key(&j, "loadavg_start");
    lrgd_json_arr_begin(&j);
    for (int i = 0; i < 3; i++) lrgd_json_num(&j, load0[i]);
    lrgd_json_arr_end(&j);
    json_load(&j, "loadavg_end");
    lrgd_json_key(&j, "results");
    lrgd_json_arr_begin(&j);
    for (int i = 0; i < n; i++) {
        lrgd_json_obj_begin(&j);
        lrgd_json_kstr(&j, "model", r[i].model);
        lrgd_json_kstr(&j, "type", r[i].type);
        lrgd_json_kint(&j, "params", r[i].params);
        lrgd_json_kint(&j, "threads", r[i].threads);
        lrgd_json_kint(&j, "reps", r[i].reps);
        lrgd_json_kint(&j, "pp_tokens", r[i].pp_tokens);
        lrgd_json_knum(&j, "pp_tok_s", r[i].pp_best);
        lrgd_json_knum(&j, "pp_tok_s_mean", r[i].pp_mean);
        lrgd_json_knum(&j, "pp_tok_per_cpu_s", r[i].pp_cpu);
        if (r[i].tg_tokens > 0) lrgd_json_knum(&j, "tg_tok_per_cpu_s", r[i].tg_cpu);
        lrgd_json_knum(&j, "pp_tok_per_busiest_thread_cpu_s", r[i].pp_crit);
        if (r[i].tg_tokens > 0) lrgd_json_knum(&j, "tg_tok_per_busiest_thread_cpu_s", r[i].tg_crit);
        lrgd_json_knum(&j, "pp_gflops", r[i].pp_gflop * r[i].pp_best / PP);
        lrgd_json_knum(&j, "sgemm_gflops", r[i].sgemm_gflops);
        lrgd_json_kint(&j, "tg_tokens", r[i].tg_tokens);
        if (r[i].tg_tokens > 0) {
            lrgd_json_knum(&j, "tg_tok_s", r[i].tg_best);
            lrgd_json_knum(&j, "tg_tok_s_mean", r[i].tg_mean);
        }
        if (r[i].peer_pp > 0) {
            lrgd_json_knum(&j, "llamacpp_pp_tok_s", r[i].peer_pp);
            lrgd_json_knum(&j, "llamacpp_pp_tok_s_mean", r[i].peer_pp_mean);
            lrgd_json_knum(&j, "pp_vs_llamacpp", r[i].pp_best / r[i].peer_pp);
            if (r[i].peer_pp_cpu > 0) {
                lrgd_json_knum(&j, "llamacpp_pp_tok_per_cpu_s", r[i].peer_pp_cpu);
                lrgd_json_knum(&j, "pp_vs_llamacpp_cpu", r[i].pp_cpu / r[i].peer_pp_cpu);
            }
            if (r[i].peer_tg > 0) {
                lrgd_json_knum(&j, "llamacpp_tg_tok_s", r[i].peer_tg);
                lrgd_json_knum(&j, "llamacpp_tg_tok_s_mean", r[i].peer_tg_mean);
                lrgd_json_knum(&j, "tg_vs_llamacpp", r[i].tg_best / r[i].peer_tg);
                if (r[i].peer_tg_cpu > 0) {
                    lrgd_json_knum(&j, "llamacpp_tg_tok_per_cpu_s", r[i].peer_tg_cpu);
                    lrgd_json_knum(&j, "tg_vs_llamacpp_cpu", r[i].tg_cpu / r[i].peer_tg_cpu);
                }
            }
        }
        for (int k = 0; k < n; k++)
            if (!strcmp(r[k].model, r[i].model) && r[k].type == r[i].type && r[k].threads == 1 && k != i) {
                lrgd_json_knum(&j, "pp_speedup_vs_1_thread", r[i].pp_best / r[k].pp_best);
                if (r[i].tg_tokens > 0) lrgd_json_knum(&j, "tg_speedup_vs_1_thread", r[i].tg_best / r[k].tg_best);
            }
        lrgd_json_obj_end(&j);
    }
    lrgd_json_arr_end(&j);
    lrgd_json_obj_end(&j);
    fputc('\n', af.f);
    if (lrgd_afile_commit(&af) != LRGD_OK) {
        fprintf(stderr, "bench_forward: %s\n", lrgd_last_error());
        return 1;
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_forward [--quick] [--model FILE] [--peer DIR] [--only NAME] [--types f32,q8_0]\n"
                    "                     [--threads 1,2] [--reps N] [--tg N] [--no-tg] [OUT.json]\n");
    return 2;
}

int main(int argc, char **argv)
{
    lrgd_wait_policy_exec(argv); /* the lrgd tool's waiting policy */
    int quick = 0, reps = -1, tg = -1;
    const char *out = NULL, *model_path = NULL, *types = "f32,q8_0", *threads = "1,2";
    char def[4096], tmpdir[] = "/tmp/lrgd-bench-XXXXXX";
    opts o = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--no-tg")) tg = 0;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "--peer") && i + 1 < argc) o.peer_dir = argv[++i];
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) o.only = argv[++i];
        else if (!strcmp(argv[i], "--types") && i + 1 < argc) types = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tg") && i + 1 < argc) tg = atoi(argv[++i]);
        else if (argv[i][0] == '-' || out) return usage();
        else out = argv[i];
    }
    if (strstr(types, "f32")) o.types[o.n_types++] = 0;
    if (strstr(types, "q8_0")) o.types[o.n_types++] = 1;
    for (const char *p = threads; *p && o.n_threads < 8;) {
        int t = (int)strtol(p, (char **)&p, 10);
        if (t < 1 || t > 1024 || (*p && *p != ',')) return usage();
        o.threads[o.n_threads++] = t;
        if (*p == ',') p++;
    }
    if (!o.n_types || !o.n_threads) return usage();
    o.reps = reps > 0 ? reps : quick ? 1 : 3;
    o.tg = tg >= 0 ? tg : quick ? 32 : 128;
    if (!model_path) {
        const char *sh = getenv("LRGD_SHARED");
        snprintf(def, sizeof def, "%s/models/stories260K.bin", sh ? sh : "../shared");
        model_path = def;
    }
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "bench_forward: cannot create %s\n", tmpdir);
        return 1;
    }
    o.tmpdir = tmpdir;
    double load0[3] = {0, 0, 0};
    getloadavg(load0, 3);
    printf("load average at start: %.2f %.2f %.2f; OMP_WAIT_POLICY=%s; OpenBLAS core %s%s; lrgd kernels %s\n",
           load0[0], load0[1], load0[2], getenv("OMP_WAIT_POLICY"), openblas_get_corename(),
           getenv("OPENBLAS_CORETYPE") ? " (set by OPENBLAS_CORETYPE)" : "", lrgd_kernels_active()->name);
    print_header(o.peer_dir != NULL);

    result res[MAX_RESULTS];
    int n = 0, fails = 0;
    lrgd_model *m = NULL;
    if (!o.only || strstr("stories260K", o.only)) {
        if (lrgd_model_load(model_path, &m) != LRGD_OK) {
            fprintf(stderr, "bench_forward: %s\n", lrgd_last_error());
            rmdir(tmpdir);
            return 1;
        }
        fails += bench_model(m, "stories260K", &o, res, &n);
        lrgd_model_free(m);
    }
    for (int kv = 8; kv >= 4; kv -= 4) {
        lrgd_config c = {.dim = 512, .hidden_dim = 1376, .n_layers = 8, .n_heads = 8, .n_kv_heads = kv,
                         .head_dim = 64, .vocab_size = 32000, .seq_len = 1024, .norm_eps = 1e-5f,
                         .rope_base = 10000.0f, .rope_type = LRGD_ROPE_NORM, .attn = LRGD_ATTN_SOFTMAX, .tied = 0};
        char name[64];
        snprintf(name, sizeof name, "random-8L-d512-kv%d", kv);
        if (o.only && !strstr(name, o.only)) continue;
        if (lrgd_model_new_random(&c, 7, &m) != LRGD_OK) {
            fprintf(stderr, "bench_forward: %s\n", lrgd_last_error());
            rmdir(tmpdir);
            return 1;
        }
        fails += bench_model(m, name, &o, res, &n);
        lrgd_model_free(m);
    }
    rmdir(tmpdir);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++)
            if (k != i && res[i].threads == 2 && res[k].threads == 1 && res[i].type == res[k].type &&
                !strcmp(res[i].model, res[k].model))
                printf("%-20s %-5s 2 threads over 1: pp %.2fx, tg %.2fx (wall); busiest thread's CPU: pp %.2fx, "
                       "tg %.2fx; CPU per token 2 threads/1: pp %.2fx, tg %.2fx\n",
                       res[i].model, res[i].type, res[i].pp_best / res[k].pp_best,
                       res[k].tg_best > 0 ? res[i].tg_best / res[k].tg_best : 0, res[i].pp_crit / res[k].pp_crit,
                       res[k].tg_crit > 0 ? res[i].tg_crit / res[k].tg_crit : 0, res[k].pp_cpu / res[i].pp_cpu,
                       res[k].tg_cpu > 0 ? res[k].tg_cpu / res[i].tg_cpu : 0);
    double l[3] = {0, 0, 0};
    getloadavg(l, 3);
    printf("load average at end: %.2f %.2f %.2f\n", l[0], l[1], l[2]);
    if (o.peer_dir) printf("ratios: lrgd tokens/s over llama.cpp tokens/s (best of reps each), one after the other\n");
    if (out && write_json(out, res, n, quick, load0)) return 1;
    if (out) printf("wrote %s\n", out);
    return fails ? 1 : 0;
}
