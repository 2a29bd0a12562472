/* SVG charts (see svg.h). One pass: fit the ranges, pick ticks, emit text. */
#include "core/svg.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct plot_series {
    char *label;
    double *x, *y, *e;
    int n;
    unsigned style;
} plot_series;

typedef struct plot_ref {
    int vertical;
    double v;
    char *label;
} plot_ref;

struct lrgd_plot {
    char *title, *xlabel, *ylabel;
    int w, h, logx, logy;
    int fix_x, fix_y;
    double fx0, fx1, fy0, fy1;
    plot_series *s;
    int ns;
    int bars, n_cats, n_bs;
    char **cats, **bs_labels;
    double *bv, *be;
    plot_ref *refs;
    int nr;
};

/* A color-blind-friendly qualitative palette. */
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                      "#56B4E9", "#000000", "#F0E442", "#999999", "#882255"};
#define N_PALETTE (int)(sizeof palette / sizeof palette[0])

static char *dup_str(const char *s)
{
    if (!s) s = "";
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static double *dup_arr(const double *a, int n)
{
    if (!a) return NULL;
    double *d = malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (d) memcpy(d, a, sizeof(double) * (size_t)n);
    return d;
}

lrgd_status lrgd_plot_new(lrgd_plot **out, const char *title, const char *xlabel, const char *ylabel)
{
    if (!out) return lrgd_fail(LRGD_E_INVALID, "lrgd_plot_new: out is NULL");
    lrgd_plot *p = calloc(1, sizeof *p);
    if (!p) return lrgd_fail(LRGD_E_NOMEM, "plot: out of memory");
    p->title = dup_str(title);
    p->xlabel = dup_str(xlabel);
    p->ylabel = dup_str(ylabel);
    p->w = 640;
    p->h = 420;
    if (!p->title || !p->xlabel || !p->ylabel) {
        lrgd_plot_free(p);
        return lrgd_fail(LRGD_E_NOMEM, "plot: out of memory");
    }
    *out = p;
    return LRGD_OK;
}

void lrgd_plot_free(lrgd_plot *p)
{
    if (!p) return;
    free(p->title);
    free(p->xlabel);
    free(p->ylabel);
    for (int i = 0; i < p->ns; i++) {
        free(p->s[i].label);
        free(p->s[i].x);
        free(p->s[i].y);
        free(p->s[i].e);
    }
    free(p->s);
    for (int i = 0; i < p->n_cats; i++) free(p->cats[i]);
    for (int i = 0; i < p->n_bs; i++) free(p->bs_labels[i]);
    free(p->cats);
    free(p->bs_labels);
    free(p->bv);
    free(p->be);
    for (int i = 0; i < p->nr; i++) free(p->refs[i].label);
    free(p->refs);
    free(p);
}

lrgd_status lrgd_plot_size(lrgd_plot *p, int width, int height)
{
    if (!p || width < 200 || height < 150 || width > 10000 || height > 10000)
        return lrgd_fail(LRGD_E_INVALID, "plot: size %d x %d outside 200..10000 x 150..10000", width, height);
    p->w = width;
    p->h = height;
    return LRGD_OK;
}

lrgd_status lrgd_plot_axes(lrgd_plot *p, int log_x, int log_y)
{
    if (!p) return lrgd_fail(LRGD_E_INVALID, "plot: NULL");
    p->logx = log_x != 0;
    p->logy = log_y != 0;
    return LRGD_OK;
}

static lrgd_status set_range(lrgd_plot *p, int y, double lo, double hi)
{
    if (!p || !isfinite(lo) || !isfinite(hi) || !(lo < hi))
        return lrgd_fail(LRGD_E_INVALID, "plot: axis range [%g, %g] must have lo < hi", lo, hi);
    if (y) p->fix_y = 1, p->fy0 = lo, p->fy1 = hi;
    else p->fix_x = 1, p->fx0 = lo, p->fx1 = hi;
    return LRGD_OK;
}
lrgd_status lrgd_plot_xrange(lrgd_plot *p, double lo, double hi) { return set_range(p, 0, lo, hi); }
lrgd_status lrgd_plot_yrange(lrgd_plot *p, double lo, double hi) { return set_range(p, 1, lo, hi); }

lrgd_status lrgd_plot_series(lrgd_plot *p, const char *label, const double *x, const double *y, const double *yerr,
                             int n, unsigned style)
{
    if (!p || n < 0 || (n > 0 && (!x || !y)))
        return lrgd_fail(LRGD_E_INVALID, "plot series '%s': %d points at NULL", label ? label : "", n);
    if (p->bars) return lrgd_fail(LRGD_E_INVALID, "plot: series cannot be mixed with bars");
    if (style & ~(unsigned)(LRGD_PLOT_MARKERS | LRGD_PLOT_NOLINE | LRGD_PLOT_DASHED))
        return lrgd_fail(LRGD_E_INVALID, "plot series '%s': unknown style 0x%x", label ? label : "", style);
    plot_series *ns = realloc(p->s, sizeof *ns * (size_t)(p->ns + 1));
    if (!ns) return lrgd_fail(LRGD_E_NOMEM, "plot: out of memory");
    p->s = ns;
    plot_series *s = &p->s[p->ns];
    *s = (plot_series){dup_str(label), dup_arr(x, n), dup_arr(y, n), dup_arr(yerr, n), n, style};
    if (!s->label || (n && (!s->x || !s->y)) || (yerr && !s->e)) {
        free(s->label), free(s->x), free(s->y), free(s->e);
        return lrgd_fail(LRGD_E_NOMEM, "plot: out of memory");
    }
    if (!n) { /* keep empty series valid */
        free(s->x), free(s->y), free(s->e);
        s->x = s->y = s->e = NULL;
    }
    p->ns++;
    return LRGD_OK;
}

lrgd_status lrgd_plot_scatter(lrgd_plot *p, const char *label, const double *x, const double *y, int n)
{
    return lrgd_plot_series(p, label, x, y, NULL, n, LRGD_PLOT_MARKERS | LRGD_PLOT_NOLINE);
}

lrgd_status lrgd_plot_bars(lrgd_plot *p, int n_cats, const char *const *cats, int n_series,
                           const char *const *series_labels, const double *values, const double *err)
{
    if (!p || n_cats <= 0 || n_series <= 0 || !values || n_cats > 100000 || n_series > 1000)
        return lrgd_fail(LRGD_E_INVALID, "plot bars: %d categories x %d series", n_cats, n_series);
    if (p->ns || p->bars) return lrgd_fail(LRGD_E_INVALID, "plot: one bar set per chart, not mixed with series");
    int nv = n_cats * n_series;
    p->cats = calloc((size_t)n_cats, sizeof(char *));
    p->bs_labels = calloc((size_t)n_series, sizeof(char *));
    p->bv = dup_arr(values, nv);
    p->be = dup_arr(err, nv);
    p->n_cats = n_cats;
    p->n_bs = n_series;
    p->bars = 1;
    int ok = p->cats && p->bs_labels && p->bv && (!err || p->be);
    for (int i = 0; ok && i < n_cats; i++) ok = (p->cats[i] = dup_str(cats ? cats[i] : "")) != NULL;
    for (int i = 0; ok && i < n_series; i++) ok = (p->bs_labels[i] = dup_str(series_labels ? series_labels[i] : "")) != NULL;
    if (!ok) {
        if (!p->cats) p->n_cats = 0;
        if (!p->bs_labels) p->n_bs = 0;
        return lrgd_fail(LRGD_E_NOMEM, "plot: out of memory");
    }
    return LRGD_OK;
}

static lrgd_status add_ref(lrgd_plot *p, int vertical, double v, const char *label)
{
    if (!p || !isfinite(v)) return lrgd_fail(LRGD_E_INVALID, "plot: reference line at %g", v);
    plot_ref *nr = realloc(p->refs, sizeof *nr * (size_t)(p->nr + 1));
    if (!nr) return lrgd_fail(LRGD_E_NOMEM, "plot: out of memory");
    p->refs = nr;
    p->refs[p->nr] = (plot_ref){vertical, v, dup_str(label)};
    if (!p->refs[p->nr].label) return lrgd_fail(LRGD_E_NOMEM, "plot: out of memory");
    p->nr++;
    return LRGD_OK;
}
lrgd_status lrgd_plot_hline(lrgd_plot *p, double y, const char *label) { return add_ref(p, 0, y, label); }
lrgd_status lrgd_plot_vline(lrgd_plot *p, double x, const char *label) { return add_ref(p, 1, x, label); }

/* ---- rendering -------------------------------------------------------- */

typedef struct sbuf {
    char *b;
    size_t len, cap;
    int oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *s, const char *fmt, ...)
{
    if (s->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(s->b ? s->b + s->len : NULL, s->b ? s->cap - s->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { s->oom = 1; return; }
        if (s->b && s->len + (size_t)n < s->cap) { s->len += (size_t)n; return; }
        size_t nc = s->cap ? s->cap * 2 : 4096;
        while (nc < s->len + (size_t)n + 1) nc *= 2;
        char *nb = realloc(s->b, nc);
        if (!nb) { s->oom = 1; return; }
        s->b = nb;
        s->cap = nc;
    }
}

static void sb_text(sbuf *s, const char *t) /* XML-escaped */
{
    for (const char *c = t; *c; c++) {
        switch (*c) {
        case '&': sb_printf(s, "&amp;"); break;
        case '<': sb_printf(s, "&lt;"); break;
        case '>': sb_printf(s, "&gt;"); break;
        case '"': sb_printf(s, "&quot;"); break;
        default:
            if ((unsigned char)*c >= 0x20 || *c == '\t') sb_printf(s, "%c", *c);
        }
    }
}

typedef struct axis {
    int log;
    double lo, hi;    /* data range, then the drawn range */
    double ticks[64];
    int n_ticks;
    double minor[256];
    int n_minor;
} axis;

static int usable(const axis *a, double v) { return isfinite(v) && (!a->log || v > 0); }

static void axis_add(axis *a, double v, int *have)
{
    if (!usable(a, v)) return;
    if (!*have) a->lo = a->hi = v, *have = 1;
    else a->lo = v < a->lo ? v : a->lo, a->hi = v > a->hi ? v : a->hi;
}

static double nice_step(double range, int target)
{
    double raw = range / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

/* Expand the data range to round ticks (unless fixed) and list the ticks. */
static void axis_ticks(axis *a, int have, int fixed, double f0, double f1)
{
    if (fixed) a->lo = f0, a->hi = f1;
    else if (!have) a->lo = a->log ? 1 : 0, a->hi = a->log ? 10 : 1;
    if (a->log) {
        if (a->lo <= 0) a->lo = 1e-300;
        if (a->hi <= a->lo) a->hi = a->lo * 10;
        double e0 = floor(log10(a->lo) + 1e-9), e1 = ceil(log10(a->hi) - 1e-9);
        if (e1 <= e0) e1 = e0 + 1;
        if (!fixed) a->lo = pow(10, e0), a->hi = pow(10, e1);
        int every = (int)ceil((e1 - e0) / 10.0);
        if (every < 1) every = 1;
        a->n_ticks = a->n_minor = 0;
        for (double e = e0; e <= e1 + 1e-9 && a->n_ticks < 64; e += every) {
            double v = pow(10, e);
            if (v >= a->lo * (1 - 1e-12) && v <= a->hi * (1 + 1e-12)) a->ticks[a->n_ticks++] = v;
            if (e1 - e0 <= 6)
                for (int k = 2; k <= 9 && a->n_minor < 256; k++) {
                    double mv = k * v;
                    if (mv > a->lo && mv < a->hi) a->minor[a->n_minor++] = mv;
                }
        }
        return;
    }
    if (a->hi <= a->lo) {
        double pad = fabs(a->lo) > 0 ? fabs(a->lo) * 0.5 : 0.5;
        a->lo -= pad, a->hi += pad;
    }
    double step = nice_step(a->hi - a->lo, 5);
    if (!fixed) a->lo = floor(a->lo / step + 1e-9) * step, a->hi = ceil(a->hi / step - 1e-9) * step;
    a->n_ticks = a->n_minor = 0;
    for (double v = ceil(a->lo / step - 1e-9) * step; v <= a->hi + step * 1e-9 && a->n_ticks < 64; v += step)
        a->ticks[a->n_ticks++] = fabs(v) < step * 1e-9 ? 0 : v;
}

static double axis_frac(const axis *a, double v)
{
    if (a->log) return (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
    return (v - a->lo) / (a->hi - a->lo);
}

static void fmt_tick(char *buf, size_t n, double v) { snprintf(buf, n, "%g", v); }

lrgd_status lrgd_plot_render(const lrgd_plot *p, char **svg, size_t *len)
{
    if (!p || !svg) return lrgd_fail(LRGD_E_INVALID, "lrgd_plot_render: NULL argument");
    *svg = NULL;
    axis ax = {.log = p->bars ? 0 : p->logx}, ay = {.log = p->logy};
    int hx = 0, hy = 0;
    long skipped = 0;
    for (int i = 0; i < p->ns; i++)
        for (int k = 0; k < p->s[i].n; k++) {
            double x = p->s[i].x[k], y = p->s[i].y[k], e = p->s[i].e ? p->s[i].e[k] : 0;
            if (!usable(&ax, x) || !usable(&ay, y)) { skipped++; continue; }
            axis_add(&ax, x, &hx);
            axis_add(&ay, y, &hy);
            if (isfinite(e) && e > 0) axis_add(&ay, y + e, &hy), axis_add(&ay, y - e, &hy);
        }
    if (p->bars) {
        ax.lo = 0, ax.hi = p->n_cats, hx = 1;
        if (!ay.log) axis_add(&ay, 0, &hy);
        for (int i = 0; i < p->n_cats * p->n_bs; i++) {
            double v = p->bv[i], e = p->be ? p->be[i] : 0;
            if (!usable(&ay, v)) { skipped++; continue; }
            axis_add(&ay, v, &hy);
            if (isfinite(e) && e > 0) axis_add(&ay, v + e, &hy), axis_add(&ay, v - e, &hy);
        }
    }
    for (int i = 0; i < p->nr; i++) {
        if (p->refs[i].vertical && !p->bars) axis_add(&ax, p->refs[i].v, &hx);
        if (!p->refs[i].vertical) axis_add(&ay, p->refs[i].v, &hy);
    }
    if (p->fix_x && ax.log && p->fx0 <= 0) return lrgd_fail(LRGD_E_INVALID, "plot: log x range must be > 0");
    if (p->fix_y && ay.log && p->fy0 <= 0) return lrgd_fail(LRGD_E_INVALID, "plot: log y range must be > 0");
    if (p->bars) ax.n_ticks = 0;
    else axis_ticks(&ax, hx, p->fix_x, p->fx0, p->fx1);
    axis_ticks(&ay, hy, p->fix_y, p->fy0, p->fy1);

    const double L = 72, R = 18, T = 38, B = skipped ? 70 : 56;
    const double pw = p->w - L - R, ph = p->h - T - B;
#define PX(v) (L + axis_frac(&ax, (v)) * pw)
#define PY(v) (T + (1 - axis_frac(&ay, (v))) * ph)
    sbuf s = {0};
    sb_printf(&s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n", p->w, p->h, p->w, p->h);
    sb_printf(&s, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    sb_printf(&s, "<text x=\"%.1f\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">",
              L + pw / 2);
    sb_text(&s, p->title);
    sb_printf(&s, "</text>\n");
    /* grid and ticks */
    char tb[64];
    for (int i = 0; i < ay.n_minor; i++)
        sb_printf(&s, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#f0f0f0\"/>\n", L, L + pw,
                  PY(ay.minor[i]), PY(ay.minor[i]));
    for (int i = 0; i < ax.n_minor; i++)
        sb_printf(&s, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#f0f0f0\"/>\n", PX(ax.minor[i]),
                  PX(ax.minor[i]), T, T + ph);
    for (int i = 0; i < ay.n_ticks; i++) {
        double y = PY(ay.ticks[i]);
        fmt_tick(tb, sizeof tb, ay.ticks[i]);
        sb_printf(&s, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", L, L + pw, y, y);
        sb_printf(&s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", L - 6, y + 4, tb);
    }
    for (int i = 0; i < ax.n_ticks; i++) {
        double x = PX(ax.ticks[i]);
        fmt_tick(tb, sizeof tb, ax.ticks[i]);
        sb_printf(&s, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", x, x, T, T + ph);
        sb_printf(&s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x, T + ph + 16, tb);
    }
    sb_printf(&s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n", L,
              T, pw, ph);
    sb_printf(&s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", L + pw / 2, T + ph + 36);
    sb_text(&s, p->xlabel);
    sb_printf(&s, "</text>\n<text transform=\"translate(16 %.1f) rotate(-90)\" text-anchor=\"middle\">", T + ph / 2);
    sb_text(&s, p->ylabel);
    sb_printf(&s, "</text>\n");
    sb_printf(&s, "<clipPath id=\"plotarea\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n"
                  "<g clip-path=\"url(#plotarea)\">\n", L, T, pw, ph);

    /* bars */
    if (p->bars) {
        double gw = pw / p->n_cats, bw = gw * 0.8 / p->n_bs;
        double base = ay.log ? T + ph : PY(0 > ay.lo ? (0 < ay.hi ? 0 : ay.hi) : ay.lo);
        for (int sI = 0; sI < p->n_bs; sI++)
            for (int c = 0; c < p->n_cats; c++) {
                double v = p->bv[sI * p->n_cats + c];
                if (!usable(&ay, v)) continue;
                double x = L + c * gw + gw * 0.1 + sI * bw, y = PY(v);
                sb_printf(&s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", x,
                          y < base ? y : base, bw * 0.92, fabs(base - y), palette[sI % N_PALETTE]);
                double e = p->be ? p->be[sI * p->n_cats + c] : 0;
                if (isfinite(e) && e > 0) {
                    double lo = v - e, hi = v + e, xm = x + bw * 0.46;
                    double y0 = usable(&ay, lo) ? PY(lo) : T + ph, y1 = PY(hi);
                    sb_printf(&s, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>\n", xm, xm,
                              y0, y1);
                }
            }
    }
    /* series */
    for (int i = 0; i < p->ns; i++) {
        const plot_series *S = &p->s[i];
        const char *col = palette[i % N_PALETTE];
        if (!(S->style & LRGD_PLOT_NOLINE)) {
            int open = 0;
            for (int k = 0; k < S->n; k++) {
                if (!usable(&ax, S->x[k]) || !usable(&ay, S->y[k])) { /* a gap */
                    if (open) sb_printf(&s, "\"/>\n");
                    open = 0;
                    continue;
                }
                if (!open)
                    sb_printf(&s, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", col,
                              S->style & LRGD_PLOT_DASHED ? " stroke-dasharray=\"6 4\"" : "");
                sb_printf(&s, "%s%.1f,%.1f", open ? " " : "", PX(S->x[k]), PY(S->y[k]));
                open = 1;
            }
            if (open) sb_printf(&s, "\"/>\n");
        }
        for (int k = 0; k < S->n; k++) {
            if (!usable(&ax, S->x[k]) || !usable(&ay, S->y[k])) continue;
            double x = PX(S->x[k]), y = PY(S->y[k]);
            if (S->style & LRGD_PLOT_MARKERS)
                sb_printf(&s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.2\" fill=\"%s\"/>\n", x, y, col);
            double e = S->e ? S->e[k] : 0;
            if (isfinite(e) && e > 0) {
                double lo = S->y[k] - e, hi = S->y[k] + e;
                sb_printf(&s, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n", x, x,
                          usable(&ay, lo) ? PY(lo) : T + ph, PY(hi), col);
            }
        }
    }
    /* reference lines */
    for (int i = 0; i < p->nr; i++) {
        const plot_ref *r = &p->refs[i];
        if (r->vertical ? (p->bars || !usable(&ax, r->v)) : !usable(&ay, r->v)) continue;
        if (r->vertical) {
            double x = PX(r->v);
            sb_printf(&s, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#777777\" "
                          "stroke-dasharray=\"4 3\"/>\n<text x=\"%.1f\" y=\"%.1f\" fill=\"#555555\">", x, x, T, T + ph,
                      x + 4, T + 14);
        } else {
            double y = PY(r->v);
            sb_printf(&s, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#777777\" "
                          "stroke-dasharray=\"4 3\"/>\n<text x=\"%.1f\" y=\"%.1f\" fill=\"#555555\">", L, L + pw, y, y,
                      L + 6, y - 4);
        }
        sb_text(&s, r->label);
        sb_printf(&s, "</text>\n");
    }
    sb_printf(&s, "</g>\n");
    /* category labels of a bar chart */
    if (p->bars) {
        double gw = pw / p->n_cats;
        int every = (int)ceil(p->n_cats * 60.0 / pw);
        for (int c = 0; c < p->n_cats; c += every < 1 ? 1 : every) {
            sb_printf(&s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", L + (c + 0.5) * gw, T + ph + 16);
            sb_text(&s, p->cats[c]);
            sb_printf(&s, "</text>\n");
        }
    }
    /* legend: inside the plot, in the corner that covers the fewest data points */
    int n_leg = p->bars ? p->n_bs : p->ns;
    if (n_leg > 1 || (n_leg == 1 && (p->bars ? p->bs_labels[0][0] : p->s[0].label[0]))) {
        size_t longest = 0;
        for (int i = 0; i < n_leg; i++) {
            size_t l = strlen(p->bars ? p->bs_labels[i] : p->s[i].label);
            longest = l > longest ? l : longest;
        }
        double lw = 34 + 7.0 * (double)longest, lh = 8 + 16 * n_leg, lx = L + pw - lw - 8, ly = T + 8;
        long best = -1;
        for (int corner = 0; corner < 4; corner++) { /* top right, top left, bottom right, bottom left */
            double cx = corner & 1 ? L + 8 : L + pw - lw - 8, cy = corner & 2 ? T + ph - lh - 8 : T + 8;
            long hits = 0;
            for (int i = 0; i < p->ns; i++)
                for (int k = 0; k < p->s[i].n; k++) {
                    if (!usable(&ax, p->s[i].x[k]) || !usable(&ay, p->s[i].y[k])) continue;
                    double x = PX(p->s[i].x[k]), y = PY(p->s[i].y[k]);
                    hits += x >= cx - 4 && x <= cx + lw + 4 && y >= cy - 4 && y <= cy + lh + 4;
                }
            for (int c = 0; p->bars && c < p->n_cats; c++) /* bars reach down from their tops */
                for (int sI = 0; sI < p->n_bs; sI++) {
                    double v = p->bv[sI * p->n_cats + c];
                    if (!usable(&ay, v)) continue;
                    double gw = pw / p->n_cats, x = L + c * gw + gw * 0.1 + (sI + 0.5) * gw * 0.8 / p->n_bs;
                    hits += x >= cx - 4 && x <= cx + lw + 4 && PY(v) <= cy + lh + 4;
                }
            if (best < 0 || hits < best) best = hits, lx = cx, ly = cy;
        }
        sb_printf(&s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%d\" fill=\"white\" fill-opacity=\"0.85\" "
                      "stroke=\"#cccccc\"/>\n", lx, ly, lw, (int)lh);
        for (int i = 0; i < n_leg; i++) {
            double y = ly + 14 + 16 * i;
            const char *col = palette[i % N_PALETTE];
            if (p->bars || (p->s[i].style & LRGD_PLOT_NOLINE))
                sb_printf(&s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"14\" height=\"9\" fill=\"%s\"/>\n", lx + 6, y - 8,
                          col);
            else
                sb_printf(&s, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
                          lx + 5, lx + 21, y - 4, y - 4, col,
                          p->s[i].style & LRGD_PLOT_DASHED ? " stroke-dasharray=\"5 3\"" : "");
            sb_printf(&s, "<text x=\"%.1f\" y=\"%.1f\">", lx + 27, y);
            sb_text(&s, p->bars ? p->bs_labels[i] : p->s[i].label);
            sb_printf(&s, "</text>\n");
        }
    }
    if (skipped)
        sb_printf(&s, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" fill=\"#aa0000\">%ld point%s not drawn (not finite%s)"
                      "</text>\n", L, p->h - 8, skipped, skipped == 1 ? "" : "s",
                  ax.log || ay.log ? ", or &lt;= 0 on a log axis" : "");
    sb_printf(&s, "</svg>\n");
#undef PX
#undef PY
    if (s.oom) {
        free(s.b);
        return lrgd_fail(LRGD_E_NOMEM, "plot: out of memory while rendering");
    }
    /* hand out an lrgd_alloc'd copy so the caller frees it like other lrgd buffers */
    char *outb = lrgd_alloc(s.len + 1);
    if (!outb) {
        free(s.b);
        return lrgd_fail(LRGD_E_NOMEM, "plot: out of memory");
    }
    memcpy(outb, s.b, s.len + 1);
    free(s.b);
    *svg = outb;
    if (len) *len = s.len;
    return LRGD_OK;
}

lrgd_status lrgd_plot_write(const lrgd_plot *p, const char *path)
{
    char *svg;
    size_t n;
    LRGD_TRY(lrgd_plot_render(p, &svg, &n));
    lrgd_status st = lrgd_write_file_atomic(path, svg, n);
    lrgd_free(svg);
    return st;
}
