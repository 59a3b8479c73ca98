"""The station agent end to end against a real contract server, real drivers and real files."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mes_label_printer.simulator.tcp import ThreadedTcpPrinter
from mes_station.agent import Agent, Scan
from mes_station.config import load_config
from mes_station.errors import DeviceUnavailableError, LoginError, OutboxFullError
from mes_station.instance import AgentAlreadyRunning, is_running
from mes_station.testing.helpers import wait_for, write_station_toml


@pytest.fixture
async def agent(station_toml: Path) -> AsyncIterator[Agent]:
    agent = Agent.from_config(station_toml)
    await agent.start()
    yield agent
    await agent.stop()


async def test_result_is_saved_offline_and_delivered_once_the_server_is_back(station_toml: Path, contract):
    state, server = contract
    server.stop()
    agent = Agent.from_config(station_toml)
    await agent.start()
    try:
        key = agent.record_result(
            lot_number="LOT-1", process_id="ASSY-10", worker_id="alice", result="fail", defect_code="SCRATCH"
        )
        assert agent.outbox.get(key).status == "queued"  # saved locally: the worker may be told so
        assert agent.outbox_depth() == 1
        assert agent.oldest_queued_age() is not None
        await wait_for(lambda: agent.sender.failures >= 2)
        assert not agent.online
        server.start()
        await wait_for(lambda: agent.outbox_depth() == 0)
        assert agent.online
        assert agent.oldest_queued_age() is None
    finally:
        await agent.stop()
    assert state.records[key]["defect_code"] == "SCRATCH"
    assert len(state.records) == 1


async def test_subscribers_see_the_queue_fill_and_drain(station_toml: Path, contract):
    _, server = contract
    server.stop()
    agent = Agent.from_config(station_toml)
    seen: list[dict] = []
    agent.subscribe(lambda kind, payload: seen.append(payload) if kind == "status" else None)
    await agent.start()
    try:
        agent.record_result(lot_number="LOT-1", process_id="P1", worker_id="alice", result="pass")
        await wait_for(lambda: any(s["outbox_depth"] == 1 for s in seen))
        server.start()
        await wait_for(lambda: seen[-1]["outbox_depth"] == 0 and seen[-1]["online"])
    finally:
        await agent.stop()


async def test_heartbeat_reports_station_health_and_learns_the_server_clock(station_toml: Path, contract):
    state, _ = contract
    state.clock_skew = 3600.0  # this PC's clock is an hour behind the server's
    agent = Agent.from_config(station_toml)
    await agent.start()
    try:
        await wait_for(lambda: len(state.heartbeats) >= 1 and agent.outbox.clock_offset() is not None)
        beat = state.heartbeats[0]
        assert set(beat) >= {
            "agent_version",
            "drivers",
            "devices",
            "outbox_depth",
            "oldest_queued_age_seconds",
            "clock",
        }
        offset = agent.outbox.clock_offset()
        assert 3590 < offset < 3610
        key = agent.record_result(lot_number="LOT-1", process_id="P1", worker_id="alice", result="pass")
        recorded_at = datetime.fromisoformat(agent.outbox.get(key).body["recorded_at"])
        assert 3590 < (recorded_at - datetime.now(UTC)).total_seconds() < 3610
    finally:
        await agent.stop()


async def test_missing_driver_shows_in_status_and_heartbeat_and_the_rest_works(tmp_path: Path, contract):
    state, server = contract
    toml = write_station_toml(
        tmp_path / "station.toml",
        server_url=server.base_url,
        work_dir=tmp_path / "work",
        devices={
            "printer": {"driver": "no_such_printer"},
            "scanner": {"driver": "simulator", "codes": ["SN0001"]},
            "flasher": {"driver": "simulator", "namespace": "mes.drivers.nowhere"},
        },
    )
    agent = Agent.from_config(toml)
    scans: list[Scan] = []
    agent.subscribe(lambda kind, payload: scans.append(payload) if kind == "scan" else None)
    await agent.start()
    try:
        drivers = agent.status()["drivers"]
        assert drivers["scanner"]["loaded"] is True
        assert drivers["printer"]["loaded"] is False
        assert "no_such_printer" in drivers["printer"]["error"]
        assert drivers["flasher"]["loaded"] is False
        await wait_for(lambda: len(state.heartbeats) >= 1)
        beat = state.heartbeats[-1]
        assert beat["drivers"]["printer"]["loaded"] is False
        assert beat["devices"]["printer"]["status"] == "down"
        assert beat["devices"]["scanner"]["status"] == "up"
        # the scanner that did load still scans, and results are still recorded
        agent.devices.get("scanner").trigger("SN0001")
        await wait_for(lambda: len(scans) == 1)
        assert scans[0].code == "SN0001" and scans[0].source == "scanner"
        agent.record_result(lot_number="LOT-1", process_id="P1", worker_id="alice", result="pass")
        await wait_for(lambda: agent.outbox_depth() == 0 and len(state.records) == 1)
        assert any(e["body"]["type"] == "scan" for e in state.events.values())
        with pytest.raises(DeviceUnavailableError, match="no_such_printer"):
            await agent.print_label(template="unit_label", fields={})
    finally:
        await agent.stop()


async def test_lookup_answers_online_and_from_the_cache_offline(agent: Agent, contract):
    _, server = contract
    answer = await agent.lookup("SN0001")
    assert answer["unit"]["serial_number"] == "SN0001" and answer["source"] == "server"
    assert agent.online
    server.stop()
    offline = await agent.lookup("SN0001")  # the contract server has no /stations/me/cache: nothing cached
    assert offline == {"kind": "unknown", "code": "SN0001", "source": "cache", "serial_number": "SN0001"}
    assert not agent.online


async def test_login_identifies_the_worker(agent: Agent):
    with pytest.raises(LoginError) as refused:
        await agent.login("alice", "wrong")
    assert refused.value.code == "INVALID_CREDENTIALS" and agent.worker is None
    await agent.login("alice", "secret")
    assert agent.worker == "alice"


async def test_expired_worker_token_is_refreshed_and_reads_go_on(agent: Agent, contract):
    state, _ = contract
    await agent.login("alice", "secret")
    first = state.user_requests[-1] if state.user_requests else None
    await agent.lookup("SN0001")
    expired = state.user_requests[-1]
    assert expired != first and expired.startswith("user-alice-")
    state.revoked_access.add(expired)  # 15 minutes later
    await agent.lookup("SN0001")
    assert state.user_requests[-1].startswith("user-alice-") and state.user_requests[-1] != expired
    assert agent.online and agent.worker == "alice"


async def test_worker_token_that_cannot_be_refreshed_falls_back_to_the_station(agent: Agent, contract):
    state, _ = contract
    await agent.login("alice", "secret")
    await agent.lookup("SN0001")
    state.revoked_access.add(state.user_requests[-1])
    state.refresh_tokens.clear()  # the refresh token was revoked too
    answer = await agent.lookup("SN0001")
    assert answer["unit"]["serial_number"] == "SN0001"
    assert state.user_requests[-1] == state.token


async def test_completion_file_reaches_the_server_once(agent: Agent, contract):
    state, _ = contract
    doc = {
        "lot_number": "LOT-9",
        "process_id": "TEST-20",
        "result": "pass",
        "measurements": {"v": 5.0},
        "equipment_id": "ICT-1",
        "finished_at": "2026-11-26T05:00:00Z",
    }
    for name in ("first.json", "again.json"):
        (agent.config.watch_folder / name).write_text(json.dumps(doc))
        await wait_for(lambda n=name: not (agent.config.watch_folder / n).exists())
    await wait_for(lambda: agent.outbox_depth() == 0 and len(state.records) == 1)
    [record] = state.records.values()
    assert record["lot_number"] == "LOT-9" and record["worker_id"] == "equipment:ICT-1"


async def test_full_disk_tells_the_worker_and_saves_nothing(agent: Agent):
    before = agent.outbox.count()
    pages = agent.outbox._conn.execute("PRAGMA page_count").fetchone()[0]
    agent.outbox._conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(OutboxFullError, match="full"):
        for _ in range(500):
            agent.record_result(
                lot_number="LOT-1", process_id="P1", worker_id="alice", result="pass", data={"x": "y" * 4000}
            )
    assert agent.outbox.count() >= before


@pytest.mark.parametrize("field", ["lot_number", "worker_id", "serial_number", "defect_code"])
async def test_a_result_naming_something_untrimmed_or_invisible_is_refused_before_the_outbox(agent: Agent, field):
    """The server takes identifiers exactly or refuses them: a worker hears it now, not a rejection later."""
    before = agent.outbox.count()
    fields = {"lot_number": "LOT-1", "process_id": "P1", "worker_id": "alice", "result": "fail"}
    for value in (" X-1", "X-1\t", "X\u200b1"):
        with pytest.raises(ValueError, match=field):
            agent.record_result(**{**fields, field: value})
    assert agent.outbox.count() == before


async def test_label_prints_offline_from_templates_cached_at_the_last_sync(tmp_path: Path, contract):
    state, server = contract
    state.templates = [{"name": "serial_tag", "zpl": "^XA^FO20,20^FDS/N {{ serial_number }}^FS^XZ"}]
    with ThreadedTcpPrinter() as printer:
        toml = write_station_toml(
            tmp_path / "station.toml",
            server_url=server.base_url,
            work_dir=tmp_path / "work",
            devices={"printer": {"driver": "zpl_tcp", "host": "127.0.0.1", "port": printer.port, "timeout": 2.0}},
        )
        agent = Agent.from_config(toml)
        await agent.start()
        try:
            await wait_for(lambda: agent.outbox.template_names() == ["serial_tag"])
            server.stop()  # the server goes away; printing must not
            result = await agent.print_label(template="serial_tag", fields={"serial_number": "SN0042"})
            assert result["outcome"] == "printed"
            built_in = await agent.print_label(
                template="unit_label",
                fields={"product": "NH-1", "lot_number": "LOT-1", "serial_number": "SN0043", "gtin": "09506000134352"},
            )
            assert built_in["outcome"] == "printed"
            await wait_for(lambda: printer.core.label_count == 2)
            assert b"S/N SN0042" in printer.core.printed[0]
            event = agent.outbox.get(result["event_key"])
            assert event.status == "queued" and event.body["type"] == "device_result"
            assert event.body["payload"]["driver"] == "zpl_tcp"
            assert event.body["payload"]["serial_number"] == "SN0042"
        finally:
            await agent.stop()


async def test_flash_is_started_on_the_server_and_followed(agent: Agent):
    job = await agent.start_flash(serial_number="SN0001", image_id="fw-1.2.0")
    status = await agent.flash_status(job)
    assert status["serial_number"] == "SN0001"
    for _ in range(50):  # the contract server finishes a job in half a second
        if (status := await agent.flash_status(job))["status"] == "done":
            break
        await asyncio.sleep(0.05)
    assert status["status"] == "done" and status["progress"] == 100


async def test_a_second_agent_on_the_same_work_dir_is_refused(agent: Agent, station_toml: Path):
    second = Agent.from_config(station_toml)
    with pytest.raises(AgentAlreadyRunning, match=str(os.getpid())):
        await second.start()
    second.outbox.close()
    assert is_running(agent.config.work_dir / "agent.lock")


def test_api_base_url_overrides_the_file(station_toml: Path, monkeypatch):
    monkeypatch.setenv("API_BASE_URL", "https://mes.example.com/api/v1/")
    assert load_config(station_toml).api_url == "https://mes.example.com/api/v1"
