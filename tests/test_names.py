"""Names a person types are stored stripped, never blank; identifiers a scanner sends are taken exactly or
refused; neither may hold an invisible character. Every kernel entry point, each refusal writing nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from mes_kernel.db.models import AuditEntry, Line, Lot, Process, ProcessRecord, Station, StationToken, Unit, User
from mes_kernel.errors import Unprocessable
from mes_kernel.schemas import Comment, Identifier, Name, checked

API = "/api/v1"

BLANK = ["   ", "\t", "\u3000 \u00a0"]  # spaces, a tab, ideographic + no-break spaces: nothing visible
INVISIBLE = ["Line\tA", "Line\nA", "Zero\u200bwidth", "\ufeffBOM", "evil\u202eoverride", "bell\x07"]
BAD_NAMES = BLANK + INVISIBLE
BAD_IDS = [" W-1", "W-1 ", "W\t1", "W\u200b1", "W\u00a01", "\ufeffW-1"]


@pytest.mark.parametrize("value", BAD_NAMES)
def test_a_blank_or_invisible_name_is_refused(value):
    for kind in (Name, Comment):
        if kind is Comment and value in ("\t", "Line\tA", "Line\nA"):
            continue  # a comment may have lines and indents (a lone tab is still blank: below)
        with pytest.raises(Unprocessable):
            checked(kind, value, field="name")
    if value == "\t":
        with pytest.raises(Unprocessable, match="blank"):
            checked(Comment, value, field="reason")


def test_a_name_is_stripped_and_keeps_what_is_visible():
    assert checked(Name, "  Day shift \u3000", field="name") == "Day shift"
    assert checked(Name, "", field="name") == ""  # "no name" stays possible where the field allows it
    assert checked(Name, "야간 근무", field="name") == "야간 근무"
    assert checked(Name, "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", field="name")  # Persian ZWNJ
    assert checked(Comment, " held:\n\tseal leak ", field="reason") == "held:\n\tseal leak"


@pytest.mark.parametrize("value", BAD_IDS)
def test_an_identifier_is_never_trimmed_but_refused(value):
    with pytest.raises(Unprocessable) as refused:
        checked(Identifier, value, field="serial_number")
    assert refused.value.extra["field"] == "serial_number"


def test_an_identifier_is_taken_exactly():
    assert checked(Identifier, "SN 0001/A", field="serial_number") == "SN 0001/A"


async def _counts(kernel) -> dict[str, int]:
    async with kernel.sessionmaker() as session:
        return {
            model.__tablename__: (await session.execute(select(func.count()).select_from(model))).scalar_one()
            for model in (AuditEntry, Lot, Unit, ProcessRecord, Station, StationToken, Line, Process, User)
        }


def _refused(r, field: str, code: str = "VALIDATION_ERROR") -> None:
    assert r.status_code == 422, (r.request.method, r.request.url.path, r.status_code, r.text)
    detail = r.json()["detail"]
    assert detail["code"] == code, r.text
    assert any(field in map(str, e["loc"]) for e in detail["errors"]), r.text


def _record(lot_number: str, **fields: Any) -> dict[str, Any]:
    return {"idempotency_key": uuid.uuid4().hex, "lot_number": lot_number, "process_id": "ASSY-10",
            "worker_id": "W-1", "result": "pass", **fields}


def _name_cases(lot: str) -> list[tuple[str, str, Callable[[str], dict], str]]:
    """(method, path, body with the value in it, the field named in the refusal)."""
    return [
        ("POST", "/users", lambda v: {"username": "u1", "password": "password-1", "role": "worker",
                                      "full_name": v}, "full_name"),
        ("PATCH", "/users/worker", lambda v: {"full_name": v}, "full_name"),
        ("POST", "/lots", lambda v: {"lot_number": "LOT-N1", "product": "P-1", "note": v}, "note"),
        ("PATCH", f"/lots/{lot}", lambda v: {"note": v}, "note"),
        ("PATCH", f"/lots/{lot}", lambda v: {"status": "on_hold", "reason": v}, "reason"),
        ("POST", "/processes", lambda v: {"id": "NEW-10", "name": v}, "name"),
        ("PATCH", "/processes/ASSY-10", lambda v: {"name": v}, "name"),
        ("PUT", "/processes/ASSY-10/defect-codes", lambda v: {"defect_codes": [{"code": "D1", "name": v}]}, "name"),
        ("POST", "/stations", lambda v: {"code": "ST-N1", "name": v}, "name"),
        ("POST", "/stations/ST-01/tokens", lambda v: {"name": v}, "name"),
        ("POST", "/plugins/label_printer/disable", lambda v: {"reason": v}, "reason"),
    ]


def _id_cases(lot: str) -> list[tuple[str, str, Callable[[str], dict], str]]:
    return [
        ("POST", "/process-records", lambda v: _record(lot, worker_id=v), "worker_id"),
        ("POST", "/process-records", lambda v: _record(lot, serial_number=v), "serial_number"),
        ("POST", "/process-records", lambda v: _record(lot, station=v), "station"),
        ("POST", "/process-records", lambda v: _record(lot, result="fail", defect_code=v), "defect_code"),
        ("POST", "/lots", lambda v: {"lot_number": "LOT-N2", "product": "P-1", "line": v}, "line"),
        ("POST", "/stations", lambda v: {"code": "ST-N2", "line": v}, "line"),
        ("POST", f"/lots/{lot}/units", lambda v: {"serial_numbers": [v]}, "serial_numbers"),
    ]


async def test_every_kernel_name_refuses_blank_and_invisible_text_writing_nothing(
    client, kernel, admin_headers, station_headers, make_lot
):
    lot = (await make_lot(units=1))["lot_number"]
    before = await _counts(kernel)
    for method, path, body, field in _name_cases(lot):
        for value in BAD_NAMES:
            if field in ("note", "reason") and value in ("Line\tA", "Line\nA"):
                continue  # notes and reasons may have lines
            r = await client.request(method, API + path, json=body(value), headers=admin_headers)
            _refused(r, field)
    assert await _counts(kernel) == before


async def test_every_kernel_identifier_refuses_surrounding_or_invisible_whitespace_writing_nothing(
    client, kernel, admin_headers, station_headers, make_lot
):
    lot = (await make_lot(units=1))["lot_number"]
    before = await _counts(kernel)
    for method, path, body, field in _id_cases(lot):
        for value in BAD_IDS:
            r = await client.request(method, API + path, json=body(value), headers=admin_headers)
            if path.endswith("/units"):  # checked with the others of the request: every bad one named at once
                assert r.status_code == 422 and r.json()["detail"]["serial_numbers"] == [value], r.text
                continue
            _refused(r, field)
        r = await client.post(f"{API}/process-records/batch", json={"records": [body(BAD_IDS[0])]},
                              headers=admin_headers)
        if path == "/process-records":
            assert r.status_code == 200 and r.json()["results"][0]["error"]["code"] == "VALIDATION_ERROR", r.text
    r = await client.post(f"{API}/stations/events", headers=station_headers,
                          json={"idempotency_key": uuid.uuid4().hex, "type": "scan\u200b", "payload": {}})
    _refused(r, "type")
    assert await _counts(kernel) == before


async def test_names_are_stored_stripped(client, kernel, admin_headers, make_lot):
    lot = (await make_lot())["lot_number"]
    r = await client.post(f"{API}/stations", json={"code": "ST-S1", "name": "  Packing 2  "}, headers=admin_headers)
    assert (r.status_code, r.json()["name"]) == (201, "Packing 2"), r.text
    r = await client.post(f"{API}/processes", json={"id": "PAINT-40", "name": "\u3000Paint "}, headers=admin_headers)
    assert (r.status_code, r.json()["name"]) == (201, "Paint"), r.text
    r = await client.patch(f"{API}/lots/{lot}", json={"status": "on_hold", "reason": " seal leak\n"},
                           headers=admin_headers)
    assert r.status_code == 200, r.text
    async with kernel.sessionmaker() as session:
        entry = (await session.execute(
            select(AuditEntry).where(AuditEntry.entity == "station", AuditEntry.entity_id == "ST-S1")
        )).scalar_one()
    assert entry.after["name"] == "Packing 2"  # the audit trail keeps what was stored, not what was typed


async def test_a_line_configuration_refuses_blank_names_and_untrimmed_identifiers(client, kernel, admin_headers):
    before = await _counts(kernel)
    device = {"code": "PRN-1", "kind": "label_printer", "driver": "simulator", "config": {}}
    documents = [
        ({"name": "   "}, ["name"]),
        ({"name": "Line\u200bA"}, ["name"]),
        ({"name": "A", "stations": [{"code": "ST-L1", "name": "\t"}]}, ["stations", 0, "name"]),
        ({"name": "A", "devices": [{**device, "driver": "simulator "}]}, ["devices", 0, "driver"]),
        ({"name": "A", "devices": [{**device, "kind": " label_printer"}]}, ["devices", 0, "kind"]),
        ({"name": "A", "devices": [{**device, "station": "ST-1\n"}]}, ["devices", 0, "station"]),
        ({"name": "A", "plugins": ["label_printer "]}, ["plugins", 0]),
    ]
    for document, loc in documents:
        r = await client.put(f"{API}/lines/LINE-N", json=document, headers=admin_headers)
        assert r.status_code == 422 and r.json()["detail"]["code"] == "INVALID_LINE_CONFIG", r.text
        assert [e["loc"] for e in r.json()["detail"]["errors"]] == [loc], r.text
        r = await client.post(f"{API}/lines/validate", json={"code": "LINE-N", **document}, headers=admin_headers)
        assert r.json()["valid"] is False and r.json()["errors"][0]["loc"] == loc, r.text
    assert await _counts(kernel) == before
    r = await client.put(f"{API}/lines/LINE-N", json={"name": "  Line N  "}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (await client.get(f"{API}/lines/LINE-N", headers=admin_headers)).json()["name"] == "Line N"
