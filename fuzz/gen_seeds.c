/* Writes the seed corpora in fuzz/corpus/: small valid files made by lrgd's
 * own writers (GGUF, llama2.c) and the first lines of the shared datasets,
 * plus a few hand-made edge cases. Deterministic: running it again gives the
 * same bytes. Usage: gen_seeds OUT_DIR SHARED_DIR (scripts/fuzz.sh seeds). */
#include "format/gguf_internal.h"
#include "fuzz_tokenizer.h"
#include "lrgd/data.h"
#include "lrgd/gguf.h"
#include "lrgd/model.h"
#include "model/model_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *g_out, *g_shared;

static void die(const char *what)
{
    fprintf(stderr, "gen_seeds: %s: %s\n", what, lrgd_last_error());
    exit(1);
}

static void put(const char *harness, const char *name, const void *data, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", g_out, harness);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) { perror(path); exit(1); }
    snprintf(path, sizeof path, "%s/%s/%s", g_out, harness, name);
    if (lrgd_write_file_atomic(path, data, n) != LRGD_OK) die(path);
}

static void put_str(const char *harness, const char *name, const char *s) { put(harness, name, s, strlen(s)); }

/* The first max_lines lines (at most max_bytes) of a shared file. */
static char *head_of(const char *rel, int max_lines, size_t max_bytes, size_t *n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", g_shared, rel);
    char *buf;
    size_t size;
    if (lrgd_read_file(path, &buf, &size) != LRGD_OK) die(path);
    size_t k = 0;
    for (int l = 0; l < max_lines && k < size; l++) {
        const char *e = memchr(buf + k, '\n', size - k);
        size_t next = e ? (size_t)(e - buf) + 1 : size;
        if (next > max_bytes) break;
        k = next;
    }
    *n = k;
    return buf;
}

static lrgd_config tiny_cfg(int dim, int hidden, int heads, int kv, int vocab, int seq)
{
    lrgd_config c = {0};
    c.dim = dim;
    c.hidden_dim = hidden;
    c.n_layers = 1;
    c.n_heads = heads;
    c.n_kv_heads = kv;
    c.head_dim = dim / heads;
    c.vocab_size = vocab;
    c.seq_len = seq;
    c.norm_eps = 1e-5f;
    c.rope_base = 10000.0f;
    c.rope_type = LRGD_ROPE_NORM;
    c.attn = LRGD_ATTN_SOFTMAX;
    c.tied = 1;
    return c;
}

static void gguf_seed(const char *name, const lrgd_model *m, lrgd_dtype wt)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/.seed.gguf", g_out);
    if (lrgd_model_save_gguf(m, tmp, wt, "seed") != LRGD_OK) die(name);
    char *buf;
    size_t n;
    if (lrgd_read_file(tmp, &buf, &n) != LRGD_OK) die(tmp);
    remove(tmp);
    put("fuzz_gguf", name, buf, n);
    lrgd_free(buf);
}

static void gguf_seeds(void)
{
    lrgd_model *m;
    lrgd_config c = tiny_cfg(8, 8, 2, 2, 8, 4);
    if (lrgd_model_new_random(&c, 1, &m) != LRGD_OK) die("random model");
    gguf_seed("tiny_f32.gguf", m, LRGD_F32);
    lrgd_model_free(m);

    c = tiny_cfg(8, 12, 2, 1, 6, 5);
    c.rope_type = LRGD_ROPE_NEOX;
    c.attn = LRGD_ATTN_LINEAR;
    c.tied = 0;
    if (lrgd_model_new_random(&c, 2, &m) != LRGD_OK) die("random model");
    gguf_seed("tiny_f16_gqa_untied_linear.gguf", m, LRGD_F16);
    lrgd_model_free(m);

    c = tiny_cfg(32, 32, 4, 2, 4, 3);
    if (lrgd_model_new_random(&c, 3, &m) != LRGD_OK) die("random model");
    gguf_seed("tiny_q8_0.gguf", m, LRGD_Q8_0);
    lrgd_model_free(m);

    /* a recommendation model: special tokens, then item tokens */
    c = tiny_cfg(8, 8, 2, 2, 9, 6);
    if (lrgd_model_new_random(&c, 4, &m) != LRGD_OK) die("random model");
    static int64_t items[5] = {1, 2, 3, 17, 1000};
    m->rec.n_special = 4;
    m->rec.pad = 0;
    m->rec.bos = 1;
    m->rec.sep = 2;
    m->rec.ans = 3;
    m->rec.n_items = 5;
    m->rec.item_ext = malloc(sizeof items);
    memcpy(m->rec.item_ext, items, sizeof items);
    gguf_seed("rec_vocab.gguf", m, LRGD_F32);
    lrgd_model_free(m);

    /* every metadata type, nested arrays, an odd alignment, tensors of each type */
    lrgd_gguf_writer *w;
    if (lrgd_gguf_writer_new(&w) != LRGD_OK) die("writer");
    lrgd_gguf_writer_set_alignment(w, 64);
    lrgd_gguf_set_u8(w, "zoo.u8", 200);
    lrgd_gguf_set_i8(w, "zoo.i8", -3);
    lrgd_gguf_set_u16(w, "zoo.u16", 65000);
    lrgd_gguf_set_i16(w, "zoo.i16", -300);
    lrgd_gguf_set_u32(w, "zoo.u32", 4000000000u);
    lrgd_gguf_set_i32(w, "zoo.i32", -70000);
    lrgd_gguf_set_u64(w, "zoo.u64", 1ull << 63);
    lrgd_gguf_set_i64(w, "zoo.i64", -(1ll << 40));
    lrgd_gguf_set_f32(w, "zoo.f32", 1.5f);
    lrgd_gguf_set_f64(w, "zoo.f64", -2.25);
    lrgd_gguf_set_bool(w, "zoo.bool", 1);
    lrgd_gguf_set_str(w, "zoo.str", "hello");
    const int32_t ai[3] = {1, -2, 3};
    lrgd_gguf_set_arr(w, "zoo.arr_i32", LRGD_GGUF_I32, ai, 3);
    const uint8_t ab[2] = {0, 1};
    lrgd_gguf_set_arr(w, "zoo.arr_bool", LRGD_GGUF_BOOL, ab, 2);
    const char *as[3] = {"a", "", "ccc"};
    lrgd_gguf_set_arr_str(w, "zoo.arr_str", as, 3);
    const float f1[2] = {1, 2}, f2[1] = {3};
    const void *inner[2] = {f1, f2};
    const uint64_t cnt[2] = {2, 1};
    lrgd_gguf_set_arr_arr(w, "zoo.arr_arr", LRGD_GGUF_F32, inner, cnt, 2);
    float v[64];
    for (int i = 0; i < 64; i++) v[i] = (float)(i - 20) / 8;
    const uint64_t ne1[1] = {3}, ne2[2] = {32, 2}, ne3[3] = {2, 2, 2};
    lrgd_gguf_add_tensor_f32(w, "t.f32", LRGD_F32, 1, ne1, v);
    lrgd_gguf_add_tensor_f32(w, "t.q8_0", LRGD_Q8_0, 2, ne2, v);
    lrgd_gguf_add_tensor_f32(w, "t.f16", LRGD_F16, 3, ne3, v);
    void *data;
    size_t n;
    if (lrgd_gguf_write_mem(w, &data, &n) != LRGD_OK) die("zoo");
    put("fuzz_gguf", "meta_zoo.gguf", data, n);
    free(data);
    lrgd_gguf_writer_free(w);

    /* text vocabularies: SentencePiece with a user-defined token, byte-level BPE (llama3) */
    for (int which = 1; which <= 4; which += 3) {
        void *vd;
        size_t vn;
        fuzz_tokenizer_gguf(which, &vd, &vn);
        put("fuzz_gguf", which == 1 ? "vocab_spm.gguf" : "vocab_bpe_llama3.gguf", vd, vn);
        free(vd);
    }

    /* the real stories260K, converted, up to its tensor data (the vocabulary and
     * hyper-parameters lrgd writes for a llama2.c model) */
    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K.bin", g_shared);
    if (lrgd_model_load(path, &m) != LRGD_OK) die(path);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/.seed.gguf", g_out);
    if (lrgd_model_save_gguf(m, tmp, LRGD_F32, NULL) != LRGD_OK) die("stories260K gguf");
    lrgd_model_free(m);
    lrgd_gguf *g;
    if (lrgd_gguf_open(tmp, &g) != LRGD_OK) die(tmp);
    put("fuzz_gguf", "stories260K_header.gguf", lrgd_gguf_bytes(g), lrgd_gguf_data_offset(g));
    lrgd_gguf_free(g);
    remove(tmp);
}

/* llama2.c layout: 7 int32, then the weights in llama2.c's order. */
static void llama2c_seed(const char *name, const lrgd_model *m)
{
    const lrgd_config *c = &m->cfg;
    size_t cap = 1 << 20, n = 0;
    unsigned char *b = malloc(cap);
    int32_t h[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                    c->tied ? c->vocab_size : -c->vocab_size, c->seq_len};
    memcpy(b, h, sizeof h);
    n = sizeof h;
#define PUTF(p, cnt) do { memcpy(b + n, (p), (size_t)(cnt) * 4); n += (size_t)(cnt) * 4; } while (0)
#define W(w) ((const float *)(w).data)
    size_t D = (size_t)c->dim, F = (size_t)c->hidden_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    PUTF(W(m->tok_embd), (size_t)c->vocab_size * D);
    for (int l = 0; l < c->n_layers; l++) PUTF(m->layers[l].attn_norm, D);
    for (int l = 0; l < c->n_layers; l++) PUTF(W(m->layers[l].wq), D * D);
    for (int l = 0; l < c->n_layers; l++) PUTF(W(m->layers[l].wk), kvd * D);
    for (int l = 0; l < c->n_layers; l++) PUTF(W(m->layers[l].wv), kvd * D);
    for (int l = 0; l < c->n_layers; l++) PUTF(W(m->layers[l].wo), D * D);
    for (int l = 0; l < c->n_layers; l++) PUTF(m->layers[l].ffn_norm, D);
    for (int l = 0; l < c->n_layers; l++) PUTF(W(m->layers[l].w1), F * D);
    for (int l = 0; l < c->n_layers; l++) PUTF(W(m->layers[l].w2), D * F);
    for (int l = 0; l < c->n_layers; l++) PUTF(W(m->layers[l].w3), F * D);
    PUTF(m->out_norm, D);
    size_t rope = (size_t)c->seq_len * c->head_dim; /* freq_cis real + imag: not read by lrgd */
    memset(b + n, 0, rope * 4);
    n += rope * 4;
    if (!c->tied) PUTF(W(m->output), (size_t)c->vocab_size * D);
#undef PUTF
#undef W
    put("fuzz_llama2c", name, b, n);
    free(b);
}

static void llama2c_seeds(void)
{
    lrgd_model *m;
    lrgd_config c = tiny_cfg(8, 8, 2, 2, 8, 4);
    if (lrgd_model_new_random(&c, 5, &m) != LRGD_OK) die("random model");
    llama2c_seed("tiny_tied.bin", m);
    lrgd_model_free(m);
    c = tiny_cfg(8, 12, 2, 1, 5, 3);
    c.tied = 0;
    if (lrgd_model_new_random(&c, 6, &m) != LRGD_OK) die("random model");
    llama2c_seed("tiny_untied_gqa.bin", m);
    lrgd_model_free(m);
    /* stories260K's header and first weights (truncated: the size check's error path) */
    size_t n;
    char *buf = head_of("models/stories260K.bin", 1 << 30, 1 << 30, &n);
    put("fuzz_llama2c", "stories260K_head.bin", buf, 28 + 256);
    lrgd_free(buf);
}

static void dataset_seeds(void)
{
    size_t n;
    char *buf = head_of("datasets/amazon/Beauty.txt", 40, 2048, &n);
    put("fuzz_amazon", "beauty_head.txt", buf, n);
    /* the same users as a RecBole .inter, timestamps = position, columns shuffled */
    char *inter = malloc(1 << 16), *inter2 = malloc(1 << 16);
    size_t k = (size_t)sprintf(inter, "user_id:token\titem_id:token\ttimestamp:float\n");
    size_t k2 = (size_t)sprintf(inter2, "rating:float\ttimestamp:float\titem_id:token\tuser_id:token\n");
    const char *p = buf, *end = buf + n;
    while (p < end && k < (1 << 15)) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        char line[4096];
        size_t ll = (size_t)(eol - p);
        memcpy(line, p, ll);
        line[ll] = 0;
        char *save, *user = strtok_r(line, " ", &save), *it;
        int pos = 0;
        while ((it = strtok_r(NULL, " ", &save))) {
            k += (size_t)sprintf(inter + k, "%s\t%s\t%d\n", user, it, 1000 - 3 * pos);
            k2 += (size_t)sprintf(inter2 + k2, "4.0\t%d.5\t%s\tu%s\n", pos % 3, it, user);
            pos++;
        }
        p = eol + 1;
    }
    put("fuzz_recbole_inter", "beauty_head.inter", inter, k);
    put("fuzz_recbole_inter", "shuffled_columns.inter", inter2, k2);
    free(inter);
    free(inter2);
    lrgd_free(buf);
    put_str("fuzz_recbole_inter", "no_timestamp.inter", "item_id:token\tuser_id:token\nA\tu1\nB\tu1\nC\tu1\nA\tu2\nB\tu2\nD\tu2\r\n");
    put_str("fuzz_amazon", "edge.txt", "7 3 3 3\r\n1\t2  5 2\n0 0\n9\n100000000000000000 999999999999999999 1\n");

    /* item text: rows for the items of fuzz_item_text's fixed datasets */
    buf = head_of("datasets/amazon/Beauty.items.tsv", 13, 1 << 20, &n);
    char *t = malloc(n + 1);
    size_t tn = 0;
    p = buf;
    for (int line = 0; p < buf + n; line++) {
        const char *eol = memchr(p, '\n', (size_t)(buf + n - p));
        if (line != 8 && line != 9) { /* the fixed dataset has no items 8, 9 */
            memcpy(t + tn, p, (size_t)(eol - p) + 1);
            tn += (size_t)(eol - p) + 1;
        }
        p = eol + 1;
    }
    put("fuzz_item_text", "beauty_items_head.tsv", t, tn);
    free(t);
    lrgd_free(buf);
    buf = head_of("datasets/amazon/Sports_and_Outdoors.items.tsv", 4, 1 << 20, &n);
    put("fuzz_item_text", "sports_keywords_head.tsv", buf, n);
    lrgd_free(buf);
    put_str("fuzz_item_text", "no_header.tsv", "1\tfirst\n1000\ttitle with (parens)\n123456789\t\n");
    put_str("fuzz_item_text", "recbole.item",
            "item_id:token\ttitle:token_seq\tbrand:token\nB00A\tA lamp\tAcme\nx\tx (Acme)\tAcme\nitem 3\tthing\t\n");

    /* CLI numbers: selector byte, then the argument text */
    static const char *cli[] = {"\x00" "512", "\x08" "0.25", "\x38" "1,5,10", "\x18" "4", "\x20" "42",
                                "\x01" "-0", "\x62" "3,-1,2", "\x0b" "1e-3"};
    static const size_t cli_n[] = {4, 5, 7, 2, 3, 3, 7, 5};
    for (size_t i = 0; i < sizeof cli / sizeof cli[0]; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "seed%zu", i);
        put("fuzz_cli_numbers", nm, cli[i], cli_n[i]);
    }
}

/* Tokenizer texts: selector byte (vocabulary, flags), then the text. */
static void tokenizer_seeds(void)
{
    static const struct { const char *name; char sel; const char *text; } t[] = {
        {"spm_plain", 0, "Hello the world and 123 tea"},
        {"spm_user_token", 1, "title: <|item|> and <|item|>the end"},
        {"spm_special_parse", 1 | (2 << 3), "<s>x</s> <unk>"},
        {"bpe_default", 2, "the quick 12345 brown's fox, caf\303\251 \343\201\256!\n\n  x"},
        {"bpe_gpt2_addspecial", 3 | (1 << 3), "I'll see you'd they're   done."},
        {"bpe_llama3", 4, "HELLO'S 1234567 \r\n\tmixed \360\237\230\200 emoji"},
        {"bpe_qwen2_special", 5 | (2 << 3), "a<|endoftext|>b 2024"},
        {"bpe_starcoder", 6, "x1y22z333 def f(a, b): return a+b"},
        {"spm_invalid_utf8", 0 | (4 << 3), "\377bad \300\200 \355\240\200 end"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char buf[256];
        buf[0] = t[i].sel;
        size_t n = strlen(t[i].text);
        memcpy(buf + 1, t[i].text, n);
        put("fuzz_tokenizer", t[i].name, buf, n + 1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen_seeds OUT_DIR SHARED_DIR\n");
        return 2;
    }
    g_out = argv[1];
    g_shared = argv[2];
    lrgd_set_quiet(1);
    lrgd_set_threads(1);
    gguf_seeds();
    llama2c_seeds();
    dataset_seeds();
    tokenizer_seeds();
    return 0;
}
