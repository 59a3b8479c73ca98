"""`kernel_started` is logged once per server process: not twice by `mes serve --demo` (whose demo
set-up builds a kernel of its own first), and not by command-line tools."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mes_serve_demo_logs_kernel_started_once(tmp_path):
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/demo.db",
        "FILES_DIR": str(tmp_path / "var" / "files"),
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "true",
        "SECRET_KEY": "kernel-started-test-secret-0123456789abcdef",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mes_kernel.cli", "serve", "--demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health/readiness", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.3)
        else:
            raise AssertionError("mes serve --demo did not become ready")
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=60)
    assert output.count('"kernel_started"') == 1, output[-4000:]


def test_mes_serve_writes_uvicorns_own_lines_as_json_like_the_kernels(tmp_path):
    """An operator reads one format: uvicorn's start, stop and invalid-request lines under `mes serve`
    are JSON (logger ``uvicorn.error``), as gunicorn's are under deploy/gunicorn.conf.py."""
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/serve.db",
        "FILES_DIR": str(tmp_path / "var" / "files"),
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "true",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mes_kernel.cli", "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health/readiness", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.3)
        else:
            raise AssertionError("mes serve did not become ready")
        with socket.create_connection(("127.0.0.1", port)) as raw:  # not HTTP: uvicorn warns about it
            raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            raw.recv(1024)
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=60)
    lines = output.splitlines()
    assert not [line for line in lines if line.startswith(("INFO:", "WARNING:", "ERROR:"))], output[-3000:]
    uvicorn_lines = [json.loads(line) for line in lines if line.startswith("{") and '"uvicorn.error"' in line]
    events = " | ".join(entry["event"] for entry in uvicorn_lines)
    assert "Started server process" in events and "Invalid HTTP request" in events, output[-3000:]
    assert all("timestamp" in entry and "level" in entry for entry in uvicorn_lines)
    assert '"event": "request"' in output  # the kernel's access line for the readiness probe
