/* Commands whose issue has not landed yet say so plainly and fail. Each
 * moves to its own cmd_NAME.c file when it is built. */
#include "cli.h"
#include "commands.h"

#define PENDING(name, issue)                                                                   \
    const char help_##name[] = "lrgd " #name ": not built yet (issue " #issue ").\n";         \
    int cmd_##name(int argc, char **argv)                                                      \
    {                                                                                          \
        (void)argc; (void)argv;                                                                \
        fprintf(stderr, "lrgd " #name ": not built yet (issue " #issue ")\n");                \
        return CLI_RUNTIME;                                                                    \
    }

PENDING(bench, 7)
