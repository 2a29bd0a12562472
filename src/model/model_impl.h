/* Internal layout of a loaded model. The forward pass, the formats, the
 * trainer and the LRGD analysis all read weights through this struct. */
#ifndef LRGD_MODEL_IMPL_H
#define LRGD_MODEL_IMPL_H

#include "core/core.h"
#include "lrgd/model.h"

typedef struct lrgd_layer {
    const float *attn_norm;      /* [dim] */
    lrgd_weight wq, wk, wv, wo;  /* wq [n_heads*hd][dim], wk/wv [n_kv*hd][dim], wo [dim][n_heads*hd] */
    const float *ffn_norm;       /* [dim] */
    lrgd_weight w1, w2, w3;      /* gate [hidden][dim], down [dim][hidden], up [hidden][dim] */
} lrgd_layer;

/* Special tokens and the item <-> token map of a recommendation model
 * (lrgd.* GGUF keys). n_items == 0 for a plain text LLM. */
typedef struct lrgd_recvocab {
    int pad, bos, sep, ans, eos; /* -1 when absent */
    int n_special;               /* items are tokens n_special .. n_special+n_items-1 */
    int n_items;
    int64_t *item_ext;           /* [n_items] external item id of each item token, owned */
} lrgd_recvocab;

struct lrgd_gguf; /* format/gguf.h */

struct lrgd_model {
    lrgd_config cfg;
    lrgd_weight tok_embd;  /* [vocab][dim] */
    lrgd_layer *layers;    /* [n_layers], owned */
    const float *out_norm; /* [dim] */
    lrgd_weight output;    /* [vocab][dim]; equals tok_embd when tied */
    lrgd_recvocab rec;

    /* Ownership: weights point into the mapped file, or into `owned` when a
     * tensor had to be converted (e.g. F16 norms) or the model was built in memory. */
    lrgd_mapped file;
    struct lrgd_gguf *gguf; /* metadata of a GGUF model, NULL otherwise */
    void **owned;
    int n_owned, cap_owned;
};

/* Allocate a zeroed model with cfg and layers (no weights). */
lrgd_status lrgd_model_alloc(const lrgd_config *cfg, lrgd_model **out);
/* Keep p alive until the model is freed (p from lrgd_alloc). */
lrgd_status lrgd_model_own(lrgd_model *m, void *p);
/* Check that a config is self-consistent and within caps; names the first problem. */
lrgd_status lrgd_config_check(const lrgd_config *c, const char *what);

#endif
