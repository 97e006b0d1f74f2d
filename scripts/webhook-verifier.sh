#!/usr/bin/env bash
# The Standard Webhooks reference verifier (Python `standardwebhooks`, pinned in
# scripts/webhook-requirements.txt), installed once into .cache/standardwebhooks.
#   scripts/webhook-verifier.sh --install     install it (the test command does, before the tests)
#   scripts/webhook-verifier.sh CASES.json    verify the cases (scripts/verify_webhooks.py)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.cache/standardwebhooks
./scripts/pinned-venv.sh "$VENV" scripts/webhook-requirements.txt 'import standardwebhooks'
[ "${1:-}" = "--install" ] && exit 0
exec "$VENV/bin/python" scripts/verify_webhooks.py "$1"
