#include "cli.h"

#include "core/dist.h"
#include "lrgd/data.h"
#include "lrgd/prompt.h"
#include "lrgd/train.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void cli_common_init(cli_common *c)
{
    c->threads = 0;
    c->seed = 42;
    c->quiet = 0;
    c->json = 0;
    c->max_memory = 0;
    c->threads_given = 0;
}

int cli_int(const char *cmd, const char *opt, const char *arg, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = arg ? strtoll(arg, &end, 10) : 0;
    if (!arg || !*arg || *end || errno == ERANGE || v < min || v > max) {
        fprintf(stderr, "lrgd %s: --%s: expected an integer in %lld..%lld, got '%s'\n", cmd, opt, min, max,
                arg ? arg : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_float(const char *cmd, const char *opt, const char *arg, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = arg ? strtod(arg, &end) : 0;
    if (!arg || !*arg || *end || errno == ERANGE || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "lrgd %s: --%s: expected a number in [%g, %g], got '%s'\n", cmd, opt, min, max,
                arg ? arg : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_size(const char *cmd, const char *opt, const char *arg, size_t *out)
{
    static const char units[] = "KMGT";
    const char *s = arg ? arg : "";
    char *end;
    errno = 0;
    /* digits and at most one '.', then the unit: no sign, exponent, hex or spaces */
    size_t i = 0, dots = 0;
    while (s[i] && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.')) dots += s[i++] == '.';
    double v = i > 0 && dots <= 1 ? strtod(s, &end) : 0;
    int ok = i > 0 && dots <= 1 && end == s + i && errno != ERANGE && isfinite(v);
    double mult = 1;
    if (ok && s[i]) {
        int c = s[i] >= 'a' && s[i] <= 'z' ? s[i] - 'a' + 'A' : s[i];
        const char *u = c ? strchr(units, c) : NULL; /* strchr finds the NUL too */
        if (!u) ok = 0;
        else {
            for (const char *k = units; k <= u; k++) mult *= 1024;
            const char *rest = s + i + 1;
            ok = !*rest || !strcmp(rest, "B") || !strcmp(rest, "iB") || !strcmp(rest, "b");
        }
    }
    double bytes = v * mult;
    if (!ok || !(bytes >= 1) || bytes > (double)(1ull << 60)) {
        fprintf(stderr, "lrgd %s: --%s: expected a size such as 512M or 4G (at least 1 byte, at most 2^60 bytes), got '%s'\n",
                cmd, opt, s);
        return -1;
    }
    *out = (size_t)bytes;
    return 0;
}

int cli_int_list(const char *cmd, const char *opt, const char *arg, long long min, long long max,
                 long long *vals, int *n)
{
    int cap = *n, cnt = 0;
    const char *p = arg ? arg : "";
    if (!*p) {
        fprintf(stderr, "lrgd %s: --%s: expected a comma-separated list of integers, got ''\n", cmd, opt);
        return -1;
    }
    while (*p) {
        char buf[64];
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len >= sizeof buf || cnt >= cap) {
            fprintf(stderr, "lrgd %s: --%s: expected at most %d comma-separated integers, got '%s'\n", cmd, opt,
                    cap, arg);
            return -1;
        }
        memcpy(buf, p, len);
        buf[len] = 0;
        if (cli_int(cmd, opt, buf, min, max, &vals[cnt]) != 0) return -1;
        cnt++;
        p += len;
        if (*p == ',') {
            p++;
            if (!*p) {
                fprintf(stderr, "lrgd %s: --%s: trailing comma in '%s'\n", cmd, opt, arg);
                return -1;
            }
        }
    }
    *n = cnt;
    return 0;
}

int cli_common_opt(const char *cmd, int opt, const char *arg, cli_common *c)
{
    long long v;
    switch (opt) {
    case CLI_OPT_THREADS:
        if (cli_int(cmd, "threads", arg, 0, 1024, &v) != 0) return -1;
        c->threads = (int)v;
        c->threads_given = 1;
        return 1;
    case CLI_OPT_SEED:
        if (cli_int(cmd, "seed", arg, 0, (long long)9007199254740991LL, &v) != 0) return -1;
        c->seed = (uint64_t)v;
        return 1;
    case CLI_OPT_QUIET: c->quiet = 1; return 1;
    case CLI_OPT_JSON: c->json = 1; return 1;
    case CLI_OPT_MAX_MEMORY: return cli_size(cmd, "max-memory", arg, &c->max_memory) != 0 ? -1 : 1;
    }
    return 0;
}

int cli_common_apply(const char *cmd, const cli_common *c)
{
    lrgd_set_quiet(c->quiet);
    lrgd_mem_set_limit(c->max_memory);
    /* test hook: skip the up-front estimates so that the allocator's limit trips */
    const char *skip = getenv("LRGD_MEM_SKIP_PLAN");
    lrgd_mem_set_plan_checks(!(skip && !strcmp(skip, "1")));
    lrgd_status st = lrgd_set_threads(c->threads);
    if (st != LRGD_OK) return cli_fail(cmd, st);
    return 0;
}

const char *const cli_demo_names[] = {"none", "random", "similar", NULL};
const char *const cli_format_names[] = {"amazon", "recbole", "auto", NULL};
const int cli_format_values[] = {LRGD_DATA_AMAZON, LRGD_DATA_RECBOLE, LRGD_DATA_AUTO};

/* "A, B or C" */
static void choice_list(const char *const *ch, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; ch[i] && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%s", i == 0 ? "" : ch[i + 1] ? ", " : " or ", ch[i]);
}

int cli_opt_store(const char *cmd, const cli_opt *o, const char *arg)
{
    long long v;
    double x;
    int r = 0;
    switch (o->kind) {
    case CLI_FLAG: *(int *)o->dst = (int)o->lo; break;
    case CLI_INT:
        if ((r = cli_int(cmd, o->name, arg, (long long)o->lo, (long long)o->hi, &v)) == 0) *(int *)o->dst = (int)v;
        break;
    case CLI_LLONG: r = cli_int(cmd, o->name, arg, (long long)o->lo, (long long)o->hi, (long long *)o->dst); break;
    case CLI_I64:
        if ((r = cli_int(cmd, o->name, arg, (long long)o->lo, (long long)o->hi, &v)) == 0) *(int64_t *)o->dst = v;
        break;
    case CLI_DOUBLE:
        if ((r = cli_float(cmd, o->name, arg, o->lo, o->hi, &x)) == 0) *(double *)o->dst = x;
        break;
    case CLI_STR:
    case CLI_STRS:
        if (!arg || !*arg) {
            fprintf(stderr, "lrgd %s: --%s: expected %s (see 'lrgd help %s')\n", cmd, o->name,
                    o->what ? o->what : "a value", cmd);
            return -1;
        }
        if (o->kind == CLI_STR) *(const char **)o->dst = arg;
        else if (*o->count < (int)o->hi) ((const char **)o->dst)[(*o->count)++] = arg;
        else {
            fprintf(stderr, "lrgd %s: --%s: at most %d of them, got one more: '%s'\n", cmd, o->name, (int)o->hi, arg);
            return -1;
        }
        break;
    case CLI_CHOICE:
        for (int i = 0; o->choices[i]; i++)
            if (arg && !strcmp(arg, o->choices[i])) {
                *(int *)o->dst = o->values ? o->values[i] : i;
                goto stored;
            }
        {
            char list[256];
            choice_list(o->choices, list, sizeof list);
            fprintf(stderr, "lrgd %s: --%s: expected %s, got '%s' (see 'lrgd help %s')\n", cmd, o->name, list,
                    arg ? arg : "", cmd);
        }
        return -1;
    case CLI_INT_LIST:
        r = cli_int_list(cmd, o->name, arg, (long long)o->lo, (long long)o->hi, (long long *)o->dst, o->count);
        break;
    }
    if (r != 0) return -1;
stored:
    if (o->seen) *o->seen = 1;
    return 0;
}

int cli_parse(const char *cmd, const char *help, int argc, char **argv, const cli_opt *opts, cli_common *cc)
{
    return cli_parse_args(cmd, help, argc, argv, opts, cc, NULL);
}

int cli_parse_args(const char *cmd, const char *help, int argc, char **argv, const cli_opt *opts, cli_common *cc,
                   int *first)
{
    /* option i answers as CLI_OPT_TABLE + i: above the common options' values */
    enum { CLI_OPT_TABLE = 4096 };
    static const struct option common[] = {CLI_COMMON_OPTIONS, {0, 0, 0, 0}};
    int n = 0, nc = (int)(sizeof common / sizeof common[0]);
    while (opts[n].name) n++;
    struct option *lo = calloc((size_t)(n + nc), sizeof *lo);
    int *cap = calloc((size_t)n + 1, sizeof *cap); /* a list's capacity, for each time it is given */
    if (!lo || !cap) {
        free(lo);
        free(cap);
        fprintf(stderr, "lrgd %s: out of memory\n", cmd);
        return CLI_RUNTIME;
    }
    for (int i = 0; i < n; i++) {
        lo[i] = (struct option){opts[i].name, opts[i].kind == CLI_FLAG ? no_argument : required_argument, 0,
                                CLI_OPT_TABLE + i};
        if (opts[i].kind == CLI_INT_LIST) cap[i] = *opts[i].count;
    }
    memcpy(lo + n, common, sizeof common);
    int rc = CLI_CONTINUE, c;
    optind = 1;
    opterr = 0;
    while (rc == CLI_CONTINUE && (c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (c == CLI_OPT_HELP) {
            fputs(help, stdout);
            rc = CLI_OK;
        } else if (c >= CLI_OPT_TABLE && c < CLI_OPT_TABLE + n) {
            const cli_opt *o = &opts[c - CLI_OPT_TABLE];
            if (o->kind == CLI_INT_LIST) *o->count = cap[c - CLI_OPT_TABLE]; /* the last one given counts */
            if (cli_opt_store(cmd, o, optarg) != 0) rc = CLI_USAGE;
        } else {
            int r = cli_common_opt(cmd, c, optarg, cc);
            if (r < 0) rc = CLI_USAGE;
            else if (r == 0) rc = cli_usage(cmd, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (first) *first = optind;
    else if (rc == CLI_CONTINUE && optind < argc) rc = cli_usage(cmd, "unexpected argument '%s'", argv[optind]);
    free(lo);
    free(cap);
    return rc;
}

lrgd_status cli_need_item_vocab(const char *cmd, const lrgd_model *m, const char *path)
{
    lrgd_prompt_vocab pv;
    lrgd_status st = lrgd_prompt_vocab_of(m, &pv);
    if (st == LRGD_E_UNSUPPORTED)
        return lrgd_fail(st, "%s has no lrgd item vocabulary (a text LLM): lrgd %s works on item tokens and needs a "
                             "model trained by 'lrgd train' on the dataset (text LLMs: eval --method textllm, dual, "
                             "effect)", path, cmd);
    return st == LRGD_OK ? LRGD_OK : lrgd_fail_wrap(st, "%s", path);
}

lrgd_status cli_out_dir(const char *dir)
{
    struct stat sb;
    if (mkdir(dir, 0777) == 0 || (errno == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))) return LRGD_OK;
    return lrgd_fail(LRGD_E_WRITE, "%s: cannot create the output directory (%s)", dir,
                     errno == EEXIST ? "a file of that name exists" : strerror(errno));
}

void cli_note(const char *cmd, int quiet, const char *fmt, ...)
{
    if (quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "lrgd %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

lrgd_status cli_print_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return lrgd_fail(LRGD_E_IO, "%s: cannot open: %s", path, strerror(errno));
    char buf[4096];
    size_t n;
    int bad = 0;
    while (!bad && (n = fread(buf, 1, sizeof buf, f)) > 0) bad = fwrite(buf, 1, n, stdout) != n;
    bad = bad || ferror(f);
    fclose(f);
    if (bad || fflush(stdout) != 0) return lrgd_fail(LRGD_E_WRITE, "stdout: copying %s failed", path);
    return LRGD_OK;
}

int cli_dist_end(const char *cmd, lrgd_status st)
{
    if (st == LRGD_OK) st = lrgd_dist_barrier();
    return st == LRGD_OK ? CLI_OK : lrgd_dist_fail(cmd, st);
}

int cli_fail(const char *cmd, lrgd_status st)
{
    fprintf(stderr, "lrgd %s: %s\n", cmd, lrgd_last_error());
    return lrgd_exit_code(st);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "lrgd %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'lrgd help %s')\n", cmd);
    return CLI_USAGE;
}

static char g_cmdline[4096];

void cli_set_command_line(int argc, char **argv)
{
    size_t n = 0;
    g_cmdline[0] = 0;
    for (int i = 0; i < argc && n + 4 < sizeof g_cmdline; i++) {
        int w = snprintf(g_cmdline + n, sizeof g_cmdline - n, "%s%s", i ? " " : "", argv[i]);
        if (w < 0) break;
        n += (size_t)w;
    }
    if (n >= sizeof g_cmdline) n = sizeof g_cmdline - 1;
    g_cmdline[n] = 0;
}

const char *cli_command_line(void) { return g_cmdline; }

void cli_json_run_info(lrgd_json *j, const cli_common *c)
{
    lrgd_json_kstr(j, "command", cli_command_line());
    lrgd_json_kstr(j, "version", lrgd_version());
    lrgd_json_kint(j, "seed", (long long)c->seed);
    lrgd_json_kint(j, "threads", lrgd_get_threads());
}
