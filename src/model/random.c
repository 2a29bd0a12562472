/* A model with random float32 weights, built in memory. Used by tests and
 * benchmarks, and as the starting point of training. */
#include "model/model_impl.h"

#include <math.h>

/* Each tensor draws from its own RNG stream, so adding a tensor or changing
 * one shape does not reshuffle the others. */
static float *rand_tensor(lrgd_model *m, uint64_t seed, uint64_t stream, size_t rows, size_t cols, double mean,
                          double std, lrgd_status *st)
{
    if (*st != LRGD_OK) return NULL;
    size_t n;
    float *p = lrgd_mul_ok(rows, cols, &n) ? lrgd_alloc_n(n, sizeof(float)) : NULL;
    if (!p) {
        *st = lrgd_fail(LRGD_E_NOMEM, "random model: cannot allocate a %zu x %zu tensor", rows, cols);
        return NULL;
    }
    if ((*st = lrgd_model_own(m, p)) != LRGD_OK) return NULL;
    lrgd_rng r;
    lrgd_rng_seed(&r, seed, stream);
    for (size_t i = 0; i < n; i++) p[i] = (float)(mean + std * lrgd_rng_normal(&r));
    return p;
}

static lrgd_weight rand_weight(lrgd_model *m, uint64_t seed, uint64_t stream, int rows, int cols, double std,
                               lrgd_status *st)
{
    const float *p = rand_tensor(m, seed, stream, (size_t)rows, (size_t)cols, 0.0, std, st);
    return (lrgd_weight){LRGD_F32, p, rows, cols};
}

lrgd_status lrgd_model_new_random(const lrgd_config *cfg, uint64_t seed, lrgd_model **out)
{
    if (!out) return lrgd_fail(LRGD_E_INVALID, "lrgd_model_new_random: out is NULL");
    *out = NULL;
    if (!cfg) return lrgd_fail(LRGD_E_INVALID, "lrgd_model_new_random: config is NULL");
    lrgd_model *m;
    LRGD_TRY(lrgd_model_alloc(cfg, &m));
    const lrgd_config *c = &m->cfg;
    const int D = c->dim, F = c->hidden_dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    /* N(0, 1/fan_in) keeps each projection's output at the scale of its input;
     * the two matrices that write into the residual stream are further scaled
     * so that the stream grows by O(1) over all layers, not per layer. */
    const double s_in = 1.0 / sqrt((double)D), s_res = 1.0 / sqrt(2.0 * c->n_layers);
    lrgd_status st = LRGD_OK;
    uint64_t k = 0;

    m->tok_embd = rand_weight(m, seed, k++, c->vocab_size, D, 1.0, &st);
    for (int l = 0; l < c->n_layers; l++) {
        lrgd_layer *L = &m->layers[l];
        L->attn_norm = rand_tensor(m, seed, k++, 1, (size_t)D, 1.0, 0.1, &st);
        L->wq = rand_weight(m, seed, k++, qd, D, s_in, &st);
        L->wk = rand_weight(m, seed, k++, kvd, D, s_in, &st);
        L->wv = rand_weight(m, seed, k++, kvd, D, s_in, &st);
        L->wo = rand_weight(m, seed, k++, D, qd, s_res / sqrt((double)qd), &st);
        L->ffn_norm = rand_tensor(m, seed, k++, 1, (size_t)D, 1.0, 0.1, &st);
        L->w1 = rand_weight(m, seed, k++, F, D, s_in, &st);
        L->w2 = rand_weight(m, seed, k++, D, F, s_res / sqrt((double)F), &st);
        L->w3 = rand_weight(m, seed, k++, F, D, s_in, &st);
    }
    /* Tied: logits are dot products with N(0, 1) embedding rows, so the final
     * norm carries the 1/sqrt(dim) that an untied output matrix would. */
    m->out_norm = rand_tensor(m, seed, k++, 1, (size_t)D, c->tied ? s_in : 1.0, c->tied ? 0.1 * s_in : 0.1, &st);
    m->output = c->tied ? m->tok_embd : rand_weight(m, seed, k++, c->vocab_size, D, s_in, &st);
    if (st != LRGD_OK) {
        lrgd_model_free(m);
        return st;
    }
    *out = m;
    return LRGD_OK;
}
