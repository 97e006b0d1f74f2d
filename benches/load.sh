#!/usr/bin/env bash
# Load benchmark (on demand, not in CI): create-callback throughput and latency over loopback
# against PostgreSQL, side by side with pgbench doing the equivalent single-row insert into the
# same table on the same server, in one run; then the click-to-call-in create path on the same
# server. Prints figures and the ratio ours/pgbench.
#
#   benches/load.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
DURATION=${1:-15}
CONNECTIONS=${2:-32}
PG=${RINGBACK_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
DB=ringback_bench
PORT=${RINGBACK_BENCH_PORT:-39050}
TOKEN=bench-admin-token
WORK=$(mktemp -d)
trap '[ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
command -v pgbench >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql-contrib >/dev/null; }

cargo build --release --locked -q
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null

start_bench_server "$PG/$DB" "${RINGBACK_LOG:-info}" "$WORK/server.log"
KEY=$(provision_bench_tenant)
write_create_lua "$WORK/create.lua" "$KEY"

echo "== ringback: POST /engagement/v3/callbacks/create (scheduled), $CONNECTIONS connections, ${DURATION}s"
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/create.lua" "http://127.0.0.1:$PORT" | tee "$WORK/wrk.txt"
OURS_RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
OURS_P50=$(awk '$1=="50%" {print $2}' "$WORK/wrk.txt")
OURS_P99=$(awk '$1=="99%" {print $2}' "$WORK/wrk.txt")
NON2XX=$(awk '/Non-2xx/ {print $5}' "$WORK/wrk.txt")

# Click-to-call-in create: one group of 10 shared numbers with 9-digit codes (9 billion slots, so
# the pool never runs dry), the full path — stale-expiry sweep, LRU number, CSPRNG code checked
# against the pending-slot index, insert — for every request. Creates of one group take turns.
bench_admin PUT /tenants/bench/call-in-groups/load "{\"numbers\":[$(seq -f '"+14152009%03g"' 0 9 | paste -sd,)],
  \"uniqueNumbers\":false,\"accessCodeDigits\":9,\"expirySeconds\":3600}" >/dev/null
cat >"$WORK/callin.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["x-api-key"] = "$KEY"
wrk.body = '{"groupName":"load","userData":{"orderId":"A-1"}}'
wrk.path = "/engagement/v3/call-in/requests/create"
LUA
echo "== ringback: POST /engagement/v3/call-in/requests/create (one shared group), $CONNECTIONS connections, ${DURATION}s"
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$WORK/callin.lua" "http://127.0.0.1:$PORT" | tee "$WORK/callin.txt"
CALLIN_RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/callin.txt")
CALLIN_P50=$(awk '$1=="50%" {print $2}' "$WORK/callin.txt")
CALLIN_P99=$(awk '$1=="99%" {print $2}' "$WORK/callin.txt")
CALLIN_NON2XX=$(awk '/Non-2xx/ {print $5}' "$WORK/callin.txt")
stop_bench_server

# The same rows (callback + first history entry + the bucket's conditional increment) written by
# pgbench, one transaction each.
cat >"$WORK/insert.sql" <<'SQL'
\set n random(2000000, 9999999)
BEGIN;
INSERT INTO callbacks (id, tenant_id, service_name, state, phone, desired_ms, due_ms, priority, corr_id, attempt,
  claimed_ms, queued_ms, details, created_ms, updated_ms)
VALUES (gen_random_uuid()::text, 'bench', 'load', 'SCHEDULED', '+1415' || :n, 0, 0, 0, gen_random_uuid()::text, 0, NULL, NULL,
  '{"cbOfferType":"ASAP","language":"en-US","userData":{"orderId":"A-1"}}', 0, 0)
RETURNING id \gset
INSERT INTO callback_history (callback_id, state, time_ms, actor) VALUES (':id', 'SCHEDULED', 0, 'api');
INSERT INTO capacity_buckets (tenant_id, service_name, bucket_ms, reserved) VALUES ('bench', 'load', :n % 288, 0)
  ON CONFLICT (tenant_id, service_name, bucket_ms) DO NOTHING;
UPDATE capacity_buckets SET reserved = reserved + 1 WHERE tenant_id = 'bench' AND service_name = 'load' AND bucket_ms = :n % 288 AND reserved < 100000000;
COMMIT;
SQL
echo "== pgbench: the equivalent insert transaction, $CONNECTIONS connections, ${DURATION}s"
(cd "$WORK" && pgbench -n -c "$CONNECTIONS" -j 2 -T "$DURATION" -f insert.sql -l "$PG/$DB" | tee pgbench.txt)
PG_TPS=$(awk '/^tps/ {print $3; exit}' "$WORK/pgbench.txt")
# pgbench's per-transaction log: 3rd column is the latency in microseconds.
cat "$WORK"/pgbench_log.* | awk '{print $3}' | sort -n >"$WORK/lat.txt"
pct() { awk -v p="$1" '{a[NR]=$1} END {i=int(NR*p); if (i<1) i=1; printf "%.2fms", a[i]/1000}' "$WORK/lat.txt"; }
PG_P50=$(pct 0.50); PG_P99=$(pct 0.99)

echo
echo "| | throughput | p50 | p99 |"
echo "|---|---|---|---|"
echo "| ringback create-callback (HTTP) | ${OURS_RPS} req/s | ${OURS_P50} | ${OURS_P99} |"
echo "| pgbench same insert (SQL) | ${PG_TPS} tx/s | ${PG_P50} | ${PG_P99} |"
echo "| ringback create-call-in (HTTP) | ${CALLIN_RPS} req/s | ${CALLIN_P50} | ${CALLIN_P99} |"
awk -v a="$OURS_RPS" -v b="$PG_TPS" 'BEGIN { printf "ratio ours/pgbench: %.2f\n", a / b }'
[ -z "${NON2XX:-}" ] || echo "non-2xx answers during the ringback run: $NON2XX"
[ -z "${CALLIN_NON2XX:-}" ] || echo "non-2xx answers during the call-in run: $CALLIN_NON2XX"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null
