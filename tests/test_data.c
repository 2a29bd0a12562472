/* Dataset loading: the Amazon sequence format, RecBole .inter, item text,
 * every malformed-input error (each must name the line), and the counts of
 * the three shared Amazon files against ../shared/README.md. */
#include "core/core.h"
#include "lrgd/data.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static lrgd_dataset *parse(const char *text, lrgd_data_format f)
{
    lrgd_dataset *ds = NULL;
    lrgd_status st = lrgd_dataset_parse(text, strlen(text), "t.txt", f, &ds);
    CHECK_MSG(st == LRGD_OK, "parse failed: %s", lrgd_last_error());
    return ds;
}

/* The parse must fail with status want and a message containing every one
 * of the given pieces (file:line and what was wrong). */
static void expect_err(const char *text, size_t len, lrgd_data_format f, lrgd_status want, const char *piece1,
                       const char *piece2)
{
    lrgd_dataset *ds = NULL;
    lrgd_status st = lrgd_dataset_parse(text, len, "t.txt", f, &ds);
    CHECK_MSG(st == want, "input '%.*s': status %s, want %s (%s)", (int)(len < 60 ? len : 60), text,
              lrgd_status_name(st), lrgd_status_name(want), lrgd_last_error());
    CHECK(ds == NULL);
    const char *msg = lrgd_last_error();
    CHECK_MSG(strstr(msg, piece1) != NULL, "message '%s' lacks '%s'", msg, piece1);
    if (piece2) CHECK_MSG(strstr(msg, piece2) != NULL, "message '%s' lacks '%s'", msg, piece2);
    lrgd_dataset_free(ds);
}
#define EXPECT_ERR(text, f, want, p1, p2) expect_err(text, sizeof(text) - 1, f, want, p1, p2)

static void seq_is(const lrgd_dataset *ds, int u, const int32_t *want, int n)
{
    const int32_t *it;
    int len;
    lrgd_dataset_user_items(ds, u, &it, &len);
    CHECK_MSG(len == n, "user %d: %d items, want %d", u, len, n);
    for (int k = 0; k < n && k < len; k++) CHECK_MSG(it[k] == want[k], "user %d item %d: %d, want %d", u, k, it[k], want[k]);
}

static void test_amazon_small(void)
{
    /* Items 3, 5, 7 exist: ascending external ids give internal 0, 1, 2. */
    lrgd_dataset *ds = parse("10 5 3 5\n20 3 7\n30 7 5 3 3\n", LRGD_DATA_AMAZON);
    if (!ds) return;
    CHECK(lrgd_dataset_n_users(ds) == 3);
    CHECK(lrgd_dataset_n_items(ds) == 3);
    CHECK(lrgd_dataset_n_interactions(ds) == 9);
    CHECK(lrgd_dataset_format(ds) == LRGD_DATA_AMAZON);
    seq_is(ds, 0, (int32_t[]){1, 0, 1}, 3);
    seq_is(ds, 1, (int32_t[]){0, 2}, 2);
    seq_is(ds, 2, (int32_t[]){2, 1, 0, 0}, 4);
    const lrgd_data_stats *st = lrgd_dataset_stats(ds);
    CHECK(st->n_repeats == 2); /* 5 again for user 10, 3 again for user 30 */
    CHECK(st->n_short == 1);   /* user 20 has 2 items */
    CHECK(st->min_len == 2 && st->max_len == 4);
    CHECK(st->n_lines == 3 && st->skipped_no_items == 0);
    CHECK(strcmp(lrgd_dataset_item_name(ds, 1), "5") == 0);
    CHECK(strcmp(lrgd_dataset_user_name(ds, 2), "30") == 0);
    CHECK(lrgd_dataset_item_ext(ds, 2) == 7 && lrgd_dataset_user_ext(ds, 1) == 20);
    CHECK(lrgd_dataset_find_item(ds, "005", 3) == 1);
    CHECK(lrgd_dataset_find_item(ds, "4", 1) == -1);
    CHECK(lrgd_dataset_find_item(ds, "x", 1) == -1);
    CHECK(lrgd_dataset_find_user(ds, "30", 2) == 2);
    const int64_t *off = lrgd_dataset_offsets(ds);
    CHECK(off[0] == 0 && off[1] == 3 && off[2] == 5 && off[3] == 9);
    lrgd_dataset_free(ds);

    /* Tabs, runs of blanks, CRLF, no final newline, a user with no items. */
    ds = parse("1\t4  9 \r\n2\r\n3 9 4", LRGD_DATA_AMAZON);
    if (!ds) return;
    CHECK(lrgd_dataset_n_users(ds) == 2);
    CHECK(lrgd_dataset_stats(ds)->skipped_no_items == 1);
    CHECK(lrgd_dataset_stats(ds)->n_lines == 3);
    seq_is(ds, 0, (int32_t[]){0, 1}, 2);
    seq_is(ds, 1, (int32_t[]){1, 0}, 2);
    CHECK(strcmp(lrgd_dataset_user_name(ds, 1), "3") == 0);
    lrgd_dataset_free(ds);

    /* AUTO picks Amazon for space-separated integers. */
    ds = parse("1 2 3\n", LRGD_DATA_AUTO);
    if (ds) CHECK(lrgd_dataset_format(ds) == LRGD_DATA_AMAZON);
    lrgd_dataset_free(ds);
}

static void test_amazon_errors(void)
{
    const lrgd_data_format A = LRGD_DATA_AMAZON;
    EXPECT_ERR("", A, LRGD_E_FORMAT, "t.txt", "empty file");
    EXPECT_ERR("\n", A, LRGD_E_FORMAT, "t.txt:1:", "empty line");
    EXPECT_ERR("1 2 3\n\n2 3 4\n", A, LRGD_E_FORMAT, "t.txt:2:", "empty line");
    EXPECT_ERR("1 2 3\n2 3 4\n\n", A, LRGD_E_FORMAT, "t.txt:3:", "empty line");
    EXPECT_ERR("1 2 3\n  \t \n", A, LRGD_E_FORMAT, "t.txt:2:", "empty line");
    EXPECT_ERR("1 2 3\r\n\r\n", A, LRGD_E_FORMAT, "t.txt:2:", "empty line");
    EXPECT_ERR("1 2 3\nu2 3 4\n", A, LRGD_E_FORMAT, "t.txt:2: field 1", "user id, got 'u2'");
    EXPECT_ERR("1 2 3\n2 3 x4\n", A, LRGD_E_FORMAT, "t.txt:2: field 3", "item id, got 'x4'");
    EXPECT_ERR("1 2 3.5\n", A, LRGD_E_FORMAT, "t.txt:1: field 3", "'3.5'");
    EXPECT_ERR("1 2 +3\n", A, LRGD_E_FORMAT, "t.txt:1: field 3", "'+3'");
    EXPECT_ERR("1 2,3\n", A, LRGD_E_FORMAT, "t.txt:1: field 2", "'2,3'");
    EXPECT_ERR("1 2 -\n", A, LRGD_E_FORMAT, "t.txt:1: field 3", "'-'");
    EXPECT_ERR("1 2 3\n2 3 -4\n", A, LRGD_E_FORMAT, "t.txt:2: field 3", "'-4' is negative");
    EXPECT_ERR("-1 2 3\n", A, LRGD_E_FORMAT, "t.txt:1: field 1", "user id '-1' is negative");
    EXPECT_ERR("1 2 3\n2 3\n1 4 5\n", A, LRGD_E_FORMAT, "t.txt:3:", "duplicate user 1 (first on line 1)");
    EXPECT_ERR("1 2\n01 3\n", A, LRGD_E_FORMAT, "t.txt:2:", "duplicate user 1");
    EXPECT_ERR("1 1000000000000000000\n", A, LRGD_E_FORMAT, "t.txt:1: field 2", "too large");
    EXPECT_ERR("1\n2\n", A, LRGD_E_FORMAT, "t.txt", "no user has any interactions");
    EXPECT_ERR("1 2\x00 3\n", A, LRGD_E_FORMAT, "t.txt:1: field 2", "item id");
    /* 10^18 - 1 is the largest id; it must load. */
    lrgd_dataset *ds = parse("999999999999999999 999999999999999999\n", A);
    if (ds) CHECK(lrgd_dataset_item_ext(ds, 0) == 999999999999999999LL);
    lrgd_dataset_free(ds);

    /* Missing file: an I/O error naming the path. */
    lrgd_status st = lrgd_dataset_load("/nonexistent/dir/none.txt", LRGD_DATA_AUTO, &ds);
    CHECK(st == LRGD_E_IO && ds == NULL);
    CHECK(strstr(lrgd_last_error(), "/nonexistent/dir/none.txt") != NULL);
}

static void test_recbole(void)
{
    /* Columns in a different order plus an extra one. User "bob" appears
     * first; his rows sorted by time are: t=1 i2 (line 5), t=2 i1 (line 3),
     * t=2 i3 (line 6, tie with line 3 keeps file order), t=5 i1 (line 2). */
    const char *txt =
        "item_id:token\trating:float\tuser_id:token\ttimestamp:float\n"
        "i1\t5\tbob\t5\n"
        "i1\t4\tbob\t2\n"
        "i2\t3\t42\t7\n"
        "i2\t1\tbob\t1\n"
        "i3\t2\tbob\t2.0\n"
        "i3\t2\t42\t1e0\n";
    lrgd_dataset *ds = parse(txt, LRGD_DATA_AUTO);
    if (!ds) return;
    CHECK(lrgd_dataset_format(ds) == LRGD_DATA_RECBOLE);
    CHECK(lrgd_dataset_n_users(ds) == 2 && lrgd_dataset_n_items(ds) == 3 && lrgd_dataset_n_interactions(ds) == 6);
    /* items by first appearance: i1=0, i2=1, i3=2; users: bob=0, 42=1 */
    seq_is(ds, 0, (int32_t[]){1, 0, 2, 0}, 4);
    seq_is(ds, 1, (int32_t[]){2, 1}, 2);
    CHECK(strcmp(lrgd_dataset_user_name(ds, 0), "bob") == 0 && lrgd_dataset_user_ext(ds, 0) == -1);
    CHECK(strcmp(lrgd_dataset_user_name(ds, 1), "42") == 0 && lrgd_dataset_user_ext(ds, 1) == 42);
    CHECK(strcmp(lrgd_dataset_item_name(ds, 2), "i3") == 0);
    CHECK(lrgd_dataset_find_item(ds, "i2", 2) == 1 && lrgd_dataset_find_item(ds, "i", 1) == -1);
    CHECK(lrgd_dataset_find_user(ds, "bob", 3) == 0);
    CHECK(lrgd_dataset_stats(ds)->n_repeats == 1 && lrgd_dataset_stats(ds)->n_lines == 6);
    lrgd_dataset_free(ds);

    /* No timestamp column: file order. Tokens may hold spaces. */
    ds = parse("user_id:token\titem_id:token\na b\tx y\na b\tz\n", LRGD_DATA_RECBOLE);
    if (ds) {
        seq_is(ds, 0, (int32_t[]){0, 1}, 2);
        CHECK(strcmp(lrgd_dataset_item_name(ds, 0), "x y") == 0);
    }
    lrgd_dataset_free(ds);

    const lrgd_data_format R = LRGD_DATA_RECBOLE;
    EXPECT_ERR("", R, LRGD_E_FORMAT, "t.txt", "empty file");
    EXPECT_ERR("user_id:token\titem_id:token\n", R, LRGD_E_FORMAT, "t.txt", "no interactions");
    EXPECT_ERR("user:token\titem_id:token\nu\ti\n", R, LRGD_E_FORMAT, "t.txt:1:", "lacks user_id");
    EXPECT_ERR("user_id:token\titem:token\nu\ti\n", R, LRGD_E_FORMAT, "t.txt:1:", "lacks item_id");
    EXPECT_ERR("user_id:token\titem_id:token\tuser_id:token\nu\ti\tv\n", R, LRGD_E_FORMAT, "t.txt:1:", "twice");
    EXPECT_ERR("user_id:token\titem_id:token\nu\ti\nu\n", R, LRGD_E_FORMAT, "t.txt:3:", "expected 2 tab-separated fields");
    EXPECT_ERR("user_id:token\titem_id:token\nu\ti\tj\n", R, LRGD_E_FORMAT, "t.txt:2:", "got 3");
    EXPECT_ERR("user_id:token\titem_id:token\nu\ti\n\nu\tj\n", R, LRGD_E_FORMAT, "t.txt:3:", "empty line");
    EXPECT_ERR("\nuser_id:token\titem_id:token\n", R, LRGD_E_FORMAT, "t.txt:1:", "empty line");
    EXPECT_ERR("user_id:token\titem_id:token\n\ti\n", R, LRGD_E_FORMAT, "t.txt:2:", "empty user_id");
    EXPECT_ERR("user_id:token\titem_id:token\nu\t\n", R, LRGD_E_FORMAT, "t.txt:2:", "empty item_id");
    EXPECT_ERR("user_id:token\titem_id:token\ttimestamp:float\nu\ti\t12x\n", R, LRGD_E_FORMAT, "t.txt:2:", "'12x'");
    EXPECT_ERR("user_id:token\titem_id:token\ttimestamp:float\nu\ti\t1\nu\ti\tnan\n", R, LRGD_E_FORMAT, "t.txt:3:",
               "timestamp");
    EXPECT_ERR("user_id:token\titem_id:token\ttimestamp:float\nu\ti\t\n", R, LRGD_E_FORMAT, "t.txt:2:", "timestamp");
    EXPECT_ERR("user_id:token\titem_id:token\nu\ti\x00\n", R, LRGD_E_FORMAT, "t.txt:2:", "NUL");
}

static void test_item_text(void)
{
    lrgd_dataset *ds = parse("1 10 20\n2 20 30 40\n", LRGD_DATA_AMAZON);
    if (!ds) return;
    CHECK(lrgd_dataset_item_text(ds, 0) == NULL && lrgd_dataset_n_item_text(ds) == 0);
    /* Header with title and brand: brand appended unless the title has it. */
    const char *tsv = "item_id\tasin\ttitle\tbrand\tcategories\n"
                      "10\tA1\tRed Lipstick\tAcme\tBeauty\n"
                      "20\tA2\tAcme Blue Pen\tAcme\tOffice\n"
                      "30\tA3\t\t\tOffice\n";
    CHECK_OK(lrgd_dataset_parse_item_text(ds, tsv, strlen(tsv), "i.tsv"));
    CHECK(lrgd_dataset_n_item_text(ds) == 3);
    CHECK(lrgd_dataset_item_text(ds, 0) && strcmp(lrgd_dataset_item_text(ds, 0), "Red Lipstick (Acme)") == 0);
    CHECK(lrgd_dataset_item_text(ds, 1) && strcmp(lrgd_dataset_item_text(ds, 1), "Acme Blue Pen") == 0);
    CHECK(lrgd_dataset_item_text(ds, 2) && strcmp(lrgd_dataset_item_text(ds, 2), "") == 0);
    CHECK(lrgd_dataset_item_text(ds, 3) == NULL); /* item 40 not listed */
    /* Keywords, RecBole-style typed header. */
    const char *kw = "item_id:token\tkeywords:token_seq\n40\tfoo bar\n";
    CHECK_OK(lrgd_dataset_parse_item_text(ds, kw, strlen(kw), "k.item"));
    CHECK(lrgd_dataset_n_item_text(ds) == 1 && lrgd_dataset_item_text(ds, 0) == NULL);
    CHECK(lrgd_dataset_item_text(ds, 3) && strcmp(lrgd_dataset_item_text(ds, 3), "foo bar") == 0);
    /* No header: item_id<TAB>title. */
    const char *plain = "20\tA pen\n10\tA lipstick\r\n";
    CHECK_OK(lrgd_dataset_parse_item_text(ds, plain, strlen(plain), "p.tsv"));
    CHECK(lrgd_dataset_item_text(ds, 0) && strcmp(lrgd_dataset_item_text(ds, 0), "A lipstick") == 0);
    CHECK(lrgd_dataset_n_item_text(ds) == 2);

    struct { const char *txt, *p1, *p2; } bad[] = {
        {"99\tUnknown\n", "x.tsv:1:", "item id '99' is not in the dataset"},
        {"10\ta\n20\tb\n10\tc\n", "x.tsv:3:", "listed twice (first on line 1)"},
        {"10\ta\n20\n", "x.tsv:2:", "expected 2 tab-separated fields"},
        {"10\ta\n\n20\tb\n", "x.tsv:2:", "empty line"},
        {"item_id\tasin\tcategories\n10\tA\tB\n", "x.tsv:1:", "no title or keywords"},
        {"item_id\ttitle\n10\ta\tb\n", "x.tsv:2:", "got 3"},
        {"item_id\ttitle\n", "x.tsv", "no item rows"},
        {"", "x.tsv", "empty file"},
        {"ab\tc\n", "x.tsv:1:", "'ab' is not in the dataset"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        lrgd_status st = lrgd_dataset_parse_item_text(ds, bad[k].txt, strlen(bad[k].txt), "x.tsv");
        CHECK_MSG(st == LRGD_E_FORMAT, "case %zu: status %s", k, lrgd_status_name(st));
        CHECK_MSG(strstr(lrgd_last_error(), bad[k].p1) && strstr(lrgd_last_error(), bad[k].p2),
                  "case %zu: message '%s' lacks '%s' / '%s'", k, lrgd_last_error(), bad[k].p1, bad[k].p2);
    }
    /* A failed load leaves the previous text in place. */
    CHECK(lrgd_dataset_item_text(ds, 0) && strcmp(lrgd_dataset_item_text(ds, 0), "A lipstick") == 0);
    CHECK(lrgd_dataset_load_item_text(ds, "/nonexistent/items.tsv") == LRGD_E_IO);
    lrgd_dataset_free(ds);
}

static void test_from_sequences(void)
{
    int64_t off[] = {0, 2, 5};
    int32_t it[] = {0, 1, 2, 1, 0};
    lrgd_dataset *ds = NULL;
    CHECK_OK(lrgd_dataset_from_sequences(2, off, it, 3, &ds));
    if (ds) {
        seq_is(ds, 1, (int32_t[]){2, 1, 0}, 3);
        CHECK(strcmp(lrgd_dataset_item_name(ds, 2), "2") == 0 && lrgd_dataset_find_item(ds, "1", 1) == 1);
    }
    lrgd_dataset_free(ds);
    int32_t bad_it[] = {0, 3, 1, 1, 1};
    CHECK(lrgd_dataset_from_sequences(2, off, bad_it, 3, &ds) == LRGD_E_INVALID);
    int64_t bad_off[] = {0, 0, 5};
    CHECK(lrgd_dataset_from_sequences(2, bad_off, it, 3, &ds) == LRGD_E_INVALID);
}

/* An independent reader (strtol per token, nothing shared with the loader)
 * for the cross-check of the shared files. */
static void cross_check(const lrgd_dataset *ds, const char *path)
{
    char *buf;
    size_t n;
    if (lrgd_read_file(path, &buf, &n) != LRGD_OK) { CHECK_MSG(0, "%s", lrgd_last_error()); return; }
    int u = 0, mismatches = 0;
    char *line = buf, *save = NULL;
    for (char *l = strtok_r(line, "\n", &save); l; l = strtok_r(NULL, "\n", &save), u++) {
        char *e;
        long uid = strtol(l, &e, 10);
        if (strcmp(lrgd_dataset_user_name(ds, u), "") == 0 || lrgd_dataset_user_ext(ds, u) != uid) mismatches++;
        const int32_t *it;
        int len, k = 0;
        lrgd_dataset_user_items(ds, u, &it, &len);
        for (char *p = e;; k++) {
            long v = strtol(p, &e, 10);
            if (e == p) break;
            p = e;
            if (k >= len || lrgd_dataset_item_ext(ds, it[k]) != v || it[k] != v - 1) mismatches++;
        }
        if (k != len) mismatches++;
    }
    CHECK_MSG(mismatches == 0, "%s: %d mismatches against the independent reader", path, mismatches);
    CHECK(u == lrgd_dataset_n_users(ds));
    free(buf);
}

static void test_shared_amazon(void)
{
    /* Counts from ../shared/README.md. */
    struct { const char *name; int users, items; int64_t inter; const char *text1; } want[] = {
        {"Beauty", 22363, 12101, 198502, "OPI Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce"},
        {"Sports_and_Outdoors", 35598, 18357, 296337, "ghost armorers tool 332 punch hunting fishing"},
        {"Toys_and_Games", 19412, 11924, 167597, "Pocoyo And Friends Swiggle Traks Feature Track With Bridge"},
    };
    for (int d = 0; d < 3; d++) {
        char rel[256];
        snprintf(rel, sizeof rel, "datasets/amazon/%s.txt", want[d].name);
        char path[4096];
        snprintf(path, sizeof path, "%s", t_shared(rel));
        lrgd_dataset *ds = NULL;
        double t0 = lrgd_now();
        lrgd_status st = lrgd_dataset_load(path, LRGD_DATA_AUTO, &ds);
        double dt = lrgd_now() - t0;
        CHECK_MSG(st == LRGD_OK, "%s: %s", path, lrgd_last_error());
        if (!ds) continue;
        const lrgd_data_stats *s = lrgd_dataset_stats(ds);
        printf("%s: %lld users, %lld items, %lld interactions, lengths %d..%d, loaded in %.1f ms\n", want[d].name,
               (long long)s->n_users, (long long)s->n_items, (long long)s->n_interactions, s->min_len, s->max_len,
               dt * 1e3);
        CHECK(lrgd_dataset_format(ds) == LRGD_DATA_AMAZON);
        CHECK(s->n_users == want[d].users && lrgd_dataset_n_users(ds) == want[d].users);
        CHECK(s->n_items == want[d].items && lrgd_dataset_n_items(ds) == want[d].items);
        CHECK(s->n_interactions == want[d].inter && lrgd_dataset_n_interactions(ds) == want[d].inter);
        CHECK(s->skipped_no_items == 0 && s->n_short == 0 && s->min_len == 5);
        /* "well under a second": generous for sanitizer builds; not timed under valgrind (20-50x slower) */
        if (t_full()) CHECK_MSG(dt < 1.0, "%s took %.3f s to load", want[d].name, dt);
        cross_check(ds, path);

        snprintf(rel, sizeof rel, "datasets/amazon/%s.items.tsv", want[d].name);
        snprintf(path, sizeof path, "%s", t_shared(rel));
        t0 = lrgd_now();
        CHECK_OK(lrgd_dataset_load_item_text(ds, path));
        printf("%s: item text for %d items in %.1f ms\n", want[d].name, lrgd_dataset_n_item_text(ds), (lrgd_now() - t0) * 1e3);
        CHECK(lrgd_dataset_n_item_text(ds) == want[d].items);
        const char *t = lrgd_dataset_item_text(ds, 0);
        CHECK_MSG(t && strcmp(t, want[d].text1) == 0, "%s item 1 text '%s'", want[d].name, t ? t : "(null)");
        lrgd_dataset_free(ds);
    }
}

int main(void)
{
    test_amazon_small();
    test_amazon_errors();
    test_recbole();
    test_item_text();
    test_from_sequences();
    test_shared_amazon();
    return t_finish("test_data");
}
