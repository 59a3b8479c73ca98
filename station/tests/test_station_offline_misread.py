"""Offline, a GS1 label the parser refuses (a check-digit error, a malformed element string) is a
misread, as the server would say online (404 UNKNOWN_CODE): it is not offered as an unknown unit
to record PASS/FAIL against; a plain serial the cache does not know still is."""

from __future__ import annotations

from pathlib import Path

import pytest
from mes_station.cache import StationCache
from mes_station.errors import StationError
from mes_station.offline import lookup_from_cache
from mes_station.outbox import Outbox


@pytest.fixture
def stores(tmp_path: Path):
    cache = StationCache(tmp_path / "cache.sqlite3")
    cache.replace_snapshot(
        {
            "lots": [{"lot_number": "LOT-A1", "product": "P", "status": "in_progress", "quantity": 1}],
            "units": [{"serial_number": "SN-A1-0001", "lot_number": "LOT-A1"}],
            "processes": [{"id": "ASSY-10", "name": "Assembly", "sequence": 10}],
        }
    )
    with Outbox(tmp_path / "outbox.sqlite3") as outbox:
        yield cache, outbox


@pytest.mark.parametrize(
    ("code", "symbology"),
    [
        ("0109501101530004\x1d21SN-A1-0001", "]d2"),  # GTIN check digit wrong: a misread
        ("0109501101530003\x1d21", "]d2"),  # AI 21 without its value
        ("(01)09501101530003(17)261332(21)SN-A1-0001", None),  # the bracketed form, month 13
    ],
)
def test_a_refused_gs1_label_is_not_an_unknown_unit_to_record_against(stores, code, symbology):
    cache, outbox = stores
    with pytest.raises(StationError) as err:
        lookup_from_cache(cache, outbox, code, symbology=symbology)
    assert err.value.code == "UNKNOWN_CODE"


def test_a_good_label_and_an_unknown_plain_serial_still_answer(stores):
    cache, outbox = stores
    unit = lookup_from_cache(cache, outbox, "0109501101530003\x1d21SN-A1-0001", symbology="]d2")
    assert unit["kind"] == "unit" and unit["unit"]["serial_number"] == "SN-A1-0001"
    unknown = lookup_from_cache(cache, outbox, "SN-A1-0099")
    assert unknown["kind"] == "unknown" and unknown["serial_number"] == "SN-A1-0099"
    for own in ("A1234567", "0123456789"):  # a plant's own serial scheme, unannounced: the server decides
        custom = lookup_from_cache(cache, outbox, own)
        assert custom["kind"] == "unknown" and custom["serial_number"] == own
