#include "model/ops.h"

#include "core/core.h"

#include <math.h>
#include <string.h>

/* Loops below go parallel only above ~32K multiply-adds: a fork/join costs
 * microseconds, and far more when another process holds the other core. */
#define PAR_MIN_WORK 32768

void lrgd_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int n, int dim, float eps)
{
#pragma omp parallel for schedule(static) if (n > 4 && (size_t)n * dim >= PAR_MIN_WORK)
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * dim;
        float *oi = out + (size_t)i * dim;
        double ss = 0;
        for (int j = 0; j < dim; j++) ss += (double)xi[j] * xi[j];
        float r = (float)(1.0 / sqrt(ss / dim + eps));
        if (rstd) rstd[i] = r;
        for (int j = 0; j < dim; j++) oi[j] = xi[j] * r * w[j];
    }
}

void lrgd_rope(float *x, int n, int n_heads, int head_dim, int pos0, const int *pos, float base,
               lrgd_rope_type type, int sign)
{
    int half = head_dim / 2;
#pragma omp parallel for schedule(static) if (n > 4)
    for (int i = 0; i < n; i++) {
        int p = pos ? pos[i] : pos0 + i;
        for (int j = 0; j < half; j++) {
            /* computed in double: the angle p*theta loses digits in float at long positions */
            double theta = (double)p * pow((double)base, -2.0 * j / head_dim);
            float c = (float)cos(theta), s = (float)(sign * sin(theta));
            for (int h = 0; h < n_heads; h++) {
                float *xh = x + (size_t)i * n_heads * head_dim + (size_t)h * head_dim;
                int a = type == LRGD_ROPE_NEOX ? j : 2 * j;
                int b = type == LRGD_ROPE_NEOX ? j + half : 2 * j + 1;
                float x0 = xh[a], x1 = xh[b];
                xh[a] = x0 * c - x1 * s;
                xh[b] = x0 * s + x1 * c;
            }
        }
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

void lrgd_attention_forward_lse(float *out, float *att, float *lse, const float *q, const float *k, const float *v,
                                int pos0, int n, int n_heads, int n_kv_heads, int head_dim, lrgd_attn_mode mode)
{
    int T = pos0 + n, group = n_heads / n_kv_heads, qd = n_heads * head_dim, kvd = n_kv_heads * head_dim;
    float scale = 1.0f / sqrtf((float)head_dim);
    size_t need = (size_t)T * head_dim + (size_t)T + (size_t)head_dim;
#pragma omp parallel if ((size_t)n_heads * n * T * head_dim >= PAR_MIN_WORK)
    {
        /* Per thread: the head's keys transposed, kt[d][j] = k_j[d], so that
         * the scores of a query are head_dim vector passes over the keys, each
         * score still the sequential sum over d; then one row of scores and one
         * output row. On the stack for small contexts: decoding does not malloc. */
        float local[4096];
        float *kt = need <= 4096 ? local : lrgd_alloc_n(need, sizeof(float));
        float *sc = kt + (size_t)T * head_dim, *acc = sc + T;
#pragma omp for schedule(static)
        for (int h = 0; h < n_heads; h++) {
            const float *kh0 = k + (size_t)(h / group) * head_dim, *vh0 = v + (size_t)(h / group) * head_dim;
            for (int j = 0; j < T; j++)
                for (int d = 0; d < head_dim; d++) kt[(size_t)d * T + j] = kh0[(size_t)j * kvd + d];
            for (int i = 0; i < n; i++) {
                int t = pos0 + i;
                const float *qi = q + (size_t)i * qd + (size_t)h * head_dim;
                memset(sc, 0, (size_t)(t + 1) * sizeof(float));
                for (int d = 0; d < head_dim; d++) axpy(sc, qi[d], kt + (size_t)d * T, t + 1);
                for (int j = 0; j <= t; j++) sc[j] *= scale;
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
        if (kt != local) lrgd_free(kt);
    }
}

void lrgd_attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int pos0,
                            int n, int n_heads, int n_kv_heads, int head_dim, lrgd_attn_mode mode)
{
    lrgd_attention_forward_lse(out, att, NULL, q, k, v, pos0, n, n_heads, n_kv_heads, head_dim, mode);
}

void lrgd_swiglu_forward(float *h, const float *gate, const float *up, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 4096)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        h[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

double lrgd_softmax_row(float *x, int n)
{
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
    return (double)mx + log(sum);
}

void lrgd_embed(float *out, const lrgd_weight *table, const int *tok, int n)
{
    size_t rb = lrgd_dtype_row_bytes(table->type, (size_t)table->cols);
    for (int i = 0; i < n; i++)
        lrgd_dequantize(table->type, (const unsigned char *)table->data + rb * (size_t)tok[i],
                        out + (size_t)i * table->cols, (size_t)table->cols);
}
