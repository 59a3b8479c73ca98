"""The station agent against the real kernel (``create_app`` under uvicorn on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mes_station.agent import Agent
from mes_station.outbox import PROCESS_RECORD, Outbox
from mes_station.testing.helpers import wait_for, write_station_toml
from mes_station.testing.kernel_server import REQUEST_TIMEOUT, KernelServer, start_kernel

# The end-to-end tests run against the embedded SQLite kernel. Marked so, a PostgreSQL run skips
# them before it takes a database copy (made and dropped per skipped test: seconds each under load).
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def kernel_server(settings) -> Iterator[KernelServer]:
    kernel = start_kernel(settings)
    try:
        yield kernel
    finally:
        kernel.stop()


def _toml(tmp_path: Path, kernel: KernelServer, **sections) -> Path:
    return write_station_toml(
        tmp_path / "station.toml",
        server_url=kernel.base_url,
        work_dir=tmp_path / "work",
        server={"url": kernel.base_url, "token": kernel.station_token, "timeout": REQUEST_TIMEOUT},
        **sections,
    )


async def test_results_saved_while_the_kernel_is_down_arrive_exactly_once(tmp_path: Path, kernel_server):
    kernel = kernel_server
    kernel.make_lot("LOT-OPEN", units=2)
    kernel.make_lot("LOT-SHUT")
    kernel.set_lot_status("LOT-SHUT", "closed")
    agent = Agent.from_config(_toml(tmp_path, kernel))
    kernel.stop()
    await agent.start()
    try:
        keys = [
            agent.record_result(
                lot_number="LOT-OPEN",
                process_id="ASSY-10",
                worker_id="alice",
                result="pass",
                serial_number="LOT-OPEN-0001",
                data={"i": i},
            )
            for i in range(25)
        ]
        closed = agent.record_result(lot_number="LOT-SHUT", process_id="ASSY-10", worker_id="alice", result="pass")
        unknown = agent.record_result(lot_number="LOT-NONE", process_id="ASSY-10", worker_id="alice", result="fail")
        scan = agent.submit_scan("LOT-OPEN-0002").idempotency_key
        doc = {
            "lot_number": "LOT-OPEN",
            "process_id": "TEST-20",
            "result": "pass",
            "serial_number": "LOT-OPEN-0002",
            "measurements": {"v": 3.3},
            "equipment_id": "ICT-1",
            "finished_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),  # within the accepted window
        }
        (agent.config.watch_folder / "ict.json").write_text(json.dumps(doc))
        await wait_for(lambda: agent.outbox_depth() == 29)
        await wait_for(lambda: agent.sender.failures >= 2)
        assert not agent.online
        kernel.restart()
        await wait_for(lambda: agent.outbox_depth() == 0, timeout=20)
        assert agent.online
    finally:
        await agent.stop()
    stored = kernel.record_keys()
    assert len(stored) == len(set(stored)) == 26  # 25 results + the completion file
    assert set(keys) <= set(stored)
    assert scan in kernel.event_keys()
    with Outbox(tmp_path / "work" / "outbox.sqlite3") as outbox:
        assert outbox.get(closed).status == "rejected" and "LOT_CLOSED" in outbox.get(closed).last_error
        assert outbox.get(unknown).status == "rejected"


async def test_heartbeat_lands_on_the_kernel_and_sets_the_clock(tmp_path: Path, kernel_server):
    kernel = kernel_server
    agent = Agent.from_config(_toml(tmp_path, kernel, devices={"printer": {"driver": "missing_driver"}}))
    await agent.start()
    try:
        await wait_for(lambda: agent.last_heartbeat is not None, timeout=10)
        assert abs(agent.outbox.clock_offset()) < 5
    finally:
        await agent.stop()
    [station] = kernel.api("GET", "/stations").json()
    assert station["code"] == "ST-01"
    beat = station["heartbeat"]
    assert beat["drivers"]["printer"] == {
        "name": "missing_driver",
        "loaded": False,
        "role": "printer",
        "kind": "label_printer",
        "error": beat["drivers"]["printer"]["error"],
    }
    assert beat["devices"]["printer"]["status"] == "down"
    assert beat["outbox_depth"] == 0


async def test_lookup_and_template_sync_through_the_plugins(tmp_path: Path, kernel_server):
    kernel = kernel_server
    [serial] = kernel.make_lot("LOT-LOOK", units=1, serial_prefix="SN-LOOK")
    agent = Agent.from_config(_toml(tmp_path, kernel))
    await agent.start()
    try:
        unit = await agent.lookup(serial)
        assert serial in json.dumps(unit) and "LOT-LOOK" in json.dumps(unit)
        lot = await agent.lookup("LOT-LOOK")
        assert "LOT-LOOK" in json.dumps(lot)
        assert await agent.sync_templates() >= 2
        assert "unit_label" in agent.outbox.template_names()
    finally:
        await agent.stop()


async def test_a_scan_keeps_its_symbology_to_the_lookup(tmp_path: Path, kernel_server):
    """A GS1 DataMatrix with an SSCC and a LOT needs no GS; only its ``]d2`` says it is GS1."""
    kernel = kernel_server
    kernel.make_lot("LOT-SSCC")
    agent = Agent.from_config(_toml(tmp_path, kernel))
    await agent.start()
    try:
        code = "00106141411234567897" + "10LOT-SSCC"
        agent.submit_scan(code, source="scanner", symbology="]d2")
        answer = await agent.lookup(code)
        assert answer["kind"] == "lot" and answer["lot"]["lot_number"] == "LOT-SSCC"
        assert answer["parsed"]["symbology"] == "]d2"
        assert [e["ai"] for e in answer["parsed"]["elements"]] == ["00", "10"]
    finally:
        await agent.stop()


async def test_a_plant_template_synced_once_prints_with_the_kernel_stopped(tmp_path: Path, kernel_server):
    """The plant's ZPL (``^FN`` fields, a ``^GF`` logo, ``^CI28``) is rendered at the station by the
    same code as on the server: values ``^FH``-escaped, the version the sync fetched."""
    from mes_label_printer.drivers.simulator import simulated_printer
    from mes_label_printer.zpl import printed_fields

    kernel = kernel_server
    zpl = (
        "^XA^CI28^PW400^LL200^FO10,10^GFA,8,8,1,FF:::::::^FS"
        "^FO10,40^A0N,30,30^FN1^FDserial^FS^FO10,80^A0N,30,30^FD{{product}}^FS^XZ"
    )
    fields = [{"name": "serial_number", "type": "serial_number", "fn": 1}, {"name": "product", "type": "text"}]
    r = kernel.api("POST", "/labels/templates", json={"name": "plant_small", "zpl": zpl, "fields": fields})
    assert r.status_code == 201, r.text
    printer_id = f"plant-{os.getpid()}-{time.monotonic_ns()}"
    toml = _toml(tmp_path, kernel, devices={"printer": {"driver": "simulator", "printer_id": printer_id}})
    agent = Agent.from_config(toml)
    await agent.start()
    try:
        assert await agent.sync_templates() >= 3
        cached = agent.outbox.template("plant_small")
        assert cached["version"] == 1 and cached["zpl"] == zpl
        kernel.stop()
        result = await agent.print_label(
            template="plant_small", fields={"serial_number": "SN-77", "product": "모듈 ^XZ"}
        )
        assert result["outcome"] == "printed"
    finally:
        await agent.stop()
    (label,) = simulated_printer(printer_id).printed
    assert b"^GFA,8,8,1,FF:::::::" in label and b"^FH\\^FD" in label
    assert [f.data for f in printed_fields(label.decode()) if f.kind == "text"] == ["SN-77", "모듈 ^XZ"]


async def test_flash_started_from_the_station_runs_on_its_uploader(tmp_path: Path, kernel_server):
    kernel = kernel_server
    [serial] = kernel.make_lot("LOT-FW", units=1, product="PRD-100", serial_prefix="SN-FW")
    kernel.add_station_device("FLASH-01", "firmware_uploader", "simulator", flash_seconds=0.2)
    kernel.create_user("alice", "alice-password")
    image = kernel.upload_firmware("PRD-100", "1.2.0", b"\x7fELF" + bytes(range(256)) * 64)
    agent = Agent.from_config(_toml(tmp_path, kernel))
    await agent.start()
    try:
        await agent.login("alice", "alice-password")
        assert agent.worker == "alice"
        job = await agent.start_flash(serial_number=serial, image_id=image["id"])
        status: dict = {}
        for _ in range(200):
            status = await agent.flash_status(job)
            if status["status"] in ("done", "failed"):
                break
            await asyncio.sleep(0.05)
        assert status["status"] == "done", status
        assert status["progress"] == 100 and status["serial_number"] == serial
        assert status["device"] == "FLASH-01" and status["operator"] == "alice"
        by_version = await agent.start_flash(serial_number=serial, image_id="PRD-100@1.2.0")
        assert by_version != job
    finally:
        await agent.stop()


async def test_a_flash_whose_answer_was_lost_is_retried_with_its_key_and_flashes_once(tmp_path: Path, kernel_server):
    from mes_station.errors import OfflineError

    kernel = kernel_server
    [serial] = kernel.make_lot("LOT-FW2", units=1, product="PRD-100", serial_prefix="SN-FX")
    kernel.add_station_device("FLASH-02", "firmware_uploader", "simulator", flash_seconds=0.1)
    image = kernel.upload_firmware("PRD-100", "1.3.0", b"\x7fELF" + bytes(range(256)) * 16)
    agent = Agent.from_config(_toml(tmp_path, kernel))
    await agent.start()
    real_json = agent.client.json
    sent: list[dict] = []

    async def answer_lost_once(method, path, **kwargs):
        if path == "/firmware/upload":
            sent.append(kwargs["json"])
        answer = await real_json(method, path, **kwargs)  # the server acts ...
        if path == "/firmware/upload":
            if len(sent) == 1:
                raise OfflineError("read timed out")  # ... and its answer never arrives
        return answer

    agent.client.json = answer_lost_once
    try:
        with pytest.raises(OfflineError):
            await agent.start_flash(serial_number=serial, image_id=image["id"])
        job = await agent.start_flash(serial_number=serial, image_id=image["id"])  # the operator tries again
        assert sent[0]["idempotency_key"] == sent[1]["idempotency_key"]
        jobs = kernel.api("GET", "/firmware/jobs", params={"serial_number": serial}).json()["items"]
        assert [str(j["id"]) for j in jobs] == [job]  # one job: flashed once
        await wait_for(lambda: kernel.api("GET", f"/firmware/jobs/{job}").json()["status"] == "done", timeout=15)
        again = await agent.start_flash(serial_number=serial, image_id=image["id"])  # answered: a new flash
        assert again != job and sent[2]["idempotency_key"] != sent[0]["idempotency_key"]
    finally:
        agent.client.json = real_json
        await agent.stop()


def test_kill_9_mid_drain_against_the_kernel_loses_and_doubles_nothing(tmp_path: Path, kernel_server):
    kernel = kernel_server
    kernel.make_lot("LOT-BIG")
    toml = _toml(tmp_path, kernel, outbox={"batch_size": 25}, heartbeat={"interval": 5.0})
    total = 600
    with Outbox(tmp_path / "work" / "outbox.sqlite3") as outbox:
        keys = [
            outbox.enqueue(
                PROCESS_RECORD,
                {
                    "lot_number": "LOT-BIG",
                    "process_id": "ASSY-10",
                    "worker_id": "w1",
                    "result": "pass",
                    "data": {"i": i},
                },
            )[0]
            for i in range(total)
        ]
    log = (tmp_path / "agent.log").open("ab")
    cmd = [sys.executable, "-m", "mes_station", "run", "--config", str(toml)]
    agent = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.monotonic() + 30
        while len(kernel.record_keys()) < 100:
            assert agent.poll() is None and time.monotonic() < deadline, "agent died or too slow"
            time.sleep(0.01)
        agent.send_signal(signal.SIGKILL)
        agent.wait(5)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert len(kernel.record_keys()) < total, "the agent finished before it could be killed"
    agent = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        with Outbox(tmp_path / "work" / "outbox.sqlite3") as outbox:
            deadline = time.monotonic() + 60
            while outbox.depth():
                assert agent.poll() is None and time.monotonic() < deadline, "agent died or too slow"
                time.sleep(0.05)
    finally:
        agent.send_signal(signal.SIGINT)
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
    stored = kernel.record_keys()
    assert sorted(stored) == sorted(keys)  # each exactly once


async def test_a_backlog_replayed_to_the_kernel_keeps_the_stations_order_in_the_unit_history(
    tmp_path: Path, kernel_server, monkeypatch
):
    """Offline, a worker scans a unit, records a fail, a rework pass and a retest within one tick of
    a coarse station clock. When the kernel returns, the unit's history shows them in the order
    they were queued (the outbox sequence numbers the agent sends), not by arrival or id."""
    kernel = kernel_server
    serial = kernel.make_lot("LOT-SEQ", units=1)[0]
    agent = Agent.from_config(_toml(tmp_path, kernel))
    tick = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()  # one coarse tick
    monkeypatch.setattr(agent, "_server_now", lambda: tick)
    kernel.stop()
    await agent.start()
    try:
        agent.submit_scan(serial)
        for result, defect in (("fail", "D-SOLDER"), ("pass", None), ("pass", None)):
            agent.record_result(lot_number="LOT-SEQ", process_id="TEST-20", worker_id="alice", result=result,
                                serial_number=serial, defect_code=defect)
        await wait_for(lambda: agent.outbox_depth() == 4)
        kernel.restart()
        await wait_for(lambda: agent.outbox_depth() == 0, timeout=20)
    finally:
        await agent.stop()
    with Outbox(tmp_path / "work" / "outbox.sqlite3") as outbox:
        queued = [ev.seq for ev in outbox.list()]
    history = kernel.api("GET", f"/units/{serial}/history").json()
    events = [e for e in history["events"] if e["type"] != "registration"]
    assert [e["seq"] for e in events] == sorted(queued, reverse=True)
    assert [(e["type"], e["data"].get("result")) for e in events] == [
        ("process_record", "pass"), ("process_record", "pass"), ("process_record", "fail"), ("scan", None)]
    assert {e["at"] for e in events} == {tick} and {e["station"] for e in events} == {"ST-01"}
    assert history["total"] == 5


async def test_one_scan_looked_up_online_is_one_event_in_the_unit_history(tmp_path: Path, kernel_server):
    """The agent records every scan in its outbox (it arrives offline too, with the station's time
    and sequence); the lookup that follows must not log the same scan a second time."""
    kernel = kernel_server
    serial = kernel.make_lot("LOT-ONCE", units=1, serial_prefix="SN-ONCE")[0]
    agent = Agent.from_config(_toml(tmp_path, kernel))
    await agent.start()
    try:
        agent.submit_scan(serial)
        answer = await agent.lookup(serial)
        assert answer["kind"] == "unit"
        await wait_for(lambda: agent.outbox_depth() == 0, timeout=20)
        other = await agent.lookup(serial)  # a lookup with no scan behind it (e.g. a refresh) is logged
        assert other["kind"] == "unit"
    finally:
        await agent.stop()
    history = kernel.api("GET", f"/units/{serial}/history").json()
    scans = [e["type"] for e in history["events"] if e["type"] in ("scan", "device_action")]
    assert sorted(scans) == ["device_action", "scan"], history["events"]


async def test_results_refused_for_the_stations_clock_wait_and_arrive_restamped_with_the_original_kept(
    tmp_path: Path, kernel_server, monkeypatch
):
    """A station whose clock was never set stamps a result and a scan 1900: the kernel refuses both
    (IMPLAUSIBLE_TIME), they wait in the outbox as rejected with the reason, ``outbox list`` says
    what to do, and ``outbox retry --restamp`` sends them at the kernel's receipt time, the station's
    time kept in the data. Nothing is lost and nothing is counted in 1900."""
    from mes_station.cli import app as cli_app
    from typer.testing import CliRunner

    kernel = kernel_server
    (serial,) = kernel.make_lot("LOT-CLK", units=1)
    toml = _toml(tmp_path, kernel)
    agent = Agent.from_config(toml)
    monkeypatch.setattr(agent, "_server_now", lambda: "1900-01-01T00:00:00+00:00")
    outbox_path = tmp_path / "work" / "outbox.sqlite3"
    await agent.start()
    try:
        record = agent.record_result(lot_number="LOT-CLK", process_id="ASSY-10", worker_id="alice", result="pass",
                                     serial_number=serial)
        scan = agent.submit_scan(serial).idempotency_key

        def rejected() -> bool:
            with Outbox(outbox_path) as outbox:
                return {outbox.get(record).status, outbox.get(scan).status} == {"rejected"}

        await wait_for(rejected, timeout=20)
        with Outbox(outbox_path) as outbox:
            assert "IMPLAUSIBLE_TIME" in outbox.get(record).last_error
            assert "payload.recorded_at" in outbox.get(scan).last_error
        assert record not in kernel.record_keys() and scan not in kernel.event_keys()
        runner = CliRunner()
        listed = runner.invoke(cli_app, ["outbox", "list", "--config", str(toml)])
        assert listed.exit_code == 0 and "IMPLAUSIBLE_TIME" in listed.output, listed.output
        assert "2 event(s) refused for their time" in listed.output and "retry --restamp" in listed.output

        requeued = runner.invoke(cli_app, ["outbox", "retry", "--restamp", "--config", str(toml)])
        assert requeued.exit_code == 0 and "2 event(s) queued again" in requeued.output, requeued.output
        agent.sender.nudge()
        await wait_for(lambda: record in kernel.record_keys() and scan in kernel.event_keys(), timeout=20)
    finally:
        await agent.stop()
    history = kernel.api("GET", f"/units/{serial}/history").json()["events"]
    (stored,) = [e for e in history if e["type"] == "process_record"]
    assert stored["data"]["data"]["original_recorded_at"] == "1900-01-01T00:00:00+00:00"
    assert "IMPLAUSIBLE_TIME" in stored["data"]["data"]["original_recorded_at_refused"]
    assert stored["at"] > "2026" and stored["at"] == stored["received_at"]  # filed when the kernel got it
    (scanned,) = [e for e in history if e["type"] == "scan"]
    assert scanned["at"] > "2026"
