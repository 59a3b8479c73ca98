"""Completion files on the server: the schema vendors target, streamed attachments, defect lists per
process, and the offline cache a station fetches."""

from __future__ import annotations

import hashlib
import json
import uuid
from importlib import resources

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import select

from mes_kernel.db.models import AuditEntry

API = "/api/v1"


def _chunks(data: bytes, size: int = 256 * 1024):
    async def gen():
        for i in range(0, len(data), size):
            yield data[i : i + size]

    return gen()


async def test_the_schema_is_served_without_a_login_and_its_examples_conform(client):
    r = await client.get(f"{API}/completions/schema")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/schema+json")
    schema = r.json()
    packaged = json.loads(resources.files("mes_kernel").joinpath("completion.schema.json").read_text("utf-8"))
    assert schema == packaged
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    assert len(schema["examples"]) >= 2
    for example in schema["examples"]:
        assert list(validator.iter_errors(example)) == []
    first = schema["examples"][0]
    measurement = next(iter(first["measurements"].values()))
    assert {"value", "unit", "low", "high", "verdict"} <= set(measurement)
    assert first["attachments"] and {"file", "media_type"} <= set(first["attachments"][0])
    no_zone = {**first, "finished_at": "2026-11-30T06:00:12"}
    assert [e.absolute_path[-1] for e in validator.iter_errors(no_zone)] == ["finished_at"]
    no_unit = {**first, "measurements": {"v": {"value": 1.0, "verdict": "pass"}}}
    assert list(validator.iter_errors(no_unit))


async def test_defect_codes_per_process_are_edited_by_managers_and_audited(
    client, kernel, make_lot, manager_headers, worker_headers
):
    await make_lot()  # creates the processes
    url = f"{API}/processes/TEST-20/defect-codes"
    assert (await client.get(url, headers=worker_headers)).json() == {"process_id": "TEST-20", "defect_codes": []}
    codes = [{"code": "V-LOW", "name": "Voltage low"}, {"code": "NO-BOOT", "name": "Does not boot"}]
    r = await client.put(url, json={"defect_codes": codes}, headers=manager_headers)
    assert r.status_code == 200, r.text
    assert (await client.get(url, headers=worker_headers)).json()["defect_codes"] == codes
    r = await client.put(url, json={"defect_codes": codes[:1]}, headers=worker_headers)
    assert r.status_code == 403 and r.json()["detail"]["code"] == "FORBIDDEN"
    r = await client.put(url, json={"defect_codes": [codes[0], codes[0]]}, headers=manager_headers)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "VALIDATION_ERROR"
    r = await client.get(f"{API}/processes/NOPE/defect-codes", headers=worker_headers)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "PROCESS_NOT_FOUND"
    r = await client.put(url, json={"defect_codes": [{"code": "bad code!"}]}, headers=manager_headers)
    assert r.status_code == 422
    async with kernel.sessionmaker() as session:
        [entry] = (
            await session.execute(select(AuditEntry).where(AuditEntry.entity == "process_defect_codes"))
        ).scalars()
    assert entry.entity_id == "TEST-20" and entry.after == {"defect_codes": codes}


async def test_a_record_with_a_defect_code_missing_from_the_list_is_kept(
    client, make_lot, manager_headers, station_headers
):
    """A station offline since the list changed must not lose its record (docs/completion-files.md)."""
    lot = await make_lot(units=1)
    await client.put(
        f"{API}/processes/TEST-20/defect-codes", json={"defect_codes": [{"code": "V-LOW"}]}, headers=manager_headers
    )
    body = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": lot["lot_number"],
        "process_id": "TEST-20",
        "worker_id": "w1",
        "result": "fail",
        "defect_code": "RETIRED-CODE",
        "serial_number": lot["serial_numbers"][0],
    }
    r = await client.post(f"{API}/process-records", json=body, headers=station_headers)
    assert r.status_code == 201 and r.json()["defect_code"] == "RETIRED-CODE"


async def test_the_station_cache_holds_open_lots_units_routing_and_defect_lists(
    client, make_lot, manager_headers, station_headers, worker_headers
):
    open_lot = await make_lot(units=2)
    closed = await make_lot(units=1)
    r = await client.patch(f"{API}/lots/{closed['lot_number']}", json={"status": "closed"}, headers=manager_headers)
    assert r.status_code == 200, r.text
    await client.put(
        f"{API}/processes/ASSY-10/defect-codes",
        json={"defect_codes": [{"code": "SOLDER", "name": "Solder bridge"}]},
        headers=manager_headers,
    )
    first = open_lot["serial_numbers"][0]
    record = {
        "idempotency_key": uuid.uuid4().hex,
        "lot_number": open_lot["lot_number"],
        "process_id": "ASSY-10",
        "worker_id": "w1",
        "result": "pass",
        "serial_number": first,
    }
    assert (await client.post(f"{API}/process-records", json=record, headers=station_headers)).status_code == 201
    r = await client.get(f"{API}/stations/me/cache", headers=station_headers)
    assert r.status_code == 200, r.text
    cache = r.json()
    assert [lot["lot_number"] for lot in cache["lots"]] == [open_lot["lot_number"]]
    units = {u["serial_number"]: u for u in cache["units"]}
    assert set(units) == set(open_lot["serial_numbers"])
    assert units[first]["completed_processes"] == ["ASSY-10"]
    assert units[open_lot["serial_numbers"][1]]["completed_processes"] == []
    assert [p["id"] for p in cache["processes"]] == ["ASSY-10", "TEST-20", "PACK-30"]
    assert cache["processes"][0]["defect_codes"] == [{"code": "SOLDER", "name": "Solder bridge"}]
    assert cache["synced_at"] and cache["truncated"] is False
    r = await client.get(f"{API}/stations/me/cache", headers=worker_headers)
    assert r.status_code in (403,) and r.json()["detail"]["code"] in ("NOT_A_STATION", "FORBIDDEN")


async def test_an_attachment_is_streamed_past_the_json_body_limit_and_linked_to_its_record(
    client, kernel, station_headers, worker_headers
):
    data = bytes(range(256)) * (3 * 4096 + 7)  # 3 MB: more than MAX_BODY_BYTES (2 MB)
    assert len(data) > kernel.settings.max_body_bytes
    sha = hashlib.sha256(data).hexdigest()
    key = str(uuid.uuid4())
    params = {"record_key": key, "name": "ripple.csv", "sha256": sha, "media_type": "text/csv"}
    headers = {**station_headers, "Content-Type": "application/octet-stream"}
    url = f"{API}/completions/attachments"
    r = await client.put(url, params=params, content=_chunks(data), headers=headers)
    assert r.status_code == 201, r.text
    stored = r.json()
    assert stored["sha256"] == sha and stored["size"] == len(data) and stored["name"] == "ripple.csv"
    again = await client.put(url, params=params, content=_chunks(data), headers=headers)
    assert again.status_code == 200 and again.json()["id"] == stored["id"]
    other = await client.put(
        url, params={k: v for k, v in params.items() if k != "sha256"}, content=_chunks(b"other"), headers=headers
    )
    assert other.status_code == 409 and other.json()["detail"]["code"] == "ATTACHMENT_CONFLICT"
    listed = (await client.get(url, params={"record_key": key}, headers=worker_headers)).json()
    assert [a["name"] for a in listed["items"]] == ["ripple.csv"]
    content = await client.get(f"{url}/{stored['id']}/content", headers=worker_headers)
    assert content.status_code == 200 and content.content == data
    assert content.headers["content-type"].startswith("text/csv")
    files = list((kernel.files_dir / "attachments").rglob("*.bin"))
    assert [f.name for f in files] == [f"{sha}.bin"]
    assert not list((kernel.files_dir / "attachments" / "partial").iterdir())


async def test_an_attachment_over_the_limit_or_with_a_wrong_checksum_leaves_nothing(client, kernel, station_headers):
    object.__setattr__(kernel.settings, "max_attachment_bytes", 100_000)
    headers = {**station_headers, "Content-Type": "application/octet-stream"}
    url = f"{API}/completions/attachments"
    key = str(uuid.uuid4())
    r = await client.put(
        url, params={"record_key": key, "name": "big.bin"}, content=_chunks(b"x" * 300_000), headers=headers
    )
    assert r.status_code == 413 and r.json()["detail"]["code"] == "PAYLOAD_TOO_LARGE"
    r = await client.put(
        url, params={"record_key": key, "name": "a.bin", "sha256": "0" * 64}, content=_chunks(b"abc"), headers=headers
    )
    assert r.status_code == 422 and r.json()["detail"]["code"] == "CHECKSUM_MISMATCH"
    for name in ("../etc/passwd", "a/b", ".."):
        r = await client.put(url, params={"record_key": key, "name": name}, content=b"abc", headers=headers)
        assert r.status_code == 422, name
    r = await client.put(url, params={"record_key": key, "name": "a.bin"}, content=b"abc")
    assert r.status_code == 401
    leftovers = [p for p in (kernel.files_dir / "attachments").rglob("*") if p.is_file()]
    assert leftovers == []


@pytest.mark.parametrize("name", ["ok.bin"])
async def test_a_viewer_may_read_but_not_upload_attachments(client, viewer_headers, name):
    r = await client.put(
        f"{API}/completions/attachments",
        params={"record_key": "k" * 10, "name": name},
        content=b"abc",
        headers={**viewer_headers, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 403


def test_the_vendor_guide_examples_follow_the_schema():
    """docs/completion-files.md is what vendors read: its full examples must validate."""
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "completion-files.md").read_text(encoding="utf-8")
    validator = Draft202012Validator(
        json.loads(resources.files("mes_kernel").joinpath("completion.schema.json").read_text("utf-8"))
    )
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", guide, flags=re.S) if b.lstrip().startswith("{")]
    examples = [b for b in blocks if "lot_number" in b]
    assert len(examples) == 2
    for example in examples:
        assert list(validator.iter_errors(example)) == []


@pytest.mark.parametrize(
    "when", ["2026-13-01T10:00:00Z", "2026-11-45T10:00:00Z", "2026-11-30T25:00:00Z", "2026-11-30T10:61:00Z",
             "2026-11-30T10:00:00+24:00"]
)
def test_a_time_the_station_refuses_breaks_the_schema_too(when):
    """The guide promises a file that validates is accepted: the station refuses impossible times,
    so the schema alone (any validator, formats asserted or not) must refuse them as well."""
    validator = Draft202012Validator(
        json.loads(resources.files("mes_kernel").joinpath("completion.schema.json").read_text("utf-8"))
    )
    doc = {"lot_number": "L", "process_id": "P", "result": "pass", "equipment_id": "E", "measurements": {}}
    assert list(validator.iter_errors({**doc, "finished_at": when})) != []
    assert list(validator.iter_errors({**doc, "finished_at": "2026-11-30T23:59:59.5+09:00"})) == []
