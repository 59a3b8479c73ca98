"""Real deploy parts for tests: nginx rendered by deploy/nginx/render.sh (the script users run) over
a self-signed certificate, and kernel nodes under the shipped deploy/gunicorn.conf.py."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
OPENSSL = shutil.which("openssl")
SECRET = "deploy-test-secret-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def self_signed(folder: Path, name: str = "mes.example.com") -> Path:
    """fullchain.pem + privkey.pem in ``folder`` (what certbot would leave there)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            OPENSSL,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
            "-keyout",
            str(folder / "privkey.pem"),
            "-out",
            str(folder / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return folder


@dataclass
class Nginx:
    folder: Path
    http_port: int
    https_port: int
    proc: subprocess.Popen
    syntax_check: str

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_nginx(folder: Path, *, upstreams: list[str], web_root: Path, render_args: tuple[str, ...] = ()) -> Nginx:
    """Render the shipped site with render.sh --standalone (plus ``render_args``) and run nginx on free ports."""
    certs = self_signed(folder / "certs")
    http_port, https_port = free_port(), free_port()
    args = [
        str(DEPLOY / "nginx" / "render.sh"),
        "--listen",
        "127.0.0.1",
        "--http-port",
        str(http_port),
        "--https-port",
        str(https_port),
        "--cert-dir",
        str(certs),
        "--log-dir",
        str(folder),
        "--web-root",
        str(web_root),
        "--acme-root",
        str(folder / "acme"),
        "--standalone",
        str(folder / "site"),
    ]
    for node in upstreams:
        args += ["--upstream", node]
    args += list(render_args)
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=30)
    site = folder / "site"
    base = [NGINX, "-p", str(site), "-e", f"{site}/error.log", "-c", str(site / "nginx.conf")]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([*base, "-g", "daemon off;"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", https_port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"nginx did not start: {proc.stderr.read() if proc.stderr else ''}") from None
            time.sleep(0.05)
    return Nginx(folder=site, http_port=http_port, https_port=https_port, proc=proc, syntax_check=check.stderr)


@dataclass
class Node:
    """One kernel node: gunicorn with its workers, on its own port."""

    port: int
    proc: subprocess.Popen
    log: Path
    env: dict[str, str] = field(repr=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            with_group = os.getpgid(self.proc.pid)
            os.killpg(with_group, signal.SIGCONT)  # a frozen node must be able to hear the signal
            os.killpg(with_group, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(with_group, signal.SIGKILL)
                self.proc.wait()

    def signal_all(self, sig: int) -> None:
        """Signal the master and every worker (its own process group)."""
        os.killpg(os.getpgid(self.proc.pid), sig)


def start_node(
    folder: Path, *, database_url: str, redis_url: str | None, extra: dict[str, str] | None = None, workers: int = 2
) -> Node:
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prom").mkdir(exist_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url or "",
        "REDIS_NAMESPACE": f"dk{uuid.uuid4().hex[:8]}",
        "SECRET_KEY": SECRET,
        "ENVIRONMENT": "production",
        "BIND": f"127.0.0.1:{port}",
        "WORKERS": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "prom"),
        "FILES_DIR": str(folder / "files"),
        "RATE_LIMIT_PER_MINUTE": "100000",
        "STATION_RATE_LIMIT_PER_MINUTE": "100000",
        "LOG_LEVEL": "WARNING",
        "BCRYPT_ROUNDS": "4",
        "DB_POOL_SIZE": "4",  # the test server is shared with other test runs
        "DB_MAX_OVERFLOW": "2",
        **(extra or {}),
    }
    log = folder / "gunicorn.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY / "gunicorn.conf.py")],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Node(port=port, proc=proc, log=log, env=env)


def wait_ready(node: Node, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{node.base}/api/v1/health/readiness", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if node.proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {node.log.read_text()[-4000:]}")
        time.sleep(0.3)
    raise RuntimeError(f"gunicorn did not become ready: {node.log.read_text()[-4000:]}")


@contextmanager
def kernel_node(
    folder: Path, *, extra: dict[str, str] | None = None, workers: int = 2, timeout: float = 90.0
) -> Iterator[tuple[Node, str]]:
    """A migrated PostgreSQL database of its own and one kernel node on it, ready: ``(node, db_url)``.

    The node is stopped and the database dropped on the way out. Needs ``MES_TEST_DATABASE_URL`` and
    ``MES_TEST_REDIS_URL`` (the caller skips without them)."""
    from mes_kernel.migrate import upgrade
    from mes_kernel.settings import Settings
    from mes_kernel.testing.fixtures import PG_URL, REDIS_URL, _admin_url, _in_thread, _pg_exec

    assert PG_URL and REDIS_URL, "kernel_node needs MES_TEST_DATABASE_URL and MES_TEST_REDIS_URL"
    name = f"mes_node_{uuid.uuid4().hex[:10]}"
    admin = _admin_url(PG_URL, "postgres")
    _in_thread(lambda: _pg_exec(admin, f'CREATE DATABASE "{name}"'))
    db_url = _admin_url(PG_URL, name)
    node = None
    try:
        upgrade(Settings(database_url=db_url, _env_file=None))
        node = start_node(folder, database_url=db_url, redis_url=REDIS_URL, extra=extra, workers=workers)
        wait_ready(node, timeout)
        yield node, db_url
    finally:
        if node is not None:
            node.stop()
        _in_thread(lambda: _pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def admin_token(uid: int = 1, role: str = "admin") -> dict[str, str]:
    from mes_kernel.security import create_access_token

    token = create_access_token(subject="ops", role=role, uid=uid, secret=SECRET, minutes=30)
    return {"Authorization": f"Bearer {token}"}


async def seed_kernel_db(db_url: str) -> tuple[str, int]:
    """An admin user, line LINE-A with station ST-01 and its machine token, process ASSY-10, LOT-NGX:
    (station token, admin user id)."""
    from mes_kernel.db.base import make_engine, make_sessionmaker
    from mes_kernel.db.models import Line, Lot, Process, Station, StationToken, User
    from mes_kernel.security import STATION_TOKEN_PREFIX, hash_password, new_opaque_token, token_digest
    from mes_kernel.settings import Settings

    engine = make_engine(Settings(database_url=db_url, _env_file=None))
    token = new_opaque_token(STATION_TOKEN_PREFIX)
    try:
        async with make_sessionmaker(engine)() as session:
            user = User(username="ops", role="admin", full_name="Ops", password_hash=hash_password("x" * 12, 4))
            line = Line(code="LINE-A", name="Line A", config={})
            session.add_all(
                [
                    user,
                    line,
                    Process(id="ASSY-10", name="Assembly", sequence=10),
                    Lot(lot_number="LOT-NGX", product="P", status="in_progress"),
                ]
            )
            await session.flush()
            station = Station(code="ST-01", name="Station 1", line_id=line.id, heartbeat={})
            session.add(station)
            await session.flush()
            session.add(StationToken(station_id=station.id, name="test", token_hash=token_digest(token)))
            await session.commit()
            return token, user.id
    finally:
        await engine.dispose()
