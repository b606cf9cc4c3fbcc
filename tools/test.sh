#!/usr/bin/env bash
# Installs the build dependencies, checks the C++ formatting, builds Courier
# twice (release, and ASan+UBSan) and runs every test; then a short libFuzzer
# run per target.
#   tools/test.sh                 what CI runs (.ci/run)
#   COURIER_FUZZ_SECONDS=600 tools/test.sh   longer fuzzing
#   COURIER_SKIP_ASAN=1 / COURIER_SKIP_FUZZ=1   quicker local runs
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)

tools/install-deps.sh

echo "== clang-format check"
tools/check-format.sh

run_suite() {  # build-dir, extra cmake args..., then ctest args after --
  local dir=$1; shift
  local cmake_args=() ctest_args=()
  while (($#)) && [[ $1 != -- ]]; do cmake_args+=("$1"); shift; done
  (($#)) && shift
  ctest_args=("$@")
  cmake -S "$root" -B "$dir" -G Ninja "${cmake_args[@]}" >/dev/null
  cmake --build "$dir" -j "$jobs"
  (cd "$dir" && ctest --output-on-failure -j "$jobs" --timeout 900 "${ctest_args[@]}")
}

echo "== release build and tests (at ${SECONDS}s)"
run_suite build/release -DCMAKE_BUILD_TYPE=Release

if [[ -z "${COURIER_SKIP_ASAN:-}" ]]; then
  echo "== ASan+UBSan build and tests, label 'long' skipped (at ${SECONDS}s)"
  # -O1 -g1: line-level stack traces at a fraction of -O2 -g's compile time.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build/asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
      -DCOURIER_SANITIZE=ON -- -LE long
fi

if [[ -z "${COURIER_SKIP_FUZZ:-}" ]]; then
  echo "== fuzz smoke, ${COURIER_FUZZ_SECONDS:-15} s per target (at ${SECONDS}s)"
  tools/fuzz.sh "${COURIER_FUZZ_SECONDS:-15}"
fi
echo "tools/test.sh: everything passed in ${SECONDS}s"
