/* Multi-layer stacking: the answer position's logits rebuilt from the
 * per-layer dual models alone (W_0 + dW at every layer, applied to a q_t
 * that the stacking computes itself; MLPs and residuals as usual) equal the
 * forward pass. Also for softmax models through the exact split; and a
 * control: dropping one demonstration's dW changes a linear model's logits. */
#include "dual/dual_impl.h"
#include "lrgd/dual.h"
#include "model/model_impl.h"
#include "test.h"

static double rel_logits(const float *a, const float *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

static void run(lrgd_attn_mode mode, lrgd_rope_type rope, int n_kv, uint64_t seed)
{
    lrgd_config cfg = {.dim = 48, .hidden_dim = 128, .n_layers = 4, .n_heads = 6, .n_kv_heads = n_kv,
                       .head_dim = 8, .vocab_size = 5 + 60, .seq_len = 128, .norm_eps = 1e-5f,
                       .rope_base = 500.0f, .rope_type = rope, .attn = mode, .tied = 1};
    lrgd_model *m;
    CHECK_OK(lrgd_model_new_random(&cfg, seed, &m));
    if (!m) return;
    m->rec = (lrgd_recvocab){.pad = 0, .bos = 1, .sep = 2, .ans = 3, .eos = 4, .n_special = 5, .n_items = 60};
    lrgd_prompt_vocab v;
    CHECK_OK(lrgd_prompt_vocab_of(m, &v));
    lrgd_rng r;
    lrgd_rng_seed(&r, seed, 1);
    int32_t h[3][9], q[12];
    lrgd_demo demos[3];
    for (int d = 0; d < 3; d++) {
        for (int i = 0; i < 9; i++) h[d][i] = (int32_t)lrgd_rng_below(&r, 60);
        demos[d] = (lrgd_demo){h[d], 5 + d * 2, (int32_t)lrgd_rng_below(&r, 60)};
    }
    for (int i = 0; i < 12; i++) q[i] = (int32_t)lrgd_rng_below(&r, 60);
    lrgd_prompt *p;
    CHECK_OK(lrgd_prompt_build(&v, NULL, demos, 3, q, 12, &p));
    lrgd_dual_opts o = {.flags = LRGD_DUAL_MATRICES};
    lrgd_dual *d = NULL;
    CHECK_OK(lrgd_dual_run(m, p, &o, &d));
    if (d) {
        float *lg = malloc(sizeof(float) * cfg.vocab_size);
        CHECK_OK(lrgd_dual_stack_logits(m, d, lg));
        double e = rel_logits(lg, lrgd_dual_logits(d), cfg.vocab_size);
        printf("stacking %s rope=%s kv=%d/%d: %d layers, logits relative error %.3g\n",
               mode ? "linear" : "softmax", rope ? "neox" : "norm", n_kv, cfg.n_heads, cfg.n_layers, e);
        CHECK_MSG(e <= 1e-5, "stacked logits vs forward: %g", e);
        /* the demonstrations matter: remove demo 1's update at every layer */
        if (mode == LRGD_ATTN_LINEAR) {
            size_t hh = (size_t)cfg.head_dim * cfg.head_dim;
            for (int i = 0; i < cfg.n_layers * cfg.n_heads; i++) memset(d->heads[i].dw + hh, 0, hh * sizeof(double));
        }
        float *lg2 = malloc(sizeof(float) * cfg.vocab_size);
        if (mode == LRGD_ATTN_LINEAR) {
            CHECK_OK(lrgd_dual_stack_logits(m, d, lg2));
            double e2 = rel_logits(lg2, lrgd_dual_logits(d), cfg.vocab_size);
            CHECK_MSG(e2 > 1e-3, "without demonstration 1 the logits must move: %g", e2);
        }
        free(lg2);
        free(lg);
        lrgd_dual_free(d);
    }
    /* linear stacking needs the matrices */
    if (mode == LRGD_ATTN_LINEAR) {
        lrgd_dual_opts o2 = {0};
        CHECK_OK(lrgd_dual_run(m, p, &o2, &d));
        float lg[65];
        CHECK(d && lrgd_dual_stack_logits(m, d, lg) == LRGD_E_INVALID);
        lrgd_dual_free(d);
    }
    lrgd_prompt_free(p);
    lrgd_model_free(m);
}

int main(void)
{
    lrgd_set_threads(2);
    run(LRGD_ATTN_LINEAR, LRGD_ROPE_NORM, 6, 11);
    run(LRGD_ATTN_LINEAR, LRGD_ROPE_NEOX, 2, 12);
    run(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NORM, 3, 13);
    run(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NEOX, 2, 14);
    return t_finish("test_dual_stack");
}
