#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-16 and runs each for N seconds
# (default 15) on a corpus seeded from tests/fixtures. Crashes land in
# build/fuzz/crashes/<target>/ and fail the run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
dir=build/fuzz
CC=clang-16 CXX=clang++-16 cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCOURIER_FUZZ=ON -DCOURIER_TESTS=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)" --target fuzz_targets
status=0
for bin in "$dir"/tests/fuzz/fuzz_*; do
  [[ -x $bin ]] || continue
  name=$(basename "$bin")
  corpus="$dir/corpus/$name"; crashes="$dir/crashes/$name"
  mkdir -p "$corpus" "$crashes"
  # The target's own seeds (hostile shapes) and the captured fixtures.
  seeds=(tests/fixtures)
  [[ -d tests/fuzz/seeds/${name#fuzz_} ]] && seeds=("tests/fuzz/seeds/${name#fuzz_}" tests/fixtures)
  if ! "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -artifact_prefix="$crashes/" \
      -print_final_stats=0 "$corpus" "${seeds[@]}" >"$dir/$name.log" 2>&1; then
    echo "fuzz: $name FAILED (see $dir/$name.log and $crashes/)"; tail -30 "$dir/$name.log"; status=1
  else
    echo "fuzz: $name ok ($(grep -o 'Done [0-9]* runs' "$dir/$name.log" | grep -o '[0-9]*' || echo '?') runs in ${seconds} s)"
  fi
done
exit $status
