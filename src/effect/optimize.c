/* The two-stage optimizer over a leave-one-out split (LRGD.md §4).
 *
 * Stage 1 chooses each user's k demonstrations from its pool (stage1.c),
 * against the user's validation item.
 *
 * Stage 2 refines the chosen demonstrations with item swaps. A chosen
 * demonstration is a pool object (a training user's demonstration): an
 * accepted edit changes it for every user whose choice contains it, the
 * held-out users included. Per round, for each optimized user:
 *  - one backward pass of l = -log p(y | [T | S | Q]) gives dl/d(embedding)
 *    of every demonstration token; swapping item a for item w at a position
 *    changes l by about (E_w - E_a) . dl/dx (the gradient with respect to the
 *    one-hot token, HotFlip/GCG); the most negative proposals are kept;
 *  - the best `verify` of them are checked with real forward passes on the
 *    regularized objective J summed over the optimized users that share the
 *    demonstration:
 *      J_u(S) = robust log p(y_u | [T | S | Q_u])
 *               - lambda |sum_d dW_d|^2 / |W_0,u|^2 - mu sum_{a<b} cos(dW_a, dW_b)
 *    (robust: mean - beta std over the clean prompt and n_perturb2 perturbed
 *    copies of S, when perturbation is on);
 *  - the best improving edit whose demonstration stays plausible (its mean
 *    item log-likelihood at most plaus_delta below the original's) is kept.
 * Collapse guard: after each round the metric of the held-out validation
 * users (NDCG@10 over all items, or mean log p(y)), with their stage-1 choices
 * as they now read, is compared with its stage-1 value; a round that falls
 * below it is undone and stage 2 stops. */
#include "effect/stage.h"
#include "train/train_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct pentry {
    int src;           /* pool user */
    int n_hist;        /* items[0..n_hist) history, items[n_hist] answer */
    int32_t *items, *orig;
    int sid;           /* store entry of the current items */
    double plaus0;     /* plausibility of the original */
} pentry;

typedef struct quser {
    int u, is_hold;
    int32_t y;
    const int32_t *hist;
    int n_hist;
    int qtok[4096], nq;
    int n_sel;
    int ent[64];       /* pentry indices, prompt order */
    double w0;         /* |W_0|^2 (from stage 1's first probe) */
    double J;          /* current stage-2 objective (optimized users) */
} quser;

typedef struct octx {
    lrgd_tmodel *t;
    lrgd_effect *e;
    const lrgd_split *sp;
    const lrgd_opt_opts *o;
    const lrgd_popdist *pop;
    lrgd_store *st;    /* pool entries (all versions) */
    pentry *pe;
    int n_pe, cap_pe;
    int *pe_of;        /* [n_users]: pool user -> pentry, -1 */
    quser *qu;
    int n_qu;
    int *tok;          /* prompt assembly [seq_len] */
    float *dembd;      /* [seq_len][dim] */
    int n_opt;         /* qu[0..n_opt): optimized users; the rest held out */
    lrgd_demo_index *ix; /* training demonstrations at the validation step */
    const int32_t *pool_users; /* a fixed pool, or NULL: retrieval */
    int n_pool_users;
    const lrgd_selection *similar; /* the baseline, for the validation log p */
} octx;

void lrgd_opt_result_free(lrgd_opt_result *r)
{
    if (!r) return;
    free(r->users);
    lrgd_selection_free(r->stage1);
    lrgd_selection_free(r->stage2);
    lrgd_selection_free(r->similar);
    free(r->hold_trace);
    free(r);
}

static lrgd_status pe_get(octx *x, int src, const lrgd_demo *d, int *idx)
{
    if (x->pe_of[src] >= 0) {
        *idx = x->pe_of[src];
        return LRGD_OK;
    }
    if (x->n_pe == x->cap_pe) {
        int nc = x->cap_pe ? 2 * x->cap_pe : 256;
        pentry *p = realloc(x->pe, (size_t)nc * sizeof *p);
        if (!p) return lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
        x->pe = p;
        x->cap_pe = nc;
    }
    int nh = d->n_hist < x->o->demo_hist ? d->n_hist : x->o->demo_hist;
    pentry *p = &x->pe[x->n_pe];
    memset(p, 0, sizeof *p);
    p->src = src;
    p->n_hist = nh;
    p->items = malloc((size_t)(nh + 1) * sizeof *p->items);
    p->orig = malloc((size_t)(nh + 1) * sizeof *p->orig);
    if (!p->items || !p->orig) {
        free(p->items);
        free(p->orig);
        return lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
    }
    memcpy(p->items, d->hist + (d->n_hist - nh), (size_t)nh * sizeof *p->items);
    p->items[nh] = d->next;
    memcpy(p->orig, p->items, (size_t)(nh + 1) * sizeof *p->orig);
    lrgd_demo dd = {p->items, nh, p->items[nh]};
    LRGD_TRY(st_encode(x->e, x->st, &dd, x->o->demo_hist, 0, 0, 0, NULL, NULL, 0, &p->sid));
    p->plaus0 = lrgd_store_plaus(x->st, p->sid);
    x->pe_of[src] = x->n_pe;
    *idx = x->n_pe++;
    return LRGD_OK;
}

/* [T | the entries' current tokens | Q] into x->tok; *off: where each demonstration starts */
static lrgd_status assemble(octx *x, const quser *q, const int *sids, int n, int *off, int *n_tok)
{
    lrgd_effect *e = x->e;
    int k = 0, cap = lrgd_effect_model(e)->cfg.seq_len;
    int ni = lrgd_effect_n_instr(e);
    memcpy(x->tok, e->instr, (size_t)ni * sizeof(int));
    k = ni;
    for (int i = 0; i < n; i++) {
        int len = lrgd_store_len(x->st, sids[i]);
        if (k + len + q->nq > cap) return lrgd_fail(LRGD_E_INVALID, "optimizer: prompt of user %d exceeds the context", q->u);
        if (off) off[i] = k;
        memcpy(x->tok + k, lrgd_store_tokens(x->st, sids[i]), (size_t)len * sizeof(int));
        k += len;
    }
    memcpy(x->tok + k, q->qtok, (size_t)q->nq * sizeof(int));
    *n_tok = k + q->nq;
    return LRGD_OK;
}

/* J_u for the entries sids (prompt order); keys: their pool users (perturbation keys);
 * logp_clean: log p(y) of the plain prompt */
static lrgd_status objective(octx *x, const quser *q, const int *sids, const int *keys, int n, double *J,
                             double *logp_clean)
{
    const lrgd_opt_opts *o = x->o;
    lrgd_effect *e = x->e;
    int n_tok, off[64];
    LRGD_TRY(assemble(x, q, sids, n, off, &n_tok));
    double vals[65];
    int nv = 0;
    LRGD_TRY(lrgd_effect_logp(e, x->tok, n_tok, q->y, &vals[nv++]));
    if (logp_clean) *logp_clean = vals[0];
    int M2 = o->use_perturb && lrgd_perturb_active(&o->perturb) ? o->n_perturb2 : 0;
    if (M2 > 0) {
        /* perturbed copies of every demonstration of S, keyed by (seed, user, pool user, 1000 + m) */
        lrgd_status s_ = LRGD_OK;
        int D = e->c.dim, ni = lrgd_effect_n_instr(e);
        for (int m = 1; m <= M2 && s_ == LRGD_OK; m++) {
            int k = ni, has_noise = o->perturb.noise > 0;
            int *tok = malloc((size_t)e->c.seq_len * sizeof *tok);
            float *embd = has_noise ? lrgd_alloc_n((size_t)e->c.seq_len * D, sizeof(float)) : NULL;
            if (!tok || (has_noise && !embd)) s_ = lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
            if (s_ == LRGD_OK) memcpy(tok, e->instr, (size_t)ni * sizeof(int));
            for (int i = 0; i < n && s_ == LRGD_OK; i++) {
                int key = keys[i];
                int32_t hb[4096];
                const int *dt = lrgd_store_tokens(x->st, sids[i]);
                int dlen = lrgd_store_len(x->st, sids[i]), nh = dlen - 3;
                for (int j = 0; j < nh; j++) hb[j] = dt[j] - e->v.n_special;
                lrgd_demo d = {hb, nh, dt[nh + 1] - e->v.n_special}, pd;
                int32_t hb2[4096];
                s_ = lrgd_perturb_items(&o->perturb, x->pop, e->v.n_items, o->seed, q->u, key, 1000 + m, &d, hb2, &pd);
                int nt = 0;
                if (s_ == LRGD_OK && k + pd.n_hist + 3 + q->nq <= e->c.seq_len)
                    s_ = lrgd_demo_tokens(&e->v, &pd, 0, tok + k, &nt);
                if (s_ == LRGD_OK && has_noise) {
                    lrgd_embed(embd + (size_t)(k - ni) * D, &e->m->tok_embd, tok + k, nt);
                    float *nz = lrgd_alloc_n((size_t)nt * D, sizeof(float));
                    if (!nz) s_ = lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
                    else {
                        lrgd_perturb_noise(&o->perturb, o->seed, q->u, key, 1000 + m, embd + (size_t)(k - ni) * D, nt,
                                           D, nz);
                        for (size_t j = 0; j < (size_t)nt * D; j++) embd[(size_t)(k - ni) * D + j] += nz[j];
                        lrgd_free(nz);
                    }
                }
                k += nt;
            }
            if (s_ == LRGD_OK) {
                memcpy(tok + k, q->qtok, (size_t)q->nq * sizeof(int));
                if (has_noise) lrgd_embed(embd + (size_t)(k - ni) * D, &e->m->tok_embd, q->qtok, q->nq);
                k += q->nq;
                if (has_noise) {
                    const float *lg;
                    s_ = ef_last_logits(e, NULL, embd, k, &lg);
                    if (s_ == LRGD_OK) vals[nv++] = ef_item_logp(e, lg, e->v.n_special + q->y);
                } else {
                    s_ = lrgd_effect_logp(e, tok, k, q->y, &vals[nv]);
                    nv++;
                }
            }
            free(tok);
            lrgd_free(embd);
        }
        LRGD_TRY(s_);
    }
    double mean = 0, var = 0;
    for (int i = 0; i < nv; i++) mean += vals[i];
    mean /= nv;
    for (int i = 0; i < nv; i++) var += (vals[i] - mean) * (vals[i] - mean);
    double rob = nv > 1 ? mean - o->beta * sqrt(var / (nv - 1)) : mean;
    double tr = 0, red = 0;
    if (o->use_reg && (o->lambda > 0 || o->mu > 0)) {
        double ss = 0;
        for (int a = 0; a < n; a++)
            for (int b = 0; b < n; b++) {
                double ip = lrgd_store_inner(x->st, sids[a], x->st, sids[b]);
                ss += ip;
                if (a < b) {
                    double na = lrgd_store_inner(x->st, sids[a], x->st, sids[a]),
                           nb = lrgd_store_inner(x->st, sids[b], x->st, sids[b]);
                    red += na > 0 && nb > 0 ? ip / sqrt(na * nb) : 0;
                }
            }
        tr = ss / (q->w0 > 0 ? q->w0 : 1);
    }
    *J = rob - (o->use_reg ? o->lambda * tr + o->mu * red : 0);
    if (!isfinite(*J)) return lrgd_fail(LRGD_E_NUMERIC, "optimizer: objective of user %d is not finite", q->u);
    return LRGD_OK;
}

static void cur_sids(const octx *x, const quser *q, int *sids)
{
    for (int i = 0; i < q->n_sel; i++) sids[i] = x->pe[q->ent[i]].sid;
}

static void cur_keys(const octx *x, const quser *q, int *keys)
{
    for (int i = 0; i < q->n_sel; i++) keys[i] = x->pe[q->ent[i]].src;
}

typedef struct prop {
    double delta;  /* predicted change of l */
    int ent, pos;  /* pentry and item position (n_hist: the answer) */
    int32_t item;
} prop;

static int cmp_prop(const void *a, const void *b)
{
    const prop *x = a, *y = b;
    if (x->delta < y->delta) return -1;
    if (x->delta > y->delta) return 1;
    if (x->ent != y->ent) return x->ent - y->ent;
    if (x->pos != y->pos) return x->pos - y->pos;
    return (x->item > y->item) - (x->item < y->item);
}

/* Gradient-proposed swaps for user q's demonstrations, best first. */
static lrgd_status propose(octx *x, const quser *q, prop **out, int *n_out)
{
    lrgd_effect *e = x->e;
    const lrgd_config *c = &e->c;
    int D = c->dim, NI = e->v.n_items, ns = e->v.n_special;
    int sids[64], off[64], n_tok;
    cur_sids(x, q, sids);
    LRGD_TRY(assemble(x, q, sids, q->n_sel, off, &n_tok));
    int *tg = malloc((size_t)n_tok * sizeof *tg), so[2] = {0, n_tok};
    float *sc = lrgd_alloc_n((size_t)NI, sizeof(float));
    int P = x->o->proposals, cap = 0;
    for (int i = 0; i < q->n_sel; i++) cap += (x->pe[q->ent[i]].n_hist + 1) * P;
    prop *pr = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *pr);
    lrgd_status s_ = tg && sc && pr ? LRGD_OK : lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
    int np = 0;
    if (s_ == LRGD_OK) {
        for (int i = 0; i < n_tok; i++) tg[i] = -1;
        tg[n_tok - 1] = ns + q->y;
        lrgd_tbatch b = {1, so, x->tok, NULL, tg};
        double loss;
        lrgd_tmodel_zero_grad(x->t);
        s_ = lrgd_tmodel_grad(x->t, &b, 0, &loss, x->dembd);
    }
    for (int i = 0; i < q->n_sel && s_ == LRGD_OK; i++) {
        const pentry *p = &x->pe[q->ent[i]];
        for (int pos = 0; pos <= p->n_hist; pos++) {
            /* token row: history items first, then ANS, then the answer */
            int row = off[i] + (pos < p->n_hist ? pos : p->n_hist + 1);
            const float *gv = x->dembd + (size_t)row * D;
            lrgd_tmodel_item_scores(x->t, gv, 1, sc); /* E_w . dl/dx for every item w */
            float base = sc[p->items[pos]];
            /* keep the P most negative (E_w - E_a) . g */
            int k0 = np;
            for (int w = 0; w < NI; w++) {
                if (w == p->items[pos]) continue;
                double d = (double)sc[w] - base;
                if (np - k0 < P) {
                    pr[np++] = (prop){d, q->ent[i], pos, w};
                } else {
                    int worst = k0;
                    for (int j = k0 + 1; j < np; j++)
                        if (cmp_prop(&pr[j], &pr[worst]) > 0) worst = j;
                    prop cand = {d, q->ent[i], pos, w};
                    if (cmp_prop(&cand, &pr[worst]) < 0) pr[worst] = cand;
                }
            }
        }
    }
    free(tg);
    lrgd_free(sc);
    if (s_ != LRGD_OK) {
        free(pr);
        return s_;
    }
    qsort(pr, (size_t)np, sizeof *pr, cmp_prop);
    *out = pr;
    *n_out = np;
    return LRGD_OK;
}

/* Objective summed over the optimized users whose choice holds entry ent, with
 * entry ent read as sid_new (-1: as it is). */
static lrgd_status shared_objective(octx *x, int ent, int sid_new, double *sum)
{
    *sum = 0;
    for (int i = 0; i < x->n_qu; i++) {
        quser *q = &x->qu[i];
        if (q->is_hold) continue;
        int holds = 0, sids[64], keys[64];
        cur_sids(x, q, sids);
        cur_keys(x, q, keys);
        for (int j = 0; j < q->n_sel; j++)
            if (q->ent[j] == ent) {
                holds = 1;
                if (sid_new >= 0) sids[j] = sid_new;
            }
        if (!holds) continue;
        double J;
        LRGD_TRY(objective(x, q, sids, keys, q->n_sel, &J, NULL));
        *sum += J;
    }
    return LRGD_OK;
}

static lrgd_status edit_entry(octx *x, int ent, int pos, int32_t item, int *sid_out)
{
    pentry *p = &x->pe[ent];
    int32_t *it = malloc((size_t)(p->n_hist + 1) * sizeof *it);
    if (!it) return lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
    memcpy(it, p->items, (size_t)(p->n_hist + 1) * sizeof *it);
    if (pos >= 0) it[pos] = item;
    lrgd_demo d = {it, p->n_hist, it[p->n_hist]};
    lrgd_status s_ = st_encode(x->e, x->st, &d, x->o->demo_hist, 0, 0, 0, NULL, NULL, 0, sid_out);
    free(it);
    return s_;
}

/* ---- phases over users ------------------------------------------------------
 *
 * Each phase fills fixed-size per-user records through o->map (sharded over
 * processes) or in one local call; what follows a phase reads only the
 * records, in user order, so every process takes the same decisions. */

static lrgd_status run_phase(octx *x, const char *phase, uint64_t hash, int64_t n, size_t rec_size, lrgd_user_job job,
                             void *all)
{
    if (n <= 0) return LRGD_OK;
    const lrgd_user_map *m = x->o->map;
    if (m && m->run) return m->run(m->self, phase, hash, n, rec_size, job, x, all);
    return job(x, 0, n, all);
}

/* FNV-1a (as core/dist.h) over the demonstrations as they read now and every
 * user's choice: what a stage-2 phase's records depend on. */
static uint64_t state_hash(const octx *x, uint64_t salt)
{
    uint64_t h = 0xcbf29ce484222325ull ^ salt;
#define MIX(p_, n_)                                                                \
    do {                                                                           \
        const unsigned char *b_ = (const unsigned char *)(p_);                    \
        for (size_t i_ = 0; i_ < (size_t)(n_); i_++) h = (h ^ b_[i_]) * 0x100000001b3ull; \
    } while (0)
    for (int j = 0; j < x->n_pe; j++) MIX(x->pe[j].items, (size_t)(x->pe[j].n_hist + 1) * sizeof(int32_t));
    for (int i = 0; i < x->n_qu; i++) MIX(x->qu[i].ent, (size_t)x->qu[i].n_sel * sizeof(int));
#undef MIX
    return h;
}

/* Stage 1 records: the choice (pool users, prompt order), the candidates
 * scored, the objective and |W_0|^2; items are x->qu (optimized, then
 * held-out users). */
typedef struct s1_head {
    int32_t n_sel, n_pool;
    double obj, w0;
} s1_head;

static size_t s1_size(const octx *x) { return (sizeof(s1_head) + sizeof(int32_t) * (size_t)x->o->k + 7) / 8 * 8; }

static lrgd_status job_stage1(void *vx, int64_t begin, int64_t end, void *vrec)
{
    octx *x = vx;
    const lrgd_opt_opts *o = x->o;
    size_t rs = s1_size(x);
    int P = x->pool_users ? x->n_pool_users : o->pool;
    int32_t *cu = malloc((size_t)(P > 0 ? P : 1) * sizeof *cu);
    lrgd_demo *cd = malloc((size_t)(P > 0 ? P : 1) * sizeof *cd);
    int chosen[64];
    lrgd_status s_ = cu && cd ? LRGD_OK : lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
    lrgd_progress pg;
    lrgd_progress_begin(&pg, "stage 1", "users", (double)(end - begin));
    for (int64_t i = begin; i < end && s_ == LRGD_OK; i++) {
        quser *q = &x->qu[i];
        unsigned char *rec = (unsigned char *)vrec + (size_t)(i - begin) * rs;
        int u = q->u, nc = 0;
        if (x->pool_users) {
            for (int j = 0; j < x->n_pool_users; j++)
                if (x->pool_users[j] != u) cu[nc++] = x->pool_users[j];
        } else if ((s_ = lrgd_demo_index_similar(x->ix, q->hist, q->n_hist, u, P, cu, NULL, &nc)) != LRGD_OK)
            break;
        for (int j = 0; j < nc && s_ == LRGD_OK; j++) s_ = lrgd_demo_index_demo(x->ix, cu[j], &cd[j], NULL);
        if (s_ != LRGD_OK) break;
        int M = st_n_copies(o), n_ch = 0;
        int *ids = malloc((size_t)(nc > 0 ? nc : 1) * (M + 1) * sizeof *ids);
        lrgd_store *st = NULL;
        double obj = 0, w0 = 0;
        if (!ids) s_ = lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
        if (s_ == LRGD_OK) s_ = lrgd_store_new(x->e, &st);
        if (s_ == LRGD_OK) s_ = st_prepare(x->e, st, cd, cu, nc, u, x->pop, o, ids);
        if (s_ == LRGD_OK && nc > 0)
            s_ = st_greedy(x->e, st, ids, nc, q->qtok, q->nq, q->y, o, NULL, 0, chosen, &n_ch, &obj, &w0);
        lrgd_store_free(st);
        free(ids);
        if (s_ != LRGD_OK) break;
        if (nc == 0) { /* no candidate: the user's own W_0 still sets its trust region */
            lrgd_probe *p = NULL;
            if ((s_ = lrgd_probe_run(x->e, NULL, NULL, 0, q->qtok, q->nq, q->y, &p)) != LRGD_OK) break;
            w0 = lrgd_probe_w0_norm2(p);
            lrgd_probe_free(p);
        }
        memset(rec, 0, rs);
        s1_head h = {n_ch, nc, obj, w0};
        memcpy(rec, &h, sizeof h);
        for (int j = 0; j < n_ch; j++) {
            int32_t src = cu[chosen[j]];
            memcpy(rec + sizeof h + (size_t)j * sizeof src, &src, sizeof src);
        }
        lrgd_progress_update(&pg, (double)(i - begin + 1), NULL);
    }
    lrgd_progress_end(&pg, (double)(end - begin), NULL);
    free(cu);
    free(cd);
    return s_;
}

/* log p(y) of zero-shot, similar and stage-1 prompts and stage 1's J, per optimized user. */
typedef struct l1_rec {
    double logp_zero, logp_similar, logp_stage1, j_stage1;
} l1_rec;

static lrgd_status job_logp1(void *vx, int64_t begin, int64_t end, void *vrec)
{
    octx *x = vx;
    const lrgd_opt_opts *o = x->o;
    l1_rec *rec = vrec;
    lrgd_status s_ = LRGD_OK;
    for (int64_t i = begin; i < end && s_ == LRGD_OK; i++) {
        quser *q = &x->qu[i];
        l1_rec *r = &rec[i - begin];
        int n_tok, sids[64], keys[64];
        if ((s_ = assemble(x, q, NULL, 0, NULL, &n_tok)) != LRGD_OK) break;
        if ((s_ = lrgd_effect_logp(x->e, x->tok, n_tok, q->y, &r->logp_zero)) != LRGD_OK) break;
        int ns = lrgd_selection_count(x->similar, q->u), k = lrgd_effect_n_instr(x->e);
        memcpy(x->tok, x->e->instr, (size_t)k * sizeof(int));
        for (int j = 0; j < ns && s_ == LRGD_OK; j++) {
            lrgd_demo d;
            int n = 0;
            s_ = lrgd_selection_get(x->similar, q->u, j, &d, NULL);
            if (s_ == LRGD_OK && k + d.n_hist + 3 + q->nq > x->e->c.seq_len) break;
            if (s_ == LRGD_OK) s_ = lrgd_demo_tokens(&x->e->v, &d, o->demo_hist, x->tok + k, &n);
            k += n;
        }
        if (s_ != LRGD_OK) break;
        memcpy(x->tok + k, q->qtok, (size_t)q->nq * sizeof(int));
        if ((s_ = lrgd_effect_logp(x->e, x->tok, k + q->nq, q->y, &r->logp_similar)) != LRGD_OK) break;
        cur_sids(x, q, sids);
        cur_keys(x, q, keys);
        s_ = objective(x, q, sids, keys, q->n_sel, &r->j_stage1, &r->logp_stage1);
    }
    return s_;
}

/* The held-out metric of one user (items: the held-out users, x->qu[n_users + i]). */
static lrgd_status job_guard(void *vx, int64_t begin, int64_t end, void *vrec)
{
    octx *x = vx;
    double *v = vrec;
    for (int64_t i = begin; i < end; i++) {
        quser *q = &x->qu[x->n_opt + i];
        int sids[64], n_tok;
        cur_sids(x, q, sids);
        LRGD_TRY(assemble(x, q, sids, q->n_sel, NULL, &n_tok));
        const float *lg;
        LRGD_TRY(ef_last_logits(x->e, x->tok, NULL, n_tok, &lg));
        if (x->o->guard_logp) v[i - begin] = ef_item_logp(x->e, lg, x->e->v.n_special + q->y);
        else {
            int32_t r = lrgd_rank_full(lg + x->e->v.n_special, x->e->v.n_items, q->y, q->hist, q->n_hist);
            if (r < 0) return lrgd_fail(LRGD_E_NUMERIC, "optimizer: NaN score for held-out user %d", q->u);
            v[i - begin] = lrgd_metric_value(LRGD_NDCG10, r);
        }
    }
    return LRGD_OK;
}

/* NDCG@10 over all items (history excluded) or log p(y), averaged over the
 * held-out users: per-user values from the phase, summed in user order. */
static lrgd_status hold_metric(octx *x, const char *phase, double *out)
{
    int n = x->n_qu - x->n_opt;
    if (n <= 0) {
        *out = NAN;
        return LRGD_OK;
    }
    double *v = malloc((size_t)n * sizeof *v);
    if (!v) return lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
    lrgd_status s_ = run_phase(x, phase, state_hash(x, 0x9a4d), n, sizeof *v, job_guard, v);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    free(v);
    *out = sum / n;
    return s_;
}

/* One user's stage-2 step against the demonstrations as they read now: the
 * best improving, plausible edit of its demonstrations (found = 0: none).
 * Reads the user's entries and, through the shared objective, the entries
 * of every optimized user that holds one of them; changes nothing but the
 * store (the encoded candidates). */
typedef struct s2_rec {
    int32_t found, ent, pos, item;
    double gain;
} s2_rec;

static lrgd_status refine_user(octx *x, const quser *q, s2_rec *r, int *sid_out)
{
    const lrgd_opt_opts *o = x->o;
    memset(r, 0, sizeof *r);
    *sid_out = -1;
    prop *pr = NULL;
    int np = 0;
    LRGD_TRY(propose(x, q, &pr, &np));
    double best_gain = 1e-9;
    lrgd_status s_ = LRGD_OK;
    for (int v = 0; v < np && v < o->verify && s_ == LRGD_OK; v++) {
        int sid;
        s_ = edit_entry(x, pr[v].ent, pr[v].pos, pr[v].item, &sid);
        if (s_ != LRGD_OK) break;
        if (o->use_plaus && lrgd_store_plaus(x->st, sid) < x->pe[pr[v].ent].plaus0 - o->plaus_delta) continue;
        double cur, nw;
        s_ = shared_objective(x, pr[v].ent, -1, &cur);
        if (s_ == LRGD_OK) s_ = shared_objective(x, pr[v].ent, sid, &nw);
        if (s_ == LRGD_OK && nw - cur > best_gain) {
            best_gain = nw - cur;
            *r = (s2_rec){1, pr[v].ent, pr[v].pos, pr[v].item, best_gain};
            *sid_out = sid;
        }
    }
    free(pr);
    return s_;
}

static lrgd_status job_refine(void *vx, int64_t begin, int64_t end, void *vrec)
{
    octx *x = vx;
    s2_rec *rec = vrec;
    lrgd_progress pg;
    lrgd_progress_begin(&pg, "stage 2", "users", (double)(end - begin));
    for (int64_t i = begin; i < end; i++) {
        int sid;
        LRGD_TRY(refine_user(x, &x->qu[i], &rec[i - begin], &sid));
        lrgd_progress_update(&pg, (double)(i - begin + 1), NULL);
    }
    lrgd_progress_end(&pg, (double)(end - begin), NULL);
    return LRGD_OK;
}

/* Accept edit r: the entry now reads the edited items (sid: its encoding, or
 * -1 to encode it here). */
static lrgd_status apply_edit(octx *x, const s2_rec *r, int sid)
{
    if (sid < 0) LRGD_TRY(edit_entry(x, r->ent, r->pos, r->item, &sid));
    pentry *p = &x->pe[r->ent];
    p->items[r->pos] = r->item;
    p->sid = sid;
    return LRGD_OK;
}

/* One round of stage 2; returns the edits accepted. Optimized users in
 * order, each edit accepted before the next user's step (an accepted edit
 * changes the demonstration for every user that holds it). With a map the
 * steps are first computed in parallel against the round's start; the
 * merge then replays the sequential order and recomputes exactly the users
 * whose speculation read an entry that an earlier accepted edit of this
 * round changed, so the result is the sequential one. */
static lrgd_status refine_round(octx *x, int round, int *accepted, lrgd_opt_result *R)
{
    const lrgd_opt_opts *o = x->o;
    *accepted = 0;
    if (o->fault == 1 && round == 0) {
        /* test hook: scramble every item of each user's demonstrations, no checks
         * (keyed by the pool user: the same items whoever scrambles them) */
        for (int i = 0; i < x->n_opt; i++) {
            quser *q = &x->qu[i];
            for (int j = 0; j < q->n_sel; j++) {
                pentry *p = &x->pe[q->ent[j]];
                lrgd_rng r;
                lrgd_rng_seed(&r, o->seed ^ 0xfa017ull, (uint64_t)p->src);
                for (int k = 0; k <= p->n_hist; k++) p->items[k] = (int32_t)lrgd_rng_below(&r, (uint32_t)x->e->v.n_items);
                lrgd_demo d = {p->items, p->n_hist, p->items[p->n_hist]};
                LRGD_TRY(st_encode(x->e, x->st, &d, o->demo_hist, 0, 0, 0, NULL, NULL, 0, &p->sid));
                (*accepted)++;
            }
        }
        return LRGD_OK;
    }
    if (!o->map) {
        lrgd_progress pg;
        lrgd_progress_begin(&pg, "stage 2", "users", x->n_opt);
        for (int i = 0; i < x->n_opt; i++) {
            s2_rec r;
            int sid;
            LRGD_TRY(refine_user(x, &x->qu[i], &r, &sid));
            if (r.found) {
                LRGD_TRY(apply_edit(x, &r, sid));
                (*accepted)++;
            }
            lrgd_progress_update(&pg, i + 1, NULL);
        }
        lrgd_progress_end(&pg, x->n_opt, NULL);
        return LRGD_OK;
    }
    s2_rec *spec = malloc((size_t)x->n_opt * sizeof *spec);
    /* holders: the optimized users holding each entry (CSR) */
    int *hcnt = calloc((size_t)x->n_pe + 1, sizeof *hcnt), *hlist = NULL;
    char *changed = calloc((size_t)x->n_pe + 1, 1);
    lrgd_status s_ = spec && hcnt && changed ? LRGD_OK : lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
    int tot = 0;
    for (int i = 0; i < x->n_opt && s_ == LRGD_OK; i++)
        for (int j = 0; j < x->qu[i].n_sel; j++) hcnt[x->qu[i].ent[j] + 1]++, tot++;
    if (s_ == LRGD_OK && !(hlist = malloc((size_t)(tot ? tot : 1) * sizeof *hlist)))
        s_ = lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
    if (s_ == LRGD_OK) {
        for (int e = 0; e < x->n_pe; e++) hcnt[e + 1] += hcnt[e];
        int *fill = calloc((size_t)x->n_pe + 1, sizeof *fill);
        if (!fill) s_ = lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
        for (int i = 0; i < x->n_opt && s_ == LRGD_OK; i++)
            for (int j = 0; j < x->qu[i].n_sel; j++) {
                int e = x->qu[i].ent[j];
                hlist[hcnt[e] + fill[e]++] = i;
            }
        free(fill);
    }
    char phase[48];
    snprintf(phase, sizeof phase, "stage2-round%d", round + 1);
    if (s_ == LRGD_OK) s_ = run_phase(x, phase, state_hash(x, 0x52d0 + (uint64_t)round), x->n_opt, sizeof *spec,
                                      job_refine, spec);
    for (int i = 0; i < x->n_opt && s_ == LRGD_OK; i++) {
        const quser *q = &x->qu[i];
        int stale = 0;
        for (int j = 0; j < q->n_sel && !stale; j++) {
            int e = q->ent[j];
            for (int h = hcnt[e]; h < hcnt[e + 1] && !stale; h++) {
                const quser *o2 = &x->qu[hlist[h]];
                for (int k = 0; k < o2->n_sel && !stale; k++) stale = changed[o2->ent[k]];
            }
        }
        s2_rec r = spec[i];
        int sid = -1;
        if (stale) {
            s_ = refine_user(x, q, &r, &sid);
            R->stage2_redone++;
        }
        if (s_ == LRGD_OK && r.found) {
            s_ = apply_edit(x, &r, sid);
            changed[r.ent] = 1;
            (*accepted)++;
        }
    }
    free(spec);
    free(hcnt);
    free(hlist);
    free(changed);
    return s_;
}

static lrgd_status build_selection(const octx *x, int use_orig, lrgd_selection *s)
{
    for (int i = 0; i < x->n_qu; i++) {
        const quser *q = &x->qu[i];
        lrgd_demo d[64];
        int32_t src[64];
        for (int j = 0; j < q->n_sel; j++) {
            const pentry *p = &x->pe[q->ent[j]];
            const int32_t *it = use_orig ? p->orig : p->items;
            d[j] = (lrgd_demo){it, p->n_hist, it[p->n_hist]};
            src[j] = p->src;
        }
        LRGD_TRY(lrgd_selection_set(s, q->u, d, src, q->n_sel));
    }
    return LRGD_OK;
}

/* The stage-2 objective and log p(y) of the final choice, per optimized user. */
typedef struct f_rec {
    double j_stage2, logp_stage2;
} f_rec;

static lrgd_status job_final(void *vx, int64_t begin, int64_t end, void *vrec)
{
    octx *x = vx;
    f_rec *rec = vrec;
    for (int64_t i = begin; i < end; i++) {
        quser *q = &x->qu[i];
        int sids[64], keys[64];
        cur_sids(x, q, sids);
        cur_keys(x, q, keys);
        LRGD_TRY(objective(x, q, sids, keys, q->n_sel, &rec[i - begin].j_stage2, &rec[i - begin].logp_stage2));
    }
    return LRGD_OK;
}

/* CPU seconds of the process (every thread): the per-rank cost that the
 * distributed runs report next to wall time. */
static double cpu_now(void) { return (double)clock() / CLOCKS_PER_SEC; }

static lrgd_status optimize_run(octx *x, const int32_t *users, int n_users, const int32_t *hold, int n_hold,
                                lrgd_opt_result *R)
{
    const lrgd_opt_opts *o = x->o;
    const lrgd_split *sp = x->sp;
    lrgd_status s_ = lrgd_demo_index_new(sp, LRGD_STEP_VALID, o->demo_hist, &x->ix);
    x->n_opt = n_users;

    /* every optimized and held-out user's query (cheap; every process) */
    for (int i = 0; i < n_users + n_hold && s_ == LRGD_OK; i++) {
        quser *q = &x->qu[i];
        int u = i < n_users ? users[i] : hold[i - n_users];
        memset(q, 0, sizeof *q);
        q->u = u;
        q->is_hold = i >= n_users;
        if (!lrgd_split_has_user(sp, u)) {
            s_ = lrgd_fail(LRGD_E_INVALID, "optimizer: user %d does not take part in the split", u);
            break;
        }
        lrgd_split_history(sp, LRGD_STEP_VALID, u, &q->hist, &q->n_hist);
        q->y = lrgd_split_target(sp, LRGD_STEP_VALID, u);
        int nh = q->n_hist < o->max_hist ? q->n_hist : o->max_hist;
        if (nh > 4000) nh = 4000;
        s_ = lrgd_query_tokens(&x->e->v, q->hist, q->n_hist, nh, q->qtok, &q->nq);
    }

    /* ---- stage 1 for every optimized and held-out user ---- */
    double t0 = lrgd_now(), c0 = cpu_now();
    size_t rs = s1_size(x);
    unsigned char *s1 = s_ == LRGD_OK ? malloc((size_t)(n_users + n_hold) * rs) : NULL;
    if (s_ == LRGD_OK && !s1) s_ = lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
    if (s_ == LRGD_OK) s_ = run_phase(x, "stage1", 0, n_users + n_hold, rs, job_stage1, s1);
    /* the chosen demonstrations become shared pool entries, in user order */
    for (int i = 0; i < n_users + n_hold && s_ == LRGD_OK; i++) {
        quser *q = &x->qu[i];
        const unsigned char *rec = s1 + (size_t)i * rs;
        s1_head h;
        memcpy(&h, rec, sizeof h);
        if (h.n_sel < 0 || h.n_sel > o->k) {
            s_ = lrgd_fail(LRGD_E_RUNTIME, "optimizer: stage 1 of user %d chose %d demonstrations", q->u, h.n_sel);
            break;
        }
        q->n_sel = h.n_sel;
        q->w0 = h.w0;
        for (int j = 0; j < h.n_sel && s_ == LRGD_OK; j++) {
            int32_t src;
            lrgd_demo d;
            memcpy(&src, rec + sizeof h + (size_t)j * sizeof src, sizeof src);
            s_ = lrgd_demo_index_demo(x->ix, src, &d, NULL);
            if (s_ == LRGD_OK) s_ = pe_get(x, src, &d, &q->ent[j]);
        }
        if (!q->is_hold) {
            lrgd_opt_user *ou = &R->users[i];
            ou->user = q->u;
            ou->y = q->y;
            ou->n_pool = h.n_pool;
            ou->obj_stage1 = h.obj;
        }
    }
    free(s1);
    if (s_ == LRGD_OK) s_ = build_selection(x, 1, R->stage1);
    /* the similar baseline and log p(y) of zero-shot / similar / stage 1 */
    if (s_ == LRGD_OK) s_ = lrgd_selection_baseline(sp, x->ix, LRGD_DEMOS_SIMILAR, o->k, o->seed, users, n_users, R->similar);
    x->similar = R->similar;
    l1_rec *l1 = s_ == LRGD_OK ? malloc((size_t)n_users * sizeof *l1) : NULL;
    if (s_ == LRGD_OK && !l1) s_ = lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
    if (s_ == LRGD_OK) s_ = run_phase(x, "stage1-logp", 0, n_users, sizeof *l1, job_logp1, l1);
    for (int i = 0; i < n_users && s_ == LRGD_OK; i++) {
        lrgd_opt_user *ou = &R->users[i];
        ou->logp_zero = l1[i].logp_zero;
        ou->logp_similar = l1[i].logp_similar;
        ou->logp_stage1 = ou->logp_stage2 = l1[i].logp_stage1;
        ou->j_stage1 = ou->j_stage2 = x->qu[i].J = l1[i].j_stage1;
    }
    free(l1);
    R->seconds_stage1 = lrgd_now() - t0;
    R->cpu_stage1 = cpu_now() - c0;

    /* ---- stage 2 with the collapse guard ---- */
    t0 = lrgd_now();
    c0 = cpu_now();
    if (s_ == LRGD_OK && n_hold > 0) s_ = hold_metric(x, "guard-stage1", &R->hold_stage1);
    R->hold_final = R->hold_stage1;
    if (s_ == LRGD_OK && o->stage == 2 && o->rounds > 0) {
        R->hold_trace = calloc((size_t)o->rounds, sizeof *R->hold_trace);
        int32_t **snap = calloc((size_t)x->n_pe, sizeof *snap);
        int *snap_sid = malloc((size_t)(x->n_pe ? x->n_pe : 1) * sizeof *snap_sid);
        if (!R->hold_trace || !snap || !snap_sid) s_ = lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
        for (int j = 0; j < x->n_pe && s_ == LRGD_OK; j++)
            if (!(snap[j] = malloc((size_t)(x->pe[j].n_hist + 1) * sizeof **snap)))
                s_ = lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
        for (int r = 0; r < o->rounds && s_ == LRGD_OK; r++) {
            for (int j = 0; j < x->n_pe; j++) {
                memcpy(snap[j], x->pe[j].items, (size_t)(x->pe[j].n_hist + 1) * sizeof **snap);
                snap_sid[j] = x->pe[j].sid;
            }
            int acc = 0;
            if ((s_ = refine_round(x, r, &acc, R)) != LRGD_OK) break;
            R->n_rounds = r + 1;
            double m = R->hold_stage1;
            char phase[48];
            snprintf(phase, sizeof phase, "guard-round%d", r + 1);
            if (n_hold > 0 && (s_ = hold_metric(x, phase, &m)) != LRGD_OK) break;
            R->hold_trace[r] = m;
            if (n_hold > 0 && m < R->hold_stage1 - o->guard_tol) {
                /* collapse: undo the whole round and stop (the metric is then stage 1's again,
                 * unless an earlier round's edits stay: measure it) */
                for (int j = 0; j < x->n_pe; j++) {
                    memcpy(x->pe[j].items, snap[j], (size_t)(x->pe[j].n_hist + 1) * sizeof **snap);
                    x->pe[j].sid = snap_sid[j];
                }
                R->rolled_back = 1;
                R->edits_rolled_back += acc;
                snprintf(phase, sizeof phase, "guard-rollback%d", r + 1);
                s_ = hold_metric(x, phase, &R->hold_final);
                break;
            }
            R->edits_accepted += acc;
            R->hold_final = m;
            if (acc == 0) break;
        }
        for (int j = 0; j < x->n_pe; j++) free(snap[j]);
        free(snap);
        free(snap_sid);
    }
    if (s_ == LRGD_OK) s_ = build_selection(x, 0, R->stage2);
    if (s_ == LRGD_OK && o->stage == 2 && R->n_rounds > 0) {
        /* (without a round nothing changed: stage 1's values stand) */
        f_rec *fr = malloc((size_t)n_users * sizeof *fr);
        if (!fr) s_ = lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
        if (s_ == LRGD_OK) s_ = run_phase(x, "stage2-final", state_hash(x, 0xf1a1), n_users, sizeof *fr, job_final, fr);
        for (int i = 0; i < n_users && s_ == LRGD_OK; i++) {
            R->users[i].j_stage2 = fr[i].j_stage2;
            R->users[i].logp_stage2 = fr[i].logp_stage2;
        }
        free(fr);
    }
    for (int i = 0; i < n_users && s_ == LRGD_OK; i++) {
        const quser *q = &x->qu[i];
        for (int j = 0; j < q->n_sel; j++) {
            const pentry *p = &x->pe[q->ent[j]];
            for (int k = 0; k <= p->n_hist; k++) R->users[i].edits += p->items[k] != p->orig[k];
        }
    }
    R->seconds_stage2 = lrgd_now() - t0;
    R->cpu_stage2 = cpu_now() - c0;
    lrgd_demo_index_free(x->ix);
    x->ix = NULL;
    return s_;
}

lrgd_status lrgd_optimize(lrgd_tmodel *t, const lrgd_split *sp, const int32_t *users, int n_users,
                          const int32_t *hold, int n_hold, const int32_t *pool_users, int n_pool_users,
                          const lrgd_opt_opts *o, lrgd_opt_result **out)
{
    *out = NULL;
    LRGD_TRY(st_check_opts(o));
    if (!lrgd_split_is_loo(sp)) return lrgd_fail(LRGD_E_INVALID, "optimizer: needs a leave-one-out split");
    if (n_users < 1 || !users) return lrgd_fail(LRGD_E_INVALID, "optimizer: no users to optimize");
    if (n_hold < 0 || (n_hold > 0 && !hold)) return lrgd_fail(LRGD_E_INVALID, "optimizer: bad held-out users");
    if (pool_users && n_pool_users < 1) return lrgd_fail(LRGD_E_INVALID, "optimizer: empty fixed pool");
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    int nu = lrgd_dataset_n_users(ds);
    char *mark = calloc((size_t)nu, 1);
    if (!mark) return lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory");
    for (int i = 0; i < n_users + n_hold; i++) {
        int u = i < n_users ? users[i] : hold[i - n_users];
        if (u < 0 || u >= nu || mark[u]) {
            free(mark);
            return lrgd_fail(LRGD_E_INVALID, "optimizer: user %d is out of range or listed twice (optimized and "
                                             "held-out users must be distinct)", u);
        }
        mark[u] = 1;
    }
    free(mark);
    if (lrgd_tmodel_n_items(t) != lrgd_dataset_n_items(ds))
        return lrgd_fail(LRGD_E_INVALID, "optimizer: the model has %d items, the dataset %d", lrgd_tmodel_n_items(t),
                         lrgd_dataset_n_items(ds));
    octx x = {0};
    x.t = t;
    x.sp = sp;
    x.o = o;
    lrgd_opt_result *R = calloc(1, sizeof *R);
    lrgd_status s_ = R ? lrgd_effect_new(lrgd_tmodel_model(t), &x.e) : lrgd_fail(LRGD_E_NOMEM, "out of memory");
    lrgd_popdist *pop = NULL;
    if (s_ == LRGD_OK) s_ = lrgd_popdist_new(sp, LRGD_STEP_VALID, &pop);
    x.pop = pop;
    if (s_ == LRGD_OK) s_ = lrgd_store_new(x.e, &x.st);
    if (s_ == LRGD_OK) lrgd_store_set_plaus(x.st, 1);
    if (s_ == LRGD_OK) {
        R->n = n_users;
        R->n_hold = n_hold;
        R->users = calloc((size_t)n_users, sizeof *R->users);
        x.pe_of = malloc((size_t)nu * sizeof *x.pe_of);
        x.qu = calloc((size_t)(n_users + n_hold), sizeof *x.qu);
        x.n_qu = n_users + n_hold;
        x.tok = malloc((size_t)x.e->c.seq_len * sizeof *x.tok);
        x.dembd = lrgd_alloc_n((size_t)x.e->c.seq_len * x.e->c.dim, sizeof(float));
        if (!R->users || !x.pe_of || !x.qu || !x.tok || !x.dembd) s_ = lrgd_fail(LRGD_E_NOMEM, "out of memory");
        else
            for (int i = 0; i < nu; i++) x.pe_of[i] = -1;
    }
    if (s_ == LRGD_OK) s_ = lrgd_selection_new(nu, &R->stage1);
    if (s_ == LRGD_OK) s_ = lrgd_selection_new(nu, &R->stage2);
    if (s_ == LRGD_OK) s_ = lrgd_selection_new(nu, &R->similar);
    x.pool_users = pool_users;
    x.n_pool_users = n_pool_users;
    if (s_ == LRGD_OK) s_ = optimize_run(&x, users, n_users, hold, n_hold, R);
    for (int j = 0; j < x.n_pe; j++) {
        free(x.pe[j].items);
        free(x.pe[j].orig);
    }
    free(x.pe);
    free(x.pe_of);
    free(x.qu);
    free(x.tok);
    lrgd_free(x.dembd);
    lrgd_store_free(x.st);
    lrgd_popdist_free(pop);
    lrgd_effect_free(x.e);
    lrgd_tmodel_zero_grad(t);
    if (s_ != LRGD_OK) {
        lrgd_opt_result_free(R);
        return s_;
    }
    *out = R;
    return LRGD_OK;
}
