"""Audit hashes survive the round trip through each database's JSON column."""

import uuid

from mes_kernel.audit import seal_pending, verify


async def test_numbers_that_jsonb_rewrites_still_verify(client, admin_headers, kernel, make_lot):
    lot = await make_lot()
    data = {"big": 1e20, "one": 1.0, "tiny": 1.2345678901234567e-05, "nested": [{"x": 2.50}], "text": "한글 ✓"}
    body = {"idempotency_key": uuid.uuid4().hex, "lot_number": lot["lot_number"], "process_id": "ASSY-10",
            "worker_id": "W-1", "result": "pass", "data": data}
    assert (await client.post("/api/v1/process-records", json=body, headers=admin_headers)).status_code == 201
    async with kernel.sessionmaker() as session:
        while await seal_pending(session, grace_seconds=0):
            await session.commit()
        result = await verify(session)
    assert result.ok and result.unsealed == 0, result


async def test_integers_beyond_64_bits_are_kept_exact(client, admin_headers, kernel, make_lot):
    lot = await make_lot()
    body = {"idempotency_key": uuid.uuid4().hex, "lot_number": lot["lot_number"], "process_id": "ASSY-10",
            "worker_id": "W-1", "result": "pass", "data": {"counter": 2**70}}
    r = await client.post("/api/v1/process-records", json=body, headers=admin_headers)
    assert r.status_code == 201 and r.json()["data"]["counter"] == 2**70
    again = await client.post("/api/v1/process-records", json=body, headers=admin_headers)
    assert again.status_code == 200 and again.json()["id"] == r.json()["id"]
    async with kernel.sessionmaker() as session:
        while await seal_pending(session, grace_seconds=0):
            await session.commit()
        assert (await verify(session)).ok
