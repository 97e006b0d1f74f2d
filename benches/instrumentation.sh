#!/usr/bin/env bash
# Cost of instrumentation (on demand, not in CI): the server's CPU per acknowledged booking
# (PostgreSQL + Redis throttles, CONNECTIONS connections, the log written to a file as a container
# runtime would) at info, at trace, and at info with OpenTelemetry export to a local OTLP receiver
# (scripts/otlp-receiver.sh --count-only) at sample ratio 0.01 and 1.0, each measured side by side
# with a server whose logs are off (two servers, two databases, two wrk clients at once), ROUNDS
# rounds of all modes: machine noise hits a pair alike, where runs seconds apart can differ by
# ±20 % on these VMs. Prints each mode's median ratio over its off twin, and OTLP's over info (each
# round's OTLP ratio over its info ratio); then the event-loop probes' idle cost and the /metrics
# render time with 10,000 series (criterion bench `metrics_render`). CPU per booking, not
# throughput: on 2 cores the clients, PostgreSQL and Ringback share the machine, and throughput
# mostly measures them.
#
#   benches/instrumentation.sh [seconds per run] [rounds] [connections]   (SKIP_RENDER=1: no render bench)
# Targets (issue 25): info within 5 % of off, trace within 30 %, OTLP at 0.01 within 3 % of info,
# OTLP at 1.0 within 25 % of info.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
DURATION=${1:-8}
ROUNDS=${2:-5}
CONNECTIONS=${3:-64}
REDIS_PORT=${RINGBACK_BENCH_REDIS_PORT:-39079}
PG=${RINGBACK_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
DB=ringback_instr_bench
PORT=${RINGBACK_BENCH_PORT:-39070}
TOKEN=bench-admin-token
WORK=$(mktemp -d)
trap '[ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null; redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --locked -q
redis-server --port "$REDIS_PORT" --save "" --appendonly no --daemonize yes >/dev/null
export BENCH_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
./scripts/otlp-receiver.sh "$WORK/otlp.port" --count-only &
COLLECTOR=$!
trap '[ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null; kill "$COLLECTOR" 2>/dev/null; redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1; rm -rf "$WORK"' EXIT
for _ in $(seq 1 600); do [ -s "$WORK/otlp.port" ] && break; sleep 0.1; done
COLLECTOR_URL="http://127.0.0.1:$(cat "$WORK/otlp.port")"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS=$(getconf CLK_TCK)

# A server in mode $1 (a log level, or otlp-<ratio>: info and spans exported at that ratio) on
# port $2, database $3 and Redis database $4, writing its log to a file; sets SERVER and writes
# the wrk script for its tenant to $WORK/create-$2.lua.
start_mode() {
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $3" -c "CREATE DATABASE $3" >/dev/null
  redis-cli -p "$REDIS_PORT" -n "$4" flushdb >/dev/null
  PORT=$2
  case "$1" in
    otlp-*) BENCH_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/$4" RINGBACK__TELEMETRY__OTLP__ENDPOINT="$COLLECTOR_URL" \
              RINGBACK__TELEMETRY__OTLP__SAMPLE_RATIO="${1#otlp-}" start_bench_server "$PG/$3" info "$WORK/server-$1.log" ;;
    *) BENCH_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/$4" start_bench_server "$PG/$3" "$1" "$WORK/server-$1.log" ;;
  esac
  write_create_lua "$WORK/create-$2.lua" "$(provision_bench_tenant)"
}

# One measured pair: logs off and mode $1 side by side, each on its own database with its own wrk
# (CONNECTIONS connections each) for DURATION seconds, so whatever the machine does in those
# seconds (these VMs drift by ±20 % between runs minutes apart) befalls both. Prints each
# server's CPU µs per booking answered 2xx and bookings/s: "off_cpu mode_cpu off_rps mode_rps".
pair() {
  start_mode off "$PORT_A" "${DB}_a" 1; local a=$SERVER
  start_mode "$1" "$PORT_B" "${DB}_b" 2; local b=$SERVER
  local a0 b0 a1 b1
  a0=$(cpu_ticks "$a"); b0=$(cpu_ticks "$b")
  wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/create-$PORT_A.lua" "http://127.0.0.1:$PORT_A" >"$WORK/wrk-a.txt" &
  local wa=$!
  wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/create-$PORT_B.lua" "http://127.0.0.1:$PORT_B" >"$WORK/wrk-b.txt"
  wait "$wa"
  a1=$(cpu_ticks "$a"); b1=$(cpu_ticks "$b")
  SERVER=$a stop_bench_server; SERVER=$b stop_bench_server
  per_booking() { # ticks wrk-output
    local total non2xx
    total=$(awk '/requests in/ {print $1}' "$2"); non2xx=$(awk '/Non-2xx/ {print $5}' "$2")
    awk -v t="$1" -v hz="$TICKS" -v n="$((total - ${non2xx:-0}))" -v d="$DURATION" 'BEGIN { printf "%.1f %.0f\n", t * 1e6 / hz / n, n / d }'
  }
  read -r ca ra < <(per_booking "$((a1 - a0))" "$WORK/wrk-a.txt")
  read -r cb rb < <(per_booking "$((b1 - b0))" "$WORK/wrk-b.txt")
  echo "$ca $cb $ra $rb"
}

PORT_A=$PORT
# Two pools side by side stay within PostgreSQL's default 100 connections.
export DB_POOL=${DB_POOL:-40}
PORT_B=$((PORT + 2))
MODES=${MODES:-info trace otlp-0.01 otlp-1}
declare -A CPU RATIO
for round in $(seq 1 "$ROUNDS"); do
  for mode in $MODES; do
    read -r off cpu off_rps rps < <(pair "$mode" | tail -1)
    echo "round $round, logs off beside $mode: ${off} · ${cpu} µs CPU per booking (×$(awk -v a="$off" -v b="$cpu" 'BEGIN { printf "%.3f", b / a }')), $off_rps · $rps bookings/s ($(wc -l <"$WORK/server-$mode.log") log lines)"
    CPU[off]="${CPU[off]:-} $off"
    CPU[$mode]="${CPU[$mode]:-} $cpu"
    RATIO[$mode]="${RATIO[$mode]:-} $(awk -v a="$off" -v b="$cpu" 'BEGIN { print b / a }')"
  done
done
for db in "${DB}_a" "${DB}_b"; do psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" >/dev/null; done
median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
declare -A MEDIAN
for mode in $MODES; do MEDIAN[$mode]=$(echo "${RATIO[$mode]}" | median); done
# OTLP over info: each round's OTLP ratio over that round's info ratio (both against off).
over_info() { # mode
  local r i n=0 out=""
  read -ra r <<<"${RATIO[$1]}"; read -ra i <<<"${RATIO[info]}"
  for n in "${!r[@]}"; do out="$out $(awk -v x="${r[$n]}" -v y="${i[$n]}" 'BEGIN { print x / y }')"; done
  echo "$out" | median
}

echo
echo "spans the receiver decoded: $(curl -s "$COLLECTOR_URL/spans")"
echo "| mode | CPU µs per booking, median (off: of all pairs) | its pairs' ratio over off, median of $ROUNDS × ${DURATION}s |"
echo "|---|---|---|"
echo "| off | $(echo "${CPU[off]}" | median) | — |"
for mode in $MODES; do
  awk -v m="$mode" -v x="$(echo "${CPU[$mode]}" | median)" -v r="${MEDIAN[$mode]}" 'BEGIN { printf "| %s | %.1f | %+.1f %% |\n", m, x, (r - 1) * 100 }'
done
if [ "$MODES" = "info trace otlp-0.01 otlp-1" ]; then
  awk -v i="${MEDIAN[info]}" -v t="${MEDIAN[trace]:-1}" -v a="$(over_info otlp-0.01 2>/dev/null || echo 1)" -v b="$(over_info otlp-1 2>/dev/null || echo 1)" \
    'BEGIN { printf "cost: info %+.1f %% (target <= 5 %%), trace %+.1f %% (target <= 30 %%), OTLP 0.01 %+.1f %% over info (target <= 3 %%), OTLP 1.0 %+.1f %% over info (target <= 25 %%)\n", (i - 1) * 100, (t - 1) * 100, (a - 1) * 100, (b - 1) * 100 }'
fi

# Event-loop probe cost: an idle server's CPU over IDLE seconds with the probes at their default
# 100 ms period and nearly off (10 s), against the floor: as many bare single-threaded tokio
# runtimes as the server probes, each only sleeping 100 ms in a loop (examples/timer_floor.rs; a
# probe must wake its own runtime, so that wake-up is the least it can cost). On-CPU time from
# /proc/<pid>/task/*/schedstat (nanoseconds; the clock-tick counters are too coarse for 0.1 %).
IDLE=${IDLE_SECONDS:-30}
cargo build --release --locked -q --example timer_floor
oncpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { print s }'; }
over_idle() { # pid: on-CPU seconds over IDLE seconds
  local a b; a=$(oncpu_ns "$1"); sleep "$IDLE"; b=$(oncpu_ns "$1")
  awk -v a="$a" -v b="$b" 'BEGIN { print (b - a) / 1e9 }'
}
idle_cpu() { # probe period in ms; prints on-CPU seconds over IDLE seconds
  RINGBACK__DATABASE__URL="sqlite://$WORK/idle.db" RINGBACK__LISTEN__INTERNAL="127.0.0.1:$PORT" \
  RINGBACK__LISTEN__EXTERNAL="127.0.0.1:$((PORT + 1))" RINGBACK__HTTP__WORKERS=2 RINGBACK__MONITOR__DISPATCH=none \
  RINGBACK__HEALTH__LAG_PROBE_MS="$1" RINGBACK_LOG=warn "$BENCH_BIN" serve >/dev/null 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
  sleep 2
  over_idle "$SERVER"
  stop_bench_server
}
floor_cpu() { # runtimes, period ms
  ./target/release/examples/timer_floor "$1" "$2" & local floor=$!
  sleep 1; over_idle "$floor"; kill "$floor"; wait "$floor" 2>/dev/null || true
}
# Five runtimes: 2 workers on each listener and the monitor's.
with=$(idle_cpu 100); without=$(idle_cpu 10000); floor=$(floor_cpu 5 100); floor_off=$(floor_cpu 5 10000)
awk -v w="$with" -v o="$without" -v f="$floor" -v g="$floor_off" -v t="$IDLE" 'BEGIN {
  p = (w - o) / t * 100; q = (f - g) / t * 100
  printf "idle on-CPU over %ds: probes every 100 ms %.4f s, every 10 s %.4f s: probe cost %.3f %% of one core (spec < 0.1 %%)\n", t, w, o, p
  printf "floor, 5 bare tokio runtimes sleeping 100 ms: %.3f %% of one core; probes over the floor %+.3f %% (target within 0.05 %%)\n", q, p - q }'

[ -n "${SKIP_RENDER:-}" ] && exit 0
echo
echo "== /metrics render with 10,000 series"
cargo bench --locked --bench metrics_render 2>/dev/null | grep -E "series|time:"
