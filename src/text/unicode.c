/* Unicode classes and lenient UTF-8 for the tokenizers. */
#include "text/text_impl.h"

#include <stdlib.h>

int lrgd_uc_class_of(uint32_t cp)
{
    if (cp >= 0x110000) return LRGD_UC_UNDEF;
    /* Last range whose start is <= cp. */
    int lo = 0, hi = lrgd_uc_n_ranges - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (lrgd_uc_start[mid] <= cp) lo = mid;
        else hi = mid - 1;
    }
    return lrgd_uc_class[lo];
}

int lrgd_uc_is_space(uint32_t cp)
{
    if (cp >= 0x09 && cp <= 0x0D) return 1;
    if (cp >= 0x2000 && cp <= 0x200A) return 1;
    switch (cp) {
    case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
        return 1;
    default:
        return 0;
    }
}

uint32_t lrgd_utf8_decode(const unsigned char *s, size_t len, size_t *pos)
{
    size_t i = *pos;
    unsigned c = s[i];
    if (c < 0x80) { *pos = i + 1; return c; }
    size_t need = c < 0xC0 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 0;
    if (need == 0 || i + need > len) { *pos = i + 1; return 0xFFFD; }
    for (size_t k = 1; k < need; k++)
        if ((s[i + k] & 0xC0) != 0x80) { *pos = i + 1; return 0xFFFD; }
    uint32_t cp;
    if (need == 2) cp = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
    else if (need == 3) cp = ((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
    else cp = ((c & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) | (s[i + 3] & 0x3Fu);
    *pos = i + need;
    return cp > 0x10FFFF ? 0xFFFD : cp;
}

size_t lrgd_utf8_encode(uint32_t cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

lrgd_status lrgd_ivec_push(lrgd_ivec *a, int x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int *v = cap <= ((size_t)1 << 40) ? realloc(a->v, cap * sizeof *v) : NULL;
        if (!v) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return LRGD_OK;
}

void lrgd_ivec_free(lrgd_ivec *a)
{
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}
