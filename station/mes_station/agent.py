"""The station agent: the one object the desktop window and the CLI drive."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mes_kernel.contracts import check_identifier
from mes_station import __version__
from mes_station.cache import StationCache
from mes_station.client import ServerClient
from mes_station.completion import AttachmentFile, Completion
from mes_station.config import StationConfig, load_config
from mes_station.devices import DeviceSet
from mes_station.errors import (
    DeviceError,
    LoginError,
    OfflineError,
    ServerError,
    TemplateNotCachedError,
)
from mes_station.extensions import ActionError, build_request, installed
from mes_station.heartbeat import clock_offset, heartbeat_body
from mes_station.instance import InstanceLock
from mes_station.labels import TemplateError, local_template, render, sync_templates
from mes_station.offline import lookup_from_cache
from mes_station.outbox import PROCESS_RECORD, STATION_EVENT, Outbox
from mes_station.provisioning import (
    CorruptCacheError,
    device_configs,
    driver_problems,
    read_cache,
    set_aside,
    write_cache,
)
from mes_station.scans import Scan, scans_of
from mes_station.sender import Sender, Settled
from mes_station.watcher import CompletionWatcher, Outcome, quarantine_file, quarantined_count

log = logging.getLogger(__name__)

Callback = Callable[[str, Any], Any | Awaitable[Any]]

#: how many heartbeats between two label-template syncs (and one at start)
TEMPLATE_SYNC_EVERY = 10


class Agent:
    """Offline-first station agent: devices, outbox + sender, completion watcher, heartbeat.

    ``start()``/``stop()`` run it in the current event loop. ``record_result`` is synchronous and
    thread-safe (the UI may call it from its own thread); subscribers are called in the agent's loop.
    """

    def __init__(self, config: StationConfig):
        self.config = config
        config.work_dir.mkdir(parents=True, exist_ok=True)
        self.outbox = Outbox(config.outbox_path)
        self.cache = StationCache(config.cache_path)
        self._quarantine_lock = threading.Lock()
        self.client = ServerClient(config.api_url, config.station_token, timeout=config.request_timeout)
        self.devices = DeviceSet(config.devices)
        self.extensions = installed()
        #: the station's part of the line, as last fetched from the server (or read from the cache)
        self.provisioned: dict[str, Any] | None = None
        self.provisioning_error: str | None = None
        self._scanner_task: asyncio.Task[Any] | None = None
        self._config_lock = asyncio.Lock()
        self.sender = Sender(
            self.outbox,
            self.client,
            batch_size=config.batch_size,
            backoff_initial=config.backoff_initial,
            backoff_max=config.backoff_max,
            on_contact=self._contact,
            on_progress=lambda handled: self._emit_status(),
            on_settled=self._settled,
        )
        self.watcher = CompletionWatcher(
            watch_folder=config.watch_folder,
            archive_dir=config.archive_dir,
            quarantine_dir=config.quarantine_dir,
            on_completion=self._enqueue_completion,
            settle_seconds=config.settle_seconds,
            malformed_after_seconds=config.malformed_after_seconds,
            rescan_seconds=config.rescan_seconds,
            retention_days=config.completion_retention_days,
            on_outcome=self._watcher_outcome,
        )
        self.worker: str | None = None
        self.last_heartbeat: dict[str, Any] | None = None
        self.last_error: str | None = None
        self._online = False
        self._subscribers: list[Callback] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._heartbeats = 0
        #: device actions sent without an answer back: action → its idempotency key, reused by a retry
        self._unanswered: dict[tuple, str] = {}
        self._closed = False
        self._lock = InstanceLock(config.work_dir / "agent.lock")
        self._refresh_token: str | None = None
        self._cache_wanted = asyncio.Event()
        #: (username, password) of a worker logged in offline, kept in this process's memory only,
        #: until the server answers again and turns it into a real session (then forgotten)
        self._offline_session: tuple[str, str] | None = None
        self._resume_task: asyncio.Task[Any] | None = None
        #: why the last offline session could not become a real one (the window asks to log in again)
        self.session_error: dict[str, str] | None = None

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None) -> Agent:
        """An agent for the station described by ``station.toml`` at ``path``."""
        return cls(load_config(path))

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load drivers and start sending, watching and heart-beating in the running loop."""
        self._lock.acquire()
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._load_cached_config()
        try:
            await self.refresh_config(apply=False)
        except (OfflineError, ServerError) as exc:
            log.info(
                "station configuration not fetched (%s); running on %s",
                exc,
                "the cached one" if self.provisioned else "station.toml alone",
            )
        await self._apply_devices()
        self.outbox.prune_delivered(self.config.delivered_retention_days)
        self._tasks = [
            asyncio.create_task(self.sender.run(), name="outbox-sender"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self.watcher.run(self._stop), name="completion-watcher"),
            asyncio.create_task(self._cache_loop(), name="offline-cache"),
        ]
        self._emit_status()

    async def stop(self) -> None:
        """Stop every loop, close drivers and the HTTP client; the outbox keeps what was not sent."""
        if self._closed:
            return
        self._closed = True
        if self._stop is not None:
            self._stop.set()
        self.sender.stop()
        tasks = [*self._tasks, *(t for t in (self._scanner_task, self._resume_task) if t is not None)]
        self._offline_session = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks, self._scanner_task, self._resume_task = [], None, None
        self.watcher.stop_observer()
        await self.devices.close()
        await self.client.aclose()
        self.outbox.close()
        self.cache.close()
        self._lock.release()

    async def run_forever(self) -> None:
        """``start()``, then wait until cancelled (Ctrl-C), then ``stop()``."""
        await self.start()
        assert self._stop is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:  # a service manager stops the agent with SIGTERM: finish cleanly
                loop.add_signal_handler(sig, self._stop.set)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
                pass
        try:
            await self._stop.wait()
        finally:
            await self.stop()

    # -- state the window shows -----------------------------------------------------------------

    @property
    def online(self) -> bool:
        """Whether the last exchange with the server succeeded."""
        return self._online

    def outbox_depth(self) -> int:
        return self.outbox.depth()

    def oldest_queued_age(self) -> float | None:
        return self.outbox.oldest_queued_age()

    def status(self) -> dict[str, Any]:
        """Everything ``mes-station status`` and the window's status bar show."""
        counts = self.outbox.counts()
        return {
            "station_code": self.config.station_code,
            "agent_version": __version__,
            "online": self._online,
            "worker": self.worker,
            "worker_offline": self.worker is not None and self._offline_session is not None,
            "session_error": self.session_error,
            "outbox_depth": counts["queued"],
            "outbox_rejected": counts["rejected"],
            "oldest_queued_age_seconds": self.outbox.oldest_queued_age(),
            "server_clock_offset_seconds": self.outbox.clock_offset(),
            "drivers": self.devices.drivers_report(),
            "config_version": self.config_version,
            "driver_problems": self.driver_problems(),
            "provisioning_error": self.provisioning_error,
            "sender_error": self.sender.last_error,
            "watcher_error": self.watcher.last_error,
            "last_error": self.last_error,
            "quarantined": quarantined_count(self.config.quarantine_dir),
            "cache": self.cache.status(),
        }

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback(kind, payload)`` for ``("status", dict)``, ``("scan", Scan)``,
        ``("completion", dict)`` and ``("delivery", {"key", "state": "queued"|"delivered"|"rejected",
        "code", "message"})`` — the last as each record is saved, acknowledged or refused.

        Returns a function that unsubscribes. Callbacks run in the agent's event loop; a Qt window
        must hand them over to its own thread (e.g. with a signal).
        """
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def _emit(self, kind: str, payload: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed() and not _in_loop(loop):
            loop.call_soon_threadsafe(self._emit, kind, payload)
            return
        for callback in list(self._subscribers):
            try:
                answer = callback(kind, payload)
                if inspect.isawaitable(answer):
                    asyncio.ensure_future(answer)
            except Exception:
                log.exception("station subscriber failed on %s", kind)

    def _emit_status(self) -> None:
        if self._subscribers:
            self._emit("status", self.status())

    def _contact(self, ok: bool, reason: str | None) -> None:
        changed = ok != self._online
        self._online = ok
        self.last_error = None if ok else reason
        if changed:
            log.info("station is now %s%s", "online" if ok else "offline", f" ({reason})" if reason else "")
            if ok:  # back from an outage: what changed meanwhile reaches the cache soon
                self._sync_cache_soon()
            self._emit_status()
        if ok and self._offline_session is not None:
            self._resume_session_soon()

    # -- an offline login becomes a real session when the server answers -----------------------

    def _resume_session_soon(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or self._closed:
            return
        if not _in_loop(loop):
            loop.call_soon_threadsafe(self._resume_session_soon)
            return
        if self._resume_task is None or self._resume_task.done():
            self._resume_task = loop.create_task(self._resume_session(), name="resume-session")

    async def _resume_session(self) -> bool:
        """Log the worker of an offline session in at the server (``POST /auth/login`` with the
        password they typed at the offline login, held in memory only until now).

        Accepted: the worker's token is used from now on, the cached credential is refreshed, and
        ``status()["worker_offline"]`` turns False. Refused (the password was changed or the account
        locked while the station was offline): the worker is logged out, the cached credential is
        forgotten, and ``status()["session_error"]`` says why, so the window asks for the password
        once. Unreachable again: nothing changes; the next contact tries again. Returns whether the
        session is now a real one."""
        session = self._offline_session
        if session is None:
            return False
        username, password = session
        try:
            answer = await self.client.json(
                "POST", "/auth/login", json={"username": username, "password": password}, auth=False
            )
        except OfflineError:
            return False
        except ServerError as exc:
            if not exc.server_reachable or exc.status in (429,):
                return False
            if self._offline_session != session:
                return False  # logged out (or another worker in) meanwhile
            self._offline_session = None
            await asyncio.to_thread(self.cache.forget_login, username)
            self.worker = None
            self.client.set_user_token(None)
            self.session_error = {
                "code": "SESSION_NOT_RESUMED" if exc.status != 401 else "INVALID_CREDENTIALS",
                "message": f"The server refused {username}'s offline login ({exc.code}): log in again.",
                "worker": username,
            }
            log.warning("offline session of %s not resumed: %s", username, exc)
            self._emit_status()
            return False
        if self._offline_session != session:
            return False
        answer = answer or {}
        self.client.set_user_token(answer.get("access_token"))
        self._refresh_token = answer.get("refresh_token")
        self._offline_session = None
        self.session_error = None
        log.info("worker %s: the offline session is a server session again", username)
        try:
            role = answer.get("role") or (answer.get("user") or {}).get("role")
            await asyncio.to_thread(self.cache.remember_login, username, password, role=role)
        except Exception as exc:
            log.warning("could not cache the credential of %s: %s", username, exc)
        self._emit_status()
        return True

    # -- provisioning (the station's devices come from the server) -----------------------------

    @property
    def config_version(self) -> int | None:
        """The line configuration version the station runs, None before its first configuration."""
        return self.provisioned.get("config_version") if self.provisioned else None

    def driver_problems(self) -> list[dict[str, Any]]:
        """Drivers the configuration needs that are missing here or of another version than the server's."""
        return driver_problems(self.provisioned) if self.provisioned else []

    def _load_cached_config(self) -> None:
        path = self.config.provisioned_cache
        try:
            cached = read_cache(path)
        except CorruptCacheError as exc:
            moved = set_aside(path)
            self.provisioning_error = (
                f"cached station configuration is corrupt ({exc}); set aside as {moved.name}, fetching a fresh one"
            )
            log.error(self.provisioning_error)
            return
        if cached is not None:
            self._adopt(cached)

    def _adopt(self, config: dict[str, Any]) -> None:
        self.provisioned = config
        code = (config.get("station") or {}).get("code")
        if code and code != self.config.station_code:
            self.config = replace(self.config, station_code=code)

    async def refresh_config(self, *, apply: bool = True) -> dict[str, Any]:
        """Fetch ``GET /stations/me/config``, keep it on disk and (with ``apply``) load, reload or unload
        drivers to match. Raises OfflineError / ServerError when the server cannot answer."""
        async with self._config_lock:
            try:
                config = await self.client.json("GET", "/stations/me/config")
            except OfflineError as exc:
                self._contact(False, str(exc))
                raise
            except ServerError as exc:
                self._contact(exc.server_reachable, str(exc))
                raise
            self._contact(True, None)
            previous = (self.provisioned or {}).get("label_templates")
            self._adopt(config)
            self.provisioning_error = None
            try:
                write_cache(self.config.provisioned_cache, config)
            except OSError as exc:  # a full disk costs the offline start, not the running station
                log.warning("could not cache the station configuration: %s", exc)
            if apply:
                await self._apply_devices()
            if config.get("label_templates") and config.get("label_templates") != previous:
                try:
                    await self.sync_templates()
                except (OfflineError, ServerError) as exc:
                    log.info("label templates not synced: %s", exc)
            log.info(
                "station configuration version %s: %d device(s)",
                config.get("config_version"),
                len(config.get("devices", [])),
            )
            return config

    async def _apply_devices(self) -> None:
        """Load the provisioned devices (with local overrides) plus the ones only ``station.toml`` declares."""
        configs = dict(self.config.devices)
        if self.provisioned:
            configs.update(
                device_configs(self.provisioned, extensions=self.extensions, overrides=self.config.device_overrides)
            )
        scanner_before = self._scanner_driver()
        changes = await self.devices.apply(configs)
        if any(changes.values()):
            log.info("devices changed: %s", {k: v for k, v in changes.items() if v})
        scanner_now = self._scanner_driver()
        if scanner_now is not scanner_before or (self._scanner_task is None and scanner_now is not None):
            await self._restart_scanner_loop()
        self._emit_status()

    def _scanner_driver(self) -> Any:
        try:
            return self.devices.get("scanner")
        except Exception:
            return None

    async def _restart_scanner_loop(self) -> None:
        if self._scanner_task is not None:
            self._scanner_task.cancel()
            await asyncio.gather(self._scanner_task, return_exceptions=True)
            self._scanner_task = None
        if self._scanner_driver() is not None and self._stop is not None and not self._stop.is_set():
            self._scanner_task = asyncio.create_task(self._scanner_loop(), name="scanner")

    # -- action panels (declared by the plugins' station extensions) ----------------------------

    def action_panels(self) -> list[dict[str, Any]]:
        """Every action panel for the station's devices: ``[{device, role, panel, plugin}]``, by device
        code (``plugin``: the declaring station extension's name, whose catalogue translates the panel)."""
        out = []
        for key in sorted(self.devices.devices):
            device = self.devices.devices[key]
            kind = device.config.kind
            if kind is None:
                declared = self.extensions.kind_for(device.config.role)
                kind = declared.kind if declared else None
            for panel in self.extensions.panels_for(kind) if kind else []:
                out.append(
                    {
                        "device": device.config.code or key,
                        "role": device.config.role,
                        "panel": panel,
                        "plugin": self.extensions.plugin_of(panel.id),
                    }
                )
        return out

    async def run_action(self, panel_id: str, button_id: str, *, device: str, values: dict[str, Any]) -> Any:
        """Press ``button_id`` of panel ``panel_id`` for ``device``: the plugin's route is called in the
        worker's name when one is logged in, else the station's. ActionError for a bad panel, button or field."""
        panel = self.extensions.panel(panel_id)
        if not any(p["device"] == device and p["panel"].id == panel_id for p in self.action_panels()):
            raise ActionError(f"device {device!r} of this station has no panel {panel_id!r}")
        action = ("panel", panel_id, button_id, device, json.dumps(values, sort_keys=True, default=str))
        method, path, body = build_request(
            panel,
            button_id,
            values=values,
            device=device,
            station=self.config.station_code,
            idempotency_key=self._unanswered.get(action),
        )
        return await self._act(action, body, self._read(method, path, json=body))

    async def _act(self, action: tuple, body: dict[str, Any], request: Any) -> Any:
        """Send a device action; when no answer came back (offline, a timeout, a server error), keep its
        idempotency key, so pressing the same button again retries the *same* action: the server
        answers the first job and never acts twice. An answer, or a refusal, forgets the key."""
        key = body.get("idempotency_key")
        if key:
            self._unanswered[action] = key
        try:
            answer = await request
        except OfflineError:
            raise
        except ServerError as exc:
            # still running on the server: a retry must keep asking about that one
            if exc.server_reachable and exc.code != "FLASH_IN_PROGRESS":
                self._unanswered.pop(action, None)
            raise
        except BaseException:
            self._unanswered.pop(action, None)
            raise
        self._unanswered.pop(action, None)
        return answer

    # -- worker ---------------------------------------------------------------------------------

    async def login(self, username: str, password: str) -> dict[str, Any]:
        """Identify the worker; ``agent.worker`` becomes the worker id.

        Online: ``POST /auth/login``; the accepted password is remembered as a scrypt hash (never
        in clear) so the worker can log in here offline for ``[offline] login_days`` (7). When the
        server is unreachable the cached credential is checked instead and the answer carries
        ``"offline": True``. Raises :class:`LoginError` with ``code`` ``INVALID_CREDENTIALS`` or
        ``OFFLINE_LOGIN_UNAVAILABLE``; ServerError for other refusals (a locked account …).
        """
        if not username or not password:
            raise LoginError("INVALID_CREDENTIALS", "Enter your user name and password.")
        try:
            answer = await self.client.json(
                "POST", "/auth/login", json={"username": username, "password": password}, auth=False
            )
        except OfflineError as exc:
            self._contact(False, str(exc))
            return await self._login_offline(username, password)
        except ServerError as exc:
            self._contact(exc.server_reachable, str(exc))
            if not exc.server_reachable:
                return await self._login_offline(username, password)
            if exc.status == 401:
                await asyncio.to_thread(self.cache.forget_login, username)
                raise LoginError("INVALID_CREDENTIALS", f"Wrong user name or password ({exc.code}).") from exc
            raise
        self._offline_session = None
        self.session_error = None
        self._contact(True, None)
        answer = answer or {}
        self.client.set_user_token(answer.get("access_token"))
        self._refresh_token = answer.get("refresh_token")
        self.worker = username
        role = answer.get("role") or (answer.get("user") or {}).get("role")
        try:  # the slow hash runs off the event loop
            await asyncio.to_thread(self.cache.remember_login, username, password, role=role)
        except Exception as exc:  # the online login worked; only a later offline one would miss it
            log.warning("could not cache the credential of %s: %s", username, exc)
        self._emit_status()
        self._sync_cache_soon()
        return {**answer, "offline": False}

    async def _login_offline(self, username: str, password: str) -> dict[str, Any]:
        found = await asyncio.to_thread(
            self.cache.check_login, username, password, max_age_days=self.config.offline_login_days
        )
        self.client.set_user_token(None)
        self._refresh_token = None
        self.worker = found["username"]
        self.session_error = None
        self._offline_session = (found["username"], password)
        log.info("worker %s logged in offline (cached credential of %s)", self.worker, found["logged_in_at"])
        self._emit_status()
        return {"username": found["username"], "role": found["role"], "offline": True}

    def logout(self) -> None:
        self.worker = None
        self._offline_session = None
        self.session_error = None
        self._refresh_token = None
        self.client.set_user_token(None)
        self._emit_status()

    async def _refresh_worker_token(self) -> bool:
        """Swap the worker's refresh token for a new pair (access tokens live 15 minutes)."""
        if not self._refresh_token:
            return False
        try:
            answer = await self.client.json(
                "POST", "/auth/refresh", json={"refresh_token": self._refresh_token}, auth=False
            )
        except (OfflineError, ServerError) as exc:
            log.info("worker token refresh failed: %s", exc)
            return False
        self.client.set_user_token(answer.get("access_token"))
        self._refresh_token = answer.get("refresh_token")
        return True

    # -- events into the outbox -----------------------------------------------------------------

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
        """Commit a process result to the outbox; returns its idempotency key once it is durable.

        ``lot_number`` may be None for a unit the offline cache did not know (``lookup`` answered
        ``kind: "unknown"``): the sender asks the server for the unit's LOT by ``serial_number``
        before it sends the record. A ``("delivery", …)`` event says ``queued`` at once, then
        ``delivered`` or ``rejected`` when the server answers.

        Raises OutboxFullError when the disk is full (nothing was saved) and ValueError for input
        the server would refuse anyway.
        """
        if result not in ("pass", "fail"):
            raise ValueError(f"result must be 'pass' or 'fail', not {result!r}")
        for name, value in (("process_id", process_id), ("worker_id", worker_id)):
            if not value or not str(value).strip():
                raise ValueError(f"{name} is required")
        if not (lot_number and str(lot_number).strip()) and not serial_number:
            raise ValueError("lot_number is required (or a serial_number whose LOT the server knows)")
        named = {"lot_number": lot_number, "process_id": process_id, "worker_id": worker_id,
                 "serial_number": serial_number, "defect_code": defect_code}
        for name, value in named.items():
            if isinstance(value, str) and value:
                try:
                    check_identifier(value)
                except ValueError as exc:  # the server takes it exactly or refuses it: refuse before queueing
                    raise ValueError(f"{name} {exc}") from None
        body: dict[str, Any] = {
            "lot_number": lot_number or None,
            "process_id": process_id,
            "worker_id": worker_id,
            "result": result,
            "data": data or {},
            "recorded_at": self._server_now(),
        }
        if serial_number:
            body["serial_number"] = serial_number
        if defect_code:
            body["defect_code"] = defect_code
        key, _ = self.outbox.enqueue(PROCESS_RECORD, body, source="worker")
        self._after_enqueue()
        self._emit("delivery", {"key": key, "state": "queued", "code": None, "message": None})
        return key

    def record_event(self, type: str, payload: dict[str, Any], *, idempotency_key: str | None = None) -> str:
        """Commit a station event (scan, device result …) for ``POST /stations/events``."""
        # ``recorded_at`` is the time the server's histories order by (the local clock corrected by
        # the last measured offset); ``station_time`` is the raw local clock, kept for diagnosis.
        payload = {**payload, "station_time": datetime.now(UTC).isoformat(), "recorded_at": self._server_now()}
        if self.worker and not payload.get("worker"):
            # who did it: the kernel names the logged-in worker (and the station) in the history
            payload["worker"] = self.worker
        body = {"type": type, "payload": payload}
        key, _ = self.outbox.enqueue(STATION_EVENT, body, idempotency_key=idempotency_key, source=type)
        self._after_enqueue()
        return key

    def _after_enqueue(self) -> None:
        self.sender.nudge()
        self._emit_status()

    def _server_now(self) -> str:
        """Local time corrected by the offset the last heartbeat measured (the local clock may be wrong)."""
        offset = self.outbox.clock_offset() or 0.0
        return (datetime.now(UTC) + timedelta(seconds=offset)).isoformat()

    def _enqueue_completion(self, completion: Completion, path: Path) -> tuple[str, bool]:
        """Commit a completion file's record with its attachments. A report larger than
        ``[watcher] inline_max_bytes`` travels itself as an attachment and its bulky measurements
        stay there (see ``Completion.process_record``). Attachment bytes are kept under
        ``<work_dir>/attachments/<sha256>`` (a hard link where possible) until the server has them."""
        files = list(completion.files)
        if completion.size > self.config.inline_completion_bytes:
            files.append(
                AttachmentFile(
                    name=path.name,
                    path=path,
                    sha256=completion.sha256,
                    size=completion.size,
                    media_type="application/json",
                    description="the completion report as written by the equipment",
                )
            )
            completion = replace(completion, files=tuple(files), report_attachment=path.name)
        kept = [replace(f, path=self._keep_attachment(f)) for f in files]
        body = completion.process_record(default_worker=self.worker or f"equipment:{completion.equipment_id}")
        key, created = self.outbox.enqueue(
            PROCESS_RECORD,
            body,
            idempotency_key=completion.idempotency_key,
            source=f"file:{path.name}",
            attachments=kept,
        )
        self._after_enqueue()
        return key, created

    def _keep_attachment(self, attachment: AttachmentFile) -> Path:
        store = self.config.attachments_dir
        store.mkdir(parents=True, exist_ok=True)
        target = store / attachment.sha256
        if not target.exists():
            temp = store / f"{attachment.sha256}.{os.getpid()}.part"
            try:
                os.link(attachment.path, temp)
            except OSError:  # another file system, or links not allowed: copy
                shutil.copyfile(attachment.path, temp)
            os.replace(temp, target)
        return target

    def _watcher_outcome(self, outcome: Outcome) -> None:
        if outcome.idempotency_key and outcome.action in ("recorded", "duplicate"):
            self.outbox.set_completion_file(outcome.idempotency_key, outcome.moved_to)
            event = self.outbox.get(outcome.idempotency_key)
            if event is not None and event.status == "rejected":  # refused before it was archived
                self._quarantine_rejected(outcome.idempotency_key, event.last_error or "rejected by the server")
        self._emit("completion", asdict(outcome))

    def _settled(self, settled: list[Settled]) -> None:
        """The sender's verdicts: announce each, and quarantine a completion file the server refused."""
        for item in settled:
            if item.state == "rejected":
                self._quarantine_rejected(item.key, f"the server refused the record: {item.code}: {item.message}")
            self._emit("delivery", {"key": item.key, "state": item.state, "code": item.code, "message": item.message})
        self._emit_status()

    def _quarantine_rejected(self, key: str, reason: str) -> None:
        """Move the archived completion file behind a refused record to quarantine with its reason."""
        with self._quarantine_lock:
            known = self.outbox.completion_file(key)
            if known is None or known.get("quarantined_at"):
                return
            archived = Path(known["path"])
            if not archived.exists():
                return
            moved = quarantine_file(archived, self.config.quarantine_dir, reason)
            companions = archived.parent / f"{archived.stem}.files"
            if companions.is_dir():
                shutil.move(str(companions), str(moved.parent / f"{moved.stem}.files"))
            self.outbox.mark_completion_quarantined(key, moved)

    # -- scans ----------------------------------------------------------------------------------

    def submit_scan(self, code: str, *, source: str = "keyboard", symbology: str | None = None) -> Scan:
        """A code typed or wedged into the window: recorded like a scanner's, and announced."""
        key = self.record_event("scan", {"code": code, "source": source, "symbology": symbology, "worker": self.worker})
        scan = Scan(code=code, source=source, symbology=symbology, idempotency_key=key)
        self._last_symbology = (code, symbology)
        self._scan_not_looked_up = code  # its lookup must not log it again (see lookup)
        self._emit("scan", scan)
        return scan

    async def _scanner_loop(self) -> None:
        driver = self.devices.get("scanner")
        async for raw in scans_of(driver, self._stop):
            code = getattr(raw, "code", None) or getattr(raw, "data", None) or raw
            if isinstance(code, bytes):
                code = code.decode("utf-8", "replace")
            symbology = getattr(raw, "symbology", None)
            try:
                self.submit_scan(str(code), source="scanner", symbology=symbology)
            except Exception as exc:
                self.last_error = f"scan not saved: {exc}"
                log.error(self.last_error)
                self._emit_status()

    # -- server reads ---------------------------------------------------------------------------

    async def _read(self, method: str, path: str, *, as_user: bool = True, **kwargs: Any) -> Any:
        """A request in the worker's name (when logged in); an expired worker token is refreshed once,
        and if that fails the request goes in the station's name rather than failing."""
        try:
            try:
                answer = await self.client.json(method, path, as_user=as_user, **kwargs)
            except ServerError as exc:
                if not (as_user and exc.status == 401 and self.client.has_user_token):
                    raise
                if not await self._refresh_worker_token():
                    self.client.set_user_token(None)
                answer = await self.client.json(method, path, as_user=as_user, **kwargs)
        except OfflineError as exc:
            self._contact(False, str(exc))
            raise
        except ServerError as exc:
            self._contact(exc.server_reachable, str(exc))
            raise
        self._contact(True, None)
        return answer

    async def lookup(self, code: str) -> dict[str, Any]:
        """Unit, LOT and next process for a scanned code (``POST /scans/lookup``), ``"source": "server"``.

        When the server is unreachable (or answers 5xx) the station cache answers instead, in the
        same shape with ``"source": "cache"``; a code it does not know answers ``{"kind": "unknown",
        "code", "serial_number", "source": "cache"}`` (see :func:`mes_station.offline.lookup_from_cache`).
        A 4xx (``UNKNOWN_CODE``, ``NOT_FOUND``) is the server's verdict and raises ServerError.

        The AIM symbology identifier the scanner sent with this code (``]d2`` for a GS1 DataMatrix)
        goes along, so the server reads the data as GS1 even without a GS in it."""
        body: dict[str, Any] = {"code": code, "station": self.config.station_code}
        scanned = getattr(self, "_scan_not_looked_up", None)
        if scanned is not None and scanned.strip() == code.strip():
            # the scan is already a `scan` event in the outbox (it reaches the unit history with the
            # station's time and sequence, offline too): the server must not log it a second time
            body["record"] = False
            self._scan_not_looked_up = None
        last_code, symbology = getattr(self, "_last_symbology", (None, None))
        if symbology and last_code is not None and last_code.strip() == code.strip():
            body["symbology"] = symbology
        key = self.devices.key_of("scanner")
        scanner = self.devices.devices.get(key) if key else None
        if scanner is not None and scanner.loaded:
            body.update(
                device=scanner.config.code or "scanner",
                driver=scanner.config.driver,
                driver_version=scanner.version or "",
            )
        try:
            answer = await self._read("POST", "/scans/lookup", json=body)
        except OfflineError:
            return lookup_from_cache(self.cache, self.outbox, code, symbology=body.get("symbology"))
        except ServerError as exc:
            if exc.server_reachable:
                raise
            return lookup_from_cache(self.cache, self.outbox, code, symbology=body.get("symbology"))
        return {**(answer or {}), "source": "server"}

    def defect_codes(self, process_code: str | None) -> list[dict[str, str]]:
        """``[{"code", "name"}]`` a worker may choose at ``process_code``: the server's defect list for
        that process as last synced (``GET /stations/me/cache``); when the server has none for it,
        ``[ui] defect_codes`` of station.toml (names equal to codes)."""
        cached = self.cache.defect_codes(process_code) if process_code else None
        if cached:
            return [{"code": str(d.get("code")), "name": str(d.get("name") or d.get("code"))} for d in cached]
        return [{"code": code, "name": code} for code in self.config.ui_defect_codes]

    async def firmware_images(self, product_code: str | None) -> list[dict[str, Any]]:
        """Firmware images valid for ``product_code``: ``[{"id", "name", "version", "device", "product"}]``,
        from the server (``GET /firmware/images``) or, when it is unreachable, the cached list."""
        try:
            answer = await self._read("GET", "/firmware/images")
        except OfflineError:
            return [_image(i) for i in self.cache.firmware_images(product_code)]
        except ServerError as exc:
            if exc.server_reachable and exc.status != 404:
                raise
            return [_image(i) for i in self.cache.firmware_images(product_code)]
        images = [i for i in (answer or {}).get("items", []) if not i.get("deleted_at")]
        try:
            await asyncio.to_thread(self.cache.replace_firmware, images)
        except Exception as exc:
            log.warning("could not cache the firmware list: %s", exc)
        return [_image(i) for i in images if not product_code or i.get("product") == product_code]

    # -- the offline cache ----------------------------------------------------------------------

    async def sync_cache(self) -> dict[str, Any]:
        """Refresh the offline cache now: ``GET /stations/me/cache`` (open LOTs of the line, units,
        routing, defect lists) and the firmware list. Returns ``status()["cache"]``; raises
        OfflineError / ServerError when the server cannot answer (the old cache stays).

        The first sync takes the full snapshot; later ones send the answer's ``cursor`` back
        (``?since=``) and receive only what changed since (``"mode": "delta"``). A cursor the server
        refuses (``INVALID_CURSOR``, e.g. another server's) costs one full sync, nothing more.

        A full snapshot of more units than ``[offline] cache_page_units`` comes in pages: each page is
        kept (with the server's ``next_page``) as it arrives, so a sync cut off midway resumes at the
        next page instead of starting again, and the cache changes once, when the last page is in."""
        pages = self.config.cache_page_units
        resume = await asyncio.to_thread(self.cache.next_page)
        cursor = None if resume else await asyncio.to_thread(self.cache.cursor)
        params: dict[str, Any] = {"max_units": pages}
        if resume:
            params["page"] = resume
        elif cursor:
            params["since"] = cursor
        try:
            snapshot = await self._read("GET", "/stations/me/cache", as_user=False, params=params)
        except ServerError as exc:
            if not ((cursor or resume) and exc.code == "INVALID_CURSOR"):
                raise
            log.info("cache cursor or page refused (%s): syncing in full", exc)
            await asyncio.to_thread(self.cache.forget_cursor)
            await asyncio.to_thread(self.cache.abandon_pages)
            resume = None
            snapshot = await self._read("GET", "/stations/me/cache", as_user=False, params={"max_units": pages})
        first = not resume
        while (snapshot or {}).get("mode") == "full" and snapshot.get("next_page"):
            await asyncio.to_thread(self.cache.stage_page, snapshot, first=first)
            first = False
            snapshot = await self._read(
                "GET", "/stations/me/cache", as_user=False, params={"max_units": pages, "page": snapshot["next_page"]}
            )
        try:
            images = await self._read("GET", "/firmware/images", as_user=False)
            await asyncio.to_thread(
                self.cache.replace_firmware, [i for i in (images or {}).get("items", []) if not i.get("deleted_at")]
            )
        except ServerError as exc:  # no firmware plugin on this server, or not allowed: no list
            log.info("firmware list not cached: %s", exc)
        # the snapshot last: a new synced_at means everything of this sync is stored
        snapshot = snapshot or {}
        store = self.cache.apply_delta if snapshot.get("mode") == "delta" else self.cache.replace_snapshot
        await asyncio.to_thread(store, snapshot)
        status = self.cache.status()
        self._emit_status()
        return status

    def _sync_cache_soon(self) -> None:
        self._cache_wanted.set()

    async def _cache_loop(self) -> None:
        """Sync at start, after each login, and every ``[offline] cache_sync_seconds``."""
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                await self.sync_cache()
            except (OfflineError, ServerError) as exc:
                log.info("offline cache not synced: %s", exc)
            except Exception:
                log.exception("offline cache sync failed")
            self._cache_wanted.clear()
            stop = asyncio.ensure_future(self._stop.wait())
            wanted = asyncio.ensure_future(self._cache_wanted.wait())
            done, pending = await asyncio.wait(
                {stop, wanted}, timeout=self.config.cache_sync_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()

    async def lot(self, lot_number: str) -> dict[str, Any]:
        return await self._read("GET", f"/lots/{lot_number}")

    async def unit_history(self, serial_number: str) -> Any:
        return await self._read("GET", f"/units/{serial_number}/history")

    # -- printing (works offline from cached templates) -----------------------------------------

    async def sync_templates(self) -> int:
        """Refresh the local label-template cache from the server."""
        try:
            count = await sync_templates(self.client, self.outbox)
        except OfflineError as exc:
            self._contact(False, str(exc))
            raise
        self.outbox.set_meta("templates_synced_at", datetime.now(UTC).isoformat())
        return count

    async def print_label(self, *, template: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Render a cached template and send it to the station's printer; the outcome goes to the outbox.

        Raises TemplateNotCachedError, TemplateError (bad fields), DeviceUnavailableError (no
        printer) or DeviceError (the printer failed — recorded as a failed device result first).
        """
        printer = self.devices.get("printer")
        device = self.devices.device("printer")
        cached = self.outbox.template(template)
        if cached is None:
            try:
                await self.sync_templates()
            except (OfflineError, ServerError):
                pass
            cached = self.outbox.template(template) or local_template(template)
        if cached is None:
            raise TemplateNotCachedError(f"label template {template!r} is not cached and the server has none")
        zpl = render(cached, fields)
        result: dict[str, Any] = {
            "action": "print",
            "role": "printer",
            "device": device.config.code or f"{self.config.station_code}:printer",
            "driver": device.config.driver,
            "driver_version": device.version,
            "template": template,
            "fields": fields,
            "bytes": len(zpl),
            "worker": self.worker,
            "lot_number": fields.get("lot_number"),
            "serial_number": fields.get("serial_number"),
        }
        started = time.monotonic()
        try:
            answer = printer.send(zpl)
            if inspect.isawaitable(answer):
                await answer
        except Exception as exc:
            result.update(outcome="failed", error=f"{type(exc).__name__}: {exc}")
            result["event_key"] = self.record_event("device_result", result)
            raise DeviceError(f"printing {template!r} failed: {exc}") from exc
        result.update(outcome="printed", duration_ms=round((time.monotonic() - started) * 1000, 1))
        result["event_key"] = self.record_event("device_result", result)
        return result

    # -- firmware (the server runs the flash; the window follows it) ----------------------------

    async def start_flash(self, *, serial_number: str, image_id: Any) -> str:
        """Ask the server to flash a unit (``POST /firmware/upload``); returns the job id at once.

        ``image_id`` is the image's id (``12`` or ``"12"``) or ``"PRODUCT@VERSION"``. The request goes
        with the station's token (the station's own uploader is used) and names the worker as
        operator. An attempt whose answer was lost (offline, a timeout, a 5xx) keeps its idempotency
        key, and the next call for the same unit and image sends it again: the server answers the
        first job (or, while that flash runs, its id) and never flashes twice. Once answered, the
        next call is a new flash.
        """
        action = ("flash", serial_number, str(image_id), self.worker)
        body: dict[str, Any] = {
            "serial_number": serial_number,
            "station_code": self.config.station_code,
            "operator": self.worker,
            # the key of an earlier attempt whose answer was lost: the retry flashes once
            "idempotency_key": self._unanswered.get(action) or str(uuid.uuid4()),
            "wait": False,
        }
        if isinstance(image_id, int) or (str(image_id).isascii() and str(image_id).isdigit()):
            body["image_id"] = int(image_id)
        elif "@" in str(image_id):
            body["product"], body["version"] = str(image_id).split("@", 1)
        else:
            body["image_id"] = image_id  # the server names what is wrong with it
        try:
            answer = await self._act(action, body, self._read("POST", "/firmware/upload", json=body, as_user=False))
        except ServerError as exc:
            if exc.code == "FLASH_IN_PROGRESS" and exc.detail.get("job_id") is not None:
                self._unanswered.pop(action, None)  # answered: the flash still running is that job
                return str(exc.detail["job_id"])
            raise
        answer = answer or {}
        job = answer.get("job_id") or answer.get("id") or (answer.get("job") or {}).get("id")
        if job is None:
            raise ServerError(200, "BAD_ANSWER", f"no job id in the firmware answer: {answer!r}")
        return str(job)

    async def flash_status(self, job_id: str) -> dict[str, Any]:
        return await self._read("GET", f"/firmware/jobs/{job_id}")

    # -- heartbeat ------------------------------------------------------------------------------

    async def heartbeat(self) -> dict[str, Any]:
        """Send one heartbeat; learns the server's clock offset from the reply."""
        body = await heartbeat_body(
            self.devices,
            outbox_depth=self.outbox.depth(),
            oldest_queued_age=self.outbox.oldest_queued_age(),
            config_version=self.config_version,
            driver_problems=self.driver_problems(),
        )
        sent = time.time()
        try:
            answer = await self.client.json("POST", "/stations/heartbeat", json=body)
        except OfflineError as exc:
            self._contact(False, str(exc))
            raise
        except ServerError as exc:
            self._contact(exc.server_reachable, str(exc))
            raise
        received = time.time()
        self._contact(True, None)
        server_time = (answer or {}).get("server_time")
        if server_time:
            self.outbox.set_meta("server_clock_offset", round(clock_offset(server_time, sent, received), 3))
        self.last_heartbeat = {"at": datetime.now(UTC).isoformat(), "body": body, "answer": answer}
        self.sender.nudge(reset_backoff=True)
        return answer or {}

    async def _heartbeat_loop(self) -> None:
        assert self._stop is not None
        last_prune = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_prune > 3600:
                last_prune = time.monotonic()
                try:
                    self.outbox.prune_delivered(self.config.delivered_retention_days)
                except Exception as exc:
                    log.warning("pruning delivered events failed: %s", exc)
            try:
                answer = await self.heartbeat()
                wanted = answer.get("config_version")
                templates = answer.get("label_templates")
                known = (self.provisioned or {}).get("label_templates")
                serving = answer.get("plugins")
                if isinstance(wanted, int) and (self.provisioned is None or wanted != self.config_version):
                    await self.refresh_config()
                elif (
                    isinstance(serving, list)
                    and self.provisioned is not None
                    and serving != self.provisioned.get("plugins")
                ):
                    # a plugin switched off or on for this station's line: its devices go or come back
                    await self.refresh_config()
                elif templates and self.provisioned is not None and templates != known:
                    # a template uploaded or retired on the server: refreshing the configuration
                    # re-syncs the template cache (it follows the version the configuration names)
                    await self.refresh_config()
                if self.devices.key_of("printer") and self._heartbeats % TEMPLATE_SYNC_EVERY == 0:
                    await self.sync_templates()
            except (OfflineError, ServerError) as exc:
                log.info("heartbeat failed: %s", exc)
            except Exception:
                log.exception("heartbeat error")
            self._heartbeats += 1
            self._save_snapshot()
            self._emit_status()
            try:
                await asyncio.wait_for(self._stop.wait(), self.config.heartbeat_interval)
            except TimeoutError:
                pass

    def _save_snapshot(self) -> None:
        """Leave the latest status in the outbox DB, where ``mes-station status`` reads it."""
        try:
            self.outbox.set_meta(
                "agent_status",
                {**self.status(), "pid": os.getpid(), "updated_at": datetime.now(UTC).isoformat()},
            )
        except Exception as exc:  # a full disk must not stop the heartbeat
            log.warning("could not save the status snapshot: %s", exc)


def _image(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": item.get("id"),
        "name": item.get("name"),
        "version": item.get("version"),
        "device": item.get("device"),
        "product": item.get("product"),
    }


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


__all__ = ["Agent", "Scan", "TemplateError"]
