#!/usr/bin/env bash
# Property-based fuzzing of the public API against its own OpenAPI document (issue 13), on the
# embedded SQLite backend and on PostgreSQL: schemathesis (PyPI, pinned in fuzz-requirements.txt,
# installed once into .cache/) generates a few hundred requests per operation — seeded, so a run
# is repeatable — and fails on any 5xx, any status the document does not list, any answer that
# breaks its schema, or a content type the document does not declare. Requests the API refuses
# for business rules (an impossible phone number is still a string) are expected and not checked.
# Runs ${RINGBACK_BIN:-target/debug/ringback}, which cargo test has just built.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RINGBACK_BIN=${RINGBACK_BIN:-target/debug/ringback}
PG_URL_BASE=${RINGBACK_FUZZ_POSTGRES:-postgres://postgres@127.0.0.1:5432}
EXAMPLES=${FUZZ_MAX_EXAMPLES:-100}
SEED=${FUZZ_SEED:-1}
VENV=.cache/schemathesis
WORK=$(mktemp -d)
SERVER=
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null
  psql "$PG_URL_BASE/postgres" -qc "DROP DATABASE IF EXISTS ringback_fuzz" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
say() { printf '== fuzz-api: %s\n' "$*"; }

if ! "$VENV/bin/schemathesis" --version >/dev/null 2>&1; then
  say "installing schemathesis into $VENV"
  python3 -m venv "$VENV" || {
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null) || true
    python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install -q -r scripts/fuzz-requirements.txt
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# fuzz NAME DATABASE_URL: one server, one tenant with a service and a key, one seeded run.
fuzz() {
  local port key
  port=$(free_port)
  RINGBACK__DATABASE__URL="$2" RINGBACK__LISTEN__INTERNAL="127.0.0.1:$port" RINGBACK__LISTEN__EXTERNAL="" \
    RINGBACK__ADMIN__TOKENS=fuzz-admin RINGBACK__MONITOR__DISPATCH=none RINGBACK_LOG=warn \
    "$RINGBACK_BIN" serve >"$WORK/$1.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
  admin() { curl -sf -X "$1" "http://127.0.0.1:$port/admin/v1$2" -H 'authorization: Bearer fuzz-admin' \
    -H 'content-type: application/json' -d "$3"; }
  admin PUT /tenants/acme '{}' >/dev/null
  admin PUT /tenants/acme/services/sales '{"maxFuture":"1y"}' >/dev/null
  key=$(admin POST /tenants/acme/api-keys '{}' | sed -E 's/.*"key":"([^"]+)".*/\1/')
  say "$1: $EXAMPLES examples per operation, seed $SEED"
  local status=0
  # From the scratch directory and with no example database: nothing is written into the
  # checkout, and a run depends on its seed alone, not on what earlier runs found.
  (cd "$WORK" && "$ROOT/$VENV/bin/schemathesis" run "http://127.0.0.1:$port/engagement/v3/openapi.json" \
    -H "x-api-key: $key" --max-examples "$EXAMPLES" --seed "$SEED" --no-color --generation-database none \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    >"$WORK/$1.out" 2>&1) || status=$?
  kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; SERVER=
  grep -E "generated|passed|failures? in|❌" "$WORK/$1.out" | sed 's/^/   /' || true
  if [ "$status" != 0 ]; then
    cat "$WORK/$1.out"
    say "$1: FAILED"
    return 1
  fi
}

psql "$PG_URL_BASE/postgres" -qc "DROP DATABASE IF EXISTS ringback_fuzz" -c "CREATE DATABASE ringback_fuzz" >/dev/null
result=0
fuzz sqlite "sqlite://$WORK/fuzz.db" || result=1
fuzz postgres "$PG_URL_BASE/ringback_fuzz" || result=1
[ "$result" = 0 ] && say "OK: no 5xx, no undocumented status, no schema or content-type mismatch on either backend"
exit "$result"
