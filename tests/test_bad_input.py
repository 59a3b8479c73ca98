"""Bad input gets a 4xx with a stable code, and nothing is written (no record, no LOT, no audit entry)."""

from __future__ import annotations

import json
import uuid
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Query
from sqlalchemy import func, select

from mes_kernel.db.models import AuditEntry, Lot, ProcessRecord, Unit
from mes_kernel.inputguard import InputGuardMiddleware
from mes_kernel.testing.helpers import record_body as _record

API = "/api/v1"
MAX_BODY = 64 * 1024


@pytest.fixture
def settings(settings):
    """The kit's settings with a small body limit, so oversized bodies stay cheap to send."""
    return settings.model_copy(update={"max_body_bytes": MAX_BODY})


async def _counts(kernel) -> dict[str, int]:
    async with kernel.sessionmaker() as session:
        return {
            model.__tablename__: (await session.execute(select(func.count()).select_from(model))).scalar_one()
            for model in (ProcessRecord, AuditEntry, Lot, Unit)
        }



def _refused(r, status: int, code: str) -> None:
    assert r.status_code == status, (r.request.method, r.request.url.path, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["detail"]["code"] == code, r.text
    assert r.json()["detail"]["message"]


async def test_malformed_json_is_400_and_wrong_types_422_writing_nothing(client, kernel, admin_headers, make_lot):
    lot = await make_lot(units=1)
    number = lot["lot_number"]
    before = await _counts(kernel)
    json_headers = {**admin_headers, "Content-Type": "application/json"}

    for path in ("/process-records", "/process-records/batch", "/lots", f"/lots/{number}/units", "/auth/login"):
        for content in (b'{"idempotency_key": "abc', b"{'single': 'quotes'}", b"\xff\xfe\x00garbage", b"[1, 2,]"):
            r = await client.post(API + path, content=content, headers=json_headers)
            _refused(r, 400, "MALFORMED_JSON")
    r = await client.patch(f"{API}/lots/{number}", content=b'{"note": ', headers=json_headers)
    _refused(r, 400, "MALFORMED_JSON")

    wrong_types = [
        ("/process-records", _record(number, result=3)),
        ("/process-records", _record(number, result="maybe")),
        ("/process-records", {**_record(number), "lot_number": 123}),
        ("/process-records", _record(number, data="not an object")),
        ("/process-records", _record(number, recorded_at="yesterday")),
        ("/process-records", _record(number, recorded_at="2026-11-26T05:00:00")),  # no timezone
        ("/process-records", _record(number, idempotency_key="short")),
        ("/process-records", {**_record(number), "lot_number": "LOT WITH SPACES"}),
        ("/process-records", [_record(number)]),
        ("/process-records", {}),
        ("/lots", {"lot_number": "LOT-X", "product": "PRD", "quantity": "many"}),
        ("/lots", {"lot_number": ["LOT-X"], "product": "PRD"}),
        ("/lots", {"lot_number": "x" * 65, "product": "PRD"}),
        ("/lots", {"product": "PRD"}),
        (f"/lots/{number}/units", {"serial_numbers": "SN-1"}),
        (f"/lots/{number}/units", {"serial_numbers": [1, 2]}),
        (f"/lots/{number}/units", {"serial_numbers": [" padded "]}),
        ("/users", {"username": "bob", "password": "long-password", "role": "superuser"}),
        ("/auth/login", {"username": "admin"}),
        ("/auth/login", {"username": 5, "password": ["x"]}),
    ]
    for path, body in wrong_types:
        r = await client.post(API + path, json=body, headers=admin_headers)
        assert r.status_code == 422, (path, body, r.text)
        assert r.json()["detail"]["code"] == "VALIDATION_ERROR", r.text
    r = await client.patch(f"{API}/lots/{number}", json={"quantity": "lots"}, headers=admin_headers)
    _refused(r, 422, "VALIDATION_ERROR")

    assert await _counts(kernel) == before


async def test_unknown_lot_process_or_unit_is_404_writing_nothing(
    client, kernel, worker_headers, manager_headers, make_lot
):
    lot = await make_lot(units=1)
    number = lot["lot_number"]
    before = await _counts(kernel)

    _refused(
        await client.post(f"{API}/process-records", json=_record("LOT-NOPE"), headers=worker_headers),
        404,
        "LOT_NOT_FOUND",
    )
    _refused(
        await client.post(f"{API}/process-records", json=_record(number, process_id="NOPE-10"), headers=worker_headers),
        404,
        "PROCESS_NOT_FOUND",
    )
    _refused(
        await client.post(
            f"{API}/process-records", json=_record(number, serial_number="SN-NOPE"), headers=worker_headers
        ),
        404,
        "UNIT_NOT_FOUND",
    )
    _refused(
        await client.post(f"{API}/process-records", json=_record(number, station="ST-NOPE"), headers=worker_headers),
        404,
        "STATION_NOT_FOUND",
    )
    _refused(
        await client.post(f"{API}/lots/LOT-NOPE/units", json={"serial_numbers": ["SN-1"]}, headers=manager_headers),
        404,
        "LOT_NOT_FOUND",
    )
    _refused(
        await client.patch(f"{API}/lots/LOT-NOPE", json={"note": "x"}, headers=manager_headers), 404, "LOT_NOT_FOUND"
    )
    _refused(
        await client.post(
            f"{API}/lots", json={"lot_number": "LOT-NEW", "product": "P", "line": "LINE-NOPE"}, headers=manager_headers
        ),
        404,
        "LINE_NOT_FOUND",
    )
    _refused(await client.get(f"{API}/no-such-route", headers=worker_headers), 404, "NOT_FOUND")
    _refused(await client.delete(f"{API}/lots/{number}", headers=manager_headers), 405, "METHOD_NOT_ALLOWED")

    assert await _counts(kernel) == before
    # The LOT is still untouched (its first record would have moved it to in progress).
    assert (await client.get(f"{API}/lots/{number}", headers=worker_headers)).json()["status"] == "created"


async def test_oversized_body_is_413_writing_nothing(client, kernel, worker_headers, manager_headers, make_lot):
    lot = await make_lot()
    number = lot["lot_number"]
    before = await _counts(kernel)
    big = _record(number, data={"blob": "x" * MAX_BODY})
    assert len(json.dumps(big)) > MAX_BODY

    _refused(await client.post(f"{API}/process-records", json=big, headers=worker_headers), 413, "PAYLOAD_TOO_LARGE")
    batch = {"records": [_record(number, data={"blob": "y" * 1000}) for _ in range(80)]}
    _refused(
        await client.post(f"{API}/process-records/batch", json=batch, headers=worker_headers), 413, "PAYLOAD_TOO_LARGE"
    )
    units = {"serial_numbers": [f"{number}-{i:06d}" for i in range(4000)]}
    _refused(
        await client.post(f"{API}/lots/{number}/units", json=units, headers=manager_headers), 413, "PAYLOAD_TOO_LARGE"
    )
    # Just under the limit is accepted.
    small = _record(number, data={"blob": "z" * (MAX_BODY - 1000)})
    assert (await client.post(f"{API}/process-records", json=small, headers=worker_headers)).status_code == 201
    after = await _counts(kernel)
    assert after["process_records"] == before["process_records"] + 1
    assert after["units"] == before["units"]


def _chunked(body: dict):
    """The body as a stream: httpx then sends it chunked, announcing no length."""
    payload = json.dumps(body).encode()

    async def chunks():
        for i in range(0, len(payload), 8192):
            yield payload[i : i + 8192]

    return chunks()


async def test_oversized_chunked_body_is_413_writing_nothing(client, kernel, worker_headers, make_lot):
    """A chunked body announces no length: the limit must hold, with its own code, while it streams in."""
    lot = await make_lot()
    before = await _counts(kernel)
    big = _record(lot["lot_number"], data={"blob": "x" * (2 * MAX_BODY)})
    r = await client.post(
        f"{API}/process-records", content=_chunked(big), headers={**worker_headers, "Content-Type": "application/json"}
    )
    assert "content-length" not in r.request.headers
    _refused(r, 413, "PAYLOAD_TOO_LARGE")
    assert await _counts(kernel) == before


async def test_non_finite_numbers_are_refused_with_4xx_writing_nothing(client, kernel, worker_headers, make_lot):
    """NaN and Infinity are not JSON (RFC 8259); 1e400 overflows to infinity."""
    lot = await make_lot()
    before = await _counts(kernel)
    headers = {**worker_headers, "Content-Type": "application/json"}
    for number in ("NaN", "Infinity", "-Infinity", "1e400"):
        record = json.dumps(_record(lot["lot_number"], data={"x": "PLACEHOLDER"})).replace('"PLACEHOLDER"', number)
        for path, content in (("/process-records", record), ("/process-records/batch", f'{{"records": [{record}]}}')):
            r = await client.post(API + path, content=content, headers=headers)
            expected = (422, "VALIDATION_ERROR") if number == "1e400" else (400, "MALFORMED_JSON")
            assert (r.status_code, r.json()["detail"]["code"]) == expected, (number, path, r.text)
    assert await _counts(kernel) == before


async def test_nul_characters_are_refused_with_4xx_writing_nothing(
    client, kernel, worker_headers, manager_headers, make_lot
):
    """PostgreSQL text and JSONB cannot hold U+0000; the API must refuse it the same way on both databases."""
    lot = await make_lot()
    number = lot["lot_number"]
    before = await _counts(kernel)
    requests = [
        ("POST", "/process-records", _record(number, data={"note": "a\u0000b"}), worker_headers),
        ("POST", "/process-records", _record(number, worker_id="W\u00001"), worker_headers),
        ("POST", "/process-records", _record(number, defect_code="D\u0000"), worker_headers),
        ("POST", "/lots", {"lot_number": "LOT-NUL", "product": "P", "note": "x\u0000y"}, manager_headers),
        ("PATCH", f"/lots/{number}", {"note": "x\u0000y"}, manager_headers),
        ("POST", "/auth/login", {"username": "a\u0000b", "password": "x"}, {}),
        ("GET", "/lots/A%00B", None, worker_headers),
        ("GET", "/units/A%00B/history", None, worker_headers),
        ("GET", "/lots?q=A%00B", None, worker_headers),
    ]
    for method, path, body, headers in requests:
        r = await client.request(method, API + path, json=body, headers=headers)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)  # login may say 401, never 500
        assert r.json()["detail"]["code"], r.text
    assert await _counts(kernel) == before


async def test_nul_characters_are_refused_by_line_and_station_routes_too(
    client, kernel, admin_headers, station_headers
):
    before = await _counts(kernel)
    requests = [
        ("PUT", "/lines/LINE-N", {"name": "a\u0000b"}, admin_headers),
        ("POST", "/stations", {"code": "ST-N", "name": "a\u0000b"}, admin_headers),
        ("POST", "/stations/ST-01/tokens", {"name": "a\u0000b"}, admin_headers),
        ("POST", "/stations/heartbeat", {"agent_version": "a\u0000b"}, station_headers),
    ]
    answers = []
    for method, path, body, headers in requests:
        r = await client.request(method, API + path, json=body, headers=headers)
        answers.append((path, r.status_code))
    assert all(400 <= status < 500 for _, status in answers), answers
    assert await _counts(kernel) == before


# ---------------------------------------------------------------- kinds of input no database takes
BIG = "9223372036854775808"  # 2**63: one past BIGINT


async def test_integers_beyond_a_column_are_422_in_query_path_and_body(client, kernel, admin_headers):
    before = await _counts(kernel)
    for method, path in (
        ("GET", f"/lots?offset={BIG}"),
        ("GET", f"/lots?limit=-{BIG}1"),
        ("GET", f"/firmware/images/{BIG}"),
        ("GET", f"/firmware/jobs/{BIG}"),
        ("GET", f"/labels/jobs/{BIG}"),
        ("POST", f"/labels/jobs/{BIG}/reprint"),
        ("DELETE", f"/stations/ST-01/tokens/{BIG}"),
    ):
        r = await client.request(method, API + path, headers=admin_headers)
        _refused(r, 422, "VALIDATION_ERROR")
    r = await client.post(
        API + "/processes", json={"id": "BIG-1", "name": "n", "sequence": 2**31}, headers=admin_headers
    )
    _refused(r, 422, "VALIDATION_ERROR")
    ok = await client.post(
        API + "/processes", json={"id": "BIG-2", "name": "n", "sequence": 2**31 - 1}, headers=admin_headers
    )
    assert ok.status_code == 201, ok.text
    assert (await client.get(API + f"/lots?offset={2**63 - 1}", headers=admin_headers)).status_code == 200
    after = await _counts(kernel)
    assert after["lots"] == before["lots"]


async def test_json_nested_deeper_than_storable_is_422_at_any_depth(client, kernel, worker_headers, make_lot):
    lot = await make_lot()
    before = await _counts(kernel)
    for depth in (65, 300, 500, 5_000, 30_000):  # 30 000 levels: 60 kB, under this module's body limit
        nested = "[" * depth + "]" * depth
        body = json.dumps(_record(lot["lot_number"])).replace(
            '"result": "pass"', f'"result": "pass", "data": {{"x": {nested}}}'
        )
        r = await client.post(
            API + "/process-records", content=body, headers={**worker_headers, "Content-Type": "application/json"}
        )
        _refused(r, 422, "VALIDATION_ERROR")
        assert "nested deeper" in r.json()["detail"]["message"]
    assert await _counts(kernel) == before
    shallow = _record(lot["lot_number"], data={"x": json.loads("[" * 30 + "]" * 30), "s": "[[[[ in a string ]]]]" * 20})
    assert (await client.post(API + "/process-records", json=shallow, headers=worker_headers)).status_code == 201


async def test_nul_and_invalid_utf8_are_422_everywhere(client, kernel, admin_headers, worker_headers, make_lot):
    lot = await make_lot()
    number = lot["lot_number"]
    before = await _counts(kernel)
    json_headers = {**worker_headers, "Content-Type": "application/json"}
    cases = [
        ("GET", "/lots?q=%FF%FE", None, worker_headers),
        ("GET", "/lots/%C3%28", None, worker_headers),
        ("GET", "/lots?q=A%00B", None, worker_headers),
        ("POST", "/process-records", json.dumps(_record(number, note="x\u0000y")), json_headers),
        ("POST", "/process-records", json.dumps(_record(number, data={"k\u0000": 1})), json_headers),
        ("POST", "/process-records", json.dumps(_record(number, note="\ud800 alone")), json_headers),
        (
            "POST",
            "/firmware/upload",
            json.dumps({"serial_number": "S-1", "device": "UP\u00001"}),
            {**admin_headers, "Content-Type": "application/json"},
        ),
        ("POST", "/auth/login", b"username=a%00b&password=x", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("POST", "/auth/login", b"username=%FF&password=x", {"Content-Type": "application/x-www-form-urlencoded"}),
    ]
    for method, path, content, headers in cases:
        r = await client.request(method, API + path, content=content, headers=headers)
        _refused(r, 422, "VALIDATION_ERROR")
    assert await _counts(kernel) == before
    # A paired surrogate escape is a real character, and is accepted.
    paired = json.dumps(_record(number, note="\U0001f600"), ensure_ascii=True)
    assert (await client.post(API + "/process-records", content=paired, headers=json_headers)).status_code == 201


async def test_nul_in_a_multipart_field_is_422_and_file_contents_are_data(client, kernel, admin_headers):
    image = b"\x00\x01firmware\xff\x00" * 100
    for field, value in (("product", "PRD\x00X"), ("version", "1.0\x00"), ("notes", b"\xff\xfe")):
        fields = {"product": "PRD-100", "version": "9.9.9", field: value}
        r = await client.post(
            API + "/firmware/images",
            headers=admin_headers,
            files={"file": ("fw.bin", image, "application/octet-stream")},
            data=fields,
        )
        _refused(r, 422, "VALIDATION_ERROR")
        assert r.json()["detail"]["errors"][0]["loc"] == ["body", field]
    ok = await client.post(
        API + "/firmware/images",
        headers=admin_headers,
        files={"file": ("fw.bin", image, "application/octet-stream")},
        data={"product": "PRD-100", "version": "9.9.9"},
    )
    assert ok.status_code == 201, ok.text


async def test_wrong_media_type_is_415_and_media_types_are_case_insensitive(client, kernel, manager_headers):
    body = json.dumps({"lot_number": "LOT-MEDIA-1", "product": "P"})
    for media in ("text/plain", "application/xml", "application/x-www-form-urlencoded"):
        r = await client.post(API + "/lots", content=body, headers={**manager_headers, "Content-Type": media})
        _refused(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    r = await client.post(API + "/lots", content=body, headers=manager_headers)  # a body with no Content-Type
    _refused(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    for media in ("text/xml", "text/plain"):  # login reads JSON or the OAuth2 form, nothing else
        r = await client.post(API + "/auth/login", content=b'{"username": "a", "password": "b"}',
                              headers={"Content-Type": media})
        _refused(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    r = await client.post(API + "/lots", content=body, headers={**manager_headers, "Content-Type": "Application/JSON"})
    assert r.status_code == 201, r.text

    await client.post(
        API + "/users",
        json={"username": "media-user", "password": "a-long-password-1", "role": "viewer"},
        headers=manager_headers,
    )
    from mes_kernel.db.models import User
    from mes_kernel.security import hash_password

    async with kernel.sessionmaker() as session:
        session.add(
            User(username="formuser", role="viewer", full_name="F", password_hash=hash_password("pw-123456", 4))
        )
        await session.commit()
    r = await client.post(
        API + "/auth/login",
        content=b"username=formuser&password=pw-123456",
        headers={"Content-Type": "Application/X-WWW-Form-Urlencoded"},
    )
    assert r.status_code == 200, r.text


async def test_heartbeat_counters_beyond_64_bits_are_422_not_stored_as_floats(client, admin_headers, station_headers):
    """A heartbeat's ``config_version`` or ``outbox_depth`` past 2**63-1 is refused; JSON storage would keep
    it as a float (1e+20) that /health and /stations then show."""
    for field in ("config_version", "outbox_depth"):
        r = await client.post(
            API + "/stations/heartbeat", json={"agent_version": "t", field: int(BIG)}, headers=station_headers
        )
        _refused(r, 422, "VALIDATION_ERROR")
    ok = await client.post(
        API + "/stations/heartbeat",
        json={"agent_version": "t", "config_version": 2**63 - 1, "outbox_depth": 0},
        headers=station_headers,
    )
    assert ok.status_code == 200, ok.text


# An aware time whose UTC time falls outside the years 1-9999: the UTC column type overflowed while
# binding it, before the driver saw it (a 500 from the query filters, a 422 without a field from records).
TIMES_WITHOUT_A_UTC_TIME = ("0001-01-01T00:00:00+09:00", "9999-12-31T23:59:59-14:00")


async def test_times_with_no_utc_time_are_422_naming_the_field_everywhere(
    client, kernel, admin_headers, worker_headers, station_headers, make_lot
):
    lot = await make_lot()
    before = await _counts(kernel)
    for moment in TIMES_WITHOUT_A_UTC_TIME:
        for path, name in (
            ("/lots", "created_from"),
            ("/lots", "created_to"),
            ("/audit", "since"),
            ("/audit", "until"),
        ):
            r = await client.get(API + path, params={name: moment}, headers=admin_headers)
            _refused(r, 422, "VALIDATION_ERROR")
            assert r.json()["detail"]["errors"][0]["loc"] == ["query", name], r.text
        r = await client.post(
            API + "/process-records", json=_record(lot["lot_number"], recorded_at=moment), headers=worker_headers
        )
        _refused(r, 422, "VALIDATION_ERROR")
        assert r.json()["detail"]["errors"][0]["loc"] == ["body", "recorded_at"], r.text
        good = _record(lot["lot_number"])
        r = await client.post(
            API + "/process-records/batch",
            json={"records": [_record(lot["lot_number"], recorded_at=moment), good]},
            headers=worker_headers,
        )
        assert r.status_code == 200, r.text
        assert [item["status"] for item in r.json()["results"]] == ["error", "created"], r.text
    assert (await _counts(kernel))["process_records"] == before["process_records"] + len(TIMES_WITHOUT_A_UTC_TIME)
    # A station event's time is refused as a record's is, naming the payload's field; nothing stored.
    r = await client.post(
        API + "/stations/events",
        json={
            "idempotency_key": uuid.uuid4().hex,
            "type": "scan",
            "payload": {"code": lot["lot_number"], "recorded_at": TIMES_WITHOUT_A_UTC_TIME[0]},
        },
        headers=station_headers,
    )
    _refused(r, 422, "VALIDATION_ERROR")
    assert r.json()["detail"]["field"] == "payload.recorded_at", r.text



async def test_a_one_value_query_parameter_sent_twice_is_422_naming_it(client, admin_headers):
    """``?limit=5&limit=6`` would silently be read as 6 (the framework keeps the last): refused on
    every route, the kernel's and the plugins', before any route code runs."""
    for path, name in (
        ("/lots?limit=5&limit=6", "limit"),
        ("/lots?status=open&limit=5&status=closed", "status"),
        ("/kpi/oee?line=L1&line=L2", "line"),
        ("/kpi/drilldown?kind=defect&key=D1&key=D2", "key"),
    ):
        r = await client.get(API + path, headers=admin_headers)
        _refused(r, 422, "VALIDATION_ERROR")
        assert r.json()["detail"]["errors"][0]["loc"] == ["query", name], r.text
    # a parameter no route reads is ignored as before, however often it is sent
    assert (await client.get(API + "/lots?limit=5&x=1&x=2", headers=admin_headers)).status_code == 200


async def test_a_list_query_parameter_still_takes_several_values():
    """A route (a plugin's, say) that declares a list keeps its several values."""
    app = FastAPI()

    @app.get("/api/v1/tags")
    async def tags(tag: Annotated[list[str] | None, Query()] = None, limit: int = 10):
        return {"tags": tag, "limit": limit}

    app.add_middleware(InputGuardMiddleware)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get("/api/v1/tags?tag=a&tag=b&limit=3")
        assert r.status_code == 200 and r.json() == {"tags": ["a", "b"], "limit": 3}, r.text
        r = await c.get("/api/v1/tags?tag=a&limit=3&limit=4")
        assert r.status_code == 422 and r.json()["detail"]["errors"][0]["loc"] == ["query", "limit"], r.text


async def test_a_validation_error_names_its_field_like_every_other_error(client, admin_headers, make_lot):
    """``{"detail": {"code", "message", "field"}}`` as every error answers: ``field`` is the first
    error's location without where it came from (``body``, ``query``, ``path``), dotted; each
    error stays listed in ``errors``."""
    lot = await make_lot()
    cases = [
        ("get", f"{API}/lots/{lot['lot_number']}/history?limit=0", None, "limit"),
        ("get", f"{API}/lots?limit=abc", None, "limit"),
        ("post", f"{API}/lots", {"lot_number": "LOT-V", "product": "PRD", "quantity": "many"}, "quantity"),
        ("post", f"{API}/lots/{lot['lot_number']}/units", {"serial_numbers": ["SN-1", 2]}, "serial_numbers.1"),
        ("post", f"{API}/lots", [1, 2], None),  # the body as a whole
    ]
    for method, url, body, field in cases:
        r = await getattr(client, method)(url, **({"json": body} if body is not None else {}), headers=admin_headers)
        assert r.status_code == 422, (url, r.text)
        detail = r.json()["detail"]
        assert (detail["code"], detail["field"]) == ("VALIDATION_ERROR", field), (url, r.text)
        assert detail["errors"] and (field is None or detail["message"].startswith(f"{field}: ")), r.text
