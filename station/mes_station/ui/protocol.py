"""The slice of the station agent that the desktop window uses (``AgentLike``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

AgentEvent = tuple[str, Any]
"""An event from ``agent.subscribe``. Kinds the window reads:

* ``("status", {...})`` — any keys of ``AgentLike.status()``;
* ``("scan", scan)`` — a code a scanner read (``code``, ``source``);
* ``("delivery", {"key", "state", "code", "message"})`` — what became of a recorded result:
  ``state`` is ``"queued"`` (waiting for the server), ``"delivered"`` or ``"rejected"`` (the
  server refused it; ``code``/``message`` say why);
* ``("completion", {...})`` — a completion file was read (``outcome`` ``quarantined`` with a
  ``reason`` when it was refused).
"""


@runtime_checkable
class AgentLike(Protocol):
    """What the window needs from ``mes_station.agent.Agent`` — and all a fake must provide.

    The window calls every method on the agent's own event-loop thread (see
    ``mes_station.ui.bridge``), so an implementation needs no locking of its own. Errors carry
    a stable ``code`` attribute (``mes_station.errors``); the window shows it beside plain words.
    """

    online: bool
    worker: Any

    async def start(self) -> None:
        """Start the agent (outbox sender, heartbeat, drivers)."""

    async def stop(self) -> None:
        """Stop the agent; queued events stay in the outbox."""

    async def login(self, username: str, password: str) -> Any:
        """Log a worker in; afterwards ``worker`` names them.

        Online: checked by the server. Offline: checked against the slow salted credential the
        station cached at the worker's last login there (within ``offline_login_days``); the
        answer then has ``"offline": True``. A ``"language"`` in the answer is the worker's own.
        Raises an error with ``code`` ``INVALID_CREDENTIALS``, ``OFFLINE_LOGIN_UNAVAILABLE`` or
        ``OFFLINE``.
        """

    async def lookup(self, code: str) -> dict[str, Any]:
        """Resolve a scanned serial or LOT number to its unit, LOT, next process and history.

        ``"source"`` is ``"server"``, or ``"cache"`` while the server is unreachable; a code
        the cache does not know answers ``{"kind": "unknown", "code", "source": "cache",
        "serial_number": code}`` — the worker may still record against it. History items carry
        ``station_code`` and are newest first.
        """

    async def unit_history(self, serial_number: str) -> Any:
        """The unit's history (``{"events": [...]}`` or a list), when the lookup answer has none."""

    def defect_codes(self, process_code: str | None) -> list[dict[str, Any]]:
        """The defect codes a FAIL at ``process_code`` may carry: ``[{"code", "name"}]``.

        From the server's defect list per process, cached at the station; falls back to the
        station's ``[ui] defect_codes``.
        """

    async def firmware_images(self, product_code: str | None) -> list[dict[str, Any]]:
        """Firmware images valid for the product: ``[{"id", "name", "version", "device"}]`` (server or cache)."""

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
        """Commit a pass/fail to the outbox and return its idempotency key (``delivery`` events follow)."""

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
        """Call ``callback(kind, payload)`` for every event (see ``AgentEvent``)."""

    def status(self) -> dict[str, Any]:
        """The agent's state: ``online``, ``outbox_depth``, ``oldest_queued_age_seconds``,
        ``quarantined`` (completion files in quarantine), ``cache`` (``{"synced_at", "lots", "units"}``)."""

    def outbox_depth(self) -> int:
        """Number of events waiting in the outbox."""

    def oldest_queued_age(self) -> float | None:
        """Age in seconds of the oldest queued event, or None when the outbox is empty."""
