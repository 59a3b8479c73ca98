"""``mes-station`` commands on a real outbox and against a real server."""

from __future__ import annotations

import json
from pathlib import Path

from mes_station.cli import app
from mes_station.config import load_config
from mes_station.outbox import PROCESS_RECORD, Outbox
from mes_station.testing.helpers import write_station_toml
from typer.testing import CliRunner

runner = CliRunner()


def _fill(toml: Path) -> tuple[str, str]:
    with Outbox(load_config(toml).outbox_path) as outbox:
        ok, _ = outbox.enqueue(
            PROCESS_RECORD, {"lot_number": "LOT-1", "process_id": "P", "worker_id": "w", "result": "pass"}
        )
        bad, _ = outbox.enqueue(
            PROCESS_RECORD, {"lot_number": "LOT-X", "process_id": "P", "worker_id": "w", "result": "pass"}
        )
        outbox.mark_rejected(bad, "409 LOT_CLOSED: LOT LOT-X is closed")
    return ok, bad


def test_outbox_list_shows_rejected_events_with_their_reason(station_toml: Path):
    ok, bad = _fill(station_toml)
    result = runner.invoke(app, ["outbox", "list", "--config", str(station_toml)])
    assert result.exit_code == 0, result.output
    assert ok in result.output and bad in result.output
    assert "LOT_CLOSED" in result.output
    assert "queued 1, rejected 1, delivered 0" in result.output


def test_outbox_retry_queues_rejected_events_again(station_toml: Path):
    _, bad = _fill(station_toml)
    result = runner.invoke(app, ["outbox", "retry", bad, "--config", str(station_toml)])
    assert result.exit_code == 0 and "1 event(s) queued again" in result.output
    with Outbox(load_config(station_toml).outbox_path) as outbox:
        assert outbox.get(bad).status == "queued"


def test_outbox_export_writes_every_event_as_json_lines(station_toml: Path, tmp_path: Path):
    ok, bad = _fill(station_toml)
    out = tmp_path / "export.jsonl"
    result = runner.invoke(app, ["outbox", "export", "-o", str(out), "--config", str(station_toml)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["idempotency_key"] for r in rows] == [ok, bad]
    assert rows[1]["status"] == "rejected" and rows[0]["body"]["lot_number"] == "LOT-1"


def test_status_shows_outbox_and_a_broken_driver_without_the_token(tmp_path: Path, contract):
    _, server = contract
    toml = write_station_toml(
        tmp_path / "station.toml",
        server_url=server.base_url,
        work_dir=tmp_path / "work",
        devices={"printer": {"driver": "no_such_driver"}, "scanner": {"driver": "simulator"}},
    )
    _fill(toml)
    result = runner.invoke(app, ["status", "--config", str(toml)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert report["outbox"]["queued"] == 1 and report["outbox"]["rejected"] == 1
    assert report["drivers"]["printer"]["loaded"] is False
    assert report["drivers"]["scanner"]["loaded"] is True
    assert report["agent"]["running"] is False
    assert "mst_test_station_token" not in result.output


def test_doctor_passes_against_a_reachable_server(station_toml: Path):
    result = runner.invoke(app, ["doctor", "--config", str(station_toml)])
    assert result.exit_code == 0, result.output
    for check in ("folder watch folder", "server", "station token", "clock"):
        assert f"[ok  ] {check}" in result.output


def test_doctor_fails_on_an_unreachable_server_and_a_broken_driver(tmp_path: Path, contract):
    _, server = contract
    url = server.base_url
    server.stop()
    toml = write_station_toml(
        tmp_path / "station.toml",
        server_url=url,
        work_dir=tmp_path / "work",
        devices={"printer": {"driver": "no_such_driver"}},
    )
    result = runner.invoke(app, ["doctor", "--config", str(toml)])
    assert result.exit_code == 1
    assert "[FAIL] server" in result.output
    assert "[FAIL] device printer" in result.output


def test_missing_config_is_a_clear_error(tmp_path: Path):
    result = runner.invoke(app, ["status", "--config", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "station configuration not found" in result.output


def test_outbox_retry_restamp_requeues_only_events_refused_for_their_time_keeping_the_original(station_toml: Path):
    _, closed = _fill(station_toml)
    with Outbox(load_config(station_toml).outbox_path) as outbox:
        record, _ = outbox.enqueue(PROCESS_RECORD, {"lot_number": "LOT-1", "process_id": "P", "worker_id": "w",
                                                    "result": "pass", "data": {"v": 1},
                                                    "recorded_at": "2999-01-01T00:00:00+00:00"})
        outbox.mark_rejected(record, "422 IMPLAUSIBLE_TIME: recorded_at 2999-01-01T00:00:00+00:00 is later than …")
        event, _ = outbox.enqueue("event", {"type": "scan", "payload": {
            "code": "SN-1", "recorded_at": "1900-01-01T00:00:00+00:00", "station_time": "1900-01-01T00:00:01+00:00"}})
        outbox.mark_rejected(event, "422 IMPLAUSIBLE_TIME: payload.recorded_at 1900-01-01T00:00:00+00:00 is older …")
    result = runner.invoke(app, ["outbox", "retry", "--restamp", "--config", str(station_toml)])
    assert result.exit_code == 0 and "2 event(s) queued again without their refused time" in result.output
    with Outbox(load_config(station_toml).outbox_path) as outbox:
        assert outbox.get(closed).status == "rejected"  # refused for another reason: left as it is
        sent = outbox.get(record)
        assert sent.status == "queued" and "recorded_at" not in sent.body
        assert sent.body["data"]["v"] == 1 and sent.body["data"]["original_recorded_at"] == "2999-01-01T00:00:00+00:00"
        assert sent.body["idempotency_key"] == record
        payload = outbox.get(event).body["payload"]
        assert "recorded_at" not in payload and "station_time" not in payload
        assert payload["original_recorded_at"] == "1900-01-01T00:00:00+00:00" and payload["code"] == "SN-1"
        assert payload["original_station_time"] == "1900-01-01T00:00:01+00:00"
