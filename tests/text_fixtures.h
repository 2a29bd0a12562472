/* Text-model fixtures for the tokenizer and text-recommendation tests:
 * realistic vocabularies learned on item titles (byte-level BPE merges and a
 * SentencePiece-style vocabulary with scores and byte fallback), written
 * into tiny random llama models with lrgd's GGUF writer. Deterministic: the
 * same titles give the same files. Header-only; static functions. */
#ifndef LRGD_TEXT_FIXTURES_H
#define LRGD_TEXT_FIXTURES_H

#include "core/core.h"
#include "lrgd/gguf.h"
#include "lrgd/tokenizer.h"
#include "text/text_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- string lists ----------------------------------------------------------- */

typedef struct tf_strs {
    char **v;
    int n, cap;
} tf_strs;

static void tf_push(tf_strs *s, const char *p, size_t n)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = realloc(s->v, (size_t)s->cap * sizeof *s->v);
        if (!s->v) abort();
    }
    char *c = malloc(n + 1);
    if (!c) abort();
    memcpy(c, p, n);
    c[n] = 0;
    s->v[s->n++] = c;
}
static void tf_push_str(tf_strs *s, const char *p) { tf_push(s, p, strlen(p)); }
static void tf_strs_free(tf_strs *s)
{
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Up to max titles (third column, "title" or "keywords") of NAME.items.tsv. */
static lrgd_status tf_read_titles(const char *path, int max, tf_strs *out)
{
    char *buf;
    size_t size;
    LRGD_TRY(lrgd_read_file(path, &buf, &size));
    char *p = buf, *end = buf + size;
    int line = 0;
    while (p < end && out->n < max) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        if (line++ > 0) {
            char *f = p;
            for (int k = 0; k < 2 && f; k++) {
                f = memchr(f, '\t', (size_t)(nl - f));
                if (f) f++;
            }
            if (f) {
                char *e = memchr(f, '\t', (size_t)(nl - f));
                if (!e) e = nl;
                if (e > f && e[-1] == '\r') e--;
                if (e > f) tf_push(out, f, (size_t)(e - f));
            }
        }
        p = nl + 1;
    }
    free(buf);
    return out->n ? LRGD_OK : lrgd_fail(LRGD_E_FORMAT, "%s: no titles", path);
}

/* ---- a string -> id map ------------------------------------------------------ */

typedef struct tf_map {
    tf_strs keys;
    int *slot;
    size_t mask;
} tf_map;

static uint64_t tf_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    while (*s) h = (h ^ (unsigned char)*s++) * 0x100000001b3ull;
    return h;
}

static int tf_map_get(const tf_map *m, const char *s)
{
    if (!m->slot) return -1;
    for (size_t h = tf_hash(s) & m->mask;; h = (h + 1) & m->mask) {
        if (m->slot[h] < 0) return -1;
        if (!strcmp(m->keys.v[m->slot[h]], s)) return m->slot[h];
    }
}

static int tf_map_add(tf_map *m, const char *s) /* id of s, added if new */
{
    int id = tf_map_get(m, s);
    if (id >= 0) return id;
    if (!m->slot || (size_t)(m->keys.n + 1) * 2 > m->mask + 1) {
        size_t cap = m->slot ? 2 * (m->mask + 1) : 1024;
        free(m->slot);
        m->slot = malloc(cap * sizeof *m->slot);
        if (!m->slot) abort();
        memset(m->slot, 0xff, cap * sizeof *m->slot);
        m->mask = cap - 1;
        for (int i = 0; i < m->keys.n; i++) {
            size_t h = tf_hash(m->keys.v[i]) & m->mask;
            while (m->slot[h] >= 0) h = (h + 1) & m->mask;
            m->slot[h] = i;
        }
    }
    tf_push_str(&m->keys, s);
    size_t h = tf_hash(s) & m->mask;
    while (m->slot[h] >= 0) h = (h + 1) & m->mask;
    m->slot[h] = m->keys.n - 1;
    return m->keys.n - 1;
}

static void tf_map_free(tf_map *m)
{
    tf_strs_free(&m->keys);
    free(m->slot);
    memset(m, 0, sizeof *m);
}

/* ---- BPE learning ------------------------------------------------------------
 * Words are given as strings with their counts; symbols start as UTF-8
 * characters. Each step merges the most frequent adjacent pair (ties: the
 * pair whose symbols were seen first), recording "left right" and the joined
 * string. Plain recounting per step: slow in theory, under a second for a
 * few thousand titles. */

typedef struct tf_learned {
    tf_strs merges; /* "left right" */
    tf_strs joined; /* left+right, in merge order */
    tf_map chars;   /* the initial symbols, in order of first appearance */
    int *char_count;
} tf_learned;

static void tf_learned_free(tf_learned *l)
{
    tf_strs_free(&l->merges);
    tf_strs_free(&l->joined);
    tf_map_free(&l->chars);
    free(l->char_count);
}

static void tf_learn(const tf_map *words, const int *counts, int n_merges, tf_learned *out)
{
    memset(out, 0, sizeof *out);
    tf_map sym = {0};
    int nw = words->keys.n;
    int **ws = malloc((size_t)nw * sizeof *ws), *wn = malloc((size_t)nw * sizeof *wn);
    if (!ws || !wn) abort();
    for (int w = 0; w < nw; w++) {
        const char *s = words->keys.v[w];
        size_t len = strlen(s);
        ws[w] = malloc((len + 1) * sizeof(int));
        if (!ws[w]) abort();
        wn[w] = 0;
        for (size_t i = 0; i < len;) {
            size_t k = lrgd_utf8_seq_len((unsigned char)s[i]);
            if (k > len - i) k = len - i;
            char c[8];
            memcpy(c, s + i, k);
            c[k] = 0;
            ws[w][wn[w]++] = tf_map_add(&sym, c);
            tf_map_add(&out->chars, c);
            i += k;
        }
    }
    out->char_count = calloc((size_t)out->chars.keys.n, sizeof(int));
    for (int w = 0; w < nw; w++)
        for (int i = 0; i < wn[w]; i++) out->char_count[ws[w][i]] += counts[w]; /* char ids == first symbol ids */
    /* pair counts: open addressing keyed by (a, b), stamped by step */
    size_t cap = 1 << 20, mask = cap - 1;
    uint64_t *key = malloc(cap * sizeof *key);
    long *cnt = malloc(cap * sizeof *cnt);
    int *stamp = malloc(cap * sizeof *stamp);
    size_t *used = malloc(cap * sizeof *used);
    if (!key || !cnt || !stamp || !used) abort();
    for (size_t i = 0; i < cap; i++) stamp[i] = -1;
    for (int step = 0; step < n_merges; step++) {
        size_t n_used = 0;
        for (int w = 0; w < nw; w++)
            for (int i = 0; i + 1 < wn[w]; i++) {
                uint64_t k = (uint64_t)(uint32_t)ws[w][i] << 32 | (uint32_t)ws[w][i + 1];
                size_t h = (size_t)((k * 0x9E3779B97F4A7C15ull) >> 40) & mask;
                while (stamp[h] == step && key[h] != k) h = (h + 1) & mask;
                if (stamp[h] != step) {
                    stamp[h] = step;
                    key[h] = k;
                    cnt[h] = 0;
                    used[n_used++] = h;
                }
                cnt[h] += counts[w];
            }
        long best = 1;
        uint64_t bk = 0;
        for (size_t u = 0; u < n_used; u++) {
            size_t h = used[u];
            if (cnt[h] > best || (cnt[h] == best && best > 1 && key[h] < bk)) { best = cnt[h]; bk = key[h]; }
        }
        if (best < 2) break;
        int a = (int)(bk >> 32), b = (int)(uint32_t)bk;
        size_t la = strlen(sym.keys.v[a]), lb = strlen(sym.keys.v[b]);
        char *m = malloc(la + lb + 2);
        if (!m) abort();
        sprintf(m, "%s %s", sym.keys.v[a], sym.keys.v[b]);
        tf_push_str(&out->merges, m);
        memmove(m + la, m + la + 1, lb + 1);
        tf_push_str(&out->joined, m);
        int ab = tf_map_add(&sym, m);
        free(m);
        for (int w = 0; w < nw; w++) {
            int o = 0;
            for (int i = 0; i < wn[w]; i++) {
                if (i + 1 < wn[w] && ws[w][i] == a && ws[w][i + 1] == b) { ws[w][o++] = ab; i++; }
                else ws[w][o++] = ws[w][i];
            }
            wn[w] = o;
        }
    }
    for (int w = 0; w < nw; w++) free(ws[w]);
    free(ws);
    free(wn);
    free(key);
    free(cnt);
    free(stamp);
    free(used);
    tf_map_free(&sym);
}

/* ---- vocabularies ------------------------------------------------------------ */

typedef struct tf_vocab {
    tf_strs pieces, merges;
    float *scores;
    int32_t *types;
    lrgd_tokenizer_spec spec;
} tf_vocab;

static void tf_vocab_free(tf_vocab *v)
{
    tf_strs_free(&v->pieces);
    tf_strs_free(&v->merges);
    free(v->scores);
    free(v->types);
    memset(v, 0, sizeof *v);
}

static void tf_vocab_add(tf_vocab *v, tf_map *seen, const char *piece, float score, int32_t type)
{
    if (tf_map_get(seen, piece) >= 0) return;
    tf_map_add(seen, piece);
    tf_push_str(&v->pieces, piece);
    int n = v->pieces.n;
    v->scores = realloc(v->scores, (size_t)n * sizeof *v->scores);
    v->types = realloc(v->types, (size_t)n * sizeof *v->types);
    if (!v->scores || !v->types) abort();
    v->scores[n - 1] = score;
    v->types[n - 1] = type;
}

static void tf_vocab_finish(tf_vocab *v, const char *model)
{
    lrgd_gguf_vocab *g = &v->spec.vocab;
    memset(&v->spec, 0, sizeof v->spec);
    g->model = model;
    g->n = v->pieces.n;
    g->pieces = (const char *const *)v->pieces.v;
    g->scores = v->scores;
    g->types = v->types;
    g->bos = g->eos = g->unk = g->pad = g->sep = g->mask = -1;
    g->add_bos = g->add_eos = g->add_sep = -1;
    v->spec.add_space_prefix = -1;
    if (v->merges.n) {
        v->spec.merges = (const char *const *)v->merges.v;
        v->spec.n_merges = v->merges.n;
    }
}

/* Byte-level BPE: the 256 byte characters, the merges learned on the
 * GPT-2-pattern words of the titles, <|bos|> / <|eos|> (control) and two
 * user-defined tokens. leave_out: a few merged strings are left out of the
 * vocabulary (their merges stay), to exercise the "not a token" path (whose
 * bytes outside ASCII are then dropped, as in llama.cpp). pre:
 * tokenizer.ggml.pre (NULL: absent). */
static void tf_bpe_vocab(const tf_strs *titles, int n_merges, const char *pre, int leave_out, tf_vocab *v)
{
    memset(v, 0, sizeof *v);
    tf_map words = {0};
    int *counts = NULL;
    for (int t = 0; t < titles->n; t++) {
        const char *s = titles->v[t];
        size_t len = strlen(s), n = 0;
        uint32_t *cp = malloc((len + 1) * sizeof *cp);
        if (!cp) abort();
        for (size_t pos = 0; pos < len;) cp[n++] = lrgd_utf8_decode((const unsigned char *)s, len, &pos);
        lrgd_ivec lens = {0};
        if (lrgd_pretokenize(LRGD_PRE_GPT2, cp, n, &lens) != LRGD_OK) abort();
        size_t at = 0;
        for (size_t k = 0; k < lens.n; k++) {
            char w[1024];
            size_t m = 0;
            for (size_t i = at; i < at + (size_t)lens.v[k] && m < sizeof w - 16; i++) {
                char u[4];
                size_t nb = lrgd_utf8_encode(cp[i], u);
                for (size_t j = 0; j < nb; j++) m += lrgd_utf8_encode(lrgd_byte_cp((unsigned char)u[j]), w + m);
            }
            w[m] = 0;
            at += (size_t)lens.v[k];
            int id = tf_map_add(&words, w);
            counts = realloc(counts, (size_t)words.keys.n * sizeof *counts);
            if (!counts) abort();
            if (id == words.keys.n - 1) counts[id] = 0;
            counts[id]++;
        }
        lrgd_ivec_free(&lens);
        free(cp);
    }
    tf_learned l;
    tf_learn(&words, counts, n_merges, &l);
    tf_map seen = {0};
    for (int b = 0; b < 256; b++) {
        char u[8];
        u[lrgd_utf8_encode(lrgd_byte_cp((unsigned char)b), u)] = 0;
        tf_vocab_add(v, &seen, u, 0, LRGD_TOK_NORMAL);
    }
    for (int i = 0; i < l.joined.n; i++) {
        if (leave_out && i % 397 == 200) continue;
        tf_vocab_add(v, &seen, l.joined.v[i], 0, LRGD_TOK_NORMAL);
    }
    for (int i = 0; i < l.merges.n; i++) tf_push_str(&v->merges, l.merges.v[i]);
    int bos = v->pieces.n;
    tf_vocab_add(v, &seen, "<|bos|>", 0, LRGD_TOK_CONTROL);
    tf_vocab_add(v, &seen, "<|eos|>", 0, LRGD_TOK_CONTROL);
    tf_vocab_add(v, &seen, "<item>", 0, LRGD_TOK_USER);
    tf_vocab_add(v, &seen, "[SEP]", 0, LRGD_TOK_USER);
    tf_vocab_finish(v, "gpt2");
    v->spec.vocab.bos = bos;
    v->spec.vocab.eos = bos + 1;
    v->spec.pre = pre;
    tf_map_free(&seen);
    tf_learned_free(&l);
    tf_map_free(&words);
    free(counts);
}

/* SentencePiece-style: <unk> <s> </s>, the 256 byte tokens <0xXX>, the
 * characters seen at least 3 times (scored by frequency), the merged pieces
 * learned on "▁word" units, scored so that pairs of pieces tie (to exercise
 * leftmost-first on equal scores), and two user-defined tokens. */
static void tf_spm_vocab(const tf_strs *titles, int n_merges, int add_space_prefix, tf_vocab *v)
{
    memset(v, 0, sizeof *v);
    tf_map words = {0};
    int *counts = NULL;
    for (int t = 0; t < titles->n; t++) {
        const char *s = titles->v[t];
        while (*s) {
            while (*s == ' ') s++;
            const char *e = s;
            while (*e && *e != ' ') e++;
            if (e > s) {
                char w[1024];
                size_t n = (size_t)(e - s) < sizeof w - 8 ? (size_t)(e - s) : sizeof w - 8;
                memcpy(w, "\xe2\x96\x81", 3);
                memcpy(w + 3, s, n);
                w[3 + n] = 0;
                int id = tf_map_add(&words, w);
                counts = realloc(counts, (size_t)words.keys.n * sizeof *counts);
                if (!counts) abort();
                if (id == words.keys.n - 1) counts[id] = 0;
                counts[id]++;
            }
            s = e;
        }
    }
    tf_learned l;
    tf_learn(&words, counts, n_merges, &l);
    tf_map seen = {0};
    tf_vocab_add(v, &seen, "<unk>", 0, LRGD_TOK_UNKNOWN);
    tf_vocab_add(v, &seen, "<s>", 0, LRGD_TOK_CONTROL);
    tf_vocab_add(v, &seen, "</s>", 0, LRGD_TOK_CONTROL);
    for (int b = 0; b < 256; b++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        tf_vocab_add(v, &seen, hex, 0, LRGD_TOK_BYTE);
    }
    /* characters by decreasing count (ties: first seen) */
    int nc = l.chars.keys.n, *order = malloc((size_t)nc * sizeof *order);
    if (!order) abort();
    for (int i = 0; i < nc; i++) order[i] = i;
    for (int i = 1; i < nc; i++) {
        int x = order[i], j = i - 1;
        while (j >= 0 && l.char_count[order[j]] < l.char_count[x]) { order[j + 1] = order[j]; j--; }
        order[j + 1] = x;
    }
    for (int r = 0; r < nc; r++)
        if (l.char_count[order[r]] >= 3)
            tf_vocab_add(v, &seen, l.chars.keys.v[order[r]], -(float)(l.joined.n / 2 + 1 + r), LRGD_TOK_NORMAL);
    for (int i = 0; i < l.joined.n; i++) tf_vocab_add(v, &seen, l.joined.v[i], -(float)(i / 2), LRGD_TOK_NORMAL);
    tf_vocab_add(v, &seen, "<item>", 0, LRGD_TOK_USER);
    tf_vocab_add(v, &seen, "[SEP]", 0, LRGD_TOK_USER);
    free(order);
    tf_vocab_finish(v, "llama");
    v->spec.vocab.unk = 0;
    v->spec.vocab.bos = 1;
    v->spec.vocab.eos = 2;
    v->spec.add_space_prefix = add_space_prefix;
    tf_map_free(&seen);
    tf_learned_free(&l);
    tf_map_free(&words);
    free(counts);
}

/* ---- models ------------------------------------------------------------------- */

/* A tiny random llama model whose vocabulary is spec's, saved as GGUF:
 * lrgd_model_save_gguf writes the weights, then every key but tokenizer.* and
 * every tensor are copied next to spec's tokenizer. */
static lrgd_status tf_write_text_model(const lrgd_tokenizer_spec *spec, const lrgd_config *base, uint64_t seed,
                                       const char *path)
{
    lrgd_config c = *base;
    c.vocab_size = spec->vocab.n;
    lrgd_model *m = NULL;
    LRGD_TRY(lrgd_model_new_random(&c, seed, &m));
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.weights.tmp", path);
    lrgd_status st = lrgd_model_save_gguf(m, tmp, LRGD_F32, "lrgd-text-fixture");
    lrgd_model_free(m);
    if (st != LRGD_OK) return st;
    lrgd_gguf *g = NULL;
    lrgd_gguf_writer *w = NULL;
    st = lrgd_gguf_open(tmp, &g);
    if (st == LRGD_OK) st = lrgd_gguf_writer_new(&w);
    for (int64_t i = 0; st == LRGD_OK && i < lrgd_gguf_n_kv(g); i++)
        if (strncmp(lrgd_gguf_key(g, i), "tokenizer.", 10)) st = lrgd_gguf_copy_kv(w, g, i);
    if (st == LRGD_OK) st = lrgd_tokenizer_write_gguf(w, spec);
    for (int64_t i = 0; st == LRGD_OK && i < lrgd_gguf_n_tensors(g); i++) {
        const lrgd_gguf_tensor *t = lrgd_gguf_tensor_at(g, i);
        st = lrgd_gguf_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data);
    }
    if (st == LRGD_OK) st = lrgd_gguf_write(w, path);
    lrgd_gguf_writer_free(w);
    lrgd_gguf_free(g);
    remove(tmp);
    return st;
}

static lrgd_config tf_small_config(void)
{
    lrgd_config c;
    memset(&c, 0, sizeof c);
    c.dim = 32;
    c.hidden_dim = 64;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.seq_len = 512;
    c.norm_eps = 1e-5f;
    c.rope_base = 10000.0f;
    c.rope_type = LRGD_ROPE_NORM;
    c.attn = LRGD_ATTN_SOFTMAX;
    c.tied = 1;
    return c;
}

#endif
