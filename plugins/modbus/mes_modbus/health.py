"""The plugin's health check: one node per Modbus device of the lines that enable the plugin."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mes_kernel.contracts import CheckResult, HealthCheck

from .connector import ConnectorManager


async def device_nodes(kernel: Any, codes: Iterable[str]) -> CheckResult:
    """The machine-data hub's nodes for ``codes``, installation-wide: a device read by another process
    shows as its lease holder last reported it (``MachineDataHub.health``)."""
    return await kernel.machine_data.health(codes, name="Modbus machines")


def machine_checks(kernel: Any) -> list[HealthCheck]:
    """``machines``: every Modbus device on an enabled line as the kernel's machine-data hub knows it
    (connected, poll alive, age of the last value, problems such as a register out of range or a
    configuration that does not parse). Not critical: a machine down stops OEE data, not the MES."""

    async def machines() -> CheckResult:
        return await device_nodes(kernel, await ConnectorManager(kernel).devices())

    return [HealthCheck("machines", machines, critical=False, timeout=3.0)]
