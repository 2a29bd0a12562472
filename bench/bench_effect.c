/* Effect_D scoring per (user, demonstration) pair next to one ground-truth
 * forward pass, in the same run, in CPU seconds of the one thread doing the
 * work (the machine may be shared; a thread's CPU time is what it costs).
 *
 * Users: a seeded sample of a leave-one-out split; for each, the P most
 * similar training demonstrations (as `lrgd effect`), each encoded once into
 * one store, and one probe per user. Then:
 *  - fast, cold: lrgd_effect_score over every user's candidates in turn (the
 *    store is larger than the caches, so each entry comes from memory);
 *  - fast, warm: each user's candidates scored again right after (cached);
 *  - reference: ef_score_scaled, the term-by-term loop, on the same pairs;
 *  - truth: lrgd_effect_logp of [T | d | Q] for every pair (a forward pass
 *    with T's cache reused, and log p(y) over the items).
 * Best of R reps; writes JSON atomically.
 *
 * --matrix: U users against one shared pool of D demonstrations (those of D
 * other sampled users, each encoded once): the U x D matrix by one
 * lrgd_effect_score_matrix call (every user's query vectors in vector
 * lanes), the same pairs by lrgd_effect_score per user, and the ground-truth
 * forward pass on 8 x 25 of the pairs, same run, CPU time of the process at
 * 1 thread (lrgd_perf_effect_matrix_run, which lrgd bench runs too).
 *
 * usage: bench_effect --model M [--data FILE] [--users N] [--pool P] [--reps R] [--matrix] [OUT.json]
 *   --data FILE   default $LRGD_SHARED/datasets/amazon/Beauty.txt
 *   --users N     default 100 (--matrix: 256);  --pool P  default 50 (--matrix: 1000);  --reps R  default 5 */
#include "effect/effect_impl.h"
#include "lrgd/data.h"
#include "perf/perf.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* opens OUT atomically and writes the fields both modes begin with; the
 * caller adds its own and calls json_close */
static lrgd_status json_open(lrgd_afile *af, lrgd_json *j, const char *out, const char *bench, const char *data,
                             const char *model, long long users, long long pool, long long pairs)
{
    lrgd_status s_ = lrgd_afile_open(af, out);
    if (s_ != LRGD_OK) return s_;
    lrgd_json_init(j, af->f, 1);
    lrgd_json_obj_begin(j);
    lrgd_json_kstr(j, "bench", bench);
    lrgd_json_kstr(j, "data", data);
    lrgd_json_kstr(j, "model", model);
    lrgd_json_kint(j, "users", users);
    lrgd_json_kint(j, "pool", pool);
    lrgd_json_kint(j, "pairs", pairs);
    return LRGD_OK;
}

static lrgd_status json_close(lrgd_afile *af, lrgd_json *j)
{
    lrgd_json_obj_end(j);
    fputc('\n', af->f);
    return lrgd_afile_commit(af);
}

static int run_matrix(const char *model, const char *data, int U, int D, int reps, const char *out)
{
    lrgd_model *m = NULL;
    lrgd_dataset *ds = NULL;
    lrgd_split *sp = NULL;
    lrgd_perf_effect_matrix r;
    lrgd_status s_ = lrgd_model_load(model, &m);
    if (s_ == LRGD_OK) s_ = lrgd_dataset_load(data, LRGD_DATA_AUTO, &ds);
    if (s_ == LRGD_OK) s_ = lrgd_model_check_items(m, ds);
    if (s_ == LRGD_OK) s_ = lrgd_split_loo(ds, &sp);
    if (s_ == LRGD_OK) s_ = lrgd_perf_effect_matrix_run(m, sp, U, D, reps, 42, &r);
    if (s_ == LRGD_OK) {
        printf("bench_effect --matrix: %s, %s: %d users x a shared pool of %d demonstrations = %d pairs (%.2f tokens "
               "per demonstration), 1 thread, CPU time, best of %d\n",
               data, model, r.users, r.pool, r.pairs, r.tokens_per_demo, r.reps);
        printf("  Effect_D matrix (lrgd_effect_score_matrix)   %8.4f us/pair\n", r.us_matrix_per_pair);
        printf("  per user (lrgd_effect_score), same pairs     %8.4f us/pair  (%.1fx the matrix)\n",
               r.us_score_per_pair, r.us_score_per_pair / r.us_matrix_per_pair);
        printf("  ground-truth forward pass (%d pairs)        %8.1f us/pair\n", r.truth_pairs, r.us_truth_per_pair);
        printf("  truth / matrix scoring: %.0fx;  truth / per-user scoring: %.0fx\n",
               r.us_truth_per_pair / r.us_matrix_per_pair, r.us_truth_per_pair / r.us_score_per_pair);
        printf("  largest |matrix - per-user| / max(1e-3, |per-user|): %.3g\n", r.max_rel_diff);
    }
    if (s_ == LRGD_OK && out) {
        lrgd_afile af;
        lrgd_json j;
        s_ = json_open(&af, &j, out, "effect_matrix", data, model, r.users, r.pool, r.pairs);
        if (s_ == LRGD_OK) {
            lrgd_json_kint(&j, "truth_pairs", r.truth_pairs);
            lrgd_json_kint(&j, "reps", r.reps);
            lrgd_json_knum(&j, "tokens_per_demo", r.tokens_per_demo);
            lrgd_json_knum(&j, "us_per_pair_matrix", r.us_matrix_per_pair);
            lrgd_json_knum(&j, "us_per_pair_per_user_scoring", r.us_score_per_pair);
            lrgd_json_knum(&j, "us_per_pair_truth_forward", r.us_truth_per_pair);
            lrgd_json_knum(&j, "ratio_truth_over_matrix", r.us_truth_per_pair / r.us_matrix_per_pair);
            lrgd_json_knum(&j, "ratio_truth_over_per_user", r.us_truth_per_pair / r.us_score_per_pair);
            lrgd_json_knum(&j, "max_rel_diff_matrix_vs_per_user", r.max_rel_diff);
            s_ = json_close(&af, &j);
        }
        if (s_ == LRGD_OK) printf("  wrote %s\n", out);
    }
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
    lrgd_model_free(m);
    if (s_ != LRGD_OK) {
        fprintf(stderr, "bench_effect: %s\n", lrgd_last_error());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    lrgd_wait_policy_exec(argv); /* the lrgd tool's waiting policy */
    const char *data = NULL, *model = NULL, *out = NULL;
    int NU = -1, P = -1, reps = 5, matrix = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--matrix")) matrix = 1;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--users") && i + 1 < argc) NU = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pool") && i + 1 < argc) P = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !out) out = argv[i];
        else {
            fprintf(stderr, "usage: bench_effect --model M [--data FILE] [--users N] [--pool P] [--reps R] [--matrix] "
                            "[OUT.json]\n");
            return 2;
        }
    }
    if (NU < 0) NU = matrix ? 256 : 100;
    if (P < 0) P = matrix ? 1000 : 50;
    if (!model || NU < 1 || P < 1 || (!matrix && P > 1000) || reps < 1) {
        fprintf(stderr, "bench_effect: --model is required; bad option value\n");
        return 2;
    }
    char dpath[1024];
    if (!data) {
        const char *sh = getenv("LRGD_SHARED");
        snprintf(dpath, sizeof dpath, "%s/datasets/amazon/Beauty.txt", sh ? sh : "../shared");
        data = dpath;
    }
    lrgd_set_threads(1);
    lrgd_set_quiet(1);
    if (matrix) return run_matrix(model, data, NU, P, reps, out);
    lrgd_model *m = NULL;
    lrgd_dataset *ds = NULL;
    lrgd_split *sp = NULL;
    lrgd_demo_index *ix = NULL;
    lrgd_effect *e = NULL;
    lrgd_store *st = NULL;
    lrgd_status s_ = lrgd_model_load(model, &m);
    if (s_ == LRGD_OK) s_ = lrgd_dataset_load(data, LRGD_DATA_AUTO, &ds);
    if (s_ == LRGD_OK) s_ = lrgd_model_check_items(m, ds);
    if (s_ == LRGD_OK) s_ = lrgd_split_loo(ds, &sp);
    if (s_ == LRGD_OK && NU > lrgd_split_n_users(sp)) NU = lrgd_split_n_users(sp);
    if (s_ == LRGD_OK) s_ = lrgd_demo_index_new(sp, LRGD_STEP_VALID, 20, &ix);
    if (s_ == LRGD_OK) s_ = lrgd_effect_new(m, &e);
    if (s_ == LRGD_OK) s_ = lrgd_store_new(e, &st);
    int nu_all = ds ? lrgd_dataset_n_users(ds) : 0;
    int32_t *users = malloc(sizeof *users * (size_t)NU), *cu = malloc(sizeof *cu * (size_t)P);
    int *sid = malloc(sizeof *sid * (size_t)(nu_all ? nu_all : 1)), *ids = malloc(sizeof *ids * (size_t)NU * P),
        *nc = calloc((size_t)NU, sizeof *nc), *qlen = calloc((size_t)NU, sizeof *qlen), *tok = NULL;
    int32_t *ys = malloc(sizeof *ys * (size_t)NU);
    int **qtok = calloc((size_t)NU, sizeof *qtok);
    lrgd_probe **pr = calloc((size_t)NU, sizeof *pr);
    double *eff = malloc(sizeof *eff * (size_t)P);
    if (!users || !cu || !sid || !ids || !nc || !qlen || !ys || !qtok || !pr || !eff)
        s_ = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    if (s_ == LRGD_OK) s_ = lrgd_sample_users(sp, NU, 42, users);
    if (s_ == LRGD_OK && !(tok = malloc(sizeof *tok * (size_t)m->cfg.seq_len))) s_ = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (int i = 0; i < nu_all && sid; i++) sid[i] = -1;
    long npairs = 0, rows = 0;
    for (int ui = 0; ui < NU && s_ == LRGD_OK; ui++) {
        int u = users[ui], nh;
        const int32_t *h;
        lrgd_split_history(sp, LRGD_STEP_VALID, u, &h, &nh);
        ys[ui] = lrgd_split_target(sp, LRGD_STEP_VALID, u);
        if (!(qtok[ui] = malloc(sizeof(int) * 64))) s_ = lrgd_fail(LRGD_E_NOMEM, "out of memory");
        if (s_ == LRGD_OK) s_ = lrgd_query_tokens(&e->v, h, nh, 50, qtok[ui], &qlen[ui]);
        if (s_ == LRGD_OK) s_ = lrgd_demo_index_similar(ix, h, nh, u, P, cu, NULL, &nc[ui]);
        for (int c = 0; c < nc[ui] && s_ == LRGD_OK; c++) {
            if (sid[cu[c]] < 0) {
                lrgd_demo d;
                int n;
                s_ = lrgd_demo_index_demo(ix, cu[c], &d, NULL);
                if (s_ == LRGD_OK) s_ = lrgd_demo_tokens(&e->v, &d, 20, tok, &n);
                if (s_ == LRGD_OK) s_ = lrgd_store_add(st, tok, n, NULL, &sid[cu[c]]);
            }
            ids[(size_t)ui * P + c] = sid[cu[c]];
            rows += lrgd_store_len(st, sid[cu[c]]);
        }
        if (s_ == LRGD_OK) s_ = lrgd_probe_run(e, NULL, NULL, 0, qtok[ui], qlen[ui], ys[ui], &pr[ui]);
        npairs += nc[ui];
    }
    double best_cold = 1e300, best_warm = 1e300, best_ref = 1e300, best_truth = 1e300, chk = 0;
    for (int r = 0; r < reps && s_ == LRGD_OK; r++) {
        double t0 = cpu();
        for (int ui = 0; ui < NU && s_ == LRGD_OK; ui++) s_ = lrgd_effect_score(st, pr[ui], ids + (size_t)ui * P, nc[ui], eff, NULL);
        double cold = cpu() - t0, warm = 0;
        for (int ui = 0; ui < NU && s_ == LRGD_OK; ui++) {
            s_ = lrgd_effect_score(st, pr[ui], ids + (size_t)ui * P, nc[ui], eff, NULL);
            double w0 = cpu();
            for (int k = 0; k < 10 && s_ == LRGD_OK; k++)
                s_ = lrgd_effect_score(st, pr[ui], ids + (size_t)ui * P, nc[ui], eff, NULL);
            warm += (cpu() - w0) / 10;
            chk += eff[0];
        }
        t0 = cpu();
        for (int ui = 0; ui < NU; ui++)
            for (int c = 0; c < nc[ui]; c++) chk += ef_score_scaled(st, ids[(size_t)ui * P + c], pr[ui], 1.0);
        double ref = cpu() - t0;
        /* the truth on a fifth of the users (a forward pass per pair is slow), per pair */
        int nt = 0;
        t0 = cpu();
        for (int ui = 0; ui < NU && s_ == LRGD_OK; ui += 5)
            for (int c = 0; c < nc[ui] && s_ == LRGD_OK; c++) {
                double lp;
                s_ = ef_store_logp(e, st, ids[(size_t)ui * P + c], qtok[ui], qlen[ui], ys[ui], tok, &lp);
                chk += lp;
                nt++;
            }
        double truth = (cpu() - t0) / (nt ? nt : 1);
        if (cold < best_cold) best_cold = cold;
        if (warm < best_warm) best_warm = warm;
        if (ref < best_ref) best_ref = ref;
        if (truth < best_truth) best_truth = truth;
    }
    if (s_ != LRGD_OK) {
        fprintf(stderr, "bench_effect: %s\n", lrgd_last_error());
        return 1;
    }
    double us_cold = 1e6 * best_cold / npairs, us_warm = 1e6 * best_warm / npairs, us_ref = 1e6 * best_ref / npairs,
           us_truth = 1e6 * best_truth;
    printf("bench_effect: %s, %s: %d users x up to %d candidates = %ld pairs (%d demonstrations, %.2f tokens on "
           "average), 1 thread, CPU time, best of %d (checksum %g)\n",
           data, model, NU, P, npairs, lrgd_store_n(st), (double)rows / npairs, reps, chk);
    printf("  Effect_D scoring, cold store    %8.3f us/pair\n", us_cold);
    printf("  Effect_D scoring, warm          %8.3f us/pair\n", us_warm);
    printf("  reference loop (ef_score_scaled) %7.3f us/pair  (%.1fx the cold fast path)\n", us_ref, us_ref / us_cold);
    printf("  ground-truth forward pass       %8.1f us/pair\n", us_truth);
    printf("  truth / scoring: %.0fx cold, %.0fx warm\n", us_truth / us_cold, us_truth / us_warm);
    if (out) {
        lrgd_afile af;
        lrgd_json j;
        s_ = json_open(&af, &j, out, "effect", data, model, NU, P, npairs);
        if (s_ == LRGD_OK) {
            lrgd_json_kint(&j, "reps", reps);
            lrgd_json_knum(&j, "us_per_pair_scoring_cold", us_cold);
            lrgd_json_knum(&j, "us_per_pair_scoring_warm", us_warm);
            lrgd_json_knum(&j, "us_per_pair_reference_loop", us_ref);
            lrgd_json_knum(&j, "us_per_pair_truth_forward", us_truth);
            lrgd_json_knum(&j, "ratio_truth_over_cold", us_truth / us_cold);
            lrgd_json_knum(&j, "ratio_truth_over_warm", us_truth / us_warm);
            s_ = json_close(&af, &j);
        }
        if (s_ != LRGD_OK) {
            fprintf(stderr, "bench_effect: %s\n", lrgd_last_error());
            return 1;
        }
        printf("  wrote %s\n", out);
    }
    for (int ui = 0; ui < NU; ui++) {
        lrgd_probe_free(pr[ui]);
        free(qtok[ui]);
    }
    free(pr); free(qtok); free(users); free(cu); free(sid); free(ids); free(nc); free(qlen); free(ys); free(eff); free(tok);
    lrgd_store_free(st);
    lrgd_effect_free(e);
    lrgd_demo_index_free(ix);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
    lrgd_model_free(m);
    return 0;
}
