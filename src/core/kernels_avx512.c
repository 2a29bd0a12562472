/* AVX-512 variants of the kernels (kernels.h). Compiled for any x86-64 with
 * target attributes; lrgd_kernels_get only hands them out when the CPU has
 * AVX-512 F/BW/VL/DQ, FMA and F16C. Tails are masked loads and stores. */
#include "core/kernels.h"

#ifdef LRGD_KERNELS_X86
#include <immintrin.h>
#include <math.h>

#define T __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))

T static inline __mmask16 tail(int r) { return (__mmask16)((1u << r) - 1u); }

/* exp(x), lanes within 2 ulp of expf: x = n ln2 + r, |r| <= ln2/2, a degree-7
 * polynomial (Cephes' expf coefficients) for e^r, scaled by 2^n with scalef,
 * which also gives the overflow to inf and the gradual underflow to 0. The
 * clamps keep n finite; their operand order lets a NaN through. */
T static inline __m512 exp16(__m512 x)
{
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187e-6f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

T static double sumsq(const float *x, int n)
{
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        __m512 v = n - i >= 16 ? _mm512_loadu_ps(x + i) : _mm512_maskz_loadu_ps(tail(n - i), x + i);
        __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v)), hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
        a0 = _mm512_fmadd_pd(lo, lo, a0);
        a1 = _mm512_fmadd_pd(hi, hi, a1);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}

T static void scale_mul(float *out, const float *x, float r, const float *w, int n)
{
    __m512 rv = _mm512_set1_ps(r);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), rv), _mm512_loadu_ps(w + i)));
    if (i < n) {
        __mmask16 m = tail(n - i);
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), rv), _mm512_maskz_loadu_ps(m, w + i));
        _mm512_mask_storeu_ps(out + i, m, v);
    }
}

T static void rope_row(float *x, const float *cs, int n_heads, int head_dim, int neox)
{
    const float *c = cs, *s = cs + head_dim;
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *xh = x + (size_t)h * head_dim;
        if (!neox) {
            /* pairs (2j, 2j+1): the partner vector is x with neighbours swapped */
            for (int e = 0; e < head_dim; e += 16) {
                __mmask16 m = head_dim - e >= 16 ? (__mmask16)0xffff : tail(head_dim - e);
                __m512 v = _mm512_maskz_loadu_ps(m, xh + e), p = _mm512_permute_ps(v, 0xB1);
                __m512 o = _mm512_add_ps(_mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, c + e)),
                                         _mm512_mul_ps(p, _mm512_maskz_loadu_ps(m, s + e)));
                _mm512_mask_storeu_ps(xh + e, m, o);
            }
        } else {
            for (int j = 0; j < half; j += 16) {
                __mmask16 m = half - j >= 16 ? (__mmask16)0xffff : tail(half - j);
                __m512 x0 = _mm512_maskz_loadu_ps(m, xh + j), x1 = _mm512_maskz_loadu_ps(m, xh + half + j);
                __m512 o0 = _mm512_add_ps(_mm512_mul_ps(x0, _mm512_maskz_loadu_ps(m, c + j)),
                                          _mm512_mul_ps(x1, _mm512_maskz_loadu_ps(m, s + j)));
                __m512 o1 = _mm512_add_ps(_mm512_mul_ps(x1, _mm512_maskz_loadu_ps(m, c + half + j)),
                                          _mm512_mul_ps(x0, _mm512_maskz_loadu_ps(m, s + half + j)));
                _mm512_mask_storeu_ps(xh + j, m, o0);
                _mm512_mask_storeu_ps(xh + half + j, m, o1);
            }
        }
    }
}

T static float vmax(const float *x, int n)
{
    __m512 a = _mm512_set1_ps(-INFINITY);
    for (int i = 0; i < n; i += 16)
        a = _mm512_max_ps(a, n - i >= 16 ? _mm512_loadu_ps(x + i)
                                         : _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), tail(n - i), x + i));
    return _mm512_reduce_max_ps(a);
}

T static double exp_sum(float *x, int n, float m)
{
    __m512 mv = _mm512_set1_ps(m);
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xffff : tail(n - i);
        __m512 e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), mv)));
        _mm512_mask_storeu_ps(x + i, k, e);
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
}

T static void scale(float *x, float s, int n)
{
    __m512 sv = _mm512_set1_ps(s);
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), sv));
    if (i < n) {
        __mmask16 m = tail(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), sv));
    }
}

T static void swiglu(float *h, const float *g, const float *u, size_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail((int)(n - i));
        __m512 gv = _mm512_maskz_loadu_ps(m, g + i), uv = _mm512_maskz_loadu_ps(m, u + i);
        __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv));
        _mm512_mask_storeu_ps(h + i, m, _mm512_mul_ps(_mm512_div_ps(gv, _mm512_add_ps(one, e)), uv));
    }
}

/* the 32 weights of a block as two vectors of exact floats d*q */
T static inline void block_f32(const lrgd_block_q8_0 *b, __m512 *w0, __m512 *w1)
{
    __m512 d = _mm512_set1_ps(_cvtsh_ss(b->d));
    __m128i q0 = _mm_loadu_si128((const __m128i *)b->qs), q1 = _mm_loadu_si128((const __m128i *)(b->qs + 16));
    *w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), d);
    *w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), d);
}

T static float dot_q8_0(const lrgd_block_q8_0 *w, const float *x, int nb)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512 w0, w1, w2, w3;
        block_f32(w + b, &w0, &w1);
        block_f32(w + b + 1, &w2, &w3);
        const float *xb = x + (size_t)b * 32;
        a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xb), a0);
        a1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xb + 16), a1);
        a2 = _mm512_fmadd_ps(w2, _mm512_loadu_ps(xb + 32), a2);
        a3 = _mm512_fmadd_ps(w3, _mm512_loadu_ps(xb + 48), a3);
    }
    if (b < nb) {
        __m512 w0, w1;
        block_f32(w + b, &w0, &w1);
        a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + (size_t)b * 32), a0);
        a1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + (size_t)b * 32 + 16), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

T static void dequant_q8_0(const lrgd_block_q8_0 *w, float *out, size_t nb)
{
    for (size_t b = 0; b < nb; b++) {
        __m512 w0, w1;
        block_f32(w + b, &w0, &w1);
        _mm512_storeu_ps(out + b * 32, w0);
        _mm512_storeu_ps(out + b * 32 + 16, w1);
    }
}

T static float dot(const float *a, const float *b, int n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : tail(n - i);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

/* ---- GEMM on packed panels (kernels.h): 32 weight rows per panel ---------- */

#define NR 32 /* panel width: two vectors */
#define RM 12 /* x rows per micro-tile: 24 accumulators + 2 panel vectors + 1 broadcast */

/* r[i] (16 rows of 16) becomes its transpose: r[k][i] = old r[i][k] */
T static inline void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    /* r[i] now holds, in each 128-bit lane L, rows (i/4)*4..+3 at column 4L + (i%4) */
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
    }
}

/* Rows j0..j0+15 of a panel (fewer at the end: zeros), columns k0..k0+15, from
 * 16 row vectors: transpose and store P[k][j0..j0+15]. */
T static inline void put16(float *P, int k0, int j0, __m512 r[16])
{
    transpose16(r);
    for (int k = 0; k < 16; k++) _mm512_storeu_ps(P + (size_t)(k0 + k) * NR + j0, r[k]);
}

T static void pack_f32(float *P, const float *w, int rows, int K)
{
    for (int p = 0; p * NR < rows; p++) {
        float *Pp = P + (size_t)p * NR * K;
        for (int h = 0; h < NR; h += 16) {
            int j0 = p * NR + h, nj = rows - j0 < 16 ? (rows - j0 > 0 ? rows - j0 : 0) : 16;
            int k0 = 0;
            for (; k0 + 16 <= K; k0 += 16) {
                __m512 r[16];
                for (int j = 0; j < 16; j++)
                    r[j] = j < nj ? _mm512_loadu_ps(w + (size_t)(j0 + j) * K + k0) : _mm512_setzero_ps();
                put16(Pp, k0, h, r);
            }
            for (; k0 < K; k0++) /* K not a multiple of 16: the last columns one by one */
                for (int j = 0; j < 16; j++) Pp[(size_t)k0 * NR + h + j] = j < nj ? w[(size_t)(j0 + j) * K + k0] : 0.0f;
        }
    }
}

T static void pack_q8_0(float *P, const lrgd_block_q8_0 *w, int rows, int K)
{
    int bpr = K / 32;
    for (int p = 0; p * NR < rows; p++) {
        float *Pp = P + (size_t)p * NR * K;
        for (int h = 0; h < NR; h += 16) {
            int j0 = p * NR + h, nj = rows - j0 < 16 ? (rows - j0 > 0 ? rows - j0 : 0) : 16;
            for (int b = 0; b < bpr; b++) {
                __m512 lo[16], hi[16];
                for (int j = 0; j < 16; j++) {
                    if (j < nj) block_f32(w + (size_t)(j0 + j) * bpr + b, &lo[j], &hi[j]);
                    else lo[j] = hi[j] = _mm512_setzero_ps();
                }
                put16(Pp, b * 32, h, lo);
                put16(Pp, b * 32 + 16, h, hi);
            }
        }
    }
}

/* y[0..rm)[0..nc) (+)= x[0..rm) . panel, rm <= RM rows, nc <= NR columns */
T static inline __attribute__((always_inline)) void micro(float *y, int ldy, const float *x, int K, const float *Pp,
                                                          int rm, int nc, int accumulate)
{
    __m512 c0[RM], c1[RM];
#pragma GCC unroll 12
    for (int i = 0; i < rm; i++) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(Pp + (size_t)k * NR), b1 = _mm512_loadu_ps(Pp + (size_t)k * NR + 16);
#pragma GCC unroll 12
        for (int i = 0; i < rm; i++) {
            __m512 a = _mm512_set1_ps(x[(size_t)i * K + k]);
            c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
        }
    }
    __mmask16 m0 = nc >= 16 ? (__mmask16)0xffff : tail(nc), m1 = nc >= 32 ? (__mmask16)0xffff : nc > 16 ? tail(nc - 16) : 0;
#pragma GCC unroll 12
    for (int i = 0; i < rm; i++) {
        float *yi = y + (size_t)i * ldy;
        if (accumulate) {
            c0[i] = _mm512_add_ps(c0[i], _mm512_maskz_loadu_ps(m0, yi));
            c1[i] = _mm512_add_ps(c1[i], _mm512_maskz_loadu_ps(m1, yi + 16));
        }
        _mm512_mask_storeu_ps(yi, m0, c0[i]);
        _mm512_mask_storeu_ps(yi + 16, m1, c1[i]);
    }
}

T static void gemm_panels(float *y, int ldy, const float *x, int m, const float *P, int rows, int K, int accumulate)
{
    for (int i0 = 0; i0 < m; i0 += RM) {
        int rm = m - i0 < RM ? m - i0 : RM;
        const float *xi = x + (size_t)i0 * K;
        for (int p = 0; p * NR < rows; p++) {
            int nc = rows - p * NR < NR ? rows - p * NR : NR;
            float *yo = y + (size_t)i0 * ldy + (size_t)p * NR;
            const float *Pp = P + (size_t)p * NR * K;
            /* constant row counts, so that each call is its own unrolled kernel */
            switch (rm) {
            case 12: micro(yo, ldy, xi, K, Pp, 12, nc, accumulate); break;
            case 11: micro(yo, ldy, xi, K, Pp, 11, nc, accumulate); break;
            case 10: micro(yo, ldy, xi, K, Pp, 10, nc, accumulate); break;
            case 9: micro(yo, ldy, xi, K, Pp, 9, nc, accumulate); break;
            case 8: micro(yo, ldy, xi, K, Pp, 8, nc, accumulate); break;
            case 7: micro(yo, ldy, xi, K, Pp, 7, nc, accumulate); break;
            case 6: micro(yo, ldy, xi, K, Pp, 6, nc, accumulate); break;
            case 5: micro(yo, ldy, xi, K, Pp, 5, nc, accumulate); break;
            case 4: micro(yo, ldy, xi, K, Pp, 4, nc, accumulate); break;
            case 3: micro(yo, ldy, xi, K, Pp, 3, nc, accumulate); break;
            case 2: micro(yo, ldy, xi, K, Pp, 2, nc, accumulate); break;
            default: micro(yo, ldy, xi, K, Pp, 1, nc, accumulate); break;
            }
        }
    }
}

const lrgd_kernels lrgd_kernels_avx512 = {
    .name = "avx512",
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
    .panel_nr = NR,
    .pack_f32 = pack_f32,
    .pack_q8_0 = pack_q8_0,
    .gemm_panels = gemm_panels,
};
#endif
