"""Two kernel nodes (two real gunicorn instances, 2 workers each) sharing PostgreSQL and Redis tell
one truth about lines and plugins: `mes line apply` reaches both, a plugin disabled through one node
is refused by the other within 2 s, a breaker override is effective on every worker of both."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from mes_kernel.testing.fixtures import PG_URL, REDIS_URL, _admin_url, _in_thread, _pg_exec

ROOT = Path(__file__).resolve().parents[1]
SECRET = "nodes-test-secret-key-0123456789abcdef"
WITHIN = 2.0  # seconds: the promise for every worker of every node

pytestmark = pytest.mark.skipif(not (PG_URL and REDIS_URL), reason="needs MES_TEST_DATABASE_URL and MES_TEST_REDIS_URL")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_node(env: dict[str, str], tmp_path: Path, label: str) -> tuple[str, subprocess.Popen]:
    port = _free_port()
    (tmp_path / f"prom-{label}").mkdir()
    node_env = {
        **env,
        "BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / f"prom-{label}"),
        "FILES_DIR": str(tmp_path / f"files-{label}"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py")],
        cwd=tmp_path,
        env=node_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return f"http://127.0.0.1:{port}", proc


def _wait_ready(base: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/api/v1/health/readiness", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited: {proc.stdout.read()}")
        time.sleep(0.3)
    pytest.fail(f"gunicorn at {base} did not become ready")


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        output, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    return output


@pytest.fixture
def cluster(third_party_dir, tmp_path):
    """Nodes A and B on one database and one Redis namespace, and the environment `mes` needs."""
    from mes_kernel.migrate import upgrade
    from mes_kernel.settings import Settings

    name = f"mes_nodes_{uuid.uuid4().hex[:10]}"
    _in_thread(lambda: _pg_exec(_admin_url(PG_URL, "postgres"), f'CREATE DATABASE "{name}"'))
    db_url = _admin_url(PG_URL, name)
    upgrade(Settings(database_url=db_url, _env_file=None))
    env = {
        **os.environ,
        "PYTHONPATH": str(third_party_dir),
        "DATABASE_URL": db_url,
        "REDIS_URL": REDIS_URL,
        "REDIS_NAMESPACE": f"nd{uuid.uuid4().hex[:8]}",
        "SECRET_KEY": SECRET,
        "ENVIRONMENT": "production",
        "WORKERS": "2",
        "RATE_LIMIT_PER_MINUTE": "100000",
        "STATION_RATE_LIMIT_PER_MINUTE": "100000",
        "LOG_LEVEL": "WARNING",
        "SAMPLE_METER_RECOVERY_SECONDS": "120",
    }
    with ExitStack() as stack:
        nodes = {}
        for label in ("a", "b"):
            base, proc = _start_node(env, tmp_path, label)
            stack.callback(lambda p=proc: print(_stop(p)[-4000:]))
            nodes[label] = (base, proc)
        for base, proc in nodes.values():
            _wait_ready(base, proc)
        yield {"a": nodes["a"][0], "b": nodes["b"][0], "env": env, "tmp": tmp_path}
    _in_thread(lambda: _pg_exec(_admin_url(PG_URL, "postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _admin() -> dict[str, str]:
    from mes_kernel.security import create_access_token

    return {
        "Authorization": f"Bearer {create_access_token(subject='ops', role='admin', uid=1, secret=SECRET, minutes=10)}"
    }


def _call(base: str, method: str, path: str, headers: dict[str, str], **kw) -> httpx.Response:
    # A fresh connection each time, so each node's accept queue spreads requests over its workers.
    with httpx.Client(base_url=base, headers=headers, timeout=10) as c:
        return c.request(method, path, **kw)


def _mes_line_apply(cluster, text: str) -> None:
    path = cluster["tmp"] / f"line-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(text)
    env = {**cluster["env"], "FILES_DIR": str(cluster["tmp"] / "files-cli")}
    out = subprocess.run(
        [sys.executable, "-m", "mes_kernel.cli", "line", "apply", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _until_every_worker(cluster, what: str, request, accept, *, within: float = WITHIN, streak: int = 16) -> float:
    """Poll both nodes until ``streak`` answers in a row from each satisfy ``accept`` — with fresh
    connections, so both workers of each node answer — failing if that takes longer than ``within``."""
    started = time.monotonic()
    for node in ("a", "b"):
        good = 0
        while good < streak:
            response = request(cluster[node])
            good = good + 1 if accept(response) else 0
            if time.monotonic() - started > within and good == 0:
                pytest.fail(
                    f"{what}: node {node} still answers {response.status_code} {response.text[:300]} after {within}s"
                )
    return time.monotonic() - started


def test_lines_and_plugin_switches_reach_every_worker_of_both_nodes(cluster):
    admin = _admin()
    a, b = cluster["a"], cluster["b"]
    _mes_line_apply(cluster, '[line]\ncode = "LINE-G"\n\n[plugins]\nenabled = ["label_printer"]\n')
    assert _call(a, "POST", "/api/v1/stations", admin, json={"code": "ST-G", "line": "LINE-G"}).status_code == 201
    token = _call(b, "POST", "/api/v1/stations/ST-G/tokens", admin, json={"name": "nodes"}).json()["token"]
    station = {"Authorization": f"Bearer {token}"}

    def read(base):
        return _call(base, "GET", "/api/v1/sample/reading", station)

    def code(response):
        return response.json().get("detail", {}).get("code") if response.status_code >= 400 else None

    _until_every_worker(
        cluster,
        "LINE-G does not enable sample_meter",
        read,
        lambda r: r.status_code == 403 and code(r) == "PLUGIN_NOT_ENABLED",
    )
    detail = read(b).json()["detail"]
    assert (detail["plugin"], detail["line"]) == ("sample_meter", "LINE-G")

    # `mes line apply` (another process) enables it, with a breaker override: both nodes follow
    _mes_line_apply(
        cluster,
        '[line]\ncode = "LINE-G"\n\n[plugins]\nenabled = ["sample_meter"]\n\n'
        "[breakers.sample_meter]\nfailure_threshold = 3\nrecovery_timeout = 90\n",
    )
    _until_every_worker(cluster, "mes line apply enabling sample_meter", read, lambda r: r.status_code == 200)
    pids = {node: {read(cluster[node]).json()["pid"] for _ in range(30)} for node in ("a", "b")}
    assert all(len(p) == 2 for p in pids.values()), f"expected both workers of each node to serve: {pids}"

    # a plugin disabled through node A is refused by every worker of node B within 2 s
    assert _call(a, "POST", "/api/v1/plugins/sample_meter/disable", admin).status_code == 200
    _until_every_worker(
        cluster,
        "sample_meter disabled through node A",
        read,
        lambda r: r.status_code == 403 and code(r) == "PLUGIN_DISABLED",
    )
    assert _call(b, "POST", "/api/v1/plugins/sample_meter/enable", admin).status_code == 200
    _until_every_worker(cluster, "sample_meter enabled again through node B", read, lambda r: r.status_code == 200)

    # the line's breaker numbers (3 failures, 90 s) hold on every worker of both nodes
    failures = [_call(node, "GET", "/api/v1/sample/reading?fail=true", station).status_code for node in (a, b, a)]
    assert failures == [500, 500, 500]  # the plugin's default (2) would have refused the third
    refusals = [read(node) for node in (a, b) for _ in range(20)]
    assert {r.status_code for r in refusals} == {503}
    assert all(80 <= int(r.headers["retry-after"]) <= 90 for r in refusals), [
        r.headers["retry-after"] for r in refusals
    ]
    views = {
        str(_call(node, "GET", "/api/v1/health/circuit-breakers", admin).json()["sample_meter:M-1"])
        for node in (a, b)
        for _ in range(8)
    }
    assert len(views) == 1, views  # the same answer from every worker of both nodes
    view = _call(a, "GET", "/api/v1/health/circuit-breakers", admin).json()["sample_meter:M-1"]
    assert {k: view[k] for k in ("state", "failure_threshold", "recovery_timeout", "line", "config_version")} == {
        "state": "open",
        "failure_threshold": 3,
        "recovery_timeout": 90.0,
        "line": "LINE-G",
        "config_version": 2,
    }
