"""KPI computations over the kernel's tables, as SQL aggregates that run on SQLite and PostgreSQL.

Every function takes keyword-only arguments, reads through the caller's session, and returns plain
JSON-ready data (ISO-8601 strings for times) so results can sit in the kernel's Redis cache.

Process-record figures come from the hourly rollups (``kpi_hourly``, ``kpi_hourly_defects``, kept
exact with the records by :mod:`mes_kernel.services.rollups`), never from raw records. A record
counts in the hour it happened at the station (``event_at``); a window counts the hours that
start inside it, so windows are exact when they start and end on whole hours (every whole-hour
time zone's day).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, case, func, literal_column, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from mes_kernel.db.models import LOT_STATUSES, Alert, Device, DeviceAction, Lot, Station

from . import sources
from .sources import hours_between

__all__ = ["hours_between"]


# Files of the zone database that name no IANA zone: the host's own setting (``localtime``: what
# it means depends on the machine) and tzdata's placeholder for "zone not set" (``Factory``).
NOT_ZONES = frozenset({"localtime", "Factory"})


@cache
def _iana_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) - NOT_ZONES


def plant_zone(name: str) -> ZoneInfo:
    """The IANA time zone that defines the plant's "today"; ``ValueError`` for an unknown name.

    Only names of the IANA database (``zoneinfo.available_timezones()``, links such as
    ``US/Eastern`` included) are zones: ``ZoneInfo`` opens any file under its search path, so
    ``localtime``, ``Factory``, ``posixrules`` or ``posix/Asia/Seoul`` would otherwise be
    accepted. A name longer than the file system allows raises ``OSError`` (``ENAMETOOLONG``) in
    ``ZoneInfo``, not ``ZoneInfoNotFoundError``; it is an unknown name all the same."""
    if name not in _iana_zones():
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def day_window(*, now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Start and end (UTC) of the plant's calendar day that contains ``now``."""
    local = now.astimezone(zone)
    start_local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Aware arithmetic within one zone is wall-clock arithmetic: the next midnight, not "+24 h",
    # so days around a DST change keep their real length.
    end_local = start_local + timedelta(days=1)
    return start_local.astimezone(UTC), end_local.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


async def lots_by_status(*, session: AsyncSession, closed_since: datetime) -> dict[str, Any]:
    """LOT counts by status (every status present, zero when none), and LOTs closed since a time."""
    rows = await session.execute(select(Lot.status, func.count()).group_by(Lot.status))
    by_status = dict.fromkeys(LOT_STATUSES, 0)
    by_status.update({status: count for status, count in rows})
    closed = await session.scalar(
        select(func.count()).select_from(Lot).where(Lot.status == "closed", Lot.closed_at >= closed_since)
    )
    return {"by_status": by_status, "total": sum(by_status.values()), "closed_today": closed or 0}


async def process_results(
    *, session: AsyncSession, since: datetime, until: datetime, line_id: int | None = None
) -> dict[str, Any]:
    """Pass/fail counts of process records in a window, and the first-pass yield.

    First-pass yield is the share of items (a unit by serial number, or a LOT for LOT-level
    records) first tested at a process step in the window whose first record there passed.
    ``None`` when nothing was tested, so a dashboard shows "no data" rather than 0 %.
    """
    rows = sources.line_hours(session, since, until, line_id)
    query = select(
        func.sum(rows.c.total), func.sum(rows.c.passed), func.sum(rows.c.first_total), func.sum(rows.c.first_passed)
    )
    total, passes, attempts, first_passes = (await session.execute(query)).one()
    # PostgreSQL sums BIGINTs as NUMERIC: back to int before any division.
    total, passes, attempts, first_passes = (int(n or 0) for n in (total, passes, attempts, first_passes))
    return {
        "total": total,
        "pass": passes,
        "fail": total - passes,
        "first_attempts": attempts,
        "first_pass": first_passes,
        "first_pass_yield": round(first_passes / attempts, 4) if attempts else None,
    }


async def top_defects(
    *, session: AsyncSession, since: datetime, until: datetime, limit: int = 5
) -> list[dict[str, Any]]:
    """The most frequent defect codes among failed records in a window, most frequent first."""
    defects = sources.line_defect_counts(session, since, until)
    count = func.sum(defects.c.count).label("count")
    rows = await session.execute(
        select(defects.c.defect_code, count)
        .group_by(defects.c.defect_code)
        .order_by(count.desc(), defects.c.defect_code)
        .limit(limit)
    )
    return [{"defect_code": code, "count": int(n)} for code, n in rows]


async def throughput_per_hour(*, session: AsyncSession, now: datetime, hours: int = 24) -> list[dict[str, Any]]:
    """Process records per UTC hour for the last ``hours`` hours (current hour included), oldest
    first, with hours that saw no record present as zeros."""
    current_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    first_hour = current_hour - timedelta(hours=hours - 1)
    hours_ = sources.line_hours(session, first_hour, current_hour + timedelta(hours=1))
    rows = await session.execute(
        select(hours_.c.hour_start, func.sum(hours_.c.total), func.sum(hours_.c.passed)).group_by(hours_.c.hour_start)
    )
    counted = {hour.astimezone(UTC): (int(total), int(passes or 0)) for hour, total, passes in rows}
    series = []
    for step in range(hours):
        start = first_hour + timedelta(hours=step)
        total, passes = counted.get(start, (0, 0))
        series.append({"hour": start.isoformat(), "records": total, "pass": passes, "fail": total - passes})
    return series


async def station_counts(*, session: AsyncSession, now: datetime, silent_after_seconds: float) -> dict[str, int]:
    """Stations in total, heard from recently (online), silent too long, and never heard from."""
    fresh_since = now - timedelta(seconds=silent_after_seconds)
    online = func.sum(case((Station.last_heartbeat_at >= fresh_since, 1), else_=0))
    never = func.sum(case((Station.last_heartbeat_at.is_(None), 1), else_=0))
    total, online_n, never_n = (await session.execute(select(func.count(), online, never).select_from(Station))).one()
    total, online_n, never_n = total or 0, online_n or 0, never_n or 0
    return {"total": total, "online": online_n, "silent": total - online_n - never_n, "never_seen": never_n}


async def device_counts(*, session: AsyncSession) -> dict[str, Any]:
    """Configured devices: total, enabled, and how many of each kind."""
    rows = await session.execute(
        select(Device.kind, func.count(), func.sum(case((Device.enabled.is_(True), 1), else_=0))).group_by(Device.kind)
    )
    by_kind: dict[str, int] = {}
    enabled = 0
    for kind, count, enabled_n in rows:
        by_kind[kind] = count
        enabled += enabled_n or 0
    return {"total": sum(by_kind.values()), "enabled": enabled, "by_kind": by_kind}


async def device_actions(*, session: AsyncSession, since: datetime) -> dict[str, Any]:
    """Device actions (prints, flashes, scans) since a time, by outcome."""
    rows = await session.execute(
        select(DeviceAction.outcome, func.count())
        .where(DeviceAction.created_at >= since)
        .group_by(DeviceAction.outcome)
    )
    by_outcome = {outcome: count for outcome, count in rows}
    return {"total": sum(by_outcome.values()), "by_outcome": by_outcome}


def _alert_row(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "key": alert.key,
        "severity": alert.severity,
        "source": alert.source,
        "message": alert.message,
        "detail": alert.detail,
        "raised_at": _iso(alert.raised_at),
        "resolved_at": _iso(alert.resolved_at),
        "open": alert.resolved_at is None,
    }


async def list_alerts(
    *,
    session: AsyncSession,
    include_resolved: bool = False,
    severity: str | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """Alerts (open ones only unless ``include_resolved``; at most ``limit``), and open counts by
    severity. Ordered by what happened last: open alerts first, newest raised first; then resolved
    ones, latest resolved first (``coalesce(resolved_at, raised_at)``), then by id, newest first.
    A silence recorded by the heartbeat that ended it is raised at its start, days back, and
    resolved now: it shows among today's, not six days down the history."""
    query = select(Alert)
    if not include_resolved:
        query = query.where(Alert.resolved_at.is_(None))
    if severity:
        query = query.where(Alert.severity == severity)
    order = (
        case((Alert.resolved_at.is_(None), 0), else_=1),
        func.coalesce(Alert.resolved_at, Alert.raised_at).desc(),
        Alert.id.desc(),
    )
    alerts = (await session.scalars(query.order_by(*order).limit(limit))).all()
    counts = await open_alert_counts(session=session)
    return {"items": [_alert_row(a) for a in alerts], **counts}


async def open_alert_counts(*, session: AsyncSession) -> dict[str, Any]:
    """How many alerts are open, in total and by severity."""
    rows = await session.execute(
        select(Alert.severity, func.count()).where(Alert.resolved_at.is_(None)).group_by(Alert.severity)
    )
    by_severity = {severity: count for severity, count in rows}
    return {"open": sum(by_severity.values()), "open_by_severity": by_severity}


async def plant_counts(
    *, session: AsyncSession, now: datetime, since: datetime, silent_after_seconds: float
) -> dict[str, Any]:
    """What :func:`lots_by_status`, :func:`station_counts`, :func:`device_counts`,
    :func:`device_actions` and :func:`open_alert_counts` return, from one query (a ``UNION ALL``
    of their counts): one round trip instead of six for the summary."""
    fresh_since = now - timedelta(seconds=silent_after_seconds)
    zero = literal_column("0")

    def kind(name: str):
        return literal_column(f"'{name}'").label("kind")

    parts = [
        select(
            kind("lots"),
            Lot.status.label("key"),
            func.count().label("a"),
            func.sum(case((and_(Lot.status == "closed", Lot.closed_at >= since), 1), else_=0)).label("b"),
            zero.label("c"),
        ).group_by(Lot.status),
        select(
            kind("stations"),
            literal_column("''"),
            func.count(),
            func.sum(case((Station.last_heartbeat_at >= fresh_since, 1), else_=0)),
            func.sum(case((Station.last_heartbeat_at.is_(None), 1), else_=0)),
        ).select_from(Station),
        select(
            kind("devices"),
            Device.kind,
            func.count(),
            func.sum(case((Device.enabled.is_(True), 1), else_=0)),
            zero,
        ).group_by(Device.kind),
        select(kind("actions"), DeviceAction.outcome, func.count(), zero, zero)
        .where(DeviceAction.created_at >= since)
        .group_by(DeviceAction.outcome),
        select(kind("alerts"), Alert.severity, func.count(), zero, zero)
        .where(Alert.resolved_at.is_(None))
        .group_by(Alert.severity),
    ]
    rows: dict[str, list[tuple[str, int, int, int]]] = {}
    for name, key, a, b, c in await session.execute(union_all(*parts)):
        rows.setdefault(name, []).append((key, int(a or 0), int(b or 0), int(c or 0)))
    by_status = dict.fromkeys(LOT_STATUSES, 0)
    by_status.update({key: a for key, a, _, _ in rows.get("lots", [])})
    stations_total, online, never = next(((a, b, c) for _, a, b, c in rows.get("stations", [])), (0, 0, 0))
    by_kind = {key: a for key, a, _, _ in rows.get("devices", [])}
    by_outcome = {key: a for key, a, _, _ in rows.get("actions", [])}
    by_severity = {key: a for key, a, _, _ in rows.get("alerts", [])}
    return {
        "lots": {
            "by_status": by_status,
            "total": sum(by_status.values()),
            "closed_today": sum(b for _, _, b, _ in rows.get("lots", [])),
        },
        "stations": {
            "total": stations_total,
            "online": online,
            "silent": stations_total - online - never,
            "never_seen": never,
        },
        "devices": {
            "total": sum(by_kind.values()),
            "enabled": sum(b for _, _, b, _ in rows.get("devices", [])),
            "by_kind": by_kind,
        },
        "device_actions_today": {"total": sum(by_outcome.values()), "by_outcome": by_outcome},
        "alerts": {"open": sum(by_severity.values()), "open_by_severity": by_severity},
    }


async def summary(
    *, session: AsyncSession, now: datetime, zone: ZoneInfo, silent_after_seconds: float
) -> dict[str, Any]:
    """Everything ``GET /dashboard/summary`` shows, in four queries: the plant's counts (one
    ``UNION ALL``), today's records, today's top defects, the last 24 hours."""
    day_start, day_end = day_window(now=now, zone=zone)
    counts = await plant_counts(session=session, now=now, since=day_start, silent_after_seconds=silent_after_seconds)
    return {
        "generated_at": now.astimezone(UTC).isoformat(),
        "timezone": zone.key,
        "day_start": day_start.isoformat(),
        "lots": counts["lots"],
        "records_today": await process_results(session=session, since=day_start, until=day_end),
        "top_defects": await top_defects(session=session, since=day_start, until=day_end),
        "throughput_per_hour": await throughput_per_hour(session=session, now=now),
        "stations": counts["stations"],
        "devices": counts["devices"],
        "device_actions_today": counts["device_actions_today"],
        "alerts": counts["alerts"],
    }
