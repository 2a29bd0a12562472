/* The dual model: E1 (linear attention = (W_0 + dW) q), E2 (exact softmax
 * split), E4 (explicit GD step = W_0 + dW) on random models, both RoPE forms,
 * with and without grouped-query heads, at every position; the dual's parts
 * against a naive reference written here; the gradient against finite
 * differences; and checks that a wrong input is caught. */
#include "dual/dual_impl.h"
#include "lrgd/dual.h"
#include "model/model_impl.h"
#include "test.h"

#define TOL 1e-5

static void set_vocab(lrgd_model *m)
{
    m->rec = (lrgd_recvocab){.pad = 0, .bos = 1, .sep = 2, .ans = 3, .eos = 4, .n_special = 5,
                             .n_items = m->cfg.vocab_size - 5};
}

/* m demonstrations and a query with random item histories */
static lrgd_prompt *random_prompt(const lrgd_model *m, int n_demos, uint64_t seed)
{
    lrgd_prompt_vocab v;
    if (lrgd_prompt_vocab_of(m, &v) != LRGD_OK) return NULL;
    lrgd_rng r;
    lrgd_rng_seed(&r, seed, 77);
    int32_t hist[8][12];
    lrgd_demo demos[8];
    for (int d = 0; d < n_demos; d++) {
        int n = 2 + (int)lrgd_rng_below(&r, 9);
        for (int i = 0; i < n; i++) hist[d][i] = (int32_t)lrgd_rng_below(&r, (uint32_t)v.n_items);
        demos[d] = (lrgd_demo){hist[d], n, (int32_t)lrgd_rng_below(&r, (uint32_t)v.n_items)};
    }
    int32_t q[10];
    for (int i = 0; i < 10; i++) q[i] = (int32_t)lrgd_rng_below(&r, (uint32_t)v.n_items);
    lrgd_prompt *p = NULL;
    lrgd_prompt_build(&v, NULL, demos, n_demos, q, 10, &p);
    return p;
}

/* Rotate one head vector x (double) by R_p, RoPE written out here
 * independently of ops.c: pair (a, b) turns by p * base^(-2i/d). */
static void rope_ref(double *x, int hd, int p, double base, lrgd_rope_type type)
{
    for (int i = 0; i < hd / 2; i++) {
        double th = p * pow(base, -2.0 * i / hd), c = cos(th), s = sin(th);
        int a = type == LRGD_ROPE_NEOX ? i : 2 * i, b = type == LRGD_ROPE_NEOX ? i + hd / 2 : 2 * i + 1;
        double x0 = x[a], x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
}

typedef struct xcap { int n, dim; float *xn[8]; } xcap;
static lrgd_status cap_xnorm(void *u, const lrgd_hook_layer *h)
{
    xcap *c = u;
    memcpy(c->xn[h->layer], h->x_norm, (size_t)h->n * h->dim * sizeof(float));
    return LRGD_OK;
}

/* LRGD.md notation: k_j . q_t = (W_K x_j) . R_{t-j} (W_Q x_t). The dual's
 * inputs are checked against projections of the layer's normed input made
 * here in double, and the relative-position identity against rope_ref. */
static void check_notation(const lrgd_model *m, const lrgd_prompt *p, const lrgd_dual *d)
{
    const lrgd_config *c = &m->cfg;
    xcap cap = {p->n_tokens, c->dim, {0}};
    for (int l = 0; l < c->n_layers; l++) cap.xn[l] = lrgd_alloc_n((size_t)p->n_tokens * c->dim, sizeof(float));
    lrgd_state *s;
    CHECK_OK(lrgd_state_new(m, p->n_tokens, p->n_tokens, &s));
    CHECK_OK(lrgd_state_set_hook(s, cap_xnorm, &cap, 0));
    CHECK_OK(lrgd_eval(s, p->tokens, p->n_tokens, NULL, 0));
    lrgd_state_free(s);
    const int hd = c->head_dim, t = p->ans_pos;
    double worst_k = 0, worst_dot = 0;
    double *wq = malloc(sizeof(double) * hd), *wk = malloc(sizeof(double) * hd), *kr = malloc(sizeof(double) * hd);
    for (int l = 0; l < c->n_layers; l++)
        for (int h = 0; h < c->n_heads; h++) {
            const lrgd_dual_head *H = lrgd_dual_head_at(d, l, h);
            const float *Wq = (const float *)m->layers[l].wq.data, *Wk = (const float *)m->layers[l].wk.data;
            const float *xt = cap.xn[l] + (size_t)t * c->dim;
            for (int a = 0; a < hd; a++) {
                double s = 0;
                for (int b = 0; b < c->dim; b++) s += (double)Wq[(size_t)(h * hd + a) * c->dim + b] * xt[b];
                wq[a] = s;
            }
            for (int j = 0; j <= t; j += 3) {
                const float *xj = cap.xn[l] + (size_t)j * c->dim;
                for (int a = 0; a < hd; a++) {
                    double s = 0;
                    for (int b = 0; b < c->dim; b++)
                        s += (double)Wk[(size_t)(H->kv_head * hd + a) * c->dim + b] * xj[b];
                    wk[a] = kr[a] = s;
                }
                rope_ref(kr, hd, j, c->rope_base, c->rope_type); /* k_j = R_j W_K x_j */
                double num = 0, den = 0;
                for (int a = 0; a < hd; a++) {
                    double e = kr[a] - H->k[(size_t)j * H->kv_stride + a];
                    num += e * e;
                    den += kr[a] * kr[a];
                }
                if (sqrt(num / den) > worst_k) worst_k = sqrt(num / den);
                double rq[64];
                memcpy(rq, wq, sizeof(double) * hd);
                rope_ref(rq, hd, t - j, c->rope_base, c->rope_type);
                double lhs = 0, rhs = 0, mag = 0;
                for (int a = 0; a < hd; a++) {
                    lhs += (double)H->k[(size_t)j * H->kv_stride + a] * H->q[a];
                    rhs += wk[a] * rq[a];
                    mag += fabs(wk[a] * rq[a]);
                }
                double e = fabs(lhs - rhs) / mag;
                if (e > worst_dot) worst_dot = e;
            }
        }
    CHECK_MSG(worst_k < 1e-5, "k_j = R_j W_K x_j: relative error %g", worst_k);
    CHECK_MSG(worst_dot < 1e-5, "k_j.q_t = (W_K x_j).R_{t-j}(W_Q x_t): relative error %g", worst_dot);
    free(wq);
    free(wk);
    free(kr);
    for (int l = 0; l < c->n_layers; l++) lrgd_free(cap.xn[l]);
}

static void test_random_models(void)
{
    const lrgd_rope_type ropes[2] = {LRGD_ROPE_NORM, LRGD_ROPE_NEOX};
    const lrgd_attn_mode modes[2] = {LRGD_ATTN_LINEAR, LRGD_ATTN_SOFTMAX};
    const int kvh[2] = {4, 2};
    for (int ri = 0; ri < 2; ri++)
        for (int mi = 0; mi < 2; mi++)
            for (int gi = 0; gi < 2; gi++) {
                lrgd_config cfg = {.dim = 64, .hidden_dim = 96, .n_layers = 3, .n_heads = 4, .n_kv_heads = kvh[gi],
                                   .head_dim = 16, .vocab_size = 5 + 50, .seq_len = 160, .norm_eps = 1e-5f,
                                   .rope_base = 10000.0f, .rope_type = ropes[ri], .attn = modes[mi], .tied = gi};
                lrgd_model *m;
                CHECK_OK(lrgd_model_new_random(&cfg, 100 + ri * 4 + mi * 2 + gi, &m));
                if (!m) continue;
                set_vocab(m);
                lrgd_prompt *p = random_prompt(m, 4, 5 + ri + mi + gi);
                CHECK(p != NULL);
                lrgd_dual_opts o = {.flags = LRGD_DUAL_MATRICES | LRGD_DUAL_ALL_POSITIONS | LRGD_DUAL_GD};
                lrgd_dual *d = NULL;
                CHECK_OK(lrgd_dual_run(m, p, &o, &d));
                if (!d) { lrgd_prompt_free(p); lrgd_model_free(m); continue; }
                double e_max = 0, e_sum = 0, e4_max = 0, e4o_max = 0, lam_min = 1, lam_max = 0;
                int cnt = 0;
                for (int l = 0; l < cfg.n_layers; l++)
                    for (int h = 0; h < cfg.n_heads; h++) {
                        const lrgd_dual_head *H = lrgd_dual_head_at(d, l, h);
                        CHECK(H->kv_head == h / (cfg.n_heads / cfg.n_kv_heads));
                        double e = mi == 0 ? H->e1_pos_max : H->e2_pos_max;
                        double et = mi == 0 ? H->e1 : H->e2;
                        double es = mi == 0 ? H->e1_pos_scaled : H->e2_pos_scaled;
                        /* plain relative error at t; at every position the error relative
                         * to float32's own accuracy scale, and the plain one within 10x
                         * (it can reach ~1e-5 where a score cancels to nearly 0) */
                        CHECK_MSG(et <= TOL && es <= TOL && e <= 10 * TOL,
                                  "%s rope %d kv %d layer %d head %d: E%d %g at t, %g max, %g scaled",
                                  mi ? "softmax" : "linear", ri, cfg.n_kv_heads, l, h, mi ? 2 : 1, et, e, es);
                        CHECK(es <= e * (1 + 1e-12)); /* the scale is at least |o| */
                        CHECK(isnan(mi == 0 ? H->e2 : H->e1)); /* the other check does not apply */
                        CHECK_MSG(H->e4 <= TOL, "E4 %g", H->e4);
                        if (mi == 0) {
                            CHECK_MSG(H->e4_out <= TOL, "E4 output %g", H->e4_out);
                            if (H->e4_out > e4o_max) e4o_max = H->e4_out;
                        }
                        e_max = e > e_max ? e : e_max;
                        e_sum += mi == 0 ? H->e1_pos_mean : H->e2_pos_mean;
                        e4_max = H->e4 > e4_max ? H->e4 : e4_max;
                        lam_min = H->lambda < lam_min ? H->lambda : lam_min;
                        lam_max = H->lambda > lam_max ? H->lambda : lam_max;
                        cnt++;
                        CHECK(H->lambda > 0 && H->lambda < 1);
                    }
                printf("%-7s rope=%s kv=%d/%d: E%d max %.3g mean %.3g over %d positions; E4 %.3g (output %.3g); "
                       "lambda %.3f..%.3f\n",
                       mi ? "softmax" : "linear", ri ? "neox" : "norm", cfg.n_kv_heads, cfg.n_heads, mi ? 2 : 1, e_max,
                       e_sum / cnt, p->n_tokens, e4_max, e4o_max, lam_min, lam_max);
                if (ri == 0 || gi == 1) check_notation(m, p, d);
                lrgd_dual_free(d);
                lrgd_prompt_free(p);
                lrgd_model_free(m);
            }
}

/* The dual's parts against sums written out here, on hand-made arrays. */
static void test_arrays(void)
{
    const int hd = 8, nh = 2, nkv = 1, n_demos = 3;
    /* T: 0 | D_0: 1..3 | D_1: 4..5 | D_2: 6..9 | Q: 10..12 */
    lrgd_prompt *p;
    CHECK_OK(lrgd_prompt_new(&p));
    int toks[16] = {0};
    CHECK_OK(lrgd_prompt_add(p, LRGD_SEG_T, toks, 1));
    CHECK_OK(lrgd_prompt_add(p, LRGD_SEG_D, toks, 3));
    CHECK_OK(lrgd_prompt_add(p, LRGD_SEG_D, toks, 2));
    CHECK_OK(lrgd_prompt_add(p, LRGD_SEG_D, toks, 4));
    CHECK_OK(lrgd_prompt_add(p, LRGD_SEG_Q, toks, 3));
    const int n = 13, t = 12;
    int seg[13] = {-1, 0, 0, 0, 1, 1, 2, 2, 2, 2, -1, -1, -1};
    float q[2 * 8], k[13 * 8], v[13 * 8], out[2 * 8];
    lrgd_rng r;
    lrgd_rng_seed(&r, 9, 0);
    for (int i = 0; i < 16; i++) q[i] = (float)lrgd_rng_normal(&r);
    for (int i = 0; i < 13 * 8; i++) k[i] = (float)lrgd_rng_normal(&r), v[i] = (float)lrgd_rng_normal(&r);
    for (int mode = 0; mode < 2; mode++) {
        /* the attention output, naive, in double then rounded */
        double w[13], ref[2][8] = {{0}};
        for (int h = 0; h < nh; h++) {
            double mx = -1e300, z = 0;
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int a = 0; a < hd; a++) s += (double)q[h * hd + a] * k[j * hd + a];
                w[j] = s / sqrt(hd);
                mx = w[j] > mx ? w[j] : mx;
            }
            if (mode == 1) {
                for (int j = 0; j < n; j++) z += (w[j] = exp(w[j] - mx));
                for (int j = 0; j < n; j++) w[j] /= z;
            }
            for (int j = 0; j < n; j++)
                for (int a = 0; a < hd; a++) ref[h][a] += w[j] * v[j * hd + a];
            for (int a = 0; a < hd; a++) out[h * hd + a] = (float)ref[h][a];
        }
        lrgd_dual_shape sh = {1, nh, nkv, hd, mode ? LRGD_ATTN_SOFTMAX : LRGD_ATTN_LINEAR, 1};
        lrgd_dual_layer_in in = {q, k, v, out};
        lrgd_dual_opts o = {.flags = LRGD_DUAL_MATRICES | LRGD_DUAL_GD};
        lrgd_dual *d = NULL;
        CHECK_OK(lrgd_dual_from_arrays(&sh, p, &in, &o, &d));
        if (!d) continue;
        CHECK(lrgd_dual_logits(d) == NULL && lrgd_dual_n_demos(d) == 3 && lrgd_dual_ans_pos(d) == t);
        for (int h = 0; h < nh; h++) {
            const lrgd_dual_head *H = lrgd_dual_head_at(d, 0, h);
            const double *qq = NULL;
            (void)qq;
            /* W_0 q and dW_d q by segment; the explicit matrices applied to q */
            double z_seg[4] = {0}, zsum = 0, mx = -1e300, s[13];
            for (int j = 0; j < n; j++) {
                double x = 0;
                for (int a = 0; a < hd; a++) x += (double)q[h * hd + a] * k[j * hd + a];
                s[j] = x / sqrt(hd);
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int a = 0; a < hd; a++) {
                double want[4] = {0}; /* segment -1 -> 0, demo d -> d+1 */
                for (int j = 0; j < n; j++) want[seg[j] + 1] += s[j] * v[j * hd + a];
                CHECK_NEAR(H->w0q[a], want[0], 1e-12);
                for (int dd = 0; dd < n_demos; dd++) CHECK_NEAR(H->dwq[dd * hd + a], want[dd + 1], 1e-12);
                double mq0 = 0, mq1 = 0;
                for (int b = 0; b < hd; b++) {
                    mq0 += H->w0[a * hd + b] * q[h * hd + b];
                    mq1 += H->dw[(size_t)1 * hd * hd + a * hd + b] * q[h * hd + b];
                }
                CHECK_NEAR(mq0, want[0], 1e-12);
                CHECK_NEAR(mq1, want[2], 1e-12);
            }
            for (int j = 0; j < n; j++) {
                double e = exp(s[j] - mx);
                z_seg[seg[j] + 1] += e;
                zsum += e;
            }
            double zd = z_seg[1] + z_seg[2] + z_seg[3];
            CHECK_NEAR(H->lambda, zd / zsum, 1e-14);
            for (int dd = 0; dd < n_demos; dd++) CHECK_NEAR(H->mu[dd], z_seg[dd + 1] / zd, 1e-14);
            for (int a = 0; a < hd; a++) {
                double otq = 0, od1 = 0;
                for (int j = 0; j < n; j++) {
                    if (seg[j] < 0) otq += exp(s[j] - mx) / z_seg[0] * v[j * hd + a];
                    if (seg[j] == 1) od1 += exp(s[j] - mx) / z_seg[2] * v[j * hd + a];
                }
                CHECK_NEAR(H->o_tq[a], otq, 1e-12);
                CHECK_NEAR(H->o_dd[1 * hd + a], od1, 1e-12);
            }
            if (mode == 0) CHECK(H->e1 < 1e-6 && isnan(H->e2));
            else CHECK(H->e2 < 1e-6 && isnan(H->e1));
            CHECK(H->e4 < 1e-12);
        }
        lrgd_dual_free(d);

        /* a wrong forward output must be caught: scale one head's output by 1.001 */
        float bad[16];
        memcpy(bad, out, sizeof bad);
        for (int a = 0; a < hd; a++) bad[hd + a] *= 1.001f;
        in.att_out = bad;
        CHECK_OK(lrgd_dual_from_arrays(&sh, p, &in, &o, &d));
        if (d) {
            const lrgd_dual_head *H = lrgd_dual_head_at(d, 0, 1);
            double e = mode ? H->e2 : H->e1;
            CHECK_MSG(e > 5e-4 && e < 2e-3, "a 1e-3 error must show: %g", e);
            lrgd_dual_free(d);
        }
    }
    /* bad arguments */
    lrgd_dual *d = NULL;
    lrgd_dual_shape sh = {1, 3, 2, 8, LRGD_ATTN_LINEAR, 1};
    lrgd_dual_layer_in in = {q, k, v, out};
    CHECK(lrgd_dual_from_arrays(&sh, p, &in, NULL, &d) == LRGD_E_INVALID && !d); /* 3 % 2 */
    sh = (lrgd_dual_shape){1, 2, 1, 8, LRGD_ATTN_LINEAR, 14};
    CHECK(lrgd_dual_from_arrays(&sh, p, &in, NULL, &d) == LRGD_E_INVALID && !d); /* n_q > t+1 */
    sh.n_q = 1;
    lrgd_dual_opts bo = {.n_features = 1, .features = {0}};
    CHECK(lrgd_dual_from_arrays(&sh, p, &in, &bo, &d) == LRGD_E_INVALID && !d);
    bo = (lrgd_dual_opts){.flags = 64};
    CHECK(lrgd_dual_from_arrays(&sh, p, &in, &bo, &d) == LRGD_E_INVALID && !d);
    lrgd_prompt_free(p);
}

/* The GD code's gradient against central differences of its loss, and the
 * step against W_0 + dW built by the dual code. */
static void test_gd_fd(void)
{
    const int hd = 6, n = 7;
    float k[7 * 6], v[7 * 6];
    double W[36], G[36], W1[36];
    lrgd_rng r;
    lrgd_rng_seed(&r, 3, 0);
    for (int i = 0; i < n * hd; i++) k[i] = (float)lrgd_rng_normal(&r), v[i] = (float)lrgd_rng_normal(&r);
    for (int i = 0; i < 36; i++) W[i] = lrgd_rng_normal(&r);
    int rows[4] = {1, 3, 4, 6};
    lrgd_gd_grad(G, hd, k, v, hd, rows, 4);
    double worst = 0, eps = 1e-4;
    for (int e = 0; e < 36; e++) {
        double keep = W[e];
        W[e] = keep + eps;
        double lp = lrgd_gd_loss(W, hd, k, v, hd, rows, 4);
        W[e] = keep - eps;
        double lm = lrgd_gd_loss(W, hd, k, v, hd, rows, 4);
        W[e] = keep;
        double fd = (lp - lm) / (2 * eps), err = fabs(fd - G[e]) / (fabs(G[e]) + 1e-8);
        worst = err > worst ? err : worst;
    }
    printf("GD gradient vs central differences: worst relative error %.3g\n", worst);
    CHECK_MSG(worst < 1e-8, "gradient vs finite differences: %g", worst);
    /* the step from W lowers the loss by exactly |G|^2 (L is linear) */
    CHECK_OK(lrgd_gd_step(W1, W, 1.0, hd, k, v, hd, rows, 4));
    double g2 = 0;
    for (int e = 0; e < 36; e++) g2 += G[e] * G[e];
    CHECK_NEAR(lrgd_gd_loss(W, hd, k, v, hd, rows, 4) - lrgd_gd_loss(W1, hd, k, v, hd, rows, 4), g2, 1e-9 * (1 + g2));
    /* slope helper */
    double x[4] = {1, 10, 100, 1000}, y[4] = {1, 0.1, 0.01, 0.001};
    CHECK_NEAR(lrgd_loglog_slope(x, y, 4), -1.0, 1e-12);
    CHECK(isnan(lrgd_loglog_slope(x, y, 1)));
}

int main(void)
{
    lrgd_set_threads(2);
    test_arrays();
    test_gd_fd();
    test_random_models();
    return t_finish("test_dual");
}
