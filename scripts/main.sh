#!/usr/bin/env bash
# The main job: install what is missing, build, run lrgd on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
bin=build/release/lrgd
shared=${LRGD_SHARED:-../shared}
# Until the experiment pipeline lands, the main job is the engine on real weights:
# decode greedily from BOS with the pretrained stories260K model.
model="$shared/models/stories260K.bin"
if [ -f "$model" ]; then
  "$bin" info "$model"
  "$bin" generate --model "$model" --prompt 1 --n 64 --ids
else
  echo "no model at $model" >&2; exit 1
fi
