"""Device authority: resolve a device code for a principal, or refuse it with the right error.

Every plugin that acts on a device (print, flash, scan, a third party's action) calls
:func:`resolve_device` instead of reading ``Device`` rows itself, so one rule holds everywhere:

* a station token acts only on the devices of its own station, and on the devices of its line that
  are assigned to no station — anything else is 403 ``DEVICE_NOT_ON_STATION``;
* people keep their role-based rights (the route's permission decides; any device is reachable);
* an unknown code is 404 ``DEVICE_NOT_FOUND``, a device of another kind 422 ``DEVICE_KIND_MISMATCH``,
  a disabled one 409 ``DEVICE_DISABLED``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from .db.models import Device, Line, Lot, Station
from .errors import Conflict, Forbidden, NotFound, Unprocessable

#: configuration keys never shown outside the station that owns the device (see ``redact_config``)
SECRET_KEYS = frozenset({"password", "secret", "token", "api_key", "apikey", "auth", "authorization"})


class Caller(Protocol):
    """What the helper needs of a principal (``mes_kernel.api.deps.Principal`` fits)."""

    kind: str  # "user" | "station"
    station_id: int | None
    line_id: int | None


@dataclass(frozen=True)
class ResolvedDevice:
    """A device as a plugin acts on it, detached from the session.

    ``config`` is the *effective* configuration: the line's ``device_defaults`` for the device's kind,
    overlaid with the device's own settings (the device wins).
    """

    id: int
    code: str
    kind: str
    driver: str
    config: dict[str, Any]
    enabled: bool
    line_code: str | None
    station_code: str | None
    line_config_version: int | None = None
    own_config: dict[str, Any] = field(default_factory=dict)


def effective_config(line: Line | None, device: Device) -> dict[str, Any]:
    """The line's defaults for ``device.kind`` (``line.config["device_defaults"][kind]``) under the device's own."""
    defaults: dict[str, Any] = {}
    if line is not None:
        defaults = ((line.config or {}).get("device_defaults") or {}).get(device.kind) or {}
    return {**defaults, **(device.config or {})}


def redact_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every secret-looking key (``SECRET_KEYS``) replaced by ``"***"``."""
    return {k: ("***" if k.lower() in SECRET_KEYS else v) for k, v in config.items()}


def may_act_on(principal: Caller, *, station_id: int | None, line_id: int | None) -> bool:
    """Whether ``principal`` may act on a device placed at ``station_id`` on ``line_id``."""
    if principal.kind != "station":
        return True
    if station_id is not None:
        return station_id == principal.station_id
    return line_id is not None and line_id == principal.line_id


async def resolve_device(
    *,
    session: AsyncSession,
    principal: Caller,
    code: str,
    kind: str | None = None,
    allow_disabled: bool = False,
) -> ResolvedDevice:
    """The device ``code`` as ``principal`` may use it.

    ``kind`` (e.g. ``"label_printer"``) refuses a device of another kind. Raises ``NotFound``
    (404 ``DEVICE_NOT_FOUND``), ``Forbidden`` (403 ``DEVICE_NOT_ON_STATION``), ``Unprocessable``
    (422 ``DEVICE_KIND_MISMATCH``) or ``Conflict`` (409 ``DEVICE_DISABLED``). The existence of another
    station's device is no secret worth a 404: the 403 names the device so the operator can fix the line.
    """
    row = (
        await session.execute(
            select(Device, Line, Station.code)
            .outerjoin(Line, Line.id == Device.line_id)
            .outerjoin(Station, Station.id == Device.station_id)
            .where(Device.code == code)
        )
    ).first()
    if row is None:
        raise NotFound(f"device {code} not found", code="DEVICE_NOT_FOUND", device=code)
    device, line, station_code = row
    if not may_act_on(principal, station_id=device.station_id, line_id=device.line_id):
        where = f"station {station_code}" if station_code else f"line {line.code if line else '(none)'}"
        raise Forbidden(
            f"device {code} belongs to {where}, not to this station",
            code="DEVICE_NOT_ON_STATION",
            device=code,
        )
    if kind is not None and device.kind != kind:
        raise Unprocessable(f"device {code} is a {device.kind}, not a {kind}", code="DEVICE_KIND_MISMATCH", device=code)
    if not device.enabled and not allow_disabled:
        raise Conflict(f"device {code} is disabled", code="DEVICE_DISABLED", device=code)
    return _resolved(device, line, station_code)


async def devices_for(
    *, session: AsyncSession, principal: Caller, kind: str | None = None, station_code: str | None = None
) -> list[ResolvedDevice]:
    """Every enabled device ``principal`` may use (of ``kind``, at ``station_code`` when given), by code."""
    query = (
        select(Device, Line, Station.code)
        .outerjoin(Line, Line.id == Device.line_id)
        .outerjoin(Station, Station.id == Device.station_id)
        .where(Device.enabled.is_(True))
        .order_by(Device.code)
    )
    if kind is not None:
        query = query.where(Device.kind == kind)
    if station_code is not None:
        query = query.where(Station.code == station_code)
    rows = (await session.execute(query)).all()
    return [
        _resolved(d, line, st)
        for d, line, st in rows
        if may_act_on(principal, station_id=d.station_id, line_id=d.line_id)
    ]


def _resolved(device: Device, line: Line | None, station_code: str | None) -> ResolvedDevice:
    return ResolvedDevice(
        id=device.id,
        code=device.code,
        kind=device.kind,
        driver=device.driver,
        config=effective_config(line, device),
        enabled=device.enabled,
        line_code=line.code if line is not None else None,
        station_code=station_code,
        line_config_version=line.config_version if line is not None else None,
        own_config=dict(device.config or {}),
    )


async def ensure_lot_open(
    *, session: AsyncSession, lot_number: str | None = None, serial_number: str | None = None
) -> Lot | None:
    """The LOT a device action targets (by LOT number, or by the unit's serial number), refused when it
    is closed or scrapped: 409 ``LOT_CLOSED``, as process records are. Unknown LOT → 404
    ``LOT_NOT_FOUND``, unknown unit → 404 ``UNIT_NOT_FOUND``; None when neither is given."""
    from .services.lots import FINAL, get_lot, get_unit

    if serial_number:
        unit = await get_unit(session, serial_number)
        lot = await session.get(Lot, unit.lot_id)
        if lot_number and lot.lot_number != lot_number:
            raise Unprocessable(f"unit {serial_number} does not belong to LOT {lot_number}", field="serial_number")
    elif lot_number:
        lot = await get_lot(session, lot_number)
    else:
        return None
    if lot.status in FINAL:
        raise Conflict(
            f"LOT {lot.lot_number} is {lot.status}; no device acts for it any more",
            code="LOT_CLOSED",
            lot_number=lot.lot_number,
            lot_status=lot.status,
        )
    return lot
