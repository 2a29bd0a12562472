/* Every subcommand: int cmd_NAME(int argc, char **argv) and its help text. */
#ifndef LRGD_COMMANDS_H
#define LRGD_COMMANDS_H

#define LRGD_COMMAND(name) int cmd_##name(int argc, char **argv); extern const char help_##name[];
LRGD_COMMAND(train)
LRGD_COMMAND(eval)
LRGD_COMMAND(dual)
LRGD_COMMAND(effect)
LRGD_COMMAND(optimize)
LRGD_COMMAND(experiment)
LRGD_COMMAND(generate)
LRGD_COMMAND(convert)
LRGD_COMMAND(info)
LRGD_COMMAND(bench)
#undef LRGD_COMMAND

#endif
