"""The plugins' action panels in the window: built from their declarations, for the station's devices.

Each plugin's station extension (entry points ``mes_station.plugins``) declares panels with fields and
buttons mapped to the plugin's routes; this box shows one for every device of that kind the server
gave the station, and rebuilds itself when the station's configuration changes. It knows no device
kind: a new plugin's panel appears here with no change to the window.

The panels' words come from the plugin, in English, and are shown through the plugin's own catalogue
(``StationExtension.translations``, installed by ``mes_station.ui.i18n``) in the window's language.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from mes_station.extensions import installed
from mes_station.ui.bridge import AgentBridge
from mes_station.ui.i18n import plugin_text, translate
from mes_station.ui.view import describe_error
from mes_station.ui.widgets import ERROR_STYLE, NEUTRAL_STYLE, OK_STYLE, BigButton, say


class ActionPanelBox(QGroupBox):
    """One declared panel for one device: its fields, its buttons and a line for the outcome.

    ``plugin`` names the station extension that declared the panel; its catalogue translates the
    title and labels (looked up among the installed extensions when not given)."""

    def __init__(
        self, bridge: AgentBridge, device: str, panel: Any, parent: QWidget | None = None, *, plugin: str | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName(f"action:{panel.id}:{device}")
        self._bridge = bridge
        self.device = device
        self.panel = panel
        self.plugin = plugin or installed().plugin_of(panel.id) or panel.id.split(".")[0]
        self.inputs: dict[str, QLineEdit | QComboBox] = {}
        self.captions: dict[str, QLabel] = {}
        self.buttons: dict[str, BigButton] = {}
        form = QFormLayout()
        for spec in panel.fields:
            if spec.type == "choice":
                # the choices are values the plugin's route takes: shown as they are
                widget: QLineEdit | QComboBox = QComboBox(objectName=f"field:{spec.name}")
                widget.addItems([""] if not spec.required else [])
                widget.addItems(list(spec.choices))
                if spec.default is not None:
                    widget.setCurrentText(str(spec.default))
            else:
                widget = QLineEdit(objectName=f"field:{spec.name}")
                if spec.default is not None:
                    widget.setText(str(spec.default))
            self.inputs[spec.name] = widget
            self.captions[spec.name] = QLabel(objectName=f"caption:{spec.name}")
            form.addRow(self.captions[spec.name], widget)
        row = QHBoxLayout()
        for button in panel.buttons:
            push = BigButton(objectName=f"button:{button.id}")
            push.clicked.connect(lambda _checked=False, b=button.id: self.press(b))
            self.buttons[button.id] = push
            row.addWidget(push)
        self.message = QLabel(objectName="action_message")
        self.message.setWordWrap(True)
        column = QVBoxLayout(self)
        column.addLayout(form)
        column.addLayout(row)
        column.addWidget(self.message)
        self.retranslate()

    def text(self, english: str) -> str:
        """One of the panel's texts in the window's language (the plugin's catalogue; else English)."""
        return plugin_text(self.plugin, english)

    def retranslate(self) -> None:
        """Title, field labels and buttons in the current language."""
        self.setTitle(f"{self.text(self.panel.title)} — {self.device}")
        for spec in self.panel.fields:
            optional = "" if spec.required else " " + translate("ActionsPanel", "(optional)")
            self.captions[spec.name].setText(self.text(spec.label) + optional)
        for button in self.panel.buttons:
            self.buttons[button.id].setText(self.text(button.label))

    def values(self) -> dict[str, Any]:
        out = {}
        for name, widget in self.inputs.items():
            text = widget.currentText() if isinstance(widget, QComboBox) else widget.text()
            out[name] = text.strip()
        return out

    def press(self, button_id: str) -> None:
        """Send the button's request through the agent (worker's name when logged in, else the station's).

        A required field left empty is named here, in the window's language, before anything is sent."""
        values = self.values()
        missing = [self.text(f.label) for f in self.panel.fields if f.required and not values.get(f.name)]
        if missing:
            say(
                self.message,
                translate("ActionsPanel", "Fill in: {fields}").format(fields=", ".join(missing))
                + " (ACTION_INVALID)",
                ERROR_STYLE,
            )
            self.inputs[next(f.name for f in self.panel.fields if f.required and not values.get(f.name))].setFocus()
            return
        for push in self.buttons.values():
            push.setEnabled(False)
        say(self.message, f"{self.buttons[button_id].text()}…", NEUTRAL_STYLE)
        self._bridge.submit(
            self._bridge.agent.run_action,
            self.panel.id,
            button_id,
            device=self.device,
            values=values,
            on_result=self._done,
            on_error=self._failed,
        )

    def _enable(self) -> None:
        for push in self.buttons.values():
            push.setEnabled(True)

    def _done(self, answer: Any) -> None:
        self._enable()
        summary = answer
        if isinstance(answer, dict):
            summary = answer.get("status") or answer.get("value") or answer.get("id") or "done"
        say(self.message, translate("ActionsPanel", "Done: {summary}").format(summary=summary), OK_STYLE)

    def _failed(self, exc: BaseException) -> None:
        self._enable()
        say(self.message, describe_error(exc, self.text(self.panel.title)), ERROR_STYLE)


class ActionsPanel(QGroupBox):
    """Every action panel of the station's devices; hidden while there is none."""

    MAX_HEIGHT = 220  # px of panels shown at once; more scroll

    def __init__(self, bridge: AgentBridge, parent: QWidget | None = None) -> None:
        super().__init__(translate("ActionsPanel", "Device actions"), parent)
        self.setObjectName("actions_panel")
        self._bridge = bridge
        self._shown: list[tuple[str, str]] = []
        self._asked_for: Any = object()
        self.boxes: list[ActionPanelBox] = []
        # the panels scroll inside a bounded area: a station with a printer, an uploader and a
        # scanner must still fit 1280×800 with its header, PASS/FAIL and history
        self.scroll = QScrollArea(objectName="actions_scroll")
        self.scroll.setWidgetResizable(True)
        self.scroll.setMaximumHeight(self.MAX_HEIGHT)
        self.scroll.setMinimumHeight(56)
        inner = QWidget()
        self._column = QVBoxLayout(inner)
        self._column.setContentsMargins(0, 0, 0, 0)
        self.scroll.setWidget(inner)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 2, 4, 4)
        outer.addWidget(self.scroll)
        self.setVisible(False)
        bridge.add_listener(self._on_agent_event)

    def retranslate(self) -> None:
        """The box's title and every panel in the current language (the panels' words through their
        plugins' catalogues)."""
        self.setTitle(translate("ActionsPanel", "Device actions"))
        for box in self.boxes:
            box.retranslate()

    def refresh(self) -> None:
        """Ask the agent for its panels now (also done whenever its configuration version changes)."""
        if getattr(self._bridge.agent, "action_panels", None) is None:
            return  # an agent without station extensions: nothing to show
        self._bridge.submit(self._bridge.agent.action_panels, on_result=self.show_panels, on_error=lambda _e: None)

    def _on_agent_event(self, kind: str, payload: Any) -> None:
        if kind != "status" or not isinstance(payload, dict):
            return
        key = (payload.get("config_version"), tuple(sorted(payload.get("drivers") or {})))
        if key != self._asked_for:
            self._asked_for = key
            self.refresh()

    def show_panels(self, panels: list[dict[str, Any]]) -> None:
        wanted = [(p["device"], p["panel"].id) for p in panels]
        if wanted == self._shown:
            return
        for box in self.boxes:
            self._column.removeWidget(box)
            box.deleteLater()
        self.boxes = [
            ActionPanelBox(self._bridge, p["device"], p["panel"], self, plugin=p.get("plugin")) for p in panels
        ]
        for box in self.boxes:
            self._column.addWidget(box)
        self._shown = wanted
        self.setVisible(bool(self.boxes))

    def box(self, panel_id: str, device: str) -> ActionPanelBox:
        return next(b for b in self.boxes if b.panel.id == panel_id and b.device == device)
