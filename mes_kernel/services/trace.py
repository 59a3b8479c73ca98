"""Traceability stream: what happened to a LOT or a unit, in the order it happened at the station.

Every writer of something traceable (process records, device actions, station scans, LOT status
changes, unit registrations) calls :func:`add_trace_events` in its own transaction, so the history
never shows a thing that was rolled back nor misses one that was committed. Histories read
``trace_events`` alone through one index per subject, and their totals from ``trace_totals``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import literal, select, text, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from .. import cursors
from ..db.base import UTCDateTime, json_dumps, utcnow
from ..db.models import ProcessRecord, Station, TraceEvent, TraceTotal
from ..errors import Unprocessable

KINDS = ("process_record", "device_action", "scan", "status_change", "registration")
TRACE_COLUMNS = ("lot_id", "unit_id", "kind", "recorded_at", "station_seq", "received_at", "station_id", "actor",
                 "source_id", "payload")


def trace_row(
    *,
    kind: str,
    lot_id: int,
    unit_id: int | None = None,
    recorded_at: datetime | None = None,
    station_seq: int | None = None,
    received_at: datetime | None = None,
    station_id: int | None = None,
    actor: str = "",
    source_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One ``trace_events`` row. ``recorded_at`` is when it happened at the station (UTC-aware;
    server receipt when absent), ``station_seq`` the station's outbox sequence number (0 for
    what the server did itself)."""
    if kind not in KINDS:
        raise ValueError(f"trace kind must be one of {KINDS}")
    received_at = received_at or utcnow()
    return {
        "lot_id": lot_id,
        "unit_id": unit_id,
        "kind": kind,
        "recorded_at": recorded_at or received_at,
        "station_seq": station_seq or 0,
        "received_at": received_at,
        "station_id": station_id,
        "actor": (actor or "")[:100],
        "source_id": source_id,
        "payload": payload or {},
    }


def _insert(session: AsyncSession, table):
    module = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    return module.insert(table)


async def add_trace_events(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert trace rows (from :func:`trace_row`) and add them to their LOT's and unit's totals,
    in the caller's transaction.

    The totals are upserted in one order (scope, then id) in every transaction, so two writers
    touching the same LOTs and units wait for each other instead of deadlocking.
    """
    if not rows:
        return
    if session.bind.dialect.name == "postgresql":
        await session.execute(_TRACE_ALONE, trace_params(rows))
        return
    await session.execute(_insert(session, TraceEvent.__table__), rows)
    stmt = _insert(session, TraceTotal.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=["scope", "subject_id"], set_={"events": TraceTotal.__table__.c.events + stmt.excluded.events}
    )
    await session.execute(
        stmt, [{"scope": scope, "subject_id": ident, "events": n} for (scope, ident), n in _totals(rows)]
    )


def _totals(rows: list[dict[str, Any]]) -> list[tuple[tuple[str, int], int]]:
    """Events per LOT and per unit, in the one order every writer locks ``trace_totals`` rows."""
    counts: Counter[tuple[str, int]] = Counter()
    for row in rows:
        counts[("lot", row["lot_id"])] += 1
        if row["unit_id"] is not None:
            counts[("unit", row["unit_id"])] += 1
    return sorted(counts.items())


# PostgreSQL: the events and their totals in one statement (two data-modifying CTEs fed by
# ``unnest`` of arrays, parameters ``t_*``), so tracing costs one round trip. The rollups put the
# same two CTEs into their own statement (``rollups.add_to_rollups(trace=...)``), so a record's
# trace and its counts travel together.
TRACE_CTES = """
    trace_counted AS (
        INSERT INTO trace_totals (scope, subject_id, events)
        SELECT * FROM unnest(CAST(:t_scope AS text[]), CAST(:t_subject AS bigint[]), CAST(:t_events AS bigint[]))
            AS c(scope, subject_id, events)
        ORDER BY scope, subject_id
        ON CONFLICT (scope, subject_id) DO UPDATE SET events = trace_totals.events + excluded.events
    ), trace_added AS (
        INSERT INTO trace_events (lot_id, unit_id, kind, recorded_at, station_seq, received_at, station_id, actor,
                                  source_id, payload)
        SELECT t.lot_id, t.unit_id, t.kind, t.recorded_at, t.station_seq, t.received_at, t.station_id, t.actor,
               t.source_id, CAST(t.payload AS jsonb)
        FROM unnest(CAST(:t_lot AS bigint[]), CAST(:t_unit AS bigint[]), CAST(:t_kind AS text[]),
                    CAST(:t_recorded AS timestamptz[]), CAST(:t_seq AS bigint[]), CAST(:t_received AS timestamptz[]),
                    CAST(:t_station AS bigint[]), CAST(:t_actor AS text[]), CAST(:t_source AS bigint[]),
                    CAST(:t_payload AS text[]))
            AS t(lot_id, unit_id, kind, recorded_at, station_seq, received_at, station_id, actor, source_id, payload)
    )"""
_TRACE_ALONE = text(f"WITH {TRACE_CTES} SELECT 1")


def trace_params(rows: list[dict[str, Any]]) -> dict[str, list]:
    """The ``t_*`` parameters of :data:`TRACE_CTES` for these trace rows (from :func:`trace_row`)."""
    for row in rows:
        for name in ("recorded_at", "received_at"):
            if row[name].tzinfo is None:
                raise ValueError("naive datetime given to a UTC column; attach a timezone")
    totals = _totals(rows)
    return {
        "t_lot": [r["lot_id"] for r in rows],
        "t_unit": [r["unit_id"] for r in rows],
        "t_kind": [r["kind"] for r in rows],
        "t_recorded": [r["recorded_at"] for r in rows],
        "t_seq": [r["station_seq"] for r in rows],
        "t_received": [r["received_at"] for r in rows],
        "t_station": [r["station_id"] for r in rows],
        "t_actor": [r["actor"] for r in rows],
        "t_source": [r["source_id"] for r in rows],
        "t_payload": [json_dumps(r["payload"]) for r in rows],
        "t_scope": [scope for (scope, _), _ in totals],
        "t_subject": [ident for (_, ident), _ in totals],
        "t_events": [n for _, n in totals],
    }


# -- reading -----------------------------------------------------------------------------------

Cursor = tuple[datetime, int, int]


def _purpose(lot_id: int | None, unit_id: int | None) -> str:
    return f"history:unit:{unit_id}" if unit_id is not None else f"history:lot:{lot_id}"


def encode_cursor(key: Cursor, *, secret: str, lot_id: int | None = None, unit_id: int | None = None) -> str:
    """The opaque ``next_before`` cursor of a position ``(recorded_at, station_seq, id)`` in the
    history of the LOT ``lot_id`` (or the unit ``unit_id``), signed with ``secret`` (the kernel's
    ``SECRET_KEY``; see :mod:`mes_kernel.cursors`)."""
    at, seq, ident = key
    return cursors.sign(f"{at.astimezone(UTC).isoformat()}|{seq}|{ident}", secret=secret,
                        purpose=_purpose(lot_id, unit_id))


def decode_cursor(cursor: str, *, secret: str, lot_id: int | None = None, unit_id: int | None = None) -> Cursor:
    """The position a ``next_before`` cursor stands for in the history of the LOT ``lot_id`` (or
    the unit ``unit_id``); ``Unprocessable`` (422 ``INVALID_CURSOR``, field ``before``) if this
    server did not give it for that history under ``secret`` — changed, cut short, signed with
    another key, or another LOT's or unit's (a position in one history is no page of another: the
    page it named would silently skip the newer events of this one)."""
    try:
        raw = cursors.unsign(cursor, secret=secret, purpose=_purpose(lot_id, unit_id))
        if raw is None:
            raise ValueError(cursor)
        at, seq, ident = raw.split("|")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or not seq.isdigit() or not ident.isdigit():
            raise ValueError(raw)
        position = moment.astimezone(UTC), int(seq), int(ident)
        if position[1] >= 2**63 or position[2] >= 2**63:
            raise ValueError(raw)
        return position
    except (ValueError, OverflowError):
        raise Unprocessable("before is not a cursor this server gave", code="INVALID_CURSOR", field="before") from None


async def history(
    *,
    session: AsyncSession,
    secret: str,
    lot_id: int | None = None,
    unit_id: int | None = None,
    limit: int = 100,
    before: Cursor | None = None,
) -> dict[str, Any]:
    """One page of the trace events of a LOT (``lot_id``) or a unit (``unit_id``), newest first.

    Ordered by ``recorded_at`` (station time, else receipt), then the station's sequence number,
    then id — a total order, so paging with ``before`` neither skips nor repeats an event while new
    ones arrive. Returns ``{"events", "total", "next_before"}``: ``total`` counts every event of the
    subject (from ``trace_totals``), ``next_before`` is the cursor of the next (older) page, ``None``
    on the last (signed with ``secret``, the kernel's ``SECRET_KEY``: :func:`decode_cursor`). Each
    event: ``id``, ``type`` (one of :data:`KINDS`), ``at`` and ``recorded_at`` (station time, ISO
    8601; a process record's ``recorded_at`` is null when its station sent no time), ``received_at``
    (server receipt), ``seq`` (station sequence number or null), ``station`` (code or null),
    ``actor``, ``lot_number``, ``serial_number`` and ``data``.
    """
    trace = TraceEvent.__table__
    if unit_id is not None:
        subject, scope, ident = trace.c.unit_id, "unit", unit_id
    else:
        subject, scope, ident = trace.c.lot_id, "lot", lot_id
    order = (trace.c.recorded_at, trace.c.station_seq, trace.c.id)
    newest = select(trace).where(subject == ident)
    if before is not None:
        at, seq, last_id = before
        newest = newest.where(tuple_(*order) < tuple_(literal(at, UTCDateTime()), literal(seq), literal(last_id)))
    page = newest.order_by(*(column.desc() for column in order)).limit(limit + 1).subquery("page")
    counted = select(TraceTotal.events).where(TraceTotal.scope == scope, TraceTotal.subject_id == ident)
    # One round trip: the page (one backward range scan of the subject's index), its stations'
    # codes, its records' measurements and the total. A record is found by its primary key; on
    # PostgreSQL with its receipt time too, the partition key, so only its partition is probed.
    record = ProcessRecord.__table__
    joined = (page.c.kind == "process_record") & (record.c.id == page.c.source_id)
    if session.bind.dialect.name == "postgresql":
        joined &= record.c.created_at == page.c.received_at
    query = (
        select(
            page,
            Station.code.label("station_code"),
            record.c.data.label("record_data"),
            record.c.recorded_at.label("record_recorded_at"),
            counted.scalar_subquery().label("total"),
        )
        .select_from(page.outerjoin(Station, Station.id == page.c.station_id).outerjoin(record, joined))
        .order_by(page.c.recorded_at.desc(), page.c.station_seq.desc(), page.c.id.desc())
    )
    rows = (await session.execute(query)).all()
    total = rows[0].total if rows else (await session.execute(counted)).scalar()
    shown = rows[:limit]
    last = shown[-1] if shown else None
    return {
        "total": total or 0,
        "next_before": (
            encode_cursor((last.recorded_at, last.station_seq, last.id), secret=secret, lot_id=lot_id, unit_id=unit_id)
            if len(rows) > limit
            else None
        ),
        "events": [_event(row) for row in shown],
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _event(row: Any) -> dict[str, Any]:
    payload = dict(row.payload or {})
    lot_number, serial_number = payload.pop("lot_number", None), payload.pop("serial_number", None)
    recorded_at = _iso(row.recorded_at)
    data: dict[str, Any] = {"id": row.source_id, **payload}
    if row.kind == "process_record":
        recorded_at = _iso(row.record_recorded_at)
        data.update(
            created_by=row.actor,
            station_id=row.station_id,
            recorded_at=recorded_at,
            data=row.record_data if row.record_data is not None else {},
        )
    elif row.kind == "device_action":
        data.update(actor=row.actor, station_id=row.station_id)
    return {
        "id": row.id,
        "type": row.kind,
        "at": _iso(row.recorded_at),
        "recorded_at": recorded_at,
        "received_at": _iso(row.received_at),
        "seq": row.station_seq or None,
        "station": row.station_code,
        "actor": row.actor,
        "lot_number": lot_number,
        "serial_number": serial_number,
        "data": data,
    }
