#include "core/core.h"

#include <stdio.h>
#include <unistd.h>

static int g_quiet;
void lrgd_set_quiet(int quiet) { g_quiet = quiet; }
int lrgd_is_quiet(void) { return g_quiet; }

void lrgd_progress_begin(lrgd_progress *p, const char *label, const char *unit, double total)
{
    p->label = label;
    p->unit = unit ? unit : "it";
    p->total = total;
    p->t0 = p->t_last = lrgd_now();
    p->tty = isatty(STDERR_FILENO);
    p->quiet = g_quiet;
    p->drawn = 0;
    /* A terminal can take frequent redraws; a log file wants few lines. */
    p->every_s = p->tty ? 0.2 : 10.0;
}

static void fmt_time(char *buf, size_t n, double s)
{
    if (s < 0 || s > 1e7) { snprintf(buf, n, "?"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%dh%02dm", t / 3600, t / 60 % 60);
    else snprintf(buf, n, "%dm%02ds", t / 60, t % 60);
}

static void draw(lrgd_progress *p, double done, const char *extra, int final)
{
    double el = lrgd_now() - p->t0;
    double rate = el > 0 ? done / el : 0;
    char eta[32], elapsed[32];
    fmt_time(eta, sizeof eta, rate > 0 && p->total > 0 ? (p->total - done) / rate : -1);
    fmt_time(elapsed, sizeof elapsed, el);
    double frac = p->total > 0 ? done / p->total : 0;
    if (frac > 1) frac = 1;
    if (p->tty) {
        char bar[21];
        int filled = (int)(frac * 20);
        for (int i = 0; i < 20; i++) bar[i] = i < filled ? '#' : '.';
        bar[20] = 0;
        fprintf(stderr, "\r\033[K%s [%s] %5.1f%% %.0f/%.0f %.1f %s/s %s %s%s%s", p->label, bar,
                100 * frac, done, p->total, rate, p->unit, final ? "took" : "ETA", final ? elapsed : eta,
                extra ? " " : "", extra ? extra : "");
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s: %.0f/%.0f (%.1f%%) %.1f %s/s, %s %s%s%s\n", p->label, done, p->total,
                100 * frac, rate, p->unit, final ? "took" : "ETA", final ? elapsed : eta,
                extra ? ", " : "", extra ? extra : "");
    }
    fflush(stderr);
    p->drawn = 1;
}

void lrgd_progress_update(lrgd_progress *p, double done, const char *extra)
{
    if (p->quiet) return;
    double now = lrgd_now();
    if (now - p->t_last < p->every_s) return;
    p->t_last = now;
    draw(p, done, extra, 0);
}

void lrgd_progress_end(lrgd_progress *p, double done, const char *extra)
{
    if (p->quiet) return;
    /* Short jobs on a pipe stay silent; a drawn bar always gets its final line. */
    if (!p->tty && !p->drawn && lrgd_now() - p->t0 < p->every_s) return;
    draw(p, done, extra, 1);
}
