"""Health of the stations' scanners, as their heartbeats report them (``heartbeat["devices"]``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from mes_kernel.contracts import CheckResult, HealthCheck, Reason, Status
from mes_kernel.db.base import utcnow
from mes_kernel.db.models import Line, Station
from mes_kernel.kernel import Kernel

from . import PLUGIN_NAME

UP_STATES = {"up", "ok", "connected", "healthy"}


def _is_scanner(role: str, entry: dict[str, Any]) -> bool:
    return entry.get("kind") == "barcode_scanner" or "scanner" in role.lower()


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def scanner_entries(heartbeat: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(role, entry)`` of every scanner in a heartbeat. ``devices`` is ``{role: entry}``, where an
    entry is a driver's ``status()`` (``connected``, ``last_scan_at``) or the station's summary
    (``status`` up/down, ``detail``); a list of entries with a ``role`` key is accepted too."""
    devices = (heartbeat or {}).get("devices") or {}
    if isinstance(devices, list):
        devices = {str(d.get("role", i)): d for i, d in enumerate(devices) if isinstance(d, dict)}
    if not isinstance(devices, dict):
        return []
    return [(role, e) for role, e in devices.items() if isinstance(e, dict) and _is_scanner(role, e)]


def scanner_report(station: str, role: str, entry: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One scanner's connection and age of its last scan, from its heartbeat entry."""
    if "connected" in entry:
        connected = bool(entry["connected"])
    else:
        connected = str(entry.get("status", "")).lower() in UP_STATES
    last_scan_at = _parse_time(entry.get("last_scan_at"))
    return {
        "station": station,
        "role": role,
        "connected": connected,
        "last_scan_at": last_scan_at.isoformat() if last_scan_at else None,
        "last_scan_age_seconds": round((now - last_scan_at).total_seconds(), 1) if last_scan_at else None,
        "detail": entry.get("error") or entry.get("detail") or None,
    }


def stations_in_scope(kernel: Kernel):
    """Stations that reported at least once, of the lines that enable this plugin
    (``kernel.enabled_lines``). With no line configured at all there is no scope yet and every
    station counts (as every plugin is enabled)."""
    query = select(Station).where(Station.last_heartbeat_at.is_not(None))
    if kernel.runtime is None or not kernel.runtime.lines:
        return query
    lines = kernel.enabled_lines(PLUGIN_NAME)
    return query.join(Line, Line.id == Station.line_id).where(Line.code.in_(lines))


async def check_scanners(kernel: Kernel) -> CheckResult:
    """DEGRADED while a scanner of a live station (of a line enabling the plugin) is disconnected;
    silent stations are left to the kernel's own station check (their last report is listed as
    ``stale``)."""
    now = utcnow()
    silent_after = kernel.settings.station_silent_after_seconds
    async with kernel.sessionmaker() as session:
        stations = (await session.execute(stations_in_scope(kernel))).scalars()
        reports = []
        for station in stations:
            stale = (now - station.last_heartbeat_at).total_seconds() > silent_after
            for role, entry in scanner_entries(station.heartbeat):
                report = scanner_report(station.code, role, entry, now)
                report["stale"] = stale
                reports.append(report)
    down = [r for r in reports if not r["connected"] and not r["stale"]]
    details = {"scanners": reports, "disconnected": len(down)}
    if down:
        names = [f"{r['station']}/{r['role']}" for r in down]
        why = Reason("SCANNERS_DISCONNECTED", f"scanner disconnected: {', '.join(names)}", {"scanners": names})
        return CheckResult(Status.DEGRADED, why, details)
    return CheckResult(Status.UP, None, details)


def scanner_checks(kernel: Kernel) -> list[HealthCheck]:
    async def scanners() -> CheckResult:
        return await check_scanners(kernel)

    return [HealthCheck("barcode_scanners", scanners, critical=False, timeout=2.0)]
