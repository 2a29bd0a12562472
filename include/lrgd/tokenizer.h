/* Text tokenizers read from a GGUF file's tokenizer.ggml.* keys, so that a
 * text LLM brought as GGUF can be prompted with text (item titles).
 *
 * Two vocabulary kinds, as llama.cpp names them in tokenizer.ggml.model:
 *
 *  - "llama": SentencePiece-style (SPM). Spaces become U+2581 ("▁"); with
 *    tokenizer.ggml.add_space_prefix (default true) a space is put in front
 *    of the text. Starting from one symbol per UTF-8 character, the adjacent
 *    pair whose concatenation is a token with the highest score is merged,
 *    leftmost first on equal scores, until no pair is a token. A symbol that
 *    is not a token is emitted as its bytes through the byte tokens <0xXX>
 *    (byte fallback); a vocabulary without them falls back to the raw
 *    one-byte token, then to the unknown token.
 *  - "gpt2": GPT-2-style byte-level BPE. The text is split into words by a
 *    pre-tokenizer (tokenizer.ggml.pre, below); each word's bytes are mapped
 *    to printable characters by GPT-2's byte-to-unicode table; then the
 *    adjacent pair with the lowest rank in tokenizer.ggml.merges ("left
 *    right", rank = position in the list) is merged, leftmost first, until
 *    no pair has a rank. A final symbol that is not a token is emitted byte
 *    by byte where a one-byte token exists and dropped otherwise (as
 *    llama.cpp does). Invalid UTF-8 is read as U+FFFD per bad byte.
 *
 * Pre-tokenizers (tokenizer.ggml.pre, "gpt2" vocabularies only):
 *   absent or "default": four splits in a row, each applied inside the pieces
 *       of the one before (matches and the text between them become pieces):
 *       runs of [\p{P}$+<=>^~|] (ASCII: every punctuation character except
 *       '`'), then GPT-2's pattern
 *       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+,
 *       then runs of \p{N}, then [0-9][0-9][0-9] (ASCII digits in threes from
 *       the left).
 *   "gpt-2", "phi-2", "mpt", "olmo": GPT-2's pattern above.
 *   "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral": Llama 3's pattern
 *       (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *       ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *       and a word that is itself a token is not merged (ignore_merges).
 *   "qwen2", "deepseek-r1-qwen": the same pattern with \p{N} (one digit).
 *   "starcoder", "smollm": each \p{N} alone, then GPT-2's pattern.
 * Any other value is refused (LRGD_E_UNSUPPORTED, naming the value and this
 * list) rather than tokenized differently from llama.cpp. The patterns are
 * those the llama.cpp bundled with node-llama-cpp 3.21.1 applies for these names, with
 * its reading of \s (the Unicode White_Space code points) and of a '?'
 * space. Character classes come from Unicode 17.0; llama.cpp's tables are
 * Unicode 15.1, so the ~10,000 code points assigned since then may split
 * differently.
 *
 * Special tokens: user-defined tokens (type 4) are always matched in the text
 * first (longest first) and emitted as themselves; control and unknown tokens
 * only with LRGD_TOKENIZE_PARSE_SPECIAL. In SPM vocabularies the text after a
 * matched special token gets the space prefix again, as in llama.cpp.
 *
 * Ownership: a tokenizer copies what it needs from the file (the GGUF handle
 * may be freed) and is read-only afterwards, so any number of threads may
 * tokenize with it at once. */
#ifndef LRGD_TOKENIZER_H
#define LRGD_TOKENIZER_H

#include "lrgd/gguf.h"
#include "lrgd/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lrgd_tokenizer lrgd_tokenizer;

typedef enum lrgd_tokenizer_kind {
    LRGD_TOKENIZER_SPM = 1, /* tokenizer.ggml.model = "llama" */
    LRGD_TOKENIZER_BPE = 2  /* tokenizer.ggml.model = "gpt2" */
} lrgd_tokenizer_kind;

/* Build from a parsed GGUF file. Errors name the file, the key and its offset:
 * a missing tokenizer.ggml.model or .tokens, an unknown model or pre-tokenizer,
 * arrays of the wrong type or length, duplicate pieces, special ids outside
 * the vocabulary, merges missing for "gpt2". */
lrgd_status lrgd_tokenizer_from_gguf(const lrgd_gguf *g, lrgd_tokenizer **out);
/* Open a GGUF file and build its tokenizer. */
lrgd_status lrgd_tokenizer_load(const char *path, lrgd_tokenizer **out);
/* The tokenizer of a model loaded from GGUF; LRGD_E_UNSUPPORTED for a model
 * without one (llama2.c checkpoints carry no vocabulary). Its size must
 * equal the model's vocab_size. */
lrgd_status lrgd_tokenizer_from_model(const lrgd_model *m, lrgd_tokenizer **out);
void lrgd_tokenizer_free(lrgd_tokenizer *t);

lrgd_tokenizer_kind lrgd_tokenizer_kind_of(const lrgd_tokenizer *t);
int lrgd_tokenizer_n_vocab(const lrgd_tokenizer *t);
/* "default", "gpt-2", "llama-bpe", ... for BPE; "" for SPM. */
const char *lrgd_tokenizer_pre(const lrgd_tokenizer *t);
/* Special ids, -1 when absent. */
int lrgd_tokenizer_bos(const lrgd_tokenizer *t);
int lrgd_tokenizer_eos(const lrgd_tokenizer *t);
int lrgd_tokenizer_unk(const lrgd_tokenizer *t);
/* Whether the vocabulary asks for BOS / EOS around a text
 * (tokenizer.ggml.add_bos_token / add_eos_token; llama.cpp's defaults: BOS
 * for SPM and the Llama 3 pre-tokenizers, none otherwise). */
int lrgd_tokenizer_add_bos(const lrgd_tokenizer *t);
int lrgd_tokenizer_add_eos(const lrgd_tokenizer *t);
int lrgd_tokenizer_add_space_prefix(const lrgd_tokenizer *t);

/* A token's piece as stored in the vocabulary (SPM: with "▁"; BPE: in the
 * byte-to-unicode alphabet), and its type (LRGD_TOK_* of gguf.h). NULL / 0
 * for an id outside the vocabulary. */
const char *lrgd_token_piece(const lrgd_tokenizer *t, int id, size_t *len);
int lrgd_token_type(const lrgd_tokenizer *t, int id);
/* Id of the token whose piece is exactly s[0..len), or -1. */
int lrgd_token_find(const lrgd_tokenizer *t, const char *s, size_t len);

enum {
    LRGD_TOKENIZE_ADD_SPECIAL = 1,     /* BOS/EOS as lrgd_tokenizer_add_bos/eos say */
    LRGD_TOKENIZE_PARSE_SPECIAL = 2,   /* match control/unknown token text too */
    LRGD_TOKENIZE_NO_SPACE_PREFIX = 4  /* SPM: no space in front (a continuation of earlier text) */
};

/* Tokenize text[0..len) (any bytes; len < 2^28). *ids gets a malloc'd array
 * of *n ids (free() it; non-NULL even when *n is 0). Flags 0 is what
 * llama.cpp's llama_tokenize(add_special = false, parse_special = false)
 * does. */
lrgd_status lrgd_tokenize(const lrgd_tokenizer *t, const char *text, size_t len, unsigned flags, int **ids,
                          int *n);

enum {
    LRGD_DETOKENIZE_SPECIAL = 1, /* render control/unknown tokens' text (default: nothing) */
    LRGD_DETOKENIZE_KEEP_SPACE = 2 /* SPM: keep the leading space the space prefix added */
};

/* Text of ids[0..n): SPM pieces with "▁" as spaces and byte tokens as
 * bytes, BPE pieces mapped back to bytes. With add_space_prefix one leading
 * space of the first piece is removed (unless KEEP_SPACE), so
 * detokenize(tokenize(s)) == s for valid UTF-8 that holds no user-defined
 * token text (SPM puts a space after those) and, in SPM, no "▁".
 * *text is malloc'd and NUL-terminated (free() it); *len excludes the NUL.
 * An id outside the vocabulary is LRGD_E_INVALID. */
lrgd_status lrgd_detokenize(const lrgd_tokenizer *t, const int *ids, int n, unsigned flags, char **text,
                            size_t *len);

/* ---- writing a vocabulary into a GGUF file ---------------------------------- */

typedef struct lrgd_tokenizer_spec {
    lrgd_gguf_vocab vocab;      /* model "llama" or "gpt2", pieces, scores, types, special ids, add_* */
    const char *const *merges;  /* "gpt2": n_merges strings "left right", best first */
    int n_merges;
    const char *pre;            /* tokenizer.ggml.pre; NULL: not written */
    int add_space_prefix;       /* tokenizer.ggml.add_space_prefix: 0/1, -1 not written */
} lrgd_tokenizer_spec;

/* Write tokenizer.ggml.* for spec (lrgd_gguf_write_vocab plus merges, pre and
 * add_space_prefix). Refuses a "gpt2" spec without merges. */
lrgd_status lrgd_tokenizer_write_gguf(lrgd_gguf_writer *w, const lrgd_tokenizer_spec *spec);

#ifdef __cplusplus
}
#endif

#endif
