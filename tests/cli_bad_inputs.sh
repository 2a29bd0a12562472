#!/usr/bin/env bash
# Every bad input in tests/data/bad/*.tsv gets the expected exit code and
# message, and never crashes. A .tsv line is
#   <file> TAB <lrgd arguments> TAB <exit code> TAB <substring of stderr>
# where {} in the arguments is the file's path and {tmp} a scratch directory.
# Lines starting with # are comments.
set -u
: "${LRGD_BIN:?set LRGD_BIN to the lrgd binary}"
DATA="${LRGD_TESTDATA:-$(cd "$(dirname "$0")" && pwd)/data}/bad"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lrgd_bad.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=0"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

pass=0 fail=0 skip=0
shopt -s nullglob
tsvs=("$DATA"/*.tsv)
if [ ${#tsvs[@]} -eq 0 ]; then echo "no .tsv files in $DATA"; echo "0 passed, 1 failed"; exit 1; fi
for tsv in "${tsvs[@]}"; do
    lineno=0
    while IFS=$'\t' read -r file args code expect || [ -n "${file:-}" ]; do
        lineno=$((lineno + 1))
        case "$file" in ''|'#'*) continue ;; esac
        where="$(basename "$tsv"):$lineno ($file)"
        if [ -z "${args:-}" ] || [ -z "${code:-}" ] || [ -z "${expect:-}" ]; then
            echo "FAIL $where: malformed line (need 4 tab-separated fields)"; fail=$((fail + 1)); continue
        fi
        if [ ! -e "$DATA/$file" ]; then
            echo "FAIL $where: file $DATA/$file does not exist"; fail=$((fail + 1)); continue
        fi
        a=${args//\{tmp\}/$TMP}
        a=${a//\{\}/$DATA/$file}
        read -r -a argv <<< "$a"
        rm -rf "$TMP"/out*
        timeout 120 "$LRGD_BIN" "${argv[@]}" >"$TMP/stdout" 2>"$TMP/stderr"
        rc=$?
        err=$(cat "$TMP/stderr")
        if grep -q "not built yet" "$TMP/stderr" && [ "$rc" -eq 1 ]; then
            echo "skip $where: '${argv[0]}' is not built yet"; skip=$((skip + 1)); continue
        fi
        bad=""
        if [ "$rc" -eq 124 ]; then bad="timed out (hang?)"
        elif [ "$rc" -ge 128 ]; then bad="crashed (exit $rc)"
        elif grep -qE "AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehaviorSanitizer" "$TMP/stderr"; then bad="sanitizer report"
        elif [ "$rc" -ne "$code" ]; then bad="exit $rc, expected $code"
        elif ! grep -qF -- "$expect" "$TMP/stderr"; then bad="stderr lacks '$expect'"
        elif [ "$(wc -l < "$TMP/stderr")" -gt 20 ]; then bad="more than 20 lines on stderr"
        fi
        if [ -n "$bad" ]; then
            echo "FAIL $where: lrgd $a: $bad"
            printf '%s\n' "$err" | head -5 | sed 's/^/    | /'
            fail=$((fail + 1))
        else
            pass=$((pass + 1))
        fi
    done < "$tsv"
done

# Every model file in the corpus is exercised by some line.
for f in "$DATA"/*.gguf "$DATA"/*.bin; do
    b=$(basename "$f")
    if ! cut -f1 "${tsvs[@]}" | grep -qxF -- "$b"; then
        echo "FAIL $b: in $DATA but listed in no .tsv"; fail=$((fail + 1))
    fi
done
echo "bad inputs: $skip skipped (command not built yet)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
