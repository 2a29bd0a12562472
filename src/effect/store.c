/* Demonstration stores: each demonstration encoded once at the slot right
 * after T, its keys and values kept at every layer; Effect_D as dot
 * products against a probe. */
#include "effect/effect_impl.h"
#include "train/train_impl.h"

#include <math.h>
#include <omp.h>
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

/* Layout: entry id owns columns off[id] .. off[id] + len[id] - 1 of the
 * column space; its block (at off[id] * L * 2 * KV floats) holds, per
 * layer, K then V, per kv head, head_dim rows of len floats:
 *     [L][K, V][n_kv_heads][head_dim][len]
 * i.e. the entry's keys as columns (K^T): feature d of all its tokens is
 * contiguous, so a query's scores against every token of the entry are
 * head_dim vector FMAs over the tokens (no horizontal sums). A vector of
 * EF_W columns may run past a row's end into the next row, the next entry,
 * or the EF_W zeros kept after the last entry: those lanes are finite and
 * the kernels mask them, so rows need no padding (demonstrations are short:
 * ~10 tokens on Beauty, and padding was 20-40% more memory to read). */
#define EF_W 8 /* floats per vector of the kernels (16 was slower: demonstrations average ~10 tokens on Beauty) */
typedef float ef_vec __attribute__((vector_size(EF_W * sizeof(float))));
#if defined(__GNUC__) && !defined(__clang__)
/* Without -march=native (LRGD_NATIVE=OFF, the valgrind build) gcc warns that
 * returning a 32-byte vector changes the ABI; these helpers are static to this
 * file, so no call crosses an ABI boundary. */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

static inline int round_w(int n) { return (n + EF_W - 1) / EF_W * EF_W; }

/* Head kh's K^T (part 0) or V^T (part 1) at layer l of entry id: [head_dim][len]. */
static inline const float *kv_block(const lrgd_store *s, int id, int l, int part, int kh, int hd)
{
    int KVH = s->KV / hd;
    return s->kv + (size_t)s->off[id] * s->L * 2 * s->KV + (((size_t)l * 2 + part) * KVH + kh) * hd * s->len[id];
}

static inline ef_vec vload(const float *p)
{
    ef_vec v;
    memcpy(&v, p, sizeof v);
    return v;
}

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
        float *kv = lrgd_alloc_n((size_t)nc * per + EF_W, sizeof(float)); /* + the zeros after the last entry */
        int *tk = realloc(s->tok, (size_t)nc * sizeof *tk);
        if (tk) s->tok = tk;
        if (!kv || !tk) {
            lrgd_free(kv);
            return lrgd_fail(LRGD_E_NOMEM, "store: out of memory for %d rows", nc);
        }
        if (s->kv) memcpy(kv, s->kv, ((size_t)s->n_rows * per + EF_W) * sizeof(float));
        else memset(kv, 0, EF_W * sizeof(float));
        lrgd_free(s->kv);
        s->kv = kv;
        s->cap_rows = nc;
    }
    return LRGD_OK;
}

static inline float dotf(const float *a, const float *b, int n)
{
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Token i's key (part 0) or value (part 1) of head kh at layer l, gathered
 * from its column into out[hd] (the reference paths read rows). */
static void kv_col(const lrgd_store *s, int id, int l, int part, int kh, int hd, int i, float *out)
{
    const float *b = kv_block(s, id, l, part, kh, hd);
    int len = s->len[id];
    for (int d = 0; d < hd; d++) out[d] = b[(size_t)d * len + i];
}

void ef_store_kv(const lrgd_store *s, int id, int l, int part, int kh, int i, float *out)
{
    kv_col(s, id, l, part, kh, s->e->c.head_dim, i, out);
}

double lrgd_store_inner(const lrgd_store *sa, int a, const lrgd_store *sb, int b)
{
    const lrgd_config *c = &sa->e->c;
    int hd = c->head_dim, la = sa->len[a], lb = sb->len[b];
    float kk[EF_W], vv[EF_W];
    double tot = 0;
    for (int l = 0; l < sa->L; l++)
        for (int kh = 0; kh < c->n_kv_heads; kh++) {
            const float *Ka = kv_block(sa, a, l, 0, kh, hd), *Va = kv_block(sa, a, l, 1, kh, hd);
            const float *Kb = kv_block(sb, b, l, 0, kh, hd), *Vb = kv_block(sb, b, l, 1, kh, hd);
            for (int i = 0; i < la; i++)
                for (int j0 = 0; j0 < lb; j0 += EF_W) {
                    /* (k_i.k_j)(v_i.v_j) for EF_W tokens j of b at once; lanes past b's end are dropped */
                    ef_vec kd = {0}, vd = {0};
                    for (int d = 0; d < hd; d++) {
                        kd += Ka[(size_t)d * la + i] * vload(Kb + (size_t)d * lb + j0);
                        vd += Va[(size_t)d * la + i] * vload(Vb + (size_t)d * lb + j0);
                    }
                    memcpy(kk, &kd, sizeof kk);
                    memcpy(vv, &vd, sizeof vv);
                    int w1 = lb - j0 < EF_W ? lb - j0 : EF_W;
                    for (int w = 0; w < w1; w++) tot += (double)kk[w] * vv[w];
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

    int idx = s->n, r0 = s->n_rows, KV = s->KV, hd = c->head_dim, KVH = c->n_kv_heads;
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
    /* keys end-aligned: rotate from position ni + j to j - n (the token after d is position 0);
     * then every row goes in as a column (see kv_block) */
    float *blk = s->kv + (size_t)r0 * s->L * 2 * KV, *row = malloc(2 * (size_t)KV * sizeof *row);
    if (!row) return lrgd_fail(LRGD_E_NOMEM, "store: out of memory");
    memset(blk + (size_t)n * s->L * 2 * KV, 0, EF_W * sizeof(float)); /* the zeros after the last entry */
    for (int l = 0; l < s->L; l++)
        for (int j = 0; j < n; j++) {
            memcpy(row, e->cap.k + ((size_t)l * n + j) * KV, (size_t)KV * sizeof(float));
            memcpy(row + KV, e->cap.v + ((size_t)l * n + j) * KV, (size_t)KV * sizeof(float));
            lrgd_rope(row, 1, KVH, hd, ni + n, NULL, c->rope_base, c->rope_type, -1);
            for (int part = 0; part < 2; part++)
                for (int kh = 0; kh < KVH; kh++) {
                    float *dst = blk + (((size_t)l * 2 + part) * KVH + kh) * hd * n;
                    const float *src = row + (size_t)part * KV + (size_t)kh * hd;
                    for (int d = 0; d < hd; d++) dst[(size_t)d * n + j] = src[d];
                }
        }
    free(row);
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
        memset(blk, 0, EF_W * sizeof(float));
        return lrgd_fail(LRGD_E_NUMERIC, "store: the demonstration's keys/values are not finite");
    }
    if (id) *id = idx;
    return LRGD_OK;
}

/* Effect_D of one entry (see lrgd/effect.h for the two forms): the
 * reference, term by term as the formula reads, in double. */
lrgd_status ef_store_logp(lrgd_effect *e, const lrgd_store *s, int id, const int *q, int nq, int32_t y, int *tok,
                          double *logp)
{
    int k = e->n_instr, len = lrgd_store_len(s, id);
    if (k + len + nq > e->c.seq_len)
        return lrgd_fail(LRGD_E_INVALID, "effect: a prompt of %d tokens (instruction, demonstration, query) exceeds the "
                         "context of %d", k + len + nq, e->c.seq_len);
    memcpy(tok, e->instr, (size_t)k * sizeof *tok);
    memcpy(tok + k, lrgd_store_tokens(s, id), (size_t)len * sizeof *tok);
    memcpy(tok + k + len, q, (size_t)nq * sizeof *tok);
    return lrgd_effect_logp(e, tok, k + len + nq, y, logp);
}

double ef_score_scaled(const lrgd_store *s, int id, const lrgd_probe *p, double eps)
{
    int H = p->H, hd = p->hd, group = p->H / p->KVH, len = s->len[id], M = p->n_rows;
    float scale = 1.0f / sqrtf((float)hd), k[1024], v[1024];
    if (hd > 1024) return NAN;
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
                        kv_col(s, id, l, 0, kh, hd, i, k);
                        kv_col(s, id, l, 1, kh, hd, i, v);
                        acc += (double)(dotf(k, q, hd) * scale) * dotf(v, g, hd);
                    }
                    acc *= eps;
                } else {
                    /* sum_i e_i (g.v_i - g.o) / (1 + sum_i e_i), e_i = eps exp(s_i - lse), with a running
                     * maximum of the exponents (0 stands for the "1") so that nothing overflows */
                    double lse = p->lse[qi] - log(eps), go = p->go[qi], num = 0, den = 1, mx = 0;
                    for (int i = 0; i < len; i++) {
                        kv_col(s, id, l, 0, kh, hd, i, k);
                        kv_col(s, id, l, 1, kh, hd, i, v);
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

/* ---- fast scoring -------------------------------------------------------------
 *
 * lrgd_effect_score computes ef_score_scaled(eps = 1) for many entries
 * against one probe, arranged for speed:
 *  - the probe is packed once per call: for each (layer, kv head) the J =
 *    group * n_rows query vectors that read it, next to their g, log Z and
 *    g.o;
 *  - per (layer, kv head) of an entry, s_j = K q_j / sqrt(dh) and
 *    t_j = V g_j for all of the entry's tokens at once: head_dim vector FMAs
 *    over the tokens (the K^T / V^T columns of kv_block), two query vectors
 *    per pass over the columns, so no horizontal sums and 8 independent
 *    accumulators;
 *  - the softmax split takes the maximum first and then one vectorized pass
 *    of tm_expf (relative error ~2e-7) instead of a running maximum with a
 *    double exp per key, all in float (s - log Z is a float difference that
 *    is exact where it matters, near 0); the sum over layers and heads is
 *    double.
 * Scratch comes from the caller: nothing is allocated per pair.
 * tests/test_effect_fast.c checks it against ef_score_scaled. */
typedef struct ef_packed {
    int L, KVH, J, hd, linear;
    float *q, *g;     /* [L][KVH][J][hd] */
    float *lse;       /* [L][KVH][J] */
    double *go;       /* [L][KVH][J] */
} ef_packed;

static void packed_free(ef_packed *k)
{
    lrgd_free(k->q);
    lrgd_free(k->g);
    lrgd_free(k->lse);
    lrgd_free(k->go);
}

static lrgd_status packed_make(const lrgd_probe *p, ef_packed *k)
{
    memset(k, 0, sizeof *k);
    int group = p->H / p->KVH, M = p->n_rows, hd = p->hd;
    k->L = p->L;
    k->KVH = p->KVH;
    k->J = group * M;
    k->hd = hd;
    k->linear = p->attn == LRGD_ATTN_LINEAR;
    size_t nj = (size_t)p->L * p->KVH * k->J;
    k->q = lrgd_alloc_n(nj * hd, sizeof(float));
    k->g = lrgd_alloc_n(nj * hd, sizeof(float));
    k->lse = lrgd_alloc_n(nj, sizeof(float));
    k->go = lrgd_alloc_n(nj, sizeof(double));
    if (!k->q || !k->g || !k->lse || !k->go) {
        packed_free(k);
        return lrgd_fail(LRGD_E_NOMEM, "effect: out of memory for a packed probe");
    }
    for (int l = 0; l < p->L; l++)
        for (int r = 0; r < M; r++)
            for (int h = 0; h < p->H; h++) {
                int kh = h / group, j = r * group + h % group;
                size_t qi = ((size_t)l * M + r) * p->H + h, pj = ((size_t)l * p->KVH + kh) * k->J + (size_t)j;
                memcpy(k->q + pj * hd, p->q + qi * hd, (size_t)hd * sizeof(float));
                memcpy(k->g + pj * hd, p->g + qi * hd, (size_t)hd * sizeof(float));
                k->lse[pj] = p->lse[qi];
                k->go[pj] = p->go[qi];
            }
    return LRGD_OK;
}

/* S[j][.] = scale * K q_j, T[j][.] = V g_j (rows of stride round_w(len);
 * lanes past len hold finite garbage) for the nj (1 or 2) query vectors q,
 * g (stride hd) against the columns Kt, Vt ([hd][len]): per pair of
 * features, two loads of EF_W columns of K and two of V, eight broadcasts
 * and eight multiply-adds into independent accumulators. */
#if defined(__GNUC__) && !defined(__clang__)
/* ISO C mode keeps GCC from fusing a*b+c; one rounding instead of two is
 * still float rounding (clang fuses within an expression by default) */
__attribute__((optimize("fp-contract=fast")))
#endif
static void kv_scores(const float *Kt, const float *Vt, int hd, int len, const float *q, const float *g, int nj,
                      float scale, float *S, float *T)
{
    const float *q1 = nj > 1 ? q + hd : q, *g1 = nj > 1 ? g + hd : g;
    int ls = round_w(len);
    for (int i0 = 0; i0 < len; i0 += EF_W) {
        ef_vec s0a = {0}, s0b = {0}, s1a = {0}, s1b = {0}, t0a = {0}, t0b = {0}, t1a = {0}, t1b = {0};
        const float *kp = Kt + i0, *vp = Vt + i0;
        int d = 0;
        for (; d + 1 < hd; d += 2) {
            ef_vec ka = vload(kp + (size_t)d * len), kb = vload(kp + (size_t)(d + 1) * len);
            ef_vec va = vload(vp + (size_t)d * len), vb = vload(vp + (size_t)(d + 1) * len);
            s0a += q[d] * ka;
            s0b += q[d + 1] * kb;
            s1a += q1[d] * ka;
            s1b += q1[d + 1] * kb;
            t0a += g[d] * va;
            t0b += g[d + 1] * vb;
            t1a += g1[d] * va;
            t1b += g1[d + 1] * vb;
        }
        if (d < hd) {
            ef_vec ka = vload(kp + (size_t)d * len), va = vload(vp + (size_t)d * len);
            s0a += q[d] * ka;
            s1a += q1[d] * ka;
            t0a += g[d] * va;
            t1a += g1[d] * va;
        }
        ef_vec s0 = (s0a + s0b) * scale, t0 = t0a + t0b, s1 = (s1a + s1b) * scale, t1 = t1a + t1b;
        memcpy(S + i0, &s0, sizeof s0);
        memcpy(T + i0, &t0, sizeof t0);
        if (nj > 1) {
            memcpy(S + ls + i0, &s1, sizeof s1);
            memcpy(T + ls + i0, &t1, sizeof t1);
        }
    }
}

static inline float vhsum(ef_vec v)
{
    float s = 0;
    for (int w = 0; w < EF_W; w++) s += v[w];
    return s;
}

/* Effect_D of one entry; sc: scratch of 4 * round_w(len) floats. */
static double score_fast(const lrgd_store *s, int id, const ef_packed *k, float *sc)
{
    int J = k->J, hd = k->hd, len = s->len[id], ls = round_w(len);
    float *S = sc, *T = sc + 2 * (size_t)ls, scale = 1.0f / sqrtf((float)hd);
    double eff = 0;
    for (int l = 0; l < k->L; l++)
        for (int kh = 0; kh < k->KVH; kh++) {
            const float *Kt = kv_block(s, id, l, 0, kh, hd), *Vt = kv_block(s, id, l, 1, kh, hd);
            size_t pj = ((size_t)l * k->KVH + kh) * J;
            for (int j0 = 0; j0 < J; j0 += 2) {
                int nj = J - j0 < 2 ? J - j0 : 2;
                kv_scores(Kt, Vt, hd, len, k->q + (pj + j0) * hd, k->g + (pj + j0) * hd, nj, scale, S, T);
                for (int jj = 0; jj < nj; jj++) {
                    const float *sj = S + (size_t)jj * ls, *tj = T + (size_t)jj * ls;
                    /* in vectors of EF_W columns; lanes past len are masked */
                    ef_vec av = {0}, bv = {0};
                    float acc;
                    if (k->linear) {
                        for (int i0 = 0; i0 < ls; i0 += EF_W) {
                            float pw[EF_W];
                            for (int w = 0; w < EF_W; w++) {
                                float pr = sj[i0 + w] * tj[i0 + w];
                                pw[w] = i0 + w < len ? pr : 0.0f;
                            }
                            av += vload(pw);
                        }
                        acc = vhsum(av);
                    } else {
                        /* sum_i e_i (t_i - g.o) / (1 + sum_i e_i), e_i = exp(s_i - log Z), scaled by
                         * exp(-max(0, max_i(s_i - log Z))) so that nothing overflows */
                        float lse = k->lse[pj + j0 + jj], go = (float)k->go[pj + j0 + jj], mx = 0, mw[EF_W] = {0};
                        for (int i0 = 0; i0 < ls; i0 += EF_W)
                            for (int w = 0; w < EF_W; w++) {
                                float x = sj[i0 + w] - lse;
                                x = i0 + w < len ? x : 0.0f;
                                mw[w] = x > mw[w] ? x : mw[w];
                            }
                        for (int w = 0; w < EF_W; w++) mx = mw[w] > mx ? mw[w] : mx;
                        for (int i0 = 0; i0 < ls; i0 += EF_W) {
                            float ew[EF_W], uw[EF_W];
                            for (int w = 0; w < EF_W; w++) {
                                float ei = tm_expf((sj[i0 + w] - lse) - mx), ui = ei * (tj[i0 + w] - go);
                                ew[w] = i0 + w < len ? ei : 0.0f;
                                uw[w] = i0 + w < len ? ui : 0.0f;
                            }
                            av += vload(uw);
                            bv += vload(ew);
                        }
                        acc = vhsum(av) / (vhsum(bv) + tm_expf(-mx));
                    }
                    eff -= acc;
                }
            }
        }
    return eff;
}

lrgd_status lrgd_effect_score(const lrgd_store *s, const lrgd_probe *p, const int *ids, int n, double *effect,
                              double *per_token)
{
    if (p->L != s->L || p->KVH * p->hd != s->KV)
        return lrgd_fail(LRGD_E_INVALID, "effect: the probe and the store come from different models");
    int max_len = 1;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= s->n)
            return lrgd_fail(LRGD_E_INVALID, "effect: entry %d outside 0..%d", ids[i], s->n - 1);
        if (s->len[ids[i]] > max_len) max_len = s->len[ids[i]];
    }
    if (n <= 0) return LRGD_OK;
    ef_packed k;
    LRGD_TRY(packed_make(p, &k));
    int par = n >= 256 && lrgd_get_threads() > 1, nth = par ? lrgd_get_threads() : 1;
    size_t per = 4 * (size_t)round_w(max_len);
    float *scratch = lrgd_alloc_n(per * (size_t)nth, sizeof(float));
    if (!scratch) {
        packed_free(&k);
        return lrgd_fail(LRGD_E_NOMEM, "effect: out of memory for scoring scratch");
    }
    int bad = 0;
#pragma omp parallel for schedule(static) if (par) num_threads(nth) reduction(| : bad)
    for (int i = 0; i < n; i++) {
        if (i + 1 < n) { /* the next entry's block: a jump the hardware prefetcher cannot foresee */
            const char *nb = (const char *)kv_block(s, ids[i + 1], 0, 0, 0, k.hd);
            size_t bytes = (size_t)s->len[ids[i + 1]] * s->L * 2 * s->KV * sizeof(float);
            for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(nb + o);
        }
        double v = score_fast(s, ids[i], &k, scratch + per * (size_t)omp_get_thread_num());
        effect[i] = v;
        if (per_token) per_token[i] = v / s->len[ids[i]];
        bad |= !isfinite(v);
    }
    lrgd_free(scratch);
    packed_free(&k);
    if (bad) return lrgd_fail(LRGD_E_NUMERIC, "effect: a score is not finite");
    return LRGD_OK;
}
