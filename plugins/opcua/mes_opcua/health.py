"""The plugin's health check: one node per OPC UA device of the lines that enable the plugin."""

from __future__ import annotations

from typing import Any

from mes_kernel.contracts import CheckResult, HealthCheck

from .connector import ConnectorManager


def machine_checks(kernel: Any) -> list[HealthCheck]:
    """``machines``: every OPC UA device on an enabled line, as the kernel's machine-data hub
    knows it (connected, subscription alive, age of the last value, problems such as an unknown
    node or an unmapped state). Not critical: a machine down stops OEE data, not the MES."""

    async def machines() -> CheckResult:
        codes = await ConnectorManager(kernel).devices()
        return await kernel.machine_data.health(codes, name="OPC UA machines")

    return [HealthCheck("machines", machines, critical=False, timeout=3.0)]
