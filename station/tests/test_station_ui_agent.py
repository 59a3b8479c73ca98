"""The window over the real station agent (``mes_station.agent.Agent``), offline and online."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from mes_station.agent import Agent
from mes_station.ui.bridge import AgentBridge
from mes_station.ui.testing import offscreen_app, wait_until
from mes_station.ui.window import StationWindow
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

app = offscreen_app()


def closed_port() -> int:
    """A local port nobody listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(folder: Path, server_url: str, token: str = "no-token", scanner: str | None = None) -> Path:
    devices = f'\n[devices.scanner]\ndriver = "{scanner}"\n' if scanner else ""
    path = folder / "station.toml"
    path.write_text(
        f'[server]\nurl = "{server_url}"\ntoken = "{token}"\ntimeout = 2.0\n'
        f'[station]\ncode = "ST-01"\nwork_dir = "work"\n'
        f"[heartbeat]\ninterval = 0.3\n"
        f"[outbox]\nbackoff_initial = 0.2\nbackoff_max = 0.5\n"
        f'[ui]\nlabel_template = "unit_label"\nstatus_poll_ms = 50\nflash_poll_ms = 50\n{devices}',
        encoding="utf-8",
    )
    return path


def open_window(config: Path) -> tuple[Agent, AgentBridge, StationWindow]:
    from mes_station.ui.app import load_ui_options

    agent = Agent.from_config(config)
    bridge = AgentBridge(agent)
    bridge.start()
    window = StationWindow(bridge, load_ui_options(config))
    window.resize(1024, 700)
    window.show()
    return agent, bridge, window


@pytest.fixture
def offline_window(tmp_path: Path) -> Iterator[tuple[Agent, StationWindow]]:
    agent, bridge, window = open_window(write_config(tmp_path, f"http://127.0.0.1:{closed_port()}"))
    yield agent, window
    window.close()
    bridge.stop()


def test_without_a_server_the_window_shows_offline_and_refuses_login(offline_window):
    agent, window = offline_window
    wait_until(lambda: window.online_label.text() == "OFFLINE", message="OFFLINE badge")
    assert window.queue_label.text() == "Queue: 0"
    QTest.keyClicks(window.login_screen.username, "alice")
    QTest.keyClicks(window.login_screen.password, "secret")
    QTest.keyClick(window.login_screen.password, Qt.Key.Key_Return)
    wait_until(lambda: window.login_screen.error.text(), message="a login error")
    assert "server is unreachable (offline)" in window.login_screen.error.text()
    assert not window.logged_in
    assert agent.worker is None


def test_events_the_agent_queues_show_up_in_the_status_bar(offline_window):
    agent, window = offline_window
    wait_until(lambda: window.online_label.text() == "OFFLINE")
    window.bridge.call(agent.record_event, "scan", {"code": "SN-0001", "source": "test"})
    wait_until(lambda: window.queue_label.text().startswith("Queue: 1"), message="queue depth 1")
