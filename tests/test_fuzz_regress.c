/* Replays every fuzz seed (fuzz/corpus/NAME/) and every input that once
 * crashed a harness (fuzz/regress/NAME/) through the harness code itself,
 * without libFuzzer, so that the whole suite (Release, ASan+UBSan, valgrind)
 * re-checks them. A harness aborts on any property violation, so a regression
 * fails this test. Also checks that the seeds still are what they claim to
 * be: the valid ones parse (a seed the parsers reject exercises only errors). */
#include "test.h"

#include <dirent.h>
#include <stdint.h>

/* Each harness defines LLVMFuzzerTestOneInput: give each its own name. */
#define LLVMFuzzerTestOneInput fuzz_gguf_one
#include "../fuzz/fuzz_gguf.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_llama2c_one
#include "../fuzz/fuzz_llama2c.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_amazon_one
#include "../fuzz/fuzz_amazon.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_recbole_inter_one
#include "../fuzz/fuzz_recbole_inter.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_item_text_one
#include "../fuzz/fuzz_item_text.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_tokenizer_one
#include "../fuzz/fuzz_tokenizer.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_cli_numbers_one
#include "../fuzz/fuzz_cli_numbers.c"
#undef LLVMFuzzerTestOneInput
#include "../tools/cli.c"

#include "lrgd/gguf.h"
#include "lrgd/model.h"

typedef struct harness {
    const char *name;
    int (*one)(const uint8_t *, size_t);
} harness;

/* A new harness: one line here (and its fuzz/NAME.c include above). */
static const harness k_harnesses[] = {
    {"fuzz_gguf", fuzz_gguf_one},
    {"fuzz_llama2c", fuzz_llama2c_one},
    {"fuzz_amazon", fuzz_amazon_one},
    {"fuzz_recbole_inter", fuzz_recbole_inter_one},
    {"fuzz_item_text", fuzz_item_text_one},
    {"fuzz_tokenizer", fuzz_tokenizer_one},
    {"fuzz_cli_numbers", fuzz_cli_numbers_one},
};

static char g_fuzz[4096];

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Run every regular file of dir through h; returns how many. */
static int replay_dir(const harness *h, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    char *names[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 4096)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int ran = 0;
    for (int i = 0; i < n; i++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *buf;
        size_t size;
        if (lrgd_read_file(path, &buf, &size) == LRGD_OK) {
            h->one((const uint8_t *)buf, size); /* aborts on a violated property */
            lrgd_free(buf);
            ran++;
        } else {
            CHECK_MSG(0, "%s: %s", path, lrgd_last_error());
        }
        free(names[i]);
    }
    return ran;
}

static const char *fz(const char *rel)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, "%s/%s", g_fuzz, rel);
    return buf;
}

/* The valid seeds are valid: otherwise the fuzzer would start from error paths only. */
static void check_seeds_valid(void)
{
    static const char *models[] = {"corpus/fuzz_gguf/tiny_f32.gguf", "corpus/fuzz_gguf/tiny_q8_0.gguf",
                                   "corpus/fuzz_gguf/tiny_f16_gqa_untied_linear.gguf",
                                   "corpus/fuzz_gguf/rec_vocab.gguf", "corpus/fuzz_llama2c/tiny_tied.bin",
                                   "corpus/fuzz_llama2c/tiny_untied_gqa.bin"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        lrgd_model *m = NULL;
        CHECK_OK(lrgd_model_load(fz(models[i]), &m));
        lrgd_model_free(m);
    }
    static const char *vocabs[] = {"corpus/fuzz_gguf/vocab_spm.gguf", "corpus/fuzz_gguf/vocab_bpe_llama3.gguf"};
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) {
        lrgd_tokenizer *t = NULL;
        CHECK_OK(lrgd_tokenizer_load(fz(vocabs[i]), &t));
        lrgd_tokenizer_free(t);
    }
    lrgd_gguf *g = NULL;
    CHECK_OK(lrgd_gguf_open(fz("corpus/fuzz_gguf/meta_zoo.gguf"), &g));
    if (g) CHECK(lrgd_gguf_n_kv(g) >= 13 && lrgd_gguf_n_tensors(g) == 3);
    lrgd_gguf_free(g);
    static const struct { const char *path; lrgd_data_format fmt; } data[] = {
        {"corpus/fuzz_amazon/beauty_head.txt", LRGD_DATA_AMAZON},
        {"corpus/fuzz_amazon/edge.txt", LRGD_DATA_AMAZON},
        {"corpus/fuzz_recbole_inter/beauty_head.inter", LRGD_DATA_RECBOLE},
        {"corpus/fuzz_recbole_inter/shuffled_columns.inter", LRGD_DATA_RECBOLE},
        {"corpus/fuzz_recbole_inter/no_timestamp.inter", LRGD_DATA_RECBOLE},
    };
    for (size_t i = 0; i < sizeof data / sizeof data[0]; i++) {
        lrgd_dataset *ds = NULL;
        CHECK_OK(lrgd_dataset_load(fz(data[i].path), data[i].fmt, &ds));
        lrgd_dataset_free(ds);
    }
    /* the item-text seeds attach to the harness's fixed datasets */
    static const char *texts[] = {"corpus/fuzz_item_text/beauty_items_head.tsv",
                                  "corpus/fuzz_item_text/sports_keywords_head.tsv",
                                  "corpus/fuzz_item_text/no_header.tsv"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        lrgd_dataset *ds = NULL;
        CHECK_OK(lrgd_dataset_parse(k_amazon, sizeof k_amazon - 1, "fixed", LRGD_DATA_AMAZON, &ds));
        if (ds) CHECK_OK(lrgd_dataset_load_item_text(ds, fz(texts[i])));
        lrgd_dataset_free(ds);
    }
    lrgd_dataset *ds = NULL;
    CHECK_OK(lrgd_dataset_parse(k_recbole, sizeof k_recbole - 1, "fixed", LRGD_DATA_RECBOLE, &ds));
    if (ds) CHECK_OK(lrgd_dataset_load_item_text(ds, fz("corpus/fuzz_item_text/recbole.item")));
    lrgd_dataset_free(ds);
}

int main(void)
{
    const char *env = getenv("LRGD_FUZZDIR"), *td = getenv("LRGD_TESTDATA");
    if (env) snprintf(g_fuzz, sizeof g_fuzz, "%s", env);
    else snprintf(g_fuzz, sizeof g_fuzz, "%s/../../fuzz", td ? td : "tests/data");
    fuzz_init_once();
    int total = 0;
    for (size_t i = 0; i < sizeof k_harnesses / sizeof k_harnesses[0]; i++) {
        const harness *h = &k_harnesses[i];
        char dir[8192];
        snprintf(dir, sizeof dir, "%s/corpus/%s", g_fuzz, h->name);
        int seeds = replay_dir(h, dir);
        snprintf(dir, sizeof dir, "%s/regress/%s", g_fuzz, h->name);
        int regress = replay_dir(h, dir);
        printf("%-20s %3d seeds, %3d regression inputs\n", h->name, seeds, regress);
        CHECK_MSG(seeds >= 1, "%s: no seeds in %s/corpus/%s", h->name, g_fuzz, h->name);
        total += seeds + regress;
    }
    check_seeds_valid();
    printf("replayed %d inputs\n", total);
    return t_finish("test_fuzz_regress");
}
