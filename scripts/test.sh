#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and black-box tests on SQLite and PostgreSQL (the
# fast suite, then the heavy multi-process, chaos and stress tests), chart, alerting, fuzzing and
# the booking page in a real browser.
# Starts PostgreSQL and Redis when they are not running (installing them from Debian packages
# on a machine that lacks them). With CI=true an unreachable PostgreSQL fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_HOST=127.0.0.1 PG_PORT=5432 REDIS_PORT=6379
export RINGBACK_TEST_POSTGRES="${RINGBACK_TEST_POSTGRES:-postgres://postgres@${PG_HOST}:${PG_PORT}/postgres}"

say() { printf '== %s\n' "$*"; }

install_if_missing() { # command package
  command -v "$1" >/dev/null 2>&1 && return 0
  say "installing $2"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null) || true
}

ensure_postgres() {
  install_if_missing pg_isready postgresql
  if ! pg_isready -h "$PG_HOST" -p "$PG_PORT" -q 2>/dev/null; then
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_isready -h "$PG_HOST" -p "$PG_PORT" -q && break; sleep 1; done
  fi
  if pg_isready -h "$PG_HOST" -p "$PG_PORT" -q; then
    # Databases left by earlier runs (each test makes its own).
    psql "$RINGBACK_TEST_POSTGRES" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'ringback_test_%'" |
      while read -r db; do psql "$RINGBACK_TEST_POSTGRES" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
  else
    say "PostgreSQL is not reachable on $PG_HOST:$PG_PORT; the tests that need it will fail"
  fi
}

ensure_redis() {
  install_if_missing redis-server redis-server
  if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    say "starting Redis"
    redis-server --daemonize yes --port "$REDIS_PORT" --save "" --appendonly no >/dev/null || true
    for _ in $(seq 1 20); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.5; done
  fi
}

ensure_postgres
ensure_redis
install_if_missing promtool prometheus

# The Standard Webhooks reference verifier the webhook tests call (pinned, into .cache/).
say "the Standard Webhooks reference verifier (scripts/webhook-verifier.sh)"
./scripts/webhook-verifier.sh --install
# The OTLP receiver the trace tests read spans back from (pinned opentelemetry-proto, into .cache/).
say "the OTLP receiver (scripts/otlp-receiver.sh)"
./scripts/otlp-receiver.sh --install
say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
cargo clippy --locked --test heavy -- -D warnings
say "cargo test (the fast suite: unit and black-box tests)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --no-fail-fast -- --test-threads="${TEST_THREADS:-2}" 2>&1 | tee "$log" || status=$?
# Several processes each, dependencies killed, stress: their own, bounded parallelism (the
# multi-process ones also take turns among themselves: MULTI_PROCESS in tests/common/helpers.rs).
say "cargo test --test heavy (multi-process, chaos and stress tests)"
cargo test --locked --no-fail-fast --test heavy -- --test-threads="${HEAVY_TEST_THREADS:-2}" 2>&1 | tee -a "$log" || status=$?
# --- Helm chart and alerting (issue 7): chart lint/template/rule tests, then the end-to-end alerting test
# (it runs target/debug/ringback, which cargo test has just built). A failure fails the run.
say "chart checks (scripts/check-chart.sh)"
./scripts/check-chart.sh || status=1
say "end-to-end alerting (scripts/alerting-e2e.sh)"
./scripts/alerting-e2e.sh || status=1
# --- end of issue 7 additions
say "fuzzing the public API against its OpenAPI document (scripts/fuzz-api.sh)"
./scripts/fuzz-api.sh || status=1
say "the booking page and widget in headless Chromium (scripts/browser-test.sh)"
./scripts/browser-test.sh || status=1
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed/) p += $(i-1); if ($i ~ /^failed/) f += $(i-1) } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
