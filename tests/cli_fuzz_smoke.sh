#!/usr/bin/env bash
# Smoke fuzz (about 60 s in all): every libFuzzer harness in fuzz/ from the
# committed seeds; fails on any crash, leak or violated property.
# Skipped (77) where clang cannot link libFuzzer, and in a sanitizer build of
# the suite: the harnesses carry their own ASan/UBSan, and one run per suite
# is enough (scripts/test.sh runs it in the Release pass).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LRGD_BUILD:?LRGD_BUILD not set}
if grep -q '^LRGD_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "sanitizer build: the smoke fuzz runs in the Release suite only"; exit 77
fi
if ! "$root/scripts/fuzz.sh" check; then
  echo "clang with libFuzzer not available: skipped"; exit 77
fi
LRGD_FUZZ_BUILD="$build/fuzz" exec "$root/scripts/fuzz.sh" smoke "${LRGD_FUZZ_SMOKE_SECONDS:-60}"
