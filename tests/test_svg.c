/* SVG charts: well-formed output, points where the axes put them (linear and
 * log), gaps and the footnote for undrawable points, escaping, bars, atomic
 * write, bad arguments. */
#include "core/svg.h"
#include "test.h"

#include <unistd.h>

/* Tags balance and every element closes: a small well-formedness check. */
static int balanced(const char *s)
{
    char stack[64][32];
    int depth = 0;
    for (const char *c = s; (c = strchr(c, '<')) != NULL;) {
        const char *e = strchr(c, '>');
        if (!e) return 0;
        if (c[1] == '/') {
            char name[32] = {0};
            sscanf(c + 2, "%31[a-zA-Z]", name);
            if (depth == 0 || strcmp(stack[depth - 1], name) != 0) return 0;
            depth--;
        } else if (e[-1] != '/') {
            if (depth == 64) return 0;
            sscanf(c + 1, "%31[a-zA-Z]", stack[depth]);
            depth++;
        }
        c = e + 1;
    }
    return depth == 0;
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *c = s; (c = strstr(c, needle)) != NULL; c += strlen(needle)) n++;
    return n;
}

static void test_loglog(void)
{
    lrgd_plot *p;
    CHECK_OK(lrgd_plot_new(&p, "E3 <kernel> & error", "r", "relative error"));
    CHECK_OK(lrgd_plot_axes(p, 1, 1));
    CHECK_OK(lrgd_plot_xrange(p, 10, 1000));
    CHECK_OK(lrgd_plot_yrange(p, 0.01, 1));
    double x[4] = {10, 100, 1000, 500}, y[4] = {1, 0.1, 0.01, 0};
    CHECK_OK(lrgd_plot_series(p, "layer 0", x, y, NULL, 3, LRGD_PLOT_MARKERS));
    CHECK_OK(lrgd_plot_series(p, "with a zero", x, y, NULL, 4, LRGD_PLOT_DASHED));
    CHECK_OK(lrgd_plot_hline(p, 0.05, "5%"));
    char *svg;
    size_t n;
    CHECK_OK(lrgd_plot_render(p, &svg, &n));
    if (svg) {
        CHECK(strlen(svg) == n);
        CHECK(strncmp(svg, "<svg ", 5) == 0 && strstr(svg, "</svg>\n") == svg + n - 7);
        CHECK(balanced(svg));
        CHECK(strstr(svg, "E3 &lt;kernel&gt; &amp; error") != NULL);
        /* plot area: L = 72, T = 38, width 640 - 90 = 550, height 420 - 38 - 70 = 312 (footnote);
         * x = 100 is half way in log space, y = 0.1 half way */
        CHECK_MSG(strstr(svg, "72.0,38.0 347.0,194.0 622.0,350.0") != NULL, "log-log points misplaced");
        CHECK(count(svg, "<circle") == 3);
        CHECK(strstr(svg, "1 point not drawn") != NULL);
        CHECK(strstr(svg, ">100</text>") != NULL && strstr(svg, ">0.01</text>") != NULL);
        CHECK(strstr(svg, "stroke-dasharray=\"6 4\"") != NULL);
        CHECK(strstr(svg, ">5%</text>") != NULL);
        lrgd_free(svg);
    }
    lrgd_plot_free(p);
}

static void test_linear_and_bars(void)
{
    lrgd_plot *p;
    CHECK_OK(lrgd_plot_new(&p, "lines", "x", "y"));
    double x[5] = {0, 1, 2, 3, 4}, y[5] = {0, 1, NAN, 3, 4}, e[5] = {0.1, 0.1, 0.1, 0.1, 0.1};
    CHECK_OK(lrgd_plot_series(p, "a", x, y, e, 5, LRGD_PLOT_MARKERS));
    CHECK_OK(lrgd_plot_scatter(p, "b", x, x, 5));
    char *svg;
    CHECK_OK(lrgd_plot_render(p, &svg, NULL));
    if (svg) {
        CHECK(balanced(svg));
        CHECK_MSG(count(svg, "<polyline") == 2, "a NaN splits the line in two");
        CHECK(count(svg, "<circle") == 9);
        CHECK(strstr(svg, "1 point not drawn (not finite)") != NULL);
        lrgd_free(svg);
    }
    const double v[4] = {1, 2, 3, 4};
    CHECK(lrgd_plot_bars(p, 2, NULL, 2, NULL, v, NULL) == LRGD_E_INVALID); /* mixed */
    lrgd_plot_free(p);

    CHECK_OK(lrgd_plot_new(&p, "bars", "", "NDCG@10"));
    const char *cats[3] = {"Beauty", "Sports", "Toys"}, *ser[2] = {"zero-shot", "ICL"};
    const double vals[6] = {0.02, 0.01, 0.03, 0.04, 0.02, 0.05}, errs[6] = {0.001, 0.001, 0.001, 0.002, 0.002, 0.002};
    CHECK_OK(lrgd_plot_bars(p, 3, cats, 2, ser, vals, errs));
    CHECK(lrgd_plot_series(p, "x", x, y, NULL, 2, 0) == LRGD_E_INVALID);
    CHECK_OK(lrgd_plot_render(p, &svg, NULL));
    if (svg) {
        CHECK(balanced(svg));
        CHECK(count(svg, "fill=\"#0072B2\"/>") == 3 + 1 && count(svg, "fill=\"#D55E00\"/>") == 3 + 1); /* + legend */
        CHECK(strstr(svg, ">Sports</text>") != NULL && strstr(svg, ">zero-shot</text>") != NULL);
        lrgd_free(svg);
    }
    char path[256];
    snprintf(path, sizeof path, "/tmp/lrgd_test_svg_%d.svg", (int)getpid());
    CHECK_OK(lrgd_plot_write(p, path));
    char *back;
    size_t blen;
    CHECK_OK(lrgd_read_file(path, &back, &blen));
    if (back) CHECK(strncmp(back, "<svg ", 5) == 0);
    lrgd_free(back);
    unlink(path);
    CHECK(lrgd_plot_write(p, "/nonexistent-dir/x.svg") == LRGD_E_WRITE);
    lrgd_plot_free(p);
}

/* The legend goes to the corner with the fewest points under it. */
static void test_legend_corner(void)
{
    lrgd_plot *p;
    CHECK_OK(lrgd_plot_new(&p, "rising", "x", "y"));
    double x[6] = {0, 1, 2, 3, 3.8, 4}, y[6] = {0, 1, 2, 3, 3.9, 4};
    CHECK_OK(lrgd_plot_series(p, "a rising line", x, y, NULL, 6, LRGD_PLOT_MARKERS));
    CHECK_OK(lrgd_plot_series(p, "another", x, x, NULL, 6, 0));
    char *svg;
    CHECK_OK(lrgd_plot_render(p, &svg, NULL));
    if (svg) {
        /* the legend box is the only rect with fill-opacity; its corner */
        const char *r = strstr(svg, "fill-opacity");
        CHECK(r != NULL);
        if (r) {
            while (r > svg && strncmp(r, "<rect", 5)) r--;
            double lx = 0, ly = 0;
            CHECK(sscanf(r, "<rect x=\"%lf\" y=\"%lf\"", &lx, &ly) == 2);
            /* plot area 72..622 x 38..364: data fill the top right and bottom left */
            CHECK_MSG(!(lx > 347 && ly < 201), "legend over the data at (%g, %g)", lx, ly);
            CHECK_MSG(!(lx < 347 && ly > 201), "legend over the data at (%g, %g)", lx, ly);
        }
        lrgd_free(svg);
    }
    lrgd_plot_free(p);
}

static void test_bad(void)
{
    lrgd_plot *p;
    CHECK_OK(lrgd_plot_new(&p, "t", "x", "y"));
    CHECK(lrgd_plot_size(p, 10, 10) == LRGD_E_INVALID);
    CHECK(lrgd_plot_xrange(p, 2, 1) == LRGD_E_INVALID);
    CHECK(lrgd_plot_series(p, "s", NULL, NULL, NULL, 3, 0) == LRGD_E_INVALID);
    CHECK(lrgd_plot_series(p, "s", NULL, NULL, NULL, 0, 99) == LRGD_E_INVALID);
    CHECK(lrgd_plot_hline(p, NAN, "x") == LRGD_E_INVALID);
    CHECK_OK(lrgd_plot_axes(p, 0, 1));
    CHECK_OK(lrgd_plot_yrange(p, -1, 1));
    char *svg;
    CHECK(lrgd_plot_render(p, &svg, NULL) == LRGD_E_INVALID); /* log axis from -1 */
    /* an empty chart still renders */
    CHECK_OK(lrgd_plot_yrange(p, 1, 100));
    CHECK_OK(lrgd_plot_render(p, &svg, NULL));
    if (svg) CHECK(balanced(svg));
    lrgd_free(svg);
    lrgd_plot_free(p);
}

int main(void)
{
    test_loglog();
    test_linear_and_bars();
    test_legend_corner();
    test_bad();
    return t_finish("test_svg");
}
