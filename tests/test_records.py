"""Process records: idempotent by key (also under races), batches with per-item outcomes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import event, func, select, text

from mes_kernel.api.deps import Principal
from mes_kernel.app import create_app
from mes_kernel.db.models import AuditEntry, Lot, ProcessRecord, Unit
from mes_kernel.schemas import RecordIn
from mes_kernel.services.records import create_record

RECORDS = "/api/v1/process-records"


def _record(lot_number: str, key: str | None = None, **extra) -> dict:
    return {
        "idempotency_key": key or uuid.uuid4().hex,
        "lot_number": lot_number,
        "process_id": "ASSY-10",
        "worker_id": "W-1",
        "result": "pass",
        **extra,
    }


async def _count(kernel, *where) -> int:
    async with kernel.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(ProcessRecord).where(*where))).scalar_one()


async def _lot_status(kernel, lot_number: str) -> str:
    async with kernel.sessionmaker() as session:
        return (await session.execute(select(Lot.status).where(Lot.lot_number == lot_number))).scalar_one()


async def test_retry_answers_200_with_the_original_and_another_body_409(
    client, kernel, worker_headers, station_headers, make_lot
):
    # registered before the record's station time (one before it is refused)
    lot = await make_lot(units=1, registered_at=datetime(2026, 11, 25, tzinfo=UTC))
    number, serial = lot["lot_number"], lot["serial_numbers"][0]
    assert await _lot_status(kernel, number) == "created"
    body = _record(
        number,
        serial_number=serial,
        defect_code=None,
        data={"torque_nm": 1.25, "bits": [1, 0]},
        recorded_at="2026-11-26T05:00:00+09:00",
    )

    first = await client.post(RECORDS, json=body, headers=worker_headers)
    assert first.status_code == 201, first.text
    record = first.json()
    assert (record["lot_number"], record["serial_number"], record["worker_id"]) == (number, serial, "W-1")
    assert record["data"] == {"torque_nm": 1.25, "bits": [1, 0]}
    assert record["created_by"] == "user:worker"
    assert record["recorded_at"].startswith("2026-11-25T20:00:00")  # normalised to UTC
    # The first record moves the LOT from created to in progress.
    assert await _lot_status(kernel, number) == "in_progress"

    retry = await client.post(RECORDS, json=body, headers=worker_headers)
    assert retry.status_code == 200, retry.text
    assert retry.json() == record

    for change in ({"result": "fail"}, {"data": {"torque_nm": 1.26, "bits": [1, 0]}}, {"process_id": "TEST-20"}):
        other = await client.post(RECORDS, json={**body, **change}, headers=worker_headers)
        assert other.status_code == 409, (change, other.text)
        assert other.json()["detail"]["code"] == "IDEMPOTENCY_CONFLICT"
        assert other.json()["detail"]["record_id"] == record["id"]
    assert await _count(kernel, ProcessRecord.idempotency_key == body["idempotency_key"]) == 1

    # A station records as itself; the worker at it must be named.
    by_station = await client.post(RECORDS, json=_record(number, process_id="TEST-20"), headers=station_headers)
    assert by_station.status_code == 201, by_station.text
    assert by_station.json()["station_id"] is not None
    assert by_station.json()["created_by"] == "station:ST-01"
    nameless = {k: v for k, v in _record(number).items() if k != "worker_id"}
    refused = await client.post(RECORDS, json=nameless, headers=station_headers)
    assert refused.status_code == 422, refused.text
    assert (refused.json()["detail"]["code"], refused.json()["detail"]["field"]) == ("VALIDATION_ERROR", "worker_id")
    assert await _count(kernel, ProcessRecord.lot_number == number) == 2


async def test_twenty_identical_concurrent_posts_store_exactly_one_record(client, kernel, worker_headers, make_lot):
    lot = await make_lot()
    body = _record(lot["lot_number"])
    answers = await asyncio.gather(*(client.post(RECORDS, json=body, headers=worker_headers) for _ in range(20)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 19 + [201], [r.text for r in answers if r.status_code not in (200, 201)]
    assert len({r.json()["id"] for r in answers}) == 1
    assert await _count(kernel, ProcessRecord.idempotency_key == body["idempotency_key"]) == 1
    async with kernel.sessionmaker() as session:
        audited = (
            await session.execute(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.entity == "process_record")
            )
        ).scalar_one()
    assert audited == 1

    # The same key racing with two different bodies: one is stored, its twins get it, the others conflict.
    original = _record(lot["lot_number"])
    other = {**original, "result": "fail"}
    answers = await asyncio.gather(
        *(client.post(RECORDS, json=b, headers=worker_headers) for b in (original, other) * 5)
    )
    by_body: dict[str, list[int]] = {"pass": [], "fail": []}
    for body, r in zip((original, other) * 5, answers, strict=True):
        by_body[body["result"]].append(r.status_code)
    winner = "pass" if 201 in by_body["pass"] else "fail"
    loser = "fail" if winner == "pass" else "pass"
    assert sorted(by_body[winner]) == [200] * 4 + [201], by_body
    assert by_body[loser] == [409] * 5, by_body
    assert await _count(kernel, ProcessRecord.idempotency_key == original["idempotency_key"]) == 1


async def test_identical_records_racing_in_separate_transactions_store_exactly_one(kernel, make_lot):
    """Ten sessions, each holding its own connection, insert the same key at the same moment."""
    lot = await make_lot()
    record_in = RecordIn.model_validate(_record(lot["lot_number"]))
    principal = Principal(kind="user", id=1, name="worker", role="worker")
    start = asyncio.Barrier(10)

    async def one() -> tuple[int, bool]:
        async with kernel.sessionmaker() as session:
            await session.connection()  # hold a connection before the race starts
            await start.wait()
            record, created = await create_record(
                session=session, cache=kernel.cache, record_in=record_in, principal=principal
            )
            await session.commit()
            return record.id, created

    outcomes = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(10))), timeout=30)
    assert sorted(created for _, created in outcomes) == [False] * 9 + [True]
    assert len({record_id for record_id, _ in outcomes}) == 1
    assert await _count(kernel, ProcessRecord.idempotency_key == record_in.idempotency_key) == 1
    assert await _lot_status(kernel, lot["lot_number"]) == "in_progress"


async def test_identical_posts_racing_through_two_app_instances_store_one(
    client, settings, kernel, worker_headers, make_lot
):
    """Two "workers" (two apps on one database, and one Redis where configured) take the same retry."""
    lot = await make_lot()
    body = _record(lot["lot_number"])
    other = create_app(settings, load_entry_points=False)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other, client=("127.0.0.2", 50001))
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as second:
            answers = await asyncio.gather(
                *(c.post(RECORDS, json=body, headers=worker_headers) for _ in range(5) for c in (client, second))
            )
    assert sorted(r.status_code for r in answers) == [200] * 9 + [201], [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert await _count(kernel, ProcessRecord.idempotency_key == body["idempotency_key"]) == 1


async def test_batch_gives_each_item_its_own_outcome_and_stores_the_good_ones(client, kernel, worker_headers, make_lot):
    lot = await make_lot(units=1)
    other_lot = await make_lot(units=1)
    number = lot["lot_number"]
    earlier = _record(number, key="earlier-record-1")
    assert (await client.post(RECORDS, json=earlier, headers=worker_headers)).status_code == 201

    good1 = _record(number, key="batch-good-0001", serial_number=lot["serial_numbers"][0])
    good2 = _record(number, key="batch-good-0002", result="fail", defect_code="D-17")
    items = [
        good1,
        earlier,  # stored before: duplicate
        {**good1},  # repeated within the batch: duplicate
        {**good1, "result": "fail"},  # same key, other body
        {**earlier, "process_id": "PACK-30"},  # same key as a stored one, other body
        {"idempotency_key": "batch-bad-types", "lot_number": number, "result": 3},  # invalid
        _record("LOT-NOPE", key="batch-unknown-lot"),
        _record(number, key="batch-unknown-process", process_id="NOPE-99"),
        _record(number, key="batch-foreign-unit", serial_number=other_lot["serial_numbers"][0]),
        {"idempotency_key": "batch-no-fields"},
        "not an object",
        good2,
    ]
    r = await client.post(f"{RECORDS}/batch", json={"records": items}, headers=worker_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    outcomes = [(x["status"], (x["error"] or {}).get("code")) for x in body["results"]]
    assert outcomes == [
        ("created", None),
        ("duplicate", None),
        ("duplicate", None),
        ("error", "IDEMPOTENCY_CONFLICT"),
        ("error", "IDEMPOTENCY_CONFLICT"),
        ("error", "VALIDATION_ERROR"),
        ("error", "LOT_NOT_FOUND"),
        ("error", "PROCESS_NOT_FOUND"),
        ("error", "UNIT_NOT_IN_LOT"),
        ("error", "VALIDATION_ERROR"),
        ("error", "VALIDATION_ERROR"),
        ("created", None),
    ]
    assert (body["created"], body["duplicates"], body["errors"]) == (2, 2, 8)
    results = body["results"]
    assert results[0]["record"]["id"] == results[2]["record"]["id"]
    assert results[11]["record"]["defect_code"] == "D-17"

    async with kernel.sessionmaker() as session:
        stored = (
            await session.execute(
                select(ProcessRecord.idempotency_key, ProcessRecord.result).order_by(ProcessRecord.id)
            )
        ).all()
    assert [tuple(row) for row in stored] == [
        ("earlier-record-1", "pass"),
        ("batch-good-0001", "pass"),
        ("batch-good-0002", "fail"),
    ]

    # Retrying the whole batch changes nothing and answers the same records.
    again = (await client.post(f"{RECORDS}/batch", json={"records": [good1, good2]}, headers=worker_headers)).json()
    assert [x["status"] for x in again["results"]] == ["duplicate", "duplicate"]
    assert [x["record"]["id"] for x in again["results"]] == [results[0]["record"]["id"], results[11]["record"]["id"]]
    assert await _count(kernel) == 3

    for bad in ({"records": []}, {"records": [good1] * 1001}, {"records": "x"}, {}):
        refused = await client.post(f"{RECORDS}/batch", json=bad, headers=worker_headers)
        assert refused.status_code == 422, refused.text


async def test_records_naming_units_look_them_up_together_in_the_writing_transaction(
    client, kernel, worker_headers, station_headers, make_lot
):
    """A record naming a unit sends no statement of its own to find it: a batch of two records and
    one of twenty (after one that warms the cache), each naming another unit, send as many
    statements (the units are looked up in one, by the transaction that writes them); each record
    keeps its own unit."""
    lot = await make_lot(units=24)
    number, serials = lot["lot_number"], lot["serial_numbers"]
    first = await client.post(RECORDS, json=_record(number, serial_number=serials[0]), headers=station_headers)
    assert first.status_code == 201, first.text  # moves the LOT to in progress
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    sent = []
    event.listen(kernel.engine.sync_engine, "before_cursor_execute", count)
    try:
        # the first batch also reads what the cache lacks (the LOT's new status, the worker's session)
        for batch in (serials[1:2], serials[2:4], serials[4:24]):
            statements.clear()
            r = await client.post(
                f"{RECORDS}/batch",
                json={"records": [_record(number, serial_number=s) for s in batch]},
                headers=worker_headers,
            )
            assert r.status_code == 200 and r.json()["created"] == len(batch), r.text
            sent.append(len(statements))
    finally:
        event.remove(kernel.engine.sync_engine, "before_cursor_execute", count)
    assert sent[1] == sent[2], sent
    async with kernel.sessionmaker() as session:
        stored = (
            await session.execute(
                select(ProcessRecord.serial_number, Unit.serial_number, Unit.lot_id)
                .join(Unit, Unit.id == ProcessRecord.unit_id)
                .where(ProcessRecord.lot_number == number)
            )
        ).all()
        lot_id = (await session.execute(select(Lot.id).where(Lot.lot_number == number))).scalar_one()
    assert sorted(stored) == sorted((s, s, lot_id) for s in serials)


async def test_a_retry_of_a_stored_record_gets_the_original_even_when_its_unit_now_refuses(
    client, kernel, worker_headers, make_lot
):
    """The unit is checked by the writing transaction, after the key: a retry of a record stored
    before its unit went away answers 200 with the original, as a retry after a LOT closed does;
    a new key naming that serial number answers 404 ``UNIT_NOT_FOUND``."""
    lot = await make_lot(units=1)
    body = _record(lot["lot_number"], serial_number=lot["serial_numbers"][0])
    first = await client.post(RECORDS, json=body, headers=worker_headers)
    assert first.status_code == 201, first.text
    async with kernel.sessionmaker() as session:
        # the unit is renamed (as a correction would): its old serial number names no unit now
        await session.execute(
            text("UPDATE units SET serial_number = 'RENAMED-1' WHERE serial_number = :s"),
            {"s": lot["serial_numbers"][0]},
        )
        await session.commit()
    retry = await client.post(RECORDS, json=body, headers=worker_headers)
    assert retry.status_code == 200, retry.text
    assert retry.json()["id"] == first.json()["id"]
    fresh = await client.post(RECORDS, json={**body, "idempotency_key": uuid.uuid4().hex}, headers=worker_headers)
    assert fresh.status_code == 404 and fresh.json()["detail"]["code"] == "UNIT_NOT_FOUND", fresh.text


async def test_first_record_of_a_batch_moves_the_lot_to_in_progress(client, kernel, worker_headers, make_lot):
    lot = await make_lot()
    untouched = await make_lot()
    r = await client.post(
        f"{RECORDS}/batch", json={"records": [_record(lot["lot_number"]) for _ in range(3)]}, headers=worker_headers
    )
    assert r.json()["created"] == 3, r.text
    assert await _lot_status(kernel, lot["lot_number"]) == "in_progress"
    assert await _lot_status(kernel, untouched["lot_number"]) == "created"
    async with kernel.sessionmaker() as session:
        moves = (
            (
                await session.execute(
                    select(AuditEntry.after).where(
                        AuditEntry.entity == "lot",
                        AuditEntry.entity_id == lot["lot_number"],
                        AuditEntry.action == "update",
                    )
                )
            )
            .scalars()
            .all()
        )
    assert moves == [{"status": "in_progress"}]


@pytest.mark.postgres_only
async def test_batches_racing_with_the_same_keys_in_another_order_both_succeed(
    client, kernel, worker_headers, make_lot
):
    """A station's retry may regroup its outbox. Each row insert is slowed in the database (a test-only trigger),
    so the two transactions overlap for certain instead of now and then."""
    lot = await make_lot()
    async with kernel.sessionmaker() as session:
        await session.execute(
            text(
                "CREATE FUNCTION test_slow_insert() RETURNS trigger AS $$ "
                "BEGIN PERFORM pg_sleep(0.2); RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        await session.execute(
            text(
                "CREATE TRIGGER test_slow_insert BEFORE INSERT ON process_records "
                "FOR EACH ROW EXECUTE FUNCTION test_slow_insert()"
            )
        )
        await session.commit()
    first, second = _record(lot["lot_number"]), _record(lot["lot_number"])
    answers = await asyncio.gather(
        client.post(f"{RECORDS}/batch", json={"records": [first, second]}, headers=worker_headers),
        client.post(f"{RECORDS}/batch", json={"records": [second, first]}, headers=worker_headers),
    )
    assert [r.status_code for r in answers] == [200, 200], [r.text for r in answers]
    outcomes = sorted(x["status"] for r in answers for x in r.json()["results"])
    assert outcomes == ["created", "created", "duplicate", "duplicate"]
    assert await _count(kernel) == 2


@pytest.mark.postgres_only
async def test_a_key_held_by_a_stalled_transaction_answers_503_within_seconds_then_the_retry_finds_one(
    client, kernel, worker_headers, make_lot
):
    """A node froze halfway through inserting a record (its transaction holds the key, uncommitted);
    nginx sends the same request here. The insert waits at most ``record_lock_timeout_seconds``, then
    answers 503 with Retry-After; once the stalled transaction commits, the retry gets that record.
    Nothing doubled; nothing acknowledged lost."""
    lot = await make_lot()
    body = _record(lot["lot_number"])
    record_in = RecordIn.model_validate(body)
    principal = Principal(kind="user", id=1, name="worker", role="worker")
    async with kernel.sessionmaker() as stalled:
        await create_record(session=stalled, cache=kernel.cache, record_in=record_in, principal=principal)
        # ... and the node stops here, its transaction open.
        started = asyncio.get_running_loop().time()
        answer = await asyncio.wait_for(client.post(RECORDS, json=body, headers=worker_headers), timeout=30)
        waited = asyncio.get_running_loop().time() - started
        assert answer.status_code == 503, answer.text
        assert answer.json()["detail"]["code"] == "SERVICE_UNAVAILABLE"
        assert int(answer.headers["Retry-After"]) >= 1
        # Two waits at most (the group transaction, then the row alone), far below a freeze's length.
        assert waited < 3 * kernel.settings.record_lock_timeout_seconds + 10, waited
        await stalled.commit()  # the node thaws: its record is stored and answered to nobody
    retry = await client.post(RECORDS, json=body, headers=worker_headers)
    assert retry.status_code == 200, retry.text  # the stored one, not a second
    assert await _count(kernel, ProcessRecord.idempotency_key == body["idempotency_key"]) == 1


@pytest.mark.postgres_only
async def test_a_key_whose_stalled_transaction_rolls_back_is_stored_by_the_retry(
    client, kernel, worker_headers, make_lot
):
    lot = await make_lot()
    body = _record(lot["lot_number"])
    record_in = RecordIn.model_validate(body)
    principal = Principal(kind="user", id=1, name="worker", role="worker")
    async with kernel.sessionmaker() as stalled:
        await create_record(session=stalled, cache=kernel.cache, record_in=record_in, principal=principal)
        answer = await asyncio.wait_for(client.post(RECORDS, json=body, headers=worker_headers), timeout=30)
        assert answer.status_code == 503, answer.text
        await stalled.rollback()  # the frozen node's session was ended (or its insert failed)
    retry = await client.post(RECORDS, json=body, headers=worker_headers)
    assert retry.status_code == 201, retry.text
    assert await _count(kernel, ProcessRecord.idempotency_key == body["idempotency_key"]) == 1


@pytest.mark.postgres_only
async def test_a_batch_holding_a_key_a_stalled_transaction_holds_answers_503_within_seconds_writing_nothing(
    client, kernel, worker_headers, make_lot
):
    lot = await make_lot()
    held = _record(lot["lot_number"])
    free = _record(lot["lot_number"])
    principal = Principal(kind="user", id=1, name="worker", role="worker")
    async with kernel.sessionmaker() as stalled:
        await create_record(
            session=stalled, cache=kernel.cache, record_in=RecordIn.model_validate(held), principal=principal
        )
        answer = await asyncio.wait_for(
            client.post(f"{RECORDS}/batch", json={"records": [free, held]}, headers=worker_headers), timeout=30
        )
        assert answer.status_code == 503, answer.text
        assert answer.json()["detail"]["code"] == "SERVICE_UNAVAILABLE" and "retry-after" in answer.headers
        await stalled.commit()
    assert await _count(kernel, ProcessRecord.idempotency_key == free["idempotency_key"]) == 0  # all or nothing
    again = await client.post(f"{RECORDS}/batch", json={"records": [free, held]}, headers=worker_headers)
    assert again.status_code == 200, again.text
    assert (again.json()["created"], again.json()["duplicates"]) == (1, 1), again.json()


@pytest.mark.postgres_only
async def test_records_grouped_with_a_held_key_go_through_and_only_the_held_one_answers_503(
    client, kernel, worker_headers, make_lot
):
    """Requests arriving together share one transaction; when a stalled transaction holds one of
    their keys, the group is split and only that record is refused — the others are stored.

    The stalled record is of another LOT and product, so it shares no LOT row and no KPI counter
    row with the others (a record of the same bucket may meet the stalled transaction's counter
    row and answer 503 too: one chance in ``SHARDS`` per try)."""
    stalled_lot = await make_lot(product="PRD-STALLED")
    lot = await make_lot()
    for number in (stalled_lot["lot_number"], lot["lot_number"]):  # both in progress: no LOT row is taken
        r = await client.post(RECORDS, json=_record(number), headers=worker_headers)
        assert r.status_code == 201, r.text
    held = _record(stalled_lot["lot_number"])
    others = [_record(lot["lot_number"]) for _ in range(8)]
    principal = Principal(kind="user", id=1, name="worker", role="worker")
    async with kernel.sessionmaker() as stalled:
        await create_record(
            session=stalled, cache=kernel.cache, record_in=RecordIn.model_validate(held), principal=principal
        )
        answers = await asyncio.wait_for(
            asyncio.gather(*(client.post(RECORDS, json=body, headers=worker_headers) for body in [held, *others])),
            timeout=60,
        )
        assert answers[0].status_code == 503, answers[0].text
        assert [a.status_code for a in answers[1:]] == [201] * len(others), [a.text for a in answers[1:]]
        await stalled.rollback()
    for body in others:
        assert await _count(kernel, ProcessRecord.idempotency_key == body["idempotency_key"]) == 1
