/* Model files for tests/cli_dual.sh, and a check that they are what the
 * script assumes.
 *
 *   test_dual_cli --make-model OUT.gguf N_ITEMS softmax|linear [norm|neox]
 * writes a random recommendation model (2 layers, 4 heads, 2 kv heads,
 * head_dim 16) whose item k (k = 1..N_ITEMS) is external id k, the
 * Amazon files' numbering. Without arguments (ctest) it writes both kinds to
 * a temporary file and checks that they load back with the item vocabulary
 * and give the same logits as the model that was saved. */
#include "lrgd/gguf.h"
#include "model/model_impl.h"
#include "test.h"

#include <unistd.h>

static lrgd_status make(const char *path, int n_items, lrgd_attn_mode attn, lrgd_rope_type rope, lrgd_model **keep)
{
    lrgd_config c = {.dim = 64, .hidden_dim = 128, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16,
                     .vocab_size = 5 + n_items, .seq_len = 512, .norm_eps = 1e-5f, .rope_base = 10000.0f,
                     .rope_type = rope, .attn = attn, .tied = 1};
    lrgd_model *m;
    LRGD_TRY(lrgd_model_new_random(&c, 7, &m));
    m->rec = (lrgd_recvocab){.pad = 0, .bos = 1, .sep = 2, .ans = 3, .eos = 4, .n_special = 5, .n_items = n_items};
    m->rec.item_ext = malloc(sizeof(int64_t) * (size_t)n_items);
    if (!m->rec.item_ext) {
        lrgd_model_free(m);
        return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < n_items; i++) m->rec.item_ext[i] = i + 1;
    lrgd_status st = lrgd_model_save_gguf(m, path, LRGD_F32, "lrgd dual test");
    if (keep && st == LRGD_OK) *keep = m;
    else lrgd_model_free(m);
    return st;
}

static void logits_of(const lrgd_model *m, float *out)
{
    int toks[6] = {1, 5, 9, 3, 12, 3};
    lrgd_state *s;
    CHECK_OK(lrgd_state_new(m, 16, 16, &s));
    CHECK_OK(lrgd_eval(s, toks, 6, out, 0));
    lrgd_state_free(s);
}

int main(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "--make-model")) {
        int n = atoi(argv[3]);
        lrgd_attn_mode a = !strcmp(argv[4], "linear") ? LRGD_ATTN_LINEAR : LRGD_ATTN_SOFTMAX;
        lrgd_rope_type r = argc > 5 && !strcmp(argv[5], "neox") ? LRGD_ROPE_NEOX : LRGD_ROPE_NORM;
        lrgd_status st = n > 0 ? make(argv[2], n, a, r, NULL) : lrgd_fail(LRGD_E_INVALID, "N_ITEMS must be > 0");
        if (st != LRGD_OK) fprintf(stderr, "test_dual_cli: %s\n", lrgd_last_error());
        return st == LRGD_OK ? 0 : 2;
    }
    char path[256];
    snprintf(path, sizeof path, "/tmp/lrgd_test_dual_cli_%d.gguf", (int)getpid());
    for (int a = 0; a < 2; a++) {
        lrgd_model *m = NULL, *back = NULL;
        CHECK_OK(make(path, 40, a ? LRGD_ATTN_LINEAR : LRGD_ATTN_SOFTMAX, a ? LRGD_ROPE_NEOX : LRGD_ROPE_NORM, &m));
        CHECK_OK(lrgd_model_load(path, &back));
        if (m && back) {
            CHECK(back->cfg.attn == m->cfg.attn && back->rec.n_items == 40 && back->rec.ans == 3);
            CHECK(back->rec.item_ext[0] == 1 && back->rec.item_ext[39] == 40);
            float l1[45], l2[45];
            logits_of(m, l1);
            logits_of(back, l2);
            double worst = 0;
            for (int i = 0; i < 45; i++) worst = fmax(worst, fabs((double)l1[i] - l2[i]));
            CHECK_MSG(worst < 1e-4, "saved model's logits differ by %g", worst);
        }
        lrgd_model_free(m);
        lrgd_model_free(back);
    }
    unlink(path);
    return t_finish("test_dual_cli");
}
