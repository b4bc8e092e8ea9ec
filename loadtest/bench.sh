#!/usr/bin/env bash
# The headline benchmark runs of BENCHMARKS.md, side by side in one go:
# a fresh engine (release build, its own private PostgreSQL with synchronous
# commit on) and the harness, both on this machine, loopback only.
#
#   loadtest/bench.sh [OUT_DIR]        (default target/bench)
#   RUNS="batch-12k single-4k" loadtest/bench.sh OUT_DIR    (only those runs)
#   BIN_DIR=/path/to/other/target/release loadtest/bench.sh OUT_DIR
#                                       (another build's binaries, e.g. the previous main's)
#
# route-default and route-rules50 compare routing with no rule and with 50 rules
# (10 connections each; see below). Besides the headline runs, single-6k, single-8k and single-10k offer single-message
# requests past what the headline runs ask, and single-<N> (any N, e.g. single-4500)
# offers N a second, to find the highest rate a build sustains.
# Each run also prints the engine's CPU seconds per 100,000 messages accepted
# (utime + stime from /proc, over the run and its drain).
#
# Each run checks afterwards that every accepted message reached a terminal
# state (CORRECTNESS line). Engine memory (RSS) is sampled every 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/bench}
mkdir -p "$out"
if [[ -z ${BIN_DIR:-} ]]; then
  cargo build --release --bin msgengine --bin msgengine-load >/dev/null
fi
bin=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/release}
runs=" ${RUNS:-batch-15k single-5k batch-12k single-4k soak-5min} "
data=$(mktemp -d /tmp/msgengine-bench-XXXXXX)
chmod 755 "$data"
port=18200
# Loopback only: the engine reaches nothing but this machine (sandbox providers here;
# the simulator on 127.0.0.1 in scenarios), and the default public-only address
# policy would refuse the simulator.
MSGENGINE__ENGINE__OUTBOUND_LOOPBACK_ONLY=true "$bin/msgengine" serve --listen 127.0.0.1:$port --data-dir "$data" >"$out/engine.log" 2>&1 &
engine=$!
trap 'kill -TERM $engine 2>/dev/null; wait $engine 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 60); do curl -sf http://127.0.0.1:$port/readyz >/dev/null && break; sleep 0.5; done
token=$(cat "$data/admin-token")
load() { "$bin/msgengine-load" run --base http://127.0.0.1:$port --admin-token="$token" \
           --sandbox-latency-ms 5 --org-rate 100000 --org-burst 100000 --drain-timeout 600 --warmup 5 "$@"; }
rss() { while kill -0 $engine 2>/dev/null; do echo "$(date +%s) $(ps -o rss= -p $engine)"; sleep 10; done; }
rss >"$out/rss.txt" &
sampler=$!
ticks() { awk '{print $14 + $15}' "/proc/$engine/stat"; }
run() { name=$1; shift; [[ $runs == *" $name "* ]] || return 0; echo "== $name: $*"; before=$(ticks)
        load --report "$out/$name.json" "$@" >"$out/$name.log" 2>&1 || true
        grep -E "^(accept|end to end|accepted|CORRECTNESS|throughput|load done)" "$out/$name.log" || tail -5 "$out/$name.log"
        measured=$(grep -oE "[0-9]+ accepted," "$out/$name.log" | head -1 | grep -oE "[0-9]+" || true)
        warm=$(grep -oE "^warm-up +[0-9]+" "$out/$name.log" | grep -oE "[0-9]+$" || true)
        accepted=$(( ${measured:-0} + ${warm:-0} ))
        awk -v t=$(( $(ticks) - before )) -v hz="$(getconf CLK_TCK)" -v n="${accepted:-0}" \
          'BEGIN { if (n > 0) printf "engine CPU: %.1f s per 100,000 messages (%.1f s for %d)\n", t / hz * 100000 / n, t / hz, n }'; }
run batch-15k   --rate 15000 --duration 60 --batch-size 1000
run single-5k   --rate 5000  --duration 60 --batch-size 1
run batch-12k   --rate 12000 --duration 30 --batch-size 1000
run single-4k   --rate 4000  --duration 30 --batch-size 1
run soak-5min   --rate 4000  --duration 300 --batch-size 100
run single-6k   --rate 6000  --duration 30 --batch-size 1
run single-8k   --rate 8000  --duration 30 --batch-size 1
run single-10k  --rate 10000 --duration 30 --batch-size 1
# Routing at scale (issue 12): the same offered load over 10 SANDBOX connections, with no
# rule (every message planned by the default) and with 50 rules of which only the last
# matches (every message checked against all 50, then ordered by cost). Run them side
# by side: RUNS="route-default route-rules50 route-default route-rules50".
route() { run "$1" --rate 5000 --duration 30 --batch-size 1 --routing-providers 10 --routing-rules "$2"; }
for name in $runs; do
  case $name in
    route-default) route route-default 0 ;;
    route-rules50) route route-rules50 50 ;;
  esac
done
# single-<N>: N single-message requests a second for 30 s (e.g. single-4500), in
# the order given, to find the highest rate a build sustains at a latency.
for name in $runs; do
  [[ $name =~ ^single-([0-9]+)$ ]] && run "$name" --rate "${BASH_REMATCH[1]}" --duration 30 --batch-size 1
done
kill $sampler 2>/dev/null || true
echo "engine RSS samples (kB): $(awk '{print $2}' "$out/rss.txt" | tr '\n' ' ')"
