/* Tiny random recommendation models for the unit tests: a 2-layer
 * transformer over a dataset's items (vocabulary LRGD_N_SPECIAL + items,
 * item ids set from the dataset), with weights scaled up so that prompts
 * matter, and a small planted dataset to go with it. Header-only; static
 * inline functions. */
#ifndef LRGD_MODEL_FIXTURES_H
#define LRGD_MODEL_FIXTURES_H

#include "core/core.h"
#include "lrgd/effect.h"
#include "lrgd/train.h"

#include <stdlib.h>

/* the planted synthetic world: 2 item groups, 20 users per cluster, the
 * other options at their defaults */
static inline lrgd_status mf_small_synth(lrgd_synth **out)
{
    lrgd_synth_opts so;
    lrgd_synth_opts_init(&so);
    so.n_groups = 2;
    so.users_per_cluster = 20;
    return lrgd_synth_new(&so, out);
}

/* lrgd_tmodel_set_item_ids with the dataset's external item ids */
static inline void mf_set_item_ids(lrgd_tmodel *t, const lrgd_dataset *ds)
{
    int NI = lrgd_dataset_n_items(ds);
    int64_t *ext = malloc(sizeof(int64_t) * (size_t)NI);
    for (int i = 0; i < NI; i++) ext[i] = lrgd_dataset_item_ext(ds, i);
    lrgd_tmodel_set_item_ids(t, ext);
    free(ext);
}

/* dim 16, 2 heads over 1 kv head, seed 3, every weight times 20 */
static inline lrgd_tmodel *mf_random_model(const lrgd_dataset *ds, lrgd_attn_mode mode)
{
    int NI = lrgd_dataset_n_items(ds);
    lrgd_config c = {0};
    c.dim = 16;
    c.hidden_dim = 32;
    c.n_layers = 2;
    c.n_heads = 2;
    c.n_kv_heads = 1;
    c.head_dim = 8;
    c.vocab_size = LRGD_N_SPECIAL + NI;
    c.seq_len = 128;
    c.norm_eps = 1e-5f;
    c.rope_base = 10000.0f;
    c.rope_type = LRGD_ROPE_NORM;
    c.attn = mode;
    c.tied = 1;
    lrgd_tmodel *t = NULL;
    if (lrgd_tmodel_new(&c, 3, &t) != LRGD_OK) return NULL;
    mf_set_item_ids(t, ds);
    float *p = lrgd_tmodel_params(t); /* weights large enough that prompts matter */
    for (size_t i = 0; i < lrgd_tmodel_n_params(t); i++) p[i] *= 20.0f;
    return t;
}

#endif
