/* Selections (each user's demonstrations, as items) and the scorer that
 * evaluates them: user u's prompt is [BOS | u's demonstrations | history ANS],
 * optionally with every demonstration perturbed at scoring time. */
#include "effect/effect_impl.h"
#include "train/train_impl.h"

#include <stdlib.h>
#include <string.h>

/* One user's demonstrations packed as [src, n_hist, next, hist...] per demonstration. */
typedef struct sel_user {
    int n, len;
    int32_t *buf;
} sel_user;

struct lrgd_selection {
    int n_users;
    sel_user *u;
};

lrgd_status lrgd_selection_new(int n_users, lrgd_selection **out)
{
    *out = NULL;
    if (n_users < 0) return lrgd_fail(LRGD_E_INVALID, "selection: %d users", n_users);
    lrgd_selection *s = calloc(1, sizeof *s);
    if (!s || !(s->u = calloc((size_t)(n_users ? n_users : 1), sizeof *s->u))) {
        free(s);
        return lrgd_fail(LRGD_E_NOMEM, "selection: out of memory");
    }
    s->n_users = n_users;
    *out = s;
    return LRGD_OK;
}

void lrgd_selection_free(lrgd_selection *s)
{
    if (!s) return;
    for (int u = 0; u < s->n_users; u++) free(s->u[u].buf);
    free(s->u);
    free(s);
}

int lrgd_selection_n_users(const lrgd_selection *s) { return s->n_users; }

int lrgd_selection_count(const lrgd_selection *s, int u) { return u >= 0 && u < s->n_users ? s->u[u].n : 0; }

lrgd_status lrgd_selection_set(lrgd_selection *s, int u, const lrgd_demo *demos, const int32_t *src, int n)
{
    if (u < 0 || u >= s->n_users) return lrgd_fail(LRGD_E_INVALID, "selection: user %d outside 0..%d", u, s->n_users - 1);
    if (n < 0) return lrgd_fail(LRGD_E_INVALID, "selection: %d demonstrations", n);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (demos[i].n_hist < 1) return lrgd_fail(LRGD_E_INVALID, "selection: demonstration %d of user %d is empty", i, u);
        len += 3 + (size_t)demos[i].n_hist;
    }
    int32_t *buf = len ? malloc(len * sizeof *buf) : NULL;
    if (len && !buf) return lrgd_fail(LRGD_E_NOMEM, "selection: out of memory");
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        buf[k++] = src ? src[i] : -1;
        buf[k++] = demos[i].n_hist;
        buf[k++] = demos[i].next;
        memcpy(buf + k, demos[i].hist, (size_t)demos[i].n_hist * sizeof *buf);
        k += (size_t)demos[i].n_hist;
    }
    free(s->u[u].buf);
    s->u[u] = (sel_user){n, (int)len, buf};
    return LRGD_OK;
}

lrgd_status lrgd_selection_get(const lrgd_selection *s, int u, int i, lrgd_demo *d, int32_t *src)
{
    if (u < 0 || u >= s->n_users || i < 0 || i >= s->u[u].n)
        return lrgd_fail(LRGD_E_INVALID, "selection: no demonstration %d of user %d", i, u);
    const int32_t *b = s->u[u].buf;
    for (int j = 0; j < i; j++) b += 3 + b[1];
    if (src) *src = b[0];
    d->n_hist = b[1];
    d->next = b[2];
    d->hist = b + 3;
    return LRGD_OK;
}

lrgd_status lrgd_selection_copy(const lrgd_selection *s, lrgd_selection **out)
{
    LRGD_TRY(lrgd_selection_new(s->n_users, out));
    for (int u = 0; u < s->n_users; u++) {
        if (!s->u[u].n) continue;
        int32_t *b = malloc((size_t)s->u[u].len * sizeof *b);
        if (!b) {
            lrgd_selection_free(*out);
            *out = NULL;
            return lrgd_fail(LRGD_E_NOMEM, "selection: out of memory");
        }
        memcpy(b, s->u[u].buf, (size_t)s->u[u].len * sizeof *b);
        (*out)->u[u] = (sel_user){s->u[u].n, s->u[u].len, b};
    }
    return LRGD_OK;
}

lrgd_status lrgd_selection_baseline(const lrgd_split *sp, const lrgd_demo_index *ix, lrgd_demo_mode mode, int k,
                                    uint64_t seed, const int32_t *users, int n_users, lrgd_selection *s)
{
    int step = lrgd_demo_index_step(ix);
    if (!users) {
        users = lrgd_split_users(sp);
        n_users = lrgd_split_n_users(sp);
    }
    if (k < 0 || k > 256) return lrgd_fail(LRGD_E_INVALID, "selection: k = %d outside 0..256", k);
    int32_t du[256];
    lrgd_demo dm[256];
    for (int i = 0; i < n_users; i++) {
        int u = users[i];
        const int32_t *h;
        int nh;
        lrgd_split_history(sp, step, u, &h, &nh);
        if (nh < 1) return lrgd_fail(LRGD_E_INVALID, "selection: user %d has no history at step %d", u, step);
        int nd = 0;
        LRGD_TRY(tm_prompt_demos(ix, mode, k, seed, u, h, nh, du, &nd));
        for (int j = 0; j < nd; j++) LRGD_TRY(lrgd_demo_index_demo(ix, du[j], &dm[j], NULL));
        LRGD_TRY(lrgd_selection_set(s, u, dm, du, nd));
    }
    return LRGD_OK;
}

/* ---- the scorer ------------------------------------------------------------- */

void lrgd_sel_scorer_opts_init(lrgd_sel_scorer_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_hist = 50;
    o->demo_hist = 20;
    o->seed = 42;
}

typedef struct sscorer {
    lrgd_tmodel *t;
    const lrgd_selection *sel;
    lrgd_sel_scorer_opts o;
    lrgd_prompt_vocab v;
    int *tok, *off, *ans;
    float *embd, *hidden, *noise;
    int32_t *hbuf;
    int cap_tok, cap_seq;
} sscorer;

static void ss_destroy(void *ctx)
{
    sscorer *s = ctx;
    if (!s) return;
    free(s->tok);
    free(s->off);
    free(s->ans);
    lrgd_free(s->embd);
    lrgd_free(s->hidden);
    lrgd_free(s->noise);
    free(s->hbuf);
    free(s);
}

#define SS_TOKENS_PER_PASS 16384

static lrgd_status ss_reserve(sscorer *s, int n_tok, int n_seq)
{
    int D = lrgd_tmodel_config(s->t)->dim;
    if (n_tok > s->cap_tok) {
        int nc = n_tok + n_tok / 2;
        int *t = realloc(s->tok, (size_t)nc * sizeof *t);
        if (t) s->tok = t;
        lrgd_free(s->embd);
        lrgd_free(s->hidden);
        s->embd = lrgd_alloc_n((size_t)nc * D, sizeof(float));
        s->hidden = lrgd_alloc_n((size_t)nc * D, sizeof(float));
        if (!t || !s->embd || !s->hidden) return lrgd_fail(LRGD_E_NOMEM, "selection scorer: out of memory");
        s->cap_tok = nc;
    }
    if (n_seq + 1 > s->cap_seq) {
        int nc = 2 * (n_seq + 1);
        int *o = realloc(s->off, (size_t)nc * sizeof *o), *a = realloc(s->ans, (size_t)nc * sizeof *a);
        if (o) s->off = o;
        if (a) s->ans = a;
        if (!o || !a) return lrgd_fail(LRGD_E_NOMEM, "selection scorer: out of memory");
        s->cap_seq = nc;
    }
    return LRGD_OK;
}

/* Append user u's prompt; demonstrations are dropped from the front until it fits. */
static lrgd_status ss_add(sscorer *s, int *n_tok, int *n_seq, int u, const int32_t *hist, int n_hist, int *noisy_rows,
                          int *n_noisy)
{
    const lrgd_config *c = lrgd_tmodel_config(s->t);
    int nd = lrgd_selection_count(s->sel, u);
    int nq = n_hist < s->o.max_hist ? n_hist : s->o.max_hist;
    if (nq > c->seq_len - 2) nq = c->seq_len - 2;
    if (nq < 1) return lrgd_fail(LRGD_E_INVALID, "selection scorer: user %d has an empty history", u);
    lrgd_demo dm[64];
    int dl[64], first = 0, need = 1 + nq + 1;
    if (nd > 64) nd = 64;
    const lrgd_perturb *pt = &s->o.perturb;
    int perturb = lrgd_perturb_active(pt);
    for (int i = 0; i < nd; i++) {
        LRGD_TRY(lrgd_selection_get(s->sel, u, i, &dm[i], NULL));
        if (dm[i].n_hist > 4096) { /* only the most recent demo_hist (<= 4000) items are used */
            dm[i].hist += dm[i].n_hist - 4096;
            dm[i].n_hist = 4096;
        }
        if (perturb && (pt->drop > 0 || pt->sub_random > 0 || pt->sub_pop > 0 || pt->shuffle > 0)) {
            lrgd_demo pd;
            LRGD_TRY(lrgd_perturb_items(pt, s->o.pop, s->v.n_items, s->o.seed, u, i, 0, &dm[i],
                                        s->hbuf + (size_t)i * 4096, &pd));
            dm[i] = pd;
        }
        int nh = dm[i].n_hist < s->o.demo_hist ? dm[i].n_hist : s->o.demo_hist;
        dl[i] = nh + 3;
        need += dl[i];
    }
    while (need > c->seq_len && first < nd) need -= dl[first++];
    LRGD_TRY(ss_reserve(s, *n_tok + need, *n_seq + 1));
    int k = *n_tok;
    s->tok[k++] = s->v.bos;
    for (int i = first; i < nd; i++) {
        int n;
        LRGD_TRY(lrgd_demo_tokens(&s->v, &dm[i], s->o.demo_hist, s->tok + k, &n));
        noisy_rows[(*n_noisy)++] = k;      /* row range start */
        noisy_rows[(*n_noisy)++] = n;      /* and length */
        noisy_rows[(*n_noisy)++] = i;      /* demo index for the key */
        noisy_rows[(*n_noisy)++] = u;
        k += n;
    }
    int n;
    LRGD_TRY(lrgd_query_tokens(&s->v, hist, n_hist, nq, s->tok + k, &n));
    k += n;
    s->off[*n_seq + 1] = k;
    s->ans[*n_seq] = k - 1;
    (*n_seq)++;
    *n_tok = k;
    return LRGD_OK;
}

static lrgd_status ss_score(void *ctx, int n, const int32_t *users, const int32_t *const *hist, const int *hist_len,
                            float *scores)
{
    sscorer *s = ctx;
    const lrgd_config *c = lrgd_tmodel_config(s->t);
    int D = c->dim, V = s->v.n_items;
    int *noisy = malloc(sizeof(int) * 4 * 64 * (size_t)(n > 0 ? n : 1));
    if (!noisy) return lrgd_fail(LRGD_E_NOMEM, "selection scorer: out of memory");
    lrgd_status st = LRGD_OK;
    int i0 = 0;
    while (i0 < n && st == LRGD_OK) {
        int n_tok = 0, n_seq = 0, n_noisy = 0, i1 = i0;
        if ((st = ss_reserve(s, 1, 1)) != LRGD_OK) break;
        s->off[0] = 0;
        while (i1 < n && (i1 == i0 || n_tok < SS_TOKENS_PER_PASS) && st == LRGD_OK) {
            st = ss_add(s, &n_tok, &n_seq, users[i1], hist[i1], hist_len[i1], noisy, &n_noisy);
            i1++;
        }
        if (st != LRGD_OK) break;
        const float *embd = NULL;
        if (s->o.perturb.noise > 0) {
            lrgd_embed(s->embd, &lrgd_tmodel_model(s->t)->tok_embd, s->tok, n_tok);
            for (int r = 0; r < n_noisy; r += 4) {
                int row = noisy[r], len = noisy[r + 1];
                float *nz = lrgd_alloc_n((size_t)len * D, sizeof(float));
                if (!nz) { st = lrgd_fail(LRGD_E_NOMEM, "selection scorer: out of memory"); break; }
                lrgd_perturb_noise(&s->o.perturb, s->o.seed, noisy[r + 3], noisy[r + 2], 0, s->embd + (size_t)row * D,
                                   len, D, nz);
                for (size_t j = 0; j < (size_t)len * D; j++) s->embd[(size_t)row * D + j] += nz[j];
                lrgd_free(nz);
            }
            embd = s->embd;
        }
        if (st != LRGD_OK) break;
        lrgd_tbatch b = {n_seq, s->off, s->tok, embd, NULL};
        if ((st = lrgd_tmodel_forward(s->t, &b, 0, NULL, NULL, s->hidden)) != LRGD_OK) break;
        for (int q = 0; q < n_seq; q++)
            memmove(s->hidden + (size_t)q * D, s->hidden + (size_t)s->ans[q] * D, (size_t)D * sizeof(float));
        lrgd_tmodel_item_scores(s->t, s->hidden, n_seq, scores + (size_t)i0 * V);
        i0 = i1;
    }
    free(noisy);
    return st;
}

lrgd_status lrgd_scorer_selection(lrgd_tmodel *t, const lrgd_selection *sel, const lrgd_sel_scorer_opts *o,
                                  lrgd_scorer *out)
{
    memset(out, 0, sizeof *out);
    if (o->max_hist < 1 || o->demo_hist < 1)
        return lrgd_fail(LRGD_E_INVALID, "selection scorer: needs max_hist >= 1 and demo_hist >= 1");
    if (o->demo_hist > 4000) return lrgd_fail(LRGD_E_INVALID, "selection scorer: demo_hist above 4000");
    sscorer *s = calloc(1, sizeof *s);
    if (!s) return lrgd_fail(LRGD_E_NOMEM, "selection scorer: out of memory");
    s->t = t;
    s->sel = sel;
    s->o = *o;
    s->hbuf = malloc(sizeof(int32_t) * 4096 * 64);
    lrgd_status st = s->hbuf ? lrgd_prompt_vocab_of(lrgd_tmodel_model(t), &s->v)
                             : lrgd_fail(LRGD_E_NOMEM, "selection scorer: out of memory");
    if (st == LRGD_OK && lrgd_perturb_active(&o->perturb) && o->perturb.sub_pop > 0 && !o->pop)
        st = lrgd_fail(LRGD_E_INVALID, "selection scorer: sub_pop perturbation needs item popularity");
    if (st != LRGD_OK) {
        ss_destroy(s);
        return st;
    }
    out->name = "selection";
    out->ctx = s;
    out->n_items = s->v.n_items;
    out->max_batch = 0;
    out->score_batch = ss_score;
    out->score_cands = NULL;
    out->destroy = ss_destroy;
    return LRGD_OK;
}
