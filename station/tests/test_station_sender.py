"""The outbox sender against a real HTTP server: in order, batched, deduplicated, patient."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from mes_station.client import ServerClient
from mes_station.outbox import PROCESS_RECORD, STATION_EVENT, Outbox
from mes_station.sender import Sender, TransientFailure, backoff_delay
from mes_station.testing.contract_server import TOKEN
from mes_station.testing.helpers import wait_for


def _record(i: int, lot: str = "LOT-1") -> dict:
    return {
        "lot_number": lot,
        "process_id": "ASSY-10",
        "worker_id": "alice",
        "result": "pass",
        "data": {"i": i},
    }


def _sender(outbox: Outbox, base_url: str, **kw) -> tuple[Sender, ServerClient]:
    client = ServerClient(f"{base_url}/api/v1", TOKEN, timeout=2.0)
    kw.setdefault("batch_size", 20)
    return Sender(outbox, client, backoff_initial=0.05, backoff_max=0.2, **kw), client


def test_backoff_doubles_from_two_seconds_and_is_capped():
    assert [backoff_delay(n, 2.0, 60.0) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


async def test_single_event_is_marked_delivered_only_on_the_server_ack(tmp_path: Path, contract):
    state, server = contract
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        key, _ = outbox.enqueue(PROCESS_RECORD, _record(1))
        sender, client = _sender(outbox, server.base_url)
        assert await sender.send_next() == 1
        await client.aclose()
        assert outbox.get(key).status == "delivered"
        assert state.records[key]["data"] == {"i": 1}


async def test_backlog_goes_in_batches_in_sequence_order(tmp_path: Path, contract):
    state, server = contract
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        keys = [outbox.enqueue(PROCESS_RECORD, _record(i))[0] for i in range(45)]
        sender, client = _sender(outbox, server.base_url)
        assert await sender.drain() == 45
        await client.aclose()
        assert state.batch_requests == 3  # 20 + 20 + 5
        assert list(state.records) == keys  # the server received them in the station's order
        assert outbox.depth() == 0


async def test_station_events_and_records_interleave_in_order(tmp_path: Path, contract):
    state, server = contract
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        r1, _ = outbox.enqueue(PROCESS_RECORD, _record(1))
        e1, _ = outbox.enqueue(STATION_EVENT, {"type": "scan", "payload": {"code": "SN1"}})
        r2, _ = outbox.enqueue(PROCESS_RECORD, _record(2))
        sender, client = _sender(outbox, server.base_url)
        await sender.drain()
        await client.aclose()
        assert list(state.records) == [r1, r2]
        assert state.events[e1]["body"]["payload"] == {"code": "SN1"}


async def test_server_down_then_up_delivers_every_event_exactly_once(tmp_path: Path, contract):
    state, server = contract
    server.stop()
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        keys = [outbox.enqueue(PROCESS_RECORD, _record(i))[0] for i in range(60)]
        sender, client = _sender(outbox, server.base_url)
        task = asyncio.create_task(sender.run())
        await wait_for(lambda: sender.failures >= 3)  # backing off against a dead server
        assert outbox.depth() == 60
        assert "unreachable" in outbox.get(keys[0]).last_error
        server.start()  # back on the same port
        sender.nudge(reset_backoff=True)
        await wait_for(lambda: outbox.depth() == 0)
        sender.stop()
        await asyncio.wait_for(task, 5)
        await client.aclose()
    assert sorted(state.records) == sorted(keys)
    assert state.duplicates == 0


async def test_event_the_server_already_holds_is_acknowledged_not_doubled(tmp_path: Path, contract):
    state, server = contract
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        key, _ = outbox.enqueue(PROCESS_RECORD, _record(7))
        # The server stored it but the ack never arrived (power cut): the station still has it queued.
        state.store_record(outbox.get(key).body)
        sender, client = _sender(outbox, server.base_url)
        await sender.drain()
        await client.aclose()
        assert outbox.get(key).status == "delivered"
    assert len(state.records) == 1
    assert state.duplicates == 1


async def test_refused_events_are_kept_as_rejected_and_do_not_block_the_queue(tmp_path: Path, contract):
    state, server = contract
    state.lots = {"LOT-1": "in_progress", "LOT-OLD": "closed"}
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        ok1, _ = outbox.enqueue(PROCESS_RECORD, _record(1))
        closed, _ = outbox.enqueue(PROCESS_RECORD, _record(2, lot="LOT-OLD"))
        unknown, _ = outbox.enqueue(PROCESS_RECORD, _record(3, lot="LOT-NONE"))
        ok2, _ = outbox.enqueue(PROCESS_RECORD, _record(4))
        lone, _ = outbox.enqueue(STATION_EVENT, {"type": "scan", "payload": {}})
        conflict, _ = outbox.enqueue(PROCESS_RECORD, _record(5), idempotency_key="reused-key")
        state.store_record({**_record(99), "idempotency_key": "reused-key"})
        sender, client = _sender(outbox, server.base_url)
        await sender.drain()
        await client.aclose()
        assert outbox.get(ok1).status == outbox.get(ok2).status == outbox.get(lone).status == "delivered"
        assert outbox.get(closed).status == "rejected"
        assert "LOT_CLOSED" in outbox.get(closed).last_error
        assert outbox.get(unknown).status == "rejected"
        assert "NOT_FOUND" in outbox.get(unknown).last_error
        single = outbox.get(conflict)
        assert single.status == "rejected" and "IDEMPOTENCY_CONFLICT" in single.last_error


async def test_unavailable_server_is_retried_not_rejected(tmp_path: Path, contract):
    state, server = contract
    state.fail_with = 503
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        key, _ = outbox.enqueue(PROCESS_RECORD, _record(1))
        sender, client = _sender(outbox, server.base_url)
        with pytest.raises(TransientFailure):
            await sender.send_next()
        assert outbox.get(key).status == "queued"
        state.fail_with = None
        assert await sender.send_next() == 1
        await client.aclose()


async def test_wrong_token_waits_instead_of_rejecting_every_event(tmp_path: Path, contract):
    state, server = contract
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        key, _ = outbox.enqueue(PROCESS_RECORD, _record(1))
        client = ServerClient(f"{server.base_url}/api/v1", "mst_revoked", timeout=2.0)
        sender = Sender(outbox, client, backoff_initial=0.05, backoff_max=0.2)
        with pytest.raises(TransientFailure, match="401"):
            await sender.send_next()
        await client.aclose()
        assert outbox.get(key).status == "queued"


async def test_server_without_the_batch_route_gets_events_one_by_one(tmp_path: Path, contract):
    state, server = contract
    state.batch_route = False
    with Outbox(tmp_path / "o.sqlite3") as outbox:
        keys = [outbox.enqueue(PROCESS_RECORD, _record(i))[0] for i in range(5)]
        sender, client = _sender(outbox, server.base_url)
        await sender.drain()
        await client.aclose()
        assert not sender.batch_supported
        assert outbox.depth() == 0
    assert list(state.records) == keys
