"""The local outbox: every station event is committed to SQLite before anyone is told "saved"."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mes_station.errors import OutboxFullError

#: how an event is sent: a process record (``/process-records``) or a station event (``/stations/events``)
PROCESS_RECORD = "process_record"
STATION_EVENT = "event"

QUEUED, DELIVERED, REJECTED = "queued", "delivered", "rejected"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    source TEXT,
    created_at TEXT NOT NULL,
    clock_offset REAL,
    status TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_attempt_at TEXT,
    delivered_at TEXT,
    response TEXT
);
CREATE INDEX IF NOT EXISTS events_status_seq ON events (status, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attachments (
    idempotency_key TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    media_type TEXT NOT NULL,
    uploaded_at TEXT,
    PRIMARY KEY (idempotency_key, name)
);
CREATE TABLE IF NOT EXISTS completion_files (
    idempotency_key TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    quarantined_at TEXT
);
CREATE TABLE IF NOT EXISTS label_templates (
    name TEXT PRIMARY KEY,
    template TEXT NOT NULL,
    synced_at TEXT NOT NULL
);
"""

SQLITE_FULL = 13


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


@dataclass(frozen=True)
class OutboxEvent:
    """One row of the outbox. ``seq`` orders events; the wall clock (``created_at``) never does."""

    seq: int
    idempotency_key: str
    kind: str
    body: dict[str, Any]
    source: str | None
    created_at: str
    status: str
    attempts: int
    last_error: str | None
    delivered_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "idempotency_key": self.idempotency_key,
            "kind": self.kind,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "delivered_at": self.delivered_at,
            "last_error": self.last_error,
            "source": self.source,
            "body": self.body,
        }


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == SQLITE_FULL or "full" in str(exc).lower()


class Outbox:
    """A SQLite outbox (WAL, ``synchronous=FULL``) shared by the agent's threads.

    ``enqueue`` returns only after the row is durably committed; the sender marks rows delivered
    only after the server acknowledged them, so a crash in between resends (the server dedups).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, full: str = "outbox full: {exc} ({path})") -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT`` under the lock, rolled back on an error; a full disk
        is raised as :class:`OutboxFullError` with the message ``full`` (``{exc}``, ``{path}``)."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if _is_full(exc):
                    raise OutboxFullError(full.format(exc=exc, path=self.path)) from exc
                raise

    def _write(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        """Run one statement in its own committed transaction, turning "disk full" into OutboxFullError."""
        with self._transaction(
            "the station's outbox could not save the event: {exc} ({path}). Free disk space, then enter it again."
        ) as conn:
            return conn.execute(sql, tuple(params))

    def _write_many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self._transaction() as conn:
            conn.executemany(sql, rows)

    # -- producing ------------------------------------------------------------------------------

    def enqueue(
        self,
        kind: str,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        source: str | None = None,
        attachments: Iterable[Any] = (),
    ) -> tuple[str, bool]:
        """Commit one event; returns ``(idempotency_key, created)``.

        ``created`` is False when an event with the same key is already in the outbox (for instance
        the same completion file dropped twice): it is then not stored again. ``attachments``
        (objects with ``name, path, sha256, size, media_type``) are committed in the same
        transaction; the sender uploads them before it sends the event.
        """
        attachments = list(attachments)
        if kind not in (PROCESS_RECORD, STATION_EVENT):
            raise ValueError(f"unknown outbox event kind {kind!r}")
        key = idempotency_key or str(uuid.uuid4())
        body = {**body, "idempotency_key": key}
        row = (key, kind, json.dumps(body, separators=(",", ":")), source, _iso(utcnow()), self.clock_offset())
        insert = (
            "INSERT OR IGNORE INTO events (idempotency_key, kind, body, source, created_at, clock_offset)"
            " VALUES (?, ?, ?, ?, ?, ?)"
        )
        if not attachments:
            return key, self._write(insert, row).rowcount == 1
        with self._transaction() as conn:
            created = conn.execute(insert, row).rowcount == 1
            if created:
                conn.executemany(
                    "INSERT OR REPLACE INTO attachments (idempotency_key, name, path, sha256, size, media_type)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [(key, a.name, str(a.path), a.sha256, a.size, a.media_type) for a in attachments],
                )
        return key, created

    # -- draining -------------------------------------------------------------------------------

    def pending(self, limit: int) -> list[OutboxEvent]:
        """The oldest queued events in sequence order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM events WHERE status = ? ORDER BY seq LIMIT ?", (QUEUED, limit)
            ).fetchall()
        return [_event(r) for r in rows]

    def mark_delivered(self, acks: list[tuple[str, dict[str, Any] | None]]) -> None:
        """Mark events acknowledged by the server (``(key, server response or None)``)."""
        if not acks:
            return
        now = _iso(utcnow())
        self._write_many(
            "UPDATE events SET status = 'delivered', delivered_at = ?, response = ?, last_error = NULL,"
            " attempts = attempts + 1, last_attempt_at = ? WHERE idempotency_key = ? AND status = 'queued'",
            [(now, json.dumps(resp) if resp is not None else None, now, key) for key, resp in acks],
        )

    def update_body(self, key: str, body: dict[str, Any]) -> None:
        """Complete a queued event before its first send (a unit's LOT found by its serial number).

        Only a queued event changes; the key stays, so a retry after this sends the same body."""
        self._write(
            "UPDATE events SET body = ? WHERE idempotency_key = ? AND status = 'queued'",
            (json.dumps({**body, "idempotency_key": key}, separators=(",", ":")), key),
        )

    def mark_rejected(self, key: str, reason: str) -> None:
        """The server refused the event for good; it stays in the outbox, visible, with the reason."""
        now = _iso(utcnow())
        self._write(
            "UPDATE events SET status = 'rejected', last_error = ?, attempts = attempts + 1,"
            " last_attempt_at = ? WHERE idempotency_key = ?",
            (reason, now, key),
        )

    def mark_failed_attempt(self, keys: list[str], reason: str) -> None:
        """A transient failure: the events stay queued, with the last error for ``outbox list``."""
        now = _iso(utcnow())
        self._write_many(
            "UPDATE events SET attempts = attempts + 1, last_error = ?, last_attempt_at = ? WHERE idempotency_key = ?",
            [(reason, now, key) for key in keys],
        )

    def retry(self, keys: list[str] | None = None) -> int:
        """Put rejected events (all, or those named) back in the queue; returns how many."""
        if keys:
            marks = ",".join("?" * len(keys))
            cur = self._write(
                f"UPDATE events SET status = 'queued' WHERE status = 'rejected' AND idempotency_key IN ({marks})",
                keys,
            )
        else:
            cur = self._write("UPDATE events SET status = 'queued' WHERE status = 'rejected'")
        return cur.rowcount

    def restamp(self, keys: list[str] | None = None) -> int:
        """Queue again the rejected events (all, or those named) the server refused for their time
        (``IMPLAUSIBLE_TIME``: a station clock that was wrong), to be sent without it, so the server
        files them at their receipt time. The time the station gave is kept in the body
        (``data.original_recorded_at`` of a process record, ``payload.original_recorded_at`` /
        ``original_station_time`` of a station event), with the refusal (``..._refused``).
        The key stays (the server stored nothing under it). Returns how many were queued."""
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM events WHERE status = 'rejected' AND last_error LIKE '%IMPLAUSIBLE_TIME%'"
            ).fetchall()
            wanted = [_event(r) for r in rows if not keys or r["idempotency_key"] in keys]
            for ev in wanted:
                conn.execute(
                    "UPDATE events SET body = ?, status = 'queued' WHERE idempotency_key = ?",
                    (json.dumps(_restamped(ev), separators=(",", ":")), ev.idempotency_key),
                )
        return len(wanted)

    def prune_delivered(self, older_than_days: int) -> int:
        """Forget delivered events older than ``older_than_days`` (queued and rejected are kept)."""
        cutoff = _iso(datetime.fromtimestamp(time.time() - older_than_days * 86400, UTC))
        removed = self._write(
            "DELETE FROM events WHERE status = 'delivered' AND delivered_at < ?", (cutoff,)
        ).rowcount
        for table in ("attachments", "completion_files"):
            self._write(
                f"DELETE FROM {table} WHERE idempotency_key NOT IN (SELECT idempotency_key FROM events)"
            )
        return removed

    # -- looking --------------------------------------------------------------------------------

    def depth(self) -> int:
        """How many events wait to be sent."""
        return self.count(QUEUED)

    def count(self, status: str | None = None) -> int:
        with self._lock:
            if status is None:
                return self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            return self._conn.execute("SELECT COUNT(*) FROM events WHERE status = ?", (status,)).fetchone()[0]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute("SELECT status, COUNT(*) FROM events GROUP BY status").fetchall()
        out = {QUEUED: 0, DELIVERED: 0, REJECTED: 0}
        out.update({r[0]: r[1] for r in rows})
        return out

    def oldest_queued_age(self) -> float | None:
        """Seconds since the oldest queued event was saved, or None when nothing waits.

        Measured on the local clock; a clock set backwards gives 0, never a negative age.
        """
        with self._lock:
            row = self._conn.execute(
                "SELECT created_at FROM events WHERE status = ? ORDER BY seq LIMIT 1", (QUEUED,)
            ).fetchone()
        if row is None:
            return None
        age = (utcnow() - datetime.fromisoformat(row[0])).total_seconds()
        return max(0.0, age)

    def get(self, key: str) -> OutboxEvent | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM events WHERE idempotency_key = ?", (key,)).fetchone()
        return _event(row) if row else None

    def list(self, status: str | None = None, limit: int = 100) -> list[OutboxEvent]:
        """Events in sequence order, optionally of one status."""
        with self._lock:
            if status:
                rows = self._conn.execute(
                    "SELECT * FROM events WHERE status = ? ORDER BY seq LIMIT ?", (status, limit)
                ).fetchall()
            else:
                rows = self._conn.execute("SELECT * FROM events ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [_event(r) for r in rows]

    def iter_all(self, status: str | None = None) -> Iterator[OutboxEvent]:
        """Every event (for export), in sequence order, without loading them all at once."""
        last = 0
        while True:
            with self._lock:
                sql = "SELECT * FROM events WHERE seq > ?" + (" AND status = ?" if status else "")
                params: tuple[Any, ...] = (last, status) if status else (last,)
                rows = self._conn.execute(sql + " ORDER BY seq LIMIT 500", params).fetchall()
            if not rows:
                return
            for r in rows:
                yield _event(r)
            last = rows[-1]["seq"]

    # -- attachments and the completion files behind events ------------------------------------

    def pending_attachments(self, key: str) -> list[dict[str, Any]]:
        """Attachments of event ``key`` the server has not acknowledged yet."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM attachments WHERE idempotency_key = ? AND uploaded_at IS NULL ORDER BY name", (key,)
            ).fetchall()
        return [dict(r) for r in rows]

    def keys_with_pending_attachments(self, keys: list[str]) -> set[str]:
        """Which of ``keys`` still have attachments to upload (one query for a whole batch)."""
        if not keys:
            return set()
        marks = ",".join("?" * len(keys))
        with self._lock:
            rows = self._conn.execute(
                f"SELECT DISTINCT idempotency_key FROM attachments WHERE uploaded_at IS NULL"
                f" AND idempotency_key IN ({marks})",
                keys,
            ).fetchall()
        return {r[0] for r in rows}

    def mark_attachment_uploaded(self, key: str, name: str) -> None:
        self._write(
            "UPDATE attachments SET uploaded_at = ? WHERE idempotency_key = ? AND name = ?",
            (_iso(utcnow()), key, name),
        )

    def attachment_paths_in_use(self) -> set[str]:
        """Paths still needed: attachments not uploaded yet."""
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT path FROM attachments WHERE uploaded_at IS NULL")}

    def set_completion_file(self, key: str, path: Path) -> None:
        """Where the completion file behind event ``key`` lies now (archive, then maybe quarantine)."""
        self._write(
            "INSERT INTO completion_files (idempotency_key, path) VALUES (?, ?)"
            " ON CONFLICT(idempotency_key) DO UPDATE SET path = excluded.path",
            (key, str(path)),
        )

    def completion_file(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM completion_files WHERE idempotency_key = ?", (key,)).fetchone()
        return dict(row) if row else None

    def mark_completion_quarantined(self, key: str, path: Path) -> None:
        self._write(
            "UPDATE completion_files SET path = ?, quarantined_at = ? WHERE idempotency_key = ?",
            (str(path), _iso(utcnow()), key),
        )

    # -- station metadata: server clock offset, status snapshot ---------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        self._write(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def get_meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def clock_offset(self) -> float | None:
        """Server time minus local time, in seconds, as last measured by a heartbeat."""
        return self.get_meta("server_clock_offset")

    # -- label templates cached for offline printing --------------------------------------------

    def replace_templates(self, templates: list[dict[str, Any]]) -> None:
        now = _iso(utcnow())
        with self._transaction("outbox full while caching templates: {exc}") as conn:
            conn.execute("DELETE FROM label_templates")
            conn.executemany(
                "INSERT INTO label_templates (name, template, synced_at) VALUES (?, ?, ?)",
                [(t["name"], json.dumps(t), now) for t in templates],
            )

    def template(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT template FROM label_templates WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def template_names(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT name FROM label_templates ORDER BY name")]


def _restamped(ev: OutboxEvent) -> dict[str, Any]:
    """``ev``'s body without the station time the server refused, which is kept beside the data."""
    body = dict(ev.body)
    refusal = (ev.last_error or "")[:500]
    if ev.kind == PROCESS_RECORD:
        data = dict(body.get("data") or {})
        if body.get("recorded_at") is not None:
            data["original_recorded_at"] = body.pop("recorded_at")
        body.pop("recorded_at", None)
        data["original_recorded_at_refused"] = refusal
        body["data"] = data
        return body
    payload = dict(body.get("payload") or {})
    for name in ("recorded_at", "station_time"):
        if payload.get(name) is not None:
            payload[f"original_{name}"] = payload.pop(name)
        payload.pop(name, None)
    payload["original_time_refused"] = refusal
    body["payload"] = payload
    return body


def _event(row: sqlite3.Row) -> OutboxEvent:
    return OutboxEvent(
        seq=row["seq"],
        idempotency_key=row["idempotency_key"],
        kind=row["kind"],
        body=json.loads(row["body"]),
        source=row["source"],
        created_at=row["created_at"],
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
    )
