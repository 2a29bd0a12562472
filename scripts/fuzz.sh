#!/usr/bin/env bash
# libFuzzer harnesses (fuzz/fuzz_*.c): build, seed, smoke-run, long-run.
#
#   scripts/fuzz.sh build                 build every harness (clang, ASan+UBSan+libFuzzer)
#   scripts/fuzz.sh check                 exit 0 if clang can link libFuzzer here, 77 if not
#   scripts/fuzz.sh smoke [TOTAL_S]       every harness, TOTAL_S (default 60) seconds in all,
#                                         from the committed seeds; fails on any crash
#   scripts/fuzz.sh long SECONDS [NAME..] each harness (or the NAMEs) for SECONDS, keeping
#                                         its growing corpus in BUILD/corpus/NAME; prints a
#                                         summary (execs, exec/s, cov, ft) into BUILD/summary.tsv
#   scripts/fuzz.sh run NAME [ARGS..]     one harness by hand, with libFuzzer ARGS
#   scripts/fuzz.sh seeds                 regenerate fuzz/corpus from lrgd's writers and
#                                         the shared data (LRGD_SHARED, default ../shared)
#   scripts/fuzz.sh merge [NAME..]        minimize BUILD/corpus/NAME into fuzz/corpus/NAME
#
# BUILD is $LRGD_FUZZ_BUILD (default build/fuzz). A crash leaves its input in
# BUILD/artifacts/; replay it with BUILD/NAME FILE, then add it to fuzz/regress/NAME/
# (tests/test_fuzz_regress.c replays those and the seeds in every test run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${LRGD_FUZZ_BUILD:-$root/build/fuzz}
cc=${LRGD_FUZZ_CC:-clang}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

harnesses() { for f in fuzz/fuzz_*.c; do basename "$f" .c; done; }

check() {
  command -v "$cc" >/dev/null 2>&1 || return 77
  local d
  d=$(mktemp -d)
  printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' >"$d/t.c"
  if "$cc" -fsanitize=fuzzer,address,undefined "$d/t.c" -o "$d/t" >/dev/null 2>&1; then rm -rf "$d"; return 0; fi
  rm -rf "$d"
  return 77
}

do_build() {
  mkdir -p "$build"
  if ! cmake -S fuzz -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=None >"$build/configure.log" 2>&1 ||
     ! cmake --build "$build" -j"$(nproc)" >"$build/build.log" 2>&1; then
    cat "$build/configure.log" "$build/build.log" | grep -v "^\[" | tail -n 40 >&2
    echo "fuzz: build failed (logs in $build)" >&2
    return 1
  fi
}

# Extra flags for a harness: fuzz/NAME.dict as a dictionary, fuzz/NAME.options verbatim.
flags_for() {
  local n=$1
  [ -f "fuzz/$n.dict" ] && printf -- '-dict=%s\n' "$root/fuzz/$n.dict"
  [ -f "fuzz/$n.options" ] && grep -v '^#' "fuzz/$n.options" | tr ' ' '\n' | grep -v '^$'
  return 0
}

# run_one NAME SECONDS WORK_CORPUS LOG: one libFuzzer run; returns its status.
run_one() {
  local n=$1 secs=$2 work=$3 log=$4
  mkdir -p "$work" "$build/artifacts"
  local -a extra dirs=("$work")
  mapfile -t extra < <(flags_for "$n")
  [ -d "fuzz/corpus/$n" ] && dirs+=("fuzz/corpus/$n") # a new harness may have no seeds yet
  "$build/$n" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$n-" "${extra[@]}" "${dirs[@]}" >"$log" 2>&1
}

# Summary columns from a libFuzzer log: execs exec/s cov ft corpus.
stats_of() {
  local log=$1 execs rate cov ft corp
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  rate=$(grep -Eo 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  local last
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
  cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corp=$(sed -nE 's/.*corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$last")
  printf '%s\t%s\t%s\t%s\t%s\n' "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}"
}

cmd=${1:-}
shift || true
case "$cmd" in
check) check ;;
build)
  check || { echo "fuzz: $cc cannot link -fsanitize=fuzzer (install clang and libclang-rt-14-dev)" >&2; exit 77; }
  do_build ;;
smoke)
  total=${1:-60}
  check || { echo "fuzz: no libFuzzer here: skipped" >&2; exit 77; }
  do_build
  mapfile -t names < <(harnesses)
  per=$(( total / ${#names[@]} ))
  [ "$per" -lt 1 ] && per=1
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  fail=0
  printf 'harness\tseconds\texecs\texec/s\tcov\tft\tcorpus\n'
  for n in "${names[@]}"; do
    if run_one "$n" "$per" "$tmp/$n" "$tmp/$n.log"; then
      printf '%s\t%s\t%s\n' "$n" "$per" "$(stats_of "$tmp/$n.log")"
    else
      printf '%s\t%s\tCRASH\n' "$n" "$per"
      grep -E 'ERROR|SUMMARY|fuzz property|runtime error|Test unit written' "$tmp/$n.log" | head -20
      fail=1
    fi
  done
  exit $fail ;;
long)
  secs=${1:?usage: scripts/fuzz.sh long SECONDS [NAME..]}
  shift
  check || { echo "fuzz: no libFuzzer here" >&2; exit 77; }
  do_build
  if [ $# -gt 0 ]; then names=("$@"); else mapfile -t names < <(harnesses); fi
  mkdir -p "$build/logs"
  sum=$build/summary.tsv
  [ -f "$sum" ] || printf 'date\tharness\tseconds\tstatus\texecs\texec/s\tcov\tft\tcorpus\n' >"$sum"
  printf 'harness\tseconds\tstatus\texecs\texec/s\tcov\tft\tcorpus\n'
  for n in "${names[@]}"; do
    log=$build/logs/$n.$(date +%Y%m%d-%H%M%S).log
    status=ok
    run_one "$n" "$secs" "$build/corpus/$n" "$log" || status=CRASH
    line="$n	$secs	$status	$(stats_of "$log")"
    printf '%s\n' "$line"
    printf '%s\t%s\n' "$(date -Iseconds)" "$line" >>"$sum"
    [ "$status" = ok ] || grep -E 'ERROR|SUMMARY|fuzz property|runtime error|Test unit written' "$log" | head -20
  done ;;
run)
  n=${1:?usage: scripts/fuzz.sh run NAME [ARGS..]}
  shift
  do_build
  mapfile -t extra < <(flags_for "$n")
  mkdir -p "$build/corpus/$n" "$build/artifacts"
  exec "$build/$n" -artifact_prefix="$build/artifacts/$n-" "${extra[@]}" "$@" ;;
seeds)
  do_build
  shared=${LRGD_SHARED:-$root/../shared}
  "$build/gen_seeds" "$root/fuzz/corpus" "$shared"
  du -sh fuzz/corpus ;;
merge)
  do_build
  if [ $# -gt 0 ]; then names=("$@"); else mapfile -t names < <(harnesses); fi
  for n in "${names[@]}"; do
    [ -d "$build/corpus/$n" ] || continue
    mapfile -t extra < <(flags_for "$n")
    "$build/$n" -merge=1 "${extra[@]}" "fuzz/corpus/$n" "$build/corpus/$n" >"$build/merge-$n.log" 2>&1
    echo "$n: $(ls "fuzz/corpus/$n" | wc -l) files, $(du -sh "fuzz/corpus/$n" | cut -f1)"
  done ;;
*)
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
  [ -z "$cmd" ] || exit 2 ;;
esac
