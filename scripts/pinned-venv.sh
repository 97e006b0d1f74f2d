#!/usr/bin/env bash
# A Python virtual environment with pinned requirements, made once and again when its module no
# longer imports: scripts/pinned-venv.sh DIR REQUIREMENTS_FILE 'import statement'.
set -euo pipefail
VENV=$1 REQUIREMENTS=$2 PROBE=$3
if ! "$VENV/bin/python" -c "$PROBE" >/dev/null 2>&1; then
  python3 -m venv "$VENV" || {
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null) || true
    python3 -m venv "$VENV"
  }
  "$VENV/bin/pip" install -q -r "$REQUIREMENTS"
fi
