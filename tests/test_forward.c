/* The forward pass: each primitive and whole random models against naive
 * double-precision references written here, KV-cache decoding against full
 * recomputation, truncate/copy_prefix, embeddings input, hooks, thread-count
 * determinism, generation and argument errors. */
#include "model/model_impl.h"
#include "model/ops.h"
#include "test.h"

static lrgd_rng g_rng;

static void fill_normal(float *x, size_t n, double std)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * lrgd_rng_normal(&g_rng));
}

/* max |a - b| / max(max |b|, floor) */
static double rel_err_fd(const float *a, const double *b, size_t n, double floor)
{
    double md = 0, mb = floor;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs(b[i]));
    }
    return md / mb;
}

static double rel_err_ff(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 1e-30;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    return md / mb;
}

static int same_bits(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* ======================================================================
 * Naive references, in double, written from the definitions.
 * ====================================================================== */

static void ref_rmsnorm(double *out, const double *x, const float *w, int dim, double eps)
{
    double ss = 0;
    for (int j = 0; j < dim; j++) ss += x[j] * x[j];
    double r = 1.0 / sqrt(ss / dim + eps);
    for (int j = 0; j < dim; j++) out[j] = x[j] * r * w[j];
}

/* Rotate every head of one row at position p. NORM pairs (2j, 2j+1), NEOX
 * pairs (j, j + hd/2); pair j turns by p * base^(-2j/hd) (sign -1: backwards). */
static void ref_rope(double *x, int n_heads, int hd, double p, double base, lrgd_rope_type type, int sign)
{
    for (int h = 0; h < n_heads; h++)
        for (int j = 0; j < hd / 2; j++) {
            double th = sign * p * pow(base, -2.0 * j / hd);
            int a = type == LRGD_ROPE_NORM ? 2 * j : j, b = type == LRGD_ROPE_NORM ? 2 * j + 1 : j + hd / 2;
            double x0 = x[h * hd + a], x1 = x[h * hd + b];
            x[h * hd + a] = x0 * cos(th) - x1 * sin(th);
            x[h * hd + b] = x0 * sin(th) + x1 * cos(th);
        }
}

/* q [n][nh*hd] at positions pos0..pos0+n-1; k, v [pos0+n][nkv*hd]. Head h
 * reads kv head h / (nh/nkv). att [nh][n][T] (0 above the diagonal), lse [nh][n]. */
static void ref_attention(double *out, double *att, double *lse, const double *q, const double *k, const double *v,
                          int pos0, int n, int nh, int nkv, int hd, lrgd_attn_mode mode)
{
    int T = pos0 + n, g = nh / nkv;
    double *w = malloc(sizeof(double) * (size_t)T);
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < n; i++) {
            int t = pos0 + i, kh = h / g;
            double mx = -INFINITY;
            for (int j = 0; j <= t; j++) {
                double s = 0;
                for (int d = 0; d < hd; d++) s += q[(size_t)i * nh * hd + h * hd + d] * k[(size_t)j * nkv * hd + kh * hd + d];
                w[j] = s / sqrt((double)hd);
                mx = fmax(mx, w[j]);
            }
            double l = 0;
            if (mode == LRGD_ATTN_SOFTMAX) {
                double z = 0;
                for (int j = 0; j <= t; j++) z += exp(w[j] - mx);
                for (int j = 0; j <= t; j++) w[j] = exp(w[j] - mx) / z;
                l = mx + log(z);
            }
            if (lse) lse[h * n + i] = l;
            for (int d = 0; d < hd; d++) {
                double o = 0;
                for (int j = 0; j <= t; j++) o += w[j] * v[(size_t)j * nkv * hd + kh * hd + d];
                out[(size_t)i * nh * hd + h * hd + d] = o;
            }
            if (att)
                for (int j = 0; j < T; j++) att[((size_t)h * n + i) * T + j] = j <= t ? w[j] : 0.0;
        }
    free(w);
}

static double ref_silu(double x) { return x / (1.0 + exp(-x)); }

/* y[rows] = W x for a float32 weight */
static void ref_matvec(double *y, const lrgd_weight *w, const double *x)
{
    const float *W = w->data;
    for (int r = 0; r < w->rows; r++) {
        double s = 0;
        for (int c = 0; c < w->cols; c++) s += (double)W[(size_t)r * w->cols + c] * x[c];
        y[r] = s;
    }
}

static void ref_matvec_f(double *y, const lrgd_weight *w, const float *x)
{
    double *xd = malloc(sizeof(double) * (size_t)w->cols);
    for (int c = 0; c < w->cols; c++) xd[c] = x[c];
    ref_matvec(y, w, xd);
    free(xd);
}

/* The whole model, from scratch over T positions: logits [T][vocab]. */
static void ref_forward(const lrgd_model *m, const int *tok, int T, double *logits)
{
    const lrgd_config *c = &m->cfg;
    int D = c->dim, F = c->hidden_dim, nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim, kvd = nkv * hd;
    double *x = calloc((size_t)T * D, sizeof(double)), *xn = calloc((size_t)T * D, sizeof(double));
    double *q = calloc((size_t)T * D, sizeof(double)), *k = calloc((size_t)T * kvd, sizeof(double));
    double *v = calloc((size_t)T * kvd, sizeof(double)), *a = calloc((size_t)T * D, sizeof(double));
    double *g = calloc((size_t)F, sizeof(double)), *u = calloc((size_t)F, sizeof(double));
    double *tmp = calloc((size_t)D, sizeof(double));
    const float *E = m->tok_embd.data;
    for (int t = 0; t < T; t++)
        for (int j = 0; j < D; j++) x[(size_t)t * D + j] = E[(size_t)tok[t] * D + j];
    for (int l = 0; l < c->n_layers; l++) {
        const lrgd_layer *L = &m->layers[l];
        for (int t = 0; t < T; t++) {
            ref_rmsnorm(xn + (size_t)t * D, x + (size_t)t * D, L->attn_norm, D, c->norm_eps);
            ref_matvec(q + (size_t)t * D, &L->wq, xn + (size_t)t * D);
            ref_matvec(k + (size_t)t * kvd, &L->wk, xn + (size_t)t * D);
            ref_matvec(v + (size_t)t * kvd, &L->wv, xn + (size_t)t * D);
            ref_rope(q + (size_t)t * D, nh, hd, t, c->rope_base, c->rope_type, 1);
            ref_rope(k + (size_t)t * kvd, nkv, hd, t, c->rope_base, c->rope_type, 1);
        }
        ref_attention(a, NULL, NULL, q, k, v, 0, T, nh, nkv, hd, c->attn);
        for (int t = 0; t < T; t++) {
            double *xt = x + (size_t)t * D;
            ref_matvec(tmp, &L->wo, a + (size_t)t * D);
            for (int j = 0; j < D; j++) xt[j] += tmp[j];
            ref_rmsnorm(xn, xt, L->ffn_norm, D, c->norm_eps);
            ref_matvec(g, &L->w1, xn);
            ref_matvec(u, &L->w3, xn);
            for (int j = 0; j < F; j++) g[j] = ref_silu(g[j]) * u[j];
            ref_matvec(tmp, &L->w2, g);
            for (int j = 0; j < D; j++) xt[j] += tmp[j];
        }
    }
    for (int t = 0; t < T; t++) {
        ref_rmsnorm(xn, x + (size_t)t * D, m->out_norm, D, c->norm_eps);
        ref_matvec(logits + (size_t)t * c->vocab_size, &m->output, xn);
    }
    free(x); free(xn); free(q); free(k); free(v); free(a); free(g); free(u); free(tmp);
}

/* ======================================================================
 * Primitives
 * ====================================================================== */

static void test_rmsnorm(void)
{
    enum { N = 5, DIM = 37 };
    float x[N * DIM], w[DIM], out[N * DIM], rstd[N];
    double xd[DIM], ref[N * DIM];
    fill_normal(x, N * DIM, 3.0);
    fill_normal(w, DIM, 1.0);
    lrgd_rmsnorm_forward(out, rstd, x, w, N, DIM, 1e-5f);
    for (int i = 0; i < N; i++) {
        double ss = 0;
        for (int j = 0; j < DIM; j++) { xd[j] = x[i * DIM + j]; ss += xd[j] * xd[j]; }
        ref_rmsnorm(ref + i * DIM, xd, w, DIM, 1e-5);
        CHECK_NEAR(rstd[i] * sqrt(ss / DIM + 1e-5), 1.0, 1e-6);
    }
    CHECK_MSG(rel_err_fd(out, ref, N * DIM, 0) < 1e-6, "rmsnorm rel err %g", rel_err_fd(out, ref, N * DIM, 0));
    /* eps matters when the row is tiny: a zero row stays zero, a 1e-4 row is damped */
    float z[DIM] = {0}, zo[DIM];
    for (int j = 0; j < DIM; j++) z[j] = 1e-4f;
    lrgd_rmsnorm_forward(zo, NULL, z, w, 1, DIM, 1e-5f);
    CHECK_NEAR(zo[0] / w[0], 1e-4 / sqrt(1e-8 + 1e-5), 1e-6);
    /* in place */
    memcpy(out, x, sizeof x);
    lrgd_rmsnorm_forward(out, NULL, out, w, N, DIM, 1e-5f);
    CHECK(rel_err_fd(out, ref, N * DIM, 0) < 1e-6);
}

static void test_rope(void)
{
    enum { N = 6, NH = 3, HD = 16, W = NH * HD };
    const int pos0 = 5, pos[N] = {0, 1, 17, 1000, 4095, 70000};
    for (int type = 0; type < 2; type++) {
        lrgd_rope_type rt = type ? LRGD_ROPE_NEOX : LRGD_ROPE_NORM;
        float x[N * W], y[N * W], z[N * W];
        double ref[N * W];
        fill_normal(x, N * W, 1.0);
        /* positions pos0 + i */
        memcpy(y, x, sizeof x);
        lrgd_rope(y, N, NH, HD, pos0, NULL, 10000.0f, rt, 1);
        for (int i = 0; i < N * W; i++) ref[i] = x[i];
        for (int i = 0; i < N; i++) ref_rope(ref + i * W, NH, HD, pos0 + i, 10000.0, rt, 1);
        CHECK_MSG(rel_err_fd(y, ref, N * W, 0) < 1e-6, "rope type %d: rel err %g", type, rel_err_fd(y, ref, N * W, 0));
        /* explicit positions, up to 70000, another base */
        memcpy(y, x, sizeof x);
        lrgd_rope(y, N, NH, HD, 0, pos, 500000.0f, rt, 1);
        for (int i = 0; i < N * W; i++) ref[i] = x[i];
        for (int i = 0; i < N; i++) ref_rope(ref + i * W, NH, HD, pos[i], 500000.0, rt, 1);
        CHECK_MSG(rel_err_fd(y, ref, N * W, 0) < 1e-6, "rope type %d, explicit pos: rel err %g", type,
                  rel_err_fd(y, ref, N * W, 0));
        /* sign -1 is the inverse rotation */
        memcpy(z, y, sizeof y);
        lrgd_rope(z, N, NH, HD, 0, pos, 500000.0f, rt, -1);
        CHECK_MSG(rel_err_ff(z, x, N * W) < 1e-6, "rope type %d: R^T R x != x (rel err %g)", type, rel_err_ff(z, x, N * W));
        /* sign -1 alone matches the reference rotated backwards */
        memcpy(z, x, sizeof x);
        lrgd_rope(z, N, NH, HD, pos0, NULL, 10000.0f, rt, -1);
        for (int i = 0; i < N * W; i++) ref[i] = x[i];
        for (int i = 0; i < N; i++) ref_rope(ref + i * W, NH, HD, pos0 + i, 10000.0, rt, -1);
        CHECK(rel_err_fd(z, ref, N * W, 0) < 1e-6);
    }
    /* The two forms pair different coordinates: on a unit vector e_1 at p = 1,
     * NORM moves it into coordinate 0 (pair (0,1)), NEOX into 1 + hd/2 (pair (1, 9)). */
    float e[HD] = {0}, f[HD] = {0};
    e[1] = f[1] = 1.0f;
    lrgd_rope(e, 1, 1, HD, 1, NULL, 10000.0f, LRGD_ROPE_NORM, 1);
    lrgd_rope(f, 1, 1, HD, 1, NULL, 10000.0f, LRGD_ROPE_NEOX, 1);
    CHECK_NEAR(e[0], -sin(1.0), 1e-6);
    CHECK_NEAR(e[1], cos(1.0), 1e-6);
    CHECK_NEAR(f[1], cos(pow(10000.0, -2.0 / HD)), 1e-6);
    CHECK_NEAR(f[1 + HD / 2], sin(pow(10000.0, -2.0 / HD)), 1e-6);
}

static void test_attention(void)
{
    const int kv_heads[3] = {2, 1, 4};
    for (int mode = 0; mode < 2; mode++)
        for (int g = 0; g < 3; g++) {
            const int NH = 4, NKV = kv_heads[g], HD = 8, pos0 = 3, n = 5, T = pos0 + n;
            lrgd_attn_mode am = mode ? LRGD_ATTN_LINEAR : LRGD_ATTN_SOFTMAX;
            size_t nq = (size_t)n * NH * HD, nk = (size_t)T * NKV * HD, na = (size_t)NH * n * T;
            float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *o = malloc(nq * 4), *att = malloc(na * 4);
            float lse[4 * 5], o2[4 * 8 * 5];
            double *qd = malloc(nq * 8), *kd = malloc(nk * 8), *vd = malloc(nk * 8), *od = malloc(nq * 8),
                   *ad = malloc(na * 8), ld[4 * 5];
            fill_normal(q, nq, 2.0);
            fill_normal(k, nk, 2.0);
            fill_normal(v, nk, 1.0);
            for (size_t i = 0; i < nq; i++) qd[i] = q[i];
            for (size_t i = 0; i < nk; i++) { kd[i] = k[i]; vd[i] = v[i]; }
            for (size_t i = 0; i < na; i++) att[i] = 123.0f; /* every entry must be written */
            lrgd_attention_forward_lse(o, att, lse, q, k, v, pos0, n, NH, NKV, HD, am);
            ref_attention(od, ad, ld, qd, kd, vd, pos0, n, NH, NKV, HD, am);
            CHECK_MSG(rel_err_fd(o, od, nq, 0) < 1e-5, "attention mode %d kv %d: out rel err %g", mode, NKV,
                      rel_err_fd(o, od, nq, 0));
            CHECK_MSG(rel_err_fd(att, ad, na, 0) < 1e-5, "attention mode %d kv %d: att rel err %g", mode, NKV,
                      rel_err_fd(att, ad, na, 0));
            if (am == LRGD_ATTN_SOFTMAX)
                CHECK_MSG(rel_err_fd(lse, ld, (size_t)NH * n, 0) < 1e-5, "lse rel err %g",
                          rel_err_fd(lse, ld, (size_t)NH * n, 0));
            /* without att/lse the output is the same, bit for bit */
            lrgd_attention_forward(o2, NULL, q, k, v, pos0, n, NH, NKV, HD, am);
            CHECK(same_bits(o, o2, nq));
            free(q); free(k); free(v); free(o); free(att); free(qd); free(kd); free(vd); free(od); free(ad);
        }
}

static void test_swiglu(void)
{
    enum { N = 1000 };
    float g[N], u[N], h[N];
    double ref[N];
    fill_normal(g, N, 8.0);
    fill_normal(u, N, 1.0);
    g[0] = -90.0f; g[1] = 90.0f; g[2] = 0.0f;
    lrgd_swiglu_forward(h, g, u, N);
    for (int i = 0; i < N; i++) ref[i] = ref_silu(g[i]) * u[i];
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(h[i] - ref[i]) / fmax(fabs(ref[i]), 1e-30));
    CHECK_MSG(worst < 1e-6 || rel_err_fd(h, ref, N, 0) < 1e-7, "swiglu rel err %g", worst);
    CHECK(h[2] == 0.0f);
    CHECK(fabsf(h[0]) < 1e-30f);
}

/* ======================================================================
 * Whole models
 * ====================================================================== */

static lrgd_config tiny_config(lrgd_rope_type rope, int n_kv, int tied, lrgd_attn_mode attn)
{
    lrgd_config c = {0};
    c.dim = 32;
    c.hidden_dim = 44;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = n_kv;
    c.head_dim = 8;
    c.vocab_size = 50;
    c.seq_len = 64;
    c.norm_eps = 1e-5f;
    c.rope_base = rope == LRGD_ROPE_NEOX ? 500.0f : 10000.0f;
    c.rope_type = rope;
    c.attn = attn;
    c.tied = tied;
    return c;
}

static const struct { lrgd_rope_type rope; int n_kv, tied; lrgd_attn_mode attn; } VARIANTS[] = {
    {LRGD_ROPE_NORM, 2, 0, LRGD_ATTN_SOFTMAX},
    {LRGD_ROPE_NEOX, 2, 1, LRGD_ATTN_SOFTMAX},
    {LRGD_ROPE_NORM, 4, 1, LRGD_ATTN_LINEAR},
    {LRGD_ROPE_NEOX, 1, 0, LRGD_ATTN_LINEAR},
    {LRGD_ROPE_NEOX, 2, 0, LRGD_ATTN_LINEAR},
};
#define N_VARIANTS (int)(sizeof VARIANTS / sizeof VARIANTS[0])

static lrgd_model *variant_model(int i, uint64_t seed)
{
    lrgd_config c = tiny_config(VARIANTS[i].rope, VARIANTS[i].n_kv, VARIANTS[i].tied, VARIANTS[i].attn);
    lrgd_model *m = NULL;
    CHECK_OK(lrgd_model_new_random(&c, seed, &m));
    return m;
}

static void random_tokens(int *t, int n, int vocab)
{
    for (int i = 0; i < n; i++) t[i] = (int)lrgd_rng_below(&g_rng, (uint32_t)vocab);
}

/* Logits of all positions in one call on a fresh state. */
static float *full_logits(const lrgd_model *m, const int *tok, int T)
{
    lrgd_state *s = NULL;
    float *lg = calloc((size_t)T * m->cfg.vocab_size, sizeof(float));
    CHECK_OK(lrgd_state_new(m, T, T, &s));
    if (s) CHECK_OK(lrgd_eval(s, tok, T, lg, 1));
    lrgd_state_free(s);
    return lg;
}

static void test_random_model(void)
{
    lrgd_config c = tiny_config(LRGD_ROPE_NORM, 2, 0, LRGD_ATTN_SOFTMAX);
    lrgd_model *a = NULL, *b = NULL, *d = NULL;
    CHECK_OK(lrgd_model_new_random(&c, 5, &a));
    CHECK_OK(lrgd_model_new_random(&c, 5, &b));
    CHECK_OK(lrgd_model_new_random(&c, 6, &d));
    if (!a || !b || !d) return;
    size_t n = (size_t)c.n_heads * c.head_dim * c.dim;
    CHECK(same_bits(a->layers[1].wq.data, b->layers[1].wq.data, n));
    CHECK(!same_bits(a->layers[1].wq.data, d->layers[1].wq.data, n));
    CHECK(a->output.data != a->tok_embd.data && a->layers[0].wq.type == LRGD_F32);
    /* activations stay O(1): logits of a 24-token sequence have a modest spread */
    for (int v = 0; v < N_VARIANTS; v++) {
        lrgd_model *m = variant_model(v, 100 + v);
        if (!m) continue;
        int tok[24];
        random_tokens(tok, 24, m->cfg.vocab_size);
        float *lg = full_logits(m, tok, 24);
        double ss = 0;
        for (int i = 0; i < 24 * 50; i++) ss += (double)lg[i] * lg[i];
        double rms = sqrt(ss / (24 * 50));
        CHECK_MSG(rms > 0.1 && rms < 10, "variant %d: logit rms %g", v, rms);
        free(lg);
        lrgd_model_free(m);
    }
    c.n_kv_heads = 3; /* does not divide n_heads */
    lrgd_model *bad = NULL;
    CHECK(lrgd_model_new_random(&c, 1, &bad) != LRGD_OK && bad == NULL);
    lrgd_model_free(a);
    lrgd_model_free(b);
    lrgd_model_free(d);
}

static void test_forward_vs_reference(void)
{
    enum { T = 24 };
    for (int v = 0; v < N_VARIANTS; v++) {
        lrgd_model *m = variant_model(v, 10 + v);
        if (!m) continue;
        int tok[T];
        random_tokens(tok, T, m->cfg.vocab_size);
        size_t nl = (size_t)T * m->cfg.vocab_size;
        double *ref = malloc(nl * sizeof(double));
        ref_forward(m, tok, T, ref);
        float *lg = full_logits(m, tok, T);
        double e = rel_err_fd(lg, ref, nl, 1.0);
        printf("variant %d (rope %s, kv %d, %s, %s): logits vs double reference, rel err %.2e\n", v,
               VARIANTS[v].rope == LRGD_ROPE_NEOX ? "neox" : "norm", VARIANTS[v].n_kv,
               VARIANTS[v].tied ? "tied" : "untied", VARIANTS[v].attn == LRGD_ATTN_LINEAR ? "linear" : "softmax", e);
        CHECK_MSG(e < 1e-5, "variant %d (rope %d, kv %d, tied %d, attn %d): logits rel err %g vs double reference", v,
                  VARIANTS[v].rope, VARIANTS[v].n_kv, VARIANTS[v].tied, VARIANTS[v].attn, e);
        free(ref);
        free(lg);
        lrgd_model_free(m);
    }
}

static void test_kv_cache(void)
{
    enum { T = 24 };
    const int chunks[] = {3, 1, 7, 5, 2, 6};
    for (int v = 0; v < N_VARIANTS; v++) {
        lrgd_model *m = variant_model(v, 20 + v);
        if (!m) continue;
        const int V = m->cfg.vocab_size;
        int tok[T];
        random_tokens(tok, T, V);
        float *full = full_logits(m, tok, T), *lg = calloc((size_t)T * V, sizeof(float)), last[64];
        lrgd_state *s = NULL;

        /* token by token */
        CHECK_OK(lrgd_state_new(m, T, 0, &s));
        for (int t = 0; s && t < T; t++) CHECK_OK(lrgd_eval(s, tok + t, 1, lg + (size_t)t * V, 1));
        printf("variant %d: token-by-token decoding vs one batch, rel err %.2e\n", v, rel_err_ff(lg, full, (size_t)T * V));
        CHECK_MSG(rel_err_ff(lg, full, (size_t)T * V) < 1e-5, "variant %d: token-by-token rel err %g", v,
                  rel_err_ff(lg, full, (size_t)T * V));
        CHECK(lrgd_state_pos(s) == T);
        lrgd_state_free(s);

        /* uneven chunks; last-token logits of each chunk too */
        memset(lg, 0, (size_t)T * V * sizeof(float));
        CHECK_OK(lrgd_state_new(m, T, 0, &s));
        int at = 0;
        for (int i = 0; s && i < 6; i++) {
            CHECK_OK(lrgd_eval(s, tok + at, chunks[i], lg + (size_t)at * V, 1));
            at += chunks[i];
        }
        CHECK_MSG(rel_err_ff(lg, full, (size_t)T * V) < 1e-5, "variant %d: chunked rel err %g", v,
                  rel_err_ff(lg, full, (size_t)T * V));
        lrgd_state_free(s);

        /* n_batch 5: one call is split into batches inside lrgd_eval */
        memset(lg, 0, (size_t)T * V * sizeof(float));
        CHECK_OK(lrgd_state_new(m, T, 5, &s));
        if (s) CHECK_OK(lrgd_eval(s, tok, T, lg, 1));
        CHECK_MSG(rel_err_ff(lg, full, (size_t)T * V) < 1e-5, "variant %d: n_batch 5 rel err %g", v,
                  rel_err_ff(lg, full, (size_t)T * V));
        /* last-token logits only */
        CHECK_OK(lrgd_state_truncate(s, 0));
        if (s) CHECK_OK(lrgd_eval(s, tok, T, last, 0));
        CHECK(rel_err_ff(last, full + (size_t)(T - 1) * V, (size_t)V) < 1e-5);
        /* no logits at all still fills the cache */
        CHECK_OK(lrgd_state_truncate(s, 0));
        if (s) CHECK_OK(lrgd_eval(s, tok, T - 1, NULL, 0));
        if (s) CHECK_OK(lrgd_eval(s, tok + T - 1, 1, last, 0));
        CHECK(rel_err_ff(last, full + (size_t)(T - 1) * V, (size_t)V) < 1e-5);
        lrgd_state_free(s);
        free(full);
        free(lg);
        lrgd_model_free(m);
    }
}

static void test_truncate_copy_prefix(void)
{
    enum { TA = 20, P = 8, TB = 6 };
    lrgd_model *m = variant_model(0, 31), *m2 = variant_model(0, 32);
    if (!m || !m2) return;
    const int V = m->cfg.vocab_size;
    int a[TA], b[TB], ab[P + TB];
    random_tokens(a, TA, V);
    random_tokens(b, TB, V);
    memcpy(ab, a, P * sizeof(int));
    memcpy(ab + P, b, TB * sizeof(int));
    float *ref = full_logits(m, ab, P + TB), lt[TB * 50], lc[TB * 50], lf[TB * 50];

    lrgd_state *s = NULL, *d = NULL, *f = NULL, *o = NULL, *small = NULL;
    CHECK_OK(lrgd_state_new(m, 32, 0, &s));
    CHECK_OK(lrgd_state_new(m, 32, 0, &d));
    CHECK_OK(lrgd_state_new(m, 32, 0, &f));
    CHECK_OK(lrgd_state_new(m2, 32, 0, &o));
    CHECK_OK(lrgd_state_new(m, 4, 0, &small));
    if (!s || !d || !f || !o || !small) return;
    /* truncate + re-eval equals a fresh eval of the shared prefix and the new suffix */
    CHECK_OK(lrgd_eval(s, a, TA, NULL, 0));
    CHECK(lrgd_state_truncate(s, TA + 1) == LRGD_E_INVALID);
    CHECK(lrgd_state_truncate(s, -1) == LRGD_E_INVALID);
    CHECK(lrgd_state_pos(s) == TA);
    CHECK_OK(lrgd_state_truncate(s, P));
    CHECK(lrgd_state_pos(s) == P);
    CHECK_OK(lrgd_eval(s, b, TB, lt, 1));
    CHECK_MSG(rel_err_ff(lt, ref + (size_t)P * V, (size_t)TB * V) < 1e-5, "truncate: rel err %g",
              rel_err_ff(lt, ref + (size_t)P * V, (size_t)TB * V));
    CHECK_OK(lrgd_eval(f, a, TA, NULL, 0)); /* the same chunking as s, without truncating */
    CHECK_OK(lrgd_state_truncate(f, P));
    CHECK_OK(lrgd_eval(f, b, TB, lf, 1));
    CHECK(same_bits(lt, lf, (size_t)TB * V));

    /* copy_prefix: the first P rows of a's cache, then b: the same numbers bit for bit */
    lrgd_state *src = f;
    CHECK_OK(lrgd_state_truncate(src, 0));
    CHECK_OK(lrgd_eval(src, a, TA, NULL, 0));
    CHECK_OK(lrgd_eval(d, b, 3, NULL, 0)); /* something to overwrite */
    CHECK_OK(lrgd_state_copy_prefix(d, src, P));
    CHECK(lrgd_state_pos(d) == P && lrgd_state_pos(src) == TA);
    CHECK_OK(lrgd_eval(d, b, TB, lc, 1));
    CHECK(same_bits(lc, lt, (size_t)TB * V));
    CHECK(lrgd_state_copy_prefix(d, src, TA + 1) == LRGD_E_INVALID);
    CHECK(lrgd_state_copy_prefix(o, src, P) == LRGD_E_INVALID); /* another model */
    CHECK(lrgd_state_copy_prefix(small, src, P) == LRGD_E_INVALID); /* no room */
    CHECK(lrgd_state_pos(small) == 0);
    lrgd_state_free(s);
    lrgd_state_free(d);
    lrgd_state_free(f);
    lrgd_state_free(o);
    lrgd_state_free(small);
    free(ref);
    lrgd_model_free(m);
    lrgd_model_free(m2);
}

static void test_eval_embd(void)
{
    enum { T = 13 };
    for (int v = 0; v < N_VARIANTS; v += 3) {
        lrgd_model *m = variant_model(v, 40 + v);
        if (!m) continue;
        const int V = m->cfg.vocab_size, D = m->cfg.dim;
        int tok[T];
        random_tokens(tok, T, V);
        float *e = malloc(sizeof(float) * T * D), *l1 = malloc(sizeof(float) * T * V), *l2 = malloc(sizeof(float) * T * V);
        const float *E = m->tok_embd.data;
        for (int t = 0; t < T; t++) memcpy(e + t * D, E + (size_t)tok[t] * D, sizeof(float) * D);
        lrgd_state *s = NULL;
        CHECK_OK(lrgd_state_new(m, T, 4, &s));
        if (!s) continue;
        CHECK_OK(lrgd_eval(s, tok, T, l1, 1));
        CHECK_OK(lrgd_state_truncate(s, 0));
        CHECK_OK(lrgd_eval_embd(s, e, T, l2, 1));
        CHECK(same_bits(l1, l2, (size_t)T * V));
        /* mixed: ids then embeddings continue the same sequence */
        CHECK_OK(lrgd_state_truncate(s, 0));
        CHECK_OK(lrgd_eval(s, tok, 4, l2, 1)); /* the same batches of 4 as above */
        CHECK_OK(lrgd_eval_embd(s, e + 4 * D, T - 4, l2 + 4 * V, 1));
        CHECK(same_bits(l1, l2, (size_t)T * V));
        /* a perturbed embedding changes the logits from its position on only */
        CHECK_OK(lrgd_state_truncate(s, 0));
        e[7 * D + 3] += 0.5f;
        CHECK_OK(lrgd_eval_embd(s, e, T, l2, 1));
        CHECK(same_bits(l1, l2, (size_t)4 * V)); /* first batch of 4 is untouched */
        CHECK(!same_bits(l1 + 7 * V, l2 + 7 * V, (size_t)V));
        /* non-finite input is refused, the cache is left as it was */
        CHECK_OK(lrgd_state_truncate(s, 2));
        e[1 * D + 5] = NAN;
        CHECK(lrgd_eval_embd(s, e, 3, NULL, 0) == LRGD_E_NUMERIC);
        CHECK(strstr(lrgd_last_error(), "position 3") != NULL);
        CHECK(lrgd_state_pos(s) == 2);
        lrgd_state_free(s);
        free(e); free(l1); free(l2);
        lrgd_model_free(m);
    }
}

/* ---- hooks ------------------------------------------------------------- */

enum { Q_XNORM, Q_Q, Q_K, Q_V, Q_ATT, Q_LSE, Q_ATTOUT, Q_ATTOUT2, Q_XMID, Q_XFFN, Q_FFNH, Q_XOUT, Q_N };
static const char *Q_NAMES[Q_N] = {"x_norm", "q", "k", "v", "att", "att_lse", "att_out(ref)", "att_out(from att)",
                                   "x_mid", "x_ffn_norm", "ffn_h", "x_out"};

typedef struct hook_ctx {
    const lrgd_model *m;
    const int *tok;
    int with_att, calls, abort_at, bad_shape, bad_bits, bad_att_presence;
    float *k_seen, *v_seen; /* [L][T][kvd]: cache rows as first seen */
    float *x_prev;          /* x_out of the previous layer of this batch */
    float *x_last;          /* [T][dim] x_out of the last layer */
    double worst[Q_N];
} hook_ctx;

static void note(hook_ctx *c, int q, const float *got, const double *want, size_t n)
{
    c->worst[q] = fmax(c->worst[q], rel_err_fd(got, want, n, 1e-3));
}

static lrgd_status check_hook(void *user, const lrgd_hook_layer *h)
{
    hook_ctx *c = user;
    const lrgd_model *m = c->m;
    const lrgd_config *cf = &m->cfg;
    const lrgd_layer *L = &m->layers[h->layer];
    c->calls++;
    if (c->abort_at && c->calls == c->abort_at) return lrgd_fail(LRGD_E_RUNTIME, "planted hook failure");
    const int n = h->n, p0 = h->pos0, T = p0 + n, D = cf->dim, F = cf->hidden_dim, nh = cf->n_heads,
              nkv = cf->n_kv_heads, hd = cf->head_dim, kvd = nkv * hd;
    if (h->dim != D || h->n_heads != nh || h->n_kv_heads != nkv || h->head_dim != hd || h->hidden_dim != F ||
        h->attn != cf->attn || h->layer < 0 || h->layer >= cf->n_layers)
        c->bad_shape++;
    if ((h->att != NULL) != c->with_att || (h->att_lse != NULL) != (cf->attn == LRGD_ATTN_SOFTMAX))
        c->bad_att_presence++;

    double *xin = calloc((size_t)n * D, sizeof(double)), *r = calloc((size_t)T * (D + F), sizeof(double));
    double *qd = calloc((size_t)n * D, sizeof(double)), *kd = calloc((size_t)T * kvd, sizeof(double)),
           *vd = calloc((size_t)T * kvd, sizeof(double)), *od = calloc((size_t)n * D, sizeof(double)),
           *ad = calloc((size_t)nh * n * T, sizeof(double)), ld[64 * 64];
    double *g = calloc((size_t)F, sizeof(double)), *u = calloc((size_t)F, sizeof(double));

    /* x_in: the embeddings at layer 0, the previous layer's x_out after */
    if (h->layer == 0) {
        const float *E = m->tok_embd.data;
        for (int i = 0; i < n; i++)
            if (memcmp(h->x_in + (size_t)i * D, E + (size_t)c->tok[p0 + i] * D, sizeof(float) * D)) c->bad_bits++;
    } else if (!same_bits(h->x_in, c->x_prev, (size_t)n * D)) {
        c->bad_bits++;
    }
    for (size_t i = 0; i < (size_t)n * D; i++) xin[i] = h->x_in[i];
    for (int i = 0; i < n; i++) ref_rmsnorm(r + (size_t)i * D, xin + (size_t)i * D, L->attn_norm, D, cf->norm_eps);
    note(c, Q_XNORM, h->x_norm, r, (size_t)n * D);
    /* q, and the cache rows of this batch, from the hook's x_norm */
    for (int i = 0; i < n; i++) {
        ref_matvec_f(r + (size_t)i * D, &L->wq, h->x_norm + (size_t)i * D);
        ref_rope(r + (size_t)i * D, nh, hd, p0 + i, cf->rope_base, cf->rope_type, 1);
    }
    note(c, Q_Q, h->q, r, (size_t)n * D);
    for (int i = 0; i < n; i++) {
        ref_matvec_f(r + (size_t)i * kvd, &L->wk, h->x_norm + (size_t)i * D);
        ref_rope(r + (size_t)i * kvd, nkv, hd, p0 + i, cf->rope_base, cf->rope_type, 1);
    }
    note(c, Q_K, h->k_cache + (size_t)p0 * kvd, r, (size_t)n * kvd);
    for (int i = 0; i < n; i++) ref_matvec_f(r + (size_t)i * kvd, &L->wv, h->x_norm + (size_t)i * D);
    note(c, Q_V, h->v_cache + (size_t)p0 * kvd, r, (size_t)n * kvd);
    /* earlier rows are what earlier batches wrote; then remember this batch's rows */
    float *ks = c->k_seen + (size_t)h->layer * 64 * kvd, *vs = c->v_seen + (size_t)h->layer * 64 * kvd;
    if (!same_bits(h->k_cache, ks, (size_t)p0 * kvd) || !same_bits(h->v_cache, vs, (size_t)p0 * kvd)) c->bad_bits++;
    memcpy(ks + (size_t)p0 * kvd, h->k_cache + (size_t)p0 * kvd, sizeof(float) * (size_t)n * kvd);
    memcpy(vs + (size_t)p0 * kvd, h->v_cache + (size_t)p0 * kvd, sizeof(float) * (size_t)n * kvd);

    /* attention recomputed from the hook's q and cache */
    for (size_t i = 0; i < (size_t)n * D; i++) qd[i] = h->q[i];
    for (size_t i = 0; i < (size_t)T * kvd; i++) { kd[i] = h->k_cache[i]; vd[i] = h->v_cache[i]; }
    ref_attention(od, ad, ld, qd, kd, vd, p0, n, nh, nkv, hd, cf->attn);
    note(c, Q_ATTOUT, h->att_out, od, (size_t)n * D);
    if (h->att) note(c, Q_ATT, h->att, ad, (size_t)nh * n * T);
    if (h->att_lse) note(c, Q_LSE, h->att_lse, ld, (size_t)nh * n);
    if (h->att) { /* att_out = sum_j att[h][i][j] v_j, straight from the hook's matrix */
        for (int hh = 0; hh < nh; hh++)
            for (int i = 0; i < n; i++)
                for (int d = 0; d < hd; d++) {
                    double o = 0;
                    for (int j = 0; j < T; j++)
                        o += (double)h->att[((size_t)hh * n + i) * T + j] * h->v_cache[(size_t)j * kvd + (hh / (nh / nkv)) * hd + d];
                    od[(size_t)i * D + hh * hd + d] = o;
                }
        note(c, Q_ATTOUT2, h->att_out, od, (size_t)n * D);
    }
    /* residual, FFN */
    for (int i = 0; i < n; i++) {
        double *ri = r + (size_t)i * D;
        ref_matvec_f(ri, &L->wo, h->att_out + (size_t)i * D);
        for (int j = 0; j < D; j++) ri[j] += h->x_in[(size_t)i * D + j];
    }
    note(c, Q_XMID, h->x_mid, r, (size_t)n * D);
    for (int i = 0; i < n; i++) {
        double xm[256];
        for (int j = 0; j < D; j++) xm[j] = h->x_mid[(size_t)i * D + j];
        ref_rmsnorm(r + (size_t)i * D, xm, L->ffn_norm, D, cf->norm_eps);
    }
    note(c, Q_XFFN, h->x_ffn_norm, r, (size_t)n * D);
    for (int i = 0; i < n; i++) {
        ref_matvec_f(g, &L->w1, h->x_ffn_norm + (size_t)i * D);
        ref_matvec_f(u, &L->w3, h->x_ffn_norm + (size_t)i * D);
        for (int j = 0; j < F; j++) r[(size_t)i * F + j] = ref_silu(g[j]) * u[j];
    }
    note(c, Q_FFNH, h->ffn_h, r, (size_t)n * F);
    for (int i = 0; i < n; i++) {
        double *ri = r + (size_t)i * D;
        ref_matvec_f(ri, &L->w2, h->ffn_h + (size_t)i * F);
        for (int j = 0; j < D; j++) ri[j] += h->x_mid[(size_t)i * D + j];
    }
    note(c, Q_XOUT, h->x_out, r, (size_t)n * D);
    memcpy(c->x_prev, h->x_out, sizeof(float) * (size_t)n * D);
    if (h->layer == cf->n_layers - 1) memcpy(c->x_last + (size_t)p0 * D, h->x_out, sizeof(float) * (size_t)n * D);
    free(xin); free(r); free(qd); free(kd); free(vd); free(od); free(ad); free(g); free(u);
    return LRGD_OK;
}

static lrgd_status count_hook(void *user, const lrgd_hook_layer *h)
{
    (void)h;
    ++*(int *)user;
    return LRGD_OK;
}

static void test_hooks(void)
{
    enum { T = 20 };
    const int variants[] = {0, 1, 3, 4};
    for (int vi = 0; vi < 4; vi++)
        for (int with_att = 0; with_att < 2; with_att++) {
            int v = variants[vi];
            lrgd_model *m = variant_model(v, 50 + v);
            if (!m) continue;
            const lrgd_config *cf = &m->cfg;
            const int V = cf->vocab_size, D = cf->dim, kvd = cf->n_kv_heads * cf->head_dim;
            int tok[T];
            random_tokens(tok, T, V);
            hook_ctx c = {.m = m, .tok = tok, .with_att = with_att};
            c.k_seen = calloc((size_t)cf->n_layers * 64 * kvd, sizeof(float));
            c.v_seen = calloc((size_t)cf->n_layers * 64 * kvd, sizeof(float));
            c.x_prev = calloc((size_t)T * D, sizeof(float));
            c.x_last = calloc((size_t)T * D, sizeof(float));
            float *lg = calloc((size_t)T * V, sizeof(float)), *plain = calloc((size_t)T * V, sizeof(float));
            lrgd_state *s = NULL;
            CHECK_OK(lrgd_state_new(m, T, 8, &s));
            if (!s) continue;
            /* without a hook first */
            CHECK_OK(lrgd_eval(s, tok, 12, plain, 1));
            CHECK_OK(lrgd_eval(s, tok + 12, T - 12, plain + 12 * V, 1));
            CHECK_OK(lrgd_state_truncate(s, 0));
            CHECK_OK(lrgd_state_set_hook(s, check_hook, &c, with_att ? LRGD_HOOK_ATT : 0));
            /* 12 tokens = batches of 8 and 4, then one batch of 8 at pos0 = 12 */
            CHECK_OK(lrgd_eval(s, tok, 12, lg, 1));
            CHECK_OK(lrgd_eval(s, tok + 12, T - 12, lg + 12 * V, 1));
            CHECK_MSG(c.calls == 3 * cf->n_layers, "hook called %d times, expected %d", c.calls, 3 * cf->n_layers);
            CHECK(c.bad_shape == 0);
            CHECK_MSG(c.bad_bits == 0, "variant %d: %d hook buffers differ from what the pass used", v, c.bad_bits);
            CHECK(c.bad_att_presence == 0);
            for (int q = 0; q < Q_N; q++)
                CHECK_MSG(c.worst[q] < 1e-5, "variant %d att %d: hook %s rel err %g", v, with_att, Q_NAMES[q], c.worst[q]);
            /* the hook does not change the numbers */
            CHECK(same_bits(lg, plain, (size_t)T * V));
            /* logits = output(norm(x_out of the last layer)) */
            double *ref = malloc(sizeof(double) * (size_t)T * V), xd[256], xn[256];
            for (int t = 0; t < T; t++) {
                for (int j = 0; j < D; j++) xd[j] = c.x_last[(size_t)t * D + j];
                ref_rmsnorm(xn, xd, m->out_norm, D, cf->norm_eps);
                ref_matvec(ref + (size_t)t * V, &m->output, xn);
            }
            CHECK_MSG(rel_err_fd(lg, ref, (size_t)T * V, 1e-3) < 1e-5, "logits vs output(norm(x_out)): %g",
                      rel_err_fd(lg, ref, (size_t)T * V, 1e-3));
            free(ref);

            /* a failing hook aborts lrgd_eval with its status; the cache length is unchanged */
            CHECK_OK(lrgd_state_truncate(s, 0));
            c.calls = 0;
            c.abort_at = 4; /* layer 1 of the second batch of the 12-token call */
            lrgd_status st = lrgd_eval(s, tok, 12, lg, 1);
            CHECK(st == LRGD_E_RUNTIME);
            CHECK_MSG(strstr(lrgd_last_error(), "planted hook failure") && strstr(lrgd_last_error(), "layer 1"),
                      "message: %s", lrgd_last_error());
            CHECK(lrgd_state_pos(s) == 0 && c.calls == 4);
            /* removing the hook: it is not called and everything is as before */
            CHECK_OK(lrgd_state_set_hook(s, NULL, NULL, 0));
            CHECK_OK(lrgd_eval(s, tok, 12, lg, 1));
            CHECK_OK(lrgd_eval(s, tok + 12, T - 12, lg + 12 * V, 1));
            CHECK(c.calls == 4);
            CHECK(same_bits(lg, plain, (size_t)T * V));
            CHECK(lrgd_state_set_hook(s, check_hook, &c, 0x80) == LRGD_E_INVALID);
            /* decoding one token: one call per layer, n = 1 */
            int calls = 0;
            CHECK_OK(lrgd_state_truncate(s, T - 1));
            CHECK_OK(lrgd_state_set_hook(s, count_hook, &calls, 0));
            CHECK_OK(lrgd_eval(s, tok + T - 1, 1, NULL, 0));
            CHECK(calls == cf->n_layers);
            lrgd_state_free(s);
            free(c.k_seen); free(c.v_seen); free(c.x_prev); free(c.x_last); free(lg); free(plain);
            lrgd_model_free(m);
        }
}

/* ---- threads ------------------------------------------------------------ */

static void test_threads(void)
{
    enum { T = 48 };
    lrgd_config c = tiny_config(LRGD_ROPE_NORM, 4, 0, LRGD_ATTN_SOFTMAX);
    c.dim = 128; c.hidden_dim = 344; c.n_heads = 8; c.head_dim = 16; c.vocab_size = 300; c.seq_len = 64;
    lrgd_model *m = NULL;
    CHECK_OK(lrgd_model_new_random(&c, 77, &m));
    if (!m) return;
    int tok[T];
    random_tokens(tok, T, c.vocab_size);
    size_t nl = (size_t)(T + 4) * c.vocab_size;
    float *lg[2][2];
    int saved = lrgd_get_threads();
    for (int th = 0; th < 2; th++)
        for (int rep = 0; rep < 2; rep++) {
            CHECK_OK(lrgd_set_threads(th + 1));
            lg[th][rep] = calloc(nl, sizeof(float));
            lrgd_state *s = NULL;
            CHECK_OK(lrgd_state_new(m, 64, 16, &s));
            if (!s) continue;
            CHECK_OK(lrgd_eval(s, tok, T, lg[th][rep], 1));
            for (int i = 0; i < 4; i++) /* and a few decoding steps */
                CHECK_OK(lrgd_eval(s, tok + i, 1, lg[th][rep] + (size_t)(T + i) * c.vocab_size, 1));
            lrgd_state_free(s);
        }
    CHECK_OK(lrgd_set_threads(saved));
    CHECK_MSG(same_bits(lg[0][0], lg[0][1], nl), "1 thread: two runs differ");
    CHECK_MSG(same_bits(lg[1][0], lg[1][1], nl), "2 threads: two runs differ");
    CHECK_MSG(rel_err_ff(lg[1][0], lg[0][0], nl) < 1e-6, "1 vs 2 threads: rel err %g", rel_err_ff(lg[1][0], lg[0][0], nl));
    for (int i = 0; i < 4; i++) free(lg[i / 2][i % 2]);
    lrgd_model_free(m);
}

/* ---- generation --------------------------------------------------------- */

static int argmax_lowest(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static void test_generate(void)
{
    enum { NP = 5, NN = 20 };
    lrgd_model *m = variant_model(1, 60);
    if (!m) return;
    const int V = m->cfg.vocab_size;
    int prompt[NP], out[NN], out2[NN], n_out = -1, n2 = -1, seq[NP + NN];
    random_tokens(prompt, NP, V);

    /* greedy = argmax of a full recomputation at every step (no cache reuse) */
    lrgd_sampler greedy = {0.0f, 1.0f, 0};
    CHECK_OK(lrgd_generate(m, prompt, NP, NN, &greedy, -1, out, &n_out));
    CHECK(n_out == NN);
    memcpy(seq, prompt, sizeof prompt);
    int agree = 1;
    for (int i = 0; i < NN; i++) {
        float *lg = full_logits(m, seq, NP + i);
        seq[NP + i] = argmax_lowest(lg + (size_t)(NP + i - 1) * V, V);
        agree &= seq[NP + i] == out[i];
        free(lg);
    }
    CHECK_MSG(agree, "greedy generation differs from argmax over full recomputation");
    CHECK_OK(lrgd_generate(m, prompt, NP, NN, NULL, -1, out2, &n2)); /* NULL sampler = greedy */
    CHECK(n2 == NN && !memcmp(out, out2, sizeof out));
    /* eos: stop right after emitting it (included) */
    CHECK_OK(lrgd_generate(m, prompt, NP, NN, &greedy, out[2], out2, &n2));
    int first = 0;
    while (out[first] != out[2]) first++;
    CHECK(n2 == first + 1 && out2[first] == out[2]);
    /* temperature sampling: reproducible by seed, different across seeds */
    lrgd_sampler t1 = {1.5f, 1.0f, 7}, t2 = {1.5f, 1.0f, 8}, tp = {1.0f, 1e-6f, 9};
    CHECK_OK(lrgd_generate(m, prompt, NP, NN, &t1, -1, out, &n_out));
    CHECK_OK(lrgd_generate(m, prompt, NP, NN, &t1, -1, out2, &n2));
    CHECK(n_out == NN && n2 == NN && !memcmp(out, out2, sizeof out));
    CHECK_OK(lrgd_generate(m, prompt, NP, NN, &t2, -1, out2, &n2));
    CHECK(memcmp(out, out2, sizeof out) != 0);
    /* a tiny nucleus keeps only the most probable token: greedy again */
    CHECK_OK(lrgd_generate(m, prompt, NP, NN, &greedy, -1, out, &n_out));
    CHECK_OK(lrgd_generate(m, prompt, NP, NN, &tp, -1, out2, &n2));
    CHECK(!memcmp(out, out2, sizeof out));
    /* n_new 0 generates nothing; limits */
    CHECK_OK(lrgd_generate(m, prompt, NP, 0, &greedy, -1, out, &n_out));
    CHECK(n_out == 0);
    CHECK_OK(lrgd_generate(m, prompt, NP, 64 - NP + 1, &greedy, -1, NULL, &n_out) == LRGD_OK ? LRGD_E_RUNTIME : LRGD_OK);
    lrgd_sampler bad_t = {-1.0f, 1.0f, 0}, bad_p = {1.0f, 0.0f, 0}, nan_t = {NAN, 1.0f, 0};
    CHECK(lrgd_generate(m, prompt, NP, 4, &bad_t, -1, out, &n_out) == LRGD_E_INVALID);
    CHECK(lrgd_generate(m, prompt, NP, 4, &bad_p, -1, out, &n_out) == LRGD_E_INVALID);
    CHECK(lrgd_generate(m, prompt, NP, 4, &nan_t, -1, out, &n_out) == LRGD_E_INVALID);
    CHECK(lrgd_generate(m, prompt, 0, 4, &greedy, -1, out, &n_out) == LRGD_E_INVALID);
    int big[NP];
    memcpy(big, prompt, sizeof big);
    big[3] = V;
    CHECK(lrgd_generate(m, big, NP, 4, &greedy, -1, out, &n_out) == LRGD_E_INVALID);
    CHECK(strstr(lrgd_last_error(), "position 3") != NULL);
    lrgd_model_free(m);

    /* Exactly equal logits (a zero output matrix makes every logit 0, whatever
     * the summation order): greedy takes the lowest id; a nucleus of mass 0.11
     * over 50 equal tokens holds ids 0..5. */
    lrgd_config c = tiny_config(LRGD_ROPE_NORM, 2, 0, LRGD_ATTN_SOFTMAX);
    CHECK_OK(lrgd_model_new_random(&c, 61, &m));
    if (!m) return;
    float *W = (float *)m->output.data;
    memset(W, 0, sizeof(float) * (size_t)V * c.dim);
    int many[59], nm = 0, hist[64] = {0};
    CHECK_OK(lrgd_generate(m, prompt, NP, 59, &greedy, -1, many, &nm));
    int zeros = 0;
    for (int i = 0; i < nm; i++) zeros += many[i] == 0;
    CHECK(nm == 59 && zeros == 59);
    lrgd_sampler nuc = {1.0f, 0.11f, 3}, flat = {1.0f, 1.0f, 3};
    CHECK_OK(lrgd_generate(m, prompt, NP, 59, &nuc, -1, many, &nm));
    int outside = 0;
    for (int i = 0; i < nm; i++) outside += many[i] < 0 || many[i] > 5;
    CHECK_MSG(outside == 0, "%d samples outside the nucleus 0..5", outside);
    CHECK_OK(lrgd_generate(m, prompt, NP, 59, &flat, -1, many, &nm));
    int distinct = 0;
    for (int i = 0; i < nm; i++) distinct += hist[many[i]]++ == 0;
    CHECK_MSG(distinct >= 20, "uniform sampling of 59 draws over 50 ids gave only %d distinct ids", distinct);
    lrgd_model_free(m);
}

/* ---- argument errors ------------------------------------------------------ */

static void test_errors(void)
{
    lrgd_model *m = variant_model(0, 70);
    if (!m) return;
    lrgd_state *s = NULL;
    CHECK(lrgd_state_new(m, 65, 0, &s) == LRGD_E_INVALID && s == NULL); /* beyond seq_len */
    CHECK(strstr(lrgd_last_error(), "65") != NULL);
    CHECK_OK(lrgd_state_new(m, 10, 0, &s));
    if (!s) return;
    int tok[12] = {1, 2, 3, 49, 0, 5, 6, 7, 8, 9, 10, 11};
    float lg[50];
    CHECK_OK(lrgd_eval(s, tok, 2, NULL, 0));
    tok[5] = 50;
    CHECK(lrgd_eval(s, tok, 8, lg, 0) == LRGD_E_INVALID);
    CHECK_MSG(strstr(lrgd_last_error(), "position 7") && strstr(lrgd_last_error(), "id 50"), "message: %s",
              lrgd_last_error());
    tok[5] = -3;
    CHECK(lrgd_eval(s, tok, 8, lg, 0) == LRGD_E_INVALID);
    CHECK(strstr(lrgd_last_error(), "id -3") != NULL);
    CHECK(lrgd_state_pos(s) == 2);
    tok[5] = 5;
    CHECK_OK(lrgd_eval(s, tok, 8, lg, 0));
    CHECK(lrgd_eval(s, tok, 1, lg, 0) == LRGD_E_INVALID); /* n_ctx 10 is full */
    CHECK(strstr(lrgd_last_error(), "context") != NULL);
    CHECK_OK(lrgd_state_truncate(s, 9));
    CHECK(lrgd_eval(s, tok, 2, lg, 0) == LRGD_E_INVALID);
    CHECK(lrgd_eval(s, tok, 0, lg, 0) == LRGD_E_INVALID);
    CHECK(lrgd_eval(s, NULL, 1, lg, 0) == LRGD_E_INVALID);
    CHECK(lrgd_state_pos(s) == 9);
    CHECK_OK(lrgd_eval(s, tok, 1, lg, 0));
    CHECK(lrgd_state_pos(s) == 10);
    CHECK(lrgd_eval(NULL, tok, 1, lg, 0) == LRGD_E_INVALID);
    lrgd_state_free(s);
    lrgd_state_free(NULL);
    lrgd_model_free(m);
}

int main(void)
{
    lrgd_rng_seed(&g_rng, 2024, 0);
    test_rmsnorm();
    test_rope();
    test_attention();
    test_swiglu();
    test_random_model();
    test_forward_vs_reference();
    test_kv_cache();
    test_truncate_copy_prefix();
    test_eval_embd();
    test_hooks();
    test_threads();
    test_generate();
    test_errors();
    return t_finish("test_forward");
}
