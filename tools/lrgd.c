/* lrgd <command> [options]: git-style dispatcher. */
#include "cli.h"
#include "commands.h"
#include "core/core.h"
#include "core/dist.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const cli_command commands[] = {
    {"train", "train the embedded recommender on interaction data", cmd_train, help_train},
    {"eval", "evaluate a recommender (Pop, ItemKNN, a model) with the LOO protocol", cmd_eval, help_eval},
    {"dual", "rewrite every attention head as its dual model and check E1-E4", cmd_dual, help_dual},
    {"effect", "score demonstrations by Effect_D", cmd_effect, help_effect},
    {"optimize", "two-stage demonstration optimization", cmd_optimize, help_optimize},
    {"experiment", "the full pipeline for one dataset, with report.html", cmd_experiment, help_experiment},
    {"generate", "decode tokens from a model", cmd_generate, help_generate},
    {"convert", "convert a llama2.c checkpoint to GGUF", cmd_convert, help_convert},
    {"info", "print a model's hyper-parameters, tensors and metadata", cmd_info, help_info},
    {"bench", "benchmarks", cmd_bench, help_bench},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: lrgd <command> [options]\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'lrgd help <command>' or 'lrgd <command> --help' for a command's options.\n");
}

static const cli_command *find(const char *name)
{
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* Commands that shard their work across MPI ranks (core/dist.h,
 * docs/DISTRIBUTED.md). Any other command started as several ranks would
 * repeat its work and race on its outputs, so it refuses. */
static const char *const mpi_commands[] = {"eval", "effect", "optimize", "experiment"};

static int mpi_aware(const char *name)
{
    for (size_t i = 0; i < sizeof mpi_commands / sizeof mpi_commands[0]; i++)
        if (!strcmp(mpi_commands[i], name)) return 1;
    return 0;
}

static int dispatch(int argc, char **argv)
{
    cli_set_command_line(argc, argv);
    if (argc < 2) { usage(stderr); return CLI_USAGE; }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) { usage(stdout); return CLI_OK; }
    if (!strcmp(name, "--version")) { printf("lrgd %s\n", lrgd_version()); return CLI_OK; }
    if (!strcmp(name, "help")) {
        if (argc < 3) { usage(stdout); return CLI_OK; }
        const cli_command *c = find(argv[2]);
        if (!c) { fprintf(stderr, "lrgd help: unknown command '%s'\n", argv[2]); return CLI_USAGE; }
        fputs(c->help, stdout);
        return CLI_OK;
    }
    const cli_command *c = find(name);
    if (!c) {
        fprintf(stderr, "lrgd: unknown command '%s'\n", name);
        usage(stderr);
        return CLI_USAGE;
    }
    if (lrgd_dist_size() > 1 && !mpi_aware(name)) {
        if (lrgd_dist_rank() == 0)
            fprintf(stderr, "lrgd %s: does not run as %d MPI ranks; start it as one process\n", name,
                    lrgd_dist_size());
        return CLI_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
    lrgd_wait_policy_exec(argv); /* before MPI starts */
    if (lrgd_dist_init(&argc, &argv) != LRGD_OK) {
        fprintf(stderr, "lrgd: %s\n", lrgd_last_error());
        return CLI_RUNTIME;
    }
    int rc = dispatch(argc, argv);
    lrgd_dist_finalize();
    return rc;
}
