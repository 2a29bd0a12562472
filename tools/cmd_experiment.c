/* lrgd experiment: the whole LRGD.md §5 protocol for one dataset, with
 * results.json, methods.csv and a self-contained report.html.
 *
 * Stages (each checkpointed under DIR/ckpt, so a killed run re-run with the
 * same command resumes after the last finished stage and ends with the same
 * numbers; the trainer keeps its own resumable state beside the model):
 *   data      the dataset (a file, or the planted-taste generator)
 *   train     the embedded model (lrgd_train), or --model
 *   optimize  Stage 1 / two-stage selections and their ablations (lrgd_optimize)
 *   methods   every method ranked on the test items: full, 1+99, 1+19
 *   validity  Effect_D against the ground-truth dlogP over (user, demonstration) pairs
 *   robust    HR/NDCG while test-time demonstrations are perturbed
 *   replay    adapted vs frozen demonstrations on a replay split (lrgd_adapt)
 *   dual      E1-E4 per layer (lrgd_dual_run)
 * Per-user results are kept as arrays indexed like the evaluated-user list.
 *
 * MPI (docs/DISTRIBUTED.md): under mpirun -np N (or with --shard-size in
 * one process) the per-user work is sharded (core/dist.h): every
 * evaluation (lrgd_evaluate_dist), the optimizer's phases (lrgd_optimize
 * through the dist map: Stage 1, each Stage 2 round, the guard) and the
 * validity pairs; every rank receives every per-user result in user order,
 * so each stage ends in the same state on every rank, equal to one
 * process's. Training, the replay and E1-E4 run on rank 0 and their
 * results are broadcast. Stage checkpoints are read and written by rank 0
 * (and broadcast); the optimizer's and the validity's shards are
 * checkpointed by the rank that computed them in DIR/ckpt/shards. */
#include "cli.h"
#include "commands.h"
#include "core/dist.h"
#include "core/svg.h"
#include "dist/dist_eval.h"
#include "dist/dist_map.h"
#include "lrgd/dual.h"
#include "lrgd/effect.h"
#include "lrgd/eval.h"
#include "lrgd/train.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CMD "experiment"

const char help_experiment[] =
    "usage: lrgd experiment (--data FILE | --synthetic) --out DIR [options]\n"
    "\n"
    "Runs the evaluation protocol of LRGD.md §5 on one dataset and writes\n"
    "DIR/results.json, DIR/methods.csv and DIR/report.html (inline SVG figures):\n"
    "  methods     Pop, ItemKNN, zero-shot, random, similar, Stage 1, two-stage and\n"
    "              the ablations (no perturbation, no regularization), full ranking\n"
    "              and 1+99 / 1+19 candidates, paired t and sign tests\n"
    "  validity    Spearman rho of Effect_D against the true dlogP\n"
    "  robustness  HR/NDCG@10 against the test-time perturbation rate\n"
    "  replay      adapted vs frozen demonstrations, step by step\n"
    "  dual        E1-E4 per layer\n"
    "Every stage is checkpointed in DIR: re-running the same command after an\n"
    "interruption resumes from the last finished stage with the same numbers.\n"
    "\n"
    "Data and model:\n"
    "  --data FILE         interaction file (Amazon or RecBole .inter)\n"
    "  --synthetic         planted-taste synthetic data instead (written to DIR/data.txt)\n"
    "  --model M.gguf      use this model (trained by lrgd train on the same file)\n"
    "                      instead of training one into DIR/model.gguf\n"
    "  --quick             the reduced test configuration (small model, few users)\n"
    "Training (when no --model): --epochs N, --dim N, --layers N, --heads N,\n"
    "  --hidden N, --batch N, --seq N, --lr X (defaults: lrgd train's, or --quick's)\n"
    "Protocol:\n"
    "  --users N           test users evaluated (seeded sample; default 200, quick 40)\n"
    "  --hold N            held-out validation users of the collapse guard (default users/4)\n"
    "  --k N               demonstrations per prompt (default 3)\n"
    "  --pool N            Stage 1 candidates per user (default 50, quick 12)\n"
    "  --rounds N          Stage 2 edit rounds (default 3, quick 1; 0: Stage 1 only)\n"
    "  --n-perturb M       perturbed copies per robust Effect_D (default 8, quick 4)\n"
    "  --validity-users N  users of the Effect_D validity check (default 30, quick 10)\n"
    "  --replay-steps N    held-back items of the replay split (default 3)\n"
    "  --replay-users N    users of the replay curve (default = --users)\n"
    "  --e3-users N        users of the E1-E4 summary (default 10, quick 4)\n"
    "  --e1-epochs N       epochs of the small linear-attention model trained for E1\n"
    "                      (default 2; 0: E1 not run)\n"
    "  --shard-size N      shard the per-user work (users per shard) and checkpoint\n"
    "                      the shards in DIR/ckpt/shards, also in one process (under\n"
    "                      MPI the default is about 1/64 of a phase's users)\n" CLI_COMMON_HELP
    "\n"
    "MPI: built with -DLRGD_MPI=ON, 'mpirun -np N lrgd experiment ...' shards the\n"
    "evaluations, the optimizer (Stage 1, Stage 2 rounds, the guard) and the\n"
    "validity pairs across N ranks; rank 0 trains, runs the replay and E1-E4,\n"
    "and writes every output. The numbers are those of one process with the\n"
    "same seed and --threads. DIR must be a folder every rank can read (a\n"
    "shared file system) when the model is trained into it. A failing rank\n"
    "stops the job; a re-run resumes finished stages and shards. See\n"
    "docs/DISTRIBUTED.md.\n";

/* ---- configuration ------------------------------------------------------- */

typedef struct xcfg {
    const char *data, *out, *model;
    int synthetic, quick;
    lrgd_train_opts tr;
    int users, hold, k, pool, rounds, vusers, rsteps, rusers, e3users, e1epochs, npert;
} xcfg;

/* The methods of LRGD.md §5, in table order. */
enum {
    M_POP, M_KNN, M_ZERO, M_RANDOM, M_SIMILAR, M_STAGE1, M_TWO, M_S1_NOPERT, M_TWO_NOPERT, M_S1_NOREG, M_TWO_NOREG,
    N_METHODS
};
static const char *const method_name[N_METHODS] = {
    "pop", "itemknn", "zero-shot", "random", "similar", "stage1", "two-stage",
    "stage1-noperturb", "two-stage-noperturb", "stage1-noreg", "two-stage-noreg"};
/* Candidate sets: all items, target + 99, target + 19. */
enum { N_CAND = 3 };
static const int cand_neg[N_CAND] = {0, 99, 19};
static const char *const cand_name[N_CAND] = {"full", "1+99", "1+19"};
/* Optimizer variants: full, without perturbation, without regularization. */
enum { V_FULL, V_NOPERT, V_NOREG, N_VAR };
static const char *const var_name[N_VAR] = {"full", "noperturb", "noreg"};
/* Test-time perturbation rates of the robustness curves. */
enum { N_RATES = 5 };
static const double rates[N_RATES] = {0.0, 0.1, 0.2, 0.3, 0.5};
enum { R_SIMILAR, R_PLAIN, R_ROBUST, N_RSEL };
static const char *const rsel_name[N_RSEL] = {"similar", "stage1 plain Effect_D", "stage1 robust Effect_D"};
enum { N_FEAT = 9 }; /* E3 at r = 2^4 .. 2^12 */

typedef struct xrun {
    xcfg c;
    cli_common com;
    char data_path[4096];
    lrgd_synth *syn;
    lrgd_dataset *ds_own;
    const lrgd_dataset *ds;
    lrgd_split *sp;
    lrgd_tmodel *t;
    lrgd_opt_opts oo;
    int n_users, n_hold;
    int32_t *users, *hold;
    /* train */
    double train_info[8]; /* epochs_run, best_epoch, best_ndcg10, seconds, n_params, loaded */
    /* optimize: per variant */
    lrgd_selection *sel1[N_VAR], *sel2[N_VAR], *sel_sim;
    double opt_info[N_VAR][10];
    /* methods: ranks[m][cand][user], -1 where not run */
    double *ranks[N_METHODS][N_CAND];
    double msecs[N_METHODS];
    int cand_ok[N_CAND];
    /* validity */
    double *v_eff, *v_ptok, *v_dlp;
    int v_n;
    double v_info[8]; /* pairs, users, rho, rho_per_token, mean per-user rho, s/pair score, s/pair encode, s/pair forward */
    /* robustness: [sel][rate][hr10, ndcg10] */
    double rob[N_RSEL][N_RATES][2];
    /* replay */
    int rp_n;
    double *rp; /* [steps][6]: step, users, hr_a, ndcg_a, hr_f, ndcg_f (+ replaced) */
    /* dual: per layer */
    int L, dual_lin_L;
    double *dual;     /* [L][4 + N_FEAT]: E2 max, E2 mean, E4 max, lambda mean, E3[f] mean */
    double *dual_lin; /* [L][3]: E1 max, E1 mean, E4 max (linear model), or NULL */
    double e3_slope, dual_users;
    /* sharding (MPI ranks, or --shard-size in one process) */
    int dist;              /* 1: per-user work through the shards */
    int64_t shard_size;    /* 0: default */
    uint64_t hash;         /* data, model, configuration, threads */
    char shard_dir[4200];  /* DIR/ckpt/shards */
    lrgd_dist_map dm;      /* the optimizer's and the validity's phases */
    int64_t eval_jobs;     /* evaluations run sharded */
    char cfg_text[2048];   /* the configuration record (config.txt) */
    int cfg_len;
} xrun;

static int rank0(void) { return lrgd_dist_rank() == 0; }

/* ---- checkpoints: one file of doubles per finished piece ------------------ */

static uint64_t fnv(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static void ck_path(const xrun *x, const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/ckpt/%s", x->c.out, name);
}

static lrgd_status ck_save(const xrun *x, const char *name, const double *v, size_t n)
{
    if (!rank0()) return LRGD_OK; /* rank 0 keeps the stage checkpoints */
    size_t bytes = 16 + n * sizeof(double) + 8;
    unsigned char *b = malloc(bytes);
    if (!b) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    memcpy(b, "LRGDXCK1", 8);
    uint64_t nn = n;
    memcpy(b + 8, &nn, 8);
    if (n) memcpy(b + 16, v, n * sizeof(double));
    uint64_t h = fnv(b, bytes - 8);
    memcpy(b + bytes - 8, &h, 8);
    char p[4200];
    ck_path(x, name, p, sizeof p);
    lrgd_status st = lrgd_write_file_atomic(p, b, bytes);
    free(b);
    return st;
}

/* 1: loaded (*v malloc'ed); 0: absent or damaged (the piece is recomputed). */
static int ck_load_file(const xrun *x, const char *name, double **v, size_t *n)
{
    char p[4200];
    ck_path(x, name, p, sizeof p);
    if (access(p, F_OK) != 0) return 0;
    char *b = NULL;
    size_t sz = 0;
    if (lrgd_read_file(p, &b, &sz) != LRGD_OK) return 0;
    uint64_t nn, h;
    int ok = sz >= 24 && !memcmp(b, "LRGDXCK1", 8);
    if (ok) {
        memcpy(&nn, b + 8, 8);
        ok = nn <= (sz - 24) / sizeof(double) && sz == 24 + nn * sizeof(double);
    }
    if (ok) {
        memcpy(&h, b + sz - 8, 8);
        ok = h == fnv(b, sz - 8);
    }
    if (ok) {
        *n = nn;
        *v = malloc(nn ? nn * sizeof(double) : 1);
        if (!*v) ok = 0;
        else if (nn) memcpy(*v, b + 16, nn * sizeof(double));
    }
    lrgd_free(b);
    return ok;
}

/* ck_load_file on rank 0, its answer and contents broadcast: every rank
 * takes the same branch (load or compute) and holds the same numbers, even
 * when only rank 0 can read DIR. Collective under MPI. */
static int ck_load(const xrun *x, const char *name, double **v, size_t *n)
{
    if (lrgd_dist_size() == 1) return ck_load_file(x, name, v, n);
    int64_t hdr[2] = {0, 0};
    *v = NULL;
    if (rank0() && ck_load_file(x, name, v, n)) {
        hdr[0] = 1;
        hdr[1] = (int64_t)*n;
    }
    lrgd_status st = lrgd_dist_bcast(hdr, sizeof hdr, 0);
    if (st == LRGD_OK && hdr[0]) {
        if (!rank0()) *v = malloc(hdr[1] ? (size_t)hdr[1] * sizeof(double) : 1);
        st = *v ? lrgd_dist_bcast(*v, (size_t)hdr[1] * sizeof(double), 0) : lrgd_fail(LRGD_E_NOMEM, "out of memory");
        *n = (size_t)hdr[1];
    }
    if (st != LRGD_OK) lrgd_dist_fail(CMD, st); /* stops every rank */
    if (!hdr[0]) {
        free(*v);
        *v = NULL;
    }
    return (int)hdr[0];
}

/* Broadcast n doubles from rank 0 (results computed there only). */
static lrgd_status share(double *v, size_t n) { return lrgd_dist_bcast(v, n * sizeof(double), 0); }

/* Load exactly want doubles into dst; 0 when absent, damaged or another size. */
static int ck_load_into(const xrun *x, const char *name, double *dst, size_t want)
{
    double *v = NULL;
    size_t n = 0;
    if (!ck_load(x, name, &v, &n)) return 0;
    int ok = n == want;
    if (ok && n) memcpy(dst, v, n * sizeof(double));
    free(v);
    return ok;
}

/* Selections as doubles: per listed user, count, then (src, n_hist, next, hist...) per demonstration. */
static lrgd_status sel_save(const xrun *x, const char *name, const lrgd_selection *s, const int32_t *u, int nu)
{
    size_t cap = 1024, n = 0;
    double *v = malloc(cap * sizeof(double));
    lrgd_status st = v ? LRGD_OK : lrgd_fail(LRGD_E_NOMEM, "out of memory");
#define PUSH(val)                                                                                    \
    do {                                                                                             \
        if (n == cap) {                                                                              \
            double *nv_ = realloc(v, 2 * cap * sizeof(double));                                      \
            if (!nv_) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); break; }                      \
            v = nv_;                                                                                 \
            cap *= 2;                                                                                \
        }                                                                                            \
        v[n++] = (double)(val);                                                                      \
    } while (0)
    for (int i = 0; i < nu && st == LRGD_OK; i++) {
        int c = lrgd_selection_count(s, u[i]);
        PUSH(c);
        for (int d = 0; d < c && st == LRGD_OK; d++) {
            lrgd_demo dm;
            int32_t src;
            st = lrgd_selection_get(s, u[i], d, &dm, &src);
            if (st != LRGD_OK) break;
            PUSH(src);
            PUSH(dm.n_hist);
            PUSH(dm.next);
            for (int j = 0; j < dm.n_hist && st == LRGD_OK; j++) PUSH(dm.hist[j]);
        }
    }
#undef PUSH
    if (st == LRGD_OK) st = ck_save(x, name, v, n);
    free(v);
    return st;
}

static int sel_load(const xrun *x, const char *name, const int32_t *u, int nu, lrgd_selection **out)
{
    double *v = NULL;
    size_t n = 0, p = 0;
    *out = NULL;
    if (!ck_load(x, name, &v, &n)) return 0;
    lrgd_selection *s = NULL;
    int ok = lrgd_selection_new(lrgd_dataset_n_users(x->ds), &s) == LRGD_OK;
    int32_t *items = malloc(sizeof(int32_t) * 70000);
    lrgd_demo dm[64];
    int32_t src[64];
    for (int i = 0; i < nu && ok; i++) {
        if (p >= n) { ok = 0; break; }
        int c = (int)v[p++], used = 0;
        if (c < 0 || c > 64) { ok = 0; break; }
        for (int d = 0; d < c && ok; d++) {
            if (p + 3 > n) { ok = 0; break; }
            src[d] = (int32_t)v[p];
            int nh = (int)v[p + 1];
            int32_t next = (int32_t)v[p + 2];
            p += 3;
            if (nh < 0 || p + (size_t)nh > n || used + nh > 70000) { ok = 0; break; }
            for (int j = 0; j < nh; j++) items[used + j] = (int32_t)v[p + j];
            p += (size_t)nh;
            dm[d] = (lrgd_demo){items + used, nh, next};
            used += nh;
        }
        if (ok && c > 0) ok = lrgd_selection_set(s, u[i], dm, src, c) == LRGD_OK;
    }
    free(items);
    free(v);
    if (!ok || p != n) {
        lrgd_selection_free(s);
        return 0;
    }
    *out = s;
    return 1;
}

/* ---- stage: configuration record and data -------------------------------- */

/* The configuration every checkpoint belongs to. A DIR holding another
 * configuration's checkpoints is refused rather than mixed. */
static void config_text(xrun *x)
{
    const xcfg *c = &x->c;
    char *buf = x->cfg_text;
    x->cfg_len = snprintf(buf, sizeof x->cfg_text,
                     "lrgd experiment v1\ndata %s\nsynthetic %d\nmodel %s\nquick %d\nseed %llu\n"
                     "train %d %d %d %d %d %d %d %d %d\nusers %d hold %d k %d pool %d rounds %d\n"
                     "validity %d replay %d %d e3 %d e1 %d npert %d lr %.9g\n",
                     c->synthetic ? "(synthetic)" : c->data, c->synthetic, c->model ? c->model : "(trained)", c->quick,
                     (unsigned long long)x->com.seed, c->tr.n_layers, c->tr.dim, c->tr.n_heads, c->tr.n_kv_heads,
                     c->tr.hidden_dim, c->tr.seq_len, c->tr.epochs, c->tr.batch, c->tr.demos, c->users, c->hold, c->k,
                     c->pool, c->rounds, c->vusers, c->rsteps, c->rusers, c->e3users, c->e1epochs, c->npert,
                     c->tr.adamw.lr);
    if (x->cfg_len >= (int)sizeof x->cfg_text) x->cfg_len = (int)sizeof x->cfg_text - 1;
}

static lrgd_status write_config(xrun *x)
{
    const xcfg *c = &x->c;
    const char *buf = x->cfg_text;
    int n = x->cfg_len;
    char p[4200];
    ck_path(x, "config.txt", p, sizeof p);
    char *old = NULL;
    size_t osz = 0;
    if (access(p, F_OK) == 0 && lrgd_read_file(p, &old, &osz) == LRGD_OK) {
        int same = osz == (size_t)n && !memcmp(old, buf, (size_t)n);
        lrgd_free(old);
        if (!same)
            return lrgd_fail(LRGD_E_INVALID,
                             "%s holds checkpoints of another configuration (%s); use another --out or remove it",
                             c->out, p);
        cli_note(CMD, x->com.quiet, "resuming in %s", c->out);
        return LRGD_OK;
    }
    return lrgd_write_file_atomic(p, buf, (size_t)n);
}

static lrgd_status make_dirs(const char *out)
{
    char p[4200];
    LRGD_TRY(cli_out_dir(out));
    snprintf(p, sizeof p, "%s/ckpt", out);
    return cli_out_dir(p);
}

static lrgd_status stage_data(xrun *x)
{
    if (x->c.synthetic) {
        lrgd_synth_opts so;
        lrgd_synth_opts_init(&so);
        /* 128 items so that 1+99 candidates exist for every user */
        so.n_groups = 8;
        so.items_per_group = 16;
        so.users_per_cluster = x->c.quick ? 15 : 40;
        so.seed = x->com.seed;
        LRGD_TRY(lrgd_synth_new(&so, &x->syn));
        x->ds = lrgd_synth_dataset(x->syn);
        snprintf(x->data_path, sizeof x->data_path, "%s/data.txt", x->c.out);
        if (rank0()) LRGD_TRY(lrgd_synth_write(x->syn, x->data_path)); /* the others generate the same */
    } else {
        snprintf(x->data_path, sizeof x->data_path, "%s", x->c.data);
        LRGD_TRY(lrgd_dataset_load(x->c.data, LRGD_DATA_AUTO, &x->ds_own));
        x->ds = x->ds_own;
    }
    LRGD_TRY(lrgd_split_loo(x->ds, &x->sp));
    int ns = lrgd_split_n_users(x->sp);
    if (ns < 4) return lrgd_fail(LRGD_E_INVALID, "%s: only %d users with >= 3 items", x->data_path, ns);
    /* seeded sample: the first n_users are evaluated, the next n_hold guard stage 2 */
    x->n_users = x->c.users < ns ? x->c.users : ns;
    x->n_hold = x->c.hold >= 0 ? x->c.hold : x->n_users / 4;
    if (x->n_hold > ns - x->n_users) x->n_hold = ns - x->n_users;
    int32_t *s = malloc(sizeof(int32_t) * (size_t)ns);
    if (!s) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    memcpy(s, lrgd_split_users(x->sp), sizeof(int32_t) * (size_t)ns);
    lrgd_rng r;
    lrgd_rng_seed(&r, x->com.seed, 0x657870);
    for (int i = 0; i < x->n_users + x->n_hold; i++) {
        int j = i + (int)lrgd_rng_below(&r, (uint32_t)(ns - i));
        int32_t t = s[i];
        s[i] = s[j];
        s[j] = t;
    }
    x->users = s;
    x->hold = s + x->n_users;
    /* 1+n candidates need n items the user never had */
    int free_min = lrgd_dataset_n_items(x->ds) - lrgd_dataset_stats(x->ds)->max_len;
    for (int c = 0; c < N_CAND; c++) x->cand_ok[c] = cand_neg[c] <= free_min;
    cli_note(CMD, x->com.quiet, "data: %s (%d users, %d items), %d test users, %d guard users", x->data_path,
        lrgd_dataset_n_users(x->ds), lrgd_dataset_n_items(x->ds), x->n_users, x->n_hold);
    return LRGD_OK;
}

/* ---- stage: model ------------------------------------------------------------ */

static lrgd_status train_one(xrun *x, const lrgd_train_opts *o, lrgd_train_result *res)
{
    memset(res, 0, sizeof *res);
    lrgd_status st = lrgd_train(x->sp, o, res);
    if (st == LRGD_OK && res->best_epoch == 0)
        st = lrgd_fail(LRGD_E_RUNTIME, "training of %s stopped before the first epoch", o->out);
    return st;
}

static lrgd_status stage_train(xrun *x)
{
    char mp[4200];
    lrgd_model *m = NULL;
    if (x->c.model) {
        snprintf(mp, sizeof mp, "%s", x->c.model);
        x->train_info[5] = 1;
    } else {
        snprintf(mp, sizeof mp, "%s/model.gguf", x->c.out);
        if (!ck_load_into(x, "train", x->train_info, 8)) {
            /* rank 0 trains (the others sleep in the broadcast), then every rank maps the model */
            if (rank0()) {
                lrgd_train_opts o = x->c.tr;
                o.out = mp;
                o.seed = x->com.seed;
                cli_note(CMD, x->com.quiet, "train: %d layers, dim %d, %d epochs on %s", o.n_layers, o.dim, o.epochs, x->data_path);
                lrgd_train_result res;
                lrgd_status st = train_one(x, &o, &res);
                if (st == LRGD_OK) {
                    double info[8] = {res.epochs_run, res.best_epoch, res.best_ndcg10, res.train_seconds,
                                      (double)res.n_params, 0, 0, 0};
                    memcpy(x->train_info, info, sizeof info);
                    st = ck_save(x, "train", info, 8);
                }
                lrgd_train_result_free(&res);
                LRGD_TRY(st);
            }
            LRGD_TRY(share(x->train_info, 8));
        }
    }
    LRGD_TRY(lrgd_model_load(mp, &m));
    lrgd_status st = lrgd_tmodel_from_model(m, &x->t);
    lrgd_model_free(m);
    if (st != LRGD_OK) return lrgd_fail_wrap(st, "%s", mp);
    /* the item tokens must be this dataset's items: the model scorer checks it */
    lrgd_model_scorer_opts so;
    lrgd_model_scorer_opts_init(&so);
    lrgd_scorer sc;
    st = lrgd_scorer_tmodel(x->sp, LRGD_STEP_TEST, x->t, &so, &sc);
    if (st != LRGD_OK) return lrgd_fail_wrap(st, "%s does not fit %s", mp, x->data_path);
    lrgd_scorer_release(&sc);
    x->L = lrgd_tmodel_config(x->t)->n_layers;
    return LRGD_OK;
}

/* ---- stage: optimization (Stage 1, two-stage, ablations) ----------------- */

static lrgd_status stage_optimize(xrun *x)
{
    char n1[64], n2[64];
    for (int v = 0; v < N_VAR; v++) {
        snprintf(n1, sizeof n1, "sel1_%s", var_name[v]);
        snprintf(n2, sizeof n2, "sel2_%s", var_name[v]);
        char ni[64];
        snprintf(ni, sizeof ni, "opt_%s", var_name[v]);
        if (sel_load(x, n1, x->users, x->n_users, &x->sel1[v]) && sel_load(x, n2, x->users, x->n_users, &x->sel2[v]) &&
            ck_load_into(x, ni, x->opt_info[v], 10))
            continue;
        lrgd_selection_free(x->sel1[v]);
        lrgd_selection_free(x->sel2[v]);
        x->sel1[v] = x->sel2[v] = NULL;
        lrgd_opt_opts o = x->oo;
        if (v == V_NOPERT) o.use_perturb = 0;
        if (v == V_NOREG) o.use_reg = 0;
        cli_note(CMD, x->com.quiet, "optimize (%s): %d users, pool %d, k %d, %d rounds, %d guard users", var_name[v], x->n_users, o.pool,
            o.k, o.rounds, x->n_hold);
        lrgd_opt_result *r = NULL;
        char cmdname[64];
        if (x->dist) {
            /* each variant's phases: their own checkpoint folders and hashes */
            snprintf(cmdname, sizeof cmdname, "experiment-%s", var_name[v]);
            x->dm.cmd = cmdname;
            x->dm.config_hash = lrgd_hash64(x->hash, &v, sizeof v);
            o.map = &x->dm.map;
        }
        LRGD_TRY(lrgd_optimize(x->t, x->sp, x->users, x->n_users, x->hold, x->n_hold, NULL, 0, &o, &r));
        x->dm.cmd = NULL;
        double lz = 0, ls = 0, l1 = 0, l2 = 0, ed = 0;
        for (int i = 0; i < r->n; i++) {
            lz += r->users[i].logp_zero;
            ls += r->users[i].logp_similar;
            l1 += r->users[i].logp_stage1;
            l2 += r->users[i].logp_stage2;
            ed += r->users[i].edits;
        }
        double nn = r->n ? r->n : 1;
        double info[10] = {lz / nn, ls / nn, l1 / nn, l2 / nn, ed / nn, r->hold_stage1, r->hold_final,
                           r->rolled_back, r->seconds_stage1, r->seconds_stage2};
        memcpy(x->opt_info[v], info, sizeof info);
        x->sel1[v] = r->stage1;
        x->sel2[v] = r->stage2;
        r->stage1 = r->stage2 = NULL;
        lrgd_opt_result_free(r);
        LRGD_TRY(sel_save(x, n1, x->sel1[v], x->users, x->n_users));
        LRGD_TRY(sel_save(x, n2, x->sel2[v], x->users, x->n_users));
        LRGD_TRY(ck_save(x, ni, info, 10));
    }
    /* the similar baseline as a selection at the test step (robustness curves) */
    lrgd_demo_index *ix = NULL;
    LRGD_TRY(lrgd_demo_index_new(x->sp, LRGD_STEP_TEST, x->oo.demo_hist, &ix));
    lrgd_status st = lrgd_selection_new(lrgd_dataset_n_users(x->ds), &x->sel_sim);
    if (st == LRGD_OK)
        st = lrgd_selection_baseline(x->sp, ix, LRGD_DEMOS_SIMILAR, x->oo.k, x->com.seed, x->users, x->n_users,
                                     x->sel_sim);
    lrgd_demo_index_free(ix);
    return st;
}

/* ---- stage: methods ---------------------------------------------------------- */

static lrgd_status make_scorer(xrun *x, int m, const lrgd_perturb *pt, lrgd_scorer *sc)
{
    if (m == M_POP) return lrgd_scorer_pop(x->sp, LRGD_STEP_TEST, sc);
    if (m == M_KNN) {
        lrgd_itemknn_opts ko;
        lrgd_itemknn_opts_init(&ko);
        return lrgd_scorer_itemknn(x->sp, LRGD_STEP_TEST, &ko, sc);
    }
    if (m == M_ZERO || m == M_RANDOM || m == M_SIMILAR) {
        lrgd_model_scorer_opts so;
        lrgd_model_scorer_opts_init(&so);
        so.demos = m == M_ZERO ? LRGD_DEMOS_NONE : m == M_RANDOM ? LRGD_DEMOS_RANDOM : LRGD_DEMOS_SIMILAR;
        so.k = x->oo.k;
        so.max_hist = x->oo.max_hist;
        so.demo_hist = x->oo.demo_hist;
        so.seed = x->com.seed;
        return lrgd_scorer_tmodel(x->sp, LRGD_STEP_TEST, x->t, &so, sc);
    }
    const lrgd_selection *sel = m == M_STAGE1      ? x->sel1[V_FULL]
                                : m == M_TWO       ? x->sel2[V_FULL]
                                : m == M_S1_NOPERT ? x->sel1[V_NOPERT]
                                : m == M_TWO_NOPERT ? x->sel2[V_NOPERT]
                                : m == M_S1_NOREG  ? x->sel1[V_NOREG]
                                : m == M_TWO_NOREG ? x->sel2[V_NOREG]
                                                   : x->sel_sim;
    lrgd_sel_scorer_opts so;
    lrgd_sel_scorer_opts_init(&so);
    so.max_hist = x->oo.max_hist;
    so.demo_hist = x->oo.demo_hist;
    so.seed = x->com.seed;
    if (pt) so.perturb = *pt;
    return lrgd_scorer_selection(x->t, sel, &so, sc);
}

static lrgd_status eval_ranks(xrun *x, const lrgd_scorer *sc, int n_neg, const char *label, double *ranks)
{
    lrgd_eval_opts eo;
    lrgd_eval_opts_init(&eo);
    eo.n_neg = n_neg;
    eo.seed = x->com.seed;
    eo.users = x->users;
    eo.n_users = x->n_users;
    eo.label = label;
    lrgd_eval_result *er = NULL;
    if (x->dist) {
        /* sharded; every rank gets the ranks (the stage ends alike everywhere) */
        char name[128];
        snprintf(name, sizeof name, "experiment-%s", label);
        for (char *c = name; *c; c++)
            if (*c == ' ' || *c == '@' || *c == '+') *c = '_';
        lrgd_dist_eval d = {.name = name, .to_all = 1};
        d.config_hash = lrgd_hash64(x->hash, label, strlen(label));
        d.config_hash = lrgd_hash64(d.config_hash, &n_neg, sizeof n_neg);
        LRGD_TRY(lrgd_evaluate_dist(x->sp, LRGD_STEP_TEST, sc, &eo, &d, &er, NULL));
        x->eval_jobs++;
    } else
        LRGD_TRY(lrgd_evaluate(x->sp, LRGD_STEP_TEST, sc, &eo, &er));
    /* results come back in evaluation order: store them by our user index */
    for (int i = 0; i < x->n_users; i++) ranks[i] = -1;
    for (int i = 0; i < er->n; i++)
        for (int j = 0; j < x->n_users; j++)
            if (x->users[j] == er->users[i]) { ranks[j] = er->ranks[i]; break; }
    lrgd_eval_result_free(er);
    for (int i = 0; i < x->n_users; i++)
        if (ranks[i] < 1) return lrgd_fail(LRGD_E_RUNTIME, "%s: user %d was not ranked", label, x->users[i]);
    return LRGD_OK;
}

static lrgd_status stage_methods(xrun *x)
{
    int n = x->n_users;
    for (int m = 0; m < N_METHODS; m++) {
        double *buf = malloc(sizeof(double) * ((size_t)n * N_CAND + 1));
        if (!buf) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
        char name[64];
        snprintf(name, sizeof name, "m_%s", method_name[m]);
        if (!ck_load_into(x, name, buf, (size_t)n * N_CAND + 1)) {
            lrgd_scorer sc;
            memset(&sc, 0, sizeof sc);
            lrgd_status st = make_scorer(x, m, NULL, &sc);
            double t0 = lrgd_now();
            for (int c = 0; c < N_CAND && st == LRGD_OK; c++) {
                char label[96];
                snprintf(label, sizeof label, "%s %s", method_name[m], cand_name[c]);
                if (x->cand_ok[c]) st = eval_ranks(x, &sc, cand_neg[c], label, buf + (size_t)c * n);
                else
                    for (int i = 0; i < n; i++) buf[(size_t)c * n + i] = -1;
            }
            buf[(size_t)n * N_CAND] = lrgd_now() - t0;
            lrgd_scorer_release(&sc);
            if (st == LRGD_OK) st = ck_save(x, name, buf, (size_t)n * N_CAND + 1);
            if (st != LRGD_OK) {
                free(buf);
                return st;
            }
        }
        for (int c = 0; c < N_CAND; c++) x->ranks[m][c] = buf + (size_t)c * n;
        x->msecs[m] = buf[(size_t)n * N_CAND];
        /* buf is owned through ranks[m][0] */
    }
    return LRGD_OK;
}

/* ---- stage: Effect_D validity ------------------------------------------------ */

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One validity user's pairs as a shard record: the pair count, the
 * timings, then P slots of (Effect_D, per-token form, dlogP). */
typedef struct xv_head {
    int32_t np, pad;
    double t_probe, t_enc, t_score, t_fwd;
} xv_head;

typedef struct xv_ctx {
    const xrun *x;
    int P;
    lrgd_effect *e;
    lrgd_store *s;
    lrgd_demo_index *ix;
    double *eff, *ptk;
    int32_t *pool;
    int *ids, *tok, *qtok, *dtok;
} xv_ctx;

static size_t xv_size(int P) { return sizeof(xv_head) + (size_t)P * 3 * sizeof(double); }

static lrgd_status xv_job(void *vc, int64_t begin, int64_t end, void *vrec)
{
    xv_ctx *c = vc;
    const xrun *x = c->x;
    int P = c->P;
    lrgd_effect *e = c->e;
    const lrgd_prompt_vocab *pv = lrgd_effect_vocab(e);
    int *tok = c->tok, *qtok = c->qtok, *dtok = c->dtok;
    lrgd_status st = LRGD_OK;
    lrgd_progress prog;
    lrgd_progress_begin(&prog, "validity", "users", (double)(end - begin));
    for (int64_t i = begin; i < end && st == LRGD_OK; i++) {
        unsigned char *rec = (unsigned char *)vrec + (size_t)(i - begin) * xv_size(P);
        xv_head H;
        memset(&H, 0, sizeof H);
        memset(rec, 0, xv_size(P));
        double *E = (double *)(rec + sizeof H), *PT = E + P, *D = PT + P;
        int u = x->users[i], nh, np = 0, nq = 0;
        const int32_t *h;
        lrgd_split_history(x->sp, LRGD_STEP_VALID, u, &h, &nh);
        int32_t y = lrgd_split_target(x->sp, LRGD_STEP_VALID, u);
        st = lrgd_demo_index_similar(c->ix, h, nh, u, P, c->pool, NULL, &np);
        if (st == LRGD_OK) st = lrgd_query_tokens(pv, h, nh, x->oo.max_hist, qtok, &nq);
        lrgd_probe *p = NULL;
        double t0 = lrgd_now();
        if (st == LRGD_OK) st = lrgd_probe_run(e, NULL, NULL, 0, qtok, nq, y, &p);
        H.t_probe = lrgd_now() - t0;
        double base = 0;
        tok[0] = pv->bos;
        memcpy(tok + 1, qtok, sizeof(int) * (size_t)nq);
        if (st == LRGD_OK) st = lrgd_effect_logp(e, tok, nq + 1, y, &base);
        lrgd_store_clear(c->s);
        t0 = lrgd_now();
        for (int j = 0; j < np && st == LRGD_OK; j++) {
            lrgd_demo d;
            int nd = 0;
            st = lrgd_demo_index_demo(c->ix, c->pool[j], &d, NULL);
            if (st == LRGD_OK) st = lrgd_demo_tokens(pv, &d, x->oo.demo_hist, dtok, &nd);
            if (st == LRGD_OK) st = lrgd_store_add(c->s, dtok, nd, NULL, &c->ids[j]);
        }
        H.t_enc = lrgd_now() - t0;
        t0 = lrgd_now();
        if (st == LRGD_OK) st = lrgd_effect_score(c->s, p, c->ids, np, c->eff, c->ptk);
        H.t_score = lrgd_now() - t0;
        /* ground truth: real forward passes of [T | d | Q] */
        t0 = lrgd_now();
        for (int j = 0; j < np && st == LRGD_OK; j++) {
            int nd = lrgd_store_len(c->s, c->ids[j]);
            memcpy(tok + 1, lrgd_store_tokens(c->s, c->ids[j]), sizeof(int) * (size_t)nd);
            memcpy(tok + 1 + nd, qtok, sizeof(int) * (size_t)nq);
            double lp = 0;
            st = lrgd_effect_logp(e, tok, 1 + nd + nq, y, &lp);
            E[j] = c->eff[j];
            PT[j] = c->ptk[j];
            D[j] = lp - base;
        }
        H.t_fwd = lrgd_now() - t0;
        lrgd_probe_free(p);
        H.np = np;
        memcpy(rec, &H, sizeof H);
        lrgd_progress_update(&prog, (double)(i - begin + 1), NULL);
    }
    lrgd_progress_end(&prog, (double)(end - begin), NULL);
    return st;
}

static lrgd_status stage_validity(xrun *x)
{
    int nv = x->c.vusers < x->n_users ? x->c.vusers : x->n_users, P = x->oo.pool;
    size_t cap = (size_t)nv * P;
    double *all = NULL;
    size_t n_all = 0;
    if (ck_load(x, "validity", &all, &n_all) && n_all >= 8 && (n_all - 8) % 3 == 0) {
        x->v_n = (int)((n_all - 8) / 3);
        memcpy(x->v_info, all, 8 * sizeof(double));
        x->v_eff = all + 8;
        x->v_ptok = x->v_eff + x->v_n;
        x->v_dlp = x->v_ptok + x->v_n;
        return LRGD_OK;
    }
    free(all);
    xv_ctx c;
    memset(&c, 0, sizeof c);
    c.x = x;
    c.P = P;
    all = malloc(sizeof(double) * (8 + 3 * cap + 1));
    unsigned char *recs = malloc((size_t)nv * xv_size(P) + 1);
    c.eff = malloc(sizeof(double) * (size_t)P);
    c.ptk = malloc(sizeof(double) * (size_t)P);
    double *urho = malloc(sizeof(double) * (size_t)nv + 1);
    c.pool = malloc(sizeof(int32_t) * (size_t)P);
    c.ids = malloc(sizeof(int) * (size_t)P);
    const lrgd_config *cfg = lrgd_tmodel_config(x->t);
    c.tok = malloc(sizeof(int) * (size_t)cfg->seq_len * 2);
    c.qtok = malloc(sizeof(int) * (size_t)cfg->seq_len);
    c.dtok = malloc(sizeof(int) * (size_t)cfg->seq_len);
    lrgd_status st = (all && recs && c.eff && c.ptk && urho && c.pool && c.ids && c.tok && c.qtok && c.dtok)
                         ? LRGD_OK : lrgd_fail(LRGD_E_NOMEM, "out of memory");
    if (st == LRGD_OK) st = lrgd_effect_new(lrgd_tmodel_model(x->t), &c.e);
    if (st == LRGD_OK) st = lrgd_store_new(c.e, &c.s);
    if (st == LRGD_OK) st = lrgd_demo_index_new(x->sp, LRGD_STEP_VALID, x->oo.demo_hist, &c.ix);
    if (st == LRGD_OK) {
        if (x->dist) {
            x->dm.cmd = "experiment";
            x->dm.config_hash = x->hash;
            st = x->dm.map.run(x->dm.map.self, "validity", 0, nv, xv_size(P), xv_job, &c, recs);
            x->dm.cmd = NULL;
        } else
            st = xv_job(&c, 0, nv, recs);
    }
    lrgd_demo_index_free(c.ix);
    lrgd_store_free(c.s);
    lrgd_effect_free(c.e);
    free(c.eff);
    free(c.ptk);
    free(c.pool);
    free(c.ids);
    free(c.tok);
    free(c.qtok);
    free(c.dtok);
    /* the pairs in user order; every per-user value from the records */
    double *E = all + 8, *PT = E + cap, *D = PT + cap;
    size_t np_all = 0;
    int n_urho = 0;
    double t_enc = 0, t_score = 0, t_fwd = 0, t_probe = 0;
    for (int i = 0; i < nv && st == LRGD_OK; i++) {
        const unsigned char *rec = recs + (size_t)i * xv_size(P);
        xv_head H;
        memcpy(&H, rec, sizeof H);
        if (H.np < 0 || H.np > P) {
            st = lrgd_fail(LRGD_E_RUNTIME, "validity: user %d has %d pairs", x->users[i], H.np);
            break;
        }
        const double *re = (const double *)(rec + sizeof H);
        memcpy(E + np_all, re, sizeof(double) * (size_t)H.np);
        memcpy(PT + np_all, re + P, sizeof(double) * (size_t)H.np);
        memcpy(D + np_all, re + 2 * P, sizeof(double) * (size_t)H.np);
        t_probe += H.t_probe;
        t_enc += H.t_enc;
        t_score += H.t_score;
        t_fwd += H.t_fwd;
        if (H.np >= 3) {
            double r = lrgd_spearman(E + np_all, D + np_all, H.np);
            if (isfinite(r)) urho[n_urho++] = r;
        }
        np_all += (size_t)H.np;
    }
    free(recs);
    if (st == LRGD_OK) {
        /* compact to [info | eff | ptok | dlp] */
        memmove(all + 8 + np_all, PT, np_all * sizeof(double));
        memmove(all + 8 + 2 * np_all, D, np_all * sizeof(double));
        double med = NAN;
        if (n_urho) {
            qsort(urho, (size_t)n_urho, sizeof(double), cmp_dbl);
            med = n_urho % 2 ? urho[n_urho / 2] : 0.5 * (urho[n_urho / 2 - 1] + urho[n_urho / 2]);
        }
        x->v_n = (int)np_all;
        x->v_eff = all + 8;
        x->v_ptok = x->v_eff + np_all;
        x->v_dlp = x->v_ptok + np_all;
        double pairs = np_all ? (double)np_all : 1;
        double info[8] = {(double)np_all, nv, lrgd_spearman(x->v_eff, x->v_dlp, (int)np_all),
                          lrgd_spearman(x->v_ptok, x->v_dlp, (int)np_all), med, t_score / pairs,
                          (t_enc + t_probe) / pairs, t_fwd / pairs};
        memcpy(all, info, sizeof info);
        memcpy(x->v_info, info, sizeof info);
        st = ck_save(x, "validity", all, 8 + 3 * np_all);
    }
    free(urho);
    if (st != LRGD_OK) {
        free(all);
        x->v_eff = NULL;
    }
    return st;
}

/* ---- stage: robustness ------------------------------------------------------- */

static lrgd_status stage_robust(xrun *x)
{
    if (ck_load_into(x, "robust", &x->rob[0][0][0], N_RSEL * N_RATES * 2)) return LRGD_OK;
    int n = x->n_users;
    double *rk = malloc(sizeof(double) * (size_t)n);
    if (!rk) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    lrgd_status st = LRGD_OK;
    static const int rm[N_RSEL] = {-1, M_S1_NOPERT, M_STAGE1};
    for (int s = 0; s < N_RSEL && st == LRGD_OK; s++)
        for (int r = 0; r < N_RATES && st == LRGD_OK; r++) {
            /* the optimizer's perturbation family, every kind at rate r */
            lrgd_perturb pt = {rates[r], rates[r], 0.0, rates[r], 0.0};
            lrgd_scorer sc;
            memset(&sc, 0, sizeof sc);
            st = make_scorer(x, rm[s] < 0 ? N_METHODS : rm[s], &pt, &sc);
            char label[96];
            snprintf(label, sizeof label, "robust %s @%.1f", rsel_name[s], rates[r]);
            if (st == LRGD_OK) st = eval_ranks(x, &sc, 0, label, rk);
            lrgd_scorer_release(&sc);
            double hr = 0, nd = 0;
            for (int i = 0; i < n && st == LRGD_OK; i++) {
                hr += lrgd_metric_value(LRGD_HR10, (int32_t)rk[i]);
                nd += lrgd_metric_value(LRGD_NDCG10, (int32_t)rk[i]);
            }
            x->rob[s][r][0] = hr / n;
            x->rob[s][r][1] = nd / n;
        }
    free(rk);
    if (st == LRGD_OK) st = ck_save(x, "robust", &x->rob[0][0][0], N_RSEL * N_RATES * 2);
    return st;
}

/* ---- stage: replay ------------------------------------------------------------ */

static lrgd_status replay_run(xrun *x);

/* The replay is not sharded: rank 0 runs it and broadcasts the curve. */
static lrgd_status stage_replay(xrun *x)
{
    double *v = NULL;
    size_t n = 0;
    if (ck_load(x, "replay", &v, &n) && n % 7 == 0) {
        x->rp = v;
        x->rp_n = (int)(n / 7);
        return LRGD_OK;
    }
    free(v);
    if (rank0()) LRGD_TRY(replay_run(x));
    if (lrgd_dist_size() == 1) return LRGD_OK;
    double nn = x->rp_n;
    LRGD_TRY(share(&nn, 1));
    x->rp_n = (int)nn;
    if (!rank0() && !(x->rp = malloc(sizeof(double) * (size_t)x->rp_n * 7 + 1)))
        return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    return share(x->rp, (size_t)x->rp_n * 7);
}

static lrgd_status replay_run(xrun *x)
{
    lrgd_split *rs = NULL;
    LRGD_TRY(lrgd_split_replay(x->ds, x->c.rsteps, &rs));
    int ns = lrgd_split_n_users(rs), want = x->c.rusers > 0 ? x->c.rusers : x->n_users;
    /* the evaluated users that take part, then others, in a seeded order */
    int32_t *u = malloc(sizeof(int32_t) * (size_t)(ns + 1));
    int nu = 0;
    for (int i = 0; i < x->n_users && nu < want; i++)
        if (lrgd_split_has_user(rs, x->users[i])) u[nu++] = x->users[i];
    if (nu == 0) {
        free(u);
        lrgd_split_free(rs);
        return lrgd_fail(LRGD_E_INVALID, "replay: no evaluated user has %d held-back items", x->c.rsteps);
    }
    lrgd_adapt_result *ar = NULL;
    cli_note(CMD, x->com.quiet, "replay: %d steps, %d users", x->c.rsteps, nu);
    lrgd_opt_opts o = x->oo;
    o.stage = 1;
    lrgd_status st = lrgd_adapt(x->t, rs, u, nu, &o, &ar);
    if (st == LRGD_OK) {
        x->rp_n = ar->n_steps;
        x->rp = malloc(sizeof(double) * (size_t)ar->n_steps * 7 + 1);
        if (!x->rp) st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
        for (int i = 0; st == LRGD_OK && i < ar->n_steps; i++) {
            const lrgd_adapt_step *a = &ar->steps[i];
            double r[7] = {a->step, a->n_users, a->hr10_adapted, a->ndcg10_adapted, a->hr10_frozen, a->ndcg10_frozen,
                           a->mean_replaced};
            memcpy(x->rp + 7 * i, r, sizeof r);
        }
        if (st == LRGD_OK) st = ck_save(x, "replay", x->rp, (size_t)x->rp_n * 7);
    }
    lrgd_adapt_result_free(ar);
    free(u);
    lrgd_split_free(rs);
    return st;
}

/* ---- stage: E1-E4 ----------------------------------------------------------- */

/* Per layer over users and heads: [0] main check max, [1] its mean, [2] E4
 * max, [3] lambda mean, [4 + f] E3 mean at features[f]. */
static lrgd_status dual_summary(xrun *x, lrgd_tmodel *t, int nu, int with_e3, double *out, int L)
{
    const lrgd_model *m = lrgd_tmodel_model(t);
    const lrgd_config *cfg = lrgd_tmodel_config(t);
    int W = 4 + N_FEAT;
    double *cnt = calloc((size_t)L * W, sizeof(double));
    if (!cnt) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (int i = 0; i < L * W; i++) out[i] = 0;
    lrgd_prompt_vocab pv;
    LRGD_TRY(lrgd_prompt_vocab_of(m, &pv));
    lrgd_demo_index *ix = NULL;
    lrgd_selection *sel = NULL;
    lrgd_status st = lrgd_demo_index_new(x->sp, LRGD_STEP_TEST, x->oo.demo_hist, &ix);
    if (st == LRGD_OK) st = lrgd_selection_new(lrgd_dataset_n_users(x->ds), &sel);
    if (st == LRGD_OK)
        st = lrgd_selection_baseline(x->sp, ix, LRGD_DEMOS_SIMILAR, x->oo.k, x->com.seed, x->users, nu, sel);
    lrgd_prompt_opts po = {.max_hist = 0, .n_ctx = cfg->seq_len};
    lrgd_progress prog;
    lrgd_progress_begin(&prog, with_e3 ? "dual E2-E4" : "dual E1/E4", "users", nu);
    for (int i = 0; i < nu && st == LRGD_OK; i++) {
        int u = x->users[i], nh, nd = lrgd_selection_count(sel, u);
        const int32_t *h;
        lrgd_split_history(x->sp, LRGD_STEP_TEST, u, &h, &nh);
        if (nh > x->oo.max_hist) {
            h += nh - x->oo.max_hist;
            nh = x->oo.max_hist;
        }
        lrgd_demo dm[64];
        int len = 2 + nh;
        for (int d = 0; d < nd && st == LRGD_OK; d++) {
            st = lrgd_selection_get(sel, u, d, &dm[d], NULL);
            len += dm[d].n_hist + 3;
        }
        int first = 0;
        while (len > cfg->seq_len && first < nd) len -= dm[first++].n_hist + 3;
        lrgd_prompt *p = NULL;
        if (st == LRGD_OK) st = lrgd_prompt_build(&pv, &po, dm + first, nd - first, h, nh, &p);
        lrgd_dual_opts o = {.flags = LRGD_DUAL_GD, .seed = x->com.seed, .stream = (uint64_t)u};
        if (with_e3) {
            o.n_features = N_FEAT;
            for (int f = 0; f < N_FEAT; f++) o.features[f] = 16 << f;
        }
        lrgd_dual *d = NULL;
        if (st == LRGD_OK) st = lrgd_dual_run(m, p, &o, &d);
        for (int l = 0; st == LRGD_OK && l < L; l++)
            for (int hh = 0; hh < cfg->n_heads; hh++) {
                const lrgd_dual_head *H = lrgd_dual_head_at(d, l, hh);
                double e = cfg->attn == LRGD_ATTN_LINEAR ? H->e1 : H->e2;
                double *o_ = out + (size_t)l * W, *c_ = cnt + (size_t)l * W;
                if (isfinite(e)) {
                    if (e > o_[0]) o_[0] = e;
                    o_[1] += e;
                    c_[1]++;
                }
                if (isfinite(H->e4) && H->e4 > o_[2]) o_[2] = H->e4;
                double lam = cfg->attn == LRGD_ATTN_LINEAR ? H->lambda_abs : H->lambda;
                if (isfinite(lam)) {
                    o_[3] += lam;
                    c_[3]++;
                }
                for (int f = 0; with_e3 && f < N_FEAT; f++)
                    if (isfinite(H->e3[f])) {
                        o_[4 + f] += H->e3[f];
                        c_[4 + f]++;
                    }
            }
        lrgd_dual_free(d);
        lrgd_prompt_free(p);
        lrgd_progress_update(&prog, i + 1, NULL);
    }
    lrgd_progress_end(&prog, nu, NULL);
    for (int l = 0; l < L; l++)
        for (int w = 1; w < W; w++)
            if (w != 2) out[(size_t)l * W + w] = cnt[(size_t)l * W + w] > 0 ? out[(size_t)l * W + w] / cnt[(size_t)l * W + w] : NAN;
    free(cnt);
    lrgd_selection_free(sel);
    lrgd_demo_index_free(ix);
    return st;
}

/* E1 on a small linear-attention model trained for it (rank 0). */
static lrgd_status dual_linear(xrun *x, int nu, int Ll)
{
    int W = 4 + N_FEAT;
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/model_linear.gguf", x->c.out);
    lrgd_train_opts o = x->c.tr;
    o.attn = LRGD_ATTN_LINEAR;
    o.epochs = x->c.e1epochs;
    o.out = mp;
    o.seed = x->com.seed;
    cli_note(CMD, x->com.quiet, "dual: training a linear-attention model for E1 (%d epochs)", o.epochs);
    lrgd_train_result res;
    lrgd_status st = train_one(x, &o, &res);
    lrgd_train_result_free(&res);
    LRGD_TRY(st);
    lrgd_model *m = NULL;
    lrgd_tmodel *tl = NULL;
    LRGD_TRY(lrgd_model_load(mp, &m));
    st = lrgd_tmodel_from_model(m, &tl);
    lrgd_model_free(m);
    if (st == LRGD_OK) st = dual_summary(x, tl, nu, 0, x->dual_lin, Ll);
    lrgd_tmodel_free(tl);
    LRGD_TRY(st);
    LRGD_TRY(ck_save(x, "dual_linear", x->dual_lin, (size_t)Ll * W));
    return LRGD_OK;
}

static lrgd_status stage_dual(xrun *x)
{
    int W = 4 + N_FEAT, nu = x->c.e3users < x->n_users ? x->c.e3users : x->n_users;
    x->dual_users = nu;
    x->dual = malloc(sizeof(double) * (size_t)x->L * W);
    if (!x->dual) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    /* E1-E4 are not sharded: rank 0 computes them (and trains E1's model) and broadcasts */
    if (!ck_load_into(x, "dual", x->dual, (size_t)x->L * W)) {
        if (rank0()) {
            LRGD_TRY(dual_summary(x, x->t, nu, 1, x->dual, x->L));
            LRGD_TRY(ck_save(x, "dual", x->dual, (size_t)x->L * W));
        }
        LRGD_TRY(share(x->dual, (size_t)x->L * W));
    }
    /* E1 needs linear attention: a small linear-mode model of the same shape */
    if (x->c.e1epochs > 0 && !x->c.model) {
        int Ll = x->c.tr.n_layers;
        x->dual_lin = malloc(sizeof(double) * (size_t)Ll * W);
        if (!x->dual_lin) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
        x->dual_lin_L = Ll;
        if (!ck_load_into(x, "dual_linear", x->dual_lin, (size_t)Ll * W)) {
            if (rank0()) LRGD_TRY(dual_linear(x, nu, Ll));
            LRGD_TRY(share(x->dual_lin, (size_t)Ll * W));
        }
    }    /* fitted log-log slope of the all-layer mean E3 error against r */
    double r[N_FEAT], e[N_FEAT];
    for (int f = 0; f < N_FEAT; f++) {
        r[f] = 16 << f;
        e[f] = 0;
        for (int l = 0; l < x->L; l++) e[f] += x->dual[(size_t)l * W + 4 + f] / x->L;
    }
    x->e3_slope = lrgd_loglog_slope(r, e, N_FEAT);
    return LRGD_OK;
}

/* ---- summaries ---------------------------------------------------------------- */

static const lrgd_metric all_metrics[LRGD_N_METRICS] = {LRGD_HR1, LRGD_HR5, LRGD_HR10, LRGD_HR20,
                                                         LRGD_NDCG5, LRGD_NDCG10, LRGD_NDCG20, LRGD_MRR};

static lrgd_status summary(const xrun *x, int m, int c, lrgd_metric met, lrgd_interval *iv)
{
    int n = x->n_users;
    int32_t *r = malloc(sizeof(int32_t) * (size_t)n);
    if (!r) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) r[i] = (int32_t)x->ranks[m][c][i];
    lrgd_status st = lrgd_metric_summary(met, r, n, iv);
    free(r);
    return st;
}

static lrgd_status paired(const xrun *x, int a, int b, int c, lrgd_metric met, lrgd_paired *p)
{
    int n = x->n_users;
    double *va = malloc(sizeof(double) * (size_t)n), *vb = malloc(sizeof(double) * (size_t)n);
    lrgd_status st = va && vb ? LRGD_OK : lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (int i = 0; st == LRGD_OK && i < n; i++) {
        va[i] = lrgd_metric_value(met, (int32_t)x->ranks[a][c][i]);
        vb[i] = lrgd_metric_value(met, (int32_t)x->ranks[b][c][i]);
    }
    if (st == LRGD_OK) st = lrgd_paired_test(va, vb, n, p);
    free(va);
    free(vb);
    return st;
}

/* The comparisons: every method against zero-shot, two-stage against Stage 1. */
typedef struct cmp_pair { int a, b; } cmp_pair;
static int comparisons(cmp_pair *out)
{
    int n = 0;
    for (int m = 0; m < N_METHODS; m++)
        if (m != M_ZERO) out[n++] = (cmp_pair){m, M_ZERO};
    out[n++] = (cmp_pair){M_TWO, M_STAGE1};
    out[n++] = (cmp_pair){M_STAGE1, M_SIMILAR};
    out[n++] = (cmp_pair){M_SIMILAR, M_RANDOM};
    return n;
}

/* ---- results.json -------------------------------------------------------------- */

static void json_iv(lrgd_json *j, const char *k, const lrgd_interval *iv)
{
    lrgd_json_key(j, k);
    lrgd_json_obj_begin(j);
    lrgd_json_knum(j, "mean", iv->mean);
    lrgd_json_knum(j, "lo", iv->lo);
    lrgd_json_knum(j, "hi", iv->hi);
    lrgd_json_obj_end(j);
}

static lrgd_status write_json(const xrun *x, FILE *f, double secs)
{
    lrgd_json j;
    lrgd_json_init(&j, f, 1);
    lrgd_json_obj_begin(&j);
    lrgd_json_key(&j, "run");
    lrgd_json_obj_begin(&j);
    cli_json_run_info(&j, &x->com);
    lrgd_json_obj_end(&j);
    lrgd_json_key(&j, "distributed");
    if (x->dist) lrgd_dist_map_json(&j, &x->dm, "evaluations_sharded", x->eval_jobs);
    else lrgd_json_null(&j);
    const lrgd_config *cfg = lrgd_tmodel_config(x->t);
    lrgd_json_key(&j, "config");
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "data", x->data_path);
    lrgd_json_kstr(&j, "data_kind", x->c.synthetic ? "synthetic planted-taste" : "file");
    lrgd_json_kint(&j, "n_dataset_users", lrgd_dataset_n_users(x->ds));
    lrgd_json_kint(&j, "n_items", lrgd_dataset_n_items(x->ds));
    lrgd_json_kint(&j, "n_interactions", lrgd_dataset_n_interactions(x->ds));
    lrgd_json_key(&j, "quick");
    lrgd_json_bool(&j, x->c.quick);
    lrgd_json_kint(&j, "users", x->n_users);
    lrgd_json_kint(&j, "guard_users", x->n_hold);
    lrgd_json_kint(&j, "k", x->oo.k);
    lrgd_json_kint(&j, "pool", x->oo.pool);
    lrgd_json_kint(&j, "rounds", x->oo.rounds);
    lrgd_json_kint(&j, "n_perturb", x->oo.n_perturb);
    lrgd_json_knum(&j, "beta", x->oo.beta);
    lrgd_json_knum(&j, "lambda", x->oo.lambda);
    lrgd_json_knum(&j, "mu", x->oo.mu);
    lrgd_json_kint(&j, "max_hist", x->oo.max_hist);
    lrgd_json_kint(&j, "demo_hist", x->oo.demo_hist);
    lrgd_json_key(&j, "model");
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "source", x->c.model ? x->c.model : "trained (DIR/model.gguf)");
    lrgd_json_kint(&j, "layers", cfg->n_layers);
    lrgd_json_kint(&j, "dim", cfg->dim);
    lrgd_json_kint(&j, "heads", cfg->n_heads);
    lrgd_json_kint(&j, "kv_heads", cfg->n_kv_heads);
    lrgd_json_kint(&j, "hidden", cfg->hidden_dim);
    lrgd_json_kint(&j, "seq_len", cfg->seq_len);
    lrgd_json_kstr(&j, "attention", cfg->attn == LRGD_ATTN_LINEAR ? "linear" : "softmax");
    if (!x->c.model) {
        lrgd_json_kint(&j, "epochs", x->c.tr.epochs);
        lrgd_json_kint(&j, "epochs_run", (long long)x->train_info[0]);
        lrgd_json_kint(&j, "best_epoch", (long long)x->train_info[1]);
        lrgd_json_knum(&j, "best_val_ndcg10", x->train_info[2]);
        lrgd_json_knum(&j, "train_seconds", x->train_info[3]);
        lrgd_json_kint(&j, "n_params", (long long)x->train_info[4]);
    }
    lrgd_json_obj_end(&j);
    lrgd_json_obj_end(&j);

    /* methods */
    lrgd_json_key(&j, "methods");
    lrgd_json_arr_begin(&j);
    for (int m = 0; m < N_METHODS; m++) {
        lrgd_json_obj_begin(&j);
        lrgd_json_kstr(&j, "method", method_name[m]);
        lrgd_json_knum(&j, "seconds", x->msecs[m]);
        for (int c = 0; c < N_CAND; c++) {
            lrgd_json_key(&j, cand_name[c]);
            lrgd_json_obj_begin(&j);
            if (!x->cand_ok[c]) {
                lrgd_json_kstr(&j, "status", "not run: some user has fewer never-seen items than negatives");
            } else {
                for (int k = 0; k < LRGD_N_METRICS; k++) {
                    lrgd_interval iv;
                    LRGD_TRY(summary(x, m, c, all_metrics[k], &iv));
                    json_iv(&j, lrgd_metric_name(all_metrics[k]), &iv);
                }
            }
            lrgd_json_obj_end(&j);
        }
        lrgd_json_obj_end(&j);
    }
    lrgd_json_arr_end(&j);

    /* paired significance */
    cmp_pair cp[N_METHODS + 4];
    int ncp = comparisons(cp);
    lrgd_json_key(&j, "paired");
    lrgd_json_arr_begin(&j);
    for (int i = 0; i < ncp; i++)
        for (int c = 0; c < N_CAND; c++) {
            if (!x->cand_ok[c]) continue;
            static const lrgd_metric pm[2] = {LRGD_NDCG10, LRGD_HR10};
            for (int k = 0; k < 2; k++) {
                lrgd_paired p;
                LRGD_TRY(paired(x, cp[i].a, cp[i].b, c, pm[k], &p));
                lrgd_json_obj_begin(&j);
                lrgd_json_kstr(&j, "a", method_name[cp[i].a]);
                lrgd_json_kstr(&j, "b", method_name[cp[i].b]);
                lrgd_json_kstr(&j, "candidates", cand_name[c]);
                lrgd_json_kstr(&j, "metric", lrgd_metric_name(pm[k]));
                lrgd_json_kint(&j, "n", p.n);
                lrgd_json_knum(&j, "diff", p.diff);
                lrgd_json_knum(&j, "diff_lo", p.diff_lo);
                lrgd_json_knum(&j, "diff_hi", p.diff_hi);
                lrgd_json_knum(&j, "p_t", p.p_t);
                lrgd_json_kint(&j, "a_better", p.n_pos);
                lrgd_json_kint(&j, "b_better", p.n_neg);
                lrgd_json_knum(&j, "p_sign", p.p_sign);
                lrgd_json_obj_end(&j);
            }
        }
    lrgd_json_arr_end(&j);

    /* the optimizer runs */
    lrgd_json_key(&j, "optimizer");
    lrgd_json_obj_begin(&j);
    for (int v = 0; v < N_VAR; v++) {
        const double *o = x->opt_info[v];
        lrgd_json_key(&j, var_name[v]);
        lrgd_json_obj_begin(&j);
        lrgd_json_knum(&j, "val_logp_zero", o[0]);
        lrgd_json_knum(&j, "val_logp_similar", o[1]);
        lrgd_json_knum(&j, "val_logp_stage1", o[2]);
        lrgd_json_knum(&j, "val_logp_stage2", o[3]);
        lrgd_json_knum(&j, "mean_edits", o[4]);
        lrgd_json_knum(&j, "guard_stage1_ndcg10", o[5]);
        lrgd_json_knum(&j, "guard_final_ndcg10", o[6]);
        lrgd_json_key(&j, "rolled_back");
        lrgd_json_bool(&j, o[7] != 0);
        lrgd_json_knum(&j, "seconds_stage1", o[8]);
        lrgd_json_knum(&j, "seconds_stage2", o[9]);
        lrgd_json_obj_end(&j);
    }
    lrgd_json_obj_end(&j);

    /* validity */
    lrgd_json_key(&j, "effect_validity");
    lrgd_json_obj_begin(&j);
    lrgd_json_kint(&j, "pairs", (long long)x->v_info[0]);
    lrgd_json_kint(&j, "users", (long long)x->v_info[1]);
    lrgd_json_knum(&j, "spearman", x->v_info[2]);
    lrgd_json_knum(&j, "spearman_per_token", x->v_info[3]);
    lrgd_json_knum(&j, "median_user_spearman", x->v_info[4]);
    lrgd_json_knum(&j, "seconds_per_pair_effect_score", x->v_info[5]);
    lrgd_json_knum(&j, "seconds_per_pair_encode_and_probe", x->v_info[6]);
    lrgd_json_knum(&j, "seconds_per_pair_forward", x->v_info[7]);
    lrgd_json_obj_end(&j);

    /* robustness */
    lrgd_json_key(&j, "robustness");
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "perturbation", "drop, random substitution and shuffle, each at the rate");
    lrgd_json_key(&j, "rates");
    lrgd_json_arr_begin(&j);
    for (int r = 0; r < N_RATES; r++) lrgd_json_num(&j, rates[r]);
    lrgd_json_arr_end(&j);
    for (int s = 0; s < N_RSEL; s++) {
        lrgd_json_key(&j, rsel_name[s]);
        lrgd_json_obj_begin(&j);
        for (int k = 0; k < 2; k++) {
            lrgd_json_key(&j, k ? "NDCG@10" : "HR@10");
            lrgd_json_arr_begin(&j);
            for (int r = 0; r < N_RATES; r++) lrgd_json_num(&j, x->rob[s][r][k]);
            lrgd_json_arr_end(&j);
        }
        lrgd_json_obj_end(&j);
    }
    /* loss from rate 0 to the largest rate */
    lrgd_json_knum(&j, "ndcg10_loss_plain", x->rob[R_PLAIN][0][1] - x->rob[R_PLAIN][N_RATES - 1][1]);
    lrgd_json_knum(&j, "ndcg10_loss_robust", x->rob[R_ROBUST][0][1] - x->rob[R_ROBUST][N_RATES - 1][1]);
    lrgd_json_obj_end(&j);

    /* replay */
    lrgd_json_key(&j, "replay");
    lrgd_json_obj_begin(&j);
    lrgd_json_kint(&j, "held_back", x->c.rsteps);
    lrgd_json_key(&j, "steps");
    lrgd_json_arr_begin(&j);
    for (int i = 0; i < x->rp_n; i++) {
        const double *r = x->rp + 7 * i;
        lrgd_json_obj_begin(&j);
        lrgd_json_kint(&j, "step", (long long)r[0]);
        lrgd_json_kint(&j, "users", (long long)r[1]);
        lrgd_json_knum(&j, "hr10_adapted", r[2]);
        lrgd_json_knum(&j, "ndcg10_adapted", r[3]);
        lrgd_json_knum(&j, "hr10_frozen", r[4]);
        lrgd_json_knum(&j, "ndcg10_frozen", r[5]);
        lrgd_json_knum(&j, "mean_replaced", r[6]);
        lrgd_json_obj_end(&j);
    }
    lrgd_json_arr_end(&j);
    if (x->rp_n)
        lrgd_json_knum(&j, "last_step_ndcg10_gap", x->rp[7 * (x->rp_n - 1) + 3] - x->rp[7 * (x->rp_n - 1) + 5]);
    lrgd_json_obj_end(&j);

    /* dual */
    int W = 4 + N_FEAT;
    lrgd_json_key(&j, "dual");
    lrgd_json_obj_begin(&j);
    lrgd_json_kint(&j, "users", (long long)x->dual_users);
    lrgd_json_key(&j, "features");
    lrgd_json_arr_begin(&j);
    for (int f = 0; f < N_FEAT; f++) lrgd_json_int(&j, 16 << f);
    lrgd_json_arr_end(&j);
    lrgd_json_knum(&j, "E3_slope", x->e3_slope);
    if (!x->dual_lin)
        lrgd_json_kstr(&j, "E1", x->c.model ? "not run: --model given (E1 needs a linear-attention model)"
                                            : "not run: --e1-epochs 0");
    lrgd_json_key(&j, "layers");
    lrgd_json_arr_begin(&j);
    for (int l = 0; l < x->L; l++) {
        const double *d = x->dual + (size_t)l * W;
        int lin = cfg->attn == LRGD_ATTN_LINEAR;
        lrgd_json_obj_begin(&j);
        lrgd_json_kint(&j, "layer", l);
        lrgd_json_knum(&j, lin ? "E1_max" : "E2_max", d[0]);
        lrgd_json_knum(&j, lin ? "E1_mean" : "E2_mean", d[1]);
        lrgd_json_knum(&j, "E4_max", d[2]);
        lrgd_json_knum(&j, "lambda_mean", d[3]);
        if (!lin) {
            lrgd_json_key(&j, "E3_mean");
            lrgd_json_arr_begin(&j);
            for (int f = 0; f < N_FEAT; f++) lrgd_json_num(&j, d[4 + f]);
            lrgd_json_arr_end(&j);
        }
        if (x->dual_lin && l < x->dual_lin_L) {
            const double *e = x->dual_lin + (size_t)l * W;
            lrgd_json_knum(&j, "E1_max_linear_model", e[0]);
            lrgd_json_knum(&j, "E1_mean_linear_model", e[1]);
            lrgd_json_knum(&j, "E4_max_linear_model", e[2]);
        }
        lrgd_json_obj_end(&j);
    }
    lrgd_json_arr_end(&j);
    lrgd_json_obj_end(&j);
    lrgd_json_knum(&j, "seconds", secs);
    lrgd_json_obj_end(&j);
    fputc('\n', f);
    return ferror(f) ? lrgd_fail(LRGD_E_WRITE, "writing results.json failed") : LRGD_OK;
}

/* ---- methods.csv ------------------------------------------------------------------ */

static lrgd_status write_csv(const xrun *x, FILE *f)
{
    fprintf(f, "# %s\n", cli_command_line());
    fprintf(f, "method,candidates,users");
    for (int k = 0; k < LRGD_N_METRICS; k++) fprintf(f, ",%s,%s_lo,%s_hi", lrgd_metric_name(all_metrics[k]),
                                                     lrgd_metric_name(all_metrics[k]), lrgd_metric_name(all_metrics[k]));
    fputc('\n', f);
    for (int m = 0; m < N_METHODS; m++)
        for (int c = 0; c < N_CAND; c++) {
            if (!x->cand_ok[c]) continue;
            fprintf(f, "%s,%s,%d", method_name[m], cand_name[c], x->n_users);
            for (int k = 0; k < LRGD_N_METRICS; k++) {
                lrgd_interval iv;
                LRGD_TRY(summary(x, m, c, all_metrics[k], &iv));
                fprintf(f, ",%.6f,%.6f,%.6f", iv.mean, iv.lo, iv.hi);
            }
            fputc('\n', f);
        }
    return ferror(f) ? lrgd_fail(LRGD_E_WRITE, "writing methods.csv failed") : LRGD_OK;
}

/* ---- report.html -------------------------------------------------------------------- */

static void html_esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

/* Inline the plot's SVG (the document's XML declaration, if any, left out). */
/* p as a <figure> into f when building it went well (st); frees p either way. */
static lrgd_status put_plot(FILE *f, lrgd_plot *p, lrgd_status st)
{
    char *svg = NULL;
    size_t len = 0;
    if (st == LRGD_OK) st = lrgd_plot_render(p, &svg, &len);
    if (st == LRGD_OK) {
        const char *s = strstr(svg, "<svg");
        fputs("<figure>", f);
        fputs(s ? s : svg, f);
        fputs("</figure>\n", f);
    }
    lrgd_free(svg);
    lrgd_plot_free(p);
    return st;
}

static void fnum(FILE *f, double v, const char *fmt)
{
    if (isfinite(v)) fprintf(f, fmt, v);
    else fputs("n/a", f);
}

static lrgd_status fig_methods(const xrun *x, FILE *f)
{
    double val[2 * N_METHODS], err[2 * N_METHODS];
    static const lrgd_metric pm[2] = {LRGD_NDCG10, LRGD_HR10};
    for (int s = 0; s < 2; s++)
        for (int m = 0; m < N_METHODS; m++) {
            lrgd_interval iv;
            LRGD_TRY(summary(x, m, 0, pm[s], &iv));
            val[s * N_METHODS + m] = iv.mean;
            err[s * N_METHODS + m] = iv.hi - iv.mean;
        }
    const char *labels[2] = {"NDCG@10", "HR@10"};
    lrgd_plot *p = NULL;
    char title[160];
    snprintf(title, sizeof title, "Methods, full ranking, %d users (95%% intervals)", x->n_users);
    LRGD_TRY(lrgd_plot_new(&p, title, "method", "metric"));
    lrgd_status st = lrgd_plot_size(p, 1000, 440);
    if (st == LRGD_OK) st = lrgd_plot_bars(p, N_METHODS, method_name, 2, labels, val, err);
    return put_plot(f, p, st);
}

static lrgd_status fig_validity(const xrun *x, FILE *f)
{
    lrgd_plot *p = NULL;
    char title[160];
    snprintf(title, sizeof title, "Effect_D vs true dlogP, %d (user, demonstration) pairs, Spearman %.3f", x->v_n,
             x->v_info[2]);
    LRGD_TRY(lrgd_plot_new(&p, title, "Effect_D (first-order, dot products)", "dlogP (forward passes)"));
    lrgd_status st = lrgd_plot_scatter(p, "pairs", x->v_eff, x->v_dlp, x->v_n);
    if (st == LRGD_OK) st = lrgd_plot_hline(p, 0, "");
    return put_plot(f, p, st);
}

static lrgd_status fig_robust(const xrun *x, FILE *f, int k)
{
    lrgd_plot *p = NULL;
    LRGD_TRY(lrgd_plot_new(&p, k ? "Robustness: NDCG@10 under test-time perturbation"
                                 : "Robustness: HR@10 under test-time perturbation",
                           "perturbation rate (drop, substitution, shuffle)", k ? "NDCG@10" : "HR@10"));
    lrgd_status st = LRGD_OK;
    for (int s = 0; s < N_RSEL && st == LRGD_OK; s++) {
        double y[N_RATES];
        for (int r = 0; r < N_RATES; r++) y[r] = x->rob[s][r][k];
        st = lrgd_plot_series(p, rsel_name[s], rates, y, NULL, N_RATES, LRGD_PLOT_MARKERS);
    }
    return put_plot(f, p, st);
}

static lrgd_status fig_replay(const xrun *x, FILE *f)
{
    lrgd_plot *p = NULL;
    LRGD_TRY(lrgd_plot_new(&p, "Long-term replay: adapted vs frozen demonstrations", "replay step", "metric"));
    double *sx = malloc(sizeof(double) * (size_t)(x->rp_n + 1) * 5);
    lrgd_status st = sx ? LRGD_OK : lrgd_fail(LRGD_E_NOMEM, "out of memory");
    static const char *const nm[4] = {"HR@10 adapted", "NDCG@10 adapted", "HR@10 frozen", "NDCG@10 frozen"};
    for (int s = 0; s < 4 && st == LRGD_OK; s++) {
        double *xs = sx, *ys = sx + (size_t)(s + 1) * (x->rp_n + 1);
        for (int i = 0; i < x->rp_n; i++) {
            xs[i] = x->rp[7 * i];
            ys[i] = x->rp[7 * i + 2 + s];
        }
        st = lrgd_plot_series(p, nm[s], xs, ys, NULL, x->rp_n, LRGD_PLOT_MARKERS | (s >= 2 ? LRGD_PLOT_DASHED : 0));
    }
    free(sx);
    return put_plot(f, p, st);
}

static lrgd_status fig_e3(const xrun *x, FILE *f)
{
    int W = 4 + N_FEAT;
    lrgd_plot *p = NULL;
    LRGD_TRY(lrgd_plot_new(&p, "E3: kernel dual error vs random features r (log-log)", "random features r",
                           "mean relative error"));
    lrgd_status st = lrgd_plot_axes(p, 1, 1);
    double r[N_FEAT], e[N_FEAT], ref[N_FEAT];
    for (int f = 0; f < N_FEAT; f++) r[f] = 16 << f;
    for (int l = 0; l < x->L && st == LRGD_OK; l++) {
        char lab[32];
        snprintf(lab, sizeof lab, "layer %d", l);
        for (int q = 0; q < N_FEAT; q++) e[q] = x->dual[(size_t)l * W + 4 + q];
        st = lrgd_plot_series(p, lab, r, e, NULL, N_FEAT, LRGD_PLOT_MARKERS);
    }
    /* the 1/sqrt(r) reference through the first point of layer 0 */
    double e0 = x->dual[4];
    for (int q = 0; q < N_FEAT; q++) ref[q] = e0 * sqrt(16.0 / r[q]);
    if (st == LRGD_OK && isfinite(e0) && e0 > 0)
        st = lrgd_plot_series(p, "1/sqrt(r)", r, ref, NULL, N_FEAT, LRGD_PLOT_DASHED);
    return put_plot(f, p, st);
}

static lrgd_status write_html(const xrun *x, FILE *f, double secs)
{
    const lrgd_config *cfg = lrgd_tmodel_config(x->t);
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>lrgd experiment</title>\n"
          "<style>body{font-family:sans-serif;margin:2em;max-width:1000px;color:#222}"
          "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}"
          "th{background:#eee}td:first-child{text-align:left}code{background:#f3f3f3;padding:1px 3px}"
          "figure{margin:1em 0}.note{color:#555;font-size:90%}</style>\n</head><body>\n",
          f);
    fputs("<h1>lrgd experiment</h1>\n<p><code>", f);
    html_esc(f, cli_command_line());
    fprintf(f, "</code></p>\n<p>lrgd %s, seed %llu. Data: ", lrgd_version(), (unsigned long long)x->com.seed);
    html_esc(f, x->data_path);
    fprintf(f, "%s (%d users, %d items, %lld interactions). Model: %d layers, dim %d, %d heads (%d kv), %s attention",
            x->c.synthetic ? " (planted-taste synthetic data)" : "", lrgd_dataset_n_users(x->ds),
            lrgd_dataset_n_items(x->ds), (long long)lrgd_dataset_n_interactions(x->ds), cfg->n_layers, cfg->dim,
            cfg->n_heads, cfg->n_kv_heads, cfg->attn == LRGD_ATTN_LINEAR ? "linear" : "softmax");
    if (!x->c.model)
        fprintf(f, ", trained %d epochs (best epoch %d, validation NDCG@10 %.4f)", (int)x->train_info[0],
                (int)x->train_info[1], x->train_info[2]);
    fprintf(f, ". Test users evaluated: %d (seeded sample); k = %d demonstrations, pool %d, %d stage-2 rounds, "
               "%d guard users. Total time %.1f s.</p>\n",
            x->n_users, x->oo.k, x->oo.pool, x->oo.rounds, x->n_hold, secs);

    /* methods */
    fputs("<h2>Methods (leave-one-out test items)</h2>\n<table><tr><th>method</th>", f);
    for (int k = 0; k < LRGD_N_METRICS; k++) fprintf(f, "<th>%s</th>", lrgd_metric_name(all_metrics[k]));
    for (int c = 1; c < N_CAND; c++) fprintf(f, "<th>HR@10 %s</th><th>NDCG@10 %s</th>", cand_name[c], cand_name[c]);
    fputs("</tr>\n", f);
    for (int m = 0; m < N_METHODS; m++) {
        fprintf(f, "<tr><td>%s</td>", method_name[m]);
        for (int k = 0; k < LRGD_N_METRICS; k++) {
            lrgd_interval iv;
            LRGD_TRY(summary(x, m, 0, all_metrics[k], &iv));
            fnum(f, iv.mean, "<td>%.4f</td>");
        }
        for (int c = 1; c < N_CAND; c++) {
            if (!x->cand_ok[c]) {
                fputs("<td>not run</td><td>not run</td>", f);
                continue;
            }
            lrgd_interval a, b;
            LRGD_TRY(summary(x, m, c, LRGD_HR10, &a));
            LRGD_TRY(summary(x, m, c, LRGD_NDCG10, &b));
            fprintf(f, "<td>%.4f</td><td>%.4f</td>", a.mean, b.mean);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n<p class=\"note\">Full ranking over all items (history excluded, ties count against the "
          "target) unless the column says 1+99 / 1+19 sampled candidates.</p>\n",
          f);
    LRGD_TRY(fig_methods(x, f));

    fputs("<h2>Paired significance (full ranking, NDCG@10)</h2>\n<table><tr><th>a vs b</th><th>mean(a-b)</th>"
          "<th>95% CI</th><th>t-test p</th><th>a better / b better</th><th>sign test p</th></tr>\n",
          f);
    cmp_pair cp[N_METHODS + 4];
    int ncp = comparisons(cp);
    for (int i = 0; i < ncp; i++) {
        lrgd_paired p;
        LRGD_TRY(paired(x, cp[i].a, cp[i].b, 0, LRGD_NDCG10, &p));
        fprintf(f, "<tr><td>%s vs %s</td><td>%+.4f</td><td>[%+.4f, %+.4f]</td><td>%.3g</td><td>%lld / %lld</td>"
                   "<td>%.3g</td></tr>\n",
                method_name[cp[i].a], method_name[cp[i].b], p.diff, p.diff_lo, p.diff_hi, p.p_t, (long long)p.n_pos,
                (long long)p.n_neg, p.p_sign);
    }
    fputs("</table>\n", f);

    fputs("<h2>Optimizer (validation targets)</h2>\n<table><tr><th>variant</th><th>log p zero-shot</th>"
          "<th>log p similar</th><th>log p Stage 1</th><th>log p two-stage</th><th>edits/user</th>"
          "<th>guard NDCG@10 Stage 1</th><th>guard final</th><th>rolled back</th></tr>\n",
          f);
    for (int v = 0; v < N_VAR; v++) {
        const double *o = x->opt_info[v];
        fprintf(f, "<tr><td>%s</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%.2f</td><td>%.4f</td>"
                   "<td>%.4f</td><td>%s</td></tr>\n",
                var_name[v], o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7] != 0 ? "yes" : "no");
    }
    fputs("</table>\n", f);

    /* validity */
    fprintf(f, "<h2>Effect_D validity</h2>\n<p>Spearman &rho; between Effect_D and the true &Delta;logP of inserting "
               "the demonstration after T: <b>");
    fnum(f, x->v_info[2], "%.3f");
    fputs("</b> over ", f);
    fprintf(f, "%d pairs (%d users, pool %d each); per-token form ", (int)x->v_info[0], (int)x->v_info[1], x->oo.pool);
    fnum(f, x->v_info[3], "%.3f");
    fputs("; median per-user &rho; ", f);
    fnum(f, x->v_info[4], "%.3f");
    fprintf(f, ". Cost per pair: Effect_D score %.3g s (+ %.3g s amortized encoding and probe) vs one ground-truth "
               "forward pass %.3g s (%.0fx).</p>\n",
            x->v_info[5], x->v_info[6], x->v_info[7], x->v_info[5] > 0 ? x->v_info[7] / x->v_info[5] : NAN);
    LRGD_TRY(fig_validity(x, f));

    fputs("<h2>Robustness</h2>\n<table><tr><th>selection</th>", f);
    for (int r = 0; r < N_RATES; r++) fprintf(f, "<th>NDCG@10 @%.1f</th>", rates[r]);
    fputs("</tr>\n", f);
    for (int s = 0; s < N_RSEL; s++) {
        fprintf(f, "<tr><td>%s</td>", rsel_name[s]);
        for (int r = 0; r < N_RATES; r++) fprintf(f, "<td>%.4f</td>", x->rob[s][r][1]);
        fputs("</tr>\n", f);
    }
    fprintf(f, "</table>\n<p>NDCG@10 lost from rate 0 to %.1f: plain Effect_D selection %.4f, robust selection "
               "%.4f.</p>\n",
            rates[N_RATES - 1], x->rob[R_PLAIN][0][1] - x->rob[R_PLAIN][N_RATES - 1][1],
            x->rob[R_ROBUST][0][1] - x->rob[R_ROBUST][N_RATES - 1][1]);
    LRGD_TRY(fig_robust(x, f, 1));
    LRGD_TRY(fig_robust(x, f, 0));

    fprintf(f, "<h2>Long-term replay</h2>\n<p>Replay split with %d held-back items per user. ", x->c.rsteps);
    if (x->rp_n)
        fprintf(f, "At the last step NDCG@10 adapted %.4f vs frozen %.4f (gap %+.4f).",
                x->rp[7 * (x->rp_n - 1) + 3], x->rp[7 * (x->rp_n - 1) + 5],
                x->rp[7 * (x->rp_n - 1) + 3] - x->rp[7 * (x->rp_n - 1) + 5]);
    fputs(" The embedded model was trained on everything but each user's last two items, so the earlier replay "
          "targets were seen in training.</p>\n",
          f);
    LRGD_TRY(fig_replay(x, f));

    int W = 4 + N_FEAT, lin = cfg->attn == LRGD_ATTN_LINEAR;
    fprintf(f, "<h2>Equivalence checks E1-E4 (%d users, similar demonstrations)</h2>\n<table><tr><th>layer</th>"
               "<th>%s max</th><th>%s mean</th><th>E4 max</th><th>&lambda; mean</th>",
            (int)x->dual_users, lin ? "E1" : "E2", lin ? "E1" : "E2");
    if (!lin) fprintf(f, "<th>E3 r=%d</th><th>E3 r=%d</th>", 16, 16 << (N_FEAT - 1));
    if (x->dual_lin) fputs("<th>E1 max (linear model)</th><th>E4 max (linear model)</th>", f);
    fputs("</tr>\n", f);
    for (int l = 0; l < x->L; l++) {
        const double *d = x->dual + (size_t)l * W;
        fprintf(f, "<tr><td>%d</td><td>%.2e</td><td>%.2e</td><td>%.2e</td><td>%.3f</td>", l, d[0], d[1], d[2], d[3]);
        if (!lin) fprintf(f, "<td>%.3g</td><td>%.3g</td>", d[4], d[4 + N_FEAT - 1]);
        if (x->dual_lin && l < x->dual_lin_L)
            fprintf(f, "<td>%.2e</td><td>%.2e</td>", x->dual_lin[(size_t)l * W], x->dual_lin[(size_t)l * W + 2]);
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    if (!x->dual_lin) fputs("<p>E1: not run (needs a linear-attention model).</p>\n", f);
    if (!lin) {
        fputs("<p>E3 fitted log-log slope over all layers: ", f);
        fnum(f, x->e3_slope, "%.3f");
        fputs(" (1/&radic;r is -0.5).</p>\n", f);
        LRGD_TRY(fig_e3(x, f));
    }
    fputs("<p class=\"note\">Numbers: results.json and methods.csv beside this file.</p>\n</body></html>\n", f);
    return ferror(f) ? lrgd_fail(LRGD_E_WRITE, "writing report.html failed") : LRGD_OK;
}

typedef lrgd_status (*writer_fn)(const xrun *x, FILE *f, double secs);
static lrgd_status write_csv_w(const xrun *x, FILE *f, double secs)
{
    (void)secs;
    return write_csv(x, f);
}

static lrgd_status write_out(const xrun *x, const char *name, writer_fn fn, double secs)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", x->c.out, name);
    lrgd_afile af;
    LRGD_TRY(lrgd_afile_open(&af, p));
    lrgd_status st = fn(x, af.f, secs);
    if (st == LRGD_OK) return lrgd_afile_commit(&af);
    lrgd_afile_abort(&af);
    return st;
}

/* ---- the command ------------------------------------------------------------------- */

static void free_run(xrun *x)
{
    for (int m = 0; m < N_METHODS; m++) free(x->ranks[m][0]);
    for (int v = 0; v < N_VAR; v++) {
        lrgd_selection_free(x->sel1[v]);
        lrgd_selection_free(x->sel2[v]);
    }
    lrgd_selection_free(x->sel_sim);
    if (x->v_eff) free(x->v_eff - 8);
    free(x->rp);
    free(x->dual);
    free(x->dual_lin);
    free(x->users);
    lrgd_tmodel_free(x->t);
    lrgd_split_free(x->sp);
    lrgd_dataset_free(x->ds_own);
    lrgd_synth_free(x->syn);
    lrgd_dist_map_free(&x->dm);
}

int cmd_experiment(int argc, char **argv)
{
    xrun x;
    memset(&x, 0, sizeof x);
    xcfg *c = &x.c;
    cli_common_init(&x.com);
    lrgd_train_opts_init(&c->tr);
    /* -1: not given (the defaults depend on --quick) */
    int epochs = -1, dim = -1, layers = -1, heads = -1, hidden = -1, batch = -1, seq = -1;
    c->users = c->hold = c->k = c->pool = c->rounds = c->vusers = c->rusers = c->e3users = c->e1epochs = c->npert = -1;
    double lr = -1;
    c->rsteps = 3;
    const cli_opt opts[] = {
        CLI_O_STR("data", &c->data, "an interaction file"),
        CLI_O_FLAG("synthetic", &c->synthetic),
        CLI_O_STR("out", &c->out, "a directory"),
        CLI_O_STR("model", &c->model, "a model file"),
        CLI_O_FLAG("quick", &c->quick),
        CLI_O_INT("epochs", &epochs, 1, 100000),
        CLI_O_INT("dim", &dim, 2, 4096),
        CLI_O_INT("layers", &layers, 1, 64),
        CLI_O_INT("heads", &heads, 1, 256),
        CLI_O_INT("hidden", &hidden, 1, 65536),
        CLI_O_INT("batch", &batch, 1, 1 << 20),
        CLI_O_INT("seq", &seq, 16, 1 << 16),
        CLI_O_INT("users", &c->users, 1, 100000000),
        CLI_O_INT("hold", &c->hold, 0, 100000000),
        CLI_O_INT("k", &c->k, 1, 16),
        CLI_O_INT("pool", &c->pool, 1, 100000),
        CLI_O_INT("rounds", &c->rounds, 0, 1000),
        CLI_O_INT("validity-users", &c->vusers, 1, 100000000),
        CLI_O_INT("replay-steps", &c->rsteps, 1, 100),
        CLI_O_INT("replay-users", &c->rusers, 1, 100000000),
        CLI_O_INT("e3-users", &c->e3users, 1, 100000000),
        CLI_O_INT("e1-epochs", &c->e1epochs, 0, 100000),
        CLI_O_DOUBLE("lr", &lr, 1e-9, 10),
        CLI_O_INT("n-perturb", &c->npert, 1, 1000),
        CLI_O_I64("shard-size", &x.shard_size, 1, 0x7fffffff),
        CLI_O_END};
    /* every option is checked before DIR is touched, so usage errors stay cheap */
    int rc = cli_parse(CMD, help_experiment, argc, argv, opts, &x.com);
    if (rc != CLI_CONTINUE) return rc;
    if (!c->out) return cli_usage(CMD, "--out DIR is required");
    if (!c->data == !c->synthetic) return cli_usage(CMD, "give exactly one of --data FILE and --synthetic");
    /* the reduced test configuration, then explicit options over it */
    if (c->quick) {
        c->tr.n_layers = 2, c->tr.dim = 32, c->tr.n_heads = 2, c->tr.n_kv_heads = 1, c->tr.hidden_dim = 64;
        c->tr.seq_len = 128, c->tr.epochs = 8, c->tr.batch = 32, c->tr.max_hist = 20, c->tr.demo_hist = 10;
        c->tr.adamw.lr = 3e-3;
        c->tr.adamw.warmup_steps = 10;
    }
    if (lr > 0) c->tr.adamw.lr = lr;
    if (epochs > 0) c->tr.epochs = epochs;
    if (dim > 0) c->tr.dim = dim;
    if (layers > 0) c->tr.n_layers = layers;
    if (heads > 0) c->tr.n_heads = heads, c->tr.n_kv_heads = 1;
    if (hidden > 0) c->tr.hidden_dim = hidden;
    if (batch > 0) c->tr.batch = batch;
    if (seq > 0) c->tr.seq_len = seq;
    if (c->tr.dim % c->tr.n_heads || (c->tr.dim / c->tr.n_heads) % 2)
        return cli_usage(CMD, "--dim %d must split into --heads %d heads of even size", c->tr.dim, c->tr.n_heads);
    if (c->users < 0) c->users = c->quick ? 40 : 200;
    if (c->k < 0) c->k = 3;
    if (c->pool < 0) c->pool = c->quick ? 12 : 50;
    if (c->rounds < 0) c->rounds = c->quick ? 1 : 3;
    if (c->vusers < 0) c->vusers = c->quick ? 10 : 30;
    if (c->e3users < 0) c->e3users = c->quick ? 4 : 10;
    if (c->e1epochs < 0) c->e1epochs = 2;
    if (c->users < 2) return cli_usage(CMD, "--users must be >= 2 (paired tests)");
    if (c->tr.max_hist + c->k * (c->tr.demo_hist + 3) + 2 > c->tr.seq_len)
        return cli_usage(CMD, "k = %d demonstrations of %d items and a history of %d do not fit --seq %d", c->k,
                         c->tr.demo_hist, c->tr.max_hist, c->tr.seq_len);
    if ((rc = cli_common_apply(CMD, &x.com)) != 0) return rc;
    if (c->model) { /* a text LLM is refused before DIR is touched */
        lrgd_model *m = NULL;
        lrgd_status st = lrgd_model_load(c->model, &m);
        if (st == LRGD_OK) st = cli_need_item_vocab(CMD, m, c->model);
        lrgd_model_free(m);
        if (st != LRGD_OK) return cli_fail(CMD, st);
    }

    lrgd_opt_opts_init(&x.oo);
    x.oo.k = c->k;
    x.oo.pool = c->pool;
    x.oo.rounds = c->rounds;
    x.oo.stage = c->rounds > 0 ? 2 : 1;
    x.oo.max_hist = c->tr.max_hist;
    x.oo.demo_hist = c->tr.demo_hist;
    x.oo.seed = x.com.seed;
    if (c->quick) x.oo.n_perturb = 4;
    if (c->npert > 0) x.oo.n_perturb = c->npert;
    c->npert = x.oo.n_perturb;

    double t0 = lrgd_now();
    config_text(&x);
    x.dist = lrgd_dist_size() > 1 || x.shard_size > 0;
    if (!rank0()) {
        x.com.quiet = 1; /* rank 0 speaks for the job */
        lrgd_set_quiet(1);
    }
    /* rank 0 owns DIR's stage files; the others wait for it */
    lrgd_status st = rank0() ? make_dirs(c->out) : LRGD_OK;
    if (st == LRGD_OK && rank0()) st = write_config(&x);
    if (st == LRGD_OK) st = lrgd_dist_barrier();
    if (st == LRGD_OK) st = stage_data(&x);
    if (st == LRGD_OK) st = stage_train(&x);
    if (st == LRGD_OK && x.dist) {
        /* what every sharded job depends on: the data, the model bytes, the
         * configuration and the threads; the ranks check they agree */
        char mp[4200];
        if (c->model) snprintf(mp, sizeof mp, "%s", c->model);
        else snprintf(mp, sizeof mp, "%s/model.gguf", c->out);
        x.hash = lrgd_hash_dataset(LRGD_HASH_INIT, x.ds);
        st = lrgd_hash_file(&x.hash, mp);
        int64_t th[2] = {lrgd_get_threads(), x.shard_size};
        x.hash = lrgd_hash64(x.hash, th, sizeof th);
        x.hash = lrgd_hash64(x.hash, x.cfg_text, (size_t)x.cfg_len);
        snprintf(x.shard_dir, sizeof x.shard_dir, "%s/ckpt/shards", c->out);
        lrgd_dist_map_init(&x.dm, CMD, x.hash, x.shard_dir, x.shard_size);
    }
    if (st == LRGD_OK) st = stage_optimize(&x);
    if (st == LRGD_OK) cli_note(CMD, x.com.quiet, "methods: %d methods x %d candidate sets, %d users", N_METHODS, N_CAND, x.n_users);
    if (st == LRGD_OK) st = stage_methods(&x);
    if (st == LRGD_OK) cli_note(CMD, x.com.quiet, "validity: Effect_D vs dlogP");
    if (st == LRGD_OK) st = stage_validity(&x);
    if (st == LRGD_OK) cli_note(CMD, x.com.quiet, "robustness: %d selections x %d rates", N_RSEL, N_RATES);
    if (st == LRGD_OK) st = stage_robust(&x);
    if (st == LRGD_OK) st = stage_replay(&x);
    if (st == LRGD_OK) st = stage_dual(&x);
    if (st == LRGD_OK && x.dist) st = lrgd_dist_map_finish(&x.dm);
    double secs = lrgd_now() - t0;
    if (!rank0()) { /* rank 0 writes every output; wait for it asleep (MPI_Finalize would spin) */
        free_run(&x);
        return cli_dist_end(CMD, st);
    }
    if (st == LRGD_OK) st = write_out(&x, "results.json", write_json, secs);
    if (st == LRGD_OK) st = write_out(&x, "methods.csv", write_csv_w, secs);
    if (st == LRGD_OK) st = write_out(&x, "report.html", write_html, secs);
    if (st == LRGD_OK && x.com.json) st = write_json(&x, stdout, secs);
    if (st == LRGD_OK && !(x.com.json && x.com.quiet)) {
        FILE *f = x.com.json ? stderr : stdout;
        fprintf(f, "%-20s %9s %9s %9s %9s\n", "method", "HR@10", "NDCG@10", "HR@10/20", "NDCG@10/20");
        for (int m = 0; m < N_METHODS; m++) {
            lrgd_interval a, b, a2 = {0}, b2 = {0};
            if (summary(&x, m, 0, LRGD_HR10, &a) || summary(&x, m, 0, LRGD_NDCG10, &b)) break;
            if (x.cand_ok[2]) {
                summary(&x, m, 2, LRGD_HR10, &a2);
                summary(&x, m, 2, LRGD_NDCG10, &b2);
            }
            fprintf(f, "%-20s %9.4f %9.4f %9.4f %9.4f\n", method_name[m], a.mean, b.mean, a2.mean, b2.mean);
        }
        fprintf(f, "Effect_D vs dlogP: Spearman %.3f over %d pairs\n", x.v_info[2], x.v_n);
        fprintf(f, "robustness NDCG@10 loss at rate %.1f: plain %.4f, robust %.4f\n", rates[N_RATES - 1],
                x.rob[R_PLAIN][0][1] - x.rob[R_PLAIN][N_RATES - 1][1],
                x.rob[R_ROBUST][0][1] - x.rob[R_ROBUST][N_RATES - 1][1]);
        if (x.rp_n)
            fprintf(f, "replay last step NDCG@10: adapted %.4f, frozen %.4f\n", x.rp[7 * (x.rp_n - 1) + 3],
                    x.rp[7 * (x.rp_n - 1) + 5]);
        fprintf(f, "E3 slope %.3f; report: %s/report.html (%.1f s)\n", x.e3_slope, c->out, secs);
    }
    free_run(&x);
    return cli_dist_end(CMD, st);
}
