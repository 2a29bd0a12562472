/* The trainer: optimizer maths, determinism, resume, NaN handling, the
 * episode sampler (layout, similarity retrieval, no leakage), the scorer
 * (batched path = engine path) and learning a planted pattern. Runs on a
 * small synthetic dataset: each user walks a cycle of items i, i+1, i+2, ...
 * (mod n_items) with stride 1 or 2 chosen by user parity, so the next item
 * follows from the history and a model can learn it. */
#include "lrgd/gguf.h"
#include "lrgd/train.h"
#include "test.h"
#include "train/train_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_USERS 240
#define N_ITEMS 48

static lrgd_dataset *synth(uint64_t seed)
{
    int64_t off[N_USERS + 1];
    int32_t items[N_USERS * 16];
    lrgd_rng r;
    lrgd_rng_seed(&r, seed, 0);
    off[0] = 0;
    for (int u = 0; u < N_USERS; u++) {
        int len = 5 + (int)lrgd_rng_below(&r, 8), s = (int)lrgd_rng_below(&r, N_ITEMS), stride = 1 + u % 2;
        for (int i = 0; i < len; i++) items[off[u] + i] = (s + stride * i) % N_ITEMS;
        off[u + 1] = off[u] + len;
    }
    lrgd_dataset *ds = NULL;
    lrgd_status st = lrgd_dataset_from_sequences(N_USERS, off, items, N_ITEMS, &ds);
    if (st != LRGD_OK) fprintf(stderr, "synth: %s\n", lrgd_last_error());
    return ds;
}

static void small_opts(lrgd_train_opts *o, const char *out)
{
    lrgd_train_opts_init(o);
    o->n_layers = 2;
    o->dim = 16;
    o->n_heads = 2;
    o->n_kv_heads = 1;
    o->hidden_dim = 32;
    o->seq_len = 64;
    o->demos = 2;
    o->max_hist = 12;
    o->demo_hist = 6;
    o->epochs = 3;
    o->batch = 32;
    o->dropout = 0.1;
    o->adamw.lr = 1e-2;
    o->adamw.warmup_steps = 5;
    o->save_every_s = 0;
    o->out = out;
}

static char tmpdir[256];

static const char *tmp(const char *name)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static int read_all(const char *path, unsigned char **data, size_t *n)
{
    char *b;
    if (lrgd_read_file(path, &b, n) != LRGD_OK) return -1;
    *data = (unsigned char *)b;
    return 0;
}

static int same_file(const char *a, const char *b)
{
    unsigned char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int r = read_all(a, &x, &nx) == 0 && read_all(b, &y, &ny) == 0 && nx == ny && memcmp(x, y, nx) == 0;
    lrgd_free(x);
    lrgd_free(y);
    return r;
}

static void remove_run(const char *out)
{
    char p[600];
    unlink(out);
    snprintf(p, sizeof p, "%s.train", out);
    unlink(p);
}

/* ---- optimizer ---------------------------------------------------------------- */

static void test_schedule(void)
{
    lrgd_adamw_opts o;
    lrgd_adamw_opts_init(&o);
    o.lr = 2e-3;
    o.warmup_steps = 10;
    o.min_lr_ratio = 0.1;
    CHECK_NEAR(lrgd_lr_schedule(&o, 0, 110), 2e-3 / 10, 1e-12);
    CHECK_NEAR(lrgd_lr_schedule(&o, 9, 110), 2e-3, 1e-12);
    /* cosine: halfway through the decay the rate is the mean of peak and floor */
    CHECK_NEAR(lrgd_lr_schedule(&o, 60, 110), 0.5 * (2e-3 + 2e-4), 1e-12);
    CHECK_NEAR(lrgd_lr_schedule(&o, 110, 110), 2e-4, 1e-12);
    CHECK_NEAR(lrgd_lr_schedule(&o, 500, 110), 2e-4, 1e-12);
}

/* Two AdamW steps on a tiny model checked against the update rule written
 * out here, including clipping and decoupled decay (not on norm gains). */
static void test_adamw(void)
{
    lrgd_config c = {0};
    c.dim = 4; c.hidden_dim = 4; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.head_dim = 2;
    c.vocab_size = LRGD_N_SPECIAL + 3; c.seq_len = 8; c.norm_eps = 1e-5f; c.rope_base = 10000; c.tied = 1;
    lrgd_tmodel *t;
    CHECK_OK(lrgd_tmodel_new(&c, 3, &t));
    if (!t) return;
    size_t n = lrgd_tmodel_n_params(t);
    float *p0 = malloc(n * sizeof(float));
    double *m = calloc(n, sizeof(double)), *v = calloc(n, sizeof(double)), *ref = malloc(n * sizeof(double));
    memcpy(p0, lrgd_tmodel_params(t), n * sizeof(float));
    for (size_t i = 0; i < n; i++) ref[i] = p0[i];
    lrgd_adamw_opts o;
    lrgd_adamw_opts_init(&o);
    o.lr = 0.01; o.weight_decay = 0.1; o.clip = 0.5; o.warmup_steps = 0; o.min_lr_ratio = 1;
    unsigned char *decay = calloc(n, 1); /* matrices and embeddings decay, norm gains do not */
    for (int k = 0; k < lrgd_tmodel_n_tensors(t); k++) {
        lrgd_tensor_info ti;
        lrgd_tmodel_tensor(t, k, &ti);
        if (!strstr(ti.name, "norm")) memset(decay + ti.offset, 1, (size_t)ti.rows * ti.cols);
    }
    for (int step = 0; step < 2; step++) {
        float *g = lrgd_tmodel_grads(t);
        double ss = 0;
        for (size_t i = 0; i < n; i++) {
            g[i] = (float)(0.3 * sin(1.0 + (double)i * 0.7 + step));
            ss += (double)g[i] * g[i];
        }
        double norm = sqrt(ss), gn, lr;
        CHECK_OK(lrgd_adamw_step(t, &o, step, 100, &gn, &lr));
        CHECK_NEAR(gn, norm, 1e-6 * norm);
        double sc = norm > o.clip ? o.clip / norm : 1;
        for (size_t i = 0; i < n; i++) {
            double gi = g[i] * sc;
            m[i] = 0.9 * m[i] + 0.1 * gi;
            v[i] = 0.98 * v[i] + 0.02 * gi * gi;
            double mh = m[i] / (1 - pow(0.9, step + 1)), vh = v[i] / (1 - pow(0.98, step + 1));
            double wd = decay[i] ? 0.1 : 0;
            ref[i] -= 0.01 * (mh / (sqrt(vh) + 1e-8) + wd * ref[i]);
        }
    }
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(ref[i] - lrgd_tmodel_params(t)[i]));
    printf("adamw: max |param - reference| after 2 steps %.2e\n", worst);
    CHECK(worst < 1e-6);
    /* a NaN gradient is refused and leaves the parameters alone */
    float keep[4];
    memcpy(keep, lrgd_tmodel_params(t), sizeof keep);
    lrgd_tmodel_grads(t)[1] = NAN;
    CHECK(lrgd_adamw_step(t, &o, 2, 100, NULL, NULL) == LRGD_E_NUMERIC);
    CHECK(memcmp(keep, lrgd_tmodel_params(t), sizeof keep) == 0);
    free(p0); free(m); free(v); free(ref); free(decay);
    lrgd_tmodel_free(t);
}

/* ---- episodes -------------------------------------------------------------------- */

/* age of the latest occurrence of item x in seq[0..n) (0 = last), -1 if absent */
static int age_of(const int32_t *seq, int n, int32_t x)
{
    for (int k = n - 1; k >= 0; k--)
        if (seq[k] == x) return n - 1 - k;
    return -1;
}

/* Retrieval equals brute force: sim(Q, v) = sum over shared items of
 * DECAY^(age in Q + age in v's demonstration history), over the pool. */
static void test_similar(const lrgd_split *sp)
{
    lrgd_demo_index *ix;
    CHECK_OK(lrgd_demo_index_new(sp, LRGD_STEP_TEST, 5, &ix));
    if (!ix) return;
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    int bad = 0, checked = 0;
    for (int u = 0; u < lrgd_dataset_n_users(ds); u += 7) {
        const int32_t *h;
        int nh;
        lrgd_split_history(sp, LRGD_STEP_TEST, u, &h, &nh);
        if (nh == 0) continue;
        int32_t got[10];
        float gs[10];
        int n;
        CHECK_OK(lrgd_demo_index_similar(ix, h, nh, u, 10, got, gs, &n));
        double sim[N_USERS];
        int order[N_USERS], no = 0;
        for (int v = 0; v < lrgd_dataset_n_users(ds); v++) {
            const int32_t *it;
            int len;
            lrgd_split_train_items(sp, LRGD_STEP_TEST, v, &it, &len);
            if (v == u || len < 2) continue;
            double sv = 0;
            for (int32_t x = 0; x < N_ITEMS; x++) {
                int aq = age_of(h, nh, x), av = age_of(it, len - 1, x);
                if (aq >= 0 && av >= 0) sv += pow(LRGD_DEMO_DECAY, aq + av);
            }
            if (sv <= 0) continue;
            sim[v] = sv;
            order[no++] = v;
        }
        for (int a = 1; a < no; a++) /* similarity descending, user ascending */
            for (int b = a; b > 0; b--) {
                int x = order[b - 1], y = order[b];
                int swap = sim[y] > sim[x] * (1 + 1e-6) || (fabs(sim[y] - sim[x]) <= 1e-6 * sim[x] && y < x);
                if (!swap) break;
                order[b - 1] = y; order[b] = x;
            }
        int want = no < 10 ? no : 10;
        checked++;
        if (n != want) { bad++; continue; }
        for (int i = 0; i < n; i++)
            if (got[i] != order[i] && fabs(sim[got[i]] - sim[order[i]]) > 1e-5 * sim[order[i]]) { bad++; break; }
        for (int i = 0; i < n; i++)
            if (fabs(gs[i] - sim[got[i]]) > 1e-5 * sim[got[i]]) { bad++; break; }
    }
    printf("similar users: %d queries checked against brute force, %d mismatches\n", checked, bad);
    CHECK(checked > 20);
    CHECK(bad == 0);
    lrgd_demo_index_free(ix);
}

/* The trainer's episodes and the scorer's prompts have exactly the layout of
 * lrgd_prompt_build, and the targets are the next items. */
static void test_layout(const lrgd_split *sp, const lrgd_train_opts *o)
{
    tm_ep ep = {0};
    CHECK_OK(tm_epoch_episodes(sp, o, 0, &ep));
    lrgd_demo_index *ix;
    CHECK_OK(lrgd_demo_index_new(sp, LRGD_STEP_VALID, o->demo_hist, &ix));
    if (!ix || ep.n_seq == 0) { tm_ep_free(&ep); lrgd_demo_index_free(ix); return; }
    lrgd_prompt_vocab pv = {LRGD_TOK_BOS, LRGD_TOK_SEP, LRGD_TOK_ANS, LRGD_N_SPECIAL, N_ITEMS};
    int mismatch = 0, with_demos = 0, tgt_bad = 0;
    int probes = 0;
    for (int s = 0; s < ep.n_seq; s++) {
        int b = ep.off[s], e = ep.ans_row[s] + 1; /* the prompt part; answer probes follow */
        /* recover the demo users from the provenance of each demonstration's answer row */
        lrgd_demo demos[8];
        int nd = 0;
        for (int i = b; i < e; i++)
            if (ep.tok[i] == LRGD_TOK_ANS && i + 1 < e && ep.src_user[i + 1] >= 0) {
                CHECK_OK(lrgd_demo_index_demo(ix, ep.src_user[i + 1], &demos[nd], NULL));
                nd++;
            }
        with_demos += nd > 0;
        CHECK(nd == ep.n_demos[s]);
        const int32_t *it;
        int len;
        lrgd_split_train_items(sp, LRGD_STEP_VALID, ep.query_user[s], &it, &len);
        int nq = len - 1 < o->max_hist ? len - 1 : o->max_hist;
        lrgd_prompt *p = NULL;
        CHECK_OK(lrgd_prompt_build(&pv, NULL, demos, nd, it + len - 1 - nq, nq, &p));
        if (!p || p->n_tokens != e - b || memcmp(p->tokens, ep.tok + b, (size_t)(e - b) * sizeof(int)) != 0) mismatch++;
        lrgd_prompt_free(p);
        /* the prompt rows: causal, positions 0.. */
        for (int i = b; i < e; i++) tgt_bad += ep.pos[i] != i - b || ep.vis[i] != i - b - 1;
        /* targets: history rows -> next history item, final ANS -> the last training item */
        if (ep.tgt[e - 1] != LRGD_N_SPECIAL + it[len - 1]) tgt_bad++;
        for (int i = 0; i < nq - 1; i++)
            if (ep.tgt[e - 1 - nq + i] != LRGD_N_SPECIAL + it[len - nq + i]) tgt_bad++;
        if (ep.tgt[e - 2] != -1) tgt_bad++; /* the last history row's next token is ANS, not an item */
        /* answer probes: one per history item but the last, each an ANS that sees
         * up to its item, sits right after it and predicts the next one */
        int np = ep.off[s + 1] - e;
        CHECK(np == (o->probes ? nq - 1 : 0));
        for (int k = 0; k < np; k++) {
            int r = e + k, item_row = e - 1 - nq + k;
            probes++;
            tgt_bad += ep.tok[r] != LRGD_TOK_ANS || ep.vis[r] != item_row - b || ep.pos[r] != item_row - b + 1 ||
                       ep.tgt[r] != LRGD_N_SPECIAL + it[len - nq + k];
        }
    }
    CHECK(probes > 0);
    printf("episodes: %d, %d with demonstrations, %d layout mismatches, %d bad targets\n", ep.n_seq, with_demos,
           mismatch, tgt_bad);
    CHECK(mismatch == 0);
    CHECK(tgt_bad == 0);
    CHECK(with_demos > ep.n_seq / 2);
    tm_ep_free(&ep);
    lrgd_demo_index_free(ix);
}

/* Every item token and every target of every training episode (all epochs
 * sampled here), and of every scoring prompt at the validation and test
 * steps, comes from a position the step allows: the provenance recorded by
 * the sampler is checked against the full sequences and the split cut-off. */
static void check_sources(const lrgd_split *sp, int step, const tm_ep *ep, const char *what, int *n_checked, int *n_bad)
{
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    for (int s = 0; s < ep->n_seq; s++)
        for (int i = ep->off[s]; i < ep->off[s + 1]; i++) {
            int pairs[2][3] = {{ep->tok[i], ep->src_user[i], ep->src_pos[i]}, {ep->tgt[i], ep->tgt_user[i], ep->tgt_pos[i]}};
            for (int k = 0; k < 2; k++) {
                int tok = pairs[k][0], u = pairs[k][1], pos = pairs[k][2];
                if (tok < LRGD_N_SPECIAL) {
                    if (u >= 0) (*n_bad)++;
                    continue;
                }
                (*n_checked)++;
                const int32_t *all, *train;
                int n_all, n_train;
                if (u < 0) { (*n_bad)++; continue; }
                lrgd_dataset_user_items(ds, u, &all, &n_all);
                /* what the step lets anyone read of user u; for the query user's
                 * own target at the final ANS of a training episode, the
                 * training prefix too (it is a training item) */
                lrgd_split_train_items(sp, step, u, &train, &n_train);
                int ok = pos >= 0 && pos < n_all && all[pos] == tok - LRGD_N_SPECIAL && pos < n_train;
                if (!ok) {
                    if (*n_bad < 5)
                        fprintf(stderr, "%s: sequence %d row %d: %s token %d from user %d position %d (allowed < %d)\n",
                                what, s, i, k ? "target" : "input", tok, u, pos, n_train);
                    (*n_bad)++;
                }
            }
        }
}

static void test_no_leakage(const lrgd_split *sp, const lrgd_train_opts *o)
{
    int checked = 0, bad = 0;
    for (int e = 0; e < 3; e++) {
        tm_ep ep = {0};
        CHECK_OK(tm_epoch_episodes(sp, o, e, &ep));
        check_sources(sp, LRGD_STEP_VALID, &ep, "training episode", &checked, &bad);
        /* the query user appears only in the query segment (never as a demonstration) */
        for (int s = 0; s < ep.n_seq; s++) {
            int q = ep.query_user[s], i = ep.ans_row[s] - 1;
            while (i >= ep.off[s] && ep.src_user[i] == q) i--;
            for (int j = ep.off[s]; j <= i; j++) bad += ep.src_user[j] == q || ep.tgt_user[j] == q;
        }
        tm_ep_free(&ep);
    }
    /* scoring prompts at both steps, every mode */
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    for (int step = 0; step < 2; step++) {
        lrgd_demo_index *ix;
        CHECK_OK(lrgd_demo_index_new(sp, step, o->demo_hist, &ix));
        if (!ix) continue;
        for (int mode = 0; mode < 3; mode++) {
            tm_ep ep = {0};
            for (int u = 0; u < lrgd_dataset_n_users(ds); u++) {
                const int32_t *h;
                int nh;
                lrgd_split_history(sp, step, u, &h, &nh);
                if (nh == 0) continue;
                CHECK_OK(tm_ep_add_prompt(&ep, ix, (lrgd_demo_mode)mode, 3, 7, u, h, nh, o->max_hist, o->seq_len));
                /* the prompt holds no target: scoring reads the final ANS only */
                for (int i = ep.off[ep.n_seq - 1]; i < ep.n_tok; i++) bad += ep.tgt[i] != -1;
            }
            check_sources(sp, step, &ep, step ? "test prompt" : "validation prompt", &checked, &bad);
            tm_ep_free(&ep);
        }
        lrgd_demo_index_free(ix);
    }
    printf("no leakage: %d item tokens and targets traced to their source, %d violations\n", checked, bad);
    CHECK(checked > 10000);
    CHECK(bad == 0);
}

/* ---- training ------------------------------------------------------------------- */

static double eval_ndcg(const lrgd_split *sp, int step, lrgd_scorer *sc, int32_t **ranks)
{
    lrgd_eval_opts eo;
    lrgd_eval_opts_init(&eo);
    eo.label = "test";
    lrgd_eval_result *r = NULL;
    lrgd_status st = lrgd_evaluate(sp, step, sc, &eo, &r);
    CHECK_OK(st);
    if (st != LRGD_OK) return -1;
    lrgd_interval iv;
    lrgd_metric_summary(LRGD_NDCG10, r->ranks, r->n, &iv);
    if (ranks) {
        *ranks = malloc((size_t)r->n * sizeof **ranks);
        memcpy(*ranks, r->ranks, (size_t)r->n * sizeof **ranks);
    }
    lrgd_eval_result_free(r);
    return iv.mean;
}

/* Same options, same seed, same thread count: the same model bytes. Another
 * seed: different bytes. */
static void test_determinism(const lrgd_split *sp)
{
    lrgd_train_opts o;
    lrgd_train_result r;
    const char *a = tmp("det_a.gguf"), *b = tmp("det_b.gguf"), *c = tmp("det_c.gguf");
    small_opts(&o, a);
    o.epochs = 2;
    CHECK_OK(lrgd_train(sp, &o, &r));
    lrgd_train_result_free(&r);
    o.out = b;
    CHECK_OK(lrgd_train(sp, &o, &r));
    lrgd_train_result_free(&r);
    o.out = c;
    o.seed = 43;
    CHECK_OK(lrgd_train(sp, &o, &r));
    lrgd_train_result_free(&r);
    CHECK_MSG(same_file(a, b), "two runs with one seed differ");
    CHECK_MSG(!same_file(a, c), "seeds 42 and 43 gave the same model");
    remove_run(a); remove_run(b); remove_run(c);
}

/* A session cut off after any step and started again ends with the same
 * bytes as one uninterrupted run. */
static void test_resume(const lrgd_split *sp)
{
    lrgd_train_opts o;
    lrgd_train_result r;
    const char *full = tmp("res_full.gguf"), *cut = tmp("res_cut.gguf");
    small_opts(&o, full);
    CHECK_OK(lrgd_train(sp, &o, &r));
    int steps = (int)r.steps;
    lrgd_train_result_free(&r);
    o.out = cut;
    o.checkpoint_steps = 2;
    /* halt twice: mid-epoch after an odd step (the state is one step behind), then at another point */
    int halts[2] = {steps / 3 | 1, 2 * steps / 3};
    for (int h = 0; h < 2; h++) {
        o.halt_after_step = halts[h];
        lrgd_status st = lrgd_train(sp, &o, &r);
        CHECK(st == LRGD_E_RUNTIME);
        lrgd_train_result_free(&r);
    }
    o.halt_after_step = -1;
    CHECK_OK(lrgd_train(sp, &o, &r));
    CHECK(r.resumed == 1);
    CHECK(r.n_log == o.epochs); /* the epoch log survived the interruptions */
    lrgd_train_result_free(&r);
    CHECK_MSG(same_file(full, cut), "resumed run differs from the uninterrupted one");
    /* a state from other options is refused, not mixed in */
    o.adamw.lr = 5e-3;
    o.epochs = 4;
    CHECK(lrgd_train(sp, &o, &r) == LRGD_E_INVALID);
    CHECK(strstr(lrgd_last_error(), "another configuration") != NULL);
    lrgd_train_result_free(&r);
    remove_run(full); remove_run(cut);
}

/* A NaN stops training with the step and the layer; the best model of the
 * epochs before stays on disk and loads. */
static void test_nan(const lrgd_split *sp)
{
    lrgd_train_opts o;
    lrgd_train_result r;
    const char *out = tmp("nan.gguf");
    small_opts(&o, out);
    o.epochs = 3;
    int spe = (N_USERS + o.batch - 1) / o.batch;
    o.fault_nan_step = spe + 2; /* in the second epoch */
    lrgd_status st = lrgd_train(sp, &o, &r);
    CHECK(st == LRGD_E_NUMERIC);
    char want[64];
    snprintf(want, sizeof want, "step %d", spe + 2);
    CHECK_MSG(strstr(lrgd_last_error(), want) != NULL, "message: %s", lrgd_last_error());
    CHECK_MSG(strstr(lrgd_last_error(), "layer 1") != NULL, "message: %s", lrgd_last_error());
    printf("NaN: %s\n", lrgd_last_error());
    lrgd_train_result_free(&r);
    lrgd_model *m = NULL;
    CHECK_OK(lrgd_model_load(out, &m));
    lrgd_model_free(m);
    /* the state is the last good one: the same command without the fault finishes */
    o.fault_nan_step = -1;
    CHECK_OK(lrgd_train(sp, &o, &r));
    CHECK(r.resumed == 1 && r.epochs_run == 3);
    lrgd_train_result_free(&r);
    remove_run(out);
}

/* The model learns the planted pattern (far above popularity), the batched
 * scorer agrees with the engine, and the GGUF round trip keeps the scores. */
static void test_learns(const lrgd_split *sp, lrgd_attn_mode mode)
{
    lrgd_train_opts o;
    lrgd_train_result r;
    const char *out = tmp(mode == LRGD_ATTN_LINEAR ? "learn_lin.gguf" : "learn_sm.gguf");
    small_opts(&o, out);
    o.attn = mode;
    o.dim = 32;
    o.hidden_dim = 64;
    o.epochs = t_size(12, 2); /* valgrind: the same code, not the quality */
    o.dropout = 0.0;
    o.adamw.lr = 1e-2;
    CHECK_OK(lrgd_train(sp, &o, &r));
    double best = r.best_ndcg10;
    lrgd_train_result_free(&r);
    lrgd_scorer pop;
    CHECK_OK(lrgd_scorer_pop(sp, LRGD_STEP_TEST, &pop));
    double ndcg_pop = eval_ndcg(sp, LRGD_STEP_TEST, &pop, NULL);
    lrgd_scorer_release(&pop);
    lrgd_model_scorer_opts so;
    lrgd_model_scorer_opts_init(&so);
    so.max_hist = o.max_hist;
    so.demo_hist = o.demo_hist;
    so.k = 2;
    double nd[3] = {0, 0, 0};
    for (int m = 0; m < 3; m++) {
        so.demos = (lrgd_demo_mode)m;
        so.engine = 0;
        lrgd_scorer sc;
        int32_t *r1 = NULL, *r2 = NULL;
        CHECK_OK(lrgd_scorer_model(sp, LRGD_STEP_TEST, out, &so, &sc));
        if (!sc.score_batch) continue;
        nd[m] = eval_ndcg(sp, LRGD_STEP_TEST, &sc, &r1);
        lrgd_scorer_release(&sc);
        so.engine = 1;
        CHECK_OK(lrgd_scorer_model(sp, LRGD_STEP_TEST, out, &so, &sc));
        double ne = eval_ndcg(sp, LRGD_STEP_TEST, &sc, &r2);
        lrgd_scorer_release(&sc);
        int same = 0, n = lrgd_split_n_users(sp);
        for (int i = 0; r1 && r2 && i < n; i++) same += r1[i] == r2[i];
        printf("%s %s: test NDCG@10 batched %.4f, engine %.4f, %d/%d ranks equal\n",
               mode == LRGD_ATTN_LINEAR ? "linear" : "softmax", lrgd_demo_mode_name((lrgd_demo_mode)m), nd[m], ne,
               same, n);
        CHECK(same >= n - 2); /* float ties may flip a rank at most for a stray user */
        CHECK_NEAR(nd[m], ne, 0.01);
        free(r1);
        free(r2);
    }
    printf("%s: best validation NDCG@10 %.4f; test NDCG@10 zero-shot %.4f, random %.4f, similar %.4f; Pop %.4f\n",
           mode == LRGD_ATTN_LINEAR ? "linear" : "softmax", best, nd[0], nd[1], nd[2], ndcg_pop);
    if (t_full()) {
        CHECK(nd[0] > 0.6);
        CHECK(nd[0] > 3 * ndcg_pop);
    }
    remove_run(out);
}

int main(void)
{
    lrgd_set_threads(2);
    lrgd_set_quiet(1);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lrgd_test_train.%d", (int)getpid());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmpdir);
    if (system(cmd) != 0) return 1;
    lrgd_dataset *ds = synth(1);
    lrgd_split *sp = NULL;
    CHECK(ds != NULL);
    if (!ds) return t_finish("test_train");
    CHECK_OK(lrgd_split_loo(ds, &sp));
    lrgd_train_opts o;
    small_opts(&o, tmp("x.gguf"));

    test_schedule();
    test_adamw();
    test_similar(sp);
    test_layout(sp, &o);
    test_no_leakage(sp, &o);
    test_determinism(sp);
    test_resume(sp);
    test_nan(sp);
    test_learns(sp, LRGD_ATTN_SOFTMAX);
    test_learns(sp, LRGD_ATTN_LINEAR);

    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return t_finish("test_train");
}
