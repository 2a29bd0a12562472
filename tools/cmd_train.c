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

enum {
    OPT_DATA = 3001, OPT_FORMAT, OPT_OUT, OPT_LAYERS, OPT_DIM, OPT_HEADS, OPT_KV, OPT_HIDDEN, OPT_ATTN, OPT_SEQ,
    OPT_DEMOS, OPT_MAXHIST, OPT_DEMOHIST, OPT_POOL, OPT_PSIM, OPT_NODEMOLOSS, OPT_EPOCHS, OPT_BATCH, OPT_LR,
    OPT_MINLR, OPT_WARMUP, OPT_WD, OPT_CLIP, OPT_DROPOUT, OPT_PATIENCE, OPT_MAXMIN, OPT_VALDEMOS, OPT_VALK,
    OPT_SAVE, OPT_NORESUME, OPT_CKPT_STEPS, OPT_FAULT, OPT_SAMPLED
};

static int parse_mode(const char *arg, lrgd_demo_mode *m)
{
    if (!strcmp(arg, "none")) *m = LRGD_DEMOS_NONE;
    else if (!strcmp(arg, "random")) *m = LRGD_DEMOS_RANDOM;
    else if (!strcmp(arg, "similar")) *m = LRGD_DEMOS_SIMILAR;
    else return -1;
    return 0;
}

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
    static const struct option opts[] = {
        {"data", required_argument, 0, OPT_DATA}, {"format", required_argument, 0, OPT_FORMAT},
        {"out", required_argument, 0, OPT_OUT}, {"layers", required_argument, 0, OPT_LAYERS},
        {"dim", required_argument, 0, OPT_DIM}, {"heads", required_argument, 0, OPT_HEADS},
        {"kv-heads", required_argument, 0, OPT_KV}, {"hidden", required_argument, 0, OPT_HIDDEN},
        {"attention", required_argument, 0, OPT_ATTN}, {"seq", required_argument, 0, OPT_SEQ},
        {"demos", required_argument, 0, OPT_DEMOS}, {"max-hist", required_argument, 0, OPT_MAXHIST},
        {"demo-hist", required_argument, 0, OPT_DEMOHIST}, {"pool", required_argument, 0, OPT_POOL},
        {"p-similar", required_argument, 0, OPT_PSIM}, {"no-demo-loss", no_argument, 0, OPT_NODEMOLOSS},
        {"epochs", required_argument, 0, OPT_EPOCHS}, {"batch", required_argument, 0, OPT_BATCH},
        {"lr", required_argument, 0, OPT_LR}, {"min-lr", required_argument, 0, OPT_MINLR},
        {"warmup", required_argument, 0, OPT_WARMUP}, {"weight-decay", required_argument, 0, OPT_WD},
        {"clip", required_argument, 0, OPT_CLIP}, {"dropout", required_argument, 0, OPT_DROPOUT},
        {"patience", required_argument, 0, OPT_PATIENCE}, {"max-minutes", required_argument, 0, OPT_MAXMIN},
        {"val-demos", required_argument, 0, OPT_VALDEMOS}, {"val-k", required_argument, 0, OPT_VALK},
        {"save-every", required_argument, 0, OPT_SAVE}, {"no-resume", no_argument, 0, OPT_NORESUME},
        {"checkpoint-steps", required_argument, 0, OPT_CKPT_STEPS},
        {"fault-nan-step", required_argument, 0, OPT_FAULT}, /* test hook, not in --help */
        {"sampled", required_argument, 0, OPT_SAMPLED},
        CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    lrgd_train_opts o;
    lrgd_train_opts_init(&o);
    cli_common com;
    cli_common_init(&com);
    const char *data = NULL, *format = "auto";
    int c;
    long long v;
    double x;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int r = cli_common_opt(CMD, c, optarg, &com);
        if (r < 0) return CLI_USAGE;
        if (r > 0) continue;
#define INT(name, lo, hi, dst) \
    if (cli_int(CMD, name, optarg, lo, hi, &v) != 0) return CLI_USAGE; \
    dst = (int)v; \
    break
#define FLT(name, lo, hi, dst) \
    if (cli_float(CMD, name, optarg, lo, hi, &x) != 0) return CLI_USAGE; \
    dst = x; \
    break
        switch (c) {
        case OPT_DATA: data = optarg; break;
        case OPT_FORMAT: format = optarg; break;
        case OPT_OUT: o.out = optarg; break;
        case OPT_LAYERS: INT("layers", 1, 64, o.n_layers);
        case OPT_DIM: INT("dim", 2, 4096, o.dim);
        case OPT_HEADS: INT("heads", 1, 256, o.n_heads);
        case OPT_KV: INT("kv-heads", 1, 256, o.n_kv_heads);
        case OPT_HIDDEN: INT("hidden", 1, 65536, o.hidden_dim);
        case OPT_ATTN:
            if (!strcmp(optarg, "softmax")) o.attn = LRGD_ATTN_SOFTMAX;
            else if (!strcmp(optarg, "linear")) o.attn = LRGD_ATTN_LINEAR;
            else return cli_usage(CMD, "--attention: expected softmax or linear, got '%s'", optarg);
            break;
        case OPT_SEQ: INT("seq", 4, 1 << 16, o.seq_len);
        case OPT_DEMOS: INT("demos", 0, 64, o.demos);
        case OPT_MAXHIST: INT("max-hist", 1, 1 << 16, o.max_hist);
        case OPT_DEMOHIST: INT("demo-hist", 1, 1 << 16, o.demo_hist);
        case OPT_POOL: INT("pool", 1, 1 << 16, o.pool);
        case OPT_PSIM: FLT("p-similar", 0, 1, o.p_similar);
        case OPT_NODEMOLOSS: o.demo_loss = 0; break;
        case OPT_EPOCHS: INT("epochs", 1, 100000, o.epochs);
        case OPT_BATCH: INT("batch", 1, 1 << 20, o.batch);
        case OPT_LR: FLT("lr", 1e-12, 1e6, o.adamw.lr);
        case OPT_MINLR: FLT("min-lr", 0, 1, o.adamw.min_lr_ratio);
        case OPT_WARMUP:
            if (cli_int(CMD, "warmup", optarg, 0, 1LL << 40, &v) != 0) return CLI_USAGE;
            o.adamw.warmup_steps = v;
            break;
        case OPT_WD: FLT("weight-decay", 0, 10, o.adamw.weight_decay);
        case OPT_CLIP: FLT("clip", 0, 1e9, o.adamw.clip);
        case OPT_DROPOUT: FLT("dropout", 0, 0.95, o.dropout);
        case OPT_SAMPLED: INT("sampled", 0, 1 << 24, o.sampled);
        case OPT_PATIENCE: INT("patience", 0, 100000, o.patience);
        case OPT_MAXMIN: FLT("max-minutes", 0, 1e7, o.max_minutes);
        case OPT_VALDEMOS:
            if (parse_mode(optarg, &o.val_demos) != 0)
                return cli_usage(CMD, "--val-demos: expected none, random or similar, got '%s'", optarg);
            break;
        case OPT_VALK: INT("val-k", 0, 64, o.val_k);
        case OPT_SAVE: FLT("save-every", 0, 1e9, o.save_every_s);
        case OPT_NORESUME: o.no_resume = 1; break;
        case OPT_CKPT_STEPS:
            if (cli_int(CMD, "checkpoint-steps", optarg, 0, 1LL << 40, &v) != 0) return CLI_USAGE;
            o.checkpoint_steps = v;
            break;
        case OPT_FAULT:
            if (cli_int(CMD, "fault-nan-step", optarg, 0, 1LL << 40, &v) != 0) return CLI_USAGE;
            o.fault_nan_step = v;
            break;
        case 'h': fputs(help_train, stdout); return CLI_OK;
        default: return cli_usage(CMD, "unknown option");
        }
#undef INT
#undef FLT
    }
    if (optind < argc) return cli_usage(CMD, "unexpected argument '%s'", argv[optind]);
    if (!data) return cli_usage(CMD, "--data FILE is required");
    if (!o.out) return cli_usage(CMD, "--out MODEL.gguf is required");
    lrgd_data_format fmt;
    if (!strcmp(format, "auto")) fmt = LRGD_DATA_AUTO;
    else if (!strcmp(format, "amazon")) fmt = LRGD_DATA_AMAZON;
    else if (!strcmp(format, "recbole")) fmt = LRGD_DATA_RECBOLE;
    else return cli_usage(CMD, "--format: expected amazon, recbole or auto, got '%s'", format);
    if (o.dim % o.n_heads != 0) return cli_usage(CMD, "--dim %d is not divisible by --heads %d", o.dim, o.n_heads);
    if (o.n_heads % o.n_kv_heads != 0)
        return cli_usage(CMD, "--kv-heads %d does not divide --heads %d", o.n_kv_heads, o.n_heads);
    if ((o.dim / o.n_heads) % 2 != 0)
        return cli_usage(CMD, "head size --dim/--heads = %d must be even (RoPE rotates pairs)", o.dim / o.n_heads);
    if (o.max_hist > o.seq_len - 2)
        return cli_usage(CMD, "--max-hist %d does not fit --seq %d (needs BOS and ANS)", o.max_hist, o.seq_len);
    o.seed = com.seed;
    int rc = cli_common_apply(CMD, &com);
    if (rc) return rc;

    lrgd_dataset *ds = NULL;
    lrgd_split *sp = NULL;
    lrgd_train_result res;
    memset(&res, 0, sizeof res);
    lrgd_status st = lrgd_dataset_load(data, fmt, &ds);
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
