#include "core/core.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

float lrgd_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { /* subnormal: value = man * 2^-24 */
            float v = (float)man * 0x1.0p-24f;
            return sign ? -v : v;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t lrgd_fp32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to inf */
    if (absx < 0x38800000u) { /* subnormal half or zero */
        float a;
        memcpy(&a, &absx, 4);
        /* rint of a / 2^-24 under round-to-nearest-even */
        uint32_t m = (uint32_t)nearbyintf(a * 0x1.0p24f);
        return (uint16_t)(sign | m);
    }
    uint32_t mant = absx & 0x7fffff, e = (absx >> 23) - 112;
    uint32_t h = (e << 10) | (mant >> 13), rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

const char *lrgd_dtype_name(lrgd_dtype t)
{
    switch (t) {
    case LRGD_F32: return "F32";
    case LRGD_F16: return "F16";
    case LRGD_Q8_0: return "Q8_0";
    }
    return "?";
}

size_t lrgd_dtype_row_bytes(lrgd_dtype t, size_t n)
{
    switch (t) {
    case LRGD_F32: return n * 4;
    case LRGD_F16: return n * 2;
    case LRGD_Q8_0: return n / LRGD_Q8_0_BLOCK * sizeof(lrgd_block_q8_0);
    }
    return 0;
}

void lrgd_dequantize(lrgd_dtype t, const void *src, float *dst, size_t n)
{
    switch (t) {
    case LRGD_F32: memcpy(dst, src, n * 4); break;
    case LRGD_F16: {
        const unsigned char *p = src;
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = lrgd_fp16_to_fp32(h);
        }
        break;
    }
    case LRGD_Q8_0: {
        const lrgd_block_q8_0 *b = src;
        for (size_t i = 0; i < n / LRGD_Q8_0_BLOCK; i++) {
            float d = lrgd_fp16_to_fp32(b[i].d);
            for (int k = 0; k < LRGD_Q8_0_BLOCK; k++) dst[i * LRGD_Q8_0_BLOCK + k] = d * (float)b[i].qs[k];
        }
        break;
    }
    }
}

void lrgd_quantize_q8_0(const float *src, lrgd_block_q8_0 *dst, size_t n)
{
    for (size_t i = 0; i < n / LRGD_Q8_0_BLOCK; i++) {
        const float *x = src + i * LRGD_Q8_0_BLOCK;
        float amax = 0;
        for (int k = 0; k < LRGD_Q8_0_BLOCK; k++) amax = fmaxf(amax, fabsf(x[k]));
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        dst[i].d = lrgd_fp32_to_fp16(d);
        for (int k = 0; k < LRGD_Q8_0_BLOCK; k++) dst[i].qs[k] = (int8_t)roundf(x[k] * id);
    }
}

void lrgd_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void lrgd_matmul(float *y, const float *x, const lrgd_weight *w, int n, int accumulate)
{
    if (w->type == LRGD_F32) {
        if (n == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, w->rows, w->cols, 1.0f, w->data, w->cols, x, 1,
                        accumulate ? 1.0f : 0.0f, y, 1);
        else
            lrgd_sgemm(0, 1, n, w->rows, w->cols, 1.0f, x, w->cols, w->data, w->cols, accumulate ? 1.0f : 0.0f,
                       y, w->rows);
        return;
    }
    /* Quantized weights: dequantize one row at a time and dot it with every input.
     * Slow but exact to the stored values; the performance issue replaces it. */
    size_t rb = lrgd_dtype_row_bytes(w->type, (size_t)w->cols);
#pragma omp parallel
    {
        float *row = lrgd_alloc_n((size_t)w->cols, sizeof(float));
#pragma omp for schedule(static)
        for (int r = 0; r < w->rows; r++) {
            lrgd_dequantize(w->type, (const unsigned char *)w->data + rb * (size_t)r, row, (size_t)w->cols);
            for (int i = 0; i < n; i++) {
                const float *xi = x + (size_t)i * w->cols;
                float s = 0;
                for (int c = 0; c < w->cols; c++) s += row[c] * xi[c];
                float *yo = y + (size_t)i * w->rows + r;
                *yo = accumulate ? *yo + s : s;
            }
        }
        lrgd_free(row);
    }
}
