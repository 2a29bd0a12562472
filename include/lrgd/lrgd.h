/* lrgd: LLM in-context-learning recommendation, read as gradient descent.
 *
 * Public API, umbrella header. Conventions that hold everywhere:
 *  - every function that can fail returns lrgd_status; LRGD_OK is 0;
 *  - on failure lrgd_last_error() returns a message naming the file,
 *    line/offset and what was expected (thread-local, valid until the next
 *    failing call on the same thread);
 *  - handles are opaque; whoever calls *_new / *_load owns the result and
 *    releases it with the matching *_free (NULL is accepted by every _free). */
#ifndef LRGD_LRGD_H
#define LRGD_LRGD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LRGD_VERSION_MAJOR 0
#define LRGD_VERSION_MINOR 1
#define LRGD_VERSION_PATCH 0

typedef enum lrgd_status {
    LRGD_OK = 0,
    LRGD_E_IO,          /* an input could not be opened or read (exit 2: bad input) */
    LRGD_E_FORMAT,      /* input is malformed: truncated, wrong magic, bad line */
    LRGD_E_UNSUPPORTED, /* input is well-formed but uses something lrgd refuses */
    LRGD_E_INVALID,     /* an impossible argument or option */
    LRGD_E_NOMEM,       /* allocation failed or a --max-memory cap was hit */
    LRGD_E_NUMERIC,     /* NaN or Inf where a finite number was required */
    LRGD_E_RUNTIME,     /* anything else that went wrong while running */
    LRGD_E_WRITE        /* an output could not be created, written, synced or renamed (disk full, a
                         * folder that cannot be made or written): a runtime failure (exit 1) */
} lrgd_status;

/* Tensor element types, numbered as GGML numbers them. */
typedef enum lrgd_dtype {
    LRGD_F32 = 0,
    LRGD_F16 = 1,
    LRGD_Q8_0 = 8
} lrgd_dtype;

/* The message of the last failure on this thread ("" if none). */
const char *lrgd_last_error(void);
/* A short stable name for a status ("ok", "io", "format", ...). */
const char *lrgd_status_name(lrgd_status s);
/* CLI exit code for a status: 0 ok, 2 bad input or usage, 1 runtime failure. */
int lrgd_exit_code(lrgd_status s);
/* "MAJOR.MINOR.PATCH" */
const char *lrgd_version(void);

/* Threads used by lrgd's own loops and by OpenBLAS. n <= 0 means all cores.
 * Results are bit-identical for a fixed thread count. */
lrgd_status lrgd_set_threads(int n);
int lrgd_get_threads(void);

#ifdef __cplusplus
}
#endif

#include "lrgd/model.h"

#endif
