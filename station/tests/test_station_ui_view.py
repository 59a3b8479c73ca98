"""How lookup answers, scans, workers and errors become the text the window shows."""

from __future__ import annotations

from mes_station.errors import OfflineError, OutboxFullError, ServerError
from mes_station.ui.options import UiOptions
from mes_station.ui.view import (
    describe_error,
    error_code,
    flash_progress,
    history_rows,
    queue_text,
    scan_code,
    unit_view,
    worker_name,
)


def test_nested_unit_answer_is_read():
    view = unit_view(
        "SN-1",
        {
            "kind": "unit",
            "unit": {"serial_number": "SN-1"},
            "lot": {"lot_number": "L-1", "product": "P", "status": "in_progress"},
            "next_process": {"process_id": "ASSY-10", "name": "Assembly"},
            "history": [
                {
                    "created_at": "2026-11-26T05:01:12.123+00:00",
                    "process_id": "X",
                    "result": "pass",
                    "worker_id": "bob",
                }
            ],
        },
    )
    assert (view.serial_number, view.lot_number, view.product) == ("SN-1", "L-1", "P")
    assert view.next_process_text == "ASSY-10 · Assembly"
    assert view.can_record
    assert view.history == [("2026-11-26 05:01:12", "X", "result", "pass", "", "bob", "")]
    assert view.label_fields() == {"serial_number": "SN-1", "lot_number": "L-1", "product": "P"}


def test_flat_lot_answer_is_read_and_kind_inferred():
    view = unit_view("L-1", {"lot_number": "L-1", "product": "P", "next_process_id": "PACK-90"})
    assert view.kind == "lot"
    assert view.serial_number is None
    assert view.next_process_id == "PACK-90"


def test_finished_routing_cannot_be_recorded():
    view = unit_view("L-1", {"lot": {"lot_number": "L-1"}, "next_process": None})
    assert not view.can_record
    assert "routing complete" in view.next_process_text


def test_unknown_answer_stays_unknown():
    assert unit_view("??", {"kind": "unknown"}).kind == "unknown"
    assert unit_view("??", {}).kind == "unknown"


def test_scan_codes_from_strings_dicts_objects_and_bytes():
    class Scan:
        code = "SN-9"

    assert scan_code(" SN-1 ") == "SN-1"
    assert scan_code({"code": "SN-2"}) == "SN-2"
    assert scan_code({"raw": b"SN-3"}) == "SN-3"
    assert scan_code(Scan()) == "SN-9"
    assert scan_code({"code": ""}) is None


def test_worker_names():
    assert worker_name("alice") == "alice"
    assert worker_name({"username": "bob"}) == "bob"
    assert worker_name(None) is None


def test_errors_tell_the_worker_what_happened_in_plain_words_with_a_code():
    offline = describe_error(OfflineError("ConnectError: All connection attempts failed"), "Look up")
    assert offline == "Look up: The server cannot be reached. The station keeps working offline. [OFFLINE]"
    assert describe_error(OutboxFullError("disk full"), "Record result").endswith("[OUTBOX_FULL]")
    assert "NOT SAVED" in describe_error(OutboxFullError("disk full"), "Record result")
    # a general code carries the server's detail; a specific one its own words
    server = describe_error(ServerError(404, "NOT_FOUND", "no LOT L-9"), "Look up")
    assert server == "Look up: Not found. no LOT L-9 [NOT_FOUND]"
    closed = describe_error(ServerError(409, "LOT_CLOSED", "LOT L-1 is closed"), "Record result")
    assert closed == "Record result: This LOT is closed: nothing more can be recorded on it. [LOT_CLOSED]"
    # a code this window has no words for: the server's message
    other = describe_error(ServerError(409, "SHIFTS_OVERLAP", "shift overlaps B"), "Save")
    assert other == "Save: shift overlaps B [SHIFTS_OVERLAP]"
    # a bug: no class name, no library text, a code to tell maintenance
    bug = describe_error(KeyError("serial_number"), "Print")
    assert bug == "Print: Something unexpected went wrong. Tell maintenance the code shown. [UNEXPECTED_ERROR]"
    assert (
        describe_error(ValueError("bad"), "Print") == "Print: The entry is incomplete or not valid. [VALIDATION_ERROR]"
    )


def test_an_error_code_attribute_wins_over_the_class():
    class LoginError(Exception):
        code = "OFFLINE_LOGIN_UNAVAILABLE"

    assert error_code(LoginError("no cached credential")) == "OFFLINE_LOGIN_UNAVAILABLE"
    assert error_code(OfflineError("x")) == "OFFLINE"
    assert error_code(RuntimeError("x")) == "UNEXPECTED_ERROR"


def test_history_is_newest_first_with_station_codes():
    events = [
        {"at": "2026-11-26T05:00:00+00:00", "type": "process_record", "data": {"process_id": "A", "station_id": 3}},
        {"at": "2026-11-26T06:00:00+00:00", "type": "scan", "data": {"station_code": "ST-07"}},
        {"at": "2026-11-26T04:00:00+00:00", "type": "device_action", "data": {"actor": "station:ST-02"}},
        # recorded at the station before it reached the server: ordered by when it happened
        {"at": "2026-11-26T07:00:00+00:00", "type": "process_record", "data": {"recorded_at": "2026-11-26T03:00:00Z"}},
    ]
    rows = history_rows({"events": events})
    assert [row[0] for row in rows] == [
        "2026-11-26 06:00:00",
        "2026-11-26 05:00:00",
        "2026-11-26 04:00:00",
        "2026-11-26 03:00:00",
    ]
    assert [row[6] for row in rows] == ["ST-07", "#3", "ST-02", ""]
    assert rows[0][2] == "scan"


def test_queue_text_and_flash_progress():
    assert queue_text(0, None) == "Queue: 0"
    assert queue_text(3, 125.0) == "Queue: 3 (oldest 2 min)"
    assert queue_text(None, None) == "Queue: ?"
    assert flash_progress({"status": "running", "progress": 40}) == (40, "running", False)
    assert flash_progress({"status": "done", "progress": 80}) == (100, "done", True)
    assert flash_progress({"status": "failed", "progress": 10})[2]


def test_ui_options_from_config_table():
    options = UiOptions.from_mapping({"defect_codes": ["A", "B"], "flash_poll_ms": "250"})
    assert options.defect_codes == ("A", "B")
    assert options.flash_poll_ms == 250
    assert UiOptions.from_mapping(None) == UiOptions()


def test_kernel_history_events_and_lookup_warnings_are_read():
    from mes_station.ui.view import history_row

    record = {
        "at": "2026-11-26T05:00:00+00:00",
        "type": "process_record",
        "data": {
            "process_id": "ASSY-10",
            "result": "fail",
            "defect_code": "SOLDER",
            "worker_id": "ann",
            "recorded_at": "2026-11-26T04:59:58+00:00",
        },
    }
    assert history_row(record) == ("2026-11-26 04:59:58", "ASSY-10", "result", "fail", "SOLDER", "ann", "")
    view = unit_view(
        "L-1",
        {
            "kind": "lot",
            "lot": {"lot_number": "L-1"},
            "warnings": ["LOT L-1 is on_hold"],
            "history": {"lot_number": "L-1", "events": [record]},
        },
    )
    assert view.warnings == ("LOT L-1 is on_hold",)
    assert len(view.history) == 1
