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
 *  - bad ids and a probe of another model are refused. */
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
            lrgd_probe_free(p);
        }
    }
    printf("%s: worst |fast - exact| / float bound %.3g\n", name, worst);

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
        lrgd_probe_free(p2);
        lrgd_effect_free(e2);
        lrgd_tmodel_free(t2);
    }
    lrgd_probe_free(p);
    lrgd_store_free(s);
    lrgd_effect_free(e);
    lrgd_tmodel_free(t);
}

int main(void)
{
    check_config(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NORM, 4, 2, 32, 25.0, "softmax/norm/gqa");
    check_config(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NEOX, 4, 4, 32, 60.0, "softmax/neox/mha large scores");
    check_config(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NORM, 2, 1, 20, 1.0, "softmax/norm/gqa hd 10 trainer scale");
    check_config(LRGD_ATTN_LINEAR, LRGD_ROPE_NEOX, 2, 1, 32, 25.0, "linear/neox/gqa");
    check_config(LRGD_ATTN_LINEAR, LRGD_ROPE_NORM, 4, 4, 24, 5.0, "linear/norm/mha hd 6");
    return t_finish("test_effect_fast");
}
