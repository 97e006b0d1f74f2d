#!/usr/bin/env bash
# An OTLP/HTTP trace receiver for the trace tests, decoding with the official protobuf definitions
# (Python `opentelemetry-proto`, pinned in scripts/otlp-requirements.txt), installed once into
# .cache/otlp.
#   scripts/otlp-receiver.sh --install     install it (the test command does, before the tests)
#   scripts/otlp-receiver.sh PORT_FILE [--count-only]   serve on a free port (written to PORT_FILE); see otlp_receiver.py
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.cache/otlp
if ! "$VENV/bin/python" -c 'from opentelemetry.proto.collector.trace.v1 import trace_service_pb2' >/dev/null 2>&1; then
  python3 -m venv "$VENV" || {
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null) || true
    python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install -q -r scripts/otlp-requirements.txt
fi
[ "${1:-}" = "--install" ] && exit 0
exec "$VENV/bin/python" scripts/otlp_receiver.py "$@"
