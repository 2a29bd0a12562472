/* GGUF writer: metadata entries are encoded as they are set (so a copy from a
 * parsed file is a byte copy); tensors are referenced or converted, then the
 * whole file is streamed out once with alignment padding. */
#include "format/gguf_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct bbuf {
    unsigned char *p;
    size_t n, cap;
    int oom;
} bbuf;

static void bb_put(bbuf *b, const void *d, size_t n)
{
    if (b->oom) return;
    if (b->cap - b->n < n) {
        size_t nc = b->cap ? b->cap : 64;
        while (nc - b->n < n) {
            if (nc > SIZE_MAX / 2) { b->oom = 1; return; }
            nc *= 2;
        }
        unsigned char *np = realloc(b->p, nc);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

/* Little-endian integer of sz bytes. */
static void bb_le(bbuf *b, uint64_t v, size_t sz)
{
    unsigned char t[8];
    for (size_t i = 0; i < sz; i++) t[i] = (unsigned char)(v >> (8 * i));
    bb_put(b, t, sz);
}

static void bb_str(bbuf *b, const char *s)
{
    size_t n = strlen(s);
    bb_le(b, n, 8);
    bb_put(b, s, n);
}

typedef struct wkv {
    char *key;
    unsigned char *enc; /* key string + type + value */
    size_t len;
} wkv;

typedef struct wtensor {
    char *name;
    lrgd_dtype type;
    int n_dims;
    uint64_t ne[LRGD_GGUF_MAX_DIMS];
    size_t bytes;
    const void *data;
    void *owned;
} wtensor;

struct lrgd_gguf_writer {
    uint32_t alignment;
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

lrgd_status lrgd_gguf_writer_new(lrgd_gguf_writer **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    (*out)->alignment = 32;
    return LRGD_OK;
}

void lrgd_gguf_writer_free(lrgd_gguf_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) { free(w->kv[i].key); free(w->kv[i].enc); }
    for (size_t i = 0; i < w->n_t; i++) { free(w->t[i].name); lrgd_free(w->t[i].owned); }
    free(w->kv);
    free(w->t);
    free(w);
}

int lrgd_gguf_writer_has_key(const lrgd_gguf_writer *w, const char *key)
{
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) return 1;
    return 0;
}

static lrgd_status check_key(const lrgd_gguf_writer *w, const char *key)
{
    if (!key || !*key) return lrgd_fail(LRGD_E_INVALID, "gguf writer: empty metadata key");
    if (strlen(key) > 65535) return lrgd_fail(LRGD_E_INVALID, "gguf writer: metadata key longer than 65535 bytes");
    if (lrgd_gguf_writer_has_key(w, key))
        return lrgd_fail(LRGD_E_INVALID, "gguf writer: metadata key '%s' set twice", key);
    if (w->n_kv >= LRGD_GGUF_MAX_KV) return lrgd_fail(LRGD_E_INVALID, "gguf writer: too many metadata keys");
    return LRGD_OK;
}

/* Append an entry whose value bytes (after the type tag) are in val. Takes val's buffer. */
static lrgd_status add_kv(lrgd_gguf_writer *w, const char *key, uint32_t type, bbuf *val)
{
    lrgd_status st = check_key(w, key);
    if (st != LRGD_OK) { free(val->p); return st; }
    bbuf e = {0};
    bb_str(&e, key);
    bb_le(&e, type, 4);
    bb_put(&e, val->p, val->n);
    int oom = e.oom || val->oom;
    free(val->p);
    if (!oom && w->n_kv == w->cap_kv) {
        size_t nc = w->cap_kv ? 2 * w->cap_kv : 32;
        wkv *nk = realloc(w->kv, nc * sizeof *nk);
        if (!nk) oom = 1;
        else { w->kv = nk; w->cap_kv = nc; }
    }
    char *k = oom ? NULL : strdup(key);
    if (oom || !k) { free(e.p); return lrgd_fail(LRGD_E_NOMEM, "out of memory"); }
    w->kv[w->n_kv++] = (wkv){k, e.p, e.n};
    return LRGD_OK;
}

static size_t type_size(lrgd_gguf_type t)
{
    switch (t) {
    case LRGD_GGUF_U8: case LRGD_GGUF_I8: case LRGD_GGUF_BOOL: return 1;
    case LRGD_GGUF_U16: case LRGD_GGUF_I16: return 2;
    case LRGD_GGUF_U32: case LRGD_GGUF_I32: case LRGD_GGUF_F32: return 4;
    case LRGD_GGUF_U64: case LRGD_GGUF_I64: case LRGD_GGUF_F64: return 8;
    default: return 0;
    }
}

/* Encode n host-layout numbers; bools must be 0 or 1. */
static lrgd_status enc_numbers(bbuf *b, lrgd_gguf_type t, const void *data, uint64_t n)
{
    size_t es = type_size(t);
    if (!es) return lrgd_fail(LRGD_E_INVALID, "gguf writer: %s is not a numeric type", lrgd_gguf_type_name(t));
    if (n > LRGD_GGUF_MAX_ARRAY) return lrgd_fail(LRGD_E_INVALID, "gguf writer: array of %" PRIu64 " elements is too long", n);
    if (n && !data) return lrgd_fail(LRGD_E_INVALID, "gguf writer: array data is NULL");
    const unsigned char *p = data;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t v = 0;
        switch (es) {
        case 1: v = p[i]; break;
        case 2: { uint16_t x; memcpy(&x, p + 2 * i, 2); v = x; break; }
        case 4: { uint32_t x; memcpy(&x, p + 4 * i, 4); v = x; break; }
        case 8: memcpy(&v, p + 8 * i, 8); break;
        }
        if (t == LRGD_GGUF_BOOL && v > 1) return lrgd_fail(LRGD_E_INVALID, "gguf writer: bool value %" PRIu64 " (expected 0 or 1)", v);
        bb_le(b, v, es);
    }
    return LRGD_OK;
}

static lrgd_status enc_strings(bbuf *b, const char *const *s, uint64_t n)
{
    if (n > LRGD_GGUF_MAX_ARRAY) return lrgd_fail(LRGD_E_INVALID, "gguf writer: array of %" PRIu64 " strings is too long", n);
    for (uint64_t i = 0; i < n; i++) {
        if (!s || !s[i]) return lrgd_fail(LRGD_E_INVALID, "gguf writer: string %" PRIu64 " is NULL", i);
        if (strlen(s[i]) > LRGD_GGUF_MAX_STRING) return lrgd_fail(LRGD_E_INVALID, "gguf writer: string too long");
        bb_str(b, s[i]);
    }
    return LRGD_OK;
}

static lrgd_status set_scalar(lrgd_gguf_writer *w, const char *key, lrgd_gguf_type t, const void *v)
{
    bbuf b = {0};
    lrgd_status st = enc_numbers(&b, t, v, 1);
    if (st != LRGD_OK) { free(b.p); return st; }
    return add_kv(w, key, t, &b);
}

lrgd_status lrgd_gguf_set_u8(lrgd_gguf_writer *w, const char *key, uint8_t v) { return set_scalar(w, key, LRGD_GGUF_U8, &v); }
lrgd_status lrgd_gguf_set_i8(lrgd_gguf_writer *w, const char *key, int8_t v) { return set_scalar(w, key, LRGD_GGUF_I8, &v); }
lrgd_status lrgd_gguf_set_u16(lrgd_gguf_writer *w, const char *key, uint16_t v) { return set_scalar(w, key, LRGD_GGUF_U16, &v); }
lrgd_status lrgd_gguf_set_i16(lrgd_gguf_writer *w, const char *key, int16_t v) { return set_scalar(w, key, LRGD_GGUF_I16, &v); }
lrgd_status lrgd_gguf_set_i32(lrgd_gguf_writer *w, const char *key, int32_t v) { return set_scalar(w, key, LRGD_GGUF_I32, &v); }
lrgd_status lrgd_gguf_set_u64(lrgd_gguf_writer *w, const char *key, uint64_t v) { return set_scalar(w, key, LRGD_GGUF_U64, &v); }
lrgd_status lrgd_gguf_set_i64(lrgd_gguf_writer *w, const char *key, int64_t v) { return set_scalar(w, key, LRGD_GGUF_I64, &v); }
lrgd_status lrgd_gguf_set_f32(lrgd_gguf_writer *w, const char *key, float v) { return set_scalar(w, key, LRGD_GGUF_F32, &v); }
lrgd_status lrgd_gguf_set_f64(lrgd_gguf_writer *w, const char *key, double v) { return set_scalar(w, key, LRGD_GGUF_F64, &v); }
lrgd_status lrgd_gguf_set_bool(lrgd_gguf_writer *w, const char *key, int v)
{
    uint8_t b = v != 0;
    return set_scalar(w, key, LRGD_GGUF_BOOL, &b);
}

lrgd_status lrgd_gguf_set_u32(lrgd_gguf_writer *w, const char *key, uint32_t v)
{
    /* One rule for the alignment: the writer's own setting. */
    if (key && !strcmp(key, "general.alignment")) return lrgd_gguf_writer_set_alignment(w, v);
    return set_scalar(w, key, LRGD_GGUF_U32, &v);
}

lrgd_status lrgd_gguf_writer_set_alignment(lrgd_gguf_writer *w, uint32_t a)
{
    if (a == 0 || (a & (a - 1)) != 0 || a > LRGD_GGUF_MAX_ALIGN)
        return lrgd_fail(LRGD_E_INVALID, "gguf writer: alignment %u is not a power of two in 1..%u", a, LRGD_GGUF_MAX_ALIGN);
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, "general.alignment")) { /* rewrite the value in place (u32, last 4 bytes) */
            unsigned char *p = w->kv[i].enc + w->kv[i].len - 4;
            for (int k = 0; k < 4; k++) p[k] = (unsigned char)(a >> (8 * k));
            w->alignment = a;
            return LRGD_OK;
        }
    w->alignment = a;
    if (a == 32) return LRGD_OK; /* the default needs no key */
    return set_scalar(w, "general.alignment", LRGD_GGUF_U32, &a);
}

lrgd_status lrgd_gguf_set_str(lrgd_gguf_writer *w, const char *key, const char *s)
{
    if (!s) return lrgd_fail(LRGD_E_INVALID, "gguf writer: key '%s': NULL string", key ? key : "");
    if (strlen(s) > LRGD_GGUF_MAX_STRING) return lrgd_fail(LRGD_E_INVALID, "gguf writer: key '%s': string too long", key);
    bbuf b = {0};
    bb_str(&b, s);
    return add_kv(w, key, LRGD_GGUF_STRING, &b);
}

lrgd_status lrgd_gguf_set_arr(lrgd_gguf_writer *w, const char *key, lrgd_gguf_type elem, const void *data, uint64_t n)
{
    bbuf b = {0};
    bb_le(&b, (uint64_t)elem, 4);
    bb_le(&b, n, 8);
    lrgd_status st = enc_numbers(&b, elem, data, n);
    if (st != LRGD_OK) { free(b.p); return st; }
    return add_kv(w, key, LRGD_GGUF_ARRAY, &b);
}

lrgd_status lrgd_gguf_set_arr_str(lrgd_gguf_writer *w, const char *key, const char *const *s, uint64_t n)
{
    bbuf b = {0};
    bb_le(&b, LRGD_GGUF_STRING, 4);
    bb_le(&b, n, 8);
    lrgd_status st = enc_strings(&b, s, n);
    if (st != LRGD_OK) { free(b.p); return st; }
    return add_kv(w, key, LRGD_GGUF_ARRAY, &b);
}

lrgd_status lrgd_gguf_set_arr_arr(lrgd_gguf_writer *w, const char *key, lrgd_gguf_type inner_elem,
                                  const void *const *inner, const uint64_t *counts, uint64_t n)
{
    if (n > LRGD_GGUF_MAX_ARRAY) return lrgd_fail(LRGD_E_INVALID, "gguf writer: array too long");
    if (n && (!inner || !counts)) return lrgd_fail(LRGD_E_INVALID, "gguf writer: key '%s': NULL inner arrays", key);
    if (inner_elem == LRGD_GGUF_ARRAY || (!type_size(inner_elem) && inner_elem != LRGD_GGUF_STRING))
        return lrgd_fail(LRGD_E_INVALID, "gguf writer: inner arrays of %s are not supported", lrgd_gguf_type_name(inner_elem));
    bbuf b = {0};
    bb_le(&b, LRGD_GGUF_ARRAY, 4);
    bb_le(&b, n, 8);
    lrgd_status st = LRGD_OK;
    for (uint64_t i = 0; i < n && st == LRGD_OK; i++) {
        bb_le(&b, (uint64_t)inner_elem, 4);
        bb_le(&b, counts[i], 8);
        st = inner_elem == LRGD_GGUF_STRING ? enc_strings(&b, (const char *const *)inner[i], counts[i])
                                            : enc_numbers(&b, inner_elem, inner[i], counts[i]);
    }
    if (st != LRGD_OK) { free(b.p); return st; }
    return add_kv(w, key, LRGD_GGUF_ARRAY, &b);
}

lrgd_status lrgd_gguf_copy_kv(lrgd_gguf_writer *w, const lrgd_gguf *g, int64_t i)
{
    const unsigned char *p;
    size_t n;
    LRGD_TRY(lrgd_gguf__kv_span(g, i, &p, &n));
    const char *key = lrgd_gguf_key(g, i);
    if (!strcmp(key, "general.alignment")) {
        uint64_t a;
        LRGD_TRY(lrgd_gguf_val_u64(lrgd_gguf_kv(g, i), &a));
        return lrgd_gguf_writer_set_alignment(w, (uint32_t)a);
    }
    uint64_t klen = 0;
    for (int k = 0; k < 8; k++) klen |= (uint64_t)p[k] << (8 * k);
    if (klen != strlen(key)) /* a key with a NUL inside: cannot be named by a C string */
        return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: metadata key %" PRId64 " contains a NUL byte", lrgd_gguf_name(g), i);
    LRGD_TRY(check_key(w, key));
    bbuf b = {0};
    size_t head = 8 + strlen(key) + 4; /* key string + type tag */
    bb_put(&b, p + head, n - head);
    uint32_t type = (uint32_t)lrgd_gguf_val_type(lrgd_gguf_kv(g, i));
    return add_kv(w, key, type, &b);
}

/* ---- tensors ------------------------------------------------------------- */

static lrgd_status check_tensor(const lrgd_gguf_writer *w, const char *name, lrgd_dtype type, int n_dims,
                                const uint64_t *ne, size_t *bytes)
{
    if (!name || !*name || strlen(name) >= LRGD_GGUF_MAX_NAME)
        return lrgd_fail(LRGD_E_INVALID, "gguf writer: tensor name must have 1..%d bytes", LRGD_GGUF_MAX_NAME - 1);
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return lrgd_fail(LRGD_E_INVALID, "gguf writer: tensor '%s' added twice", name);
    if (type != LRGD_F32 && type != LRGD_F16 && type != LRGD_Q8_0)
        return lrgd_fail(LRGD_E_INVALID, "gguf writer: tensor '%s': type %d is not F32, F16 or Q8_0", name, (int)type);
    if (n_dims < 1 || n_dims > LRGD_GGUF_MAX_DIMS)
        return lrgd_fail(LRGD_E_INVALID, "gguf writer: tensor '%s': %d dimensions (expected 1..4)", name, n_dims);
    size_t n = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 1 || ne[d] > LRGD_GGUF_MAX_DIM || !lrgd_mul_ok(n, (size_t)ne[d], &n) || n > (SIZE_MAX >> 2))
            return lrgd_fail(LRGD_E_INVALID, "gguf writer: tensor '%s': bad dimension %d = %" PRIu64, name, d, ne[d]);
    }
    if (type == LRGD_Q8_0 && ne[0] % LRGD_Q8_0_BLOCK != 0)
        return lrgd_fail(LRGD_E_INVALID, "gguf writer: tensor '%s': Q8_0 needs rows of a multiple of 32, got %" PRIu64,
                         name, ne[0]);
    if (w->n_t >= LRGD_GGUF_MAX_TENSORS) return lrgd_fail(LRGD_E_INVALID, "gguf writer: too many tensors");
    *bytes = lrgd_dtype_row_bytes(type, (size_t)ne[0]) * (n / (size_t)ne[0]);
    return LRGD_OK;
}

static lrgd_status push_tensor(lrgd_gguf_writer *w, const char *name, lrgd_dtype type, int n_dims, const uint64_t *ne,
                               size_t bytes, const void *data, void *owned)
{
    if (w->n_t == w->cap_t) {
        size_t nc = w->cap_t ? 2 * w->cap_t : 64;
        wtensor *nt = realloc(w->t, nc * sizeof *nt);
        if (!nt) { lrgd_free(owned); return lrgd_fail(LRGD_E_NOMEM, "out of memory"); }
        w->t = nt;
        w->cap_t = nc;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name) { lrgd_free(owned); return lrgd_fail(LRGD_E_NOMEM, "out of memory"); }
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < LRGD_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->bytes = bytes;
    t->data = data;
    t->owned = owned;
    w->n_t++;
    return LRGD_OK;
}

lrgd_status lrgd_gguf_add_tensor(lrgd_gguf_writer *w, const char *name, lrgd_dtype type, int n_dims,
                                 const uint64_t *ne, const void *data)
{
    size_t bytes;
    LRGD_TRY(check_tensor(w, name, type, n_dims, ne, &bytes));
    if (!data) return lrgd_fail(LRGD_E_INVALID, "gguf writer: tensor '%s': NULL data", name);
    return push_tensor(w, name, type, n_dims, ne, bytes, data, NULL);
}

lrgd_status lrgd_gguf_add_tensor_f32(lrgd_gguf_writer *w, const char *name, lrgd_dtype type, int n_dims,
                                     const uint64_t *ne, const float *src)
{
    size_t bytes;
    LRGD_TRY(check_tensor(w, name, type, n_dims, ne, &bytes));
    if (!src) return lrgd_fail(LRGD_E_INVALID, "gguf writer: tensor '%s': NULL data", name);
    size_t n = 1;
    for (int d = 0; d < n_dims; d++) n *= (size_t)ne[d];
    for (size_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return lrgd_fail(LRGD_E_NUMERIC, "gguf writer: tensor '%s': element %zu is not finite", name, i);
    void *buf = lrgd_alloc(bytes);
    if (!buf) return lrgd_fail(LRGD_E_NOMEM, "gguf writer: tensor '%s': out of memory (%zu bytes)", name, bytes);
    if (type == LRGD_F32) {
        memcpy(buf, src, bytes);
    } else if (type == LRGD_F16) {
        uint16_t *h = buf;
        for (size_t i = 0; i < n; i++) {
            h[i] = lrgd_fp32_to_fp16(src[i]);
            if ((h[i] & 0x7c00) == 0x7c00) {
                lrgd_free(buf);
                return lrgd_fail(LRGD_E_NUMERIC, "gguf writer: tensor '%s': element %zu = %g is outside the F16 range",
                                 name, i, (double)src[i]);
            }
        }
    } else {
        for (size_t b = 0; b < n / LRGD_Q8_0_BLOCK; b++) {
            float amax = 0;
            for (int k = 0; k < LRGD_Q8_0_BLOCK; k++) amax = fmaxf(amax, fabsf(src[b * LRGD_Q8_0_BLOCK + k]));
            if (amax / 127.0f > 65504.0f) {
                lrgd_free(buf);
                return lrgd_fail(LRGD_E_NUMERIC, "gguf writer: tensor '%s': block %zu (max |x| = %g) is beyond the Q8_0 range",
                                 name, b, (double)amax);
            }
        }
        lrgd_quantize_q8_0(src, buf, n);
    }
    return push_tensor(w, name, type, n_dims, ne, bytes, buf, buf);
}

/* ---- output ---------------------------------------------------------------- */

typedef struct sink {
    FILE *f;
    bbuf *b;
    int err;
} sink;

static void put(sink *s, const void *d, size_t n)
{
    if (s->err || !n) return;
    if (s->f) { if (fwrite(d, 1, n, s->f) != n) s->err = 1; }
    else { bb_put(s->b, d, n); if (s->b->oom) s->err = 1; }
}

static void put_zeros(sink *s, size_t n)
{
    static const unsigned char z[256];
    while (n) {
        size_t k = n < sizeof z ? n : sizeof z;
        put(s, z, k);
        n -= k;
    }
}

static size_t pad_to(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }

static void emit(const lrgd_gguf_writer *w, sink *s)
{
    bbuf h = {0};
    bb_put(&h, "GGUF", 4);
    bb_le(&h, 3, 4);
    bb_le(&h, w->n_t, 8);
    bb_le(&h, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) bb_put(&h, w->kv[i].enc, w->kv[i].len);
    size_t off = 0, a = w->alignment;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        bb_str(&h, t->name);
        bb_le(&h, (uint64_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++) bb_le(&h, t->ne[d], 8);
        bb_le(&h, (uint64_t)t->type, 4);
        bb_le(&h, off, 8);
        off = pad_to(off + t->bytes, a);
    }
    if (h.oom) { s->err = 1; free(h.p); return; }
    put(s, h.p, h.n);
    put_zeros(s, pad_to(h.n, a) - h.n);
    free(h.p);
    for (size_t i = 0; i < w->n_t; i++) {
        put(s, w->t[i].data, w->t[i].bytes);
        put_zeros(s, pad_to(w->t[i].bytes, a) - w->t[i].bytes);
    }
}

lrgd_status lrgd_gguf_write(const lrgd_gguf_writer *w, const char *path)
{
    lrgd_afile af;
    LRGD_TRY(lrgd_afile_open(&af, path));
    sink s = {af.f, NULL, 0};
    emit(w, &s);
    if (s.err) {
        lrgd_afile_abort(&af);
        return lrgd_fail(LRGD_E_WRITE, "%s: write failed", path);
    }
    return lrgd_afile_commit(&af);
}

lrgd_status lrgd_gguf_write_mem(const lrgd_gguf_writer *w, void **data, size_t *size)
{
    bbuf b = {0};
    sink s = {NULL, &b, 0};
    emit(w, &s);
    if (s.err) { free(b.p); return lrgd_fail(LRGD_E_NOMEM, "gguf writer: out of memory"); }
    *data = b.p;
    *size = b.n;
    return LRGD_OK;
}

/* ---- vocabulary -------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

lrgd_status lrgd_gguf_write_vocab(lrgd_gguf_writer *w, const lrgd_gguf_vocab *v)
{
    if (v->n < 1 || !v->pieces) return lrgd_fail(LRGD_E_INVALID, "vocabulary: no tokens");
    const int ids[6] = {v->bos, v->eos, v->unk, v->pad, v->sep, v->mask};
    for (int k = 0; k < 6; k++)
        if (ids[k] < -1 || ids[k] >= v->n)
            return lrgd_fail(LRGD_E_INVALID, "vocabulary: special token id %d outside 0..%d", ids[k], v->n - 1);
    /* Unique pieces: llama.cpp maps piece -> id and would silently lose the duplicate. */
    const char **sorted = malloc((size_t)v->n * sizeof *sorted);
    if (!sorted) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (int i = 0; i < v->n; i++) {
        if (!v->pieces[i]) { free(sorted); return lrgd_fail(LRGD_E_INVALID, "vocabulary: token %d has no piece", i); }
        sorted[i] = v->pieces[i];
    }
    qsort(sorted, (size_t)v->n, sizeof *sorted, cmp_str);
    for (int i = 1; i < v->n; i++)
        if (!strcmp(sorted[i], sorted[i - 1])) {
            lrgd_status st = lrgd_fail(LRGD_E_INVALID, "vocabulary: piece '%s' appears twice", sorted[i]);
            free(sorted);
            return st;
        }
    free(sorted);
    float *scores = NULL;
    int32_t *types = NULL;
    if (!v->scores) scores = calloc((size_t)v->n, sizeof *scores);
    if (!v->types) {
        types = malloc((size_t)v->n * sizeof *types);
        if (types) for (int i = 0; i < v->n; i++) types[i] = LRGD_TOK_NORMAL;
    }
    lrgd_status st = LRGD_OK;
    if ((!v->scores && !scores) || (!v->types && !types)) st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    if (st == LRGD_OK) st = lrgd_gguf_set_str(w, "tokenizer.ggml.model", v->model ? v->model : "llama");
    if (st == LRGD_OK) st = lrgd_gguf_set_arr_str(w, "tokenizer.ggml.tokens", v->pieces, (uint64_t)v->n);
    if (st == LRGD_OK)
        st = lrgd_gguf_set_arr(w, "tokenizer.ggml.scores", LRGD_GGUF_F32, v->scores ? v->scores : scores, (uint64_t)v->n);
    if (st == LRGD_OK)
        st = lrgd_gguf_set_arr(w, "tokenizer.ggml.token_type", LRGD_GGUF_I32, v->types ? v->types : types, (uint64_t)v->n);
    /* "seperator" is the key's spelling in llama.cpp and gguf-py. */
    static const char *keys[6] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                  "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
                                  "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.mask_token_id"};
    for (int k = 0; k < 6 && st == LRGD_OK; k++)
        if (ids[k] >= 0) st = lrgd_gguf_set_u32(w, keys[k], (uint32_t)ids[k]);
    const int adds[3] = {v->add_bos, v->add_eos, v->add_sep};
    static const char *akeys[3] = {"tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
                                   "tokenizer.ggml.add_sep_token"};
    for (int k = 0; k < 3 && st == LRGD_OK; k++)
        if (adds[k] >= 0) st = lrgd_gguf_set_bool(w, akeys[k], adds[k]);
    free(scores);
    free(types);
    return st;
}

void lrgd_vocab_free(lrgd_vocab_buf *vb)
{
    if (vb->pieces)
        for (int i = 0; i < vb->v.n; i++) free(vb->pieces[i]);
    free(vb->pieces);
    free(vb->scores);
    free(vb->types);
    memset(vb, 0, sizeof *vb);
}

static lrgd_status vocab_alloc(int n, lrgd_vocab_buf *vb)
{
    memset(vb, 0, sizeof *vb);
    if (n < 1) return lrgd_fail(LRGD_E_INVALID, "vocabulary: %d tokens", n);
    vb->pieces = calloc((size_t)n, sizeof *vb->pieces);
    vb->scores = calloc((size_t)n, sizeof *vb->scores);
    vb->types = calloc((size_t)n, sizeof *vb->types);
    vb->v.n = n;
    if (!vb->pieces || !vb->scores || !vb->types) { lrgd_vocab_free(vb); return lrgd_fail(LRGD_E_NOMEM, "out of memory"); }
    vb->v.model = "llama";
    vb->v.pieces = (const char *const *)vb->pieces;
    vb->v.scores = vb->scores;
    vb->v.types = vb->types;
    vb->v.bos = vb->v.eos = vb->v.unk = vb->v.pad = vb->v.sep = vb->v.mask = -1;
    vb->v.add_bos = vb->v.add_eos = vb->v.add_sep = -1;
    return LRGD_OK;
}

static lrgd_status vocab_set(lrgd_vocab_buf *vb, int id, int32_t type, const char *fmt, long long arg)
{
    char buf[64];
    snprintf(buf, sizeof buf, fmt, arg);
    vb->pieces[id] = strdup(buf);
    vb->types[id] = type;
    if (!vb->pieces[id]) { lrgd_vocab_free(vb); return lrgd_fail(LRGD_E_NOMEM, "out of memory"); }
    return LRGD_OK;
}

lrgd_status lrgd_vocab_synth_llama(int n, lrgd_vocab_buf *vb)
{
    LRGD_TRY(vocab_alloc(n, vb));
    /* SentencePiece needs all 256 byte pieces: llama.cpp's tokenizer aborts
     * on text it cannot spell otherwise. Smaller vocabularies get WordPiece,
     * which maps such text to <unk> (see lrgd_vocab_synth_rec). */
    int spm = n >= 3 + 256;
    for (int i = 0; i < n; i++) {
        if (i == 0) LRGD_TRY(vocab_set(vb, i, LRGD_TOK_UNKNOWN, "<unk>", 0));
        else if (i == 1) LRGD_TRY(vocab_set(vb, i, LRGD_TOK_CONTROL, "<s>", 0));
        else if (i == 2) LRGD_TRY(vocab_set(vb, i, LRGD_TOK_CONTROL, "</s>", 0));
        else if (spm && i < 3 + 256) LRGD_TRY(vocab_set(vb, i, LRGD_TOK_BYTE, "<0x%02llX>", i - 3));
        else LRGD_TRY(vocab_set(vb, i, LRGD_TOK_NORMAL, "<tok_%lld>", i)); /* the real pieces are unknown */
    }
    vb->v.unk = 0;
    vb->v.bos = n > 1 ? 1 : 0;
    vb->v.eos = n > 2 ? 2 : 0;
    if (!spm) {
        vb->v.model = "bert";
        vb->v.pad = vb->v.mask = 0;
        vb->v.sep = vb->v.eos;
        vb->v.add_bos = vb->v.add_eos = vb->v.add_sep = 0;
    }
    return LRGD_OK;
}

lrgd_status lrgd_vocab_synth_rec(const lrgd_recvocab *rv, int n, lrgd_vocab_buf *vb)
{
    if (rv->n_special < 0 || rv->n_items < 0 || (int64_t)rv->n_special + rv->n_items > n)
        return lrgd_fail(LRGD_E_INVALID, "vocabulary: %d special + %d item tokens do not fit %d tokens", rv->n_special,
                         rv->n_items, n);
    LRGD_TRY(vocab_alloc(n, vb));
    const int sid[5] = {rv->pad, rv->bos, rv->sep, rv->ans, rv->eos};
    static const char *sname[5] = {"<pad>", "<s>", "<sep>", "<ans>", "</s>"};
    for (int i = 0; i < n; i++) {
        const char *named = NULL;
        for (int k = 0; k < 5; k++)
            if (sid[k] == i) named = sname[k];
        if (named) LRGD_TRY(vocab_set(vb, i, LRGD_TOK_CONTROL, named, 0));
        else if (i < rv->n_special) LRGD_TRY(vocab_set(vb, i, LRGD_TOK_CONTROL, "<special_%lld>", i));
        else if (i < rv->n_special + rv->n_items)
            LRGD_TRY(vocab_set(vb, i, LRGD_TOK_NORMAL, "item_%lld", (long long)rv->item_ext[i - rv->n_special]));
        else LRGD_TRY(vocab_set(vb, i, LRGD_TOK_UNUSED, "<unused_%lld>", i));
    }
    /* Item vocabularies have no byte tokens, and llama.cpp's SentencePiece
     * tokenizer aborts on text it cannot spell in bytes (node-llama-cpp
     * tokenizes a probe text at load). WordPiece maps such text to the unknown
     * id instead, so llama.cpp can load and run the model. WordPiece's default
     * special ids (100..103) are overridden: every one must exist. */
    vb->v.model = "bert";
    int fallback = rv->pad >= 0 ? rv->pad : 0;
    vb->v.bos = rv->bos >= 0 ? rv->bos : fallback;
    vb->v.eos = rv->eos;
    vb->v.pad = fallback;
    vb->v.sep = rv->sep >= 0 ? rv->sep : fallback;
    vb->v.unk = fallback;
    vb->v.mask = fallback;
    vb->v.add_bos = vb->v.add_eos = vb->v.add_sep = 0;
    return LRGD_OK;
}
