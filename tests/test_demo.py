"""``mes serve --demo`` (what ``make run`` starts) is healthy out of the box: its station ST-DEMO runs an
agent provisioned from the server, so ``/health`` does not say "ST-DEMO never reported"."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

MES = Path(sys.executable).with_name("mes")


@pytest.mark.slow
def test_the_demo_station_reports_with_the_devices_the_server_gave_it(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MES_", "DATABASE_", "REDIS_", "SECRET_"))}
    env.update(
        {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/mes.db",
            "FILES_DIR": str(tmp_path / "files"),
            "BCRYPT_ROUNDS": "4",
            "LOG_LEVEL": "WARNING",
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(MES), "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    agent_pid = None
    try:
        said, password = [], None
        deadline = time.monotonic() + 90
        while agent_pid is None and time.monotonic() < deadline:
            line = server.stderr.readline()
            if not line:
                break
            said.append(line)
            if found := re.search(r"log in as admin with password (\S+)", line):
                password = found.group(1)
            if found := re.search(r"station agent ST-DEMO started \(pid (\d+)", line):
                agent_pid = int(found.group(1))
        assert password and agent_pid, "".join(said)
        toml = (tmp_path / "demo-station.toml").read_text()
        assert "[devices" not in toml  # URL, token and work folder: the devices come from the server

        base = f"http://127.0.0.1:{port}/api/v1"
        with httpx.Client(timeout=10) as http:
            token = None
            while token is None and time.monotonic() < deadline:
                try:
                    r = http.post(f"{base}/auth/login", json={"username": "admin", "password": password})
                    token = r.json()["access_token"]
                except httpx.TransportError:
                    time.sleep(0.2)
            headers = {"Authorization": f"Bearer {token}"}
            station = {}
            while time.monotonic() < deadline:
                [station] = [s for s in http.get(f"{base}/stations", headers=headers).json() if s["code"] == "ST-DEMO"]
                drivers = station["heartbeat"].get("drivers", {})
                if station["last_heartbeat_at"] and {"PRN-DEMO", "UPL-DEMO"} <= set(drivers):
                    break
                time.sleep(0.5)
            assert station["last_heartbeat_at"], station
            assert all(station["heartbeat"]["drivers"][code]["loaded"] for code in ("PRN-DEMO", "UPL-DEMO")), station
            node = None
            while time.monotonic() < deadline:  # the health tree is cached for a moment
                node = http.get(f"{base}/health", headers=headers).json()["components"]["stations"]["checks"]["ST-DEMO"]
                if node["status"] == "UP":
                    break
                time.sleep(0.5)
            assert node["status"] == "UP" and node["reason"] is None, node
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        server.stderr.close()
    if agent_pid is not None:  # the server stopped its agent on the way out
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and Path(f"/proc/{agent_pid}").exists():
            time.sleep(0.1)
        gone = not Path(f"/proc/{agent_pid}").exists() or "zombie" in Path(f"/proc/{agent_pid}/status").read_text()
        assert gone, "the demo station agent outlived the server"


def test_the_demo_line_is_planned_from_the_hour_it_was_set_up(monkeypatch):
    from datetime import UTC, datetime

    from mes_kernel.demo import demo_shifts

    monkeypatch.delenv("MES_DASHBOARD_TIMEZONE", raising=False)
    (shift,) = demo_shifts(datetime(2026, 11, 30, 15, 42, tzinfo=UTC))
    assert (shift["start"], shift["end"], shift["days"]) == ("15:00", "00:00", list(range(7)))
    monkeypatch.setenv("MES_DASHBOARD_TIMEZONE", "Asia/Seoul")  # the plant's zone decides the hour
    assert demo_shifts(datetime(2026, 11, 30, 15, 42, tzinfo=UTC))[0]["start"] == "00:00"
