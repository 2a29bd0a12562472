/* Scalar reference kernels and the run-time choice of a variant (kernels.h). */
#include "core/kernels.h"

#include <math.h>
#include <pthread.h>
#ifdef LRGD_KERNELS_X86
#include <cpuid.h>
#endif
#include <stdlib.h>
#include <string.h>

static double sumsq_ref(const float *x, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

static void scale_mul_ref(float *out, const float *x, float r, const float *w, int n)
{
    for (int i = 0; i < n; i++) out[i] = x[i] * r * w[i];
}

static void rope_row_ref(float *x, const float *cs, int n_heads, int head_dim, int neox)
{
    const float *c = cs, *s = cs + head_dim;
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *xh = x + (size_t)h * head_dim;
        for (int j = 0; j < half; j++) {
            int a = neox ? j : 2 * j, b = neox ? j + half : 2 * j + 1;
            float x0 = xh[a], x1 = xh[b];
            xh[a] = x0 * c[a] + x1 * s[a];
            xh[b] = x1 * c[b] + x0 * s[b];
        }
    }
}

static float max_ref(const float *x, int n)
{
    float m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static double exp_sum_ref(float *x, int n, float m)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        sum += x[i];
    }
    return sum;
}

static void scale_ref(float *x, float s, int n)
{
    for (int i = 0; i < n; i++) x[i] *= s;
}

static void swiglu_ref(float *h, const float *g, const float *u, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        h[i] = gi / (1.0f + expf(-gi)) * u[i];
    }
}

static float dot_q8_0_ref(const lrgd_block_q8_0 *w, const float *x, int nb)
{
    float s = 0;
    for (int b = 0; b < nb; b++) {
        float d = lrgd_fp16_to_fp32(w[b].d);
        for (int k = 0; k < LRGD_Q8_0_BLOCK; k++) s += d * (float)w[b].qs[k] * x[b * LRGD_Q8_0_BLOCK + k];
    }
    return s;
}

static void dequant_q8_0_ref(const lrgd_block_q8_0 *w, float *out, size_t nb)
{
    lrgd_dequantize(LRGD_Q8_0, w, out, nb * LRGD_Q8_0_BLOCK);
}

static float dot_ref(const float *a, const float *b, int n)
{
    float s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

const lrgd_kernels lrgd_kernels_scalar = {
    .name = "scalar",
    .sumsq = sumsq_ref,
    .scale_mul = scale_mul_ref,
    .rope_row = rope_row_ref,
    .max = max_ref,
    .exp_sum = exp_sum_ref,
    .scale = scale_ref,
    .swiglu = swiglu_ref,
    .dot_q8_0 = dot_q8_0_ref,
    .dequant_q8_0 = dequant_q8_0_ref,
    .dot = dot_ref,
};

#ifdef LRGD_KERNELS_X86
/* F16C (CPUID leaf 1, ECX bit 29): clang 14's __builtin_cpu_supports does not know it */
static int has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

const lrgd_kernels *lrgd_kernels_get(lrgd_isa isa)
{
    switch (isa) {
    case LRGD_ISA_SCALAR: return &lrgd_kernels_scalar;
#ifdef LRGD_KERNELS_X86
    case LRGD_ISA_AVX2:
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c())
            return &lrgd_kernels_avx2;
        return NULL;
    case LRGD_ISA_AVX512:
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("fma") && has_f16c())
            return &lrgd_kernels_avx512;
        return NULL;
#endif
    default: return NULL;
    }
}

static const lrgd_kernels *g_active;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void pick(void)
{
    const char *env = getenv("LRGD_ISA");
    static const char *const names[LRGD_ISA_COUNT] = {"scalar", "avx2", "avx512"};
    if (env)
        for (int i = 0; i < LRGD_ISA_COUNT; i++)
            if (!strcmp(env, names[i]) && (g_active = lrgd_kernels_get((lrgd_isa)i))) return;
    for (int i = LRGD_ISA_COUNT - 1; i >= 0 && !g_active; i--) g_active = lrgd_kernels_get((lrgd_isa)i);
}

const lrgd_kernels *lrgd_kernels_active(void)
{
    pthread_once(&g_once, pick);
    return g_active;
}
