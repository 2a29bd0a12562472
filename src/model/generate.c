/* Decoding: greedy, or temperature + nucleus (top-p) sampling with a seeded RNG. */
#include "model/model_impl.h"
#include "model/ops.h"

#include <math.h>
#include <stdlib.h>

/* Lowest id wins ties, so greedy decoding does not depend on anything but the logits. */
static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

typedef struct { float p; int id; } prob_id;

/* Descending probability; equal probabilities in id order (qsort is not stable). */
static int cmp_prob_desc(const void *a, const void *b)
{
    const prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Sample from softmax(logits / temperature), restricted to the smallest set of
 * most probable tokens whose mass reaches top_p. logits is overwritten. */
static int sample(float *logits, int n, float temperature, float top_p, prob_id *buf, lrgd_rng *rng)
{
    for (int i = 0; i < n; i++) logits[i] /= temperature;
    lrgd_softmax_row(logits, n);
    double u = lrgd_rng_uniform(rng);
    if (top_p >= 1.0f) {
        double cum = 0;
        for (int i = 0; i < n; i++) {
            cum += logits[i];
            if (u < cum) return i;
        }
        return argmax(logits, n); /* rounding left u >= the total: take the mode */
    }
    for (int i = 0; i < n; i++) buf[i] = (prob_id){logits[i], i};
    qsort(buf, (size_t)n, sizeof *buf, cmp_prob_desc);
    double mass = 0;
    int k = 0;
    while (k < n && (k == 0 || mass < top_p)) mass += buf[k++].p;
    double target = u * mass, cum = 0;
    for (int i = 0; i < k; i++) {
        cum += buf[i].p;
        if (target < cum) return buf[i].id;
    }
    return buf[k - 1].id;
}

lrgd_status lrgd_generate(const lrgd_model *m, const int *prompt, int n_prompt, int n_new, const lrgd_sampler *smp,
                          int eos_id, int *out, int *n_out)
{
    if (n_out) *n_out = 0;
    if (!m || !prompt || !n_out || (n_new > 0 && !out))
        return lrgd_fail(LRGD_E_INVALID, "lrgd_generate: NULL argument");
    if (n_prompt <= 0) return lrgd_fail(LRGD_E_INVALID, "lrgd_generate: the prompt is empty");
    if (n_new < 0) return lrgd_fail(LRGD_E_INVALID, "lrgd_generate: n_new = %d is negative", n_new);
    float temp = smp ? smp->temperature : 0.0f, top_p = smp ? smp->top_p : 1.0f;
    if (!(temp >= 0.0f) || !isfinite(temp))
        return lrgd_fail(LRGD_E_INVALID, "lrgd_generate: temperature %g must be finite and >= 0", (double)temp);
    if (!(top_p > 0.0f && top_p <= 1.0f))
        return lrgd_fail(LRGD_E_INVALID, "lrgd_generate: top_p %g outside (0, 1]", (double)top_p);
    const lrgd_config *c = &m->cfg;
    /* The last generated token is never fed back, so it needs no cache row. */
    long long need = (long long)n_prompt + (n_new > 0 ? n_new - 1 : 0);
    if (need > c->seq_len)
        return lrgd_fail(LRGD_E_INVALID, "lrgd_generate: %d prompt + %d new tokens exceed the context length %d",
                         n_prompt, n_new, c->seq_len);
    if (n_new == 0) return LRGD_OK;

    const int V = c->vocab_size;
    lrgd_state *s = NULL;
    float *logits = lrgd_alloc_n((size_t)V, sizeof(float));
    prob_id *buf = top_p < 1.0f && temp > 0.0f ? lrgd_alloc_n((size_t)V, sizeof *buf) : NULL;
    lrgd_status st = LRGD_OK;
    if (!logits || (top_p < 1.0f && temp > 0.0f && !buf)) st = lrgd_fail(LRGD_E_NOMEM, "lrgd_generate: out of memory");
    if (st == LRGD_OK) st = lrgd_state_new(m, (int)need, 0, &s);
    if (st == LRGD_OK) st = lrgd_eval(s, prompt, n_prompt, logits, 0);
    lrgd_rng rng;
    lrgd_rng_seed(&rng, smp ? smp->seed : 0, 0);
    for (int i = 0; st == LRGD_OK && i < n_new; i++) {
        for (int v = 0; v < V; v++)
            if (!isfinite(logits[v])) {
                st = lrgd_fail(LRGD_E_NUMERIC, "lrgd_generate: logit %d at position %d is not finite", v,
                               lrgd_state_pos(s) - 1);
                break;
            }
        if (st != LRGD_OK) break;
        int next = temp == 0.0f ? argmax(logits, V) : sample(logits, V, temp, top_p, buf, &rng);
        out[i] = next;
        *n_out = i + 1;
        if (next == eos_id || i + 1 == n_new) break;
        st = lrgd_eval(s, &next, 1, logits, 0);
    }
    lrgd_state_free(s);
    lrgd_free(logits);
    lrgd_free(buf);
    return st;
}
