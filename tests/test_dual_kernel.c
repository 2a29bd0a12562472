/* E3: the kernel dual of softmax attention with r positive random features.
 * Its error, averaged over feature seeds, falls as r grows over 2^4..2^12,
 * with a log-log slope near -1/2 (Monte Carlo rate). Same seed, same
 * features; the kernel estimate of lambda_t converges to the exact one. */
#include "lrgd/dual.h"
#include "model/model_impl.h"
#include "test.h"

#define NR 9
#define NSEED 6

static int run(lrgd_kernel_kind kind, double qk_scale, int assert_slope)
{
    const int nseed = t_size(NSEED, 1); /* valgrind: one seed, no statistics */
    lrgd_config cfg = {.dim = 64, .hidden_dim = 128, .n_layers = 3, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16,
                       .vocab_size = 5 + 80, .seq_len = 128, .norm_eps = 1e-5f, .rope_base = 10000.0f,
                       .rope_type = LRGD_ROPE_NEOX, .attn = LRGD_ATTN_SOFTMAX, .tied = 1};
    lrgd_model *m;
    CHECK_OK(lrgd_model_new_random(&cfg, 21, &m));
    if (!m) return 1;
    for (int l = 0; l < cfg.n_layers; l++) { /* scale the attention logits by qk_scale^2 */
        float *wq = (float *)m->layers[l].wq.data, *wk = (float *)m->layers[l].wk.data;
        for (int i = 0; i < cfg.n_heads * cfg.head_dim * cfg.dim; i++) wq[i] *= (float)qk_scale;
        for (int i = 0; i < cfg.n_kv_heads * cfg.head_dim * cfg.dim; i++) wk[i] *= (float)qk_scale;
    }
    m->rec = (lrgd_recvocab){.pad = 0, .bos = 1, .sep = 2, .ans = 3, .eos = 4, .n_special = 5, .n_items = 80};
    lrgd_prompt_vocab v;
    CHECK_OK(lrgd_prompt_vocab_of(m, &v));
    lrgd_rng rng;
    lrgd_rng_seed(&rng, 5, 0);
    int32_t h[3][8], q[10];
    lrgd_demo demos[3];
    for (int d = 0; d < 3; d++) {
        for (int i = 0; i < 8; i++) h[d][i] = (int32_t)lrgd_rng_below(&rng, 80);
        demos[d] = (lrgd_demo){h[d], 8, (int32_t)lrgd_rng_below(&rng, 80)};
    }
    for (int i = 0; i < 10; i++) q[i] = (int32_t)lrgd_rng_below(&rng, 80);
    lrgd_prompt *p;
    CHECK_OK(lrgd_prompt_build(&v, NULL, demos, 3, q, 10, &p));

    lrgd_dual_opts o = {.n_features = NR, .kernel = kind};
    double rs[NR], err[NR] = {0}, lerr[NR] = {0}, lay[3][NR] = {{0}};
    for (int i = 0; i < NR; i++) o.features[i] = 16 << i, rs[i] = 16 << i;
    int cnt = 0;
    for (int s = 0; s < nseed; s++) {
        o.seed = 1000 + s;
        lrgd_dual *d = NULL;
        CHECK_OK(lrgd_dual_run(m, p, &o, &d));
        if (!d) continue;
        for (int l = 0; l < cfg.n_layers; l++)
            for (int hh = 0; hh < cfg.n_heads; hh++) {
                const lrgd_dual_head *H = lrgd_dual_head_at(d, l, hh);
                CHECK(H->e2 <= 1e-5);
                for (int i = 0; i < NR; i++) {
                    err[i] += H->e3[i];
                    lay[l][i] += H->e3[i] / (nseed * cfg.n_heads);
                    lerr[i] += fabs(H->lambda_phi[i] - H->lambda);
                }
                if (s == 0) cnt++;
            }
        if (s == 0) { /* the same seed gives the same features and the same estimate */
            lrgd_dual *d2 = NULL;
            CHECK_OK(lrgd_dual_run(m, p, &o, &d2));
            if (d2) {
                const lrgd_dual_head *A = lrgd_dual_head_at(d, 1, 2), *B = lrgd_dual_head_at(d2, 1, 2);
                CHECK(memcmp(A->o_phi, B->o_phi, sizeof(double) * NR * cfg.head_dim) == 0);
                lrgd_dual_free(d2);
            }
        }
        lrgd_dual_free(d);
    }
    for (int i = 0; i < NR; i++) err[i] /= cnt * nseed, lerr[i] /= cnt * nseed;
    double slope = lrgd_loglog_slope(rs, err, NR);
    printf("E3 kernel dual (%s features, q/k scale %.2f), mean relative error over %d heads x %d seeds:\n",
           kind == LRGD_KERNEL_OPRF ? "optimal positive" : "positive", qk_scale, cnt, nseed);
    for (int i = 0; i < NR; i++)
        printf("  r = %5d  error %.4g  (layers %.3g %.3g %.3g)  |lambda_phi - lambda| %.3g\n", o.features[i], err[i],
               lay[0][i], lay[1][i], lay[2][i], lerr[i]);
    printf("E3 fitted log-log slope: %.3f (1/sqrt(r) is -0.5)\n", slope);
    for (int l = 0; l < cfg.n_layers; l++) printf("  layer %d slope %.3f\n", l, lrgd_loglog_slope(rs, lay[l], NR));
    if (assert_slope && t_full()) {
        CHECK_MSG(slope >= -0.65 && slope <= -0.35, "slope %.3f outside [-0.65, -0.35]", slope);
        CHECK_MSG(err[NR - 1] < err[0] / 8, "r = 4096 should be ~16x better than r = 16: %g vs %g", err[NR - 1], err[0]);
        CHECK_MSG(lerr[NR - 1] < lerr[0] / 4, "lambda_phi must converge: %g vs %g", lerr[NR - 1], lerr[0]);
    }
    if (t_full()) CHECK_MSG(err[NR - 1] < err[0] && err[NR - 1] < err[NR / 2], "the error must fall with r");
    lrgd_prompt_free(p);
    lrgd_model_free(m);
    return 0;
}

int main(void)
{
    lrgd_set_threads(2);
    run(LRGD_KERNEL_PRF, 0.5, 1);
    run(LRGD_KERNEL_OPRF, 0.5, 1);
    if (t_full()) {
        run(LRGD_KERNEL_PRF, 1.0, 0);
        run(LRGD_KERNEL_OPRF, 1.0, 0);
    }
    return t_finish("test_dual_kernel");
}
