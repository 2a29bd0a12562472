#!/usr/bin/env bash
# lrgd train end to end on a small planted dataset: an uninterrupted run and
# a run killed with SIGKILL at random points and restarted with the same
# command must end with the same model bytes; a NaN stops training with the
# step and layer and keeps the last good model; bad options exit 2; the model
# plugs into lrgd eval.
set -u
BIN=${LRGD_BIN:?LRGD_BIN not set}
T=$(mktemp -d /tmp/lrgd_cli_train.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail=0
pass=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*" >&2; fail=$((fail + 1)); }

# 400 users walking item cycles with stride 1 or 2 (Amazon format, ids from 1)
awk 'BEGIN { srand(7); for (u = 1; u <= 400; u++) { n = 5 + int(rand() * 8); s = int(rand() * 60); d = 1 + u % 2;
       line = u; for (i = 0; i < n; i++) line = line " " (1 + (s + d * i) % 60); print line } }' > "$T/syn.txt"

ARGS=(--data "$T/syn.txt" --epochs 25 --batch 16 --dim 16 --hidden 32 --heads 2 --kv-heads 1 --seq 64
      --max-hist 12 --demo-hist 6 --demos 2 --lr 0.01 --warmup 10 --threads 1 --quiet --checkpoint-steps 3)

t0=$(date +%s.%N)
"$BIN" train "${ARGS[@]}" --out "$T/a.gguf"
rc=$?
t1=$(date +%s.%N)
[ $rc -eq 0 ] && ok || bad "uninterrupted run exited $rc"
[ -s "$T/a.gguf" ] && [ -s "$T/a.gguf.train" ] && [ -s "$T/a.gguf.json" ] && ok || bad "model, state or report missing"
grep -q '"best_val_ndcg10"' "$T/a.gguf.json" && ok || bad "report lacks best_val_ndcg10"
dur=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
echo "uninterrupted run: ${dur}s"

# kill -9 at two random points, then let the same command finish
kills=0
for k in 1 2; do
    "$BIN" train "${ARGS[@]}" --out "$T/b.gguf" &
    pid=$!
    delay=$(awk -v d="$dur" -v s="$RANDOM" 'BEGIN { srand(s); print d * (0.15 + 0.6 * rand()) }')
    sleep "$delay"
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$pid" 2>/dev/null
done
echo "killed $kills time(s)"
[ -s "$T/b.gguf.train" ] && ok || bad "no training state after the kills"
"$BIN" train "${ARGS[@]}" --out "$T/b.gguf"
rc=$?
[ $rc -eq 0 ] && ok || bad "resumed run exited $rc"
if cmp -s "$T/a.gguf" "$T/b.gguf"; then ok; else bad "killed+resumed model differs from the uninterrupted one"; fi

# the state belongs to these options: other options are refused (exit 2)
"$BIN" train "${ARGS[@]}" --lr 0.005 --out "$T/b.gguf" 2> "$T/err.txt"
rc=$?
[ $rc -eq 2 ] && grep -q "another configuration" "$T/err.txt" && ok || bad "changed options: exit $rc, $(cat "$T/err.txt")"

# NaN injected in the 3rd epoch (25 steps per epoch): exit 1, message names
# step and layer, the epoch-2 model stays and loads
"$BIN" train "${ARGS[@]}" --epochs 4 --out "$T/n.gguf" --fault-nan-step 60 2> "$T/nan.txt"
rc=$?
[ $rc -eq 1 ] && ok || bad "NaN run exited $rc"
grep -q "step 60" "$T/nan.txt" && grep -q "layer 1" "$T/nan.txt" && ok || bad "NaN message: $(cat "$T/nan.txt")"
"$BIN" eval --data "$T/syn.txt" --method model-none --model "$T/n.gguf" --quiet > /dev/null && ok \
    || bad "the last good model does not load after the NaN"

# the model in lrgd eval: every demonstration mode, paired against zero-shot
"$BIN" eval --data "$T/syn.txt" --method model --demos similar --k 2 --compare model-none --model "$T/a.gguf" \
    --threads 1 --quiet --out "$T/eval.json" > "$T/eval.txt"
rc=$?
[ $rc -eq 0 ] && grep -q '"model-none"' "$T/eval.json" && grep -q '"comparison"' "$T/eval.json" && ok \
    || bad "eval with the model: exit $rc"
ndcg=$(awk '$1 == "NDCG@10" { print $2 }' "$T/eval.txt")
awk -v x="$ndcg" 'BEGIN { exit !(x > 0.5) }' && ok || bad "the trained model's test NDCG@10 is only $ndcg"
"$BIN" eval --data "$T/syn.txt" --method model --demos random --model "$T/a.gguf" --candidates 20 --quiet \
    > /dev/null && ok || bad "eval --demos random --candidates 20 failed"
# a model trained on another dataset is refused
awk 'BEGIN { for (u = 1; u <= 50; u++) print u, 1 + u % 7, 1 + (u + 1) % 7, 1 + (u + 2) % 7 }' > "$T/other.txt"
"$BIN" eval --data "$T/other.txt" --method model --model "$T/a.gguf" --quiet > /dev/null 2> "$T/err.txt"
rc=$?
[ $rc -eq 2 ] && ok || bad "model on another dataset: exit $rc $(cat "$T/err.txt")"

# bad options: exit 2 with a message
for opts in "--attention foo" "--heads 2 --kv-heads 3" "--dim 15" "--dropout 1.5" "--epochs 0" \
            "--max-hist 100 --seq 64" "--demos -1"; do
    # shellcheck disable=SC2086
    "$BIN" train --data "$T/syn.txt" --out "$T/x.gguf" $opts --quiet 2> "$T/err.txt"
    rc=$?
    [ $rc -eq 2 ] && [ -s "$T/err.txt" ] && ok || bad "train $opts: exit $rc"
done
"$BIN" train --out "$T/x.gguf" --quiet 2> /dev/null
[ $? -eq 2 ] && ok || bad "missing --data not refused"
"$BIN" train --data "$T/missing.txt" --out "$T/x.gguf" --quiet 2> "$T/err.txt"
rc=$?
[ $rc -eq 2 ] && grep -q missing.txt "$T/err.txt" && ok || bad "missing data file: exit $rc"

echo "cli_train: $pass passed, $fail failed"
[ $fail -eq 0 ]
