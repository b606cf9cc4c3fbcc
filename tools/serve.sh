#!/usr/bin/env bash
# Installs the build dependencies, builds Courier (release) and starts
# `courier serve` with any arguments given (none: the embedded defaults —
# SQLite and generated TLS/keys in ./courier-data, HTTPS on 0.0.0.0:8443).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j "$(nproc)" --target courier
exec build/release/courier serve "$@"
