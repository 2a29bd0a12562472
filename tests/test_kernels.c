/* Every vectorized kernel variant the CPU runs (core/kernels.h) against the
 * scalar reference on random inputs of many lengths (odd ones, shorter than
 * a vector, and with tails), from unaligned pointers, in place where the
 * kernel allows it. Tolerances: exact where the variant does the same float
 * operations in the same order; for reordered float sums the bound
 * gamma_n * sum|a_k b_k| (gamma_n = n u / (1 - n u), u = 2^-24) that any
 * order of recursive summation meets, for double sums 1e-12 relative; for
 * exp a few ulp (the vector exp is a polynomial, libm's expf is correctly
 * rounded to within 1 ulp), with the largest seen printed. */
#include "core/kernels.h"
#include "model/ops.h"
#include "test.h"

#include <float.h>
#include <omp.h>
#include <stdint.h>

static lrgd_rng rng;

static float frand(float scale) { return (float)((lrgd_rng_uniform(&rng) * 2 - 1) * scale); }

static int same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* distance in units of the last place between two finite floats of one sign */
static double ulps(float a, float b)
{
    if (a == b) return 0;
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : 1e30;
    if (isinf(a) || isinf(b)) return 1e30;
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if ((ia < 0) != (ib < 0)) return fabs((double)a - b) / FLT_TRUE_MIN;
    return fabs((double)ia - (double)ib);
}

static double gamma_n(int n) { return n * 0x1p-24 / (1 - n * 0x1p-24); }

static const int lengths[] = {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 127, 172, 255, 512, 1376, 4099};
#define N_LENGTHS (int)(sizeof lengths / sizeof lengths[0])
enum { MAXN = 4099 + 8 };

static float a[MAXN], b[MAXN], c[MAXN], r1[MAXN], r2[MAXN];
static double max_exp_ulps, max_swiglu_ulps;

static void fill(float *x, int n, float scale)
{
    for (int i = 0; i < n; i++) x[i] = frand(scale);
}

static void test_reductions(const lrgd_kernels *K, const lrgd_kernels *R)
{
    for (int li = 0; li < N_LENGTHS; li++) {
        int n = lengths[li];
        float *x = a + 1, *y = b + 3; /* unaligned */
        fill(x, n, 3.0f);
        fill(y, n, 2.0f);
        double ref = R->sumsq(x, n), got = K->sumsq(x, n);
        CHECK_MSG(fabs(got - ref) <= 1e-12 * ref, "%s sumsq n=%d: %.17g vs %.17g", K->name, n, got, ref);

        CHECK_MSG(K->max(x, n) == R->max(x, n), "%s max n=%d", K->name, n);
        x[n - 1] = 10.0f; /* the largest in the tail */
        CHECK_MSG(K->max(x, n) == 10.0f, "%s max n=%d (in the tail)", K->name, n);
        x[0] = 11.0f;
        CHECK_MSG(K->max(x, n) == 11.0f, "%s max n=%d (first)", K->name, n);

        double abs_sum = 0, exact = 0;
        for (int i = 0; i < n; i++) {
            abs_sum += fabs((double)x[i] * y[i]);
            exact += (double)x[i] * y[i];
        }
        float d = K->dot(x, y, n), dr = R->dot(x, y, n);
        CHECK_MSG(fabs(d - exact) <= gamma_n(n) * abs_sum, "%s dot n=%d: %.9g vs exact %.9g", K->name, n, d, exact);
        CHECK_MSG(fabs(dr - exact) <= gamma_n(n) * abs_sum, "reference dot n=%d", n);
    }
}

static void test_elementwise(const lrgd_kernels *K, const lrgd_kernels *R)
{
    for (int li = 0; li < N_LENGTHS; li++) {
        int n = lengths[li];
        fill(a, n + 1, 3.0f);
        fill(b, n + 1, 1.5f);
        /* scale_mul: same two products per element, so bit for bit */
        R->scale_mul(r1, a + 1, 0.37f, b, n);
        K->scale_mul(r2 + 1, a + 1, 0.37f, b, n);
        CHECK_MSG(same_bits(r1, r2 + 1, n), "%s scale_mul n=%d", K->name, n);
        memcpy(c, a + 1, n * sizeof(float)); /* in place */
        K->scale_mul(c, c, 0.37f, b, n);
        CHECK_MSG(same_bits(r1, c, n), "%s scale_mul in place n=%d", K->name, n);

        memcpy(r1, a, (n + 1) * sizeof(float));
        memcpy(r2, a, (n + 1) * sizeof(float));
        R->scale(r1 + 1, -1.75f, n);
        K->scale(r2 + 1, -1.75f, n);
        CHECK_MSG(same_bits(r1, r2, n + 1), "%s scale n=%d", K->name, n);

        /* softmax pieces: x - max in [-6, 0] as in attention */
        fill(a, n + 2, 3.0f);
        memcpy(r1, a, (n + 2) * sizeof(float));
        memcpy(r2, a, (n + 2) * sizeof(float));
        float m = R->max(a + 1, n);
        double s1 = R->exp_sum(r1 + 1, n, m), s2 = K->exp_sum(r2 + 1, n, m);
        CHECK_MSG(r2[0] == a[0] && r2[n + 1] == a[n + 1], "%s exp_sum n=%d wrote outside", K->name, n);
        double worst = 0;
        for (int i = 1; i <= n; i++) worst = fmax(worst, ulps(r1[i], r2[i]));
        max_exp_ulps = fmax(max_exp_ulps, worst);
        CHECK_MSG(worst <= 3, "%s exp_sum n=%d: %g ulp from expf", K->name, n, worst);
        CHECK_MSG(fabs(s1 - s2) <= 4 * FLT_EPSILON * s1, "%s exp_sum n=%d: sum %.17g vs %.17g", K->name, n, s2, s1);

        /* SwiGLU on gates in [-12, 12], in place over the gate */
        fill(a, n, 12.0f);
        R->swiglu(r1, a, b, (size_t)n);
        memcpy(r2, a, n * sizeof(float));
        K->swiglu(r2, r2, b, (size_t)n);
        worst = 0;
        for (int i = 0; i < n; i++) worst = fmax(worst, ulps(r1[i], r2[i]));
        max_swiglu_ulps = fmax(max_swiglu_ulps, worst);
        /* exp (<= 2 ulp), then 1 + e, the division and the product each round */
        CHECK_MSG(worst <= 6, "%s swiglu n=%d: %g ulp", K->name, n, worst);
    }
}

/* exp at the edges: underflow to denormals and 0, overflow to inf, NaN. */
static void test_exp_edges(const lrgd_kernels *K)
{
    static const float xs[] = {-INFINITY, -1000.0f, -104.5f, -104.0f, -103.5f, -100.0f, -90.0f, -87.4f, -87.3f,
                               -50.0f,    -1e-8f,   -0.0f,   0.0f,    1e-8f,   0.34657359f, -0.34657359f, 1.0f,
                               20.0f,     88.0f,    88.72f,  88.73f,  89.0f,   100.0f, INFINITY, NAN};
    enum { NX = sizeof xs / sizeof xs[0] };
    float x1[NX + 3], x2[NX + 3];
    memcpy(x1, xs, sizeof xs);
    memcpy(x2, xs, sizeof xs);
    for (int i = 0; i < NX; i++) x1[i] = expf(xs[i]);
    K->exp_sum(x2, NX, 0.0f);
    for (int i = 0; i < NX; i++) {
        int ok = isnan(x1[i]) ? isnan(x2[i]) : isinf(x1[i]) ? x2[i] == x1[i]
                 : x1[i] < FLT_MIN ? fabsf(x2[i] - x1[i]) <= 2 * FLT_TRUE_MIN : ulps(x1[i], x2[i]) <= 3;
        CHECK_MSG(ok, "%s exp(%g) = %g, expf gives %g", K->name, xs[i], x2[i], x1[i]);
    }
    /* SwiGLU at the edges: silu(-inf) = -0 * u, silu(large) = g * u */
    float g[4] = {-200.0f, -90.0f, 90.0f, 200.0f}, u[4] = {1, 2, 3, 4}, h[4];
    K->swiglu(h, g, u, 4);
    CHECK_MSG(h[0] == 0 && fabsf(h[1]) < 1e-30f && h[2] == 270.0f && h[3] == 800.0f, "%s swiglu edges: %g %g %g %g",
              K->name, h[0], h[1], h[2], h[3]);
}

static void test_rope(const lrgd_kernels *K, const lrgd_kernels *R)
{
    static const int dims[] = {2, 4, 6, 8, 10, 16, 18, 32, 34, 48, 64, 66, 128};
    float cs[2 * 128];
    for (int neox = 0; neox < 2; neox++)
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
            int hd = dims[di], heads = 3, p = 1 + (int)(lrgd_rng_uniform(&rng) * 500);
            lrgd_rope_table(cs, 1, hd, p, NULL, 10000.0f, neox ? LRGD_ROPE_NEOX : LRGD_ROPE_NORM, 1);
            fill(a, heads * hd + 1, 2.0f);
            memcpy(r1, a + 1, heads * hd * sizeof(float));
            memcpy(r2, a + 1, heads * hd * sizeof(float));
            R->rope_row(r1, cs, heads, hd, neox);
            K->rope_row(r2, cs, heads, hd, neox);
            /* the rotation in double from the same angles */
            int half = hd / 2, bad = 0;
            for (int h = 0; h < heads; h++)
                for (int j = 0; j < half; j++) {
                    int ia = h * hd + (neox ? j : 2 * j), ib = h * hd + (neox ? j + half : 2 * j + 1);
                    double th = p * pow(10000.0, -2.0 * j / hd), x0 = a[1 + ia], x1 = a[1 + ib];
                    double e0 = x0 * cos(th) - x1 * sin(th), e1 = x0 * sin(th) + x1 * cos(th);
                    double tol = 4 * FLT_EPSILON * (fabs(x0) + fabs(x1));
                    bad += fabs(r2[ia] - e0) > tol || fabs(r2[ib] - e1) > tol;
                    bad += fabs(r2[ia] - r1[ia]) > tol || fabs(r2[ib] - r1[ib]) > tol;
                }
            CHECK_MSG(!bad, "%s rope %s head_dim %d: %d elements off", K->name, neox ? "neox" : "norm", hd, bad);
        }
}

static void test_q8(const lrgd_kernels *K, const lrgd_kernels *R)
{
    static const int blocks[] = {1, 2, 3, 5, 16, 17, 43, 128};
    lrgd_block_q8_0 q[128];
    for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
        int nb = blocks[bi], n = nb * 32;
        fill(a, n, 1.0f);
        a[0] = 0; /* a block with a zero, one that is all zero */
        if (nb > 2) memset(a + 64, 0, 32 * sizeof(float));
        lrgd_quantize_q8_0(a, q, (size_t)n);
        float *x = b + 1;
        fill(x, n, 2.0f);
        lrgd_dequantize(LRGD_Q8_0, q, r1, (size_t)n);
        K->dequant_q8_0(q, r2, (size_t)nb);
        CHECK_MSG(same_bits(r1, r2, n), "%s dequant_q8_0 nb=%d", K->name, nb);
        double abs_sum = 0, exact = 0;
        for (int i = 0; i < n; i++) {
            abs_sum += fabs((double)r1[i] * x[i]);
            exact += (double)r1[i] * x[i];
        }
        float d = K->dot_q8_0(q, x, nb), dr = R->dot_q8_0(q, x, nb);
        CHECK_MSG(fabs(d - exact) <= gamma_n(n) * abs_sum, "%s dot_q8_0 nb=%d: %.9g vs exact %.9g", K->name, nb, d,
                  exact);
        CHECK_MSG(fabs(dr - exact) <= gamma_n(n) * abs_sum, "reference dot_q8_0 nb=%d", nb);
    }
}

/* packed-panel GEMM against the fmaf chain it promises, bit for bit */
static void test_gemm(const lrgd_kernels *K)
{
    static const int ms[] = {1, 3, 12, 13, 25}, rs[] = {1, 15, 16, 17, 32, 33, 70}, ks[] = {5, 16, 32, 72, 96};
    enum { MM = 25, MR = 70, MK = 96, LDY = MR + 3 };
    static float x[MM * MK], w[MR * MK], P[(MR + 32) * MK], y[MM * LDY], yr[MM * LDY];
    static lrgd_block_q8_0 q[MR * MK / 32];
    int bad = 0, bad_pack = 0;
    for (int q8 = 0; q8 < 2; q8++)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            int k = ks[ki];
            if (q8 && k % 32) continue;
            for (size_t ri = 0; ri < sizeof rs / sizeof rs[0]; ri++) {
                int rows = rs[ri], nr = K->panel_nr, np = (rows + nr - 1) / nr;
                fill(w, rows * k, 1.0f);
                if (q8) {
                    lrgd_quantize_q8_0(w, q, (size_t)rows * k);
                    lrgd_dequantize(LRGD_Q8_0, q, w, (size_t)rows * k); /* the exact weights */
                }
                fill(P, np * nr * k, 9.0f); /* garbage the packing must overwrite */
                if (q8) K->pack_q8_0(P, q, rows, k);
                else K->pack_f32(P, w, rows, k);
                for (int p = 0; p < np; p++)
                    for (int kk = 0; kk < k; kk++)
                        for (int j = 0; j < nr; j++) {
                            int row = p * nr + j;
                            float want = row < rows ? w[(size_t)row * k + kk] : 0.0f;
                            bad_pack += P[(size_t)p * nr * k + (size_t)kk * nr + j] != want;
                        }
                for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++)
                    for (int acc = 0; acc < 2; acc++) {
                        int m = ms[mi];
                        fill(x, m * k, 2.0f);
                        fill(y, m * LDY, 3.0f);
                        memcpy(yr, y, sizeof y);
                        for (int i = 0; i < m; i++)
                            for (int j = 0; j < rows; j++) {
                                float s = 0;
                                for (int kk = 0; kk < k; kk++) s = fmaf(x[i * k + kk], w[j * k + kk], s);
                                yr[i * LDY + j] = acc ? yr[i * LDY + j] + s : s;
                            }
                        K->gemm_panels(y, LDY, x, m, P, rows, k, acc);
                        bad += !same_bits(y, yr, (size_t)m * LDY); /* columns past rows untouched too */
                    }
            }
        }
    CHECK_MSG(!bad_pack, "%s pack: %d entries wrong", K->name, bad_pack);
    CHECK_MSG(!bad, "%s gemm_panels: %d cases differ from the fmaf chain", K->name, bad);
}

/* lrgd_matmul through each variant: every path (row dots for n < 4, packed
 * panels or sgemm / dequantized tiles above) against a double product of the
 * exact weights, at 1 and 2 threads. With packed panels the two thread counts
 * give the same bits. Through OpenBLAS they need not: its kernels round
 * differently for blocks of different widths (seen here as rounding-sized
 * differences), so there both need only meet the bound. */
static void test_matmul(const lrgd_kernels *K)
{
    static const int ns[] = {1, 3, 4, 13, 40}, rs[] = {1, 17, 100, 300}, cs[] = {32, 96, 64 * 5};
    enum { MN = 40, MR = 300, MC = 320 };
    static float x[MN * MC], w[MR * MC], wd[MR * MC], y[2][MN * MR];
    static lrgd_block_q8_0 q[MR * MC / 32];
    int bad = 0, diff = 0, saved = omp_get_max_threads();
    for (int q8 = 0; q8 < 2; q8++)
        for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++)
            for (size_t ri = 0; ri < sizeof rs / sizeof rs[0]; ri++) {
                int C = cs[ci], R = rs[ri];
                fill(w, R * C, 1.0f);
                lrgd_quantize_q8_0(w, q, (size_t)R * C);
                if (q8) lrgd_dequantize(LRGD_Q8_0, q, wd, (size_t)R * C);
                else memcpy(wd, w, (size_t)R * C * sizeof(float));
                lrgd_weight W = {q8 ? LRGD_Q8_0 : LRGD_F32, q8 ? (const void *)q : (const void *)w, R, C};
                for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++)
                    for (int acc = 0; acc < 2; acc++) {
                        int n = ns[ni];
                        fill(x, n * C, 2.0f);
                        for (int t = 0; t < 2; t++) {
                            omp_set_num_threads(t + 1);
                            for (int i = 0; i < n * R; i++) y[t][i] = (float)(i % 7) - 3.0f;
                            lrgd_matmul_with(y[t], x, &W, n, acc, K);
                        }
                        if (K->gemm_panels) diff += !same_bits(y[0], y[1], (size_t)n * R);
                        for (int i = 0; i < n; i++)
                            for (int o = 0; o < R; o++) {
                                double s = acc ? (double)((i * R + o) % 7) - 3.0 : 0, abs_sum = fabs(s);
                                for (int c = 0; c < C; c++) {
                                    s += (double)x[i * C + c] * wd[o * C + c];
                                    abs_sum += fabs((double)x[i * C + c] * wd[o * C + c]);
                                }
                                for (int t = 0; t < 2; t++) bad += !(fabs(y[t][i * R + o] - s) <= gamma_n(C + 1) * abs_sum);
                            }
                    }
            }
    omp_set_num_threads(saved);
    CHECK_MSG(!bad, "%s lrgd_matmul: %d outputs beyond the rounding bound", K->name, bad);
    CHECK_MSG(!diff, "%s lrgd_matmul (packed panels): %d cases differ between 1 and 2 threads", K->name, diff);
}

int main(void)
{
    lrgd_rng_seed(&rng, 2026, 0);
    const lrgd_kernels *R = lrgd_kernels_get(LRGD_ISA_SCALAR);
    CHECK(R && lrgd_kernels_active());
    if (!R) return t_finish("test_kernels");
    printf("active kernels: %s\n", lrgd_kernels_active()->name);
    for (int isa = 0; isa < LRGD_ISA_COUNT; isa++) {
        const lrgd_kernels *K = lrgd_kernels_get((lrgd_isa)isa);
        if (!K) {
            printf("ISA %d: not on this CPU (or not built), skipped\n", isa);
            continue;
        }
        max_exp_ulps = max_swiglu_ulps = 0;
        test_reductions(K, R);
        test_elementwise(K, R);
        test_exp_edges(K);
        test_rope(K, R);
        test_q8(K, R);
        if (K->gemm_panels) test_gemm(K);
        test_matmul(K);
        printf("%-6s checked; largest exp error %g ulp, swiglu %g ulp (vs libm expf)\n", K->name, max_exp_ulps,
               max_swiglu_ulps);
    }
    return t_finish("test_kernels");
}
