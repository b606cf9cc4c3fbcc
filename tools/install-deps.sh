#!/usr/bin/env bash
# Installs the Debian 12 packages Courier needs to build, test and benchmark.
# Idempotent and non-interactive; run as root (or through sudo).
#   tools/install-deps.sh           build + test dependencies
#   tools/install-deps.sh --bench   also the load generators used by bench/
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates openssl curl
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libcli11-dev libssl-dev libsqlite3-dev sqlite3 libpugixml-dev
  libspdlog-dev libfmt-dev libcurl4-openssl-dev libnghttp2-dev
  libgtest-dev libgmock-dev
  postgresql libpq-dev  # the PostgreSQL backend and its tests
  haproxy  # docker/haproxy.cfg tested in front of two nodes (tests/scale_out/)
  clang-16 libclang-rt-16-dev clang-format
  chromium nodejs  # the web console's browser suite (tests/browser/)
)
# npm: Debian's package, unless a Node.js build that bundles npm is installed.
command -v npm >/dev/null || packages+=(npm)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(wrk nghttp2-client nginx-light hyperfine python3)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root, missing: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
