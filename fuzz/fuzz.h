/* Shared by the libFuzzer harnesses in fuzz/ (and replayed by
 * tests/test_fuzz_regress.c without libFuzzer).
 *
 * A harness feeds one input to a parser and then walks everything the parser
 * returned, so that a wrong length or offset shows up as an ASan report
 * instead of staying latent. Properties that must hold for every accepted
 * input are checked with FUZZ_CHECK: a violation aborts, which libFuzzer
 * records as a crash like any other. */
#ifndef LRGD_FUZZ_H
#define LRGD_FUZZ_H

#include "core/core.h"
#include "lrgd/lrgd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: fuzz property failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* One thread, no progress bars: fuzzing measures the parser, not OpenMP. */
static inline void fuzz_init_once(void)
{
    static int done;
    if (done) return;
    done = 1;
    lrgd_set_quiet(1);
    lrgd_set_threads(1);
}

/* A failed parse must leave a message that says something. */
static inline void fuzz_check_error(lrgd_status st)
{
    FUZZ_CHECK(st != LRGD_OK);
    const char *msg = lrgd_last_error();
    FUZZ_CHECK(msg != NULL && msg[0] != 0);
    FUZZ_CHECK(lrgd_exit_code(st) != 0);
}

/* Touch every byte of a string so ASan sees an unterminated or freed one. */
static inline size_t fuzz_touch_str(const char *s)
{
    return s ? strlen(s) : 0;
}

#endif
