/* lrgd train: fit the embedded recommender on ICL episodes and save it as
 * GGUF (the best epoch by validation NDCG@10), with a resumable training
 * state beside it and a JSON report. */
#include "cli.h"
#include "commands.h"
#include "lrgd/train.h"

#include <stdlib.h>
#include <string.h>

#define CMD "train"

const char help_train[] =
    "usage: lrgd train --data FILE --out MODEL.gguf [options]\n"
    "\n"
    "Train a small Llama-architecture recommender (RMSNorm, RoPE, SwiGLU, tied\n"
    "output; vocabulary PAD BOS SEP ANS EOS + one token per item) on ICL\n"
    "episodes built from the training split of a leave-one-out split (the last\n"
    "two items of every user are never seen):\n"
    "  BOS | d_1..d_p ANS y SEP | ... | s_1 .. s_{m-1} ANS  -> s_m\n"
    "with 0..K demonstrations from other users (similar or random). The loss\n"
    "is the softmax cross-entropy over all items at every history position,\n"
    "the final answer and the demonstrations' answers. After every epoch the\n"
    "validation NDCG@10 (full ranking) is measured and the best model is kept\n"
    "in MODEL.gguf. The training state (weights, AdamW moments, counters) is\n"
    "saved to MODEL.gguf.train; running the same command again resumes from\n"
    "it and ends with the same model bytes. A report goes to MODEL.gguf.json.\n"
    "\n"
    "options:\n"
    "  --data FILE         interactions (Amazon sequence file or RecBole .inter)\n"
    "  --format F          amazon | recbole | auto (default auto)\n"
    "  --out FILE          the model (GGUF)\n"
    "  --layers N          transformer blocks (default 2)\n"
    "  --dim N             width (default 64)\n"
    "  --heads N           attention heads (default 2)\n"
    "  --kv-heads N        key/value heads, divides --heads (default 1)\n"
    "  --hidden N          SwiGLU width (default 128)\n"
    "  --attention A       softmax | linear (default softmax)\n"
    "  --seq N             context length of an episode (default 256)\n"
    "  --demos K           at most K demonstrations per episode (default 3; 0:\n"
    "                      plain next-item training)\n"
    "  --max-hist N        query history: the most recent N items (default 50)\n"
    "  --demo-hist N       demonstration history cap (default 20)\n"
    "  --pool N            similar demonstrations come from the top N (default 2K)\n"
    "  --p-similar X       share of episodes with similar (not random)\n"
    "                      demonstrations (default 0.75)\n"
    "  --no-demo-loss      no loss on the demonstrations' answers\n"
    "  --epochs N          (default 40)\n"
    "  --batch N           episodes per step (default 128)\n"
    "  --lr X              peak learning rate (default 1e-3)\n"
    "  --min-lr X          final learning rate as a fraction of --lr (default 0.1)\n"
    "  --warmup N          warm-up steps (default 100)\n"
    "  --weight-decay X    AdamW decoupled weight decay (default 0)\n"
    "  --clip X            gradient-norm clip, 0 = off (default 1)\n"
    "  --dropout X         dropout rate (default 0.3)\n"
    "  --sampled N         sampled softmax while training: the batch's targets plus\n"
    "                      N uniformly drawn items (default 2048; 0: the full\n"
    "                      softmax over all items; validation always uses the full)\n"
    "  --patience N        stop after N epochs without a better validation\n"
    "                      NDCG@10 (default 0: never)\n"
    "  --max-minutes X     stop after X minutes of training, resumed sessions\n"
    "                      counted together (default: no limit); the best model so\n"
    "                      far stands, and a larger X continues the run\n"
    "  --val-demos M       none | random | similar: demonstrations used for the\n"
    "                      validation score (default similar)\n"
    "  --val-k N           demonstrations for validation (default K)\n"
    "  --save-every S      also save the training state every S seconds (default 60)\n"
    "  --no-resume         ignore an existing training state and start over\n"
    CLI_COMMON_HELP
    "\n"
    "Exit status: 0 done, 2 bad input or options, 1 runtime failure (a NaN or\n"
    "Inf loss stops training with the step and layer; the last good model and\n"
    "state stay on disk).\n";

static void write_report(lrgd_json *j, const cli_common *com, const lrgd_train_opts *o, const char *data,
                         const lrgd_dataset *ds, const lrgd_split *sp, const lrgd_train_result *r)
{
    lrgd_json_obj_begin(j);
    cli_json_run_info(j, com);
    lrgd_json_key(j, "data");
    lrgd_json_obj_begin(j);
    lrgd_json_kstr(j, "file", data);
    lrgd_json_kint(j, "users", lrgd_dataset_n_users(ds));
    lrgd_json_kint(j, "items", lrgd_dataset_n_items(ds));
    lrgd_json_kint(j, "interactions", lrgd_dataset_n_interactions(ds));
    lrgd_json_kint(j, "split_users", lrgd_split_n_users(sp));
    lrgd_json_kint(j, "training_interactions", lrgd_split_n_train(sp, LRGD_STEP_VALID));
    lrgd_json_kint(j, "episodes_per_epoch", r->n_episodes);
    lrgd_json_obj_end(j);
    lrgd_json_key(j, "model");
    lrgd_json_obj_begin(j);
    lrgd_json_kint(j, "layers", o->n_layers);
    lrgd_json_kint(j, "dim", o->dim);
    lrgd_json_kint(j, "heads", o->n_heads);
    lrgd_json_kint(j, "kv_heads", o->n_kv_heads);
    lrgd_json_kint(j, "hidden", o->hidden_dim);
    lrgd_json_kint(j, "seq", o->seq_len);
    lrgd_json_kstr(j, "attention", o->attn == LRGD_ATTN_LINEAR ? "linear" : "softmax");
    lrgd_json_kint(j, "parameters", r->n_params);
    lrgd_json_obj_end(j);
    lrgd_json_key(j, "training");
    lrgd_json_obj_begin(j);
    lrgd_json_kint(j, "demos", o->demos);
    lrgd_json_kint(j, "max_hist", o->max_hist);
    lrgd_json_kint(j, "demo_hist", o->demo_hist);
    lrgd_json_kint(j, "pool", o->pool > 0 ? o->pool : 2 * o->demos);
    lrgd_json_knum(j, "p_similar", o->p_similar);
    lrgd_json_kint(j, "demo_loss", o->demo_loss);
    lrgd_json_kint(j, "epochs", o->epochs);
    lrgd_json_kint(j, "batch", o->batch);
    lrgd_json_knum(j, "lr", o->adamw.lr);
    lrgd_json_knum(j, "min_lr_ratio", o->adamw.min_lr_ratio);
    lrgd_json_kint(j, "warmup_steps", o->adamw.warmup_steps);
    lrgd_json_knum(j, "weight_decay", o->adamw.weight_decay);
    lrgd_json_knum(j, "clip", o->adamw.clip);
    lrgd_json_knum(j, "dropout", o->dropout);
    lrgd_json_kint(j, "sampled_softmax", o->sampled);
    lrgd_json_kint(j, "patience", o->patience);
    lrgd_json_knum(j, "max_minutes", o->max_minutes);
    lrgd_json_kstr(j, "val_demos", lrgd_demo_mode_name(o->val_demos));
    lrgd_json_kint(j, "val_k", o->val_k >= 0 ? o->val_k : o->demos);
    lrgd_json_obj_end(j);
    lrgd_json_key(j, "result");
    lrgd_json_obj_begin(j);
    lrgd_json_kint(j, "epochs_run", r->epochs_run);
    lrgd_json_kint(j, "steps", r->steps);
    lrgd_json_kint(j, "tokens", r->tokens);
    lrgd_json_kint(j, "best_epoch", r->best_epoch);
    lrgd_json_knum(j, "best_val_ndcg10", r->best_ndcg10);
    lrgd_json_knum(j, "train_seconds", r->train_seconds);
    lrgd_json_knum(j, "tokens_per_s", r->tokens_per_s);
    lrgd_json_kint(j, "resumed", r->resumed);
    lrgd_json_kint(j, "stopped_early", r->stopped_early);
    lrgd_json_kint(j, "stopped_by_time", r->stopped_by_time);
    lrgd_json_obj_end(j);
    lrgd_json_key(j, "epochs");
    lrgd_json_arr_begin(j);
    for (int i = 0; i < r->n_log; i++) {
        const lrgd_train_epoch *e = &r->log[i];
        lrgd_json_obj_begin(j);
        lrgd_json_kint(j, "epoch", e->epoch);
        lrgd_json_knum(j, "loss", e->loss);
        lrgd_json_knum(j, "val_ndcg10", e->val_ndcg10);
        lrgd_json_knum(j, "val_hr10", e->val_hr10);
        lrgd_json_knum(j, "train_seconds", e->train_seconds);
        lrgd_json_knum(j, "val_seconds", e->val_seconds);
        lrgd_json_knum(j, "tokens_per_s", e->tokens_per_s);
        lrgd_json_kint(j, "best", e->best);
        lrgd_json_obj_end(j);
    }
    lrgd_json_arr_end(j);
    lrgd_json_obj_end(j);
    fputc('\n', j->f);
}

int cmd_train(int argc, char **argv)
{
    static const char *const attentions[] = {"softmax", "linear", NULL};
    static const int attn_vals[] = {LRGD_ATTN_SOFTMAX, LRGD_ATTN_LINEAR};
    lrgd_train_opts o;
    lrgd_train_opts_init(&o);
    cli_common com;
    cli_common_init(&com);
    const char *data = NULL;
    int fmt = LRGD_DATA_AUTO, attn = o.attn, val_demos = o.val_demos;
    const cli_opt opts[] = {
        CLI_O_STR("data", &data, "an interaction file"),
        CLI_O_CHOICE("format", &fmt, cli_format_names, cli_format_values),
        CLI_O_STR("out", &o.out, "a model file"),
        CLI_O_INT("layers", &o.n_layers, 1, 64),
        CLI_O_INT("dim", &o.dim, 2, 4096),
        CLI_O_INT("heads", &o.n_heads, 1, 256),
        CLI_O_INT("kv-heads", &o.n_kv_heads, 1, 256),
        CLI_O_INT("hidden", &o.hidden_dim, 1, 65536),
        CLI_O_CHOICE("attention", &attn, attentions, attn_vals),
        CLI_O_INT("seq", &o.seq_len, 4, 1 << 16),
        CLI_O_INT("demos", &o.demos, 0, 64),
        CLI_O_INT("max-hist", &o.max_hist, 1, 1 << 16),
        CLI_O_INT("demo-hist", &o.demo_hist, 1, 1 << 16),
        CLI_O_INT("pool", &o.pool, 1, 1 << 16),
        CLI_O_DOUBLE("p-similar", &o.p_similar, 0, 1),
        CLI_O_SET("no-demo-loss", &o.demo_loss, 0),
        CLI_O_INT("epochs", &o.epochs, 1, 100000),
        CLI_O_INT("batch", &o.batch, 1, 1 << 20),
        CLI_O_DOUBLE("lr", &o.adamw.lr, 1e-12, 1e6),
        CLI_O_DOUBLE("min-lr", &o.adamw.min_lr_ratio, 0, 1),
        CLI_O_I64("warmup", &o.adamw.warmup_steps, 0, 1LL << 40),
        CLI_O_DOUBLE("weight-decay", &o.adamw.weight_decay, 0, 10),
        CLI_O_DOUBLE("clip", &o.adamw.clip, 0, 1e9),
        CLI_O_DOUBLE("dropout", &o.dropout, 0, 0.95),
        CLI_O_INT("sampled", &o.sampled, 0, 1 << 24),
        CLI_O_INT("patience", &o.patience, 0, 100000),
        CLI_O_DOUBLE("max-minutes", &o.max_minutes, 0, 1e7),
        CLI_O_CHOICE("val-demos", &val_demos, cli_demo_names, NULL),
        CLI_O_INT("val-k", &o.val_k, 0, 64),
        CLI_O_DOUBLE("save-every", &o.save_every_s, 0, 1e9),
        CLI_O_FLAG("no-resume", &o.no_resume),
        CLI_O_I64("checkpoint-steps", &o.checkpoint_steps, 0, 1LL << 40),
        CLI_O_I64("fault-nan-step", &o.fault_nan_step, 0, 1LL << 40), /* test hook, not in --help */
        CLI_O_END};
    int rc = cli_parse(CMD, help_train, argc, argv, opts, &com);
    if (rc != CLI_CONTINUE) return rc;
    o.attn = (lrgd_attn_mode)attn;
    o.val_demos = (lrgd_demo_mode)val_demos;
    if (!data) return cli_usage(CMD, "--data FILE is required");
    if (!o.out) return cli_usage(CMD, "--out MODEL.gguf is required");
    if (o.dim % o.n_heads != 0) return cli_usage(CMD, "--dim %d is not divisible by --heads %d", o.dim, o.n_heads);
    if (o.n_heads % o.n_kv_heads != 0)
        return cli_usage(CMD, "--kv-heads %d does not divide --heads %d", o.n_kv_heads, o.n_heads);
    if ((o.dim / o.n_heads) % 2 != 0)
        return cli_usage(CMD, "head size --dim/--heads = %d must be even (RoPE rotates pairs)", o.dim / o.n_heads);
    if (o.max_hist > o.seq_len - 2)
        return cli_usage(CMD, "--max-hist %d does not fit --seq %d (needs BOS and ANS)", o.max_hist, o.seq_len);
    o.seed = com.seed;
    if ((rc = cli_common_apply(CMD, &com)) != 0) return rc;

    lrgd_dataset *ds = NULL;
    lrgd_split *sp = NULL;
    lrgd_train_result res;
    memset(&res, 0, sizeof res);
    lrgd_status st = lrgd_dataset_load(data, (lrgd_data_format)fmt, &ds);
    if (st == LRGD_OK) st = lrgd_split_loo(ds, &sp);
    if (st == LRGD_OK) st = lrgd_train(sp, &o, &res);
    if (st == LRGD_OK) {
        /* the report, atomically beside the model */
        size_t n = strlen(o.out) + 6;
        char *jp = malloc(n);
        lrgd_afile af;
        if (!jp) st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
        else {
            snprintf(jp, n, "%s.json", o.out);
            st = lrgd_afile_open(&af, jp);
            if (st == LRGD_OK) {
                lrgd_json j;
                lrgd_json_init(&j, af.f, 1);
                write_report(&j, &com, &o, data, ds, sp, &res);
                st = lrgd_afile_commit(&af);
            }
            free(jp);
        }
        if (st == LRGD_OK && com.json) {
            lrgd_json j;
            lrgd_json_init(&j, stdout, 1);
            write_report(&j, &com, &o, data, ds, sp, &res);
        }
        if (st == LRGD_OK && !com.quiet && res.best_epoch == 0)
            fprintf(stderr, "train: stopped before the first epoch ended; the current weights were saved to %s "
                            "(not validated); run the same command again to continue\n", o.out);
        else if (st == LRGD_OK && !com.quiet)
            fprintf(stderr, "train: %d epochs, best epoch %d (validation NDCG@10 %.4f) saved to %s; %.0f tokens/s, %.1f s%s\n",
                    res.epochs_run, res.best_epoch, res.best_ndcg10, o.out, res.tokens_per_s, res.train_seconds,
                    res.stopped_early ? " (stopped early)" : res.stopped_by_time ? " (time limit)" : "");
    }
    lrgd_train_result_free(&res);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
    if (st != LRGD_OK) return cli_fail(CMD, st);
    return CLI_OK;
}
