"""``mes serve --demo``: a simulated OPC UA machine on the demo line."""

from __future__ import annotations

from typing import Any

from .simulator import MachineSimulator, device_config, run_in_thread


def demo_devices() -> list[dict[str, Any]]:
    """Start the simulator (a part every 6 s, every 10th bad) and describe machine ``MC-DEMO``."""
    endpoint = run_in_thread(MachineSimulator(cycle_seconds=6.0, serial_prefix="DEMO-MC-"))
    config = device_config(endpoint, ideal_cycle_seconds=5.0)
    return [{"code": "MC-DEMO", "kind": "opcua", "driver": "opcua", "config": config}]
