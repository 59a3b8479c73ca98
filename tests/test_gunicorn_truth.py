"""Under the real gunicorn config with 2 workers: rate limits shared through Redis, metrics that stay
true when a worker is killed and nobody opens /health (StationSilent fires on the live value), no
``server`` header, every line of the log JSON."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest
from deploy_kit import kernel_node

from mes_kernel.testing.fixtures import PG_URL, REDIS_URL, _in_thread, _pg_exec

ROOT = Path(__file__).resolve().parents[1]
SECRET = "gunicorn-truth-secret-key-0123456789abcdef"
WRITE_LIMIT = 10  # reads: 6 x this

pytestmark = [
    pytest.mark.skipif(not (PG_URL and REDIS_URL), reason="needs MES_TEST_DATABASE_URL and MES_TEST_REDIS_URL"),
    pytest.mark.slow,
]


def _workers(master: psutil.Process) -> list[psutil.Process]:
    return [p for p in master.children() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def gunicorn(tmp_path):
    extra = {"SECRET_KEY": SECRET, "RATE_LIMIT_PER_MINUTE": str(WRITE_LIMIT), "LOG_LEVEL": "INFO"}
    with kernel_node(tmp_path / "node", extra=extra) as (node, db_url):
        yield {"base": node.base, "proc": node.proc, "db_url": db_url, "log": node.log}


def _headers(subject: str, role: str) -> dict[str, str]:
    from mes_kernel.security import create_access_token

    token = create_access_token(subject=subject, role=role, uid=1, secret=SECRET, minutes=5)
    return {"Authorization": f"Bearer {token}"}


def _get(base: str, path: str, headers: dict | None = None) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=20) as c:  # a fresh connection: requests spread over workers
        return c.get(path, headers=headers or {})


def _age(metrics: str, station: str) -> list[float]:
    prefix = f'mes_station_heartbeat_age_seconds{{station="{station}"}} '
    return [float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix)]


def test_two_workers_share_limits_and_metrics_survive_a_killed_worker(gunicorn, tmp_path):
    base = gunicorn["base"]
    r = _get(base, "/api/v1/health/liveness")
    assert "server" not in r.headers and r.headers["x-content-type-options"] == "nosniff"

    # One person's budget is one budget, whichever worker answers.
    left = 60 - time.time() % 60
    if left < 10:
        time.sleep(left + 0.1)
    viewer = _headers(f"viewer-{uuid.uuid4().hex[:6]}", "viewer")
    statuses = [_get(base, "/api/v1/lots", viewer).status_code for _ in range(6 * WRITE_LIMIT + 3)]
    assert statuses == [200] * (6 * WRITE_LIMIT) + [429] * 3, statuses

    # A station that heartbeats, then goes silent while a worker dies; nobody opens /health.
    _in_thread(
        lambda: _pg_exec(
            gunicorn["db_url"],
            "INSERT INTO stations (code, name, heartbeat, last_heartbeat_at, created_at, updated_at) VALUES "
            "('ST-SILENT', 's', '{}', now() - interval '1 second', now(), now()), "
            "('ST-FRESH', 'f', '{}', now(), now(), now())",
        )
    )
    assert all(age < 30 for age in _age(_get(base, "/metrics").text, "ST-SILENT"))
    master = psutil.Process(gunicorn["proc"].pid)
    before = {p.pid for p in _workers(master)}
    assert len(before) == 2
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = {p.pid for p in _workers(master)}
        if len(now) == 2 and victim not in now:
            break
        time.sleep(0.2)
    else:
        pytest.fail("gunicorn did not replace the killed worker")
    _in_thread(
        lambda: _pg_exec(
            gunicorn["db_url"],
            "UPDATE stations SET last_heartbeat_at = now() - interval '135 seconds' WHERE code = 'ST-SILENT'",
            "UPDATE stations SET last_heartbeat_at = now() WHERE code = 'ST-FRESH'",
        )
    )
    scrapes = [_get(base, "/metrics").text for _ in range(8)]  # answered by both workers, the new one too
    silent = [_age(text, "ST-SILENT") for text in scrapes]
    assert all(len(ages) == 1 and 135 <= ages[0] < 200 for ages in silent), silent
    fresh = _age(scrapes[-1], "ST-FRESH")[0]

    # The alert rule, fed the live values as they would grow while the station stays silent.
    rules_test = tmp_path / "station_silent_test.yml"
    rules_test.write_text(
        json.dumps(
            {
                "rule_files": [str(ROOT / "deploy" / "prometheus" / "rules.yml")],
                "evaluation_interval": "15s",
                "tests": [
                    {
                        "interval": "15s",
                        "input_series": [
                            {
                                "series": 'mes_station_heartbeat_age_seconds{station="ST-SILENT"}',
                                "values": f"{silent[-1][0]:.0f}+15x12",
                            },
                            {
                                "series": 'mes_station_heartbeat_age_seconds{station="ST-FRESH"}',
                                "values": f"{fresh:.0f}x12",
                            },
                        ],
                        "alert_rule_test": [
                            {
                                "eval_time": "75s",
                                "alertname": "StationSilent",
                                "exp_alerts": [
                                    {
                                        "exp_labels": {"severity": "warning", "station": "ST-SILENT"},
                                        "exp_annotations": {
                                            "summary": "Station ST-SILENT sent no heartbeat for over 2 minutes"
                                        },
                                    }
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    )
    promtool = subprocess.run(["promtool", "test", "rules", str(rules_test)], capture_output=True, text=True)
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr

    gunicorn["proc"].terminate()
    gunicorn["proc"].wait(timeout=30)
    lines = [line for line in gunicorn["log"].read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON, gunicorn's own included
    assert any(r.get("logger") == "gunicorn.error" for r in records)
    access = [r for r in records if r.get("event") == "request"]
    assert any(
        r["route"] == "/api/v1/lots" and r["status"] == 429 and r["principal"].startswith("user:viewer-")
        for r in access
    )
    assert all(
        {"method", "route", "status", "duration_ms", "request_id", "principal", "client"} <= set(r) for r in access
    )
