"""Station-side plugin extensions: device kinds, events and action panels from ``mes_station.plugins``.

A plugin names a :class:`mes_kernel.contracts.StationExtension` (or a function returning one) in the
entry-point group ``mes_station.plugins``. The station knows no device kind of its own: the bundled
scanner, printer and uploader plugins declare theirs exactly as a third party's plugin does. Each
entry point loads inside its own error boundary: a broken one is reported, the others still load.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from mes_kernel.contracts import ActionPanel, PanelButton, StationDeviceKind, StationExtension

log = logging.getLogger(__name__)

GROUP = "mes_station.plugins"


class ActionError(ValueError):
    """An action panel's button cannot be sent: unknown panel or button, or a required field missing."""

    code = "ACTION_INVALID"


@dataclass
class Extensions:
    """Every station extension installed here, and the entry points that failed to load (with why)."""

    loaded: dict[str, StationExtension] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def kinds(self) -> dict[str, StationDeviceKind]:
        """Device kind name → its declaration."""
        return {k.kind: k for ext in self.loaded.values() for k in ext.device_kinds}

    def kind_for(self, name: str) -> StationDeviceKind | None:
        """The kind declared under this kind name or role word (``"label_printer"`` or ``"printer"``)."""
        for kind in self.kinds().values():
            if name in (kind.kind, kind.role):
                return kind
        return None

    def panels_for(self, kind: str) -> list[ActionPanel]:
        return [p for ext in self.loaded.values() for p in ext.panels if p.kind == kind]

    def plugin_of(self, panel_id: str) -> str | None:
        """The name of the station extension that declares panel ``panel_id`` (its catalogue's)."""
        for ext in self.loaded.values():
            if any(p.id == panel_id for p in ext.panels):
                return ext.name
        return None

    def panel(self, panel_id: str) -> ActionPanel:
        for ext in self.loaded.values():
            for p in ext.panels:
                if p.id == panel_id:
                    return p
        raise ActionError(
            f"no action panel {panel_id!r} (installed: {[p.id for e in self.loaded.values() for p in e.panels]})"
        )

    def events(self) -> set[str]:
        return {e for ext in self.loaded.values() for e in ext.events}


def load_extensions() -> Extensions:
    """Load every ``mes_station.plugins`` entry point, each in its own error boundary."""
    out = Extensions()
    for ep in metadata.entry_points(group=GROUP):
        try:
            target = ep.load()
            ext = target() if callable(target) and not isinstance(target, StationExtension) else target
            if not isinstance(ext, StationExtension):
                raise TypeError(f"{ep.value} is a {type(ext).__name__}, not a StationExtension")
        except Exception as exc:  # one broken plugin must not keep the others (or the station) down
            out.failed[ep.name] = f"{type(exc).__name__}: {exc}"
            log.error("station extension %s failed to load: %s", ep.name, exc)
            continue
        out.loaded[ep.name] = ext
    return out


_cached: Extensions | None = None


def installed(*, refresh: bool = False) -> Extensions:
    """The extensions of this installation, loaded once per process (again with ``refresh``, e.g. after
    a plugin was installed into the running interpreter's path)."""
    global _cached
    if _cached is None or refresh:
        _cached = load_extensions()
    return _cached


def fill(template: Any, values: dict[str, Any]) -> Any:
    """``template`` with every ``{name}`` in its strings replaced from ``values``; a string that is
    exactly one placeholder takes the value itself (a number stays a number, ``None`` stays ``None``)."""
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list | tuple):
        return [fill(v, values) for v in template]
    if isinstance(template, str):
        if template.startswith("{") and template.endswith("}") and template[1:-1] in values:
            return values[template[1:-1]]
        try:
            return template.format_map(values)
        except (KeyError, ValueError) as exc:
            raise ActionError(f"{template!r}: no value for {exc}") from None
    return template


def _without_empty(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_empty(v) for k, v in value.items() if v not in (None, "")}
    return value


def build_request(
    panel: ActionPanel,
    button_id: str,
    *,
    values: dict[str, Any],
    device: str,
    station: str,
    idempotency_key: str | None = None,
) -> tuple[str, str, dict[str, Any]]:
    """``(method, path, body)`` for pressing ``button_id`` on ``panel`` with the field ``values``.

    An ``idempotent`` button's body carries ``idempotency_key`` (a fresh one unless given: the agent
    gives the key of an attempt whose answer was lost, so the retry acts once)."""
    button: PanelButton | None = next((b for b in panel.buttons if b.id == button_id), None)
    if button is None:
        raise ActionError(f"panel {panel.id!r} has no button {button_id!r}")
    given = {f.name: values.get(f.name, f.default) for f in panel.fields}
    missing = [f.name for f in panel.fields if f.required and given.get(f.name) in (None, "")]
    if missing:
        raise ActionError(f"{panel.title}: fill in {', '.join(missing)}")
    for f in panel.fields:
        if f.type == "choice" and given.get(f.name) not in (None, "") and given[f.name] not in f.choices:
            raise ActionError(f"{f.label}: choose one of {', '.join(f.choices)}")
        if f.type == "number" and given.get(f.name) not in (None, ""):
            try:
                number = float(given[f.name])
                given[f.name] = int(number) if number.is_integer() else number
            except (TypeError, ValueError):
                raise ActionError(f"{f.label}: not a number") from None
    context = {**given, "device": device, "station": station}
    # a field left empty is left out (at any depth), so the route applies its own default
    body = _without_empty(fill(dict(button.body), context))
    if button.idempotent:
        body.setdefault("idempotency_key", idempotency_key or str(uuid.uuid4()))
    return button.method, fill(button.path, context), body
