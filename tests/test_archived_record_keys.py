"""An archived month keeps its records' idempotency keys for as long as a retry can arrive (the
station-time window after receipt): a retry of an archived record — single, in a batch, restamped
by the station, or one whose station time lies just after the month's end — is answered as the
duplicate it is (200, ``archived``), never refused for its month nor stored twice; the keys of
archived months are pruned only after the window; a restore still brings the records back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mes_station.outbox import PROCESS_RECORD, Outbox

from mes_kernel.db import archive, partitions
from mes_kernel.db.base import make_engine
from mes_kernel.db.models import ArchivedMonth, ProcessRecordKey
from mes_kernel.db.record_keys import prune_keys, retry_window
from mes_kernel.testing.helpers import record_body
from mes_kernel.testing.helpers import run_sql as _sql

API = "/api/v1"
SECOND = timedelta(seconds=1)
TOTAL = "SELECT coalesce(sum(total), 0) FROM kpi_hourly"



async def _move(settings, key: str, *, received: datetime, happened: datetime) -> None:
    """Make the record stored under ``key`` (its key row and history entry too) one received at
    ``received`` that happened at ``happened`` at the station."""
    await _sql(
        settings, "UPDATE process_record_keys SET created_at = :at WHERE idempotency_key = :k", at=received, k=key
    )
    await _sql(
        settings,
        "UPDATE trace_events t SET received_at = :at, recorded_at = :ev FROM process_records r "
        "WHERE t.kind = 'process_record' AND t.source_id = r.id AND r.idempotency_key = :k",
        at=received,
        ev=happened,
        k=key,
    )
    await _sql(
        settings,
        "UPDATE process_records SET created_at = :at, event_at = :ev, recorded_at = :ev WHERE idempotency_key = :k",
        at=received,
        ev=happened,
        k=key,
    )


def _archived(r, key: str, month: partitions.Month) -> None:
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["idempotency_key"] == key and answer["duplicate"] is True and answer["archived"] is True, answer
    assert answer["archived_month"] == f"{month.year:04d}-{month.month:02d}", answer


async def _keys(settings, keys: list[str]) -> set[str]:
    rows = await _sql(
        settings, "SELECT idempotency_key FROM process_record_keys WHERE idempotency_key = ANY(:k)", k=keys
    )
    return {key for (key,) in rows}


@pytest.mark.postgres_only
async def test_a_retry_of_an_archived_record_is_a_duplicate_until_its_key_is_pruned_after_the_window(
    settings, client, kernel, make_lot, worker_headers, tmp_path
):
    month = partitions.Month(datetime.now(UTC).year - 2, 3)  # an old March (31 days), well before "archive"
    after = month.next()
    now = after.start + timedelta(days=2)  # the kernel's clock: the retries come two days into April
    kernel.clock = lambda: now
    engine = make_engine(settings)
    try:
        await partitions.ensure_partitions(engine, today=month.start.date(), ahead=1)
        lot = await make_lot()
        plain, boundary = record_body(lot["lot_number"]), record_body(lot["lot_number"])
        for body in (plain, boundary):
            r = await client.post(f"{API}/process-records", json=body, headers=worker_headers)
            assert r.status_code == 201, r.text
        # plain: received and done on 20 March; boundary: received at 23:59:58 on 31 March from a
        # station whose (corrected) clock already said 1 April 00:00:03 — within the clock lead.
        plain_at = month.start + timedelta(days=19)
        late = after.start - 2 * SECOND
        await _move(settings, plain["idempotency_key"], received=plain_at, happened=plain_at)
        await _move(settings, boundary["idempotency_key"], received=late, happened=after.start + 3 * SECOND)
        await _sql(
            settings,
            "UPDATE lots SET created_at = :at WHERE lot_number = :n",
            at=plain_at - timedelta(days=1),
            n=lot["lot_number"],
        )
        window = retry_window(kernel.settings)
        [done] = await archive.archive_partitions(
            engine,
            database_url=settings.database_url,
            before=after.start.date(),
            backup_dir=tmp_path / "backups",
            keep_keys=window,
            now=now,
        )
        keys = [plain["idempotency_key"], boundary["idempotency_key"]]
        assert await _keys(settings, keys) == set(keys)  # archived two days ago: within the window
        counted = await _sql(settings, TOTAL)

        # The station resends: the original body, as a single POST and in a batch.
        retry = {**plain, "recorded_at": plain_at.isoformat()}
        _archived(
            await client.post(f"{API}/process-records", json=retry, headers=worker_headers),
            plain["idempotency_key"],
            month,
        )
        r = await client.post(f"{API}/process-records/batch", json={"records": [retry]}, headers=worker_headers)
        assert r.status_code == 200 and r.json()["duplicates"] == 1, r.text
        [item] = r.json()["results"]
        assert item["status"] == "duplicate" and item["record"]["archived"] is True, item
        # The record received 2 s before midnight with a station time of the next (online) month.
        retry_late = {**boundary, "recorded_at": (after.start + 3 * SECOND).isoformat()}
        _archived(
            await client.post(f"{API}/process-records", json=retry_late, headers=worker_headers),
            boundary["idempotency_key"],
            month,
        )
        # The station's restamp (`mes-station outbox retry --restamp`): same key, no station time.
        with Outbox(tmp_path / "outbox.db") as outbox:
            outbox.enqueue(PROCESS_RECORD, retry, idempotency_key=plain["idempotency_key"])
            outbox.mark_rejected(plain["idempotency_key"], "IMPLAUSIBLE_TIME: recorded_at falls in an archived month")
            assert outbox.restamp() == 1
            [restamped] = outbox.pending(10)
        assert "recorded_at" not in restamped.body
        _archived(
            await client.post(f"{API}/process-records", json=restamped.body, headers=worker_headers),
            plain["idempotency_key"],
            month,
        )
        assert await _sql(settings, "SELECT count(*) FROM process_records WHERE idempotency_key = ANY(:k)", k=keys) == [
            (0,)
        ]  # nothing stored a second time
        assert await _sql(settings, TOTAL) == counted  # no rollup counted a record again

        # Pruned only once no retry can arrive: received + max age + max lead.
        assert await prune_keys(engine, keep=window, now=late + window) == 1  # plain's window has passed
        assert await _keys(settings, keys) == {boundary["idempotency_key"]}
        assert await prune_keys(engine, keep=window, now=late + window - SECOND) == 0
        assert await prune_keys(engine, keep=window, now=late + window + SECOND) == 1
        assert await _keys(settings, keys) == set()
        online = record_body(lot["lot_number"])
        kernel.clock = lambda: datetime.now(UTC)
        assert (await client.post(f"{API}/process-records", json=online, headers=worker_headers)).status_code == 201
        assert await prune_keys(engine, keep=window, now=datetime.now(UTC) + 10 * window) == 0  # not archived
        assert await _keys(settings, [online["idempotency_key"]]) == {online["idempotency_key"]}

        # A restore brings the month back with its keys claimed again; a retry gets the original.
        await archive.restore_month(engine, database_url=settings.database_url, dump=Path(done["dump"]))
        kernel.clock = lambda: now
        r = await client.post(f"{API}/process-records", json=plain, headers=worker_headers)  # as first sent
        assert r.status_code == 200 and "archived" not in r.json() and r.json()["id"], r.text
    finally:
        await engine.dispose()


async def test_a_key_claimed_in_an_archived_month_answers_the_duplicate_on_either_database(
    client, kernel, make_lot, worker_headers
):
    """SQLite has no archive, but the answer path is the same: a key whose record is offline."""
    lot = await make_lot()
    march = datetime(2026, 3, 1, tzinfo=UTC)
    kernel.clock = lambda: datetime(2026, 4, 2, tzinfo=UTC)
    body = record_body(lot["lot_number"], recorded_at=march + timedelta(days=30, hours=23))
    async with kernel.sessionmaker() as session:
        session.add(ArchivedMonth(month_start=march, state="archived"))
        session.add(ProcessRecordKey(idempotency_key=body["idempotency_key"], created_at=march + timedelta(days=30)))
        await session.commit()
    r = await client.post(f"{API}/process-records", json=body, headers=worker_headers)
    _archived(r, body["idempotency_key"], partitions.Month(2026, 3))
    assert r.json()["created_at"] == (march + timedelta(days=30)).isoformat()
    r = await client.post(
        f"{API}/process-records/batch", json={"records": [body, record_body(lot["lot_number"])]}, headers=worker_headers
    )
    assert [i["status"] for i in r.json()["results"]] == ["duplicate", "created"], r.text
    assert await prune_keys(kernel.engine, keep=timedelta(0)) == (1 if kernel.engine.dialect.name != "sqlite" else 0)
