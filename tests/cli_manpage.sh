#!/usr/bin/env bash
# docs/lrgd.1 stays true to the program: groff renders it without warnings, it has a section
# for every command 'lrgd --help' lists, and every long option that a built command's --help
# prints (and the common options) is described in it. A new option without documentation
# fails here, naming the command and the option.
set -u
src=${BASH_SOURCE[0]}; [[ $src == */* ]] || src=./$src
root=$(cd "${src%/*}/.." && pwd)
: "${LRGD_BIN:?LRGD_BIN is not set}"
man="$root/docs/lrgd.1"
fail=0
say() { echo "cli_manpage: $*"; }

command -v groff >/dev/null || { say "groff not found: skipping"; exit 77; }
warn=$(groff -man -ww -z "$man" 2>&1)
[[ -z $warn ]] || { say "groff warnings:"; echo "$warn"; fail=1; }
grep -q '^\.TH LRGD 1' "$man" || { say "no .TH header"; fail=1; }

# The option "--a-b" is written "\-\-a\-b" in roff; it must not continue with more name characters.
documented() {
    local pat
    pat=$(printf '%s' "$1" | sed 's/-/\\\\-/g')
    grep -Eq -- "${pat}([^a-z0-9\\\\]|\\\\[^-]|$)" "$man"
}

commands=$("$LRGD_BIN" --help | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}')
[[ -n $commands ]] || { say "could not read the command list"; exit 1; }
n_cmd=0 n_opt=0
for c in $commands; do
    n_cmd=$((n_cmd + 1))
    grep -q "^\.SS $c\$" "$man" || { say "command '$c' has no section (.SS $c)"; fail=1; }
    help=$("$LRGD_BIN" help "$c")
    if grep -q "not built yet" <<<"$help"; then continue; fi
    for o in $(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$help" | sort -u); do
        n_opt=$((n_opt + 1))
        documented "$o" || { say "lrgd $c: option '$o' is not in docs/lrgd.1"; fail=1; }
    done
done
for o in --threads --seed --quiet --json --max-memory --help --version; do
    documented "$o" || { say "common option '$o' is not in docs/lrgd.1"; fail=1; }
done
# man renders it (when man-db is installed)
if command -v man >/dev/null; then
    MANWIDTH=80 man -l "$man" 2>/dev/null | grep -q "LRGD(1)" || { say "man -l does not render it"; fail=1; }
fi
[[ $fail == 0 ]] && say "ok: $n_cmd commands, $n_opt command options documented"
exit $fail
