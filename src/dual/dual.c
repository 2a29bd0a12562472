/* The dual model of every attention head at the answer position, and the
 * checks E1-E4 (definitions in lrgd/dual.h and LRGD.md §1).
 *
 * Inputs are the per-layer q (RoPE applied), k (RoPE applied) and v that the
 * forward pass computed, read through the engine's hook or given as arrays.
 * All dual quantities are computed in double from those float32 inputs, so
 * the errors measure the float32 forward pass against exact arithmetic. */
#include "dual/dual_impl.h"

#include "model/model_impl.h"

#include <math.h>
#include <string.h>

/* ---- the dual model of one head ----------------------------------------- */

void lrgd_dual_apply(const double *q, const float *k, const float *v, int stride, int n, const int *demo_of,
                     int n_demos, int hd, double *sc, dual_out *o)
{
    const double inv = 1.0 / sqrt((double)hd);
    const size_t mh = (size_t)n_demos * hd;
    double mx = -INFINITY;
    o->scale_lin = 0;
    for (int j = 0; j < n; j++) {
        const float *kj = k + (size_t)j * stride, *vj = v + (size_t)j * stride;
        double s = 0, sa = 0, vn = 0;
        for (int a = 0; a < hd; a++) {
            s += (double)kj[a] * q[a];
            sa += fabs((double)kj[a] * q[a]);
            vn += (double)vj[a] * vj[a];
        }
        sc[j] = s * inv;
        if (sc[j] > mx) mx = sc[j];
        o->scale_lin += sa * inv * sqrt(vn);
    }
    memset(o->w0q, 0, (size_t)hd * sizeof(double));
    memset(o->dwq, 0, mh * sizeof(double));
    memset(o->o_tq, 0, (size_t)hd * sizeof(double));
    memset(o->o_dd, 0, mh * sizeof(double));
    memset(o->mu, 0, (size_t)n_demos * sizeof(double));
    double z_tq = 0, abs_d = 0, abs_all = 0, pv = 0;
    for (int j = 0; j < n; j++) {
        const float *vj = v + (size_t)j * stride;
        int d = demo_of[j];
        /* linear dual: W q = sum_j v_j (k_j.q)/sqrt(d), split by segment */
        double *lin = d < 0 ? o->w0q : o->dwq + (size_t)d * hd;
        for (int a = 0; a < hd; a++) lin[a] += sc[j] * vj[a];
        /* softmax: unnormalized weights, shifted by the max (cancels in every ratio) */
        double e = exp(sc[j] - mx);
        double *acc = d < 0 ? o->o_tq : o->o_dd + (size_t)d * hd;
        for (int a = 0; a < hd; a++) acc[a] += e * vj[a];
        if (d < 0) z_tq += e;
        else o->mu[d] += e;
        abs_all += fabs(sc[j]);
        double vn = 0;
        for (int a = 0; a < hd; a++) vn += (double)vj[a] * vj[a];
        pv += e * sqrt(vn);
        if (d >= 0) abs_d += fabs(sc[j]);
    }
    double z_d = 0;
    for (int d = 0; d < n_demos; d++) z_d += o->mu[d];
    if (z_tq > 0)
        for (int a = 0; a < hd; a++) o->o_tq[a] /= z_tq;
    memset(o->o_d, 0, (size_t)hd * sizeof(double));
    for (int d = 0; d < n_demos; d++) {
        double zdd = o->mu[d], *od = o->o_dd + (size_t)d * hd;
        if (zdd > 0)
            for (int a = 0; a < hd; a++) od[a] /= zdd;
        o->mu[d] = z_d > 0 ? zdd / z_d : 0;
        for (int a = 0; a < hd; a++) o->o_d[a] += o->mu[d] * od[a];
    }
    o->lambda = z_d / (z_d + z_tq);
    o->lambda_abs = abs_all > 0 ? abs_d / abs_all : 0;
    o->scale_soft = pv / (z_d + z_tq);
    for (int a = 0; a < hd; a++) o->o_split[a] = (1 - o->lambda) * o->o_tq[a] + o->lambda * o->o_d[a];
}

/* |a - b| / |b| for a double and a float vector */
static double rel_err(const double *a, const float *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        double e = a[i] - (double)b[i];
        num += e * e;
        den += (double)b[i] * b[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num / den);
}

/* |a - b| / scale */
static double scaled_err(const double *a, const float *b, int n, double scale)
{
    double num = 0;
    for (int i = 0; i < n; i++) num += (a[i] - (double)b[i]) * (a[i] - (double)b[i]);
    if (scale == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num) / scale;
}

static double rel_err_dd(const double *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num / den);
}

/* sum_j v_j k_j^T / sqrt(d) over the positions j < n with demo_of[j] == which */
static void build_matrix(double *W, const float *k, const float *v, int stride, int n, const int *demo_of, int which,
                         int hd)
{
    const double inv = 1.0 / sqrt((double)hd);
    memset(W, 0, (size_t)hd * hd * sizeof(double));
    for (int j = 0; j < n; j++) {
        if (demo_of[j] != which) continue;
        const float *kj = k + (size_t)j * stride, *vj = v + (size_t)j * stride;
        for (int a = 0; a < hd; a++) {
            double va = vj[a] * inv;
            double *Wa = W + (size_t)a * hd;
            for (int b = 0; b < hd; b++) Wa[b] += va * kj[b];
        }
    }
}

/* Doubles of one head's block: outputs first, then scratch. */
typedef struct head_layout {
    size_t w0q, dwq, o_tq, o_d, mu, o_dd, o_split, o_phi, lphi, mats, dw, wgd; /* outputs */
    size_t qd, sc, tmp, la, tf, total;                                          /* scratch */
    size_t tmp_size;
} head_layout;

static int max_features(const lrgd_dual_opts *o)
{
    int r = 0;
    for (int i = 0; i < o->n_features; i++) r = o->features[i] > r ? o->features[i] : r;
    return r;
}

static int want_kernel(const lrgd_dual *d) { return d->sh.attn == LRGD_ATTN_SOFTMAX && d->opts.n_features > 0; }

static head_layout layout(const lrgd_dual *d)
{
    head_layout L;
    size_t hd = (size_t)d->sh.head_dim, m = (size_t)d->n_demos, nf = want_kernel(d) ? (size_t)d->opts.n_features : 0;
    size_t hh = hd * hd, at = 0;
    L.w0q = at; at += hd;
    L.dwq = at; at += m * hd;
    L.o_tq = at; at += hd;
    L.o_d = at; at += hd;
    L.mu = at; at += m;
    L.o_dd = at; at += m * hd;
    L.o_split = at; at += hd;
    L.o_phi = at; at += nf * hd;
    L.lphi = at; at += nf;
    int keep = (d->opts.flags & LRGD_DUAL_MATRICES) != 0;
    L.mats = at; at += keep ? hh : 0;
    L.dw = at; at += keep ? m * hh : 0;
    L.wgd = at; at += keep && (d->opts.flags & LRGD_DUAL_GD) ? hh : 0;
    /* scratch: q as double, scores, a second set of outputs for the
     * position checks, kernel buffers */
    L.qd = at; at += hd;
    L.sc = at; at += (size_t)d->n_pos;
    L.tmp_size = 4 * hd + 2 * m * hd + m;
    L.tmp = at; at += L.tmp_size;
    L.la = at; at += nf ? (size_t)d->n_pos : 0;
    L.tf = at; at += nf ? 2 * (size_t)max_features(&d->opts) : 0;
    L.total = at;
    return L;
}

static dual_out out_at(double *base, size_t hd, size_t m)
{
    dual_out o;
    o.w0q = base;
    o.dwq = o.w0q + hd;
    o.o_tq = o.dwq + m * hd;
    o.o_d = o.o_tq + hd;
    o.mu = o.o_d + hd;
    o.o_dd = o.mu + m;
    o.o_split = o.o_dd + m * hd;
    o.lambda = 0;
    return o;
}

/* E4 for one head: W_0 - grad L from lrgd_gd_step against W_0 + sum_d dW_d,
 * and each demonstration's step alone against its dW_d. mats: W_0, then
 * dW_0..dW_{m-1}, then room for the GD result (and two scratch matrices). */
static lrgd_status head_gd_check(const lrgd_dual *d, lrgd_dual_head *H, double *w0, double *dw, double *wgd,
                                 double *tgt, double *one, const double *q)
{
    const int hd = H->head_dim, m = H->n_demos, n = H->n_pos;
    const size_t hh = (size_t)hd * hd;
    int *rows = lrgd_alloc_n((size_t)n + 1, sizeof(int));
    if (!rows) return lrgd_fail(LRGD_E_NOMEM, "E4: out of memory");
    int nr = 0;
    for (int j = 0; j < n; j++)
        if (H->demo_of[j] >= 0) rows[nr++] = j;
    lrgd_status st = lrgd_gd_step(wgd, w0, 1.0, hd, H->k, H->v, H->kv_stride, rows, nr);
    if (st == LRGD_OK) {
        memcpy(tgt, w0, hh * sizeof(double));
        for (int dd = 0; dd < m; dd++)
            for (size_t e = 0; e < hh; e++) tgt[e] += dw[(size_t)dd * hh + e];
        double e4 = rel_err_dd(wgd, tgt, hh);
        /* each demonstration alone: -grad L_d must equal dW_d */
        for (int dd = 0; dd < m; dd++) {
            int nd = 0;
            for (int j = 0; j < n; j++)
                if (H->demo_of[j] == dd) rows[nd++] = j;
            lrgd_gd_grad(one, hd, H->k, H->v, H->kv_stride, rows, nd);
            for (size_t e = 0; e < hh; e++) one[e] = -one[e];
            double ed = rel_err_dd(one, dw + (size_t)dd * hh, hh);
            if (ed > e4 || isnan(ed)) e4 = ed;
        }
        H->e4 = e4;
        if (d->sh.attn == LRGD_ATTN_LINEAR && H->o_fwd) {
            double *y = one; /* (W_0 - grad L) q_t */
            for (int a = 0; a < hd; a++) {
                double s = 0;
                for (int b = 0; b < hd; b++) s += wgd[(size_t)a * hd + b] * q[b];
                y[a] = s;
            }
            H->e4_out = rel_err(y, H->o_fwd, hd);
        }
    }
    lrgd_free(rows);
    return st;
}

static lrgd_status head_compute(lrgd_dual *d, int l, int h, const float *const *omega)
{
    const lrgd_dual_shape *sh = &d->sh;
    lrgd_dual_head *H = &d->heads[(size_t)l * sh->n_heads + h];
    const int hd = sh->head_dim, m = d->n_demos, n = d->n_pos, t = n - 1, q0 = n - sh->n_q;
    const size_t qdim = (size_t)sh->n_heads * hd, hh = (size_t)hd * hd;
    head_layout L = layout(d);
    double *B = d->blocks[(size_t)l * sh->n_heads + h];

    double *qv = B + L.qd;
    for (int a = 0; a < hd; a++) qv[a] = H->q[a];
    dual_out o = out_at(B + L.w0q, (size_t)hd, (size_t)m);
    lrgd_dual_apply(qv, H->k, H->v, H->kv_stride, n, H->demo_of, m, hd, B + L.sc, &o);
    H->lambda = o.lambda;
    H->lambda_abs = o.lambda_abs;

    const int linear = sh->attn == LRGD_ATTN_LINEAR;
    double *lin = B + L.tmp; /* W_0 q + sum_d dW_d q */
    for (int a = 0; a < hd; a++) {
        double s = o.w0q[a];
        for (int dd = 0; dd < m; dd++) s += o.dwq[(size_t)dd * hd + a];
        lin[a] = s;
    }
    if (H->o_fwd) {
        if (linear) {
            H->e1 = H->e1_pos_max = H->e1_pos_mean = rel_err(lin, H->o_fwd, hd);
            H->e1_pos_scaled = scaled_err(lin, H->o_fwd, hd, o.scale_lin);
        } else {
            H->e2 = H->e2_pos_max = H->e2_pos_mean = rel_err(o.o_split, H->o_fwd, hd);
            H->e2_pos_scaled = scaled_err(o.o_split, H->o_fwd, hd, o.scale_soft);
        }
    }

    /* every earlier position p has its own causal dual model over 0..p */
    if ((d->opts.flags & LRGD_DUAL_ALL_POSITIONS) && d->att_out && sh->n_q > 1) {
        double mx = 0, sum = 0, msc = 0;
        int cnt = 0;
        dual_out op = out_at(B + L.tmp, (size_t)hd, (size_t)m);
        for (int p = q0; p <= t; p++) {
            const float *qp = d->q + ((size_t)l * sh->n_q + (size_t)(p - q0)) * qdim + (size_t)h * hd;
            const float *op_fwd = d->att_out + ((size_t)l * sh->n_q + (size_t)(p - q0)) * qdim + (size_t)h * hd;
            for (int a = 0; a < hd; a++) qv[a] = qp[a];
            lrgd_dual_apply(qv, H->k, H->v, H->kv_stride, p + 1, H->demo_of, m, hd, B + L.sc, &op);
            double e;
            if (linear) {
                for (int a = 0; a < hd; a++) {
                    double s = op.w0q[a];
                    for (int dd = 0; dd < m; dd++) s += op.dwq[(size_t)dd * hd + a];
                    op.o_split[a] = s; /* reuse as the linear output */
                }
            }
            e = rel_err(op.o_split, op_fwd, hd);
            if (e > mx || isnan(e)) mx = e;
            double es = scaled_err(op.o_split, op_fwd, hd, linear ? op.scale_lin : op.scale_soft);
            if (es > msc || isnan(es)) msc = es;
            sum += e;
            cnt++;
        }
        if (linear) { H->e1_pos_max = mx; H->e1_pos_mean = sum / cnt; H->e1_pos_scaled = msc; }
        else { H->e2_pos_max = mx; H->e2_pos_mean = sum / cnt; H->e2_pos_scaled = msc; }
        for (int a = 0; a < hd; a++) qv[a] = H->q[a];
    }

    /* kernel dual (E3) */
    if (want_kernel(d)) {
        H->kernel_a = d->opts.kernel == LRGD_KERNEL_OPRF ? lrgd_prf_opt_a(qv, H->k, H->kv_stride, n, hd) : 0.0;
        for (int fi = 0; fi < d->opts.n_features; fi++) {
            double *of = H->o_phi + (size_t)fi * hd;
            lrgd_prf_apply(qv, H->k, H->v, H->kv_stride, n, H->demo_of, hd, omega[(size_t)l * d->opts.n_features + fi],
                           d->opts.features[fi], H->kernel_a, B + L.la, B + L.tf, of, &H->lambda_phi[fi]);
            H->e3[fi] = H->o_fwd ? rel_err(of, H->o_fwd, hd) : rel_err_dd(of, o.o_split, (size_t)hd);
        }
    }

    /* explicit matrices and the GD step (E4) */
    int keep = (d->opts.flags & LRGD_DUAL_MATRICES) != 0, gd = (d->opts.flags & LRGD_DUAL_GD) != 0;
    if (keep || gd) {
        double *tmpm = NULL, *w0, *dw, *wgd, *tgt, *one;
        tmpm = lrgd_alloc_n(((size_t)m + 1 + (keep ? 0 : 1) + 2) * hh, sizeof(double));
        if (!tmpm) return lrgd_fail(LRGD_E_NOMEM, "dual: cannot allocate matrices for layer %d head %d", l, h);
        if (keep) {
            w0 = H->w0;
            dw = H->dw;
            wgd = gd ? H->w_gd : NULL;
            tgt = tmpm;
            one = tmpm + hh;
        } else {
            w0 = tmpm;
            dw = w0 + hh;
            wgd = dw + (size_t)m * hh;
            tgt = wgd + hh;
            one = tgt + hh;
        }
        build_matrix(w0, H->k, H->v, H->kv_stride, n, H->demo_of, -1, hd);
        for (int dd = 0; dd < m; dd++) build_matrix(dw + (size_t)dd * hh, H->k, H->v, H->kv_stride, n, H->demo_of, dd, hd);
        lrgd_status st = gd ? head_gd_check(d, H, w0, dw, wgd, tgt, one, qv) : LRGD_OK;
        lrgd_free(tmpm);
        if (st != LRGD_OK) return st;
    }
    return LRGD_OK;
}

/* Fill the head structs' pointers and run every head. */
static lrgd_status dual_compute(lrgd_dual *d)
{
    const lrgd_dual_shape *sh = &d->sh;
    const int nh = sh->n_layers * sh->n_heads, hd = sh->head_dim, group = sh->n_heads / sh->n_kv_heads;
    const size_t qdim = (size_t)sh->n_heads * hd, kvd = (size_t)sh->n_kv_heads * hd;
    head_layout L = layout(d);
    d->heads = lrgd_alloc_n((size_t)nh, sizeof *d->heads);
    d->blocks = lrgd_alloc_n((size_t)nh, sizeof *d->blocks);
    if (!d->heads || !d->blocks) return lrgd_fail(LRGD_E_NOMEM, "dual: out of memory");
    for (int i = 0; i < nh; i++) {
        d->blocks[i] = lrgd_alloc_n(L.total, sizeof(double));
        if (!d->blocks[i]) return lrgd_fail(LRGD_E_NOMEM, "dual: cannot allocate %zu doubles per head", L.total);
    }
    const size_t hh = (size_t)hd * hd, m = (size_t)d->n_demos;
    for (int l = 0; l < sh->n_layers; l++)
        for (int h = 0; h < sh->n_heads; h++) {
            lrgd_dual_head *H = &d->heads[(size_t)l * sh->n_heads + h];
            double *B = d->blocks[(size_t)l * sh->n_heads + h];
            int kh = h / group;
            *H = (lrgd_dual_head){0};
            H->layer = l;
            H->head = h;
            H->kv_head = kh;
            H->head_dim = hd;
            H->n_demos = d->n_demos;
            H->n_pos = d->n_pos;
            size_t qrow = (size_t)l * sh->n_q + (size_t)(sh->n_q - 1); /* the row of t */
            H->q = d->q + qrow * qdim + (size_t)h * hd;
            H->o_fwd = d->att_out ? d->att_out + qrow * qdim + (size_t)h * hd : NULL;
            H->k = d->k + (size_t)l * d->n_pos * kvd + (size_t)kh * hd;
            H->v = d->v + (size_t)l * d->n_pos * kvd + (size_t)kh * hd;
            H->kv_stride = (int)kvd;
            H->demo_of = d->demo_of;
            H->w0q = B + L.w0q;
            H->dwq = B + L.dwq;
            H->o_tq = B + L.o_tq;
            H->o_d = B + L.o_d;
            H->mu = B + L.mu;
            H->o_dd = B + L.o_dd;
            H->o_split = B + L.o_split;
            if (want_kernel(d)) {
                H->o_phi = B + L.o_phi;
                H->lambda_phi = B + L.lphi;
            }
            if (d->opts.flags & LRGD_DUAL_MATRICES) {
                H->w0 = B + L.mats;
                H->dw = m ? B + L.dw : NULL;
                if (d->opts.flags & LRGD_DUAL_GD) H->w_gd = B + L.wgd;
            }
            (void)hh;
            H->e1 = H->e1_pos_max = H->e1_pos_mean = H->e1_pos_scaled = NAN;
            H->e2 = H->e2_pos_max = H->e2_pos_mean = H->e2_pos_scaled = NAN;
            H->e4 = H->e4_out = NAN;
            for (int f = 0; f < LRGD_DUAL_MAX_FEATURES; f++) H->e3[f] = NAN;
        }

    /* random features: one draw per (layer, r), shared by the layer's heads */
    int nf = want_kernel(d) ? d->opts.n_features : 0;
    float **omega = NULL;
    lrgd_status st = LRGD_OK;
    if (nf) {
        omega = lrgd_alloc_n((size_t)sh->n_layers * nf, sizeof *omega);
        if (!omega) return lrgd_fail(LRGD_E_NOMEM, "dual: out of memory");
        for (int l = 0; l < sh->n_layers && st == LRGD_OK; l++)
            for (int f = 0; f < nf && st == LRGD_OK; f++) {
                float *w = lrgd_alloc_n((size_t)d->opts.features[f] * hd, sizeof(float));
                omega[(size_t)l * nf + f] = w;
                st = w ? lrgd_prf_draw(w, d->opts.features[f], hd, d->opts.seed, d->opts.stream, l, f)
                       : lrgd_fail(LRGD_E_NOMEM, "dual: cannot allocate %d random features", d->opts.features[f]);
            }
    }
    if (st == LRGD_OK) {
        /* heads are independent: each writes only its own struct and block */
        int failed = 0;
        lrgd_status fst = LRGD_OK;
        char msg[512] = "";
#pragma omp parallel for schedule(dynamic)
        for (int i = 0; i < nh; i++) {
            int skip;
#pragma omp atomic read
            skip = failed;
            if (skip) continue;
            lrgd_status s = head_compute(d, i / sh->n_heads, i % sh->n_heads, (const float *const *)omega);
            if (s != LRGD_OK) {
#pragma omp critical(lrgd_dual_err)
                if (!failed) {
                    failed = 1;
                    fst = s;
                    snprintf(msg, sizeof msg, "%s", lrgd_last_error());
                }
            }
        }
        if (failed) st = lrgd_fail(fst, "%s", msg);
    }
    if (omega) {
        for (int i = 0; i < sh->n_layers * nf; i++) lrgd_free(omega[i]);
        lrgd_free(omega);
    }
    return st;
}

/* ---- construction ------------------------------------------------------- */

static lrgd_status check_opts(const lrgd_dual_opts *o)
{
    if (o->flags & ~(unsigned)(LRGD_DUAL_MATRICES | LRGD_DUAL_ALL_POSITIONS | LRGD_DUAL_GD))
        return lrgd_fail(LRGD_E_INVALID, "dual options: unknown flags 0x%x", o->flags);
    if (o->kernel != LRGD_KERNEL_PRF && o->kernel != LRGD_KERNEL_OPRF)
        return lrgd_fail(LRGD_E_INVALID, "dual options: unknown kernel %d", (int)o->kernel);
    if (o->n_features < 0 || o->n_features > LRGD_DUAL_MAX_FEATURES)
        return lrgd_fail(LRGD_E_INVALID, "dual options: %d feature counts, at most %d", o->n_features,
                         LRGD_DUAL_MAX_FEATURES);
    for (int i = 0; i < o->n_features; i++)
        if (o->features[i] < 1 || o->features[i] > (1 << 20))
            return lrgd_fail(LRGD_E_INVALID, "dual options: r = %d random features, expected 1..%d", o->features[i],
                             1 << 20);
    return LRGD_OK;
}

static lrgd_status dual_new(const lrgd_dual_shape *sh, const lrgd_prompt *p, const lrgd_dual_opts *opts,
                            lrgd_dual **out)
{
    *out = NULL;
    if (!sh || !p) return lrgd_fail(LRGD_E_INVALID, "dual: shape or prompt is NULL");
    if (sh->n_layers <= 0 || sh->n_heads <= 0 || sh->n_kv_heads <= 0 || sh->n_heads % sh->n_kv_heads ||
        sh->head_dim <= 0 || (sh->attn != LRGD_ATTN_SOFTMAX && sh->attn != LRGD_ATTN_LINEAR))
        return lrgd_fail(LRGD_E_INVALID, "dual: bad shape (%d layers, %d heads, %d kv heads, head_dim %d, attn %d)",
                         sh->n_layers, sh->n_heads, sh->n_kv_heads, sh->head_dim, (int)sh->attn);
    if (p->ans_pos < 0) return lrgd_fail(LRGD_E_INVALID, "dual: the prompt has no query segment");
    int n_pos = p->ans_pos + 1;
    if (sh->n_q < 1 || sh->n_q > n_pos)
        return lrgd_fail(LRGD_E_INVALID, "dual: n_q = %d query rows, expected 1..%d", sh->n_q, n_pos);
    lrgd_dual_opts o = {0};
    if (opts) o = *opts;
    LRGD_TRY(check_opts(&o));
    lrgd_dual *d = lrgd_alloc(sizeof *d);
    if (!d) return lrgd_fail(LRGD_E_NOMEM, "dual: out of memory");
    d->sh = *sh;
    d->opts = o;
    d->n_pos = n_pos;
    d->n_demos = p->n_demos;
    d->ans_token = p->tokens[p->ans_pos];
    size_t qdim = (size_t)sh->n_heads * sh->head_dim, kvd = (size_t)sh->n_kv_heads * sh->head_dim;
    size_t nq = (size_t)sh->n_layers * sh->n_q, nk = (size_t)sh->n_layers * n_pos, a, b;
    int ok = lrgd_mul_ok(nq, qdim, &a) && lrgd_mul_ok(nk, kvd, &b);
    d->demo_of = lrgd_alloc_n((size_t)p->n_tokens, sizeof(int));
    d->q = ok ? lrgd_alloc_n(a, sizeof(float)) : NULL;
    d->att_out = ok ? lrgd_alloc_n(a, sizeof(float)) : NULL;
    d->k = ok ? lrgd_alloc_n(b, sizeof(float)) : NULL;
    d->v = ok ? lrgd_alloc_n(b, sizeof(float)) : NULL;
    if (!d->demo_of || !d->q || !d->att_out || !d->k || !d->v) {
        lrgd_dual_free(d);
        return lrgd_fail(LRGD_E_NOMEM, "dual: cannot allocate the captured q/k/v (%d layers x %d positions)",
                         sh->n_layers, n_pos);
    }
    lrgd_prompt_demo_map(p, d->demo_of);
    *out = d;
    return LRGD_OK;
}

lrgd_status lrgd_dual_from_arrays(const lrgd_dual_shape *shape, const lrgd_prompt *p, const lrgd_dual_layer_in *layers,
                                  const lrgd_dual_opts *opts, lrgd_dual **out)
{
    if (!out) return lrgd_fail(LRGD_E_INVALID, "lrgd_dual_from_arrays: out is NULL");
    *out = NULL;
    if (!layers) return lrgd_fail(LRGD_E_INVALID, "lrgd_dual_from_arrays: layers is NULL");
    lrgd_dual *d;
    LRGD_TRY(dual_new(shape, p, opts, &d));
    const lrgd_dual_shape *sh = &d->sh;
    size_t qn = (size_t)sh->n_q * sh->n_heads * sh->head_dim, kn = (size_t)d->n_pos * sh->n_kv_heads * sh->head_dim;
    int have_out = 1;
    for (int l = 0; l < sh->n_layers; l++) {
        if (!layers[l].q || !layers[l].k || !layers[l].v) {
            lrgd_dual_free(d);
            return lrgd_fail(LRGD_E_INVALID, "lrgd_dual_from_arrays: layer %d lacks q, k or v", l);
        }
        if (!layers[l].att_out) have_out = 0;
    }
    for (int l = 0; l < sh->n_layers; l++) {
        memcpy(d->q + l * qn, layers[l].q, qn * sizeof(float));
        memcpy(d->k + l * kn, layers[l].k, kn * sizeof(float));
        memcpy(d->v + l * kn, layers[l].v, kn * sizeof(float));
        if (have_out) memcpy(d->att_out + l * qn, layers[l].att_out, qn * sizeof(float));
    }
    if (!have_out) {
        lrgd_free(d->att_out);
        d->att_out = NULL;
    }
    lrgd_status st = dual_compute(d);
    if (st != LRGD_OK) {
        lrgd_dual_free(d);
        return st;
    }
    *out = d;
    return LRGD_OK;
}

/* The hook: copy what the dual needs out of the engine's buffers. */
static lrgd_status capture(void *user, const lrgd_hook_layer *h)
{
    lrgd_dual *d = user;
    const lrgd_dual_shape *sh = &d->sh;
    if (h->layer < 0 || h->layer >= sh->n_layers || h->n_heads != sh->n_heads || h->n_kv_heads != sh->n_kv_heads ||
        h->head_dim != sh->head_dim)
        return lrgd_fail(LRGD_E_RUNTIME, "dual: hook reported layer %d with an unexpected shape", h->layer);
    const size_t qdim = (size_t)sh->n_heads * sh->head_dim, kvd = (size_t)sh->n_kv_heads * sh->head_dim;
    const int q0 = d->n_pos - sh->n_q;
    for (int i = 0; i < h->n; i++) {
        int p = h->pos0 + i;
        if (p < q0 || p >= d->n_pos) continue;
        size_t row = (size_t)h->layer * sh->n_q + (size_t)(p - q0);
        memcpy(d->q + row * qdim, h->q + (size_t)i * qdim, qdim * sizeof(float));
        memcpy(d->att_out + row * qdim, h->att_out + (size_t)i * qdim, qdim * sizeof(float));
    }
    int nk = h->pos0 + h->n < d->n_pos ? h->pos0 + h->n : d->n_pos;
    size_t off = (size_t)h->layer * d->n_pos * kvd;
    memcpy(d->k + off, h->k_cache, (size_t)nk * kvd * sizeof(float));
    memcpy(d->v + off, h->v_cache, (size_t)nk * kvd * sizeof(float));
    return LRGD_OK;
}

lrgd_status lrgd_dual_run(const lrgd_model *m, const lrgd_prompt *p, const lrgd_dual_opts *opts, lrgd_dual **out)
{
    if (!out) return lrgd_fail(LRGD_E_INVALID, "lrgd_dual_run: out is NULL");
    *out = NULL;
    if (!m || !p) return lrgd_fail(LRGD_E_INVALID, "lrgd_dual_run: model or prompt is NULL");
    LRGD_TRY(lrgd_prompt_check(p, m, 0));
    const lrgd_config *c = &m->cfg;
    int all = opts && (opts->flags & LRGD_DUAL_ALL_POSITIONS);
    lrgd_dual_shape sh = {c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->attn, all ? p->ans_pos + 1 : 1};
    lrgd_dual *d;
    LRGD_TRY(dual_new(&sh, p, opts, &d));
    d->vocab = c->vocab_size;
    d->logits = lrgd_alloc_n((size_t)c->vocab_size, sizeof(float));
    lrgd_state *s = NULL;
    lrgd_status st = d->logits ? LRGD_OK : lrgd_fail(LRGD_E_NOMEM, "dual: out of memory");
    if (st == LRGD_OK) st = lrgd_state_new(m, p->n_tokens, p->n_tokens, &s);
    if (st == LRGD_OK) st = lrgd_state_set_hook(s, capture, d, 0);
    if (st == LRGD_OK) st = lrgd_eval(s, p->tokens, p->n_tokens, d->logits, 0);
    lrgd_state_free(s);
    if (st == LRGD_OK) st = dual_compute(d);
    if (st != LRGD_OK) {
        lrgd_dual_free(d);
        return st;
    }
    *out = d;
    return LRGD_OK;
}

void lrgd_dual_free(lrgd_dual *d)
{
    if (!d) return;
    if (d->blocks)
        for (int i = 0; i < d->sh.n_layers * d->sh.n_heads; i++) lrgd_free(d->blocks[i]);
    lrgd_free(d->blocks);
    lrgd_free(d->heads);
    lrgd_free(d->demo_of);
    lrgd_free(d->q);
    lrgd_free(d->att_out);
    lrgd_free(d->k);
    lrgd_free(d->v);
    lrgd_free(d->logits);
    lrgd_free(d);
}

const lrgd_dual_shape *lrgd_dual_get_shape(const lrgd_dual *d) { return &d->sh; }
int lrgd_dual_n_demos(const lrgd_dual *d) { return d->n_demos; }
int lrgd_dual_ans_pos(const lrgd_dual *d) { return d->n_pos - 1; }
const float *lrgd_dual_logits(const lrgd_dual *d) { return d->logits; }

const lrgd_dual_head *lrgd_dual_head_at(const lrgd_dual *d, int layer, int head)
{
    if (!d || layer < 0 || layer >= d->sh.n_layers || head < 0 || head >= d->sh.n_heads) return NULL;
    return &d->heads[(size_t)layer * d->sh.n_heads + head];
}
