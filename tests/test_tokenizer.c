/* Tokenizers from tokenizer.ggml.*: hand-made SentencePiece and BPE
 * vocabularies whose tokenizations are worked out by hand (merges by score
 * and by rank, ties leftmost, byte fallback, merges whose result is not a
 * token, user-defined and control tokens), the pre-tokenizer splits on
 * hand-split strings, round trips and no crash on tricky strings with
 * vocabularies learned on Beauty titles, and refused vocabularies.
 *
 * Tool modes (used by tests/cli_tokenizer_llamacpp.sh):
 *   test_tokenizer --make-models DIR [ITEMS_TSV]   the learned vocabularies
 *       as tiny random models DIR/{spm,spm-noprefix,bpe-default,bpe-gpt2,
 *       bpe-llama3,bpe-qwen2,bpe-smollm}.gguf
 *   test_tokenizer --tokenize MODEL HEXFILE OUT    one line of ids per input
 *       line (each line: the text's bytes in hex; empty line = "") */
#include "test.h"
#include "text_fixtures.h"

#include <unistd.h>

/* ---- building tokenizers in memory -------------------------------------------- */

static lrgd_tokenizer *from_spec(const lrgd_tokenizer_spec *spec)
{
    lrgd_gguf_writer *w = NULL;
    lrgd_gguf *g = NULL;
    lrgd_tokenizer *t = NULL;
    void *data = NULL;
    size_t size = 0;
    CHECK_OK(lrgd_gguf_writer_new(&w));
    CHECK_OK(lrgd_tokenizer_write_gguf(w, spec));
    CHECK_OK(lrgd_gguf_write_mem(w, &data, &size));
    CHECK_OK(lrgd_gguf_parse(data, size, "mem.gguf", &g));
    if (g) CHECK_OK(lrgd_tokenizer_from_gguf(g, &t));
    lrgd_gguf_free(g);
    lrgd_gguf_writer_free(w);
    free(data);
    return t;
}

/* Tokenize and compare with expected ids (terminated by -1). */
static void expect_ids(const lrgd_tokenizer *t, const char *text, size_t len, unsigned flags, const int *want,
                       const char *what)
{
    int *ids = NULL, n = 0, nw = 0;
    while (want[nw] >= 0) nw++;
    CHECK_OK(lrgd_tokenize(t, text, len, flags, &ids, &n));
    int same = n == nw && (n == 0 || memcmp(ids, want, (size_t)n * sizeof *ids) == 0);
    if (!same) {
        fprintf(stderr, "  %s: got", what);
        for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, ", want");
        for (int i = 0; i < nw; i++) fprintf(stderr, " %d", want[i]);
        fputc('\n', stderr);
    }
    CHECK_MSG(same, "%s", what);
    free(ids);
}
#define EXPECT(t, text, flags, ...) expect_ids(t, text, strlen(text), flags, (const int[]){__VA_ARGS__, -1}, text)
#define EXPECT_NONE(t, text, flags) expect_ids(t, text, strlen(text), flags, (const int[]){-1}, text)

static void expect_roundtrip(const lrgd_tokenizer *t, const char *text, size_t len, unsigned tflags, const char *what)
{
    int *ids = NULL, n = 0;
    char *back = NULL;
    size_t blen = 0;
    CHECK_OK(lrgd_tokenize(t, text, len, tflags, &ids, &n));
    CHECK_OK(lrgd_detokenize(t, ids, n, 0, &back, &blen));
    CHECK_MSG(back && blen == len && memcmp(back, text, len) == 0, "round trip of %s: got '%s'", what, back ? back : "(null)");
    for (int i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < lrgd_tokenizer_n_vocab(t));
    free(ids);
    free(back);
}

/* ---- hand-made SentencePiece vocabulary ------------------------------------------ */

enum { S_SP = 259, S_A, S_B, S_C, S_AB, S_BC, S_ABC, S_SPA, S_SPABC, S_CC, S_SPB, S_CA, S_ITEM, S_N };

static lrgd_tokenizer *hand_spm(int add_space_prefix)
{
    static char bytes[256][8];
    const char *pieces[S_N];
    float scores[S_N];
    int32_t types[S_N];
    pieces[0] = "<unk>", types[0] = LRGD_TOK_UNKNOWN;
    pieces[1] = "<s>", types[1] = LRGD_TOK_CONTROL;
    pieces[2] = "</s>", types[2] = LRGD_TOK_CONTROL;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        pieces[3 + b] = bytes[b];
        types[3 + b] = LRGD_TOK_BYTE;
    }
    for (int i = 0; i < S_N; i++) scores[i] = 0;
    static const struct { int id; const char *p; float s; } normal[] = {
        {S_SP, "\xe2\x96\x81", -10}, {S_A, "a", -11}, {S_B, "b", -12}, {S_C, "c", -13}, {S_AB, "ab", -1},
        {S_BC, "bc", -2}, {S_ABC, "abc", -3}, {S_SPA, "\342\226\201a", -4}, {S_SPABC, "\342\226\201abc", -0.5f},
        {S_CC, "cc", -1}, {S_SPB, "\342\226\201b", -6}, {S_CA, "ca", -1},
    };
    for (size_t i = 0; i < sizeof normal / sizeof normal[0]; i++) {
        pieces[normal[i].id] = normal[i].p;
        scores[normal[i].id] = normal[i].s;
        types[normal[i].id] = LRGD_TOK_NORMAL;
    }
    pieces[S_ITEM] = "<item>", types[S_ITEM] = LRGD_TOK_USER;
    lrgd_tokenizer_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.vocab = (lrgd_gguf_vocab){"llama", S_N, pieces, scores, types, 1, 2, 0, -1, -1, -1, -1, -1, -1};
    spec.add_space_prefix = add_space_prefix;
    return from_spec(&spec);
}

static void test_spm_hand(void)
{
    lrgd_tokenizer *t = hand_spm(-1); /* key absent: llama.cpp's default, space prefix on */
    if (!t) return;
    CHECK(lrgd_tokenizer_kind_of(t) == LRGD_TOKENIZER_SPM);
    CHECK(lrgd_tokenizer_add_space_prefix(t) == 1 && lrgd_tokenizer_add_bos(t) == 1 && lrgd_tokenizer_add_eos(t) == 0);
    CHECK(lrgd_tokenizer_bos(t) == 1 && lrgd_tokenizer_eos(t) == 2 && lrgd_tokenizer_unk(t) == 0);
    /* "▁abc": ab (-1) first, then abc (-3), then ▁abc (-0.5); ▁a (-4) and bc (-2) go stale. */
    EXPECT(t, "abc", 0, S_SPABC);
    /* without the prefix: ab, then abc */
    EXPECT(t, "abc", LRGD_TOKENIZE_NO_SPACE_PREFIX, S_ABC);
    /* equal scores: the leftmost pair first ("ccc" -> cc c, never c cc; "cab" -> ca b) */
    EXPECT(t, "ccc", LRGD_TOKENIZE_NO_SPACE_PREFIX, S_CC, S_C);
    EXPECT(t, "cab", LRGD_TOKENIZE_NO_SPACE_PREFIX, S_CA, S_B);
    /* byte fallback for a character with no piece: U+00E9 = C3 A9 */
    EXPECT(t, "\xc3\xa9", 0, S_SP, 3 + 0xC3, 3 + 0xA9);
    /* spaces are pieces too: "▁a▁▁b" -> ▁a ▁ ▁b */
    EXPECT(t, "a  b", 0, S_SPA, S_SP, S_SPB);
    /* a user-defined token is matched first; the text after it gets the prefix again */
    EXPECT(t, "a<item>b", 0, S_SPA, S_ITEM, S_SPB);
    /* control text is text unless asked: "<s>" as bytes, or as the token */
    EXPECT(t, "<s>", 0, S_SP, 3 + '<', 3 + 's', 3 + '>');
    EXPECT(t, "<s>", LRGD_TOKENIZE_PARSE_SPECIAL, 1);
    EXPECT(t, "a", LRGD_TOKENIZE_ADD_SPECIAL, 1, S_SPA);
    EXPECT_NONE(t, "", 0);
    EXPECT(t, "", LRGD_TOKENIZE_ADD_SPECIAL, 1); /* llama.cpp: encode('') with BOS is [BOS] */
    /* invalid UTF-8 and NUL go through byte fallback unchanged */
    /* (0xFF announces 4 bytes: the three bytes are one symbol, emitted as bytes) */
    expect_ids(t, "\xff\x00" "a", 3, LRGD_TOKENIZE_NO_SPACE_PREFIX, (const int[]){3 + 0xFF, 3 + 0x00, 3 + 'a', -1},
               "ff 00 a");
    expect_ids(t, "a\x80\x00", 3, LRGD_TOKENIZE_NO_SPACE_PREFIX, (const int[]){S_A, 3 + 0x80, 3 + 0x00, -1}, "a 80 00");

    const char *rt[] = {"abc", "a  b", " leading", "trailing  ", "\xc3\xa9t\xc3\xa9", "\n\tx\r\n", "ccc cab",
                        "\xf0\x9f\x98\x80 emoji"};
    for (size_t i = 0; i < sizeof rt / sizeof rt[0]; i++) expect_roundtrip(t, rt[i], strlen(rt[i]), 0, rt[i]);
    expect_roundtrip(t, "\xc3(x\x80\x80" "abc\xff", 9, 0, "invalid UTF-8");
    expect_roundtrip(t, "abc", 3, LRGD_TOKENIZE_ADD_SPECIAL, "abc with BOS");

    /* detokenize: control tokens render nothing unless asked; ids outside the vocabulary are refused */
    int ids[] = {1, S_SPA, S_SPB, 2};
    char *s = NULL;
    size_t n;
    CHECK_OK(lrgd_detokenize(t, ids, 4, 0, &s, &n));
    CHECK(s && !strcmp(s, "a b"));
    free(s);
    CHECK_OK(lrgd_detokenize(t, ids, 4, LRGD_DETOKENIZE_SPECIAL | LRGD_DETOKENIZE_KEEP_SPACE, &s, &n));
    CHECK(s && !strcmp(s, "<s> a b</s>"));
    free(s);
    int bad[] = {S_A, S_N};
    CHECK(lrgd_detokenize(t, bad, 2, 0, &s, &n) == LRGD_E_INVALID);
    CHECK(strstr(lrgd_last_error(), "outside the vocabulary") != NULL);
    CHECK(lrgd_token_find(t, "ab", 2) == S_AB && lrgd_token_find(t, "abx", 3) == -1);
    size_t pl;
    CHECK(!strcmp(lrgd_token_piece(t, S_ITEM, &pl), "<item>") && pl == 6 && lrgd_token_type(t, S_ITEM) == LRGD_TOK_USER);
    CHECK(lrgd_token_piece(t, -1, &pl) == NULL && lrgd_token_piece(t, S_N, NULL) == NULL);
    lrgd_tokenizer_free(t);

    t = hand_spm(0); /* add_space_prefix = false */
    if (!t) return;
    CHECK(lrgd_tokenizer_add_space_prefix(t) == 0);
    EXPECT(t, "abc", 0, S_ABC);
    EXPECT(t, " abc", 0, S_SPABC);
    expect_roundtrip(t, " a b", 4, 0, "no prefix");
    lrgd_tokenizer_free(t);
}

/* ---- hand-made BPE vocabulary -------------------------------------------------------- */

enum { B_A, B_B, B_C, B_G, B_AB, B_GA, B_GAB, B_BC, B_BANG, B_NL, B_EOS, B_N };

static lrgd_tokenizer *hand_bpe(const char *pre)
{
    const char *pieces[B_N] = {"a", "b", "c", "\xc4\xa0" /* Ġ: space */, "ab", "\304\240a", "\304\240ab", "bc", "!",
                               "\xc4\x8a" /* Ċ: newline */, "<|eos|>"};
    int32_t types[B_N];
    for (int i = 0; i < B_N; i++) types[i] = LRGD_TOK_NORMAL;
    types[B_EOS] = LRGD_TOK_CONTROL;
    const char *merges[] = {"b c", "a b", "\xc4\xa0 a", "\304\240a b", "\xc4\xa0 ab", "c c", "a b" /* duplicate: rank 1 wins */};
    lrgd_tokenizer_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.vocab = (lrgd_gguf_vocab){"gpt2", B_N, pieces, NULL, types, -1, B_EOS, -1, -1, -1, -1, -1, 1, -1};
    spec.merges = merges;
    spec.n_merges = 7;
    spec.pre = pre;
    spec.add_space_prefix = -1;
    return from_spec(&spec);
}

static void test_bpe_hand(void)
{
    lrgd_tokenizer *t = hand_bpe("gpt-2");
    if (!t) return;
    CHECK(lrgd_tokenizer_kind_of(t) == LRGD_TOKENIZER_BPE && !strcmp(lrgd_tokenizer_pre(t), "gpt-2"));
    CHECK(lrgd_tokenizer_add_space_prefix(t) == 0 && lrgd_tokenizer_add_bos(t) == 0 && lrgd_tokenizer_add_eos(t) == 1);
    CHECK(lrgd_tokenizer_eos(t) == B_EOS && lrgd_tokenizer_bos(t) == -1 /* llama.cpp's default 11 is outside */);
    /* "abc": b c (rank 0) before a b (rank 1); "a"+"bc" has no rank */
    EXPECT(t, "abc", 0, B_A, B_BC);
    /* " ab": a b (1) before Ġ a (2); then Ġ ab (4) */
    EXPECT(t, " ab", 0, B_GAB);
    EXPECT(t, "ab ab", 0, B_AB, B_GAB);
    EXPECT(t, "a!", 0, B_A, B_BANG);
    /* "cc" merges (rank 5) into a symbol that is not a token: emitted byte by byte */
    EXPECT(t, "cc", 0, B_C, B_C);
    /* a byte with no token is dropped (as llama.cpp does) */
    EXPECT(t, "axb", 0, B_A, B_B);
    EXPECT(t, "\n", 0, B_NL);
    EXPECT(t, "ab", LRGD_TOKENIZE_ADD_SPECIAL, B_AB, B_EOS);
    EXPECT(t, "<|eos|>", LRGD_TOKENIZE_PARSE_SPECIAL, B_EOS);
    EXPECT_NONE(t, "", 0);
    expect_roundtrip(t, "ab abc\n!", 8, 0, "bpe");
    lrgd_tokenizer_free(t);
}

/* ---- pre-tokenizers ----------------------------------------------------------------- */

static void expect_split(lrgd_pretok kind, const char *text, const char *want)
{
    size_t len = strlen(text), n = 0;
    uint32_t *cp = malloc((len + 1) * sizeof *cp);
    for (size_t pos = 0; pos < len;) cp[n++] = lrgd_utf8_decode((const unsigned char *)text, len, &pos);
    lrgd_ivec lens = {0};
    CHECK_OK(lrgd_pretokenize(kind, cp, n, &lens));
    char got[512];
    size_t g = 0, at = 0;
    for (size_t k = 0; k < lens.n; k++) {
        if (k) got[g++] = '|';
        for (size_t i = at; i < at + (size_t)lens.v[k]; i++) g += lrgd_utf8_encode(cp[i], got + g);
        at += (size_t)lens.v[k];
    }
    got[g] = 0;
    CHECK_MSG(at == n && !strcmp(got, want), "split %d of '%s': got '%s', want '%s'", (int)kind, text, got, want);
    lrgd_ivec_free(&lens);
    free(cp);
}

static void test_pretok(void)
{
    expect_split(LRGD_PRE_GPT2, "Hello world's  123 abc", "Hello| world|'s| | 123| abc");
    expect_split(LRGD_PRE_GPT2, "a  ", "a|  ");
    expect_split(LRGD_PRE_GPT2, "I'M ok", "I|'|M| ok"); /* case-sensitive contractions */
    expect_split(LRGD_PRE_GPT2, "x\n\ny", "x|\n|\n|y"); /* \s+(?!\S) leaves the last space; ' ?' is U+0020 only */
    expect_split(LRGD_PRE_GPT2, "x   y", "x|  | y");
    expect_split(LRGD_PRE_GPT2, "caf\xc3\xa9 \xe2\x82\xac" "5", "caf\xc3\xa9| \xe2\x82\xac|5");
    expect_split(LRGD_PRE_LLAMA3, "Hello WORLD'S 1234567\n\n x", "Hello| WORLD|'S| |123|456|7|\n\n| x");
    expect_split(LRGD_PRE_LLAMA3, "(a)..\r\nb", "(a|)..\r\n|b");
    expect_split(LRGD_PRE_QWEN2, "ab 1234", "ab| |1|2|3|4");
    expect_split(LRGD_PRE_DEFAULT, "Hello, world! 12345 $5", "Hello|,| world|!| |123|45| |$|5");
    expect_split(LRGD_PRE_DEFAULT, "a`b", "a|`|b");
    expect_split(LRGD_PRE_STARCODER, "abc123 x", "abc|1|2|3| x");
    /* U+00A0 is \s; U+0663 (Arabic-Indic three) is \p{N} */
    expect_split(LRGD_PRE_GPT2, "a\xc2\xa0\xc2\xa0" "b", "a|\xc2\xa0|\xc2\xa0|b");
    expect_split(LRGD_PRE_QWEN2, "\xd9\xa3\xd9\xa3", "\xd9\xa3|\xd9\xa3");
    /* lenient UTF-8: bad bytes become U+FFFD one by one, overlong NUL decodes to 0 */
    size_t pos = 0;
    const unsigned char bad[] = {0xC3, 0x28, 0xF8, 0xE2, 0x82, 0xC0, 0x80, 0xF4, 0x90, 0x80, 0x80};
    uint32_t want[] = {0xFFFD, '(', 0xFFFD, 0xFFFD, 0xFFFD, 0, 0xFFFD};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        uint32_t cp = lrgd_utf8_decode(bad, sizeof bad, &pos);
        CHECK_MSG(cp == want[k], "decode %zu: got %x want %x", k, cp, want[k]);
    }
    CHECK(pos == sizeof bad);
    CHECK(lrgd_uc_class_of('a') == LRGD_UC_LETTER && lrgd_uc_class_of('7') == LRGD_UC_NUMBER &&
          lrgd_uc_class_of(0x1F600) == LRGD_UC_SYMBOL && lrgd_uc_class_of(0x0301) == LRGD_UC_MARK &&
          lrgd_uc_class_of(0x4E2D) == LRGD_UC_LETTER && lrgd_uc_class_of(0x10FFFF) == LRGD_UC_UNDEF &&
          lrgd_uc_class_of(0x110000) == LRGD_UC_UNDEF && lrgd_uc_class_of(0xE000) == LRGD_UC_CONTROL);
    for (int b = 0; b < 256; b++) CHECK(lrgd_cp_byte(lrgd_byte_cp((unsigned char)b)) == b);
    CHECK(lrgd_byte_cp(' ') == 0x120 && lrgd_byte_cp('\n') == 0x10A && lrgd_byte_cp('a') == 'a');
}

/* ---- learned vocabularies on real titles ----------------------------------------------- */

static const char *tricky[] = {
    "", " ", "  ", "   leading", "trailing   ", "a  b   c", "\n", "\n\n", "line1\nline2\r\nline3", "\ttab\t",
    "12345678901234567890", "3.14159 1,000,000 $9.99 50%", "don't I'M we'll THEY'RE", "caf\xc3\xa9 na\xc3\xafve",
    "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97\xe7\xac\xa6", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xf0\x9f\x87\xaf\xf0\x9f\x87\xb5",
    "e\xcc\x81", "<s> </s> <unk> <0x41> <|bos|>", "\xc4\xa0 \xc4\x8a", "OPI Nail Lacquer, 0.5-Fluid Ounce",
    "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7", "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87",
};

static void check_learned(const lrgd_tokenizer *t, const char *name)
{
    int bpe = lrgd_tokenizer_kind_of(t) == LRGD_TOKENIZER_BPE;
    for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++) {
        char what[128];
        snprintf(what, sizeof what, "%s: tricky %zu", name, i);
        /* BPE drops bytes with no token; these vocabularies hold all 256, so every valid string round-trips */
        expect_roundtrip(t, tricky[i], strlen(tricky[i]), 0, what);
    }
    /* invalid UTF-8: no crash, ids inside the vocabulary; BPE reads U+FFFD per bad byte; SPM keeps
     * the bytes (a lead byte may swallow the next bytes, an escaped space included, so only the
     * ends are compared) */
    const char bad[] = "ok \xff\xfe \xc3 \xed\xa0\x80 \xc0\x80 \xf5\x80\x80\x80 end";
    int *ids = NULL, n = 0;
    CHECK_OK(lrgd_tokenize(t, bad, sizeof bad - 1, 0, &ids, &n));
    for (int i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < lrgd_tokenizer_n_vocab(t));
    char *back = NULL;
    size_t bl = 0;
    CHECK_OK(lrgd_detokenize(t, ids, n, 0, &back, &bl));
    CHECK_MSG(back && !strncmp(back, "ok ", 3) && bl > 4 && !strcmp(back + bl - 4, " end"), "%s: invalid UTF-8", name);
    if (bpe) CHECK_MSG(back && strstr(back, "ok \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd"), "%s: U+FFFD", name);
    free(ids);
    free(back);
    /* random bytes (seeded), with every flag combination: never a crash, ids always inside the
     * vocabulary, and detokenize takes them back */
    lrgd_rng rng;
    lrgd_rng_seed(&rng, 99, 0);
    static const char pool[] = " \t\naZ09'.-<>[]\xc3\xa9\xe2\x96\x81\xf0\x9f\x98\x80\xff\x80";
    for (int r = 0; r < 400; r++) {
        char s[64];
        size_t len = lrgd_rng_below(&rng, sizeof s);
        for (size_t k = 0; k < len; k++)
            s[k] = r % 2 ? (char)lrgd_rng_below(&rng, 256) : pool[lrgd_rng_below(&rng, sizeof pool - 1)];
        CHECK_OK(lrgd_tokenize(t, s, len, (unsigned)(r % 8), &ids, &n));
        int ok = 1;
        for (int i = 0; i < n; i++) ok &= ids[i] >= 0 && ids[i] < lrgd_tokenizer_n_vocab(t);
        CHECK_MSG(ok, "%s: random string %d: id outside the vocabulary", name, r);
        CHECK_OK(lrgd_detokenize(t, ids, n, LRGD_DETOKENIZE_SPECIAL, &back, &bl));
        free(back);
        free(ids);
    }
    /* a long text: tokens are far fewer than bytes (the merges do their work) */
    const char *title = "Maybelline New York Eye Studio Lasting Drama Gel Eyeliner, Blackest Black, 0.106 Ounce ";
    char *big = malloc(200 * strlen(title) + 1);
    big[0] = 0;
    for (int k = 0; k < 200; k++) strcat(big, title);
    CHECK_OK(lrgd_tokenize(t, big, strlen(big), 0, &ids, &n));
    CHECK_MSG(n > 0 && n < (int)strlen(big) / 2, "%s: %d tokens for %zu bytes", name, n, strlen(big));
    free(ids);
    expect_roundtrip(t, big, strlen(big), 0, "long");
    free(big);
}

static const char *g_dir;

static void test_learned(void)
{
    tf_strs titles = {0};
    if (tf_read_titles(t_shared("datasets/amazon/Beauty.items.tsv"), 3000, &titles) != LRGD_OK) {
        CHECK_MSG(0, "Beauty titles: %s", lrgd_last_error());
        return;
    }
    double t0 = lrgd_now();
    tf_vocab spm, bpe;
    tf_spm_vocab(&titles, 2500, -1, &spm);
    tf_bpe_vocab(&titles, 2500, NULL, 0, &bpe);
    printf("learned vocabularies: SPM %d tokens, BPE %d tokens + %d merges (%.2f s)\n", spm.pieces.n, bpe.pieces.n,
           bpe.merges.n, lrgd_now() - t0);
    CHECK(spm.pieces.n > 2000 && bpe.pieces.n > 2000 && bpe.merges.n > 2000);
    lrgd_tokenizer *ts = from_spec(&spm.spec), *tb = from_spec(&bpe.spec);
    if (ts) check_learned(ts, "spm");
    if (tb) check_learned(tb, "bpe-default");
    /* the titles themselves round-trip and merge well */
    long bytes = 0, toks = 0;
    for (int i = 0; i < titles.n && ts && tb; i += 7) {
        expect_roundtrip(ts, titles.v[i], strlen(titles.v[i]), 0, titles.v[i]);
        expect_roundtrip(tb, titles.v[i], strlen(titles.v[i]), 0, titles.v[i]);
        int *ids, n;
        if (lrgd_tokenize(tb, titles.v[i], strlen(titles.v[i]), 0, &ids, &n) == LRGD_OK) {
            bytes += (long)strlen(titles.v[i]);
            toks += n;
            free(ids);
        }
    }
    printf("BPE: %.2f bytes per token on titles\n", toks ? (double)bytes / (double)toks : 0.0);
    CHECK(toks > 0 && (double)bytes / (double)toks > 2.5);

    /* the same vocabulary in a model file: lrgd_tokenizer_from_model agrees with the spec */
    char path[512];
    snprintf(path, sizeof path, "%s/bpe.gguf", g_dir);
    lrgd_config c = tf_small_config();
    CHECK_OK(tf_write_text_model(&bpe.spec, &c, 7, path));
    lrgd_model *m = NULL;
    lrgd_tokenizer *tm = NULL;
    CHECK_OK(lrgd_model_load(path, &m));
    if (m) CHECK_OK(lrgd_tokenizer_from_model(m, &tm));
    if (tm && tb) {
        CHECK(lrgd_tokenizer_n_vocab(tm) == lrgd_tokenizer_n_vocab(tb));
        int *a, na, *b, nb;
        const char *s = "Neutrogena Ultra Sheer Dry-Touch Sunscreen SPF 100+, 3 Fl. Oz.";
        CHECK_OK(lrgd_tokenize(tm, s, strlen(s), 0, &a, &na));
        CHECK_OK(lrgd_tokenize(tb, s, strlen(s), 0, &b, &nb));
        CHECK(na == nb && !memcmp(a, b, (size_t)na * sizeof *a));
        free(a);
        free(b);
    }
    lrgd_tokenizer_free(tm);
    lrgd_model_free(m);
    remove(path);
    /* a llama2.c model has no tokenizer */
    CHECK_OK(lrgd_model_load(t_shared("models/stories260K.bin"), &m));
    if (m) {
        CHECK(lrgd_tokenizer_from_model(m, &tm) == LRGD_E_UNSUPPORTED && tm == NULL);
        CHECK(strstr(lrgd_last_error(), "no tokenizer") != NULL);
        lrgd_model_free(m);
    }
    lrgd_tokenizer_free(ts);
    lrgd_tokenizer_free(tb);
    tf_vocab_free(&spm);
    tf_vocab_free(&bpe);
    tf_strs_free(&titles);
}

/* ---- refused vocabularies --------------------------------------------------------------- */

/* Tokenizer from a writer filled by fill(); returns the status and the message. */
static lrgd_status build_with(void (*fill)(lrgd_gguf_writer *))
{
    lrgd_gguf_writer *w = NULL;
    lrgd_gguf *g = NULL;
    lrgd_tokenizer *t = NULL;
    void *data = NULL;
    size_t size = 0;
    CHECK_OK(lrgd_gguf_writer_new(&w));
    fill(w);
    CHECK_OK(lrgd_gguf_write_mem(w, &data, &size));
    lrgd_status st = lrgd_gguf_parse(data, size, "bad.gguf", &g);
    if (st == LRGD_OK) st = lrgd_tokenizer_from_gguf(g, &t);
    CHECK(st != LRGD_OK || t != NULL);
    lrgd_tokenizer_free(t);
    lrgd_gguf_free(g);
    lrgd_gguf_writer_free(w);
    free(data);
    return st;
}

static const char *const two[] = {"a", "b"};
static void f_no_model(lrgd_gguf_writer *w) { lrgd_gguf_set_arr_str(w, "tokenizer.ggml.tokens", two, 2); }
static void f_bert(lrgd_gguf_writer *w)
{
    lrgd_gguf_set_str(w, "tokenizer.ggml.model", "bert");
    lrgd_gguf_set_arr_str(w, "tokenizer.ggml.tokens", two, 2);
}
static void f_no_tokens(lrgd_gguf_writer *w) { lrgd_gguf_set_str(w, "tokenizer.ggml.model", "llama"); }
static void f_tokens_not_strings(lrgd_gguf_writer *w)
{
    lrgd_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    int32_t x[2] = {1, 2};
    lrgd_gguf_set_arr(w, "tokenizer.ggml.tokens", LRGD_GGUF_I32, x, 2);
}
static void f_dup(lrgd_gguf_writer *w)
{
    static const char *const d[] = {"a", "b", "a"};
    lrgd_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    lrgd_gguf_set_arr_str(w, "tokenizer.ggml.tokens", d, 3);
}
static void f_short_scores(lrgd_gguf_writer *w)
{
    lrgd_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    lrgd_gguf_set_arr_str(w, "tokenizer.ggml.tokens", two, 2);
    float s[1] = {0};
    lrgd_gguf_set_arr(w, "tokenizer.ggml.scores", LRGD_GGUF_F32, s, 1);
}
static void f_types_f32(lrgd_gguf_writer *w)
{
    lrgd_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    lrgd_gguf_set_arr_str(w, "tokenizer.ggml.tokens", two, 2);
    float s[2] = {1, 1};
    lrgd_gguf_set_arr(w, "tokenizer.ggml.token_type", LRGD_GGUF_F32, s, 2);
}
static void f_no_merges(lrgd_gguf_writer *w)
{
    lrgd_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    lrgd_gguf_set_arr_str(w, "tokenizer.ggml.tokens", two, 2);
}
static void f_unknown_pre(lrgd_gguf_writer *w)
{
    static const char *const m[] = {"a b"};
    lrgd_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    lrgd_gguf_set_arr_str(w, "tokenizer.ggml.tokens", two, 2);
    lrgd_gguf_set_arr_str(w, "tokenizer.ggml.merges", m, 1);
    lrgd_gguf_set_str(w, "tokenizer.ggml.pre", "deepseek-coder");
}
static void f_bad_flag(lrgd_gguf_writer *w)
{
    lrgd_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    lrgd_gguf_set_arr_str(w, "tokenizer.ggml.tokens", two, 2);
    lrgd_gguf_set_str(w, "tokenizer.ggml.add_space_prefix", "yes");
}

static void test_refused(void)
{
    static const struct { void (*fill)(lrgd_gguf_writer *); lrgd_status st; const char *msg; } cases[] = {
        {f_no_model, LRGD_E_UNSUPPORTED, "tokenizer.ggml.model is missing"},
        {f_bert, LRGD_E_UNSUPPORTED, "\"bert\""},
        {f_no_tokens, LRGD_E_FORMAT, "tokenizer.ggml.tokens is missing"},
        {f_tokens_not_strings, LRGD_E_FORMAT, "expected an array of strings"},
        {f_dup, LRGD_E_FORMAT, "tokens 0 and 2 have the same piece 'a'"},
        {f_short_scores, LRGD_E_FORMAT, "tokenizer.ggml.scores has 1 entries for 2 tokens"},
        {f_types_f32, LRGD_E_FORMAT, "token_type: expected an array of i32"},
        {f_no_merges, LRGD_E_FORMAT, "tokenizer.ggml.merges is missing"},
        {f_unknown_pre, LRGD_E_UNSUPPORTED, "\"deepseek-coder\" is a pre-tokenizer lrgd does not implement (supported: default, gpt-2"},
        {f_bad_flag, LRGD_E_FORMAT, "add_space_prefix: expected a bool"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lrgd_status st = build_with(cases[i].fill);
        CHECK_MSG(st == cases[i].st && strstr(lrgd_last_error(), cases[i].msg) && strstr(lrgd_last_error(), "bad.gguf"),
                  "case %zu: status %d, message '%s'", i, (int)st, lrgd_last_error());
    }
    /* writing: a gpt2 spec needs merges of the form "left right" */
    const char *p[2] = {"a", "b"};
    lrgd_tokenizer_spec s;
    memset(&s, 0, sizeof s);
    s.vocab = (lrgd_gguf_vocab){"gpt2", 2, p, NULL, NULL, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    s.add_space_prefix = -1;
    lrgd_gguf_writer *w;
    CHECK_OK(lrgd_gguf_writer_new(&w));
    CHECK(lrgd_tokenizer_write_gguf(w, &s) == LRGD_E_INVALID);
    const char *m[1] = {"ab"};
    s.merges = m;
    s.n_merges = 1;
    CHECK(lrgd_tokenizer_write_gguf(w, &s) == LRGD_E_INVALID && strstr(lrgd_last_error(), "merge 0"));
    lrgd_gguf_writer_free(w);
    /* too long a text */
    lrgd_tokenizer *t = hand_spm(-1);
    int *ids, n;
    if (t) CHECK(lrgd_tokenize(t, "x", (size_t)1 << 28, 0, &ids, &n) == LRGD_E_INVALID);
    lrgd_tokenizer_free(t);
}

/* ---- tool modes ---------------------------------------------------------------------------- */

static int make_models(const char *dir, const char *items)
{
    tf_strs titles = {0};
    if (tf_read_titles(items, 3000, &titles) != LRGD_OK) {
        fprintf(stderr, "%s\n", lrgd_last_error());
        return 1;
    }
    static const struct { const char *file; const char *pre; int spm, prefix; } out[] = {
        {"spm.gguf", NULL, 1, -1},          {"spm-noprefix.gguf", NULL, 1, 0}, {"bpe-default.gguf", NULL, 0, -1},
        {"bpe-gpt2.gguf", "gpt-2", 0, -1},  {"bpe-llama3.gguf", "llama-bpe", 0, -1},
        {"bpe-qwen2.gguf", "qwen2", 0, -1}, {"bpe-smollm.gguf", "smollm", 0, -1},
    };
    tf_vocab spm, bpe;
    tf_spm_vocab(&titles, 2500, -1, &spm);
    tf_bpe_vocab(&titles, 2500, NULL, 1, &bpe);
    lrgd_config c = tf_small_config();
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
        tf_vocab *v = out[i].spm ? &spm : &bpe;
        v->spec.pre = out[i].pre;
        v->spec.add_space_prefix = out[i].prefix;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, out[i].file);
        if (tf_write_text_model(&v->spec, &c, 1000 + i, path) != LRGD_OK) {
            fprintf(stderr, "%s: %s\n", path, lrgd_last_error());
            return 1;
        }
        printf("%s: %d tokens%s\n", path, v->pieces.n, out[i].spm ? "" : " (byte-level BPE)");
    }
    tf_vocab_free(&spm);
    tf_vocab_free(&bpe);
    tf_strs_free(&titles);
    return 0;
}

static int tokenize_file(const char *model, const char *hexfile, const char *outpath)
{
    lrgd_tokenizer *t = NULL;
    char *buf = NULL;
    size_t size = 0;
    if (lrgd_tokenizer_load(model, &t) != LRGD_OK || lrgd_read_file(hexfile, &buf, &size) != LRGD_OK) {
        fprintf(stderr, "%s\n", lrgd_last_error());
        return 1;
    }
    FILE *f = fopen(outpath, "w");
    if (!f) { perror(outpath); return 1; }
    char *text = malloc(size / 2 + 1);
    int line = 0, rc = 0;
    for (char *p = buf; p < buf + size && !rc;) {
        char *nl = memchr(p, '\n', (size_t)(buf + size - p));
        if (!nl) nl = buf + size;
        line++;
        size_t n = 0;
        for (char *q = p; q + 1 < nl; q += 2) {
            int hi = q[0] >= 'a' ? q[0] - 'a' + 10 : q[0] - '0', lo = q[1] >= 'a' ? q[1] - 'a' + 10 : q[1] - '0';
            text[n++] = (char)(hi * 16 + lo);
        }
        int *ids, k;
        if (lrgd_tokenize(t, text, n, 0, &ids, &k) != LRGD_OK) {
            fprintf(stderr, "%s:%d: %s\n", hexfile, line, lrgd_last_error());
            rc = 1;
            break;
        }
        for (int i = 0; i < k; i++) fprintf(f, i ? " %d" : "%d", ids[i]);
        fputc('\n', f);
        free(ids);
        p = nl + 1;
    }
    fclose(f);
    free(text);
    free(buf);
    lrgd_tokenizer_free(t);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--make-models"))
        return make_models(argv[2], argc >= 4 ? argv[3] : t_shared("datasets/amazon/Beauty.items.tsv"));
    if (argc == 5 && !strcmp(argv[1], "--tokenize")) return tokenize_file(argv[2], argv[3], argv[4]);
    static char dir[] = "/tmp/lrgd_test_tokenizer_XXXXXX";
    g_dir = mkdtemp(dir);
    if (!g_dir) { perror("mkdtemp"); return 1; }
    test_spm_hand();
    test_bpe_hand();
    test_pretok();
    test_refused();
    test_learned();
    rmdir(g_dir);
    return t_finish("test_tokenizer");
}
