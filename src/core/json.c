#include "core/core.h"

#include <math.h>
#include <string.h>

void lrgd_json_init(lrgd_json *j, FILE *f, int pretty)
{
    memset(j, 0, sizeof *j);
    j->f = f;
    j->pretty = pretty;
    j->first[0] = 1;
}

static void indent(lrgd_json *j)
{
    if (!j->pretty) return;
    fputc('\n', j->f);
    for (int i = 0; i < j->depth; i++) fputs("  ", j->f);
}

/* Called before every value or key: emits the separating comma. */
static void pre(lrgd_json *j)
{
    if (j->after_key) { j->after_key = 0; return; }
    if (!j->first[j->depth]) fputc(',', j->f);
    j->first[j->depth] = 0;
    if (j->depth > 0) indent(j);
}

static void open_(lrgd_json *j, char c)
{
    pre(j);
    fputc(c, j->f);
    if (j->depth < 63) j->depth++;
    j->first[j->depth] = 1;
}

static void close_(lrgd_json *j, char c)
{
    int empty = j->first[j->depth];
    if (j->depth > 0) j->depth--;
    if (!empty) indent(j);
    fputc(c, j->f);
    if (j->depth == 0 && j->pretty) fputc('\n', j->f);
}

void lrgd_json_obj_begin(lrgd_json *j) { open_(j, '{'); }
void lrgd_json_obj_end(lrgd_json *j) { close_(j, '}'); }
void lrgd_json_arr_begin(lrgd_json *j) { open_(j, '['); }
void lrgd_json_arr_end(lrgd_json *j) { close_(j, ']'); }

static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20) fprintf(f, "\\u%04x", *p);
            else fputc(*p, f);
        }
    }
    fputc('"', f);
}

void lrgd_json_key(lrgd_json *j, const char *k)
{
    pre(j);
    put_string(j->f, k);
    fputs(j->pretty ? ": " : ":", j->f);
    j->after_key = 1;
}

void lrgd_json_str(lrgd_json *j, const char *s) { pre(j); put_string(j->f, s); }

void lrgd_json_num(lrgd_json *j, double v)
{
    pre(j);
    if (!isfinite(v)) fputs("null", j->f);
    else fprintf(j->f, "%.9g", v);
}

void lrgd_json_int(lrgd_json *j, long long v) { pre(j); fprintf(j->f, "%lld", v); }
void lrgd_json_bool(lrgd_json *j, int v) { pre(j); fputs(v ? "true" : "false", j->f); }
void lrgd_json_null(lrgd_json *j) { pre(j); fputs("null", j->f); }
void lrgd_json_kstr(lrgd_json *j, const char *k, const char *s) { lrgd_json_key(j, k); lrgd_json_str(j, s); }
void lrgd_json_knum(lrgd_json *j, const char *k, double v) { lrgd_json_key(j, k); lrgd_json_num(j, v); }
void lrgd_json_kint(lrgd_json *j, const char *k, long long v) { lrgd_json_key(j, k); lrgd_json_int(j, v); }
