#!/usr/bin/env bash
# The unit tests (tests/test_*.c) under valgrind memcheck: any invalid read or
# write, use of uninitialized memory, or definite/possible leak fails a test.
#
#   scripts/valgrind.sh [TEST_NAME_REGEX]     (default: every unit test)
#
# Builds build/valgrind (Release + -g, no -march=native: valgrind 3.19 does not
# decode AVX-512), runs each test as ctest would (same environment), two at a
# time, longest first, and ends with "N passed, N failed". Logs:
# build/valgrind/vg/NAME.log.
# Env: LRGD_VG_JOBS (default: nproc); LRGD_VG_CPU_LIMIT per test in CPU seconds
# (default 3600: a limit on work done, so that a loaded machine does not fail a
# test that is merely starved); LRGD_VG_TIMEOUT per test in wall seconds, the
# guard against a hang (default 14400).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v valgrind >/dev/null || { echo "valgrind not installed (apt-get install valgrind)"; echo "0 passed, 1 failed"; exit 1; }
build=${LRGD_VG_BUILD:-$root/build/valgrind}
filter=${1:-.}
mkdir -p "$build"
if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLRGD_NATIVE=OFF -DCMAKE_C_FLAGS=-g >"$build.configure.log" 2>&1 ||
   ! cmake --build "$build" -j"$(nproc)" >"$build.build.log" 2>&1; then
  cat "$build.configure.log" "$build.build.log" | tail -n 40
  echo "0 passed, 1 failed"; exit 1
fi
shared=$(sed -n 's/^LRGD_SHARED_DIR:PATH=//p' "$build/CMakeCache.txt")
rm -rf "$build/vg"; mkdir -p "$build/vg"
export LRGD_SHARED="$shared" LRGD_TESTDATA="$root/tests/data" LRGD_BIN="$build/lrgd" LRGD_BUILD="$build"
# Two OpenMP threads as under ctest, but sleeping rather than spinning at
# barriers (valgrind runs one thread at a time: spinning only burns time).
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=0 OPENBLAS_NUM_THREADS=1
# No FMA instructions in the hot loops: valgrind emulates every FMA lane with a
# helper call (h_generic_calc_MAddF32: ~70% of test_textrec's time under
# memcheck). OpenBLAS takes its Sandy Bridge (AVX, no FMA) kernels and lrgd its
# scalar ones; test_kernels and test_effect_fast still run every SIMD clone the
# CPU has, explicitly, under memcheck. test_textrec: 302 -> 77 CPU s.
export OPENBLAS_CORETYPE=Sandybridge LRGD_ISA=scalar
# Tests may skip wall-clock checks under valgrind (20-50x slower) when this is set.
export LRGD_VALGRIND=1

run_one() { # test name -> writes vg/NAME.status: "rc wall_s cpu_s"
  local t=$1 rc TIMEFORMAT='%R %U %S'
  { time (cd "$build/tests" && ulimit -t "${LRGD_VG_CPU_LIMIT:-3600}" &&
     timeout "${LRGD_VG_TIMEOUT:-14400}" valgrind --tool=memcheck --error-exitcode=99 \
     --leak-check=full --errors-for-leak-kinds=definite,possible --show-leak-kinds=definite,possible \
     --track-origins=yes --num-callers=30 --suppressions="$root/scripts/valgrind.supp" \
     --log-file="$build/vg/$t.log" "./$t" >"$build/vg/$t.out" 2>&1); } 2>"$build/vg/$t.time"
  rc=$?
  read -r wall user sys <"$build/vg/$t.time"
  echo "$rc ${wall%.*} $(awk -v u="$user" -v s="$sys" 'BEGIN{printf "%d", u + s + 0.5}')" >"$build/vg/$t.status"
}
export -f run_one
export build root

mapfile -t tests < <(cd "$build/tests" && ls test_* 2>/dev/null | grep -E "$filter" | while read -r f; do [ -x "$build/tests/$f" ] && [ -f "$build/tests/$f" ] && echo "$f"; done)
# Longest first, so that the last test to start is a short one (the wall time
# is set by the slowest test: scripts/valgrind.costs holds each test's CPU
# seconds under memcheck from a full run, rewritten after each full run into
# BUILD/valgrind.costs; a test not listed there goes first).
costs=$root/scripts/valgrind.costs
[ -f "$build/valgrind.costs" ] && costs=$build/valgrind.costs
mapfile -t tests < <(for t in "${tests[@]}"; do
  c=$(awk -v t="$t" '$1 == t { print $2 }' "$costs" 2>/dev/null)
  echo "${c:-999999} $t"; done | sort -k1,1nr -k2 | cut -d' ' -f2)
t0=$(date +%s)
printf '%s\n' "${tests[@]}" | xargs -P "${LRGD_VG_JOBS:-$(nproc)}" -I{} bash -c 'run_one {}'
passed=0; failed=0; cpu_total=0
for t in "${tests[@]}"; do
  rc=1 secs=? cpu=0
  [ -f "$build/vg/$t.status" ] && read -r rc secs cpu <"$build/vg/$t.status"
  cpu_total=$((cpu_total + cpu))
  errs=$(grep -Eo 'ERROR SUMMARY: [0-9]+' "$build/vg/$t.log" | grep -Eo '[0-9]+' | tail -1)
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1)); printf '%-24s ok     %5ss wall %5ss cpu  %s errors\n' "$t" "$secs" "$cpu" "${errs:-?}"
  else
    failed=$((failed + 1))
    why="exit $rc"; [ "$rc" = 99 ] && why="valgrind errors"; [ "$rc" = 124 ] && why="wall timeout"
    [ "$rc" = 137 ] && why="killed: CPU limit"
    printf '%-24s FAIL   %5ss wall %5ss cpu  %s (%s errors) -> %s\n' "$t" "$secs" "$cpu" "$why" "${errs:-?}" "$build/vg/$t.log"
    grep -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|.*definitely lost|.*possibly lost)' "$build/vg/$t.log" | head -5
  fi
done
echo "valgrind: $(( $(date +%s) - t0 ))s wall, ${cpu_total}s cpu for ${#tests[@]} tests"
if [ "$filter" = . ]; then
  for t in "${tests[@]}"; do
    [ -f "$build/vg/$t.status" ] && read -r _ _ cpu <"$build/vg/$t.status" && echo "$t $cpu"
  done | sort >"$build/valgrind.costs"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
