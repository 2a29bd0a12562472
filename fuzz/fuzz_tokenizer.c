/* Text tokenizers (SentencePiece-style and byte-level BPE with each
 * pre-tokenizer) on arbitrary text: ids in range, a bounded number of them,
 * deterministic, and for valid UTF-8
 * detokenize(tokenize(s)) == s as lrgd/tokenizer.h promises. The first input
 * byte picks the vocabulary (low 3 bits, modulo 7) and the flags (bits 3-5);
 * the rest is the text. Vocabularies from hostile files are fuzzed through
 * fuzz_gguf. */
#include "fuzz_tokenizer.h"

static lrgd_tokenizer *g_tok[FUZZ_N_TOK];

/* Strict UTF-8: shortest forms, no surrogates, at most U+10FFFF. */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], need, cp;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) need = 1, cp = c & 31;
        else if (c >= 0xe0 && c <= 0xef) need = 2, cp = c & 15;
        else if (c >= 0xf0 && c <= 0xf4) need = 3, cp = c & 7;
        else return 0;
        if (n - i <= need) return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 63);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init_once();
    if (!g_tok[0])
        for (int i = 0; i < FUZZ_N_TOK; i++) g_tok[i] = fuzz_make_tokenizer(i);
    if (size < 1 || size > 4096) return 0;
    int which = (data[0] & 7) % FUZZ_N_TOK;
    unsigned flags = (data[0] >> 3) & 7;
    const lrgd_tokenizer *t = g_tok[which];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int *ids, n, *ids2, n2;
    lrgd_status st = lrgd_tokenize(t, text, len, flags, &ids, &n);
    if (st != LRGD_OK) {
        /* every byte has a token in these vocabularies: nothing to refuse */
        fprintf(stderr, "tokenize: %s\n", lrgd_last_error());
        FUZZ_CHECK(st == LRGD_OK);
    }
    /* one token per byte, or three for a bad UTF-8 byte read as U+FFFD in BPE */
    FUZZ_CHECK(ids != NULL && n >= 0 && (size_t)n <= 3 * len + 3);
    int nv = lrgd_tokenizer_n_vocab(t);
    for (int i = 0; i < n; i++) FUZZ_CHECK(ids[i] >= 0 && ids[i] < nv);
    FUZZ_CHECK(lrgd_tokenize(t, text, len, flags, &ids2, &n2) == LRGD_OK);
    FUZZ_CHECK(n2 == n && memcmp(ids, ids2, (size_t)n * sizeof *ids) == 0);
    free(ids2);

    int spm = lrgd_tokenizer_kind_of(t) == LRGD_TOKENIZER_SPM;
    unsigned dflags = (flags & LRGD_TOKENIZE_NO_SPACE_PREFIX) ? LRGD_DETOKENIZE_KEEP_SPACE : 0;
    char *back;
    size_t blen;
    FUZZ_CHECK(lrgd_detokenize(t, ids, n, dflags, &back, &blen) == LRGD_OK);
    FUZZ_CHECK(back[blen] == 0);
    /* The promised round trip: valid UTF-8, no special text parsed, no
     * user-defined token text, and in SPM no U+2581. */
    int round = valid_utf8((const unsigned char *)text, len) && !(flags & LRGD_TOKENIZE_PARSE_SPECIAL) &&
                !memmem(text, len, FUZZ_USER_TOKEN, strlen(FUZZ_USER_TOKEN)) &&
                !(spm && memmem(text, len, "\xe2\x96\x81", 3));
    if (round && (blen != len || memcmp(back, text, len) != 0)) {
        fprintf(stderr, "round trip (vocabulary %d, flags %u): %zu bytes in, %zu out\n", which, flags, len, blen);
        FUZZ_CHECK(!"detokenize(tokenize(s)) == s");
    }
    free(back);
    /* an id outside the vocabulary is refused, not read */
    int bad = nv;
    FUZZ_CHECK(lrgd_detokenize(t, &bad, 1, 0, &back, &blen) == LRGD_E_INVALID);
    FUZZ_CHECK(lrgd_token_find(t, text, len) < nv);
    free(ids);
    return 0;
}
