/* llama2.c checkpoints: lrgd_llama2c_parse over a private aligned copy of the
 * input (as lrgd_model_load hands it a mapping), then a short forward pass. */
#include "format/formats.h"
#include "fuzz.h"
#include "fuzz_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init_once();
    lrgd_mapped f = {lrgd_alloc(size ? size : 1), size, 0};
    FUZZ_CHECK(f.data != NULL);
    memcpy((void *)f.data, data, size);
    lrgd_model *m;
    lrgd_status st = lrgd_llama2c_parse(&f, "fuzz.bin", &m);
    if (st != LRGD_OK) {
        fuzz_check_error(st);
        FUZZ_CHECK(m == NULL);
        lrgd_unmap_file(&f);
        return 0;
    }
    FUZZ_CHECK(f.data == NULL); /* the model owns the buffer now */
    const lrgd_config *c = lrgd_model_config(m);
    /* the size matches the header exactly (llama2.c has no padding) */
    size_t L = (size_t)c->n_layers, D = (size_t)c->dim, F = (size_t)c->hidden_dim, V = (size_t)c->vocab_size;
    size_t kvd = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    size_t floats = V * D * (c->tied ? 1 : 2) + L * (2 * D + 2 * D * D + 2 * D * kvd + 3 * D * F) + D +
                    (size_t)c->seq_len * (size_t)c->head_dim;
    FUZZ_CHECK(size == 28 + 4 * floats);
    fuzz_run_model(m);
    lrgd_model_free(m);
    return 0;
}
