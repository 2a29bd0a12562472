/* Splits: leave-one-out and replay pinned on hand-made sequences, and a
 * proof that no step leaks a held-out item into training data, histories or
 * demonstration pools. */
#include "core/core.h"
#include "lrgd/data.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static void range_is(const int32_t *it, int len, const int32_t *want, int n, const char *what)
{
    CHECK_MSG(len == n, "%s: length %d, want %d", what, len, n);
    for (int k = 0; k < n && k < len; k++) CHECK_MSG(it[k] == want[k], "%s[%d] = %d, want %d", what, k, it[k], want[k]);
}

/* u0: 10 11 12 13 14   u1: 20 21   u2: 30 31 32 */
static lrgd_dataset *hand_made(void)
{
    int64_t off[] = {0, 5, 7, 10};
    int32_t it[] = {10, 11, 12, 13, 14, 20, 21, 30, 31, 32};
    lrgd_dataset *ds = NULL;
    CHECK_OK(lrgd_dataset_from_sequences(3, off, it, 40, &ds));
    return ds;
}

static void test_loo(void)
{
    lrgd_dataset *ds = hand_made();
    if (!ds) return;
    lrgd_split *sp = NULL;
    CHECK_OK(lrgd_split_loo(ds, &sp));
    if (!sp) { lrgd_dataset_free(ds); return; }
    const int32_t *it;
    int len;
    CHECK(lrgd_split_is_loo(sp) && lrgd_split_n_steps(sp) == 2);
    /* u1 has 2 < 3 interactions: skipped. */
    CHECK(lrgd_split_n_users(sp) == 2 && lrgd_split_n_skipped(sp) == 1);
    CHECK(lrgd_split_users(sp)[0] == 0 && lrgd_split_users(sp)[1] == 2);
    CHECK(lrgd_split_has_user(sp, 0) && !lrgd_split_has_user(sp, 1) && lrgd_split_has_user(sp, 2));
    CHECK(!lrgd_split_has_user(sp, 3) && !lrgd_split_has_user(sp, -1));

    /* Validation step: train = all but the last two, target = second last. */
    lrgd_split_history(sp, LRGD_STEP_VALID, 0, &it, &len);
    range_is(it, len, (int32_t[]){10, 11, 12}, 3, "u0 valid history");
    lrgd_split_train_items(sp, LRGD_STEP_VALID, 0, &it, &len);
    range_is(it, len, (int32_t[]){10, 11, 12}, 3, "u0 valid train");
    CHECK(lrgd_split_target(sp, LRGD_STEP_VALID, 0) == 13);
    lrgd_split_history(sp, LRGD_STEP_VALID, 2, &it, &len);
    range_is(it, len, (int32_t[]){30}, 1, "u2 valid history");
    CHECK(lrgd_split_target(sp, LRGD_STEP_VALID, 2) == 31);

    /* Test step: input = all but the last (the validation item is input),
     * target = the last. */
    lrgd_split_history(sp, LRGD_STEP_TEST, 0, &it, &len);
    range_is(it, len, (int32_t[]){10, 11, 12, 13}, 4, "u0 test history");
    CHECK(lrgd_split_target(sp, LRGD_STEP_TEST, 0) == 14);
    lrgd_split_train_items(sp, LRGD_STEP_TEST, 2, &it, &len);
    range_is(it, len, (int32_t[]){30, 31}, 2, "u2 test train");
    CHECK(lrgd_split_target(sp, LRGD_STEP_TEST, 2) == 32);

    /* Skipped user: nothing, at any step; bad steps: nothing. */
    lrgd_split_train_items(sp, LRGD_STEP_TEST, 1, &it, &len);
    CHECK(it == NULL && len == 0);
    CHECK(lrgd_split_target(sp, LRGD_STEP_VALID, 1) == -1);
    lrgd_split_history(sp, 2, 0, &it, &len);
    CHECK(it == NULL && len == 0 && lrgd_split_target(sp, -1, 0) == -1);

    /* Training interactions: valid 3 + 1, test 4 + 2. */
    CHECK(lrgd_split_n_train(sp, LRGD_STEP_VALID) == 4 && lrgd_split_n_train(sp, LRGD_STEP_TEST) == 6);
    lrgd_split_free(sp);

    /* Replay with s = 2 is the same split. */
    CHECK_OK(lrgd_split_replay(ds, 2, &sp));
    if (sp) {
        CHECK(!lrgd_split_is_loo(sp) && lrgd_split_n_users(sp) == 2);
        CHECK(lrgd_split_target(sp, 0, 0) == 13 && lrgd_split_target(sp, 1, 0) == 14);
    }
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
}

static void test_replay(void)
{
    lrgd_dataset *ds = hand_made();
    if (!ds) return;
    lrgd_split *sp = NULL;
    const int32_t *it;
    int len;
    /* s = 3: only u0 (5 >= 4 items) takes part; base = 5 - 3 = 2.
     * step 0: known 10 11, target 12; step 1: known 10 11 12, target 13;
     * step 2: known 10 11 12 13, target 14. */
    CHECK_OK(lrgd_split_replay(ds, 3, &sp));
    if (!sp) { lrgd_dataset_free(ds); return; }
    CHECK(lrgd_split_n_steps(sp) == 3 && lrgd_split_n_users(sp) == 1 && lrgd_split_n_skipped(sp) == 2);
    for (int r = 0; r < 3; r++) {
        int32_t want[] = {10, 11, 12, 13};
        lrgd_split_history(sp, r, 0, &it, &len);
        range_is(it, len, want, 2 + r, "u0 replay history");
        lrgd_split_train_items(sp, r, 0, &it, &len);
        range_is(it, len, want, 2 + r, "u0 replay train");
        CHECK(lrgd_split_target(sp, r, 0) == 12 + r);
        CHECK(lrgd_split_n_train(sp, r) == 2 + r);
    }
    lrgd_split_train_items(sp, 0, 2, &it, &len); /* u2 has 3 < 4 items */
    CHECK(len == 0);
    lrgd_split_free(sp);

    /* s = 1: every user with >= 2 items; step 0 is the LOO test step. */
    CHECK_OK(lrgd_split_replay(ds, 1, &sp));
    if (sp) {
        CHECK(lrgd_split_n_users(sp) == 3 && lrgd_split_n_skipped(sp) == 0);
        CHECK(lrgd_split_target(sp, 0, 1) == 21 && lrgd_split_target(sp, 0, 0) == 14);
        lrgd_split_history(sp, 0, 1, &it, &len);
        range_is(it, len, (int32_t[]){20}, 1, "u1 s=1 history");
    }
    lrgd_split_free(sp);

    /* s = 5: nobody has 6 items. */
    CHECK(lrgd_split_replay(ds, 5, &sp) == LRGD_E_INVALID && sp == NULL);
    CHECK(lrgd_split_replay(ds, 0, &sp) == LRGD_E_INVALID);
    lrgd_dataset_free(ds);
}

/* Planted data: every item at a user's last MAXS positions is a marker id
 * used nowhere else, so "no marker reachable at step r" proves nothing held
 * out at r is visible; the rest of the items repeat across users. */
#define MAXS 4
static void test_no_leak_planted(void)
{
    const int n_users = 300, n_common = 50;
    int64_t *off = malloc(((size_t)n_users + 1) * sizeof *off);
    int32_t *it = malloc((size_t)n_users * 20 * sizeof *it);
    int32_t next_marker = n_common;
    lrgd_rng r;
    lrgd_rng_seed(&r, 7, 0);
    off[0] = 0;
    for (int u = 0; u < n_users; u++) {
        int n = 1 + (int)lrgd_rng_below(&r, 16);
        for (int k = 0; k < n; k++)
            it[off[u] + k] = k >= n - MAXS ? next_marker++ : (int32_t)lrgd_rng_below(&r, (uint32_t)n_common);
        off[u + 1] = off[u] + n;
    }
    lrgd_dataset *ds = NULL;
    CHECK_OK(lrgd_dataset_from_sequences(n_users, off, it, next_marker, &ds));
    if (!ds) { free(off); free(it); return; }
    uint8_t *seen = malloc((size_t)next_marker);
    int64_t checked = 0;
    for (int s = 1; s <= MAXS; s++) {
        for (int loo = 0; loo <= (s == 2); loo++) {
            lrgd_split *sp = NULL;
            CHECK_OK(loo ? lrgd_split_loo(ds, &sp) : lrgd_split_replay(ds, s, &sp));
            if (!sp) continue;
            for (int step = 0; step < s; step++) {
                /* Everything fitting or demonstrations may read at this step. */
                memset(seen, 0, (size_t)next_marker);
                for (int u = 0; u < n_users; u++) {
                    const int32_t *p;
                    int len;
                    lrgd_split_train_items(sp, step, u, &p, &len);
                    for (int k = 0; k < len; k++) seen[p[k]] = 1;
                    lrgd_split_history(sp, step, u, &p, &len);
                    for (int k = 0; k < len; k++) seen[p[k]] |= 2;
                }
                for (int u = 0; u < n_users; u++) {
                    int n = (int)(off[u + 1] - off[u]);
                    const int32_t *seq = it + off[u];
                    int member = n >= s + 1;
                    CHECK(lrgd_split_has_user(sp, u) == member);
                    for (int k = 0; k < n; k++) {
                        if (seq[k] < n_common) continue; /* shared filler: says nothing */
                        int held = !member || k >= n - s + step;
                        checked++;
                        if (held)
                            CHECK_MSG(!seen[seq[k]], "s=%d loo=%d step %d: user %d position %d (held out) visible", s,
                                      loo, step, u, k);
                        else
                            CHECK_MSG(seen[seq[k]] == 3, "s=%d step %d: user %d position %d should be visible", s,
                                      step, u, k);
                    }
                    if (member) CHECK(lrgd_split_target(sp, step, u) == seq[n - s + step]);
                }
            }
            lrgd_split_free(sp);
        }
    }
    CHECK(checked > 1000);
    free(seen);
    free(off);
    free(it);
    lrgd_dataset_free(ds);
}

/* On a real file: every step's train items are exactly the prefix before
 * the target, the target is the item right after it, and counts add up. */
static void test_no_leak_beauty(void)
{
    lrgd_dataset *ds = NULL;
    lrgd_status st = lrgd_dataset_load(t_shared("datasets/amazon/Beauty.txt"), LRGD_DATA_AMAZON, &ds);
    CHECK_MSG(st == LRGD_OK, "%s", lrgd_last_error());
    if (!ds) return;
    lrgd_split *sp = NULL;
    CHECK_OK(lrgd_split_loo(ds, &sp));
    if (sp) {
        CHECK(lrgd_split_n_users(sp) == 22363 && lrgd_split_n_skipped(sp) == 0);
        CHECK(lrgd_split_n_train(sp, LRGD_STEP_VALID) == 198502 - 2 * 22363);
        CHECK(lrgd_split_n_train(sp, LRGD_STEP_TEST) == 198502 - 22363);
        int bad = 0;
        for (int u = 0; u < lrgd_dataset_n_users(ds); u++) {
            const int32_t *seq, *p;
            int n, len;
            lrgd_dataset_user_items(ds, u, &seq, &n);
            for (int step = 0; step < 2; step++) {
                lrgd_split_train_items(sp, step, u, &p, &len);
                bad += p != seq || len != n - 2 + step;
                bad += lrgd_split_target(sp, step, u) != seq[n - 2 + step];
            }
        }
        CHECK_MSG(bad == 0, "%d users with a wrong prefix or target", bad);
    }
    lrgd_split_free(sp);
    lrgd_dataset_free(ds);
}

int main(void)
{
    test_loo();
    test_replay();
    test_no_leak_planted();
    test_no_leak_beauty();
    return t_finish("test_split");
}
