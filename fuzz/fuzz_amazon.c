/* Amazon sequence files ("user item item ..." per line): lrgd_dataset_parse
 * with the format forced, then the whole dataset and its splits walked. The
 * same bytes through format sniffing must either agree or be RecBole. */
#include "fuzz_dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init_once();
    lrgd_dataset *ds;
    lrgd_status st = lrgd_dataset_parse((const char *)data, size, "fuzz.txt", LRGD_DATA_AMAZON, &ds);
    if (st != LRGD_OK) {
        fuzz_check_error(st);
        FUZZ_CHECK(ds == NULL);
        return 0;
    }
    FUZZ_CHECK(lrgd_dataset_format(ds) == LRGD_DATA_AMAZON);
    fuzz_walk_dataset(ds);
    lrgd_dataset *auto_ds;
    st = lrgd_dataset_parse((const char *)data, size, "fuzz.txt", LRGD_DATA_AUTO, &auto_ds);
    if (st == LRGD_OK) {
        if (lrgd_dataset_format(auto_ds) == LRGD_DATA_AMAZON) {
            FUZZ_CHECK(lrgd_dataset_n_interactions(auto_ds) == lrgd_dataset_n_interactions(ds));
            FUZZ_CHECK(memcmp(lrgd_dataset_items(auto_ds), lrgd_dataset_items(ds),
                              (size_t)lrgd_dataset_n_interactions(ds) * sizeof(int32_t)) == 0);
        }
        lrgd_dataset_free(auto_ds);
    }
    lrgd_dataset_free(ds);
    return 0;
}
