/* Forward-pass throughput: prompt processing (one batch of 512 tokens, logits
 * of the last one) and decoding (one token per call with its logits, from an
 * empty cache), on stories260K and on random 8-layer d=512 models, at 1 and 2
 * threads; tokens/s from the mean time of the repetitions, after a warm-up.
 * Prints a table with ratios measured in the same run (2 threads over 1,
 * batched prompt over decoding, and lrgd over llama.cpp with --peer) and
 * writes JSON atomically.
 *
 * usage: bench_forward [--quick] [--model FILE] [--peer DIR] [OUT.json]
 *   --model FILE  the stories260K checkpoint (default $LRGD_SHARED/models/stories260K.bin,
 *                 else ../shared/models/stories260K.bin)
 *   --peer DIR    bench/llamacpp with node_modules installed (bench/llamacpp/setup.sh):
 *                 each model is saved as F32 GGUF and llama.cpp's bench.mjs runs the same
 *                 pp/tg shapes with an F32 KV cache, right after lrgd, at the same threads
 *   --quick       one repetition and 32 decoded tokens (a smoke run) */
#include "core/core.h"
#include "lrgd/gguf.h"
#include "lrgd/lrgd.h"
#include "perf/perf.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { PP = 512 };

typedef struct result {
    char model[64];
    long long params;
    int threads, pp_tokens, tg_tokens, reps;
    double pp_tok_s, tg_tok_s;      /* tokens / mean seconds */
    double peer_pp_tok_s, peer_tg_tok_s; /* llama.cpp, 0 when not measured */
} result;

static int run_one(const lrgd_model *m, const char *name, int threads, int reps, int tg, result *r)
{
    lrgd_perf_fwd f;
    lrgd_status st = lrgd_set_threads(threads);
    if (st == LRGD_OK) st = lrgd_perf_forward(m, PP, tg, reps, &f);
    if (st != LRGD_OK) {
        fprintf(stderr, "bench_forward: %s: %s\n", name, lrgd_last_error());
        return 1;
    }
    snprintf(r->model, sizeof r->model, "%s", name);
    r->params = lrgd_perf_params(lrgd_model_config(m));
    r->threads = threads;
    r->pp_tokens = PP;
    r->tg_tokens = tg;
    r->reps = reps;
    r->pp_tok_s = PP / f.pp_mean_s;
    r->tg_tok_s = tg / f.tg_mean_s;
    r->peer_pp_tok_s = r->peer_tg_tok_s = 0;
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

/* llama.cpp on the same model (saved as F32 GGUF), same shapes and threads. */
static void run_peer(const char *peer_dir, const char *gguf, int threads, int reps, int tg, result *r)
{
    char json[4200], cmd[9000];
    snprintf(json, sizeof json, "%s.peer.json", gguf);
    snprintf(cmd, sizeof cmd,
             "node '%s/bench.mjs' --model '%s' --threads %d --pp %d --tg %d --reps %d --kv f32 --json '%s' >/dev/null",
             peer_dir, gguf, threads, PP, tg, reps, json);
    int rc = system(cmd);
    char *text = NULL;
    if (rc != 0 || lrgd_read_file(json, &text, NULL) != LRGD_OK) {
        fprintf(stderr, "bench_forward: llama.cpp peer failed (exit %d): %s\n", rc, cmd);
        return;
    }
    r->peer_pp_tok_s = json_num_in(text, "pp", "tokens_per_s");
    r->peer_tg_tok_s = json_num_in(text, "tg", "tokens_per_s");
    lrgd_free(text);
    unlink(json);
}

static void print_row(const result *r)
{
    printf("%-22s %7d %12.1f %12.1f %8.1fx", r->model, r->threads, r->pp_tok_s, r->tg_tok_s, r->pp_tok_s / r->tg_tok_s);
    if (r->peer_pp_tok_s > 0)
        printf(" %12.1f %12.1f %8.2fx %8.2fx", r->peer_pp_tok_s, r->peer_tg_tok_s, r->pp_tok_s / r->peer_pp_tok_s,
               r->tg_tok_s / r->peer_tg_tok_s);
    putchar('\n');
    fflush(stdout);
}

/* Both thread counts for one model: lrgd, then (with a peer) llama.cpp. */
static int bench_model(const lrgd_model *m, const char *name, const char *peer_dir, const char *tmpdir, int reps,
                       int tg, result *res, int *n)
{
    char gguf[4096] = "";
    if (peer_dir) {
        snprintf(gguf, sizeof gguf, "%s/%s.gguf", tmpdir, name);
        if (lrgd_model_save_gguf(m, gguf, LRGD_F32, name) != LRGD_OK) {
            fprintf(stderr, "bench_forward: %s: %s (no peer)\n", name, lrgd_last_error());
            gguf[0] = 0;
        }
    }
    int fails = 0;
    for (int t = 1; t <= 2; t++) {
        result *r = &res[*n];
        if (run_one(m, name, t, reps, tg, r) != 0) { fails++; continue; }
        if (gguf[0]) run_peer(peer_dir, gguf, t, reps, tg, r);
        print_row(r);
        (*n)++;
    }
    if (gguf[0]) unlink(gguf);
    return fails;
}

static int write_json(const char *path, const result *r, int n, int quick)
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
    lrgd_json_kstr(&j, "pp", "one eval of 512 tokens (n_batch 512), logits of the last; tokens / mean time of reps");
    lrgd_json_kstr(&j, "tg", "tg_tokens evals of 1 token with logits, from an empty cache; tokens / mean time of reps");
    lrgd_json_kstr(&j, "peer", "llama.cpp (node-llama-cpp 3.21.1, bench/llamacpp/bench.mjs), F32 GGUF, F32 KV cache");
    lrgd_json_key(&j, "results");
    lrgd_json_arr_begin(&j);
    for (int i = 0; i < n; i++) {
        lrgd_json_obj_begin(&j);
        lrgd_json_kstr(&j, "model", r[i].model);
        lrgd_json_kint(&j, "params", r[i].params);
        lrgd_json_kint(&j, "threads", r[i].threads);
        lrgd_json_kint(&j, "reps", r[i].reps);
        lrgd_json_kint(&j, "pp_tokens", r[i].pp_tokens);
        lrgd_json_knum(&j, "pp_tok_s", r[i].pp_tok_s);
        lrgd_json_kint(&j, "tg_tokens", r[i].tg_tokens);
        lrgd_json_knum(&j, "tg_tok_s", r[i].tg_tok_s);
        lrgd_json_knum(&j, "pp_over_tg", r[i].pp_tok_s / r[i].tg_tok_s);
        if (r[i].peer_pp_tok_s > 0) {
            lrgd_json_knum(&j, "llamacpp_pp_tok_s", r[i].peer_pp_tok_s);
            lrgd_json_knum(&j, "llamacpp_tg_tok_s", r[i].peer_tg_tok_s);
            lrgd_json_knum(&j, "pp_vs_llamacpp", r[i].pp_tok_s / r[i].peer_pp_tok_s);
            lrgd_json_knum(&j, "tg_vs_llamacpp", r[i].tg_tok_s / r[i].peer_tg_tok_s);
        }
        /* peer in the same run: the same model at 1 thread */
        for (int k = 0; k < n; k++)
            if (!strcmp(r[k].model, r[i].model) && r[k].threads == 1) {
                lrgd_json_knum(&j, "pp_speedup_vs_1_thread", r[i].pp_tok_s / r[k].pp_tok_s);
                lrgd_json_knum(&j, "tg_speedup_vs_1_thread", r[i].tg_tok_s / r[k].tg_tok_s);
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

int main(int argc, char **argv)
{
    int quick = 0;
    const char *out = NULL, *model_path = NULL, *peer_dir = NULL;
    char def[4096], tmpdir[] = "/tmp/lrgd-bench-XXXXXX";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "--peer") && i + 1 < argc) peer_dir = argv[++i];
        else if (argv[i][0] == '-' || out) {
            fprintf(stderr, "usage: bench_forward [--quick] [--model FILE] [--peer DIR] [OUT.json]\n");
            return 2;
        } else out = argv[i];
    }
    if (!model_path) {
        const char *sh = getenv("LRGD_SHARED");
        snprintf(def, sizeof def, "%s/models/stories260K.bin", sh ? sh : "../shared");
        model_path = def;
    }
    if (peer_dir && !mkdtemp(tmpdir)) {
        fprintf(stderr, "bench_forward: cannot create %s\n", tmpdir);
        return 1;
    }
    const int reps = quick ? 1 : 3, tg = quick ? 32 : 128;
    result res[16];
    int n = 0, fails = 0;
    printf("%-22s %7s %12s %12s %9s", "model", "threads", "pp512 tok/s", "tg tok/s", "pp/tg");
    if (peer_dir) printf(" %12s %12s %9s %9s", "llama.cpp pp", "llama.cpp tg", "pp ratio", "tg ratio");
    putchar('\n');

    lrgd_model *m = NULL;
    if (lrgd_model_load(model_path, &m) != LRGD_OK) {
        fprintf(stderr, "bench_forward: %s\n", lrgd_last_error());
        return 1;
    }
    fails += bench_model(m, "stories260K", peer_dir, tmpdir, reps, tg, res, &n);
    lrgd_model_free(m);

    for (int kv = 8; kv >= 4; kv -= 4) {
        lrgd_config c = {.dim = 512, .hidden_dim = 1376, .n_layers = 8, .n_heads = 8, .n_kv_heads = kv,
                         .head_dim = 64, .vocab_size = 32000, .seq_len = 1024, .norm_eps = 1e-5f,
                         .rope_base = 10000.0f, .rope_type = LRGD_ROPE_NORM, .attn = LRGD_ATTN_SOFTMAX, .tied = 0};
        char name[64];
        snprintf(name, sizeof name, "random-8L-d512-kv%d", kv);
        if (lrgd_model_new_random(&c, 7, &m) != LRGD_OK) {
            fprintf(stderr, "bench_forward: %s\n", lrgd_last_error());
            return 1;
        }
        fails += bench_model(m, name, peer_dir, tmpdir, reps, tg, res, &n);
        lrgd_model_free(m);
    }
    if (peer_dir) rmdir(tmpdir);
    for (int i = 1; i < n; i++)
        if (res[i].threads == 2 && res[i - 1].threads == 1 && !strcmp(res[i].model, res[i - 1].model))
            printf("%-22s 2 threads over 1: pp %.2fx, tg %.2fx\n", res[i].model, res[i].pp_tok_s / res[i - 1].pp_tok_s,
                   res[i].tg_tok_s / res[i - 1].tg_tok_s);
    if (peer_dir) printf("ratios: lrgd tokens/s over llama.cpp tokens/s, measured one after the other\n");
    if (out && write_json(out, res, n, quick)) return 1;
    if (out) printf("wrote %s\n", out);
    return fails ? 1 : 0;
}
