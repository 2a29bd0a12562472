#!/usr/bin/env bash
# The benchmark suite in one command (issue 7): `lrgd bench` (forward speed with its roofline,
# evaluation, Effect_D per user and against a shared pool (the matrix scorer), training, peak
# RSS), then llama.cpp through node-llama-cpp 3.21.1 on the
# same GGUF files with the same thread counts, prompt and decode lengths; prints lrgd/llama.cpp
# ratios for pp and tg per model x dtype x threads and writes one merged JSON. Without node (or
# when the node-llama-cpp install is missing and cannot be made) it runs lrgd alone and says so.
#
# usage: bench/run.sh [--out FILE] [--no-peer] [--peer-kv f32|f16] [--peer-flash off|auto|on]
#                     [--peer-timeout S] [--rec-model FILE] [-- lrgd bench options...]
#   --out FILE        merged JSON (default bench/results/<date>-<time>.json)
#   --no-peer         lrgd only
#   --peer-kv, --peer-flash   llama.cpp's KV cache type and flash attention (default f32 and off:
#                     the arithmetic lrgd does; llama.cpp's own defaults are f16 and auto)
#   --peer-timeout S  seconds llama.cpp may take per file (default 600; ggml spins at its thread
#                     barriers, so a 2-thread run on an overloaded machine can take many minutes)
#   --rec-model FILE  the embedded recommendation model, trained by `lrgd train` on $DATA
#                     (default: one epoch of `lrgd train` on $DATA, made here; its speed is
#                     that of any model of its shape)
#   after --           passed to lrgd bench (e.g. --only forward, --threads-list 1, --reps 5)
# environment:
#   LRGD_BIN     the lrgd binary (default build/lrgd)
#   LRGD_SHARED  folder with models/ and datasets/ (default ../shared)
#   DATA         interactions for eval/effect/train (default $LRGD_SHARED/datasets/amazon/Beauty.txt)
# Models: stories260K ($LRGD_SHARED/models/stories260K.bin, converted to GGUF by lrgd bench), the
# embedded model, and lrgd bench's random 8-layer d=512 model, each in f32 and q8_0, at 1 and 2
# threads. The machine's load average is recorded before and after each half.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { echo "bench/run.sh: $*" >&2; }
BIN=${LRGD_BIN:-$here/build/lrgd}
SHARED=${LRGD_SHARED:-$here/../shared}
DATA=${DATA:-$SHARED/datasets/amazon/Beauty.txt}
OUT="" PEER=1 KV=f32 FLASH=off REC="" PTIME=600
cmdline=$(printf '%q ' "$0" "$@")
while [ $# -gt 0 ]; do
    case $1 in
    --out) OUT=${2:?--out needs a file}; shift 2 ;;
    --no-peer) PEER=0; shift ;;
    --peer-kv) KV=${2:?--peer-kv needs f32 or f16}; shift 2 ;;
    --peer-flash) FLASH=${2:?--peer-flash needs off, auto or on}; shift 2 ;;
    --rec-model) REC=${2:?--rec-model needs a file}; shift 2 ;;
    --peer-timeout) PTIME=${2:?--peer-timeout needs seconds}; shift 2 ;;
    --) shift; break ;;
    -h | --help) sed -n '2,/^set -u$/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) say "unknown argument '$1' (see --help)"; exit 2 ;;
    esac
done
case $KV in f32 | f16) ;; *) say "--peer-kv: '$KV' is not f32 or f16"; exit 2 ;; esac
case $FLASH in off | auto | on) ;; *) say "--peer-flash: '$FLASH' is not off, auto or on"; exit 2 ;; esac
[[ $PTIME =~ ^[1-9][0-9]*$ ]] || { say "--peer-timeout: '$PTIME' is not a whole number of seconds >= 1"; exit 2; }
[ -x "$BIN" ] || { say "no lrgd binary at $BIN (set LRGD_BIN)"; exit 2; }
[ -n "$OUT" ] || { mkdir -p "$here/bench/results" && OUT=$here/bench/results/$(date +%Y-%m-%d-%H%M%S).json; } || exit 1

W=$(mktemp -d "${TMPDIR:-/tmp}/lrgd-run.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "? ? ?"; }

args=()
stories=$SHARED/models/stories260K.bin
if [ -r "$stories" ]; then args+=(--model "$stories"); else say "no $stories: stories260K left out"; fi
if [ -r "$DATA" ]; then
    if [ -z "$REC" ]; then
        REC=$W/embedded.gguf
        say "training the embedded model for one epoch on $DATA (timed only as a model of its shape)"
        "$BIN" train --data "$DATA" --epochs 1 --threads 2 --quiet --no-resume --out "$REC" >/dev/null ||
            { say "lrgd train failed"; exit 1; }
    fi
    args+=(--model "$REC" --data "$DATA")
else
    say "no $DATA: eval, effect and train are skipped, no embedded model"
fi

# the peer: node + node-llama-cpp installed (bench/llamacpp/setup.sh installs it if npm can)
peer_why=""
if [ $PEER = 0 ]; then peer_why="--no-peer"
elif ! command -v node >/dev/null 2>&1; then peer_why="node not found"
elif ! "$here/bench/llamacpp/setup.sh"; then peer_why="node-llama-cpp 3.21.1 is not installed and bench/llamacpp/setup.sh could not install it"
fi

load0=$(load)
echo "== lrgd bench (load average $load0)"
"$BIN" bench --keep-models "$W/models" --out "$W/lrgd.json" "${args[@]}" "$@" || { say "lrgd bench failed"; exit 1; }
load1=$(load)
echo "== lrgd done (load average $load1)"

if [ -z "$peer_why" ] && grep -q '"forward"' "$W/lrgd.json"; then
    echo "== llama.cpp on the same files (load average $load1)"
    printf '{"command": %s, "date": "%s", "loadavg_lrgd_start": "%s", "loadavg_lrgd_end": "%s"}\n' \
        "$(printf '%s' "$cmdline" | node -e 'process.stdout.write(JSON.stringify(require("fs").readFileSync(0, "utf8")))')" \
        "$(date -Iseconds)" "$load0" "$load1" > "$W/meta.json"
    node "$here/bench/llamacpp/compare-bench.mjs" --lrgd "$W/lrgd.json" --out "$OUT" --kv "$KV" --flash "$FLASH" \
        --timeout "$PTIME" --meta "$W/meta.json" --work "$W"
    rc=$?
    echo "== llama.cpp done (load average $(load)); ratios: lrgd tokens/s over llama.cpp tokens/s, each measured once"
    [ $rc -eq 0 ] || say "llama.cpp failed on some files (their ratios are null)"
else
    [ -n "$peer_why" ] || peer_why="no forward section"
    echo "== llama.cpp peer missing ($peer_why): lrgd figures only, no ratios"
    esc=$(printf '%s' "$cmdline" | sed 's/\\/\\\\/g; s/"/\\"/g')
    { printf '{\n"command": "%s",\n"date": "%s",\n"loadavg_lrgd_start": "%s",\n"loadavg_lrgd_end": "%s",\n' \
        "$esc" "$(date -Iseconds)" "$load0" "$load1"
      printf '"peer": null,\n"peer_missing": "%s",\n"lrgd": ' "$peer_why"
      cat "$W/lrgd.json"
      printf '}\n'; } > "$OUT.tmp.$$" && sync "$OUT.tmp.$$" && mv "$OUT.tmp.$$" "$OUT" || exit 1
    rc=0
fi
echo "wrote $OUT"
exit $rc
