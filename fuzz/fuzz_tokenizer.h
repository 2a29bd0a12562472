/* Small fixed vocabularies for the tokenizer harnesses: SentencePiece-style
 * (byte tokens, a few scored merges, a user-defined token) and byte-level
 * BPE (GPT-2's 256-character alphabet, a few merges) for each pre-tokenizer.
 * Written with lrgd_tokenizer_write_gguf, read back like any GGUF file. */
#ifndef LRGD_FUZZ_TOKENIZER_H
#define LRGD_FUZZ_TOKENIZER_H

#include "fuzz.h"
#include "lrgd/gguf.h"
#include "lrgd/tokenizer.h"

#define FUZZ_N_TOK 7
/* 0: SPM, 1: SPM with a user-defined token, 2..6: BPE with these pre-tokenizers */
static const char *const k_fuzz_pre[FUZZ_N_TOK] = {NULL, NULL, "default", "gpt-2", "llama3", "qwen2", "starcoder"};
#define FUZZ_USER_TOKEN "<|item|>"

static inline size_t fuzz_utf8(unsigned cp, char *out)
{
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xc0 | cp >> 6); out[1] = (char)(0x80 | (cp & 63)); return 2; }
    out[0] = (char)(0xe0 | cp >> 12);
    out[1] = (char)(0x80 | ((cp >> 6) & 63));
    out[2] = (char)(0x80 | (cp & 63));
    return 3;
}

/* GPT-2's byte -> code point table: printable Latin-1 bytes stand for
 * themselves, the others are moved to 256 and up in byte order. */
static inline void fuzz_gpt2_alphabet(unsigned cp[256])
{
    unsigned extra = 0;
    for (unsigned b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        cp[b] = printable ? b : 256 + extra++;
    }
}

/* The vocabulary `which` as GGUF bytes (free() them). */
static inline void fuzz_tokenizer_gguf(int which, void **data, size_t *size)
{
    char *pieces[400];
    float scores[400];
    int32_t types[400];
    int n = 0;
    const char *merges[16];
    int n_merges = 0;
#define ADD(s, sc, ty) do { pieces[n] = strdup(s); scores[n] = (sc); types[n] = (ty); n++; } while (0)
    if (which < 2) {
        ADD("<unk>", 0, LRGD_TOK_UNKNOWN);
        ADD("<s>", 0, LRGD_TOK_CONTROL);
        ADD("</s>", 0, LRGD_TOK_CONTROL);
        for (int b = 0; b < 256; b++) {
            char hex[8];
            snprintf(hex, sizeof hex, "<0x%02X>", b);
            ADD(hex, 0, LRGD_TOK_BYTE);
        }
        static const char *normal[] = {"\342\226\201", "\342\226\201t", "\342\226\201th", "\342\226\201the", "e", "h",
                                       "t", "he", "th", "\342\226\201a", "a", "n", "an", "\342\226\201an", "d",
                                       "nd", "\342\226\201and", "\xc3\xa9", "1", "12", "\xe3\x81\xae", "<"};
        for (size_t i = 0; i < sizeof normal / sizeof normal[0]; i++)
            ADD(normal[i], -(float)strlen(normal[i]) / 2 - (float)i / 64, LRGD_TOK_NORMAL);
        if (which == 1) ADD(FUZZ_USER_TOKEN, 0, LRGD_TOK_USER);
    } else {
        unsigned cp[256];
        fuzz_gpt2_alphabet(cp);
        for (int b = 0; b < 256; b++) {
            char s[4] = {0};
            fuzz_utf8(cp[b], s);
            ADD(s, 0, LRGD_TOK_NORMAL);
        }
        static const char *m[] = {"\304\240 t", "h e", "\304\240t he", "i n", "\304\240 a", "a n", "\304\240a n",
                                  "1 2", "12 3", "' s"};
        static const char *merged[] = {"\304\240t", "he", "\304\240the", "in", "\304\240a", "an",
                                       "\304\240an", "12", "123", "'s"};
        for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
            merges[n_merges++] = m[i];
            ADD(merged[i], 0, LRGD_TOK_NORMAL);
        }
        ADD("<|endoftext|>", 0, LRGD_TOK_CONTROL);
    }
#undef ADD
    lrgd_tokenizer_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.vocab.model = which < 2 ? "llama" : "gpt2";
    spec.vocab.n = n;
    spec.vocab.pieces = (const char *const *)pieces;
    spec.vocab.scores = scores;
    spec.vocab.types = types;
    spec.vocab.bos = which < 2 ? 1 : n - 1;
    spec.vocab.eos = which < 2 ? 2 : n - 1;
    spec.vocab.unk = which < 2 ? 0 : -1;
    spec.vocab.pad = -1;
    spec.merges = merges;
    spec.n_merges = n_merges;
    spec.pre = k_fuzz_pre[which];
    spec.add_space_prefix = which < 2 ? 1 : -1;
    lrgd_gguf_writer *w;
    FUZZ_CHECK(lrgd_gguf_writer_new(&w) == LRGD_OK);
    lrgd_status st = lrgd_tokenizer_write_gguf(w, &spec);
    if (st != LRGD_OK) fprintf(stderr, "fuzz tokenizer %d: %s\n", which, lrgd_last_error());
    FUZZ_CHECK(st == LRGD_OK);
    for (int i = 0; i < n; i++) free(pieces[i]);
    FUZZ_CHECK(lrgd_gguf_write_mem(w, data, size) == LRGD_OK);
    lrgd_gguf_writer_free(w);
}

static inline lrgd_tokenizer *fuzz_make_tokenizer(int which)
{
    void *data;
    size_t size;
    fuzz_tokenizer_gguf(which, &data, &size);
    lrgd_gguf *g;
    lrgd_status st;
    FUZZ_CHECK(lrgd_gguf_parse(data, size, "fuzz-vocab", &g) == LRGD_OK);
    lrgd_tokenizer *t;
    st = lrgd_tokenizer_from_gguf(g, &t);
    if (st != LRGD_OK) fprintf(stderr, "fuzz tokenizer %d: %s\n", which, lrgd_last_error());
    FUZZ_CHECK(st == LRGD_OK);
    lrgd_gguf_free(g);
    free(data);
    return t;
}

#endif
