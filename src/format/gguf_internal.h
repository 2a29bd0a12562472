/* Pieces shared by the GGUF reader, writer and model code (not public). */
#ifndef LRGD_GGUF_INTERNAL_H
#define LRGD_GGUF_INTERNAL_H

#include "lrgd/gguf.h"
#include "model/model_impl.h"

/* The encoded bytes of metadata entry i (key, type, value) inside the file. */
lrgd_status lrgd_gguf__kv_span(const lrgd_gguf *g, int64_t i, const unsigned char **p, size_t *n);

/* Build a model whose weights point into g's buffer (F16 matrices and
 * non-F32 norms are converted into buffers the model owns). The caller keeps
 * the buffer alive for the model's lifetime and sets m->gguf / m->file. */
lrgd_status lrgd_gguf_to_model(const lrgd_gguf *g, lrgd_model **out);

/* Synthesized vocabularies for models whose tokenizer lrgd does not have.
 * Pieces, scores and types are allocated in one block: free with lrgd_vocab_free. */
typedef struct lrgd_vocab_buf {
    lrgd_gguf_vocab v;
    char **pieces;
    float *scores;
    int32_t *types;
} lrgd_vocab_buf;
/* llama2.c style: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0xNN> bytes, then placeholders. */
lrgd_status lrgd_vocab_synth_llama(int n_vocab, lrgd_vocab_buf *vb);
/* Recommendation model: special tokens, item_<extid> pieces, placeholders. */
lrgd_status lrgd_vocab_synth_rec(const lrgd_recvocab *rv, int n_vocab, lrgd_vocab_buf *vb);
void lrgd_vocab_free(lrgd_vocab_buf *vb);

#endif
