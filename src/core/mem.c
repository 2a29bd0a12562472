#include "core/core.h"

#include <stdlib.h>
#include <string.h>

void *lrgd_alloc(size_t bytes)
{
    size_t rounded;
    if (bytes == 0) bytes = 1;
    if (!lrgd_add_ok(bytes, LRGD_ALIGN - 1, &rounded)) return NULL;
    rounded &= ~(size_t)(LRGD_ALIGN - 1);
    void *p = aligned_alloc(LRGD_ALIGN, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

void *lrgd_alloc_n(size_t n, size_t sz)
{
    size_t bytes;
    if (!lrgd_mul_ok(n, sz, &bytes)) return NULL;
    return lrgd_alloc(bytes);
}

void lrgd_free(void *p) { free(p); }

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
