/* E1, E2, E4 and the stacked logits on TRAINED embedded models: a tiny
 * recommender is trained here for a few AdamW steps on ICL episodes built
 * with the prompt builder (planted sequences x_{i+1} = x_i + a mod N, a
 * shared by the demonstrations of the same kind), in softmax and linear mode,
 * with both RoPE forms and grouped-query heads. The training must lower the
 * loss (so the weights are no longer the random init), and then every check
 * must hold at <= 1e-5 as on random models. */
#include "lrgd/dual.h"
#include "lrgd/train.h"
#include "model/model_impl.h"
#include "test.h"

#define N_ITEMS 60
#define TOL 1e-5

static void seq(lrgd_rng *r, int a, int n, int32_t *out)
{
    out[0] = (int32_t)lrgd_rng_below(r, N_ITEMS);
    for (int i = 1; i < n; i++) out[i] = (out[i - 1] + a) % N_ITEMS;
}

/* One episode: 2 demonstrations and a query, all with step a; targets at
 * every answer marker. Returns the prompt (tokens/segments). */
static lrgd_prompt *episode(lrgd_rng *r, const lrgd_prompt_vocab *v, int *a_out)
{
    int a = lrgd_rng_below(r, 2) ? 1 : 3;
    int32_t h[3][10];
    lrgd_demo d[2];
    for (int k = 0; k < 2; k++) {
        int n = 3 + (int)lrgd_rng_below(r, 5);
        seq(r, a, n + 1, h[k]);
        d[k] = (lrgd_demo){h[k], n, h[k][n]};
    }
    int nq = 3 + (int)lrgd_rng_below(r, 6);
    seq(r, a, nq + 1, h[2]);
    lrgd_prompt *p = NULL;
    lrgd_prompt_build(v, NULL, d, 2, h[2], nq, &p);
    *a_out = v->n_special + h[2][nq]; /* the query's target token */
    return p;
}

static double train(lrgd_tmodel *t, int steps, uint64_t seed, double *first)
{
    const lrgd_model *m = lrgd_tmodel_model(t);
    lrgd_prompt_vocab v;
    CHECK_OK(lrgd_prompt_vocab_of(m, &v));
    lrgd_adamw_opts o;
    lrgd_adamw_opts_init(&o);
    o.lr = 1e-2;
    o.warmup_steps = 5;
    lrgd_rng r;
    lrgd_rng_seed(&r, seed, 0);
    enum { B = 8 };
    int tok[B * 64], tgt[B * 64], off[B + 1];
    double loss = 0, tail = 0;
    for (int s = 0; s < steps; s++) {
        off[0] = 0;
        for (int b = 0; b < B; b++) {
            int target;
            lrgd_prompt *p = episode(&r, &v, &target);
            int n = p->n_tokens;
            for (int i = 0; i < n; i++) {
                tok[off[b] + i] = p->tokens[i];
                /* the token after an ANS is the item to predict there */
                tgt[off[b] + i] = p->tokens[i] == v.ans ? (i + 1 < n ? p->tokens[i + 1] : target) : -1;
            }
            off[b + 1] = off[b] + n;
            lrgd_prompt_free(p);
        }
        lrgd_tbatch bt = {.n_seq = B, .seq_off = off, .tokens = tok, .embd = NULL, .targets = tgt};
        lrgd_tmodel_zero_grad(t);
        CHECK_OK(lrgd_tmodel_grad(t, &bt, 0, &loss, NULL));
        CHECK_OK(lrgd_adamw_step(t, &o, s, steps, NULL, NULL));
        if (s == 0) *first = loss;
        if (s >= steps - 10) tail += loss / 10;
    }
    return tail; /* mean of the last 10 batches */
}

static void run(lrgd_attn_mode attn, lrgd_rope_type rope, int n_kv)
{
    lrgd_config cfg = {.dim = 32, .hidden_dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = n_kv, .head_dim = 8,
                       .vocab_size = LRGD_N_SPECIAL + N_ITEMS, .seq_len = 64, .norm_eps = 1e-5f,
                       .rope_base = 10000.0f, .rope_type = rope, .attn = attn, .tied = 1};
    lrgd_tmodel *t = NULL;
    CHECK_OK(lrgd_tmodel_new(&cfg, 3, &t));
    if (!t) return;
    int steps = t_size(100, 20); /* valgrind: a short training, the same code */
    double first = 0, last = train(t, steps, 9, &first);
    const char *name = attn == LRGD_ATTN_LINEAR ? "linear" : "softmax";
    printf("trained %s rope=%s kv=%d/4: loss %.3f -> %.3f (mean of the last 10) over %d steps\n", name, rope ? "neox" : "norm", n_kv, first,
           last, steps);
    if (t_full()) CHECK_MSG(last < first - 0.25, "training must lower the loss: %.3f -> %.3f", first, last);

    const lrgd_model *m = lrgd_tmodel_model(t);
    lrgd_prompt_vocab v;
    CHECK_OK(lrgd_prompt_vocab_of(m, &v));
    lrgd_rng r;
    lrgd_rng_seed(&r, 1234, 0);
    double emax = 0, esum = 0, e4 = 0, lg = 0, lmin = 1, lmax = 0;
    int cnt = 0;
    for (int ep = 0; ep < 6; ep++) {
        int target;
        lrgd_prompt *p = episode(&r, &v, &target);
        lrgd_dual_opts o = {.flags = LRGD_DUAL_MATRICES | LRGD_DUAL_ALL_POSITIONS | LRGD_DUAL_GD};
        lrgd_dual *d = NULL;
        CHECK_OK(lrgd_dual_run(m, p, &o, &d));
        if (d) {
            for (int l = 0; l < cfg.n_layers; l++)
                for (int h = 0; h < cfg.n_heads; h++) {
                    const lrgd_dual_head *H = lrgd_dual_head_at(d, l, h);
                    double e = attn == LRGD_ATTN_LINEAR ? H->e1_pos_max : H->e2_pos_max;
                    double em = attn == LRGD_ATTN_LINEAR ? H->e1_pos_mean : H->e2_pos_mean;
                    double et = attn == LRGD_ATTN_LINEAR ? H->e1 : H->e2;
                    double es = attn == LRGD_ATTN_LINEAR ? H->e1_pos_scaled : H->e2_pos_scaled;
                    CHECK_MSG(et <= TOL && es <= TOL && e <= 10 * TOL, "%s layer %d head %d: %g at t, %g max, %g scaled",
                              name, l, h, et, e, es);
                    CHECK_MSG(H->e4 <= TOL, "E4 %g", H->e4);
                    if (attn == LRGD_ATTN_LINEAR) CHECK_MSG(H->e4_out <= TOL, "E4 output %g", H->e4_out);
                    emax = fmax(emax, e);
                    esum += em;
                    e4 = fmax(e4, H->e4);
                    double lam = attn == LRGD_ATTN_LINEAR ? H->lambda_abs : H->lambda;
                    lmin = fmin(lmin, lam);
                    lmax = fmax(lmax, lam);
                    cnt++;
                }
            float lgt[LRGD_N_SPECIAL + N_ITEMS];
            CHECK_OK(lrgd_dual_stack_logits(m, d, lgt));
            const float *fl = lrgd_dual_logits(d);
            double num = 0, den = 0;
            for (int i = 0; i < cfg.vocab_size; i++) {
                num += ((double)lgt[i] - fl[i]) * ((double)lgt[i] - fl[i]);
                den += (double)fl[i] * fl[i];
            }
            lg = fmax(lg, sqrt(num / den));
            lrgd_dual_free(d);
        }
        lrgd_prompt_free(p);
    }
    CHECK_MSG(lg <= TOL, "stacked logits %g", lg);
    printf("  E%d max %.3g mean %.3g (all positions, 6 prompts); E4 %.3g; stacked logits %.3g; %s %.3f..%.3f\n",
           attn == LRGD_ATTN_LINEAR ? 1 : 2, emax, esum / cnt, e4, lg,
           attn == LRGD_ATTN_LINEAR ? "lambda_abs" : "lambda", lmin, lmax);
    lrgd_tmodel_free(t);
}

int main(void)
{
    lrgd_set_threads(2);
    run(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NORM, 2);
    run(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NEOX, 4);
    run(LRGD_ATTN_LINEAR, LRGD_ROPE_NORM, 4);
    run(LRGD_ATTN_LINEAR, LRGD_ROPE_NEOX, 2);
    return t_finish("test_dual_trained");
}
