#!/usr/bin/env bash
# Runs the whole test suite. PostgreSQL and Redis on 127.0.0.1 are used when they answer
# (CI starts them); otherwise those runs are skipped with a reason and SQLite runs alone.
set -euo pipefail
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

"$BIN/ruff" check mes_kernel plugins station tests bench
"$BIN/pytest" "$@"
if [ -f web/package.json ]; then
  (cd web && npm test --silent)
fi
