"""The main screen: scan a code, see the unit, record pass/fail, print a label, flash firmware.

Made for the shop floor: a large header (serial, LOT, product, next process), PASS and FAIL
at least 120 px tall, the current process's defect codes as big buttons, a full-width banner
after each save, history newest first. Keyboard and scanner alone drive it: the code field
keeps the focus (a scanner types into it), F1 records PASS, F2 FAIL, Alt+1…9 pick a defect
code, Ctrl+P prints a label, Esc clears; Tab walks every control in reading order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mes_station.ui.actions_panel import ActionsPanel
from mes_station.ui.bridge import AgentBridge
from mes_station.ui.devices_panel import DevicesPanel
from mes_station.ui.i18n import translate
from mes_station.ui.options import UiOptions
from mes_station.ui.view import UnitView, describe_error, event_word, history_columns, unit_view
from mes_station.ui.wedge import WedgeFeeder
from mes_station.ui.widgets import (
    DEFECT_BUTTON_PX,
    ERROR_STYLE,
    NEUTRAL_STYLE,
    OK_STYLE,
    RESULT_BUTTON_PX,
    BigButton,
    ResultBanner,
    Scheduler,
    say,
)

KEY_ROLE = Qt.ItemDataRole.UserRole + 1
MAX_DEFECT_SHORTCUTS = 9
MAX_EARLY_DELIVERIES = 200


def _button_style(colour: str, disabled: str) -> str:
    # A coloured button must still look off when disabled (after a save, before a lookup).
    return (
        f"QPushButton {{ background: {colour}; color: white; font-size: 40px; font-weight: bold;"
        f" border-radius: 8px; min-height: {RESULT_BUTTON_PX}px; }}"
        f"QPushButton:disabled {{ background: {disabled}; color: #f4f4f4; }}"
        "QPushButton:focus { border: 4px solid #1565c0; }"
    )


_DEFECT_STYLE = (
    "QPushButton { font-size: 18px; font-weight: bold; background: #f4f4f4; border: 2px solid #999;"
    f" border-radius: 6px; min-height: {DEFECT_BUTTON_PX}px; padding: 0px 4px; }}"
    "QPushButton:checked { background: #c62828; color: white; border-color: #7f0000; }"
    "QPushButton:focus { border: 3px solid #1565c0; }"
)


@dataclass
class PendingRecord:
    """A result this screen saved, followed until the server has it."""

    key: str
    result: str
    defect_code: str | None
    target: str
    process_id: str
    state: str = "queued"
    code: str | None = None
    message: str | None = None


class MainScreen(QWidget):
    """Everything a worker does between login and logout; all work goes through the bridge."""

    def __init__(
        self,
        bridge: AgentBridge,
        options: UiOptions,
        on_logout: Callable[[], None],
        schedule: Scheduler,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._on_logout = on_logout
        self.setObjectName("main_screen")
        self._bridge = bridge
        self._options = options
        self._worker_id: str | None = None
        self._worker_offline = False
        self._view: UnitView | None = None
        # FAIL was pressed with no defect code: the code the worker picks next records that FAIL
        self._fail_pending: UnitView | None = None
        self._lookup_seq = 0
        self._defect_seq = 0
        self._lookup_note: Callable[[], tuple[str, str]] | None = None
        self._result_note: Callable[[], tuple[str, str]] | None = None
        self.station_code: str | None = None
        self._last_process: tuple[str, str | None] | None = None
        self.records: dict[str, PendingRecord] = {}
        self._early_deliveries: dict[str, dict[str, Any]] = {}
        self.wedge_feeder: WedgeFeeder | None = None
        self.defect_buttons: list[BigButton] = []

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(self._build_scan_row())
        layout.addWidget(self._build_unit_header())
        self.result_banner = ResultBanner(schedule, options.banner_ms)
        layout.addWidget(self.result_banner)
        body = QHBoxLayout()
        body.addWidget(self._build_result_box(), stretch=5)
        right = QVBoxLayout()
        right.addWidget(self._build_history_box(), stretch=1)
        self.devices = DevicesPanel(bridge, options)
        right.addWidget(self.devices)
        body.addLayout(right, stretch=6)
        layout.addLayout(body, stretch=1)
        # the plugins' declared panels for this station's devices (printer, uploader, a third party's …)
        self.actions = ActionsPanel(bridge)
        layout.addWidget(self.actions)
        self._build_shortcuts()
        self.retranslate()
        self._show_view(None)
        self.show_defect_codes([{"code": code, "name": code} for code in options.defect_codes])
        self._set_tab_order()

    # -- layout ------------------------------------------------------------------

    def _build_scan_row(self) -> QHBoxLayout:
        self.worker_label = QLabel(objectName="worker_label")
        self.worker_label.setStyleSheet("font-size: 20px; font-weight: bold;")
        self.logout_button = BigButton(objectName="logout_button")
        self.logout_button.clicked.connect(lambda: self._on_logout())
        self.code_label = QLabel(objectName="code_label")
        self.scan_input = QLineEdit(objectName="scan_input")
        self.scan_input.setStyleSheet("font-size: 24px; padding: 2px; min-height: 44px;")
        self.lookup_button = BigButton(objectName="lookup_button")
        self.scan_input.returnPressed.connect(self.enter_code)
        self.lookup_button.clicked.connect(self.enter_code)
        row = QHBoxLayout()
        row.addWidget(self.worker_label)
        row.addSpacing(16)
        row.addWidget(self.code_label)
        row.addWidget(self.scan_input, stretch=1)
        row.addWidget(self.lookup_button)
        row.addSpacing(16)
        row.addWidget(self.logout_button)
        return row

    def _build_unit_header(self) -> QFrame:
        frame = QFrame(objectName="unit_header")
        frame.setFrameShape(QFrame.Shape.StyledPanel)
        frame.setStyleSheet("QFrame#unit_header { background: #eef3f8; border-radius: 8px; }")
        self.serial_caption = QLabel(objectName="serial_caption")
        self.serial_value = QLabel(objectName="serial_value")
        self.serial_value.setStyleSheet("font-size: 40px; font-weight: bold;")
        self.serial_value.setMinimumWidth(360)
        self.serial_value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.next_caption = QLabel(objectName="next_caption")
        self.next_process_value = QLabel(objectName="next_process_value")
        self.next_process_value.setStyleSheet("font-size: 32px; font-weight: bold; color: #0d47a1;")
        self.lot_caption = QLabel(objectName="lot_caption")
        self.lot_value = QLabel(objectName="lot_value")
        self.product_caption = QLabel(objectName="product_caption")
        self.product_value = QLabel(objectName="product_value")
        self.lot_status_caption = QLabel(objectName="lot_status_caption")
        self.lot_status_value = QLabel(objectName="lot_status_value")
        for value in (self.lot_value, self.product_value, self.lot_status_value):
            value.setStyleSheet("font-size: 24px; font-weight: bold;")
        for caption in (
            self.serial_caption,
            self.next_caption,
            self.lot_caption,
            self.product_caption,
            self.lot_status_caption,
        ):
            caption.setStyleSheet("font-size: 17px; color: #444;")
        self.lookup_message = QLabel(objectName="lookup_message")
        self.lookup_message.setWordWrap(True)

        grid = QGridLayout(frame)
        grid.setContentsMargins(10, 4, 10, 4)
        grid.setVerticalSpacing(2)
        grid.addWidget(self.serial_caption, 0, 0)
        grid.addWidget(self.serial_value, 1, 0, 1, 2)
        grid.addWidget(self.next_caption, 0, 2)
        grid.addWidget(self.next_process_value, 1, 2, 1, 2)
        facts = QHBoxLayout()
        for caption, value in (
            (self.lot_caption, self.lot_value),
            (self.product_caption, self.product_value),
            (self.lot_status_caption, self.lot_status_value),
        ):
            facts.addWidget(caption)
            facts.addSpacing(6)
            facts.addWidget(value)
            facts.addSpacing(24)
        facts.addStretch(1)
        grid.addLayout(facts, 2, 0, 1, 4)
        grid.addWidget(self.lookup_message, 3, 0, 1, 4)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        return frame

    def _build_result_box(self) -> QWidget:
        # no frame or title: PASS and FAIL say what they are, and the space goes to them
        self.result_box = QWidget(objectName="result_box")
        self.pass_button = BigButton(objectName="pass_button")
        self.pass_button.setStyleSheet(_button_style("#2e7d32", "#a9c7aa"))
        self.fail_button = BigButton(objectName="fail_button")
        self.fail_button.setStyleSheet(_button_style("#c62828", "#d9a9a9"))
        for button in (self.pass_button, self.fail_button):
            button.setMinimumHeight(RESULT_BUTTON_PX)
        self.pass_button.clicked.connect(lambda: self.record("pass"))
        self.fail_button.clicked.connect(lambda: self.record("fail"))
        self.defect_caption = QLabel(objectName="defect_caption")
        self.defect_grid = QGridLayout()
        self.result_message = QLabel(objectName="result_message")
        self.result_message.setWordWrap(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.pass_button)
        buttons.addWidget(self.fail_button)
        column = QVBoxLayout(self.result_box)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(6)
        column.addLayout(buttons)
        column.addWidget(self.defect_caption)
        column.addLayout(self.defect_grid)
        column.addWidget(self.result_message)
        column.addStretch(1)
        return self.result_box

    def _build_history_box(self) -> QGroupBox:
        self.history_box = QGroupBox(objectName="history_box")
        self.history_table = QTableWidget(0, len(history_columns()), objectName="history_table")
        self.history_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history_table.verticalHeader().setVisible(False)
        self.history_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.history_table.horizontalHeader().setStretchLastSection(True)
        self.history_table.setStyleSheet("QTableWidget { font-size: 17px; }")
        column = QVBoxLayout(self.history_box)
        column.addWidget(self.history_table)
        return self.history_box

    def _build_shortcuts(self) -> None:
        def shortcut(keys: str, action: Callable[[], None]) -> QShortcut:
            item = QShortcut(QKeySequence(keys), self)
            item.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            item.activated.connect(action)
            return item

        self.shortcuts = {
            "pass": shortcut("F1", lambda: self.record("pass")),
            "fail": shortcut("F2", lambda: self.record("fail")),
            "print": shortcut("Ctrl+P", self.devices.print_label),
            "clear": shortcut("Esc", self.clear_code),
        }
        for index in range(MAX_DEFECT_SHORTCUTS):
            self.shortcuts[f"defect{index + 1}"] = shortcut(f"Alt+{index + 1}", lambda i=index: self.choose_defect(i))

    def _set_tab_order(self) -> None:
        chain: list[QWidget] = [self.scan_input, self.lookup_button, self.pass_button, self.fail_button]
        chain += self.defect_buttons
        chain += self.devices.focus_chain()
        chain.append(self.logout_button)
        for first, second in zip(chain, chain[1:], strict=False):
            QWidget.setTabOrder(first, second)

    def retranslate(self) -> None:
        """Set every fixed text in the current language (after a language switch too)."""
        self.logout_button.setText(translate("MainScreen", "Log out"))
        self.code_label.setText(translate("MainScreen", "Code"))
        self.scan_input.setPlaceholderText(translate("MainScreen", "Scan or type a serial or LOT number, then Enter"))
        self.lookup_button.setText(translate("MainScreen", "Look up"))
        self.serial_caption.setText(translate("MainScreen", "Serial number"))
        self.next_caption.setText(translate("MainScreen", "Next process"))
        self.lot_caption.setText(translate("MainScreen", "LOT"))
        self.product_caption.setText(translate("MainScreen", "Product"))
        self.lot_status_caption.setText(translate("MainScreen", "LOT status"))
        self.pass_button.setText(translate("MainScreen", "PASS") + "  [F1]")
        self.fail_button.setText(translate("MainScreen", "FAIL") + "  [F2]")
        self.defect_caption.setText(translate("MainScreen", "Defect code for FAIL (Alt+number)"))
        self.history_box.setTitle(translate("MainScreen", "History (newest first)"))
        self.history_table.setHorizontalHeaderLabels(list(history_columns()))
        self.set_worker(self._worker_id, offline=self._worker_offline, focus=False)
        if self._view is not None:
            self.next_process_value.setText(self._view.next_process_text)
        for note, label in ((self._lookup_note, self.lookup_message), (self._result_note, self.result_message)):
            if note is not None:
                text, style = note()
                say(label, text, style)
        for row in range(self.history_table.rowCount()):
            key = self.history_table.item(row, 0).data(KEY_ROLE)
            if key in self.records:
                self.history_table.item(row, 2).setText(_state_text(self.records[key].state))
        self.devices.retranslate()
        self.actions.retranslate()

    # -- session -----------------------------------------------------------------

    @property
    def worker_offline(self) -> bool:
        """Whether the worker shown logged in offline (from the station's cached credential)."""
        return self._worker_offline

    def set_worker(self, worker_id: str | None, *, offline: bool = False, focus: bool = True) -> None:
        """Show who is logged in (and whether offline); results are recorded under this id."""
        self._worker_id = worker_id
        self._worker_offline = offline
        if not worker_id:
            self.worker_label.setText("")
        elif offline:
            self.worker_label.setText(
                translate("MainScreen", "Worker: {worker} (logged in offline)").format(worker=worker_id)
            )
        else:
            self.worker_label.setText(translate("MainScreen", "Worker: {worker}").format(worker=worker_id))
        if focus:
            self.scan_input.setFocus()

    def reset(self) -> None:
        """Forget the scanned unit, messages and any running flash watch (on logout)."""
        self.devices.reset()
        self.scan_input.clear()
        self._show_view(None)
        self._note(self.lookup_message, None)
        self._note(self.result_message, None)
        self.result_banner.clear_banner()

    @property
    def current_view(self) -> UnitView | None:
        return self._view

    # -- lookup ------------------------------------------------------------------

    def attach_wedge(self, wedge: Any) -> None:
        """Route the scan field's keystrokes through the agent's keyboard-wedge driver."""
        self.wedge_feeder = WedgeFeeder(self._bridge, wedge, self.scan_input, self.enter_code)

    def handle_scan(self, code: str) -> None:
        """A scanner read a code (the agent recorded it and sent a ``scan`` event): look it up."""
        self.scan_input.setText(code)
        self.lookup()

    def clear_code(self) -> None:
        """Esc: empty the code field and forget the shown unit."""
        self.scan_input.clear()
        self._lookup_seq += 1
        self._show_view(None)
        self._note(self.lookup_message, None)
        self.scan_input.setFocus()

    def enter_code(self) -> None:
        """A person entered the code by hand: record it as a scan event, then look it up."""
        code = self.scan_input.text().strip()
        if not code:
            return
        self._bridge.submit(
            self._bridge.agent.submit_scan,
            code,
            source="keyboard",
            on_error=lambda exc: self._note(
                self.lookup_message,
                lambda: (
                    describe_error(exc, translate("MainScreen", "Record scan {code}").format(code=code)),
                    ERROR_STYLE,
                ),
            ),
        )
        self.lookup()

    def lookup(self) -> None:
        code = self.scan_input.text().strip()
        if not code:
            return
        self._lookup_seq += 1
        seq = self._lookup_seq
        # The old unit goes at once: nothing can be recorded against it while the new one loads.
        self._show_view(None)
        self._note(self.result_message, None)
        self._note(
            self.lookup_message,
            lambda: (translate("MainScreen", "Looking up {code}…").format(code=code), NEUTRAL_STYLE),
        )
        self._bridge.submit(
            lookup_with_history,
            self._bridge.agent,
            code,
            on_result=lambda answer: self._looked_up(seq, code, answer),
            on_error=lambda exc: self._lookup_failed(seq, code, exc),
        )

    def _looked_up(self, seq: int, code: str, answer: dict[str, Any]) -> None:
        if seq != self._lookup_seq:
            return  # a newer scan arrived while this answer was on its way
        view = unit_view(code, answer or {})
        if view.next_process_id:
            self._last_process = (view.next_process_id, view.next_process_name)
        elif view.unknown_offline and self._last_process is not None:
            # The station's cache does not know this unit, so neither its routing: the station
            # records it at the process its previous unit was at (shown as such in the header).
            process_id, name = self._last_process
            view = replace(view, next_process_id=process_id, next_process_name=name, process_assumed=True)
        self._show_view(view)
        self._note(self.lookup_message, lambda: _lookup_text(view))
        self._load_defect_codes(view)
        # The next scanner burst replaces the code instead of appending to it.
        self.scan_input.selectAll()
        self.scan_input.setFocus()

    def _lookup_failed(self, seq: int, code: str, exc: BaseException) -> None:
        if seq != self._lookup_seq:
            return
        self._show_view(None)
        self._note(
            self.lookup_message,
            lambda: (describe_error(exc, translate("MainScreen", "Look up {code}").format(code=code)), ERROR_STYLE),
        )
        self.scan_input.selectAll()
        self.scan_input.setFocus()

    def _show_view(self, view: UnitView | None) -> None:
        self._view = view
        self._fail_pending = None
        dash = "—"
        self.serial_value.setText((view and view.serial_number) or dash)
        if view is not None and view.unknown_offline and not view.lot_number:
            self.lot_value.setText(translate("MainScreen", "— (checked when the server is back)"))
        else:
            self.lot_value.setText((view and view.lot_number) or dash)
        self.product_value.setText((view and view.product) or dash)
        self.lot_status_value.setText((view and view.lot_status) or dash)
        self.next_process_value.setText(view.next_process_text if view else dash)
        self.history_table.setRowCount(0)
        for row in view.history if view else []:
            self._add_history_row(row)
        self._set_record_enabled(bool(view and view.can_record))
        self.devices.show_view(view)

    def _add_history_row(self, row: tuple[str, ...], *, key: str | None = None, at_top: bool = False) -> None:
        index = 0 if at_top else self.history_table.rowCount()
        self.history_table.insertRow(index)
        for column, text in enumerate(row):
            item = QTableWidgetItem(text)
            if key is not None:
                item.setData(KEY_ROLE, key)
                item.setForeground(QColor("#8a5a00"))
            self.history_table.setItem(index, column, item)

    # -- defect codes ------------------------------------------------------------

    def _load_defect_codes(self, view: UnitView) -> None:
        """Ask the agent for the defect list of the unit's next process (the station's list if it has none)."""
        self._defect_seq += 1
        seq = self._defect_seq
        fallback = [{"code": code, "name": code} for code in self._options.defect_codes]

        def shown(codes: Any) -> None:
            if seq == self._defect_seq:
                self.show_defect_codes(list(codes or []) or fallback)

        self._bridge.submit(
            lambda: self._bridge.agent.defect_codes(view.next_process_id),
            on_result=shown,
            on_error=lambda _exc: shown(fallback),
        )

    def show_defect_codes(self, codes: list[dict[str, Any]]) -> None:
        """One big checkable button per defect code (Alt+1…9 pick the first nine)."""
        for button in self.defect_buttons:
            self.defect_grid.removeWidget(button)
            # Out of the focus chain now: deleted later, it would splice the new chain apart.
            button.setParent(None)
            button.deleteLater()
        self.defect_buttons = []
        columns = 4 if len(codes) > 6 else 3
        for entry in codes:
            code = str(entry.get("code") or "")
            if not code:
                continue
            name = str(entry.get("name") or code)
            number = len(self.defect_buttons) + 1
            prefix = f"{number} " if number <= MAX_DEFECT_SHORTCUTS else ""
            button = BigButton(f"{prefix}{name}" if name == code else f"{prefix}{name}\n{code}")
            button.setObjectName(f"defect:{code}")
            button.setProperty("defect_code", code)
            button.setCheckable(True)
            button.setMinimumHeight(DEFECT_BUTTON_PX)
            button.setStyleSheet(_DEFECT_STYLE)
            # One defect at a time, kept by hand: an exclusive QButtonGroup would let Tab reach
            # only its checked button, and a keyboard user could not walk the codes.
            button.clicked.connect(lambda _checked=False, b=button: self._pick_defect(b))
            position = len(self.defect_buttons)
            self.defect_grid.addWidget(button, position // columns, position % columns)
            button.show()
            self.defect_buttons.append(button)
        self._set_tab_order()

    def choose_defect(self, index: int) -> None:
        """Alt+number: check the index-th defect button."""
        if 0 <= index < len(self.defect_buttons):
            self._pick_defect(self.defect_buttons[index])

    def _pick_defect(self, chosen: BigButton) -> None:
        for button in self.defect_buttons:
            button.setChecked(button is chosen)
        if self._fail_pending is not None and self._fail_pending is self._view:
            self.record("fail")  # the FAIL the worker already pressed, now with its code

    def defect_code(self) -> str | None:
        """The checked defect button's code, if any."""
        for button in self.defect_buttons:
            if button.isChecked():
                return str(button.property("defect_code"))
        return None

    def _clear_defect(self) -> None:
        for button in self.defect_buttons:
            button.setChecked(False)

    # -- results -----------------------------------------------------------------

    def record(self, result: str) -> None:
        """Record pass/fail for the shown unit at its next process (through the outbox)."""
        view = self._view
        if view is None or not view.can_record or not self.pass_button.isEnabled():
            return
        defect_code = self.defect_code() if result == "fail" else None
        self._fail_pending = None
        if result == "fail" and not defect_code:
            self._fail_pending = view
            self._note(
                self.result_message,
                lambda: (translate("MainScreen", "Choose a defect code to record a FAIL (Alt+number)."), ERROR_STYLE),
            )
            if self.defect_buttons:
                self.defect_buttons[0].setFocus()
            return
        if not self._worker_id:
            self._note(self.result_message, lambda: (translate("MainScreen", "No worker logged in."), ERROR_STYLE))
            return
        self._set_record_enabled(False)
        self._note(self.result_message, lambda: (translate("MainScreen", "Saving…"), NEUTRAL_STYLE))
        self._bridge.submit(
            self._bridge.agent.record_result,
            lot_number=view.lot_number or "",
            process_id=view.next_process_id or "",
            worker_id=self._worker_id,
            result=result,
            serial_number=view.serial_number,
            defect_code=defect_code,
            on_result=lambda key: self._recorded(view, result, defect_code, key),
            on_error=lambda exc: self._record_failed(view, exc),
        )

    def _recorded(self, view: UnitView, result: str, defect_code: str | None, key: str) -> None:
        key = str(key)
        entry = PendingRecord(
            key=key,
            result=result,
            defect_code=defect_code,
            target=view.serial_number or view.lot_number or view.code,
            process_id=view.next_process_id or "",
        )
        self.records[key] = entry
        self._note(self.result_message, None)
        self._clear_defect()
        if self._view is view:
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")  # as the server's stamps are shown
            row = (
                now,
                entry.process_id,
                _state_text("queued"),
                event_word(result),
                defect_code or "",
                self._worker_id or "",
                self.station_code or translate("MainScreen", "this station"),
            )
            self._add_history_row(row, key=key, at_top=True)
        early = self._early_deliveries.pop(key, None)
        if early is not None:  # the agent announced the record before its key came back here
            self.apply_delivery(early)
        self._show_banner(entry)
        # One result per scan: the button stays off until the next lookup, so a double
        # press cannot record twice.
        self.scan_input.selectAll()
        self.scan_input.setFocus()

    def _record_failed(self, view: UnitView, exc: BaseException) -> None:
        self.result_banner.show_outcome(
            "error",
            translate("MainScreen", "NOT SAVED")
            + " — "
            + describe_error(exc, translate("MainScreen", "Record result")),
        )
        self._note(
            self.result_message, lambda: (describe_error(exc, translate("MainScreen", "Record result")), ERROR_STYLE)
        )
        if self._view is view:
            self._set_record_enabled(True)

    def apply_delivery(self, delivery: dict[str, Any]) -> None:
        """A ``("delivery", …)`` event: a saved result reached the server, waits, or was refused."""
        key = str(delivery.get("key") or "")
        entry = self.records.get(key)
        if entry is None:
            if key:
                # The event may overtake the record's own answer; others (completion files) are not ours.
                self._early_deliveries[key] = delivery
                while len(self._early_deliveries) > MAX_EARLY_DELIVERIES:
                    self._early_deliveries.pop(next(iter(self._early_deliveries)))
            return
        entry.state = str(delivery.get("state") or entry.state)
        entry.code = delivery.get("code")
        entry.message = delivery.get("message")
        for row in range(self.history_table.rowCount()):
            item = self.history_table.item(row, 0)
            if item is not None and item.data(KEY_ROLE) == key:
                self.history_table.item(row, 2).setText(_state_text(entry.state))
                colour = {"delivered": "#1b5e20", "rejected": "#b00020"}.get(entry.state, "#8a5a00")
                for column in range(self.history_table.columnCount()):
                    self.history_table.item(row, column).setForeground(QColor(colour))
        if self.result_banner.key == key or entry.state == "rejected":
            self._show_banner(entry)

    def _show_banner(self, entry: PendingRecord) -> None:
        what = translate("MainScreen", "PASS") if entry.result == "pass" else translate("MainScreen", "FAIL")
        if entry.defect_code:
            what += f" · {entry.defect_code}"
        subject = f"{what} · {entry.target} · {entry.process_id}".rstrip(" ·")
        if entry.state == "rejected":
            reason = entry.message or entry.code or ""
            code = f" [{entry.code}]" if entry.code else ""
            text = translate("MainScreen", "REFUSED BY THE SERVER") + f" — {subject} — {reason}{code}"
            self.result_banner.show_outcome("error", text, key=entry.key)
        elif entry.state == "delivered":
            state = "fail" if entry.result == "fail" else "saved"
            self.result_banner.show_outcome(state, translate("MainScreen", "SAVED") + f" — {subject}", key=entry.key)
        else:
            text = (
                translate("MainScreen", "QUEUED")
                + f" — {subject} — "
                + translate("MainScreen", "kept at this station, sent when the server answers")
            )
            self.result_banner.show_outcome("queued", text, key=entry.key)

    def _set_record_enabled(self, enabled: bool) -> None:
        self.pass_button.setEnabled(enabled)
        self.fail_button.setEnabled(enabled)

    def _note(self, label: QLabel, note: Callable[[], tuple[str, str]] | None) -> None:
        # Notes are kept as functions so a language switch can say them again.
        if label is self.lookup_message:
            self._lookup_note = note
        elif label is self.result_message:
            self._result_note = note
        if note is None:
            label.clear()
        else:
            text, style = note()
            say(label, text, style)


def _state_text(state: str) -> str:
    return {
        "queued": translate("MainScreen", "queued"),
        "delivered": translate("MainScreen", "saved"),
        "rejected": translate("MainScreen", "refused"),
    }.get(state, state)


def _lookup_text(view: UnitView) -> tuple[str, str]:
    """The line under the header after a lookup, and its style."""
    code = view.code
    if view.unknown_offline:
        text = translate(
            "MainScreen",
            "{code}: not in this station's data (offline). A result is kept and checked when the server is back.",
        ).format(code=code)
        if not view.next_process_id:
            text += " " + translate("MainScreen", "Scan a known unit first, so the station knows its process.")
        return text, ERROR_STYLE
    if view.kind == "unknown":
        return translate("MainScreen", "{code}: this code is not known. [UNKNOWN_CODE]").format(code=code), ERROR_STYLE
    kind = {"unit": translate("MainScreen", "unit"), "lot": translate("MainScreen", "LOT")}.get(view.kind, view.kind)
    text = f"{code}: {kind}."
    style = OK_STYLE
    if view.from_cache:
        text += " " + translate("MainScreen", "From this station's data (offline).")
        style = NEUTRAL_STYLE
    notes = [*view.warnings, *([view.history_error] if view.history_error else [])]
    if notes:
        text += " " + " · ".join(notes)
        style = ERROR_STYLE
    return text, style


async def lookup_with_history(agent: Any, code: str) -> dict[str, Any]:
    """``agent.lookup(code)``, plus the unit's history when the answer has none.

    Runs on the agent thread. A history that cannot be read does not hide the lookup: the
    answer carries ``history_error`` instead. An answer from the station's cache carries the
    history the cache has; the server is not asked (it is unreachable).
    """
    answer = dict(await agent.lookup(code) or {})
    if "history" in answer or answer.get("source") == "cache" or answer.get("kind") == "unknown":
        return answer
    unit = answer.get("unit") if isinstance(answer.get("unit"), dict) else {}
    serial_number = unit.get("serial_number") or answer.get("serial_number")
    if not serial_number:
        return answer
    try:
        answer["history"] = await agent.unit_history(serial_number)
    except Exception as exc:  # shown beside the lookup, which did succeed
        answer["history_error"] = describe_error(exc, translate("MainScreen", "History"))
    return answer
