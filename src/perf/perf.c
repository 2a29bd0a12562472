/* Forward-pass throughput, FLOP and byte counts, reference rates and peak
 * RSS (perf.h). */
#include "perf/perf.h"
#include "model/model_impl.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

double lrgd_perf_cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

lrgd_status lrgd_perf_forward(const lrgd_model *m, int pp, int tg, int reps, double budget_s, lrgd_perf_fwd *out)
{
    const lrgd_config *c = lrgd_model_config(m);
    if (pp < 1 || tg < 1 || reps < 1)
        return lrgd_fail(LRGD_E_INVALID, "forward benchmark: pp %d, tg %d, reps %d must be >= 1", pp, tg, reps);
    int n_ctx = pp > tg ? pp : tg;
    if (n_ctx > c->seq_len)
        return lrgd_fail(LRGD_E_INVALID, "forward benchmark: %d positions do not fit the model's context of %d", n_ctx,
                         c->seq_len);
    lrgd_state *s = NULL;
    int *tok = malloc(sizeof(int) * (size_t)n_ctx);
    float *logits = malloc(sizeof(float) * (size_t)c->vocab_size);
    lrgd_status st = (!tok || !logits) ? lrgd_fail(LRGD_E_NOMEM, "out of memory") : lrgd_state_new(m, n_ctx, pp, &s);
    if (st == LRGD_OK) {
        /* Fixed pseudo-random ids: the speed does not depend on them. */
        lrgd_rng rng;
        lrgd_rng_seed(&rng, 1234, 0);
        for (int i = 0; i < n_ctx; i++) tok[i] = (int)lrgd_rng_below(&rng, (uint32_t)c->vocab_size);
        st = lrgd_eval(s, tok, pp < 8 ? pp : 8, logits, 0); /* warm-up */
    }
    double sum_pp = 0, sum_tg = 0, best_pp = 1e300, best_tg = 1e300, cpu_pp = 1e300, cpu_tg = 1e300;
    int n_pp = 0, n_tg = 0;
    while (n_pp < reps && st == LRGD_OK && !(budget_s > 0 && sum_pp >= budget_s)) {
        if ((st = lrgd_state_truncate(s, 0)) != LRGD_OK) break;
        double t0 = lrgd_now(), c0 = lrgd_perf_cpu_now();
        st = lrgd_eval(s, tok, pp, logits, 0);
        double dt = lrgd_now() - t0, dc = lrgd_perf_cpu_now() - c0;
        sum_pp += dt;
        if (dt < best_pp) best_pp = dt;
        if (dc < cpu_pp) cpu_pp = dc;
        n_pp++;
    }
    while (n_tg < reps && st == LRGD_OK && !(budget_s > 0 && sum_tg >= budget_s)) {
        if ((st = lrgd_state_truncate(s, 0)) != LRGD_OK) break;
        double t0 = lrgd_now(), c0 = lrgd_perf_cpu_now();
        for (int i = 0; i < tg && st == LRGD_OK; i++) st = lrgd_eval(s, &tok[i], 1, logits, 0);
        double dt = lrgd_now() - t0, dc = lrgd_perf_cpu_now() - c0;
        sum_tg += dt;
        if (dt < best_tg) best_tg = dt;
        if (dc < cpu_tg) cpu_tg = dc;
        n_tg++;
    }
    lrgd_state_free(s);
    free(tok);
    free(logits);
    if (st != LRGD_OK) return st;
    out->pp = pp;
    out->tg = tg;
    out->pp_reps = n_pp;
    out->tg_reps = n_tg;
    out->pp_mean_s = sum_pp / n_pp;
    out->pp_best_s = best_pp;
    out->tg_mean_s = sum_tg / n_tg;
    out->tg_best_s = best_tg;
    out->pp_cpu_s = cpu_pp;
    out->tg_cpu_s = cpu_tg;
    return LRGD_OK;
}

long long lrgd_perf_params(const lrgd_config *c)
{
    long long D = c->dim, F = c->hidden_dim, Q = (long long)c->n_heads * c->head_dim,
              KV = (long long)c->n_kv_heads * c->head_dim;
    long long per_layer = 2 * D + D * Q + 2 * D * KV + Q * D + 3 * D * F;
    return (long long)c->vocab_size * D * (c->tied ? 1 : 2) + c->n_layers * per_layer + D;
}

double lrgd_perf_layer_gemm_flops(const lrgd_config *c, int n)
{
    double D = c->dim, F = c->hidden_dim, Q = (double)c->n_heads * c->head_dim,
           KV = (double)c->n_kv_heads * c->head_dim;
    return 2.0 * n * (D * Q + 2 * D * KV + Q * D + 3 * D * F) * c->n_layers;
}

double lrgd_perf_pp_flops(const lrgd_config *c, int n)
{
    double att = 4.0 * c->n_heads * c->head_dim * ((double)n * (n + 1) / 2) * c->n_layers;
    return lrgd_perf_layer_gemm_flops(c, n) + att + 2.0 * c->dim * c->vocab_size;
}

static double weight_bytes(const lrgd_weight *w)
{
    return (double)lrgd_dtype_row_bytes(w->type, (size_t)w->cols) * w->rows;
}

double lrgd_perf_tg_bytes(const lrgd_model *m, int tg)
{
    const lrgd_config *c = &m->cfg;
    double b = weight_bytes(&m->output) + (double)lrgd_dtype_row_bytes(m->tok_embd.type, (size_t)c->dim) +
               4.0 * c->dim * (2.0 * c->n_layers + 1);
    for (int l = 0; l < c->n_layers; l++) {
        const lrgd_layer *L = &m->layers[l];
        b += weight_bytes(&L->wq) + weight_bytes(&L->wk) + weight_bytes(&L->wv) + weight_bytes(&L->wo) +
             weight_bytes(&L->w1) + weight_bytes(&L->w2) + weight_bytes(&L->w3);
    }
    double mean_pos = (tg + 1) / 2.0; /* step i attends to i + 1 positions */
    b += 2.0 * 4.0 * c->n_layers * c->n_kv_heads * c->head_dim * mean_pos;
    return b;
}

double lrgd_perf_openblas_time(int ta, int tb, int M, int N, int K, const float *A, const float *B, float *C, int reps)
{
    int nt = lrgd_get_threads(), lda = ta ? M : K, ldb = tb ? K : N;
    openblas_set_num_threads(nt);
    double best = 1e300;
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up (starts OpenBLAS's threads) */
        double t0 = lrgd_now();
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A,
                    lda, B, ldb, 0.0f, C, N);
        double dt = lrgd_now() - t0;
        if (r >= 0 && dt < best) best = dt;
    }
    lrgd_set_threads(nt); /* lrgd's own arrangement of OpenBLAS and OpenMP threads */
    return best;
}

lrgd_status lrgd_perf_sgemm_layer(const lrgd_config *c, int n, int reps, lrgd_perf_gemm_rate *out)
{
    int D = c->dim, F = c->hidden_dim, Q = c->n_heads * c->head_dim, KV = c->n_kv_heads * c->head_dim;
    /* (out, in) of y = x W^T for wq, wk, wv, wo, w1, w3, w2 */
    const int shp[7][2] = {{Q, D}, {KV, D}, {KV, D}, {D, Q}, {F, D}, {F, D}, {D, F}};
    size_t wide = (size_t)(F > D ? F : D);
    if ((size_t)Q > wide) wide = (size_t)Q;
    float *x = lrgd_alloc_n((size_t)n * wide, sizeof(float));
    float *w = lrgd_alloc_n(wide * wide, sizeof(float));
    float *y = lrgd_alloc_n((size_t)n * wide, sizeof(float));
    if (!x || !w || !y) {
        lrgd_free(x);
        lrgd_free(w);
        lrgd_free(y);
        return lrgd_fail(LRGD_E_NOMEM, "sgemm benchmark: out of memory");
    }
    for (size_t i = 0; i < (size_t)n * wide; i++) x[i] = (float)(i % 13) * 0.01f - 0.06f;
    for (size_t i = 0; i < wide * wide; i++) w[i] = (float)(i % 7) * 0.01f - 0.03f;
    double best = 1e300, blas = 0;
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        double t0 = lrgd_now();
        for (int k = 0; k < 7; k++)
            lrgd_sgemm(0, 1, n, shp[k][0], shp[k][1], 1.0f, x, shp[k][1], w, shp[k][1], 0.0f, y, shp[k][0]);
        double dt = lrgd_now() - t0;
        if (r >= 0 && dt < best) best = dt;
    }
    for (int k = 0; k < 7; k++) blas += lrgd_perf_openblas_time(0, 1, n, shp[k][0], shp[k][1], x, w, y, reps);
    lrgd_free(x);
    lrgd_free(w);
    lrgd_free(y);
    double flops = lrgd_perf_layer_gemm_flops(c, n) / c->n_layers;
    out->lrgd = flops / best / 1e9;
    out->openblas = flops / blas / 1e9;
    out->best = out->lrgd > out->openblas ? out->lrgd : out->openblas;
    return LRGD_OK;
}

lrgd_status lrgd_perf_memcpy(size_t bytes, int reps, double *bytes_per_s)
{
    unsigned char *a = lrgd_alloc(bytes), *b = lrgd_alloc(bytes);
    if (!a || !b || bytes < 4096) {
        lrgd_free(a);
        lrgd_free(b);
        return lrgd_fail(LRGD_E_NOMEM, "memcpy benchmark: cannot allocate 2 x %zu bytes", bytes);
    }
    int nt = lrgd_get_threads();
    memset(a, 1, bytes); /* fault the pages in before timing */
    memset(b, 2, bytes);
    size_t chunk = (bytes / (size_t)nt + 63) & ~(size_t)63;
    double best = 1e300;
    for (int r = -1; r < reps; r++) {
        double t0 = lrgd_now();
#pragma omp parallel for num_threads(nt) schedule(static, 1)
        for (int t = 0; t < nt; t++) {
            size_t lo = (size_t)t * chunk, hi = lo + chunk < bytes ? lo + chunk : bytes;
            if (lo < hi) memcpy(b + lo, a + lo, hi - lo);
        }
        double dt = lrgd_now() - t0;
        if (r >= 0 && dt < best) best = dt;
        unsigned char *tmp = a; /* alternate the direction so no copy is a no-op on warm lines */
        a = b;
        b = tmp;
    }
    lrgd_free(a);
    lrgd_free(b);
    *bytes_per_s = 2.0 * (double)bytes / best;
    return LRGD_OK;
}

static int g_rss_reset;

int lrgd_perf_rss_reset(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return g_rss_reset = 0;
    int ok = fputs("5", f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return g_rss_reset = ok;
}

static long long vm_hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) {
            v = atoll(line + 6);
            break;
        }
    fclose(f);
    return v;
}

long long lrgd_perf_rss_peak_kb(void)
{
    long long v = g_rss_reset ? vm_hwm_kb() : -1;
    if (v >= 0) return v;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (long long)ru.ru_maxrss; /* KiB on Linux */
}

const char *lrgd_perf_rss_method(int reset_works)
{
    return reset_works ? "VmHWM from /proc/self/status, reset (clear_refs 5) at the start of each measurement"
                       : "getrusage ru_maxrss: the process peak so far (cannot be reset here)";
}
