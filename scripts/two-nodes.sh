#!/usr/bin/env bash
# Two kernel nodes behind nginx on one host: two gunicorn instances (deploy/gunicorn.conf.py) on
# their own ports, sharing one PostgreSQL and one Redis, behind the shipped nginx site
# (deploy/nginx/mes.conf rendered by deploy/nginx/render.sh, least_conn) with a self-signed
# certificate. For trying failover before a second host exists, and for the drill
# (bench/drill_two_nodes.py). On two real hosts, run gunicorn on each and render nginx with one
# --upstream per host instead.
#
#   DATABASE_URL=postgresql+asyncpg://mes@127.0.0.1/mes REDIS_URL=redis://127.0.0.1:6379/0 \
#   SECRET_KEY=... scripts/two-nodes.sh start DIR [NODE1_PORT NODE2_PORT HTTPS_PORT HTTP_PORT]
#   scripts/two-nodes.sh stop DIR
#
# start: the schema must be at head (`mes db upgrade`); ports default to 8001 8002 8443 8080.
# DIR receives node1/ node2/ (gunicorn.log, pid), nginx/ (the rendered site, logs, pid) and
# urls.env (HTTPS=..., NODE1=..., NODE2=...). Waits until both nodes are ready (90 s at most).
# stop: SIGCONT (in case a node was frozen) then SIGTERM to each node's process group, then nginx.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cmd="${1:-}"; dir="${2:-}"
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
mkdir -p "$dir"; dir="$(cd "$dir" && pwd)"
python="${PYTHON:-$(command -v python3)}"
[ -x "$here/.venv/bin/python" ] && python="${PYTHON:-$here/.venv/bin/python}"
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"

stop_group() {  # stop_group PIDFILE
  [ -f "$1" ] || return 0
  local pid; pid="$(cat "$1")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -CONT -- "-$pid" 2>/dev/null || true
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

case "$cmd" in
  start)
    : "${DATABASE_URL:?set DATABASE_URL (PostgreSQL, shared by both nodes)}"
    : "${REDIS_URL:?set REDIS_URL (shared by both nodes)}"
    : "${SECRET_KEY:?set SECRET_KEY (the same on both nodes)}"
    p1="${3:-8001}" p2="${4:-8002}" https="${5:-8443}" http="${6:-8080}"
    for n in 1 2; do
      port="p$n"; port="${!port}"
      mkdir -p "$dir/node$n/prom"
      # setsid: each node is its own process group, so it is stopped (or frozen) master and workers together.
      BIND="127.0.0.1:$port" PROMETHEUS_MULTIPROC_DIR="$dir/node$n/prom" \
        setsid "$python" -m gunicorn -c "$here/deploy/gunicorn.conf.py" >>"$dir/node$n/gunicorn.log" 2>&1 &
      echo $! >"$dir/node$n/pid"
    done
    mkdir -p "$dir/nginx/certs"
    if [ ! -f "$dir/nginx/certs/fullchain.pem" ]; then
      openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
        -keyout "$dir/nginx/certs/privkey.pem" -out "$dir/nginx/certs/fullchain.pem" >/dev/null 2>&1
    fi
    web="$here/mes_kernel/static/web"; [ -d "$web" ] || web="$dir/nginx/web"; mkdir -p "$web"
    "$here/deploy/nginx/render.sh" --listen 127.0.0.1 --http-port "$http" --https-port "$https" \
      --upstream "127.0.0.1:$p1" --upstream "127.0.0.1:$p2" --cert-dir "$dir/nginx/certs" \
      --log-dir "$dir/nginx" --web-root "$web" --acme-root "$dir/nginx/acme" --standalone "$dir/nginx/site" >/dev/null
    "$nginx_bin" -p "$dir/nginx/site" -e "$dir/nginx/site/error.log" -c "$dir/nginx/site/nginx.conf" -t 2>/dev/null
    setsid "$nginx_bin" -p "$dir/nginx/site" -e "$dir/nginx/site/error.log" -c "$dir/nginx/site/nginx.conf" \
      -g "daemon off;" >>"$dir/nginx/nginx.out" 2>&1 &
    echo $! >"$dir/nginx/pid"
    {
      echo "HTTPS=https://127.0.0.1:$https"
      echo "NODE1=http://127.0.0.1:$p1"
      echo "NODE2=http://127.0.0.1:$p2"
    } >"$dir/urls.env"
    for n in 1 2; do
      port="p$n"; port="${!port}"
      ok=""
      for _ in $(seq 300); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/api/v1/health/readiness" 2>/dev/null; then ok=1; break; fi
        kill -0 "$(cat "$dir/node$n/pid")" 2>/dev/null || break
        sleep 0.3
      done
      [ -n "$ok" ] || { echo "node$n did not become ready; see $dir/node$n/gunicorn.log" >&2; exit 1; }
    done
    cat "$dir/urls.env"
    ;;
  stop)
    stop_group "$dir/node1/pid"
    stop_group "$dir/node2/pid"
    stop_group "$dir/nginx/pid"
    ;;
  *)
    echo "two-nodes.sh: start or stop" >&2; exit 2 ;;
esac
