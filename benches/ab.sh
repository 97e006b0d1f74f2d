#!/usr/bin/env bash
# Two builds side by side (on demand, not in CI): CPU per acknowledged booking and throughput of
# binary A and binary B on the same machine, in interleaved rounds (A B, B A, A B, …) so that the
# machine's drift — large here: one build's figure moves ±25 % between runs minutes apart — falls
# on both alike. Each binary serves its own PostgreSQL database; both share one Redis (throttles).
# The load is load.sh's "spread" case: scheduled bookings over the next day, 64 connections.
#
#   benches/ab.sh A_BINARY B_BINARY [rounds] [seconds]
#   e.g. git worktree add /tmp/base <rev> && (cd /tmp/base && CARGO_TARGET_DIR=/tmp/base-target cargo build --release)
#        benches/ab.sh /tmp/base-target/release/ringback target/release/ringback 5 10
set -euo pipefail
cd "$(dirname "$0")/.."
A_BIN=$(realpath "$1")
B_BIN=$(realpath "$2")
ROUNDS=${3:-5}
DURATION=${4:-10}
CONNECTIONS=64
PG=${RINGBACK_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
REDIS_PORT=${RINGBACK_BENCH_REDIS_PORT:-39179}
TOKEN=bench-admin-token
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
. benches/common.sh
redis-server --port "$REDIS_PORT" --save "" --appendonly no --daemonize yes >/dev/null
export BENCH_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

declare -A SERVERS PORTS KEYS
for side in A B; do
  PORT=$([ "$side" = A ] && echo 39251 || echo 39252)
  BENCH_BIN=$([ "$side" = A ] && echo "$A_BIN" || echo "$B_BIN")
  db="ringback_ab_$(echo "$side" | tr AB ab)"
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  start_bench_server "$PG/$db" info "$WORK/$side.log"
  PIDS+=("$SERVER")
  SERVERS[$side]=$SERVER PORTS[$side]=$PORT
  KEYS[$side]=$(provision_bench_tenant)
  write_create_lua "$WORK/$side.lua" "${KEYS[$side]}"
done

# run SIDE: one saturation run; appends "cpu_us rps" to $WORK/SIDE.figures.
run() {
  local side=$1 before after
  before=$(cpu_ticks "${SERVERS[$side]}")
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/$side.lua" "http://127.0.0.1:${PORTS[$side]}" >"$WORK/$side.txt"
  after=$(cpu_ticks "${SERVERS[$side]}")
  local total non2xx ok rps
  total=$(awk '/requests in/ {print $1}' "$WORK/$side.txt")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$WORK/$side.txt")
  ok=$((total - ${non2xx:-0}))
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/$side.txt")
  awk -v t="$((after - before))" -v hz="$TICKS" -v n="$ok" -v r="$rps" 'BEGIN { printf "%.1f %s\n", t * 1e6 / hz / n, r }' \
    >>"$WORK/$side.figures"
  echo "   round $round $side: $(tail -1 "$WORK/$side.figures" | awk '{printf "%s µs CPU per booking, %s bookings/s", $1, $2}')"
}

echo "== A: $A_BIN"
echo "== B: $B_BIN"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then run A; run B; else run B; run A; fi
done
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
A_CPU=$(cut -d' ' -f1 "$WORK/A.figures" | median)
B_CPU=$(cut -d' ' -f1 "$WORK/B.figures" | median)
A_RPS=$(cut -d' ' -f2 "$WORK/A.figures" | median)
B_RPS=$(cut -d' ' -f2 "$WORK/B.figures" | median)
echo
echo "| median of $ROUNDS rounds | A | B | B ÷ A |"
echo "|---|---|---|---|"
awk -v a="$A_CPU" -v b="$B_CPU" 'BEGIN { printf "| CPU per acknowledged booking | %.1f µs | %.1f µs | %.3f |\n", a, b, b / a }'
awk -v a="$A_RPS" -v b="$B_RPS" 'BEGIN { printf "| bookings/s at saturation | %.0f | %.0f | %.3f |\n", a, b, b / a }'
