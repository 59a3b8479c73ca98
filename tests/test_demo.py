"""``mes serve --demo`` (what ``make run`` starts) is healthy out of the box: its station ST-DEMO runs an
agent provisioned from the server, so ``/health`` does not say "ST-DEMO never reported", and its
simulated machines work the demo LOT's units, so a unit's history shows the machines' values."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mes_kernel.demo import DEMO_UNITS, PACKED_AT

MES = Path(sys.executable).with_name("mes")


@contextlib.contextmanager
def demo_server(tmp_path: Path, *options: str) -> Iterator[tuple[queue.Queue, int]]:
    """``mes serve --demo`` on SQLite in ``tmp_path`` on a free port: its console lines (read by a
    thread, so a full pipe never blocks the server; ``None`` once it ends) and its port. Stopped
    (SIGTERM) at the end."""
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
        [str(MES), "serve", "--demo", *options, "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    console: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in server.stderr:
            console.put(line)
        console.put(None)

    reader = threading.Thread(target=read, name="demo-console", daemon=True)
    reader.start()
    try:
        yield console, port
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
        reader.join(timeout=10)
        server.stderr.close()


def read_console(console: queue.Queue, deadline: float, *patterns: str) -> list[re.Match]:
    """Read the server's console until each of ``patterns`` has matched a line (or the deadline passes,
    the console ends: the test fails with what it said)."""
    said: list[str] = []
    found: dict[str, re.Match] = {}
    while len(found) < len(patterns) and time.monotonic() < deadline:
        try:
            line = console.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        said.append(line)
        for pattern in patterns:
            if pattern not in found and (match := re.search(pattern, line)):
                found[pattern] = match
    assert len(found) == len(patterns), "".join(said)
    return [found[p] for p in patterns]


def login(http: httpx.Client, base: str, password: str, deadline: float) -> dict[str, str]:
    while time.monotonic() < deadline:
        try:
            r = http.post(f"{base}/auth/login", json={"username": "admin", "password": password})
            return {"Authorization": f"Bearer {r.json()['access_token']}"}
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the demo server never answered the login")


@pytest.mark.slow
def test_the_demo_station_reports_with_the_devices_the_server_gave_it(tmp_path: Path):
    agent_pid = None
    with demo_server(tmp_path) as (console, port):
        deadline = time.monotonic() + 90
        password, agent = read_console(
            console, deadline, r"log in as admin with password (\S+)", r"station agent ST-DEMO started \(pid (\d+)"
        )
        agent_pid = int(agent.group(1))
        toml = (tmp_path / "demo-station.toml").read_text()
        assert "[devices" not in toml  # URL, token and work folder: the devices come from the server

        base = f"http://127.0.0.1:{port}/api/v1"
        with httpx.Client(timeout=10) as http:
            headers = login(http, base, password.group(1), deadline)
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
            # the demo line's output is its packs, whatever steps the plant adds later (issue 13, N7)
            assert http.get(f"{base}/lines/DEMO", headers=headers).json()["output_step"] == PACKED_AT
    if agent_pid is not None:  # the server stopped its agent on the way out
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and Path(f"/proc/{agent_pid}").exists():
            time.sleep(0.1)
        gone = not Path(f"/proc/{agent_pid}").exists() or "zombie" in Path(f"/proc/{agent_pid}/status").read_text()
        assert gone, "the demo station agent outlived the server"


@pytest.mark.slow
def test_the_demo_machines_work_the_demo_lot_and_its_units_history_shows_their_values(tmp_path: Path):
    """MC-DEMO (OPC UA simulator) and MB-DEMO (Modbus simulator) work the demo LOT's registered units:
    a unit's history shows each machine's visit with the values recorded while it was on it."""
    pytest.importorskip("mes_opcua")
    pytest.importorskip("mes_modbus")
    with demo_server(tmp_path, "--no-demo-agent") as (console, port):
        deadline = time.monotonic() + 240
        (password,) = read_console(console, deadline, r"log in as admin with password (\S+)")
        base = f"http://127.0.0.1:{port}/api/v1"
        with httpx.Client(timeout=10) as http:
            headers = login(http, base, password.group(1), deadline)
            visits: dict[str, dict] = {}
            while time.monotonic() < deadline and {"MC-DEMO", "MB-DEMO"} - set(visits):
                for serial in DEMO_UNITS:
                    r = http.get(f"{base}/units/{serial}/history", headers=headers)
                    assert r.status_code == 200, r.text
                    for event in r.json()["events"]:
                        data = event["data"]
                        if event["type"] == "device_action" and data.get("action") == "machine_data":
                            visits.setdefault(data["device"], {"serial": serial, **data})
                time.sleep(1.0)
        assert {"MC-DEMO", "MB-DEMO"} <= set(visits), visits
        opcua = visits["MC-DEMO"]["detail"]
        temp = opcua["values"]["spindle_temp"]
        # 55-65 degC while it runs; the first part enters a cold spindle (20 degC, the value in effect at entry)
        assert temp["unit"] == "degC" and temp["count"] >= 1 and 20 <= temp["min"] <= temp["max"] <= 70, opcua
        assert opcua["entered_at"] < opcua["left_at"]
        assert visits["MB-DEMO"]["detail"]["values"], visits["MB-DEMO"]


def test_the_demo_line_is_planned_from_the_hour_it_was_set_up(monkeypatch):
    from datetime import UTC, datetime

    from mes_kernel.demo import demo_shifts

    monkeypatch.delenv("MES_DASHBOARD_TIMEZONE", raising=False)
    (shift,) = demo_shifts(datetime(2026, 11, 30, 15, 42, tzinfo=UTC))
    assert (shift["start"], shift["end"], shift["days"]) == ("15:00", "00:00", list(range(7)))
    monkeypatch.setenv("MES_DASHBOARD_TIMEZONE", "Asia/Seoul")  # the plant's zone decides the hour
    assert demo_shifts(datetime(2026, 11, 30, 15, 42, tzinfo=UTC))[0]["start"] == "00:00"
