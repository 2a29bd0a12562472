/* Real weights: stories260K.bin (llama2.c) decodes greedily from BOS to the
 * 256 ids that llama2.c's own run.c produced in float32. */
#include "lrgd/lrgd.h"
#include "test.h"

static int read_ids(const char *path, int *ids, int cap)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, v;
    while (n < cap && fscanf(f, "%d", &v) == 1) ids[n++] = v;
    fclose(f);
    return n;
}

int main(void)
{
    int want[512];
    int n_want = read_ids(t_shared("models/stories260K.greedy-from-bos.txt"), want, 512);
    CHECK_MSG(n_want == 256, "expected 256 reference ids, read %d", n_want);
    if (n_want <= 0) return t_finish("test_stories");

    lrgd_model *m = NULL;
    CHECK_OK(lrgd_model_load(t_shared("models/stories260K.bin"), &m));
    if (!m) return t_finish("test_stories");
    const lrgd_config *c = lrgd_model_config(m);
    CHECK(c->dim == 64 && c->n_layers == 5 && c->n_heads == 8 && c->n_kv_heads == 4 && c->vocab_size == 512);

    int bos = 1, got[256], n_got = 0;
    lrgd_sampler greedy = {0.0f, 1.0f, 0};
    CHECK_OK(lrgd_generate(m, &bos, 1, n_want, &greedy, -1, got, &n_got));
    CHECK(n_got == n_want);
    int prefix = 0, same = 0;
    while (prefix < n_got && got[prefix] == want[prefix]) prefix++;
    for (int i = 0; i < n_got; i++) same += got[i] == want[i];
    printf("stories260K greedy from BOS: first %d of %d ids match llama2.c run.c (%d equal in total)\n", prefix,
           n_want, same);
    CHECK_MSG(prefix >= 200, "only the first %d ids match", prefix);

    /* The same through the cache by hand: one token at a time, argmax. */
    lrgd_state *s = NULL;
    CHECK_OK(lrgd_state_new(m, 64, 0, &s));
    float logits[512];
    int tok = bos, ok = 1;
    for (int i = 0; s && i < 64 && ok; i++) {
        CHECK_OK(lrgd_eval(s, &tok, 1, logits, 0));
        int best = 0;
        for (int v = 1; v < 512; v++)
            if (logits[v] > logits[best]) best = v;
        ok = best == want[i];
        tok = best;
    }
    CHECK_MSG(ok, "step-by-step argmax decoding diverges from the reference within 64 tokens");
    lrgd_state_free(s);
    lrgd_model_free(m);
    return t_finish("test_stories");
}
