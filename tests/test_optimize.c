/* The two-stage optimizer on planted data, with a model trained here.
 *
 * Data (lrgd_synth): item groups shared by two taste clusters, each cluster
 * walking its own cycle over the group's shared items and a few private
 * items of its own. A query whose last item a is shared is ambiguous without
 * context: both clusters continue a differently. The right demonstrations
 * are known by construction: from the query's cluster and containing the
 * transition a -> y to its validation item y (planted); distractors come
 * from the sibling cluster (same shared items, other transitions) or from
 * other groups.
 *
 * Model: a small transformer trained here with the trainer's API
 * (lrgd_tmodel_grad + lrgd_adamw_step) on ICL episodes of the training
 * split: short query histories, 0..3 demonstrations, half of them from the
 * query's cluster, so that demonstrations carry the cluster.
 *
 * Checks:
 *  - the planting works for this model: planted demonstrations raise
 *    log p(y) more than distractors (ground truth, forward passes);
 *  - stage 1 picks planted demonstrations over distractors;
 *  - every ablation switch changes the stage-1 objective, monotonically
 *    where the maths says so (lambda, beta);
 *  - stage 2 never lowers the summed objective of the optimized users nor
 *    the held-out metric below stage 1;
 *  - a forced degrading round (fault hook) is detected by the collapse guard
 *    and rolled back: every demonstration reads as after stage 1. */
#include "lrgd/effect.h"
#include "core/core.h"
#include "model_fixtures.h"
#include "test.h"

#include <math.h>

#define QHIST 1 /* query history in the planted prompts and episodes */

typedef struct world {
    lrgd_synth *sy;
    const lrgd_dataset *ds;
    lrgd_split *sp;
    int NU, NI;
} world;

static int train_items(const world *w, int u, const int32_t **it)
{
    int len;
    lrgd_split_train_items(w->sp, LRGD_STEP_VALID, u, it, &len);
    return len;
}

/* a random pool user satisfying want (0: same cluster, 1: another group) */
static int pick_demo_user(const world *w, lrgd_rng *r, int u, int want)
{
    for (int tries = 0; tries < 1000; tries++) {
        int v = (int)lrgd_rng_below(r, (uint32_t)w->NU);
        const int32_t *it;
        if (v == u || train_items(w, v, &it) < 2) continue;
        int same = lrgd_synth_cluster(w->sy, v) == lrgd_synth_cluster(w->sy, u);
        int other = lrgd_synth_group(w->sy, v) != lrgd_synth_group(w->sy, u);
        if ((want == 0 && same) || (want == 1 && other)) return v;
    }
    return -1;
}

static lrgd_tmodel *train_model(const world *w, int steps, double *final_loss)
{
    lrgd_config c = {0};
    c.dim = 32;
    c.hidden_dim = 64;
    c.n_layers = 2;
    c.n_heads = 2;
    c.n_kv_heads = 1;
    c.head_dim = 16;
    c.vocab_size = LRGD_N_SPECIAL + w->NI;
    c.seq_len = 128;
    c.norm_eps = 1e-5f;
    c.rope_base = 10000.0f;
    c.rope_type = LRGD_ROPE_NORM;
    c.attn = LRGD_ATTN_SOFTMAX;
    c.tied = 1;
    lrgd_tmodel *t = NULL;
    if (lrgd_tmodel_new(&c, 1, &t) != LRGD_OK) return NULL;
    mf_set_item_ids(t, w->ds);
    lrgd_adamw_opts ao;
    lrgd_adamw_opts_init(&ao);
    ao.lr = 3e-3;
    ao.warmup_steps = 30;
    enum { B = 32 };
    int *tok = malloc(sizeof(int) * B * 128), *tg = malloc(sizeof(int) * B * 128), off[B + 1];
    lrgd_rng r;
    lrgd_rng_seed(&r, 7, 0);
    double lsum = 0;
    int ln = 0;
    for (int step = 0; step < steps; step++) {
        int n = 0;
        off[0] = 0;
        for (int b = 0; b < B; b++) {
            int u = (int)lrgd_rng_below(&r, (uint32_t)w->NU);
            const int32_t *it;
            int len = train_items(w, u, &it);
            if (len < 2) { b--; continue; }
            int p = 1 + (int)lrgd_rng_below(&r, (uint32_t)(len - 1)), q0 = p - QHIST < 0 ? 0 : p - QHIST;
            tok[n] = LRGD_TOK_BOS;
            tg[n++] = -1;
            int K = (int)lrgd_rng_below(&r, 4);
            for (int k = 0; k < K; k++) {
                int v = pick_demo_user(w, &r, u, lrgd_rng_uniform(&r) < 0.5 ? 0 : 1);
                if (v < 0) continue;
                const int32_t *iv;
                int lv = train_items(w, v, &iv);
                for (int i = 0; i < lv - 1; i++) { tok[n] = LRGD_N_SPECIAL + iv[i]; tg[n++] = -1; }
                tok[n] = LRGD_TOK_ANS; tg[n++] = LRGD_N_SPECIAL + iv[lv - 1];
                tok[n] = LRGD_N_SPECIAL + iv[lv - 1]; tg[n++] = -1;
                tok[n] = LRGD_TOK_SEP; tg[n++] = -1;
            }
            for (int i = q0; i < p; i++) {
                tok[n] = LRGD_N_SPECIAL + it[i];
                tg[n++] = i + 1 < p ? LRGD_N_SPECIAL + it[i + 1] : -1;
            }
            tok[n] = LRGD_TOK_ANS;
            tg[n++] = LRGD_N_SPECIAL + it[p];
            off[b + 1] = n;
        }
        lrgd_tbatch bt = {B, off, tok, NULL, tg};
        double loss, gn, lr;
        lrgd_tmodel_zero_grad(t);
        if (lrgd_tmodel_grad(t, &bt, 0, &loss, NULL) != LRGD_OK ||
            lrgd_adamw_step(t, &ao, step, steps, &gn, &lr) != LRGD_OK) {
            lrgd_tmodel_free(t);
            t = NULL;
            break;
        }
        if (step >= steps - 50) { lsum += loss; ln++; }
    }
    free(tok);
    free(tg);
    *final_loss = ln ? lsum / ln : NAN;
    return t;
}

/* the query users: validation transition a -> y with a shared, and enough planted candidates */
typedef struct qcase {
    int u;
    int32_t a, y;
    int cand[16], n_cand, n_planted; /* planted first */
} qcase;

static int is_planted(const world *w, int u, int v, int32_t a, int32_t y)
{
    const int32_t *it;
    int lv = train_items(w, v, &it);
    if (lv < 2 || lrgd_synth_cluster(w->sy, v) != lrgd_synth_cluster(w->sy, u)) return 0;
    lrgd_demo d = {it, lv - 1, it[lv - 1]};
    return lrgd_synth_has_transition(&d, a, y);
}

static int make_cases(const world *w, qcase *cs, int max_cases)
{
    int n = 0;
    lrgd_rng r;
    lrgd_rng_seed(&r, 11, 0);
    for (int u = 0; u < w->NU && n < max_cases; u += 3) {
        const int32_t *h;
        int nh;
        lrgd_split_history(w->sp, LRGD_STEP_VALID, u, &h, &nh);
        if (nh < 1) continue;
        qcase q = {u, h[nh - 1], lrgd_split_target(w->sp, LRGD_STEP_VALID, u), {0}, 0, 0};
        if (!lrgd_synth_is_shared(w->sy, q.a) || lrgd_synth_next(w->sy, lrgd_synth_cluster(w->sy, u), q.a) != q.y) continue;
        for (int v = 0; v < w->NU && q.n_planted < 2; v++)
            if (v != u && is_planted(w, u, v, q.a, q.y)) q.cand[q.n_cand++] = v, q.n_planted++;
        if (q.n_planted < 2) continue;
        /* distractors: two from the sibling cluster holding a, four from other groups */
        int sib = 0;
        for (int v = 0; v < w->NU && sib < 2; v++) {
            const int32_t *it;
            int lv = train_items(w, v, &it);
            if (v == u || lv < 2 || lrgd_synth_group(w->sy, v) != lrgd_synth_group(w->sy, u) ||
                lrgd_synth_cluster(w->sy, v) == lrgd_synth_cluster(w->sy, u))
                continue;
            int has_a = 0;
            for (int i = 0; i < lv; i++) has_a |= it[i] == q.a;
            if (has_a) q.cand[q.n_cand++] = v, sib++;
        }
        for (int k = 0; k < 4; k++) {
            int v = pick_demo_user(w, &r, u, 1);
            if (v >= 0) q.cand[q.n_cand++] = v;
        }
        cs[n++] = q;
    }
    return n;
}

static void get_demo(const world *w, int v, lrgd_demo *d)
{
    const int32_t *it;
    int lv = train_items(w, v, &it);
    *d = (lrgd_demo){it, lv - 1, it[lv - 1]};
}

int main(void)
{
    double t_start = lrgd_now();
    lrgd_synth_opts so;
    lrgd_synth_opts_init(&so);
    so.private_items = 4;
    so.noise = 0;
    world w = {0};
    CHECK_OK(lrgd_synth_new(&so, &w.sy));
    if (!w.sy) return t_finish("test_optimize");
    w.ds = lrgd_synth_dataset(w.sy);
    CHECK_OK(lrgd_split_loo(w.ds, &w.sp));
    w.NU = lrgd_dataset_n_users(w.ds);
    w.NI = lrgd_dataset_n_items(w.ds);

    double loss;
    /* 3000 steps: with 2000 the model's use of context depended on the training seed and on float
     * rounding (first pick planted 11-22 of 24 over seeds; 18-24 with 3000, 17 seeds tried). Under
     * valgrind a short training exercises the same code; the quality checks below need the full one. */
    lrgd_tmodel *t = train_model(&w, t_size(3000, 60), &loss);
    CHECK(t != NULL);
    if (!t) return t_finish("test_optimize");
    printf("trained %.1fs, final loss %.3f\n", lrgd_now() - t_start, loss);
    lrgd_effect *e = NULL;
    CHECK_OK(lrgd_effect_new(lrgd_tmodel_model(t), &e));
    lrgd_popdist *pop = NULL;
    CHECK_OK(lrgd_popdist_new(w.sp, LRGD_STEP_VALID, &pop));

    qcase cs[24];
    int nc = make_cases(&w, cs, t_size(24, 12)); /* valgrind: fewer cases, the same code */
    CHECK_MSG(nc >= 10, "only %d planted query cases", nc);

    /* the planting works for this model: ground truth, planted vs distractors */
    const lrgd_prompt_vocab *v = lrgd_effect_vocab(e);
    double gp = 0, gd = 0;
    int np = 0, nd = 0;
    for (int i = 0; i < nc; i++) {
        int tok[256], n0 = 0, qt[8], nq;
        const int32_t *h;
        int nh;
        lrgd_split_history(w.sp, LRGD_STEP_VALID, cs[i].u, &h, &nh);
        lrgd_query_tokens(v, h, nh, QHIST, qt, &nq);
        tok[n0++] = v->bos;
        memcpy(tok + n0, qt, sizeof(int) * (size_t)nq);
        double lp0, lp;
        CHECK_OK(lrgd_effect_logp(e, tok, n0 + nq, cs[i].y, &lp0));
        for (int c = 0; c < cs[i].n_cand; c++) {
            lrgd_demo d;
            get_demo(&w, cs[i].cand[c], &d);
            int n = 1, dn;
            lrgd_demo_tokens(v, &d, 20, tok + n, &dn);
            n += dn;
            memcpy(tok + n, qt, sizeof(int) * (size_t)nq);
            CHECK_OK(lrgd_effect_logp(e, tok, n + nq, cs[i].y, &lp));
            if (c < cs[i].n_planted) { gp += lp - lp0; np++; }
            else { gd += lp - lp0; nd++; }
        }
    }
    gp /= np;
    gd /= nd;
    printf("ground truth dlogP: planted %+.3f, distractors %+.3f\n", gp, gd);
    if (t_full())
        CHECK_MSG(gp > gd + 0.2, "planted demonstrations do not help this model more than distractors (%.3f vs %.3f)", gp,
              gd);

    /* stage 1 picks the planted demonstrations: with the defaults (robust, regularized) and plain */
    for (int variant = 0; variant < 2; variant++) {
        lrgd_opt_opts o;
        lrgd_opt_opts_init(&o);
        o.k = 2;
        o.max_hist = QHIST;
        o.all_rows = 1;
        if (variant == 1) o.use_perturb = 0, o.use_reg = 0;
        int picked = 0, picks = 0, first_planted = 0, any_planted = 0;
        for (int i = 0; i < nc; i++) {
            lrgd_demo cand[16];
            for (int c = 0; c < cs[i].n_cand; c++) get_demo(&w, cs[i].cand[c], &cand[c]);
            const int32_t *h;
            int nh, chosen[4], n_ch = 0;
            double obj;
            lrgd_split_history(w.sp, LRGD_STEP_VALID, cs[i].u, &h, &nh);
            CHECK_OK(lrgd_stage1(e, cand, cs[i].n_cand, h, nh, cs[i].y, cs[i].u, pop, &o, chosen, &n_ch, &obj));
            CHECK(n_ch == 2);
            int anyp = 0;
            for (int j = 0; j < n_ch; j++) picked += chosen[j] < cs[i].n_planted, anyp |= chosen[j] < cs[i].n_planted;
            picks += n_ch;
            any_planted += anyp;
            /* the first pick sits next to the query: the last in prompt order */
            if (n_ch > 0) first_planted += chosen[n_ch - 1] < cs[i].n_planted;
        }
        /* chance (2 planted among 8, k = 2): some planted pick 13/28 = 0.46, first pick 0.25 */
        printf("stage 1 (%s): %d of %d picks planted; first pick planted for %d of %d users, a planted pick for %d\n",
               variant ? "plain Effect_D" : "defaults", picked, picks, first_planted, nc, any_planted);
        if (t_full()) CHECK_MSG(any_planted >= 0.75 * nc, "stage 1 (%d): a planted pick for only %d of %d users", variant,
                  any_planted, nc);
        if (t_full()) CHECK_MSG(first_planted >= 0.5 * nc, "stage 1 (%d): first pick planted for only %d of %d users", variant,
                  first_planted, nc);
    }

    /* every ablation switch changes the objective; lambda and beta move it monotonically */
    {
        const qcase *q = &cs[0];
        lrgd_demo set[3];
        for (int j = 0; j < 3; j++) get_demo(&w, q->cand[j == 2 ? 2 : j], &set[j]);
        const int32_t *h;
        int nh;
        lrgd_split_history(w.sp, LRGD_STEP_VALID, q->u, &h, &nh);
        lrgd_opt_opts o;
        lrgd_opt_opts_init(&o);
        o.max_hist = QHIST;
        double full, nopert, noreg, nolam, nomu, l1, l2, b0, b2;
        CHECK_OK(lrgd_stage1_objective(e, set, 3, h, nh, q->y, q->u, pop, &o, &full));
        lrgd_opt_opts x = o;
        x.use_perturb = 0;
        CHECK_OK(lrgd_stage1_objective(e, set, 3, h, nh, q->y, q->u, pop, &x, &nopert));
        x = o;
        x.use_reg = 0;
        CHECK_OK(lrgd_stage1_objective(e, set, 3, h, nh, q->y, q->u, pop, &x, &noreg));
        x = o;
        x.lambda = 0;
        CHECK_OK(lrgd_stage1_objective(e, set, 3, h, nh, q->y, q->u, pop, &x, &nolam));
        x = o;
        x.mu = 0;
        CHECK_OK(lrgd_stage1_objective(e, set, 3, h, nh, q->y, q->u, pop, &x, &nomu));
        x = o;
        x.lambda = 1;
        CHECK_OK(lrgd_stage1_objective(e, set, 3, h, nh, q->y, q->u, pop, &x, &l1));
        x.lambda = 4;
        CHECK_OK(lrgd_stage1_objective(e, set, 3, h, nh, q->y, q->u, pop, &x, &l2));
        x = o;
        x.beta = 0;
        CHECK_OK(lrgd_stage1_objective(e, set, 3, h, nh, q->y, q->u, pop, &x, &b0));
        x.beta = 2;
        CHECK_OK(lrgd_stage1_objective(e, set, 3, h, nh, q->y, q->u, pop, &x, &b2));
        printf("objective: full %.5f, no perturbation %.5f, no regularizer %.5f, lambda 0 %.5f, mu 0 %.5f\n", full,
               nopert, noreg, nolam, nomu);
        CHECK(fabs(full - nopert) > 1e-9);
        CHECK(fabs(full - noreg) > 1e-9);
        CHECK(fabs(full - nolam) > 1e-9);
        CHECK(fabs(full - nomu) > 1e-9);
        /* the trust region is >= 0 and grows with lambda; the std penalty with beta */
        CHECK(nolam > full && full > l1 && l1 > l2);
        CHECK(b0 > full && full > b2);
        /* the set's objective is order-dependent only through the prompt; the same set twice gives the same value */
        double again;
        CHECK_OK(lrgd_stage1_objective(e, set, 3, h, nh, q->y, q->u, pop, &o, &again));
        CHECK(again == full);
    }

    /* stage 2 and the collapse guard: every user chooses from one shared pool, so the held-out users'
     * demonstrations are the optimized users' too. The held-out users are planted cases as well (their
     * last item is ambiguous without the right demonstrations), so that scrambled demonstrations hurt
     * them whatever the trained model's rounding: users who need no context would not show it. */
    {
        int32_t users[6], hold[6], pool[36];
        int nu = 0, nh = 0, np2 = 0;
        for (int i = 0; i < nc && nu < 6; i++) users[nu++] = cs[i].u;
        for (int i = nu; i < nc && nh < 6; i++) hold[nh++] = cs[i].u;
        /* every user's planted candidates first (a held-out user without them in the pool would sit
         * near zero-shot, where scrambling cannot hurt), then each user's first distractor */
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < nu + nh; i++)
                for (int c = pass ? cs[i].n_planted : 0; c < (pass ? cs[i].n_planted + 1 : cs[i].n_planted) &&
                                                         c < cs[i].n_cand && np2 < 36; c++) {
                    int dup = 0;
                    for (int j = 0; j < np2; j++) dup |= pool[j] == cs[i].cand[c];
                    if (!dup) pool[np2++] = cs[i].cand[c];
                }
        lrgd_opt_opts o;
        lrgd_opt_opts_init(&o);
        o.k = 2;
        o.max_hist = QHIST;
        o.all_rows = 1;
        o.rounds = 2;
        o.verify = 3;
        o.n_perturb = 4;
        o.guard_logp = 1;
        lrgd_opt_result *R = NULL;
        CHECK_OK(lrgd_optimize(t, w.sp, users, nu, hold, nh, pool, np2, &o, &R));
        if (R) {
            double j1 = 0, j2 = 0;
            for (int i = 0; i < R->n; i++) j1 += R->users[i].j_stage1, j2 += R->users[i].j_stage2;
            printf("stage 2: objective %.4f -> %.4f, held-out log p %.4f -> %.4f, %d edits, rolled back %d\n", j1, j2,
                   R->hold_stage1, R->hold_final, R->edits_accepted, R->rolled_back);
            CHECK(j2 >= j1 - 1e-9);
            CHECK(R->hold_final >= R->hold_stage1 - 1e-12);
            CHECK(R->n_rounds >= 1);
            lrgd_opt_result_free(R);
        }
        /* a forced degrading round: scrambled demonstrations, accepted without checks */
        o.fault = 1;
        R = NULL;
        CHECK_OK(lrgd_optimize(t, w.sp, users, nu, hold, nh, pool, np2, &o, &R));
        if (R && t_full()) { /* a model trained briefly (valgrind) may not mind scrambled demonstrations */
            printf("forced round: held-out log p %.4f -> %.4f after round 1, rolled back %d, final %.4f\n",
                   R->hold_stage1, R->n_rounds ? R->hold_trace[0] : NAN, R->rolled_back, R->hold_final);
            CHECK(R->n_rounds == 1 && R->hold_trace[0] < R->hold_stage1);
            CHECK(R->rolled_back == 1 && R->edits_rolled_back > 0 && R->edits_accepted == 0);
            CHECK(R->hold_final == R->hold_stage1);
            /* every demonstration reads as after stage 1 */
            int same = 1;
            for (int i = 0; i < nu + nh; i++) {
                int u = i < nu ? users[i] : hold[i - nu];
                CHECK(lrgd_selection_count(R->stage1, u) == lrgd_selection_count(R->stage2, u));
                for (int j = 0; j < lrgd_selection_count(R->stage1, u); j++) {
                    lrgd_demo a, b;
                    lrgd_selection_get(R->stage1, u, j, &a, NULL);
                    lrgd_selection_get(R->stage2, u, j, &b, NULL);
                    same &= a.n_hist == b.n_hist && a.next == b.next &&
                            !memcmp(a.hist, b.hist, sizeof(int32_t) * (size_t)a.n_hist);
                }
            }
            CHECK(same);
            for (int i = 0; i < R->n; i++) CHECK(R->users[i].edits == 0 && R->users[i].logp_stage2 == R->users[i].logp_stage1);
        }
        lrgd_opt_result_free(R);
        /* with the guard off, the same fault stays: the switch is real */
        R = NULL;
        CHECK_OK(lrgd_optimize(t, w.sp, users, nu, NULL, 0, pool, np2, &o, &R));
        if (R) {
            int edited = 0;
            for (int i = 0; i < R->n; i++) edited += R->users[i].edits;
            CHECK(R->rolled_back == 0 && edited > 0);
            lrgd_opt_result_free(R);
        }
    }

    printf("total %.1fs\n", lrgd_now() - t_start);
    lrgd_popdist_free(pop);
    lrgd_effect_free(e);
    lrgd_tmodel_free(t);
    lrgd_split_free(w.sp);
    lrgd_synth_free(w.sy);
    return t_finish("test_optimize");
}
