/* Backward halves of the layer primitives. Each loop follows the
 * derivative of its forward counterpart in model/ops.c line by line.
 * Weight gradients are reduced over fixed row chunks in a fixed order, so
 * they do not depend on the thread count. */
#include "train/train_impl.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* One thread pool, not two: OpenBLAS's own threads and OpenMP's spin-waiting
 * workers fight over the cores (on a shared 2-core machine a step ran 20x
 * slower). So the training passes run OpenBLAS single-threaded and split
 * each GEMM over the OpenMP threads themselves (tm_gemm). */
int tm_blas_single_begin(void)
{
    int saved = openblas_get_num_threads(), omp = omp_get_max_threads();
    if (saved != 1) {
        openblas_set_num_threads(1);
        /* an OpenMP build of OpenBLAS forwards this to omp_set_num_threads */
        if (omp_get_max_threads() != omp) omp_set_num_threads(omp);
    }
    return saved;
}

void tm_blas_single_end(int saved)
{
    if (saved != 1) {
        int omp = omp_get_max_threads();
        openblas_set_num_threads(saved);
        if (omp_get_max_threads() != omp) omp_set_num_threads(omp);
    }
}

/* C = alpha op(A) op(B) + beta C, row-major, split over the rows of C (or
 * its columns when there are few rows) into one block per thread. Each
 * element is computed by one single-threaded sgemm call over the full K, so
 * the result does not depend on the split. */
void tm_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
             float beta, float *C, int ldc)
{
    int nt = omp_get_max_threads();
    if (nt <= 1 || omp_in_parallel() || (double)M * N * K < 2e5) {
        lrgd_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int by_rows = M >= N || M >= 8 * nt;
    int len = by_rows ? M : N;
    if (nt > len) nt = len;
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        /* blocks aligned to 16 so kernels see whole panels */
        int per = ((len + n - 1) / n + 15) / 16 * 16;
        int a = t * per, b = a + per < len ? a + per : len;
        if (a < b) {
            if (by_rows)
                lrgd_sgemm(ta, tb, b - a, N, K, alpha, ta ? A + a : A + (size_t)a * lda, lda, B, ldb, beta,
                           C + (size_t)a * ldc, ldc);
            else
                lrgd_sgemm(ta, tb, M, b - a, K, alpha, A, lda, tb ? B + (size_t)a * ldb : B + a, ldb, beta, C + a,
                           ldc);
        }
    }
}

#define ROW_CHUNK 64

/* y = x * r * w, r = (mean(x^2) + eps)^(-1/2):
 *   dx_j = r w_j dy_j - x_j r^3 / D * sum_k dy_k w_k x_k
 *   dw_j = sum_rows dy_j x_j r */
void tm_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                         const float *rstd, int n, int dim, int accumulate)
{
    int n_chunks = (n + ROW_CHUNK - 1) / ROW_CHUNK;
    float *part = dw ? lrgd_alloc_n((size_t)n_chunks * dim, sizeof(float)) : NULL;
#pragma omp parallel for schedule(static) if (n > 4 * ROW_CHUNK)
    for (int c = 0; c < n_chunks; c++) {
        int i1 = (c + 1) * ROW_CHUNK < n ? (c + 1) * ROW_CHUNK : n;
        float *pc = part ? part + (size_t)c * dim : NULL;
        for (int i = c * ROW_CHUNK; i < i1; i++) {
            const float *xi = x + (size_t)i * dim, *dyi = dout + (size_t)i * dim;
            float *dxi = dx + (size_t)i * dim;
            float r = rstd[i];
            double dot = 0;
            for (int j = 0; j < dim; j++) dot += (double)dyi[j] * w[j] * xi[j];
            float coef = (float)(dot * r * r * r / dim);
            for (int j = 0; j < dim; j++) {
                float g = r * w[j] * dyi[j] - xi[j] * coef;
                dxi[j] = accumulate ? dxi[j] + g : g;
            }
            if (pc)
                for (int j = 0; j < dim; j++) pc[j] += dyi[j] * xi[j] * r;
        }
    }
    if (part) {
        for (int c = 0; c < n_chunks; c++)
            for (int j = 0; j < dim; j++) dw[j] += part[(size_t)c * dim + j];
        lrgd_free(part);
    }
}

void tm_linear_forward(float *y, const float *x, const float *w, int n, int in, int out)
{
    tm_gemm(0, 1, n, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
}

void tm_linear_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, int n, int in,
                        int out, int accumulate_dx)
{
    if (dx) tm_gemm(0, 0, n, in, out, 1.0f, dy, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
    if (dw) tm_gemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in);
}

/* One sequence. For query row i of head h (kv head kh) with stored weights P:
 *   o_i = sum_j P_ij v_j
 *   dv_j += P_ij do_i,  dP_ij = do_i . v_j
 *   softmax: dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik);  linear: dS_ij = dP_ij
 *   S_ij = scale q_i . k_j  =>  dq_i += scale sum_j dS_ij k_j,  dk_j += scale dS_ij q_i
 * The work splits over kv heads: each writes only its own dk/dv columns and
 * the dq columns of the query heads in its group. */
void tm_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *att, const float *q,
                           const float *k, const float *v, const int *vis, int T, int n_heads, int n_kv_heads,
                           int head_dim, lrgd_attn_mode mode)
{
    int group = n_heads / n_kv_heads, qd = n_heads * head_dim, kvd = n_kv_heads * head_dim;
    float scale = 1.0f / sqrtf((float)head_dim);
    /* T floats of scratch: plain malloc, outside --max-memory's count (which
     * could otherwise refuse it in a function that cannot fail); should even
     * that fail, NaN gradients stop the trainer at its finite check. */
    float *ds = malloc((size_t)T * sizeof(float));
    if (!ds) {
        for (size_t i = 0; i < (size_t)T * qd; i++) dq[i] = NAN;
        for (size_t i = 0; i < (size_t)T * kvd; i++) dk[i] = dv[i] = NAN;
        return;
    }
    for (int kh = 0; kh < n_kv_heads; kh++) {
        for (int j = 0; j < T; j++) {
            memset(dk + (size_t)j * kvd + (size_t)kh * head_dim, 0, (size_t)head_dim * sizeof(float));
            memset(dv + (size_t)j * kvd + (size_t)kh * head_dim, 0, (size_t)head_dim * sizeof(float));
        }
        for (int h = kh * group; h < (kh + 1) * group; h++) {
            for (int i = 0; i < T; i++) {
                const float *P = att + ((size_t)h * T + i) * T;
                const float *doi = dout + (size_t)i * qd + (size_t)h * head_dim;
                const float *qi = q + (size_t)i * qd + (size_t)h * head_dim;
                float *dqi = dq + (size_t)i * qd + (size_t)h * head_dim;
                /* visible keys: 0..lim, then the row itself */
                int lim = vis ? vis[i] : i - 1;
                double sum = 0;
                for (int jj = 0; jj <= lim + 1; jj++) {
                    int j = jj <= lim ? jj : i;
                    const float *vj = v + (size_t)j * kvd + (size_t)kh * head_dim;
                    float *dvj = dv + (size_t)j * kvd + (size_t)kh * head_dim;
                    float dp = 0;
                    for (int d = 0; d < head_dim; d++) {
                        dp += doi[d] * vj[d];
                        dvj[d] += P[j] * doi[d];
                    }
                    ds[j] = dp;
                    sum += (double)P[j] * dp;
                }
                if (mode == LRGD_ATTN_SOFTMAX)
                    for (int jj = 0; jj <= lim + 1; jj++) {
                        int j = jj <= lim ? jj : i;
                        ds[j] = P[j] * (ds[j] - (float)sum);
                    }
                memset(dqi, 0, (size_t)head_dim * sizeof(float));
                for (int jj = 0; jj <= lim + 1; jj++) {
                    int j = jj <= lim ? jj : i;
                    const float *kj = k + (size_t)j * kvd + (size_t)kh * head_dim;
                    float *dkj = dk + (size_t)j * kvd + (size_t)kh * head_dim;
                    float sc = ds[j] * scale;
                    for (int d = 0; d < head_dim; d++) {
                        dqi[d] += sc * kj[d];
                        dkj[d] += sc * qi[d];
                    }
                }
            }
        }
    }
    free(ds);
}

/* lrgd_attention_forward for one sequence of T rows whose row i sees the
 * keys 0..vis[i] and itself (vis[i] = i - 1 is the causal mask): the
 * trainer's answer probes, rows that read a prefix and that no other row
 * reads. att [n_heads][T][T] gets the weights (softmax) or the scaled raw
 * scores (linear), 0 where masked. */
void tm_attention_forward_masked(float *out, float *att, const float *q, const float *k, const float *v,
                                 const int *vis, int T, int n_heads, int n_kv_heads, int head_dim, lrgd_attn_mode mode)
{
    int group = n_heads / n_kv_heads, qd = n_heads * head_dim, kvd = n_kv_heads * head_dim;
    float scale = 1.0f / sqrtf((float)head_dim);
    for (int h = 0; h < n_heads; h++) {
        int kh = h / group;
        for (int i = 0; i < T; i++) {
            float *a = att + ((size_t)h * T + i) * T;
            memset(a, 0, (size_t)T * sizeof(float));
            const float *qi = q + (size_t)i * qd + (size_t)h * head_dim;
            int lim = vis[i];
            float mx = -INFINITY;
            for (int jj = 0; jj <= lim + 1; jj++) {
                int j = jj <= lim ? jj : i;
                const float *kj = k + (size_t)j * kvd + (size_t)kh * head_dim;
                float sc = 0;
                for (int d = 0; d < head_dim; d++) sc += qi[d] * kj[d];
                a[j] = sc * scale;
                mx = a[j] > mx ? a[j] : mx;
            }
            if (mode == LRGD_ATTN_SOFTMAX) {
                double z = 0;
                for (int jj = 0; jj <= lim + 1; jj++) {
                    int j = jj <= lim ? jj : i;
                    a[j] = expf(a[j] - mx);
                    z += a[j];
                }
                float inv = (float)(1.0 / z);
                for (int jj = 0; jj <= lim + 1; jj++) a[jj <= lim ? jj : i] *= inv;
            }
            float *oi = out + (size_t)i * qd + (size_t)h * head_dim;
            memset(oi, 0, (size_t)head_dim * sizeof(float));
            for (int jj = 0; jj <= lim + 1; jj++) {
                int j = jj <= lim ? jj : i;
                const float *vj = v + (size_t)j * kvd + (size_t)kh * head_dim;
                for (int d = 0; d < head_dim; d++) oi[d] += a[j] * vj[d];
            }
        }
    }
}

/* h = g sigmoid(g) u:  dh/dg = u sigmoid(g) (1 + g (1 - sigmoid(g))),  dh/du = g sigmoid(g) */
void tm_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n)
{
#pragma omp parallel for schedule(static) if (n > 4096)
    for (size_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-g[i]));
        dg[i] = dh[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
        du[i] = dh[i] * g[i] * s;
    }
}

void tm_embed_backward(float *dtable, const float *dx, const int *tok, int n, int dim)
{
    for (int i = 0; i < n; i++) {
        float *row = dtable + (size_t)tok[i] * dim;
        const float *d = dx + (size_t)i * dim;
        for (int j = 0; j < dim; j++) row[j] += d[j];
    }
}

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void tm_dropout(float *x, size_t n, float p, uint64_t seed, uint64_t site)
{
    if (p <= 0) return;
    uint64_t key = mix64(seed ^ mix64(site + 0x9E3779B97F4A7C15ull));
    /* keep when the top 24 bits of the hash are >= p * 2^24 */
    uint32_t thresh = (uint32_t)(p * 16777216.0f);
    float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        uint32_t h = (uint32_t)(mix64(key + i * 0x9E3779B97F4A7C15ull) >> 40);
        x[i] = h >= thresh ? x[i] * scale : 0.0f;
    }
}
