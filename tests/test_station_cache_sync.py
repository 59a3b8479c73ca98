"""The station's offline cache syncs in full once, then by changes since a cursor: a unit registered
after the first sync, a new pass, a LOT's new status, a closed LOT's removal arrive by delta; an
untouched LOT does not travel again."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update

from mes_kernel.db.models import Lot, TraceEvent

API = "/api/v1"


async def _age(kernel, lot_numbers: list[str], by: timedelta = timedelta(hours=1)) -> None:
    """Make these LOTs' rows and history look written ``by`` ago (older than the delta's settle
    margin), as a plant's data is by its next sync: a delta then carries only what changed after."""
    async with kernel.sessionmaker() as session:
        lots = (await session.execute(select(Lot.id, Lot.updated_at).where(Lot.lot_number.in_(lot_numbers)))).all()
        for lot_id, updated_at in lots:
            await session.execute(update(Lot).where(Lot.id == lot_id).values(updated_at=updated_at - by))
        rows = (
            await session.execute(
                select(TraceEvent.id, TraceEvent.received_at).where(TraceEvent.lot_id.in_([i for i, _ in lots]))
            )
        ).all()
        for row_id, received_at in rows:
            aged = update(TraceEvent).where(TraceEvent.id == row_id).values(received_at=received_at - by)
            await session.execute(aged)
        await session.commit()


def _mine(answer: dict, lot_numbers: set[str]) -> tuple[dict, dict]:
    lots = {lot["lot_number"]: lot for lot in answer["lots"] if lot["lot_number"] in lot_numbers}
    units = {u["serial_number"]: u for u in answer["units"] if u["lot_number"] in lot_numbers}
    return lots, units


async def test_after_a_full_sync_only_changes_arrive_by_cursor(
    client, kernel, make_lot, manager_headers, station_headers
):
    busy = await make_lot(units=2)
    quiet = await make_lot(units=3)
    closing = await make_lot(units=1)
    ours = {busy["lot_number"], quiet["lot_number"], closing["lot_number"]}
    await _age(kernel, sorted(ours))

    r = await client.get(f"{API}/stations/me/cache", headers=station_headers)
    assert r.status_code == 200, r.text
    full = r.json()
    assert full["mode"] == "full" and full["cursor"]
    lots, units = _mine(full, ours)
    assert set(lots) == ours and len(units) == 6

    # what happens on the floor between two syncs
    late = f"{busy['lot_number']}-LATE"
    r = await client.post(
        f"{API}/lots/{busy['lot_number']}/units", json={"serial_numbers": [late]}, headers=manager_headers
    )
    assert r.status_code == 201, r.text
    first = busy["serial_numbers"][0]
    record = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": busy["lot_number"],
        "process_id": "ASSY-10",
        "worker_id": "w1",
        "result": "pass",
        "serial_number": first,
    }
    assert (await client.post(f"{API}/process-records", json=record, headers=station_headers)).status_code == 201
    r = await client.patch(f"{API}/lots/{busy['lot_number']}", json={"status": "on_hold"}, headers=manager_headers)
    assert r.status_code == 200, r.text
    r = await client.patch(f"{API}/lots/{closing['lot_number']}", json={"status": "closed"}, headers=manager_headers)
    assert r.status_code == 200, r.text
    fresh = await make_lot(units=1)
    ours.add(fresh["lot_number"])

    r = await client.get(f"{API}/stations/me/cache", params={"since": full["cursor"]}, headers=station_headers)
    assert r.status_code == 200, r.text
    delta = r.json()
    assert delta["mode"] == "delta" and delta["cursor"]
    lots, units = _mine(delta, ours)
    assert set(lots) == {busy["lot_number"], fresh["lot_number"]}  # the quiet LOT does not travel again
    assert lots[busy["lot_number"]]["status"] == "on_hold"
    assert closing["lot_number"] in delta["removed_lots"]
    assert quiet["lot_number"] not in delta["removed_lots"]
    assert units[late]["lot_number"] == busy["lot_number"]
    assert units[first]["completed_processes"] == ["ASSY-10"]
    assert set(units) >= {late, first, *fresh["serial_numbers"]}
    assert not set(units) & set(quiet["serial_numbers"])
    assert [p["id"] for p in delta["processes"]][:3] == ["ASSY-10", "TEST-20", "PACK-30"]

    # rows still inside the settle margin are read again by the next delta (applying a change twice
    # is harmless); once they have settled, a delta holds nothing of ours
    await _age(kernel, sorted(ours))
    r = await client.get(f"{API}/stations/me/cache", params={"since": delta["cursor"]}, headers=station_headers)
    again = r.json()
    assert again["mode"] == "delta" and set(_mine(again, ours)[0]) <= {busy["lot_number"], fresh["lot_number"]}
    r = await client.get(f"{API}/stations/me/cache", params={"since": again["cursor"]}, headers=station_headers)
    settled = r.json()
    assert settled["mode"] == "delta" and _mine(settled, ours) == ({}, {})
    assert not set(settled["removed_lots"]) & ours


async def test_a_cursor_this_server_did_not_give_is_refused_with_its_code(client, station_headers):
    for since in ("nonsense", "YzF8MXxub3QtYS10aW1l", "x" * 150):
        r = await client.get(f"{API}/stations/me/cache", params={"since": since}, headers=station_headers)
        assert r.status_code == 422, r.text
        assert r.json()["detail"]["code"] == "INVALID_CURSOR"


async def _pages(client, headers, *, max_units: int, first: dict | None = None, between=None) -> list[dict]:
    """Every page of a full snapshot, following ``next_page``; ``between(i)`` runs after page ``i``."""
    pages = [first] if first else []
    params: dict = {"max_units": max_units}
    if first:
        params["page"] = first["next_page"]
    while not pages or pages[-1]["next_page"]:
        if pages:
            params["page"] = pages[-1]["next_page"]
        r = await client.get(f"{API}/stations/me/cache", params=params, headers=headers)
        assert r.status_code == 200, r.text
        pages.append(r.json())
        if between is not None:
            await between(len(pages))
        assert len(pages) < 10_000
    return pages


async def test_a_first_snapshot_larger_than_max_units_comes_whole_in_pages_each_unit_once(
    client, kernel, make_lot, manager_headers, station_headers
):
    big = await make_lot(units=7)
    small = await make_lot(units=3)
    ours = {big["lot_number"], small["lot_number"]}
    await _age(kernel, sorted(ours))
    passed = big["serial_numbers"][5]
    record = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": big["lot_number"],
        "process_id": "ASSY-10",
        "worker_id": "w1",
        "result": "pass",
        "serial_number": passed,
    }
    assert (await client.post(f"{API}/process-records", json=record, headers=station_headers)).status_code == 201
    lot_pass = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": small["lot_number"],
        "process_id": "TEST-20",
        "worker_id": "w1",
        "result": "pass",
    }
    assert (await client.post(f"{API}/process-records", json=lot_pass, headers=station_headers)).status_code == 201

    late = f"{big['lot_number']}-MID"

    async def register_midway(page: int) -> None:
        if page == 1:  # registered while the station reads the snapshot's pages
            r = await client.post(
                f"{API}/lots/{big['lot_number']}/units", json={"serial_numbers": [late]}, headers=manager_headers
            )
            assert r.status_code == 201, r.text

    pages = await _pages(client, station_headers, max_units=3, between=register_midway)
    assert len(pages) >= 4 and all(len(p["units"]) <= 3 for p in pages)
    *before_last, last = pages
    assert all(p["next_page"] and p["truncated"] and p["cursor"] is None for p in before_last)
    assert last["next_page"] is None and not last["truncated"] and last["cursor"]
    serials = [u["serial_number"] for p in pages for u in p["units"]]
    assert len(serials) == len(set(serials))  # no unit twice
    mine = {u["serial_number"]: u for p in pages for u in p["units"] if u["lot_number"] in ours}
    assert set(mine) >= {*big["serial_numbers"], *small["serial_numbers"]}
    assert mine[passed]["completed_processes"] == ["ASSY-10"]
    assert all(mine[s]["completed_processes"] == ["TEST-20"] for s in small["serial_numbers"])
    assert all(set(_mine(p, ours)[0]) == ours for p in pages)  # the LOTs come with every page

    # the last page's cursor is the first page's moment: the first delta brings what changed meanwhile
    r = await client.get(f"{API}/stations/me/cache", params={"since": last["cursor"]}, headers=station_headers)
    assert r.status_code == 200, r.text
    assert late in _mine(r.json(), ours)[1]

    # a page asked again (the connection dropped before its answer arrived) is the same page
    again = await _pages(client, station_headers, max_units=3, first=pages[1])
    resent = [u["serial_number"] for p in again[1:] for u in p["units"]]
    assert len(resent) == len(set(resent))
    assert set(resent) >= {u["serial_number"] for p in pages[2:] for u in p["units"]}
    assert not set(resent) & {u["serial_number"] for p in pages[:2] for u in p["units"]}


async def test_a_page_this_server_did_not_give_is_refused_with_its_code(client, station_headers):
    for page in ("nonsense", "cDF8MXx4fDE", "x" * 250):
        r = await client.get(f"{API}/stations/me/cache", params={"page": page}, headers=station_headers)
        assert r.status_code == 422, r.text
        assert r.json()["detail"]["code"] == "INVALID_CURSOR"
    r = await client.get(f"{API}/stations/me/cache", params={"max_units": 1}, headers=station_headers)
    page = r.json()["next_page"] or "cDF8MHwyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwfDA"
    r = await client.get(f"{API}/stations/me/cache", params={"page": page, "since": "x"}, headers=station_headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "INVALID_CURSOR"
