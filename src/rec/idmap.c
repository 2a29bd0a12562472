/* Id maps and name buffers for datasets: external id <-> dense id. */
#include "rec/rec.h"

#include <stdlib.h>
#include <string.h>

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

/* A 64-bit mixer (splitmix finalizer) spreads sequential ids over the table. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

lrgd_status rec_intmap_init(rec_intmap *m, size_t expect)
{
    memset(m, 0, sizeof *m);
    m->cap = pow2_at_least(expect * 2 + 1);
    m->keys = malloc(m->cap * sizeof *m->keys);
    m->vals = malloc(m->cap * sizeof *m->vals);
    if (!m->keys || !m->vals) { rec_intmap_free(m); return lrgd_fail(LRGD_E_NOMEM, "out of memory (id map)"); }
    memset(m->keys, 0xff, m->cap * sizeof *m->keys); /* all -1 */
    return LRGD_OK;
}

void rec_intmap_free(rec_intmap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static int intmap_grow(rec_intmap *m)
{
    rec_intmap n;
    if (rec_intmap_init(&n, m->cap) != LRGD_OK) return -1; /* new cap = 4x old count bound */
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] >= 0) {
            size_t mask = n.cap - 1, h = (size_t)mix64((uint64_t)m->keys[i]) & mask;
            while (n.keys[h] >= 0) h = (h + 1) & mask;
            n.keys[h] = m->keys[i];
            n.vals[h] = m->vals[i];
        }
    n.count = m->count;
    rec_intmap_free(m);
    *m = n;
    return 0;
}

int32_t rec_intmap_put(rec_intmap *m, int64_t key, int32_t val)
{
    if ((m->count + 1) * 2 > m->cap && intmap_grow(m) != 0) return -2;
    size_t mask = m->cap - 1, h = (size_t)mix64((uint64_t)key) & mask;
    while (m->keys[h] >= 0) {
        if (m->keys[h] == key) return m->vals[h];
        h = (h + 1) & mask;
    }
    m->keys[h] = key;
    m->vals[h] = val;
    m->count++;
    return -1;
}

int32_t rec_intmap_get(const rec_intmap *m, int64_t key)
{
    if (!m->cap || key < 0) return -1;
    size_t mask = m->cap - 1, h = (size_t)mix64((uint64_t)key) & mask;
    while (m->keys[h] >= 0) {
        if (m->keys[h] == key) return m->vals[h];
        h = (h + 1) & mask;
    }
    return -1;
}

uint64_t rec_hash_bytes(const char *s, size_t len)
{
    /* FNV-1a, then mixed: short tokens, few of them; quality over speed is moot. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return mix64(h ^ len);
}

lrgd_status rec_strmap_init(rec_strmap *m, size_t expect)
{
    memset(m, 0, sizeof *m);
    m->cap = pow2_at_least(expect * 2 + 1);
    m->slot = malloc(m->cap * sizeof *m->slot);
    m->hash = malloc(m->cap * sizeof *m->hash);
    if (!m->slot || !m->hash) { rec_strmap_free(m); return lrgd_fail(LRGD_E_NOMEM, "out of memory (name map)"); }
    memset(m->slot, 0xff, m->cap * sizeof *m->slot);
    return LRGD_OK;
}

void rec_strmap_free(rec_strmap *m)
{
    free(m->slot);
    free(m->hash);
    memset(m, 0, sizeof *m);
}

int32_t rec_strmap_get(const rec_strmap *m, const rec_names *names, const char *s, size_t len, uint64_t h)
{
    if (!m->cap) return -1;
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    while (m->slot[i] >= 0) {
        if (m->hash[i] == h) {
            const char *t = rec_name(names, m->slot[i]);
            if (strncmp(t, s, len) == 0 && t[len] == 0 && memchr(s, 0, len) == NULL) return m->slot[i];
        }
        i = (i + 1) & mask;
    }
    return -1;
}

lrgd_status rec_strmap_add(rec_strmap *m, const rec_names *names, int32_t id, uint64_t h)
{
    (void)names;
    if ((m->count + 1) * 2 > m->cap) {
        rec_strmap n;
        LRGD_TRY(rec_strmap_init(&n, m->cap));
        for (size_t i = 0; i < m->cap; i++)
            if (m->slot[i] >= 0) {
                size_t mask = n.cap - 1, j = (size_t)m->hash[i] & mask;
                while (n.slot[j] >= 0) j = (j + 1) & mask;
                n.slot[j] = m->slot[i];
                n.hash[j] = m->hash[i];
            }
        n.count = m->count;
        rec_strmap_free(m);
        *m = n;
    }
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    while (m->slot[i] >= 0) i = (i + 1) & mask;
    m->slot[i] = id;
    m->hash[i] = h;
    m->count++;
    return LRGD_OK;
}

lrgd_status rec_names_push(rec_names *n, const char *s, size_t len)
{
    if (n->n == n->ncap) {
        size_t nc = n->ncap ? n->ncap * 2 : 1024;
        int64_t *o = realloc(n->off, nc * sizeof *o);
        if (!o) return lrgd_fail(LRGD_E_NOMEM, "out of memory (names)");
        n->off = o;
        n->ncap = nc;
    }
    if (n->cap - n->len < len + 1) {
        size_t nc = n->cap ? n->cap : 1 << 14;
        while (nc - n->len < len + 1) nc *= 2;
        char *b = realloc(n->buf, nc);
        if (!b) return lrgd_fail(LRGD_E_NOMEM, "out of memory (names)");
        n->buf = b;
        n->cap = nc;
    }
    n->off[n->n++] = (int64_t)n->len;
    memcpy(n->buf + n->len, s, len);
    n->buf[n->len + len] = 0;
    n->len += len + 1;
    return LRGD_OK;
}

void rec_names_free(rec_names *n)
{
    free(n->buf);
    free(n->off);
    memset(n, 0, sizeof *n);
}

int64_t rec_parse_id(const char *s, size_t len)
{
    if (len == 0) return -1;
    if (s[0] == '-') {
        if (len > 1) {
            size_t i = 1;
            while (i < len && s[i] >= '0' && s[i] <= '9') i++;
            if (i == len) return -2;
        }
        return -1;
    }
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9) return -1;
        if (v >= 100000000000000000LL) { /* one more digit would reach 10^18 */
            /* still must tell "too large" from "not a number" */
            for (size_t k = i; k < len; k++)
                if ((unsigned)((unsigned char)s[k] - '0') > 9) return -1;
            return -3;
        }
        v = v * 10 + d;
    }
    return v;
}
