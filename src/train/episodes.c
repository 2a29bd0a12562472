/* Demonstrations and ICL episodes.
 *
 * The demonstration pool at a split step is every user with at least two
 * items that the step lets methods learn from (lrgd_split_train_items): user
 * v's demonstration is (its training items but the last, capped to the most
 * recent demo_hist; then its last training item as the answer). Nothing held
 * out at the step can enter: the pool reads only training prefixes.
 *
 * Retrieval: a recency-weighted overlap. With a(i) the age of item i in a
 * sequence (0 for the most recent, its latest occurrence counting), the
 * similarity of a query history Q and pool user v with demonstration history
 * H_v (its training items but the answer) is
 *     sim(Q, v) = sum over i in Q n H_v of LRGD_DEMO_DECAY^(a_Q(i) + a_H(i)),
 * so users whose recent past matches the query's recent past come first:
 * their answers then tend to be what follows the query's last items (on
 * Beauty, 3 such demonstrations contain the test item as an answer about 3x
 * as often as the 3 users nearest by plain cosine of item sets). An inverted
 * index item -> (pool user, weight) makes one query cost the summed length
 * of the posting lists of its items, not a pass over all users. Ties go to
 * the smaller user id.
 *
 * Episode layout (the same as lrgd_prompt_build in lrgd/prompt.h):
 *   BOS | d_1 .. d_p ANS y_d SEP | ... | q_1 .. q_c ANS
 * Targets (training): every query history row predicts the next history
 * item, the final ANS predicts the query's target, and each demonstration's
 * ANS predicts its answer. */
#include "train/train_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct lrgd_demo_index {
    const lrgd_split *sp;
    int step, n_users, n_items, demo_hist;
    int n_pool;
    int32_t *pool;     /* [n_pool] ascending user ids */
    int64_t *post_off; /* [n_items + 1] */
    int32_t *post;     /* pool users whose demonstration history holds the item, ascending */
    float *post_w;     /* DECAY^(age of the item in that history) */
    float *decay_pow;  /* [max_age + 1] */
    int max_age;
};

/* (item, age) pairs of a sequence, reduced to one per item with its
 * smallest age, sorted by item. */
typedef struct item_age { int32_t item, age; } item_age;

static int cmp_item_age(const void *a, const void *b)
{
    const item_age *x = a, *y = b;
    if (x->item != y->item) return (x->item > y->item) - (x->item < y->item);
    return (x->age > y->age) - (x->age < y->age);
}

static int recent_items(const int32_t *seq, int n, item_age *out)
{
    for (int k = 0; k < n; k++) out[k] = (item_age){seq[k], n - 1 - k};
    qsort(out, (size_t)n, sizeof *out, cmp_item_age);
    int m = 0;
    for (int k = 0; k < n; k++)
        if (m == 0 || out[k].item != out[m - 1].item) out[m++] = out[k];
    return m;
}

static float decay_w(const lrgd_demo_index *ix, int age) { return ix->decay_pow[age < ix->max_age ? age : ix->max_age]; }

void lrgd_demo_index_free(lrgd_demo_index *ix)
{
    if (!ix) return;
    free(ix->pool);
    free(ix->post_off);
    free(ix->post);
    free(ix->post_w);
    free(ix->decay_pow);
    free(ix);
}

lrgd_status lrgd_demo_index_new(const lrgd_split *sp, int step, int demo_hist, lrgd_demo_index **out)
{
    *out = NULL;
    if (step < 0 || step >= lrgd_split_n_steps(sp))
        return lrgd_fail(LRGD_E_INVALID, "demonstration index: step %d outside 0..%d", step, lrgd_split_n_steps(sp) - 1);
    if (demo_hist < 1) return lrgd_fail(LRGD_E_INVALID, "demonstration index: demo_hist %d < 1", demo_hist);
    const lrgd_dataset *ds = lrgd_split_dataset(sp);
    lrgd_demo_index *ix = calloc(1, sizeof *ix);
    if (!ix) return lrgd_fail(LRGD_E_NOMEM, "out of memory");
    ix->sp = sp;
    ix->step = step;
    ix->demo_hist = demo_hist;
    ix->n_users = lrgd_dataset_n_users(ds);
    ix->n_items = lrgd_dataset_n_items(ds);
    ix->max_age = 256; /* DECAY^256 is ~1e-40: older items weigh as much as the 256th */
    ix->pool = malloc((size_t)ix->n_users * sizeof *ix->pool);
    ix->post_off = calloc((size_t)ix->n_items + 1, sizeof *ix->post_off);
    ix->decay_pow = malloc((size_t)(ix->max_age + 1) * sizeof *ix->decay_pow);
    item_age *buf = NULL;
    int max_len = 0;
    lrgd_status st = LRGD_OK;
    if (!ix->pool || !ix->post_off || !ix->decay_pow) st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    for (int a = 0; st == LRGD_OK && a <= ix->max_age; a++) ix->decay_pow[a] = (float)pow(LRGD_DEMO_DECAY, a);
    for (int u = 0; st == LRGD_OK && u < ix->n_users; u++) {
        const int32_t *it;
        int len;
        lrgd_split_train_items(sp, step, u, &it, &len);
        if (len >= 2) ix->pool[ix->n_pool++] = u;
        if (len > max_len) max_len = len;
    }
    if (st == LRGD_OK && !(buf = malloc((size_t)(max_len > 0 ? max_len : 1) * sizeof *buf)))
        st = lrgd_fail(LRGD_E_NOMEM, "out of memory");
    /* two passes: count postings, then fill them (users ascending) */
    for (int pass = 0; st == LRGD_OK && pass < 2; pass++) {
        int64_t *fill = NULL;
        if (pass == 1) {
            for (int i = 0; i < ix->n_items; i++) ix->post_off[i + 1] += ix->post_off[i];
            size_t np = (size_t)(ix->post_off[ix->n_items] ? ix->post_off[ix->n_items] : 1);
            ix->post = malloc(np * sizeof *ix->post);
            ix->post_w = malloc(np * sizeof *ix->post_w);
            fill = malloc((size_t)ix->n_items * sizeof *fill);
            if (!ix->post || !ix->post_w || !fill) { free(fill); st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); break; }
            memcpy(fill, ix->post_off, (size_t)ix->n_items * sizeof *fill);
        }
        for (int k = 0; k < ix->n_pool; k++) {
            int u = ix->pool[k];
            const int32_t *it;
            int len;
            lrgd_split_train_items(sp, step, u, &it, &len);
            int m = recent_items(it, len - 1, buf); /* the demonstration history: all but the answer */
            for (int i = 0; i < m; i++) {
                if (pass == 0) ix->post_off[buf[i].item + 1]++;
                else {
                    int64_t q = fill[buf[i].item]++;
                    ix->post[q] = u;
                    ix->post_w[q] = decay_w(ix, buf[i].age);
                }
            }
        }
        free(fill);
    }
    free(buf);
    if (st != LRGD_OK) { lrgd_demo_index_free(ix); return st; }
    *out = ix;
    return LRGD_OK;
}

int lrgd_demo_index_n_pool(const lrgd_demo_index *ix) { return ix->n_pool; }
const int32_t *lrgd_demo_index_pool(const lrgd_demo_index *ix) { return ix->pool; }
int lrgd_demo_index_step(const lrgd_demo_index *ix) { return ix->step; }

lrgd_status lrgd_demo_index_demo(const lrgd_demo_index *ix, int v, lrgd_demo *d, int *hist_off)
{
    const int32_t *it;
    int len;
    if (v < 0 || v >= ix->n_users) return lrgd_fail(LRGD_E_INVALID, "demonstration: user %d outside 0..%d", v, ix->n_users - 1);
    lrgd_split_train_items(ix->sp, ix->step, v, &it, &len);
    if (len < 2) return lrgd_fail(LRGD_E_INVALID, "demonstration: user %d has %d training items (needs 2)", v, len);
    int nh = len - 1 < ix->demo_hist ? len - 1 : ix->demo_hist;
    d->hist = it + (len - 1 - nh);
    d->n_hist = nh;
    d->next = it[len - 1];
    if (hist_off) *hist_off = len - 1 - nh;
    return LRGD_OK;
}

/* min-heap on (sim, -user): the root is the worst kept candidate */
static int worse(float sa, int ua, float sb, int ub) { return sa < sb || (sa == sb && ua > ub); }

static void heap_push(float *hs, int32_t *hu, int *n, int k, float s, int32_t u)
{
    int i;
    if (*n < k) {
        i = (*n)++;
        while (i > 0) {
            int p = (i - 1) / 2;
            if (!worse(s, u, hs[p], hu[p])) break;
            hs[i] = hs[p]; hu[i] = hu[p]; i = p;
        }
        hs[i] = s; hu[i] = u;
        return;
    }
    if (!worse(hs[0], hu[0], s, u)) return; /* not better than the worst kept */
    i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        float ms = s;
        int32_t mu = u;
        if (l < *n && worse(hs[l], hu[l], ms, mu)) { m = l; ms = hs[l]; mu = hu[l]; }
        if (r < *n && worse(hs[r], hu[r], ms, mu)) { m = r; }
        if (m == i) break;
        hs[i] = hs[m]; hu[i] = hu[m]; i = m;
    }
    hs[i] = s; hu[i] = u;
}

lrgd_status lrgd_demo_index_similar(const lrgd_demo_index *ix, const int32_t *hist, int n_hist, int exclude, int k,
                                    int32_t *users, float *sims, int *n_out)
{
    *n_out = 0;
    if (k <= 0 || n_hist <= 0) return LRGD_OK;
    item_age *q = malloc((size_t)n_hist * sizeof *q);
    float *acc = calloc((size_t)ix->n_users, sizeof *acc);
    int32_t *touched = NULL;
    float *hs = malloc((size_t)k * sizeof *hs);
    int32_t *hu = malloc((size_t)k * sizeof *hu);
    lrgd_status st = LRGD_OK;
    if (!q || !acc || !hs || !hu) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); goto done; }
    for (int i = 0; i < n_hist; i++)
        if (hist[i] < 0 || hist[i] >= ix->n_items) {
            st = lrgd_fail(LRGD_E_INVALID, "similar users: item %d outside 0..%d", hist[i], ix->n_items - 1);
            goto done;
        }
    int nq = recent_items(hist, n_hist, q);
    int64_t total = 0;
    for (int i = 0; i < nq; i++) total += ix->post_off[q[i].item + 1] - ix->post_off[q[i].item];
    touched = malloc((size_t)(total > 0 ? total : 1) * sizeof *touched);
    if (!touched) { st = lrgd_fail(LRGD_E_NOMEM, "out of memory"); goto done; }
    int nt = 0;
    for (int i = 0; i < nq; i++) { /* items ascending, postings ascending: a fixed order of the sums */
        float wq = decay_w(ix, q[i].age);
        for (int64_t p = ix->post_off[q[i].item]; p < ix->post_off[q[i].item + 1]; p++) {
            int32_t v = ix->post[p];
            if (acc[v] == 0) touched[nt++] = v;
            acc[v] += wq * ix->post_w[p];
        }
    }
    int nh = 0;
    for (int i = 0; i < nt; i++) {
        int32_t v = touched[i];
        if (v == exclude) continue;
        heap_push(hs, hu, &nh, k, acc[v], v);
    }
    /* pop the heap into descending order */
    for (int m = nh; m > 0; m--) {
        users[m - 1] = hu[0];
        if (sims) sims[m - 1] = hs[0];
        float ls = hs[m - 1];
        int32_t lu = hu[m - 1];
        int n = m - 1, i = 0;
        for (;;) {
            int l = 2 * i + 1, r = l + 1, s = i;
            float ss = ls;
            int32_t su = lu;
            if (l < n && worse(hs[l], hu[l], ss, su)) { s = l; ss = hs[l]; su = hu[l]; }
            if (r < n && worse(hs[r], hu[r], ss, su)) { s = r; }
            if (s == i) break;
            hs[i] = hs[s]; hu[i] = hu[s]; i = s;
        }
        if (n > 0) { hs[i] = ls; hu[i] = lu; }
    }
    *n_out = nh;
done:
    free(q); free(acc); free(touched); free(hs); free(hu);
    return st;
}

/* ---- packed episodes ------------------------------------------------------------ */

void tm_ep_reset(tm_ep *e)
{
    e->n_seq = 0;
    e->n_tok = 0;
    if (e->off) e->off[0] = 0;
}

void tm_ep_free(tm_ep *e)
{
    free(e->off); free(e->tok); free(e->tgt); free(e->src_user); free(e->src_pos); free(e->pos); free(e->vis);
    free(e->tgt_user); free(e->tgt_pos); free(e->ans_row); free(e->n_demos); free(e->query_user);
    memset(e, 0, sizeof *e);
}

static lrgd_status ep_grow(tm_ep *e, int add_tok)
{
    if (e->n_seq + 1 >= e->cap_seq) {
        int nc = e->cap_seq ? 2 * e->cap_seq : 256;
        int *o = realloc(e->off, (size_t)(nc + 1) * sizeof(int)), *a = realloc(e->ans_row, (size_t)nc * sizeof(int)),
            *d = realloc(e->n_demos, (size_t)nc * sizeof(int)), *q = realloc(e->query_user, (size_t)nc * sizeof(int));
        if (o) e->off = o;
        if (a) e->ans_row = a;
        if (d) e->n_demos = d;
        if (q) e->query_user = q;
        if (!o || !a || !d || !q) return lrgd_fail(LRGD_E_NOMEM, "episodes: out of memory");
        if (e->cap_seq == 0) e->off[0] = 0;
        e->cap_seq = nc;
    }
    if (e->n_tok + add_tok > e->cap_tok) {
        int nc = e->cap_tok ? e->cap_tok : 4096;
        while (nc < e->n_tok + add_tok) nc *= 2;
        int **arr[9] = {&e->tok, &e->tgt, &e->src_user, &e->src_pos, &e->tgt_user, &e->tgt_pos, &e->pos, &e->vis, NULL};
        for (int i = 0; arr[i]; i++) {
            int *p = realloc(*arr[i], (size_t)nc * sizeof(int));
            if (!p) return lrgd_fail(LRGD_E_NOMEM, "episodes: out of memory");
            *arr[i] = p;
        }
        e->cap_tok = nc;
    }
    return LRGD_OK;
}

static void put(tm_ep *e, int tok, int su, int sp, int tgt, int tu, int tp)
{
    int i = e->n_tok++, r = i - e->off[e->n_seq]; /* row inside the sequence */
    e->pos[i] = r;
    e->vis[i] = r - 1;
    e->tok[i] = tok;
    e->src_user[i] = su;
    e->src_pos[i] = sp;
    e->tgt[i] = tgt;
    e->tgt_user[i] = tu;
    e->tgt_pos[i] = tp;
}

int tm_ep_length(const lrgd_demo_index *ix, int nq, const int32_t *demo_users, int n_demos)
{
    int n = 1 + nq + 1;
    for (int d = 0; d < n_demos; d++) {
        lrgd_demo dm;
        if (lrgd_demo_index_demo(ix, demo_users[d], &dm, NULL) == LRGD_OK) n += dm.n_hist + 3;
    }
    return n;
}

lrgd_status tm_ep_add(tm_ep *e, const lrgd_demo_index *ix, const tm_ep_query *q, const int32_t *demo_users,
                      int n_demos, int max_len, int *n_used)
{
    /* drop demonstrations from the front (the least similar) until it fits */
    int first = 0, n_probes = q->probes && q->target >= 0 && q->n > 1 ? q->n - 1 : 0;
    int need = tm_ep_length(ix, q->n, demo_users, n_demos) + n_probes;
    while (need > max_len && first < n_demos) {
        lrgd_demo dm;
        if (lrgd_demo_index_demo(ix, demo_users[first], &dm, NULL) == LRGD_OK) need -= dm.n_hist + 3;
        first++;
    }
    if (need > max_len)
        return lrgd_fail(LRGD_E_INVALID, "episode of user %d: %d tokens do not fit the context of %d", q->user, need,
                         max_len);
    LRGD_TRY(ep_grow(e, need));
    int T = LRGD_N_SPECIAL, start = e->n_tok;
    put(e, LRGD_TOK_BOS, -1, -1, -1, -1, -1);
    for (int d = first; d < n_demos; d++) {
        lrgd_demo dm;
        int off;
        int v = demo_users[d];
        LRGD_TRY(lrgd_demo_index_demo(ix, v, &dm, &off));
        for (int i = 0; i < dm.n_hist; i++) put(e, T + dm.hist[i], v, off + i, -1, -1, -1);
        int ans_pos = off + dm.n_hist;
        put(e, LRGD_TOK_ANS, -1, -1, q->demo_targets ? T + dm.next : -1, q->demo_targets ? v : -1,
            q->demo_targets ? ans_pos : -1);
        put(e, T + dm.next, v, ans_pos, -1, -1, -1);
        put(e, LRGD_TOK_SEP, -1, -1, -1, -1, -1);
    }
    for (int i = 0; i < q->n; i++) {
        int nxt = q->hist_targets && i + 1 < q->n;
        put(e, T + q->items[i], q->user, q->off + i, nxt ? T + q->items[i + 1] : -1, nxt ? q->user : -1,
            nxt ? q->off + i + 1 : -1);
    }
    put(e, LRGD_TOK_ANS, -1, -1, q->target >= 0 ? T + q->target : -1, q->target >= 0 ? q->user : -1,
        q->target >= 0 ? q->target_pos : -1);
    int ans = e->n_tok - 1;
    /* answer probes: after history item i, an ANS that sees the sequence up to
     * that item (and itself) at the position an ANS would have there, and
     * predicts item i+1; no row sees a probe (tm_forward_ex) */
    for (int i = 0; i < n_probes; i++) {
        int row_i = ans - q->n + i; /* the row of history item i */
        put(e, LRGD_TOK_ANS, -1, -1, T + q->items[i + 1], q->user, q->off + i + 1);
        e->pos[e->n_tok - 1] = row_i - e->off[e->n_seq] + 1;
        e->vis[e->n_tok - 1] = row_i - e->off[e->n_seq];
    }
    int s = e->n_seq++;
    e->off[s + 1] = e->n_tok;
    e->ans_row[s] = ans;
    e->n_demos[s] = n_demos - first;
    e->query_user[s] = q->user;
    (void)start;
    if (n_used) *n_used = n_demos - first;
    return LRGD_OK;
}

/* ---- prompts for scoring ------------------------------------------------------------ */

/* k distinct pool users other than u, uniformly at random (stream: the user) */
int tm_random_demos(const lrgd_demo_index *ix, int u, int k, uint64_t seed, uint64_t salt, int32_t *out)
{
    int np = lrgd_demo_index_n_pool(ix);
    const int32_t *pool = lrgd_demo_index_pool(ix);
    lrgd_rng r;
    lrgd_rng_seed(&r, seed ^ (salt * 0x9E3779B97F4A7C15ull), (uint64_t)u);
    int n = 0, tries = 0;
    while (n < k && tries < 64 * k + 64) {
        tries++;
        int32_t v = pool[lrgd_rng_below(&r, (uint32_t)np)];
        int dup = v == u;
        for (int i = 0; i < n && !dup; i++) dup = out[i] == v;
        if (!dup) out[n++] = v;
    }
    return n;
}

/* The demonstrations of one user's prompt, least similar first (the most
 * similar sits next to the query). */
lrgd_status tm_prompt_demos(const lrgd_demo_index *ix, lrgd_demo_mode mode, int k, uint64_t seed, int u,
                            const int32_t *hist, int n_hist, int32_t *demo, int *n_demo)
{
    *n_demo = 0;
    if (mode == LRGD_DEMOS_NONE || k <= 0) return LRGD_OK;
    if (mode == LRGD_DEMOS_RANDOM) {
        *n_demo = tm_random_demos(ix, u, k, seed, 7, demo);
        return LRGD_OK;
    }
    int n;
    LRGD_TRY(lrgd_demo_index_similar(ix, hist, n_hist, u, k, demo, NULL, &n));
    for (int i = 0; i < n / 2; i++) {
        int32_t x = demo[i];
        demo[i] = demo[n - 1 - i];
        demo[n - 1 - i] = x;
    }
    *n_demo = n;
    return LRGD_OK;
}

lrgd_status tm_ep_add_prompt(tm_ep *e, const lrgd_demo_index *ix, lrgd_demo_mode mode, int k, uint64_t seed, int u,
                             const int32_t *hist, int n_hist, int max_hist, int seq_len)
{
    int32_t demo[256];
    int nd;
    if (k > 256) k = 256;
    LRGD_TRY(tm_prompt_demos(ix, mode, k, seed, u, hist, n_hist, demo, &nd));
    int cap = max_hist < seq_len - 2 ? max_hist : seq_len - 2;
    int nq = n_hist < cap ? n_hist : cap;
    if (nq <= 0) return lrgd_fail(LRGD_E_INVALID, "prompt of user %d: empty history", u);
    tm_ep_query q = {u, hist + (n_hist - nq), nq, n_hist - nq, -1, -1, 0, 0, 0};
    return tm_ep_add(e, ix, &q, demo, nd, seq_len, NULL);
}
