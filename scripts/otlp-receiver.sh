#!/usr/bin/env bash
# An OTLP/HTTP trace receiver for the trace tests, decoding with the official protobuf definitions
# (Python `opentelemetry-proto`, pinned in scripts/otlp-requirements.txt), installed once into
# .cache/otlp.
#   scripts/otlp-receiver.sh --install     install it (the test command does, before the tests)
#   scripts/otlp-receiver.sh PORT_FILE [--count-only]   serve on a free port (written to PORT_FILE); see otlp_receiver.py
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.cache/otlp
./scripts/pinned-venv.sh "$VENV" scripts/otlp-requirements.txt 'from opentelemetry.proto.collector.trace.v1 import trace_service_pb2'
[ "${1:-}" = "--install" ] && exit 0
exec "$VENV/bin/python" scripts/otlp_receiver.py "$@"
