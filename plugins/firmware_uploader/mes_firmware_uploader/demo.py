"""The demo line's flasher: the uploader simulator service over HTTP, driven by http_uploader."""

from __future__ import annotations

from .simulator.server import SimulatorServer

_running: list[SimulatorServer] = []


def demo_devices() -> list[dict]:
    server = SimulatorServer(flash_seconds=1.0).start()
    _running.append(server)  # daemon thread; lives as long as the server process
    return [{"code": "UPL-DEMO", "kind": "firmware_uploader", "driver": "http_uploader",
             "config": {"base_url": server.url}}]
