"""``GET /api/v1/stations/me/config``: a station's part of its line, secrets only for that station;
the heartbeat answer's ``config_version``; driver problems a station reports, shown in ``/health``."""

from __future__ import annotations

from mes_kernel.db.models import Station

API = "/api/v1"


async def _station_b(kernel) -> None:
    async with kernel.sessionmaker() as session:
        line_id = (await session.execute(Station.__table__.select().where(Station.code == "ST-01"))).first().line_id
        session.add(Station(code="ST-02", name="Station 2", line_id=line_id, heartbeat={}))
        await session.commit()


LINE = {
    "name": "Line A",
    "device_defaults": {"label_printer": {"timeout": 3.0}},
    "devices": [
        {"code": "PRN-1", "kind": "label_printer", "driver": "http_service", "station": "ST-01",
         "config": {"base_url": "http://127.0.0.1:9", "printer_id": "p1", "api_key": "own-secret"}},
        {"code": "PRN-2", "kind": "label_printer", "driver": "http_service", "station": "ST-02",
         "config": {"base_url": "http://127.0.0.1:9", "printer_id": "p2", "api_key": "other-secret"}},
        {"code": "UPL-LINE", "kind": "firmware_uploader", "driver": "simulator",
         "config": {"token": "line-secret"}},
    ],
}


async def test_a_station_gets_its_devices_with_its_own_secrets_only(client, kernel, admin_headers, station_headers):
    await _station_b(kernel)
    r = await client.put(f"{API}/lines/LINE-A", json=LINE, headers=admin_headers)
    assert r.status_code == 200, r.text
    version = r.json()["config_version"]
    r = await client.get(f"{API}/stations/me/config", headers=station_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["station"]["code"] == "ST-01" and body["line"] == "LINE-A" and body["config_version"] == version
    devices = {d["code"]: d for d in body["devices"]}
    assert set(devices) == {"PRN-1", "UPL-LINE"}  # never another station's device
    own = devices["PRN-1"]
    assert own["namespace"] == "mes.drivers.label_printer" and own["shared"] is False
    assert own["config"] == {"timeout": 3.0, "base_url": "http://127.0.0.1:9", "printer_id": "p1",
                             "api_key": "own-secret"}  # the line's defaults under the device's own
    assert devices["UPL-LINE"]["shared"] is True and devices["UPL-LINE"]["config"]["token"] == "***"
    assert "other-secret" not in r.text and "line-secret" not in r.text
    [driver] = body["drivers"]
    assert (driver["driver"], driver["distribution"]) == ("http_service", "mes-label-printer")
    assert driver["version"]
    assert body["label_templates"]["version"]

    beat = await client.post(f"{API}/stations/heartbeat", json={"agent_version": "t"}, headers=station_headers)
    assert beat.json()["config_version"] == version


async def test_people_have_no_station_configuration(client, admin_headers):
    r = await client.get(f"{API}/stations/me/config", headers=admin_headers)
    assert r.status_code == 403 and r.json()["detail"]["code"] == "NOT_A_STATION"


async def test_drivers_a_station_lacks_show_in_health(client, station_headers, admin_headers):
    problem = {"device": "PRN-1", "kind": "label_printer", "driver": "zpl_tcp", "problem": "wrong_version",
               "wanted": "0.2.0", "installed": "0.1.0"}
    r = await client.post(f"{API}/stations/heartbeat", json={"agent_version": "t", "driver_problems": [problem]},
                          headers=station_headers)
    assert r.status_code == 200, r.text
    health = (await client.get(f"{API}/health", headers=admin_headers)).json()
    node = health["components"]["stations"]["checks"]["ST-01"]
    assert node["status"] == "DEGRADED"
    assert "PRN-1: zpl_tcp wrong_version (wanted 0.2.0, installed 0.1.0)" in node["reason"]
    assert node["details"]["driver_problems"] == [problem]
