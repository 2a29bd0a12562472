/* lrgd optimize: the two-stage optimization of demonstrations (LRGD.md §§3-4),
 * evaluated on the test items, and optionally the long-term replay. */
#include "cli.h"
#include "commands.h"
#include "core/dist.h"
#include "dist/dist_eval.h"
#include "dist/dist_map.h"
#include "lrgd/effect.h"
#include "model/model_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char help_optimize[] =
    "usage: lrgd optimize --model M --data FILE [options]\n"
    "\n"
    "Choose and refine in-context demonstrations for a seeded sample of users\n"
    "(LRGD.md §§3-4), against each user's validation item (never the test item):\n"
    "  stage 1: the P most similar training demonstrations are scored by robust\n"
    "           Effect_D (mean - beta * std over M perturbed copies), and k are\n"
    "           chosen greedily under the regularized objective (trust region\n"
    "           lambda |sum dW|^2 / |W_0|^2, redundancy mu sum cos(dW_a, dW_b)),\n"
    "           re-scoring the marginal effects as the set grows;\n"
    "  stage 2: gradient-proposed item swaps inside the chosen demonstrations\n"
    "           (HotFlip/GCG), verified by forward passes; an edit is kept only if\n"
    "           the regularized objective improves and the edited demonstration\n"
    "           stays plausible; a collapse guard watches held-out validation\n"
    "           users and undoes a round that drops their metric below stage 1's.\n"
    "Then the test items of the optimized users are ranked over all items with\n"
    "zero-shot, similar, stage-1 and two-stage prompts (paired tests).\n"
    "\n"
    "options:\n"
    "  --model M          a recommendation model trained on FILE (GGUF from lrgd train)\n"
    "  --data FILE        interactions (Amazon sequence file or RecBole .inter)\n"
    "  --users N          optimized users, a seeded sample (default 100)\n"
    "  --hold N           held-out validation users for the collapse guard, disjoint\n"
    "                     from the optimized ones (default 50; 0: no guard)\n"
    "  --k K              demonstrations per prompt (default 3)\n"
    "  --pool P           candidates per user (default 50)\n"
    "  --stage S          1: select only; 2: select and refine (default 2)\n"
    "  --perturb SPEC     perturbations of the robust effect, comma-separated\n"
    "                     name=value from drop, sub (random substitution), pop\n"
    "                     (popular substitution), shuffle, noise (sigma relative to\n"
    "                     the embedding RMS) (default drop=0.1,sub=0.1,shuffle=0.1)\n"
    "  --m M              perturbed copies per candidate (default 8)\n"
    "  --beta B           robust = mean - B * std (default 0.5)\n"
    "  --lambda L         trust-region weight (default 0.02)\n"
    "  --mu MU            redundancy weight (default 0.05)\n"
    "  --plaus D          plausibility floor: an edited demonstration's mean item\n"
    "                     log-likelihood may fall at most D below the original's (default 1)\n"
    "  --no-perturb       ablation: plain Effect_D, no perturbed copies\n"
    "  --no-reg           ablation: no trust region and no redundancy term\n"
    "  --no-plaus         no plausibility floor\n"
    "  --all-rows         score with the all-rows form of Effect_D (every row after T,\n"
    "                     the full first-order effect) instead of the answer row only\n"
    "  --rounds R         stage-2 rounds (default 3)\n"
    "  --proposals N      gradient proposals kept per item position (default 16)\n"
    "  --verify N         proposals checked by forward passes per user and round (default 4)\n"
    "  --m2 M             perturbed copies in the stage-2 objective (default 2)\n"
    "  --guard G          held-out metric: ndcg (NDCG@10 over all items, default) or logp\n"
    "  --guard-tol X      roll back when the metric < stage-1 value - X (default 0)\n"
    "  --max-hist N       query history cap (default 50)\n"
    "  --demo-hist N      demonstration history cap (default 20)\n"
    "  --no-test          skip the test-item evaluation\n"
    "  --replay S         also run the long-term replay with S held-back items per\n"
    "                     user (adapted vs frozen-at-step-0 demonstrations)\n"
    "  --replay-users N   users of the replay (default --users)\n"
    "  --out DIR          write DIR/optimize.json and DIR/selections.json (default .)\n"
    "  --checkpoint DIR   shard the users and keep every finished shard of every phase\n"
    "                     (stage 1, each stage-2 round, the guard, the test ranks) in\n"
    "                     DIR; a re-run of the same command resumes them\n"
    "  --shard-size N     users per shard (default: about 1/64 of a phase's users)\n"
    CLI_COMMON_HELP
    "\n"
    "MPI: built with -DLRGD_MPI=ON, 'mpirun -np N lrgd optimize ...' shards the\n"
    "users of every phase across N ranks; every rank maps the model and loads the\n"
    "data, receives every per-user result in user order and takes the same\n"
    "decisions (stage-2 merges, the guard), rank 0 writes the outputs. The numbers\n"
    "are those of one process with the same seed and --threads. The replay runs\n"
    "on rank 0. A failing rank stops the job. See docs/DISTRIBUTED.md.\n"
    "\n"
    "Exit status: 0 done, 2 bad input or options, 1 runtime failure.\n";

static int parse_perturb(const char *CMD, const char *spec, lrgd_perturb *p)
{
    memset(p, 0, sizeof *p);
    char buf[512];
    if (strlen(spec) >= sizeof buf) return cli_usage(CMD, "--perturb: specification too long");
    strcpy(buf, spec);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        if (!eq) return cli_usage(CMD, "--perturb: expected name=value, got '%s'", tok);
        *eq = 0;
        double v;
        double *dst = !strcmp(tok, "drop") ? &p->drop : !strcmp(tok, "sub") ? &p->sub_random
                    : !strcmp(tok, "pop") ? &p->sub_pop : !strcmp(tok, "shuffle") ? &p->shuffle
                    : !strcmp(tok, "noise") ? &p->noise : NULL;
        if (!dst) return cli_usage(CMD, "--perturb: unknown kind '%s' (drop, sub, pop, shuffle, noise)", tok);
        if (cli_float(CMD, "perturb", eq + 1, 0, !strcmp(tok, "noise") ? 100 : 1, &v)) return CLI_USAGE;
        *dst = v;
    }
    if (p->sub_random + p->sub_pop > 1) return cli_usage(CMD, "--perturb: sub + pop must not exceed 1");
    return 0;
}

typedef struct method_eval {
    const char *name;
    double hr10, ndcg10;
    double *ndcg; /* [n] per user, evaluation order */
    int n;
} method_eval;

/* Sharding of the test evaluations (NULL: in this process). */
typedef struct dist_eval_ctx {
    const char *ckpt;
    uint64_t hash;      /* data, model, options */
} dist_eval_ctx;

static lrgd_status eval_method(lrgd_tmodel *t, const lrgd_split *sp, const lrgd_selection *sel, const int32_t *users,
                               int n, const lrgd_opt_opts *o, const char *name, method_eval *me,
                               const dist_eval_ctx *dc)
{
    lrgd_sel_scorer_opts so;
    lrgd_sel_scorer_opts_init(&so);
    so.max_hist = o->max_hist;
    so.demo_hist = o->demo_hist;
    lrgd_scorer sc;
    LRGD_TRY(lrgd_scorer_selection(t, sel, &so, &sc));
    lrgd_eval_opts eo;
    lrgd_eval_opts_init(&eo);
    eo.users = users;
    eo.n_users = n;
    eo.label = name;
    lrgd_eval_result *er = NULL;
    lrgd_status st;
    if (dc) {
        /* every rank gets the ranks (to_all): the per-user NDCG columns feed the paired tests */
        char jname[96];
        snprintf(jname, sizeof jname, "optimize-test-%s", name);
        for (char *c = jname; *c; c++)
            if (*c == ' ' || *c == '(' || *c == ')') *c = '_';
        lrgd_dist_eval d = {.name = jname, .ckpt_dir = dc->ckpt, .to_all = 1};
        d.config_hash = lrgd_hash_selection(lrgd_hash64(dc->hash, name, strlen(name)), sel, users, n);
        st = lrgd_evaluate_dist(sp, LRGD_STEP_TEST, &sc, &eo, &d, &er, NULL);
    } else
        st = lrgd_evaluate(sp, LRGD_STEP_TEST, &sc, &eo, &er);
    lrgd_scorer_release(&sc);
    LRGD_TRY(st);
    me->name = name;
    me->n = er->n;
    me->ndcg = malloc(sizeof(double) * (size_t)(er->n ? er->n : 1));
    if (!me->ndcg) {
        lrgd_eval_result_free(er);
        return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    }
    double a = 0, b = 0;
    for (int i = 0; i < er->n; i++) {
        a += lrgd_metric_value(LRGD_HR10, er->ranks[i]);
        me->ndcg[i] = lrgd_metric_value(LRGD_NDCG10, er->ranks[i]);
        b += me->ndcg[i];
    }
    me->hr10 = er->n ? a / er->n : NAN;
    me->ndcg10 = er->n ? b / er->n : NAN;
    lrgd_eval_result_free(er);
    return LRGD_OK;
}

static void json_perturb(lrgd_json *j, const char *key, const lrgd_perturb *p)
{
    lrgd_json_key(j, key);
    lrgd_json_obj_begin(j);
    lrgd_json_knum(j, "drop", p->drop);
    lrgd_json_knum(j, "sub_random", p->sub_random);
    lrgd_json_knum(j, "sub_pop", p->sub_pop);
    lrgd_json_knum(j, "shuffle", p->shuffle);
    lrgd_json_knum(j, "noise", p->noise);
    lrgd_json_obj_end(j);
}

static void json_sel(lrgd_json *j, const lrgd_dataset *ds, const lrgd_selection *s, int u)
{
    lrgd_json_arr_begin(j);
    for (int i = 0; i < lrgd_selection_count(s, u); i++) {
        lrgd_demo d;
        int32_t src;
        if (lrgd_selection_get(s, u, i, &d, &src) != LRGD_OK) continue;
        lrgd_json_obj_begin(j);
        lrgd_json_kstr(j, "from_user", src >= 0 ? lrgd_dataset_user_name(ds, src) : "");
        lrgd_json_key(j, "history");
        lrgd_json_arr_begin(j);
        for (int k = 0; k < d.n_hist; k++) lrgd_json_str(j, lrgd_dataset_item_name(ds, d.hist[k]));
        lrgd_json_arr_end(j);
        lrgd_json_kstr(j, "answer", lrgd_dataset_item_name(ds, d.next));
        lrgd_json_obj_end(j);
    }
    lrgd_json_arr_end(j);
}

static lrgd_status write_selections(const char *path, const lrgd_dataset *ds, const lrgd_opt_result *R,
                                    const int32_t *hold, int n_hold)
{
    lrgd_afile af;
    LRGD_TRY(lrgd_afile_open(&af, path));
    lrgd_json j;
    lrgd_json_init(&j, af.f, 1);
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "what", "each user's demonstrations in prompt order (the last is next to the query); items "
                               "and users as external ids");
    lrgd_json_key(&j, "users");
    lrgd_json_arr_begin(&j);
    for (int i = 0; i < R->n + n_hold; i++) {
        int u = i < R->n ? R->users[i].user : hold[i - R->n];
        lrgd_json_obj_begin(&j);
        lrgd_json_kstr(&j, "user", lrgd_dataset_user_name(ds, u));
        lrgd_json_key(&j, "held_out");
        lrgd_json_bool(&j, i >= R->n);
        lrgd_json_key(&j, "stage1");
        json_sel(&j, ds, R->stage1, u);
        lrgd_json_key(&j, "stage2");
        json_sel(&j, ds, R->stage2, u);
        lrgd_json_obj_end(&j);
    }
    lrgd_json_arr_end(&j);
    lrgd_json_obj_end(&j);
    fputc('\n', af.f);
    return lrgd_afile_commit(&af);
}

static void json_paired(lrgd_json *j, const char *key, const method_eval *a, const method_eval *b)
{
    lrgd_paired pt;
    lrgd_json_key(j, key);
    if (a->n != b->n || a->n < 2 || lrgd_paired_test(a->ndcg, b->ndcg, a->n, &pt) != LRGD_OK) {
        lrgd_json_null(j);
        return;
    }
    lrgd_json_obj_begin(j);
    lrgd_json_kstr(j, "metric", "NDCG@10");
    lrgd_json_knum(j, "diff", pt.diff);
    lrgd_json_knum(j, "diff_lo", pt.diff_lo);
    lrgd_json_knum(j, "diff_hi", pt.diff_hi);
    lrgd_json_knum(j, "p_t", pt.p_t);
    lrgd_json_knum(j, "p_sign", pt.p_sign);
    lrgd_json_obj_end(j);
}

int cmd_optimize(int argc, char **argv)
{
    static const char *const guards[] = {"ndcg", "logp", NULL};
    const char *CMD = "optimize";
    cli_common cc;
    cli_common_init(&cc);
    const char *model_path = NULL, *data_path = NULL, *out_dir = ".", *ckpt = NULL, *perturb = NULL;
    long long shard_size = 0;
    lrgd_opt_opts o;
    lrgd_opt_opts_init(&o);
    long long n_users = 100, n_hold = 50, replay = 0, replay_users = -1;
    int no_test = 0;
    const cli_opt opts[] = {
        CLI_O_STR("model", &model_path, "a model file"),
        CLI_O_STR("data", &data_path, "an interaction file"),
        CLI_O_LLONG("users", &n_users, 1, 10000000),
        CLI_O_LLONG("hold", &n_hold, 0, 10000000),
        CLI_O_INT("k", &o.k, 1, 64),
        CLI_O_INT("pool", &o.pool, 1, 100000),
        CLI_O_INT("stage", &o.stage, 1, 2),
        CLI_O_STR("perturb", &perturb, "name=value,..."),
        CLI_O_INT("m", &o.n_perturb, 0, 256),
        CLI_O_DOUBLE("beta", &o.beta, 0, 100),
        CLI_O_DOUBLE("lambda", &o.lambda, 0, 1e6),
        CLI_O_DOUBLE("mu", &o.mu, 0, 1e6),
        CLI_O_DOUBLE("plaus", &o.plaus_delta, 0, 1e6),
        CLI_O_SET("no-perturb", &o.use_perturb, 0),
        CLI_O_SET("no-reg", &o.use_reg, 0),
        CLI_O_SET("no-plaus", &o.use_plaus, 0),
        CLI_O_INT("rounds", &o.rounds, 0, 1000),
        CLI_O_INT("proposals", &o.proposals, 1, 100000),
        CLI_O_INT("verify", &o.verify, 1, 100000),
        CLI_O_INT("m2", &o.n_perturb2, 0, 64),
        CLI_O_CHOICE("guard", &o.guard_logp, guards, NULL),
        CLI_O_DOUBLE("guard-tol", &o.guard_tol, 0, 1e6),
        CLI_O_INT("max-hist", &o.max_hist, 1, 4000),
        CLI_O_INT("demo-hist", &o.demo_hist, 1, 4000),
        CLI_O_FLAG("no-test", &no_test),
        CLI_O_LLONG("replay", &replay, 1, 1000),
        CLI_O_LLONG("replay-users", &replay_users, 1, 10000000),
        CLI_O_STR("out", &out_dir, "a directory"),
        CLI_O_FLAG("all-rows", &o.all_rows),
        CLI_O_STR("checkpoint", &ckpt, "a folder"),
        CLI_O_LLONG("shard-size", &shard_size, 1, 0x7fffffff),
        CLI_O_END};
    int r = cli_parse(CMD, help_optimize, argc, argv, opts, &cc);
    if (r != CLI_CONTINUE) return r;
    if (perturb && parse_perturb(CMD, perturb, &o.perturb)) return CLI_USAGE;
    if (!model_path) return cli_usage(CMD, "--model is required");
    if (!data_path) return cli_usage(CMD, "--data is required");
    if ((r = cli_common_apply(CMD, &cc)) != 0) return r;
    o.seed = cc.seed;
    if (replay_users < 0) replay_users = n_users;

    double t0 = lrgd_now();
    lrgd_model *m = NULL;
    lrgd_tmodel *t = NULL;
    lrgd_dataset *ds = NULL;
    lrgd_split *sp = NULL, *rsp = NULL;
    lrgd_opt_result *R = NULL;
    lrgd_adapt_result *AR = NULL;
    lrgd_selection *zero = NULL;
    int32_t *sample = NULL, *rusers = NULL;
    method_eval me[4] = {{0}};
    char p_json[4096], p_sel[4096];
    /* sharded (MPI ranks and/or checkpoints): every phase through the map */
    int dist = lrgd_dist_size() > 1 || ckpt != NULL, rank0 = lrgd_dist_rank() == 0;
    lrgd_dist_map dm;
    dist_eval_ctx dc = {ckpt, 0};
    memset(&dm, 0, sizeof dm);
    snprintf(p_json, sizeof p_json, "%s/optimize.json", out_dir);
    snprintf(p_sel, sizeof p_sel, "%s/selections.json", out_dir);
    lrgd_status st = lrgd_model_load(model_path, &m);
    if (st != LRGD_OK) goto done;
    if ((st = cli_need_item_vocab(CMD, m, model_path)) != LRGD_OK) goto done;
    if ((st = lrgd_dataset_load(data_path, LRGD_DATA_AUTO, &ds)) != LRGD_OK) goto done;
    if ((st = lrgd_model_check_items(m, ds)) != LRGD_OK) {
        lrgd_fail_wrap(st, "%s and %s", model_path, data_path);
        goto done;
    }
    if ((st = lrgd_tmodel_from_model(m, &t)) != LRGD_OK) { lrgd_fail_wrap(st, "%s", model_path); goto done; }
    if ((st = lrgd_split_loo(ds, &sp)) != LRGD_OK) goto done;
    int N = lrgd_split_n_users(sp);
    if (n_users + n_hold > N) {
        st = lrgd_fail(LRGD_E_INVALID, "--users %lld + --hold %lld: the split of %s has only %d users", n_users, n_hold,
                       data_path, N);
        goto done;
    }
    if (rank0 && (st = cli_out_dir(out_dir)) != LRGD_OK) goto done; /* outputs: rank 0's machine */
    sample = malloc(sizeof(int32_t) * (size_t)(n_users + n_hold));
    if (!sample) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); goto done; }
    if ((st = lrgd_sample_users(sp, (int)(n_users + n_hold), cc.seed, sample)) != LRGD_OK) goto done;
    if (dist) {
        /* What every phase depends on: the data, the model bytes, the users,
         * the options and the threads (scores are bit-identical only for a
         * fixed --threads). The ranks check they agree in every phase. */
        uint64_t h = lrgd_hash_dataset(LRGD_HASH_INIT, ds);
        if ((st = lrgd_hash_file(&h, model_path)) != LRGD_OK) goto done;
        lrgd_opt_opts oh;
        memcpy(&oh, &o, sizeof oh); /* padding: zero since lrgd_opt_opts_init's memset */
        oh.map = NULL;
        h = lrgd_hash64(h, &oh, sizeof oh);
        int64_t v[4] = {n_users, n_hold, shard_size, lrgd_get_threads()};
        h = lrgd_hash64(h, v, sizeof v);
        h = lrgd_hash64(h, sample, sizeof(int32_t) * (size_t)(n_users + n_hold));
        lrgd_dist_map_init(&dm, CMD, h, ckpt, shard_size);
        o.map = &dm.map;
        dc.hash = h;
    }
    if ((st = lrgd_optimize(t, sp, sample, (int)n_users, sample + n_users, (int)n_hold, NULL, 0, &o, &R)) != LRGD_OK)
        goto done;
    if (!no_test) {
        if ((st = lrgd_selection_new(lrgd_dataset_n_users(ds), &zero)) != LRGD_OK) goto done;
        const lrgd_selection *sels[4] = {zero, R->similar, R->stage1, R->stage2};
        const char *names[4] = {"zero-shot", "similar", "stage1", o.stage == 2 ? "two-stage" : "stage1 (again)"};
        for (int i = 0; i < 4 && st == LRGD_OK; i++)
            st = eval_method(t, sp, sels[i], sample, (int)n_users, &o, names[i], &me[i], dist ? &dc : NULL);
        if (st != LRGD_OK) goto done;
    }
    if (dist) {
        dm.extra_name[0] = "cpu_seconds_stage1";
        dm.extra_name[1] = "cpu_seconds_stage2";
        dm.extra[0] = R->cpu_stage1;
        dm.extra[1] = R->cpu_stage2;
        if ((st = lrgd_dist_map_finish(&dm)) != LRGD_OK) goto done;
    }
    if (!rank0) goto done; /* rank 0 runs the replay and writes every output */
    if (replay > 0) {
        if ((st = lrgd_split_replay(ds, (int)replay, &rsp)) != LRGD_OK) goto done;
        int nr = (int)(replay_users < lrgd_split_n_users(rsp) ? replay_users : lrgd_split_n_users(rsp));
        rusers = malloc(sizeof(int32_t) * (size_t)nr);
        if (!rusers) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); goto done; }
        if ((st = lrgd_sample_users(rsp, nr, cc.seed, rusers)) != LRGD_OK) goto done;
        if ((st = lrgd_adapt(t, rsp, rusers, nr, &o, &AR)) != LRGD_OK) goto done;
    }
    if ((st = write_selections(p_sel, ds, R, sample + n_users, (int)n_hold)) != LRGD_OK) goto done;
    {
        lrgd_afile af;
        if ((st = lrgd_afile_open(&af, p_json)) != LRGD_OK) goto done;
        lrgd_json j;
        lrgd_json_init(&j, af.f, 1);
        lrgd_json_obj_begin(&j);
        lrgd_json_key(&j, "run");
        lrgd_json_obj_begin(&j);
        cli_json_run_info(&j, &cc);
        lrgd_json_knum(&j, "seconds", lrgd_now() - t0);
        lrgd_json_knum(&j, "seconds_stage1", R->seconds_stage1);
        lrgd_json_knum(&j, "seconds_stage2", R->seconds_stage2);
        lrgd_json_knum(&j, "cpu_seconds_stage1", R->cpu_stage1);
        lrgd_json_knum(&j, "cpu_seconds_stage2", R->cpu_stage2);
        lrgd_json_obj_end(&j);
        lrgd_json_kstr(&j, "model", model_path);
        lrgd_json_kstr(&j, "data", data_path);
        lrgd_json_key(&j, "options");
        lrgd_json_obj_begin(&j);
        lrgd_json_kint(&j, "users", n_users);
        lrgd_json_kint(&j, "hold", n_hold);
        lrgd_json_kint(&j, "k", o.k);
        lrgd_json_kint(&j, "pool", o.pool);
        lrgd_json_kint(&j, "stage", o.stage);
        lrgd_json_kstr(&j, "effect", o.all_rows ? "all rows" : "answer row (LRGD.md)");
        lrgd_json_key(&j, "perturbation");
        lrgd_json_bool(&j, o.use_perturb);
        json_perturb(&j, "perturb", &o.perturb);
        lrgd_json_kint(&j, "m", o.n_perturb);
        lrgd_json_knum(&j, "beta", o.beta);
        lrgd_json_key(&j, "regularization");
        lrgd_json_bool(&j, o.use_reg);
        lrgd_json_knum(&j, "lambda", o.lambda);
        lrgd_json_knum(&j, "mu", o.mu);
        lrgd_json_key(&j, "plausibility");
        lrgd_json_bool(&j, o.use_plaus);
        lrgd_json_knum(&j, "plaus_delta", o.plaus_delta);
        lrgd_json_kint(&j, "rounds", o.rounds);
        lrgd_json_kint(&j, "proposals", o.proposals);
        lrgd_json_kint(&j, "verify", o.verify);
        lrgd_json_kint(&j, "m2", o.n_perturb2);
        lrgd_json_kstr(&j, "guard", o.guard_logp ? "logp" : "ndcg@10");
        lrgd_json_knum(&j, "guard_tol", o.guard_tol);
        lrgd_json_kint(&j, "max_hist", o.max_hist);
        lrgd_json_kint(&j, "demo_hist", o.demo_hist);
        lrgd_json_obj_end(&j);
        /* validation: log p(y_val) averaged over the optimized users */
        double s0 = 0, ss = 0, s1 = 0, s2 = 0, o1 = 0, j1 = 0, j2 = 0;
        long edits = 0;
        for (int i = 0; i < R->n; i++) {
            const lrgd_opt_user *u = &R->users[i];
            s0 += u->logp_zero;
            ss += u->logp_similar;
            s1 += u->logp_stage1;
            s2 += u->logp_stage2;
            o1 += u->obj_stage1;
            j1 += u->j_stage1;
            j2 += u->j_stage2;
            edits += u->edits;
        }
        double nn = R->n > 0 ? R->n : 1;
        lrgd_json_key(&j, "validation");
        lrgd_json_obj_begin(&j);
        lrgd_json_kstr(&j, "what", "mean log p(validation item) of the optimized users");
        lrgd_json_knum(&j, "logp_zero_shot", s0 / nn);
        lrgd_json_knum(&j, "logp_similar", ss / nn);
        lrgd_json_knum(&j, "logp_stage1", s1 / nn);
        lrgd_json_knum(&j, "logp_stage2", s2 / nn);
        lrgd_json_knum(&j, "stage1_objective", o1 / nn);
        lrgd_json_knum(&j, "stage2_objective_before", j1 / nn);
        lrgd_json_knum(&j, "stage2_objective_after", j2 / nn);
        lrgd_json_kint(&j, "items_edited", edits);
        lrgd_json_obj_end(&j);
        lrgd_json_key(&j, "guard");
        lrgd_json_obj_begin(&j);
        lrgd_json_kint(&j, "held_out_users", R->n_hold);
        lrgd_json_kstr(&j, "metric", o.guard_logp ? "mean log p(y_val)" : "NDCG@10 (all items)");
        lrgd_json_knum(&j, "stage1", R->hold_stage1);
        lrgd_json_key(&j, "after_round");
        lrgd_json_arr_begin(&j);
        for (int i = 0; i < R->n_rounds; i++) lrgd_json_num(&j, R->hold_trace[i]);
        lrgd_json_arr_end(&j);
        lrgd_json_key(&j, "rolled_back");
        lrgd_json_bool(&j, R->rolled_back);
        lrgd_json_knum(&j, "final", R->hold_final);
        lrgd_json_kint(&j, "edits_accepted", R->edits_accepted);
        lrgd_json_kint(&j, "edits_rolled_back", R->edits_rolled_back);
        lrgd_json_obj_end(&j);
        lrgd_json_key(&j, "test");
        if (!no_test) {
            lrgd_json_obj_begin(&j);
            lrgd_json_kstr(&j, "what", "test items of the optimized users ranked over all items (history excluded)");
            lrgd_json_kint(&j, "users", me[0].n);
            lrgd_json_key(&j, "methods");
            lrgd_json_obj_begin(&j);
            for (int i = 0; i < 4; i++) {
                lrgd_json_key(&j, me[i].name);
                lrgd_json_obj_begin(&j);
                lrgd_json_knum(&j, "HR@10", me[i].hr10);
                lrgd_json_knum(&j, "NDCG@10", me[i].ndcg10);
                lrgd_json_obj_end(&j);
            }
            lrgd_json_obj_end(&j);
            json_paired(&j, "stage2_vs_stage1", &me[3], &me[2]);
            json_paired(&j, "stage1_vs_similar", &me[2], &me[1]);
            json_paired(&j, "similar_vs_zero_shot", &me[1], &me[0]);
            lrgd_json_obj_end(&j);
        } else
            lrgd_json_null(&j);
        lrgd_json_key(&j, "replay");
        if (AR) {
            lrgd_json_obj_begin(&j);
            lrgd_json_kint(&j, "held_back", replay);
            lrgd_json_kstr(&j, "note", replay > 2 ? "the model was trained on the leave-one-out training items: "
                                                    "replay targets before the last two steps were seen in training"
                                                  : "");
            lrgd_json_key(&j, "steps");
            lrgd_json_arr_begin(&j);
            for (int i = 0; i < AR->n_steps; i++) {
                const lrgd_adapt_step *s = &AR->steps[i];
                lrgd_json_obj_begin(&j);
                lrgd_json_kint(&j, "step", s->step);
                lrgd_json_kint(&j, "users", s->n_users);
                lrgd_json_knum(&j, "HR@10_adapted", s->hr10_adapted);
                lrgd_json_knum(&j, "NDCG@10_adapted", s->ndcg10_adapted);
                lrgd_json_knum(&j, "HR@10_frozen", s->hr10_frozen);
                lrgd_json_knum(&j, "NDCG@10_frozen", s->ndcg10_frozen);
                lrgd_json_knum(&j, "replaced_per_user", s->mean_replaced);
                lrgd_json_obj_end(&j);
            }
            lrgd_json_arr_end(&j);
            lrgd_json_knum(&j, "seconds", AR->seconds);
            lrgd_json_obj_end(&j);
        } else
            lrgd_json_null(&j);
        lrgd_json_kstr(&j, "selections", p_sel);
        lrgd_json_key(&j, "distributed");
        if (dist) lrgd_dist_map_json(&j, &dm, "stage2_redone", R->stage2_redone);
        else lrgd_json_null(&j);
        lrgd_json_obj_end(&j);
        fputc('\n', af.f);
        if ((st = lrgd_afile_commit(&af)) != LRGD_OK) goto done;
        if (!cc.json) {
            printf("optimized %d users (k %d, pool %d, stage %d), held-out %d\n", R->n, o.k, o.pool, o.stage, R->n_hold);
            printf("  validation log p(y): zero-shot %.4f  similar %.4f  stage 1 %.4f  stage 2 %.4f  (%ld items edited)\n",
                   s0 / nn, ss / nn, s1 / nn, s2 / nn, edits);
            if (R->n_hold > 0)
                printf("  collapse guard: held-out %s stage 1 %.4f -> final %.4f%s\n", o.guard_logp ? "log p" : "NDCG@10",
                       R->hold_stage1, R->hold_final, R->rolled_back ? " (a round was rolled back)" : "");
            if (!no_test)
                for (int i = 0; i < 4; i++)
                    printf("  test %-14s HR@10 %.4f  NDCG@10 %.4f\n", me[i].name, me[i].hr10, me[i].ndcg10);
            if (AR)
                for (int i = 0; i < AR->n_steps; i++)
                    printf("  replay step %d: NDCG@10 adapted %.4f frozen %.4f (replaced %.2f per user)\n", i,
                           AR->steps[i].ndcg10_adapted, AR->steps[i].ndcg10_frozen, AR->steps[i].mean_replaced);
            printf("  wrote %s, %s\n", p_json, p_sel);
        }
    }
    if (cc.json) st = cli_print_file(p_json);
done:
    for (int i = 0; i < 4; i++) free(me[i].ndcg);
    lrgd_opt_result_free(R);
    lrgd_adapt_result_free(AR);
    lrgd_selection_free(zero);
    free(sample);
    free(rusers);
    lrgd_split_free(rsp);
    lrgd_split_free(sp);
    lrgd_tmodel_free(t);
    lrgd_dataset_free(ds);
    lrgd_model_free(m);
    lrgd_dist_map_free(&dm);
    return cli_dist_end(CMD, st);
}
