/* GGUF v3 files: a hardened reader (from memory or mmap), a small writer,
 * and saving an lrgd model so that llama.cpp can load it.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 * n_kv x (string key, u32 type, value), n_tensors x (string name, u32 n_dims,
 * u64 ne[n_dims], u32 ggml type, u64 offset), padding to general.alignment,
 * tensor data. ne[0] is the fastest-varying dimension: a matrix
 * W[rows = out][cols = in] is stored with ne = {in, out}. */
#ifndef LRGD_GGUF_H
#define LRGD_GGUF_H

#include "lrgd/lrgd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Metadata value types, numbered as the GGUF specification numbers them. */
typedef enum lrgd_gguf_type {
    LRGD_GGUF_U8 = 0,
    LRGD_GGUF_I8 = 1,
    LRGD_GGUF_U16 = 2,
    LRGD_GGUF_I16 = 3,
    LRGD_GGUF_U32 = 4,
    LRGD_GGUF_I32 = 5,
    LRGD_GGUF_F32 = 6,
    LRGD_GGUF_BOOL = 7,
    LRGD_GGUF_STRING = 8,
    LRGD_GGUF_ARRAY = 9,
    LRGD_GGUF_U64 = 10,
    LRGD_GGUF_I64 = 11,
    LRGD_GGUF_F64 = 12
} lrgd_gguf_type;

/* "u8", "string", "array", ... ("?" for anything else). */
const char *lrgd_gguf_type_name(lrgd_gguf_type t);
/* Name of a ggml tensor type id ("F32", "Q4_K", ...; "unknown" if not a ggml type). */
const char *lrgd_ggml_type_name(uint32_t type);

/* Caps on what a file may ask for; beyond them the reader refuses. */
#define LRGD_GGUF_MAX_TENSORS (1u << 20)
#define LRGD_GGUF_MAX_KV (1u << 20)
#define LRGD_GGUF_MAX_DIMS 4
#define LRGD_GGUF_MAX_DIM ((1ull << 31) - 1) /* each ne[i] */
#define LRGD_GGUF_MAX_STRING (1ull << 24)     /* bytes in one string */
#define LRGD_GGUF_MAX_NAME 256                /* bytes in a tensor name */
#define LRGD_GGUF_MAX_ARRAY (1ull << 28)      /* elements in one array */
#define LRGD_GGUF_MAX_DEPTH 8                 /* arrays of arrays of ... */
#define LRGD_GGUF_MAX_ALIGN (1u << 16)

/* ---- reading ------------------------------------------------------------- */

typedef struct lrgd_gguf lrgd_gguf;         /* a parsed file, read-only */
typedef struct lrgd_gguf_val lrgd_gguf_val; /* a metadata value inside it */

/* Parse size bytes at data. The handle points into data (tensor data is not
 * copied): keep data alive and unchanged until lrgd_gguf_free. name is used in
 * error messages ("NAME: offset N: expected ..."). Tensor types other than
 * F32, F16 and Q8_0 are refused. */
lrgd_status lrgd_gguf_parse(const void *data, size_t size, const char *name, lrgd_gguf **out);
/* mmap path and parse it; the handle owns the mapping. */
lrgd_status lrgd_gguf_open(const char *path, lrgd_gguf **out);
void lrgd_gguf_free(lrgd_gguf *g);

uint32_t lrgd_gguf_version(const lrgd_gguf *g);
size_t lrgd_gguf_alignment(const lrgd_gguf *g);
size_t lrgd_gguf_data_offset(const lrgd_gguf *g); /* file offset of the tensor data section */
size_t lrgd_gguf_file_size(const lrgd_gguf *g);
const char *lrgd_gguf_name(const lrgd_gguf *g);
const void *lrgd_gguf_bytes(const lrgd_gguf *g); /* the whole file */

/* Metadata. Keys are in file order, 0 .. n_kv-1. */
int64_t lrgd_gguf_n_kv(const lrgd_gguf *g);
const char *lrgd_gguf_key(const lrgd_gguf *g, int64_t i);
const lrgd_gguf_val *lrgd_gguf_kv(const lrgd_gguf *g, int64_t i);
int64_t lrgd_gguf_find_key(const lrgd_gguf *g, const char *key); /* -1 if absent */
const lrgd_gguf_val *lrgd_gguf_get(const lrgd_gguf *g, const char *key); /* NULL if absent */

lrgd_gguf_type lrgd_gguf_val_type(const lrgd_gguf_val *v);
uint64_t lrgd_gguf_val_offset(const lrgd_gguf_val *v); /* file offset of the value */
/* Scalars, converted only where exact: val_int takes any integer type (and
 * bool), refusing u64 above INT64_MAX; val_float takes f32/f64; val_bool a
 * bool. They fail with a message naming the key's file offset. */
lrgd_status lrgd_gguf_val_int(const lrgd_gguf_val *v, int64_t *out);
lrgd_status lrgd_gguf_val_u64(const lrgd_gguf_val *v, uint64_t *out);
lrgd_status lrgd_gguf_val_float(const lrgd_gguf_val *v, double *out);
lrgd_status lrgd_gguf_val_bool(const lrgd_gguf_val *v, int *out);
/* A string value: NUL-terminated copy (*len excludes the NUL; may hold NULs). */
lrgd_status lrgd_gguf_val_str(const lrgd_gguf_val *v, const char **s, uint64_t *len);
/* Arrays: element type and count. */
lrgd_gguf_type lrgd_gguf_arr_type(const lrgd_gguf_val *v);
uint64_t lrgd_gguf_arr_len(const lrgd_gguf_val *v);
/* Element i of an array, converted as by the scalar getters. */
lrgd_status lrgd_gguf_arr_int(const lrgd_gguf_val *v, uint64_t i, int64_t *out);
lrgd_status lrgd_gguf_arr_float(const lrgd_gguf_val *v, uint64_t i, double *out);
lrgd_status lrgd_gguf_arr_u64(const lrgd_gguf_val *v, uint64_t i, uint64_t *out);
const char *lrgd_gguf_arr_str(const lrgd_gguf_val *v, uint64_t i, uint64_t *len); /* NULL if not strings */
const lrgd_gguf_val *lrgd_gguf_arr_arr(const lrgd_gguf_val *v, uint64_t i);     /* NULL if not arrays */
/* Raw little-endian bytes of a numeric array (possibly unaligned); NULL otherwise. */
const void *lrgd_gguf_arr_raw(const lrgd_gguf_val *v);

/* Shorthands with the key's name in the error: fail if absent or of the wrong type. */
lrgd_status lrgd_gguf_get_int(const lrgd_gguf *g, const char *key, int64_t *out);
lrgd_status lrgd_gguf_get_float(const lrgd_gguf *g, const char *key, double *out);
lrgd_status lrgd_gguf_get_str(const lrgd_gguf *g, const char *key, const char **out);

/* Tensors, in file order. */
typedef struct lrgd_gguf_tensor {
    const char *name;
    lrgd_dtype type;
    int n_dims;
    uint64_t ne[LRGD_GGUF_MAX_DIMS]; /* unused dims are 1 */
    uint64_t n_elements;
    uint64_t offset;      /* relative to the data section */
    uint64_t file_offset; /* absolute */
    uint64_t info_offset; /* file offset of the tensor's entry in the header */
    size_t bytes;
    const void *data;     /* into the buffer; aligned as the file is */
} lrgd_gguf_tensor;

int64_t lrgd_gguf_n_tensors(const lrgd_gguf *g);
const lrgd_gguf_tensor *lrgd_gguf_tensor_at(const lrgd_gguf *g, int64_t i);
const lrgd_gguf_tensor *lrgd_gguf_find_tensor(const lrgd_gguf *g, const char *name); /* NULL if absent */

/* ---- writing ------------------------------------------------------------- */

typedef struct lrgd_gguf_writer lrgd_gguf_writer;

lrgd_status lrgd_gguf_writer_new(lrgd_gguf_writer **out);
void lrgd_gguf_writer_free(lrgd_gguf_writer *w);
/* Alignment of the data section and of every tensor (power of two, default
 * 32). A value other than 32 is also written as general.alignment. */
lrgd_status lrgd_gguf_writer_set_alignment(lrgd_gguf_writer *w, uint32_t alignment);

/* Metadata. A key may be set once; keys keep the order they were set in. */
lrgd_status lrgd_gguf_set_u8(lrgd_gguf_writer *w, const char *key, uint8_t v);
lrgd_status lrgd_gguf_set_i8(lrgd_gguf_writer *w, const char *key, int8_t v);
lrgd_status lrgd_gguf_set_u16(lrgd_gguf_writer *w, const char *key, uint16_t v);
lrgd_status lrgd_gguf_set_i16(lrgd_gguf_writer *w, const char *key, int16_t v);
lrgd_status lrgd_gguf_set_u32(lrgd_gguf_writer *w, const char *key, uint32_t v);
lrgd_status lrgd_gguf_set_i32(lrgd_gguf_writer *w, const char *key, int32_t v);
lrgd_status lrgd_gguf_set_u64(lrgd_gguf_writer *w, const char *key, uint64_t v);
lrgd_status lrgd_gguf_set_i64(lrgd_gguf_writer *w, const char *key, int64_t v);
lrgd_status lrgd_gguf_set_f32(lrgd_gguf_writer *w, const char *key, float v);
lrgd_status lrgd_gguf_set_f64(lrgd_gguf_writer *w, const char *key, double v);
lrgd_status lrgd_gguf_set_bool(lrgd_gguf_writer *w, const char *key, int v);
lrgd_status lrgd_gguf_set_str(lrgd_gguf_writer *w, const char *key, const char *s);
/* A numeric (or bool) array: n elements of elem, host layout (uint8_t for bool). */
lrgd_status lrgd_gguf_set_arr(lrgd_gguf_writer *w, const char *key, lrgd_gguf_type elem, const void *data,
                              uint64_t n);
lrgd_status lrgd_gguf_set_arr_str(lrgd_gguf_writer *w, const char *key, const char *const *s, uint64_t n);
/* An array of n arrays: inner[i] points at counts[i] elements of inner_elem
 * (numbers in host layout, or const char *const * for strings). */
lrgd_status lrgd_gguf_set_arr_arr(lrgd_gguf_writer *w, const char *key, lrgd_gguf_type inner_elem,
                                  const void *const *inner, const uint64_t *counts, uint64_t n);
/* Copy key i of a parsed file, value and all. */
lrgd_status lrgd_gguf_copy_kv(lrgd_gguf_writer *w, const lrgd_gguf *g, int64_t i);
int lrgd_gguf_writer_has_key(const lrgd_gguf_writer *w, const char *key);

/* Tensors, written in the order added. ne[0] is the fastest dimension.
 * add_tensor keeps a pointer to data: it must stay valid until write.
 * add_tensor_f32 converts n floats to type (F32, F16 or Q8_0) into a buffer the
 * writer owns; F16 refuses values outside the F16 range, Q8_0 needs ne[0] % 32 == 0. */
lrgd_status lrgd_gguf_add_tensor(lrgd_gguf_writer *w, const char *name, lrgd_dtype type, int n_dims,
                                 const uint64_t *ne, const void *data);
lrgd_status lrgd_gguf_add_tensor_f32(lrgd_gguf_writer *w, const char *name, lrgd_dtype type, int n_dims,
                                     const uint64_t *ne, const float *src);

/* Write the file atomically (temp + fsync + rename). */
lrgd_status lrgd_gguf_write(const lrgd_gguf_writer *w, const char *path);
/* Serialize into a heap buffer (free() it): for tests and fuzzing seeds. */
lrgd_status lrgd_gguf_write_mem(const lrgd_gguf_writer *w, void **data, size_t *size);

/* ---- vocabulary (tokenizer.ggml.*) ---------------------------------------- */

/* Token types as llama.cpp numbers them. */
enum { LRGD_TOK_NORMAL = 1, LRGD_TOK_UNKNOWN = 2, LRGD_TOK_CONTROL = 3, LRGD_TOK_USER = 4,
       LRGD_TOK_UNUSED = 5, LRGD_TOK_BYTE = 6 };

typedef struct lrgd_gguf_vocab {
    const char *model;           /* tokenizer.ggml.model: "llama" (SentencePiece) or "bert" (WordPiece) */
    int n;                       /* number of tokens = the model's vocab_size */
    const char *const *pieces;   /* [n], unique */
    const float *scores;         /* [n] or NULL (all 0) */
    const int32_t *types;        /* [n] or NULL (all NORMAL) */
    int bos, eos, unk, pad, sep, mask; /* -1: not written */
    int add_bos, add_eos, add_sep;     /* -1: not written, else tokenizer.ggml.add_*_token */
} lrgd_gguf_vocab;

/* Write tokenizer.ggml.{model,tokens,scores,token_type} and the special ids. */
lrgd_status lrgd_gguf_write_vocab(lrgd_gguf_writer *w, const lrgd_gguf_vocab *v);

/* ---- models --------------------------------------------------------------- */

/* Save m as a GGUF file llama.cpp can load ("llama" architecture):
 *  - general.architecture/name/file_type and every llama.* hyper-parameter;
 *  - lrgd.attention ("softmax"|"linear"), lrgd.rope.type ("norm"|"neox") and,
 *    for a recommendation model (m->rec.n_items > 0), lrgd.n_special,
 *    lrgd.token.{pad,bos,sep,ans,eos} (u32) and lrgd.item_ids (i64 per item token);
 *  - a vocabulary: the source file's tokenizer.* keys for a model read from
 *    GGUF; else synthesized (ids keep their meaning, text does not):
 *      text model, vocab >= 259: SentencePiece ("llama"): 0 <unk>, 1 <s>,
 *        2 </s>, 3..258 <0x00>..<0xFF> byte pieces, then <tok_N>;
 *      recommendation model or vocab < 259: WordPiece ("bert") with the same
 *        kind of pieces (<pad> <s> <sep> <ans> </s>, item_<external id>,
 *        <unused_N>), because llama.cpp's SentencePiece aborts on text it
 *        cannot spell in byte pieces while WordPiece maps it to <unk>;
 *  - 2-D weights in wtype (F32, F16 or Q8_0; a matrix whose rows are not a
 *    multiple of 32 long falls back from Q8_0 to F16), norms in F32,
 *    output.weight only when untied.
 * The model reads back as it was (same config, same weights where the type
 * is kept). llama.cpp's "llama" architecture always applies adjacent-pair
 * RoPE, so a NeoX-RoPE model computes correctly there only when saved with
 * LRGD_SAVE_ROPE_NORM (see below).
 * name: general.name (NULL: the source's, else "lrgd"). */
lrgd_status lrgd_model_save_gguf(const lrgd_model *m, const char *path, lrgd_dtype wtype, const char *name);

/* LRGD_SAVE_ROPE_NORM: write a NeoX-RoPE model in the adjacent-pair form:
 * the rows of wq and wk are permuted within each head (row j -> 2j, row
 * j + d/2 -> 2j+1), which leaves every attention score unchanged, and the file
 * says lrgd.rope.type "norm". No effect on a model that already uses "norm". */
enum { LRGD_SAVE_ROPE_NORM = 1 };
lrgd_status lrgd_model_save_gguf_ex(const lrgd_model *m, const char *path, lrgd_dtype wtype, const char *name,
                                    unsigned flags);

#ifdef __cplusplus
}
#endif

#endif
