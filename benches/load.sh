#!/usr/bin/env bash
# Booking-speed benchmark (on demand, not in CI). One run prints, against the *physical*
# reference — what the database itself does with the same row — not against our own design:
#   1. PostgreSQL create-callback (wrk, CONNECTIONS connections, scheduled times spread over a day,
#      Redis throttles on, logs at info) ÷ pgbench doing a single-row INSERT of the same row shape
#      (8 clients), in the same run;
#   2. Ringback CPU per acknowledged booking (/proc/<pid>/stat around the run above);
#   3. latency at a fixed offered rate (paced hey -q; not at saturation, where latency only
#      restates concurrency ÷ throughput) — every booking for one slot, so it is also the hot slot;
#   4. the hot slot at saturation beside the spread case;
#   5. SQLite create-callback ÷ Python's sqlite3 committing the same row one transaction each
#      (WAL, synchronous=FULL, same schema, same disk);
#   6. the click-to-call-in create path.
#
#   benches/load.sh [seconds] [connections] [rate]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/common.sh
DURATION=${1:-15}
CONNECTIONS=${2:-64}
RATE=${3:-500}
PG=${RINGBACK_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}
DB=ringback_bench
PORT=${RINGBACK_BENCH_PORT:-39050}
REDIS_PORT=${RINGBACK_BENCH_REDIS_PORT:-39079}
TOKEN=bench-admin-token
WORK=$(mktemp -d)
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need hey hey
need pgbench postgresql-contrib
need redis-server redis-server

cargo build --release --locked -q
# The bench's own Redis for throttles (and the dispatch stream), as a deployment has.
redis-server --port "$REDIS_PORT" --save "" --appendonly no --daemonize yes >/dev/null
export BENCH_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run_wrk NAME LUA: saturation run; sets RPS P50 P99 OK (2xx answers) and CPU_US (per 2xx).
run_wrk() {
  local before after
  before=$(cpu_ticks "$SERVER")
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$2" "http://127.0.0.1:$PORT" >"$WORK/$1.txt"
  after=$(cpu_ticks "$SERVER")
  RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/$1.txt")
  P50=$(awk '$1=="50%" {print $2}' "$WORK/$1.txt")
  P99=$(awk '$1=="99%" {print $2}' "$WORK/$1.txt")
  local total non2xx
  total=$(awk '/requests in/ {print $1}' "$WORK/$1.txt")
  non2xx=$(awk '/Non-2xx/ {print $5}' "$WORK/$1.txt")
  OK=$((total - ${non2xx:-0}))
  CPU_US=$(awk -v t="$((after - before))" -v hz="$TICKS" -v n="$OK" 'BEGIN { printf "%.0f", n ? t * 1e6 / hz / n : 0 }')
  echo "   $1: $RPS req/s, p50 $P50, p99 $P99, $OK answered 2xx (non-2xx: ${non2xx:-0}), ${CPU_US} µs CPU per booking"
}

# A fixed slot (tomorrow, this hour) for the hot-slot runs.
HOT=$(date -u -d '+1 day' +%Y-%m-%dT%H:00:00Z)
echo "== PostgreSQL: ringback create-callback, $CONNECTIONS connections, ${DURATION}s per run"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
start_bench_server "$PG/$DB" "${RINGBACK_LOG:-info}" "$WORK/server.log"
KEY=$(provision_bench_tenant)
write_create_lua "$WORK/spread.lua" "$KEY"
write_create_lua "$WORK/hot.lua" "$KEY" "$HOT"
run_wrk spread "$WORK/spread.lua"
PG_RPS=$RPS PG_P50=$P50 PG_P99=$P99 PG_CPU=$CPU_US
run_wrk hot "$WORK/hot.lua"
HOT_RPS=$RPS HOT_P99=$P99

echo "== PostgreSQL: ringback at a fixed offered rate of $RATE bookings/s (hey -q, paced), ${DURATION}s"
# hey's -q paces each worker by its own ticker and starts them together, so one hey of 50 workers
# sends bursts of 50 requests at once, not a steady rate. Ten hey processes of 5 workers each,
# started 1/(10 × per-worker rate) apart, send bursts of 5 spread evenly over each tick: close to
# a steady arrival rate. Their per-request CSVs are merged for the percentiles.
HEY_PROCS=10 HEY_WORKERS=5
PER_WORKER=$((RATE / HEY_PROCS / HEY_WORKERS))
HEY_PIDS=""
STAGGER=$(awk -v r="$PER_WORKER" -v p="$HEY_PROCS" 'BEGIN { printf "%.4f", 1 / (r * p) }')
for i in $(seq 1 "$HEY_PROCS"); do
  hey -z "${DURATION}s" -c "$HEY_WORKERS" -q "$PER_WORKER" -o csv -m POST -T application/json \
    -H "x-api-key: $KEY" -d "{\"serviceName\":\"load\",\"phoneNumber\":\"+14155550142\",\"desiredTime\":\"$HOT\"}" \
    "http://127.0.0.1:$PORT/engagement/v3/callbacks/create" >"$WORK/hey-$i.csv" &
  HEY_PIDS="$HEY_PIDS $!"
  sleep "$STAGGER"
done
# shellcheck disable=SC2086 # one pid per word; a bare `wait` would also wait for the server
wait $HEY_PIDS
# CSV columns: response-time (s), ..., status-code (7th), offset from the start (8th). The first
# WARMUP seconds are left out of the percentiles: they measure the clients opening their 50
# keep-alive connections and the pool's statement caches filling, not the steady state (one run:
# 40 of the 52 answers over 30 ms fell in the first second). The whole run's p99 is printed too.
WARMUP=2
cat "$WORK"/hey-*.csv | grep -v '^response-time' >"$WORK/hey.csv"
FIXED_RPS=$(awk -v d="$DURATION" 'END { printf "%.0f", NR / d }' "$WORK/hey.csv")
percentiles() { sort -n | awk '{ a[NR] = $1 } END { printf "%.2fms %.2fms\n", a[int(NR * 0.5)] * 1000, a[int(NR * 0.99)] * 1000 }'; }
read -r FIXED_P50 FIXED_P99 < <(awk -F, -v w="$WARMUP" '$8 >= w { print $1 }' "$WORK/hey.csv" | percentiles)
read -r _ FIXED_P99_ALL < <(cut -d, -f1 "$WORK/hey.csv" | percentiles)
FIXED_CODES=$(cut -d, -f7 "$WORK/hey.csv" | sort | uniq -c | awk '{ printf "[%s] %s; ", $2, $1 }')
echo "   offered $RATE/s: served $FIXED_RPS/s; after ${WARMUP}s of warm-up p50 $FIXED_P50, p99 $FIXED_P99 (whole run p99 $FIXED_P99_ALL) ($FIXED_CODES)"

# Call-in create: one group of 10 shared numbers with 9-digit codes (the pool never runs dry).
bench_admin PUT /tenants/bench/call-in-groups/load "{\"numbers\":[$(seq -f '"+14152009%03g"' 0 9 | paste -sd,)],
  \"uniqueNumbers\":false,\"accessCodeDigits\":9,\"expirySeconds\":3600,
  \"rateLimit\":{\"limit\":100000000,\"windowSeconds\":60}}" >/dev/null
cat >"$WORK/callin.lua" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["x-api-key"] = "$KEY"
wrk.body = '{"groupName":"load","userData":{"orderId":"A-1"}}'
wrk.path = "/engagement/v3/call-in/requests/create"
LUA
run_wrk callin "$WORK/callin.lua"
CALLIN_RPS=$RPS CALLIN_P99=$P99
stop_bench_server

# The physical reference: one INSERT of the same callback row (JSON details included), autocommit.
cat >"$WORK/insert.sql" <<'SQL'
\set n random(2000000, 9999999)
INSERT INTO callbacks (id, tenant_id, service_name, state, phone, desired_ms, due_ms, priority, corr_id, attempt,
  claimed_ms, queued_ms, details, created_ms, updated_ms, bucket_ms)
VALUES (gen_random_uuid()::text, 'bench', 'load', 'SCHEDULED', '+1415' || :n, 0, 0, 0, gen_random_uuid()::text, 0,
  NULL, NULL, '{"cbOfferType":"SCHEDULED","language":"en-US","userData":{"orderId":"A-1"}}', 0, 0, 0);
SQL
echo "== PostgreSQL: pgbench single-row insert of the same row, 8 clients, ${DURATION}s"
pgbench -n -c 8 -j 2 -T "$DURATION" -f "$WORK/insert.sql" "$PG/$DB" >"$WORK/pgbench.txt"
PGB_TPS=$(awk '/^tps/ {print $3; exit}' "$WORK/pgbench.txt")
echo "   $PGB_TPS inserts/s"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null

echo "== SQLite (embedded default, WAL, synchronous=FULL): ringback create-callback, $CONNECTIONS connections"
start_bench_server "sqlite://$WORK/bench.db" "${RINGBACK_LOG:-info}" "$WORK/sqlite-server.log"
KEY=$(provision_bench_tenant)
write_create_lua "$WORK/sqlite.lua" "$KEY"
run_wrk sqlite "$WORK/sqlite.lua"
SQ_RPS=$RPS SQ_P99=$P99 SQ_CPU=$CPU_US
stop_bench_server

echo "== SQLite reference: Python sqlite3, the same row, one transaction each, same schema and disk"
RINGBACK__DATABASE__URL="sqlite://$WORK/reference.db" "$BENCH_BIN" migrate >/dev/null 2>&1
PY_TPS=$(python3 - "$WORK/reference.db" "$DURATION" <<'PY'
import sqlite3, sys, time, uuid, random
db, seconds = sys.argv[1], float(sys.argv[2])
con = sqlite3.connect(db, isolation_level=None)
con.execute("PRAGMA journal_mode=WAL"); con.execute("PRAGMA synchronous=FULL")
sql = ("INSERT INTO callbacks (id, tenant_id, service_name, state, phone, desired_ms, due_ms, priority, corr_id, attempt,"
       " claimed_ms, queued_ms, details, created_ms, updated_ms, bucket_ms) VALUES (?, 'bench', 'load', 'SCHEDULED', ?,"
       " 0, 0, 0, ?, 0, NULL, NULL, '{\"cbOfferType\":\"SCHEDULED\",\"language\":\"en-US\",\"userData\":{\"orderId\":\"A-1\"}}', 0, 0, 0)")
n, end = 0, time.time() + seconds
start = time.time()
while time.time() < end:
    con.execute("BEGIN")
    con.execute(sql, (str(uuid.uuid4()), "+1415%07d" % random.randint(2000000, 9999999), str(uuid.uuid4())))
    con.execute("COMMIT")
    n += 1
print("%.0f" % (n / (time.time() - start)))
PY
)
echo "   $PY_TPS commits/s"

echo
echo "| figure | value | target |"
echo "|---|---|---|"
awk -v a="$PG_RPS" -v b="$PGB_TPS" 'BEGIN { printf "| PostgreSQL create-callback ÷ pgbench single-row insert | %s ÷ %s = **%.2f** | ≥ 0.5 |\n", a, b, a / b }'
echo "| CPU per acknowledged booking (PostgreSQL, $CONNECTIONS connections) | **${PG_CPU} µs** | ≤ 250 µs |"
echo "| p99 at a fixed $RATE bookings/s offered (hot slot) | **$FIXED_P99** (p50 $FIXED_P50, served $FIXED_RPS/s; after ${WARMUP} s warm-up, whole run $FIXED_P99_ALL) | ≤ 20 ms |"
awk -v a="$SQ_RPS" -v b="$PY_TPS" 'BEGIN { printf "| SQLite create-callback ÷ Python sqlite3 one row per commit | %s ÷ %s = **%.2f** | ≥ 1.0 |\n", a, b, a / b }'
echo "| spread vs hot slot at saturation (PostgreSQL) | $PG_RPS vs $HOT_RPS req/s (p99 $PG_P99 vs $HOT_P99) | — |"
echo "| create-call-in at saturation (PostgreSQL) | $CALLIN_RPS req/s (p99 $CALLIN_P99) | — |"
