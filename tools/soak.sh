#!/usr/bin/env bash
# Soak: a Release `courier serve` under simulated fleet traffic for a long
# time, its memory and descriptors sampled; fails if either keeps growing or
# the fleet sees a protocol error. Not part of CI (it takes as long as you
# give it):
#   tools/soak.sh                 1 hour, 2,000 devices
#   SOAK_SECONDS=600 SOAK_DEVICES=500 tools/soak.sh
# The fleet polls every 10 s, answers 5 % NotNow and 2 % Error, and an
# administrator loop queues a command to 50 random devices every second
# (pushed through the simulator's fake APNs, so devices wake).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SOAK_SECONDS:-3600}
devices=${SOAK_DEVICES:-2000}
build=build/bench
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOURIER_TESTS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target courier
courier=$PWD/$build/courier

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
port=$((20000 + RANDOM % 20000)); apns_port=$((port + 1))
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/apns.key" -out "$work/apns.crt" 2>/dev/null
"$courier" serve --listen "127.0.0.1:$port" --data-dir "$work/data" --public-url "https://127.0.0.1:$port" \
  --apns-url "https://127.0.0.1:$apns_port" --apns-ca "$work/apns.crt" --log-level warn >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 100); do [[ -f $work/data/api-key ]] && curl -sf --cacert "$work/data/tls/ca.crt" \
  "https://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

"$courier" simulate --url "https://127.0.0.1:$port" --data-dir "$work/data" --import-push-cert \
  --devices "$devices" --connections 32 --udid-prefix SOAK- --duration "$seconds" --poll-ms 10000 \
  --notnow-share 0.05 --error-share 0.02 --apns-listen "127.0.0.1:$apns_port" \
  --apns-cert "$work/apns.crt" --apns-key "$work/apns.key" --json -q >"$work/sim.json" 2>"$work/sim.log" &
sim=$!

key=$(cat "$work/data/api-key")
admin() {  # a command to 50 random devices every second
  while kill -0 $sim 2>/dev/null; do
    targets=$(shuf -i 0-$((devices - 1)) -n 50 | awk '{printf "%s\"SOAK-%07d\"", (NR>1?",":""), $1}')
    curl -sf --cacert "$work/data/tls/ca.crt" -H "Authorization: Bearer $key" -o /dev/null \
      -d "{\"targets\":[$targets],\"command\":{\"RequestType\":\"SecurityInfo\"},\"push\":true}" \
      "https://127.0.0.1:$port/v1/commands" || true
    sleep 1
  done
}
sleep 15 && admin &

echo "soak: ${seconds}s, $devices devices; samples: seconds rss_kib fds"
samples=()
start=$(date +%s)
while kill -0 $sim 2>/dev/null; do
  sleep 30
  rss=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
  fds=$(ls /proc/$server/fd | wc -l)
  t=$(($(date +%s) - start))
  echo "$t $rss $fds"
  samples+=("$t $rss $fds")
done
wait $sim || { echo "soak: simulator failed"; tail "$work/sim.log"; exit 1; }
python3 - "$work/sim.json" "${samples[@]}" <<'EOF'
import json, sys
summary = json.load(open(sys.argv[1]))
rows = [tuple(map(int, s.split())) for s in sys.argv[2:]]
print("fleet:", json.dumps(summary["totals"]))
if not summary["ok"]:
    sys.exit("soak: the fleet saw errors")
if len(rows) >= 6:
    third = len(rows) // 3
    early = max(r[1] for r in rows[third:2 * third])
    late = max(r[1] for r in rows[2 * third:])
    fds_early = max(r[2] for r in rows[third:2 * third])
    fds_late = max(r[2] for r in rows[2 * third:])
    print(f"rss middle third max {early} KiB, last third max {late} KiB; fds {fds_early} -> {fds_late}")
    if late > early * 1.2 + 10240:
        sys.exit("soak: memory keeps growing")
    if fds_late > fds_early + 64:
        sys.exit("soak: descriptors keep growing")
print("soak: ok")
EOF
