/* lrgd dual: every attention head's dual model on real prompts, and the
 * equivalence checks E1-E4 (LRGD.md §1, include/lrgd/dual.h). */
#include "cli.h"
#include "commands.h"
#include "core/svg.h"
#include "lrgd/data.h"
#include "lrgd/dual.h"
#include "lrgd/textrec.h"
#include "lrgd/train.h"
#include "model/model_impl.h"
#include "train/train_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char help_dual[] =
    "usage: lrgd dual --model M --data FILE --users N [options]\n"
    "\n"
    "Rewrite every attention head of the model M at the answer position of N\n"
    "users' real prompts as its dual model W_0 + sum_d dW_d, and check the\n"
    "equivalence (LRGD.md §1):\n"
    "  E1  linear-attention model: (W_0 + dW) q_t equals the attention output at\n"
    "      every layer, head and position;\n"
    "  E2  softmax model: the exact split (1-lambda) o^{TuQ} + lambda o^D equals it;\n"
    "  E3  softmax model: error of the kernel dual with r random features;\n"
    "  E4  an explicit gradient step on the dual linear model equals W_0 + dW;\n"
    "  and the final logits rebuilt from the per-layer dual models alone.\n"
    "Prompts are the ones the model scorer ranks with (lrgd eval): [BOS | D_1..D_k |\n"
    "the last --max-hist items of the query user's history, ANS] at the\n"
    "leave-one-out test step; demonstrations are other users' training sequences\n"
    "(the trainer's demonstration pool and similarity index), the most similar\n"
    "next to the query; when a prompt does not fit the model's context the least\n"
    "similar demonstrations are left out (reported as demos_per_prompt). Query\n"
    "users are a seeded sample of the split's users.\n"
    "\n"
    "options:\n"
    "  --model M          a recommendation model (GGUF with lrgd.* item keys), or a\n"
    "                     text LLM (GGUF with a tokenizer)\n"
    "  --items FILE       item titles for a text LLM (NAME.items.tsv)\n"
    "  --data FILE        interaction file (Amazon 'user item item ...' or RecBole .inter)\n"
    "  --users N          number of query users (default 100)\n"
    "  --demos MODE       none, random or similar (default similar: highest cosine\n"
    "                     overlap of training item sets)\n"
    "  --k K              demonstrations per prompt (default 3)\n"
    "  --max-hist H       the query's most recent H items (default 50; text LLM: 20)\n"
    "  --demo-hist H      a demonstration's most recent H history items (default 20)\n"
    "  --features LIST    r values for E3 (default 16,32,64,...,4096)\n"
    "  --kernel KIND      prf (phi(x) = exp(w.x' - |x'|^2/2)/sqrt(r), default) or oprf\n"
    "                     (the same unbiased family with the variance-minimizing scale)\n"
    "  --e3-users N       users that also run E3 (default min(users, 50))\n"
    "  --no-stack         skip rebuilding the logits from the dual models\n"
    "  --tol X            tolerance of E1, E2, E4 and the logits (default 1e-5)\n"
    "  --strict           exit 1 when a check exceeds the tolerance\n"
    "  --out DIR          write DIR/dual.json, DIR/dual_e3.svg, DIR/dual_lambda.svg (default .)\n"
    CLI_COMMON_HELP;

/* ---- accumulators ------------------------------------------------------ */

typedef struct dstat {
    double min, max, sum, sq;
    long n;
} dstat;

static void st_add(dstat *s, double v)
{
    if (isnan(v)) return;
    if (s->n == 0 || v < s->min) s->min = v;
    if (s->n == 0 || v > s->max) s->max = v;
    s->sum += v;
    s->sq += v * v;
    s->n++;
}
static double st_mean(const dstat *s) { return s->n ? s->sum / s->n : NAN; }
static double st_std(const dstat *s)
{
    if (s->n < 2) return 0;
    double m = s->sum / s->n, v = s->sq / s->n - m * m;
    return v > 0 ? sqrt(v) : 0;
}

typedef struct head_acc {
    /* the check that applies (E1 linear, E2 softmax): plain relative error at t,
     * max and mean over positions, and the scaled error over positions */
    dstat ex_t, ex_max, ex_mean, ex_scaled, e4, e4_out, lambda;
    dstat e3[LRGD_DUAL_MAX_FEATURES];
} head_acc;

/* ---- output ------------------------------------------------------------ */

typedef struct run_info {
    const char *model_path, *data_path, *demos, *kernel;
    const lrgd_config *cfg;
    int users, n_split_users, k, max_hist, demo_hist, e3_users, n_feat, stack, text;
    const int *feat;
    double tol, secs;
    dstat tokens, n_demos, logits;
} run_info;

static const char *attn_name(lrgd_attn_mode a) { return a == LRGD_ATTN_LINEAR ? "linear" : "softmax"; }

static void json_stat(lrgd_json *j, const char *key, const dstat *s, int with_min)
{
    lrgd_json_key(j, key);
    lrgd_json_obj_begin(j);
    if (with_min) lrgd_json_knum(j, "min", s->n ? s->min : NAN);
    lrgd_json_knum(j, "mean", st_mean(s));
    lrgd_json_knum(j, "max", s->n ? s->max : NAN);
    lrgd_json_kint(j, "n", s->n);
    lrgd_json_obj_end(j);
}

/* The check that applies (E1 or E2): plain relative error at t (max, mean
 * over users and heads), over every position (max, mean of per-prompt means),
 * and the scaled error over every position (max). */
static void json_checks(lrgd_json *j, const dstat *at_t, const dstat *pos_max, const dstat *pos_mean,
                        const dstat *scaled)
{
    lrgd_json_key(j, "at_t");
    lrgd_json_obj_begin(j);
    lrgd_json_knum(j, "max", at_t->n ? at_t->max : NAN);
    lrgd_json_knum(j, "mean", st_mean(at_t));
    lrgd_json_obj_end(j);
    lrgd_json_key(j, "all_positions");
    lrgd_json_obj_begin(j);
    lrgd_json_knum(j, "max", pos_max->n ? pos_max->max : NAN);
    lrgd_json_knum(j, "mean", st_mean(pos_mean));
    lrgd_json_knum(j, "scaled_max", scaled->n ? scaled->max : NAN);
    lrgd_json_obj_end(j);
    lrgd_json_kint(j, "n", at_t->n);
}

typedef struct results {
    int L, H, nf;
    head_acc *heads;   /* [L][H] */
    dstat *lam_layer;   /* [L] */
    dstat *e3_layer;    /* [L][nf] */
    dstat e3_all[LRGD_DUAL_MAX_FEATURES];
    dstat g_ex_t, g_ex_max, g_ex_mean, g_ex_scaled, g_e4, g_e4_out;
} results;

static double layer_slope(const results *R, const int *feat, int l)
{
    double x[LRGD_DUAL_MAX_FEATURES], y[LRGD_DUAL_MAX_FEATURES];
    for (int f = 0; f < R->nf; f++) x[f] = feat[f], y[f] = st_mean(&R->e3_layer[l * R->nf + f]);
    return lrgd_loglog_slope(x, y, R->nf);
}

static double all_slope(const results *R, const int *feat)
{
    double x[LRGD_DUAL_MAX_FEATURES], y[LRGD_DUAL_MAX_FEATURES];
    for (int f = 0; f < R->nf; f++) x[f] = feat[f], y[f] = st_mean(&R->e3_all[f]);
    return lrgd_loglog_slope(x, y, R->nf);
}

static int passed(const results *R, const run_info *ri)
{
    int lin = ri->cfg->attn == LRGD_ATTN_LINEAR;
    /* at t the plain relative error; over every position the scaled one
     * (float32's own accuracy; see lrgd_dual_head) */
    if (!(R->g_ex_t.n > 0 && R->g_ex_t.max <= ri->tol)) return 0;
    if (!(R->g_ex_scaled.n > 0 && R->g_ex_scaled.max <= ri->tol)) return 0;
    if (!(R->g_e4.n > 0 && R->g_e4.max <= ri->tol)) return 0;
    if (lin && !(R->g_e4_out.max <= ri->tol)) return 0;
    if (ri->stack && !(ri->logits.n > 0 && ri->logits.max <= ri->tol)) return 0;
    return 1;
}

static void write_json(FILE *f, const results *R, const run_info *ri, const cli_common *cc, const char *svg_e3,
                       const char *svg_lam)
{
    lrgd_json j;
    lrgd_json_init(&j, f, 1);
    const lrgd_config *c = ri->cfg;
    int lin = c->attn == LRGD_ATTN_LINEAR, soft = !lin;
    lrgd_json_obj_begin(&j);
    lrgd_json_key(&j, "run");
    lrgd_json_obj_begin(&j);
    cli_json_run_info(&j, cc);
    lrgd_json_knum(&j, "seconds", ri->secs);
    lrgd_json_obj_end(&j);
    lrgd_json_key(&j, "model");
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "path", ri->model_path);
    lrgd_json_kstr(&j, "prompts", ri->text ? "text (lrgd_textrec)" : "item tokens");
    lrgd_json_kstr(&j, "attention", attn_name(c->attn));
    lrgd_json_kstr(&j, "rope", c->rope_type == LRGD_ROPE_NEOX ? "neox" : "norm");
    lrgd_json_kint(&j, "n_layers", c->n_layers);
    lrgd_json_kint(&j, "n_heads", c->n_heads);
    lrgd_json_kint(&j, "n_kv_heads", c->n_kv_heads);
    lrgd_json_kint(&j, "head_dim", c->head_dim);
    lrgd_json_obj_end(&j);
    lrgd_json_key(&j, "data");
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "path", ri->data_path);
    lrgd_json_kstr(&j, "step", "test");
    lrgd_json_kint(&j, "split_users", ri->n_split_users);
    lrgd_json_kint(&j, "users", ri->users);
    lrgd_json_kstr(&j, "demos", ri->demos);
    lrgd_json_kint(&j, "k", ri->k);
    lrgd_json_kint(&j, "max_hist", ri->max_hist);
    lrgd_json_kint(&j, "demo_hist", ri->demo_hist);
    json_stat(&j, "prompt_tokens", &ri->tokens, 1);
    json_stat(&j, "demos_per_prompt", &ri->n_demos, 1);
    lrgd_json_obj_end(&j);

    lrgd_json_key(&j, "checks");
    lrgd_json_obj_begin(&j);
    lrgd_json_knum(&j, "tolerance", ri->tol);
    lrgd_json_key(&j, "pass");
    lrgd_json_bool(&j, passed(R, ri));
    lrgd_json_key(&j, "E1");
    if (lin) {
        lrgd_json_obj_begin(&j);
        lrgd_json_kstr(&j, "what", "|(W_0 + dW) q - o| / |o| over layers and heads, at t and at every position; "
                                   "scaled: |(W_0 + dW) q - o| / sum_j (sum_a |k_ja q_a|/sqrt(d)) |v_j|");
        json_checks(&j, &R->g_ex_t, &R->g_ex_max, &R->g_ex_mean, &R->g_ex_scaled);
        json_stat(&j, "logits", &ri->logits, 0);
        lrgd_json_obj_end(&j);
    } else lrgd_json_null(&j);
    lrgd_json_key(&j, "E2");
    if (soft) {
        lrgd_json_obj_begin(&j);
        lrgd_json_kstr(&j, "what", "|(1-lambda) o^TQ + lambda o^D - o| / |o| over layers and heads, at t and at "
                                   "every position; scaled: the same over sum_j p_j |v_j|");
        json_checks(&j, &R->g_ex_t, &R->g_ex_max, &R->g_ex_mean, &R->g_ex_scaled);
        json_stat(&j, "logits", &ri->logits, 0);
        lrgd_json_obj_end(&j);
    } else lrgd_json_null(&j);
    lrgd_json_key(&j, "E3");
    if (soft && ri->n_feat) {
        lrgd_json_obj_begin(&j);
        lrgd_json_kstr(&j, "kernel", ri->kernel);
        lrgd_json_kint(&j, "users", ri->e3_users);
        lrgd_json_key(&j, "r");
        lrgd_json_arr_begin(&j);
        for (int f = 0; f < ri->n_feat; f++) lrgd_json_int(&j, ri->feat[f]);
        lrgd_json_arr_end(&j);
        lrgd_json_key(&j, "mean_error");
        lrgd_json_arr_begin(&j);
        for (int f = 0; f < ri->n_feat; f++) lrgd_json_num(&j, st_mean(&R->e3_all[f]));
        lrgd_json_arr_end(&j);
        lrgd_json_key(&j, "max_error");
        lrgd_json_arr_begin(&j);
        for (int f = 0; f < ri->n_feat; f++) lrgd_json_num(&j, R->e3_all[f].n ? R->e3_all[f].max : NAN);
        lrgd_json_arr_end(&j);
        lrgd_json_knum(&j, "loglog_slope", all_slope(R, ri->feat));
        lrgd_json_kstr(&j, "plot", svg_e3 ? svg_e3 : "");
        lrgd_json_obj_end(&j);
    } else lrgd_json_null(&j);
    lrgd_json_key(&j, "E4");
    lrgd_json_obj_begin(&j);
    lrgd_json_kstr(&j, "what", "|(W_0 - grad L) - (W_0 + dW)|_F / |W_0 + dW|_F, whole step and each demonstration");
    json_stat(&j, "matrix", &R->g_e4, 0);
    if (lin) json_stat(&j, "output", &R->g_e4_out, 0);
    lrgd_json_obj_end(&j);
    lrgd_json_obj_end(&j);

    lrgd_json_kstr(&j, "lambda_definition",
                   lin ? "linear attention: sum_{j in D} |k_j.q_t| / sum_j |k_j.q_t| (share of the scores)"
                       : "softmax: lambda_t = Z_D / (Z_D + Z_{T u Q})");
    lrgd_json_kstr(&j, "lambda_plot", svg_lam ? svg_lam : "");
    lrgd_json_key(&j, "layers");
    lrgd_json_arr_begin(&j);
    for (int l = 0; l < R->L; l++) {
        lrgd_json_obj_begin(&j);
        lrgd_json_kint(&j, "layer", l);
        json_stat(&j, "lambda", &R->lam_layer[l], 1);
        if (soft && R->nf) {
            lrgd_json_key(&j, "E3_mean_error");
            lrgd_json_arr_begin(&j);
            for (int f = 0; f < R->nf; f++) lrgd_json_num(&j, st_mean(&R->e3_layer[l * R->nf + f]));
            lrgd_json_arr_end(&j);
            lrgd_json_knum(&j, "E3_slope", layer_slope(R, ri->feat, l));
        }
        lrgd_json_key(&j, "heads");
        lrgd_json_arr_begin(&j);
        for (int h = 0; h < R->H; h++) {
            const head_acc *A = &R->heads[l * R->H + h];
            lrgd_json_obj_begin(&j);
            lrgd_json_kint(&j, "head", h);
            lrgd_json_kint(&j, "kv_head", h / (c->n_heads / c->n_kv_heads));
            lrgd_json_key(&j, lin ? "E1" : "E2");
            lrgd_json_obj_begin(&j);
            json_checks(&j, &A->ex_t, &A->ex_max, &A->ex_mean, &A->ex_scaled);
            lrgd_json_obj_end(&j);
            json_stat(&j, "E4", &A->e4, 0);
            if (lin) json_stat(&j, "E4_output", &A->e4_out, 0);
            json_stat(&j, "lambda", &A->lambda, 1);
            if (soft && R->nf) {
                lrgd_json_key(&j, "E3_mean_error");
                lrgd_json_arr_begin(&j);
                for (int f = 0; f < R->nf; f++) lrgd_json_num(&j, st_mean(&A->e3[f]));
                lrgd_json_arr_end(&j);
            }
            lrgd_json_obj_end(&j);
        }
        lrgd_json_arr_end(&j);
        lrgd_json_obj_end(&j);
    }
    lrgd_json_arr_end(&j);
    lrgd_json_obj_end(&j);
}

static lrgd_status write_outputs(const char *dir, const results *R, const run_info *ri, const cli_common *cc)
{
    char p_json[4096], p_e3[4096], p_lam[4096];
    LRGD_TRY(cli_out_dir(dir));
    snprintf(p_json, sizeof p_json, "%s/dual.json", dir);
    snprintf(p_e3, sizeof p_e3, "%s/dual_e3.svg", dir);
    snprintf(p_lam, sizeof p_lam, "%s/dual_lambda.svg", dir);
    int e3 = ri->cfg->attn == LRGD_ATTN_SOFTMAX && R->nf > 0;
    lrgd_plot *pl = NULL;
    lrgd_status st = LRGD_OK;
    if (e3) {
        char title[160];
        snprintf(title, sizeof title, "E3: kernel dual (%s features) vs exact attention, %d users", ri->kernel,
                 ri->e3_users);
        st = lrgd_plot_new(&pl, title, "random features r", "mean relative error of o_t");
        if (st == LRGD_OK) st = lrgd_plot_axes(pl, 1, 1);
        double x[LRGD_DUAL_MAX_FEATURES], y[LRGD_DUAL_MAX_FEATURES];
        for (int l = 0; l < R->L && st == LRGD_OK; l++) {
            char lab[64];
            snprintf(lab, sizeof lab, "layer %d (slope %.2f)", l, layer_slope(R, ri->feat, l));
            for (int f = 0; f < R->nf; f++) x[f] = ri->feat[f], y[f] = st_mean(&R->e3_layer[l * R->nf + f]);
            st = lrgd_plot_series(pl, lab, x, y, NULL, R->nf, LRGD_PLOT_MARKERS);
        }
        if (st == LRGD_OK) { /* the 1/sqrt(r) reference through the first mean point */
            double y0 = st_mean(&R->e3_all[0]);
            for (int f = 0; f < R->nf; f++) x[f] = ri->feat[f], y[f] = y0 * sqrt((double)ri->feat[0] / ri->feat[f]);
            st = lrgd_plot_series(pl, "1/sqrt(r)", x, y, NULL, R->nf, LRGD_PLOT_DASHED);
        }
        if (st == LRGD_OK) st = lrgd_plot_write(pl, p_e3);
        lrgd_plot_free(pl);
        pl = NULL;
    }
    if (st == LRGD_OK) {
        st = lrgd_plot_new(&pl,
                           ri->cfg->attn == LRGD_ATTN_LINEAR
                               ? "share of the attention scores on the demonstrations (linear attention)"
                               : "lambda_t: share of attention on the demonstrations",
                           "layer", "mean over users and heads (+- 1 sd)");
        char **cats = calloc((size_t)R->L, sizeof(char *));
        double *v = calloc((size_t)R->L, sizeof(double)), *e = calloc((size_t)R->L, sizeof(double));
        if (st == LRGD_OK && (!cats || !v || !e)) st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
        for (int l = 0; l < R->L && st == LRGD_OK; l++) {
            cats[l] = malloc(16);
            if (!cats[l]) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); break; }
            snprintf(cats[l], 16, "%d", l);
            v[l] = st_mean(&R->lam_layer[l]);
            e[l] = st_std(&R->lam_layer[l]);
        }
        const char *ser[1] = {"lambda_t"};
        if (st == LRGD_OK) st = lrgd_plot_bars(pl, R->L, (const char *const *)cats, 1, ser, v, e);
        if (st == LRGD_OK) st = lrgd_plot_yrange(pl, 0, 1);
        if (st == LRGD_OK) st = lrgd_plot_write(pl, p_lam);
        for (int l = 0; cats && l < R->L; l++) free(cats[l]);
        free(cats);
        free(v);
        free(e);
        lrgd_plot_free(pl);
    }
    if (st != LRGD_OK) return st;
    lrgd_afile af;
    LRGD_TRY(lrgd_afile_open(&af, p_json));
    write_json(af.f, R, ri, cc, e3 ? p_e3 : NULL, p_lam);
    LRGD_TRY(lrgd_afile_commit(&af));
    if (cc->json) write_json(stdout, R, ri, cc, e3 ? p_e3 : NULL, p_lam);
    return LRGD_OK;
}

static void print_table(FILE *f, const results *R, const run_info *ri)
{
    const lrgd_config *c = ri->cfg;
    int lin = c->attn == LRGD_ATTN_LINEAR, e3 = !lin && R->nf > 0;
    fprintf(f, "lrgd dual: %d users of %s; %s%s model, %d layers x %d heads (%d kv), head_dim %d\n", ri->users,
            ri->data_path, attn_name(c->attn), ri->text ? " text" : "", c->n_layers, c->n_heads, c->n_kv_heads,
            c->head_dim);
    fprintf(f, "  demonstrations: %s, k = %d (%.2f per prompt), history caps %d (query) / %d (demos); prompts "
               "%.0f..%.0f tokens (mean %.1f); %.1f s\n",
            ri->demos, ri->k, st_mean(&ri->n_demos), ri->max_hist, ri->demo_hist, ri->tokens.min, ri->tokens.max,
            st_mean(&ri->tokens), ri->secs);
    const char *ex = lin ? "E1" : "E2";
    char h1[16], h2[16], h3[16];
    snprintf(h1, sizeof h1, "%s t max", ex);
    snprintf(h2, sizeof h2, "%s all max", ex);
    snprintf(h3, sizeof h3, "%s scaled", ex);
    fprintf(f, "%-6s %-26s %-10s %-11s %-10s %-10s", "layer", lin ? "lambda_abs mean [min,max]" : "lambda_t mean [min,max]",
            h1, h2, h3, "E4 max");
    if (e3) fprintf(f, " E3 r=%-6d E3 r=%-6d %s", ri->feat[0], ri->feat[R->nf - 1], "slope");
    fputc('\n', f);
    for (int l = 0; l < R->L; l++) {
        dstat t = {0}, mx = {0}, sc = {0}, e4 = {0};
        for (int h = 0; h < R->H; h++) {
            const head_acc *A = &R->heads[l * R->H + h];
            if (A->ex_t.n) st_add(&t, A->ex_t.max);
            if (A->ex_max.n) st_add(&mx, A->ex_max.max);
            if (A->ex_scaled.n) st_add(&sc, A->ex_scaled.max);
            if (A->e4.n) st_add(&e4, A->e4.max);
        }
        char lam[64];
        snprintf(lam, sizeof lam, "%.3f [%.3f,%.3f]", st_mean(&R->lam_layer[l]), R->lam_layer[l].min,
                 R->lam_layer[l].max);
        fprintf(f, "%-6d %-26s %-10.3g %-11.3g %-10.3g %-10.3g", l, lam, t.max, mx.max, sc.max, e4.max);
        if (e3)
            fprintf(f, " %-11.4g %-11.4g %.3f", st_mean(&R->e3_layer[l * R->nf]),
                    st_mean(&R->e3_layer[l * R->nf + R->nf - 1]), layer_slope(R, ri->feat, l));
        fputc('\n', f);
    }
    fprintf(f, "%s mean relative error: %.3g at t, %.3g over all positions\n", ex, st_mean(&R->g_ex_t),
            st_mean(&R->g_ex_mean));
    if (ri->stack)
        fprintf(f, "final logits rebuilt from the dual models: max %.3g, mean %.3g relative error\n", ri->logits.max,
                st_mean(&ri->logits));
    if (e3) fprintf(f, "E3 (%s features): all layers, fitted log-log slope %.3f (1/sqrt(r): -0.5)\n", ri->kernel,
                    all_slope(R, ri->feat));
    fprintf(f, "%s (at t; scaled at every position), E4%s within %.0e: %s\n", ex, ri->stack ? ", logits" : "",
            ri->tol, passed(R, ri) ? "yes" : "NO");
}

/* ---- the command ------------------------------------------------------- */

typedef struct item_map {
    int32_t *to_model; /* dataset item -> model item, -1 when the model lacks it */
} item_map;

static int cmp_ext(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

static lrgd_status map_items(const lrgd_dataset *ds, const lrgd_model *m, item_map *im)
{
    int n = lrgd_dataset_n_items(ds), nm = m->rec.n_items;
    im->to_model = malloc(sizeof(int32_t) * (size_t)n);
    int64_t *pairs = malloc(sizeof(int64_t) * 2 * (size_t)nm);
    if (!im->to_model || !pairs) {
        free(pairs);
        return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    }
    for (int i = 0; i < nm; i++) pairs[2 * i] = m->rec.item_ext[i], pairs[2 * i + 1] = i;
    qsort(pairs, (size_t)nm, 2 * sizeof(int64_t), cmp_ext);
    for (int i = 0; i < n; i++) {
        int64_t key[2] = {lrgd_dataset_item_ext(ds, i), 0};
        const int64_t *hit = key[0] < 0 ? NULL : bsearch(key, pairs, (size_t)nm, 2 * sizeof(int64_t), cmp_ext);
        im->to_model[i] = hit ? (int32_t)hit[1] : -1;
    }
    free(pairs);
    return LRGD_OK;
}

/* Dataset items -> model items; an item the model does not know is an error. */
static lrgd_status translate(const lrgd_dataset *ds, const item_map *im, const int32_t *in, int n, int32_t *out,
                             const char *whose, int u)
{
    for (int i = 0; i < n; i++) {
        out[i] = im->to_model[in[i]];
        if (out[i] < 0)
            return lrgd_fail(LRGD_E_INVALID, "item %s (%s of user %s) is not in the model's item vocabulary: was the "
                                             "model trained on this dataset?",
                             lrgd_dataset_item_name(ds, in[i]), whose, lrgd_dataset_user_name(ds, u));
    }
    return LRGD_OK;
}

int cmd_dual(int argc, char **argv)
{
    static const char *const kernel_names[] = {"prf", "oprf", NULL};
    const char *CMD = "dual";
    cli_common cc;
    cli_common_init(&cc);
    const char *model_path = NULL, *data_path = NULL, *out_dir = ".", *items_path = NULL;
    int max_hist_set = 0, feat_set = 0, demo_i = 2, kernel_i = 0;
    long long users = 100, k = 3, max_hist = 50, demo_hist = 20, e3_users = -1, feat[LRGD_DUAL_MAX_FEATURES];
    int n_feat = LRGD_DUAL_MAX_FEATURES, stack = 1, strict = 0, check_failed = 0;
    double tol = 1e-5;
    const cli_opt opts[] = {
        CLI_O_STR("model", &model_path, "a model file"),
        CLI_O_STR("data", &data_path, "an interaction file"),
        CLI_O_STR("items", &items_path, "an item text file"),
        CLI_O_LLONG("users", &users, 1, 10000000),
        CLI_O_CHOICE("demos", &demo_i, cli_demo_names, NULL),
        CLI_O_LLONG("k", &k, 0, 256),
        {"max-hist", CLI_LLONG, &max_hist, 1, 1000000, NULL, NULL, NULL, &max_hist_set, NULL},
        CLI_O_LLONG("demo-hist", &demo_hist, 1, 1000000),
        {"features", CLI_INT_LIST, feat, 1, 1 << 20, NULL, NULL, NULL, &feat_set, &n_feat},
        CLI_O_CHOICE("kernel", &kernel_i, kernel_names, NULL),
        CLI_O_LLONG("e3-users", &e3_users, 0, 10000000),
        CLI_O_SET("no-stack", &stack, 0),
        CLI_O_DOUBLE("tol", &tol, 0, 1),
        CLI_O_FLAG("strict", &strict),
        CLI_O_STR("out", &out_dir, "a directory"),
        CLI_O_END};
    int r = cli_parse(CMD, help_dual, argc, argv, opts, &cc);
    if (r != CLI_CONTINUE) return r;
    if (!feat_set) /* r = 16, 32, ..., 4096 */
        for (n_feat = 0; n_feat < 9; n_feat++) feat[n_feat] = 16LL << n_feat;
    const char *demos = cli_demo_names[demo_i], *kernel = kernel_names[kernel_i];
    if (!model_path) return cli_usage(CMD, "--model is required");
    if (!data_path) return cli_usage(CMD, "--data is required");
    if (!strcmp(demos, "none")) k = 0;
    else if (k == 0) demos = "none";
    if ((r = cli_common_apply(CMD, &cc)) != 0) return r;

    double t0 = lrgd_now();
    lrgd_model *m = NULL;
    lrgd_dataset *ds = NULL;
    lrgd_split *sp = NULL;
    item_map im = {0};
    lrgd_demo_index *ix = NULL;
    results R = {0};
    run_info ri = {0};
    lrgd_prompt_vocab pv;
    int32_t *sample = NULL, *buf = NULL, *dusers = NULL;
    float *lg = NULL;
    lrgd_textrec *tr = NULL;
    const lrgd_model *mm = NULL; /* the model the prompts run on */
    int text = 0;
    lrgd_status st = lrgd_model_load(model_path, &m);
    if (st == LRGD_OK) {
        st = lrgd_prompt_vocab_of(m, &pv);
        if (st == LRGD_E_UNSUPPORTED) { /* no item vocabulary: a text LLM */
            text = 1;
            st = LRGD_OK;
            lrgd_model_free(m);
            m = NULL;
        }
    }
    if (st != LRGD_OK) { lrgd_fail_wrap(st, "%s", model_path); goto done; }
    if (!text && items_path) {
        st = lrgd_fail(LRGD_E_INVALID, "--items: %s is an item-token model; titles are for text LLMs", model_path);
        goto done;
    }
    if ((st = lrgd_dataset_load(data_path, LRGD_DATA_AUTO, &ds)) != LRGD_OK) goto done;
    if (items_path && (st = lrgd_dataset_load_item_text(ds, items_path)) != LRGD_OK) goto done;
    if ((st = lrgd_split_loo(ds, &sp)) != LRGD_OK) goto done;
    if (text) {
        lrgd_textrec_opts to;
        lrgd_textrec_opts_init(&to);
        if (max_hist_set) to.max_hist = (int)max_hist;
        else max_hist = to.max_hist;
        st = lrgd_textrec_load(model_path, ds, &to, &tr);
        if (st != LRGD_OK) {
            lrgd_fail_wrap(st, "%s has no item vocabulary (lrgd.* keys), and as a text LLM", model_path);
            goto done;
        }
        mm = lrgd_textrec_model(tr);
    } else {
        if ((st = map_items(ds, m, &im)) != LRGD_OK) goto done;
        mm = m;
    }
    const lrgd_config *cfg = &mm->cfg;
    const int step = LRGD_STEP_TEST, n_users_split = lrgd_split_n_users(sp), n_ds_users = lrgd_dataset_n_users(ds);
    if (users > n_users_split) {
        st = lrgd_fail(LRGD_E_INVALID, "--users %lld: the split of %s has only %d users", users, data_path,
                       n_users_split);
        goto done;
    }
    if (e3_users < 0) e3_users = users < 50 ? users : 50;
    if (e3_users > users) e3_users = users;
    if (cfg->attn == LRGD_ATTN_LINEAR) e3_users = 0;
    if ((st = lrgd_demo_index_new(sp, step, (int)demo_hist, &ix)) != LRGD_OK) goto done;
    lrgd_demo_mode mode = !strcmp(demos, "similar") ? LRGD_DEMOS_SIMILAR
                          : !strcmp(demos, "random") ? LRGD_DEMOS_RANDOM : LRGD_DEMOS_NONE;

    /* a seeded sample of users without replacement (partial Fisher-Yates) */
    sample = malloc(sizeof(int32_t) * (size_t)n_users_split);
    dusers = malloc(sizeof(int32_t) * (size_t)(k + 1));
    (void)n_ds_users;
    lg = malloc(sizeof(float) * (size_t)cfg->vocab_size);
    R.L = cfg->n_layers, R.H = cfg->n_heads, R.nf = e3_users > 0 ? n_feat : 0;
    R.heads = calloc((size_t)R.L * R.H, sizeof *R.heads);
    R.lam_layer = calloc((size_t)R.L, sizeof *R.lam_layer);
    R.e3_layer = calloc((size_t)R.L * (R.nf ? R.nf : 1), sizeof *R.e3_layer);
    if (!sample || !dusers || !lg || !R.heads || !R.lam_layer || !R.e3_layer) {
        st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
        goto done;
    }
    memcpy(sample, lrgd_split_users(sp), sizeof(int32_t) * (size_t)n_users_split);
    {
        lrgd_rng rng;
        lrgd_rng_seed(&rng, cc.seed, 0);
        for (int i = 0; i < users; i++) {
            int j = i + (int)lrgd_rng_below(&rng, (uint32_t)(n_users_split - i));
            int32_t t = sample[i];
            sample[i] = sample[j];
            sample[j] = t;
        }
    }

    /* longest sequence bounds every history buffer */
    int longest = lrgd_dataset_stats(ds)->max_len + 1;
    buf = malloc(sizeof(int32_t) * (size_t)longest * (size_t)(k + 1));
    lrgd_demo *dm = malloc(sizeof(lrgd_demo) * (size_t)(k + 1));
    if (!buf || !dm) {
        free(dm);
        st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
        goto done;
    }
    lrgd_progress prog;
    lrgd_progress_begin(&prog, "dual", "users", (double)users);
    lrgd_prompt_opts po = {.max_hist = 0, .n_ctx = cfg->seq_len}; /* histories are capped above */
    for (int ui = 0; ui < users && st == LRGD_OK; ui++) {
        int u = sample[ui], nd = 0, qlen;
        const int32_t *qh;
        lrgd_split_history(sp, step, u, &qh, &qlen);
        /* the scorer's demonstrations, in prompt order (least similar first) */
        st = tm_prompt_demos(ix, mode, (int)k, cc.seed, u, qh, qlen, dusers, &nd);
        for (int d = 0; d < nd && st == LRGD_OK; d++) {
            lrgd_demo dd;
            st = lrgd_demo_index_demo(ix, dusers[d], &dd, NULL);
            int32_t *b = buf + (size_t)(d + 1) * longest;
            if (text) { /* the text prompt shows dataset items by their titles */
                if (st == LRGD_OK) dm[d] = dd;
                continue;
            }
            if (st == LRGD_OK) st = translate(ds, &im, dd.hist, dd.n_hist, b, "a demonstration", dusers[d]);
            if (st == LRGD_OK) st = translate(ds, &im, &dd.next, 1, b + dd.n_hist, "a demonstration", dusers[d]);
            if (st == LRGD_OK) dm[d] = (lrgd_demo){b, dd.n_hist, b[dd.n_hist]};
        }
        lrgd_prompt *p = NULL;
        int first = 0;
        if (text) { /* lrgd_textrec caps the query history to fit; demonstrations are left
                       * out here, least similar first, while the prompt does not fit */
            while (st == LRGD_OK) {
                st = lrgd_textrec_prompt(tr, dm + first, nd - first, qh, qlen, &p);
                if (st != LRGD_E_INVALID || first == nd) break;
                first++;
                st = LRGD_OK;
            }
        } else {
            if (qlen > max_hist) { /* the query's most recent max_hist items */
                qh += qlen - max_hist;
                qlen = (int)max_hist;
            }
            if (st == LRGD_OK) st = translate(ds, &im, qh, qlen, buf, "the query history", u);
            /* like the scorer: leave out the least similar until the prompt fits */
            int len = 1 + qlen + 1;
            for (int d = 0; d < nd && st == LRGD_OK; d++) len += dm[d].n_hist + 3;
            while (st == LRGD_OK && len > cfg->seq_len && first < nd) len -= dm[first++].n_hist + 3;
            if (st == LRGD_OK) st = lrgd_prompt_build(&pv, &po, dm + first, nd - first, buf, qlen, &p);
        }
        nd -= first;
        if (st != LRGD_OK) {
            lrgd_fail_wrap(st, "user %s", lrgd_dataset_user_name(ds, u));
            break;
        }
        st_add(&ri.tokens, p->n_tokens);
        st_add(&ri.n_demos, nd);
        lrgd_dual_opts o = {.flags = LRGD_DUAL_GD | LRGD_DUAL_ALL_POSITIONS | (stack ? LRGD_DUAL_MATRICES : 0),
                            .seed = cc.seed, .stream = (uint64_t)u,
                            .kernel = strcmp(kernel, "oprf") ? LRGD_KERNEL_PRF : LRGD_KERNEL_OPRF};
        if (ui < e3_users) {
            o.n_features = n_feat;
            for (int f = 0; f < n_feat; f++) o.features[f] = (int)feat[f];
        }
        lrgd_dual *d = NULL;
        st = lrgd_dual_run(mm, p, &o, &d);
        if (st == LRGD_OK && stack) {
            st = lrgd_dual_stack_logits(mm, d, lg);
            if (st == LRGD_OK) {
                const float *fl = lrgd_dual_logits(d);
                double num = 0, den = 0;
                for (int i = 0; i < cfg->vocab_size; i++) {
                    num += ((double)lg[i] - fl[i]) * ((double)lg[i] - fl[i]);
                    den += (double)fl[i] * fl[i];
                }
                st_add(&ri.logits, den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0));
            }
        }
        if (st == LRGD_OK) {
            for (int l = 0; l < R.L; l++)
                for (int h = 0; h < R.H; h++) {
                    const lrgd_dual_head *H = lrgd_dual_head_at(d, l, h);
                    head_acc *A = &R.heads[l * R.H + h];
                    int lin = cfg->attn == LRGD_ATTN_LINEAR;
                    double et = lin ? H->e1 : H->e2, emx = lin ? H->e1_pos_max : H->e2_pos_max;
                    double emn = lin ? H->e1_pos_mean : H->e2_pos_mean, esc = lin ? H->e1_pos_scaled : H->e2_pos_scaled;
                    st_add(&A->ex_t, et);
                    st_add(&A->ex_max, emx);
                    st_add(&A->ex_mean, emn);
                    st_add(&A->ex_scaled, esc);
                    st_add(&R.g_ex_t, et);
                    st_add(&R.g_ex_max, emx);
                    st_add(&R.g_ex_mean, emn);
                    st_add(&R.g_ex_scaled, esc);
                    st_add(&A->e4, H->e4);
                    st_add(&A->e4_out, H->e4_out);
                    /* lambda_t for softmax; the share of |scores| for linear attention */
                    double lam = cfg->attn == LRGD_ATTN_LINEAR ? H->lambda_abs : H->lambda;
                    st_add(&A->lambda, lam);
                    st_add(&R.lam_layer[l], lam);
                    st_add(&R.g_e4, H->e4);
                    st_add(&R.g_e4_out, H->e4_out);
                    if (o.n_features)
                        for (int f = 0; f < n_feat; f++) {
                            st_add(&A->e3[f], H->e3[f]);
                            st_add(&R.e3_layer[l * R.nf + f], H->e3[f]);
                            st_add(&R.e3_all[f], H->e3[f]);
                        }
                }
        } else lrgd_fail_wrap(st, "user %s", lrgd_dataset_user_name(ds, u));
        lrgd_dual_free(d);
        lrgd_prompt_free(p);
        char extra[96];
        snprintf(extra, sizeof extra, "%s max %.2g", cfg->attn == LRGD_ATTN_LINEAR ? "E1" : "E2",
                 R.g_ex_t.max);
        lrgd_progress_update(&prog, ui + 1, extra);
    }
    lrgd_progress_end(&prog, users, NULL);
    free(dm);
    if (st != LRGD_OK) goto done;

    int fi[LRGD_DUAL_MAX_FEATURES];
    for (int f = 0; f < n_feat; f++) fi[f] = (int)feat[f];
    ri.model_path = model_path;
    ri.data_path = data_path;
    ri.demos = demos;
    ri.kernel = kernel;
    ri.cfg = cfg;
    ri.users = (int)users;
    ri.n_split_users = n_users_split;
    ri.k = (int)k;
    ri.max_hist = (int)max_hist;
    ri.demo_hist = (int)demo_hist;
    ri.text = text;
    ri.e3_users = (int)e3_users;
    ri.n_feat = R.nf;
    ri.feat = fi;
    ri.stack = stack;
    ri.tol = tol;
    ri.secs = lrgd_now() - t0;
    st = write_outputs(out_dir, &R, &ri, &cc);
    /* the table is the result: always on stdout, unless stdout carries the JSON */
    if (st == LRGD_OK && (!cc.json || !cc.quiet)) print_table(cc.json ? stderr : stdout, &R, &ri);
    if (st == LRGD_OK && strict && !passed(&R, &ri)) {
        fprintf(stderr, "lrgd dual: a check exceeds the tolerance %g (--strict)\n", tol);
        check_failed = 1;
    }

done:
    free(lg);
    free(dusers);
    free(buf);
    free(sample);
    free(R.heads);
    free(R.lam_layer);
    free(R.e3_layer);
    free(im.to_model);
    lrgd_demo_index_free(ix);
    lrgd_textrec_free(tr);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
    lrgd_model_free(m);
    if (st != LRGD_OK) return cli_fail(CMD, st);
    return check_failed ? CLI_RUNTIME : CLI_OK;
}
