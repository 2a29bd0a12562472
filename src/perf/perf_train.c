/* Training-step throughput of the embedded model (perf.h): the trainer's own
 * episodes, steps and optimizer, FLOPs counted from the shapes, and sgemm on
 * the step's shapes as the reference. Used by `lrgd bench` and
 * bench/bench_train. */
#include "perf/perf.h"
#include "train/train_impl.h"

#include <stdlib.h>
#include <string.h>

struct lrgd_perf_train {
    lrgd_train_opts o;
    lrgd_config cfg;
    int n_items, batch, nb;
    tm_ep ep;
    lrgd_tmodel *t;
    int *off; /* [batch + 1] a batch's offsets, rebased */
    lrgd_perf_shape shapes[LRGD_PERF_TRAIN_SHAPES];
    float *A, *B, *C; /* sgemm operands */
};

void lrgd_perf_train_free(lrgd_perf_train *b)
{
    if (!b) return;
    lrgd_free(b->A);
    lrgd_free(b->B);
    lrgd_free(b->C);
    free(b->off);
    tm_ep_free(&b->ep);
    lrgd_tmodel_free(b->t);
    free(b);
}

const lrgd_perf_shape *lrgd_perf_train_shapes(const lrgd_perf_train *b) { return b->shapes; }
int lrgd_perf_train_n_items(const lrgd_perf_train *b) { return b->n_items; }

lrgd_status lrgd_perf_train_new(const lrgd_split *sp, const lrgd_train_opts *opts, lrgd_perf_train **out)
{
    *out = NULL;
    if (opts->batch < 1 || opts->dim < 2 || opts->n_layers < 1 || opts->n_heads < 1 || opts->dim % opts->n_heads)
        return lrgd_fail(LRGD_E_INVALID, "training benchmark: batch %d, dim %d, layers %d, heads %d", opts->batch,
                         opts->dim, opts->n_layers, opts->n_heads);
    lrgd_perf_train *b = calloc(1, sizeof *b);
    if (!b) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    b->o = *opts;
    b->batch = opts->batch;
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    b->n_items = lrgd_dataset_n_items(ds);
    lrgd_status st = tm_epoch_episodes(sp, &b->o, 0, &b->ep);
    lrgd_config *c = &b->cfg;
    c->dim = opts->dim;
    c->hidden_dim = opts->hidden_dim;
    c->n_layers = opts->n_layers;
    c->n_heads = opts->n_heads;
    c->n_kv_heads = opts->n_kv_heads;
    c->head_dim = opts->dim / opts->n_heads;
    c->vocab_size = LRGD_N_SPECIAL + b->n_items;
    c->seq_len = opts->seq_len;
    c->norm_eps = 1e-6f;
    c->rope_base = 10000;
    c->attn = opts->attn;
    c->tied = 1;
    if (st == LRGD_OK) st = lrgd_tmodel_new(c, 1, &b->t);
    if (st == LRGD_OK) {
        lrgd_tmodel_set_dropout(b->t, (float)opts->dropout, 1);
        b->nb = b->ep.n_seq / b->batch;
        if (b->nb < 1)
            st = lrgd_fail(LRGD_E_INVALID, "training benchmark: %d episodes, fewer than one batch of %d", b->ep.n_seq,
                           b->batch);
    }
    if (st == LRGD_OK && !(b->off = malloc((size_t)(b->batch + 1) * sizeof *b->off)))
        st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    if (st != LRGD_OK) {
        lrgd_perf_train_free(b);
        return st;
    }
    /* sgemm peers on the step's shapes: the classifier chunk and the linear layers over the first batch */
    int NT = TM_CE_CHUNK, Ntok = b->ep.off[b->batch], D = opts->dim, F = opts->hidden_dim, V = b->n_items;
    lrgd_perf_shape s[LRGD_PERF_TRAIN_SHAPES] = {{"logits NxV (k=D)", 0, 1, NT, V, D},
                                                 {"d hidden NxD (k=V)", 0, 0, NT, D, V},
                                                 {"d items VxD (k=N)", 1, 0, V, D, NT},
                                                 {"linear tokens x D (k=D)", 0, 1, Ntok, D, D},
                                                 {"linear tokens x F (k=D)", 0, 1, Ntok, F, D}};
    memcpy(b->shapes, s, sizeof s);
    size_t big = 0;
    for (int k = 0; k < LRGD_PERF_TRAIN_SHAPES; k++) {
        size_t mk = (size_t)s[k].M * (size_t)s[k].K, kn = (size_t)s[k].K * (size_t)s[k].N,
               mn = (size_t)s[k].M * (size_t)s[k].N;
        if (mk > big) big = mk;
        if (kn > big) big = kn;
        if (mn > big) big = mn;
    }
    b->A = lrgd_alloc_n(big, sizeof(float));
    b->B = lrgd_alloc_n(big, sizeof(float));
    b->C = lrgd_alloc_n(big, sizeof(float));
    if (!b->A || !b->B || !b->C) {
        lrgd_perf_train_free(b);
        return lrgd_fail(LRGD_E_NOMEM, "training benchmark: out of memory");
    }
    for (size_t i = 0; i < big; i++) {
        b->A[i] = (float)(i % 13) * 0.01f;
        b->B[i] = (float)(i % 7) * 0.01f;
    }
    *out = b;
    return LRGD_OK;
}

/* GFLOP/s of shape s: OpenBLAS with its own threads, or split over the
 * OpenMP threads as the trainer runs its GEMMs (tm_gemm). */
static double time_gemm(const lrgd_perf_shape *s, int split, const float *A, const float *B, float *C, int reps)
{
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    double best = 1e300;
    if (!split) best = lrgd_perf_openblas_time(s->ta, s->tb, s->M, s->N, s->K, A, B, C, reps);
    for (int r = 0; split && r < reps; r++) {
        double t0 = lrgd_now();
        int saved = tm_blas_single_begin();
        tm_gemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
        tm_blas_single_end(saved);
        double dt = lrgd_now() - t0;
        if (dt < best) best = dt;
    }
    return 2.0 * s->M * s->N * s->K / best / 1e9;
}

/* FLOPs of one training step over episodes s0..s1: every GEMM forward and
 * its two backward products, attention (scores and weighted sums, x3 with the
 * backward), and the item softmax over the target rows. */
static void count_flops(const lrgd_config *c, int n_items, const tm_ep *e, int s0, int s1, double *step, double *fwd)
{
    double D = c->dim, F = c->hidden_dim, Q = (double)c->n_heads * c->head_dim,
           KV = (double)c->n_kv_heads * c->head_dim, hd = c->head_dim;
    double N = e->off[s1] - e->off[s0], NT = 0, att = 0;
    for (int i = e->off[s0]; i < e->off[s1]; i++) NT += e->tgt[i] >= 0;
    for (int s = s0; s < s1; s++) {
        double T = e->off[s + 1] - e->off[s];
        att += c->n_heads * T * (T + 1) / 2 * hd * 2 * 2; /* q.k and p.v, causal half */
    }
    double lin = 2 * N * (D * Q + 2 * D * KV + Q * D + 3 * D * F) * c->n_layers;
    double cls = 2 * NT * n_items * D;
    *fwd = lin + att * c->n_layers + cls;
    *step = 3 * lin + 3 * att * c->n_layers + 3 * cls;
}

/* Batch bi of the episodes, rebased into b->off. */
static lrgd_tbatch batch_at(lrgd_perf_train *b, int bi, int *s0)
{
    *s0 = bi * b->batch;
    for (int i = 0; i <= b->batch; i++) b->off[i] = b->ep.off[*s0 + i] - b->ep.off[*s0];
    lrgd_tbatch tb = {b->batch, b->off, b->ep.tok + b->ep.off[*s0], NULL, b->ep.tgt + b->ep.off[*s0]};
    return tb;
}

lrgd_status lrgd_perf_train_measure(lrgd_perf_train *b, int steps, int sampled, lrgd_perf_train_run *r)
{
    if (steps < 1) return lrgd_fail(LRGD_E_INVALID, "training benchmark: steps %d must be >= 1", steps);
    memset(r, 0, sizeof *r);
    r->threads = lrgd_get_threads();
    r->steps = steps;
    for (int k = 0; k < LRGD_PERF_TRAIN_SHAPES; k++) {
        r->sgemm_blas[k] = time_gemm(&b->shapes[k], 0, b->A, b->B, b->C, 5);
        r->sgemm_split[k] = time_gemm(&b->shapes[k], 1, b->A, b->B, b->C, 5);
    }
    lrgd_adamw_opts ao;
    lrgd_adamw_opts_init(&ao);
    lrgd_status st = LRGD_OK;
    double tstep = 0, tfwd = 0, toks = 0, tg = 0, fl = 0, flf = 0;
    const tm_ep *e = &b->ep;
    for (int s = -2; s < steps && st == LRGD_OK; s++) { /* two warm-up steps */
        int s0;
        lrgd_tbatch tb = batch_at(b, (s + 2) % b->nb, &s0);
        lrgd_tmodel_set_step(b->t, (uint64_t)(s + 2));
        double t0 = lrgd_now(), loss;
        lrgd_tmodel_zero_grad(b->t);
        st = tm_grad_ex(b->t, &tb, e->pos + e->off[s0], e->vis + e->off[s0], 1, &loss, NULL);
        if (st == LRGD_OK) st = lrgd_adamw_step(b->t, &ao, s + 2, 1000, NULL, NULL);
        double t1 = lrgd_now();
        if (st == LRGD_OK) st = tm_forward_ex(b->t, &tb, e->pos + e->off[s0], e->vis + e->off[s0], 0, &loss, NULL, NULL);
        double t2 = lrgd_now();
        if (st != LRGD_OK || s < 0) continue;
        tstep += t1 - t0;
        tfwd += t2 - t1;
        double fs, ff;
        count_flops(&b->cfg, b->n_items, e, s0, s0 + b->batch, &fs, &ff);
        fl += fs;
        flf += ff;
        toks += b->off[b->batch];
        for (int i = e->off[s0]; i < e->off[s0 + b->batch]; i++) tg += e->tgt[i] >= 0;
    }
    if (st == LRGD_OK && sampled > 0) { /* the same batches with the sampled softmax */
        lrgd_tmodel_set_sampled(b->t, sampled);
        double ts = 0;
        for (int s = -2; s < steps && st == LRGD_OK; s++) {
            int s0;
            lrgd_tbatch tb = batch_at(b, (s + 2) % b->nb, &s0);
            lrgd_tmodel_set_step(b->t, (uint64_t)(s + 2));
            double t0 = lrgd_now(), loss;
            lrgd_tmodel_zero_grad(b->t);
            st = tm_grad_ex(b->t, &tb, e->pos + e->off[s0], e->vis + e->off[s0], 1, &loss, NULL);
            if (st == LRGD_OK) st = lrgd_adamw_step(b->t, &ao, s + 2, 1000, NULL, NULL);
            if (s >= 0) ts += lrgd_now() - t0;
        }
        r->sampled_step_s = ts / steps;
        lrgd_tmodel_set_sampled(b->t, 0);
    }
    if (st != LRGD_OK) return st;
    r->step_s = tstep / steps;
    r->fwd_s = tfwd / steps;
    r->tokens_per_step = toks / steps;
    r->targets_per_step = tg / steps;
    r->flops_step = fl / steps;
    r->flops_fwd = flf / steps;
    return LRGD_OK;
}
