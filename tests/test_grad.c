/* Gradient checks for the training model. An independent double-precision
 * reference of the whole network (written here from the maths, sharing no
 * code with src/) gives the loss; central finite differences of it are
 * compared with the analytic float32 gradients of every parameter tensor and
 * of the input embeddings, for softmax and linear attention, both with GQA.
 * A second check runs finite differences on the float model itself with
 * dropout on, which covers the dropout backward. */
#include "lrgd/train.h"
#include "model/model_impl.h"
#include "train/train_impl.h"
#include "test.h"

#include <math.h>

/* ---- the reference ------------------------------------------------------- */

typedef struct ref {
    const lrgd_config *c;
    int n_items;
    const lrgd_tmodel *t;
    const int *pos, *vis; /* NULL: positions 0.. and the causal mask; else per row (see tm_forward_ex) */
} ref;

static const double *W(const ref *r, const double *p, int tensor)
{
    lrgd_tensor_info ti;
    lrgd_tmodel_tensor(r->t, tensor, &ti);
    return p + ti.offset;
}

static void rmsnorm(double *o, const double *x, const double *w, int d, double eps)
{
    double ss = 0;
    for (int j = 0; j < d; j++) ss += x[j] * x[j];
    double r = 1.0 / sqrt(ss / d + eps);
    for (int j = 0; j < d; j++) o[j] = x[j] * r * w[j];
}

static void matvec(double *y, const double *Wm, const double *x, int rows, int cols)
{
    for (int i = 0; i < rows; i++) {
        double s = 0;
        for (int j = 0; j < cols; j++) s += Wm[(size_t)i * cols + j] * x[j];
        y[i] = s;
    }
}

static void rope_ref(double *x, int nh, int hd, int pos, double base)
{
    for (int h = 0; h < nh; h++)
        for (int j = 0; j < hd / 2; j++) {
            double th = pos * pow(base, -2.0 * j / hd);
            double a = x[h * hd + 2 * j], b = x[h * hd + 2 * j + 1];
            x[h * hd + 2 * j] = a * cos(th) - b * sin(th);
            x[h * hd + 2 * j + 1] = a * sin(th) + b * cos(th);
        }
}

/* Mean cross-entropy over the target rows, softmax over item tokens only. */
static double ref_loss(const ref *r, const double *p, const double *embd, const int *tok, const int *off, int n_seq,
                       const int *tgt)
{
    const lrgd_config *c = r->c;
    int D = c->dim, H = c->n_heads, KVH = c->n_kv_heads, hd = c->head_dim, F = c->hidden_dim;
    int Qd = H * hd, KVd = KVH * hd, L = c->n_layers;
    double loss = 0;
    int n_t = 0;
    for (int s = 0; s < n_seq; s++) {
        int T = off[s + 1] - off[s];
        double *x = calloc((size_t)T * D, sizeof(double)), *xn = calloc((size_t)T * D, sizeof(double)),
               *q = calloc((size_t)T * Qd, sizeof(double)), *k = calloc((size_t)T * KVd, sizeof(double)),
               *v = calloc((size_t)T * KVd, sizeof(double)), *o = calloc((size_t)T * Qd, sizeof(double)),
               *tmp = calloc((size_t)(D > F ? D : F) * 2, sizeof(double)), *g = calloc((size_t)F, sizeof(double)),
               *u = calloc((size_t)F, sizeof(double)), *sc = calloc((size_t)T, sizeof(double));
        for (int i = 0; i < T; i++)
            for (int j = 0; j < D; j++)
                x[i * D + j] = embd ? embd[(size_t)(off[s] + i) * D + j] : W(r, p, 0)[(size_t)tok[off[s] + i] * D + j];
        for (int l = 0; l < L; l++) {
            int b0 = 1 + 9 * l;
            for (int i = 0; i < T; i++) {
                rmsnorm(xn + i * D, x + i * D, W(r, p, b0 + 0), D, c->norm_eps);
                matvec(q + i * Qd, W(r, p, b0 + 1), xn + i * D, Qd, D);
                matvec(k + i * KVd, W(r, p, b0 + 2), xn + i * D, KVd, D);
                matvec(v + i * KVd, W(r, p, b0 + 3), xn + i * D, KVd, D);
                int pi = r->pos ? r->pos[off[s] + i] : i;
                rope_ref(q + i * Qd, H, hd, pi, c->rope_base);
                rope_ref(k + i * KVd, KVH, hd, pi, c->rope_base);
            }
            for (int h = 0; h < H; h++) {
                int kh = h / (H / KVH);
                for (int i = 0; i < T; i++) {
                    /* keys seen: 0..lim and the row itself */
                    int lim = r->vis ? r->vis[off[s] + i] : i - 1;
                    double mx = -1e300, z = 0;
                    for (int j = 0; j <= i; j++) {
                        sc[j] = 0;
                        if (j > lim && j != i) continue;
                        double d = 0;
                        for (int e = 0; e < hd; e++) d += q[i * Qd + h * hd + e] * k[j * KVd + kh * hd + e];
                        sc[j] = d / sqrt((double)hd);
                        if (sc[j] > mx) mx = sc[j];
                    }
                    if (c->attn == LRGD_ATTN_SOFTMAX) {
                        for (int j = 0; j <= i; j++)
                            if (j <= lim || j == i) z += (sc[j] = exp(sc[j] - mx));
                        for (int j = 0; j <= i; j++) sc[j] /= z;
                    }
                    for (int e = 0; e < hd; e++) {
                        double a = 0;
                        for (int j = 0; j <= i; j++) a += sc[j] * v[j * KVd + kh * hd + e];
                        o[i * Qd + h * hd + e] = a;
                    }
                }
            }
            for (int i = 0; i < T; i++) {
                matvec(tmp, W(r, p, b0 + 4), o + i * Qd, D, Qd);
                for (int j = 0; j < D; j++) x[i * D + j] += tmp[j];
                rmsnorm(xn + i * D, x + i * D, W(r, p, b0 + 5), D, c->norm_eps);
                matvec(g, W(r, p, b0 + 6), xn + i * D, F, D);
                matvec(u, W(r, p, b0 + 8), xn + i * D, F, D);
                for (int j = 0; j < F; j++) g[j] = g[j] / (1 + exp(-g[j])) * u[j];
                matvec(tmp, W(r, p, b0 + 7), g, D, F);
                for (int j = 0; j < D; j++) x[i * D + j] += tmp[j];
            }
        }
        for (int i = 0; i < T; i++) {
            int y = tgt[off[s] + i];
            if (y < 0) continue;
            rmsnorm(xn, x + i * D, W(r, p, 1 + 9 * L), D, c->norm_eps);
            double mx = -1e300, z = 0, ly = 0;
            double *lg = calloc((size_t)r->n_items, sizeof(double));
            for (int it = 0; it < r->n_items; it++) {
                const double *e = W(r, p, 0) + (size_t)(LRGD_N_SPECIAL + it) * D;
                double d = 0;
                for (int j = 0; j < D; j++) d += e[j] * xn[j];
                lg[it] = d;
                if (d > mx) mx = d;
            }
            for (int it = 0; it < r->n_items; it++) z += exp(lg[it] - mx);
            ly = lg[y - LRGD_N_SPECIAL];
            loss += mx + log(z) - ly;
            n_t++;
            free(lg);
        }
        free(x); free(xn); free(q); free(k); free(v); free(o); free(tmp); free(g); free(u); free(sc);
    }
    return loss / n_t;
}

/* ---- the checks ---------------------------------------------------------- */

static lrgd_config tiny(lrgd_attn_mode mode, int n_items)
{
    lrgd_config c = {0};
    c.dim = 16;
    c.hidden_dim = 24;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2; /* GQA: two query heads per kv head */
    c.head_dim = 4;
    c.vocab_size = LRGD_N_SPECIAL + n_items;
    c.seq_len = 32;
    c.norm_eps = 1e-5f;
    c.rope_base = 10000.0f;
    c.rope_type = LRGD_ROPE_NORM;
    c.attn = mode;
    c.tied = 1;
    return c;
}

/* three sequences of different lengths: BOS, items, ANS; targets on items */
static const int OFF[] = {0, 7, 10, 19};
static const int TOK[] = {1, 5, 9, 12, 3, 20, 3, /**/ 1, 6, 3, /**/ 1, 7, 8, 2, 10, 11, 3, 25, 3};
static const int TGT[] = {-1, 9, 12, 17, -1, 22, 14, /**/ -1, -1, 19, /**/ -1, 8, 15, -1, 11, 16, -1, 6, 21};

static void perturb_norms(lrgd_tmodel *t, uint64_t seed)
{
    /* norm weights start at 1: move them so their gradients are generic */
    lrgd_rng r;
    lrgd_rng_seed(&r, seed, 99);
    for (int i = 0; i < lrgd_tmodel_n_tensors(t); i++) {
        lrgd_tensor_info ti;
        lrgd_tmodel_tensor(t, i, &ti);
        float *w = lrgd_tmodel_params(t) + ti.offset;
        if (ti.rows == 1)
            for (int j = 0; j < ti.cols; j++) w[j] = (float)(1.0 + 0.3 * lrgd_rng_normal(&r));
        else /* and make the weights larger than the default 0.02 so every path matters */
            for (size_t j = 0; j < (size_t)ti.rows * ti.cols; j++) w[j] *= 10.0f;
    }
}

/* worst relative error of analytic vs numeric over one tensor; the
 * denominator has a floor at 1e-3 of the tensor's largest gradient so that
 * entries that are zero up to rounding do not dominate */
static double rel_err(const float *an, const double *nu, size_t n)
{
    double mx = 0, worst = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(nu[i]));
    for (size_t i = 0; i < n; i++) {
        double den = fmax(fmax(fabs(an[i]), fabs(nu[i])), 1e-3 * mx + 1e-12);
        worst = fmax(worst, fabs(an[i] - nu[i]) / den);
    }
    return worst;
}

/* A second layout: answer probes. Sequence 0 is BOS a b c d ANS then three
 * probes (ANS tokens) that see BOS..a, BOS..b, BOS..c (and themselves) at
 * the positions an ANS would have there, each predicting the next item;
 * sequence 1 is plain. */
static const int P_OFF[] = {0, 9, 14};
static const int P_TOK[] = {1, 5, 9, 12, 20, 3, 3, 3, 3, /**/ 1, 7, 8, 10, 3};
static const int P_TGT[] = {-1, 9, 12, 20, -1, 14, 9, 12, 20, /**/ -1, 8, 10, -1, 6};
static const int P_POS[] = {0, 1, 2, 3, 4, 5, 2, 3, 4, /**/ 0, 1, 2, 3, 4};
static const int P_VIS[] = {-1, 0, 1, 2, 3, 4, 1, 2, 3, /**/ -1, 0, 1, 2, 3};

typedef struct layout {
    const char *name;
    int n_seq;
    const int *off, *tok, *tgt, *pos, *vis;
} layout;

static const layout L_CAUSAL = {"causal", 3, OFF, TOK, TGT, NULL, NULL};
static const layout L_PROBES = {"probes", 2, P_OFF, P_TOK, P_TGT, P_POS, P_VIS};

static void check_mode(lrgd_attn_mode mode, const char *mname, const layout *L)
{
    char name[64];
    snprintf(name, sizeof name, "%s, %s", mname, L->name);
    const int *OFF_ = L->off, *TOK_ = L->tok, *TGT_ = L->tgt;
    int NS = L->n_seq;
    int n_items = 23;
    lrgd_config c = tiny(mode, n_items);
    lrgd_tmodel *t;
    CHECK_OK(lrgd_tmodel_new(&c, 7, &t));
    if (!t) return;
    perturb_norms(t, 3);
    size_t np = lrgd_tmodel_n_params(t);
    int n_tok = OFF_[NS], D = c.dim;
    lrgd_tbatch b = {NS, OFF_, TOK_, NULL, TGT_};

    /* analytic */
    lrgd_tmodel_zero_grad(t);
    double loss_f;
    float *d_embd = calloc((size_t)n_tok * D, sizeof(float));
    CHECK_OK(tm_grad_ex(t, &b, L->pos, L->vis, 0, &loss_f, d_embd));

    /* reference loss agrees with the float forward */
    ref r = {&c, n_items, t, L->pos, L->vis};
    double *p = malloc(np * sizeof(double));
    for (size_t i = 0; i < np; i++) p[i] = lrgd_tmodel_params(t)[i];
    double loss_d = ref_loss(&r, p, NULL, TOK_, OFF_, NS, TGT_);
    printf("%s: loss float %.9f, reference %.9f\n", name, loss_f, loss_d);
    CHECK_NEAR(loss_f, loss_d, 1e-5 * fabs(loss_d));

    /* finite differences of the reference: every element of small tensors,
     * 96 random elements of each larger one (keeps the test fast under ASan) */
    double h = 1e-5;
    double *num = calloc(np, sizeof(double));
    unsigned char *chk = calloc(np, 1);
    lrgd_rng rr;
    lrgd_rng_seed(&rr, 5, 0);
    for (int i = 0; i < lrgd_tmodel_n_tensors(t); i++) {
        lrgd_tensor_info ti;
        lrgd_tmodel_tensor(t, i, &ti);
        size_t n = (size_t)ti.rows * ti.cols;
        if (n <= 128) memset(chk + ti.offset, 1, n);
        else
            for (int z = 0; z < 96; z++) chk[ti.offset + lrgd_rng_below(&rr, (uint32_t)n)] = 1;
    }
    float *an = malloc(np * sizeof(float));
    for (size_t i = 0; i < np; i++) an[i] = chk[i] ? lrgd_tmodel_grads(t)[i] : 0.0f;
    for (size_t i = 0; i < np; i++) {
        if (!chk[i]) continue;
        double keep = p[i];
        p[i] = keep + h;
        double lp = ref_loss(&r, p, NULL, TOK_, OFF_, NS, TGT_);
        p[i] = keep - h;
        double lm = ref_loss(&r, p, NULL, TOK_, OFF_, NS, TGT_);
        p[i] = keep;
        num[i] = (lp - lm) / (2 * h);
    }
    double worst_all = 0;
    for (int i = 0; i < lrgd_tmodel_n_tensors(t); i++) {
        lrgd_tensor_info ti;
        lrgd_tmodel_tensor(t, i, &ti);
        size_t n = (size_t)ti.rows * ti.cols;
        double e = rel_err(an + ti.offset, num + ti.offset, n);
        double gmax = 0;
        for (size_t j = 0; j < n; j++) gmax = fmax(gmax, fabs(num[ti.offset + j]));
        printf("  %-24s worst rel err %.2e  (max |grad| %.2e)\n", ti.name, e, gmax);
        CHECK_MSG(e <= 1e-3, "%s %s: relative error %.3e", name, ti.name, e);
        CHECK_MSG(gmax > 1e-6, "%s %s: gradient is zero everywhere, the check would be empty", name, ti.name);
        worst_all = fmax(worst_all, e);
    }
    printf("  worst over all parameters: %.2e\n", worst_all);

    /* input embeddings: feed embeddings instead of tokens */
    double *emb = malloc((size_t)n_tok * D * sizeof(double));
    float *embf = malloc((size_t)n_tok * D * sizeof(float));
    for (int i = 0; i < n_tok; i++)
        for (int j = 0; j < D; j++) {
            embf[i * D + j] = lrgd_tmodel_params(t)[(size_t)TOK_[i] * D + j] + 0.05f * (float)((i * 7 + j * 3) % 5 - 2);
            emb[i * D + j] = embf[i * D + j];
        }
    lrgd_tbatch be = {NS, OFF_, TOK_, embf, TGT_};
    lrgd_tmodel_zero_grad(t);
    CHECK_OK(tm_grad_ex(t, &be, L->pos, L->vis, 0, &loss_f, d_embd));
    double *nume = malloc((size_t)n_tok * D * sizeof(double));
    for (int i = 0; i < n_tok * D; i++) {
        double keep = emb[i];
        emb[i] = keep + h;
        double lp = ref_loss(&r, p, emb, TOK_, OFF_, NS, TGT_);
        emb[i] = keep - h;
        double lm = ref_loss(&r, p, emb, TOK_, OFF_, NS, TGT_);
        emb[i] = keep;
        nume[i] = (lp - lm) / (2 * h);
    }
    double e = rel_err(d_embd, nume, (size_t)n_tok * D);
    printf("  %-24s worst rel err %.2e\n", "input embeddings", e);
    CHECK_MSG(e <= 1e-3, "%s input embeddings: relative error %.3e", name, e);
    /* with embeddings given, the table gets only the output-layer gradient:
     * rows of special tokens (never predicted) stay zero */
    float *gt = lrgd_tmodel_grads(t);
    double sp = 0;
    for (int j = 0; j < LRGD_N_SPECIAL * D; j++) sp += fabs(gt[j]);
    CHECK(sp == 0);

    free(p); free(num); free(chk); free(an); free(emb); free(embf); free(nume); free(d_embd);
    lrgd_tmodel_free(t);
}

/* Dropout on: finite differences of the float model itself (the masks are a
 * function of seed and step, so the loss is a fixed function of the weights). */
static void check_dropout(lrgd_attn_mode mode, const char *name, int sampled)
{
    lrgd_config c = tiny(mode, 23);
    lrgd_tmodel *t;
    CHECK_OK(lrgd_tmodel_new(&c, 11, &t));
    if (!t) return;
    perturb_norms(t, 5);
    lrgd_tmodel_set_dropout(t, 0.3f, 1234);
    lrgd_tmodel_set_sampled(t, sampled);
    lrgd_tmodel_set_step(t, 17);
    lrgd_tbatch b = {3, OFF, TOK, NULL, TGT};
    lrgd_tmodel_zero_grad(t);
    double l0, l1, lp, lm;
    CHECK_OK(lrgd_tmodel_grad(t, &b, 1, &l0, NULL));
    CHECK_OK(lrgd_tmodel_forward(t, &b, 1, &l1, NULL, NULL));
    CHECK(l0 == l1); /* same masks in both passes */
    double l_nodrop;
    CHECK_OK(lrgd_tmodel_forward(t, &b, 0, &l_nodrop, NULL, NULL));
    CHECK(l_nodrop != l0); /* dropout changed something */
    float *P = lrgd_tmodel_params(t), *G = lrgd_tmodel_grads(t);
    float h = 1e-2f;
    double worst = 0;
    for (int i = 0; i < lrgd_tmodel_n_tensors(t); i++) {
        lrgd_tensor_info ti;
        lrgd_tmodel_tensor(t, i, &ti);
        size_t n = (size_t)ti.rows * ti.cols;
        /* the 12 largest-gradient entries of the tensor */
        float *an = malloc(12 * sizeof(float));
        double *nu = malloc(12 * sizeof(double));
        size_t *idx = malloc(12 * sizeof(size_t));
        int m = 0;
        for (size_t j = 0; j < n && m < 12; j++) {
            size_t best = 0;
            float bv = -1;
            for (size_t q = 0; q < n; q++) {
                int used = 0;
                for (int z = 0; z < m; z++) used |= idx[z] == q;
                if (!used && fabsf(G[ti.offset + q]) > bv) { bv = fabsf(G[ti.offset + q]); best = q; }
            }
            idx[m++] = best;
        }
        for (int z = 0; z < m; z++) {
            float *w = P + ti.offset + idx[z], keep = *w;
            *w = keep + h;
            lrgd_tmodel_forward(t, &b, 1, &lp, NULL, NULL);
            *w = keep - h;
            lrgd_tmodel_forward(t, &b, 1, &lm, NULL, NULL);
            *w = keep;
            nu[z] = (lp - lm) / (2 * h);
            an[z] = G[ti.offset + idx[z]];
        }
        double e = rel_err(an, nu, (size_t)m);
        worst = fmax(worst, e);
        CHECK_MSG(e <= 2e-2, "%s dropout %s: relative error %.3e", name, ti.name, e);
        free(an); free(nu); free(idx);
    }
    printf("%s with dropout 0.3%s (float finite differences, top-12 entries per tensor): worst rel err %.2e\n", name,
           sampled ? " and sampled softmax (8 of 23 items)" : "", worst);
    if (sampled) { /* the sampled loss differs from the full one, and only while training */
        double full;
        CHECK_OK(lrgd_tmodel_forward(t, &b, 0, &full, NULL, NULL));
        lrgd_tmodel_set_sampled(t, 0);
        double full_train;
        CHECK_OK(lrgd_tmodel_forward(t, &b, 1, &full_train, NULL, NULL));
        CHECK(full_train != l0);
        CHECK(full == l_nodrop);
    }
    lrgd_tmodel_free(t);
}

/* Targets must be item tokens; bad batches are refused with a message. */
static void check_bad_batches(void)
{
    lrgd_config c = tiny(LRGD_ATTN_SOFTMAX, 23);
    lrgd_tmodel *t;
    CHECK_OK(lrgd_tmodel_new(&c, 1, &t));
    if (!t) return;
    int off[] = {0, 3}, tok[] = {1, 6, 3}, bad_tgt[] = {-1, 2, 7}, bad_tok[] = {1, 99, 3};
    lrgd_tbatch b = {1, off, tok, NULL, bad_tgt};
    double l;
    CHECK(lrgd_tmodel_grad(t, &b, 0, &l, NULL) == LRGD_E_INVALID);
    CHECK(strstr(lrgd_last_error(), "not an item token") != NULL);
    lrgd_tbatch b2 = {1, off, bad_tok, NULL, NULL};
    CHECK(lrgd_tmodel_forward(t, &b2, 0, &l, NULL, NULL) == LRGD_E_INVALID);
    int long_off[] = {0, 40};
    int many[40] = {0};
    lrgd_tbatch b3 = {1, long_off, many, NULL, NULL};
    CHECK(lrgd_tmodel_forward(t, &b3, 0, &l, NULL, NULL) == LRGD_E_INVALID);
    lrgd_tmodel_free(t);
}

/* The same gradients with 2 threads as with 1 (the thread split must not
 * change the maths; OpenBLAS may reorder sums, hence the tolerance). */
static void check_threads(void)
{
    lrgd_config c = tiny(LRGD_ATTN_SOFTMAX, 23);
    lrgd_tmodel *t;
    CHECK_OK(lrgd_tmodel_new(&c, 21, &t));
    if (!t) return;
    perturb_norms(t, 8);
    lrgd_tmodel_set_dropout(t, 0.2f, 77);
    lrgd_tbatch b = {3, OFF, TOK, NULL, TGT};
    size_t np = lrgd_tmodel_n_params(t);
    float *g1 = malloc(np * sizeof(float));
    double l1, l2;
    lrgd_set_threads(1);
    lrgd_tmodel_zero_grad(t);
    CHECK_OK(lrgd_tmodel_grad(t, &b, 1, &l1, NULL));
    memcpy(g1, lrgd_tmodel_grads(t), np * sizeof(float));
    lrgd_set_threads(2);
    lrgd_tmodel_zero_grad(t);
    CHECK_OK(lrgd_tmodel_grad(t, &b, 1, &l2, NULL));
    double worst = 0;
    for (size_t i = 0; i < np; i++) worst = fmax(worst, fabs(g1[i] - lrgd_tmodel_grads(t)[i]));
    printf("1 vs 2 threads: loss %.9f vs %.9f, max |grad difference| %.2e\n", l1, l2, worst);
    CHECK_NEAR(l1, l2, 1e-6);
    CHECK(worst < 1e-5);
    lrgd_set_threads(1);
    free(g1);
    lrgd_tmodel_free(t);
}

/* The training forward and the inference engine (lrgd_eval, KV cache, one
 * sequence at a time) give the same logits on the same weights: the trainer
 * and the engine share one model. */
static void check_engine(lrgd_attn_mode mode, const char *name)
{
    lrgd_config c = tiny(mode, 23);
    lrgd_tmodel *t;
    CHECK_OK(lrgd_tmodel_new(&c, 31, &t));
    if (!t) return;
    perturb_norms(t, 9);
    lrgd_tbatch b = {3, OFF, TOK, NULL, NULL};
    int N = OFF[3], D = c.dim, V = c.vocab_size;
    float *hid = malloc((size_t)N * D * sizeof(float)), *lt = malloc((size_t)N * V * sizeof(float)),
          *le = malloc((size_t)N * V * sizeof(float));
    CHECK_OK(lrgd_tmodel_forward(t, &b, 0, NULL, NULL, hid));
    /* training logits over the whole vocabulary: hidden . E^T (tied) */
    const float *E = lrgd_tmodel_params(t);
    for (int i = 0; i < N; i++)
        for (int v = 0; v < V; v++) {
            double s = 0;
            for (int j = 0; j < D; j++) s += (double)hid[i * D + j] * E[v * D + j];
            lt[i * V + v] = (float)s;
        }
    const lrgd_model *m = lrgd_tmodel_model(t);
    for (int sq = 0; sq < 3; sq++) {
        lrgd_state *st = NULL;
        CHECK_OK(lrgd_state_new(m, 32, 8, &st));
        if (!st) break;
        int n = OFF[sq + 1] - OFF[sq];
        /* in two pieces, so the KV cache path is used too */
        int n1 = n / 2;
        CHECK_OK(lrgd_eval(st, TOK + OFF[sq], n1, le + (size_t)OFF[sq] * V, 1));
        CHECK_OK(lrgd_eval(st, TOK + OFF[sq] + n1, n - n1, le + (size_t)(OFF[sq] + n1) * V, 1));
        lrgd_state_free(st);
    }
    double worst = 0, mx = 0;
    for (int i = 0; i < N * V; i++) {
        worst = fmax(worst, fabs(lt[i] - le[i]));
        mx = fmax(mx, fabs(le[i]));
    }
    printf("%s: training forward vs lrgd_eval logits: max abs diff %.2e (max |logit| %.2f)\n", name, worst, mx);
    CHECK(mx > 0.1);
    CHECK(worst <= 1e-4 * fmax(1.0, mx));
    free(hid); free(lt); free(le);
    lrgd_tmodel_free(t);
}

/* The classifier's vectorizable exp against libm, and NaN in -> NaN out. */
static void check_exp(void)
{
    double worst = 0;
    for (float x = -87.0f; x <= 0.0f; x += 0.00731f) {
        double r = exp((double)x);
        worst = fmax(worst, fabs(tm_expf(x) - r) / r);
    }
    printf("tm_expf: max relative error on [-87, 0]: %.2e\n", worst);
    CHECK(worst < 5e-7);
    CHECK(isnan(tm_expf(NAN)));
    CHECK(tm_expf(-1000.0f) >= 0 && tm_expf(-1000.0f) < 1e-37f);
}

/* Each probe of the probe layout gives exactly the logits that the
 * inference engine gives at the final ANS of the prompt [BOS .. item ANS]
 * it stands for: the probes are separate prompts sharing one pass. */
static void check_probes(lrgd_attn_mode mode, const char *name)
{
    lrgd_config c = tiny(mode, 23);
    lrgd_tmodel *t;
    CHECK_OK(lrgd_tmodel_new(&c, 41, &t));
    if (!t) return;
    perturb_norms(t, 4);
    int N = P_OFF[2], D = c.dim, V = c.vocab_size;
    lrgd_tbatch b = {2, P_OFF, P_TOK, NULL, NULL};
    float *hid = malloc((size_t)N * D * sizeof(float)), *le = malloc((size_t)V * sizeof(float));
    CHECK_OK(tm_forward_ex(t, &b, P_POS, P_VIS, 0, NULL, NULL, hid));
    const float *E = lrgd_tmodel_params(t);
    double worst = 0;
    int rows[4] = {6, 7, 8, 5}; /* probes after a, b, c, and the real ANS after d */
    for (int k = 0; k < 4; k++) {
        int r = rows[k], n_prefix = P_VIS[r] + 1; /* BOS .. the item the probe follows */
        int prompt[8];
        memcpy(prompt, P_TOK, (size_t)n_prefix * sizeof(int));
        prompt[n_prefix] = LRGD_TOK_ANS;
        lrgd_state *st = NULL;
        CHECK_OK(lrgd_state_new(lrgd_tmodel_model(t), 16, 16, &st));
        if (!st) break;
        CHECK_OK(lrgd_eval(st, prompt, n_prefix + 1, le, 0));
        lrgd_state_free(st);
        for (int v = 0; v < V; v++) {
            double sc = 0;
            for (int j = 0; j < D; j++) sc += (double)hid[r * D + j] * E[v * D + j];
            worst = fmax(worst, fabs(sc - le[v]));
        }
    }
    printf("%s: answer probes vs lrgd_eval of their own prompts: max abs logit diff %.2e\n", name, worst);
    CHECK(worst < 1e-4);
    free(hid);
    free(le);
    lrgd_tmodel_free(t);
}

int main(void)
{
    /* one thread: the checks run thousands of tiny passes, and on a shared
     * machine every OpenMP barrier of a tiny pass can cost a time slice */
    lrgd_set_threads(1);
    check_exp();
    check_threads();
    check_mode(LRGD_ATTN_SOFTMAX, "softmax+GQA", &L_CAUSAL);
    check_mode(LRGD_ATTN_LINEAR, "linear+GQA", &L_CAUSAL);
    check_mode(LRGD_ATTN_SOFTMAX, "softmax+GQA", &L_PROBES);
    check_mode(LRGD_ATTN_LINEAR, "linear+GQA", &L_PROBES);
    check_probes(LRGD_ATTN_SOFTMAX, "softmax+GQA");
    check_probes(LRGD_ATTN_LINEAR, "linear+GQA");
    check_dropout(LRGD_ATTN_SOFTMAX, "softmax+GQA", 0);
    check_dropout(LRGD_ATTN_LINEAR, "linear+GQA", 0);
    check_dropout(LRGD_ATTN_SOFTMAX, "softmax+GQA", 8);
    check_bad_batches();
    check_engine(LRGD_ATTN_SOFTMAX, "softmax+GQA");
    check_engine(LRGD_ATTN_LINEAR, "linear+GQA");
    return t_finish("test_grad");
}
