"""The records of one batch are stored — and numbered — in the order they happened, not in the
order their idempotency keys sort in (the order the keys are claimed, so two batches never
deadlock). The lowest id of an item at a step is its first attempt (docs/kpi.md): an offline
station replaying a failure and its retest in one batch, under random keys as its outbox makes
them, must have the failure counted first whichever key sorts first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mes_kernel.db.models import ProcessItem, ProcessRecord

API = "/api/v1"
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _clock(kernel):
    kernel.clock = lambda: NOW


def _record(serial: str, lot: str, key: str, result: str, **extra) -> dict:
    body = {"idempotency_key": key, "lot_number": lot, "serial_number": serial, "process_id": "TEST-20",
            "worker_id": "W-1", "result": result, **extra}
    if result == "fail":
        body["defect_code"] = "D-VOLT"
    return body


# (what tells the order, the failure's extra fields, the retest's): station time; the same station
# time (none sent: the receipt) and the station's sequence numbers; nothing but the batch's order
ORDERS = {
    "station time": ({"recorded_at": (NOW - timedelta(minutes=2)).isoformat(), "station_seq": 9},
                     {"recorded_at": (NOW - timedelta(minutes=1)).isoformat(), "station_seq": 1}),
    "station sequence": ({"station_seq": 7}, {"station_seq": 8}),
    "as sent": ({}, {}),
}


@pytest.mark.parametrize("order", list(ORDERS))
async def test_a_failure_and_its_retest_in_one_batch_count_in_the_order_they_happened(
    client, kernel, make_lot, station_headers, order
):
    lot = await make_lot(units=1, registered_at=NOW - timedelta(days=1))
    serial = lot["serial_numbers"][0]
    failed, retested = ORDERS[order]
    # the retest's key sorts first: keys are claimed in key order
    batch = [_record(serial, lot["lot_number"], f"zz-{order}", "fail", **failed),
             _record(serial, lot["lot_number"], f"aa-{order}", "pass", **retested)]
    r = await client.post(f"{API}/process-records/batch", json={"records": batch}, headers=station_headers)
    assert r.status_code == 200 and r.json()["created"] == 2, r.text
    async with kernel.sessionmaker() as session:
        ids = dict((await session.execute(
            select(ProcessRecord.idempotency_key, ProcessRecord.id).where(ProcessRecord.serial_number == serial)
        )).all())
        item = (await session.execute(
            select(ProcessItem).where(ProcessItem.item == serial, ProcessItem.process_id == "TEST-20")
        )).scalar_one()
    assert ids[f"zz-{order}"] < ids[f"aa-{order}"], ids
    assert (item.first_passed, item.last_passed) == (False, True)
