#!/usr/bin/env bash
# lrgd under MPI (docs/DISTRIBUTED.md): `mpirun -np 2 lrgd eval` on Beauty
# (ItemKNN, full ranking and 1+99 with a paired comparison against Pop) gives
# the per-user ranks CSV and the metrics/significance JSON of the
# single-process run byte for byte; so do `lrgd effect`, `lrgd optimize` (with
# Stage 2 rounds whose merge recomputes users) and `lrgd experiment` on a
# small planted dataset (every JSON number but timings); an optimize rank
# killed in Stage 2 round 2 stops the job and the re-run with 3 ranks resumes
# every finished shard of every phase; test_dist's collectives and gather with 3
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

# ---- effect, optimize and experiment: the same numbers ----------------------------------
# A small planted dataset and a tiny model trained here (a second): 300
# users, 50 items, two step sizes of a cyclic sequence.
if command -v python3 >/dev/null; then
awk 'BEGIN { srand(5); for (u = 1; u <= 300; u++) { n = 7 + int(rand() * 8); s = int(rand() * 50); d = 1 + u % 2;
       line = u; for (i = 0; i < n; i++) line = line " " (1 + (s + d * i) % 50); print line } }' >"$T/syn.txt"
"$BIN" train --data "$T/syn.txt" --epochs 6 --batch 16 --dim 16 --hidden 32 --heads 2 --kv-heads 1 --seq 128 \
    --max-hist 12 --demo-hist 8 --demos 2 --lr 0.01 --warmup 10 --threads 1 --quiet --out "$T/m.gguf" ||
    fail "training the test model"
# Every number of two JSON files equal, timings, paths, the command line and
# the "distributed" section (ranks, bytes, CPU) left out; prints the count.
cat >"$T/jcmp.py" <<'PY'
import json, re, sys
DROP = re.compile(r'seconds|command|^us_per|^ratio_|^distributed$|^scatter$|^pairs_csv$|^selections$|^checkpoint$')
def strip(v):
    if isinstance(v, dict): return {k: strip(x) for k, x in v.items() if not DROP.search(k)}
    if isinstance(v, list): return [strip(x) for x in v]
    return v
def count(v):
    if isinstance(v, dict): return sum(count(x) for x in v.values())
    if isinstance(v, list): return sum(count(x) for x in v)
    return int(isinstance(v, (int, float)) and not isinstance(v, bool))
a, b = (strip(json.load(open(f))) for f in sys.argv[1:3])
if a != b:
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k): print("differs:", k, str(a.get(k))[:300], "|", str(b.get(k))[:300])
    sys.exit(1)
print(count(a))
PY
jsame() { # label a.json b.json [min numbers]
    local n
    n=$(python3 "$T/jcmp.py" "$2" "$3") || { fail "$1: numbers differ: $n"; return; }
    [ "$n" -ge "${4:-10}" ] || fail "$1: only $n numbers compared"
}
MP=(--model "$T/m.gguf" --data "$T/syn.txt" --threads 1 --quiet)

# Effect_D validity: every (user, demonstration) pair and the correlations.
EA=(--users 40 --pool 10 --truth --max-hist 12 --demo-hist 8)
"$BIN" effect "${MP[@]}" "${EA[@]}" --out "$T/e1" >/dev/null 2>"$T/err" || fail "effect single: $(cat "$T/err")"
"${MPIRUN[@]}" -np 2 "$MBIN" effect "${MP[@]}" "${EA[@]}" --out "$T/e2" >/dev/null 2>"$T/err" ||
    fail "effect mpirun -np 2: $(cat "$T/err")"
jsame effect "$T/e1/effect.json" "$T/e2/effect.json" 20
cmp -s "$T/e1/effect_pairs.csv" "$T/e2/effect_pairs.csv" || fail "effect: the pairs CSV differs"
[ "$(wc -l <"$T/e1/effect_pairs.csv")" -gt 100 ] || fail "effect: $(wc -l <"$T/e1/effect_pairs.csv") pair lines"
grep -q '"ranks": 2' "$T/e2/effect.json" || fail "effect: JSON does not say 2 ranks"

# The same with one shared pool (the matrix scorer): every rank encodes the pool.
EA=(--users 30 --pool 12 --shared-pool --truth --max-hist 12 --demo-hist 8)
"$BIN" effect "${MP[@]}" "${EA[@]}" --out "$T/s1" >/dev/null 2>"$T/err" || fail "effect --shared-pool single: $(cat "$T/err")"
"${MPIRUN[@]}" -np 2 "$MBIN" effect "${MP[@]}" "${EA[@]}" --out "$T/s2" >/dev/null 2>"$T/err" ||
    fail "effect --shared-pool mpirun -np 2: $(cat "$T/err")"
jsame "effect --shared-pool" "$T/s1/effect.json" "$T/s2/effect.json" 20
cmp -s "$T/s1/effect_pairs.csv" "$T/s2/effect_pairs.csv" || fail "effect --shared-pool: the pairs CSV differs"
[ "$(wc -l <"$T/s1/effect_pairs.csv")" -eq 361 ] || fail "effect --shared-pool: $(wc -l <"$T/s1/effect_pairs.csv") lines, not 1 + 30 x 12"

# The two-stage optimizer: Stage 1, three Stage 2 rounds with the guard, the
# test ranks. The single run takes the sequential path; the sharded one
# speculates each round and must recompute some users in the merge.
OA=(--users 30 --hold 10 --pool 8 --k 2 --m 2 --m2 1 --rounds 3 --verify 2 --proposals 4 --max-hist 12 --demo-hist 8)
"$BIN" optimize "${MP[@]}" "${OA[@]}" --out "$T/o1" >/dev/null 2>"$T/err" || fail "optimize single: $(cat "$T/err")"
"${MPIRUN[@]}" -np 2 "$MBIN" optimize "${MP[@]}" "${OA[@]}" --out "$T/o2" >/dev/null 2>"$T/err" ||
    fail "optimize mpirun -np 2: $(cat "$T/err")"
jsame optimize "$T/o1/optimize.json" "$T/o2/optimize.json" 40
cmp -s "$T/o1/selections.json" "$T/o2/selections.json" || fail "optimize: selections differ"
grep -q '"edits_accepted": [1-9]' "$T/o1/optimize.json" || fail "optimize: stage 2 accepted no edit (nothing tested)"
grep -q '"stage2_redone": [1-9]' "$T/o2/optimize.json" ||
    fail "optimize: no user recomputed in the stage-2 merge: $(grep stage2_redone "$T/o2/optimize.json")"

# The whole experiment (with the model above, so nothing is trained).
XA=(--data "$T/syn.txt" --model "$T/m.gguf" --quick --users 16 --hold 6 --pool 6 --validity-users 4 --e3-users 2
    --rounds 2 --replay-steps 2 --threads 1 --seed 3 --quiet)
"$BIN" experiment "${XA[@]}" --out "$T/x1" >/dev/null 2>"$T/err" || fail "experiment single: $(cat "$T/err")"
"${MPIRUN[@]}" -np 2 "$MBIN" experiment "${XA[@]}" --out "$T/x2" >/dev/null 2>"$T/err" ||
    fail "experiment mpirun -np 2: $(cat "$T/err")"
jsame experiment "$T/x1/results.json" "$T/x2/results.json" 500
cmp -s <(tail -n +2 "$T/x1/methods.csv") <(tail -n +2 "$T/x2/methods.csv") || fail "experiment: methods.csv differs"
grep -q '"evaluations_sharded": [1-9]' "$T/x2/results.json" || fail "experiment: no sharded evaluation"

# A rank killed in the middle of Stage 2 (round 2) stops the job; the re-run
# (with 3 ranks) resumes every finished shard of every phase, rewrites none
# and ends with the single run's numbers.
OK=$T/ock
ofiles() { find "$OK" -name 'shard-*.bin' | sort; }
LRGD_FAIL_RANK=1 LRGD_FAIL_AFTER=2 LRGD_FAIL_MODE=kill LRGD_FAIL_JOB=stage2-round2 "${MPIRUN[@]}" -np 2 "$MBIN" \
    optimize "${MP[@]}" "${OA[@]}" --checkpoint "$OK" --shard-size 3 --out "$T/o3" >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" != 0 ] || fail "optimize with a killed rank: exit 0"
grep -q 'lrgd optimize-stage2-round2: rank 1: LRGD_FAIL_MODE=kill after 2 computed shards' "$T/err" ||
    fail "optimize with a killed rank: $(head -c 600 "$T/err")"
[ -e "$T/o3/optimize.json" ] && fail "a killed optimize wrote its JSON"
n3=$(ofiles | wc -l)
[ -d "$OK"/optimize-stage2-round2-* ] && [ "$n3" -gt 40 ] || fail "after the kill: $n3 shard files, no round-2 folder?"
ofiles | xargs stat -c '%n %i %y' >"$T/before"
"${MPIRUN[@]}" -np 3 "$MBIN" optimize "${MP[@]}" "${OA[@]}" --checkpoint "$OK" --shard-size 3 --out "$T/o3" \
    >/dev/null 2>"$T/err" || fail "optimize resume with 3 ranks: $(cat "$T/err")"
tr -d ' \n' <"$T/o3/optimize.json" >"$T/flat"
grep -q "\"shards_resumed\":$n3," "$T/flat" ||
    fail "optimize resume: want $n3 shards resumed: $(grep -o '"distributed":{[^[]*' "$T/flat")"
ofiles | xargs stat -c '%n %i %y' | grep -Fxf "$T/before" | cmp -s - "$T/before" ||
    fail "optimize resume rewrote finished shard checkpoints"
jsame "optimize resumed" "$T/o1/optimize.json" "$T/o3/optimize.json" 40
cmp -s "$T/o1/selections.json" "$T/o3/selections.json" || fail "optimize resumed: selections differ"
else
    echo "note: python3 not found: effect/optimize/experiment comparisons skipped"
fi

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
