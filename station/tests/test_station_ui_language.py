"""The window speaks Korean and English through Qt's translation system, drawn with a CJK font.

The catalogue (``mes_station/ui/i18n/mes_station_ui_ko.ts``) must hold every string of the code,
each translated; the committed ``.qm`` must be what the ``.ts`` compiles to; in Korean no English
catalogue text may remain on screen; a string outside ``translate`` is caught with a marking
translator; Korean glyphs must be real glyphs, not boxes. The plugins' action panels are on screen
in these tests (a printer, an uploader and a scanner), translated by the plugins' own catalogues.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from mes_station.extensions import installed
from mes_station.ui import i18n
from mes_station.ui.bridge import AgentBridge
from mes_station.ui.options import UiOptions
from mes_station.ui.testing import FakeAgent, ManualTimers, offscreen_app, wait_until
from mes_station.ui.window import StationWindow
from PySide6.QtCore import QCoreApplication, QPoint, Qt, QTranslator
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QComboBox, QGroupBox, QLabel, QLineEdit, QTableWidget, QWidget

app = offscreen_app()
UI_DIR = Path(i18n.__file__).parent
TS = UI_DIR / "i18n" / "mes_station_ui_ko.ts"
QM = UI_DIR / "i18n" / "mes_station_ui_ko.qm"
BIN = Path(sys.executable).parent


def catalogue() -> list[tuple[str, str, str]]:
    """``(context, source, translation)`` of every message in the Korean ``.ts``."""
    out = []
    for context in ET.parse(TS).getroot().iter("context"):
        name = context.findtext("name")
        for message in context.iter("message"):
            translation = message.find("translation")
            unfinished = translation.get("type") in ("unfinished", "vanished", "obsolete")
            out.append((name, message.findtext("source"), "" if unfinished else (translation.text or "")))
    return out


#: the bundled plugins' devices at the fake station: their action panels are on screen
PANEL_DEVICES = {"PRN-01": "label_printer", "UPL-01": "firmware_uploader", "SCN-01": "barcode_scanner"}
BUNDLED_EXTENSIONS = ("label_printer", "firmware_uploader", "barcode_hid")


def plugin_catalogue(language: str = "ko") -> list[tuple[str, str, str]]:
    """``(plugin, source, translation)`` of every panel text of the installed station extensions
    (translation empty when the plugin's catalogue lacks it)."""
    out = []
    for extension in installed().loaded.values():
        catalogue = i18n.installed_plugin_catalogues(language).get(extension.name, {})
        out += [(extension.name, text, catalogue.get(text, "")) for text in extension.panel_texts()]
    return out


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent(panel_devices=PANEL_DEVICES)


def open_window(agent: FakeAgent, **options) -> tuple[AgentBridge, StationWindow]:
    bridge = AgentBridge(agent)
    bridge.start()
    window = StationWindow(bridge, UiOptions(status_poll_ms=50, **options), schedule=ManualTimers().schedule)
    window.resize(1280, 800)
    window.show()
    return bridge, window


@pytest.fixture
def window(agent: FakeAgent) -> Iterator[StationWindow]:
    bridge, window = open_window(agent)
    yield window
    window.close()
    bridge.stop()
    window.set_language("en")


def log_in(win: StationWindow, username: str = "alice") -> None:
    win.login_screen.username.clear()
    QTest.keyClicks(win.login_screen.username, username)
    QTest.keyClicks(win.login_screen.password, "secret")
    QTest.keyClick(win.login_screen.password, Qt.Key.Key_Return)
    wait_until(lambda: win.logged_in, message="logged in")


def visible_texts(root: QWidget, *, cells: bool = False) -> list[str]:
    """Every text a worker can see in the window: labels, buttons, placeholders, titles, headers, items
    (and the history's cells with ``cells``)."""
    texts: list[str] = []
    for widget in [root, *root.findChildren(QWidget)]:
        if not widget.isVisibleTo(root):
            continue
        if isinstance(widget, QLabel | QAbstractButton):
            texts.append(widget.text())
        if isinstance(widget, QLineEdit) and not widget.text():
            texts.append(widget.placeholderText())
        if isinstance(widget, QGroupBox):
            texts.append(widget.title())
        if isinstance(widget, QComboBox):
            texts.extend(widget.itemText(i) for i in range(widget.count()))
        if isinstance(widget, QTableWidget):
            texts.extend(widget.horizontalHeaderItem(c).text() for c in range(widget.columnCount()))
            if cells:
                texts.extend(
                    widget.item(r, c).text()
                    for r in range(widget.rowCount())
                    for c in range(widget.columnCount())
                    if widget.item(r, c) is not None
                )
    return [text for text in texts if text and text.strip()]


def drive_every_state(win: StationWindow, agent: FakeAgent, *, cells: bool = False) -> list[str]:
    """Texts of the login screen, the main screen after a scan and a save, and offline with quarantine."""
    texts = visible_texts(win, cells=cells)
    log_in(win)
    screen = win.main_screen
    screen.actions.refresh()
    wait_until(lambda: len(screen.actions.boxes) == 3, message="the plugins' action panels")
    QTest.keyClicks(screen.scan_input, "SN-0001")
    QTest.keyClick(screen.scan_input, Qt.Key.Key_Return)
    wait_until(lambda: screen.current_view is not None and len(screen.defect_buttons) == 5, message="lookup")
    wait_until(lambda: screen.devices.image_combo.count() == 2, message="images")
    QTest.keyClick(screen.scan_input, Qt.Key.Key_F2)  # FAIL without a defect: the hint
    texts += visible_texts(win, cells=cells)
    agent.set_online(False)
    agent.quarantine("AOI-1.json", "x")
    QTest.keyClick(screen.scan_input, Qt.Key.Key_F1)
    wait_until(lambda: screen.result_banner.state == "queued", message="queued")
    wait_until(lambda: win.offline_banner.isVisible(), message="offline")
    texts += visible_texts(win, cells=cells)
    return texts


def test_every_catalogue_message_is_translated():
    messages = catalogue()
    assert len(messages) > 100
    assert [(c, s) for c, s, t in messages if not t.strip()] == []
    # placeholders survive translation
    for context, source, translation in messages:
        for name in ("{code}", "{worker}", "{depth}", "{job}", "{count}", "{n}", "{status}", "{state}"):
            assert (name in source) == (name in translation), (context, source)


def test_every_bundled_plugin_panel_text_is_translated():
    names = {extension.name for extension in installed().loaded.values()}
    assert set(BUNDLED_EXTENSIONS) <= names
    texts = [(p, s, t) for p, s, t in plugin_catalogue() if p in BUNDLED_EXTENSIONS]
    assert len(texts) >= 15
    assert [(p, s) for p, s, t in texts if not t.strip()] == []
    # every catalogue entry is a text of the plugin's panels (no stale entry left after a rename)
    for extension in installed().loaded.values():
        stale = set(i18n.installed_plugin_catalogues("ko").get(extension.name, {})) - set(extension.panel_texts())
        assert stale == set(), (extension.name, stale)


def test_every_string_in_the_code_is_in_the_catalogue(tmp_path):
    lupdate = BIN / "pyside6-lupdate"
    copy = tmp_path / "ko.ts"
    shutil.copy(TS, copy)
    sources = sorted(str(p) for p in UI_DIR.glob("*.py"))
    done = subprocess.run(
        [str(lupdate), "-no-obsolete", "-locations", "none", *sources, "-ts", str(copy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    before = {(c, s) for c, s, _ in catalogue()}
    after = {
        (context.findtext("name"), message.findtext("source"))
        for context in ET.parse(copy).getroot().iter("context")
        for message in context.iter("message")
    }
    assert after - before == set(), "strings not in the catalogue: run `make ui-translations` and translate them"


def test_the_committed_qm_is_the_compiled_ts(tmp_path):
    compiled = tmp_path / "ko.qm"
    done = subprocess.run(
        [str(BIN / "pyside6-lrelease"), str(TS), "-qm", str(compiled)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert compiled.read_bytes() == QM.read_bytes(), "run `make ui-translations` and commit the .qm"


def test_in_korean_no_english_catalogue_text_is_left_on_screen(window, agent):
    window.set_language("ko")
    english = {source for _, source, translation in catalogue() if source != translation and len(source) > 2}
    english |= {source for _, source, translation in plugin_catalogue() if source != translation and len(source) > 2}
    texts = drive_every_state(window, agent, cells=True)
    actions = window.main_screen.actions
    assert actions.box("label_printer.print", "PRN-01").title() == "라벨 인쇄 — PRN-01"
    assert actions.box("firmware_uploader.flash", "UPL-01").buttons["flash"].text() == "플래시"
    assert actions.box("barcode_hid.lookup", "SCN-01").captions["code"].text() == "스캔한 코드"
    assert window.main_screen.pass_button.text() == "합격  [F1]"
    assert window.main_screen.history_table.item(0, 3).text() == "합격"  # the kernel's "pass" too
    words = {source for source in english if "{" not in source and " " not in source}
    leftovers = sorted(
        {text for text in texts for source in english if "{" not in source and " " in source and source in text}
        | {text for text in texts if set(text.replace("·", " ").split()) & words}
    )
    assert leftovers == []


class MarkingTranslator(QTranslator):
    """Wraps every translated string in ⟦…⟧: text on screen without the marks skipped ``translate``."""

    def translate(self, context, source_text, disambiguation=None, n=-1):  # noqa: N802 - Qt's signature
        return f"⟦{source_text}⟧"

    def isEmpty(self) -> bool:  # noqa: N802
        return False


def test_no_text_on_screen_bypasses_the_translation_system(window, agent):
    marker = MarkingTranslator()
    QCoreApplication.instance().installTranslator(marker)
    try:
        window.retranslate()
        texts = drive_every_state(window, agent)
    finally:
        QCoreApplication.instance().removeTranslator(marker)
    data = {"alice", "SN-0001", "LOT-2026-0042", "NH-HUB-200", "in_progress", "TEST-30 · Functional test", "—"}
    data |= {name for code, name in [(d["code"], d["name"]) for d in agent.defects["TEST-30"]]}
    data |= {"hub-main 1.4.2 · UPL-01", "hub-main 1.5.0 · UPL-01", "한국어 [Ctrl+L]"}
    # a panel's choices are values the plugin's route takes (template names), shown as they are
    data |= {choice for row in agent.action_panels() for f in row["panel"].fields for choice in f.choices}
    bare = sorted(
        {
            text
            for text in texts
            if "⟦" not in text
            and text not in data
            and not any(text.endswith(d) and text[: -len(d)].strip().isdigit() for d in data)
            and "\n" not in text  # defect buttons: number, name, code (all data)
        }
    )
    assert bare == []


def test_station_language_worker_language_and_the_switch(agent):
    bridge, window = open_window(agent, language="ko")
    try:
        assert window.login_screen.login_button.text() == "로그인"
        log_in(window, "alice")
        assert window.language == "ko"  # alice has no language of her own: the station's
        window.toggle_language()
        assert window.main_screen.logout_button.text() == "Log out"
        QTest.mouseClick(window.main_screen.logout_button, Qt.MouseButton.LeftButton)
        assert window.language == "ko" and window.login_screen.login_button.text() == "로그인"
    finally:
        window.close()
        bridge.stop()
        window.set_language("en")

    bridge, window = open_window(agent, language="en")
    try:
        log_in(window, "minji")  # her login answer says "language": "ko"
        assert window.language == "ko"
        assert window.main_screen.worker_label.text() == "작업자: minji"
        QTest.mouseClick(window.main_screen.logout_button, Qt.MouseButton.LeftButton)
        assert window.language == "en" and window.login_screen.login_button.text() == "Log in"
    finally:
        window.close()
        bridge.stop()
        window.set_language("en")


def test_a_missing_translation_falls_back_to_english(tmp_path):
    assert i18n.normalise_language("ko-KR") == "ko"
    assert i18n.normalise_language("de") == "en"
    assert i18n.Translations(tmp_path).use("ko") == "en"  # no catalogue there: English
    assert i18n.use_language("ko") == "ko"
    try:
        assert i18n.translate("MainScreen", "PASS") == "합격"
        assert i18n.translate("MainScreen", "A sentence nobody translated") == "A sentence nobody translated"
    finally:
        i18n.use_language("en")
    assert i18n.translate("MainScreen", "PASS") == "PASS"


def test_a_panel_in_korean_names_a_missing_field_in_korean_and_sends_nothing(window, agent):
    window.set_language("ko")
    log_in(window)
    actions = window.main_screen.actions
    actions.refresh()
    wait_until(lambda: len(actions.boxes) == 3, message="the plugins' action panels")
    box = actions.box("label_printer.print", "PRN-01")
    QTest.mouseClick(box.buttons["print"], Qt.MouseButton.LeftButton)
    assert box.message.text() == "입력하세요: 제품 (ACTION_INVALID)"
    assert agent.actions == []
    QTest.keyClicks(box.inputs["product"], "NH-HUB-200")
    QTest.mouseClick(box.buttons["print"], Qt.MouseButton.LeftButton)
    wait_until(lambda: agent.actions, message="the action sent")
    assert agent.actions[0]["values"]["product"] == "NH-HUB-200"
    wait_until(lambda: box.message.text() == "완료: done", message="done")


def test_a_third_party_plugins_catalogue_translates_its_panel_and_nothing_else(tmp_path):
    from mes_kernel.contracts import StationExtension

    acme = StationExtension(name="acme_scale", translations={"ko-KR": {"Weigh": "계량", "Tare": ""}})
    broken = StationExtension(name="broken", translations=["not", "a", "mapping"])  # type: ignore[arg-type]
    catalogues = i18n.plugin_catalogues_of([acme, broken], "ko")
    assert catalogues == {"acme_scale": {"Weigh": "계량"}}  # an empty translation is no translation

    translations = i18n.Translations(plugin_catalogues=lambda language: catalogues)
    assert translations.use("ko") == "ko"
    try:
        assert i18n.plugin_text("acme_scale", "Weigh") == "계량"
        assert i18n.plugin_text("acme_scale", "Tare") == "Tare"  # untranslated: English
        assert i18n.plugin_text("other_plugin", "Weigh") == "Weigh"  # only its own plugin's words
        assert i18n.translate("MainScreen", "PASS") == "합격"  # the window's own catalogue still answers
    finally:
        translations.use("en")
    assert i18n.plugin_text("acme_scale", "Weigh") == "Weigh"


def glyph(font: QFont, char: str) -> bytes:
    image = QImage(64, 64, QImage.Format.Format_Grayscale8)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setFont(font)
    painter.setPen(QColor("black"))
    painter.drawText(QPoint(8, 48), char)
    painter.end()
    return bytes(image.constBits())


def test_korean_is_drawn_with_the_projects_cjk_font_not_boxes(window):
    family = window.font_family
    assert family in i18n.CJK_FAMILIES, family
    font = QFont(family)
    font.setPixelSize(32)
    metrics = QFontMetrics(font)
    korean = sorted({char for _, _, text in catalogue() for char in text if "\uac00" <= char <= "\ud7a3"})
    assert len(korean) > 100
    assert [char for char in korean if not metrics.inFontUcs4(ord(char))] == []
    # Real glyphs differ from each other; tofu boxes are all alike.
    sample = korean[:40]
    assert len({glyph(font, char) for char in sample}) == len(sample)
    # The window's own widgets use that font.
    window.set_language("ko")
    assert window.main_screen.pass_button.font().family() == family
    assert QFontMetrics(window.main_screen.pass_button.font()).inFontUcs4(ord("합"))


def test_a_workers_switch_is_remembered_for_their_next_login_at_this_station(agent, tmp_path):
    store = tmp_path / "work" / "ui-languages.json"
    bridge = AgentBridge(agent)
    bridge.start()
    window = StationWindow(
        bridge,
        UiOptions(status_poll_ms=50),
        schedule=ManualTimers().schedule,
        worker_languages=i18n.WorkerLanguages(store),
    )
    window.show()
    try:
        log_in(window, "alice")
        assert window.language == "en"
        window.toggle_language()  # alice prefers Korean
        QTest.mouseClick(window.main_screen.logout_button, Qt.MouseButton.LeftButton)
        assert window.language == "en"  # the station's again
        log_in(window, "alice")
        assert window.language == "ko"
    finally:
        window.close()
        bridge.stop()
        window.set_language("en")
    # kept in the station's work folder for the next start of the window
    assert i18n.WorkerLanguages(store).get("alice") == "ko"
    assert i18n.WorkerLanguages(tmp_path / "missing.json").get("alice") is None
    store.write_text("not json", encoding="utf-8")
    assert i18n.WorkerLanguages(store).get("alice") is None  # a broken file costs only the preference
