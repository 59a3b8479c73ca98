"""``mes serve --demo``: a simulated OPC UA machine on the demo line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .simulator import MachineSimulator, device_config, run_in_thread


def demo_devices(units: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Start the simulator (a part every 6 s, every 10th bad, a 90 s jam every 10 minutes) and
    describe machine ``MC-DEMO`` (ideal cycle 5 s), on the demo line at no station: the kernel reads it,
    not the station's agent. The machine works the demo LOT's ``units`` in turn, round and round, so
    each unit's history shows the spindle temperature recorded while it was on the machine (no units:
    serials ``DEMO-MC-000001`` …). Jam it by hand: ``POST /api/v1/opcua/devices/MC-DEMO/write`` with
    ``{"name": "command", "value": 3}`` (1 runs it again)."""
    endpoint = run_in_thread(
        MachineSimulator(
            cycle_seconds=6.0, serial_prefix="DEMO-MC-", serials=units, fault_every=600.0, fault_seconds=90.0
        )
    )
    config = device_config(endpoint, ideal_cycle_seconds=5.0)
    return [{"code": "MC-DEMO", "kind": "opcua", "driver": "opcua", "station": None, "config": config}]
