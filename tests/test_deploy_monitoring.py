"""Monitoring on a real Prometheus: the shipped prometheus.yml (rendered by deploy/prometheus/render.sh)
and rules.yml scrape a real kernel under gunicorn and a real node-exporter; every Grafana dashboard
query evaluates and returns data, and the breaker alert fires from the kernel's own series.

Grafana itself is not installable from the registries this project uses (Debian has no grafana
package), so the dashboard is checked here: its structure, and each query against real series.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid

import httpx
import pytest
from deploy_kit import DEPLOY, admin_token, free_port, seed_kernel_db, start_node, wait_ready

from mes_kernel.testing.fixtures import PG_URL, REDIS_URL, _admin_url, _in_thread, _pg_exec

PROMETHEUS = shutil.which("prometheus")
NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")

pytestmark = [
    pytest.mark.skipif(not (PG_URL and REDIS_URL), reason="needs MES_TEST_DATABASE_URL and MES_TEST_REDIS_URL"),
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package prometheus)"),
    pytest.mark.skipif(NODE_EXPORTER is None, reason="node-exporter not installed (prometheus-node-exporter)"),
]

DASHBOARD = json.loads((DEPLOY / "grafana" / "dashboard.json").read_text())


def _wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited")
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer within {timeout}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def monitored(tmp_path_factory, third_party_dir):
    tmp = tmp_path_factory.mktemp("monitoring")
    name = f"mes_mon_{uuid.uuid4().hex[:10]}"
    _in_thread(lambda: _pg_exec(_admin_url(PG_URL, "postgres"), f'CREATE DATABASE "{name}"'))
    db_url = _admin_url(PG_URL, name)
    from mes_kernel.migrate import upgrade
    from mes_kernel.settings import Settings

    upgrade(Settings(database_url=db_url, _env_file=None))
    station_token, uid = asyncio.run(seed_kernel_db(db_url))
    # The sample third-party plugin gives a breaker the test can open (GET /sample/reading?fail=true).
    node = start_node(
        tmp / "node",
        database_url=db_url,
        redis_url=REDIS_URL,
        extra={"PYTHONPATH": str(third_party_dir), "SAMPLE_METER_RECOVERY_SECONDS": "600"},
    )
    procs: list[subprocess.Popen] = []
    try:
        wait_ready(node)
        exporter_port, prom_port = free_port(), free_port()
        exporter = subprocess.Popen(
            [
                NODE_EXPORTER,
                f"--web.listen-address=127.0.0.1:{exporter_port}",
                "--collector.disable-defaults",
                "--collector.cpu",
                "--collector.meminfo",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(exporter)
        _wait_http(f"http://127.0.0.1:{exporter_port}/metrics", exporter, "node-exporter")

        config = tmp / "prometheus"
        config.mkdir()
        rendered = subprocess.run(
            [
                str(DEPLOY / "prometheus" / "render.sh"),
                "--kernel",
                f"127.0.0.1:{node.port}",
                "--node-exporter",
                f"127.0.0.1:{exporter_port}",
                "--alertmanager",
                f"127.0.0.1:{free_port()}",
                "--prometheus",
                f"127.0.0.1:{prom_port}",
                "--scrape-interval",
                "1s",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        (config / "prometheus.yml").write_text(rendered.stdout)
        shutil.copy(DEPLOY / "prometheus" / "rules.yml", config / "rules.yml")
        prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "prometheus.log", "wb"),
        )  # noqa: SIM115
        procs.append(prometheus)
        _wait_http(f"http://127.0.0.1:{prom_port}/-/ready", prometheus, "prometheus")

        # Traffic the panels describe: requests (a 404 too), a heartbeat, an opened breaker.
        admin = admin_token(uid)
        with httpx.Client(base_url=node.base, timeout=10) as http:
            for _ in range(20):
                http.get("/api/v1/lots", headers=admin)
            http.get("/api/v1/lots/NO-SUCH-LOT", headers=admin)
            http.post(
                "/api/v1/stations/heartbeat",
                headers={"Authorization": f"Bearer {station_token}"},
                json={"agent_version": "1.0", "drivers": {}, "devices": {}, "outbox_depth": 0},
            )
            for _ in range(2):
                http.get("/api/v1/sample/reading?fail=true", headers=admin)
            http.get("/api/v1/health", headers=admin)  # computes the stations' heartbeat ages
        yield {"prometheus": f"http://127.0.0.1:{prom_port}", "node": node, "admin": admin}
    finally:
        for proc in reversed(procs):
            _stop(proc)
        node.stop()
        _in_thread(lambda: _pg_exec(_admin_url(PG_URL, "postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _query(base: str, expr: str) -> dict:
    r = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]


def test_dashboard_structure_is_what_grafana_loads():
    assert DASHBOARD["uid"] == "neurohub-mes" and isinstance(DASHBOARD["schemaVersion"], int)
    assert DASHBOARD["templating"] == {"list": []} or all("name" in v for v in DASHBOARD["templating"]["list"])
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in DASHBOARD["panels"]:
        assert panel["type"] in {"stat", "timeseries", "table", "bargauge", "gauge"}, panel["type"]
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= grid.keys() and 0 <= grid["x"] and grid["x"] + grid["w"] <= 24
        assert panel["targets"] and all(t["expr"].strip() and t.get("refId") for t in panel["targets"])
        assert panel.get("datasource", {}).get("type", "prometheus") == "prometheus"


def test_every_dashboard_query_returns_data_from_the_real_series(monitored):
    base = monitored["prometheus"]
    targets = [(panel["title"], t["expr"]) for panel in DASHBOARD["panels"] for t in panel["targets"]]
    deadline = time.monotonic() + 90  # a few scrapes: rate() needs two samples in its window
    pending = dict(targets)
    while pending and time.monotonic() < deadline:
        for title, expr in list(pending.items()):
            if _query(base, expr)["result"]:
                del pending[title]
        time.sleep(1)
    assert not pending, f"panels with no data from the kernel's / node-exporter's series: {pending}"


def test_breaker_alert_fires_from_the_kernels_own_series(monitored):
    base = monitored["prometheus"]
    deadline = time.monotonic() + 90
    firing = []
    while time.monotonic() < deadline:
        alerts = httpx.get(f"{base}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
        firing = [a for a in alerts if a["labels"]["alertname"] == "CircuitBreakerOpen" and a["state"] == "firing"]
        if firing:
            break
        time.sleep(1)
    assert firing and firing[0]["labels"]["breaker"] == "sample_meter:M-1", firing
    # The spec's other alerts are loaded and evaluate without error against the same series.
    rules = httpx.get(f"{base}/api/v1/rules", timeout=10).json()["data"]["groups"]
    names = {r["name"]: r for g in rules for r in g["rules"]}
    assert {"HostCpuHigh", "HostMemoryHigh", "ApiLatencyP95High", "ApiErrorRateHigh", "StationSilent"} <= names.keys()
    assert all(r["health"] in ("ok", "unknown") for r in names.values()), {
        n: r.get("lastError") for n, r in names.items()
    }
