/* Text tokenizers from tokenizer.ggml.*: SentencePiece-style ("llama") and
 * GPT-2-style byte-level BPE ("gpt2"). Behaviour and its sources are
 * described in lrgd/tokenizer.h. */
#include "lrgd/tokenizer.h"
#include "model/model_impl.h"
#include "text/text_impl.h"

#include <stdlib.h>
#include <string.h>

struct lrgd_tokenizer {
    lrgd_tokenizer_kind kind;
    lrgd_pretok pre;
    char pre_name[64];
    int n;
    char *buf;        /* all pieces, each NUL-terminated */
    size_t *off;      /* [n] piece i = buf + off[i] */
    uint32_t *len;    /* [n] */
    float *score;     /* [n] */
    int32_t *type;    /* [n] */
    int *ht;          /* piece -> id, open addressing, -1 empty */
    size_t ht_mask;
    /* BPE merges: rank r joins piece mbuf+moff[2r] and mbuf+moff[2r+1]. */
    int n_merges;
    char *mbuf;
    size_t *moff;
    uint32_t *mlen;
    int *mht;         /* pair -> rank, -1 empty */
    size_t mht_mask;
    int bos, eos, unk;
    int add_bos, add_eos, add_space_prefix, ignore_merges;
    int *special;     /* user-defined, control and unknown tokens, longest piece first */
    int n_special;
    int byte_tok[256];     /* SPM byte fallback: <0xXX>, else the one-byte piece, else -1 */
    int raw_byte_tok[256]; /* the token whose piece is exactly that one byte, or -1 */
};

/* ---- hashing --------------------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}
#define FNV0 0xcbf29ce484222325ull

static size_t table_size(size_t n)
{
    size_t s = 64;
    while (s < 2 * n) s *= 2;
    return s;
}

int lrgd_token_find(const lrgd_tokenizer *t, const char *s, size_t len)
{
    size_t h = (size_t)fnv(FNV0, s, len) & t->ht_mask;
    for (;;) {
        int id = t->ht[h];
        if (id < 0) return -1;
        if (t->len[id] == len && memcmp(t->buf + t->off[id], s, len) == 0) return id;
        h = (h + 1) & t->ht_mask;
    }
}

static uint64_t pair_hash(const char *a, size_t na, const char *b, size_t nb)
{
    uint64_t h = fnv(FNV0, a, na);
    h = (h ^ 0xff) * 0x100000001b3ull; /* a separator no UTF-8 text has */
    return fnv(h, b, nb);
}

static int merge_rank(const lrgd_tokenizer *t, const char *a, size_t na, const char *b, size_t nb)
{
    size_t h = (size_t)pair_hash(a, na, b, nb) & t->mht_mask;
    for (;;) {
        int r = t->mht[h];
        if (r < 0) return -1;
        if (t->mlen[2 * r] == na && t->mlen[2 * r + 1] == nb && memcmp(t->mbuf + t->moff[2 * r], a, na) == 0 &&
            memcmp(t->mbuf + t->moff[2 * r + 1], b, nb) == 0)
            return r;
        h = (h + 1) & t->mht_mask;
    }
}

/* ---- loading ------------------------------------------------------------------------ */

void lrgd_tokenizer_free(lrgd_tokenizer *t)
{
    if (!t) return;
    free(t->buf);
    free(t->off);
    free(t->len);
    free(t->score);
    free(t->type);
    free(t->ht);
    free(t->mbuf);
    free(t->moff);
    free(t->mlen);
    free(t->mht);
    free(t->special);
    free(t);
}

static const struct { const char *name; lrgd_pretok kind; } pre_names[] = {
    {"default", LRGD_PRE_DEFAULT},    {"gpt-2", LRGD_PRE_GPT2},          {"phi-2", LRGD_PRE_GPT2},
    {"mpt", LRGD_PRE_GPT2},           {"olmo", LRGD_PRE_GPT2},           {"llama3", LRGD_PRE_LLAMA3},
    {"llama-v3", LRGD_PRE_LLAMA3},    {"llama-bpe", LRGD_PRE_LLAMA3},    {"falcon3", LRGD_PRE_LLAMA3},
    {"pixtral", LRGD_PRE_LLAMA3},     {"qwen2", LRGD_PRE_QWEN2},         {"deepseek-r1-qwen", LRGD_PRE_QWEN2},
    {"starcoder", LRGD_PRE_STARCODER}, {"smollm", LRGD_PRE_STARCODER},
};
#define N_PRE (int)(sizeof pre_names / sizeof pre_names[0])

static const char *gname(const lrgd_gguf *g) { return lrgd_gguf_name(g); }

/* An optional boolean key; absent leaves *out alone. */
static lrgd_status opt_bool(const lrgd_gguf *g, const char *key, int *out)
{
    const lrgd_gguf_val *v = lrgd_gguf_get(g, key);
    if (!v) return LRGD_OK;
    if (lrgd_gguf_val_bool(v, out) != LRGD_OK)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %llu: %s: expected a bool, got %s", gname(g),
                         (unsigned long long)lrgd_gguf_val_offset(v), key, lrgd_gguf_type_name(lrgd_gguf_val_type(v)));
    return LRGD_OK;
}

/* A special id: kept only inside the vocabulary, as llama.cpp does (it warns
 * and keeps its default otherwise). */
static lrgd_status opt_id(const lrgd_gguf *g, const char *key, int n, int *id)
{
    if (*id >= n) *id = -1;
    const lrgd_gguf_val *v = lrgd_gguf_get(g, key);
    if (!v) return LRGD_OK;
    int64_t x;
    if (lrgd_gguf_val_int(v, &x) != LRGD_OK)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %llu: %s: expected an integer token id, got %s", gname(g),
                         (unsigned long long)lrgd_gguf_val_offset(v), key, lrgd_gguf_type_name(lrgd_gguf_val_type(v)));
    if (x >= 0 && x < n) *id = (int)x;
    return LRGD_OK;
}

/* A numeric array of at least n elements (llama.cpp reads the first n). */
static lrgd_status num_array(const lrgd_gguf *g, const char *key, int n, int want_float, const lrgd_gguf_val **out)
{
    const lrgd_gguf_val *v = lrgd_gguf_get(g, key);
    *out = v;
    if (!v) return LRGD_OK;
    lrgd_gguf_type e = lrgd_gguf_val_type(v) == LRGD_GGUF_ARRAY ? lrgd_gguf_arr_type(v) : LRGD_GGUF_ARRAY;
    int ok = want_float ? (e == LRGD_GGUF_F32 || e == LRGD_GGUF_I32) : e == LRGD_GGUF_I32;
    if (!ok)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %llu: %s: expected an array of %s", gname(g),
                         (unsigned long long)lrgd_gguf_val_offset(v), key, want_float ? "f32 or i32" : "i32");
    if (lrgd_gguf_arr_len(v) < (uint64_t)n)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %llu: %s has %llu entries for %d tokens", gname(g),
                         (unsigned long long)lrgd_gguf_val_offset(v), key, (unsigned long long)lrgd_gguf_arr_len(v), n);
    return LRGD_OK;
}

static lrgd_status load_pieces(lrgd_tokenizer *t, const lrgd_gguf *g, const lrgd_gguf_val *toks)
{
    int n = t->n;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        uint64_t len;
        lrgd_gguf_arr_str(toks, (uint64_t)i, &len);
        /* llama.cpp names an empty piece "[EMPTY_i]"; we do the same so that
         * lookups and special matching agree. */
        total += (len ? len : 24) + 1;
    }
    t->buf = malloc(total ? total : 1);
    t->off = malloc((size_t)n * sizeof *t->off);
    t->len = malloc((size_t)n * sizeof *t->len);
    t->score = calloc((size_t)n, sizeof *t->score);
    t->type = malloc((size_t)n * sizeof *t->type);
    t->ht_mask = table_size((size_t)n) - 1;
    t->ht = malloc((t->ht_mask + 1) * sizeof *t->ht);
    if (!t->buf || !t->off || !t->len || !t->score || !t->type || !t->ht) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    memset(t->ht, 0xff, (t->ht_mask + 1) * sizeof *t->ht);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        uint64_t len;
        const char *s = lrgd_gguf_arr_str(toks, (uint64_t)i, &len);
        t->off[i] = at;
        if (len) memcpy(t->buf + at, s, len);
        else len = (uint64_t)snprintf(t->buf + at, 25, "[EMPTY_%d]", i);
        t->buf[at + len] = 0;
        t->len[i] = (uint32_t)len;
        at += len + 1;
        size_t h = (size_t)fnv(FNV0, t->buf + t->off[i], len) & t->ht_mask;
        while (t->ht[h] >= 0) {
            int j = t->ht[h];
            if (t->len[j] == len && memcmp(t->buf + t->off[j], t->buf + t->off[i], len) == 0)
                return lrgd_fail(LRGD_E_FORMAT, "%s: offset %llu: tokenizer.ggml.tokens: tokens %d and %d have the same piece '%s'",
                                 gname(g), (unsigned long long)lrgd_gguf_val_offset(toks), j, i, t->buf + t->off[i]);
            h = (h + 1) & t->ht_mask;
        }
        t->ht[h] = i;
    }
    const lrgd_gguf_val *sv, *tv;
    LRGD_TRY(num_array(g, "tokenizer.ggml.scores", n, 1, &sv));
    LRGD_TRY(num_array(g, "tokenizer.ggml.token_type", n, 0, &tv));
    for (int i = 0; i < n; i++) {
        double x = 0;
        int64_t xi, ty = LRGD_TOK_NORMAL;
        if (sv && lrgd_gguf_arr_type(sv) == LRGD_GGUF_F32) LRGD_TRY(lrgd_gguf_arr_float(sv, (uint64_t)i, &x));
        else if (sv) { LRGD_TRY(lrgd_gguf_arr_int(sv, (uint64_t)i, &xi)); x = (double)xi; }
        if (tv) LRGD_TRY(lrgd_gguf_arr_int(tv, (uint64_t)i, &ty));
        t->score[i] = (float)x;
        t->type[i] = (int32_t)ty;
    }
    return LRGD_OK;
}

static lrgd_status load_merges(lrgd_tokenizer *t, const lrgd_gguf *g)
{
    const lrgd_gguf_val *mv = lrgd_gguf_get(g, "tokenizer.ggml.merges");
    if (!mv)
        return lrgd_fail(LRGD_E_FORMAT, "%s: tokenizer.ggml.model is \"gpt2\" but tokenizer.ggml.merges is missing", gname(g));
    if (lrgd_gguf_val_type(mv) != LRGD_GGUF_ARRAY || lrgd_gguf_arr_type(mv) != LRGD_GGUF_STRING)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %llu: tokenizer.ggml.merges: expected an array of strings", gname(g),
                         (unsigned long long)lrgd_gguf_val_offset(mv));
    uint64_t nm = lrgd_gguf_arr_len(mv);
    if (nm > (1u << 26))
        return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: tokenizer.ggml.merges: %llu merges (at most %u)", gname(g),
                         (unsigned long long)nm, 1u << 26);
    size_t total = 0;
    for (uint64_t i = 0; i < nm; i++) {
        uint64_t len;
        lrgd_gguf_arr_str(mv, i, &len);
        total += len + 2;
    }
    t->n_merges = (int)nm;
    t->mbuf = malloc(total ? total : 1);
    t->moff = malloc((size_t)(2 * nm + 1) * sizeof *t->moff);
    t->mlen = malloc((size_t)(2 * nm + 1) * sizeof *t->mlen);
    t->mht_mask = table_size((size_t)nm) - 1;
    t->mht = malloc((t->mht_mask + 1) * sizeof *t->mht);
    if (!t->mbuf || !t->moff || !t->mlen || !t->mht) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    memset(t->mht, 0xff, (t->mht_mask + 1) * sizeof *t->mht);
    size_t at = 0;
    for (uint64_t r = 0; r < nm; r++) {
        uint64_t len;
        const char *s = lrgd_gguf_arr_str(mv, r, &len);
        /* "left right", split at the first space after the first byte (so a
         * left part may itself start with a space). No space: the merge
         * never applies (llama.cpp stores it as the pair of empty strings). */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        size_t nl = sp ? (size_t)(sp - s) : 0, nr = sp ? len - nl - 1 : 0;
        t->moff[2 * r] = at;
        t->mlen[2 * r] = (uint32_t)nl;
        memcpy(t->mbuf + at, s, nl);
        at += nl;
        t->moff[2 * r + 1] = at;
        t->mlen[2 * r + 1] = (uint32_t)nr;
        if (nr) memcpy(t->mbuf + at, sp + 1, nr);
        at += nr;
        if (!sp) continue;
        const char *a = t->mbuf + t->moff[2 * r], *b = t->mbuf + t->moff[2 * r + 1];
        size_t h = (size_t)pair_hash(a, nl, b, nr) & t->mht_mask;
        int dup = 0;
        while (t->mht[h] >= 0) {
            int q = t->mht[h];
            if (t->mlen[2 * q] == nl && t->mlen[2 * q + 1] == nr && !memcmp(t->mbuf + t->moff[2 * q], a, nl) &&
                !memcmp(t->mbuf + t->moff[2 * q + 1], b, nr)) { dup = 1; break; } /* the first rank wins */
            h = (h + 1) & t->mht_mask;
        }
        if (!dup) t->mht[h] = (int)r;
    }
    return LRGD_OK;
}

static int cmp_special_ctx_len(const lrgd_tokenizer *t, int a, int b)
{
    if (t->len[a] != t->len[b]) return t->len[a] > t->len[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

static void sort_specials(lrgd_tokenizer *t)
{
    /* insertion sort: special tokens are few */
    for (int i = 1; i < t->n_special; i++) {
        int x = t->special[i], j = i - 1;
        while (j >= 0 && cmp_special_ctx_len(t, t->special[j], x) > 0) {
            t->special[j + 1] = t->special[j];
            j--;
        }
        t->special[j + 1] = x;
    }
}

lrgd_status lrgd_tokenizer_from_gguf(const lrgd_gguf *g, lrgd_tokenizer **out)
{
    *out = NULL;
    const lrgd_gguf_val *mv = lrgd_gguf_get(g, "tokenizer.ggml.model");
    if (!mv) return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: no tokenizer (tokenizer.ggml.model is missing)", gname(g));
    const char *model;
    uint64_t mlen;
    if (lrgd_gguf_val_str(mv, &model, &mlen) != LRGD_OK)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %llu: tokenizer.ggml.model: expected a string", gname(g),
                         (unsigned long long)lrgd_gguf_val_offset(mv));
    lrgd_tokenizer_kind kind;
    if (!strcmp(model, "llama")) kind = LRGD_TOKENIZER_SPM;
    else if (!strcmp(model, "gpt2")) kind = LRGD_TOKENIZER_BPE;
    else
        return lrgd_fail(LRGD_E_UNSUPPORTED,
                         "%s: offset %llu: tokenizer.ggml.model \"%s\": lrgd tokenizes \"llama\" (SentencePiece) and "
                         "\"gpt2\" (byte-level BPE) vocabularies only",
                         gname(g), (unsigned long long)lrgd_gguf_val_offset(mv), model);
    const lrgd_gguf_val *toks = lrgd_gguf_get(g, "tokenizer.ggml.tokens");
    if (!toks) return lrgd_fail(LRGD_E_FORMAT, "%s: tokenizer.ggml.tokens is missing", gname(g));
    if (lrgd_gguf_val_type(toks) != LRGD_GGUF_ARRAY || lrgd_gguf_arr_type(toks) != LRGD_GGUF_STRING)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset %llu: tokenizer.ggml.tokens: expected an array of strings", gname(g),
                         (unsigned long long)lrgd_gguf_val_offset(toks));
    uint64_t n = lrgd_gguf_arr_len(toks);
    if (n < 1 || n > (1u << 24))
        return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: offset %llu: tokenizer.ggml.tokens has %llu tokens (expected 1..%u)",
                         gname(g), (unsigned long long)lrgd_gguf_val_offset(toks), (unsigned long long)n, 1u << 24);

    lrgd_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    t->kind = kind;
    t->n = (int)n;
    lrgd_status st = load_pieces(t, g, toks);

    /* Pre-tokenizer (BPE only; llama.cpp ignores it for SPM). */
    if (st == LRGD_OK && kind == LRGD_TOKENIZER_BPE) {
        const lrgd_gguf_val *pv = lrgd_gguf_get(g, "tokenizer.ggml.pre");
        const char *pre = "default";
        uint64_t plen;
        if (pv && lrgd_gguf_val_str(pv, &pre, &plen) != LRGD_OK)
            st = lrgd_fail(LRGD_E_FORMAT, "%s: offset %llu: tokenizer.ggml.pre: expected a string", gname(g),
                           (unsigned long long)lrgd_gguf_val_offset(pv));
        int k = 0;
        while (st == LRGD_OK && k < N_PRE && strcmp(pre_names[k].name, pre)) k++;
        if (st == LRGD_OK && k == N_PRE) {
            char list[512] = "";
            for (int i = 0; i < N_PRE; i++) {
                strcat(list, i ? ", " : "");
                strcat(list, pre_names[i].name);
            }
            st = lrgd_fail(LRGD_E_UNSUPPORTED,
                           "%s: offset %llu: tokenizer.ggml.pre \"%.64s\" is a pre-tokenizer lrgd does not implement "
                           "(supported: %s)",
                           gname(g), (unsigned long long)lrgd_gguf_val_offset(pv), pre, list);
        }
        if (st == LRGD_OK) {
            t->pre = pre_names[k].kind;
            snprintf(t->pre_name, sizeof t->pre_name, "%s", pre_names[k].name);
            t->ignore_merges = t->add_bos = t->pre == LRGD_PRE_LLAMA3;
        }
        if (st == LRGD_OK) st = load_merges(t, g);
    }

    /* Defaults as llama.cpp sets them, then the file's keys. */
    if (kind == LRGD_TOKENIZER_SPM) {
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_bos = 1, t->add_eos = 0, t->add_space_prefix = 1;
    } else {
        t->bos = 11, t->eos = 11, t->unk = -1;
    }
    if (st == LRGD_OK) st = opt_id(g, "tokenizer.ggml.bos_token_id", t->n, &t->bos);
    if (st == LRGD_OK) st = opt_id(g, "tokenizer.ggml.eos_token_id", t->n, &t->eos);
    if (st == LRGD_OK) st = opt_id(g, "tokenizer.ggml.unknown_token_id", t->n, &t->unk);
    if (st == LRGD_OK) st = opt_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos);
    if (st == LRGD_OK) st = opt_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos);
    if (st == LRGD_OK && kind == LRGD_TOKENIZER_SPM) st = opt_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix);

    if (st == LRGD_OK) {
        for (int i = 0; i < t->n; i++)
            if (t->type[i] == LRGD_TOK_CONTROL || t->type[i] == LRGD_TOK_USER || t->type[i] == LRGD_TOK_UNKNOWN)
                t->n_special++;
        t->special = malloc((size_t)(t->n_special ? t->n_special : 1) * sizeof *t->special);
        if (!t->special) st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    }
    if (st == LRGD_OK) {
        int k = 0;
        for (int i = 0; i < t->n; i++)
            if (t->type[i] == LRGD_TOK_CONTROL || t->type[i] == LRGD_TOK_USER || t->type[i] == LRGD_TOK_UNKNOWN)
                t->special[k++] = i;
        sort_specials(t);
        for (int b = 0; b < 256; b++) {
            char c = (char)b, hex[8];
            snprintf(hex, sizeof hex, "<0x%02X>", b);
            t->raw_byte_tok[b] = lrgd_token_find(t, &c, 1);
            int id = lrgd_token_find(t, hex, 6);
            t->byte_tok[b] = id >= 0 ? id : t->raw_byte_tok[b];
        }
    }
    if (st != LRGD_OK) {
        lrgd_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LRGD_OK;
}

lrgd_status lrgd_tokenizer_load(const char *path, lrgd_tokenizer **out)
{
    *out = NULL;
    lrgd_gguf *g;
    LRGD_TRY(lrgd_gguf_open(path, &g));
    lrgd_status st = lrgd_tokenizer_from_gguf(g, out);
    lrgd_gguf_free(g);
    return st;
}

lrgd_status lrgd_tokenizer_from_model(const lrgd_model *m, lrgd_tokenizer **out)
{
    *out = NULL;
    if (!m->gguf)
        return lrgd_fail(LRGD_E_UNSUPPORTED, "the model has no tokenizer: it was not loaded from GGUF (llama2.c "
                                             "checkpoints carry no vocabulary)");
    LRGD_TRY(lrgd_tokenizer_from_gguf(m->gguf, out));
    if ((*out)->n != m->cfg.vocab_size) {
        lrgd_status st = lrgd_fail(LRGD_E_FORMAT, "%s: the tokenizer has %d tokens but the model's vocabulary is %d",
                                   gname(m->gguf), (*out)->n, m->cfg.vocab_size);
        lrgd_tokenizer_free(*out);
        *out = NULL;
        return st;
    }
    return LRGD_OK;
}

lrgd_tokenizer_kind lrgd_tokenizer_kind_of(const lrgd_tokenizer *t) { return t->kind; }
int lrgd_tokenizer_n_vocab(const lrgd_tokenizer *t) { return t->n; }
const char *lrgd_tokenizer_pre(const lrgd_tokenizer *t) { return t->pre_name; }
int lrgd_tokenizer_bos(const lrgd_tokenizer *t) { return t->bos; }
int lrgd_tokenizer_eos(const lrgd_tokenizer *t) { return t->eos; }
int lrgd_tokenizer_unk(const lrgd_tokenizer *t) { return t->unk; }
int lrgd_tokenizer_add_bos(const lrgd_tokenizer *t) { return t->add_bos; }
int lrgd_tokenizer_add_eos(const lrgd_tokenizer *t) { return t->add_eos; }
int lrgd_tokenizer_add_space_prefix(const lrgd_tokenizer *t) { return t->add_space_prefix; }

const char *lrgd_token_piece(const lrgd_tokenizer *t, int id, size_t *len)
{
    if (id < 0 || id >= t->n) { if (len) *len = 0; return NULL; }
    if (len) *len = t->len[id];
    return t->buf + t->off[id];
}

int lrgd_token_type(const lrgd_tokenizer *t, int id) { return id < 0 || id >= t->n ? 0 : t->type[id]; }

/* ---- merging ------------------------------------------------------------------------ */

typedef struct sym { int prev, next; size_t off, n; } sym;
/* A candidate merge of adjacent symbols; valid while both still have the
 * lengths they had when it was queued (symbols only grow). key: larger first
 * (SPM: the token's score; BPE: -rank); equal keys: the leftmost first. */
typedef struct bigram { int left, right; double key; size_t nl, nr; } bigram;

typedef struct work {
    sym *s;
    size_t n_s, cap_s;
    bigram *h;
    size_t n_h, cap_h;
    char *tmp; /* text scratch */
    size_t cap_tmp;
    lrgd_ivec out;
} work;

static int better(const bigram *a, const bigram *b)
{
    return a->key > b->key || (a->key == b->key && a->left < b->left);
}

static lrgd_status heap_push(work *w, bigram b)
{
    if (w->n_h == w->cap_h) {
        size_t cap = w->cap_h ? 2 * w->cap_h : 256;
        bigram *h = realloc(w->h, cap * sizeof *h);
        if (!h) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
        w->h = h;
        w->cap_h = cap;
    }
    size_t i = w->n_h++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!better(&b, &w->h[p])) break;
        w->h[i] = w->h[p];
        i = p;
    }
    w->h[i] = b;
    return LRGD_OK;
}

static bigram heap_pop(work *w)
{
    bigram top = w->h[0], last = w->h[--w->n_h];
    size_t i = 0, n = w->n_h;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && better(&w->h[c + 1], &w->h[c])) c++;
        if (!better(&w->h[c], &last)) break;
        w->h[i] = w->h[c];
        i = c;
    }
    if (n) w->h[i] = last;
    return top;
}

/* One symbol per UTF-8 sequence (by lead byte, clipped at the end). */
static lrgd_status make_symbols(work *w, size_t len, const char *s)
{
    w->n_s = 0;
    if (len > w->cap_s) {
        sym *ns = realloc(w->s, len * sizeof *ns);
        if (!ns) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
        w->s = ns;
        w->cap_s = len;
    }
    for (size_t off = 0; off < len;) {
        size_t n = lrgd_utf8_seq_len((unsigned char)s[off]);
        if (n > len - off) n = len - off;
        sym *y = &w->s[w->n_s];
        y->off = off;
        y->n = n;
        y->prev = (int)w->n_s - 1;
        off += n;
        y->next = off == len ? -1 : (int)w->n_s + 1;
        w->n_s++;
    }
    w->n_h = 0;
    return LRGD_OK;
}

static lrgd_status try_pair(const lrgd_tokenizer *t, work *w, const char *s, int l, int r)
{
    if (l < 0 || r < 0) return LRGD_OK;
    const sym *a = &w->s[l], *b = &w->s[r];
    double key;
    if (t->kind == LRGD_TOKENIZER_SPM) {
        int id = lrgd_token_find(t, s + a->off, a->n + b->n); /* the pieces are contiguous in s */
        if (id < 0) return LRGD_OK;
        key = t->score[id];
    } else {
        int rank = merge_rank(t, s + a->off, a->n, s + b->off, b->n);
        if (rank < 0) return LRGD_OK;
        key = -(double)rank;
    }
    return heap_push(w, (bigram){l, r, key, a->n, b->n});
}

static lrgd_status merge_all(const lrgd_tokenizer *t, work *w, const char *s)
{
    for (size_t i = 1; i < w->n_s; i++) LRGD_TRY(try_pair(t, w, s, (int)i - 1, (int)i));
    while (w->n_h) {
        bigram b = heap_pop(w);
        sym *L = &w->s[b.left], *R = &w->s[b.right];
        if (L->n == 0 || R->n == 0 || L->n != b.nl || R->n != b.nr) continue; /* stale */
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) w->s[R->next].prev = b.left;
        LRGD_TRY(try_pair(t, w, s, L->prev, b.left));
        LRGD_TRY(try_pair(t, w, s, b.left, L->next));
    }
    return LRGD_OK;
}

/* SPM on escaped text s[0..len). */
static lrgd_status spm_run(const lrgd_tokenizer *t, work *w, const char *s, size_t len)
{
    if (len == 0) return LRGD_OK;
    LRGD_TRY(make_symbols(w, len, s));
    LRGD_TRY(merge_all(t, w, s));
    for (int i = 0; i != -1; i = w->s[i].next) {
        const sym *y = &w->s[i];
        int id = lrgd_token_find(t, s + y->off, y->n);
        if (id >= 0) { LRGD_TRY(lrgd_ivec_push(&w->out, id)); continue; }
        for (size_t k = 0; k < y->n; k++) {
            int b = t->byte_tok[(unsigned char)s[y->off + k]];
            if (b < 0) b = t->unk;
            if (b < 0)
                return lrgd_fail(LRGD_E_UNSUPPORTED, "tokenize: byte 0x%02X has no token (no <0x%02X> piece, no "
                                                     "one-byte piece, no unknown token)",
                                 (unsigned char)s[y->off + k], (unsigned char)s[y->off + k]);
            LRGD_TRY(lrgd_ivec_push(&w->out, b));
        }
    }
    return LRGD_OK;
}

/* BPE on one byte-encoded word. */
static lrgd_status bpe_word(const lrgd_tokenizer *t, work *w, const char *s, size_t len)
{
    if (t->ignore_merges) {
        int id = lrgd_token_find(t, s, len);
        if (id >= 0) return lrgd_ivec_push(&w->out, id);
    }
    LRGD_TRY(make_symbols(w, len, s));
    LRGD_TRY(merge_all(t, w, s));
    for (size_t i = 0; i < w->n_s; i++) {
        const sym *y = &w->s[i];
        if (y->n == 0) continue;
        int id = lrgd_token_find(t, s + y->off, y->n);
        if (id >= 0) { LRGD_TRY(lrgd_ivec_push(&w->out, id)); continue; }
        /* Not a token: its bytes one by one where a one-byte piece exists
         * (llama.cpp drops the others). */
        for (size_t k = 0; k < y->n; k++) {
            int b = t->raw_byte_tok[(unsigned char)s[y->off + k]];
            if (b >= 0) LRGD_TRY(lrgd_ivec_push(&w->out, b));
        }
    }
    return LRGD_OK;
}

static lrgd_status reserve_tmp(work *w, size_t n)
{
    if (n <= w->cap_tmp) return LRGD_OK;
    char *p = realloc(w->tmp, n);
    if (!p) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    w->tmp = p;
    w->cap_tmp = n;
    return LRGD_OK;
}

static lrgd_status spm_fragment(const lrgd_tokenizer *t, work *w, const char *text, size_t len, int prefix)
{
    /* Escaping a space grows it from 1 to 3 bytes. */
    LRGD_TRY(reserve_tmp(w, 3 * (len + 1)));
    size_t n = 0;
    if (prefix) { memcpy(w->tmp, "\xe2\x96\x81", 3); n = 3; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { memcpy(w->tmp + n, "\xe2\x96\x81", 3); n += 3; }
        else w->tmp[n++] = text[i];
    }
    return spm_run(t, w, w->tmp, n);
}

static lrgd_status bpe_fragment(const lrgd_tokenizer *t, work *w, const char *text, size_t len)
{
    uint32_t *cp = malloc((len ? len : 1) * sizeof *cp);
    if (!cp) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t pos = 0; pos < len;) cp[n++] = lrgd_utf8_decode((const unsigned char *)text, len, &pos);
    lrgd_ivec lens = {0};
    lrgd_status st = lrgd_pretokenize(t->pre, cp, n, &lens);
    /* Each code point is at most 4 bytes, each byte at most 2 in the alphabet. */
    if (st == LRGD_OK) st = reserve_tmp(w, 8 * n + 8);
    size_t at = 0;
    for (size_t k = 0; k < lens.n && st == LRGD_OK; k++) {
        size_t m = 0;
        for (size_t i = at; i < at + (size_t)lens.v[k]; i++) {
            char u[4];
            size_t nb = lrgd_utf8_encode(cp[i], u);
            for (size_t j = 0; j < nb; j++) m += lrgd_utf8_encode(lrgd_byte_cp((unsigned char)u[j]), w->tmp + m);
        }
        at += (size_t)lens.v[k];
        st = bpe_word(t, w, w->tmp, m);
    }
    lrgd_ivec_free(&lens);
    free(cp);
    return st;
}

/* Text split around special tokens: tok >= 0 is a token, else text [off, off+len). */
typedef struct frag { int tok; size_t off, len; } frag;
typedef struct fragv { frag *v; size_t n, cap; } fragv;

static lrgd_status frag_push(fragv *f, frag x)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 16;
        frag *v = realloc(f->v, cap * sizeof *v);
        if (!v) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = x;
    return LRGD_OK;
}

static lrgd_status partition(const lrgd_tokenizer *t, const char *text, size_t len, int parse_special, fragv *out)
{
    out->n = 0;
    if (len == 0) return LRGD_OK;
    LRGD_TRY(frag_push(out, (frag){-1, 0, len}));
    fragv nx = {0};
    lrgd_status st = LRGD_OK;
    for (int k = 0; k < t->n_special && st == LRGD_OK; k++) {
        int id = t->special[k];
        if (!parse_special && t->type[id] != LRGD_TOK_USER) continue;
        const char *p = t->buf + t->off[id];
        size_t pl = t->len[id];
        nx.n = 0;
        for (size_t i = 0; i < out->n && st == LRGD_OK; i++) {
            frag f = out->v[i];
            if (f.tok >= 0) { st = frag_push(&nx, f); continue; }
            size_t a = f.off, e = f.off + f.len;
            for (;;) {
                const char *m = e - a >= pl ? memmem(text + a, e - a, p, pl) : NULL;
                if (!m) break;
                size_t at = (size_t)(m - text);
                if (at > a && st == LRGD_OK) st = frag_push(&nx, (frag){-1, a, at - a});
                if (st == LRGD_OK) st = frag_push(&nx, (frag){id, 0, 0});
                a = at + pl;
            }
            if (a < e && st == LRGD_OK) st = frag_push(&nx, (frag){-1, a, e - a});
        }
        fragv tmp = *out;
        *out = nx;
        nx = tmp;
    }
    free(nx.v);
    return st;
}

lrgd_status lrgd_tokenize(const lrgd_tokenizer *t, const char *text, size_t len, unsigned flags, int **ids, int *n)
{
    *ids = NULL;
    *n = 0;
    if (len >= ((size_t)1 << 28)) return lrgd_fail(LRGD_E_INVALID, "tokenize: text of %zu bytes (at most 2^28 - 1)", len);
    if (len && !text) return lrgd_fail(LRGD_E_INVALID, "tokenize: NULL text");
    work w = {0};
    fragv fr = {0};
    lrgd_status st = partition(t, text, len, (flags & LRGD_TOKENIZE_PARSE_SPECIAL) != 0, &fr);
    int add = (flags & LRGD_TOKENIZE_ADD_SPECIAL) != 0;
    if (st == LRGD_OK && add && t->add_bos && t->bos >= 0) st = lrgd_ivec_push(&w.out, t->bos);
    /* SPM: a space goes in front of the first text and of text that follows a special token. */
    int prev_special = !(flags & LRGD_TOKENIZE_NO_SPACE_PREFIX);
    for (size_t i = 0; i < fr.n && st == LRGD_OK; i++) {
        const frag *f = &fr.v[i];
        if (f->tok >= 0) {
            st = lrgd_ivec_push(&w.out, f->tok);
            prev_special = 1;
        } else if (t->kind == LRGD_TOKENIZER_SPM) {
            st = spm_fragment(t, &w, text + f->off, f->len, t->add_space_prefix && prev_special);
            prev_special = 0;
        } else {
            st = bpe_fragment(t, &w, text + f->off, f->len);
        }
    }
    if (st == LRGD_OK && add && t->add_eos && t->eos >= 0) st = lrgd_ivec_push(&w.out, t->eos);
    if (st == LRGD_OK && w.out.n > (size_t)1 << 30) st = lrgd_fail(LRGD_E_INVALID, "tokenize: too many tokens");
    if (st == LRGD_OK && !w.out.v) { /* non-NULL even when empty */
        st = lrgd_ivec_push(&w.out, 0);
        w.out.n = 0;
    }
    free(fr.v);
    free(w.s);
    free(w.h);
    free(w.tmp);
    if (st != LRGD_OK) {
        lrgd_ivec_free(&w.out);
        return st;
    }
    *ids = w.out.v;
    *n = (int)w.out.n;
    return LRGD_OK;
}

/* ---- detokenizing ------------------------------------------------------------------- */

typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static lrgd_status sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return LRGD_OK;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

lrgd_status lrgd_detokenize(const lrgd_tokenizer *t, const int *ids, int n, unsigned flags, char **text, size_t *len)
{
    *text = NULL;
    if (len) *len = 0;
    sbuf b = {0};
    lrgd_status st = sb_put(&b, "", 0);
    int strip = t->kind == LRGD_TOKENIZER_SPM && t->add_space_prefix && !(flags & LRGD_DETOKENIZE_KEEP_SPACE);
    for (int i = 0; i < n && st == LRGD_OK; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n) {
            st = lrgd_fail(LRGD_E_INVALID, "detokenize: token %d at position %d is outside the vocabulary of %d", id, i, t->n);
            break;
        }
        const char *p = t->buf + t->off[id];
        size_t pl = t->len[id], start = b.n;
        int ty = t->type[id];
        if (ty == LRGD_TOK_CONTROL || ty == LRGD_TOK_UNKNOWN) {
            if (flags & LRGD_DETOKENIZE_SPECIAL) st = sb_put(&b, p, pl);
            continue; /* rendering a control token does not end the leading-space strip */
        } else if (ty == LRGD_TOK_USER) {
            st = sb_put(&b, p, pl);
        } else if (ty == LRGD_TOK_BYTE && pl == 6 && !memcmp(p, "<0x", 3) && p[5] == '>' && hexval(p[3]) >= 0 &&
                   hexval(p[4]) >= 0) {
            char c = (char)(hexval(p[3]) * 16 + hexval(p[4]));
            st = sb_put(&b, &c, 1);
        } else if (ty == LRGD_TOK_NORMAL || ty == LRGD_TOK_BYTE) {
            if (t->kind == LRGD_TOKENIZER_SPM) {
                for (size_t k = 0; k < pl && st == LRGD_OK;) {
                    if (pl - k >= 3 && !memcmp(p + k, "\xe2\x96\x81", 3)) { st = sb_put(&b, " ", 1); k += 3; }
                    else { st = sb_put(&b, p + k, 1); k++; }
                }
            } else {
                for (size_t k = 0; k < pl && st == LRGD_OK;) {
                    size_t k0 = k;
                    uint32_t cp = lrgd_utf8_decode((const unsigned char *)p, pl, &k);
                    int byte = lrgd_cp_byte(cp);
                    if (byte >= 0) { char c = (char)byte; st = sb_put(&b, &c, 1); }
                    else st = sb_put(&b, p + k0, k - k0); /* outside the alphabet: as stored */
                }
            }
        } /* unused and undefined types render nothing */
        if (strip && b.n > start) {
            if (b.p[start] == ' ') {
                memmove(b.p + start, b.p + start + 1, b.n - start - 1);
                b.p[--b.n] = 0;
            }
            strip = 0;
        }
    }
    if (st != LRGD_OK) {
        free(b.p);
        return st;
    }
    *text = b.p;
    if (len) *len = b.n;
    return LRGD_OK;
}

/* ---- writing ------------------------------------------------------------------------- */

lrgd_status lrgd_tokenizer_write_gguf(lrgd_gguf_writer *w, const lrgd_tokenizer_spec *s)
{
    const char *model = s->vocab.model ? s->vocab.model : "llama";
    int bpe = !strcmp(model, "gpt2");
    if (!bpe && strcmp(model, "llama"))
        return lrgd_fail(LRGD_E_INVALID, "tokenizer spec: model \"%s\" (expected \"llama\" or \"gpt2\")", model);
    if (bpe && (s->n_merges < 1 || !s->merges)) return lrgd_fail(LRGD_E_INVALID, "tokenizer spec: \"gpt2\" needs merges");
    for (int i = 0; bpe && i < s->n_merges; i++)
        if (!s->merges[i] || !strchr(s->merges[i] + (s->merges[i][0] != 0), ' '))
            return lrgd_fail(LRGD_E_INVALID, "tokenizer spec: merge %d is not \"left right\"", i);
    LRGD_TRY(lrgd_gguf_write_vocab(w, &s->vocab));
    if (bpe) LRGD_TRY(lrgd_gguf_set_arr_str(w, "tokenizer.ggml.merges", s->merges, (uint64_t)s->n_merges));
    if (s->pre) LRGD_TRY(lrgd_gguf_set_str(w, "tokenizer.ggml.pre", s->pre));
    if (s->add_space_prefix >= 0) LRGD_TRY(lrgd_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", s->add_space_prefix));
    return LRGD_OK;
}
