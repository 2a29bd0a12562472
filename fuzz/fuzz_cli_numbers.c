/* The command line's strict number parsing (tools/cli.c): cli_int, cli_float,
 * cli_int_list and the common --threads/--seed options. The first input byte
 * picks the function and its bounds, the rest is the argument text (cut at a
 * NUL, as argv strings are): bits 0-2 the bounds, sel >> 3 modulo 5 the
 * function, (sel >> 3) / 5 + 2 a list's capacity; sel >= 240 picks cli_size
 * (--max-memory) instead. Accepted values are checked against a separate
 * reading of the same text; for sizes, the two readings must also agree on
 * what is refused. */
#include "../tools/cli.h"
#include "fuzz.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>

static const long long k_bounds[8][2] = {
    {0, 1024}, {1, 100}, {-5, 5}, {0, 9007199254740991LL}, {LLONG_MIN, LLONG_MAX}, {-1, -1}, {0, 0}, {2, 1}};

/* Skip what strtoll/strtod skip (leading white space), then an optional sign. */
static const char *skip_lead(const char *s, int *neg)
{
    while (isspace((unsigned char)*s)) s++;
    *neg = 0;
    if (*s == '+' || *s == '-') *neg = *s++ == '-';
    return s;
}

/* Reference: an accepted integer is digits only after the sign, and its value
 * printed back equals those digits without leading zeros. */
static void check_int(const char *arg, long long v, long long lo, long long hi)
{
    FUZZ_CHECK(v >= lo && v <= hi);
    int neg;
    const char *d = skip_lead(arg, &neg);
    FUZZ_CHECK(*d != 0);
    for (const char *c = d; *c; c++) FUZZ_CHECK(*c >= '0' && *c <= '9');
    while (d[0] == '0' && d[1]) d++;
    char buf[32];
    unsigned long long mag = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    snprintf(buf, sizeof buf, "%llu", mag);
    FUZZ_CHECK(strcmp(buf, d) == 0);
    FUZZ_CHECK(mag == 0 || (v < 0) == neg);
}

/* Reference reading of a size: DIGITS[.DIGITS] with at least one digit and
 * at most one '.', then nothing or one of K M G T (either case) optionally
 * followed by B, iB or b; 1 <= bytes <= 2^60. Returns 1 and the bytes. */
static int ref_size(const char *s, double *bytes)
{
    size_t i = 0, digits = 0, dots = 0;
    for (; s[i] == '.' || (s[i] >= '0' && s[i] <= '9'); i++) {
        if (s[i] == '.') dots++;
        else digits++;
    }
    if (!digits || dots > 1) return 0;
    char num[4100];
    memcpy(num, s, i);
    num[i] = 0;
    double v = strtod(num, NULL), mult = 1;
    const char *u = s + i;
    if (*u) {
        const char *units = "KMGT", *k = *u ? strchr(units, toupper((unsigned char)*u)) : NULL;
        if (!k || !*k) return 0;
        for (const char *c = units; c <= k; c++) mult *= 1024;
        u++;
        if (*u && strcmp(u, "B") && strcmp(u, "iB") && strcmp(u, "b")) return 0;
    }
    *bytes = v * mult;
    return isfinite(*bytes) && *bytes >= 1 && *bytes <= (double)(1ull << 60);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_init_once();
    if (size < 1 || size > 4096) return 0;
    unsigned sel = data[0];
    char *arg = malloc(size);
    FUZZ_CHECK(arg != NULL);
    memcpy(arg, data + 1, size - 1);
    arg[size - 1] = 0;
    long long lo = k_bounds[sel & 7][0], hi = k_bounds[sel & 7][1], v;
    unsigned f = sel >> 3, func = sel >= 240 ? 5 : f % 5;
    switch (func) {
    case 0:
        if (cli_int("fuzz", "n", arg, lo, hi, &v) == 0) check_int(arg, v, lo, hi);
        break;
    case 1: {
        double dlo = (double)lo / 4, dhi = (double)hi / 4, x;
        if (cli_float("fuzz", "x", arg, dlo, dhi, &x) == 0) {
            FUZZ_CHECK(isfinite(x) && x >= dlo && x <= dhi);
            char *end;
            errno = 0;
            FUZZ_CHECK(strtod(arg, &end) == x && *end == 0);
        }
        break;
    }
    case 2: {
        long long vals[8];
        int n = (int)(f / 5) + 2, cap = n; /* capacity 2..8 */
        if (cli_int_list("fuzz", "list", arg, lo, hi, vals, &n) == 0) {
            int commas = 0;
            for (const char *c = arg; *c; c++) commas += *c == ',';
            FUZZ_CHECK(n >= 1 && n <= cap && n == commas + 1);
            const char *p = arg;
            for (int i = 0; i < n; i++) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                char item[64];
                FUZZ_CHECK(len < sizeof item);
                memcpy(item, p, len);
                item[len] = 0;
                check_int(item, vals[i], lo, hi);
                p += len + (comma != NULL);
            }
        }
        break;
    }
    case 3:
    case 4: {
        cli_common c;
        cli_common_init(&c);
        int r = cli_common_opt("fuzz", func == 3 ? CLI_OPT_THREADS : CLI_OPT_SEED, arg, &c);
        FUZZ_CHECK(r == 1 || r == -1);
        if (r == 1 && func == 3) check_int(arg, c.threads, 0, 1024);
        if (r == 1 && func == 4) check_int(arg, (long long)c.seed, 0, 9007199254740991LL);
        break;
    }
    case 5: {
        size_t got = 0;
        double want = 0;
        int ok = cli_size("fuzz", "max-memory", arg, &got) == 0, ref = ref_size(arg, &want);
        FUZZ_CHECK(ok == ref);
        if (ok) FUZZ_CHECK(got == (size_t)want && got >= 1);
        break;
    }
    }
    free(arg);
    return 0;
}
