"""Scan parsing: AIM identifiers, GS1 element strings in both forms, patterns, and honest unknowns."""

from __future__ import annotations

import random
import string
from datetime import date

import pytest
from mes_barcode_hid.parsing import (
    GS,
    GS1Error,
    ParserConfig,
    gs1_check_digit,
    gs1_check_digit_ok,
    parse_code,
    parse_gs1_element_string,
    parse_gs1_human_readable,
    split_symbology,
    symbology_name,
)

GTIN = "09501101530003"  # GS1's own example GTIN, valid check digit
CSET82 = "!\"%&'*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


def parse(text: str, **kw):
    return parse_code(text, **kw)


# ------------------------------------------------------------------ AIM identifiers


@pytest.mark.parametrize(
    ("text", "identifier", "data", "name"),
    [
        ("]C1" + "01" + GTIN, "]C1", "01" + GTIN, "GS1-128"),
        ("]C0ABC", "]C0", "ABC", "Code 128"),
        ("]d2010950", "]d2", "010950", "GS1 Data Matrix"),
        ("]d1LOT-1", "]d1", "LOT-1", "Data Matrix"),
        ("]Q3" + "01" + GTIN, "]Q3", "01" + GTIN, "GS1 QR Code"),
        ("]Q1SN-1", "]Q1", "SN-1", "QR Code"),
        ("]E04006381333931", "]E0", "4006381333931", "EAN/UPC"),
        ("]e0" + "01" + GTIN, "]e0", "01" + GTIN, "GS1 DataBar"),
        ("]A0CODE39", "]A0", "CODE39", "Code 39"),
    ],
)
def test_aim_identifiers_are_stripped_and_named(text, identifier, data, name):
    assert split_symbology(text) == (identifier, data)
    assert symbology_name(identifier) == name
    assert parse(text).symbology == identifier


@pytest.mark.parametrize("text", ["]", "]C", "]%1abc", "]ÿ1x", "LOT-1", "ABC]C1"])
def test_text_without_a_valid_identifier_is_left_alone(text):
    assert split_symbology(text) == (None, text)


# ------------------------------------------------------------------ GS1 building blocks


def test_check_digit_of_known_gtins():
    assert gs1_check_digit("0950110153000") == 3
    assert gs1_check_digit("400638133393") == 1  # EAN-13 4006381333931
    assert gs1_check_digit_ok("4006381333931")
    assert not gs1_check_digit_ok("4006381333932")


def test_any_single_digit_error_in_a_gtin_is_caught():
    rng = random.Random(1)
    for _ in range(300):
        body = "".join(rng.choice(string.digits) for _ in range(13))
        gtin = body + str(gs1_check_digit(body))
        assert gs1_check_digit_ok(gtin)
        position = rng.randrange(14)
        wrong = str((int(gtin[position]) + rng.randrange(1, 10)) % 10)
        mutated = gtin[:position] + wrong + gtin[position + 1 :]
        assert not gs1_check_digit_ok(mutated), (gtin, mutated)
        assert parse(f"]C101{mutated}").kind == "unknown"


def test_dates_are_read_with_the_century_rule_and_day_00():
    parsed = parse(f"]C101{GTIN}17261200")
    assert parsed.expiry == date(2026, 12, 31)  # day 00 = last day of the month


# ------------------------------------------------------------------ GS1 element strings


def test_raw_element_string_with_gs_separators():
    data = f"01{GTIN}17261231" + "10ABC-123" + GS + "21SN0001"
    parsed = parse("]C1" + data)
    assert parsed.kind == "serial" and parsed.format == "gs1"
    assert parsed.gtin == GTIN and parsed.lot_number == "ABC-123" and parsed.serial_number == "SN0001"
    assert parsed.expiry == date(2026, 12, 31)
    assert list(parsed.ais) == ["01", "17", "10", "21"]
    assert parsed.symbology_name == "GS1-128"


def test_human_readable_form_gives_the_same_elements():
    raw = parse("]C1" + f"01{GTIN}17261231" + "10ABC-123" + GS + "21SN0001")
    hri = parse(f"(01){GTIN}(17)261231(10)ABC-123(21)SN0001")
    assert hri.ais == raw.ais and hri.kind == "serial" and hri.symbology is None


def test_batch_only_is_a_lot():
    parsed = parse(f"]d201{GTIN}10LOT77")
    assert (parsed.kind, parsed.lot_number, parsed.serial_number) == ("lot", "LOT77", None)


def test_gtin_only_is_a_product_not_a_lot_or_unit():
    parsed = parse(f"]C101{GTIN}")
    assert (parsed.kind, parsed.gtin) == ("gtin", GTIN)


def test_leading_fnc1_as_gs_announces_gs1_without_identifier():
    parsed = parse(f"{GS}01{GTIN}21XYZ")
    assert (parsed.kind, parsed.serial_number) == ("serial", "XYZ")


def test_gs_after_a_fixed_length_field_is_tolerated():
    assert parse_gs1_element_string(f"01{GTIN}{GS}10B1") == {"01": GTIN, "10": "B1"}


def test_variable_field_longer_than_its_maximum_says_separator_missing():
    parsed = parse(f"]C101{GTIN}10{'A' * 21}")
    assert parsed.kind == "unknown" and "missing GS" in parsed.reason


def test_missing_separator_that_stays_short_is_read_as_written_never_split_by_guessing():
    # without GS the serial AI is swallowed into the batch; only 20 chars fit, so this one is caught
    parsed = parse(f"]C101{GTIN}10B1{'2' * 16}21S")
    assert parsed.kind == "unknown"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"]C101{GTIN[:-1]}4", "check digit"),
        (f"]C101{GTIN}17261301", "(17)"),
        (f"]C1{GTIN}", "Failed to get GS1 Application Identifier"),
        (f"]C101{GTIN}10", "Failed to match"),
        (f"]C101{GTIN}10AB{GS}10CD", "twice"),
        ("]C10109501101", "(01)"),
        (f"]C101{GTIN}10LÖT", "ÖT"),
        (f"(01){GTIN}x(10)A", "(01)"),
        (f"(01){GTIN}()(10)A", "unexpected text"),
        (f"(01){GTIN}(10)A(x", "unexpected text"),
        (f"(01){GTIN}(9999)A", "(9999)"),
        ("]C1", "empty"),
        ("]C117261231", "without GTIN, batch or serial"),
    ],
)
def test_broken_gs1_is_unknown_with_the_reason(text, reason):
    parsed = parse(text)
    assert parsed.kind == "unknown"
    assert reason in parsed.reason


def test_gs_substitute_character_reads_as_gs():
    config = ParserConfig(gs_substitute="~")
    parsed = parse(f"]C101{GTIN}10AB~21CD", config=config)
    assert (parsed.lot_number, parsed.serial_number) == ("AB", "CD")


def test_bare_gs1_without_identifier_needs_a_valid_gtin():
    assert parse(f"01{GTIN}21S9").kind == "serial"
    assert parse(f"01{GTIN[:-1]}9" + "21S9").kind == "unknown"
    assert parse(f"01{GTIN}21S9", config=ParserConfig(gs1_bare=False)).kind == "unknown"


def _random_value(rng: random.Random, max_len: int, alphabet: str = CSET82) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, max_len)))


def test_random_element_strings_round_trip_in_both_forms():
    rng = random.Random(20261126)
    hri_alphabet = CSET82  # no brackets in the alphabet, so HRI stays unambiguous
    for _ in range(400):
        body = "".join(rng.choice(string.digits) for _ in range(13))
        elements = {"01": body + str(gs1_check_digit(body))}
        if rng.random() < 0.7:
            elements["10"] = _random_value(rng, 20, hri_alphabet)
        if rng.random() < 0.5:
            elements["17"] = f"{rng.randint(0, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        if rng.random() < 0.6:
            elements["21"] = _random_value(rng, 20, hri_alphabet)
        order = list(elements)
        rng.shuffle(order)
        raw = ""
        for i, ai in enumerate(order):
            raw += ai + elements[ai]
            if ai in ("10", "21") and i < len(order) - 1:
                raw += GS
        hri = "".join(f"({ai}){elements[ai]}" for ai in order)
        for text in ("]C1" + raw, "]d2" + raw, GS + raw, hri):
            parsed = parse(text)
            assert parsed.ais == {ai: elements[ai] for ai in order}, text
            expected_kind = "serial" if "21" in elements else "lot" if "10" in elements else "gtin"
            assert parsed.kind == expected_kind
            assert parsed.serial_number == elements.get("21")
            assert parsed.lot_number == elements.get("10")


# ------------------------------------------------------------------ EAN/UPC


def test_ean13_is_a_gtin_padded_to_14():
    parsed = parse("]E04006381333931")
    assert (parsed.kind, parsed.format, parsed.gtin) == ("gtin", "ean", "04006381333931")
    assert parse("]E04006381333932").kind == "unknown"
    assert parse("]E496385074").gtin == "00000096385074"  # EAN-8
    assert parse("]E49638507").kind == "unknown"  # 7 digits is no EAN


# ------------------------------------------------------------------ patterns


def test_default_patterns():
    assert (parse("LOT-2025-0001").kind, parse("LOT-2025-0001").lot_number) == ("lot", "LOT-2025-0001")
    assert (parse("SN-000123").kind, parse("SN-000123").serial_number) == ("serial", "SN-000123")
    assert parse("]C0LOT-2025-0001").kind == "lot"


def test_configured_patterns_with_named_groups_pick_the_number_out():
    config = ParserConfig.from_settings(
        {"serial_patterns": [r"S(?P<serial>\d{10})"], "lot_patterns": r"L(?P<lot>\d{6})-\d{2}"}
    )
    assert parse("S0000004711", config=config).serial_number == "0000004711"
    assert parse("L250101-07", config=config).lot_number == "250101"
    assert parse("LOT-2025-0001", config=config).kind == "unknown"  # defaults replaced, not added


def test_a_code_matching_both_a_serial_and_a_lot_pattern_is_not_guessed():
    config = ParserConfig(serial_patterns=(r"\d{8}",), lot_patterns=(r"\d+",))
    parsed = parse("12345678", config=config)
    assert parsed.kind == "unknown" and "both" in parsed.reason


def test_invalid_configured_pattern_is_refused_at_once():
    with pytest.raises(ValueError, match="invalid pattern"):
        ParserConfig(serial_patterns=("(unclosed",))


@pytest.mark.parametrize("text", ["", "hello", "LOT", "lot-2025-1", "12345", "SN", "(01)", "]C0", "SN 123"])
def test_anything_else_is_unknown(text):
    parsed = parse(text)
    assert parsed.kind == "unknown" and parsed.reason
    assert parsed.serial_number is None and parsed.lot_number is None


def test_random_text_is_never_guessed():
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "-_/ ."
    for _ in range(1000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        parsed = parse(text)
        if parsed.kind in ("serial", "lot"):
            assert parsed.format == "pattern" and text.startswith(("SN", "LOT"))
        else:
            assert parsed.kind in ("unknown", "gtin", "serial", "lot")
            if parsed.kind == "unknown":
                assert parsed.reason


def test_as_dict_is_json_ready():
    import json

    parsed = parse(f"]C101{GTIN}17261231")
    body = json.loads(json.dumps(parsed.as_dict()))
    assert body["expiry"] == "2026-12-31" and body["symbology"] == "]C1" and body["kind"] == "gtin"


def test_human_readable_parser_rejects_plain_text():
    with pytest.raises(GS1Error):
        parse_gs1_human_readable("LOT-1")
