/* Prompt builder: tokens plus the T / D_d / Q spans (layout in lrgd/prompt.h). */
#include "lrgd/prompt.h"

#include "model/model_impl.h"

#include <stdlib.h>
#include <string.h>

lrgd_status lrgd_prompt_vocab_of(const lrgd_model *m, lrgd_prompt_vocab *v)
{
    if (!m || !v) return lrgd_fail(LRGD_E_INVALID, "lrgd_prompt_vocab_of: NULL argument");
    const lrgd_recvocab *r = &m->rec;
    if (r->n_items <= 0)
        return lrgd_fail(LRGD_E_UNSUPPORTED, "model has no item vocabulary (no lrgd.* item keys): item prompts "
                                             "need a recommendation model");
    if (r->bos < 0 || r->sep < 0 || r->ans < 0)
        return lrgd_fail(LRGD_E_FORMAT, "model's item vocabulary lacks a special token (bos %d, sep %d, ans %d)",
                         r->bos, r->sep, r->ans);
    if (r->n_special < 0 || (int64_t)r->n_special + r->n_items > m->cfg.vocab_size)
        return lrgd_fail(LRGD_E_FORMAT, "model's item tokens %d..%d do not fit its vocabulary of %d", r->n_special,
                         r->n_special + r->n_items - 1, m->cfg.vocab_size);
    *v = (lrgd_prompt_vocab){r->bos, r->sep, r->ans, r->n_special, r->n_items};
    return LRGD_OK;
}

lrgd_status lrgd_prompt_new(lrgd_prompt **out)
{
    if (!out) return lrgd_fail(LRGD_E_INVALID, "lrgd_prompt_new: out is NULL");
    lrgd_prompt *p = calloc(1, sizeof *p);
    if (!p) return lrgd_fail(LRGD_E_NOMEM, "prompt: out of memory");
    p->ans_pos = -1;
    *out = p;
    return LRGD_OK;
}

void lrgd_prompt_free(lrgd_prompt *p)
{
    if (!p) return;
    free(p->tokens);
    free(p->segs);
    free(p);
}

static lrgd_status grow(void **buf, int *cap, int need, size_t elem)
{
    if (need <= *cap) return LRGD_OK;
    int nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > (1 << 28)) return lrgd_fail(LRGD_E_NOMEM, "prompt: more than 2^28 entries");
        nc *= 2;
    }
    void *nb = realloc(*buf, (size_t)nc * elem);
    if (!nb) return lrgd_fail(LRGD_E_NOMEM, "prompt: out of memory");
    *buf = nb;
    *cap = nc;
    return LRGD_OK;
}

lrgd_status lrgd_prompt_add(lrgd_prompt *p, lrgd_seg_kind kind, const int *tokens, int n)
{
    if (!p) return lrgd_fail(LRGD_E_INVALID, "lrgd_prompt_add: prompt is NULL");
    if (n < 0 || (n > 0 && !tokens)) return lrgd_fail(LRGD_E_INVALID, "lrgd_prompt_add: %d tokens at NULL", n);
    if (p->ans_pos >= 0) return lrgd_fail(LRGD_E_INVALID, "prompt: nothing may follow the query segment");
    switch (kind) {
    case LRGD_SEG_T:
        if (p->n_segs > 0) return lrgd_fail(LRGD_E_INVALID, "prompt: the instruction segment T must come first");
        break;
    case LRGD_SEG_D:
        if (n == 0) return lrgd_fail(LRGD_E_INVALID, "prompt: demonstration %d is empty", p->n_demos);
        break;
    case LRGD_SEG_Q:
        if (n == 0) return lrgd_fail(LRGD_E_INVALID, "prompt: the query segment is empty");
        break;
    default: return lrgd_fail(LRGD_E_INVALID, "prompt: unknown segment kind %d", (int)kind);
    }
    if (n > (1 << 28) - p->n_tokens) return lrgd_fail(LRGD_E_INVALID, "prompt: more than 2^28 tokens");
    LRGD_TRY(grow((void **)&p->tokens, &p->cap_tokens, p->n_tokens + n, sizeof(int)));
    LRGD_TRY(grow((void **)&p->segs, &p->cap_segs, p->n_segs + 1, sizeof(lrgd_segment)));
    if (n) memcpy(p->tokens + p->n_tokens, tokens, (size_t)n * sizeof(int));
    p->segs[p->n_segs++] = (lrgd_segment){kind, kind == LRGD_SEG_D ? p->n_demos : -1, p->n_tokens, p->n_tokens + n};
    p->n_tokens += n;
    if (kind == LRGD_SEG_D) p->n_demos++;
    if (kind == LRGD_SEG_Q) p->ans_pos = p->n_tokens - 1;
    return LRGD_OK;
}

lrgd_status lrgd_prompt_check(const lrgd_prompt *p, const lrgd_model *m, int n_ctx)
{
    if (!p || !m) return lrgd_fail(LRGD_E_INVALID, "lrgd_prompt_check: NULL argument");
    if (p->ans_pos < 0) return lrgd_fail(LRGD_E_INVALID, "prompt has no query segment (no answer position)");
    int lim = m->cfg.seq_len;
    if (n_ctx > 0 && n_ctx < lim) lim = n_ctx;
    if (p->n_tokens > lim)
        return lrgd_fail(LRGD_E_INVALID, "prompt of %d tokens (%d demonstrations) exceeds the context of %d", p->n_tokens,
                         p->n_demos, lim);
    for (int i = 0; i < p->n_tokens; i++)
        if (p->tokens[i] < 0 || p->tokens[i] >= m->cfg.vocab_size)
            return lrgd_fail(LRGD_E_INVALID, "prompt token %d at position %d is outside the vocabulary 0..%d",
                             p->tokens[i], i, m->cfg.vocab_size - 1);
    return LRGD_OK;
}

void lrgd_prompt_demo_map(const lrgd_prompt *p, int *map)
{
    for (int s = 0; s < p->n_segs; s++)
        for (int j = p->segs[s].begin; j < p->segs[s].end; j++) map[j] = p->segs[s].demo;
}

/* Items of one history as tokens, keeping the most recent max_hist. */
static lrgd_status put_items(const lrgd_prompt_vocab *v, int max_hist, const int32_t *items, int n, int *dst,
                             int *n_out, const char *what, int which)
{
    int skip = max_hist > 0 && n > max_hist ? n - max_hist : 0;
    for (int i = skip; i < n; i++) {
        if (items[i] < 0 || items[i] >= v->n_items) {
            if (which >= 0)
                return lrgd_fail(LRGD_E_INVALID, "%s %d: item %d at index %d is unknown (the vocabulary has %d items)",
                                 what, which, items[i], i, v->n_items);
            return lrgd_fail(LRGD_E_INVALID, "%s: item %d at index %d is unknown (the vocabulary has %d items)", what,
                             items[i], i, v->n_items);
        }
        dst[i - skip] = v->n_special + items[i];
    }
    *n_out = n - skip;
    return LRGD_OK;
}

lrgd_status lrgd_prompt_build(const lrgd_prompt_vocab *v, const lrgd_prompt_opts *opts, const lrgd_demo *demos,
                              int n_demos, const int32_t *query, int n_query, lrgd_prompt **out)
{
    if (!out) return lrgd_fail(LRGD_E_INVALID, "lrgd_prompt_build: out is NULL");
    *out = NULL;
    if (!v) return lrgd_fail(LRGD_E_INVALID, "lrgd_prompt_build: vocabulary is NULL");
    if (v->n_items <= 0 || v->n_special < 0 || v->bos < 0 || v->sep < 0 || v->ans < 0)
        return lrgd_fail(LRGD_E_INVALID, "prompt vocabulary is incomplete (bos %d sep %d ans %d, %d items)", v->bos,
                         v->sep, v->ans, v->n_items);
    int max_hist = opts ? opts->max_hist : 0, n_ctx = opts ? opts->n_ctx : 0;
    if (max_hist < 0 || n_ctx < 0)
        return lrgd_fail(LRGD_E_INVALID, "prompt options: max_hist %d and n_ctx %d must be >= 0", max_hist, n_ctx);
    if (n_demos < 0 || (n_demos > 0 && !demos))
        return lrgd_fail(LRGD_E_INVALID, "lrgd_prompt_build: %d demonstrations at NULL", n_demos);
    if (n_query <= 0 || !query) return lrgd_fail(LRGD_E_INVALID, "prompt: the query history is empty");

    /* The longest segment bounds the scratch buffer. */
    int longest = n_query;
    for (int d = 0; d < n_demos; d++) {
        if (demos[d].n_hist <= 0 || !demos[d].hist)
            return lrgd_fail(LRGD_E_INVALID, "prompt: demonstration %d has an empty history", d);
        if (demos[d].n_hist > longest) longest = demos[d].n_hist;
    }
    if (longest > (1 << 28)) return lrgd_fail(LRGD_E_INVALID, "prompt: a history of %d items is too long", longest);
    int *buf = malloc(((size_t)longest + 3) * sizeof(int));
    lrgd_prompt *p = NULL;
    lrgd_status st = buf ? lrgd_prompt_new(&p) : lrgd_fail(LRGD_E_NOMEM, "prompt: out of memory");
    if (st == LRGD_OK) st = lrgd_prompt_add(p, LRGD_SEG_T, &v->bos, 1);
    for (int d = 0; d < n_demos && st == LRGD_OK; d++) {
        int n = 0;
        st = put_items(v, max_hist, demos[d].hist, demos[d].n_hist, buf, &n, "demonstration", d);
        if (st == LRGD_OK && (demos[d].next < 0 || demos[d].next >= v->n_items))
            st = lrgd_fail(LRGD_E_INVALID, "demonstration %d: next item %d is unknown (the vocabulary has %d items)",
                           d, demos[d].next, v->n_items);
        if (st != LRGD_OK) break;
        buf[n] = v->ans;
        buf[n + 1] = v->n_special + demos[d].next;
        buf[n + 2] = v->sep;
        st = lrgd_prompt_add(p, LRGD_SEG_D, buf, n + 3);
    }
    if (st == LRGD_OK) {
        int n = 0;
        st = put_items(v, max_hist, query, n_query, buf, &n, "query", -1);
        if (st == LRGD_OK) {
            buf[n] = v->ans;
            st = lrgd_prompt_add(p, LRGD_SEG_Q, buf, n + 1);
        }
    }
    if (st == LRGD_OK && n_ctx > 0 && p->n_tokens > n_ctx)
        st = lrgd_fail(LRGD_E_INVALID, "prompt of %d tokens (%d demonstrations, max_hist %d) exceeds the context of %d",
                       p->n_tokens, n_demos, max_hist, n_ctx);
    free(buf);
    if (st != LRGD_OK) {
        lrgd_prompt_free(p);
        return st;
    }
    *out = p;
    return LRGD_OK;
}
