/* The explicit gradient step on the dual linear model (check E4).
 *
 * The dual model is f_W(k) = W k. Its "training set" is the demonstration
 * tokens: input k_i (the RoPE-rotated key), target signal v_i. The loss
 *   L(W) = -sum_i v_i^T W k_i / sqrt(d)
 * rewards outputs aligned with the targets. This file deliberately shares no
 * code with the attention or the dual-model builder: the gradient comes from
 * a forward/backward pair through y_i = W k_i, so that E4 compares two
 * independent computations of the same matrix. */
#include "core/core.h"
#include "lrgd/dual.h"

#include <math.h>
#include <string.h>

double lrgd_gd_loss(const double *W, int d, const float *k, const float *v, int stride, const int *rows, int n)
{
    const double inv = 1.0 / sqrt((double)d);
    double L = 0;
    for (int i = 0; i < n; i++) {
        const float *ki = k + (size_t)rows[i] * stride, *vi = v + (size_t)rows[i] * stride;
        for (int a = 0; a < d; a++) {
            double y = 0; /* y_a = (W k_i)_a */
            for (int b = 0; b < d; b++) y += W[(size_t)a * d + b] * ki[b];
            L -= vi[a] * y * inv;
        }
    }
    return L;
}

void lrgd_gd_grad(double *G, int d, const float *k, const float *v, int stride, const int *rows, int n)
{
    const double inv = 1.0 / sqrt((double)d);
    memset(G, 0, (size_t)d * d * sizeof(double));
    for (int i = 0; i < n; i++) {
        const float *ki = k + (size_t)rows[i] * stride, *vi = v + (size_t)rows[i] * stride;
        /* backward of L_i = -v_i . y_i / sqrt(d): dL/dy_i = -v_i / sqrt(d);
         * backward of y_i = W k_i: dL/dW += (dL/dy_i) k_i^T */
        for (int a = 0; a < d; a++) {
            double dy = -(double)vi[a] * inv;
            double *Ga = G + (size_t)a * d;
            for (int b = 0; b < d; b++) Ga[b] += dy * ki[b];
        }
    }
}

lrgd_status lrgd_gd_step(double *W1, const double *W0, double lr, int d, const float *k, const float *v, int stride,
                         const int *rows, int n)
{
    size_t dd = (size_t)d * d;
    double *G = lrgd_alloc_n(dd, sizeof(double));
    if (!G) return lrgd_fail(LRGD_E_NOMEM, "gradient step: cannot allocate a %d x %d matrix", d, d);
    lrgd_gd_grad(G, d, k, v, stride, rows, n);
    for (size_t e = 0; e < dd; e++) W1[e] = W0[e] - lr * G[e];
    lrgd_free(G);
    return LRGD_OK;
}

double lrgd_loglog_slope(const double *x, const double *y, int n)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!(x[i] > 0 && y[i] > 0) || !isfinite(x[i]) || !isfinite(y[i])) continue;
        double lx = log(x[i]), ly = log(y[i]);
        sx += lx;
        sy += ly;
        sxx += lx * lx;
        sxy += lx * ly;
        m++;
    }
    if (m < 2) return NAN;
    double den = m * sxx - sx * sx;
    if (den == 0) return NAN;
    return (m * sxy - sx * sy) / den;
}
