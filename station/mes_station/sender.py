"""The outbox sender: drains events in sequence order, in batches when backlogged, with backoff."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mes_station.client import ServerClient
from mes_station.errors import OfflineError, ServerError
from mes_station.outbox import PROCESS_RECORD, Outbox, OutboxEvent

log = logging.getLogger(__name__)

#: error codes a batch item may carry that mean "try again later", not "this event is wrong"
RETRYABLE_ITEM_CODES = {
    "NOT_RECORDED",  # the kernel's "record was not stored; retry"
    "SERVICE_UNAVAILABLE",
    "INTERNAL_ERROR",
    "RATE_LIMITED",
    "TOO_MANY_REQUESTS",
    "TIMEOUT",
}


@dataclass(frozen=True)
class Settled:
    """The server's verdict on one event: ``delivered`` or ``rejected`` (with its code and message)."""

    key: str
    state: str
    code: str | None = None
    message: str | None = None


class TransientFailure(Exception):
    """A send failed in a way that a later attempt may fix; the sender backs off."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


def backoff_delay(failures: int, initial: float, cap: float) -> float:
    """2, 4, 8 s … for ``initial=2``: ``initial * 2**(failures-1)``, never above ``cap``."""
    if failures <= 0:
        return 0.0
    return min(cap, initial * (2 ** min(failures - 1, 30)))


class Sender:
    """Sends the outbox to the server. One instance per agent, running in the agent's event loop."""

    def __init__(
        self,
        outbox: Outbox,
        client: ServerClient,
        *,
        batch_size: int = 200,
        backoff_initial: float = 2.0,
        backoff_max: float = 60.0,
        on_contact: Callable[[bool, str | None], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
        on_settled: Callable[[list[Settled]], None] | None = None,
        idle_poll: float = 5.0,
    ):
        self.outbox = outbox
        self.client = client
        self.batch_size = batch_size
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.on_contact = on_contact or (lambda ok, reason: None)
        self.on_progress = on_progress or (lambda handled: None)
        self.on_settled = on_settled or (lambda settled: None)
        self.idle_poll = idle_poll
        self.failures = 0
        self.last_error: str | None = None
        self.batch_supported = True
        self.delivered_total = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._work = asyncio.Event()
        self._reset = asyncio.Event()
        self._stopped = False

    # -- waking from other threads (the UI thread, the folder watcher) --------------------------

    def nudge(self, *, reset_backoff: bool = False) -> None:
        """New work is queued (or, with ``reset_backoff``, the server is back): send now."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if _in_loop_thread(loop):
            self._set(reset_backoff)
        else:
            loop.call_soon_threadsafe(self._set, reset_backoff)

    def _set(self, reset_backoff: bool) -> None:
        self._work.set()
        if reset_backoff:
            self._reset.set()

    def stop(self) -> None:
        self._stopped = True
        self.nudge(reset_backoff=True)

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Drain until stopped; never raises for a server or network failure."""
        self._loop = asyncio.get_running_loop()
        self._stopped = False
        while not self._stopped:
            try:
                handled = await self.send_next()
            except TransientFailure as exc:
                self.failures += 1
                self.last_error = str(exc)
                delay = backoff_delay(self.failures, self.backoff_initial, self.backoff_max)
                if exc.retry_after:
                    delay = min(self.backoff_max, max(delay, exc.retry_after))
                log.info("outbox send failed (%s); retrying in %.1f s", exc, delay)
                await self._wait(self._reset, delay)
                continue
            except Exception:  # a bug must not stop the station from sending forever
                log.exception("outbox sender error")
                self.failures += 1
                await self._wait(self._reset, backoff_delay(self.failures, self.backoff_initial, self.backoff_max))
                continue
            self.failures = 0
            self.last_error = None
            if handled:
                self.on_progress(handled)
            else:
                await self._wait(self._work, self.idle_poll)

    async def _wait(self, event: asyncio.Event, timeout: float) -> None:
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        self._work.clear()
        self._reset.clear()

    async def drain(self, *, max_passes: int = 1_000_000) -> int:
        """Send until the queue is empty (used by ``outbox`` tooling and the benchmark); raises on failure."""
        total = 0
        for _ in range(max_passes):
            handled = await self.send_next()
            if handled == 0:
                break
            total += handled
        return total

    async def send_next(self) -> int:
        """One request's worth of the queue; returns how many events left the queue."""
        events = self.outbox.pending(self.batch_size)
        if not events:
            return 0
        if any(_unresolved(ev) for ev in events):
            resolved = []
            for ev in events:
                if _unresolved(ev):
                    ev = await self._resolve_lot(ev)
                    if ev is None:  # the server does not know the unit: rejected, its turn is over
                        break
                resolved.append(ev)
            if not resolved:
                return 1
            events = resolved
        run = []
        for ev in events:
            if ev.kind != PROCESS_RECORD:
                break
            run.append(ev)
        if len(run) > 1 and self.batch_supported:
            handled = await self._send_batch(run)
            if handled is not None:
                return handled
            events = self.outbox.pending(1)  # an attachment refusal may have rejected the first one
            if not events:
                return 1
        return await self._send_single(events[0])

    async def _post(self, path: str, body: Any) -> Any:
        try:
            response = await self.client.request("POST", path, json=body)
        except OfflineError as exc:
            self.on_contact(False, str(exc))
            raise
        except ServerError as exc:
            self.on_contact(exc.server_reachable, str(exc))
            raise
        self.on_contact(True, None)
        return response.json() if response.content else None

    async def _resolve_lot(self, ev: OutboxEvent) -> OutboxEvent | None:
        """A record made offline against a unit the station's cache did not know carries only the
        serial number: ask the server for the unit's LOT (``GET /units/{serial}/history``), write it
        into the queued event, and send that. None when the server does not know the unit (the
        event is rejected ``UNIT_NOT_FOUND``); TransientFailure when it cannot answer now."""
        serial = str(ev.body.get("serial_number") or "")
        try:
            answer = await self.client.json("GET", f"/units/{quote(serial, safe='')}/history?limit=1")
        except OfflineError as exc:
            self.on_contact(False, str(exc))
            self.outbox.mark_failed_attempt([ev.idempotency_key], str(exc))
            raise TransientFailure(str(exc)) from exc
        except ServerError as exc:
            self.on_contact(exc.server_reachable, str(exc))
            if exc.retryable:
                self.outbox.mark_failed_attempt([ev.idempotency_key], str(exc))
                raise TransientFailure(str(exc), exc.retry_after) from exc
            message = f"unit {serial} recorded offline is not known to the server ({exc.code}: {exc.message})"
            self._reject(ev.idempotency_key, "UNIT_NOT_FOUND", message, exc.status)
            return None
        self.on_contact(True, None)
        lot_number = (answer or {}).get("lot_number") if isinstance(answer, dict) else None
        if not lot_number:
            self._reject(ev.idempotency_key, "UNIT_NOT_FOUND", f"the server names no LOT for unit {serial}")
            return None
        body = {**ev.body, "lot_number": lot_number}
        body.pop("idempotency_key", None)
        self.outbox.update_body(ev.idempotency_key, body)
        return self.outbox.get(ev.idempotency_key) or ev

    def _reject(self, key: str, code: str, message: str, status: int | None = None) -> None:
        self.outbox.mark_rejected(key, f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.on_settled([Settled(key, "rejected", code, message)])

    def _delivered(self, acks: list[tuple[str, dict[str, Any] | None]]) -> None:
        self.outbox.mark_delivered(acks)
        self.delivered_total += len(acks)
        if acks:
            self.on_settled([Settled(key, "delivered") for key, _ in acks])

    async def _upload_attachments(self, ev: OutboxEvent) -> bool:
        """Upload what event ``ev`` still needs on the server; False when the server refused one
        (the event is then rejected with that reason). Raises TransientFailure to retry later."""
        for item in self.outbox.pending_attachments(ev.idempotency_key):
            params = {
                "record_key": ev.idempotency_key,
                "name": item["name"],
                "sha256": item["sha256"],
                "media_type": item["media_type"],
            }
            try:
                path = Path(item["path"])
                if not path.is_file():
                    self._reject(ev.idempotency_key, "ATTACHMENT_MISSING", f"{item['name']} is gone from {path}")
                    return False
                await self.client.upload("/completions/attachments", path, params=params)
            except OfflineError as exc:
                self.on_contact(False, str(exc))
                self.outbox.mark_failed_attempt([ev.idempotency_key], str(exc))
                raise TransientFailure(str(exc)) from exc
            except ServerError as exc:
                self.on_contact(exc.server_reachable, str(exc))
                if exc.retryable:
                    self.outbox.mark_failed_attempt([ev.idempotency_key], str(exc))
                    raise TransientFailure(str(exc), exc.retry_after) from exc
                log.warning("server refused attachment %s of %s: %s", item["name"], ev.idempotency_key, exc)
                self._reject(ev.idempotency_key, exc.code, f"attachment {item['name']}: {exc.message}", exc.status)
                return False
            self.on_contact(True, None)
            self.outbox.mark_attachment_uploaded(ev.idempotency_key, item["name"])
            if item["path"] not in self.outbox.attachment_paths_in_use():
                try:  # the server has the bytes; the archive keeps the equipment's original
                    path.unlink(missing_ok=True)
                except OSError as exc:
                    log.warning("could not remove the sent attachment %s: %s", path, exc)
        return True

    async def _send_single(self, ev: OutboxEvent) -> int:
        path = "/process-records" if ev.kind == PROCESS_RECORD else "/stations/events"
        if not await self._upload_attachments(ev):
            return 1
        try:
            answer = await self._post(path, _with_seq(ev))
        except OfflineError as exc:
            self.outbox.mark_failed_attempt([ev.idempotency_key], str(exc))
            raise TransientFailure(str(exc)) from exc
        except ServerError as exc:
            if exc.retryable:
                self.outbox.mark_failed_attempt([ev.idempotency_key], str(exc))
                raise TransientFailure(str(exc), exc.retry_after) from exc
            log.warning("server rejected event %s: %s", ev.idempotency_key, exc)
            self._reject(ev.idempotency_key, exc.code, exc.message, exc.status)
            return 1
        self._delivered([(ev.idempotency_key, answer)])
        return 1

    async def _send_batch(self, run: list[OutboxEvent]) -> int | None:
        """Send a run of process records in one request; None means "send them one by one"."""
        refused = 0
        ready = []
        needing = self.outbox.keys_with_pending_attachments([ev.idempotency_key for ev in run])
        for ev in run:
            if ev.idempotency_key not in needing or await self._upload_attachments(ev):
                ready.append(ev)
            else:
                refused += 1
        if not ready:
            return refused
        run = ready
        keys = [ev.idempotency_key for ev in run]
        try:
            answer = await self._post("/process-records/batch", {"records": [_with_seq(ev) for ev in run]})
        except OfflineError as exc:
            self.outbox.mark_failed_attempt(keys[:1], str(exc))
            raise TransientFailure(str(exc)) from exc
        except ServerError as exc:
            if exc.retryable:
                self.outbox.mark_failed_attempt(keys[:1], str(exc))
                raise TransientFailure(str(exc), exc.retry_after) from exc
            if exc.status in (404, 405):
                log.warning("server has no batch endpoint (%s); sending one by one", exc)
                self.batch_supported = False
            # 422 on the whole batch (or no batch route): each record gets its own verdict singly.
            return None
        results = {r.get("idempotency_key"): r for r in (answer or {}).get("results", [])}
        acks: list[tuple[str, dict[str, Any] | None]] = []
        transient: str | None = None
        handled = 0
        for ev in run:
            item = results.get(ev.idempotency_key)
            if item is None:
                transient = transient or f"batch answer lacks {ev.idempotency_key}"
                continue
            status = item.get("status")
            if status in ("created", "duplicate"):
                acks.append((ev.idempotency_key, item.get("record")))
                continue
            error = item.get("error") or {}
            code, message = str(error.get("code", "ERROR")), str(error.get("message", ""))
            if code in RETRYABLE_ITEM_CODES:
                transient = transient or f"{code}: {message}"
                self.outbox.mark_failed_attempt([ev.idempotency_key], f"{code}: {message}")
                continue
            self._reject(ev.idempotency_key, code, message)
            handled += 1
        self._delivered(acks)
        handled += len(acks) + refused
        if transient and handled == 0:
            raise TransientFailure(transient)
        return handled


def _unresolved(ev: OutboxEvent) -> bool:
    """A process record without its LOT (made offline for a unit the cache did not know)."""
    return ev.kind == PROCESS_RECORD and not ev.body.get("lot_number") and bool(ev.body.get("serial_number"))


def _with_seq(ev: OutboxEvent) -> dict[str, Any]:
    """The event as sent: its body and its outbox sequence number, which orders a station's events
    of one moment in the server's histories (a replayed batch keeps the order it was queued in)."""
    return {**ev.body, "station_seq": ev.seq}


def _in_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
