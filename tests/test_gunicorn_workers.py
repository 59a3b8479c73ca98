"""Behind several gunicorn workers the kernel tells one truth: shared breakers, summed metrics.

Starts the real deploy/gunicorn.conf.py with 2 uvicorn workers on PostgreSQL + Redis, with the
sample third-party plugin installed, and talks to it over TCP with fresh connections.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from deploy_kit import kernel_node

from mes_kernel.testing.fixtures import PG_URL, REDIS_URL

ROOT = Path(__file__).resolve().parents[1]
SECRET = "gunicorn-test-secret-key-0123456789abcdef"

pytestmark = pytest.mark.skipif(not (PG_URL and REDIS_URL), reason="needs MES_TEST_DATABASE_URL and MES_TEST_REDIS_URL")


@pytest.fixture
def gunicorn_server(third_party_dir, tmp_path):
    extra = {
        "PYTHONPATH": str(third_party_dir),
        "SECRET_KEY": SECRET,
        "SAMPLE_METER_RECOVERY_SECONDS": "120",  # longer than the test: no half-open trial sneaks in
    }
    with kernel_node(tmp_path / "node", extra=extra) as (node, _db_url):
        yield node.base


def _token() -> dict[str, str]:
    from mes_kernel.security import create_access_token

    token = create_access_token(subject="ops", role="admin", uid=1, secret=SECRET, minutes=5)
    return {"Authorization": f"Bearer {token}"}


def _get(base: str, path: str) -> httpx.Response:
    # A fresh connection each time, so the kernel's accept queue spreads requests over workers.
    with httpx.Client(base_url=base, headers=_token(), timeout=10) as c:
        return c.get(path)


def test_one_worker_opening_a_breaker_makes_every_worker_refuse(gunicorn_server):
    base = gunicorn_server
    pids = {_get(base, "/api/v1/sample/reading").json()["pid"] for _ in range(40)}
    assert len(pids) == 2, f"expected both workers to serve, saw {pids}"

    failures = [_get(base, "/api/v1/sample/reading?fail=true").status_code for _ in range(2)]
    assert failures == [500, 500]
    refusals = [_get(base, "/api/v1/sample/reading") for _ in range(30)]
    assert {r.status_code for r in refusals} == {503}
    assert all(r.json()["detail"]["code"] == "SERVICE_UNAVAILABLE" and "retry-after" in r.headers for r in refusals)
    views = {str(_get(base, "/api/v1/health/circuit-breakers").json()["sample_meter:M-1"]) for _ in range(10)}
    assert len(views) == 1 and "'state': 'open'" in views.pop()  # the same answer whichever worker replies

    metrics = _get(base, "/metrics").text
    count = re.search(r'http_requests_total\{method="GET",route="/api/v1/sample/reading",status="503"\} (\S+)',
                      metrics)
    assert count and float(count.group(1)) == 30.0, metrics[:2000]  # summed over both workers
    assert 'mes_breaker_state{breaker="sample_meter:M-1"} 2.0' in metrics


def test_readiness_and_health_answer_under_gunicorn(gunicorn_server):
    assert _get(gunicorn_server, "/api/v1/health/readiness").json()["status"] == "ready"
    health = _get(gunicorn_server, "/api/v1/health").json()
    assert health["components"]["kernel"]["checks"]["redis"]["details"]["configured"] is True


