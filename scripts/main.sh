#!/usr/bin/env bash
# The main job: install what is missing, build, then run the whole LRGD
# experiment (lrgd experiment) on the embedded default data:
#   Beauty when it is present ($LRGD_SHARED/datasets/amazon, ../shared/datasets/amazon,
#   or a copy downloaded by scripts/download_amazon.sh into data/amazon/),
#   otherwise the built-in planted-taste synthetic data.
# Reduced configuration so it ends in <= 10 minutes on 2 cores (stated in
# the output and in OUT/results.json). A killed run resumes when re-run.
# Usage: scripts/main.sh [OUT_DIR]   (default results/main)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)" --target lrgd >/dev/null
bin=build/release/lrgd
out=${1:-results/main}
mkdir -p "$(dirname "$out")"

beauty=""
for d in "${LRGD_SHARED:-}" ../shared .; do
  [ -n "$d" ] || continue
  for f in "$d/datasets/amazon/Beauty.txt" "$d/data/amazon/Beauty.txt"; do
    if [ -z "$beauty" ] && [ -r "$f" ]; then beauty=$f; fi
  done
done

threads=${LRGD_THREADS:-2}
if [ -n "$beauty" ]; then
  # Reduced Beauty configuration: the default model shape (2 layers, dim 64,
  # 2 heads), 3 training epochs (lr 3e-3) on every user; 60 test users (+15
  # guard users); Stage 1 pool 20 with 4 perturbed copies, one Stage 2 round;
  # 20 validity users; replay on 30 users; 5 users for E1-E4 (E1 on a 1-epoch
  # linear-attention model).
  echo "main: data = $beauty (Amazon Beauty)"
  echo "main: reduced configuration: model 2 layers, dim 64, 3 epochs (lr 3e-3); 60 test users;" \
       "pool 20, 4 perturbed copies, k 3, 1 stage-2 round; 20 validity users; replay 3 steps x 30 users;" \
       "5 E1-E4 users"
  set -x
  "$bin" experiment --data "$beauty" --out "$out" --epochs 3 --lr 3e-3 --users 60 --pool 20 \
    --n-perturb 4 --rounds 1 --validity-users 20 --replay-users 30 --e3-users 5 --e1-epochs 1 --threads "$threads"
else
  echo "main: Beauty not found (looked in \$LRGD_SHARED, ../shared and data/amazon);" \
       "using the built-in planted-taste synthetic data"
  echo "main: reduced configuration: 640 synthetic users, 128 items; model 2 layers, dim 64, 30 epochs;" \
       "200 test users; pool 50, k 3, 3 stage-2 rounds"
  set -x
  "$bin" experiment --synthetic --out "$out" --epochs 30 --batch 64 --users 200 --threads "$threads"
fi
