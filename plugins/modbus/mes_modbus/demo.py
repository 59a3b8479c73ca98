"""The demo line's Modbus machine: the simulator making parts on a TCP port, read by the real driver."""

from __future__ import annotations

from .simulator.machine import device_config, start_in_thread


def demo_devices() -> list[dict]:
    port = start_in_thread(cycle=3.0, jam_every=20)
    # on the line, at no station: the kernel's connector reads it, no station agent drives it
    config = device_config(host="127.0.0.1", port=port)
    return [{"code": "MB-DEMO", "kind": "modbus", "driver": "tcp", "station": None, "config": config}]
