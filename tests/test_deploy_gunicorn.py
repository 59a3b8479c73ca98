"""deploy/gunicorn.conf.py with the real kernel app: workers, multiprocess metrics, child_exit, cleanup."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "deploy" / "gunicorn.conf.py"
BIN = Path(sys.executable).parent
GUNICORN = BIN / "gunicorn"

pytestmark = pytest.mark.skipif(not GUNICORN.exists(), reason="gunicorn is not installed in this environment")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "WORKERS", "BIND")}
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'mes.db'}",
        REDIS_URL="",
        SECRET_KEY="deploy-test-secret-key-long-enough-0123456789",
        ENVIRONMENT="development",
        FILES_DIR=str(tmp_path / "files"),
        RATE_LIMIT_PER_MINUTE="100000",
        LOG_LEVEL="warning",
        TMPDIR=str(tmp_path),
    )
    env.update(extra)
    return env


def _config_values(**env: str) -> dict:
    """The settings the config file computes, read in a fresh interpreter with ``env``."""
    code = (
        "import json, runpy, sys; c = runpy.run_path(sys.argv[1]); "
        "print(json.dumps({k: c[k] for k in ('wsgi_app', 'worker_class', 'workers', 'timeout', "
        "'graceful_timeout', 'bind', 'accesslog')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(CONF)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
        check=True,
    )
    return json.loads(out.stdout)


def test_config_defaults_follow_the_spec():
    values = _config_values(WORKERS="")
    assert values["wsgi_app"] == "mes_kernel.app:create_app()"
    assert values["worker_class"].endswith("UvicornWorker")
    assert values["workers"] == 2 * (os.cpu_count() or 1)
    assert (values["timeout"], values["graceful_timeout"]) == (30, 30)
    assert values["accesslog"] is None
    assert _config_values(WORKERS="3", BIND="0.0.0.0:9000")["workers"] == 3


def test_no_control_socket_shared_by_every_gunicorn_of_the_user():
    """gunicorn 27 opens a control socket at ``~/.gunicorn/gunicorn.ctl`` by default: one path for every
    instance of the user, so a second node on the host (or any other gunicorn) takes it over and the
    first one's exit unlinks it. The kernel's instances open none."""
    from gunicorn.config import Config

    if "control_socket_disable" not in Config().settings:
        pytest.skip("this gunicorn has no control socket")
    code = (
        "import json, runpy, sys; from gunicorn.config import Config; cfg = Config(); "
        "c = runpy.run_path(sys.argv[1]); [cfg.set(k, v) for k, v in c.items() if k in cfg.settings]; "
        "print(json.dumps(cfg.control_socket_disable))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(CONF)], capture_output=True, text=True, timeout=30, check=True
    )
    assert json.loads(out.stdout) is True


def test_check_config_loads_the_real_app(tmp_path):
    result = subprocess.run(
        [str(GUNICORN), "--check-config", "-c", str(CONF)],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr


@pytest.fixture
def gunicorn(tmp_path):
    port = _free_port()
    env = _env(tmp_path, WORKERS="2", BIND=f"127.0.0.1:{port}")
    subprocess.run(
        [str(BIN / "mes"), "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=60
    )
    proc = subprocess.Popen(
        [str(GUNICORN), "-c", str(CONF)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/api/v1/health/liveness", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"gunicorn did not come up: {proc.communicate()[1][-2000:]}")
        time.sleep(0.2)
    yield {"base": base, "proc": proc, "metrics_dir": tmp_path / f"mes-prometheus-{proc.pid}"}
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def _workers(master: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    return {int(pid) for pid in out.split()}


def _liveness_count(text: str) -> float:
    match = re.search(r'^http_requests_total\{method="GET",route="[^"]*liveness",status="200"\} (\S+)$', text, re.M)
    assert match, text[:2000]
    return float(match.group(1))


def test_two_workers_one_truth_in_metrics_dead_worker_marked_dir_removed(gunicorn):
    base, proc, metrics_dir = gunicorn["base"], gunicorn["proc"], gunicorn["metrics_dir"]
    assert len(_workers(proc.pid)) == 2
    assert metrics_dir.is_dir()  # the config's private multiprocess directory

    with httpx.Client(base_url=base, timeout=5, headers={"Connection": "close"}) as client:
        for _ in range(30):
            assert client.get("/api/v1/health/liveness").status_code == 200
        # Whichever worker answers the scrape, it reports every worker's requests.
        counts = {_liveness_count(client.get("/metrics").text) for _ in range(6)}
    assert min(counts) >= 31

    live = {int(m.group(1)) for p in metrics_dir.iterdir() if (m := re.fullmatch(r"gauge_live\w+_(\d+)\.db", p.name))}
    assert live, sorted(p.name for p in metrics_dir.iterdir())
    victim = live.pop()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while any(p.name.endswith(f"_{victim}.db") and "live" in p.name for p in metrics_dir.iterdir()):
        assert time.monotonic() < deadline, "child_exit did not mark the dead worker"
        time.sleep(0.1)
    while len(_workers(proc.pid)) != 2:  # gunicorn replaces it
        assert time.monotonic() < deadline, "gunicorn did not replace the killed worker"
        time.sleep(0.1)

    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=40)
    assert not metrics_dir.exists()  # on_exit removes the directory it created
