/* BPE pre-tokenizers: split text (as code points) into the words that BPE
 * merges within. Each split runs inside the pieces of the one before, and
 * both what a pattern matches and the text between matches become pieces,
 * so a pattern never joins across an earlier boundary. The patterns and the
 * way \s and ' ?' are read follow llama.cpp (see lrgd/tokenizer.h); the
 * loops below are hand-written matchers of those patterns, one branch per
 * alternative, tried in the pattern's order. */
#include "text/text_impl.h"

#include <stdlib.h>

enum { F_ANY = 1, F_LETTER = 2, F_NUMBER = 4, F_SPACE = 8 };

typedef struct split {
    const uint32_t *cp;
    const uint8_t *fl; /* flags of every code point */
    size_t ini, end;   /* the piece being split */
    size_t prev;       /* end of the last word emitted */
    lrgd_ivec *out;
    lrgd_status st;
} split;

/* Flags of position p, 0 outside the piece (the patterns never look past it). */
static inline unsigned F(const split *s, size_t p) { return p >= s->ini && p < s->end ? s->fl[p] : 0; }
static inline uint32_t CP(const split *s, size_t p) { return p >= s->ini && p < s->end ? s->cp[p] : 0xFFFFFFFFu; }

static void emit(split *s, size_t end)
{
    if (end > s->prev && s->st == LRGD_OK) s->st = lrgd_ivec_push(s->out, (int)(end - s->prev));
    s->prev = end;
}

static inline uint32_t lower_ascii(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* 's|'t|'re|'ve|'m|'ll|'d at pos (case-insensitive if ci): its length or 0. */
static size_t contraction(const split *s, size_t pos, int ci)
{
    if (s->cp[pos] != '\'' || pos + 1 >= s->end) return 0;
    uint32_t a = s->cp[pos + 1];
    if (ci) a = lower_ascii(a);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= s->end) return 0;
    uint32_t b = s->cp[pos + 2];
    if (ci) b = lower_ascii(b);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(split *s)
{
    size_t pos = s->ini;
    while (pos < s->end) {
        uint32_t c = s->cp[pos];
        size_t k = contraction(s, pos, 0);
        if (k) { pos += k; emit(s, pos); continue; }
        unsigned f2 = c == ' ' ? F(s, pos + 1) : F(s, pos);
        if (f2 & F_LETTER) {
            pos += c == ' ';
            while (f2 & F_LETTER) f2 = F(s, ++pos);
            emit(s, pos);
            continue;
        }
        if (f2 & F_NUMBER) {
            pos += c == ' ';
            while (f2 & F_NUMBER) f2 = F(s, ++pos);
            emit(s, pos);
            continue;
        }
        if (!(f2 & (F_SPACE | F_LETTER | F_NUMBER)) && f2) {
            pos += c == ' ';
            while (!(f2 & (F_SPACE | F_LETTER | F_NUMBER)) && f2) f2 = F(s, ++pos);
            emit(s, pos);
            continue;
        }
        size_t nws = 0;
        while (F(s, pos + nws) & F_SPACE) nws++;
        if (nws > 1 && pos + nws < s->end) { /* \s+(?!\S): leave the last space to the next word */
            pos += nws - 1;
            emit(s, pos);
            continue;
        }
        if (nws > 0) { pos += nws; emit(s, pos); continue; }
        emit(s, ++pos);
    }
}

/* Llama 3 (digits = 3) and Qwen2 (digits = 1):
 * (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,digits}|
 *  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static void split_llama3(split *s, int digits)
{
    size_t pos = s->ini;
    while (pos < s->end) {
        uint32_t c = s->cp[pos];
        unsigned f = F(s, pos);
        size_t k = contraction(s, pos, 1);
        if (k) { pos += k; emit(s, pos); continue; }
        if (!(c == '\r' || c == '\n' || (f & F_NUMBER)) && ((f & F_LETTER) || (F(s, pos + 1) & F_LETTER))) {
            pos++;
            while (F(s, pos) & F_LETTER) pos++;
            emit(s, pos);
            continue;
        }
        if (f & F_NUMBER) {
            size_t ini = pos;
            while (F(s, pos) & F_NUMBER) {
                if (++pos - ini >= (size_t)digits) { emit(s, pos); ini = pos; }
            }
            emit(s, pos);
            continue;
        }
        unsigned f2 = c == ' ' ? F(s, pos + 1) : f;
        if (!(f2 & (F_SPACE | F_LETTER | F_NUMBER)) && f) {
            pos += c == ' ';
            while (!(f2 & (F_SPACE | F_LETTER | F_NUMBER)) && f2) f2 = F(s, ++pos);
            uint32_t c2 = CP(s, pos);
            while (c2 == '\r' || c2 == '\n') c2 = CP(s, ++pos);
            emit(s, pos);
            continue;
        }
        size_t nws = 0, last_rn = 0;
        while (F(s, pos + nws) & F_SPACE) {
            uint32_t c2 = s->cp[pos + nws];
            if (c2 == '\r' || c2 == '\n') last_rn = pos + nws + 1;
            nws++;
        }
        if (last_rn > 0) { pos = last_rn; emit(s, pos); continue; } /* \s*[\r\n]+ */
        if (nws > 1 && pos + nws < s->end) {
            pos += nws - 1;
            emit(s, pos);
            continue;
        }
        if (nws > 0) { pos += nws; emit(s, pos); continue; }
        emit(s, ++pos);
    }
}

/* Classes of the single-class patterns, read as llama.cpp reads them: ASCII
 * code points by their ASCII class, others by their Unicode category unless
 * they are White_Space. */
static int is_punct_default(const split *s, size_t p) /* [\p{P}$+<=>^~|] */
{
    uint32_t c = s->cp[p];
    if (c < 128) return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x5F) ||
                        (c >= 0x7B && c <= 0x7E);
    return !(s->fl[p] & F_SPACE) && lrgd_uc_class_of(c) == LRGD_UC_PUNCT;
}
static int is_number_class(const split *s, size_t p) /* \p{N} */
{
    uint32_t c = s->cp[p];
    if (c < 128) return c >= '0' && c <= '9';
    return !(s->fl[p] & F_SPACE) && (s->fl[p] & F_NUMBER);
}

/* [class]+ (runs) or [class] (each alone) */
static void split_class(split *s, int (*in)(const split *, size_t), int runs)
{
    size_t pos = s->ini;
    while (pos < s->end) {
        if (!in(s, pos)) { pos++; continue; }
        emit(s, pos); /* the text before the match */
        size_t e = pos + 1;
        if (runs) while (e < s->end && in(s, e)) e++;
        emit(s, e);
        pos = e;
    }
    emit(s, s->end);
}

/* [0-9][0-9][0-9], leftmost matches without overlap */
static void split_digit3(split *s)
{
    size_t pos = s->ini;
    while (pos < s->end) {
        if (pos + 3 <= s->end) {
            int ok = 1;
            for (int k = 0; k < 3; k++) ok &= s->cp[pos + k] >= '0' && s->cp[pos + k] <= '9';
            if (ok) {
                emit(s, pos);
                emit(s, pos + 3);
                pos += 3;
                continue;
            }
        }
        pos++;
    }
    emit(s, s->end);
}

enum { P_GPT2, P_LLAMA3, P_QWEN2, P_PUNCT_RUNS, P_NUM_RUNS, P_NUM_EACH, P_DIGIT3 };

/* One pattern over every piece of in, into out. */
static lrgd_status pass(int pattern, const uint32_t *cp, const uint8_t *fl, const lrgd_ivec *in, lrgd_ivec *out)
{
    split s = {cp, fl, 0, 0, 0, out, LRGD_OK};
    out->n = 0;
    size_t start = 0;
    for (size_t i = 0; i < in->n && s.st == LRGD_OK; i++) {
        s.ini = s.prev = start;
        s.end = start + (size_t)in->v[i];
        switch (pattern) {
        case P_GPT2: split_gpt2(&s); break;
        case P_LLAMA3: split_llama3(&s, 3); break;
        case P_QWEN2: split_llama3(&s, 1); break;
        case P_PUNCT_RUNS: split_class(&s, is_punct_default, 1); break;
        case P_NUM_RUNS: split_class(&s, is_number_class, 1); break;
        case P_NUM_EACH: split_class(&s, is_number_class, 0); break;
        case P_DIGIT3: split_digit3(&s); break;
        }
        start = s.end;
    }
    return s.st;
}

lrgd_status lrgd_pretokenize(lrgd_pretok kind, const uint32_t *cp, size_t n, lrgd_ivec *lens)
{
    lens->n = 0;
    if (n == 0) return LRGD_OK;
    if (n > (size_t)1 << 30) return lrgd_fail(LRGD_E_INVALID, "pre-tokenizer: text of %zu code points is too long", n);
    static const int chains[][4] = {
        [LRGD_PRE_DEFAULT] = {P_PUNCT_RUNS, P_GPT2, P_NUM_RUNS, P_DIGIT3},
        [LRGD_PRE_GPT2] = {P_GPT2, -1, -1, -1},
        [LRGD_PRE_LLAMA3] = {P_LLAMA3, -1, -1, -1},
        [LRGD_PRE_QWEN2] = {P_QWEN2, -1, -1, -1},
        [LRGD_PRE_STARCODER] = {P_NUM_EACH, P_GPT2, -1, -1},
    };
    uint8_t *fl = malloc(n);
    lrgd_ivec a = {0}, b = {0};
    lrgd_status st = fl ? lrgd_ivec_push(&a, (int)n) : lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n && st == LRGD_OK; i++) {
        int c = lrgd_uc_class_of(cp[i]);
        fl[i] = (uint8_t)(F_ANY | (c == LRGD_UC_LETTER ? F_LETTER : 0) | (c == LRGD_UC_NUMBER ? F_NUMBER : 0) |
                          (lrgd_uc_is_space(cp[i]) ? F_SPACE : 0));
    }
    for (int k = 0; k < 4 && st == LRGD_OK && chains[kind][k] >= 0; k++) {
        st = pass(chains[kind][k], cp, fl, &a, &b);
        lrgd_ivec t = a;
        a = b;
        b = t;
    }
    if (st == LRGD_OK) {
        lrgd_ivec_free(lens);
        *lens = a;
        a.v = NULL;
    }
    lrgd_ivec_free(&a);
    lrgd_ivec_free(&b);
    free(fl);
    return st;
}
