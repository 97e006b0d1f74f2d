#!/usr/bin/env bash
# The Standard Webhooks reference verifier (Python `standardwebhooks`, pinned in
# scripts/webhook-requirements.txt), installed once into .cache/standardwebhooks.
#   scripts/webhook-verifier.sh --install     install it (the test command does, before the tests)
#   scripts/webhook-verifier.sh CASES.json    verify the cases (scripts/verify_webhooks.py)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.cache/standardwebhooks
if ! "$VENV/bin/python" -c 'import standardwebhooks' >/dev/null 2>&1; then
  python3 -m venv "$VENV" || {
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null) || true
    python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install -q -r scripts/webhook-requirements.txt
fi
[ "${1:-}" = "--install" ] && exit 0
exec "$VENV/bin/python" scripts/verify_webhooks.py "$1"
