"""Test and demo helpers for the window: a fake agent, a hand-driven timer and Qt waiting helpers.

``FakeAgent`` implements ``AgentLike`` in memory, for screenshots and for tests that need an
agent state the real one cannot be put in cheaply (a full disk, a rejected record, a
quarantined file). Tests of the real wiring run the window against ``mes_station.agent.Agent``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from mes_station.errors import OfflineError, OutboxFullError, StationError


class FakeAgentError(StationError):
    """An error with a stable ``code``, as the real agent's errors carry."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FakeAgent:
    """An in-memory ``AgentLike``: a few units, workers, a station cache and an outbox.

    While online, recorded results are delivered at once (a ``delivery`` event ``delivered``
    follows each key); while offline they stay queued and are delivered, in order, when
    ``set_online(True)`` is called. ``reject_next`` makes the server refuse the next delivery.
    """

    def __init__(
        self,
        *,
        units: dict[str, dict[str, Any]] | None = None,
        workers: dict[str, str] | None = None,
        flash_steps: int = 4,
        panel_devices: dict[str, str] | None = None,
    ) -> None:
        self.online = True
        #: device code → device kind: the installed plugins' action panels shown for these devices
        self.panel_devices = dict(panel_devices or {})
        self.actions: list[dict[str, Any]] = []
        self.worker: str | None = None
        self.units = units if units is not None else demo_units()
        self.workers = workers if workers is not None else {"alice": "secret", "minji": "secret"}
        self.languages: dict[str, str] = {"minji": "ko"}
        self.cached_credentials: set[str] = set()
        self.cached_codes: set[str] = set(self.units)
        self.defects = demo_defect_codes()
        self.images = demo_firmware_images()
        self.outbox_full = False
        self.reject_next: tuple[str, str] | None = None
        self.quarantined = 0
        self.flash_steps = flash_steps
        self.records: list[dict[str, Any]] = []
        self.queued: list[str] = []
        self.deliveries: list[dict[str, Any]] = []
        self.labels: list[dict[str, Any]] = []
        self.flashes: dict[str, dict[str, Any]] = {}
        self.lookups: list[str] = []
        self.scans: list[dict[str, Any]] = []
        self.threads: set[str] = set()
        self.started = False
        self.hold_lookups = threading.Event()
        self._subscribers: list[Callable[..., Any]] = []

    # -- AgentLike -----------------------------------------------------------------

    async def start(self) -> None:
        self._seen()
        self.started = True

    async def stop(self) -> None:
        self._seen()
        self.started = False

    async def login(self, username: str, password: str) -> dict[str, Any]:
        self._seen()
        await asyncio.sleep(0)
        if not self.online and username not in self.cached_credentials:
            raise FakeAgentError(
                "OFFLINE_LOGIN_UNAVAILABLE", f"{username} has no recent login at this station and the server is away"
            )
        if self.workers.get(username) != password:
            raise FakeAgentError("INVALID_CREDENTIALS", "wrong username or password")
        self.cached_credentials.add(username)
        self.worker = username
        answer: dict[str, Any] = {"username": username, "role": "worker", "offline": not self.online}
        if username in self.languages:
            answer["language"] = self.languages[username]
        self._emit_status()
        return answer

    async def lookup(self, code: str) -> dict[str, Any]:
        self._seen()
        self.lookups.append(code)
        await asyncio.sleep(0)
        while self.hold_lookups.is_set():  # a test holds the answer back to look at the screen meanwhile
            await asyncio.sleep(0.005)
        if not self.online:
            if code not in self.cached_codes or code not in self.units:
                return {"kind": "unknown", "code": code, "source": "cache", "serial_number": code}
            return {**self.units[code], "source": "cache"}
        if code not in self.units:
            return {"kind": "unknown", "code": code, "source": "server"}
        return {**self.units[code], "source": "server"}

    def defect_codes(self, process_code: str | None) -> list[dict[str, Any]]:
        self._seen()
        return list(self.defects.get(process_code or "", self.defects.get("*", [])))

    async def firmware_images(self, product_code: str | None) -> list[dict[str, Any]]:
        self._seen()
        return [image for image in self.images if image.get("product") == product_code]

    def record_result(
        self,
        *,
        lot_number: str,
        process_id: str,
        worker_id: str,
        result: str,
        serial_number: str | None = None,
        defect_code: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> str:
        self._seen()
        if self.outbox_full:
            raise OutboxFullError("database or disk is full")
        key = uuid.uuid4().hex
        self.records.append(
            {
                "idempotency_key": key,
                "lot_number": lot_number,
                "process_id": process_id,
                "worker_id": worker_id,
                "result": result,
                "serial_number": serial_number,
                "defect_code": defect_code,
                "data": data,
            }
        )
        self.queued.append(key)
        # as the real agent: "queued" at once, before the key is returned
        self.emit("delivery", {"key": key, "state": "queued", "code": None, "message": None})
        self._emit_status()
        if self.online:
            # The sender delivers after the commit, as the real one does from its own task.
            asyncio.get_running_loop().call_soon(self.deliver_queued)
        return key

    async def unit_history(self, serial_number: str) -> dict[str, Any]:
        self._seen()
        if not self.online:
            raise OfflineError("server unreachable")
        events = demo_history() if serial_number == "SN-0001" else demo_history()[:1]
        return {"serial_number": serial_number, "events": events}

    async def print_label(self, *, template: str, fields: dict[str, Any]) -> dict[str, Any]:
        self._seen()
        self.labels.append({"template": template, "fields": fields})
        status = "printed" if self.online else "printed locally (queued)"
        return {"status": status, "job_id": f"P{len(self.labels)}"}

    async def start_flash(self, *, serial_number: str, image_id: str) -> str:
        self._seen()
        if not self.online:
            raise OfflineError("flashing needs the server")
        job_id = f"F{len(self.flashes) + 1}"
        self.flashes[job_id] = {"serial_number": serial_number, "image_id": image_id, "polls": 0}
        return job_id

    async def flash_status(self, job_id: str) -> dict[str, Any]:
        self._seen()
        job = self.flashes[job_id]
        job["polls"] += 1
        progress = min(100, job["polls"] * 100 // self.flash_steps)
        status = "done" if progress >= 100 else "running"
        return {"job_id": job_id, "status": status, "progress": progress}

    def submit_scan(self, code: str, *, source: str = "keyboard") -> dict[str, Any]:
        self._seen()
        scan = {"code": code, "source": source}
        self.scans.append(scan)
        self.emit("scan", scan)
        return scan

    def logout(self) -> None:
        self.worker = None

    def action_panels(self) -> list[dict[str, Any]]:
        """The installed station extensions' panels for ``panel_devices``, as the agent lists them."""
        from mes_station.extensions import installed

        extensions = installed()
        return [
            {"device": code, "role": kind, "panel": panel, "plugin": extensions.plugin_of(panel.id)}
            for code, kind in sorted(self.panel_devices.items())
            for panel in extensions.panels_for(kind)
        ]

    async def run_action(self, panel_id: str, button_id: str, *, device: str, values: dict[str, Any]) -> Any:
        self._seen()
        self.actions.append({"panel": panel_id, "button": button_id, "device": device, "values": values})
        return {"status": "done"}

    def subscribe(self, callback: Callable[..., Any]) -> None:
        self._subscribers.append(callback)

    def status(self) -> dict[str, Any]:
        self._seen()
        return {
            "online": self.online,
            "worker": self.worker,
            "outbox_depth": self.outbox_depth(),
            "oldest_queued_age_seconds": self.oldest_queued_age(),
            "quarantined": self.quarantined,
            "cache": {"synced_at": "2026-11-30T06:00:00+00:00", "lots": 1, "units": len(self.cached_codes)},
        }

    def outbox_depth(self) -> int:
        self._seen()
        return len(self.queued)

    def oldest_queued_age(self) -> float | None:
        return 42.0 if self.queued else None

    # -- test controls ----------------------------------------------------------------

    def set_online(self, online: bool) -> None:
        """Flip connectivity and tell subscribers; coming back online delivers the queue."""
        self.online = online
        self._emit_status()
        if online:
            self.deliver_queued()

    def deliver_queued(self) -> None:
        """Send every queued record, oldest first, as the sender does once the server answers."""
        while self.online and self.queued:
            key = self.queued.pop(0)
            if self.reject_next is not None:
                code, message = self.reject_next
                self.reject_next = None
                delivery = {"key": key, "state": "rejected", "code": code, "message": message}
            else:
                delivery = {"key": key, "state": "delivered", "code": None, "message": None}
            self.deliveries.append(delivery)
            self.emit("delivery", delivery)
        self._emit_status()

    def quarantine(self, name: str, reason: str) -> None:
        """A completion file the server refused: moved to quarantine, announced, counted."""
        self.quarantined += 1
        self.emit("completion", {"path": name, "action": "quarantined", "moved_to": name, "reason": reason})
        self._emit_status()

    def emit(self, kind: str, payload: Any) -> None:
        for callback in list(self._subscribers):
            callback(kind, payload)

    def _emit_status(self) -> None:
        self.emit("status", self.status())

    def _seen(self) -> None:
        self.threads.add(threading.current_thread().name)


def demo_units() -> dict[str, dict[str, Any]]:
    """Lookup answers for one LOT with two units, shaped like ``POST /scans/lookup``'s."""
    lot = {"lot_number": "LOT-2026-0042", "product": "NH-HUB-200", "status": "in_progress"}
    next_process = {"id": "TEST-30", "name": "Functional test", "sequence": 30}

    def unit(serial_number: str) -> dict[str, Any]:
        return {
            "kind": "unit",
            "unit": {"serial_number": serial_number, "status": "in_progress", "lot_number": lot["lot_number"]},
            "lot": lot,
            "next_process": next_process,
            "completed_processes": ["SMT-10", "FW-20"],
            "warnings": [],
        }

    return {
        "SN-0001": unit("SN-0001"),
        "SN-0002": unit("SN-0002"),
        "LOT-2026-0042": {"kind": "lot", "unit": None, "lot": lot, "next_process": next_process, "warnings": []},
    }


def demo_history() -> list[dict[str, Any]]:
    """History events shaped like ``GET /units/{serial_number}/history``'s ``events`` (oldest first)."""
    return [
        {
            "at": "2026-11-26T05:01:12+00:00",
            "type": "process_record",
            "data": {"process_id": "SMT-10", "result": "pass", "worker_id": "bob", "station_code": "ST-01"},
        },
        {
            "at": "2026-11-26T05:20:44+00:00",
            "type": "device_action",
            "data": {"action": "flash", "outcome": "success", "actor": "station:ST-02", "station_id": 2},
        },
    ]


def demo_defect_codes() -> dict[str, list[dict[str, Any]]]:
    """Defect lists per process code (``"*"``: any other process)."""
    return {
        "TEST-30": [
            {"code": "NO_BOOT", "name": "Does not boot"},
            {"code": "RF_LOW", "name": "RF power low"},
            {"code": "LED_DEAD", "name": "LED dead"},
            {"code": "SCRATCH", "name": "Scratch"},
            {"code": "OTHER", "name": "Other"},
        ],
        "*": [{"code": "SOLDER", "name": "Solder"}, {"code": "OTHER", "name": "Other"}],
    }


def demo_firmware_images() -> list[dict[str, Any]]:
    """Firmware images of two products; the window offers only those of the unit's product."""
    return [
        {"id": "fw-1.4.2", "name": "hub-main", "version": "1.4.2", "device": "UPL-01", "product": "NH-HUB-200"},
        {"id": "fw-1.5.0", "name": "hub-main", "version": "1.5.0", "device": "UPL-01", "product": "NH-HUB-200"},
        {"id": "fw-9.0.0", "name": "sensor", "version": "9.0.0", "device": "UPL-02", "product": "NH-SENSOR-1"},
    ]


class ManualTimers:
    """A scheduler for the window's timed hides (result banner), moved by hand in tests.

    ``schedule(delay_ms, callback)`` returns a handle with ``cancel()``; ``advance(ms)`` runs
    what has come due. Pass it as ``StationWindow(..., schedule=timers.schedule)``.
    """

    class Handle:
        def __init__(self, due: float, callback: Callable[[], Any]) -> None:
            self.due = due
            self.callback = callback
            self.cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    def __init__(self) -> None:
        self.now = 0.0
        self.handles: list[ManualTimers.Handle] = []

    def schedule(self, delay_ms: int, callback: Callable[[], Any]) -> ManualTimers.Handle:
        handle = ManualTimers.Handle(self.now + delay_ms, callback)
        self.handles.append(handle)
        return handle

    def pending(self) -> list[ManualTimers.Handle]:
        return [h for h in self.handles if not h.cancelled]

    def advance(self, ms: float) -> None:
        self.now += ms
        due = [h for h in self.pending() if h.due <= self.now]
        for handle in sorted(due, key=lambda h: h.due):
            handle.cancelled = True
            handle.callback()


def offscreen_app() -> Any:
    """The process's ``QApplication`` on the offscreen platform (created once)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication(["mes-station-test"])


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, message: str = "") -> Any:
    """Process Qt events until ``predicate()`` is truthy; fail after ``timeout`` seconds.

    The generous default holds on a loaded machine; a passing wait returns as soon as it can.
    """
    from PySide6.QtTest import QTest

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")
        QTest.qWait(10)
