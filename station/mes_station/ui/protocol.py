"""The slice of the station agent that the desktop window uses (``AgentLike``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

AgentEvent = tuple[str, Any]
"""An event from ``agent.subscribe``: ``("status", {...})`` or ``("scan", scan)``."""


@runtime_checkable
class AgentLike(Protocol):
    """What the window needs from ``mes_station.agent.Agent`` — and all a fake must provide.

    The window calls every method on the agent's own event-loop thread (see
    ``mes_station.ui.bridge``), so an implementation needs no locking of its own.
    """

    online: bool
    worker: Any

    async def start(self) -> None:
        """Start the agent (outbox sender, heartbeat, drivers)."""

    async def stop(self) -> None:
        """Stop the agent; queued events stay in the outbox."""

    async def login(self, username: str, password: str) -> Any:
        """Log a worker in; afterwards ``worker`` names them. Raises on bad credentials."""

    async def lookup(self, code: str) -> dict[str, Any]:
        """Resolve a scanned serial or LOT number to its unit, LOT, next process and history."""

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
        """Commit a pass/fail to the outbox and return its idempotency key."""

    async def print_label(self, *, template: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Print a label (through the server, or locally when offline)."""

    async def start_flash(self, *, serial_number: str, image_id: str) -> str:
        """Start flashing a firmware image onto a unit; return the job id."""

    async def flash_status(self, job_id: str) -> dict[str, Any]:
        """Return a flash job's state (``status``, ``progress`` 0–100, ``error``)."""

    def submit_scan(self, code: str, *, source: str = "keyboard") -> Any:
        """Record a code typed into the window as a scan event (outbox) and announce it."""

    def logout(self) -> None:
        """Forget the logged-in worker."""

    def subscribe(self, callback: Callable[[str, Any], Any]) -> Any:
        """Call ``callback(kind, payload)`` for every status change and every scan."""

    def outbox_depth(self) -> int:
        """Number of events waiting in the outbox."""

    def oldest_queued_age(self) -> float | None:
        """Age in seconds of the oldest queued event, or None when the outbox is empty."""
