"""Screenshots of the window at 1280×800 and 1920×1080, measured: the key widgets are big enough.

Each screenshot is written to a folder (``MES_STATION_SCREENSHOT_DIR`` keeps them, for docs or a
look by eye) and read back; the test measures in the PNG itself: PASS/FAIL at least 120 px of
their colour, the result banner and the offline banner across the window, the serial drawn
large, the Korean screen in real glyphs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mes_station.ui.bridge import AgentBridge
from mes_station.ui.options import UiOptions
from mes_station.ui.testing import FakeAgent, ManualTimers, offscreen_app, wait_until
from mes_station.ui.window import StationWindow
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QWidget

app = offscreen_app()

PASS_GREEN = QColor("#2e7d32")
FAIL_RED = QColor("#c62828")
SAVED_GREEN = QColor("#1b7a2b")
QUEUED_AMBER = QColor("#f2a900")
OFFLINE_RED = QColor("#c62828")


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    kept = os.environ.get("MES_STATION_SCREENSHOT_DIR")
    folder = Path(kept) if kept else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def grab(window: StationWindow, path: Path) -> QImage:
    QTest.qWait(30)  # let pending paints and layout settle
    assert window.grab().save(str(path))
    image = QImage(str(path))
    assert not image.isNull()
    return image


def near(a: QColor, b: QColor, tolerance: int = 24) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a.getRgb()[:3], b.getRgb()[:3], strict=True))


def rect_in(window: StationWindow, widget: QWidget) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def vertical_run(image: QImage, x: int, y_from: int, y_to: int, colour: QColor) -> int:
    """The longest run of ``colour`` down the column ``x``."""
    best = run = 0
    for y in range(max(0, y_from), min(image.height(), y_to)):
        run = run + 1 if near(image.pixelColor(x, y), colour) else 0
        best = max(best, run)
    return best


def horizontal_span(image: QImage, y: int, colour: QColor) -> int:
    """How many pixels of row ``y`` are ``colour``."""
    return sum(near(image.pixelColor(x, y), colour) for x in range(image.width()))


def ink_height(image: QImage, rect: QRect) -> int:
    """Height of the dark pixels (text) inside ``rect``."""
    rows = [
        y
        for y in range(rect.top(), rect.bottom())
        if any(image.pixelColor(x, y).lightness() < 90 for x in range(rect.left(), rect.right(), 2))
    ]
    return (rows[-1] - rows[0] + 1) if rows else 0


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)], ids=["1280x800", "1920x1080"])
def test_screenshots_show_the_key_widgets_at_shop_floor_sizes(shots: Path, size: tuple[int, int]):
    width, height = size
    agent = FakeAgent()
    bridge = AgentBridge(agent)
    bridge.start()
    window = StationWindow(bridge, UiOptions(status_poll_ms=50), schedule=ManualTimers().schedule)
    window.resize(width, height)
    window.show()
    tag = f"{width}x{height}"
    try:
        wait_until(lambda: window.online_label.text() == "ONLINE")
        login = grab(window, shots / f"station-login-{tag}.png")
        assert (login.width(), login.height()) == size

        QTest.keyClicks(window.login_screen.username, "alice")
        QTest.keyClicks(window.login_screen.password, "secret")
        QTest.keyClick(window.login_screen.password, Qt.Key.Key_Return)
        wait_until(lambda: window.logged_in)
        screen = window.main_screen
        QTest.keyClicks(screen.scan_input, "SN-0001")
        QTest.keyClick(screen.scan_input, Qt.Key.Key_Return)
        wait_until(lambda: screen.current_view is not None and len(screen.defect_buttons) == 5)
        scanned = grab(window, shots / f"station-scanned-{tag}.png")
        assert (scanned.width(), scanned.height()) == size
        for button, colour in ((screen.pass_button, PASS_GREEN), (screen.fail_button, FAIL_RED)):
            rect = rect_in(window, button)
            assert rect.bottom() < height and rect.right() < width  # on screen, not cut off
            x = rect.left() + 12  # left of the caption
            assert vertical_run(scanned, x, rect.top(), rect.bottom() + 1, colour) >= 120, button.objectName()
        serial = rect_in(window, screen.serial_value)
        assert ink_height(scanned, serial) >= 26  # "SN-0001" drawn at 40 px: capitals ~29 px tall
        for button in screen.defect_buttons:
            assert rect_in(window, button).bottom() < height and button.height() >= 56

        QTest.keyClick(screen.scan_input, Qt.Key.Key_F1)
        wait_until(lambda: screen.result_banner.state == "saved")
        saved = grab(window, shots / f"station-saved-{tag}.png")
        assert (saved.width(), saved.height()) == size
        banner = rect_in(window, screen.result_banner)
        assert banner.height() >= 64
        assert horizontal_span(saved, banner.top() + 4, SAVED_GREEN) >= width - 60  # full width

        window.set_language("ko")
        agent.set_online(False)
        screen.scan_input.clear()
        QTest.keyClicks(screen.scan_input, "SN-0002")
        QTest.keyClick(screen.scan_input, Qt.Key.Key_Return)
        wait_until(lambda: screen.current_view is not None and screen.current_view.code == "SN-0002")
        QTest.keyClick(screen.scan_input, Qt.Key.Key_F1)
        wait_until(lambda: screen.result_banner.state == "queued" and window.offline_banner.isVisible())
        offline = grab(window, shots / f"station-offline-ko-{tag}.png")
        assert (offline.width(), offline.height()) == size  # the offline banner does not grow the window
        top = rect_in(window, window.offline_banner)
        assert top.height() >= 60
        assert horizontal_span(offline, top.top() + 4, OFFLINE_RED) >= width - 60
        queued = rect_in(window, screen.result_banner)
        assert horizontal_span(offline, queued.top() + 4, QUEUED_AMBER) >= width - 60
        pass_rect = rect_in(window, screen.pass_button)
        assert pass_rect.bottom() < height and pass_rect.height() >= 120  # the offline banner pushes, never hides
        # Korean text on the PASS caption is ink, as in English
        assert ink_height(offline, rect_in(window, screen.worker_label)) >= 14
    finally:
        window.close()
        bridge.stop()
        window.set_language("en")
    for path in shots.glob(f"station-*-{tag}.png"):
        assert path.stat().st_size > 10_000
