"""Alembic migrations up and down on SQLite and PostgreSQL; UTC timestamps and foreign keys on both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from mes_kernel.db import partitions as monthly
from mes_kernel.db.base import Base, make_engine, make_sessionmaker
from mes_kernel.db.models import Lot, Process, ProcessRecord, Unit
from mes_kernel.migrate import downgrade, head_revisions, upgrade

KST = timezone(timedelta(hours=9))


async def _inspect(settings, fn):
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


def _tables(sync_conn) -> set[str]:
    return set(inspect(sync_conn).get_table_names())


def _schema_diff(sync_conn) -> list:
    context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


def _versions(sync_conn) -> list[str]:
    return [row[0] for row in sync_conn.execute(text("SELECT version_num FROM alembic_version"))]


def _postgres_leftovers(sync_conn) -> list[str]:
    """Functions, sequences, types and triggers the migrations left behind in the public schema."""
    query = text("""
        SELECT 'function ' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'public'
        UNION ALL SELECT 'sequence ' || sequencename FROM pg_sequences WHERE schemaname = 'public'
        UNION ALL SELECT 'type ' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
            WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c') AND t.typrelid = 0
        UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
    """)
    return [row[0] for row in sync_conn.execute(query)]


async def test_migrations_go_up_down_to_base_and_up_again(settings):
    model_tables = set(Base.metadata.tables)
    assert await _inspect(settings, _tables) == model_tables | {"alembic_version"}
    assert set(await _inspect(settings, _versions)) == set(head_revisions())

    downgrade(settings, "base")
    assert await _inspect(settings, _tables) == {"alembic_version"}
    assert await _inspect(settings, _versions) == []

    if not settings.is_sqlite:
        assert await _inspect(settings, _postgres_leftovers) == []

    upgrade(settings, "head")
    assert await _inspect(settings, _tables) == model_tables | {"alembic_version"}
    assert set(await _inspect(settings, _versions)) == set(head_revisions())
    # The migrated schema is the models' schema: nothing left for autogenerate to add or change.
    assert await _inspect(settings, _schema_diff) == []


async def test_spec_indexes_exist(settings):
    def indexes(sync_conn) -> list[list[str]]:
        return [ix["column_names"] for ix in inspect(sync_conn).get_indexes("process_records")]

    found = await _inspect(settings, indexes)
    for columns in (
        ["lot_number"],
        ["process_id"],
        ["worker_id"],
        ["lot_number", "process_id", "created_at"],
        ["created_at"],
        ["lot_id", "event_at", "id"],
        ["unit_id", "event_at", "id"],
    ):
        assert columns in found, (columns, found)

    def unique_keys(sync_conn) -> list[list[str]]:
        return [uq["column_names"] for uq in inspect(sync_conn).get_unique_constraints("process_records")]

    # Unique per partition (the key with the partition key), and unique across partitions through
    # the key table, whose primary key is the idempotency key alone.
    assert ["idempotency_key", "created_at"] in await _inspect(settings, unique_keys)

    def key_table_pk(sync_conn) -> list[str]:
        return inspect(sync_conn).get_pk_constraint("process_record_keys")["constrained_columns"]

    assert await _inspect(settings, key_table_pk) == ["idempotency_key"]


async def test_timestamps_come_back_timezone_aware_utc(settings):
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    seoul_morning = datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=KST)
    try:
        async with sessionmaker() as session:
            session.add(
                Lot(
                    lot_number="LOT-TZ",
                    product="P",
                    status="created",
                    created_at=seoul_morning,
                    updated_at=seoul_morning,
                )
            )
            await session.commit()
        async with sessionmaker() as session:
            lot = (await session.execute(select(Lot).where(Lot.lot_number == "LOT-TZ"))).scalar_one()
            assert lot.created_at.tzinfo is not None
            assert lot.created_at.utcoffset() == timedelta(0)
            assert lot.created_at == seoul_morning
            assert lot.created_at.hour == 0  # 09:30 in Seoul is 00:30 UTC
            raw = (await session.execute(text("SELECT created_at FROM lots WHERE lot_number = 'LOT-TZ'"))).scalar()
            if engine.dialect.name == "postgresql":
                assert raw.tzinfo is not None
                assert raw == seoul_morning
                kinds = (
                    (
                        await session.execute(
                            text(
                                "SELECT DISTINCT data_type FROM information_schema.columns "
                                "WHERE table_schema = 'public' AND data_type LIKE 'timestamp%'"
                            )
                        )
                    )
                    .scalars()
                    .all()
                )
                assert kinds == ["timestamp with time zone"]
            else:
                assert str(raw).startswith("2026-11-26 00:30:15")  # stored as UTC wall time
        async with sessionmaker() as session:
            session.add(
                Lot(
                    lot_number="LOT-NAIVE",
                    product="P",
                    status="created",
                    created_at=datetime(2026, 11, 26, 9, 30),
                    updated_at=datetime(2026, 11, 26, 9, 30),
                )
            )
            with pytest.raises(StatementError, match="naive datetime"):
                await session.commit()
    finally:
        await engine.dispose()


async def test_foreign_keys_are_enforced(settings):
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            session.add(Unit(serial_number="SN-ORPHAN", lot_id=987654, status="in_progress"))
            with pytest.raises(IntegrityError):
                await session.commit()
        async with sessionmaker() as session:
            lot = Lot(lot_number="LOT-FK", product="P", status="created")
            session.add(lot)
            await session.flush()
            session.add(
                ProcessRecord(
                    idempotency_key="fk-check-0001",
                    request_hash="0" * 64,
                    lot_id=lot.id,
                    lot_number="LOT-FK",
                    process_id="NO-SUCH-STEP",
                    worker_id="W",
                    result="pass",
                    data={},
                    created_by="test",
                    created_at=datetime.now(UTC),
                )
            )
            with pytest.raises(IntegrityError):
                await session.commit()
        async with sessionmaker() as session:
            lot = Lot(lot_number="LOT-RESTRICT", product="P", status="created")
            session.add_all([lot, Process(id="STEP-1", name="s", sequence=1)])
            await session.flush()
            session.add(Unit(serial_number="SN-KEPT", lot_id=lot.id, status="in_progress"))
            await session.commit()
            # A LOT with units cannot be deleted out from under them (ON DELETE RESTRICT).
            with pytest.raises(IntegrityError):
                await session.execute(text("DELETE FROM lots WHERE lot_number = 'LOT-RESTRICT'"))
                await session.commit()
    finally:
        await engine.dispose()


async def test_migration_0009_keeps_existing_records_through_partitioning_and_back(settings):
    """Records stored before 0009 come through upgrade (into a partition, with their key claimed,
    event time and line filled in) and back through downgrade, ids and all."""
    downgrade(settings, "0002")
    engine = make_engine(settings)
    moment = datetime(2026, 10, 15, 8, 30, tzinfo=UTC)
    at = moment.replace(tzinfo=None).isoformat(sep=" ") if settings.is_sqlite else moment
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO lines (id, code, name, config, config_version, created_at, "
                    "updated_at) VALUES (7, 'L-7', '', '{}', 1, :at, :at)"
                ),
                {"at": at},
            )
            await conn.execute(
                text(
                    "INSERT INTO lots (id, lot_number, product, quantity, status, line_id, note, "
                    "created_at, updated_at) VALUES (3, 'LOT-OLD', 'P', 1, 'in_progress', 7, '', "
                    ":at, :at)"
                ),
                {"at": at},
            )
            await conn.execute(
                text(
                    "INSERT INTO processes (id, name, sequence, created_at, updated_at) VALUES ('S-1', '', 1, :at, :at)"
                ),
                {"at": at},
            )
            await conn.execute(
                text(
                    "INSERT INTO process_records (id, idempotency_key, request_hash, lot_id, lot_number, process_id, "
                    "worker_id, result, data, created_by, created_at) VALUES (41, 'old-key-0001', 'h', 3, 'LOT-OLD', "
                    "'S-1', 'W', 'pass', '{}', 'test', :at)"
                ),
                {"at": at},
            )
    finally:
        await engine.dispose()
    upgrade(settings, "head")
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            row = (await conn.execute(text("SELECT id, line_id, event_at, created_at FROM process_records"))).one()
            assert (row.id, row.line_id) == (41, 7)
            assert row.event_at == row.created_at  # no station time: when the server received it
            keys = (await conn.execute(text("SELECT idempotency_key FROM process_record_keys"))).scalars().all()
            assert keys == ["old-key-0001"]
            if not settings.is_sqlite:
                where = (await conn.execute(text("SELECT tableoid::regclass::text FROM process_records"))).scalar()
                assert where == "mes_partitions.process_records_2026_10"
    finally:
        await engine.dispose()
    downgrade(settings, "0002")
    engine = make_engine(settings)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT id, idempotency_key FROM process_records"))).all() == [
                (41, "old-key-0001")
            ]
    finally:
        await engine.dispose()
    upgrade(settings, "head")


async def test_migration_0013_puts_what_exists_into_the_trace_stream_in_station_order(settings):
    """A LOT's creation, its status changes (from the audit log), unit registrations, records (at
    their station time) and device actions stored before 0013 make up its history after it, with
    true totals; the downgrade drops only the stream."""
    from mes_kernel.services import trace

    downgrade(settings, "0009")
    t0 = datetime(2026, 10, 15, 8, 0, tzinfo=UTC)

    def at(minutes: int):
        moment = t0 + timedelta(minutes=minutes)  # on SQLite as SQLAlchemy writes it (times compare as text)
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f") if settings.is_sqlite else moment

    statements = [
        ("INSERT INTO lots (id, lot_number, product, quantity, status, note, created_at, updated_at) "
         "VALUES (3, 'LOT-OLD', 'P', 1, 'in_progress', '', :t0, :t0)", {"t0": at(0)}),
        ("INSERT INTO units (id, serial_number, lot_id, status, created_at, updated_at) "
         "VALUES (5, 'SN-OLD-1', 3, 'in_progress', :t1, :t1)", {"t1": at(1)}),
        ("INSERT INTO processes (id, name, sequence, created_at, updated_at) VALUES ('S-1', '', 1, :t0, :t0)",
         {"t0": at(0)}),
        ("INSERT INTO audit_log (id, occurred_at, actor, action, entity, entity_id, before, after, row_hash) "
         "VALUES (1, :t5, 'user:manager', 'update', 'lot', 'LOT-OLD', :before, :after, 'h')",
         {"t5": at(5), "before": '{"status": "created"}', "after": '{"status": "in_progress"}'}),
        ("INSERT INTO process_record_keys (idempotency_key, created_at) VALUES ('old-key-0001', :t20)",
         {"t20": at(20)}),
        ("INSERT INTO process_records (id, idempotency_key, request_hash, lot_id, lot_number, process_id, worker_id, "
         "unit_id, serial_number, result, data, recorded_at, event_at, created_by, created_at) VALUES (41, "
         "'old-key-0001', 'h', 3, 'LOT-OLD', 'S-1', 'W', 5, 'SN-OLD-1', 'fail', '{\"v\": 1.5}', :t10, :t10, "
         "'station:ST-1', :t20)", {"t10": at(10), "t20": at(20)}),
        ("INSERT INTO device_actions (id, action, plugin, device, driver, driver_version, lot_id, unit_id, "
         "lot_number, serial_number, actor, outcome, detail, created_at) VALUES (9, 'print', 'label_printer', "
         "'PRN-1', 'simulator', '1.0', 3, 5, 'LOT-OLD', 'SN-OLD-1', 'user:worker', 'ok', '{\"copies\": 2}', :t30)",
         {"t30": at(30)}),
    ]
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            for sql, params in statements:
                await conn.execute(text(sql), params)
    finally:
        await engine.dispose()
    upgrade(settings, "head")
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            page = await trace.history(session=session, secret=settings.secret_key, lot_id=3, limit=100)
            unit = await trace.history(session=session, secret=settings.secret_key, unit_id=5, limit=2)
            rest = await trace.history(session=session, secret=settings.secret_key, unit_id=5, limit=2,
                                       before=trace.decode_cursor(unit["next_before"], secret=settings.secret_key,
                                                                  unit_id=5))
    finally:
        await engine.dispose()
    assert page["total"] == 5 and page["next_before"] is None
    assert [(e["type"], e["at"]) for e in page["events"]] == [
        ("device_action", (t0 + timedelta(minutes=30)).isoformat()),
        ("process_record", (t0 + timedelta(minutes=10)).isoformat()),
        ("status_change", (t0 + timedelta(minutes=5)).isoformat()),
        ("registration", (t0 + timedelta(minutes=1)).isoformat()),
        ("status_change", t0.isoformat()),
    ]
    printed, record, started, registered, created = page["events"]
    assert (printed["data"]["id"], printed["data"]["detail"], printed["actor"]) == (9, {"copies": 2}, "user:worker")
    assert (record["data"]["id"], record["data"]["result"], record["data"]["data"]) == (41, "fail", {"v": 1.5})
    assert record["received_at"] == (t0 + timedelta(minutes=20)).isoformat()
    assert (started["data"]["from"], started["data"]["to"], started["actor"]) == ("created", "in_progress",
                                                                                 "user:manager")
    assert (registered["serial_number"], registered["lot_number"]) == ("SN-OLD-1", "LOT-OLD")
    assert (created["data"]["from"], created["data"]["to"]) == (None, "created")
    assert unit["total"] == 3 and [e["type"] for e in unit["events"] + rest["events"]] == [
        "device_action", "process_record", "registration"]
    downgrade(settings, "0009")
    assert not {"trace_events", "trace_totals"} & await _inspect(settings, _tables)
    upgrade(settings, "head")


async def test_migration_0015_moves_trace_events_into_monthly_partitions_and_back(settings):
    """Trace events stored before 0015 land in their receipt month's partition on PostgreSQL (ids
    kept, new ids continue the sequence, histories read the same); the downgrade puts them back in
    one table. SQLite keeps one table throughout."""
    from mes_kernel.db import partitions
    from mes_kernel.services import trace

    downgrade(settings, "0014")
    moments = [datetime(2026, 8, 30, 23, 59, tzinfo=UTC), datetime(2026, 9, 1, 0, 0, tzinfo=UTC),
               datetime(2026, 10, 15, 8, 0, tzinfo=UTC)]

    def at(moment):
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f") if settings.is_sqlite else moment

    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO lots (id, lot_number, product, quantity, status, note, created_at, updated_at) "
                "VALUES (3, 'LOT-OLD', 'P', 1, 'in_progress', '', :t, :t)"), {"t": at(moments[0])})
            for ident, moment in zip((11, 12, 13), moments, strict=True):
                await conn.execute(text(
                    "INSERT INTO trace_events (id, lot_id, kind, recorded_at, station_seq, received_at, actor, "
                    "payload) VALUES (:id, 3, 'scan', :t, 0, :t, 'ST', '{}')"), {"id": ident, "t": at(moment)})
            await conn.execute(text("INSERT INTO trace_totals (scope, subject_id, events) VALUES ('lot', 3, 3)"))
            if not settings.is_sqlite:
                await conn.execute(text("SELECT setval('trace_events_id_seq', 13)"))
    finally:
        await engine.dispose()

    def where(sync_conn) -> list[tuple[int, str]]:
        column = "tableoid::regclass::text" if sync_conn.dialect.name == "postgresql" else "'trace_events'"
        return [tuple(row) for row in sync_conn.execute(text(f"SELECT id, {column} FROM trace_events ORDER BY id"))]

    async def page_ids() -> list[int]:
        engine = make_engine(settings)
        try:
            async with make_sessionmaker(engine)() as session:
                page = await trace.history(session=session, secret=settings.secret_key, lot_id=3, limit=10)
        finally:
            await engine.dispose()
        assert page["total"] == len(page["events"])
        return [e["id"] for e in page["events"]]

    assert await page_ids() == [13, 12, 11]
    upgrade(settings, "head")
    if settings.is_sqlite:
        assert await _inspect(settings, where) == [(11, "trace_events"), (12, "trace_events"), (13, "trace_events")]
    else:
        schema = partitions.SCHEMA
        assert await _inspect(settings, where) == [
            (11, f"{schema}.trace_events_2026_08"), (12, f"{schema}.trace_events_2026_09"),
            (13, f"{schema}.trace_events_2026_10")]
        kind = await _inspect(settings, lambda c: c.execute(text(
            "SELECT relkind::text FROM pg_class WHERE relname = 'trace_events'")).scalar())
        assert kind == "p"
    assert await page_ids() == [13, 12, 11]
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            new_id = (await conn.execute(text(
                "INSERT INTO trace_events (lot_id, kind, recorded_at, station_seq, received_at, actor, payload) "
                "VALUES (3, 'scan', :t, 0, :t, '', '{}') RETURNING id"), {"t": at(datetime.now(UTC))})).scalar()
            await conn.execute(text("UPDATE trace_totals SET events = 4"))
    finally:
        await engine.dispose()
    assert new_id == 14
    downgrade(settings, "0014")
    if not settings.is_sqlite:
        kind = await _inspect(settings, lambda c: c.execute(text(
            "SELECT relkind::text FROM pg_class WHERE relname = 'trace_events'")).scalar())
        assert kind == "r"
    assert [ident for ident, _ in await _inspect(settings, where)] == [11, 12, 13, 14]
    assert await page_ids() == [14, 13, 12, 11]
    upgrade(settings, "head")
    assert await page_ids() == [14, 13, 12, 11]


async def test_migration_0021_keeps_each_calendar_in_force_from_its_lines_creation_and_back(settings):
    """A calendar stored before 0021 becomes its line's first version, in force from the start of
    the hour the line was created in (no planned time before the line existed); the downgrade
    keeps the version in force then."""
    downgrade(settings, "0020")
    created = datetime(2026, 10, 15, 8, 20, 30, tzinfo=UTC)
    stamp = created.strftime("%Y-%m-%d %H:%M:%S.%f") if settings.is_sqlite else created
    shifts = '[{"name": "A", "start": "06:00", "end": "14:00", "days": [0], "planned_output": 5}]'
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO lines (id, code, name, config, created_at, updated_at) "
                     "VALUES (7, 'L-OLD', 'Old', '{}', :t, :t)"), {"t": stamp})
            await conn.execute(
                text("INSERT INTO shift_calendars (line_id, shifts, updated_by, updated_at) "
                     "VALUES (7, :shifts, 'user:pm', :t)"), {"t": stamp, "shifts": shifts})
    finally:
        await engine.dispose()
    upgrade(settings, "head")
    from mes_kernel.db.models import ShiftCalendarVersion

    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = (await session.execute(select(ShiftCalendarVersion))).scalars().all()
    finally:
        await engine.dispose()
    assert [(r.line_id, r.valid_from, r.updated_by) for r in rows] == [
        (7, datetime(2026, 10, 15, 8, 0, tzinfo=UTC), "user:pm")
    ]
    assert rows[0].shifts[0]["name"] == "A"
    downgrade(settings, "0020")

    def calendars(sync_conn):
        return [tuple(row) for row in sync_conn.execute(text("SELECT line_id, updated_by FROM shift_calendars"))]

    assert await _inspect(settings, calendars) == [(7, "user:pm")]
    upgrade(settings, "head")


async def test_migration_0025_gives_every_item_its_lot_and_back(settings):
    """``process_items.lot_id`` of rows stored before 0025: a unit's LOT by serial number, the LOT a
    LOT-level item names; an item naming neither (its records archived) keeps none."""
    downgrade(settings, "0023")
    at = datetime(2026, 10, 15, 8, 0, tzinfo=UTC)
    stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f") if settings.is_sqlite else at
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            for ident, lot in ((3, "LOT-A"), (4, "LOT-B")):
                await conn.execute(
                    text("INSERT INTO lots (id, lot_number, product, quantity, status, note, created_at, updated_at) "
                         "VALUES (:id, :lot, 'NH-7', 0, 'in_progress', '', :t, :t)"),
                    {"id": ident, "lot": lot, "t": stamp})
            await conn.execute(
                text("INSERT INTO units (serial_number, lot_id, status, created_at, updated_at) "
                     "VALUES ('A-1', 3, 'in_progress', :t, :t)"), {"t": stamp})
            for n, item in enumerate(("A-1", "LOT-B", "GONE-9")):
                await conn.execute(
                    text("INSERT INTO process_items (process_id, item, first_record_id, last_record_id, hour_start, "
                         "line_id, station_id, product, first_passed, last_passed) "
                         "VALUES ('ASSY-10', :item, :n, :n, :t, 0, 0, 'NH-7', :yes, :yes)"),
                    {"item": item, "n": 100 + n, "t": stamp, "yes": True})
    finally:
        await engine.dispose()
    upgrade(settings, "head")

    def lots(sync_conn):
        return [tuple(row) for row in sync_conn.execute(text("SELECT item, lot_id FROM process_items ORDER BY item"))]

    assert await _inspect(settings, lots) == [("A-1", 3), ("GONE-9", None), ("LOT-B", 4)]
    downgrade(settings, "0023")
    columns = await _inspect(settings, lambda c: [col["name"] for col in inspect(c).get_columns("process_items")])
    assert "lot_id" not in columns
    upgrade(settings, "head")


def _failed_defect_lot_indexes(sync_conn) -> dict:
    """The parent's index: valid or not, and how many partitions (and which lack one attached)."""
    parent = sync_conn.execute(
        text("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
             "WHERE c.relname = 'ix_process_records_failed_defect_lot'")).scalar()
    lacking = sync_conn.execute(text("""
        SELECT p.inhrelid::regclass::text FROM pg_inherits p
        WHERE p.inhparent = 'process_records'::regclass AND NOT EXISTS (
            SELECT 1 FROM pg_inherits x JOIN pg_index i ON i.indexrelid = x.inhrelid
            WHERE x.inhparent = 'ix_process_records_failed_defect_lot'::regclass AND i.indrelid = p.inhrelid
              AND i.indisvalid)""")).scalars().all()
    return {"valid": parent, "lacking": lacking}


async def _stop_an_index_build(engine, parent: str, suffix: str, definition: str) -> list:
    """What an index migration stopped half-way leaves (0029's and 0031's way of building): the
    parent's index made ``ON ONLY``, the first partition's (``<partition>_<suffix>``) built and
    attached, the second's left invalid as a failed ``CREATE INDEX CONCURRENTLY`` leaves it.
    Returns the partitions (schema, name)."""
    async with engine.begin() as conn:
        partitions = (await conn.execute(text(
            "SELECT n.nspname, c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE i.inhparent = 'process_records'::regclass ORDER BY c.relname"))).all()
        assert len(partitions) >= 3, partitions
        (schema, done), (_, broken) = partitions[:2]
        await conn.execute(text(f"CREATE INDEX {parent} ON ONLY process_records {definition}"))
        for partition in (done, broken):
            await conn.execute(text(f"CREATE INDEX {partition}_{suffix} ON {schema}.{partition} {definition}"))
        await conn.execute(text(f"ALTER INDEX {parent} ATTACH PARTITION {schema}.{done}_{suffix}"))
        await conn.execute(text(f"UPDATE pg_index SET indisvalid = false "
                                f"WHERE indexrelid = '{schema}.{broken}_{suffix}'::regclass"))
    return partitions


async def test_migration_0029_indexes_every_partition_and_takes_up_a_stopped_attempt(settings):
    """On PostgreSQL each partition's index is built CONCURRENTLY (recording goes on) and attached;
    an attempt stopped half-way — the parent's index made, one partition's attached, another's
    left invalid by a failed build — is finished by the next upgrade, and partitions created
    later get the index as they are made."""
    if settings.is_sqlite:
        upgrade(settings, "head")
        query = text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'process_records'")
        names = await _inspect(settings, lambda c: set(c.execute(query).scalars()))
        assert "ix_process_records_failed_defect_lot" in names
        return
    downgrade(settings, "0028")
    definition = (
        "(defect_code, lot_number, (coalesce(serial_number, lot_number)), event_at) "
        "INCLUDE (serial_number, line_id) WHERE result = 'fail'"
    )
    engine = make_engine(settings)
    try:
        partitions = await _stop_an_index_build(engine, "ix_process_records_failed_defect_lot", "failed_defect_lot",
                                                definition)
        before = await _inspect(settings, _failed_defect_lot_indexes)
        assert before["valid"] is False and len(before["lacking"]) == len(partitions) - 1
        upgrade(settings, "head")
        assert await _inspect(settings, _failed_defect_lot_indexes) == {"valid": True, "lacking": []}
        await monthly.ensure_partitions(engine, today=datetime.now(UTC).date(), ahead=14)
        after = await _inspect(settings, _failed_defect_lot_indexes)
        assert after == {"valid": True, "lacking": []}
        async with engine.connect() as conn:
            count = (await conn.execute(text(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'process_records'::regclass"))).scalar()
        assert count > len(partitions)
    finally:
        await engine.dispose()


FAILED_INDEXES = (
    "ix_process_records_failed_defect",
    "ix_process_records_failed_defect_item",
    "ix_process_records_failed_defect_lot",
)


def _failed_indexes(sync_conn) -> dict:
    """Each failed-records index: (valid, carries created_at, the partitions lacking one attached),
    and whether a stopped 0031's new parent index (``<name>_0031``) is still there."""
    found = {}
    for name in FAILED_INDEXES:
        valid, definition = sync_conn.execute(
            text("SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                 "WHERE i.indexrelid = to_regclass(:name)"), {"name": name}).one()
        lacking = sync_conn.execute(text("""
            SELECT p.inhrelid::regclass::text FROM pg_inherits p
            WHERE p.inhparent = 'process_records'::regclass AND NOT EXISTS (
                SELECT 1 FROM pg_inherits x JOIN pg_index i ON i.indexrelid = x.inhrelid
                WHERE x.inhparent = to_regclass(:name) AND i.indrelid = p.inhrelid AND i.indisvalid)"""),
            {"name": name}).scalars().all()
        stopped = sync_conn.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": f"{name}_0031"}).scalar()
        found[name] = (valid, "created_at" in definition.split("INCLUDE")[1], lacking, stopped)
    return found


async def test_migration_0031_puts_the_receipt_into_the_failed_records_indexes_and_takes_up_a_stopped_attempt(
    settings,
):
    """On PostgreSQL the three failed-records indexes are made again with ``created_at`` in their
    ``INCLUDE`` (a drill-down's receipt bound is then checked in the index), each partition's
    built CONCURRENTLY and attached, and take their old names. An attempt stopped half-way — the
    new parent index made, one partition's attached, another's left invalid by a failed build — is
    finished by the next upgrade; partitions created later get the new indexes; the downgrade
    gives back the indexes without ``created_at``. SQLite has nothing to do."""
    if settings.is_sqlite:
        downgrade(settings, "0030")
        upgrade(settings, "head")
        query = text("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'process_records'")
        assert set(FAILED_INDEXES) <= await _inspect(settings, lambda c: set(c.execute(query).scalars()))
        return
    downgrade(settings, "0030")
    assert await _inspect(settings, _failed_indexes) == dict.fromkeys(FAILED_INDEXES, (True, False, [], False))
    new = "ix_process_records_failed_defect_lot_0031"
    definition = (
        "(defect_code, lot_number, (coalesce(serial_number, lot_number)), event_at) "
        "INCLUDE (serial_number, line_id, created_at) WHERE result = 'fail'"
    )
    engine = make_engine(settings)
    try:
        await _stop_an_index_build(engine, new, "fdl_0031", definition)
        stopped = await _inspect(settings, _failed_indexes)
        assert stopped["ix_process_records_failed_defect_lot"] == (True, False, [], True)  # the old one, and the new
        upgrade(settings, "head")
        done_right = dict.fromkeys(FAILED_INDEXES, (True, True, [], False))
        assert await _inspect(settings, _failed_indexes) == done_right
        await monthly.ensure_partitions(engine, today=datetime.now(UTC).date(), ahead=14)
        assert await _inspect(settings, _failed_indexes) == done_right
    finally:
        await engine.dispose()
    downgrade(settings, "0030")
    assert await _inspect(settings, _failed_indexes) == dict.fromkeys(FAILED_INDEXES, (True, False, [], False))
    upgrade(settings, "head")


async def test_migration_0030_sums_each_station_s_folded_lot_hours_per_day_and_back(settings):
    """``kpi_daily_station_lots`` starts as the folded (shard 0) ``kpi_hourly_lots`` rows of each
    station, LOT and UTC day with the steps summed; rows not folded yet are left to the next fold
    (which adds them there too). SQLite keeps the table empty: it reads the hourly rows."""
    downgrade(settings, "0029")
    day = datetime(2026, 10, 15, tzinfo=UTC)
    rows = [  # step, hour, station, LOT, shard, counts (first_total, first_passed, final_passed, recovered)
        ("ASSY-10", day + timedelta(hours=8), 7, 3, 0, (4, 3, 4, 1)),
        ("TEST-20", day + timedelta(hours=9), 7, 3, 0, (2, 1, 1, 0)),  # another step, the same day: summed
        ("ASSY-10", day + timedelta(hours=23), 7, 3, 0, (1, 1, 1, 0)),
        ("ASSY-10", day + timedelta(hours=24), 7, 3, 0, (5, 5, 5, 0)),  # the next UTC day
        ("ASSY-10", day + timedelta(hours=8), 8, 3, 0, (6, 6, 6, 0)),  # another station
        ("ASSY-10", day + timedelta(hours=8), 7, 4, 0, (1, 0, 0, 0)),  # another LOT
        ("ASSY-10", day + timedelta(hours=10), 7, 3, 12, (9, 9, 9, 9)),  # not folded yet
    ]
    engine = make_engine(settings)
    try:
        async with engine.begin() as conn:
            for process_id, hour, station, lot, shard, counts in rows:
                await conn.execute(
                    text("INSERT INTO kpi_hourly_lots (process_id, hour_start, line_id, station_id, product, lot_id, "
                         "shard, first_total, first_passed, final_passed, recovered) "
                         "VALUES (:p, :h, 1, :s, 'NH-7', :lot, :shard, :a, :b, :c, :d)"),
                    {"p": process_id, "h": hour if not settings.is_sqlite else hour.strftime("%Y-%m-%d %H:%M:%S.%f"),
                     "s": station, "lot": lot, "shard": shard, **dict(zip("abcd", counts, strict=True))})
    finally:
        await engine.dispose()
    upgrade(settings, "head")

    def daily(sync_conn):
        found = sync_conn.execute(text(
            "SELECT station_id, day_start, line_id, lot_id, first_total, first_passed, final_passed, recovered "
            "FROM kpi_daily_station_lots ORDER BY station_id, day_start, lot_id"))
        return [(s, d.astimezone(UTC) if d.tzinfo else d, *rest) for s, d, *rest in found]

    got = await _inspect(settings, daily)
    if settings.is_sqlite:
        assert got == []
    else:
        next_day = day + timedelta(days=1)
        assert got == [
            (7, day, 1, 3, 7, 5, 6, 1),
            (7, day, 1, 4, 1, 0, 0, 0),
            (7, next_day, 1, 3, 5, 5, 5, 0),
            (8, day, 1, 3, 6, 6, 6, 0),
        ]
    downgrade(settings, "0029")
    assert "kpi_daily_station_lots" not in await _inspect(settings, _tables)
    upgrade(settings, "head")
