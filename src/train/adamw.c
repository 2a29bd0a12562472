/* AdamW (decoupled weight decay) with linear warm-up, cosine decay and
 * clipping of the global gradient norm. Every reduction runs over fixed
 * chunks in a fixed order: the result depends on the seed and thread count
 * only through the gradients themselves. */
#include "train/train_impl.h"

#include <math.h>
#include <string.h>

#define NORM_CHUNK 65536

double lrgd_lr_schedule(const lrgd_adamw_opts *o, int64_t step, int64_t total_steps)
{
    if (o->warmup_steps > 0 && step < o->warmup_steps) return o->lr * (double)(step + 1) / (double)o->warmup_steps;
    int64_t decay = total_steps - o->warmup_steps;
    if (decay <= 0) return o->lr;
    double prog = (double)(step - o->warmup_steps) / (double)decay;
    if (prog > 1) prog = 1;
    double min_lr = o->lr * o->min_lr_ratio;
    return min_lr + 0.5 * (o->lr - min_lr) * (1 + cos(M_PI * prog));
}

double tm_grad_norm(const float *g, size_t n)
{
    size_t n_chunks = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    double *part = lrgd_alloc_n(n_chunks ? n_chunks : 1, sizeof(double));
    if (!part) return NAN;
#pragma omp parallel for schedule(static)
    for (size_t c = 0; c < n_chunks; c++) {
        size_t i1 = (c + 1) * NORM_CHUNK < n ? (c + 1) * NORM_CHUNK : n;
        double s = 0;
        for (size_t i = c * NORM_CHUNK; i < i1; i++) s += (double)g[i] * g[i];
        part[c] = s;
    }
    double s = 0;
    for (size_t c = 0; c < n_chunks; c++) s += part[c];
    lrgd_free(part);
    return sqrt(s);
}

lrgd_status tm_adamw_init(lrgd_tmodel *t)
{
    if (t->m) return LRGD_OK;
    t->m = lrgd_alloc_n(t->n_params, sizeof(float));
    t->v = lrgd_alloc_n(t->n_params, sizeof(float));
    if (!t->m || !t->v) return lrgd_fail(LRGD_E_NOMEM, "optimizer: out of memory for the AdamW moments");
    return LRGD_OK;
}

lrgd_status lrgd_adamw_step(lrgd_tmodel *t, const lrgd_adamw_opts *o, int64_t step, int64_t total_steps,
                            double *grad_norm, double *lr_used)
{
    LRGD_TRY(tm_adamw_init(t));
    double norm = tm_grad_norm(t->grads, t->n_params);
    if (grad_norm) *grad_norm = norm;
    if (!isfinite(norm)) return lrgd_fail(LRGD_E_NUMERIC, "optimizer step %lld: gradient norm is %g", (long long)step, norm);
    double lr = lrgd_lr_schedule(o, step, total_steps);
    if (lr_used) *lr_used = lr;
    float clip = (o->clip > 0 && norm > o->clip) ? (float)(o->clip / norm) : 1.0f;
    /* bias corrections for step s = step + 1 */
    double b1c = 1 - pow(o->beta1, (double)(step + 1)), b2c = 1 - pow(o->beta2, (double)(step + 1));
    float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    float lr_f = (float)lr, s1 = (float)(1.0 / b1c), s2 = (float)(1.0 / b2c);
    for (int ti = 0; ti < t->n_tensors; ti++) {
        const lrgd_tensor_info *info = &t->tensors[ti];
        /* decay matrices and embeddings, not the norm gains */
        float wd = info->rows > 1 ? (float)o->weight_decay : 0.0f;
        size_t off = info->offset, n = (size_t)info->rows * info->cols;
        float *p = t->params + off, *g = t->grads + off, *m = t->m + off, *v = t->v + off;
#pragma omp parallel for schedule(static) if (n > 16384)
        for (size_t i = 0; i < n; i++) {
            float gi = g[i] * clip;
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            float mh = m[i] * s1, vh = v[i] * s2;
            p[i] -= lr_f * (mh / (sqrtf(vh) + eps) + wd * p[i]);
        }
    }
    return LRGD_OK;
}

void lrgd_adamw_opts_init(lrgd_adamw_opts *o)
{
    memset(o, 0, sizeof *o);
    o->lr = 1e-3;
    o->beta1 = 0.9;
    o->beta2 = 0.98;
    o->eps = 1e-8;
    o->weight_decay = 0.0;
    o->clip = 1.0;
    o->warmup_steps = 100;
    o->min_lr_ratio = 0.1;
}
