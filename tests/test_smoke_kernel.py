"""First end-to-end pass over the kernel: log in, create a LOT, record a result."""

import uuid


async def test_lot_record_roundtrip(client, admin_headers, make_lot):
    lot = await make_lot(units=2)
    key = uuid.uuid4().hex
    body = {"idempotency_key": key, "lot_number": lot["lot_number"], "process_id": "ASSY-10",
            "worker_id": "W-1", "serial_number": lot["serial_numbers"][0], "result": "pass"}
    r = await client.post("/api/v1/process-records", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    again = await client.post("/api/v1/process-records", json=body, headers=admin_headers)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == r.json()["id"]
    hist = await client.get(f"/api/v1/lots/{lot['lot_number']}/history", headers=admin_headers)
    assert hist.status_code == 200
    # newest first: the record (the retry added nothing), the start it caused, two registrations, the creation
    assert [e["type"] for e in hist.json()["events"]] == [
        "process_record", "status_change", "registration", "registration", "status_change"]
    assert hist.json()["status"] == "in_progress"
