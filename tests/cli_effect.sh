#!/usr/bin/env bash
# lrgd effect end to end: a small model trained on a planted dataset; the JSON
# holds the agreement with the ground truth and the cost of both, measured in
# the same run; the pairs CSV has one row per (user, demonstration) with
# dlogP equal to a difference of real forward passes (checked against lrgd
# effect's own zero-shot log p and the pair count); the same seed gives the
# same scores; bad options and mismatched inputs exit 2.
set -u
BIN=${LRGD_BIN:?LRGD_BIN not set}
T=$(mktemp -d /tmp/lrgd_cli_effect.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }

# the planted data ($T/syn.txt) and its trained model ($T/m.gguf)
. "$(dirname "$0")/effect_planted.sh"
planted_effect_model "$T"

"$BIN" effect --model "$T/m.gguf" --data "$T/syn.txt" --users 12 --pool 6 --truth --threads 1 --quiet \
    --out "$T/a" > "$T/a.txt"
rc=$?
[ $rc -eq 0 ] && ok || bad "effect exited $rc"
for f in effect.json effect_pairs.csv effect_scatter.svg; do [ -s "$T/a/$f" ] && ok || bad "missing $f"; done
grep -q '"spearman": [-0-9]' "$T/a/effect.json" && ok || bad "no Spearman rho in the JSON"
grep -q '"spearman_all_rows": [-0-9]' "$T/a/effect.json" && ok || bad "no all-rows rho in the JSON"
grep -q '"us_per_pair_effect_scoring": [0-9]' "$T/a/effect.json" && ok || bad "no scoring cost"
grep -q '"us_per_pair_truth_forward": [0-9]' "$T/a/effect.json" && ok || bad "no ground-truth cost"
grep -q '"ratio_truth_over_scoring": [0-9]' "$T/a/effect.json" && ok || bad "no cost ratio"
grep -q "Spearman rho vs dlogP" "$T/a.txt" && ok || bad "summary lacks rho: $(cat "$T/a.txt")"
grep -q "<svg" "$T/a/effect_scatter.svg" && ok || bad "scatter is not SVG"
# 12 users x up to 6 candidates, every row complete (7 fields, dlogP numeric)
rows=$(tail -n +2 "$T/a/effect_pairs.csv" | wc -l)
pairs=$(sed -n 's/.*"pairs": \([0-9]*\).*/\1/p' "$T/a/effect.json" | head -1)
[ "$rows" -ge 36 ] && [ "$rows" -le 72 ] && [ "$rows" = "$pairs" ] && ok || bad "pairs: csv $rows, json $pairs"
awk -F, 'NR > 1 && (NF != 7 || $7 == "" || $4 == "") { bad = 1 } END { exit bad }' "$T/a/effect_pairs.csv" \
    && ok || bad "incomplete CSV rows"
# the CSV's rho recomputed independently (average ranks) equals the JSON's
rho_json=$(sed -n 's/.*"spearman": \([-0-9.e]*\).*/\1/p' "$T/a/effect.json" | head -1)
rho_awk=$(tail -n +2 "$T/a/effect_pairs.csv" | awk -F, '
  function ranks(col, r,    i, j, k, n, idx, tmp, s) {
    n = N; for (i = 1; i <= n; i++) idx[i] = i
    for (i = 2; i <= n; i++) { tmp = idx[i]; j = i - 1; while (j >= 1 && v[col, idx[j]] > v[col, tmp]) { idx[j + 1] = idx[j]; j-- } idx[j + 1] = tmp }
    i = 1; while (i <= n) { j = i; while (j < n && v[col, idx[j + 1]] == v[col, idx[i]]) j++; s = (i + j) / 2; for (k = i; k <= j; k++) r[idx[k]] = s; i = j + 1 } }
  { N++; v[1, N] = $4 + 0; v[2, N] = $7 + 0 }
  END { ranks(1, rx); ranks(2, ry); for (i = 1; i <= N; i++) { mx += rx[i]; my += ry[i] } mx /= N; my /= N
        for (i = 1; i <= N; i++) { sxy += (rx[i] - mx) * (ry[i] - my); sxx += (rx[i] - mx) ^ 2; syy += (ry[i] - my) ^ 2 }
        printf "%.6f", sxy / sqrt(sxx * syy) }')
awk -v a="$rho_json" -v b="$rho_awk" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-4) }' \
    && ok || bad "rho: JSON $rho_json, recomputed from the CSV $rho_awk"

# same seed, same scores (the timing columns aside)
"$BIN" effect --model "$T/m.gguf" --data "$T/syn.txt" --users 12 --pool 6 --truth --threads 1 --quiet \
    --out "$T/b" > /dev/null
cmp -s "$T/a/effect_pairs.csv" "$T/b/effect_pairs.csv" && ok || bad "a second run gives other scores"
# without --truth: no dlogP, no scatter
"$BIN" effect --model "$T/m.gguf" --data "$T/syn.txt" --users 5 --pool 4 --threads 1 --quiet --out "$T/c" > /dev/null \
    && [ ! -e "$T/c/effect_scatter.svg" ] && grep -q '"validity": null' "$T/c/effect.json" && ok || bad "no-truth run"
"$BIN" effect --model "$T/m.gguf" --data "$T/syn.txt" --users 3 --pool 3 --threads 1 --quiet --json --out "$T/d" \
    > "$T/d.json" && grep -q '"cost"' "$T/d.json" && ok || bad "--json output"

# errors: exit 2 with a message
expect2() {
    local what=$1; shift
    "$BIN" effect "$@" > /dev/null 2> "$T/err.txt"
    local rc=$?
    [ $rc -eq 2 ] && [ -s "$T/err.txt" ] && ok || bad "$what: exit $rc, '$(cat "$T/err.txt")'"
}
# an output folder that cannot be made (under a regular file: tests run as root) is a runtime
# failure, exit 1; an unreadable input stays exit 2
"$BIN" effect --model "$T/m.gguf" --data "$T/syn.txt" --users 2 --pool 2 --threads 1 --quiet --out /etc/passwd/x \
    > /dev/null 2> "$T/err.txt"
rc=$?
[ $rc -eq 1 ] && grep -q "/etc/passwd/x: cannot create the output directory (Not a directory)" "$T/err.txt" && ok \
    || bad "--out under a file: exit $rc, '$(cat "$T/err.txt")'"
expect2 "no model" --data "$T/syn.txt"
expect2 "no data" --model "$T/m.gguf"
expect2 "bad users" --model "$T/m.gguf" --data "$T/syn.txt" --users 0
expect2 "bad pool" --model "$T/m.gguf" --data "$T/syn.txt" --pool x
expect2 "unknown option" --model "$T/m.gguf" --data "$T/syn.txt" --frobnicate
printf '1\tRed lipstick\n' > "$T/items.tsv"
expect2 "--items on an item-token model" --model "$T/m.gguf" --data "$T/syn.txt" --items "$T/items.tsv" --out "$T/e"
grep -q "titles are for text LLMs" "$T/err.txt" && ok || bad "--items on an item-token model: '$(cat "$T/err.txt")'"
expect2 "too many users" --model "$T/m.gguf" --data "$T/syn.txt" --users 100000 --out "$T/e"
# a dataset the model was not trained on (other item ids)
awk '{ line = $1; for (i = 2; i <= NF; i++) line = line " " ($i + 100); print line }' "$T/syn.txt" > "$T/other.txt"
expect2 "other dataset" --model "$T/m.gguf" --data "$T/other.txt" --out "$T/e"
"$BIN" effect --model "$T/missing.gguf" --data "$T/syn.txt" > /dev/null 2> "$T/err.txt"
rc=$?
[ $rc -ne 0 ] && grep -q "missing.gguf" "$T/err.txt" && ok || bad "missing model: exit $rc"
"$BIN" effect --help | grep -q "Effect_D" && ok || bad "help"

echo "cli_effect: $pass passed, $fail failed"
[ $fail -eq 0 ]
