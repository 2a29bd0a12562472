/* Demonstration stores: each demonstration encoded once at the slot right
 * after T, its keys and values kept at every layer; Effect_D as dot
 * products against a probe. */
#include "effect/effect_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lrgd_status lrgd_store_new(lrgd_effect *e, lrgd_store **out)
{
    *out = NULL;
    lrgd_store *s = calloc(1, sizeof *s);
    if (!s) return lrgd_fail(LRGD_E_NOMEM, "store: out of memory");
    s->e = e;
    s->L = e->c.n_layers;
    s->KV = e->c.n_kv_heads * e->c.head_dim;
    *out = s;
    return LRGD_OK;
}

void lrgd_store_free(lrgd_store *s)
{
    if (!s) return;
    free(s->off);
    free(s->len);
    free(s->plaus);
    free(s->self);
    lrgd_free(s->kv);
    free(s->tok);
    free(s);
}

void lrgd_store_clear(lrgd_store *s)
{
    s->n = 0;
    s->n_rows = 0;
}

int lrgd_store_n(const lrgd_store *s) { return s->n; }
void lrgd_store_set_plaus(lrgd_store *s, int on) { s->plaus_on = on != 0; }
int lrgd_store_len(const lrgd_store *s, int id) { return id >= 0 && id < s->n ? s->len[id] : 0; }
const int *lrgd_store_tokens(const lrgd_store *s, int id) { return id >= 0 && id < s->n ? s->tok + s->off[id] : NULL; }
double lrgd_store_plaus(const lrgd_store *s, int id) { return id >= 0 && id < s->n ? s->plaus[id] : NAN; }

static lrgd_status grow(lrgd_store *s, int add_rows)
{
    if (s->n == s->cap) {
        int nc = s->cap ? 2 * s->cap : 64;
        int *o = realloc(s->off, (size_t)nc * sizeof *o), *l = realloc(s->len, (size_t)nc * sizeof *l);
        double *p = realloc(s->plaus, (size_t)nc * sizeof *p), *f = realloc(s->self, (size_t)nc * sizeof *f);
        if (o) s->off = o;
        if (l) s->len = l;
        if (p) s->plaus = p;
        if (f) s->self = f;
        if (!o || !l || !p || !f) return lrgd_fail(LRGD_E_NOMEM, "store: out of memory");
        s->cap = nc;
    }
    if (s->n_rows + add_rows > s->cap_rows) {
        int nc = s->cap_rows ? s->cap_rows : 1024;
        while (nc < s->n_rows + add_rows) {
            if (nc > (1 << 28)) return lrgd_fail(LRGD_E_NOMEM, "store: more than 2^28 rows");
            nc *= 2;
        }
        size_t per = (size_t)s->L * 2 * s->KV;
        float *kv = lrgd_alloc_n((size_t)nc * per, sizeof(float));
        int *tk = realloc(s->tok, (size_t)nc * sizeof *tk);
        if (tk) s->tok = tk;
        if (!kv || !tk) {
            lrgd_free(kv);
            return lrgd_fail(LRGD_E_NOMEM, "store: out of memory for %d rows", nc);
        }
        if (s->n_rows) memcpy(kv, s->kv, (size_t)s->n_rows * per * sizeof(float));
        lrgd_free(s->kv);
        s->kv = kv;
        s->cap_rows = nc;
    }
    return LRGD_OK;
}

static inline const float *krow(const lrgd_store *s, int row, int l)
{
    return s->kv + ((size_t)row * s->L + l) * 2 * s->KV;
}

static inline float dotf(const float *a, const float *b, int n)
{
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

double lrgd_store_inner(const lrgd_store *sa, int a, const lrgd_store *sb, int b)
{
    const lrgd_config *c = &sa->e->c;
    int hd = c->head_dim, KV = sa->KV;
    double tot = 0;
    for (int l = 0; l < sa->L; l++)
        for (int kh = 0; kh < c->n_kv_heads; kh++)
            for (int i = 0; i < sa->len[a]; i++) {
                const float *ki = krow(sa, sa->off[a] + i, l) + (size_t)kh * hd, *vi = ki + KV;
                for (int j = 0; j < sb->len[b]; j++) {
                    const float *kj = krow(sb, sb->off[b] + j, l) + (size_t)kh * hd, *vj = kj + KV;
                    tot += (double)dotf(ki, kj, hd) * dotf(vi, vj, hd);
                }
            }
    return tot / hd;
}

lrgd_status lrgd_store_add(lrgd_store *s, const int *tokens, int n, const float *noise, int *id)
{
    lrgd_effect *e = s->e;
    const lrgd_config *c = &e->c;
    int ni = e->n_instr, D = c->dim;
    if (n < 1) return lrgd_fail(LRGD_E_INVALID, "store: empty demonstration");
    if (n > c->seq_len - ni)
        return lrgd_fail(LRGD_E_INVALID, "store: a demonstration of %d tokens does not fit the context of %d", n,
                         c->seq_len);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return lrgd_fail(LRGD_E_INVALID, "store: token %d outside 0..%d", tokens[i], c->vocab_size - 1);
    LRGD_TRY(grow(s, n));
    LRGD_TRY(ef_capture_reserve(e, n));
    float *embd = NULL;
    if (noise) {
        embd = lrgd_alloc_n((size_t)n * D, sizeof(float));
        if (!embd) return lrgd_fail(LRGD_E_NOMEM, "store: out of memory");
        lrgd_embed(embd, &e->m->tok_embd, tokens, n);
        for (size_t i = 0; i < (size_t)n * D; i++) embd[i] += noise[i];
    }
    int *tok = e->tok_buf;
    memcpy(tok, e->instr, (size_t)ni * sizeof(int));
    memcpy(tok + ni, tokens, (size_t)n * sizeof(int));
    e->cap.mode = 2;
    e->cap.row0 = ni;
    e->cap.n = n;
    lrgd_status st = ef_eval_after_instr(e, embd ? NULL : tok, embd, ni + n, s->plaus_on ? e->logits : NULL, 1);
    lrgd_free(embd);
    LRGD_TRY(st);

    int idx = s->n, r0 = s->n_rows, KV = s->KV;
    /* plausibility: mean log-likelihood of the item tokens, each from the row before it */
    const lrgd_prompt_vocab *v = &e->v;
    double sum = 0;
    int cnt = 0;
    for (int j = 0; j < n && s->plaus_on; j++) {
        if (tokens[j] < v->n_special || tokens[j] >= v->n_special + v->n_items) continue;
        const float *lg = j == 0 ? e->instr_logits : e->logits + (size_t)(j - 1) * c->vocab_size;
        sum += ef_item_logp(e, lg, tokens[j]);
        cnt++;
    }
    /* keys end-aligned: rotate from position ni + j to j - n (the token after d is position 0) */
    for (int l = 0; l < s->L; l++)
        for (int j = 0; j < n; j++) {
            float *dst = s->kv + ((size_t)(r0 + j) * s->L + l) * 2 * KV;
            memcpy(dst, e->cap.k + ((size_t)l * n + j) * KV, (size_t)KV * sizeof(float));
            memcpy(dst + KV, e->cap.v + ((size_t)l * n + j) * KV, (size_t)KV * sizeof(float));
            lrgd_rope(dst, 1, c->n_kv_heads, c->head_dim, ni + n, NULL, c->rope_base, c->rope_type, -1);
        }
    memcpy(s->tok + r0, tokens, (size_t)n * sizeof(int));
    s->off[idx] = r0;
    s->len[idx] = n;
    s->plaus[idx] = !s->plaus_on ? NAN : cnt ? sum / cnt : 0.0;
    s->n_rows += n;
    s->n++;
    s->self[idx] = lrgd_store_inner(s, idx, s, idx);
    if (!isfinite(s->self[idx]) || (s->plaus_on && !isfinite(s->plaus[idx]))) {
        s->n--;
        s->n_rows -= n;
        return lrgd_fail(LRGD_E_NUMERIC, "store: the demonstration's keys/values are not finite");
    }
    if (id) *id = idx;
    return LRGD_OK;
}

/* Effect_D of one entry (see lrgd/effect.h for the two forms). */
double ef_score_scaled(const lrgd_store *s, int id, const lrgd_probe *p, double eps)
{
    int H = p->H, hd = p->hd, group = p->H / p->KVH, KV = s->KV, len = s->len[id], r0 = s->off[id], M = p->n_rows;
    float scale = 1.0f / sqrtf((float)hd);
    double eff = 0;
    for (int l = 0; l < p->L; l++)
        for (int r = 0; r < M; r++)
            for (int h = 0; h < H; h++) {
                int kh = h / group;
                size_t qi = ((size_t)l * M + r) * H + h;
                const float *q = p->q + qi * hd, *g = p->g + qi * hd;
                double acc;
                if (p->attn == LRGD_ATTN_LINEAR) {
                    acc = 0;
                    for (int i = 0; i < len; i++) {
                        const float *k = krow(s, r0 + i, l) + (size_t)kh * hd, *v = k + KV;
                        acc += (double)(dotf(k, q, hd) * scale) * dotf(v, g, hd);
                    }
                    acc *= eps;
                } else {
                    /* sum_i e_i (g.v_i - g.o) / (1 + sum_i e_i), e_i = eps exp(s_i - lse), with a running
                     * maximum of the exponents (0 stands for the "1") so that nothing overflows */
                    double lse = p->lse[qi] - log(eps), go = p->go[qi], num = 0, den = 1, mx = 0;
                    for (int i = 0; i < len; i++) {
                        const float *k = krow(s, r0 + i, l) + (size_t)kh * hd, *v = k + KV;
                        double x = (double)(dotf(k, q, hd) * scale) - lse;
                        if (x > mx) {
                            double f = exp(mx - x);
                            num *= f;
                            den *= f;
                            mx = x;
                        }
                        double ei = exp(x - mx);
                        num += ei * ((double)dotf(v, g, hd) - go);
                        den += ei;
                    }
                    acc = num / den;
                }
                eff -= acc;
            }
    return eff;
}

lrgd_status lrgd_effect_score(const lrgd_store *s, const lrgd_probe *p, const int *ids, int n, double *effect,
                              double *per_token)
{
    if (p->L != s->L || p->KVH * p->hd != s->KV)
        return lrgd_fail(LRGD_E_INVALID, "effect: the probe and the store come from different models");
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->n)
            return lrgd_fail(LRGD_E_INVALID, "effect: entry %d outside 0..%d", ids[i], s->n - 1);
    int bad = 0;
#pragma omp parallel for schedule(static) if (n >= 256) reduction(| : bad)
    for (int i = 0; i < n; i++) {
        double v = ef_score_scaled(s, ids[i], p, 1.0);
        effect[i] = v;
        if (per_token) per_token[i] = v / s->len[ids[i]];
        bad |= !isfinite(v);
    }
    if (bad) return lrgd_fail(LRGD_E_NUMERIC, "effect: a score is not finite");
    return LRGD_OK;
}
