"""Fault drill (issue 8): the kernel under real gunicorn (2 workers, deploy/gunicorn.conf.py) takes a
bounded load of process records from station-like clients while its Redis goes away for 15 s, then its
PostgreSQL for 10 s, then one gunicorn worker is killed (SIGKILL; the arbiter starts another).

PostgreSQL and Redis are reached THROUGH TCP relays (tests/tcp_relay.py) run by this script:
"stopping" a server means cutting every relayed connection and closing the relay's port, and
bringing it back means listening again on the same port. The machine's real servers are never touched.

The clients behave like the station agent's outbox: each produces records at its share of --rate, keeps
them in a backlog, sends them one at a time and retries the same record with the same idempotency key
on no answer (connection error, client timeout), 5xx, 401/403/408/425/429 — honouring Retry-After —
with a backoff of 0.2 s doubling to 2 s. After --duration they stop producing and drain their backlog
(at most --drain seconds).

Prints, per phase (steady → Redis away → steady → PostgreSQL away → steady → worker killed → steady →
drain): the statuses seen (counts by HTTP status and error code; 0 = no answer), the longest request,
the oldest record acknowledged (seconds from its production to its acknowledgement: how far the
stations fell behind), and for each fault the time from its end (for the kill: the kill itself) to
the first 2xx answer, to the first readiness 200 (GET /api/v1/health/readiness polled every 0.25 s)
and to the last record acknowledged 1 s or more after its production (the stations caught up).
Then acknowledged vs stored (rows counted by idempotency key in the database, read directly, not
through the relay), lost (acknowledged, not stored) and doubled (stored more than once; the unique
key should make it impossible).

Exit status: 0 when nothing acknowledged is lost and nothing is doubled, 1 otherwise, 2 when the
drill could not start.

    /work/wt/integ/.venv/bin/python bench/drill_faults.py --duration 60
    .venv/bin/python bench/drill_faults.py --duration 90 --rate 30 --clients 10 \\
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres --redis-url redis://127.0.0.1:6379/14

The database URL names a server's maintenance database: the drill creates its own database beside it
and drops it at the end; its Redis keys live under a private namespace, deleted at the end. Traffic
goes to 127.0.0.1 only; the run is bounded by --duration + --drain + start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from drill_two_nodes import seed_station  # noqa: E402  (beside this script)
from tcp_relay import TcpRelay  # noqa: E402

SECRET = "drill-secret-key-0123456789abcdef-0123456789"
READINESS = "/api/v1/health/readiness"
RECORDS = "/api/v1/process-records"
CAUGHT_UP = 1.0  # seconds: a station whose records are acknowledged this soon after production has caught up


def retryable(status: int) -> bool:
    """The station agent's rule (station/mes_station/errors.py): no answer, 5xx and 401/403/408/425/429
    are transient; any other answer is final."""
    return status == 0 or status >= 500 or status in (401, 403, 408, 425, 429)


@dataclass
class Attempt:
    key: str
    started: float  # monotonic seconds
    ended: float
    status: int  # 0 = no answer (connection error or client timeout)
    retry_after: float | None = None  # the answer's Retry-After, seconds
    code: str = ""  # the error's stable code (detail.code) of a non-2xx answer

    @property
    def label(self) -> str:
        return f"{self.status} {self.code}" if self.code else str(self.status)


@dataclass
class Phase:
    name: str
    start: float
    end: float
    fault: bool = False  # the window of a fault; recovery is measured from `end` (from `start` for a kill)
    recovered_from: float | None = None


@dataclass
class Drill:
    attempts: list[Attempt] = field(default_factory=list)
    probes: list[Attempt] = field(default_factory=list)  # readiness polls
    acked: set[str] = field(default_factory=set)
    rejected: dict[str, int] = field(default_factory=dict)  # key -> final non-2xx status
    ack_ages: list[tuple[float, float]] = field(default_factory=list)  # (acknowledged at, seconds since produced)
    produced: list[str] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    worker_replaced_after: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


# --- relays: an asyncio loop of their own, in a thread ------------------------------------------------


class Relays:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="relays", daemon=True)
        self.thread.start()

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _with_port(url: str, port: int, path: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    netloc = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
    return urlunsplit((parts.scheme, netloc, path if path is not None else parts.path, parts.query, parts.fragment))


# --- the scratch database ---------------------------------------------------------------------------


def prepare_database(database_url: str) -> str:
    """Migrate the scratch database; create a line, a station with its machine token, a process and a LOT.
    Returns the station token."""
    from mes_kernel.migrate import upgrade
    from mes_kernel.settings import Settings

    upgrade(Settings(database_url=database_url, _env_file=None))
    return seed_station(database_url, line="LINE-F", station="ST-F1", lot="LOT-FAULTS")


def count_stored(database_url: str) -> dict[str, int]:
    """Rows of process_records per idempotency key, read straight from the server (not the relay)."""

    async def run() -> dict[str, int]:
        import asyncpg

        conn = await asyncpg.connect(database_url.replace("+asyncpg", ""), timeout=30)
        try:
            rows = await conn.fetch("SELECT idempotency_key, count(*) AS n FROM process_records GROUP BY 1")
        finally:
            await conn.close()
        return {r["idempotency_key"]: r["n"] for r in rows}

    return asyncio.run(run())


# --- load -------------------------------------------------------------------------------------------


def station_client(
    index: int,
    base: str,
    headers: dict,
    drill: Drill,
    interval: float,
    produce_until: float,
    drain_until: float,
) -> None:
    """One station: a record every `interval` seconds into its backlog until `produce_until`, sent in
    order, each retried with its idempotency key until acknowledged, finally refused, or `drain_until`."""
    backlog: list[tuple[str, float]] = []  # (idempotency key, produced at)
    produced = 0
    next_due = time.monotonic()
    delay = 0.2
    retry_at = 0.0
    with httpx.Client(base_url=base, headers=headers, timeout=15) as http:
        while True:
            now = time.monotonic()
            while now < produce_until and now >= next_due:
                key = f"fault-{index:02d}-{produced:06d}-{uuid.uuid4().hex[:6]}"
                backlog.append((key, now))
                produced += 1
                with drill.lock:
                    drill.produced.append(key)
                next_due += interval
            if now >= drain_until or (not backlog and now >= produce_until):
                return
            if not backlog or now < retry_at:
                wake = min(next_due if now < produce_until else drain_until, retry_at if backlog else drain_until)
                time.sleep(max(0.005, min(wake - now, 0.25)))
                continue
            key, produced_at = backlog[0]
            body = {
                "idempotency_key": key,
                "lot_number": "LOT-FAULTS",
                "process_id": "ASSY-10",
                "worker_id": f"W-{index}",
                "result": "pass",
                "data": {"drill": "faults"},
            }
            retry_after, code = None, ""
            started = time.monotonic()
            try:
                r = http.post(RECORDS, json=body)
                status = r.status_code
                with contextlib.suppress(TypeError, ValueError):
                    retry_after = float(r.headers.get("Retry-After"))
                if status >= 300:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        code = str(r.json()["detail"]["code"])
            except httpx.HTTPError:
                status = 0
            ended = time.monotonic()
            with drill.lock:
                drill.attempts.append(Attempt(key, started, ended, status, retry_after, code))
                if 200 <= status < 300:
                    drill.acked.add(key)
                    drill.ack_ages.append((ended, ended - produced_at))
                elif not retryable(status):
                    drill.rejected[key] = status
            if 200 <= status < 300 or not retryable(status):
                backlog.pop(0)
                delay = 0.2
                retry_at = 0.0
            else:
                wait = max(delay, min(retry_after or 0.0, 15.0))
                retry_at = ended + wait
                delay = min(delay * 2, 2.0)


def readiness_poller(base: str, drill: Drill, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=5) as http:
        while not stop.is_set():
            started = time.monotonic()
            try:
                status = http.get(READINESS).status_code
            except httpx.HTTPError:
                status = 0
            with drill.lock:
                drill.probes.append(Attempt("", started, time.monotonic(), status))
            stop.wait(0.25)


# --- gunicorn ---------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict, folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(folder / "gunicorn.log", "wb")  # noqa: SIM115 - kept open for the server's life
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py")],
        cwd=folder,
        env={**env, "BIND": f"127.0.0.1:{port}"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(base + READINESS, timeout=2).status_code == 200 and len(workers_of(server.pid)) == 2:
                return server, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_gunicorn(server)
    raise RuntimeError(f"gunicorn did not become ready; see {folder / 'gunicorn.log'}")


def workers_of(master: int) -> list[int]:
    with contextlib.suppress(psutil.Error):
        return sorted(p.pid for p in psutil.Process(master).children())
    return []


def stop_gunicorn(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=40)
    except subprocess.TimeoutExpired:
        for pid in workers_of(server.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        server.kill()
        server.wait(timeout=10)


# --- report -----------------------------------------------------------------------------------------


def phase_of(phases: list[Phase], t: float) -> str:
    for phase in phases:
        if phase.start <= t < phase.end:
            return phase.name
    return phases[-1].name if t >= phases[-1].start else phases[0].name


def report(drill: Drill, stored: dict[str, int]) -> tuple[list[str], bool]:
    lines = []
    by_phase: dict[str, list[Attempt]] = {p.name: [] for p in drill.phases}
    for a in drill.attempts:  # by when the answer came: a request cut by the kill belongs to the kill
        by_phase[phase_of(drill.phases, a.ended)].append(a)
    lines.append(
        f"{'phase':<22}{'s':>6}{'answers':>10}  {'median':>7}  {'longest':>8}  {'oldest':>7}  "
        "statuses (0 = no answer); Retry-After seen"
    )
    oldest: dict[str, float] = {}
    for acked_at, age in drill.ack_ages:
        name = phase_of(drill.phases, acked_at)
        oldest[name] = max(oldest.get(name, 0.0), age)
    for p in drill.phases:
        attempts = by_phase[p.name]
        statuses = ", ".join(f"{label} ×{n}" for label, n in sorted(Counter(a.label for a in attempts).items()))
        longest = max((a.ended - a.started for a in attempts), default=0.0)
        median = statistics.median([a.ended - a.started for a in attempts]) if attempts else 0.0
        waits = sorted({a.retry_after for a in attempts if a.retry_after is not None})
        lines.append(
            f"{p.name:<22}{p.end - p.start:>6.1f}{len(attempts):>10}  {median:>6.2f}s  {longest:>7.2f}s  "
            f"{oldest.get(p.name, 0.0):>6.1f}s  {statuses or '-'}"
            + (f"; Retry-After {', '.join(f'{w:g}' for w in waits)} s" if waits else "")
        )
    lines.append("")
    faults = [p for p in drill.phases if p.fault]
    for i, p in enumerate(faults):
        origin = p.recovered_from if p.recovered_from is not None else p.end
        until = faults[i + 1].start if i + 1 < len(faults) else float("inf")
        window = sorted((at, age) for at, age in drill.ack_ages if origin <= at < until)
        late = [at for at, age in window if age >= CAUGHT_UP]
        if window and window[-1][1] >= CAUGHT_UP:
            caught_up = f"not before the next fault or the end ({window[-1][1]:.1f} s behind)"
        else:
            caught_up = f"{max(late) - origin:.1f} s" if late else "at once"
        first_2xx = min((a.ended for a in drill.attempts if 200 <= a.status < 300 and a.ended >= origin), default=None)
        first_ready = min((a.ended for a in drill.probes if a.status == 200 and a.ended >= origin), default=None)
        during = [a.status for a in drill.probes if p.start <= a.ended < p.end]
        not_ready = sum(1 for s in during if s != 200)

        def fmt(t: float | None, origin: float = origin) -> str:
            return "never" if t is None else f"{t - origin:.2f} s"

        since = "the kill" if p.recovered_from is not None else "its end"
        lines.append(
            f"{p.name}: from {since} to the first 2xx {fmt(first_2xx)}, to readiness 200 {fmt(first_ready)}; "
            f"stations caught up (acknowledged within {CAUGHT_UP:g} s again) {caught_up}; "
            f"readiness during it: {not_ready}/{len(during)} polls not 200 {dict(sorted(Counter(during).items()))}"
        )
    if drill.worker_replaced_after is not None:
        lines.append(f"worker killed: the arbiter had a new worker after {drill.worker_replaced_after:.2f} s")
    else:
        lines.append("worker killed: no replacement worker seen")
    acked = drill.acked
    lost = sorted(acked - set(stored))
    doubled = sorted(k for k, n in stored.items() if n > 1)
    unacked = [k for k in drill.produced if k not in acked and k not in drill.rejected]
    lines += [
        "",
        f"produced: {len(drill.produced)}   acknowledged: {len(acked)}   "
        f"stored: {sum(stored.values())} rows / {len(stored)} keys",
        f"lost (acknowledged, not stored): {len(lost)}   doubled: {len(doubled)}   "
        f"refused (final 4xx): {len(drill.rejected)} {dict(Counter(drill.rejected.values()))}   "
        f"never acknowledged by the drain deadline: {len(unacked)} "
        f"(of which stored: {sum(1 for k in unacked if k in stored)})",
        f"requests: {len(drill.attempts)}   retried answers: "
        f"{sum(1 for a in drill.attempts if retryable(a.status))}   "
        f"longest request overall: {max((a.ended - a.started for a in drill.attempts), default=0):.2f} s",
    ]
    if lost:
        lines.append(f"LOST: {lost[:10]}{' …' if len(lost) > 10 else ''}")
    if doubled:
        lines.append(f"DOUBLED: {doubled[:10]}{' …' if len(doubled) > 10 else ''}")
    return lines, not lost and not doubled


# --- the drill --------------------------------------------------------------------------------------


def run(opts: argparse.Namespace) -> int:
    from mes_kernel.testing.fixtures import _admin_url, _in_thread, _pg_exec

    folder = Path(tempfile.mkdtemp(prefix="mes-drill-faults-"))
    name = f"mes_faults_{uuid.uuid4().hex[:10]}"
    namespace = f"faults{uuid.uuid4().hex[:8]}"
    admin = _admin_url(opts.database_url, "postgres")
    database_url = _admin_url(opts.database_url, name)
    relays = Relays()
    server = None
    stop_probe = threading.Event()
    drill = Drill()
    started_relays: list[TcpRelay] = []
    try:
        _in_thread(lambda: _pg_exec(admin, f'CREATE DATABASE "{name}"'))
        token = prepare_database(database_url)
        pg, rd = urlsplit(database_url), urlsplit(opts.redis_url)
        pg_relay = TcpRelay(pg.hostname or "127.0.0.1", pg.port or 5432)
        redis_relay = TcpRelay(rd.hostname or "127.0.0.1", rd.port or 6379)
        started_relays += [pg_relay, redis_relay]
        pg_port = relays.call(pg_relay.start())
        redis_port = relays.call(redis_relay.start())
        env = {
            **os.environ,
            "DATABASE_URL": _with_port(database_url, pg_port),
            "REDIS_URL": _with_port(opts.redis_url, redis_port),
            "REDIS_NAMESPACE": namespace,
            "SECRET_KEY": SECRET,
            "ENVIRONMENT": "production",
            "WORKERS": "2",
            "FILES_DIR": str(folder / "files"),
            "PROMETHEUS_MULTIPROC_DIR": str(folder / "prom"),
            "RATE_LIMIT_PER_MINUTE": "100000",
            "STATION_RATE_LIMIT_PER_MINUTE": "100000",
            "LOG_LEVEL": "WARNING",
            "DB_POOL_SIZE": "4",
            "DB_MAX_OVERFLOW": "2",
        }
        (folder / "prom").mkdir()
        server, base = start_gunicorn(env, folder)
        print(
            f"kernel {base} (gunicorn master {server.pid}, workers {workers_of(server.pid)}); "
            f"PostgreSQL via relay :{pg_port}, Redis via relay :{redis_port}; logs in {folder}",
            flush=True,
        )

        faults = opts.redis_seconds + opts.pg_seconds + opts.kill_window
        steady = max(3.0, (opts.duration - faults) / 4)
        t0 = time.monotonic()
        produce_until = t0 + 4 * steady + faults
        drain_until = produce_until + opts.drain
        headers = {"Authorization": f"Bearer {token}"}
        interval = opts.clients / opts.rate
        clients = [
            threading.Thread(
                target=station_client,
                args=(i, base, headers, drill, interval, produce_until, drain_until),
                name=f"station-{i}",
            )
            for i in range(opts.clients)
        ]
        probe = threading.Thread(target=readiness_poller, args=(base, drill, stop_probe), name="readiness")
        probe.start()
        for c in clients:
            c.start()

        def phase(name: str, seconds: float, fault: bool = False) -> Phase:
            start = time.monotonic()
            p = Phase(name, start, start + seconds, fault)
            drill.phases.append(p)
            return p

        def wait_until(t: float) -> None:
            while (left := t - time.monotonic()) > 0:
                time.sleep(min(left, 0.2))

        def say(text: str) -> None:
            print(f"[{time.monotonic() - t0:6.1f} s] {text}", flush=True)

        say("steady")
        wait_until(phase("1 steady", steady).end)
        say(f"Redis away for {opts.redis_seconds:g} s")
        relays.call(redis_relay.cut())
        p = phase("2 Redis away", opts.redis_seconds, fault=True)
        wait_until(p.end)
        relays.call(redis_relay.start())
        p.end = time.monotonic()
        say("Redis back; steady")
        wait_until(phase("3 steady", steady).end)
        say(f"PostgreSQL away for {opts.pg_seconds:g} s")
        relays.call(pg_relay.cut())
        p = phase("4 PostgreSQL away", opts.pg_seconds, fault=True)
        wait_until(p.end)
        relays.call(pg_relay.start())
        p.end = time.monotonic()
        say("PostgreSQL back; steady")
        wait_until(phase("5 steady", steady).end)
        before = workers_of(server.pid)
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        p = phase("6 worker killed", opts.kill_window, fault=True)
        p.recovered_from = p.start
        say(f"worker {victim} killed (SIGKILL)")
        while time.monotonic() < p.start + 60:
            now_workers = workers_of(server.pid)
            if len(now_workers) == 2 and victim not in now_workers:
                drill.worker_replaced_after = time.monotonic() - p.start
                break
            time.sleep(0.05)
        wait_until(p.end)
        say("steady")
        wait_until(phase("7 steady", produce_until - time.monotonic()).end)
        say(f"load stopped; draining backlogs (at most {opts.drain:g} s)")
        phase("8 drain", opts.drain)
        for c in clients:
            c.join()
        drill.phases[-1].end = time.monotonic()
        stop_probe.set()
        probe.join()
        say("done")
        stored = count_stored(database_url)
        lines, ok = report(drill, stored)
        print()
        print(
            f"setup: gunicorn 2 workers, {opts.clients} station clients at {opts.rate:g} records/s together, "
            f"phases steady {steady:.1f} s / Redis {opts.redis_seconds:g} s / PostgreSQL {opts.pg_seconds:g} s / "
            f"kill window {opts.kill_window:g} s, {os.cpu_count()} CPUs"
        )
        print("\n".join(lines))
        return 0 if ok else 1
    finally:
        stop_probe.set()
        if server is not None:
            stop_gunicorn(server)
        for relay in started_relays:
            if relay.server is not None and relay.server.is_serving():
                with contextlib.suppress(Exception):
                    relays.call(relay.cut())
        relays.stop()
        shutil.rmtree(folder / "prom", ignore_errors=True)  # metrics files; the log stays
        with contextlib.suppress(Exception):
            _in_thread(lambda: _pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(opts.redis_url)
            for key in client.scan_iter(match=f"*{namespace}*", count=500):
                client.delete(key)
            client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MES_TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"),
        help="a maintenance database of the server; the drill creates and drops its own beside it",
    )
    parser.add_argument("--redis-url", default=os.environ.get("MES_TEST_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--duration", type=float, default=90, help="seconds of load, faults included")
    parser.add_argument("--rate", type=float, default=30, help="records per second produced by all clients")
    parser.add_argument("--clients", type=int, default=10, help="station clients (each sends one request at a time)")
    parser.add_argument("--redis-seconds", type=float, default=15)
    parser.add_argument("--pg-seconds", type=float, default=10)
    parser.add_argument("--kill-window", type=float, default=5, help="seconds counted as the worker-kill phase")
    parser.add_argument("--drain", type=float, default=60, help="at most this long to drain backlogs at the end")
    opts = parser.parse_args()
    try:
        return run(opts)
    except RuntimeError as exc:
        print(f"drill could not run: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
