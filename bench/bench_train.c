/* Training throughput of the embedded model on real episodes, next to the
 * sgemm rate OpenBLAS reaches on the same machine in the same run.
 *
 * For each thread count: builds the first training episodes of a dataset
 * (the trainer's own sampler), then times full optimizer steps (forward,
 * backward, AdamW) and forward-only passes over them. The FLOPs of a step
 * are counted from the shapes (GEMMs, attention, the item softmax), so the
 * achieved GFLOP/s can be set against sgemm on the step's own shapes:
 * OpenBLAS with its own threads, and the split the trainer uses (one
 * single-threaded sgemm per OpenMP thread). Writes JSON atomically.
 *
 * usage: bench_train [--data FILE] [--threads LIST] [--steps N] [--batch N]
 *                    [--demos K] [--dim D] [--layers L] [--sampled N] [OUT.json]
 *   --data FILE    default $LRGD_SHARED/datasets/amazon/Beauty.txt
 *   --threads LIST comma-separated, default 1,2
 *   --steps N      timed optimizer steps per thread count (default 20)
 *   --sampled N    also time the same steps with the sampled softmax (N
 *                  negatives) and print the speed ratio */
#include "core/core.h"
#include "lrgd/train.h"
#include "train/train_impl.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

typedef struct shape {
    const char *name;
    int ta, tb, M, N, K;
} shape;

typedef struct row {
    int threads;
    double step_s, fwd_s, tokens_per_step, targets_per_step, flops_step, flops_fwd;
    double sgemm_blas[5], sgemm_split[5];
    double sampled_step_s; /* the same steps with the sampled softmax (0: not measured) */
} row;

static double time_gemm(const shape *s, int split, float *A, float *B, float *C, int reps)
{
    int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = lrgd_now();
        if (split) {
            int saved = tm_blas_single_begin();
            tm_gemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
            tm_blas_single_end(saved);
        } else
            lrgd_sgemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
        double dt = lrgd_now() - t0;
        if (dt < best) best = dt;
    }
    return 2.0 * s->M * s->N * s->K / best / 1e9;
}

/* FLOPs of one training step: every GEMM forward and its two backward
 * products, attention (scores and weighted sums, x3 with the backward), and
 * the item softmax over the target rows. */
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

int main(int argc, char **argv)
{
    const char *data = NULL, *out = NULL, *threads_arg = "1,2";
    int steps = 20, batch = 128, demos = 3, dim = 64, layers = 2, sampled = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads_arg = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--demos") && i + 1 < argc) demos = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dim") && i + 1 < argc) dim = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--layers") && i + 1 < argc) layers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sampled") && i + 1 < argc) sampled = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !out) out = argv[i];
        else {
            fprintf(stderr, "usage: bench_train [--data FILE] [--threads LIST] [--steps N] [--batch N] [--demos K] "
                            "[--dim D] [--layers L] [--sampled N] [OUT.json]\n");
            return 2;
        }
    }
    if (steps < 1 || batch < 1 || demos < 0 || dim < 2 || layers < 1 || sampled < 0) {
        fprintf(stderr, "bench_train: bad option value\n");
        return 2;
    }
    char dpath[1024];
    if (!data) {
        const char *sh = getenv("LRGD_SHARED");
        snprintf(dpath, sizeof dpath, "%s/datasets/amazon/Beauty.txt", sh ? sh : "../shared");
        data = dpath;
    }
    lrgd_set_quiet(1);
    lrgd_dataset *ds = NULL;
    lrgd_split *sp = NULL;
    lrgd_status st = lrgd_dataset_load(data, LRGD_DATA_AUTO, &ds);
    if (st == LRGD_OK) st = lrgd_split_loo(ds, &sp);
    if (st != LRGD_OK) {
        fprintf(stderr, "bench_train: %s\n", lrgd_last_error());
        return 1;
    }
    lrgd_train_opts o;
    lrgd_train_opts_init(&o);
    o.demos = demos;
    o.dim = dim;
    o.n_layers = layers;
    o.batch = batch;
    o.out = "unused";
    tm_ep ep = {0};
    st = tm_epoch_episodes(sp, &o, 0, &ep);
    lrgd_config cfg = {0};
    cfg.dim = o.dim;
    cfg.hidden_dim = o.hidden_dim;
    cfg.n_layers = o.n_layers;
    cfg.n_heads = o.n_heads;
    cfg.n_kv_heads = o.n_kv_heads;
    cfg.head_dim = o.dim / o.n_heads;
    cfg.vocab_size = LRGD_N_SPECIAL + lrgd_dataset_n_items(ds);
    cfg.seq_len = o.seq_len;
    cfg.norm_eps = 1e-6f;
    cfg.rope_base = 10000;
    cfg.attn = LRGD_ATTN_SOFTMAX;
    cfg.tied = 1;
    lrgd_tmodel *t = NULL;
    if (st == LRGD_OK) st = lrgd_tmodel_new(&cfg, 1, &t);
    if (st != LRGD_OK) {
        fprintf(stderr, "bench_train: %s\n", lrgd_last_error());
        return 1;
    }
    lrgd_tmodel_set_dropout(t, (float)o.dropout, 1);
    int n_items = lrgd_dataset_n_items(ds), nb = ep.n_seq / batch;
    if (nb < 1) {
        fprintf(stderr, "bench_train: fewer than %d episodes\n", batch);
        return 1;
    }
    /* the batches' offsets, rebased */
    int *off = malloc((size_t)(batch + 1) * sizeof *off);

    /* sgemm peers on the step's shapes */
    int NT_chunk = TM_CE_CHUNK, Ntok = ep.off[batch];
    shape shapes[5] = {{"logits NxV (k=D)", 0, 1, NT_chunk, n_items, dim},
                       {"d hidden NxD (k=V)", 0, 0, NT_chunk, dim, n_items},
                       {"d items VxD (k=N)", 1, 0, n_items, dim, NT_chunk},
                       {"linear tokens x D (k=D)", 0, 1, Ntok, dim, dim},
                       {"linear tokens x F (k=D)", 0, 1, Ntok, o.hidden_dim, dim}};
    size_t big = (size_t)(n_items > Ntok ? n_items : Ntok) * (size_t)(NT_chunk > o.hidden_dim ? NT_chunk : o.hidden_dim);
    big = big > (size_t)n_items * NT_chunk ? big : (size_t)n_items * NT_chunk;
    float *A = lrgd_alloc_n(big, sizeof(float)), *B = lrgd_alloc_n(big, sizeof(float)), *C = lrgd_alloc_n(big, sizeof(float));
    for (size_t i = 0; i < big; i++) { A[i] = (float)(i % 13) * 0.01f; B[i] = (float)(i % 7) * 0.01f; }

    lrgd_adamw_opts ao;
    lrgd_adamw_opts_init(&ao);
    row rows[8];
    int n_rows = 0;
    char targ[64];
    snprintf(targ, sizeof targ, "%s", threads_arg);
    for (char *tok = strtok(targ, ","); tok && n_rows < 8; tok = strtok(NULL, ",")) {
        row *r = &rows[n_rows++];
        memset(r, 0, sizeof *r);
        r->threads = atoi(tok);
        lrgd_set_threads(r->threads);
        for (int k = 0; k < 5; k++) {
            r->sgemm_blas[k] = time_gemm(&shapes[k], 0, A, B, C, 5);
            r->sgemm_split[k] = time_gemm(&shapes[k], 1, A, B, C, 5);
        }
        double tstep = 0, tfwd = 0, toks = 0, tg = 0, fl = 0, flf = 0;
        for (int s = -2; s < steps; s++) { /* two warm-up steps */
            int bi = ((s + 2) % nb), s0 = bi * batch, s1 = s0 + batch;
            for (int i = 0; i <= batch; i++) off[i] = ep.off[s0 + i] - ep.off[s0];
            lrgd_tbatch b = {batch, off, ep.tok + ep.off[s0], NULL, ep.tgt + ep.off[s0]};
            lrgd_tmodel_set_step(t, (uint64_t)(s + 2));
            double t0 = lrgd_now(), loss;
            lrgd_tmodel_zero_grad(t);
            st = tm_grad_ex(t, &b, ep.pos + ep.off[s0], ep.vis + ep.off[s0], 1, &loss, NULL);
            if (st == LRGD_OK) st = lrgd_adamw_step(t, &ao, s + 2, 1000, NULL, NULL);
            double t1 = lrgd_now();
            if (st == LRGD_OK) st = tm_forward_ex(t, &b, ep.pos + ep.off[s0], ep.vis + ep.off[s0], 0, &loss, NULL, NULL);
            double t2 = lrgd_now();
            if (st != LRGD_OK) {
                fprintf(stderr, "bench_train: %s\n", lrgd_last_error());
                return 1;
            }
            if (s < 0) continue;
            tstep += t1 - t0;
            tfwd += t2 - t1;
            double fs, ff;
            count_flops(&cfg, n_items, &ep, s0, s1, &fs, &ff);
            fl += fs;
            flf += ff;
            toks += off[batch];
            for (int i = ep.off[s0]; i < ep.off[s1]; i++) tg += ep.tgt[i] >= 0;
        }
        if (sampled > 0) { /* the same batches with the sampled softmax */
            lrgd_tmodel_set_sampled(t, sampled);
            double ts = 0;
            for (int s = -2; s < steps; s++) {
                int bi = ((s + 2) % nb), s0 = bi * batch;
                for (int i = 0; i <= batch; i++) off[i] = ep.off[s0 + i] - ep.off[s0];
                lrgd_tbatch b = {batch, off, ep.tok + ep.off[s0], NULL, ep.tgt + ep.off[s0]};
                lrgd_tmodel_set_step(t, (uint64_t)(s + 2));
                double t0 = lrgd_now(), loss;
                lrgd_tmodel_zero_grad(t);
                st = tm_grad_ex(t, &b, ep.pos + ep.off[s0], ep.vis + ep.off[s0], 1, &loss, NULL);
                if (st == LRGD_OK) st = lrgd_adamw_step(t, &ao, s + 2, 1000, NULL, NULL);
                if (st != LRGD_OK) {
                    fprintf(stderr, "bench_train: %s\n", lrgd_last_error());
                    return 1;
                }
                if (s >= 0) ts += lrgd_now() - t0;
            }
            r->sampled_step_s = ts / steps;
            lrgd_tmodel_set_sampled(t, 0);
        }
        r->step_s = tstep / steps;
        r->fwd_s = tfwd / steps;
        r->tokens_per_step = toks / steps;
        r->targets_per_step = tg / steps;
        r->flops_step = fl / steps;
        r->flops_fwd = flf / steps;
    }

    printf("bench_train: %s, %d items, model L=%d D=%d F=%d heads %d/%d, batch %d episodes (K<=%d demos), %d steps%s\n",
           data, n_items, layers, dim, o.hidden_dim, o.n_heads, o.n_kv_heads, batch, demos, steps, "");
    for (int i = 0; i < n_rows; i++) {
        row *r = &rows[i];
        double gf = r->flops_step / r->step_s / 1e9, gff = r->flops_fwd / r->fwd_s / 1e9;
        printf("\nthreads %d: step %.1f ms (%.0f tokens, %.0f targets): %.0f tokens/s, %.0f targets/s, %.1f GFLOP/s; "
               "forward only %.1f ms, %.1f GFLOP/s\n",
               r->threads, 1e3 * r->step_s, r->tokens_per_step, r->targets_per_step, r->tokens_per_step / r->step_s,
               r->targets_per_step / r->step_s, gf, 1e3 * r->fwd_s, gff);
        if (r->sampled_step_s > 0)
            printf("  sampled softmax (%d negatives): step %.1f ms, %.2fx the full-softmax steps' speed\n", sampled,
                   1e3 * r->sampled_step_s, r->step_s / r->sampled_step_s);
        printf("  %-26s %14s %14s %10s\n", "sgemm shape", "OpenBLAS GF/s", "split GF/s", "step/best");
        for (int k = 0; k < 5; k++) {
            double best = r->sgemm_blas[k] > r->sgemm_split[k] ? r->sgemm_blas[k] : r->sgemm_split[k];
            printf("  %-26s %14.1f %14.1f %10.2f\n", shapes[k].name, r->sgemm_blas[k], r->sgemm_split[k], gf / best);
        }
    }
    if (n_rows >= 2)
        printf("\nspeed-up %d -> %d threads: %.2fx\n", rows[0].threads, rows[n_rows - 1].threads,
               rows[0].step_s / rows[n_rows - 1].step_s);
    if (out) {
        lrgd_afile af;
        st = lrgd_afile_open(&af, out);
        if (st == LRGD_OK) {
            lrgd_json j;
            lrgd_json_init(&j, af.f, 1);
            lrgd_json_obj_begin(&j);
            lrgd_json_kstr(&j, "bench", "train");
            lrgd_json_kstr(&j, "data", data);
            lrgd_json_kint(&j, "items", n_items);
            lrgd_json_kint(&j, "layers", layers);
            lrgd_json_kint(&j, "dim", dim);
            lrgd_json_kint(&j, "hidden", o.hidden_dim);
            lrgd_json_kint(&j, "batch", batch);
            lrgd_json_kint(&j, "demos", demos);
            lrgd_json_kint(&j, "steps", steps);
            lrgd_json_kint(&j, "sampled", sampled);
            lrgd_json_key(&j, "runs");
            lrgd_json_arr_begin(&j);
            for (int i = 0; i < n_rows; i++) {
                row *r = &rows[i];
                lrgd_json_obj_begin(&j);
                lrgd_json_kint(&j, "threads", r->threads);
                lrgd_json_knum(&j, "step_ms", 1e3 * r->step_s);
                lrgd_json_knum(&j, "tokens_per_s", r->tokens_per_step / r->step_s);
                lrgd_json_knum(&j, "targets_per_s", r->targets_per_step / r->step_s);
                lrgd_json_knum(&j, "gflops", r->flops_step / r->step_s / 1e9);
                lrgd_json_knum(&j, "forward_gflops", r->flops_fwd / r->fwd_s / 1e9);
                if (r->sampled_step_s > 0) lrgd_json_knum(&j, "sampled_step_ms", 1e3 * r->sampled_step_s);
                lrgd_json_key(&j, "sgemm");
                lrgd_json_arr_begin(&j);
                for (int k = 0; k < 5; k++) {
                    lrgd_json_obj_begin(&j);
                    lrgd_json_kstr(&j, "shape", shapes[k].name);
                    lrgd_json_kint(&j, "M", shapes[k].M);
                    lrgd_json_kint(&j, "N", shapes[k].N);
                    lrgd_json_kint(&j, "K", shapes[k].K);
                    lrgd_json_knum(&j, "openblas_gflops", r->sgemm_blas[k]);
                    lrgd_json_knum(&j, "split_gflops", r->sgemm_split[k]);
                    lrgd_json_obj_end(&j);
                }
                lrgd_json_arr_end(&j);
                lrgd_json_obj_end(&j);
            }
            lrgd_json_arr_end(&j);
            lrgd_json_obj_end(&j);
            fputc('\n', af.f);
            st = lrgd_afile_commit(&af);
        }
        if (st != LRGD_OK) fprintf(stderr, "bench_train: %s\n", lrgd_last_error());
    }
    lrgd_free(A); lrgd_free(B); lrgd_free(C);
    free(off);
    tm_ep_free(&ep);
    lrgd_tmodel_free(t);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
    return 0;
}
