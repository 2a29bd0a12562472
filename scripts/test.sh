#!/usr/bin/env bash
# The whole test suite: install what is missing, build (Release), run ctest;
# then build again with AddressSanitizer + UBSan and run ctest once more.
# Closing line: "N passed, N failed" over both runs.
set -uo pipefail
cd "$(dirname "$0")/.."
# OpenMPI too, so that tests/cli_mpi.sh runs mpirun -np 2 (LRGD_WITH_MPI=0: not
# installed; cli_mpi.sh then skips where mpirun is missing).
LRGD_WITH_MPI=${LRGD_WITH_MPI:-1} scripts/deps.sh || { echo "dependency install failed"; echo "0 passed, 1 failed"; exit 1; }
jobs=$(nproc)
passed=0; failed=0
run_suite() { # name, build dir, cmake flags...
  local name=$1 dir=$2; shift 2
  echo "== $name =="
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "$@" >"$dir.configure.log" 2>&1 ||
     ! cmake --build "$dir" -j"$jobs" >"$dir.build.log" 2>&1; then
    cat "$dir.configure.log" "$dir.build.log" 2>/dev/null | tail -40
    failed=$((failed + 1)); return
  fi
  local log="$dir.ctest.log"
  (cd "$dir" && ctest --output-on-failure -j"$jobs" ${LRGD_CTEST_ARGS:-}) 2>&1 | tee "$log"
  local p f
  p=$(grep -Eo '[0-9]+ tests passed' "$log" | head -1 | grep -Eo '^[0-9]+' || true)
  f=$(grep -Eo 'tests passed, [0-9]+ tests failed' "$log" | grep -Eo '[0-9]+' | tail -1 || true)
  # ctest prints "100% tests passed, 0 tests failed out of N"
  local total
  total=$(grep -Eo 'failed out of [0-9]+' "$log" | grep -Eo '[0-9]+$' || echo 0)
  f=${f:-1}
  [ -z "$total" ] && total=0
  passed=$((passed + total - f)); failed=$((failed + f))
}
mkdir -p build
run_suite "release" build/release
if [ "${LRGD_NO_SANITIZE:-0}" != 1 ]; then
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_suite "asan+ubsan" build/asan -DLRGD_SANITIZE=ON -DCMAKE_C_COMPILER=clang
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
