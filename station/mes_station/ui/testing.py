"""Test and demo helpers for the window: a fake agent and Qt waiting helpers.

``FakeAgent`` implements ``AgentLike`` in memory, for screenshots and for tests that need an
agent state the real one cannot be put in cheaply. Tests of the real wiring run the window
against ``mes_station.agent.Agent``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from mes_station.errors import OfflineError, OutboxFullError


class FakeAgent:
    """An in-memory ``AgentLike``: a few units, a worker list, a queue that never drains."""

    def __init__(
        self,
        *,
        units: dict[str, dict[str, Any]] | None = None,
        workers: dict[str, str] | None = None,
        flash_steps: int = 4,
    ) -> None:
        self.online = True
        self.worker: dict[str, Any] | None = None
        self.units = units if units is not None else demo_units()
        self.workers = workers if workers is not None else {"alice": "secret"}
        self.outbox_full = False
        self.flash_steps = flash_steps
        self.records: list[dict[str, Any]] = []
        self.labels: list[dict[str, Any]] = []
        self.flashes: dict[str, dict[str, Any]] = {}
        self.lookups: list[str] = []
        self.scans: list[dict[str, Any]] = []
        self.threads: set[str] = set()
        self.started = False
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
        if not self.online:
            raise OfflineError("server unreachable")
        if self.workers.get(username) != password:
            raise PermissionError("wrong username or password")
        self.worker = {"username": username, "role": "worker"}
        return self.worker

    async def lookup(self, code: str) -> dict[str, Any]:
        self._seen()
        self.lookups.append(code)
        await asyncio.sleep(0)
        if not self.online:
            raise OfflineError(f"cannot look up {code}: server unreachable")
        if code not in self.units:
            return {"kind": "unknown", "code": code}
        return self.units[code]

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
        self._emit_status()
        return key

    async def unit_history(self, serial_number: str) -> dict[str, Any]:
        self._seen()
        if not self.online:
            raise OfflineError("server unreachable")
        events = demo_history() if serial_number == "SN-0001" else demo_history()[:1]
        return {"serial_number": serial_number, "events": events}

    async def lot_history(self, lot_number: str) -> dict[str, Any]:
        self._seen()
        return {"lot_number": lot_number, "events": []}

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

    def subscribe(self, callback: Callable[..., Any]) -> None:
        self._subscribers.append(callback)

    def outbox_depth(self) -> int:
        self._seen()
        return len(self.records)

    def oldest_queued_age(self) -> float | None:
        return 42.0 if self.records else None

    # -- test controls ----------------------------------------------------------------

    def set_online(self, online: bool) -> None:
        """Flip connectivity and tell subscribers, as the real agent's sender does."""
        self.online = online
        self._emit_status()

    def emit(self, kind: str, payload: Any) -> None:
        for callback in list(self._subscribers):
            callback(kind, payload)

    def _emit_status(self) -> None:
        self.emit(
            "status",
            {
                "online": self.online,
                "outbox_depth": len(self.records),
                "oldest_queued_age": self.oldest_queued_age(),
            },
        )

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
    """History events shaped like ``GET /units/{serial_number}/history``'s ``events``."""
    return [
        {
            "at": "2026-11-26T05:01:12+00:00",
            "type": "process_record",
            "data": {"process_id": "SMT-10", "result": "pass", "worker_id": "bob", "station_id": 1},
        },
        {
            "at": "2026-11-26T05:20:44+00:00",
            "type": "device_action",
            "data": {"action": "flash", "outcome": "success", "actor": "station:ST-02", "station_id": 2},
        },
    ]


def offscreen_app() -> Any:
    """The process's ``QApplication`` on the offscreen platform (created once)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication(["mes-station-test"])


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, message: str = "") -> Any:
    """Process Qt events until ``predicate()`` is truthy; fail after ``timeout`` seconds."""
    from PySide6.QtTest import QTest

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message or predicate}")
        QTest.qWait(10)
