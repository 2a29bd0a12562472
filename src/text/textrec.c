/* Text-LLM recommendation: title prompts and candidate log-likelihoods on a
 * shared, cached prompt (lrgd/textrec.h). */
#include "lrgd/textrec.h"
#include "model/model_impl.h"
#include "text/text_impl.h"
#include "train/train_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char default_header[] = "A shopper bought these items, oldest first:\n";
static const char default_answer[] = "The next item they bought:";

struct lrgd_textrec {
    const lrgd_model *m;
    const lrgd_tokenizer *tok;
    const lrgd_dataset *ds;
    lrgd_model *own_m;
    lrgd_tokenizer *own_tok;
    lrgd_textrec_opts o;
    char *header, *answer;
    int n_items;
    char **text;        /* [n_items] what the prompt shows */
    int *cand;          /* continuation tokens of every item, concatenated */
    int64_t *cand_off;  /* [n_items + 1] */
    int max_cand;       /* longest continuation */
    int n_ctx;
    lrgd_state *st;
    float *logits;      /* [max(1, max_cand - 1)][vocab] */
    float *last;        /* [vocab] logits at the answer position */
    int64_t n_eval;
};

void lrgd_textrec_opts_init(lrgd_textrec_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_hist = 20;
    o->max_title_bytes = 160;
}

/* ---- text ------------------------------------------------------------------------------ */

typedef struct sb { char *p; size_t n, cap; lrgd_status st; } sb;

static void sb_add(sb *b, const char *s, size_t n)
{
    if (b->st != LRGD_OK) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) { b->st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); return; }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sb *b, const char *s) { sb_add(b, s, strlen(s)); }

/* The item as the prompt shows it: its title on one line, cut at a
 * character boundary, or "item <id>". */
static char *item_text(const lrgd_dataset *ds, int i, int max_bytes)
{
    const char *t = lrgd_dataset_item_text(ds, i);
    char *s;
    if (t && *t) {
        size_t n = strlen(t);
        if (max_bytes > 0 && n > (size_t)max_bytes) {
            n = (size_t)max_bytes;
            while (n > 0 && ((unsigned char)t[n] & 0xC0) == 0x80) n--; /* not inside a UTF-8 sequence */
        }
        s = malloc(n + 1);
        if (!s) return NULL;
        for (size_t k = 0; k < n; k++) s[k] = t[k] == '\n' || t[k] == '\r' || t[k] == '\t' ? ' ' : t[k];
        while (n > 0 && s[n - 1] == ' ') n--;
        s[n] = 0;
        if (n) return s;
        free(s);
    }
    const char *name = lrgd_dataset_item_name(ds, i);
    s = malloc(strlen(name) + 6);
    if (s) sprintf(s, "item %s", name);
    return s;
}

void lrgd_textrec_free(lrgd_textrec *tr)
{
    if (!tr) return;
    if (tr->text)
        for (int i = 0; i < tr->n_items; i++) free(tr->text[i]);
    free(tr->text);
    free(tr->cand);
    free(tr->cand_off);
    free(tr->header);
    free(tr->answer);
    lrgd_state_free(tr->st);
    lrgd_free(tr->logits);
    lrgd_free(tr->last);
    lrgd_tokenizer_free(tr->own_tok);
    lrgd_model_free(tr->own_m);
    free(tr);
}

lrgd_status lrgd_textrec_new(const lrgd_model *m, const lrgd_tokenizer *tok, const lrgd_dataset *ds,
                             const lrgd_textrec_opts *o, lrgd_textrec **out)
{
    *out = NULL;
    if (!m || !tok || !ds) return lrgd_fail(LRGD_E_INVALID, "textrec: NULL model, tokenizer or dataset");
    lrgd_textrec_opts def;
    lrgd_textrec_opts_init(&def);
    if (!o) o = &def;
    const lrgd_config *c = lrgd_model_config(m);
    if (lrgd_tokenizer_n_vocab(tok) != c->vocab_size)
        return lrgd_fail(LRGD_E_INVALID, "textrec: the tokenizer has %d tokens, the model %d", lrgd_tokenizer_n_vocab(tok),
                         c->vocab_size);
    if (o->max_hist < 0 || o->max_title_bytes < 0 || o->n_ctx < 0 || o->length_norm < 0 || o->length_norm > 1)
        return lrgd_fail(LRGD_E_INVALID, "textrec: negative max_hist, max_title_bytes or n_ctx, or length_norm not 0/1");
    if (o->n_ctx > c->seq_len)
        return lrgd_fail(LRGD_E_INVALID, "textrec: n_ctx %d exceeds the model's context %d", o->n_ctx, c->seq_len);
    lrgd_textrec *tr = calloc(1, sizeof *tr);
    if (!tr) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    tr->m = m;
    tr->tok = tok;
    tr->ds = ds;
    tr->o = *o;
    tr->n_ctx = o->n_ctx ? o->n_ctx : c->seq_len;
    tr->header = strdup(o->header ? o->header : default_header);
    tr->answer = strdup(o->answer ? o->answer : default_answer);
    tr->o.header = tr->header;
    tr->o.answer = tr->answer;
    tr->n_items = lrgd_dataset_n_items(ds);
    tr->text = calloc((size_t)tr->n_items, sizeof *tr->text);
    tr->cand_off = malloc(((size_t)tr->n_items + 1) * sizeof *tr->cand_off);
    lrgd_status st = tr->header && tr->answer && tr->text && tr->cand_off ? LRGD_OK : lrgd_fail(LRGD_E_NOMEM, "out of memory");
    if (st == LRGD_OK && !*tr->answer) st = lrgd_fail(LRGD_E_INVALID, "textrec: the answer marker is empty");
    lrgd_ivec all = {0};
    sb b = {0};
    for (int i = 0; i < tr->n_items && st == LRGD_OK; i++) {
        tr->text[i] = item_text(ds, i, o->max_title_bytes);
        if (!tr->text[i]) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); break; }
        b.n = 0;
        sb_str(&b, " ");
        sb_str(&b, tr->text[i]);
        sb_str(&b, "\n");
        if ((st = b.st) != LRGD_OK) break;
        int *ids, n;
        st = lrgd_tokenize(tok, b.p, b.n, LRGD_TOKENIZE_NO_SPACE_PREFIX, &ids, &n);
        if (st != LRGD_OK) { st = lrgd_fail_wrap(st, "item %s", lrgd_dataset_item_name(ds, i)); break; }
        if (n == 0) st = lrgd_fail(LRGD_E_UNSUPPORTED, "item %s: its text has no tokens in this vocabulary", lrgd_dataset_item_name(ds, i));
        tr->cand_off[i] = (int64_t)all.n;
        for (int k = 0; k < n && st == LRGD_OK; k++) st = lrgd_ivec_push(&all, ids[k]);
        if (n > tr->max_cand) tr->max_cand = n;
        free(ids);
    }
    free(b.p);
    if (st == LRGD_OK) {
        tr->cand_off[tr->n_items] = (int64_t)all.n;
        tr->cand = all.v;
        all.v = NULL;
        if (tr->max_cand >= tr->n_ctx)
            st = lrgd_fail(LRGD_E_INVALID, "textrec: an item's text takes %d tokens, the context only %d", tr->max_cand, tr->n_ctx);
    }
    lrgd_ivec_free(&all);
    if (st == LRGD_OK) st = lrgd_state_new(m, tr->n_ctx, 0, &tr->st);
    if (st == LRGD_OK) {
        size_t rows = tr->max_cand > 1 ? (size_t)tr->max_cand - 1 : 1;
        tr->logits = lrgd_alloc_n(rows * (size_t)c->vocab_size, sizeof(float));
        tr->last = lrgd_alloc_n((size_t)c->vocab_size, sizeof(float));
        if (!tr->logits || !tr->last) st = lrgd_fail(LRGD_E_NOMEM, "textrec: logits buffer of %zu x %d floats", rows, c->vocab_size);
    }
    if (st != LRGD_OK) {
        lrgd_textrec_free(tr);
        return st;
    }
    *out = tr;
    return LRGD_OK;
}

lrgd_status lrgd_textrec_load(const char *model_path, const lrgd_dataset *ds, const lrgd_textrec_opts *o,
                              lrgd_textrec **out)
{
    *out = NULL;
    lrgd_model *m = NULL;
    lrgd_tokenizer *t = NULL;
    LRGD_TRY(lrgd_model_load(model_path, &m));
    lrgd_status st = lrgd_tokenizer_from_model(m, &t);
    if (st != LRGD_OK) st = lrgd_fail_wrap(st, "%s", model_path);
    if (st == LRGD_OK) st = lrgd_textrec_new(m, t, ds, o, out);
    if (st != LRGD_OK) {
        lrgd_tokenizer_free(t);
        lrgd_model_free(m);
        return st;
    }
    (*out)->own_m = m;
    (*out)->own_tok = t;
    return LRGD_OK;
}

const lrgd_model *lrgd_textrec_model(const lrgd_textrec *tr) { return tr->m; }
const lrgd_tokenizer *lrgd_textrec_tokenizer(const lrgd_textrec *tr) { return tr->tok; }
int64_t lrgd_textrec_tokens_evaluated(const lrgd_textrec *tr) { return tr->n_eval; }

const char *lrgd_textrec_item_text(const lrgd_textrec *tr, int item)
{
    return item >= 0 && item < tr->n_items ? tr->text[item] : NULL;
}

lrgd_status lrgd_textrec_cand_tokens(const lrgd_textrec *tr, int item, const int **ids, int *n)
{
    if (item < 0 || item >= tr->n_items)
        return lrgd_fail(LRGD_E_INVALID, "textrec: item %d outside 0..%d", item, tr->n_items - 1);
    *ids = tr->cand + tr->cand_off[item];
    *n = (int)(tr->cand_off[item + 1] - tr->cand_off[item]);
    return LRGD_OK;
}

/* ---- prompts ------------------------------------------------------------------------------ */

static lrgd_status check_items(const lrgd_textrec *tr, const int32_t *items, int n, const char *what, int d)
{
    for (int k = 0; k < n; k++)
        if (items[k] < 0 || items[k] >= tr->n_items)
            return lrgd_fail(LRGD_E_INVALID, "textrec: %s %d: item %d is unknown (the dataset has %d items)", what, d,
                             (int)items[k], tr->n_items);
    return LRGD_OK;
}

/* HEADER, one line per item of items[from..n), ANSWER. */
static void history_text(const lrgd_textrec *tr, sb *b, const int32_t *items, int from, int n)
{
    sb_str(b, tr->header);
    for (int k = from; k < n; k++) {
        sb_str(b, "- ");
        sb_str(b, tr->text[items[k]]);
        sb_str(b, "\n");
    }
    sb_str(b, tr->answer);
}

static int first_shown(const lrgd_textrec *tr, int n) { return tr->o.max_hist > 0 && n > tr->o.max_hist ? n - tr->o.max_hist : 0; }

/* Segment texts for a query whose history starts at q_from. */
static lrgd_status segment_texts(const lrgd_textrec *tr, const lrgd_demo *demos, int n_demos, const int32_t *hist,
                                 int n_hist, int q_from, sb *seg /* [n_demos + 1] */)
{
    for (int d = 0; d < n_demos; d++) {
        seg[d].n = 0;
        history_text(tr, &seg[d], demos[d].hist, first_shown(tr, demos[d].n_hist), demos[d].n_hist);
        sb_str(&seg[d], " ");
        sb_str(&seg[d], tr->text[demos[d].next]);
        sb_str(&seg[d], "\n\n");
        LRGD_TRY(seg[d].st);
    }
    seg[n_demos].n = 0;
    history_text(tr, &seg[n_demos], hist, q_from, n_hist);
    return seg[n_demos].st;
}

static lrgd_status validate(const lrgd_textrec *tr, const lrgd_demo *demos, int n_demos, const int32_t *hist, int n_hist)
{
    if (n_hist < 1 || !hist) return lrgd_fail(LRGD_E_INVALID, "textrec: the query history is empty");
    if (n_demos < 0 || (n_demos > 0 && !demos)) return lrgd_fail(LRGD_E_INVALID, "textrec: %d demonstrations at NULL", n_demos);
    LRGD_TRY(check_items(tr, hist, n_hist, "query", 0));
    for (int d = 0; d < n_demos; d++) {
        if (demos[d].n_hist < 1) return lrgd_fail(LRGD_E_INVALID, "textrec: demonstration %d has an empty history", d);
        LRGD_TRY(check_items(tr, demos[d].hist, demos[d].n_hist, "demonstration", d));
        LRGD_TRY(check_items(tr, &demos[d].next, 1, "demonstration", d));
    }
    return LRGD_OK;
}

lrgd_status lrgd_textrec_prompt_text(const lrgd_textrec *tr, const lrgd_demo *demos, int n_demos,
                                     const int32_t *hist, int n_hist, char **text)
{
    *text = NULL;
    LRGD_TRY(validate(tr, demos, n_demos, hist, n_hist));
    sb *seg = calloc((size_t)n_demos + 1, sizeof *seg);
    if (!seg) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    lrgd_status st = segment_texts(tr, demos, n_demos, hist, n_hist, first_shown(tr, n_hist), seg);
    sb all = {0};
    for (int d = 0; d <= n_demos && st == LRGD_OK; d++) {
        sb_add(&all, seg[d].p, seg[d].n);
        st = all.st;
    }
    for (int d = 0; d <= n_demos; d++) free(seg[d].p);
    free(seg);
    if (st != LRGD_OK) { free(all.p); return st; }
    *text = all.p ? all.p : strdup("");
    return *text ? LRGD_OK : lrgd_fail(LRGD_E_NOMEM, "out of memory");
}

/* Build the token prompt. shrink: drop the query's oldest items until prompt
 * + longest candidate fit (at least one stays), else fail; without shrink a
 * prompt that does not fit sets *too_long and returns LRGD_OK with *out NULL. */
static lrgd_status build_prompt(const lrgd_textrec *tr, const lrgd_demo *demos, int n_demos, const int32_t *hist,
                                int n_hist, int shrink, lrgd_prompt **out, int *too_long)
{
    *out = NULL;
    *too_long = 0;
    LRGD_TRY(validate(tr, demos, n_demos, hist, n_hist));
    sb *seg = calloc((size_t)n_demos + 1, sizeof *seg);
    if (!seg) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    int bos = lrgd_tokenizer_add_bos(tr->tok) ? lrgd_tokenizer_bos(tr->tok) : -1;
    lrgd_status st = LRGD_OK;
    lrgd_prompt *p = NULL;
    for (int from = first_shown(tr, n_hist); st == LRGD_OK; from++) {
        st = segment_texts(tr, demos, n_demos, hist, n_hist, from, seg);
        if (st == LRGD_OK) st = lrgd_prompt_new(&p);
        if (st == LRGD_OK && bos >= 0) st = lrgd_prompt_add(p, LRGD_SEG_T, &bos, 1);
        for (int d = 0; d <= n_demos && st == LRGD_OK; d++) {
            int *ids, n;
            /* Only the text at the very start gets SPM's space prefix. */
            st = lrgd_tokenize(tr->tok, seg[d].p, seg[d].n, d ? LRGD_TOKENIZE_NO_SPACE_PREFIX : 0, &ids, &n);
            if (st == LRGD_OK) st = lrgd_prompt_add(p, d < n_demos ? LRGD_SEG_D : LRGD_SEG_Q, ids, n);
            free(ids);
        }
        if (st != LRGD_OK) break;
        if (p->n_tokens + tr->max_cand <= tr->n_ctx) break;
        if (!shrink) {
            *too_long = 1;
            break;
        }
        if (from + 1 >= n_hist) {
            st = lrgd_fail(LRGD_E_INVALID,
                           "textrec: the prompt takes %d tokens even with one query item; with the longest "
                           "candidate (%d tokens) it exceeds the context of %d",
                           p->n_tokens, tr->max_cand, tr->n_ctx);
            break;
        }
        lrgd_prompt_free(p);
        p = NULL;
    }
    for (int d = 0; d <= n_demos; d++) free(seg[d].p);
    free(seg);
    if (st != LRGD_OK || *too_long) {
        lrgd_prompt_free(p);
        return st;
    }
    *out = p;
    return LRGD_OK;
}

lrgd_status lrgd_textrec_prompt(const lrgd_textrec *tr, const lrgd_demo *demos, int n_demos, const int32_t *hist,
                                int n_hist, lrgd_prompt **out)
{
    int too_long;
    return build_prompt(tr, demos, n_demos, hist, n_hist, 1, out, &too_long);
}

/* ---- scoring ---------------------------------------------------------------------------------- */

/* log sum_j exp(x_j) in double; NaN if any x is not finite. */
static double log_sum_exp(const float *x, int n)
{
    float mx = x[0];
    for (int j = 0; j < n; j++) {
        if (!isfinite(x[j])) return NAN;
        if (x[j] > mx) mx = x[j];
    }
    double s = 0;
    for (int j = 0; j < n; j++) s += exp((double)x[j] - mx);
    return mx + log(s);
}

lrgd_status lrgd_textrec_score(lrgd_textrec *tr, const lrgd_prompt *p, const int32_t *cands, int n, double *out)
{
    if (!p || p->n_tokens < 1) return lrgd_fail(LRGD_E_INVALID, "textrec: empty prompt");
    if (n < 0 || (n > 0 && (!cands || !out))) return lrgd_fail(LRGD_E_INVALID, "textrec: %d candidates at NULL", n);
    if (p->n_tokens + tr->max_cand > tr->n_ctx)
        return lrgd_fail(LRGD_E_INVALID, "textrec: prompt of %d tokens + candidates of up to %d exceed the context of %d",
                         p->n_tokens, tr->max_cand, tr->n_ctx);
    LRGD_TRY(check_items(tr, cands, n, "candidates", 0));
    int V = lrgd_model_config(tr->m)->vocab_size;
    for (int k = 0; k < p->n_tokens; k++)
        if (p->tokens[k] < 0 || p->tokens[k] >= V)
            return lrgd_fail(LRGD_E_INVALID, "textrec: prompt token %d at position %d is outside the vocabulary of %d",
                             p->tokens[k], k, V);
    LRGD_TRY(lrgd_state_truncate(tr->st, 0));
    LRGD_TRY(lrgd_eval(tr->st, p->tokens, p->n_tokens, tr->last, 0));
    tr->n_eval += p->n_tokens;
    double lse0 = log_sum_exp(tr->last, V);
    if (!isfinite(lse0)) return lrgd_fail(LRGD_E_NUMERIC, "textrec: non-finite logits at the answer position");
    for (int c = 0; c < n; c++) {
        const int *ids = tr->cand + tr->cand_off[cands[c]];
        int k = (int)(tr->cand_off[cands[c] + 1] - tr->cand_off[cands[c]]);
        double lp = (double)tr->last[ids[0]] - lse0;
        if (k > 1) {
            /* The candidate's tokens but the last run on the cached prompt;
             * row j - 1 predicts token j. */
            LRGD_TRY(lrgd_eval(tr->st, ids, k - 1, tr->logits, 1));
            tr->n_eval += k - 1;
            for (int j = 1; j < k; j++) {
                const float *row = tr->logits + (size_t)(j - 1) * (size_t)V;
                double lse = log_sum_exp(row, V);
                if (!isfinite(lse))
                    return lrgd_fail(LRGD_E_NUMERIC, "textrec: non-finite logits scoring item %s",
                                     lrgd_dataset_item_name(tr->ds, cands[c]));
                lp += (double)row[ids[j]] - lse;
            }
            LRGD_TRY(lrgd_state_truncate(tr->st, p->n_tokens));
        }
        out[c] = tr->o.length_norm ? lp / k : lp;
    }
    return LRGD_OK;
}

/* ---- as an evaluator scorer ------------------------------------------------------------------- */

typedef struct tscorer {
    lrgd_textrec *tr;
    int own;
    double *buf;
    int cap;
    int32_t *all;          /* 0..n_items-1 for full ranking */
    lrgd_textrec_icl icl;  /* demonstrations (mode none: zero-shot) */
    lrgd_demo_index *ix;
    int32_t du[256];       /* demonstration users of the current prompt */
    lrgd_demo dm[256];
    int64_t n_prompts, n_demos_used;
} tscorer;

static lrgd_status ts_reserve(tscorer *s, int n)
{
    if (n <= s->cap) return LRGD_OK;
    double *b = realloc(s->buf, (size_t)n * sizeof *b);
    if (!b) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    s->buf = b;
    s->cap = n;
    return LRGD_OK;
}

/* User u's prompt: its demonstrations in prompt order (least similar first),
 * leaving out the least similar until the prompt fits; with none left the
 * query's oldest items go. */
static lrgd_status ts_prompt(tscorer *s, int32_t u, const int32_t *hist, int hist_len, lrgd_prompt **p)
{
    int nd = 0;
    if (s->ix) {
        LRGD_TRY(tm_prompt_demos(s->ix, s->icl.mode, s->icl.k, s->icl.seed, u, hist, hist_len, s->du, &nd));
        for (int d = 0; d < nd; d++) LRGD_TRY(lrgd_demo_index_demo(s->ix, s->du[d], &s->dm[d], NULL));
    }
    for (int first = 0; first < nd; first++) {
        int too_long;
        LRGD_TRY(build_prompt(s->tr, s->dm + first, nd - first, hist, hist_len, 0, p, &too_long));
        if (!too_long) {
            s->n_demos_used += nd - first;
            s->n_prompts++;
            return LRGD_OK;
        }
    }
    s->n_prompts++;
    return lrgd_textrec_prompt(s->tr, NULL, 0, hist, hist_len, p);
}

static lrgd_status ts_user(tscorer *s, int32_t user, const int32_t *hist, int hist_len, const int32_t *cands, int n,
                           float *out)
{
    lrgd_prompt *p = NULL;
    lrgd_status st = ts_prompt(s, user, hist, hist_len, &p);
    if (st == LRGD_OK) st = ts_reserve(s, n);
    if (st == LRGD_OK) st = lrgd_textrec_score(s->tr, p, cands, n, s->buf);
    lrgd_prompt_free(p);
    if (st != LRGD_OK) return lrgd_fail_wrap(st, "user %s", lrgd_dataset_user_name(s->tr->ds, user));
    for (int c = 0; c < n; c++) out[c] = (float)s->buf[c];
    return LRGD_OK;
}

static lrgd_status ts_batch(void *ctx, int n, const int32_t *users, const int32_t *const *hist, const int *hist_len,
                            float *scores)
{
    tscorer *s = ctx;
    int ni = s->tr->n_items;
    if (!s->all) {
        s->all = malloc((size_t)ni * sizeof *s->all);
        if (!s->all) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
        for (int i = 0; i < ni; i++) s->all[i] = i;
    }
    for (int u = 0; u < n; u++)
        LRGD_TRY(ts_user(s, users[u], hist[u], hist_len[u], s->all, ni, scores + (size_t)u * (size_t)ni));
    return LRGD_OK;
}

static lrgd_status ts_cands(void *ctx, int n, const int32_t *users, const int32_t *const *hist, const int *hist_len,
                            const int32_t *const *cands, const int *n_cands, float *const *out)
{
    for (int u = 0; u < n; u++) LRGD_TRY(ts_user(ctx, users[u], hist[u], hist_len[u], cands[u], n_cands[u], out[u]));
    return LRGD_OK;
}

static void ts_destroy(void *ctx)
{
    tscorer *s = ctx;
    if (s->own) lrgd_textrec_free(s->tr);
    lrgd_demo_index_free(s->ix);
    free(s->buf);
    free(s->all);
    free(s);
}

void lrgd_textrec_icl_init(lrgd_textrec_icl *icl)
{
    memset(icl, 0, sizeof *icl);
    icl->mode = LRGD_DEMOS_NONE;
    icl->k = 3;
    icl->demo_hist = 20;
    icl->seed = 42;
}

lrgd_status lrgd_scorer_textllm(lrgd_textrec *tr, int own, const lrgd_textrec_icl *icl, lrgd_scorer *out)
{
    memset(out, 0, sizeof *out);
    if (icl && icl->mode != LRGD_DEMOS_NONE) {
        if (!icl->sp) return lrgd_fail(LRGD_E_INVALID, "textllm: demonstrations need the split they come from");
        if (lrgd_split_dataset(icl->sp) != tr->ds)
            return lrgd_fail(LRGD_E_INVALID, "textllm: the split belongs to another dataset than the textrec's");
        if (icl->k < 1 || icl->k > 256 || icl->demo_hist < 1)
            return lrgd_fail(LRGD_E_INVALID, "textllm: k = %d (expected 1..256), demo_hist = %d (expected >= 1)",
                             icl->k, icl->demo_hist);
        if (icl->mode != LRGD_DEMOS_RANDOM && icl->mode != LRGD_DEMOS_SIMILAR)
            return lrgd_fail(LRGD_E_INVALID, "textllm: unknown demonstration mode %d", (int)icl->mode);
    }
    tscorer *s = calloc(1, sizeof *s);
    if (!s) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    s->tr = tr;
    if (icl) s->icl = *icl;
    else lrgd_textrec_icl_init(&s->icl);
    if (s->icl.mode != LRGD_DEMOS_NONE) {
        lrgd_status st = lrgd_demo_index_new(s->icl.sp, s->icl.step, s->icl.demo_hist, &s->ix);
        if (st != LRGD_OK) {
            free(s);
            return st;
        }
    }
    s->own = own;
    out->name = "textllm";
    out->ctx = s;
    out->n_items = tr->n_items;
    out->max_batch = 4; /* a few users per call: progress stays live */
    out->score_batch = ts_batch;
    out->score_cands = ts_cands;
    out->destroy = ts_destroy;
    return LRGD_OK;
}
