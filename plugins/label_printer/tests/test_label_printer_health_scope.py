"""The printer check covers the printers of the lines that enable the plugin, and only those."""

from __future__ import annotations

from sqlalchemy import select

from mes_kernel.db.models import Device, Line

API = "/api/v1"


def tcp_printer_device(code: str, port: int) -> dict:
    config = {"host": "127.0.0.1", "port": port, "timeout": 2.0, "retry_delay": 0}
    return {"code": code, "kind": "label_printer", "driver": "zpl_tcp", "config": config}


async def put_line(client, headers, code: str, **document) -> None:
    r = await client.put(f"{API}/lines/{code}", json={"name": code, **document}, headers=headers)
    assert r.status_code == 200, r.text


async def add_printer_row(kernel, code: str, port: int, line_code: str | None) -> None:
    """A printer recorded straight in the device table: how a line that no longer enables the
    plugin can still hold printers (or a printer can belong to no line at all)."""
    async with kernel.sessionmaker() as session:
        line_id = None
        if line_code is not None:
            line_id = (await session.execute(select(Line.id).where(Line.code == line_code))).scalar_one()
        spec = tcp_printer_device(code, port)
        session.add(Device(code=code, kind="label_printer", driver="zpl_tcp", config=spec["config"], line_id=line_id))
        await session.commit()


async def printer_check(client, headers) -> dict:
    tree = (await client.get(f"{API}/health", headers=headers)).json()
    return tree["components"]["plugins"]["checks"]["label_printer"]["checks"]["printers"]


async def test_health_shows_only_the_printers_of_lines_enabling_the_plugin(client, kernel, admin_headers, tcp_printer):
    await put_line(
        client,
        admin_headers,
        "LINE-A",
        plugins=["label_printer"],
        devices=[tcp_printer_device("PRN-A", tcp_printer.port)],
    )
    await put_line(client, admin_headers, "LINE-B", plugins=["barcode_hid"])
    await add_printer_row(kernel, "PRN-B", tcp_printer.port, "LINE-B")
    await add_printer_row(kernel, "PRN-NOWHERE", tcp_printer.port, None)
    assert kernel.enabled_lines("label_printer") == ["LINE-A"]

    check = await printer_check(client, admin_headers)
    assert set(check["details"]["printers"]) == {"PRN-A"}
    assert set(check["checks"]) == {"PRN-A"}  # one node per printer
    assert check["status"] == "UP"

    # enabled on LINE-B too (its printer declared by the line), the check covers it at once
    await put_line(
        client,
        admin_headers,
        "LINE-B",
        plugins=["barcode_hid", "label_printer"],
        devices=[tcp_printer_device("PRN-B", tcp_printer.port)],
    )
    check = await printer_check(client, admin_headers)
    assert set(check["details"]["printers"]) == {"PRN-A", "PRN-B"}


async def test_with_no_line_configured_every_printer_is_covered(client, kernel, admin_headers, tcp_printer):
    await add_printer_row(kernel, "PRN-NOWHERE", tcp_printer.port, None)
    assert kernel.runtime.lines == {}
    check = await printer_check(client, admin_headers)
    assert set(check["details"]["printers"]) == {"PRN-NOWHERE"}
