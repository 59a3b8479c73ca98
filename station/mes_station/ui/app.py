"""Starts the desktop window: builds the agent from the station config and shows the window."""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from mes_station.ui.options import UiOptions

DEFAULT_CONFIG = "station.toml"


def load_ui_options(config_path: Path) -> UiOptions:
    """The ``[ui]`` table of the station's TOML config (defaults when absent)."""
    try:
        with config_path.open("rb") as handle:
            raw = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError):
        return UiOptions()
    return UiOptions.from_mapping(raw.get("ui"))


def build_agent(config_path: Path, *, demo: bool = False) -> Any:
    """The real agent from its config, or the in-memory fake for a demo."""
    if demo:
        from mes_station.ui.testing import FakeAgent

        return FakeAgent()
    from mes_station.agent import Agent

    return Agent.from_config(config_path)


def main(argv: list[str] | None = None) -> int:
    """Run the station window until it is closed; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="mes-station-ui", description=__doc__)
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("MES_STATION_CONFIG", DEFAULT_CONFIG)),
        help="station config file (default: $MES_STATION_CONFIG or ./station.toml)",
    )
    parser.add_argument("--demo", action="store_true", help="run against an in-memory fake agent (no server)")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication, QMessageBox

    from mes_station.ui.bridge import AgentBridge
    from mes_station.ui.i18n import WorkerLanguages
    from mes_station.ui.window import StationWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    agent = build_agent(args.config, demo=args.demo)
    bridge = AgentBridge(agent)
    try:
        bridge.start()
    except Exception as exc:  # shown to the worker, then the process ends non-zero
        QMessageBox.critical(None, "Station agent", f"The station agent did not start:\n{exc}")
        bridge.stop()
        return 1
    config = getattr(agent, "config", None)
    station = getattr(config, "station_code", None) or ("demo" if args.demo else "")
    work_dir = getattr(config, "work_dir", None)
    window = StationWindow(
        bridge,
        load_ui_options(args.config),
        title=f"NeuroHub MES station {station}".strip(),
        worker_languages=WorkerLanguages(Path(work_dir) / "ui-languages.json" if work_dir else None),
    )
    window.resize(1280, 800)
    window.show()
    app.aboutToQuit.connect(bridge.stop)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
