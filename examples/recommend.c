/* In-context recommendation with the public lrgd API: load a model, build
 * an ICL prompt [T | demonstrations | query] for one user, rank every item,
 * and score each demonstration with Effect_D.
 *
 *   cc recommend.c $(pkg-config --cflags --libs lrgd) -o recommend
 *   ./recommend MODEL DATA --user U [--items TITLES.tsv] [--k K]
 *   ./recommend MODEL DATA --query 12,7,33 [--demo 5,8,2:6]... [--target 9] [--items TITLES.tsv]
 *
 * MODEL is a recommendation model trained by 'lrgd train' on DATA (items
 * are tokens) or a text LLM in GGUF with a tokenizer (items are shown by
 * their titles from --items, "item <id>" without). Ids are DATA's external
 * ids.
 *
 * With --user, the prompt is the one 'lrgd eval --split valid --demos
 * similar --k K' ranks with (the validation step of the leave-one-out
 * split): the user's history before its validation item, after the K pool
 * users most similar to it (the most similar next to the query), and the
 * target is the validation item. With --query the prompt is given: the
 * history, and each --demo "history:next"; the target is --target or the
 * top-ranked item.
 *
 * Effect_D is scored as 'lrgd effect' scores it: each demonstration inserted
 * right after T into the zero-shot prompt of the query (its most recent 50
 * items; a demonstration's most recent 20), the first-order change of
 * log p(target) from the dual model's gradient at the answer, by dot
 * products (lrgd/effect.h). Every call returns a status; lrgd_last_error()
 * says what went wrong. */
#include <lrgd/effect.h>
#include <lrgd/lrgd.h>
#include <lrgd/textrec.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEMOS 16
#define QUERY_HIST 50 /* 'lrgd effect' and the model scorer's defaults */
#define DEMO_HIST 20

typedef struct args {
    const char *model, *data, *items, *user, *query, *demo[MAX_DEMOS], *target;
    int n_demo, k;
} args;

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s MODEL DATA --user U [--items TSV] [--k K]\n"
                    "       %s MODEL DATA --query IDS [--demo IDS:ID]... [--target ID] [--items TSV]\n",
            prog, prog);
    return 2;
}

static int fail(lrgd_status st)
{
    fprintf(stderr, "recommend: %s\n", lrgd_last_error());
    return lrgd_exit_code(st);
}

/* "12,7,33" (external ids) -> internal ids; *n in: capacity, out: count. */
static int parse_ids(const lrgd_dataset *ds, const char *s, int32_t *out, int *n)
{
    int cap = *n;
    *n = 0;
    while (*s) {
        size_t len = strcspn(s, ",");
        int id = lrgd_dataset_find_item(ds, s, len);
        if (len == 0 || id < 0 || *n == cap) {
            fprintf(stderr, "recommend: '%.*s' is not an item of the dataset (or too many ids)\n", (int)len, s);
            return -1;
        }
        out[(*n)++] = id;
        s += len + (s[len] == ',');
    }
    return *n > 0 ? 0 : -1;
}

/* Scores of every item after the prompt: the logits of the item tokens at
 * the answer position (item model), or the summed log-likelihood of each
 * item's title after the answer marker (text LLM). */
static lrgd_status score_items(const lrgd_model *m, lrgd_textrec *tr, const lrgd_demo *demos, int n_demos,
                               const int32_t *hist, int n_hist, int n_items, float *scores, int *n_tokens)
{
    lrgd_prompt *p = NULL;
    lrgd_status st;
    if (tr) {
        double *s = malloc((size_t)n_items * sizeof *s);
        int32_t *all = malloc((size_t)n_items * sizeof *all);
        st = s && all ? lrgd_textrec_prompt(tr, demos, n_demos, hist, n_hist, &p) : LRGD_E_NOMEM;
        for (int i = 0; i < n_items; i++) all[i] = i;
        if (st == LRGD_OK) st = lrgd_textrec_score(tr, p, all, n_items, s);
        for (int i = 0; st == LRGD_OK && i < n_items; i++) scores[i] = (float)s[i];
        free(s);
        free(all);
    } else {
        lrgd_prompt_vocab v;
        lrgd_prompt_opts po = {QUERY_HIST, 0};
        lrgd_state *state = NULL;
        float *logits = malloc((size_t)lrgd_model_config(m)->vocab_size * sizeof *logits);
        st = logits ? lrgd_prompt_vocab_of(m, &v) : LRGD_E_NOMEM;
        if (st == LRGD_OK) st = lrgd_prompt_build(&v, &po, demos, n_demos, hist, n_hist, &p);
        if (st == LRGD_OK) st = lrgd_prompt_check(p, m, 0);
        if (st == LRGD_OK) st = lrgd_state_new(m, 0, 0, &state);
        if (st == LRGD_OK) st = lrgd_eval(state, p->tokens, p->n_tokens, logits, 0);
        for (int i = 0; st == LRGD_OK && i < n_items; i++) scores[i] = logits[v.n_special + i];
        lrgd_state_free(state);
        free(logits);
    }
    if (st == LRGD_OK) *n_tokens = p->n_tokens;
    lrgd_prompt_free(p);
    return st;
}

/* Effect_D of each demonstration for (query, target): one probe of the
 * zero-shot prompt, each demonstration encoded once after T. */
static lrgd_status effects(lrgd_effect *e, const lrgd_demo *demos, int n_demos, const int32_t *hist, int n_hist,
                           int32_t target, double *eff, int *len, double *logp0)
{
    int n_ctx = lrgd_model_config(lrgd_effect_model(e))->seq_len, nq = 0;
    int *qt = malloc((size_t)n_ctx * sizeof *qt), *dt = malloc((size_t)n_ctx * sizeof *dt);
    lrgd_store *store = NULL;
    lrgd_probe *probe = NULL;
    lrgd_status st = qt && dt ? lrgd_store_new(e, &store) : LRGD_E_NOMEM;
    if (st == LRGD_OK) st = lrgd_effect_query_tokens(e, hist, n_hist, QUERY_HIST, qt, &nq);
    if (st == LRGD_OK) st = lrgd_probe_run(e, NULL, NULL, 0, qt, nq, target, &probe);
    for (int d = 0; d < n_demos && st == LRGD_OK; d++) {
        int id = -1;
        st = lrgd_effect_demo_tokens(e, &demos[d], DEMO_HIST, dt, &len[d]);
        if (st == LRGD_OK) st = lrgd_store_add(store, dt, len[d], NULL, &id);
        if (st == LRGD_OK) st = lrgd_effect_score(store, probe, &id, 1, &eff[d], NULL);
    }
    if (st == LRGD_OK) *logp0 = lrgd_probe_logp(probe);
    lrgd_probe_free(probe);
    lrgd_store_free(store);
    free(qt);
    free(dt);
    return st;
}

static void print_items(const lrgd_dataset *ds, const int32_t *items, int n)
{
    for (int i = 0; i < n; i++) printf("%s%s", i ? "," : "", lrgd_dataset_item_name(ds, items[i]));
}

/* The ten best items (history excluded, as lrgd eval ranks), best first. */
static void print_top(const lrgd_dataset *ds, const float *scores, int n_items, const int32_t *hist, int n_hist)
{
    int top[10], n_top = 0;
    for (int i = 0; i < n_items; i++) {
        int in_hist = 0;
        for (int j = 0; j < n_hist && !in_hist; j++) in_hist = hist[j] == i;
        if (in_hist) continue;
        int at = n_top < 10 ? n_top++ : 10; /* insertion into the sorted top list; ties keep the smaller id */
        while (at > 0 && scores[i] > scores[top[at - 1]]) {
            if (at < 10) top[at] = top[at - 1];
            at--;
        }
        if (at < 10) top[at] = i;
    }
    for (int r = 0; r < n_top; r++) {
        const char *t = lrgd_dataset_item_text(ds, top[r]);
        printf("top %2d item %s score %.6g%s%.60s%s\n", r + 1, lrgd_dataset_item_name(ds, top[r]), scores[top[r]],
               t ? " \"" : "", t ? t : "", t ? "\"" : "");
    }
}

int main(int argc, char **argv)
{
    args a = {.k = 3};
    if (argc < 3) return usage(argv[0]);
    a.model = argv[1];
    a.data = argv[2];
    for (int i = 3; i < argc; i += 2) { /* --option value pairs */
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage(argv[0]);
        if (!strcmp(o, "--user")) a.user = v;
        else if (!strcmp(o, "--items")) a.items = v;
        else if (!strcmp(o, "--query")) a.query = v;
        else if (!strcmp(o, "--target")) a.target = v;
        else if (!strcmp(o, "--k")) {
            char *end;
            long k = strtol(v, &end, 10);
            a.k = *v && !*end && k >= 0 && k <= MAX_DEMOS ? (int)k : -1;
        }
        else if (!strcmp(o, "--demo") && a.n_demo < MAX_DEMOS) a.demo[a.n_demo++] = v;
        else return usage(argv[0]);
    }
    if (!a.user == !a.query || a.k < 0 || a.k > MAX_DEMOS) return usage(argv[0]);

    lrgd_model *m = NULL;
    lrgd_dataset *ds = NULL;
    lrgd_split *sp = NULL;
    lrgd_demo_index *ix = NULL;
    lrgd_tokenizer *tok = NULL;
    lrgd_textrec *tr = NULL;
    lrgd_effect *e = NULL;
    lrgd_status st = lrgd_model_load(a.model, &m);
    if (st == LRGD_OK) st = lrgd_dataset_load(a.data, LRGD_DATA_AUTO, &ds);
    if (st == LRGD_OK && a.items) st = lrgd_dataset_load_item_text(ds, a.items);
    if (st != LRGD_OK) return fail(st);
    /* A text LLM has no item vocabulary: its prompts show item titles. */
    lrgd_prompt_vocab v;
    int text = lrgd_prompt_vocab_of(m, &v) == LRGD_E_UNSUPPORTED;
    st = lrgd_model_check_items(m, ds); /* item tokens = the dataset's items, or a text LLM */
    if (st == LRGD_OK && text) st = lrgd_tokenizer_from_model(m, &tok);
    if (st == LRGD_OK && text) st = lrgd_textrec_new(m, tok, ds, NULL, &tr);
    if (st == LRGD_OK) st = lrgd_effect_new_data(m, ds, &e);
    int n_items = lrgd_dataset_n_items(ds), n_demos = 0, n_hist = 0, rc = 0;
    int32_t *buf = malloc(sizeof(int32_t) * 4096 * (MAX_DEMOS + 1)), target = -1, du[MAX_DEMOS];
    const int32_t *hist = buf; /* the query: the split's history, or the ids given */
    lrgd_demo demos[MAX_DEMOS];
    float *scores = malloc(sizeof(float) * (size_t)n_items);
    if (st == LRGD_OK && (!buf || !scores)) st = LRGD_E_NOMEM;
    if (st != LRGD_OK) goto done;
    printf("model %s: %s\n", a.model, text ? "text LLM (item titles)" : "recommendation model (item tokens)");

    if (a.user) {
        /* the validation step of the leave-one-out split, and the K most similar pool users */
        int u = lrgd_dataset_find_user(ds, a.user, strlen(a.user)), n;
        if ((st = lrgd_split_loo(ds, &sp)) != LRGD_OK) goto done;
        if (u < 0 || !lrgd_split_has_user(sp, u)) {
            fprintf(stderr, "recommend: user %s is not in the split of %s\n", a.user, a.data);
            rc = 2;
            goto done;
        }
        lrgd_split_history(sp, LRGD_STEP_VALID, u, &hist, &n_hist);
        target = lrgd_split_target(sp, LRGD_STEP_VALID, u);
        if ((st = lrgd_demo_index_new(sp, LRGD_STEP_VALID, DEMO_HIST, &ix)) != LRGD_OK) goto done;
        if ((st = lrgd_demo_index_similar(ix, hist, n_hist, u, a.k, du, NULL, &n)) != LRGD_OK) goto done;
        for (int d = 0; d < n && st == LRGD_OK; d++) /* prompt order: the most similar last */
            st = lrgd_demo_index_demo(ix, du[n - 1 - d], &demos[d], NULL);
        for (int d = 0; d < n / 2; d++) {
            int32_t t = du[d];
            du[d] = du[n - 1 - d];
            du[n - 1 - d] = t;
        }
        n_demos = n;
        printf("user %s: %d history items before the held-out validation item %s\n", a.user, n_hist,
               lrgd_dataset_item_name(ds, target));
    } else {
        n_hist = 4096;
        if (parse_ids(ds, a.query, buf, &n_hist)) { rc = 2; goto done; }
        for (int d = 0; d < a.n_demo; d++) {
            int32_t *b = buf + (size_t)(d + 1) * 4096;
            const char *colon = strrchr(a.demo[d], ':');
            char h[4096] = "";
            int nh = 4095, one = 1, hl = colon ? (int)(colon - a.demo[d]) : -1;
            if (hl >= 0 && hl < (int)sizeof h) memcpy(h, a.demo[d], (size_t)hl), h[hl] = 0;
            int bad = hl <= 0 || hl >= (int)sizeof h || parse_ids(ds, h, b, &nh) || parse_ids(ds, colon + 1, b + nh, &one);
            if (bad) {
                fprintf(stderr, "recommend: --demo '%s': expected IDS:ID\n", a.demo[d]);
                rc = 2;
                goto done;
            }
            demos[n_demos] = (lrgd_demo){b, nh, b[nh]};
            du[n_demos++] = -1;
        }
        int one = 1;
        if (a.target && parse_ids(ds, a.target, &target, &one)) { rc = 2; goto done; }
    }
    for (int d = 0; d < n_demos; d++) {
        printf("demo %d", d + 1);
        if (du[d] >= 0) printf(" user %s", lrgd_dataset_user_name(ds, du[d]));
        printf(" items ");
        print_items(ds, demos[d].hist, demos[d].n_hist);
        printf(" next %s\n", lrgd_dataset_item_name(ds, demos[d].next));
    }
    printf("query items ");
    print_items(ds, hist, n_hist);
    printf("\n");

    /* rank every item with the ICL prompt */
    int n_tok = 0;
    if ((st = score_items(m, tr, demos, n_demos, hist, n_hist, n_items, scores, &n_tok)) != LRGD_OK) goto done;
    printf("prompt: %d demonstrations + query, %d tokens\n", n_demos, n_tok);
    print_top(ds, scores, n_items, hist, n_hist);
    if (target < 0) { /* no target given: the top-ranked item */
        target = -1;
        for (int i = 0; i < n_items; i++) {
            int in_hist = 0;
            for (int j = 0; j < n_hist && !in_hist; j++) in_hist = hist[j] == i;
            if (!in_hist && (target < 0 || scores[i] > scores[target])) target = i;
        }
    }
    printf("target %s rank %d\n", lrgd_dataset_item_name(ds, target),
           (int)lrgd_rank_full(scores, n_items, target, hist, n_hist));

    /* Effect_D of each demonstration toward the target */
    double eff[MAX_DEMOS], logp0 = 0;
    int len[MAX_DEMOS];
    if ((st = effects(e, demos, n_demos, hist, n_hist, target, eff, len, &logp0)) != LRGD_OK) goto done;
    printf("log p(target) zero-shot %.6f\n", logp0);
    for (int d = 0; d < n_demos; d++)
        printf("effect demo %d%s%s tokens %d Effect_D %.9g per_token %.9g\n", d + 1, du[d] >= 0 ? " user " : "",
               du[d] >= 0 ? lrgd_dataset_user_name(ds, du[d]) : "", len[d], eff[d], eff[d] / len[d]);

done:
    if (st != LRGD_OK) rc = fail(st);
    free(buf);
    free(scores);
    lrgd_effect_free(e);
    lrgd_textrec_free(tr);
    lrgd_tokenizer_free(tok);
    lrgd_demo_index_free(ix);
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
    lrgd_model_free(m);
    return rc;
}
