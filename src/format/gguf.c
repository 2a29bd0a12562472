/* GGUF reader: every read is bounds-checked against the buffer, every size
 * product overflow-checked, every count capped before anything is allocated.
 * Memory used by a parse is bounded by a small multiple of the file size:
 * an array may only claim as many elements as its remaining bytes can hold. */
#include "core/core.h"
#include "format/gguf_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct lrgd_gguf_val {
    uint32_t type;
    uint32_t elem;    /* arrays: element type */
    uint64_t n;       /* arrays: count; strings: length */
    uint64_t off;     /* file offset of the value */
    const char *file; /* for messages */
    const char *key;
    union {
        uint64_t u;
        int64_t i;
        double f;
        const char *s;
        lrgd_gguf_val *items;      /* arrays of strings or arrays */
        const unsigned char *raw;  /* arrays of numbers */
    } v;
};

typedef struct pool_chunk {
    struct pool_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} pool_chunk;

typedef struct name_idx {
    const char *name;
    int64_t idx;
} name_idx;

struct lrgd_gguf {
    const unsigned char *data;
    size_t size;
    char *name;
    lrgd_mapped map; /* lrgd_gguf_open: the mapping we own */
    uint32_t version;
    size_t alignment, data_off;
    int64_t n_kv, n_tensors;
    const char **keys;
    lrgd_gguf_val *vals;
    size_t *kv_span; /* [2*n_kv]: file offsets where each key entry begins and ends */
    lrgd_gguf_tensor *tensors;
    name_idx *kv_sorted, *t_sorted;
    pool_chunk *pool;
};

/* ---- small helpers ---------------------------------------------------- */

static void *pool_alloc(lrgd_gguf *g, size_t bytes)
{
    bytes = (bytes + 15) & ~(size_t)15;
    if (!g->pool || g->pool->cap - g->pool->used < bytes) {
        size_t cap = bytes > ((size_t)1 << 20) ? bytes : ((size_t)1 << 20);
        pool_chunk *c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = g->pool;
        c->used = 0;
        c->cap = cap;
        g->pool = c;
    }
    void *p = g->pool->data + g->pool->used;
    g->pool->used += bytes;
    return p;
}

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t le64(const unsigned char *p) { return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32); }

const char *lrgd_gguf_type_name(lrgd_gguf_type t)
{
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

const char *lrgd_ggml_type_name(uint32_t t)
{
    /* ggml's type numbering; holes are ids ggml retired. */
    static const char *names[] = {"F32", "F16", "Q4_0", "Q4_1", NULL, NULL, "Q5_0", "Q5_1", "Q8_0", "Q8_1",
                                  "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS",
                                  "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16",
                                  "I32", "I64", "F64", "IQ1_M", "BF16", NULL, NULL, NULL, "TQ1_0", "TQ2_0",
                                  NULL, NULL, NULL, "MXFP4"};
    if (t < sizeof names / sizeof names[0] && names[t]) return names[t];
    return "unknown";
}

/* Bytes of one scalar of type t; 0 for string/array/unknown. */
static size_t scalar_size(uint32_t t)
{
    switch (t) {
    case LRGD_GGUF_U8: case LRGD_GGUF_I8: case LRGD_GGUF_BOOL: return 1;
    case LRGD_GGUF_U16: case LRGD_GGUF_I16: return 2;
    case LRGD_GGUF_U32: case LRGD_GGUF_I32: case LRGD_GGUF_F32: return 4;
    case LRGD_GGUF_U64: case LRGD_GGUF_I64: case LRGD_GGUF_F64: return 8;
    }
    return 0;
}

static int is_int_type(uint32_t t)
{
    return t == LRGD_GGUF_U8 || t == LRGD_GGUF_I8 || t == LRGD_GGUF_U16 || t == LRGD_GGUF_I16 ||
           t == LRGD_GGUF_U32 || t == LRGD_GGUF_I32 || t == LRGD_GGUF_U64 || t == LRGD_GGUF_I64;
}
static int is_signed_type(uint32_t t)
{
    return t == LRGD_GGUF_I8 || t == LRGD_GGUF_I16 || t == LRGD_GGUF_I32 || t == LRGD_GGUF_I64;
}

/* Decode one scalar at p into the value union (integers as u64 bit pattern
 * of the sign-extended value, floats as double). */
static void decode_scalar(uint32_t t, const unsigned char *p, lrgd_gguf_val *v)
{
    switch (t) {
    case LRGD_GGUF_U8: case LRGD_GGUF_BOOL: v->v.u = p[0]; break;
    case LRGD_GGUF_I8: v->v.i = (int8_t)p[0]; break;
    case LRGD_GGUF_U16: v->v.u = le16(p); break;
    case LRGD_GGUF_I16: v->v.i = (int16_t)le16(p); break;
    case LRGD_GGUF_U32: v->v.u = le32(p); break;
    case LRGD_GGUF_I32: v->v.i = (int32_t)le32(p); break;
    case LRGD_GGUF_U64: v->v.u = le64(p); break;
    case LRGD_GGUF_I64: v->v.i = (int64_t)le64(p); break;
    case LRGD_GGUF_F32: { uint32_t b = le32(p); float f; memcpy(&f, &b, 4); v->v.f = f; break; }
    case LRGD_GGUF_F64: { uint64_t b = le64(p); double d; memcpy(&d, &b, 8); v->v.f = d; break; }
    }
}

/* ---- the cursor --------------------------------------------------------- */

typedef struct rd {
    const unsigned char *p;
    size_t size, pos;
    const char *name;
    lrgd_gguf *g;
} rd;

static lrgd_status need(const rd *r, size_t n, const char *what)
{
    if (r->size - r->pos < n)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: expected %s (%zu bytes), but the file ends at %zu", r->name,
                         r->pos, what, n, r->size);
    return LRGD_OK;
}

static lrgd_status rd_u32(rd *r, uint32_t *v, const char *what)
{
    LRGD_TRY(need(r, 4, what));
    *v = le32(r->p + r->pos);
    r->pos += 4;
    return LRGD_OK;
}

static lrgd_status rd_u64(rd *r, uint64_t *v, const char *what)
{
    LRGD_TRY(need(r, 8, what));
    *v = le64(r->p + r->pos);
    r->pos += 8;
    return LRGD_OK;
}

/* A GGUF string: u64 length + bytes. Copied NUL-terminated into the pool. */
static lrgd_status rd_str(rd *r, uint64_t cap, const char *what, const char **s, uint64_t *len)
{
    size_t at = r->pos;
    uint64_t n;
    char lw[96];
    snprintf(lw, sizeof lw, "the length of %s (u64)", what);
    LRGD_TRY(rd_u64(r, &n, lw));
    if (n > cap)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: %s has length %" PRIu64 ", above the cap of %" PRIu64,
                         r->name, at, what, n, cap);
    if (n > r->size - r->pos)
        return lrgd_fail(LRGD_E_FORMAT,
                         "%s: offset %zu: expected %s of %" PRIu64 " bytes, but only %zu bytes are left in the file",
                         r->name, r->pos, what, n, r->size - r->pos);
    char *c = pool_alloc(r->g, (size_t)n + 1);
    if (!c) return lrgd_fail(LRGD_E_NOMEM, "%s: out of memory", r->name);
    memcpy(c, r->p + r->pos, (size_t)n);
    c[n] = 0;
    r->pos += (size_t)n;
    *s = c;
    if (len) *len = n;
    return LRGD_OK;
}

static lrgd_status rd_value(rd *r, uint32_t type, lrgd_gguf_val *v, int depth, const char *key)
{
    memset(v, 0, sizeof *v);
    v->type = type;
    v->off = r->pos;
    v->file = r->g->name;
    v->key = key;
    size_t ss = scalar_size(type);
    if (ss) {
        LRGD_TRY(need(r, ss, lrgd_gguf_type_name((lrgd_gguf_type)type)));
        if (type == LRGD_GGUF_BOOL && r->p[r->pos] > 1)
            return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: key '%s': expected a bool (0 or 1), got %u", r->name,
                             r->pos, key, r->p[r->pos]);
        decode_scalar(type, r->p + r->pos, v);
        r->pos += ss;
        return LRGD_OK;
    }
    if (type == LRGD_GGUF_STRING) return rd_str(r, LRGD_GGUF_MAX_STRING, "a string", &v->v.s, &v->n);
    if (type != LRGD_GGUF_ARRAY)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: key '%s': unknown value type %u (expected 0..12)", r->name,
                         r->pos, key, type);

    if (depth >= LRGD_GGUF_MAX_DEPTH)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: key '%s': arrays nested deeper than %d", r->name, r->pos, key,
                         LRGD_GGUF_MAX_DEPTH);
    size_t at = r->pos;
    uint32_t elem;
    uint64_t n;
    LRGD_TRY(rd_u32(r, &elem, "an array element type (u32)"));
    LRGD_TRY(rd_u64(r, &n, "an array length (u64)"));
    if (elem > LRGD_GGUF_F64)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: key '%s': unknown array element type %u (expected 0..12)",
                         r->name, at, key, elem);
    if (n > LRGD_GGUF_MAX_ARRAY)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: key '%s': array of %" PRIu64 " elements, above the cap of %llu",
                         r->name, at + 4, key, n, (unsigned long long)LRGD_GGUF_MAX_ARRAY);
    v->elem = elem;
    v->n = n;
    size_t es = scalar_size(elem);
    /* The smallest encoding of one element bounds how many can fit. */
    size_t min_es = es ? es : (elem == LRGD_GGUF_STRING ? 8 : 12);
    if (n > (r->size - r->pos) / min_es)
        return lrgd_fail(LRGD_E_FORMAT,
                         "%s: offset %zu: key '%s': array of %" PRIu64 " %s needs at least %" PRIu64
                         " bytes, but only %zu are left in the file",
                         r->name, at + 4, key, n, lrgd_gguf_type_name((lrgd_gguf_type)elem), n * (uint64_t)min_es,
                         r->size - r->pos);
    if (es) {
        v->v.raw = r->p + r->pos;
        if (elem == LRGD_GGUF_BOOL)
            for (uint64_t i = 0; i < n; i++)
                if (v->v.raw[i] > 1)
                    return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: key '%s': expected a bool (0 or 1), got %u",
                                     r->name, r->pos + (size_t)i, key, v->v.raw[i]);
        r->pos += (size_t)n * es;
        return LRGD_OK;
    }
    if (n == 0) return LRGD_OK;
    lrgd_gguf_val *items = pool_alloc(r->g, (size_t)n * sizeof *items);
    if (!items) return lrgd_fail(LRGD_E_NOMEM, "%s: out of memory", r->name);
    v->v.items = items;
    for (uint64_t i = 0; i < n; i++) LRGD_TRY(rd_value(r, elem, &items[i], depth + 1, key));
    return LRGD_OK;
}

/* ---- lookup ------------------------------------------------------------ */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const name_idx *)a)->name, ((const name_idx *)b)->name);
}

static int64_t find_sorted(const name_idx *arr, int64_t n, const char *name)
{
    if (!arr || !name) return -1;
    name_idx k = {name, 0};
    const name_idx *f = bsearch(&k, arr, (size_t)n, sizeof *arr, cmp_name);
    return f ? f->idx : -1;
}

/* ---- the parser ---------------------------------------------------------- */

static lrgd_status parse_header(rd *r, lrgd_gguf *g, uint64_t *n_tensors, uint64_t *n_kv)
{
    const char *nm = r->name;
    if (r->size < 4)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset 0: expected the magic 'GGUF' (4 bytes), but the file has %zu bytes",
                         nm, r->size);
    if (memcmp(r->p, "GGUF", 4) != 0) {
        const unsigned char *p = r->p;
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset 0: expected the magic 'GGUF' (47 47 55 46), got %02x %02x %02x %02x",
                         nm, p[0], p[1], p[2], p[3]);
    }
    r->pos = 4;
    LRGD_TRY(rd_u32(r, &g->version, "the GGUF version (u32)"));
    if (g->version == 1)
        return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: offset 4: GGUF version 1 is not supported (expected version 3, or 2)",
                         nm);
    if (g->version != 2 && g->version != 3) {
        if (g->version == 0x03000000u || g->version == 0x02000000u)
            return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: offset 4: big-endian GGUF is not supported (expected little-endian)",
                             nm);
        return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: offset 4: GGUF version %u is not supported (expected 3, or 2)", nm,
                         g->version);
    }
    LRGD_TRY(rd_u64(r, n_tensors, "the tensor count (u64)"));
    LRGD_TRY(rd_u64(r, n_kv, "the metadata key count (u64)"));
    if (*n_tensors > LRGD_GGUF_MAX_TENSORS)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset 8: tensor count %" PRIu64 " is above the cap of %u", nm, *n_tensors,
                         LRGD_GGUF_MAX_TENSORS);
    if (*n_kv > LRGD_GGUF_MAX_KV)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset 16: metadata key count %" PRIu64 " is above the cap of %u", nm,
                         *n_kv, LRGD_GGUF_MAX_KV);
    /* A key takes at least 13 bytes (length, type, 1-byte value), a tensor entry 32. */
    size_t left = r->size - r->pos;
    if (*n_kv > left / 13)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset 16: metadata key count %" PRIu64 " cannot fit in the %zu bytes left",
                         nm, *n_kv, left);
    if (*n_tensors > left / 32)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset 8: tensor count %" PRIu64 " cannot fit in the %zu bytes left", nm,
                         *n_tensors, left);
    return LRGD_OK;
}

static lrgd_status parse_kvs(rd *r, lrgd_gguf *g)
{
    for (int64_t i = 0; i < g->n_kv; i++) {
        const char *key;
        size_t at = r->pos;
        LRGD_TRY(rd_str(r, 65535, "a metadata key", &key, NULL));
        g->keys[i] = key;
        uint32_t type;
        LRGD_TRY(rd_u32(r, &type, "a metadata value type (u32)"));
        LRGD_TRY(rd_value(r, type, &g->vals[i], 0, key));
        g->kv_span[2 * i] = at;
        g->kv_span[2 * i + 1] = r->pos;
        if (!strcmp(key, "general.alignment")) {
            const lrgd_gguf_val *v = &g->vals[i];
            if (!is_int_type(v->type))
                return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: general.alignment: expected an integer, got %s",
                                 r->name, at, lrgd_gguf_type_name((lrgd_gguf_type)v->type));
            uint64_t a = v->v.u;
            if ((is_signed_type(v->type) && v->v.i <= 0) || a == 0 || (a & (a - 1)) != 0 || a > LRGD_GGUF_MAX_ALIGN)
                return lrgd_fail(LRGD_E_FORMAT,
                                 "%s: offset %" PRIu64 ": general.alignment %" PRId64
                                 ": expected a power of two in 1..%u",
                                 r->name, v->off, v->v.i, LRGD_GGUF_MAX_ALIGN);
            g->alignment = (size_t)a;
        }
    }
    /* Sorted index: duplicate detection now, binary search later. */
    for (int64_t i = 0; i < g->n_kv; i++) g->kv_sorted[i] = (name_idx){g->keys[i], i};
    qsort(g->kv_sorted, (size_t)g->n_kv, sizeof *g->kv_sorted, cmp_name);
    for (int64_t i = 1; i < g->n_kv; i++)
        if (!strcmp(g->kv_sorted[i].name, g->kv_sorted[i - 1].name)) {
            int64_t a = g->kv_sorted[i - 1].idx, b = g->kv_sorted[i].idx, later = a > b ? a : b;
            return lrgd_fail(LRGD_E_FORMAT, "%s: offset %" PRIu64 ": duplicate metadata key '%s' (expected unique keys)",
                             r->name, g->vals[later].off, g->kv_sorted[i].name);
        }
    return LRGD_OK;
}

static lrgd_status parse_tensor_info(rd *r, lrgd_gguf_tensor *t)
{
    const char *nm = r->name;
    t->info_offset = r->pos;
    LRGD_TRY(rd_str(r, LRGD_GGUF_MAX_NAME - 1, "a tensor name", &t->name, NULL));
    uint32_t nd;
    size_t at = r->pos;
    LRGD_TRY(rd_u32(r, &nd, "the tensor's number of dimensions (u32)"));
    if (nd < 1 || nd > LRGD_GGUF_MAX_DIMS)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: tensor '%s' has %u dimensions (expected 1..%d)", nm, at,
                         t->name, nd, LRGD_GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    for (int d = 0; d < LRGD_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    uint64_t n = 1;
    for (int d = 0; d < (int)nd; d++) {
        at = r->pos;
        LRGD_TRY(rd_u64(r, &t->ne[d], "a tensor dimension (u64)"));
        if (t->ne[d] < 1 || t->ne[d] > LRGD_GGUF_MAX_DIM)
            return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: tensor '%s' dimension %d is %" PRIu64 " (expected 1..%llu)",
                             nm, at, t->name, d, t->ne[d], (unsigned long long)LRGD_GGUF_MAX_DIM);
        size_t nn;
        if (!lrgd_mul_ok((size_t)n, (size_t)t->ne[d], &nn) || nn > (SIZE_MAX >> 2))
            return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: tensor '%s': the element count overflows", nm, at,
                             t->name);
        n = nn;
    }
    t->n_elements = n;
    uint32_t type;
    at = r->pos;
    LRGD_TRY(rd_u32(r, &type, "the tensor type (u32)"));
    if (type != LRGD_F32 && type != LRGD_F16 && type != LRGD_Q8_0)
        return lrgd_fail(LRGD_E_UNSUPPORTED,
                         "%s: offset %zu: tensor '%s' has type %u (%s); lrgd reads only F32, F16 and Q8_0", nm, at,
                         t->name, type, lrgd_ggml_type_name(type));
    t->type = (lrgd_dtype)type;
    if (t->type == LRGD_Q8_0 && t->ne[0] % LRGD_Q8_0_BLOCK != 0)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: tensor '%s': Q8_0 row length %" PRIu64 " is not a multiple of %d",
                         nm, at, t->name, t->ne[0], LRGD_Q8_0_BLOCK);
    /* n <= SIZE_MAX/4 and F32 is the widest type: the byte count cannot overflow. */
    t->bytes = lrgd_dtype_row_bytes(t->type, (size_t)t->ne[0]) * (size_t)(n / t->ne[0]);
    LRGD_TRY(rd_u64(r, &t->offset, "the tensor data offset (u64)"));
    return LRGD_OK;
}

static int cmp_offset(const void *a, const void *b)
{
    const lrgd_gguf_tensor *x = *(lrgd_gguf_tensor *const *)a, *y = *(lrgd_gguf_tensor *const *)b;
    return x->file_offset < y->file_offset ? -1 : x->file_offset > y->file_offset;
}

static lrgd_status parse_tensors(rd *r, lrgd_gguf *g)
{
    const char *nm = r->name;
    for (int64_t i = 0; i < g->n_tensors; i++) LRGD_TRY(parse_tensor_info(r, &g->tensors[i]));
    size_t a = g->alignment, end_info = r->pos, data_off;
    if (!lrgd_add_ok(end_info, a - 1, &data_off))
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: data section offset overflows", nm, end_info);
    data_off &= ~(a - 1);
    g->data_off = data_off;
    if (g->n_tensors > 0 && data_off > r->size)
        return lrgd_fail(LRGD_E_FORMAT,
                         "%s: offset %zu: expected padding up to the data section at offset %zu, but the file ends at %zu",
                         nm, end_info, data_off, r->size);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        lrgd_gguf_tensor *t = &g->tensors[i];
        size_t off_field = (size_t)t->info_offset + 8 + strlen(t->name) + 4 + 8 * (size_t)t->n_dims + 4;
        if (t->offset % a != 0)
            return lrgd_fail(LRGD_E_FORMAT,
                             "%s: offset %zu: tensor '%s' data offset %" PRIu64 " is not a multiple of the alignment %zu",
                             nm, off_field, t->name, t->offset, a);
        /* Writers pad every tensor, the last one too (ggml, gguf-py): a file
         * cut inside that padding is truncated, and is refused as such. */
        size_t start, end, padded;
        if (t->offset > SIZE_MAX || !lrgd_add_ok(data_off, (size_t)t->offset, &start) ||
            !lrgd_add_ok(start, t->bytes, &end) || !lrgd_add_ok(end, a - 1, &padded) ||
            (padded & ~(a - 1)) > r->size)
            return lrgd_fail(LRGD_E_FORMAT,
                             "%s: offset %zu: tensor '%s' data (%zu bytes at data offset %" PRIu64
                             ") runs past the end of the file (%zu bytes, data section at %zu, tensors padded to %zu)",
                             nm, off_field, t->name, t->bytes, t->offset, r->size, data_off, a);
        t->file_offset = start;
        t->data = r->p + start;
    }
    /* Names: unique. */
    for (int64_t i = 0; i < g->n_tensors; i++) g->t_sorted[i] = (name_idx){g->tensors[i].name, i};
    qsort(g->t_sorted, (size_t)g->n_tensors, sizeof *g->t_sorted, cmp_name);
    for (int64_t i = 1; i < g->n_tensors; i++)
        if (!strcmp(g->t_sorted[i].name, g->t_sorted[i - 1].name)) {
            int64_t x = g->t_sorted[i - 1].idx, y = g->t_sorted[i].idx, later = x > y ? x : y;
            return lrgd_fail(LRGD_E_FORMAT, "%s: offset %" PRIu64 ": duplicate tensor name '%s' (expected unique names)",
                             nm, g->tensors[later].info_offset, g->t_sorted[i].name);
        }
    /* Data ranges: no overlaps (each tensor's bytes belong to it alone). */
    if (g->n_tensors > 1) {
        lrgd_gguf_tensor **by = malloc((size_t)g->n_tensors * sizeof *by);
        if (!by) return lrgd_fail(LRGD_E_NOMEM, "%s: out of memory", nm);
        for (int64_t i = 0; i < g->n_tensors; i++) by[i] = &g->tensors[i];
        qsort(by, (size_t)g->n_tensors, sizeof *by, cmp_offset);
        for (int64_t i = 1; i < g->n_tensors; i++)
            if (by[i - 1]->file_offset + by[i - 1]->bytes > by[i]->file_offset) {
                lrgd_status s = lrgd_fail(LRGD_E_FORMAT,
                                          "%s: offset %" PRIu64 ": tensor '%s' data overlaps tensor '%s' (expected disjoint ranges)",
                                          nm, by[i]->info_offset, by[i]->name, by[i - 1]->name);
                free(by);
                return s;
            }
        free(by);
    }
    return LRGD_OK;
}

lrgd_status lrgd_gguf_parse(const void *data, size_t size, const char *name, lrgd_gguf **out)
{
    *out = NULL;
    if (!name) name = "<memory>";
    if (!data && size) return lrgd_fail(LRGD_E_INVALID, "%s: no data", name);
    lrgd_gguf *g = calloc(1, sizeof *g);
    if (!g) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    g->name = strdup(name);
    if (!g->name) { free(g); return lrgd_fail(LRGD_E_NOMEM, "out of memory"); }
    g->data = data;
    g->size = size;
    g->alignment = 32;
    rd r = {data, size, 0, g->name, g};
    uint64_t nt, nkv;
    lrgd_status st = parse_header(&r, g, &nt, &nkv);
    if (st == LRGD_OK) {
        g->n_kv = (int64_t)nkv;
        g->n_tensors = (int64_t)nt;
        /* +1: never ask for 0 bytes. */
        g->keys = calloc((size_t)nkv + 1, sizeof *g->keys);
        g->vals = calloc((size_t)nkv + 1, sizeof *g->vals);
        g->kv_span = calloc(2 * (size_t)nkv + 2, sizeof *g->kv_span);
        g->kv_sorted = calloc((size_t)nkv + 1, sizeof *g->kv_sorted);
        g->tensors = calloc((size_t)nt + 1, sizeof *g->tensors);
        g->t_sorted = calloc((size_t)nt + 1, sizeof *g->t_sorted);
        if (!g->keys || !g->vals || !g->kv_span || !g->kv_sorted || !g->tensors || !g->t_sorted)
            st = lrgd_fail(LRGD_E_NOMEM, "%s: out of memory", name);
    }
    if (st == LRGD_OK) st = parse_kvs(&r, g);
    if (st == LRGD_OK) st = parse_tensors(&r, g);
    if (st != LRGD_OK) {
        lrgd_gguf_free(g);
        return st;
    }
    *out = g;
    return LRGD_OK;
}

lrgd_status lrgd_gguf_open(const char *path, lrgd_gguf **out)
{
    *out = NULL;
    lrgd_mapped m;
    LRGD_TRY(lrgd_map_file(path, &m));
    lrgd_status st = lrgd_gguf_parse(m.data, m.size, path, out);
    if (st != LRGD_OK) {
        lrgd_unmap_file(&m);
        return st;
    }
    (*out)->map = m;
    return LRGD_OK;
}

void lrgd_gguf_free(lrgd_gguf *g)
{
    if (!g) return;
    while (g->pool) {
        pool_chunk *n = g->pool->next;
        free(g->pool);
        g->pool = n;
    }
    free(g->keys);
    free(g->vals);
    free(g->kv_span);
    free(g->kv_sorted);
    free(g->tensors);
    free(g->t_sorted);
    free(g->name);
    lrgd_unmap_file(&g->map);
    free(g);
}

/* ---- accessors ------------------------------------------------------------- */

uint32_t lrgd_gguf_version(const lrgd_gguf *g) { return g->version; }
size_t lrgd_gguf_alignment(const lrgd_gguf *g) { return g->alignment; }
size_t lrgd_gguf_data_offset(const lrgd_gguf *g) { return g->data_off; }
size_t lrgd_gguf_file_size(const lrgd_gguf *g) { return g->size; }
const char *lrgd_gguf_name(const lrgd_gguf *g) { return g->name; }
const void *lrgd_gguf_bytes(const lrgd_gguf *g) { return g->data; }
int64_t lrgd_gguf_n_kv(const lrgd_gguf *g) { return g->n_kv; }
const char *lrgd_gguf_key(const lrgd_gguf *g, int64_t i) { return i >= 0 && i < g->n_kv ? g->keys[i] : NULL; }
const lrgd_gguf_val *lrgd_gguf_kv(const lrgd_gguf *g, int64_t i) { return i >= 0 && i < g->n_kv ? &g->vals[i] : NULL; }
int64_t lrgd_gguf_find_key(const lrgd_gguf *g, const char *key) { return find_sorted(g->kv_sorted, g->n_kv, key); }
const lrgd_gguf_val *lrgd_gguf_get(const lrgd_gguf *g, const char *key) { return lrgd_gguf_kv(g, lrgd_gguf_find_key(g, key)); }

int64_t lrgd_gguf_n_tensors(const lrgd_gguf *g) { return g->n_tensors; }
const lrgd_gguf_tensor *lrgd_gguf_tensor_at(const lrgd_gguf *g, int64_t i)
{
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}
const lrgd_gguf_tensor *lrgd_gguf_find_tensor(const lrgd_gguf *g, const char *name)
{
    return lrgd_gguf_tensor_at(g, find_sorted(g->t_sorted, g->n_tensors, name));
}

lrgd_gguf_type lrgd_gguf_val_type(const lrgd_gguf_val *v) { return (lrgd_gguf_type)v->type; }
uint64_t lrgd_gguf_val_offset(const lrgd_gguf_val *v) { return v->off; }

static lrgd_status wrong_type(const lrgd_gguf_val *v, const char *expected)
{
    return lrgd_fail(LRGD_E_FORMAT, "%s: offset %" PRIu64 ": key '%s': expected %s, got %s", v->file, v->off, v->key,
                     expected, lrgd_gguf_type_name((lrgd_gguf_type)v->type));
}

lrgd_status lrgd_gguf_val_int(const lrgd_gguf_val *v, int64_t *out)
{
    if (!is_int_type(v->type) && v->type != LRGD_GGUF_BOOL) return wrong_type(v, "an integer");
    if (v->type == LRGD_GGUF_U64 && v->v.u > (uint64_t)INT64_MAX)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %" PRIu64 ": key '%s': value %" PRIu64 " is too large", v->file,
                         v->off, v->key, v->v.u);
    *out = v->v.i;
    return LRGD_OK;
}

lrgd_status lrgd_gguf_val_u64(const lrgd_gguf_val *v, uint64_t *out)
{
    if (!is_int_type(v->type) && v->type != LRGD_GGUF_BOOL) return wrong_type(v, "an integer");
    if (is_signed_type(v->type) && v->v.i < 0)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %" PRIu64 ": key '%s': expected a non-negative value, got %" PRId64,
                         v->file, v->off, v->key, v->v.i);
    *out = v->v.u;
    return LRGD_OK;
}

lrgd_status lrgd_gguf_val_float(const lrgd_gguf_val *v, double *out)
{
    if (v->type != LRGD_GGUF_F32 && v->type != LRGD_GGUF_F64) return wrong_type(v, "a float");
    *out = v->v.f;
    return LRGD_OK;
}

lrgd_status lrgd_gguf_val_bool(const lrgd_gguf_val *v, int *out)
{
    if (v->type != LRGD_GGUF_BOOL) return wrong_type(v, "a bool");
    *out = (int)v->v.u;
    return LRGD_OK;
}

lrgd_status lrgd_gguf_val_str(const lrgd_gguf_val *v, const char **s, uint64_t *len)
{
    if (v->type != LRGD_GGUF_STRING) return wrong_type(v, "a string");
    *s = v->v.s;
    if (len) *len = v->n;
    return LRGD_OK;
}

lrgd_gguf_type lrgd_gguf_arr_type(const lrgd_gguf_val *v) { return (lrgd_gguf_type)(v->type == LRGD_GGUF_ARRAY ? v->elem : 0xffffffffu); }
uint64_t lrgd_gguf_arr_len(const lrgd_gguf_val *v) { return v->type == LRGD_GGUF_ARRAY ? v->n : 0; }

/* Element i of a numeric array as a scalar node. */
static lrgd_status arr_elem(const lrgd_gguf_val *v, uint64_t i, lrgd_gguf_val *e)
{
    if (v->type != LRGD_GGUF_ARRAY) return wrong_type(v, "an array");
    if (i >= v->n)
        return lrgd_fail(LRGD_E_INVALID, "%s: offset %" PRIu64 ": key '%s': index %" PRIu64 " past the array's %" PRIu64
                         " elements", v->file, v->off, v->key, i, v->n);
    size_t es = scalar_size(v->elem);
    if (!es) {
        *e = v->v.items[i];
        return LRGD_OK;
    }
    memset(e, 0, sizeof *e);
    e->type = v->elem;
    e->off = v->off + 12 + i * es;
    e->file = v->file;
    e->key = v->key;
    decode_scalar(v->elem, v->v.raw + i * es, e);
    return LRGD_OK;
}

lrgd_status lrgd_gguf_arr_int(const lrgd_gguf_val *v, uint64_t i, int64_t *out)
{
    lrgd_gguf_val e;
    LRGD_TRY(arr_elem(v, i, &e));
    return lrgd_gguf_val_int(&e, out);
}

lrgd_status lrgd_gguf_arr_u64(const lrgd_gguf_val *v, uint64_t i, uint64_t *out)
{
    lrgd_gguf_val e;
    LRGD_TRY(arr_elem(v, i, &e));
    return lrgd_gguf_val_u64(&e, out);
}

lrgd_status lrgd_gguf_arr_float(const lrgd_gguf_val *v, uint64_t i, double *out)
{
    lrgd_gguf_val e;
    LRGD_TRY(arr_elem(v, i, &e));
    return lrgd_gguf_val_float(&e, out);
}

const char *lrgd_gguf_arr_str(const lrgd_gguf_val *v, uint64_t i, uint64_t *len)
{
    if (v->type != LRGD_GGUF_ARRAY || v->elem != LRGD_GGUF_STRING || i >= v->n) return NULL;
    if (len) *len = v->v.items[i].n;
    return v->v.items[i].v.s;
}

const lrgd_gguf_val *lrgd_gguf_arr_arr(const lrgd_gguf_val *v, uint64_t i)
{
    if (v->type != LRGD_GGUF_ARRAY || v->elem != LRGD_GGUF_ARRAY || i >= v->n) return NULL;
    return &v->v.items[i];
}

const void *lrgd_gguf_arr_raw(const lrgd_gguf_val *v)
{
    if (v->type != LRGD_GGUF_ARRAY || !scalar_size(v->elem)) return NULL;
    return v->v.raw;
}

static lrgd_status get_key(const lrgd_gguf *g, const char *key, const lrgd_gguf_val **v)
{
    *v = lrgd_gguf_get(g, key);
    if (!*v) return lrgd_fail(LRGD_E_FORMAT, "%s: missing metadata key '%s'", g->name, key);
    return LRGD_OK;
}

lrgd_status lrgd_gguf_get_int(const lrgd_gguf *g, const char *key, int64_t *out)
{
    const lrgd_gguf_val *v;
    LRGD_TRY(get_key(g, key, &v));
    return lrgd_gguf_val_int(v, out);
}

lrgd_status lrgd_gguf_get_float(const lrgd_gguf *g, const char *key, double *out)
{
    const lrgd_gguf_val *v;
    LRGD_TRY(get_key(g, key, &v));
    return lrgd_gguf_val_float(v, out);
}

lrgd_status lrgd_gguf_get_str(const lrgd_gguf *g, const char *key, const char **out)
{
    const lrgd_gguf_val *v;
    LRGD_TRY(get_key(g, key, &v));
    return lrgd_gguf_val_str(v, out, NULL);
}

lrgd_status lrgd_gguf__kv_span(const lrgd_gguf *g, int64_t i, const unsigned char **p, size_t *n)
{
    if (i < 0 || i >= g->n_kv) return lrgd_fail(LRGD_E_INVALID, "%s: no metadata key %" PRId64, g->name, i);
    *p = g->data + g->kv_span[2 * i];
    *n = g->kv_span[2 * i + 1] - g->kv_span[2 * i];
    return LRGD_OK;
}
