#include "format/formats.h"

#include <string.h>

lrgd_status lrgd_model_load(const char *path, lrgd_model **out)
{
    *out = NULL;
    lrgd_mapped f;
    LRGD_TRY(lrgd_map_file(path, &f));
    lrgd_status st;
    /* GGUF by its magic; anything else must be a llama2.c checkpoint (no magic). */
    if (f.size >= 4 && memcmp(f.data, "GGUF", 4) == 0)
        st = lrgd_gguf_model_parse(&f, path, out);
    else
        st = lrgd_llama2c_parse(&f, path, out);
    if (st != LRGD_OK) lrgd_unmap_file(&f);
    return st;
}
