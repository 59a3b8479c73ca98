"""Plain data types that plugins return from hooks: the kernel's side of the plugin contract."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .text import check_comment as check_comment
from .text import check_identifier as check_identifier
from .text import check_name as check_name
from .text import is_identifier as is_identifier

KERNEL_API_VERSION = "1.0"

#: server-side names re-exported lazily, so that importing the contracts (as a station does, to load
#: drivers) never imports SQLAlchemy or FastAPI
_SERVER_EXPORTS = {
    "resolve_device": "mes_kernel.devices",
    "devices_for": "mes_kernel.devices",
    "ResolvedDevice": "mes_kernel.devices",
    "ensure_lot_open": "mes_kernel.devices",
    "audited_write": "mes_kernel.device_writes",
    "MachineDataHub": "mes_kernel.machine_data.hub",
    "MachineSink": "mes_kernel.machine_data.sink",
    "ConnectorFleet": "mes_kernel.machine_data.fleet",
    "INSTALLATION": "mes_kernel.machine_data.fleet",
    "stop_task": "mes_kernel.machine_data.fleet",
    "MachineConnector": "mes_kernel.machine_data.fleet",
    "LeaseLost": "mes_kernel.machine_data.fleet",
    "backoff": "mes_kernel.machine_data.fleet",
    # the kernel's text types for request models (pydantic); the plain rules are check_name … above
    "Name": "mes_kernel.schemas",
    "Comment": "mes_kernel.schemas",
    "Identifier": "mes_kernel.schemas",
    "checked": "mes_kernel.schemas",
}

#: plain (station-safe) names of the machine-data contract, imported on first use
_MACHINE_EXPORTS = {
    "MachineMapping",
    "MappingError",
    "Signal",
    "MACHINE_STATES",
    "counter_increment",
    "from_float32",
    "raw_key",
}


def __getattr__(name: str) -> Any:
    if name in _MACHINE_EXPORTS:
        from .machine_data import mapping

        return getattr(mapping, name)
    module = _SERVER_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


class Status(enum.StrEnum):
    """Health states, worst last: DOWN > DEGRADED > UP."""

    UP = "UP"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"

    @property
    def rank(self) -> int:
        return {"UP": 0, "DEGRADED": 1, "DOWN": 2}[self.value]

    @classmethod
    def worst(cls, states: list[Status]) -> Status:
        return max(states, key=lambda s: s.rank, default=cls.UP)


@dataclass(frozen=True)
class Permission:
    """A permission name (``"labels:print"``) and the roles that hold it by default."""

    name: str
    description: str
    roles: tuple[str, ...] = ("admin",)


@dataclass(frozen=True)
class DeviceKind:
    """A kind of device: its name, the stevedore namespace of its drivers, their base class."""

    name: str
    namespace: str
    base_class: type
    description: str = ""
    # Optional: check a device's effective configuration (line defaults under its own) before a line
    # is applied. Called as ``validate_config(config, code=..., driver=...)``; raise ``MappingError``
    # (its ``field`` becomes the error's location under ``config``) or ``ValueError``.
    validate_config: Callable[..., None] | None = None


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds of a circuit breaker guarding one kind of device action.

    ``expected_exceptions`` are the exceptions that count as failures; any other exception passes
    through without touching the breaker (the spec: only HTTP errors count for the uploader).
    """

    name: str
    failure_threshold: int
    recovery_timeout: float
    expected_exceptions: tuple[type[BaseException], ...] = (Exception,)
    description: str = ""


@dataclass(frozen=True)
class Reason:
    """Why a health node is not UP (or what an UP one lacks), said twice: ``text`` in English for
    logs and API users, and ``code`` with the values it names (``params``) for a dashboard to word
    in its reader's language. A code is stable, upper snake case, and names one kind of reason
    (``PRINTER_SILENT``); the web dashboard words it by ``health.reason.<code>`` in its catalogs,
    and a test there fails when a code the kernel or a bundled plugin gives has no text. A value
    that is itself a list of reasons (several devices, several problems) is a list of
    :meth:`fields` dicts, each with its own code."""

    code: str
    text: str
    params: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> dict[str, Any]:
        """``{reason, reason_code, reason_params}``: how a health node carries it."""
        return {"reason": self.text, "reason_code": self.code, "reason_params": dict(self.params)}


@dataclass
class CheckResult:
    """What a health check found. ``reason`` is English text, or a :class:`Reason`, which also
    fills ``reason_code`` and ``reason_params`` (a plain text leaves them empty: the dashboard then
    shows the text as it is)."""

    status: Status
    reason: str | Reason | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: one result per device (printer, uploader …) when a check covers several; shown as a subtree
    components: dict[str, CheckResult] = field(default_factory=dict)
    reason_code: str | None = None
    reason_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.reason, Reason):
            why = self.reason
            self.reason, self.reason_code, self.reason_params = why.text, why.code, dict(why.params)

    def why(self) -> dict[str, Any]:
        """``{reason, reason_code, reason_params}`` as the health tree shows them."""
        return {"reason": self.reason, "reason_code": self.reason_code, "reason_params": self.reason_params}


@dataclass(frozen=True)
class HealthCheck:
    """A named async check; ``critical`` ones can make ``/health`` answer 503."""

    name: str
    check: Callable[[], Awaitable[CheckResult]]
    critical: bool = False
    timeout: float = 2.0


@dataclass(frozen=True)
class Panel:
    """A dashboard panel the web shell renders from data at ``endpoint``."""

    id: str
    title: str
    kind: str  # stat | timeseries | bar | table
    endpoint: str
    refresh_seconds: int = 30
    options: dict[str, Any] = field(default_factory=dict)
    #: permission needed to read ``endpoint``; the panel is listed only for roles that hold it
    permission: str | None = None
    #: language code (``"ko"``) → message catalogue ``{English text: translated text}`` for what a
    #: reader sees of the panel (:meth:`texts`); the web shell shows a text without an entry as is
    translations: dict[str, dict[str, str]] = field(default_factory=dict)

    KINDS = ("stat", "timeseries", "bar", "table")

    def texts(self) -> list[str]:
        """Every English text of the panel a reader sees: its title, a stat's ``caption``, a
        chart's ``series`` names (the legend) and a table's column ``title``s."""
        options = self.options or {}
        texts = [self.title]
        if isinstance(options.get("caption"), str):
            texts.append(options["caption"])
        texts += [name for name in options.get("series", ()) if isinstance(name, str)]
        texts += [c["title"] for c in options.get("columns", ()) if isinstance(c, dict) and "title" in c]
        return texts


# ---------------------------------------------------------------- the station side of a plugin
#
# A plugin ships its station-side extension through the entry-point group ``mes_station.plugins``:
# the entry point names a ``StationExtension`` (or a function returning one). The station agent reads
# these without the server's stack, so they are plain data here, beside the other contracts.


@dataclass(frozen=True)
class StationDeviceKind:
    """A device kind a station drives: the line configuration's ``kind``, its drivers' stevedore
    ``namespace``, and the ``role`` word the station and its window use for it (``"printer"``)."""

    kind: str
    namespace: str
    role: str
    description: str = ""
    #: device settings the server-side plugin uses and the driver's constructor does not take
    server_settings: tuple[str, ...] = ()


@dataclass(frozen=True)
class PanelField:
    """One input of an action panel. ``type`` is ``text``, ``number`` or ``choice`` (from ``choices``)."""

    name: str
    label: str
    type: str = "text"
    required: bool = True
    choices: tuple[str, ...] = ()
    default: Any = None


@dataclass(frozen=True)
class PanelButton:
    """A button mapped to one of the plugin's routes.

    ``path`` is relative to ``/api/v1``; ``body`` is a template whose string values may hold
    ``{field}`` placeholders, plus ``{device}`` (the device's code) and ``{station}`` (the station's).
    With ``idempotent`` the agent adds an ``idempotency_key`` so a double click acts once.
    """

    id: str
    label: str
    path: str
    method: str = "POST"
    body: dict[str, Any] = field(default_factory=dict)
    idempotent: bool = True


@dataclass(frozen=True)
class ActionPanel:
    """A declarative panel the station window renders for every device of ``kind`` at the station."""

    id: str
    title: str
    kind: str
    fields: tuple[PanelField, ...] = ()
    buttons: tuple[PanelButton, ...] = ()


@dataclass(frozen=True)
class StationExtension:
    """What a plugin adds to a station: device kinds, the event types it produces, action panels,
    and the panels' words in the languages the station window speaks.

    ``translations`` maps a language code (``"ko"``; ``"ko-KR"`` is read as ``"ko"``) to a message
    catalogue ``{English text: translated text}`` for the panels' titles, field labels and button
    labels. The window installs it into Qt's translation system (context ``plugin:<name>``) when it
    speaks that language; a text missing from it stays English. ``PanelField.choices`` are values
    sent to the plugin's route and are shown as they are.
    """

    name: str
    device_kinds: tuple[StationDeviceKind, ...] = ()
    events: tuple[str, ...] = ()
    panels: tuple[ActionPanel, ...] = ()
    translations: dict[str, dict[str, str]] = field(default_factory=dict)

    def panel_texts(self) -> list[str]:
        """Every English text of the panels a worker reads (what ``translations`` should cover)."""
        texts: list[str] = []
        for panel in self.panels:
            texts.append(panel.title)
            texts.extend(f.label for f in panel.fields)
            texts.extend(b.label for b in panel.buttons)
        return list(dict.fromkeys(texts))
