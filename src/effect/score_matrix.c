/* Effect_D of many probes (users) against the same store entries
 * (lrgd_effect_score_matrix): the query vectors of all probes in the lanes
 * of 16-float vectors.
 *
 * lrgd_effect_score scores one probe against many entries: per (layer, kv
 * head) of an entry, a probe has only group * n_rows query vectors (2 on the
 * embedded model), so its vector FMAs run over the entry's tokens (~10) and
 * the work per pair is bound by memory and latency. With many probes
 * against one pool, the lanes go to the query vectors instead: the probes
 * are packed once per call, for every lane block of 16 query vectors and
 * every (layer, kv head), as [head_dim][16] (q and g transposed), next to
 * log Z and g.o per lane. Then for one entry, token t and one lane block,
 *   S[t] = scale * sum_d K[t][d] q[d][.],  T[t] = sum_d V[t][d] g[d][.]
 * are head_dim vector FMAs with K[t][d] and V[t][d] broadcast, and the
 * softmax split (or the linear sum) is the per-query-vector formula of
 * score_fast, lane by lane: the maximum of s - log Z and 0 first, then one
 * pass of exp (tm_expf's polynomial on vectors), num / (den + exp(-max)).
 * A lane's results over (layer, kv head) add up in double; a probe's lanes
 * are contiguous and their sum is its Effect_D. Lanes past the last query
 * vector hold zeros (finite, ignored).
 *
 * Every lane's arithmetic is its own, so a probe's scores are the same bits
 * whatever the other probes of the call, the thread count or the order of
 * the ids; they agree with lrgd_effect_score up to float32 rounding (the
 * same formula, another summation order). The clone is the instruction set
 * of lrgd_kernels_active() (LRGD_ISA overrides it): AVX-512, AVX2+FMA or
 * portable C (GCC/clang vector extensions, whatever the build targets).
 * tests/test_effect_fast.c checks every clone the CPU runs against the exact
 * formula. */
#include "core/kernels.h"
#include "effect/effect_impl.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define EFM_W 16 /* lanes (query vectors) per vector */
typedef float efm_v __attribute__((vector_size(EFM_W * sizeof(float))));
typedef int32_t efm_i __attribute__((vector_size(EFM_W * sizeof(int32_t))));
typedef uint32_t efm_u __attribute__((vector_size(EFM_W * sizeof(uint32_t))));
#if defined(__GNUC__) && !defined(__clang__)
/* 64-byte vectors without -mavx512f: gcc notes an ABI change for vector
 * arguments; none of these vectors crosses a function boundary. */
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

/* D = C ? A : B lane by lane (C: a vector comparison) */
#define EFM_SEL(D, C, A, B)                                                                                    \
    do {                                                                                                        \
        efm_i c_ = (C);                                                                                         \
        D = (efm_v)(((efm_i)(A) & c_) | ((efm_i)(B) & ~c_));                                                   \
    } while (0)

/* R = exp(X) lane by lane: tm_expf (src/train/train_impl.h) on vectors (relative error ~2e-7; X <= 0 here) */
#define EFM_EXP(R, X)                                                                                           \
    do {                                                                                                        \
        efm_v x_ = (X), lo_ = (efm_v){0} - 87.0f;                                                              \
        EFM_SEL(x_, x_ < lo_, lo_, x_);                                                                         \
        efm_v n_ = (x_ * 1.44269504088896341f + 12582912.0f) - 12582912.0f;                                   \
        efm_v f_ = x_ - n_ * 0.693359375f;                                                                      \
        f_ = f_ + n_ * 2.12194440e-4f;                                                                          \
        efm_v p_ = f_ * 1.9875691500e-4f + 1.3981999507e-3f;                                                   \
        p_ = p_ * f_ + 8.3334519073e-3f;                                                                        \
        p_ = p_ * f_ + 4.1665795894e-2f;                                                                        \
        p_ = p_ * f_ + 1.6666665459e-1f;                                                                        \
        p_ = p_ * f_ + 5.0000001201e-1f;                                                                        \
        p_ = p_ * f_ * f_ + f_ + 1.0f;                                                                          \
        efm_u m_ = (efm_u)(n_ + (12582912.0f + 127.0f));                                                        \
        efm_u s_ = (m_ - 0x4B400000u) << 23;                                                                    \
        R = p_ * (efm_v)s_;                                                                                     \
    } while (0)

/* The probes of one call, packed (see the top of the file). */
typedef struct efm_pack {
    int L, KVH, hd, linear, nb, n_probes;
    float *q, *g;      /* [nb][L][KVH][hd][EFM_W] */
    float *lse, *go;   /* [nb][L][KVH][EFM_W] */
    int *lane0, *nlanes; /* [n_probes]: a probe's first lane and its count (group * n_rows) */
} efm_pack;

/* ---- the clones -------------------------------------------------------------- */

#if defined(__GNUC__) && !defined(__clang__)
/* GCC in ISO C mode does not fuse a*b+c unless told to (clang fuses within an expression) */
#define EFM_CONTRACT optimize("fp-contract=fast"),
#else
#define EFM_CONTRACT
#endif

#define EFM_ATTR __attribute__((EFM_CONTRACT noinline))
#define EFM_FN(x) efm_##x##_generic
#define EFM_NT4 0
#include "effect/score_matrix_kern.h"
#undef EFM_ATTR
#undef EFM_FN
#undef EFM_NT4

#ifdef LRGD_KERNELS_X86
#define EFM_ATTR __attribute__((EFM_CONTRACT target("avx2,fma"), noinline))
#define EFM_FN(x) efm_##x##_avx2
#define EFM_NT4 0
#include "effect/score_matrix_kern.h"
#undef EFM_ATTR
#undef EFM_FN
#undef EFM_NT4

#define EFM_ATTR __attribute__((EFM_CONTRACT target("avx512f,avx512bw,avx512vl,avx512dq,fma"), noinline))
#define EFM_FN(x) efm_##x##_avx512
#define EFM_NT4 1
#include "effect/score_matrix_kern.h"
#undef EFM_ATTR
#undef EFM_FN
#undef EFM_NT4
#endif

typedef void (*efm_run_fn)(const lrgd_store *s, const efm_pack *k, const int *ids, int i0, int i1, int n_ids,
                           double *effect, double *per_token, float *scratch, double *lane_acc, int *bad);

/* ---- packing ----------------------------------------------------------------- */

static void pack_free(efm_pack *k)
{
    lrgd_free(k->q);
    lrgd_free(k->g);
    lrgd_free(k->lse);
    lrgd_free(k->go);
    free(k->lane0);
    free(k->nlanes);
}

static lrgd_status pack_make(const lrgd_probe *const *probes, int n_probes, efm_pack *k)
{
    memset(k, 0, sizeof *k);
    const lrgd_probe *p0 = probes[0];
    int L = p0->L, KVH = p0->KVH, hd = p0->hd, group = p0->H / p0->KVH;
    k->L = L;
    k->KVH = KVH;
    k->hd = hd;
    k->linear = p0->attn == LRGD_ATTN_LINEAR;
    k->n_probes = n_probes;
    k->lane0 = malloc((size_t)n_probes * sizeof *k->lane0);
    k->nlanes = malloc((size_t)n_probes * sizeof *k->nlanes);
    if (!k->lane0 || !k->nlanes) {
        pack_free(k);
        return lrgd_fail(LRGD_E_NOMEM, "effect: out of memory for packed probes");
    }
    size_t lanes = 0;
    for (int u = 0; u < n_probes; u++) {
        k->lane0[u] = (int)lanes;
        k->nlanes[u] = group * probes[u]->n_rows;
        lanes += (size_t)k->nlanes[u];
    }
    if (lanes > (size_t)1 << 28) {
        pack_free(k);
        return lrgd_fail(LRGD_E_INVALID, "effect: %zu query vectors in one call (at most 2^28)", lanes);
    }
    k->nb = (int)((lanes + EFM_W - 1) / EFM_W);
    size_t blocks = (size_t)k->nb * L * KVH;
    k->q = lrgd_alloc_n(blocks * hd * EFM_W, sizeof(float)); /* zeroed: the padding lanes */
    k->g = lrgd_alloc_n(blocks * hd * EFM_W, sizeof(float));
    k->lse = lrgd_alloc_n(blocks * EFM_W, sizeof(float));
    k->go = lrgd_alloc_n(blocks * EFM_W, sizeof(float));
    if (!k->q || !k->g || !k->lse || !k->go) {
        pack_free(k);
        return lrgd_fail(LRGD_E_NOMEM, "effect: out of memory for packed probes (%zu query vectors)", lanes);
    }
    for (int u = 0; u < n_probes; u++) {
        const lrgd_probe *p = probes[u];
        int M = p->n_rows, H = p->H;
        for (int l = 0; l < L; l++)
            for (int r = 0; r < M; r++)
                for (int h = 0; h < H; h++) {
                    int kh = h / group, lane = k->lane0[u] + r * group + h % group, b = lane / EFM_W, w = lane % EFM_W;
                    size_t qi = ((size_t)l * M + r) * H + h, pb = ((size_t)b * L + l) * KVH + kh;
                    const float *q = p->q + qi * hd, *g = p->g + qi * hd;
                    for (int d = 0; d < hd; d++) {
                        k->q[(pb * hd + d) * EFM_W + w] = q[d];
                        k->g[(pb * hd + d) * EFM_W + w] = g[d];
                    }
                    k->lse[pb * EFM_W + w] = p->lse[qi];
                    k->go[pb * EFM_W + w] = (float)p->go[qi];
                }
    }
    return LRGD_OK;
}

/* ---- entry points ------------------------------------------------------------- */

static efm_run_fn run_for(lrgd_isa isa)
{
#ifdef LRGD_KERNELS_X86
    if (isa == LRGD_ISA_AVX512) return efm_run_avx512;
    if (isa == LRGD_ISA_AVX2) return efm_run_avx2;
#endif
    return isa == LRGD_ISA_SCALAR ? efm_run_generic : NULL;
}

static lrgd_isa active_isa(void)
{
    const lrgd_kernels *a = lrgd_kernels_active();
    for (int i = 0; i < LRGD_ISA_COUNT; i++)
        if (a && a == lrgd_kernels_get((lrgd_isa)i)) return (lrgd_isa)i;
    return LRGD_ISA_SCALAR;
}

lrgd_status ef_score_matrix_isa(const lrgd_store *s, const lrgd_probe *const *probes, int n_probes, const int *ids,
                                int n_ids, double *effect, double *per_token, int isa)
{
    if (!s) return lrgd_fail(LRGD_E_INVALID, "effect matrix: no store");
    if (n_probes < 0 || n_ids < 0)
        return lrgd_fail(LRGD_E_INVALID, "effect matrix: %d probes and %d entries (counts must be >= 0)", n_probes,
                         n_ids);
    if (n_probes == 0 || n_ids == 0) return LRGD_OK;
    if (!probes || !ids || !effect)
        return lrgd_fail(LRGD_E_INVALID, "effect matrix: probes, ids and effect must not be NULL");
    if ((size_t)n_probes * (size_t)n_ids > (size_t)1 << 40)
        return lrgd_fail(LRGD_E_INVALID, "effect matrix: %d x %d scores are too many for one call", n_probes, n_ids);
    const lrgd_config *c = &s->e->c;
    for (int u = 0; u < n_probes; u++) {
        const lrgd_probe *p = probes[u];
        if (!p) return lrgd_fail(LRGD_E_INVALID, "effect matrix: probe %d is NULL", u);
        if (p->L != s->L || p->KVH * p->hd != s->KV || p->H != c->n_heads || p->KVH != c->n_kv_heads ||
            p->hd != c->head_dim || p->attn != c->attn)
            return lrgd_fail(LRGD_E_INVALID, "effect matrix: probe %d and the store come from different models", u);
    }
    int max_len = 1;
    for (int i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= s->n)
            return lrgd_fail(LRGD_E_INVALID, "effect matrix: ids[%d] = %d outside the store's entries 0..%d", i, ids[i],
                             s->n - 1);
        if (s->len[ids[i]] > max_len) max_len = s->len[ids[i]];
    }
    lrgd_isa which = isa < 0 ? active_isa() : (lrgd_isa)isa;
    efm_run_fn run = which < LRGD_ISA_COUNT && lrgd_kernels_get(which) ? run_for(which) : NULL;
    if (!run) return lrgd_fail(LRGD_E_UNSUPPORTED, "effect matrix: instruction set %d is not available here", isa);
    efm_pack k;
    LRGD_TRY(pack_make(probes, n_probes, &k));
    /* threads over the entries once the work pays for a fork (as lrgd_effect_score: 256 pairs of 16 lanes) */
    int nth = lrgd_get_threads();
    int par = nth > 1 && (double)n_ids * k.nb >= 256.0 && n_ids >= 2 * nth;
    if (!par) nth = 1;
    size_t per_sc = 2 * (size_t)max_len * EFM_W, per_la = (size_t)k.nb * EFM_W;
    float *scratch = lrgd_alloc_n(per_sc * (size_t)nth, sizeof(float));
    double *lane_acc = lrgd_alloc_n(per_la * (size_t)nth, sizeof(double));
    if (!scratch || !lane_acc) {
        lrgd_free(scratch);
        lrgd_free(lane_acc);
        pack_free(&k);
        return lrgd_fail(LRGD_E_NOMEM, "effect matrix: out of memory for scoring scratch");
    }
    int bad = 0;
#pragma omp parallel num_threads(nth) if (par) reduction(| : bad)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int i0 = (int)((long long)n_ids * t / T), i1 = (int)((long long)n_ids * (t + 1) / T);
        run(s, &k, ids, i0, i1, n_ids, effect, per_token, scratch + per_sc * (size_t)t, lane_acc + per_la * (size_t)t,
            &bad);
    }
    lrgd_free(scratch);
    lrgd_free(lane_acc);
    pack_free(&k);
    if (bad) return lrgd_fail(LRGD_E_NUMERIC, "effect matrix: a score is not finite");
    return LRGD_OK;
}

lrgd_status lrgd_effect_score_matrix(const lrgd_store *s, const lrgd_probe *const *probes, int n_probes,
                                     const int *ids, int n_ids, double *effect, double *per_token)
{
    return ef_score_matrix_isa(s, probes, n_probes, ids, n_ids, effect, per_token, -1);
}
