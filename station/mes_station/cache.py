"""The station's offline cache: open LOTs of its line, their units, routing, defect lists, firmware
images, and the credentials of workers who logged in here — what the agent answers from while the
server is unreachable. A SQLite file beside the outbox (``station-cache.sqlite3``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mes_station.errors import LoginError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lots (
    lot_number TEXT PRIMARY KEY, product TEXT NOT NULL, status TEXT NOT NULL, quantity INTEGER NOT NULL,
    completed_processes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS units (
    serial_number TEXT PRIMARY KEY, lot_number TEXT NOT NULL, status TEXT NOT NULL,
    completed_processes TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS units_lot ON units (lot_number);
CREATE TABLE IF NOT EXISTS processes (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, sequence INTEGER NOT NULL, defect_codes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stage_lots (
    lot_number TEXT PRIMARY KEY, product TEXT NOT NULL, status TEXT NOT NULL, quantity INTEGER NOT NULL,
    completed_processes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stage_units (
    serial_number TEXT PRIMARY KEY, lot_number TEXT NOT NULL, status TEXT NOT NULL,
    completed_processes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS firmware_images (
    id INTEGER PRIMARY KEY, product TEXT, image TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS credentials (
    username_key TEXT PRIMARY KEY, username TEXT NOT NULL, role TEXT, salt BLOB NOT NULL, hash BLOB NOT NULL,
    n INTEGER NOT NULL, r INTEGER NOT NULL, p INTEGER NOT NULL, logged_in_at TEXT NOT NULL
);
"""

#: scrypt cost (RFC 7914): N = 2**15, r = 8, p = 1 takes about 0.1 s and 32 MiB on an office PC, so
#: a stolen cache file costs an attacker that much per guess and per worker (each has its own salt)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1


def username_key(username: str) -> str:
    """The form a login matches on: NFKC-normalised, case-folded, trimmed (as the kernel's)."""
    return unicodedata.normalize("NFKC", username).casefold().strip()


def _lot_rows(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            lot["lot_number"],
            lot.get("product") or "",
            lot.get("status") or "created",
            int(lot.get("quantity") or 0),
            json.dumps(lot.get("completed_processes") or []),
        )
        for lot in answer.get("lots", [])
    ]


def _unit_rows(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            unit["serial_number"],
            unit["lot_number"],
            unit.get("status") or "in_progress",
            json.dumps(unit.get("completed_processes") or []),
        )
        for unit in answer.get("units", [])
    ]


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


class StationCache:
    """Thread-safe reader/writer of the cache file. Every sync replaces a whole table set in one
    transaction, so a reader sees the old snapshot or the new one, never half of each."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        try:
            os.chmod(self.path, 0o600)  # credentials: readable by the station's account only
        except OSError:
            pass

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _meta(self, key: str, default: Any = None) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def _set_meta(self, key: str, value: Any) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )

    def _transaction(self, work) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                work()
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- sync -----------------------------------------------------------------------------------

    def replace_snapshot(self, snapshot: dict[str, Any]) -> None:
        """Store ``GET /stations/me/cache``'s full answer (or the last page of a paged one, with the
        pages kept by :meth:`stage_page` before it), replacing the previous snapshot (and its
        ``cursor``, from which the next sync asks for changes only). One transaction."""

        def work() -> None:
            for table in ("lots", "units", "processes"):
                self._conn.execute(f"DELETE FROM {table}")
            if self._meta("next_page"):  # the pages before this last one
                self._conn.execute("INSERT INTO lots SELECT * FROM stage_lots")
                self._conn.execute("INSERT INTO units SELECT * FROM stage_units")
            self._clear_stage()
            self._store(snapshot)
            self._set_meta("truncated", bool(snapshot.get("truncated")))

        self._transaction(work)

    def stage_page(self, page: dict[str, Any], *, first: bool) -> None:
        """Keep one page of a paged full snapshot (one with a ``next_page``) beside the cache, and
        its ``next_page`` with it in one transaction: a sync cut off midway resumes from the page
        after the last one kept (:meth:`next_page`), and no page is stored twice. Readers go on
        seeing the previous snapshot until :meth:`replace_snapshot` stores the last page. ``first``:
        this page starts a new snapshot (pages kept from an abandoned one are dropped)."""

        def work() -> None:
            if first:
                self._clear_stage()
            self._conn.executemany("INSERT OR REPLACE INTO stage_lots VALUES (?, ?, ?, ?, ?)", _lot_rows(page))
            self._conn.executemany("INSERT OR REPLACE INTO stage_units VALUES (?, ?, ?, ?)", _unit_rows(page))
            self._set_meta("next_page", page["next_page"])

        self._transaction(work)

    def next_page(self) -> str | None:
        """The page a paged full snapshot continues from (it was cut off midway); None: none pending."""
        with self._lock:
            return self._meta("next_page")

    def abandon_pages(self) -> None:
        """The server refused the ``next_page`` (``INVALID_CURSOR``): the snapshot starts again."""
        self._transaction(self._clear_stage)

    def _clear_stage(self) -> None:
        self._conn.execute("DELETE FROM stage_lots")
        self._conn.execute("DELETE FROM stage_units")
        self._set_meta("next_page", None)

    def apply_delta(self, delta: dict[str, Any]) -> None:
        """Apply a ``"mode": "delta"`` answer: its LOTs and units replace the cached ones of the same
        number, its ``removed_lots`` go with their units, its routing replaces the cached one; then
        its ``cursor`` is the next sync's. One transaction: a reader sees before or after, never half."""

        def work() -> None:
            self._clear_stage()
            removed = [(str(n),) for n in delta.get("removed_lots") or []]
            self._conn.executemany("DELETE FROM units WHERE lot_number = ?", removed)
            self._conn.executemany("DELETE FROM lots WHERE lot_number = ?", removed)
            self._conn.execute("DELETE FROM processes")
            self._store(delta)

        self._transaction(work)

    def cursor(self) -> str | None:
        """The cursor of the last sync (the next one asks for changes since it); None: sync in full."""
        with self._lock:
            return self._meta("cursor")

    def forget_cursor(self) -> None:
        """The server refused the cursor (``INVALID_CURSOR``): the next sync is a full one."""
        with self._lock:
            self._set_meta("cursor", None)

    def _store(self, answer: dict[str, Any]) -> None:
        self._conn.executemany("INSERT OR REPLACE INTO lots VALUES (?, ?, ?, ?, ?)", _lot_rows(answer))
        self._conn.executemany("INSERT OR REPLACE INTO units VALUES (?, ?, ?, ?)", _unit_rows(answer))
        self._conn.executemany(
            "INSERT OR REPLACE INTO processes VALUES (?, ?, ?, ?)",
            [
                (p["id"], p.get("name") or "", int(p.get("sequence") or 0), json.dumps(p.get("defect_codes") or []))
                for p in answer.get("processes", [])
            ],
        )
        self._set_meta("synced_at", answer.get("synced_at") or datetime.now(UTC).isoformat())
        self._set_meta("cursor", answer.get("cursor"))
        self._set_meta("sync_mode", answer.get("mode") or "full")

    def replace_firmware(self, images: list[dict[str, Any]]) -> None:
        """Store the firmware images the server lists (``GET /firmware/images``)."""

        def work() -> None:
            self._conn.execute("DELETE FROM firmware_images")
            self._conn.executemany(
                "INSERT OR REPLACE INTO firmware_images VALUES (?, ?, ?)",
                [(int(i["id"]), i.get("product"), json.dumps(i)) for i in images if str(i.get("id", "")).isdigit()],
            )
            self._set_meta("firmware_synced_at", datetime.now(UTC).isoformat())

        self._transaction(work)

    def status(self) -> dict[str, Any]:
        """``{"synced_at": iso | None, "sync_mode": "full" | "delta" | None, "lots": n, "units": n}``
        for ``agent.status()["cache"]``."""
        with self._lock:
            return {
                "synced_at": self._meta("synced_at"),
                "sync_mode": self._meta("sync_mode"),
                "lots": self._conn.execute("SELECT COUNT(*) FROM lots").fetchone()[0],
                "units": self._conn.execute("SELECT COUNT(*) FROM units").fetchone()[0],
            }

    # -- answers --------------------------------------------------------------------------------

    def processes(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM processes ORDER BY sequence, id").fetchall()
        return [
            {"id": r["id"], "name": r["name"], "sequence": r["sequence"], "defect_codes": json.loads(r["defect_codes"])}
            for r in rows
        ]

    def defect_codes(self, process_id: str) -> list[dict[str, str]] | None:
        """The process's cached defect list; None when the process is not cached."""
        with self._lock:
            row = self._conn.execute("SELECT defect_codes FROM processes WHERE id = ?", (process_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def firmware_images(self, product: str | None) -> list[dict[str, Any]]:
        with self._lock:
            if product:
                rows = self._conn.execute(
                    "SELECT image FROM firmware_images WHERE product = ? ORDER BY id", (product,)
                ).fetchall()
            else:
                rows = self._conn.execute("SELECT image FROM firmware_images ORDER BY id").fetchall()
        return [json.loads(r[0]) for r in rows]

    def unit(self, serial_number: str) -> dict[str, Any] | None:
        """The cached unit; its ``completed_processes`` include its LOT's (a pass for the whole LOT)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT units.*, lots.completed_processes AS lot_completed FROM units"
                " LEFT JOIN lots ON lots.lot_number = units.lot_number WHERE serial_number = ?",
                (serial_number,),
            ).fetchone()
        if row is None:
            return None
        completed = set(json.loads(row["completed_processes"])) | set(json.loads(row["lot_completed"] or "[]"))
        return {
            "serial_number": row["serial_number"],
            "lot_number": row["lot_number"],
            "status": row["status"],
            "completed_processes": sorted(completed),
        }

    def lot(self, lot_number: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM lots WHERE lot_number = ?", (lot_number,)).fetchone()
            if row is None:
                return None
            units = self._conn.execute("SELECT COUNT(*) FROM units WHERE lot_number = ?", (lot_number,)).fetchone()[0]
        return {
            "lot_number": row["lot_number"],
            "product": row["product"],
            "status": row["status"],
            "quantity": row["quantity"],
            "units": units,
            "completed_processes": json.loads(row["completed_processes"]),
        }

    # -- worker credentials for offline login ---------------------------------------------------

    def remember_login(self, username: str, password: str, *, role: str | None) -> None:
        """Keep a scrypt hash of a password the server just accepted (never the password itself)."""
        salt = os.urandom(16)
        digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO credentials VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    username_key(username),
                    username,
                    role,
                    salt,
                    digest,
                    SCRYPT_N,
                    SCRYPT_R,
                    SCRYPT_P,
                    datetime.now(UTC).isoformat(),
                ),
            )

    def forget_login(self, username: str) -> None:
        """The server refused this worker's password: its cached credential must not outlive that."""
        with self._lock:
            self._conn.execute("DELETE FROM credentials WHERE username_key = ?", (username_key(username),))

    def check_login(
        self, username: str, password: str, *, max_age_days: float, now: datetime | None = None
    ) -> dict[str, Any]:
        """``{"username", "role", "logged_in_at"}`` when ``password`` matches the worker's cached
        credential younger than ``max_age_days``; LoginError ``OFFLINE_LOGIN_UNAVAILABLE`` (none, or
        expired) or ``INVALID_CREDENTIALS`` otherwise."""
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM credentials WHERE username_key = ?", (username_key(username),)
            ).fetchone()
        if row is None:
            raise LoginError(
                "OFFLINE_LOGIN_UNAVAILABLE",
                f"The server is unreachable (offline) and {username} has not logged in at this station before: "
                "log in once while the server is reachable.",
            )
        logged_in = datetime.fromisoformat(row["logged_in_at"])
        if (now or datetime.now(UTC)) - logged_in > timedelta(days=max_age_days):
            raise LoginError(
                "OFFLINE_LOGIN_UNAVAILABLE",
                f"The server is unreachable (offline) and {username}'s last login here is older than "
                f"{max_age_days:g} days: log in once while the server is reachable.",
            )
        digest = _scrypt(password, row["salt"], row["n"], row["r"], row["p"])
        if not hmac.compare_digest(digest, row["hash"]):
            raise LoginError("INVALID_CREDENTIALS", "Wrong user name or password.")
        return {"username": row["username"], "role": row["role"], "logged_in_at": row["logged_in_at"]}
