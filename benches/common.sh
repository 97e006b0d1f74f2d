# Shared by the HTTP benchmarks (sourced, not run): start the release binary on a PostgreSQL
# database, provision the `bench` tenant with its `load` service (limits raised out of the way:
# these measure the booking pipeline, not refusals), and the wrk script for scheduled bookings.
# Expects PORT, TOKEN, CONNECTIONS and WORK to be set by the caller (DB_POOL, when set, is the
# server's database pool, else CONNECTIONS); BENCH_REDIS_URL, when set, is
# the cache Redis (throttles) and dispatch stream.

BENCH_BIN="${CARGO_TARGET_DIR:-target}/release/ringback"

# start_bench_server DATABASE_URL LOG_LEVEL LOG_FILE: sets SERVER, returns once ready.
start_bench_server() {
  RINGBACK__DATABASE__URL="$1" RINGBACK__LISTEN__INTERNAL="127.0.0.1:$PORT" RINGBACK__LISTEN__EXTERNAL="" \
  RINGBACK__ADMIN__TOKENS="$TOKEN" RINGBACK__DATABASE__MAX_CONNECTIONS="${DB_POOL:-$CONNECTIONS}" RINGBACK_LOG="$2" \
  RINGBACK__REDIS__URL="${BENCH_REDIS_URL:-}" RINGBACK__MONITOR__DISPATCH="$([ -n "${BENCH_REDIS_URL:-}" ] && echo stream || echo none)" \
    "$BENCH_BIN" serve >"$3" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
}

stop_bench_server() {
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
}

bench_admin() { # METHOD PATH BODY
  curl -sf -X "$1" "http://127.0.0.1:$PORT/admin/v1$2" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$3"
}

# Tenant `bench`, service `load`; prints a fresh API key.
provision_bench_tenant() {
  bench_admin PUT /tenants/bench '{}' >/dev/null
  bench_admin PUT /tenants/bench/services/load '{"perNumberLimit":{"limit":1000000,"windowSeconds":60},
    "serviceRateLimits":[{"limit":100000000,"windowSeconds":60}],"maxQueued":100000000,"slotCapacity":100000000}' >/dev/null
  bench_admin POST /tenants/bench/api-keys '{}' | sed -E 's/.*"key":"([^"]+)".*/\1/'
}

# write_create_lua FILE KEY [TIME]: scheduled bookings spread over the next day — the full path
# (office hours, capacity bucket reservation) without every request contending for one bucket row;
# with TIME, every booking is for that one slot (the hot slot).
write_create_lua() {
  local when='os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + math.random(3600, 86400))'
  [ -z "${3:-}" ] || when="\"$3\""
  cat >"$1" <<LUA
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["x-api-key"] = "$2"
math.randomseed(os.time())
request = function()
  local number = string.format("+1415%d%06d", math.random(2, 9), math.random(0, 999999))
  local when = $when
  return wrk.format(nil, "/engagement/v3/callbacks/create", nil,
    '{"serviceName":"load","phoneNumber":"' .. number .. '","desiredTime":"' .. when .. '","userData":{"orderId":"A-1"}}')
end
LUA
}
