#include "model/model_impl.h"

#include <stdlib.h>
#include <string.h>

/* Caps keep hostile headers from asking for absurd allocations. */
#define CAP_DIM (1 << 16)
#define CAP_LAYERS 1024
#define CAP_HEADS 1024
#define CAP_VOCAB (1 << 24)
#define CAP_SEQ (1 << 24)

lrgd_status lrgd_config_check(const lrgd_config *c, const char *what)
{
    if (c->dim <= 0 || c->dim > CAP_DIM) return lrgd_fail(LRGD_E_FORMAT, "%s: dim %d outside 1..%d", what, c->dim, CAP_DIM);
    if (c->hidden_dim <= 0 || c->hidden_dim > 4 * CAP_DIM)
        return lrgd_fail(LRGD_E_FORMAT, "%s: hidden_dim %d outside 1..%d", what, c->hidden_dim, 4 * CAP_DIM);
    if (c->n_layers <= 0 || c->n_layers > CAP_LAYERS)
        return lrgd_fail(LRGD_E_FORMAT, "%s: n_layers %d outside 1..%d", what, c->n_layers, CAP_LAYERS);
    if (c->n_heads <= 0 || c->n_heads > CAP_HEADS)
        return lrgd_fail(LRGD_E_FORMAT, "%s: n_heads %d outside 1..%d", what, c->n_heads, CAP_HEADS);
    if (c->n_kv_heads <= 0 || c->n_kv_heads > c->n_heads || c->n_heads % c->n_kv_heads != 0)
        return lrgd_fail(LRGD_E_FORMAT, "%s: n_kv_heads %d must divide n_heads %d", what, c->n_kv_heads, c->n_heads);
    if (c->dim % c->n_heads != 0)
        return lrgd_fail(LRGD_E_FORMAT, "%s: dim %d not divisible by n_heads %d", what, c->dim, c->n_heads);
    if (c->head_dim != c->dim / c->n_heads || c->head_dim % 2 != 0)
        return lrgd_fail(LRGD_E_FORMAT, "%s: head_dim %d must be dim/n_heads and even", what, c->head_dim);
    if (c->vocab_size <= 0 || c->vocab_size > CAP_VOCAB)
        return lrgd_fail(LRGD_E_FORMAT, "%s: vocab_size %d outside 1..%d", what, c->vocab_size, CAP_VOCAB);
    if (c->seq_len <= 0 || c->seq_len > CAP_SEQ)
        return lrgd_fail(LRGD_E_FORMAT, "%s: seq_len %d outside 1..%d", what, c->seq_len, CAP_SEQ);
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        return lrgd_fail(LRGD_E_FORMAT, "%s: norm_eps %g outside (0, 1)", what, (double)c->norm_eps);
    if (!(c->rope_base > 1 && c->rope_base < 1e12f))
        return lrgd_fail(LRGD_E_FORMAT, "%s: rope freq_base %g outside (1, 1e12)", what, (double)c->rope_base);
    if (c->rope_type != LRGD_ROPE_NORM && c->rope_type != LRGD_ROPE_NEOX)
        return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: rope type %d unsupported", what, (int)c->rope_type);
    if (c->attn != LRGD_ATTN_SOFTMAX && c->attn != LRGD_ATTN_LINEAR)
        return lrgd_fail(LRGD_E_UNSUPPORTED, "%s: attention mode %d unsupported", what, (int)c->attn);
    return LRGD_OK;
}

lrgd_status lrgd_model_alloc(const lrgd_config *cfg, lrgd_model **out)
{
    *out = NULL;
    LRGD_TRY(lrgd_config_check(cfg, "model config"));
    lrgd_model *m = calloc(1, sizeof *m);
    if (!m) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->layers = calloc((size_t)cfg->n_layers, sizeof *m->layers);
    if (!m->layers) { free(m); return lrgd_fail(LRGD_E_NOMEM, "out of memory"); }
    m->rec.pad = m->rec.bos = m->rec.sep = m->rec.ans = m->rec.eos = -1;
    *out = m;
    return LRGD_OK;
}

lrgd_status lrgd_model_own(lrgd_model *m, void *p)
{
    if (!p) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    if (m->n_owned == m->cap_owned) {
        int nc = m->cap_owned ? 2 * m->cap_owned : 16;
        void **no = realloc(m->owned, (size_t)nc * sizeof *no);
        if (!no) { lrgd_free(p); return lrgd_fail(LRGD_E_NOMEM, "out of memory"); }
        m->owned = no;
        m->cap_owned = nc;
    }
    m->owned[m->n_owned++] = p;
    return LRGD_OK;
}

const lrgd_config *lrgd_model_config(const lrgd_model *m) { return &m->cfg; }

void lrgd_gguf_free(struct lrgd_gguf *g); /* format/gguf.c */

void lrgd_model_free(lrgd_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) lrgd_free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    free(m->rec.item_ext);
    lrgd_gguf_free(m->gguf);
    lrgd_unmap_file(&m->file);
    free(m);
}
