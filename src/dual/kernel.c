/* The kernel dual of softmax attention with positive random features.
 *
 * exp(k.q/sqrt(d)) = exp(k'.q') with x' = x / d^{1/4}, and for w ~ N(0, I)
 *   E[exp(w.k' - |k'|^2/2) exp(w.q' - |q'|^2/2)] = exp(k'.q'),
 * so phi(x)_f = exp(w_f.x' - |x'|^2/2) / sqrt(r) gives an unbiased, positive
 * estimate of every attention score. The kernel dual then reads
 *   o_t ~ (W_0^phi + dW^phi) phi(q_t) / ((z_0 + dz).phi(q_t)),
 * W^phi = sum_j v_j phi(k_j)^T, z = sum_j phi(k_j), split over T u Q and D.
 * In product form that is sum_j v_j a_j / sum_j a_j with a_j = phi(k_j).phi(q).
 * a_j is formed in the log domain: every feature is an exponential, and a
 * common factor of all a_j cancels in the ratio, so nothing overflows.
 *
 * The variance of one feature's estimate of exp(x.y) is exp(|x+y|^2) - 1
 * times the square of the mean: large for the norms of real queries and
 * keys. LRGD_KERNEL_OPRF uses the one-parameter family
 *   phi(x)_f = (1-4A)^{d/4} exp(A|w_f|^2 + sqrt(1-4A) w_f.x' - |x'|^2/2) / sqrt(r),
 * unbiased for every A < 1/8 (A = 0 is the plain form). Its relative second
 * moment is (1-4A)^d (1-8A)^{-d/2} exp(s/(1-8A)) with s = |x'+y'|^2; the A
 * that minimizes it for the head's mean s solves d u^2 - (d+2s) u - 2s = 0,
 * u = 1 - 8A (worked out here; the same family is known as "optimal positive
 * random features"). A depends only on the head's data, never on w. */
#include "dual/dual_impl.h"

#include <math.h>
#include <string.h>

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

lrgd_status lrgd_prf_draw(float *omega, int r, int hd, uint64_t seed, uint64_t stream, int layer, int ri)
{
    if (r <= 0 || hd <= 0) return lrgd_fail(LRGD_E_INVALID, "random features: r = %d, head_dim = %d", r, hd);
    lrgd_rng rng;
    /* one stream per (caller's stream, layer, r index): the draws for one r
     * do not depend on which other r were asked for */
    lrgd_rng_seed(&rng, seed, mix64(mix64(stream) ^ ((uint64_t)layer << 20) ^ (uint64_t)ri));
    for (size_t i = 0; i < (size_t)r * hd; i++) omega[i] = (float)lrgd_rng_normal(&rng);
    return LRGD_OK;
}

double lrgd_prf_opt_a(const double *q, const float *k, int stride, int n, int hd)
{
    const double s2 = 1.0 / sqrt((double)hd); /* x'.y' = x.y / sqrt(d) */
    double s = 0;
    for (int j = 0; j < n; j++) {
        const float *kj = k + (size_t)j * stride;
        double e = 0;
        for (int a = 0; a < hd; a++) e += (q[a] + kj[a]) * (q[a] + kj[a]);
        s += e * s2;
    }
    s /= n;
    double d = hd, u = ((d + 2 * s) + sqrt((d + 2 * s) * (d + 2 * s) + 8 * d * s)) / (2 * d);
    return (1 - u) / 8;
}

void lrgd_prf_apply(const double *q, const float *k, const float *v, int stride, int n, const int *demo_of, int hd,
                    const float *omega, int r, double A, double *la, double *tf, double *o, double *lambda)
{
    const double s4 = 1.0 / sqrt(sqrt((double)hd)), B = sqrt(1 - 4 * A);
    /* log phi(q)_f up to constants that cancel in the ratio; the A|w_f|^2
     * term is carried on the query side (it is common to q and k) */
    double qn = 0;
    for (int a = 0; a < hd; a++) qn += q[a] * q[a] * s4 * s4;
    for (int f = 0; f < r; f++) {
        const float *w = omega + (size_t)f * hd;
        double s = 0, w2 = 0;
        for (int a = 0; a < hd; a++) s += (double)w[a] * q[a], w2 += (double)w[a] * w[a];
        tf[f] = B * s * s4 - 0.5 * qn + 2 * A * w2;
    }
    /* lq is kept in tf; la_j = log sum_f exp(lk_jf + lq_f) */
    double *lq = tf;
    double amax = -INFINITY;
    for (int j = 0; j < n; j++) {
        const float *kj = k + (size_t)j * stride;
        double kn = 0;
        for (int a = 0; a < hd; a++) kn += (double)kj[a] * kj[a];
        kn *= s4 * s4;
        double mx = -INFINITY, *t = tf + r;
        for (int f = 0; f < r; f++) {
            const float *w = omega + (size_t)f * hd;
            float s = 0;
#pragma omp simd reduction(+ : s)
            for (int a = 0; a < hd; a++) s += w[a] * kj[a];
            t[f] = B * (double)s * s4 - 0.5 * kn + lq[f];
            if (t[f] > mx) mx = t[f];
        }
        double sum = 0;
        for (int f = 0; f < r; f++) sum += exp(t[f] - mx);
        la[j] = mx + log(sum);
        if (la[j] > amax) amax = la[j];
    }
    double z = 0, zd = 0;
    memset(o, 0, (size_t)hd * sizeof(double));
    for (int j = 0; j < n; j++) {
        double w = exp(la[j] - amax);
        const float *vj = v + (size_t)j * stride;
        for (int a = 0; a < hd; a++) o[a] += w * vj[a];
        z += w;
        if (demo_of[j] >= 0) zd += w;
    }
    for (int a = 0; a < hd; a++) o[a] /= z;
    *lambda = zd / z;
}
