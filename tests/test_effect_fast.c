/* The fast Effect_D scorer (lrgd_effect_score: packed probe, keys and
 * values stored as columns, vector FMAs over an entry's tokens, vectorized
 * exp) against the exact value of the formula of lrgd/effect.h, computed
 * here in double from the same stored keys, values and probe, and against
 * the reference loop ef_score_scaled(eps = 1).
 *
 * Tiny models with large weights (attention scores far from 0, so the
 * softmax split's overflow guard matters), softmax and linear attention,
 * grouped-query and multi-head layouts, odd head sizes; demonstrations of
 * 4..41 tokens; probes with 0..2 demonstrations already in the prompt, the
 * answer-row form and the all-rows form (many query vectors per kv head).
 * Asserts:
 *  - every score is within float rounding of the exact value, with a bound
 *    derived from float32 error propagation, and so is the reference loop;
 *  - the order of the entries by score is the exact order wherever two
 *    entries are further apart than their bounds;
 *  - per_token = effect / len;
 *  - the threaded path (n >= 256) gives the same bits as scoring one entry
 *    at a time;
 *  - bad ids and a probe of another model are refused.
 * The matrix scorer (lrgd_effect_score_matrix: many probes against the same
 * entries, query vectors in vector lanes), with every instruction-set clone
 * this CPU runs, over 1, 3, 7 and all 11 probes of a model (answer-row and
 * all-rows probes mixed: lane counts not a multiple of 16), entries of 1..3
 * tokens added to the store:
 *  - every score within the same float32 bound of the exact value;
 *  - per_token = effect / len;
 *  - a probe's scores are the same bits whatever the other probes of the
 *    call, the order of the ids and the thread count;
 *  - bad arguments (NULL, negative counts, an id outside the store, a probe
 *    of another model) are refused. */
#include "core/kernels.h"
#include "effect/effect_impl.h"
#include "lrgd/effect.h"
#include "test.h"

#include <math.h>

static lrgd_config tiny(lrgd_attn_mode mode, lrgd_rope_type rope, int heads, int kv_heads, int dim, int n_items)
{
    lrgd_config c = {0};
    c.dim = dim;
    c.hidden_dim = dim + 8;
    c.n_layers = 2;
    c.n_heads = heads;
    c.n_kv_heads = kv_heads;
    c.head_dim = dim / heads;
    c.vocab_size = LRGD_N_SPECIAL + n_items;
    c.seq_len = 128;
    c.norm_eps = 1e-5f;
    c.rope_base = 10000.0f;
    c.rope_type = rope;
    c.attn = mode;
    c.tied = 1;
    return c;
}

static void scramble(lrgd_tmodel *t, uint64_t seed, double scale)
{
    lrgd_rng r;
    lrgd_rng_seed(&r, seed, 7);
    for (int i = 0; i < lrgd_tmodel_n_tensors(t); i++) {
        lrgd_tensor_info ti;
        lrgd_tmodel_tensor(t, i, &ti);
        float *w = lrgd_tmodel_params(t) + ti.offset;
        for (size_t j = 0; j < (size_t)ti.rows * ti.cols; j++)
            w[j] = ti.rows == 1 ? (float)(1.0 + 0.3 * lrgd_rng_normal(&r)) : (float)(w[j] * scale);
    }
}

/* Effect_D of entry id in double from the same stored floats (the exact
 * value of the formula on the engine's inputs), and *bound, a first-order
 * bound on what float32 arithmetic may change: every k.q and v.g is a float
 * dot product of hd terms (error <= hd u sum |k_d q_d|, u = 2^-24), s - log Z
 * a float difference, each exp relative 2e-7 (tm_expf), the final sums
 * relative len u; propagated through d acc/d s_i = e_i (t_i - g.o - acc)/den,
 * d acc/d t_i = e_i / den (softmax) or t_i, s_i (linear). */
static double exact_score(const lrgd_store *s, int id, const lrgd_probe *p, double *bound)
{
    const double u = 1.0 / 16777216.0;
    int L = p->L, H = p->H, hd = p->hd, group = p->H / p->KVH, M = p->n_rows, len = lrgd_store_len(s, id);
    double scale = 1.0 / sqrt((double)hd), eff = 0, bnd = 0;
    double *sv = malloc(sizeof(double) * 4 * (size_t)len), *tv = sv + len, *ds = tv + len, *dt = ds + len;
    float k[256], v[256];
    for (int l = 0; l < L; l++)
        for (int r = 0; r < M; r++)
            for (int h = 0; h < H; h++) {
                size_t qi = ((size_t)l * M + r) * H + h;
                const float *q = p->q + qi * hd, *g = p->g + qi * hd;
                for (int i = 0; i < len; i++) {
                    ef_store_kv(s, id, l, 0, h / group, i, k);
                    ef_store_kv(s, id, l, 1, h / group, i, v);
                    double a = 0, aa = 0, b = 0, bb = 0;
                    for (int d = 0; d < hd; d++) {
                        a += (double)k[d] * q[d];
                        aa += fabs((double)k[d] * q[d]);
                        b += (double)v[d] * g[d];
                        bb += fabs((double)v[d] * g[d]);
                    }
                    sv[i] = a * scale;
                    ds[i] = (hd + 2) * u * aa * scale;
                    tv[i] = b;
                    dt[i] = (hd + 1) * u * bb;
                }
                double acc = 0, b = 0;
                if (p->attn == LRGD_ATTN_LINEAR) {
                    double mag = 0;
                    for (int i = 0; i < len; i++) {
                        acc += sv[i] * tv[i];
                        b += fabs(tv[i]) * ds[i] + fabs(sv[i]) * dt[i];
                        mag += fabs(sv[i] * tv[i]);
                    }
                    b += (len + 2) * u * mag;
                } else {
                    double lse = p->lse[qi], go = p->go[qi], mx = 0, num = 0, den = 0, mag = 0;
                    for (int i = 0; i < len; i++) mx = fmax(mx, sv[i] - lse);
                    for (int i = 0; i < len; i++) {
                        double e = exp(sv[i] - lse - mx);
                        num += e * (tv[i] - go);
                        den += e;
                    }
                    den += exp(-mx);
                    acc = num / den;
                    for (int i = 0; i < len; i++) {
                        double e = exp(sv[i] - lse - mx) / den, x = sv[i] - lse;
                        b += fabs(e * (tv[i] - go - acc)) * (ds[i] + 2 * u * (fabs(x) + fabs(lse)) + 4e-7);
                        b += e * (dt[i] + u * fabs(go));
                        mag += e * (fabs(tv[i] - go) + fabs(acc));
                    }
                    b += (len + 4) * u * mag;
                }
                eff -= acc;
                bnd += b;
            }
    free(sv);
    *bound = bnd;
    return eff;
}

/* Compare fast, reference and exact scores of every entry of s against p. */
static void compare(const lrgd_store *s, const lrgd_probe *p, const char *name, double *worst)
{
    int n = lrgd_store_n(s);
    int *ids = malloc((size_t)n * sizeof *ids);
    double *fast = malloc((size_t)n * sizeof *fast), *pt = malloc((size_t)n * sizeof *pt),
           *ex = malloc((size_t)n * sizeof *ex), *tol = malloc((size_t)n * sizeof *tol),
           *one = malloc((size_t)n * sizeof *one);
    for (int i = 0; i < n; i++) ids[i] = (i * 7) % n; /* any order, repeats allowed */
    CHECK_OK(lrgd_effect_score(s, p, ids, n, fast, pt));
    int bad = 0, bad_ref = 0, order_bad = 0;
    for (int i = 0; i < n; i++) {
        double bound;
        ex[i] = exact_score(s, ids[i], p, &bound);
        tol[i] = 2 * bound + 1e-12 * fmax(1, fabs(ex[i]));
        double err = fabs(fast[i] - ex[i]), ref = ef_score_scaled(s, ids[i], p, 1.0);
        *worst = fmax(*worst, err / tol[i]);
        if (err > tol[i] && bad++ < 3)
            CHECK_MSG(0, "%s: entry %d (len %d): fast %.9g, exact %.9g, float bound %.3g", name, ids[i],
                      lrgd_store_len(s, ids[i]), fast[i], ex[i], tol[i]);
        /* the reference loop is within the same bound (the bound is not too tight) */
        if (fabs(ref - ex[i]) > tol[i] && bad_ref++ < 3)
            CHECK_MSG(0, "%s: entry %d: reference %.9g, exact %.9g, float bound %.3g", name, ids[i], ref, ex[i],
                      tol[i]);
        CHECK_MSG(pt[i] == fast[i] / lrgd_store_len(s, ids[i]), "%s: per-token form of entry %d", name, ids[i]);
    }
    /* rankings: the same wherever float rounding cannot swap two entries */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            double gap = ex[i] - ex[j];
            if (fabs(gap) > tol[i] + tol[j] && (fast[i] - fast[j]) * gap <= 0 && order_bad++ < 3)
                CHECK_MSG(0, "%s: entries %d and %d change order (exact %.9g, %.9g)", name, ids[i], ids[j], ex[i],
                          ex[j]);
        }
    /* one at a time: the same bits as the batch (threaded when n >= 256) */
    for (int i = 0; i < n; i++) CHECK_OK(lrgd_effect_score(s, p, &ids[i], 1, &one[i], NULL));
    int same = 1;
    for (int i = 0; i < n; i++) same &= one[i] == fast[i];
    CHECK_MSG(same, "%s: scores differ between a batch of %d and one at a time", name, n);
    free(ids);
    free(fast);
    free(pt);
    free(ex);
    free(tol);
    free(one);
}

/* The matrix scorer against the exact value, for probes ps[0..np) over every
 * entry of s, with clone isa; returns 0 when the clone is not available. */
static int compare_matrix(const lrgd_store *s, const lrgd_probe *const *ps, int np, int isa, const char *name,
                          double *worst)
{
    int n = lrgd_store_n(s);
    int *ids = malloc((size_t)n * sizeof *ids);
    double *eff = malloc((size_t)np * n * sizeof *eff), *pt = malloc((size_t)np * n * sizeof *pt);
    for (int i = 0; i < n; i++) ids[i] = (int)(((long long)i * 11 + 3) % n); /* any order */
    lrgd_status st = ef_score_matrix_isa(s, ps, np, ids, n, eff, pt, isa);
    if (st == LRGD_E_UNSUPPORTED) {
        lrgd_clear_error();
        free(ids);
        free(eff);
        free(pt);
        return 0;
    }
    CHECK_OK(st);
    int bad = 0;
    for (int u = 0; u < np && st == LRGD_OK; u++)
        for (int i = 0; i < n; i++) {
            double bound, ex = exact_score(s, ids[i], ps[u], &bound);
            double tol = 2 * bound + 1e-12 * fmax(1, fabs(ex)), v = eff[(size_t)u * n + i];
            double err = fabs(v - ex);
            *worst = fmax(*worst, err / tol);
            if (!(err <= tol) && bad++ < 3)
                CHECK_MSG(0, "%s isa %d: probe %d of %d, entry %d (len %d): matrix %.9g, exact %.9g, float bound %.3g",
                          name, isa, u, np, ids[i], lrgd_store_len(s, ids[i]), v, ex, tol);
            CHECK_MSG(pt[(size_t)u * n + i] == v / lrgd_store_len(s, ids[i]), "%s isa %d: per-token form", name, isa);
        }
    /* each probe alone, ids reversed: the same bits; one thread: the same bits */
    double *one = malloc((size_t)n * sizeof *one);
    int *rev = malloc((size_t)n * sizeof *rev), same = 1;
    for (int i = 0; i < n; i++) rev[i] = ids[n - 1 - i];
    for (int u = 0; u < np; u++) {
        CHECK_OK(ef_score_matrix_isa(s, &ps[u], 1, rev, n, one, NULL, isa));
        for (int i = 0; i < n; i++) same &= one[n - 1 - i] == eff[(size_t)u * n + i];
    }
    CHECK_MSG(same, "%s isa %d: a probe's scores depend on the other probes of the call or the order", name, isa);
    int th = lrgd_get_threads();
    lrgd_set_threads(th > 1 ? 1 : 2);
    double *eff2 = malloc((size_t)np * n * sizeof *eff2);
    CHECK_OK(ef_score_matrix_isa(s, ps, np, ids, n, eff2, NULL, isa));
    lrgd_set_threads(th);
    same = 1;
    for (size_t i = 0; i < (size_t)np * n; i++) same &= eff2[i] == eff[i];
    CHECK_MSG(same, "%s isa %d: the thread count changes the scores", name, isa);
    free(eff2);
    free(one);
    free(rev);
    free(ids);
    free(eff);
    free(pt);
    return 1;
}

static void check_config(lrgd_attn_mode mode, lrgd_rope_type rope, int heads, int kv_heads, int dim, double wscale,
                         const char *name)
{
    const int n_items = 40;
    lrgd_config c = tiny(mode, rope, heads, kv_heads, dim, n_items);
    lrgd_tmodel *t = NULL;
    CHECK_OK(lrgd_tmodel_new(&c, 3, &t));
    if (!t) return;
    scramble(t, 9, wscale);
    lrgd_effect *e = NULL;
    lrgd_store *s = NULL;
    CHECK_OK(lrgd_effect_new(lrgd_tmodel_model(t), &e));
    if (e) CHECK_OK(lrgd_store_new(e, &s));
    if (!e || !s) return;
    const lrgd_prompt_vocab *v = lrgd_effect_vocab(e);

    /* 300 demonstrations (> 256: the threaded path) of 1..38 history items */
    lrgd_rng r;
    lrgd_rng_seed(&r, 17, 1);
    for (int d = 0; d < 300; d++) {
        int32_t h[40];
        int nh = 1 + (int)lrgd_rng_below(&r, d % 7 == 0 ? 38 : 12), tok[48], nt;
        for (int i = 0; i < nh; i++) h[i] = (int32_t)lrgd_rng_below(&r, n_items);
        lrgd_demo dm = {h, nh, (int32_t)lrgd_rng_below(&r, n_items)};
        CHECK_OK(lrgd_demo_tokens(v, &dm, 0, tok, &nt));
        CHECK_OK(lrgd_store_add(s, tok, nt, NULL, NULL));
    }
    double worst = 0;
    lrgd_probe *kept[16];
    int n_kept = 0;
    for (int u = 0; u < 4; u++) {
        int32_t qh[20];
        int nqh = 2 + (int)lrgd_rng_below(&r, 15), qtok[24], nq;
        for (int i = 0; i < nqh; i++) qh[i] = (int32_t)lrgd_rng_below(&r, n_items);
        CHECK_OK(lrgd_query_tokens(v, qh, nqh, 0, qtok, &nq));
        int nd = u % 3; /* demonstrations already in the prompt */
        const int *dt[2] = {lrgd_store_tokens(s, 5 + u), lrgd_store_tokens(s, 11 + u)};
        int dl[2] = {lrgd_store_len(s, 5 + u), lrgd_store_len(s, 11 + u)};
        int32_t y = (int32_t)lrgd_rng_below(&r, n_items);
        for (int all = 0; all < 2; all++) {
            lrgd_probe *p = NULL;
            CHECK_OK(lrgd_probe_run_ex(e, dt, dl, nd, qtok, nq, y, all ? LRGD_PROBE_ALL_ROWS : 0, &p));
            if (!p) continue;
            char nm[128];
            snprintf(nm, sizeof nm, "%s user %d%s", name, u, all ? " all rows" : "");
            compare(s, p, nm, &worst);
            kept[n_kept++] = p;
        }
    }
    printf("%s: worst |fast - exact| / float bound %.3g\n", name, worst);

    /* the matrix scorer: entries of 1..3 tokens too, and 3 more answer-row probes (11 in all) */
    for (int len = 1; len <= 3; len++) {
        int tk[3] = {v->n_special + 1, v->n_special + 2, v->n_special + 3};
        CHECK_OK(lrgd_store_add(s, tk, len, NULL, NULL));
    }
    for (int u = 0; u < 3; u++) {
        int32_t qh[6] = {(int32_t)u, 4, 9, (int32_t)(u + 20), 7, 1};
        int qtok[12], nq;
        CHECK_OK(lrgd_query_tokens(v, qh, 3 + u, 0, qtok, &nq));
        lrgd_probe *p = NULL;
        CHECK_OK(lrgd_probe_run(e, NULL, NULL, 0, qtok, nq, (int32_t)(5 + u), &p));
        if (p) kept[n_kept++] = p;
    }
    double mworst = 0;
    int sizes[4] = {1, 3, 7, n_kept}, ran = 0;
    for (int isa = 0; isa < LRGD_ISA_COUNT; isa++) {
        int any = 0;
        for (int k = 0; k < 4; k++)
            if (sizes[k] <= n_kept) any |= compare_matrix(s, (const lrgd_probe *const *)kept + (n_kept - sizes[k]),
                                                          sizes[k], isa, name, &mworst);
        ran += any;
    }
    CHECK_MSG(ran >= 1, "%s: no matrix clone ran", name);
    printf("%s: matrix scorer, %d clone(s): worst |matrix - exact| / float bound %.3g\n", name, ran, mworst);
    /* the matrix against lrgd_effect_score: the same Effect_D up to float rounding */
    {
        int n = lrgd_store_n(s), bad = 0;
        int *ids = malloc((size_t)n * sizeof *ids);
        double *mx = malloc((size_t)n_kept * n * sizeof *mx), *one = malloc((size_t)n * sizeof *one);
        for (int i = 0; i < n; i++) ids[i] = i;
        CHECK_OK(lrgd_effect_score_matrix(s, (const lrgd_probe *const *)kept, n_kept, ids, n, mx, NULL));
        for (int u = 0; u < n_kept; u++) {
            CHECK_OK(lrgd_effect_score(s, kept[u], ids, n, one, NULL));
            for (int i = 0; i < n; i++) {
                double bound, ex = exact_score(s, i, kept[u], &bound), tol = 4 * bound + 1e-12 * fmax(1, fabs(ex));
                if (!(fabs(mx[(size_t)u * n + i] - one[i]) <= tol) && bad++ < 3)
                    CHECK_MSG(0, "%s: probe %d entry %d: matrix %.9g, lrgd_effect_score %.9g", name, u, i,
                              mx[(size_t)u * n + i], one[i]);
            }
        }
        free(ids);
        free(mx);
        free(one);
    }

    /* refusals */
    lrgd_probe *p = NULL;
    int32_t qh[2] = {1, 2};
    int qtok[4], nq;
    CHECK_OK(lrgd_query_tokens(v, qh, 2, 0, qtok, &nq));
    CHECK_OK(lrgd_probe_run(e, NULL, NULL, 0, qtok, nq, 3, &p));
    if (p) {
        int bad_id = lrgd_store_n(s);
        double x;
        CHECK(lrgd_effect_score(s, p, &bad_id, 1, &x, NULL) == LRGD_E_INVALID);
        bad_id = -1;
        CHECK(lrgd_effect_score(s, p, &bad_id, 1, &x, NULL) == LRGD_E_INVALID);
        /* a probe from a model with another head layout */
        lrgd_config c2 = tiny(mode, rope, heads, kv_heads, 2 * dim, n_items);
        lrgd_tmodel *t2 = NULL;
        lrgd_effect *e2 = NULL;
        lrgd_probe *p2 = NULL;
        CHECK_OK(lrgd_tmodel_new(&c2, 3, &t2));
        if (t2) CHECK_OK(lrgd_effect_new(lrgd_tmodel_model(t2), &e2));
        if (e2) CHECK_OK(lrgd_probe_run(e2, NULL, NULL, 0, qtok, nq, 3, &p2));
        if (p2) {
            int id0 = 0;
            CHECK(lrgd_effect_score(s, p2, &id0, 1, &x, NULL) == LRGD_E_INVALID);
        }
        /* the matrix: bad arguments */
        const lrgd_probe *pp[2] = {p, p2 ? p2 : p}, *pnull[2] = {p, NULL};
        int ok_ids[2] = {0, 1};
        double xs[4];
        bad_id = lrgd_store_n(s);
        CHECK(lrgd_effect_score_matrix(s, pp, 1, &bad_id, 1, xs, NULL) == LRGD_E_INVALID);
        bad_id = -1;
        CHECK(lrgd_effect_score_matrix(s, pp, 1, &bad_id, 1, xs, NULL) == LRGD_E_INVALID);
        if (p2) CHECK(lrgd_effect_score_matrix(s, pp, 2, ok_ids, 2, xs, NULL) == LRGD_E_INVALID);
        CHECK(lrgd_effect_score_matrix(s, pnull, 2, ok_ids, 2, xs, NULL) == LRGD_E_INVALID);
        CHECK(lrgd_effect_score_matrix(s, NULL, 1, ok_ids, 2, xs, NULL) == LRGD_E_INVALID);
        CHECK(lrgd_effect_score_matrix(s, pp, 1, NULL, 2, xs, NULL) == LRGD_E_INVALID);
        CHECK(lrgd_effect_score_matrix(s, pp, 1, ok_ids, 2, NULL, NULL) == LRGD_E_INVALID);
        CHECK(lrgd_effect_score_matrix(NULL, pp, 1, ok_ids, 2, xs, NULL) == LRGD_E_INVALID);
        CHECK(lrgd_effect_score_matrix(s, pp, -1, ok_ids, 2, xs, NULL) == LRGD_E_INVALID);
        CHECK(lrgd_effect_score_matrix(s, pp, 1, ok_ids, -2, xs, NULL) == LRGD_E_INVALID);
        CHECK_OK(lrgd_effect_score_matrix(s, pp, 0, ok_ids, 2, xs, NULL)); /* nothing to score */
        CHECK_OK(lrgd_effect_score_matrix(s, pp, 1, ok_ids, 0, xs, NULL));
        lrgd_clear_error();
        lrgd_probe_free(p2);
        lrgd_effect_free(e2);
        lrgd_tmodel_free(t2);
    }
    lrgd_probe_free(p);
    for (int i = 0; i < n_kept; i++) lrgd_probe_free(kept[i]);
    lrgd_store_free(s);
    lrgd_effect_free(e);
    lrgd_tmodel_free(t);
}

int main(void)
{
    check_config(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NORM, 4, 2, 32, 25.0, "softmax/norm/gqa");
    if (t_full()) { /* valgrind: one configuration per attention kind */
        check_config(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NEOX, 4, 4, 32, 60.0, "softmax/neox/mha large scores");
        check_config(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NORM, 2, 1, 20, 1.0, "softmax/norm/gqa hd 10 trainer scale");
        check_config(LRGD_ATTN_LINEAR, LRGD_ROPE_NEOX, 2, 1, 32, 25.0, "linear/neox/gqa");
    }
    check_config(LRGD_ATTN_LINEAR, LRGD_ROPE_NORM, 4, 4, 24, 5.0, "linear/norm/mha hd 6");
    return t_finish("test_effect_fast");
}
