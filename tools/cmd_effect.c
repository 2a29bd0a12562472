/* lrgd effect: Effect_D of candidate demonstrations for a sample of users,
 * its agreement with the ground truth, and its cost (LRGD.md §2). */
#include "cli.h"
#include "commands.h"
#include "core/dist.h"
#include "core/svg.h"
#include "dist/dist_map.h"
#include "lrgd/effect.h"
#include "model/model_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char help_effect[] =
    "usage: lrgd effect --model M --data FILE [options]\n"
    "\n"
    "Score candidate demonstrations with Effect_D (LRGD.md §2) for a seeded\n"
    "sample of users of the leave-one-out split. The target is each user's\n"
    "validation item (never the test item), the query its training items, the\n"
    "candidates the P training users most similar to it (their training items\n"
    "but the last, then the last as the answer). Each candidate is encoded once,\n"
    "right after T, and shared by every user; each user needs one forward and\n"
    "one answer-row backward pass; every (user, demonstration) score is then\n"
    "dot products:\n"
    "  linear attention:  Effect_D(d) = -sum_{l,h} sum_{i in d} (g.v_i)(k_i.q_t)/sqrt(dh)\n"
    "  softmax attention: d's exact share of the split, -sum g.lambda_d (o^d - o_t)\n"
    "with g = dl/do_t, l = -log p(y). Also the per-token form Effect_D/|d|, and\n"
    "the all-rows form, which sums the same terms over every row after T (the\n"
    "full first-order effect of inserting d; one more probe per user).\n"
    "With --truth, the ground truth dlogP(d) = log p(y|T,d,Q) - log p(y|T,Q) is\n"
    "measured by a real forward pass per pair, and Spearman's rho between the two\n"
    "is reported, with the cost of both from this run.\n"
    "With --shared-pool, every user is scored against ONE pool instead: P\n"
    "training users drawn with the seed from those with a demonstration (>= 2\n"
    "training items) that are not among the scored users, each demonstration\n"
    "built as a candidate is. The P demonstrations are encoded once, and the\n"
    "users' probes are scored together, up to 256 per call, by the matrix scorer\n"
    "(lrgd_effect_score_matrix: the users' query vectors in vector lanes, each\n"
    "demonstration read once per call); the pairs are every user x every pool\n"
    "demonstration. --users + --pool must then leave P such users (else exit 2).\n"
    "\n"
    "options:\n"
    "  --model M        a recommendation model trained on FILE (GGUF from lrgd train),\n"
    "                   or a text LLM (GGUF with a tokenizer)\n"
    "  --data FILE      interactions (Amazon sequence file or RecBole .inter)\n"
    "  --items FILE     item titles for a text LLM (NAME.items.tsv; without it the\n"
    "                   prompts show 'item <id>')\n"
    "  --users N        sampled users (default 100)\n"
    "  --pool P         candidate demonstrations per user (default 50); with\n"
    "                   --shared-pool the size of the one pool shared by every user\n"
    "  --shared-pool    score every user against one shared pool of P demonstrations\n"
    "                   (see above; works with --checkpoint and MPI; default off)\n"
    "  --truth          also measure dlogP with forward passes (default off)\n"
    "  --max-hist N     query history cap (default 50)\n"
    "  --demo-hist N    demonstration history cap (default 20)\n"
    "  --top-k K        the gain summary compares each user's top K by Effect_D (default 3)\n"
    "  --out DIR        write DIR/effect.json, DIR/effect_pairs.csv and, with --truth,\n"
    "                   DIR/effect_scatter.svg (default .)\n"
    "  --checkpoint DIR shard the users and keep every finished shard in DIR; a re-run\n"
    "                   of the same command computes only the missing shards\n"
    "  --shard-size N   users per shard (default: about 1/64 of the users)\n"
    CLI_COMMON_HELP
    "\n"
    "MPI: built with -DLRGD_MPI=ON, 'mpirun -np N lrgd effect ...' shards the\n"
    "users across N ranks (each maps the model and encodes the candidates its\n"
    "users need); rank 0 gathers every pair in user order, computes the\n"
    "correlations and writes the outputs: the same numbers as one process with\n"
    "the same seed and --threads. A failing rank stops the job. See\n"
    "docs/DISTRIBUTED.md.\n"
    "\n"
    "Exit status: 0 done, 2 bad input or options, 1 runtime failure.\n";

static void path_join(char *buf, size_t n, const char *dir, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

static lrgd_status write_csv(const char *path, const lrgd_validity *V, const lrgd_dataset *ds)
{
    lrgd_afile af;
    LRGD_TRY(lrgd_afile_open(&af, path));
    fprintf(af.f, "user,demo_user,tokens,effect,effect_per_token,effect_all_rows,dlogp\n");
    for (int i = 0; i < V->n_pairs; i++) {
        const lrgd_validity_pair *p = &V->pairs[i];
        fprintf(af.f, "%s,%s,%d,%.9g,%.9g,%.9g,", lrgd_dataset_user_name(ds, p->user),
                lrgd_dataset_user_name(ds, p->demo_user), p->len, p->effect, p->per_token, p->effect_all);
        if (isnan(p->dlogp)) fprintf(af.f, "\n");
        else fprintf(af.f, "%.9g\n", p->dlogp);
    }
    return lrgd_afile_commit(&af);
}

static lrgd_status write_svg(const char *path, const lrgd_validity *V)
{
    /* at most 4000 points (every k-th pair) keep the file small */
    int n = V->n_pairs, step = n > 4000 ? (n + 3999) / 4000 : 1, m = 0;
    double *x = malloc(sizeof(double) * (size_t)(n / step + 1)), *y = malloc(sizeof(double) * (size_t)(n / step + 1));
    if (!x || !y) {
        free(x);
        free(y);
        return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i += step) {
        x[m] = V->pairs[i].effect;
        y[m++] = V->pairs[i].dlogp;
    }
    char title[160];
    snprintf(title, sizeof title, "Effect_D vs dlogP (Spearman rho %.3f, %d pairs%s)", V->rho, n,
             step > 1 ? ", thinned" : "");
    lrgd_plot *p = NULL;
    lrgd_status st = lrgd_plot_new(&p, title, "Effect_D (first-order drop of -log p(y))", "dlogP (forward passes)");
    if (st == LRGD_OK) st = lrgd_plot_scatter(p, "(user, demonstration)", x, y, m);
    if (st == LRGD_OK) st = lrgd_plot_hline(p, 0, "");
    if (st == LRGD_OK) st = lrgd_plot_vline(p, 0, "");
    if (st == LRGD_OK) st = lrgd_plot_write(p, path);
    lrgd_plot_free(p);
    free(x);
    free(y);
    return st;
}

static lrgd_status write_json(const char *path, const lrgd_validity *V, const lrgd_validity_opts *o,
                              const lrgd_model *m, const char *model_path, const char *data_path,
                              const char *items_path, const cli_common *cc,
                              const char *csv, const char *svg, double secs, const lrgd_dist_map *dm)
{
    lrgd_afile af;
    LRGD_TRY(lrgd_afile_open(&af, path));
    lrgd_json j;
    lrgd_json_init(&j, af.f, 1);
    const lrgd_config *c = &m->cfg;
    lrgd_json_obj_begin(&j);
    lrgd_json_key(&j, "run");
    lrgd_json_obj_begin(&j);
    cli_json_run_info(&j, cc);
    lrgd_json_knum(&j, "seconds", secs);
    lrgd_json_obj_end(&j);
    lrgd_json_key(&j, "model");
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "path", model_path);
    lrgd_json_kstr(&j, "attention", c->attn == LRGD_ATTN_LINEAR ? "linear" : "softmax");
    lrgd_json_kint(&j, "n_layers", c->n_layers);
    lrgd_json_kint(&j, "n_heads", c->n_heads);
    lrgd_json_kint(&j, "n_kv_heads", c->n_kv_heads);
    lrgd_json_kint(&j, "head_dim", c->head_dim);
    lrgd_json_kint(&j, "dim", c->dim);
    lrgd_json_obj_end(&j);
    lrgd_json_key(&j, "data");
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "path", data_path);
    lrgd_json_key(&j, "items");
    if (items_path) lrgd_json_str(&j, items_path);
    else lrgd_json_null(&j);
    lrgd_json_kstr(&j, "target", "validation item (leave-one-out)");
    lrgd_json_kstr(&j, "mode", o->shared_pool ? "shared_pool" : "per_user");
    lrgd_json_kstr(&j, "candidates", o->shared_pool
                                         ? "one seeded pool of P training users outside the scored users, shared by "
                                           "every user (lrgd_effect_score_matrix)"
                                         : "each user's P most similar training users (lrgd_effect_score)");
    lrgd_json_kint(&j, "users", V->n_users);
    lrgd_json_kint(&j, "pool", o->pool);
    lrgd_json_kint(&j, "max_hist", o->max_hist);
    lrgd_json_kint(&j, "demo_hist", o->demo_hist);
    lrgd_json_kint(&j, "pairs", V->n_pairs);
    lrgd_json_kint(&j, "demonstrations_encoded", V->n_encoded);
    lrgd_json_obj_end(&j);
    lrgd_json_key(&j, "validity");
    if (o->truth) {
        lrgd_json_obj_begin(&j);
        lrgd_json_kstr(&j, "what", "Spearman rho between Effect_D and dlogP = log p(y|T,d,Q) - log p(y|T,Q) over "
                                   "(user, demonstration) pairs");
        lrgd_json_knum(&j, "spearman", V->rho);
        lrgd_json_knum(&j, "spearman_per_token", V->rho_per_token);
        lrgd_json_knum(&j, "spearman_all_rows", V->rho_all_rows);
        lrgd_json_knum(&j, "spearman_user_mean", V->rho_user_mean);
        lrgd_json_knum(&j, "pearson", V->pearson);
        lrgd_json_knum(&j, "top1_agreement", V->top1_agree);
        lrgd_json_kint(&j, "top_k", o->top_k);
        lrgd_json_knum(&j, "dlogp_top_k_by_effect", V->gain_top);
        lrgd_json_knum(&j, "dlogp_all", V->gain_all);
        lrgd_json_knum(&j, "dlogp_bottom_k_by_effect", V->gain_bottom);
        lrgd_json_kstr(&j, "scatter", svg ? svg : "");
        lrgd_json_obj_end(&j);
    } else
        lrgd_json_null(&j);
    lrgd_json_key(&j, "cost");
    lrgd_json_obj_begin(&j);
    lrgd_json_kint(&j, "threads", lrgd_get_threads());
    lrgd_json_knum(&j, "encode_seconds", V->t_encode);
    lrgd_json_knum(&j, "probe_seconds", V->t_probe);
    lrgd_json_knum(&j, "score_seconds", V->t_score);
    lrgd_json_knum(&j, "truth_seconds", V->t_truth);
    lrgd_json_knum(&j, "us_per_pair_effect_scoring", V->us_score_per_pair);
    lrgd_json_knum(&j, "us_per_pair_effect_amortized", V->us_effect_per_pair);
    lrgd_json_knum(&j, "us_per_pair_truth_forward", V->us_truth_per_pair);
    lrgd_json_knum(&j, "ratio_truth_over_scoring", V->us_truth_per_pair / V->us_score_per_pair);
    lrgd_json_knum(&j, "ratio_truth_over_amortized", V->us_truth_per_pair / V->us_effect_per_pair);
    lrgd_json_obj_end(&j);
    double mean0 = 0;
    for (int i = 0; i < V->n_users; i++) mean0 += V->logp0[i];
    lrgd_json_knum(&j, "mean_logp_zero_shot", V->n_users ? mean0 / V->n_users : NAN);
    lrgd_json_kstr(&j, "pairs_csv", csv);
    lrgd_json_key(&j, "distributed");
    if (dm) lrgd_dist_map_json(&j, dm, NULL, 0);
    else lrgd_json_null(&j);
    lrgd_json_obj_end(&j);
    fputc('\n', af.f);
    return lrgd_afile_commit(&af);
}

int cmd_effect(int argc, char **argv)
{
    const char *CMD = "effect";
    cli_common cc;
    cli_common_init(&cc);
    const char *model_path = NULL, *data_path = NULL, *items_path = NULL, *out_dir = ".", *ckpt = NULL;
    long long shard_size = 0;
    lrgd_validity_opts vo;
    lrgd_validity_opts_init(&vo);
    vo.truth = 0;
    const cli_opt opts[] = {
        CLI_O_STR("model", &model_path, "a model file"),
        CLI_O_STR("data", &data_path, "an interaction file"),
        CLI_O_STR("items", &items_path, "an item text file"),
        CLI_O_INT("users", &vo.n_users, 1, 10000000),
        CLI_O_INT("pool", &vo.pool, 1, 100000),
        CLI_O_FLAG("truth", &vo.truth),
        CLI_O_FLAG("shared-pool", &vo.shared_pool),
        CLI_O_INT("max-hist", &vo.max_hist, 1, 4000),
        CLI_O_INT("demo-hist", &vo.demo_hist, 1, 4000),
        CLI_O_INT("top-k", &vo.top_k, 1, 1000),
        CLI_O_STR("out", &out_dir, "a directory"),
        CLI_O_STR("checkpoint", &ckpt, "a folder"),
        CLI_O_LLONG("shard-size", &shard_size, 1, 0x7fffffff),
        CLI_O_END};
    int r = cli_parse(CMD, help_effect, argc, argv, opts, &cc);
    if (r != CLI_CONTINUE) return r;
    if (!model_path) return cli_usage(CMD, "--model is required");
    if (!data_path) return cli_usage(CMD, "--data is required");
    if ((r = cli_common_apply(CMD, &cc)) != 0) return r;
    vo.seed = cc.seed;

    double t0 = lrgd_now();
    lrgd_model *m = NULL;
    lrgd_dataset *ds = NULL;
    lrgd_split *sp = NULL;
    lrgd_validity *V = NULL;
    char p_json[4096], p_csv[4096], p_svg[4096];
    int dist = lrgd_dist_size() > 1 || ckpt != NULL, rank0 = lrgd_dist_rank() == 0;
    lrgd_dist_map dm;
    memset(&dm, 0, sizeof dm);
    lrgd_status st = lrgd_model_load(model_path, &m);
    if (st != LRGD_OK) goto done;
    if (items_path && m->rec.n_items > 0) {
        st = lrgd_fail(LRGD_E_INVALID, "--items: %s is an item-token model; titles are for text LLMs", model_path);
        goto done;
    }
    if ((st = lrgd_dataset_load(data_path, LRGD_DATA_AUTO, &ds)) != LRGD_OK) goto done;
    /* a text LLM's prompts show these titles ("item <id>" for items without one) */
    if (items_path && (st = lrgd_dataset_load_item_text(ds, items_path)) != LRGD_OK) goto done;
    if ((st = lrgd_model_check_items(m, ds)) != LRGD_OK) {
        lrgd_fail_wrap(st, "%s and %s", model_path, data_path);
        goto done;
    }
    if ((st = lrgd_split_loo(ds, &sp)) != LRGD_OK) goto done;
    if (vo.n_users > lrgd_split_n_users(sp)) {
        st = lrgd_fail(LRGD_E_INVALID, "--users %d: the split of %s has only %d users", vo.n_users, data_path,
                       lrgd_split_n_users(sp));
        goto done;
    }
    if (vo.shared_pool && (long long)vo.n_users + vo.pool > lrgd_split_n_users(sp)) {
        st = lrgd_fail(LRGD_E_INVALID, "--shared-pool: --users %d + --pool %d exceed the %d users of the split of %s "
                       "(the pool is drawn from the users that are not scored)", vo.n_users, vo.pool,
                       lrgd_split_n_users(sp), data_path);
        goto done;
    }
    if (rank0 && (st = cli_out_dir(out_dir)) != LRGD_OK) goto done; /* outputs: rank 0's machine */
    if (dist) {
        /* what the pairs depend on: data, model bytes, options, threads; the
         * ranks check they agree */
        uint64_t h = lrgd_hash_dataset(LRGD_HASH_INIT, ds);
        if ((st = lrgd_hash_file(&h, model_path)) != LRGD_OK) goto done;
        int64_t ov[10] = {vo.n_users, vo.pool, vo.max_hist, vo.demo_hist, vo.truth, vo.top_k, (int64_t)vo.seed,
                          shard_size, lrgd_get_threads(), vo.shared_pool};
        h = lrgd_hash64(h, ov, sizeof ov);
        for (int i = 0; items_path && i < lrgd_dataset_n_items(ds); i++) { /* the titles shape the prompts */
            const char *t = lrgd_dataset_item_text(ds, i);
            h = lrgd_hash64(h, t ? t : "", t ? strlen(t) + 1 : 1);
        }
        lrgd_dist_map_init(&dm, CMD, h, ckpt, shard_size);
        vo.map = &dm.map;
    }
    if ((st = lrgd_effect_validity(m, sp, &vo, &V)) != LRGD_OK) goto done;
    if (dist && (st = lrgd_dist_map_finish(&dm)) != LRGD_OK) goto done;
    if (!rank0) goto done; /* rank 0 writes every output */
    path_join(p_json, sizeof p_json, out_dir, "effect.json");
    path_join(p_csv, sizeof p_csv, out_dir, "effect_pairs.csv");
    path_join(p_svg, sizeof p_svg, out_dir, "effect_scatter.svg");
    if ((st = write_csv(p_csv, V, ds)) != LRGD_OK) goto done;
    if (vo.truth && (st = write_svg(p_svg, V)) != LRGD_OK) goto done;
    if ((st = write_json(p_json, V, &vo, m, model_path, data_path, items_path, &cc, p_csv, vo.truth ? p_svg : NULL,
                         lrgd_now() - t0, dist ? &dm : NULL)) != LRGD_OK)
        goto done;
    if (cc.json) {
        st = cli_print_file(p_json);
    } else {
        if (vo.shared_pool)
            printf("Effect_D, shared pool: %d users x %d demonstrations = %d pairs (the pool encoded once, scored by "
                   "the matrix scorer)\n",
                   V->n_users, vo.pool, V->n_pairs);
        else
            printf("Effect_D: %d users x up to %d candidates = %d pairs (%lld demonstrations encoded once)\n",
                   V->n_users, vo.pool, V->n_pairs, (long long)V->n_encoded);
        if (vo.truth) {
            printf("  Spearman rho vs dlogP: %.3f (per-token form %.3f; mean per user %.3f); Pearson %.3f\n", V->rho,
                   V->rho_per_token, V->rho_user_mean, V->pearson);
            printf("  all-rows form (every row after T, not only the answer row): Spearman rho %.3f\n",
                   V->rho_all_rows);
            printf("  best demonstration by Effect_D is the best by dlogP for %.1f%% of users\n", 100 * V->top1_agree);
            printf("  mean dlogP: top %d by Effect_D %+.4f, all %+.4f, bottom %d %+.4f\n", vo.top_k, V->gain_top,
                   V->gain_all, vo.top_k, V->gain_bottom);
        }
        printf("  cost per (user, demonstration) pair, %d thread(s): Effect_D scoring %.3g us (%.3g us with encoding "
               "and probes amortized)",
               lrgd_get_threads(), V->us_score_per_pair, V->us_effect_per_pair);
        if (vo.truth)
            printf("; ground-truth forward pass %.3g us: %.0fx / %.1fx", V->us_truth_per_pair,
                   V->us_truth_per_pair / V->us_score_per_pair, V->us_truth_per_pair / V->us_effect_per_pair);
        printf("\n  wrote %s, %s%s%s\n", p_json, p_csv, vo.truth ? ", " : "", vo.truth ? p_svg : "");
    }
done:
    lrgd_validity_free(V);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
    lrgd_model_free(m);
    lrgd_dist_map_free(&dm);
    return cli_dist_end(CMD, st);
}
