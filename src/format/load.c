#include "format/formats.h"

#include <string.h>

lrgd_status lrgd_model_load(const char *path, lrgd_model **out)
{
    *out = NULL;
    lrgd_mapped f;
    LRGD_TRY(lrgd_map_file(path, &f));
    lrgd_status st;
    if (f.size >= 4 && memcmp(f.data, "GGUF", 4) == 0)
        st = lrgd_fail(LRGD_E_UNSUPPORTED, "%s: GGUF reader not built yet", path);
    else
        st = lrgd_llama2c_parse(&f, path, out);
    if (st != LRGD_OK) lrgd_unmap_file(&f);
    return st;
}

void lrgd_gguf_free(struct lrgd_gguf *g) { (void)g; }
