#!/usr/bin/env bash
# The whole test suite: install what is missing, build (Release), run ctest;
# then build again with AddressSanitizer + UBSan and run ctest once more.
# Then the unit tests under valgrind memcheck (LRGD_VALGRIND_SUITE=0: not).
# Closing line: "N passed, N failed, N skipped" over all runs.
set -uo pipefail
cd "$(dirname "$0")/.."
# OpenMPI too, so that tests/cli_mpi.sh runs mpirun -np 2 (LRGD_WITH_MPI=0: not
# installed; cli_mpi.sh then skips where mpirun is missing).
LRGD_WITH_MPI=${LRGD_WITH_MPI:-1} scripts/deps.sh || { echo "dependency install failed"; echo "0 passed, 1 failed"; exit 1; }
jobs=$(nproc)
passed=0; failed=0; skipped=0
run_suite() { # name, build dir, extra ctest args, cmake flags...
  local name=$1 dir=$2 ctest_args=$3; shift 3
  echo "== $name =="
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >"$dir.configure.log" 2>&1 ||
     ! cmake --build "$dir" -j"$jobs" >"$dir.build.log" 2>&1; then
    cat "$dir.configure.log" "$dir.build.log" 2>/dev/null | tail -40
    failed=$((failed + 1)); return
  fi
  local log="$dir.ctest.log"
  # shellcheck disable=SC2086
  (cd "$dir" && ctest --output-on-failure -j"$jobs" $ctest_args ${LRGD_CTEST_ARGS:-}) 2>&1 | tee "$log"
  # ctest closes with "N% tests passed, F tests failed out of T"; skips are listed as "***Skipped".
  local total f s
  total=$(grep -Eo 'failed out of [0-9]+' "$log" | grep -Eo '[0-9]+$' || true)
  f=$(grep -Eo 'tests passed, [0-9]+ tests failed' "$log" | grep -Eo '[0-9]+' | tail -1 || true)
  s=$(grep -c '\*\*\*Skipped' "$log" || true)
  if [ -z "$total" ] || [ -z "$f" ]; then failed=$((failed + 1)); return; fi
  passed=$((passed + total - f - s)); failed=$((failed + f)); skipped=$((skipped + s))
}
mkdir -p build
run_suite "release" build/release ""
if [ "${LRGD_NO_SANITIZE:-0}" != 1 ]; then
  # LeakSanitizer stops every thread with ptrace at exit; on a loaded machine that
  # can fail ("LeakSanitizer has encountered a fatal error", seen once in cli_experiment,
  # not reproducible). A real sanitizer finding is deterministic and fails the retry too.
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_suite "asan+ubsan" build/asan "--repeat until-pass:2" -DLRGD_SANITIZE=ON -DCMAKE_C_COMPILER=clang
fi
# The unit tests once more under valgrind memcheck (scripts/valgrind.sh: no
# invalid accesses, no uninitialized bytes used, no leaks). On by default;
# LRGD_VALGRIND_SUITE=0 skips it. Its time: docs/FUZZING.md ("Sanitizers").
if [ "${LRGD_VALGRIND_SUITE:-1}" != 0 ]; then
  echo "== valgrind =="
  LRGD_WITH_VALGRIND=1 scripts/deps.sh || true
  scripts/valgrind.sh 2>&1 | tee build/valgrind.log
  vp=$(tail -n 1 build/valgrind.log | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1/p')
  vf=$(tail -n 1 build/valgrind.log | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\2/p')
  passed=$((passed + ${vp:-0})); failed=$((failed + ${vf:-1}))
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
