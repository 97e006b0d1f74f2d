#!/usr/bin/env bash
# Webhook hand-off benchmark (issue 24; on demand, not in CI). One release server on PostgreSQL
# with a Redis stream of its own and a local receiver (examples/webhook_receiver.rs, one worker,
# acknowledging every request). Prints, from one run, the hand-off rate of N callbacks falling due
# at once into the stream, then into the webhook endpoint, and their ratio (goal >= 0.8).
# Lifecycle events are not built yet, so the event-lag and booking-with-an-event-endpoint figures
# of the issue are not measured here.
#
#   benches/webhooks.sh [callbacks]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20000}
PG=${RINGBACK_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
DB=ringback_webhook_bench
PORT=39070 REDIS_PORT=39079 RECEIVER_PORT=39090 TOKEN=bench-admin
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
RINGBACK__DATABASE__URL="$PG/$DB" RINGBACK__REDIS__URL="redis://127.0.0.1:$REDIS_PORT" \
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
echo "== $N callbacks due at once into the stream"
STREAM=$(time_handoffs streamed)
echo "   $STREAM hand-offs/s"
echo "== $N callbacks due at once into a webhook endpoint (local receiver, 8 requests in flight)"
HOOKED=$(time_handoffs hooked)
echo "   $HOOKED hand-offs/s; the receiver counted $(curl -s "http://127.0.0.1:$RECEIVER_PORT/count") requests"
echo "== webhook ÷ stream: $(awk -v a="$HOOKED" -v b="$STREAM" 'BEGIN { printf "%.2f", a / b }') (goal >= 0.8)"
