/* The training loop: ICL episodes from the training split, AdamW, validation
 * NDCG@10 per epoch, the best model kept as GGUF, and a training state that
 * lets a killed run resume to the same bytes.
 *
 * Determinism: every random choice is a function of (seed, epoch, user) or
 * (seed, step): the epoch's user order, each episode's demonstrations, the
 * dropout masks. Nothing depends on a stream consumed in time order, so a
 * run resumed from a state saved after any step replays the same steps. */
#include "lrgd/gguf.h"
#include "train/train_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STATE_MAGIC "LRGDTRS1"
#define STATE_VERSION 1u
#define MAX_DEMOS 64

void lrgd_train_opts_init(lrgd_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_layers = 2;
    o->dim = 64;
    o->n_heads = 2;
    o->n_kv_heads = 1;
    o->hidden_dim = 128;
    o->seq_len = 256;
    o->attn = LRGD_ATTN_SOFTMAX;
    o->demos = 3;
    o->max_hist = 50;
    o->demo_hist = 20;
    o->pool = 0;
    o->p_similar = 0.75;
    o->demo_loss = 1;
    o->probes = 1;
    o->epochs = 40;
    o->batch = 128;
    o->dropout = 0.3;
    o->sampled = 2048; /* as good as the full softmax on Beauty, 1.8x faster steps (docs/training.md) */
    lrgd_adamw_opts_init(&o->adamw);
    o->seed = 42;
    o->max_minutes = 0;
    o->patience = 0;
    o->val_demos = LRGD_DEMOS_SIMILAR;
    o->val_k = -1;
    o->save_every_s = 60;
    o->fault_nan_step = -1;
    o->halt_after_step = -1;
}

void lrgd_train_result_free(lrgd_train_result *r)
{
    if (!r) return;
    free(r->log);
    memset(r, 0, sizeof *r);
}

/* ---- the training set ------------------------------------------------------------ */

typedef struct trainer {
    const lrgd_split *sp;
    const lrgd_train_opts *o;
    lrgd_tmodel *t;
    lrgd_demo_index *ix;
    int n_users;     /* users with an episode (>= 2 training items) */
    int32_t *users;  /* [n_users] */
    int pool_k;      /* similar demonstrations are drawn from the top pool_k */
    int32_t *nbr;    /* [dataset users][pool_k] similar users, best first; -1 padding */
    tm_ep ep;
    int64_t steps_per_epoch, total_steps;
    uint64_t fingerprint;
    /* progress of the run (saved in the state) */
    int64_t epoch, batch, step;
    double best_ndcg;
    int best_epoch, bad_epochs;
    double elapsed;   /* training seconds over all sessions */
    int64_t tokens;   /* tokens processed over all sessions */
    lrgd_train_epoch *log;
    int n_log;
    char *state_path;
} trainer;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Everything that changes the computation; a state file from another
 * configuration or dataset is refused instead of silently mixed in. */
static uint64_t fingerprint(const trainer *tr)
{
    const lrgd_train_opts *o = tr->o;
    uint64_t h = 0xcbf29ce484222325ull;
    int iv[] = {o->n_layers, o->dim, o->n_heads, o->n_kv_heads, o->hidden_dim, o->seq_len, (int)o->attn, o->demos,
                o->max_hist, o->demo_hist, tr->pool_k, o->demo_loss, o->epochs, o->batch, (int)o->val_demos,
                o->val_k, o->sampled, o->probes};
    double dv[] = {o->p_similar, o->dropout, o->adamw.lr, o->adamw.beta1, o->adamw.beta2, o->adamw.eps,
                   o->adamw.weight_decay, o->adamw.clip, o->adamw.min_lr_ratio};
    h = fnv(h, iv, sizeof iv);
    h = fnv(h, dv, sizeof dv);
    h = fnv(h, &o->adamw.warmup_steps, sizeof o->adamw.warmup_steps);
    h = fnv(h, &o->seed, sizeof o->seed);
    const lrgd_dataset *ds = lrgd_split_dataset(tr->sp);
    int nu = lrgd_dataset_n_users(ds);
    for (int u = 0; u < nu; u++) {
        const int32_t *it;
        int len;
        lrgd_split_train_items(tr->sp, LRGD_STEP_VALID, u, &it, &len);
        h = fnv(h, &len, sizeof len);
        if (len) h = fnv(h, it, (size_t)len * sizeof *it);
    }
    return h;
}

static lrgd_status build_neighbours(trainer *tr)
{
    const lrgd_dataset *ds = lrgd_split_dataset(tr->sp);
    int nu = lrgd_dataset_n_users(ds), P = tr->pool_k;
    if (P <= 0) return LRGD_OK;
    tr->nbr = malloc((size_t)nu * P * sizeof *tr->nbr);
    if (!tr->nbr) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (size_t i = 0; i < (size_t)nu * P; i++) tr->nbr[i] = -1;
    lrgd_status st = LRGD_OK;
    /* the query of user u's episode is its training items but the last: retrieve with exactly that */
#pragma omp parallel for schedule(dynamic, 64)
    for (int i = 0; i < tr->n_users; i++) {
        int u = tr->users[i], n;
        const int32_t *it;
        int len;
        lrgd_split_train_items(tr->sp, LRGD_STEP_VALID, u, &it, &len);
        lrgd_status s2 = lrgd_demo_index_similar(tr->ix, it, len - 1, u, P, tr->nbr + (size_t)u * P, NULL, &n);
        if (s2 != LRGD_OK) {
#pragma omp critical(lrgd_train_nbr)
            st = s2;
        }
    }
    return st;
}

/* One user's training episode at epoch e. */
static lrgd_status add_episode(trainer *tr, int u, int64_t e)
{
    const lrgd_train_opts *o = tr->o;
    const int32_t *it;
    int len;
    lrgd_split_train_items(tr->sp, LRGD_STEP_VALID, u, &it, &len);
    lrgd_rng r;
    lrgd_rng_seed(&r, o->seed ^ (0xE9150DEull + (uint64_t)e * 0x9E3779B97F4A7C15ull), (uint64_t)u);
    int K = o->demos < MAX_DEMOS ? o->demos : MAX_DEMOS;
    int nd = K > 0 ? (int)lrgd_rng_below(&r, (uint32_t)K + 1) : 0;
    int32_t demo[MAX_DEMOS];
    int n = 0;
    if (nd > 0) {
        const int32_t *nb = tr->nbr ? tr->nbr + (size_t)u * tr->pool_k : NULL;
        int avail = 0;
        while (nb && avail < tr->pool_k && nb[avail] >= 0) avail++;
        if (lrgd_rng_uniform(&r) < o->p_similar && avail > 0) {
            /* nd of the top pool_k, in prompt order: least similar first */
            int pick[MAX_DEMOS], np = 0;
            int want = nd < avail ? nd : avail;
            while (np < want) {
                int j = (int)lrgd_rng_below(&r, (uint32_t)avail), dup = 0;
                for (int z = 0; z < np; z++) dup |= pick[z] == j;
                if (!dup) pick[np++] = j;
            }
            for (int a = 1; a < np; a++) /* descending index = ascending similarity */
                for (int b = a; b > 0 && pick[b] > pick[b - 1]; b--) {
                    int x = pick[b]; pick[b] = pick[b - 1]; pick[b - 1] = x;
                }
            for (int z = 0; z < np; z++) demo[n++] = nb[pick[z]];
        } else
            n = tm_random_demos(tr->ix, u, nd, o->seed, 0x51ull + (uint64_t)e, demo);
    }
    int cap = o->max_hist < o->seq_len - 2 ? o->max_hist : o->seq_len - 2;
    int nq = len - 1 < cap ? len - 1 : cap;
    tm_ep_query q = {u, it + (len - 1 - nq), nq, len - 1 - nq, it[len - 1], len - 1, 1, o->demo_loss, o->probes};
    return tm_ep_add(&tr->ep, tr->ix, &q, demo, n, o->seq_len, NULL);
}

static void epoch_order(const trainer *tr, int64_t e, int32_t *perm)
{
    memcpy(perm, tr->users, (size_t)tr->n_users * sizeof *perm);
    lrgd_rng r;
    lrgd_rng_seed(&r, tr->o->seed ^ 0x0DE2ull, 1000000007ull + (uint64_t)e);
    for (int i = tr->n_users - 1; i > 0; i--) {
        int j = (int)lrgd_rng_below(&r, (uint32_t)i + 1);
        int32_t x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
}

/* ---- the training state file --------------------------------------------------- */

typedef struct state_head {
    char magic[8];
    uint32_t version, pad;
    uint64_t fingerprint, n_params;
    int64_t epoch, batch, step, tokens;
    double best_ndcg, elapsed;
    int32_t best_epoch, bad_epochs, n_log, pad2;
} state_head;

static lrgd_status state_save(trainer *tr)
{
    lrgd_tmodel *t = tr->t;
    LRGD_TRY(tm_adamw_init(t));
    state_head h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, STATE_MAGIC, 8);
    h.version = STATE_VERSION;
    h.fingerprint = tr->fingerprint;
    h.n_params = t->n_params;
    h.epoch = tr->epoch;
    h.batch = tr->batch;
    h.step = tr->step;
    h.tokens = tr->tokens;
    h.best_ndcg = tr->best_ndcg;
    h.elapsed = tr->elapsed;
    h.best_epoch = tr->best_epoch;
    h.bad_epochs = tr->bad_epochs;
    h.n_log = tr->n_log;
    lrgd_afile af;
    LRGD_TRY(lrgd_afile_open(&af, tr->state_path));
    uint64_t sum = 0xcbf29ce484222325ull;
    const void *parts[5] = {&h, t->params, t->m, t->v, tr->log};
    size_t sizes[5] = {sizeof h, t->n_params * sizeof(float), t->n_params * sizeof(float), t->n_params * sizeof(float),
                       (size_t)tr->n_log * sizeof *tr->log};
    int ok = 1;
    for (int i = 0; i < 5 && ok; i++) {
        if (sizes[i] == 0) continue;
        ok = fwrite(parts[i], 1, sizes[i], af.f) == sizes[i];
        sum = fnv(sum, parts[i], sizes[i]);
    }
    ok = ok && fwrite(&sum, sizeof sum, 1, af.f) == 1;
    if (!ok) {
        lrgd_afile_abort(&af);
        return lrgd_fail(LRGD_E_WRITE, "%s: write failed", tr->state_path);
    }
    return lrgd_afile_commit(&af);
}

/* 1: resumed, 0: no state file */
static lrgd_status state_load(trainer *tr, int *resumed)
{
    *resumed = 0;
    struct stat sb;
    if (stat(tr->state_path, &sb) != 0) return LRGD_OK;
    lrgd_mapped f;
    LRGD_TRY(lrgd_map_file(tr->state_path, &f));
    lrgd_tmodel *t = tr->t;
    lrgd_status st = LRGD_OK;
    state_head h;
    size_t np = t->n_params * sizeof(float);
    if (f.size < sizeof h + sizeof(uint64_t) || memcmp(f.data, STATE_MAGIC, 8) != 0) {
        st = lrgd_fail(LRGD_E_FORMAT, "%s: not an lrgd training state (bad magic or truncated)", tr->state_path);
        goto done;
    }
    memcpy(&h, f.data, sizeof h);
    if (h.version != STATE_VERSION) {
        st = lrgd_fail(LRGD_E_FORMAT, "%s: training state version %u, expected %u", tr->state_path, h.version,
                       STATE_VERSION);
        goto done;
    }
    if (h.fingerprint != tr->fingerprint || h.n_params != t->n_params) {
        st = lrgd_fail(LRGD_E_INVALID,
                       "%s: the training state belongs to another configuration or dataset; rerun with the same "
                       "options, or delete it (or pass --no-resume) to start over",
                       tr->state_path);
        goto done;
    }
    if (h.n_log < 0 || h.n_log > 1000000) {
        st = lrgd_fail(LRGD_E_FORMAT, "%s: corrupt epoch log count %d", tr->state_path, h.n_log);
        goto done;
    }
    size_t want = sizeof h + 3 * np + (size_t)h.n_log * sizeof(lrgd_train_epoch) + sizeof(uint64_t);
    if (f.size != want) {
        st = lrgd_fail(LRGD_E_FORMAT, "%s: %zu bytes, expected %zu (truncated?)", tr->state_path, f.size, want);
        goto done;
    }
    uint64_t sum = fnv(0xcbf29ce484222325ull, f.data, want - sizeof(uint64_t)), stored;
    memcpy(&stored, f.data + want - sizeof(uint64_t), sizeof stored);
    if (sum != stored) {
        st = lrgd_fail(LRGD_E_FORMAT, "%s: checksum mismatch (corrupt training state)", tr->state_path);
        goto done;
    }
    /* The checksum catches a torn or corrupt file, not a forged one: the
     * counters index the epoch's user order, so each must be in range. */
    if (h.epoch < 0 || h.epoch > tr->o->epochs || h.batch < 0 || h.batch > tr->steps_per_epoch ||
        h.step < 0 || h.step != h.epoch * tr->steps_per_epoch + h.batch || h.tokens < 0 ||
        h.best_epoch < -1 || h.best_epoch >= h.epoch || h.bad_epochs < 0 || h.bad_epochs > h.epoch ||
        h.n_log > h.epoch || !(h.elapsed >= 0) || !isfinite(h.elapsed) ||
        !(h.best_ndcg == -1 || (h.best_ndcg >= 0 && h.best_ndcg <= 1))) {
        st = lrgd_fail(LRGD_E_FORMAT,
                       "%s: inconsistent training state (epoch %lld, batch %lld, step %lld, best epoch %d, %d logged "
                       "epochs; expected epoch 0..%d, batch 0..%lld, step = epoch x %lld + batch)",
                       tr->state_path, (long long)h.epoch, (long long)h.batch, (long long)h.step, h.best_epoch,
                       h.n_log, tr->o->epochs, (long long)tr->steps_per_epoch, (long long)tr->steps_per_epoch);
        goto done;
    }
    if ((st = tm_adamw_init(t)) != LRGD_OK) goto done;
    const unsigned char *p = f.data + sizeof h;
    memcpy(t->params, p, np);
    memcpy(t->m, p + np, np);
    memcpy(t->v, p + 2 * np, np);
    free(tr->log);
    tr->log = NULL;
    if (h.n_log > 0) {
        tr->log = malloc((size_t)h.n_log * sizeof *tr->log);
        if (!tr->log) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); goto done; }
        memcpy(tr->log, p + 3 * np, (size_t)h.n_log * sizeof *tr->log);
    }
    tr->n_log = h.n_log;
    tr->epoch = h.epoch;
    tr->batch = h.batch;
    tr->step = h.step;
    tr->tokens = h.tokens;
    tr->best_ndcg = h.best_ndcg;
    tr->elapsed = h.elapsed;
    tr->best_epoch = h.best_epoch;
    tr->bad_epochs = h.bad_epochs;
    *resumed = 1;
done:
    lrgd_unmap_file(&f);
    return st;
}

/* ---- validation -------------------------------------------------------------------- */

static lrgd_status validate(trainer *tr, double *ndcg, double *hr)
{
    const lrgd_train_opts *o = tr->o;
    lrgd_model_scorer_opts so;
    lrgd_model_scorer_opts_init(&so);
    so.demos = o->demos > 0 ? o->val_demos : LRGD_DEMOS_NONE;
    so.k = o->val_k >= 0 ? o->val_k : o->demos;
    so.max_hist = o->max_hist;
    so.demo_hist = o->demo_hist;
    so.seed = o->seed;
    lrgd_scorer sc;
    LRGD_TRY(lrgd_scorer_tmodel(tr->sp, LRGD_STEP_VALID, tr->t, &so, &sc));
    lrgd_eval_opts eo;
    lrgd_eval_opts_init(&eo);
    eo.batch = 256;
    eo.label = "validation";
    lrgd_eval_result *res = NULL;
    lrgd_status st = lrgd_evaluate(tr->sp, LRGD_STEP_VALID, &sc, &eo, &res);
    lrgd_scorer_release(&sc);
    if (st != LRGD_OK) return st;
    lrgd_interval iv;
    st = lrgd_metric_summary(LRGD_NDCG10, res->ranks, res->n, &iv);
    *ndcg = iv.mean;
    if (st == LRGD_OK) st = lrgd_metric_summary(LRGD_HR10, res->ranks, res->n, &iv);
    *hr = iv.mean;
    lrgd_eval_result_free(res);
    return st;
}

static const char *layer_name(int l, int n_layers, char *buf, size_t n)
{
    if (l == -1) snprintf(buf, n, "the input embedding");
    else if (l == n_layers) snprintf(buf, n, "the final norm");
    else snprintf(buf, n, "layer %d", l);
    return buf;
}

/* ---- numerical safety ---------------------------------------------------------------- */

/* Scan the residual stream of the last forward pass: the embedding, each
 * layer's output and the final norm, (L + 2) x n_tok x dim floats, a small
 * fraction of a step's work. Returns 1 and the first non-finite value's place
 * (*layer -1: the embedding, 0..L-1: leaving that layer, L: the final norm)
 * or 0 when all are finite. */
int tm_locate_nonfinite(const lrgd_tmodel *t, int *layer, size_t *row, size_t *col)
{
    const tm_acts *a = &t->a;
    int L = t->cfg.n_layers;
    size_t N = (size_t)a->n_tok, D = (size_t)t->cfg.dim;
    for (int l = -1; l <= L; l++) {
        const float *x = l < L ? a->x_in + (size_t)(l + 1) * N * D : a->xf;
        int bad = 0;
        for (size_t i = 0; i < N * D; i++) bad |= !isfinite(x[i]);
        if (!bad) continue;
        size_t i = 0;
        while (isfinite(x[i])) i++;
        *layer = l;
        *row = i / D;
        *col = i % D;
        return 1;
    }
    return 0;
}

/* "layer 1, row 17 (position 5 of sequence 2), column 3" for the error messages. */
static void describe_place(const lrgd_tmodel *t, const lrgd_tbatch *b, int layer, size_t row, size_t col, char *buf,
                           size_t n)
{
    char ln[48];
    int s = 0;
    while (s + 1 < b->n_seq && (size_t)b->seq_off[s + 1] <= row) s++;
    snprintf(buf, n, "%s, row %zu (position %zu of sequence %d), column %zu", layer_name(layer, t->cfg.n_layers, ln, sizeof ln),
             row, row - (size_t)b->seq_off[s], s, col);
}

lrgd_status tm_check_finite(const lrgd_tmodel *t, const lrgd_tbatch *b)
{
    int layer;
    size_t row, col;
    if (!tm_locate_nonfinite(t, &layer, &row, &col)) return LRGD_OK;
    char where[160];
    describe_place(t, b, layer, row, col, where, sizeof where);
    return lrgd_fail(LRGD_E_NUMERIC, "non-finite activation at %s", where);
}

/* ---- the loop ------------------------------------------------------------------------ */

static lrgd_status check_opts(const lrgd_train_opts *o)
{
    if (!o->out || !*o->out) return lrgd_fail(LRGD_E_INVALID, "train: no output path");
    if (o->epochs < 1 || o->batch < 1) return lrgd_fail(LRGD_E_INVALID, "train: epochs and batch must be >= 1");
    if (o->sampled < 0) return lrgd_fail(LRGD_E_INVALID, "train: sampled %d < 0", o->sampled);
    if (o->demos < 0 || o->demos > MAX_DEMOS)
        return lrgd_fail(LRGD_E_INVALID, "train: demos %d outside 0..%d", o->demos, MAX_DEMOS);
    if (o->max_hist < 1 || o->demo_hist < 1) return lrgd_fail(LRGD_E_INVALID, "train: max_hist and demo_hist must be >= 1");
    if (o->seq_len < 4) return lrgd_fail(LRGD_E_INVALID, "train: seq %d too short", o->seq_len);
    if (!(o->dropout >= 0 && o->dropout < 1)) return lrgd_fail(LRGD_E_INVALID, "train: dropout %g outside [0, 1)", o->dropout);
    if (!(o->p_similar >= 0 && o->p_similar <= 1))
        return lrgd_fail(LRGD_E_INVALID, "train: p_similar %g outside [0, 1]", o->p_similar);
    if (!(o->adamw.lr > 0) || !isfinite(o->adamw.lr)) return lrgd_fail(LRGD_E_INVALID, "train: lr must be > 0");
    if (o->dim % o->n_heads != 0)
        return lrgd_fail(LRGD_E_INVALID, "train: dim %d is not divisible by heads %d", o->dim, o->n_heads);
    if (o->n_kv_heads < 1 || o->n_heads % o->n_kv_heads != 0)
        return lrgd_fail(LRGD_E_INVALID, "train: kv-heads %d must divide heads %d", o->n_kv_heads, o->n_heads);
    if ((o->dim / o->n_heads) % 2 != 0)
        return lrgd_fail(LRGD_E_INVALID, "train: head size dim/heads = %d must be even (RoPE)", o->dim / o->n_heads);
    return LRGD_OK;
}

static lrgd_status save_best(trainer *tr)
{
    return lrgd_model_save_gguf(tr->t->view, tr->o->out, LRGD_F32, "lrgd-rec");
}

static void free_trainer(trainer *tr)
{
    lrgd_tmodel_free(tr->t);
    lrgd_demo_index_free(tr->ix);
    free(tr->users);
    free(tr->nbr);
    tm_ep_free(&tr->ep);
    free(tr->log);
    free(tr->state_path);
}

/* The episode machinery: the demonstration index at the validation step,
 * the users with an episode, and their similar-user lists. */
static lrgd_status tr_setup(trainer *tr)
{
    const lrgd_split *sp = tr->sp;
    const lrgd_train_opts *o = tr->o;
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    LRGD_TRY(lrgd_demo_index_new(sp, LRGD_STEP_VALID, o->demo_hist, &tr->ix));
    tr->users = malloc((size_t)lrgd_dataset_n_users(ds) * sizeof *tr->users);
    if (!tr->users) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (int u = 0; u < lrgd_dataset_n_users(ds); u++) {
        const int32_t *it;
        int len;
        lrgd_split_train_items(sp, LRGD_STEP_VALID, u, &it, &len);
        if (len >= 2) tr->users[tr->n_users++] = u;
    }
    if (tr->n_users == 0) return lrgd_fail(LRGD_E_INVALID, "train: no user has 2 training items");
    tr->pool_k = o->demos > 0 ? (o->pool > 0 ? o->pool : 2 * o->demos) : 0;
    return build_neighbours(tr);
}

lrgd_status tm_epoch_episodes(const lrgd_split *sp, const lrgd_train_opts *o, int64_t epoch, tm_ep *out)
{
    trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.sp = sp;
    tr.o = o;
    lrgd_status st = tr_setup(&tr);
    int32_t *perm = st == LRGD_OK ? malloc((size_t)tr.n_users * sizeof *perm) : NULL;
    if (st == LRGD_OK && !perm) st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    if (st == LRGD_OK) {
        epoch_order(&tr, epoch, perm);
        tm_ep_reset(&tr.ep);
        for (int i = 0; i < tr.n_users && st == LRGD_OK; i++) st = add_episode(&tr, perm[i], epoch);
    }
    if (st == LRGD_OK) {
        *out = tr.ep;
        memset(&tr.ep, 0, sizeof tr.ep);
    }
    free(perm);
    free_trainer(&tr);
    return st;
}

/* The run's memory, estimated before anything is allocated (--max-memory),
 * following the layout of tmodel.c: parameters, gradients and AdamW moments,
 * and one block of saved activations that serves both the training batches
 * and validation (the scorer's forward passes of up to 16384 tokens), sized
 * for episodes of the dataset's mean history length (an estimate, not a
 * bound: a batch of unusually long episodes can need more, which the
 * allocator's limit then refuses). Within ~30% of the peak RSS on Beauty. */
static lrgd_status train_plan(const lrgd_train_opts *o, const lrgd_dataset *ds)
{
    double L = o->n_layers, D = o->dim, H = o->n_heads, hd = (double)o->dim / o->n_heads, Q = H * hd,
           KV = o->n_kv_heads * hd, F = o->hidden_dim, I = lrgd_dataset_n_items(ds), V = LRGD_N_SPECIAL + I,
           U = lrgd_dataset_n_users(ds), f = sizeof(float), K = o->demos;
    double mean = U > 0 ? (double)lrgd_dataset_n_interactions(ds) / U : 0;
    double h = mean < o->max_hist ? mean : o->max_hist, dh = mean < o->demo_hist ? mean : o->demo_hist;
    double t_train = 2 + h * (1 + (o->probes ? 1 : 0)) + K * (dh + 2), t_val = 2 + h + K * (dh + 2);
    if (t_train > o->seq_len) t_train = o->seq_len;
    if (t_val > o->seq_len) t_val = o->seq_len;
    double n_params = V * D + L * (2 * D + D * Q + 2 * D * KV + Q * D + 3 * D * F) + D;
    /* floats per token kept by the forward pass (attention: one row of T per head), then the backward scratch */
    double fwd_train = (L + 1) * D + L * (3 * D + 2 + 2 * Q + 2 * KV + 3 * F + H * t_train) + D + 1 + (D > F ? D : F);
    double fwd_val = fwd_train + L * H * (t_val - t_train), bwd = 2 * D + 2 * Q + 2 * KV + 3 * F;
    double n_train = (double)o->batch * t_train, n_val = U * t_val < 16384 + t_val ? U * t_val : 16384 + t_val;
    double acts_train = n_train * (fwd_train + bwd), acts_val = n_val * fwd_val;
    double acts = 1.25 * ((acts_train > acts_val ? acts_train : acts_val) + 512 * I) * f; /* +25%: tmodel.c's slack */
    double pool = K > 0 ? (o->pool > 0 ? o->pool : 2 * K) : 0;
    lrgd_mem_plan p = {0};
    lrgd_mem_plan_add(&p, "weights", n_params * f);
    lrgd_mem_plan_add(&p, "gradients", n_params * f);
    lrgd_mem_plan_add(&p, "AdamW moments", 2 * n_params * f);
    lrgd_mem_plan_add(&p, "activations", acts);
    lrgd_mem_plan_add(&p, "validation scores", (n_val * D + 256 * I) * f);
    lrgd_mem_plan_add(&p, "episodes", (n_train * 12 + U * pool) * sizeof(int));
    lrgd_mem_plan_add(&p, "dataset", (double)lrgd_dataset_n_interactions(ds) * 16 + U * 64 + I * 32);
    return lrgd_mem_plan_check(&p, "training");
}

lrgd_status lrgd_train(const lrgd_split *sp, const lrgd_train_opts *o, lrgd_train_result *res)
{
    memset(res, 0, sizeof *res);
    LRGD_TRY(check_opts(o));
    if (!lrgd_split_is_loo(sp)) return lrgd_fail(LRGD_E_INVALID, "train: needs a leave-one-out split");
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    LRGD_TRY(train_plan(o, ds));
    trainer tr;
    memset(&tr, 0, sizeof tr);
    tr.sp = sp;
    tr.o = o;
    tr.best_ndcg = -1;
    tr.best_epoch = -1;
    lrgd_status st = LRGD_OK;
    int32_t *perm = NULL;
    double t_start = lrgd_now();

    lrgd_config cfg = {0};
    cfg.dim = o->dim;
    cfg.hidden_dim = o->hidden_dim;
    cfg.n_layers = o->n_layers;
    cfg.n_heads = o->n_heads;
    cfg.n_kv_heads = o->n_kv_heads;
    cfg.head_dim = o->dim / o->n_heads;
    cfg.vocab_size = LRGD_N_SPECIAL + lrgd_dataset_n_items(ds);
    cfg.seq_len = o->seq_len;
    cfg.norm_eps = 1e-6f;
    cfg.rope_base = 10000.0f;
    cfg.rope_type = LRGD_ROPE_NORM; /* llama.cpp's "llama" layout */
    cfg.attn = o->attn;
    cfg.tied = 1;
    st = lrgd_tmodel_new(&cfg, o->seed, &tr.t);
    if (st != LRGD_OK) goto out;
    {
        int ni = lrgd_dataset_n_items(ds);
        int64_t *ext = malloc((size_t)ni * sizeof *ext);
        if (!ext) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); goto out; }
        for (int i = 0; i < ni; i++) ext[i] = lrgd_dataset_item_ext(ds, i);
        lrgd_tmodel_set_item_ids(tr.t, ext);
        free(ext);
    }
    lrgd_tmodel_set_dropout(tr.t, (float)o->dropout, o->seed ^ 0xD209ull);
    lrgd_tmodel_set_sampled(tr.t, o->sampled);

    st = tr_setup(&tr);
    if (st != LRGD_OK) goto out;
    tr.steps_per_epoch = (tr.n_users + o->batch - 1) / o->batch;
    tr.total_steps = tr.steps_per_epoch * o->epochs;
    tr.fingerprint = fingerprint(&tr);
    {
        const char *sfx = ".train";
        size_t n = strlen(o->out) + strlen(sfx) + 1;
        tr.state_path = malloc(n);
        if (!tr.state_path) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); goto out; }
        snprintf(tr.state_path, n, "%s%s", o->out, sfx);
    }
    if (!o->no_resume) {
        int resumed;
        st = state_load(&tr, &resumed);
        if (st != LRGD_OK) goto out;
        res->resumed = resumed;
        if (resumed && !lrgd_is_quiet())
            fprintf(stderr, "train: resuming from %s at epoch %lld, step %lld\n", tr.state_path,
                    (long long)tr.epoch + 1, (long long)tr.step);
    }
    res->n_params = (int64_t)tr.t->n_params;
    res->n_episodes = tr.n_users;
    res->steps_per_epoch = tr.steps_per_epoch;

    perm = malloc((size_t)tr.n_users * sizeof *perm);
    if (!perm) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); goto out; }
    lrgd_progress prog;
    lrgd_progress_begin(&prog, "train", "steps", (double)tr.total_steps);
    double sess_t0 = lrgd_now(), last_save = lrgd_now();
    int64_t sess_tokens = 0;
    double sess_step_s = 0;
    int stop = 0;
    while (tr.epoch < o->epochs && !stop) {
        epoch_order(&tr, tr.epoch, perm);
        double ep_loss = 0, ep_t0 = lrgd_now();
        int64_t ep_n = 0, ep_tok = 0;
        for (; tr.batch < tr.steps_per_epoch; tr.batch++) {
            int b0 = (int)(tr.batch * o->batch), b1 = b0 + o->batch < tr.n_users ? b0 + o->batch : tr.n_users;
            tm_ep_reset(&tr.ep);
            for (int i = b0; i < b1 && st == LRGD_OK; i++) st = add_episode(&tr, perm[i], tr.epoch);
            if (st != LRGD_OK) goto out;
            double step_t0 = lrgd_now();
            lrgd_tbatch b = {tr.ep.n_seq, tr.ep.off, tr.ep.tok, NULL, tr.ep.tgt};
            lrgd_tmodel_set_step(tr.t, (uint64_t)tr.step);
            tr.t->fault_layer = tr.step == o->fault_nan_step ? (o->n_layers > 1 ? 1 : 0) : -1;
            lrgd_tmodel_zero_grad(tr.t);
            double loss;
            st = tm_grad_ex(tr.t, &b, tr.ep.pos, tr.ep.vis, 1, &loss, NULL);
            tr.t->fault_layer = -1;
            if (st != LRGD_OK) goto out;
            double gnorm = NAN, lr = 0;
            /* every step: the residual stream of each layer must be finite, even where it does not reach the
             * loss; the optimizer never sees a step that fails this (the parameters stay the last good ones) */
            int bad_layer;
            size_t bad_row, bad_col;
            int bad_act = tm_locate_nonfinite(tr.t, &bad_layer, &bad_row, &bad_col);
            if (isfinite(loss) && !bad_act) {
                st = lrgd_adamw_step(tr.t, &o->adamw, tr.step, tr.total_steps, &gnorm, &lr);
                if (st != LRGD_OK && st != LRGD_E_NUMERIC) goto out;
            }
            if (bad_act || !isfinite(loss) || !isfinite(gnorm)) {
                char where[300], kept[1200];
                if (bad_act) {
                    char place[160];
                    int sq = 0;
                    while (sq + 1 < tr.ep.n_seq && (size_t)tr.ep.off[sq + 1] <= bad_row) sq++;
                    describe_place(tr.t, &b, bad_layer, bad_row, bad_col, place, sizeof place);
                    snprintf(where, sizeof where, "non-finite activation at %s, in the episode of user %s; the loss is %g",
                             place, lrgd_dataset_user_name(ds, tr.ep.query_user[sq]), loss);
                } else if (!isfinite(loss))
                    snprintf(where, sizeof where, "the loss is %g with every activation finite", loss);
                else
                    snprintf(where, sizeof where, "the gradient norm is %g (every activation finite: only in the "
                             "backward pass)", gnorm);
                if (tr.best_epoch >= 0)
                    snprintf(kept, sizeof kept, "the last good checkpoint is kept: %s (epoch %d, validation NDCG@10 "
                             "%.4f) with the training state %s", o->out, tr.best_epoch + 1, tr.best_ndcg, tr.state_path);
                else
                    snprintf(kept, sizeof kept, "no epoch finished yet, so no model was written; the training state "
                             "%s (if any) is the last good one", tr.state_path);
                st = lrgd_fail(LRGD_E_NUMERIC, "training stopped at step %lld (epoch %lld, batch %lld): %s; %s",
                               (long long)tr.step, (long long)tr.epoch + 1, (long long)tr.batch, where, kept);
                goto out;
            }
            tr.step++;
            ep_loss += loss;
            ep_n++;
            ep_tok += tr.ep.n_tok;
            sess_tokens += tr.ep.n_tok;
            tr.tokens += tr.ep.n_tok;
            double now = lrgd_now();
            sess_step_s += now - step_t0;
            char extra[160];
            snprintf(extra, sizeof extra, "epoch %lld/%d loss %.4f lr %.2e %.0f tok/s", (long long)tr.epoch + 1,
                     o->epochs, ep_loss / ep_n, lr, sess_tokens / (sess_step_s + 1e-9));
            lrgd_progress_update(&prog, (double)tr.step, extra);
            if (o->checkpoint_steps > 0 ? tr.step % o->checkpoint_steps == 0
                                        : (o->save_every_s > 0 && now - last_save >= o->save_every_s)) {
                tr.batch++;
                tr.elapsed += now - sess_t0;
                sess_t0 = now;
                st = state_save(&tr);
                tr.batch--;
                if (st != LRGD_OK) goto out;
                last_save = lrgd_now();
            }
            if (tr.step - 1 == o->halt_after_step) {
                /* test hook: end the session here as a kill would (nothing more is saved) */
                st = lrgd_fail(LRGD_E_RUNTIME, "halted after step %lld (test hook)", (long long)(tr.step - 1));
                goto out;
            }
            if (o->max_minutes > 0 && tr.elapsed + (now - sess_t0) > o->max_minutes * 60) {
                stop = 1;
                res->stopped_by_time = 1;
                tr.batch++;
                break;
            }
        }
        if (stop && tr.batch < tr.steps_per_epoch) {
            /* out of time in mid-epoch: the best checkpoint stands; keep the state for a later resume */
            if (tr.best_epoch < 0) {
                st = save_best(&tr);
                if (st != LRGD_OK) goto out;
            }
            tr.elapsed += lrgd_now() - sess_t0;
            sess_t0 = lrgd_now();
            st = state_save(&tr);
            if (st != LRGD_OK) goto out;
            break;
        }
        double train_s = lrgd_now() - ep_t0;
        double ndcg = 0, hr = 0, v0 = lrgd_now();
        st = validate(&tr, &ndcg, &hr);
        if (st != LRGD_OK) goto out;
        lrgd_train_epoch le;
        memset(&le, 0, sizeof le); /* its padding goes into the state file: defined bytes */
        le.epoch = (int)tr.epoch + 1;
        le.loss = ep_n ? ep_loss / ep_n : 0;
        le.val_ndcg10 = ndcg;
        le.val_hr10 = hr;
        le.train_seconds = train_s;
        le.val_seconds = lrgd_now() - v0;
        le.tokens_per_s = ep_tok / (train_s + 1e-9);
        int improved = ndcg > tr.best_ndcg;
        le.best = improved;
        lrgd_train_epoch *nl = realloc(tr.log, (size_t)(tr.n_log + 1) * sizeof *nl);
        if (!nl) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); goto out; }
        tr.log = nl;
        tr.log[tr.n_log++] = le;
        if (improved) {
            tr.best_ndcg = ndcg;
            tr.best_epoch = (int)tr.epoch;
            tr.bad_epochs = 0;
            st = save_best(&tr);
            if (st != LRGD_OK) goto out;
        } else
            tr.bad_epochs++;
        if (!lrgd_is_quiet())
            fprintf(stderr, "%sepoch %d/%d: loss %.4f, %.0f tok/s, validation NDCG@10 %.4f HR@10 %.4f%s (train %.1fs, val %.1fs)\n",
                    prog.tty && prog.drawn ? "\r\033[K" : "", le.epoch, o->epochs, le.loss, le.tokens_per_s, ndcg,
                    hr, improved ? " (best, saved)" : "", train_s, le.val_seconds);
        tr.epoch++;
        tr.batch = 0;
        if (o->patience > 0 && tr.bad_epochs >= o->patience) {
            res->stopped_early = 1;
            stop = 1;
        }
        tr.elapsed += lrgd_now() - sess_t0;
        sess_t0 = lrgd_now();
        st = state_save(&tr);
        if (st != LRGD_OK) goto out;
        last_save = lrgd_now();
        if (o->max_minutes > 0 && tr.elapsed > o->max_minutes * 60) {
            res->stopped_by_time = 1;
            stop = 1;
        }
    }
    lrgd_progress_end(&prog, (double)tr.step, NULL);
    res->epochs_run = (int)tr.epoch;
    res->steps = tr.step;
    res->best_epoch = tr.best_epoch + 1;
    res->best_ndcg10 = tr.best_ndcg;
    res->train_seconds = tr.elapsed;
    res->tokens_per_s = sess_step_s > 0 ? sess_tokens / sess_step_s : 0;
    (void)t_start;
    res->tokens = tr.tokens;
    res->log = tr.log;
    res->n_log = tr.n_log;
    tr.log = NULL;
out:
    free(perm);
    free_trainer(&tr);
    return st;
}
