"""Stations: machine identities with their own tokens, heartbeats and reported events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from ...audit import write_audit
from ...cache import CONFIGURATION, commit, mark_stale
from ...db.base import utcnow
from ...db.models import Device, Line, Lot, Station, StationEvent, StationToken, Unit, User
from ...devices import effective_config
from ...drivers import list_drivers
from ...errors import Conflict, Forbidden, NotFound, ServiceUnavailable, Unprocessable
from ...schemas import Code, FiniteJSON, Identifier, Name, Text
from ...security import STATION_TOKEN_PREFIX, new_opaque_token, token_digest, username_key
from ...services.device_actions import record_device_action
from ...services.silence import record_heartbeat
from ...services.stations import move_station
from ...services.trace import add_trace_events, trace_row
from ...station_times import StationTimeWindow, station_time
from ..deps import KernelDep, Principal, SessionDep, require_permission
from ..scope import plugins_serving

router = APIRouter(prefix="/stations", tags=["stations"])
log = structlog.get_logger(__name__)
BACKLOG_BEATS = 5  # heartbeats kept to tell a growing backlog from a busy moment


class StationIn(BaseModel):
    code: str = Code
    name: Name = Field("", max_length=200)
    line: Identifier | None = Field(None, min_length=1, max_length=64)


class StationOut(BaseModel):
    id: int
    code: str
    name: str
    line: str | None
    last_heartbeat_at: datetime | None
    heartbeat: dict[str, Any]


class TokenIn(BaseModel):
    name: Name = Field("", max_length=100)


class HeartbeatIn(BaseModel):
    agent_version: Text = Field(max_length=64)
    drivers: FiniteJSON = Field(default_factory=dict)
    devices: FiniteJSON = Field(default_factory=dict)
    outbox_depth: int = Field(0, ge=0, le=2**63 - 1)
    #: drivers the station's configuration needs that are missing or of another version than the server's
    driver_problems: list[FiniteJSON] = Field(default_factory=list, max_length=200)
    config_version: int | None = Field(
        None, ge=0, le=2**63 - 1, description="the line configuration the station runs"
    )
    oldest_queued_age_seconds: float | None = Field(None, ge=0)
    clock: datetime | None = None


class EventIn(BaseModel):
    idempotency_key: Text = Field(min_length=8, max_length=128)
    type: Identifier = Field(min_length=1, max_length=64)
    payload: FiniteJSON = Field(default_factory=dict)
    station_seq: int | None = Field(
        None, ge=0, lt=2**63, description="the station outbox's sequence number (orders a history at one time)"
    )


async def _station(session, code: str) -> Station:
    station = (await session.execute(select(Station).where(Station.code == code))).scalar_one_or_none()
    if station is None:
        raise NotFound(f"station {code} not found", code="STATION_NOT_FOUND")
    return station


async def _out(session, station: Station) -> StationOut:
    line = await session.get(Line, station.line_id) if station.line_id else None
    return StationOut(
        id=station.id,
        code=station.code,
        name=station.name,
        line=line.code if line else None,
        last_heartbeat_at=station.last_heartbeat_at,
        heartbeat=station.heartbeat or {},
    )


@router.post("", response_model=StationOut, status_code=status.HTTP_201_CREATED, summary="Register a station")
async def create_station(
    body: StationIn,
    session: SessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("stations:manage"),
):
    line_id = None
    if body.line:
        line = (await session.execute(select(Line).where(Line.code == body.line))).scalar_one_or_none()
        if line is None:
            raise NotFound(f"line {body.line} not found", code="LINE_NOT_FOUND", field="line")
        line_id = line.id
    station = Station(code=body.code, name=body.name, line_id=line_id, heartbeat={})
    session.add(station)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"station {body.code} already exists", code="STATION_EXISTS") from None
    await write_audit(
        session, actor=principal.actor, action="create", entity="station", entity_id=body.code, after=body.model_dump()
    )
    out = await _out(session, station)
    await session.commit()
    await kernel.cache.invalidate(CONFIGURATION)  # the dashboard's stations and each line's
    return out


class StationLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    line: Identifier | None = Field(..., min_length=1, max_length=64)  # null: off every line


@router.put("/{code}/line", response_model=StationOut, summary="Move a station to a line, or off every line")
async def move_station_line(
    code: str,
    body: StationLineIn,
    session: SessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("lines:manage"),
):
    """Put the station on ``line`` (``null``: off every line; its own line: nothing changes). Its
    open silence alert is split at the move, so the OEE counts the silence against each line for
    its part; both lines' stations follow the new configuration. 404 ``STATION_NOT_FOUND``; 422
    ``LINE_NOT_FOUND`` (field ``line``); 409 ``STATION_HAS_DEVICES`` while devices of its line are
    bound to it (take them out of that line's configuration first)."""
    station = await move_station(
        session=session, code=code, line_code=body.line, actor=principal.actor, at=kernel.clock()
    )
    out = await _out(session, station)
    await session.commit()
    await kernel.cache.invalidate(CONFIGURATION)
    await kernel.runtime.announce()  # every worker of every node follows within about a second
    return out


@router.get("", response_model=list[StationOut], summary="Stations and their last heartbeat")
async def list_stations(session: SessionDep, _: Principal = require_permission("stations:read")):
    stations = (await session.execute(select(Station).order_by(Station.code))).scalars().all()
    return [await _out(session, s) for s in stations]


@router.post("/{code}/tokens", status_code=status.HTTP_201_CREATED, summary="Issue a machine token (shown once)")
async def issue_token(
    code: str, body: TokenIn, session: SessionDep, principal: Principal = require_permission("stations:manage")
):
    station = await _station(session, code)
    token = new_opaque_token(STATION_TOKEN_PREFIX)
    row = StationToken(station_id=station.id, name=body.name, token_hash=token_digest(token))
    session.add(row)
    await session.flush()
    await write_audit(
        session,
        actor=principal.actor,
        action="create",
        entity="station_token",
        entity_id=row.id,
        after={"station": code, "name": body.name},
    )
    await session.commit()
    return {
        "id": row.id,
        "station": code,
        "name": body.name,
        "token": token,
        "note": "store this token now; it is not shown again",
    }


@router.get("/{code}/tokens", summary="List a station's tokens (never the secrets)")
async def list_tokens(code: str, session: SessionDep, _: Principal = require_permission("stations:manage")):
    station = await _station(session, code)
    rows = (
        await session.execute(
            select(StationToken).where(StationToken.station_id == station.id).order_by(StationToken.id)
        )
    ).scalars()
    return [{"id": r.id, "name": r.name, "created_at": r.created_at, "revoked_at": r.revoked_at} for r in rows]


@router.delete("/{code}/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Revoke a token")
async def revoke_token(
    code: str,
    token_id: int,
    session: SessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("stations:manage"),
):
    station = await _station(session, code)
    row = await session.get(StationToken, token_id)
    if row is None or row.station_id != station.id:
        raise NotFound("token not found", code="TOKEN_NOT_FOUND")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await write_audit(
            session,
            actor=principal.actor,
            action="update",
            entity="station_token",
            entity_id=row.id,
            before={"revoked": False},
            after={"revoked": True},
        )
        mark_stale(session, f"station_token:{row.token_hash}")
    await commit(session, kernel.cache)


async def station_extras(kernel, session, *, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """What plugins add to a station's configuration (``kernel.state["station_config"]``, all entries
    or those in ``names``): each a value, or an async callable given the session and read now (e.g.
    the label-template version)."""
    extras = {}
    for name, value in kernel.state.get("station_config", {}).items():
        if names is None or name in names:
            extras[name] = await value(session) if callable(value) else value
    return extras


@router.get("/me/config", summary="The calling station's part of its line: devices, drivers, versions")
async def my_config(
    request: Request,
    session: SessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("stations:heartbeat"),
):
    """What a station agent needs to run its devices, from the line configuration in the database.

    ``devices`` are the station's own devices, then the line's shared devices (assigned to no
    station, ``shared: true``), each with its effective configuration. Secrets are included for both:
    the token proves this is that station, and device authority lets every station of the line act on
    a shared device — never another station's device. Only devices of a kind owned by a plugin that
    serves the station (active, and enabled on its line: ``plugins``) are handed out; the others are
    listed in ``withheld`` with the reason, without their configuration. ``config_version`` is the
    line's version; the heartbeat answer carries it and ``plugins`` too, so the agent fetches again
    when either changes. ``drivers`` lists the distribution and version of each driver the devices
    need, as installed on the server.
    """
    if principal.station_id is None:
        raise Forbidden("only stations have a station configuration", code="NOT_A_STATION")
    extras = await station_extras(kernel, session)
    station = await session.get(Station, principal.station_id)
    line = await session.get(Line, station.line_id) if station.line_id else None
    kinds = getattr(request.app.state, "device_kinds", {})
    owners = getattr(request.app.state, "device_kind_owners", {})
    serving = plugins_serving(kernel, station.line_id)
    devices, withheld, drivers = [], [], {}
    if line is not None:
        rows = (await session.execute(select(Device).where(Device.line_id == line.id).order_by(Device.code))).scalars()
        for device in rows:
            own = device.station_id == station.id
            if device.station_id is not None and not own:
                continue
            owner = owners.get(device.kind)
            if owner is None or owner not in serving:
                withheld.append({"code": device.code, "kind": device.kind, "plugin": owner,
                                 "reason": _withheld_reason(kernel, owner, device.kind, line.code)})
                continue
            kind = kinds[device.kind]
            devices.append(
                {
                    "code": device.code,
                    "kind": device.kind,
                    "driver": device.driver,
                    "namespace": kind.namespace,
                    "plugin": owner,
                    "enabled": device.enabled,
                    "shared": not own,
                    "config": effective_config(line, device),
                }
            )
            if device.enabled and (kind.namespace, device.driver) not in drivers:
                info = next((d for d in list_drivers(kind.namespace) if d.name == device.driver), None)
                drivers[(kind.namespace, device.driver)] = {
                    "kind": device.kind,
                    "namespace": kind.namespace,
                    "driver": device.driver,
                    "distribution": info.package if info else None,
                    "version": info.version if info else None,
                }
    return {
        "station": {"code": station.code, "name": station.name},
        "line": line.code if line is not None else None,
        "config_version": line.config_version if line is not None else 0,
        "plugins": serving,
        "devices": devices,
        "withheld": withheld,
        "drivers": list(drivers.values()),
        "label_templates": extras.get("label_templates"),
    }


def _withheld_reason(kernel, plugin: str | None, kind: str, line_code: str) -> str:
    if plugin is None:
        return f"no loaded plugin drives devices of kind {kind!r}"
    if not kernel.plugins.is_active(plugin):
        state, reason = kernel.plugins.state_of(plugin)
        return f"plugin {plugin} is {state}: {reason}"
    return f"plugin {plugin} is not enabled on line {line_code}"


@router.post("/heartbeat", summary="A station reports its state (agent, drivers, devices, outbox)")
async def heartbeat(
    body: HeartbeatIn,
    session: SessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("stations:heartbeat"),
):
    """Store the station's report. Its receipt is the station's sign of life: a silence it ends is
    kept as a resolved ``station:<code>:silent`` alert (``mes_kernel.services.silence``). The answer
    carries the server time, the line's ``config_version``, the ``plugins`` serving the station
    (both as in ``/stations/me/config``: a change in either means fetch it again) and
    ``label_templates`` (as in the station's configuration) when the printer plugin runs."""
    if principal.station_id is None:
        raise Forbidden("only stations send heartbeats", code="NOT_A_STATION")
    extras = await station_extras(kernel, session, names=("label_templates",))
    # the sign of life is the server's receipt, not the station's clock (which only measures its offset)
    station, heard = await record_heartbeat(
        session=session,
        station_id=principal.station_id,
        at=kernel.clock(),
        report=body.model_dump(mode="json"),
        silent_after=kernel.settings.station_silent_after_seconds,
        beats=BACKLOG_BEATS,
    )
    version = (
        (await session.execute(select(Line.config_version).where(Line.id == station.line_id))).scalar()
        if station.line_id
        else None
    )
    await session.commit()
    if heard.alerts and (notifier := kernel.state.get("notifier")) is not None:
        notifier.announce(f"Station {heard.code} reports again after {int(heard.seconds)} s silent")
    answer = {
        "server_time": utcnow().isoformat(),
        "station": principal.station_code,
        "config_version": version or 0,
        "plugins": plugins_serving(kernel, station.line_id),
    }
    if extras.get("label_templates") is not None:
        answer["label_templates"] = extras["label_templates"]
    return answer


@router.post(
    "/events",
    status_code=status.HTTP_201_CREATED,
    summary="A station reports an event (scan, completion file, device result); idempotent by key",
)
async def station_event(
    body: EventIn,
    session: SessionDep,
    kernel: KernelDep,
    principal: Principal = require_permission("stations:heartbeat"),
):
    """Store the event once per key. A ``scan`` naming a known unit or LOT (by ``serial_number`` /
    ``lot_number`` in the payload, else its ``code`` read by the scan parser a plugin registered,
    else the code itself as a serial or LOT number) and a ``device_result`` naming one join their
    history at the station's time (``payload.recorded_at``, else ``payload.station_time``; neither:
    the receipt time). That time, when given, must be an ISO 8601 time with a zone (else 422
    ``VALIDATION_ERROR``) within the station-time window (else 422 ``IMPLAUSIBLE_TIME``); a retry
    of an event stored earlier answers ``duplicate`` whatever its time."""
    if principal.station_id is None:
        raise Forbidden("only stations report events", code="NOT_A_STATION")
    try:
        at, field_name = station_time(body.payload)
        times = kernel.station_time_window()
        refusal = times.refusal(at, field_name) or await times.archived_refusal(session, at, field_name)
    except Unprocessable as exc:  # not a time: a retry of an event stored before this rule is still a duplicate
        at, refusal = None, exc
    if refusal is not None:
        return await _duplicate(session, body, principal, refusal)
    module = postgresql if session.bind.dialect.name == "postgresql" else sqlite
    stmt = (
        module.insert(StationEvent)
        .values(
            idempotency_key=body.idempotency_key,
            station_id=principal.station_id,
            type=body.type,
            payload=body.payload,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(StationEvent.id)
    )
    new_id = (await session.execute(stmt)).scalar()
    if new_id is not None:
        if body.type == "scan":
            traced = await _trace_scan(
                session, kernel, body, principal, event_id=new_id, at=at, field_name=field_name, times=times
            )
        else:
            traced = await _trace_device_result(session, body, principal, at=at, field_name=field_name, times=times)
        await session.commit()
        return {"id": new_id, "idempotency_key": body.idempotency_key, "status": "created", "traced": traced}
    return await _duplicate(session, body, principal)


async def _duplicate(session, body: EventIn, principal: Principal, refusal: Exception | None = None) -> JSONResponse:
    """The answer to an event whose key is stored already (200 ``duplicate``; 409 for another body);
    with no event under the key, ``refusal`` is raised."""
    existing = (
        await session.execute(select(StationEvent).where(StationEvent.idempotency_key == body.idempotency_key))
    ).scalar_one_or_none()
    if existing is None:
        raise refusal or ServiceUnavailable("event was not stored; retry", retry_after=1, code="NOT_RECORDED")
    if existing.type != body.type or existing.payload != body.payload or existing.station_id != principal.station_id:
        raise Conflict("idempotency key already used for a different event", code="IDEMPOTENCY_CONFLICT")
    return JSONResponse(
        status_code=200, content={"id": existing.id, "idempotency_key": body.idempotency_key, "status": "duplicate"}
    )


OUTCOMES = {"printed": "ok", "ok": "ok", "done": "ok", "flashed": "ok", "failed": "failed", "refused": "refused"}


async def _trace_device_result(
    session, body: EventIn, principal: Principal, *, at: datetime | None, field_name: str, times: StationTimeWindow
) -> bool:
    """A device result the station recorded (e.g. a label printed while offline) joins the LOT/unit
    history like any server-side device action. An unknown LOT or serial keeps the event only."""
    payload = body.payload
    if body.type != "device_result" or not (payload.get("lot_number") or payload.get("serial_number")):
        return False
    actor = await station_actor(session, principal, payload.get("worker"))
    try:
        async with session.begin_nested():
            await record_device_action(
                session=session,
                action=str(payload.get("action") or "device"),
                plugin="station",
                device=str(payload.get("device") or f"{principal.station_code}:{payload.get('role', 'device')}"),
                driver=str(payload.get("driver") or "unknown"),
                driver_version=str(payload.get("driver_version") or ""),
                actor=actor,
                outcome=OUTCOMES.get(str(payload.get("outcome")), "failed"),
                lot_number=payload.get("lot_number"),
                serial_number=payload.get("serial_number"),
                station_code=principal.station_code,
                detail={k: v for k, v in payload.items() if k not in ("lot_number", "serial_number")},
                recorded_at=at,
                station_seq=body.station_seq,
                times=times,
                field_name=field_name,
            )
    except NotFound:
        return False
    return True


async def station_actor(session, principal: Principal, worker: Any) -> str:
    """Who did what a station reports: ``user:<username>`` when the event names a worker (``payload.worker``,
    the one logged in at the station) who is an active user here (matched as logins match: case- and
    width-insensitive), the station otherwise. The station itself stays on the history row
    (``station_id``), so the entry names both. A name the kernel does not know is kept beside the
    station's actor (``station:ST-01 (worker? bob)``), never taken as a user's."""
    if not isinstance(worker, str) or not worker.strip() or len(worker) > 64:
        return principal.actor
    username = (
        await session.execute(
            select(User.username).where(User.username_key == username_key(worker.strip()), User.is_active.is_(True))
        )
    ).scalar()
    if username is None:
        return f"{principal.actor} (worker? {worker.strip()})"[:100]
    return f"user:{username}"


def _scan_targets(kernel, payload: dict[str, Any]) -> list[tuple[str | None, str | None]]:
    """The (serial number, LOT number) pairs a scan may name, to try in order: those the station
    gave; else what the parser a plugin registered as ``kernel.state["scan_resolver"]`` reads in
    its code (GS1 (21)/(10), a plant pattern), then the code itself as either."""
    serial, lot_number = payload.get("serial_number"), payload.get("lot_number")
    if isinstance(serial, str) or isinstance(lot_number, str):
        return [((serial if isinstance(serial, str) else None), (lot_number if isinstance(lot_number, str) else None))]
    code = payload.get("code")
    if not isinstance(code, str) or not code or len(code) > 512:
        return []
    targets: list[tuple[str | None, str | None]] = []
    resolver = kernel.state.get("scan_resolver")
    if resolver is not None:
        symbology = payload.get("symbology")
        try:
            found = resolver(code, symbology if isinstance(symbology, str) else None) or {}
        except Exception as exc:  # a parser's bug must not cost the station its event
            log.warning("scan_resolver_failed", error=str(exc))
            found = {}
        if found.get("serial_number") or found.get("lot_number"):
            targets.append((found.get("serial_number"), found.get("lot_number")))
    return [*targets, (code, code)]


async def _scan_subject(session, serial: str | None, lot_number: str | None):
    """(lot id, LOT number, unit id, serial number, registered at) of a known unit, else a known
    LOT; or None. ``registered at``: the unit's (else the LOT's) registration."""
    if serial and len(serial) <= 64:
        row = (
            await session.execute(
                select(Unit.id, Unit.lot_id, Lot.lot_number, Unit.created_at).join(Lot, Lot.id == Unit.lot_id)
                .where(Unit.serial_number == serial)
            )
        ).first()
        if row is not None:
            return row.lot_id, row.lot_number, row.id, serial, row.created_at
    if lot_number and len(lot_number) <= 64:
        row = (await session.execute(select(Lot.id, Lot.created_at).where(Lot.lot_number == lot_number))).first()
        if row is not None:
            return row.id, lot_number, None, None, row.created_at
    return None


async def _trace_scan(
    session, kernel, body: EventIn, principal: Principal, *, event_id: int, at: datetime | None,
    field_name: str, times: StationTimeWindow,
) -> bool:
    """A station scan of a known unit (else LOT) joins its history; an unknown code stays an event.
    Raises :class:`ImplausibleTime` for a time before the unit's (LOT's) registration (the caller's
    transaction, with the event, is then not committed)."""
    payload = body.payload
    for serial, lot_number in _scan_targets(kernel, payload):
        subject = await _scan_subject(session, serial, lot_number)
        if subject is not None:
            break
    else:
        return False
    lot_id, lot_number, unit_id, serial, registered_at = subject
    early = times.registration_refusal(
        at, field_name, registered_at=registered_at, subject=f"unit {serial}" if serial else f"LOT {lot_number}"
    )
    if early is not None:
        raise early
    actor = await station_actor(session, principal, payload.get("worker"))
    shown = {k: payload[k] for k in ("code", "symbology", "source") if isinstance(payload.get(k), str)}
    await add_trace_events(session, [trace_row(
        kind="scan", lot_id=lot_id, unit_id=unit_id, recorded_at=at, station_seq=body.station_seq,
        station_id=principal.station_id, actor=actor,
        source_id=event_id, payload={"lot_number": lot_number, "serial_number": serial, **shown},
    )])
    return True
