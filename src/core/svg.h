/* Small SVG charts for reports: lines, scatter, grouped bars, linear or log
 * axes, error bars, reference lines, a legend. No dependencies; the output is
 * a standalone SVG document (inline-able in HTML).
 *
 *   lrgd_plot *p;
 *   lrgd_plot_new(&p, "E3 kernel error", "random features r", "relative error");
 *   lrgd_plot_axes(p, 1, 1);                       // log-log
 *   lrgd_plot_series(p, "layer 0", r, err, NULL, n, LRGD_PLOT_MARKERS);
 *   lrgd_plot_write(p, "e3.svg");                  // atomic
 *   lrgd_plot_free(p);
 *
 * On a log axis, points with a value <= 0 (or not finite anywhere) cannot be
 * drawn: they are left out and the chart says how many in a footnote. */
#ifndef LRGD_SVG_H
#define LRGD_SVG_H

#include "core/core.h"

typedef struct lrgd_plot lrgd_plot;

enum {
    LRGD_PLOT_MARKERS = 1, /* a dot at each point */
    LRGD_PLOT_NOLINE = 2,  /* no connecting line (scatter) */
    LRGD_PLOT_DASHED = 4   /* dashed line (references, fits) */
};

lrgd_status lrgd_plot_new(lrgd_plot **out, const char *title, const char *xlabel, const char *ylabel);
void lrgd_plot_free(lrgd_plot *p);
/* Pixel size (default 640 x 420). */
lrgd_status lrgd_plot_size(lrgd_plot *p, int width, int height);
/* Log scale (base 10) per axis; the x axis of a bar chart is categorical. */
lrgd_status lrgd_plot_axes(lrgd_plot *p, int log_x, int log_y);
/* Fix an axis range instead of fitting the data (lo < hi; > 0 on log axes). */
lrgd_status lrgd_plot_xrange(lrgd_plot *p, double lo, double hi);
lrgd_status lrgd_plot_yrange(lrgd_plot *p, double lo, double hi);

/* A series of n points; yerr (NULL for none) draws y +- yerr. Arrays are copied. */
lrgd_status lrgd_plot_series(lrgd_plot *p, const char *label, const double *x, const double *y, const double *yerr,
                             int n, unsigned style);
/* Scatter shorthand: markers, no line. */
lrgd_status lrgd_plot_scatter(lrgd_plot *p, const char *label, const double *x, const double *y, int n);
/* Grouped bars: n_cats categories on x, n_series bars in each;
 * values[s * n_cats + c]; err NULL or the same layout. Not with series. */
lrgd_status lrgd_plot_bars(lrgd_plot *p, int n_cats, const char *const *cats, int n_series,
                           const char *const *series_labels, const double *values, const double *err);
/* A horizontal (y = v) or vertical (x = v) dashed reference line with a label. */
lrgd_status lrgd_plot_hline(lrgd_plot *p, double y, const char *label);
lrgd_status lrgd_plot_vline(lrgd_plot *p, double x, const char *label);

/* The SVG text (NUL-terminated, lrgd_free it). */
lrgd_status lrgd_plot_render(const lrgd_plot *p, char **svg, size_t *len);
/* Render and write atomically. */
lrgd_status lrgd_plot_write(const lrgd_plot *p, const char *path);

#endif
