/* Evaluation throughput of the embedded model: full-ranking ICL evaluation
 * (users/s) with k similar demonstrations, next to its peers measured in
 * the same run on the same users and prompts:
 *  - batched: the model scorer as `lrgd eval` runs it (lrgd_evaluate; prompts
 *    through model/batch.h, one item GEMM per batch of users);
 *  - training forward: the same prompts through lrgd_tmodel_forward (what the
 *    scorer ran before batch.h: every activation kept, every row through
 *    every layer), then the same item GEMM;
 *  - engine: one prompt at a time through lrgd_eval (the unbatched path), on
 *    a subsample;
 *  - shared prefix: prompts [BOS | the same k demonstrations for every user |
 *    history ANS] through model/batch.h with the prefix computed once, and
 *    with the whole prompt per user (no prefix); the largest difference of
 *    their final hidden states is printed next to the ratio.
 * Wall seconds and process CPU seconds (the machine may be shared: the CPU
 * seconds compare the work). Runs with OMP_WAIT_POLICY=PASSIVE, as the lrgd
 * tool does, unless the caller set one. Writes JSON atomically.
 *
 * usage: bench_eval --model M [--data FILE] [--users N] [--engine-users N] [--k K]
 *                   [--threads N] [--reps R] [OUT.json]
 *   --data FILE         default $LRGD_SHARED/datasets/amazon/Beauty.txt
 *   --users N           evaluated users (default: all)
 *   --engine-users N    the engine path's subsample (default 1000)
 *   --reps R            best of R timed runs of each (default 2) */
#include "core/core.h"
#include "lrgd/eval.h"
#include "model/batch.h"
#include "train/train_impl.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

typedef struct timing {
    double wall, cpu; /* best of the reps */
} timing;

static void keep_best(timing *t, double w, double c)
{
    if (w < t->wall) t->wall = w;
    if (c < t->cpu) t->cpu = c;
}

#define BATCH 64 /* users per scorer call, as lrgd eval's default --batch */

/* Prompts of users[0..n) (k demonstrations: similar per user, or the same
 * `fixed` ones for all), packed into e. */
static lrgd_status build_prompts(tm_ep *e, const lrgd_demo_index *ix, const lrgd_split *sp, const int32_t *users, int n,
                                 int k, const int32_t *fixed, int seq_len)
{
    tm_ep_reset(e);
    for (int i = 0; i < n; i++) {
        const int32_t *h;
        int nh;
        lrgd_split_history(sp, LRGD_STEP_TEST, users[i], &h, &nh);
        if (fixed) {
            int nq = nh < 50 ? nh : 50;
            tm_ep_query q = {users[i], h + (nh - nq), nq, nh - nq, -1, -1, 0, 0, 0};
            LRGD_TRY(tm_ep_add(e, ix, &q, fixed, k, seq_len, NULL));
        } else
            LRGD_TRY(tm_ep_add_prompt(e, ix, LRGD_DEMOS_SIMILAR, k, 42, users[i], h, nh, 50, seq_len));
    }
    return LRGD_OK;
}

int main(int argc, char **argv)
{
    lrgd_wait_policy_exec(argv); /* the lrgd tool's waiting policy */
    const char *data = NULL, *out = NULL, *model = NULL;
    int n_users = 0, n_engine = 1000, k = 3, threads = 0, reps = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--users") && i + 1 < argc) n_users = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--engine-users") && i + 1 < argc) n_engine = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--k") && i + 1 < argc) k = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !out) out = argv[i];
        else {
            fprintf(stderr, "usage: bench_eval --model M [--data FILE] [--users N] [--engine-users N] [--k K] "
                            "[--threads N] [--reps R] [OUT.json]\n");
            return 2;
        }
    }
    if (!model || n_users < 0 || n_engine < 1 || k < 1 || k > 64 || reps < 1 || threads < 0) {
        fprintf(stderr, "bench_eval: --model is required; bad option value\n");
        return 2;
    }
    char dpath[1024];
    if (!data) {
        const char *sh = getenv("LRGD_SHARED");
        snprintf(dpath, sizeof dpath, "%s/datasets/amazon/Beauty.txt", sh ? sh : "../shared");
        data = dpath;
    }
    if (threads > 0) lrgd_set_threads(threads);
    lrgd_set_quiet(1);
    lrgd_dataset *ds = NULL;
    lrgd_split *sp = NULL;
    lrgd_model *m = NULL;
    lrgd_tmodel *t = NULL;
    lrgd_demo_index *ix = NULL;
    lrgd_mbatch *mb = NULL;
    lrgd_state *state = NULL;
    tm_ep ep;
    memset(&ep, 0, sizeof ep);
    float *scores = NULL, *hidden = NULL, *hidden2 = NULL, *logits = NULL;
    int *soff = NULL, *stok = NULL;
    lrgd_status st = lrgd_dataset_load(data, LRGD_DATA_AUTO, &ds);
    if (st == LRGD_OK) st = lrgd_split_loo(ds, &sp);
    if (st == LRGD_OK) st = lrgd_model_load(model, &m);
    if (st == LRGD_OK) st = lrgd_tmodel_from_model(m, &t);
    if (st == LRGD_OK) st = lrgd_demo_index_new(sp, LRGD_STEP_TEST, 20, &ix);
    if (st == LRGD_OK) st = lrgd_mbatch_new(t->view, &mb);
    if (st == LRGD_OK) st = lrgd_state_new(m, 0, 0, &state);
    if (st != LRGD_OK) {
        fprintf(stderr, "bench_eval: %s\n", lrgd_last_error());
        return 1;
    }
    const lrgd_config *c = &t->cfg;
    int N = lrgd_split_n_users(sp), V = t->n_items, D = c->dim;
    if (n_users == 0 || n_users > N) n_users = N;
    if (n_engine > n_users) n_engine = n_users;
    const int32_t *users = lrgd_split_users(sp);
    scores = lrgd_alloc_n((size_t)BATCH * V, sizeof(float));
    hidden = lrgd_alloc_n((size_t)BATCH * 256 * D, sizeof(float));
    hidden2 = lrgd_alloc_n((size_t)BATCH * D, sizeof(float));
    logits = lrgd_alloc_n((size_t)c->vocab_size, sizeof(float));
    soff = malloc(sizeof(int) * (BATCH + 1));
    stok = malloc(sizeof(int) * (size_t)BATCH * 256);
    if (!scores || !hidden || !hidden2 || !logits || !soff || !stok) {
        fprintf(stderr, "bench_eval: out of memory\n");
        return 1;
    }
    printf("bench_eval: %s (%d users evaluated, %d items), %s: L=%d D=%d, k=%d, %d thread(s), best of %d\n", data,
           n_users, V, model, c->n_layers, D, k, lrgd_get_threads(), reps);

    /* 1. lrgd eval's path */
    timing ev = {1e300, 1e300};
    double ndcg = 0;
    for (int r = 0; r < reps && st == LRGD_OK; r++) {
        lrgd_model_scorer_opts mo;
        lrgd_model_scorer_opts_init(&mo);
        mo.k = k;
        lrgd_scorer sc;
        lrgd_eval_opts eo;
        lrgd_eval_opts_init(&eo);
        eo.users = users;
        eo.n_users = n_users;
        eo.batch = BATCH;
        lrgd_eval_result *res = NULL;
        double w0 = lrgd_now(), c0 = cpu_seconds();
        st = lrgd_scorer_model(sp, LRGD_STEP_TEST, model, &mo, &sc);
        if (st == LRGD_OK) st = lrgd_evaluate(sp, LRGD_STEP_TEST, &sc, &eo, &res);
        keep_best(&ev, lrgd_now() - w0, cpu_seconds() - c0);
        if (res) {
            double s = 0;
            for (int i = 0; i < res->n; i++) s += lrgd_metric_value(LRGD_NDCG10, res->ranks[i]);
            ndcg = s / res->n;
        }
        lrgd_eval_result_free(res);
        lrgd_scorer_release(&sc);
    }

    /* 2. the training forward on the same prompts */
    timing tf = {1e300, 1e300};
    long long n_tok = 0;
    for (int r = 0; r < reps && st == LRGD_OK; r++) {
        double w0 = lrgd_now(), c0 = cpu_seconds();
        n_tok = 0;
        for (int b0 = 0; b0 < n_users && st == LRGD_OK; b0 += BATCH) {
            int bn = n_users - b0 < BATCH ? n_users - b0 : BATCH;
            st = build_prompts(&ep, ix, sp, users + b0, bn, k, NULL, c->seq_len);
            lrgd_tbatch tb = {ep.n_seq, ep.off, ep.tok, NULL, NULL};
            if (st == LRGD_OK) st = lrgd_tmodel_forward(t, &tb, 0, NULL, NULL, hidden);
            if (st != LRGD_OK) break;
            n_tok += ep.n_tok;
            for (int i = 0; i < ep.n_seq; i++)
                memmove(hidden + (size_t)i * D, hidden + (size_t)ep.ans_row[i] * D, (size_t)D * sizeof(float));
            lrgd_tmodel_item_scores(t, hidden, ep.n_seq, scores);
        }
        keep_best(&tf, lrgd_now() - w0, cpu_seconds() - c0);
    }

    /* 3. the engine, one prompt at a time */
    timing en = {1e300, 1e300};
    for (int r = 0; r < reps && st == LRGD_OK; r++) {
        double w0 = lrgd_now(), c0 = cpu_seconds();
        for (int i = 0; i < n_engine && st == LRGD_OK; i++) {
            st = build_prompts(&ep, ix, sp, users + i, 1, k, NULL, c->seq_len);
            if (st == LRGD_OK) st = lrgd_state_truncate(state, 0);
            if (st == LRGD_OK) st = lrgd_eval(state, ep.tok, ep.n_tok, logits, 0);
        }
        keep_best(&en, lrgd_now() - w0, cpu_seconds() - c0);
    }

    /* 4. a prefix every prompt shares: k fixed demonstrations */
    int32_t fixed[64];
    int nf = tm_random_demos(ix, -1, k, 7, 11, fixed), pre_len = 0;
    timing shared = {1e300, 1e300}, whole = {1e300, 1e300};
    double max_diff = 0;
    for (int r = 0; r < reps && st == LRGD_OK; r++)
        for (int mode = 0; mode < 2 && st == LRGD_OK; mode++) {
            double w0 = lrgd_now(), c0 = cpu_seconds();
            for (int b0 = 0; b0 < n_users && st == LRGD_OK; b0 += BATCH) {
                int bn = n_users - b0 < BATCH ? n_users - b0 : BATCH;
                st = build_prompts(&ep, ix, sp, users + b0, bn, nf, fixed, c->seq_len);
                if (st != LRGD_OK) break;
                /* the shared part: BOS and the demonstrations (every prompt up to its query) */
                int P = tm_ep_length(ix, 0, fixed, nf) - 1;
                for (int q = 0; q < ep.n_seq && st == LRGD_OK; q++)
                    if (ep.off[q + 1] - ep.off[q] <= P || memcmp(ep.tok + ep.off[q], ep.tok, (size_t)P * sizeof(int)))
                        st = lrgd_fail(LRGD_E_RUNTIME, "prompt %d does not start with the fixed demonstrations", q);
                pre_len = P;
                if (mode == 0 && b0 == 0) st = lrgd_mbatch_set_prefix(mb, ep.tok, P);
                if (mode == 1) st = lrgd_mbatch_set_prefix(mb, NULL, 0);
                int Pm = mode == 0 ? P : 0;
                soff[0] = 0;
                for (int q = 0; q < ep.n_seq && st == LRGD_OK; q++) {
                    int len = ep.off[q + 1] - ep.off[q] - Pm;
                    memcpy(stok + soff[q], ep.tok + ep.off[q] + Pm, (size_t)len * sizeof(int));
                    soff[q + 1] = soff[q] + len;
                }
                if (st == LRGD_OK) st = lrgd_mbatch_last(mb, ep.n_seq, soff, stok, mode == 0 ? hidden : hidden2);
                if (st == LRGD_OK) lrgd_tmodel_item_scores(t, mode == 0 ? hidden : hidden2, ep.n_seq, scores);
                if (st == LRGD_OK && mode == 1 && b0 == 0 && r == 0) {
                    /* the first batch again with the prefix, to compare the hidden states */
                    st = lrgd_mbatch_set_prefix(mb, ep.tok, P);
                    soff[0] = 0;
                    for (int q = 0; q < ep.n_seq; q++) {
                        int len = ep.off[q + 1] - ep.off[q] - P;
                        memcpy(stok + soff[q], ep.tok + ep.off[q] + P, (size_t)len * sizeof(int));
                        soff[q + 1] = soff[q] + len;
                    }
                    if (st == LRGD_OK) st = lrgd_mbatch_last(mb, ep.n_seq, soff, stok, hidden);
                    for (size_t i = 0; st == LRGD_OK && i < (size_t)ep.n_seq * D; i++) {
                        double d = hidden[i] - hidden2[i];
                        if (d < 0) d = -d;
                        if (d > max_diff) max_diff = d;
                    }
                    if (st == LRGD_OK) st = lrgd_mbatch_set_prefix(mb, NULL, 0);
                }
            }
            if (mode == 0) keep_best(&shared, lrgd_now() - w0, cpu_seconds() - c0);
            else keep_best(&whole, lrgd_now() - w0, cpu_seconds() - c0);
        }
    if (st != LRGD_OK) {
        fprintf(stderr, "bench_eval: %s\n", lrgd_last_error());
        return 1;
    }

    printf("\nfull-ranking evaluation, k=%d similar demonstrations (%lld prompt tokens, %.1f per user):\n", k, n_tok,
           (double)n_tok / n_users);
    printf("  %-34s %9s %9s %12s %12s\n", "path", "wall s", "CPU s", "users/s", "CPU vs eval");
    printf("  %-34s %9.2f %9.2f %12.0f %12.2f\n", "lrgd eval (batch.h)", ev.wall, ev.cpu, n_users / ev.wall, 1.0);
    printf("  %-34s %9.2f %9.2f %12.0f %12.2f\n", "training forward (before batch.h)", tf.wall, tf.cpu,
           n_users / tf.wall, tf.cpu / ev.cpu);
    printf("  %-34s %9.2f %9.2f %12.0f %12.2f\n", "engine, one prompt at a time", en.wall * n_users / n_engine,
           en.cpu * n_users / n_engine, n_engine / en.wall, en.cpu * n_users / n_engine / ev.cpu);
    printf("  (engine: %d users timed, scaled to %d; eval NDCG@10 %.4f)\n", n_engine, n_users, ndcg);
    printf("\nshared prefix: [BOS | %d fixed demonstrations] = %d tokens for every user:\n", nf, pre_len);
    printf("  computed once:      wall %.2f s, CPU %.2f s, %.0f users/s\n", shared.wall, shared.cpu,
           n_users / shared.wall);
    printf("  in every prompt:    wall %.2f s, CPU %.2f s, %.0f users/s\n", whole.wall, whole.cpu, n_users / whole.wall);
    printf("  ratio (CPU) %.2fx; largest |hidden difference| %.3g\n", whole.cpu / shared.cpu, max_diff);

    if (out) {
        lrgd_afile af;
        st = lrgd_afile_open(&af, out);
        if (st == LRGD_OK) {
            lrgd_json j;
            lrgd_json_init(&j, af.f, 1);
            lrgd_json_obj_begin(&j);
            lrgd_json_kstr(&j, "bench", "eval");
            lrgd_json_kstr(&j, "data", data);
            lrgd_json_kstr(&j, "model", model);
            lrgd_json_kint(&j, "threads", lrgd_get_threads());
            lrgd_json_kint(&j, "users", n_users);
            lrgd_json_kint(&j, "k", k);
            lrgd_json_kint(&j, "reps", reps);
            lrgd_json_kint(&j, "prompt_tokens", n_tok);
            lrgd_json_knum(&j, "ndcg10", ndcg);
            const char *names[] = {"eval_batched", "training_forward", "engine_scaled", "shared_prefix_once",
                                   "shared_prefix_in_every_prompt"};
            timing en_s = {en.wall * n_users / n_engine, en.cpu * n_users / n_engine};
            timing *ts[] = {&ev, &tf, &en_s, &shared, &whole};
            for (int i = 0; i < 5; i++) {
                lrgd_json_key(&j, names[i]);
                lrgd_json_obj_begin(&j);
                lrgd_json_knum(&j, "wall_s", ts[i]->wall);
                lrgd_json_knum(&j, "cpu_s", ts[i]->cpu);
                lrgd_json_knum(&j, "users_per_s", n_users / ts[i]->wall);
                lrgd_json_obj_end(&j);
            }
            lrgd_json_kint(&j, "engine_users_timed", n_engine);
            lrgd_json_kint(&j, "shared_prefix_tokens", pre_len);
            lrgd_json_knum(&j, "shared_prefix_max_hidden_diff", max_diff);
            lrgd_json_obj_end(&j);
            fputc('\n', af.f);
            st = lrgd_afile_commit(&af);
        }
        if (st != LRGD_OK) {
            fprintf(stderr, "bench_eval: %s\n", lrgd_last_error());
            return 1;
        }
        printf("\nwrote %s\n", out);
    }
    tm_ep_free(&ep);
    lrgd_free(scores);
    lrgd_free(hidden);
    lrgd_free(hidden2);
    lrgd_free(logits);
    free(soff);
    free(stok);
    lrgd_state_free(state);
    lrgd_mbatch_free(mb);
    lrgd_demo_index_free(ix);
    lrgd_tmodel_free(t);
    lrgd_model_free(m);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
    return 0;
}
