/* Internal pieces of the text tokenizers: Unicode classes, lenient UTF-8,
 * GPT-2's byte alphabet and the BPE pre-tokenizers. */
#ifndef LRGD_TEXT_IMPL_H
#define LRGD_TEXT_IMPL_H

#include "core/core.h"

/* Major general category of a code point (unicode_data.c, generated). */
enum {
    LRGD_UC_UNDEF = 0, /* Cn: unassigned (and anything >= 0x110000) */
    LRGD_UC_NUMBER,    /* N */
    LRGD_UC_LETTER,    /* L */
    LRGD_UC_SEPARATOR, /* Z */
    LRGD_UC_MARK,      /* M */
    LRGD_UC_PUNCT,     /* P */
    LRGD_UC_SYMBOL,    /* S */
    LRGD_UC_CONTROL    /* Cc, Cf, Co, Cs */
};
extern const char lrgd_unicode_version[];
extern const int lrgd_uc_n_ranges;
extern const uint32_t lrgd_uc_start[];
extern const uint8_t lrgd_uc_class[];

int lrgd_uc_class_of(uint32_t cp);
/* Unicode White_Space (PropList.txt): what the pre-tokenizers read as \s. */
int lrgd_uc_is_space(uint32_t cp);

/* Bytes in the UTF-8 sequence a lead byte announces, from its high nibble
 * alone (continuation bytes count 1, 0xF8..0xFF count 4), as llama.cpp
 * splits SPM/BPE symbols. */
static inline size_t lrgd_utf8_seq_len(unsigned char c)
{
    static const unsigned char len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}
/* Decode the code point at s[*pos] leniently, as llama.cpp does: a lead byte
 * whose continuation bytes are missing or wrong, a stray continuation byte
 * or 0xF8..0xFF gives U+FFFD and consumes one byte; overlong forms and
 * surrogates decode to their value; 4-byte forms above U+10FFFF give U+FFFD
 * (llama.cpp would throw there). */
uint32_t lrgd_utf8_decode(const unsigned char *s, size_t len, size_t *pos);
/* Encode cp (<= 0x10FFFF) into out[0..4); returns the byte count. */
size_t lrgd_utf8_encode(uint32_t cp, char *out);

/* GPT-2's byte-to-unicode alphabet: the printable bytes 0x21..0x7E,
 * 0xA1..0xAC and 0xAE..0xFF stand for themselves; the other 68 bytes, in
 * increasing order, become U+0100.. U+0143. lrgd_cp_byte inverts it (-1 for a
 * code point outside the alphabet). */
static inline uint32_t lrgd_byte_cp(unsigned char b)
{
    if (b <= 0x20) return 0x100u + b;                 /* 33 control/space bytes */
    if (b >= 0x7F && b <= 0xA0) return 0x121u + (b - 0x7Fu); /* 34 more */
    if (b == 0xAD) return 0x143u;
    return b;
}
static inline int lrgd_cp_byte(uint32_t cp)
{
    if (cp >= 0x100 && cp <= 0x120) return (int)(cp - 0x100);
    if (cp >= 0x121 && cp <= 0x142) return (int)(0x7F + cp - 0x121);
    if (cp == 0x143) return 0xAD;
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    return -1;
}

/* ---- BPE pre-tokenizers --------------------------------------------------- */

typedef enum lrgd_pretok {
    LRGD_PRE_DEFAULT = 0,
    LRGD_PRE_GPT2,
    LRGD_PRE_LLAMA3,
    LRGD_PRE_QWEN2,
    LRGD_PRE_STARCODER
} lrgd_pretok;

/* Growable list of ints (word lengths, token ids). */
typedef struct lrgd_ivec {
    int *v;
    size_t n, cap;
} lrgd_ivec;
lrgd_status lrgd_ivec_push(lrgd_ivec *a, int x);
void lrgd_ivec_free(lrgd_ivec *a);

/* Split code points cp[0..n) into words; *lens gets the word lengths in code
 * points (summing to n). */
lrgd_status lrgd_pretokenize(lrgd_pretok kind, const uint32_t *cp, size_t n, lrgd_ivec *lens);

#endif
