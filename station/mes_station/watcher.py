"""The completion-JSON folder watcher: wait until a file is whole, validate, enqueue, archive."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from mes_station.completion import (
    AttachmentMissing,
    Completion,
    CompletionInvalid,
    parse_completion,
    resolve_attachments,
)
from mes_station.errors import OutboxFullError

log = logging.getLogger(__name__)

#: names the equipment uses while it is still writing (write-to-temp-then-rename)
_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", "~")


def is_candidate(path: Path) -> bool:
    """A finished completion file's name: ``*.json``, not hidden, not a temp name."""
    name = path.name
    return name.lower().endswith(".json") and not name.startswith((".", "~")) and not name.endswith(_TEMP_SUFFIXES)


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


@dataclass(frozen=True)
class Outcome:
    """What happened to one file: ``recorded``, ``duplicate`` or ``quarantined``."""

    path: Path
    action: str
    moved_to: Path
    idempotency_key: str | None = None
    reason: str | None = None


class CompletionWatcher:
    """Watches one folder. ``on_completion(completion, path)`` commits the record and returns
    ``(idempotency_key, created)``; only after it returns is the file moved to the archive."""

    def __init__(
        self,
        *,
        watch_folder: Path,
        archive_dir: Path,
        quarantine_dir: Path,
        on_completion: Callable[[Completion, Path], tuple[str, bool]],
        settle_seconds: float = 1.0,
        malformed_after_seconds: float = 10.0,
        rescan_seconds: float = 5.0,
        retention_days: int = 90,
        on_outcome: Callable[[Outcome], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.watch_folder = Path(watch_folder)
        self.archive_dir = Path(archive_dir)
        self.quarantine_dir = Path(quarantine_dir)
        self.on_completion = on_completion
        self.settle_seconds = settle_seconds
        self.malformed_after_seconds = max(malformed_after_seconds, settle_seconds)
        self.rescan_seconds = rescan_seconds
        self.retention_days = retention_days
        self.on_outcome = on_outcome or (lambda outcome: None)
        self.clock = clock
        self.last_error: str | None = None
        self._seen: dict[Path, _Seen] = {}
        self._hints: set[Path] = set()
        self._hint_lock = threading.Lock()
        self._hinted = threading.Event()
        self._observer = None
        self._last_scan = float("-inf")
        for folder in (self.watch_folder, self.archive_dir, self.quarantine_dir):
            folder.mkdir(parents=True, exist_ok=True)

    # -- watchdog: only a hint that something changed; the poll decides ------------------------

    def start_observer(self) -> None:
        """Start the watchdog observer thread (file events wake the poll at once)."""
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event):  # type: ignore[no-untyped-def]
                for attr in ("src_path", "dest_path"):
                    path = getattr(event, attr, None)
                    if path:
                        watcher.hint(Path(os.fsdecode(path)))

        observer = Observer()
        observer.schedule(_Handler(), str(self.watch_folder), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop_observer(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def hint(self, path: Path) -> None:
        """Something happened to ``path`` (thread-safe)."""
        if path.parent == self.watch_folder and is_candidate(path):
            with self._hint_lock:
                self._hints.add(path)
            self._hinted.set()

    # -- the poll -------------------------------------------------------------------------------

    def poll(self) -> list[Outcome]:
        """Look at the folder once; handle every file that is complete. Safe to call repeatedly."""
        now = self.clock()
        with self._hint_lock:
            hinted, self._hints = self._hints, set()
        self._hinted.clear()
        paths = set(self._seen) | hinted
        if hinted or now - self._last_scan >= self.rescan_seconds or self._seen:
            self._last_scan = now
            try:
                paths |= {p for p in self.watch_folder.iterdir() if is_candidate(p)}
            except OSError as exc:
                self.last_error = f"cannot list {self.watch_folder}: {exc}"
                log.error(self.last_error)
                return []
        outcomes = []
        for path in sorted(paths):
            outcome = self._consider(path, now)
            if outcome is not None:
                outcomes.append(outcome)
                self.on_outcome(outcome)
        return outcomes

    def _consider(self, path: Path, now: float) -> Outcome | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            self._seen.pop(path, None)
            return None
        seen = self._seen.get(path)
        if seen is None or seen.size != st.st_size or seen.mtime_ns != st.st_mtime_ns:
            self._seen[path] = _Seen(st.st_size, st.st_mtime_ns, now)
            return None
        stable_for = now - seen.since
        if stable_for < self.settle_seconds:
            return None
        try:
            content = path.read_bytes()
        except OSError:  # still locked by the writer (Windows), or vanished
            return None
        if len(content) != seen.size:
            self._seen[path] = _Seen(len(content), st.st_mtime_ns, now)
            return None
        try:
            completion = parse_completion(content)
            completion = replace(completion, files=resolve_attachments(completion, path.parent))
        except AttachmentMissing as exc:
            if stable_for < self.malformed_after_seconds:
                return None  # the equipment may still be writing its attachments
            self._seen.pop(path, None)
            return self._quarantine(path, str(exc))
        except CompletionInvalid as exc:
            incomplete = str(exc).startswith(("not valid JSON", "not UTF-8")) or not content.strip()
            if incomplete and stable_for < self.malformed_after_seconds:
                return None  # may still be written in pieces with a pause: give it time
            self._seen.pop(path, None)
            declared = []
            try:
                declared = [a.get("file") for a in json.loads(content).get("attachments") or [] if isinstance(a, dict)]
            except (ValueError, AttributeError, RecursionError):
                pass
            return self._quarantine(path, str(exc) if content.strip() else "empty file", companions=declared)
        try:
            key, created = self.on_completion(completion, path)
        except OutboxFullError as exc:
            # Not saved: the file stays in the folder and is tried again on a later poll.
            self.last_error = str(exc)
            log.error("completion file %s not saved: %s", path.name, exc)
            return None
        self._seen.pop(path, None)
        day = self.archive_dir / datetime.now(UTC).strftime("%Y-%m-%d")
        moved = self._move(path, day)
        for attachment in completion.files:
            if attachment.path != path and attachment.path.exists():
                self._move(attachment.path, day / f"{moved.stem}.files")
        self.last_error = None
        return Outcome(path, "recorded" if created else "duplicate", moved, idempotency_key=key)

    def _quarantine(self, path: Path, reason: str, *, companions: list[Any] = ()) -> Outcome:
        moved = quarantine_file(path, self.quarantine_dir, reason)
        for name in companions:
            if isinstance(name, str) and name and "/" not in name and "\\" not in name and name not in (".", ".."):
                companion = path.parent / name
                if companion.is_file() and not is_candidate(companion):
                    self._move(companion, self.quarantine_dir / f"{moved.stem}.files")
        return Outcome(path, "quarantined", moved, reason=reason)

    @staticmethod
    def _move(path: Path, folder: Path) -> Path:
        return move_unique(path, folder)

    # -- archive retention ----------------------------------------------------------------------

    def prune_archive(self, today: date | None = None) -> int:
        """Delete archive day folders older than ``retention_days``; returns how many were removed."""
        today = today or datetime.now(UTC).date()
        cutoff = today - timedelta(days=self.retention_days)
        removed = 0
        for folder in self.archive_dir.iterdir():
            try:
                day = date.fromisoformat(folder.name)
            except ValueError:
                continue
            if folder.is_dir() and day < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    # -- running inside the agent ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set: quickly while a file is settling, else on events or rescans."""
        self.start_observer()
        last_prune = float("-inf")
        try:
            while not stop.is_set():
                if self.clock() - last_prune > 3600:
                    last_prune = self.clock()
                    await asyncio.to_thread(self.prune_archive)
                try:
                    await asyncio.to_thread(self.poll)
                except Exception:  # keep watching whatever one file did
                    log.exception("completion watcher poll failed")
                tick = min(0.25, self.settle_seconds / 4) if self._seen else self.rescan_seconds
                await _wait_any(stop, self._hinted, tick)
        finally:
            self.stop_observer()


def move_unique(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` under its name, or ``name.1.json`` … when that is taken."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    n = 1
    while target.exists():
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    shutil.move(str(path), str(target))
    return target


def quarantine_file(path: Path, quarantine_dir: Path, reason: str) -> Path:
    """Move a completion file to quarantine with ``<name>.reason`` beside it; returns its new path."""
    moved = move_unique(path, quarantine_dir)
    moved.with_name(moved.name + ".reason").write_text(
        f"{datetime.now(UTC).isoformat()} {path.name}: {reason}\n", encoding="utf-8"
    )
    log.warning("completion file %s quarantined: %s", path.name, reason)
    return moved


def quarantined_count(quarantine_dir: Path) -> int:
    """How many completion files are in quarantine (their ``.reason`` files not counted)."""
    try:
        return sum(1 for p in quarantine_dir.iterdir() if p.is_file() and p.suffix.lower() == ".json")
    except OSError:
        return 0


async def _wait_any(stop: asyncio.Event, hinted: threading.Event, timeout: float) -> None:
    """Wait for ``stop``, a watchdog hint, or the timeout — polling the thread event cheaply."""
    deadline = time.monotonic() + timeout
    while not stop.is_set() and not hinted.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            await asyncio.wait_for(stop.wait(), min(remaining, 0.05))
        except TimeoutError:
            pass
