"""A kernel started before its database stays up: liveness 200, readiness 503 with the reason, one
log line per retry with growing pauses, full service as soon as the database answers.

The real PostgreSQL sits behind a TCP relay that is not listening yet (the database "not up"), and
the real gunicorn (deploy/gunicorn.conf.py, 2 workers) or ``mes serve`` is started against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from tcp_relay import TcpRelay

from mes_kernel.testing.fixtures import PG_URL, _admin_url, _pg_exec

ROOT = Path(__file__).resolve().parents[1]
SECRET = "startup-test-secret-key-0123456789abcdef"

pytestmark = pytest.mark.skipif(not PG_URL, reason="needs MES_TEST_DATABASE_URL (PostgreSQL)")


@contextlib.asynccontextmanager
async def _database_not_up_yet(tmp_path, *, migrated: bool):
    """A fresh database reachable only through a relay that does not listen yet: (relay, url)."""
    name = f"mes_sb_{uuid.uuid4().hex[:10]}"
    await _pg_exec(_admin_url(PG_URL, "postgres"), f'CREATE DATABASE "{name}"')
    if migrated:
        from mes_kernel.migrate import upgrade
        from mes_kernel.settings import Settings

        await asyncio.to_thread(upgrade, Settings(database_url=_admin_url(PG_URL, name), _env_file=None))
    real = urlparse(PG_URL.replace("+asyncpg", ""))
    relay = TcpRelay(real.hostname, real.port or 5432)
    await relay.start()
    await relay.cut()  # the port is known, nothing listens on it: the database is "not up"
    try:
        yield relay, f"postgresql+asyncpg://{real.username}@127.0.0.1:{relay.port}/{name}"
    finally:
        with contextlib.suppress(Exception):
            await relay.cut()
        await _pg_exec(_admin_url(PG_URL, "postgres"), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _Process:
    """A server subprocess whose combined output is read continuously (the pipe never fills)."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc
        self.lines: list[str] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while line := await self.proc.stdout.readline():
            self.lines.append(line.decode(errors="replace"))

    def events(self, name: str) -> list[dict]:
        found = []
        for line in self.lines:
            start = line.find("{")
            if start < 0 or name not in line:
                continue
            with contextlib.suppress(ValueError):
                event = json.loads(line[start:])
                if event.get("event") == name:
                    found.append(event)
        return found

    async def wait_for(self, predicate, what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.proc.returncode is not None:
                pytest.fail(f"server exited ({self.proc.returncode}) while waiting for {what}:\n{self.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {timeout}s:\n{self.output}")
            await asyncio.sleep(0.2)

    @property
    def output(self) -> str:
        return "".join(self.lines)[-6000:]

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.reader, 5)


async def _start(args: list[str], env: dict[str, str], cwd: Path) -> _Process:
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    return _Process(proc)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _status(base: str, path: str) -> tuple[int, dict]:
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            r = await http.get(f"{base}{path}")
            return r.status_code, r.json()
    except (httpx.TransportError, ValueError):
        return 0, {}


async def _until_ready(base: str, server: _Process) -> None:
    """Readiness turns 200 once the start-up steps that follow ``database_ready`` are done."""
    deadline = time.monotonic() + 30
    while (code := (await _status(base, "/api/v1/health/readiness"))[0]) != 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert code == 200, server.output


def _assert_retry_pauses_grow(events: list[dict]) -> None:
    assert events, "no database_unreachable line"
    for event in events:  # each attempt said once, with the pause doubling from 1 s
        assert event["retry_in_seconds"] == min(2 ** (event["attempt"] - 1), 30), event
        assert event["error"], event
    assert max(e["attempt"] for e in events) >= 2


def _pauses_left(server: _Process, *, workers: int) -> float:
    """Seconds until the first of ``workers`` workers ends its current pause (-1 until each logged one)."""
    from datetime import UTC, datetime

    latest: dict[int, dict] = {}
    for event in server.events("database_unreachable"):
        latest[event["pid"]] = event  # in log order: the last one is the current pause
    if len(latest) < workers:
        return -1.0
    now = datetime.now(UTC)
    return min(
        (datetime.fromisoformat(e["timestamp"]) - now).total_seconds() + e["retry_in_seconds"] for e in latest.values()
    )


def _env(db_url: str, tmp_path: Path, port: int) -> dict[str, str]:
    return {
        "DATABASE_URL": db_url,
        "SECRET_KEY": SECRET,
        "ENVIRONMENT": "production",
        "FILES_DIR": str(tmp_path / "files"),
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "true",
        "WORKERS": "2",
        "BIND": f"127.0.0.1:{port}",
        "REDIS_URL": "",
        "BCRYPT_ROUNDS": "4",
        "COLUMNS": "200",  # keep rich from wrapping the lines asserted on
        "NO_COLOR": "1",
    }


async def test_gunicorn_started_before_the_database_waits_then_serves(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    (tmp_path / "prom").mkdir()
    async with _database_not_up_yet(tmp_path, migrated=True) as (relay, db_url):
        server = await _start(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py")],
            {**_env(db_url, tmp_path, port), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")},
            tmp_path,
        )
        try:
            # The database comes up while every worker has at least 5 s of its pause left, so a
            # worker that turns ready at once was woken by a readiness probe, not by its own timer.
            await server.wait_for(lambda: _pauses_left(server, workers=2) >= 5, "both workers in a long pause", 90)
            assert (await _status(base, "/api/v1/health/liveness"))[0] == 200
            code, body = await _status(base, "/api/v1/health/readiness")
            assert code == 503 and body["message"].startswith("waiting for the database: attempt"), body
            assert "Traceback" not in server.output
            _assert_retry_pauses_grow(server.events("database_unreachable"))

            await relay.start()  # the database comes up
            # Readiness follows it at once: the probe finds the database answering and wakes the
            # waiter out of its pause (said by database_ready), rather than waiting the pause out.
            await _until_ready(base, server)
            first_ready = server.events("database_ready")[0]
            assert first_ready["woken_by_readiness"], server.output
            await server.wait_for(lambda: len(server.events("database_ready")) >= 2, "both workers ready")
            code, tree = await _status(base, "/api/v1/health")
            assert code == 200 and tree["status"] in ("UP", "DEGRADED"), tree
        finally:
            await server.stop()


async def test_mes_serve_started_before_the_database_upgrades_and_creates_the_admin_when_it_answers(tmp_path):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    async with _database_not_up_yet(tmp_path, migrated=False) as (relay, db_url):
        server = await _start(
            [str(Path(sys.executable).parent / "mes"), "serve", "--host", "127.0.0.1", "--port", str(port)],
            _env(db_url, tmp_path, port),
            tmp_path,
        )
        try:
            await server.wait_for(lambda: len(server.events("database_unreachable")) >= 2, "retry lines")
            assert "database not reachable yet" in server.output
            assert (await _status(base, "/api/v1/health/liveness"))[0] == 200
            code, body = await _status(base, "/api/v1/health/readiness")
            assert code == 503 and "waiting for the database" in body["message"], body
            _assert_retry_pauses_grow(server.events("database_unreachable"))

            await relay.start()
            await server.wait_for(lambda: "log in as admin with password" in server.output, "the first admin")
            password = re.search(r"log in as admin with password (\S+)", server.output).group(1)
            await server.wait_for(lambda: server.events("database_ready"), "database_ready")
            await _until_ready(base, server)  # the schema was upgraded to head once the database answered
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                login = await http.post("/api/v1/auth/login", json={"username": "admin", "password": password})
                assert login.status_code == 200, login.text
        finally:
            await server.stop()
