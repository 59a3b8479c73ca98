#!/usr/bin/env bash
# Runs the whole test suite: lint, pytest (kernel, plugins, station, deploy), the dashboard's unit
# and browser tests. PostgreSQL and Redis on 127.0.0.1 are used when they answer (CI starts them);
# otherwise those runs are skipped with a reason and SQLite runs alone. Every stage runs; the
# exit code is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

reachable() { "$BIN/python" - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

if [ -z "${MES_TEST_DATABASE_URL:-}" ] && reachable 127.0.0.1 5432; then
  export MES_TEST_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
fi
if [ -z "${MES_TEST_REDIS_URL:-}" ] && reachable 127.0.0.1 6379; then
  export MES_TEST_REDIS_URL="redis://127.0.0.1:6379/15"
fi
echo "PostgreSQL: ${MES_TEST_DATABASE_URL:-not available (runs skipped)}"
echo "Redis:      ${MES_TEST_REDIS_URL:-not available (runs skipped)}"
export QT_QPA_PLATFORM=offscreen

failed=()
"$BIN/ruff" check mes_kernel plugins station tests bench || failed+=(ruff)
# Most tests wait on real servers (gunicorn, PostgreSQL, nginx, ptys), not on the CPU: three pytest
# processes fill the wait. Each has its own databases, Redis namespaces and free ports.
# MES_TEST_PROCESSES=0 runs in one process; arguments after `make test` go to pytest (e.g. -k).
"$BIN/pytest" -n "${MES_TEST_PROCESSES:-3}" --dist worksteal "$@" || failed+=(pytest)
if [ -f web/package.json ] && command -v npm >/dev/null 2>&1; then
  [ -d web/node_modules ] || (cd web && npm ci --no-audit --no-fund --loglevel=error)
  (cd web && npm test --silent) || failed+=("web unit tests")
  if [ -x "${E2E_CHROMIUM:-/usr/bin/chromium}" ]; then
    (cd web && npm run e2e --silent) || failed+=("web browser tests")
  else
    echo "web browser tests skipped: no Chromium at ${E2E_CHROMIUM:-/usr/bin/chromium} (apt-get install chromium)"
  fi
else
  echo "web tests skipped: npm not found"
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all test stages passed"
