"""Scanner health from real station heartbeats, and the plugin's breaker around lookups."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from mes_barcode_hid.health import check_scanners, scanner_entries, scanner_report
from mes_barcode_hid.routes import BREAKER

from mes_kernel.contracts import Status

HEARTBEAT = "/api/v1/stations/heartbeat"


def beat(devices: dict) -> dict:
    return {"agent_version": "0.1.0", "drivers": {}, "devices": devices, "outbox_depth": 0}


def test_scanner_entries_from_driver_status_or_station_summary():
    heartbeat = {
        "devices": {
            "scanner": {"status": "down", "detail": "open failed"},
            "printer": {"status": "up"},
            "gun2": {"kind": "barcode_scanner", "connected": True, "last_scan_at": "2026-11-26T05:00:00+00:00"},
        }
    }
    assert [role for role, _ in scanner_entries(heartbeat)] == ["scanner", "gun2"]
    now = datetime(2026, 11, 26, 5, 0, 30, tzinfo=UTC)
    down = scanner_report("ST-01", "scanner", heartbeat["devices"]["scanner"], now)
    up = scanner_report("ST-01", "gun2", heartbeat["devices"]["gun2"], now)
    assert (down["connected"], down["detail"]) == (False, "open failed")
    assert (up["connected"], up["last_scan_age_seconds"]) == (True, 30.0)
    assert scanner_entries({}) == [] and scanner_entries({"devices": "nonsense"}) == []


async def test_connected_scanner_is_up_with_age_of_last_scan(client, kernel, station_headers):
    last = (datetime.now(UTC) - timedelta(seconds=42)).isoformat()
    status = {"kind": "barcode_scanner", "driver": "serial", "connected": True, "last_scan_at": last}
    r = await client.post(HEARTBEAT, json=beat({"scanner": status}), headers=station_headers)
    assert r.status_code == 200, r.text
    result = await check_scanners(kernel)
    assert result.status == Status.UP
    (report,) = result.details["scanners"]
    assert report["station"] == "ST-01" and report["connected"] is True
    assert 41 <= report["last_scan_age_seconds"] < 120


async def test_disconnected_scanner_degrades_and_names_the_station(client, kernel, station_headers):
    status = {"status": "down", "detail": "open failed: ScannerNotFound: serial scanner port '/dev/ttyACM0'"}
    r = await client.post(HEARTBEAT, json=beat({"scanner": status}), headers=station_headers)
    assert r.status_code == 200, r.text
    result = await check_scanners(kernel)
    assert result.status == Status.DEGRADED
    assert "ST-01/scanner" in result.reason
    assert (result.reason_code, result.reason_params) == ("SCANNERS_DISCONNECTED", {"scanners": ["ST-01/scanner"]})
    assert "ttyACM0" in result.details["scanners"][0]["detail"]


async def test_health_endpoint_shows_the_check(client, station_headers, manager_headers):
    await client.post(HEARTBEAT, json=beat({"scanner": {"connected": False}}), headers=station_headers)
    r = await client.get("/api/v1/health", headers=manager_headers)
    assert "barcode_scanners" in r.text
    assert "DEGRADED" in json.dumps(r.json())


async def test_no_stations_is_up(client, kernel):
    result = await check_scanners(kernel)
    assert result.status == Status.UP and result.details["scanners"] == []


async def test_station_token_may_look_up(client, station_headers, make_lot):
    lot = await make_lot()
    r = await client.post("/api/v1/scans/lookup", json={"code": lot["lot_number"]}, headers=station_headers)
    assert r.status_code == 200, r.text
    assert r.json()["recorded"] is True


async def test_lookup_breaker_is_registered_and_unknown_codes_do_not_trip_it(client, kernel, worker_headers):
    assert BREAKER in kernel.breakers.configs
    for _ in range(10):
        r = await client.post("/api/v1/scans/lookup", json={"code": "SN-NOPE"}, headers=worker_headers)
        assert r.status_code == 404
    state = await kernel.breakers.state(BREAKER)
    assert state.state == "closed"


async def test_database_failures_open_the_lookup_breaker_with_retry_after(client, kernel, worker_headers):
    from sqlalchemy import text

    if kernel.engine.dialect.name != "sqlite":
        return
    async with kernel.engine.begin() as conn:  # a broken schema: every unit lookup fails in the database
        await conn.execute(text("ALTER TABLE units RENAME TO units_gone"))
    failures = kernel.breakers.config_for(BREAKER).failure_threshold
    for _ in range(failures):
        r = await client.post("/api/v1/scans/lookup", json={"code": "SN-123456"}, headers=worker_headers)
        assert r.status_code == 503 and "database" in r.json()["detail"]["message"]
    r = await client.post("/api/v1/scans/lookup", json={"code": "SN-123456"}, headers=worker_headers)
    assert r.status_code == 503
    assert r.json()["detail"]["code"] == "SERVICE_UNAVAILABLE" and int(r.headers["Retry-After"]) >= 1
    assert "scan_lookup" in r.json()["detail"]["message"]  # refused by the open breaker, not the database


async def test_only_stations_of_lines_enabling_the_plugin_are_covered(client, kernel, admin_headers):
    for line, plugins in (("LINE-A", ["barcode_hid"]), ("LINE-B", [])):
        r = await client.put(f"/api/v1/lines/{line}", json={"name": line, "plugins": plugins}, headers=admin_headers)
        assert r.status_code == 200, r.text
    for code, line in (("ST-A", "LINE-A"), ("ST-B", "LINE-B")):
        r = await client.post("/api/v1/stations", json={"code": code, "line": line}, headers=admin_headers)
        assert r.status_code == 201, r.text
        r = await client.post(f"/api/v1/stations/{code}/tokens", json={"name": "t"}, headers=admin_headers)
        token = {"Authorization": f"Bearer {r.json()['token']}"}
        r = await client.post(HEARTBEAT, json=beat({"scanner": {"connected": False}}), headers=token)
        assert r.status_code == 200, r.text

    result = await check_scanners(kernel)
    assert [r["station"] for r in result.details["scanners"]] == ["ST-A"]
    assert result.status == Status.DEGRADED and "ST-B" not in result.reason
