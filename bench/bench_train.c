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
#include "perf/perf.h"

#include <stdlib.h>
#include <string.h>

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
    lrgd_perf_train *pt = NULL;
    if ((st = lrgd_perf_train_new(sp, &o, &pt)) != LRGD_OK) {
        fprintf(stderr, "bench_train: %s\n", lrgd_last_error());
        return 1;
    }
    const lrgd_perf_shape *shapes = lrgd_perf_train_shapes(pt);
    int n_items = lrgd_perf_train_n_items(pt);
    lrgd_perf_train_run rows[8];
    int n_rows = 0;
    char targ[64];
    snprintf(targ, sizeof targ, "%s", threads_arg);
    for (char *tok = strtok(targ, ","); tok && n_rows < 8; tok = strtok(NULL, ",")) {
        lrgd_set_threads(atoi(tok));
        if ((st = lrgd_perf_train_measure(pt, steps, sampled, &rows[n_rows++])) != LRGD_OK) {
            fprintf(stderr, "bench_train: %s\n", lrgd_last_error());
            return 1;
        }
    }

    printf("bench_train: %s, %d items, model L=%d D=%d F=%d heads %d/%d, batch %d episodes (K<=%d demos), %d steps%s\n",
           data, n_items, layers, dim, o.hidden_dim, o.n_heads, o.n_kv_heads, batch, demos, steps, "");
    for (int i = 0; i < n_rows; i++) {
        lrgd_perf_train_run *r = &rows[i];
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
                lrgd_perf_train_run *r = &rows[i];
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
    lrgd_perf_train_free(pt);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
    return 0;
}
