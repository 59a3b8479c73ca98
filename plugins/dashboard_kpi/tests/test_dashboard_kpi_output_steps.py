"""Each line counts its own output step (issue 13, N7): the step its configuration names
(``output_step``), else the highest-sequence step it recorded at; never the plant's last step for
every line. Output rows say what each number is (N2): first passes at the step (``good``) and items
first tried there (``first_tried``), not a "total" that ``good`` could exceed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from mes_kernel.testing.helpers import register_lots_at

API = "/api/v1"
NOW = HOUR = YESTERDAY = datetime.now(UTC)  # each test's own: see _now
# LINE-A's routing ends at PACK-30 (the plant's highest sequence); LINE-B's at TEST-20
STEPS = [("ASSY-10", 10), ("TEST-20", 20), ("PACK-30", 30)]


@pytest.fixture(autouse=True)
def _uncached(monkeypatch):
    monkeypatch.setenv("MES_DASHBOARD_CACHE_SECONDS", "0")


@pytest.fixture(autouse=True)
def _now():
    """Now as the test starts, not as the module was imported: a suite that ran past midnight asked
    for "today" (``/kpi/lines/now``) while the records stood at yesterday's import time."""
    global NOW, HOUR, YESTERDAY
    NOW = datetime.now(UTC)
    HOUR = NOW.replace(minute=0, second=0, microsecond=0)
    YESTERDAY = HOUR - timedelta(days=1)


@pytest.fixture
async def plant(client, kernel, admin_headers):
    """Two lines set up through their configuration (a station each), three steps, a LOT per line
    with units A-0..A-3 and B-0..B-3."""
    for pid, sequence in STEPS:
        r = await client.post(f"{API}/processes", json={"id": pid, "sequence": sequence}, headers=admin_headers)
        assert r.status_code == 201, r.text
    for code in ("LINE-A", "LINE-B"):
        body = {"name": code, "stations": [{"code": f"ST-{code[-1]}"}]}
        r = await client.put(f"{API}/lines/{code}", json=body, headers=admin_headers)
        assert r.status_code == 200, r.text
        r = await client.post(
            f"{API}/lots",
            json={"lot_number": f"LOT-{code[-1]}", "product": "NH-1", "line": code},
            headers=admin_headers,
        )
        assert r.status_code == 201, r.text
        serials = [f"{code[-1]}-{i}" for i in range(4)]
        r = await client.post(
            f"{API}/lots/LOT-{code[-1]}/units", json={"serial_numbers": serials}, headers=admin_headers
        )
        assert r.status_code == 201, r.text
    # registered before the records' station times (up to the station-time window back)
    await register_lots_at(kernel, datetime.now(UTC) - timedelta(days=40))


async def _record(client, headers, line: str, process_id: str, serial: str, at: datetime, result: str = "pass"):
    body = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": f"LOT-{line[-1]}",
        "process_id": process_id,
        "worker_id": "W-1",
        "station": f"ST-{line[-1]}",
        "result": result,
        "serial_number": serial,
        "defect_code": "X" if result == "fail" else None,
        "recorded_at": at.isoformat(),
    }
    r = await client.post(f"{API}/process-records", json=body, headers=headers)
    assert r.status_code == 201, r.text


async def _made(client, headers, *, line: str | None = None, bucket: str = "day") -> tuple[int, int, list]:
    params = {"from": YESTERDAY.isoformat(), "to": (HOUR + timedelta(hours=1)).isoformat(), "bucket": bucket}
    r = await client.get(f"{API}/kpi/output", params={**params, **({"line": line} if line else {})}, headers=headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert all("total" not in i for i in items)
    return sum(i["good"] for i in items), sum(i["first_tried"] for i in items), r.json()["output_steps"]


async def _lines_now(client, headers) -> dict[str, tuple]:
    r = await client.get(f"{API}/kpi/lines/now", params={"tz": "UTC"}, headers=headers)
    assert r.status_code == 200, r.text
    return {i["line"]: (i["output"], i["output_step"]) for i in r.json()["items"]}


async def test_two_lines_whose_routings_end_at_different_steps_both_show_their_output(
    client, plant, worker_headers, manager_headers
):
    # LINE-A: three units through ASSY-10 and PACK-30; LINE-B: two through ASSY-10 and TEST-20, all now
    for i in range(3):
        for pid in ("ASSY-10", "PACK-30"):
            await _record(client, worker_headers, "LINE-A", pid, f"A-{i}", NOW)
    for i in range(2):
        for pid in ("ASSY-10", "TEST-20"):
            await _record(client, worker_headers, "LINE-B", pid, f"B-{i}", NOW)
    assert (await _made(client, manager_headers, line="LINE-A"))[0] == 3
    assert (await _made(client, manager_headers, line="LINE-B"))[0] == 2  # the plant's last step: 0
    good, first_tried, steps = await _made(client, manager_headers)
    assert (good, first_tried) == (5, 5)  # each line at its own step, summed
    assert steps == [
        {"line": "LINE-A", "step": "PACK-30", "configured": False},
        {"line": "LINE-B", "step": "TEST-20", "configured": False},
    ]
    assert (await _made(client, manager_headers, bucket="week"))[0] == 5  # the executive view's weeks
    assert await _lines_now(client, manager_headers) == {"LINE-A": (3, "PACK-30"), "LINE-B": (2, "TEST-20")}


async def test_the_default_step_looks_back_before_a_short_range(client, plant, worker_headers, manager_headers):
    """A line's last step had records yesterday; this morning its units are only at assembly so
    far: this morning's output is 0 at its last step, not the assemblies counted as output."""
    await _record(client, worker_headers, "LINE-B", "TEST-20", "B-0", YESTERDAY)
    for i in range(1, 4):
        await _record(client, worker_headers, "LINE-B", "ASSY-10", f"B-{i}", NOW)
    r = await client.get(
        f"{API}/kpi/output",
        params={"from": HOUR.isoformat(), "to": (HOUR + timedelta(hours=1)).isoformat(), "line": "LINE-B"},
        headers=manager_headers,
    )
    assert r.status_code == 200, r.text
    assert [i["good"] for i in r.json()["items"]] == [0]
    assert r.json()["output_steps"] == [{"line": "LINE-B", "step": "TEST-20", "configured": False}]


async def test_a_line_quiet_before_the_ranges_end_takes_its_highest_step_in_the_range(
    client, plant, worker_headers, manager_headers
):
    """A line that recorded nothing in the week before the range's end (stopped since) still shows
    what it made in the range: at the highest step it recorded at there."""
    then = HOUR - timedelta(days=15)
    for i in range(2):
        for pid in ("ASSY-10", "TEST-20"):
            await _record(client, worker_headers, "LINE-B", pid, f"B-{i}", then)
    await _record(client, worker_headers, "LINE-B", "ASSY-10", "B-2", then)
    params = {"from": (then - timedelta(days=5)).isoformat(), "to": (then + timedelta(days=10)).isoformat()}
    r = await client.get(f"{API}/kpi/output", params={**params, "line": "LINE-B"}, headers=manager_headers)
    assert r.status_code == 200, r.text
    assert sum(i["good"] for i in r.json()["items"]) == 2
    assert r.json()["output_steps"] == [{"line": "LINE-B", "step": "TEST-20", "configured": False}]


async def test_the_configured_output_step_wins_over_the_default(
    client, plant, worker_headers, manager_headers, admin_headers
):
    for i in range(3):
        await _record(client, worker_headers, "LINE-A", "ASSY-10", f"A-{i}", NOW)
    await _record(client, worker_headers, "LINE-A", "PACK-30", "A-0", NOW)
    assert (await _made(client, manager_headers, line="LINE-A"))[0] == 1  # default: PACK-30
    r = await client.put(
        f"{API}/lines/LINE-A", json={"name": "LINE-A", "output_step": "ASSY-10"}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["output_step"] == "ASSY-10"
    assert (await client.get(f"{API}/lines/LINE-A", headers=admin_headers)).json()["output_step"] == "ASSY-10"
    good, _, steps = await _made(client, manager_headers, line="LINE-A")
    assert (good, steps) == (3, [{"line": "LINE-A", "step": "ASSY-10", "configured": True}])
    assert (await _lines_now(client, manager_headers))["LINE-A"] == (3, "ASSY-10")
    # a configured step the line has no records at yet: named, and nothing made there
    r = await client.put(
        f"{API}/lines/LINE-B", json={"name": "LINE-B", "output_step": "TEST-20"}, headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert (await _lines_now(client, manager_headers))["LINE-B"] == (0, "TEST-20")
    # left out again: back to the default
    r = await client.put(f"{API}/lines/LINE-A", json={"name": "LINE-A"}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["output_step"] is None, r.text
    assert (await _made(client, manager_headers, line="LINE-A"))[0] == 1


@pytest.mark.parametrize("step", ["NO-SUCH-STEP", "", 30])
async def test_an_unknown_output_step_is_refused_and_nothing_is_written(client, plant, admin_headers, step):
    body = {"name": "Renamed", "output_step": step}
    r = await client.put(f"{API}/lines/LINE-A", json=body, headers=admin_headers)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail["code"] == "INVALID_LINE_CONFIG"
    assert [e["loc"] for e in detail["errors"]] == [["output_step"]]
    line = (await client.get(f"{API}/lines/LINE-A", headers=admin_headers)).json()
    assert (line["name"], line["output_step"]) == ("LINE-A", None)
    r = await client.post(f"{API}/lines/validate", json={"code": "LINE-A", **body}, headers=admin_headers)
    assert r.json()["valid"] is False and r.json()["errors"][0]["loc"] == ["output_step"]
    if step == "NO-SUCH-STEP":
        assert "ASSY-10" in detail["errors"][0]["msg"]  # the known steps are named


async def test_output_rows_never_read_as_more_than_made(client, plant, worker_headers, manager_headers):
    """N2: a unit first tried at the output step yesterday (failed) and passing after rework today
    is today's output; today it was not first tried. The row says so — ``good`` 1, ``first_tried``
    0 — instead of "1 good of 0 total"."""
    await _record(client, worker_headers, "LINE-A", "PACK-30", "A-0", YESTERDAY, result="fail")
    await _record(client, worker_headers, "LINE-A", "PACK-30", "A-0", NOW)
    r = await client.get(
        f"{API}/kpi/output",
        params={"from": YESTERDAY.isoformat(), "to": (HOUR + timedelta(hours=1)).isoformat(), "bucket": "hour"},
        headers=manager_headers,
    )
    items = {i["start"]: i for i in r.json()["items"]}
    assert (items[YESTERDAY.isoformat()]["good"], items[YESTERDAY.isoformat()]["first_tried"]) == (0, 1)
    assert (items[HOUR.isoformat()]["good"], items[HOUR.isoformat()]["first_tried"]) == (1, 0)
