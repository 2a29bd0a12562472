/* Minimal test harness: CHECK macros count failures, main returns non-zero
 * if any failed. One executable per concern, registered with ctest. */
#ifndef LRGD_TEST_H
#define LRGD_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_failures, t_checks;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        t_checks++;                                                                     \
        if (!(cond)) {                                                                  \
            t_failures++;                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                               \
    } while (0)

#define CHECK_MSG(cond, ...)                                                            \
    do {                                                                                \
        t_checks++;                                                                     \
        if (!(cond)) {                                                                  \
            t_failures++;                                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                               \
            fputc('\n', stderr);                                                        \
        }                                                                               \
    } while (0)

#define CHECK_OK(expr)                                                                  \
    do {                                                                                \
        lrgd_status st_ = (expr);                                                       \
        t_checks++;                                                                     \
        if (st_ != LRGD_OK) {                                                           \
            t_failures++;                                                               \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,       \
                    lrgd_last_error());                                                 \
        }                                                                               \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                           \
    do {                                                                                \
        double a_ = (a), b_ = (b);                                                      \
        t_checks++;                                                                     \
        if (!(fabs(a_ - b_) <= (tol))) {                                                \
            t_failures++;                                                               \
            fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s = %.9g, %s = %.9g, tol %g\n",  \
                    __FILE__, __LINE__, #a, a_, #b, b_, (double)(tol));                 \
        }                                                                               \
    } while (0)

/* Path of a file under ../shared (env LRGD_SHARED overrides). */
static inline const char *t_shared(const char *rel)
{
    static char buf[4096];
    const char *base = getenv("LRGD_SHARED");
    snprintf(buf, sizeof buf, "%s/%s", base ? base : "../shared", rel);
    return buf;
}

/* Under valgrind memcheck (scripts/valgrind.sh sets LRGD_VALGRIND=1) code runs
 * 50-500x slower. Memcheck looks for invalid accesses, uses of uninitialized
 * memory and leaks, which the same code paths show at a smaller size: heavy
 * tests shrink their work with t_size(), and the checks whose outcome needs
 * the full size (a trained model's quality, a statistical threshold, a wall
 * clock) run where t_full() holds: the Release and sanitizer suites. */
static inline int t_full(void)
{
    const char *v = getenv("LRGD_VALGRIND");
    return !(v && *v && strcmp(v, "0"));
}
static inline int t_size(int full, int small) { return t_full() ? full : small; }

static inline int t_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, t_checks, t_failures);
    return t_failures ? 1 : 0;
}

#endif
