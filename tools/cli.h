/* Shared pieces of the lrgd command line: option parsing, common options,
 * the record of how a run was invoked. */
#ifndef LRGD_CLI_H
#define LRGD_CLI_H

#include "core/core.h"
#include "lrgd/model.h"

#include <getopt.h>

/* Exit codes: 0 success, 1 runtime failure, 2 usage error or bad input. */
enum { CLI_OK = 0, CLI_RUNTIME = 1, CLI_USAGE = 2 };

/* Options every command takes. */
typedef struct cli_common {
    int threads;   /* --threads N (0: all cores) */
    uint64_t seed; /* --seed N */
    int quiet;     /* --quiet */
    int json;      /* --json: machine-readable output on stdout */
    size_t max_memory; /* --max-memory SIZE in bytes (0: no limit) */
    int threads_given; /* 1 when --threads was on the command line (0 there too) */
} cli_common;

#define CLI_OPT_THREADS 1001
#define CLI_OPT_SEED 1002
#define CLI_OPT_QUIET 1003
#define CLI_OPT_JSON 1004
#define CLI_OPT_MAX_MEMORY 1005
#define CLI_OPT_HELP 'h'

/* Spliced into the getopt_long table cli_parse builds (after the command's own). */
#define CLI_COMMON_OPTIONS                                                                         \
    {"threads", required_argument, 0, CLI_OPT_THREADS}, {"seed", required_argument, 0, CLI_OPT_SEED}, \
        {"quiet", no_argument, 0, CLI_OPT_QUIET}, {"json", no_argument, 0, CLI_OPT_JSON},          \
        {"max-memory", required_argument, 0, CLI_OPT_MAX_MEMORY}, {"help", no_argument, 0, CLI_OPT_HELP}

#define CLI_COMMON_HELP                                                        \
    "  --threads N   threads for lrgd and OpenBLAS (default: all cores)\n"      \
    "  --seed N      random seed (default 42)\n"                               \
    "  --quiet       no progress output\n"                                     \
    "  --json        print the result as JSON on stdout\n"                     \
    "  --max-memory SIZE  memory limit, e.g. 512M or 4G (K, M, G, T: powers\n" \
    "                of 1024); too much fails up front (exit 2), an allocation\n" \
    "                past it fails cleanly (exit 1) (default: no limit)\n"      \
    "  -h, --help    this help\n"

void cli_common_init(cli_common *c);
/* Handle one of the common options. Returns 1 if handled, 0 if c is not a
 * common option, -1 on a bad value (message already printed). */
int cli_common_opt(const char *cmd, int opt, const char *arg, cli_common *c);
/* Apply threads/quiet/max-memory. */
int cli_common_apply(const char *cmd, const cli_common *c);

/* Strict number parsing: the whole string must be a number in [min, max].
 * On failure prints "lrgd CMD: --OPT: expected ..., got 'ARG'" and returns -1. */
int cli_int(const char *cmd, const char *opt, const char *arg, long long min, long long max, long long *out);
int cli_float(const char *cmd, const char *opt, const char *arg, double min, double max, double *out);
/* A size in bytes: a number (a fraction allowed) with an optional unit K, M,
 * G, T (powers of 1024; "MB", "MiB" accepted), at least 1 byte, at most 2^60. */
int cli_size(const char *cmd, const char *opt, const char *arg, size_t *out);
/* Comma-separated integers, e.g. "1,5,10". *n in, capacity; out, count. */
int cli_int_list(const char *cmd, const char *opt, const char *arg, long long min, long long max,
                 long long *vals, int *n);

/* ---- a command's options as a table ------------------------------------------
 *
 * A command lists its options once; cli_parse builds the getopt_long table
 * (its options, then the common ones), parses argv strictly (optind from 1,
 * getopt's own messages off) and stores each value where the entry says, so
 * that a command has no getopt loop, no switch and no per-option range check
 * of its own. Every bad value is a usage error with a one-line reason:
 *   "lrgd CMD: --OPT: expected an integer in LO..HI, got 'ARG'"    (INT, LLONG, I64)
 *   "lrgd CMD: --OPT: expected a number in [LO, HI], got 'ARG'"    (DOUBLE)
 *   "lrgd CMD: --OPT: expected A, B or C, got 'ARG'"               (CHOICE)
 *   "lrgd CMD: --OPT: expected WHAT" (STR given ""),
 *   "lrgd CMD: unknown or incomplete option '--X'", "... unexpected argument 'X'". */
typedef enum cli_kind {
    CLI_FLAG,     /* no argument: *(int *)dst = (int)lo when given (CLI_O_FLAG: 1, CLI_O_SET: any) */
    CLI_INT,      /* *(int *)dst, an integer in [lo, hi] */
    CLI_LLONG,    /* *(long long *)dst */
    CLI_I64,      /* *(int64_t *)dst */
    CLI_DOUBLE,   /* *(double *)dst, a finite number in [lo, hi] */
    CLI_STR,      /* *(const char **)dst = the argument (not empty); what: "a directory" */
    CLI_CHOICE,   /* *(int *)dst = values[i] (or i without values) for choices[i] */
    CLI_INT_LIST, /* (long long *)dst: up to *count comma-separated integers in [lo, hi]; *count gets how many */
    CLI_STRS      /* repeatable: ((const char **)dst)[(*count)++] = the argument (not empty), at most hi of them */
} cli_kind;

typedef struct cli_opt {
    const char *name;    /* the long option without "--"; NULL ends the table */
    cli_kind kind;
    void *dst;
    double lo, hi;       /* ranges (integers up to 2^53 are exact); CLI_FLAG: the value stored */
    const char *const *choices; /* CLI_CHOICE: NULL-terminated names */
    const int *values;   /* CLI_CHOICE: the value of each name (NULL: its index) */
    const char *what;    /* CLI_STR: what the argument is, for the message */
    int *seen;           /* NULL, or set to 1 when the option is given */
    int *count;          /* CLI_INT_LIST: capacity in, count out */
} cli_opt;

/* Shorthands for table entries. */
#define CLI_O_FLAG(name, dst) {name, CLI_FLAG, dst, 1, 1, NULL, NULL, NULL, NULL, NULL}
#define CLI_O_SET(name, dst, value) {name, CLI_FLAG, dst, value, value, NULL, NULL, NULL, NULL, NULL}
#define CLI_O_INT(name, dst, lo, hi) {name, CLI_INT, dst, lo, hi, NULL, NULL, NULL, NULL, NULL}
#define CLI_O_LLONG(name, dst, lo, hi) {name, CLI_LLONG, dst, lo, hi, NULL, NULL, NULL, NULL, NULL}
#define CLI_O_I64(name, dst, lo, hi) {name, CLI_I64, dst, lo, hi, NULL, NULL, NULL, NULL, NULL}
#define CLI_O_DOUBLE(name, dst, lo, hi) {name, CLI_DOUBLE, dst, lo, hi, NULL, NULL, NULL, NULL, NULL}
#define CLI_O_STR(name, dst, what) {name, CLI_STR, dst, 0, 0, NULL, NULL, what, NULL, NULL}
#define CLI_O_CHOICE(name, dst, choices, values) {name, CLI_CHOICE, dst, 0, 0, choices, values, NULL, NULL, NULL}
#define CLI_O_LIST(name, dst, count, lo, hi) {name, CLI_INT_LIST, dst, lo, hi, NULL, NULL, NULL, NULL, count}
#define CLI_O_STRS(name, dst, count, max, what) {name, CLI_STRS, dst, 0, max, NULL, NULL, what, NULL, count}
#define CLI_O_END {NULL, CLI_FLAG, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL}

/* Choices shared by several commands: --demos (index = lrgd_demo_mode) and
 * --format (values: lrgd_data_format). */
extern const char *const cli_demo_names[];
extern const char *const cli_format_names[];
extern const int cli_format_values[];

/* What cli_parse returns when the command should go on. */
#define CLI_CONTINUE (-1)
/* Parse argv[1..) against opts (and the common options into cc). Returns
 * CLI_CONTINUE, or the exit code to return at once: CLI_OK after printing
 * help (-h, --help) to stdout, CLI_USAGE after a message on stderr. */
int cli_parse(const char *cmd, const char *help, int argc, char **argv, const cli_opt *opts, cli_common *cc);
/* The same for a command that takes file arguments after its options (in
 * any order with them): *first gets the index of the first one in argv
 * (getopt moves them to the end); how many is the command's to check. */
int cli_parse_args(const char *cmd, const char *help, int argc, char **argv, const cli_opt *opts, cli_common *cc,
                   int *first);
/* Store one option's argument as opts' entry o says (0, or -1 after a message). */
int cli_opt_store(const char *cmd, const cli_opt *o, const char *arg);

/* LRGD_E_UNSUPPORTED with a plain reason when m (loaded from path) has no
 * lrgd item vocabulary, i.e. is a text LLM: for the commands that work on
 * item tokens (optimize, experiment). */
lrgd_status cli_need_item_vocab(const char *cmd, const lrgd_model *m, const char *path);

/* Make the output folder dir (one level) unless it is one already;
 * LRGD_E_WRITE (exit 1) when it cannot be. */
lrgd_status cli_out_dir(const char *dir);

/* "lrgd CMD: message" on stderr unless quiet: a command's progress notes. */
void cli_note(const char *cmd, int quiet, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Copy the file at path (an output just written) to stdout, for --json. */
lrgd_status cli_print_file(const char *path);
/* The end of a command that may run as MPI ranks, with its status st: the
 * other ranks wait asleep until rank 0 has written the outputs (MPI_Finalize
 * would spin); a failure stops every rank (they may wait in a collective).
 * Returns the exit code. */
int cli_dist_end(const char *cmd, lrgd_status st);

/* Print "lrgd CMD: message" from lrgd_last_error() and map status to an exit code. */
int cli_fail(const char *cmd, lrgd_status st);
/* Print "lrgd CMD: MESSAGE" and a hint to --help; returns CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The exact command line of this run (for output files). */
const char *cli_command_line(void);
void cli_set_command_line(int argc, char **argv);
/* Write the standard "run" header object fields into an open JSON object:
 * command, version, seed, threads. */
void cli_json_run_info(lrgd_json *j, const cli_common *c);

/* A command: its entry point and its help text. */
typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    const char *help;
} cli_command;

#endif
