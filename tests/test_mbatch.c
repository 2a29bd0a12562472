/* The batched multi-sequence forward (src/model/batch.c) against the
 * unbatched inference path: for every sequence, lrgd_eval of [prefix |
 * tokens] on a fresh state gives the last row's logits; the batch's last
 * hidden row times the output layer must give the same logits to float32
 * rounding and the same ranking of every token (up to pairs closer than
 * that rounding). Random models: softmax and linear attention, both RoPE
 * layouts, grouped-query and multi-head, 1..3 layers, tied and untied;
 * batches of sequences of 1..60 tokens after prefixes of 0, 1 and 9 tokens,
 * a prefix set twice (the second replaces the first), batches larger than
 * the thread count (attention a thread per sequence). Also: a weight made
 * NaN stops the batch with LRGD_E_NUMERIC naming the layer; bad inputs are
 * refused. */
#include "model/batch.h"
#include "model/model_impl.h"
#include "test.h"

#include <math.h>

static lrgd_config cfg(lrgd_attn_mode attn, lrgd_rope_type rope, int layers, int heads, int kv, int tied)
{
    lrgd_config c = {0};
    c.dim = 48;
    c.hidden_dim = 80;
    c.n_layers = layers;
    c.n_heads = heads;
    c.n_kv_heads = kv;
    c.head_dim = 48 / heads;
    c.vocab_size = 301;
    c.seq_len = 96;
    c.norm_eps = 1e-5f;
    c.rope_base = 10000.0f;
    c.rope_type = rope;
    c.attn = attn;
    c.tied = tied;
    return c;
}

/* logits of the batch's hidden rows: h [n][dim] times output^T */
static void logits_of(const lrgd_model *m, const float *h, int n, float *out)
{
    lrgd_matmul(out, h, &m->output, n, 0);
}

/* Same logits and ranking; returns the worst |difference| / (1 + max |logit|). */
static double compare_row(const float *a, const float *ref, int V, const char *name, int seq)
{
    double mx = 0, worst = 0;
    for (int j = 0; j < V; j++) mx = fmax(mx, fabs(ref[j]));
    /* two float32 evaluations of the same layers in different GEMM blockings */
    double tol = 2e-5 * (1 + mx);
    int bad = 0;
    for (int j = 0; j < V; j++) {
        double d = fabs((double)a[j] - ref[j]);
        worst = fmax(worst, d / (1 + mx));
        if (d > tol && bad++ < 3) CHECK_MSG(0, "%s seq %d: logit %d: batch %.7g, eval %.7g", name, seq, j, a[j], ref[j]);
    }
    /* ranking: how many tokens beat j may differ only by the tokens within 2 tol of j */
    int rbad = 0;
    for (int j = 0; j < V; j++) {
        int ra = 0, rr = 0, close = 0;
        for (int i = 0; i < V; i++) {
            ra += a[i] > a[j];
            rr += ref[i] > ref[j];
            close += i != j && fabs((double)ref[i] - ref[j]) <= 2 * tol;
        }
        if (abs(ra - rr) > close && rbad++ < 3)
            CHECK_MSG(0, "%s seq %d: token %d ranks %d in the batch, %d in eval", name, seq, j, ra, rr);
    }
    return worst;
}

static void check_model(const lrgd_config *c, uint64_t seed, const char *name)
{
    lrgd_model *m = NULL;
    CHECK_OK(lrgd_model_new_random(c, seed, &m));
    if (!m) return;
    lrgd_mbatch *b = NULL;
    lrgd_state *st = NULL;
    CHECK_OK(lrgd_mbatch_new(m, &b));
    CHECK_OK(lrgd_state_new(m, c->seq_len, 0, &st));
    if (!b || !st) return;
    int V = c->vocab_size, D = c->dim;
    enum { NS = 23 };
    int off[NS + 1], tok[NS * 60], full[200], pre[16];
    float *h = malloc(sizeof(float) * NS * D), *lg = malloc(sizeof(float) * NS * V), *ref = malloc(sizeof(float) * V);
    lrgd_rng r;
    lrgd_rng_seed(&r, seed, 3);
    double worst = 0;
    const int pre_len[] = {0, 9, 1};
    for (int pi = 0; pi < 3; pi++) {
        int P = pre_len[pi];
        for (int i = 0; i < P; i++) pre[i] = (int)lrgd_rng_below(&r, (uint32_t)V);
        if (pi == 1) { /* set a different prefix first: the second call must replace it */
            int other[5] = {7, 8, 9, 10, 11};
            CHECK_OK(lrgd_mbatch_set_prefix(b, other, 5));
        }
        CHECK_OK(lrgd_mbatch_set_prefix(b, pre, P));
        CHECK(lrgd_mbatch_prefix_len(b) == P);
        off[0] = 0;
        for (int s = 0; s < NS; s++) {
            int T = 1 + (int)lrgd_rng_below(&r, s % 5 == 0 ? 60 : 12);
            for (int i = 0; i < T; i++) tok[off[s] + i] = (int)lrgd_rng_below(&r, (uint32_t)V);
            off[s + 1] = off[s] + T;
        }
        CHECK_OK(lrgd_mbatch_last(b, NS, off, tok, h));
        logits_of(m, h, NS, lg);
        for (int s = 0; s < NS; s++) {
            int T = off[s + 1] - off[s];
            memcpy(full, pre, (size_t)P * sizeof(int));
            memcpy(full + P, tok + off[s], (size_t)T * sizeof(int));
            CHECK_OK(lrgd_state_truncate(st, 0));
            CHECK_OK(lrgd_eval(st, full, P + T, ref, 0));
            char nm[96];
            snprintf(nm, sizeof nm, "%s prefix %d", name, P);
            worst = fmax(worst, compare_row(lg + (size_t)s * V, ref, V, nm, s));
        }
        /* one sequence alone gives the same as inside the batch, to rounding */
        float h1[64];
        CHECK_OK(lrgd_mbatch_last(b, 1, (int[]){0, off[3] - off[2]}, tok + off[2], h1));
        float l1[301];
        logits_of(m, h1, 1, l1);
        worst = fmax(worst, compare_row(l1, lg + (size_t)2 * V, V, "alone vs batched", 2));
    }
    printf("%s: worst |batch - eval| logit / (1 + max |logit|) = %.3g\n", name, worst);

    /* refusals */
    int t2[3] = {1, 2, V};
    CHECK(lrgd_mbatch_last(b, 1, (int[]){0, 3}, t2, h) == LRGD_E_INVALID);
    CHECK(lrgd_mbatch_last(b, 2, (int[]){0, 2, 2}, t2, h) == LRGD_E_INVALID); /* empty sequence */
    CHECK(lrgd_mbatch_last(b, 0, (int[]){0}, t2, h) == LRGD_E_INVALID);
    int longseq[100] = {0};
    CHECK(lrgd_mbatch_last(b, 1, (int[]){0, c->seq_len}, longseq, h) == LRGD_E_INVALID); /* after a 1-token prefix */
    CHECK(lrgd_mbatch_set_prefix(b, t2, 3) == LRGD_E_INVALID);
    CHECK(lrgd_mbatch_set_prefix(b, longseq, c->seq_len) == LRGD_E_INVALID);

    /* a NaN in layer 1's down projection: the batch stops and names layer 1 */
    if (c->n_layers > 1) {
        float *w2 = (float *)m->layers[1].w2.data;
        float keep = w2[5];
        w2[5] = NAN;
        CHECK_OK(lrgd_mbatch_set_prefix(b, NULL, 0));
        lrgd_status s2 = lrgd_mbatch_last(b, NS, off, tok, h);
        CHECK(s2 == LRGD_E_NUMERIC);
        CHECK_MSG(strstr(lrgd_last_error(), "layer 1") != NULL, "message: %s", lrgd_last_error());
        w2[5] = keep;
        CHECK_OK(lrgd_mbatch_last(b, NS, off, tok, h));
    }
    free(h);
    free(lg);
    free(ref);
    lrgd_state_free(st);
    lrgd_mbatch_free(b);
    lrgd_model_free(m);
}

int main(void)
{
    lrgd_config c;
    c = cfg(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NORM, 2, 4, 2, 1);
    check_model(&c, 1, "softmax/norm/gqa/2 layers/tied");
    c = cfg(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NEOX, 3, 4, 4, 0);
    check_model(&c, 2, "softmax/neox/mha/3 layers/untied");
    c = cfg(LRGD_ATTN_LINEAR, LRGD_ROPE_NORM, 2, 2, 1, 1);
    check_model(&c, 3, "linear/norm/gqa/2 layers");
    c = cfg(LRGD_ATTN_SOFTMAX, LRGD_ROPE_NORM, 1, 2, 1, 1);
    check_model(&c, 4, "softmax/norm/gqa/1 layer");
    return t_finish("test_mbatch");
}
