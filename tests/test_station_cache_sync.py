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
    r = await client.post(f"{API}/lots/{busy['lot_number']}/units", json={"serial_numbers": [late]},
                          headers=manager_headers)
    assert r.status_code == 201, r.text
    first = busy["serial_numbers"][0]
    record = {"idempotency_key": uuid.uuid4().hex, "lot_number": busy["lot_number"], "process_id": "ASSY-10",
              "worker_id": "w1", "result": "pass", "serial_number": first}
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
