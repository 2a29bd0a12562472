/* The trained model as an lrgd_scorer: each user's prompt is
 * [BOS | demonstrations | history ANS] and the item scores are the logits
 * of the item tokens at the final ANS. Users are scored in batches: all
 * prompts of a batch go through the layers together (model/batch.h: GEMMs
 * over every token, attention per prompt, the last layer only past its keys
 * and values at the ANS rows), the prompts' common prefix computed once,
 * then one GEMM scores every item for every user. A slower path runs the
 * inference engine (lrgd_eval, KV cache) one prompt at a time; the two
 * agree (tests/test_train.c, tests/test_mbatch.c). */
#include "lrgd/eval.h"
#include "model/batch.h"
#include "train/train_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOKENS_PER_PASS 16384 /* bounds the activations of one forward pass */

typedef struct mscorer {
    lrgd_tmodel *t;
    int own_t;
    lrgd_model *loaded; /* the file's model when loaded from a path */
    lrgd_demo_index *ix;
    lrgd_model_scorer_opts o;
    int step;
    tm_ep ep;
    float *hidden;
    size_t cap_hidden;
    lrgd_state *state; /* engine path */
    float *logits;
    const lrgd_dataset *ds;
    lrgd_mbatch *mb;   /* batched path */
    int *soff;         /* [n_seq + 1] the prompts' offsets after the shared prefix */
    int *stok;         /* their tokens */
    int cap_soff, cap_stok;
} mscorer;

void lrgd_model_scorer_opts_init(lrgd_model_scorer_opts *o)
{
    memset(o, 0, sizeof *o);
    o->demos = LRGD_DEMOS_SIMILAR;
    o->k = 3;
    o->max_hist = 50;
    o->demo_hist = 20;
    o->seed = 42;
}

const char *lrgd_demo_mode_name(lrgd_demo_mode m)
{
    switch (m) {
    case LRGD_DEMOS_NONE: return "none";
    case LRGD_DEMOS_RANDOM: return "random";
    case LRGD_DEMOS_SIMILAR: return "similar";
    }
    return "?";
}

static lrgd_status add_prompt(mscorer *s, int u, const int32_t *hist, int n_hist)
{
    return tm_ep_add_prompt(&s->ep, s->ix, s->o.demos, s->o.k, s->o.seed, u, hist, n_hist, s->o.max_hist,
                            s->t->cfg.seq_len);
}

/* The prompts' common prefix (at most each prompt's length - 1: every
 * prompt keeps its ANS row), the shared prefix of the batch runner kept when
 * it still fits, so that a prefix common to many calls (an instruction,
 * fixed demonstrations) is computed once. */
static lrgd_status share_prefix(mscorer *s)
{
    const tm_ep *e = &s->ep;
    int lcp = e->off[1] - e->off[0] - 1;
    for (int q = 1; q < e->n_seq && lcp > 0; q++) {
        const int *a = e->tok + e->off[0], *b = e->tok + e->off[q];
        int n = e->off[q + 1] - e->off[q] - 1, k = 0;
        if (n < lcp) lcp = n;
        while (k < lcp && a[k] == b[k]) k++;
        lcp = k;
    }
    int cur = lrgd_mbatch_prefix_len(s->mb);
    const int *pt = lrgd_mbatch_prefix(s->mb);
    int keep = cur <= lcp;
    for (int k = 0; keep && k < cur; k++) keep = pt[k] == e->tok[e->off[0] + k];
    /* a single prompt has itself as its common prefix: not worth a pass of its own */
    if (keep && (e->n_seq < 2 || lcp - cur < 8)) return LRGD_OK;
    return lrgd_mbatch_set_prefix(s->mb, e->tok + e->off[0], e->n_seq >= 2 ? lcp : 0);
}

static lrgd_status score_fast(mscorer *s, int n, const int32_t *users, const int32_t *const *hist,
                              const int *hist_len, float *scores)
{
    const lrgd_config *c = &s->t->cfg;
    int D = c->dim, V = s->t->n_items;
    if (!s->mb) LRGD_TRY(lrgd_mbatch_new(s->t->view, &s->mb));
    int i0 = 0;
    while (i0 < n) {
        tm_ep_reset(&s->ep);
        int i1 = i0;
        while (i1 < n && (i1 == i0 || s->ep.n_tok < TOKENS_PER_PASS)) {
            LRGD_TRY(add_prompt(s, users[i1], hist[i1], hist_len[i1]));
            i1++;
        }
        int ns = s->ep.n_seq;
        size_t need = (size_t)ns * D;
        if (need > s->cap_hidden) {
            lrgd_free(s->hidden);
            s->hidden = lrgd_alloc_n(need, sizeof(float));
            s->cap_hidden = s->hidden ? need : 0;
            if (!s->hidden) return lrgd_fail(LRGD_E_NOMEM, "model scorer: out of memory");
        }
        if (ns + 1 > s->cap_soff || s->ep.n_tok > s->cap_stok) {
            free(s->soff);
            free(s->stok);
            s->cap_soff = ns + 1;
            s->cap_stok = s->ep.n_tok;
            s->soff = malloc((size_t)s->cap_soff * sizeof *s->soff);
            s->stok = malloc((size_t)s->cap_stok * sizeof *s->stok);
            if (!s->soff || !s->stok) {
                s->cap_soff = s->cap_stok = 0;
                return lrgd_fail(LRGD_E_NOMEM, "model scorer: out of memory");
            }
        }
        /* each prompt is [shared prefix | the rest]; the ANS row ends the rest */
        lrgd_status st = share_prefix(s);
        if (st == LRGD_OK) {
            int P = lrgd_mbatch_prefix_len(s->mb);
            s->soff[0] = 0;
            for (int q = 0; q < ns; q++) {
                int len = s->ep.off[q + 1] - s->ep.off[q] - P;
                memcpy(s->stok + s->soff[q], s->ep.tok + s->ep.off[q] + P, (size_t)len * sizeof(int));
                s->soff[q + 1] = s->soff[q] + len;
            }
            st = lrgd_mbatch_last(s->mb, ns, s->soff, s->stok, s->hidden);
        }
        if (st == LRGD_E_NUMERIC) /* name the user, not the batch row */
            return lrgd_mbatch_bad_seq(s->mb) >= 0
                       ? lrgd_fail_wrap(st, "the prompt of user %s",
                                        lrgd_dataset_user_name(s->ds, s->ep.query_user[lrgd_mbatch_bad_seq(s->mb)]))
                       : lrgd_fail_wrap(st, "the prefix shared by the prompts of users %s..%s",
                                        lrgd_dataset_user_name(s->ds, s->ep.query_user[0]),
                                        lrgd_dataset_user_name(s->ds, s->ep.query_user[ns - 1]));
        LRGD_TRY(st);
        lrgd_tmodel_item_scores(s->t, s->hidden, ns, scores + (size_t)i0 * V);
        i0 = i1;
    }
    return LRGD_OK;
}

static lrgd_status score_engine(mscorer *s, int n, const int32_t *users, const int32_t *const *hist,
                                const int *hist_len, float *scores)
{
    const lrgd_config *c = &s->t->cfg;
    int V = s->t->n_items;
    if (!s->state) {
        LRGD_TRY(lrgd_state_new(s->loaded ? s->loaded : s->t->view, c->seq_len, c->seq_len, &s->state));
        s->logits = lrgd_alloc_n((size_t)c->vocab_size, sizeof(float));
        if (!s->logits) return lrgd_fail(LRGD_E_NOMEM, "model scorer: out of memory");
    }
    for (int i = 0; i < n; i++) {
        tm_ep_reset(&s->ep);
        LRGD_TRY(add_prompt(s, users[i], hist[i], hist_len[i]));
        LRGD_TRY(lrgd_state_truncate(s->state, 0));
        LRGD_TRY(lrgd_eval(s->state, s->ep.tok, s->ep.n_tok, s->logits, 0));
        memcpy(scores + (size_t)i * V, s->logits + LRGD_N_SPECIAL, (size_t)V * sizeof(float));
    }
    return LRGD_OK;
}

static lrgd_status ms_score(void *ctx, int n, const int32_t *users, const int32_t *const *hist, const int *hist_len,
                            float *scores)
{
    mscorer *s = ctx;
    return s->o.engine ? score_engine(s, n, users, hist, hist_len, scores)
                       : score_fast(s, n, users, hist, hist_len, scores);
}

static void ms_destroy(void *ctx)
{
    mscorer *s = ctx;
    if (!s) return;
    if (s->own_t) lrgd_tmodel_free(s->t);
    lrgd_model_free(s->loaded);
    lrgd_demo_index_free(s->ix);
    tm_ep_free(&s->ep);
    lrgd_free(s->hidden);
    lrgd_state_free(s->state);
    lrgd_free(s->logits);
    lrgd_mbatch_free(s->mb);
    free(s->soff);
    free(s->stok);
    free(s);
}

static lrgd_status ms_make(const lrgd_split *sp, int step, lrgd_tmodel *t, int own_t, lrgd_model *loaded,
                           const lrgd_model_scorer_opts *o, lrgd_scorer *out)
{
    memset(out, 0, sizeof *out);
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    lrgd_status st = LRGD_OK;
    mscorer *s = calloc(1, sizeof *s);
    if (!s) st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    if (st == LRGD_OK) {
        s->t = t;
        s->own_t = own_t;
        s->loaded = loaded;
        s->o = *o;
        s->step = step;
        s->ds = ds;
        if (o->k < 0 || o->max_hist < 1 || o->demo_hist < 1)
            st = lrgd_fail(LRGD_E_INVALID, "model scorer: needs k >= 0, max_hist >= 1, demo_hist >= 1");
    }
    if (st == LRGD_OK && t->n_items != lrgd_dataset_n_items(ds))
        st = lrgd_fail(LRGD_E_INVALID, "model scorer: the model has %d item tokens, the dataset %d items", t->n_items,
                       lrgd_dataset_n_items(ds));
    /* the item token map must be the dataset's (the same file the model was trained on) */
    for (int i = 0; st == LRGD_OK && i < t->n_items; i++)
        if (t->view->rec.item_ext[i] != lrgd_dataset_item_ext(ds, i))
            st = lrgd_fail(LRGD_E_INVALID,
                           "model scorer: item token %d is item %lld in the model but item %lld in the dataset "
                           "(was the model trained on another file?)",
                           LRGD_N_SPECIAL + i, (long long)t->view->rec.item_ext[i],
                           (long long)lrgd_dataset_item_ext(ds, i));
    if (st == LRGD_OK) st = lrgd_demo_index_new(sp, step, o->demo_hist, &s->ix);
    if (st != LRGD_OK) {
        if (s) { s->own_t = 0; s->loaded = NULL; ms_destroy(s); }
        return st;
    }
    out->name = "model";
    out->ctx = s;
    out->n_items = t->n_items;
    out->max_batch = 0;
    out->score_batch = ms_score;
    out->score_cands = NULL;
    out->destroy = ms_destroy;
    return LRGD_OK;
}

lrgd_status lrgd_scorer_tmodel(const lrgd_split *sp, int step, lrgd_tmodel *t, const lrgd_model_scorer_opts *o,
                               lrgd_scorer *out)
{
    return ms_make(sp, step, t, 0, NULL, o, out);
}

lrgd_status lrgd_scorer_model(const lrgd_split *sp, int step, const char *path, const lrgd_model_scorer_opts *o,
                              lrgd_scorer *out)
{
    memset(out, 0, sizeof *out);
    lrgd_model *m;
    LRGD_TRY(lrgd_model_load(path, &m));
    lrgd_prompt_vocab pv;
    lrgd_status st = lrgd_prompt_vocab_of(m, &pv);
    if (st == LRGD_OK && (pv.n_special != LRGD_N_SPECIAL || pv.bos != LRGD_TOK_BOS || pv.sep != LRGD_TOK_SEP ||
                          pv.ans != LRGD_TOK_ANS))
        st = lrgd_fail(LRGD_E_UNSUPPORTED, "%s: special tokens differ from the embedded model's layout", path);
    lrgd_tmodel *t = NULL;
    if (st == LRGD_OK) st = lrgd_tmodel_from_model(m, &t);
    if (st == LRGD_OK) st = ms_make(sp, step, t, 1, m, o, out);
    if (st != LRGD_OK) {
        lrgd_tmodel_free(t);
        lrgd_model_free(m);
        return lrgd_fail_wrap(st, "%s", path);
    }
    return LRGD_OK;
}
