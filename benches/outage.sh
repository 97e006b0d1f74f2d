#!/usr/bin/env bash
# Outage benchmark (on demand, not in CI): the chaos test of tests/api/chaos.rs built in release
# mode. A PostgreSQL of its own is stopped with `pg_ctl stop -m immediate` for 5 s under booking
# load (8 clients) and started again. Prints, from that one run,
#   - the p99 and slowest answer of the requests made during the outage (target p99 <= 100 ms),
#   - how long after the return the first booking succeeded (target <= 2 s).
# The test itself asserts only the loose bounds (every answer < 1 s, success again < 10 s).
set -euo pipefail
cd "$(dirname "$0")/.."
export RINGBACK_TEST_POSTGRES=${RINGBACK_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}
runs=${1:-1}
for _ in $(seq 1 "$runs"); do
  cargo test --release --locked -q --test api -- --exact --nocapture \
    chaos::a_killed_database_is_fast_503s_then_bookings_resume_without_a_restart 2>&1 | grep '^chaos:'
done
