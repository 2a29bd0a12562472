#include "core/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

lrgd_status lrgd_fail(lrgd_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    /* an allocation the memory limit refused: say so, not only "out of memory" */
    const char *note = s == LRGD_E_NOMEM ? lrgd_mem_take_note() : NULL;
    if (note) {
        size_t n = strlen(last_error);
        snprintf(last_error + n, sizeof last_error - n, ": %s", note);
    }
    return s;
}

lrgd_status lrgd_fail_wrap(lrgd_status s, const char *fmt, ...)
{
    char prefix[512], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof last_error - 3) n = sizeof last_error - 3;
    memcpy(last_error, prefix, n);
    memcpy(last_error + n, ": ", 2);
    size_t room = sizeof last_error - n - 3, m = strlen(old);
    if (m > room) m = room;
    memcpy(last_error + n + 2, old, m);
    last_error[n + 2 + m] = 0;
    return s;
}

void lrgd_clear_error(void) { last_error[0] = 0; }

const char *lrgd_last_error(void) { return last_error; }

const char *lrgd_status_name(lrgd_status s)
{
    switch (s) {
    case LRGD_OK: return "ok";
    case LRGD_E_IO: return "io";
    case LRGD_E_FORMAT: return "format";
    case LRGD_E_UNSUPPORTED: return "unsupported";
    case LRGD_E_INVALID: return "invalid";
    case LRGD_E_NOMEM: return "nomem";
    case LRGD_E_NUMERIC: return "numeric";
    case LRGD_E_RUNTIME: return "runtime";
    case LRGD_E_WRITE: return "write";
    }
    return "unknown";
}

int lrgd_exit_code(lrgd_status s)
{
    switch (s) {
    case LRGD_OK: return 0;
    /* The input or the request was wrong: the user must change something. */
    case LRGD_E_IO:
    case LRGD_E_FORMAT:
    case LRGD_E_UNSUPPORTED:
    case LRGD_E_INVALID: return 2;
    /* An output that cannot be written (LRGD_E_WRITE) is the run failing, not the input. */
    default: return 1;
    }
}

const char *lrgd_version(void) { return LRGD_VERSION_STRING; }
