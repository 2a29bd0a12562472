/* Text-LLM recommendation on tiny random models whose vocabularies were
 * learned on Beauty titles: the template shows titles (and "item <id>" for
 * items without text), candidate scores computed on the cached prompt equal
 * a full recomputation from scratch and a token-by-token computation, do not
 * depend on the order or grouping of candidates, and rank exactly as the
 * evaluator ranks them through the scorer interface; context overflow,
 * demonstrations and bad input; and the LRGD dual model (lrgd/dual.h) runs
 * unchanged on a text prompt with demonstrations (E1/E2/E4 and the stacked
 * logits), for softmax and linear attention. */
#include "lrgd/dual.h"
#include "lrgd/textrec.h"
#include "test.h"
#include "text_fixtures.h"
#include "train/train_impl.h"

#include <unistd.h>

static char g_dir[64];

/* 40 items; the first 30 get Beauty titles (one with a CR and trailing
 * spaces, one long multibyte title), the last 10 none. 12 users. */
#define N_ITEMS 40
#define N_USERS 12

static lrgd_dataset *make_dataset(const tf_strs *titles)
{
    int64_t off[N_USERS + 1];
    int32_t items[N_USERS * 9];
    int n = 0;
    for (int u = 0; u < N_USERS; u++) {
        off[u] = n;
        int len = 4 + u % 6;
        for (int k = 0; k < len; k++) items[n++] = (int32_t)((u * 7 + k * 5 + k * k) % N_ITEMS);
    }
    off[N_USERS] = n;
    lrgd_dataset *ds = NULL;
    CHECK_OK(lrgd_dataset_from_sequences(N_USERS, off, items, N_ITEMS, &ds));
    if (!ds) return NULL;
    /* 15 + 24 * 6 = 159 bytes of ASCII and "è", then two-byte letters: the 160-byte cut falls inside them */
    char buf[65536], longt[512] = "Cr\xc3\xa8me Set of 5";
    for (int k = 0; k < 24; k++) strcat(longt, " Cream");
    for (int k = 0; k < 20; k++) strcat(longt, "\xc3\x89");
    size_t at = 0;
    for (int i = 0; i < 30; i++) {
        const char *t = titles->v[i * 13];
        if (i == 3) t = "Trailing spaces and\rCR   ";
        if (i == 4) t = longt;
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%d\t%s\n", i, t);
    }
    CHECK_OK(lrgd_dataset_parse_item_text(ds, buf, at, "items.tsv"));
    return ds;
}

/* Direct computation 1: a fresh state, prompt and candidate in one batch, log-softmax per row. */
static double ref_full(const lrgd_model *m, const lrgd_prompt *p, const int *c, int k)
{
    int V = lrgd_model_config(m)->vocab_size, n = p->n_tokens + k - 1;
    int *seq = malloc((size_t)n * sizeof *seq);
    float *lg = malloc((size_t)n * (size_t)V * sizeof *lg);
    memcpy(seq, p->tokens, (size_t)p->n_tokens * sizeof *seq);
    memcpy(seq + p->n_tokens, c, (size_t)(k - 1) * sizeof *seq);
    lrgd_state *s = NULL;
    double sum = NAN;
    CHECK_OK(lrgd_state_new(m, 0, 0, &s));
    if (s && lrgd_eval(s, seq, n, lg, 1) == LRGD_OK) {
        sum = 0;
        for (int j = 0; j < k; j++) {
            const float *row = lg + (size_t)(p->n_tokens - 1 + j) * (size_t)V;
            double mx = row[0], z = 0;
            for (int v = 0; v < V; v++) mx = row[v] > mx ? row[v] : mx;
            for (int v = 0; v < V; v++) z += exp(row[v] - mx);
            sum += row[c[j]] - mx - log(z);
        }
    }
    lrgd_state_free(s);
    free(seq);
    free(lg);
    return sum;
}

/* Direct computation 2: the candidate one token at a time (single-token decoding). */
static double ref_step(const lrgd_model *m, const lrgd_prompt *p, const int *c, int k)
{
    int V = lrgd_model_config(m)->vocab_size;
    float *lg = malloc((size_t)V * sizeof *lg);
    lrgd_state *s = NULL;
    double sum = 0;
    CHECK_OK(lrgd_state_new(m, 0, 0, &s));
    CHECK_OK(lrgd_eval(s, p->tokens, p->n_tokens, lg, 0));
    for (int j = 0; j < k && s; j++) {
        double mx = lg[0], z = 0;
        for (int v = 0; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
        for (int v = 0; v < V; v++) z += exp(lg[v] - mx);
        sum += lg[c[j]] - mx - log(z);
        if (j + 1 < k) CHECK_OK(lrgd_eval(s, &c[j], 1, lg, 0));
    }
    lrgd_state_free(s);
    free(lg);
    return sum;
}

static void test_template(lrgd_textrec *tr, const lrgd_dataset *ds, const tf_strs *titles)
{
    /* item texts: titles where given, cleaned and cut; "item <id>" otherwise */
    CHECK(!strcmp(lrgd_textrec_item_text(tr, 0), titles->v[0]));
    CHECK(!strcmp(lrgd_textrec_item_text(tr, 3), "Trailing spaces and CR"));
    const char *t4 = lrgd_textrec_item_text(tr, 4);
    CHECK_MSG(strlen(t4) == 159 && !strncmp(t4, "Cr\xc3\xa8me", 6), "cut title '%s' (%zu bytes)", t4, strlen(t4));
    for (const unsigned char *q = (const unsigned char *)t4; *q; q++) /* no sequence cut in half */
        if (*q >= 0xC0) CHECK(q[1] && (q[1] & 0xC0) == 0x80);
    CHECK(!strcmp(lrgd_textrec_item_text(tr, 35), "item 35"));
    CHECK(lrgd_textrec_item_text(tr, N_ITEMS) == NULL && lrgd_textrec_item_text(tr, -1) == NULL);

    int32_t hist[] = {35, 0, 4, 7, 3};
    char *text = NULL;
    CHECK_OK(lrgd_textrec_prompt_text(tr, NULL, 0, hist, 5, &text));
    if (text) {
        char want[4096];
        snprintf(want, sizeof want,
                 "A shopper bought these items, oldest first:\n- item 35\n- %s\n- %s\n- %s\n- Trailing spaces and CR\n"
                 "The next item they bought:",
                 titles->v[0], t4, lrgd_textrec_item_text(tr, 7));
        CHECK_MSG(!strcmp(text, want), "prompt text:\n%s\nwant:\n%s", text, want);
    }
    free(text);

    /* tokens: [BOS] as T only when the vocabulary adds one, Q last with the answer marker at ans_pos */
    lrgd_prompt *p = NULL;
    CHECK_OK(lrgd_textrec_prompt(tr, NULL, 0, hist, 5, &p));
    const lrgd_tokenizer *tok = lrgd_textrec_tokenizer(tr);
    if (p) {
        int has_t = lrgd_tokenizer_add_bos(tok);
        CHECK(p->n_segs == 1 + has_t && p->segs[p->n_segs - 1].kind == LRGD_SEG_Q && p->ans_pos == p->n_tokens - 1);
        if (has_t) CHECK(p->segs[0].kind == LRGD_SEG_T && p->tokens[0] == lrgd_tokenizer_bos(tok) && p->segs[0].end == 1);
        char *back = NULL;
        size_t bl;
        CHECK_OK(lrgd_detokenize(tok, p->tokens, p->n_tokens, 0, &back, &bl));
        CHECK_OK(lrgd_textrec_prompt_text(tr, NULL, 0, hist, 5, &text));
        CHECK_MSG(back && text && !strcmp(back, text), "detokenized prompt differs:\n%s", back);
        free(back);
        free(text);
    }
    lrgd_prompt_free(p);

    /* continuation tokens spell " TITLE\n" */
    const int *ids;
    int n;
    CHECK_OK(lrgd_textrec_cand_tokens(tr, 7, &ids, &n));
    char *c = NULL;
    size_t cl;
    CHECK_OK(lrgd_detokenize(tok, ids, n, LRGD_DETOKENIZE_KEEP_SPACE, &c, &cl));
    char want[512];
    snprintf(want, sizeof want, " %s\n", lrgd_textrec_item_text(tr, 7));
    CHECK_MSG(c && !strcmp(c, want), "continuation '%s'", c);
    free(c);
    CHECK(lrgd_textrec_cand_tokens(tr, N_ITEMS, &ids, &n) == LRGD_E_INVALID);
    (void)ds;
}

static void test_scores(lrgd_textrec *tr, const lrgd_model *m, const lrgd_dataset *ds)
{
    int32_t hist[] = {1, 2, 3, 5, 8, 13};
    lrgd_prompt *p = NULL;
    CHECK_OK(lrgd_textrec_prompt(tr, NULL, 0, hist, 6, &p));
    if (!p) return;
    int32_t cands[8] = {0, 4, 35, 7, 21, 39, 10, 3};
    double s[8], r[8], s2[8];
    int64_t before = lrgd_textrec_tokens_evaluated(tr);
    CHECK_OK(lrgd_textrec_score(tr, p, cands, 8, s));
    int64_t used = lrgd_textrec_tokens_evaluated(tr) - before, expect = p->n_tokens;
    double worst = 0;
    for (int c = 0; c < 8; c++) {
        const int *ids;
        int k;
        CHECK_OK(lrgd_textrec_cand_tokens(tr, cands[c], &ids, &k));
        expect += k - 1;
        double f = ref_full(m, p, ids, k), g = ref_step(m, p, ids, k);
        CHECK_MSG(fabs(s[c] - f) <= 1e-4 * (1 + fabs(f)), "item %d: cached %.9f, full recomputation %.9f", cands[c], s[c], f);
        CHECK_MSG(fabs(s[c] - g) <= 1e-4 * (1 + fabs(g)), "item %d: cached %.9f, step by step %.9f", cands[c], s[c], g);
        CHECK(s[c] < 0 && isfinite(s[c]));
        worst = fmax(worst, fabs(s[c] - f));
    }
    printf("scores vs full recomputation: max |diff| %.3g over 8 candidates\n", worst);
    /* the prompt runs once, each candidate only its own tokens but the last */
    CHECK_MSG(used == expect, "evaluated %lld tokens, expected %lld", (long long)used, (long long)expect);
    /* order and grouping do not matter, bit for bit: the cache is truncated back each time */
    for (int c = 0; c < 8; c++) CHECK_OK(lrgd_textrec_score(tr, p, &cands[7 - c], 1, &r[7 - c]));
    for (int c = 0; c < 8; c++) CHECK(r[c] == s[c]);
    /* mean per token: the same sums divided by the candidate's token count */
    lrgd_textrec_opts o;
    lrgd_textrec_opts_init(&o);
    o.length_norm = 1;
    lrgd_textrec *tm = NULL;
    CHECK_OK(lrgd_textrec_new(m, lrgd_textrec_tokenizer(tr), ds, &o, &tm));
    if (tm) {
        CHECK_OK(lrgd_textrec_score(tm, p, cands, 8, s2));
        for (int c = 0; c < 8; c++) {
            const int *ids;
            int k;
            CHECK_OK(lrgd_textrec_cand_tokens(tr, cands[c], &ids, &k));
            CHECK_NEAR(s2[c], s[c] / k, 1e-9 * (1 + fabs(s[c])));
        }
    }
    lrgd_textrec_free(tm);
    /* bad input */
    int32_t bad[] = {0, N_ITEMS};
    CHECK(lrgd_textrec_score(tr, p, bad, 2, r) == LRGD_E_INVALID && strstr(lrgd_last_error(), "item 40 is unknown"));
    lrgd_prompt *q = NULL;
    CHECK(lrgd_textrec_prompt(tr, NULL, 0, bad, 2, &q) == LRGD_E_INVALID && q == NULL);
    CHECK(lrgd_textrec_prompt(tr, NULL, 0, hist, 0, &q) == LRGD_E_INVALID && strstr(lrgd_last_error(), "empty"));
    lrgd_prompt_free(p);
}

/* Through lrgd_evaluate: each user's rank equals the rank computed from direct scores. */
static void test_evaluator(lrgd_textrec *tr, const lrgd_dataset *ds)
{
    lrgd_split *sp = NULL;
    CHECK_OK(lrgd_split_loo(ds, &sp));
    if (!sp) return;
    lrgd_scorer sc;
    CHECK_OK(lrgd_scorer_textllm(tr, 0, NULL, &sc));
    CHECK(!strcmp(sc.name, "textllm") && sc.n_items == N_ITEMS && sc.score_cands && sc.score_batch);
    for (int mode = 0; mode < 2; mode++) {
        lrgd_eval_opts eo;
        lrgd_eval_opts_init(&eo);
        eo.n_neg = mode ? 0 : 9; /* target + 9 sampled, then full ranking */
        eo.seed = 5;
        lrgd_eval_result *res = NULL;
        CHECK_OK(lrgd_evaluate(sp, LRGD_STEP_TEST, &sc, &eo, &res));
        if (!res) continue;
        CHECK(res->n == lrgd_split_n_users(sp));
        for (int i = 0; i < res->n; i++) {
            int u = res->users[i];
            const int32_t *h;
            int hl;
            lrgd_split_history(sp, LRGD_STEP_TEST, u, &h, &hl);
            int32_t cand[N_ITEMS];
            int nc = 0;
            cand[nc++] = res->targets[i];
            if (mode == 0) {
                CHECK_OK(lrgd_sample_negatives(ds, u, 9, 5, cand + 1));
                nc = 10;
            } else {
                for (int j = 0; j < N_ITEMS; j++) {
                    int in_hist = 0;
                    for (int k = 0; k < hl; k++) in_hist |= h[k] == j;
                    if (j != res->targets[i] && !in_hist) cand[nc++] = j;
                }
            }
            lrgd_prompt *p = NULL;
            double sd[N_ITEMS];
            float sf[N_ITEMS];
            CHECK_OK(lrgd_textrec_prompt(tr, NULL, 0, h, hl, &p));
            if (p) CHECK_OK(lrgd_textrec_score(tr, p, cand, nc, sd));
            lrgd_prompt_free(p);
            for (int k = 0; k < nc; k++) sf[k] = (float)sd[k];
            int32_t rank = lrgd_rank_cands(sf, nc, 0);
            CHECK_MSG(rank == res->ranks[i] && res->n_ranked[i] == nc, "user %d (mode %d): evaluator rank %d of %d, direct %d of %d",
                      u, mode, res->ranks[i], res->n_ranked[i], rank, nc);
        }
        lrgd_eval_result_free(res);
    }
    lrgd_scorer_release(&sc);
    lrgd_split_free(sp);
}

/* The scorer with similar demonstrations scores exactly what a prompt built
 * by hand from the same demonstrations scores; demonstrations change scores. */
static void test_icl_scorer(lrgd_textrec *tr, const lrgd_dataset *ds)
{
    lrgd_split *sp = NULL;
    CHECK_OK(lrgd_split_loo(ds, &sp));
    if (!sp) return;
    lrgd_textrec_icl icl;
    lrgd_textrec_icl_init(&icl);
    icl.sp = sp;
    icl.step = LRGD_STEP_TEST;
    icl.mode = LRGD_DEMOS_SIMILAR;
    icl.k = 2;
    icl.demo_hist = 3;
    lrgd_scorer sc, zs;
    CHECK_OK(lrgd_scorer_textllm(tr, 0, &icl, &sc));
    CHECK_OK(lrgd_scorer_textllm(tr, 0, NULL, &zs));
    lrgd_demo_index *ix = NULL;
    CHECK_OK(lrgd_demo_index_new(sp, LRGD_STEP_TEST, 3, &ix));
    int checked = 0, differ = 0;
    for (int i = 0; i < 6 && ix && sc.ctx && zs.ctx; i++) {
        int32_t u = lrgd_split_users(sp)[i];
        const int32_t *h;
        int hl;
        lrgd_split_history(sp, LRGD_STEP_TEST, u, &h, &hl);
        int32_t cand[6] = {0, 7, 35, 12, 3, 39}, du[2];
        int nd = 0;
        CHECK_OK(tm_prompt_demos(ix, LRGD_DEMOS_SIMILAR, 2, 42, u, h, hl, du, &nd));
        lrgd_demo dm[2];
        for (int d = 0; d < nd; d++) CHECK_OK(lrgd_demo_index_demo(ix, du[d], &dm[d], NULL));
        lrgd_prompt *p = NULL;
        char *text = NULL, *back = NULL;
        size_t bl;
        CHECK_OK(lrgd_textrec_prompt(tr, dm, nd, h, hl, &p));
        CHECK_OK(lrgd_textrec_prompt_text(tr, dm, nd, h, hl, &text));
        if (p) CHECK_OK(lrgd_detokenize(lrgd_textrec_tokenizer(tr), p->tokens, p->n_tokens, 0, &back, &bl));
        if (p && back && text && !strcmp(back, text) && nd > 0) { /* the whole prompt fits: the scorer uses it too */
            double want[6];
            float got[6], zero[6];
            const int32_t *cl = cand;
            const int nc = 6;
            float *o1 = got, *o0 = zero;
            CHECK_OK(lrgd_textrec_score(tr, p, cand, 6, want));
            CHECK_OK(sc.score_cands(sc.ctx, 1, &u, &h, &hl, &cl, &nc, &o1));
            CHECK_OK(zs.score_cands(zs.ctx, 1, &u, &h, &hl, &cl, &nc, &o0));
            for (int c = 0; c < 6; c++) {
                CHECK_MSG(got[c] == (float)want[c], "user %d item %d: scorer %.9g, by hand %.9g", u, cand[c], got[c], want[c]);
                differ += got[c] != zero[c];
            }
            checked++;
        }
        free(text);
        free(back);
        lrgd_prompt_free(p);
    }
    CHECK_MSG(checked >= 3 && differ > 0, "ICL scorer: %d users checked, %d scores changed by demonstrations", checked, differ);
    /* bad settings */
    lrgd_scorer bad;
    icl.k = 0;
    CHECK(lrgd_scorer_textllm(tr, 0, &icl, &bad) == LRGD_E_INVALID);
    icl.k = 2;
    icl.sp = NULL;
    CHECK(lrgd_scorer_textllm(tr, 0, &icl, &bad) == LRGD_E_INVALID);
    lrgd_demo_index_free(ix);
    lrgd_scorer_release(&sc);
    lrgd_scorer_release(&zs);
    lrgd_split_free(sp);
}

/* Demonstrations are segments D holding another history and its next item's title. */
static void test_demos(lrgd_textrec *tr)
{
    int32_t h1[] = {1, 2}, h2[] = {36, 5, 6}, q[] = {7, 8};
    lrgd_demo d[2] = {{h1, 2, 9}, {h2, 3, 37}};
    lrgd_prompt *p = NULL;
    char *text = NULL;
    CHECK_OK(lrgd_textrec_prompt(tr, d, 2, q, 2, &p));
    CHECK_OK(lrgd_textrec_prompt_text(tr, d, 2, q, 2, &text));
    if (!p || !text) { lrgd_prompt_free(p); free(text); return; }
    int t = lrgd_tokenizer_add_bos(lrgd_textrec_tokenizer(tr));
    CHECK(p->n_demos == 2 && p->n_segs == 3 + t && p->segs[t].kind == LRGD_SEG_D && p->segs[t + 1].kind == LRGD_SEG_D &&
          p->segs[t + 2].kind == LRGD_SEG_Q);
    char want[256];
    snprintf(want, sizeof want, "- item 36\n- %s\n- %s\nThe next item they bought: item 37\n\nA shopper",
             lrgd_textrec_item_text(tr, 5), lrgd_textrec_item_text(tr, 6));
    CHECK_MSG(strstr(text, want) != NULL, "demonstration text:\n%s", text);
    /* the second demonstration's segment detokenizes to its own text */
    char *seg = NULL;
    size_t sl;
    const lrgd_segment *s = &p->segs[t + 1];
    CHECK_OK(lrgd_detokenize(lrgd_textrec_tokenizer(tr), p->tokens + s->begin, s->end - s->begin, LRGD_DETOKENIZE_KEEP_SPACE, &seg, &sl));
    CHECK_MSG(seg && !strncmp(seg, "A shopper", 9) && strstr(seg, "item 37\n\n") && sl > 12 && !strcmp(seg + sl - 9, "item 37\n\n"),
              "segment D_2: '%s'", seg);
    free(seg);
    int32_t badnext[] = {1};
    lrgd_demo bd = {badnext, 1, N_ITEMS};
    lrgd_prompt *pb = NULL;
    CHECK(lrgd_textrec_prompt(tr, &bd, 1, q, 2, &pb) == LRGD_E_INVALID && strstr(lrgd_last_error(), "demonstration 0"));
    lrgd_prompt_free(p);
    free(text);
}

/* A small context drops the oldest query items; one that cannot hold a single item is refused. */
static void test_context(const lrgd_model *m, const lrgd_tokenizer *tok, const lrgd_dataset *ds)
{
    lrgd_textrec_opts o;
    lrgd_textrec_opts_init(&o);
    o.max_hist = 0;
    lrgd_textrec *tr = NULL;
    CHECK_OK(lrgd_textrec_new(m, tok, ds, &o, &tr));
    if (!tr) return;
    const int *ids;
    int n, longest = 0;
    for (int i = 0; i < N_ITEMS; i++) {
        CHECK_OK(lrgd_textrec_cand_tokens(tr, i, &ids, &n));
        longest = n > longest ? n : longest;
    }
    lrgd_textrec_free(tr);
    o.n_ctx = longest + 120;
    CHECK_OK(lrgd_textrec_new(m, tok, ds, &o, &tr));
    if (!tr) return;
    int32_t hist[24];
    for (int k = 0; k < 24; k++) hist[k] = (int32_t)(k % 30);
    lrgd_prompt *p = NULL;
    CHECK_OK(lrgd_textrec_prompt(tr, NULL, 0, hist, 24, &p));
    if (p) {
        CHECK(p->n_tokens + longest <= o.n_ctx);
        char *text = NULL;
        CHECK_OK(lrgd_textrec_prompt_text(tr, NULL, 0, hist, 24, &text));
        /* the most recent item is shown, the oldest is not */
        char last[256];
        snprintf(last, sizeof last, "- %s\nThe next", lrgd_textrec_item_text(tr, 23));
        char *back = NULL;
        size_t bl;
        CHECK_OK(lrgd_detokenize(tok, p->tokens, p->n_tokens, 0, &back, &bl));
        CHECK(back && strstr(back, last) && !strstr(back, lrgd_textrec_item_text(tr, 0)));
        free(back);
        free(text);
        double sc;
        int32_t c0 = 0;
        CHECK_OK(lrgd_textrec_score(tr, p, &c0, 1, &sc));
    }
    lrgd_prompt_free(p);
    lrgd_textrec_free(tr);
    o.n_ctx = longest + 12; /* room for a candidate but not the header */
    CHECK_OK(lrgd_textrec_new(m, tok, ds, &o, &tr));
    p = NULL;
    if (tr) CHECK(lrgd_textrec_prompt(tr, NULL, 0, hist, 24, &p) == LRGD_E_INVALID && p == NULL &&
                  strstr(lrgd_last_error(), "exceeds the context"));
    lrgd_textrec_free(tr);
    o.n_ctx = 100000;
    CHECK(lrgd_textrec_new(m, tok, ds, &o, &tr) == LRGD_E_INVALID && tr == NULL);
}

/* The dual model of every head on a text prompt [BOS | D_1 D_2 | Q]. */
static void test_dual(lrgd_textrec *tr)
{
    const lrgd_model *m = lrgd_textrec_model(tr);
    int32_t h1[] = {1, 2, 3}, h2[] = {36, 5}, q[] = {7, 8, 9};
    lrgd_demo d[2] = {{h1, 3, 4}, {h2, 2, 37}};
    lrgd_prompt *p = NULL;
    CHECK_OK(lrgd_textrec_prompt(tr, d, 2, q, 3, &p));
    if (!p) return;
    lrgd_dual_opts o;
    memset(&o, 0, sizeof o);
    o.flags = LRGD_DUAL_GD | LRGD_DUAL_MATRICES | LRGD_DUAL_ALL_POSITIONS;
    lrgd_dual *dual = NULL;
    CHECK_OK(lrgd_dual_run(m, p, &o, &dual));
    if (dual) {
        const lrgd_config *c = lrgd_model_config(m);
        CHECK(lrgd_dual_n_demos(dual) == 2 && lrgd_dual_ans_pos(dual) == p->ans_pos);
        double worst = 0, e4 = 0;
        for (int l = 0; l < c->n_layers; l++)
            for (int h = 0; h < c->n_heads; h++) {
                const lrgd_dual_head *H = lrgd_dual_head_at(dual, l, h);
                worst = fmax(worst, c->attn == LRGD_ATTN_LINEAR ? H->e1_pos_scaled : H->e2_pos_scaled);
                e4 = fmax(e4, H->e4);
                if (c->attn == LRGD_ATTN_SOFTMAX) CHECK(H->lambda > 0 && H->lambda < 1);
            }
        CHECK_MSG(worst <= 1e-5, "%s attention: dual vs forward (scaled) %.3g", c->attn == LRGD_ATTN_LINEAR ? "linear" : "softmax", worst);
        CHECK_MSG(e4 <= 1e-9, "E4 %.3g", e4);
        float *lg = malloc((size_t)c->vocab_size * sizeof *lg);
        CHECK_OK(lrgd_dual_stack_logits(m, dual, lg));
        const float *fwd = lrgd_dual_logits(dual);
        double md = 0, ms = 0;
        for (int v = 0; v < c->vocab_size; v++) {
            md = fmax(md, fabs((double)lg[v] - fwd[v]));
            ms = fmax(ms, fabs((double)fwd[v]));
        }
        CHECK_MSG(md <= 1e-4 * (1 + ms), "stacked logits differ by %.3g (scale %.3g)", md, ms);
        printf("dual on a text prompt (%s, %d tokens, 2 demonstrations): max scaled error %.2g, E4 %.2g, "
               "stacked logits %.2g\n", c->attn == LRGD_ATTN_LINEAR ? "linear" : "softmax", p->n_tokens, worst, e4, md);
        free(lg);
    }
    lrgd_dual_free(dual);
    lrgd_prompt_free(p);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/lrgd_test_textrec_XXXXXX");
    if (!mkdtemp(g_dir)) { perror("mkdtemp"); return 1; }
    tf_strs titles = {0};
    if (tf_read_titles(t_shared("datasets/amazon/Beauty.items.tsv"), 1000, &titles) != LRGD_OK) {
        fprintf(stderr, "%s\n", lrgd_last_error());
        return 1;
    }
    lrgd_dataset *ds = make_dataset(&titles);
    tf_vocab bpe, spm;
    tf_bpe_vocab(&titles, t_size(1200, 400), "gpt-2", 0, &bpe); /* valgrind: smaller vocabularies */
    tf_spm_vocab(&titles, t_size(1200, 400), -1, &spm);
    lrgd_config c = tf_small_config();
    char bpe_path[128], spm_path[128];
    snprintf(bpe_path, sizeof bpe_path, "%s/bpe.gguf", g_dir);
    snprintf(spm_path, sizeof spm_path, "%s/spm.gguf", g_dir);
    CHECK_OK(tf_write_text_model(&bpe.spec, &c, 11, bpe_path));
    CHECK_OK(tf_write_text_model(&spm.spec, &c, 12, spm_path));
    for (int k = 0; k < 2 && ds; k++) {
        lrgd_textrec *tr = NULL;
        lrgd_textrec_opts o;
        lrgd_textrec_opts_init(&o);
        o.max_hist = 5; /* short prompts keep the test fast */
        CHECK_OK(lrgd_textrec_load(k ? spm_path : bpe_path, ds, &o, &tr));
        if (!tr) continue;
        test_template(tr, ds, &titles);
        test_scores(tr, lrgd_textrec_model(tr), ds);
        test_evaluator(tr, ds);
        test_icl_scorer(tr, ds);
        test_demos(tr);
        test_context(lrgd_textrec_model(tr), lrgd_textrec_tokenizer(tr), ds);
        test_dual(tr);
        lrgd_textrec_free(tr);
    }
    /* the same vocabulary in a linear-attention model */
    char lin_path[128];
    snprintf(lin_path, sizeof lin_path, "%s/linear.gguf", g_dir);
    c.attn = LRGD_ATTN_LINEAR;
    CHECK_OK(tf_write_text_model(&bpe.spec, &c, 13, lin_path));
    lrgd_textrec *tl = NULL;
    if (ds) CHECK_OK(lrgd_textrec_load(lin_path, ds, NULL, &tl));
    if (tl) test_dual(tl);
    lrgd_textrec_free(tl);
    remove(lin_path);
    lrgd_dataset_free(ds);
    tf_vocab_free(&bpe);
    tf_vocab_free(&spm);
    tf_strs_free(&titles);
    remove(bpe_path);
    remove(spm_path);
    rmdir(g_dir);
    return t_finish("test_textrec");
}
