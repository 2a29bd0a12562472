/* lrgd eval: the LOO protocol (LRGD.md §5) for any registered method, with
 * a table, JSON (metrics, 95% intervals, configuration, dataset counts),
 * per-user ranks as CSV, and a paired comparison of two methods. */
#include "cli.h"
#include "commands.h"
#include "core/dist.h"
#include "lrgd/eval.h"
#include "lrgd/textrec.h"
#include "lrgd/train.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "eval"

const char help_eval[] =
    "usage: lrgd eval --data FILE --method NAME [options]\n"
    "\n"
    "Evaluate a recommender with leave-one-out: each user's last item is the\n"
    "test item, the one before it the validation item, the rest training.\n"
    "Users with fewer than 3 interactions are skipped (and counted). Methods\n"
    "are fitted only on what the split allows at the chosen step: for --split\n"
    "valid, the training items; for --split test, training + validation items\n"
    "(never a test item).\n"
    "\n"
    "Ranking: the target against all items, or against N-1 negatives drawn\n"
    "uniformly from items the user never interacted with (seeded per user:\n"
    "the same negatives for every method and thread count). Items of the\n"
    "user's input history are not ranked unless --keep-history. A tie counts\n"
    "against the target. Metrics: HR@1/5/10/20, NDCG@5/10/20, MRR, each with a\n"
    "95% t-interval over users.\n"
    "\n"
    "options:\n"
    "  --data FILE          interactions: Amazon sequence file or RecBole .inter\n"
    "  --format F           amazon | recbole | auto (default auto)\n"
    "  --items FILE         item text (checked against the dataset; not used by\n"
    "                       pop/itemknn)\n"
    "  --method NAME        pop | itemknn | model | textllm (see below)\n"
    "  --compare NAME       also run NAME and print paired tests (t-test and\n"
    "                       exact sign test) per metric\n"
    "  --candidates C       all | N: target + N-1 sampled negatives, e.g. 100\n"
    "                       or 20 (default all; 20 for textllm)\n"
    "  --split S            test | valid (default test)\n"
    "  --keep-history       rank the user's history items too\n"
    "  --batch N            users per scorer call (default 64)\n"
    "  --ranks-csv FILE     per-user ranks (external ids) as CSV\n"
    "  --out FILE           results as JSON (written atomically)\n"
    "  --checkpoint DIR     shard the users and keep each finished shard's ranks\n"
    "                       in DIR; a re-run with the same options resumes and\n"
    "                       computes only the missing shards (see below)\n"
    "  --shard-size N       users per shard, a multiple of --batch (default:\n"
    "                       about 1/64 of the users, rounded up to the batch)\n"
    "  --knn-k N            itemknn: neighbours kept per item (default 100)\n"
    "  --knn-window N       itemknn: co-occurrence window in positions, 0 = whole\n"
    "                       sequence (default 5)\n"
    "  --knn-decay X        itemknn: recency weight decay^age, in (0,1] (default 0.7)\n"
    "  --knn-shrink X       itemknn: cosine shrinkage >= 0 (default 0)\n"
    "  --knn-pop X          itemknn: add X * count/max count of Pop to every score,\n"
    "                       ordering items no neighbour list reaches; 0 = pure\n"
    "                       ItemKNN (default 0.001)\n" CLI_COMMON_HELP
    "\n"
    "methods:\n"
    "  pop       popularity: training interactions per item\n"
    "  itemknn   item-item cosine on co-occurrence in training sequences,\n"
    "            recency-weighted sum over the user's history, popularity as a\n"
    "            tie-breaker (--knn-pop)\n"
    "  model     a model trained by 'lrgd train' (--model): items ranked by the\n"
    "            logits at the answer marker of [BOS | demonstrations | history ANS]\n"
    "  model-none, model-random, model-similar\n"
    "            the same with --demos fixed (for --compare)\n"
    "  textllm   a GGUF text LLM (--model) prompted with item titles (--items;\n"
    "            'item <id>' for items without text) after --demos\n"
    "            demonstrations chosen as for model; a candidate's score is\n"
    "            the summed log-likelihood of ' TITLE\\n' after the answer marker,\n"
    "            the prompt's KV cache reused for every candidate. Full ranking\n"
    "            runs every item per user (slow with a real LLM): the default\n"
    "            for this method is 20 candidates\n"
    "  textllm-none, textllm-random, textllm-similar\n"
    "            the same with --demos fixed (for --compare)\n"
    "\n"
    "model options:\n"
    "  --model FILE         GGUF written by lrgd train (same dataset file)\n"
    "  --demos M            none | random | similar (default similar): no\n"
    "                       demonstrations, random training users, or the users\n"
    "                       most similar to the query (recency-weighted overlap)\n"
    "  --k N                demonstrations per prompt (default 3)\n"
    "  --max-hist N         query history cap (default 50, as lrgd train)\n"
    "  --demo-hist N        demonstration history cap (default 20, as lrgd train)\n"
    "  --engine             score through the inference engine one prompt at a\n"
    "                       time (slow; the default packs a batch of prompts)\n"
    "\n"
    "textllm options (and --demos, --k, --demo-hist as above):\n"
    "  --model FILE         GGUF text LLM with its tokenizer (tokenizer.ggml.model\n"
    "                       llama or gpt2)\n"
    "  --text-hist N        most recent history items in the prompt (default 20)\n"
    "  --text-title-bytes N cut titles to N bytes at a character boundary\n"
    "                       (default 160; 0: no cut)\n"
    "  --text-score S       sum | mean: summed log-likelihood of the candidate's\n"
    "                       tokens, or its mean per token (default sum)\n"
    "  --text-ctx N         context length (default: the model's)\n"
    "\n"
    "MPI: built with -DLRGD_MPI=ON, 'mpirun -np N lrgd eval ...' shards the\n"
    "users across N ranks; every rank loads the data and fits the method\n"
    "itself, rank 0 gathers the per-user ranks and writes every output. The\n"
    "numbers are the same as one process's with the same seed. A rank that\n"
    "fails stops the job; with --checkpoint a re-run resumes (with any N).\n"
    "See docs/DISTRIBUTED.md.\n";

typedef struct eval_args {
    const char *data, *items, *format_name, *method, *compare, *ranks_csv, *out, *candidates;
    lrgd_data_format format;
    int n_neg;        /* 0: all items */
    int step;         /* LRGD_STEP_TEST or LRGD_STEP_VALID */
    int keep_history;
    int batch;
    lrgd_itemknn_opts knn;
    cli_common com;
    const char *model;            /* method model*: the GGUF file */
    lrgd_model_scorer_opts mopts; /* method model*: prompts */
    const char *ckpt;             /* --checkpoint DIR (NULL: none) */
    long long shard_size;         /* --shard-size (0: default) */
    lrgd_textrec_opts topts;      /* method textllm: prompts and scores */
    /* Options of methods added later go here, with their entries in
     * cmd_eval's option table. */
} eval_args;

/* ---- methods: the registration point ------------------------------------------
 *
 * One row per method. make() builds a scorer fitted on the split at `step`:
 * it may read only lrgd_split_train_items / lrgd_split_history at that step
 * (never lrgd_dataset_user_items, which includes held-out items), with the
 * demonstrations `mode` of the row (--demos for a row without one). config()
 * writes the method's own parameters into the JSON config. To add a method,
 * write the two functions and add a row; the evaluator, table, JSON, CSV
 * and --compare need nothing else. */
typedef lrgd_status (*make_fn)(const eval_args *a, const lrgd_split *sp, int step, lrgd_demo_mode mode,
                               lrgd_scorer *out);
typedef struct eval_method {
    const char *name;
    make_fn make;
    void (*config)(lrgd_json *j, const eval_args *a);
    int mode; /* the demonstrations of model* and textllm* rows; -1: --demos */
} eval_method;

/* The scorer of method m at step. */
static lrgd_status method_make(const eval_method *m, const eval_args *a, const lrgd_split *sp, int step,
                               lrgd_scorer *out)
{
    return m->make(a, sp, step, m->mode < 0 ? a->mopts.demos : (lrgd_demo_mode)m->mode, out);
}

static lrgd_status make_pop(const eval_args *a, const lrgd_split *sp, int step, lrgd_demo_mode mode, lrgd_scorer *out)
{
    (void)a, (void)mode;
    return lrgd_scorer_pop(sp, step, out);
}

static lrgd_status make_itemknn(const eval_args *a, const lrgd_split *sp, int step, lrgd_demo_mode mode,
                                lrgd_scorer *out)
{
    (void)mode;
    return lrgd_scorer_itemknn(sp, step, &a->knn, out);
}

static void config_itemknn(lrgd_json *j, const eval_args *a)
{
    lrgd_json_kint(j, "top_k", a->knn.top_k);
    lrgd_json_kint(j, "window", a->knn.window);
    lrgd_json_knum(j, "decay", a->knn.decay);
    lrgd_json_knum(j, "shrink", a->knn.shrink);
    lrgd_json_knum(j, "pop_weight", a->knn.pop_weight);
}

static lrgd_status make_model(const eval_args *a, const lrgd_split *sp, int step, lrgd_demo_mode mode,
                              lrgd_scorer *out)
{
    if (!a->model) return lrgd_fail(LRGD_E_INVALID, "methods model*: --model FILE is required");
    lrgd_model_scorer_opts o = a->mopts;
    o.demos = mode;
    o.seed = a->com.seed;
    return lrgd_scorer_model(sp, step, a->model, &o, out);
}


static void config_model(lrgd_json *j, const eval_args *a)
{
    lrgd_json_kstr(j, "model", a->model ? a->model : "");
    lrgd_json_kstr(j, "demos_option", lrgd_demo_mode_name(a->mopts.demos));
    lrgd_json_kint(j, "k", a->mopts.k);
    lrgd_json_kint(j, "max_hist", a->mopts.max_hist);
    lrgd_json_kint(j, "demo_hist", a->mopts.demo_hist);
    lrgd_json_kstr(j, "scoring", a->mopts.engine ? "engine (lrgd_eval per prompt)" : "batched forward");
}

/* textllm: the model file and its tokenizer, owned by the scorer; the
 * demonstrations are chosen as for the model methods (--demos, --k,
 * --demo-hist) from what the split allows at step. */
static lrgd_status make_textllm(const eval_args *a, const lrgd_split *sp, int step, lrgd_demo_mode mode,
                                lrgd_scorer *out)
{
    if (!a->model) return lrgd_fail(LRGD_E_INVALID, "method textllm: --model FILE (a GGUF text LLM) is required");
    lrgd_textrec_icl icl;
    lrgd_textrec_icl_init(&icl);
    icl.sp = sp;
    icl.step = step;
    icl.mode = a->mopts.k > 0 ? mode : LRGD_DEMOS_NONE;
    icl.k = a->mopts.k > 0 ? a->mopts.k : 1;
    icl.demo_hist = a->mopts.demo_hist;
    icl.seed = a->com.seed;
    lrgd_textrec *tr;
    LRGD_TRY(lrgd_textrec_load(a->model, lrgd_split_dataset(sp), &a->topts, &tr));
    lrgd_status st = lrgd_scorer_textllm(tr, 1, &icl, out);
    if (st != LRGD_OK) lrgd_textrec_free(tr);
    return st;
}

static void config_textllm(lrgd_json *j, const eval_args *a)
{
    lrgd_json_kstr(j, "model", a->model ? a->model : "");
    lrgd_json_kstr(j, "demos_option", lrgd_demo_mode_name(a->mopts.demos));
    lrgd_json_kint(j, "k", a->mopts.k);
    lrgd_json_kint(j, "demo_hist", a->mopts.demo_hist);
    lrgd_json_kint(j, "text_hist", a->topts.max_hist);
    lrgd_json_kint(j, "title_bytes", a->topts.max_title_bytes);
    lrgd_json_kstr(j, "score", a->topts.length_norm ? "mean log-likelihood per token" : "summed log-likelihood");
    lrgd_json_kint(j, "n_ctx", a->topts.n_ctx);
    lrgd_json_kstr(j, "items_without_text", "item <id>");
}

static const eval_method methods[] = {
    {"pop", make_pop, NULL, -1},
    {"itemknn", make_itemknn, config_itemknn, -1},
    {"model", make_model, config_model, -1},
    {"model-none", make_model, config_model, LRGD_DEMOS_NONE},
    {"model-random", make_model, config_model, LRGD_DEMOS_RANDOM},
    {"model-similar", make_model, config_model, LRGD_DEMOS_SIMILAR},
    {"textllm", make_textllm, config_textllm, -1},
    {"textllm-none", make_textllm, config_textllm, LRGD_DEMOS_NONE},
    {"textllm-random", make_textllm, config_textllm, LRGD_DEMOS_RANDOM},
    {"textllm-similar", make_textllm, config_textllm, LRGD_DEMOS_SIMILAR},
};
#define N_METHODS (int)(sizeof methods / sizeof methods[0])

static const eval_method *find_method(const char *name)
{
    for (int i = 0; i < N_METHODS; i++)
        if (strcmp(methods[i].name, name) == 0) return &methods[i];
    return NULL;
}

/* ---- one method's run ------------------------------------------------------------ */

typedef struct run {
    const eval_method *m;
    lrgd_eval_result *res;
    lrgd_interval metric[LRGD_N_METRICS];
    double fit_seconds;
} run;

static lrgd_status run_method(const eval_args *a, const lrgd_split *sp, const eval_method *m, run *r)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    lrgd_scorer sc = {0};
    double t0 = lrgd_now();
    lrgd_status st = method_make(m, a, sp, a->step, &sc);
    if (st != LRGD_OK) return lrgd_fail_wrap(st, "method %s", m->name);
    r->fit_seconds = lrgd_now() - t0;
    lrgd_eval_opts o;
    lrgd_eval_opts_init(&o);
    o.n_neg = a->n_neg;
    o.seed = a->com.seed;
    o.keep_history = a->keep_history;
    o.batch = a->batch;
    o.label = m->name;
    st = lrgd_evaluate(sp, a->step, &sc, &o, &r->res);
    lrgd_scorer_release(&sc);
    if (st != LRGD_OK) return st;
    for (int k = 0; k < LRGD_N_METRICS; k++)
        LRGD_TRY(lrgd_metric_summary((lrgd_metric)k, r->res->ranks, r->res->n, &r->metric[k]));
    return LRGD_OK;
}

/* Per-user metric values of a run, for the paired tests. */
static double *metric_column(const run *r, lrgd_metric m)
{
    double *v = malloc((size_t)r->res->n * sizeof *v);
    if (v)
        for (int i = 0; i < r->res->n; i++) v[i] = lrgd_metric_value(m, r->res->ranks[i]);
    return v;
}

/* ---- sharded runs (MPI ranks and/or checkpoints) ------------------------------------
 *
 * The users of the split are cut into shards of whole batches (core/dist.h),
 * so every scorer call sees exactly the users it would in one process.
 * Each rank fits the method(s) itself, the first time it has a shard to
 * compute, and evaluates its shards; the per-user records are gathered to
 * rank 0, which builds the same lrgd_eval_result a single run produces and
 * computes metrics and paired tests from it. */

typedef struct dist_info {
    int sharded; /* 0: the single-process path (no shards) */
    int ranks;
    int64_t shard_size, n_shards, computed, resumed;
    double seconds; /* wall time of the sharded phase on rank 0 */
    char ckpt[1024];
    uint64_t config_hash;
} dist_info;

/* One user's result: records are gathered and checkpointed as bytes. */
typedef struct eval_rec {
    int32_t user, target, n_ranked, rank[2];
} eval_rec;

typedef struct shard_ctx {
    const eval_args *a;
    const lrgd_split *sp;
    const eval_method *m[2];
    int n_methods;
    lrgd_scorer sc[2];
    int made[2];
    double fit_s[2], eval_s[2];
} shard_ctx;

static lrgd_status eval_shard(void *vctx, int64_t begin, int64_t end, void *out)
{
    shard_ctx *c = vctx;
    eval_rec *rec = out;
    for (int r = 0; r < c->n_methods; r++) {
        if (!c->made[r]) {
            double t0 = lrgd_now();
            lrgd_status st = method_make(c->m[r], c->a, c->sp, c->a->step, &c->sc[r]);
            if (st != LRGD_OK) return lrgd_fail_wrap(st, "method %s", c->m[r]->name);
            c->made[r] = 1;
            c->fit_s[r] = lrgd_now() - t0;
        }
        lrgd_eval_opts o;
        lrgd_eval_opts_init(&o);
        o.n_neg = c->a->n_neg;
        o.seed = c->a->com.seed;
        o.keep_history = c->a->keep_history;
        o.batch = c->a->batch;
        o.label = c->m[r]->name;
        o.users = lrgd_split_users(c->sp) + begin;
        o.n_users = (int)(end - begin);
        lrgd_eval_result *res;
        LRGD_TRY(lrgd_evaluate(c->sp, c->a->step, &c->sc[r], &o, &res));
        c->eval_s[r] += res->seconds;
        for (int i = 0; i < res->n; i++) {
            eval_rec *e = &rec[i];
            if (r == 0) {
                e->user = res->users[i];
                e->target = res->targets[i];
                e->n_ranked = res->n_ranked[i];
                e->rank[1] = 0;
            } else if (e->user != res->users[i] || e->target != res->targets[i] || e->n_ranked != res->n_ranked[i]) {
                lrgd_eval_result_free(res);
                return lrgd_fail(LRGD_E_RUNTIME, "the two methods were evaluated on different users or candidates");
            }
            e->rank[r] = res->ranks[i];
        }
        lrgd_eval_result_free(res);
    }
    return LRGD_OK;
}

/* Everything the per-user ranks depend on, as text (kept next to the
 * checkpoints) and hashed with the data and the model file. Threads are
 * left out: the evaluator's ranks do not depend on them. */
static lrgd_status eval_config(const eval_args *a, const lrgd_split *sp, int64_t shard_size, char **text,
                               uint64_t *hash)
{
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    int model = !strncmp(a->method, "model", 5) || (a->compare && !strncmp(a->compare, "model", 5)) ||
                !strncmp(a->method, "textllm", 7) || (a->compare && !strncmp(a->compare, "textllm", 7));
    uint64_t h = LRGD_HASH_INIT, data_h = LRGD_HASH_INIT, model_h = 0, items_h = 0;
    int n_users = lrgd_dataset_n_users(ds), n_items = lrgd_dataset_n_items(ds);
    data_h = lrgd_hash64(data_h, &n_users, sizeof n_users);
    data_h = lrgd_hash64(data_h, &n_items, sizeof n_items);
    data_h = lrgd_hash64(data_h, lrgd_dataset_offsets(ds), (size_t)(n_users + 1) * sizeof(int64_t));
    data_h = lrgd_hash64(data_h, lrgd_dataset_items(ds), (size_t)lrgd_dataset_n_interactions(ds) * sizeof(int32_t));
    if (model && a->model) {
        model_h = LRGD_HASH_INIT;
        LRGD_TRY(lrgd_hash_file(&model_h, a->model));
    }
    if (a->items) { /* item titles: textllm's prompts */
        items_h = LRGD_HASH_INIT;
        LRGD_TRY(lrgd_hash_file(&items_h, a->items));
    }
    char *t = NULL;
    size_t tn = 0;
    FILE *f = open_memstream(&t, &tn);
    if (!f) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    fprintf(f,
            "lrgd eval shards v1\ndata %s\ndata_hash %016llx\nusers %d\nmethod %s\ncompare %s\nn_neg %d\n"
            "step %d\nkeep_history %d\nbatch %d\nshard_size %lld\nseed %llu\n",
            a->data, (unsigned long long)data_h, lrgd_split_n_users(sp), a->method, a->compare ? a->compare : "-",
            a->n_neg, a->step, a->keep_history, a->batch, (long long)shard_size, (unsigned long long)a->com.seed);
    fprintf(f, "knn %d %d %.17g %.17g %.17g\n", a->knn.top_k, a->knn.window, a->knn.decay, a->knn.shrink,
            a->knn.pop_weight);
    if (a->items) fprintf(f, "items %s\nitems_hash %016llx\n", a->items, (unsigned long long)items_h);
    if (model)
        fprintf(f, "model %s\nmodel_hash %016llx\nmodel_opts %d %d %d %d %d\n", a->model ? a->model : "-",
                (unsigned long long)model_h, (int)a->mopts.demos, a->mopts.k, a->mopts.max_hist, a->mopts.demo_hist,
                a->mopts.engine);
    if (model)
        fprintf(f, "textllm %d %d %d %d\n", a->topts.max_hist, a->topts.max_title_bytes, a->topts.length_norm,
                a->topts.n_ctx);
    if (fclose(f) != 0 || !t) { free(t); return lrgd_fail(LRGD_E_NOMEM, "out of memory"); }
    /* The hash leaves out the paths: the same bytes elsewhere resume. */
    h = lrgd_hash64(h, &data_h, sizeof data_h);
    h = lrgd_hash64(h, &model_h, sizeof model_h);
    h = lrgd_hash64(h, &items_h, sizeof items_h);
    for (const char *line = t; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line + 1) : strlen(line);
        if (strncmp(line, "data ", 5) && strncmp(line, "model ", 6) && strncmp(line, "items ", 6))
            h = lrgd_hash64(h, line, len);
        line += len;
    }
    *text = t;
    *hash = h;
    return LRGD_OK;
}

/* Rank 0 gets runs[] filled as run_method would fill them; other ranks get
 * nothing (runs[].res stays NULL). Collective. */
static lrgd_status run_sharded(const eval_args *a, const lrgd_split *sp, const eval_method *m1,
                               const eval_method *m2, run *runs, dist_info *di)
{
    shard_ctx c;
    memset(&c, 0, sizeof c);
    c.a = a;
    c.sp = sp;
    c.m[0] = m1;
    c.m[1] = m2;
    c.n_methods = m2 ? 2 : 1;
    int n = lrgd_split_n_users(sp);
    int64_t shard_size = a->shard_size ? a->shard_size : lrgd_shards_default_size(n, a->batch);
    lrgd_shard_job job;
    memset(&job, 0, sizeof job);
    char *text = NULL;
    LRGD_TRY(eval_config(a, sp, shard_size, &text, &job.config_hash));
    lrgd_status st = lrgd_dist_agree_u64(job.config_hash, "the configuration hash (data, model, options)");
    if (st == LRGD_OK) st = lrgd_shards_init(&job.shards, n, shard_size);
    job.name = CMD;
    job.config_text = text;
    job.ckpt_dir = a->ckpt;
    job.rec_size = sizeof(eval_rec);
    job.run = eval_shard;
    job.ctx = &c;
    eval_rec *all = NULL;
    if (st == LRGD_OK && lrgd_dist_rank() == 0) {
        all = malloc((size_t)n * sizeof *all + 1);
        if (!all) st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    }
    lrgd_shard_stats ss;
    if (st == LRGD_OK) st = lrgd_shards_run(&job, all, &ss);
    for (int r = 0; r < 2; r++) lrgd_scorer_release(&c.sc[r]);
    free(text);
    /* Times: the slowest rank's (a rank that resumed everything fitted nothing). */
    double times[4] = {c.fit_s[0], c.fit_s[1], c.eval_s[0], c.eval_s[1]};
    if (st == LRGD_OK) st = lrgd_dist_max_f64(times, 4);
    if (st == LRGD_OK) {
        di->sharded = 1;
        di->ranks = lrgd_dist_size();
        di->shard_size = shard_size;
        di->n_shards = job.shards.n_shards;
        di->computed = ss.total_computed;
        di->resumed = ss.total_resumed;
        di->seconds = ss.seconds;
        di->config_hash = job.config_hash;
        snprintf(di->ckpt, sizeof di->ckpt, "%s", ss.ckpt_path);
    }
    for (int r = 0; r < c.n_methods && st == LRGD_OK && lrgd_dist_rank() == 0; r++) {
        run *rr = &runs[r];
        memset(rr, 0, sizeof *rr);
        rr->m = c.m[r];
        rr->fit_seconds = times[r];
        lrgd_eval_result *res = calloc(1, sizeof *res);
        if (!res) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); break; }
        rr->res = res;
        res->n = n;
        res->seconds = times[2 + r];
        res->users = malloc((size_t)n * sizeof *res->users);
        res->targets = malloc((size_t)n * sizeof *res->targets);
        res->ranks = malloc((size_t)n * sizeof *res->ranks);
        res->n_ranked = malloc((size_t)n * sizeof *res->n_ranked);
        if (!res->users || !res->targets || !res->ranks || !res->n_ranked) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); break; }
        for (int i = 0; i < n; i++) {
            res->users[i] = all[i].user;
            res->targets[i] = all[i].target;
            res->n_ranked[i] = all[i].n_ranked;
            res->ranks[i] = all[i].rank[r];
        }
        for (int k = 0; k < LRGD_N_METRICS && st == LRGD_OK; k++)
            st = lrgd_metric_summary((lrgd_metric)k, res->ranks, res->n, &rr->metric[k]);
    }
    free(all);
    return st;
}

/* ---- output ----------------------------------------------------------------------- */

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static const char *format_name(lrgd_data_format f)
{
    return f == LRGD_DATA_AMAZON ? "amazon" : f == LRGD_DATA_RECBOLE ? "recbole" : "memory";
}

static void json_interval(lrgd_json *j, const char *key, const lrgd_interval *iv)
{
    lrgd_json_key(j, key);
    lrgd_json_obj_begin(j);
    lrgd_json_knum(j, "mean", iv->mean);
    lrgd_json_knum(j, "lo", iv->lo);
    lrgd_json_knum(j, "hi", iv->hi);
    lrgd_json_knum(j, "sd", iv->sd);
    lrgd_json_obj_end(j);
}

static void write_json(FILE *f, const eval_args *a, const lrgd_dataset *ds, const lrgd_split *sp, const run *runs,
                       int n_runs, const lrgd_paired *paired, const dist_info *di)
{
    lrgd_json j;
    lrgd_json_init(&j, f, 1);
    lrgd_json_obj_begin(&j);
    lrgd_json_key(&j, "run");
    lrgd_json_obj_begin(&j);
    cli_json_run_info(&j, &a->com);
    lrgd_json_obj_end(&j);

    lrgd_json_key(&j, "config");
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "data", a->data);
    lrgd_json_kstr(&j, "format", format_name(lrgd_dataset_format(ds)));
    if (a->items) lrgd_json_kstr(&j, "items", a->items);
    else { lrgd_json_key(&j, "items"); lrgd_json_null(&j); }
    lrgd_json_kstr(&j, "method", a->method);
    if (a->compare) lrgd_json_kstr(&j, "compare", a->compare);
    else { lrgd_json_key(&j, "compare"); lrgd_json_null(&j); }
    lrgd_json_kstr(&j, "candidates", a->n_neg ? "sampled" : "all");
    lrgd_json_kint(&j, "n_negatives", a->n_neg);
    lrgd_json_kstr(&j, "negatives_from", "items the user never interacted with, seeded per user");
    lrgd_json_kstr(&j, "split", a->step == LRGD_STEP_TEST ? "test" : "valid");
    lrgd_json_key(&j, "keep_history");
    lrgd_json_bool(&j, a->keep_history);
    lrgd_json_kstr(&j, "ties", "count against the target");
    lrgd_json_kint(&j, "batch", a->batch);
    for (int r = 0; r < n_runs; r++)
        if (runs[r].m->config) {
            lrgd_json_key(&j, runs[r].m->name);
            lrgd_json_obj_begin(&j);
            runs[r].m->config(&j, a);
            lrgd_json_obj_end(&j);
        }
    lrgd_json_obj_end(&j);

    const lrgd_data_stats *s = lrgd_dataset_stats(ds);
    lrgd_json_key(&j, "dataset");
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "path", a->data);
    lrgd_json_kint(&j, "users", s->n_users);
    lrgd_json_kint(&j, "items", s->n_items);
    lrgd_json_kint(&j, "interactions", s->n_interactions);
    lrgd_json_kint(&j, "lines", s->n_lines);
    lrgd_json_kint(&j, "skipped_no_items", s->skipped_no_items);
    lrgd_json_kint(&j, "repeat_interactions", s->n_repeats);
    lrgd_json_kint(&j, "min_length", s->min_len);
    lrgd_json_kint(&j, "max_length", s->max_len);
    lrgd_json_kint(&j, "items_with_text", lrgd_dataset_n_item_text(ds));
    lrgd_json_knum(&j, "load_seconds", s->load_seconds);
    lrgd_json_obj_end(&j);

    lrgd_json_key(&j, "split");
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "kind", "leave-one-out");
    lrgd_json_kstr(&j, "target", a->step == LRGD_STEP_TEST ? "last item (test)" : "second last item (validation)");
    lrgd_json_kint(&j, "users_evaluated", runs[0].res->n);
    lrgd_json_kint(&j, "users_skipped", lrgd_split_n_skipped(sp));
    lrgd_json_kstr(&j, "skipped_because", "fewer than 3 interactions");
    lrgd_json_kint(&j, "train_interactions", lrgd_split_n_train(sp, a->step));
    lrgd_json_obj_end(&j);

    lrgd_json_key(&j, "distributed");
    lrgd_json_obj_begin(&j);
    lrgd_json_kint(&j, "ranks", di->sharded ? di->ranks : 1);
    lrgd_json_key(&j, "sharded");
    lrgd_json_bool(&j, di->sharded);
    if (di->sharded) {
        char hx[17];
        snprintf(hx, sizeof hx, "%016llx", (unsigned long long)di->config_hash);
        lrgd_json_kint(&j, "shard_size", di->shard_size);
        lrgd_json_kint(&j, "shards", di->n_shards);
        lrgd_json_kint(&j, "shards_computed", di->computed);
        lrgd_json_kint(&j, "shards_resumed", di->resumed);
        lrgd_json_kstr(&j, "config_hash", hx);
        if (di->ckpt[0]) lrgd_json_kstr(&j, "checkpoint", di->ckpt);
        else { lrgd_json_key(&j, "checkpoint"); lrgd_json_null(&j); }
        lrgd_json_knum(&j, "seconds", di->seconds);
        lrgd_json_kstr(&j, "times", "fit_seconds and eval_seconds: the slowest rank's");
    }
    lrgd_json_obj_end(&j);

    lrgd_json_key(&j, "results");
    lrgd_json_arr_begin(&j);
    for (int r = 0; r < n_runs; r++) {
        lrgd_json_obj_begin(&j);
        lrgd_json_kstr(&j, "method", runs[r].m->name);
        lrgd_json_kint(&j, "users", runs[r].res->n);
        lrgd_json_knum(&j, "fit_seconds", runs[r].fit_seconds);
        lrgd_json_knum(&j, "eval_seconds", runs[r].res->seconds);
        lrgd_json_key(&j, "metrics");
        lrgd_json_obj_begin(&j);
        for (int k = 0; k < LRGD_N_METRICS; k++) json_interval(&j, lrgd_metric_name((lrgd_metric)k), &runs[r].metric[k]);
        lrgd_json_obj_end(&j);
        lrgd_json_obj_end(&j);
    }
    lrgd_json_arr_end(&j);

    if (paired) {
        lrgd_json_key(&j, "comparison");
        lrgd_json_obj_begin(&j);
        lrgd_json_kstr(&j, "a", runs[0].m->name);
        lrgd_json_kstr(&j, "b", runs[1].m->name);
        lrgd_json_kstr(&j, "diff", "a - b, per user, paired");
        lrgd_json_key(&j, "metrics");
        lrgd_json_obj_begin(&j);
        for (int k = 0; k < LRGD_N_METRICS; k++) {
            const lrgd_paired *p = &paired[k];
            lrgd_json_key(&j, lrgd_metric_name((lrgd_metric)k));
            lrgd_json_obj_begin(&j);
            lrgd_json_knum(&j, "mean_a", p->a.mean);
            lrgd_json_knum(&j, "mean_b", p->b.mean);
            lrgd_json_knum(&j, "diff", p->diff);
            lrgd_json_knum(&j, "diff_lo", p->diff_lo);
            lrgd_json_knum(&j, "diff_hi", p->diff_hi);
            lrgd_json_knum(&j, "t", p->t);
            lrgd_json_knum(&j, "df", p->df);
            lrgd_json_knum(&j, "p_t", p->p_t);
            lrgd_json_kint(&j, "sign_a_better", p->n_pos);
            lrgd_json_kint(&j, "sign_b_better", p->n_neg);
            lrgd_json_kint(&j, "sign_ties", p->n_tie);
            lrgd_json_knum(&j, "p_sign", p->p_sign);
            lrgd_json_obj_end(&j);
        }
        lrgd_json_obj_end(&j);
        lrgd_json_obj_end(&j);
    }
    lrgd_json_obj_end(&j);
    fputc('\n', f);
}

static void print_table(const eval_args *a, const lrgd_dataset *ds, const lrgd_split *sp, const run *runs, int n_runs,
                        const lrgd_paired *paired, const dist_info *di)
{
    const lrgd_data_stats *s = lrgd_dataset_stats(ds);
    printf("data:       %s (%s): %lld users, %lld items, %lld interactions", base_name(a->data),
           format_name(lrgd_dataset_format(ds)), (long long)s->n_users, (long long)s->n_items,
           (long long)s->n_interactions);
    if (s->skipped_no_items) printf("; %lld users without items skipped", (long long)s->skipped_no_items);
    printf("\nsplit:      leave-one-out, target = %s; %d users evaluated, %d skipped (< 3 interactions)\n",
           a->step == LRGD_STEP_TEST ? "test item" : "validation item", runs[0].res->n, lrgd_split_n_skipped(sp));
    if (a->n_neg)
        printf("candidates: target + %d negatives never interacted with (seed %" PRIu64 ")\n", a->n_neg, a->com.seed);
    else
        printf("candidates: all %d items, %s\n", lrgd_dataset_n_items(ds),
               a->keep_history ? "history items kept" : "the user's history excluded");
    if (di->sharded) {
        printf("shards:     %lld of %lld users over %d rank%s: %lld computed, %lld from checkpoints; %.2f s\n",
               (long long)di->n_shards, (long long)di->shard_size, di->ranks, di->ranks == 1 ? "" : "s",
               (long long)di->computed, (long long)di->resumed, di->seconds);
        if (di->ckpt[0]) printf("checkpoint: %s\n", di->ckpt);
    }
    for (int r = 0; r < n_runs; r++)
        printf("%-10s  fit %.2f s, evaluation %.2f s%s\n", runs[r].m->name, runs[r].fit_seconds, runs[r].res->seconds,
               di->sharded && di->ranks > 1 ? " (slowest rank)" : "");
    printf("\n%-8s", "metric");
    for (int r = 0; r < n_runs; r++) printf("  %-25s", runs[r].m->name);
    if (paired) printf("  %-27s  %-9s  %s", "diff (a-b) [95% CI]", "p(t)", "p(sign)");
    printf("\n");
    for (int k = 0; k < LRGD_N_METRICS; k++) {
        printf("%-8s", lrgd_metric_name((lrgd_metric)k));
        for (int r = 0; r < n_runs; r++) {
            char cell[64];
            const lrgd_interval *iv = &runs[r].metric[k];
            snprintf(cell, sizeof cell, "%.4f [%.4f, %.4f]", iv->mean, iv->lo, iv->hi);
            printf("  %-25s", cell);
        }
        if (paired) {
            char cell[64];
            const lrgd_paired *p = &paired[k];
            snprintf(cell, sizeof cell, "%+.4f [%+.4f, %+.4f]", p->diff, p->diff_lo, p->diff_hi);
            printf("  %-27s  %-9.3g  %.3g", cell, p->p_t, p->p_sign);
        }
        printf("\n");
    }
    if (paired) printf("\na = %s, b = %s, paired over the same %lld users\n", runs[0].m->name, runs[1].m->name, (long long)paired[0].n);
}

static lrgd_status write_ranks(const char *path, const lrgd_dataset *ds, const run *runs, int n_runs)
{
    lrgd_afile af;
    LRGD_TRY(lrgd_afile_open(&af, path));
    fprintf(af.f, "user,target,n_ranked");
    for (int r = 0; r < n_runs; r++) fprintf(af.f, ",rank_%s", runs[r].m->name);
    fputc('\n', af.f);
    const lrgd_eval_result *res = runs[0].res;
    for (int i = 0; i < res->n; i++) {
        /* External ids are written as they are; RecBole tokens with commas or
         * quotes are CSV-quoted. */
        const char *names[2] = {lrgd_dataset_user_name(ds, res->users[i]), lrgd_dataset_item_name(ds, res->targets[i])};
        for (int q = 0; q < 2; q++) {
            if (q) fputc(',', af.f);
            if (strpbrk(names[q], ",\"\n")) {
                fputc('"', af.f);
                for (const char *c = names[q]; *c; c++) {
                    if (*c == '"') fputc('"', af.f);
                    fputc(*c, af.f);
                }
                fputc('"', af.f);
            } else {
                fputs(names[q], af.f);
            }
        }
        fprintf(af.f, ",%d", (int)res->n_ranked[i]);
        for (int r = 0; r < n_runs; r++) fprintf(af.f, ",%d", (int)runs[r].res->ranks[i]);
        fputc('\n', af.f);
    }
    return lrgd_afile_commit(&af);
}

static lrgd_status write_json_file(const char *path, const eval_args *a, const lrgd_dataset *ds, const lrgd_split *sp,
                                   const run *runs, int n_runs, const lrgd_paired *paired, const dist_info *di)
{
    lrgd_afile af;
    LRGD_TRY(lrgd_afile_open(&af, path));
    write_json(af.f, a, ds, sp, runs, n_runs, paired, di);
    return lrgd_afile_commit(&af);
}

/* ---- the command -------------------------------------------------------------------- */

int cmd_eval(int argc, char **argv)
{
    static const char *const splits[] = {"test", "valid", NULL};
    static const int split_steps[] = {LRGD_STEP_TEST, LRGD_STEP_VALID};
    static const char *const text_scores[] = {"sum", "mean", NULL}; /* index = length_norm */
    eval_args a;
    memset(&a, 0, sizeof a);
    cli_common_init(&a.com);
    lrgd_itemknn_opts_init(&a.knn);
    lrgd_model_scorer_opts_init(&a.mopts);
    lrgd_textrec_opts_init(&a.topts);
    a.step = LRGD_STEP_TEST;
    a.batch = 64;
    int format = LRGD_DATA_AUTO, demos = a.mopts.demos;
    const cli_opt opts[] = {
        CLI_O_STR("data", &a.data, "an interaction file"),
        CLI_O_CHOICE("format", &format, cli_format_names, cli_format_values),
        CLI_O_STR("items", &a.items, "an item text file"),
        CLI_O_STR("method", &a.method, "a method name"),
        CLI_O_STR("compare", &a.compare, "a method name"),
        CLI_O_STR("candidates", &a.candidates, "all or a number"),
        CLI_O_CHOICE("split", &a.step, splits, split_steps),
        CLI_O_FLAG("keep-history", &a.keep_history),
        CLI_O_INT("batch", &a.batch, 1, 1 << 20),
        CLI_O_STR("ranks-csv", &a.ranks_csv, "a file"),
        CLI_O_STR("out", &a.out, "a file"),
        CLI_O_INT("knn-k", &a.knn.top_k, 1, 1 << 24),
        CLI_O_INT("knn-window", &a.knn.window, 0, 1 << 30),
        CLI_O_DOUBLE("knn-decay", &a.knn.decay, 0.0, 1.0),
        CLI_O_DOUBLE("knn-shrink", &a.knn.shrink, 0.0, 1e12),
        CLI_O_DOUBLE("knn-pop", &a.knn.pop_weight, 0.0, 1e12),
        CLI_O_STR("model", &a.model, "a model file"),
        CLI_O_CHOICE("demos", &demos, cli_demo_names, NULL),
        CLI_O_INT("k", &a.mopts.k, 0, 256),
        CLI_O_INT("max-hist", &a.mopts.max_hist, 1, 1 << 20),
        CLI_O_INT("demo-hist", &a.mopts.demo_hist, 1, 1 << 20),
        CLI_O_FLAG("engine", &a.mopts.engine),
        CLI_O_STR("checkpoint", &a.ckpt, "a folder"),
        CLI_O_LLONG("shard-size", &a.shard_size, 1, 0x7fffffff),
        CLI_O_INT("text-hist", &a.topts.max_hist, 1, 1 << 20),
        CLI_O_INT("text-title-bytes", &a.topts.max_title_bytes, 0, 1 << 20),
        CLI_O_CHOICE("text-score", &a.topts.length_norm, text_scores, NULL),
        CLI_O_INT("text-ctx", &a.topts.n_ctx, 16, 1 << 24),
        CLI_O_END};
    int rc = cli_parse(CMD, help_eval, argc, argv, opts, &a.com);
    if (rc != CLI_CONTINUE) return rc;
    a.format = (lrgd_data_format)format;
    a.mopts.demos = (lrgd_demo_mode)demos;
    if (a.knn.decay <= 0) return cli_usage(CMD, "--knn-decay: expected a number in (0, 1], got '%g'", a.knn.decay);
    if (a.candidates && strcmp(a.candidates, "all")) {
        long long v;
        if (cli_int(CMD, "candidates", a.candidates, 2, 0x7fffffff, &v) != 0) return CLI_USAGE;
        a.n_neg = (int)(v - 1);
    }
    if (!a.data) return cli_usage(CMD, "--data FILE is required");
    if (!a.method) return cli_usage(CMD, "--method NAME is required");
    const eval_method *m1 = find_method(a.method), *m2 = NULL;
    if (!m1) return cli_usage(CMD, "--method: unknown method '%s'", a.method);
    if (a.compare) {
        m2 = find_method(a.compare);
        if (!m2) return cli_usage(CMD, "--compare: unknown method '%s'", a.compare);
    }
    /* A text LLM scores every candidate with its own forward passes: sampled candidates by default. */
    if (!a.candidates && (!strncmp(m1->name, "textllm", 7) || (m2 && !strncmp(m2->name, "textllm", 7)))) {
        a.candidates = "20";
        a.n_neg = 19;
    }
    if (a.shard_size && a.shard_size % a.batch)
        return cli_usage(CMD, "--shard-size %lld: expected a multiple of --batch (%d), so that every scorer call "
                         "holds the users it holds in one process", a.shard_size, a.batch);
    if ((rc = cli_common_apply(CMD, &a.com)) != 0) return rc;

    lrgd_dataset *ds = NULL;
    lrgd_split *sp = NULL;
    run runs[2];
    memset(runs, 0, sizeof runs);
    int n_runs = m2 ? 2 : 1;
    lrgd_paired paired[LRGD_N_METRICS];
    lrgd_status st = lrgd_dataset_load(a.data, a.format, &ds);
    if (st == LRGD_OK && a.items) st = lrgd_dataset_load_item_text(ds, a.items);
    if (st == LRGD_OK) st = lrgd_split_loo(ds, &sp);
    if (st == LRGD_OK && a.n_neg >= lrgd_dataset_n_items(ds))
        st = lrgd_fail(LRGD_E_INVALID, "--candidates %s: the dataset has only %d items", a.candidates,
                       lrgd_dataset_n_items(ds));
    dist_info di;
    memset(&di, 0, sizeof di);
    if (st == LRGD_OK && (lrgd_dist_size() > 1 || a.ckpt)) {
        st = run_sharded(&a, sp, m1, m2, runs, &di);
        if (lrgd_dist_rank() != 0) {
            /* Rank 0 writes every output; the others only computed. */
            if (st != LRGD_OK) return lrgd_dist_fail(CMD, st);
            lrgd_split_free(sp);
            lrgd_dataset_free(ds);
            return CLI_OK;
        }
    } else {
        for (int r = 0; r < n_runs && st == LRGD_OK; r++) st = run_method(&a, sp, r ? m2 : m1, &runs[r]);
    }
    if (st == LRGD_OK && m2) {
        if (runs[0].res->n != runs[1].res->n ||
            memcmp(runs[0].res->users, runs[1].res->users, (size_t)runs[0].res->n * sizeof(int32_t)) != 0)
            st = lrgd_fail(LRGD_E_RUNTIME, "the two methods were evaluated on different users");
        for (int k = 0; k < LRGD_N_METRICS && st == LRGD_OK; k++) {
            double *ca = metric_column(&runs[0], (lrgd_metric)k), *cb = metric_column(&runs[1], (lrgd_metric)k);
            st = ca && cb ? lrgd_paired_test(ca, cb, runs[0].res->n, &paired[k]) : lrgd_fail(LRGD_E_NOMEM, "out of memory");
            free(ca);
            free(cb);
        }
    }
    if (st == LRGD_OK && a.ranks_csv) st = write_ranks(a.ranks_csv, ds, runs, n_runs);
    if (st == LRGD_OK && a.out) st = write_json_file(a.out, &a, ds, sp, runs, n_runs, m2 ? paired : NULL, &di);
    if (st == LRGD_OK) {
        if (a.com.json) write_json(stdout, &a, ds, sp, runs, n_runs, m2 ? paired : NULL, &di);
        else print_table(&a, ds, sp, runs, n_runs, m2 ? paired : NULL, &di);
    }
    /* Under MPI a failure stops every rank (they may wait in a collective). */
    rc = st == LRGD_OK ? CLI_OK : lrgd_dist_fail(CMD, st);
    for (int r = 0; r < 2; r++) lrgd_eval_result_free(runs[r].res);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
    return rc;
}
