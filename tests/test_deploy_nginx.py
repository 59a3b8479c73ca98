"""deploy/nginx/mes.conf under a real nginx: syntax, TLS + HTTP/2, SPA fallback, proxying, limits,
and every route family the dashboard and stations use, in front of the real gunicorn.

The shipped file is rendered by deploy/nginx/render.sh, the script users run: it substitutes only
ports, certificate, kernel nodes and paths, and fails if a substitution no longer matches, so a
drift in the shipped file fails here instead of silently testing something else. Most tests use a
small HTTP server of this test as the upstream (it echoes what it got); the route tests use the
kernel under deploy/gunicorn.conf.py on PostgreSQL + Redis.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import re
import socket
import ssl
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from deploy_kit import (
    DEPLOY,
    NGINX,
    OPENSSL,
    ROOT,
    admin_token,
    free_port,
    seed_kernel_db,
    start_nginx,
    start_node,
    wait_ready,
)

from mes_kernel.testing.fixtures import PG_URL, REDIS_URL, _admin_url, _in_thread, _pg_exec

pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian: apt-get install nginx)"),
    pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed; it makes the test certificates"),
]

SECURITY_HEADERS = {
    "strict-transport-security": "max-age=31536000",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


def _assert_security_headers(answer: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert answer.headers.get_list(name) == [value], (answer.request.url, name, answer.headers)


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
        self.send_header("X-Content-Type-Options", "nosniff")  # as the kernel's own headers do
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _fake_web(folder: Path) -> Path:
    web = folder / "web"
    (web / "assets").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>NeuroHub MES</title><div id=root></div>")
    (web / "assets" / "app-3f2a.js").write_text("console.log('mes');" * 200)
    return web


@pytest.fixture(scope="module")
def nginx_site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nginx")
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    # A small flood guard, so the test can reach it quickly; the shipped size is checked on its own.
    nginx = start_nginx(
        tmp,
        upstreams=[f"127.0.0.1:{backend.server_port}"],
        web_root=_fake_web(tmp),
        render_args=("--people-rate", "100", "--people-burst", "50"),
    )
    yield {
        "https": nginx.https,
        "http": nginx.http,
        "https_port": nginx.https_port,
        "nginx_t": nginx.syntax_check,
    }
    nginx.stop()
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


def test_plain_http_redirects_to_https_on_the_rendered_port(nginx_site):
    # Rendered with --https-port other than 443 (as scripts/two-nodes.sh does): the redirect names it.
    with _client() as client:
        answer = client.get(f"{nginx_site['http']}/lots?page=2", headers={"Host": "mes.example.com"})
    assert answer.status_code == 301
    assert answer.headers["location"] == f"https://mes.example.com:{nginx_site['https_port']}/lots?page=2"


def test_the_kernel_sees_the_host_with_the_https_port_so_its_own_redirects_keep_it(nginx_site):
    with _client() as client:
        answer = client.get(f"{nginx_site['https']}/api/v1/echo", headers={"Host": "mes.example.com"})
    assert answer.json()["headers"]["host"] == f"mes.example.com:{nginx_site['https_port']}"


def test_on_port_443_urls_carry_no_port():
    rendered = subprocess.run(
        [str(DEPLOY / "nginx" / "render.sh")], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    assert "return 301 https://$host$request_uri;" in rendered
    assert "proxy_set_header Host $host;" in rendered


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
    _assert_security_headers(missing)  # nginx's own error page


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
    _assert_security_headers(answer)  # one copy each, although the upstream sent one too


def test_metrics_only_from_internal_addresses(nginx_site):
    with _client("127.0.0.1") as inside:
        assert inside.get(f"{nginx_site['https']}/metrics").status_code == 200
    with _client("127.0.0.2") as outside:  # not in the allow list
        assert outside.get(f"{nginx_site['https']}/metrics").status_code == 403


def test_the_shipped_flood_guard_never_refuses_what_the_kernel_accepts():
    from mes_kernel.settings import Settings

    conf = (DEPLOY / "nginx" / "mes.conf").read_text()
    rate = int(re.search(r"zone=mes_people:10m\s+rate=(\d+)r/m;", conf).group(1))
    bursts = {int(b) for b in re.findall(r"zone=mes_people burst=(\d+) nodelay;", conf)}
    kernel = Settings(_env_file=None)
    # one address may carry several people and screens: at least two people's whole budgets
    assert rate >= 2 * (kernel.read_rate_limit_per_minute + kernel.rate_limit_per_minute)
    assert bursts and min(bursts) >= 200
    # a station token's own bucket holds the kernel's station budget; one address's station bucket holds
    # several stations' (and, with room to spare, what its people send too)
    station = int(re.search(r"zone=mes_stations:10m rate=(\d+)r/m;", conf).group(1))
    assert station >= kernel.station_rate_limit_per_minute
    address = int(re.search(r"zone=mes_addresses:10m rate=(\d+)r/m;", conf).group(1))
    assert address >= rate + 4 * station
    # the station bucket is keyed by the token itself, never by a prefix and the address; the address
    # bucket counts requests with a token only (people's have their own)
    assert re.search(r"limit_req_zone \$mes_station_token zone=mes_stations", conf)
    assert re.search(r"limit_req_zone \$mes_station_address zone=mes_addresses", conf)


def test_the_429_messages_name_the_rendered_rates():
    rendered = subprocess.run(
        [
            str(DEPLOY / "nginx" / "render.sh"),
            "--people-rate",
            "2400",
            "--station-rate",
            "7000",
            "--address-rate",
            "40000",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert '"more than 2400 requests per minute from this address";' in rendered
    assert (
        '"more than 7000 requests per minute with this station token, or more than 40000 with station tokens'
        ' from this address";' in rendered
    )
    assert '"message":"$mes_rate_limited"' in rendered


def test_a_client_past_its_flood_guard_gets_429_stations_and_probes_do_not(nginx_site):
    url = nginx_site["https"]
    with _client("127.0.0.3") as client:
        codes = [client.get(f"{url}/api/v1/lots").status_code for _ in range(80)]
        assert codes[:51] == [200] * 51  # the burst
        assert 429 in codes
        refused = client.get(f"{url}/api/v1/lots")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
        assert refused.json()["detail"]["code"] == "RATE_LIMITED"
        # The rendered limit (--people-rate 100), not the kernel's per-person one.
        assert refused.json()["detail"]["message"] == "more than 100 requests per minute from this address"
        _assert_security_headers(refused)  # nginx's own 429, which adds Retry-After
        # Same address, but a probe, and a station with its machine token: both still served.
        assert client.get(f"{url}/api/v1/health/liveness").status_code == 200
        station = {"Authorization": "Bearer mst_0123456789abcdef"}
        assert [client.get(f"{url}/api/v1/records", headers=station).status_code for _ in range(60)] == [200] * 60


@pytest.fixture(scope="module")
def small_limits_site(tmp_path_factory):
    """nginx with every bucket small (people 100/min, a station token 60/min, an address 600/min),
    so a test reaches each limit in a few dozen requests."""
    tmp = tmp_path_factory.mktemp("nginx-limits")
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    nginx = start_nginx(
        tmp,
        upstreams=[f"127.0.0.1:{backend.server_port}"],
        web_root=_fake_web(tmp),
        render_args=(
            "--people-rate", "100", "--people-burst", "50",
            "--station-rate", "60", "--station-burst", "20",
            "--address-rate", "600", "--address-burst", "150",
        ),
    )  # fmt: skip
    yield nginx.https
    nginx.stop()
    backend.shutdown()


def test_a_forged_station_token_spends_its_own_budget_never_a_real_stations(small_limits_site):
    url = small_limits_site
    with _client("127.0.0.5") as client:  # a real station and a forger behind one address (a NAT)
        forged = {"Authorization": "Bearer mst_forged-by-someone-else"}
        codes = [client.get(f"{url}/api/v1/records", headers=forged).status_code for _ in range(40)]
        assert codes[:21] == [200] * 21 and 429 in codes  # the forged token's own burst, then refused
        station = {"Authorization": "Bearer mst_0123456789abcdef"}
        assert [client.get(f"{url}/api/v1/records", headers=station).status_code for _ in range(15)] == [200] * 15
        # the "bearer" scheme is case-insensitive (RFC 7235), as the kernel reads it: the same token
        lower = {"Authorization": "bearer mst_0123456789abcdef"}
        assert client.get(f"{url}/api/v1/records", headers=lower).status_code == 200


SMALL_PERSON_LIMIT = "more than 100 requests per minute from this address"
SMALL_STATION_LIMIT = (
    "more than 60 requests per minute with this station token, or more than 600 with station tokens from this address"
)


def _refused_message(answer: httpx.Response) -> str:
    assert answer.status_code == 429 and answer.headers["retry-after"] == "60", answer
    assert answer.json()["detail"]["code"] == "RATE_LIMITED"
    _assert_security_headers(answer)
    return answer.json()["detail"]["message"]


def _assert_a_person_spends_the_peoples_bucket_only(client: httpx.Client, url: str) -> None:
    """80 requests without a token: the people's burst (50) served, then refused with the people's text."""
    person = [client.get(f"{url}/api/v1/lots") for _ in range(80)]
    assert [a.status_code for a in person[:51]] == [200] * 51
    assert {_refused_message(a) for a in person if a.status_code == 429} == {SMALL_PERSON_LIMIT}


def test_a_station_token_past_its_own_limit_is_told_so_not_that_its_address_is(small_limits_site):
    url = small_limits_site
    with _client("127.0.0.8") as client:
        station = {"Authorization": "Bearer mst_station-past-its-budget"}
        answers = [client.get(f"{url}/api/v1/records", headers=station) for _ in range(40)]
        assert [a.status_code for a in answers[:21]] == [200] * 21  # the token's own burst (20)
        refused = [a for a in answers if a.status_code == 429]
        assert refused and {_refused_message(a) for a in refused} == {SMALL_STATION_LIMIT}
        # the address itself is far from its limit: a person from it is served, and told of the address
        _assert_a_person_spends_the_peoples_bucket_only(client, url)


def test_stations_that_spent_their_address_budget_leave_its_people_served(small_limits_site):
    url = small_limits_site
    with _client("127.0.0.9") as client:  # many stations (here: made-up tokens) behind one NAT
        answers = [
            client.get(f"{url}/api/v1/records", headers={"Authorization": f"Bearer mst_nat{i:08d}"}) for i in range(300)
        ]
        assert [a.status_code for a in answers[:151]] == [200] * 151  # the address's burst (150)
        refused = [a for a in answers if a.status_code == 429]
        assert refused and {_refused_message(a) for a in refused} == {SMALL_STATION_LIMIT}
        # a person at the same address spends the people's bucket only: served, and refused only past it
        _assert_a_person_spends_the_peoples_bucket_only(client, url)


def test_a_new_forged_token_for_each_request_meets_the_per_address_limit(small_limits_site):
    url = small_limits_site
    with _client("127.0.0.6") as client:
        codes = [
            client.get(f"{url}/api/v1/records", headers={"Authorization": f"Bearer mst_{i:08d}"}).status_code
            for i in range(300)
        ]
        assert codes[:151] == [200] * 151 and 429 in codes
        # and a header that only looks like a token (a space inside) counts as a person's
    with _client("127.0.0.7") as client:
        odd = {"Authorization": "Bearer mst_abc def"}
        codes = [client.get(f"{url}/api/v1/records", headers=odd).status_code for _ in range(80)]
        assert codes[:51] == [200] * 51 and 429 in codes
        assert client.get(f"{url}/api/v1/records", headers={"Authorization": "Bearer mst_x"}).status_code == 200


def test_no_node_answering_gives_the_api_error_shape_with_security_headers(tmp_path):
    nginx = start_nginx(tmp_path, upstreams=[f"127.0.0.1:{free_port()}"], web_root=_fake_web(tmp_path))
    try:
        with _client() as client:
            answer = client.get(f"{nginx.https}/api/v1/lots")
            probe = client.get(f"{nginx.https}/api/v1/health")
    finally:
        nginx.stop()
    for r in (answer, probe):
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert r.json()["detail"]["code"] == "SERVICE_UNAVAILABLE"
        _assert_security_headers(r)


def test_a_node_that_accepts_and_never_answers_holds_a_read_5_s_at_most_then_the_other_node_answers(tmp_path):
    """A frozen node (SIGSTOP, a paused VM): connections complete in the kernel's backlog and no
    answer ever comes. Reads under /api/ leave it after the reads' 5 s (location @api_read, not the
    writes' 30 s) and go to the other node; the frozen one is then out of rotation."""
    frozen = socket.socket()
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(64)  # accepts (the backlog), never reads, never answers
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    nginx = start_nginx(
        tmp_path,
        upstreams=[f"127.0.0.1:{frozen.getsockname()[1]}", f"127.0.0.1:{backend.server_port}"],
        web_root=_fake_web(tmp_path),
    )
    reads = []
    try:
        with httpx.Client(verify=False, timeout=60) as client:
            for path in ("/api/v1/lots", "/api/v1/lots?page=2", "/api/v1/alerts", "/api/v1/dashboard/summary"):
                started = time.monotonic()
                answer = client.get(f"{nginx.https}{path}")
                reads.append((path, answer.status_code, time.monotonic() - started))
    finally:
        nginx.stop()
        backend.shutdown()
        frozen.close()
    assert all(status == 200 for _, status, _ in reads), reads  # each answered, by the other node
    longest = max(took for _, _, took in reads)
    # One read met the frozen node (least_conn ties take turns) and waited its 5 s, not 30 s.
    assert 4.5 <= longest < 15, reads


class _Dropper:
    """A node that dies under each request: reads it, then closes the connection without an answer."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.requests.append(conn.recv(65536))
                except OSError:
                    pass

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"


class _Recorder(_Backend):
    """The healthy node: answers every POST with 200 and remembers the X-Test-Id it carried."""

    seen: list[str] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(self.headers.get("X-Test-Id", ""))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.mark.parametrize(
    ("path", "retried"),
    [("/api/v1/lots", False), ("/api/v1/process-records", True)],
    ids=["a-plain-post-is-never-sent-twice", "a-record-post-goes-to-the-other-node"],
)
def test_a_post_that_a_node_dropped_is_retried_only_where_it_is_idempotent(tmp_path, path, retried):
    """A node that read the request and died may have done it: nginx sends a POST on to the other
    node only in the records' location (an idempotency key makes a second delivery harmless)."""
    dropper = _Dropper()
    recorder = type("Recorder", (_Recorder,), {"seen": []})
    backend = ThreadingHTTPServer(("127.0.0.1", 0), recorder)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    nginx = start_nginx(
        tmp_path, upstreams=[dropper.address, f"127.0.0.1:{backend.server_port}"], web_root=_fake_web(tmp_path)
    )
    answers = {}
    try:
        with httpx.Client(verify=False, timeout=60) as client:
            for i in range(4):  # least_conn's ties take turns: the dropping node gets one of them
                answer = client.post(f"{nginx.https}{path}", json={"n": i}, headers={"X-Test-Id": f"req-{i}"})
                answers[f"req-{i}"] = answer
                if dropper.requests:
                    break
    finally:
        nginx.stop()
        backend.shutdown()
        dropper.sock.close()
    assert dropper.requests, "the dropping node never got a request"
    dropped = next(i for i in answers if i.encode() in dropper.requests[0])
    if retried:
        assert answers[dropped].status_code == 200 and recorder.seen.count(dropped) == 1, answers
    else:
        assert answers[dropped].status_code == 503, answers[dropped].text
        assert answers[dropped].json()["detail"]["code"] == "SERVICE_UNAVAILABLE"
        assert dropped not in recorder.seen, recorder.seen
    assert all(a.status_code == 200 for i, a in answers.items() if i != dropped), answers


def test_a_plain_post_to_a_node_that_refuses_goes_to_the_other_node_once(tmp_path):
    """A refused connection carried nothing, so nginx sends even a non-idempotent POST on to the
    next node (not 503): deploy/README.md's failover table must say so."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections to it are refused
    recorder = type("Recorder", (_Recorder,), {"seen": []})
    backend = ThreadingHTTPServer(("127.0.0.1", 0), recorder)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    refused = f"127.0.0.1:{closed.getsockname()[1]}"
    nginx = start_nginx(tmp_path, upstreams=[refused, f"127.0.0.1:{backend.server_port}"], web_root=_fake_web(tmp_path))
    try:
        with httpx.Client(verify=False, timeout=30) as client:
            answers = [
                client.post(f"{nginx.https}/api/v1/lots", json={"n": i}, headers={"X-Test-Id": f"lot-{i}"})
                for i in range(4)
            ]
        log = (tmp_path / "mes.access.log").read_text()
    finally:
        nginx.stop()
        backend.shutdown()
        closed.close()
    assert refused in log, "the refusing node was never tried"
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert sorted(recorder.seen) == [f"lot-{i}" for i in range(4)]  # each once
    lines = (DEPLOY / "README.md").read_text().splitlines()
    row = next(line for line in lines if line.startswith("| any other `POST`"))
    refused_cell = row.split("|")[2]
    assert refused_cell.strip().startswith("sent to the other node"), row


def test_render_script_refuses_bad_options_and_a_drifted_file(tmp_path):
    render = DEPLOY / "nginx" / "render.sh"
    bad = subprocess.run([str(render), "--upstream", "no-port"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "HOST:PORT" in bad.stderr
    # A copy of the script beside a config whose upstream line drifted: it must refuse, not guess.
    (tmp_path / "render.sh").write_bytes(render.read_bytes())
    (tmp_path / "render.sh").chmod(0o755)
    conf = (DEPLOY / "nginx" / "mes.conf").read_text()
    (tmp_path / "mes.conf").write_text(conf.replace("max_fails=1 fail_timeout=10s", "max_fails=3"))
    drift = subprocess.run([str(tmp_path / "render.sh")], capture_output=True, text=True, timeout=30)
    assert drift.returncode == 1 and "expected 1 x" in drift.stderr
    ok = subprocess.run(
        [str(render), "--https-port", "8443", "--upstream", "10.0.0.5:8000", "--upstream", "10.0.0.6:8000"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr
    assert "listen 8443 ssl http2;" in ok.stdout and "listen [::]:8443 ssl http2;" in ok.stdout
    assert ok.stdout.count("max_fails=1 fail_timeout=10s;") == 2
    # Only the substituted values differ from the shipped file.
    removed = [line[1:] for line in difflib.ndiff(conf.splitlines(), ok.stdout.splitlines()) if line.startswith("- ")]
    port_named = {"return 301 https://$host$request_uri;", "proxy_set_header Host $host;"}  # off 443
    assert removed and all(
        ("443" in line) or ("127.0.0.1:8000" in line) or line.strip() in port_named for line in removed
    ), removed


# ---------------------------------------------------------------- the real kernel behind nginx
def _web_build(tmp: Path) -> Path:
    """The dashboard build when `make setup` made one (npm present), else a stand-in of the same shape."""
    built = ROOT / "mes_kernel" / "static" / "web"
    return built if (built / "index.html").exists() and (built / "assets").is_dir() else _fake_web(tmp)


@pytest.fixture(scope="module")
def kernel_site(tmp_path_factory):
    if not (PG_URL and REDIS_URL):
        pytest.skip("needs MES_TEST_DATABASE_URL and MES_TEST_REDIS_URL (the kernel under gunicorn)")
    from mes_kernel.migrate import upgrade
    from mes_kernel.settings import Settings

    tmp = tmp_path_factory.mktemp("kernel-nginx")
    name = f"mes_ng_{uuid.uuid4().hex[:10]}"
    _in_thread(lambda: _pg_exec(_admin_url(PG_URL, "postgres"), f'CREATE DATABASE "{name}"'))
    db_url = _admin_url(PG_URL, name)
    upgrade(Settings(database_url=db_url, _env_file=None))
    station_token, uid = asyncio.run(seed_kernel_db(db_url))
    node = start_node(tmp / "node", database_url=db_url, redis_url=REDIS_URL)
    nginx = None
    try:
        wait_ready(node)
        nginx = start_nginx(tmp, upstreams=[f"127.0.0.1:{node.port}"], web_root=_web_build(tmp))
        yield {
            "https": nginx.https,
            "admin": admin_token(uid),
            "station": {"Authorization": f"Bearer {station_token}"},
            "web": _web_build(tmp),
        }
    finally:
        if nginx:
            nginx.stop()
        node.stop()
        _in_thread(lambda: _pg_exec(_admin_url(PG_URL, "postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _route_families(site) -> list[tuple[str, str, str, dict | None, dict, int]]:
    """(family, method, path, json body, headers, expected status) for each route family."""
    admin, station = site["admin"], site["station"]
    record = {
        "idempotency_key": "nginx-route-0001",
        "lot_number": "LOT-NGX",
        "process_id": "ASSY-10",
        "worker_id": "W-1",
        "result": "pass",
    }
    asset = sorted(p.name for p in (site["web"] / "assets").iterdir() if p.suffix == ".js")[0]
    return [
        ("health", "GET", "/api/v1/health", None, {}, 200),
        ("health/*", "GET", "/api/v1/health/liveness", None, {}, 200),
        ("health/*", "GET", "/api/v1/health/readiness", None, {}, 200),
        ("health/*", "GET", "/api/v1/health/circuit-breakers", None, admin, 200),
        ("dashboard", "GET", "/", None, {}, 200),
        ("dashboard", "GET", "/lots/LOT-NGX", None, {}, 200),  # a client-side route
        ("dashboard", "GET", "/api/v1/dashboard/summary", None, admin, 200),
        ("dashboard", "GET", "/api/v1/plugins", None, admin, 200),
        ("lots", "GET", "/api/v1/lots", None, admin, 200),
        ("lots", "GET", "/api/v1/lots/LOT-NGX", None, admin, 200),
        ("alerts", "GET", "/api/v1/alerts", None, admin, 200),
        ("records", "POST", "/api/v1/process-records", record, admin, 201),
        ("records", "POST", "/api/v1/process-records", record, admin, 200),  # the same key again: a retry
        (
            "station heartbeat",
            "POST",
            "/api/v1/stations/heartbeat",
            {"agent_version": "1.0", "drivers": {}, "devices": {}, "outbox_depth": 0},
            station,
            200,
        ),
        ("static assets", "GET", f"/assets/{asset}", None, {}, 200),
        ("docs", "GET", "/docs", None, {}, 200),
        ("docs", "GET", "/redoc", None, {}, 200),
        ("docs", "GET", "/openapi.json", None, {}, 200),
        # What /docs and /redoc load: the kernel's, never the dashboard's index.html.
        ("docs", "GET", "/docs-assets/swagger-ui-bundle.js", None, {}, 200),
        ("docs", "GET", "/docs-assets/swagger-ui.css", None, {}, 200),
        ("docs", "GET", "/docs-assets/redoc.standalone.js", None, {}, 200),
        ("metrics", "GET", "/metrics", None, {}, 200),
    ]


GZIP_TYPES = ("application/json", "application/javascript", "text/javascript", "text/css", "text/html", "text/plain")


def test_every_route_family_answers_through_nginx_over_http2_with_headers_and_gzip(kernel_site):
    seen = []
    with httpx.Client(http2=True, verify=False, timeout=20, follow_redirects=False) as client:
        for family, method, path, body, headers, expected in _route_families(kernel_site):
            r = client.request(
                method, f"{kernel_site['https']}{path}", json=body, headers={**headers, "Accept-Encoding": "gzip"}
            )
            seen.append((family, path, r.status_code))
            assert not r.is_redirect, (path, r.status_code, r.headers.get("location"))
            assert r.status_code == expected, (family, path, r.status_code, r.text[:300])
            assert r.http_version == "HTTP/2", (path, r.http_version)
            _assert_security_headers(r)
            kind = r.headers.get("content-type", "").split(";")[0]
            if path.startswith("/docs-assets/"):
                assert kind in ("text/javascript", "application/javascript", "text/css"), (path, kind)
            # nginx's gzip_min_length is 1024. /metrics is left out: its type carries a parameter before the
            # charset ("text/plain; version=1.0.0; charset=utf-8"), which gzip_types does not match, and only
            # Prometheus inside the plant reads it.
            if kind in GZIP_TYPES and len(r.content) >= 1024 and path != "/metrics":
                assert r.headers.get("content-encoding") == "gzip", (path, kind, len(r.content))
    assert {family for family, _, _ in seen} >= {
        "health",
        "health/*",
        "dashboard",
        "lots",
        "alerts",
        "records",
        "station heartbeat",
        "static assets",
        "docs",
    }
