#!/usr/bin/env bash
# lrgd under MPI (docs/DISTRIBUTED.md): `mpirun -np 2 lrgd eval` on Beauty
# (ItemKNN, full ranking and 1+99 with a paired comparison against Pop) gives
# the per-user ranks CSV and the metrics/significance JSON of the
# single-process run byte for byte; test_dist's collectives and gather with 3
# ranks; a rank that fails (error or SIGKILL) stops the job with a clear
# message and a non-zero exit; the re-run resumes from the per-shard
# checkpoints without touching the finished shards (also with another rank
# count, and in the MPI-free build); ranks that read different data refuse;
# commands that are not sharded refuse to run as several ranks.
#
# Needs mpirun and mpicc (OpenMPI: LRGD_WITH_MPI=1 scripts/deps.sh); exits
# 77 (skipped) without them. If this build was not configured with
# -DLRGD_MPI=ON, it builds lrgd, test_dist and test_dist_eval with MPI in $LRGD_BUILD/mpi
# (same compiler, flags, build type and sanitizer).
set -u
BIN=${LRGD_BIN:?}
BUILD=${LRGD_BUILD:?}
SHARED=${LRGD_SHARED:?}
TESTDATA=${LRGD_TESTDATA:?}
SRC=$(cd "$(dirname "$0")/.." && pwd)
DATA=$SHARED/datasets/amazon/Beauty.txt
if ! command -v mpirun >/dev/null || ! command -v mpicc >/dev/null; then
    echo "SKIP: mpirun/mpicc not found (install OpenMPI: LRGD_WITH_MPI=1 scripts/deps.sh)"
    exit 77
fi
[ -f "$DATA" ] || { echo "SKIP: $DATA not found"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
t0=$SECONDS

# ---- the MPI build ---------------------------------------------------------------
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BUILD/CMakeCache.txt"; }
if [ "$(cache LRGD_MPI)" = ON ]; then
    MB=$BUILD
else
    MB=$BUILD/mpi
    if ! cmake -S "$SRC" -B "$MB" -DLRGD_MPI=ON -DCMAKE_BUILD_TYPE="$(cache CMAKE_BUILD_TYPE)" \
            -DCMAKE_C_COMPILER="$(cache CMAKE_C_COMPILER)" -DLRGD_SANITIZE="$(cache LRGD_SANITIZE)" \
            -DLRGD_NATIVE="$(cache LRGD_NATIVE)" -DCMAKE_C_FLAGS="$(cache CMAKE_C_FLAGS)" \
            -DLRGD_SHARED_DIR="$SHARED" >"$T/cfg.log" 2>&1 ||
       ! cmake --build "$MB" --target lrgd test_dist test_dist_eval -j"$(nproc)" >"$T/build.log" 2>&1; then
        cat "$T/cfg.log" "$T/build.log" | tail -30
        echo "FAIL: could not build lrgd with -DLRGD_MPI=ON"
        exit 1
    fi
fi
MBIN=$MB/lrgd
echo "MPI build: $MB ($((SECONDS - t0)) s)"
# Open MPI's own allocations are not ours to report under LeakSanitizer.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)

# ---- the layer with 3 ranks ----------------------------------------------------------
"${MPIRUN[@]}" -np 3 "$MB/tests/test_dist" >"$T/td.out" 2>"$T/td.err" || fail "test_dist with 3 ranks: $(tail -5 "$T/td.err")"
[ "$(grep -c 'test_dist (rank [012] of 3): [0-9]* checks, 0 failed' "$T/td.out")" = 3 ] ||
    fail "test_dist did not pass on all 3 ranks: $(cat "$T/td.out")"

# lrgd_evaluate_dist (what lrgd experiment can call) equals lrgd_evaluate on each of 2 ranks.
LRGD_SHARED=$SHARED "${MPIRUN[@]}" -np 2 "$MB/tests/test_dist_eval" >"$T/tde.out" 2>"$T/tde.err" ||
    fail "test_dist_eval with 2 ranks: $(grep -v 'computing the shard' "$T/tde.err" | tail -5)"
[ "$(grep -c 'test_dist_eval (rank [01] of 2): [0-9]* checks, 0 failed' "$T/tde.out")" = 2 ] ||
    fail "test_dist_eval did not pass on both ranks: $(cat "$T/tde.out")"

# ---- the same numbers ------------------------------------------------------------------
# The JSON parts that must be equal: the split and everything from the
# results on (metrics with intervals, paired tests), timings removed.
numbers() { { sed -n '/"split": {/,/}/p' "$1"; sed -n '/"results": \[/,$p' "$1"; } | grep -v '_seconds"'; }

same_as_single() { # label, single-process args..., compared with mpirun -np 2
    local label=$1
    shift
    "$BIN" eval --data "$DATA" "$@" --threads 1 --quiet --ranks-csv "$T/s.csv" --out "$T/s.json" >/dev/null 2>"$T/err" ||
        fail "$label single: $(cat "$T/err")"
    "${MPIRUN[@]}" -np 2 "$MBIN" eval --data "$DATA" "$@" --threads 1 --quiet --ranks-csv "$T/m.csv" \
        --out "$T/m.json" >"$T/m.txt" 2>"$T/err" || fail "$label mpirun -np 2: $(cat "$T/err")"
    [ "$(wc -l <"$T/s.csv")" = 22364 ] || fail "$label: $(wc -l <"$T/s.csv") CSV lines, want 22364"
    cmp -s "$T/s.csv" "$T/m.csv" || fail "$label: per-user ranks differ between 1 process and 2 ranks"
    numbers "$T/s.json" >"$T/s.num"
    numbers "$T/m.json" >"$T/m.num"
    grep -q '"HR@10"' "$T/s.num" || fail "$label: no metrics in the JSON"
    cmp -s "$T/s.num" "$T/m.num" || fail "$label: metrics differ: $(diff "$T/s.num" "$T/m.num" | head -5)"
    grep -q '"ranks": 2' "$T/m.json" || fail "$label: JSON does not say 2 ranks"
    grep -q '"sharded": false' "$T/s.json" || fail "$label: the single run was sharded"
    cp "$T/s.csv" "$T/$label.csv"
}
same_as_single full --method itemknn --candidates all
same_as_single c100 --method itemknn --compare pop --candidates 100
grep -q '"comparison"' "$T/m.json" || fail "c100: no paired comparison in the MPI JSON"

# ---- a failing rank stops the job; the re-run resumes ----------------------------------
CK=$T/ck
run_ck() { # np, extra env..., -- lrgd args
    local np=$1
    shift
    env "$@" "${MPIRUN[@]}" -np "$np" "$MBIN" eval --data "$DATA" --method itemknn --candidates all --threads 1 \
        --quiet --checkpoint "$CK" --ranks-csv "$T/ck.csv" --out "$T/ck.json"
}
shard_files() { ls "$CK"/eval-*/shard-*.bin 2>/dev/null | wc -l; }
stamps() { stat -c '%n %i %y' "$CK"/eval-*/shard-*.bin 2>/dev/null; }

rm -f "$T/ck.json"
run_ck 2 LRGD_FAIL_RANK=1 LRGD_FAIL_AFTER=2 >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" != 0 ] || fail "a failing rank: exit 0"
grep -q 'lrgd eval: rank 1: injected failure after 2 computed shards (LRGD_FAIL_RANK=1)' "$T/err" ||
    fail "a failing rank: no clear message: $(head -c 600 "$T/err")"
[ -e "$T/ck.json" ] && fail "a failed job wrote its JSON"
n1=$(shard_files)
[ "$n1" -ge 2 ] && [ "$n1" -lt 59 ] || fail "after the failure: $n1 shard checkpoints (want 2..58 of 59)"
stamps >"$T/before"
run_ck 2 >"$T/out" 2>"$T/err" || fail "resume with 2 ranks: $(cat "$T/err")"
tr -d ' \n' <"$T/ck.json" >"$T/flat"
grep -q "\"shards\":59,\"shards_computed\":$((59 - n1)),\"shards_resumed\":$n1," "$T/flat" ||
    fail "resume: want $n1 resumed and $((59 - n1)) computed: $(grep -o '"distributed":{[^}]*}' "$T/flat")"
stamps | grep -Fxf "$T/before" | cmp -s - "$T/before" || fail "resume rewrote finished shard checkpoints"
cmp -s "$T/ck.csv" "$T/full.csv" || fail "resumed ranks differ from the single-process run"
[ "$(shard_files)" = 59 ] || fail "after the resume: $(shard_files) shard files, want 59"

# A rank killed by SIGKILL (a crash, not an error) also stops the job; a
# re-run with another rank count, and one in the MPI-free build, resume.
rm -rf "$CK"
run_ck 2 LRGD_FAIL_RANK=1 LRGD_FAIL_AFTER=3 LRGD_FAIL_MODE=kill >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" != 0 ] || fail "a killed rank: exit 0"
grep -q 'rank 1: LRGD_FAIL_MODE=kill after 3 computed shards' "$T/err" || fail "a killed rank: $(head -c 600 "$T/err")"
n2=$(shard_files)
[ "$n2" -ge 3 ] && [ "$n2" -lt 59 ] || fail "after the kill: $n2 shard checkpoints"
stamps >"$T/before"
run_ck 3 >"$T/out" 2>"$T/err" || fail "resume with 3 ranks: $(cat "$T/err")"
tr -d ' \n' <"$T/ck.json" >"$T/flat"
grep -q "\"ranks\":3,\"sharded\":true,\"shard_size\":384,\"shards\":59,\"shards_computed\":$((59 - n2)),\"shards_resumed\":$n2," "$T/flat" ||
    fail "resume with 3 ranks: $(grep -o '"distributed":{[^}]*}' "$T/flat")"
stamps | grep -Fxf "$T/before" | cmp -s - "$T/before" || fail "resume with 3 ranks rewrote finished shards"
cmp -s "$T/ck.csv" "$T/full.csv" || fail "ranks resumed with 3 ranks differ"
"$BIN" eval --data "$DATA" --method itemknn --candidates all --threads 1 --quiet --checkpoint "$CK" \
    --ranks-csv "$T/ck1.csv" --out "$T/ck1.json" >/dev/null 2>"$T/err" || fail "resume in one process: $(cat "$T/err")"
tr -d ' \n' <"$T/ck1.json" >"$T/flat"
grep -q '"ranks":1,"sharded":true,"shard_size":384,"shards":59,"shards_computed":0,"shards_resumed":59,' "$T/flat" ||
    fail "MPI-free resume: $(grep -o '"distributed":{[^}]*}' "$T/flat")"
cmp -s "$T/ck1.csv" "$T/full.csv" || fail "ranks resumed by the MPI-free build differ"

# ---- refusals --------------------------------------------------------------------------
# Ranks that read different data stop instead of mixing results.
cp "$TESTDATA/rec/tiny.txt" "$T/tiny2.txt"
echo "9 1 2 3 4" >>"$T/tiny2.txt"
"${MPIRUN[@]}" -np 1 "$MBIN" eval --data "$TESTDATA/rec/tiny.txt" --method pop --quiet : \
    -np 1 "$MBIN" eval --data "$T/tiny2.txt" --method pop --quiet >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" != 0 ] || fail "ranks with different data: exit 0"
grep -q 'rank 1: the configuration hash (data, model, options) differs from rank 0' "$T/err" ||
    fail "different data: $(head -c 600 "$T/err")"
# A command that does not shard refuses to run as several ranks.
"${MPIRUN[@]}" -np 2 "$MBIN" info "$SHARED/models/stories260K.bin" >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" = 2 ] || fail "lrgd info under 2 ranks: exit $rc, want 2"
grep -q 'lrgd info: does not run as 2 MPI ranks' "$T/err" || fail "lrgd info under 2 ranks: $(head -c 300 "$T/err")"
# A usage error is a usage error on every rank.
"${MPIRUN[@]}" -np 2 "$MBIN" eval --data "$DATA" --method itemknn --shard-size 100 >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" = 2 ] || fail "--shard-size 100 with --batch 64 under 2 ranks: exit $rc, want 2"
grep -q 'expected a multiple of --batch' "$T/err" || fail "--shard-size 100: $(head -c 300 "$T/err")"

echo "cli_mpi: $((SECONDS - t0)) s, $fails failures"
[ "$fails" -eq 0 ]
