"""The window as a worker on the line uses it (issue 12, point 5 and the window side of point 6).

Over ``FakeAgent``: a large header after a scan, big PASS/FAIL and defect buttons, a result
banner that turns from QUEUED to SAVED as the server takes the record, offline work from the
station's cache, offline login, quarantined completion files, keyboard-only use, nothing
drawn under 16 px. Timed behaviour runs on a hand-driven scheduler (``ManualTimers``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mes_station.ui.bridge import AgentBridge
from mes_station.ui.options import UiOptions
from mes_station.ui.testing import FakeAgent, ManualTimers, offscreen_app, wait_until
from mes_station.ui.widgets import MIN_TEXT_PX
from mes_station.ui.window import StationWindow
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontInfo
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QTableWidget, QWidget

app = offscreen_app()


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def timers() -> ManualTimers:
    return ManualTimers()


@pytest.fixture
def window(agent: FakeAgent, timers: ManualTimers) -> Iterator[StationWindow]:
    bridge = AgentBridge(agent)
    bridge.start()
    win = StationWindow(bridge, UiOptions(status_poll_ms=50, banner_ms=4000), schedule=timers.schedule)
    win.resize(1280, 800)
    win.show()
    win.activateWindow()
    QTest.qWaitForWindowActive(win, 10_000)
    yield win
    win.close()
    bridge.stop()
    win.set_language("en")
    win.deleteLater()


def log_in(win: StationWindow, username: str = "alice", password: str = "secret") -> None:
    win.login_screen.username.clear()
    QTest.keyClicks(win.login_screen.username, username)
    QTest.keyClick(win.login_screen.username, Qt.Key.Key_Return)  # Enter moves on to the password
    QTest.keyClicks(win.login_screen.password, password)
    QTest.keyClick(win.login_screen.password, Qt.Key.Key_Return)
    wait_until(lambda: win.logged_in, message="the main screen after login")


def scan(win: StationWindow, code: str) -> None:
    screen = win.main_screen
    QTest.keyClicks(screen.scan_input, code)
    QTest.keyClick(screen.scan_input, Qt.Key.Key_Return)
    wait_until(lambda: screen.current_view is not None and screen.current_view.code == code, message=f"lookup {code}")


def history_states(screen) -> list[str]:
    return [screen.history_table.item(r, 2).text() for r in range(screen.history_table.rowCount())]


def test_a_scan_shows_the_large_header_and_the_processs_defect_buttons(window, agent):
    log_in(window)
    scan(window, "SN-0001")
    screen = window.main_screen
    assert (screen.serial_value.text(), screen.lot_value.text()) == ("SN-0001", "LOT-2026-0042")
    assert (screen.product_value.text(), screen.next_process_value.text()) == (
        "NH-HUB-200",
        "TEST-30 · Functional test",
    )
    assert QFontInfo(screen.serial_value.font()).pixelSize() >= 36
    assert QFontInfo(screen.next_process_value.font()).pixelSize() >= 28
    assert screen.pass_button.height() >= 120 and screen.fail_button.height() >= 120
    wait_until(lambda: len(screen.defect_buttons) == 5, message="TEST-30's defect list")
    assert [b.property("defect_code") for b in screen.defect_buttons] == [
        "NO_BOOT",
        "RF_LOW",
        "LED_DEAD",
        "SCRATCH",
        "OTHER",
    ]
    assert screen.defect_buttons[1].text() == "2 RF power low\nRF_LOW"
    QTest.qWait(20)
    assert all(b.isVisibleTo(window) for b in screen.defect_buttons)
    assert all(56 <= b.height() < 200 for b in screen.defect_buttons)


def test_the_old_unit_disappears_the_moment_a_new_lookup_starts(window, agent):
    log_in(window)
    scan(window, "SN-0001")
    screen = window.main_screen
    agent.hold_lookups.set()
    try:
        screen.scan_input.clear()
        QTest.keyClicks(screen.scan_input, "SN-0002")
        QTest.keyClick(screen.scan_input, Qt.Key.Key_Return)
        # synchronously, before the agent has answered anything
        assert screen.current_view is None
        assert screen.serial_value.text() == "—" and screen.lot_value.text() == "—"
        assert screen.history_table.rowCount() == 0
        assert not screen.pass_button.isEnabled() and not screen.fail_button.isEnabled()
        QTest.keyClick(screen, Qt.Key.Key_F1)
        assert agent.records == []
        assert screen.lookup_message.text() == "Looking up SN-0002…"
    finally:
        agent.hold_lookups.clear()
    wait_until(lambda: screen.serial_value.text() == "SN-0002", message="the new unit")


def test_the_result_banner_turns_saved_on_delivery_and_clears_after_its_time(window, agent, timers):
    log_in(window)
    scan(window, "SN-0002")
    screen = window.main_screen
    QTest.keyClick(screen.scan_input, Qt.Key.Key_F1)  # PASS from the keyboard, focus stays in the code field
    wait_until(lambda: screen.result_banner.state == "saved", message="SAVED")
    assert screen.result_banner.width() >= window.width() - 40  # full width
    assert screen.result_banner.height() >= 64
    assert history_states(screen)[0] == "saved"
    assert agent.deliveries[0]["key"] == screen.result_banner.key
    timers.advance(3999)
    assert screen.result_banner.state == "saved"
    timers.advance(1)
    assert screen.result_banner.state == "" and screen.result_banner.text() == ""


def test_offline_a_worker_records_from_the_cache_and_sees_queued_turn_saved(window, agent, timers):
    log_in(window)
    agent.set_online(False)
    wait_until(lambda: window.offline_banner.isVisible(), message="the offline banner")
    scan(window, "SN-0001")
    screen = window.main_screen
    assert screen.lookup_message.text() == "SN-0001: unit. From this station's data (offline)."
    assert screen.pass_button.isEnabled()
    wait_until(lambda: len(screen.defect_buttons) == 5, message="defect buttons offline")
    QTest.keyClick(screen.scan_input, Qt.Key.Key_2, Qt.KeyboardModifier.AltModifier)
    assert screen.defect_code() == "RF_LOW"
    QTest.keyClick(screen.scan_input, Qt.Key.Key_F2)
    wait_until(lambda: screen.result_banner.state == "queued", message="QUEUED")
    assert screen.result_banner.text().startswith("QUEUED — FAIL · RF_LOW · SN-0001 · TEST-30")
    assert history_states(screen)[0] == "queued"
    wait_until(lambda: "Waiting: 1" in window.offline_banner.text(), message="queue depth in the banner")
    assert window.offline_banner.width() >= window.width() - 40
    assert "data from 11-30 06:00" in window.offline_banner.text()

    # a unit the cache does not know is still recorded, against the scanned code
    screen.scan_input.clear()
    scan(window, "SN-NEW-77")
    assert screen.current_view.unknown_offline
    assert screen.lot_value.text() == "— (checked when the server is back)"
    # its routing is unknown too: recorded at the process of the unit before, and said so
    assert screen.next_process_value.text() == "TEST-30 · Functional test (as the unit before)"
    QTest.keyClick(screen.scan_input, Qt.Key.Key_F1)
    wait_until(lambda: len(agent.records) == 2, message="the second record")
    assert agent.records[1]["serial_number"] == "SN-NEW-77" and agent.records[1]["result"] == "pass"
    assert (agent.records[1]["lot_number"], agent.records[1]["process_id"]) == ("", "TEST-30")
    wait_until(lambda: "Waiting: 2" in window.offline_banner.text(), message="queue depth 2 in the banner")

    agent.set_online(True)
    wait_until(lambda: not window.offline_banner.isVisible(), message="back online")
    wait_until(lambda: screen.result_banner.state == "saved", message="the last record SAVED")
    assert history_states(screen)[0] == "saved"
    assert [d["state"] for d in agent.deliveries] == ["delivered", "delivered"]


def test_an_unknown_unit_as_the_first_scan_offline_cannot_be_recorded_yet(window, agent):
    log_in(window)
    agent.set_online(False)
    scan(window, "SN-NEW-01")
    screen = window.main_screen
    assert screen.current_view.unknown_offline
    assert not screen.pass_button.isEnabled()
    assert screen.lookup_message.text().endswith("Scan a known unit first, so the station knows its process.")


def test_a_record_the_server_refuses_is_shown_red_with_its_code(window, agent):
    log_in(window)
    agent.set_online(False)
    scan(window, "SN-0002")
    screen = window.main_screen
    QTest.keyClick(screen.scan_input, Qt.Key.Key_F1)
    wait_until(lambda: screen.result_banner.state == "queued")
    agent.reject_next = ("LOT_CLOSED", "LOT LOT-2026-0042 is closed")
    agent.set_online(True)
    wait_until(lambda: screen.result_banner.state == "error", message="the refusal")
    assert "REFUSED BY THE SERVER" in screen.result_banner.text()
    assert screen.result_banner.text().endswith("LOT LOT-2026-0042 is closed [LOT_CLOSED]")
    assert history_states(screen)[0] == "refused"


def test_offline_login_for_a_worker_seen_here_and_plain_refusals_for_others(window, agent):
    log_in(window)
    QTest.mouseClick(window.main_screen.logout_button, Qt.MouseButton.LeftButton)
    agent.set_online(False)
    wait_until(lambda: window.login_screen.offline_hint.text(), message="the offline hint on the login screen")
    assert "logged in at this station in the last days" in window.login_screen.offline_hint.text()

    log_in(window, "alice", "secret")
    assert window.main_screen.worker_label.text() == "Worker: alice (logged in offline)"
    QTest.mouseClick(window.main_screen.logout_button, Qt.MouseButton.LeftButton)

    login = window.login_screen
    QTest.keyClicks(login.username, "minji")  # never logged in at this station
    QTest.keyClicks(login.password, "secret")
    QTest.keyClick(login.password, Qt.Key.Key_Return)
    wait_until(lambda: login.error.text(), message="the refusal")
    assert login.error.text() == (
        "Login: The server cannot be reached, and this worker has no recent login at this station."
        " Ask a supervisor. [OFFLINE_LOGIN_UNAVAILABLE]"
    )
    login.username.clear()
    QTest.keyClicks(login.username, "alice")
    QTest.keyClicks(login.password, "wrong")
    QTest.keyClick(login.password, Qt.Key.Key_Return)
    wait_until(lambda: "INVALID_CREDENTIALS" in login.error.text(), message="a wrong password offline")
    assert not window.logged_in


def test_a_worker_logged_in_before_the_outage_stays_logged_in(window, agent):
    log_in(window)
    agent.set_online(False)
    wait_until(lambda: window.offline_banner.isVisible())
    assert window.logged_in
    assert window.main_screen.worker_label.text() == "Worker: alice"


def test_quarantined_completion_files_are_shown(window, agent):
    log_in(window)
    assert not window.quarantine_banner.isVisible()
    agent.quarantine("/work/incoming/AOI-0042.json", "422 LOT_NOT_FOUND: no LOT LOT-X")
    wait_until(lambda: window.quarantine_banner.isVisible(), message="the quarantine banner")
    text = window.quarantine_banner.text()
    assert "Completion files refused by the server: 1" in text
    assert "AOI-0042.json — 422 LOT_NOT_FOUND: no LOT LOT-X" in text


def test_firmware_is_chosen_from_the_images_of_the_units_product(window, agent):
    log_in(window)
    scan(window, "SN-0001")
    devices = window.main_screen.devices
    wait_until(lambda: devices.image_combo.count() == 2, message="the product's images")
    assert [devices.image_combo.itemData(i) for i in range(2)] == ["fw-1.4.2", "fw-1.5.0"]
    assert devices.image_combo.itemText(1) == "hub-main 1.5.0 · UPL-01"
    devices.image_combo.setCurrentIndex(1)
    QTest.mouseClick(devices.flash_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: "Flash done" in devices.device_message.text(), message="flash done")
    assert agent.flashes["F1"]["image_id"] == "fw-1.5.0"


def test_keyboard_and_scanner_alone_drive_the_whole_flow(window, agent):
    log_in(window)  # typed, Enter to the password, Enter to log in
    screen = window.main_screen
    assert QApplication.focusWidget() is screen.scan_input
    scan(window, "SN-0001")
    assert QApplication.focusWidget() is screen.scan_input  # the next scan lands in the field
    wait_until(lambda: len(screen.defect_buttons) == 5)

    # Tab walks the controls in reading order
    order = [screen.scan_input]
    for _ in range(5):
        QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        order.append(QApplication.focusWidget())
    assert order[1:5] == [screen.lookup_button, screen.pass_button, screen.fail_button, screen.defect_buttons[0]]

    # Enter on a focused button presses it: choose a defect, then FAIL
    screen.defect_buttons[2].setFocus()
    QTest.keyClick(screen.defect_buttons[2], Qt.Key.Key_Return)
    wait_until(lambda: screen.defect_code() == "LED_DEAD", message="Enter on a defect button")
    screen.fail_button.setFocus()
    QTest.keyClick(screen.fail_button, Qt.Key.Key_Return)
    wait_until(lambda: screen.result_banner.state == "fail", message="FAIL by Enter")
    assert [(r["result"], r["defect_code"]) for r in agent.records] == [("fail", "LED_DEAD")]

    # Ctrl+P prints, Esc clears, Ctrl+L switches the language
    screen.scan_input.setFocus()
    QTest.keyClick(screen.scan_input, Qt.Key.Key_P, Qt.KeyboardModifier.ControlModifier)
    wait_until(lambda: agent.labels, message="Ctrl+P")
    QTest.keyClick(screen.scan_input, Qt.Key.Key_Escape)
    assert screen.current_view is None and screen.scan_input.text() == ""
    QTest.keyClick(screen.scan_input, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.language == "ko"
    assert screen.pass_button.text() == "합격  [F1]"
    QTest.keyClick(screen.scan_input, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.language == "en"


def text_too_small(root: QWidget) -> list[str]:
    """Every visible widget (and table cell) drawn with text under 16 px."""
    small = []
    for widget in [root, *root.findChildren(QWidget)]:
        if not widget.isVisibleTo(root):
            continue
        size = QFontInfo(widget.font()).pixelSize()
        if size < MIN_TEXT_PX:
            small.append(f"{type(widget).__name__} {widget.objectName()!r}: {size}px")
        if isinstance(widget, QTableWidget):
            for row in range(widget.rowCount()):
                for column in range(widget.columnCount()):
                    item = widget.item(row, column)
                    # a cell without its own font is drawn in the table's
                    if item is not None and item.data(Qt.ItemDataRole.FontRole) is not None:
                        item_size = QFontInfo(item.font()).pixelSize()
                        if item_size < MIN_TEXT_PX:
                            small.append(f"cell {row},{column}: {item_size}px")
    return small


@pytest.mark.parametrize("language", ["en", "ko"])
def test_no_text_is_drawn_under_16_px(window, agent, language):
    window.set_language(language)
    agent.quarantine("x.json", "rejected")
    assert text_too_small(window) == []
    log_in(window)
    agent.set_online(False)
    scan(window, "SN-0001")
    wait_until(lambda: window.offline_banner.isVisible())
    QTest.keyClick(window.main_screen.scan_input, Qt.Key.Key_F1)
    wait_until(lambda: window.main_screen.result_banner.state == "queued")
    QTest.qWait(20)
    assert text_too_small(window) == []


def test_fail_first_then_the_defect_code_records_the_fail(window, agent):
    """A worker presses FAIL, is asked for a defect code and taps it: that is the FAIL, recorded
    with that code — not a chosen code waiting for a second FAIL the worker never presses."""
    log_in(window)
    scan(window, "SN-0001")
    screen = window.main_screen
    wait_until(lambda: len(screen.defect_buttons) >= 2, message="defect buttons")
    QTest.keyClick(screen.scan_input, Qt.Key.Key_F2)
    assert agent.records == []
    assert "defect code" in screen.result_message.text()
    # the code on the second button when Alt+2 is pressed (the buttons may be rebuilt afterwards,
    # e.g. when the cached defect codes refresh)
    picked = screen.defect_buttons[1].property("defect_code")
    QTest.keyClick(screen.scan_input, Qt.Key.Key_2, Qt.KeyboardModifier.AltModifier)
    wait_until(lambda: len(agent.records) == 1, message="the FAIL recorded once its code is picked")
    record = agent.records[0]
    assert (record["result"], record["defect_code"]) == ("fail", picked)
    # picking a code with no FAIL asked for only selects it
    screen.scan_input.clear()
    scan(window, "SN-0002")
    wait_until(lambda: screen.pass_button.isEnabled(), message="the next unit")
    QTest.keyClick(screen.scan_input, Qt.Key.Key_1, Qt.KeyboardModifier.AltModifier)
    assert len(agent.records) == 1


def test_the_window_fits_1280x800_with_the_plugins_action_panels(window, agent):
    """The real station shows the label printer's and the uploader's declared panels (and a
    scanner's): the window still fits 1280×800, the panels scroll inside it."""
    from mes_barcode_hid.station import STATION_EXTENSION as SCANNER
    from mes_firmware_uploader.station import STATION_EXTENSION as UPLOADER
    from mes_label_printer.station import STATION_EXTENSION as PRINTER

    log_in(window)
    scan(window, "SN-0001")
    panels = [
        {"device": device, "role": "", "panel": panel}
        for device, extension in (("PRN-01", PRINTER), ("UPL-01", UPLOADER), ("SCN-01", SCANNER))
        for panel in extension.panels
    ]
    window.main_screen.actions.show_panels(panels)
    window.resize(1280, 800)
    QApplication.processEvents()
    assert window.main_screen.actions.boxes
    assert window.height() <= 800 and window.minimumSizeHint().height() <= 800, window.size()
    assert window.main_screen.pass_button.height() >= 120
