"""Process records: idempotent by key, one at a time or in batches, audited in the same transaction."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import String, any_, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from ..audit import audit_row, canonical_json, write_audit_rows
from ..cache import Cache, station_line_key
from ..db.base import utcnow
from ..db.models import Lot, Process, ProcessRecord, ProcessRecordKey, Station, Unit
from ..db.record_keys import ArchivedRecord, archived_answer, archived_records
from ..errors import Conflict, MesError, NotFound
from ..logging import client_ip_var, request_id_var
from ..schemas import RecordIn
from ..station_times import StationTimeWindow
from .lots import FINAL, cached_lot, mark_started
from .rollups import add_to_rollups
from .trace import add_trace_events, trace_row

RECORD_COLUMNS = [c.name for c in ProcessRecord.__table__.columns]
# Benchmarks only (bench/bench_records.py measures what rollups cost): MES_ROLLUPS=off stops counting
# records into the KPI rollups, so every KPI goes wrong until ``mes kpi rebuild``.
ROLLUPS = os.environ.get("MES_ROLLUPS", "on") != "off"


def request_hash(record_in: RecordIn) -> str:
    # The sequence number says where the station queued it, not what it is: a resend with another
    # number (an outbox rebuilt, an older agent's backlog) is still the same record.
    body = record_in.model_dump(mode="json", exclude={"idempotency_key", "station_seq"})
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _insert(session: AsyncSession, table=ProcessRecord.__table__):
    dialect = session.bind.dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


async def _cached(cache: Cache, key: str, kind: str, factory) -> Any:
    return await cache.get_or_set(key, factory, kind=kind)


async def _resolve(
    *, session: AsyncSession, cache: Cache, record_in: RecordIn, principal, times: StationTimeWindow | None = None
) -> dict[str, Any]:
    """Validate references and build the row (without inserting it). A station time outside
    ``times`` is not raised here but carried as the row's ``_refusal``: the writer answers a retry
    of a record stored earlier (when its time was acceptable) with the original, any other with it."""
    # The LOT's status is checked again, in the database, by the writing transaction: a cached
    # status may lag a close by a moment, and a retry of a record stored before the close must
    # still get its original back rather than LOT_CLOSED.
    lot = await cached_lot(session, cache, record_in.lot_number)

    async def process_exists():
        found = await session.get(Process, record_in.process_id)
        return True if found else None

    if not await _cached(cache, f"process:{record_in.process_id}", "permission", process_exists):
        raise NotFound(f"process {record_in.process_id} not found", code="PROCESS_NOT_FOUND")

    # The unit a serial number names is looked up by the writing transaction, for all its rows in
    # one statement (:func:`_place_units`): serial numbers are mostly new to each request, so a cache
    # missed, and a lookup of its own took a connection, a BEGIN and a SELECT per record.
    station_id = principal.station_id
    if station_id is None and record_in.station:

        async def station_of():
            return (await session.execute(select(Station.id).where(Station.code == record_in.station))).scalar()

        station_id = await _cached(cache, f"station:{record_in.station}", "lot", station_of)
        if station_id is None:
            raise NotFound(f"station {record_in.station} not found", code="STATION_NOT_FOUND")
    line_id = lot.get("line_id")
    if station_id is not None:

        async def station_line():
            found = await session.execute(select(Station.line_id).where(Station.id == station_id))
            return {"line_id": found.scalar()}

        line_id = (await _cached(cache, station_line_key(station_id), "lot", station_line))["line_id"] or line_id

    worker_id = record_in.worker_id or (principal.name if principal.kind == "user" else None)
    if not worker_id:
        raise MesError(
            "worker_id is required when a station records", code="VALIDATION_ERROR", status=422, field="worker_id"
        )
    created_at = utcnow()
    recorded_at = record_in.recorded_at.astimezone(UTC) if record_in.recorded_at else None
    refusal = None
    if times is not None:
        refusal = (
            times.refusal(recorded_at, "recorded_at")
            or await times.archived_refusal(session, recorded_at, "recorded_at")
            or times.registration_refusal(
                recorded_at, "recorded_at", registered_at=_registered(lot), subject=f"LOT {record_in.lot_number}"
            )
        )
    return {
        "idempotency_key": record_in.idempotency_key,
        "request_hash": request_hash(record_in),
        "lot_id": lot["id"],
        "lot_number": record_in.lot_number,
        "process_id": record_in.process_id,
        "worker_id": worker_id,
        "station_id": station_id,
        "line_id": line_id,
        "unit_id": None,  # set by write_rows from the serial number
        "serial_number": record_in.serial_number,
        "result": record_in.result,
        "defect_code": record_in.defect_code,
        "data": record_in.data,
        "recorded_at": recorded_at,
        "event_at": recorded_at or created_at,
        "created_by": principal.actor,
        "created_at": created_at,
        "_station_seq": record_in.station_seq,
        "_lot_status": lot["status"],
        "_product": lot["product"],
        "_request_id": request_id_var.get(),
        "_client_ip": client_ip_var.get(),
        "_refusal": refusal,
        "_times": times,  # the unit's registration is judged where its serial number is looked up
    }


def _registered(lot: dict[str, Any]) -> datetime | None:
    """When a cached LOT was registered (None from an entry cached before it was kept)."""
    at = lot.get("registered_at")
    return datetime.fromisoformat(at) if at else None


# What a record says, as audited and as answered (the latter adds id, author and time).
RECORD_FIELDS = (
    "idempotency_key",
    "lot_number",
    "process_id",
    "worker_id",
    "station_id",
    "serial_number",
    "result",
    "defect_code",
    "data",
    "recorded_at",
)


def _audit_after(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in RECORD_FIELDS}


def _happened(row: dict[str, Any], sent: dict[str, int]) -> tuple:
    """Where a record of a batch is stored among the others: by station time (``event_at``), then
    the station's sequence number, then as sent. Ids are given in that order, and the lowest id of
    an item at a step is its first attempt (docs/kpi.md): an offline station replaying a failure
    and its retest in one batch must not have the retest counted first."""
    return (row["event_at"], row.get("_station_seq") or 0, sent[row["idempotency_key"]])


async def _insert_rows(session: AsyncSession, rows: list[dict[str, Any]], *, order) -> dict[str, Any]:
    """Claim the keys (in the order of ``rows``), insert the records whose key this transaction
    claimed (sorted by ``order``, a sort key of a row: their ids follow it), add them to the
    rollups; returns the rows this transaction created, by key.

    The key table, not the partitioned records table, decides what is new: its primary key is the
    idempotency key alone, so a retry in another month (another partition) still collides. A
    concurrent claim of the same key waits for the first transaction and then finds the key taken.

    Each statement is compiled once and cached, its parameters sent as a list (SQLAlchemy batches
    them into multi-row VALUES: "insertmanyvalues"); compiling a fresh VALUES clause per request
    cost more than the database's work.
    """
    claim = (
        _insert(session, ProcessRecordKey.__table__)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(ProcessRecordKey.idempotency_key)
    )
    claimed = set(
        (
            await session.execute(
                claim, [{"idempotency_key": r["idempotency_key"], "created_at": r["created_at"]} for r in rows]
            )
        ).scalars()
    )
    if not claimed:
        return {}
    new_rows = sorted((r for r in rows if r["idempotency_key"] in claimed), key=order)
    values = [{k: v for k, v in r.items() if not k.startswith("_")} for r in new_rows]
    stmt = _insert(session).returning(ProcessRecord.id, ProcessRecord.idempotency_key)
    # Only the ids come back: every other column is what was just sent (no JSON to decode again).
    by_key = {v["idempotency_key"]: v for v in values}
    created = {
        r.idempotency_key: InsertedRecord(by_key[r.idempotency_key], id=r.id)
        for r in await session.execute(stmt, values)
    }
    return created


class InsertedRecord(dict):
    """A record just inserted: its columns as sent plus its id, read as keys or as attributes,
    like a loaded :class:`ProcessRecord`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


OUT_FIELDS = ("id", *RECORD_FIELDS, "created_by", "created_at")


def record_out(record: Any) -> dict[str, Any]:
    """A record (just inserted, as a dict; or loaded, as an ORM object) as the API answers it; a
    record archived since (:class:`~mes_kernel.db.record_keys.ArchivedRecord`) as
    :func:`~mes_kernel.db.record_keys.archived_answer`."""
    if isinstance(record, ArchivedRecord):
        return archived_answer(record)
    get = record.get if isinstance(record, dict) else lambda name: getattr(record, name)
    out = {name: get(name) for name in OUT_FIELDS}
    for name in ("recorded_at", "created_at"):
        if out[name] is not None:
            out[name] = out[name].isoformat()
    return out


async def _existing(session: AsyncSession, keys: list[str]) -> dict[str, ProcessRecord]:
    rows = (await session.execute(select(ProcessRecord).where(ProcessRecord.idempotency_key.in_(keys)))).scalars()
    return {r.idempotency_key: r for r in rows}


def _duplicate_or_conflict(existing: ProcessRecord | dict[str, Any], row_hash: str) -> None:
    """``existing`` is a stored record, or one inserted moments ago in this transaction (a dict)."""
    if isinstance(existing, ArchivedRecord):
        return  # its body is in the month's dump: nothing to compare with
    get = existing.get if isinstance(existing, dict) else lambda name: getattr(existing, name)
    if get("request_hash") != row_hash:
        raise Conflict(
            "idempotency key already used for a different record",
            code="IDEMPOTENCY_CONFLICT",
            record_id=get("id"),
        )


async def limit_lock_wait(session: AsyncSession, seconds: float) -> None:
    """PostgreSQL: for the rest of this transaction, wait at most ``seconds`` for a lock (``SET LOCAL
    lock_timeout``); past it the statement fails with SQLSTATE 55P03, which answers 503 with
    Retry-After. A node frozen halfway through a record holds its key (and counters) in an open
    transaction; without a limit the same key sent to another node would wait out the freeze.
    SQLite (one writer at a time) has nothing to limit."""
    if session.bind.dialect.name == "postgresql":
        await session.execute(text(f"SET LOCAL lock_timeout = {max(1, int(seconds * 1000))}"))


async def write_rows(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[str, tuple[ProcessRecord | None, bool]]:
    """Insert resolved rows (unique keys) with their audit entries, in the caller's transaction.

    Returns, by idempotency key, ``(record, created)``: the new record, or the one stored earlier
    under that key (an :class:`~mes_kernel.db.record_keys.ArchivedRecord` when its month is archived;
    ``None`` when it vanished, which only a concurrent delete could cause). The
    caller compares ``request_hash`` to tell a retry from a conflicting reuse of the key. A row
    whose key is new and that cannot be stored gets its error instead: ``UNIT_NOT_FOUND`` or
    ``UNIT_NOT_IN_LOT`` (its serial number, looked up here: it sets the row's ``unit_id``) or
    ``LOT_CLOSED``.
    """
    # Keys are claimed in one order for every transaction, so two batches holding the same keys
    # never deadlock; the records are stored (and numbered) in the order they happened.
    sent = {r["idempotency_key"]: i for i, r in enumerate(rows)}
    rows = sorted(rows, key=lambda r: r["idempotency_key"])
    # an implausible station time is refused before anything is looked up
    refused: dict[str, MesError] = {r["idempotency_key"]: r["_refusal"] for r in rows if r.get("_refusal") is not None}
    rows = [r for r in rows if r["idempotency_key"] not in refused]
    refused.update(await _place_units(session, rows))
    rows = [r for r in rows if r["idempotency_key"] not in refused]
    starting = {r["lot_id"] for r in rows if r["_lot_status"] == "created"}
    closed = await _closed_lots(session, {r["lot_id"] for r in rows}, starting=starting)
    for r in rows:
        if r["lot_id"] in closed:
            refused[r["idempotency_key"]] = Conflict(
                f"LOT {r['lot_number']} is {closed[r['lot_id']]} and accepts no records", code="LOT_CLOSED"
            )
    rows = [r for r in rows if r["idempotency_key"] not in refused]
    created = await _insert_rows(session, rows, order=lambda r: _happened(r, sent)) if rows else {}
    await write_audit_rows(
        session,
        [
            audit_row(
                actor=r["created_by"],
                action="create",
                entity="process_record",
                entity_id=created[r["idempotency_key"]]["id"],
                after=_audit_after(r),
                request_id=r.get("_request_id"),
                client_ip=r.get("_client_ip"),
            )
            for r in rows
            if r["idempotency_key"] in created
        ],
    )
    new_rows = [r for r in rows if r["idempotency_key"] in created]
    started: dict[str, dict[str, Any]] = {}
    for r in new_rows:
        if r["_lot_status"] == "created" and (
            r["lot_number"] not in started or r["event_at"] < started[r["lot_number"]]["event_at"]
        ):
            started[r["lot_number"]] = r
    traced = []
    for lot_number, r in started.items():
        start = await mark_started(
            session=session,
            lot={"id": r["lot_id"]},
            lot_number=lot_number,
            actor=r["created_by"],
            at=r["event_at"],
            received_at=r["created_at"],
            request_id=r.get("_request_id"),
            client_ip=r.get("_client_ip"),
        )
        traced += [start] if start else []
    # The start first, so that at one moment it sorts below the record that caused it.
    trace = traced + [_trace(r, created[r["idempotency_key"]]["id"]) for r in new_rows]
    if ROLLUPS:  # the trace rides in the rollups' statement (PostgreSQL): one round trip for both
        await add_to_rollups(session, [{**r, "id": created[r["idempotency_key"]]["id"]} for r in new_rows], trace=trace)
    else:
        await add_trace_events(session, trace)
    missing = [r["idempotency_key"] for r in rows if r["idempotency_key"] not in created] + list(refused)
    existing: dict[str, ProcessRecord | ArchivedRecord] = await _existing(session, missing) if missing else {}
    if len(existing) < len(missing):
        # the key is claimed and no record online holds it: its month is archived (the key is
        # looked up before any refusal stands, so the retry is a duplicate, not IMPLAUSIBLE_TIME)
        existing.update(await archived_records(session, [k for k in missing if k not in existing]))
    out: dict[str, tuple[ProcessRecord | None, bool] | MesError] = {k: (v, True) for k, v in created.items()}
    out.update({k: (existing.get(k), False) for k in missing})
    for key, error in refused.items():
        # a retry of a record stored before the close (or its unit's move, or while its time was acceptable)
        # is no refusal
        if key not in existing:
            out[key] = error
    return out


async def _place_units(session: AsyncSession, rows: list[dict[str, Any]]) -> dict[str, MesError]:
    """Set each row's ``unit_id`` from its serial number (one query for all of them); returns, by
    idempotency key, the rows refused: ``UNIT_NOT_FOUND`` (404) for a serial number no unit has,
    ``UNIT_NOT_IN_LOT`` (409) for a unit of another LOT, ``IMPLAUSIBLE_TIME`` (422) for a
    ``recorded_at`` before the unit was registered (less the clock lead; rows resolved with a window)."""
    serials = sorted({r["serial_number"] for r in rows if r["serial_number"]})
    if not serials:
        return {}
    query = select(Unit.serial_number, Unit.id, Unit.lot_id, Unit.created_at)
    if session.bind.dialect.name == "postgresql":
        # one array parameter: a statement prepared once whatever the count (an IN list is another
        # statement for each count, and the driver prepares each)
        query = query.where(Unit.serial_number == any_(bindparam("serials", serials, type_=ARRAY(String))))
    else:
        query = query.where(Unit.serial_number.in_(serials))
    units = {serial: (ident, lot_id, created_at) for serial, ident, lot_id, created_at in await session.execute(query)}
    refused: dict[str, MesError] = {}
    for r in rows:
        serial = r["serial_number"]
        if not serial:
            continue
        unit = units.get(serial)
        if unit is None:
            refused[r["idempotency_key"]] = NotFound(f"unit {serial} not found", code="UNIT_NOT_FOUND")
        elif unit[1] != r["lot_id"]:
            refused[r["idempotency_key"]] = Conflict(
                f"unit {serial} is not in LOT {r['lot_number']}", code="UNIT_NOT_IN_LOT"
            )
        elif r.get("_times") is not None and (
            early := r["_times"].registration_refusal(
                r["recorded_at"], "recorded_at", registered_at=unit[2], subject=f"unit {serial}"
            )
        ):
            refused[r["idempotency_key"]] = early
        else:
            r["unit_id"] = unit[0]
    return refused


def _trace(row: dict[str, Any], record_id: int) -> dict[str, Any]:
    return trace_row(
        kind="process_record", lot_id=row["lot_id"], unit_id=row["unit_id"], recorded_at=row["event_at"],
        station_seq=row["_station_seq"], received_at=row["created_at"], station_id=row["station_id"],
        actor=row["created_by"], source_id=record_id,
        payload={"lot_number": row["lot_number"], "serial_number": row["serial_number"],
                 "process_id": row["process_id"], "result": row["result"], "defect_code": row["defect_code"],
                 "worker_id": row["worker_id"]},
    )


async def _closed_lots(session: AsyncSession, lot_ids: set[int], *, starting: set[int]) -> dict[int, str]:
    """Which of these LOTs are closed or scrapped, read under a row lock on PostgreSQL so that a
    close (which takes the row FOR UPDATE) and a record never interleave.

    A share lock lets record writers of one LOT run side by side; LOTs this transaction will move
    from created to in progress (``starting``) are locked for update from the start, since two
    share holders that both upgrade would deadlock.
    """
    if not lot_ids:
        return {}
    statuses: dict[int, str] = {}
    postgres = session.bind.dialect.name == "postgresql"
    for ids, exclusive in ((sorted(lot_ids & starting), True), (sorted(lot_ids - starting), False)):
        if not ids:
            continue
        query = select(Lot.id, Lot.status).where(Lot.id.in_(ids)).order_by(Lot.id)
        if postgres:
            query = query.with_for_update(read=not exclusive)
        statuses.update({row.id: row.status for row in await session.execute(query)})
    return {lot_id: status for lot_id, status in statuses.items() if status in FINAL}


def _outcome(row: dict[str, Any], found: tuple[ProcessRecord | None, bool] | MesError) -> tuple[ProcessRecord, bool]:
    if isinstance(found, MesError):
        raise found
    record, created = found
    if record is None:
        raise MesError("record was not stored; retry", code="NOT_RECORDED", status=503, retry_after=1)
    if not created:
        _duplicate_or_conflict(record, row["request_hash"])
    return record, created


async def create_record(
    *, session: AsyncSession, cache: Cache, record_in: RecordIn, principal, writer=None,
    times: StationTimeWindow | None = None,
) -> tuple[ProcessRecord, bool]:
    """Record one result. Returns (record, created); a retry with the same key gets the original
    (an :class:`~mes_kernel.db.record_keys.ArchivedRecord` when its month is archived since).
    A ``recorded_at`` outside ``times`` (the kernel's station-time window) raises
    :class:`mes_kernel.station_times.ImplausibleTime` unless the key holds a record already.

    With a ``writer`` (the kernel's group commit) the row joins whatever other requests of this
    process are being written at the same moment: one transaction, one multi-row insert.
    """
    row = await _resolve(session=session, cache=cache, record_in=record_in, principal=principal, times=times)
    if writer is not None:
        await session.close()  # hand the connection back before waiting for the shared transaction
        return await writer.submit(row)
    found = await write_rows(session, [row])
    return _outcome(row, found[row["idempotency_key"]])


async def create_records_batch(
    *, session: AsyncSession, cache: Cache, items: list[Any], principal, times: StationTimeWindow | None = None
) -> list[dict[str, Any]]:
    """Record many results in one transaction; each item gets its own outcome, never the batch's
    (an item whose ``recorded_at`` is outside ``times``: ``error`` with ``IMPLAUSIBLE_TIME``)."""
    results: list[dict[str, Any]] = [None] * len(items)  # type: ignore[list-item]
    rows: list[tuple[int, dict[str, Any]]] = []
    seen: set[str] = set()
    for i, raw in enumerate(items):
        key = raw.get("idempotency_key") if isinstance(raw, dict) else None
        try:
            record_in = RecordIn.model_validate(raw)
            if record_in.idempotency_key in seen:  # the same key twice in one batch: the later is a retry
                rows.append(
                    (
                        i,
                        {
                            "_repeat": True,
                            "request_hash": request_hash(record_in),
                            "idempotency_key": record_in.idempotency_key,
                        },
                    )
                )
                continue
            rows.append(
                (i, await _resolve(session=session, cache=cache, record_in=record_in, principal=principal, times=times))
            )
            seen.add(record_in.idempotency_key)
        except ValidationError as exc:
            results[i] = {
                "idempotency_key": key if isinstance(key, str) else None,
                "status": "error",
                "error": {
                    "code": "VALIDATION_ERROR",
                    "message": "record is invalid",
                    "errors": [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()],
                },
            }
        except MesError as exc:
            results[i] = {"idempotency_key": key, "status": "error", "error": exc.detail()}

    found = await write_rows(session, [r for _, r in rows if "_repeat" not in r])
    for i, row in rows:
        key = row["idempotency_key"]
        outcome = found[key]
        if "_repeat" in row and not isinstance(outcome, MesError):
            outcome = (outcome[0], False)
        try:
            record, created = _outcome(row, outcome)
        except MesError as exc:
            results[i] = {"idempotency_key": key, "status": "error", "error": exc.detail()}
            continue
        results[i] = {"idempotency_key": key, "status": "created" if created else "duplicate", "record": record}
    return results
