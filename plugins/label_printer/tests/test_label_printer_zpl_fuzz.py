"""No ZPL file, however broken, makes the upload, the preview or the simulator fail with a 500 or
a traceback: property tests over random command sequences and random bytes."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mes_label_printer.simulator.core import PrinterCore
from mes_label_printer.validation import validate_zpl
from mes_label_printer.zpl import printed_fields

from mes_kernel.errors import Unprocessable

API = "/api/v1"
COMMANDS = [
    "^FO", "^FT", "^A0N,", "^ADN,", "^A@N,", "^FD", "^FS", "^FH", "^FN", "^GB", "^GF", "^BC", "^BX", "^BQ",
    "^BE", "^BY", "^PW", "^LL", "^PQ", "^CI", "^FB", "^LH", "^DF", "^XF", "^MT", "~HS", "^xa", "^XZ", "^QQ",
]  # fmt: skip
ARGS = st.one_of(
    st.sampled_from(["", "10,10", "30,30", "28", "1", "A,8,8,1,FF", "A,4,4,1,:Z64:eJwLAAA=:0", "N,6,200,,,,_,1",
                     "N,2,4", "QA,hello", "_101095011015300031", "{{value}}", "9999999,9999999", "-5", "2,3,70"]),
    st.text(max_size=12),
)  # fmt: skip


@st.composite
def zpl_files(draw) -> str:
    body = "".join(draw(st.sampled_from(COMMANDS)) + draw(ARGS) for _ in range(draw(st.integers(0, 12))))
    return draw(st.sampled_from(["^XA", "", "^xa"])) + body + draw(st.sampled_from(["^XZ", "", "^XZ^XA^XZ"]))


@settings(max_examples=300, deadline=None)
@given(st.one_of(zpl_files(), st.binary(max_size=200)))
# ^PQ beyond its range (99,999,999): the simulator made the copies as one list (MemoryError, or
# OverflowError past an index-sized integer)
@example(b"^XA^PQ99999999999999999999^FDx^FS^XZ")
@example(b"^XA^PQ99999999^FDx^FS^XZ")
def test_the_validator_and_the_simulator_answer_every_file(data):
    try:
        text, _ = validate_zpl(data)
    except Unprocessable as exc:
        assert exc.code == "ZPL_INVALID" and exc.message
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    PrinterCore().new_stream().feed(raw + b"~HS")
    printed_fields(raw.decode("utf-8", "replace"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(zpl=zpl_files())
async def test_upload_and_preview_of_any_file_answer_201_200_or_a_coded_4xx(client, admin_headers, zpl):
    fields = [{"name": "value", "type": "text"}] if "{{value}}" in zpl else []
    r = await client.post(
        f"{API}/labels/templates",
        files={"file": ("fuzz.zpl", zpl.encode("utf-8", "surrogatepass"), "application/octet-stream")},
        data={"name": "fuzz", "fields": json.dumps(fields)},
        headers=admin_headers,
    )
    assert r.status_code in (201, 422), (zpl, r.status_code, r.text)
    if r.status_code == 422:
        assert r.json()["detail"]["code"] in ("ZPL_INVALID", "TEMPLATE_INVALID")
        return
    r = await client.post(f"{API}/labels/preview", json={"template": "fuzz", "sample": True}, headers=admin_headers)
    assert r.status_code in (200, 422), (zpl, r.status_code, r.text)
    if r.status_code == 200:
        assert r.content.startswith(b"\x89PNG")
