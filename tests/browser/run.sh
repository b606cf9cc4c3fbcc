#!/usr/bin/env bash
# Runs the web console's browser suite (ctest: browser_suite).
#   tests/browser/run.sh COURIER_BINARY SCREENSHOT_DIR
# Installs puppeteer-core from the committed lock file with `npm ci` when
# node_modules is missing or older than the lock (never a browser download:
# the suite drives Debian's /usr/bin/chromium). Without node or chromium it
# skips (exit 77), except under CI (CI=true), where that is a failure.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}

missing=()
command -v node >/dev/null || missing+=(node)
command -v npm >/dev/null || missing+=(npm)
[[ -x "$chromium" ]] || missing+=(chromium)
if ((${#missing[@]})); then
  if [[ "${CI:-}" == "true" ]]; then
    echo "browser suite: missing ${missing[*]} (tools/install-deps.sh installs them)" >&2
    exit 1
  fi
  echo "browser suite skipped: missing ${missing[*]} (tools/install-deps.sh installs them)"
  exit 77
fi

export PUPPETEER_SKIP_DOWNLOAD=1 PUPPETEER_SKIP_CHROME_DOWNLOAD=1
if [[ ! -f "$here/node_modules/.package-lock.json" ||
      "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
exec node "$here/console.test.mjs" --courier "$1" --screenshots "$2"
