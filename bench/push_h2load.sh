#!/usr/bin/env bash
# The push_bench request replayed by h2load against `courier fake-apns`: the
# ceiling for one HTTP/2 connection to the fake, without libcurl or the pusher.
# h2load has no client-certificate option, so the fake runs with
# --client-cert optional. Usage:
#   bench/push_h2load.sh [COURIER_BINARY] [PUSHES] [STREAMS]
# e.g. bench/push_h2load.sh build-release/courier 100000 500
set -euo pipefail

courier=${1:-build/courier}
pushes=${2:-100000}
streams=${3:-500}
port=${PORT:-22197}
token=0000000000000000000000000000000000000000000000000000000000000001
topic=com.apple.mgmt.External.9f1c1d2e-bench

command -v h2load >/dev/null || { echo "h2load not found (apt-get install nghttp2-client)" >&2; exit 2; }
work=$(mktemp -d)
trap 'kill "$fake_pid" 2>/dev/null || true; wait "$fake_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

"$courier" fake-apns --listen "127.0.0.1:$port" --client-cert optional >"$work/fake.log" 2>&1 &
fake_pid=$!
for _ in $(seq 100); do
    grep -q "listening on" "$work/fake.log" && break
    kill -0 "$fake_pid" 2>/dev/null || { cat "$work/fake.log" >&2; exit 1; }
    sleep 0.1
done
grep -q "listening on" "$work/fake.log" || { echo "fake-apns did not start" >&2; exit 1; }

printf '{"mdm":"5F2A7B3C-0D1E-4F5A-8B9C-0D1E2F3A4B5C"}' >"$work/body.json"
expiration=$(( $(date +%s) + 7 * 86400 ))
h2load -n "$pushes" -c 1 -m "$streams" -d "$work/body.json" \
    -H "apns-topic: $topic" -H "apns-push-type: mdm" -H "apns-priority: 10" \
    -H "apns-expiration: $expiration" -H "content-type: application/json" \
    "https://127.0.0.1:$port/3/device/$token"
