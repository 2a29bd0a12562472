/* Rank and linear correlation for the Effect_D validity check. */
#include "lrgd/effect.h"

#include "core/core.h"

#include <math.h>
#include <stdlib.h>

typedef struct { double v; int i; } vi_pair;

static int cmp_vi(const void *a, const void *b)
{
    const vi_pair *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* 1-based ranks, tied values share the mean of their positions */
static int avg_ranks(const double *x, int n, double *r)
{
    vi_pair *p = malloc((size_t)n * sizeof *p);
    if (!p) return -1;
    for (int i = 0; i < n; i++) p[i] = (vi_pair){x[i], i};
    qsort(p, (size_t)n, sizeof *p, cmp_vi);
    for (int a = 0; a < n;) {
        int b = a + 1;
        while (b < n && p[b].v == p[a].v) b++;
        double mean = 0.5 * ((a + 1) + b); /* positions a+1 .. b */
        for (int k = a; k < b; k++) r[p[k].i] = mean;
        a = b;
    }
    free(p);
    return 0;
}

double lrgd_pearson(const double *x, const double *y, int n)
{
    if (n < 2) return NAN;
    double mx = 0, my = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) return NAN;
        mx += x[i];
        my += y[i];
    }
    mx /= n;
    my /= n;
    double sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    if (sxx <= 0 || syy <= 0) return NAN;
    return sxy / sqrt(sxx * syy);
}

double lrgd_spearman(const double *x, const double *y, int n)
{
    if (n < 2) return NAN;
    for (int i = 0; i < n; i++)
        if (isnan(x[i]) || isnan(y[i])) return NAN;
    double *rx = malloc((size_t)n * sizeof *rx), *ry = malloc((size_t)n * sizeof *ry);
    double rho = NAN;
    if (rx && ry && avg_ranks(x, n, rx) == 0 && avg_ranks(y, n, ry) == 0) rho = lrgd_pearson(rx, ry, n);
    free(rx);
    free(ry);
    return rho;
}
