"""Stations: heartbeats, idempotent events, and offline device results joining the history."""

import uuid


async def test_heartbeat_is_stored_and_shown_in_health(client, station_headers, admin_headers):
    beat = {
        "agent_version": "1.0",
        "drivers": {"printer": {"name": "zpl_tcp", "loaded": True}},
        "devices": {},
        "outbox_depth": 3,
        "oldest_queued_age_seconds": 12.5,
    }
    r = await client.post("/api/v1/stations/heartbeat", json=beat, headers=station_headers)
    assert r.status_code == 200 and "server_time" in r.json()
    tree = (await client.get("/api/v1/health", headers=admin_headers)).json()
    st = tree["components"]["stations"]["checks"]["ST-01"]
    assert st["status"] == "UP" and st["details"]["outbox_depth"] == 3


async def test_people_cannot_send_heartbeats(client, worker_headers):
    r = await client.post("/api/v1/stations/heartbeat", json={"agent_version": "1"}, headers=worker_headers)
    assert r.status_code == 403


async def test_station_event_is_idempotent(client, station_headers):
    body = {"idempotency_key": uuid.uuid4().hex, "type": "scan", "payload": {"code": "SN-1"}}
    first = await client.post("/api/v1/stations/events", json=body, headers=station_headers)
    again = await client.post("/api/v1/stations/events", json=body, headers=station_headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"] and again.json()["status"] == "duplicate"
    other = await client.post(
        "/api/v1/stations/events", json={**body, "payload": {"code": "SN-2"}}, headers=station_headers
    )
    assert other.status_code == 409 and other.json()["detail"]["code"] == "IDEMPOTENCY_CONFLICT"


async def test_offline_print_result_joins_the_unit_history(client, station_headers, admin_headers, make_lot):
    lot = await make_lot(units=1)
    serial = lot["serial_numbers"][0]
    body = {
        "idempotency_key": uuid.uuid4().hex,
        "type": "device_result",
        "payload": {
            "action": "print",
            "role": "printer",
            "driver": "zpl_tcp",
            "driver_version": "1.0",
            "outcome": "printed",
            "worker": "kim",
            "serial_number": serial,
            "template": "unit_label",
        },
    }
    r = await client.post("/api/v1/stations/events", json=body, headers=station_headers)
    assert r.status_code == 201 and r.json()["traced"] is True
    history = (await client.get(f"/api/v1/units/{serial}/history", headers=admin_headers)).json()
    action = next(e for e in history["events"] if e["type"] == "device_action")["data"]
    assert action["action"] == "print" and action["outcome"] == "ok" and action["driver"] == "zpl_tcp"
    # kim is no user of this kernel: the station did it, and the name it gave is kept beside
    assert action["actor"] == "station:ST-01 (worker? kim)" and action["device"] == "ST-01:printer"


async def test_scans_and_device_results_name_the_worker_logged_in_at_the_station(
    client, station_headers, admin_headers, worker_headers, make_lot
):
    """A worker's scan at a station is the worker's (``user:<name>``, as logins match names); the
    history row still names the station."""
    lot = await make_lot(units=1)
    serial = lot["serial_numbers"][0]
    for kind, payload in (
        ("scan", {"code": serial, "source": "scanner", "worker": "WORKER"}),
        ("device_result", {"action": "print", "outcome": "printed", "worker": "worker", "serial_number": serial}),
        ("scan", {"code": serial, "source": "scanner"}),  # nobody logged in: the station's
    ):
        body = {"idempotency_key": uuid.uuid4().hex, "type": kind, "payload": payload}
        r = await client.post("/api/v1/stations/events", json=body, headers=station_headers)
        assert r.status_code == 201 and r.json()["traced"] is True, r.text
    history = (await client.get(f"/api/v1/units/{serial}/history", headers=admin_headers)).json()["events"]
    seen = sorted((e["type"], e["actor"], e["station"]) for e in history if e["type"] in ("scan", "device_action"))
    assert seen == [
        ("device_action", "user:worker", "ST-01"),
        ("scan", "station:ST-01", "ST-01"),
        ("scan", "user:worker", "ST-01"),
    ]


async def test_device_result_for_unknown_serial_keeps_the_event(client, station_headers):
    body = {
        "idempotency_key": uuid.uuid4().hex,
        "type": "device_result",
        "payload": {"action": "print", "outcome": "printed", "serial_number": "NOPE-1"},
    }
    r = await client.post("/api/v1/stations/events", json=body, headers=station_headers)
    assert r.status_code == 201 and r.json()["traced"] is False


async def test_silent_station_and_growing_backlog_raise_alerts_that_resolve(client, station_headers, kernel):
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select, update

    from mes_kernel.db.models import Alert, Station
    from mes_kernel.services.stations import watch_stations

    notifier = kernel.state["notifier"]
    for depth in (1, 5, 9, 20, 40):
        beat = {"agent_version": "1", "outbox_depth": depth}
        assert (await client.post("/api/v1/stations/heartbeat", json=beat, headers=station_headers)).status_code == 200
    await watch_stations(kernel, notifier)
    async with kernel.sessionmaker() as session:
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        await session.execute(update(Station).values(last_heartbeat_at=an_hour_ago))
        await session.commit()
    await watch_stations(kernel, notifier)

    async def open_alerts():
        async with kernel.sessionmaker() as session:
            rows = (await session.execute(select(Alert).where(Alert.resolved_at.is_(None)))).scalars().all()
        return {a.key for a in rows}

    assert await open_alerts() == {"station:ST-01:backlog", "station:ST-01:silent"}
    async with kernel.sessionmaker() as session:
        details = {a.key: a.detail for a in (await session.execute(select(Alert))).scalars()}
    # stable codes and the values the message names, for the dashboard to word (alerts.code.* in web/src/i18n)
    silent, backlog = details["station:ST-01:silent"], details["station:ST-01:backlog"]
    assert silent["code"] == "STATION_SILENT" and silent["station"] == "ST-01" and silent["silent_seconds"] >= 3600
    assert backlog == {
        "code": "STATION_BACKLOG",
        "station": "ST-01",
        "queued": 40,
        "recent_outbox_depths": [1, 5, 9, 20, 40],
    }
    await client.post(
        "/api/v1/stations/heartbeat", json={"agent_version": "1", "outbox_depth": 3}, headers=station_headers
    )
    await watch_stations(kernel, notifier)
    assert await open_alerts() == set()
