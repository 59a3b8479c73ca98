"""The demo line's printer: a Zebra-like simulator on a TCP port, driven by the real zpl_tcp driver."""

from __future__ import annotations

from .simulator import ThreadedTcpPrinter

_running: list[ThreadedTcpPrinter] = []


def demo_devices() -> list[dict]:
    printer = ThreadedTcpPrinter().start()
    _running.append(printer)  # daemon thread; lives as long as the server process
    return [
        {
            "code": "PRN-DEMO",
            "kind": "label_printer",
            "driver": "zpl_tcp",
            "config": {"host": "127.0.0.1", "port": printer.port, "timeout": 3.0},
        }
    ]
