"""Per-line configuration: which plugins and devices a line uses, breaker overrides, the step whose
passes are its output (KPIs).

The same document comes from the API (JSON), the CLI (``mes line apply line-a.toml``) or a file an
integrator keeps in version control; it is validated against what is installed before anything
is written, and applied in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from .audit import write_audit
from .db.models import Device, Line, Process, Station
from .drivers import list_drivers
from .errors import Unprocessable
from .machine_data.mapping import MappingError
from .schemas import Code, FiniteJSON, Identifier, Name
from .services.silence import move_silence


class BreakerOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, never silently dropped

    failure_threshold: int | None = Field(None, ge=1, le=1000)
    recovery_timeout: float | None = Field(None, gt=0, le=86400)


class DeviceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, never silently dropped

    code: str = Code
    kind: Identifier = Field(min_length=1, max_length=64)
    driver: Identifier = Field(min_length=1, max_length=64)
    station: Identifier | None = Field(None, max_length=64)
    enabled: bool = True
    config: FiniteJSON = Field(default_factory=dict)


class StationSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, never silently dropped

    code: str = Code
    name: Name = Field("", max_length=200)


class LineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, never silently dropped

    code: str = Code
    name: Name = Field("", max_length=200)
    plugins: list[Identifier] | None = Field(None, description="enabled plugins; omitted = every loaded plugin")
    breakers: dict[str, BreakerOverride] = Field(default_factory=dict)
    stations: list[StationSpec] = Field(
        default_factory=list, description="stations of the line, created when missing (one file sets up a line)"
    )
    device_defaults: dict[Identifier, FiniteJSON] = Field(
        default_factory=dict, description="per device kind, settings every device of that kind starts from"
    )
    devices: list[DeviceSpec] = Field(default_factory=list)
    output_step: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="the routing step (process id) whose first passes are the line's output in the KPIs; "
        "omitted = the highest-sequence step the line recorded at (docs/kpi.md)",
    )


@dataclass
class Catalog:
    """What is installed: loaded plugins, device kinds (name → namespace and owning plugin), breakers."""

    plugins: set[str]
    kinds: dict[str, tuple[str, str]] = field(default_factory=dict)
    breakers: set[str] = field(default_factory=set)
    validators: dict[str, Any] = field(default_factory=dict)  # kind -> DeviceKind.validate_config


def catalog_from_app(app) -> Catalog:
    kernel = app.state.kernel
    manager = kernel.plugins
    kinds = {}
    for name, rec in manager.records.items():
        for d in rec.drivers:
            if d["kind"] in app.state.device_kinds:
                kinds[d["kind"]] = (app.state.device_kinds[d["kind"]].namespace, name)
    for kind_name, kind in app.state.device_kinds.items():
        kinds.setdefault(kind_name, (kind.namespace, _owner_of(manager, kind_name)))
    validators = {name: kind.validate_config for name, kind in app.state.device_kinds.items()
                  if getattr(kind, "validate_config", None) is not None}
    return Catalog(plugins=set(manager.loaded()), kinds=kinds, breakers=set(kernel.breakers.configs),
                   validators=validators)


def _owner_of(manager, kind_name: str) -> str:
    for name, rec in manager.records.items():
        if any(d["kind"] == kind_name for d in rec.drivers):
            return name
    return ""


def parse(document: dict[str, Any]) -> LineConfig:
    """Accept the API's flat JSON or the TOML file's shape (``[line]`` table with code and name)."""
    doc = dict(document)
    if isinstance(doc.get("line"), dict):
        doc = {**doc.pop("line"), **doc}
    doc.pop("config_version", None)  # what GET /lines/{code} answers may be sent back as it is
    if not set(doc) - {"code"}:
        # an apply replaces the whole line: an empty body would delete every device and enable every plugin
        raise Unprocessable("line configuration is empty", code="INVALID_LINE_CONFIG",
                            errors=[{"loc": [], "msg": "empty: a line configuration replaces the whole line; "
                                     "send at least its name (and its plugins, stations and devices)"}])
    if isinstance(doc.get("plugins"), dict):
        table = doc["plugins"]
        unknown = sorted(set(table) - {"enabled"})
        if unknown:
            raise Unprocessable("line configuration is invalid", code="INVALID_LINE_CONFIG",
                                errors=[{"loc": ["plugins", k], "msg": "unknown key (the [plugins] table takes "
                                         "`enabled`)"} for k in unknown])
        doc["plugins"] = table.get("enabled")
    try:
        return LineConfig.model_validate(doc)
    except ValidationError as exc:
        raise Unprocessable("line configuration is invalid", code="INVALID_LINE_CONFIG",
                            errors=[{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]) from None


def validate(config: LineConfig, catalog: Catalog) -> list[dict[str, Any]]:
    """Every problem with the configuration, each with its location; empty when it can be applied."""
    errors = []
    enabled = set(config.plugins) if config.plugins is not None else set(catalog.plugins)
    for i, name in enumerate(config.plugins or []):
        if name in (config.plugins or [])[:i]:
            errors.append({"loc": ["plugins", i], "msg": f"plugin {name!r} appears twice"})
        elif name not in catalog.plugins:
            errors.append({"loc": ["plugins", i], "msg": f"plugin {name!r} is not installed or not loaded "
                           f"(loaded: {sorted(catalog.plugins)})"})
    for name in config.breakers:
        if name not in catalog.breakers:
            errors.append({"loc": ["breakers", name], "msg": f"no breaker named {name!r} "
                           f"(known: {sorted(catalog.breakers)})"})
    for kind in config.device_defaults:
        if kind not in catalog.kinds:
            errors.append({"loc": ["device_defaults", kind], "msg": f"unknown device kind {kind!r} "
                           f"(known: {sorted(catalog.kinds)})"})
        elif (owner := catalog.kinds[kind][1]) and owner not in enabled:
            errors.append({"loc": ["device_defaults", kind],
                           "msg": f"kind {kind!r} belongs to plugin {owner!r}, not enabled on this line"})
    seen = set()
    for i, device in enumerate(config.devices):
        if device.code in seen:
            errors.append({"loc": ["devices", i, "code"], "msg": f"device {device.code!r} appears twice"})
        seen.add(device.code)
        if device.kind not in catalog.kinds:
            errors.append({"loc": ["devices", i, "kind"], "msg": f"unknown device kind {device.kind!r} "
                           f"(known: {sorted(catalog.kinds)})"})
            continue
        namespace, owner = catalog.kinds[device.kind]
        if owner and owner not in enabled:
            errors.append({"loc": ["devices", i, "kind"],
                           "msg": f"kind {device.kind!r} belongs to plugin {owner!r}, not enabled on this line"})
        drivers = [d.name for d in list_drivers(namespace)]
        if device.driver not in drivers:
            errors.append({"loc": ["devices", i, "driver"], "msg": f"no driver {device.driver!r} in "
                           f"{namespace} (installed: {drivers})"})
        elif (check_config := catalog.validators.get(device.kind)) is not None:
            errors.extend(_config_errors(check_config, config, device, i))
    return errors


def _config_errors(check_config, config: LineConfig, device: DeviceSpec, i: int) -> list[dict[str, Any]]:
    """The device kind's own check of the device's effective configuration (what its connector will
    parse): a mapping that does not parse is refused here, with the key at fault, not stored."""
    defaults = config.device_defaults.get(device.kind)
    effective = {**(defaults if isinstance(defaults, dict) else {}), **(device.config or {})}
    try:
        check_config(effective, code=device.code, driver=device.driver)
    except MappingError as exc:
        where = [part for part in (exc.field or "").split(".") if part]
        return [{"loc": ["devices", i, "config", *where], "msg": str(exc)}]
    except (ValueError, TypeError) as exc:
        return [{"loc": ["devices", i, "config"], "msg": str(exc)}]
    return []


async def line_code_of(session, line_id: int | None) -> str | None:
    """The code of the line with id ``line_id`` (what people and ``GET /lines`` know it by); None
    for no line or one that does not exist."""
    if line_id is None:
        return None
    return (await session.execute(select(Line.code).where(Line.id == line_id))).scalar()


async def check(*, session, config: LineConfig, catalog: Catalog) -> list[dict[str, Any]]:
    """Every problem :func:`apply` would refuse, reading the database but writing nothing.

    ``mes line apply --dry-run`` runs exactly this, so a file that passes a dry run applies.
    """
    errors = validate(config, catalog)
    if config.output_step is not None and await session.get(Process, config.output_step) is None:
        known = (await session.execute(select(Process.id).order_by(Process.sequence, Process.id))).scalars().all()
        errors.append({"loc": ["output_step"], "msg": f"no routing step {config.output_step!r} (known: {known})"})
    line_id = (await session.execute(select(Line.id).where(Line.code == config.code))).scalar()
    declared = set()
    for i, spec in enumerate(config.stations):
        if spec.code in declared:
            errors.append({"loc": ["stations", i, "code"], "msg": f"station {spec.code!r} appears twice"})
        declared.add(spec.code)
        station = (await session.execute(select(Station).where(Station.code == spec.code))).scalar()
        if station is not None and station.line_id is not None and station.line_id != line_id:
            other = await line_code_of(session, station.line_id)
            errors.append({"loc": ["stations", i, "code"],
                           "msg": f"station {spec.code!r} belongs to line {other!r}"})
    for i, device in enumerate(config.devices):
        if not device.station or device.station in declared:
            continue
        station = (await session.execute(select(Station).where(Station.code == device.station))).scalar()
        if station is None:
            errors.append({"loc": ["devices", i, "station"], "msg": f"station {device.station!r} not found "
                           "(declare it under [[stations]] to create it)"})
        elif station.line_id is not None and station.line_id != line_id:
            other = await line_code_of(session, station.line_id)
            errors.append({"loc": ["devices", i, "station"],
                           "msg": f"station {device.station!r} belongs to line {other!r}"})
    for i, device in enumerate(config.devices):
        owner = (await session.execute(select(Device.line_id).where(Device.code == device.code))).first()
        if owner is not None and (owner[0] != line_id or line_id is None):
            errors.append({"loc": ["devices", i, "code"], "msg": f"device {device.code!r} belongs to another line"})
    return errors


@dataclass
class LinePlan:
    """What applying a configuration would change: the line, its stations and its devices.

    ``mes line apply --dry-run`` prints it; the real apply computes the very same plan and carries it
    out (:func:`apply`), so the dry run names exactly what the apply creates, changes and deletes.
    ``updated`` entries name the fields that change.
    """

    line: str
    line_action: str  # "create" | "update" | "keep"
    line_fields: list[str] = field(default_factory=list)
    stations_created: list[str] = field(default_factory=list)
    stations_updated: dict[str, list[str]] = field(default_factory=dict)
    devices_created: list[str] = field(default_factory=list)
    devices_updated: dict[str, list[str]] = field(default_factory=dict)
    devices_deleted: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.line_action != "keep" or any(
            (self.stations_created, self.stations_updated, self.devices_created, self.devices_updated,
             self.devices_deleted)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": {"code": self.line, "action": self.line_action, "fields": self.line_fields},
            "stations": {"create": self.stations_created, "update": self.stations_updated},
            "devices": {"create": self.devices_created, "update": self.devices_updated,
                        "delete": self.devices_deleted},
            "changed": self.changed,
        }

    def describe(self) -> list[str]:
        """One line of text per change, in the order the apply makes them (empty: nothing changes)."""
        out = []
        if self.line_action == "create":
            out.append(f"create line {self.line}")
        elif self.line_action == "update":
            out.append(f"change line {self.line}: {', '.join(self.line_fields)}")
        out += [f"create station {code}" for code in self.stations_created]
        out += [f"change station {code}: {', '.join(f)}" for code, f in self.stations_updated.items()]
        out += [f"create device {code}" for code in self.devices_created]
        out += [f"change device {code}: {', '.join(f)}" for code, f in self.devices_updated.items()]
        out += [f"delete device {code}" for code in self.devices_deleted]
        return out


def _stored(config: LineConfig) -> dict[str, Any]:
    stored = {"plugins": config.plugins,
              "breakers": {k: v.model_dump(exclude_none=True) for k, v in config.breakers.items()}}
    if config.device_defaults:
        stored["device_defaults"] = config.device_defaults
    if config.output_step is not None:
        stored["output_step"] = config.output_step
    return stored


async def plan(*, session, config: LineConfig, catalog: Catalog) -> LinePlan:
    """Validate (:func:`check`, raising 422 ``INVALID_LINE_CONFIG`` with every problem) and say what
    :func:`apply` would change, reading the database but writing nothing."""
    errors = await check(session=session, config=config, catalog=catalog)
    if errors:
        raise Unprocessable("line configuration is invalid", code="INVALID_LINE_CONFIG", errors=errors)
    line = (await session.execute(select(Line).where(Line.code == config.code))).scalar_one_or_none()
    stored = _stored(config)
    result = LinePlan(line=config.code, line_action="create" if line is None else "keep")
    if line is not None:
        before = {"name": line.name, **(line.config or {})}
        after = {"name": config.name, **stored}
        result.line_fields = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        if result.line_fields:
            result.line_action = "update"
    line_id = line.id if line is not None else None
    for spec in config.stations:
        station = (await session.execute(select(Station).where(Station.code == spec.code))).scalar()
        if station is None:
            result.stations_created.append(spec.code)
            continue
        changes = []
        if station.line_id != line_id or line_id is None:
            changes.append("line")
        if spec.name and station.name != spec.name:
            changes.append("name")
        if changes:
            result.stations_updated[spec.code] = changes
    existing = {}
    if line_id is not None:
        rows = await session.execute(
            select(Device, Station.code).outerjoin(Station, Station.id == Device.station_id)
            .where(Device.line_id == line_id)
        )
        existing = {device.code: (device, station_code) for device, station_code in rows}
    for spec in config.devices:
        found = existing.pop(spec.code, None)
        if found is None:
            result.devices_created.append(spec.code)
            continue
        device, station_code = found
        before = {"kind": device.kind, "driver": device.driver, "config": device.config or {},
                  "enabled": device.enabled, "station": station_code}
        after = {"kind": spec.kind, "driver": spec.driver, "config": spec.config, "enabled": spec.enabled,
                 "station": spec.station}
        changes = [k for k in before if before[k] != after[k]]
        if changes:
            result.devices_updated[spec.code] = changes
    result.devices_deleted = sorted(existing)
    return result


async def apply(
    *, session, config: LineConfig, catalog: Catalog, actor: str, at: datetime | None = None
) -> tuple[Line, LinePlan]:
    """Validate and plan (:func:`plan`), then carry the plan out: write the line, its stations and its
    devices, all in the caller's transaction (every write audited). The line's ``config_version``
    goes up by one whenever the plan changes anything (a new line starts at 1). Returns the line and
    the plan. After committing, the caller announces the change
    (:meth:`mes_kernel.runtime.RuntimeConfig.announce`) so every worker follows it.

    ``at`` (aware UTC; default: now) is the moment of the change, the kernel's clock: a station
    moved onto this line while silent has its silence alert split there
    (:func:`mes_kernel.services.silence.move_silence`), so its silence counts against the line it
    was on until then and this one from then on."""
    at = at or datetime.now(UTC)
    steps = await plan(session=session, config=config, catalog=catalog)
    line = (await session.execute(select(Line).where(Line.code == config.code))).scalar_one_or_none()
    stored = _stored(config)
    if steps.line_action == "create":
        line = Line(code=config.code, name=config.name, config=stored, config_version=1)
        session.add(line)
        await session.flush()
        await write_audit(session, actor=actor, action="create", entity="line", entity_id=config.code, after=stored)
    elif steps.line_action == "update":
        before = {"name": line.name, **line.config}
        line.config, line.name = stored, config.name
        await write_audit(session, actor=actor, action="update", entity="line", entity_id=config.code,
                          before=before, after={"name": config.name, **stored})
    for spec in config.stations:
        if spec.code in steps.stations_created:
            session.add(Station(code=spec.code, name=spec.name, line_id=line.id, heartbeat={}))
            await write_audit(session, actor=actor, action="create", entity="station", entity_id=spec.code,
                              after={"code": spec.code, "name": spec.name, "line": config.code})
        elif spec.code in steps.stations_updated:
            station = (await session.execute(select(Station).where(Station.code == spec.code))).scalar_one()
            left = config.code
            if station.line_id != line.id:
                await move_silence(session=session, station=station, line_id=line.id, at=at)
                left = await line_code_of(session, station.line_id)
            before = {"line": left, "name": station.name}
            station.line_id, station.name = line.id, spec.name or station.name
            await write_audit(session, actor=actor, action="update", entity="station", entity_id=spec.code,
                              before=before, after={"line": config.code, "name": station.name})
    await session.flush()
    stations = {}
    for device in config.devices:
        if device.station and device.station not in stations:
            stations[device.station] = (
                await session.execute(select(Station).where(Station.code == device.station))).scalar_one()
    existing = {d.code: d for d in (await session.execute(select(Device).where(Device.line_id == line.id))).scalars()}
    for spec in config.devices:
        values = {"kind": spec.kind, "driver": spec.driver, "config": spec.config, "enabled": spec.enabled,
                  "station_id": stations[spec.station].id if spec.station else None, "line_id": line.id}
        if spec.code in steps.devices_created:
            session.add(Device(code=spec.code, **values))
            await write_audit(session, actor=actor, action="create", entity="device", entity_id=spec.code,
                              after=spec.model_dump())
        elif spec.code in steps.devices_updated:
            device = existing[spec.code]
            before = {k: getattr(device, k) for k in values}
            for k, v in values.items():
                setattr(device, k, v)
            await write_audit(session, actor=actor, action="update", entity="device", entity_id=spec.code,
                              before=before, after=values)
    for code in steps.devices_deleted:
        device = existing[code]
        await session.delete(device)
        await write_audit(session, actor=actor, action="delete", entity="device", entity_id=code,
                          before={"kind": device.kind, "driver": device.driver, "config": device.config})
    if steps.changed and steps.line_action != "create":
        line.config_version = Line.config_version + 1  # in SQL: two writers never share a number
    await session.flush()
    await session.refresh(line, ["config_version"])
    return line, steps


async def export(session, line: Line) -> dict[str, Any]:
    devices = (await session.execute(select(Device).where(Device.line_id == line.id).order_by(Device.code))).scalars()
    out = []
    for d in devices:
        station = await session.get(Station, d.station_id) if d.station_id else None
        out.append({"code": d.code, "kind": d.kind, "driver": d.driver, "station": station.code if station else None,
                    "enabled": d.enabled, "config": d.config})
    query = select(Station).where(Station.line_id == line.id).order_by(Station.code)
    stations = (await session.execute(query)).scalars()
    return {"code": line.code, "name": line.name, "plugins": line.config.get("plugins"),
            "breakers": line.config.get("breakers", {}), "device_defaults": line.config.get("device_defaults", {}),
            "output_step": line.config.get("output_step"),
            "stations": [{"code": s.code, "name": s.name} for s in stations], "devices": out,
            "config_version": line.config_version}

