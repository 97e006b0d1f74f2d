#!/usr/bin/env bash
# Webhook benchmark (issue 24; on demand, not in CI). One release server on PostgreSQL with a
# Redis stream of its own and a local receiver (examples/webhook_receiver.rs, one worker,
# acknowledging every request). Prints, from one run:
#   1. the hand-off rate of N callbacks falling due at once into the stream, then into a webhook
#      endpoint, and their ratio (goal >= 0.8);
#   2. the lag of callback.created events from their commit to the receiver, at RATE bookings/s
#      offered (paced hey, as benches/load.sh does), p50/p99 (goal p99 <= 1 s);
#   3. booking throughput (wrk, saturation) with one event endpoint subscribed vs none, each run on
#      a fresh database and server, in the order none/with/with/none (goal >= 0.9).
#
#   benches/webhooks.sh [callbacks] [rate] [seconds]     (ONLY_BOOKINGS=1: part 3 only)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
RATE=${2:-500}
DURATION=${3:-15}
CONNECTIONS=64
PG=${RINGBACK_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
DB=ringback_webhook_bench
PORT=39070 REDIS_PORT=39079 RECEIVER_PORT=39090 TOKEN=bench-admin
. benches/common.sh
WORK=$(mktemp -d)
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null
  [ -n "${RECEIVER:-}" ] && kill "$RECEIVER" 2>/dev/null
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --locked -q
cargo build --release --locked -q --example webhook_receiver
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
redis-server --port "$REDIS_PORT" --save "" --appendonly no --daemonize yes >/dev/null
./target/release/examples/webhook_receiver "$RECEIVER_PORT" &
RECEIVER=$!
RINGBACK__DATABASE__URL="$PG/$DB" RINGBACK__DATABASE__MAX_CONNECTIONS="$CONNECTIONS" RINGBACK__REDIS__URL="redis://127.0.0.1:$REDIS_PORT" \
RINGBACK__LISTEN__INTERNAL="127.0.0.1:$PORT" RINGBACK__LISTEN__EXTERNAL="" RINGBACK__ADMIN__TOKENS="$TOKEN" \
RINGBACK__WEBHOOKS__ALLOW_HTTP=127.0.0.1 RINGBACK__WEBHOOKS__ALLOWED_NETWORKS=127.0.0.0/8 \
RINGBACK__MONITOR__RECOVERY_SECONDS=3600 RINGBACK_LOG=warn ./target/release/ringback serve >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
admin() { curl -sf -X "$1" "http://127.0.0.1:$PORT/admin/v1$2" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$3" >/dev/null; }
admin PUT /tenants/bench '{}'
admin PUT /tenants/bench/webhooks/receiver "{\"url\":\"http://127.0.0.1:$RECEIVER_PORT/hooks\"}"
admin PUT /tenants/bench/services/streamed '{"maxQueued":100000000,"ackTimeoutSeconds":3600}'
admin PUT /tenants/bench/services/hooked '{"maxQueued":100000000,"ackTimeoutSeconds":3600,"dispatch":{"target":"webhook","webhook":"receiver"}}'

sql() { psql "$PG/$DB" -qAtc "$1"; }
now_ms() { date +%s%3N; }
# N callbacks of SERVICE due now, as the booking path writes them.
due_now() { # service
  sql "INSERT INTO callbacks (id, tenant_id, service_name, state, phone, desired_ms, due_ms, priority, corr_id, attempt, details, created_ms, updated_ms)
       SELECT gen_random_uuid()::text, t.id, '$1', 'SCHEDULED', '+1415' || (2000000 + g), $(now_ms), $(now_ms), 0,
              gen_random_uuid()::text, 0, '{\"language\":\"en-US\",\"userData\":{\"orderId\":\"A-1\"}}', $(now_ms), $(now_ms)
       FROM generate_series(1, $N) g, tenants t WHERE t.name = 'bench'"
}
# What the platform has: entries in the stream, or requests the receiver answered.
handed_over() {
  case "$1" in
    streamed) redis-cli -p "$REDIS_PORT" XLEN NewCallbackStream ;;
    hooked) curl -s "http://127.0.0.1:$RECEIVER_PORT/count" ;;
  esac
}
# Hand-offs per second until all N of SERVICE are with the platform.
time_handoffs() { # service
  local start end
  start=$(now_ms)
  due_now "$1"
  while [ "$(handed_over "$1")" -lt "$N" ]; do sleep 0.1; done
  end=$(now_ms)
  awk -v ms="$((end - start))" -v n="$N" 'BEGIN { printf "%.0f", n * 1000 / ms }'
}
if [ -z "${ONLY_BOOKINGS:-}" ]; then
echo "== $N callbacks due at once into the stream"
STREAM=$(time_handoffs streamed)
echo "   $STREAM hand-offs/s"
echo "== $N callbacks due at once into a webhook endpoint (local receiver, 8 requests in flight)"
HOOKED=$(time_handoffs hooked)
echo "   $HOOKED hand-offs/s; the receiver counted $(curl -s "http://127.0.0.1:$RECEIVER_PORT/count") requests"
echo "== webhook ÷ stream: $(awk -v a="$HOOKED" -v b="$STREAM" 'BEGIN { printf "%.2f", a / b }') (goal >= 0.8)"

echo "== lifecycle events: callback.created lag from commit to the receiver at $RATE bookings/s offered, ${DURATION}s"
KEY=$(provision_bench_tenant)
admin PUT /tenants/bench/webhooks/events "{\"url\":\"http://127.0.0.1:$RECEIVER_PORT/events\",\"events\":[\"callback.created\"],\"services\":[\"load\"]}"
HOT=$(date -u -d '+1 day' +%Y-%m-%dT%H:00:00Z)
HEY_PROCS=10 HEY_WORKERS=5
PER_WORKER=$((RATE / HEY_PROCS / HEY_WORKERS))
STAGGER=$(awk -v r="$PER_WORKER" -v p="$HEY_PROCS" 'BEGIN { printf "%.4f", 1 / (r * p) }')
HEY_PIDS=""
for i in $(seq 1 "$HEY_PROCS"); do
  hey -z "${DURATION}s" -c "$HEY_WORKERS" -q "$PER_WORKER" -m POST -T application/json \
    -H "x-api-key: $KEY" -d "{\"serviceName\":\"load\",\"phoneNumber\":\"+14155550142\",\"desiredTime\":\"$HOT\"}" \
    "http://127.0.0.1:$PORT/engagement/v3/callbacks/create" >/dev/null &
  HEY_PIDS="$HEY_PIDS $!"
  sleep "$STAGGER"
done
# shellcheck disable=SC2086 # one pid per word; a bare `wait` would also wait for the server
wait $HEY_PIDS
BOOKED=$(sql "SELECT COUNT(*) FROM callbacks WHERE service_name = 'load'")
for _ in $(seq 1 100); do
  [ "$(sql "SELECT COUNT(*) FROM outbox WHERE endpoint IS NOT NULL")" = 0 ] && break; sleep 0.1
done
read -r EVENTS LAG_P50 LAG_P99 LAG_MAX < <(curl -s "http://127.0.0.1:$RECEIVER_PORT/lag"; echo)
echo "   $BOOKED booked, $EVENTS events received: lag p50 ${LAG_P50} ms, p99 ${LAG_P99} ms, max ${LAG_MAX} ms (goal p99 <= 1000 ms)"
fi

echo "== booking throughput with one event endpoint vs none (wrk, $CONNECTIONS connections, ${DURATION}s per run, a fresh database each, none/with/written/written/with/none)"
# Each run on a fresh database and server (the table's growth over earlier runs would otherwise
# decide the order's winner); the receiver shares the 2 cores, as it would not in production.
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
TICKS=$(getconf CLK_TCK)
# booking_run none|with|written: prints bookings answered 2xx per second and the server's CPU µs per
# booking. `written`: the endpoint subscribed but no replica delivering (monitor.dispatch = none),
# so only the booking path's part is measured (its events are written, not sent).
booking_run() {
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ${DB}_b" -c "CREATE DATABASE ${DB}_b" >/dev/null
  RINGBACK__DATABASE__URL="$PG/${DB}_b" RINGBACK__DATABASE__MAX_CONNECTIONS="$CONNECTIONS" RINGBACK__REDIS__URL="redis://127.0.0.1:$REDIS_PORT" \
  RINGBACK__LISTEN__INTERNAL="127.0.0.1:$PORT" RINGBACK__LISTEN__EXTERNAL="" RINGBACK__ADMIN__TOKENS="$TOKEN" \
  RINGBACK__WEBHOOKS__ALLOW_HTTP=127.0.0.1 RINGBACK__WEBHOOKS__ALLOWED_NETWORKS=127.0.0.0/8 \
  RINGBACK__MONITOR__DISPATCH="$([ "$1" = written ] && echo none || echo stream)" \
  RINGBACK_LOG=warn ./target/release/ringback serve >"$WORK/booking-$1.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
  local key before after total non2xx
  key=$(provision_bench_tenant)
  if [ "$1" != none ]; then
    admin PUT /tenants/bench/webhooks/events "{\"url\":\"http://127.0.0.1:$RECEIVER_PORT/events\",\"events\":[\"callback.created\"]}"
  fi
  write_create_lua "$WORK/spread.lua" "$key"
  before=$(awk '{print $14 + $15}' "/proc/$SERVER/stat")
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s "$WORK/spread.lua" "http://127.0.0.1:$PORT" >"$WORK/wrk.txt"
  after=$(awk '{print $14 + $15}' "/proc/$SERVER/stat")
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
  total=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$WORK/wrk.txt")
  awk -v n="$((total - ${non2xx:-0}))" -v d="$DURATION" -v t="$((after - before))" -v hz="$TICKS" \
    'BEGIN { printf "%.0f %.0f\n", n / d, t * 1e6 / hz / n }'
}
declare -A SUM=([none]=0 [with]=0 [written]=0)
for side in none with written written with none; do
  read -r RUN RUN_CPU < <(booking_run "$side")
  echo "   $side: $RUN bookings/s (${RUN_CPU} µs CPU each, event deliveries included)"
  SUM[$side]=$((SUM[$side] + RUN))
done
NONE_SUM=${SUM[none]} WITH_SUM=${SUM[with]}
echo "== written, not delivered ÷ none (the booking path's own cost): $(awk -v a="${SUM[written]}" -v b="$NONE_SUM" 'BEGIN { printf "%.2f", a / b }')"
SERVER=
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS ${DB}_b" >/dev/null
echo "== with ÷ none: $(awk -v a="$WITH_SUM" -v b="$NONE_SUM" 'BEGIN { printf "%.2f", a / b }') (goal >= 0.9)"
