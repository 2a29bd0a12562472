/* Aligned allocation with a process-wide memory limit, the arena, and the
 * up-front memory plans of lrgd_mem_plan_check.
 *
 * Accounting: every lrgd_alloc of at least TRACK_MIN bytes, and every file
 * mapping (lrgd_mem_reserve), is charged against the limit. Smaller blocks
 * are not counted: they are many, short-lived and together small, and a
 * table entry each would cost more than they weigh. lrgd_free is also handed
 * plain malloc() buffers (lrgd_read_file's), so a block is uncharged only if
 * the table of charged blocks knows it. */
#include "core/core.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACK_MIN 4096

static _Atomic size_t g_limit; /* 0: no limit */
static _Atomic size_t g_used, g_peak;
static _Atomic int g_plans_off;

/* Charged blocks: open addressing, pointer -> bytes; a spin lock (allocations
 * of this size are rare and the critical sections a few loads long). */
typedef struct slot { void *p; size_t n; } slot;
#define TOMB ((void *)1)
static atomic_flag g_lock = ATOMIC_FLAG_INIT;
static slot *g_tab;
static size_t g_tcap, g_tcnt, g_tomb;

static _Thread_local char g_note[400]; /* why the last refused allocation was refused */

static void lock(void)
{
    while (atomic_flag_test_and_set_explicit(&g_lock, memory_order_acquire)) {
    }
}
static void unlock(void) { atomic_flag_clear_explicit(&g_lock, memory_order_release); }

static size_t hash_ptr(const void *p, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

/* Insert with the lock held; 0 if the table cannot grow. */
static int tab_put(void *p, size_t n)
{
    if ((g_tcnt + g_tomb + 1) * 2 > g_tcap) {
        size_t nc = g_tcap ? g_tcap * 2 : 256;
        while ((g_tcnt + 1) * 4 > nc) nc *= 2;
        slot *nt = calloc(nc, sizeof *nt);
        if (!nt) return 0;
        for (size_t i = 0; i < g_tcap; i++)
            if (g_tab[i].p && g_tab[i].p != TOMB) {
                size_t h = hash_ptr(g_tab[i].p, nc);
                while (nt[h].p) h = (h + 1) & (nc - 1);
                nt[h] = g_tab[i];
            }
        free(g_tab);
        g_tab = nt;
        g_tcap = nc;
        g_tomb = 0;
    }
    size_t h = hash_ptr(p, g_tcap);
    while (g_tab[h].p && g_tab[h].p != TOMB) h = (h + 1) & (g_tcap - 1);
    if (g_tab[h].p == TOMB) g_tomb--;
    g_tab[h] = (slot){p, n};
    g_tcnt++;
    return 1;
}

/* Remove with the lock held; the charged bytes, 0 if p was not charged. */
static size_t tab_take(const void *p)
{
    if (!g_tcap) return 0;
    size_t h = hash_ptr(p, g_tcap);
    while (g_tab[h].p) {
        if (g_tab[h].p == p) {
            size_t n = g_tab[h].n;
            g_tab[h].p = TOMB;
            g_tcnt--;
            g_tomb++;
            return n;
        }
        h = (h + 1) & (g_tcap - 1);
    }
    return 0;
}

/* Add n to the bytes in use unless that passes the limit. */
static int charge(size_t n)
{
    size_t used = atomic_load(&g_used), next;
    do {
        size_t lim = atomic_load(&g_limit);
        if (!lrgd_add_ok(used, n, &next) || (lim && next > lim)) return 0;
    } while (!atomic_compare_exchange_weak(&g_used, &used, next));
    size_t peak = atomic_load(&g_peak);
    while (next > peak && !atomic_compare_exchange_weak(&g_peak, &peak, next)) {
    }
    return 1;
}

static void uncharge(size_t n)
{
    size_t used = atomic_load(&g_used);
    while (!atomic_compare_exchange_weak(&g_used, &used, used >= n ? used - n : 0)) {
    }
}

void lrgd_mem_format(double bytes, char *buf, size_t n)
{
    static const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    while (bytes >= 1024 && u < 6) {
        bytes /= 1024;
        u++;
    }
    if (u == 0) snprintf(buf, n, "%.0f bytes", bytes);
    else snprintf(buf, n, "%.*f %s", bytes < 10 ? 2 : bytes < 100 ? 1 : 0, bytes, unit[u]);
}

/* "src/model/forward.c" from whatever path the compiler was given. */
static const char *short_path(const char *file)
{
    static const char *roots[] = {"/src/", "/tools/", "/tests/", "/fuzz/", "/bench/"};
    const char *best = NULL;
    for (size_t i = 0; i < sizeof roots / sizeof *roots; i++) {
        const char *s = strstr(file, roots[i]);
        if (s && (!best || s > best)) best = s;
    }
    return best ? best + 1 : file;
}

void *lrgd_alloc_at(size_t bytes, const char *file, int line)
{
    size_t rounded;
    if (bytes == 0) bytes = 1;
    if (!lrgd_add_ok(bytes, LRGD_ALIGN - 1, &rounded)) return NULL;
    rounded &= ~(size_t)(LRGD_ALIGN - 1);
    int track = rounded >= TRACK_MIN;
    if (track && !charge(rounded)) {
        char a[32], u[32], l[32];
        lrgd_mem_format((double)rounded, a, sizeof a);
        lrgd_mem_format((double)atomic_load(&g_used), u, sizeof u);
        lrgd_mem_format((double)atomic_load(&g_limit), l, sizeof l);
        snprintf(g_note, sizeof g_note, "memory limit of %s (--max-memory) exceeded at %s:%d: %s more requested with %s in use",
                 l, file ? short_path(file) : "?", line, a, u);
        return NULL;
    }
    void *p = aligned_alloc(LRGD_ALIGN, rounded);
    if (p && track) {
        lock();
        int ok = tab_put(p, rounded);
        unlock();
        if (!ok) {
            free(p);
            p = NULL;
        }
    }
    if (!p) {
        if (track) uncharge(rounded);
        return NULL;
    }
    memset(p, 0, rounded);
    return p;
}

void *lrgd_alloc_n_at(size_t n, size_t sz, const char *file, int line)
{
    size_t bytes;
    if (!lrgd_mul_ok(n, sz, &bytes)) return NULL;
    return lrgd_alloc_at(bytes, file, line);
}

/* The plain functions, for anyone who takes their address. */
void *(lrgd_alloc)(size_t bytes) { return lrgd_alloc_at(bytes, NULL, 0); }
void *(lrgd_alloc_n)(size_t n, size_t sz) { return lrgd_alloc_n_at(n, sz, NULL, 0); }

void lrgd_free(void *p)
{
    if (!p) return;
    if (malloc_usable_size(p) >= TRACK_MIN) {
        lock();
        size_t n = tab_take(p);
        unlock();
        if (n) uncharge(n);
    }
    free(p);
}

/* ---- the limit ---------------------------------------------------------------- */

void lrgd_mem_set_limit(size_t bytes) { atomic_store(&g_limit, bytes); }
size_t lrgd_mem_limit(void) { return atomic_load(&g_limit); }
size_t lrgd_mem_in_use(void) { return atomic_load(&g_used); }
size_t lrgd_mem_peak(void) { return atomic_load(&g_peak); }
void lrgd_mem_set_plan_checks(int on) { atomic_store(&g_plans_off, !on); }

const char *lrgd_mem_take_note(void)
{
    static _Thread_local char taken[sizeof g_note];
    if (!g_note[0]) return NULL;
    memcpy(taken, g_note, sizeof taken);
    g_note[0] = 0;
    return taken;
}

lrgd_status lrgd_mem_reserve(size_t bytes, const char *what)
{
    if (charge(bytes)) return LRGD_OK; /* exact, so never skipped like an estimate */
    char b[32], l[32], u[32];
    lrgd_mem_format((double)bytes, b, sizeof b);
    lrgd_mem_format((double)atomic_load(&g_limit), l, sizeof l);
    lrgd_mem_format((double)atomic_load(&g_used), u, sizeof u);
    return lrgd_fail(LRGD_E_INVALID, "%s (%s) does not fit in the memory limit of %s (--max-memory) with %s already in use",
                     what, b, l, u);
}

void lrgd_mem_release(size_t bytes) { uncharge(bytes); }

/* ---- plans ------------------------------------------------------------------------ */

void lrgd_mem_plan_add(lrgd_mem_plan *p, const char *what, double bytes)
{
    if (!(bytes > 0)) return;
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->what[i], what)) {
            p->bytes[i] += bytes;
            return;
        }
    if (p->n < LRGD_MEM_PLAN_MAX) {
        p->what[p->n] = what;
        p->bytes[p->n++] = bytes;
    } else
        p->bytes[p->n - 1] += bytes; /* never silently dropped */
}

double lrgd_mem_plan_total(const lrgd_mem_plan *p)
{
    double t = 0;
    for (int i = 0; i < p->n; i++) t += p->bytes[i];
    return t;
}

static lrgd_status over_limit(const lrgd_mem_plan *p, const char *task);

lrgd_status lrgd_mem_plan_check(const lrgd_mem_plan *p, const char *task)
{
    size_t lim = atomic_load(&g_limit), used = atomic_load(&g_used);
    if (!lim || atomic_load(&g_plans_off) || (double)used + lrgd_mem_plan_total(p) <= (double)lim) return LRGD_OK;
    return over_limit(p, task);
}

static lrgd_status over_limit(const lrgd_mem_plan *p, const char *task)
{
    size_t lim = atomic_load(&g_limit), used = atomic_load(&g_used);
    double total = lrgd_mem_plan_total(p);
    char parts[600], b[32], t[32], l[32], u[32];
    size_t w = 0;
    parts[0] = 0;
    for (int i = 0; i < p->n && w < sizeof parts; i++) {
        lrgd_mem_format(p->bytes[i], b, sizeof b);
        int k = snprintf(parts + w, sizeof parts - w, "%s%s %s", i ? " + " : "", p->what[i], b);
        if (k < 0) break;
        w += (size_t)k;
    }
    lrgd_mem_format(total, t, sizeof t);
    lrgd_mem_format((double)lim, l, sizeof l);
    lrgd_mem_format((double)used, u, sizeof u);
    if (used)
        return lrgd_fail(LRGD_E_INVALID,
                         "%s needs an estimated %s (%s) with %s already in use, over the memory limit of %s "
                         "(--max-memory)",
                         task, t, parts, u, l);
    return lrgd_fail(LRGD_E_INVALID, "%s needs an estimated %s (%s), over the memory limit of %s (--max-memory)", task, t,
                     parts, l);
}

/* ---- arena -------------------------------------------------------------------------- */

lrgd_status lrgd_arena_init(lrgd_arena *a, size_t cap)
{
    a->base = lrgd_alloc(cap);
    a->cap = a->base ? cap : 0;
    a->used = 0;
    if (!a->base) return lrgd_fail(LRGD_E_NOMEM, "arena: cannot allocate %zu bytes", cap);
    return LRGD_OK;
}

void *lrgd_arena_alloc(lrgd_arena *a, size_t bytes)
{
    size_t start = (a->used + LRGD_ALIGN - 1) & ~(size_t)(LRGD_ALIGN - 1), end;
    if (start < a->used || !lrgd_add_ok(start, bytes, &end) || end > a->cap) return NULL;
    a->used = end;
    return a->base + start;
}

float *lrgd_arena_f32(lrgd_arena *a, size_t n)
{
    size_t bytes;
    if (!lrgd_mul_ok(n, sizeof(float), &bytes)) return NULL;
    return lrgd_arena_alloc(a, bytes);
}

void lrgd_arena_reset(lrgd_arena *a) { a->used = 0; }

void lrgd_arena_free(lrgd_arena *a)
{
    lrgd_free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}
