#!/usr/bin/env bash
# Browser tests (tests/browser: the booking page and widget, then the operations console): Debian's Chromium, headless, driven by playwright-core (npm,
# pinned in tests/browser/package-lock.json) against target/debug/ringback, which cargo test has
# just built. Installs Chromium and the npm package when they are missing. Exits non-zero when a
# scenario fails.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '== browser-test: %s\n' "$*"; }
if ! command -v chromium >/dev/null 2>&1; then
  say "installing Debian's chromium"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) ||
    { echo "browser-test: chromium could not be installed" >&2; exit 1; }
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  say "installing playwright-core (npm ci)"
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi
[ -x "${RINGBACK_BIN:-target/debug/ringback}" ] || cargo build --locked -q
say "$(chromium --version 2>/dev/null | head -n1)"
status=0
node tests/browser/booking.test.mjs || status=1
node tests/browser/console.test.mjs || status=1
exit $status
