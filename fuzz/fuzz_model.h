/* Run a model that a fuzzed file produced: a few tokens through the forward
 * pass, so that shapes the loader accepted but the engine cannot handle show
 * up here. Only small models (the fuzzer's own), to keep executions fast. */
#ifndef LRGD_FUZZ_MODEL_H
#define LRGD_FUZZ_MODEL_H

#include "fuzz.h"
#include "model/model_impl.h"

#include <math.h>

static inline void fuzz_run_model(const lrgd_model *m)
{
    const lrgd_config *c = lrgd_model_config(m);
    FUZZ_CHECK(lrgd_config_check(c, "fuzz") == LRGD_OK);
    /* weights per layer ~ 4 dim^2 + 3 dim hidden; skip anything big */
    double work = (double)c->n_layers * ((double)c->dim * c->dim * 4 + 3.0 * c->dim * c->hidden_dim) +
                  2.0 * c->vocab_size * c->dim;
    if (work > (double)(1 << 20)) return;
    int n = c->seq_len < 3 ? c->seq_len : 3;
    int toks[3];
    for (int i = 0; i < n; i++) toks[i] = (i * 7 + 1) % c->vocab_size;
    lrgd_state *s;
    if (lrgd_state_new(m, n, 2, &s) != LRGD_OK) return;
    float *logits = malloc((size_t)n * (size_t)c->vocab_size * sizeof *logits);
    FUZZ_CHECK(logits != NULL);
    lrgd_status st = lrgd_eval(s, toks, n, logits, 1);
    if (st == LRGD_E_NUMERIC) {
        /* finite but huge weights can overflow float32: refused by layer, the cache left as it was */
        fuzz_check_error(st);
        FUZZ_CHECK(strstr(lrgd_last_error(), "non-finite activation at ") != NULL);
        FUZZ_CHECK(lrgd_state_pos(s) == 0);
        free(logits);
        lrgd_state_free(s);
        return;
    }
    FUZZ_CHECK(st == LRGD_OK);
    FUZZ_CHECK(lrgd_state_pos(s) == n);
    /* what lrgd_eval returns is finite (it checks every layer and the logits) */
    for (size_t i = 0; i < (size_t)n * (size_t)c->vocab_size; i++) FUZZ_CHECK(isfinite(logits[i]));
    free(logits);
    lrgd_state_free(s);
    int out[2], n_out = 0;
    if (c->seq_len >= 3) {
        st = lrgd_generate(m, toks, 1, 2, NULL, -1, out, &n_out);
        /* finite but huge weights can overflow the logits: refused by name */
        if (st == LRGD_E_NUMERIC) {
            fuzz_check_error(st);
            return;
        }
        FUZZ_CHECK(st == LRGD_OK);
        FUZZ_CHECK(n_out == 2);
        for (int i = 0; i < n_out; i++) FUZZ_CHECK(out[i] >= 0 && out[i] < c->vocab_size);
    }
}

#endif
