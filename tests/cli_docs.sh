#!/usr/bin/env bash
# docs/CLI.md keeps up with the program: every command that 'lrgd --help' lists has its own
# section ("## lrgd NAME"), and every long option that 'lrgd NAME --help' prints appears inside
# that command's section (written `--option`, not as a prefix of a longer option); the common
# options must be under "## Common options". A command or
# option added without documentation fails here, naming both. Commands still marked
# "not built yet" need a section that says so.
set -u
src=${BASH_SOURCE[0]}; [[ $src == */* ]] || src=./$src
root=$(cd "${src%/*}/.." && pwd)
: "${LRGD_BIN:?LRGD_BIN is not set}"
doc="$root/docs/CLI.md"
fail=0
say() { echo "cli_docs: $*"; }
[[ -r $doc ]] || { say "missing $doc"; exit 1; }

# The text of section "## lrgd NAME" up to the next level-2 heading.
section() { awk -v h="## lrgd $1" '$0 == h {on = 1; next} on && /^## / {exit} on {print}' "$doc"; }

commands=$("$LRGD_BIN" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')
[[ -n $commands ]] || { say "could not read the command list from '$LRGD_BIN --help'"; exit 1; }
n_cmd=0 n_opt=0
for c in $commands; do
    n_cmd=$((n_cmd + 1))
    sec=$(section "$c")
    if [[ -z $sec ]]; then say "command '$c' has no section '## lrgd $c' in docs/CLI.md"; fail=1; continue; fi
    help=$("$LRGD_BIN" help "$c")
    if grep -q "not built yet" <<<"$help"; then
        grep -qi "not built yet" <<<"$sec" || { say "lrgd $c is not built yet, but docs/CLI.md does not say so"; fail=1; }
        continue
    fi
    for o in $(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$help" | sort -u); do
        case $o in --threads | --seed | --quiet | --json | --max-memory | --help) continue ;; esac # under "Common options"
        n_opt=$((n_opt + 1))
        grep -Eq -- "\`${o}([^a-z0-9-]|\$)" <<<"$sec" ||
            { say "lrgd $c: option '$o' (from --help) is not in its section of docs/CLI.md"; fail=1; }
    done
done
# The common options and the exit codes have their own section.
common=$(awk '$0 == "## Common options" {on = 1; next} on && /^## / {exit} on {print}' "$doc")
for o in --threads --seed --quiet --json --max-memory --help --version; do
    grep -Eq -- "\`${o}([^a-z0-9-]|\$)" <<<"$common" || { say "common option '$o' is not under '## Common options'"; fail=1; }
done
# The documented exit codes are the ones the program uses: a usage error is 2.
"$LRGD_BIN" no-such-command >/dev/null 2>&1; rc=$?
[[ $rc == 2 ]] || { say "'lrgd no-such-command' exited $rc, docs/CLI.md says 2"; fail=1; }
grep -q '| 2 |' "$doc" || { say "docs/CLI.md has no exit-code table row for 2"; fail=1; }
[[ $fail == 0 ]] && say "ok: $n_cmd commands, $n_opt command options documented in docs/CLI.md"
exit $fail
