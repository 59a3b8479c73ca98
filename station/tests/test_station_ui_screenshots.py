"""Screenshots of the main screens, offscreen: each renders, and each state looks different.

Set ``MES_STATION_SCREENSHOT_DIR`` to keep the PNGs (for docs or a look by eye).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mes_station.ui.bridge import AgentBridge
from mes_station.ui.options import UiOptions
from mes_station.ui.testing import FakeAgent, offscreen_app, wait_until
from mes_station.ui.window import StationWindow
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest

app = offscreen_app()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    kept = os.environ.get("MES_STATION_SCREENSHOT_DIR")
    folder = Path(kept) if kept else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def grab(window: StationWindow, path: Path) -> QImage:
    QTest.qWait(20)  # let pending paints and layout settle
    assert window.grab().save(str(path))
    image = QImage(str(path))
    assert not image.isNull()
    return image


def distinct_colours(image: QImage, step: int = 7) -> int:
    return len({image.pixel(x, y) for x in range(0, image.width(), step) for y in range(0, image.height(), step)})


def differing_pixels(a: QImage, b: QImage, step: int = 3) -> int:
    assert a.size() == b.size()
    return sum(a.pixel(x, y) != b.pixel(x, y) for x in range(0, a.width(), step) for y in range(0, a.height(), step))


def test_screenshots_of_login_main_and_offline_screens(shots: Path):
    agent = FakeAgent()
    bridge = AgentBridge(agent)
    bridge.start()
    window = StationWindow(bridge, UiOptions(status_poll_ms=50, firmware_image_id="fw-1.4.2"))
    window.resize(1024, 700)
    window.show()
    try:
        wait_until(lambda: window.online_label.text() == "ONLINE")
        login = grab(window, shots / "station-login.png")

        QTest.keyClicks(window.login_screen.username, "alice")
        QTest.keyClicks(window.login_screen.password, "secret")
        QTest.keyClick(window.login_screen.password, Qt.Key.Key_Return)
        wait_until(lambda: window.logged_in)
        screen = window.main_screen
        QTest.keyClicks(screen.scan_input, "SN-0001")
        QTest.keyClick(screen.scan_input, Qt.Key.Key_Return)
        wait_until(lambda: screen.current_view is not None)
        QTest.mouseClick(screen.pass_button, Qt.MouseButton.LeftButton)
        wait_until(lambda: window.queue_label.text().startswith("Queue: 1"))
        main = grab(window, shots / "station-main.png")

        agent.set_online(False)
        wait_until(lambda: window.online_label.text() == "OFFLINE")
        offline = grab(window, shots / "station-main-offline.png")
    finally:
        window.close()
        bridge.stop()

    for image in (login, main, offline):
        assert (image.width(), image.height()) == (1024, 700)
        assert distinct_colours(image) > 5  # text, buttons, badges — not a blank surface
    for path in shots.glob("station-*.png"):
        assert path.stat().st_size > 5_000
    assert differing_pixels(login, main) > 1_000
    # Online → offline changes the status badge and nothing else of substance.
    assert 0 < differing_pixels(main, offline) < differing_pixels(login, main)
