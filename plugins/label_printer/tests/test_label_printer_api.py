"""The label routes end to end: the kernel app, its database, the TCP printer simulator."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mes_kernel.db.models import AuditEntry, Device, Line, Station
from mes_kernel.testing.helpers import uncoded_reasons

API = "/api/v1"
GTIN = "09506000134352"


async def add_printer(kernel, code: str, port: int, *, station: str | None = None, **config) -> None:
    """A TCP printer as device ``code``; with ``station``, placed at that station (created on line LINE-B
    when it does not exist yet)."""
    settings = {"host": "127.0.0.1", "port": port, "timeout": 2.0, "retry_delay": 0, **config}
    async with kernel.sessionmaker() as session:
        station_id = line_id = None
        if station:
            row = (await session.execute(select(Station).where(Station.code == station))).scalar()
            if row is None:
                line = (await session.execute(select(Line).where(Line.code == "LINE-B"))).scalar()
                if line is None:
                    line = Line(code="LINE-B", name="Line B", config={})
                    session.add(line)
                    await session.flush()
                row = Station(code=station, name=station, line_id=line.id, heartbeat={})
                session.add(row)
                await session.flush()
            station_id, line_id = row.id, row.line_id
        session.add(
            Device(
                code=code,
                kind="label_printer",
                driver="zpl_tcp",
                config=settings,
                station_id=station_id,
                line_id=line_id,
            )
        )
        await session.commit()


def unit_print(lot: dict, key: str, printer: str = "PRN-01") -> dict:
    return {
        "printer": printer,
        "template": "unit_label",
        "fields": {"product": lot["product"], "gtin": GTIN},
        "lot_number": lot["lot_number"],
        "serial_number": lot["serial_numbers"][0],
        "idempotency_key": key,
    }


async def test_a_label_prints_end_to_end_and_lands_in_the_lot_history(
    client, kernel, admin_headers, make_lot, tcp_printer
):
    await add_printer(kernel, "PRN-01", tcp_printer.port)
    lot = await make_lot(units=1)
    serial = lot["serial_numbers"][0]

    r = await client.post(f"{API}/labels/print", json=unit_print(lot, "k-1"), headers=admin_headers)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "done" and job["attempts"] == 1 and job["printer"] == "PRN-01"
    assert tcp_printer.core.label_count == 1
    assert serial.encode() in tcp_printer.core.printed[0]

    r = await client.get(f"{API}/labels/jobs/{job['id']}", headers=admin_headers)
    assert r.json()["result"]["driver"] == "zpl_tcp"
    r = await client.get(f"{API}/labels/jobs", params={"lot_number": lot["lot_number"]}, headers=admin_headers)
    assert [j["id"] for j in r.json()["items"]] == [job["id"]]

    for path in (f"{API}/lots/{lot['lot_number']}/history", f"{API}/units/{serial}/history"):
        events = (await client.get(path, headers=admin_headers)).json()["events"]
        prints = [e["data"] for e in events if e["type"] == "device_action"]
        assert len(prints) == 1, path
        assert prints[0]["action"] == "print" and prints[0]["driver"] == "zpl_tcp"
        assert prints[0]["device"] == "PRN-01" and prints[0]["outcome"] == "ok"
        assert prints[0]["actor"] == "user:admin" and prints[0]["driver_version"] == "1.0"
        assert prints[0]["detail"]["job_id"] == job["id"]


async def test_a_station_prints_and_the_history_says_where(
    client, kernel, station_headers, admin_headers, make_lot, tcp_printer
):
    await add_printer(kernel, "PRN-01", tcp_printer.port, station="ST-01")
    lot = await make_lot(units=1)
    r = await client.post(f"{API}/labels/print", json=unit_print(lot, "st-1"), headers=station_headers)
    assert r.status_code == 201, r.text
    events = (await client.get(f"{API}/lots/{lot['lot_number']}/history", headers=admin_headers)).json()["events"]
    (action,) = [e["data"] for e in events if e["type"] == "device_action"]
    assert action["actor"] == "station:ST-01" and action["station_id"] is not None


async def test_a_station_cannot_print_on_another_stations_printer(
    client, kernel, station_headers, admin_headers, make_lot, tcp_printer
):
    await add_printer(kernel, "PRN-OWN", tcp_printer.port, station="ST-01")
    await add_printer(kernel, "PRN-B", tcp_printer.port, station="ST-B1")  # a station of line LINE-B
    lot = await make_lot(units=1)
    r = await client.post(f"{API}/labels/print", json=unit_print(lot, "st-b", "PRN-B"), headers=station_headers)
    assert r.status_code == 403, r.text
    assert r.json()["detail"]["code"] == "DEVICE_NOT_ON_STATION" and r.json()["detail"]["device"] == "PRN-B"
    assert tcp_printer.core.label_count == 0  # nothing reached that printer
    jobs = (await client.get(f"{API}/labels/jobs", headers=admin_headers)).json()
    assert jobs["total"] == 0  # and no job was written
    listed = (await client.get(f"{API}/labels/printers", headers=station_headers)).json()
    assert [p["code"] for p in listed] == ["PRN-OWN"]
    # a person keeps the rights of their role
    r = await client.post(f"{API}/labels/print", json=unit_print(lot, "adm-b", "PRN-B"), headers=admin_headers)
    assert r.status_code == 201, r.text


async def test_an_unknown_printer_is_404_and_a_closed_lot_prints_nothing(
    client, kernel, admin_headers, make_lot, tcp_printer
):
    await add_printer(kernel, "PRN-01", tcp_printer.port)
    lot = await make_lot(units=1)
    r = await client.post(f"{API}/labels/print", json=unit_print(lot, "k-404", "PRN-NONE"), headers=admin_headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "DEVICE_NOT_FOUND"
    r = await client.patch(f"{API}/lots/{lot['lot_number']}", json={"status": "closed"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    r = await client.post(f"{API}/labels/print", json=unit_print(lot, "k-closed"), headers=admin_headers)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "LOT_CLOSED", r.text
    assert tcp_printer.core.label_count == 0


async def test_a_retried_print_made_before_its_lot_closed_answers_the_first_job(
    client, kernel, admin_headers, make_lot, tcp_printer
):
    await add_printer(kernel, "PRN-01", tcp_printer.port)
    lot = await make_lot(units=1)
    first = await client.post(f"{API}/labels/print", json=unit_print(lot, "k-before"), headers=admin_headers)
    assert first.status_code == 201, first.text
    r = await client.patch(f"{API}/lots/{lot['lot_number']}", json={"status": "closed"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    again = await client.post(f"{API}/labels/print", json=unit_print(lot, "k-before"), headers=admin_headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"], again.text
    reprint = await client.post(f"{API}/labels/jobs/{first.json()['id']}/reprint", json={"idempotency_key": "late"},
                                headers=admin_headers)  # a new action on the closed LOT is refused
    assert reprint.status_code == 409 and reprint.json()["detail"]["code"] == "LOT_CLOSED"
    assert tcp_printer.core.label_count == 1


async def test_the_same_idempotency_key_never_prints_a_second_label(
    client, kernel, admin_headers, make_lot, tcp_printer
):
    await add_printer(kernel, "PRN-01", tcp_printer.port)
    lot = await make_lot(units=1)
    body = unit_print(lot, "same-key")
    first = await client.post(f"{API}/labels/print", json=body, headers=admin_headers)
    again = await client.post(f"{API}/labels/print", json=body, headers=admin_headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert tcp_printer.core.label_count == 1

    other = {**body, "fields": {**body["fields"], "note": "different"}}
    r = await client.post(f"{API}/labels/print", json=other, headers=admin_headers)
    assert r.status_code == 409 and r.json()["detail"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert tcp_printer.core.label_count == 1


async def test_a_reprint_prints_once_per_key_and_needs_one(
    client, kernel, manager_headers, make_lot, tcp_printer
):
    await add_printer(kernel, "PRN-01", tcp_printer.port)
    lot = await make_lot(units=1)
    job_id = (await client.post(f"{API}/labels/print", json=unit_print(lot, "orig"), headers=manager_headers)).json()[
        "id"
    ]
    reprint = f"{API}/labels/jobs/{job_id}/reprint"
    first = await client.post(reprint, json={"idempotency_key": "re-1", "reason": "smudged"}, headers=manager_headers)
    again = await client.post(reprint, json={"idempotency_key": "re-1", "reason": "smudged"}, headers=manager_headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and first.json()["reprint_of"] == job_id
    assert tcp_printer.core.label_count == 2  # the print and one reprint

    # the key is required: a retried reprint whose answer was lost must never print twice
    for body in ({"reason": "again"}, {}):
        r = await client.post(reprint, json=body, headers=manager_headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "VALIDATION_ERROR", r.text
    r = await client.post(reprint, headers=manager_headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "VALIDATION_ERROR", r.text
    # a new key is a new reprint; the print's own key or another job's reprint key is someone else's request
    assert (await client.post(reprint, json={"idempotency_key": "re-2"}, headers=manager_headers)).status_code == 201
    refused = [
        await client.post(reprint, json={"idempotency_key": "orig"}, headers=manager_headers),  # the print's key
        await client.post(f"{API}/labels/jobs/{first.json()['id']}/reprint", json={"idempotency_key": "re-1"},
                          headers=manager_headers),  # the key of a reprint of another job
    ]
    assert [(r.status_code, r.json()["detail"]["code"]) for r in refused] == [(409, "IDEMPOTENCY_KEY_REUSED")] * 2
    assert tcp_printer.core.label_count == 3


async def test_concurrent_requests_with_one_key_print_one_label(client, kernel, admin_headers, make_lot, tcp_printer):
    import asyncio

    await add_printer(kernel, "PRN-01", tcp_printer.port)
    lot = await make_lot(units=1)
    body = unit_print(lot, "race")
    answers = await asyncio.gather(
        *(client.post(f"{API}/labels/print", json=body, headers=admin_headers) for _ in range(3))
    )
    assert sorted(r.status_code for r in answers) == [200, 200, 201]
    assert len({r.json()["id"] for r in answers}) == 1
    assert tcp_printer.core.label_count == 1


async def test_a_silent_printer_opens_the_breaker_and_recovery_closes_it(
    client, kernel, admin_headers, make_lot, tcp_printer
):
    await add_printer(kernel, "PRN-01", tcp_printer.port, timeout=0.5, max_attempts=1)
    lot = await make_lot(units=1)
    tcp_printer.core.set_fault("no_reply")

    for i in range(3):
        r = await client.post(f"{API}/labels/print", json=unit_print(lot, f"silent-{i}"), headers=admin_headers)
        assert r.status_code == 502, r.text
        assert r.json()["detail"]["code"] == "PRINT_FAILED"

    r = await client.post(f"{API}/labels/print", json=unit_print(lot, "after-open"), headers=admin_headers)
    assert r.status_code == 503
    detail = r.json()["detail"]
    assert detail["code"] == "SERVICE_UNAVAILABLE" and 0 < detail["retry_after"] <= 30
    assert r.headers["Retry-After"] == str(detail["retry_after"])
    assert (await kernel.breakers.state("label_printer", "PRN-01")).state == "open"

    tcp_printer.core.clear_faults()
    now = kernel.breakers.clock()
    kernel.breakers.clock = lambda: now + 31
    # The refused request is retried with its key: nothing was sent, so this is its half-open trial.
    r = await client.post(f"{API}/labels/print", json=unit_print(lot, "after-open"), headers=admin_headers)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "done"
    assert (await kernel.breakers.state("label_printer", "PRN-01")).state == "closed"
    assert tcp_printer.core.label_count == 1


async def test_a_reset_mid_job_fails_the_job_with_its_reason_and_is_not_retried(
    client, kernel, admin_headers, make_lot, tcp_printer
):
    await add_printer(kernel, "PRN-01", tcp_printer.port)
    lot = await make_lot(units=1)
    tcp_printer.core.set_fault("reset")
    r = await client.post(f"{API}/labels/print", json=unit_print(lot, "reset-1"), headers=admin_headers)
    assert r.status_code == 502
    job = (await client.get(f"{API}/labels/jobs/{r.json()['detail']['job_id']}", headers=admin_headers)).json()
    assert job["status"] == "failed" and job["attempts"] == 1
    assert "PrinterConnectionError" in job["error"]
    assert job["result"]["label_sent"] is True

    tcp_printer.core.clear_faults()
    r = await client.post(f"{API}/labels/print", json=unit_print(lot, "reset-1"), headers=admin_headers)
    assert r.status_code == 200 and r.json()["status"] == "failed"  # may have printed: never repeated silently
    assert tcp_printer.core.label_count == 0


async def test_retries_are_bounded_and_a_later_retry_with_the_key_completes_the_job(
    client, kernel, admin_headers, make_lot, tcp_printer
):
    await add_printer(kernel, "PRN-01", tcp_printer.port, max_attempts=2)
    lot = await make_lot(units=1)
    tcp_printer.core.set_fault("paper_out")
    r = await client.post(f"{API}/labels/print", json=unit_print(lot, "paper"), headers=admin_headers)
    assert r.status_code == 502 and "paper out" in r.json()["detail"]["message"]
    job_id = r.json()["detail"]["job_id"]
    job = (await client.get(f"{API}/labels/jobs/{job_id}", headers=admin_headers)).json()
    assert job["attempts"] == 2 and job["result"]["label_sent"] is False

    tcp_printer.core.clear_faults()
    r = await client.post(f"{API}/labels/print", json=unit_print(lot, "paper"), headers=admin_headers)
    assert r.status_code == 201 and r.json()["id"] == job_id
    assert r.json()["status"] == "done" and r.json()["attempts"] == 3
    assert tcp_printer.core.label_count == 1


async def test_a_malformed_field_is_refused_naming_it_and_nothing_prints(
    client, kernel, admin_headers, make_lot, tcp_printer
):
    await add_printer(kernel, "PRN-01", tcp_printer.port)
    lot = await make_lot(units=1)
    body = unit_print(lot, "bad")
    body["fields"]["gtin"] = "123"
    r = await client.post(f"{API}/labels/print", json=body, headers=admin_headers)
    assert r.status_code == 422
    assert r.json()["detail"]["field"] == "gtin"
    body["fields"]["gtin"] = GTIN
    body["serial_number"] = "NO-SUCH-UNIT"
    r = await client.post(f"{API}/labels/print", json=body, headers=admin_headers)
    assert r.status_code == 404
    assert tcp_printer.core.label_count == 0


async def test_preview_answers_a_png(client, viewer_headers):
    body = {"template": "lot_label", "fields": {"lot_number": "LOT-1", "product": "PRD-100", "quantity": 10}}
    r = await client.post(f"{API}/labels/preview", json=body, headers=viewer_headers)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
    templates = (await client.get(f"{API}/labels/templates", headers=viewer_headers)).json()
    assert {"unit_label", "lot_label"} <= {t["name"] for t in templates}


async def test_reprint_needs_its_own_permission_and_is_audited(
    client, kernel, worker_headers, manager_headers, make_lot, tcp_printer
):
    await add_printer(kernel, "PRN-01", tcp_printer.port)
    lot = await make_lot(units=1)
    r = await client.post(f"{API}/labels/print", json=unit_print(lot, "w-1"), headers=worker_headers)
    assert r.status_code == 201
    job_id = r.json()["id"]

    r = await client.post(f"{API}/labels/jobs/{job_id}/reprint", json={"idempotency_key": "w-re"},
                          headers=worker_headers)
    assert r.status_code == 403
    r = await client.post(
        f"{API}/labels/jobs/{job_id}/reprint", json={"reason": "label smudged", "idempotency_key": "m-re"},
        headers=manager_headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["reprint_of"] == job_id and r.json()["status"] == "done"
    assert tcp_printer.core.label_count == 2

    async with kernel.sessionmaker() as session:
        audit = (await session.execute(select(AuditEntry).where(AuditEntry.entity == "label_reprint"))).scalars()
        entries = list(audit)
    assert len(entries) == 1 and entries[0].after["reason"] == "label smudged"
    assert entries[0].actor == "user:manager"
    events = (await client.get(f"{API}/lots/{lot['lot_number']}/history", headers=manager_headers)).json()
    # Histories answer newest first.
    assert [e["data"]["action"] for e in events["events"] if e["type"] == "device_action"] == ["reprint", "print"]


async def test_health_shows_each_printer_from_its_own_status(client, kernel, admin_headers, tcp_printer):
    from mes_label_printer.simulator import PrinterCore, TcpPrinter

    async with TcpPrinter(PrinterCore()) as silent, TcpPrinter(PrinterCore()) as no_paper:
        silent.core.set_fault("no_reply")
        no_paper.core.set_fault("paper_out")
        await add_printer(kernel, "PRN-OK", tcp_printer.port)
        await add_printer(kernel, "PRN-SILENT", silent.port, timeout=0.3)
        await add_printer(kernel, "PRN-NOPAPER", no_paper.port)
        tree = (await client.get(f"{API}/health", headers=admin_headers)).json()
    check = tree["components"]["plugins"]["checks"]["label_printer"]["checks"]["printers"]
    printers = check["details"]["printers"]
    assert printers["PRN-OK"]["status"] == "UP"
    assert printers["PRN-SILENT"]["status"] == "DOWN" and "no reply" in printers["PRN-SILENT"]["reason"]
    assert printers["PRN-NOPAPER"]["status"] == "DOWN" and printers["PRN-NOPAPER"]["reason"] == "paper out"
    assert check["status"] == "DOWN"
    # every reason coded, for the dashboard to word: the check's, each printer's, each problem's
    assert uncoded_reasons(check) == []
    assert printers["PRN-SILENT"]["reason_code"] == "PRINTER_SILENT"
    assert printers["PRN-NOPAPER"]["reason_code"] == "PRINTER_NOT_READY"
    assert [p["reason_code"] for p in printers["PRN-NOPAPER"]["reason_params"]["problems"]] == ["PRINTER_PAPER_OUT"]
    assert check["reason_code"] == "DEVICES_NOT_UP"
    assert sorted(p["device"] for p in check["reason_params"]["problems"]) == ["PRN-NOPAPER", "PRN-SILENT"]
    assert check["checks"]["PRN-SILENT"]["reason_code"] == "PRINTER_SILENT"


@pytest.mark.parametrize("path", ["/labels/stats/today", "/labels/stats/jobs-by-status", "/labels/printers"])
async def test_dashboard_data_endpoints_answer(client, viewer_headers, path):
    r = await client.get(API + path, headers=viewer_headers)
    assert r.status_code == 200, r.text


async def test_the_plugin_loads_with_its_contributions(client, admin_headers):
    plugins = (await client.get(f"{API}/plugins", headers=admin_headers)).json()["plugins"]
    (record,) = [p for p in plugins if p["name"] == "label_printer"]
    assert record["state"] == "loaded", record
    assert {"labels:print", "labels:reprint"} <= set(record["permissions"])
    assert record["health_checks"] == ["printers"] and "label_printer" in record["breakers"]
    panels = (await client.get(f"{API}/dashboard/panels", headers=admin_headers)).json()
    ids = {p["id"] for p in panels if p["plugin"] == "label_printer"}
    assert {"label_printer.printed_today", "label_printer.jobs_by_status"} <= ids
