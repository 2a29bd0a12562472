/* llama2.c checkpoints (version 0): 7 int32 header, then float32 weights in
 * a fixed order. Weights are used in place from the mapping. */
#include "format/formats.h"

#include <math.h>
#include <string.h>

lrgd_status lrgd_llama2c_parse(lrgd_mapped *file, const char *path, lrgd_model **out)
{
    *out = NULL;
    int32_t h[7];
    if (file->size < sizeof h)
        return lrgd_fail(LRGD_E_FORMAT, "%s: offset 0: truncated llama2.c header (%zu bytes, expected 28)", path, file->size);
    memcpy(h, file->data, sizeof h);
    lrgd_config c = {0};
    c.dim = h[0];
    c.hidden_dim = h[1];
    c.n_layers = h[2];
    c.n_heads = h[3];
    c.n_kv_heads = h[4];
    c.tied = h[5] > 0;
    c.vocab_size = h[5] > 0 ? h[5] : (h[5] == INT32_MIN ? 0 : -h[5]);
    c.seq_len = h[6];
    c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
    c.norm_eps = 1e-5f;
    c.rope_base = 10000.0f;
    c.rope_type = LRGD_ROPE_NORM;
    c.attn = LRGD_ATTN_SOFTMAX;
    lrgd_status st = lrgd_config_check(&c, path);
    if (st != LRGD_OK) return st;

    size_t L = (size_t)c.n_layers, D = (size_t)c.dim, F = (size_t)c.hidden_dim, V = (size_t)c.vocab_size;
    size_t hd = (size_t)c.head_dim, kvd = (size_t)c.n_kv_heads * hd, S = (size_t)c.seq_len;
    /* Every count is at most 2^24 * 2^16 * 2^10 < 2^63: products below cannot overflow 64 bits
     * except the seq_len term, which is checked. */
    size_t need = V * D + L * D + L * D * D + 2 * L * D * kvd + L * D * D + L * D + 3 * L * D * F + D;
    size_t rope;
    if (!lrgd_mul_ok(S, hd, &rope) || !lrgd_add_ok(need, rope, &need)) /* cos + sin: S * hd/2 each */
        return lrgd_fail(LRGD_E_FORMAT, "%s: seq_len %zu too large", path, S);
    if (!c.tied && !lrgd_add_ok(need, V * D, &need)) return lrgd_fail(LRGD_E_FORMAT, "%s: sizes overflow", path);
    size_t avail = (file->size - sizeof h) / sizeof(float);
    if (need > avail)
        return lrgd_fail(LRGD_E_FORMAT, "%s: truncated: header asks for %zu floats of weights, file holds %zu", path,
                         need, avail);
    if ((file->size - sizeof h) % sizeof(float) != 0 || need < avail)
        return lrgd_fail(LRGD_E_FORMAT, "%s: size %zu bytes does not match header (expected %zu)", path, file->size,
                         sizeof h + need * sizeof(float));

    lrgd_model *m;
    LRGD_TRY(lrgd_model_alloc(&c, &m));
    const float *p = (const float *)(file->data + sizeof h);
#define TAKE(n) (p += (n), p - (n))
    m->tok_embd = (lrgd_weight){LRGD_F32, TAKE(V * D), (int)V, (int)D};
    for (size_t l = 0; l < L; l++) m->layers[l].attn_norm = TAKE(D);
    for (size_t l = 0; l < L; l++) m->layers[l].wq = (lrgd_weight){LRGD_F32, TAKE(D * D), (int)D, (int)D};
    for (size_t l = 0; l < L; l++) m->layers[l].wk = (lrgd_weight){LRGD_F32, TAKE(kvd * D), (int)kvd, (int)D};
    for (size_t l = 0; l < L; l++) m->layers[l].wv = (lrgd_weight){LRGD_F32, TAKE(kvd * D), (int)kvd, (int)D};
    for (size_t l = 0; l < L; l++) m->layers[l].wo = (lrgd_weight){LRGD_F32, TAKE(D * D), (int)D, (int)D};
    for (size_t l = 0; l < L; l++) m->layers[l].ffn_norm = TAKE(D);
    for (size_t l = 0; l < L; l++) m->layers[l].w1 = (lrgd_weight){LRGD_F32, TAKE(F * D), (int)F, (int)D};
    for (size_t l = 0; l < L; l++) m->layers[l].w2 = (lrgd_weight){LRGD_F32, TAKE(D * F), (int)D, (int)F};
    for (size_t l = 0; l < L; l++) m->layers[l].w3 = (lrgd_weight){LRGD_F32, TAKE(F * D), (int)F, (int)D};
    m->out_norm = TAKE(D);
    (void)TAKE(S * hd); /* RoPE tables: recomputed, not read */
    m->output = c.tied ? m->tok_embd : (lrgd_weight){LRGD_F32, TAKE(V * D), (int)V, (int)D};
#undef TAKE
    /* Refuse non-finite weights: they would silently poison every output. */
    const float *w0 = (const float *)(file->data + sizeof h);
    for (size_t i = 0; i < need; i++)
        if (!isfinite(w0[i])) {
            lrgd_model_free(m);
            return lrgd_fail(LRGD_E_FORMAT, "%s: offset %zu: non-finite weight", path, sizeof h + i * sizeof(float));
        }
    m->file = *file;
    memset(file, 0, sizeof *file);
    *out = m;
    return LRGD_OK;
}
