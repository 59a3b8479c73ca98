"""The dashboard plugin through the kernel app (test kit): summary, alerts, panels, permissions."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from mes_kernel.cache import CONFIGURATION
from mes_kernel.db.base import utcnow
from mes_kernel.db.models import Alert

API = "/api/v1"


async def _record(
    client,
    headers,
    lot_number,
    *,
    result="pass",
    serial_number=None,
    defect_code=None,
    process_id="ASSY-10",
    recorded_at=None,
):
    body = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": lot_number,
        "process_id": process_id,
        "worker_id": "W-7",
        "serial_number": serial_number,
        "result": result,
        "defect_code": defect_code,
        "recorded_at": recorded_at.isoformat() if recorded_at else None,
    }
    answer = await client.post(f"{API}/process-records", json=body, headers=headers)
    assert answer.status_code == 201, answer.text


async def test_summary_shows_todays_records_yield_and_defects(client, make_lot, station_headers, viewer_headers):
    lot = await make_lot(units=2)
    first, second = lot["serial_numbers"]
    await _record(client, station_headers, lot["lot_number"], serial_number=first, result="fail", defect_code="SOLDER")
    await _record(client, station_headers, lot["lot_number"], serial_number=first)
    await _record(client, station_headers, lot["lot_number"], serial_number=second)

    answer = await client.get(f"{API}/dashboard/summary", headers=viewer_headers)
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    assert summary["lots"]["total"] == 1
    assert summary["records_today"] == {
        "total": 3,
        "pass": 2,
        "fail": 1,
        "first_attempts": 2,
        "first_pass": 1,
        "first_pass_yield": 0.5,
    }
    assert summary["top_defects"] == [{"defect_code": "SOLDER", "count": 1}]
    assert len(summary["throughput_per_hour"]) == 24
    assert summary["throughput_per_hour"][-1]["records"] == 3
    assert summary["stations"]["total"] == 1
    assert summary["alerts"] == {"open": 0, "open_by_severity": {}}


@pytest.fixture
def long_dashboard_cache(monkeypatch):
    """Answers reused for an hour (before the kernel reads the setting): whether the cached answer
    is reused must not hang on how fast a busy machine records between two reads (the default 5 s
    ran out once in CI)."""
    monkeypatch.setenv("MES_DASHBOARD_CACHE_SECONDS", "3600")


async def test_summary_is_reused_briefly_then_recomputed(
    long_dashboard_cache, client, kernel, make_lot, station_headers, viewer_headers
):
    lot = await make_lot()
    await _record(client, station_headers, lot["lot_number"])
    before = (await client.get(f"{API}/dashboard/summary", headers=viewer_headers)).json()
    await _record(client, station_headers, lot["lot_number"], result="fail", defect_code="SCRATCH")
    cached = (await client.get(f"{API}/dashboard/summary", headers=viewer_headers)).json()
    assert cached == before

    await kernel.cache.invalidate(CONFIGURATION)  # what a configuration change does
    fresh = (await client.get(f"{API}/dashboard/summary", headers=viewer_headers)).json()
    assert fresh["records_today"]["total"] == 2 and fresh["top_defects"][0]["defect_code"] == "SCRATCH"


async def test_every_role_reads_the_dashboard_anonymous_and_stations_do_not(
    client, admin_headers, manager_headers, worker_headers, viewer_headers, station_headers
):
    paths = [
        "/dashboard/summary",
        "/alerts",
        "/dashboard/kpi/yield",
        "/dashboard/kpi/throughput",
        "/dashboard/kpi/defects",
    ]
    for headers in (admin_headers, manager_headers, worker_headers, viewer_headers):
        for path in paths:
            answer = await client.get(API + path, headers=headers)
            assert answer.status_code == 200, (path, answer.text)
    for path in paths:
        assert (await client.get(API + path)).status_code == 401
        forbidden = await client.get(API + path, headers=station_headers)
        assert forbidden.status_code == 403
        assert forbidden.json()["detail"]["permission"] == "dashboard:read"


async def test_alerts_open_newest_first_resolved_on_request(client, kernel, viewer_headers):
    now = utcnow()
    async with kernel.sessionmaker() as session:
        session.add_all(
            [
                Alert(
                    key="breaker:label_printer:PRN-01",
                    severity="critical",
                    source="breakers",
                    message="label printer breaker open",
                    raised_at=now - timedelta(minutes=3),
                ),
                Alert(
                    key="station:ST-02:silent",
                    severity="warning",
                    source="stations",
                    message="ST-02 silent for 5 minutes",
                    raised_at=now - timedelta(minutes=1),
                ),
                Alert(
                    key="station:ST-03:silent",
                    severity="warning",
                    source="stations",
                    message="ST-03 silent",
                    raised_at=now - timedelta(hours=2),
                    resolved_at=now - timedelta(hours=1),
                ),
            ]
        )
        await session.commit()

    open_only = (await client.get(f"{API}/alerts", headers=viewer_headers)).json()
    assert [a["key"] for a in open_only["items"]] == ["station:ST-02:silent", "breaker:label_printer:PRN-01"]
    assert open_only["open"] == 2 and open_only["open_by_severity"] == {"critical": 1, "warning": 1}

    everything = (await client.get(f"{API}/alerts?include_resolved=true", headers=viewer_headers)).json()
    assert [a["open"] for a in everything["items"]] == [True, True, False]
    critical = (await client.get(f"{API}/alerts?severity=critical", headers=viewer_headers)).json()
    assert [a["severity"] for a in critical["items"]] == ["critical"]


async def test_panels_are_listed_and_each_endpoint_answers_what_its_options_name(client, viewer_headers):
    answer = await client.get(f"{API}/dashboard/panels", headers=viewer_headers)
    assert answer.status_code == 200
    ours = {p["id"]: p for p in answer.json() if p["plugin"] == "dashboard_kpi"}
    assert {p["kind"] for p in ours.values()} == {"stat", "timeseries", "bar", "table"}
    for panel in ours.values():
        data = await client.get(panel["endpoint"], headers=viewer_headers)
        assert data.status_code == 200, (panel["id"], data.text)
        key = panel["options"].get("items") or panel["options"]["value"]
        assert key in data.json(), (panel["id"], key)


async def test_unknown_time_zone_is_refused_with_a_code(client, viewer_headers):
    """The same code and field as every KPI route that takes ``tz``."""
    for path in ("dashboard/summary", "dashboard/kpi/yield", "dashboard/kpi/defects", "dashboard/kpi/throughput",
                 "kpi/lines/now", "kpi/yield", "kpi/pareto"):
        # "tz=" names no zone: not the plant's by default; the others are files of the zone
        # database that name no IANA zone (the host's own setting, tzdata's placeholder, copies)
        for tz in ("Mars/Olympus", "", "localtime", "Factory", "posixrules", "posix/Asia/Seoul", "right/UTC"):
            answer = await client.get(f"{API}/{path}?tz={tz}", headers=viewer_headers)
            assert answer.status_code == 422, (path, tz, answer.text)
            assert (answer.json()["detail"]["code"], answer.json()["detail"]["field"]) == ("INVALID_TIMEZONE", "tz")


@pytest.mark.parametrize("path", ["dashboard/summary", "dashboard/kpi/yield", "dashboard/kpi/defects", "kpi/lines/now"])
async def test_a_time_zone_name_too_long_for_a_file_name_is_422_not_500(client, admin_headers, path):
    """``ZoneInfo`` opens the name as a file: past 255 bytes it raises ``OSError``, not "not found"."""
    for tz in ("x" * 300, "Asia/" + "Seoul" * 60, "a/" * 3000):
        answer = await client.get(f"{API}/{path}", params={"tz": tz}, headers=admin_headers)
        assert answer.status_code == 422, (tz[:20], answer.text)
        assert answer.json()["detail"]["code"] == "INVALID_TIMEZONE"


async def test_plant_time_zone_moves_the_start_of_today(client, viewer_headers):
    answer = await client.get(f"{API}/dashboard/kpi/yield?tz=Asia/Seoul", headers=viewer_headers)
    assert answer.status_code == 200
    assert answer.json()["day_start"].endswith("T15:00:00+00:00")


async def test_today_is_the_kernels_today(client, kernel, make_lot, station_headers, viewer_headers):
    """"Today", the last 24 hours and a range's default end are the kernel's clock's
    (``Kernel.clock``, which station times are judged against), not the host's: a test or a
    replay that moves the clock moves the dashboard with it."""
    ahead = (utcnow() + timedelta(days=3)).replace(hour=10, minute=30, second=0, microsecond=0)
    kernel.clock = lambda: ahead
    lot = await make_lot()
    at = ahead - timedelta(minutes=5)  # the station's time, on the kernel's day
    await _record(client, station_headers, lot["lot_number"], result="fail", defect_code="SOLDER", recorded_at=at)
    answer = (await client.get(f"{API}/dashboard/kpi/yield", headers=viewer_headers)).json()
    assert answer["day_start"] == ahead.replace(hour=0, minute=0).isoformat()
    assert (answer["total"], answer["fail"]) == (1, 1)
    defects = (await client.get(f"{API}/dashboard/kpi/defects", headers=viewer_headers)).json()
    assert defects["items"] == [{"defect_code": "SOLDER", "count": 1}]
    points = (await client.get(f"{API}/dashboard/kpi/throughput", headers=viewer_headers)).json()["points"]
    assert points[-1]["records"] == 1


async def test_plugin_is_loaded_with_its_routes_and_panels(client, admin_headers):
    plugins = (await client.get(f"{API}/plugins", headers=admin_headers)).json()
    ours = next(
        p for p in (plugins if isinstance(plugins, list) else plugins["plugins"]) if p["name"] == "dashboard_kpi"
    )
    assert ours["state"] == "loaded"
    assert "dashboard_kpi.yield_today" in ours["panels"]
