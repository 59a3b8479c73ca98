#!/usr/bin/env bash
# Render deploy/prometheus/prometheus.yml for a host without Docker: substitutes only the scrape
# targets (the compose service names) and, for tests, the scrape interval — the rules, the
# retention and the rest stay as shipped. Fails if a substitution no longer matches the file.
#
#   deploy/prometheus/render.sh [--kernel HOST:PORT]... [--node-exporter HOST:PORT]
#                               [--alertmanager HOST:PORT] [--prometheus HOST:PORT]
#                               [--scrape-interval 15s] > /etc/prometheus/prometheus.yml
#
# Defaults are the on-premises ones of deploy/README.md: kernel 127.0.0.1:8000 (one --kernel
# per node), node-exporter 127.0.0.1:9100, Alertmanager 127.0.0.1:9093, Prometheus 127.0.0.1:9090.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kernels=() node=127.0.0.1:9100 alertmanager=127.0.0.1:9093 self=127.0.0.1:9090 interval=""
while [ $# -gt 0 ]; do
  case "$1" in
    --kernel) kernels+=("$2"); shift 2 ;;
    --node-exporter) node="$2"; shift 2 ;;
    --alertmanager) alertmanager="$2"; shift 2 ;;
    --prometheus) self="$2"; shift 2 ;;
    --scrape-interval) interval="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "render.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ ${#kernels[@]} -gt 0 ] || kernels=(127.0.0.1:8000)
target_re='^[][A-Za-z0-9.:_-]+:[0-9]+$'
for t in "${kernels[@]}" "$node" "$alertmanager" "$self"; do
  [[ "$t" =~ $target_re ]] || { echo "render.sh: a target is HOST:PORT, got $t" >&2; exit 2; }
done
conf="$(cat "$here/prometheus.yml")"
sub() {
  local found
  found="$( (grep -o -F -- "$1" <<<"$conf" || true) | wc -l)"
  [ "$found" -eq "$3" ] || { echo "render.sh: expected $3 x '$1' in prometheus.yml, found $found" >&2; exit 1; }
  conf="${conf//"$1"/"$2"}"
}
list=""
for k in "${kernels[@]}"; do list+="${list:+, }\"$k\""; done
sub '["kernel:8000"]' "[$list]" 1
sub '["node-exporter:9100"]' "[\"$node\"]" 1
sub '["alertmanager:9093"]' "[\"$alertmanager\"]" 1
sub '["localhost:9090"]' "[\"$self\"]" 1
if [ -n "$interval" ]; then
  [[ "$interval" =~ ^[0-9]+(ms|s|m)$ ]] || { echo "render.sh: --scrape-interval like 15s" >&2; exit 2; }
  sub "scrape_interval: 15s" "scrape_interval: $interval" 1
  sub "evaluation_interval: 15s" "evaluation_interval: $interval" 1
fi
printf '%s\n' "$conf"
