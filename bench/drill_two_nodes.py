"""Failover drill: two kernel nodes behind nginx (scripts/two-nodes.sh), a bounded load of process
records from station-like clients that retry with their idempotency keys and of reads (GET
/stations/me/config) beside them; the node of the elected audit sealer is frozen (SIGSTOP: it
accepts connections and never answers), thawed, then the node of the sealer elected meanwhile is
killed (SIGKILL).

Prints acknowledged vs stored records (nothing acknowledged lost, nothing doubled), the longest
record and read request during each fault, which node held the audit sealer's election lock over
time (one holder at a time; taken over on the freeze and on the kill), and the audit chain check
(one chain sealed across both nodes).

    .venv/bin/python bench/drill_two_nodes.py --database-url postgresql+asyncpg://postgres@127.0.0.1/postgres \
        --redis-url redis://127.0.0.1:6379/14 [--clients 8 --records-per-client 150 --freeze-seconds 12]

The database URL names a server's maintenance database: the drill creates its own database beside it
and drops it at the end. Correctness is asserted by tests/test_deploy_two_nodes.py; speed is only printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SECRET = "drill-secret-key-0123456789abcdef-0123456789"


@dataclass
class Attempt:
    key: str
    started: float
    ended: float
    status: int  # 0 = no answer (connection error or client timeout)


@dataclass
class SealerSample:
    at: float
    holders: list[str]  # node names ("node1", "node2") of sessions holding the sealer's lock


@dataclass
class DrillResult:
    acknowledged: int = 0
    stored_rows: int = 0
    stored_keys: int = 0
    lost: list[str] = field(default_factory=list)  # acknowledged, not stored
    doubled: list[str] = field(default_factory=list)  # stored more than once
    unacknowledged: list[str] = field(default_factory=list)  # never acknowledged within the deadline
    attempts: list[Attempt] = field(default_factory=list)
    reads: list[Attempt] = field(default_factory=list)  # GET /stations/me/config
    read_failures: Counter = field(default_factory=Counter)  # answer body -> how many
    no_answer: Counter = field(default_factory=Counter)  # client-side error -> how many (status 0)
    sealer: list[SealerSample] = field(default_factory=list)
    frozen_node: str = ""
    killed_node: str = ""
    freeze_window: tuple[float, float] = (0.0, 0.0)
    kill_window: tuple[float, float] = (0.0, 0.0)
    audit_ok: bool = False
    audit_detail: str = ""
    served_by_node: dict[str, int] = field(default_factory=dict)

    def longest_during(self, window: tuple[float, float], *, reads: bool = False) -> float:
        start, end = window
        attempts = self.reads if reads else self.attempts
        overlapping = [a.ended - a.started for a in attempts if a.ended >= start and a.started <= end]
        return max(overlapping, default=0.0)

    def sealer_nodes(self, window: tuple[float, float]) -> list[str]:
        """The nodes that held the sealer's lock, in order, between ``window``'s bounds."""
        seen: list[str] = []
        for sample in self.sealer:
            if window[0] <= sample.at <= window[1]:
                for node in sample.holders:
                    if not seen or seen[-1] != node:
                        seen.append(node)
        return seen

    def sealer_story(self) -> str:
        if not self.sealer:
            return "not sampled"
        t0 = self.sealer[0].at
        changes, last = [], None
        for sample in self.sealer:
            now = "+".join(sample.holders) or "nobody"
            if now != last:
                changes.append(f"{now} at {sample.at - t0:.1f}s")
                last = now
        return " -> ".join(changes)

    def report(self) -> str:
        failed = sum(1 for a in self.attempts if a.status not in (200, 201))
        statuses = Counter(a.status for a in self.attempts)
        read_statuses = Counter(a.status for a in self.reads)
        t0 = self.sealer[0].at if self.sealer else 0.0
        lines = [
            f"acknowledged: {self.acknowledged}   stored: {self.stored_rows} rows / {self.stored_keys} keys",
            f"lost (acknowledged, not stored): {len(self.lost)}   doubled: {len(self.doubled)}   "
            f"never acknowledged: {len(self.unacknowledged)}",
            f"requests: {len(self.attempts)}   answers the client had to retry: {failed}   "
            f"by status: {dict(sorted(statuses.items()))} (0 = no answer)"
            + "".join(f"\n    no answer: {n} x {what}" for what, n in self.no_answer.most_common(3)),
            f"reads: {len(self.reads)}   by status: {dict(sorted(read_statuses.items()))}"
            + "".join(f"\n    {n} x {body}" for body, n in self.read_failures.most_common(3))
            + (
                f"\n    unanswered reads started between {min(bad) - t0:.1f}s and {max(bad) - t0:.1f}s"
                if (bad := [a.started for a in self.reads if a.status != 200])
                else ""
            ),
            f"{self.frozen_node} frozen {self.freeze_window[0] - t0:.1f}-{self.freeze_window[1] - t0:.1f}s: "
            f"longest record request {self.longest_during(self.freeze_window):.2f} s, "
            f"longest read {self.longest_during(self.freeze_window, reads=True):.2f} s",
            f"{self.killed_node} killed at {self.kill_window[0] - t0:.1f}s: "
            f"longest record request {self.longest_during(self.kill_window):.2f} s, "
            f"longest read {self.longest_during(self.kill_window, reads=True):.2f} s",
            f"longest request overall: {max((a.ended - a.started for a in self.attempts), default=0):.2f} s",
            f"audit sealer (holder of the election lock): {self.sealer_story()}",
            f"audit chain across both nodes: {'ok' if self.audit_ok else 'BROKEN'} ({self.audit_detail})",
        ]
        return "\n".join(lines)


def seed_station(database_url: str, *, line: str, station: str, lot: str) -> str:
    """A line, a station on it with its machine token (as the station agent sends records), process
    ASSY-10 and an in-progress LOT, in a migrated database. Returns the station token."""

    async def make() -> str:
        from mes_kernel.db.base import make_engine, make_sessionmaker
        from mes_kernel.db.models import Line, Lot, Process, Station, StationToken
        from mes_kernel.security import STATION_TOKEN_PREFIX, new_opaque_token, token_digest
        from mes_kernel.settings import Settings

        token = new_opaque_token(STATION_TOKEN_PREFIX)
        engine = make_engine(Settings(database_url=database_url, _env_file=None))
        try:
            async with make_sessionmaker(engine)() as session:
                row = Line(code=line, name=f"{line} (drill)", config={})
                session.add_all(
                    [
                        row,
                        Process(id="ASSY-10", name="Assembly", sequence=10),
                        Lot(lot_number=lot, product="P", status="in_progress"),
                    ]
                )
                await session.flush()
                place = Station(code=station, name=f"{station} (drill)", line_id=row.id, heartbeat={})
                session.add(place)
                await session.flush()
                session.add(StationToken(station_id=place.id, name="drill", token_hash=token_digest(token)))
                await session.commit()
        finally:
            await engine.dispose()
        return token

    return asyncio.run(make())


def _station(database_url: str) -> dict[str, str]:
    token = seed_station(database_url, line="LINE-D", station="ST-D1", lot="LOT-DRILL")
    return {"Authorization": f"Bearer {token}"}


def _station_client(
    base: str,
    headers: dict,
    keys: list[str],
    result: DrillResult,
    lock: threading.Lock,
    acked: set[str],
    deadline: float,
    pace: float,
) -> None:
    """Send each record until acknowledged, retrying with the same key (as the station outbox does)."""
    with httpx.Client(base_url=base, headers=headers, verify=False, timeout=40) as http:
        for key in keys:
            delay = 0.2
            body = {
                "idempotency_key": key,
                "lot_number": "LOT-DRILL",
                "process_id": "ASSY-10",
                "worker_id": "W-1",
                "result": "pass",
                "data": {"drill": True},
            }
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    r = http.post("/api/v1/process-records", json=body)
                    status = r.status_code
                except httpx.HTTPError as exc:
                    status = 0
                    with lock:
                        result.no_answer[f"{type(exc).__name__}: {exc}"[:160]] += 1
                ended = time.monotonic()
                with lock:
                    result.attempts.append(Attempt(key, started, ended, status))
                    if status in (200, 201):
                        acked.add(key)
                if status in (200, 201):
                    break
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            time.sleep(pace)


def _reader(base: str, headers: dict, result: DrillResult, lock: threading.Lock, done: threading.Event) -> None:
    """Read the station's configuration over and over (as a station following its line does)."""
    with httpx.Client(base_url=base, headers=headers, verify=False, timeout=40) as http:
        while not done.is_set():
            started = time.monotonic()
            try:
                answer = http.get("/api/v1/stations/me/config")
                status = answer.status_code
                if status != 200:
                    with lock:
                        result.read_failures[answer.text[:160]] += 1
            except httpx.HTTPError as exc:
                status = 0
                with lock:
                    result.no_answer[f"{type(exc).__name__}: {exc}"[:160]] += 1
            with lock:
                result.reads.append(Attempt("read", started, time.monotonic(), status))
            done.wait(0.1)


def _sealer_holders(database_url: str, folder: Path) -> list[str]:
    """Which nodes hold the audit sealer's election lock now (from pg_locks and the sealer session's
    application_name, "mes-audit-sealer <host> pid <worker pid>", mapped to the node's process group)."""
    import re

    import asyncpg

    from mes_kernel.audit_sealer import SEALER_LOCK_KEY
    from mes_kernel.testing.fixtures import _sync_pg

    async def ask() -> list[str]:
        conn = await asyncpg.connect(_sync_pg(database_url), timeout=10)
        try:
            rows = await conn.fetch(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND ((l.classid::bigint << 32) | l.objid::bigint) = $1",
                SEALER_LOCK_KEY,
            )
        finally:
            await conn.close()
        return [r[0] for r in rows]

    names = asyncio.run(ask())
    groups = {int((folder / n / "pid").read_text()): n for n in ("node1", "node2") if (folder / n / "pid").exists()}
    holders = []
    for name in names:
        match = re.search(r"pid (\d+)$", name or "")
        try:
            holders.append(groups.get(os.getpgid(int(match.group(1))), name) if match else name)
        except ProcessLookupError:
            holders.append(f"gone ({name})")
    return holders


def _sample_sealer(database_url: str, folder: Path, result: DrillResult, done: threading.Event) -> None:
    while not done.is_set():
        try:
            result.sealer.append(SealerSample(time.monotonic(), _sealer_holders(database_url, folder)))
        except Exception as exc:  # a busy shared server: sample again
            print(f"sealer sample failed ({exc.__class__.__name__})")
        done.wait(0.25)


def _wait_sealer(result: DrillResult, *, other_than: str | None, timeout: float = 60) -> str:
    """The node that holds the sealer's lock (a different one than ``other_than``, if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result.sealer and len(result.sealer[-1].holders) == 1:
            (node,) = result.sealer[-1].holders
            if node in ("node1", "node2") and node != other_than:
                return node
        time.sleep(0.1)
    raise RuntimeError(
        f"no audit sealer elected{' besides ' + other_than if other_than else ''} in {timeout}s: "
        f"{result.sealer_story()}"
    )


def _signal_node(folder: Path, sig: int) -> None:
    pid = int((folder / "pid").read_text())
    os.killpg(pid, sig)  # the node is its own process group: master and workers together


def _count(database_url: str) -> tuple[dict[str, int], tuple[bool, str]]:
    async def run():
        from sqlalchemy import func, select

        from mes_kernel.audit import verify
        from mes_kernel.db.base import make_engine, make_sessionmaker
        from mes_kernel.db.models import ProcessRecord
        from mes_kernel.settings import Settings

        engine = make_engine(Settings(database_url=database_url, _env_file=None))
        try:
            async with make_sessionmaker(engine)() as session:
                rows = (
                    await session.execute(
                        select(ProcessRecord.idempotency_key, func.count()).group_by(ProcessRecord.idempotency_key)
                    )
                ).all()
                checked = await verify(session)
        finally:
            await engine.dispose()
        detail = (
            f"{checked.entries_checked} entries, {checked.seals_checked} seals, "
            f"{checked.unsealed} unsealed{', ' + checked.reason if checked.reason else ''}"
        )
        return {k: n for k, n in rows}, (checked.ok and checked.unsealed == 0, detail)

    return asyncio.run(run())


def run_drill(
    *,
    server_url: str,
    redis_url: str,
    folder: Path,
    clients: int = 8,
    records_per_client: int = 150,
    freeze_seconds: float = 12.0,
    pace: float = 0.05,
    deadline_seconds: float = 300.0,
    rejoin_seconds: float = 11.0,
) -> DrillResult:
    """Run the whole drill against a fresh database created on ``server_url``'s server.

    ``rejoin_seconds``: the kill comes at least this long after the thaw. nginx keeps a node that
    failed out of rotation for its ``fail_timeout`` (10 s), so an earlier kill would be a double
    fault that leaves nginx no node for the rest of those seconds (deploy/README.md); 0 tries it.
    """
    from mes_kernel.migrate import upgrade
    from mes_kernel.settings import Settings
    from mes_kernel.testing.fixtures import _admin_url, _in_thread, _pg_exec

    name = f"mes_drill_{uuid.uuid4().hex[:10]}"
    _in_thread(lambda: _pg_exec(_admin_url(server_url, "postgres"), f'CREATE DATABASE "{name}"'))
    database_url = _admin_url(server_url, name)
    upgrade(Settings(database_url=database_url, _env_file=None))
    headers = _station(database_url)
    script = ROOT / "scripts" / "two-nodes.sh"
    ports = [str(_free_port()) for _ in range(4)]
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "REDIS_NAMESPACE": f"drill{uuid.uuid4().hex[:8]}",
        "SECRET_KEY": SECRET,
        "ENVIRONMENT": "production",
        "WORKERS": "2",
        "FILES_DIR": str(folder / "files"),
        "RATE_LIMIT_PER_MINUTE": "100000",
        "STATION_RATE_LIMIT_PER_MINUTE": "100000",
        "LOG_LEVEL": "WARNING",
        # Small pools: the two nodes share the server with whatever else runs on it (each node sizes its
        # pools against DB_MAX_CONNECTIONS on its own; with N nodes give each 1/N of the server's).
        "DB_POOL_SIZE": "4",
        "DB_MAX_OVERFLOW": "2",
        "AUDIT_SEAL_INTERVAL_SECONDS": "1",
        "AUDIT_SEAL_GRACE_SECONDS": "1",
        # A frozen sealer's session ends after 3 s of silence and another worker is elected.
        "AUDIT_SEALER_LEASE_SECONDS": "3",
    }
    result = DrillResult()
    done = threading.Event()  # stops the readers and the sealer sampler
    try:
        started = subprocess.run(
            ["bash", str(script), "start", str(folder), *ports], env=env, capture_output=True, text=True, timeout=240
        )
        if started.returncode != 0:
            raise RuntimeError(f"two-nodes.sh start failed: {started.stdout}\n{started.stderr}")
        base = f"https://127.0.0.1:{ports[2]}"
        lock, acked = threading.Lock(), set()
        sampler = threading.Thread(target=_sample_sealer, args=(database_url, folder, result, done), daemon=True)
        sampler.start()
        first_sealer = _wait_sealer(result, other_than=None)
        all_keys = [[f"drill-{c:02d}-{i:05d}" for i in range(records_per_client)] for c in range(clients)]
        deadline = time.monotonic() + deadline_seconds
        threads = [
            threading.Thread(target=_station_client, args=(base, headers, keys, result, lock, acked, deadline, pace))
            for keys in all_keys
        ]
        readers = [
            threading.Thread(target=_reader, args=(base, headers, result, lock, done), daemon=True) for _ in range(2)
        ]
        for t in threads + readers:
            t.start()
        total = clients * records_per_client

        def wait_acked(fraction: float) -> None:
            while len(acked) < fraction * total and any(t.is_alive() for t in threads):
                time.sleep(0.05)

        wait_acked(0.2)
        # Freeze the sealer's node: its session goes silent, the lease runs out, the other node's
        # workers elect a sealer among themselves.
        result.frozen_node = first_sealer
        _signal_node(folder / first_sealer, signal.SIGSTOP)
        freeze_start = time.monotonic()
        time.sleep(freeze_seconds)
        _signal_node(folder / first_sealer, signal.SIGCONT)
        result.freeze_window = (freeze_start, time.monotonic())

        wait_acked(0.6)
        time.sleep(max(0.0, result.freeze_window[1] + rejoin_seconds - time.monotonic()))
        # Kill the node of the sealer now in office (the other one, if it took over during the freeze).
        result.killed_node = _wait_sealer(result, other_than=None)
        _signal_node(folder / result.killed_node, signal.SIGKILL)
        kill_start = time.monotonic()
        for t in threads:
            t.join()
        try:
            _wait_sealer(result, other_than=result.killed_node)
        except RuntimeError as exc:
            print(exc)
        result.kill_window = (kill_start, time.monotonic())
        done.set()
        for t in readers + [sampler]:
            t.join()

        result.acknowledged = len(acked)
        every_key = {k for keys in all_keys for k in keys}
        result.unacknowledged = sorted(every_key - acked)
        # The surviving node seals what is left (grace 1 s); wait for it rather than guess a time.
        seal_deadline = time.monotonic() + 60
        while True:
            try:
                stored, (audit_ok, detail) = _count(database_url)
            except Exception as exc:  # a busy shared server ("too many clients"): ask again
                if time.monotonic() > seal_deadline:
                    raise
                print(f"counting failed ({exc.__class__.__name__}); retrying")
                time.sleep(1)
                continue
            if audit_ok or time.monotonic() > seal_deadline:
                break
            time.sleep(0.5)
        result.stored_rows = sum(stored.values())
        result.stored_keys = len(stored)
        result.lost = sorted(acked - set(stored))
        result.doubled = sorted(k for k, n in stored.items() if n > 1)
        result.audit_ok, result.audit_detail = audit_ok, detail
        return result
    finally:
        done.set()
        subprocess.run(["bash", str(script), "stop", str(folder)], capture_output=True, timeout=120)
        _in_thread(
            lambda: _pg_exec(_admin_url(server_url, "postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MES_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("MES_TEST_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--records-per-client", type=int, default=150)
    parser.add_argument("--freeze-seconds", type=float, default=12.0)
    parser.add_argument(
        "--rejoin-seconds", type=float, default=11.0, help="kill at least this long after the thaw (0: a double fault)"
    )
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    import tempfile

    folder = args.folder or Path(tempfile.mkdtemp(prefix="mes-drill-"))
    result = run_drill(
        server_url=args.database_url,
        redis_url=args.redis_url,
        folder=folder,
        clients=args.clients,
        records_per_client=args.records_per_client,
        freeze_seconds=args.freeze_seconds,
        rejoin_seconds=args.rejoin_seconds,
    )
    print(result.report())
    print(f"(logs in {folder})")


if __name__ == "__main__":
    main()
