"""GS1 on biip: every AI, dates with day 00, decimals with units, per-field check digits, and no
input — random bytes or random AI sequences — that makes the parser, the CLI or the lookup fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import biip
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mes_barcode_hid.cli import app as barcode_cli
from mes_barcode_hid.gs1 import GS, GS1Error, ai_name, parse_elements, parse_human_readable
from mes_barcode_hid.parsing import parse_code
from typer.testing import CliRunner

GTIN = "09501101530003"
MES = str(Path(sys.executable).with_name("mes"))
LOOKUP = "/api/v1/scans/lookup"

# ------------------------------------------------------------ what we rely on in biip (pinned)


def test_biip_reads_a_gs_as_the_end_of_a_variable_field_and_a_leading_one_as_fnc1():
    result = biip.parse(f"]C101{GTIN}10AB{GS}21CD")
    assert [(e.ai.ai, e.value) for e in result.gs1_message.element_strings] == [
        ("01", GTIN),
        ("10", "AB"),
        ("21", "CD"),
    ]
    assert parse_elements(f"{GS}01{GTIN}{GS}21X")[1].value == "X"  # GS first and after a fixed field


def test_biip_reads_day_00_as_the_last_day_of_the_month():
    (_, expiry) = parse_elements(f"01{GTIN}17240200")
    assert expiry.date == date(2024, 2, 29)  # 2024 is a leap year
    assert parse_elements(f"01{GTIN}15250200")[1].date == date(2025, 2, 28)


@pytest.mark.parametrize("yymmdd", ["251301", "250230", "250132", "250000"])
def test_biip_refuses_impossible_dates(yymmdd):
    with pytest.raises(biip.ParseError):
        biip.gs1_messages.GS1Message.parse(f"01{GTIN}17{yymmdd}")
    with pytest.raises(GS1Error):
        parse_elements(f"01{GTIN}17{yymmdd}")


def test_biip_reports_a_gtin_check_digit_error_on_the_field_not_by_raising():
    message = biip.gs1_messages.GS1Message.parse(f"01{GTIN[:-1]}4")
    assert "check digit" in message.element_strings[0].gtin_error


def test_biip_skips_what_it_cannot_place_in_the_bracketed_form_so_we_check_every_character():
    lenient = biip.gs1_messages.GS1Message.parse_hri(f"(01){GTIN}(10)A(x")
    assert [e.value for e in lenient.element_strings] == [GTIN, "A"]  # "(x" silently gone
    with pytest.raises(GS1Error, match="unexpected text"):
        parse_human_readable(f"(01){GTIN}(10)A(x")


def test_biip_knows_the_whole_ai_table():
    for code, title in [("240", "ADDITIONAL ID"), ("8004", "GIAI"), ("3103", "NET WEIGHT (kg)"), ("414", "LOC No.")]:
        assert ai_name(code) == title
    assert ai_name("99") is not None and ai_name("2") is None


# ------------------------------------------------------------ elements with names, units, errors


def test_a_label_with_extra_ais_still_gives_its_serial():
    parsed = parse_code(f"]d201{GTIN}21SN-DEMO-0001{GS}240X")
    assert (parsed.kind, parsed.serial_number) == ("serial", "SN-DEMO-0001")
    assert [(e.ai, e.name, e.value) for e in parsed.elements] == [
        ("01", "GTIN", GTIN),
        ("21", "SERIAL", "SN-DEMO-0001"),
        ("240", "ADDITIONAL ID", "X"),
    ]


def test_the_issue_example_reads_as_gs1_says_serial_17sn():
    # "2117SN…" is AI 21 followed by "17SN-DEMO-0001": the serial carries the 17, as biip reads it too
    parsed = parse_code(f"]d201{GTIN}2117SN-DEMO-0001{GS}240X")
    assert parsed.kind == "serial" and parsed.serial_number == "17SN-DEMO-0001"


@pytest.mark.parametrize(
    ("code", "ai", "decimal", "unit"),
    [
        (f"01{GTIN}3103001250", "3103", Decimal("1.250"), "kg"),
        (f"01{GTIN}3302000075", "3302", Decimal("0.75"), "kg"),
        (f"01{GTIN}3922{'1999'}", "3922", Decimal("19.99"), None),
        (f"01{GTIN}3932978{'1999'}", "3932", Decimal("19.99"), "ISO 4217 978"),
        (f"01{GTIN}3111000500", "3111", Decimal("50.0"), "m"),
        (f"01{GTIN}3151000500", "3151", Decimal("50.0"), "l"),
    ],
)
def test_decimal_ais_carry_value_and_unit(code, ai, decimal, unit):
    element = next(e for e in parse_code(code).elements if e.ai == ai)
    assert element.decimal == decimal and element.unit == unit


def test_sscc_and_extra_logistics_ais_with_lot():
    parsed = parse_code(f"]C100106141411234567897{GS}10LOT-2026-7{GS}4004141234567892{GS}8004ASSET-1")
    assert parsed.kind == "lot" and parsed.lot_number == "LOT-2026-7"
    assert [e.ai for e in parsed.elements] == ["00", "10", "400", "8004"]
    assert parsed.elements[0].error is None


@pytest.mark.parametrize(
    ("code", "ai"),
    [
        (f"]C101{GTIN[:-1]}4{GS}21S", "01"),
        ("]C100106141411234567890", "00"),
        (f"]C101{GTIN}21S{GS}4149501101530004", "414"),
        (f"]C101{GTIN}21S{GS}8003095011015300041", "8003"),
        (f"]C101{GTIN}21S{GS}25395011015300041", "253"),
    ],
)
def test_check_digit_errors_are_reported_per_field_and_nothing_is_looked_up(code, ai):
    parsed = parse_code(code)
    assert parsed.kind == "unknown" and parsed.serial_number is None
    bad = [e for e in parsed.elements if e.error]
    assert [e.ai for e in bad] == [ai] and "check digit" in bad[0].error.lower()
    assert f"({ai})" in parsed.reason


def test_human_readable_form_with_any_ai():
    elements = parse_human_readable(f"(01){GTIN}(3103)001250(21)SN-1(8004)A1")
    assert [(e.ai, e.value) for e in elements] == [("01", GTIN), ("3103", "001250"), ("21", "SN-1"), ("8004", "A1")]
    assert parse_code(f"]Q3(01){GTIN}(21)SN-1").serial_number == "SN-1"


def test_the_impossible_date_of_the_issue_is_unknown_with_the_reason():
    parsed = parse_code("01059012341234571721133210ABC")
    assert parsed.kind == "unknown" and "(17)" in parsed.reason


def test_a_long_lot_without_separator_hints_at_the_missing_gs():
    parsed = parse_code(f"]C101{GTIN}10{'A' * 25}")
    assert parsed.kind == "unknown" and "missing GS" in parsed.reason


# ------------------------------------------------------------ property tests: no input breaks anything

# AIs with sample values, so random sequences are mostly well-formed and reach deep into the parser
AI_SAMPLES = {
    "00": ["106141411234567897", "106141411234567890"],
    "01": [GTIN, "09501101530004"],
    "10": ["LOT-1", "A" * 20, "ö"],
    "11": ["240200", "251301"],
    "17": ["261231", "250230", "2612"],
    "21": ["SN-DEMO-0001", "", "x" * 25],
    "240": ["X"],
    "3103": ["001250", "12"],
    "3922": ["1999"],
    "3932": ["9781999"],
    "400": ["PO-7"],
    "414": ["9501101530004", "9501101530003"],
    "7003": ["2612311200"],
    "8003": ["095011015300041"],
    "8004": ["ASSET-1"],
    "99": ["free text"],
}


@st.composite
def gs1_like(draw) -> str:
    prefix = draw(st.sampled_from(["", "]C1", "]d2", "]Q3", "]e0", "]E0", GS, "]C0"]))
    parts = []
    for ai in draw(st.lists(st.sampled_from(sorted(AI_SAMPLES)), max_size=6)):
        value = draw(st.sampled_from(AI_SAMPLES[ai]) | st.text(max_size=8))
        parts.append(ai + value + draw(st.sampled_from(["", GS, "~", "("])))
    if draw(st.booleans()):
        return prefix + "".join(f"({p[:2]}){p[2:]}" for p in parts)
    return prefix + "".join(parts)


random_codes = st.one_of(
    gs1_like(),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    st.text(max_size=60),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_codes)
def test_the_parser_answers_every_input_with_a_verdict(code):
    parsed = parse_code(code)
    assert parsed.kind in ("serial", "lot", "gtin", "unknown")
    assert parsed.kind != "unknown" or parsed.reason
    json.dumps(parsed.as_dict())
    if parsed.kind == "serial":
        assert parsed.serial_number


runner = CliRunner()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_codes.filter(lambda c: "\x00" not in c))
def test_the_cli_answers_every_input_without_a_traceback(code):
    # a code starting with a dash is passed after "--", as a user would on any command line
    for args in (["parse", "--", code], ["parse", "--json", "--", code]):
        result = runner.invoke(barcode_cli, args)
        assert result.exit_code in (0, 1), (code, result.output, result.exception)
        assert "Traceback" not in result.output
    result = runner.invoke(barcode_cli, ["parse", "--json", "-"], input=code.encode("utf-8", "surrogatepass"))
    assert result.exit_code in (0, 1), (code, result.output, result.exception)
    assert json.loads(result.output)["kind"] in ("serial", "lot", "gtin", "unknown")


def test_the_real_command_reads_raw_bytes_from_stdin_and_lists_every_element():
    done = subprocess.run(
        [MES, "barcode", "parse", "-"],
        input=f"]d201{GTIN}21SN-DEMO-0001{GS}3103001250{GS}240X\n".encode(),
        capture_output=True,
        timeout=60,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert "(21) SERIAL: SN-DEMO-0001" in out
    assert "(3103) NET WEIGHT (kg): 001250  = 1.250 kg" in out
    assert "(240) ADDITIONAL ID: X" in out
    done = subprocess.run(
        [MES, "barcode", "parse", "-"], input=b"\xff\xfe\x00]C1\x1d01", capture_output=True, timeout=60
    )
    assert done.returncode == 1 and b"Traceback" not in done.stderr + done.stdout


def test_the_real_command_with_the_issues_impossible_date_says_why():
    done = subprocess.run(
        [MES, "barcode", "parse", "--json", "01059012341234571721133210ABC"], capture_output=True, timeout=60
    )
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    assert "(17)" in json.loads(done.stdout)["reason"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(code=random_codes)
async def test_the_lookup_answers_every_input_with_200_or_a_coded_4xx(client, worker_headers, code):
    r = await client.post(LOOKUP, json={"code": code, "record": False}, headers=worker_headers)
    assert r.status_code in (200, 404, 422), (code, r.status_code, r.text)
    assert r.json()["detail"]["code"] if r.status_code != 200 else True


async def test_the_lookup_finds_the_unit_by_21_among_other_ais(client, worker_headers, make_lot):
    lot = await make_lot(units=1)
    (serial,) = lot["serial_numbers"]
    code = f"]d201{GTIN}21{serial}{GS}240X{GS}3103001250{GS}10{lot['lot_number']}"
    r = await client.post(LOOKUP, json={"code": code, "record": False}, headers=worker_headers)
    assert r.status_code == 200, r.text
    assert r.json()["unit"]["serial_number"] == serial
    assert r.json()["parsed"]["elements"][2] == {
        "ai": "240",
        "name": "ADDITIONAL ID",
        "description": "Additional product identification assigned by the manufacturer",
        "value": "X",
        "date": None,
        "decimal": None,
        "unit": None,
        "error": None,
    }

    code = f"]C101{GTIN}10{lot['lot_number']}{GS}400PO-1{GS}8004ASSET"
    r = await client.post(LOOKUP, json={"code": code, "record": False}, headers=worker_headers)
    assert r.status_code == 200 and r.json()["kind"] == "lot", r.text


async def test_the_lookup_of_the_impossible_date_is_a_404_unknown_code_every_time(client, worker_headers):
    for _ in range(6):
        r = await client.post(
            LOOKUP, json={"code": "01059012341234571721133210ABC", "record": False}, headers=worker_headers
        )
        assert r.status_code == 404 and r.json()["detail"]["code"] == "UNKNOWN_CODE"
