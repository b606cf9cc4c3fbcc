#!/usr/bin/env bash
# Builds Courier (Release) and runs every benchmark; writes docs/BENCHMARKS.md.
#   bench/run.sh                 all of them, 3 runs each (~30 minutes on 2 cores)
#   bench/run.sh --only B,C      some; --quick for small sizes; --help for more
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --bench
cmake -S . -B build/bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOURIER_TESTS=OFF >/dev/null
cmake --build build/bench -j "$(nproc)" --target courier seed_store push_bench ceiling_server
exec python3 bench/run.py "$@"
