/* Item text files (a header with item_id and title/keywords[/brand], or
 * item_id<TAB>title rows), attached to two fixed datasets: one with integer
 * item ids (Amazon) and one with token ids (RecBole). Every attached text is
 * read back; items the file does not list have none. */
#include "fuzz_dataset.h"

static const char k_amazon[] = "1 1 2 3\n2 4 5 6 7\n3 10 11 12 1000\n4 123456789 2 5\n";
static const char k_recbole[] =
    "user_id:token\titem_id:token\ttimestamp:float\n"
    "u1\tB00A\t1\nu1\tB00B\t2\nu1\titem 3\t3\nu2\tB00A\t5\nu2\tx\t4\nu2\t7\t6\n";

static void attach(const char *ds_text, size_t ds_len, lrgd_data_format fmt, const uint8_t *data, size_t size)
{
    lrgd_dataset *ds;
    FUZZ_CHECK(lrgd_dataset_parse(ds_text, ds_len, "fixed", fmt, &ds) == LRGD_OK);
    lrgd_status st = lrgd_dataset_parse_item_text(ds, (const char *)data, size, "fuzz.items.tsv");
    int ni = lrgd_dataset_n_items(ds), with_text = 0;
    if (st != LRGD_OK) {
        fuzz_check_error(st);
        FUZZ_CHECK(lrgd_dataset_n_item_text(ds) == 0);
    }
    for (int i = 0; i < ni; i++) {
        const char *t = lrgd_dataset_item_text(ds, i);
        if (t) {
            with_text++;
            FUZZ_CHECK(fuzz_touch_str(t) <= size + 3);
        }
    }
    FUZZ_CHECK(with_text == lrgd_dataset_n_item_text(ds));
    FUZZ_CHECK(st != LRGD_OK || with_text >= 1);
    FUZZ_CHECK(lrgd_dataset_item_text(ds, ni) == NULL && lrgd_dataset_item_text(ds, -1) == NULL);
    if (st == LRGD_OK) {
        /* loading again replaces the texts; the same file gives the same answer */
        FUZZ_CHECK(lrgd_dataset_parse_item_text(ds, (const char *)data, size, "again") == LRGD_OK);
        FUZZ_CHECK(lrgd_dataset_n_item_text(ds) == with_text);
    }
    lrgd_dataset_free(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init_once();
    attach(k_amazon, sizeof k_amazon - 1, LRGD_DATA_AMAZON, data, size);
    attach(k_recbole, sizeof k_recbole - 1, LRGD_DATA_RECBOLE, data, size);
    return 0;
}
