#!/usr/bin/env bash
# Build the managers' dashboard (web/) into mes_kernel/static/web, which the kernel serves at / and /assets.
# Without Node/npm the kernel still runs (it serves a pointer page at /); set WEB_REQUIRED=1 to fail instead.
set -euo pipefail
cd "$(dirname "$0")/../web"

if ! command -v npm >/dev/null 2>&1; then
    echo "build-web: npm not found; the dashboard is not built (the API works without it)." >&2
    [ "${WEB_REQUIRED:-0}" = "1" ] && exit 1
    exit 0
fi

npm ci --no-audit --no-fund --loglevel=error
npm run build
echo "build-web: dashboard built into mes_kernel/static/web"
