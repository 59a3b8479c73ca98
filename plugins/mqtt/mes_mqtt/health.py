"""The plugin's health check: one node per MQTT device of the lines that enable the plugin."""

from __future__ import annotations

from typing import Any

from mes_kernel.contracts import CheckResult, HealthCheck

from .connector import ConnectorManager


def machine_checks(kernel: Any) -> list[HealthCheck]:
    """``machines``: every MQTT device on an enabled line as the kernel's machine-data hub knows it
    (connected to the broker, subscriptions granted, age of the last value, problems such as a
    payload that does not match its mapping). Not critical: a machine down stops OEE data, not the MES."""

    async def machines() -> CheckResult:
        codes = await ConnectorManager(kernel).devices()
        return kernel.machine_data.check(codes, name="MQTT machines")

    return [HealthCheck("machines", machines, critical=False, timeout=3.0)]
