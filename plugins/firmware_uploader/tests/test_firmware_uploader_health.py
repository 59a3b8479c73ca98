"""The uploader check covers the uploaders of the lines that enable the plugin, one node per device."""

from __future__ import annotations

from sqlalchemy import select

from mes_kernel.db.models import Device, Line

API = "/api/v1"


def uploader(code: str, base_url: str) -> dict:
    config = {"base_url": base_url, "timeout": 1.0, "poll_interval": 0.02}
    return {"code": code, "kind": "firmware_uploader", "driver": "http_uploader", "config": config}


async def uploader_check(client, headers) -> dict:
    tree = (await client.get(f"{API}/health", headers=headers)).json()
    return tree["components"]["plugins"]["checks"]["firmware_uploader"]["checks"]["firmware_uploader.devices"]


async def test_health_covers_only_uploaders_of_lines_enabling_the_plugin(
    client, kernel, admin_headers, uploader_service
):
    r = await client.put(
        f"{API}/lines/LINE-A",
        json={"name": "A", "plugins": ["firmware_uploader"], "devices": [uploader("UPL-A", uploader_service.url)]},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    r = await client.put(f"{API}/lines/LINE-B", json={"name": "B", "plugins": []}, headers=admin_headers)
    assert r.status_code == 200, r.text
    async with kernel.sessionmaker() as session:  # an uploader left on a line that no longer enables it
        line_b = (await session.execute(select(Line.id).where(Line.code == "LINE-B"))).scalar_one()
        spec = uploader("UPL-B", uploader_service.url)
        session.add(
            Device(
                code="UPL-B", kind="firmware_uploader", driver="http_uploader", config=spec["config"], line_id=line_b
            )
        )
        await session.commit()

    check = await uploader_check(client, admin_headers)
    assert set(check["details"]["devices"]) == {"UPL-A"}
    assert set(check["checks"]) == {"UPL-A"} and check["status"] == "UP"
