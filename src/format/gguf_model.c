/* Llama models in GGUF: building an lrgd_model from a parsed file (weights
 * used in place where their type and alignment allow) and saving one in the
 * layout llama.cpp's "llama" architecture expects. */
#include "format/formats.h"
#include "format/gguf_internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- metadata helpers --------------------------------------------------- */

static lrgd_status key_int(const lrgd_gguf *g, const char *key, int required, int64_t def, int64_t lo, int64_t hi,
                           int *out)
{
    const lrgd_gguf_val *v = lrgd_gguf_get(g, key);
    int64_t x = def;
    if (!v) {
        if (required)
            return lrgd_fail(LRGD_E_FORMAT, "%s: missing metadata key '%s' (required for the llama architecture)",
                             lrgd_gguf_name(g), key);
    } else {
        LRGD_TRY(lrgd_gguf_val_int(v, &x));
        if (x < lo || x > hi)
            return lrgd_fail(LRGD_E_FORMAT, "%s: offset %" PRIu64 ": %s = %" PRId64 " (expected %" PRId64 "..%" PRId64 ")",
                             lrgd_gguf_name(g), lrgd_gguf_val_offset(v), key, x, lo, hi);
    }
    *out = (int)x;
    return LRGD_OK;
}

static lrgd_status key_float(const lrgd_gguf *g, const char *key, int required, double def, float *out)
{
    const lrgd_gguf_val *v = lrgd_gguf_get(g, key);
    double x = def;
    if (!v) {
        if (required)
            return lrgd_fail(LRGD_E_FORMAT, "%s: missing metadata key '%s' (required for the llama architecture)",
                             lrgd_gguf_name(g), key);
    } else {
        LRGD_TRY(lrgd_gguf_val_float(v, &x));
        if (!isfinite(x))
            return lrgd_fail(LRGD_E_FORMAT, "%s: offset %" PRIu64 ": %s is not finite", lrgd_gguf_name(g),
                             lrgd_gguf_val_offset(v), key);
    }
    *out = (float)x;
    return LRGD_OK;
}

/* A string key with two allowed values: *out = 0 for a, 1 for b. */
static lrgd_status key_choice(const lrgd_gguf *g, const char *key, const char *a, const char *b, int def, int *out)
{
    const lrgd_gguf_val *v = lrgd_gguf_get(g, key);
    *out = def;
    if (!v) return LRGD_OK;
    const char *s;
    LRGD_TRY(lrgd_gguf_val_str(v, &s, NULL));
    if (!strcmp(s, a)) *out = 0;
    else if (!strcmp(s, b)) *out = 1;
    else
        return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: offset %" PRIu64 ": %s is '%s' (expected '%s' or '%s')", lrgd_gguf_name(g),
                         lrgd_gguf_val_offset(v), key, s, a, b);
    return LRGD_OK;
}

/* ---- tensors ----------------------------------------------------------------- */

typedef struct loader {
    const lrgd_gguf *g;
    const char *path;
    lrgd_model *m;
    unsigned char *used; /* [n_tensors] */
} loader;

static void shape_str(char *buf, size_t n, int nd, const uint64_t *ne)
{
    int w = snprintf(buf, n, "[");
    for (int d = 0; d < nd && w > 0 && (size_t)w < n; d++)
        w += snprintf(buf + w, n - (size_t)w, "%s%" PRIu64, d ? ", " : "", ne[d]);
    if (w > 0 && (size_t)w < n) snprintf(buf + w, n - (size_t)w, "]");
}

/* Non-finite weights would silently poison every output: refuse them, naming the tensor. */
static lrgd_status check_finite(const char *path, const lrgd_gguf_tensor *t)
{
    const unsigned char *p = t->data;
    size_t n = (size_t)t->n_elements, bad = SIZE_MAX, at = 0;
    if (t->type == LRGD_F32) {
        for (size_t i = 0; i < n; i++) {
            float f;
            memcpy(&f, p + 4 * i, 4);
            if (!isfinite(f)) { bad = i; at = 4 * i; break; }
        }
    } else if (t->type == LRGD_F16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            if ((h & 0x7c00) == 0x7c00) { bad = i; at = 2 * i; break; }
        }
    } else { /* Q8_0: only the fp16 scale of each block can be non-finite */
        for (size_t b = 0; b < n / LRGD_Q8_0_BLOCK; b++) {
            uint16_t h;
            memcpy(&h, p + b * sizeof(lrgd_block_q8_0), 2);
            if ((h & 0x7c00) == 0x7c00) { bad = b * LRGD_Q8_0_BLOCK; at = b * sizeof(lrgd_block_q8_0); break; }
        }
    }
    if (bad != SIZE_MAX)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %" PRIu64 ": tensor '%s' element %zu is not finite (NaN or Inf)", path,
                         t->file_offset + at, t->name, bad);
    return LRGD_OK;
}

static lrgd_status get_tensor(loader *L, const char *name, int nd, uint64_t ne0, uint64_t ne1,
                              const lrgd_gguf_tensor **out)
{
    const uint64_t want[2] = {ne0, ne1};
    char ws[64], hs[128];
    shape_str(ws, sizeof ws, nd, want);
    const lrgd_gguf_tensor *t = lrgd_gguf_find_tensor(L->g, name);
    if (!t) return lrgd_fail(LRGD_E_FORMAT, "%s: missing tensor '%s' (expected shape %s)", L->path, name, ws);
    if (t->n_dims != nd || t->ne[0] != ne0 || (nd == 2 && t->ne[1] != ne1)) {
        shape_str(hs, sizeof hs, t->n_dims, t->ne);
        return lrgd_fail(LRGD_E_FORMAT,
                         "%s: offset %" PRIu64 ": tensor '%s' has shape %s, expected %s from the hyper-parameters "
                         "(ne[0] is the input dimension)",
                         L->path, t->info_offset, name, hs, ws);
    }
    L->used[t - lrgd_gguf_tensor_at(L->g, 0)] = 1;
    LRGD_TRY(check_finite(L->path, t));
    *out = t;
    return LRGD_OK;
}

/* A private aligned F32 copy of any tensor. */
static lrgd_status to_f32(loader *L, const lrgd_gguf_tensor *t, float **out)
{
    size_t n = (size_t)t->n_elements;
    float *f = lrgd_alloc_n(n, sizeof(float));
    void *raw = lrgd_alloc(t->bytes); /* aligned staging: dequantize reads blocks as structs */
    if (!f || !raw) {
        lrgd_free(f);
        lrgd_free(raw);
        return lrgd_fail(LRGD_E_NOMEM, "%s: tensor '%s': out of memory", L->path, t->name);
    }
    memcpy(raw, t->data, t->bytes);
    lrgd_dequantize(t->type, raw, f, n);
    lrgd_free(raw);
    LRGD_TRY(lrgd_model_own(L->m, f));
    *out = f;
    return LRGD_OK;
}

static int aligned_for(const lrgd_gguf_tensor *t)
{
    size_t need = t->type == LRGD_F32 ? 4 : 2;
    return ((uintptr_t)t->data % need) == 0;
}

/* W [rows = out][cols = in], stored with ne = {cols, rows}. F32 and Q8_0 are
 * used in place; F16 becomes F32 once here, so the GEMM runs through BLAS. */
static lrgd_status take_matrix(loader *L, const char *name, int rows, int cols, lrgd_weight *w)
{
    const lrgd_gguf_tensor *t;
    LRGD_TRY(get_tensor(L, name, 2, (uint64_t)cols, (uint64_t)rows, &t));
    *w = (lrgd_weight){t->type, t->data, rows, cols};
    if (t->type == LRGD_F16) {
        float *f;
        LRGD_TRY(to_f32(L, t, &f));
        *w = (lrgd_weight){LRGD_F32, f, rows, cols};
    } else if (!aligned_for(t)) { /* only with general.alignment < 4 */
        void *c = lrgd_alloc(t->bytes);
        LRGD_TRY(lrgd_model_own(L->m, c));
        memcpy(c, t->data, t->bytes);
        w->data = c;
    }
    return LRGD_OK;
}

static lrgd_status take_norm(loader *L, const char *name, int n, const float **out)
{
    const lrgd_gguf_tensor *t;
    LRGD_TRY(get_tensor(L, name, 1, (uint64_t)n, 1, &t));
    if (t->type == LRGD_F32 && aligned_for(t)) {
        *out = t->data;
        return LRGD_OK;
    }
    float *f;
    LRGD_TRY(to_f32(L, t, &f));
    *out = f;
    return LRGD_OK;
}

/* ---- recommendation vocabulary --------------------------------------------------- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static lrgd_status read_recvocab(loader *L)
{
    const lrgd_gguf *g = L->g;
    lrgd_recvocab *rv = &L->m->rec;
    int V = L->m->cfg.vocab_size;
    const lrgd_gguf_val *items = lrgd_gguf_get(g, "lrgd.item_ids");
    LRGD_TRY(key_int(g, "lrgd.n_special", items != NULL, 0, 0, V, &rv->n_special));
    static const char *keys[5] = {"lrgd.token.pad", "lrgd.token.bos", "lrgd.token.sep", "lrgd.token.ans",
                                  "lrgd.token.eos"};
    int *ids[5] = {&rv->pad, &rv->bos, &rv->sep, &rv->ans, &rv->eos};
    for (int k = 0; k < 5; k++) {
        /* Special tokens come before the items. */
        int hi = (items ? rv->n_special : V) - 1;
        if (hi < 0 && lrgd_gguf_get(g, keys[k]))
            return lrgd_fail(LRGD_E_FORMAT, "%s: %s is set but lrgd.n_special is 0", L->path, keys[k]);
        LRGD_TRY(key_int(g, keys[k], 0, -1, 0, hi < 0 ? 0 : hi, ids[k]));
    }
    if (!items) return LRGD_OK;
    if (lrgd_gguf_val_type(items) != LRGD_GGUF_ARRAY)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %" PRIu64 ": lrgd.item_ids: expected an array of i64, got %s", L->path,
                         lrgd_gguf_val_offset(items), lrgd_gguf_type_name(lrgd_gguf_val_type(items)));
    uint64_t n = lrgd_gguf_arr_len(items);
    if (n == 0 || n > (uint64_t)(V - rv->n_special))
        return lrgd_fail(LRGD_E_FORMAT,
                         "%s: offset %" PRIu64 ": lrgd.item_ids has %" PRIu64 " items; with %d special tokens the "
                         "vocabulary of %d holds 1..%d",
                         L->path, lrgd_gguf_val_offset(items), n, rv->n_special, V, V - rv->n_special);
    int64_t *ext = malloc((size_t)n * sizeof *ext), *sorted = malloc((size_t)n * sizeof *sorted);
    if (!ext || !sorted) {
        free(ext);
        free(sorted);
        return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    }
    lrgd_status st = LRGD_OK;
    for (uint64_t i = 0; i < n && st == LRGD_OK; i++) st = lrgd_gguf_arr_int(items, i, &ext[i]);
    if (st == LRGD_OK) {
        memcpy(sorted, ext, (size_t)n * sizeof *ext);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_i64);
        for (uint64_t i = 1; i < n; i++)
            if (sorted[i] == sorted[i - 1]) {
                st = lrgd_fail(LRGD_E_FORMAT, "%s: offset %" PRIu64 ": lrgd.item_ids lists item %" PRId64 " twice",
                               L->path, lrgd_gguf_val_offset(items), sorted[i]);
                break;
            }
    }
    free(sorted);
    if (st != LRGD_OK) {
        free(ext);
        return st;
    }
    rv->item_ext = ext; /* freed by lrgd_model_free */
    rv->n_items = (int)n;
    return LRGD_OK;
}

/* ---- the model ------------------------------------------------------------------- */

static lrgd_status check_unsupported(const lrgd_gguf *g, int head_dim)
{
    const char *path = lrgd_gguf_name(g);
    const lrgd_gguf_val *v;
    int x;
    /* Features that change the computation: refuse rather than compute something else. */
    LRGD_TRY(key_int(g, "llama.expert_count", 0, 0, 0, INT32_MAX, &x));
    if (x > 0) return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: llama.expert_count = %d: mixture-of-experts models are not supported", path, x);
    if ((v = lrgd_gguf_get(g, "llama.rope.scaling.type"))) {
        const char *s;
        LRGD_TRY(lrgd_gguf_val_str(v, &s, NULL));
        if (strcmp(s, "none") != 0)
            return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: offset %" PRIu64 ": llama.rope.scaling.type '%s' is not supported (expected 'none')",
                             path, lrgd_gguf_val_offset(v), s);
    }
    static const char *hd_keys[3] = {"llama.rope.dimension_count", "llama.attention.key_length",
                                     "llama.attention.value_length"};
    for (int k = 0; k < 3; k++) {
        LRGD_TRY(key_int(g, hd_keys[k], 0, head_dim, 0, INT32_MAX, &x));
        if (x != head_dim)
            return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: %s = %d, but lrgd supports only head_dim = %d (embedding_length / head_count)",
                             path, hd_keys[k], x, head_dim);
    }
    return LRGD_OK;
}

lrgd_status lrgd_gguf_to_model(const lrgd_gguf *g, lrgd_model **out)
{
    *out = NULL;
    const char *path = lrgd_gguf_name(g);
    const lrgd_gguf_val *arch = lrgd_gguf_get(g, "general.architecture");
    if (!arch) return lrgd_fail(LRGD_E_FORMAT, "%s: missing metadata key 'general.architecture' (expected 'llama')", path);
    const char *as;
    LRGD_TRY(lrgd_gguf_val_str(arch, &as, NULL));
    if (strcmp(as, "llama") != 0)
        return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: offset %" PRIu64 ": general.architecture is '%s'; lrgd supports only 'llama'",
                         path, lrgd_gguf_val_offset(arch), as);

    lrgd_config c = {0};
    const int64_t BIG = INT32_MAX;
    LRGD_TRY(key_int(g, "llama.context_length", 1, 0, 1, BIG, &c.seq_len));
    LRGD_TRY(key_int(g, "llama.embedding_length", 1, 0, 1, BIG, &c.dim));
    LRGD_TRY(key_int(g, "llama.block_count", 1, 0, 1, BIG, &c.n_layers));
    LRGD_TRY(key_int(g, "llama.feed_forward_length", 1, 0, 1, BIG, &c.hidden_dim));
    LRGD_TRY(key_int(g, "llama.attention.head_count", 1, 0, 1, BIG, &c.n_heads));
    LRGD_TRY(key_int(g, "llama.attention.head_count_kv", 0, c.n_heads, 1, BIG, &c.n_kv_heads));
    LRGD_TRY(key_float(g, "llama.attention.layer_norm_rms_epsilon", 1, 0, &c.norm_eps));
    LRGD_TRY(key_float(g, "llama.rope.freq_base", 0, 10000.0, &c.rope_base));
    int choice;
    LRGD_TRY(key_choice(g, "lrgd.attention", "softmax", "linear", 0, &choice));
    c.attn = choice ? LRGD_ATTN_LINEAR : LRGD_ATTN_SOFTMAX;
    LRGD_TRY(key_choice(g, "lrgd.rope.type", "norm", "neox", 0, &choice));
    c.rope_type = choice ? LRGD_ROPE_NEOX : LRGD_ROPE_NORM;
    c.head_dim = c.dim / c.n_heads;

    /* Vocabulary size: the embedding's rows; any other statement of it must agree. */
    const lrgd_gguf_tensor *te = lrgd_gguf_find_tensor(g, "token_embd.weight");
    if (!te) return lrgd_fail(LRGD_E_FORMAT, "%s: missing tensor 'token_embd.weight'", path);
    if (te->n_dims != 2 || te->ne[0] != (uint64_t)c.dim || te->ne[1] > (uint64_t)INT32_MAX) {
        char hs[128];
        shape_str(hs, sizeof hs, te->n_dims, te->ne);
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %" PRIu64 ": tensor 'token_embd.weight' has shape %s, expected [%d, n_vocab]",
                         path, te->info_offset, hs, c.dim);
    }
    c.vocab_size = (int)te->ne[1];
    int nv;
    LRGD_TRY(key_int(g, "llama.vocab_size", 0, c.vocab_size, 1, BIG, &nv));
    if (nv != c.vocab_size)
        return lrgd_fail(LRGD_E_FORMAT, "%s: llama.vocab_size = %d but token_embd.weight has %d rows", path, nv, c.vocab_size);
    const lrgd_gguf_val *toks = lrgd_gguf_get(g, "tokenizer.ggml.tokens");
    if (toks && lrgd_gguf_arr_len(toks) != (uint64_t)c.vocab_size)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %" PRIu64 ": tokenizer.ggml.tokens has %" PRIu64 " tokens but token_embd.weight has %d rows",
                         path, lrgd_gguf_val_offset(toks), lrgd_gguf_arr_len(toks), c.vocab_size);
    c.tied = lrgd_gguf_find_tensor(g, "output.weight") == NULL;
    LRGD_TRY(lrgd_config_check(&c, path));
    LRGD_TRY(check_unsupported(g, c.head_dim));

    loader L = {g, path, NULL, NULL};
    LRGD_TRY(lrgd_model_alloc(&c, &L.m));
    L.used = calloc((size_t)lrgd_gguf_n_tensors(g) + 1, 1);
    lrgd_status st = L.used ? LRGD_OK : lrgd_fail(LRGD_E_NOMEM, "out of memory");
    lrgd_model *m = L.m;
    int D = c.dim, F = c.hidden_dim, V = c.vocab_size, qd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
    if (st == LRGD_OK) st = take_matrix(&L, "token_embd.weight", V, D, &m->tok_embd);
    char nm[64];
#define LAYER_W(field, suffix, rows, cols)                                          \
    if (st == LRGD_OK) {                                                            \
        snprintf(nm, sizeof nm, "blk.%d." suffix ".weight", l);                     \
        st = take_matrix(&L, nm, rows, cols, &m->layers[l].field);                  \
    }
    for (int l = 0; l < c.n_layers && st == LRGD_OK; l++) {
        snprintf(nm, sizeof nm, "blk.%d.attn_norm.weight", l);
        st = take_norm(&L, nm, D, &m->layers[l].attn_norm);
        LAYER_W(wq, "attn_q", qd, D)
        LAYER_W(wk, "attn_k", kvd, D)
        LAYER_W(wv, "attn_v", kvd, D)
        LAYER_W(wo, "attn_output", D, qd)
        if (st == LRGD_OK) {
            snprintf(nm, sizeof nm, "blk.%d.ffn_norm.weight", l);
            st = take_norm(&L, nm, D, &m->layers[l].ffn_norm);
        }
        LAYER_W(w1, "ffn_gate", F, D)
        LAYER_W(w2, "ffn_down", D, F)
        LAYER_W(w3, "ffn_up", F, D)
    }
#undef LAYER_W
    if (st == LRGD_OK) st = take_norm(&L, "output_norm.weight", D, &m->out_norm);
    if (st == LRGD_OK) {
        if (c.tied) m->output = m->tok_embd;
        else st = take_matrix(&L, "output.weight", V, D, &m->output);
    }
    for (int64_t i = 0; i < lrgd_gguf_n_tensors(g) && st == LRGD_OK; i++)
        if (!L.used[i]) {
            const lrgd_gguf_tensor *t = lrgd_gguf_tensor_at(g, i);
            st = lrgd_fail(LRGD_E_UNSUPPORTED,
                           "%s: offset %" PRIu64 ": tensor '%s' is not part of a %d-layer llama model (lrgd would ignore it)",
                           path, t->info_offset, t->name, c.n_layers);
        }
    if (st == LRGD_OK) st = read_recvocab(&L);
    free(L.used);
    if (st != LRGD_OK) {
        lrgd_model_free(m);
        return st;
    }
    *out = m;
    return LRGD_OK;
}

lrgd_status lrgd_gguf_model_parse(lrgd_mapped *file, const char *path, lrgd_model **out)
{
    *out = NULL;
    lrgd_gguf *g;
    LRGD_TRY(lrgd_gguf_parse(file->data, file->size, path, &g));
    lrgd_status st = lrgd_gguf_to_model(g, out);
    if (st != LRGD_OK) {
        lrgd_gguf_free(g);
        return st;
    }
    (*out)->gguf = g;
    (*out)->file = *file;
    memset(file, 0, sizeof *file);
    return LRGD_OK;
}

/* ---- saving ---------------------------------------------------------------------- */

typedef struct saver {
    lrgd_gguf_writer *w;
    void **keep; /* buffers referenced by the writer until it has written */
    int n_keep;
} saver;

static lrgd_status keep(saver *S, void *p)
{
    if (!p) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    S->keep[S->n_keep++] = p;
    return LRGD_OK;
}

/* The NeoX form rotates pairs (j, j + d/2) of each head, llama.cpp's "llama"
 * architecture pairs (2j, 2j+1) with the same angle. Moving row j to 2j and
 * row j + d/2 to 2j+1 in both wq and wk turns one into the other exactly:
 * q.k per head is a sum over the same products. */
static void neox_perm(int n_heads, int hd, int *perm)
{
    for (int h = 0; h < n_heads; h++)
        for (int j = 0; j < hd / 2; j++) {
            perm[h * hd + 2 * j] = h * hd + j;
            perm[h * hd + 2 * j + 1] = h * hd + j + hd / 2;
        }
}

static lrgd_status add_weight(saver *S, const char *name, const lrgd_weight *src, lrgd_dtype want, const int *perm)
{
    lrgd_dtype target = want;
    if (want == LRGD_Q8_0 && src->cols % LRGD_Q8_0_BLOCK != 0) target = LRGD_F16; /* rows do not split into blocks */
    const uint64_t ne[2] = {(uint64_t)src->cols, (uint64_t)src->rows};
    size_t rb = lrgd_dtype_row_bytes(src->type, (size_t)src->cols);
    const void *data = src->data;
    if (perm) {
        unsigned char *p = lrgd_alloc_n((size_t)src->rows, rb);
        LRGD_TRY(keep(S, p));
        for (int r = 0; r < src->rows; r++)
            memcpy(p + (size_t)r * rb, (const unsigned char *)src->data + (size_t)perm[r] * rb, rb);
        data = p;
    }
    if (src->type == target) return lrgd_gguf_add_tensor(S->w, name, target, 2, ne, data);
    size_t n = (size_t)src->rows * (size_t)src->cols;
    float *f = lrgd_alloc_n(n, sizeof(float));
    if (!f) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    lrgd_dequantize(src->type, data, f, n);
    lrgd_status st = lrgd_gguf_add_tensor_f32(S->w, name, target, 2, ne, f);
    lrgd_free(f);
    return st;
}

static lrgd_status add_norm(saver *S, const char *name, const float *w, int n)
{
    const uint64_t ne[1] = {(uint64_t)n};
    return lrgd_gguf_add_tensor(S->w, name, LRGD_F32, 1, ne, w);
}

static lrgd_status save_meta(saver *S, const lrgd_model *m, lrgd_dtype wtype, const char *name, int permute)
{
    lrgd_gguf_writer *w = S->w;
    const lrgd_config *c = &m->cfg;
    const lrgd_gguf *src = m->gguf;
    if (!name && src) {
        const lrgd_gguf_val *v = lrgd_gguf_get(src, "general.name");
        if (v && lrgd_gguf_val_type(v) == LRGD_GGUF_STRING) lrgd_gguf_val_str(v, &name, NULL);
    }
    LRGD_TRY(lrgd_gguf_set_str(w, "general.architecture", "llama"));
    LRGD_TRY(lrgd_gguf_set_str(w, "general.name", name ? name : "lrgd"));
    /* llama.cpp's file-type numbering: all F32, mostly F16, mostly Q8_0 */
    LRGD_TRY(lrgd_gguf_set_u32(w, "general.file_type", wtype == LRGD_F32 ? 0 : wtype == LRGD_F16 ? 1 : 7));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.context_length", (uint32_t)c->seq_len));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.embedding_length", (uint32_t)c->dim));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.block_count", (uint32_t)c->n_layers));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads));
    LRGD_TRY(lrgd_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps));
    LRGD_TRY(lrgd_gguf_set_f32(w, "llama.rope.freq_base", c->rope_base));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size));
    LRGD_TRY(lrgd_gguf_set_str(w, "lrgd.attention", c->attn == LRGD_ATTN_LINEAR ? "linear" : "softmax"));
    LRGD_TRY(lrgd_gguf_set_str(w, "lrgd.rope.type", c->rope_type == LRGD_ROPE_NEOX && !permute ? "neox" : "norm"));
    const lrgd_recvocab *rv = &m->rec;
    if (rv->n_items > 0) {
        LRGD_TRY(lrgd_gguf_set_u32(w, "lrgd.n_special", (uint32_t)rv->n_special));
        static const char *keys[5] = {"lrgd.token.pad", "lrgd.token.bos", "lrgd.token.sep", "lrgd.token.ans",
                                      "lrgd.token.eos"};
        const int ids[5] = {rv->pad, rv->bos, rv->sep, rv->ans, rv->eos};
        for (int k = 0; k < 5; k++)
            if (ids[k] >= 0) LRGD_TRY(lrgd_gguf_set_u32(w, keys[k], (uint32_t)ids[k]));
        LRGD_TRY(lrgd_gguf_set_arr(w, "lrgd.item_ids", LRGD_GGUF_I64, rv->item_ext, (uint64_t)rv->n_items));
    }
    /* Vocabulary: the source file's own tokenizer when there is one. */
    if (src && lrgd_gguf_get(src, "tokenizer.ggml.tokens")) {
        for (int64_t i = 0; i < lrgd_gguf_n_kv(src); i++)
            if (!strncmp(lrgd_gguf_key(src, i), "tokenizer.", 10)) LRGD_TRY(lrgd_gguf_copy_kv(w, src, i));
    } else {
        lrgd_vocab_buf vb;
        if (rv->n_items > 0) LRGD_TRY(lrgd_vocab_synth_rec(rv, c->vocab_size, &vb));
        else LRGD_TRY(lrgd_vocab_synth_llama(c->vocab_size, &vb));
        lrgd_status st = lrgd_gguf_write_vocab(w, &vb.v);
        lrgd_vocab_free(&vb);
        LRGD_TRY(st);
    }
    /* Descriptive general.* keys (author, license, ...) travel along. */
    if (src)
        for (int64_t i = 0; i < lrgd_gguf_n_kv(src); i++) {
            const char *k = lrgd_gguf_key(src, i);
            if (!strncmp(k, "general.", 8) && strcmp(k, "general.alignment") && strcmp(k, "general.quantization_version") &&
                !lrgd_gguf_writer_has_key(w, k))
                LRGD_TRY(lrgd_gguf_copy_kv(w, src, i));
        }
    return LRGD_OK;
}

static lrgd_status save_tensors(saver *S, const lrgd_model *m, lrgd_dtype wt, int permute)
{
    const lrgd_config *c = &m->cfg;
    int *pq = NULL, *pk = NULL;
    if (permute) {
        pq = malloc((size_t)c->n_heads * c->head_dim * sizeof *pq);
        pk = malloc((size_t)c->n_kv_heads * c->head_dim * sizeof *pk);
        if (!pq || !pk) { free(pq); free(pk); return lrgd_fail(LRGD_E_NOMEM, "out of memory"); }
        neox_perm(c->n_heads, c->head_dim, pq);
        neox_perm(c->n_kv_heads, c->head_dim, pk);
    }
    char nm[64];
    lrgd_status st = add_weight(S, "token_embd.weight", &m->tok_embd, wt, NULL);
    for (int l = 0; l < c->n_layers && st == LRGD_OK; l++) {
        const lrgd_layer *L = &m->layers[l];
#define W(suffix, field, perm) \
    if (st == LRGD_OK) { snprintf(nm, sizeof nm, "blk.%d." suffix ".weight", l); st = add_weight(S, nm, &L->field, wt, perm); }
#define N(suffix, field) \
    if (st == LRGD_OK) { snprintf(nm, sizeof nm, "blk.%d." suffix ".weight", l); st = add_norm(S, nm, L->field, c->dim); }
        N("attn_norm", attn_norm)
        W("attn_q", wq, pq)
        W("attn_k", wk, pk)
        W("attn_v", wv, NULL)
        W("attn_output", wo, NULL)
        N("ffn_norm", ffn_norm)
        W("ffn_gate", w1, NULL)
        W("ffn_down", w2, NULL)
        W("ffn_up", w3, NULL)
#undef W
#undef N
    }
    if (st == LRGD_OK) st = add_norm(S, "output_norm.weight", m->out_norm, c->dim);
    if (st == LRGD_OK && !c->tied) st = add_weight(S, "output.weight", &m->output, wt, NULL);
    free(pq);
    free(pk);
    return st;
}

lrgd_status lrgd_model_save_gguf(const lrgd_model *m, const char *path, lrgd_dtype wtype, const char *name)
{
    return lrgd_model_save_gguf_ex(m, path, wtype, name, 0);
}

lrgd_status lrgd_model_save_gguf_ex(const lrgd_model *m, const char *path, lrgd_dtype wtype, const char *name,
                                    unsigned flags)
{
    if (!m || !path) return lrgd_fail(LRGD_E_INVALID, "save gguf: no model or path");
    if (wtype != LRGD_F32 && wtype != LRGD_F16 && wtype != LRGD_Q8_0)
        return lrgd_fail(LRGD_E_INVALID, "save gguf: weight type %d is not F32, F16 or Q8_0", (int)wtype);
    LRGD_TRY(lrgd_config_check(&m->cfg, "save gguf"));
    saver S = {0};
    LRGD_TRY(lrgd_gguf_writer_new(&S.w));
    S.keep = calloc(2 * (size_t)m->cfg.n_layers + 1, sizeof *S.keep);
    lrgd_status st = S.keep ? LRGD_OK : lrgd_fail(LRGD_E_NOMEM, "out of memory");
    int permute = (flags & LRGD_SAVE_ROPE_NORM) && m->cfg.rope_type == LRGD_ROPE_NEOX;
    if (flags & ~(unsigned)LRGD_SAVE_ROPE_NORM) st = lrgd_fail(LRGD_E_INVALID, "save gguf: unknown flags 0x%x", flags);
    if (st == LRGD_OK) st = save_meta(&S, m, wtype, name, permute);
    if (st == LRGD_OK) st = save_tensors(&S, m, wtype, permute);
    if (st == LRGD_OK) st = lrgd_gguf_write(S.w, path);
    else lrgd_fail_wrap(st, "%s", path);
    for (int i = 0; i < S.n_keep; i++) lrgd_free(S.keep[i]);
    free(S.keep);
    lrgd_gguf_writer_free(S.w);
    return st;
}
