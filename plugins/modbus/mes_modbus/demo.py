"""The demo line's Modbus machine: the simulator making parts on a TCP port, read by the real driver."""

from __future__ import annotations

from collections.abc import Sequence

from .simulator.machine import device_config, start_in_thread


def demo_devices(units: Sequence[str] = ()) -> list[dict]:
    """Start the simulator (a part every 3 s, a jam every 20 parts) working the demo LOT's ``units`` in
    turn, round and round, and describe machine ``MB-DEMO`` on the demo line at no station."""
    port = start_in_thread(cycle=3.0, jam_every=20, serials=units)
    # on the line, at no station: the kernel's connector reads it, no station agent drives it
    config = device_config(host="127.0.0.1", port=port)
    return [{"code": "MB-DEMO", "kind": "modbus", "driver": "tcp", "station": None, "config": config}]
