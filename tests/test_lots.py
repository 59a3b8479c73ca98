"""LOTs: create, list (pages, filters, search), get, update, status transitions, units and history."""

from __future__ import annotations

import asyncio
import base64
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import func, select, update

from mes_kernel.app import create_app
from mes_kernel.db.models import Lot, ProcessRecord, Unit
from mes_kernel.services.lots import cached_lot

API = "/api/v1"


def _code(r) -> str:
    return r.json()["detail"]["code"]


def _record(lot_number: str, process_id: str = "ASSY-10", serial_number: str | None = None, **extra) -> dict:
    return {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": lot_number,
        "process_id": process_id,
        "worker_id": "W-7",
        "serial_number": serial_number,
        "result": "pass",
        **extra,
    }


async def _create(client, headers, lot_number: str, product: str, **extra):
    r = await client.post(f"{API}/lots", json={"lot_number": lot_number, "product": product, **extra}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_create_get_and_list_lots_with_pages_filters_and_search(client, kernel, manager_headers, viewer_headers):
    created = await _create(client, manager_headers, "LOT-A-001", "PRD-100", quantity=50, note="first")
    assert created["status"] == "created"
    assert created["quantity"] == 50
    assert created["created_at"].endswith(("Z", "+00:00"))
    await _create(client, manager_headers, "LOT-A-002", "PRD-100")
    await _create(client, manager_headers, "LOT-B_003", "PRD-200")
    await _create(client, manager_headers, "LOT-B-004", "PRD-200")
    await _create(client, manager_headers, "OTHER-005", "PRD-300")

    got = await client.get(f"{API}/lots/LOT-A-001", headers=viewer_headers)
    assert got.status_code == 200, got.text
    assert (got.json()["product"], got.json()["note"], got.json()["unit_count"]) == ("PRD-100", "first", 0)
    missing = await client.get(f"{API}/lots/LOT-NOPE", headers=viewer_headers)
    assert missing.status_code == 404
    assert _code(missing) == "LOT_NOT_FOUND"
    duplicate = await client.post(
        f"{API}/lots", json={"lot_number": "LOT-A-001", "product": "X"}, headers=manager_headers
    )
    assert duplicate.status_code == 409
    assert _code(duplicate) == "LOT_EXISTS"

    async def listing(**params) -> dict:
        r = await client.get(f"{API}/lots", params=params, headers=viewer_headers)
        assert r.status_code == 200, r.text
        return r.json()

    def numbers(page: dict) -> list[str]:
        return [item["lot_number"] for item in page["items"]]

    everything = await listing()
    assert everything["total"] == 5
    assert numbers(everything) == ["OTHER-005", "LOT-B-004", "LOT-B_003", "LOT-A-002", "LOT-A-001"]  # newest first
    first, second, third = await listing(limit=2), await listing(limit=2, offset=2), await listing(limit=2, offset=4)
    assert numbers(first) + numbers(second) + numbers(third) == numbers(everything)
    assert (first["total"], first["limit"], third["offset"]) == (5, 2, 4)
    assert (await listing(offset=10))["items"] == []

    assert numbers(await listing(product="PRD-200")) == ["LOT-B-004", "LOT-B_003"]
    assert (await listing(q="LOT-A"))["total"] == 2
    assert numbers(await listing(q="PRD-3")) == ["OTHER-005"]  # search covers the product too
    # LIKE wildcards are searched for literally.
    assert numbers(await listing(q="_")) == ["LOT-B_003"]
    assert (await listing(q="%"))["total"] == 0

    r = await client.patch(f"{API}/lots/LOT-A-002", json={"status": "on_hold"}, headers=manager_headers)
    assert r.status_code == 200, r.text
    assert numbers(await listing(status="on_hold")) == ["LOT-A-002"]
    assert numbers(await listing(status="on_hold", product="PRD-200")) == []
    assert (await listing(status="created"))["total"] == 4

    # Date range: move one LOT into last week and ask for windows around it.
    last_week = datetime.now(UTC) - timedelta(days=7)
    async with kernel.sessionmaker() as session:
        await session.execute(update(Lot).where(Lot.lot_number == "OTHER-005").values(created_at=last_week))
        await session.commit()
    week_window = {
        "created_from": (last_week - timedelta(hours=1)).isoformat(),
        "created_to": (last_week + timedelta(hours=1)).isoformat(),
    }
    assert numbers(await listing(**week_window)) == ["OTHER-005"]
    seoul = timezone(timedelta(hours=9))  # the same window written in another zone finds the same LOT
    seoul_window = {k: datetime.fromisoformat(v).astimezone(seoul).isoformat() for k, v in week_window.items()}
    assert numbers(await listing(**seoul_window)) == ["OTHER-005"]
    since_yesterday = await listing(created_from=(datetime.now(UTC) - timedelta(days=1)).isoformat())
    assert since_yesterday["total"] == 4
    assert "OTHER-005" not in numbers(since_yesterday)
    assert (await listing(created_from=(datetime.now(UTC) + timedelta(hours=1)).isoformat()))["total"] == 0

    for bad in (
        {"status": "shipped"},
        {"limit": 0},
        {"limit": 501},
        {"offset": -1},
        {"created_from": "2026-01-01T00:00:00"},
        {"created_from": "yesterday"},
    ):
        r = await client.get(f"{API}/lots", params=bad, headers=viewer_headers)
        assert r.status_code == 422, (bad, r.text)
        assert _code(r) == "VALIDATION_ERROR"


async def test_update_lot_fields_and_validated_status_transitions(client, manager_headers, make_lot):
    lot = await make_lot()
    url = f"{API}/lots/{lot['lot_number']}"

    r = await client.patch(url, json={"quantity": 120, "note": "rush order"}, headers=manager_headers)
    assert r.status_code == 200, r.text
    assert (r.json()["quantity"], r.json()["note"], r.json()["status"]) == (120, "rush order", "created")

    for target in ("on_hold", "in_progress", "on_hold", "in_progress"):
        r = await client.patch(url, json={"status": target}, headers=manager_headers)
        assert r.status_code == 200, (target, r.text)
        assert r.json()["status"] == target

    backwards = await client.patch(url, json={"status": "created"}, headers=manager_headers)
    assert backwards.status_code == 409, backwards.text
    assert _code(backwards) == "INVALID_TRANSITION"
    assert set(backwards.json()["detail"]["allowed"]) == {"on_hold", "closed", "scrapped"}
    assert (await client.get(url, headers=manager_headers)).json()["status"] == "in_progress"

    unknown = await client.patch(url, json={"status": "shipped"}, headers=manager_headers)
    assert unknown.status_code == 422
    assert _code(unknown) == "VALIDATION_ERROR"
    negative = await client.patch(url, json={"quantity": -1}, headers=manager_headers)
    assert negative.status_code == 422

    closed = await client.patch(url, json={"status": "closed"}, headers=manager_headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["closed_at"] is not None
    for change in ({"status": "in_progress"}, {"status": "scrapped"}, {"note": "too late"}, {"quantity": 1}):
        r = await client.patch(url, json=change, headers=manager_headers)
        assert r.status_code == 409, (change, r.text)
        assert _code(r) == "LOT_CLOSED"
    assert (await client.get(url, headers=manager_headers)).json()["note"] == "rush order"

    missing = await client.patch(f"{API}/lots/LOT-NOPE", json={"note": "x"}, headers=manager_headers)
    assert missing.status_code == 404
    assert _code(missing) == "LOT_NOT_FOUND"


async def test_closed_or_scrapped_lot_refuses_records_units_and_changes_with_409(
    client, kernel, manager_headers, worker_headers, make_lot
):
    for final in ("closed", "scrapped"):
        lot = await make_lot(units=1)
        number = lot["lot_number"]
        # Two records: the first moves the LOT to in progress, the second caches that state for the hot path …
        for _ in range(2):
            r = await client.post(f"{API}/process-records", json=_record(number), headers=worker_headers)
            assert r.status_code == 201, r.text
        assert kernel.cache.l1.get(f"lot:{number}")["status"] == "in_progress"
        r = await client.patch(f"{API}/lots/{number}", json={"status": final}, headers=manager_headers)
        assert r.status_code == 200, r.text

        # … and closing it must reach the records' path at once.
        refused = await client.post(f"{API}/process-records", json=_record(number), headers=worker_headers)
        assert refused.status_code == 409, (final, refused.text)
        assert _code(refused) == "LOT_CLOSED"
        batch = await client.post(
            f"{API}/process-records/batch", json={"records": [_record(number)]}, headers=worker_headers
        )
        assert batch.status_code == 200, batch.text
        assert batch.json()["results"][0]["status"] == "error"
        assert batch.json()["results"][0]["error"]["code"] == "LOT_CLOSED"
        units = await client.post(
            f"{API}/lots/{number}/units", json={"serial_numbers": [f"{number}-NEW"]}, headers=manager_headers
        )
        assert units.status_code == 409, units.text
        assert _code(units) == "LOT_CLOSED"
        note = await client.patch(f"{API}/lots/{number}", json={"note": "reopen?"}, headers=manager_headers)
        assert note.status_code == 409
        assert _code(note) == "LOT_CLOSED"

        async with kernel.sessionmaker() as session:
            stored = (
                await session.execute(
                    select(func.count()).select_from(ProcessRecord).where(ProcessRecord.lot_number == number)
                )
            ).scalar()
            units_stored = (
                await session.execute(select(func.count()).select_from(Unit).join(Lot).where(Lot.lot_number == number))
            ).scalar()
        assert (stored, units_stored) == (2, 1)


async def test_register_units_refuses_duplicates_with_409_serial_exists(
    client, manager_headers, viewer_headers, make_lot
):
    lot = await make_lot(units=2)
    other = await make_lot()
    number = lot["lot_number"]
    url = f"{API}/lots/{number}/units"

    r = await client.post(url, json={"serial_numbers": ["SN-0001", "SN-0002", "SN-0003"]}, headers=manager_headers)
    assert r.status_code == 201, r.text
    assert [u["serial_number"] for u in r.json()] == ["SN-0001", "SN-0002", "SN-0003"]
    assert {u["lot_id"] for u in r.json()} == {lot["id"]}

    again = await client.post(url, json={"serial_numbers": ["SN-0004", "SN-0002"]}, headers=manager_headers)
    assert again.status_code == 409, again.text
    assert _code(again) == "SERIAL_EXISTS"
    assert again.json()["detail"]["serial_numbers"] == ["SN-0002"]
    elsewhere = await client.post(
        f"{API}/lots/{other['lot_number']}/units", json={"serial_numbers": ["SN-0001"]}, headers=manager_headers
    )
    assert elsewhere.status_code == 409
    assert _code(elsewhere) == "SERIAL_EXISTS"
    repeated = await client.post(url, json={"serial_numbers": ["SN-0005", "SN-0005"]}, headers=manager_headers)
    assert repeated.status_code == 422
    empty = await client.post(url, json={"serial_numbers": []}, headers=manager_headers)
    assert empty.status_code == 422
    unknown_lot = await client.post(
        f"{API}/lots/LOT-NOPE/units", json={"serial_numbers": ["SN-9"]}, headers=manager_headers
    )
    assert unknown_lot.status_code == 404
    assert _code(unknown_lot) == "LOT_NOT_FOUND"

    # A refused request stores none of its serials (SN-0004, SN-0005 were refused with their batch).
    listed = await client.get(url, headers=viewer_headers)
    assert [u["serial_number"] for u in listed.json()] == [*lot["serial_numbers"], "SN-0001", "SN-0002", "SN-0003"]
    assert (await client.get(f"{API}/units/SN-0004", headers=viewer_headers)).status_code == 404
    unit = await client.get(f"{API}/units/SN-0003", headers=viewer_headers)
    assert unit.status_code == 200
    assert unit.json()["lot_id"] == lot["id"]
    gone = await client.get(f"{API}/units/SN-NOPE", headers=viewer_headers)
    assert gone.status_code == 404
    assert _code(gone) == "UNIT_NOT_FOUND"
    assert (await client.get(f"{API}/lots/{number}", headers=viewer_headers)).json()["unit_count"] == 5


async def test_lot_history_and_unit_history_are_newest_first(client, kernel, worker_headers, viewer_headers, make_lot):
    lot = await make_lot(units=2)
    number = lot["lot_number"]
    first_sn, second_sn = lot["serial_numbers"]

    async def record(process_id: str, serial_number: str | None, result: str = "pass") -> int:
        r = await client.post(
            f"{API}/process-records",
            json=_record(number, process_id, serial_number, result=result),
            headers=worker_headers,
        )
        assert r.status_code == 201, r.text
        return r.json()["id"]

    async def device_action(serial_number: str) -> int:
        action = await kernel.record_device_action(
            action="print",
            plugin="label_printer",
            device="PRN-01",
            driver="simulator",
            driver_version="1.0",
            actor="user:worker",
            outcome="ok",
            serial_number=serial_number,
            detail={"copies": 1},
        )
        return action.id

    rec1 = await record("ASSY-10", first_sn)
    act1 = await device_action(first_sn)
    rec2 = await record("ASSY-10", second_sn, "fail")
    rec3 = await record("TEST-20", first_sn)
    act2 = await device_action(second_sn)
    rec4 = await record("PACK-30", None)

    r = await client.get(f"{API}/lots/{number}/history", headers=viewer_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["lot_number"], body["status"]) == (number, "in_progress")
    events = [(e["type"], e["data"]["id"]) for e in body["events"]]
    assert events[:6] == [
        ("process_record", rec4),
        ("device_action", act2),
        ("process_record", rec3),
        ("process_record", rec2),
        ("device_action", act1),
        ("process_record", rec1),
    ]
    # Older still: the start the first record caused, the registrations, the creation.
    started, *registered, opened = body["events"][6:]
    assert (started["type"], started["data"]["from"], started["data"]["to"]) == ("status_change", "created",
                                                                                  "in_progress")
    assert started["data"]["reason"] == "first process record" and started["at"] == body["events"][5]["at"]
    # the server's own reason comes as a code the dashboard translates, its English text beside it
    assert started["data"]["reason_code"] == "FIRST_PROCESS_RECORD"
    assert sorted((e["type"], e["serial_number"]) for e in registered) == [
        ("registration", first_sn), ("registration", second_sn)]
    assert (opened["type"], opened["data"]["from"], opened["data"]["to"]) == ("status_change", None, "created")
    assert opened["actor"] == registered[0]["actor"] and opened["actor"].startswith("user:")
    assert (body["total"], body["next_before"]) == (10, None)
    times = [e["at"] for e in body["events"]]
    assert times == sorted(times, reverse=True)
    assert all(e["received_at"] == e["at"] for e in body["events"])  # no station time sent: receipt it is
    assert [e["recorded_at"] for e in body["events"] if e["type"] == "process_record"] == [None] * 4
    printed = body["events"][4]["data"]
    assert (printed["driver"], printed["driver_version"], printed["actor"], printed["outcome"]) == (
        "simulator",
        "1.0",
        "user:worker",
        "ok",
    )

    r = await client.get(f"{API}/units/{first_sn}/history", headers=viewer_headers)
    assert r.status_code == 200, r.text
    unit = r.json()
    assert (unit["serial_number"], unit["lot_number"], unit["product"]) == (first_sn, number, "PRD-100")
    assert [(e["type"], e["data"]["id"]) for e in unit["events"]] == [
        ("process_record", rec3),
        ("device_action", act1),
        ("process_record", rec1),
        ("registration", None),
    ]
    assert unit["total"] == 4
    second = (await client.get(f"{API}/units/{second_sn}/history", headers=viewer_headers)).json()
    assert [(e["type"], e["data"]["id"]) for e in second["events"]] == [
        ("device_action", act2),
        ("process_record", rec2),
        ("registration", None),
    ]
    assert second["events"][1]["data"]["result"] == "fail"

    assert (await client.get(f"{API}/lots/LOT-NOPE/history", headers=viewer_headers)).status_code == 404
    assert (await client.get(f"{API}/units/SN-NOPE/history", headers=viewer_headers)).status_code == 404


async def test_racing_creations_of_one_lot_or_serial_give_one_winner_and_409s(client, manager_headers, make_lot):
    answers = await asyncio.gather(
        *(
            client.post(f"{API}/lots", json={"lot_number": "LOT-RACE", "product": "PRD-1"}, headers=manager_headers)
            for _ in range(8)
        )
    )
    assert sorted(r.status_code for r in answers) == [201] + [409] * 7, [r.text for r in answers]
    assert {_code(r) for r in answers if r.status_code == 409} == {"LOT_EXISTS"}

    other = await make_lot()
    answers = await asyncio.gather(
        *(
            client.post(
                f"{API}/lots/{number}/units",
                json={"serial_numbers": ["SN-RACE-1", f"SN-{number}"]},
                headers=manager_headers,
            )
            for number in ("LOT-RACE", other["lot_number"], "LOT-RACE", other["lot_number"])
        )
    )
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409], [r.text for r in answers]
    assert {_code(r) for r in answers if r.status_code == 409} == {"SERIAL_EXISTS"}
    owners = {(await client.get(f"{API}/units/SN-RACE-1", headers=manager_headers)).json()["lot_id"]}
    assert len(owners) == 1


@pytest.mark.postgres_only
async def test_closing_a_lot_in_one_worker_stops_records_in_another(
    client, settings, manager_headers, worker_headers, make_lot
):
    """The LOT's status is cached on the records' hot path: closing must reach every worker's cache."""
    lot = await make_lot()
    number = lot["lot_number"]
    other = create_app(settings, load_entry_points=False)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=("127.0.0.2", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as second:
            for _ in range(2):  # the first record moves the LOT to in progress; the second caches that state
                r = await second.post(f"{API}/process-records", json=_record(number), headers=worker_headers)
                assert r.status_code == 201, r.text
            assert other.state.kernel.cache.l1.get(f"lot:{number}")["status"] == "in_progress"
            closed = await client.patch(f"{API}/lots/{number}", json={"status": "closed"}, headers=manager_headers)
            assert closed.status_code == 200, closed.text
            for _ in range(40):  # the invalidation travels by pub/sub: allow it up to 2 s
                if f"lot:{number}" not in other.state.kernel.cache.l1._data:
                    break
                await asyncio.sleep(0.05)
            refused = await second.post(f"{API}/process-records", json=_record(number), headers=worker_headers)
    assert refused.status_code == 409, refused.text
    assert _code(refused) == "LOT_CLOSED"


async def test_a_lot_closed_while_a_reader_fills_the_cache_still_refuses_records(
    client, kernel, manager_headers, worker_headers, make_lot
):
    """The close commits between another request's database read and its cache write (the interleaving is made
    certain by running the close at that very point)."""
    lot = await make_lot()
    number = lot["lot_number"]
    r = await client.post(f"{API}/process-records", json=_record(number), headers=worker_headers)
    assert r.status_code == 201, r.text  # the LOT is in progress; its cache entry was dropped on that change
    cache = kernel.cache
    original_set = cache.set

    async def set_after_a_concurrent_close(key, value, **kw):
        if key == f"lot:{number}":
            closed = await client.patch(f"{API}/lots/{number}", json={"status": "closed"}, headers=manager_headers)
            assert closed.status_code == 200, closed.text
        await original_set(key, value, **kw)

    cache.set = set_after_a_concurrent_close
    try:
        async with kernel.sessionmaker() as session:
            assert (await cached_lot(session, cache, number))["status"] == "in_progress"  # read before the close
    finally:
        cache.set = original_set
    refused = await client.post(f"{API}/process-records", json=_record(number), headers=worker_headers)
    assert refused.status_code == 409, refused.text


async def test_lot_search_ignores_case_on_both_databases(client, manager_headers):
    await _create(client, manager_headers, "LOT-A-001", "PRD-100")
    await _create(client, manager_headers, "lot-b-002", "prd-200")

    async def found(q: str) -> list[str]:
        r = await client.get(f"{API}/lots", params={"q": q}, headers=manager_headers)
        assert r.status_code == 200, r.text
        return sorted(item["lot_number"] for item in r.json()["items"])

    assert await found("LOT-A") == ["LOT-A-001"]
    assert await found("lot-a") == ["LOT-A-001"]
    assert await found("LOT-B") == ["lot-b-002"]
    assert await found("Prd") == ["LOT-A-001", "lot-b-002"]


async def test_a_record_racing_the_close_of_its_lot_never_postdates_the_close(
    client, kernel, manager_headers, worker_headers, make_lot
):
    """The close commits after the record passed its checks and before it is written (made certain by closing at
    that very point): the record is refused, or it is stamped as accepted before the close."""
    lot = await make_lot()
    number = lot["lot_number"]
    assert (
        await client.post(f"{API}/process-records", json=_record(number), headers=worker_headers)
    ).status_code == 201
    writer = kernel.state["record_writer"]
    original_submit = writer.submit

    async def submit_after_a_concurrent_close(row):
        writer.submit = original_submit
        closed = await client.patch(f"{API}/lots/{number}", json={"status": "closed"}, headers=manager_headers)
        assert closed.status_code == 200, closed.text
        return await original_submit(row)

    writer.submit = submit_after_a_concurrent_close
    try:
        late = await client.post(f"{API}/process-records", json=_record(number), headers=worker_headers)
    finally:
        writer.submit = original_submit
    async with kernel.sessionmaker() as session:
        lot_row = (await session.execute(select(Lot).where(Lot.lot_number == number))).scalar_one()
        last_record = (
            await session.execute(select(func.max(ProcessRecord.created_at)).where(ProcessRecord.lot_number == number))
        ).scalar_one()
    if late.status_code == 409:
        assert late.json()["detail"]["code"] == "LOT_CLOSED"
    else:
        assert late.status_code == 201, late.text
        assert last_record <= lot_row.closed_at, (last_record, lot_row.closed_at)


async def test_racing_status_changes_of_one_lot_have_one_winner(client, manager_headers, make_lot):
    """Close and scrap at the same moment: one wins, the other finds a final LOT (409), five times over."""
    for _ in range(5):
        lot = await make_lot()
        number = lot["lot_number"]
        answers = await asyncio.gather(
            *(
                client.patch(f"{API}/lots/{number}", json={"status": target}, headers=manager_headers)
                for target in ("closed", "scrapped")
            )
        )
        assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
        winner = next(r.json()["status"] for r in answers if r.status_code == 200)
        assert (await client.get(f"{API}/lots/{number}", headers=manager_headers)).json()["status"] == winner


async def test_history_pages_newest_first_by_station_time_with_the_true_total(
    client, kernel, worker_headers, viewer_headers, make_lot
):
    lot = await make_lot(units=1, registered_at=datetime(2026, 11, 19, tzinfo=UTC))
    number, serial = lot["lot_number"], lot["serial_numbers"][0]
    start = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)
    # Sent in shuffled order, as an offline station's backlog arrives: station time decides the order.
    minutes = list(range(230))
    random.Random(13).shuffle(minutes)
    batch = [
        _record(
            number,
            serial_number=serial if m % 2 else None,
            recorded_at=(start + timedelta(minutes=m)).isoformat(),
            data={"m": m},
        )
        for m in minutes
    ]
    for chunk in (batch[:115], batch[115:]):
        r = await client.post(f"{API}/process-records/batch", json={"records": chunk}, headers=worker_headers)
        assert r.status_code == 200 and r.json()["created"] == len(chunk), r.text
    await kernel.record_device_action(
        action="print",
        plugin="label_printer",
        device="PRN-01",
        driver="simulator",
        driver_version="1.0",
        actor="user:worker",
        outcome="ok",
        serial_number=serial,
        detail={},
    )

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 100, **({"before": cursor} if cursor else {})}
        r = await client.get(f"{API}/lots/{number}/history", params=params, headers=viewer_headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == 234  # 230 records, a print, the creation, a registration, the start
        seen += page["events"]
        pages += 1
        cursor = page["next_before"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 234 and len({e["id"] for e in seen}) == 234
    # printed just now; created and registered today, while the records tell of a week ago
    assert [e["type"] for e in seen[:3]] == ["device_action", "registration", "status_change"]
    records = [e for e in seen if e["type"] == "process_record"]
    assert [e["data"]["data"]["m"] for e in records] == sorted(minutes, reverse=True)
    assert records[0]["recorded_at"] == (start + timedelta(minutes=229)).isoformat()
    assert records[0]["received_at"] > records[0]["recorded_at"]
    # The first batch started the LOT at its earliest station time: the start sorts just below that record.
    first = min(minutes[:115])
    kinds = [e["type"] if e["type"] != "process_record" else e["data"]["data"]["m"] for e in seen[3:]]
    at = kinds.index(first) + 1
    assert kinds[:at] + kinds[at + 1:] == sorted(minutes, reverse=True) and kinds[at] == "status_change"
    assert seen[3 + at]["at"] == (start + timedelta(minutes=first)).isoformat()

    unit_pages = []
    cursor = None
    while True:
        params = {"limit": 50, **({"before": cursor} if cursor else {})}
        page = (await client.get(f"{API}/units/{serial}/history", params=params, headers=viewer_headers)).json()
        unit_pages.append(page)
        cursor = page["next_before"]
        if cursor is None:
            break
    assert [len(p["events"]) for p in unit_pages] == [50, 50, 17]
    assert {p["total"] for p in unit_pages} == {117}


async def test_history_refuses_a_forged_cursor_and_a_limit_out_of_range(client, viewer_headers, make_lot):
    number = (await make_lot())["lot_number"]
    forged = [base64.urlsafe_b64encode(raw.encode()).decode() for raw in (
        "0001-01-01T00:00:00+05:00|1|1",  # before year 1 in UTC
        "2026-11-30T10:00:00|1|1",  # no zone
        "2026-11-30T10:00:00+00:00|-1|1",
        "2026-11-30T10:00:00+00:00|1|99999999999999999999",
    )]
    for before in ("not-a-cursor", "MjAyNnwzfDQ", "x" * 201, *forged):
        r = await client.get(f"{API}/lots/{number}/history", params={"before": before}, headers=viewer_headers)
        assert r.status_code == 422, (before, r.text)
    r = await client.get(f"{API}/lots/{number}/history", params={"before": "not-a-cursor"}, headers=viewer_headers)
    assert r.json()["detail"]["code"] == "INVALID_CURSOR"
    for limit in (0, 501, -1):
        r = await client.get(f"{API}/lots/{number}/history", params={"limit": limit}, headers=viewer_headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "VALIDATION_ERROR"


async def test_every_answer_that_carries_a_lot_carries_its_unit_count(client, manager_headers, make_lot):
    """Issue 12: PATCH answered ``unit_count: null`` while GET answered the count. Create, list, get and
    update all answer the registered units; the OpenAPI schema says the count is always there."""
    empty = await make_lot()
    assert empty["unit_count"] == 0
    lot = await make_lot(units=3, product="PRD-COUNT")
    number = lot["lot_number"]

    patched = await client.patch(f"{API}/lots/{number}", json={"status": "in_progress"}, headers=manager_headers)
    assert patched.status_code == 200, patched.text
    assert (patched.json()["status"], patched.json()["unit_count"]) == ("in_progress", 3)
    noted = await client.patch(f"{API}/lots/{empty['lot_number']}", json={"note": "n"}, headers=manager_headers)
    assert noted.json()["unit_count"] == 0

    got = await client.get(f"{API}/lots/{number}", headers=manager_headers)
    assert got.json()["unit_count"] == 3
    listed = await client.get(f"{API}/lots", params={"product": "PRD-COUNT"}, headers=manager_headers)
    assert [(i["lot_number"], i["unit_count"]) for i in listed.json()["items"]] == [(number, 3)]
    everything = (await client.get(f"{API}/lots", params={"limit": 500}, headers=manager_headers)).json()["items"]
    assert all(isinstance(i["unit_count"], int) for i in everything)
    assert {i["lot_number"]: i["unit_count"] for i in everything}[empty["lot_number"]] == 0

    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["LotOut"]
    assert "unit_count" in schema["required"]
    assert schema["properties"]["unit_count"]["type"] == "integer"
