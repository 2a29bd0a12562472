/* Inner loops of the forward pass with one scalar reference and vectorized
 * variants (AVX2+FMA, AVX-512) chosen at run time from what the CPU supports.
 * The variants live in their own translation units compiled with target
 * attributes, so the library still runs on any x86-64 (and builds elsewhere,
 * scalar only). Callers are src/model/ops.c and src/core/linalg.c; tests/
 * test_kernels.c checks every variant the CPU runs against the reference.
 *
 * Each variant computes the same maths as the reference; results may differ
 * in the last bits where the summation order or exp differs (documented per
 * kernel). Set LRGD_ISA=scalar|avx2|avx512 to force one (e.g. to compare). */
#ifndef LRGD_KERNELS_H
#define LRGD_KERNELS_H

#include "core/core.h"

typedef enum { LRGD_ISA_SCALAR, LRGD_ISA_AVX2, LRGD_ISA_AVX512, LRGD_ISA_COUNT } lrgd_isa;

typedef struct lrgd_kernels {
    const char *name;
    /* sum of x[i]^2, products and sum in double (the RMSNorm statistic) */
    double (*sumsq)(const float *x, int n);
    /* out[i] = (x[i] * r) * w[i]; out may alias x (exact: same as the reference) */
    void (*scale_mul)(float *out, const float *x, float r, const float *w, int n);
    /* RoPE of one row of n_heads heads in place, from a table cs[2*head_dim]
     * (lrgd_rope_table in model/ops.h): x[e] = x[e]*cs[e] + x[partner(e)]*cs[hd+e],
     * partner(e) = e^1 (pairs, neox = 0) or e +- head_dim/2 (halves, neox = 1). */
    void (*rope_row)(float *x, const float *cs, int n_heads, int head_dim, int neox);
    /* max of x[0..n), n >= 1 (exact) */
    float (*max)(const float *x, int n);
    /* x[i] = exp(x[i] - m); returns the sum of the new x[i] in double.
     * Vector exp: within 2 ulp of libm's expf (tests measure it). */
    double (*exp_sum)(float *x, int n, float m);
    /* x[i] *= s (exact) */
    void (*scale)(float *x, float s, int n);
    /* h[i] = g[i] / (1 + exp(-g[i])) * u[i]; h may alias g or u */
    void (*swiglu)(float *h, const float *g, const float *u, size_t n);
    /* sum_k w_k x_k over nb Q8_0 blocks, each w_k the exact dequantized value
     * d * q (fp16 times int8 is exact in float); summation order differs */
    float (*dot_q8_0)(const lrgd_block_q8_0 *w, const float *x, int nb);
    /* out = dequantized nb blocks (exact) */
    void (*dequant_q8_0)(const lrgd_block_q8_0 *w, float *out, size_t nb);
    /* sum_k a_k b_k in float (summation order differs) */
    float (*dot)(const float *a, const float *b, int n);

    /* GEMM y = x W^T on weights packed in panels of panel_nr rows; NULL in a
     * variant that has none (then lrgd_matmul uses sgemm). Panel p of a packed
     * block of `rows` rows starts at P + p*panel_nr*K and holds
     * P[k*panel_nr + j] = W[p*panel_nr + j][k], zero past the last row; pack
     * needs panels_floats(rows, K) floats. gemm_panels: y[i][j] (row stride
     * ldy) for i < m, j < rows is the chain s = fmaf(x[i][k], W[j][k], s) over
     * k = 0..K-1 from s = 0, then + y[i][j] when accumulate: bit for bit the
     * same whatever the blocking or the thread that computes it. */
    int panel_nr;
    void (*pack_f32)(float *P, const float *w, int rows, int K);
    void (*pack_q8_0)(float *P, const lrgd_block_q8_0 *w, int rows, int K);
    void (*gemm_panels)(float *y, int ldy, const float *x, int m, const float *P, int rows, int K, int accumulate);
} lrgd_kernels;

/* The variant for an ISA, or NULL when it is not built in or the CPU lacks it. */
const lrgd_kernels *lrgd_kernels_get(lrgd_isa isa);
/* The one in use: the best the CPU runs, or LRGD_ISA from the environment
 * (read once; an unknown or unsupported value falls back to the best). */
const lrgd_kernels *lrgd_kernels_active(void);

/* lrgd_matmul with the given variant's kernels (tests run every variant). */
void lrgd_matmul_with(float *y, const float *x, const lrgd_weight *w, int n, int accumulate, const lrgd_kernels *K);

/* OpenBLAS to one thread (threads.c): lrgd splits GEMMs over its OpenMP
 * threads itself. Runs at load (linalg.c) and in lrgd_set_threads. */
void lrgd_blas_single_thread(void);

/* Variant tables (kernels_avx2.c, kernels_avx512.c); declared here so the
 * dispatcher can refer to them only where they are compiled. */
extern const lrgd_kernels lrgd_kernels_scalar;
#if defined(__x86_64__) || defined(__i386__)
#define LRGD_KERNELS_X86 1
extern const lrgd_kernels lrgd_kernels_avx2;
extern const lrgd_kernels lrgd_kernels_avx512;
#endif

#endif
