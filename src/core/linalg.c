#include "core/core.h"
#include "core/kernels.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
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

/* One thread pool, not two: OpenBLAS runs single-threaded (threads.c) and
 * GEMMs are split here over the OpenMP threads, one block of C per thread,
 * each element computed by one sgemm call over the full K (its rounding may
 * still depend on the block's width). Two pools (OpenMP
 * workers and OpenBLAS's own pthreads) spin against each other and made 2
 * threads slower than 1 (bench/NOTES.md). Below SGEMM_PAR_MIN multiply-adds a
 * fork/join (microseconds with passive waiting) costs more than it saves. */
#define SGEMM_PAR_MIN (1 << 21)

/* at load: programs that never call lrgd_set_threads get one pool too */
__attribute__((constructor)) static void linalg_init(void) { lrgd_blas_single_thread(); }

static void sgemm1(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda, const float *b,
                   int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                alpha, a, lda, b, ldb, beta, c, ldc);
}

/* threads for a job of `work` multiply-adds split in at most `blocks` parts */
static int team_size(double work, double min_work, int blocks)
{
    if (omp_in_parallel() || work < min_work) return 1;
    int nt = omp_get_max_threads();
    return nt < blocks ? nt : blocks > 1 ? blocks : 1;
}

void lrgd_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    int by_rows = m >= n;
    int len = by_rows ? m : n;
    int nt = team_size((double)m * n * k, SGEMM_PAR_MIN, len / 16);
    if (nt <= 1) {
        sgemm1(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    /* blocks of whole 16-row (or column) panels */
    int per = ((len + nt - 1) / nt + 15) / 16 * 16;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; t++) {
        int lo = t * per, hi = lo + per < len ? lo + per : len;
        if (lo >= hi) continue;
        if (by_rows)
            sgemm1(trans_a, trans_b, hi - lo, n, k, alpha, trans_a ? a + lo : a + (size_t)lo * lda, lda, b, ldb, beta,
                   c + (size_t)lo * ldc, ldc);
        else
            sgemm1(trans_a, trans_b, m, hi - lo, k, alpha, a, lda, trans_b ? b + (size_t)lo * ldb : b + lo, ldb, beta,
                   c + lo, ldc);
    }
}

/* lrgd_matmul: fewer than MM_GEMM_MIN inputs (decoding) take one dot product
 * per weight row and input, reading each row once. More inputs go through a
 * GEMM, MM_TILE weight rows at a time: where the kernels have one (AVX-512),
 * the rows are packed into panels (Q8_0 dequantized on the way) for the
 * packed-panel GEMM, which reaches OpenBLAS's AVX-512 sgemm and twice its
 * AVX2 one (bench/NOTES.md); otherwise F32 goes straight to sgemm and Q8_0
 * rows are dequantized into a tile for it. Either way the weight rows are
 * split over the threads, and below MM_PAR_MIN multiply-adds it runs on one.
 * A row's dots, and its column of the packed-panel GEMM, are the same bits
 * whichever thread computes them. Through OpenBLAS, a different split can
 * round differently (its kernels depend on the block width), within the
 * float rounding bound (tests/test_kernels.c). */
#define MM_GEMM_MIN 4
#define MM_PAR_MIN (1 << 18)
#define MM_TILE 128

static void matmul_dots(float *y, const float *x, const lrgd_weight *w, int n, int accumulate, int r0, int r1,
                        const lrgd_kernels *K)
{
    size_t rb = lrgd_dtype_row_bytes(w->type, (size_t)w->cols);
    for (int r = r0; r < r1; r++) {
        const void *row = (const unsigned char *)w->data + rb * (size_t)r;
        for (int i = 0; i < n; i++) {
            const float *xi = x + (size_t)i * w->cols;
            float s = w->type == LRGD_F32 ? K->dot(row, xi, w->cols) : K->dot_q8_0(row, xi, w->cols / LRGD_Q8_0_BLOCK);
            float *yo = y + (size_t)i * w->rows + r;
            *yo = accumulate ? *yo + s : s;
        }
    }
}

static void matmul_gemm(float *y, const float *x, const lrgd_weight *w, int n, int accumulate, int r0, int r1,
                        const lrgd_kernels *K)
{
    float beta = accumulate ? 1.0f : 0.0f;
    if (w->type == LRGD_F32 && !K->gemm_panels) {
        sgemm1(0, 1, n, r1 - r0, w->cols, 1.0f, x, w->cols, (const float *)w->data + (size_t)r0 * w->cols, w->cols,
               beta, y + r0, w->rows);
        return;
    }
    /* a tile of MM_TILE rows, rounded up to whole panels */
    size_t tile_rows = K->gemm_panels ? (MM_TILE + (size_t)K->panel_nr - 1) / (size_t)K->panel_nr * (size_t)K->panel_nr
                                      : MM_TILE;
    float *tile = lrgd_alloc_n(tile_rows * (size_t)w->cols, sizeof(float));
    if (!tile) { /* no memory for the tile: the slow exact way */
        matmul_dots(y, x, w, n, accumulate, r0, r1, K);
        return;
    }
    size_t bpr = (size_t)w->cols / LRGD_Q8_0_BLOCK; /* Q8_0 blocks per row */
    for (int r = r0; r < r1; r += MM_TILE) {
        int tr = r1 - r < MM_TILE ? r1 - r : MM_TILE;
        const lrgd_block_q8_0 *q = (const lrgd_block_q8_0 *)w->data + (size_t)r * bpr;
        if (K->gemm_panels) {
            if (w->type == LRGD_F32) K->pack_f32(tile, (const float *)w->data + (size_t)r * w->cols, tr, w->cols);
            else K->pack_q8_0(tile, q, tr, w->cols);
            K->gemm_panels(y + r, w->rows, x, n, tile, tr, w->cols, accumulate);
        } else {
            K->dequant_q8_0(q, tile, (size_t)tr * bpr);
            sgemm1(0, 1, n, tr, w->cols, 1.0f, x, w->cols, tile, w->cols, beta, y + r, w->rows);
        }
    }
    lrgd_free(tile);
}

void lrgd_matmul(float *y, const float *x, const lrgd_weight *w, int n, int accumulate)
{
    lrgd_matmul_with(y, x, w, n, accumulate, lrgd_kernels_active());
}

void lrgd_matmul_with(float *y, const float *x, const lrgd_weight *w, int n, int accumulate, const lrgd_kernels *K)
{
    if (w->type != LRGD_F32 && w->type != LRGD_Q8_0) {
        /* F16 (loaders convert it to F32; kept for completeness): one row at a time */
        size_t rb = lrgd_dtype_row_bytes(w->type, (size_t)w->cols);
        float *row = lrgd_alloc_n((size_t)w->cols, sizeof(float));
        for (int r = 0; row && r < w->rows; r++) {
            lrgd_dequantize(w->type, (const unsigned char *)w->data + rb * (size_t)r, row, (size_t)w->cols);
            for (int i = 0; i < n; i++) {
                float s = K->dot(row, x + (size_t)i * w->cols, w->cols), *yo = y + (size_t)i * w->rows + r;
                *yo = accumulate ? *yo + s : s;
            }
        }
        lrgd_free(row);
        return;
    }
    int gemm = n >= MM_GEMM_MIN;
    int nt = team_size((double)n * w->rows * w->cols, MM_PAR_MIN, w->rows / 16);
    int per = ((w->rows + nt - 1) / nt + 15) / 16 * 16;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int t = 0; t < nt; t++) {
        int r0 = t * per, r1 = r0 + per < w->rows ? r0 + per : w->rows;
        if (r0 >= r1) continue;
        if (gemm) matmul_gemm(y, x, w, n, accumulate, r0, r1, K);
        else matmul_dots(y, x, w, n, accumulate, r0, r1, K);
    }
}
