#!/usr/bin/env bash
# Generates the committed trained-model files of numeric.tsv (and the forged
# training state at the end): a tiny model
# trained by lrgd on model_overflow.gguf.txt, then one weight tensor overwritten.
#   model_overflow.gguf  blk.0.attn_norm.weight = 3e38 (finite, so it loads;
#                        the first layer's activations overflow float32)
#   model_nan_trained.gguf  blk.0.ffn_down.weight[5] = NaN (refused on load)
# Not run by the tests (the files are committed); to regenerate:
#   tests/data/bad/make_numeric_models.sh build/<dir>/lrgd
set -euo pipefail
bin=${1:?usage: make_numeric_models.sh LRGD_BINARY}
dir=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# 60 users walking 20 items with stride 1 or 2
awk 'BEGIN { for (u = 1; u <= 60; u++) { line = u; s = (u * 7) % 20; d = 1 + u % 2;
       for (i = 0; i < 6; i++) line = line " " (1 + (s + d * i) % 20); print line } }' >"$dir/model_overflow.gguf.txt"
"$bin" train --data "$dir/model_overflow.gguf.txt" --out "$tmp/m.gguf" --epochs 1 --batch 16 --dim 8 --hidden 16 \
    --heads 2 --kv-heads 1 --layers 1 --seq 32 --max-hist 6 --demo-hist 4 --demos 1 --threads 1 --quiet --no-resume
# patch TENSOR's elements FIRST..LAST (F32) with VALUE in a copy
patch() { # out tensor first last value
    python3 - "$tmp/m.gguf" "$dir/$1" "$2" "$3" "$4" "$5" "$bin" <<'PY'
import json, struct, subprocess, sys
src, out, name, first, last, value, binary = sys.argv[1:]
info = json.loads(subprocess.run([binary, "info", "--json", src], check=True, capture_output=True).stdout)
t = next(t for t in info["tensors"] if t["name"] == name)
assert t["type"] == "F32"
data = bytearray(open(src, "rb").read())
for i in range(int(first), int(last) + 1):
    struct.pack_into("<f", data, t["offset"] + 4 * i, float(value))
open(out, "wb").write(data)
PY
}
cp "$dir/model_overflow.gguf.txt" "$dir/model_nan_trained.gguf.txt"
patch model_overflow.gguf blk.0.attn_norm.weight 0 7 3e38
patch model_nan_trained.gguf blk.0.ffn_down.weight 5 5 nan

# A training state with a valid checksum but forged counters (epoch 0, batch
# -3, step -3): refused as inconsistent instead of indexing the user order at
# -3. numeric.tsv resumes from it with the same options as here.
cp "$dir/model_overflow.gguf.txt" "$dir/state_forged.txt"
"$bin" train --data "$dir/state_forged.txt" --out "$tmp/s.gguf" --epochs 2 --batch 16 --dim 8 --hidden 16 \
    --heads 2 --kv-heads 1 --layers 1 --seq 32 --max-hist 6 --demo-hist 4 --demos 1 --threads 1 --quiet --no-resume
python3 - "$tmp/s.gguf.train" "$dir/state_forged.txt.gguf.train" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
struct.pack_into("<qqq", d, 32, 0, -3, -3)  # epoch, batch, step (struct state_head in trainer.c)
h = 0xcbf29ce484222325
for b in d[:-8]:
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
struct.pack_into("<Q", d, len(d) - 8, h)
open(sys.argv[2], "wb").write(d)
PY
