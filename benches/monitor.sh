#!/usr/bin/env bash
# Monitor benchmark (on demand, not in CI): release binary on PostgreSQL with a Redis stream of its
# own. Prints
#   - the cost of one idle dispatch tick with 10,000 and with 1,000,000 stored scheduled callbacks
#     (from ges_monitor_cycle_duration_seconds; the ratio must stay <= 1.5),
#   - dispatch throughput: callbacks/s into the stream for 20,000 due at once,
#   - the p99 hand-off delay with 1,000 callbacks falling due per second for 10 s
#     (from ges_monitor_dispatch_delay_seconds buckets).
set -euo pipefail
cd "$(dirname "$0")/.."
PG=${RINGBACK_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
DB=ringback_monitor_bench
PORT=39060 REDIS_PORT=39079 TOKEN=bench-admin
WORK=$(mktemp -d)
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --release --locked -q
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
redis-server --port "$REDIS_PORT" --save "" --appendonly no --daemonize yes >/dev/null
RINGBACK__DATABASE__URL="$PG/$DB" RINGBACK__REDIS__URL="redis://127.0.0.1:$REDIS_PORT" \
RINGBACK__LISTEN__INTERNAL="127.0.0.1:$PORT" RINGBACK__LISTEN__EXTERNAL="" RINGBACK__ADMIN__TOKENS="$TOKEN" \
RINGBACK__MONITOR__RECOVERY_SECONDS=3600 RINGBACK_LOG=warn ./target/release/ringback serve >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
admin() { curl -sf -X "$1" "http://127.0.0.1:$PORT/admin/v1$2" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$3" >/dev/null; }
admin PUT /tenants/bench '{}'
admin PUT /tenants/bench/services/load '{"maxQueued":100000000,"ackTimeoutSeconds":3600}'

sql() { psql "$PG/$DB" -qAtc "$1"; }
now_ms() { date +%s%3N; }
# Rows as the booking path writes them (state SCHEDULED, due at $3 + i * $4 ms).
insert_scheduled() { # count first due_start_ms step_ms
  sql "INSERT INTO callbacks (id, tenant_id, service_name, state, phone, desired_ms, due_ms, priority, corr_id, attempt, details, created_ms, updated_ms)
       SELECT gen_random_uuid()::text, t.id, 'load', 'SCHEDULED', '+1415' || (2000000 + g), $3 + (g - $2) * $4, $3 + (g - $2) * $4, 0,
              gen_random_uuid()::text, 0, '{\"language\":\"en-US\",\"userData\":{}}', $(now_ms), $(now_ms)
       FROM generate_series($2, $2 + $1 - 1) g, tenants t WHERE t.name = 'bench'"
  sql "ANALYZE callbacks"
}
scrape() { curl -s "http://127.0.0.1:$PORT/metrics" >"$1"; }
# Mean of a histogram between two scrapes: Δsum / Δcount.
mean_between() { # before after metric selector
  python3 - "$@" <<'PY'
import re, sys
def read(path, name):
    out = {}
    for line in open(path):
        m = re.match(r'([A-Za-z_:]+)(\{[^}]*\})? ([0-9.eE+-]+)$', line.strip())
        if m and m.group(1) == name:
            out[m.group(2) or ''] = float(m.group(3))
    return out
before, after, metric, sel = sys.argv[1:5]
s = sum(v for k, v in read(after, metric + '_sum').items() if sel in k) - sum(v for k, v in read(before, metric + '_sum').items() if sel in k)
c = sum(v for k, v in read(after, metric + '_count').items() if sel in k) - sum(v for k, v in read(before, metric + '_count').items() if sel in k)
print(f"{s / c * 1000:.3f}" if c else "nan")
PY
}
p99_between() { # before after
  python3 - "$@" <<'PY'
import re, sys
def buckets(path):
    out = {}
    for line in open(path):
        m = re.match(r'ges_monitor_dispatch_delay_seconds_bucket\{le="([^"]+)"\} ([0-9.eE+-]+)$', line.strip())
        if m:
            out[m.group(1)] = float(m.group(2))
    return out
b, a = buckets(sys.argv[1]), buckets(sys.argv[2])
delta = {le: a[le] - b.get(le, 0) for le in a}
total = delta.get('+Inf', 0)
for le in sorted((k for k in delta if k != '+Inf'), key=float):
    if total and delta[le] >= 0.99 * total:
        print(f"<= {le} s ({int(total)} hand-offs)"); break
else:
    print(f"> 60 s ({int(total)} hand-offs)")
PY
}

FAR=$(( $(now_ms) + 30 * 86400000 ))
echo "== idle tick with 10,000 stored scheduled callbacks"
insert_scheduled 10000 1 "$FAR" 1000
sleep 3; scrape "$WORK/a0"; sleep 20; scrape "$WORK/a1"
T10K=$(mean_between "$WORK/a0" "$WORK/a1" ges_monitor_cycle_duration_seconds 'pass="dispatch"')
echo "   mean dispatch tick: ${T10K} ms"
echo "== idle tick with 1,000,000 stored scheduled callbacks"
insert_scheduled 990000 10001 "$FAR" 1000
sleep 3; scrape "$WORK/b0"; sleep 20; scrape "$WORK/b1"
T1M=$(mean_between "$WORK/b0" "$WORK/b1" ges_monitor_cycle_duration_seconds 'pass="dispatch"')
echo "   mean dispatch tick: ${T1M} ms"

echo "== dispatch throughput: 20,000 due at once"
START=$(now_ms)
insert_scheduled 20000 2000001 "$START" 0
while [ "$(redis-cli -p "$REDIS_PORT" xlen NewCallbackStream)" -lt 20000 ]; do sleep 0.05; done
DONE=$(now_ms)
RATE=$(python3 -c "print(round(20000 / (($DONE - $START) / 1000)))")
echo "   20,000 hand-offs in $((DONE - START)) ms (from insert): ${RATE} callbacks/s"

echo "== hand-off delay with 1,000 callbacks due per second for 10 s"
scrape "$WORK/c0"
insert_scheduled 10000 3000001 $(( $(now_ms) + 5000 )) 1
sleep 20; scrape "$WORK/c1"
P99=$(p99_between "$WORK/c0" "$WORK/c1")
echo "   p99 delay: $P99"

echo
echo "| figure | value |"
echo "|---|---|"
echo "| idle dispatch tick, 10,000 stored | ${T10K} ms |"
echo "| idle dispatch tick, 1,000,000 stored | ${T1M} ms |"
python3 -c "print('| ratio 1M / 10k | %.2f |' % (float('$T1M') / float('$T10K')))"
echo "| dispatch throughput (20,000 due at once) | ${RATE} callbacks/s |"
echo "| p99 hand-off delay at 1,000 due/s | ${P99} |"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
