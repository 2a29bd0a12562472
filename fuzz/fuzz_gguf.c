/* GGUF: the reader (lrgd_gguf_parse over the input bytes), every accessor on
 * what it accepted, a copy through the writer that must parse back to the
 * same metadata bytes and tensor data, and the llama model built from it. */
#include "format/formats.h"
#include "format/gguf_internal.h"
#include "fuzz.h"
#include "fuzz_model.h"
#include "lrgd/tokenizer.h"

#include <math.h>

/* Walk a value; arrays only partly (the first and last few elements). */
static void walk_val(const lrgd_gguf_val *v, int depth)
{
    FUZZ_CHECK(depth <= LRGD_GGUF_MAX_DEPTH);
    lrgd_gguf_type t = lrgd_gguf_val_type(v);
    int64_t i64;
    uint64_t u64, len;
    double f;
    int b;
    const char *s;
    lrgd_status st = lrgd_gguf_val_int(v, &i64);
    if (st != LRGD_OK) fuzz_check_error(st);
    st = lrgd_gguf_val_u64(v, &u64);
    if (st != LRGD_OK) fuzz_check_error(st);
    st = lrgd_gguf_val_float(v, &f);
    if (st == LRGD_OK) FUZZ_CHECK(t == LRGD_GGUF_F32 || t == LRGD_GGUF_F64);
    st = lrgd_gguf_val_bool(v, &b);
    if (st == LRGD_OK) FUZZ_CHECK(b == 0 || b == 1);
    st = lrgd_gguf_val_str(v, &s, &len);
    if (st == LRGD_OK) {
        FUZZ_CHECK(t == LRGD_GGUF_STRING);
        FUZZ_CHECK(len <= LRGD_GGUF_MAX_STRING);
        FUZZ_CHECK(s[len] == 0);
        FUZZ_CHECK(fuzz_touch_str(s) <= len);
    }
    if (t != LRGD_GGUF_ARRAY) return;
    uint64_t n = lrgd_gguf_arr_len(v);
    lrgd_gguf_type et = lrgd_gguf_arr_type(v);
    FUZZ_CHECK(n <= LRGD_GGUF_MAX_ARRAY);
    const unsigned char *raw = lrgd_gguf_arr_raw(v);
    if (raw && n) {
        volatile unsigned char sink = raw[0];
        (void)sink;
    }
    for (uint64_t k = 0; k < n; k++) {
        if (k == 4 && n > 8) k = n - 4; /* skip the middle */
        st = lrgd_gguf_arr_int(v, k, &i64);
        if (st != LRGD_OK) fuzz_check_error(st);
        st = lrgd_gguf_arr_float(v, k, &f);
        if (st != LRGD_OK) fuzz_check_error(st);
        const char *es = lrgd_gguf_arr_str(v, k, &len);
        FUZZ_CHECK((es != NULL) == (et == LRGD_GGUF_STRING));
        if (es) FUZZ_CHECK(es[len] == 0);
        const lrgd_gguf_val *inner = lrgd_gguf_arr_arr(v, k);
        FUZZ_CHECK((inner != NULL) == (et == LRGD_GGUF_ARRAY));
        if (inner) walk_val(inner, depth + 1);
    }
    /* one past the end is refused, not read */
    st = lrgd_gguf_arr_int(v, n, &i64);
    FUZZ_CHECK(st != LRGD_OK);
    FUZZ_CHECK(lrgd_gguf_arr_str(v, n, &len) == NULL);
}

static void walk(const lrgd_gguf *g, const uint8_t *data, size_t size)
{
    FUZZ_CHECK(lrgd_gguf_file_size(g) == size);
    FUZZ_CHECK(lrgd_gguf_bytes(g) == (const void *)data);
    size_t a = lrgd_gguf_alignment(g);
    FUZZ_CHECK(a >= 1 && (a & (a - 1)) == 0);
    int64_t nkv = lrgd_gguf_n_kv(g), nt = lrgd_gguf_n_tensors(g);
    FUZZ_CHECK(nkv >= 0 && nt >= 0);
    if (nt > 0) FUZZ_CHECK(lrgd_gguf_data_offset(g) <= size);
    for (int64_t i = 0; i < nkv; i++) {
        const char *k = lrgd_gguf_key(g, i);
        FUZZ_CHECK(k != NULL);
        fuzz_touch_str(k);
        const lrgd_gguf_val *v = lrgd_gguf_kv(g, i);
        FUZZ_CHECK(v != NULL && lrgd_gguf_val_offset(v) <= size);
        /* keys are unique; a key with an embedded NUL may shadow a shorter one */
        int64_t j = lrgd_gguf_find_key(g, k);
        FUZZ_CHECK(j >= 0 && j < nkv);
        const unsigned char *sp;
        size_t sn;
        FUZZ_CHECK(lrgd_gguf__kv_span(g, i, &sp, &sn) == LRGD_OK);
        FUZZ_CHECK(sp >= data && sn >= 13 && (size_t)(sp - data) + sn <= size);
        walk_val(v, 0);
    }
    FUZZ_CHECK(lrgd_gguf_key(g, nkv) == NULL && lrgd_gguf_kv(g, -1) == NULL);
    for (int64_t i = 0; i < nt; i++) {
        const lrgd_gguf_tensor *t = lrgd_gguf_tensor_at(g, i);
        FUZZ_CHECK(t && t->name);
        FUZZ_CHECK(strlen(t->name) < LRGD_GGUF_MAX_NAME);
        FUZZ_CHECK(t->type == LRGD_F32 || t->type == LRGD_F16 || t->type == LRGD_Q8_0);
        FUZZ_CHECK(t->n_dims >= 1 && t->n_dims <= LRGD_GGUF_MAX_DIMS);
        uint64_t n = 1;
        for (int d = 0; d < LRGD_GGUF_MAX_DIMS; d++) {
            FUZZ_CHECK(t->ne[d] >= 1);
            if (d >= t->n_dims) FUZZ_CHECK(t->ne[d] == 1);
            n *= t->ne[d];
        }
        FUZZ_CHECK(n == t->n_elements);
        FUZZ_CHECK(t->bytes == lrgd_dtype_row_bytes(t->type, (size_t)t->ne[0]) * (size_t)(n / t->ne[0]));
        FUZZ_CHECK(t->file_offset % a == 0);
        FUZZ_CHECK(t->file_offset <= size && t->bytes <= size - t->file_offset);
        FUZZ_CHECK((const uint8_t *)t->data == data + t->file_offset);
        /* first and last byte of the tensor: in bounds */
        if (t->bytes) {
            volatile unsigned char x = ((const unsigned char *)t->data)[0];
            x = ((const unsigned char *)t->data)[t->bytes - 1];
            (void)x;
        }
        FUZZ_CHECK(lrgd_gguf_find_tensor(g, t->name) == t);
    }
    FUZZ_CHECK(lrgd_gguf_tensor_at(g, nt) == NULL);
}

/* Copy every key and tensor into a writer; the written file must parse back
 * to the same metadata encoding and the same tensor bytes. */
static void round_trip(const lrgd_gguf *g)
{
    lrgd_gguf_writer *w;
    FUZZ_CHECK(lrgd_gguf_writer_new(&w) == LRGD_OK);
    int64_t nkv = lrgd_gguf_n_kv(g), nt = lrgd_gguf_n_tensors(g);
    unsigned char *copied = calloc((size_t)nkv + 1, 1);
    FUZZ_CHECK(copied != NULL);
    for (int64_t i = 0; i < nkv; i++) {
        lrgd_status st = lrgd_gguf_copy_kv(w, g, i);
        if (st == LRGD_OK) copied[i] = 1;
        else {
            /* Only a key with a NUL inside, or an empty key (the reader takes
             * it, the writer refuses to make one), cannot be copied. */
            FUZZ_CHECK(st == LRGD_E_UNSUPPORTED || (st == LRGD_E_INVALID && lrgd_gguf_key(g, i)[0] == 0));
        }
    }
    FUZZ_CHECK(lrgd_gguf_writer_set_alignment(w, (uint32_t)lrgd_gguf_alignment(g)) == LRGD_OK);
    for (int64_t i = 0; i < nt; i++) {
        const lrgd_gguf_tensor *t = lrgd_gguf_tensor_at(g, i);
        lrgd_status st = lrgd_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
        if (st != LRGD_OK && t->name[0] == 0) {
            /* The reader takes a name that is empty as a C string (empty, or
             * starting with a NUL); the writer refuses to make one. Nothing to
             * compare then. */
            FUZZ_CHECK(st == LRGD_E_INVALID);
            lrgd_gguf_writer_free(w);
            free(copied);
            return;
        }
        FUZZ_CHECK(st == LRGD_OK);
    }
    void *out;
    size_t out_n;
    FUZZ_CHECK(lrgd_gguf_write_mem(w, &out, &out_n) == LRGD_OK);
    lrgd_gguf_writer_free(w);
    lrgd_gguf *h;
    lrgd_status st = lrgd_gguf_parse(out, out_n, "round-trip", &h);
    if (st != LRGD_OK) fprintf(stderr, "round trip: %s\n", lrgd_last_error());
    FUZZ_CHECK(st == LRGD_OK);
    FUZZ_CHECK(lrgd_gguf_version(h) == 3);
    FUZZ_CHECK(lrgd_gguf_alignment(h) == lrgd_gguf_alignment(g));
    for (int64_t i = 0; i < nkv; i++) {
        if (!copied[i]) continue;
        const char *k = lrgd_gguf_key(g, i);
        if (!strcmp(k, "general.alignment")) continue; /* rewritten as u32 by the writer */
        int64_t j = lrgd_gguf_find_key(h, k);
        FUZZ_CHECK(j >= 0);
        const unsigned char *p1, *p2;
        size_t n1, n2;
        FUZZ_CHECK(lrgd_gguf__kv_span(g, i, &p1, &n1) == LRGD_OK);
        FUZZ_CHECK(lrgd_gguf__kv_span(h, j, &p2, &n2) == LRGD_OK);
        FUZZ_CHECK(n1 == n2 && memcmp(p1, p2, n1) == 0);
    }
    /* nothing else was added: the copied keys, plus or minus general.alignment */
    int64_t n_src = 0, n_dst = 0;
    for (int64_t i = 0; i < nkv; i++) n_src += copied[i] && strcmp(lrgd_gguf_key(g, i), "general.alignment") != 0;
    for (int64_t i = 0; i < lrgd_gguf_n_kv(h); i++) n_dst += strcmp(lrgd_gguf_key(h, i), "general.alignment") != 0;
    FUZZ_CHECK(n_src == n_dst);
    FUZZ_CHECK(lrgd_gguf_n_tensors(h) == nt);
    for (int64_t i = 0; i < nt; i++) {
        const lrgd_gguf_tensor *t = lrgd_gguf_tensor_at(g, i), *u = lrgd_gguf_tensor_at(h, i);
        FUZZ_CHECK(!strcmp(t->name, u->name) && t->type == u->type && t->n_dims == u->n_dims);
        FUZZ_CHECK(!memcmp(t->ne, u->ne, sizeof t->ne) && t->bytes == u->bytes);
        FUZZ_CHECK(memcmp(t->data, u->data, t->bytes) == 0);
    }
    lrgd_gguf_free(h);
    free(out);
    free(copied);
}

/* The text tokenizer the file's tokenizer.ggml.* keys describe, if any, on a
 * fixed text and on the file's first bytes. */
static void tokenizer(const lrgd_gguf *g, const uint8_t *data, size_t size)
{
    lrgd_tokenizer *t;
    lrgd_status st = lrgd_tokenizer_from_gguf(g, &t);
    if (st != LRGD_OK) {
        fuzz_check_error(st);
        return;
    }
    int nv = lrgd_tokenizer_n_vocab(t);
    FUZZ_CHECK(nv >= 1);
    FUZZ_CHECK(lrgd_tokenizer_bos(t) < nv && lrgd_tokenizer_eos(t) < nv && lrgd_tokenizer_unk(t) < nv);
    for (int i = 0; i < nv; i++) {
        if (i == 8 && nv > 16) i = nv - 8;
        size_t len;
        const char *p = lrgd_token_piece(t, i, &len);
        FUZZ_CHECK(p != NULL && p[len] == 0);
        FUZZ_CHECK(lrgd_token_find(t, p, len) == i);
    }
    static const char fixed[] = "Hello w\303\266rld <s> </s> 12345 \377\376 the\342\226\201end\n\n";
    for (int pass = 0; pass < 2; pass++) {
        const char *text = pass ? (const char *)data : fixed;
        size_t len = pass ? (size < 64 ? size : 64) : sizeof fixed - 1;
        for (unsigned flags = 0; flags < 8; flags += 3) {
            int *ids, n;
            st = lrgd_tokenize(t, text, len, flags, &ids, &n);
            if (st != LRGD_OK) { /* e.g. SPM without a token for some byte */
                fuzz_check_error(st);
                continue;
            }
            FUZZ_CHECK((size_t)n <= 3 * len + 3);
            for (int i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < nv);
            char *back;
            size_t blen;
            FUZZ_CHECK(lrgd_detokenize(t, ids, n, LRGD_DETOKENIZE_SPECIAL, &back, &blen) == LRGD_OK);
            FUZZ_CHECK(back[blen] == 0);
            free(back);
            free(ids);
        }
    }
    lrgd_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init_once();
    lrgd_gguf *g;
    lrgd_status st = lrgd_gguf_parse(data, size, "fuzz.gguf", &g);
    if (st != LRGD_OK) {
        fuzz_check_error(st);
        return 0;
    }
    walk(g, data, size);
    round_trip(g);
    tokenizer(g, data, size);
    lrgd_gguf_free(g);

    /* The model path, as lrgd_model_load takes it: a private aligned copy the
     * model owns once it loads (mmap'd files are page aligned). */
    lrgd_mapped f = {lrgd_alloc(size ? size : 1), size, 0};
    FUZZ_CHECK(f.data != NULL);
    memcpy((void *)f.data, data, size);
    lrgd_model *m;
    st = lrgd_gguf_model_parse(&f, "fuzz.gguf", &m);
    if (st != LRGD_OK) {
        fuzz_check_error(st);
        lrgd_unmap_file(&f);
        return 0;
    }
    FUZZ_CHECK(f.data == NULL);
    fuzz_run_model(m);
    lrgd_model_free(m);
    return 0;
}
