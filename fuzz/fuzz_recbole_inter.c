/* RecBole atomic .inter files (a name:type header, tab-separated rows):
 * lrgd_dataset_parse with the format forced, then the dataset walked. Each
 * user's sequence must be ordered by timestamp. */
#include "fuzz_dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init_once();
    lrgd_dataset *ds;
    lrgd_status st = lrgd_dataset_parse((const char *)data, size, "fuzz.inter", LRGD_DATA_RECBOLE, &ds);
    if (st != LRGD_OK) {
        fuzz_check_error(st);
        FUZZ_CHECK(ds == NULL);
        return 0;
    }
    FUZZ_CHECK(lrgd_dataset_format(ds) == LRGD_DATA_RECBOLE);
    FUZZ_CHECK(lrgd_dataset_stats(ds)->n_lines == lrgd_dataset_n_interactions(ds));
    fuzz_walk_dataset(ds);
    lrgd_dataset_free(ds);
    return 0;
}
