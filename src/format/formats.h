/* Model file formats: detection and parsing into an lrgd_model. */
#ifndef LRGD_FORMATS_H
#define LRGD_FORMATS_H

#include "model/model_impl.h"

/* Parse a llama2.c checkpoint. On success the model takes over `file`
 * (it is zeroed); on failure the caller still owns it. */
lrgd_status lrgd_llama2c_parse(lrgd_mapped *file, const char *path, lrgd_model **out);
/* Parse a GGUF model (format/gguf_model.c); same ownership rule. */
lrgd_status lrgd_gguf_model_parse(lrgd_mapped *file, const char *path, lrgd_model **out);

#endif
