"""The main screen: scan a code, see the unit, record pass/fail, print a label, flash firmware."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mes_station.ui.actions_panel import ActionsPanel
from mes_station.ui.bridge import AgentBridge
from mes_station.ui.devices_panel import ERROR_STYLE, NEUTRAL_STYLE, OK_STYLE, DevicesPanel, say
from mes_station.ui.options import UiOptions
from mes_station.ui.view import (
    HISTORY_COLUMNS,
    UnitView,
    describe_error,
    unit_view,
)
from mes_station.ui.wedge import WedgeFeeder


def _button_style(colour: str, disabled: str) -> str:
    # A coloured button must still look off when disabled (after a save, before a lookup).
    return (
        f"QPushButton {{ background: {colour}; color: white; font-weight: bold; }}"
        f"QPushButton:disabled {{ background: {disabled}; color: #f4f4f4; }}"
    )


class MainScreen(QWidget):
    """Everything a worker does between login and logout; all work goes through the bridge."""

    def __init__(
        self,
        bridge: AgentBridge,
        options: UiOptions,
        on_logout: Callable[[], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._on_logout = on_logout
        self.setObjectName("main_screen")
        self._bridge = bridge
        self._options = options
        self._worker_id: str | None = None
        self._view: UnitView | None = None
        self._lookup_seq = 0
        self.wedge_feeder: WedgeFeeder | None = None

        layout = QVBoxLayout(self)
        layout.addLayout(self._build_header())
        layout.addLayout(self._build_scan_row())
        layout.addWidget(self._build_unit_box(), stretch=1)
        bottom = QHBoxLayout()
        bottom.addWidget(self._build_result_box(), stretch=1)
        self.devices = DevicesPanel(bridge, options)
        bottom.addWidget(self.devices, stretch=1)
        layout.addLayout(bottom)
        # the plugins' declared panels for this station's devices (printer, uploader, a third party's …)
        self.actions = ActionsPanel(bridge)
        layout.addWidget(self.actions)
        self._show_view(None)

    # -- layout ------------------------------------------------------------------

    def _build_header(self) -> QHBoxLayout:
        self.worker_label = QLabel(objectName="worker_label")
        self.worker_label.setStyleSheet("font-weight: bold;")
        self.logout_button = QPushButton("Log out", objectName="logout_button")
        self.logout_button.clicked.connect(lambda: self._on_logout())
        row = QHBoxLayout()
        row.addWidget(self.worker_label)
        row.addStretch(1)
        row.addWidget(self.logout_button)
        return row

    def _build_scan_row(self) -> QHBoxLayout:
        self.scan_input = QLineEdit(objectName="scan_input")
        self.scan_input.setPlaceholderText("Scan or type a serial or LOT number, then Enter")
        self.scan_input.setStyleSheet("font-size: 18px; padding: 4px;")
        self.lookup_button = QPushButton("Look up", objectName="lookup_button")
        self.scan_input.returnPressed.connect(self.enter_code)
        self.lookup_button.clicked.connect(self.enter_code)
        row = QHBoxLayout()
        row.addWidget(QLabel("Code"))
        row.addWidget(self.scan_input, stretch=1)
        row.addWidget(self.lookup_button)
        return row

    def _build_unit_box(self) -> QGroupBox:
        box = QGroupBox("Unit")
        self.serial_value = QLabel(objectName="serial_value")
        self.lot_value = QLabel(objectName="lot_value")
        self.product_value = QLabel(objectName="product_value")
        self.lot_status_value = QLabel(objectName="lot_status_value")
        self.next_process_value = QLabel(objectName="next_process_value")
        self.next_process_value.setStyleSheet("font-size: 16px; font-weight: bold;")
        self.lookup_message = QLabel(objectName="lookup_message")
        self.lookup_message.setWordWrap(True)
        facts = QFormLayout()
        facts.addRow("Serial number", self.serial_value)
        facts.addRow("LOT", self.lot_value)
        facts.addRow("Product", self.product_value)
        facts.addRow("LOT status", self.lot_status_value)
        facts.addRow("Next process", self.next_process_value)

        self.history_table = QTableWidget(0, len(HISTORY_COLUMNS), objectName="history_table")
        self.history_table.setHorizontalHeaderLabels(HISTORY_COLUMNS)
        self.history_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.history_table.verticalHeader().setVisible(False)
        self.history_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.history_table.horizontalHeader().setStretchLastSection(True)

        top = QHBoxLayout()
        top.addLayout(facts, stretch=1)
        column = QVBoxLayout(box)
        column.addLayout(top)
        column.addWidget(self.lookup_message)
        column.addWidget(QLabel("History"))
        column.addWidget(self.history_table, stretch=1)
        return box

    def _build_result_box(self) -> QGroupBox:
        box = QGroupBox("Result")
        self.pass_button = QPushButton("PASS", objectName="pass_button")
        self.pass_button.setStyleSheet(_button_style("#2e7d32", "#a9c7aa"))
        self.fail_button = QPushButton("FAIL", objectName="fail_button")
        self.fail_button.setStyleSheet(_button_style("#c62828", "#d9a9a9"))
        for button in (self.pass_button, self.fail_button):
            button.setMinimumHeight(40)
        self.defect_combo = QComboBox(objectName="defect_combo")
        self.defect_combo.addItem("— defect code —", None)
        for code in self._options.defect_codes:
            self.defect_combo.addItem(code, code)
        self.result_message = QLabel(objectName="result_message")
        self.result_message.setWordWrap(True)
        self.pass_button.clicked.connect(lambda: self.record("pass"))
        self.fail_button.clicked.connect(lambda: self.record("fail"))

        buttons = QHBoxLayout()
        buttons.addWidget(self.pass_button)
        buttons.addWidget(self.fail_button)
        defect = QHBoxLayout()
        defect.addWidget(QLabel("Defect"))
        defect.addWidget(self.defect_combo, stretch=1)
        column = QVBoxLayout(box)
        column.addLayout(buttons)
        column.addLayout(defect)
        column.addWidget(self.result_message)
        column.addStretch(1)
        return box

    # -- session -----------------------------------------------------------------

    def set_worker(self, worker_id: str | None) -> None:
        """Show who is logged in; results are recorded under this id."""
        self._worker_id = worker_id
        self.worker_label.setText(f"Worker: {worker_id}" if worker_id else "")
        self.scan_input.setFocus()

    def reset(self) -> None:
        """Forget the scanned unit and any running flash watch (on logout)."""
        self.devices.reset()
        self.scan_input.clear()
        self._show_view(None)
        for label in (self.result_message, self.lookup_message):
            label.clear()

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

    def enter_code(self) -> None:
        """A person entered the code by hand: record it as a scan event, then look it up."""
        code = self.scan_input.text().strip()
        if not code:
            return
        submit_scan = getattr(self._bridge.agent, "submit_scan", None)
        if callable(submit_scan):
            self._bridge.submit(
                submit_scan,
                code,
                source="keyboard",
                on_error=lambda exc: say(self.result_message, describe_error(exc, f"Record scan {code}"), ERROR_STYLE),
            )
        self.lookup()

    def lookup(self) -> None:
        code = self.scan_input.text().strip()
        if not code:
            return
        self._lookup_seq += 1
        seq = self._lookup_seq
        say(self.lookup_message, f"Looking up {code}…", NEUTRAL_STYLE)
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
        self._show_view(view)
        self.result_message.clear()
        if view.kind == "unknown":
            say(self.lookup_message, f"{code}: unknown code.", ERROR_STYLE)
        elif view.warnings or view.history_error:
            notes = [*view.warnings, *([view.history_error] if view.history_error else [])]
            say(self.lookup_message, f"{code}: {view.kind}. " + " · ".join(notes), ERROR_STYLE)
        else:
            say(self.lookup_message, f"{code}: {view.kind}.", OK_STYLE)
        # The next scanner burst replaces the code instead of appending to it.
        self.scan_input.selectAll()
        self.scan_input.setFocus()

    def _lookup_failed(self, seq: int, code: str, exc: BaseException) -> None:
        if seq != self._lookup_seq:
            return
        self._show_view(None)
        say(self.lookup_message, describe_error(exc, f"Look up {code}"), ERROR_STYLE)
        self.scan_input.selectAll()

    def _show_view(self, view: UnitView | None) -> None:
        self._view = view
        dash = "—"
        self.serial_value.setText((view and view.serial_number) or dash)
        self.lot_value.setText((view and view.lot_number) or dash)
        self.product_value.setText((view and view.product) or dash)
        self.lot_status_value.setText((view and view.lot_status) or dash)
        self.next_process_value.setText(view.next_process_text if view else dash)
        self.history_table.setRowCount(0)
        for row in view.history if view else []:
            self._append_history(row)
        self._set_record_enabled(bool(view and view.can_record))
        self.devices.show_view(view)

    def _append_history(self, row: tuple[str, ...], *, pending: bool = False) -> None:
        index = self.history_table.rowCount()
        self.history_table.insertRow(index)
        for column, text in enumerate(row):
            item = QTableWidgetItem(text)
            if pending:
                font = item.font()
                font.setItalic(True)
                item.setFont(font)
            self.history_table.setItem(index, column, item)

    # -- results -----------------------------------------------------------------

    def record(self, result: str) -> None:
        """Record pass/fail for the shown unit at its next process (through the outbox)."""
        view = self._view
        if view is None or not view.can_record:
            return
        defect_code = self.defect_combo.currentData() if result == "fail" else None
        if result == "fail" and not defect_code:
            say(self.result_message, "Choose a defect code to record a FAIL.", ERROR_STYLE)
            self.defect_combo.setFocus()
            return
        if not self._worker_id:
            say(self.result_message, "No worker logged in.", ERROR_STYLE)
            return
        self._set_record_enabled(False)
        say(self.result_message, "Saving…", NEUTRAL_STYLE)
        self._bridge.submit(
            self._bridge.agent.record_result,
            lot_number=view.lot_number,
            process_id=view.next_process_id,
            worker_id=self._worker_id,
            result=result,
            serial_number=view.serial_number,
            defect_code=defect_code,
            on_result=lambda key: self._recorded(view, result, defect_code, key),
            on_error=lambda exc: self._record_failed(view, exc),
        )

    def _recorded(self, view: UnitView, result: str, defect_code: str | None, key: str) -> None:
        what = result.upper() + (f" ({defect_code})" if defect_code else "")
        target = view.serial_number or view.lot_number
        say(
            self.result_message,
            f"Saved (queued): {what} for {target} at {view.next_process_id}. Key {str(key)[:12]}",
            OK_STYLE,
        )
        self.defect_combo.setCurrentIndex(0)
        if self._view is view:
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
            row = (
                now,
                view.next_process_id or "",
                "queued",
                result,
                defect_code or "",
                self._worker_id or "",
                "this station",
            )
            self._append_history(row, pending=True)
        # One result per scan: the button stays off until the next lookup, so a double
        # press cannot record twice.
        self.scan_input.selectAll()
        self.scan_input.setFocus()

    def _record_failed(self, view: UnitView, exc: BaseException) -> None:
        say(self.result_message, describe_error(exc, "Record result"), ERROR_STYLE)
        if self._view is view:
            self._set_record_enabled(True)

    def _set_record_enabled(self, enabled: bool) -> None:
        self.pass_button.setEnabled(enabled)
        self.fail_button.setEnabled(enabled)


async def lookup_with_history(agent: Any, code: str) -> dict[str, Any]:
    """``agent.lookup(code)``, plus the unit's or LOT's history when the answer has none.

    Runs on the agent thread. A history that cannot be read does not hide the lookup: the
    answer carries ``history_error`` instead.
    """
    answer = dict(await agent.lookup(code) or {})
    if "history" in answer:
        return answer
    unit = answer.get("unit") if isinstance(answer.get("unit"), dict) else {}
    lot = answer.get("lot") if isinstance(answer.get("lot"), dict) else {}
    serial_number = unit.get("serial_number") or answer.get("serial_number")
    lot_number = lot.get("lot_number") or answer.get("lot_number")
    unit_history = getattr(agent, "unit_history", None)
    lot_history = getattr(agent, "lot_history", None)
    try:
        if serial_number and callable(unit_history):
            answer["history"] = await unit_history(serial_number)
        elif lot_number and callable(lot_history):
            answer["history"] = await lot_history(lot_number)
    except Exception as exc:  # shown beside the lookup, which did succeed
        answer["history_error"] = describe_error(exc, "History")
    return answer
