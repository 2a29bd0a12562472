#include "model/ops.h"

#include "core/core.h"
#include "core/kernels.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* Loops below go parallel only above ~32K multiply-adds: a fork/join costs
 * microseconds, and far more when another process holds the other core. */
#define PAR_MIN_WORK 32768

void lrgd_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int n, int dim, float eps)
{
    const lrgd_kernels *K = lrgd_kernels_active();
#pragma omp parallel for schedule(static) if (n > 4 && (size_t)n * dim >= PAR_MIN_WORK)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim;
        double ss = K->sumsq(xi, dim); /* in double, like the reference */
        float r = (float)(1.0 / sqrt(ss / dim + eps));
        if (rstd) rstd[i] = r;
        K->scale_mul(out + (size_t)i * dim, xi, r, w, dim);
    }
}

/* Inverse frequencies base^(-2j/head_dim) of the first ROPE_CACHED pairs are
 * computed once per call; wider heads compute the rest as they go. */
#define ROPE_CACHED 256

static void rope_inv_freq(double *inv, int head_dim, float base)
{
    for (int j = 0; j < head_dim / 2 && j < ROPE_CACHED; j++) inv[j] = pow((double)base, -2.0 * j / head_dim);
}

/* cos and signed sin for every element of one head at position p, in the
 * layout of kernels.h rope_row: x_a' = x_a c - x_b s, x_b' = x_b c + x_a s. */
static void rope_angles(float *cs, int p, int head_dim, const double *inv, float base, lrgd_rope_type type, int sign)
{
    int half = head_dim / 2;
    float *c = cs, *s = cs + head_dim;
    for (int j = 0; j < half; j++) {
        double f = j < ROPE_CACHED ? inv[j] : pow((double)base, -2.0 * j / head_dim);
        /* in double: the angle p*theta loses digits in float at long positions */
        double theta = (double)p * f;
        float cj = (float)cos(theta), sj = (float)(sign * sin(theta));
        int a = type == LRGD_ROPE_NEOX ? j : 2 * j, b = type == LRGD_ROPE_NEOX ? j + half : 2 * j + 1;
        c[a] = c[b] = cj;
        s[a] = -sj;
        s[b] = sj;
    }
}

void lrgd_rope_table(float *cs, int n, int head_dim, int pos0, const int *pos, float base, lrgd_rope_type type,
                     int sign)
{
    double inv[ROPE_CACHED];
    rope_inv_freq(inv, head_dim, base);
#pragma omp parallel for schedule(static) if (n > 64)
    for (int i = 0; i < n; i++)
        rope_angles(cs + (size_t)i * 2 * head_dim, pos ? pos[i] : pos0 + i, head_dim, inv, base, type, sign);
}

void lrgd_rope_apply(float *x, int n, int n_heads, int head_dim, const float *cs, lrgd_rope_type type)
{
    const lrgd_kernels *K = lrgd_kernels_active();
#pragma omp parallel for schedule(static) if (n > 16 && (size_t)n * n_heads * head_dim >= PAR_MIN_WORK)
    for (int i = 0; i < n; i++)
        K->rope_row(x + (size_t)i * n_heads * head_dim, cs + (size_t)i * 2 * head_dim, n_heads, head_dim,
                    type == LRGD_ROPE_NEOX);
}

void lrgd_rope(float *x, int n, int n_heads, int head_dim, int pos0, const int *pos, float base,
               lrgd_rope_type type, int sign)
{
    const lrgd_kernels *K = lrgd_kernels_active();
    double inv[ROPE_CACHED];
    rope_inv_freq(inv, head_dim, base);
#pragma omp parallel if (n > 4)
    {
        /* one row's table at a time: rows need not share positions */
        float local[1024];
        float *cs = 2 * head_dim <= 1024 ? local : lrgd_alloc_n((size_t)head_dim * 2, sizeof(float));
        /* (no memory for a wide head's table: the pair-by-pair loop below) */
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            int p = pos ? pos[i] : pos0 + i;
            float *xi = x + (size_t)i * n_heads * head_dim;
            if (cs) {
                rope_angles(cs, p, head_dim, inv, base, type, sign);
                K->rope_row(xi, cs, n_heads, head_dim, type == LRGD_ROPE_NEOX);
                continue;
            }
            for (int j = 0; j < head_dim / 2; j++) {
                float two[4]; /* the table of one pair, as rope_angles lays it out for head_dim 2 */
                double theta = (double)p * (j < ROPE_CACHED ? inv[j] : pow((double)base, -2.0 * j / head_dim));
                two[0] = two[1] = (float)cos(theta);
                two[3] = (float)(sign * sin(theta));
                two[2] = -two[3];
                for (int h = 0; h < n_heads; h++) {
                    float *xh = xi + (size_t)h * head_dim, pair[2];
                    int a = type == LRGD_ROPE_NEOX ? j : 2 * j, b = type == LRGD_ROPE_NEOX ? j + head_dim / 2 : 2 * j + 1;
                    pair[0] = xh[a];
                    pair[1] = xh[b];
                    lrgd_kernels_scalar.rope_row(pair, two, 1, 2, 0);
                    xh[a] = pair[0];
                    xh[b] = pair[1];
                }
            }
        }
        if (cs && cs != local) lrgd_free(cs);
    }
}

/* y[0..n) += a x[0..n): element-wise, so vectorizing it changes no result. */
static inline void axpy(float *restrict y, float a, const float *restrict x, int n)
{
    int d = 0;
    for (; d + 8 <= n; d += 8)
        for (int l = 0; l < 8; l++) y[d + l] += a * x[d + l];
    for (; d < n; d++) y[d] += a * x[d];
}

/* Attention of a batch of queries as GEMMs, one head per thread: for each
 * chunk of ATT_QB queries, the scores against every key up to the chunk's
 * last position (S = scale * Q K^T), the causal softmax of each row (entries
 * after the query's own position set to 0), then out = S V. The few scores
 * above the diagonal inside a chunk are computed and discarded. Returns 0
 * when the scratch cannot be allocated (the caller then goes row by row). */
#define ATT_QB 64
#define ATT_GEMM_MIN 16

static int attention_gemm(float *out, float *att, float *lse, const float *q, const float *k, const float *v, int pos0,
                          int n, int n_heads, int n_kv_heads, int head_dim, lrgd_attn_mode mode)
{
    int T = pos0 + n, group = n_heads / n_kv_heads, qd = n_heads * head_dim, kvd = n_kv_heads * head_dim;
    float scale = 1.0f / sqrtf((float)head_dim);
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt > n_heads) nt = n_heads;
    size_t per = (size_t)ATT_QB * T;
    float *scratch = lrgd_alloc_n(per * nt, sizeof(float));
    if (!scratch) return 0;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int h = 0; h < n_heads; h++) {
        float *S = scratch + per * omp_get_thread_num();
        const float *kh = k + (size_t)(h / group) * head_dim, *vh = v + (size_t)(h / group) * head_dim;
        for (int i0 = 0; i0 < n; i0 += ATT_QB) {
            int qb = n - i0 < ATT_QB ? n - i0 : ATT_QB, tc = pos0 + i0 + qb;
            lrgd_sgemm(0, 1, qb, tc, head_dim, scale, q + (size_t)i0 * qd + (size_t)h * head_dim, qd, kh, kvd, 0.0f,
                       S, tc);
            for (int r = 0; r < qb; r++) {
                int i = i0 + r, t = pos0 + i;
                float *sr = S + (size_t)r * tc;
                double l = mode == LRGD_ATTN_SOFTMAX ? lrgd_softmax_row(sr, t + 1) : 0.0;
                if (lse) lse[(size_t)h * n + i] = (float)l;
                memset(sr + t + 1, 0, (size_t)(tc - t - 1) * sizeof(float));
                if (att) {
                    float *ai = att + ((size_t)h * n + i) * T;
                    memcpy(ai, sr, (size_t)tc * sizeof(float));
                    memset(ai + tc, 0, (size_t)(T - tc) * sizeof(float));
                }
            }
            lrgd_sgemm(0, 0, qb, head_dim, tc, 1.0f, S, tc, vh, kvd, 0.0f, out + (size_t)i0 * qd + (size_t)h * head_dim,
                       qd);
        }
    }
    lrgd_free(scratch);
    return 1;
}

void lrgd_attention_forward_lse(float *out, float *att, float *lse, const float *q, const float *k, const float *v,
                                int pos0, int n, int n_heads, int n_kv_heads, int head_dim, lrgd_attn_mode mode)
{
    if (n >= ATT_GEMM_MIN &&
        attention_gemm(out, att, lse, q, k, v, pos0, n, n_heads, n_kv_heads, head_dim, mode))
        return;
    /* Few queries (decoding): row by row, each score one vector dot of the query
     * with a key row of the cache. */
    const lrgd_kernels *K = lrgd_kernels_active();
    int T = pos0 + n, group = n_heads / n_kv_heads, qd = n_heads * head_dim, kvd = n_kv_heads * head_dim;
    float scale = 1.0f / sqrtf((float)head_dim);
    size_t need = (size_t)T + (size_t)head_dim;
#pragma omp parallel if ((size_t)n_heads * n * T * head_dim >= PAR_MIN_WORK)
    {
        /* Per thread: one row of scores and one output row, on the stack for
         * contexts up to ~4K: decoding does not malloc. */
        float local[4096];
        float *sc = need <= 4096 ? local : lrgd_alloc_n(need, sizeof(float)), *acc = sc + T;
#pragma omp for schedule(static)
        for (int h = 0; h < n_heads; h++) {
            const float *kh0 = k + (size_t)(h / group) * head_dim, *vh0 = v + (size_t)(h / group) * head_dim;
            for (int i = 0; i < n; i++) {
                int t = pos0 + i;
                const float *qi = q + (size_t)i * qd + (size_t)h * head_dim;
                for (int j = 0; j <= t; j++) sc[j] = K->dot(qi, kh0 + (size_t)j * kvd, head_dim) * scale;
                double l = mode == LRGD_ATTN_SOFTMAX ? lrgd_softmax_row(sc, t + 1) : 0.0;
                if (lse) lse[(size_t)h * n + i] = (float)l;
                memset(acc, 0, (size_t)head_dim * sizeof(float));
                for (int j = 0; j <= t; j++) axpy(acc, sc[j], vh0 + (size_t)j * kvd, head_dim);
                memcpy(out + (size_t)i * qd + (size_t)h * head_dim, acc, (size_t)head_dim * sizeof(float));
                if (att) {
                    float *ai = att + ((size_t)h * n + i) * T;
                    memcpy(ai, sc, (size_t)(t + 1) * sizeof(float));
                    memset(ai + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
                }
            }
        }
        if (sc != local) lrgd_free(sc);
    }
}

void lrgd_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int pos0,
                            int n, int n_heads, int n_kv_heads, int head_dim, lrgd_attn_mode mode)
{
    lrgd_attention_forward_lse(out, att, NULL, q, k, v, pos0, n, n_heads, n_kv_heads, head_dim, mode);
}

void lrgd_swiglu_forward(float *h, const float *gate, const float *up, size_t n)
{
    const lrgd_kernels *K = lrgd_kernels_active();
    /* chunks of whole vectors, one per thread */
    int nt = n > 16384 && !omp_in_parallel() ? omp_get_max_threads() : 1;
    size_t per = ((n + (size_t)nt - 1) / (size_t)nt + 63) / 64 * 64;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int t = 0; t < nt; t++) {
        size_t a = (size_t)t * per, b = a + per < n ? a + per : n;
        if (a < b) K->swiglu(h + a, gate + a, up + a, b - a);
    }
}

double lrgd_softmax_row(float *x, int n)
{
    if (n <= 0) return -INFINITY;
    const lrgd_kernels *K = lrgd_kernels_active();
    float mx = K->max(x, n);
    double sum = K->exp_sum(x, n, mx);
    K->scale(x, (float)(1.0 / sum), n);
    return (double)mx + log(sum);
}

void lrgd_embed(float *out, const lrgd_weight *table, const int *tok, int n)
{
    size_t rb = lrgd_dtype_row_bytes(table->type, (size_t)table->cols);
    for (int i = 0; i < n; i++)
        lrgd_dequantize(table->type, (const unsigned char *)table->data + rb * (size_t)tok[i],
                        out + (size_t)i * table->cols, (size_t)table->cols);
}
