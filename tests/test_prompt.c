/* Prompt builder: exact token layout and segment spans, the max_hist cap,
 * and refusal of bad input. */
#include "lrgd/prompt.h"
#include "model/model_impl.h"
#include "test.h"

static const lrgd_prompt_vocab V = {.bos = 1, .sep = 2, .ans = 3, .n_special = 5, .n_items = 10};

static void test_layout(void)
{
    const int32_t h0[] = {4, 7}, h1[] = {0, 1, 9}, q[] = {3, 8, 2};
    lrgd_demo demos[2] = {{h0, 2, 5}, {h1, 3, 6}};
    lrgd_prompt *p;
    CHECK_OK(lrgd_prompt_build(&V, NULL, demos, 2, q, 3, &p));
    if (!p) return;
    /* BOS | 9 12 ANS 10 SEP | 5 6 14 ANS 11 SEP | 8 13 7 ANS  (item i -> 5 + i) */
    const int want[] = {1, 9, 12, 3, 10, 2, 5, 6, 14, 3, 11, 2, 8, 13, 7, 3};
    int n = (int)(sizeof want / sizeof want[0]);
    CHECK(p->n_tokens == n);
    for (int i = 0; i < n && i < p->n_tokens; i++) CHECK_MSG(p->tokens[i] == want[i], "token %d: %d vs %d", i, p->tokens[i], want[i]);
    CHECK(p->n_segs == 4 && p->n_demos == 2 && p->ans_pos == n - 1);
    CHECK(p->segs[0].kind == LRGD_SEG_T && p->segs[0].begin == 0 && p->segs[0].end == 1 && p->segs[0].demo == -1);
    CHECK(p->segs[1].kind == LRGD_SEG_D && p->segs[1].begin == 1 && p->segs[1].end == 6 && p->segs[1].demo == 0);
    CHECK(p->segs[2].kind == LRGD_SEG_D && p->segs[2].begin == 6 && p->segs[2].end == 12 && p->segs[2].demo == 1);
    CHECK(p->segs[3].kind == LRGD_SEG_Q && p->segs[3].begin == 12 && p->segs[3].end == 16 && p->segs[3].demo == -1);
    int map[16];
    lrgd_prompt_demo_map(p, map);
    for (int j = 0; j < n; j++) {
        int w = j == 0 ? -1 : j < 6 ? 0 : j < 12 ? 1 : -1;
        CHECK_MSG(map[j] == w, "demo map at %d: %d vs %d", j, map[j], w);
    }
    lrgd_prompt_free(p);

    /* zero-shot: BOS | q.. ANS */
    CHECK_OK(lrgd_prompt_build(&V, NULL, NULL, 0, q, 3, &p));
    if (p) {
        CHECK(p->n_tokens == 5 && p->n_segs == 2 && p->n_demos == 0 && p->ans_pos == 4);
        CHECK(p->tokens[0] == 1 && p->tokens[4] == 3 && p->tokens[1] == 8);
        lrgd_prompt_free(p);
    }
}

static void test_max_hist(void)
{
    const int32_t h0[] = {0, 1, 2, 3, 4, 5}, q[] = {9, 8, 7, 6, 5};
    lrgd_demo demo = {h0, 6, 9};
    lrgd_prompt_opts o = {.max_hist = 2, .n_ctx = 0};
    lrgd_prompt *p;
    CHECK_OK(lrgd_prompt_build(&V, &o, &demo, 1, q, 5, &p));
    if (!p) return;
    /* the most recent two items of each history */
    const int want[] = {1, 5 + 4, 5 + 5, 3, 5 + 9, 2, 5 + 6, 5 + 5, 3};
    CHECK(p->n_tokens == 9);
    for (int i = 0; i < 9 && i < p->n_tokens; i++) CHECK_MSG(p->tokens[i] == want[i], "token %d", i);
    CHECK(p->segs[1].begin == 1 && p->segs[1].end == 6 && p->segs[2].begin == 6 && p->ans_pos == 8);
    lrgd_prompt_free(p);
}

static void expect_fail(lrgd_status st, lrgd_prompt *p, const char *needle)
{
    CHECK_MSG(st == LRGD_E_INVALID, "expected an error containing '%s', got %s", needle, lrgd_status_name(st));
    CHECK(p == NULL);
    CHECK_MSG(strstr(lrgd_last_error(), needle) != NULL, "message '%s' lacks '%s'", lrgd_last_error(), needle);
    lrgd_prompt_free(p);
}

static void test_errors(void)
{
    const int32_t good[] = {1, 2}, bad_hi[] = {1, 10}, bad_neg[] = {-1, 2};
    lrgd_prompt *p = (lrgd_prompt *)1;
    lrgd_status st;
    lrgd_demo ok = {good, 2, 3};
    st = lrgd_prompt_build(&V, NULL, &ok, 1, NULL, 0, &p);
    expect_fail(st, p, "query history is empty");
    st = lrgd_prompt_build(&V, NULL, &ok, 1, bad_hi, 2, &p);
    expect_fail(st, p, "item 10 at index 1 is unknown");
    st = lrgd_prompt_build(&V, NULL, &ok, 1, bad_neg, 2, &p);
    expect_fail(st, p, "item -1");
    lrgd_demo d_bad = {bad_hi, 2, 3};
    st = lrgd_prompt_build(&V, NULL, &d_bad, 1, good, 2, &p);
    expect_fail(st, p, "demonstration 0");
    lrgd_demo d_next = {good, 2, 10};
    st = lrgd_prompt_build(&V, NULL, &d_next, 1, good, 2, &p);
    expect_fail(st, p, "next item 10");
    lrgd_demo d_empty = {good, 0, 3};
    lrgd_demo two[2] = {ok, d_empty};
    st = lrgd_prompt_build(&V, NULL, two, 2, good, 2, &p);
    expect_fail(st, p, "demonstration 1 has an empty history");
    /* 1 + (2+3) + (2+1) = 9 tokens: a context of 8 is an error, 9 is fine */
    lrgd_prompt_opts o = {.max_hist = 0, .n_ctx = 8};
    st = lrgd_prompt_build(&V, &o, &ok, 1, good, 2, &p);
    expect_fail(st, p, "exceeds the context of 8");
    o.n_ctx = 9;
    CHECK_OK(lrgd_prompt_build(&V, &o, &ok, 1, good, 2, &p));
    CHECK(p && p->n_tokens == 9);
    lrgd_prompt_free(p);
    lrgd_prompt_opts neg = {.max_hist = -1};
    st = lrgd_prompt_build(&V, &neg, &ok, 1, good, 2, &p);
    expect_fail(st, p, "must be >= 0");

    /* low-level order rules */
    lrgd_prompt *q;
    CHECK_OK(lrgd_prompt_new(&q));
    int toks[3] = {1, 2, 3};
    CHECK_OK(lrgd_prompt_add(q, LRGD_SEG_D, toks, 2));
    CHECK(lrgd_prompt_add(q, LRGD_SEG_T, toks, 1) == LRGD_E_INVALID);
    CHECK(lrgd_prompt_add(q, LRGD_SEG_Q, toks, 0) == LRGD_E_INVALID);
    CHECK(lrgd_prompt_add(q, (lrgd_seg_kind)7, toks, 1) == LRGD_E_INVALID);
    CHECK_OK(lrgd_prompt_add(q, LRGD_SEG_Q, toks, 3));
    CHECK(q->ans_pos == 4 && q->n_demos == 1 && q->segs[0].demo == 0);
    CHECK(lrgd_prompt_add(q, LRGD_SEG_D, toks, 1) == LRGD_E_INVALID);
    CHECK(strstr(lrgd_last_error(), "nothing may follow") != NULL);
    lrgd_prompt_free(q);
}

static void test_model_check(void)
{
    lrgd_config cfg = {.dim = 16, .hidden_dim = 32, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .head_dim = 8,
                       .vocab_size = 15, .seq_len = 12, .norm_eps = 1e-5f, .rope_base = 10000.0f};
    lrgd_model *m;
    CHECK_OK(lrgd_model_new_random(&cfg, 1, &m));
    if (!m) return;
    lrgd_prompt_vocab v;
    CHECK(lrgd_prompt_vocab_of(m, &v) == LRGD_E_UNSUPPORTED); /* no item vocabulary yet */
    m->rec = (lrgd_recvocab){.pad = 0, .bos = 1, .sep = 2, .ans = 3, .eos = 4, .n_special = 5, .n_items = 10};
    CHECK_OK(lrgd_prompt_vocab_of(m, &v));
    CHECK(v.bos == 1 && v.sep == 2 && v.ans == 3 && v.n_special == 5 && v.n_items == 10);
    m->rec.n_items = 11; /* items past the vocabulary */
    CHECK(lrgd_prompt_vocab_of(m, &v) == LRGD_E_FORMAT);
    m->rec.n_items = 0;

    const int32_t h[] = {0, 1, 2, 3, 4}, qq[] = {5, 6, 7};
    lrgd_demo d = {h, 5, 9};
    lrgd_prompt *p;
    CHECK_OK(lrgd_prompt_build(&V, NULL, &d, 1, qq, 3, &p)); /* 1 + 8 + 4 = 13 > seq_len 12 */
    CHECK(lrgd_prompt_check(p, m, 0) == LRGD_E_INVALID);
    CHECK(strstr(lrgd_last_error(), "exceeds the context of 12") != NULL);
    lrgd_prompt_free(p);
    CHECK_OK(lrgd_prompt_build(&V, NULL, &d, 1, qq, 2, &p));
    CHECK_OK(lrgd_prompt_check(p, m, 0));
    CHECK(lrgd_prompt_check(p, m, 10) == LRGD_E_INVALID);
    p->tokens[3] = 15; /* outside the vocabulary */
    CHECK(lrgd_prompt_check(p, m, 0) == LRGD_E_INVALID);
    lrgd_prompt_free(p);
    lrgd_model_free(m);
}

int main(void)
{
    test_layout();
    test_max_hist();
    test_errors();
    test_model_check();
    return t_finish("test_prompt");
}
