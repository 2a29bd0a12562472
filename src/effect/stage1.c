/* Stage 1 (LRGD.md §4): score a pool of candidate demonstrations by robust
 * Effect_D against the query's target, then choose k greedily under the
 * regularized objective, re-scoring the marginal effects as the set grows.
 *
 * A new pick goes right after T, in front of the demonstrations already
 * chosen; the first pick ends up next to the query. Each greedy step runs
 * one probe of [T | chosen | Q] and scores every remaining candidate (and
 * its M perturbed copies) against it with dot products.
 *
 * gain(c | S) = robust(c | S)
 *             - lambda * (|dW_S + dW_c|^2 - |dW_S|^2) / |W_0|^2   (trust region, relative to the user's own W_0)
 *             - mu * sum_{s in S} cos(dW_c, dW_s)                   (redundancy)
 * robust(c | S) = mean - beta * std of Effect_D over the M perturbed copies
 * (plain Effect_D when perturbation is off). The objective of a set is the
 * sum of the gains of its picks. */
#include "effect/stage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void lrgd_opt_opts_init(lrgd_opt_opts *o)
{
    memset(o, 0, sizeof *o);
    o->k = 3;
    o->pool = 50;
    o->max_hist = 50;
    o->demo_hist = 20;
    o->use_perturb = 1;
    o->perturb = (lrgd_perturb){0.1, 0.1, 0.0, 0.1, 0.0};
    o->n_perturb = 8;
    o->beta = 0.5;
    o->use_reg = 1;
    o->lambda = 0.02;
    o->mu = 0.05;
    o->use_plaus = 1;
    o->plaus_delta = 1.0;
    o->stage = 2;
    o->rounds = 3;
    o->proposals = 16;
    o->verify = 4;
    o->n_perturb2 = 2;
    o->guard_tol = 0.0;
    o->seed = 42;
}

lrgd_status st_check_opts(const lrgd_opt_opts *o)
{
    if (o->k < 1 || o->k > 64) return lrgd_fail(LRGD_E_INVALID, "optimizer: k = %d outside 1..64", o->k);
    if (o->pool < 1) return lrgd_fail(LRGD_E_INVALID, "optimizer: pool = %d (needs >= 1)", o->pool);
    if (o->max_hist < 1 || o->demo_hist < 1 || o->max_hist > 4000 || o->demo_hist > 4000)
        return lrgd_fail(LRGD_E_INVALID, "optimizer: max_hist and demo_hist must lie in 1..4000");
    if (o->n_perturb < 0 || o->n_perturb > 256 || o->n_perturb2 < 0 || o->n_perturb2 > 64)
        return lrgd_fail(LRGD_E_INVALID, "optimizer: perturbed copies outside 0..256 (stage 2: 0..64)");
    if (!(o->beta >= 0) || !(o->lambda >= 0) || !(o->mu >= 0) || !(o->plaus_delta >= 0) || !(o->guard_tol >= 0))
        return lrgd_fail(LRGD_E_INVALID, "optimizer: beta, lambda, mu, plaus_delta and guard_tol must be >= 0");
    const lrgd_perturb *p = &o->perturb;
    if (p->drop < 0 || p->drop > 1 || p->sub_random < 0 || p->sub_random > 1 || p->sub_pop < 0 || p->sub_pop > 1 ||
        p->sub_random + p->sub_pop > 1 || p->shuffle < 0 || p->shuffle > 1 || !(p->noise >= 0) || p->noise > 100)
        return lrgd_fail(LRGD_E_INVALID, "optimizer: perturbation rates must lie in [0, 1] (sub_random + sub_pop <= 1), "
                                         "noise in [0, 100]");
    if (o->stage != 1 && o->stage != 2) return lrgd_fail(LRGD_E_INVALID, "optimizer: stage %d (1 or 2)", o->stage);
    if (o->rounds < 0 || o->proposals < 1 || o->verify < 1)
        return lrgd_fail(LRGD_E_INVALID, "optimizer: rounds >= 0, proposals >= 1, verify >= 1");
    return LRGD_OK;
}

int st_n_copies(const lrgd_opt_opts *o)
{
    return o->use_perturb && lrgd_perturb_active(&o->perturb) ? o->n_perturb : 0;
}

lrgd_status st_encode(lrgd_effect *e, lrgd_store *st, const lrgd_demo *d, int demo_hist, int user, int key, int m,
                      const lrgd_perturb *pt, const lrgd_popdist *pop, uint64_t seed, int *id)
{
    const lrgd_prompt_vocab *v = lrgd_effect_vocab(e);
    int nh = d->n_hist < demo_hist ? d->n_hist : demo_hist;
    lrgd_demo dd = {d->hist + (d->n_hist - nh), nh, d->next};
    int32_t *hb = malloc((size_t)(nh + 1) * sizeof *hb);
    int *tok = malloc((size_t)(nh + 3) * sizeof *tok);
    float *noise = NULL;
    lrgd_status st_ = hb && tok ? LRGD_OK : lrgd_fail(LRGD_E_NOMEM, "stage 1: out of memory");
    if (st_ == LRGD_OK && m > 0)
        st_ = lrgd_perturb_items(pt, pop, v->n_items, seed, user, key, m, &dd, hb, &dd);
    int n = 0;
    if (st_ == LRGD_OK) st_ = lrgd_demo_tokens(v, &dd, 0, tok, &n);
    if (st_ == LRGD_OK && m > 0 && pt->noise > 0) {
        int D = e->c.dim;
        float *emb = lrgd_alloc_n((size_t)n * D, sizeof(float));
        noise = lrgd_alloc_n((size_t)n * D, sizeof(float));
        if (!emb || !noise) st_ = lrgd_fail(LRGD_E_NOMEM, "stage 1: out of memory");
        else {
            lrgd_embed(emb, &e->m->tok_embd, tok, n);
            lrgd_perturb_noise(pt, seed, user, key, m, emb, n, D, noise);
        }
        lrgd_free(emb);
    }
    if (st_ == LRGD_OK) st_ = lrgd_store_add(st, tok, n, noise, id);
    lrgd_free(noise);
    free(hb);
    free(tok);
    return st_;
}

lrgd_status st_prepare(lrgd_effect *e, lrgd_store *st, const lrgd_demo *cand, const int32_t *keys, int n, int user,
                       const lrgd_popdist *pop, const lrgd_opt_opts *o, int *ids)
{
    int M = st_n_copies(o);
    for (int c = 0; c < n; c++)
        for (int m = 0; m <= M; m++)
            LRGD_TRY(st_encode(e, st, &cand[c], o->demo_hist, user, keys ? keys[c] : c, m, &o->perturb, pop, o->seed,
                               &ids[c * (M + 1) + m]));
    return LRGD_OK;
}

lrgd_status st_greedy(lrgd_effect *e, lrgd_store *st, const int *ids, int n, const int *qtok, int nq, int32_t y,
                      const lrgd_opt_opts *o, const int *forced, int n_forced, int *chosen, int *n_chosen,
                      double *obj_out, double *w0_out)
{
    int M = st_n_copies(o), E = M + 1;
    int k = forced ? n_forced : (o->k < n ? o->k : n);
    int reg = o->use_reg;
    double lambda = reg ? o->lambda : 0, mu = reg ? o->mu : 0;
    double *eff = malloc((size_t)n * E * sizeof *eff), *cross = calloc((size_t)n, sizeof *cross),
           *cosum = calloc((size_t)n, sizeof *cosum);
    int *sel = malloc((size_t)(k > 0 ? k : 1) * sizeof *sel), *taken = calloc((size_t)n, sizeof *taken);
    const int **dt = malloc((size_t)(k > 0 ? k : 1) * sizeof *dt);
    int *dl = malloc((size_t)(k > 0 ? k : 1) * sizeof *dl), *list = malloc((size_t)n * E * sizeof *list);
    lrgd_status s_ = LRGD_OK;
    if (!eff || !cross || !cosum || !sel || !taken || !dt || !dl || !list)
        s_ = lrgd_fail(LRGD_E_NOMEM, "stage 1: out of memory");
    double obj = 0, w0 = 1;
    int ns = 0; /* chosen so far; prompt order is sel[ns-1], ..., sel[0] */
    for (int step = 0; step < k && s_ == LRGD_OK; step++) {
        for (int j = 0; j < ns; j++) {
            int c = sel[ns - 1 - j];
            dt[j] = lrgd_store_tokens(st, ids[c * E]);
            dl[j] = lrgd_store_len(st, ids[c * E]);
        }
        lrgd_probe *p = NULL;
        s_ = lrgd_probe_run_ex(e, dt, dl, ns, qtok, nq, y, o->all_rows ? LRGD_PROBE_ALL_ROWS : 0, &p);
        if (s_ != LRGD_OK) break;
        if (step == 0) {
            w0 = lrgd_probe_w0_norm2(p);
            if (!(w0 > 0)) w0 = 1;
        }
        /* the candidates still open this step */
        int nl = 0;
        if (forced) {
            int c = forced[n_forced - 1 - step];
            for (int m = 0; m < E; m++) list[nl++] = ids[c * E + m];
        } else
            for (int c = 0; c < n; c++)
                if (!taken[c])
                    for (int m = 0; m < E; m++) list[nl++] = ids[c * E + m];
        s_ = lrgd_effect_score(st, p, list, nl, eff, NULL);
        lrgd_probe_free(p);
        if (s_ != LRGD_OK) break;
        int best = -1, li = 0;
        double best_gain = -INFINITY;
        for (int c = 0; c < n; c++) {
            if (forced ? c != forced[n_forced - 1 - step] : taken[c]) continue;
            const double *ev = eff + (size_t)li * E;
            li++;
            double rob = ev[0];
            if (M > 0) {
                double mean = 0, var = 0;
                for (int m = 1; m <= M; m++) mean += ev[m];
                mean /= M;
                for (int m = 1; m <= M; m++) var += (ev[m] - mean) * (ev[m] - mean);
                double sd = M > 1 ? sqrt(var / (M - 1)) : 0;
                rob = mean - o->beta * sd;
            }
            double self = lrgd_store_inner(st, ids[c * E], st, ids[c * E]);
            double gain = rob - lambda * (self + 2 * cross[c]) / w0 - mu * cosum[c];
            if (gain > best_gain || best < 0) {
                best_gain = gain;
                best = c;
            }
        }
        if (best < 0) break;
        obj += best_gain;
        sel[ns++] = best;
        taken[best] = 1;
        /* update the pairwise terms of the open candidates against the new pick */
        if (reg && (lambda > 0 || mu > 0)) {
            double sb = lrgd_store_inner(st, ids[best * E], st, ids[best * E]);
            for (int c = 0; c < n; c++) {
                if (taken[c]) continue;
                if (forced) {
                    int needed = 0;
                    for (int f = 0; f < n_forced; f++) needed |= forced[f] == c;
                    if (!needed) continue;
                }
                double ip = lrgd_store_inner(st, ids[c * E], st, ids[best * E]);
                double sc = lrgd_store_inner(st, ids[c * E], st, ids[c * E]);
                cross[c] += ip;
                cosum[c] += sc > 0 && sb > 0 ? ip / sqrt(sc * sb) : 0;
            }
        }
    }
    if (s_ == LRGD_OK) {
        for (int j = 0; j < ns; j++) chosen[j] = sel[ns - 1 - j];
        *n_chosen = ns;
        if (obj_out) *obj_out = obj;
        if (w0_out) *w0_out = w0;
    }
    free(eff);
    free(cross);
    free(cosum);
    free(sel);
    free(taken);
    free(dt);
    free(dl);
    free(list);
    return s_;
}

static lrgd_status stage1_common(lrgd_effect *e, const lrgd_demo *cand, int n_cand, const int32_t *q, int n_q,
                                 int32_t y, int user, const lrgd_popdist *pop, const lrgd_opt_opts *o,
                                 const int *forced, int *chosen, int *n_chosen, double *obj)
{
    LRGD_TRY(st_check_opts(o));
    int M = st_n_copies(o);
    if (M > 0 && o->perturb.sub_pop > 0 && !pop)
        return lrgd_fail(LRGD_E_INVALID, "stage 1: sub_pop perturbation needs item popularity");
    lrgd_store *st = NULL;
    int *ids = malloc((size_t)(n_cand > 0 ? n_cand : 1) * (M + 1) * sizeof *ids);
    int *qtok = malloc((size_t)(n_q + 1) * sizeof *qtok), nq = 0;
    lrgd_status s_ = ids && qtok ? lrgd_store_new(e, &st) : lrgd_fail(LRGD_E_NOMEM, "stage 1: out of memory");
    if (s_ == LRGD_OK) s_ = lrgd_query_tokens(lrgd_effect_vocab(e), q, n_q, o->max_hist, qtok, &nq);
    if (s_ == LRGD_OK) s_ = st_prepare(e, st, cand, NULL, n_cand, user, pop, o, ids);
    if (s_ == LRGD_OK)
        s_ = st_greedy(e, st, ids, n_cand, qtok, nq, y, o, forced, forced ? n_cand : 0, chosen, n_chosen, obj, NULL);
    lrgd_store_free(st);
    free(ids);
    free(qtok);
    return s_;
}

lrgd_status lrgd_stage1(lrgd_effect *e, const lrgd_demo *cand, int n_cand, const int32_t *q, int n_q, int32_t y,
                        int user, const lrgd_popdist *pop, const lrgd_opt_opts *o, int *chosen, int *n_chosen,
                        double *obj)
{
    *n_chosen = 0;
    if (n_cand < 0 || (n_cand > 0 && !cand)) return lrgd_fail(LRGD_E_INVALID, "stage 1: no candidates");
    if (n_cand == 0) {
        if (obj) *obj = 0;
        return LRGD_OK;
    }
    return stage1_common(e, cand, n_cand, q, n_q, y, user, pop, o, NULL, chosen, n_chosen, obj);
}

lrgd_status lrgd_stage1_objective(lrgd_effect *e, const lrgd_demo *set, int n_set, const int32_t *q, int n_q,
                                  int32_t y, int user, const lrgd_popdist *pop, const lrgd_opt_opts *o, double *obj)
{
    if (n_set <= 0) {
        *obj = 0;
        return LRGD_OK;
    }
    int *order = malloc((size_t)n_set * sizeof *order), *chosen = malloc((size_t)n_set * sizeof *chosen), n = 0;
    if (!order || !chosen) {
        free(order);
        free(chosen);
        return lrgd_fail(LRGD_E_NOMEM, "stage 1: out of memory");
    }
    for (int i = 0; i < n_set; i++) order[i] = i;
    lrgd_status s_ = stage1_common(e, set, n_set, q, n_q, y, user, pop, o, order, chosen, &n, obj);
    free(order);
    free(chosen);
    return s_;
}
