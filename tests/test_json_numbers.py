"""``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (RFC 8259): every request body holding one is
refused once, by the kernel's input guard, before any route — the kernel's or a plugin's — parses it:
400 ``MALFORMED_JSON``, nothing written, never a 500 from PostgreSQL's ``jsonb``. A number too large for
a float (``1e400``) is 422 ``VALIDATION_ERROR``. The same words inside strings are text and pass."""

from __future__ import annotations

import uuid

import httpx
import pytest
from live_server import served_fixture  # noqa: F401  (the `served` fixture)
from sqlalchemy import func, select

from mes_kernel.db.models import AuditEntry, DeviceJob, Line, Lot, ProcessRecord, ShiftCalendarVersion, Station

API = "/api/v1"
CONSTANTS = ["NaN", "Infinity", "-Infinity"]
SHIFT = '{"shifts": [{"name": "Day", "start": "06:00", "end": "14:00", "planned_output": %s}]}'


def _record(lot: str, value: str) -> str:
    key = uuid.uuid4().hex
    return (f'{{"idempotency_key": "{key}", "lot_number": "{lot}", "process_id": "ASSY-10", "worker_id": "W-1", '
            f'"result": "pass", "data": {{"torque": {value}}}}}')


def _bodies(lot: str) -> list[tuple[str, str, str, str]]:
    """(method, path, JSON text with the number in it, who sends it); plugin routes included."""
    return [
        ("POST", "/process-records", _record(lot, "%s"), "worker"),
        ("POST", "/process-records/batch", '{"records": [' + _record(lot, "%s") + ']}', "worker"),
        ("POST", "/lots", '{"lot_number": "LOT-NAN", "product": "P-1", "quantity": %s}', "admin"),
        ("PATCH", "/processes/ASSY-10", '{"ideal_cycle_seconds": %s}', "admin"),
        ("PUT", "/lines/LINE-N", '{"name": "N", "device_defaults": {"label_printer": {"dpi": %s}}}', "admin"),
        ("POST", "/stations/heartbeat", '{"agent_version": "1", "oldest_queued_age_seconds": %s}', "station"),
        ("PUT", "/lines/LINE-A/shifts", SHIFT, "admin"),  # dashboard_kpi
        ("POST", "/labels/print", '{"template": "t", "printer": "PRN-1", "idempotency_key": "k-nan-1", '
                                  '"fields": {"weight": %s}}', "admin"),  # label_printer
        ("POST", "/opcua/devices/MC-1/write", '{"name": "temp", "value": %s}', "admin"),  # opcua
    ]


async def _counts(kernel) -> dict[str, int]:
    async with kernel.sessionmaker() as session:
        return {
            model.__tablename__: (await session.execute(select(func.count()).select_from(model))).scalar_one()
            for model in (AuditEntry, DeviceJob, Line, Lot, ProcessRecord, ShiftCalendarVersion, Station)
        }


@pytest.fixture
def headers(admin_headers, worker_headers, station_headers) -> dict[str, dict[str, str]]:
    json_type = {"Content-Type": "application/json"}
    return {"admin": {**admin_headers, **json_type}, "worker": {**worker_headers, **json_type},
            "station": {**station_headers, **json_type}}


async def test_nan_and_infinity_are_refused_by_every_route_as_malformed_json_writing_nothing(
    client, kernel, headers, make_lot
):
    lot = (await make_lot())["lot_number"]
    before = await _counts(kernel)
    for method, path, template, who in _bodies(lot):
        for constant in CONSTANTS:
            r = await client.request(method, API + path, content=template % constant, headers=headers[who])
            assert r.status_code == 400, (method, path, constant, r.status_code, r.text)
            detail = r.json()["detail"]
            assert detail["code"] == "MALFORMED_JSON", r.text
            assert f"{constant} is not a JSON number" in detail["message"], r.text
            assert detail["errors"][0]["loc"] == ["body"], r.text
    assert await _counts(kernel) == before


async def test_a_number_beyond_a_float_is_refused_as_invalid(client, kernel, headers, make_lot):
    lot = (await make_lot())["lot_number"]
    before = await _counts(kernel)
    for method, path, template, who in _bodies(lot):
        for number in ("1e400", "-2.5E+999", "1" * 320 + ".0"):
            r = await client.request(method, API + path, content=template % number, headers=headers[who])
            assert r.status_code == 422, (method, path, number, r.status_code, r.text)
            assert r.json()["detail"]["code"] == "VALIDATION_ERROR", r.text
    assert await _counts(kernel) == before


async def test_the_same_words_inside_strings_and_ordinary_numbers_pass(client, kernel, headers, make_lot):
    lot = (await make_lot())["lot_number"]
    text = 'NaN \\"Infinity\\" -Infinity 1e400'
    r = await client.post(f"{API}/process-records", headers=headers["worker"],
                          content=_record(lot, f'"{text}", "ok": 1e300, "small": -2.5e-400, "big": {"9" * 400}'))
    assert r.status_code == 201, r.text
    assert r.json()["data"]["torque"] == 'NaN "Infinity" -Infinity 1e400'
    r = await client.patch(f"{API}/lots/{lot}", headers=headers["admin"],
                           content='{"note": "Infinity-7 and NaN-3 are serial numbers"}')
    assert r.status_code == 200, r.text


async def test_a_real_server_answers_400_not_500(served, kernel, headers, make_lot):
    """Over a socket, as a station or the web sends it: the body never reaches the database."""
    lot = (await make_lot())["lot_number"]
    before = await _counts(kernel)
    async with httpx.AsyncClient(base_url=served, timeout=30) as http:
        for method, path, template, who in _bodies(lot):
            r = await http.request(method, API + path, content=template % "NaN", headers=headers[who])
            assert (r.status_code, r.json()["detail"]["code"]) == (400, "MALFORMED_JSON"), (path, r.text)
    assert await _counts(kernel) == before


async def test_a_large_batch_is_checked_as_a_small_body_is(client, kernel, headers, make_lot):
    """A batch of many records (brackets enough for the depth check) takes the other path of the guard:
    the same answers, and a "NaN" inside strings still passes."""
    lot = (await make_lot())["lot_number"]
    before = await _counts(kernel)
    texts = [_record(lot, '"NaN"') for _ in range(40)]
    for bad, answer in (("NaN", (400, "MALFORMED_JSON")), ("-Infinity", (400, "MALFORMED_JSON")),
                        ("1e400", (422, "VALIDATION_ERROR"))):
        body = '{"records": [' + ", ".join([*texts, _record(lot, bad)]) + "]}"
        r = await client.post(f"{API}/process-records/batch", content=body, headers=headers["worker"])
        assert (r.status_code, r.json()["detail"]["code"]) == answer, (bad, r.text)
    assert await _counts(kernel) == before
    r = await client.post(f"{API}/process-records/batch", content='{"records": [' + ", ".join(texts) + "]}",
                          headers=headers["worker"])
    assert r.status_code == 200 and r.json()["created"] == 40, r.text
