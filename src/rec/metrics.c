/* Ranking metrics, confidence intervals and paired significance tests. */
#include "rec/rec.h"

#include <math.h>
#include <stdlib.h>

static const char *const metric_names[LRGD_N_METRICS] = {
    "HR@1", "HR@5", "HR@10", "HR@20", "NDCG@5", "NDCG@10", "NDCG@20", "MRR",
};

const char *lrgd_metric_name(lrgd_metric m)
{
    return (int)m >= 0 && m < LRGD_N_METRICS ? metric_names[m] : "?";
}

double lrgd_metric_value(lrgd_metric m, int32_t rank)
{
    if (rank < 1) return NAN;
    switch (m) {
    case LRGD_HR1: return rank <= 1;
    case LRGD_HR5: return rank <= 5;
    case LRGD_HR10: return rank <= 10;
    case LRGD_HR20: return rank <= 20;
    /* One relevant item: IDCG = 1, DCG = 1/log2(rank + 1). */
    case LRGD_NDCG5: return rank <= 5 ? 1.0 / log2((double)rank + 1) : 0.0;
    case LRGD_NDCG10: return rank <= 10 ? 1.0 / log2((double)rank + 1) : 0.0;
    case LRGD_NDCG20: return rank <= 20 ? 1.0 / log2((double)rank + 1) : 0.0;
    case LRGD_MRR: return 1.0 / rank;
    default: return NAN;
    }
}

/* ---- distributions ----------------------------------------------------------- */

/* Continued fraction of I_x(a,b) (the even/odd terms of the classical
 * expansion), evaluated with the modified Lentz method. Converges fast for
 * x < (a+1)/(a+b+2); the caller swaps to 1 - I_{1-x}(b,a) otherwise. */
static double betacf(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 1e-16;
    double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
    if (fabs(d) < tiny) d = tiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= 100000; m++) {
        double m2 = 2.0 * m;
        double e = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)); /* even term d_{2m} */
        d = 1.0 + e * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + e / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        h *= d * c;
        e = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0)); /* odd term d_{2m+1} */
        d = 1.0 + e * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1.0 + e / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) < eps) break;
    }
    return h;
}

double lrgd_betainc(double a, double b, double x)
{
    if (!(a > 0) || !(b > 0) || isnan(x)) return NAN;
    if (x <= 0) return 0.0;
    if (x >= 1) return 1.0;
    double lfront = a * log(x) + b * log1p(-x) - (lgamma(a) + lgamma(b) - lgamma(a + b));
    if (x < (a + 1.0) / (a + b + 2.0)) return exp(lfront) * betacf(a, b, x) / a;
    return 1.0 - exp(lfront) * betacf(b, a, 1.0 - x) / b;
}

double lrgd_t_cdf(double t, double df)
{
    if (isnan(t) || !(df > 0)) return NAN;
    if (isinf(t)) return t > 0 ? 1.0 : 0.0;
    /* P(|T| > |t|) = I_{df/(df+t^2)}(df/2, 1/2). */
    double x = df / (df + t * t);
    double tail = 0.5 * lrgd_betainc(0.5 * df, 0.5, x);
    return t > 0 ? 1.0 - tail : tail;
}

double lrgd_t_quantile(double p, double df)
{
    if (!(p > 0 && p < 1) || !(df > 0)) return NAN;
    if (p == 0.5) return 0.0;
    if (p < 0.5) return -lrgd_t_quantile(1.0 - p, df);
    double lo = 0.0, hi = 1.0;
    while (lrgd_t_cdf(hi, df) < p) {
        lo = hi;
        hi *= 2.0;
        if (hi > 1e300) return INFINITY;
    }
    for (int i = 0; i < 300 && hi - lo > 1e-15 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (lrgd_t_cdf(mid, df) < p) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

double lrgd_binom_cdf_half(int64_t k, int64_t n)
{
    if (n < 0) return NAN;
    if (k < 0) return 0.0;
    if (k >= n) return 1.0;
    /* Sum from the largest term downwards; terms rise up to n/2, so for
     * k > n/2 use the symmetric complement P(X <= k) = 1 - P(X <= n-k-1). */
    if (2 * k > n) return 1.0 - lrgd_binom_cdf_half(n - k - 1, n);
    double lt = lgamma((double)n + 1) - lgamma((double)k + 1) - lgamma((double)(n - k) + 1) - (double)n * log(2.0);
    double sum = 0.0, r = 1.0; /* r = C(n,i)/C(n,k) */
    for (int64_t i = k; i >= 0; i--) {
        sum += r;
        r *= (double)i / (double)(n - i + 1); /* C(n,i-1)/C(n,i) = i/(n-i+1) */
        if (r < 1e-18 * sum) break;
    }
    double p = exp(lt) * sum;
    return p > 1.0 ? 1.0 : p;
}

/* ---- summaries --------------------------------------------------------------- */

lrgd_status lrgd_mean_ci(const double *x, int64_t n, lrgd_interval *out)
{
    if (n < 1) return lrgd_fail(LRGD_E_INVALID, "mean interval: no values");
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(x[i])) return lrgd_fail(LRGD_E_NUMERIC, "mean interval: value %lld is NaN", (long long)i);
        s += x[i];
    }
    double mean = s / (double)n, ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (x[i] - mean) * (x[i] - mean);
    out->n = n;
    out->mean = mean;
    if (n < 2) {
        out->sd = NAN;
        out->lo = out->hi = NAN;
        return LRGD_OK;
    }
    out->sd = sqrt(ss / (double)(n - 1));
    double half = lrgd_t_quantile(0.975, (double)(n - 1)) * out->sd / sqrt((double)n);
    out->lo = mean - half;
    out->hi = mean + half;
    return LRGD_OK;
}

lrgd_status lrgd_metric_summary(lrgd_metric m, const int32_t *ranks, int64_t n, lrgd_interval *out)
{
    if ((int)m < 0 || m >= LRGD_N_METRICS) return lrgd_fail(LRGD_E_INVALID, "unknown metric %d", (int)m);
    if (n < 1) return lrgd_fail(LRGD_E_INVALID, "metric summary: no users");
    double *v = malloc((size_t)n * sizeof *v);
    if (!v) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++) {
        if (ranks[i] < 1) {
            free(v);
            return lrgd_fail(LRGD_E_INVALID, "metric summary: rank %d of user %lld is not >= 1", (int)ranks[i], (long long)i);
        }
        v[i] = lrgd_metric_value(m, ranks[i]);
    }
    lrgd_status st = lrgd_mean_ci(v, n, out);
    free(v);
    return st;
}

lrgd_status lrgd_paired_test(const double *a, const double *b, int64_t n, lrgd_paired *out)
{
    if (n < 1) return lrgd_fail(LRGD_E_INVALID, "paired test: no users");
    LRGD_TRY(lrgd_mean_ci(a, n, &out->a));
    LRGD_TRY(lrgd_mean_ci(b, n, &out->b));
    double *d = malloc((size_t)n * sizeof *d);
    if (!d) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    out->n = n;
    out->n_pos = out->n_neg = out->n_tie = 0;
    for (int64_t i = 0; i < n; i++) {
        d[i] = a[i] - b[i];
        if (d[i] > 0) out->n_pos++;
        else if (d[i] < 0) out->n_neg++;
        else out->n_tie++;
    }
    lrgd_interval di;
    lrgd_status st = lrgd_mean_ci(d, n, &di);
    free(d);
    if (st != LRGD_OK) return st;
    out->diff = di.mean;
    out->df = (double)(n - 1);
    if (n < 2) {
        out->diff_lo = out->diff_hi = out->t = out->p_t = NAN;
    } else if (di.sd == 0) {
        /* Every user moved by the same amount: no sampling noise left. */
        out->diff_lo = out->diff_hi = di.mean;
        out->t = di.mean == 0 ? 0.0 : (di.mean > 0 ? INFINITY : -INFINITY);
        out->p_t = di.mean == 0 ? 1.0 : 0.0;
    } else {
        out->diff_lo = di.lo;
        out->diff_hi = di.hi;
        out->t = di.mean / (di.sd / sqrt((double)n));
        out->p_t = 2.0 * lrgd_t_cdf(-fabs(out->t), out->df);
        if (out->p_t > 1) out->p_t = 1;
    }
    int64_t m = out->n_pos + out->n_neg;
    if (m == 0) {
        out->p_sign = 1.0;
    } else {
        int64_t k = out->n_pos < out->n_neg ? out->n_pos : out->n_neg;
        double p = 2.0 * lrgd_binom_cdf_half(k, m);
        out->p_sign = p > 1.0 ? 1.0 : p;
    }
    return LRGD_OK;
}
