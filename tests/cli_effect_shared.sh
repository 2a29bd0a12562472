#!/usr/bin/env bash
# lrgd effect --shared-pool end to end, on the planted data and model of cli_effect.sh: every
# sampled user is scored against ONE pool of P demonstrations through the matrix scorer. The
# pairs CSV has users x P rows, the same P demonstration users for every user, none of them a
# scored user; the JSON says the mode; with --truth, rho is finite, in [-1, 1] and equals the
# one recomputed from the CSV; the pairs are the same bytes at --threads 1 and 2 and through
# --checkpoint shards (and their resume); on the (user, demonstration) pairs that the per-user
# mode also scores (same seed: same users), Effect_D agrees up to float32 rounding and dlogP
# is the same number; impossible options exit 2 with a message.
set -u
BIN=${LRGD_BIN:?LRGD_BIN not set}
T=$(mktemp -d /tmp/lrgd_cli_effect_shared.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }

# the planted data ($T/syn.txt) and its trained model ($T/m.gguf)
. "$(dirname "$0")/effect_planted.sh"
planted_effect_model "$T"

U=20 P=40
run() { "$BIN" effect --model "$T/m.gguf" --data "$T/syn.txt" --users $U --seed 7 "$@"; }

run --pool $P --shared-pool --truth --threads 1 --out "$T/a" > "$T/a.txt"
rc=$?
[ $rc -eq 0 ] && ok || bad "effect --shared-pool exited $rc"
for f in effect.json effect_pairs.csv effect_scatter.svg; do [ -s "$T/a/$f" ] && ok || bad "missing $f"; done
grep -q '"mode": "shared_pool"' "$T/a/effect.json" && ok || bad "the JSON does not say the mode"
grep -q "shared pool: $U users x $P demonstrations = $((U * P)) pairs" "$T/a.txt" && ok || bad "summary: $(cat "$T/a.txt")"
grep -q 'Spearman rho vs dlogP' "$T/a.txt" && grep -q 'Effect_D scoring .* us.*ground-truth forward pass .* us: [0-9]*x' \
    "$T/a.txt" && ok || bad "summary lacks rho or the costs: $(cat "$T/a.txt")"
# (a) users x P rows, complete; every user has the same P distinct demonstration users, none scored
rows=$(tail -n +2 "$T/a/effect_pairs.csv" | wc -l)
pairs=$(sed -n 's/.*"pairs": \([0-9]*\).*/\1/p' "$T/a/effect.json" | head -1)
enc=$(sed -n 's/.*"demonstrations_encoded": \([0-9]*\).*/\1/p' "$T/a/effect.json" | head -1)
[ "$rows" = $((U * P)) ] && [ "$pairs" = "$rows" ] && [ "$enc" = $P ] && ok \
    || bad "pairs: csv $rows, json $pairs, encoded $enc (want $((U * P)), $P)"
awk -F, 'NR > 1 && (NF != 7 || $4 == "" || $7 == "") { bad = 1 } END { exit bad }' "$T/a/effect_pairs.csv" \
    && ok || bad "incomplete CSV rows"
awk -F, -v P=$P 'NR == 1 { next }
    { n[$1]++; pool[$1] = pool[$1] " " $2; scored[$1] = 1; demo[$2] = 1; if (($1, $2) in seen) dup = 1; seen[$1, $2] = 1 }
    END { for (u in n) { if (n[u] != P) exit 1; if (ref == "") ref = pool[u]; else if (pool[u] != ref) exit 2 }
          if (dup) exit 3; for (d in demo) if (d in scored) exit 4; if (length(demo) != P) exit 5 }' \
    "$T/a/effect_pairs.csv"
rc=$?
[ $rc -eq 0 ] && ok || bad "the pool is not one shared pool of $P outside the scored users (check $rc)"
# (b) rho finite in [-1, 1], and the CSV's rho recomputed (average ranks) equals the JSON's
rho_json=$(sed -n 's/.*"spearman": \([-0-9.e]*\).*/\1/p' "$T/a/effect.json" | head -1)
awk -v r="$rho_json" 'BEGIN { exit !(r != "" && r + 0 >= -1 && r + 0 <= 1) }' && ok || bad "rho '$rho_json'"
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
# the same bytes at 2 threads, through shards of 7 users, and when the shards are resumed
run --pool $P --shared-pool --truth --threads 2 --quiet --out "$T/b" > /dev/null
cmp -s "$T/a/effect_pairs.csv" "$T/b/effect_pairs.csv" && ok || bad "--threads 2 gives other pairs"
rho_b=$(sed -n 's/.*"spearman": \([-0-9.e]*\).*/\1/p' "$T/b/effect.json" | head -1)
[ "$rho_b" = "$rho_json" ] && ok || bad "rho at 2 threads $rho_b, at 1 $rho_json"
run --pool $P --shared-pool --truth --threads 1 --quiet --checkpoint "$T/ck" --shard-size 7 --out "$T/c" > /dev/null
cmp -s "$T/a/effect_pairs.csv" "$T/c/effect_pairs.csv" && ok || bad "--checkpoint shards give other pairs"
run --pool $P --shared-pool --truth --threads 1 --quiet --checkpoint "$T/ck" --shard-size 7 --out "$T/c2" > /dev/null
cmp -s "$T/a/effect_pairs.csv" "$T/c2/effect_pairs.csv" && ok || bad "resumed shards give other pairs"
# the per-user mode with the same seed scores the same users against their most similar
# candidates: where a pair is in both runs, the scores agree (float32 rounding) and dlogP is equal
run --pool 60 --truth --threads 1 --quiet --out "$T/p" > /dev/null || bad "per-user run"
grep -q '"mode": "per_user"' "$T/p/effect.json" && ok || bad "per-user JSON mode"
awk -F, 'FNR == 1 { next } NR == FNR { e[$1, $2] = $4; a[$1, $2] = $6; g[$1, $2] = $7; next }
    ($1, $2) in e { n++; d = $4 - e[$1, $2]; if (d < 0) d = -d; m = $4 < 0 ? -$4 : $4; if (d > 1e-5 + 1e-4 * m) be++
                    d = $6 - a[$1, $2]; if (d < 0) d = -d; m = $6 < 0 ? -$6 : $6; if (d > 1e-5 + 1e-4 * m) ba++
                    if ($7 != g[$1, $2]) bg++ }
    END { printf "%d %d %d %d\n", n, be, ba, bg; exit !(n >= 5 && !be && !ba && !bg) }' \
    "$T/p/effect_pairs.csv" "$T/a/effect_pairs.csv" > "$T/cmp.txt"
[ $? -eq 0 ] && ok || bad "shared vs per-user on common pairs (common, effect, all-rows, dlogP mismatches): $(cat "$T/cmp.txt")"
# without --truth: no dlogP, no scatter, still users x P rows
run --pool 5 --shared-pool --threads 1 --quiet --out "$T/d" > /dev/null && [ ! -e "$T/d/effect_scatter.svg" ] \
    && grep -q '"validity": null' "$T/d/effect.json" && [ "$(tail -n +2 "$T/d/effect_pairs.csv" | wc -l)" = $((U * 5)) ] \
    && ok || bad "no-truth run"

# (c) impossible options: exit 2 with a message
expect2() {
    local what=$1 pat=$2; shift 2
    "$BIN" effect --model "$T/m.gguf" --data "$T/syn.txt" --threads 1 --out "$T/e" "$@" > /dev/null 2> "$T/err.txt"
    local rc=$?
    [ $rc -eq 2 ] && grep -q -- "$pat" "$T/err.txt" && ok || bad "$what: exit $rc, '$(cat "$T/err.txt")'"
}
expect2 "users + pool over the split" "--shared-pool: --users 250 + --pool 60 exceed the 300 users" \
    --users 250 --pool 60 --shared-pool
expect2 "every user scored" "exceed the 300 users" --users 300 --pool 1 --shared-pool
expect2 "a flag with a value" "shared-pool" --users 3 --shared-pool=1
"$BIN" effect --help | grep -q -- "--shared-pool" && ok || bad "help lacks --shared-pool"

echo "cli_effect_shared: $pass passed, $fail failed"
[ $fail -eq 0 ]
