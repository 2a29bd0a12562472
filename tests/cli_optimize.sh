#!/usr/bin/env bash
# lrgd optimize end to end on a small planted dataset: stage 1 + stage 2 with
# the collapse guard, the test evaluation, the replay; the JSON and the
# selections are complete and reproducible; the held-out metric never ends
# below stage 1; the ablation switches change the stage-1 objective; bad
# options exit 2.
set -u
BIN=${LRGD_BIN:?LRGD_BIN not set}
T=$(mktemp -d /tmp/lrgd_cli_optimize.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }
num() { sed -n "s/.*\"$1\": \([-0-9.e]*\).*/\1/p" "$2" | head -1; }

awk 'BEGIN { srand(5); for (u = 1; u <= 300; u++) { n = 7 + int(rand() * 8); s = int(rand() * 50); d = 1 + u % 2;
       line = u; for (i = 0; i < n; i++) line = line " " (1 + (s + d * i) % 50); print line } }' > "$T/syn.txt"
"$BIN" train --data "$T/syn.txt" --epochs 6 --batch 16 --dim 16 --hidden 32 --heads 2 --kv-heads 1 --seq 128 \
    --max-hist 12 --demo-hist 8 --demos 2 --lr 0.01 --warmup 10 --threads 1 --quiet --out "$T/m.gguf" \
    || { echo "FAIL: training the test model" >&2; exit 1; }

ARGS=(--model "$T/m.gguf" --data "$T/syn.txt" --users 8 --hold 4 --pool 6 --k 2 --m 2 --m2 1 --rounds 2
      --verify 2 --proposals 4 --max-hist 12 --demo-hist 8 --threads 1 --quiet)
"$BIN" optimize "${ARGS[@]}" --replay 2 --replay-users 6 --out "$T/a" > "$T/a.txt"
rc=$?
[ $rc -eq 0 ] && ok || bad "optimize exited $rc"
J="$T/a/optimize.json"
[ -s "$J" ] && [ -s "$T/a/selections.json" ] && ok || bad "outputs missing"
for key in logp_zero_shot logp_similar logp_stage1 logp_stage2 stage1_objective; do
    [ -n "$(num "$key" "$J")" ] && ok || bad "no $key"
done
for m in zero-shot similar stage1 two-stage; do grep -q "\"$m\": {" "$J" && ok || bad "test method $m missing"; done
grep -q '"stage2_vs_stage1": {' "$J" && ok || bad "no paired test"
grep -q '"NDCG@10_adapted"' "$J" && grep -q '"NDCG@10_frozen"' "$J" && ok || bad "no replay curve"
[ "$(grep -c '"step":' "$J")" -eq 2 ] && ok || bad "replay steps"
# the guard: final >= stage 1 value
s1=$(sed -n '/"guard"/,/}/p' "$J" | sed -n 's/.*"stage1": \([-0-9.e]*\).*/\1/p')
fin=$(sed -n '/"guard"/,/}/p' "$J" | sed -n 's/.*"final": \([-0-9.e]*\).*/\1/p')
awk -v a="$fin" -v b="$s1" 'BEGIN { exit !(a >= b) }' && ok || bad "held-out metric $fin below stage 1 $s1"
# the stage-2 objective never drops
jb=$(num stage2_objective_before "$J"); ja=$(num stage2_objective_after "$J")
awk -v a="$ja" -v b="$jb" 'BEGIN { exit !(a >= b - 1e-9) }' && ok || bad "stage-2 objective $jb -> $ja"
# selections: 8 optimized + 4 held-out users, every one with demonstrations
[ "$(grep -c '"held_out": false' "$T/a/selections.json")" -eq 8 ] && ok || bad "optimized users in selections"
[ "$(grep -c '"held_out": true' "$T/a/selections.json")" -eq 4 ] && ok || bad "held-out users in selections"
grep -q '"from_user": "[0-9]' "$T/a/selections.json" && ok || bad "selections lack source users"

# reproducible
"$BIN" optimize "${ARGS[@]}" --replay 2 --replay-users 6 --out "$T/b" > /dev/null
cmp -s "$T/a/selections.json" "$T/b/selections.json" && ok || bad "selections differ between runs"

# ablations change the stage-1 objective (stage 1 only, no test, for speed)
"$BIN" optimize "${ARGS[@]}" --stage 1 --no-test --out "$T/c" > /dev/null
"$BIN" optimize "${ARGS[@]}" --stage 1 --no-test --no-reg --out "$T/d" > /dev/null
"$BIN" optimize "${ARGS[@]}" --stage 1 --no-test --no-perturb --out "$T/e" > /dev/null
"$BIN" optimize "${ARGS[@]}" --stage 1 --no-test --all-rows --out "$T/f" > /dev/null
o1=$(num stage1_objective "$T/c/optimize.json"); o2=$(num stage1_objective "$T/d/optimize.json")
o3=$(num stage1_objective "$T/e/optimize.json"); o4=$(num stage1_objective "$T/f/optimize.json")
[ -n "$o1" ] && [ "$o1" != "$o2" ] && [ "$o1" != "$o3" ] && [ "$o1" != "$o4" ] && ok \
    || bad "ablations do not change the objective: $o1 / $o2 / $o3 / $o4"
awk -v a="$o2" -v b="$o1" 'BEGIN { exit !(a > b) }' && ok || bad "--no-reg objective $o2 not above $o1"
grep -q '"rolled_back": false' "$T/c/optimize.json" && grep -q '"test": null' "$T/c/optimize.json" && ok \
    || bad "stage-1 run"

expect2() {
    local what=$1; shift
    "$BIN" optimize "$@" > /dev/null 2> "$T/err.txt"
    local rc=$?
    [ $rc -eq 2 ] && [ -s "$T/err.txt" ] && ok || bad "$what: exit $rc, '$(cat "$T/err.txt")'"
}
B=(--model "$T/m.gguf" --data "$T/syn.txt" --out "$T/x")
expect2 "no model" --data "$T/syn.txt"
expect2 "bad stage" "${B[@]}" --stage 3
expect2 "bad perturb kind" "${B[@]}" --perturb jitter=0.1
expect2 "bad perturb rate" "${B[@]}" --perturb drop=1.5
expect2 "sub + pop > 1" "${B[@]}" --perturb sub=0.7,pop=0.7
expect2 "bad guard" "${B[@]}" --guard auc
expect2 "negative lambda" "${B[@]}" --lambda -1
expect2 "k zero" "${B[@]}" --k 0
expect2 "too many users" "${B[@]}" --users 290 --hold 50
expect2 "unknown option" "${B[@]}" --frobnicate
# a text LLM (GGUF with a tokenizer, no lrgd item vocabulary: stories260K through lrgd convert) is
# refused up front with a plain reason, exit 2, before the output directory is made
"$BIN" convert "${LRGD_SHARED:?}/models/stories260K.bin" "$T/text.gguf" --quiet || bad "convert stories260K"
"$BIN" optimize --model "$T/text.gguf" --data "$T/syn.txt" --users 5 --hold 2 --out "$T/tx" > /dev/null 2> "$T/err.txt"
rc=$?
[ $rc -eq 2 ] && [ "$(wc -l < "$T/err.txt")" -eq 1 ] && grep -q "text.gguf has no lrgd item vocabulary (a text LLM)" "$T/err.txt" \
    && [ ! -e "$T/tx" ] && ok || bad "text LLM: exit $rc, '$(cat "$T/err.txt")'"
"$BIN" optimize --help | grep -q "collapse guard" && ok || bad "help"

echo "cli_optimize: $pass passed, $fail failed"
[ $fail -eq 0 ]
