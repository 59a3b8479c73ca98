"""The audit trail: who/when/what/before/after/request id/client for every change, append-only, tamper-evident."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from mes_kernel.app import create_app
from mes_kernel.audit import (
    audit_row,
    entries_digest,
    entry_hash,
    seal_hash,
    seal_pending,
    verify,
    write_audit_rows,
)
from mes_kernel.db.models import AuditEntry, AuditSeal, Device, Line

API = "/api/v1"
TRIGGERS = ("audit_log_no_update", "audit_log_no_delete", "audit_seals_no_update", "audit_seals_no_delete")


async def _entries(kernel, **where) -> list[AuditEntry]:
    async with kernel.sessionmaker() as session:
        query = select(AuditEntry).order_by(AuditEntry.id)
        for column, value in where.items():
            query = query.where(getattr(AuditEntry, column) == value)
        return list((await session.execute(query)).scalars())


async def _count(kernel) -> int:
    async with kernel.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(AuditEntry))).scalar_one()


async def _seal_all(kernel, limit: int = 10_000) -> int:
    blocks = 0
    async with kernel.sessionmaker() as session:
        while await seal_pending(session, grace_seconds=0, limit=limit):
            await session.commit()
            blocks += 1
    return blocks


async def _verify(kernel):
    async with kernel.sessionmaker() as session:
        return await verify(session)


def _content(entry: AuditEntry) -> dict:
    return {
        c: getattr(entry, c)
        for c in ("occurred_at", "actor", "action", "entity", "entity_id", "before", "after", "request_id", "client_ip")
    }


async def _tamper(kernel, *statements: str, **params) -> None:
    """Run statements with the append-only guard switched off, as an attacker with DDL rights would."""
    async with kernel.sessionmaker() as session:
        if session.bind.dialect.name == "postgresql":
            await session.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            await session.execute(text("ALTER TABLE audit_seals DISABLE TRIGGER USER"))
        else:
            for trigger in TRIGGERS:
                await session.execute(text(f"DROP TRIGGER IF EXISTS {trigger}"))
        for statement in statements:
            await session.execute(text(statement), params)
        await session.commit()


async def test_every_change_is_audited_with_actor_before_after_request_id_and_client(
    client, kernel, manager_headers, admin_headers
):
    r = await client.post(
        f"{API}/lots",
        json={"lot_number": "LOT-AUD", "product": "PRD-1", "quantity": 5},
        headers={**manager_headers, "X-Request-ID": "req-create-lot"},
    )
    assert r.status_code == 201, r.text
    assert r.headers["x-request-id"] == "req-create-lot"
    r = await client.patch(
        f"{API}/lots/LOT-AUD",
        json={"status": "on_hold", "note": "waiting for parts"},
        headers={**manager_headers, "X-Request-ID": "req-hold-lot"},
    )
    assert r.status_code == 200, r.text

    created, updated = await _entries(kernel, entity="lot", entity_id="LOT-AUD")
    assert (created.actor, created.action, created.before) == ("user:manager", "create", None)
    assert created.after["product"] == "PRD-1"
    assert created.after["quantity"] == 5
    assert created.after["status"] == "created"
    assert (created.request_id, created.client_ip) == ("req-create-lot", "127.0.0.1")
    assert created.occurred_at.utcoffset().total_seconds() == 0
    assert (updated.actor, updated.action, updated.request_id) == ("user:manager", "update", "req-hold-lot")
    assert (updated.before["status"], updated.after["status"]) == ("created", "on_hold")
    assert (updated.before["note"], updated.after["note"]) == ("", "waiting for parts")
    assert updated.occurred_at >= created.occurred_at

    # A delete keeps what was deleted: a device dropped from its line's configuration.
    async with kernel.sessionmaker() as session:
        line = Line(code="LINE-D", name="Line D", config={"plugins": None, "breakers": {}})
        session.add(line)
        await session.flush()
        session.add(
            Device(code="PRN-GONE", kind="label_printer", driver="simulator", line_id=line.id, config={"dpi": 203})
        )
        await session.commit()
    r = await client.put(
        f"{API}/lines/LINE-D",
        json={"name": "Line D", "devices": []},
        headers={**admin_headers, "X-Request-ID": "req-drop-device"},
    )
    assert r.status_code == 200, r.text
    (deleted,) = await _entries(kernel, entity="device", entity_id="PRN-GONE")
    assert (deleted.action, deleted.actor, deleted.request_id, deleted.after) == (
        "delete",
        "user:admin",
        "req-drop-device",
        None,
    )
    assert deleted.before == {"kind": "label_printer", "driver": "simulator", "config": {"dpi": 203}}

    # Without X-Request-ID the kernel makes one up and still records it.
    r = await client.post(f"{API}/processes", json={"id": "STEP-9", "name": "nine"}, headers=manager_headers)
    assert r.status_code == 201
    (step,) = await _entries(kernel, entity="process", entity_id="STEP-9")
    assert step.request_id == r.headers["x-request-id"]
    assert len(step.request_id) >= 16

    # Secrets never reach the trail: a user created and given a new password leaves no hash behind.
    r = await client.post(
        f"{API}/users",
        json={"username": "carol", "password": "carol-secret-1", "role": "worker"},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    r = await client.patch(f"{API}/users/carol", json={"password": "carol-secret-2"}, headers=admin_headers)
    assert r.status_code == 200, r.text
    user_entries = await _entries(kernel, entity="user", entity_id="carol")
    assert [e.action for e in user_entries] == ["create", "update"]
    trail = repr([(e.before, e.after) for e in user_entries])
    for secret in ("carol-secret", "$2b$", "password"):
        assert secret not in trail, trail

    # A client cannot choose its audited address, and an over-long request id is cut, not refused.
    r = await client.patch(
        f"{API}/lots/LOT-AUD",
        json={"note": "spoofed"},
        headers={**manager_headers, "X-Request-ID": "r" * 300, "X-Forwarded-For": "6.6.6.6"},
    )
    assert r.status_code == 200, r.text
    spoofed = (await _entries(kernel, entity="lot", entity_id="LOT-AUD"))[-1]
    assert (spoofed.client_ip, spoofed.request_id) == ("127.0.0.1", "r" * 64)

    # Admins read the trail through the API, with filters.
    listed = await client.get(f"{API}/audit", params={"entity": "lot", "entity_id": "LOT-AUD"}, headers=admin_headers)
    assert listed.status_code == 200, listed.text
    assert [(e["action"], e["request_id"]) for e in listed.json()["items"]] == [
        ("update", "r" * 64),
        ("update", "req-hold-lot"),
        ("create", "req-create-lot"),
    ]  # newest first
    by_actor = (await client.get(f"{API}/audit", params={"actor": "user:admin"}, headers=admin_headers)).json()
    assert {e["entity_id"] for e in by_actor["items"]} == {"PRN-GONE", "carol"}
    since = created.occurred_at.isoformat()
    window = await client.get(
        f"{API}/audit", params={"since": since, "action": "create", "entity": "lot"}, headers=admin_headers
    )
    assert window.json()["total"] == 1
    assert (await client.get(f"{API}/audit", headers=manager_headers)).status_code == 403


async def test_records_in_a_batch_are_audited_with_request_id_and_client(client, kernel, worker_headers, make_lot):
    lot = await make_lot()
    items = [
        {
            "idempotency_key": f"audit-batch-{i}",
            "lot_number": lot["lot_number"],
            "process_id": "ASSY-10",
            "worker_id": "W-1",
            "result": "pass",
        }
        for i in range(2)
    ]
    r = await client.post(
        f"{API}/process-records/batch", json={"records": items}, headers={**worker_headers, "X-Request-ID": "req-batch"}
    )
    assert r.status_code == 200, r.text
    records = await _entries(kernel, entity="process_record")
    assert [(e.actor, e.request_id, e.client_ip) for e in records] == [("user:worker", "req-batch", "127.0.0.1")] * 2
    assert sorted(e.after["idempotency_key"] for e in records) == ["audit-batch-0", "audit-batch-1"]
    (started,) = await _entries(kernel, entity="lot", entity_id=lot["lot_number"], action="update")
    assert (started.request_id, started.after) == ("req-batch", {"status": "in_progress"})


async def test_a_single_record_is_audited_with_its_request_id_and_client(client, kernel, worker_headers, make_lot):
    lot = await make_lot()
    body = {
        "idempotency_key": "audit-single-1",
        "lot_number": lot["lot_number"],
        "process_id": "ASSY-10",
        "worker_id": "W-1",
        "result": "pass",
    }
    r = await client.post(f"{API}/process-records", json=body, headers={**worker_headers, "X-Request-ID": "req-one"})
    assert r.status_code == 201, r.text
    (record,) = await _entries(kernel, entity="process_record")
    assert (record.actor, record.entity_id, record.after["idempotency_key"]) == (
        "user:worker",
        str(r.json()["id"]),
        "audit-single-1",
    )
    assert (record.request_id, record.client_ip) == ("req-one", "127.0.0.1")
    (started,) = await _entries(kernel, entity="lot", entity_id=lot["lot_number"], action="update")
    assert (started.request_id, started.client_ip) == ("req-one", "127.0.0.1")


async def test_a_failed_request_writes_no_audit_entry(client, kernel, manager_headers, worker_headers, make_lot):
    lot = await make_lot(units=1)
    number = lot["lot_number"]
    r = await client.patch(f"{API}/lots/{number}", json={"status": "in_progress"}, headers=manager_headers)
    assert r.status_code == 200
    before = await _count(kernel)

    failures = [
        client.post(f"{API}/lots", json={"lot_number": number, "product": "P"}, headers=manager_headers),
        client.patch(f"{API}/lots/{number}", json={"status": "created"}, headers=manager_headers),
        client.post(
            f"{API}/lots/{number}/units", json={"serial_numbers": lot["serial_numbers"]}, headers=manager_headers
        ),
        client.post(f"{API}/processes", json={"id": "ASSY-10", "name": "again"}, headers=manager_headers),
        client.post(
            f"{API}/process-records",
            json={"idempotency_key": "audit-fail-1", "lot_number": number, "process_id": "NOPE-1", "result": "pass"},
            headers=worker_headers,
        ),
        client.post(f"{API}/lots", json={"lot_number": "LOT-NEW", "product": "P"}, headers=worker_headers),
    ]
    statuses = []
    for request in failures:
        statuses.append((await request).status_code)
    assert statuses == [409, 409, 409, 409, 404, 403]
    assert await _count(kernel) == before


async def test_the_database_refuses_update_and_delete_of_audit_rows(client, kernel, manager_headers, make_lot):
    await make_lot(units=6)
    entries = await _count(kernel)
    assert await _seal_all(kernel, limit=2) == (entries + 1) // 2  # many small blocks, chained
    for chunk in (1, 2, 3, 5000):  # verification reads in chunks: block and chunk boundaries must not matter
        async with kernel.sessionmaker() as session:
            result = await verify(session, chunk=chunk)
        assert (result.ok, result.entries_checked, result.seals_checked) == (True, entries, (entries + 1) // 2)
    for statement in (
        "UPDATE audit_log SET actor = 'mallory'",
        "DELETE FROM audit_log",
        "UPDATE audit_seals SET prev_hash = 'x'",
        "DELETE FROM audit_seals",
    ):
        async with kernel.sessionmaker() as session:
            try:
                await session.execute(text(statement))
                await session.commit()
            except DBAPIError as exc:
                assert "append-only" in str(exc), statement
            else:
                raise AssertionError(f"the database accepted: {statement}")
    assert (await _verify(kernel)).ok


async def test_sealed_trail_verifies_and_tampering_names_the_first_broken_link(client, kernel, admin_headers, make_lot):
    await make_lot(units=3)  # first block: the LOT and its units
    await _seal_all(kernel)
    await make_lot(units=2)  # second block
    await _seal_all(kernel)
    await make_lot()  # not sealed yet
    async with kernel.sessionmaker() as session:
        seals = list((await session.execute(select(AuditSeal).order_by(AuditSeal.id))).scalars())
    assert len(seals) == 2
    assert seals[1].prev_hash == seals[0].seal_hash
    first_block, second_block = seals
    ok = await _verify(kernel)
    assert ok.ok, ok
    assert (ok.seals_checked, ok.unsealed) == (2, 1)
    assert ok.entries_checked == await _count(kernel)
    api = await client.get(f"{API}/audit/verify", headers=admin_headers)
    assert api.status_code == 200
    assert api.json()["ok"] is True

    entries = await _entries(kernel)
    in_second = [e for e in entries if second_block.first_id <= e.id <= second_block.last_id]
    target, later = in_second[0], in_second[-1]

    # 1. An entry's content changes: that entry is named (the first one, when two are changed).
    await _tamper(kernel, "UPDATE audit_log SET actor = 'user:mallory' WHERE id IN (:a, :b)", a=target.id, b=later.id)
    result = await _verify(kernel)
    assert (result.ok, result.broken_entry_id) == (False, target.id), result
    assert "hash" in result.reason
    await _tamper(
        kernel, "UPDATE audit_log SET actor = :actor WHERE id IN (:a, :b)", actor=target.actor, a=target.id, b=later.id
    )
    assert (await _verify(kernel)).ok

    # 2. The entry is changed and its own hash recomputed: its block's digest no longer matches.
    await _tamper(
        kernel,
        "UPDATE audit_log SET actor = 'user:mallory', row_hash = :h WHERE id = :id",
        h=entry_hash(_content(target) | {"actor": "user:mallory"}),
        id=target.id,
    )
    result = await _verify(kernel)
    assert (result.ok, result.broken_seal_id, result.broken_entry_id) == (False, second_block.id, None), result
    assert "digest" in result.reason
    await _tamper(
        kernel,
        "UPDATE audit_log SET actor = :actor, row_hash = :h WHERE id = :id",
        actor=target.actor,
        h=target.row_hash,
        id=target.id,
    )
    assert (await _verify(kernel)).ok

    # 3. An entry of the first block rewritten with its hash, digest and seal all recomputed:
    #    the next seal's link to it breaks.
    in_first = [e for e in entries if first_block.first_id <= e.id <= first_block.last_id]
    victim = in_first[1]
    forged_hash = entry_hash(_content(victim) | {"actor": "user:mallory"})
    hashes = [forged_hash if e.id == victim.id else e.row_hash for e in in_first]
    digest = entries_digest(hashes)
    resealed = seal_hash(first_block.prev_hash, first_block.first_id, first_block.last_id, len(hashes), digest)
    await _tamper(
        kernel,
        "UPDATE audit_log SET actor = 'user:mallory', row_hash = :h WHERE id = :id",
        "UPDATE audit_seals SET entries_digest = :d, seal_hash = :s WHERE id = :sid",
        h=forged_hash,
        id=victim.id,
        d=digest,
        s=resealed,
        sid=first_block.id,
    )
    result = await _verify(kernel)
    assert (result.ok, result.broken_seal_id) == (False, second_block.id), result
    assert "chain" in result.reason

    # 4. A seal whose own hash was changed is named itself (the first broken link wins over later ones).
    await _tamper(kernel, "UPDATE audit_seals SET seal_hash = :s WHERE id = :sid", s="f" * 64, sid=first_block.id)
    result = await _verify(kernel)
    assert (result.ok, result.broken_seal_id) == (False, first_block.id), result


async def test_removed_or_inserted_entries_break_their_block(client, kernel, make_lot):
    await make_lot(units=2)
    await _seal_all(kernel)
    await make_lot()
    await _seal_all(kernel)
    async with kernel.sessionmaker() as session:
        first_block = (await session.execute(select(AuditSeal).order_by(AuditSeal.id).limit(1))).scalar_one()
    victim = first_block.first_id + 1
    await _tamper(kernel, "DELETE FROM audit_log WHERE id = :id", id=victim)
    result = await _verify(kernel)
    assert (result.ok, result.broken_seal_id) == (False, first_block.id), result
    assert "entries" in result.reason

    # Truncating the whole trail cannot hide either: the seals outlive the entries they cover.
    await _tamper(kernel, "DELETE FROM audit_log")
    result = await _verify(kernel)
    assert result.ok is False
    assert result.broken_seal_id == first_block.id


@pytest.mark.postgres_only
async def test_postgres_refuses_truncate_of_the_audit_trail(client, kernel, make_lot):
    await make_lot()
    async with kernel.sessionmaker() as session:
        try:
            await session.execute(text("TRUNCATE audit_log"))
            await session.commit()
        except DBAPIError as exc:
            assert "append-only" in str(exc)
        else:
            raise AssertionError("TRUNCATE audit_log was accepted")
    assert await _count(kernel) > 0


# ------------------------------------------------------------------ sealing under concurrent writers


async def _insert(kernel, *rows: dict) -> None:
    async with kernel.sessionmaker() as session:
        await write_audit_rows(session, list(rows))
        await session.commit()


async def test_entries_committed_out_of_timestamp_order_seal_without_a_false_alarm(client, kernel):
    """Two requests: the first takes its timestamp, the second takes a later one but inserts first."""
    early = audit_row(actor="user:a", action="create", entity="lot", entity_id="LOT-EARLY", after={"n": 1})
    await asyncio.sleep(0.3)
    late = audit_row(actor="user:b", action="create", entity="lot", entity_id="LOT-LATE", after={"n": 2})
    await _insert(kernel, late)  # lower id, later timestamp
    await _insert(kernel, early)  # higher id, earlier timestamp
    # The sealer's cutoff falls between the two timestamps (as it will, now and then, under load).
    cutoff = early["occurred_at"] + timedelta(seconds=0.15)
    async with kernel.sessionmaker() as session:
        await seal_pending(session, grace_seconds=(datetime.now(UTC) - cutoff).total_seconds())
        await session.commit()
    await _seal_all(kernel)
    result = await _verify(kernel)
    assert result.ok, result


@pytest.mark.postgres_only
async def test_an_entry_committed_after_a_seal_passed_its_id_is_no_false_alarm(client, kernel):
    """A slow transaction holds a lower id while a faster one commits a higher id and the sealer runs."""
    async with kernel.sessionmaker() as slow:
        await write_audit_rows(slow, [audit_row(actor="user:slow", action="create", entity="lot", entity_id="S")])
        await slow.flush()  # id taken, not yet committed
        await _insert(kernel, audit_row(actor="user:fast", action="create", entity="lot", entity_id="F"))
        # grace 0 stands for "the slow transaction stayed open longer than the grace period"
        await _seal_all(kernel)
        await slow.commit()
    await _seal_all(kernel)
    result = await _verify(kernel)
    assert result.ok, result


async def test_the_running_kernel_seals_entries_in_the_background(settings, kernel, manager_headers):
    """The lifespan's sealer chains new entries into blocks without anyone asking."""
    eager = settings.model_copy(update={"audit_seal_interval_seconds": 0.05, "audit_seal_grace_seconds": 0.0})
    app = create_app(eager, load_entry_points=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50002))
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as c:
            r = await c.post(f"{API}/lots", json={"lot_number": "LOT-SEALED", "product": "P"}, headers=manager_headers)
            assert r.status_code == 201, r.text
            (entry,) = await _entries(kernel, entity="lot", entity_id="LOT-SEALED")
            sealed = False
            for _ in range(60):  # at most ~3 s
                async with kernel.sessionmaker() as session:
                    sealed = bool(
                        (
                            await session.execute(
                                select(func.count()).select_from(AuditSeal).where(AuditSeal.last_id >= entry.id)
                            )
                        ).scalar()
                    )
                if sealed:
                    break
                await asyncio.sleep(0.05)
    assert sealed, "no seal covered the new entry"
    result = await _verify(kernel)
    assert result.ok and result.seals_checked >= 1, result


async def _until(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, f"no {what} within {timeout}s"
        await asyncio.sleep(0.05)


async def _sealer_sessions(kernel) -> list[str]:
    """application_name of every session holding the sealer's election lock."""
    from mes_kernel.audit_sealer import SEALER_LOCK_KEY

    async with kernel.sessionmaker() as session:
        rows = await session.execute(
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND ((l.classid::bigint << 32) | l.objid::bigint) = :k"
            ),
            {"k": SEALER_LOCK_KEY},
        )
        return [r[0] for r in rows]


@pytest.mark.postgres_only
async def test_one_sealer_is_elected_among_workers_and_another_takes_over_when_it_stops(
    settings, kernel, manager_headers
):
    """Three "workers" (apps on one database) campaign every 50 ms; one holds the advisory lock and
    seals, the others stand by. When the sealer's process goes away, another is elected and seals."""
    eager = settings.model_copy(update={"audit_seal_interval_seconds": 0.05, "audit_seal_grace_seconds": 0.0})
    apps = [create_app(eager, load_entry_points=False) for _ in range(3)]
    lifespans = [app.router.lifespan_context(app) for app in apps]
    for lifespan in lifespans:
        await lifespan.__aenter__()
    running = list(range(3))
    try:
        sealers = [app.state.kernel.state["audit_sealer"] for app in apps]

        async def elected() -> bool:
            roles = sorted(sealers[i].role for i in running)
            return roles == ["sealer"] + ["standby"] * (len(running) - 1)

        await _until(elected, "single sealer")
        await asyncio.sleep(0.5)  # ten more rounds of campaigning change nothing
        assert await elected(), [s.role for s in sealers]
        leader = next(i for i in running if sealers[i].role == "sealer")
        assert await _sealer_sessions(kernel) == [sealers[leader].name]

        await lifespans[leader].__aexit__(None, None, None)  # the sealer's worker stops (or dies)
        running.remove(leader)
        await _until(elected, "a new sealer")
        (successor,) = [i for i in running if sealers[i].role == "sealer"]
        assert await _sealer_sessions(kernel) == [sealers[successor].name]

        transport = httpx.ASGITransport(app=apps[successor], client=("127.0.0.1", 50003))
        async with httpx.AsyncClient(transport=transport, base_url="http://mes.test") as c:
            r = await c.post(f"{API}/lots", json={"lot_number": "LOT-AFTER", "product": "P"}, headers=manager_headers)
            assert r.status_code == 201, r.text
        (entry,) = await _entries(kernel, entity="lot", entity_id="LOT-AFTER")

        async def sealed() -> bool:
            async with kernel.sessionmaker() as session:
                query = select(func.count()).select_from(AuditSeal).where(AuditSeal.last_id >= entry.id)
                return bool((await session.execute(query)).scalar())

        await _until(sealed, "seal by the new sealer")
    finally:
        for i in running:
            await lifespans[i].__aexit__(None, None, None)
    result = await _verify(kernel)
    assert result.ok and result.unsealed == 0, result
