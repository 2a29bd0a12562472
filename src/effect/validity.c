/* Effect_D validity: Spearman's rho against the ground truth dlogP over
 * (user, demonstration) pairs, and the cost of each, from the same run. */
#include "effect/stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lrgd_validity_opts_init(lrgd_validity_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_users = 100;
    o->pool = 50;
    o->max_hist = 50;
    o->demo_hist = 20;
    o->truth = 1;
    o->top_k = 3;
    o->seed = 42;
}

void lrgd_validity_free(lrgd_validity *v)
{
    if (!v) return;
    free(v->pairs);
    free(v->logp0);
    free(v->users);
    free(v);
}

lrgd_status lrgd_model_check_items(const lrgd_model *m, const lrgd_dataset *ds)
{
    int n = lrgd_dataset_n_items(ds);
    if (m->rec.n_items <= 0) {
        /* a text LLM: the dataset's items are shown by their text */
        lrgd_tokenizer *t = NULL;
        lrgd_status st = lrgd_tokenizer_from_model(m, &t);
        lrgd_tokenizer_free(t);
        if (st == LRGD_OK) return LRGD_OK;
        return lrgd_fail(LRGD_E_UNSUPPORTED, "the model has no item vocabulary (lrgd.* keys) and no tokenizer for "
                                             "item texts: a recommendation model or a text LLM is needed");
    }
    if (m->rec.n_items != n)
        return lrgd_fail(LRGD_E_INVALID, "the model has %d item tokens, the dataset %d items (was the model trained on "
                                         "this file?)", m->rec.n_items, n);
    for (int i = 0; i < n; i++)
        if (m->rec.item_ext[i] != lrgd_dataset_item_ext(ds, i))
            return lrgd_fail(LRGD_E_INVALID, "item token %d is item %lld in the model but item %s in the dataset (was "
                             "the model trained on this file?)", m->rec.n_special + i, (long long)m->rec.item_ext[i],
                             lrgd_dataset_item_name(ds, i));
    return LRGD_OK;
}

lrgd_status lrgd_sample_users(const lrgd_split *sp, int n, uint64_t seed, int32_t *out)
{
    int N = lrgd_split_n_users(sp);
    if (n < 0 || n > N) return lrgd_fail(LRGD_E_INVALID, "%d users requested, the split has %d", n, N);
    int32_t *all = malloc((size_t)(N ? N : 1) * sizeof *all);
    if (!all) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    memcpy(all, lrgd_split_users(sp), (size_t)N * sizeof *all);
    lrgd_rng r;
    lrgd_rng_seed(&r, seed, 0x5a3b1e);
    lrgd_rng_draw_i32(&r, all, N, n);
    memcpy(out, all, (size_t)n * sizeof *out);
    free(all);
    return LRGD_OK;
}

typedef struct idx_val { double v; int i; } idx_val;
static int cmp_desc(const void *a, const void *b)
{
    const idx_val *x = a, *y = b;
    if (x->v > y->v) return -1;
    if (x->v < y->v) return 1;
    return x->i - y->i;
}

static void summarize(lrgd_validity *V, int top_k)
{
    int n = V->n_pairs;
    double *e = malloc((size_t)(n ? n : 1) * sizeof *e), *pt = malloc((size_t)(n ? n : 1) * sizeof *pt),
           *g = malloc((size_t)(n ? n : 1) * sizeof *g), *ea = malloc((size_t)(n ? n : 1) * sizeof *ea);
    idx_val *iv = malloc((size_t)(n ? n : 1) * sizeof *iv);
    V->rho = V->rho_all_rows = V->rho_per_token = V->rho_user_mean = V->pearson = V->top1_agree = NAN;
    V->gain_top = V->gain_all = V->gain_bottom = NAN;
    if (!e || !pt || !g || !ea || !iv || n < 2 || isnan(V->pairs[0].dlogp)) goto done;
    for (int i = 0; i < n; i++) {
        e[i] = V->pairs[i].effect;
        pt[i] = V->pairs[i].per_token;
        g[i] = V->pairs[i].dlogp;
        ea[i] = V->pairs[i].effect_all;
    }
    V->rho = lrgd_spearman(e, g, n);
    V->rho_all_rows = lrgd_spearman(ea, g, n);
    V->rho_per_token = lrgd_spearman(pt, g, n);
    V->pearson = lrgd_pearson(e, g, n);
    double rs = 0, agree = 0, gt = 0, ga = 0, gb = 0;
    int nr = 0, nu = 0, nt = 0, na = 0, nb = 0;
    for (int a = 0; a < n;) {
        int b = a;
        while (b < n && V->pairs[b].user == V->pairs[a].user) b++;
        int m = b - a;
        if (m >= 3) {
            double r = lrgd_spearman(e + a, g + a, m);
            if (!isnan(r)) { rs += r; nr++; }
        }
        if (m >= 1) {
            int be = a, bg = a;
            for (int i = a; i < b; i++) {
                if (e[i] > e[be]) be = i;
                if (g[i] > g[bg]) bg = i;
                ga += g[i];
                na++;
            }
            agree += g[be] == g[bg];
            nu++;
            for (int i = 0; i < m; i++) iv[i] = (idx_val){e[a + i], i};
            qsort(iv, (size_t)m, sizeof *iv, cmp_desc);
            int k = top_k < m ? top_k : m;
            for (int i = 0; i < k; i++) { gt += g[a + iv[i].i]; nt++; }
            for (int i = m - k; i < m; i++) { gb += g[a + iv[i].i]; nb++; }
        }
        a = b;
    }
    V->rho_user_mean = nr ? rs / nr : NAN;
    V->top1_agree = nu ? agree / nu : NAN;
    V->gain_top = nt ? gt / nt : NAN;
    V->gain_all = na ? ga / na : NAN;
    V->gain_bottom = nb ? gb / nb : NAN;
done:
    free(e);
    free(pt);
    free(g);
    free(ea);
    free(iv);
}

/* One user's pairs as a fixed-size record (the phase's unit, see
 * lrgd_user_map): a header, then pool slots of which n_pairs are used. */
typedef struct vrec_head {
    int32_t n_pairs, pad;
    double logp0, t_encode, t_probe, t_score, t_truth;
    int64_t n_truth;
} vrec_head;
typedef struct vrec_pair {
    int32_t demo_user, len;
    double effect, per_token, effect_all, dlogp;
} vrec_pair;

typedef struct vctx {
    const lrgd_split *sp;
    const lrgd_validity_opts *o;
    const int32_t *users;
    lrgd_effect *e;
    lrgd_store *st;
    lrgd_demo_index *ix;
    int *sid;      /* [dataset users]: store entry of a candidate, -1: not encoded yet */
    int *ids, *tok, *qt;
    int32_t *cu;
    double *eff, *ptk, *efa;
    /* the shared pool (o->shared_pool) */
    int32_t *pool;         /* [P] its users, ascending */
    int pool_ready;        /* 1: encoded in this process, ids[k] its entries */
    int block;             /* users per matrix call */
    lrgd_probe **pr;       /* [block] */
    vrec_head *hd;         /* [block] */
    double *meff, *mptk;   /* [block][P] */
} vctx;

static size_t vrec_size(int pool) { return sizeof(vrec_head) + (size_t)pool * sizeof(vrec_pair); }

/* User u's query tokens and validation target; *h, *nh (may be NULL): its history. */
static lrgd_status user_query(vctx *c, int u, int *nq, int32_t *y, const int32_t **h_out, int *nh_out)
{
    const int32_t *h;
    int nh;
    lrgd_split_history(c->sp, LRGD_STEP_VALID, u, &h, &nh);
    *y = lrgd_split_target(c->sp, LRGD_STEP_VALID, u);
    if (h_out) *h_out = h;
    if (nh_out) *nh_out = nh;
    *nq = 0;
    return lrgd_effect_query_tokens(c->e, h, nh, c->o->max_hist, c->qt, nq);
}

/* User u's pairs with store entries ids[0..n) (the demonstrations of dataset
 * users du[0..n)) from their scores (per_token, effect_all: [n]); with
 * truth, dlogP of each from a real forward pass of [T | d | Q] (T's cache
 * reused; c->qt holds Q). */
static lrgd_status fill_pairs(vctx *c, int u, int nq, int32_t y, const int32_t *du, const int *ids, int n,
                              const double *eff, const double *ptk, const double *efa, vrec_head *H, vrec_pair *pairs)
{
    lrgd_effect *e = c->e;
    int *tok = c->tok;
    for (int k = 0; k < n; k++)
        pairs[k] = (vrec_pair){du[k], lrgd_store_len(c->st, ids[k]), eff[k], ptk[k], efa[k], NAN};
    H->n_pairs = n;
    for (int k = 0; k < n && c->o->truth; k++) {
        int k0 = e->n_instr, len = lrgd_store_len(c->st, ids[k]);
        if (k0 + len + nq > e->c.seq_len)
            return lrgd_fail(LRGD_E_INVALID, "validity: prompt of user %d with demonstration %d exceeds the context", u,
                             du[k]);
        double lp, t0 = lrgd_now();
        LRGD_TRY(ef_store_logp(e, c->st, ids[k], c->qt, nq, y, tok, &lp));
        H->t_truth += lrgd_now() - t0;
        H->n_truth++;
        pairs[k].dlogp = lp - H->logp0;
    }
    return LRGD_OK;
}

/* The all-rows form of user u against entries ids[0..n) into c->efa (its own
 * probe, not part of the timings). matrix: through lrgd_effect_score_matrix. */
static lrgd_status all_rows(vctx *c, int nq, int32_t y, const int *ids, int n, int matrix)
{
    lrgd_probe *p = NULL;
    lrgd_status s_ = lrgd_probe_run_ex(c->e, NULL, NULL, 0, c->qt, nq, y, LRGD_PROBE_ALL_ROWS, &p);
    if (s_ == LRGD_OK)
        s_ = matrix ? lrgd_effect_score_matrix(c->st, (const lrgd_probe *const *)&p, 1, ids, n, c->efa, NULL)
                    : lrgd_effect_score(c->st, p, ids, n, c->efa, NULL);
    lrgd_probe_free(p);
    return s_;
}

static lrgd_status job_validity(void *vc, int64_t begin, int64_t end, void *vrec)
{
    vctx *c = vc;
    const lrgd_validity_opts *o = c->o;
    lrgd_effect *e = c->e;
    int P = o->pool, *ids = c->ids, *tok = c->tok;
    int32_t *cu = c->cu;
    lrgd_status s_ = LRGD_OK;
    lrgd_progress pg;
    lrgd_progress_begin(&pg, "effect", "users", (double)(end - begin));
    for (int64_t ui = begin; ui < end && s_ == LRGD_OK; ui++) {
        unsigned char *rec = (unsigned char *)vrec + (size_t)(ui - begin) * vrec_size(P);
        vrec_head H;
        vrec_pair *pairs = (vrec_pair *)(rec + sizeof H);
        memset(rec, 0, vrec_size(P));
        memset(&H, 0, sizeof H);
        int u = c->users[ui];
        const int32_t *h;
        int nh, nq = 0, nc = 0;
        int32_t y;
        if ((s_ = user_query(c, u, &nq, &y, &h, &nh)) != LRGD_OK) break;
        if ((s_ = lrgd_demo_index_similar(c->ix, h, nh, u, P, cu, NULL, &nc)) != LRGD_OK) break;
        /* encode the candidates not seen yet: once for every user (of this process) */
        double t0 = lrgd_now();
        for (int k = 0; k < nc && s_ == LRGD_OK; k++) {
            if (c->sid[cu[k]] >= 0) continue;
            lrgd_demo d;
            if ((s_ = lrgd_demo_index_demo(c->ix, cu[k], &d, NULL)) != LRGD_OK) break;
            int nt = 0;
            if ((s_ = lrgd_effect_demo_tokens(e, &d, o->demo_hist, tok, &nt)) != LRGD_OK) break;
            s_ = lrgd_store_add(c->st, tok, nt, NULL, &c->sid[cu[k]]);
        }
        H.t_encode = lrgd_now() - t0;
        if (s_ != LRGD_OK) break;
        /* one probe per user */
        t0 = lrgd_now();
        lrgd_probe *p = NULL;
        s_ = lrgd_probe_run(e, NULL, NULL, 0, c->qt, nq, y, &p);
        H.t_probe = lrgd_now() - t0;
        if (s_ != LRGD_OK) break;
        H.logp0 = lrgd_probe_logp(p);
        for (int k = 0; k < nc; k++) ids[k] = c->sid[cu[k]];
        t0 = lrgd_now();
        s_ = lrgd_effect_score(c->st, p, ids, nc, c->eff, c->ptk);
        H.t_score = lrgd_now() - t0;
        lrgd_probe_free(p);
        if (s_ == LRGD_OK) s_ = all_rows(c, nq, y, ids, nc, 0);
        if (s_ == LRGD_OK) s_ = fill_pairs(c, u, nq, y, cu, ids, nc, c->eff, c->ptk, c->efa, &H, pairs);
        if (s_ != LRGD_OK) break;
        memcpy(rec, &H, sizeof H);
        lrgd_progress_update(&pg, (double)(ui - begin + 1), NULL);
    }
    lrgd_progress_end(&pg, (double)(end - begin), NULL);
    return s_;
}

/* ---- the shared pool -------------------------------------------------------- */

#define SP_BLOCK 256             /* users per lrgd_effect_score_matrix call at most */
#define SP_BYTES ((size_t)64 << 20) /* ... and about this much of their probes */

static size_t probe_bytes(const lrgd_probe *p)
{
    size_t rows = (size_t)p->L * (size_t)p->n_rows;
    return rows * ((size_t)3 * p->H * p->hd * sizeof(float) + (size_t)p->H * (sizeof(float) + sizeof(double))) +
           (size_t)p->n_rows * p->D * sizeof(float);
}

/* P users of ix's pool outside users[0..n), drawn by seed, ascending. */
static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}
static lrgd_status sample_pool(const lrgd_demo_index *ix, int n_ds_users, const int32_t *users, int n, int P,
                               uint64_t seed, int32_t *out)
{
    int NP = lrgd_demo_index_n_pool(ix), N = 0;
    const int32_t *pool = lrgd_demo_index_pool(ix);
    char *scored = calloc((size_t)n_ds_users, 1);
    int32_t *cand = malloc((size_t)(NP ? NP : 1) * sizeof *cand);
    if (!scored || !cand) {
        free(scored);
        free(cand);
        return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) scored[users[i]] = 1;
    for (int i = 0; i < NP; i++)
        if (!scored[pool[i]]) cand[N++] = pool[i];
    lrgd_status s_ = LRGD_OK;
    if (N < P) {
        s_ = lrgd_fail(LRGD_E_INVALID, "validity: a shared pool of %d demonstrations needs %d training users outside "
                       "the %d scored users, the split has %d (fewer users or a smaller pool)", P, P, n, N);
    } else {
        lrgd_rng r;
        lrgd_rng_seed(&r, seed, 0x5a3b1f);
        lrgd_rng_draw_i32(&r, cand, N, P);
        qsort(cand, (size_t)P, sizeof *cand, cmp_i32);
        memcpy(out, cand, (size_t)P * sizeof *out);
    }
    free(scored);
    free(cand);
    return s_;
}

/* Users [begin, end) against the shared pool: its P demonstrations encoded
 * once per process (the time charged to the first user this process
 * computes), then blocks of users: one probe each, one matrix call for the
 * block (its time shared evenly by its users), then per user the all-rows
 * form and the truth. */
static lrgd_status job_shared(void *vc, int64_t begin, int64_t end, void *vrec)
{
    vctx *c = vc;
    const lrgd_validity_opts *o = c->o;
    int P = o->pool;
    lrgd_status s_ = LRGD_OK;
    double t_enc = 0;
    if (!c->pool_ready) {
        double t0 = lrgd_now();
        for (int k = 0; k < P && s_ == LRGD_OK; k++) {
            lrgd_demo d;
            int nt = 0;
            s_ = lrgd_demo_index_demo(c->ix, c->pool[k], &d, NULL);
            if (s_ == LRGD_OK) s_ = lrgd_effect_demo_tokens(c->e, &d, o->demo_hist, c->tok, &nt);
            if (s_ == LRGD_OK) s_ = lrgd_store_add(c->st, c->tok, nt, NULL, &c->ids[k]);
        }
        if (s_ != LRGD_OK) return s_;
        t_enc = lrgd_now() - t0;
        c->pool_ready = 1;
    }
    lrgd_progress pg;
    lrgd_progress_begin(&pg, "effect", "users", (double)(end - begin));
    for (int64_t b0 = begin; b0 < end && s_ == LRGD_OK;) {
        int nb = 0, nq;
        int32_t y;
        size_t bytes = 0;
        while (b0 + nb < end && nb < c->block && bytes < SP_BYTES) {
            vrec_head *H = &c->hd[nb];
            memset(H, 0, sizeof *H);
            if ((s_ = user_query(c, c->users[b0 + nb], &nq, &y, NULL, NULL)) != LRGD_OK) break;
            double t0 = lrgd_now();
            s_ = lrgd_probe_run(c->e, NULL, NULL, 0, c->qt, nq, y, &c->pr[nb]);
            H->t_probe = lrgd_now() - t0;
            if (s_ != LRGD_OK) break;
            H->logp0 = lrgd_probe_logp(c->pr[nb]);
            bytes += probe_bytes(c->pr[nb]);
            nb++;
        }
        double ts = 0;
        if (s_ == LRGD_OK) {
            double t0 = lrgd_now();
            s_ = lrgd_effect_score_matrix(c->st, (const lrgd_probe *const *)c->pr, nb, c->ids, P, c->meff, c->mptk);
            ts = lrgd_now() - t0;
        }
        for (int j = 0; j < nb; j++) {
            lrgd_probe_free(c->pr[j]);
            c->pr[j] = NULL;
        }
        for (int j = 0; j < nb && s_ == LRGD_OK; j++) {
            int64_t ui = b0 + j;
            int u = c->users[ui];
            unsigned char *rec = (unsigned char *)vrec + (size_t)(ui - begin) * vrec_size(P);
            vrec_head H = c->hd[j];
            memset(rec, 0, vrec_size(P));
            H.t_score = ts / nb;
            if (ui == begin) H.t_encode = t_enc;
            s_ = user_query(c, u, &nq, &y, NULL, NULL);
            if (s_ == LRGD_OK) s_ = all_rows(c, nq, y, c->ids, P, 1);
            if (s_ == LRGD_OK)
                s_ = fill_pairs(c, u, nq, y, c->pool, c->ids, P, c->meff + (size_t)j * P, c->mptk + (size_t)j * P,
                                c->efa, &H, (vrec_pair *)(rec + sizeof H));
            if (s_ != LRGD_OK) break;
            memcpy(rec, &H, sizeof H);
            lrgd_progress_update(&pg, (double)(ui - begin + 1), NULL);
        }
        b0 += nb;
    }
    lrgd_progress_end(&pg, (double)(end - begin), NULL);
    return s_;
}

lrgd_status lrgd_effect_validity(const lrgd_model *m, const lrgd_split *sp, const lrgd_validity_opts *o,
                                 lrgd_validity **out)
{
    *out = NULL;
    if (o->pool < 1 || o->max_hist < 1 || o->demo_hist < 1 || o->max_hist > 4000 || o->demo_hist > 4000 ||
        o->top_k < 1 || o->n_users < 1)
        return lrgd_fail(LRGD_E_INVALID, "validity: needs users >= 1, pool >= 1, top_k >= 1, histories in 1..4000");
    if (!lrgd_split_is_loo(sp)) return lrgd_fail(LRGD_E_INVALID, "validity: needs a leave-one-out split");
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    if (!o->users && o->n_users > lrgd_split_n_users(sp))
        return lrgd_fail(LRGD_E_INVALID, "validity: %d users requested, the split has %d", o->n_users,
                         lrgd_split_n_users(sp));
    int nu = lrgd_dataset_n_users(ds), NU = o->n_users, P = o->pool;
    lrgd_validity *V = calloc(1, sizeof *V);
    vctx c;
    memset(&c, 0, sizeof c);
    c.sp = sp;
    c.o = o;
    c.sid = malloc((size_t)nu * sizeof *c.sid);
    c.ids = malloc((size_t)P * sizeof *c.ids);
    c.cu = malloc((size_t)P * sizeof *c.cu);
    c.eff = malloc((size_t)P * sizeof *c.eff);
    c.ptk = malloc((size_t)P * sizeof *c.ptk);
    c.efa = malloc((size_t)P * sizeof *c.efa);
    c.qt = malloc((size_t)m->cfg.seq_len * sizeof *c.qt);
    unsigned char *recs = NULL;
    lrgd_status s_ = V && c.sid && c.ids && c.cu && c.eff && c.ptk && c.efa && c.qt ? LRGD_OK
                                                                                    : lrgd_fail(LRGD_E_NOMEM, "out of memory");
    if (s_ == LRGD_OK) {
        V->users = malloc((size_t)NU * sizeof *V->users);
        V->logp0 = malloc((size_t)NU * sizeof *V->logp0);
        V->pairs = malloc((size_t)NU * P * sizeof *V->pairs);
        recs = malloc((size_t)NU * vrec_size(P));
        if (!V->users || !V->logp0 || !V->pairs || !recs) s_ = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    }
    if (s_ == LRGD_OK) {
        if (o->users) memcpy(V->users, o->users, (size_t)NU * sizeof *V->users);
        else s_ = lrgd_sample_users(sp, NU, o->seed, V->users);
    }
    for (int i = 0; s_ == LRGD_OK && i < NU; i++)
        if (!lrgd_split_has_user(sp, V->users[i]))
            s_ = lrgd_fail(LRGD_E_INVALID, "validity: user %d does not take part in the split", V->users[i]);
    c.users = V ? V->users : NULL;
    if (s_ == LRGD_OK) s_ = lrgd_effect_new_data(m, ds, &c.e); /* either path; checks the items */
    if (s_ == LRGD_OK) s_ = lrgd_store_new(c.e, &c.st);
    if (s_ == LRGD_OK) s_ = lrgd_demo_index_new(sp, LRGD_STEP_VALID, o->demo_hist, &c.ix);
    if (s_ == LRGD_OK && !(c.tok = malloc((size_t)c.e->c.seq_len * sizeof *c.tok)))
        s_ = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    if (s_ == LRGD_OK)
        for (int i = 0; i < nu; i++) c.sid[i] = -1;
    if (s_ == LRGD_OK && o->shared_pool) {
        c.block = (1 << 22) / P; /* the block's scores: at most 4M pairs */
        c.block = c.block < 1 ? 1 : c.block > SP_BLOCK ? SP_BLOCK : c.block;
        c.pool = malloc((size_t)P * sizeof *c.pool);
        c.pr = calloc((size_t)c.block, sizeof *c.pr);
        c.hd = malloc((size_t)c.block * sizeof *c.hd);
        c.meff = malloc((size_t)c.block * P * sizeof *c.meff);
        c.mptk = malloc((size_t)c.block * P * sizeof *c.mptk);
        if (!c.pool || !c.pr || !c.hd || !c.meff || !c.mptk) s_ = lrgd_fail(LRGD_E_NOMEM, "out of memory");
        if (s_ == LRGD_OK) s_ = sample_pool(c.ix, nu, V->users, NU, P, o->seed, c.pool);
    }
    if (s_ == LRGD_OK) {
        lrgd_user_job job = o->shared_pool ? job_shared : job_validity;
        if (o->map && o->map->run)
            s_ = o->map->run(o->map->self, "effect", 0, NU, vrec_size(P), job, &c, recs);
        else
            s_ = job(&c, 0, NU, recs);
    }
    /* every user's pairs in user order; n_encoded counts the distinct
     * candidates (each is encoded once per process) */
    char *seen = s_ == LRGD_OK ? calloc((size_t)nu, 1) : NULL;
    if (s_ == LRGD_OK && !seen) s_ = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (int ui = 0; ui < NU && s_ == LRGD_OK; ui++) {
        const unsigned char *rec = recs + (size_t)ui * vrec_size(P);
        vrec_head H;
        memcpy(&H, rec, sizeof H);
        if (H.n_pairs < 0 || H.n_pairs > P) {
            s_ = lrgd_fail(LRGD_E_RUNTIME, "validity: user %d has %d pairs", V->users[ui], H.n_pairs);
            break;
        }
        V->logp0[ui] = H.logp0;
        V->t_encode += H.t_encode;
        V->t_probe += H.t_probe;
        V->t_score += H.t_score;
        V->t_truth += H.t_truth;
        V->n_truth += H.n_truth;
        for (int k = 0; k < H.n_pairs; k++) {
            vrec_pair pr;
            memcpy(&pr, rec + sizeof H + (size_t)k * sizeof pr, sizeof pr);
            V->pairs[V->n_pairs++] =
                (lrgd_validity_pair){V->users[ui], pr.demo_user, pr.len, pr.effect, pr.per_token, pr.effect_all, pr.dlogp};
            if (pr.demo_user < 0 || pr.demo_user >= nu) {
                s_ = lrgd_fail(LRGD_E_RUNTIME, "validity: demonstration user %d out of range", pr.demo_user);
                break;
            }
            V->n_encoded += !seen[pr.demo_user];
            seen[pr.demo_user] = 1;
        }
        V->n_users = ui + 1;
    }
    free(seen);
    if (s_ == LRGD_OK) {
        double np = V->n_pairs > 0 ? V->n_pairs : 1;
        V->us_score_per_pair = 1e6 * V->t_score / np;
        V->us_effect_per_pair = 1e6 * (V->t_score + V->t_encode + V->t_probe) / np;
        V->us_truth_per_pair = V->n_truth ? 1e6 * V->t_truth / V->n_truth : NAN;
        summarize(V, o->top_k);
    }
    lrgd_demo_index_free(c.ix);
    lrgd_store_free(c.st);
    lrgd_effect_free(c.e);
    free(c.sid);
    free(c.ids);
    free(c.cu);
    free(c.eff);
    free(c.ptk);
    free(c.efa);
    free(c.tok);
    free(c.qt);
    free(c.pool);
    free(c.pr);
    free(c.hd);
    free(c.meff);
    free(c.mptk);
    free(recs);
    if (s_ != LRGD_OK) {
        lrgd_validity_free(V);
        return s_;
    }
    *out = V;
    return LRGD_OK;
}
