"""The station window driven with QTest over a fake agent: login, lookup, results, devices, status."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from mes_station.ui.bridge import AgentBridge
from mes_station.ui.options import UiOptions
from mes_station.ui.testing import FakeAgent, ManualTimers, offscreen_app, wait_until
from mes_station.ui.window import StationWindow
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

app = offscreen_app()


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def window(agent: FakeAgent) -> Iterator[StationWindow]:
    bridge = AgentBridge(agent)
    bridge.start()
    options = UiOptions(status_poll_ms=50, flash_poll_ms=20, firmware_image_id="fw-1.4.2")
    win = StationWindow(bridge, options, schedule=ManualTimers().schedule)
    win.resize(1280, 800)
    win.show()
    yield win
    win.close()
    bridge.stop()
    win.deleteLater()


def log_in(win: StationWindow, username: str = "alice", password: str = "secret") -> None:
    win.login_screen.username.clear()
    QTest.keyClicks(win.login_screen.username, username)
    QTest.keyClicks(win.login_screen.password, password)
    QTest.keyClick(win.login_screen.password, Qt.Key.Key_Return)
    wait_until(lambda: win.logged_in, message="the main screen after login")


def scan(win: StationWindow, code: str) -> None:
    screen = win.main_screen
    screen.scan_input.clear()
    QTest.keyClicks(screen.scan_input, code)
    QTest.keyClick(screen.scan_input, Qt.Key.Key_Return)
    wait_until(
        lambda: screen.current_view is not None or "[" in screen.lookup_message.text(),
        message=f"lookup of {code}",
    )


def test_agent_runs_on_its_own_thread_and_answers_reach_the_gui_thread(window, agent):
    log_in(window)
    assert agent.threads == {"mes-station-agent"}
    assert window.bridge.loop_thread is not threading.current_thread()


def test_wrong_password_shows_an_error_and_stays_on_login(window, agent):
    QTest.keyClicks(window.login_screen.username, "alice")
    QTest.keyClicks(window.login_screen.password, "nope")
    QTest.mouseClick(window.login_screen.login_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: window.login_screen.error.text(), message="a login error")
    assert window.login_screen.error.text() == "Login: Wrong username or password. [INVALID_CREDENTIALS]"
    assert not window.logged_in
    assert window.login_screen.password.text() == ""


def test_login_with_empty_fields_asks_for_credentials(window):
    QTest.mouseClick(window.login_screen.login_button, Qt.MouseButton.LeftButton)
    assert "Enter your username" in window.login_screen.error.text()


def test_scanning_a_serial_shows_lot_product_next_process_and_history(window, agent):
    log_in(window)
    assert window.main_screen.worker_label.text() == "Worker: alice"
    scan(window, "SN-0001")
    screen = window.main_screen
    assert agent.lookups == ["SN-0001"]
    assert screen.serial_value.text() == "SN-0001"
    assert screen.lot_value.text() == "LOT-2026-0042"
    assert screen.product_value.text() == "NH-HUB-200"
    assert screen.next_process_value.text() == "TEST-30 · Functional test"
    assert screen.history_table.rowCount() == 2
    row = [screen.history_table.item(0, c).text() for c in range(7)]
    # newest first, stations by their codes
    assert row == ["2026-11-26 05:20:44", "", "flash", "success", "", "station:ST-02", "ST-02"]
    assert [screen.history_table.item(1, c).text() for c in range(7)] == [
        "2026-11-26 05:01:12",
        "SMT-10",
        "result",
        "pass",
        "",
        "bob",
        "ST-01",
    ]
    assert screen.pass_button.isEnabled() and screen.fail_button.isEnabled()


def test_scanning_an_unknown_code_says_so_and_offers_no_result_buttons(window):
    log_in(window)
    scan(window, "XYZ-999")
    screen = window.main_screen
    assert screen.lookup_message.text() == "XYZ-999: this code is not known. [UNKNOWN_CODE]"
    assert not screen.pass_button.isEnabled()


def test_pass_is_recorded_through_the_agent_and_confirmed_as_queued(window, agent):
    log_in(window)
    scan(window, "SN-0002")
    screen = window.main_screen
    QTest.mouseClick(screen.pass_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: screen.result_banner.state == "saved", message="the green SAVED banner")
    assert len(agent.records) == 1
    record = agent.records[0]
    assert record["lot_number"] == "LOT-2026-0042"
    assert record["process_id"] == "TEST-30"
    assert record["worker_id"] == "alice"
    assert record["serial_number"] == "SN-0002"
    assert record["result"] == "pass" and record["defect_code"] is None
    assert screen.result_banner.text() == "SAVED — PASS · SN-0002 · TEST-30"
    assert screen.result_banner.key == record["idempotency_key"]
    # the new record is the newest history row, and the server has it
    assert [screen.history_table.item(0, c).text() for c in (1, 2, 3)] == ["TEST-30", "saved", "pass"]
    # One result per scan: a second click cannot double the record.
    assert not screen.pass_button.isEnabled()
    QTest.mouseClick(screen.pass_button, Qt.MouseButton.LeftButton)
    QTest.qWait(50)
    assert len(agent.records) == 1


def test_fail_needs_a_defect_code_and_sends_it(window, agent):
    log_in(window)
    scan(window, "SN-0001")
    screen = window.main_screen
    wait_until(lambda: len(screen.defect_buttons) == 5, message="the defect buttons of TEST-30")
    QTest.mouseClick(screen.fail_button, Qt.MouseButton.LeftButton)
    assert "Choose a defect code" in screen.result_message.text()
    assert screen.fail_button.isEnabled()
    QTest.mouseClick(screen.defect_buttons[3], Qt.MouseButton.LeftButton)
    assert screen.defect_code() == "SCRATCH"
    QTest.mouseClick(screen.fail_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: screen.result_banner.state == "fail", message="the red FAIL banner")
    assert [(r["result"], r["defect_code"]) for r in agent.records] == [("fail", "SCRATCH")]
    assert screen.result_banner.text() == "SAVED — FAIL · SCRATCH · SN-0001 · TEST-30"
    assert screen.defect_code() is None  # the next unit starts without a defect chosen


def test_a_full_outbox_is_shown_as_not_saved_and_the_worker_can_retry(window, agent):
    log_in(window)
    scan(window, "SN-0001")
    agent.outbox_full = True
    screen = window.main_screen
    QTest.mouseClick(screen.pass_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: screen.result_banner.state == "error", message="outbox-full error")
    assert screen.result_banner.text().startswith("NOT SAVED — Record result: NOT SAVED: the station's disk is full.")
    assert screen.result_banner.text().endswith("[OUTBOX_FULL]")
    assert agent.records == []
    assert screen.pass_button.isEnabled()
    agent.outbox_full = False
    QTest.mouseClick(screen.pass_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: screen.result_banner.state == "saved", message="saved")
    assert len(agent.records) == 1


def test_status_bar_follows_online_offline_and_queue_depth(window, agent):
    wait_until(lambda: window.online_label.text() == "ONLINE", message="ONLINE")
    assert window.queue_label.text() == "Queue: 0"
    agent.set_online(False)
    wait_until(lambda: window.online_label.text() == "OFFLINE", message="OFFLINE")
    log_in_offline_fails = window.login_screen
    QTest.keyClicks(log_in_offline_fails.username, "alice")
    QTest.keyClicks(log_in_offline_fails.password, "secret")
    QTest.keyClick(log_in_offline_fails.password, Qt.Key.Key_Return)
    wait_until(lambda: "OFFLINE_LOGIN_UNAVAILABLE" in log_in_offline_fails.error.text(), message="offline")
    agent.set_online(True)
    log_in(window)
    agent.set_online(False)
    scan(window, "SN-0001")
    QTest.mouseClick(window.main_screen.pass_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: window.queue_label.text().startswith("Queue: 1"), message="queue 1")
    assert "oldest 42 s" in window.queue_label.text()


def test_a_scanner_event_from_the_agent_looks_the_code_up(window, agent):
    log_in(window)
    agent.emit("scan", {"code": "LOT-2026-0042", "kind": "lot"})
    screen = window.main_screen
    wait_until(lambda: screen.current_view is not None, message="lookup from scan event")
    assert screen.scan_input.text() == "LOT-2026-0042"
    assert screen.lot_value.text() == "LOT-2026-0042"
    assert screen.serial_value.text() == "—"
    assert not screen.devices.flash_button.isEnabled()  # flashing needs a unit


def test_print_label_sends_the_units_fields(window, agent):
    log_in(window)
    scan(window, "SN-0001")
    screen = window.main_screen
    QTest.mouseClick(screen.devices.print_button, Qt.MouseButton.LeftButton)
    wait_until(lambda: "Label" in screen.devices.device_message.text(), message="print feedback")
    assert agent.labels == [
        {
            "template": "unit_label",
            "fields": {"serial_number": "SN-0001", "lot_number": "LOT-2026-0042", "product": "NH-HUB-200"},
        }
    ]
    assert screen.devices.device_message.text() == "Label printed (job P1)"


def test_flash_progress_is_polled_until_done(window, agent):
    log_in(window)
    scan(window, "SN-0001")
    screen = window.main_screen
    wait_until(lambda: screen.devices.image_combo.count() == 2, message="the product's firmware images")
    assert screen.devices.selected_image() == "fw-1.4.2"
    seen: list[int] = []
    screen.devices.flash_progress.valueChanged.connect(seen.append)
    QTest.mouseClick(screen.devices.flash_button, Qt.MouseButton.LeftButton)
    assert screen.devices.flash_progress.maximum() == 0  # busy until the job is known
    wait_until(lambda: "Flash done" in screen.devices.device_message.text(), message="flash done")
    assert screen.devices.flash_progress.maximum() == 100
    assert agent.flashes["F1"]["serial_number"] == "SN-0001"
    assert agent.flashes["F1"]["image_id"] == "fw-1.4.2"
    assert seen == [25, 50, 75, 100]
    assert screen.devices.flash_button.isEnabled()


def test_logout_returns_to_login_and_clears_the_unit(window):
    log_in(window)
    scan(window, "SN-0001")
    QTest.mouseClick(window.main_screen.logout_button, Qt.MouseButton.LeftButton)
    assert not window.logged_in
    assert window.main_screen.current_view is None
    assert window.main_screen.history_table.rowCount() == 0


def test_main_shows_the_demo_window_and_stops_the_agent_on_quit():
    from mes_station.ui.app import main
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    seen: list[StationWindow] = []

    def look_and_quit() -> None:
        seen.extend(w for w in QApplication.topLevelWidgets() if isinstance(w, StationWindow) and w.isVisible())
        for found in seen:
            found.close()
        QApplication.quit()

    QTimer.singleShot(300, look_and_quit)
    assert main(["--demo", "--config", "/nonexistent/station.toml"]) == 0
    assert [w.windowTitle() for w in seen] == ["NeuroHub MES station demo"]
    assert not seen[0].bridge.loop_thread.is_alive()
