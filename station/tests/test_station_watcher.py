"""The completion-JSON watcher on real files: pieces, renames, duplicates, bad files, retention."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from mes_station.completion import Completion
from mes_station.outbox import PROCESS_RECORD, Outbox
from mes_station.testing.helpers import wait_for
from mes_station.watcher import CompletionWatcher, Outcome

GOOD = {
    "lot_number": "LOT-1",
    "process_id": "TEST-20",
    "serial_number": "SN0001",
    "result": "fail",
    "defect_code": "V-LOW",
    "measurements": {"voltage": 3.1, "current_ma": 120},
    "equipment_id": "ICT-7",
    "finished_at": "2026-11-26T05:00:00Z",
}


@dataclass
class Station:
    folder: Path
    work: Path
    outbox: Outbox
    watcher: CompletionWatcher
    outcomes: list[Outcome]


@pytest.fixture
async def station(tmp_path: Path) -> AsyncIterator[Station]:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outcomes: list[Outcome] = []

    def enqueue(completion: Completion, path: Path) -> tuple[str, bool]:
        body = completion.process_record(default_worker="equipment")
        return outbox.enqueue(PROCESS_RECORD, body, idempotency_key=completion.idempotency_key)

    watcher = CompletionWatcher(
        watch_folder=tmp_path / "inbox",
        archive_dir=tmp_path / "archive",
        quarantine_dir=tmp_path / "quarantine",
        on_completion=enqueue,
        settle_seconds=0.3,
        malformed_after_seconds=0.8,
        rescan_seconds=0.2,
        on_outcome=outcomes.append,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    yield Station(tmp_path / "inbox", tmp_path, outbox, watcher, outcomes)
    stop.set()
    await asyncio.wait_for(task, 5)
    outbox.close()


def _today_archive(station: Station) -> Path:
    return station.work / "archive" / datetime.now(UTC).strftime("%Y-%m-%d")


async def test_file_written_in_pieces_is_recorded_once_complete(station: Station):
    content = json.dumps(GOOD).encode()
    path = station.folder / "result-0001.json"
    with path.open("wb") as fh:
        for i in range(0, len(content), 40):
            fh.write(content[i : i + 40])
            fh.flush()
            os.fsync(fh.fileno())
            await asyncio.sleep(0.05)
            assert station.outbox.count() == 0  # never read half a file
    await wait_for(lambda: len(station.outcomes) == 1)
    [outcome] = station.outcomes
    assert outcome.action == "recorded"
    [event] = station.outbox.pending(5)
    assert event.body["lot_number"] == "LOT-1" and event.body["serial_number"] == "SN0001"
    assert event.body["result"] == "fail" and event.body["defect_code"] == "V-LOW"
    assert event.body["data"]["measurements"] == {"voltage": 3.1, "current_ma": 120}
    assert event.body["data"]["equipment_id"] == "ICT-7"
    assert not path.exists()
    assert (_today_archive(station) / "result-0001.json").read_bytes() == content


async def test_a_pause_mid_write_longer_than_settling_does_not_quarantine_the_file(station: Station):
    content = json.dumps(GOOD).encode()
    path = station.folder / "slow.json"
    path.write_bytes(content[:50])
    await asyncio.sleep(0.55)  # stable longer than settle_seconds, but not JSON yet
    assert station.outcomes == []
    with path.open("ab") as fh:
        fh.write(content[50:])
    await wait_for(lambda: len(station.outcomes) == 1)
    assert station.outcomes[0].action == "recorded"


async def test_write_to_temp_then_rename_is_picked_up_under_its_final_name(station: Station):
    tmp = station.folder / "result-0002.json.tmp"
    tmp.write_text(json.dumps(GOOD))
    await asyncio.sleep(0.5)
    assert station.outcomes == []  # a temp name is never read
    tmp.rename(station.folder / "result-0002.json")
    await wait_for(lambda: len(station.outcomes) == 1)
    assert station.outcomes[0].path.name == "result-0002.json"
    assert station.outbox.depth() == 1


async def test_same_file_dropped_twice_is_recorded_once(station: Station):
    content = json.dumps(GOOD)
    (station.folder / "a.json").write_text(content)
    await wait_for(lambda: len(station.outcomes) == 1)
    (station.folder / "a.json").write_text(content)  # the equipment sends it again, same name
    (station.folder / "copy.json").write_text(content)  # and once more under another name
    await wait_for(lambda: len(station.outcomes) == 3)
    assert [o.action for o in station.outcomes] == ["recorded", "duplicate", "duplicate"]
    assert station.outbox.count() == 1
    assert len({o.idempotency_key for o in station.outcomes}) == 1
    assert len(list(_today_archive(station).iterdir())) == 3  # nothing is lost: all archived


async def test_malformed_file_goes_to_quarantine_with_a_reason(station: Station):
    (station.folder / "broken.json").write_text('{"lot_number": "LOT-1", "result": ')
    await wait_for(lambda: len(station.outcomes) == 1)
    [outcome] = station.outcomes
    assert outcome.action == "quarantined"
    quarantined = station.work / "quarantine" / "broken.json"
    assert quarantined.exists()
    reason = (station.work / "quarantine" / "broken.json.reason").read_text()
    assert "not valid JSON" in reason
    assert station.outbox.count() == 0


async def test_file_breaking_the_schema_is_quarantined_naming_the_fields(station: Station):
    bad = {**GOOD, "result": "maybe", "measurements": [1, 2]}
    del bad["equipment_id"]
    (station.folder / "bad-schema.json").write_text(json.dumps(bad))
    await wait_for(lambda: len(station.outcomes) == 1)
    reason = (station.work / "quarantine" / "bad-schema.json.reason").read_text()
    assert "equipment_id" in reason and "result must be one of 'pass', 'fail' (got 'maybe')" in reason
    assert "measurements must be object (got [1, 2])" in reason
    assert station.outbox.count() == 0


async def test_file_without_serial_number_is_a_lot_level_record(station: Station):
    doc = {k: v for k, v in GOOD.items() if k not in ("serial_number", "defect_code")} | {"result": "pass"}
    (station.folder / "lot-level.json").write_text(json.dumps(doc))
    await wait_for(lambda: len(station.outcomes) == 1)
    [event] = station.outbox.pending(5)
    assert "serial_number" not in event.body


def test_archive_days_older_than_retention_are_pruned(tmp_path: Path):
    watcher = CompletionWatcher(
        watch_folder=tmp_path / "in",
        archive_dir=tmp_path / "archive",
        quarantine_dir=tmp_path / "q",
        on_completion=lambda c, p: ("k", True),
        retention_days=90,
    )
    today = date(2026, 11, 26)
    for day in (today, today - timedelta(days=90), today - timedelta(days=91), date(2020, 1, 1)):
        folder = tmp_path / "archive" / day.isoformat()
        folder.mkdir(parents=True)
        (folder / "x.json").write_text("{}")
    (tmp_path / "archive" / "notes").mkdir()
    assert watcher.prune_archive(today) == 2
    left = sorted(p.name for p in (tmp_path / "archive").iterdir())
    assert left == ["2026-08-28", "2026-11-26", "notes"]


async def test_attachments_named_by_the_file_travel_with_it_into_the_archive(station: Station):
    import hashlib

    csv = b"t,v\n0,3.30\n1,3.31\n"
    (station.folder / "ripple.csv").write_bytes(csv)
    doc = {
        **GOOD,
        "measurements": {"voltage": {"value": 3.1, "unit": "V", "low": 3.2, "high": 3.4, "verdict": "fail"}},
        "attachments": [{"file": "ripple.csv", "media_type": "text/csv", "sha256": hashlib.sha256(csv).hexdigest()}],
        "x-fixture": "F-12",
    }
    (station.folder / "with-files.json").write_text(json.dumps(doc))
    await wait_for(lambda: len(station.outcomes) == 1)
    assert station.outcomes[0].action == "recorded"
    [event] = station.outbox.pending(5)
    assert event.body["data"]["attachments"] == [
        {"name": "ripple.csv", "sha256": hashlib.sha256(csv).hexdigest(), "size": len(csv), "media_type": "text/csv"}
    ]
    assert event.body["data"]["extensions"] == {"x-fixture": "F-12"}
    assert (_today_archive(station) / "with-files.files" / "ripple.csv").read_bytes() == csv
    assert not (station.folder / "ripple.csv").exists()


def test_a_missing_attachment_is_waited_for_then_the_file_is_quarantined(tmp_path: Path):
    """On an injected clock: a named attachment may arrive after the JSON, up to malformed_after_seconds."""
    now = [0.0]
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:

        def enqueue(completion: Completion, path: Path) -> tuple[str, bool]:
            body = completion.process_record(default_worker="equipment")
            return outbox.enqueue(PROCESS_RECORD, body, idempotency_key=completion.idempotency_key)

        watcher = CompletionWatcher(
            watch_folder=tmp_path / "inbox",
            archive_dir=tmp_path / "archive",
            quarantine_dir=tmp_path / "quarantine",
            on_completion=enqueue,
            settle_seconds=1.0,
            malformed_after_seconds=10.0,
            rescan_seconds=0.0,
            clock=lambda: now[0],
        )
        inbox = tmp_path / "inbox"
        (inbox / "late.json").write_text(json.dumps({**GOOD, "attachments": [{"file": "late.png"}]}))
        (inbox / "never.json").write_text(
            json.dumps({**GOOD, "serial_number": "SN0002", "attachments": [{"file": "gone.png"}]})
        )
        assert watcher.poll() == []  # first seen
        now[0] = 5.0
        assert watcher.poll() == []  # settled, attachments missing: waited for
        (inbox / "late.png").write_bytes(b"\x89PNG")
        now[0] = 6.0
        [recorded] = watcher.poll()
        assert recorded.action == "recorded" and recorded.path.name == "late.json"
        now[0] = 10.5
        [quarantined] = watcher.poll()
        assert quarantined.action == "quarantined" and quarantined.path.name == "never.json"
        assert "gone.png" in (tmp_path / "quarantine" / "never.json.reason").read_text()
        assert outbox.count() == 1


async def test_an_attachment_whose_checksum_differs_quarantines_the_file_and_the_attachment(station: Station):
    (station.folder / "scan.png").write_bytes(b"not the declared bytes")
    doc = {**GOOD, "attachments": [{"file": "scan.png", "sha256": "0" * 64}]}
    (station.folder / "bad-sum.json").write_text(json.dumps(doc))
    await wait_for(lambda: len(station.outcomes) == 1)
    reason = (station.work / "quarantine" / "bad-sum.json.reason").read_text()
    assert "SHA-256" in reason
    assert (station.work / "quarantine" / "bad-sum.files" / "scan.png").exists()
    assert station.outbox.count() == 0


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"finished_at": "2026-11-26T05:00:00"}, "finished_at must be an RFC 3339 time with a zone"),
        ({"measurements": {"v": {"value": 1.0, "verdict": "pass"}}}, "measurements/v"),
        ({"attachments": [{"file": "../etc/passwd"}]}, "attachments/0/file"),
        ({"serialnumber": "SN-typo"}, "vendor fields start with 'x-'"),
        # the server takes identifiers exactly, never trimmed: the file says so here, not a rejection later
        ({"serial_number": "SN0001 "}, "serial_number: has leading or trailing whitespace"),
        ({"worker_id": "\ufeffW-1"}, "worker_id: contains an invisible character U+FEFF"),
        ({"defect_code": "V\u200bLOW"}, "defect_code: contains an invisible character U+200B"),
        ({"measurements": {"v": float("nan")}}, "NaN is not a JSON number"),
    ],
)
async def test_schema_violations_name_the_place_in_plain_words(station: Station, change, words):
    (station.folder / "bad.json").write_text(json.dumps({**GOOD, **change}))
    await wait_for(lambda: len(station.outcomes) == 1)
    reason = (station.work / "quarantine" / "bad.json.reason").read_text()
    assert words in reason, reason
