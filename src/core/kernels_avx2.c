/* AVX2+FMA variants of the kernels (kernels.h). Compiled for any x86-64 with
 * target attributes; lrgd_kernels_get only hands them out when the CPU has
 * AVX2, FMA and F16C. Tails run the scalar loop of the reference. */
#include "core/kernels.h"

#ifdef LRGD_KERNELS_X86
#include <immintrin.h>
#include <math.h>

#define T __attribute__((target("avx2,fma,f16c")))

T static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

T static inline double hsum4d(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* exp(x) as in kernels_avx512.c; without scalef, 2^n is applied as two
 * factors 2^(n/2) and 2^(n-n/2), both normal floats for every n the clamps
 * allow, so overflow and gradual underflow round as a single scaling would. */
T static inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_set1_ps(89.0f), _mm256_max_ps(_mm256_set1_ps(-104.0f), x));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-6f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n), n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

T static double sumsq(const float *x, int n)
{
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        a0 = _mm256_fmadd_pd(lo, lo, a0);
        a1 = _mm256_fmadd_pd(hi, hi, a1);
    }
    double s = hsum4d(_mm256_add_pd(a0, a1));
    for (; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

T static void scale_mul(float *out, const float *x, float r, const float *w, int n)
{
    __m256 rv = _mm256_set1_ps(r);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), rv), _mm256_loadu_ps(w + i)));
    for (; i < n; i++) out[i] = x[i] * r * w[i];
}

T static void rope_row(float *x, const float *cs, int n_heads, int head_dim, int neox)
{
    const float *c = cs, *s = cs + head_dim;
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *xh = x + (size_t)h * head_dim;
        if (!neox) {
            int e = 0;
            for (; e + 8 <= head_dim; e += 8) {
                __m256 v = _mm256_loadu_ps(xh + e), p = _mm256_permute_ps(v, 0xB1);
                _mm256_storeu_ps(xh + e, _mm256_add_ps(_mm256_mul_ps(v, _mm256_loadu_ps(c + e)),
                                                       _mm256_mul_ps(p, _mm256_loadu_ps(s + e))));
            }
            for (; e < head_dim; e += 2) {
                float x0 = xh[e], x1 = xh[e + 1];
                xh[e] = x0 * c[e] + x1 * s[e];
                xh[e + 1] = x1 * c[e + 1] + x0 * s[e + 1];
            }
        } else {
            int j = 0;
            for (; j + 8 <= half; j += 8) {
                __m256 x0 = _mm256_loadu_ps(xh + j), x1 = _mm256_loadu_ps(xh + half + j);
                _mm256_storeu_ps(xh + j, _mm256_add_ps(_mm256_mul_ps(x0, _mm256_loadu_ps(c + j)),
                                                       _mm256_mul_ps(x1, _mm256_loadu_ps(s + j))));
                _mm256_storeu_ps(xh + half + j, _mm256_add_ps(_mm256_mul_ps(x1, _mm256_loadu_ps(c + half + j)),
                                                              _mm256_mul_ps(x0, _mm256_loadu_ps(s + half + j))));
            }
            for (; j < half; j++) {
                float x0 = xh[j], x1 = xh[j + half];
                xh[j] = x0 * c[j] + x1 * s[j];
                xh[j + half] = x1 * c[j + half] + x0 * s[j + half];
            }
        }
    }
}

T static float vmax(const float *x, int n)
{
    int i = 0;
    float m = x[0];
    if (n >= 8) {
        __m256 a = _mm256_loadu_ps(x);
        for (i = 8; i + 8 <= n; i += 8) a = _mm256_max_ps(a, _mm256_loadu_ps(x + i));
        __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        s = _mm_max_ss(s, _mm_movehdup_ps(s));
        m = _mm_cvtss_f32(s);
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

T static double exp_sum(float *x, int n, float m)
{
    __m256 mv = _mm256_set1_ps(m);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        _mm256_storeu_ps(x + i, e);
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double sum = hsum4d(_mm256_add_pd(a0, a1));
    for (; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    return sum;
}

T static void scale(float *x, float s, int n)
{
    __m256 sv = _mm256_set1_ps(s);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), sv));
    for (; i < n; i++) x[i] *= s;
}

T static void swiglu(float *h, const float *g, const float *u, size_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
        _mm256_storeu_ps(h + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

/* 8 weights q[0..8) of a block times d, exact floats */
T static inline __m256 q8_f32(const int8_t *q, __m256 d)
{
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q))), d);
}

T static float dot_q8_0(const lrgd_block_q8_0 *w, const float *x, int nb)
{
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(w[b].d));
        const float *xb = x + (size_t)b * 32;
        a0 = _mm256_fmadd_ps(q8_f32(w[b].qs, d), _mm256_loadu_ps(xb), a0);
        a1 = _mm256_fmadd_ps(q8_f32(w[b].qs + 8, d), _mm256_loadu_ps(xb + 8), a1);
        a2 = _mm256_fmadd_ps(q8_f32(w[b].qs + 16, d), _mm256_loadu_ps(xb + 16), a2);
        a3 = _mm256_fmadd_ps(q8_f32(w[b].qs + 24, d), _mm256_loadu_ps(xb + 24), a3);
    }
    return hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

T static void dequant_q8_0(const lrgd_block_q8_0 *w, float *out, size_t nb)
{
    for (size_t b = 0; b < nb; b++) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(w[b].d));
        for (int k = 0; k < 32; k += 8) _mm256_storeu_ps(out + b * 32 + k, q8_f32(w[b].qs + k, d));
    }
}

T static float dot(const float *a, const float *b, int n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

const lrgd_kernels lrgd_kernels_avx2 = {
    .name = "avx2",
    .sumsq = sumsq,
    .scale_mul = scale_mul,
    .rope_row = rope_row,
    .max = vmax,
    .exp_sum = exp_sum,
    .scale = scale,
    .swiglu = swiglu,
    .dot_q8_0 = dot_q8_0,
    .dequant_q8_0 = dequant_q8_0,
    .dot = dot,
};
#endif
