#!/usr/bin/env bash
# The outcome report on PostgreSQL with a year of roll-up rows (issue 27; on demand, not in CI):
# generated rows for 10 services of one tenant, 24 metric cells an hour each for 365 days
# (~2.1 million rows), then `GET …/reports/outcomes` for one service over a month, by day (JSON and
# CSV), timed with curl over loopback. Prints the median and worst of RUNS requests beside the same
# month's bare SQL (psql \timing) — the physical reference of the read.
#
#   benches/outcome_report.sh [runs]
# Target: a month for one service in <= 100 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
RUNS=${1:-20}
PG=${RINGBACK_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
DB=ringback_report_bench
PORT=${RINGBACK_BENCH_PORT:-39080}
TOKEN=bench-admin-token
CONNECTIONS=8
WORK=$(mktemp -d)
trap '[ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null; rm -rf "$WORK"' EXIT

cargo build --release --locked -q
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
start_bench_server "$PG/$DB" warn "$WORK/server.log"
bench_admin PUT /tenants/bench '{}' >/dev/null
TENANT_ID=$(bench_admin GET /tenants/bench '' | sed -E 's/.*"id":"([^"]+)".*/\1/')

echo "== generating a year of roll-up rows for 10 services"
started=$(date +%s)
psql "$PG/$DB" -q <<SQL
INSERT INTO outcome_rollup (tenant_id, service_name, hour_ms, metric, label, n)
SELECT '$TENANT_ID', 'service-' || s, h, m.metric, m.label, 1 + (random() * 20)::int
FROM generate_series(0, 9) AS s,
     generate_series(
       (extract(epoch FROM date_trunc('hour', now() - interval '365 days')) * 1000)::bigint,
       (extract(epoch FROM date_trunc('hour', now())) * 1000)::bigint, 3600000) AS h,
     (VALUES ('booked', 'immediate'), ('booked', 'scheduled'), ('retry', ''), ('handed_over', ''),
             ('acknowledged', ''), ('reached', ''), ('completed', 'AGENT_CONNECTED'), ('completed', 'NO_ANSWER'),
             ('completed', 'BUSY'), ('completed', 'CANCELLED'), ('refused', 'SLOT_FULL'), ('refused', 'THROTTLED'),
             ('refused', 'INVALID_PHONE_NUMBER'), ('to_handoff', '1'), ('to_handoff', '5'), ('to_handoff', '60'),
             ('to_handoff', '3600'), ('to_handoff', '86400'), ('to_processing', '5'), ('to_processing', '15'),
             ('to_processing', '60'), ('to_processing', '300'), ('to_processing', '900'), ('to_processing', '+Inf'))
       AS m (metric, label);
ANALYZE outcome_rollup;
SQL
rows=$(psql "$PG/$DB" -Atc "SELECT COUNT(*) FROM outcome_rollup")
echo "   $rows rows in $(( $(date +%s) - started )) s"

from=$(date -u -d '30 days ago' +%Y-%m-%dT00:00:00Z)
to=$(date -u +%Y-%m-%dT00:00:00Z)
url="http://127.0.0.1:$PORT/admin/v1/tenants/bench/reports/outcomes?service=service-3&groupBy=day&from=$from&to=$to"
curl -sf "$url" -H "authorization: Bearer $TOKEN" | grep -q '"buckets"' || { echo "the report did not answer"; exit 1; }
time_runs() { # ACCEPT
  for _ in $(seq 1 "$RUNS"); do
    curl -sf -o /dev/null -w '%{time_total}\n' "$url" -H "authorization: Bearer $TOKEN" -H "accept: $1"
  done | sort -n | awk '{ a[NR] = $1 } END { printf "median %.1f ms, worst %.1f ms", a[int((NR + 1) / 2)] * 1000, a[NR] * 1000 }'
}
from_ms=$(( $(date -u -d "$from" +%s) * 1000 )); to_ms=$(( $(date -u -d "$to" +%s) * 1000 ))
sql_ms=$(for _ in $(seq 1 "$RUNS"); do
  psql "$PG/$DB" -qAt -c '\timing on' -c "SELECT hour_ms, metric, label, SUM(n) FROM outcome_rollup WHERE tenant_id = '$TENANT_ID'
    AND service_name = 'service-3' AND hour_ms >= $from_ms AND hour_ms < $to_ms GROUP BY hour_ms, metric, label" |
    sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p'
done | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] }')
echo "== a month of one service, by day, $RUNS requests each (goal: <= 100 ms)"
echo "   JSON: $(time_runs application/json)"
echo "   CSV:  $(time_runs text/csv)"
echo "   the same rows read by psql (the bare query, median): $sql_ms ms"
stop_bench_server
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null
