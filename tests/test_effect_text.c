/* Effect_D on text LLMs (the text path of lrgd/effect.h) against an
 * independent double-precision forward pass written here from the maths.
 *
 * Tiny random llama models whose vocabularies were learned on Beauty titles
 * (a byte-level BPE without BOS, a SentencePiece one with BOS; softmax and
 * linear attention) are written as GGUF with lrgd's writer and loaded back;
 * the engine comes from lrgd_effect_new_data(model, dataset with titles).
 * For a query and a demonstration built from the textrec's prompts:
 *  - the engine's tokens are the textrec's segments, and log p(y) (the
 *    summed log-likelihood of the target's title tokens after the answer
 *    marker) equals lrgd_textrec_score and the reference;
 *  - g = dl/do_r at the target rows equals central finite differences of
 *    the reference, per layer, head and row;
 *  - Effect_D is the exact first-order change: with the demonstration's keys
 *    and values entering the target rows' attention with weight eps, the
 *    reference's dlogP / Effect -> 1 as eps -> 0 (and for the all-rows form
 *    with every row after T);
 *  - the dot-product form equals its definition computed independently:
 *    sum over layers and target rows of the reference's directional
 *    derivative of log p along d's share of the attention output, built from
 *    the reference's keys and values (dW_d q_r in linear attention, the exact
 *    split lambda_d (o^d - o_r) in softmax);
 *  - over real prompts (lrgd_effect_validity, leave-one-out, similar
 *    candidates) Effect_D agrees with the ground truth dlogP: Spearman's rho
 *    is positive, and one pair's dlogP equals the reference's. */
#include "effect/effect_impl.h"
#include "lrgd/effect.h"
#include "lrgd/textrec.h"
#include "test.h"
#include "text_fixtures.h"

#include <math.h>
#include <unistd.h>

/* ---- the reference: a double-precision forward pass ------------------------ */

typedef struct rlayer {
    double *an, *wq, *wk, *wv, *wo, *fn, *w1, *w2, *w3;
} rlayer;

typedef struct rmodel {
    const lrgd_config *c;
    double *emb, *on, *out;
    rlayer L[8];
} rmodel;

static double *wcopy(const lrgd_weight *w)
{
    CHECK(w->type == LRGD_F32);
    size_t n = (size_t)w->rows * w->cols;
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = ((const float *)w->data)[i];
    return d;
}

static double *vcopy(const float *v, int n)
{
    double *d = malloc((size_t)n * sizeof *d);
    for (int i = 0; i < n; i++) d[i] = v[i];
    return d;
}

static void rmodel_init(rmodel *r, const lrgd_model *m)
{
    memset(r, 0, sizeof *r);
    r->c = &m->cfg;
    int D = m->cfg.dim;
    r->emb = wcopy(&m->tok_embd);
    r->out = m->cfg.tied ? r->emb : wcopy(&m->output);
    r->on = vcopy(m->out_norm, D);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const lrgd_layer *y = &m->layers[l];
        r->L[l] = (rlayer){vcopy(y->attn_norm, D), wcopy(&y->wq), wcopy(&y->wk), wcopy(&y->wv), wcopy(&y->wo),
                           vcopy(y->ffn_norm, D), wcopy(&y->w1), wcopy(&y->w2), wcopy(&y->w3)};
    }
}

static void rmodel_free(rmodel *r)
{
    for (int l = 0; l < r->c->n_layers; l++) {
        rlayer *y = &r->L[l];
        double *p[] = {y->an, y->wq, y->wk, y->wv, y->wo, y->fn, y->w1, y->w2, y->w3};
        for (int i = 0; i < 9; i++) free(p[i]);
    }
    if (r->out != r->emb) free(r->out);
    free(r->emb);
    free(r->on);
}

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

/* What a reference run may change and record. */
typedef struct rin {
    int dl, dr;          /* add delta (n_heads * head_dim) to o of row dr at layer dl (dl < 0: none) */
    const double *delta;
    int n_virt;          /* virtual keys/values (rotated keys) per layer, seen with weight eps by rows >= virt_from */
    double **vk, **vv;
    int virt_from;
    double eps;
    double *ck, *cv;     /* NULL or [L][n][KVd]: keys before RoPE and values of every row */
    double *cq, *co;     /* NULL or [L][n][Qd]: rotated queries and attention outputs */
} rin;

/* sum_j log softmax(logits of row n - k + j)[tgt[j]] over the whole vocabulary */
static double ref_logp(const rmodel *r, const int *tok, int n, const int *tgt, int k, const rin *in)
{
    const lrgd_config *c = r->c;
    int D = c->dim, H = c->n_heads, KVH = c->n_kv_heads, hd = c->head_dim, F = c->hidden_dim, L = c->n_layers,
        V = c->vocab_size;
    int Qd = H * hd, KVd = KVH * hd, nv = in ? in->n_virt : 0;
    double *x = calloc((size_t)n * D, sizeof(double)), *xn = calloc((size_t)D, sizeof(double)),
           *q = calloc((size_t)n * Qd, sizeof(double)), *kk = calloc((size_t)n * KVd, sizeof(double)),
           *v = calloc((size_t)n * KVd, sizeof(double)), *o = calloc((size_t)n * Qd, sizeof(double)),
           *tmp = calloc((size_t)(D + F), sizeof(double)), *g = calloc((size_t)F, sizeof(double)),
           *u = calloc((size_t)F, sizeof(double)), *sc = calloc((size_t)(n + nv + 1), sizeof(double)),
           *lg = calloc((size_t)V, sizeof(double));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < D; j++) x[i * D + j] = r->emb[(size_t)tok[i] * D + j];
    for (int l = 0; l < L; l++) {
        const rlayer *y = &r->L[l];
        for (int i = 0; i < n; i++) {
            r_rmsnorm(xn, x + i * D, y->an, D, c->norm_eps);
            r_matvec(q + i * Qd, y->wq, xn, Qd, D);
            r_matvec(kk + i * KVd, y->wk, xn, KVd, D);
            r_matvec(v + i * KVd, y->wv, xn, KVd, D);
            if (in && in->ck) {
                memcpy(in->ck + ((size_t)l * n + i) * KVd, kk + i * KVd, (size_t)KVd * sizeof(double));
                memcpy(in->cv + ((size_t)l * n + i) * KVd, v + i * KVd, (size_t)KVd * sizeof(double));
            }
            r_rope(q + i * Qd, H, hd, i, c->rope_base, c->rope_type);
            r_rope(kk + i * KVd, KVH, hd, i, c->rope_base, c->rope_type);
            if (in && in->cq) memcpy(in->cq + ((size_t)l * n + i) * Qd, q + i * Qd, (size_t)Qd * sizeof(double));
        }
        for (int h = 0; h < H; h++) {
            int kh = h / (H / KVH);
            for (int i = 0; i < n; i++) {
                int m = in && i >= in->virt_from ? nv : 0; /* virtual entries after the causal ones */
                double mx = -1e300;
                for (int j = 0; j <= i + m; j++) {
                    const double *kj = j <= i ? kk + j * KVd + kh * hd : in->vk[l] + (j - i - 1) * KVd + kh * hd;
                    double s = 0;
                    for (int e = 0; e < hd; e++) s += q[i * Qd + h * hd + e] * kj[e];
                    sc[j] = s / sqrt((double)hd);
                    if (sc[j] > mx) mx = sc[j];
                }
                if (c->attn == LRGD_ATTN_SOFTMAX) {
                    double z = 0;
                    for (int j = 0; j <= i + m; j++) {
                        sc[j] = exp(sc[j] - mx) * (j > i ? in->eps : 1.0);
                        z += sc[j];
                    }
                    for (int j = 0; j <= i + m; j++) sc[j] /= z;
                } else
                    for (int j = i + 1; j <= i + m; j++) sc[j] *= in->eps;
                for (int e = 0; e < hd; e++) {
                    double a = 0;
                    for (int j = 0; j <= i + m; j++) {
                        const double *vj = j <= i ? v + j * KVd + kh * hd : in->vv[l] + (j - i - 1) * KVd + kh * hd;
                        a += sc[j] * vj[e];
                    }
                    o[i * Qd + h * hd + e] = a;
                }
            }
        }
        if (in && in->dl == l)
            for (int e = 0; e < Qd; e++) o[in->dr * Qd + e] += in->delta[e];
        if (in && in->co) memcpy(in->co + (size_t)l * n * Qd, o, (size_t)n * Qd * sizeof(double));
        for (int i = 0; i < n; i++) {
            r_matvec(tmp, y->wo, o + i * Qd, D, Qd);
            for (int j = 0; j < D; j++) x[i * D + j] += tmp[j];
            r_rmsnorm(xn, x + i * D, y->fn, D, c->norm_eps);
            r_matvec(g, y->w1, xn, F, D);
            r_matvec(u, y->w3, xn, F, D);
            for (int j = 0; j < F; j++) g[j] = g[j] / (1 + exp(-g[j])) * u[j];
            r_matvec(tmp, y->w2, g, D, F);
            for (int j = 0; j < D; j++) x[i * D + j] += tmp[j];
        }
    }
    double lp = 0;
    for (int j = 0; j < k; j++) {
        r_rmsnorm(xn, x + (size_t)(n - k + j) * D, r->on, D, c->norm_eps);
        r_matvec(lg, r->out, xn, V, D);
        double mx = lg[0], z = 0;
        for (int t = 1; t < V; t++) mx = lg[t] > mx ? lg[t] : mx;
        for (int t = 0; t < V; t++) z += exp(lg[t] - mx);
        lp += lg[tgt[j]] - mx - log(z);
    }
    free(x); free(xn); free(q); free(kk); free(v); free(o); free(tmp); free(g); free(u); free(sc); free(lg);
    return lp;
}

/* ---- data ------------------------------------------------------------------- */

#define N_ITEMS 40
#define N_USERS 30

/* 30 users over 40 titled items, walks with overlap so that similar
 * demonstrations exist; 6..9 items each. */
static lrgd_dataset *make_dataset(const tf_strs *titles)
{
    int64_t off[N_USERS + 1];
    int32_t items[N_USERS * 10];
    int n = 0;
    for (int u = 0; u < N_USERS; u++) {
        off[u] = n;
        int len = 6 + u % 4, s = (u * 3) % N_ITEMS, d = 1 + u % 3;
        for (int k = 0; k < len; k++) items[n++] = (int32_t)((s + d * k) % N_ITEMS);
    }
    off[N_USERS] = n;
    lrgd_dataset *ds = NULL;
    CHECK_OK(lrgd_dataset_from_sequences(N_USERS, off, items, N_ITEMS, &ds));
    if (!ds) return NULL;
    char buf[65536];
    size_t at = 0;
    for (int i = 0; i < N_ITEMS; i++) at += (size_t)snprintf(buf + at, sizeof buf - at, "%d\t%s\n", i, titles->v[i * 17]);
    CHECK_OK(lrgd_dataset_parse_item_text(ds, buf, at, "items.tsv"));
    return ds;
}

/* ---- the checks ---------------------------------------------------------------- */

/* Keys (rotated as if d ended right before position ins: key i at ins + i -
 * len) and values of demonstration tokens dt[0..len) after T, per layer. */
static void demo_kv(const rmodel *r, const int *instr, int ni, const int *dt, int len, double **vk, double **vv)
{
    const lrgd_config *c = r->c;
    int L = c->n_layers, KVd = c->n_kv_heads * c->head_dim, n = ni + len;
    int *seq = malloc((size_t)n * sizeof *seq);
    memcpy(seq, instr, (size_t)ni * sizeof *seq);
    memcpy(seq + ni, dt, (size_t)len * sizeof *seq);
    double *ck = calloc((size_t)L * n * KVd, sizeof(double)), *cv = calloc((size_t)L * n * KVd, sizeof(double));
    rin cap = {.dl = -1, .ck = ck, .cv = cv, .virt_from = 1 << 30};
    ref_logp(r, seq, n, seq + n - 1, 1, &cap);
    for (int l = 0; l < L; l++) {
        vk[l] = calloc((size_t)len * KVd, sizeof(double));
        vv[l] = calloc((size_t)len * KVd, sizeof(double));
        for (int j = 0; j < len; j++) {
            memcpy(vk[l] + j * KVd, ck + ((size_t)l * n + ni + j) * KVd, (size_t)KVd * sizeof(double));
            memcpy(vv[l] + j * KVd, cv + ((size_t)l * n + ni + j) * KVd, (size_t)KVd * sizeof(double));
            r_rope(vk[l] + j * KVd, c->n_kv_heads, c->head_dim, ni + j - len, c->rope_base, c->rope_type);
        }
    }
    free(ck);
    free(cv);
    free(seq);
}

static void check_model(const char *path, const lrgd_dataset *ds, const char *name)
{
    lrgd_model *m = NULL;
    CHECK_OK(lrgd_model_load(path, &m));
    if (!m) return;
    lrgd_effect *e = NULL;
    CHECK(lrgd_effect_new(m, &e) == LRGD_E_UNSUPPORTED && e == NULL && strstr(lrgd_last_error(), "lrgd_effect_new_data"));
    CHECK_OK(lrgd_effect_new_data(m, ds, &e));
    if (!e) { lrgd_model_free(m); return; }
    const lrgd_config *c = &m->cfg;
    lrgd_textrec *tr = lrgd_effect_textrec(e);
    CHECK(tr != NULL && lrgd_effect_vocab(e) == NULL);
    rmodel r;
    rmodel_init(&r, m);
    int ni = lrgd_effect_n_instr(e), instr[8];
    memcpy(instr, e->instr, sizeof instr);
    printf("%s: %s attention, T = %d token(s), vocabulary %d\n", name, c->attn == LRGD_ATTN_LINEAR ? "linear" : "softmax",
           ni, c->vocab_size);

    /* query 3 items -> target 11; demonstration 5 6 7 -> 8 */
    int32_t qh[] = {2, 9, 4}, dh[] = {5, 6, 7}, y = 11;
    lrgd_demo dm = {dh, 3, 8};
    int *qt = malloc((size_t)c->seq_len * sizeof *qt), *dt = malloc((size_t)c->seq_len * sizeof *dt), nq = 0, nd = 0;
    CHECK_OK(lrgd_effect_query_tokens(e, qh, 3, 0, qt, &nq));
    CHECK_OK(lrgd_effect_demo_tokens(e, &dm, 0, dt, &nd));
    /* the textrec's own segments: the zero-shot prompt is [T | Q]; the
     * demonstration is its segment as the first after T */
    lrgd_prompt *p0 = NULL, *p1 = NULL;
    CHECK_OK(lrgd_textrec_prompt(tr, NULL, 0, qh, 3, &p0));
    CHECK_OK(lrgd_textrec_prompt(tr, &dm, 1, qh, 3, &p1));
    if (p0 && p1) {
        CHECK(p0->n_tokens == ni + nq && !memcmp(p0->tokens + ni, qt, (size_t)nq * sizeof *qt));
        CHECK(p1->segs[ni ? 1 : 0].kind == LRGD_SEG_D && p1->segs[ni ? 1 : 0].end - p1->segs[ni ? 1 : 0].begin == nd &&
              !memcmp(p1->tokens + ni, dt, (size_t)nd * sizeof *dt));
    }
    const int *ct;
    int k;
    CHECK_OK(lrgd_textrec_cand_tokens(tr, y, &ct, &k));
    CHECK_MSG(k >= 2, "%s: the target's title has %d token(s); the test wants several target rows", name, k);

    /* the full sequence [T | Q | c_0..c_{k-2}] the probe runs */
    int n = ni + nq + k - 1, t_row = ni + nq - 1;
    int *full = malloc((size_t)n * sizeof *full);
    memcpy(full, instr, (size_t)ni * sizeof *full);
    memcpy(full + ni, qt, (size_t)nq * sizeof *full);
    memcpy(full + ni + nq, ct, (size_t)(k - 1) * sizeof *full);
    double lp_ref = ref_logp(&r, full, n, ct, k, NULL);

    lrgd_probe *p = NULL;
    CHECK_OK(lrgd_probe_run(e, NULL, NULL, 0, qt, nq, y, &p));
    double lp_tr = NAN, lp_e = NAN;
    if (p0) CHECK_OK(lrgd_textrec_score(tr, p0, &y, 1, &lp_tr));
    CHECK_OK(lrgd_effect_logp(e, full, ni + nq, y, &lp_e));
    if (!p) goto out;
    CHECK(lrgd_probe_n_rows(p) == k && lrgd_probe_n_targets(p) == k && lrgd_probe_n_tokens(p) == n);
    CHECK_MSG(fabs(lrgd_probe_logp(p) - lp_ref) < 1e-4 * fmax(1, fabs(lp_ref)), "%s: probe log p %.7f vs reference %.7f",
              name, lrgd_probe_logp(p), lp_ref);
    CHECK_MSG(fabs(lp_tr - lp_ref) < 1e-4 * fmax(1, fabs(lp_ref)), "%s: textrec score %.7f vs reference %.7f", name,
              lp_tr, lp_ref);
    CHECK_NEAR(lp_e, lrgd_probe_logp(p), 1e-5 * fmax(1, fabs(lp_e)));
    printf("%s: log p(y) over %d title tokens: probe %.6f, textrec %.6f, reference %.6f\n", name, k,
           lrgd_probe_logp(p), lp_tr, lp_ref);

    /* g at every target row, per layer and head, against central differences */
    {
        int H = c->n_heads, hd = c->head_dim, Qd = H * hd;
        double worst = 0, *delta = calloc((size_t)Qd, sizeof(double)), *dd = calloc((size_t)Qd, sizeof(double));
        for (int l = 0; l < c->n_layers; l++)
            for (int h = 0; h < H; h++)
                for (int row = 0; row < k; row += t_full() || k < 2 ? 1 : k - 1) { /* valgrind: first, last */
                    lrgd_rng rg;
                    lrgd_rng_seed(&rg, 3, (uint64_t)((l * 16 + h) * 64 + row));
                    memset(delta, 0, (size_t)Qd * sizeof(double));
                    for (int d = 0; d < hd; d++) delta[h * hd + d] = lrgd_rng_normal(&rg);
                    double step = 1e-4;
                    for (int d = 0; d < Qd; d++) dd[d] = step * delta[d];
                    rin a = {.dl = l, .dr = t_row + row, .delta = dd, .virt_from = 1 << 30};
                    double up = ref_logp(&r, full, n, ct, k, &a);
                    for (int d = 0; d < Qd; d++) dd[d] = -step * delta[d];
                    double dn = ref_logp(&r, full, n, ct, k, &a);
                    double fd = -(up - dn) / (2 * step); /* dl = -dlogp */
                    const float *g = lrgd_probe_grad_row(p, l, h, row);
                    double an = 0, gn = 0;
                    for (int d = 0; d < hd; d++) { an += g[d] * delta[h * hd + d]; gn += fabs(g[d]); }
                    double err = fabs(an - fd) / fmax(fmax(fabs(fd), 1e-3 * gn), 1e-8);
                    if (err > worst) worst = err;
                }
        CHECK_MSG(worst < 2e-3, "%s: g = dl/do_r vs finite differences: worst relative error %.3g", name, worst);
        printf("%s: g at %d target rows vs finite differences: worst relative error %.2e\n", name, k, worst);
        CHECK(lrgd_probe_grad(p, 0, 0) == lrgd_probe_grad_row(p, 0, 0, 0)); /* the answer row */
        free(delta);
        free(dd);
    }

    /* first order, the dot-product form against its definition, and the ground truth of this pair */
    {
        lrgd_store *s = NULL;
        int id = -1;
        CHECK_OK(lrgd_store_new(e, &s));
        if (s) CHECK_OK(lrgd_store_add(s, dt, nd, NULL, &id));
        int L = c->n_layers, H = c->n_heads, hd = c->head_dim, Qd = H * hd, KVd = c->n_kv_heads * hd;
        double *vk[8], *vv[8];
        demo_kv(&r, instr, ni, dt, nd, vk, vv);
        double eff = NAN;
        if (id >= 0) CHECK_OK(lrgd_effect_score(s, p, &id, 1, &eff, NULL));
        /* dlogP(eps) / Effect(eps) -> 1 */
        double ratio = 0, prev = 1e300;
        for (double eps = 1e-2; eps > 1e-5; eps /= 10) {
            rin a = {.dl = -1, .n_virt = nd, .vk = vk, .vv = vv, .virt_from = t_row, .eps = eps};
            double dlogp = ref_logp(&r, full, n, ct, k, &a) - lp_ref, ef = ef_score_scaled(s, id, p, eps);
            ratio = dlogp / ef;
            printf("%s: eps %.0e  dlogP %.6e  Effect %.6e  ratio %.6f\n", name, eps, dlogp, ef, ratio);
            CHECK_MSG(fabs(ratio - 1) < prev || fabs(ratio - 1) < 1e-3, "%s: the ratio error does not shrink", name);
            prev = fabs(ratio - 1);
        }
        CHECK_MSG(fabs(ratio - 1) < 3e-3, "%s: dlogP/Effect_D = %.6f at eps 1e-4 (expected -> 1)", name, ratio);
        /* the all-rows form: d enters every row after T */
        lrgd_probe *pa = NULL;
        CHECK_OK(lrgd_probe_run_ex(e, NULL, NULL, 0, qt, nq, y, LRGD_PROBE_ALL_ROWS, &pa));
        if (pa) {
            CHECK(lrgd_probe_n_rows(pa) == n - ni && lrgd_probe_n_targets(pa) == k);
            CHECK_NEAR(lrgd_probe_logp(pa), lrgd_probe_logp(p), 1e-9);
            /* the error is second order: it falls tenfold per step */
            double ra = 0, pe = 1e300;
            for (double eps = 1e-5; eps > 1e-8; eps /= 10) {
                rin a = {.dl = -1, .n_virt = nd, .vk = vk, .vv = vv, .virt_from = ni, .eps = eps};
                ra = (ref_logp(&r, full, n, ct, k, &a) - lp_ref) / ef_score_scaled(s, id, pa, eps);
                printf("%s: all rows: eps %.0e ratio %.6f\n", name, eps, ra);
                CHECK_MSG(fabs(ra - 1) < pe || fabs(ra - 1) < 1e-4, "%s: all rows: the ratio error does not shrink", name);
                pe = fabs(ra - 1);
            }
            CHECK_MSG(fabs(ra - 1) < 1e-3, "%s: all rows: dlogP/Effect = %.6f at the smallest eps", name, ra);
            lrgd_probe_free(pa);
        }
        /* the definition: -sum_{l, r} g_r . do_r, do_r = d's share of row r's attention output (from the
         * reference's keys, values and queries), g_r . do_r as a directional derivative of the reference */
        double *cq = calloc((size_t)L * n * Qd, sizeof(double)), *co = calloc((size_t)L * n * Qd, sizeof(double));
        double *ck = calloc((size_t)L * n * KVd, sizeof(double)), *cv = calloc((size_t)L * n * KVd, sizeof(double));
        rin cap = {.dl = -1, .cq = cq, .co = co, .ck = ck, .cv = cv, .virt_from = 1 << 30};
        ref_logp(&r, full, n, ct, k, &cap);
        double def = 0, *dlt = calloc((size_t)Qd, sizeof(double)), *dd = calloc((size_t)Qd, sizeof(double));
        for (int l = 0; l < L; l++)
            for (int row = t_row; row < n; row++) {
                for (int h = 0; h < H; h++) {
                    int kh = h / (H / c->n_kv_heads);
                    const double *q = cq + ((size_t)l * n + row) * Qd + h * hd, *o = co + ((size_t)l * n + row) * Qd + h * hd;
                    double *out = dlt + h * hd;
                    memset(out, 0, (size_t)hd * sizeof(double));
                    if (c->attn == LRGD_ATTN_LINEAR) { /* dW_d q = sum_i v_i (k_i . q) / sqrt(hd) */
                        for (int i = 0; i < nd; i++) {
                            double s_ = 0;
                            for (int d = 0; d < hd; d++) s_ += vk[l][i * KVd + kh * hd + d] * q[d];
                            for (int d = 0; d < hd; d++) out[d] += vv[l][i * KVd + kh * hd + d] * s_ / sqrt((double)hd);
                        }
                    } else { /* lambda_d (o^d - o), lambda_d = Z_d / (Z + Z_d) */
                        double Z = 0, Zd = 0, od[64] = {0};
                        for (int j = 0; j <= row; j++) {
                            double kr[64], s_ = 0;
                            memcpy(kr, ck + ((size_t)l * n + j) * KVd, (size_t)KVd * sizeof(double));
                            r_rope(kr, c->n_kv_heads, hd, j, c->rope_base, c->rope_type);
                            for (int d = 0; d < hd; d++) s_ += kr[kh * hd + d] * q[d];
                            Z += exp(s_ / sqrt((double)hd));
                        }
                        for (int i = 0; i < nd; i++) {
                            double s_ = 0;
                            for (int d = 0; d < hd; d++) s_ += vk[l][i * KVd + kh * hd + d] * q[d];
                            double w = exp(s_ / sqrt((double)hd));
                            Zd += w;
                            for (int d = 0; d < hd; d++) od[d] += w * vv[l][i * KVd + kh * hd + d];
                        }
                        for (int d = 0; d < hd; d++) out[d] = Zd / (Z + Zd) * (od[d] / Zd - o[d]);
                    }
                }
                double step = 1e-4;
                for (int d = 0; d < Qd; d++) dd[d] = step * dlt[d];
                rin a = {.dl = l, .dr = row, .delta = dd, .virt_from = 1 << 30};
                double up = ref_logp(&r, full, n, ct, k, &a);
                for (int d = 0; d < Qd; d++) dd[d] = -step * dlt[d];
                double dn = ref_logp(&r, full, n, ct, k, &a);
                def += (up - dn) / (2 * step); /* -g . do = d logp along do */
            }
        CHECK_MSG(fabs(eff - def) < 2e-3 * fmax(fabs(def), 1e-3), "%s: Effect_D %.8g (dot products) vs its definition "
                  "%.8g", name, eff, def);
        printf("%s: Effect_D %.8g, its definition from the reference %.8g\n", name, eff, def);
        /* the ground truth of this pair: [T | d | Q] through the engine and the reference */
        int *g1 = malloc((size_t)(n + nd) * sizeof *g1);
        memcpy(g1, instr, (size_t)ni * sizeof *g1);
        memcpy(g1 + ni, dt, (size_t)nd * sizeof *g1);
        memcpy(g1 + ni + nd, qt, (size_t)nq * sizeof *g1);
        memcpy(g1 + ni + nd + nq, ct, (size_t)(k - 1) * sizeof *g1);
        double lp1 = NAN;
        CHECK_OK(lrgd_effect_logp(e, g1, ni + nd + nq, y, &lp1));
        double lr1 = ref_logp(&r, g1, n + nd, ct, k, NULL);
        CHECK_MSG(fabs(lp1 - lr1) < 1e-4 * fmax(1, fabs(lr1)), "%s: log p with the demonstration %.7f vs %.7f", name, lp1,
                  lr1);
        printf("%s: this pair: dlogP %.6f (reference %.6f), Effect_D %.6f\n", name, lp1 - lp_e, lr1 - lp_ref, eff);
        free(g1);
        free(cq); free(co); free(ck); free(cv); free(dlt); free(dd);
        for (int l = 0; l < L; l++) { free(vk[l]); free(vv[l]); }
        lrgd_store_free(s);
    }

    /* real prompts: the validity run on the leave-one-out split */
    {
        lrgd_split *sp = NULL;
        CHECK_OK(lrgd_split_loo(ds, &sp));
        lrgd_validity_opts vo;
        lrgd_validity_opts_init(&vo);
        vo.n_users = 10;
        vo.pool = 8;
        vo.max_hist = 4;
        vo.demo_hist = 4;
        lrgd_validity *V = NULL;
        if (sp) CHECK_OK(lrgd_effect_validity(m, sp, &vo, &V));
        if (V) {
            CHECK_MSG(V->n_pairs >= 40, "%s: only %d pairs", name, V->n_pairs);
            CHECK_MSG(V->rho > 0, "%s: Spearman rho of Effect_D vs dlogP is %.3f", name, V->rho);
            printf("%s: validity over %d users, %d pairs: Spearman rho %.3f (all rows %.3f, per token %.3f), "
                   "Pearson %.3f\n", name, V->n_users, V->n_pairs, V->rho, V->rho_all_rows, V->rho_per_token, V->pearson);
        }
        lrgd_validity_free(V);
        lrgd_split_free(sp);
    }
out:
    free(full);
    free(qt);
    free(dt);
    lrgd_prompt_free(p0);
    lrgd_prompt_free(p1);
    lrgd_probe_free(p);
    rmodel_free(&r);
    lrgd_effect_free(e);
    lrgd_model_free(m);
}

/*   test_effect_text                          the checks above
 *   test_effect_text --make-models DIR TSV    only write the three models (vocabularies learned on
 *                                             TSV's titles) into DIR, for tests/cli_text_effect.sh */
int main(int argc, char **argv)
{
    char dir[3000];
    lrgd_set_quiet(1); /* no progress lines from the validity runs */
    int make_only = argc == 4 && !strcmp(argv[1], "--make-models");
    if (argc != 1 && !make_only) {
        fprintf(stderr, "usage: %s [--make-models DIR ITEMS_TSV]\n", argv[0]);
        return 2;
    }
    if (make_only) snprintf(dir, sizeof dir, "%s", argv[2]);
    else {
        snprintf(dir, sizeof dir, "/tmp/lrgd_test_effect_text_XXXXXX");
        if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    }
    tf_strs titles = {0};
    if (tf_read_titles(make_only ? argv[3] : t_shared("datasets/amazon/Beauty.items.tsv"), 1000, &titles) != LRGD_OK) {
        fprintf(stderr, "%s\n", lrgd_last_error());
        return 1;
    }
    lrgd_dataset *ds = make_only ? NULL : make_dataset(&titles);
    tf_vocab bpe, spm;
    tf_bpe_vocab(&titles, t_size(1500, 400), "gpt-2", 0, &bpe); /* valgrind: smaller vocabularies */
    tf_spm_vocab(&titles, t_size(1500, 400), -1, &spm);
    lrgd_config c = tf_small_config();
    c.seq_len = 1024;
    struct { const char *file; tf_vocab *v; lrgd_attn_mode attn; lrgd_rope_type rope; } models[] = {
        {"bpe-softmax.gguf", &bpe, LRGD_ATTN_SOFTMAX, LRGD_ROPE_NORM},
        {"spm-softmax-neox.gguf", &spm, LRGD_ATTN_SOFTMAX, LRGD_ROPE_NEOX},
        {"bpe-linear.gguf", &bpe, LRGD_ATTN_LINEAR, LRGD_ROPE_NORM},
    };
    for (size_t i = 0; i < sizeof models / sizeof models[0] && (ds || make_only); i++) {
        char path[3100];
        snprintf(path, sizeof path, "%s/%s", dir, models[i].file);
        c.attn = models[i].attn;
        c.rope_type = models[i].rope;
        CHECK_OK(tf_write_text_model(&models[i].v->spec, &c, 21 + i, path));
        if (make_only) continue;
        check_model(path, ds, models[i].file);
        remove(path);
    }
    lrgd_dataset_free(ds);
    tf_vocab_free(&bpe);
    tf_vocab_free(&spm);
    tf_strs_free(&titles);
    if (make_only) return t_finish("test_effect_text --make-models");
    rmdir(dir);
    return t_finish("test_effect_text");
}
