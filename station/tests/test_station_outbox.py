"""The SQLite outbox: committed before "saved", ordered by sequence, honest about a full disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from mes_station.errors import OutboxFullError
from mes_station.outbox import PROCESS_RECORD, STATION_EVENT, Outbox


def _record(i: int = 0, **extra) -> dict:
    return {
        "lot_number": "LOT-1",
        "process_id": "ASSY-10",
        "worker_id": "alice",
        "result": "pass",
        "data": {"i": i},
        **extra,
    }


def test_event_is_committed_before_enqueue_returns(tmp_path: Path):
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        key, created = outbox.enqueue(PROCESS_RECORD, _record())
        # A second, independent connection (another process would see the same) reads it at once.
        other = sqlite3.connect(tmp_path / "outbox.sqlite3")
        row = other.execute("SELECT status, body FROM events WHERE idempotency_key = ?", (key,)).fetchone()
        other.close()
    assert created
    assert row[0] == "queued"
    assert f'"idempotency_key":"{key}"' in row[1]


def test_outbox_runs_in_wal_with_full_synchronous_commits(tmp_path: Path):
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        assert outbox._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert outbox._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_same_key_is_stored_once(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        first = outbox.enqueue(PROCESS_RECORD, _record(), idempotency_key="k-1")
        second = outbox.enqueue(PROCESS_RECORD, _record(), idempotency_key="k-1")
        assert first == ("k-1", True)
        assert second == ("k-1", False)
        assert outbox.depth() == 1


def test_pending_orders_by_sequence_even_when_the_clock_ran_backwards(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        keys = [outbox.enqueue(STATION_EVENT, {"type": "scan", "payload": {"i": i}})[0] for i in range(5)]
        # The PC's clock jumped: later events carry earlier (and future) wall-clock times.
        times = [
            "2030-01-01T00:00:00+00:00",
            "2020-01-01T00:00:00+00:00",
            "2025-06-01T00:00:00+00:00",
            "1999-01-01T00:00:00+00:00",
            "2024-01-01T00:00:00+00:00",
        ]
        for key, when in zip(keys, times, strict=True):
            outbox._conn.execute("UPDATE events SET created_at = ? WHERE idempotency_key = ?", (when, key))
        assert [e.idempotency_key for e in outbox.pending(10)] == keys
        assert outbox.oldest_queued_age() == 0.0  # a creation time in the future never gives a negative age


def test_full_disk_raises_outbox_full_error_and_keeps_what_was_saved(tmp_path: Path):
    path = tmp_path / "o.sqlite3"
    with Outbox(path) as outbox:
        saved = [outbox.enqueue(PROCESS_RECORD, _record(i))[0] for i in range(3)]
        pages = outbox._conn.execute("PRAGMA page_count").fetchone()[0]
        # The database may not grow past its current size: the honest stand-in for a full disk.
        outbox._conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(OutboxFullError, match="full"):
            for i in range(1000):
                outbox.enqueue(PROCESS_RECORD, _record(i, data={"blob": "x" * 4000}))
        queued = [e.idempotency_key for e in outbox.pending(10_000)]
        assert queued[:3] == saved
        # every event that enqueue returned for is there; the one that raised is not
        assert len(queued) == outbox.depth()


def test_rejected_events_stay_visible_and_can_be_retried(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        key, _ = outbox.enqueue(PROCESS_RECORD, _record())
        outbox.mark_rejected(key, "409 LOT_CLOSED: LOT LOT-1 is closed")
        assert outbox.depth() == 0
        [event] = outbox.list("rejected")
        assert event.last_error.startswith("409 LOT_CLOSED")
        assert outbox.retry() == 1
        assert [e.idempotency_key for e in outbox.pending(5)] == [key]


def test_delivered_events_are_pruned_but_queued_ones_never(tmp_path: Path):
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        sent, _ = outbox.enqueue(PROCESS_RECORD, _record(1))
        waiting, _ = outbox.enqueue(PROCESS_RECORD, _record(2))
        outbox.mark_delivered([(sent, {"id": 1})])
        outbox._conn.execute(
            "UPDATE events SET delivered_at = '2000-01-01T00:00:00+00:00', created_at = '2000-01-01T00:00:00+00:00'"
        )
        assert outbox.prune_delivered(30) == 1
        assert outbox.get(sent) is None
        assert outbox.get(waiting).status == "queued"
