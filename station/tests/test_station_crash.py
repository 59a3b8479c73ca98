"""Crash safety: ``kill -9`` of a real agent process mid-drain loses nothing and doubles nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mes_station.outbox import PROCESS_RECORD, Outbox
from mes_station.testing.helpers import write_station_toml

EVENTS = 300


def _start_agent(toml: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mes_station", "run", "--config", str(toml)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"agent exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_kill_9_mid_drain_then_restart_leaves_every_event_on_the_server_exactly_once(tmp_path: Path, contract):
    state, server = contract
    toml = write_station_toml(
        tmp_path / "station.toml",
        server_url=server.base_url,
        work_dir=tmp_path / "work",
        outbox={"batch_size": 50},
        heartbeat={"interval": 5.0},
    )
    # A backlog built up while the server was unreachable.
    with Outbox(tmp_path / "work" / "outbox.sqlite3") as outbox:
        keys = [
            outbox.enqueue(
                PROCESS_RECORD,
                {
                    "lot_number": "LOT-1",
                    "process_id": "ASSY-10",
                    "worker_id": "alice",
                    "result": "pass",
                    "data": {"i": i},
                },
            )[0]
            for i in range(EVENTS)
        ]
    # Once 100 records are stored the server holds its answer: the agent is killed while it waits.
    state.hold_after, state.hold_seconds = 100, 2.0
    log = tmp_path / "agent.log"
    agent = _start_agent(toml, log)
    try:
        _wait(lambda: len(state.records) >= 100, 20, "the first 100 records", agent)
        time.sleep(0.1)
        agent.send_signal(signal.SIGKILL)
        agent.wait(5)
    finally:
        if agent.poll() is None:
            agent.kill()
    stored_before_restart = set(state.records)
    assert 100 <= len(stored_before_restart) < EVENTS
    with Outbox(tmp_path / "work" / "outbox.sqlite3") as outbox:
        unacked = {e.idempotency_key for e in outbox.pending(EVENTS)}
    # the server holds events the station never heard back about: exactly the case to survive
    assert unacked & stored_before_restart

    state.hold_after = None
    agent = _start_agent(toml, log)
    try:
        with Outbox(tmp_path / "work" / "outbox.sqlite3") as outbox:
            _wait(lambda: outbox.depth() == 0, 20, "the outbox to drain", agent)
    finally:
        agent.send_signal(signal.SIGINT)
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
    assert sorted(state.records) == sorted(keys)  # every event, and only once each
    assert state.duplicates >= 1  # the unacknowledged batch was resent and deduplicated
    assert [state.records[k]["data"]["i"] for k in keys] == list(range(EVENTS))
