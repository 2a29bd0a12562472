#!/usr/bin/env bash
# llama.cpp agreement (issue 2): llama.cpp (node-llama-cpp 3.21.1, prebuilt CPU) loads the GGUF
# that `lrgd convert` writes from stories260K, and lrgd's logits at every position of a
# 256-token sequence agree with llama.cpp's (F32 KV cache) and with a float64 forward pass of
# the same checkpoint (bench/llamacpp/ref-f64.mjs, written from the equations). Both llama.cpp
# paths are checked: one 256-token batch (prompt processing) and one token per decode.
# node-llama-cpp exposes only softmax probabilities, so the comparison is on log-softmax
# (raw logits minus each position's logsumexp); see bench/llamacpp/logits.mjs.
#
# Why against float64: two float32 engines each round their own way, and llama.cpp alone is
# up to ~9.7e-5 from the float64 answer here, so "lrgd vs llama.cpp <= 1e-4" measured the sum
# of two engines' rounding (it sat at 9.5e-5 and crossed 1e-4 when lrgd's kernels changed their
# summation order, while lrgd moved *closer* to float64: 6.7e-5 -> 5.5e-5). Asserted:
#   1. lrgd vs float64 <= 1e-4 and the same argmax everywhere (one engine's float32 rounding);
#   2. llama.cpp vs float64 <= 1e-4, batch and step (the reference and the peer agree);
#   3. lrgd vs llama.cpp <= 2e-4 (the sum of the two bounds) and the same argmax everywhere;
#   4. lrgd is no further from float64 than llama.cpp is (its larger error of the two modes).
# Exit 77 (skipped) when node/npm are missing or the package cannot be installed.
set -u
: "${LRGD_BIN:?}" "${LRGD_SHARED:?}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lc="$here/../bench/llamacpp"
fail() { echo "FAIL: $*" >&2; exit 1; }
info() { sed -E 's/ \(tol [^)]*\)//; s/ -> (PASS|FAIL)$//' | head -n 1; }

command -v node >/dev/null 2>&1 || { echo "node not found: skipping"; exit 77; }
bash "$lc/setup.sh"
rc=$?
[ $rc -eq 77 ] && { echo "llama.cpp reference unavailable: skipping"; exit 77; }
[ $rc -eq 0 ] || fail "bench/llamacpp/setup.sh exited $rc"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lrgd-llamacpp.XXXXXX") || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT

bin="$LRGD_SHARED/models/stories260K.bin"
greedy="$LRGD_SHARED/models/stories260K.greedy-from-bos.txt"
[ -r "$bin" ] && [ -r "$greedy" ] || fail "missing $bin or $greedy"

"$LRGD_BIN" convert "$bin" "$tmp/s.gguf" --type f32 || fail "lrgd convert"

# BOS then the first 255 ids that llama2.c decoded greedily from BOS: 256 positions.
{ echo 1; head -n 255 "$greedy"; } > "$tmp/ids.txt"
[ "$(wc -w < "$tmp/ids.txt")" -eq 256 ] || fail "expected 256 token ids"

"$LRGD_BIN" generate --model "$tmp/s.gguf" --prompt-file "$tmp/ids.txt" --n 0 \
    --logits "$tmp/lrgd.f32" --threads 2 > /dev/null || fail "lrgd generate --logits"
size=$(stat -c %s "$tmp/lrgd.f32")
vocab=$((size / (4 * 256)))
[ $((vocab * 4 * 256)) -eq "$size" ] && [ "$vocab" -gt 0 ] || fail "lrgd logits: $size bytes is not 256 rows"

# The float64 reference (plain node, a few seconds).
node "$lc/ref-f64.mjs" "$bin" "$tmp/ids.txt" "$tmp/f64.f32" || fail "float64 reference (ref-f64.mjs)"
# max |d log_softmax| from a compare-logits.mjs --json file
maxdiff() { node -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(process.argv[1])).max_abs_diff))' "$1"; }

status=0
node "$lc/compare-logits.mjs" --lrgd "$tmp/lrgd.f32" --llama "$tmp/f64.f32" --vocab "$vocab" --tol 1e-4 \
    --json "$tmp/lrgd-f64.json" --label "lrgd vs float64" || status=1
for mode in batch step; do
    node "$lc/logits.mjs" --model "$tmp/s.gguf" --tokens-file "$tmp/ids.txt" --out "$tmp/llama-$mode.f32" \
        --kv f32 --mode "$mode" --threads 1 --json "$tmp/llama-$mode.json" || fail "llama.cpp could not evaluate lrgd's GGUF ($mode)"
    # The KV cache type as llama.cpp's own log reports it, not as requested.
    node -e 'const j = JSON.parse(require("fs").readFileSync(process.argv[1]));
             const kv = j.kv_cache_llama_cpp_log;
             if (!kv || kv.k !== "f32" || kv.v !== "f32") { console.error("KV cache is not F32:", kv); process.exit(1); }' \
        "$tmp/llama-$mode.json" || fail "llama.cpp did not use an F32 KV cache"
    echo "[$mode] F32 KV cache:"
    node "$lc/compare-logits.mjs" --lrgd "$tmp/f64.f32" --llama "$tmp/llama-$mode.f32" --vocab "$vocab" --tol 1e-4 \
        --json "$tmp/llama-$mode-f64.json" --label "float64 vs llama.cpp $mode" || status=1
    node "$lc/compare-logits.mjs" --lrgd "$tmp/lrgd.f32" --llama "$tmp/llama-$mode.f32" --vocab "$vocab" --tol 2e-4 || status=1
done
e_lrgd=$(maxdiff "$tmp/lrgd-f64.json") e_batch=$(maxdiff "$tmp/llama-batch-f64.json") e_step=$(maxdiff "$tmp/llama-step-f64.json")
if node -e 'const [a, b, c] = process.argv.slice(1).map(Number); process.exit(a <= Math.max(b, c) ? 0 : 1)' \
    "$e_lrgd" "$e_batch" "$e_step"; then
    echo "lrgd is as close to float64 as llama.cpp: $e_lrgd <= max($e_batch, $e_step) -> PASS"
else
    echo "FAIL: lrgd is further from float64 ($e_lrgd) than llama.cpp (batch $e_batch, step $e_step)" >&2
    status=1
fi

# The checks have teeth: with llama.cpp's default F16 KV cache the same comparisons must fail
# (measured max difference ~6e-2 from lrgd and from float64), so a comparison that passes
# everything would show up here.
node "$lc/logits.mjs" --model "$tmp/s.gguf" --tokens-file "$tmp/ids.txt" --out "$tmp/llama-f16.f32" \
    --kv f16 --threads 1 > /dev/null || fail "llama.cpp F16-KV run"
echo "[batch] F16 KV cache (expected to exceed 2e-4 from lrgd and 1e-4 from float64):"
if node "$lc/compare-logits.mjs" --lrgd "$tmp/lrgd.f32" --llama "$tmp/llama-f16.f32" --vocab "$vocab" --tol 2e-4; then
    echo "FAIL: F16-KV logits passed the 2e-4 check against lrgd; the comparison cannot discriminate" >&2
    status=1
fi
if node "$lc/compare-logits.mjs" --lrgd "$tmp/f64.f32" --llama "$tmp/llama-f16.f32" --vocab "$vocab" --tol 1e-4 \
    --label "float64 vs llama.cpp F16 KV"; then
    echo "FAIL: F16-KV logits passed the 1e-4 check against float64; the comparison cannot discriminate" >&2
    status=1
fi

# llama.cpp also loads and runs lrgd's F16 and Q8_0 files. Their logits differ more (llama.cpp
# rounds the activations to F16 / Q8_0 for those matmuls; lrgd does not), so only loading and
# evaluating are asserted; the differences are printed.
for type in f16 q8_0; do
    "$LRGD_BIN" convert "$bin" "$tmp/s-$type.gguf" --type "$type" --quiet || fail "lrgd convert --type $type"
    "$LRGD_BIN" generate --model "$tmp/s-$type.gguf" --prompt-file "$tmp/ids.txt" --n 0 \
        --logits "$tmp/lrgd-$type.f32" --threads 2 > /dev/null 2>&1 || fail "lrgd generate ($type)"
    node "$lc/logits.mjs" --model "$tmp/s-$type.gguf" --tokens-file "$tmp/ids.txt" --out "$tmp/llama-$type.f32" \
        --threads 1 > /dev/null || fail "llama.cpp could not load/evaluate lrgd's $type GGUF"
    node "$lc/compare-logits.mjs" --lrgd "$tmp/lrgd-$type.f32" --llama "$tmp/llama-$type.f32" --vocab "$vocab" \
        --label "info: $type weights, lrgd vs llama.cpp" | info
done

[ $status -eq 0 ] && echo "PASS: llama.cpp loads lrgd's F32/F16/Q8_0 GGUF; lrgd matches it (F32 KV) and float64 at every position"
exit $status
