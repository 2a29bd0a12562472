/* Builders of GGUF bytes for tests and for the committed bad-input corpus
 * (tests/data/bad/make_bad_models.c): a raw byte builder for headers no
 * writer would produce, and a tiny llama model built with lrgd's own writer,
 * with switches that break it in one chosen way. Header-only; static functions. */
#ifndef LRGD_GGUF_BUILD_H
#define LRGD_GGUF_BUILD_H

#include "core/core.h"
#include "format/gguf_internal.h"
#include "lrgd/gguf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- raw bytes ------------------------------------------------------------ */

typedef struct rawbuf {
    unsigned char *p;
    size_t n, cap;
} rawbuf;

static void raw_put(rawbuf *b, const void *d, size_t n)
{
    if (b->cap - b->n < n) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc - b->n < n) nc *= 2;
        b->p = realloc(b->p, nc);
        if (!b->p) abort();
        b->cap = nc;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void raw_le(rawbuf *b, uint64_t v, int sz)
{
    unsigned char t[8];
    for (int i = 0; i < sz; i++) t[i] = (unsigned char)(v >> (8 * i));
    raw_put(b, t, (size_t)sz);
}
static void raw_u32(rawbuf *b, uint32_t v) { raw_le(b, v, 4); }
static void raw_u64(rawbuf *b, uint64_t v) { raw_le(b, v, 8); }
static void raw_str(rawbuf *b, const char *s)
{
    raw_u64(b, strlen(s));
    raw_put(b, s, strlen(s));
}
static void raw_header(rawbuf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    raw_put(b, "GGUF", 4);
    raw_u32(b, version);
    raw_u64(b, n_tensors);
    raw_u64(b, n_kv);
}
static void raw_kv_u32(rawbuf *b, const char *key, uint32_t v)
{
    raw_str(b, key);
    raw_u32(b, LRGD_GGUF_U32);
    raw_u32(b, v);
}
static void raw_kv_str(rawbuf *b, const char *key, const char *v)
{
    raw_str(b, key);
    raw_u32(b, LRGD_GGUF_STRING);
    raw_str(b, v);
}
/* A tensor entry: name, dims, type, offset. */
static void raw_tensor(rawbuf *b, const char *name, int nd, const uint64_t *ne, uint32_t type, uint64_t off)
{
    raw_str(b, name);
    raw_u32(b, (uint32_t)nd);
    for (int d = 0; d < nd; d++) raw_u64(b, ne[d]);
    raw_u32(b, type);
    raw_u64(b, off);
}
static void raw_pad(rawbuf *b, size_t a)
{
    static const unsigned char z[64];
    while (b->n % a) raw_put(b, z, 1);
}
static void raw_zeros(rawbuf *b, size_t n)
{
    static const unsigned char z[256];
    while (n) {
        size_t k = n < sizeof z ? n : sizeof z;
        raw_put(b, z, k);
        n -= k;
    }
}

/* ---- a tiny llama model ---------------------------------------------------- */

/* dim 32, hidden 64, 2 layers, 4 heads (2 kv), vocab 24, context 64. */
enum { TINY_DIM = 32, TINY_HID = 64, TINY_LAYERS = 2, TINY_HEADS = 4, TINY_KV = 2, TINY_VOCAB = 24, TINY_CTX = 64 };

typedef struct tiny_opts {
    const char *arch;         /* general.architecture (NULL: "llama") */
    lrgd_dtype wtype;         /* matrices (F32 default) */
    int untied;               /* write output.weight */
    int rec;                  /* lrgd.* recommendation keys: 5 specials + items */
    int rec_dup_item;         /* ... with one item id listed twice */
    const char *skip;         /* leave this tensor out */
    const char *bad_shape;    /* write this 2-D tensor transposed */
    const char *nan_in;       /* put a NaN into this (F32) tensor */
    const char *extra;        /* add a tensor of this name */
    int vocab_key;            /* llama.vocab_size value (0: the right one) */
    int n_tokens;             /* tokenizer.ggml.tokens count (0: the right one) */
    int no_eps;               /* leave out llama.attention.layer_norm_rms_epsilon */
    const char *attn;         /* lrgd.attention value (NULL: not written) */
    uint32_t alignment;       /* 0: default */
    uint64_t seed;
} tiny_opts;

static float *tiny_rand(lrgd_rng *r, size_t n, float scale, float offset)
{
    float *f = malloc(n * sizeof *f);
    if (!f) abort();
    for (size_t i = 0; i < n; i++) f[i] = offset + scale * (float)(2.0 * lrgd_rng_uniform(r) - 1.0);
    return f;
}

/* Build the tiny model into a writer (caller writes it and frees it). The
 * float buffers are converted by the writer (add_tensor_f32), so nothing
 * needs to outlive this call, except for nan_in (added raw). */
static lrgd_status tiny_build(const tiny_opts *o, lrgd_gguf_writer **out, float **nan_buf)
{
    lrgd_gguf_writer *w;
    LRGD_TRY(lrgd_gguf_writer_new(&w));
    *out = w;
    *nan_buf = NULL;
    lrgd_rng r;
    lrgd_rng_seed(&r, o->seed ? o->seed : 7, 0);
    const int D = TINY_DIM, F = TINY_HID, V = TINY_VOCAB, hd = TINY_DIM / TINY_HEADS, kvd = TINY_KV * hd;
    if (o->alignment) LRGD_TRY(lrgd_gguf_writer_set_alignment(w, o->alignment));
    LRGD_TRY(lrgd_gguf_set_str(w, "general.architecture", o->arch ? o->arch : "llama"));
    LRGD_TRY(lrgd_gguf_set_str(w, "general.name", "tiny"));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.context_length", TINY_CTX));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.embedding_length", D));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.block_count", TINY_LAYERS));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.feed_forward_length", F));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.attention.head_count", TINY_HEADS));
    LRGD_TRY(lrgd_gguf_set_u32(w, "llama.attention.head_count_kv", TINY_KV));
    if (!o->no_eps) LRGD_TRY(lrgd_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f));
    LRGD_TRY(lrgd_gguf_set_f32(w, "llama.rope.freq_base", 10000.0f));
    if (o->vocab_key) LRGD_TRY(lrgd_gguf_set_u32(w, "llama.vocab_size", (uint32_t)o->vocab_key));
    if (o->attn) LRGD_TRY(lrgd_gguf_set_str(w, "lrgd.attention", o->attn));
    if (o->rec) {
        int64_t items[TINY_VOCAB - 5];
        for (int i = 0; i < V - 5; i++) items[i] = 1000 + 7 * i;
        if (o->rec_dup_item) items[3] = items[1];
        LRGD_TRY(lrgd_gguf_set_u32(w, "lrgd.n_special", 5));
        LRGD_TRY(lrgd_gguf_set_u32(w, "lrgd.token.pad", 0));
        LRGD_TRY(lrgd_gguf_set_u32(w, "lrgd.token.bos", 1));
        LRGD_TRY(lrgd_gguf_set_u32(w, "lrgd.token.sep", 2));
        LRGD_TRY(lrgd_gguf_set_u32(w, "lrgd.token.ans", 3));
        LRGD_TRY(lrgd_gguf_set_u32(w, "lrgd.token.eos", 4));
        LRGD_TRY(lrgd_gguf_set_arr(w, "lrgd.item_ids", LRGD_GGUF_I64, items, (uint64_t)(V - 5)));
    }
    lrgd_vocab_buf vb;
    int nt = o->n_tokens ? o->n_tokens : V;
    LRGD_TRY(lrgd_vocab_synth_llama(nt, &vb));
    lrgd_status st = lrgd_gguf_write_vocab(w, &vb.v);
    lrgd_vocab_free(&vb);
    LRGD_TRY(st);

    char nm[64];
    struct { const char *fmt; int rows, cols; } mats[7] = {
        {"blk.%d.attn_q.weight", D, D},    {"blk.%d.attn_k.weight", kvd, D},  {"blk.%d.attn_v.weight", kvd, D},
        {"blk.%d.attn_output.weight", D, D}, {"blk.%d.ffn_gate.weight", F, D}, {"blk.%d.ffn_down.weight", D, F},
        {"blk.%d.ffn_up.weight", F, D}};
    /* Tensor list in file order: embedding, layers, final norm, output. */
    for (int i = -1; i <= TINY_LAYERS; i++) {
        int n_here = i < 0 ? 1 : i == TINY_LAYERS ? (o->untied ? 2 : 1) : 9;
        for (int k = 0; k < n_here; k++) {
            int rows, cols, is_norm = 0;
            if (i < 0) { snprintf(nm, sizeof nm, "token_embd.weight"); rows = V; cols = D; }
            else if (i == TINY_LAYERS) {
                if (k == 0) { snprintf(nm, sizeof nm, "output_norm.weight"); rows = 1; cols = D; is_norm = 1; }
                else { snprintf(nm, sizeof nm, "output.weight"); rows = V; cols = D; }
            } else if (k == 0 || k == 5) {
                snprintf(nm, sizeof nm, k == 0 ? "blk.%d.attn_norm.weight" : "blk.%d.ffn_norm.weight", i);
                rows = 1; cols = D; is_norm = 1;
            } else {
                int j = k < 5 ? k - 1 : k - 2;
                snprintf(nm, sizeof nm, mats[j].fmt, i);
                rows = mats[j].rows; cols = mats[j].cols;
            }
            if (o->skip && !strcmp(o->skip, nm)) continue;
            size_t n = (size_t)rows * (size_t)cols;
            float *f = is_norm ? tiny_rand(&r, n, 0.1f, 1.0f) : tiny_rand(&r, n, 0.3f, 0.0f);
            uint64_t ne[2] = {(uint64_t)cols, (uint64_t)rows};
            if (o->bad_shape && !strcmp(o->bad_shape, nm)) { ne[0] = (uint64_t)rows; ne[1] = (uint64_t)cols; }
            lrgd_dtype t = is_norm ? LRGD_F32 : o->wtype;
            if (o->nan_in && !strcmp(o->nan_in, nm)) {
                f[n / 2] = NAN;
                st = lrgd_gguf_add_tensor(w, nm, LRGD_F32, is_norm ? 1 : 2, ne, f);
                *nan_buf = f; /* referenced until the writer writes */
            } else {
                st = lrgd_gguf_add_tensor_f32(w, nm, t, is_norm ? 1 : 2, ne, f);
                free(f);
            }
            LRGD_TRY(st);
        }
    }
    if (o->extra) {
        float z[TINY_DIM] = {0};
        uint64_t ne[1] = {TINY_DIM};
        LRGD_TRY(lrgd_gguf_add_tensor_f32(w, o->extra, LRGD_F32, 1, ne, z));
    }
    return LRGD_OK;
}

/* Serialize the tiny model into a heap buffer (free()). */
static lrgd_status tiny_bytes(const tiny_opts *o, void **data, size_t *size)
{
    lrgd_gguf_writer *w = NULL;
    float *nan_buf = NULL;
    lrgd_status st = tiny_build(o, &w, &nan_buf);
    if (st == LRGD_OK) st = lrgd_gguf_write_mem(w, data, size);
    lrgd_gguf_writer_free(w);
    free(nan_buf);
    return st;
}

#endif
