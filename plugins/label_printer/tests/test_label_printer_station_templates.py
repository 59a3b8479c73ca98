"""The template set a station caches, as its configuration and heartbeat answer name it: read from
the stored templates when asked, so an upload or a retire shows at once."""

from __future__ import annotations

API = "/api/v1"
ZPL = "^XA^FO20,20^A0N,30,30^FDBOX {{lot_number}}^FS^XZ"
FIELDS = [{"name": "lot_number", "type": "lot_number"}]


async def station_view(client, station_headers) -> tuple[dict, dict]:
    config = await client.get(f"{API}/stations/me/config", headers=station_headers)
    assert config.status_code == 200, config.text
    beat = await client.post(f"{API}/stations/heartbeat", json={"agent_version": "t"}, headers=station_headers)
    assert beat.status_code == 200, beat.text
    return config.json()["label_templates"], beat.json()["label_templates"]


async def active_template_names(client, headers) -> set[str]:
    r = await client.get(f"{API}/labels/templates", headers=headers)
    assert r.status_code == 200, r.text
    return {t["name"] for t in r.json()}


async def test_an_upload_and_a_retire_each_give_stations_a_new_template_version(client, admin_headers, station_headers):
    seeded, in_heartbeat = await station_view(client, station_headers)
    assert seeded == in_heartbeat
    assert seeded["count"] == len(await active_template_names(client, admin_headers))
    assert seeded == (await station_view(client, station_headers))[0]  # asking again changes nothing

    r = await client.post(
        f"{API}/labels/templates", json={"name": "box_label", "zpl": ZPL, "fields": FIELDS}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    uploaded, in_heartbeat = await station_view(client, station_headers)
    assert uploaded == in_heartbeat
    assert uploaded["count"] == seeded["count"] + 1 and uploaded["version"] > seeded["version"]

    # a second version of the same name: same count of templates, a new version of the set
    r = await client.post(
        f"{API}/labels/templates", json={"name": "box_label", "zpl": ZPL, "fields": FIELDS}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    replaced, _ = await station_view(client, station_headers)
    assert replaced["count"] == uploaded["count"] and replaced["version"] > uploaded["version"]

    r = await client.post(f"{API}/labels/templates/box_label/retire", json={"reason": "t"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    retired, in_heartbeat = await station_view(client, station_headers)
    assert retired == in_heartbeat
    assert retired["count"] == seeded["count"] and retired["version"] > replaced["version"]
    assert retired["count"] == len(await active_template_names(client, admin_headers))
