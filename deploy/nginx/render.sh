#!/usr/bin/env bash
# Render deploy/nginx/mes.conf for one host: substitutes only ports, host name, certificate, the
# kernel nodes' addresses and paths — never the logic — and fails if a substitution no longer
# matches the shipped file (so a drift is caught, not silently ignored).
#
#   deploy/nginx/render.sh [options] > /etc/nginx/conf.d/mes.conf
#
# Options (defaults are the shipped file's values):
#   --server-name NAME     host name (mes.example.com)
#   --listen ADDR          listen on this address only, e.g. 127.0.0.1 (default: every IPv4 and IPv6 address)
#   --http-port N          plain HTTP port: ACME and the redirect to HTTPS (80)
#   --https-port N         HTTPS port (443); another port is then named in the redirect to HTTPS and
#                          in the Host the kernel sees, so redirects keep it
#   --upstream HOST:PORT   a kernel node (gunicorn BIND); repeat once per node (127.0.0.1:8000)
#   --cert-dir DIR         folder with fullchain.pem and privkey.pem (/etc/letsencrypt/live/<server-name>)
#   --log-dir DIR          nginx logs (/var/log/nginx)
#   --web-root DIR         the dashboard build, web/dist (/srv/mes/web)
#   --acme-root DIR        certbot's webroot (/var/www/letsencrypt)
#   --people-rate N        requests per minute per client address outside station tokens (1500)
#   --people-burst N       how many of them may come at once (300)
#   --station-rate N       requests per minute per station token (6000, the kernel's STATION_RATE_LIMIT_PER_MINUTE)
#   --station-burst N      how many of them may come at once (500)
#   --address-rate N       requests per minute per client address with station tokens (30000): above what
#                          every station behind one address sends together
#   --address-burst N      how many of them may come at once (2000)
#   --standalone DIR       also write DIR/nginx.conf (pid, temp and log paths under DIR) that includes the
#                          rendered site, so it runs without root:  nginx -p DIR -c DIR/nginx.conf
#                          (the rendered site then goes to DIR/mes.conf, not to stdout)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
server_name=mes.example.com
listen="" http_port=80 https_port=443 cert_dir="" log_dir=/var/log/nginx web_root=/srv/mes/web
acme_root=/var/www/letsencrypt standalone="" people_rate=1500 people_burst=300
station_rate=6000 station_burst=500 address_rate=30000 address_burst=2000
upstreams=()

usage() { sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --server-name) server_name="$2"; shift 2 ;;
    --listen) listen="$2"; shift 2 ;;
    --http-port) http_port="$2"; shift 2 ;;
    --https-port) https_port="$2"; shift 2 ;;
    --upstream) upstreams+=("$2"); shift 2 ;;
    --cert-dir) cert_dir="$2"; shift 2 ;;
    --log-dir) log_dir="$2"; shift 2 ;;
    --web-root) web_root="$2"; shift 2 ;;
    --acme-root) acme_root="$2"; shift 2 ;;
    --standalone) standalone="$2"; shift 2 ;;
    --people-rate) people_rate="$2"; shift 2 ;;
    --people-burst) people_burst="$2"; shift 2 ;;
    --station-rate) station_rate="$2"; shift 2 ;;
    --station-burst) station_burst="$2"; shift 2 ;;
    --address-rate) address_rate="$2"; shift 2 ;;
    --address-burst) address_burst="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "render.sh: unknown option $1" >&2; usage 2 ;;
  esac
done
[ ${#upstreams[@]} -gt 0 ] || upstreams=(127.0.0.1:8000)
cert_dir="${cert_dir:-/etc/letsencrypt/live/$server_name}"
for n in "$people_rate" "$people_burst" "$station_rate" "$station_burst" "$address_rate" "$address_burst"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "render.sh: --people-*, --station-* and --address-* want a positive number, got $n" >&2; exit 2; }
done
for port in "$http_port" "$https_port"; do
  [[ "$port" =~ ^[0-9]+$ ]] || { echo "render.sh: not a port: $port" >&2; exit 2; }
done
node_re='^[][A-Za-z0-9.:_-]+:[0-9]+$'  # host name, IPv4, or [IPv6], then :port
for node in "${upstreams[@]}"; do
  [[ "$node" =~ $node_re ]] || { echo "render.sh: --upstream wants HOST:PORT, got $node" >&2; exit 2; }
done

conf="$(cat "$here/mes.conf")"

# sub OLD NEW COUNT: replace exactly COUNT occurrences of OLD, or fail.
sub() {
  local found
  found="$( (grep -o -F -- "$1" <<<"$conf" || true) | wc -l)"
  if [ "$found" -ne "$3" ]; then
    echo "render.sh: expected $3 x '$1' in deploy/nginx/mes.conf, found $found" >&2
    exit 1
  fi
  conf="${conf//"$1"/"$2"}"
}

node_line='    server 127.0.0.1:8000 max_fails=1 fail_timeout=10s;'
nodes=""
for node in "${upstreams[@]}"; do
  nodes+="${nodes:+$'\n'}    server $node max_fails=1 fail_timeout=10s;"
done
sub "$node_line" "$nodes" 1

if [ -n "$listen" ]; then
  sub "    listen [::]:80;" "    # (IPv6 left out: --listen $listen)" 1
  sub "    listen [::]:443 ssl http2;" "    # (IPv6 left out: --listen $listen)" 1
  sub "listen 80;" "listen $listen:$http_port;" 1
  sub "listen 443 ssl http2;" "listen $listen:$https_port ssl http2;" 1
else
  sub "listen [::]:80;" "listen [::]:$http_port;" 1
  sub "listen [::]:443 ssl http2;" "listen [::]:$https_port ssl http2;" 1
  sub "listen 80;" "listen $http_port;" 1
  sub "listen 443 ssl http2;" "listen $https_port ssl http2;" 1
fi
# Off port 443, every absolute URL names the port: nginx's redirect to HTTPS, and the Host the kernel
# sees (it builds its own redirects, e.g. /api/v1/health/ -> /api/v1/health, from it).
if [ "$https_port" != 443 ]; then
  sub 'return 301 https://$host$request_uri;' "return 301 https://\$host:$https_port\$request_uri;" 1
  sub 'proxy_set_header Host $host;' "proxy_set_header Host \$host:$https_port;" 1
fi
sub "/etc/letsencrypt/live/mes.example.com/" "${cert_dir%/}/" 2
sub "/var/log/nginx/" "${log_dir%/}/" 2
sub "root /srv/mes/web;" "root $web_root;" 1
sub "root /var/www/letsencrypt;" "root $acme_root;" 1
sub "server_name mes.example.com;" "server_name $server_name;" 2
sub "zone=mes_people:10m   rate=1500r/m;" "zone=mes_people:10m   rate=${people_rate}r/m;" 1
sub "zone=mes_people burst=300 nodelay;" "zone=mes_people burst=$people_burst nodelay;" 6
sub "zone=mes_stations:10m rate=6000r/m;" "zone=mes_stations:10m rate=${station_rate}r/m;" 1
sub "zone=mes_stations burst=500 nodelay;" "zone=mes_stations burst=$station_burst nodelay;" 3
sub "zone=mes_addresses:10m rate=30000r/m;" "zone=mes_addresses:10m rate=${address_rate}r/m;" 1
sub "zone=mes_addresses burst=2000 nodelay;" "zone=mes_addresses burst=$address_burst nodelay;" 6
sub '"more than 1500 requests per minute from this address";' "\"more than $people_rate requests per minute from this address\";" 1
sub '"more than 6000 requests per minute with this station token, or more than 30000 with station tokens from this address";' \
    "\"more than $station_rate requests per minute with this station token, or more than $address_rate with station tokens from this address\";" 1

if [ -z "$standalone" ]; then
  printf '%s\n' "$conf"
  exit 0
fi

mkdir -p "$standalone"
standalone="$(cd "$standalone" && pwd)"
printf '%s\n' "$conf" >"$standalone/mes.conf"
user=""
[ "$(id -u)" -eq 0 ] && user="user root;"  # workers must read the files under DIR
{
  [ -n "$user" ] && echo "$user"
  echo "worker_processes 1;"
  echo "pid $standalone/nginx.pid;"
  echo "error_log $standalone/error.log;"
  echo "events { worker_connections 1024; }"
  echo "http {"
  echo "    include /etc/nginx/mime.types;"
  echo "    default_type application/octet-stream;"
  echo "    access_log off;"
  for kind in client_body proxy fastcgi uwsgi scgi; do
    echo "    ${kind}_temp_path $standalone/$kind;"
  done
  echo "    include $standalone/mes.conf;"
  echo "}"
} >"$standalone/nginx.conf"
echo "$standalone/nginx.conf"
