"""A configuration change shows on the dashboard's next request: a line's output step, a shift
calendar, a step's ideal cycle time, a station registered — on the worker that took the change
and, through Redis, on every other; while new records wait out ``MES_DASHBOARD_CACHE_SECONDS``
(here an hour, so that nothing below can pass by waiting)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mes_kernel.testing.helpers import register_lots_at

API = "/api/v1"
TODAY = datetime.now(UTC).date().isoformat()  # each test's own: see _today
SPAN = {"from": TODAY, "to": TODAY, "tz": "UTC"}
ALL_DAY = {"name": "All day", "start": "00:00", "end": "00:00", "days": list(range(7)), "planned_output": 240}


@pytest.fixture(autouse=True)
def _today():
    """Today as the test starts, not as the module was imported: a suite that ran past midnight asked
    for yesterday while the records went into today."""
    global TODAY, SPAN
    TODAY = datetime.now(UTC).date().isoformat()
    SPAN = {"from": TODAY, "to": TODAY, "tz": "UTC"}


@pytest.fixture(autouse=True)
def _cached_for_an_hour(monkeypatch):
    monkeypatch.setenv("MES_DASHBOARD_CACHE_SECONDS", "3600")
    monkeypatch.setenv("MES_DASHBOARD_TIMEZONE", "UTC")


@pytest.fixture
async def line(client, kernel, admin_headers):
    """LINE-A (station ST-A) through its configuration, steps ASSY-10 and PACK-30, LOT-A with A-0..A-3."""
    for pid, sequence in (("ASSY-10", 10), ("PACK-30", 30)):
        r = await client.post(f"{API}/processes", json={"id": pid, "sequence": sequence}, headers=admin_headers)
        assert r.status_code == 201, r.text
    r = await client.put(
        f"{API}/lines/LINE-A", json={"name": "Line A", "stations": [{"code": "ST-A"}]}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        f"{API}/lots", json={"lot_number": "LOT-A", "product": "NH-1", "line": "LINE-A"}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    r = await client.post(
        f"{API}/lots/LOT-A/units", json={"serial_numbers": [f"A-{i}" for i in range(4)]}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    await register_lots_at(kernel, datetime.now(UTC) - timedelta(days=1))


async def _passes(client, headers, serial: str) -> None:
    for pid in ("ASSY-10", "PACK-30"):
        body = {
            "idempotency_key": uuid.uuid4().hex,
            "lot_number": "LOT-A",
            "process_id": pid,
            "worker_id": "W-1",
            "station": "ST-A",
            "result": "pass",
            "serial_number": serial,
        }
        r = await client.post(f"{API}/process-records", json=body, headers=headers)
        assert r.status_code == 201, r.text


async def _get(client, headers, path: str, **params) -> dict:
    r = await client.get(f"{API}{path}", params=params, headers=headers)
    assert r.status_code == 200, (path, r.text)
    return r.json()


async def _output_step(client, headers, step: str) -> None:
    body = {"name": "Line A", "stations": [{"code": "ST-A"}], "output_step": step}
    r = await client.put(f"{API}/lines/LINE-A", json=body, headers=headers)
    assert r.status_code == 200, r.text


async def _output(client, headers) -> tuple[int, list, float]:
    body = await _get(client, headers, "/kpi/output", bucket="hour", **SPAN)
    return sum(i["good"] for i in body["items"]), body["output_steps"], sum(i["plan"] or 0 for i in body["items"])


async def test_a_configuration_change_shows_on_the_next_request_while_records_wait_for_the_cache(
    client, line, admin_headers, manager_headers, worker_headers
):
    await _passes(client, worker_headers, "A-0")
    last_step = [{"line": "LINE-A", "step": "PACK-30", "configured": False}]
    assert await _output(client, manager_headers) == (1, last_step, 0)
    stations = (await _get(client, manager_headers, "/dashboard/summary"))["stations"]["total"]
    oee = await _get(client, manager_headers, "/kpi/oee", **SPAN)
    await _passes(client, worker_headers, "A-1")
    assert (await _output(client, manager_headers))[0] == 1  # a record waits out the cache

    # The line's output step: the next answer counts there (and, computed anew, the new record too).
    await _output_step(client, admin_headers, "ASSY-10")
    good, steps, plan = await _output(client, manager_headers)
    assert (good, steps, plan) == (2, [{"line": "LINE-A", "step": "ASSY-10", "configured": True}], 0)

    # A shift calendar: its plan.
    r = await client.put(
        f"{API}/lines/LINE-A/shifts", json={"shifts": [ALL_DAY], "effective_from": TODAY}, headers=manager_headers
    )
    assert r.status_code == 200, r.text
    assert (await _output(client, manager_headers))[2] > 0  # planned hours up to now
    assert (await _get(client, manager_headers, "/kpi/oee", **SPAN))["availability"] != oee["availability"]

    # A step's ideal cycle time: OEE's performance.
    before = (await _get(client, manager_headers, "/kpi/oee", **SPAN))["performance"]
    r = await client.patch(f"{API}/processes/ASSY-10", json={"ideal_cycle_seconds": 30}, headers=manager_headers)
    assert r.status_code == 200, r.text
    after = (await _get(client, manager_headers, "/kpi/oee", **SPAN))["performance"]
    assert after["computed_from"] != before["computed_from"]
    assert [s["ideal_cycle_seconds"] for s in after["computed_from"]] == [30]

    # A station registered: the summary's stations.
    r = await client.post(f"{API}/stations", json={"code": "ST-A2", "line": "LINE-A"}, headers=admin_headers)
    assert r.status_code == 201, r.text
    assert (await _get(client, manager_headers, "/dashboard/summary"))["stations"]["total"] == stations + 1


@pytest.mark.postgres_only
async def test_a_change_through_one_worker_shows_on_the_next_request_to_another(
    client, line, settings, admin_headers, manager_headers, worker_headers
):
    """Two kernels on one database and Redis, as two gunicorn workers (or nodes) are."""
    from mes_kernel.app import create_app

    await _passes(client, worker_headers, "A-0")
    other = create_app(settings)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as worker_b:
            assert (await _output(worker_b, manager_headers))[1][0]["step"] == "PACK-30"  # cached on both levels
            assert (await _output(client, manager_headers))[1][0]["step"] == "PACK-30"
            await _output_step(client, admin_headers, "ASSY-10")
            assert (await _output(worker_b, manager_headers))[1][0]["step"] == "ASSY-10"

            r = await client.put(
                f"{API}/lines/LINE-A/shifts",
                json={"shifts": [ALL_DAY], "effective_from": TODAY},
                headers=manager_headers,
            )
            assert r.status_code == 200, r.text
            assert (await _output(worker_b, manager_headers))[2] > 0

            r = await worker_b.patch(
                f"{API}/processes/ASSY-10", json={"ideal_cycle_seconds": 30}, headers=manager_headers
            )
            assert r.status_code == 200, r.text
            performance = (await _get(client, manager_headers, "/kpi/oee", **SPAN))["performance"]
            assert [s["ideal_cycle_seconds"] for s in performance["computed_from"]] == [30]
