#!/usr/bin/env bash
# Interop of the trained model (issue 4): llama.cpp (node-llama-cpp 3.21.1) loads a GGUF written
# by `lrgd train`, and its next-token distribution at every position of an ICL prompt
# [BOS | demonstrations | history ANS], the answer position included, matches lrgd's within the
# engine's tolerance (F32 KV cache: max |log-softmax difference| <= 1e-4, same argmax).
# Exit 77 (skipped) when node/npm or the package are unavailable.
set -u
: "${LRGD_BIN:?}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lc="$here/../bench/llamacpp"
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || { echo "node not found: skipping"; exit 77; }
bash "$lc/setup.sh"
rc=$?
[ $rc -eq 77 ] && { echo "llama.cpp reference unavailable: skipping"; exit 77; }
[ $rc -eq 0 ] || fail "bench/llamacpp/setup.sh exited $rc"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lrgd-train-llamacpp.XXXXXX") || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT

# a planted dataset (item cycles) and a small trained model with GQA
awk 'BEGIN { srand(11); for (u = 1; u <= 300; u++) { n = 5 + int(rand() * 8); s = int(rand() * 64); d = 1 + u % 2;
       line = u; for (i = 0; i < n; i++) line = line " " (1 + (s + d * i) % 64); print line } }' > "$tmp/syn.txt"
"$LRGD_BIN" train --data "$tmp/syn.txt" --out "$tmp/m.gguf" --epochs 6 --batch 16 --dim 32 --hidden 64 \
    --heads 4 --kv-heads 2 --seq 64 --max-hist 12 --demo-hist 6 --demos 2 --lr 0.01 --threads 1 --quiet \
    || fail "lrgd train"

# an ICL prompt in the embedded layout (BOS=1 SEP=2 ANS=3, item i -> token 4 + i):
# two demonstrations, then a history, then ANS
tok() { for i in "$@"; do printf '%d ' $((4 + i)); done; }
{ printf '1 '; tok 5 6 7 8; printf '3 '; tok 9; printf '2 '; tok 20 22 24; printf '3 '; tok 26; printf '2 ';
  tok 40 41 42 43 44; printf '3\n'; } > "$tmp/ids.txt"
n=$(wc -w < "$tmp/ids.txt")

"$LRGD_BIN" generate --model "$tmp/m.gguf" --prompt-file "$tmp/ids.txt" --n 0 --logits "$tmp/lrgd.f32" \
    --threads 1 > /dev/null || fail "lrgd generate --logits"
size=$(stat -c %s "$tmp/lrgd.f32")
vocab=$((size / (4 * n)))
[ $((vocab * 4 * n)) -eq "$size" ] || fail "lrgd logits: $size bytes is not $n rows"
[ "$vocab" -eq 69 ] || fail "vocabulary $vocab, expected 5 special + 64 items"

status=0
for mode in batch step; do
    node "$lc/logits.mjs" --model "$tmp/m.gguf" --tokens-file "$tmp/ids.txt" --out "$tmp/llama-$mode.f32" \
        --kv f32 --mode "$mode" --threads 1 > /dev/null || fail "llama.cpp could not load/evaluate the trained model ($mode)"
    echo "[$mode] trained model, F32 KV cache, all $n positions (answer position last):"
    node "$lc/compare-logits.mjs" --lrgd "$tmp/lrgd.f32" --llama "$tmp/llama-$mode.f32" --vocab "$vocab" --tol 1e-4 \
        || status=1
done
[ $status -eq 0 ] && echo "PASS: llama.cpp loads the trained GGUF and matches lrgd at every position"
exit $status
