#!/usr/bin/env bash
# The highest single-message rate a build sustains at a latency, one rate at a time:
# for each rate, a fresh engine (release build, its own private PostgreSQL, loopback
# only), a warm-up at WARM_RATE/s for WARM_SECS (discarded), ANALYZE of the tables the
# warm-up filled (so every build's plans are those of a database in service, not of an
# empty one), then RATE/s single-message requests for 30 s, measured.
#
#   loadtest/capacity.sh OUT_DIR RATE...        e.g. loadtest/capacity.sh /tmp/cap 5000 6000
#   BIN_DIR=/path/to/other/target/release loadtest/capacity.sh OUT_DIR RATE...
#
# Prints one line per rate: offered, delivered msg/s, accept p50/p99/max, engine CPU s
# per 100,000 messages (the measured run only), CORRECTNESS.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: capacity.sh OUT_DIR RATE...}
shift
mkdir -p "$out"
if [[ -z ${BIN_DIR:-} ]]; then
  cargo build --release --bin msgengine --bin msgengine-load >/dev/null
fi
bin=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/release}
warm_rate=${WARM_RATE:-3000}
warm_secs=${WARM_SECS:-20}
port=18250
for rate in "$@"; do
  data=$(mktemp -d /tmp/msgengine-capacity-XXXXXX)
  chmod 755 "$data"
  MSGENGINE__ENGINE__OUTBOUND_LOOPBACK_ONLY=true "$bin/msgengine" serve --listen 127.0.0.1:$port \
    --data-dir "$data" >"$out/engine-$rate.log" 2>&1 &
  engine=$!
  trap 'kill -TERM $engine 2>/dev/null; wait $engine 2>/dev/null; rm -rf "$data"' EXIT
  for _ in $(seq 1 60); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && break; sleep 0.5; done
  token=$(cat "$data/admin-token")
  load() { "$bin/msgengine-load" run --base http://127.0.0.1:$port --admin-token="$token" \
             --sandbox-latency-ms 5 --org-rate 100000 --org-burst 100000 --drain-timeout 600 \
             --warmup 5 --batch-size 1 "$@"; }
  load --rate "$warm_rate" --duration "$warm_secs" >"$out/warm-$rate.log" 2>&1 || true
  pid_file=$(find "$data" -name postmaster.pid | head -1)
  socket=$(sed -n 5p "$pid_file")
  psql -h "$socket" -p "$(sed -n 4p "$pid_file")" -U msgengine -d msgengine -qc "ANALYZE" >/dev/null
  before=$(awk '{print $14 + $15}' "/proc/$engine/stat")
  load --rate "$rate" --duration 30 --report "$out/single-$rate.json" >"$out/single-$rate.log" 2>&1 || true
  ticks=$(( $(awk '{print $14 + $15}' "/proc/$engine/stat") - before ))
  log="$out/single-$rate.log"
  measured=$(grep -oE "[0-9]+ accepted," "$log" | head -1 | grep -oE "[0-9]+" || echo 0)
  warm=$(grep -oE "^warm-up +[0-9]+" "$log" | grep -oE "[0-9]+$" || echo 0)
  delivered=$(grep -oE "^end to end +[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
  latency=$(grep -E "^accept latency" "$log" | sed -E 's/.*p50 ([0-9.]+) ms \| p90 [0-9.]+ \| p99 ([0-9.]+) \| p99.9 [0-9.]+ \| max ([0-9.]+).*/p50 \1 ms, p99 \2 ms, max \3 ms/')
  correct=$(grep -oE "^CORRECTNESS: [A-Z]+" "$log" || echo "CORRECTNESS: ?")
  cpu=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n=$(( measured + warm )) \
          'BEGIN { if (n > 0) printf "%.1f", t / hz * 100000 / n; else print "?" }')
  echo "single-$rate: delivered $delivered msg/s; accept $latency; engine CPU $cpu s per 100,000; $correct"
  kill -TERM $engine 2>/dev/null; wait $engine 2>/dev/null || true
  rm -rf "$data"
  trap - EXIT
done
