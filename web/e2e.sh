#!/usr/bin/env bash
# End-to-end tests of the web client: builds confab (or uses $CONFAB_BIN), then runs
# web/tests/*.test.mjs in Debian's chromium through playwright-core. The tests start the
# server themselves (on a free port, in a fresh data directory) so that they can restart it.
#
#   web/e2e.sh                 build with cargo, install npm deps if missing, run everything
#   CONFAB_BIN=path web/e2e.sh use that binary, no build
#
# Needs: node >= 20, npm, /usr/bin/chromium (apt-get install chromium), cargo (unless CONFAB_BIN).
set -euo pipefail

WEB="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$WEB/.." && pwd)"
cd "$WEB"

if [[ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]]; then
  echo "e2e: ${CHROMIUM:-/usr/bin/chromium} is missing (apt-get install -y chromium)" >&2
  exit 1
fi

if [[ ! -d node_modules/playwright-core ]]; then
  echo "e2e: installing npm dev dependencies" >&2
  timeout 300 npm ci --no-audit --no-fund
fi

if [[ -z "${CONFAB_BIN:-}" ]]; then
  TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
  BIN="$TARGET/debug/confab"
  echo "e2e: cargo build -p confab" >&2
  (cd "$ROOT" && timeout 1800 cargo build -p confab)
  CONFAB_BIN="$BIN"
fi
[[ -x "$CONFAB_BIN" ]] || { echo "e2e: no confab binary at $CONFAB_BIN" >&2; exit 1; }

CONFAB_PORT="${CONFAB_PORT:-$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')}"
DATA_DIR="$(mktemp -d "${TMPDIR:-/tmp}/confab-e2e.XXXXXX")"
PIDFILE="$DATA_DIR.pid"
NODE_PID=""

cleanup() {
  local rc=$?
  if [[ -n "$NODE_PID" ]] && kill -0 "$NODE_PID" 2>/dev/null; then kill "$NODE_PID" 2>/dev/null || true; fi
  if [[ -f "$PIDFILE" ]]; then
    local pid
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
  fi
  rm -rf "$DATA_DIR"
  exit "$rc"
}
trap cleanup EXIT INT TERM

mkdir -p test-results
echo "e2e: confab $CONFAB_BIN on 127.0.0.1:$CONFAB_PORT, data in $DATA_DIR" >&2
export CONFAB_BIN CONFAB_PORT CONFAB_DATA_DIR="$DATA_DIR" CONFAB_PIDFILE="$PIDFILE"
export CONFAB_URL="http://127.0.0.1:$CONFAB_PORT"
timeout 900 node --test --test-concurrency=1 --test-reporter=spec tests/ &
NODE_PID=$!
wait "$NODE_PID"
