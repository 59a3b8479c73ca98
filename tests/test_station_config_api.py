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


async def test_a_station_gets_its_own_and_its_lines_devices_never_another_stations(
    client, kernel, admin_headers, station_headers
):
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
    # a shared device of the line: every station of the line may act on it, so it gets what it needs to
    assert devices["UPL-LINE"]["shared"] is True and devices["UPL-LINE"]["config"] == {"token": "line-secret"}
    assert "other-secret" not in r.text  # never another station's secrets
    assert body["withheld"] == [] and {"label_printer", "firmware_uploader"} <= set(body["plugins"])
    drivers = {d["driver"]: d for d in body["drivers"]}  # the shared device's driver is needed too
    assert {(d["driver"], d["distribution"]) for d in drivers.values()} == {
        ("http_service", "mes-label-printer"), ("simulator", "mes-firmware-uploader")}
    assert all(d["version"] for d in drivers.values())
    assert body["label_templates"]["version"]

    beat = await client.post(f"{API}/stations/heartbeat", json={"agent_version": "t"}, headers=station_headers)
    assert beat.json()["config_version"] == version and beat.json()["plugins"] == body["plugins"]


async def test_a_disabled_plugins_devices_are_withheld_until_it_is_enabled_again(
    client, kernel, admin_headers, station_headers
):
    await _station_b(kernel)
    assert (await client.put(f"{API}/lines/LINE-A", json=LINE, headers=admin_headers)).status_code == 200
    r = await client.post(f"{API}/plugins/firmware_uploader/disable", json={"reason": "recall"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    body = (await client.get(f"{API}/stations/me/config", headers=station_headers)).json()
    assert [d["code"] for d in body["devices"]] == ["PRN-1"]
    assert body["withheld"] == [{"code": "UPL-LINE", "kind": "firmware_uploader", "plugin": "firmware_uploader",
                                 "reason": "plugin firmware_uploader is disabled: recall"}]
    assert "line-secret" not in str(body) and "firmware_uploader" not in body["plugins"]
    # the line's version did not change; the heartbeat's plugin list tells the agent to fetch again
    beat = (await client.post(f"{API}/stations/heartbeat", json={"agent_version": "t"}, headers=station_headers)).json()
    assert beat["plugins"] == body["plugins"]

    assert (await client.post(f"{API}/plugins/firmware_uploader/enable", headers=admin_headers)).status_code == 200
    body = (await client.get(f"{API}/stations/me/config", headers=station_headers)).json()
    assert [d["code"] for d in body["devices"]] == ["PRN-1", "UPL-LINE"] and body["withheld"] == []


async def test_devices_of_a_plugin_the_line_does_not_enable_are_withheld(client, kernel, admin_headers,
                                                                         station_headers):
    from mes_kernel.db.models import Line

    await _station_b(kernel)
    assert (await client.put(f"{API}/lines/LINE-A", json=LINE, headers=admin_headers)).status_code == 200
    # a line whose plugin list leaves the uploader out while its device is still stored (written before
    # the list changed, or by hand): the line is the truth, the device stays with the server
    async with kernel.sessionmaker() as session:
        line = (await session.execute(Line.__table__.select().where(Line.code == "LINE-A"))).first()
        await session.execute(Line.__table__.update().where(Line.id == line.id).values(
            config={**line.config, "plugins": ["label_printer"]}, config_version=line.config_version + 1))
        await session.commit()
    await kernel.runtime.refresh(force=True)
    body = (await client.get(f"{API}/stations/me/config", headers=station_headers)).json()
    assert [d["code"] for d in body["devices"]] == ["PRN-1"] and body["plugins"] == ["label_printer"]
    assert body["withheld"][0]["reason"] == "plugin firmware_uploader is not enabled on line LINE-A"


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
