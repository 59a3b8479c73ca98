"""Turns what the agent returns (lookup dicts, errors, scans) into text the window shows.

Pure functions, no widgets: the window stays a thin shell and these are tested on their own.
The lookup answer is read leniently — nested (``{"unit": {...}, "lot": {...}}``) or flat —
so the window keeps working while the scan-lookup route's shape settles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HISTORY_COLUMNS = ("When", "Process", "Action", "Result", "Defect", "Worker", "Station")


@dataclass(frozen=True)
class UnitView:
    """What the main screen shows for one scanned code."""

    code: str
    kind: str
    lot_number: str | None = None
    serial_number: str | None = None
    product: str | None = None
    lot_status: str | None = None
    lot_quantity: int | None = None
    next_process_id: str | None = None
    next_process_name: str | None = None
    firmware_image_id: str | None = None
    history: list[tuple[str, ...]] = field(default_factory=list)
    warnings: tuple[str, ...] = ()
    history_error: str | None = None

    @property
    def can_record(self) -> bool:
        """A result needs a LOT and a process to record against."""
        return bool(self.lot_number and self.next_process_id)

    @property
    def next_process_text(self) -> str:
        if not self.next_process_id:
            return "— (routing complete or unknown)"
        if self.next_process_name and self.next_process_name != self.next_process_id:
            return f"{self.next_process_id} · {self.next_process_name}"
        return self.next_process_id

    def label_fields(self, fixed: dict[str, Any] | None = None) -> dict[str, Any]:
        """Fields handed to ``print_label``: the scanned unit's (or LOT's) over ``fixed`` ones."""
        fields = {
            "serial_number": self.serial_number,
            "lot_number": self.lot_number,
            "product": self.product,
            "quantity": None if self.serial_number else self.lot_quantity,
        }
        return {**(fixed or {}), **{key: value for key, value in fields.items() if value is not None}}


def unit_view(code: str, answer: dict[str, Any]) -> UnitView:
    """Read a lookup answer into a ``UnitView``."""
    unit = _section(answer, "unit")
    lot = _section(answer, "lot")
    serial_number = unit.get("serial_number") or answer.get("serial_number")
    lot_number = lot.get("lot_number") or unit.get("lot_number") or answer.get("lot_number")
    kind = str(answer.get("kind") or ("unit" if serial_number else "lot" if lot_number else "unknown"))
    next_id, next_name = _next_process(answer.get("next_process", answer.get("next_process_id")))
    firmware = answer.get("firmware_image_id") or lot.get("firmware_image_id")
    return UnitView(
        code=code,
        kind=kind,
        lot_number=lot_number,
        serial_number=serial_number,
        product=lot.get("product") or answer.get("product"),
        lot_status=lot.get("status") or answer.get("lot_status"),
        lot_quantity=lot.get("quantity"),
        next_process_id=next_id,
        next_process_name=next_name,
        firmware_image_id=str(firmware) if firmware else None,
        history=[history_row(entry) for entry in _history_entries(answer.get("history"))],
        warnings=tuple(str(w) for w in answer.get("warnings") or ()),
        history_error=answer.get("history_error"),
    )


def _history_entries(history: Any) -> list[dict[str, Any]]:
    # A list of events, or a history route's answer ``{"events": [...]}``.
    if isinstance(history, dict):
        history = history.get("events")
    return [entry for entry in history or [] if isinstance(entry, dict)]


def history_row(entry: dict[str, Any]) -> tuple[str, ...]:
    """One history event as a table row.

    Reads the kernel's ``{"at", "type", "data": {...}}`` events (process records and device
    actions) as well as flat dicts.
    """
    inner = entry.get("data")
    flat = {**entry, **inner} if isinstance(inner, dict) else dict(entry)
    when = flat.get("recorded_at") or flat.get("at") or flat.get("created_at") or ""
    action = flat.get("action") or ("result" if flat.get("type") == "process_record" or flat.get("result") else "")
    station = flat.get("station_code") or flat.get("station") or flat.get("station_id")
    return (
        _short_time(str(when)),
        _text(flat.get("process_id")),
        _text(action),
        _text(flat.get("result") or flat.get("outcome")),
        _text(flat.get("defect_code")),
        _text(flat.get("worker_id") or flat.get("actor") or flat.get("created_by")),
        _text(station),
    )


def scan_code(scan: Any) -> str | None:
    """The code carried by a ``("scan", scan)`` event, whatever the scanner driver sends."""
    if isinstance(scan, str):
        return scan.strip() or None
    for key in ("code", "value", "data", "raw", "text"):
        value = scan.get(key) if isinstance(scan, dict) else getattr(scan, key, None)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def scan_source(scan: Any) -> str | None:
    """Where a scan came from (``keyboard``, ``scanner``, ``serial:/dev/…``), if it says."""
    source = scan.get("source") if isinstance(scan, dict) else getattr(scan, "source", None)
    return str(source) if source else None


def worker_name(worker: Any) -> str | None:
    """The worker id to record results under, from ``agent.worker`` (str, dict or object)."""
    if worker is None:
        return None
    if isinstance(worker, str):
        return worker or None
    for key in ("username", "worker_id", "name", "id"):
        value = worker.get(key) if isinstance(worker, dict) else getattr(worker, key, None)
        if value:
            return str(value)
    return None


def describe_error(exc: BaseException, action: str) -> str:
    """A one-line message for the worker; matched by class name so agent and UI stay decoupled."""
    name = type(exc).__name__
    message = str(exc) or name
    if name == "OfflineError":
        return f"{action}: the server is unreachable (offline). {message}"
    if name == "OutboxFullError":
        return f"{action}: NOT SAVED — the station's outbox is full. {message}"
    if name in {"NotFound", "NotFoundError", "UnknownCodeError"}:
        return f"{action}: not found. {message}"
    server_code, server_message = getattr(exc, "code", None), getattr(exc, "message", None)
    if isinstance(server_code, str) and isinstance(server_message, str):
        return f"{action}: {server_message} ({server_code})"
    return f"{action} failed: {name}: {message}"


def queue_text(depth: int | None, oldest_age: float | None) -> str:
    """Status-bar text for the outbox."""
    if depth is None:
        return "Queue: ?"
    if depth == 0 or oldest_age is None:
        return f"Queue: {depth}"
    return f"Queue: {depth} (oldest {format_age(oldest_age)})"


def format_age(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def flash_progress(status: dict[str, Any]) -> tuple[int, str, bool]:
    """``(percent, state, finished)`` from a ``flash_status`` answer."""
    state = str(status.get("status") or status.get("state") or "unknown")
    percent = float(status.get("progress", status.get("percent", 0)) or 0)
    finished = state in {"done", "failed", "succeeded", "success", "error", "cancelled"}
    if state in {"done", "succeeded", "success"}:
        percent = 100
    return max(0, min(100, int(percent))), state, finished


def _section(answer: dict[str, Any], key: str) -> dict[str, Any]:
    value = answer.get(key)
    return value if isinstance(value, dict) else {}


def _next_process(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, dict):
        process_id = value.get("process_id") or value.get("id")
        return (str(process_id) if process_id else None), value.get("name")
    if value:
        return str(value), None
    return None, None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _short_time(stamp: str) -> str:
    # ISO-8601 from the server: show "YYYY-MM-DD HH:MM:SS" without offset noise.
    return stamp.replace("T", " ")[:19]
