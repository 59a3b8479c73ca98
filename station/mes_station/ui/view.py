"""Turns what the agent returns (lookup dicts, errors, scans) into what the window shows.

Pure functions and frozen records, no widgets: the window stays a thin shell and these are
tested on their own. Every text goes through Qt's translation system (``tr``, context
``view``), so it is in the station's language. The lookup answer is read leniently — nested
(``{"unit": {...}, "lot": {...}}``) or flat — so the window keeps working while the
scan-lookup route's shape settles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mes_station.ui.i18n import translate


def history_columns() -> tuple[str, ...]:
    """Column titles of the history table, in the current language."""
    return (
        translate("view", "When"),
        translate("view", "Process"),
        translate("view", "Action"),
        translate("view", "Result"),
        translate("view", "Defect"),
        translate("view", "Worker"),
        translate("view", "Station"),
    )


@dataclass(frozen=True)
class UnitView:
    """What the main screen shows for one scanned code.

    ``source`` is ``"server"`` or ``"cache"`` (the agent answered from the station's cache
    while the server is unreachable). ``history`` rows are newest first.
    """

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
    source: str = "server"
    process_assumed: bool = False

    @property
    def from_cache(self) -> bool:
        return self.source == "cache"

    @property
    def unknown_offline(self) -> bool:
        """A code the station's cache does not know, scanned while offline: may still be recorded."""
        return self.kind == "unknown" and self.from_cache and bool(self.serial_number)

    @property
    def can_record(self) -> bool:
        """A result needs a process, and a LOT (or an offline unit whose LOT the server finds later)."""
        return bool(self.next_process_id and (self.lot_number or self.unknown_offline))

    @property
    def next_process_text(self) -> str:
        if not self.next_process_id:
            return translate("view", "— (routing complete or unknown)")
        text = self.next_process_id
        if self.next_process_name and self.next_process_name != self.next_process_id:
            text = f"{self.next_process_id} · {self.next_process_name}"
        if self.process_assumed:
            text += " " + translate("view", "(as the unit before)")
        return text

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
    """Read a lookup answer into a ``UnitView`` (history newest first)."""
    unit = _section(answer, "unit")
    lot = _section(answer, "lot")
    serial_number = unit.get("serial_number") or answer.get("serial_number")
    lot_number = lot.get("lot_number") or unit.get("lot_number") or answer.get("lot_number")
    kind = str(answer.get("kind") or ("unit" if serial_number else "lot" if lot_number else "unknown"))
    next_id, next_name = _next_process(answer.get("next_process", answer.get("next_process_id")))
    firmware = answer.get("firmware_image_id") or lot.get("firmware_image_id")
    product = lot.get("product") or answer.get("product")
    if isinstance(product, dict):
        product = product.get("code") or product.get("name")
    return UnitView(
        code=code,
        kind=kind,
        lot_number=lot_number,
        serial_number=serial_number,
        product=product,
        lot_status=lot.get("status") or answer.get("lot_status"),
        lot_quantity=lot.get("quantity"),
        next_process_id=next_id,
        next_process_name=next_name,
        firmware_image_id=str(firmware) if firmware else None,
        history=history_rows(answer.get("history")),
        warnings=tuple(str(w) for w in answer.get("warnings") or ()),
        history_error=answer.get("history_error"),
        source=str(answer.get("source") or "server"),
    )


def history_rows(history: Any) -> list[tuple[str, ...]]:
    """A history (list of events, or a history route's ``{"events": [...]}``) as table rows, newest first.

    Events are ordered by when they happened at the station (``recorded_at``, else ``at``);
    events with the same time keep the reverse of the server's order (which is oldest first).
    """
    if isinstance(history, dict):
        history = history.get("events")
    entries = [entry for entry in history or [] if isinstance(entry, dict)]
    keyed = [(_when(entry), index, entry) for index, entry in enumerate(entries)]
    keyed.sort(key=lambda item: (item[0] is not None, item[0] or datetime.min, item[1]), reverse=True)
    return [history_row(entry) for _, _, entry in keyed]


def history_row(entry: dict[str, Any]) -> tuple[str, ...]:
    """One history event as a table row (when, process, action, result, defect, worker, station).

    Reads the kernel's ``{"at", "type", "data": {...}}`` events (process records, device
    actions, scans) as well as flat dicts. The station is shown by its code: ``station_code``,
    else the code in an actor ``station:ST-02``; a bare numeric id is shown as ``#id``.
    """
    inner = entry.get("data")
    flat = {**entry, **inner} if isinstance(inner, dict) else dict(entry)
    when = flat.get("recorded_at") or flat.get("at") or flat.get("created_at") or ""
    kind = flat.get("type")
    action = flat.get("action") or (
        "result" if kind == "process_record" or flat.get("result") else kind if isinstance(kind, str) else ""
    )
    return (
        _short_time(str(when)),
        _text(flat.get("process_id")),
        event_word(_text(action)),
        event_word(_text(flat.get("result") or flat.get("outcome"))),
        _text(flat.get("defect_code")),
        _text(flat.get("worker_id") or flat.get("worker") or flat.get("actor") or flat.get("created_by")),
        station_label(flat),
    )


def event_word(word: str) -> str:
    """An action, outcome or job state the kernel or agent names in English (``result``, ``pass``,
    ``printed``, ``running``…), in the current language.

    Words this window does not know are shown as they came.
    """
    words = {
        "result": translate("view", "result"),
        "scan": translate("view", "scan"),
        "flash": translate("view", "flash"),
        "print": translate("view", "print"),
        "pass": translate("view", "pass"),
        "fail": translate("view", "fail"),
        "success": translate("view", "success"),
        "failure": translate("view", "failure"),
        "failed": translate("view", "failed"),
        "done": translate("view", "done"),
        "registered": translate("view", "registered"),
        "status_change": translate("view", "status change"),
        "printed": translate("view", "printed"),
        "sent": translate("view", "sent"),
        "queued": translate("view", "queued"),
        "running": translate("view", "running"),
        "pending": translate("view", "pending"),
        "cancelled": translate("view", "cancelled"),
        "error": translate("view", "error"),
    }
    return words.get(word, word)


def station_label(event: dict[str, Any]) -> str:
    """The station code of a history event (see ``history_row``)."""
    code = event.get("station_code") or event.get("station")
    if isinstance(code, dict):
        code = code.get("code")
    if code:
        return str(code)
    for key in ("actor", "created_by"):
        actor = event.get(key)
        if isinstance(actor, str) and actor.startswith("station:"):
            return actor.split(":", 1)[1]
    station_id = event.get("station_id")
    return f"#{station_id}" if station_id not in (None, "") else ""


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


def login_language(answer: Any) -> str | None:
    """The worker's own language from a login answer (``language``, ``locale``, or inside ``user``)."""
    if not isinstance(answer, dict):
        return None
    for source in (answer, answer.get("user") if isinstance(answer.get("user"), dict) else {}):
        for key in ("language", "locale", "lang"):
            value = source.get(key)
            if isinstance(value, str) and value.strip():
                return value
    return None


# -- errors: plain words and a stable code ------------------------------------------------------

_CLASS_CODES = {
    "OfflineError": "OFFLINE",
    "ConnectError": "OFFLINE",
    "ConnectTimeout": "OFFLINE",
    "OutboxFullError": "OUTBOX_FULL",
    "DeviceUnavailableError": "DEVICE_UNAVAILABLE",
    "DeviceError": "DEVICE_ERROR",
    "TemplateNotCachedError": "TEMPLATE_NOT_CACHED",
    "TemplateError": "TEMPLATE_INVALID",
    "ActionError": "VALIDATION_ERROR",
    "ValueError": "VALIDATION_ERROR",
    "TimeoutError": "TIMEOUT",
    "NotFound": "NOT_FOUND",
    "NotFoundError": "NOT_FOUND",
    "UnknownCodeError": "UNKNOWN_CODE",
    "NotImplementedError": "NOT_SUPPORTED",
}


_GENERIC_CODES = {"NOT_FOUND", "VALIDATION_ERROR", "BAD_REQUEST", "CONFLICT", "MALFORMED_JSON", "DEVICE_ERROR"}
"""Codes whose plain words are too general alone: the server's (or device's) message follows them."""


def plain_words(code: str) -> str | None:
    """What an error code means for the worker, in the current language (None when not known here)."""
    words = {
        "OFFLINE": translate("view", "The server cannot be reached. The station keeps working offline."),
        "OUTBOX_FULL": translate(
            "view", "NOT SAVED: the station's disk is full. Call maintenance, then enter it again."
        ),
        "INVALID_CREDENTIALS": translate("view", "Wrong username or password."),
        "OFFLINE_LOGIN_UNAVAILABLE": translate(
            "view",
            "The server cannot be reached, and this worker has no recent login at this station. Ask a supervisor.",
        ),
        "UNAUTHORIZED": translate("view", "Not logged in, or the login has expired. Log in again."),
        "INVALID_TOKEN": translate("view", "Not logged in, or the login has expired. Log in again."),
        "TOKEN_EXPIRED": translate("view", "Not logged in, or the login has expired. Log in again."),
        "FORBIDDEN": translate("view", "This worker is not allowed to do this."),
        "ACCOUNT_DISABLED": translate("view", "This worker's account is disabled. Ask a supervisor."),
        "UNKNOWN_CODE": translate("view", "This code is not known."),
        "NOT_FOUND": translate("view", "Not found."),
        "UNIT_NOT_FOUND": translate("view", "This unit is not known."),
        "LOT_NOT_FOUND": translate("view", "This LOT is not known."),
        "LOT_CLOSED": translate("view", "This LOT is closed: nothing more can be recorded on it."),
        "VALIDATION_ERROR": translate("view", "The entry is incomplete or not valid."),
        "IMPLAUSIBLE_TIME": translate(
            "view",
            "The station's clock is wrong: this entry is kept at the station but not accepted. Tell maintenance.",
        ),
        "DEVICE_UNAVAILABLE": translate(
            "view", "This device is not set up at this station, or its driver did not start."
        ),
        "DEVICE_ERROR": translate("view", "The device reported a problem."),
        "TEMPLATE_NOT_CACHED": translate(
            "view", "The label template is not stored at this station and the server cannot be reached."
        ),
        "TEMPLATE_NOT_FOUND": translate("view", "The label template does not exist."),
        "IMAGE_NOT_FOUND": translate("view", "The firmware image does not exist."),
        "FLASH_IN_PROGRESS": translate("view", "A flash is already running for this unit."),
        "SERVICE_UNAVAILABLE": translate("view", "The server is busy or being maintained. Try again in a moment."),
        "TIMEOUT": translate("view", "No answer in time. Try again."),
        "NOT_SUPPORTED": translate("view", "This station's agent cannot do this yet."),
        "UNEXPECTED_ERROR": translate("view", "Something unexpected went wrong. Tell maintenance the code shown."),
    }
    return words.get(code)


def error_code(exc: BaseException) -> str:
    """The stable code of an error: its ``code`` attribute, else one for its kind, else ``UNEXPECTED_ERROR``."""
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return code
    for cls in type(exc).__mro__:
        if cls.__name__ in _CLASS_CODES:
            return _CLASS_CODES[cls.__name__]
    return "UNEXPECTED_ERROR"


def describe_error(exc: BaseException, action: str) -> str:
    """One line for the worker: ``"<action>: <plain words> [CODE]"``.

    The plain words come from the code (translated); for a server code this window does not
    know, the server's own message is shown. Exception class names and library messages
    (``ConnectError: All connection attempts failed``) never reach the worker.
    """
    code = error_code(exc)
    words = plain_words(code)
    server_message = getattr(exc, "message", None)
    said = isinstance(server_message, str) and bool(server_message.strip())
    if words is None:
        words = server_message if said else plain_words("UNEXPECTED_ERROR")
    elif said and code in _GENERIC_CODES:
        words = f"{words} {server_message}"  # "Not found." alone would hide *what* was not found
    return f"{action}: {words} [{code}]"


def queue_text(depth: int | None, oldest_age: float | None) -> str:
    """Status-bar text for the outbox."""
    if depth is None:
        return translate("view", "Queue: ?")
    if depth == 0 or oldest_age is None:
        return translate("view", "Queue: {depth}").format(depth=depth)
    return translate("view", "Queue: {depth} (oldest {age})").format(depth=depth, age=format_age(oldest_age))


def format_age(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return translate("view", "{n} s").format(n=f"{seconds:.0f}")
    if seconds < 3600:
        return translate("view", "{n} min").format(n=f"{seconds / 60:.0f}")
    return translate("view", "{n} h").format(n=f"{seconds / 3600:.1f}")


def flash_progress(status: dict[str, Any]) -> tuple[int, str, bool]:
    """``(percent, state, finished)`` from a ``flash_status`` answer."""
    state = str(status.get("status") or status.get("state") or "unknown")
    percent = float(status.get("progress", status.get("percent", 0)) or 0)
    finished = state in {"done", "failed", "succeeded", "success", "error", "cancelled"}
    if state in {"done", "succeeded", "success"}:
        percent = 100
    return max(0, min(100, int(percent))), state, finished


def firmware_choice_text(image: dict[str, Any]) -> str:
    """How a firmware image is named in the picker: ``name version · device`` (what is known)."""
    name = str(image.get("name") or image.get("product") or image.get("id") or "")
    version = image.get("version")
    device = image.get("device")
    text = f"{name} {version}".strip() if version else name
    return f"{text} · {device}" if device else text


def _when(entry: dict[str, Any]) -> datetime | None:
    inner = entry.get("data") if isinstance(entry.get("data"), dict) else {}
    stamp = inner.get("recorded_at") or entry.get("recorded_at") or entry.get("at") or entry.get("created_at")
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment  # the kernel's stamps are UTC
    return moment.astimezone(UTC).replace(tzinfo=None)


def _section(answer: dict[str, Any], key: str) -> dict[str, Any]:
    value = answer.get(key)
    return value if isinstance(value, dict) else {}


def _next_process(value: Any) -> tuple[str | None, str | None]:
    if isinstance(value, dict):
        process_id = value.get("process_id") or value.get("id") or value.get("code")
        return (str(process_id) if process_id else None), value.get("name")
    if value:
        return str(value), None
    return None, None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _short_time(stamp: str) -> str:
    # ISO-8601 from the server: show "YYYY-MM-DD HH:MM:SS" without offset noise.
    return stamp.replace("T", " ")[:19]
