/* GGUF: write -> read round trips of every metadata and tensor type, models
 * to and from GGUF (stories260K bit-identical, recommendation vocabulary,
 * NeoX permutation), truncation at every length, byte flips, and hostile
 * headers each refused with the right message. */
#include "format/formats.h"
#include "gguf_build.h"
#include "model/ops.h"
#include "test.h"

#include <unistd.h>

static char g_dir[64];

static const char *tmp_path(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

/* Parse a private copy of exactly n bytes: ASan then catches any read past n. */
static lrgd_status parse_copy(const void *data, size_t n, const char *name, lrgd_gguf **g, void **copy)
{
    *copy = malloc(n ? n : 1);
    if (n) memcpy(*copy, data, n);
    return lrgd_gguf_parse(*copy, n, name, g);
}

/* Parse + build a model from bytes; returns the first failing status. */
static lrgd_status load_bytes(const void *data, size_t n, const char *name)
{
    void *copy;
    lrgd_gguf *g = NULL;
    lrgd_status st = parse_copy(data, n, name, &g, &copy);
    if (st == LRGD_OK) {
        lrgd_model *m;
        st = lrgd_gguf_to_model(g, &m);
        if (st == LRGD_OK) lrgd_model_free(m);
    }
    lrgd_gguf_free(g);
    free(copy);
    return st;
}

/* ---- metadata -------------------------------------------------------------- */

static void test_metadata_roundtrip(void)
{
    lrgd_gguf_writer *w;
    CHECK_OK(lrgd_gguf_writer_new(&w));
    CHECK_OK(lrgd_gguf_set_u8(w, "t.u8", 255));
    CHECK_OK(lrgd_gguf_set_i8(w, "t.i8", -128));
    CHECK_OK(lrgd_gguf_set_u16(w, "t.u16", 65535));
    CHECK_OK(lrgd_gguf_set_i16(w, "t.i16", -32768));
    CHECK_OK(lrgd_gguf_set_u32(w, "t.u32", 4294967295u));
    CHECK_OK(lrgd_gguf_set_i32(w, "t.i32", INT32_MIN));
    CHECK_OK(lrgd_gguf_set_u64(w, "t.u64", UINT64_MAX));
    CHECK_OK(lrgd_gguf_set_i64(w, "t.i64", INT64_MIN));
    CHECK_OK(lrgd_gguf_set_f32(w, "t.f32", -1.5e-7f));
    CHECK_OK(lrgd_gguf_set_f64(w, "t.f64", 3.141592653589793));
    CHECK_OK(lrgd_gguf_set_bool(w, "t.true", 1));
    CHECK_OK(lrgd_gguf_set_bool(w, "t.false", 0));
    CHECK_OK(lrgd_gguf_set_str(w, "t.str", "h\xc3\xa9llo \"w\"\n"));
    CHECK_OK(lrgd_gguf_set_str(w, "t.empty", ""));
    const uint8_t a_u8[] = {0, 1, 255};
    const int8_t a_i8[] = {-128, 0, 127};
    const uint16_t a_u16[] = {0, 65535};
    const int16_t a_i16[] = {-32768, 32767};
    const uint32_t a_u32[] = {0, 4294967295u, 7};
    const int32_t a_i32[] = {INT32_MIN, -1, INT32_MAX};
    const uint64_t a_u64[] = {0, UINT64_MAX};
    const int64_t a_i64[] = {INT64_MIN, -5, INT64_MAX};
    const float a_f32[] = {0.0f, -0.0f, 1e-38f, 3.4e38f, -2.5f};
    const double a_f64[] = {1e-300, -1e300, 0.1};
    const uint8_t a_bool[] = {1, 0, 1, 1};
    CHECK_OK(lrgd_gguf_set_arr(w, "a.u8", LRGD_GGUF_U8, a_u8, 3));
    CHECK_OK(lrgd_gguf_set_arr(w, "a.i8", LRGD_GGUF_I8, a_i8, 3));
    CHECK_OK(lrgd_gguf_set_arr(w, "a.u16", LRGD_GGUF_U16, a_u16, 2));
    CHECK_OK(lrgd_gguf_set_arr(w, "a.i16", LRGD_GGUF_I16, a_i16, 2));
    CHECK_OK(lrgd_gguf_set_arr(w, "a.u32", LRGD_GGUF_U32, a_u32, 3));
    CHECK_OK(lrgd_gguf_set_arr(w, "a.i32", LRGD_GGUF_I32, a_i32, 3));
    CHECK_OK(lrgd_gguf_set_arr(w, "a.u64", LRGD_GGUF_U64, a_u64, 2));
    CHECK_OK(lrgd_gguf_set_arr(w, "a.i64", LRGD_GGUF_I64, a_i64, 3));
    CHECK_OK(lrgd_gguf_set_arr(w, "a.f32", LRGD_GGUF_F32, a_f32, 5));
    CHECK_OK(lrgd_gguf_set_arr(w, "a.f64", LRGD_GGUF_F64, a_f64, 3));
    CHECK_OK(lrgd_gguf_set_arr(w, "a.bool", LRGD_GGUF_BOOL, a_bool, 4));
    CHECK_OK(lrgd_gguf_set_arr(w, "a.empty", LRGD_GGUF_I32, NULL, 0));
    const char *strs[] = {"a", "", "\xe2\x82\xac", "long string with spaces"};
    CHECK_OK(lrgd_gguf_set_arr_str(w, "a.str", strs, 4));
    const int32_t in0[] = {1}, in2[] = {-1, 2, -3};
    const void *inner[] = {in0, NULL, in2};
    const uint64_t counts[] = {1, 0, 3};
    CHECK_OK(lrgd_gguf_set_arr_arr(w, "a.arr_i32", LRGD_GGUF_I32, inner, counts, 3));
    const char *s0[] = {"x", "yy"}, *s1[] = {"zzz"};
    const void *sinner[] = {s0, s1};
    const uint64_t scounts[] = {2, 1};
    CHECK_OK(lrgd_gguf_set_arr_arr(w, "a.arr_str", LRGD_GGUF_STRING, sinner, scounts, 2));
    /* refusals of the writer */
    CHECK(lrgd_gguf_set_u8(w, "t.u8", 1) == LRGD_E_INVALID);
    CHECK(lrgd_gguf_set_str(w, "", "x") == LRGD_E_INVALID);
    const uint8_t bad_bool[] = {2};
    CHECK(lrgd_gguf_set_arr(w, "a.badbool", LRGD_GGUF_BOOL, bad_bool, 1) == LRGD_E_INVALID);
    CHECK(lrgd_gguf_writer_set_alignment(w, 3) == LRGD_E_INVALID);
    CHECK_OK(lrgd_gguf_writer_set_alignment(w, 64));

    /* through a file (mmap) */
    const char *path = tmp_path("meta.gguf");
    CHECK_OK(lrgd_gguf_write(w, path));
    lrgd_gguf_writer_free(w);
    lrgd_gguf *g;
    CHECK_OK(lrgd_gguf_open(path, &g));
    if (!g) return;
    CHECK(lrgd_gguf_version(g) == 3);
    CHECK(lrgd_gguf_alignment(g) == 64);
    CHECK(lrgd_gguf_n_kv(g) == 30); /* 14 scalars + 13 arrays + 2 nested + general.alignment */
    CHECK(lrgd_gguf_data_offset(g) % 64 == 0);
    int64_t i;
    uint64_t u;
    double f;
    int b;
    const char *s;
    uint64_t len;
    CHECK_OK(lrgd_gguf_get_int(g, "t.u8", &i)); CHECK(i == 255);
    CHECK_OK(lrgd_gguf_get_int(g, "t.i8", &i)); CHECK(i == -128);
    CHECK_OK(lrgd_gguf_get_int(g, "t.u16", &i)); CHECK(i == 65535);
    CHECK_OK(lrgd_gguf_get_int(g, "t.i16", &i)); CHECK(i == -32768);
    CHECK_OK(lrgd_gguf_get_int(g, "t.u32", &i)); CHECK(i == 4294967295LL);
    CHECK_OK(lrgd_gguf_get_int(g, "t.i32", &i)); CHECK(i == INT32_MIN);
    CHECK(lrgd_gguf_get_int(g, "t.u64", &i) == LRGD_E_FORMAT); /* does not fit int64 */
    CHECK_OK(lrgd_gguf_val_u64(lrgd_gguf_get(g, "t.u64"), &u)); CHECK(u == UINT64_MAX);
    CHECK_OK(lrgd_gguf_get_int(g, "t.i64", &i)); CHECK(i == INT64_MIN);
    CHECK(lrgd_gguf_val_u64(lrgd_gguf_get(g, "t.i64"), &u) == LRGD_E_FORMAT); /* negative */
    CHECK_OK(lrgd_gguf_get_float(g, "t.f32", &f)); CHECK(f == (double)-1.5e-7f);
    CHECK_OK(lrgd_gguf_get_float(g, "t.f64", &f)); CHECK(f == 3.141592653589793);
    CHECK(lrgd_gguf_get_float(g, "t.u8", &f) == LRGD_E_FORMAT);
    CHECK(strstr(lrgd_last_error(), "t.u8") && strstr(lrgd_last_error(), "expected a float"));
    CHECK_OK(lrgd_gguf_val_bool(lrgd_gguf_get(g, "t.true"), &b)); CHECK(b == 1);
    CHECK_OK(lrgd_gguf_val_bool(lrgd_gguf_get(g, "t.false"), &b)); CHECK(b == 0);
    CHECK_OK(lrgd_gguf_val_str(lrgd_gguf_get(g, "t.str"), &s, &len));
    CHECK(len == 11 && !strcmp(s, "h\xc3\xa9llo \"w\"\n"));
    CHECK_OK(lrgd_gguf_get_str(g, "t.empty", &s)); CHECK(!strcmp(s, ""));
    CHECK(lrgd_gguf_get(g, "nope") == NULL && lrgd_gguf_find_key(g, "nope") == -1);
    CHECK(lrgd_gguf_get_int(g, "nope", &i) == LRGD_E_FORMAT && strstr(lrgd_last_error(), "missing metadata key 'nope'"));
    /* keys keep their order */
    CHECK(!strcmp(lrgd_gguf_key(g, 0), "t.u8") && !strcmp(lrgd_gguf_key(g, 13), "t.empty"));

#define ARR_INT(key, arr, n)                                                          \
    do {                                                                              \
        const lrgd_gguf_val *v_ = lrgd_gguf_get(g, key);                              \
        CHECK(v_ && lrgd_gguf_arr_len(v_) == (n));                                    \
        for (uint64_t k_ = 0; v_ && k_ < (n); k_++) {                                 \
            int64_t x_;                                                               \
            CHECK_OK(lrgd_gguf_arr_int(v_, k_, &x_));                                 \
            CHECK_MSG(x_ == (int64_t)(arr)[k_], "%s[%d]", key, (int)k_);              \
        }                                                                             \
    } while (0)
    ARR_INT("a.u8", a_u8, 3);
    ARR_INT("a.i8", a_i8, 3);
    ARR_INT("a.u16", a_u16, 2);
    ARR_INT("a.i16", a_i16, 2);
    ARR_INT("a.u32", a_u32, 3);
    ARR_INT("a.i32", a_i32, 3);
    ARR_INT("a.i64", a_i64, 3);
    ARR_INT("a.bool", a_bool, 4);
    const lrgd_gguf_val *v = lrgd_gguf_get(g, "a.u64");
    CHECK(v && lrgd_gguf_arr_type(v) == LRGD_GGUF_U64 && lrgd_gguf_arr_len(v) == 2);
    if (v) {
        uint64_t x;
        memcpy(&x, (const unsigned char *)lrgd_gguf_arr_raw(v) + 8, 8);
        CHECK(x == UINT64_MAX);
        CHECK(lrgd_gguf_arr_u64(v, 1, &x) == LRGD_OK && x == UINT64_MAX);
        CHECK(lrgd_gguf_arr_int(v, 1, &i) == LRGD_E_FORMAT);
        CHECK(lrgd_gguf_arr_int(v, 2, &i) == LRGD_E_INVALID); /* past the end */
    }
    v = lrgd_gguf_get(g, "a.f32");
    for (uint64_t k = 0; v && k < 5; k++) {
        CHECK_OK(lrgd_gguf_arr_float(v, k, &f));
        CHECK_MSG(f == (double)a_f32[k] && !signbit(f) == !signbit(a_f32[k]), "a.f32[%d] = %g", (int)k, f);
    }
    v = lrgd_gguf_get(g, "a.f64");
    for (uint64_t k = 0; v && k < 3; k++) {
        CHECK_OK(lrgd_gguf_arr_float(v, k, &f));
        CHECK(f == a_f64[k]);
    }
    v = lrgd_gguf_get(g, "a.empty");
    CHECK(v && lrgd_gguf_arr_type(v) == LRGD_GGUF_I32 && lrgd_gguf_arr_len(v) == 0);
    v = lrgd_gguf_get(g, "a.str");
    CHECK(v && lrgd_gguf_arr_type(v) == LRGD_GGUF_STRING && lrgd_gguf_arr_len(v) == 4);
    for (uint64_t k = 0; v && k < 4; k++) CHECK(!strcmp(lrgd_gguf_arr_str(v, k, &len), strs[k]) && len == strlen(strs[k]));
    CHECK(v && lrgd_gguf_arr_str(v, 4, NULL) == NULL);
    v = lrgd_gguf_get(g, "a.arr_i32");
    CHECK(v && lrgd_gguf_arr_type(v) == LRGD_GGUF_ARRAY && lrgd_gguf_arr_len(v) == 3);
    if (v) {
        const lrgd_gguf_val *a0 = lrgd_gguf_arr_arr(v, 0), *a1 = lrgd_gguf_arr_arr(v, 1), *a2 = lrgd_gguf_arr_arr(v, 2);
        CHECK(a0 && lrgd_gguf_arr_len(a0) == 1 && lrgd_gguf_arr_int(a0, 0, &i) == LRGD_OK && i == 1);
        CHECK(a1 && lrgd_gguf_arr_len(a1) == 0 && lrgd_gguf_arr_type(a1) == LRGD_GGUF_I32);
        for (int k = 0; a2 && k < 3; k++) CHECK(lrgd_gguf_arr_int(a2, (uint64_t)k, &i) == LRGD_OK && i == in2[k]);
    }
    v = lrgd_gguf_get(g, "a.arr_str");
    if (v) {
        const lrgd_gguf_val *a0 = lrgd_gguf_arr_arr(v, 0), *a1 = lrgd_gguf_arr_arr(v, 1);
        CHECK(a0 && !strcmp(lrgd_gguf_arr_str(a0, 1, NULL), "yy"));
        CHECK(a1 && !strcmp(lrgd_gguf_arr_str(a1, 0, NULL), "zzz"));
    }

    /* copy every key into a second file: the copy reads back the same */
    lrgd_gguf_writer *w2;
    CHECK_OK(lrgd_gguf_writer_new(&w2));
    for (int64_t k = 0; k < lrgd_gguf_n_kv(g); k++) CHECK_OK(lrgd_gguf_copy_kv(w2, g, k));
    void *buf;
    size_t n;
    CHECK_OK(lrgd_gguf_write_mem(w2, &buf, &n));
    lrgd_gguf_writer_free(w2);
    lrgd_gguf *g2;
    CHECK_OK(lrgd_gguf_parse(buf, n, "copy", &g2));
    CHECK(g2 && lrgd_gguf_n_kv(g2) == lrgd_gguf_n_kv(g) && lrgd_gguf_alignment(g2) == 64);
    for (int64_t k = 0; g2 && k < lrgd_gguf_n_kv(g); k++) {
        const unsigned char *p1, *p2;
        size_t n1, n2;
        CHECK_OK(lrgd_gguf__kv_span(g, k, &p1, &n1));
        CHECK_OK(lrgd_gguf__kv_span(g2, k, &p2, &n2));
        CHECK_MSG(n1 == n2 && !memcmp(p1, p2, n1), "key %s", lrgd_gguf_key(g, k));
    }
    lrgd_gguf_free(g2);
    free(buf);
    lrgd_gguf_free(g);
}

/* ---- tensors ------------------------------------------------------------------ */

static void test_tensor_roundtrip(void)
{
    lrgd_rng r;
    lrgd_rng_seed(&r, 11, 0);
    enum { ROWS = 7, COLS = 96 };
    size_t n = ROWS * COLS;
    float *x = malloc(n * sizeof *x), *h = malloc(n * sizeof *h), *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n; i++) x[i] = (float)(lrgd_rng_normal(&r) * (i % 32 == 0 ? 10.0 : 1.0));
    /* F16-representable values: every finite half, picked at random */
    for (size_t i = 0; i < n; i++) {
        uint16_t bits;
        do bits = (uint16_t)lrgd_rng_below(&r, 65536); while ((bits & 0x7c00) == 0x7c00);
        h[i] = lrgd_fp16_to_fp32(bits);
    }
    h[0] = 65504.0f;
    h[1] = -0x1p-24f; /* smallest subnormal */
    lrgd_gguf_writer *w;
    CHECK_OK(lrgd_gguf_writer_new(&w));
    uint64_t ne2[2] = {COLS, ROWS}, ne1[1] = {n}, ne4[4] = {COLS / 4, 2, 3, 4};
    (void)ne4;
    CHECK_OK(lrgd_gguf_add_tensor_f32(w, "f32", LRGD_F32, 2, ne2, x));
    CHECK_OK(lrgd_gguf_add_tensor_f32(w, "f16", LRGD_F16, 2, ne2, h));
    CHECK_OK(lrgd_gguf_add_tensor_f32(w, "q8", LRGD_Q8_0, 2, ne2, x));
    CHECK_OK(lrgd_gguf_add_tensor_f32(w, "vec", LRGD_F32, 1, ne1, x));
    uint64_t ne4b[4] = {8, 3, 2, 7}; /* 336 = 8*3*2*7 */
    CHECK_OK(lrgd_gguf_add_tensor_f32(w, "t4", LRGD_F32, 4, ne4b, x));
    /* writer refusals */
    CHECK(lrgd_gguf_add_tensor_f32(w, "f32", LRGD_F32, 2, ne2, x) == LRGD_E_INVALID);
    uint64_t ne31[1] = {31};
    CHECK(lrgd_gguf_add_tensor_f32(w, "q8bad", LRGD_Q8_0, 1, ne31, x) == LRGD_E_INVALID);
    float big[2] = {1e6f, 0};
    uint64_t ne_2[1] = {2};
    CHECK(lrgd_gguf_add_tensor_f32(w, "f16big", LRGD_F16, 1, ne_2, big) == LRGD_E_NUMERIC);
    CHECK(strstr(lrgd_last_error(), "f16big") && strstr(lrgd_last_error(), "F16 range"));
    float nanv[1] = {NAN};
    uint64_t ne_1[1] = {1};
    CHECK(lrgd_gguf_add_tensor_f32(w, "nan", LRGD_F32, 1, ne_1, nanv) == LRGD_E_NUMERIC);
    uint64_t ne5[5] = {1, 1, 1, 1, 1};
    CHECK(lrgd_gguf_add_tensor_f32(w, "d5", LRGD_F32, 5, ne5, x) == LRGD_E_INVALID);
    void *buf;
    size_t size;
    CHECK_OK(lrgd_gguf_write_mem(w, &buf, &size));
    lrgd_gguf_writer_free(w);
    lrgd_gguf *g;
    CHECK_OK(lrgd_gguf_parse(buf, size, "tensors", &g));
    if (!g) { free(buf); return; }
    CHECK(lrgd_gguf_n_tensors(g) == 5);
    const lrgd_gguf_tensor *t = lrgd_gguf_find_tensor(g, "f32");
    CHECK(t && t->type == LRGD_F32 && t->n_dims == 2 && t->ne[0] == COLS && t->ne[1] == ROWS && t->bytes == n * 4);
    CHECK(t && !memcmp(t->data, x, n * 4));
    CHECK(t && t->file_offset % 32 == 0 && t->offset % 32 == 0);
    t = lrgd_gguf_find_tensor(g, "f16");
    CHECK(t && t->type == LRGD_F16 && t->bytes == n * 2);
    if (t) {
        lrgd_dequantize(LRGD_F16, t->data, y, n);
        int exact = 1;
        for (size_t i = 0; i < n; i++) exact &= y[i] == h[i] && signbit(y[i]) == signbit(h[i]);
        CHECK(exact);
    }
    t = lrgd_gguf_find_tensor(g, "q8");
    CHECK(t && t->type == LRGD_Q8_0 && t->bytes == n / 32 * 34);
    if (t) {
        lrgd_dequantize(LRGD_Q8_0, t->data, y, n);
        /* Per block: rounding to the grid of step d costs d/2; the scale is
         * stored in fp16, which moves each of the <= 127 steps by |d - d16|. */
        double worst = 0;
        int ok = 1;
        for (size_t b = 0; b < n / 32; b++) {
            float amax = 0;
            for (int k = 0; k < 32; k++) amax = fmaxf(amax, fabsf(x[b * 32 + k]));
            double d = amax / 127.0, d16 = lrgd_fp16_to_fp32(lrgd_fp32_to_fp16((float)d));
            double bound = d / 2 + 127 * fabs(d - d16) + 1e-6 * amax;
            for (int k = 0; k < 32; k++) {
                double e = fabs((double)x[b * 32 + k] - y[b * 32 + k]);
                if (e > bound) ok = 0;
                if (e / bound > worst) worst = e / bound;
            }
        }
        CHECK_MSG(ok, "Q8_0 error above its bound (worst ratio %g)", worst);
        CHECK(worst > 0.3); /* the bound is not vacuous: errors come close to it */
    }
    t = lrgd_gguf_find_tensor(g, "vec");
    CHECK(t && t->n_dims == 1 && t->ne[0] == n && !memcmp(t->data, x, n * 4));
    t = lrgd_gguf_find_tensor(g, "t4");
    CHECK(t && t->n_dims == 4 && t->ne[3] == 7 && t->n_elements == 336 && !memcmp(t->data, x, 336 * 4));
    CHECK(lrgd_gguf_find_tensor(g, "none") == NULL);
    lrgd_gguf_free(g);
    free(buf);
    free(x);
    free(h);
    free(y);
}

/* ---- models ------------------------------------------------------------------- */

static int weight_eq(const lrgd_weight *a, const lrgd_weight *b)
{
    if (a->type != b->type || a->rows != b->rows || a->cols != b->cols) return 0;
    return !memcmp(a->data, b->data, lrgd_dtype_row_bytes(a->type, (size_t)a->cols) * (size_t)a->rows);
}

static int cfg_eq(const lrgd_config *a, const lrgd_config *b)
{
    return a->dim == b->dim && a->hidden_dim == b->hidden_dim && a->n_layers == b->n_layers &&
           a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
           a->vocab_size == b->vocab_size && a->seq_len == b->seq_len && a->norm_eps == b->norm_eps &&
           a->rope_base == b->rope_base && a->rope_type == b->rope_type && a->attn == b->attn && a->tied == b->tied;
}

static int in_file(const lrgd_model *m, const void *p)
{
    const unsigned char *c = p;
    return c >= m->file.data && c < m->file.data + m->file.size;
}

/* Every weight of b equals f(weight of a) elementwise, f given as a tolerance rule. */
static void compare_f16(const lrgd_weight *orig, const lrgd_weight *got, const char *what)
{
    size_t n = (size_t)orig->rows * orig->cols;
    const float *o = orig->data;
    float *g = malloc(n * sizeof *g);
    lrgd_dequantize(got->type, got->data, g, n);
    int ok = got->rows == orig->rows && got->cols == orig->cols;
    for (size_t i = 0; ok && i < n; i++) ok = g[i] == lrgd_fp16_to_fp32(lrgd_fp32_to_fp16(o[i]));
    CHECK_MSG(ok, "%s: F16 weights are not the F16 rounding of the originals", what);
    free(g);
}

static void test_stories(void)
{
    const char *src = t_shared("models/stories260K.bin");
    if (access(src, R_OK) != 0) {
        printf("skip: %s not found\n", src);
        return;
    }
    lrgd_model *a;
    CHECK_OK(lrgd_model_load(src, &a));
    if (!a) return;
    CHECK(a->gguf == NULL && a->cfg.dim == 64 && a->cfg.vocab_size == 512 && a->cfg.tied);
    const char *p32 = tmp_path("s32.gguf"), *p16 = tmp_path("s16.gguf"), *p8 = tmp_path("s8.gguf");
    CHECK_OK(lrgd_model_save_gguf(a, p32, LRGD_F32, "stories260K"));
    CHECK_OK(lrgd_model_save_gguf(a, p16, LRGD_F16, NULL));
    CHECK_OK(lrgd_model_save_gguf(a, p8, LRGD_Q8_0, NULL));
    lrgd_model *b;
    CHECK_OK(lrgd_model_load(p32, &b));
    if (b) {
        CHECK(b->gguf != NULL);
        CHECK(cfg_eq(&a->cfg, &b->cfg));
        CHECK(weight_eq(&a->tok_embd, &b->tok_embd) && b->output.data == b->tok_embd.data);
        CHECK(in_file(b, b->tok_embd.data)); /* used in place from the mapping */
        int all = 1, inplace = 1;
        const size_t D = (size_t)a->cfg.dim * 4;
        for (int l = 0; l < a->cfg.n_layers; l++) {
            const lrgd_layer *x = &a->layers[l], *y = &b->layers[l];
            all &= weight_eq(&x->wq, &y->wq) && weight_eq(&x->wk, &y->wk) && weight_eq(&x->wv, &y->wv) &&
                   weight_eq(&x->wo, &y->wo) && weight_eq(&x->w1, &y->w1) && weight_eq(&x->w2, &y->w2) &&
                   weight_eq(&x->w3, &y->w3) && !memcmp(x->attn_norm, y->attn_norm, D) &&
                   !memcmp(x->ffn_norm, y->ffn_norm, D);
            inplace &= in_file(b, y->wq.data) && in_file(b, y->w2.data) && in_file(b, y->attn_norm);
        }
        CHECK_MSG(all, "stories260K F32 GGUF weights differ from the llama2.c weights");
        CHECK(inplace);
        CHECK(!memcmp(a->out_norm, b->out_norm, D));
        const char *s;
        CHECK_OK(lrgd_gguf_get_str(b->gguf, "general.name", &s));
        CHECK(!strcmp(s, "stories260K"));
        const lrgd_gguf_val *tok = lrgd_gguf_get(b->gguf, "tokenizer.ggml.tokens");
        const lrgd_gguf_val *tt = lrgd_gguf_get(b->gguf, "tokenizer.ggml.token_type");
        CHECK(tok && lrgd_gguf_arr_len(tok) == 512 && tt);
        if (tok && tt) {
            int64_t ty;
            CHECK(!strcmp(lrgd_gguf_arr_str(tok, 0, NULL), "<unk>") && !strcmp(lrgd_gguf_arr_str(tok, 1, NULL), "<s>") &&
                  !strcmp(lrgd_gguf_arr_str(tok, 2, NULL), "</s>") && !strcmp(lrgd_gguf_arr_str(tok, 3, NULL), "<0x00>") &&
                  !strcmp(lrgd_gguf_arr_str(tok, 13, NULL), "<0x0A>") && !strcmp(lrgd_gguf_arr_str(tok, 258, NULL), "<0xFF>"));
            CHECK(lrgd_gguf_arr_int(tt, 0, &ty) == LRGD_OK && ty == LRGD_TOK_UNKNOWN);
            CHECK(lrgd_gguf_arr_int(tt, 2, &ty) == LRGD_OK && ty == LRGD_TOK_CONTROL);
            CHECK(lrgd_gguf_arr_int(tt, 100, &ty) == LRGD_OK && ty == LRGD_TOK_BYTE);
            CHECK(lrgd_gguf_arr_int(tt, 300, &ty) == LRGD_OK && ty == LRGD_TOK_NORMAL);
        }
        /* GGUF -> GGUF keeps the vocabulary and the weights */
        const char *p32b = tmp_path("s32b.gguf");
        CHECK_OK(lrgd_model_save_gguf(b, p32b, LRGD_F32, NULL));
        lrgd_model *c;
        CHECK_OK(lrgd_model_load(p32b, &c));
        if (c) {
            CHECK(cfg_eq(&a->cfg, &c->cfg) && weight_eq(&a->layers[4].w2, &c->layers[4].w2));
            const char *nm;
            CHECK(lrgd_gguf_get_str(c->gguf, "general.name", &nm) == LRGD_OK && !strcmp(nm, "stories260K"));
            CHECK(lrgd_gguf_find_key(c->gguf, "tokenizer.ggml.scores") >= 0);
            lrgd_model_free(c);
        }
        lrgd_model_free(b);
    }
    CHECK_OK(lrgd_model_load(p16, &b));
    if (b) {
        CHECK(cfg_eq(&a->cfg, &b->cfg));
        /* F16 matrices come back as F32 (for BLAS), equal to the F16 rounding */
        CHECK(b->layers[0].wq.type == LRGD_F32 && !in_file(b, b->layers[0].wq.data));
        compare_f16(&a->tok_embd, &b->tok_embd, "token_embd");
        for (int l = 0; l < a->cfg.n_layers; l++) {
            compare_f16(&a->layers[l].wq, &b->layers[l].wq, "wq");
            compare_f16(&a->layers[l].w2, &b->layers[l].w2, "w2");
            CHECK(!memcmp(a->layers[l].ffn_norm, b->layers[l].ffn_norm, 64 * 4)); /* norms stay F32 */
        }
        lrgd_model_free(b);
    }
    CHECK_OK(lrgd_model_load(p8, &b));
    if (b) {
        CHECK(cfg_eq(&a->cfg, &b->cfg));
        CHECK(b->layers[0].wq.type == LRGD_Q8_0 && in_file(b, b->layers[0].wq.data));
        /* hidden_dim 172 is no multiple of 32: ffn_down falls back to F16 */
        CHECK(b->layers[0].w2.type == LRGD_F32);
        compare_f16(&a->layers[0].w2, &b->layers[0].w2, "w2 (Q8_0 fallback)");
        lrgd_gguf *g = b->gguf;
        const lrgd_gguf_tensor *t = lrgd_gguf_find_tensor(g, "blk.0.ffn_down.weight");
        CHECK(t && t->type == LRGD_F16);
        t = lrgd_gguf_find_tensor(g, "blk.0.ffn_up.weight");
        CHECK(t && t->type == LRGD_Q8_0);
        int64_t ft;
        CHECK(lrgd_gguf_get_int(g, "general.file_type", &ft) == LRGD_OK && ft == 7);
        lrgd_model_free(b);
    }
    lrgd_model_free(a);
}

/* A random in-memory model: NeoX RoPE, linear attention, untied, with a
 * recommendation vocabulary. */
static lrgd_model *make_rec_model(void)
{
    lrgd_config c = {.dim = 32, .hidden_dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                     .vocab_size = 40, .seq_len = 128, .norm_eps = 1e-6f, .rope_base = 5000.0f,
                     .rope_type = LRGD_ROPE_NEOX, .attn = LRGD_ATTN_LINEAR, .tied = 0};
    lrgd_model *m;
    if (lrgd_model_alloc(&c, &m) != LRGD_OK) return NULL;
    lrgd_rng r;
    lrgd_rng_seed(&r, 3, 0);
#define RANDW(w, R, C)                                                    \
    do {                                                                  \
        float *f_ = lrgd_alloc_n((size_t)(R) * (C), sizeof(float));       \
        for (size_t i_ = 0; i_ < (size_t)(R) * (C); i_++) f_[i_] = (float)(0.2 * lrgd_rng_normal(&r)); \
        lrgd_model_own(m, f_);                                            \
        (w) = (lrgd_weight){LRGD_F32, f_, (R), (C)};                      \
    } while (0)
#define RANDV(p)                                                          \
    do {                                                                  \
        float *f_ = lrgd_alloc_n(32, sizeof(float));                      \
        for (int i_ = 0; i_ < 32; i_++) f_[i_] = (float)(1 + 0.1 * lrgd_rng_normal(&r)); \
        lrgd_model_own(m, f_);                                            \
        (p) = f_;                                                         \
    } while (0)
    RANDW(m->tok_embd, 40, 32);
    RANDW(m->output, 40, 32);
    RANDV(m->out_norm);
    for (int l = 0; l < 2; l++) {
        lrgd_layer *L = &m->layers[l];
        RANDV(L->attn_norm);
        RANDV(L->ffn_norm);
        RANDW(L->wq, 32, 32);
        RANDW(L->wk, 16, 32);
        RANDW(L->wv, 16, 32);
        RANDW(L->wo, 32, 32);
        RANDW(L->w1, 64, 32);
        RANDW(L->w2, 32, 64);
        RANDW(L->w3, 64, 32);
    }
#undef RANDW
#undef RANDV
    m->rec = (lrgd_recvocab){.pad = 0, .bos = 1, .sep = 2, .ans = 3, .eos = 4, .n_special = 5, .n_items = 30};
    m->rec.item_ext = malloc(30 * sizeof(int64_t));
    for (int i = 0; i < 30; i++) m->rec.item_ext[i] = i == 7 ? -42 : (int64_t)i * 1000003 + (1LL << 40);
    return m;
}

/* Attention scores q_h . k_g at positions (i, j) for x [n][dim]. */
static void scores(const lrgd_model *m, int l, const float *x, int n, float *out)
{
    const lrgd_config *c = &m->cfg;
    int hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    float *q = malloc(sizeof(float) * (size_t)n * qd), *k = malloc(sizeof(float) * (size_t)n * kvd);
    lrgd_matmul(q, x, &m->layers[l].wq, n, 0);
    lrgd_matmul(k, x, &m->layers[l].wk, n, 0);
    lrgd_rope(q, n, c->n_heads, hd, 0, NULL, c->rope_base, c->rope_type, 1);
    lrgd_rope(k, n, c->n_kv_heads, hd, 0, NULL, c->rope_base, c->rope_type, 1);
    int group = c->n_heads / c->n_kv_heads;
    for (int h = 0; h < c->n_heads; h++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int d = 0; d < hd; d++) s += (double)q[i * qd + h * hd + d] * k[j * kvd + (h / group) * hd + d];
                out[(h * n + i) * n + j] = (float)s;
            }
    free(q);
    free(k);
}

static void test_rec_roundtrip(void)
{
    lrgd_model *a = make_rec_model();
    CHECK(a != NULL);
    if (!a) return;
    /* By default the model reads back exactly as it was, NeoX included. */
    const char *path0 = tmp_path("rec0.gguf");
    CHECK_OK(lrgd_model_save_gguf(a, path0, LRGD_F32, "rec"));
    lrgd_model *b0;
    CHECK_OK(lrgd_model_load(path0, &b0));
    if (b0) {
        CHECK(cfg_eq(&a->cfg, &b0->cfg) && b0->cfg.rope_type == LRGD_ROPE_NEOX);
        int same = weight_eq(&a->tok_embd, &b0->tok_embd) && weight_eq(&a->output, &b0->output);
        for (int l = 0; l < 2; l++)
            same &= weight_eq(&a->layers[l].wq, &b0->layers[l].wq) && weight_eq(&a->layers[l].wk, &b0->layers[l].wk);
        CHECK(same);
        CHECK(b0->rec.n_items == 30 && !memcmp(a->rec.item_ext, b0->rec.item_ext, 30 * sizeof(int64_t)));
        lrgd_model_free(b0);
    }
    CHECK(lrgd_model_save_gguf_ex(a, path0, LRGD_F32, NULL, 8) == LRGD_E_INVALID);
    /* LRGD_SAVE_ROPE_NORM: NeoX saved in the adjacent-pair form llama.cpp computes */
    const char *path = tmp_path("rec.gguf");
    CHECK_OK(lrgd_model_save_gguf_ex(a, path, LRGD_F32, "rec", LRGD_SAVE_ROPE_NORM));
    lrgd_model *b;
    CHECK_OK(lrgd_model_load(path, &b));
    if (!b) { lrgd_model_free(a); return; }
    lrgd_config want = a->cfg;
    want.rope_type = LRGD_ROPE_NORM;
    CHECK(cfg_eq(&want, &b->cfg));
    CHECK(b->cfg.attn == LRGD_ATTN_LINEAR && !b->cfg.tied);
    CHECK(weight_eq(&a->output, &b->output) && weight_eq(&a->tok_embd, &b->tok_embd));
    CHECK(weight_eq(&a->layers[1].wv, &b->layers[1].wv) && weight_eq(&a->layers[1].w2, &b->layers[1].w2));
    CHECK(!weight_eq(&a->layers[0].wq, &b->layers[0].wq)); /* permuted */
    /* Same attention scores: NeoX on the original == adjacent pairs on the permuted weights. */
    lrgd_rng r;
    lrgd_rng_seed(&r, 5, 0);
    int n = 9;
    float x[9 * 32], sa[4 * 9 * 9], sb[4 * 9 * 9];
    for (int i = 0; i < n * 32; i++) x[i] = (float)lrgd_rng_normal(&r);
    for (int l = 0; l < 2; l++) {
        scores(a, l, x, n, sa);
        scores(b, l, x, n, sb);
        double worst = 0, mag = 0;
        for (int i = 0; i < 4 * n * n; i++) {
            worst = fmax(worst, fabs(sa[i] - sb[i]));
            mag = fmax(mag, fabs(sa[i]));
        }
        CHECK_MSG(worst <= 1e-5 * mag && mag > 0.1, "layer %d: scores differ by %g (max %g)", l, worst, mag);
    }
    /* ... and the plain NORM rope on the unpermuted weights would not agree (the test can fail) */
    lrgd_model tmp = *a;
    tmp.cfg.rope_type = LRGD_ROPE_NORM;
    scores(&tmp, 0, x, n, sb);
    double diff = 0;
    for (int i = 0; i < 4 * n * n; i++) diff = fmax(diff, fabs(sa[i] - sb[i]));
    CHECK(diff > 1e-2);

    const lrgd_recvocab *ra = &a->rec, *rb = &b->rec;
    CHECK(rb->pad == 0 && rb->bos == 1 && rb->sep == 2 && rb->ans == 3 && rb->eos == 4);
    CHECK(rb->n_special == 5 && rb->n_items == 30);
    CHECK(rb->item_ext && !memcmp(ra->item_ext, rb->item_ext, 30 * sizeof(int64_t)));
    const lrgd_gguf_val *tok = lrgd_gguf_get(b->gguf, "tokenizer.ggml.tokens");
    CHECK(tok && lrgd_gguf_arr_len(tok) == 40);
    if (tok) {
        char want_piece[64];
        snprintf(want_piece, sizeof want_piece, "item_%lld", (long long)ra->item_ext[3]);
        CHECK(!strcmp(lrgd_gguf_arr_str(tok, 8, NULL), want_piece));
        CHECK(!strcmp(lrgd_gguf_arr_str(tok, 12, NULL), "item_-42"));
        CHECK(!strcmp(lrgd_gguf_arr_str(tok, 0, NULL), "<pad>") && !strcmp(lrgd_gguf_arr_str(tok, 2, NULL), "<sep>") &&
              !strcmp(lrgd_gguf_arr_str(tok, 3, NULL), "<ans>") && !strcmp(lrgd_gguf_arr_str(tok, 4, NULL), "</s>"));
        CHECK(!strncmp(lrgd_gguf_arr_str(tok, 39, NULL), "<unused_", 8));
    }
    int64_t id;
    CHECK(lrgd_gguf_get_int(b->gguf, "tokenizer.ggml.eos_token_id", &id) == LRGD_OK && id == 4);
    /* saving b again keeps everything (and does not permute twice: b is NORM) */
    const char *path2 = tmp_path("rec2.gguf");
    CHECK_OK(lrgd_model_save_gguf_ex(b, path2, LRGD_F32, NULL, LRGD_SAVE_ROPE_NORM));
    lrgd_model *c;
    CHECK_OK(lrgd_model_load(path2, &c));
    if (c) {
        CHECK(cfg_eq(&b->cfg, &c->cfg) && weight_eq(&b->layers[0].wq, &c->layers[0].wq));
        CHECK(c->rec.n_items == 30 && !memcmp(c->rec.item_ext, ra->item_ext, 30 * sizeof(int64_t)));
        lrgd_model_free(c);
    }
    /* A value F16 cannot hold: clear error, and no file left behind */
    ((float *)a->layers[1].w3.data)[5] = 1e6f;
    const char *p16 = tmp_path("rec16.gguf");
    lrgd_status st = lrgd_model_save_gguf(a, p16, LRGD_F16, NULL);
    CHECK(st == LRGD_E_NUMERIC && strstr(lrgd_last_error(), "blk.1.ffn_up.weight") && strstr(lrgd_last_error(), "F16"));
    CHECK(access(p16, F_OK) != 0);
    lrgd_model_free(b);
    lrgd_model_free(a);
}

/* The forward pass agrees before and after a GGUF round trip (with NeoX
 * weights permuted into the adjacent-pair form on the way). */
static double logits_diff(const lrgd_model *a, const lrgd_model *b, int n, double *mag)
{
    int V = a->cfg.vocab_size, ids[64];
    for (int i = 0; i < n; i++) ids[i] = (i * 37 + 5) % V;
    float *la = malloc(sizeof(float) * (size_t)n * V), *lb = malloc(sizeof(float) * (size_t)n * V);
    lrgd_state *sa = NULL, *sb = NULL;
    double worst = INFINITY;
    *mag = 0;
    if (lrgd_state_new(a, n, n, &sa) == LRGD_OK && lrgd_state_new(b, n, n, &sb) == LRGD_OK &&
        lrgd_eval(sa, ids, n, la, 1) == LRGD_OK && lrgd_eval(sb, ids, n, lb, 1) == LRGD_OK) {
        worst = 0;
        for (size_t i = 0; i < (size_t)n * V; i++) {
            worst = fmax(worst, fabs((double)la[i] - lb[i]));
            *mag = fmax(*mag, fabs((double)la[i]));
        }
    } else {
        fprintf(stderr, "logits_diff: %s\n", lrgd_last_error());
    }
    lrgd_state_free(sa);
    lrgd_state_free(sb);
    free(la);
    free(lb);
    return worst;
}

static void test_forward_roundtrip(void)
{
    lrgd_config c = {.dim = 64, .hidden_dim = 96, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16,
                     .vocab_size = 300, .seq_len = 128, .norm_eps = 1e-5f, .rope_base = 10000.0f,
                     .rope_type = LRGD_ROPE_NEOX, .attn = LRGD_ATTN_SOFTMAX, .tied = 0};
    lrgd_model *a = NULL, *b = NULL;
    CHECK_OK(lrgd_model_new_random(&c, 17, &a));
    if (!a) return;
    const char *path = tmp_path("neox.gguf");
    CHECK_OK(lrgd_model_save_gguf(a, path, LRGD_F32, NULL));
    CHECK_OK(lrgd_model_load(path, &b));
    if (b) {
        double mag, d = logits_diff(a, b, 48, &mag);
        CHECK_MSG(d == 0 && mag > 0.5, "NeoX model, kept as NeoX: logits differ by %g (max %g)", d, mag);
        lrgd_model_free(b);
        b = NULL;
    }
    CHECK_OK(lrgd_model_save_gguf_ex(a, path, LRGD_F32, NULL, LRGD_SAVE_ROPE_NORM));
    CHECK_OK(lrgd_model_load(path, &b));
    if (b) {
        CHECK(b->cfg.rope_type == LRGD_ROPE_NORM);
        double mag, d = logits_diff(a, b, 48, &mag);
        CHECK_MSG(d <= 1e-5 * fmax(mag, 1.0) && mag > 0.5, "NeoX softmax model: logits differ by %g (max %g)", d, mag);
        lrgd_model_free(b);
    }
    lrgd_model_free(a);
    a = make_rec_model(); /* NeoX, linear attention */
    b = NULL;
    path = tmp_path("rec_fwd.gguf");
    if (a) CHECK_OK(lrgd_model_save_gguf_ex(a, path, LRGD_F32, NULL, LRGD_SAVE_ROPE_NORM));
    if (a) CHECK_OK(lrgd_model_load(path, &b));
    if (a && b) {
        double mag, d = logits_diff(a, b, 20, &mag);
        CHECK_MSG(d <= 1e-5 * fmax(mag, 1.0) && mag > 0.5, "NeoX linear model: logits differ by %g (max %g)", d, mag);
    }
    lrgd_model_free(b);
    lrgd_model_free(a);
}

/* ---- hostile input -------------------------------------------------------------- */

static void expect_raw(const rawbuf *b, lrgd_status want, const char *substr, const char *what)
{
    void *copy;
    lrgd_gguf *g = NULL;
    lrgd_status st = parse_copy(b->p, b->n, "hostile.gguf", &g, &copy);
    const char *msg = lrgd_last_error();
    CHECK_MSG(st == want, "%s: status %s, expected %s (%s)", what, lrgd_status_name(st), lrgd_status_name(want), msg);
    CHECK_MSG(st == LRGD_OK || strstr(msg, "hostile.gguf: offset "), "%s: message lacks 'file: offset N:': %s", what, msg);
    CHECK_MSG(st == LRGD_OK || strstr(msg, substr), "%s: message lacks '%s': %s", what, substr, msg);
    lrgd_gguf_free(g);
    free(copy);
}

/* A valid single-tensor file: one kv, tensor "w" F32 [ne0] at offset off. */
static void one_tensor(rawbuf *b, const char *name, int nd, const uint64_t *ne, uint32_t type, uint64_t off,
                       size_t data_bytes)
{
    b->n = 0;
    raw_header(b, 3, 1, 1);
    raw_kv_str(b, "general.architecture", "test");
    raw_tensor(b, name, nd, ne, type, off);
    raw_pad(b, 32);
    raw_zeros(b, data_bytes);
}

static void test_hostile_raw(void)
{
    rawbuf b = {0};
    const uint64_t ne16[1] = {16};
    one_tensor(&b, "w", 1, ne16, LRGD_F32, 0, 64);
    expect_raw(&b, LRGD_OK, "", "valid baseline");

    memcpy(b.p, "GGUX", 4);
    expect_raw(&b, LRGD_E_FORMAT, "magic", "wrong magic");
    rawbuf s = {0};
    raw_put(&s, "GGU", 3);
    expect_raw(&s, LRGD_E_FORMAT, "magic", "3-byte file");
    s.n = 0;
    expect_raw(&s, LRGD_E_FORMAT, "magic", "empty buffer");

    s.n = 0; raw_header(&s, 1, 0, 0);
    expect_raw(&s, LRGD_E_UNSUPPORTED, "version 1", "version 1");
    s.n = 0; raw_header(&s, 4, 0, 0);
    expect_raw(&s, LRGD_E_UNSUPPORTED, "version 4", "version 4");
    s.n = 0; raw_header(&s, 0x03000000u, 0, 0);
    expect_raw(&s, LRGD_E_UNSUPPORTED, "big-endian", "big-endian");
    s.n = 0; raw_header(&s, 2, 0, 0);
    expect_raw(&s, LRGD_OK, "", "version 2, empty");
    s.n = 0; raw_header(&s, 3, 0, 1ull << 40);
    expect_raw(&s, LRGD_E_FORMAT, "key count", "kv count 2^40");
    s.n = 0; raw_header(&s, 3, 1ull << 40, 0);
    expect_raw(&s, LRGD_E_FORMAT, "tensor count", "tensor count 2^40");
    s.n = 0; raw_header(&s, 3, 0, 1000); raw_kv_u32(&s, "a", 1);
    expect_raw(&s, LRGD_E_FORMAT, "cannot fit", "kv count beyond the file");

    /* strings */
    s.n = 0; raw_header(&s, 3, 0, 1); raw_u64(&s, 1ull << 63); raw_put(&s, "abcdefgh", 8);
    expect_raw(&s, LRGD_E_FORMAT, "length", "key length 2^63");
    s.n = 0; raw_header(&s, 3, 0, 1); raw_str(&s, "k"); raw_u32(&s, LRGD_GGUF_STRING); raw_u64(&s, 1ull << 63);
    expect_raw(&s, LRGD_E_FORMAT, "length", "string length 2^63");
    s.n = 0; raw_header(&s, 3, 0, 1); raw_str(&s, "k"); raw_u32(&s, LRGD_GGUF_STRING); raw_u64(&s, 100); raw_put(&s, "abc", 3);
    expect_raw(&s, LRGD_E_FORMAT, "bytes are left", "string past the end");
    /* values */
    s.n = 0; raw_header(&s, 3, 0, 1); raw_str(&s, "k"); raw_u32(&s, 13); raw_u32(&s, 0);
    expect_raw(&s, LRGD_E_FORMAT, "unknown value type 13", "value type 13");
    s.n = 0; raw_header(&s, 3, 0, 1); raw_str(&s, "k"); raw_u32(&s, LRGD_GGUF_BOOL); raw_le(&s, 2, 1);
    expect_raw(&s, LRGD_E_FORMAT, "bool", "bool 2");
    s.n = 0; raw_header(&s, 3, 0, 1); raw_str(&s, "k"); raw_u32(&s, LRGD_GGUF_ARRAY); raw_u32(&s, LRGD_GGUF_U8); raw_u64(&s, 1ull << 40);
    expect_raw(&s, LRGD_E_FORMAT, "cap", "array count 2^40");
    s.n = 0; raw_header(&s, 3, 0, 1); raw_str(&s, "k"); raw_u32(&s, LRGD_GGUF_ARRAY); raw_u32(&s, LRGD_GGUF_U64); raw_u64(&s, 1ull << 27);
    raw_zeros(&s, 64);
    expect_raw(&s, LRGD_E_FORMAT, "needs at least", "array count beyond the file");
    s.n = 0; raw_header(&s, 3, 0, 1); raw_str(&s, "k"); raw_u32(&s, LRGD_GGUF_ARRAY); raw_u32(&s, LRGD_GGUF_STRING); raw_u64(&s, 1ull << 20);
    raw_zeros(&s, 64);
    expect_raw(&s, LRGD_E_FORMAT, "needs at least", "string array count beyond the file");
    s.n = 0; raw_header(&s, 3, 0, 1); raw_str(&s, "k"); raw_u32(&s, LRGD_GGUF_ARRAY); raw_u32(&s, 77); raw_u64(&s, 1);
    expect_raw(&s, LRGD_E_FORMAT, "element type 77", "array of type 77");
    s.n = 0; raw_header(&s, 3, 0, 1); raw_str(&s, "k"); raw_u32(&s, LRGD_GGUF_ARRAY);
    for (int d = 0; d < 12; d++) { raw_u32(&s, LRGD_GGUF_ARRAY); raw_u64(&s, 1); }
    raw_u32(&s, LRGD_GGUF_U8); raw_u64(&s, 0);
    expect_raw(&s, LRGD_E_FORMAT, "nested", "arrays nested 13 deep");
    s.n = 0; raw_header(&s, 3, 0, 1); raw_str(&s, "k"); raw_u32(&s, LRGD_GGUF_ARRAY);
    for (int d = 0; d < 3; d++) { raw_u32(&s, LRGD_GGUF_ARRAY); raw_u64(&s, 1); }
    raw_u32(&s, LRGD_GGUF_U8); raw_u64(&s, 0);
    expect_raw(&s, LRGD_OK, "", "arrays nested 4 deep");
    s.n = 0; raw_header(&s, 3, 0, 1); raw_kv_u32(&s, "general.alignment", 48);
    expect_raw(&s, LRGD_E_FORMAT, "power of two", "alignment 48");
    s.n = 0; raw_header(&s, 3, 0, 1); raw_kv_u32(&s, "general.alignment", 0);
    expect_raw(&s, LRGD_E_FORMAT, "power of two", "alignment 0");
    s.n = 0; raw_header(&s, 3, 0, 1); raw_kv_str(&s, "general.alignment", "32");
    expect_raw(&s, LRGD_E_FORMAT, "expected an integer", "alignment as a string");
    s.n = 0; raw_header(&s, 3, 0, 2); raw_kv_u32(&s, "a.b", 1); raw_kv_u32(&s, "a.b", 2);
    expect_raw(&s, LRGD_E_FORMAT, "duplicate metadata key 'a.b'", "duplicate key");

    /* tensors */
    const uint64_t ne5[5] = {1, 1, 1, 1, 1};
    one_tensor(&b, "w", 5, ne5, LRGD_F32, 0, 64);
    expect_raw(&b, LRGD_E_FORMAT, "5 dimensions", "n_dims 5");
    one_tensor(&b, "w", 0, ne5, LRGD_F32, 0, 64);
    expect_raw(&b, LRGD_E_FORMAT, "0 dimensions", "n_dims 0");
    const uint64_t ne_zero[2] = {16, 0};
    one_tensor(&b, "w", 2, ne_zero, LRGD_F32, 0, 64);
    expect_raw(&b, LRGD_E_FORMAT, "dimension 1 is 0", "a dim of 0");
    const uint64_t ne_huge[1] = {1ull << 62};
    one_tensor(&b, "w", 1, ne_huge, LRGD_F32, 0, 64);
    expect_raw(&b, LRGD_E_FORMAT, "dimension 0 is 4611686018427387904", "a dim of 2^62");
    const uint64_t ne_ovf[4] = {LRGD_GGUF_MAX_DIM, LRGD_GGUF_MAX_DIM, LRGD_GGUF_MAX_DIM, LRGD_GGUF_MAX_DIM};
    one_tensor(&b, "w", 4, ne_ovf, LRGD_F32, 0, 64);
    expect_raw(&b, LRGD_E_FORMAT, "overflows", "ne product overflow");
    const uint64_t ne_big[2] = {1u << 20, 1u << 20}; /* 4 TiB of F32 in a small file */
    one_tensor(&b, "w", 2, ne_big, LRGD_F32, 0, 64);
    expect_raw(&b, LRGD_E_FORMAT, "past the end", "tensor larger than the file");
    one_tensor(&b, "w", 1, ne16, LRGD_F32, 64, 64);
    expect_raw(&b, LRGD_E_FORMAT, "past the end", "offset past the end");
    one_tensor(&b, "w", 1, ne16, LRGD_F32, UINT64_MAX - 31, 64);
    expect_raw(&b, LRGD_E_FORMAT, "past the end", "offset near 2^64");
    one_tensor(&b, "w", 1, ne16, LRGD_F32, 4, 128);
    expect_raw(&b, LRGD_E_FORMAT, "not a multiple of the alignment", "misaligned offset");
    one_tensor(&b, "w", 1, ne16, LRGD_F32, 0, 60);
    expect_raw(&b, LRGD_E_FORMAT, "past the end", "data cut short");
    one_tensor(&b, "w", 1, ne16, LRGD_F32, 0, 0);
    b.n -= 1; /* the header's padding cut short */
    expect_raw(&b, LRGD_E_FORMAT, "the file ends at", "cut in the data section's padding");
    one_tensor(&b, "blk.0.ffn_up.weight", 1, ne16, 12, 0, 64);
    expect_raw(&b, LRGD_E_UNSUPPORTED, "tensor 'blk.0.ffn_up.weight' has type 12 (Q4_K)", "type Q4_K");
    one_tensor(&b, "w", 1, ne16, 200, 0, 64);
    expect_raw(&b, LRGD_E_UNSUPPORTED, "type 200 (unknown)", "type 200");
    const uint64_t ne31[1] = {31};
    one_tensor(&b, "w", 1, ne31, LRGD_Q8_0, 0, 64);
    expect_raw(&b, LRGD_E_FORMAT, "multiple of 32", "Q8_0 row of 31");
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    one_tensor(&b, longname, 1, ne16, LRGD_F32, 0, 64);
    expect_raw(&b, LRGD_E_FORMAT, "cap", "tensor name of 299 bytes");
    /* two tensors */
    b.n = 0;
    raw_header(&b, 3, 2, 0);
    raw_tensor(&b, "w", 1, ne16, LRGD_F32, 0);
    raw_tensor(&b, "w", 1, ne16, LRGD_F32, 64);
    raw_pad(&b, 32);
    raw_zeros(&b, 128);
    expect_raw(&b, LRGD_E_FORMAT, "duplicate tensor name 'w'", "duplicate tensor");
    b.n = 0;
    raw_header(&b, 3, 2, 0);
    raw_tensor(&b, "w", 1, ne16, LRGD_F32, 0);
    raw_tensor(&b, "v", 1, ne16, LRGD_F32, 32);
    raw_pad(&b, 32);
    raw_zeros(&b, 128);
    expect_raw(&b, LRGD_E_FORMAT, "overlaps", "overlapping tensors");
    free(b.p);
    free(s.p);
}

static void expect_model(const tiny_opts *o, lrgd_status want, const char *substr, const char *what)
{
    void *data = NULL;
    size_t n = 0;
    lrgd_status st = tiny_bytes(o, &data, &n);
    CHECK_MSG(st == LRGD_OK, "%s: building failed: %s", what, lrgd_last_error());
    if (st != LRGD_OK) return;
    st = load_bytes(data, n, "tiny.gguf");
    const char *msg = lrgd_last_error();
    CHECK_MSG(st == want, "%s: status %s, expected %s (%s)", what, lrgd_status_name(st), lrgd_status_name(want), msg);
    CHECK_MSG(st == LRGD_OK || (strstr(msg, substr) && strstr(msg, "tiny.gguf")), "%s: message lacks '%s': %s", what,
              substr, msg);
    free(data);
}

static void test_hostile_model(void)
{
    expect_model(&(tiny_opts){0}, LRGD_OK, "", "tiny F32");
    expect_model(&(tiny_opts){.wtype = LRGD_Q8_0, .untied = 1, .rec = 1}, LRGD_OK, "", "tiny Q8_0 untied rec");
    expect_model(&(tiny_opts){.wtype = LRGD_F16, .attn = "linear"}, LRGD_OK, "", "tiny F16 linear");
    expect_model(&(tiny_opts){.arch = "gpt2"}, LRGD_E_UNSUPPORTED, "general.architecture is 'gpt2'; lrgd supports only 'llama'",
                 "non-llama architecture");
    expect_model(&(tiny_opts){.skip = "blk.1.ffn_up.weight"}, LRGD_E_FORMAT, "missing tensor 'blk.1.ffn_up.weight'",
                 "missing tensor");
    expect_model(&(tiny_opts){.skip = "token_embd.weight"}, LRGD_E_FORMAT, "missing tensor 'token_embd.weight'",
                 "missing embedding");
    expect_model(&(tiny_opts){.bad_shape = "blk.0.attn_k.weight"}, LRGD_E_FORMAT,
                 "tensor 'blk.0.attn_k.weight' has shape [16, 32], expected [32, 16]", "transposed attn_k");
    expect_model(&(tiny_opts){.bad_shape = "token_embd.weight"}, LRGD_E_FORMAT, "token_embd.weight' has shape",
                 "transposed embedding");
    expect_model(&(tiny_opts){.nan_in = "blk.0.ffn_norm.weight"}, LRGD_E_FORMAT,
                 "tensor 'blk.0.ffn_norm.weight' element 16 is not finite", "NaN in a norm");
    expect_model(&(tiny_opts){.nan_in = "blk.1.attn_v.weight"}, LRGD_E_FORMAT, "tensor 'blk.1.attn_v.weight' element",
                 "NaN in a matrix");
    expect_model(&(tiny_opts){.extra = "blk.2.attn_norm.weight"}, LRGD_E_UNSUPPORTED,
                 "tensor 'blk.2.attn_norm.weight' is not part of a 2-layer llama model", "extra layer tensor");
    expect_model(&(tiny_opts){.vocab_key = 25}, LRGD_E_FORMAT, "llama.vocab_size = 25", "vocab_size key mismatch");
    expect_model(&(tiny_opts){.n_tokens = 23}, LRGD_E_FORMAT, "tokenizer.ggml.tokens has 23 tokens", "token count mismatch");
    expect_model(&(tiny_opts){.rec = 1, .rec_dup_item = 1}, LRGD_E_FORMAT, "lists item 1007 twice", "duplicate item id");
    expect_model(&(tiny_opts){.no_eps = 1}, LRGD_E_FORMAT,
                 "missing metadata key 'llama.attention.layer_norm_rms_epsilon'", "no epsilon");
    expect_model(&(tiny_opts){.attn = "quadratic"}, LRGD_E_UNSUPPORTED, "lrgd.attention is 'quadratic'", "bad attention");

    /* alignment 1: tensors land at odd addresses; the loader copies them and the model is the same */
    void *d32, *d1;
    size_t n32, n1;
    CHECK_OK(tiny_bytes(&(tiny_opts){0}, &d32, &n32));
    {
        /* an odd-length entry so that the unpadded tensors land off 4-byte boundaries */
        lrgd_gguf_writer *w1 = NULL;
        float *nb = NULL;
        CHECK_OK(tiny_build(&(tiny_opts){.alignment = 1}, &w1, &nb));
        CHECK_OK(lrgd_gguf_set_str(w1, "x.odd", "ab"));
        CHECK_OK(lrgd_gguf_write_mem(w1, &d1, &n1));
        lrgd_gguf_writer_free(w1);
        free(nb);
    }
    lrgd_gguf *g32, *g1;
    lrgd_model *m32 = NULL, *m1 = NULL;
    CHECK_OK(lrgd_gguf_parse(d32, n32, "a32", &g32));
    CHECK_OK(lrgd_gguf_parse(d1, n1, "a1", &g1));
    CHECK(g1 && lrgd_gguf_alignment(g1) == 1);
    if (g32) CHECK_OK(lrgd_gguf_to_model(g32, &m32));
    if (g1) CHECK_OK(lrgd_gguf_to_model(g1, &m1));
    if (m32 && m1) {
        int same = weight_eq(&m32->tok_embd, &m1->tok_embd) && !memcmp(m32->out_norm, m1->out_norm, TINY_DIM * 4);
        for (int l = 0; l < TINY_LAYERS; l++)
            same &= weight_eq(&m32->layers[l].w1, &m1->layers[l].w1) &&
                    !memcmp(m32->layers[l].attn_norm, m1->layers[l].attn_norm, TINY_DIM * 4);
        CHECK(same);
        int any_odd = 0;
        for (int64_t i = 0; i < lrgd_gguf_n_tensors(g1); i++) any_odd |= lrgd_gguf_tensor_at(g1, i)->file_offset % 4 != 0;
        CHECK(any_odd); /* the copy path was exercised */
    }
    lrgd_model_free(m32);
    lrgd_model_free(m1);
    lrgd_gguf_free(g32);
    lrgd_gguf_free(g1);
    free(d32);
    free(d1);
}

/* A kitchen-sink file: the tiny rec model plus keys of every type. */
static lrgd_status sink_bytes(void **data, size_t *size)
{
    lrgd_gguf_writer *w = NULL;
    float *nan_buf = NULL;
    lrgd_status st = tiny_build(&(tiny_opts){.rec = 1, .untied = 1, .wtype = LRGD_Q8_0}, &w, &nan_buf);
    const int16_t a16[] = {-1, 2};
    const char *ss[] = {"x", "yz"};
    const void *inner[] = {ss, ss};
    const uint64_t counts[] = {2, 1};
    if (st == LRGD_OK) st = lrgd_gguf_set_arr(w, "x.i16", LRGD_GGUF_I16, a16, 2);
    if (st == LRGD_OK) st = lrgd_gguf_set_arr_arr(w, "x.nested", LRGD_GGUF_STRING, inner, counts, 2);
    if (st == LRGD_OK) st = lrgd_gguf_set_bool(w, "x.b", 1);
    if (st == LRGD_OK) st = lrgd_gguf_set_f64(w, "x.f64", 2.5);
    if (st == LRGD_OK) st = lrgd_gguf_write_mem(w, data, size);
    lrgd_gguf_writer_free(w);
    free(nan_buf);
    return st;
}

static void test_truncation(void)
{
    void *data;
    size_t size;
    CHECK_OK(sink_bytes(&data, &size));
    CHECK(load_bytes(data, size, "whole") == LRGD_OK);
    int bad_ok = 0, no_msg = 0;
    for (size_t len = 0; len < size; len++) {
        lrgd_clear_error();
        lrgd_status st = load_bytes(data, len, "cut.gguf");
        if (st == LRGD_OK) { bad_ok++; if (bad_ok < 4) fprintf(stderr, "truncated at %zu parsed OK\n", len); }
        else if (!strstr(lrgd_last_error(), "cut.gguf: offset")) {
            no_msg++;
            if (no_msg < 4) fprintf(stderr, "truncated at %zu: %s\n", len, lrgd_last_error());
        }
    }
    CHECK_MSG(bad_ok == 0, "%d truncations of a %zu-byte file parsed OK", bad_ok, size);
    CHECK_MSG(no_msg == 0, "%d truncations without a 'file: offset N:' message", no_msg);
    printf("truncation: %zu lengths, all refused\n", size);

    /* Byte flips: anything may happen except a crash (ASan/UBSan watch this). */
    lrgd_gguf *g;
    CHECK_OK(lrgd_gguf_parse(data, size, "sink", &g));
    size_t hdr = g ? lrgd_gguf_data_offset(g) : 0;
    lrgd_gguf_free(g);
    unsigned char *mut = malloc(size);
    const unsigned char flips[3] = {0xff, 0x00, 0x7f};
    int n_ok = 0, n_runs = 0;
    for (size_t i = 0; i < size; i += i < hdr ? 1 : 61)
        for (int k = 0; k < 3; k++) {
            memcpy(mut, data, size);
            mut[i] = k == 0 ? (unsigned char)(mut[i] ^ flips[0]) : flips[k];
            n_ok += load_bytes(mut, size, "flip.gguf") == LRGD_OK;
            n_runs++;
        }
    printf("byte flips: %d runs, %d still loaded\n", n_runs, n_ok);
    CHECK(n_ok < n_runs);
    free(mut);
    free(data);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/lrgd_test_gguf_XXXXXX");
    if (!mkdtemp(g_dir)) { perror("mkdtemp"); return 1; }
    test_metadata_roundtrip();
    test_tensor_roundtrip();
    test_stories();
    test_rec_roundtrip();
    test_forward_roundtrip();
    test_hostile_raw();
    test_hostile_model();
    test_truncation();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return t_finish("test_gguf");
}
