"""Offline-first against the real kernel: a worker records a whole LOT with the server stopped,
logs in offline, and every record arrives once when the server is back."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from mes_station.agent import Agent
from mes_station.cache import StationCache
from mes_station.cli import app as cli_app
from mes_station.errors import LoginError, OfflineError
from mes_station.outbox import Outbox
from mes_station.testing.helpers import wait_for, write_station_toml
from mes_station.testing.kernel_server import REQUEST_TIMEOUT, KernelServer, start_kernel
from typer.testing import CliRunner

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
        ui={"defect_codes": ["LOCAL-1"]},
        # the cache syncs at start and login only: the test decides
        **{"offline": {"cache_sync_seconds": 3600}, **sections},
    )


async def test_a_whole_lot_recorded_with_the_kernel_stopped_arrives_once(tmp_path: Path, kernel_server):
    kernel = kernel_server
    serials = kernel.make_lot("LOT-OFF", units=4, serial_prefix="SN-OFF")
    kernel.create_user("alice", "alice-password")
    r = kernel.api(
        "PUT",
        "/processes/TEST-20/defect-codes",
        json={"defect_codes": [{"code": "V-LOW", "name": "Voltage low"}, {"code": "NO-BOOT", "name": "No boot"}]},
    )
    assert r.status_code == 200, r.text
    image = kernel.upload_firmware("PRD-100", "1.4.0", b"\x7fELF" + bytes(range(256)) * 16)
    agent = Agent.from_config(_toml(tmp_path, kernel))
    deliveries: list[dict] = []
    agent.subscribe(lambda kind, payload: deliveries.append(payload) if kind == "delivery" else None)
    await agent.start()
    try:
        await wait_for(lambda: agent.status()["cache"]["units"] == 4, timeout=30)
        synced_before_login = agent.status()["cache"]["synced_at"]
        assert (await agent.login("alice", "alice-password"))["offline"] is False
        # a login syncs the cache again; after that, nothing does until cache_sync_seconds (an hour)
        await wait_for(lambda: agent.status()["cache"]["synced_at"] != synced_before_login, timeout=30)
        # a unit registered after the station's last sync: the cache does not know it
        r = kernel.api("POST", "/lots/LOT-OFF/units", json={"serial_numbers": ["SN-OFF-LATE"]})
        assert r.status_code == 201, r.text

        online_images = await agent.firmware_images("PRD-100")
        kernel.stop()
        assert agent.worker == "alice"  # logged in before the outage: stays logged in
        assert await agent.firmware_images("PRD-100") == online_images
        assert [(i["id"], i["version"], i["product"]) for i in online_images] == [(image["id"], "1.4.0", "PRD-100")]
        assert await agent.firmware_images("PRD-999") == []
        keys = []
        for serial in serials:
            unit = await agent.lookup(serial)
            assert unit["source"] == "cache" and unit["kind"] == "unit"
            assert unit["lot"]["lot_number"] == "LOT-OFF" and unit["next_process"]["id"] == "ASSY-10"
            keys.append(
                agent.record_result(
                    lot_number="LOT-OFF",
                    process_id="ASSY-10",
                    worker_id=agent.worker,
                    result="pass",
                    serial_number=serial,
                )
            )
            again = await agent.lookup(serial)  # the queued pass moves the unit on
            assert again["next_process"]["id"] == "TEST-20" and again["completed_processes"] == ["ASSY-10"]
            failing = serial == serials[-1]
            defect = agent.defect_codes("TEST-20")[0]["code"] if failing else None
            keys.append(
                agent.record_result(
                    lot_number=unit["lot"]["lot_number"],
                    process_id="TEST-20",
                    worker_id=agent.worker,
                    result="fail" if failing else "pass",
                    serial_number=serial,
                    defect_code=defect,
                )
            )
        assert [d["code"] for d in agent.defect_codes("TEST-20")] == ["V-LOW", "NO-BOOT"]
        assert agent.defect_codes("PACK-30") == [{"code": "LOCAL-1", "name": "LOCAL-1"}]
        lot = await agent.lookup("LOT-OFF")
        assert lot["kind"] == "lot" and lot["source"] == "cache" and lot["lot"]["units"] == 4

        late = await agent.lookup("SN-OFF-LATE")
        assert late == {"kind": "unknown", "code": "SN-OFF-LATE", "source": "cache", "serial_number": "SN-OFF-LATE"}
        late_key = agent.record_result(
            lot_number=None, process_id="ASSY-10", worker_id=agent.worker, result="pass", serial_number="SN-OFF-LATE"
        )
        ghost_key = agent.record_result(
            lot_number=None, process_id="ASSY-10", worker_id=agent.worker, result="pass", serial_number="SN-GHOST"
        )
        assert agent.outbox_depth() >= 10 and not agent.online
        assert {d["key"] for d in deliveries if d["state"] == "queued"} >= {*keys, late_key, ghost_key}

        # a new shift while the server is still off: the cached credential lets alice in, nobody else
        agent.logout()
        with pytest.raises(LoginError) as wrong:
            await agent.login("alice", "not-her-password")
        assert wrong.value.code == "INVALID_CREDENTIALS" and agent.worker is None
        with pytest.raises(LoginError) as stranger:
            await agent.login("bob", "bob-password")
        assert stranger.value.code == "OFFLINE_LOGIN_UNAVAILABLE"
        assert (await agent.login("ALICE", "alice-password"))["offline"] is True
        assert agent.worker == "alice"

        kernel.restart()
        await wait_for(lambda: agent.outbox_depth() == 0, timeout=60)
        await wait_for(lambda: {d["key"] for d in deliveries if d["state"] != "queued"} >= {*keys, late_key, ghost_key})
    finally:
        await agent.stop()
    stored = kernel.record_keys()
    assert len(stored) == len(set(stored)) == len(keys) + 1
    assert set(stored) == {*keys, late_key}
    settled = {d["key"]: d for d in deliveries if d["state"] != "queued"}
    assert all(settled[k]["state"] == "delivered" for k in (*keys, late_key))
    assert settled[ghost_key]["state"] == "rejected" and settled[ghost_key]["code"] == "UNIT_NOT_FOUND"
    history = kernel.api("GET", "/units/SN-OFF-LATE/history").json()
    assert history["lot_number"] == "LOT-OFF" and history["total"] >= 1
    with Outbox(tmp_path / "work" / "outbox.sqlite3") as outbox:
        assert outbox.get(ghost_key).status == "rejected"
        assert outbox.get(late_key).body["lot_number"] == "LOT-OFF"


async def test_the_cache_syncs_in_full_once_then_by_changes_since_its_cursor(tmp_path: Path, kernel_server):
    kernel = kernel_server
    kernel.make_lot("LOT-D1", units=2, serial_prefix="SN-D1")
    kernel.make_lot("LOT-D2", units=1, serial_prefix="SN-D2")
    agent = Agent.from_config(_toml(tmp_path, kernel))
    await agent.start()
    try:
        await wait_for(lambda: agent.status()["cache"]["units"] == 3, timeout=30)
        assert agent.status()["cache"]["sync_mode"] == "full" and agent.cache.cursor()

        r = kernel.api("POST", "/lots/LOT-D1/units", json={"serial_numbers": ["SN-D1-LATE"]})
        assert r.status_code == 201, r.text
        kernel.set_lot_status("LOT-D1", "on_hold")
        kernel.set_lot_status("LOT-D2", "closed")
        assert agent.cache.unit("SN-D1-LATE") is None
        status = await agent.sync_cache()
        assert status["sync_mode"] == "delta" and status["units"] == 3  # +1 registered, -1 of the closed LOT
        assert agent.cache.unit("SN-D1-LATE")["lot_number"] == "LOT-D1"
        assert agent.cache.lot("LOT-D1")["status"] == "on_hold"
        assert agent.cache.lot("LOT-D2") is None and agent.cache.unit("SN-D2-0001") is None
        late = await agent.lookup("SN-D1-LATE")  # the server answers; offline the cache would too
        assert late["kind"] == "unit"

        # a cursor the server does not know (another server's, a restored backup's) costs one full sync
        with agent.cache._lock:
            agent.cache._set_meta("cursor", "not-a-cursor")
        status = await agent.sync_cache()
        assert status["sync_mode"] == "full" and status["units"] == 3 and agent.cache.cursor() != "not-a-cursor"
    finally:
        await agent.stop()


async def test_a_first_sync_larger_than_a_page_comes_whole_and_resumes_where_it_was_cut_off(
    tmp_path: Path, kernel_server
):
    kernel = kernel_server
    serials = kernel.make_lot("LOT-PG1", units=7, serial_prefix="SN-PG1")
    serials += kernel.make_lot("LOT-PG2", units=5, serial_prefix="SN-PG2")
    agent = Agent.from_config(_toml(tmp_path, kernel, offline={"cache_sync_seconds": 3600, "cache_page_units": 5}))
    asked: list[dict] = []
    read = agent._read

    async def recording_read(method, path, **kwargs):
        if path == "/stations/me/cache":
            asked.append(dict(kwargs.get("params") or {}))
        return await read(method, path, **kwargs)

    agent._read = recording_read
    staged: list[list[str]] = []
    stage = agent.cache.stage_page

    def stage_then_cut_off(page, *, first):
        stage(page, first=first)
        staged.append([u["serial_number"] for u in page["units"]])
        if len(staged) == 2:
            kernel.stop()  # the connection drops after the second page of three

    agent.cache.stage_page = stage_then_cut_off
    try:
        with pytest.raises(OfflineError):
            await agent.sync_cache()
        # nothing half-written: readers still see the previous (empty) cache, the two pages wait
        assert agent.status()["cache"]["units"] == 0 and agent.cache.next_page()
        assert [p.get("page") for p in asked] == [None, asked[1]["page"], asked[2]["page"]]
        kernel.restart()
        asked.clear()
        status = await agent.sync_cache()
        # resumed at the third page: one request, no page asked twice, every unit cached once
        assert len(asked) == 1 and asked[0]["page"]
        assert status["sync_mode"] == "full" and status["units"] == 12 and status["lots"] >= 2
        assert all(agent.cache.unit(s)["lot_number"] in ("LOT-PG1", "LOT-PG2") for s in serials)
        assert sorted(sum(staged, [])) == sorted(serials[:10]) and agent.cache.next_page() is None
        assert agent.cache.cursor()
        # the next sync asks from the snapshot's cursor (more changes than a page since: in full again)
        asked.clear()
        assert (await agent.sync_cache())["units"] == 12 and asked[0].get("since")
    finally:
        await agent.stop()


async def test_a_lookup_the_server_refuses_is_not_answered_from_the_cache(tmp_path: Path, kernel_server):
    kernel = kernel_server
    agent = Agent.from_config(_toml(tmp_path, kernel))
    await agent.start()
    try:
        from mes_station.errors import ServerError

        with pytest.raises(ServerError) as refused:
            await agent.lookup("SN-NOBODY-KNOWS")
        assert refused.value.status == 404 and agent.online
    finally:
        await agent.stop()


def test_a_cached_credential_expires_and_is_never_the_password(tmp_path: Path):
    cache = StationCache(tmp_path / "cache.sqlite3")
    try:
        cache.remember_login("Kim", "s3cret-pw", role="worker")
        cache.remember_login("lee", "s3cret-pw", role="worker")
        rows = cache._conn.execute("SELECT username, salt, hash, n FROM credentials ORDER BY username").fetchall()
        assert all(b"s3cret-pw" not in bytes(r["hash"]) and r["n"] >= 2**15 for r in rows)
        assert rows[0]["salt"] != rows[1]["salt"] and rows[0]["hash"] != rows[1]["hash"]
        now = datetime.now(UTC)
        assert cache.check_login("kim", "s3cret-pw", max_age_days=7, now=now + timedelta(days=6))["username"] == "Kim"
        with pytest.raises(LoginError) as expired:
            cache.check_login("kim", "s3cret-pw", max_age_days=7, now=now + timedelta(days=7, minutes=1))
        assert expired.value.code == "OFFLINE_LOGIN_UNAVAILABLE"
        cache.forget_login("KIM")
        with pytest.raises(LoginError) as forgotten:
            cache.check_login("kim", "s3cret-pw", max_age_days=7)
        assert forgotten.value.code == "OFFLINE_LOGIN_UNAVAILABLE"
    finally:
        cache.close()


def _report(path: Path, *, lot: str, serial: str | None, waveform_points: int = 0, attachments=()) -> dict:
    doc = {
        "schema_version": 1,
        "lot_number": lot,
        "process_id": "TEST-20",
        "result": "pass",
        "equipment_id": "ICT-07",
        "finished_at": (datetime.now(UTC) - timedelta(hours=1)).astimezone(timezone(timedelta(hours=9))).isoformat(),
        "measurements": {
            "supply_voltage": {"value": 3.31, "unit": "V", "low": 3.2, "high": 3.4, "verdict": "pass"},
            "idle_current": {"value": 41.8, "unit": "mA", "low": 0, "high": 50, "verdict": "pass"},
        },
        "attachments": list(attachments),
    }
    if serial:
        doc["serial_number"] = serial
    text = json.dumps(doc)
    if waveform_points:  # a waveform in the measurements, as the report that once got a 413
        samples = ",".join(["0.1234567"] * waveform_points)
        wave = f'"ripple": {{"value": [{samples}], "unit": "V", "verdict": "none"}}, '
        text = text.replace('"measurements": {', '"measurements": {' + wave, 1)
    path.write_text(text, encoding="utf-8")
    return doc


async def test_a_25_mb_report_arrives_with_its_attachments_and_a_refused_one_is_quarantined(
    tmp_path: Path, kernel_server
):
    kernel = kernel_server
    [serial] = kernel.make_lot("LOT-CF", units=1, serial_prefix="SN-CF")
    toml = _toml(tmp_path, kernel)
    agent = Agent.from_config(toml)
    inbox = agent.config.watch_folder
    inbox.mkdir(parents=True, exist_ok=True)
    image = bytes(range(256)) * 4096  # 1 MiB "AOI image"
    (inbox / "SN-CF-top.png").write_bytes(image)
    staging = tmp_path / "big.json.part"
    _report(
        staging,
        lot="LOT-CF",
        serial=serial,
        waveform_points=2_700_000,
        attachments=[{"file": "SN-CF-top.png", "media_type": "image/png", "description": "top side"}],
    )
    report_bytes = staging.read_bytes()
    assert len(report_bytes) > 25 * 1024 * 1024
    staging.rename(inbox / "SN-CF-0001.json")  # written under another name, then renamed: as equipment does
    _report(inbox / "unknown-lot.json", lot="LOT-NOBODY", serial=None)
    await agent.start()
    try:
        await wait_for(lambda: len(kernel.record_keys()) == 1 and agent.outbox_depth() == 0, timeout=120)
        await wait_for(lambda: agent.status()["quarantined"] == 1, timeout=30)
    finally:
        await agent.stop()
    [key] = kernel.record_keys()
    attachments = kernel.api("GET", "/completions/attachments", params={"record_key": key}).json()["items"]
    by_name = {a["name"]: a for a in attachments}
    assert set(by_name) == {"SN-CF-0001.json", "SN-CF-top.png"}
    assert by_name["SN-CF-0001.json"]["sha256"] == hashlib.sha256(report_bytes).hexdigest()
    assert by_name["SN-CF-0001.json"]["size"] == len(report_bytes)
    assert by_name["SN-CF-top.png"]["sha256"] == hashlib.sha256(image).hexdigest()
    content = kernel.api("GET", f"/completions/attachments/{by_name['SN-CF-top.png']['id']}/content")
    assert content.content == image
    history = kernel.api("GET", f"/units/{serial}/history").json()
    assert history["lot_number"] == "LOT-CF" and history["total"] >= 1
    assert list((tmp_path / "work" / "attachments").iterdir()) == []  # sent: the archive keeps the originals
    quarantine = tmp_path / "work" / "quarantine"
    assert (quarantine / "unknown-lot.json").exists()
    reason = (quarantine / "unknown-lot.json.reason").read_text()
    assert "LOT_NOT_FOUND" in reason
    assert not list((tmp_path / "work" / "archive").rglob("unknown-lot.json"))
    result = CliRunner().invoke(cli_app, ["status", "--config", str(toml)])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert status["quarantined"] == 1 and "quarantine" in result.stderr
    with Outbox(tmp_path / "work" / "outbox.sqlite3") as outbox:
        [event] = [e for e in outbox.list() if e.idempotency_key == key]
    measurements = event.body["data"]["measurements"]
    assert measurements["supply_voltage"]["value"] == 3.31
    assert measurements["ripple"]["value"] == {
        "attachment": "SN-CF-0001.json",
        "pointer": "/measurements/ripple",
        "bytes": measurements["ripple"]["value"]["bytes"],
    }


async def test_the_contract_server_feeds_the_cache_for_window_tests(tmp_path: Path, contract):
    """``mes_station.testing.contract_server`` serves a station cache, so tests of the window can run
    the real agent offline without the kernel."""
    state, server = contract
    state.station_cache = {
        "synced_at": "2026-11-30T06:00:00+00:00",
        "lots": [{"lot_number": "LOT-C", "product": "PRD-1", "status": "in_progress", "quantity": 1}],
        "units": [{"serial_number": "SN-C1", "lot_number": "LOT-C", "status": "in_progress"}],
        "processes": [
            {"id": "P1", "name": "Assembly", "sequence": 10, "defect_codes": [{"code": "D1", "name": "Scratch"}]},
            {"id": "P2", "name": "Test", "sequence": 20, "defect_codes": []},
        ],
    }
    state.firmware_images = [{"id": 3, "product": "PRD-1", "version": "2.0", "name": "fw.bin"}]
    toml = write_station_toml(tmp_path / "station.toml", server_url=server.base_url, work_dir=tmp_path / "work")
    agent = Agent.from_config(toml)
    await agent.start()
    try:
        await wait_for(lambda: agent.status()["cache"]["units"] == 1, timeout=30)
        server.stop()
        unit = await agent.lookup("SN-C1")
        assert unit["source"] == "cache" and unit["next_process"] == {"id": "P1", "name": "Assembly", "sequence": 10}
        assert agent.defect_codes("P1") == [{"code": "D1", "name": "Scratch"}]
        assert [i["id"] for i in await agent.firmware_images("PRD-1")] == [3]
        assert agent.status()["cache"] == {
            "synced_at": "2026-11-30T06:00:00+00:00",
            "sync_mode": "full",
            "lots": 1,
            "units": 1,
        }
    finally:
        await agent.stop()


async def test_an_attachment_over_the_servers_limit_quarantines_its_file(tmp_path: Path, settings):
    object.__setattr__(settings, "max_attachment_bytes", 64 * 1024)
    kernel = start_kernel(settings)
    try:
        kernel.make_lot("LOT-BIG")
        agent = Agent.from_config(_toml(tmp_path, kernel))
        inbox = agent.config.watch_folder
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / "scope.bin").write_bytes(b"\x00" * (128 * 1024))
        _report(inbox / "too-big.json", lot="LOT-BIG", serial=None, attachments=[{"file": "scope.bin"}])
        await agent.start()
        try:
            await wait_for(lambda: agent.status()["quarantined"] == 1, timeout=60)
            assert agent.outbox_depth() == 0 and agent.status()["outbox_rejected"] == 1
        finally:
            await agent.stop()
        assert kernel.record_keys() == []
    finally:
        kernel.stop()
    quarantine = tmp_path / "work" / "quarantine"
    reason = (quarantine / "too-big.json.reason").read_text()
    assert "PAYLOAD_TOO_LARGE" in reason and "scope.bin" in reason
    assert (quarantine / "too-big.files" / "scope.bin").stat().st_size == 128 * 1024
