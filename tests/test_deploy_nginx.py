"""deploy/nginx/mes.conf under a real nginx: syntax, TLS + HTTP/2, SPA fallback, proxying, limits.

The shipped file is used as it is, except for what a test machine must change: listen ports,
certificate paths (self-signed certificates made here), log and web-root directories, and the
upstream address (a small HTTP server of this test). Each change is asserted to have matched, so
a drift in the shipped file fails here instead of silently testing something else.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
OPENSSL = shutil.which("openssl")

pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx-light)"),
    pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed; it makes the test certificates"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _substitute(text: str, old: str, new: str, *, count: int = 1) -> str:
    found = text.count(old)
    assert found == count, f"expected {count} x {old!r} in deploy/nginx/mes.conf, found {found}"
    return text.replace(old, new)


class _Backend(BaseHTTPRequestHandler):
    """Stands in for the kernel: answers JSON describing the request it got."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        if self.path.startswith("/api/v1/big"):
            body["rows"] = [{"lot_number": f"LOT-{i:05d}", "status": "in_progress"} for i in range(500)]
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def nginx_site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nginx")
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()

    subprocess.run(
        [
            OPENSSL,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=mes.example.com",
            "-keyout",
            str(tmp / "privkey.pem"),
            "-out",
            str(tmp / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    web = tmp / "web"
    (web / "assets").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>NeuroHub MES</title><div id=root></div>")
    (web / "assets" / "app-3f2a.js").write_text("console.log('mes');" * 200)

    http_port, https_port = _free_port(), _free_port()
    conf = (DEPLOY / "nginx" / "mes.conf").read_text()
    conf = _substitute(conf, "listen 80;", f"listen 127.0.0.1:{http_port};")
    conf = _substitute(conf, "listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
    conf = _substitute(conf, "listen [::]:80;\n", "")
    conf = _substitute(conf, "listen [::]:443 ssl http2;\n", "")
    conf = _substitute(conf, "server 127.0.0.1:8000 ", f"server 127.0.0.1:{backend.server_port} ")
    conf = _substitute(conf, "/etc/letsencrypt/live/mes.example.com/", f"{tmp}/", count=2)
    conf = _substitute(conf, "/var/log/nginx/", f"{tmp}/", count=2)
    conf = _substitute(conf, "root /srv/mes/web;", f"root {web};")
    (tmp / "mes.conf").write_text(conf)

    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read files under the tmp dir
    temp_paths = "".join(
        f"    {kind}_temp_path {tmp}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp / "nginx.conf").write_text(
        f"{user}worker_processes 1;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
        f"events {{ worker_connections 256; }}\n"
        f"http {{\n    access_log off;\n{temp_paths}    include {tmp}/mes.conf;\n}}\n"
    )
    base = [NGINX, "-p", str(tmp), "-e", f"{tmp}/error.log", "-c", str(tmp / "nginx.conf")]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr

    proc = subprocess.Popen([*base, "-g", "daemon off;"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", https_port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"nginx did not start: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.05)
    yield {
        "https": f"https://127.0.0.1:{https_port}",
        "http": f"http://127.0.0.1:{http_port}",
        "https_port": https_port,
        "nginx_t": check.stderr,
    }
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    backend.shutdown()


def _client(source: str = "127.0.0.1") -> httpx.Client:
    # Loopback is all of 127/8: a different source address is a different client to nginx.
    return httpx.Client(verify=False, timeout=5, transport=httpx.HTTPTransport(verify=False, local_address=source))


def test_config_passes_nginx_syntax_check(nginx_site):
    assert "syntax is ok" in nginx_site["nginx_t"]


def test_tls_offers_http2(nginx_site):
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", nginx_site["https_port"]), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="mes.example.com") as tls:
            assert tls.selected_alpn_protocol() == "h2"


def test_plain_http_redirects_to_https(nginx_site):
    with _client() as client:
        answer = client.get(f"{nginx_site['http']}/lots?page=2", headers={"Host": "mes.example.com"})
    assert answer.status_code == 301
    assert answer.headers["location"] == "https://mes.example.com/lots?page=2"


def test_client_side_routes_fall_back_to_the_app(nginx_site):
    with _client() as client:
        deep = client.get(f"{nginx_site['https']}/lots/LOT-0001/history")
        root = client.get(f"{nginx_site['https']}/")
    assert deep.status_code == 200 and "NeuroHub MES" in deep.text
    assert deep.text == root.text
    assert deep.headers["cache-control"] == "no-cache"
    assert deep.headers["strict-transport-security"].startswith("max-age=")


def test_hashed_assets_are_cached_for_good_and_missing_ones_are_404(nginx_site):
    with _client() as client:
        asset = client.get(f"{nginx_site['https']}/assets/app-3f2a.js", headers={"Accept-Encoding": "gzip"})
        missing = client.get(f"{nginx_site['https']}/assets/nope.js")
    assert asset.status_code == 200 and "max-age=315360000" in asset.headers["cache-control"]
    assert asset.headers["content-encoding"] == "gzip"
    assert missing.status_code == 404


def test_api_is_proxied_with_forwarding_headers_and_gzip(nginx_site):
    with _client() as client:
        answer = client.get(f"{nginx_site['https']}/api/v1/big?x=1", headers={"Accept-Encoding": "gzip"})
    assert answer.status_code == 200
    assert answer.headers["content-encoding"] == "gzip"
    seen = answer.json()
    assert seen["path"] == "/api/v1/big?x=1"
    assert seen["headers"]["x-forwarded-proto"] == "https"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{32}", seen["headers"]["x-request-id"])


def test_metrics_only_from_internal_addresses(nginx_site):
    with _client("127.0.0.1") as inside:
        assert inside.get(f"{nginx_site['https']}/metrics").status_code == 200
    with _client("127.0.0.2") as outside:  # not in the allow list
        assert outside.get(f"{nginx_site['https']}/metrics").status_code == 403


def test_people_are_limited_to_100_per_minute_stations_and_probes_are_not(nginx_site):
    url = nginx_site["https"]
    with _client("127.0.0.3") as client:
        codes = [client.get(f"{url}/api/v1/lots").status_code for _ in range(80)]
        assert codes[:51] == [200] * 51  # the burst
        assert 429 in codes
        refused = client.get(f"{url}/api/v1/lots")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
        assert refused.json()["detail"]["code"] == "RATE_LIMITED"
        # Same address, but a probe, and a station with its machine token: both still served.
        assert client.get(f"{url}/api/v1/health/liveness").status_code == 200
        station = {"Authorization": "Bearer mst_0123456789abcdef"}
        assert [client.get(f"{url}/api/v1/records", headers=station).status_code for _ in range(60)] == [200] * 60
