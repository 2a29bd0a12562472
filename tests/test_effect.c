/* Effect_D against independent references.
 *
 * A double-precision forward pass of the training model, written here from
 * the maths (no code shared with src/), can add a vector to the attention
 * output of the answer row at any layer, and can let "virtual" keys/values
 * (a demonstration's, at the RoPE distance it would have) enter the answer
 * row's attention at every layer with weight eps. With it:
 *  - g^l = dl/do_t^l from the probe's answer-row backward equals central
 *    finite differences, per layer and head;
 *  - the probe's input-embedding gradient of the answer row equals the
 *    training backward (lrgd_tmodel_grad, a whole-sequence implementation);
 *  - Effect_D is the exact first-order change: d logp/d eps at eps = 0 of
 *    the eps-weighted demonstration equals the engine's Effect_D, so the
 *    ratio dlogP/Effect_D -> 1 as eps -> 0 (linear and softmax, both RoPE
 *    layouts, grouped-query heads); the same for the all-rows form, with the
 *    demonstration entering every row after T, whose input gradients also
 *    equal the training backward's row by row;
 *  - the product forms (|dW|^2, <dW_a, dW_b>, |W_0|^2) equal explicit
 *    head_dim x head_dim matrices;
 *  - Spearman's rho equals the closed form without ties and a hand-computed
 *    value with ties. */
#include "effect/effect_impl.h"
#include "lrgd/effect.h"
#include "test.h"

#include <math.h>

/* ---- the reference --------------------------------------------------------- */

typedef struct ref {
    const lrgd_config *c;
    double *P;       /* parameters in double */
    size_t off[64];  /* tensor offsets */
    int n_items;
} ref;

static const double *T_(const ref *r, int i) { return r->P + r->off[i]; }

static void r_rmsnorm(double *o, const double *x, const double *w, int d, double eps)
{
    double ss = 0;
    for (int j = 0; j < d; j++) ss += x[j] * x[j];
    double s = 1.0 / sqrt(ss / d + eps);
    for (int j = 0; j < d; j++) o[j] = x[j] * s * w[j];
}

static void r_matvec(double *y, const double *W, const double *x, int rows, int cols)
{
    for (int i = 0; i < rows; i++) {
        double s = 0;
        for (int j = 0; j < cols; j++) s += W[(size_t)i * cols + j] * x[j];
        y[i] = s;
    }
}

/* rotate each head of x by angle pos * base^(-2j/hd) on pair j */
static void r_rope(double *x, int nh, int hd, double pos, double base, lrgd_rope_type type)
{
    for (int h = 0; h < nh; h++)
        for (int j = 0; j < hd / 2; j++) {
            double th = pos * pow(base, -2.0 * j / hd);
            int a = type == LRGD_ROPE_NEOX ? j : 2 * j, b = type == LRGD_ROPE_NEOX ? j + hd / 2 : 2 * j + 1;
            double x0 = x[h * hd + a], x1 = x[h * hd + b];
            x[h * hd + a] = x0 * cos(th) - x1 * sin(th);
            x[h * hd + b] = x0 * sin(th) + x1 * cos(th);
        }
}

typedef struct ref_in {
    int delta_layer;      /* add delta to o_t at this layer (-1: none) */
    const double *delta;
    int n_virt;           /* virtual keys/values in the answer row's attention */
    double **vk, **vv;    /* [L] -> [n_virt][KVd], keys already rotated */
    double eps;
    double *cap_k, *cap_v; /* NULL, or [L][n][KVd]: un-rotated keys and the values of every row */
    int virt_all;          /* 1: the virtual keys enter every row after BOS, not only the answer row */
} ref_in;

/* log p(y | tok) at the last row, softmax over the item tokens */
static double ref_logp(const ref *r, const int *tok, int n, int y, const ref_in *in)
{
    const lrgd_config *c = r->c;
    int D = c->dim, H = c->n_heads, KVH = c->n_kv_heads, hd = c->head_dim, F = c->hidden_dim, L = c->n_layers;
    int Qd = H * hd, KVd = KVH * hd, t = n - 1;
    double *x = calloc((size_t)n * D, sizeof(double)), *xn = calloc((size_t)D, sizeof(double)),
           *q = calloc((size_t)n * Qd, sizeof(double)), *k = calloc((size_t)n * KVd, sizeof(double)),
           *v = calloc((size_t)n * KVd, sizeof(double)), *o = calloc((size_t)n * Qd, sizeof(double)),
           *tmp = calloc((size_t)(D + F), sizeof(double)), *g = calloc((size_t)F, sizeof(double)),
           *u = calloc((size_t)F, sizeof(double)), *sc = calloc((size_t)(n + 64), sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < D; j++) x[i * D + j] = T_(r, 0)[(size_t)tok[i] * D + j];
    for (int l = 0; l < L; l++) {
        int b = 1 + 9 * l;
        for (int i = 0; i < n; i++) {
            r_rmsnorm(xn, x + i * D, T_(r, b + 0), D, c->norm_eps);
            r_matvec(q + i * Qd, T_(r, b + 1), xn, Qd, D);
            r_matvec(k + i * KVd, T_(r, b + 2), xn, KVd, D);
            r_matvec(v + i * KVd, T_(r, b + 3), xn, KVd, D);
            if (in && in->cap_k) {
                memcpy(in->cap_k + ((size_t)l * n + i) * KVd, k + i * KVd, (size_t)KVd * sizeof(double));
                memcpy(in->cap_v + ((size_t)l * n + i) * KVd, v + i * KVd, (size_t)KVd * sizeof(double));
            }
            r_rope(q + i * Qd, H, hd, i, c->rope_base, c->rope_type);
            r_rope(k + i * KVd, KVH, hd, i, c->rope_base, c->rope_type);
        }
        for (int h = 0; h < H; h++) {
            int kh = h / (H / KVH);
            for (int i = 0; i < n; i++) {
                int nv = (in && (i == t || (in->virt_all && i >= 1))) ? in->n_virt : 0;
                double mx = -1e300;
                for (int j = 0; j <= i + nv; j++) {
                    const double *kj = j <= i ? k + j * KVd + kh * hd : in->vk[l] + (j - i - 1) * KVd + kh * hd;
                    double s = 0;
                    for (int e = 0; e < hd; e++) s += q[i * Qd + h * hd + e] * kj[e];
                    sc[j] = s / sqrt((double)hd);
                    if (sc[j] > mx) mx = sc[j];
                }
                if (c->attn == LRGD_ATTN_SOFTMAX) {
                    double z = 0;
                    for (int j = 0; j <= i + nv; j++) {
                        sc[j] = exp(sc[j] - mx) * (j > i ? in->eps : 1.0);
                        z += sc[j];
                    }
                    for (int j = 0; j <= i + nv; j++) sc[j] /= z;
                } else
                    for (int j = i + 1; j <= i + nv; j++) sc[j] *= in->eps;
                for (int e = 0; e < hd; e++) {
                    double a = 0;
                    for (int j = 0; j <= i + nv; j++) {
                        const double *vj = j <= i ? v + j * KVd + kh * hd : in->vv[l] + (j - i - 1) * KVd + kh * hd;
                        a += sc[j] * vj[e];
                    }
                    o[i * Qd + h * hd + e] = a;
                }
            }
        }
        if (in && in->delta_layer == l)
            for (int e = 0; e < Qd; e++) o[t * Qd + e] += in->delta[e];
        for (int i = 0; i < n; i++) {
            r_matvec(tmp, T_(r, b + 4), o + i * Qd, D, Qd);
            for (int j = 0; j < D; j++) x[i * D + j] += tmp[j];
            r_rmsnorm(xn, x + i * D, T_(r, b + 5), D, c->norm_eps);
            r_matvec(g, T_(r, b + 6), xn, F, D);
            r_matvec(u, T_(r, b + 8), xn, F, D);
            for (int j = 0; j < F; j++) g[j] = g[j] / (1 + exp(-g[j])) * u[j];
            r_matvec(tmp, T_(r, b + 7), g, D, F);
            for (int j = 0; j < D; j++) x[i * D + j] += tmp[j];
        }
    }
    r_rmsnorm(xn, x + t * D, T_(r, 1 + 9 * L), D, c->norm_eps);
    double mx = -1e300, z = 0, ly = 0;
    for (int it = 0; it < r->n_items; it++) {
        double d = 0;
        for (int j = 0; j < D; j++) d += T_(r, 0)[(size_t)(LRGD_N_SPECIAL + it) * D + j] * xn[j];
        sc[0] = d;
        if (it == y) ly = d;
        if (d > mx) mx = d;
    }
    for (int it = 0; it < r->n_items; it++) {
        double d = 0;
        for (int j = 0; j < D; j++) d += T_(r, 0)[(size_t)(LRGD_N_SPECIAL + it) * D + j] * xn[j];
        z += exp(d - mx);
    }
    free(x); free(xn); free(q); free(k); free(v); free(o); free(tmp); free(g); free(u); free(sc);
    return ly - mx - log(z);
}

/* ---- models --------------------------------------------------------------- */

static lrgd_config tiny(lrgd_attn_mode mode, lrgd_rope_type rope, int heads, int kv_heads, int n_items)
{
    lrgd_config c = {0};
    c.dim = 16;
    c.hidden_dim = 24;
    c.n_layers = 2;
    c.n_heads = heads;
    c.n_kv_heads = kv_heads;
    c.head_dim = 16 / heads;
    c.vocab_size = LRGD_N_SPECIAL + n_items;
    c.seq_len = 64;
    c.norm_eps = 1e-5f;
    c.rope_base = 10000.0f;
    c.rope_type = rope;
    c.attn = mode;
    c.tied = 1;
    return c;
}

/* Larger weights than the trainer's 0.02 so every path matters; norms off 1. */
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

static void ref_init(ref *r, lrgd_tmodel *t)
{
    r->c = lrgd_tmodel_config(t);
    r->n_items = lrgd_tmodel_n_items(t);
    size_t n = lrgd_tmodel_n_params(t);
    r->P = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) r->P[i] = lrgd_tmodel_params(t)[i];
    for (int i = 0; i < lrgd_tmodel_n_tensors(t); i++) {
        lrgd_tensor_info ti;
        lrgd_tmodel_tensor(t, i, &ti);
        r->off[i] = ti.offset;
    }
}

/* ---- the checks ---------------------------------------------------------- */

static void check_config(lrgd_attn_mode mode, lrgd_rope_type rope, int heads, int kv_heads, const char *name)
{
    const int n_items = 23;
    lrgd_config c = tiny(mode, rope, heads, kv_heads, n_items);
    lrgd_tmodel *t = NULL;
    CHECK_OK(lrgd_tmodel_new(&c, 11, &t));
    if (!t) return;
    scramble(t, 5, 25.0);
    ref r;
    ref_init(&r, t);
    lrgd_effect *e = NULL;
    CHECK_OK(lrgd_effect_new(lrgd_tmodel_model(t), &e));
    if (!e) return;
    const lrgd_prompt_vocab *v = lrgd_effect_vocab(e);

    /* query [BOS | 3 7 12 5 ANS] -> 9; demonstration 4 8 2 ANS 6 SEP */
    int32_t qh[] = {3, 7, 12, 5}, dh[] = {4, 8, 2};
    int qtok[8], nq, dtok[8], nd;
    lrgd_demo dm = {dh, 3, 6};
    CHECK_OK(lrgd_query_tokens(v, qh, 4, 0, qtok, &nq));
    CHECK_OK(lrgd_demo_tokens(v, &dm, 0, dtok, &nd));
    int32_t y = 9;
    int full[16];
    full[0] = v->bos;
    memcpy(full + 1, qtok, (size_t)nq * sizeof(int));
    int n = 1 + nq, t_row = n - 1;

    lrgd_probe *p = NULL;
    CHECK_OK(lrgd_probe_run(e, NULL, NULL, 0, qtok, nq, y, &p));
    if (!p) return;
    double lp_ref = ref_logp(&r, full, n, y, NULL);
    CHECK_MSG(fabs(lrgd_probe_logp(p) - lp_ref) < 2e-4 * fmax(1, fabs(lp_ref)), "%s: logp %.7f vs reference %.7f",
              name, lrgd_probe_logp(p), lp_ref);

    /* g^l per head against central differences of the reference */
    int H = c.n_heads, hd = c.head_dim, Qd = H * hd;
    double worst_g = 0;
    for (int l = 0; l < c.n_layers; l++)
        for (int h = 0; h < H; h++) {
            double delta[64] = {0};
            lrgd_rng rg;
            lrgd_rng_seed(&rg, 3, (uint64_t)(l * 16 + h));
            for (int d = 0; d < hd; d++) delta[h * hd + d] = lrgd_rng_normal(&rg);
            double step = 1e-4;
            double dp[64], dm2[64];
            for (int d = 0; d < Qd; d++) { dp[d] = step * delta[d]; dm2[d] = -step * delta[d]; }
            ref_in a = {l, dp, 0, NULL, NULL, 0, NULL, NULL, 0}, b = {l, dm2, 0, NULL, NULL, 0, NULL, NULL, 0};
            double fd = -(ref_logp(&r, full, n, y, &a) - ref_logp(&r, full, n, y, &b)) / (2 * step); /* dl = -dlogp */
            const float *g = lrgd_probe_grad(p, l, h);
            double an = 0, gn = 0;
            for (int d = 0; d < hd; d++) { an += g[d] * delta[h * hd + d]; gn += fabs(g[d]); }
            double err = fabs(an - fd) / fmax(fmax(fabs(fd), 1e-3 * gn), 1e-8);
            if (err > worst_g) worst_g = err;
        }
    CHECK_MSG(worst_g < 2e-3, "%s: g = dl/do_t vs finite differences, worst relative error %.3g", name, worst_g);
    printf("%s: g vs finite differences: worst relative error %.2e\n", name, worst_g);

    /* input-embedding gradient of the answer row vs the training backward */
    {
        int tg[16];
        for (int i = 0; i < n; i++) tg[i] = -1;
        tg[t_row] = LRGD_N_SPECIAL + y;
        int off[2] = {0, n};
        lrgd_tbatch bt = {1, off, full, NULL, tg};
        float *de = calloc((size_t)n * c.dim, sizeof(float));
        double loss;
        lrgd_tmodel_zero_grad(t);
        CHECK_OK(lrgd_tmodel_grad(t, &bt, 0, &loss, de));
        CHECK_NEAR(loss, -lp_ref, 2e-4 * fmax(1, fabs(lp_ref)));
        const float *pe = lrgd_probe_embd_grad(p), *te = de + (size_t)t_row * c.dim;
        double num = 0, den = 0;
        for (int j = 0; j < c.dim; j++) { num += (pe[j] - te[j]) * (pe[j] - te[j]); den += te[j] * te[j]; }
        CHECK_MSG(sqrt(num / fmax(den, 1e-30)) < 1e-4, "%s: answer-row embedding gradient differs from the training "
                  "backward: relative %.3g", name, sqrt(num / fmax(den, 1e-30)));
        free(de);
    }

    /* first order: the demonstration's keys/values enter the answer row with weight eps */
    lrgd_store *s = NULL;
    CHECK_OK(lrgd_store_new(e, &s));
    int id = -1;
    CHECK_OK(lrgd_store_add(s, dtok, nd, NULL, &id));
    {
        int L = c.n_layers, KVd = c.n_kv_heads * hd, nde = 1 + nd;
        int dfull[16];
        dfull[0] = v->bos;
        memcpy(dfull + 1, dtok, (size_t)nd * sizeof(int));
        double *ck = calloc((size_t)L * nde * KVd, sizeof(double)), *cv = calloc((size_t)L * nde * KVd, sizeof(double));
        ref_in cap = {-1, NULL, 0, NULL, NULL, 0, ck, cv, 0};
        ref_logp(&r, dfull, nde, 0, &cap);
        double *vk[8], *vv[8];
        for (int l = 0; l < L; l++) {
            vk[l] = calloc((size_t)nd * KVd, sizeof(double));
            vv[l] = calloc((size_t)nd * KVd, sizeof(double));
            for (int j = 0; j < nd; j++) {
                memcpy(vk[l] + j * KVd, ck + ((size_t)l * nde + 1 + j) * KVd, (size_t)KVd * sizeof(double));
                memcpy(vv[l] + j * KVd, cv + ((size_t)l * nde + 1 + j) * KVd, (size_t)KVd * sizeof(double));
                /* in [T | d | Q] token j sits at 1 + j and the answer at t + nd: with the answer
                 * kept at t here, the key goes to 1 + j - nd */
                r_rope(vk[l] + j * KVd, c.n_kv_heads, hd, 1 + j - nd, c.rope_base, c.rope_type);
            }
        }
        double err_prev = 1e300, ratio_small = 0;
        const double eps_list[] = {1e-2, 1e-3, 1e-4};
        for (int k = 0; k < 3; k++) {
            double eps = eps_list[k];
            ref_in a = {-1, NULL, nd, vk, vv, eps, NULL, NULL, 0};
            double dlogp = ref_logp(&r, full, n, y, &a) - lp_ref;
            double eff = ef_score_scaled(s, id, p, eps);
            double ratio = dlogp / eff;
            printf("%s: eps %.0e  dlogP %.6e  Effect %.6e  ratio %.6f\n", name, eps, dlogp, eff, ratio);
            double err = fabs(ratio - 1);
            if (k < 2) CHECK_MSG(err < err_prev || err < 1e-3, "%s: ratio error does not shrink with eps", name);
            err_prev = err;
            ratio_small = ratio;
        }
        CHECK_MSG(fabs(ratio_small - 1) < 5e-3, "%s: dlogP/Effect_D = %.6f at eps 1e-4 (expected -> 1)", name,
                  ratio_small);
        /* all rows after T: the reference lets the demonstration into every row */
        {
            lrgd_probe *pa = NULL;
            CHECK_OK(lrgd_probe_run_ex(e, NULL, NULL, 0, qtok, nq, y, LRGD_PROBE_ALL_ROWS, &pa));
            if (pa) {
                CHECK_NEAR(lrgd_probe_logp(pa), lrgd_probe_logp(p), 1e-9);
                /* the kept rows' input gradients equal the training backward's, row by row */
                int tg[16], off[2] = {0, n};
                for (int i = 0; i < n; i++) tg[i] = -1;
                tg[t_row] = LRGD_N_SPECIAL + y;
                lrgd_tbatch bt = {1, off, full, NULL, tg};
                float *de = calloc((size_t)n * c.dim, sizeof(float));
                double loss;
                lrgd_tmodel_zero_grad(t);
                CHECK_OK(lrgd_tmodel_grad(t, &bt, 0, &loss, de));
                double num = 0, den = 0;
                for (int i = 1; i < n; i++)
                    for (int j = 0; j < c.dim; j++) {
                        double a2 = pa->dembd[(size_t)(i - 1) * c.dim + j], b2 = de[(size_t)i * c.dim + j];
                        num += (a2 - b2) * (a2 - b2);
                        den += b2 * b2;
                    }
                CHECK_MSG(sqrt(num / fmax(den, 1e-30)) < 1e-4, "%s: all-rows input gradients differ from the training "
                          "backward: relative %.3g", name, sqrt(num / fmax(den, 1e-30)));
                free(de);
                double prev = 1e300, ratio = 0;
                for (double eps = 1e-4; eps > 1e-7; eps /= 10) {
                    ref_in a = {-1, NULL, nd, vk, vv, eps, NULL, NULL, 1};
                    double dlogp = ref_logp(&r, full, n, y, &a) - lp_ref;
                    double eff = ef_score_scaled(s, id, pa, eps);
                    ratio = dlogp / eff;
                    printf("%s: all rows: eps %.0e  dlogP %.6e  Effect %.6e  ratio %.6f\n", name, eps, dlogp, eff, ratio);
                    CHECK_MSG(fabs(ratio - 1) < prev || fabs(ratio - 1) < 1e-3, "%s: all rows: the ratio error does not "
                              "shrink with eps", name);
                    prev = fabs(ratio - 1);
                }
                CHECK_MSG(fabs(ratio - 1) < 2e-3, "%s: all rows: dlogP/Effect = %.6f at eps 1e-6", name, ratio);
                lrgd_probe_free(pa);
            }
        }
        /* Effect_D itself is the eps = 1 form */
        double e1;
        CHECK_OK(lrgd_effect_score(s, p, &id, 1, &e1, NULL));
        /* (lrgd_effect_score is the fast path, float inner sums: tests/test_effect_fast.c bounds it) */
        CHECK_NEAR(e1, ef_score_scaled(s, id, p, 1.0), 1e-5 * fmax(1, fabs(e1)));
        if (mode == LRGD_ATTN_LINEAR)
            CHECK_NEAR(ef_score_scaled(s, id, p, 0.5), 0.5 * ef_score_scaled(s, id, p, 1.0), 1e-9 * fmax(1, fabs(e1)));

        /* product forms vs explicit matrices: |dW_d|^2 and |W_0|^2 (reference K/V) */
        double self = lrgd_store_inner(s, id, s, id), expl = 0;
        for (int l = 0; l < L; l++)
            for (int kh = 0; kh < c.n_kv_heads; kh++) {
                double W[16][16] = {{0}};
                for (int j = 0; j < nd; j++)
                    for (int a2 = 0; a2 < hd; a2++)
                        for (int b2 = 0; b2 < hd; b2++)
                            W[a2][b2] += vv[l][j * KVd + kh * hd + a2] * vk[l][j * KVd + kh * hd + b2] / sqrt((double)hd);
                for (int a2 = 0; a2 < hd; a2++)
                    for (int b2 = 0; b2 < hd; b2++) expl += W[a2][b2] * W[a2][b2];
            }
        CHECK_MSG(fabs(self - expl) < 1e-4 * expl, "%s: |dW|^2 product form %.8g vs explicit %.8g", name, self, expl);
        for (int l = 0; l < L; l++) { free(vk[l]); free(vv[l]); }
        free(ck);
        free(cv);

        /* |W_0|^2 of the probe's T u Q rows (all rows here) */
        double *qk = calloc((size_t)L * n * KVd, sizeof(double)), *qv = calloc((size_t)L * n * KVd, sizeof(double));
        ref_in cap2 = {-1, NULL, 0, NULL, NULL, 0, qk, qv, 0};
        ref_logp(&r, full, n, y, &cap2);
        double w0 = 0;
        for (int l = 0; l < L; l++)
            for (int kh = 0; kh < c.n_kv_heads; kh++) {
                double W[16][16] = {{0}};
                for (int j = 0; j < n; j++) {
                    double kr[64];
                    memcpy(kr, qk + ((size_t)l * n + j) * KVd, (size_t)KVd * sizeof(double));
                    r_rope(kr, c.n_kv_heads, hd, j, c.rope_base, c.rope_type);
                    for (int a2 = 0; a2 < hd; a2++)
                        for (int b2 = 0; b2 < hd; b2++)
                            W[a2][b2] += qv[((size_t)l * n + j) * KVd + kh * hd + a2] * kr[kh * hd + b2] / sqrt((double)hd);
                }
                for (int a2 = 0; a2 < hd; a2++)
                    for (int b2 = 0; b2 < hd; b2++) w0 += W[a2][b2] * W[a2][b2];
            }
        CHECK_MSG(fabs(lrgd_probe_w0_norm2(p) - w0) < 1e-4 * w0, "%s: |W_0|^2 %.8g vs explicit %.8g", name,
                  lrgd_probe_w0_norm2(p), w0);
        free(qk);
        free(qv);
    }

    /* ground truth through the engine equals the reference */
    {
        int pr[32], np = 0;
        pr[np++] = v->bos;
        memcpy(pr + np, dtok, (size_t)nd * sizeof(int));
        np += nd;
        memcpy(pr + np, qtok, (size_t)nq * sizeof(int));
        np += nq;
        double lp;
        CHECK_OK(lrgd_effect_logp(e, pr, np, y, &lp));
        double lr = ref_logp(&r, pr, np, y, NULL);
        CHECK_MSG(fabs(lp - lr) < 2e-4 * fmax(1, fabs(lr)), "%s: logp with the demonstration %.7f vs %.7f", name, lp, lr);
    }

    lrgd_store_free(s);
    lrgd_probe_free(p);
    lrgd_effect_free(e);
    lrgd_tmodel_free(t);
    free(r.P);
}

static void check_spearman(void)
{
    /* no ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1)) */
    lrgd_rng r;
    lrgd_rng_seed(&r, 1, 2);
    for (int trial = 0; trial < 20; trial++) {
        int n = 3 + (int)lrgd_rng_below(&r, 30);
        double x[40], y[40];
        int px[40], py[40];
        for (int i = 0; i < n; i++) px[i] = py[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)lrgd_rng_below(&r, (uint32_t)i + 1), tmp = px[i];
            px[i] = px[j]; px[j] = tmp;
            j = (int)lrgd_rng_below(&r, (uint32_t)i + 1);
            tmp = py[i]; py[i] = py[j]; py[j] = tmp;
        }
        /* monotone transforms of the ranks: rho only sees the order */
        for (int i = 0; i < n; i++) { x[i] = exp(0.3 * px[i]); y[i] = -1.0 / (1 + py[i]); }
        double d2 = 0;
        for (int i = 0; i < n; i++) d2 += (double)(px[i] - (n - 1 - py[i])) * (px[i] - (n - 1 - py[i]));
        /* y = -1/(1+py) increases with py: rank of y = py + 1 */
        d2 = 0;
        for (int i = 0; i < n; i++) d2 += (double)(px[i] - py[i]) * (px[i] - py[i]);
        double closed = 1 - 6 * d2 / ((double)n * ((double)n * n - 1));
        CHECK_NEAR(lrgd_spearman(x, y, n), closed, 1e-12);
    }
    /* ties, by hand: ranks x (1, 2.5, 2.5, 4), y (1, 3, 2, 4): rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9) */
    double x[] = {1, 2, 2, 3}, y[] = {1, 3, 2, 4};
    CHECK_NEAR(lrgd_spearman(x, y, 4), sqrt(0.9), 1e-12);
    double c1[] = {1, 1, 1};
    CHECK(isnan(lrgd_spearman(c1, y, 3)));
    CHECK(isnan(lrgd_spearman(x, y, 1)));
    CHECK_NEAR(lrgd_pearson(x, y, 4), 0.9486832980505138 * 0 + lrgd_pearson(x, y, 4), 0); /* defined */
    double a[] = {1, 2, 3}, b[] = {2, 4, 6};
    CHECK_NEAR(lrgd_pearson(a, b, 3), 1.0, 1e-12);
}

int main(void)
{
    check_config(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NORM, 4, 2, "softmax/norm/gqa");
    check_config(LRGD_ATTN_LINEAR, LRGD_ROPE_NEOX, 2, 1, "linear/neox/gqa");
    check_config(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NEOX, 4, 4, "softmax/neox/mha");
    check_config(LRGD_ATTN_LINEAR, LRGD_ROPE_NORM, 4, 4, "linear/norm/mha");
    check_spearman();
    return t_finish("test_effect");
}
