/* Forward-pass throughput: prompt processing (one batch of 512 tokens, logits
 * of the last one) and decoding (one token per call with its logits, from an
 * empty cache), on stories260K and on random 8-layer d=512 models, at 1 and 2
 * threads. Prints a table with two ratios measured in the same run (2 threads
 * over 1, batched prompt over decoding) and writes JSON atomically.
 *
 * usage: bench_forward [--quick] [--model FILE] [OUT.json]
 *   --model FILE  the stories260K checkpoint (default $LRGD_SHARED/models/stories260K.bin,
 *                 else ../shared/models/stories260K.bin)
 *   --quick       one repetition and 32 decoded tokens (a smoke run) */
#include "core/core.h"
#include "lrgd/lrgd.h"

#include <stdlib.h>
#include <string.h>

enum { PP = 512 };

typedef struct result {
    char model[64];
    long long params;
    int threads, pp_tokens, tg_tokens, reps;
    double pp_tok_s, tg_tok_s; /* best of reps */
} result;

static long long count_params(const lrgd_config *c)
{
    long long D = c->dim, F = c->hidden_dim, kvd = (long long)c->n_kv_heads * c->head_dim;
    long long per_layer = 2 * D + 2 * D * D + 2 * D * kvd + 3 * D * F;
    return (long long)c->vocab_size * D * (c->tied ? 1 : 2) + c->n_layers * per_layer + D;
}

static int run_one(const lrgd_model *m, const char *name, int threads, int reps, int tg, result *r)
{
    const lrgd_config *c = lrgd_model_config(m);
    lrgd_status st = lrgd_set_threads(threads);
    int n_ctx = PP > tg ? PP : tg;
    lrgd_state *s = NULL;
    int *tok = malloc(sizeof(int) * PP);
    float *logits = malloc(sizeof(float) * (size_t)c->vocab_size);
    if (st == LRGD_OK) st = lrgd_state_new(m, n_ctx, PP, &s);
    if (st != LRGD_OK || !tok || !logits) {
        fprintf(stderr, "bench_forward: %s: %s\n", name, lrgd_last_error());
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
    double best_pp = 0, best_tg = 0;
    for (int rep = 0; rep < reps && st == LRGD_OK; rep++) {
        lrgd_state_truncate(s, 0);
        double t0 = lrgd_now();
        st = lrgd_eval(s, tok, PP, logits, 0);
        double dt = lrgd_now() - t0;
        if (PP / dt > best_pp) best_pp = PP / dt;

        lrgd_state_truncate(s, 0);
        t0 = lrgd_now();
        for (int i = 0; i < tg && st == LRGD_OK; i++) st = lrgd_eval(s, &tok[i % PP], 1, logits, 0);
        dt = lrgd_now() - t0;
        if (tg / dt > best_tg) best_tg = tg / dt;
    }
    lrgd_state_free(s);
    free(tok);
    free(logits);
    if (st != LRGD_OK) {
        fprintf(stderr, "bench_forward: %s: %s\n", name, lrgd_last_error());
        return 1;
    }
    snprintf(r->model, sizeof r->model, "%s", name);
    r->params = count_params(c);
    r->threads = threads;
    r->pp_tokens = PP;
    r->tg_tokens = tg;
    r->reps = reps;
    r->pp_tok_s = best_pp;
    r->tg_tok_s = best_tg;
    printf("%-22s %7d %12.1f %12.1f %10.1fx\n", name, threads, best_pp, best_tg, best_pp / best_tg);
    fflush(stdout);
    return 0;
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
    lrgd_json_kstr(&j, "pp", "one eval of 512 tokens (n_batch 512), logits of the last; best of reps");
    lrgd_json_kstr(&j, "tg", "tg_tokens evals of 1 token with logits, from an empty cache; best of reps");
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
    const char *out = NULL, *model_path = NULL;
    char def[4096];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model_path = argv[++i];
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_forward [--quick] [--model FILE] [OUT.json]\n");
            return 2;
        } else out = argv[i];
    }
    if (!model_path) {
        const char *sh = getenv("LRGD_SHARED");
        snprintf(def, sizeof def, "%s/models/stories260K.bin", sh ? sh : "../shared");
        model_path = def;
    }
    const int reps = quick ? 1 : 3, tg = quick ? 32 : 128;
    result res[16];
    int n = 0, fails = 0;
    printf("%-22s %7s %12s %12s %11s\n", "model", "threads", "pp512 tok/s", "tg tok/s", "pp/tg");

    lrgd_model *m = NULL;
    if (lrgd_model_load(model_path, &m) != LRGD_OK) {
        fprintf(stderr, "bench_forward: %s\n", lrgd_last_error());
        return 1;
    }
    for (int t = 1; t <= 2; t++) fails += run_one(m, "stories260K", t, reps, tg, &res[n]) == 0 ? (n++, 0) : 1;
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
        for (int t = 1; t <= 2; t++) fails += run_one(m, name, t, reps, tg, &res[n]) == 0 ? (n++, 0) : 1;
        lrgd_model_free(m);
    }
    for (int i = 0; i < n; i++)
        if (res[i].threads == 2 && i > 0 && res[i - 1].threads == 1 && !strcmp(res[i].model, res[i - 1].model))
            printf("%-22s 2 threads over 1: pp %.2fx, tg %.2fx\n", res[i].model, res[i].pp_tok_s / res[i - 1].pp_tok_s,
                   res[i].tg_tok_s / res[i - 1].tg_tok_s);
    if (out && write_json(out, res, n, quick)) return 1;
    if (out) printf("wrote %s\n", out);
    return fails ? 1 : 0;
}
